//! The receiving node's message log, one per messages channel, in the channel's inbox:
//! the batches that landed, in landing order, each message once, read through the HTTP
//! API (`GET /v1/channels/{channel}/messages`) and by the JetStream delivery.
//!
//! ```text
//!  landed batch ─► drop ids already in the log (message_duplicate)
//!    ─► <inbox>/<batch seq, 20 digits>-<object id>.ndjson   temp + fsync + rename
//!       one line per message: {"id":…,"body":…}; cursor = "<batch seq>.<index>"
//!    ─► message_delivered records ─► waiting readers woken
//!  read(after, limit, wait) ─► messages after the cursor, in order (long-poll when empty)
//!  retention: batch files older than the channel's retention are removed
//! ```
//!
//! This module owns the log's files and its in-memory index (the ids and object ids it
//! holds, its batches in order); the receiver pipeline calls [`land_batch`] with a batch
//! that was verified and inspected again, before it records the object as landed.
//!
//! Exactly once: a batch whose object id the log already holds appends nothing (the
//! sender sent it again after a crash between the append and the lander's marker); a
//! message whose id the log already holds is dropped (`message_duplicate`). The
//! `message_delivered` records are written and synced before the batch file appears
//! (write-ahead): a crash in between repeats records, never delivers without one.

use crate::audit::{AuditError, Entry, Event};
use crate::core::id::ObjectId;
use crate::core::message::{
    BatchError, BatchMessage, Cursor, MessageId, encode_line, read_written_batch,
};
use crate::receiver::land::STAGING;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
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
    /// The `message_delivered` or `message_duplicate` records could not be written.
    #[error(transparent)]
    Audit(#[from] AuditError),
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
    /// The log's sequence number of the new batch file (`None` when nothing was kept).
    pub batch: Option<u64>,
    /// The messages appended, with their cursors, in order.
    pub delivered: Vec<(MessageId, Cursor)>,
    /// The messages dropped because their id was already in the log, in order.
    pub duplicates: Vec<MessageId>,
}

/// One batch file of the log.
#[derive(Debug)]
struct Batch {
    object: ObjectId,
    path: PathBuf,
    /// The ids of its messages, in order (empty when its file could not be read at open).
    ids: Vec<MessageId>,
    /// When it was written (its file's modification time), ms since the Unix epoch.
    written_ms: u64,
}

#[derive(Debug, Default)]
struct State {
    batches: BTreeMap<u64, Batch>,
    ids: HashSet<MessageId>,
    objects: HashMap<ObjectId, u64>,
    last_seq: u64,
    swept_ms: Option<u64>,
}

/// Sweeps for expired batch files at most this often (ms).
pub const SWEEP_EVERY_MS: u64 = 60_000;

