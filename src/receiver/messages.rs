//! The receiving node's message log, one per messages channel, in the channel's inbox:
//! the batches that landed, in landing order, each message once, read through the HTTP
//! API (`GET /v1/channels/{channel}/messages`) and by the JetStream delivery.
//!
//! ```text
//!  landed batch ─► drop ids already in the log (message_duplicate)
//!    ─► landed + message_delivered records (one sync) ─► one record appended to the
//!       active segment <inbox>/<first batch seq, 20 digits>.log, then fdatasync:
//!         {"batch":SEQ,"object":ID,"messages":N,"bytes":LEN}\n   the record's header
//!         LEN bytes: N lines {"id":…,"body":…}                  cursor = "<batch seq>.<index>"
//!    ─► waiting readers woken
//!  read(after, limit, wait) ─► messages after the cursor, in order (long-poll when empty)
//!  retention: a segment whose newest batch is older than the channel's retention is
//!  removed (never the newest segment), once the lander has recorded its batch objects
//! ```
//!
//! A segment takes batches until it holds [`SEGMENT_MAX_BYTES`] or is [`SEGMENT_MAX_MS`]
//! (or half the retention, when shorter) old; each start of the node begins a new one.
//! So a batch costs one write and one fdatasync, and no new file (on a busy file system,
//! creating a file costs more than writing and syncing one). Batch numbers only grow:
//! [`SEQ_FILE`] reserves them ahead, so that a lost segment never gives its numbers
//! again (a reader's cursor never skips a new batch). A damaged stretch inside a segment
//! is logged and stepped over: the whole records after it are read. Logs written by earlier
//! versions, one file `<batch seq, 20 digits>-<object id>.ndjson` per batch, are read as
//! they are and removed by retention like segments.
//!
//! This module owns the log's files and its in-memory index (the ids and object ids it
//! holds, its batches in order and where each lies); the receiver pipeline calls
//! [`land_batch`] with a batch that was verified and inspected again.
//!
//! Exactly once: the log records every batch object it landed, even one whose messages
//! were all dropped, and the receiver answers an object the log holds as a duplicate
//! (the sender sent it again after a crash, or the diode repeated it); a message whose id
//! the log already holds is dropped (`message_duplicate`). The `landed` and
//! `message_delivered` records are written and synced before the record is appended
//! (write-ahead): a crash in between repeats records, never delivers without one. A crash
//! mid-append leaves a torn last record, which the next start leaves out (the sender sends
//! the object again). Before retention forgets a segment, its objects are handed to the
//! lander, whose markers answer them as duplicates from then on.

use crate::audit::{AuditError, Entry, Event};
use crate::core::id::ObjectId;
use crate::core::message::{
    BatchError, BatchMessage, Cursor, MessageId, encode_line, read_written_batch,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use thiserror::Error;

/// One message read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogMessage {
    /// Its id.
    pub id: MessageId,
    /// Its position in the log.
    pub cursor: Cursor,
    /// Its body, compact JSON.
    pub body: String,
}

/// What one read returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// The messages after the cursor asked for, in log order.
    pub messages: Vec<LogMessage>,
    /// The cursor to ask for next: the last message's, or the one given when none came
    /// (`None` when the log is empty and none was given).
    pub next: Option<Cursor>,
}

/// Why the message log could not be read or written.
#[derive(Debug, Error)]
pub enum LogError {
    /// A file or directory of the log could not be read, written or synced.
    #[error("message log {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A batch to append could not be encoded (a body that is not one JSON value).
    #[error("message log of {channel}: a batch does not encode: {source}")]
    Encode {
        /// The channel.
        channel: String,
        /// What is wrong.
        source: BatchError,
    },
    /// The `landed`, `message_delivered` or `message_duplicate` records could not be
    /// written.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A read's cursor names a batch after the last number this log ever gave: no reader
    /// was given it, and a reader waiting after it would never see another message.
    #[error(
        "cursor {cursor} is past the end of this log (its batches are numbered up to {last}): the log does not hold it (its inbox rebuilt, or its numbering record lost); read from the start (no `after`) or after a cursor this node gave"
    )]
    CursorAhead {
        /// The cursor given.
        cursor: Cursor,
        /// The highest batch number given out (landed, or reserved before a restart).
        last: u64,
    },
}

