//! The sending side of the diode link as a state machine. Owns the object queue,
//! the carousel (each object is sent `copies` times, later copies after a gap of
//! newer data), the repeat window (after its planned copies an object is sent
//! again with spare capacity, oldest first, until its window ends), asking the
//! shell for content chunk by chunk, closing blocks and having them RaptorQ-coded,
//! interleaving the symbols of several blocks on the wire, pacing datagrams,
//! heartbeats, and the events that tell the shell when an object may leave the
//! spool.
//!
//! ```text
//! enqueue ─► fresh queue ─┐                  ┌─► carousel queue (copy n+1, after
//!                         ├─► active pass ───┤    `copy_gap_bytes` of stream)
//!      carousel queue ────┤   │ Start/Data/  └─► repeat ring (spare passes, oldest
//!      repeat ring ───────┘   │ End records        first, each object at most once
//!   (only when nothing else   ▼                    per `repeat_interval_ms`) ─► retired
//!    waits; a new object      open block (BlockWriter)                 at window end
//!    aborts a spare pass)     ▼
//!           tx set: up to D coded blocks (K source + ceil(K·r)+c repair symbols),
//!           one symbol of each in turn ─► pacer ─► datagrams
//! ```
//!
//! Interleaving: a burst of L consecutive lost datagrams costs each of the D
//! blocks in the tx set at most ceil(L/D) symbols. D is derived (see
//! [`interleave_for`]) so that a burst of [`BURST_DATAGRAMS`] costs a full block
//! at most a quarter of its repair symbols, capped at [`MAX_INTERLEAVE`] so that
//! the receiver's reassembly window (8 blocks by default) holds every block in
//! the tx set with room left for reordering. Blocks never wait for each other:
//! a lone block goes out alone (small objects stay fast) and a later block joins
//! the rotation as soon as it is coded. The block numbers in the tx set always
//! span fewer than D, and an
//! object's events wait until every block before its last one has gone out. A
//! block holding only spare-pass records is cut at 1/D of a full block, so new
//! work finds at most one full block of coded repeats ahead of it; it keeps a
//! full block's repair symbols (at most one per source symbol), so repeats
//! survive bursts as well as first passes do.
//!
//! Usage: call [`Sender::enqueue`]; while [`Sender::wants`] returns a chunk,
//! read it from the spool and [`Sender::feed`] it; call
//! [`Sender::poll_transmit`] until it returns `None`, then wait until
//! [`Sender::poll_timeout`] (or new work) and repeat; drain
//! [`Sender::poll_event`]. Small control frames (object announcements, signed
//! audit checkpoints) queued with [`Sender::send_control`] go before the next
//! symbol, paced like the rest. Live stream frames given to [`Sender::push_stream`]
//! go before both (latency): each at once as source symbols of a small stream block
//! (see `stream.rs`), whose repair symbols follow when it closes, all paced under the
//! same rate. The clock is milliseconds (wall clock: its value
//! at start orders sessions across sender restarts, and repeat windows are kept
//! in it across restarts).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use thiserror::Error;

use super::fec::{self, FecError};
use super::pacer::TokenBucket;
use super::pack::{BlockWriter, DATA_HDR, END_LEN, MAX_HEADER, MAX_OBJECT_SIZE, START_LEN};
use super::stream::{StreamDatagram, StreamEncoder, StreamError};
use super::wire::{
    self, Announce, Body, Header, Heartbeat, LinkKey, SYMBOL_OVERHEAD, Symbol, WireError,
};
use super::{ConfigError, ObjectId};
use crate::keys::suite::Suite;

/// The longest run of consecutive lost datagrams the derived interleave depth is
/// sized for (a whole GSO batch, or a socket buffer overflow).
pub const BURST_DATAGRAMS: u32 = 64;

/// The deepest interleave: the receiver's default window of 8 blocks holds this
/// many blocks in flight and as many again for reordering.
pub const MAX_INTERLEAVE: u16 = 4;

/// The `copies` value a `Start` record carries when spare passes may follow
/// (a repeat window is on): no pass is announced as the last.
pub const COPIES_OPEN: u8 = u8::MAX;

/// The derived interleave depth for blocks with `repair` repair symbols: the
/// smallest D with ceil([`BURST_DATAGRAMS`] / D) ≤ repair / 4, within
/// 2..=[`MAX_INTERLEAVE`]. K = 512 with ratio 0.1 + 2 (54 repair symbols) gives
/// 5, capped to 4: a burst of 64 then costs each block 16 of its 54; with the
/// configuration's default 0.2 + 2 (105) it gives 3: 22 of its 105.
pub fn interleave_for(repair: u32) -> u16 {
    let share = (repair / 4).max(1);
    let d = BURST_DATAGRAMS.div_ceil(share);
    u16::try_from(d.clamp(2, u32::from(MAX_INTERLEAVE))).unwrap_or(MAX_INTERLEAVE)
}

/// Sender configuration (see [`SenderConfig::new`] for the defaults).
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// The link key shared with the receiver.
    pub key: [u8; 32],
    /// The pair's suite: whose tag every datagram carries (`core::diode::tag`).
    pub suite: Suite,
    /// IPv4 MTU of the path.
    pub mtu: usize,
    /// Symbol size T; 0 derives the largest that fits the MTU.
    pub symbol_size: u16,
    /// Source symbols per full block (K).
    pub source_symbols: u16,
    /// Repair symbols per block as a fraction of K (0..=4).
    pub repair_ratio: f64,
    /// Repair symbols added to every block on top of the ratio.
    pub repair_extra: u16,
    /// Average rate in UDP payload bytes per second; 0 is unlimited.
    pub rate_bytes_per_s: u64,
    /// Largest burst in bytes (at least one datagram).
    pub burst_bytes: u64,
    /// How many times each object is sent, back to back with newer data (at
    /// least 1). These planned copies go before spare passes.
    pub copies: u8,
    /// Record-stream bytes that must pass before another copy of an object goes,
    /// unless nothing else is waiting; 0 derives 8 full blocks.
    pub copy_gap_bytes: u64,
    /// Blocks whose symbols are interleaved on the wire (1..=[`MAX_INTERLEAVE`];
    /// 1 sends each block back to back); 0 derives it with [`interleave_for`].
    pub interleave: u16,
    /// Milliseconds an object stays after its first pass, sent again with spare
    /// capacity; 0 retires it as soon as its last planned copy is out.
    pub repeat_window_ms: u64,
    /// Least milliseconds between two spare passes of one object; 0 derives
    /// 1/20 of the window, at least 1 s.
    pub repeat_interval_ms: u64,
    /// Heartbeat interval in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// Most objects queued, in flight or within their repeat window at once. When
    /// full, the object nearest the end of its window retires early to make room.
    pub max_queued_objects: usize,
    /// Largest content chunk asked of the shell at once.
    pub max_chunk: usize,
    /// The digest of the settings both ends must share
    /// ([`config_digest`](super::agree::config_digest)), stated in every heartbeat.
    pub config_digest: [u8; wire::CONFIG_DIGEST_LEN],
    /// Repair symbols of a stream block as a fraction of its K (0..=4), plus one.
    pub stream_repair_ratio: f64,
    /// The stream delay budget in ms: a stream block closes half of it after its first
    /// frame.
    pub stream_delay_ms: u64,
}

