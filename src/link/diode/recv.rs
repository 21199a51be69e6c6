//! The receiving side of the diode link. One thread reads datagrams (GRO batches) into the
//! core and passes its object events on; a second verifies and writes them: the signed
//! manifest frame is checked like any object's, each chunk is hashed as it arrives, the
//! part file is inspected again with this node's own policy and landed, exactly once, or
//! quarantined. The socket is only ever read: nothing goes back toward the sender.
//!
//! What is lost is known: an object the sender announced as retired that never arrived
//! whole (the core's `ObjectMissed`) is audited `lost` with its id, channel and name, once:
//! not when this node has already landed, quarantined or refused it, and not again after a
//! restart (`state/lost/<id>` marks it). The operator carries the id to the sender's side
//! (`isogate resend`). The sender's signed audit checkpoints arrive as their own frames
//! and are witnessed (`witnessed`) as on quic, after their signature is checked.
//!
//! A copy lost part way (the core's `ObjectLost` with `kept`) is kept: its staged copy, its
//! hashes and its reservation stay, at most [`KEEP_LOST`] objects at once and for the repeat
//! window and 10 minutes at most, and the next copy goes on from its last byte
//! (`ObjectResume`). Kept bytes given up here (refused, crowded out, kept too long, none
//! when a resume comes) are given up in the core too (`Forget`), so that the next copy
//! starts over.
//!
//! ```text
//! ObjectLost{kept} ─► sound? ─► Slot::Kept ─► ObjectResume{offset} ─► same offset? ─► Arriving
//!                        no ─► abandon, Forget                         no ─► Forget, skip copy
//! ```
//!
//! An object that arrived whole but could not be landed (an I/O error, a full disk: the
//! "retry" answer) is reopened in the core, so that its next copy (a repeat) is taken
//! again; if none comes before the sender retires it, it is audited `lost` like the rest.
//!
//! The link itself is watched too (`alarm`): the sender's settings that do not fit this
//! node's, and sessions whose datagrams do not authenticate, are logged, counted, named on
//! `/healthz` and audited `link_mismatch`; every dropped datagram is counted by reason.
//!
//! Live stream frames (the `stream` channel kind) are handed on by the socket thread itself
//! as the core delivers them, to [`Receiver::stream_frame`] (its gate and playout), so no
//! object's landing ever delays them.
//!
//! ```text
//! StreamFrame  ─► Receiver::stream_frame (decode, gate, playout, emit)
//! ObjectMissed ─► settled here? ─► marked lost already? ─► audit `lost`, mark
//! Checkpoint   ─► signature (peer keys) ─► audit `witnessed`
//! complete, not landed ─► reopen (landing threads ─► socket thread) ─► next copy taken
//! ```

use super::DiodeError;
use crate::core::diode::pack::KEEP_LOST;
use crate::core::diode::{Receiver as Core, ReceiverConfig, ReceiverEvent, ReceiverStats};
use crate::core::id::ObjectId;
use crate::core::reason::{Reason, Refusal};
use crate::core::wire::{LinkKind, ReceiptStatus};
use crate::keys::diode::load as load_key;
use crate::link::diode::alarm::{Alarm, Unauthenticated};
use crate::link::diode::udp::Udp;
use crate::node::Node;
use crate::receiver::{Arriving, Begin, Receiver};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver as Rx, Sender as Tx, SyncSender, sync_channel};
use std::time::Duration;

/// The receive buffer asked of the kernel: bursts at line rate must not overflow it.
const RECV_BUFFER: usize = 64 << 20;

/// Events between the socket thread and the writer: about 64 blocks, 45 MiB at MTU 1500.
const EVENT_QUEUE: usize = 64;

/// How long without a heartbeat before the link counts as down.
const SILENCE_MS: u64 = 3_000;

