//! The sending side of the diode link: takes sealed objects, hands the core their signed
//! manifest frame and then their content as it asks for it, and sends the datagrams it
//! yields, paced by the core's token bucket, in GSO batches. When an object's first pass is
//! out it is audited `sent`, and the spool entry is marked so (with the end of its repeat
//! window): a restarted sender sends it again only with spare capacity until the window
//! ends. An object leaves the spool when its window has ended and its last planned copy has
//! gone out: audited `retired` (there are no receipts on a diode, so nothing is ever
//! `confirmed`), and its copy is held for `isogate resend` for `[diode] keep_sent_s` (see
//! `held`). Content files are opened when the core asks for a pass and closed when the pass
//! is out, so objects waiting in the repeat window hold no descriptor. Each open checks
//! that the copy is the sealing at rest that was hashed into the manifest
//! (`sender::seal::same_sealing`); a copy that no sealing vouches for (a plain spool, a
//! manifest reloaded after a restart) is read a chunk at a time, each checked against the
//! manifest before any of it goes to the core (`sender::seal::read_checked_chunk`). A copy
//! changed in place, or another copy put in its place, is taken again and inspected
//! again, never sent as it is.
//!
//! ```text
//! sealed ─► core ─► datagrams ════►           every second, beside the data:
//! retired ─► audit `retired` ─► held copy      announce up to 64 objects held or in flight
//! state/resend/*.req ─► held copy ─► spool     (retired ones with the retired flag, kept
//!        ─► audit `resent` ─► Sender::hold     announced while held, at least 10 min);
//!           (approvals complete: ─► core;      the latest signed audit checkpoint
//!            else it waits on the desk)        (at once when new, then every 5 s)
//! ```
//!
//! Live stream frames (the `stream` channel kind) come from the sending node's outgoing
//! queue and go before everything else: each frame is handed to the core as it arrives
//! (its symbols go first, paced under the same rate, see `core::diode::stream`). The
//! thread sleeps on one queue that both the objects and the frames are forwarded into, so
//! a frame wakes it at once and an idle link costs no CPU.
//!
//! ```text
//! sealed objects ──forward──┐
//! stream frames ───forward──┴─► work queue ─► frames: core.push_stream (first on the wire)
//!                                           objects: as above
//! ```
//!
//! Time: the core, the pacer, heartbeats, announcements, checkpoints and pruning count on
//! the monotonic clock ([`crate::mono_ms`]), so a wall clock stepped either way changes
//! nothing of what goes out when. What is kept on disk (the repeat window's end, the time a
//! copy was retired) is wall time, read back as "how long from now", clamped to the window
//! or the keeping time: a step back never makes the sender wait longer than that.

use super::DiodeError;
use super::held::{Held, HeldEntry};
use crate::audit::{Entry, Event};
use crate::core::diode::sender::Control;
use crate::core::diode::wire::MAX_ANNOUNCE_NAME;
use crate::core::diode::{Sender as Core, SenderConfig, SenderEvent};
use crate::core::id::ObjectId;
use crate::core::stage::Sealed;
use crate::core::wire::LinkKind;
use crate::keys::at_rest::{DataKeys, Stored};
use crate::keys::diode::load as load_key;
use crate::keys::suite::Suite;
use crate::link::diode::udp::Udp;
use crate::ops::events::{Sent, Subject};
use crate::sender::pipeline::Sender;
use crate::sender::seal::{Changed, read_checked_chunk, same_sealing};
use crate::sender::spool::Spool;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// What wakes the sending thread.
enum Work {
    /// A sealed object to send.
    Object(Box<Sealed>),
    /// A live stream frame (a `core::stream` frame, opaque here) to send at once.
    Frame(bytes::Bytes),
}

/// The stream delay budget (ms) on the diode when no stream channel states one.
const STREAM_DELAY_MS: u64 = 40;