/// The longest one read blocks, whatever it asks for.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// The message log of one received messages channel: batch files in the channel's inbox,
/// `<batch seq, 20 digits>-<object id>.ndjson`, each a batch in the form of
/// [`crate::core::message`] holding the messages kept from one landed batch object.
pub struct MessageLog {
    channel: String,
    inbox: PathBuf,
    retention_ms: u64,
    /// Held by one append from its first look at the state to its publication: appends
    /// follow one another, while readers take `state` only for a moment (never across a
    /// file's write and fsync).
    appending: Mutex<()>,
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

/// The name of batch `seq` of object `object`.
fn batch_name(seq: u64, object: ObjectId) -> String {
    format!("{seq:020}-{object}.ndjson")
}

/// `(seq, object)` of a batch file's name, `None` for any other name.
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

impl MessageLog {
    /// Opens (making the inbox when missing) and scans the log of `channel` in `inbox`:
    /// the ids and object ids it holds, its last batch number. Batch files kept for
    /// `retention_ms` (ms) after they were written. A batch file that does not parse is
    /// logged and left alone (its number is never given again); temporary files of an
    /// interrupted append are left to the lander's recovery, which deletes them.
    ///
    /// # Errors
    /// [`LogError::Io`]: the inbox cannot be made or read.
    pub fn open(channel: &str, inbox: &Path, retention_ms: u64) -> Result<MessageLog, LogError> {
        fs::create_dir_all(inbox).map_err(io_at(inbox))?;
        let mut st = State::default();
        for entry in fs::read_dir(inbox).map_err(io_at(inbox))? {
            let entry = entry.map_err(io_at(inbox))?;
            let Some((seq, object)) = entry.file_name().to_str().and_then(parse_name) else {
                continue;
            };
            let path = entry.path();
            let meta = match entry.metadata() {
                Ok(m) if m.is_file() => m,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_at(&path)(e)),
            };
            st.last_seq = st.last_seq.max(seq);
            let ids = match fs::read(&path).map(|b| read_written_batch(&b)) {
                Ok(Ok(msgs)) => msgs.into_iter().map(|m| m.id).collect(),
                Ok(Err(e)) => {
                    tracing::error!(channel, file = %path.display(), error = %e, "a file of the message log does not parse; it is left out");
                    Vec::new()
                }
                Err(e) => return Err(io_at(&path)(e)),
            };
            st.ids.extend(ids.iter().copied());
            st.objects.insert(object, seq);
            st.batches.insert(
                seq,
                Batch {
                    object,
                    path,
                    ids,
                    written_ms: mtime_ms(&meta),
                },
            );
        }
        Ok(MessageLog {
            channel: channel.to_string(),
            inbox: inbox.to_path_buf(),
            retention_ms,
            appending: Mutex::new(()),
            state: Mutex::new(st),
            landed: Condvar::new(),
        })
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
    /// messages whose id the log holds are dropped, the rest written as one batch file
    /// (temp file in the inbox's staging folder, fsync, rename, fsync of the inbox).
    /// `before_commit` is called once the outcome is planned and before the file appears
    /// (to write the audit records ahead); its error aborts the append. A batch the log
    /// already holds appends nothing and does not call `before_commit`
    /// ([`Appended::already`]). Readers waiting in [`MessageLog::read`] are woken.
    ///
    /// # Errors
    /// [`LogError`]: writing failed (nothing was appended), or `before_commit`'s error.
    pub fn append<F>(
        &self,
        object: ObjectId,
        messages: &[BatchMessage],
        before_commit: F,
    ) -> Result<Appended, LogError>
    where
        F: FnOnce(&Appended) -> Result<(), LogError>,
    {
        let _appending = self.appending.lock().unwrap_or_else(|e| e.into_inner());
        let st = self.lock();
        if st.objects.contains_key(&object) {
            return Ok(Appended {
                already: true,
                ..Appended::default()
            });
        }
        let seq = st.last_seq + 1;
        let mut out = Appended::default();
        let mut bytes = Vec::new();
        let mut kept = Vec::new();
        let mut seen = HashSet::new();
        for m in messages {
            if st.ids.contains(&m.id) || !seen.insert(m.id) {
                out.duplicates.push(m.id);
                continue;
            }
            let index = u32::try_from(kept.len()).unwrap_or(u32::MAX);
            encode_line(&mut bytes, m.id, &m.body).map_err(|source| LogError::Encode {
                channel: self.channel.clone(),
                source,
            })?;
            kept.push(m.id);
            out.delivered.push((m.id, Cursor { batch: seq, index }));
        }
        if !kept.is_empty() {
            out.batch = Some(seq);
        }
        // only an append adds to the state (a sweep only forgets old batches), and this
        // one holds `appending`: readers go on while the records and the file are written
        drop(st);
        before_commit(&out)?;
        if kept.is_empty() {
            return Ok(out);
        }
        let name = batch_name(seq, object);
        let path = self.inbox.join(&name);
        self.write(&name, &path, &bytes)?;
        let mut st = self.lock();
        st.last_seq = seq;
        st.ids.extend(kept.iter().copied());
        st.objects.insert(object, seq);
        st.batches.insert(
            seq,
            Batch {
                object,
                path,
                ids: kept,
                written_ms: crate::now_ms(),
            },
        );
        drop(st);
        self.landed.notify_all();
        Ok(out)
    }