impl From<LogError> for crate::node::Fault {
    fn from(e: LogError) -> crate::node::Fault {
        match e {
            LogError::Audit(a) => crate::node::Fault::Audit(a),
            LogError::Io { path, source } => crate::node::Fault::Io(io::Error::new(
                source.kind(),
                format!("message log {}: {source}", path.display()),
            )),
            e @ LogError::Encode { .. } => {
                crate::node::Fault::Io(io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
            }
            e @ LogError::CursorAhead { .. } => {
                crate::node::Fault::Io(io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
            }
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What appending one batch did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Appended {
    /// The log already held this batch object: nothing was appended, nothing recorded.
    pub already: bool,
    /// The log's sequence number of the new batch (`None` when none of its messages was
    /// kept: the object is recorded all the same).
    pub batch: Option<u64>,
    /// The messages appended, with their cursors, in order.
    pub delivered: Vec<(MessageId, Cursor)>,
    /// The messages dropped because their id was already in the log, in order.
    pub duplicates: Vec<MessageId>,
}

/// One batch of the log.
#[derive(Debug)]
struct Batch {
    object: ObjectId,
    /// The segment holding it (its key in [`State::segments`]).
    segment: u64,
    /// Where its message lines lie in the segment's file: offset and length in bytes;
    /// `None` for a batch file of the earlier layout (the whole file).
    span: Option<(u64, u64)>,
    /// The ids of its messages, in order.
    ids: Vec<MessageId>,
}

/// One file of the log: a segment, or a batch file of the earlier layout.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// When its newest batch was written, ms since the Unix epoch (its file's modification
    /// time for a file found at open).
    newest_ms: u64,
    /// Its batches' sequence numbers, in order.
    batches: Vec<u64>,
}

#[derive(Debug, Default)]
struct State {
    batches: BTreeMap<u64, Batch>,
    segments: BTreeMap<u64, Segment>,
    ids: HashSet<MessageId>,
    objects: HashMap<ObjectId, u64>,
    last_seq: u64,
    swept_ms: Option<u64>,
    /// A segment past its retention whose first objects were handed to the lander:
    /// its key and how many.
    forgetting: Option<(u64, usize)>,
}

/// What the appender holds: the segment being appended to, and the highest batch number
/// the numbering record allows before it is written again.
#[derive(Debug)]
struct Appender {
    active: Option<Active>,
    reserved: u64,
}

/// The segment being appended to.
#[derive(Debug)]
struct Active {
    key: u64,
    path: PathBuf,
    file: File,
    len: u64,
    opened_ms: u64,
}

/// The header line of a record of a segment.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordHeader {
    /// The batch's sequence number.
    batch: u64,
    /// The batch object's id, 32 hex digits.
    object: String,
    /// How many message lines follow.
    messages: u32,
    /// Their length in bytes.
    bytes: u64,
}

/// The log's numbering record in the inbox: the highest batch number it may have given
/// (decimal), written ahead of use [`SEQ_BLOCK`] numbers at a time, so that a batch
/// number is never given twice, even when the newest segment is lost.
pub const SEQ_FILE: &str = ".isogate-log-seq";

/// How many batch numbers one write of [`SEQ_FILE`] reserves.
pub const SEQ_BLOCK: u64 = 1024;

/// The highest batch number the log gives or reads (a file named with a higher one is
/// not the log's).
pub const MAX_SEQ: u64 = 1 << 62;

/// A segment takes no more batches once it holds this many bytes.
pub const SEGMENT_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// A segment takes no more batches once it is this old (ms), or half the retention when
/// that is shorter.
pub const SEGMENT_MAX_MS: u64 = 3_600_000;

/// Sweeps for expired segments at most this often (ms), unless the last sweep is not done.
pub const SWEEP_EVERY_MS: u64 = 60_000;

/// At most this many batch objects are handed to the lander by one sweep (each is a
/// durable marker: a sweep stays short, and the next call goes on).
pub const FORGET_PER_SWEEP: usize = 2_000;

/// The longest one read blocks, whatever it asks for.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// The message log of one received messages channel: segments in the channel's inbox,
/// `<first batch seq, 20 digits>.log`, each a run of records (a header line, then the
/// batch's messages in the form of [`crate::core::message`]).
pub struct MessageLog {
    channel: String,
    inbox: PathBuf,
    retention_ms: u64,
    segment_max_bytes: u64,
    segment_max_ms: u64,
    /// Held by one append from its first look at the state to its publication: appends
    /// follow one another, while readers take `state` only for a moment (never across a
    /// write, a sync or an unlink). Holds the segment being appended to.
    appending: Mutex<Appender>,
    state: Mutex<State>,
    landed: Condvar,
}

impl std::fmt::Debug for MessageLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageLog")
            .field("channel", &self.channel)
            .field("inbox", &self.inbox)
            .finish_non_exhaustive()
    }
}

/// The name of the segment whose first batch is `seq`.
fn segment_name(seq: u64) -> String {
    format!("{seq:020}.log")
}

/// The first batch of a segment's name, `None` for any other name.
fn parse_segment_name(name: &str) -> Option<u64> {
    let seq = name.strip_suffix(".log")?;
    if seq.len() != 20 || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    seq.parse().ok()
}

/// The name of batch `seq` of object `object` in the earlier layout (a file per batch).
#[cfg(test)]
fn batch_name(seq: u64, object: ObjectId) -> String {
    format!("{seq:020}-{object}.ndjson")
}

/// `(seq, object)` of a batch file's name in the earlier layout, `None` for any other name.
fn parse_name(name: &str) -> Option<(u64, ObjectId)> {
    let stem = name.strip_suffix(".ndjson")?;
    let (seq, object) = stem.split_once('-')?;
    if seq.len() != 20 || !seq.bytes().all(|b| b.is_ascii_digit()) || object.len() != 32 {
        return None;
    }
    Some((seq.parse().ok()?, ObjectId::parse(object)?))
}

fn mtime_ms(meta: &fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One record read from a segment: its header and its messages' span and ids.
struct Scanned {
    seq: u64,
    object: ObjectId,
    span: (u64, u64),
    ids: Vec<MessageId>,
}

/// A stretch of a segment that holds no whole record.
#[derive(Debug, PartialEq, Eq)]
struct Unread {
    /// Where it begins, in bytes from the start of the file.
    offset: usize,
    /// How long it is, in bytes (to the next whole record, or to the end).
    len: usize,
    /// Why its first record does not read.
    why: String,
    /// Whether it runs to the end of the file (a torn last record after a crash, or
    /// bytes appended), rather than lying between whole records.
    tail: bool,
}

/// The record at `pos` of a segment's bytes, and where the next one begins; or why it is
/// not a whole record.
fn read_record(bytes: &[u8], pos: usize) -> Result<(Scanned, usize), String> {
    let Some(nl) = bytes[pos..].iter().position(|&b| b == b'\n') else {
        return Err("a header without its end".into());
    };
    let header = serde_json::from_slice::<RecordHeader>(&bytes[pos..pos + nl])
        .map_err(|e| format!("a header that does not parse: {e}"))?;
    let object = ObjectId::parse(&header.object).ok_or("a header without an object id")?;
    let start = pos + nl + 1;
    let end = usize::try_from(header.bytes)
        .ok()
        .and_then(|n| start.checked_add(n))
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| format!("batch {}: its record is cut short", header.batch))?;
    let ids: Vec<MessageId> = if start == end {
        Vec::new()
    } else {
        read_written_batch(&bytes[start..end])
            .map_err(|e| format!("batch {}: {e}", header.batch))?
            .into_iter()
            .map(|m| m.id)
            .collect()
    };
    if ids.len() != header.messages as usize {
        return Err(format!(
            "batch {}: its count of messages is wrong",
            header.batch
        ));
    }
    let scanned = Scanned {
        seq: header.batch,
        object,
        span: (start as u64, (end - start) as u64),
        ids,
    };
    Ok((scanned, end))
}

/// Reads the records of a segment's bytes, in order. Where a record does not read, the
/// scan goes on at the next line that begins a whole record (a header line cannot be
/// mistaken for a message line: its keys are others); what it stepped over is returned.
fn scan_segment(bytes: &[u8]) -> (Vec<Scanned>, Vec<Unread>) {
    let mut out = Vec::new();
    let mut unread = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        match read_record(bytes, pos) {
            Ok((r, next)) => {
                out.push(r);
                pos = next;
            }
            Err(why) => {
                let mut next = pos;
                let found = loop {
                    match bytes[next..].iter().position(|&b| b == b'\n') {
                        Some(nl) => next += nl + 1,
                        None => break None,
                    }
                    if next < bytes.len() && read_record(bytes, next).is_ok() {
                        break Some(next);
                    }
                };
                let end = found.unwrap_or(bytes.len());
                unread.push(Unread {
                    offset: pos,
                    len: end - pos,
                    why,
                    tail: found.is_none(),
                });
                pos = end;
            }
        }
    }
    (out, unread)
}

impl State {
    /// Adds a batch to the index (and its segment, made when new).
    fn insert(&mut self, seq: u64, key: u64, path: &Path, when_ms: u64, batch: Batch) {
        self.last_seq = self.last_seq.max(seq);
        self.ids.extend(batch.ids.iter().copied());
        self.objects.insert(batch.object, seq);
        let seg = self.segments.entry(key).or_insert_with(|| Segment {
            path: path.to_path_buf(),
            newest_ms: when_ms,
            batches: Vec::new(),
        });
        seg.newest_ms = seg.newest_ms.max(when_ms);
        seg.batches.push(seq);
        self.batches.insert(seq, batch);
    }
}