/// Starts the sender thread, fed with sealed objects by `rx` and, when this node sends
/// stream channels on the diode, with their frames by `stream` (the queue
/// `sender::stream::Outgoing`); it ends when both are closed.
pub fn start(
    sender: Arc<Sender>,
    rx: Receiver<Sealed>,
    stream: Option<crate::sender::stream::Outgoing>,
) -> Result<std::thread::JoinHandle<()>, DiodeError> {
    let node = &sender.node;
    let d = node.cfg.diode.clone().ok_or(DiodeError::NotConfigured)?;
    let key = load_key(&d.key_file)?;
    let bind: SocketAddr = if d.peer.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let udp = Udp::bind(bind, Duration::from_millis(100))
        .map_err(|error| DiodeError::Socket { addr: bind, error })?;
    let mut cfg = SenderConfig::new(key, d.mtu);
    cfg.suite = node.cfg.node.suite;
    cfg.repair_ratio = d.repair_ratio;
    cfg.rate_bytes_per_s = d.rate_bytes_per_s;
    cfg.copies = u8::try_from(d.copies).unwrap_or(u8::MAX);
    cfg.repeat_window_ms = d.repeat_window_ms;
    cfg.interleave = d.interleave;
    cfg.config_digest = super::config_digest(&node.cfg, crate::node::config::Role::Send);
    cfg.stream_repair_ratio = d.stream_repair_ratio;
    cfg.stream_delay_ms = stream_delay_ms(&node.cfg);
    // a millisecond of sending at full rate, at least: the thread wakes once a millisecond
    cfg.burst_bytes = (d.rate_bytes_per_s / 500).max(256 * 1024);
    let session = random_session()?;
    let mut core = Core::new(cfg, session, crate::mono_ms())?;
    // the repair symbols are coded on worker threads while the sources go out; where no
    // thread can be had, on the sending thread as before
    match super::coder::Pool::start(super::coder::workers()) {
        Ok(pool) => core.set_coder(Box::new(pool)),
        Err(e) => {
            tracing::warn!(error = %e, "no FEC worker threads; repair symbols are coded on the sending thread")
        }
    }
    // sessions are ordered across restarts by their start: the wall clock, not this
    // process's monotonic one
    core.set_session_start(crate::now_ms());
    tracing::info!(peer = %d.peer, mtu = d.mtu, rate_bytes_per_s = d.rate_bytes_per_s, repair_ratio = d.repair_ratio, copies = d.copies, repeat_window_s = d.repeat_window_ms / 1000, session = format!("{session:016x}"), gso_segments = udp.max_segments(), "diode sender up");
    if let Some(w) = super::path::mtu_warning(d.mtu, d.peer.ip()) {
        tracing::warn!("{w}");
    }
    let held = Held::open(&node.cfg.node.state_dir)
        .map_err(|(path, error)| DiodeError::State { path, error })?;
    // one way: nothing tells the sender whether the receiver hears it; the link is up
    // while the sender runs
    node.link_changed(LinkKind::Diode, true, &format!("to {}", d.peer), false);
    let keep_ms = d.keep_sent_ms;
    let spawn_err = |error| DiodeError::Socket { addr: bind, error };
    // one queue to sleep on: the objects and the frames are forwarded into it
    let (work_tx, work_rx) = std::sync::mpsc::channel::<Work>();
    let objects = work_tx.clone();
    std::thread::Builder::new()
        .name("isogate-diode-objects".into())
        .spawn(move || {
            for s in rx {
                if objects.send(Work::Object(Box::new(s))).is_err() {
                    return;
                }
            }
        })
        .map_err(spawn_err)?;
    if let Some(frames) = stream {
        std::thread::Builder::new()
            .name("isogate-diode-frames".into())
            .spawn(move || {
                for f in frames {
                    if work_tx.send(Work::Frame(f)).is_err() {
                        return;
                    }
                }
            })
            .map_err(spawn_err)?;
    } else {
        drop(work_tx);
    }
    std::thread::Builder::new()
        .name("isogate-diode-send".into())
        .spawn(move || {
            run(
                sender,
                work_rx,
                udp,
                core,
                d.peer,
                Book::new(held, keep_ms, d.repeat_window_ms),
            )
        })
        .map_err(spawn_err)
}

/// The delay budget of the stream blocks: the smallest `delay_ms` of the stream channels
/// this node sends on the diode (a block closes after half of it), or [`STREAM_DELAY_MS`].
fn stream_delay_ms(cfg: &crate::node::config::Config) -> u64 {
    cfg.channels
        .iter()
        .filter(|c| c.link == LinkKind::Diode && c.role == crate::node::config::Role::Send)
        .filter_map(|c| c.stream.as_ref().map(|s| s.delay_ms))
        .min()
        .unwrap_or(STREAM_DELAY_MS)
}

