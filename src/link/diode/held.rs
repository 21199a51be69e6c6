//! What the diode sender still holds after an object's last copy has gone out, and the
//! operator's requests to send some of it again (`isogate resend`). A one-way link has no
//! receipt: when the receiver reports an object `lost`, the operator carries its id across
//! by hand and asks the sender to send it again, which works while the sender holds it.
//!
//! ```text
//! state/spool/<channel>/<id>/   ── retired ──►  state/sent/<channel>/<id>/
//!   meta.json content manifest      (hold)        meta.json content manifest retired
//!                                ◄── resend ───   kept `[diode] keep_sent_s`, then pruned
//! state/resend/<n>.req   a request: object ids and/or a time range (JSON), written by
//!                        `isogate resend`, taken by the running sender within a second
//! state/resend/<n>.out   the sender's answer, one line per object
//! ```
//!
//! Moves are renames inside the state directory, each followed by an fsync of both parent
//! directories: a crash leaves an entry either in the spool (sent again at the next start;
//! the receiver drops duplicates by object id) or held, never half of each.

use crate::core::id::ObjectId;
use crate::core::stage::Spooled;
use crate::fsx::{sync_dir, write_durable};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Most requests taken in one pass; more wait for the next.
const MAX_REQUESTS: usize = 16;
/// Largest request file read (bytes).
const MAX_REQUEST_BYTES: u64 = 1 << 20;
/// Most objects one request may name.
pub const MAX_REQUEST_IDS: usize = 10_000;

/// A held copy of a retired object.
#[derive(Debug, Clone)]
pub struct HeldEntry {
    /// The spool entry as it was (its `dir` is now under `state/sent/`).
    pub spooled: Spooled,
    /// When its last copy went out (ms since the Unix epoch).
    pub retired_ms: u64,
    /// Content size in bytes.
    pub size: u64,
}

/// What an operator asks to be sent again: objects by id, or every held object retired
/// in `[since_ms, until_ms)`; both filters apply when both are given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Object ids (32 hex digits).
    #[serde(default)]
    pub ids: Vec<String>,
    /// Retired at or after this time (ms since the epoch).
    #[serde(default)]
    pub since_ms: Option<u64>,
    /// Retired before this time (ms since the epoch).
    #[serde(default)]
    pub until_ms: Option<u64>,
}

impl Request {
    /// Whether `e` is asked for.
    pub fn matches(&self, e: &HeldEntry) -> bool {
        (self.ids.is_empty() || self.ids.iter().any(|i| *i == e.spooled.id.to_string()))
            && self.since_ms.is_none_or(|s| e.retired_ms >= s)
            && self.until_ms.is_none_or(|u| e.retired_ms < u)
    }
}

/// The held copies and the request queue of one node.
#[derive(Debug, Clone)]
pub struct Held {
    spool: PathBuf,
    sent: PathBuf,
    requests: PathBuf,
}

impl Held {
    /// The paths under a node's state directory (`spool/`, `sent/`, `resend/`); creates the
    /// last two.
    ///
    /// # Errors
    /// A directory cannot be made: which one, and why.
    pub fn open(state_dir: &Path) -> Result<Held, (PathBuf, io::Error)> {
        let h = Self::paths(state_dir);
        for dir in [&h.sent, &h.requests] {
            fs::create_dir_all(dir).map_err(|e| (dir.clone(), e))?;
        }
        Ok(h)
    }

    /// The paths, creating nothing (for reading only).
    pub fn paths(state_dir: &Path) -> Held {
        Held {
            spool: state_dir.join("spool"),
            sent: state_dir.join("sent"),
            requests: state_dir.join("resend"),
        }
    }

    /// Moves a retired object's spool entry into the held copies.
    ///
    /// # Errors
    /// An I/O error: the entry stays in the spool.
    pub fn hold(&self, spooled: &Spooled, now_ms: u64) -> io::Result<()> {
        write_durable(
            &spooled.dir.join("retired"),
            format!("{now_ms}\n").as_bytes(),
        )?;
        let chan = self.sent.join(&spooled.channel);
        fs::create_dir_all(&chan)?;
        let to = chan.join(spooled.id.to_string());
        if to.exists() {
            fs::remove_dir_all(&to)?;
        }
        fs::rename(&spooled.dir, &to)?;
        sync_dir(&chan)?;
        if let Some(parent) = spooled.dir.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }

    /// Every held copy, oldest retirement first. Unreadable entries are skipped.
    pub fn list(&self) -> Vec<HeldEntry> {
        let mut out = Vec::new();
        let Ok(chans) = fs::read_dir(&self.sent) else {
            return out;
        };
        for chan in chans.flatten() {
            let Ok(entries) = fs::read_dir(chan.path()) else {
                continue;
            };
            for e in entries.flatten() {
                if let Some(h) = read_entry(&e.path()) {
                    out.push(h);
                }
            }
        }
        out.sort_by_key(|h| (h.retired_ms, h.spooled.sequence));
        out
    }

    /// Removes the held copies that `due` says are past their time; returns how many. (The
    /// caller decides: a copy's `retired_ms` is wall time, which may have been stepped.)
    pub fn prune(&self, due: impl Fn(&HeldEntry) -> bool) -> usize {
        let mut n = 0;
        for h in self.list() {
            if due(&h) && fs::remove_dir_all(&h.spooled.dir).is_ok() {
                n += 1;
            }
        }
        n
    }

    /// Whether the object is in the spool (still being sent, or waiting).
    pub fn in_spool(&self, channel: &str, id: ObjectId) -> bool {
        self.spool.join(channel).join(id.to_string()).is_dir()
    }

    /// Whether the object is in the spool of any channel.
    pub fn in_any_spool(&self, id: &str) -> bool {
        fs::read_dir(&self.spool).is_ok_and(|chans| {
            chans
                .flatten()
                .any(|c| !id.contains('/') && c.path().join(id).is_dir())
        })
    }

    /// Moves a held copy back into the spool, ready to be sent again.
    ///
    /// # Errors
    /// An I/O error: the copy stays held.
    pub fn restore(&self, h: &HeldEntry) -> io::Result<Spooled> {
        // sent in full again, not as a repeat whose window has ended
        crate::sender::spool::Spool::clear_sent(&h.spooled.dir)?;
        let chan = self.spool.join(&h.spooled.channel);
        fs::create_dir_all(&chan)?;
        let to = chan.join(h.spooled.id.to_string());
        fs::rename(&h.spooled.dir, &to)?;
        sync_dir(&chan)?;
        if let Some(parent) = h.spooled.dir.parent() {
            sync_dir(parent)?;
        }
        let _ = fs::remove_file(to.join("retired"));
        Ok(Spooled {
            dir: to,
            ..h.spooled.clone()
        })
    }

    /// Queues a request for the running sender; returns its file.
    ///
    /// # Errors
    /// The request cannot be written.
    pub fn submit(&self, request: &Request) -> io::Result<PathBuf> {
        fs::create_dir_all(&self.requests)?;
        let name = format!(
            "{}-{}",
            crate::now_ms(),
            ObjectId::random().map_err(io::Error::other)?
        );
        let body = serde_json::to_vec(request).map_err(io::Error::other)?;
        // written beside it as a dot file and renamed: the node never sees half a request
        let path = self.requests.join(format!("{name}.req"));
        write_durable(&path, &body)?;
        Ok(path)
    }

    /// The answer file of a request.
    pub fn answer_path(request: &Path) -> PathBuf {
        request.with_extension("out")
    }

    /// Takes up to 16 waiting requests, oldest first. A request that cannot be read is
    /// answered at once and dropped.
    pub fn take_requests(&self) -> Vec<(PathBuf, Request)> {
        let Ok(dir) = fs::read_dir(&self.requests) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "req"))
            .collect();
        paths.sort();
        paths.truncate(MAX_REQUESTS);
        let mut out = Vec::new();
        for p in paths {
            let parsed = fs::metadata(&p)
                .ok()
                .filter(|m| m.len() <= MAX_REQUEST_BYTES)
                .and_then(|_| fs::read(&p).ok())
                .and_then(|b| serde_json::from_slice::<Request>(&b).ok())
                .filter(|r| r.ids.len() <= MAX_REQUEST_IDS);
            match parsed {
                Some(r) => out.push((p, r)),
                None => self.answer(&p, &["refused: the request cannot be read".to_string()]),
            }
        }
        out
    }

    /// Writes the answer to a request and removes the request.
    pub fn answer(&self, request: &Path, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        if let Err(e) = write_durable(&Self::answer_path(request), text.as_bytes()) {
            tracing::error!(error = %e, "cannot answer a resend request");
        }
        let _ = fs::remove_file(request);
        let _ = sync_dir(&self.requests);
    }
}