    /// Writes a batch file durably: temp file in the staging folder, fsync, rename,
    /// fsync of the inbox.
    fn write(&self, name: &str, path: &Path, bytes: &[u8]) -> Result<(), LogError> {
        let staging = self.inbox.join(STAGING);
        if !staging.is_dir() {
            match fs::DirBuilder::new().mode(0o700).create(&staging) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_at(&staging)(e)),
            }
        }
        let tmp = staging.join(format!("{name}.tmp"));
        let written = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_at(&tmp)(e));
        }
        if let Err(e) = fs::rename(&tmp, path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_at(path)(e));
        }
        crate::fsx::sync_dir(&self.inbox).map_err(io_at(&self.inbox))
    }

    /// Reads up to `limit` messages after `after` (from the start when `None`), in log
    /// order. When there is none yet, waits up to `wait` (at most [`MAX_WAIT`]) for a
    /// batch to land (long-poll). A batch file removed meanwhile (retention) is skipped.
    ///
    /// # Errors
    /// [`LogError::Io`]: a batch file could not be read.
    pub fn read(
        &self,
        after: Option<Cursor>,
        limit: usize,
        wait: Duration,
    ) -> Result<Page, LogError> {
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
            for (seq, path) in todo {
                let bytes = match fs::read(&path) {
                    Ok(b) => b,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_at(&path)(e)),
                };
                let batch = match read_written_batch(&bytes) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(channel = %self.channel, file = %path.display(), error = %e, "a file of the message log does not parse; it is skipped");
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
            // every file asked for went away (retention): look again
        }
    }

    /// The batch files holding messages after `after`, enough for `limit` messages.
    fn pending(st: &State, after: Option<Cursor>, limit: usize) -> Vec<(u64, PathBuf)> {
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
            out.push((seq, b.path.clone()));
            count += n;
            if count >= limit {
                break;
            }
        }
        out
    }

    /// Removes the batch files written more than the retention before `now_ms` (ms since
    /// the Unix epoch), at most once per [`SWEEP_EVERY_MS`]; the newest batch is always
    /// kept (the log's numbering goes on from it after a restart). The ids of the removed
    /// messages are forgotten. Returns how many files were removed.
    ///
    /// # Errors
    /// [`LogError::Io`]: a file could not be removed (the others stay for the next sweep).
    pub fn sweep(&self, now_ms: u64) -> Result<usize, LogError> {
        let mut st = self.lock();
        if st
            .swept_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < SWEEP_EVERY_MS)
        {
            return Ok(0);
        }
        st.swept_ms = Some(now_ms);
        let newest = st.last_seq;
        let expired: Vec<u64> = st
            .batches
            .iter()
            .filter(|(seq, b)| {
                **seq != newest && now_ms.saturating_sub(b.written_ms) > self.retention_ms
            })
            .map(|(seq, _)| *seq)
            .collect();
        let mut removed = 0;
        for seq in expired {
            let Some(b) = st.batches.get(&seq) else {
                continue;
            };
            match fs::remove_file(&b.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&b.path)(e)),
            }
            if let Some(b) = st.batches.remove(&seq) {
                for id in &b.ids {
                    st.ids.remove(id);
                }
                st.objects.remove(&b.object);
                removed += 1;
            }
        }
        if removed > 0 {
            crate::fsx::sync_dir(&self.inbox).map_err(io_at(&self.inbox))?;
            tracing::info!(channel = %self.channel, batches = removed, "message log: batches past their retention removed");
        }
        Ok(removed)
    }
}