/// Objects announced per second at most.
const ANNOUNCE_PER_TICK: usize = 64;
/// Most objects announced in all (the oldest retired ones drop out first).
const MAX_ANNOUNCED: usize = 65_536;
/// A retired object is announced this long at least, held or not.
const ANNOUNCE_RETIRED_MS: u64 = 600_000;
/// How often the latest checkpoint is sent again.
const CHECKPOINT_EVERY_MS: u64 = 5_000;
/// How often held copies past their time are removed.
const PRUNE_EVERY_MS: u64 = 10_000;

/// What the sender announces: every object in flight, and retired ones while held.
struct Announced {
    object_seq: u64,
    channel: String,
    name: String,
    size: u64,
    /// `Some(until)`: retired, announced until then ([`crate::mono_ms`]).
    retired_until: Option<u64>,
}

/// The announcement book, the held copies and the periodic work beside the data.
struct Book {
    held: Held,
    keep_ms: u64,
    /// `[diode] repeat_window_s` in ms.
    window_ms: u64,
    objects: BTreeMap<ObjectId, Announced>,
    /// Retired ids, oldest first, to drop from when the book is full (may hold stale ids).
    retired_order: VecDeque<ObjectId>,
    next_seq: u64,
    cursor: Option<ObjectId>,
    /// Deadlines on the monotonic clock.
    next_tick: u64,
    next_prune: u64,
    checkpoint: Option<Vec<u8>>,
    next_checkpoint: u64,
    /// Held copies retired by this run, with the monotonic time of their retirement: kept
    /// `keep_ms` whatever the wall clock does (at most [`MAX_ANNOUNCED`]; beyond, the wall
    /// time decides).
    young: HashMap<ObjectId, u64>,
}

impl Book {
    fn new(held: Held, keep_ms: u64, window_ms: u64) -> Self {
        let mut b = Book {
            held,
            keep_ms,
            window_ms,
            objects: BTreeMap::new(),
            retired_order: VecDeque::new(),
            next_seq: 0,
            cursor: None,
            next_tick: 0,
            next_prune: 0,
            checkpoint: None,
            next_checkpoint: 0,
            young: HashMap::new(),
        };
        // what an earlier run retired and still holds is announced again, for what is left
        // of its time by the wall clock (never more than the whole time: a clock stepped
        // back does not stretch it)
        let (wall, mono) = (crate::now_ms(), crate::mono_ms());
        let announce_ms = keep_ms.max(ANNOUNCE_RETIRED_MS);
        for h in b.held.list() {
            let left = h
                .retired_ms
                .saturating_add(announce_ms)
                .saturating_sub(wall)
                .min(announce_ms);
            let until = mono.saturating_add(left);
            b.note(
                &h.spooled.channel,
                h.spooled.id,
                &h.spooled.name,
                h.size,
                Some(until),
            );
        }
        b
    }

    /// Notes that `id` was retired now (`mono`, [`crate::mono_ms`]) by this run.
    fn retired_now(&mut self, id: ObjectId, mono: u64) {
        if self.young.len() < MAX_ANNOUNCED || self.young.contains_key(&id) {
            self.young.insert(id, mono);
        }
    }

    fn note(
        &mut self,
        channel: &str,
        id: ObjectId,
        name: &str,
        size: u64,
        retired_until: Option<u64>,
    ) {
        if retired_until.is_some() {
            self.retired_order.push_back(id);
        }
        if let Some(a) = self.objects.get_mut(&id) {
            a.retired_until = retired_until;
            return;
        }
        while self.objects.len() >= MAX_ANNOUNCED {
            // drop the oldest retired one still announced
            let Some(old) = self.retired_order.pop_front() else {
                return;
            };
            if self
                .objects
                .get(&old)
                .is_some_and(|a| a.retired_until.is_some())
            {
                self.objects.remove(&old);
            }
        }
        self.objects.insert(
            id,
            Announced {
                object_seq: self.next_seq,
                channel: channel.to_string(),
                name: cut(name, MAX_ANNOUNCE_NAME),
                size,
                retired_until,
            },
        );
        self.next_seq += 1;
    }

    fn control(id: ObjectId, a: &Announced) -> Control {
        Control::Announce {
            id,
            object_seq: a.object_seq,
            size: a.size,
            retired: a.retired_until.is_some(),
            channel: a.channel.clone(),
            name: a.name.clone(),
        }
    }

