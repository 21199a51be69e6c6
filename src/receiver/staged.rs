//! Where a received object rests between its first byte and its verdict: the inbox's
//! staging folder, sealed at rest (AES-256-GCM, or SM4-GCM on a `gm` key) where the node
//! has a data key, so that nothing this node has not yet verified and inspected again
//! rests in plaintext on its disk.
//!
//! ```text
//!  with [node] data_key:
//!    <inbox>/.isogate-tmp/<id>.sealed   as it arrives, sealed for "received/<channel>/<id>"
//!      verified, inspected again through the key (a masked copy is sealed beside it and
//!      takes its place)
//!      cleared ─► unseal: <id>.part, plaintext, fsynced ─► Lander::land ─► .sealed removed
//!  without one:
//!    <inbox>/.isogate-tmp/<id>.part     as it arrives, plaintext; landed by one rename
//! ```
//!
//! A sealed copy no longer needed once its part file is whole is not deleted but emptied
//! and kept under a `.kept-<n>` name, at most [`KEPT_MAX`] per staging folder, and the next
//! arrival's sealed copy is written through it: on ext4 without a journal, making a file
//! soon after others were deleted costs most of a millisecond of CPU (see
//! [`crate::fsx::empty`]). Recovery deletes kept files as any other leftover.
//!
//! The plaintext part file is written only for an object this node has cleared for its
//! inbox, which is plaintext by design (applications read it). Recovery never reads a
//! `.sealed` file: it deletes it. An object not yet committed is sent again; a committed
//! one has its part file whole already, as the part file is fsynced before the landing
//! marker is written.

use super::land::Lander;
use crate::core::id::ObjectId;
use crate::fsx::{DropBehind, open_nofollow};
use crate::keys::at_rest::{self, DataKeys, SealWriter, SealedFile, Sealing, Stored};
use crate::keys::suite::Suite;
use crate::node::quarantine::Held;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

/// Suffix of a staged copy sealed at rest.
pub const SEALED_SUFFIX: &str = ".sealed";

/// Plaintext bytes from which a cleared object is unsealed on two threads (the sealed
/// chunks opened ahead of the writes, [`crate::fsx::copy_overlapped`]): below, a thread
/// costs more than it overlaps.
const OVERLAP_FROM: u64 = 4 << 20;

/// At most this many emptied sealed copies are kept per staging folder.
pub const KEPT_MAX: usize = 64;

/// Emptied sealed copies kept for the next arrivals, by staging folder (this process's;
/// recovery deletes what an earlier run kept).
static KEPT: LazyLock<Mutex<HashMap<PathBuf, Vec<PathBuf>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The number in the next kept file's name (unique in this process).
static KEPT_NEXT: AtomicU64 = AtomicU64::new(0);

/// Moves a kept file of `path`'s folder to `path` (which must not exist): `false` when
/// none is kept or the move failed (that file is then deleted, best effort, or kept
/// again when `path` exists already).
fn reuse_kept(path: &Path) -> bool {
    let Some(dir) = path.parent() else {
        return false;
    };
    let kept = KEPT
        .lock()
        .ok()
        .and_then(|mut k| k.get_mut(dir).and_then(Vec::pop));
    let Some(kept) = kept else {
        return false;
    };
    match crate::fsx::rename_noreplace(&kept, path) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if let Ok(mut k) = KEPT.lock() {
                k.entry(dir.to_path_buf()).or_default().push(kept);
            }
            false
        }
        Err(e) => {
            tracing::debug!(kept = %kept.display(), error = %e, "a kept staged file cannot be reused; deleted");
            let _ = std::fs::remove_file(&kept);
            false
        }
    }
}

/// A received object's copy in its inbox's staging folder: sealed with the node's data keys
/// where it has them, else the plaintext part file itself.
#[derive(Debug, Clone)]
pub struct Staged {
    path: PathBuf,
    /// The keys it is sealed with and what the sealing is bound to.
    sealing: Option<(Arc<DataKeys>, Vec<u8>)>,
}

/// Writes a staged copy as its bytes arrive; [`StagedWriter::finish`] ends it (and makes
/// a plaintext one, the part file, durable).
pub enum StagedWriter {
    /// The plaintext part file (a node without a data key).
    Plain(File),
    /// The sealed copy.
    Sealed(SealWriter<BufWriter<File>>),
}

