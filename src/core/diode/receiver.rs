//! The receiving side of the diode link as a state machine. Owns datagram
//! authentication and accounting, the sender session (adoption, restarts,
//! replayed datagrams), per-session duplicate suppression by sequence number,
//! the FEC reassembly window, unpacking blocks into object events, and dropping
//! copies of objects already complete. It never produces anything to send: the
//! link is one-way.
//!
//! ```text
//! datagram ─► size cap ─► tag ─► decode ─► session ─► replay window
//!                 │           │          │          │            │
//!              too_long    forged    malformed  stale_session duplicate
//!                          (claimed session named once: Unauthenticated)
//!   ─► Window (fec.rs: assemble, recover, in order, give up) ─► Unpacker (pack.rs)
//!   ─► events: ObjectStart / ObjectResume / ObjectData / ObjectComplete / ObjectLost / …
//!   stream symbols ─► StreamDecoder (stream.rs) ─► StreamFrame, at once
//! ```
//! Link parameters: each heartbeat states the sender's MTU, symbol size, block size
//! and configuration digest; the receiver checks them against its own (`agree.rs`)
//! and, when heartbeats arrive but none of the symbols sent between them (seq gaps,
//! no symbol), names a path whose MTU is below the configured one. Every change of
//! that list of disagreements is one [`ReceiverEvent::Mismatch`] (empty: agreed
//! again). A datagram that fails authentication but opens with this protocol's
//! header has its claimed session named once ([`ReceiverEvent::Unauthenticated`]),
//! at most one new session per [`UNAUTHENTICATED_REPORT_MS`]: the sign of a sender
//! with another datagram key.
//!
//! ```text
//! heartbeat(params) ─► agree::check ─┐
//! heartbeats, seq gaps, no symbol ───┴─► list changed? ─► Mismatch(list)
//! bad tag ─► claimed header ─► session not named yet, not within 10 s ─► Unauthenticated
//! ```
//!
//! Sessions: the first authenticated datagram picks the session. Only a
//! heartbeat (which carries its session's start time) can replace it: one from a
//! session that started later than the current one, or any when the current one
//! has been silent for `session_idle_ms` or its start time is not yet known.
//! Every other datagram of another session (a replay from an old one) is counted
//! as `datagrams_stale_session` and dropped. Limit: a receiver that has not yet
//! heard its sender can be fed a replayed old session until the real sender's
//! next heartbeat; the shell's durable record of delivered object
//! ids and the manifest checks downstream catch what such a replay delivers.
//!
//! What is lost is known: the sender announces each object it holds (id, channel,
//! name, size, its number in the session) and, once retired, announces it again
//! with the retired flag and the block bound below which all its copies were
//! sent. A retired object that did not complete here, once every block below its
//! bound has been delivered or given up, is reported once as
//! [`ReceiverEvent::ObjectMissed`], even if this receiver saw nothing of it (it
//! was down while it crossed). Datagram sequence numbers that never arrived are
//! counted as `datagrams_missed`. Signed audit checkpoints of the sender arrive as
//! [`ReceiverEvent::Checkpoint`], each distinct note once in a row.
//!
//! ```text
//! announce(retired, bound) ─► pending ─► window past bound? ─► complete? ─► drop
//!                                                    │              no ─► ObjectMissed
//! ```

use std::collections::{HashSet, VecDeque};

use bytes::Bytes;

use super::agree::{self, Mismatch};
use super::fec::{Delivery, REPAIR_SLACK, SymbolOutcome, Window};
use super::pack::{LossReason, MAX_HEADER, ObjectEvent, Unpacker};
use super::stream::StreamDecoder;
use super::wire::{self, Announce, Body, Heartbeat, LinkKey, WireError};
use super::{ConfigError, ObjectId};
use crate::keys::suite::Suite;

/// Receiver configuration (see [`ReceiverConfig::new`] for the defaults).
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// The link key shared with the sender.
    pub key: [u8; 32],
    /// The pair's suite: whose tag every datagram carries (`core::diode::tag`).
    pub suite: Suite,
    /// IPv4 MTU of the path: longer datagrams are refused.
    pub mtu: usize,
    /// Blocks held at once in the reassembly window (reordering tolerance).
    pub window_blocks: usize,
    /// An incomplete oldest block is given up after this long without a new symbol.
    pub block_timeout_ms: u64,
    /// Largest block (K·T bytes) accepted.
    pub max_block_bytes: usize,
    /// Largest object header accepted (at most 16 MiB).
    pub max_header_bytes: usize,
    /// A silent session may be replaced by any other after this long.
    pub session_idle_ms: u64,
    /// How many completed object ids are remembered to drop later copies.
    pub remember_objects: usize,
    /// This node's digest of the settings both ends must share
    /// ([`config_digest`](super::agree::config_digest)).
    pub config_digest: [u8; wire::CONFIG_DIGEST_LEN],
}

impl ReceiverConfig {
    /// Defaults: window 8 blocks, 2 s block timeout, blocks up to 16 MiB, headers
    /// up to 16 MiB, sessions idle after 10 s, 65 536 remembered ids.
    pub fn new(key: [u8; 32], mtu: usize) -> Self {
        Self {
            key,
            suite: Suite::Default,
            mtu,
            window_blocks: 8,
            block_timeout_ms: 2000,
            max_block_bytes: 16 << 20,
            max_header_bytes: MAX_HEADER,
            session_idle_ms: 10_000,
            remember_objects: 65_536,
            config_digest: [0; wire::CONFIG_DIGEST_LEN],
        }
    }
}

/// What the receiver tells the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverEvent {
    /// The first session was seen (the sender's random session id).
    SessionStarted {
        /// Session id.
        session: u64,
    },
    /// The sender restarted: a new session replaced `old`. Objects in flight were
    /// reported lost just before this event.
    SessionRestarted {
        /// Previous session id.
        old: u64,
        /// New session id.
        new: u64,
    },
    /// A heartbeat arrived: the link is alive.
    HeartbeatSeen(Heartbeat),
    /// An object begins: open a part file.
    ObjectStart {
        /// Object id.
        id: ObjectId,
        /// Opaque header (the signed manifest frame).
        header: Vec<u8>,
        /// Content size.
        size: u64,
        /// Which carousel copy (0-based).
        copy: u8,
    },
    /// Content bytes, in order and without gaps for this object.
    ObjectData {
        /// Object id.
        id: ObjectId,
        /// Offset in the content.
        offset: u64,
        /// The bytes (a zero-copy slice of a recovered block).
        bytes: Bytes,
    },
    /// The whole object arrived (exactly once per id while it is remembered).
    ObjectComplete {
        /// Object id.
        id: ObjectId,
    },
    /// This copy of the object was lost. Unless `kept`, discard the part file; unless
    /// `last_copy`, a later copy may start it again. May follow an object whose
    /// `ObjectStart` was never emitted (its header was incomplete).
    ObjectLost {
        /// Object id.
        id: ObjectId,
        /// Why.
        why: LossReason,
        /// Whether the sender sends no further copy.
        last_copy: bool,
        /// Whether the bytes written so far stay good: keep the part file, a later copy
        /// resumes after them ([`ReceiverEvent::ObjectResume`]). Where the shell cannot
        /// keep them, it calls [`Receiver::forget_kept`]. At most
        /// [`KEEP_LOST`](super::pack::KEEP_LOST) objects are kept; a later copy of one
        /// forgotten comes as `ObjectStart` (start over).
        kept: bool,
    },
    /// A later copy of a kept object (`ObjectLost` with `kept`) continues it, in place of
    /// `ObjectStart`: its signed header is the same (SHA-256), and its `ObjectData`
    /// follows from content offset `offset`, where the kept bytes end. A shell that has
    /// no such bytes must not take this copy (see [`Receiver::forget_kept`]).
    ObjectResume {
        /// Object id.
        id: ObjectId,
        /// Content bytes already held.
        offset: u64,
    },
    /// The sender retired an object that never completed here: no further copy
    /// comes unless an operator sends it again. Reported once per id while it is
    /// remembered; the shell checks its own durable record before auditing it.
    ObjectMissed {
        /// Object id.
        id: ObjectId,
        /// Channel, as the sender announced it (lossy UTF-8, not trusted).
        channel: String,
        /// Base name, as the sender announced it (lossy UTF-8, not trusted).
        name: String,
        /// Content size in bytes.
        size: u64,
        /// The object's number in the sender's session.
        object_seq: u64,
    },
    /// A signed checkpoint of the sender's audit log arrived (not yet verified:
    /// the shell checks its signature before witnessing it).
    Checkpoint(Vec<u8>),
    /// The ways the sender's settings do not fit this receiver changed: the whole
    /// list now, in a stable order (empty: they fit again).
    Mismatch(Vec<Mismatch>),
    /// Datagrams claiming `session` fail authentication (another datagram key, suite or
    /// release, or forged), or speak an earlier protocol version: named once per session
    /// id, at most one new one per [`UNAUTHENTICATED_REPORT_MS`].
    Unauthenticated {
        /// The session id their header claims (not authenticated).
        session: u64,
        /// Whether the first one had a heartbeat's kind and length.
        heartbeat: bool,
        /// The protocol version their header claims: another than [`wire::VERSION`] is a
        /// sender of another isogate release, whose tags this one does not make.
        version: u8,
        /// The other suite, when the first one's tag is that suite's tag under this
        /// link's key: the sender runs another suite than this receiver.
        tagged_by: Option<Suite>,
    },
    /// A live stream frame arrived (as its source symbols came, or recovered from its
    /// block's repair symbols): opaque bytes for the stream receiver, not in order,
    /// possibly late (its playout decides).
    StreamFrame(Vec<u8>),
}