impl MessageLog {
    /// Opens (making the inbox when missing) and scans the log of `channel` in `inbox`:
    /// the ids and object ids it holds, its last batch number. Segments are kept for
    /// `retention_ms` (ms) after their newest batch was written. A record that does not
    /// parse ends what is read of its segment (logged; a torn last record after a crash
    /// is expected); a batch file of the earlier layout that does not parse is logged and
    /// left out. No number found in a file's name is ever given again.
    ///
    /// # Errors
    /// [`LogError::Io`]: the inbox cannot be made or read.
    pub fn open(channel: &str, inbox: &Path, retention_ms: u64) -> Result<MessageLog, LogError> {
        fs::create_dir_all(inbox).map_err(io_at(inbox))?;
        let mut st = State::default();
        for entry in fs::read_dir(inbox).map_err(io_at(inbox))? {
            let entry = entry.map_err(io_at(inbox))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let legacy = parse_name(&name);
            let segment = parse_segment_name(&name);
            if legacy.is_none() && segment.is_none() {
                continue;
            }
            if legacy
                .map_or(segment, |(s, _)| Some(s))
                .is_some_and(|s| s > MAX_SEQ)
            {
                tracing::error!(channel, file = %inbox.join(&name).display(), "a file named as a part of the message log, with a number this log never gives; left alone");
                continue;
            }
            let path = entry.path();
            let meta = match entry.metadata() {
                Ok(m) if m.is_file() => m,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_at(&path)(e)),
            };
            let bytes = fs::read(&path).map_err(io_at(&path))?;
            let when = mtime_ms(&meta);
            if let Some((seq, object)) = legacy {
                st.last_seq = st.last_seq.max(seq);
                let ids = match read_written_batch(&bytes) {
                    Ok(msgs) => msgs.into_iter().map(|m| m.id).collect(),
                    Err(e) => {
                        tracing::error!(channel, file = %path.display(), error = %e, "a file of the message log does not parse; it is left out");
                        Vec::new()
                    }
                };
                let batch = Batch {
                    object,
                    segment: seq,
                    span: None,
                    ids,
                };
                st.insert(seq, seq, &path, when, batch);
                continue;
            }
            let Some(key) = segment else { continue };
            st.last_seq = st.last_seq.max(key);
            let (records, unread) = scan_segment(&bytes);
            for u in &unread {
                if u.tail {
                    tracing::warn!(channel, file = %path.display(), offset = u.offset, bytes = u.len, why = %u.why, "the message log's segment ends in a record that is not whole (a crash while it was written: that batch is sent again); left out");
                } else {
                    tracing::error!(channel, file = %path.display(), offset = u.offset, bytes = u.len, why = %u.why, "part of the message log's segment is damaged: the batches there are lost to readers; the whole records after it are read");
                }
            }
            if records.is_empty() {
                st.segments.entry(key).or_insert_with(|| Segment {
                    path: path.clone(),
                    newest_ms: when,
                    batches: Vec::new(),
                });
            }
            for r in records {
                if st.batches.contains_key(&r.seq) || r.seq < key {
                    tracing::error!(channel, file = %path.display(), batch = r.seq, "a batch number the message log already holds; that record is left out");
                    continue;
                }
                let batch = Batch {
                    object: r.object,
                    segment: key,
                    span: Some(r.span),
                    ids: r.ids,
                };
                st.insert(r.seq, key, &path, when, batch);
            }
        }
        // the numbers given out before, even those whose files are gone: never again
        let seq_file = inbox.join(SEQ_FILE);
        let reserved = match fs::read_to_string(&seq_file) {
            Ok(text) => match text.trim().parse::<u64>() {
                Ok(n) if n <= MAX_SEQ => n,
                _ => {
                    tracing::error!(channel, file = %seq_file.display(), "the message log's numbering record does not read; numbering goes on from the files found");
                    0
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_at(&seq_file)(e)),
        };
        st.last_seq = st.last_seq.max(reserved);
        Ok(MessageLog {
            channel: channel.to_string(),
            inbox: inbox.to_path_buf(),
            retention_ms,
            segment_max_bytes: SEGMENT_MAX_BYTES,
            segment_max_ms: SEGMENT_MAX_MS.min(retention_ms / 2).max(1),
            appending: Mutex::new(Appender {
                active: None,
                reserved: st.last_seq,
            }),
            state: Mutex::new(st),
            landed: Condvar::new(),
        })
    }

    /// The same log with other segment limits (bytes, ms): for tests.
    #[cfg(test)]
    fn with_segment_limits(mut self, max_bytes: u64, max_ms: u64) -> MessageLog {
        self.segment_max_bytes = max_bytes;
        self.segment_max_ms = max_ms;
        self
    }

