//! The sender's spool: where a file lives, durable, from the moment it leaves the outbox
//! until the peer's receipt says it is durable on the other side (QUIC), or until the diode
//! retires it at the end of its repeat window.
//!
//! ```text
//! state/spool/<channel>/<object id>/meta.json   name, sequence, time (written first)
//!                                   content     the file, renamed in from the outbox
//!                                               (checked unchanged at seal: pipeline)
//!                                   manifest    the signed manifest, once sealed
//!                                   sent        diode only: the first pass is out; when
//!                                               its repeat window ends (ms, decimal)
//! state/seq/<channel>                           high-water mark of sequence numbers
//! ```
//!
//! A crash at any point leaves either the file in the outbox (taken again) or a complete
//! spool entry (sent again); a half-made entry without content is removed at recovery.

use crate::core::id::ObjectId;
use crate::core::stage::Spooled;
use crate::fsx::{sync_dir, write_durable};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The first-pass mark of a diode object in its spool entry.
const SENT_MARK: &str = "sent";

/// How many sequence numbers are reserved by one write of the high-water mark.
const SEQ_BLOCK: u64 = 1024;

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    id: String,
    channel: String,
    name: String,
    sequence: u64,
    taken_ms: u64,
}

struct SeqState {
    next: u64,
    reserved: u64,
}

/// The spool of one node.
pub struct Spool {
    root: PathBuf,
    seq_dir: PathBuf,
    seqs: Mutex<HashMap<String, SeqState>>,
}

/// A spool entry found at start-up.
pub struct Recovered {
    /// The spooled object.
    pub spooled: Spooled,
    /// The encoded signed manifest, if it was sealed before the stop.
    pub manifest: Option<Vec<u8>>,
}

impl Spool {
    /// Opens the spool under a node's state directory.
    pub fn open(state_dir: &Path) -> io::Result<Spool> {
        let root = state_dir.join("spool");
        let seq_dir = state_dir.join("seq");
        fs::create_dir_all(&root)?;
        fs::create_dir_all(&seq_dir)?;
        Ok(Spool {
            root,
            seq_dir,
            seqs: Mutex::new(HashMap::new()),
        })
    }

    fn next_seq(&self, channel: &str) -> io::Result<u64> {
        let mut seqs = self
            .seqs
            .lock()
            .map_err(|_| io::Error::other("sequence lock poisoned"))?;
        let path = self.seq_dir.join(channel);
        let st = match seqs.get_mut(channel) {
            Some(st) => st,
            None => {
                let start = match fs::read_to_string(&path) {
                    Ok(s) => s.trim().parse::<u64>().map_err(io::Error::other)?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => 1,
                    Err(e) => return Err(e),
                };
                seqs.entry(channel.to_string()).or_insert(SeqState {
                    next: start,
                    reserved: start,
                })
            }
        };
        if st.next >= st.reserved {
            let reserved = st.next + SEQ_BLOCK;
            write_durable(&path, format!("{reserved}\n").as_bytes())?;
            st.reserved = reserved;
        }
        let n = st.next;
        st.next += 1;
        Ok(n)
    }

    /// Moves `outbox/file_name` into a new spool entry. `Ok(None)` if the file vanished.
    pub fn take(
        &self,
        channel: &str,
        outbox: &Path,
        file_name: &OsStr,
        name: &str,
    ) -> io::Result<Option<Spooled>> {
        let id = ObjectId::random().map_err(io::Error::other)?;
        let chan_dir = self.root.join(channel);
        let dir = chan_dir.join(id.to_string());
        let new_channel = !chan_dir.is_dir();
        fs::create_dir_all(&dir)?;
        if new_channel {
            sync_dir(&self.root)?;
        }
        let spooled = Spooled {
            id,
            channel: channel.to_string(),
            name: name.to_string(),
            sequence: self.next_seq(channel)?,
            taken_ms: crate::now_ms(),
            dir,
        };
        let meta = Meta {
            id: id.to_string(),
            channel: channel.to_string(),
            name: name.to_string(),
            sequence: spooled.sequence,
            taken_ms: spooled.taken_ms,
        };
        let meta = serde_json::to_vec(&meta).map_err(io::Error::other)?;
        write_durable(&spooled.dir.join("meta.json"), &meta)?;
        sync_dir(&chan_dir)?;
        if let Err(e) = fs::rename(outbox.join(file_name), spooled.content()) {
            let _ = fs::remove_dir_all(&spooled.dir);
            return if e.kind() == io::ErrorKind::NotFound {
                Ok(None)
            } else {
                Err(e)
            };
        }
        sync_dir(&spooled.dir)?;
        sync_dir(outbox)?;
        Ok(Some(spooled))
    }

    /// Stores the signed manifest of a sealed object beside its content.
    pub fn store_manifest(&self, spooled: &Spooled, encoded: &[u8]) -> io::Result<()> {
        write_durable(&spooled.dir.join("manifest"), encoded)
    }