/// Least milliseconds between two [`ReceiverEvent::Unauthenticated`] reports.
pub const UNAUTHENTICATED_REPORT_MS: u64 = 10_000;
/// Most unauthenticated session ids remembered as reported.
const UNAUTHENTICATED_REMEMBERED: usize = 256;
/// Heartbeats without a symbol, and datagrams missed since the last symbol, before a
/// path that drops full-size datagrams is named.
const NO_DATA_HEARTBEATS: u32 = 3;
const NO_DATA_MISSED: u64 = 4;

impl From<ObjectEvent> for ReceiverEvent {
    fn from(e: ObjectEvent) -> Self {
        match e {
            ObjectEvent::Start {
                id,
                header,
                size,
                copy,
                ..
            } => Self::ObjectStart {
                id,
                header,
                size,
                copy,
            },
            ObjectEvent::Data { id, offset, bytes } => Self::ObjectData { id, offset, bytes },
            ObjectEvent::Complete { id } => Self::ObjectComplete { id },
            ObjectEvent::Resume { id, offset } => Self::ObjectResume { id, offset },
            ObjectEvent::Lost {
                id,
                why,
                last_copy,
                kept,
            } => Self::ObjectLost {
                id,
                why,
                last_copy,
                kept,
            },
        }
    }
}

/// Receiver counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Authenticated datagrams of the current session, accepted.
    pub datagrams_ok: u64,
    /// Datagrams whose tag did not verify (wrong key, forged, damaged).
    pub datagrams_forged: u64,
    /// Datagrams too short, or authenticated but not well-formed.
    pub datagrams_malformed: u64,
    /// Datagrams longer than this receiver's MTU allows (the whole datagram, or a
    /// symbol too long for it).
    pub datagrams_too_long: u64,
    /// Authenticated symbols of blocks larger than this receiver accepts.
    pub datagrams_block_too_large: u64,
    /// Datagrams with a heartbeat's kind and length whose tag did not verify (part
    /// of `datagrams_forged`).
    pub heartbeats_unauthenticated: u64,
    /// Datagrams already seen in this session (duplicated or replayed).
    pub datagrams_duplicate: u64,
    /// Authenticated datagrams of another session that did not replace it.
    pub datagrams_stale_session: u64,
    /// Symbols for blocks already delivered or given up.
    pub symbols_stale: u64,
    /// Symbols not needed (block already recovered, or enough stored).
    pub symbols_unneeded: u64,
    /// Blocks whose source symbols all arrived (no decoding).
    pub blocks_without_repair: u64,
    /// Blocks recovered by RaptorQ decoding.
    pub blocks_with_repair: u64,
    /// Blocks given up.
    pub blocks_lost: u64,
    /// Repair symbols that stood in for lost source symbols.
    pub repair_symbols_used: u64,
    /// Objects complete.
    pub objects_complete: u64,
    /// Object copies lost.
    pub objects_lost: u64,
    /// Later copies that resumed a kept lost one after its kept bytes.
    pub objects_resumed: u64,
    /// Copies of already complete objects, dropped.
    pub objects_duplicate: u64,
    /// Records of objects whose start was not seen.
    pub orphan_records: u64,
    /// Recovered blocks whose records did not parse.
    pub malformed_blocks: u64,
    /// Sender restarts seen.
    pub sessions_restarted: u64,
    /// Bytes held in the reassembly window now.
    pub buffered_bytes: u64,
    /// Most bytes ever held in the reassembly window.
    pub buffered_bytes_peak: u64,
    /// Datagram sequence numbers skipped and not (yet) filled in, over all sessions.
    pub datagrams_missed: u64,
    /// Distinct objects announced by the sender.
    pub objects_announced: u64,
    /// Objects the sender retired that never completed here.
    pub objects_missed: u64,
    /// Checkpoint frames received.
    pub checkpoints: u64,
    /// Stream frames delivered.
    pub stream_frames: u64,
    /// Of them, frames recovered from repair symbols.
    pub stream_frames_recovered: u64,
    /// Stream symbols for blocks already forgotten, or not needed.
    pub stream_symbols_unneeded: u64,
    /// Stream symbols that contradict their block.
    pub stream_symbols_malformed: u64,
}

/// Sliding bitmap of recently seen sequence numbers.
#[derive(Debug)]
struct ReplayWindow {
    top: u64,
    bits: Vec<u64>,
}

const REPLAY_WORDS: usize = 64;
const REPLAY_SPAN: u64 = REPLAY_WORDS as u64 * 64;

impl ReplayWindow {
    fn new() -> Self {
        Self {
            top: 0,
            bits: vec![0; REPLAY_WORDS],
        }
    }

    fn bit(seq: u64) -> (usize, u64) {
        (
            ((seq / 64) % REPLAY_WORDS as u64) as usize,
            1u64 << (seq % 64),
        )
    }

    /// Records `seq`; false if it was seen already or is too old to tell.
    fn check_and_set(&mut self, seq: u64) -> bool {
        if seq >= self.top {
            if seq - self.top >= REPLAY_SPAN {
                self.bits.iter_mut().for_each(|w| *w = 0);
            } else {
                for s in self.top..=seq {
                    let (w, m) = Self::bit(s);
                    self.bits[w] &= !m;
                }
            }
            self.top = seq + 1;
        } else if self.top - seq > REPLAY_SPAN {
            return false;
        }
        let (w, m) = Self::bit(seq);
        if self.bits[w] & m != 0 {
            return false;
        }
        self.bits[w] |= m;
        true
    }
}

