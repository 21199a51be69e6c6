//! The sender's spool: where a file lives, durable, from the moment it leaves the outbox
//! until the peer's receipt says it is durable on the other side (QUIC), or until the diode
//! retires it at the end of its repeat window.
//!
//! ```text
//! state/spool/<channel>/<object id>/meta.json   name, sequence, time, sealed, and for a
//!                                               take through the outbox's staging folder
//!                                               the staged file's path (intent) (written
//!                                               first)
//!                                   content     the file, renamed in from the outbox, or
//!                                               copied (sealed) from its staged file
//!                                               (checked unchanged at seal: pipeline)
//!                                   source      an earlier version's intent record
//!                                   manifest    the signed manifest, once sealed
//!                                   sent        diode only: the first pass is out; when
//!                                               its repeat window ends (ms, decimal)
//! state/seq/<channel>                           high-water mark of sequence numbers
//! state/spool-free/<n>/                         a removed entry's folder, kept for a next
//!                                               take or batch (see below)
//! ```
//!
//! A removed entry's folder is kept for reuse, at most [`FREE_MAX`] of them: it is moved
//! out of the spool in one rename (from then on the entry is never sent again), then its
//! other files are renamed to the temporary names the next entry writes through. Its
//! content is emptied and kept as the next entry's part file when this node wrote it
//! (sealed at rest, no other name linking to it); a content renamed in from an outbox is
//! deleted, never emptied (another name or an open file may share it). A take or a
//! [`Spool::put_from`] (a batch of messages, a release from quarantine) moves such a
//! folder into place instead of making one, and writes its metadata, intent record,
//! content, manifest and sent mark over the old files (until then a live entry may hold
//! another object's temporary files: nothing reads them, and the spool is the node's
//! alone). So a sealed take makes no new file: on ext4 without a journal, making a file
//! right after others were deleted costs most of a millisecond of CPU. A node's start
//! empties the pool.
//!
//! Either way, a file that some process opened after the watch found it free and before
//! the take's rename goes back to the outbox, busy until that writer closes it
//! ([`Spool::watch_writers`]): what it writes next would otherwise miss the copy, or land in
//! a taken file.
//!
//! A crash at any point leaves either the file in the outbox (taken again) or a complete
//! spool entry (sent again); a half-made entry without content is removed at recovery.
//!
//! A messages channel's file is not spooled as it is: [`Spool::stage_out`] renames it into
//! the outbox's staging folder (the same question to the writers' tracker, put back when in
//! use), where it is read and removed once its messages are in a batch; a crash meanwhile
//! leaves it there, unclaimed, and the next start puts it back in the outbox.
//!
//! An outbox on another file system than the state directory cannot be renamed from
//! (`EXDEV`), so the take copies, with the same guarantees:
//!
//! ```text
//!  meta.json with its intent, `source` (fsynced) ─► rename outbox/<name> → outbox/.isogate-tmp/<id>
//!    (staging folder and outbox fsynced)
//!    ─► open by a writer at that rename (the outbox's events)? put back, entry removed
//!    ─► copy_durable → content (fsync, read back = SHA-256 of what was read, source unchanged;
//!       sealed at rest: not read back, its size checked, each piece authenticated by
//!       every later reader) and the entry's folder fsynced: meta.json and content durable
//!       together
//!    ─► remove outbox/.isogate-tmp/<id> (staging folder fsynced) (the intent stays in
//!       meta.json, naming a file that is gone)
//!  recovery of an entry with `source`: content and manifest there → nothing to do (the
//!  staged file's removal was durable before it was sealed); content there, no manifest →
//!  remove the staged file if there (never taken twice; the staging folders fsynced once,
//!  before anything is sent); staged
//!  file there → copy again; neither, and the staging folder there → the file never left
//!  the outbox (entry removed); staging folder not there or unreadable (the outbox not
//!  mounted yet) → entry kept for the next start. After recovery, each outbox's staging
//!  folder is swept: what no entry claims is put back in the outbox (WARN). An entry of an
//!  earlier version keeps its intent in a file of its own, `source`, renamed away once
//!  its take is over: read and finished the same way
//! ```
//!
//! The staged file stays on the outbox's file system, in a folder only the node may read
//! (0700), out of the watch's sight (a dot name).
//!
//! With the node's data keys every take goes this way, same file system or not: the copy
//! into `content` is sealed as it is written (`keys::at_rest`, bound to the entry's channel
//! and object id: [`context`]), and so is a batch's [`Spool::put`]. Readers open the content
//! with [`open_content`], sealed or plain (an entry taken before the node sealed). A file of
//! [`HASH_AT_TAKE_FROM`] bytes or more is hashed by that copy as it seals each piece
//! ([`Spool::take`]): the manifest's hashes, handed to the pipeline with the entry.

use crate::core::digest::Pushed;
use crate::core::id::ObjectId;
use crate::core::manifest::CHUNK_SIZE;
use crate::core::stage::Spooled;
use crate::fsx::{
    CopyError, copy_durable, copy_durable_as, empty, is_cross_device, rename_noreplace, sync_dir,
    write_durable, write_synced,
};
use crate::keys::at_rest::{DataKeys, SealId, SealWriter, SealedFile, Sealing, Stored, plain_len};
use crate::keys::suite::Suite;
use crate::sender::writers::Writers;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The folder in an outbox where a file taken across file systems waits while it is
/// copied into the spool, and a messages channel's file while it is read
/// ([`Spool::stage_out`]); same name as the inbox's staging folder.
pub const OUTBOX_STAGING: &str = crate::fsx::STAGING_DIR;

/// The intent record of a take across file systems, as an earlier version wrote it beside
/// `meta.json`: the staged file's path (now in [`Meta`]'s `source`, one fsync fewer per
/// take). Still read at recovery and by the sweep of the staging folders.
const SOURCE_MARK: &str = "source";

/// How many numbered names a put-back tries when the file's own name is taken.
const PUT_BACK_NAMES: u32 = 100;

/// How many times a copy is tried again when the file changed while it was read.
const COPY_TRIES: usize = 3;

/// How long a take waits for the outbox's events to show its own rename (see
/// [`Writers::in_use_when_moved`]); past it the file counts as in use and goes back.
const MOVE_SEEN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Files from this size (bytes) taken into a spool sealed at rest have their manifest's
/// hashes taken by the take's copy as it seals them ([`Spool::take`]), on two threads:
/// the pipeline then only inspects.
/// Below, threads cost more than the hashes they move.
pub const HASH_AT_TAKE_FROM: u64 = 4 << 20;

/// What a take moved into the spool: the entry, and the size of the file as taken (bytes).
#[derive(Debug, Clone)]
pub struct Taken {
    /// The new entry.
    pub spooled: Spooled,
    /// The file's size as it was renamed or copied in (bytes, plain).
    pub size: u64,
    /// The manifest's hashes of the bytes copied in, where [`Spool::take`] took
    /// them (a large file, into a spool sealed at rest).
    pub hashed: Option<TakenHashes>,
}

/// The manifest's hashes of a file's bytes, taken as the take sealed them into its copy in
/// the spool (each piece hashed as it was sealed): they stand for the content for as long as the entry's content is that very
/// sealing (`sealed_as`: its salt, random per sealing; a copy made again, or a masked copy,
/// has another), whose every chunk's tag authenticates it on each read. Made by the take
/// alone (the fields are the crate's): the seal signs them unhashed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenHashes {
    /// Bytes copied (plain).
    pub(crate) size: u64,
    /// The hash of the whole content (SHA-256, or SM3 under `gm`).
    pub(crate) digest: [u8; 32],
    /// The hash of each chunk of `core::manifest::CHUNK_SIZE` bytes, in order.
    pub(crate) chunks: Vec<[u8; 32]>,
    /// The suite of the hashes.
    pub(crate) suite: Suite,
    /// The sealing at rest the bytes were written into.
    pub(crate) sealed_as: SealId,
}

/// Mode of a spooled copy: the node's own.
const CONTENT_MODE: u32 = 0o600;

/// The first-pass mark of a diode object in its spool entry.
const SENT_MARK: &str = "sent";

/// The content of a [`Spool::put`] while it is written (renamed to `content` once synced).
const PUT_PART: &str = ".content.part";

/// The files of an entry that its folder keeps once removed, each with the temporary name
/// it waits under (beside an emptied [`PUT_PART`]), written through again by the entry
/// that reuses the folder.
const KEPT_NAMES: [(&str, &str); 4] = [
    ("meta.json", ".meta.json.tmp"),
    ("manifest", ".manifest.tmp"),
    (SENT_MARK, ".sent.tmp"),
    (SOURCE_MARK, SOURCE_TMP),
];

/// The temporary name of a finished take's intent record ([`SOURCE_MARK`], an earlier
/// version's).
const SOURCE_TMP: &str = ".source.tmp";

/// Whether `name` is the temporary name of a kept file ([`KEPT_NAMES`]).
fn is_kept_name(name: &str) -> bool {
    KEPT_NAMES.iter().any(|(_, tmp)| *tmp == name)
}

/// The folder under the state directory where removed entries' folders wait for reuse.
const FREE_DIR: &str = "spool-free";

/// At most this many removed entries' folders are kept for reuse.
pub const FREE_MAX: usize = 256;

/// How many sequence numbers are reserved by one write of the high-water mark.
const SEQ_BLOCK: u64 = 1024;

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    id: String,
    channel: String,
    name: String,
    sequence: u64,
    taken_ms: u64,
    /// The content is sealed at rest (decided when the entry is made, never from the
    /// content's own bytes, which the outbox's writer chose). Absent: plain.
    #[serde(default)]
    sealed: bool,
    /// The intent of a take through the outbox's staging folder: the path of the staged
    /// file the content is copied from (recovery finishes or undoes the take from it, and
    /// the sweep of the staging folders leaves that file alone). Kept once the take is
    /// over: the staged file is gone by then. Absent: the content was renamed in or
    /// written by the node. Entries of an earlier version record it in [`SOURCE_MARK`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<PathBuf>,
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
    /// Outbox paths a take put back by a rename (see [`Spool::was_put_back`]).
    put_back: Mutex<HashSet<PathBuf>>,
    /// The outboxes' open/close events, once the watch reads them
    /// ([`Spool::watch_writers`]).
    writers: OnceLock<Writers>,
    /// Where removed entries' folders wait ([`FREE_DIR`]), and those that do.
    free_root: PathBuf,
    free: Mutex<Vec<PathBuf>>,
    free_next: std::sync::atomic::AtomicU64,
}