/// The running receiver; stops its threads when dropped.
pub struct DiodeReceiver {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for DiodeReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Binds the diode socket and starts the receiver's threads.
pub fn start(receiver: Arc<Receiver>) -> Result<DiodeReceiver, DiodeError> {
    let node = receiver.node.clone();
    let d = node.cfg.diode.clone().ok_or(DiodeError::NotConfigured)?;
    let key = load_key(&d.key_file)?;
    let sock_err = |error| DiodeError::Socket {
        addr: d.listen,
        error,
    };
    let udp = Udp::bind(d.listen, Duration::from_millis(100)).map_err(sock_err)?;
    let granted = udp.set_recv_buffer(RECV_BUFFER).map_err(sock_err)?;
    if granted < RECV_BUFFER {
        tracing::warn!(
            asked = RECV_BUFFER,
            granted,
            "the kernel capped the diode receive buffer (raise net.core.rmem_max); bursts may be dropped"
        );
    }
    if let Some(w) = super::path::mtu_warning(d.mtu, d.peer.ip()) {
        tracing::warn!("{w}");
    }
    let mut config = ReceiverConfig::new(key, d.mtu);
    config.suite = node.cfg.node.suite;
    config.config_digest = super::config_digest(&node.cfg, crate::node::config::Role::Receive);
    let core = Core::new(config)?;
    tracing::info!(listen = %d.listen, mtu = d.mtu, recv_buffer = granted, gro_segments = udp.gro_segments(), "diode receiver up");
    let stop = Arc::new(AtomicBool::new(false));
    // each data event holds a slice of a whole decoded block (up to K x T bytes): a short
    // queue keeps memory bounded; the socket buffer absorbs the writer's pauses
    let (tx, rx) = sync_channel::<ReceiverEvent>(EVENT_QUEUE);
    // objects that arrived whole but were not landed, and kept copies given up, go back
    // to the core
    let (reopen_tx, reopen_rx) = std::sync::mpsc::channel::<Back>();
    let n = node.clone();
    let s = stop.clone();
    let streams = receiver.clone();
    let net = std::thread::Builder::new()
        .name("isogate-diode-recv".into())
        .spawn(move || {
            let alarm = Alarm::new(&n, d.mtu);
            net(n, &streams, udp, core, alarm, tx, reopen_rx, s)
        })
        .map_err(sock_err)?;
    // landing (final hash, fsync, inspection, audit) takes time: it runs on threads of its
    // own so that writing, and reading the socket, never wait for it; several at once, as
    // a small object's landing mostly waits on its fsyncs (each object lands exactly once
    // whichever thread takes it: the lander's markers decide)
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Arriving>();
    let r = receiver.clone();
    let reopen = reopen_tx.clone();
    let write = std::thread::Builder::new()
        .name("isogate-diode-write".into())
        .spawn(move || writer(&r, rx, done_tx, &reopen))
        .map_err(sock_err)?;
    // from here a failed start stops and joins what already runs (the drop)
    let mut running = DiodeReceiver {
        stop,
        threads: vec![net, write],
    };
    let done_rx = Arc::new(std::sync::Mutex::new(done_rx));
    // as many at once as the sending node takes from its outboxes
    for _ in 0..crate::node::objects_at_once() {
        let (receiver, done_rx, reopen) = (receiver.clone(), done_rx.clone(), reopen_tx.clone());
        let land = std::thread::Builder::new()
            .name("isogate-diode-land".into())
            .spawn(move || {
                // one thread waits on the queue at a time; the lock is let go before landing
                let next = || done_rx.lock().ok()?.recv().ok();
                while let Some(arriving) = next() {
                    complete(&receiver, arriving, &reopen);
                }
            })
            .map_err(sock_err)?;
        running.threads.push(land);
    }
    Ok(running)
}

/// Reads datagrams into the core until stopped.
#[allow(clippy::too_many_arguments)]
fn net(
    node: Arc<Node>,
    streams: &Receiver,
    udp: Udp,
    mut receiver: Core,
    mut alarm: Alarm,
    tx: SyncSender<ReceiverEvent>,
    reopen: Rx<Back>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 1 << 16];
    let mut last_heartbeat = 0u64;
    let mut up = false;
    let mut reported = ReceiverStats::default();
    let mut drops = udp.kernel_drops().unwrap_or(0);
    let mut next_report = crate::mono_ms() + 1000;
    let mut last_from = None;
    while !stop.load(Ordering::Relaxed) {
        match udp.recv(&mut buf) {
            Ok(Some((len, stride, from))) => {
                last_from = Some(from);
                let now = crate::mono_ms();
                for d in buf[..len].chunks(stride) {
                    receiver.handle(now, d);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "diode receive failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        while let Ok(back) = reopen.try_recv() {
            match back {
                Back::Reopen(id) => receiver.reopen(id),
                Back::Forget(id) => receiver.forget_kept(id),
            }
        }
        let now = crate::mono_ms();
        if receiver.poll_timeout().is_some_and(|t| t <= now) {
            receiver.handle_timeout(now);
        }
        while let Some(ev) = receiver.poll_event() {
            match ev {
                ReceiverEvent::HeartbeatSeen(_) => last_heartbeat = now,
                ReceiverEvent::SessionStarted { session } => {
                    tracing::info!(session = format!("{session:016x}"), "diode session started");
                }
                // the events of one receive, which comes from one address
                ReceiverEvent::Mismatch(list) => alarm.mismatch(&node, now, list),
                ReceiverEvent::Unauthenticated {
                    session,
                    heartbeat,
                    version,
                    tagged_by,
                } => {
                    let who = Unauthenticated {
                        session,
                        from: last_from,
                        version,
                        tagged_by,
                    };
                    alarm.unauthenticated(&node, now, who, heartbeat);
                }
                ReceiverEvent::StreamFrame(frame) => streams.stream_frame(now, &frame),
                ReceiverEvent::SessionRestarted { old, new } => {
                    tracing::info!(
                        old = format!("{old:016x}"),
                        new = format!("{new:016x}"),
                        "the diode sender restarted"
                    );
                }
                other => {
                    if tx.send(other).is_err() {
                        return;
                    }
                }
            }
        }
        if now >= next_report {
            next_report = now + 1000;
            let heard = last_heartbeat > 0 && now.saturating_sub(last_heartbeat) < SILENCE_MS;
            if heard != up {
                up = heard;
                let detail = if up {
                    "heartbeats arrive"
                } else {
                    "no heartbeat for 3 s"
                };
                node.link_changed(LinkKind::Diode, up, detail, true);
            }
            let s = receiver.stats();
            report(&node, &reported, &s);
            alarm.tick(&node, now, &s);
            reported = s;
            if let Some(d) = udp.kernel_drops()
                && d > drops
            {
                tracing::warn!(
                    dropped = d - drops,
                    total = d,
                    "the kernel dropped diode datagrams: its receive queue overflowed (raise net.core.rmem_max, or lower [diode] rate_mbit)"
                );
                node.metrics.diode_kernel_drops.inc_by(d - drops);
                drops = d;
            }
        }
    }
}

/// Moves the core's counters into the metrics, and logs what matters.
fn report(node: &Node, before: &ReceiverStats, now: &ReceiverStats) {
    let m = &node.metrics;
    m.fec_repairs.inc_by(
        now.repair_symbols_used
            .saturating_sub(before.repair_symbols_used),
    );
    let lost = now.blocks_lost.saturating_sub(before.blocks_lost);
    m.fec_lost_blocks.inc_by(lost);
    let forged = now.datagrams_forged.saturating_sub(before.datagrams_forged);
    m.diode_forged.inc_by(forged);
    if forged > 0 {
        // once, then at most once a minute while it lasts: a sender of another key or
        // suite sends all day (the counter and /healthz carry every second)
        crate::ops::repeat::warn_repeated!("diode.forged", "forged";
            forged,
            total = now.datagrams_forged,
            "dropped diode datagrams that failed authentication"
        );
    }
    if lost > 0 {
        tracing::warn!(
            lost,
            "diode blocks lost beyond repair; the next copy of each object fills in"
        );
    }
}

/// What the writer and the landing threads tell the socket thread's core.
enum Back {
    /// Arrived whole but not landed: take its next copy again.
    Reopen(ObjectId),
    /// The bytes kept of a lost copy are gone: its next copy starts over.
    Forget(ObjectId),
}

/// What the writer knows of each object id it has seen start.
enum Slot {
    Arriving(Box<Arriving>),
    /// A copy was lost part way; what arrived of it, with no refusal or failure known yet
    /// (its hashes go on with the next copy, and all are checked before it lands), stays
    /// in its staged copy for a later copy to go on from (the core's `ObjectResume`).
    Kept(Box<Arriving>),
    /// Already landed, refused or being ignored: later data is dropped.
    Ignored,
    /// Not taken now (a full disk, a scanner down: the answer is "retry"): later data is
    /// dropped, and the next copy is taken again.
    Retry,
}

/// How long a kept copy waits for the next copy of its object beyond the repeat window (by
/// then the sender has retired it, or is gone): its room and staged copy are given back.
const KEPT_GRACE_MS: u64 = 10 * 60 * 1000;

/// The objects whose lost copy the writer keeps (their slots are `Slot::Kept`), oldest
/// first, with when each was kept ([`crate::mono_ms`]).
struct KeptCopies {
    order: VecDeque<(ObjectId, u64)>,
    /// How long one is kept.
    keep_ms: u64,
}

impl KeptCopies {
    /// Keeps `a` in `id`'s slot, newest; gives up the oldest beyond [`KEEP_LOST`] (the
    /// core does the same in the same order, and hears of it too).
    fn keep(
        &mut self,
        slots: &mut HashMap<ObjectId, Slot>,
        id: ObjectId,
        a: Box<Arriving>,
        now: u64,
        back: &Tx<Back>,
    ) {
        slots.insert(id, Slot::Kept(a));
        self.order
            .retain(|(k, _)| *k != id && matches!(slots.get(k), Some(Slot::Kept(_))));
        self.order.push_back((id, now));
        while self.order.len() > KEEP_LOST {
            self.give_up_oldest(slots, back);
        }
    }

    /// Gives up the kept copies older than `keep_ms`.
    fn expire(&mut self, slots: &mut HashMap<ObjectId, Slot>, now: u64, back: &Tx<Back>) {
        self.prune(slots);
        while self
            .order
            .front()
            .is_some_and(|(_, since)| now.saturating_sub(*since) >= self.keep_ms)
        {
            self.give_up_oldest(slots, back);
        }
    }

    /// A copy the core keeps that this writer could not (refused, not taken): where it was
    /// new to the core, the core made room for it as for any, so the oldest kept here goes
    /// too when all [`KEEP_LOST`] are taken; then the core forgets it again. (A Forget still
    /// on its way may let the two sides differ for a while: that costs a resume, never a
    /// byte, and the next copy of each starts over or goes on as the core says.)
    fn not_kept(&mut self, slots: &mut HashMap<ObjectId, Slot>, id: ObjectId, back: &Tx<Back>) {
        self.prune(slots);
        if self.order.len() >= KEEP_LOST {
            self.give_up_oldest(slots, back);
        }
        let _ = back.send(Back::Forget(id));
    }

    /// Drops the ids whose slot is no longer kept (resumed, started over, complete, missed).
    fn prune(&mut self, slots: &HashMap<ObjectId, Slot>) {
        self.order
            .retain(|(k, _)| matches!(slots.get(k), Some(Slot::Kept(_))));
    }

    /// Gives up the oldest kept copy (after [`KeptCopies::prune`]: every id in the order is
    /// kept).
    fn give_up_oldest(&mut self, slots: &mut HashMap<ObjectId, Slot>, back: &Tx<Back>) {
        let Some((old, _)) = self.order.pop_front() else {
            return;
        };
        if !matches!(slots.get(&old), Some(Slot::Kept(_))) {
            return;
        }
        if let Some(Slot::Kept(a)) = slots.remove(&old) {
            tracing::info!(name = %a.manifest().name, kept = a.received(), "the bytes kept of a lost copy are given up; its next copy starts over");
            a.abandon();
            let _ = back.send(Back::Forget(old));
        }
    }
}

/// Verifies and writes objects as the core reports them; hands complete ones to the
/// landing threads. A copy lost part way is kept, at most [`KEEP_LOST`] at once (the oldest
/// is given up first) and for the repeat window and [`KEPT_GRACE_MS`] at most, for a later
/// copy to go on from.
fn writer(receiver: &Receiver, rx: Rx<ReceiverEvent>, done: Tx<Arriving>, back: &Tx<Back>) {
    let mut slots: HashMap<ObjectId, Slot> = HashMap::new();
    let window = receiver
        .node
        .cfg
        .diode
        .as_ref()
        .map_or(0, |d| d.repeat_window_ms);
    let mut kept = KeptCopies {
        order: VecDeque::new(),
        keep_ms: window.saturating_add(KEPT_GRACE_MS),
    };
    loop {
        let ev = match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(ev) => Some(ev),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        };
        kept.expire(&mut slots, crate::mono_ms(), back);
        let Some(ev) = ev else { continue };
        match ev {
            ReceiverEvent::ObjectStart { id, header, .. } => {
                // a new copy starts over: whatever arrived of an earlier one is dropped
                if let Some(Slot::Arriving(earlier) | Slot::Kept(earlier)) = slots.remove(&id) {
                    earlier.abandon();
                }
                let slot = match crate::core::wire::decode_object_frame(&header) {
                    Ok(payload) => match receiver.begin(LinkKind::Diode, payload, Some(id)) {
                        Begin::Arriving(a) => Slot::Arriving(a),
                        Begin::Answered(Some((_, ReceiptStatus::Retry))) => Slot::Retry,
                        Begin::Answered(_) => Slot::Ignored,
                    },
                    Err(e) => {
                        let r = Refusal::new(Reason::BadManifest, format!("object frame: {e}"));
                        receiver.refuse_frame(id, &r);
                        Slot::Ignored
                    }
                };
                slots.insert(id, slot);
            }
            ReceiverEvent::ObjectResume { id, offset } => {
                let slot = match slots.remove(&id) {
                    Some(Slot::Kept(a)) if a.received() == offset => {
                        tracing::info!(channel = %a.manifest().channel, name = %a.manifest().name, offset, "a later copy goes on from the bytes kept of a lost one");
                        receiver.node.metrics.diode_resumed.inc();
                        Slot::Arriving(a)
                    }
                    other => {
                        // the kept bytes were given up here before the core heard it: this
                        // copy cannot be taken; the one after it starts over
                        if let Some(Slot::Arriving(a) | Slot::Kept(a)) = other {
                            a.abandon();
                        }
                        let _ = back.send(Back::Forget(id));
                        Slot::Retry
                    }
                };
                slots.insert(id, slot);
            }
            ReceiverEvent::ObjectData { id, offset, bytes } => {
                if let Some(Slot::Arriving(a)) = slots.get_mut(&id) {
                    // after a refusal nothing more is written, and the bytes are dropped
                    if !a.is_sound() || a.received() == offset {
                        a.write(bytes);
                    } else if let Some(Slot::Arriving(a)) = slots.remove(&id) {
                        // never from a sound core: take no byte out of place
                        tracing::error!(name = %a.manifest().name, offset, held = a.received(), "diode data out of place; this copy is dropped");
                        a.abandon();
                        slots.insert(id, Slot::Retry);
                    }
                }
            }
            ReceiverEvent::ObjectComplete { id } => match slots.remove(&id) {
                Some(Slot::Arriving(mut a)) => {
                    // it may wait for a landing thread: its hash thread ends now
                    a.written();
                    if done.send(*a).is_err() {
                        return;
                    }
                }
                Some(Slot::Kept(a)) => {
                    // never from a sound core (a resumed copy comes as ObjectResume)
                    a.abandon();
                    let _ = back.send(Back::Reopen(id));
                }
                Some(Slot::Retry) => {
                    let _ = back.send(Back::Reopen(id));
                }
                Some(Slot::Ignored) | None => {}
            },
            ReceiverEvent::ObjectLost {
                id,
                why,
                last_copy,
                kept: keep,
            } => match slots.remove(&id) {
                Some(Slot::Arriving(a) | Slot::Kept(a)) if keep && a.is_sound() => {
                    tracing::warn!(channel = %a.manifest().channel, name = %a.manifest().name, why = ?why, kept = a.received(), "a copy of an object was lost on the diode; what arrived is kept for the next copy");
                    kept.keep(&mut slots, id, a, crate::mono_ms(), back);
                }
                other => {
                    if let Some(Slot::Arriving(a) | Slot::Kept(a)) = other {
                        tracing::warn!(channel = %a.manifest().channel, name = %a.manifest().name, why = ?why, last_copy, "a copy of an object was lost on the diode");
                        a.abandon();
                    }
                    if keep {
                        kept.not_kept(&mut slots, id, back);
                    }
                }
            },
            ReceiverEvent::ObjectMissed {
                id,
                channel,
                name,
                size,
                object_seq,
            } => {
                if let Some(Slot::Arriving(a) | Slot::Kept(a)) = slots.remove(&id) {
                    a.abandon();
                }
                lost(receiver, id, &channel, &name, size, object_seq);
            }
            ReceiverEvent::Checkpoint(note) => crate::link::quic::recv::witness(receiver, &note),
            _ => {}
        }
    }
}

/// The sender retired an object that never arrived whole here: audit `lost`, once.
fn lost(receiver: &Receiver, id: ObjectId, channel: &str, name: &str, size: u64, object_seq: u64) {
    let node = &receiver.node;
    // the channel comes off the wire: only one this node receives on the diode is audited
    let ours = node
        .cfg
        .channel(channel)
        .is_some_and(|c| c.link == LinkKind::Diode && c.role == crate::node::config::Role::Receive);
    if !ours {
        tracing::warn!(object = %id, channel, "an announcement names a channel this node does not receive on the diode; ignored");
        return;
    }
    // retired by the sender: whatever happens below, it no longer waits for room here
    receiver.stop_waiting(channel, id);
    if receiver.settled(channel, id) {
        return;
    }
    let marks = node.cfg.node.state_dir.join("lost");
    let mark = marks.join(id.to_string());
    if mark.exists() {
        return;
    }
    let mut e = crate::audit::Entry::object(channel, id, name);
    e.size = Some(size);
    e.peer = Some(node.cfg.peer.name.clone());
    e.detail = Some(format!(
        "the sender retired it (its object {object_seq} of this run) and it never arrived whole; on the sender: isogate resend --config FILE {id}"
    ));
    if let Err(err) = node.audit.durable(crate::audit::Event::Lost, e) {
        tracing::error!(object = %id, error = %err, "cannot audit a lost object");
        return;
    }
    tracing::warn!(channel, name, object = %id, "lost: the diode sender retired an object that never arrived whole");
    node.metrics.diode_lost.with_label_values(&[channel]).inc();
    let marked =
        std::fs::create_dir_all(&marks).and_then(|()| crate::fsx::write_durable(&mark, b""));
    if let Err(err) = marked {
        tracing::warn!(error = %err, "cannot mark the lost object; it may be audited again after a restart");
    }
}

/// Every byte arrived: verify, inspect again, land or quarantine. When it could not be
/// landed now, the core takes its next copy again.
fn complete(receiver: &Receiver, arriving: Arriving, reopen: &Tx<Back>) {
    let name = arriving.manifest().name.clone();
    let id = arriving.manifest().object_id;
    match receiver.finish(arriving, true) {
        Ok(Some(ReceiptStatus::Retry)) => {
            tracing::warn!(name = %name, "not landed now; the next copy is taken");
            let _ = reopen.send(Back::Reopen(id));
        }
        Ok(_) => {}
        Err(e) => {
            crate::ops::repeat::error_repeated!("diode.land", &format!("{name}: {e}");
                name = %name, error = %e, "could not land; the next copy is taken");
            let _ = reopen.send(Back::Reopen(id));
        }
    }
}
