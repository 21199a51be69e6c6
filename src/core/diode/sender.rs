//! The sending side of the diode link as a state machine. Owns the object queue
//! and the carousel (each object is sent `copies` times, later copies after a gap
//! of newer data), asking the shell for content chunk by chunk, closing blocks and
//! having them RaptorQ-coded, pacing datagrams, heartbeats, and the events that
//! tell the shell when an object's last copy is out.
//!
//! ```text
//! enqueue ─► fresh queue ─┐                ┌─► repeat queue (copy n+1, eligible
//!                         ├─► active copy ─┤    after `copy_gap_bytes` of stream)
//!        repeat queue ────┘   │ Start/Data/End records
//!                             ▼
//!             open block (BlockWriter) ── full, or nothing more to add
//!                             ▼
//!             tx block: K source + ceil(K·r)+c repair symbols ─► pacer ─► datagrams
//! ```
//! Usage: call [`Sender::enqueue`]; while [`Sender::wants`] returns a chunk,
//! read it from the spool and [`Sender::feed`] it; call
//! [`Sender::poll_transmit`] until it returns `None`, then wait until
//! [`Sender::poll_timeout`] (or new work) and repeat; drain
//! [`Sender::poll_event`]. Small control frames (object announcements, signed
//! audit checkpoints) queued with [`Sender::send_control`] go before the next
//! symbol, paced like the rest. The clock is milliseconds (wall clock: its value at
//! start orders sessions across sender restarts).

use std::collections::{HashMap, VecDeque};

use thiserror::Error;

use super::fec::{self, FecError};
use super::pacer::TokenBucket;
use super::pack::{BlockWriter, DATA_HDR, END_LEN, MAX_HEADER, MAX_OBJECT_SIZE, START_LEN};
use super::wire::{
    self, Announce, Body, Header, Heartbeat, LinkKey, SYMBOL_OVERHEAD, Symbol, WireError,
};
use super::{ConfigError, ObjectId};

/// Sender configuration (see [`SenderConfig::new`] for the defaults).
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// The link key shared with the receiver.
    pub key: [u8; 32],
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
    /// How many times each object is sent (at least 1).
    pub copies: u8,
    /// Record-stream bytes that must pass before another copy of an object goes,
    /// unless nothing else is waiting; 0 derives 8 full blocks.
    pub copy_gap_bytes: u64,
    /// Heartbeat interval in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// Most objects queued or in flight at once.
    pub max_queued_objects: usize,
    /// Largest content chunk asked of the shell at once.
    pub max_chunk: usize,
}

impl SenderConfig {
    /// Defaults for `mtu`: T from the MTU, K = 512 (up to 4000) or 256 (jumbo),
    /// repair ratio 0.1 + 2 symbols, 2 copies, unlimited rate, 500 ms heartbeats.
    pub fn new(key: [u8; 32], mtu: usize) -> Self {
        Self {
            key,
            mtu,
            symbol_size: 0,
            source_symbols: if mtu > 4000 { 256 } else { 512 },
            repair_ratio: 0.1,
            repair_extra: 2,
            rate_bytes_per_s: 0,
            burst_bytes: 256 * 1024,
            copies: 2,
            copy_gap_bytes: 0,
            heartbeat_interval_ms: 500,
            max_queued_objects: 65_536,
            max_chunk: 1 << 20,
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
}

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
    /// Every datagram of copy `copy` (0-based) of the object has been handed out.
    ObjectSent {
        /// Object id.
        id: ObjectId,
        /// Which copy.
        copy: u8,
    },
    /// The object's last copy has gone out: the shell may drop it from the spool.
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
    /// Object copies fully sent.
    pub copies_sent: u64,
    /// Objects retired.
    pub objects_retired: u64,
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
}

#[derive(Debug)]
struct Entry {
    header: Vec<u8>,
    size: u64,
}

#[derive(Debug, Clone, Copy)]
struct Repeat {
    id: ObjectId,
    copy: u8,
    eligible_at: u64,
}

#[derive(Debug)]
struct Active {
    id: ObjectId,
    copy: u8,
    header_len: u64,
    total: u64,
    pos: u64,
    started: bool,
    aborted: bool,
}

#[derive(Debug, Clone, Copy)]
struct Done {
    id: ObjectId,
    copy: u8,
    retire: bool,
}

#[derive(Debug)]
struct TxBlock {
    block: u64,
    k: u16,
    data: Vec<u8>,
    repair: Vec<Vec<u8>>,
    next: usize,
    done: Vec<Done>,
}

/// The sending state machine. See the module documentation for the call pattern.
#[derive(Debug)]
pub struct Sender {
    key: LinkKey,
    session: u64,
    start_ms: u64,
    t: u16,
    block_bytes: usize,
    repair_ratio: f64,
    repair_extra: u16,
    copies: u8,
    copy_gap: u64,
    hb_interval: u64,
    max_queued: usize,
    max_chunk: usize,
    objects: HashMap<ObjectId, Entry>,
    fresh: VecDeque<ObjectId>,
    repeats: VecDeque<Repeat>,
    active: Option<Active>,
    want: Option<Want>,
    writer: BlockWriter,
    open_done: Vec<Done>,
    open_full: bool,
    tx: Option<TxBlock>,
    seq: u64,
    next_block: u64,
    pacer: TokenBucket,
    next_heartbeat: u64,
    events: VecDeque<SenderEvent>,
    stats: SenderStats,
    max_len: usize,
    controls: VecDeque<Control>,
}

impl Sender {
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
        let mut s = Self {
            key: LinkKey::new(&config.key),
            session,
            start_ms: now_ms,
            t,
            block_bytes,
            repair_ratio: config.repair_ratio,
            repair_extra: config.repair_extra,
            copies: config.copies,
            copy_gap,
            hb_interval: config.heartbeat_interval_ms,
            max_queued: config.max_queued_objects,
            max_chunk: config.max_chunk,
            objects: HashMap::new(),
            fresh: VecDeque::new(),
            repeats: VecDeque::new(),
            active: None,
            want: None,
            writer: BlockWriter::new(block_bytes),
            open_done: Vec::new(),
            open_full: false,
            tx: None,
            seq: 0,
            next_block: 0,
            pacer: TokenBucket::new(config.rate_bytes_per_s, config.burst_bytes, now_ms),
            next_heartbeat: now_ms,
            events: VecDeque::new(),
            stats: SenderStats::default(),
            max_len,
            controls: VecDeque::new(),
        };
        s.fill();
        Ok(s)
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
        let mut buf = vec![0u8; 2048];
        let header = Header { session: 0, seq: 0 };
        let len = self.encode_control(&control, &header, &mut buf)?;
        if len > self.max_len {
            return Err(SenderError::ControlTooLong(len));
        }
        self.controls.push_back(control);
        Ok(())
    }

