//! Packing objects into blocks and back. Owns the record format, the
//! [`BlockWriter`] that fills one block with records on the sending side, and the
//! [`Unpacker`] that turns recovered blocks back into per-object events on the
//! receiving side.
//!
//! An object copy is a record sequence: `Start`, then `Data` records covering its
//! logical stream (the opaque header bytes followed by the content), then `End`
//! (or `Abort`). Every block begins on a record boundary and records never span
//! blocks (a `Data` record is cut to fit), so a lost block costs only the object
//! copies with records in it: the next block parses on its own. Several small
//! objects share a block; a large one streams block after block.
//!
//! ```text
//! Start  1 | id[16] | copy u8 | copies u8 | header_len u32 | size u64
//! Data   2 | id[16] | offset u64 (in header+content) | len u32 | bytes
//! End    3 | id[16]
//! Abort  4 | id[16]
//! 0 (or the end of the block): padding to the end of the block
//! ```

use std::collections::{HashSet, VecDeque};

use bytes::Bytes;

use super::ObjectId;

/// Largest header an object may carry (the shell's signed manifest frame).
pub const MAX_HEADER: usize = 16 << 20;
/// Largest object size accepted (1 PiB).
pub const MAX_OBJECT_SIZE: u64 = 1 << 50;
/// Length of a `Start` record.
pub const START_LEN: usize = 31;
/// Length of a `Data` record before its bytes.
pub const DATA_HDR: usize = 29;
/// Length of an `End` or `Abort` record.
pub const END_LEN: usize = 17;

const TAG_PAD: u8 = 0;
const TAG_START: u8 = 1;
const TAG_DATA: u8 = 2;
const TAG_END: u8 = 3;
const TAG_ABORT: u8 = 4;

/// Fills one block with records.
#[derive(Debug)]
pub struct BlockWriter {
    buf: Vec<u8>,
    cap: usize,
    written: u64,
}

impl BlockWriter {
    /// A writer for blocks of `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self {
            buf: Vec::with_capacity(cap),
            cap,
            written: 0,
        }
    }

    /// Bytes still free in the block.
    pub fn room(&self) -> usize {
        self.cap - self.buf.len()
    }

    /// How many object bytes a `Data` record could still carry.
    pub fn data_room(&self) -> usize {
        self.room().saturating_sub(DATA_HDR)
    }

    /// Whether no record has been written to this block.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Record bytes written over the writer's life (a position in the stream).
    pub fn stream_pos(&self) -> u64 {
        self.written.saturating_add(self.buf.len() as u64)
    }

    fn put_id(&mut self, tag: u8, id: &ObjectId) {
        self.buf.push(tag);
        self.buf.extend_from_slice(&id.0);
    }

    /// Writes a `Start` record; false if it does not fit.
    pub fn put_start(
        &mut self,
        id: &ObjectId,
        copy: u8,
        copies: u8,
        header_len: u32,
        size: u64,
    ) -> bool {
        if self.room() < START_LEN {
            return false;
        }
        self.put_id(TAG_START, id);
        self.buf.push(copy);
        self.buf.push(copies);
        self.buf.extend_from_slice(&header_len.to_be_bytes());
        self.buf.extend_from_slice(&size.to_be_bytes());
        true
    }

    /// Writes a `Data` record; false if it does not fit whole.
    pub fn put_data(&mut self, id: &ObjectId, offset: u64, bytes: &[u8]) -> bool {
        let Ok(len) = u32::try_from(bytes.len()) else {
            return false;
        };
        if bytes.is_empty() || self.data_room() < bytes.len() {
            return false;
        }
        self.put_id(TAG_DATA, id);
        self.buf.extend_from_slice(&offset.to_be_bytes());
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(bytes);
        true
    }

    /// Writes an `End` record; false if it does not fit.
    pub fn put_end(&mut self, id: &ObjectId) -> bool {
        if self.room() < END_LEN {
            return false;
        }
        self.put_id(TAG_END, id);
        true
    }

    /// Writes an `Abort` record; false if it does not fit.
    pub fn put_abort(&mut self, id: &ObjectId) -> bool {
        if self.room() < END_LEN {
            return false;
        }
        self.put_id(TAG_ABORT, id);
        true
    }

    /// Takes the block, padded with zeros to a whole number (at least one) of
    /// `t`-byte symbols, and starts a new one.
    pub fn finish(&mut self, t: usize) -> Vec<u8> {
        let t = t.max(1);
        let symbols = self.buf.len().div_ceil(t).max(1);
        let mut block = std::mem::replace(&mut self.buf, Vec::with_capacity(self.cap));
        self.written = self.written.saturating_add(block.len() as u64);
        block.resize(symbols * t, TAG_PAD);
        block
    }
}