    /// The channel whose log this is.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The folder holding the log (the channel's inbox).
    pub fn dir(&self) -> &Path {
        &self.inbox
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the log holds the batch object `object`.
    pub fn has_object(&self, object: ObjectId) -> bool {
        self.lock().objects.contains_key(&object)
    }

    /// Whether the log holds a message with id `id`.
    pub fn has_message(&self, id: MessageId) -> bool {
        self.lock().ids.contains(&id)
    }

    /// The cursor of the last message in the log, `None` when it is empty.
    pub fn last(&self) -> Option<Cursor> {
        let st = self.lock();
        st.batches.iter().rev().find_map(|(&seq, b)| {
            let n = u32::try_from(b.ids.len()).ok()?.checked_sub(1)?;
            Some(Cursor {
                batch: seq,
                index: n,
            })
        })
    }

    /// Appends the messages of batch object `object` (in the batch's order), durably:
    /// messages whose id the log holds are dropped, the rest written as one record of the
    /// active segment (one write, one fdatasync; a new segment when the active one is
    /// full or old, its name synced once). The object is recorded even when none of its
    /// messages is kept. `before_commit` is called once the outcome is planned and before
    /// the record is written (to write the audit records ahead); its error aborts the
    /// append. A batch the log already holds appends nothing and does not call
    /// `before_commit` ([`Appended::already`]). Readers waiting in [`MessageLog::read`]
    /// are woken.
    ///
    /// # Errors
    /// [`LogError`]: writing failed (nothing was appended; the next append starts a new
    /// segment), or `before_commit`'s error.
    pub fn append<F>(
        &self,
        object: ObjectId,
        messages: &[BatchMessage],
        before_commit: F,
    ) -> Result<Appended, LogError>
    where
        F: FnOnce(&Appended) -> Result<(), LogError>,
    {
        let mut appender = self.appending.lock().unwrap_or_else(|e| e.into_inner());
        let st = self.lock();
        if st.objects.contains_key(&object) {
            return Ok(Appended {
                already: true,
                ..Appended::default()
            });
        }
        let seq = st.last_seq + 1;
        if seq > MAX_SEQ {
            return Err(LogError::Io {
                path: self.inbox.join(SEQ_FILE),
                source: io::Error::other("the message log's batch numbers are used up"),
            });
        }
        let mut out = Appended::default();
        let mut lines = Vec::new();
        let mut kept = Vec::new();
        let mut seen = HashSet::new();
        for m in messages {
            if st.ids.contains(&m.id) || !seen.insert(m.id) {
                out.duplicates.push(m.id);
                continue;
            }
            let index = u32::try_from(kept.len()).unwrap_or(u32::MAX);
            encode_line(&mut lines, m.id, &m.body).map_err(|source| LogError::Encode {
                channel: self.channel.clone(),
                source,
            })?;
            kept.push(m.id);
            out.delivered.push((m.id, Cursor { batch: seq, index }));
        }
        if !kept.is_empty() {
            out.batch = Some(seq);
        }
        // only an append adds to the state (a sweep only forgets old segments), and this
        // one holds `appending`: readers go on while the records and the log are written
        drop(st);
        if seq > appender.reserved {
            let upto = seq.saturating_add(SEQ_BLOCK - 1).min(MAX_SEQ);
            let path = self.inbox.join(SEQ_FILE);
            crate::fsx::write_durable(&path, format!("{upto}\n").as_bytes())
                .map_err(io_at(&path))?;
            appender.reserved = upto;
        }
        before_commit(&out)?;
        let header = RecordHeader {
            batch: seq,
            object: object.to_string(),
            messages: u32::try_from(kept.len()).unwrap_or(u32::MAX),
            bytes: lines.len() as u64,
        };
        let mut record = serde_json::to_vec(&header).map_err(|e| LogError::Io {
            path: self.inbox.clone(),
            source: io::Error::other(e),
        })?;
        record.push(b'\n');
        let head = record.len() as u64;
        record.extend_from_slice(&lines);
        let written = self.write_record(&mut appender.active, seq, &record);
        let mut st = self.lock();
        // the number is used up even when the write failed: a record that reached the
        // disk all the same is never shadowed by another batch of that number
        st.last_seq = st.last_seq.max(seq);
        let (key, path, offset) = written?;
        let batch = Batch {
            object,
            segment: key,
            span: Some((offset + head, lines.len() as u64)),
            ids: kept,
        };
        st.insert(seq, key, &path, crate::now_ms(), batch);
        drop(st);
        drop(appender);
        self.landed.notify_all();
        Ok(out)
    }

    /// Appends one record to the active segment (started when there is none, or when
    /// this record would pass its size or age) and syncs it. Returns the segment's key,
    /// its path and the record's offset. On error the segment is cut back to where the
    /// record began (best effort) and the next append starts a new one.
    fn write_record(
        &self,
        active: &mut Option<Active>,
        seq: u64,
        record: &[u8],
    ) -> Result<(u64, PathBuf, u64), LogError> {
        let now = crate::now_ms();
        if active.as_ref().is_some_and(|a| {
            (a.len > 0 && a.len + record.len() as u64 > self.segment_max_bytes)
                || now.saturating_sub(a.opened_ms) >= self.segment_max_ms
        }) {
            *active = None;
        }
        let a = match active {
            Some(a) => a,
            None => {
                let path = self.inbox.join(segment_name(seq));
                let file = OpenOptions::new()
                    .append(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(io_at(&path))?;
                // the segment's name is durable before any record in it counts
                if let Err(e) = crate::fsx::sync_dir(&self.inbox) {
                    let _ = fs::remove_file(&path);
                    return Err(io_at(&self.inbox)(e));
                }
                active.insert(Active {
                    key: seq,
                    path,
                    file,
                    len: 0,
                    opened_ms: now,
                })
            }
        };
        let offset = a.len;
        let written = a.file.write_all(record).and_then(|()| a.file.sync_data());
        if let Err(e) = written {
            let path = a.path.clone();
            if offset == 0 {
                // a segment that holds nothing yet goes (the next append makes another)
                let _ = fs::remove_file(&path);
            } else if let Err(cut) = a.file.set_len(offset) {
                tracing::error!(channel = %self.channel, file = %path.display(), error = %cut, "cannot cut a failed record off the message log; it is read at the next start if it reached the disk whole");
            }
            *active = None;
            return Err(io_at(&path)(e));
        }
        a.len += record.len() as u64;
        Ok((a.key, a.path.clone(), offset))
    }

    /// Reads up to `limit` messages after `after` (from the start when `None`), in log
    /// order. When there is none yet, waits up to `wait` (at most [`MAX_WAIT`]) for a
    /// batch to land (long-poll). A segment removed meanwhile (retention) is skipped.
    ///
    /// # Errors
    /// [`LogError::Io`]: a segment could not be read, or the only batches after the cursor
    /// no longer parse (changed on disk; kind `InvalidData`). [`LogError::CursorAhead`]:
    /// `after` names a batch number this log never gave.
    pub fn read(
        &self,
        after: Option<Cursor>,
        limit: usize,
        wait: Duration,
    ) -> Result<Page, LogError> {
        if let Some(cursor) = after {
            let last = self.lock().last_seq;
            if cursor.batch > last {
                return Err(LogError::CursorAhead { cursor, last });
            }
        }
        let deadline = Instant::now() + wait.min(MAX_WAIT);
        let empty = Page {
            messages: Vec::new(),
            next: after,
        };
        if limit == 0 {
            return Ok(empty);
        }
        loop {
            let todo = {
                let mut st = self.lock();
                loop {
                    let todo = Self::pending(&st, after, limit);
                    let now = Instant::now();
                    if !todo.is_empty() || now >= deadline {
                        break todo;
                    }
                    st = self
                        .landed
                        .wait_timeout(st, deadline - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            };
            if todo.is_empty() {
                return Ok(empty);
            }
            let mut messages = Vec::new();
            let mut open: Option<(PathBuf, File)> = None;
            let mut damaged = None;
            for (seq, path, span) in todo {
                let Some(bytes) = Self::read_batch(&mut open, &path, span)? else {
                    continue;
                };
                let batch = match read_written_batch(&bytes) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(channel = %self.channel, file = %path.display(), batch = seq, error = %e, "a batch of the message log does not parse; it is skipped");
                        damaged = Some(LogError::Io {
                            path,
                            source: io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
                        });
                        continue;
                    }
                };
                for (i, m) in batch.into_iter().enumerate() {
                    let cursor = Cursor {
                        batch: seq,
                        index: u32::try_from(i).unwrap_or(u32::MAX),
                    };
                    if after.is_some_and(|a| cursor <= a) {
                        continue;
                    }
                    if messages.len() >= limit {
                        break;
                    }
                    messages.push(LogMessage {
                        id: m.id,
                        cursor,
                        body: m.body,
                    });
                }
                if messages.len() >= limit {
                    break;
                }
            }
            if let Some(last) = messages.last() {
                let next = Some(last.cursor);
                return Ok(Page { messages, next });
            }
            // nothing readable after the cursor but a batch changed on disk: an error, not
            // a page that skips it in silence, nor a loop that asks again at once
            if let Some(e) = damaged {
                return Err(e);
            }
            // every segment asked for went away (retention): look again
        }
    }

    /// The bytes of one batch: its span of a segment (the file kept open in `open` for
    /// the next batch of the same segment), or a whole batch file of the earlier layout.
    /// `None` when the file is gone (retention).
    fn read_batch(
        open: &mut Option<(PathBuf, File)>,
        path: &Path,
        span: Option<(u64, u64)>,
    ) -> Result<Option<Vec<u8>>, LogError> {
        let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
        let Some((offset, len)) = span else {
            return match fs::read(path) {
                Ok(b) => Ok(Some(b)),
                Err(e) if gone(&e) => Ok(None),
                Err(e) => Err(io_at(path)(e)),
            };
        };
        if open.as_ref().is_none_or(|(p, _)| p != path) {
            match File::open(path) {
                Ok(f) => *open = Some((path.to_path_buf(), f)),
                Err(e) if gone(&e) => return Ok(None),
                Err(e) => return Err(io_at(path)(e)),
            }
        }
        let Some((_, f)) = open.as_ref() else {
            return Ok(None);
        };
        let len = usize::try_from(len).map_err(|e| io_at(path)(io::Error::other(e)))?;
        let mut bytes = vec![0; len];
        f.read_exact_at(&mut bytes, offset).map_err(io_at(path))?;
        Ok(Some(bytes))
    }

    /// The batches holding messages after `after`, enough for `limit` messages: their
    /// numbers, files and spans.
    #[allow(clippy::type_complexity)]
    fn pending(
        st: &State,
        after: Option<Cursor>,
        limit: usize,
    ) -> Vec<(u64, PathBuf, Option<(u64, u64)>)> {
        let from = after.map_or(0, |a| a.batch);
        let mut count = 0usize;
        let mut out = Vec::new();
        for (&seq, b) in st.batches.range(from..) {
            let n = match after {
                Some(a) if a.batch == seq => b
                    .ids
                    .len()
                    .saturating_sub(a.index as usize)
                    .saturating_sub(1),
                _ => b.ids.len(),
            };
            if n == 0 {
                continue;
            }
            let Some(seg) = st.segments.get(&b.segment) else {
                continue;
            };
            out.push((seq, seg.path.clone(), b.span));
            count += n;
            if count >= limit {
                break;
            }
        }
        out
    }

    /// Removes the segments whose newest batch was written more than the retention
    /// before `now_ms` (ms since the Unix epoch), oldest first, at most once per
    /// [`SWEEP_EVERY_MS`] unless the last sweep is not done; the newest segment is
    /// always kept (the log's numbering goes on from it after a restart). Before a
    /// segment goes, each of its batch objects is handed to `forget` (the lander's
    /// durable marker), at most [`FORGET_PER_SWEEP`] per call: a segment not yet handed
    /// over whole waits for the next call. Then the ids of its messages are forgotten.
    /// Returns how many batches were removed.
    ///
    /// # Errors
    /// [`LogError`]: `forget` failed (nothing of that segment is removed), or a file could
    /// not be removed (it is read again, and swept again, at the next start).
    pub fn sweep<F>(&self, now_ms: u64, mut forget: F) -> Result<usize, LogError>
    where
        F: FnMut(ObjectId) -> Result<(), LogError>,
    {
        let mut budget = FORGET_PER_SWEEP;
        let mut removed = 0;
        let mut files = 0;
        loop {
            let (key, path, objects, done, whole) = {
                let mut st = self.lock();
                if files == 0 && st.forgetting.is_none() {
                    if st
                        .swept_ms
                        .is_some_and(|t| now_ms.saturating_sub(t) < SWEEP_EVERY_MS)
                    {
                        return Ok(0);
                    }
                    st.swept_ms = Some(now_ms);
                }
                let newest = st.segments.keys().next_back().copied();
                let expired = st.segments.iter().find(|(k, s)| {
                    Some(**k) != newest && now_ms.saturating_sub(s.newest_ms) > self.retention_ms
                });
                let Some((&key, seg)) = expired else {
                    st.forgetting = None;
                    break;
                };
                let done = match st.forgetting {
                    Some((k, n)) if k == key => n,
                    _ => 0,
                };
                let objects: Vec<ObjectId> = seg
                    .batches
                    .iter()
                    .skip(done)
                    .take(budget)
                    .filter_map(|s| st.batches.get(s).map(|b| b.object))
                    .collect();
                let whole = done + objects.len() >= seg.batches.len();
                (key, seg.path.clone(), objects, done, whole)
            };
            for &o in &objects {
                forget(o)?;
            }
            budget = budget.saturating_sub(objects.len());
            {
                let mut st = self.lock();
                if !whole {
                    st.forgetting = Some((key, done + objects.len()));
                    break;
                }
                st.forgetting = None;
                if let Some(seg) = st.segments.remove(&key) {
                    for seq in seg.batches {
                        if let Some(b) = st.batches.remove(&seq) {
                            for id in &b.ids {
                                st.ids.remove(id);
                            }
                            st.objects.remove(&b.object);
                            removed += 1;
                        }
                    }
                }
            }
            // out of the index first (readers skip it), then off the disk, without the
            // lock; a file that stays is read again, and swept again, at the next start
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&path)(e)),
            }
            files += 1;
            if budget == 0 {
                break;
            }
        }
        if files > 0 {
            crate::fsx::sync_dir(&self.inbox).map_err(io_at(&self.inbox))?;
            tracing::info!(channel = %self.channel, batches = removed, "message log: batches past their retention removed");
        }
        Ok(removed)
    }
}