/// At most this many put-back paths are remembered for the watch (bounded memory; a
/// forgotten one is taken after the settle rule's `settle_ms` of quiet only when no
/// writer holds it, see `crate::sender::writers`).
const PUT_BACK_MAX: usize = 1024;

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
        // the service's alone, whatever the umask (an object waiting for approval or for
        // its link is not for other users to read)
        crate::fsx::private_dir(&root, 0o700)?;
        crate::fsx::private_dir(&seq_dir, 0o700)?;
        let free_root = state_dir.join(FREE_DIR);
        crate::fsx::private_dir(&free_root, 0o700)?;
        Ok(Spool {
            root,
            seq_dir,
            seqs: Mutex::new(HashMap::new()),
            put_back: Mutex::new(HashSet::new()),
            writers: OnceLock::new(),
            free_root,
            free: Mutex::new(Vec::new()),
            free_next: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Takes a removed entry's folder out of the spool in one rename, into [`FREE_DIR`]
    /// (the spool's folder synced by the caller; the pool's is not: a crash that keeps
    /// both names leaves an entry already delivered, emptied with the pool at start, then
    /// removed as an entry without content): from then on it is never sent again, and nothing that
    /// writes to the entry by its path reaches it. There its content is emptied and kept
    /// (sealed by this node) or deleted (see [`Spool::clean`]), its other files renamed
    /// to the temporary names they are written through, the folder fsynced, and it is
    /// kept for reuse; a folder holding anything else, or one that finds the pool filled
    /// meanwhile by removals running at once, is deleted. `Ok(false)`: the pool is full
    /// ([`FREE_MAX`]); the caller removes the entry.
    fn retire(&self, dir: &Path) -> io::Result<bool> {
        if self.free.lock().map_or(true, |f| f.len() >= FREE_MAX) {
            return Ok(false);
        }
        let n = self
            .free_next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let slot = self.free_root.join(n.to_string());
        fs::rename(dir, &slot)?;
        // the pool is checked again when the folder joins it: removals running at once all
        // passed the check above, and the pool never holds more than FREE_MAX
        let kept = Self::clean(&slot).is_ok_and(|clean| clean)
            && self.free.lock().is_ok_and(|mut f| {
                let room = f.len() < FREE_MAX;
                if room {
                    f.push(slot.clone());
                }
                room
            });
        if !kept {
            fs::remove_dir_all(&slot)?;
        }
        Ok(true)
    }

    /// Readies a retired folder for reuse: `false` when it holds a name this spool does
    /// not write there (it is then not reused). A content this node wrote sealed at rest
    /// (its metadata says so) that no other name links to is emptied and kept as the next
    /// entry's part file; any other content (a file renamed in from an outbox, which other
    /// names or open files may share) is deleted. An intent record is kept under its
    /// temporary name.
    fn clean(slot: &Path) -> io::Result<bool> {
        let content = slot.join("content");
        let sealed = fs::read(slot.join("meta.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Meta>(&b).ok())
            .is_some_and(|m| m.sealed);
        let own =
            sealed && fs::symlink_metadata(&content).is_ok_and(|m| m.is_file() && m.nlink() == 1);
        if own {
            empty(&content)?;
            fs::rename(&content, slot.join(PUT_PART))?;
        } else {
            match fs::remove_file(&content) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let mut renames = Vec::new();
        for e in fs::read_dir(slot)? {
            let e = e?;
            if !e.file_type()?.is_file() {
                return Ok(false);
            }
            let name = e.file_name();
            let live = name
                .to_str()
                .and_then(|n| KEPT_NAMES.iter().find(|(live, _)| *live == n));
            let tmp = match (live, name.to_str()) {
                (Some((_, tmp)), _) => *tmp,
                (None, Some(PUT_PART)) => {
                    // a copy cut short (the content just kept is empty already): nothing
                    // of it stays
                    if e.metadata()?.len() > 0 {
                        empty(&e.path())?;
                    }
                    continue;
                }
                (None, Some(n)) if is_kept_name(n) => continue,
                _ => return Ok(false),
            };
            renames.push((name, tmp));
        }
        for (name, tmp) in renames {
            fs::rename(slot.join(name), slot.join(tmp))?;
        }
        // the old names gone for good before the folder can get a live entry's name: a
        // power cut must never bring back a `content` or `source` beside the next entry's
        // metadata (a file system without a journal writes folders back in no order)
        sync_dir(slot)?;
        Ok(true)
    }

    /// Moves a kept folder to `dir` (which must not exist; the caller syncs its parent).
    /// `false`: none is kept, or the one taken holds more than the temporary names, or
    /// the move failed (that folder is dropped).
    fn reuse(&self, dir: &Path) -> bool {
        let Some(slot) = self.free.lock().ok().and_then(|mut f| f.pop()) else {
            return false;
        };
        let only_temporary = fs::read_dir(&slot).is_ok_and(|entries| {
            entries.into_iter().all(|e| {
                e.is_ok_and(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n == PUT_PART || is_kept_name(n))
                })
            })
        });
        let moved = if only_temporary {
            // the pool's name made durable as removed: a crash must not leave the live entry
            // under both names (the pool is emptied at start, which would empty the entry)
            fs::rename(&slot, dir).and_then(|()| sync_dir(&self.free_root))
        } else {
            Err(io::Error::other("it holds more than temporary files"))
        };
        match moved {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(folder = %slot.display(), error = %e, "a kept spool folder cannot be reused; removed");
                let _ = fs::remove_dir_all(&slot);
                false
            }
        }
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

    /// Makes a new spool entry of `bytes` (a batch of messages, made by this node, not
    /// taken from an outbox) on `channel`, named `name`, with a fresh object id, sealed
    /// with `sealing` (the node's data keys) where given. Durable on return, with the
    /// guarantees of [`Spool::take`]: see [`Spool::put_as`].
    ///
    /// # Errors
    /// The random generator, or writing and syncing the entry, failed (nothing is left).
    pub fn put(
        &self,
        channel: &str,
        name: &str,
        bytes: &[u8],
        sealing: Option<&DataKeys>,
    ) -> io::Result<Spooled> {
        let id = ObjectId::random().map_err(io::Error::other)?;
        self.put_as(id, channel, name, bytes, sealing)
    }

    /// [`Spool::put`] with the object id given (a batch's name holds its id). The entry is
    /// complete or absent, whenever the node stops:
    ///
    /// ```text
    ///  meta.json (fsynced) ─► .content.part (written, fsynced) ─► rename → content
    ///    ─► fsync the entry (both names) ─► Ok   a cut before: no content, or no
    ///                                    meta.json; the entry is removed at recovery
    ///                                    (never sent)
    /// ```
    ///
    /// # Errors
    /// Writing or syncing failed: the entry is removed (best effort; recovery removes what
    /// is left, since it has no content).
    pub fn put_as(
        &self,
        id: ObjectId,
        channel: &str,
        name: &str,
        bytes: &[u8],
        sealing: Option<&DataKeys>,
    ) -> io::Result<Spooled> {
        self.put_from(id, channel, name, &mut &bytes[..], sealing)
    }

    /// [`Spool::put_as`] of the content `from` reads, streamed in bounded steps (sealed as
    /// it is written where `sealing` is given): complete or absent whenever the node stops.
    ///
    /// # Errors
    /// Reading `from`, writing or syncing failed: the entry is removed (best effort;
    /// recovery removes what is left, since it has no content).
    pub fn put_from(
        &self,
        id: ObjectId,
        channel: &str,
        name: &str,
        from: &mut dyn io::Read,
        sealing: Option<&DataKeys>,
    ) -> io::Result<Spooled> {
        let spooled = self.new_entry(id, channel, name, sealing.is_some(), true, None)?;
        let made = (|| {
            let part = spooled.dir.join(PUT_PART);
            {
                // a kept folder's emptied part file is written over
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(CONTENT_MODE)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&part)?;
                f.set_permissions(fs::Permissions::from_mode(CONTENT_MODE))?;
                match sealing {
                    Some(keys) => {
                        let context = context(&spooled);
                        let mut w = SealWriter::new(keys, io::BufWriter::new(&mut f), &context)?;
                        io::copy(from, &mut w)?;
                        w.finish()?;
                    }
                    None => {
                        io::copy(from, &mut f)?;
                    }
                }
                f.sync_all()?;
            }
            fs::rename(&part, spooled.content())?;
            sync_dir(&spooled.dir)
        })();
        if let Err(e) = made {
            let _ = fs::remove_dir_all(&spooled.dir);
            return Err(e);
        }
        Ok(spooled)
    }

    /// Whether the spool holds the complete entry `id` of `channel` (its content is there:
    /// a [`Spool::put_from`] that finished).
    pub fn holds(&self, channel: &str, id: &str) -> bool {
        fs::symlink_metadata(self.root.join(channel).join(id).join("content")).is_ok()
    }

    /// A new entry `id` of `channel` for an object named `name`: its folder (a kept one
    /// where `reuse` and there is one; durable in the channel's folder), its next sequence
    /// number and its `meta.json` (with `source`, the staged file a take copies from),
    /// fsynced, with no content yet. The name `meta.json` is made durable by the fsync of
    /// the entry's folder that makes its content durable: an entry whole on disk has both.
    ///
    /// # Errors
    /// Making or syncing a folder or the metadata failed (the entry is removed, best
    /// effort; recovery removes an entry without content).
    fn new_entry(
        &self,
        id: ObjectId,
        channel: &str,
        name: &str,
        sealed: bool,
        reuse: bool,
        source: Option<&Path>,
    ) -> io::Result<Spooled> {
        let chan_dir = self.root.join(channel);
        let dir = chan_dir.join(id.to_string());
        let new_channel = !chan_dir.is_dir();
        if new_channel {
            fs::create_dir_all(&chan_dir)?;
            sync_dir(&self.root)?;
        }
        if !(reuse && self.reuse(&dir)) {
            fs::create_dir_all(&dir)?;
        }
        let spooled = Spooled {
            id,
            channel: channel.to_string(),
            name: name.to_string(),
            sequence: self.next_seq(channel)?,
            taken_ms: crate::now_ms(),
            dir,
        };
        let made = write_meta(&spooled, sealed, source).and_then(|()| sync_dir(&chan_dir));
        if let Err(e) = made {
            let _ = fs::remove_dir_all(&spooled.dir);
            return Err(e);
        }
        Ok(spooled)
    }

    /// From now on, a take asks `writers` whether the file it renamed away was in use by a
    /// writer then, and puts it back if so (see [`Writers::in_use_when_moved`]). Set once,
    /// when the watch starts; without it a take relies on the watch's own check.
    pub fn watch_writers(&self, writers: Writers) {
        let _ = self.writers.set(writers);
    }

    /// Whether `outbox/file_name`, just renamed away by a take, was in use then (false when
    /// that cannot be known: see [`Writers::in_use_when_moved`]).
    fn in_use_when_moved(&self, outbox: &Path, file_name: &OsStr) -> bool {
        self.writers
            .get()
            .is_some_and(|w| w.in_use_when_moved(outbox, file_name, MOVE_SEEN_WAIT) == Some(true))
    }

    /// Moves `outbox/file_name` into a new spool entry. `Ok(None)` if the file vanished,
    /// or was put back because a writer had it open when it was renamed away.
    /// With `sealing` (the node's data keys) the content is sealed as it is copied in,
    /// through the outbox's staging folder as for an outbox on another file system (see
    /// the module's diagram): no plaintext copy rests in the spool.
    ///
    /// With `hash_in`, a file of [`HASH_AT_TAKE_FROM`] bytes or more taken into a spool
    /// sealed at rest is also hashed as `hash_in`'s manifest hashes ([`Taken::hashed`]) as
    /// it is copied: each piece read and sealed is hashed too, on two threads beside the
    /// copy.
    ///
    /// # Errors
    /// An I/O error making the entry, or moving, copying or syncing the file.
    pub fn take(
        &self,
        channel: &str,
        outbox: &Path,
        file_name: &OsStr,
        name: &str,
        sealing: Option<&DataKeys>,
        hash_in: Option<Suite>,
    ) -> io::Result<Option<Taken>> {
        let id = ObjectId::random().map_err(io::Error::other)?;
        // a sealed take goes through the staging folder: its intent is in the entry's
        // metadata from the start (one write, one fsync)
        let staged = match sealing {
            Some(_) => Some(crate::fsx::private_staging(outbox)?.join(id.to_string())),
            None => None,
        };
        let spooled = self.new_entry(
            id,
            channel,
            name,
            sealing.is_some(),
            true,
            staged.as_deref(),
        )?;
        if let Some(w) = self.writers.get() {
            w.moving_out(outbox, file_name);
        }
        let taken_across = |spooled: Spooled, recorded: bool| {
            let hash_in = hash_in.filter(|_| sealing.is_some());
            self.take_across(outbox, file_name, &spooled, sealing, recorded, hash_in)
                .map(|t| {
                    t.map(|(size, hashed)| Taken {
                        spooled,
                        size,
                        hashed,
                    })
                })
        };
        if sealing.is_some() {
            return taken_across(spooled, true);
        }
        match fs::rename(outbox.join(file_name), spooled.content()) {
            Ok(()) => {}
            Err(e) if is_cross_device(&e) => return taken_across(spooled, false),
            Err(e) => {
                let _ = fs::remove_dir_all(&spooled.dir);
                return if e.kind() == io::ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                };
            }
        }
        if self.in_use_when_moved(outbox, file_name) {
            // a writer opened it after it was found free: its writes would go on into the
            // entry. Back to the outbox, busy until that writer closes.
            match self.put_back(&spooled.content(), outbox, file_name, true) {
                Ok(_) => {
                    fs::remove_dir_all(&spooled.dir)?;
                    if let Some(parent) = spooled.dir.parent() {
                        sync_dir(parent)?;
                    }
                    tracing::info!(name = %spooled.name, "open by a writer when taken; put back in the outbox");
                    return Ok(None);
                }
                // not put back (no free name, an I/O error): taken as it is, checked
                // unchanged at seal
                Err(e) => {
                    tracing::warn!(name = %spooled.name, error = %e, "open by a writer when taken, and cannot be put back; taken");
                }
            }
        }
        sync_dir(&spooled.dir)?;
        sync_dir(outbox)?;
        let size = fs::symlink_metadata(spooled.content())?.len();
        Ok(Some(Taken {
            spooled,
            size,
            hashed: None,
        }))
    }

    /// The take of an outbox on another file system, or of any outbox into a spool sealed
    /// at rest (see the module's diagram): the size copied, once the content is in the
    /// entry and the file gone from the outbox; `None` when the file vanished, was open by
    /// a writer when renamed away, or kept changing while it was copied (it is put back,
    /// and the entry removed). `recorded`: the entry's metadata names the staged file
    /// already; else it is written again to name it. With `hash_in` and `sealing`, a file
    /// of [`HASH_AT_TAKE_FROM`] bytes or more is hashed as it is copied (see
    /// [`TakenHashes`]); `None` where it was not, or its hashing failed (the pipeline then
    /// hashes the entry).
    fn take_across(
        &self,
        outbox: &Path,
        file_name: &OsStr,
        spooled: &Spooled,
        sealing: Option<&DataKeys>,
        recorded: bool,
        hash_in: Option<Suite>,
    ) -> io::Result<Option<(u64, Option<TakenHashes>)>> {
        let prepared = (|| {
            let staging = crate::fsx::private_staging(outbox)?;
            let staged = staging.join(spooled.id.to_string());
            // durable by the time the content is: the copy's fsync of the entry's folder
            // (until then a staged file it does not claim is put back at the next start)
            if !recorded {
                write_meta(spooled, sealing.is_some(), Some(&staged))?;
            }
            Ok((staging, staged))
        })();
        let (staging, staged) = match prepared {
            Ok(p) => p,
            Err(e) => {
                // nothing left the outbox: no entry either
                let _ = fs::remove_dir_all(&spooled.dir);
                return Err(e);
            }
        };
        let from = outbox.join(file_name);
        if let Err(e) = fs::rename(&from, &staged) {
            let _ = fs::remove_dir_all(&spooled.dir);
            return if e.kind() == io::ErrorKind::NotFound {
                Ok(None)
            } else {
                Err(e)
            };
        }
        sync_dir(&staging)?;
        sync_dir(outbox)?;
        if self.in_use_when_moved(outbox, file_name) {
            // a writer opened it after it was found free: what it writes from here on
            // would miss the copy. Back to the outbox, busy until that writer closes.
            let whole = self.take_failed(outbox, file_name, spooled, &staged, None)?;
            return whole
                .then(|| content_size(spooled, sealing).map(|size| (size, None)))
                .transpose();
        }
        let large = fs::symlink_metadata(&staged).is_ok_and(|m| m.len() >= HASH_AT_TAKE_FROM);
        let hashing = hash_in.filter(|_| large && sealing.is_some());
        let mut failed = None;
        for _ in 0..COPY_TRIES {
            // each try hashes what it copies afresh; the threads start with its first piece
            let mut pushed: Option<Pushed> = None;
            let mut started = false;
            let mut tap = |piece: &[u8]| {
                if let (Some(suite), false) = (hashing, started) {
                    started = true;
                    pushed = Pushed::start(CHUNK_SIZE, suite)
                        .inspect_err(|e| tracing::debug!(object = %spooled.id, error = %e, "cannot hash beside the take; the pipeline hashes the entry"))
                        .ok();
                }
                if let Some(p) = pushed.as_mut() {
                    p.update(piece);
                }
            };
            match finish_take(&spooled.dir, &staged, sealing, &context(spooled), &mut tap) {
                Ok(Some(size)) => {
                    let hashed = match (pushed, hashing) {
                        (Some(p), Some(suite)) => taken_hashes(spooled, sealing, p, suite, size),
                        _ => None,
                    };
                    return Ok(Some((size, hashed)));
                }
                Ok(None) => return content_size(spooled, sealing).map(|size| Some((size, None))),
                Err(CopyError::Changed) => {
                    tracing::debug!(object = %spooled.id, "changed while it was copied into the spool; copying again");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => {
                    failed = Some(io::Error::from(e));
                    break;
                }
            }
        }
        let whole = self.take_failed(outbox, file_name, spooled, &staged, failed)?;
        whole
            .then(|| content_size(spooled, sealing).map(|size| (size, None)))
            .transpose()
    }

    /// The end of a take across file systems whose copy did not finish (`failed`: the
    /// error; `None`: the file kept changing): `true` only when the content is whole in the
    /// entry; otherwise the entry is removed and the staged file put back, if there.
    fn take_failed(
        &self,
        outbox: &Path,
        file_name: &OsStr,
        spooled: &Spooled,
        staged: &Path,
        failed: Option<io::Error>,
    ) -> io::Result<bool> {
        if let Some(e) = &failed
            && fs::symlink_metadata(staged).is_err()
        {
            if fs::symlink_metadata(spooled.content()).is_ok() {
                // the staged file goes only once the copy is whole: just the record is left
                tracing::warn!(object = %spooled.id, error = %e, "the staged file is gone and the copy whole: taken");
                return Ok(true);
            }
            // the staged file vanished before the copy was whole (the outbox removed under
            // the node): nothing was taken
            fs::remove_dir_all(&spooled.dir)?;
            if let Some(parent) = spooled.dir.parent() {
                sync_dir(parent)?;
            }
            tracing::warn!(object = %spooled.id, name = %spooled.name, error = %e, "the file vanished from the outbox's staging folder while it was copied; nothing taken");
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("staged file vanished while it was copied: {e}"),
            ));
        }
        // still written by some process, or the copy failed (a full disk): back to the
        // outbox, to be taken again later (under a free name if its own is taken meanwhile);
        // where no name can be had, the entry keeps its intent and the next start finishes
        // the copy. A copy already in the entry goes first: no moment holds the file in the
        // outbox and in a whole entry.
        match fs::remove_file(spooled.content()) {
            Ok(()) => sync_dir(&spooled.dir)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.put_back(staged, outbox, file_name, failed.is_none())?;
        fs::remove_dir_all(&spooled.dir)?;
        if let Some(parent) = spooled.dir.parent() {
            sync_dir(parent)?;
        }
        match failed {
            Some(e) => Err(e),
            None => {
                tracing::info!(name = %spooled.name, "open by a writer when taken, or written while it was copied; put back in the outbox");
                Ok(false)
            }
        }
    }

    /// Takes `outbox/file_name` out of the outbox to be read where no writer can reach it:
    /// renamed into the outbox's staging folder under its own name (one file system, one
    /// rename, never over a file staged there), for a messages channel's file, which is read
    /// and then removed rather than spooled as it is. `Ok(None)` when the file vanished,
    /// when a file of that name is staged already (its take not over, or a put-back that
    /// failed: put back at the next start; said at WARN, once a while), or when a writer had
    /// it open at the rename: then it goes back to the outbox, busy until that writer closes
    /// it, as for [`Spool::take`]. A crash while it is staged: the next start puts it back
    /// ([`Spool::sweep_staging`]).
    ///
    /// # Errors
    /// The staging folder is not the node's own ([`crate::fsx::private_staging`]), or the
    /// rename or a directory sync fails (the file is put back first), or a file found in
    /// use cannot be put back (it stays staged until the next start).
    pub fn stage_out(&self, outbox: &Path, file_name: &OsStr) -> io::Result<Option<PathBuf>> {
        let staging = crate::fsx::private_staging(outbox)?;
        let staged = staging.join(file_name);
        if let Some(w) = self.writers.get() {
            w.moving_out(outbox, file_name);
        }
        match rename_noreplace(&outbox.join(file_name), &staged) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                crate::ops::repeat::warn_repeated!("spool.stage_out", &staged.display().to_string(); staged = %staged.display(), "a file of this name is still staged (its take is not over, or was cut short: the next start puts it back); this one waits in the outbox");
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        let synced = sync_dir(&staging).and_then(|()| sync_dir(outbox));
        let in_use = synced.as_ref().is_ok() && self.in_use_when_moved(outbox, file_name);
        if let Err(e) = synced {
            // not known to be out of the outbox for good: back, and tried again
            if let Err(p) = self.put_back(&staged, outbox, file_name, false) {
                tracing::warn!(staged = %staged.display(), error = %p, "a staged file cannot be put back in the outbox; the next start puts it back");
            }
            return Err(e);
        }
        if in_use {
            if let Err(e) = self.put_back(&staged, outbox, file_name, true) {
                tracing::warn!(staged = %staged.display(), error = %e, "open by a writer when taken, and cannot be put back in the outbox; the next start puts it back");
                return Err(e);
            }
            tracing::info!(name = %file_name.to_string_lossy(), "open by a writer when taken; put back in the outbox");
            return Ok(None);
        }
        Ok(Some(staged))
    }

    /// Puts a file staged by [`Spool::stage_out`] back into `outbox` as `file_name` (or a
    /// free variant of it, said at WARN), when what was read from it cannot be made durable
    /// now: the watch takes it again later.
    ///
    /// # Errors
    /// As `Spool::put_back`.
    pub fn unstage(&self, staged: &Path, outbox: &Path, file_name: &OsStr) -> io::Result<()> {
        self.put_back(staged, outbox, file_name, false).map(|_| ())
    }

    /// Renames a staged file back into `outbox` as `file_name`, or, when a writer made that
    /// name again meanwhile, as `<stem> (isogate-N)<.ext>` (N from 1, said at WARN). The
    /// path is remembered for [`Spool::was_put_back`] before the rename. `in_use`: found in
    /// use when taken (or written while copied): the name gets back the opens and writes
    /// the outbox's events counted when it was taken, if any ([`Writers::putting_back`]).
    ///
    /// # Errors
    /// I/O; `AlreadyExists` when no free name was found (the staged file stays).
    fn put_back(
        &self,
        staged: &Path,
        outbox: &Path,
        file_name: &OsStr,
        in_use: bool,
    ) -> io::Result<PathBuf> {
        let writers = self.writers.get().filter(|_| in_use);
        let put = self.put_back_as(staged, outbox, file_name, writers);
        if let Some(w) = writers {
            w.take_done(outbox, file_name);
        }
        put
    }

    /// [`Spool::put_back`], under the first free name.
    fn put_back_as(
        &self,
        staged: &Path,
        outbox: &Path,
        file_name: &OsStr,
        writers: Option<&Writers>,
    ) -> io::Result<PathBuf> {
        for n in 0..=PUT_BACK_NAMES {
            let name = if n == 0 {
                file_name.to_os_string()
            } else {
                numbered(file_name, n)
            };
            let to = outbox.join(&name);
            self.remember_put_back(&to);
            if let Some(w) = writers {
                w.putting_back(outbox, file_name, &name);
            }
            match rename_noreplace(staged, &to) {
                Ok(()) => {
                    sync_dir(outbox)?;
                    if n > 0 {
                        tracing::warn!(name = %file_name.to_string_lossy(), put_back_as = %name.to_string_lossy(), "name taken again in the outbox meanwhile; the file is put back under another name");
                    }
                    return Ok(to);
                }
                Err(e) => {
                    self.forget_put_back(&to);
                    if let Some(w) = writers {
                        w.not_put_back(outbox, &name);
                    }
                    if e.kind() != io::ErrorKind::AlreadyExists {
                        return Err(e);
                    }
                }
            }
        }
        tracing::warn!(staged = %staged.display(), "no free name to put a staged file back in the outbox; kept, and finished at the next start");
        Err(io::Error::from(io::ErrorKind::AlreadyExists))
    }

    fn remember_put_back(&self, path: &Path) {
        if let Ok(mut set) = self.put_back.lock() {
            if set.len() >= PUT_BACK_MAX {
                set.clear();
            }
            set.insert(path.to_path_buf());
        }
    }

    fn forget_put_back(&self, path: &Path) {
        if let Ok(mut set) = self.put_back.lock() {
            set.remove(path);
        }
    }

    /// Whether `path` (an outbox entry) was just put back there by a take that found its
    /// file still written: the watch then settles it again like a changed file rather than
    /// taking it at once as renamed in. Answers `true` once per put-back.
    pub fn was_put_back(&self, path: &Path) -> bool {
        self.put_back.lock().is_ok_and(|mut set| set.remove(path))
    }

    /// Puts back into `outbox` every file or folder in its staging folder that no spool
    /// entry's intent record claims (left by an earlier run cut short), under its staged
    /// name or a free variant of it, each said at WARN. Run after [`Spool::recover`];
    /// returns how many were put back. A missing staging folder holds nothing.
    ///
    /// # Errors
    /// The spool or the staging folder cannot be read.
    pub fn sweep_staging(&self, outbox: &Path) -> io::Result<usize> {
        match fs::symlink_metadata(outbox.join(OUTBOX_STAGING)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        // never a folder some writer of the outbox made, or a link to elsewhere
        let staging = crate::fsx::private_staging(outbox)?;
        let listing = fs::read_dir(&staging)?;
        let claimed = self.claimed()?;
        let mut n = 0;
        for entry in listing {
            let entry = entry?;
            let path = entry.path();
            if claimed.contains(&path) {
                continue;
            }
            tracing::warn!(staged = %path.display(), "a staged file no spool entry claims; put back in the outbox");
            self.put_back(&path, outbox, &entry.file_name(), false)?;
            n += 1;
        }
        Ok(n)
    }

    /// The staged paths named by intent records in the spool.
    fn claimed(&self) -> io::Result<HashSet<PathBuf>> {
        let mut out = HashSet::new();
        for chan in fs::read_dir(&self.root)? {
            let chan = chan?;
            if !chan.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(chan.path())? {
                let dir = entry?.path();
                let meta = fs::read(dir.join("meta.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Meta>(&b).ok());
                // an entry whose metadata cannot be read may still hold an earlier
                // version's record
                let source = match &meta {
                    Some(m) => intent(&dir, m).ok().flatten(),
                    None => fs::read(dir.join(SOURCE_MARK))
                        .ok()
                        .map(|b| PathBuf::from(OsString::from_vec(b))),
                };
                out.extend(source);
            }
        }
        Ok(out)
    }

    /// Stores the signed manifest of a sealed object beside its content: durably where
    /// `durable` (an object that may wait on the approval desk, or whose diode passes are
    /// marked in the spool: see [`Spool::mark_sent`]), else written with no fsync
    /// ([`crate::fsx::write_replaced`]), two disk flushes fewer a file. Such a manifest is
    /// only the sealing's result kept for the next start: one lost, cut short or left from
    /// the folder's last object by a power cut fails its reload (its signature, or its
    /// object id: `seal::reload`), and the object is inspected and sealed again (same id
    /// and content) under the policy in force then. A recovered manifest is made durable
    /// where the channel now needs it ([`Spool::sync_manifest`]).
    ///
    /// # Errors
    /// Writing, syncing or renaming fails.
    pub fn store_manifest(
        &self,
        spooled: &Spooled,
        encoded: &[u8],
        durable: bool,
    ) -> io::Result<()> {
        let path = spooled.dir.join("manifest");
        if durable {
            write_durable(&path, encoded)
        } else {
            crate::fsx::write_replaced(&path, encoded)
        }
    }

    /// Makes a manifest stored without fsync ([`Spool::store_manifest`]) durable: its file,
    /// then the entry's folder. For an object reloaded at a start that may now wait on the
    /// approval desk or go out on the diode.
    ///
    /// # Errors
    /// The manifest cannot be opened or synced, or the entry cannot be synced.
    pub fn sync_manifest(&self, spooled: &Spooled) -> io::Result<()> {
        crate::fsx::open_nofollow(&spooled.dir.join("manifest"))?.sync_all()?;
        sync_dir(&spooled.dir)
    }

    /// Removes the stored manifest of an object whose content changed after it was sealed
    /// (it is sealed again), and its diode first-pass mark: no pass of the version sealed
    /// next has gone out, so it goes out in full, whenever its earlier version's repeat
    /// window ends (else it would be retired unsent). The mark goes first, made durable
    /// before the manifest goes: a crash between the two leaves the old manifest without
    /// its mark, an object reloaded at the next start whose copy no longer matches its
    /// manifest (both links check it chunk by chunk, and take it again), never a mark
    /// without a manifest (the new version's passes all spare ones).
    ///
    /// # Errors
    /// A file exists and cannot be removed, or the entry cannot be synced.
    pub fn forget_manifest(&self, spooled: &Spooled) -> io::Result<()> {
        for name in [SENT_MARK, "manifest"] {
            match fs::remove_file(spooled.dir.join(name)) {
                Ok(()) => sync_dir(&spooled.dir)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
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

    /// Removes an entry whose object is durable on the other side or in quarantine (its
    /// folder kept for reuse when it can be: see the module's header).
    pub fn remove(&self, spooled: &Spooled) -> io::Result<()> {
        let kept = match self.retire(&spooled.dir) {
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => {
                tracing::debug!(entry = %spooled.dir.display(), error = %e, "a removed spool entry's folder cannot be kept; deleted");
                false
            }
        };
        if !kept {
            match fs::remove_dir_all(&spooled.dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
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
    /// half-made entries whose content never arrived. A take cut short is finished, its
    /// content sealed with `sealing` where the node has data keys.
    ///
    /// # Errors
    /// The spool cannot be read; `InvalidData` when an entry is sealed and there is no
    /// `sealing` (the node started without the data key that sealed it: it would read
    /// ciphertext as content).
    pub fn recover(&self, sealing: Option<&DataKeys>) -> io::Result<Vec<Recovered>> {
        // the folders kept by an earlier run: never entries, deleted (one that cannot be
        // is left, and said: it is never read)
        for kept in fs::read_dir(&self.free_root)? {
            let path = kept?.path();
            let gone = match fs::remove_dir_all(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotADirectory => fs::remove_file(&path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            };
            if let Err(e) = gone {
                tracing::warn!(path = %path.display(), error = %e, "cannot delete a spool folder kept by an earlier run; left alone");
            }
        }
        let mut out = Vec::new();
        let mut to_sync = HashMap::new();
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
                if sealing.is_none() && meta.as_ref().is_some_and(|m| m.sealed) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{}: sealed at rest, and this node has no data key: set [node] data_key to the key file that sealed it",
                            dir.display()
                        ),
                    ));
                }
                // an entry is finished in the form it was made in
                if let Some(m) = &meta
                    && let Some(staged) = intent(&dir, m)?
                    && !recover_take(
                        &dir,
                        &m.id,
                        (staged, m.source.is_none()),
                        sealing.filter(|_| m.sealed),
                        &entry_context(&m.channel, &m.id),
                        &mut to_sync,
                    )?
                {
                    continue;
                }
                let content = fs::symlink_metadata(dir.join("content")).is_ok();
                let Some(meta) = meta.filter(|_| content) else {
                    if content {
                        // never deleted: it may be the only copy of a file taken
                        tracing::warn!(entry = %dir.display(), "a spool entry with content and no readable meta.json; left alone, never sent: it may be the only copy of a file taken, for an operator to look at");
                    } else {
                        fs::remove_dir_all(&dir)?;
                    }
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
        // the staged files of takes cut short are gone for good before their entries can
        // be delivered and removed (see `recover_take`); a staging folder gone (its outbox
        // replaced) holds nothing to sync; one that cannot be synced keeps its entries for
        // the next start
        let mut unsynced = HashSet::new();
        for (staging, entries) in to_sync {
            match sync_dir(&staging) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    tracing::warn!(staging = %staging.display(), error = %e, "an outbox's staging folder cannot be synced; its takes cut short are kept for the next start");
                    unsynced.extend(entries);
                }
                _ => {}
            }
        }
        out.retain(|r| !unsynced.contains(&r.spooled.dir));
        out.sort_by_key(|r| (r.spooled.channel.clone(), r.spooled.sequence));
        Ok(out)
    }
}

/// Writes `spooled`'s `meta.json` (fsynced; its name is made durable by the entry's fsync
/// that makes its content durable, one folder fsync for both: an entry is never whole
/// without it), `sealed` at rest or not, with the staged file a take copies from.
///
/// # Errors
/// Writing or syncing failed; a staged path that is not UTF-8 (JSON holds text).
fn write_meta(spooled: &Spooled, sealed: bool, source: Option<&Path>) -> io::Result<()> {
    let meta = Meta {
        id: spooled.id.to_string(),
        channel: spooled.channel.clone(),
        name: spooled.name.clone(),
        sequence: spooled.sequence,
        taken_ms: spooled.taken_ms,
        sealed,
        source: source.map(Path::to_path_buf),
    };
    let meta = serde_json::to_vec(&meta).map_err(io::Error::other)?;
    write_synced(&spooled.dir.join("meta.json"), &meta)
}

/// What a spool entry's sealed content is bound to ([`SealWriter::new`]): its channel and
/// object id, so a sealed content moved to another entry does not open there.
pub fn context(spooled: &Spooled) -> Vec<u8> {
    entry_context(&spooled.channel, &spooled.id.to_string())
}

fn entry_context(channel: &str, id: &str) -> Vec<u8> {
    format!("spool/{channel}/{id}").into_bytes()
}

/// Opens a spool entry's content for reading: sealed (with `keys`) or plain (taken before
/// the node sealed, or by a node without a data key); never through a symbolic link.
///
/// # Errors
/// Opening failed (`NotFound`: the entry is gone); for a sealed entry, `InvalidData` when
/// there are no `keys`, or [`SealedFile::open`]'s.
pub fn open_content(spooled: &Spooled, keys: Option<&DataKeys>) -> io::Result<Stored> {
    let sealed = is_sealed(spooled)?;
    let f = crate::fsx::open_nofollow(&spooled.content())?;
    if !sealed {
        return Ok(Stored::Plain(f));
    }
    let keys = keys.ok_or_else(no_data_key)?;
    // durable, and read once in order by each reader opened here (the manifest's hash
    // beside the inspection, the send): out of the page cache behind. The inspection opens
    // its own reader, which drops behind too (inspect::Cache); a plain entry (renamed in,
    // maybe never written back) keeps what it reads
    Ok(Stored::Sealed(
        SealedFile::open(keys, f, &context(spooled))?.drop_behind(),
    ))
}

/// Whether a spool entry's content is sealed at rest, as its metadata says.
///
/// # Errors
/// The metadata cannot be read or parsed.
pub fn is_sealed(spooled: &Spooled) -> io::Result<bool> {
    let meta: Meta = serde_json::from_slice(&fs::read(spooled.dir.join("meta.json"))?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(meta.sealed)
}

/// The error of a sealed entry read by a node without a data key.
pub fn no_data_key() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "sealed at rest, and this node has no data key ([node] data_key)",
    )
}

/// The size (bytes) and `suite`'s hash (SHA-256 or SM3) of a spool entry's content, read
/// through `keys` where it is sealed ([`open_content`]), as the manifest and the audit record
/// give them.
///
/// # Errors
/// [`open_content`]'s, or reading failed (a sealed chunk that does not open: `InvalidData`).
pub fn hash_spooled(
    spooled: &Spooled,
    keys: Option<&DataKeys>,
    suite: crate::keys::suite::Suite,
) -> io::Result<(u64, [u8; 32])> {
    let mut content = open_content(spooled, keys)?;
    let size = content.len()?;
    let (digest, _) =
        crate::core::digest::hash_content(&mut content, crate::core::manifest::CHUNK_SIZE, suite)?;
    Ok((size, digest))
}

/// `name` with ` (isogate-N)` before its extension: `a.txt` → `a (isogate-1).txt`.
fn numbered(name: &OsStr, n: u32) -> OsString {
    let bytes = name.as_bytes();
    let split = match bytes.iter().rposition(|&b| b == b'.') {
        Some(i) if i > 0 => i,
        _ => bytes.len(),
    };
    let (stem, ext) = bytes.split_at(split);
    let mut out = stem.to_vec();
    out.extend_from_slice(format!(" (isogate-{n})").as_bytes());
    out.extend_from_slice(ext);
    OsString::from_vec(out)
}

/// The plain size of a new entry's content (bytes): sealed at rest when taken with
/// `sealing`.
fn content_size(spooled: &Spooled, sealing: Option<&DataKeys>) -> io::Result<u64> {
    let stored = fs::symlink_metadata(spooled.content())?.len();
    if sealing.is_none() {
        return Ok(stored);
    }
    plain_len(stored).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{stored} bytes is no sealed length"),
        )
    })
}

/// The hashes `pushed` took of a take's copy of `size` bytes, with the sealing it was
/// written into (read from the content's header). `None`, logged, where they cannot stand
/// for the content (a hashing thread stopped, another size, the header unreadable): the
/// pipeline hashes the entry then.
fn taken_hashes(
    spooled: &Spooled,
    sealing: Option<&DataKeys>,
    pushed: Pushed,
    suite: Suite,
    size: u64,
) -> Option<TakenHashes> {
    let hashed = pushed.finish().and_then(|(read, digest, chunks)| {
        if read != size {
            return Err(io::Error::other(format!(
                "{read} bytes hashed of {size} copied"
            )));
        }
        let sealed_as = open_content(spooled, sealing)?
            .seal_id()
            .ok_or_else(|| io::Error::other("the content is not sealed at rest"))?;
        Ok(TakenHashes {
            size,
            digest,
            chunks,
            suite,
            sealed_as,
        })
    });
    match hashed {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::debug!(object = %spooled.id, error = %e, "the hashes taken with the copy are dropped; the pipeline hashes the entry");
            None
        }
    }
}