    /// Announces one object now (it just started or retired).
    fn announce_now(&self, core: &mut Core, id: ObjectId) {
        if let Some(a) = self.objects.get(&id) {
            let _ = core.send_control(Self::control(id, a));
        }
    }

    /// The work done once a second: announcements, checkpoints, resend requests, pruning.
    fn tick(
        &mut self,
        owner: &Sender,
        core: &mut Core,
        sending: &mut HashMap<ObjectId, Sending>,
        notes: &mut tokio::sync::watch::Receiver<Option<String>>,
    ) {
        let now = crate::mono_ms();
        if notes.has_changed().unwrap_or(false) {
            self.checkpoint = notes.borrow_and_update().clone().map(String::into_bytes);
            self.next_checkpoint = now;
        }
        if now >= self.next_checkpoint
            && let Some(note) = &self.checkpoint
        {
            self.next_checkpoint = now + CHECKPOINT_EVERY_MS;
            if let Err(e) = core.send_control(Control::Checkpoint(note.clone())) {
                tracing::warn!(error = %e, "the audit checkpoint cannot cross the diode");
            }
        }
        if now < self.next_tick {
            return;
        }
        self.next_tick = now + 1000;
        self.objects
            .retain(|_, a| a.retired_until.is_none_or(|u| u > now));
        let objects = &self.objects;
        self.retired_order.retain(|id| objects.contains_key(id));
        // round robin from the cursor
        let start = self.cursor;
        let mut picked: Vec<ObjectId> = match start {
            Some(c) => self
                .objects
                .range((std::ops::Bound::Excluded(c), std::ops::Bound::Unbounded))
                .map(|(k, _)| *k)
                .take(ANNOUNCE_PER_TICK)
                .collect(),
            None => Vec::new(),
        };
        if picked.len() < ANNOUNCE_PER_TICK {
            let more = ANNOUNCE_PER_TICK - picked.len();
            let wrap: Vec<ObjectId> = self
                .objects
                .keys()
                .take_while(|k| start.is_none_or(|c| **k <= c))
                .take(more)
                .copied()
                .collect();
            picked.extend(wrap);
        }
        self.cursor = picked.last().copied();
        for id in picked {
            if let Some(a) = self.objects.get(&id)
                && core.send_control(Self::control(id, a)).is_err()
            {
                break;
            }
        }
        self.resend(owner, core, sending);
        if now >= self.next_prune {
            self.next_prune = now + PRUNE_EVERY_MS;
            // a copy retired by this run is timed on the monotonic clock; one from an
            // earlier run by the wall time it was retired at
            let (keep_ms, wall, young) = (self.keep_ms, crate::now_ms(), &self.young);
            let n = self.held.prune(|h| match young.get(&h.spooled.id) {
                Some(at) => now.saturating_sub(*at) >= keep_ms,
                None => wall.saturating_sub(h.retired_ms) >= keep_ms,
            });
            self.young.retain(|_, at| now.saturating_sub(*at) < keep_ms);
            if n > 0 {
                tracing::info!(
                    removed = n,
                    "held copies of retired objects past keep_sent_s removed"
                );
            }
        }
    }

    /// Answers the operator's resend requests: each held copy asked for goes back to the
    /// spool, is audited `resent` and queued.
    fn resend(
        &mut self,
        owner: &Sender,
        core: &mut Core,
        sending: &mut HashMap<ObjectId, Sending>,
    ) {
        let requests = self.held.take_requests();
        if requests.is_empty() {
            return;
        }
        let held = self.held.list();
        for (path, req) in requests {
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut lines = Vec::new();
            for h in held.iter().filter(|h| req.matches(h)) {
                lines.push(self.resend_one(owner, core, sending, h, &file));
            }
            for id in &req.ids {
                if held.iter().any(|h| h.spooled.id.to_string() == *id) {
                    continue;
                }
                let line = match ObjectId::parse(id) {
                    None => format!("{id}: not an object id"),
                    Some(oid) if sending.contains_key(&oid) => {
                        format!("{id}: still being sent; nothing to do")
                    }
                    Some(_) if self.held.in_any_spool(id) => {
                        format!("{id}: still in the spool; it is sent from there")
                    }
                    Some(_) => format!("object {id} is no longer held"),
                };
                lines.push(line);
            }
            if lines.is_empty() {
                lines.push("no held object matches".to_string());
            }
            self.held.answer(&path, &lines);
        }
    }