    fn encode_control(
        &self,
        control: &Control,
        header: &Header,
        buf: &mut [u8],
    ) -> Result<usize, WireError> {
        let body = match control {
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
                block_bound: self.stats.blocks_sent,
                flags: if *retired { wire::ANNOUNCE_RETIRED } else { 0 },
                channel: channel.as_bytes(),
                name: name.as_bytes(),
            }),
            Control::Checkpoint(note) => Body::Checkpoint(note),
        };
        wire::encode(&self.key, header, &body, buf)
    }

    /// Counters.
    pub fn stats(&self) -> SenderStats {
        self.stats
    }

    /// Whether every queued object has retired and every datagram has gone.
    pub fn is_idle(&self) -> bool {
        self.objects.is_empty() && self.tx.is_none() && self.writer.is_empty()
    }

    /// Queues an object: `header` is opaque (the signed manifest frame), `size`
    /// the content length. Content is asked for later through [`wants`](Self::wants).
    pub fn enqueue(&mut self, id: ObjectId, header: Vec<u8>, size: u64) -> Result<(), SenderError> {
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
            return Err(SenderError::QueueFull);
        }
        self.objects.insert(id, Entry { header, size });
        self.fresh.push_back(id);
        self.stats.objects_enqueued += 1;
        self.fill();
        Ok(())
    }

    /// Forgets an object (for example, its content can no longer be read). A copy
    /// in flight is ended with an abort record, so the receiver drops it cleanly.
    /// Returns whether the object was known.
    pub fn cancel(&mut self, id: ObjectId) -> bool {
        if self.objects.remove(&id).is_none() {
            return false;
        }
        self.fresh.retain(|x| *x != id);
        self.repeats.retain(|r| r.id != id);
        if let Some(a) = self.active.as_mut()
            && a.id == id
        {
            a.aborted = true;
            if self.want.is_some_and(|w| w.id == id) {
                self.want = None;
            }
        }
        self.events.push_back(SenderEvent::ObjectCancelled { id });
        self.fill();
        true
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
        self.want = None;
        self.fill();
        Ok(())
    }

    /// Picks the next object copy: a repeat whose gap has passed (or any repeat
    /// when nothing fresh waits), else a fresh object.
    fn next_copy(&mut self) -> Option<Active> {
        let pos = self.writer.stream_pos();
        let repeat_ready = self
            .repeats
            .front()
            .is_some_and(|r| r.eligible_at <= pos || self.fresh.is_empty());
        let (id, copy) = if repeat_ready {
            let r = self.repeats.pop_front()?;
            (r.id, r.copy)
        } else {
            (self.fresh.pop_front()?, 0)
        };
        let e = self.objects.get(&id)?;
        let header_len = e.header.len() as u64;
        Some(Active {
            id,
            copy,
            header_len,
            total: header_len + e.size,
            pos: 0,
            started: false,
            aborted: false,
        })
    }

    /// Writes records into the open block until it is full, content is needed
    /// from the shell, or there is nothing to send.
    fn fill(&mut self) {
        while !self.open_full && self.want.is_none() {
            if self.active.is_none() {
                if self.fresh.is_empty() && self.repeats.is_empty() {
                    return;
                }
                self.active = self.next_copy();
                continue;
            }
            let Some(a) = self.active.as_mut() else {
                return;
            };
            if a.aborted {
                if a.started && !self.writer.put_abort(&a.id) {
                    self.open_full = true;
                    return;
                }
                self.active = None;
                continue;
            }
            if !a.started {
                let need = if a.total == 0 {
                    START_LEN + END_LEN
                } else {
                    START_LEN + DATA_HDR + 1
                };
                if self.writer.room() < need {
                    self.open_full = true;
                    return;
                }
                // header_len <= MAX_HEADER, checked at enqueue.
                self.writer.put_start(
                    &a.id,
                    a.copy,
                    self.copies,
                    a.header_len as u32,
                    a.total - a.header_len,
                );
                a.started = true;
                continue;
            }
            if a.pos < a.header_len {
                let room = self.writer.data_room() as u64;
                let n = (a.header_len - a.pos).min(room) as usize;
                let Some(e) = self.objects.get(&a.id) else {
                    a.aborted = true;
                    continue;
                };
                let from = a.pos as usize;
                if n == 0
                    || !self
                        .writer
                        .put_data(&a.id, a.pos, &e.header[from..from + n])
                {
                    self.open_full = true;
                    return;
                }
                a.pos += n as u64;
                continue;
            }
            if a.pos < a.total {
                let n = (a.total - a.pos)
                    .min(self.writer.data_room() as u64)
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
            let retire = a.copy.saturating_add(1) >= self.copies;
            self.open_done.push(Done {
                id: a.id,
                copy: a.copy,
                retire,
            });
            if !retire {
                self.repeats.push_back(Repeat {
                    id: a.id,
                    copy: a.copy + 1,
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

    fn close_block(&mut self) -> Result<(), SenderError> {
        let t = usize::from(self.t);
        let data = self.writer.finish(t);
        let k = u16::try_from(data.len() / t).map_err(|_| FecError::SymbolCount(data.len() / t))?;
        let repair = fec::encode_repair(
            &data,
            self.t,
            fec::repair_count(k, self.repair_ratio, self.repair_extra),
        )?;
        self.tx = Some(TxBlock {
            block: self.next_block,
            k,
            data,
            repair,
            next: 0,
            done: std::mem::take(&mut self.open_done),
        });
        self.next_block += 1;
        self.open_full = false;
        self.fill();
        Ok(())
    }

    fn heartbeat(&self, now_ms: u64) -> Heartbeat {
        Heartbeat {
            session_start_ms: self.start_ms,
            sender_time_ms: now_ms,
            objects_enqueued: self.stats.objects_enqueued,
            objects_sent: self.stats.copies_sent,
            objects_retired: self.stats.objects_retired,
            blocks_sent: self.stats.blocks_sent,
            carousel_pending: u32::try_from(self.repeats.len() + self.fresh.len())
                .unwrap_or(u32::MAX),
            interval_ms: u32::try_from(self.hb_interval).unwrap_or(u32::MAX),
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
        self.pacer.refill(now_ms);
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
        if let Some(c) = self.controls.front() {
            // checked at send_control: it fits the MTU, so the buffer
            let len = self.encode_control(c, &header, buf)?;
            if !self.pacer.ready(len) {
                return Ok(None);
            }
            self.controls.pop_front();
            self.pacer.take(len);
            self.seq += 1;
            self.stats.bytes_sent += len as u64;
            return Ok(Some(len));
        }
        if self.tx.is_none() && self.block_closable() {
            self.close_block()?;
        }
        let t = usize::from(self.t);
        let Some(tx) = self.tx.as_mut() else {
            return Ok(None);
        };
        if !self.pacer.ready(t + SYMBOL_OVERHEAD) {
            return Ok(None);
        }
        let k = usize::from(tx.k);
        let total = k + tx.repair.len();
        let data: &[u8] = if tx.next < k {
            &tx.data[tx.next * t..(tx.next + 1) * t]
        } else {
            match tx.repair.get(tx.next - k) {
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
            let done = std::mem::take(&mut tx.done);
            self.tx = None;
            self.stats.blocks_sent += 1;
            for d in done {
                self.stats.copies_sent += 1;
                self.events.push_back(SenderEvent::ObjectSent {
                    id: d.id,
                    copy: d.copy,
                });
                if d.retire && self.objects.remove(&d.id).is_some() {
                    self.stats.objects_retired += 1;
                    self.events
                        .push_back(SenderEvent::ObjectRetired { id: d.id });
                }
            }
        }
        Ok(Some(len))
    }

    /// When to call [`poll_transmit`](Self::poll_transmit) next: the next
    /// heartbeat, or when the pacer lets the next symbol go. Feeding content or
    /// enqueueing may make work earlier.
    pub fn poll_timeout(&self) -> Option<u64> {
        let hb = self.next_heartbeat;
        if !self.controls.is_empty() {
            Some(hb.min(self.pacer.ready_at(self.max_datagram_len())))
        } else if self.tx.is_some() || self.block_closable() {
            Some(hb.min(self.pacer.ready_at(usize::from(self.t) + SYMBOL_OVERHEAD)))
        } else {
            Some(hb)
        }
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
        c
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
