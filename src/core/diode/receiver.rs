//! The receiving side of the diode link as a state machine. Owns datagram
//! authentication and accounting, the sender session (adoption, restarts,
//! replayed datagrams), per-session duplicate suppression by sequence number,
//! the FEC reassembly window, unpacking blocks into object events, and dropping
//! copies of objects already complete. It never produces anything to send: the
//! link is one-way.
//!
//! ```text
//! datagram ─► size cap ─► HMAC tag ─► decode ─► session ─► replay window
//!                 │           │          │          │            │
//!              malformed    forged    malformed  stale_session duplicate
//!   ─► Window (fec.rs: assemble, recover, in order, give up) ─► Unpacker (pack.rs)
//!   ─► events: ObjectStart / ObjectData / ObjectComplete / ObjectLost / …
//! ```
//! Sessions: the first authenticated datagram picks the session. Only a
//! heartbeat (which carries its session's start time) can replace it: one from a
//! session that started later than the current one, or any when the current one
//! has been silent for `session_idle_ms` or its start time is not yet known.
//! Every other datagram of another session (a replay from an old one) is counted
//! as `datagrams_stale_session` and dropped. Limit: a receiver that has not yet
//! heard its sender can be fed a replayed old session until the real sender's
//! next heartbeat; the shell's durable record of delivered object
//! ids and the manifest checks downstream catch what such a replay delivers.

use std::collections::VecDeque;

use bytes::Bytes;

use super::fec::{Delivery, REPAIR_SLACK, SymbolOutcome, Window};
use super::pack::{LossReason, MAX_HEADER, ObjectEvent, Unpacker};
use super::wire::{self, Body, Heartbeat, LinkKey, WireError};
use super::{ConfigError, ObjectId};

/// Receiver configuration (see [`ReceiverConfig::new`] for the defaults).
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// The link key shared with the sender.
    pub key: [u8; 32],
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
}

impl ReceiverConfig {
    /// Defaults: window 8 blocks, 2 s block timeout, blocks up to 16 MiB, headers
    /// up to 16 MiB, sessions idle after 10 s, 65 536 remembered ids.
    pub fn new(key: [u8; 32], mtu: usize) -> Self {
        Self {
            key,
            mtu,
            window_blocks: 8,
            block_timeout_ms: 2000,
            max_block_bytes: 16 << 20,
            max_header_bytes: MAX_HEADER,
            session_idle_ms: 10_000,
            remember_objects: 65_536,
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
    /// This copy of the object was lost: discard the part file. Unless
    /// `last_copy`, a later copy may start it again. May follow an object whose
    /// `ObjectStart` was never emitted (its header was incomplete).
    ObjectLost {
        /// Object id.
        id: ObjectId,
        /// Why.
        why: LossReason,
        /// Whether the sender sends no further copy.
        last_copy: bool,
    },
}

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
            ObjectEvent::Lost { id, why, last_copy } => Self::ObjectLost { id, why, last_copy },
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
    /// Datagrams too short or long, or authenticated but not well-formed.
    pub datagrams_malformed: u64,
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
}

/// The receiving state machine: feed it datagrams with [`handle`](Self::handle),
/// call [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout),
/// and drain [`poll_event`](Self::poll_event).
#[derive(Debug)]
pub struct Receiver {
    key: LinkKey,
    max_len: usize,
    max_block_bytes: usize,
    session_idle_ms: u64,
    session: Option<Session>,
    window: Window,
    unpacker: Unpacker,
    events: VecDeque<ReceiverEvent>,
    stats: ReceiverStats,
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
            key: LinkKey::new(&config.key),
            max_len,
            max_block_bytes: config.max_block_bytes,
            session_idle_ms: config.session_idle_ms,
            session: None,
            window: Window::new(config.window_blocks, config.block_timeout_ms),
            unpacker: Unpacker::new(config.remember_objects, config.max_header_bytes),
            events: VecDeque::new(),
            stats: ReceiverStats::default(),
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
        if datagram.len() > self.max_len {
            self.stats.datagrams_malformed += 1;
            return;
        }
        let d = match wire::decode(&self.key, datagram) {
            Ok(d) => d,
            Err(WireError::BadTag) => {
                self.stats.datagrams_forged += 1;
                return;
            }
            Err(_) => {
                self.stats.datagrams_malformed += 1;
                return;
            }
        };
        if let Body::Symbol(s) = &d.body {
            let block_bytes = usize::from(s.source_symbols) * usize::from(s.symbol_size);
            if !wire::symbol_size_ok(s.symbol_size, self.max_len)
                || block_bytes > self.max_block_bytes
            {
                self.stats.datagrams_malformed += 1;
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
        self.stats.datagrams_ok += 1;
        match d.body {
            Body::Heartbeat(hb) => {
                self.events.push_back(ReceiverEvent::HeartbeatSeen(hb));
                self.window.note_sent(now_ms, hb.blocks_sent);
            }
            Body::Symbol(s) => {
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

    /// Decides whether a datagram of `session` is for the current session,
    /// switching sessions when the rules allow. False: drop it.
    fn accept_session(&mut self, now_ms: u64, session: u64, body: &Body<'_>) -> bool {
        let hb_start = match body {
            Body::Heartbeat(hb) => Some(hb.session_start_ms),
            Body::Symbol(_) => None,
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
                self.unpacker.abort(LossReason::SessionRestarted);
                self.window.reset();
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
        });
        true
    }

    fn move_unpacker_events(&mut self) {
        while let Some(e) = self.unpacker.pop_event() {
            match &e {
                ObjectEvent::Complete { .. } => self.stats.objects_complete += 1,
                ObjectEvent::Lost { .. } => self.stats.objects_lost += 1,
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

    #[test]
    fn garbage_is_counted_not_fatal() {
        let mut r = Receiver::new(ReceiverConfig::new([3u8; 32], 1500)).unwrap();
        r.handle(0, &[]);
        r.handle(0, &[0u8; 10]);
        r.handle(0, &[0u8; 100]);
        r.handle(0, &[0u8; 2000]);
        let s = r.stats();
        assert_eq!(s.datagrams_malformed, 3);
        assert_eq!(s.datagrams_forged, 1);
        assert!(r.poll_event().is_none());
    }
}