#[derive(Debug)]
struct Session {
    id: u64,
    start_ms: Option<u64>,
    last_seen: u64,
    replay: ReplayWindow,
    /// First sequence number seen and datagrams accepted: the gap count.
    first_seq: Option<u64>,
    accepted: u64,
    /// `(replay.top, accepted)` at the last symbol (or the first heartbeat).
    data_mark: Option<(u64, u64)>,
    /// Heartbeats since the last symbol that count towards `no_data` (see `handle`).
    heartbeats_without_data: u32,
    /// Datagrams missed since `data_mark`, as the last heartbeat found them.
    missed_at_heartbeat: u64,
    /// Whether any symbol of this session arrived.
    any_symbol: bool,
}

impl Session {
    fn missed(&self) -> u64 {
        self.first_seq.map_or(0, |f| {
            self.replay
                .top
                .saturating_sub(f)
                .saturating_sub(self.accepted)
        })
    }
}

/// A retired object waiting for the blocks below its bound to be settled.
#[derive(Debug)]
struct Pending {
    id: ObjectId,
    block_bound: u64,
    channel: String,
    name: String,
    size: u64,
    object_seq: u64,
}

/// A bounded set that forgets its oldest members.
#[derive(Debug)]
struct Recent {
    set: HashSet<ObjectId>,
    order: VecDeque<ObjectId>,
    cap: usize,
}

