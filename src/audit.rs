//! The node's audit log: every step on this node, appended as one JSON line per record
//! through this one interface, with group-committed fsync for the records that must be
//! durable before the object they describe is acknowledged or removed.
//!
//! Records also go to in-process subscribers (the demo prints them as they happen).

use crate::manifest::ObjectId;
use crate::reason::Reason;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use thiserror::Error;
use tokio::sync::broadcast;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The node started with a valid configuration.
    ConfigLoaded,
    /// The node stopped.
    Stopped,
    /// A file was taken from an outbox into the spool.
    Taken,
    /// The sender's inspection accepted an object.
    Accepted,
    /// The sender refused an object (it went to quarantine).
    Refused,
    /// The manifest was built and signed.
    Sealed,
    /// The object was sent on the link.
    Sent,
    /// The peer's receipt arrived; the spool copy is removed.
    Confirmed,
    /// The object was delivered into the inbox.
    Landed,
    /// The receiver refused an object (it went to quarantine).
    Quarantined,
    /// An object already landed arrived again and was not delivered twice.
    Duplicate,
    /// The link to the peer came up.
    LinkUp,
    /// The link to the peer went down.
    LinkDown,
}

impl Event {
    /// The stable name of the event.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::ConfigLoaded => "config_loaded",
            Event::Stopped => "stopped",
            Event::Taken => "taken",
            Event::Accepted => "accepted",
            Event::Refused => "refused",
            Event::Sealed => "sealed",
            Event::Sent => "sent",
            Event::Confirmed => "confirmed",
            Event::Landed => "landed",
            Event::Quarantined => "quarantined",
            Event::Duplicate => "duplicate",
            Event::LinkUp => "link_up",
            Event::LinkDown => "link_down",
        }
    }
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Position in this node's log, from 1.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The node writing the record.
    pub node: String,
    /// What happened.
    pub event: Event,
    /// The channel, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The object id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// The object's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The object's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// SHA-256 of the content, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Reason code of a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Free detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The peer node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
}

/// A record being built; `AuditLog::append` fills in the sequence, time and node.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// See `Record`.
    pub channel: Option<String>,
    /// See `Record`.
    pub object_id: Option<ObjectId>,
    /// See `Record`.
    pub name: Option<String>,
    /// See `Record`.
    pub size: Option<u64>,
    /// See `Record`.
    pub sha256: Option<[u8; 32]>,
    /// See `Record`.
    pub reason: Option<Reason>,
    /// See `Record`.
    pub detail: Option<String>,
    /// See `Record`.
    pub peer: Option<String>,
}

impl Entry {
    /// An entry about an object on a channel.
    pub fn object(channel: &str, id: ObjectId, name: &str) -> Entry {
        Entry {
            channel: Some(channel.to_string()),
            object_id: Some(id),
            name: Some(name.to_string()),
            ..Entry::default()
        }
    }
}