    fn resend_one(
        &mut self,
        owner: &Sender,
        core: &mut Core,
        sending: &mut HashMap<ObjectId, Sending>,
        h: &HeldEntry,
        file: &str,
    ) -> String {
        let id = h.spooled.id;
        let spooled = match self.held.restore(h) {
            Ok(s) => s,
            Err(e) => return format!("{id}: cannot be put back in the spool: {e}"),
        };
        let detail = format!("operator request {file}");
        let mut e = Entry::object(&spooled.channel, id, &spooled.name);
        e.size = Some(h.size);
        e.detail = Some(detail);
        e.peer = Some(owner.node.cfg.peer.name.clone());
        if let Err(err) = owner.node.audit.durable(Event::Resent, e) {
            // in the spool now: it is sent at the next start
            return format!("{id}: back in the spool, not audited ({err}); sent at the next start");
        }
        owner
            .node
            .metrics
            .diode_resent
            .with_label_values(&[h.spooled.channel.as_str()])
            .inc();
        let frame = std::fs::read(spooled.dir.join("manifest")).ok();
        let sealed = match frame
            .map(|f| crate::sender::seal::reload(spooled.clone(), f, &owner.node.keys.own_key()))
        {
            // through the approval desk, as every sealed object: it goes at once only when
            // its approvals are complete under the rule in force, else it waits there
            Some(Ok(s)) => match owner.hold(s) {
                Ok(s) => s,
                Err(e) => return format!("{id}: back in the spool, not released ({e})"),
            },
            // the manifest was signed with a key since switched: inspect and seal again
            // (the pipeline ends at the same desk)
            _ => match owner.pipeline(spooled) {
                Ok(s) => s,
                Err(e) => return format!("{id}: back in the spool, not sealed ({e})"),
            },
        };
        let Some(sealed) = sealed else {
            return format!(
                "{id}: back in the spool; refused, or waiting for its inspection or its approvals (see the audit log and `isogate approvals list`)"
            );
        };
        tracing::info!(object = %id, channel = %h.spooled.channel, name = %h.spooled.name, "sent again at the operator's request");
        take(owner, core, sending, sealed, self);
        format!(
            "{id}: queued again ({} {})",
            h.spooled.channel, h.spooled.name
        )
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// A random 64-bit session id. It names this run's datagram key and its nonces' space
/// (`core::diode::tag`), so it must not repeat: from the system's generator or nothing.
fn random_session() -> Result<u64, DiodeError> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| DiodeError::NoRandom)?;
    Ok(u64::from_le_bytes(b))
}

/// An object being sent or within its repeat window: its seal, and its content file
/// while a pass of it is being read.
struct Sending {
    sealed: Sealed,
    /// The content, read through the data keys where the spool entry is sealed at rest.
    file: Option<Stored>,
    /// The node's data keys when the object was taken.
    data_keys: Option<Arc<DataKeys>>,
    /// The suite of the manifest's hashes (the node's).
    suite: Suite,
    /// Where no sealing at rest vouches for the copy: the chunk being read, whole and
    /// checked against the manifest (its index and bytes), while the pass is read.
    checked: Option<(usize, Vec<u8>)>,
    first_sent: bool,
}

impl Sending {
    /// Reads content at `offset` into `buf` (fewer bytes where a chunk ends), opening the
    /// spooled file if it is closed. A copy sealed at rest is the very sealing that was
    /// hashed, each chunk opening only under its key at its index; any other copy (a plain
    /// spool, a manifest reloaded after a restart) is read a chunk at a time, each checked
    /// against the manifest before any of its bytes goes to the core.
    ///
    /// # Errors
    /// Opening or reading failed; [`Changed`] (or a sealed chunk that does not open) when
    /// the copy is not what was sealed: the object is taken again.
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let file = match &mut self.file {
            Some(f) => f,
            none => {
                let f = crate::sender::spool::open_content(
                    self.sealed.spooled(),
                    self.data_keys.as_deref(),
                )?;
                // the sealing at rest that was hashed, or the object is taken again
                same_sealing(&f, self.sealed.sealed_as())?;
                none.insert(f)
            }
        };
        if self.sealed.sealed_as().is_some() {
            return file.read_at(buf, offset);
        }
        let manifest = self.sealed.manifest();
        let chunk = u64::from(manifest.chunk_size.max(1));
        let index = usize::try_from(offset / chunk).unwrap_or(usize::MAX);
        let checked = match &mut self.checked {
            Some((i, bytes)) if *i == index => bytes,
            other => {
                let bytes = read_checked_chunk(file, manifest, index, self.suite)?;
                &mut other.insert((index, bytes)).1
            }
        };
        let at = usize::try_from(offset % chunk).unwrap_or(usize::MAX);
        let ahead = checked.get(at..).unwrap_or_default();
        let n = ahead.len().min(buf.len());
        buf.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(ahead.get(..n).unwrap_or_default());
        Ok(n)
    }

    /// The pass is read: its file closed and its checked chunk dropped (the next pass
    /// opens and checks again).
    fn close(&mut self) {
        self.file = None;
        self.checked = None;
    }
}