impl Write for StagedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            StagedWriter::Plain(f) => f.write(buf),
            StagedWriter::Sealed(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            StagedWriter::Plain(f) => f.flush(),
            StagedWriter::Sealed(w) => w.flush(),
        }
    }
}

impl StagedWriter {
    /// Ends the copy (a sealed one's last chunk). A plaintext copy is fsynced: it is the
    /// part file that lands, and must be durable before its landing marker. A sealed copy
    /// is not: no durable state ever names it (a refusal copies it into quarantine, which
    /// fsyncs its own copy; a landing unseals it into a part file fsynced then; recovery
    /// deletes it, and the sender sends the object again), so its fsync would only cost a
    /// write-back of the whole object in the path of every arrival.
    ///
    /// # Errors
    /// Writing or syncing failed.
    pub fn finish(self) -> io::Result<()> {
        match self {
            StagedWriter::Plain(f) => f.sync_all(),
            StagedWriter::Sealed(w) => {
                w.finish()?.into_inner().map_err(|e| e.into_error())?;
                Ok(())
            }
        }
    }
}

/// What a staged copy's sealing is bound to: its channel and object id, so that a copy
/// moved over another object's name never opens.
fn context(channel: &str, id: ObjectId) -> Vec<u8> {
    format!("received/{channel}/{id}").into_bytes()
}

impl Staged {
    /// The staged copy of object `id` of `channel` in `inbox`: sealed with `keys` when given.
    pub fn of(inbox: &Path, channel: &str, id: ObjectId, keys: Option<Arc<DataKeys>>) -> Staged {
        match keys {
            Some(k) => Staged {
                path: inbox
                    .join(super::land::STAGING)
                    .join(format!("{id}{SEALED_SUFFIX}")),
                sealing: Some((k, context(channel, id))),
            },
            None => Staged {
                path: Lander::part_path(inbox, id),
                sealing: None,
            },
        }
    }