/// Why a copy of an object was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LossReason {
    /// A block carrying its records could not be recovered.
    BlockLost,
    /// The sender restarted (a new session) while it was in flight.
    SessionRestarted,
    /// The sender gave it up (it could not read the content).
    SenderAborted,
    /// Its records were inconsistent (an offset or length did not add up).
    Inconsistent,
}

/// What the unpacker found, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectEvent {
    /// An object begins; its header is complete.
    Start {
        /// Object id.
        id: ObjectId,
        /// The opaque header bytes.
        header: Vec<u8>,
        /// Content size in bytes.
        size: u64,
        /// Which carousel copy this is (0-based).
        copy: u8,
        /// How many copies the sender sends.
        copies: u8,
    },
    /// Content bytes at `offset`, in order and without gaps.
    Data {
        /// Object id.
        id: ObjectId,
        /// Offset in the content.
        offset: u64,
        /// The bytes (a slice of the recovered block, no copy).
        bytes: Bytes,
    },
    /// The whole object has arrived.
    Complete {
        /// Object id.
        id: ObjectId,
    },
    /// This copy of the object was lost; discard what arrived of it. A later
    /// copy may still start it again unless `last_copy` is true.
    Lost {
        /// Object id.
        id: ObjectId,
        /// Why.
        why: LossReason,
        /// Whether this was the sender's last copy.
        last_copy: bool,
    },
}

/// Counters kept by the unpacker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Copies of objects already complete, skipped.
    pub duplicate_objects: u64,
    /// Records of objects whose start was never seen (e.g. after a restart).
    pub orphan_records: u64,
    /// Blocks whose records did not parse (the rest of the block is skipped).
    pub malformed_blocks: u64,
}

#[derive(Debug)]
struct InProgress {
    id: ObjectId,
    copy: u8,
    copies: u8,
    header_len: u64,
    total: u64,
    next: u64,
    header: Vec<u8>,
}

/// A bounded memory of recently completed object ids.
#[derive(Debug)]
struct RecentIds {
    set: HashSet<ObjectId>,
    order: VecDeque<ObjectId>,
    cap: usize,
}