/// Takes what woke the thread: a frame goes to the core at once, an object is taken.
fn work(
    owner: &Sender,
    sender: &mut Core,
    sending: &mut HashMap<ObjectId, Sending>,
    book: &mut Book,
    w: Work,
) {
    match w {
        Work::Object(s) => take(owner, sender, sending, *s, book),
        Work::Frame(f) => {
            if let Err(e) = sender.push_stream(crate::mono_ms(), &f) {
                crate::ops::repeat::error_repeated!("diode.stream", &e.to_string();
                    error = %e, "a stream frame cannot cross the diode; dropped");
            }
        }
    }
}

fn run(
    owner: Arc<Sender>,
    rx: Receiver<Work>,
    udp: Udp,
    mut sender: Core,
    peer: SocketAddr,
    mut book: Book,
) {
    let mut sending: HashMap<ObjectId, Sending> = HashMap::new();
    let mut notes = owner.node.audit.checkpoints();
    notes.mark_changed();
    let max_dgram = sender.max_datagram_len();
    let per_send = udp
        .max_segments()
        .min(64)
        .min(65_000 / max_dgram.max(1))
        .max(1);
    let mut batch: Vec<u8> = Vec::with_capacity(per_send * max_dgram);
    let mut segment = 0usize;
    let mut dgram = vec![0u8; max_dgram];
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        // wait for work: a new object, or the core's next deadline
        let now = crate::mono_ms();
        // the core counts in milliseconds: a deadline due now still waits one, so that a
        // pacer short of tokens is not polled in a busy loop
        let wait = if sender.wants().is_some() {
            0
        } else {
            sender
                .poll_timeout()
                .map_or(500, |t| t.saturating_sub(now))
                .clamp(1, 500)
        };
        match rx.recv_timeout(Duration::from_millis(wait)) {
            Ok(w) => work(&owner, &mut sender, &mut sending, &mut book, w),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while let Ok(w) = rx.try_recv() {
            work(&owner, &mut sender, &mut sending, &mut book, w);
        }
        book.tick(&owner, &mut sender, &mut sending, &mut notes);
        // produce and send whatever the pacer allows now
        loop {
            // frames that came meanwhile go first
            while let Ok(w) = rx.try_recv() {
                work(&owner, &mut sender, &mut sending, &mut book, w);
            }
            while let Some(w) = sender.wants() {
                let Some(s) = sending.get_mut(&w.id) else {
                    sender.cancel(w.id);
                    continue;
                };
                let n = w.max_len.min(chunk.len());
                let read = match s.read_at(&mut chunk[..n], w.offset) {
                    Err(e) if crate::keys::at_rest::is_tampered(&e) || Changed::is(&e) => {
                        // its sealed copy changed on disk, or another sealed copy took
                        // its place: taken again and inspected again, never sent as it is
                        sender.cancel(w.id);
                        if let Err(f) = owner.retake(s.sealed.spooled().clone(), &e.to_string()) {
                            tracing::error!(object = %w.id, error = %f, "could not record that the changed object is taken again");
                        }
                        continue;
                    }
                    Ok(0) | Err(_) => {
                        tracing::error!(object = %s.sealed.manifest().object_id, "cannot read the spooled content; the object is sent again at the next start");
                        sender.cancel(w.id);
                        continue;
                    }
                    Ok(r) => r,
                };
                if let Err(e) = sender.feed(w.id, w.offset, &chunk[..read]) {
                    tracing::error!(error = %e, "diode sender refused content");
                    sender.cancel(w.id);
                } else if w.offset + read as u64 >= s.sealed.manifest().size {
                    // the pass has read all it needs: closed now, not when its block is
                    // out (small objects share blocks: hundreds would stay open, each a
                    // descriptor and a buffer); the next pass opens it again
                    s.close();
                }
            }
            let len = match sender.poll_transmit(crate::mono_ms(), &mut dgram) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "diode sender failed");
                    break;
                }
            };
            if !batch.is_empty() && (len != segment || batch.len() + len > per_send * segment) {
                flush(&udp, peer, &mut batch, segment);
            }
            if batch.is_empty() {
                segment = len;
            }
            batch.extend_from_slice(&dgram[..len]);
            if len < segment {
                // a shorter datagram ends a GSO batch
                flush(&udp, peer, &mut batch, segment);
            }
        }
        flush(&udp, peer, &mut batch, segment);
        while let Some(ev) = sender.poll_event() {
            event(&owner, &mut sender, &mut sending, &mut book, ev);
        }
    }
}