impl SenderConfig {
    /// Defaults for `mtu`: T from the MTU, K = 512 (up to 4000) or 256 (jumbo),
    /// repair ratio 0.1 + 2 symbols, derived interleave, 1 copy, a 10-minute
    /// repeat window, unlimited rate, 500 ms heartbeats.
    pub fn new(key: [u8; 32], mtu: usize) -> Self {
        Self {
            key,
            suite: Suite::Default,
            mtu,
            symbol_size: 0,
            source_symbols: if mtu > 4000 { 256 } else { 512 },
            repair_ratio: 0.1,
            repair_extra: 2,
            rate_bytes_per_s: 0,
            burst_bytes: 256 * 1024,
            copies: 1,
            copy_gap_bytes: 0,
            interleave: 0,
            repeat_window_ms: 600_000,
            repeat_interval_ms: 0,
            heartbeat_interval_ms: 500,
            max_queued_objects: 65_536,
            max_chunk: 1 << 20,
            config_digest: [0; wire::CONFIG_DIGEST_LEN],
            stream_repair_ratio: 0.25,
            stream_delay_ms: 40,
        }
    }
}

/// A misuse of the sender API, or a configuration that cannot work.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SenderError {
    /// The configuration is invalid.
    #[error("invalid sender configuration: {0}")]
    Config(#[from] ConfigError),
    /// This object id is already queued or in flight.
    #[error("object {0} is already queued")]
    DuplicateObject(ObjectId),
    /// The header is larger than the record format allows.
    #[error("header of {0} bytes exceeds the limit")]
    HeaderTooLarge(usize),
    /// The object is larger than the record format allows.
    #[error("object of {0} bytes exceeds the limit")]
    ObjectTooLarge(u64),
    /// Too many objects are queued; retry after some retire.
    #[error("queue is full")]
    QueueFull,
    /// Content was fed that the sender did not ask for (id or offset differ).
    #[error("content for object {id} at offset {offset} was not asked for")]
    NotWanted {
        /// Object id fed.
        id: ObjectId,
        /// Offset fed.
        offset: u64,
    },
    /// Fed more bytes than asked for, or none.
    #[error("fed {got} bytes where 1..={max} were asked for")]
    BadChunkLength {
        /// Bytes fed.
        got: usize,
        /// Most bytes asked for.
        max: usize,
    },
    /// A datagram could not be encoded (for example, the buffer is too small).
    #[error("datagram encoding failed: {0}")]
    Wire(#[from] WireError),
    /// A block could not be coded.
    #[error("block coding failed: {0}")]
    Fec(#[from] FecError),
    /// A control frame would not fit one datagram under the MTU.
    #[error("control frame of {0} bytes does not fit the MTU")]
    ControlTooLong(usize),
    /// A stream frame could not be sent.
    #[error("stream frame: {0}")]
    Stream(#[from] StreamError),
}

/// Most stream datagrams waiting for the pacer; beyond, the oldest are dropped (a live
/// stream has no use for stale packets).
pub const MAX_STREAM_QUEUE: usize = 4096;

/// Most control frames queued at once.
pub const MAX_CONTROLS: usize = 256;

/// A small frame the shell asks the sender to send between symbols (see
/// [`Sender::send_control`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Announce an object: the receiver learns its id, channel and name even if it
    /// sees none of its data. The block bound is filled in when it goes.
    Announce {
        /// Object id.
        id: ObjectId,
        /// The object's number in this session's announcements.
        object_seq: u64,
        /// Content size in bytes.
        size: u64,
        /// Whether the sender has retired it (no further copy comes).
        retired: bool,
        /// Channel name (1..=255 bytes).
        channel: String,
        /// Base name (at most [`wire::MAX_ANNOUNCE_NAME`] bytes).
        name: String,
    },
    /// A signed checkpoint of the sending node's audit log (1..=1024 bytes).
    Checkpoint(Vec<u8>),
}

/// A chunk of content the sender asks the shell for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    /// Object id.
    pub id: ObjectId,
    /// Offset in the object's content.
    pub offset: u64,
    /// Most bytes to feed (at least 1 must be fed).
    pub max_len: usize,
}

/// What the sender tells the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderEvent {
    /// Every datagram of pass `copy` (0-based: 0 is the first pass, then the
    /// planned copies, then spare passes) of the object has been handed out.
    /// Not reported for an object retired or cancelled meanwhile.
    ObjectSent {
        /// Object id.
        id: ObjectId,
        /// Which pass (saturates at 254).
        copy: u8,
    },
    /// The object's retention has ended (its last planned copy is out and its
    /// repeat window, if any, has passed, or it made room for a new object): the
    /// shell may drop it from the spool.
    ObjectRetired {
        /// Object id.
        id: ObjectId,
    },
    /// The object was cancelled by [`Sender::cancel`] and forgotten.
    ObjectCancelled {
        /// Object id.
        id: ObjectId,
    },
}

/// Sender counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// Objects enqueued.
    pub objects_enqueued: u64,
    /// Object passes fully sent (first passes, planned copies and spare passes).
    pub copies_sent: u64,
    /// Spare passes fully sent (part of `copies_sent`).
    pub spare_passes_sent: u64,
    /// Spare passes cut short by a new object (sent again from the start later).
    pub spare_passes_preempted: u64,
    /// Objects retired.
    pub objects_retired: u64,
    /// Objects retired before their repeat window ended, to make room.
    pub objects_retired_early: u64,
    /// Record-stream bytes written (every record, padding excluded).
    pub stream_bytes: u64,
    /// Record-stream bytes of header and content written by spare passes.
    pub spare_stream_bytes: u64,
    /// Blocks fully sent.
    pub blocks_sent: u64,
    /// Source symbols sent.
    pub source_symbols_sent: u64,
    /// Repair symbols sent.
    pub repair_symbols_sent: u64,
    /// Heartbeats sent.
    pub heartbeats_sent: u64,
    /// Datagram bytes handed out.
    pub bytes_sent: u64,
    /// Stream frames taken.
    pub stream_frames: u64,
    /// Stream symbols sent (source and repair).
    pub stream_symbols_sent: u64,
    /// Stream symbols dropped because the pacer let too few go
    /// ([`MAX_STREAM_QUEUE`] were waiting).
    pub stream_symbols_dropped: u64,
}