    /// Removes the stored manifest of an object whose content changed after it was sealed
    /// (it is sealed again).
    pub fn forget_manifest(&self, spooled: &Spooled) -> io::Result<()> {
        match fs::remove_file(spooled.dir.join("manifest")) {
            Ok(()) => sync_dir(&spooled.dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Records durably that the first diode pass of an object is out and that its repeat
    /// window ends at `window_end_ms` (ms since the Unix epoch).
    ///
    /// # Errors
    /// The mark cannot be written or synced.
    pub fn mark_sent(spooled: &Spooled, window_end_ms: u64) -> io::Result<()> {
        write_durable(
            &spooled.dir.join(SENT_MARK),
            format!("{window_end_ms}\n").as_bytes(),
        )
    }

    /// When the repeat window of an object whose first diode pass was out ends (ms since
    /// the Unix epoch); `None` when no pass is marked (or the mark is unreadable: the
    /// object is then sent again in full, which costs capacity but loses nothing).
    pub fn sent_mark(spooled: &Spooled) -> Option<u64> {
        let text = fs::read_to_string(spooled.dir.join(SENT_MARK)).ok()?;
        text.trim().parse().ok()
    }

    /// Removes the first-pass mark, so the object is sent in full again (`isogate resend`).
    ///
    /// # Errors
    /// The mark exists and cannot be removed.
    pub fn clear_sent(dir: &Path) -> io::Result<()> {
        match fs::remove_file(dir.join(SENT_MARK)) {
            Ok(()) => sync_dir(dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The spool entry (or held copy) in `dir`, from its `meta.json`; `None` when that is
    /// missing or unreadable.
    pub fn read_entry(dir: &Path) -> Option<Spooled> {
        let meta: Meta = serde_json::from_slice(&fs::read(dir.join("meta.json")).ok()?).ok()?;
        Some(Spooled {
            id: ObjectId::parse(&meta.id)?,
            channel: meta.channel,
            name: meta.name,
            sequence: meta.sequence,
            taken_ms: meta.taken_ms,
            dir: dir.to_path_buf(),
        })
    }

    /// Removes an entry whose object is durable on the other side or in quarantine.
    pub fn remove(&self, spooled: &Spooled) -> io::Result<()> {
        match fs::remove_dir_all(&spooled.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(parent) = spooled.dir.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }

    /// For each channel with a spool directory: how many entries it holds and when the
    /// oldest was taken (ms since the epoch, from its metadata file's time). For metrics.
    pub fn census(&self) -> Vec<(String, usize, Option<u64>)> {
        let Ok(chans) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for chan in chans.flatten() {
            let Ok(entries) = fs::read_dir(chan.path()) else {
                continue;
            };
            let (mut depth, mut oldest) = (0usize, None::<u64>);
            for e in entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            {
                depth += 1;
                let taken = fs::metadata(e.path().join("meta.json"))
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as u64);
                if let Some(t) = taken {
                    oldest = Some(oldest.map_or(t, |o: u64| o.min(t)));
                }
            }
            out.push((
                chan.file_name().to_string_lossy().into_owned(),
                depth,
                oldest,
            ));
        }
        out
    }

    /// Lists every complete entry left by an earlier run, oldest sequence first; removes
    /// half-made entries whose content never arrived.
    pub fn recover(&self) -> io::Result<Vec<Recovered>> {
        let mut out = Vec::new();
        for chan in fs::read_dir(&self.root)? {
            let chan = chan?;
            if !chan.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(chan.path())? {
                let entry = entry?;
                let dir = entry.path();
                if !entry.file_type()?.is_dir() {
                    // not an entry this node made: left alone, and said
                    tracing::warn!(path = %dir.display(), "not a spool entry (not a directory); left alone");
                    continue;
                }
                let meta = fs::read(dir.join("meta.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Meta>(&b).ok());
                let content = fs::symlink_metadata(dir.join("content")).is_ok();
                let (Some(meta), true) = (meta, content) else {
                    fs::remove_dir_all(&dir)?;
                    continue;
                };
                let Some(id) = ObjectId::parse(&meta.id) else {
                    continue;
                };
                let manifest = fs::read(dir.join("manifest")).ok();
                out.push(Recovered {
                    spooled: Spooled {
                        id,
                        channel: meta.channel,
                        name: meta.name,
                        sequence: meta.sequence,
                        taken_ms: meta.taken_ms,
                        dir,
                    },
                    manifest,
                });
            }
        }
        out.sort_by_key(|r| (r.spooled.channel.clone(), r.spooled.sequence));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_recover_remove() {
        let t = tempfile::tempdir().unwrap();
        let outbox = t.path().join("outbox");
        fs::create_dir_all(&outbox).unwrap();
        fs::write(outbox.join("a.txt"), b"hello").unwrap();
        let spool = Spool::open(&t.path().join("state")).unwrap();
        let s = spool
            .take("to-internet", &outbox, OsStr::new("a.txt"), "a.txt")
            .unwrap()
            .unwrap();
        assert!(!outbox.join("a.txt").exists());
        assert_eq!(fs::read(s.content()).unwrap(), b"hello");
        assert!(
            spool
                .take("to-internet", &outbox, OsStr::new("gone.txt"), "gone.txt")
                .unwrap()
                .is_none()
        );
        // a half-made entry (meta without content) is cleaned up
        let half = t.path().join("state/spool/to-internet/ffff");
        fs::create_dir_all(&half).unwrap();
        // a stray file an operator left is not an entry: skipped, not removed
        let stray = t.path().join("state/spool/to-internet/README");
        fs::write(&stray, b"notes").unwrap();
        let rec = Spool::open(&t.path().join("state"))
            .unwrap()
            .recover()
            .unwrap();
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].spooled.id, s.id);
        assert!(!half.exists());
        assert!(stray.exists());
        spool.remove(&s).unwrap();
        assert!(spool.recover().unwrap().is_empty());
    }

    #[test]
    fn sequence_survives_restart_and_grows() {
        let t = tempfile::tempdir().unwrap();
        let a = Spool::open(t.path()).unwrap();
        let first = a.next_seq("c").unwrap();
        let second = a.next_seq("c").unwrap();
        assert_eq!(second, first + 1);
        let b = Spool::open(t.path()).unwrap();
        assert!(b.next_seq("c").unwrap() > second);
    }
}
