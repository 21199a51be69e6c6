//! The receiving side of the diode link. One thread reads datagrams (GRO batches) into the
//! core and passes its object events on; a second verifies and writes them: the signed
//! manifest frame is checked like any object's, each chunk is hashed as it arrives, the
//! part file is inspected again with this node's own policy and landed, exactly once, or
//! quarantined. The socket is only ever read: nothing goes back toward the sender.

use super::{DiodeError, load_key};
use crate::config::{Channel, LinkKind, Role};
use crate::diode::{Receiver, ReceiverConfig, ReceiverEvent, ReceiverStats};
use crate::land::Lander;
use crate::manifest::{Manifest, ObjectId};
use crate::node::Node;
use crate::reason::{Reason, Refusal};
use crate::receive::{Written, finish, refuse_received, refuse_unverified};
use crate::udp::Udp;
use crate::verify::{BeginRefusal, Reception};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver as Rx, SyncSender, sync_channel};
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
pub fn start(node: Arc<Node>) -> Result<DiodeReceiver, DiodeError> {
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
    let receiver = Receiver::new(ReceiverConfig::new(key, d.mtu))?;
    tracing::info!(listen = %d.listen, mtu = d.mtu, recv_buffer = granted, gro_segments = udp.gro_segments(), "diode receiver up");
    let stop = Arc::new(AtomicBool::new(false));
    // each data event holds a slice of a whole decoded block (up to K x T bytes): a short
    // queue keeps memory bounded; the socket buffer absorbs the writer's pauses
    let (tx, rx) = sync_channel::<ReceiverEvent>(EVENT_QUEUE);
    let n = node.clone();
    let s = stop.clone();
    let net = std::thread::Builder::new()
        .name("isogate-diode-recv".into())
        .spawn(move || net(n, udp, receiver, tx, s))
        .map_err(sock_err)?;
    // landing (final hash, fsync, inspection, audit) takes time: it runs on its own
    // thread so that writing, and reading the socket, never wait for it
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Incoming>();
    let n = node.clone();
    let write = std::thread::Builder::new()
        .name("isogate-diode-write".into())
        .spawn(move || writer(n, rx, done_tx))
        .map_err(sock_err)?;
    let land = std::thread::Builder::new()
        .name("isogate-diode-land".into())
        .spawn(move || {
            for inc in done_rx {
                complete(&node, inc);
            }
        })
        .map_err(sock_err)?;
    Ok(DiodeReceiver {
        stop,
        threads: vec![net, write, land],
    })
}