#[derive(Debug)]
struct Entry {
    header: Vec<u8>,
    size: u64,
    /// Tells this enqueue of the id apart from an earlier one in the ring.
    generation: u64,
    /// Passes started so far (saturating), the copy number of the next one.
    passes: u8,
    /// When the repeat window ends, once the first pass is out.
    retire_at: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Repeat {
    id: ObjectId,
    eligible_at: u64,
}

/// An object waiting in the repeat ring for its next spare pass.
#[derive(Debug, Clone, Copy)]
struct Spare {
    id: ObjectId,
    generation: u64,
    not_before: u64,
}

#[derive(Debug)]
struct Active {
    id: ObjectId,
    generation: u64,
    copy: u8,
    spare: bool,
    header_len: u64,
    total: u64,
    pos: u64,
    started: bool,
    aborted: bool,
}

#[derive(Debug, Clone, Copy)]
struct Done {
    id: ObjectId,
    generation: u64,
    copy: u8,
    /// The last planned copy (or a spare pass): the object moves on to the ring.
    planned_done: bool,
    spare: bool,
}

#[derive(Debug)]
struct TxBlock {
    block: u64,
    k: u16,
    data: Arc<Vec<u8>>,
    /// How many repair symbols follow the K source symbols.
    repair_count: usize,
    repair: fec::Repairs,
    next: usize,
    done: Vec<Done>,
}

/// The sending state machine. See the module documentation for the call pattern.
#[derive(Debug)]
pub struct Sender {
    key: LinkKey,
    session: u64,
    start_ms: u64,
    now: u64,
    t: u16,
    block_bytes: usize,
    repair_ratio: f64,
    repair_extra: u16,
    copies: u8,
    copy_gap: u64,
    depth: usize,
    window: u64,
    interval: u64,
    hb_interval: u64,
    /// What every heartbeat states about this sender's settings.
    link: wire::LinkParams,
    max_queued: usize,
    max_chunk: usize,
    objects: HashMap<ObjectId, Entry>,
    generation: u64,
    fresh: VecDeque<ObjectId>,
    repeats: VecDeque<Repeat>,
    ring: VecDeque<Spare>,
    expiry: BTreeSet<(u64, u64, ObjectId)>,
    active: Option<Active>,
    want: Option<Want>,
    writer: BlockWriter,
    open_done: Vec<Done>,
    open_full: bool,
    /// The open block holds records of a first pass or planned copy.
    open_fresh: bool,
    tx: VecDeque<TxBlock>,
    cursor: usize,
    finished: BTreeMap<u64, Vec<Done>>,
    seq: u64,
    next_block: u64,
    pacer: TokenBucket,
    next_heartbeat: u64,
    events: VecDeque<SenderEvent>,
    stats: SenderStats,
    max_len: usize,
    controls: VecDeque<Control>,
    stream: StreamEncoder,
    stream_out: VecDeque<StreamDatagram>,
    /// Where closed blocks' repair symbols are computed (`None`: here, at close).
    coder: Option<Box<dyn fec::RepairCoder>>,
}

impl Sender {
    /// Has closed blocks' repair symbols computed by `coder` (on worker threads the shell
    /// runs) instead of on the caller's thread when each block closes: the datagrams are
    /// the same, byte for byte and in the same order. With a coder, [`Sender::poll_transmit`]
    /// may wait (never on I/O: on the coder's computation) for a block's repair symbols
    /// when its first one is due, after its source symbols; a coder that fails has the
    /// block coded on the caller's thread instead.
    pub fn set_coder(&mut self, coder: Box<dyn fec::RepairCoder>) {
        self.coder = Some(coder);
    }

    /// A sender for session `session` (random, chosen by the shell), starting at `now_ms`.
    pub fn new(config: SenderConfig, session: u64, now_ms: u64) -> Result<Self, SenderError> {
        let max_len = wire::max_payload(config.mtu);
        let t = if config.symbol_size == 0 {
            wire::symbol_size_for_mtu(config.mtu).ok_or(ConfigError::MtuTooSmall(config.mtu))?
        } else {
            config.symbol_size
        };
        if !wire::symbol_size_ok(t, max_len) {
            return Err(ConfigError::SymbolSize(t).into());
        }
        if config.source_symbols == 0 || config.source_symbols > wire::MAX_SOURCE_SYMBOLS {
            return Err(ConfigError::SourceSymbols(config.source_symbols).into());
        }
        if !config.repair_ratio.is_finite() || !(0.0..=4.0).contains(&config.repair_ratio) {
            return Err(ConfigError::RepairRatio(config.repair_ratio).into());
        }
        if config.copies == 0 {
            return Err(ConfigError::Copies.into());
        }
        if config.heartbeat_interval_ms == 0 {
            return Err(ConfigError::HeartbeatInterval.into());
        }
        if config.interleave > MAX_INTERLEAVE {
            return Err(ConfigError::Interleave(config.interleave).into());
        }
        let stream = StreamEncoder::new(t, config.stream_repair_ratio, config.stream_delay_ms)?;
        let datagram = usize::from(t) + SYMBOL_OVERHEAD;
        if config.rate_bytes_per_s != 0
            && (config.burst_bytes < datagram as u64 || config.burst_bytes > 1 << 40)
        {
            return Err(ConfigError::Burst(config.burst_bytes).into());
        }
        if config.max_queued_objects == 0 {
            return Err(ConfigError::ZeroLimit("max_queued_objects").into());
        }
        if config.max_chunk == 0 {
            return Err(ConfigError::ZeroLimit("max_chunk").into());
        }
        let block_bytes = usize::from(config.source_symbols) * usize::from(t);
        let copy_gap = if config.copy_gap_bytes == 0 {
            8 * block_bytes as u64
        } else {
            config.copy_gap_bytes
        };
        let depth = if config.interleave == 0 {
            interleave_for(fec::repair_count(
                config.source_symbols,
                config.repair_ratio,
                config.repair_extra,
            ))
        } else {
            config.interleave
        };
        let interval = if config.repeat_interval_ms == 0 {
            (config.repeat_window_ms / 20).max(1000)
        } else {
            config.repeat_interval_ms
        };
        let mut s = Self {
            key: LinkKey::for_suite(config.suite, &config.key),
            session,
            start_ms: now_ms,
            now: now_ms,
            t,
            block_bytes,
            repair_ratio: config.repair_ratio,
            repair_extra: config.repair_extra,
            copies: config.copies,
            copy_gap,
            depth: usize::from(depth),
            window: config.repeat_window_ms,
            interval,
            hb_interval: config.heartbeat_interval_ms,
            link: wire::LinkParams {
                mtu: u32::try_from(config.mtu).unwrap_or(u32::MAX),
                symbol_size: t,
                source_symbols: config.source_symbols,
                config_digest: config.config_digest,
            },
            max_queued: config.max_queued_objects,
            max_chunk: config.max_chunk,
            objects: HashMap::new(),
            generation: 0,
            fresh: VecDeque::new(),
            repeats: VecDeque::new(),
            ring: VecDeque::new(),
            expiry: BTreeSet::new(),
            active: None,
            want: None,
            writer: BlockWriter::new(block_bytes),
            open_done: Vec::new(),
            open_full: false,
            open_fresh: false,
            tx: VecDeque::new(),
            cursor: 0,
            finished: BTreeMap::new(),
            seq: 0,
            next_block: 0,
            pacer: TokenBucket::new(config.rate_bytes_per_s, config.burst_bytes, now_ms),
            next_heartbeat: now_ms,
            events: VecDeque::new(),
            stats: SenderStats::default(),
            max_len,
            controls: VecDeque::new(),
            stream,
            stream_out: VecDeque::new(),
            coder: None,
        };
        s.fill();
        Ok(s)
    }