/// Completes a take across file systems: copies the staged file into the entry's content
/// (unless it is there already), then removes the staged file, durably. The intent in the
/// entry's metadata stays: it names a file that is gone. Returns the plain size copied
/// (bytes); `None` when the content was there already.
fn finish_take(
    dir: &Path,
    staged: &Path,
    sealing: Option<&DataKeys>,
    context: &[u8],
    tap: &mut dyn FnMut(&[u8]),
) -> Result<Option<u64>, CopyError> {
    let content = dir.join("content");
    let size = if fs::symlink_metadata(&content).is_err() {
        Some(match sealing {
            Some(keys) => copy_durable_as(
                staged,
                &content,
                CONTENT_MODE,
                &Sealing { keys, context },
                tap,
            )?,
            None => copy_durable(staged, &content, CONTENT_MODE)?.size,
        })
    } else {
        None
    };
    // The staged file's removal is made durable before the entry can go (once delivered):
    // an entry gone while the staged file came back after a crash would leave that file
    // unclaimed, put back in the outbox and taken twice (the two folders may be on two
    // file systems, written back apart).
    match fs::remove_file(staged) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    // a staging folder gone (the outbox replaced since) holds nothing to sync
    if let Some(staging) = staged.parent() {
        match sync_dir(staging) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(size)
}

/// The staged file an entry's take copies from: its metadata's `source`, or the intent
/// record an earlier version wrote beside it ([`SOURCE_MARK`], kept until that take was
/// over). `None`: the entry was not taken through a staging folder, or that take is over.
///
/// # Errors
/// The intent record cannot be read (other than absent).
fn intent(dir: &Path, meta: &Meta) -> io::Result<Option<PathBuf>> {
    if let Some(source) = &meta.source {
        return Ok(Some(source.clone()));
    }
    match fs::read(dir.join(SOURCE_MARK)) {
        Ok(b) => Ok(Some(PathBuf::from(OsString::from_vec(b)))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// At recovery, an entry taken through a staging folder (`staged`: the file its take
/// copies from, see [`intent`]): finished when its content or its staged file is there
/// (`Ok(true)`: the entry goes on); the entry removed when neither is (the file never left
/// the outbox), or left for the next start when the copy fails now (`Ok(false)`).
///
/// An entry whose content is whole and whose intent is in its metadata (not `legacy`: an
/// earlier version's record, renamed away once its take is over):
/// - with a stored manifest, is left alone: its take's staged file was durably removed
///   before the manifest was written (the take ends before the pipeline starts), so it
///   never depends on its outbox again;
/// - without one, has its staged file removed if there, and the staging folder joins
///   `to_sync` (with the entry): that removal is made durable once per folder before any
///   entry is sent ([`Spool::recover`]). A staged path that cannot be looked at now (an
///   outbox not mounted) keeps the entry for the next start.
fn recover_take(
    dir: &Path,
    id: &str,
    (staged, legacy): (PathBuf, bool),
    sealing: Option<&DataKeys>,
    context: &[u8],
    to_sync: &mut HashMap<PathBuf, Vec<PathBuf>>,
) -> io::Result<bool> {
    // only ever a staged file of this very object: the record names nothing else
    let ours = staged.file_name() == Some(OsStr::new(id))
        && staged
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|n| n == OUTBOX_STAGING);
    let content = fs::symlink_metadata(dir.join("content")).is_ok();
    if !ours {
        tracing::warn!(entry = %dir.display(), "spool entry with an unusable intent record; left alone");
        return Ok(false);
    }
    // an earlier version's record goes from its name once its take is over (kept under
    // its temporary one, written through by a next take in this folder once reused)
    let done_mark = || match fs::rename(dir.join(SOURCE_MARK), dir.join(SOURCE_TMP)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    };
    if content && !legacy {
        if fs::symlink_metadata(dir.join("manifest")).is_ok() {
            return Ok(true);
        }
        let removed = match fs::symlink_metadata(&staged) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Ok(_) => fs::remove_file(&staged).or_else(|e| match e.kind() {
                io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            }),
            Err(e) => Err(e),
        };
        if let Err(e) = removed {
            tracing::warn!(entry = %dir.display(), staged = %staged.display(), error = %e, "the staged file of a take cut short cannot be looked at or removed (outbox not mounted?); entry kept, tried again at the next start");
            return Ok(false);
        }
        if let Some(staging) = staged.parent() {
            to_sync
                .entry(staging.to_path_buf())
                .or_default()
                .push(dir.to_path_buf());
        }
        return Ok(true);
    }
    if !content && let Err(e) = fs::symlink_metadata(&staged) {
        // the file never left the outbox only when its staging folder is there to say so:
        // an outbox not mounted yet, or unreadable now, keeps the entry for the next start
        let staging_there = staged
            .parent()
            .and_then(|p| fs::symlink_metadata(p).ok())
            .is_some_and(|m| m.is_dir());
        if e.kind() == io::ErrorKind::NotFound && staging_there {
            return Ok(true); // half-made: removed by the caller, the file is in the outbox
        }
        tracing::warn!(entry = %dir.display(), staged = %staged.display(), error = %e, "the staged file of a take across file systems cannot be seen (outbox not mounted?); entry kept, tried again at the next start");
        return Ok(false);
    }
    match finish_take(dir, &staged, sealing, context, &mut |_| {})
        .map_err(io::Error::from)
        .and_then(|_| done_mark())
    {
        Ok(()) => {
            tracing::info!(entry = %dir.display(), "a take across file systems cut short is finished");
            Ok(true)
        }
        Err(e) => {
            tracing::error!(entry = %dir.display(), error = %e, "cannot finish a take across file systems; tried again at the next start");
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn take_recover_remove() {
        let t = tempfile::tempdir().unwrap();
        let outbox = t.path().join("outbox");
        fs::create_dir_all(&outbox).unwrap();
        fs::write(outbox.join("a.txt"), b"hello").unwrap();
        let spool = Spool::open(&t.path().join("state")).unwrap();
        let taken = spool
            .take(
                "to-internet",
                &outbox,
                OsStr::new("a.txt"),
                "a.txt",
                None,
                None,
            )
            .unwrap()
            .unwrap();
        assert_eq!(taken.size, 5, "the size as taken");
        let s = taken.spooled;
        assert!(!outbox.join("a.txt").exists());
        assert_eq!(fs::read(s.content()).unwrap(), b"hello");
        assert!(
            spool
                .take(
                    "to-internet",
                    &outbox,
                    OsStr::new("gone.txt"),
                    "gone.txt",
                    None,
                    None
                )
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
            .recover(None)
            .unwrap();
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].spooled.id, s.id);
        assert!(!half.exists());
        assert!(stray.exists());
        spool.remove(&s).unwrap();
        assert!(spool.recover(None).unwrap().is_empty());
    }

    #[test]
    fn an_entry_taken_again_forgets_its_manifest_and_its_first_pass() {
        let t = tempfile::tempdir().unwrap();
        let spool = Spool::open(&t.path().join("state")).unwrap();
        let s = spool.put("to-internet", "a.txt", b"hello", None).unwrap();
        spool.store_manifest(&s, b"signed", true).unwrap();
        Spool::mark_sent(&s, 1_000).unwrap();
        assert_eq!(Spool::sent_mark(&s), Some(1_000));
        spool.forget_manifest(&s).unwrap();
        // the version sealed next goes out in full: no window of the first is left
        assert!(!s.dir.join("manifest").exists());
        assert_eq!(Spool::sent_mark(&s), None);
        assert_eq!(fs::read(s.content()).unwrap(), b"hello");
        // nothing left to forget
        spool.forget_manifest(&s).unwrap();
    }

    #[test]
    fn a_put_entry_is_complete_or_absent_after_a_cut() {
        let t = tempfile::tempdir().unwrap();
        let state = t.path().join("state");
        let spool = Spool::open(&state).unwrap();
        let whole = spool
            .put("notices", "batch.ndjson", b"{\"a\":1}\n", None)
            .unwrap();
        assert_eq!(fs::read(whole.content()).unwrap(), b"{\"a\":1}\n");
        assert!(!whole.dir.join(PUT_PART).exists());
        let id = ObjectId::random().unwrap();
        let named = spool
            .put_as(id, "notices", &format!("{id}.ndjson"), b"x\n", None)
            .unwrap();
        assert_eq!(named.id, id);
        assert!(named.sequence > whole.sequence);
        // cut before the rename: the content written and synced under its temporary name
        let cut = spool
            .put("notices", "cut.ndjson", b"partial", None)
            .unwrap();
        fs::rename(cut.content(), cut.dir.join(PUT_PART)).unwrap();
        // cut right after meta.json: no content at all
        let early = spool.put("notices", "early.ndjson", b"y\n", None).unwrap();
        fs::remove_file(early.content()).unwrap();
        let rec = Spool::open(&state).unwrap().recover(None).unwrap();
        let ids: Vec<ObjectId> = rec.iter().map(|r| r.spooled.id).collect();
        assert_eq!(ids, vec![whole.id, named.id], "the cut entries are gone");
        assert_eq!(rec[1].spooled.name, format!("{id}.ndjson"));
        assert!(!cut.dir.exists() && !early.dir.exists());
        // a put that fails leaves nothing: the channel's folder is a file
        fs::write(state.join("spool/blocked"), b"").unwrap();
        assert!(spool.put("blocked", "b.ndjson", b"z\n", None).is_err());
        assert!(Spool::open(&state).unwrap().recover(None).unwrap().len() == 2);
    }

    #[test]
    fn a_removed_entry_s_folder_is_reused_by_the_next_put_and_never_sent_again() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let state = t.path().join("state");
        let spool = Spool::open(&state).unwrap();
        let keys = data_keys(t.path());
        let first = spool
            .put("notices", "a.ndjson", b"{\"a\":1}\n", Some(&keys))
            .unwrap();
        spool
            .store_manifest(&first, b"signed manifest", true)
            .unwrap();
        Spool::mark_sent(&first, 42).unwrap();
        let folder = fs::metadata(&first.dir).unwrap().ino();
        let meta = fs::metadata(first.dir.join("meta.json")).unwrap().ino();
        let content = fs::metadata(first.content()).unwrap().ino();
        spool.remove(&first).unwrap();
        assert!(!first.dir.exists());
        // kept, with no name that makes an entry or a mark, and none of the content's bytes
        let kept: Vec<_> = fs::read_dir(state.join(FREE_DIR)).unwrap().collect();
        assert_eq!(kept.len(), 1);
        let kept = kept[0].as_ref().unwrap().path();
        let mut names = visible(&kept);
        names.sort();
        assert_eq!(
            names,
            [
                ".content.part",
                ".manifest.tmp",
                ".meta.json.tmp",
                ".sent.tmp"
            ]
        );
        assert_eq!(fs::metadata(kept.join(PUT_PART)).unwrap().len(), 0);
        // the next put takes it: the same folder, metadata and content files, new content
        let second = spool
            .put("notices", "b.ndjson", b"{\"b\":2}\n", Some(&keys))
            .unwrap();
        assert_eq!(fs::metadata(&second.dir).unwrap().ino(), folder);
        assert_eq!(
            fs::metadata(second.dir.join("meta.json")).unwrap().ino(),
            meta
        );
        assert_eq!(fs::metadata(second.content()).unwrap().ino(), content);
        assert_eq!(opened(&second, Some(&keys)), b"{\"b\":2}\n");
        assert!(!second.dir.join("manifest").exists());
        assert_eq!(Spool::sent_mark(&second), None);
        let back = Spool::read_entry(&second.dir).unwrap();
        assert_eq!((back.id, back.name.as_str()), (second.id, "b.ndjson"));
        // a removed entry with a file of its own is deleted
        spool.remove(&second).unwrap();
        let odd = spool
            .put("notices", "c.ndjson", b"c\n", Some(&keys))
            .unwrap();
        fs::write(odd.dir.join("planted"), b"x").unwrap();
        spool.remove(&odd).unwrap();
        assert!(!odd.dir.exists());
        assert_eq!(fs::read_dir(state.join(FREE_DIR)).unwrap().count(), 0);
        // a kept folder is never recovered as an entry, and a start empties the pool
        let third = spool
            .put("notices", "d.ndjson", b"d\n", Some(&keys))
            .unwrap();
        spool.remove(&third).unwrap();
        assert_eq!(fs::read_dir(state.join(FREE_DIR)).unwrap().count(), 1);
        let rec = Spool::open(&state).unwrap().recover(Some(&keys)).unwrap();
        assert!(rec.is_empty());
        assert_eq!(fs::read_dir(state.join(FREE_DIR)).unwrap().count(), 0);
    }

    /// Removals at once never keep more than FREE_MAX folders: each passed the pool's
    /// check before any of them joined it.
    #[test]
    fn removals_at_once_keep_no_more_folders_than_the_pool_holds() {
        let t = tempfile::tempdir().unwrap();
        let state = t.path().join("state");
        let spool = Spool::open(&state).unwrap();
        let keys = data_keys(t.path());
        let entries: Vec<Spooled> = (0..FREE_MAX + 48)
            .map(|i| {
                spool
                    .put("notices", &format!("{i}.ndjson"), b"x\n", Some(&keys))
                    .unwrap()
            })
            .collect();
        std::thread::scope(|s| {
            for share in entries.chunks(entries.len().div_ceil(8)) {
                let spool = &spool;
                s.spawn(move || {
                    for e in share {
                        spool.remove(e).unwrap();
                    }
                });
            }
        });
        assert!(entries.iter().all(|e| !e.dir.exists()));
        let kept = fs::read_dir(state.join(FREE_DIR)).unwrap().count();
        assert_eq!(kept, FREE_MAX, "{kept} folders kept");
        assert_eq!(kept, spool.free.lock().unwrap().len());
    }

    /// A take reuses a kept folder too: a sealed take writes through the kept files (no
    /// file made), and its content is emptied and kept once removed; a file renamed in
    /// as it was (a plain take) is deleted, never emptied: another name may share it.
    #[test]
    fn a_take_reuses_a_kept_folder_and_never_empties_a_file_it_did_not_write() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let state = t.path().join("state");
        let outbox = t.path().join("outbox");
        fs::create_dir_all(&outbox).unwrap();
        let spool = Spool::open(&state).unwrap();
        let keys = data_keys(t.path());
        let take = |name: &str, body: &[u8], sealing: Option<&DataKeys>| {
            fs::write(outbox.join(name), body).unwrap();
            spool
                .take("c", &outbox, OsStr::new(name), name, sealing, None)
                .unwrap()
                .unwrap()
                .spooled
        };
        let first = take("a.txt", b"first", Some(&keys));
        let files: Vec<u64> = ["meta.json", "content"]
            .iter()
            .map(|n| fs::metadata(first.dir.join(n)).unwrap().ino())
            .collect();
        let folder = fs::metadata(&first.dir).unwrap().ino();
        assert!(!first.dir.join(SOURCE_MARK).exists());
        spool.remove(&first).unwrap();
        let second = take("b.txt", b"second", Some(&keys));
        assert_eq!(fs::metadata(&second.dir).unwrap().ino(), folder);
        let again: Vec<u64> = ["meta.json", "content"]
            .iter()
            .map(|n| fs::metadata(second.dir.join(n)).unwrap().ino())
            .collect();
        assert_eq!(again, files, "the same files written through");
        assert_eq!(opened(&second, Some(&keys)), b"second");
        assert_eq!(Spool::read_entry(&second.dir).unwrap().name, "b.txt");
        assert!(!outbox.join("b.txt").exists());
        spool.remove(&second).unwrap();
        // a plain take renames the file in: another name of it keeps its bytes
        fs::write(outbox.join("plain.txt"), b"plain bytes").unwrap();
        fs::hard_link(outbox.join("plain.txt"), t.path().join("other-name")).unwrap();
        let plain = spool
            .take(
                "c",
                &outbox,
                OsStr::new("plain.txt"),
                "plain.txt",
                None,
                None,
            )
            .unwrap()
            .unwrap()
            .spooled;
        spool.remove(&plain).unwrap();
        assert_eq!(
            fs::read(t.path().join("other-name")).unwrap(),
            b"plain bytes"
        );
        // a cut right after a take moved a kept folder in, before its metadata: the
        // folder holds only the kept files, and recovery removes it
        let cut = state
            .join("spool")
            .join("c")
            .join("0123456789abcdef0123456789abcdef");
        assert!(spool.reuse(&cut));
        assert!(!visible(&cut).is_empty());
        let rec = Spool::open(&state).unwrap().recover(Some(&keys)).unwrap();
        assert!(rec.is_empty());
        assert!(!cut.exists());
    }

    #[test]
    fn a_cut_while_an_entry_is_kept_never_sends_it_again() {
        let t = tempfile::tempdir().unwrap();
        let state = t.path().join("state");
        let spool = Spool::open(&state).unwrap();
        let e = spool.put("notices", "a.ndjson", b"a\n", None).unwrap();
        spool.store_manifest(&e, b"m", true).unwrap();
        // cut right after the content went: the rest still under its names
        fs::remove_file(e.content()).unwrap();
        let rec = Spool::open(&state).unwrap().recover(None).unwrap();
        assert!(rec.is_empty());
        assert!(!e.dir.exists());
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

    /// Records `staged` as the intent of `s`'s take, as a crash leaves it: in its
    /// metadata, or (`legacy`) in a record of its own as an earlier version wrote it.
    fn record_intent(s: &Spooled, staged: &Path, legacy: bool) {
        let mut meta: Meta =
            serde_json::from_slice(&fs::read(s.dir.join("meta.json")).unwrap()).unwrap();
        meta.source = (!legacy).then(|| staged.to_path_buf());
        write_durable(
            &s.dir.join("meta.json"),
            &serde_json::to_vec(&meta).unwrap(),
        )
        .unwrap();
        if legacy {
            write_durable(&s.dir.join(SOURCE_MARK), staged.as_os_str().as_bytes()).unwrap();
        }
    }

    #[test]
    fn a_take_across_file_systems_copies_and_survives_a_cut_at_every_step() {
        cut_at_every_step(false);
    }

    #[test]
    fn a_take_an_earlier_version_recorded_apart_is_finished_the_same_way() {
        cut_at_every_step(true);
    }

    /// A take across file systems, then cuts at each step of it, recorded as this version
    /// does or (`legacy`) as an earlier one did.
    fn cut_at_every_step(legacy: bool) {
        let t = tempfile::tempdir().unwrap();
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() || crate::fsx::same_file_system(shm, t.path()).unwrap() {
            eprintln!("SKIPPED: no second file system (/dev/shm) beside the temp dir");
            return;
        }
        let other = tempfile::tempdir_in(shm).unwrap();
        let outbox = other.path().join("outbox");
        fs::create_dir_all(&outbox).unwrap();
        let state = t.path().join("state");
        let spool = Spool::open(&state).unwrap();
        let take = |name: &str, body: &[u8]| {
            fs::write(outbox.join(name), body).unwrap();
            spool
                .take("c", &outbox, OsStr::new(name), name, None, None)
                .unwrap()
                .unwrap()
                .spooled
        };
        let a = take("a.txt", b"first");
        assert_eq!(fs::read(a.content()).unwrap(), b"first");
        assert!(!outbox.join("a.txt").exists());
        assert!(!a.dir.join(SOURCE_MARK).exists());
        let staging = outbox.join(OUTBOX_STAGING);
        // the intent is in the metadata, one write
        let meta: Meta =
            serde_json::from_slice(&fs::read(a.dir.join("meta.json")).unwrap()).unwrap();
        assert_eq!(meta.source, Some(staging.join(a.id.to_string())));
        assert_eq!(fs::read_dir(&staging).unwrap().count(), 0);
        let mode = fs::metadata(&staging).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // cut after the copy, before the staged file went: never taken twice
        let b = take("b.txt", b"second");
        let staged_b = staging.join(b.id.to_string());
        fs::write(&staged_b, b"second").unwrap();
        record_intent(&b, &staged_b, legacy);
        // cut in the middle of the copy: copied again from the staged file
        let c = take("c.txt", b"third");
        let staged_c = staging.join(c.id.to_string());
        fs::rename(c.content(), c.dir.join(".content.part")).unwrap();
        fs::write(&staged_c, b"third").unwrap();
        record_intent(&c, &staged_c, legacy);
        // cut before the file left the outbox: the half-made entry goes, the file stays
        let d = take("d.txt", b"fourth");
        fs::remove_file(d.content()).unwrap();
        let staged_d = staging.join(d.id.to_string());
        record_intent(&d, &staged_d, legacy);
        fs::write(outbox.join("d.txt"), b"fourth").unwrap();
        // an intent record that names something else is never acted on
        let e = take("e.txt", b"fifth");
        let victim = other.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        record_intent(&e, &victim, legacy);

        let rec = Spool::open(&state).unwrap().recover(None).unwrap();
        let ids: Vec<_> = rec.iter().map(|r| r.spooled.id).collect();
        assert_eq!(ids, vec![a.id, b.id, c.id]);
        assert_eq!(fs::read(b.content()).unwrap(), b"second");
        assert_eq!(fs::read(c.content()).unwrap(), b"third");
        for s in [&b, &c] {
            assert!(!s.dir.join(SOURCE_MARK).exists());
        }
        assert_eq!(fs::read_dir(&staging).unwrap().count(), 0);
        assert!(!d.dir.exists());
        assert_eq!(fs::read(outbox.join("d.txt")).unwrap(), b"fourth");
        assert!(e.dir.exists());
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
    }

    /// A spool entry cut short in a take across file systems, as a crash leaves it: its
    /// intent record names `outbox/.isogate-tmp/<id>`; no content.
    fn cut_entry(spool: &Spool, outbox: &Path, name: &str) -> (Spooled, PathBuf) {
        fs::create_dir_all(outbox).unwrap();
        fs::write(outbox.join(name), b"body").unwrap();
        let s = spool
            .take("c", outbox, OsStr::new(name), name, None, None)
            .unwrap()
            .unwrap()
            .spooled;
        fs::remove_file(s.content()).unwrap();
        let staged = outbox.join(OUTBOX_STAGING).join(s.id.to_string());
        record_intent(&s, &staged, false);
        (s, staged)
    }

    #[test]
    fn an_outbox_not_mounted_yet_keeps_a_cut_take_until_its_staged_file_is_seen() {
        let t = tempfile::tempdir().unwrap();
        let state = t.path().join("state");
        let spool = Spool::open(&state).unwrap();
        let outbox = t.path().join("share/outbox");
        let (s, staged) = cut_entry(&spool, &outbox, "a.txt");
        // the share not mounted: its outbox (and staging folder) not there
        fs::rename(t.path().join("share"), t.path().join("share.off")).unwrap();
        let rec = Spool::open(&state).unwrap().recover(None).unwrap();
        assert!(rec.is_empty());
        assert!(s.dir.join("meta.json").exists(), "entry kept");
        // mounted again: the staged file is there, the take is finished
        fs::rename(t.path().join("share.off"), t.path().join("share")).unwrap();
        fs::create_dir_all(staged.parent().unwrap()).unwrap();
        fs::write(&staged, b"body").unwrap();
        let rec = Spool::open(&state).unwrap().recover(None).unwrap();
        assert_eq!(rec.len(), 1);
        assert_eq!(fs::read(s.content()).unwrap(), b"body");
        assert!(!staged.exists());
        // staging folder there, staged file not: the file never left; entry removed
        let (d, _) = cut_entry(&spool, &outbox, "d.txt");
        fs::write(outbox.join("d.txt"), b"body").unwrap();
        let rec = Spool::open(&state).unwrap().recover(None).unwrap();
        assert_eq!(rec.len(), 1);
        assert!(!d.dir.exists());
        assert_eq!(fs::read(outbox.join("d.txt")).unwrap(), b"body");
    }

    /// A writer that opens a file just found free, before the take renames it away
    /// (`cp b.txt a.txt` right after `a.txt` was renamed in), and pauses: the take puts
    /// the file back instead of keeping what it holds then, and takes it whole once the
    /// writer closed. Both ways in: a rename (plain spool) and a copy (sealed spool).
    #[test]
    fn a_file_opened_by_a_writer_before_the_take_goes_back_until_it_is_closed() {
        use std::io::Write;
        for sealed in [false, true] {
            let t = tempfile::tempdir().unwrap();
            let outbox = t.path().join("outbox");
            fs::create_dir_all(&outbox).unwrap();
            let keys = data_keys(t.path());
            let sealing = sealed.then_some(&keys);
            let spool = Spool::open(&t.path().join("state")).unwrap();
            let writers = Writers::start(std::slice::from_ref(&outbox)).unwrap();
            spool.watch_writers(writers.clone());
            let name = OsStr::new("cp.txt");
            let until = |busy: bool| {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while writers.busy(&outbox, name) != busy && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                writers.busy(&outbox, name) == busy
            };
            fs::write(outbox.join(name), b"A, renamed in").unwrap();
            assert!(until(false), "found free");
            let b: Vec<u8> = b"B".repeat(300_000);
            let mut cp = fs::File::create(outbox.join(name)).unwrap();
            cp.write_all(&b[..100_000]).unwrap();
            let taken = spool
                .take("c", &outbox, name, "cp.txt", sealing, None)
                .unwrap();
            assert!(taken.is_none(), "sealed {sealed}: not taken while open");
            assert_eq!(
                fs::read(outbox.join(name)).unwrap().len(),
                100_000,
                "back in the outbox"
            );
            assert_eq!(spool.recover(sealing).unwrap().len(), 0, "no entry left");
            assert!(spool.was_put_back(&outbox.join(name)));
            assert!(until(true), "busy until the writer closes");
            std::thread::sleep(std::time::Duration::from_millis(100));
            assert!(writers.busy(&outbox, name), "still busy");
            cp.write_all(&b[100_000..]).unwrap();
            drop(cp);
            assert!(until(false), "free once closed");
            let taken = spool
                .take("c", &outbox, name, "cp.txt", sealing, None)
                .unwrap()
                .unwrap();
            assert_eq!(taken.size, 300_000);
            assert_eq!(opened(&taken.spooled, sealing), b, "B, whole");
        }
    }

    fn data_keys(dir: &Path) -> DataKeys {
        let path = dir.join("data.key");
        DataKeys::add_key(&path, crate::keys::suite::Suite::Default).unwrap();
        DataKeys::load(&path).unwrap()
    }

    fn opened(s: &Spooled, keys: Option<&DataKeys>) -> Vec<u8> {
        let mut v = Vec::new();
        io::Read::read_to_end(&mut open_content(s, keys).unwrap(), &mut v).unwrap();
        v
    }

    #[test]
    fn a_large_take_into_a_sealed_spool_hashes_what_it_copies_in() {
        let t = tempfile::tempdir().unwrap();
        let keys = data_keys(t.path());
        let spool = Spool::open(&t.path().join("state")).unwrap();
        let outbox = t.path().join("outbox");
        fs::create_dir_all(&outbox).unwrap();
        // past the threshold, with a last chunk cut short
        let len = HASH_AT_TAKE_FROM as usize + 1_048_576 + 777;
        let body: Vec<u8> = (0..len as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
            .collect();
        for suite in Suite::ALL {
            fs::write(outbox.join("big.pdf"), &body).unwrap();
            let taken = spool
                .take(
                    "c",
                    &outbox,
                    OsStr::new("big.pdf"),
                    "big.pdf",
                    Some(&keys),
                    Some(suite),
                )
                .unwrap()
                .unwrap();
            let h = taken.hashed.expect("hashed with the copy");
            let (digest, chunks) =
                crate::core::digest::hash_content(&mut &body[..], CHUNK_SIZE, suite).unwrap();
            assert_eq!(
                (h.size, h.digest, &h.chunks, h.suite),
                (len as u64, digest, &chunks, suite)
            );
            assert_eq!(chunks.len(), 6);
            // of the very sealing in the entry, which opens to the bytes hashed
            let stored = open_content(&taken.spooled, Some(&keys)).unwrap();
            assert_eq!(stored.seal_id(), Some(h.sealed_as));
            assert_eq!(opened(&taken.spooled, Some(&keys)), body);
        }
        // a small file, a plain spool, or no suite asked for: not hashed at take
        fs::write(outbox.join("small.txt"), b"small").unwrap();
        fs::write(outbox.join("plain.pdf"), &body).unwrap();
        fs::write(outbox.join("unasked.pdf"), &body).unwrap();
        for (name, keys, suite) in [
            ("small.txt", Some(&keys), Some(Suite::Default)),
            ("plain.pdf", None, Some(Suite::Default)),
            ("unasked.pdf", Some(&keys), None),
        ] {
            let taken = spool
                .take("c", &outbox, OsStr::new(name), name, keys, suite)
                .unwrap()
                .unwrap();
            assert_eq!(taken.hashed, None, "{name}");
        }
    }

    #[test]
    fn with_data_keys_takes_puts_and_recovered_takes_are_sealed_and_read_back_whole() {
        let t = tempfile::tempdir().unwrap();
        let keys = data_keys(t.path());
        let state = t.path().join("state");
        let spool = Spool::open(&state).unwrap();
        let outbox = t.path().join("outbox");
        fs::create_dir_all(&outbox).unwrap();
        let marker = b"MARKER-4711 ";
        let body: Vec<u8> = marker.iter().copied().cycle().take(200_000).collect();
        fs::write(outbox.join("a.txt"), &body).unwrap();
        let taken = spool
            .take(
                "c",
                &outbox,
                OsStr::new("a.txt"),
                "a.txt",
                Some(&keys),
                None,
            )
            .unwrap()
            .unwrap();
        assert_eq!(taken.size, body.len() as u64, "the plain size copied");
        let s = taken.spooled;
        assert!(!outbox.join("a.txt").exists());
        assert_eq!(visible(&outbox.join(OUTBOX_STAGING)), Vec::<String>::new());
        assert!(!s.dir.join(SOURCE_MARK).exists());
        let stored = fs::read(s.content()).unwrap();
        assert!(crate::keys::at_rest::is_sealed(&stored));
        assert!(!stored.windows(marker.len()).any(|w| w == marker));
        assert_eq!(opened(&s, Some(&keys)), body);
        assert_eq!(
            hash_spooled(&s, Some(&keys), crate::keys::suite::Suite::Default)
                .unwrap()
                .0,
            body.len() as u64
        );
        // bound to its entry: moved into another entry, it does not open there
        let b = spool
            .put("c", "b.ndjson", b"{\"a\":1}\n", Some(&keys))
            .unwrap();
        assert_eq!(opened(&b, Some(&keys)), b"{\"a\":1}\n");
        fs::copy(s.content(), b.content()).unwrap();
        let moved = open_content(&b, Some(&keys)).err().unwrap();
        assert!(crate::keys::at_rest::is_tampered(&moved), "{moved}");
        // a plain entry (taken before the node sealed) is still read
        fs::write(outbox.join("old.txt"), b"plain").unwrap();
        let old = spool
            .take("c", &outbox, OsStr::new("old.txt"), "old.txt", None, None)
            .unwrap()
            .unwrap()
            .spooled;
        assert_eq!(opened(&old, Some(&keys)), b"plain");
        // a take cut short after the file was staged is finished sealed at the next start
        fs::write(outbox.join("cut.txt"), b"x").unwrap();
        let cut = spool
            .take(
                "c",
                &outbox,
                OsStr::new("cut.txt"),
                "cut.txt",
                Some(&keys),
                None,
            )
            .unwrap()
            .unwrap()
            .spooled;
        fs::remove_file(cut.content()).unwrap();
        // (its intent is in its metadata since the take began)
        let staged = outbox.join(OUTBOX_STAGING).join(cut.id.to_string());
        fs::write(&staged, &body).unwrap();
        // and a plain entry's cut take is finished plain, keys or not
        let (plain_cut, plain_staged) = cut_entry(&spool, &outbox, "plain-cut.txt");
        fs::write(&plain_staged, b"plain body").unwrap();
        let rec = Spool::open(&state).unwrap().recover(Some(&keys)).unwrap();
        let again = rec.iter().find(|r| r.spooled.id == cut.id).unwrap();
        assert!(crate::keys::at_rest::is_sealed(
            &fs::read(cut.content()).unwrap()
        ));
        assert_eq!(opened(&again.spooled, Some(&keys)), body);
        assert!(!staged.exists());
        assert_eq!(fs::read(plain_cut.content()).unwrap(), b"plain body");
        // started without the data key, the node refuses to read its sealed spool
        let e = Spool::open(&state).unwrap().recover(None).err().unwrap();
        assert!(e.to_string().contains("no data key"), "{e}");
        // sealed or plain is the entry's record, never the content's first bytes: a file
        // that begins like a sealed one, taken by a node without keys, is plain
        let t2 = tempfile::tempdir().unwrap();
        let spool2 = Spool::open(&t2.path().join("state")).unwrap();
        let look_alike = b"isogate-rest-v1\0 and then a document";
        fs::write(outbox.join("look.pdf"), look_alike).unwrap();
        let l = spool2
            .take("c", &outbox, OsStr::new("look.pdf"), "look.pdf", None, None)
            .unwrap()
            .unwrap()
            .spooled;
        assert!(!is_sealed(&l).unwrap());
        assert_eq!(opened(&l, Some(&keys)), look_alike);
        assert_eq!(opened(&l, None), look_alike);
        assert_eq!(
            Spool::open(&t2.path().join("state"))
                .unwrap()
                .recover(None)
                .unwrap()
                .len(),
            1
        );
        assert!(is_sealed(&s).unwrap());
        assert!(open_content(&s, None).is_err_and(|e| e.to_string().contains("no data key")));
    }

    #[test]
    fn an_entry_with_content_and_no_metadata_is_never_deleted() {
        let t = tempfile::tempdir().unwrap();
        let state = t.path().join("state");
        let spool = Spool::open(&state).unwrap();
        let lone = state.join("spool").join("c").join("0".repeat(32));
        fs::create_dir_all(&lone).unwrap();
        fs::write(lone.join("content"), b"the only copy").unwrap();
        let empty = state.join("spool").join("c").join("1".repeat(32));
        fs::create_dir_all(&empty).unwrap();
        assert!(spool.recover(None).unwrap().is_empty());
        assert_eq!(fs::read(lone.join("content")).unwrap(), b"the only copy");
        assert!(
            !empty.exists(),
            "a half-made entry without content is removed"
        );
    }

    #[test]
    fn a_staged_file_is_read_out_of_the_outbox_and_put_back_by_name() {
        let t = tempfile::tempdir().unwrap();
        let spool = Spool::open(&t.path().join("state")).unwrap();
        let outbox = t.path().join("outbox");
        fs::create_dir_all(&outbox).unwrap();
        let name = OsStr::new("m.ndjson");
        fs::write(outbox.join(name), b"{}\n").unwrap();
        let staged = spool.stage_out(&outbox, name).unwrap().unwrap();
        assert_eq!(staged, outbox.join(OUTBOX_STAGING).join(name));
        assert_eq!(visible(&outbox), vec![OUTBOX_STAGING.to_string()]);
        assert_eq!(
            fs::metadata(outbox.join(OUTBOX_STAGING))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        // a file of the same name meanwhile waits: the staged one is never replaced
        fs::write(outbox.join(name), b"[]\n").unwrap();
        assert_eq!(spool.stage_out(&outbox, name).unwrap(), None);
        assert_eq!(fs::read(&staged).unwrap(), b"{}\n");
        assert_eq!(fs::read(outbox.join(name)).unwrap(), b"[]\n");
        // not made durable: back beside it, under a free name
        spool.unstage(&staged, &outbox, name).unwrap();
        assert_eq!(
            fs::read(outbox.join("m (isogate-1).ndjson")).unwrap(),
            b"{}\n"
        );
        // cut short while staged: the next start puts it back under its own name
        fs::remove_file(outbox.join(name)).unwrap();
        let again = spool
            .stage_out(&outbox, OsStr::new("m (isogate-1).ndjson"))
            .unwrap()
            .unwrap();
        assert!(again.exists());
        assert_eq!(spool.sweep_staging(&outbox).unwrap(), 1);
        assert_eq!(
            fs::read(outbox.join("m (isogate-1).ndjson")).unwrap(),
            b"{}\n"
        );
        assert_eq!(
            spool.stage_out(&outbox, OsStr::new("gone.json")).unwrap(),
            None
        );
    }

    fn visible(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .map(|r| {
                r.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_whole_copy_is_recovered_when_the_staging_folder_is_gone() {
        let t = tempfile::tempdir().unwrap();
        let state = t.path().join("state");
        let spool = Spool::open(&state).unwrap();
        let outbox = t.path().join("outbox");
        let (s, staged) = cut_entry(&spool, &outbox, "a.txt");
        fs::write(s.content(), b"body").unwrap();
        // the outbox replaced between the crash and the start: no staging folder
        assert!(!staged.parent().unwrap().exists());
        let rec = Spool::open(&state).unwrap().recover(None).unwrap();
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].spooled.id, s.id);
        assert!(!s.dir.join(SOURCE_MARK).exists());
    }

    #[test]
    fn unclaimed_staged_files_are_put_back_at_start() {
        let t = tempfile::tempdir().unwrap();
        let state = t.path().join("state");
        let spool = Spool::open(&state).unwrap();
        let outbox = t.path().join("outbox");
        let staging = outbox.join(OUTBOX_STAGING);
        fs::create_dir_all(&staging).unwrap();
        // a staging folder open to others is not the node's: refused, nothing moved
        fs::write(staging.join("planted"), b"x").unwrap();
        let e = Spool::open(&state)
            .unwrap()
            .sweep_staging(&outbox)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        assert!(e.to_string().contains("open to group or others"), "{e}");
        fs::remove_file(staging.join("planted")).unwrap();
        fs::set_permissions(&staging, fs::Permissions::from_mode(0o700)).unwrap();
        // claimed by an entry whose copy cannot finish now: left
        let (s, staged) = cut_entry(&spool, &outbox, "a.txt");
        fs::create_dir(&staged).unwrap(); // a copy of a directory fails: entry kept
        fs::write(staging.join("orphan"), b"lost").unwrap();
        fs::write(outbox.join("orphan"), b"other").unwrap();
        let spool = Spool::open(&state).unwrap();
        assert!(spool.recover(None).unwrap().is_empty());
        assert_eq!(spool.sweep_staging(&outbox).unwrap(), 1);
        assert!(staged.exists() && s.dir.exists());
        assert_eq!(
            fs::read(outbox.join("orphan (isogate-1)")).unwrap(),
            b"lost"
        );
        assert_eq!(fs::read(outbox.join("orphan")).unwrap(), b"other");
        assert!(spool.was_put_back(&outbox.join("orphan (isogate-1)")));
        assert!(!spool.was_put_back(&outbox.join("orphan (isogate-1)")));
        assert_eq!(spool.sweep_staging(&t.path().join("none")).unwrap(), 0);
    }

    #[test]
    fn a_whole_entry_depends_on_its_outbox_at_a_start_only_until_it_is_sealed() {
        let t = tempfile::tempdir().unwrap();
        let state = t.path().join("state");
        let spool = Spool::open(&state).unwrap();
        let outbox = t.path().join("outbox");
        fs::create_dir_all(&outbox).unwrap();
        fs::write(outbox.join("a.txt"), b"body").unwrap();
        let s = spool
            .take("c", &outbox, OsStr::new("a.txt"), "a.txt", None, None)
            .unwrap()
            .unwrap()
            .spooled;
        let staging = outbox.join(OUTBOX_STAGING);
        record_intent(&s, &staging.join(s.id.to_string()), false);
        // its staged path cannot be looked at (not a folder there: ENOTDIR), as an outbox
        // not mounted may answer: a take cut short is kept for the next start
        fs::write(&staging, b"not a folder").unwrap();
        assert!(
            Spool::open(&state)
                .unwrap()
                .recover(None)
                .unwrap()
                .is_empty()
        );
        assert!(s.content().exists(), "kept");
        // sealed, its take was over for good: recovered whatever its outbox says
        spool.store_manifest(&s, b"signed manifest", true).unwrap();
        let rec = Spool::open(&state).unwrap().recover(None).unwrap();
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].manifest.as_deref(), Some(&b"signed manifest"[..]));
    }

    #[test]
    fn a_failed_copy_never_leaves_an_entry_without_content() {
        let t = tempfile::tempdir().unwrap();
        let spool = Spool::open(&t.path().join("state")).unwrap();
        let outbox = t.path().join("outbox");
        // the staged file vanished mid-copy (outbox removed): an error, no entry
        let (s, staged) = cut_entry(&spool, &outbox, "a.txt");
        let gone = io::Error::from(io::ErrorKind::NotFound);
        let r = spool.take_failed(&outbox, OsStr::new("a.txt"), &s, &staged, Some(gone));
        assert!(r.is_err());
        assert!(!s.dir.exists());
        // still written, and its name made again meanwhile: put back under a free name
        let (b, staged_b) = cut_entry(&spool, &outbox, "b.txt");
        fs::create_dir_all(staged_b.parent().unwrap()).unwrap();
        fs::write(&staged_b, b"staged").unwrap();
        fs::write(b.content(), b"part").unwrap();
        fs::write(outbox.join("b.txt"), b"body").unwrap();
        let r = spool.take_failed(&outbox, OsStr::new("b.txt"), &b, &staged_b, None);
        assert!(!r.unwrap());
        assert!(!b.dir.exists());
        assert_eq!(fs::read(outbox.join("b.txt")).unwrap(), b"body");
        assert_eq!(
            fs::read(outbox.join("b (isogate-1).txt")).unwrap(),
            b"staged"
        );
        // a whole copy whose staged file is gone: taken
        let (c, staged_c) = cut_entry(&spool, &outbox, "c.txt");
        fs::write(c.content(), b"body").unwrap();
        let e = io::Error::from(io::ErrorKind::NotFound);
        assert!(
            spool
                .take_failed(&outbox, OsStr::new("c.txt"), &c, &staged_c, Some(e))
                .unwrap()
        );
    }

    #[test]
    fn numbered_names_keep_the_extension() {
        assert_eq!(numbered(OsStr::new("a.txt"), 1), "a (isogate-1).txt");
        assert_eq!(numbered(OsStr::new("a"), 2), "a (isogate-2)");
        assert_eq!(numbered(OsStr::new(".rc"), 3), ".rc (isogate-3)");
    }

    #[test]
    fn put_from_streams_a_reader_whole_or_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&dir.path().join("state")).unwrap();
        let keys = data_keys(dir.path());
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let id = ObjectId::random().unwrap();
        let s = spool
            .put_from(id, "c", "a.bin", &mut &body[..], Some(&keys))
            .unwrap();
        assert!(spool.holds("c", &id.to_string()));
        assert_eq!(opened(&s, Some(&keys)), body);
        // sealed: the content on disk holds none of the plaintext's first bytes
        let raw = std::fs::read(s.content()).unwrap();
        assert!(!raw.windows(64).any(|w| w == &body[1000..1064]));
        // a reader that fails part way: no entry is left, and none is held
        struct Failing(usize);
        impl io::Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("a stored chunk does not open"));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(7);
                self.0 -= n;
                Ok(n)
            }
        }
        let other = ObjectId::random().unwrap();
        let e = spool
            .put_from(other, "c", "b.bin", &mut Failing(100_000), Some(&keys))
            .unwrap_err();
        assert!(e.to_string().contains("does not open"), "{e}");
        assert!(!spool.holds("c", &other.to_string()));
        assert!(!spool.root.join("c").join(other.to_string()).exists());
    }
}
