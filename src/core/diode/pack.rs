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
//! A copy lost part way ([`LossReason::BlockLost`], [`LossReason::SessionRestarted`])
//! is *kept*: the shell holds the bytes it got, in order from the start, and a later
//! copy of the same object (same id, size and header, by SHA-256) *resumes* after
//! them ([`ObjectEvent::Resume`]) instead of starting over. That later copy's bytes
//! below the kept end are skipped, and a block of it lost there costs nothing (but for
//! the blocks with its `Start` record and header: a copy must be known before it can go
//! on), so a large object needs each of its bytes to arrive in some copy in order, not
//! one whole copy without loss. At most [`KEEP_LOST`] objects are kept at once.
//!
//! ```text
//! copy 0: ████████████▒ lost ─► Lost{kept} (shell keeps 0..k)
//! copy 1: ░░░░░▒░░░░░░████████ ─► Resume{k}, then Data from k on ─► Complete
//!         (skipped; a gap below k is no loss)
//! ```
//!
//! ```text
//! Start  1 | id[16] | copy u8 | copies u8 | header_len u32 | size u64
//! Data   2 | id[16] | offset u64 (in header+content) | len u32 | bytes
//! End    3 | id[16]
//! Abort  4 | id[16]
//! 0 (or the end of the block): padding to the end of the block
//! ```