/// Appends a landed batch object (verified and inspected again on this node; `bytes`
/// the batch as it lands, the masked copy when this node masked) to `log`: one
/// `message_delivered` record per message kept (detail `cursor B.I`), one
/// `message_duplicate` per message dropped, all synced once before the batch file
/// appears; then the metrics. A batch the log already holds records nothing.
///
/// # Errors
/// [`LogError`]: the audit or the log could not be written; nothing was appended.
pub fn land_batch(
    node: &crate::node::Node,
    log: &MessageLog,
    object: ObjectId,
    messages: &[BatchMessage],
) -> Result<Appended, LogError> {
    let channel = log.channel().to_string();
    let peer = node.cfg.peer.name.clone();
    let appended = log.append(object, messages, |plan| {
        let mut last = None;
        let entry = |id: MessageId, detail: Option<String>| Entry {
            channel: Some(channel.clone()),
            object_id: Some(object),
            peer: Some(peer.clone()),
            message: Some(id.to_string()),
            detail,
            ..Entry::default()
        };
        for (id, cursor) in &plan.delivered {
            last = Some(node.audit.append(
                Event::MessageDelivered,
                entry(*id, Some(format!("cursor {cursor}"))),
            )?);
        }
        for id in &plan.duplicates {
            last = Some(node.audit.append(
                Event::MessageDuplicate,
                entry(*id, Some("already in the message log".into())),
            )?);
        }
        if let Some(seq) = last {
            node.audit.sync_to(seq)?;
        }
        Ok(())
    })?;
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
        let file = t.path().join(batch_name(1, obj(1)));
        assert!(file.is_file());
        assert_eq!(
            crate::core::message::parse_batch(&fs::read(&file).unwrap())
                .unwrap()
                .len(),
            2
        );
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
        // a cursor past the end, and a limit of nothing
        assert!(
            log.read(Some(c(99, 0)), 5, Duration::ZERO)
                .unwrap()
                .messages
                .is_empty()
        );
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
        // nothing new at all: no file, the numbering does not move
        let none = log.append(obj(3), &[msg("a", "1")], ok).unwrap();
        assert_eq!(none.batch, None);
        assert_eq!(none.duplicates.len(), 1);
        assert!(!log.has_object(obj(3)));
        let next = log.append(obj(4), &[msg("d", "4")], ok).unwrap();
        assert_eq!(next.batch, Some(3));
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
    fn retention_removes_old_batches_but_the_newest() {
        let t = tempfile::tempdir().unwrap();
        let log = MessageLog::open("notices", t.path(), 1_000).unwrap();
        for n in 1..=3u8 {
            log.append(obj(n), &[msg(&n.to_string(), &n.to_string())], ok)
                .unwrap();
        }
        let now = crate::now_ms();
        assert_eq!(log.sweep(now).unwrap(), 0);
        // within a minute of the last sweep: nothing is looked at
        assert_eq!(log.sweep(now + SWEEP_EVERY_MS / 2).unwrap(), 0);
        assert_eq!(log.sweep(now + SWEEP_EVERY_MS).unwrap(), 2);
        assert!(!t.path().join(batch_name(1, obj(1))).exists());
        assert!(t.path().join(batch_name(3, obj(3))).exists());
        assert!(!log.has_message(MessageId::derive("notices", "1")));
        let page = log.read(None, 10, Duration::ZERO).unwrap();
        assert_eq!(page.messages.len(), 1);
        assert_eq!(page.messages[0].cursor, c(3, 0));
        // a reader whose cursor points into a removed batch goes on from the next one
        let p = log.read(Some(c(1, 0)), 10, Duration::ZERO).unwrap();
        assert_eq!(p.messages[0].cursor, c(3, 0));
        // the numbering goes on after a restart
        drop(log);
        let log = MessageLog::open("notices", t.path(), 1_000).unwrap();
        assert_eq!(
            log.append(obj(9), &[msg("9", "9")], ok).unwrap().batch,
            Some(4)
        );
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
        // a crash while the next batch was written: its temp file stays in staging; and a
        // file of the inbox that is no batch, and one that is damaged
        let staging = t.path().join(STAGING);
        fs::write(
            staging.join(format!("{}.tmp", batch_name(3, obj(3)))),
            b"{\"id\"",
        )
        .unwrap();
        fs::write(t.path().join("notes.txt"), b"hello").unwrap();
        fs::write(t.path().join(batch_name(3, obj(7))), b"{\"id\":").unwrap();
        let log = MessageLog::open("notices", t.path(), DAY).unwrap();
        assert!(log.has_object(obj(1)) && log.has_object(obj(2)));
        assert!(!log.has_object(obj(3)));
        assert!(log.has_message(MessageId::derive("notices", "b")));
        // the interrupted batch comes again: appended once, under a new number
        let again = log
            .append(obj(3), &[msg("c", "3"), msg("d", "4")], ok)
            .unwrap();
        assert_eq!(again.batch, Some(4));
        assert_eq!(again.duplicates, [MessageId::derive("notices", "c")]);
        // a batch that landed before the crash is not appended again
        assert!(log.append(obj(1), &[msg("a", "1")], ok).unwrap().already);
        let page = log.read(None, 100, Duration::ZERO).unwrap();
        let bodies: Vec<_> = page.messages.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["1", "2", "3", "4"]);
    }

    #[test]
    fn names_round_trip() {
        let n = batch_name(42, obj(0xab));
        assert_eq!(n.len(), 20 + 1 + 32 + 7);
        assert_eq!(parse_name(&n), Some((42, obj(0xab))));
        assert_eq!(parse_name("42-abab.ndjson"), None);
        assert_eq!(parse_name(&format!("{n}.tmp")), None);
    }
}