/// Reads datagrams into the core until stopped.
fn net(
    node: Arc<Node>,
    udp: Udp,
    mut receiver: Receiver,
    tx: SyncSender<ReceiverEvent>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 1 << 16];
    let mut last_heartbeat = 0u64;
    let mut reported = ReceiverStats::default();
    let mut drops = udp.kernel_drops().unwrap_or(0);
    let mut next_report = crate::now_ms() + 1000;
    while !stop.load(Ordering::Relaxed) {
        match udp.recv(&mut buf) {
            Ok(Some((len, stride, _from))) => {
                let now = crate::now_ms();
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
        let now = crate::now_ms();
        if receiver.poll_timeout().is_some_and(|t| t <= now) {
            receiver.handle_timeout(now);
        }
        while let Some(ev) = receiver.poll_event() {
            match ev {
                ReceiverEvent::HeartbeatSeen(_) => last_heartbeat = now,
                ReceiverEvent::SessionStarted { session } => {
                    tracing::info!(session = format!("{session:016x}"), "diode session started");
                }
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
            node.metrics
                .link_up
                .set(i64::from(now.saturating_sub(last_heartbeat) < SILENCE_MS));
            let s = receiver.stats();
            report(&node, &reported, &s);
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
        tracing::warn!(
            forged,
            total = now.datagrams_forged,
            "dropped diode datagrams that failed authentication"
        );
    }
    if lost > 0 {
        tracing::warn!(
            lost,
            "diode blocks lost beyond repair; the carousel's next copy fills in"
        );
    }
}

/// An object arriving.
struct Incoming {
    manifest: Manifest,
    channel: Channel,
    part: PathBuf,
    file: File,
    reception: Box<Reception>,
    refused: Option<Refusal>,
}

/// What the writer knows of each object id it has seen start.
enum Slot {
    Arriving(Box<Incoming>),
    /// Already landed, refused or being ignored: later data is dropped.
    Ignored,
}

/// Verifies, writes and lands objects as the core reports them.
fn writer(node: Arc<Node>, rx: Rx<ReceiverEvent>, done: std::sync::mpsc::Sender<Incoming>) {
    let mut slots: HashMap<crate::diode::ObjectId, Slot> = HashMap::new();
    for ev in rx {
        match ev {
            ReceiverEvent::ObjectStart { id, header, .. } => {
                let slot = begin(&node, ObjectId(id.0), &header);
                slots.insert(id, slot);
            }
            ReceiverEvent::ObjectData { id, bytes, .. } => {
                if let Some(Slot::Arriving(inc)) = slots.get_mut(&id)
                    && inc.refused.is_none()
                {
                    if let Err(r) = inc.reception.feed(&bytes) {
                        inc.refused = Some(r);
                    } else if let Err(e) = inc.file.write_all(&bytes) {
                        tracing::error!(error = %e, "cannot write a part file; the next copy is tried");
                        let part = inc.part.clone();
                        slots.remove(&id);
                        let _ = std::fs::remove_file(part);
                    }
                }
            }
            ReceiverEvent::ObjectComplete { id } => {
                if let Some(Slot::Arriving(inc)) = slots.remove(&id)
                    && done.send(*inc).is_err()
                {
                    return;
                }
            }
            ReceiverEvent::ObjectLost { id, why, last_copy } => {
                if let Some(Slot::Arriving(inc)) = slots.remove(&id) {
                    let _ = std::fs::remove_file(&inc.part);
                    tracing::warn!(channel = %inc.manifest.channel, name = %inc.manifest.name, why = ?why, last_copy, "a copy of an object was lost on the diode");
                } else {
                    slots.remove(&id);
                }
            }
            _ => {}
        }
    }
}

/// Checks an object's signed manifest frame and opens its part file.
fn begin(node: &Node, id: ObjectId, header: &[u8]) -> Slot {
    let payload = match crate::wire::decode_object_frame(header) {
        Ok(p) => p,
        Err(e) => {
            let r = Refusal::new(Reason::BadManifest, format!("object frame: {e}"));
            log_err(refuse_unverified(node, id, &r));
            return Slot::Ignored;
        }
    };
    let reception = match Reception::begin(payload, &node.keys.rules()) {
        Ok(r) => r,
        Err(BeginRefusal { refusal, .. }) => {
            log_err(refuse_unverified(node, id, &refusal));
            return Slot::Ignored;
        }
    };
    let m = reception.manifest().clone();
    if m.object_id != id {
        let r = Refusal::new(
            Reason::BadManifest,
            "the manifest names another object than the link",
        );
        log_err(refuse_unverified(node, id, &r));
        return Slot::Ignored;
    }
    let Some(channel) = node
        .cfg
        .channel(&m.channel)
        .filter(|c| c.role == Role::Receive && c.link == LinkKind::Diode)
        .cloned()
    else {
        let r = Refusal::new(
            Reason::WrongChannel,
            format!("{} is not a diode channel this node receives", m.channel),
        );
        log_err(refuse_unverified(node, id, &r));
        return Slot::Ignored;
    };
    // exactly once: a later copy of an object already landed or refused is dropped
    let known = node
        .lander
        .finish_pending(&channel.inbox, &channel.name, id)
        .and_then(|_| node.lander.outcome(&channel.name, id));
    match known {
        Ok(Some(_)) => return Slot::Ignored,
        Ok(None) => {}
        Err(e) => {
            tracing::error!(object = %id, error = %e, "cannot read delivery state; the next copy is tried");
            return Slot::Ignored;
        }
    }
    let policy = node.policies.get(&channel.name);
    let pre = policy
        .check_name(&m.name)
        .and_then(|()| policy.check_size(m.size));
    if let Err(r) = pre {
        log_err(refuse_received(node, &channel, &m, None, &r));
        log_err(node.lander.record(
            &channel.name,
            id,
            crate::land::Outcome::Quarantined,
            &m.name,
        ));
        return Slot::Ignored;
    }
    let floor = node.cfg.disk.min_free_bytes;
    match crate::status::free_bytes(&channel.inbox) {
        Ok(free) if free >= floor.saturating_add(m.size) => {}
        _ => {
            tracing::warn!(channel = %m.channel, name = %m.name, "inbox file system too full; waiting for the next copy");
            return Slot::Ignored;
        }
    }
    match Lander::create_part(&channel.inbox, id) {
        Ok((part, file)) => Slot::Arriving(Box::new(Incoming {
            manifest: m,
            channel,
            part,
            file,
            reception: Box::new(reception),
            refused: None,
        })),
        Err(e) => {
            tracing::error!(inbox = %channel.inbox.display(), error = %e, "cannot create a part file");
            Slot::Ignored
        }
    }
}

/// Every byte arrived: verify, inspect again, land or quarantine.
fn complete(node: &Node, inc: Incoming) {
    let written = match inc.refused {
        Some(r) => Written::Refused(r),
        None => Written::Complete(inc.reception, inc.file),
    };
    match finish(
        node,
        &inc.channel,
        &inc.manifest,
        inc.part.clone(),
        written,
        true,
    ) {
        Ok(_) => {}
        Err(e) => {
            let _ = std::fs::remove_file(&inc.part);
            tracing::error!(name = %inc.manifest.name, error = %e, "could not land; the next copy is tried");
        }
    }
}

fn log_err<T>(r: std::io::Result<T>) {
    if let Err(e) = r {
        tracing::error!(error = %e, "cannot record an outcome");
    }
}