impl RecentIds {
    fn insert(&mut self, id: ObjectId) {
        if self.set.insert(id) {
            self.order.push_back(id);
            while self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// Turns recovered blocks, in order, back into object events.
#[derive(Debug)]
pub struct Unpacker {
    current: Option<InProgress>,
    skipping: Option<ObjectId>,
    completed: RecentIds,
    max_header: usize,
    out: VecDeque<ObjectEvent>,
    stats: UnpackStats,
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

fn read_id(b: &[u8]) -> ObjectId {
    let mut id = [0u8; 16];
    id.copy_from_slice(&b[..16]);
    ObjectId(id)
}

impl Unpacker {
    /// An unpacker remembering up to `remember` completed ids, accepting headers
    /// up to `max_header` bytes (at most [`MAX_HEADER`]).
    pub fn new(remember: usize, max_header: usize) -> Self {
        Self {
            current: None,
            skipping: None,
            completed: RecentIds {
                set: HashSet::new(),
                order: VecDeque::new(),
                cap: remember.max(1),
            },
            max_header: max_header.min(MAX_HEADER),
            out: VecDeque::new(),
            stats: UnpackStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> UnpackStats {
        self.stats
    }

    /// Header bytes buffered for the object in progress.
    pub fn buffered_bytes(&self) -> usize {
        self.current.as_ref().map_or(0, |c| c.header.capacity())
    }

    /// The next event.
    pub fn pop_event(&mut self) -> Option<ObjectEvent> {
        self.out.pop_front()
    }

    /// Whether `id` completed recently.
    pub fn is_complete(&self, id: &ObjectId) -> bool {
        self.completed.set.contains(id)
    }

    /// Forgets that `id` completed, so that its next copy is unpacked again.
    pub fn forget_complete(&mut self, id: &ObjectId) {
        if self.completed.set.remove(id) {
            self.completed.order.retain(|x| x != id);
        }
    }

    /// Drops the object in progress, reporting it lost for `why`.
    pub fn abort(&mut self, why: LossReason) {
        self.skipping = None;
        if let Some(c) = self.current.take() {
            self.out.push_back(ObjectEvent::Lost {
                id: c.id,
                why,
                last_copy: c.copy.saturating_add(1) >= c.copies,
            });
        }
    }

    /// One or more blocks were given up.
    pub fn gap(&mut self) {
        self.abort(LossReason::BlockLost);
    }

    /// Parses one recovered block.
    pub fn block(&mut self, block: Bytes) {
        let mut pos = 0usize;
        while pos < block.len() {
            match self.record(&block, pos) {
                Some(Some(next)) => pos = next,
                Some(None) => break,
                None => {
                    self.stats.malformed_blocks += 1;
                    self.abort(LossReason::Inconsistent);
                    break;
                }
            }
        }
    }

    /// Parses the record at `pos`: `Some(Some(next))` to go on, `Some(None)` at
    /// padding, `None` if malformed.
    fn record(&mut self, block: &Bytes, pos: usize) -> Option<Option<usize>> {
        let b = &block[pos..];
        let tag = *b.first()?;
        if tag == TAG_PAD {
            return Some(None);
        }
        match tag {
            TAG_START => {
                let r = b.get(..START_LEN)?;
                let id = read_id(&r[1..]);
                let (copy, copies) = (r[17], r[18]);
                let header_len = be_u32(&r[19..]);
                let size = be_u64(&r[23..]);
                if copies == 0
                    || copy >= copies
                    || size > MAX_OBJECT_SIZE
                    || header_len as usize > self.max_header
                {
                    return None;
                }
                self.abort(LossReason::Inconsistent);
                if self.completed.set.contains(&id) {
                    self.stats.duplicate_objects += 1;
                    self.skipping = Some(id);
                } else {
                    self.current = Some(InProgress {
                        id,
                        copy,
                        copies,
                        header_len: u64::from(header_len),
                        total: u64::from(header_len) + size,
                        next: 0,
                        header: Vec::new(),
                    });
                    if header_len == 0 {
                        self.out.push_back(ObjectEvent::Start {
                            id,
                            header: Vec::new(),
                            size,
                            copy,
                            copies,
                        });
                    }
                }
                Some(Some(pos + START_LEN))
            }
            TAG_DATA => {
                let r = b.get(..DATA_HDR)?;
                let id = read_id(&r[1..]);
                let offset = be_u64(&r[17..]);
                let len = be_u32(&r[25..]) as usize;
                if len == 0 || len > b.len() - DATA_HDR {
                    return None;
                }
                let start = pos + DATA_HDR;
                self.data(id, offset, block.slice(start..start + len));
                Some(Some(start + len))
            }
            TAG_END | TAG_ABORT => {
                let r = b.get(..END_LEN)?;
                let id = read_id(&r[1..]);
                match &self.current {
                    Some(c) if c.id == id => {
                        if tag == TAG_ABORT {
                            self.abort(LossReason::SenderAborted);
                        } else if c.next == c.total {
                            self.current = None;
                            self.completed.insert(id);
                            self.out.push_back(ObjectEvent::Complete { id });
                        } else {
                            self.abort(LossReason::Inconsistent);
                        }
                    }
                    _ if self.skipping == Some(id) => self.skipping = None,
                    _ => self.stats.orphan_records += 1,
                }
                Some(Some(pos + END_LEN))
            }
            _ => None,
        }
    }

    fn data(&mut self, id: ObjectId, offset: u64, bytes: Bytes) {
        let Some(c) = self.current.as_mut() else {
            if self.skipping != Some(id) {
                self.stats.orphan_records += 1;
            }
            return;
        };
        if c.id != id {
            if self.skipping != Some(id) {
                self.stats.orphan_records += 1;
            }
            return;
        }
        let len = bytes.len() as u64;
        if offset != c.next || offset.saturating_add(len) > c.total {
            self.abort(LossReason::Inconsistent);
            return;
        }
        let mut rest = bytes;
        if c.next < c.header_len {
            // header_len <= max_header, so this growth is capped.
            let take = ((c.header_len - c.next) as usize).min(rest.len());
            c.header.extend_from_slice(&rest[..take]);
            c.next += take as u64;
            rest = rest.slice(take..);
            if c.next == c.header_len {
                let header = std::mem::take(&mut c.header);
                self.out.push_back(ObjectEvent::Start {
                    id,
                    header,
                    size: c.total - c.header_len,
                    copy: c.copy,
                    copies: c.copies,
                });
            }
        }
        if !rest.is_empty() {
            let off = c.next - c.header_len;
            c.next += rest.len() as u64;
            self.out.push_back(ObjectEvent::Data {
                id,
                offset: off,
                bytes: rest,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ObjectId {
        ObjectId([n; 16])
    }

    fn drain(u: &mut Unpacker) -> Vec<ObjectEvent> {
        std::iter::from_fn(|| u.pop_event()).collect()
    }

    #[test]
    fn small_objects_share_a_block() {
        let mut w = BlockWriter::new(4096);
        for n in 0..3u8 {
            assert!(w.put_start(&id(n), 0, 2, 3, 5));
            assert!(w.put_data(&id(n), 0, b"hdr"));
            assert!(w.put_data(&id(n), 3, &[n; 5]));
            assert!(w.put_end(&id(n)));
        }
        let block = w.finish(64);
        assert_eq!(block.len() % 64, 0);
        let mut u = Unpacker::new(16, 1024);
        u.block(Bytes::from(block));
        let ev = drain(&mut u);
        assert_eq!(ev.len(), 9);
        assert_eq!(
            ev[0],
            ObjectEvent::Start {
                id: id(0),
                header: b"hdr".to_vec(),
                size: 5,
                copy: 0,
                copies: 2
            }
        );
        assert_eq!(
            ev[1],
            ObjectEvent::Data {
                id: id(0),
                offset: 0,
                bytes: Bytes::from(vec![0u8; 5])
            }
        );
        assert_eq!(ev[8], ObjectEvent::Complete { id: id(2) });
    }

    #[test]
    fn lost_block_loses_only_its_objects() {
        let mut a = BlockWriter::new(200);
        assert!(a.put_start(&id(1), 0, 1, 0, 300));
        let n = a.data_room();
        assert!(a.put_data(&id(1), 0, &vec![1u8; n]));
        let first = a.finish(64);
        let mut b = BlockWriter::new(400);
        assert!(b.put_data(&id(1), n as u64, &vec![1u8; 300 - n]));
        assert!(b.put_end(&id(1)));
        assert!(b.put_start(&id(2), 0, 1, 0, 1));
        assert!(b.put_data(&id(2), 0, &[2]));
        assert!(b.put_end(&id(2)));
        let second = b.finish(64);
        // Receiver missed `first` entirely (say, it started late): object 2 still arrives.
        let mut u = Unpacker::new(16, 1024);
        u.block(Bytes::from(second.clone()));
        let ev = drain(&mut u);
        assert_eq!(ev.last(), Some(&ObjectEvent::Complete { id: id(2) }));
        assert_eq!(u.stats().orphan_records, 2);
        // Or it saw `first`, then lost a block in between.
        let mut u = Unpacker::new(16, 1024);
        u.block(Bytes::from(first));
        u.gap();
        u.block(Bytes::from(second));
        let ev = drain(&mut u);
        assert!(ev.contains(&ObjectEvent::Lost {
            id: id(1),
            why: LossReason::BlockLost,
            last_copy: true
        }));
        assert_eq!(ev.last(), Some(&ObjectEvent::Complete { id: id(2) }));
    }

    #[test]
    fn duplicates_and_garbage() {
        let mut w = BlockWriter::new(512);
        assert!(w.put_start(&id(1), 0, 2, 0, 0));
        assert!(w.put_end(&id(1)));
        assert!(w.put_start(&id(1), 1, 2, 0, 0));
        assert!(w.put_end(&id(1)));
        let mut u = Unpacker::new(16, 1024);
        u.block(Bytes::from(w.finish(64)));
        let ev = drain(&mut u);
        assert_eq!(ev.len(), 2);
        assert_eq!(u.stats().duplicate_objects, 1);
        // An unknown tag and a length past the block are refused, not trusted.
        u.block(Bytes::from(vec![9u8; 64]));
        let mut bad = vec![TAG_DATA];
        bad.extend_from_slice(&[0u8; 16]);
        bad.extend_from_slice(&0u64.to_be_bytes());
        bad.extend_from_slice(&u32::MAX.to_be_bytes());
        bad.resize(64, 0);
        u.block(Bytes::from(bad));
        // A header larger than allowed is refused.
        let mut w = BlockWriter::new(512);
        assert!(w.put_start(&id(3), 0, 1, 2000, 0));
        u.block(Bytes::from(w.finish(64)));
        assert_eq!(u.stats().malformed_blocks, 3);
        assert!(drain(&mut u).is_empty());
    }
}