    /// Sets the session's start time sent in heartbeats (by default the `now_ms` given to
    /// [`new`](Self::new)). The receiver orders sessions by it across restarts, so a shell
    /// whose `now_ms` counts on a per-process monotonic clock gives the wall time here
    /// (ms since the Unix epoch).
    pub fn set_session_start(&mut self, start_ms: u64) {
        self.start_ms = start_ms;
    }

    /// The session id.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// The symbol size T in use.
    pub fn symbol_size(&self) -> u16 {
        self.t
    }

    /// Bytes of a full block (K·T).
    pub fn block_bytes(&self) -> usize {
        self.block_bytes
    }

    /// The interleave depth in use (blocks whose symbols alternate on the wire).
    pub fn interleave(&self) -> usize {
        self.depth
    }

    /// The longest datagram this sender makes: the buffer size for [`poll_transmit`](Self::poll_transmit).
    pub fn max_datagram_len(&self) -> usize {
        let control = wire::HEADER_LEN
            + (wire::ANNOUNCE_PREFIX_LEN + 255 + wire::MAX_ANNOUNCE_NAME).max(wire::MAX_CHECKPOINT)
            + wire::TAG_LEN;
        (usize::from(self.t) + SYMBOL_OVERHEAD)
            .max(wire::HEADER_LEN + wire::HEARTBEAT_BODY_LEN + wire::TAG_LEN)
            .max(control.min(self.max_len))
    }

    /// Queues a control frame; it goes before the next symbol, paced.
    ///
    /// # Errors
    /// [`SenderError::QueueFull`] when [`MAX_CONTROLS`] are waiting;
    /// [`SenderError::Wire`] for fields the codec refuses;
    /// [`SenderError::ControlTooLong`] when the frame does not fit the MTU.
    pub fn send_control(&mut self, control: Control) -> Result<(), SenderError> {
        if self.controls.len() >= MAX_CONTROLS {
            return Err(SenderError::QueueFull);
        }
        // measured, not sealed: a datagram is sealed once, under the number it is sent with
        let len = wire::datagram_len(&self.control_body(&control))?;
        if len > self.max_len {
            return Err(SenderError::ControlTooLong(len));
        }
        self.controls.push_back(control);
        Ok(())
    }