impl Recent {
    fn new(cap: usize) -> Self {
        Self {
            set: HashSet::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    fn contains(&self, id: &ObjectId) -> bool {
        self.set.contains(id)
    }

    /// Adds `id`; false if it was there already.
    fn insert(&mut self, id: ObjectId) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// Most retired objects waiting to be judged at once; later ones wait for the
/// sender's next announcement.
const MAX_PENDING: usize = 4096;

/// The receiving state machine: feed it datagrams with [`handle`](Self::handle),
/// call [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout),
/// and drain [`poll_event`](Self::poll_event).
#[derive(Debug)]
pub struct Receiver {
    key: LinkKey,
    /// The same key under the other suite's tag: tried only on a datagram about to be
    /// reported unauthenticated, to say that the sender runs another suite.
    other_suite: LinkKey,
    /// Where each datagram is opened (its body decrypted) and decoded from.
    plain: Vec<u8>,
    max_len: usize,
    max_block_bytes: usize,
    session_idle_ms: u64,
    session: Option<Session>,
    window: Window,
    unpacker: Unpacker,
    events: VecDeque<ReceiverEvent>,
    stats: ReceiverStats,
    announced: Recent,
    missed: Recent,
    pending: Vec<Pending>,
    last_checkpoint: Vec<u8>,
    missed_before: u64,
    local: agree::Local,
    /// Disagreements found in the latest heartbeat's link parameters.
    param_mismatches: Vec<Mismatch>,
    /// A path that drops full-size datagrams, while named.
    no_data: Option<Mismatch>,
    /// The list last reported.
    reported: Vec<Mismatch>,
    /// Unauthenticated session ids already named, oldest first.
    unauthenticated: VecDeque<u64>,
    next_unauthenticated_report: u64,
    stream: StreamDecoder,
}

impl Receiver {
    /// A receiver with no session yet.
    pub fn new(config: ReceiverConfig) -> Result<Self, ConfigError> {
        let max_len = wire::max_payload(config.mtu);
        if wire::symbol_size_for_mtu(config.mtu).is_none() {
            return Err(ConfigError::MtuTooSmall(config.mtu));
        }
        if config.window_blocks == 0 {
            return Err(ConfigError::ZeroLimit("window_blocks"));
        }
        if config.block_timeout_ms == 0 {
            return Err(ConfigError::ZeroLimit("block_timeout_ms"));
        }
        if config.max_block_bytes == 0 {
            return Err(ConfigError::ZeroLimit("max_block_bytes"));
        }
        if config.remember_objects == 0 {
            return Err(ConfigError::ZeroLimit("remember_objects"));
        }
        Ok(Self {
            key: LinkKey::for_suite(config.suite, &config.key),
            other_suite: LinkKey::for_suite(
                match config.suite {
                    Suite::Default => Suite::Gm,
                    Suite::Gm => Suite::Default,
                },
                &config.key,
            ),
            plain: Vec::with_capacity(max_len),
            max_len,
            max_block_bytes: config.max_block_bytes,
            session_idle_ms: config.session_idle_ms,
            session: None,
            window: Window::new(config.window_blocks, config.block_timeout_ms),
            unpacker: Unpacker::new(config.remember_objects, config.max_header_bytes),
            events: VecDeque::new(),
            stats: ReceiverStats::default(),
            announced: Recent::new(config.remember_objects),
            missed: Recent::new(config.remember_objects),
            pending: Vec::new(),
            last_checkpoint: Vec::new(),
            missed_before: 0,
            local: agree::Local {
                mtu: config.mtu,
                max_block_bytes: config.max_block_bytes,
                config_digest: config.config_digest,
            },
            param_mismatches: Vec::new(),
            no_data: None,
            reported: Vec::new(),
            unauthenticated: VecDeque::new(),
            next_unauthenticated_report: 0,
            stream: StreamDecoder::new(),
        })
    }

    /// Counters.
    pub fn stats(&self) -> ReceiverStats {
        let mut s = self.stats;
        let u = self.unpacker.stats();
        s.objects_duplicate = u.duplicate_objects;
        s.orphan_records = u.orphan_records;
        s.malformed_blocks = u.malformed_blocks;
        s.buffered_bytes = (self.window.buffered_bytes() + self.unpacker.buffered_bytes()) as u64;
        s.buffered_bytes_peak = self.window.peak_bytes() as u64;
        s.datagrams_missed = self.missed_before + self.session.as_ref().map_or(0, |x| x.missed());
        let st = self.stream.stats();
        s.stream_frames = st.frames;
        s.stream_frames_recovered = st.frames_recovered;
        s.stream_symbols_unneeded = st.symbols_stale + st.symbols_unneeded;
        s.stream_symbols_malformed = st.symbols_malformed;
        s
    }

    /// The current session id, once one has been seen.
    pub fn session(&self) -> Option<u64> {
        self.session.as_ref().map(|s| s.id)
    }

    /// The most bytes a reassembly window of `window_blocks` can hold for blocks
    /// of `block_bytes` in `symbol_size` symbols: `window × (block + stored repair)`.
    pub fn memory_bound(window_blocks: usize, block_bytes: usize, symbol_size: usize) -> usize {
        let k = block_bytes / symbol_size.max(1);
        window_blocks * (block_bytes + (k + REPAIR_SLACK) * symbol_size)
    }

    /// Takes one datagram. Bad input is counted and dropped, never an error.
    pub fn handle(&mut self, now_ms: u64, datagram: &[u8]) {
        // opened into a buffer kept across datagrams, lent out while this one is handled
        let mut plain = std::mem::take(&mut self.plain);
        self.handle_in(now_ms, datagram, &mut plain);
        self.plain = plain;
    }

    /// [`Receiver::handle`], opening `datagram` into `plain`.
    fn handle_in(&mut self, now_ms: u64, datagram: &[u8], plain: &mut Vec<u8>) {
        if datagram.len() > self.max_len {
            self.stats.datagrams_too_long += 1;
            return;
        }
        let d = match wire::decode(&self.key, datagram, plain) {
            Ok(d) => d,
            Err(WireError::BadTag) => {
                self.stats.datagrams_forged += 1;
                self.unauthenticated(now_ms, datagram);
                return;
            }
            // authentic under this key but of an earlier release (a gm pair's version 1
            // had the same HMAC-SM3 tag): named with its version, as a forged one is
            Err(WireError::UnsupportedVersion(_)) => {
                self.stats.datagrams_malformed += 1;
                self.unauthenticated(now_ms, datagram);
                return;
            }
            Err(_) => {
                self.stats.datagrams_malformed += 1;
                return;
            }
        };
        if let Body::Stream(s) = &d.body
            && !wire::symbol_size_ok(s.symbol_size, self.max_len)
        {
            self.stats.datagrams_too_long += 1;
            return;
        }
        if let Body::Symbol(s) = &d.body {
            let block_bytes = usize::from(s.source_symbols) * usize::from(s.symbol_size);
            if !wire::symbol_size_ok(s.symbol_size, self.max_len) {
                self.stats.datagrams_too_long += 1;
                return;
            }
            if block_bytes > self.max_block_bytes {
                self.stats.datagrams_block_too_large += 1;
                return;
            }
        }
        if !self.accept_session(now_ms, d.header.session, &d.body) {
            self.stats.datagrams_stale_session += 1;
            return;
        }
        let Some(session) = self.session.as_mut() else {
            return;
        };
        if !session.replay.check_and_set(d.header.seq) {
            self.stats.datagrams_duplicate += 1;
            return;
        }
        session.last_seen = now_ms;
        session.first_seq = Some(
            session
                .first_seq
                .map_or(d.header.seq, |f| f.min(d.header.seq)),
        );
        session.accepted += 1;
        self.stats.datagrams_ok += 1;
        let mark = (session.replay.top, session.accepted);
        match d.body {
            Body::Heartbeat(hb) => {
                let (top, accepted) = *session.data_mark.get_or_insert(mark);
                let missed = mark
                    .0
                    .saturating_sub(top)
                    .saturating_sub(mark.1.saturating_sub(accepted));
                // a heartbeat counts while no symbol of this session ever arrived, or when
                // it finds more missed than the last one: the tail of a transfer lost once,
                // then an idle sender, is not a starved path
                if !session.any_symbol || missed > session.missed_at_heartbeat {
                    session.heartbeats_without_data =
                        session.heartbeats_without_data.saturating_add(1);
                }
                session.missed_at_heartbeat = missed;
                let starved = missed >= NO_DATA_MISSED
                    && session.heartbeats_without_data >= NO_DATA_HEARTBEATS;
                self.events.push_back(ReceiverEvent::HeartbeatSeen(hb));
                self.window.note_sent(now_ms, hb.blocks_sent);
                self.param_mismatches = hb
                    .link
                    .map(|p| agree::check(&self.local, &p))
                    .unwrap_or_default();
                if starved && self.no_data.is_none() {
                    self.no_data = Some(Mismatch::NoData {
                        sender: hb.link.map(|p| p.mtu),
                        receiver: self.local.mtu,
                        missed,
                    });
                }
                self.report_mismatches();
            }
            Body::Announce(a) => self.announce(&a),
            Body::Checkpoint(note) => {
                self.stats.checkpoints += 1;
                if note != self.last_checkpoint.as_slice() {
                    self.last_checkpoint = note.to_vec();
                    self.events
                        .push_back(ReceiverEvent::Checkpoint(note.to_vec()));
                }
            }
            Body::Stream(s) => {
                // stream symbols are data too: a path that carries them is not starved
                session.data_mark = Some(mark);
                session.heartbeats_without_data = 0;
                session.missed_at_heartbeat = 0;
                session.any_symbol = true;
                if self.no_data.take().is_some() {
                    self.report_mismatches();
                }
                self.stream.symbol(&s);
                while let Some(frame) = self.stream.poll_frame() {
                    self.events.push_back(ReceiverEvent::StreamFrame(frame));
                }
            }
            Body::Symbol(s) => {
                session.data_mark = Some(mark);
                session.heartbeats_without_data = 0;
                session.missed_at_heartbeat = 0;
                session.any_symbol = true;
                if self.no_data.take().is_some() {
                    self.report_mismatches();
                }
                match self.window.symbol(
                    now_ms,
                    s.block,
                    s.source_symbols,
                    s.symbol_size,
                    s.esi,
                    s.data,
                ) {
                    SymbolOutcome::Stale => self.stats.symbols_stale += 1,
                    SymbolOutcome::Unneeded => self.stats.symbols_unneeded += 1,
                    SymbolOutcome::Mismatch => {
                        self.stats.datagrams_ok -= 1;
                        self.stats.datagrams_malformed += 1;
                    }
                    SymbolOutcome::Stored | SymbolOutcome::Recovered => {}
                }
            }
        }
        self.drain_window();
    }

    /// Names the claimed session of a datagram that failed authentication (or, on a `gm`
    /// pair, authenticated but spoke an earlier version), once per session id and at most
    /// one new one per [`UNAUTHENTICATED_REPORT_MS`].
    fn unauthenticated(&mut self, now_ms: u64, datagram: &[u8]) {
        let Some(c) = wire::claimed(datagram) else {
            return;
        };
        if c.heartbeat {
            self.stats.heartbeats_unauthenticated += 1;
        }
        if self.unauthenticated.contains(&c.session) || now_ms < self.next_unauthenticated_report {
            return;
        }
        if self.unauthenticated.len() >= UNAUTHENTICATED_REMEMBERED {
            self.unauthenticated.pop_front();
        }
        self.unauthenticated.push_back(c.session);
        self.next_unauthenticated_report = now_ms.saturating_add(UNAUTHENTICATED_REPORT_MS);
        // another release's datagrams are not tried under the other suite: their tags differ
        let tagged_by = (c.version == wire::VERSION
            && wire::decode(&self.other_suite, datagram, &mut Vec::new()).is_ok())
        .then(|| self.other_suite.suite());
        self.events.push_back(ReceiverEvent::Unauthenticated {
            session: c.session,
            heartbeat: c.heartbeat,
            version: c.version,
            tagged_by,
        });
    }

    /// Reports the list of disagreements when it changed.
    fn report_mismatches(&mut self) {
        let mut now: Vec<Mismatch> = self.param_mismatches.clone();
        // symbols too long for this receiver explain missing data already
        let explained = now
            .iter()
            .any(|m| matches!(m, Mismatch::Mtu { .. } | Mismatch::SymbolSize { .. }));
        if !explained {
            now.extend(self.no_data);
        }
        if now != self.reported {
            self.reported = now.clone();
            self.events.push_back(ReceiverEvent::Mismatch(now));
        }
    }

    /// The ways the sender's settings do not fit this receiver, as last reported.
    pub fn mismatches(&self) -> &[Mismatch] {
        &self.reported
    }

    /// Notes an announced object; a retired one that has not completed waits for
    /// the blocks below its bound to settle.
    fn announce(&mut self, a: &Announce<'_>) {
        let id = ObjectId(a.id);
        if self.announced.insert(id) {
            self.stats.objects_announced += 1;
        }
        if !a.retired()
            || self.unpacker.is_complete(&id)
            || self.missed.contains(&id)
            || self.pending.len() >= MAX_PENDING
            || self.pending.iter().any(|p| p.id == id)
        {
            return;
        }
        self.pending.push(Pending {
            id,
            block_bound: a.block_bound,
            channel: String::from_utf8_lossy(a.channel).into_owned(),
            name: String::from_utf8_lossy(a.name).into_owned(),
            size: a.size,
            object_seq: a.object_seq,
        });
    }

    /// Judges the retired objects whose blocks have all been delivered or given up.
    fn settle_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let next = self.window.next_block();
        let mut i = 0;
        while i < self.pending.len() {
            let settled = next.is_none_or(|n| n >= self.pending[i].block_bound);
            if !settled {
                i += 1;
                continue;
            }
            let p = self.pending.swap_remove(i);
            if self.unpacker.is_complete(&p.id) || !self.missed.insert(p.id) {
                continue;
            }
            // retired: no copy comes to resume a kept one
            self.unpacker.forget_kept(&p.id);
            self.stats.objects_missed += 1;
            self.events.push_back(ReceiverEvent::ObjectMissed {
                id: p.id,
                channel: p.channel,
                name: p.name,
                size: p.size,
                object_seq: p.object_seq,
            });
        }
    }

    /// Decides whether a datagram of `session` is for the current session,
    /// switching sessions when the rules allow. False: drop it.
    fn accept_session(&mut self, now_ms: u64, session: u64, body: &Body<'_>) -> bool {
        let hb_start = match body {
            Body::Heartbeat(hb) => Some(hb.session_start_ms),
            Body::Symbol(_) | Body::Announce(_) | Body::Checkpoint(_) | Body::Stream(_) => None,
        };
        let switch_from = match self.session.as_mut() {
            None => None,
            Some(cur) if cur.id == session => {
                if cur.start_ms.is_none() {
                    cur.start_ms = hb_start;
                }
                return true;
            }
            Some(cur) => {
                // Only a heartbeat can replace a session: it carries the
                // session's start time, which orders sessions.
                let Some(new_start) = hb_start else {
                    return false;
                };
                let fresher = cur.start_ms.is_none_or(|old| new_start > old);
                let idle = now_ms.saturating_sub(cur.last_seen) >= self.session_idle_ms;
                if !(fresher || idle) {
                    return false;
                }
                Some(cur.id)
            }
        };
        match switch_from {
            None => self
                .events
                .push_back(ReceiverEvent::SessionStarted { session }),
            Some(old) => {
                self.missed_before += self.session.as_ref().map_or(0, |s| s.missed());
                self.unpacker.abort(LossReason::SessionRestarted);
                self.window.reset();
                self.stream.reset();
                self.stats.sessions_restarted += 1;
                self.move_unpacker_events();
                self.events
                    .push_back(ReceiverEvent::SessionRestarted { old, new: session });
            }
        }
        self.session = Some(Session {
            id: session,
            start_ms: hb_start,
            last_seen: now_ms,
            replay: ReplayWindow::new(),
            first_seq: None,
            accepted: 0,
            data_mark: None,
            heartbeats_without_data: 0,
            missed_at_heartbeat: 0,
            any_symbol: false,
        });
        true
    }

    fn move_unpacker_events(&mut self) {
        while let Some(e) = self.unpacker.pop_event() {
            match &e {
                ObjectEvent::Complete { .. } => self.stats.objects_complete += 1,
                ObjectEvent::Lost { .. } => self.stats.objects_lost += 1,
                ObjectEvent::Resume { .. } => self.stats.objects_resumed += 1,
                ObjectEvent::Start { .. } | ObjectEvent::Data { .. } => {}
            }
            self.events.push_back(e.into());
        }
    }

    fn drain_window(&mut self) {
        while let Some(d) = self.window.pop_delivery() {
            match d {
                Delivery::Block {
                    bytes, repair_used, ..
                } => {
                    if repair_used == 0 {
                        self.stats.blocks_without_repair += 1;
                    } else {
                        self.stats.blocks_with_repair += 1;
                        self.stats.repair_symbols_used += u64::from(repair_used);
                    }
                    self.unpacker.block(Bytes::from(bytes));
                }
                Delivery::Lost { count, .. } => {
                    self.stats.blocks_lost = self.stats.blocks_lost.saturating_add(count);
                    self.unpacker.gap();
                }
            }
            self.move_unpacker_events();
        }
        self.settle_pending();
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.window.next_deadline()
    }

    /// Gives up blocks whose time has run out.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.window.expire(now_ms);
        self.drain_window();
    }

    /// Takes the next copy of `id` again although one completed: the shell could not
    /// land it (a full disk, an I/O error). A repeat then delivers it, or, once the
    /// sender retires it, it is reported missed like any object that never arrived.
    pub fn reopen(&mut self, id: ObjectId) {
        self.unpacker.forget_complete(&id);
    }

    /// Gives up the kept bytes of `id`'s lost copy (the shell no longer holds them: it
    /// refused them, ran out of room to keep them, or had none when `ObjectResume` came):
    /// its next copy comes as `ObjectStart`, from the first byte.
    pub fn forget_kept(&mut self, id: ObjectId) {
        self.unpacker.forget_kept(&id);
    }

    /// The next event for the shell.
    pub fn poll_event(&mut self) -> Option<ReceiverEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_window() {
        let mut r = ReplayWindow::new();
        assert!(r.check_and_set(5));
        assert!(!r.check_and_set(5));
        assert!(r.check_and_set(3));
        assert!(r.check_and_set(10_000));
        assert!(!r.check_and_set(3));
        assert!(r.check_and_set(10_000 - 100));
        assert!(!r.check_and_set(10_000 - 100));
        assert!(r.check_and_set(10_001));
    }

    use crate::core::diode::sender::{Control, Sender, SenderConfig, SenderEvent};

    const KEY: [u8; 32] = [3u8; 32];

    /// Runs a copies=1 sender over `objects` to the end, announcing each object as
    /// it is retired; returns every datagram in order and whether it was a symbol.
    fn run_sender(objects: &[(ObjectId, &str, &[u8])]) -> Vec<(Vec<u8>, bool)> {
        let mut cfg = SenderConfig::new(KEY, 1500);
        cfg.copies = 1;
        cfg.repeat_window_ms = 0;
        cfg.source_symbols = 8;
        let mut s = Sender::new(cfg, 77, 1_000).unwrap();
        for (id, _, data) in objects {
            s.enqueue(*id, b"hdr".to_vec(), data.len() as u64).unwrap();
        }
        let mut out = Vec::new();
        let mut buf = vec![0u8; s.max_datagram_len()];
        for _ in 0..10_000 {
            while let Some(w) = s.wants() {
                let (_, _, data) = objects.iter().find(|o| o.0 == w.id).unwrap();
                let from = w.offset as usize;
                let to = (from + w.max_len).min(data.len());
                s.feed(w.id, w.offset, &data[from..to]).unwrap();
            }
            match s.poll_transmit(2_000, &mut buf).unwrap() {
                Some(n) => {
                    let symbol = matches!(
                        wire::decode(&LinkKey::new(&KEY), &buf[..n], &mut Vec::new())
                            .unwrap()
                            .body,
                        Body::Symbol(_)
                    );
                    out.push((buf[..n].to_vec(), symbol));
                }
                None if s.is_idle() => break,
                None => {}
            }
            while let Some(ev) = s.poll_event() {
                if let SenderEvent::ObjectRetired { id } = ev {
                    let (_, name, data) = objects.iter().find(|o| o.0 == id).unwrap();
                    s.send_control(Control::Announce {
                        id,
                        object_seq: 0,
                        size: data.len() as u64,
                        retired: true,
                        channel: "to-internet".into(),
                        name: (*name).into(),
                    })
                    .unwrap();
                }
            }
        }
        // the announcements queued last
        while let Some(n) = s.poll_transmit(2_000, &mut buf).unwrap() {
            out.push((buf[..n].to_vec(), false));
        }
        out
    }

    fn events(r: &mut Receiver) -> Vec<ReceiverEvent> {
        std::iter::from_fn(|| r.poll_event()).collect()
    }

    #[test]
    fn a_reopened_object_is_taken_from_its_next_copy() {
        let id = ObjectId([6; 16]);
        let data = vec![5u8; 3_000];
        // another object between the two copies, so that they travel in other blocks
        let filler = (ObjectId([7; 16]), vec![1u8; 200_000]);
        let mut cfg = SenderConfig::new(KEY, 1500);
        cfg.copies = 2;
        cfg.repeat_window_ms = 0;
        cfg.source_symbols = 8;
        let mut s = Sender::new(cfg, 78, 1_000).unwrap();
        s.enqueue(id, b"hdr".to_vec(), data.len() as u64).unwrap();
        s.enqueue(filler.0, b"hdr".to_vec(), filler.1.len() as u64)
            .unwrap();
        let mut datagrams = Vec::new();
        let mut buf = vec![0u8; s.max_datagram_len()];
        for _ in 0..10_000 {
            while let Some(w) = s.wants() {
                let content = if w.id == id { &data } else { &filler.1 };
                let from = w.offset as usize;
                let to = (from + w.max_len).min(content.len());
                s.feed(w.id, w.offset, &content[from..to]).unwrap();
            }
            match s.poll_transmit(2_000, &mut buf).unwrap() {
                Some(n) => datagrams.push(buf[..n].to_vec()),
                None if s.is_idle() => break,
                None => {}
            }
        }
        let completes = |reopen: bool| {
            let mut r = Receiver::new(ReceiverConfig::new(KEY, 1500)).unwrap();
            let mut n = 0;
            for d in &datagrams {
                r.handle(2_000, d);
                while let Some(ev) = r.poll_event() {
                    if ev == (ReceiverEvent::ObjectComplete { id }) {
                        n += 1;
                        if reopen {
                            // the shell could not land it
                            r.reopen(id);
                        }
                    }
                }
            }
            n
        };
        assert_eq!(completes(false), 1, "the second copy is a duplicate");
        assert_eq!(completes(true), 2, "the second copy is taken again");
    }

    #[test]
    fn retired_and_complete_is_not_missed() {
        let id = ObjectId([1; 16]);
        let data = vec![7u8; 20_000];
        let mut r = Receiver::new(ReceiverConfig::new(KEY, 1500)).unwrap();
        for (d, _) in run_sender(&[(id, "a.pdf", &data)]) {
            r.handle(2_000, &d);
        }
        let ev = events(&mut r);
        assert!(ev.contains(&ReceiverEvent::ObjectComplete { id }));
        assert!(
            !ev.iter()
                .any(|e| matches!(e, ReceiverEvent::ObjectMissed { .. }))
        );
        assert_eq!(r.stats().objects_announced, 1);
        assert_eq!(r.stats().datagrams_missed, 0);
    }

    #[test]
    fn retired_without_data_is_missed_once_with_its_name() {
        let (a, b) = (ObjectId([1; 16]), ObjectId([2; 16]));
        let (da, db) = (vec![1u8; 30_000], vec![2u8; 500]);
        let mut r = Receiver::new(ReceiverConfig::new(KEY, 1500)).unwrap();
        let all = run_sender(&[(a, "判决书.pdf", &da), (b, "b.txt", &db)]);
        // every symbol is lost (the receiver was down); announcements arrive, twice
        for (d, symbol) in all.iter().chain(all.iter()) {
            if !symbol {
                r.handle(2_000, d);
            }
        }
        r.handle_timeout(60_000);
        let missed: Vec<_> = events(&mut r)
            .into_iter()
            .filter_map(|e| match e {
                ReceiverEvent::ObjectMissed {
                    id, channel, name, ..
                } => Some((id, channel, name)),
                _ => None,
            })
            .collect();
        assert_eq!(
            missed,
            vec![
                (a, "to-internet".to_string(), "判决书.pdf".to_string()),
                (b, "to-internet".to_string(), "b.txt".to_string())
            ]
        );
        assert_eq!(r.stats().objects_missed, 2);
        assert!(r.stats().datagrams_missed > 0, "{:?}", r.stats());
    }

    #[test]
    fn retired_object_waits_for_its_blocks() {
        let id = ObjectId([4; 16]);
        let data = vec![9u8; 40_000];
        let all = run_sender(&[(id, "x.bin", &data)]);
        let mut r = Receiver::new(ReceiverConfig::new(KEY, 1500)).unwrap();
        // the announcement overtakes the object's last symbols: nothing is judged
        // until they arrive
        let (announce, rest): (Vec<_>, Vec<_>) = all.iter().partition(|(d, s)| {
            !s && matches!(
                wire::decode(&LinkKey::new(&KEY), d, &mut Vec::new())
                    .unwrap()
                    .body,
                Body::Announce(_)
            )
        });
        let (first, last) = rest.split_at(rest.len() / 2);
        for (d, _) in first {
            r.handle(2_000, d);
        }
        for (d, _) in &announce {
            r.handle(2_000, d);
        }
        assert!(
            !events(&mut r)
                .iter()
                .any(|e| matches!(e, ReceiverEvent::ObjectMissed { .. }))
        );
        for (d, _) in last {
            r.handle(2_001, d);
        }
        r.handle_timeout(60_000);
        let ev = events(&mut r);
        assert!(ev.contains(&ReceiverEvent::ObjectComplete { id }));
        assert!(
            !ev.iter()
                .any(|e| matches!(e, ReceiverEvent::ObjectMissed { .. }))
        );
    }

    #[test]
    fn checkpoint_frames_pass_once_each() {
        let mut cfg = SenderConfig::new(KEY, 1500);
        cfg.heartbeat_interval_ms = 1_000_000;
        let mut s = Sender::new(cfg, 5, 0).unwrap();
        for note in [&b"note one"[..], b"note one", b"note one", b"note two"] {
            s.send_control(Control::Checkpoint(note.to_vec())).unwrap();
        }
        let mut r = Receiver::new(ReceiverConfig::new(KEY, 1500)).unwrap();
        let mut buf = vec![0u8; s.max_datagram_len()];
        while let Some(n) = s.poll_transmit(0, &mut buf).unwrap() {
            r.handle(0, &buf[..n]);
        }
        let notes: Vec<_> = events(&mut r)
            .into_iter()
            .filter_map(|e| match e {
                ReceiverEvent::Checkpoint(n) => Some(n),
                _ => None,
            })
            .collect();
        assert_eq!(notes, vec![b"note one".to_vec(), b"note two".to_vec()]);
        assert_eq!(r.stats().checkpoints, 4);
        // too long for one datagram: refused at the sender
        assert!(matches!(
            s.send_control(Control::Checkpoint(vec![b'x'; 2000])),
            Err(crate::core::diode::SenderError::Wire(_))
        ));
    }

    /// Every datagram a sender at `mtu` with digest `digest` makes for `data`, in
    /// order, and whether each is a symbol.
    fn datagrams_at(mtu: usize, digest: u8, data: &[u8]) -> Vec<(Vec<u8>, bool)> {
        datagrams_of(91, mtu, digest, data)
    }

    /// As [`datagrams_at`], from session `session` started at `session` seconds.
    fn datagrams_of(session: u64, mtu: usize, digest: u8, data: &[u8]) -> Vec<(Vec<u8>, bool)> {
        datagrams_then_idle(session, mtu, digest, data, 0).0
    }

    /// As [`datagrams_of`], then `idle_ms` of an idle sender's heartbeats; also the index
    /// of the first datagram sent once the sender was idle.
    fn datagrams_then_idle(
        session: u64,
        mtu: usize,
        digest: u8,
        data: &[u8],
        idle_ms: u64,
    ) -> (Vec<(Vec<u8>, bool)>, usize) {
        datagrams_of_suite(Suite::Default, session, mtu, digest, data, idle_ms)
    }

    /// As [`datagrams_then_idle`], from a sender of `suite`.
    fn datagrams_of_suite(
        suite: Suite,
        session: u64,
        mtu: usize,
        digest: u8,
        data: &[u8],
        idle_ms: u64,
    ) -> (Vec<(Vec<u8>, bool)>, usize) {
        let mut cfg = SenderConfig::new(KEY, mtu);
        cfg.suite = suite;
        cfg.copies = 1;
        cfg.repeat_window_ms = 0;
        cfg.source_symbols = 8;
        cfg.heartbeat_interval_ms = 10;
        cfg.config_digest = [digest; wire::CONFIG_DIGEST_LEN];
        let start = session * 1_000;
        let mut s = Sender::new(cfg, session, start).unwrap();
        let id = ObjectId([9; 16]);
        s.enqueue(id, b"hdr".to_vec(), data.len() as u64).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; s.max_datagram_len()];
        let mut idle_at: Option<(u64, usize)> = None;
        // a millisecond a datagram, so that heartbeats come between the symbols
        for now in start..start + 100_000 {
            while let Some(w) = s.wants() {
                let from = w.offset as usize;
                let to = (from + w.max_len).min(data.len());
                s.feed(w.id, w.offset, &data[from..to]).unwrap();
            }
            match s.poll_transmit(now, &mut buf).unwrap() {
                Some(n) => {
                    let symbol = matches!(
                        wire::decode(&LinkKey::for_suite(suite, &KEY), &buf[..n], &mut Vec::new())
                            .unwrap()
                            .body,
                        Body::Symbol(_)
                    );
                    out.push((buf[..n].to_vec(), symbol));
                }
                None if s.is_idle() => {
                    let (since, _) = *idle_at.get_or_insert((now, out.len()));
                    if now >= since + idle_ms {
                        break;
                    }
                }
                None => {}
            }
        }
        let idle_from = idle_at.map_or(out.len(), |(_, at)| at);
        (out, idle_from)
    }