fn read_entry(dir: &Path) -> Option<HeldEntry> {
    let spooled = crate::sender::spool::Spool::read_entry(dir)?;
    let retired_ms = fs::read_to_string(dir.join("retired"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let stored = fs::symlink_metadata(dir.join("content")).ok()?.len();
    // a content sealed at rest: the size of what it holds
    let size = match crate::sender::spool::is_sealed(&spooled).ok()? {
        true => crate::keys::at_rest::plain_len(stored)?,
        false => stored,
    };
    Some(HeldEntry {
        spooled,
        retired_ms,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spooled(state: &Path, id: ObjectId) -> Spooled {
        let dir = state.join("spool/c").join(id.to_string());
        fs::create_dir_all(&dir).unwrap();
        let meta = serde_json::json!({"id": id.to_string(), "channel": "c", "name": "a.txt", "sequence": 1, "taken_ms": 5});
        fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
        fs::write(dir.join("content"), b"hello").unwrap();
        fs::write(dir.join("manifest"), b"m").unwrap();
        Spooled {
            id,
            channel: "c".into(),
            name: "a.txt".into(),
            sequence: 1,
            taken_ms: 5,
            dir,
        }
    }

    #[test]
    fn hold_list_restore_prune() {
        let t = tempfile::tempdir().unwrap();
        let h = Held::open(t.path()).unwrap();
        let id = ObjectId([1; 16]);
        let s = spooled(t.path(), id);
        h.hold(&s, 1_000).unwrap();
        assert!(!h.in_spool("c", id));
        let list = h.list();
        assert_eq!(list.len(), 1);
        assert_eq!((list[0].retired_ms, list[0].size), (1_000, 5));
        assert_eq!(list[0].spooled.name, "a.txt");
        let back = h.restore(&list[0]).unwrap();
        assert!(h.in_spool("c", id));
        assert!(h.in_any_spool(&id.to_string()));
        assert_eq!(fs::read(back.content()).unwrap(), b"hello");
        assert!(h.list().is_empty());
        h.hold(&back, 2_000).unwrap();
        assert_eq!(h.prune(|e| 2_500 - e.retired_ms >= 1_000), 0);
        assert_eq!(h.prune(|e| 3_000 - e.retired_ms >= 1_000), 1);
        assert!(h.list().is_empty());
    }

    #[test]
    fn requests_round_trip_and_match() {
        let t = tempfile::tempdir().unwrap();
        let h = Held::open(t.path()).unwrap();
        let id = ObjectId([2; 16]);
        let r = Request {
            ids: vec![id.to_string()],
            since_ms: Some(10),
            until_ms: Some(20),
        };
        let p = h.submit(&r).unwrap();
        fs::write(t.path().join("resend/bad.req"), b"{not json").unwrap();
        let taken = h.take_requests();
        assert_eq!(taken, vec![(p.clone(), r.clone())]);
        assert!(
            fs::read_to_string(t.path().join("resend/bad.out"))
                .unwrap()
                .contains("refused")
        );
        h.answer(&p, &["done".into()]);
        assert!(!p.exists());
        assert_eq!(fs::read_to_string(Held::answer_path(&p)).unwrap(), "done\n");
        let mut e = HeldEntry {
            spooled: spooled(t.path(), id),
            retired_ms: 15,
            size: 5,
        };
        assert!(r.matches(&e));
        e.retired_ms = 20;
        assert!(!r.matches(&e));
        e.retired_ms = 15;
        e.spooled.id = ObjectId([3; 16]);
        assert!(!r.matches(&e));
        assert!(Request::default().matches(&e));
    }
}