use std::collections::{HashMap, HashSet, VecDeque};

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
/// How many objects whose copy was lost part way are kept to be resumed at once (the
/// oldest is forgotten first: its next copy starts over).
pub const KEEP_LOST: usize = 8;

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
    /// A later copy of an object whose earlier copy was lost and kept (`Lost` with
    /// `kept`) continues it: its header is the same, and its content follows from
    /// `offset`, where the kept bytes end. Comes in place of `Start`.
    Resume {
        /// Object id.
        id: ObjectId,
        /// Content bytes already held (the next `Data` starts here).
        offset: u64,
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
    /// This copy of the object was lost. Unless `kept`, discard what arrived of it;
    /// a later copy may still start it again unless `last_copy` is true.
    Lost {
        /// Object id.
        id: ObjectId,
        /// Why.
        why: LossReason,
        /// Whether this was the sender's last copy.
        last_copy: bool,
        /// Whether what arrived is kept: every `Data` so far was good, and a later copy
        /// resumes after it (`Resume`), unless it comes as a `Start` (start over) or the
        /// shell gives it up first ([`Unpacker::forget_kept`]).
        kept: bool,
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
    /// SHA-256 of the header, once it is complete.
    digest: Option<[u8; 32]>,
    /// Where the kept bytes of an earlier copy end (in header + content): bytes below
    /// are skipped, and a gap below costs nothing.
    resume: Option<u64>,
    /// Blocks were given up while below `resume`: the next `Data` may jump ahead, up
    /// to `resume`.
    gapped: bool,
    /// Whether a loss of this copy is kept (the shell has not forgotten it).
    keep: bool,
}

/// What the shell holds of an object whose copy was lost part way.
#[derive(Debug, Clone, Copy)]
struct Kept {
    header_len: u64,
    total: u64,
    digest: [u8; 32],
    /// Where the held bytes end (in header + content).
    upto: u64,
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
    /// Objects whose lost copy the shell keeps, and their order (oldest first).
    kept: HashMap<ObjectId, Kept>,
    kept_order: VecDeque<ObjectId>,
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
            kept: HashMap::new(),
            kept_order: VecDeque::new(),
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

    /// Drops the object in progress, reporting it lost for `why`. A copy that lost
    /// blocks or its session part way is kept (see the module's documentation), unless
    /// it was the last copy, nothing of its content had arrived, or the shell forgot it;
    /// any other loss (the sender's abort, inconsistent records) forgets what was kept.
    /// A copy lost within its header, that was to resume a kept one, leaves that one kept
    /// (`Lost` says `kept`: the shell's bytes stay good).
    pub fn abort(&mut self, why: LossReason) {
        self.skipping = None;
        let Some(c) = self.current.take() else {
            return;
        };
        // blocks below the kept end were given up, then something else came: the gap
        // reached past it
        let why = if c.gapped && why == LossReason::Inconsistent {
            LossReason::BlockLost
        } else {
            why
        };
        let last_copy = c.copy.saturating_add(1) >= c.copies;
        let keep = c.keep
            && !last_copy
            && matches!(why, LossReason::BlockLost | LossReason::SessionRestarted);
        let kept = match (keep, c.digest) {
            (false, _) => false,
            (true, Some(digest)) => {
                let upto = c.next.max(c.resume.unwrap_or(0));
                upto > c.header_len && {
                    let k = Kept {
                        header_len: c.header_len,
                        total: c.total,
                        digest,
                        upto,
                    };
                    self.keep_lost(c.id, k);
                    true
                }
            }
            // lost within its header: the kept copy it was to resume stays as it was
            (true, None) => {
                let still = c.resume.is_some() && self.kept.contains_key(&c.id);
                if still {
                    self.touch_kept(c.id);
                }
                still
            }
        };
        if !kept {
            self.drop_kept(&c.id);
        }
        self.out.push_back(ObjectEvent::Lost {
            id: c.id,
            why,
            last_copy,
            kept,
        });
    }

    /// Keeps `id`'s lost copy to be resumed, forgetting the oldest beyond [`KEEP_LOST`].
    fn keep_lost(&mut self, id: ObjectId, k: Kept) {
        self.kept.insert(id, k);
        self.touch_kept(id);
        while self.kept_order.len() > KEEP_LOST {
            if let Some(old) = self.kept_order.pop_front() {
                self.kept.remove(&old);
            }
        }
    }

    /// Makes `id` the newest kept copy (the shell orders its kept copies the same way).
    fn touch_kept(&mut self, id: ObjectId) {
        self.kept_order.retain(|x| *x != id);
        self.kept_order.push_back(id);
    }

    /// Forgets the kept copy of `id` (the shell gave it up, or the sender retired the
    /// object): its next copy starts over, and a loss of the copy in progress is not kept.
    pub fn forget_kept(&mut self, id: &ObjectId) {
        self.drop_kept(id);
        if let Some(c) = self.current.as_mut()
            && c.id == *id
        {
            c.keep = false;
        }
    }

    fn drop_kept(&mut self, id: &ObjectId) {
        if self.kept.remove(id).is_some() {
            self.kept_order.retain(|x| x != id);
        }
    }

    /// How many lost copies are kept now.
    pub fn kept_objects(&self) -> usize {
        self.kept.len()
    }

    /// One or more blocks were given up. A copy that resumes a kept one, and had not yet
    /// reached the kept end, goes on: its next `Data` may jump ahead up to that end.
    pub fn gap(&mut self) {
        if let Some(c) = self.current.as_mut()
            && c.keep
            && c.digest.is_some()
            && c.resume.is_some_and(|upto| c.next < upto)
        {
            c.gapped = true;
            self.skipping = None;
            return;
        }
        self.abort(LossReason::BlockLost);
    }

    /// The header of the copy in progress is complete: `Resume` where it continues a
    /// kept copy with the same header, else `Start` (a kept copy that differs is
    /// forgotten: this one starts over).
    fn header_complete(&mut self) {
        let Some(c) = self.current.as_mut() else {
            return;
        };
        let header = std::mem::take(&mut c.header);
        let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &header)
            .as_ref()
            .try_into()
            .unwrap_or([0; 32]);
        c.digest = Some(digest);
        let (id, size) = (c.id, c.total - c.header_len);
        let same = self.kept.get(&id).is_some_and(|k| {
            k.digest == digest && k.header_len == c.header_len && k.total == c.total
        });
        if same && let Some(upto) = c.resume {
            self.out.push_back(ObjectEvent::Resume {
                id,
                offset: upto - c.header_len,
            });
            return;
        }
        c.resume = None;
        let (copy, copies) = (c.copy, c.copies);
        self.drop_kept(&id);
        self.out.push_back(ObjectEvent::Start {
            id,
            header,
            size,
            copy,
            copies,
        });
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
                    let total = u64::from(header_len) + size;
                    let resume = self
                        .kept
                        .get(&id)
                        .filter(|k| k.header_len == u64::from(header_len) && k.total == total)
                        .map(|k| k.upto);
                    self.current = Some(InProgress {
                        id,
                        copy,
                        copies,
                        header_len: u64::from(header_len),
                        total,
                        next: 0,
                        header: Vec::new(),
                        digest: None,
                        resume,
                        gapped: false,
                        keep: true,
                    });
                    if header_len == 0 {
                        self.header_complete();
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
                        } else if c.next == c.total || (c.gapped && c.resume == Some(c.total)) {
                            // (a gap after the last byte of a copy whose every byte is kept)
                            self.current = None;
                            self.completed.insert(id);
                            self.drop_kept(&id);
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
        // after a gap below the kept end, the copy picks up wherever its next record is,
        // as long as that is not past the kept end
        let gapped = std::mem::take(&mut c.gapped);
        if gapped && offset >= c.header_len && c.resume.is_some_and(|upto| offset <= upto) {
            c.next = offset;
        }
        if offset != c.next || offset.saturating_add(len) > c.total {
            // past the kept end after a gap: blocks were lost there
            c.gapped = gapped;
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
                self.header_complete();
            }
        }
        let Some(c) = self.current.as_mut() else {
            return;
        };
        if let Some(upto) = c.resume
            && c.next < upto
        {
            // the shell holds these bytes from the kept copy
            let skip = usize::try_from(upto - c.next).map_or(rest.len(), |s| s.min(rest.len()));
            c.next += skip as u64;
            rest = rest.slice(skip..);
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
            last_copy: true,
            kept: false,
        }));
        assert_eq!(ev.last(), Some(&ObjectEvent::Complete { id: id(2) }));
    }

    /// The header of the copies in the resume tests.
    const HDR: &[u8] = b"signed manifest";

    /// Content byte `i` of object `n`.
    fn byte(n: u8, i: u64) -> u8 {
        (i as u8).wrapping_mul(31).wrapping_add(n)
    }

    /// One copy of object `n` (`size` content bytes after [`HDR`]) cut into blocks of
    /// records carrying at most `step` bytes each: `Start`, `Data`..., `End`.
    fn copy_blocks(n: u8, header: &[u8], size: u64, copy: u8, copies: u8, step: u64) -> Vec<Bytes> {
        let total = header.len() as u64 + size;
        let at = |o: u64| -> u8 {
            if o < header.len() as u64 {
                header[o as usize]
            } else {
                byte(n, o - header.len() as u64)
            }
        };
        let mut blocks = Vec::new();
        let mut w = BlockWriter::new(4096);
        assert!(w.put_start(&id(n), copy, copies, header.len() as u32, size));
        let mut o = 0;
        while o < total {
            let len = step.min(total - o);
            let bytes: Vec<u8> = (o..o + len).map(at).collect();
            assert!(w.put_data(&id(n), o, &bytes));
            blocks.push(Bytes::from(w.finish(64)));
            o += len;
        }
        assert!(w.put_end(&id(n)));
        blocks.push(Bytes::from(w.finish(64)));
        blocks
    }

    /// Feeds `blocks`, giving up those at the positions in `lost`.
    fn feed(u: &mut Unpacker, blocks: &[Bytes], lost: &[usize]) -> Vec<ObjectEvent> {
        for (i, b) in blocks.iter().enumerate() {
            if lost.contains(&i) {
                u.gap();
            } else {
                u.block(b.clone());
            }
        }
        drain(u)
    }

    /// The content offsets and bytes of the `Data` events, checked against the object.
    fn data_of(n: u8, ev: &[ObjectEvent]) -> Vec<(u64, u64)> {
        ev.iter()
            .filter_map(|e| match e {
                ObjectEvent::Data {
                    id: i,
                    offset,
                    bytes,
                } if *i == id(n) => {
                    for (k, b) in bytes.iter().enumerate() {
                        assert_eq!(*b, byte(n, offset + k as u64), "byte {}", offset + k as u64);
                    }
                    Some((*offset, bytes.len() as u64))
                }
                _ => None,
            })
            .collect()
    }

    fn lost(n: u8, kept: bool) -> ObjectEvent {
        ObjectEvent::Lost {
            id: id(n),
            why: LossReason::BlockLost,
            last_copy: false,
            kept,
        }
    }

    #[test]
    fn a_lost_copy_is_kept_and_the_next_goes_on_after_it_through_a_gap_below() {
        let mut u = Unpacker::new(16, 1024);
        // copy 0 loses its 5th block (header + 400 bytes arrived)
        let c0 = copy_blocks(1, HDR, 1000, 0, 3, 100);
        let ev = feed(&mut u, &c0, &[5]);
        assert!(matches!(ev[0], ObjectEvent::Start { copy: 0, .. }));
        let got0 = data_of(1, &ev);
        let held: u64 = got0.iter().map(|d| d.1).sum();
        assert_eq!(held, 500 - HDR.len() as u64);
        assert_eq!(ev.last(), Some(&lost(1, true)));
        assert_eq!(u.kept_objects(), 1);
        // copy 1 loses its 2nd and 3rd blocks, both below the kept end: no loss
        let c1 = copy_blocks(1, HDR, 1000, 1, 3, 100);
        let ev = feed(&mut u, &c1, &[1, 2]);
        assert_eq!(
            ev[0],
            ObjectEvent::Resume {
                id: id(1),
                offset: held
            }
        );
        let got1 = data_of(1, &ev);
        assert_eq!(got1[0].0, held, "it goes on where the kept bytes end");
        let mut next = held;
        for (o, l) in &got1 {
            assert_eq!(*o, next, "in order, without a gap");
            next += l;
        }
        assert_eq!(next, 1000);
        assert_eq!(ev.last(), Some(&ObjectEvent::Complete { id: id(1) }));
        assert_eq!(u.kept_objects(), 0);
        // a third copy is a duplicate
        let c2 = copy_blocks(1, HDR, 1000, 2, 3, 100);
        assert!(feed(&mut u, &c2, &[]).is_empty());
    }

    #[test]
    fn each_copy_carries_the_kept_end_further() {
        let mut u = Unpacker::new(16, 1024);
        let copies = 4;
        let mut kept_end = 0;
        // copy 0 lost at block 3, copy 1 at 2 (below: nothing new, still kept) and 7,
        // copy 2 at 9, copy 3 whole from there
        for (copy, lose) in [(0u8, vec![3]), (1, vec![2, 7]), (2, vec![9]), (3, vec![])] {
            let blocks = copy_blocks(2, HDR, 1500, copy, copies, 100);
            let ev = feed(&mut u, &blocks, &lose);
            if copy == 0 {
                assert!(matches!(ev[0], ObjectEvent::Start { .. }));
            } else {
                assert_eq!(
                    ev[0],
                    ObjectEvent::Resume {
                        id: id(2),
                        offset: kept_end
                    }
                );
            }
            for (o, l) in data_of(2, &ev) {
                assert_eq!(o, kept_end);
                kept_end += l;
            }
            if copy < 3 {
                assert_eq!(ev.last(), Some(&lost(2, true)), "copy {copy}");
            } else {
                assert_eq!(ev.last(), Some(&ObjectEvent::Complete { id: id(2) }));
            }
        }
        assert_eq!(kept_end, 1500);
    }

    #[test]
    fn another_header_starts_over_and_the_last_copy_is_not_kept() {
        let mut u = Unpacker::new(16, 1024);
        let ev = feed(&mut u, &copy_blocks(3, HDR, 800, 0, 3, 100), &[4]);
        assert_eq!(ev.last(), Some(&lost(3, true)));
        // the same id with another header: not the same object, it starts over
        let ev = feed(
            &mut u,
            &copy_blocks(3, b"other manifest!", 800, 1, 3, 100),
            &[6],
        );
        assert!(
            matches!(ev[0], ObjectEvent::Start { copy: 1, .. }),
            "{:?}",
            ev[0]
        );
        assert_eq!(data_of(3, &ev)[0].0, 0);
        assert_eq!(ev.last(), Some(&lost(3, true)));
        // the last copy lost: nothing is kept
        let ev = feed(&mut u, &copy_blocks(3, HDR, 800, 2, 3, 100), &[2]);
        assert!(matches!(ev[0], ObjectEvent::Start { copy: 2, .. }));
        assert_eq!(
            ev.last(),
            Some(&ObjectEvent::Lost {
                id: id(3),
                why: LossReason::BlockLost,
                last_copy: true,
                kept: false,
            })
        );
        assert_eq!(u.kept_objects(), 0);
    }

    #[test]
    fn a_forgotten_or_crowded_out_copy_starts_over() {
        let mut u = Unpacker::new(64, 1024);
        for n in 0..=KEEP_LOST as u8 {
            let ev = feed(&mut u, &copy_blocks(n, HDR, 300, 0, 2, 100), &[2]);
            assert_eq!(ev.last(), Some(&lost(n, true)));
        }
        assert_eq!(u.kept_objects(), KEEP_LOST);
        // the oldest was crowded out, the next one the shell gave up
        u.forget_kept(&id(1));
        for n in 0..=2u8 {
            let ev = feed(&mut u, &copy_blocks(n, HDR, 300, 1, 2, 100), &[]);
            if n == 2 {
                assert_eq!(
                    ev[0],
                    ObjectEvent::Resume {
                        id: id(2),
                        offset: 100 - HDR.len() as u64 + 100
                    }
                );
            } else {
                assert!(
                    matches!(ev[0], ObjectEvent::Start { .. }),
                    "{n}: {:?}",
                    ev[0]
                );
                assert_eq!(data_of(n, &ev)[0].0, 0);
            }
            assert_eq!(ev.last(), Some(&ObjectEvent::Complete { id: id(n) }));
        }
    }

    #[test]
    fn a_resumed_copy_lost_in_its_header_stays_kept_and_a_gap_past_the_end_is_a_loss() {
        let mut u = Unpacker::new(16, 1024);
        let ev = feed(&mut u, &copy_blocks(4, HDR, 1000, 0, 4, 100), &[6]);
        let held: u64 = data_of(4, &ev).iter().map(|d| d.1).sum();
        assert_eq!(ev.last(), Some(&lost(4, true)));
        // copy 1 loses the block with the end of its header: the kept bytes stay
        let c1 = copy_blocks(4, HDR, 1000, 1, 4, 10);
        let ev = feed(&mut u, &c1[..3], &[1]);
        assert_eq!(ev, vec![lost(4, true)]);
        // copy 2 loses blocks from just below the kept end to past it: a loss, kept
        // as far as it had come, which is no further
        let c2 = copy_blocks(4, HDR, 1000, 2, 4, 100);
        let ev = feed(&mut u, &c2, &[5, 6, 7]);
        assert_eq!(
            ev[0],
            ObjectEvent::Resume {
                id: id(4),
                offset: held
            }
        );
        assert!(data_of(4, &ev).is_empty());
        assert_eq!(ev.last(), Some(&lost(4, true)));
        // copy 3 goes on from the same place
        let ev = feed(&mut u, &copy_blocks(4, HDR, 1000, 3, 4, 100), &[]);
        assert_eq!(
            ev[0],
            ObjectEvent::Resume {
                id: id(4),
                offset: held
            }
        );
        assert_eq!(ev.last(), Some(&ObjectEvent::Complete { id: id(4) }));
    }

    #[test]
    fn a_session_restart_keeps_the_copy_and_a_sender_abort_does_not() {
        let mut u = Unpacker::new(16, 1024);
        let c0 = copy_blocks(5, HDR, 600, 0, 2, 100);
        feed(&mut u, &c0[..3], &[]);
        u.abort(LossReason::SessionRestarted);
        let ev = drain(&mut u);
        assert!(matches!(
            ev.last(),
            Some(ObjectEvent::Lost { kept: true, .. })
        ));
        // the new session sends it again as its copy 0: it goes on
        let c0 = copy_blocks(5, HDR, 600, 0, 2, 100);
        let mut w = BlockWriter::new(4096);
        assert!(w.put_abort(&id(5)));
        let abort = Bytes::from(w.finish(64));
        for b in &c0[..4] {
            u.block(b.clone());
        }
        u.block(abort);
        let ev = drain(&mut u);
        assert_eq!(
            ev[0],
            ObjectEvent::Resume {
                id: id(5),
                offset: 300 - HDR.len() as u64
            }
        );
        assert!(matches!(
            ev.last(),
            Some(ObjectEvent::Lost {
                why: LossReason::SenderAborted,
                kept: false,
                ..
            })
        ));
        assert_eq!(u.kept_objects(), 0);
    }

    #[test]
    fn a_copy_whose_every_byte_is_kept_completes_through_a_gap_before_its_end() {
        let mut u = Unpacker::new(16, 1024);
        // copy 0 loses only the block with its End: every byte arrived
        let c0 = copy_blocks(6, HDR, 500, 0, 2, 100);
        let last = c0.len() - 1;
        let ev = feed(&mut u, &c0, &[last]);
        assert_eq!(ev.last(), Some(&lost(6, true)));
        // the last copy loses its last Data block, then its End arrives: complete
        let c1 = copy_blocks(6, HDR, 500, 1, 2, 100);
        let ev = feed(&mut u, &c1, &[last - 1]);
        assert_eq!(
            ev[0],
            ObjectEvent::Resume {
                id: id(6),
                offset: 500
            }
        );
        assert!(data_of(6, &ev).is_empty());
        assert_eq!(ev.last(), Some(&ObjectEvent::Complete { id: id(6) }));
    }

    #[test]
    fn a_gap_that_takes_the_next_copys_start_below_the_kept_end_goes_on() {
        let mut u = Unpacker::new(16, 1024);
        let ev = feed(&mut u, &copy_blocks(7, HDR, 1000, 0, 4, 100), &[6]);
        let held: u64 = data_of(7, &ev).iter().map(|d| d.1).sum();
        assert_eq!(ev.last(), Some(&lost(7, true)));
        // copy 1 brings its first blocks (below the kept end), then blocks are given up
        // up to the middle of copy 2, whose Start they held
        let c1 = copy_blocks(7, HDR, 1000, 1, 4, 100);
        let ev = feed(&mut u, &c1[..3], &[]);
        assert_eq!(
            ev,
            vec![ObjectEvent::Resume {
                id: id(7),
                offset: held
            }]
        );
        u.gap();
        // copy 2 from its 3rd block on: it goes on, from the kept end
        let c2 = copy_blocks(7, HDR, 1000, 2, 4, 100);
        let ev = feed(&mut u, &c2[2..], &[]);
        let got = data_of(7, &ev);
        assert_eq!(got[0].0, held);
        assert_eq!(got.iter().map(|d| d.1).sum::<u64>(), 1000 - held);
        assert_eq!(ev.last(), Some(&ObjectEvent::Complete { id: id(7) }));
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