    /// The body of the datagram carrying `control`.
    fn control_body<'c>(&self, control: &'c Control) -> Body<'c> {
        match control {
            Control::Announce {
                id,
                object_seq,
                size,
                retired,
                channel,
                name,
            } => Body::Announce(Announce {
                id: id.0,
                object_seq: *object_seq,
                size: *size,
                // the open block, if any, is numbered next_block and may hold the
                // End of a pass cut short by this retirement
                block_bound: self.next_block + u64::from(!self.writer.is_empty()),
                flags: if *retired { wire::ANNOUNCE_RETIRED } else { 0 },
                channel: channel.as_bytes(),
                name: name.as_bytes(),
            }),
            Control::Checkpoint(note) => Body::Checkpoint(note),
        }
    }

    /// Takes one live stream frame (1..=65 507 bytes, opaque here) at `now_ms`: its
    /// symbols go before any other data, paced (see `stream.rs` for the blocks).
    ///
    /// # Errors
    /// [`SenderError::Stream`] for a frame that is empty or too long; nothing is sent.
    pub fn push_stream(&mut self, now_ms: u64, frame: &[u8]) -> Result<(), SenderError> {
        self.now = self.now.max(now_ms);
        let out = self.stream.push(now_ms, frame)?;
        self.stats.stream_frames += 1;
        self.queue_stream(out);
        Ok(())
    }

    fn queue_stream(&mut self, out: impl Iterator<Item = StreamDatagram>) {
        for d in out {
            if self.stream_out.len() >= MAX_STREAM_QUEUE {
                self.stream_out.pop_front();
                self.stats.stream_symbols_dropped += 1;
            }
            self.stream_out.push_back(d);
        }
    }

    /// Counters.
    pub fn stats(&self) -> SenderStats {
        self.stats
    }

    /// Objects held: queued, in flight or within their repeat window.
    pub fn objects_held(&self) -> usize {
        self.objects.len()
    }

    /// Whether every queued object has retired and every datagram has gone.
    pub fn is_idle(&self) -> bool {
        self.objects.is_empty()
            && self.stream_out.is_empty()
            && self.stream.next_deadline().is_none()
            && self.tx.is_empty()
            && self.writer.is_empty()
            && self.finished.is_empty()
    }

    /// Whether new work waits: a fresh object, or a planned copy whose gap has
    /// passed. Spare passes give way to it.
    fn urgent(&self) -> bool {
        let pos = self.writer.stream_pos();
        !self.fresh.is_empty() || self.repeats.front().is_some_and(|r| r.eligible_at <= pos)
    }

    fn check_new(&mut self, id: ObjectId, header: &[u8], size: u64) -> Result<(), SenderError> {
        if header.len() > MAX_HEADER {
            return Err(SenderError::HeaderTooLarge(header.len()));
        }
        if size > MAX_OBJECT_SIZE {
            return Err(SenderError::ObjectTooLarge(size));
        }
        if self.objects.contains_key(&id) {
            return Err(SenderError::DuplicateObject(id));
        }
        if self.objects.len() >= self.max_queued {
            // Make room: the object nearest the end of its repeat window goes first.
            let Some(&(_, generation, old)) = self.expiry.first() else {
                return Err(SenderError::QueueFull);
            };
            self.retire(old, generation);
            self.stats.objects_retired_early += 1;
        }
        Ok(())
    }

    fn insert(&mut self, id: ObjectId, header: Vec<u8>, size: u64, retire_at: Option<u64>) -> u64 {
        self.generation += 1;
        let generation = self.generation;
        self.objects.insert(
            id,
            Entry {
                header,
                size,
                generation,
                passes: u8::from(retire_at.is_some()),
                retire_at,
            },
        );
        self.stats.objects_enqueued += 1;
        generation
    }

    /// Queues an object: `header` (at most 16 MiB, sent before the content) and
    /// `size` bytes of content, asked for later through [`wants`](Self::wants).
    /// New objects go before planned copies whose gap has not passed and before
    /// every spare pass. Errors: too large, already queued, or the queue is full
    /// with no object in its repeat window to retire early.
    pub fn enqueue(&mut self, id: ObjectId, header: Vec<u8>, size: u64) -> Result<(), SenderError> {
        self.check_new(id, &header, size)?;
        self.insert(id, header, size, None);
        self.fresh.push_back(id);
        self.fill();
        Ok(())
    }

    /// Takes back an object whose first pass went out before a restart and whose
    /// repeat window ends at `retire_at_ms`: it is only sent with spare capacity,
    /// in the order of these calls, and retires at `retire_at_ms` (at the next
    /// [`poll_transmit`](Self::poll_transmit) if that has passed). Errors as
    /// [`enqueue`](Self::enqueue).
    pub fn enqueue_repeat(
        &mut self,
        id: ObjectId,
        header: Vec<u8>,
        size: u64,
        retire_at_ms: u64,
    ) -> Result<(), SenderError> {
        self.check_new(id, &header, size)?;
        let generation = self.insert(id, header, size, Some(retire_at_ms));
        self.expiry.insert((retire_at_ms, generation, id));
        self.ring.push_back(Spare {
            id,
            generation,
            not_before: 0,
        });
        self.fill();
        Ok(())
    }

    /// Forgets an object (for example, its content can no longer be read). A copy
    /// in flight is ended with an abort record, so the receiver drops it cleanly.
    /// Returns whether the object was known.
    pub fn cancel(&mut self, id: ObjectId) -> bool {
        if !self.forget(id) {
            return false;
        }
        self.events.push_back(SenderEvent::ObjectCancelled { id });
        self.fill();
        true
    }

    /// Removes an object from every queue; a pass in flight is aborted.
    fn forget(&mut self, id: ObjectId) -> bool {
        let Some(e) = self.objects.remove(&id) else {
            return false;
        };
        if let Some(at) = e.retire_at {
            self.expiry.remove(&(at, e.generation, id));
        }
        self.fresh.retain(|x| *x != id);
        self.repeats.retain(|r| r.id != id);
        // Ring entries of a forgotten generation are skipped when they come up.
        if let Some(a) = self.active.as_mut()
            && a.id == id
        {
            a.aborted = true;
            if self.want.is_some_and(|w| w.id == id) {
                self.want = None;
            }
        }
        true
    }

    /// Retires an object: its retention has ended.
    fn retire(&mut self, id: ObjectId, generation: u64) {
        if self
            .objects
            .get(&id)
            .is_some_and(|e| e.generation == generation)
            && self.forget(id)
        {
            self.stats.objects_retired += 1;
            self.events.push_back(SenderEvent::ObjectRetired { id });
        }
    }

    /// Retires the objects whose repeat window has ended.
    fn expire(&mut self, now: u64) {
        while let Some(&(at, generation, id)) = self.expiry.first() {
            if at > now {
                break;
            }
            self.expiry.pop_first();
            self.retire(id, generation);
        }
    }

    /// The content chunk the sender needs next, if any.
    pub fn wants(&self) -> Option<Want> {
        self.want
    }

    /// Supplies content asked for by [`wants`](Self::wants): the same id and
    /// offset, 1 to `max_len` bytes.
    pub fn feed(&mut self, id: ObjectId, offset: u64, bytes: &[u8]) -> Result<(), SenderError> {
        let Some(w) = self.want else {
            return Err(SenderError::NotWanted { id, offset });
        };
        if w.id != id || w.offset != offset {
            return Err(SenderError::NotWanted { id, offset });
        }
        if bytes.is_empty() || bytes.len() > w.max_len {
            return Err(SenderError::BadChunkLength {
                got: bytes.len(),
                max: w.max_len,
            });
        }
        let Some(a) = self.active.as_mut() else {
            return Err(SenderError::NotWanted { id, offset });
        };
        if !self.writer.put_data(&id, a.pos, bytes) {
            // Cannot happen: max_len was sized to the room left.
            return Err(SenderError::BadChunkLength {
                got: bytes.len(),
                max: self.writer.data_room(),
            });
        }
        a.pos += bytes.len() as u64;
        self.stats.stream_bytes += (DATA_HDR + bytes.len()) as u64;
        if a.spare {
            self.stats.spare_stream_bytes += bytes.len() as u64;
        }
        self.want = None;
        self.fill();
        Ok(())
    }

    /// Picks the next pass: a planned copy whose gap has passed, else a fresh
    /// object, else any planned copy, else the oldest object of the repeat ring
    /// whose interval has passed.
    fn next_copy(&mut self) -> Option<Active> {
        let pos = self.writer.stream_pos();
        let repeat_ready = self
            .repeats
            .front()
            .is_some_and(|r| r.eligible_at <= pos || self.fresh.is_empty());
        let (id, spare) = if repeat_ready {
            (self.repeats.pop_front()?.id, false)
        } else if let Some(id) = self.fresh.pop_front() {
            (id, false)
        } else {
            let s = self.ring.front().copied()?;
            if self
                .objects
                .get(&s.id)
                .is_none_or(|e| e.generation != s.generation)
            {
                // Retired or cancelled since: drop the stale entry.
                self.ring.pop_front();
                return None;
            }
            if s.not_before > self.now {
                return None;
            }
            self.ring.pop_front();
            (s.id, true)
        };
        let e = self.objects.get_mut(&id)?;
        let copy = e.passes.min(COPIES_OPEN - 1);
        e.passes = e.passes.saturating_add(1);
        let header_len = e.header.len() as u64;
        Some(Active {
            id,
            generation: e.generation,
            copy,
            spare,
            header_len,
            total: header_len + e.size,
            pos: 0,
            started: false,
            aborted: false,
        })
    }

    /// Whether the ring holds an object whose spare pass may start now.
    fn ring_ready(&self) -> bool {
        self.ring.front().is_some_and(|s| s.not_before <= self.now)
    }

    /// Writes records into the open block until it is full, content is needed
    /// from the shell, or there is nothing to send.
    fn fill(&mut self) {
        while !self.open_full && self.want.is_none() {
            if self.active.is_none() {
                if self.fresh.is_empty() && self.repeats.is_empty() && !self.ring_ready() {
                    return;
                }
                let before = self.ring.len();
                self.active = self.next_copy();
                if self.active.is_none() && self.ring.len() == before {
                    // Nothing could start (a planned copy of a forgotten object
                    // was dropped, or the ring's head is not due): try again
                    // only if a queue still has work.
                    if self.fresh.is_empty() && self.repeats.is_empty() {
                        return;
                    }
                }
                continue;
            }
            let urgent = self.urgent();
            if self.active.as_ref().is_some_and(|a| !a.spare) {
                self.open_fresh = true;
            }
            let open_room = self.open_room();
            let Some(a) = self.active.as_mut() else {
                return;
            };
            if a.spare && !a.aborted && urgent {
                // New work first: this spare pass starts over later, first in line.
                a.aborted = true;
                self.stats.spare_passes_preempted += 1;
                self.ring.push_front(Spare {
                    id: a.id,
                    generation: a.generation,
                    not_before: 0,
                });
                if let Some(e) = self.objects.get_mut(&a.id) {
                    e.passes = e.passes.saturating_sub(1);
                }
            }
            if a.aborted {
                if a.started && !self.writer.put_abort(&a.id) {
                    self.open_full = true;
                    return;
                }
                if a.started {
                    self.stats.stream_bytes += END_LEN as u64;
                }
                self.active = None;
                continue;
            }
            if !a.started {
                if a.spare && self.open_fresh {
                    // new work ends its block: it goes out now, not after a
                    // block's worth of repeats
                    self.open_full = true;
                    return;
                }
                let need = if a.total == 0 {
                    START_LEN + END_LEN
                } else {
                    START_LEN + DATA_HDR + 1
                };
                if open_room < need {
                    self.open_full = true;
                    return;
                }
                let copies = if self.window > 0 {
                    COPIES_OPEN
                } else {
                    self.copies
                };
                // header_len <= MAX_HEADER, checked at enqueue.
                self.writer.put_start(
                    &a.id,
                    a.copy.min(copies - 1),
                    copies,
                    a.header_len as u32,
                    a.total - a.header_len,
                );
                self.stats.stream_bytes += START_LEN as u64;
                a.started = true;
                continue;
            }
            if a.pos < a.header_len {
                let room = open_room.saturating_sub(DATA_HDR) as u64;
                let n = (a.header_len - a.pos).min(room) as usize;
                let Some(e) = self.objects.get(&a.id) else {
                    a.aborted = true;
                    continue;
                };
                let from = a.pos as usize;
                let Some(part) = e.header.get(from..from + n) else {
                    a.aborted = true;
                    continue;
                };
                if n == 0 || !self.writer.put_data(&a.id, a.pos, part) {
                    self.open_full = true;
                    return;
                }
                self.stats.stream_bytes += (DATA_HDR + n) as u64;
                if a.spare {
                    self.stats.spare_stream_bytes += n as u64;
                }
                a.pos += n as u64;
                continue;
            }
            if a.pos < a.total {
                let n = (a.total - a.pos)
                    .min(open_room.saturating_sub(DATA_HDR) as u64)
                    .min(self.max_chunk as u64) as usize;
                if n == 0 {
                    self.open_full = true;
                    return;
                }
                self.want = Some(Want {
                    id: a.id,
                    offset: a.pos - a.header_len,
                    max_len: n,
                });
                return;
            }
            if !self.writer.put_end(&a.id) {
                self.open_full = true;
                return;
            }
            self.stats.stream_bytes += END_LEN as u64;
            let planned_done = a.spare || a.copy.saturating_add(1) >= self.copies;
            self.open_done.push(Done {
                id: a.id,
                generation: a.generation,
                copy: a.copy,
                planned_done,
                spare: a.spare,
            });
            if !planned_done {
                self.repeats.push_back(Repeat {
                    id: a.id,
                    eligible_at: self.writer.stream_pos().saturating_add(self.copy_gap),
                });
            }
            self.active = None;
        }
    }

    /// Whether the open block should be closed and coded now.
    fn block_closable(&self) -> bool {
        self.open_full || (!self.writer.is_empty() && self.want.is_none())
    }

    /// Whether another block may join the tx set: fewer than D in it, and the
    /// block numbers in it would still span fewer than D (so the receiver's
    /// window never has to give up a block still on the wire).
    fn tx_has_room(&self) -> bool {
        self.tx.len() < self.depth
            && self
                .tx
                .front()
                .is_none_or(|f| self.next_block - f.block < self.depth as u64)
    }

    /// Room left in the open block for records: a block holding only spare-pass
    /// records is cut at 1/D of a full block, so that the coded repeats new work
    /// may find ahead of it (the receiver unpacks blocks in order) come to one
    /// full block at most.
    fn open_room(&self) -> usize {
        let room = self.writer.room();
        if self.open_fresh {
            return room;
        }
        let used = self.block_bytes.saturating_sub(room);
        room.min((self.block_bytes / self.depth.max(1)).saturating_sub(used))
    }

    fn close_block(&mut self) -> Result<(), SenderError> {
        let t = usize::from(self.t);
        let data = self.writer.finish(t);
        let k = u16::try_from(data.len() / t).map_err(|_| FecError::SymbolCount(data.len() / t))?;
        let mut repair_count = fec::repair_count(k, self.repair_ratio, self.repair_extra);
        if !self.open_fresh {
            // A spare-only block, cut at 1/D of a block, keeps the repair symbols of
            // a full block (at most one per source symbol): as many bursts as a full
            // block survives, sent with spare capacity only.
            let full_k = u16::try_from(self.block_bytes / t).unwrap_or(u16::MAX);
            let full = fec::repair_count(full_k, self.repair_ratio, self.repair_extra);
            repair_count = repair_count.max(full.min(u32::from(k)));
        }
        let data = Arc::new(data);
        let repair = match &self.coder {
            Some(coder) if repair_count > 0 => {
                fec::Repairs::Coming(coder.start(data.clone(), self.t, repair_count))
            }
            _ => fec::Repairs::Ready(fec::encode_repair(&data, self.t, repair_count)?),
        };
        self.tx.push_back(TxBlock {
            block: self.next_block,
            k,
            data,
            repair_count: repair_count as usize,
            repair,
            next: 0,
            done: std::mem::take(&mut self.open_done),
        });
        self.open_fresh = false;
        self.next_block += 1;
        self.open_full = false;
        self.fill();
        Ok(())
    }

    /// Every block below this number has been sent in full.
    fn low_watermark(&self) -> u64 {
        self.tx.front().map_or(self.next_block, |f| f.block)
    }

    fn heartbeat(&self, now_ms: u64) -> Heartbeat {
        Heartbeat {
            session_start_ms: self.start_ms,
            sender_time_ms: now_ms,
            objects_enqueued: self.stats.objects_enqueued,
            objects_sent: self.stats.copies_sent,
            objects_retired: self.stats.objects_retired,
            // With interleaving, blocks finish out of order: the receiver may
            // only take the blocks below the low watermark as sent.
            blocks_sent: self.low_watermark(),
            carousel_pending: u32::try_from(self.repeats.len() + self.fresh.len())
                .unwrap_or(u32::MAX),
            interval_ms: u32::try_from(self.hb_interval).unwrap_or(u32::MAX),
            link: Some(self.link),
        }
    }

    /// Reports the passes of blocks below the low watermark as sent, in block order.
    fn settle(&mut self, now_ms: u64) {
        let low = self.low_watermark();
        while let Some(entry) = self.finished.first_entry() {
            if *entry.key() >= low {
                break;
            }
            for d in entry.remove() {
                self.pass_sent(now_ms, d);
            }
        }
    }

    fn pass_sent(&mut self, now_ms: u64, d: Done) {
        self.stats.copies_sent += 1;
        if d.spare {
            self.stats.spare_passes_sent += 1;
        }
        let window = self.window;
        let interval = self.interval;
        let Some(e) = self.objects.get_mut(&d.id) else {
            return;
        };
        // a pass of an earlier enqueue of this id (retired, then queued again) is not
        // a pass of this one
        if e.generation != d.generation {
            return;
        }
        self.events.push_back(SenderEvent::ObjectSent {
            id: d.id,
            copy: d.copy,
        });
        if e.retire_at.is_none() && window > 0 {
            let at = now_ms.saturating_add(window);
            e.retire_at = Some(at);
            self.expiry.insert((at, d.generation, d.id));
        }
        if !d.planned_done {
            return;
        }
        match e.retire_at {
            Some(at) if at > now_ms => self.ring.push_back(Spare {
                id: d.id,
                generation: d.generation,
                not_before: now_ms.saturating_add(interval),
            }),
            _ => self.retire(d.id, d.generation),
        }
    }

    /// Writes the next datagram into `buf` (at least
    /// [`max_datagram_len`](Self::max_datagram_len) bytes) and returns its length,
    /// or `None` when nothing may go now (see [`poll_timeout`](Self::poll_timeout)).
    pub fn poll_transmit(
        &mut self,
        now_ms: u64,
        buf: &mut [u8],
    ) -> Result<Option<usize>, SenderError> {
        self.now = self.now.max(now_ms);
        self.pacer.refill(now_ms);
        self.expire(now_ms);
        self.fill();
        let header = Header {
            session: self.session,
            seq: self.seq,
        };
        if now_ms >= self.next_heartbeat {
            let hb = self.heartbeat(now_ms);
            let len = wire::encode(&self.key, &header, &Body::Heartbeat(hb), buf)?;
            self.pacer.take(len);
            self.seq += 1;
            self.next_heartbeat = now_ms.saturating_add(self.hb_interval);
            self.stats.heartbeats_sent += 1;
            self.stats.bytes_sent += len as u64;
            return Ok(Some(len));
        }
        let closed = self.stream.poll(now_ms)?;
        self.queue_stream(closed);
        if let Some(d) = self.stream_out.front() {
            if !self.pacer.ready(d.data.len() + SYMBOL_OVERHEAD) {
                return Ok(None);
            }
            let len = wire::encode(&self.key, &header, &d.body(), buf)?;
            self.stream_out.pop_front();
            self.pacer.take(len);
            self.seq += 1;
            self.stats.bytes_sent += len as u64;
            self.stats.stream_symbols_sent += 1;
            return Ok(Some(len));
        }
        if let Some(c) = self.controls.front() {
            // checked at send_control: it fits the MTU, so the buffer. Measured before it
            // is sealed: a datagram that must wait is sealed when it goes, under that number
            let body = self.control_body(c);
            if !self.pacer.ready(wire::datagram_len(&body)?) {
                return Ok(None);
            }
            let len = wire::encode(&self.key, &header, &body, buf)?;
            self.controls.pop_front();
            self.pacer.take(len);
            self.seq += 1;
            self.stats.bytes_sent += len as u64;
            return Ok(Some(len));
        }
        if self.tx_has_room() && self.block_closable() {
            self.close_block()?;
        }
        if self.tx.is_empty() {
            return Ok(None);
        }
        let t = usize::from(self.t);
        if !self.pacer.ready(t + SYMBOL_OVERHEAD) {
            return Ok(None);
        }
        if self.cursor >= self.tx.len() {
            self.cursor = 0;
        }
        let Some(tx) = self.tx.get_mut(self.cursor) else {
            return Ok(None);
        };
        let k = usize::from(tx.k);
        let total = k + tx.repair_count;
        let data: &[u8] = if tx.next < k {
            match tx.data.get(tx.next * t..(tx.next + 1) * t) {
                Some(d) => d,
                None => return Ok(None),
            }
        } else {
            // coming from the coder: waits for it here (it had the source symbols' time);
            // a coder that failed (a worker gone) has the block coded here instead, as
            // without one, so one failure never holds the link
            let coded = matches!(tx.repair.get(), Ok(r) if r.len() == tx.repair_count);
            if !coded {
                let count = u32::try_from(tx.repair_count).unwrap_or(u32::MAX);
                match fec::encode_repair(&tx.data, self.t, count) {
                    Ok(r) => tx.repair = fec::Repairs::Ready(r),
                    Err(e) => {
                        // it cannot be coded at all: the block is dropped, as when
                        // coding failed at close, and sending goes on with the next
                        self.tx.remove(self.cursor);
                        return Err(e.into());
                    }
                }
            }
            let Ok(repair) = tx.repair.get() else {
                return Ok(None);
            };
            match repair.get(tx.next - k) {
                Some(r) => r,
                None => return Ok(None),
            }
        };
        let sym = Symbol {
            block: tx.block,
            source_symbols: tx.k,
            symbol_size: self.t,
            esi: tx.next as u32,
            data,
        };
        let len = wire::encode(&self.key, &header, &Body::Symbol(sym), buf)?;
        self.pacer.take(len);
        self.seq += 1;
        self.stats.bytes_sent += len as u64;
        if tx.next < k {
            self.stats.source_symbols_sent += 1;
        } else {
            self.stats.repair_symbols_sent += 1;
        }
        tx.next += 1;
        if tx.next >= total {
            let block = tx.block;
            let done = std::mem::take(&mut tx.done);
            self.tx.remove(self.cursor);
            self.stats.blocks_sent += 1;
            if !done.is_empty() {
                self.finished.insert(block, done);
            }
            self.settle(now_ms);
        } else {
            self.cursor += 1;
        }
        Ok(Some(len))
    }

    /// When to call [`poll_transmit`](Self::poll_transmit) next: the next
    /// heartbeat, when the pacer lets the next symbol go, when the repeat ring's
    /// next spare pass is due, or when the next repeat window ends. Feeding
    /// content or enqueueing may make work earlier.
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut at = self.next_heartbeat;
        if let Some(d) = self.stream.next_deadline() {
            at = at.min(d);
        }
        if !self.stream_out.is_empty() {
            at = at.min(self.pacer.ready_at(usize::from(self.t) + SYMBOL_OVERHEAD));
        } else if !self.controls.is_empty() {
            at = at.min(self.pacer.ready_at(self.max_datagram_len()));
        } else if !self.tx.is_empty() || (self.tx_has_room() && self.block_closable()) {
            at = at.min(self.pacer.ready_at(usize::from(self.t) + SYMBOL_OVERHEAD));
        }
        if self.active.is_none()
            && self.fresh.is_empty()
            && self.repeats.is_empty()
            && let Some(s) = self.ring.front()
        {
            at = at.min(s.not_before.max(self.now));
        }
        if let Some(&(end, _, _)) = self.expiry.first() {
            at = at.min(end);
        }
        Some(at)
    }

    /// The next event for the shell.
    pub fn poll_event(&mut self) -> Option<SenderEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SenderConfig {
        let mut c = SenderConfig::new([1u8; 32], 1500);
        c.source_symbols = 16;
        c.copies = 2;
        c.repeat_window_ms = 0;
        c
    }

    #[test]
    fn every_heartbeat_states_the_link_parameters() {
        let mut c = cfg();
        c.mtu = 9000;
        c.config_digest = [4; wire::CONFIG_DIGEST_LEN];
        let mut s = Sender::new(c, 1, 0).unwrap();
        let mut buf = vec![0u8; s.max_datagram_len()];
        let n = s
            .poll_transmit(0, &mut buf)
            .unwrap()
            .expect("a heartbeat at start");
        let mut plain = Vec::new();
        let d = wire::decode(&LinkKey::new(&[1u8; 32]), &buf[..n], &mut plain).unwrap();
        let Body::Heartbeat(hb) = d.body else {
            panic!("not a heartbeat: {d:?}")
        };
        assert_eq!(
            hb.link,
            Some(wire::LinkParams {
                mtu: 9000,
                symbol_size: 8920,
                source_symbols: 16,
                config_digest: [4; wire::CONFIG_DIGEST_LEN],
            })
        );
    }

    #[test]
    fn rejects_bad_config() {
        let mut c = cfg();
        c.copies = 0;
        assert!(matches!(
            Sender::new(c, 1, 0),
            Err(SenderError::Config(ConfigError::Copies))
        ));
        let mut c = cfg();
        c.mtu = 60;
        assert!(matches!(
            Sender::new(c, 1, 0),
            Err(SenderError::Config(ConfigError::MtuTooSmall(60)))
        ));
        let mut c = cfg();
        c.repair_ratio = f64::NAN;
        assert!(Sender::new(c, 1, 0).is_err());
        let mut c = cfg();
        c.symbol_size = 1500;
        assert!(Sender::new(c, 1, 0).is_err());
    }

    #[test]
    fn api_misuse_is_an_error() {
        let mut s = Sender::new(cfg(), 1, 0).unwrap();
        let id = ObjectId([1; 16]);
        s.enqueue(id, vec![], 10).unwrap();
        assert_eq!(
            s.enqueue(id, vec![], 10),
            Err(SenderError::DuplicateObject(id))
        );
        let w = s.wants().unwrap();
        assert_eq!((w.id, w.offset, w.max_len), (id, 0, 10));
        assert!(matches!(
            s.feed(id, 1, &[0]),
            Err(SenderError::NotWanted { .. })
        ));
        assert!(matches!(
            s.feed(id, 0, &[0; 11]),
            Err(SenderError::BadChunkLength { .. })
        ));
        assert!(matches!(
            s.feed(id, 0, &[]),
            Err(SenderError::BadChunkLength { .. })
        ));
        s.feed(id, 0, &[0; 4]).unwrap();
        assert_eq!(s.wants().unwrap().offset, 4);
        let mut small = [0u8; 10];
        assert!(matches!(
            s.poll_transmit(0, &mut small),
            Err(SenderError::Wire(_))
        ));
        assert!(s.cancel(id));
        assert!(!s.cancel(id));
        assert_eq!(s.poll_event(), Some(SenderEvent::ObjectCancelled { id }));
    }

    #[test]
    fn carousel_sends_each_copy_and_retires() {
        let mut s = Sender::new(cfg(), 1, 0).unwrap();
        let ids: Vec<ObjectId> = (0..3u8).map(|n| ObjectId([n; 16])).collect();
        for id in &ids {
            s.enqueue(*id, vec![9; 5], 100).unwrap();
        }
        let mut buf = vec![0u8; s.max_datagram_len()];
        let mut events = Vec::new();
        for _ in 0..1000 {
            while let Some(w) = s.wants() {
                s.feed(w.id, w.offset, &vec![7u8; w.max_len]).unwrap();
            }
            if s.poll_transmit(1, &mut buf).unwrap().is_none() {
                break;
            }
            events.extend(std::iter::from_fn(|| s.poll_event()));
        }
        for id in &ids {
            assert!(events.contains(&SenderEvent::ObjectSent { id: *id, copy: 0 }));
            assert!(events.contains(&SenderEvent::ObjectSent { id: *id, copy: 1 }));
            assert!(events.contains(&SenderEvent::ObjectRetired { id: *id }));
        }
        assert!(s.is_idle());
        assert_eq!(s.poll_timeout(), Some(501));
    }
}