fn flush(udp: &Udp, peer: SocketAddr, batch: &mut Vec<u8>, segment: usize) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = udp.send(peer, batch, segment) {
        // a diode has no way to know: the carousel's next copy is the remedy
        if e.raw_os_error() == Some(rustix::io::Errno::MSGSIZE.raw_os_error()) {
            // every datagram of that size fails alike: said at the 1st, 2nd, 4th, 8th…
            // failure with the count, not per batch
            use std::sync::atomic::{AtomicU64, Ordering};
            static FAILED: AtomicU64 = AtomicU64::new(0);
            let failed = FAILED.fetch_add(1, Ordering::Relaxed) + 1;
            if failed.is_power_of_two() {
                tracing::error!(peer = %peer, datagram = segment, failed, error = %e, "diode datagrams are longer than the interface toward the peer carries: [diode] mtu exceeds its MTU (set the path's MTU on both nodes)");
            }
        } else {
            tracing::warn!(peer = %peer, error = %e, "diode send failed");
        }
    }
    batch.clear();
}

/// Hands a sealed object to the core.
fn take(
    owner: &Sender,
    sender: &mut Core,
    sending: &mut HashMap<ObjectId, Sending>,
    sealed: Sealed,
    book: &mut Book,
) {
    let m = sealed.manifest();
    let id = m.object_id;
    if sending.contains_key(&id) {
        return;
    }
    // checked now, opened when its pass starts (a queued object holds no descriptor)
    let data_keys = owner.node.keys.data();
    let opened = crate::sender::spool::open_content(sealed.spooled(), data_keys.as_deref())
        .and_then(|f| Ok(same_sealing(&f, sealed.sealed_as())?));
    if let Err(e) = opened {
        if crate::keys::at_rest::is_tampered(&e) || Changed::is(&e) {
            // its sealed copy changed on disk (or another took its place): taken again,
            // inspected again (and refused where it no longer opens)
            if let Err(f) = owner.retake(sealed.spooled().clone(), &e.to_string()) {
                tracing::error!(object = %m.object_id, error = %f, "could not record that the changed object is taken again");
            }
            return;
        }
        tracing::error!(object = %m.object_id, error = %e, "cannot open the spooled content");
        return;
    }
    // a first pass made before a restart: only spare passes remain, until the window ends
    // (the mark is wall time: what is left of it, never more than a window from now,
    // whatever the clock or the mark said; the core counts on the monotonic clock)
    let (wall, mono) = (crate::now_ms(), crate::mono_ms());
    let window_end = Spool::sent_mark(sealed.spooled())
        .map(|end| mono.saturating_add(end.saturating_sub(wall).min(book.window_ms)));
    if window_end.is_some_and(|end| end <= mono) {
        if !retire(owner, &book.held, book.keep_ms, &sealed, wall) {
            return;
        }
        book.retired_now(id, mono);
        book.note(
            &m.channel,
            id,
            &m.name,
            m.size,
            Some(mono.saturating_add(book.keep_ms.max(ANNOUNCE_RETIRED_MS))),
        );
        book.announce_now(sender, id);
        return;
    }
    let queued = match window_end {
        Some(end) => sender.enqueue_repeat(id, sealed.frame().to_vec(), m.size, end),
        None => sender.enqueue(id, sealed.frame().to_vec(), m.size),
    };
    if let Err(e) = queued {
        tracing::error!(object = %m.object_id, error = %e, "diode sender refused the object; it is sent again at the next start");
        return;
    }
    book.note(&m.channel, id, &m.name, m.size, None);
    book.announce_now(sender, id);
    sending.insert(
        id,
        Sending {
            sealed,
            file: None,
            data_keys,
            suite: owner.node.cfg.node.suite,
            checked: None,
            first_sent: window_end.is_some(),
        },
    );
}