/// Why the audit log could not be written.
#[derive(Debug, Error)]
pub enum AuditError {
    /// Opening, writing or syncing the log failed.
    #[error("audit log {path}: {source}")]
    Io {
        /// The log file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A record could not be encoded.
    #[error("audit record does not encode: {0}")]
    Encode(#[from] serde_json::Error),
}

struct Writer {
    file: File,
    next_seq: u64,
}

/// The node's audit log.
pub struct AuditLog {
    node: String,
    path: PathBuf,
    writer: Mutex<Writer>,
    sync_lock: Mutex<()>,
    written: AtomicU64,
    synced: AtomicU64,
    events: broadcast::Sender<Record>,
}

/// Name of the log file in the audit directory.
pub const LOG_FILE: &str = "audit.jsonl";

fn last_seq(file: &mut File) -> std::io::Result<u64> {
    let len = file.seek(SeekFrom::End(0))?;
    let start = len.saturating_sub(64 * 1024);
    file.seek(SeekFrom::Start(start))?;
    let mut last = 0;
    for line in BufReader::new(&mut *file).split(b'\n') {
        let line = line?;
        if let Ok(r) = serde_json::from_slice::<Record>(&line) {
            last = r.seq;
        }
    }
    Ok(last)
}

impl AuditLog {
    /// Opens (or creates) the log in `dir`, continuing its sequence.
    pub fn open(dir: &Path, node: &str) -> Result<AuditLog, AuditError> {
        let path = dir.join(LOG_FILE);
        let io = |source| AuditError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        let last = last_seq(&mut file).map_err(io)?;
        let (events, _) = broadcast::channel(1024);
        Ok(AuditLog {
            node: node.to_string(),
            writer: Mutex::new(Writer {
                file,
                next_seq: last + 1,
            }),
            path,
            sync_lock: Mutex::new(()),
            written: AtomicU64::new(last),
            synced: AtomicU64::new(last),
            events,
        })
    }

    /// Subscribes to records as they are appended.
    pub fn subscribe(&self) -> broadcast::Receiver<Record> {
        self.events.subscribe()
    }

    fn io(&self, source: std::io::Error) -> AuditError {
        AuditError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends a record (written, not yet synced); returns its sequence number.
    pub fn append(&self, event: Event, e: Entry) -> Result<u64, AuditError> {
        let mut w = self
            .writer
            .lock()
            .map_err(|_| self.io(std::io::Error::other("audit writer poisoned")))?;
        let rec = Record {
            seq: w.next_seq,
            time_ms: crate::now_ms(),
            node: self.node.clone(),
            event,
            channel: e.channel,
            object_id: e.object_id.map(|i| i.to_string()),
            name: e.name,
            size: e.size,
            sha256: e.sha256.map(hex::encode),
            reason: e.reason,
            detail: e.detail,
            peer: e.peer,
        };
        let mut line = serde_json::to_vec(&rec)?;
        line.push(b'\n');
        w.file.write_all(&line).map_err(|e| self.io(e))?;
        w.next_seq += 1;
        self.written.store(rec.seq, Ordering::Release);
        drop(w);
        let seq = rec.seq;
        let _ = self.events.send(rec);
        Ok(seq)
    }

    /// Makes every record up to `seq` durable; concurrent callers share one fsync.
    pub fn sync_to(&self, seq: u64) -> Result<(), AuditError> {
        if self.synced.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let _g = self
            .sync_lock
            .lock()
            .map_err(|_| self.io(std::io::Error::other("audit sync poisoned")))?;
        if self.synced.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let upto = self.written.load(Ordering::Acquire);
        let file = {
            let w = self
                .writer
                .lock()
                .map_err(|_| self.io(std::io::Error::other("audit writer poisoned")))?;
            w.file.try_clone().map_err(|e| self.io(e))?
        };
        file.sync_data().map_err(|e| self.io(e))?;
        self.synced.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }

    /// Appends a record and makes it durable before returning.
    pub fn durable(&self, event: Event, e: Entry) -> Result<u64, AuditError> {
        let seq = self.append(event, e)?;
        self.sync_to(seq)?;
        Ok(seq)
    }
}

/// Reads every record of an audit directory, in order.
pub fn read_all(dir: &Path) -> std::io::Result<Vec<Record>> {
    let f = File::open(dir.join(LOG_FILE))?;
    let mut out = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).map_err(std::io::Error::other)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_continue_sequence_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = AuditLog::open(dir.path(), "court").unwrap();
            let mut sub = log.subscribe();
            assert_eq!(
                log.append(Event::ConfigLoaded, Entry::default()).unwrap(),
                1
            );
            let e = Entry::object("to-internet", ObjectId([1; 16]), "a.pdf");
            assert_eq!(log.durable(Event::Taken, e).unwrap(), 2);
            assert_eq!(sub.try_recv().unwrap().seq, 1);
        }
        let log = AuditLog::open(dir.path(), "court").unwrap();
        assert_eq!(log.durable(Event::Stopped, Entry::default()).unwrap(), 3);
        let all = read_all(dir.path()).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].event, Event::Taken);
        assert_eq!(all[1].name.as_deref(), Some("a.pdf"));
        assert_eq!(all[2].seq, 3);
    }
}