    /// Creates (or truncates) the staged copy of object `id` and opens it for writing: a
    /// sealed copy (mode 0600) with `keys`, else the plaintext part file.
    ///
    /// # Errors
    /// The staging folder or the file cannot be made; the random source failed.
    pub fn create(
        inbox: &Path,
        channel: &str,
        id: ObjectId,
        keys: Option<Arc<DataKeys>>,
    ) -> io::Result<(Staged, StagedWriter)> {
        let staged = Staged::of(inbox, channel, id, keys);
        let writer = match &staged.sealing {
            None => StagedWriter::Plain(Lander::create_part(inbox, id)?.1),
            Some((keys, context)) => {
                Lander::staging_dir(inbox)?;
                // an emptied copy kept from an earlier arrival is written through when
                // there is one (mode 0600 already). Opened without O_TRUNC: on ext4 a
                // truncation to 0 makes the file's close start writing it back, which a
                // sealed copy never needs (see StagedWriter::finish); emptied only if it
                // is not empty
                let reused = reuse_kept(&staged.path);
                let file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(!reused)
                    .mode(0o600)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&staged.path)?;
                if reused && file.metadata()?.len() > 0 {
                    file.set_len(0)?;
                }
                StagedWriter::Sealed(SealWriter::new(keys, BufWriter::new(file), context)?)
            }
        };
        Ok((staged, writer))
    }

    /// The file on disk.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the copy is sealed at rest.
    pub fn is_sealed(&self) -> bool {
        self.sealing.is_some()
    }

    /// How the content engine reads it ([`crate::inspect::inspect_stored`]): through the
    /// keys, its masked copy sealed for the same context.
    pub fn sealing(&self) -> Option<Sealing<'_>> {
        self.sealing.as_ref().map(|(keys, context)| Sealing {
            keys: keys.as_ref(),
            context,
        })
    }

    /// What the quarantine takes: the sealed copy (read through the keys, sealed again for
    /// its quarantine name) or the plaintext part file.
    pub fn held(&self) -> Held<'_> {
        match &self.sealing {
            Some((_, context)) => Held::Stored {
                path: &self.path,
                context,
            },
            None => Held::Entry(&self.path),
        }
    }

    /// Opens `path` for reading its plaintext: this copy, or a copy sealed for the same
    /// context beside it (the masked copy), never through a symbolic link.
    ///
    /// # Errors
    /// Opening failed; a sealed copy whose header or last chunk does not open
    /// (`InvalidData`).
    pub fn open_path(&self, path: &Path) -> io::Result<Stored> {
        let file = open_nofollow(path)?;
        match &self.sealing {
            Some((keys, context)) => Ok(Stored::Sealed(SealedFile::open(keys, file, context)?)),
            None => Ok(Stored::Plain(file)),
        }
    }

    /// Opens this copy for reading its plaintext ([`Staged::open_path`]).
    ///
    /// # Errors
    /// As [`Staged::open_path`].
    pub fn open(&self) -> io::Result<Stored> {
        self.open_path(&self.path)
    }

    /// The plaintext's size in bytes and its hash under `suite` (SHA-256 or SM3), read in
    /// bounded chunks.
    ///
    /// # Errors
    /// Reading failed; a sealed chunk does not open (`InvalidData`).
    pub fn measure(&self, suite: Suite) -> io::Result<(u64, [u8; 32])> {
        let mut content = self.open()?;
        let size = content.len()?;
        let (digest, _) = crate::core::digest::hash_content(
            &mut content,
            crate::core::manifest::CHUNK_SIZE,
            suite,
        )?;
        Ok((size, digest))
    }

    /// Reads all of `path`'s plaintext ([`Staged::open_path`]): a batch of messages, which
    /// its policy bounds.
    ///
    /// # Errors
    /// As [`Staged::open_path`]; reading failed.
    pub fn read_path(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut content = self.open_path(path)?;
        let mut out = Vec::new();
        content.read_to_end(&mut out)?;
        Ok(out)
    }

    /// Makes the plaintext part file of a cleared object for `Lander::land`, its content
    /// and its name durable (the file and the staging folder fsynced: the landing marker
    /// written next must never outlive it): decrypted from the sealed copy (a chunk that
    /// does not open fails it, and no part file is left); without sealing the copy is the
    /// part file already.
    ///
    /// # Errors
    /// Reading the sealed copy, writing the part file or syncing failed.
    pub fn unseal(&self, inbox: &Path, id: ObjectId) -> io::Result<()> {
        let written = (|| {
            if self.sealing.is_some() {
                let mut from = self.open()?;
                let (_, file) = Lander::create_part(inbox, id)?;
                // fsynced next: written back as it goes, out of the page cache behind
                let mut to = BufWriter::with_capacity(at_rest::CHUNK, DropBehind::new(file));
                // a large copy opens its sealed chunks on another core while this one writes
                if from.len()? >= OVERLAP_FROM {
                    crate::fsx::copy_overlapped(&mut from, &mut to)?;
                } else {
                    io::copy(&mut from, &mut to)?;
                }
                let to = to.into_inner().map_err(|e| e.into_error())?;
                to.into_inner().sync_all()?;
            }
            crate::fsx::sync_dir(&inbox.join(super::land::STAGING))
        })();
        if written.is_err() && self.sealing.is_some() {
            let _ = std::fs::remove_file(Lander::part_path(inbox, id));
        }
        written
    }

    /// Removes the sealed copy once its part file is whole ([`Staged::unseal`]): nothing to
    /// do for a plaintext part file, which landing renames. Gone already is fine. Its
    /// name goes; the file itself is emptied and kept for a next arrival while its folder
    /// keeps fewer than [`KEPT_MAX`], else deleted.
    ///
    /// # Errors
    /// Removing failed.
    pub fn remove_sealed(&self) -> io::Result<()> {
        if self.sealing.is_none() {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            // the cap checked and the kept file added under one lock: removals at once
            // never keep more than KEPT_MAX
            let mut pool = KEPT.lock().unwrap_or_else(|p| p.into_inner());
            let kept_here = pool.entry(dir.to_path_buf()).or_default();
            if kept_here.len() < KEPT_MAX {
                let kept = dir.join(format!(
                    ".kept-{}",
                    KEPT_NEXT.fetch_add(1, Ordering::Relaxed)
                ));
                let moved = crate::fsx::empty(&self.path)
                    .and_then(|()| crate::fsx::rename_noreplace(&self.path, &kept));
                match moved {
                    Ok(()) => {
                        kept_here.push(kept);
                        return Ok(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    // emptied or not, deleted below
                    Err(_) => {}
                }
            }
        }
        self.remove()
    }

    /// Removes the copy (an abandoned or failed arrival). Gone already is fine.
    ///
    /// # Errors
    /// Removing failed.
    pub fn remove(&self) -> io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The room an object of `size` bytes needs in its inbox's file system while it is
    /// received and landed: the staged copy, and beside it the masked copy when the policy
    /// `masks`, or, when sealed, the plaintext part file it is unsealed into.
    pub fn room(size: u64, sealed: bool, masks: bool) -> u64 {
        if sealed {
            at_rest::sealed_len(size).saturating_mul(2)
        } else if masks {
            size.saturating_mul(2)
        } else {
            size
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(dir: &Path) -> Arc<DataKeys> {
        let path = dir.join("data.key");
        DataKeys::add_key(&path, Suite::Default).unwrap();
        Arc::new(DataKeys::load(&path).unwrap())
    }

    /// A folder with an inbox, the node's data keys, and the inbox's staging folder.
    fn inbox_with_keys() -> (tempfile::TempDir, PathBuf, Arc<DataKeys>, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let inbox = t.path().join("inbox");
        let k = keys(t.path());
        let staging = inbox.join(super::super::land::STAGING);
        (t, inbox, k, staging)
    }

    /// A sealed copy of `body` staged whole in `inbox`'s channel "in" under `id`.
    fn arrive(inbox: &Path, k: &Arc<DataKeys>, id: ObjectId, body: &[u8]) -> Staged {
        let (staged, mut w) = Staged::create(inbox, "in", id, Some(k.clone())).unwrap();
        w.write_all(body).unwrap();
        w.finish().unwrap();
        staged
    }

    const MARKER: &[u8] = b"RECEIVED-MARKER-0042 ";

    #[test]
    fn a_sealed_copy_holds_no_plaintext_and_unseals_whole() {
        let t = tempfile::tempdir().unwrap();
        let inbox = t.path().join("inbox");
        let id = ObjectId([7; 16]);
        let (staged, mut w) = Staged::create(&inbox, "in", id, Some(keys(t.path()))).unwrap();
        let plain: Vec<u8> = MARKER.iter().copied().cycle().take(200_000).collect();
        for piece in plain.chunks(1000) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap();
        assert!(staged.path().ends_with(format!("{id}.sealed")));
        let stored = std::fs::read(staged.path()).unwrap();
        assert!(!stored.windows(MARKER.len()).any(|w| w == MARKER));
        assert_eq!(stored.len() as u64, at_rest::sealed_len(plain.len() as u64));
        let (size, digest) = staged.measure(Suite::Default).unwrap();
        assert_eq!(size, plain.len() as u64);
        let mut h = crate::keys::suite::Hasher::new(Suite::Default);
        h.update(&plain);
        assert_eq!(digest, h.finish());
        assert!(!Lander::part_path(&inbox, id).exists());
        staged.unseal(&inbox, id).unwrap();
        assert_eq!(std::fs::read(Lander::part_path(&inbox, id)).unwrap(), plain);
        staged.remove_sealed().unwrap();
        assert!(!staged.path().exists());
        staged.remove_sealed().unwrap();
    }

    /// A sealed copy done with is emptied and kept (never under its name), the next
    /// arrival's copy is written through that file, at most KEPT_MAX are kept, and a
    /// recovery deletes them.
    #[test]
    fn a_removed_sealed_copy_is_emptied_kept_and_written_through_by_the_next() {
        use std::os::unix::fs::MetadataExt;
        let (t, inbox, k, staging) = inbox_with_keys();
        let arrive = |n: u8, body: &[u8]| arrive(&inbox, &k, ObjectId([n; 16]), body);
        let first = arrive(1, b"first secret");
        let ino = std::fs::metadata(first.path()).unwrap().ino();
        first.remove_sealed().unwrap();
        assert!(!first.path().exists());
        let kept: Vec<_> = std::fs::read_dir(&staging)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(kept.len(), 1);
        assert!(
            kept[0]
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(".kept-")
        );
        assert_eq!(
            std::fs::metadata(&kept[0]).unwrap().len(),
            0,
            "no byte kept"
        );
        let second = arrive(2, b"second");
        assert_eq!(std::fs::metadata(second.path()).unwrap().ino(), ino);
        assert_eq!(
            std::fs::metadata(second.path()).unwrap().mode() & 0o777,
            0o600
        );
        assert_eq!(second.read_path(second.path()).unwrap(), b"second");
        assert!(!kept[0].exists());
        second.remove_sealed().unwrap();
        // bounded: beyond KEPT_MAX, a removed copy is deleted
        let many: Vec<_> = (0..=KEPT_MAX).map(|i| arrive(10 + i as u8, b"x")).collect();
        for s in &many {
            s.remove_sealed().unwrap();
        }
        assert_eq!(std::fs::read_dir(&staging).unwrap().count(), KEPT_MAX);
        // a start deletes them, as any leftover of the staging folder
        let lander = Lander::open(t.path().join("state").as_path()).unwrap();
        lander.recover(&inbox, "in", Suite::Default).unwrap();
        assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
        // a kept file gone meanwhile: the next arrival makes its own
        let third = arrive(3, b"third");
        assert_eq!(third.read_path(third.path()).unwrap(), b"third");
    }

    /// Removals at once keep no more than KEPT_MAX copies between them.
    #[test]
    fn removals_at_once_keep_no_more_than_the_cap() {
        let (_t, inbox, k, staging) = inbox_with_keys();
        let copies: Vec<Staged> = (0..KEPT_MAX + 40)
            .map(|i| {
                let mut id = [7u8; 16];
                id[..8].copy_from_slice(&(i as u64).to_le_bytes());
                arrive(&inbox, &k, ObjectId(id), b"at once")
            })
            .collect();
        let barrier = std::sync::Barrier::new(8);
        std::thread::scope(|scope| {
            for part in copies.chunks(copies.len().div_ceil(8)) {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    for s in part {
                        s.remove_sealed().unwrap();
                    }
                });
            }
        });
        assert_eq!(std::fs::read_dir(&staging).unwrap().count(), KEPT_MAX);
    }

    #[test]
    fn a_flipped_byte_is_refused_and_leaves_no_part_file() {
        let t = tempfile::tempdir().unwrap();
        let inbox = t.path().join("inbox");
        let id = ObjectId([8; 16]);
        let (staged, mut w) = Staged::create(&inbox, "in", id, Some(keys(t.path()))).unwrap();
        w.write_all(&vec![b'x'; 3 * at_rest::CHUNK + 10]).unwrap();
        w.finish().unwrap();
        let mut stored = std::fs::read(staged.path()).unwrap();
        stored[at_rest::HEADER_LEN + at_rest::CHUNK + 100] ^= 1;
        std::fs::write(staged.path(), &stored).unwrap();
        let e = staged.unseal(&inbox, id).unwrap_err();
        assert!(at_rest::is_tampered(&e), "{e}");
        assert!(!Lander::part_path(&inbox, id).exists());
        assert!(staged.measure(Suite::Default).is_err());
    }

    #[test]
    fn a_sealed_copy_opens_only_under_its_own_object() {
        let t = tempfile::tempdir().unwrap();
        let inbox = t.path().join("inbox");
        let k = keys(t.path());
        let a = ObjectId([1; 16]);
        let b = ObjectId([2; 16]);
        let (sa, mut w) = Staged::create(&inbox, "in", a, Some(k.clone())).unwrap();
        w.write_all(b"a's content").unwrap();
        w.finish().unwrap();
        let sb = Staged::of(&inbox, "in", b, Some(k.clone()));
        std::fs::rename(sa.path(), sb.path()).unwrap();
        assert!(at_rest::is_tampered(&sb.open().err().unwrap()));
        // the same id on another channel does not open either
        let other = Staged::of(&inbox, "other", b, Some(k));
        assert!(other.open().is_err());
    }

    #[test]
    fn without_a_data_key_the_part_file_is_the_copy() {
        let t = tempfile::tempdir().unwrap();
        let inbox = t.path().join("inbox");
        let id = ObjectId([9; 16]);
        let (staged, mut w) = Staged::create(&inbox, "in", id, None).unwrap();
        w.write_all(MARKER).unwrap();
        w.finish().unwrap();
        assert_eq!(staged.path(), Lander::part_path(&inbox, id));
        assert!(!staged.is_sealed());
        staged.unseal(&inbox, id).unwrap();
        staged.remove_sealed().unwrap();
        assert_eq!(std::fs::read(staged.path()).unwrap(), MARKER);
        assert_eq!(staged.read_path(staged.path()).unwrap(), MARKER);
    }

    #[test]
    fn room_counts_the_copy_beside_the_staged_one() {
        assert_eq!(Staged::room(100, false, false), 100);
        assert_eq!(Staged::room(100, false, true), 200);
        let sealed = at_rest::sealed_len(100);
        assert!(sealed > 100);
        assert_eq!(Staged::room(100, true, false), 2 * sealed);
        assert_eq!(Staged::room(100, true, true), 2 * sealed);
    }
}