/// Acts on what the core reports.
fn event(
    owner: &Sender,
    core: &mut Core,
    sending: &mut HashMap<ObjectId, Sending>,
    book: &mut Book,
    ev: SenderEvent,
) {
    match ev {
        SenderEvent::ObjectSent { id, .. } => {
            let Some(s) = sending.get_mut(&id) else {
                return;
            };
            // the pass is out: the next one (if any) opens the file again
            s.close();
            if !s.first_sent {
                s.first_sent = true;
                let m = s.sealed.manifest();
                Sent {
                    subject: Subject {
                        channel: &m.channel,
                        id: m.object_id,
                        name: &m.name,
                        size: Some(m.size),
                        digest: Some(m.digest),
                    },
                    link: LinkKind::Diode,
                }
                .emit(owner.node.sink());
                // nothing comes back on a diode: a message batch is no longer on its way
                // once its first pass is out
                owner.in_flight.done(m.object_id);
                // after the record: a mark without its `sent` record would never get one
                if book.window_ms > 0 {
                    let end = crate::now_ms().saturating_add(book.window_ms);
                    if let Err(e) = Spool::mark_sent(s.sealed.spooled(), end) {
                        tracing::warn!(object = %m.object_id, error = %e, "cannot mark the first pass in the spool; a restart sends the object again in full");
                    }
                }
            }
        }
        SenderEvent::ObjectRetired { id } => {
            if let Some(s) = sending.remove(&id) {
                if !retire(owner, &book.held, book.keep_ms, &s.sealed, crate::now_ms()) {
                    // still in the spool: sent again at the next start, not announced retired
                    book.objects.remove(&id);
                    return;
                }
                let now = crate::mono_ms();
                book.retired_now(id, now);
                let m = s.sealed.manifest();
                let until = now.saturating_add(book.keep_ms.max(ANNOUNCE_RETIRED_MS));
                book.note(&m.channel, id, &m.name, m.size, Some(until));
                book.announce_now(core, id);
            }
        }
        SenderEvent::ObjectCancelled { id } => {
            sending.remove(&id);
            book.objects.remove(&id);
        }
    }
}

/// The last copy has gone out: audited durably as `retired` (a one-way link has no
/// receipt: nothing confirms it), then the spool entry becomes a held copy for
/// `isogate resend`, or goes when nothing is held, marked retired at `now` (wall time, ms
/// since the epoch). False when it could not be audited (it stays in the spool).
fn retire(owner: &Sender, held: &Held, keep_ms: u64, sealed: &Sealed, now: u64) -> bool {
    let m = sealed.manifest();
    let node = &owner.node;
    let mut e = Entry::object(&m.channel, m.object_id, &m.name);
    e.size = Some(m.size);
    e.digest = Some(m.digest);
    e.peer = Some(node.cfg.peer.name.clone());
    e.detail = Some(if keep_ms > 0 {
        format!(
            "diode: every copy sent; no return path, nothing confirms; held {} s for resend",
            keep_ms / 1000
        )
    } else {
        "diode: every copy sent; no return path, nothing confirms; not held".to_string()
    });
    if let Err(err) = node.audit.durable(Event::Retired, e) {
        tracing::error!(object = %m.object_id, error = %err, "cannot audit the retirement; the object stays in the spool");
        return false;
    }
    tracing::debug!(channel = %m.channel, name = %m.name, object = %m.object_id, "retired: every diode copy sent");
    node.metrics
        .diode_retired
        .with_label_values(&[m.channel.as_str()])
        .inc();
    let moved = if keep_ms > 0 {
        held.hold(sealed.spooled(), now)
    } else {
        owner.spool.remove(sealed.spooled())
    };
    if let Err(err) = moved {
        tracing::error!(object = %m.object_id, error = %err, "cannot move the retired object out of the spool; it is sent again at the next start");
    }
    true
}