/// Appends a landed batch object (verified and inspected again on this node; `messages`
/// the batch as it lands, the masked copy's when this node masked) to `log`: `landed`'s
/// record, one `message_delivered` record per message kept (detail `cursor B.I`), one
/// `message_duplicate` per message dropped, all synced once before the batch is appended;
/// then the metrics. A batch the log already holds records nothing.
///
/// # Errors
/// [`LogError`]: the audit or the log could not be written; nothing was appended.
pub fn land_batch(
    node: &crate::node::Node,
    log: &MessageLog,
    object: ObjectId,
    messages: &[BatchMessage],
    landed: &crate::ops::events::Landed<'_>,
) -> Result<Appended, LogError> {
    let channel = log.channel().to_string();
    let peer = node.cfg.peer.name.clone();
    let appended = log.append(object, messages, |plan| {
        let mut last = landed.append(node.sink())?;
        let entry = |id: MessageId, detail: Option<String>| Entry {
            channel: Some(channel.clone()),
            object_id: Some(object),
            peer: Some(peer.clone()),
            message: Some(id.to_string()),
            detail,
            ..Entry::default()
        };
        for (id, cursor) in &plan.delivered {
            last = node.audit.append(
                Event::MessageDelivered,
                entry(*id, Some(format!("cursor {cursor}"))),
            )?;
        }
        for id in &plan.duplicates {
            last = node.audit.append(
                Event::MessageDuplicate,
                entry(*id, Some("already in the message log".into())),
            )?;
        }
        node.audit.sync_to(last)?;
        Ok(())
    })?;
    if !appended.already {
        landed.count(node.sink());
    }
    let label = [log.channel()];
    node.metrics
        .messages_delivered
        .with_label_values(&label)
        .inc_by(appended.delivered.len() as u64);
    node.metrics
        .messages_duplicate
        .with_label_values(&label)
        .inc_by(appended.duplicates.len() as u64);
    if !appended.duplicates.is_empty() {
        tracing::info!(channel = %log.channel(), object = %object, duplicates = appended.duplicates.len(), "messages already in the log dropped");
    }
    Ok(appended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn msg(key: &str, body: &str) -> BatchMessage {
        BatchMessage {
            id: MessageId::derive("notices", key),
            body: body.to_string(),
        }
    }

    fn obj(n: u8) -> ObjectId {
        ObjectId([n; 16])
    }

    fn ok(_: &Appended) -> Result<(), LogError> {
        Ok(())
    }

    fn c(batch: u64, index: u32) -> Cursor {
        Cursor { batch, index }
    }

    const DAY: u64 = 86_400_000;

    /// A cursor given before a restart stays good after it, as does any number of the block
    /// the numbering record reserved (the next batches take them); past that block is
    /// past the end.
    #[test]
    fn cursors_given_before_a_restart_are_read_after_it() {
        let t = tempfile::tempdir().unwrap();
        {
            let log = MessageLog::open("notices", t.path(), DAY).unwrap();
            log.append(obj(1), &[msg("a", "1"), msg("b", "2")], ok)
                .unwrap();
            log.append(obj(2), &[msg("c", "3")], ok).unwrap();
        }
        let log = MessageLog::open("notices", t.path(), DAY).unwrap();
        let page = log.read(Some(c(1, 0)), 10, Duration::ZERO).unwrap();
        let bodies: Vec<_> = page.messages.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["2", "3"]);
        assert!(
            log.read(Some(c(2, 0)), 10, Duration::ZERO)
                .unwrap()
                .messages
                .is_empty()
        );
        let reserved: u64 = fs::read_to_string(t.path().join(SEQ_FILE))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(reserved >= 2, "{reserved}");
        assert!(log.read(Some(c(reserved, 0)), 10, Duration::ZERO).is_ok());
        assert!(matches!(
            log.read(Some(c(reserved + 1, 0)), 10, Duration::ZERO),
            Err(LogError::CursorAhead { .. })
        ));
    }

    #[test]
    fn appends_and_reads_in_order() {
        let t = tempfile::tempdir().unwrap();
        let log = MessageLog::open("notices", t.path(), DAY).unwrap();
        assert_eq!(log.channel(), "notices");
        let empty = log.read(None, 10, Duration::ZERO).unwrap();
        assert_eq!(empty, Page::default());
        let a = log
            .append(obj(1), &[msg("a", "{\"n\":1}"), msg("b", "\"二\"")], ok)
            .unwrap();
        assert_eq!(a.batch, Some(1));
        assert_eq!(a.delivered.len(), 2);
        assert_eq!(a.delivered[1].1, c(1, 1));
        // one segment, named by its first batch: a header line, then the batch's lines
        let file = t.path().join(segment_name(1));
        let bytes = fs::read(&file).unwrap();
        let (head, lines) = bytes.split_at(bytes.iter().position(|&b| b == b'\n').unwrap() + 1);
        let header: RecordHeader = serde_json::from_slice(head).unwrap();
        assert_eq!((header.batch, header.messages), (1, 2));
        assert_eq!(header.object, obj(1).to_string());
        assert_eq!(header.bytes, lines.len() as u64);
        assert_eq!(crate::core::message::parse_batch(lines).unwrap().len(), 2);
        log.append(obj(2), &[msg("c", "3")], ok).unwrap();
        let page = log.read(None, 10, Duration::ZERO).unwrap();
        let bodies: Vec<_> = page.messages.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["{\"n\":1}", "\"二\"", "3"]);
        assert_eq!(page.messages[0].id, MessageId::derive("notices", "a"));
        assert_eq!(page.next, Some(c(2, 0)));
        assert_eq!(log.last(), Some(c(2, 0)));
        // nothing after the end: the cursor given comes back
        let end = log.read(page.next, 10, Duration::ZERO).unwrap();
        assert!(end.messages.is_empty());
        assert_eq!(end.next, Some(c(2, 0)));
    }

    #[test]
    fn cursor_and_limit_page_through() {
        let t = tempfile::tempdir().unwrap();
        let log = MessageLog::open("notices", t.path(), DAY).unwrap();
        for b in 0..5u8 {
            let batch: Vec<_> = (0..3)
                .map(|i| msg(&format!("{b}#{i}"), &format!("{}", u32::from(b) * 3 + i)))
                .collect();
            log.append(obj(b + 1), &batch, ok).unwrap();
        }
        let mut after = None;
        let mut got = Vec::new();
        loop {
            let p = log.read(after, 4, Duration::ZERO).unwrap();
            assert!(p.messages.len() <= 4);
            if p.messages.is_empty() {
                break;
            }
            got.extend(p.messages.iter().map(|m| m.body.clone()));
            after = p.next;
        }
        let want: Vec<_> = (0..15).map(|n: u32| n.to_string()).collect();
        assert_eq!(got, want);
        // from the middle of a batch
        let p = log.read(Some(c(2, 1)), 2, Duration::ZERO).unwrap();
        let cursors: Vec<_> = p.messages.iter().map(|m| m.cursor).collect();
        assert_eq!(cursors, [c(2, 2), c(3, 0)]);
        // the last cursor given: nothing yet after it
        assert!(
            log.read(Some(c(5, 2)), 5, Duration::ZERO)
                .unwrap()
                .messages
                .is_empty()
        );
        // a cursor this log never gave (a rebuilt receiver, a corrupted cursor) is refused,
        // not waited on for ever
        match log.read(Some(c(6, 0)), 5, Duration::from_secs(5)) {
            Err(e @ LogError::CursorAhead { last: 5, .. }) => {
                assert!(
                    e.to_string().starts_with("cursor 6.0 is past the end"),
                    "{e}"
                );
            }
            r => panic!("a cursor never given was read: {r:?}"),
        }
        // and a limit of nothing
        assert!(
            log.read(None, 0, Duration::ZERO)
                .unwrap()
                .messages
                .is_empty()
        );
    }

    #[test]
    fn drops_ids_and_objects_it_holds() {
        let t = tempfile::tempdir().unwrap();
        let log = MessageLog::open("notices", t.path(), DAY).unwrap();
        log.append(obj(1), &[msg("a", "1"), msg("b", "2")], ok)
            .unwrap();
        // the same object again: nothing, and no records planned
        let mut called = false;
        let again = log
            .append(obj(1), &[msg("x", "9")], |_| {
                called = true;
                Ok(())
            })
            .unwrap();
        assert!(again.already && !called);
        assert!(again.delivered.is_empty());
        // a new object carrying a known id: that message is dropped
        let mixed = log
            .append(obj(2), &[msg("b", "2"), msg("c", "3")], ok)
            .unwrap();
        assert_eq!(mixed.duplicates, [MessageId::derive("notices", "b")]);
        assert_eq!(
            mixed.delivered,
            [(MessageId::derive("notices", "c"), c(2, 0))]
        );
        // nothing new at all: no message kept, but the object is recorded (a resend of
        // it is a duplicate even once retention forgot the ids)
        let none = log.append(obj(3), &[msg("a", "1")], ok).unwrap();
        assert_eq!(none.batch, None);
        assert_eq!(none.duplicates.len(), 1);
        assert!(log.has_object(obj(3)));
        assert!(log.append(obj(3), &[msg("z", "0")], ok).unwrap().already);
        let next = log.append(obj(4), &[msg("d", "4")], ok).unwrap();
        assert_eq!(next.batch, Some(4));
        // after a restart as well
        drop(log);
        let log = MessageLog::open("notices", t.path(), DAY).unwrap();
        assert!(log.has_object(obj(3)) && log.has_object(obj(4)));
        let all = log.read(None, 100, Duration::ZERO).unwrap();
        let bodies: Vec<_> = all.messages.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["1", "2", "3", "4"]);
    }

    #[test]
    fn a_failed_record_appends_nothing() {
        let t = tempfile::tempdir().unwrap();
        let log = MessageLog::open("notices", t.path(), DAY).unwrap();
        let err = log.append(obj(1), &[msg("a", "1")], |_| {
            Err(LogError::Io {
                path: PathBuf::from("audit"),
                source: io::Error::other("disk full"),
            })
        });
        assert!(err.is_err());
        assert!(!log.has_object(obj(1)));
        assert!(!log.has_message(MessageId::derive("notices", "a")));
        assert!(
            log.read(None, 10, Duration::ZERO)
                .unwrap()
                .messages
                .is_empty()
        );
        assert_eq!(
            log.append(obj(1), &[msg("a", "1")], ok).unwrap().batch,
            Some(1)
        );
    }

    #[test]
    fn a_waiting_read_wakes_when_a_batch_lands() {
        let t = tempfile::tempdir().unwrap();
        let log = Arc::new(MessageLog::open("notices", t.path(), DAY).unwrap());
        log.append(obj(1), &[msg("a", "1")], ok).unwrap();
        let first = log.read(None, 10, Duration::ZERO).unwrap().next;
        let reader = {
            let log = log.clone();
            std::thread::spawn(move || log.read(first, 10, MAX_WAIT).unwrap())
        };
        log.append(obj(2), &[msg("b", "2")], ok).unwrap();
        let page = reader.join().unwrap();
        assert_eq!(page.messages.len(), 1);
        assert_eq!(page.messages[0].body, "2");
        assert_eq!(page.next, Some(c(2, 0)));
    }

    #[test]
    fn retention_removes_old_segments_but_the_newest_after_handing_their_objects_over() {
        let t = tempfile::tempdir().unwrap();
        // one batch per segment
        let log = MessageLog::open("notices", t.path(), 1_000)
            .unwrap()
            .with_segment_limits(1, u64::MAX);
        for n in 1..=3u8 {
            log.append(obj(n), &[msg(&n.to_string(), &n.to_string())], ok)
                .unwrap();
        }
        assert!(t.path().join(segment_name(2)).is_file());
        let now = crate::now_ms();
        let mut forgotten = Vec::new();
        assert_eq!(
            log.sweep(now, |o| {
                forgotten.push(o);
                Ok(())
            })
            .unwrap(),
            0
        );
        // within a minute of the last sweep: nothing is looked at
        assert_eq!(
            log.sweep(now + SWEEP_EVERY_MS / 2, |o| {
                forgotten.push(o);
                Ok(())
            })
            .unwrap(),
            0
        );
        // a failed hand-over removes nothing
        let failed = log.sweep(now + SWEEP_EVERY_MS, |_| {
            Err(LogError::Io {
                path: PathBuf::from("markers"),
                source: io::Error::other("disk full"),
            })
        });
        assert!(failed.is_err());
        assert!(log.has_object(obj(1)));
        assert_eq!(
            log.sweep(now + 2 * SWEEP_EVERY_MS, |o| {
                forgotten.push(o);
                Ok(())
            })
            .unwrap(),
            2
        );
        assert_eq!(forgotten, [obj(1), obj(2)]);
        assert!(!t.path().join(segment_name(1)).exists());
        assert!(t.path().join(segment_name(3)).exists());
        assert!(!log.has_message(MessageId::derive("notices", "1")));
        assert!(!log.has_object(obj(1)));
        let page = log.read(None, 10, Duration::ZERO).unwrap();
        assert_eq!(page.messages.len(), 1);
        assert_eq!(page.messages[0].cursor, c(3, 0));
        // a reader whose cursor points into a removed batch goes on from the next one
        let p = log.read(Some(c(1, 0)), 10, Duration::ZERO).unwrap();
        assert_eq!(p.messages[0].cursor, c(3, 0));
        // the numbering goes on after a restart past what was reserved, in a new segment
        drop(log);
        let log = MessageLog::open("notices", t.path(), 1_000).unwrap();
        let next = SEQ_BLOCK + 1;
        assert_eq!(
            log.append(obj(9), &[msg("9", "9")], ok).unwrap().batch,
            Some(next)
        );
        assert!(t.path().join(segment_name(next)).is_file());
    }

    #[test]
    fn a_sweep_hands_a_large_segment_over_in_parts() {
        let t = tempfile::tempdir().unwrap();
        let log = MessageLog::open("notices", t.path(), 1_000)
            .unwrap()
            .with_segment_limits(u64::MAX, u64::MAX);
        let n = FORGET_PER_SWEEP + 10;
        for i in 0..n {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
            log.append(ObjectId(id), &[msg(&i.to_string(), "1")], ok)
                .unwrap();
        }
        // a newer segment, so that the first may go
        let log = {
            drop(log);
            MessageLog::open("notices", t.path(), 1_000).unwrap()
        };
        log.append(obj(0xff), &[msg("last", "2")], ok).unwrap();
        let later = crate::now_ms() + 10_000;
        let mut forgotten = 0;
        assert_eq!(
            log.sweep(later, |_| {
                forgotten += 1;
                Ok(())
            })
            .unwrap(),
            0
        );
        assert_eq!(forgotten, FORGET_PER_SWEEP);
        assert!(t.path().join(segment_name(1)).exists());
        // the next call goes on at once, without waiting for the minute
        assert_eq!(
            log.sweep(later + 1, |_| {
                forgotten += 1;
                Ok(())
            })
            .unwrap(),
            n
        );
        assert_eq!(forgotten, n);
        assert!(!t.path().join(segment_name(1)).exists());
        assert_eq!(
            log.read(None, 10, Duration::ZERO).unwrap().messages.len(),
            1
        );
    }

    #[test]
    fn a_segment_is_started_when_the_active_one_is_full_or_old() {
        let t = tempfile::tempdir().unwrap();
        let log = MessageLog::open("notices", t.path(), DAY)
            .unwrap()
            .with_segment_limits(600, u64::MAX);
        for n in 1..=6u8 {
            log.append(obj(n), &[msg(&n.to_string(), &"7".repeat(100))], ok)
                .unwrap();
        }
        let segments: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .filter_map(|e| parse_segment_name(e.unwrap().file_name().to_str()?))
            .collect();
        assert!(segments.len() >= 2 && segments.len() < 6, "{segments:?}");
        for s in &segments {
            assert!(fs::metadata(t.path().join(segment_name(*s))).unwrap().len() <= 600);
        }
        let page = log.read(Some(c(2, 0)), 10, Duration::ZERO).unwrap();
        let cursors: Vec<_> = page.messages.iter().map(|m| m.cursor.batch).collect();
        assert_eq!(cursors, [3, 4, 5, 6]);
        // by age: every append starts a new one
        let t = tempfile::tempdir().unwrap();
        let log = MessageLog::open("notices", t.path(), DAY)
            .unwrap()
            .with_segment_limits(u64::MAX, 0);
        log.append(obj(1), &[msg("a", "1")], ok).unwrap();
        log.append(obj(2), &[msg("b", "2")], ok).unwrap();
        assert!(t.path().join(segment_name(2)).is_file());
    }

    #[test]
    fn reopens_after_a_crash_mid_append() {
        let t = tempfile::tempdir().unwrap();
        {
            let log = MessageLog::open("notices", t.path(), DAY).unwrap();
            log.append(obj(1), &[msg("a", "1"), msg("b", "2")], ok)
                .unwrap();
            log.append(obj(2), &[msg("c", "3")], ok).unwrap();
        }
        // a crash while the next batch was written: its record is torn at the end of the
        // segment; and a file of the inbox that is no part of the log
        let seg = t.path().join(segment_name(1));
        let whole = fs::metadata(&seg).unwrap().len();
        let mut torn = Vec::new();
        encode_line(&mut torn, MessageId::derive("notices", "d"), "4").unwrap();
        let header = format!(
            "{{\"batch\":3,\"object\":\"{}\",\"messages\":1,\"bytes\":{}}}\n",
            obj(3),
            torn.len()
        );
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(header.as_bytes()).unwrap();
        f.write_all(&torn[..torn.len() - 3]).unwrap();
        drop(f);
        fs::write(t.path().join("notes.txt"), b"hello").unwrap();
        let log = MessageLog::open("notices", t.path(), DAY).unwrap();
        assert!(log.has_object(obj(1)) && log.has_object(obj(2)));
        assert!(!log.has_object(obj(3)));
        assert!(log.has_message(MessageId::derive("notices", "b")));
        assert!(!log.has_message(MessageId::derive("notices", "d")));
        // the interrupted batch comes again: appended once, in a new segment (the torn
        // one is never appended to)
        let again = log
            .append(obj(3), &[msg("c", "3"), msg("d", "4")], ok)
            .unwrap();
        let next = SEQ_BLOCK + 1;
        assert_eq!(again.batch, Some(next));
        assert_eq!(again.duplicates, [MessageId::derive("notices", "c")]);
        assert!(t.path().join(segment_name(next)).is_file());
        assert!(fs::metadata(&seg).unwrap().len() > whole);
        // a batch that landed before the crash is not appended again
        assert!(log.append(obj(1), &[msg("a", "1")], ok).unwrap().already);
        let page = log.read(None, 100, Duration::ZERO).unwrap();
        let bodies: Vec<_> = page.messages.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["1", "2", "3", "4"]);
        // and all of it again after another restart
        drop(log);
        let log = MessageLog::open("notices", t.path(), DAY).unwrap();
        let page = log.read(None, 100, Duration::ZERO).unwrap();
        let cursors: Vec<_> = page.messages.iter().map(|m| m.cursor).collect();
        assert_eq!(cursors, [c(1, 0), c(1, 1), c(2, 0), c(next, 0)]);
    }

    #[test]
    fn batch_files_of_the_earlier_layout_are_read_and_numbered_past() {
        let t = tempfile::tempdir().unwrap();
        let mut one = Vec::new();
        encode_line(&mut one, MessageId::derive("notices", "a"), "1").unwrap();
        encode_line(&mut one, MessageId::derive("notices", "b"), "2").unwrap();
        fs::write(t.path().join(batch_name(1, obj(1))), &one).unwrap();
        let mut two = Vec::new();
        encode_line(&mut two, MessageId::derive("notices", "c"), "3").unwrap();
        fs::write(t.path().join(batch_name(2, obj(2))), &two).unwrap();
        // damaged: left out, its number never given again
        fs::write(t.path().join(batch_name(3, obj(7))), b"{\"id\":").unwrap();
        let log = MessageLog::open("notices", t.path(), 1_000).unwrap();
        assert!(log.has_object(obj(1)) && log.has_object(obj(2)));
        assert!(log.has_message(MessageId::derive("notices", "c")));
        let next = log.append(obj(4), &[msg("d", "4")], ok).unwrap();
        assert_eq!(next.batch, Some(4));
        let page = log.read(Some(c(1, 0)), 100, Duration::ZERO).unwrap();
        let bodies: Vec<_> = page.messages.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["2", "3", "4"]);
        // retention removes them like segments, never the newest
        let later = crate::now_ms() + 10_000;
        assert_eq!(log.sweep(later, |_| Ok(())).unwrap(), 3);
        assert!(!t.path().join(batch_name(1, obj(1))).exists());
        assert!(t.path().join(segment_name(4)).exists());
    }

    #[test]
    fn a_batch_changed_on_disk_is_an_error_not_a_silent_skip() {
        let t = tempfile::tempdir().unwrap();
        let log = MessageLog::open("notices", t.path(), DAY).unwrap();
        log.append(obj(1), &[msg("a", "1")], ok).unwrap();
        let seg = t.path().join(segment_name(1));
        let mut bytes = fs::read(&seg).unwrap();
        let last = bytes.len() - 2;
        bytes[last] = b'x';
        fs::write(&seg, &bytes).unwrap();
        let err = log.read(None, 10, Duration::ZERO).unwrap_err();
        assert!(
            matches!(&err, LogError::Io { source, .. } if source.kind() == io::ErrorKind::InvalidData),
            "{err}"
        );
    }

    #[test]
    fn a_batch_number_is_never_given_twice_even_when_the_newest_segment_is_lost() {
        let t = tempfile::tempdir().unwrap();
        let log = MessageLog::open("notices", t.path(), DAY).unwrap();
        log.append(obj(1), &[msg("a", "1")], ok).unwrap();
        log.append(obj(2), &[msg("b", "2")], ok).unwrap();
        let reader_at = log.last().unwrap();
        drop(log);
        // the newest segment gone (by hand, or a disk that lost it)
        fs::remove_file(t.path().join(segment_name(1))).unwrap();
        let log = MessageLog::open("notices", t.path(), DAY).unwrap();
        let next = log.append(obj(3), &[msg("c", "3")], ok).unwrap();
        assert!(next.batch.unwrap() > reader_at.batch);
        // a reader holding the old cursor sees the new message
        let page = log.read(Some(reader_at), 10, Duration::ZERO).unwrap();
        assert_eq!(page.messages.len(), 1);
        assert_eq!(page.messages[0].body, "3");
        // a numbering record that does not read: numbering goes on from the files
        drop(log);
        fs::write(t.path().join(SEQ_FILE), b"lots\n").unwrap();
        let log = MessageLog::open("notices", t.path(), DAY).unwrap();
        let after = log.append(obj(4), &[msg("d", "4")], ok).unwrap();
        assert!(after.batch.unwrap() > next.batch.unwrap());
    }

    #[test]
    fn a_file_named_past_the_numbering_is_left_alone() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join(format!("{}.log", u64::MAX)), b"").unwrap();
        fs::write(t.path().join(segment_name(MAX_SEQ + 1)), b"").unwrap();
        let log = MessageLog::open("notices", t.path(), DAY).unwrap();
        assert_eq!(
            log.append(obj(1), &[msg("a", "1")], ok).unwrap().batch,
            Some(1)
        );
    }

    #[test]
    fn damage_inside_a_segment_loses_only_the_batches_it_covers() {
        let t = tempfile::tempdir().unwrap();
        let log = MessageLog::open("notices", t.path(), DAY).unwrap();
        for n in 1..=4u8 {
            log.append(obj(n), &[msg(&n.to_string(), &n.to_string())], ok)
                .unwrap();
        }
        drop(log);
        let seg = t.path().join(segment_name(1));
        let bytes = fs::read(&seg).unwrap();
        let (records, unread) = scan_segment(&bytes);
        assert_eq!(records.len(), 4);
        assert!(unread.is_empty());
        // a line of garbage before batch 2's header, and batch 3's body changed
        let at2 = records[0].span.0 as usize + records[0].span.1 as usize;
        let in3 = records[2].span.0 as usize + 3;
        let mut damaged = bytes[..at2].to_vec();
        damaged.extend_from_slice(b"GARBAGE IN THE MIDDLE\n");
        damaged.extend_from_slice(&bytes[at2..in3]);
        damaged.push(b'#');
        damaged.extend_from_slice(&bytes[in3 + 1..]);
        damaged.extend_from_slice(b"{\"batch\":9,\"obj");
        fs::write(&seg, &damaged).unwrap();
        let (records, unread) = scan_segment(&damaged);
        let seqs: Vec<_> = records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 2, 4]);
        assert_eq!(unread.len(), 3, "{unread:?}");
        assert_eq!(unread[0].offset, at2);
        assert_eq!(unread[0].len, "GARBAGE IN THE MIDDLE\n".len());
        assert!(!unread[0].tail && !unread[1].tail && unread[2].tail);
        assert!(unread[1].why.starts_with("batch 3"), "{}", unread[1].why);
        let log = MessageLog::open("notices", t.path(), DAY).unwrap();
        let page = log.read(None, 10, Duration::ZERO).unwrap();
        let bodies: Vec<_> = page.messages.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["1", "2", "4"]);
        assert!(!log.has_object(obj(3)));
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name("42.log"), None);
        assert_eq!(
            parse_segment_name(&format!("{}.tmp", segment_name(42))),
            None
        );
        let n = batch_name(42, obj(0xab));
        assert_eq!(n.len(), 20 + 1 + 32 + 7);
        assert_eq!(parse_name(&n), Some((42, obj(0xab))));
        assert_eq!(parse_name("42-abab.ndjson"), None);
        assert_eq!(parse_name(&format!("{n}.tmp")), None);
    }
}