    fn mismatch_events(r: &mut Receiver) -> Vec<Vec<Mismatch>> {
        events(r)
            .into_iter()
            .filter_map(|e| match e {
                ReceiverEvent::Mismatch(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_sender_with_a_larger_mtu_is_named_once_and_its_datagrams_counted_too_long() {
        let data = vec![4u8; 50_000];
        let mut r = Receiver::new(ReceiverConfig::new(KEY, 1500)).unwrap();
        for (d, _) in datagrams_at(9000, 0, &data) {
            r.handle(2_000, &d);
        }
        let m = mismatch_events(&mut r);
        assert_eq!(
            m,
            vec![vec![Mismatch::Mtu {
                sender: 9000,
                receiver: 1500
            }]],
            "once, not per heartbeat"
        );
        assert_eq!(r.mismatches().len(), 1);
        let s = r.stats();
        assert!(s.datagrams_too_long > 0, "{s:?}");
        assert_eq!(s.objects_complete, 0);
    }

    #[test]
    fn equal_settings_report_nothing_and_deliver() {
        let data = vec![4u8; 50_000];
        let mut r = Receiver::new(ReceiverConfig::new(KEY, 1500)).unwrap();
        for (d, _) in datagrams_at(1500, 0, &data) {
            r.handle(2_000, &d);
        }
        let ev = events(&mut r);
        assert!(ev.contains(&ReceiverEvent::ObjectComplete {
            id: ObjectId([9; 16])
        }));
        assert!(
            !ev.iter().any(|e| matches!(
                e,
                ReceiverEvent::Mismatch(_) | ReceiverEvent::Unauthenticated { .. }
            )),
            "{ev:?}"
        );
        assert_eq!(r.stats().datagrams_too_long, 0);
    }

    #[test]
    fn another_configuration_digest_is_named_and_cleared_when_it_matches() {
        let data = vec![4u8; 3_000];
        let mut cfg = ReceiverConfig::new(KEY, 1500);
        cfg.config_digest = [5; wire::CONFIG_DIGEST_LEN];
        let mut r = Receiver::new(cfg).unwrap();
        for (d, _) in datagrams_at(1500, 6, &data) {
            r.handle(2_000, &d);
        }
        let m = mismatch_events(&mut r);
        assert_eq!(m.len(), 1);
        assert!(matches!(m[0][..], [Mismatch::Config { .. }]), "{m:?}");
        // the sender restarts with the same digest: agreed again, said once
        for (d, _) in datagrams_of(92, 1500, 5, &data) {
            r.handle(3_000, &d);
        }
        assert_eq!(mismatch_events(&mut r), vec![vec![]]);
    }

    #[test]
    fn heartbeats_without_the_symbols_between_them_name_the_path_mtu() {
        let data = vec![4u8; 200_000];
        let all = datagrams_at(1500, 0, &data);
        assert!(
            all.iter().filter(|(_, s)| !s).count() > 5,
            "heartbeats between symbols"
        );
        let mut r = Receiver::new(ReceiverConfig::new(KEY, 1500)).unwrap();
        // a path with a smaller MTU: only the small datagrams pass
        for (d, symbol) in &all {
            if !symbol {
                r.handle(2_000, d);
            }
        }
        let m = mismatch_events(&mut r);
        assert_eq!(m.len(), 1, "{m:?}");
        let [
            Mismatch::NoData {
                sender,
                receiver,
                missed,
            },
        ] = m[0][..]
        else {
            panic!("{m:?}")
        };
        assert_eq!((sender, receiver), (Some(1500), 1500));
        assert!(missed >= NO_DATA_MISSED);
        assert!(m[0][0].to_string().contains("path MTU below mtu = 1500"));
        // symbols arrive again: cleared
        let mut r2 = Receiver::new(ReceiverConfig::new(KEY, 1500)).unwrap();
        for (d, _) in &all {
            r2.handle(2_000, d);
        }
        assert!(mismatch_events(&mut r2).is_empty());
    }

    #[test]
    fn a_lone_lost_burst_is_not_a_path_mtu_problem() {
        let data = vec![4u8; 200_000];
        let all = datagrams_at(1500, 0, &data);
        let mut r = Receiver::new(ReceiverConfig::new(KEY, 1500)).unwrap();
        // 30 datagrams lost in a row, heartbeats among them included
        for (i, (d, _)) in all.iter().enumerate() {
            if !(100..130).contains(&i) {
                r.handle(2_000, d);
            }
        }
        assert!(mismatch_events(&mut r).is_empty());
    }

    #[test]
    fn a_lost_tail_then_an_idle_sender_is_not_a_path_mtu_problem() {
        // the transfer, then a second of idle heartbeats
        let (all, idle_from) = datagrams_then_idle(91, 1500, 0, &vec![4u8; 20_000], 1_000);
        let idle_heartbeats = all.len() - idle_from;
        assert!(idle_heartbeats >= 5, "{idle_heartbeats} idle heartbeats");
        // the last 10 symbols of the transfer are lost (a receive buffer overflowed)
        let last_symbols: Vec<usize> = all
            .iter()
            .enumerate()
            .filter(|(_, (_, symbol))| *symbol)
            .map(|(i, _)| i)
            .rev()
            .take(10)
            .collect();
        let mut r = Receiver::new(ReceiverConfig::new(KEY, 1500)).unwrap();
        for (i, (d, _)) in all.iter().enumerate() {
            if !last_symbols.contains(&i) {
                r.handle(2_000, d);
            }
        }
        assert!(mismatch_events(&mut r).is_empty());
    }

    /// The `Unauthenticated` events of `r` after it handled `datagrams` at 2 s.
    fn unauthenticated_after(
        r: &mut Receiver,
        datagrams: &[(Vec<u8>, bool)],
    ) -> Vec<ReceiverEvent> {
        for (d, _) in datagrams {
            r.handle(2_000, d);
        }
        events(r)
            .into_iter()
            .filter(|e| matches!(e, ReceiverEvent::Unauthenticated { .. }))
            .collect()
    }

    #[test]
    fn another_datagram_key_names_the_session_once_within_the_rate_limit() {
        let data = vec![4u8; 20_000];
        let mut r = Receiver::new(ReceiverConfig::new([8u8; 32], 1500)).unwrap();
        let all = datagrams_at(1500, 0, &data);
        assert_eq!(
            unauthenticated_after(&mut r, &all),
            vec![ReceiverEvent::Unauthenticated {
                session: 91,
                heartbeat: true,
                version: wire::VERSION,
                tagged_by: None
            }]
        );
        let s = r.stats();
        assert_eq!(s.datagrams_forged, all.len() as u64);
        assert!(s.heartbeats_unauthenticated > 0);
        assert_eq!(s.datagrams_ok, 0);
        // another session within the rate limit waits; after it, it is named
        let mut other = all[0].0.clone();
        other[4..12].copy_from_slice(&92u64.to_be_bytes());
        r.handle(2_000 + UNAUTHENTICATED_REPORT_MS - 1, &other);
        assert!(events(&mut r).is_empty());
        r.handle(2_000 + UNAUTHENTICATED_REPORT_MS, &other);
        assert_eq!(
            events(&mut r),
            vec![ReceiverEvent::Unauthenticated {
                session: 92,
                heartbeat: true,
                version: wire::VERSION,
                tagged_by: None
            }]
        );
    }

    #[test]
    fn a_national_suite_pair_tags_with_hmac_sm3_and_a_default_receiver_names_the_suite() {
        let data = vec![5u8; 20_000];
        let (gm, _) = datagrams_of_suite(Suite::Gm, 91, 1500, 0, &data, 0);
        // the tags are HMAC-SM3's, not AES-256-GCM's
        assert!(gm.iter().all(|(d, _)| {
            wire::decode(&LinkKey::for_suite(Suite::Gm, &KEY), d, &mut Vec::new()).is_ok()
                && wire::decode(&LinkKey::new(&KEY), d, &mut Vec::new()).is_err()
        }));
        // a receiver of the same suite takes the object whole
        let mut config = ReceiverConfig::new(KEY, 1500);
        config.suite = Suite::Gm;
        let mut r = Receiver::new(config).unwrap();
        for (d, _) in &gm {
            r.handle(2_000, d);
        }
        assert!(events(&mut r).contains(&ReceiverEvent::ObjectComplete {
            id: ObjectId([9; 16])
        }));
        assert_eq!(r.stats().datagrams_forged, 0);
        // a receiver of the default suite drops every datagram, and says why
        let mut r = Receiver::new(ReceiverConfig::new(KEY, 1500)).unwrap();
        assert_eq!(
            unauthenticated_after(&mut r, &gm),
            vec![ReceiverEvent::Unauthenticated {
                session: 91,
                heartbeat: true,
                version: wire::VERSION,
                tagged_by: Some(Suite::Gm)
            }]
        );
        assert_eq!(r.stats().datagrams_ok, 0);
        assert_eq!(r.stats().datagrams_forged, gm.len() as u64);
    }

    #[test]
    fn what_crosses_the_default_suite_is_encrypted_and_what_lands_is_the_plaintext() {
        // a file of distinct words: any 16 bytes of it in clear on the wire would be found
        let data: Vec<u8> = (0..4_000u32)
            .flat_map(|i| format!("case {i:05} ").into_bytes())
            .collect();
        let all = datagrams_at(1500, 0, &data);
        let windows: std::collections::HashSet<&[u8]> = data.windows(16).collect();
        for (d, _) in &all {
            assert!(
                !d.windows(16).any(|w| windows.contains(w)),
                "a datagram carries the file in clear"
            );
        }
        let mut r = Receiver::new(ReceiverConfig::new(KEY, 1500)).unwrap();
        for (d, _) in &all {
            r.handle(2_000, d);
        }
        let landed: Vec<u8> = events(&mut r)
            .into_iter()
            .filter_map(|e| match e {
                ReceiverEvent::ObjectData { bytes, .. } => Some(bytes.to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(landed, data);
        assert_eq!(r.stats().datagrams_forged, 0);
    }

    /// `datagrams` of `suite` as a sender of version 1 sent them: the header and the
    /// plaintext body, version 1, tagged with the suite's HMAC (SHA-256 or SM3) truncated.
    fn as_version_1(suite: Suite, datagrams: Vec<(Vec<u8>, bool)>) -> Vec<(Vec<u8>, bool)> {
        let now = LinkKey::for_suite(suite, &KEY);
        let old_key = crate::keys::suite::MacKey::new(suite, &KEY);
        datagrams
            .into_iter()
            .map(|(d, hb)| {
                let (sealed, tag) = d.split_at(d.len() - wire::TAG_LEN);
                let mut signed = sealed.to_vec();
                let header = |at: usize| u64::from_be_bytes(d[at..at + 8].try_into().unwrap());
                assert!(now.open(header(4), header(12), &mut signed, wire::HEADER_LEN, tag));
                signed[2] = 1;
                let tag = old_key.tag(&signed);
                signed.extend_from_slice(&tag[..wire::TAG_LEN]);
                (signed, hb)
            })
            .collect()
    }

    /// Feeds `old` (a version-1 sender's datagrams of session 91): its session is named once,
    /// for its version, and none of its datagrams is taken.
    fn assert_named_as_version_1(r: &mut Receiver, old: &[(Vec<u8>, bool)]) {
        assert_eq!(
            unauthenticated_after(r, old),
            vec![ReceiverEvent::Unauthenticated {
                session: 91,
                heartbeat: true,
                version: 1,
                tagged_by: None
            }]
        );
        assert_eq!(r.stats().datagrams_ok, 0);
    }

    #[test]
    fn a_sender_of_the_version_before_is_named_with_its_version_and_none_of_it_taken() {
        // what a sender before the GCM seal sent: version 1, HMAC-SHA256 tags
        let data = vec![6u8; 20_000];
        let old = as_version_1(Suite::Default, datagrams_at(1500, 0, &data));
        let mut r = Receiver::new(ReceiverConfig::new(KEY, 1500)).unwrap();
        assert_named_as_version_1(&mut r, &old);
        assert_eq!(r.stats().datagrams_forged, old.len() as u64);
    }

    #[test]
    fn a_national_suite_sender_of_the_version_before_is_named_too() {
        // version 1 of a gm pair had the same HMAC-SM3 tag: the datagrams authenticate,
        // and are dropped and named for their version
        let data = vec![6u8; 20_000];
        let (gm, _) = datagrams_of_suite(Suite::Gm, 91, 1500, 0, &data, 0);
        let old = as_version_1(Suite::Gm, gm);
        let mut config = ReceiverConfig::new(KEY, 1500);
        config.suite = Suite::Gm;
        let mut r = Receiver::new(config).unwrap();
        assert_named_as_version_1(&mut r, &old);
        assert_eq!(r.stats().datagrams_malformed, old.len() as u64);
    }

    #[test]
    fn garbage_is_counted_not_fatal() {
        let mut r = Receiver::new(ReceiverConfig::new([3u8; 32], 1500)).unwrap();
        r.handle(0, &[]);
        r.handle(0, &[0u8; 10]);
        r.handle(0, &[0u8; 100]);
        r.handle(0, &[0u8; 2000]);
        let s = r.stats();
        assert_eq!(s.datagrams_malformed, 2);
        assert_eq!(s.datagrams_too_long, 1);
        assert_eq!(s.datagrams_forged, 1);
        assert!(r.poll_event().is_none());
    }
}
