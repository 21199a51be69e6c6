//! Small durable file-system steps shared by the spool, landing and quarantine: fsync a
//! directory, write a file durably, open without following links, rename without replacing,
//! tell whether an open file changed, move an entry where a rename cannot reach (another
//! file system: `EXDEV`), stream a large file without filling the page cache
//! ([`DropBehind`]), and copy a large stream with its reads on a thread of their own
//! ([`copy_overlapped`]).
//!
//! ```text
//!  move_across(from, to) ─ rename(2), no replace ─ ok ─────────────────────► Renamed
//!                            │ EXDEV
//!                            ▼
//!   plain file:  copy_durable ─► <to dir>/.<to name>.part ─ fsync, and beside it (from
//!                  4 MiB) read back: size + SHA-256 = what was read? ─ source unchanged?
//!                  ─ rename in, no replace ─ fsync dir ─► remove source ─ fsync its dir
//!                  (copy_durable_as, a stored form such as a seal at rest: fsync, stored
//!                  size = the form's size for what was read? no read-back: each reader
//!                  authenticates each piece)
//!                  ─────────────────────────────────────────────────────────► Copied
//!   symlink:     the link itself made again (never followed); FIFO, socket, device:
//!                made again (mknod); directory: each entry moved the same way, then
//!                the emptied tree removed
//! ```
//!
//! A crash inside `move_across` leaves the source whole, and at most a `.part` file or a
//! complete target beside it: a caller that must never hold an object twice records its
//! intent first and finishes the move at start-up (see the sender's spool).

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The node's staging folder inside a folder it takes from (an outbox): a dot name, out of
/// the watch's sight, mode 0700, on the same file system as what is staged in it.
pub const STAGING_DIR: &str = ".isogate-tmp";

/// Size of the buffer a copy reads and writes through, at most (a smaller file: its size).
const COPY_BUFFER: usize = 256 * 1024;

/// A copy at least this long is read back while it is fsynced, on two threads; a shorter
/// one is fsynced first, where a thread would cost more than the overlap saves.
const SYNC_BESIDE_FROM: u64 = 4 << 20;

/// Whether `e` is the kernel saying that a rename or link would cross file systems
/// (`EXDEV`).
pub fn is_cross_device(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error())
}

/// Whether two paths lie on the same file system (the same `st_dev`).
///
/// # Errors
/// Either path cannot be `stat`ed.
pub fn same_file_system(a: &Path, b: &Path) -> io::Result<bool> {
    Ok(fs::metadata(a)?.dev() == fs::metadata(b)?.dev())
}

/// Why a verified copy did not complete.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Reading, writing, syncing or renaming failed (`AlreadyExists`: the target is there).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The source's fingerprint (inode, size, times) changed while it was copied: some
    /// process wrote it. Nothing was kept.
    #[error("the source changed while it was copied")]
    Changed,
    /// The copy differs from what was read from the source: read back after its fsync
    /// (size or SHA-256), or, in a stored form, not the form's size. Nothing was kept.
    #[error("the copy does not match the source ({what})")]
    Mismatch {
        /// What differs: size or content.
        what: &'static str,
    },
}

impl From<CopyError> for io::Error {
    fn from(e: CopyError) -> io::Error {
        match e {
            CopyError::Io(e) => e,
            other => io::Error::other(other),
        }
    }
}

/// What a copy wrote: its size in bytes and its SHA-256 (FIPS 180-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Bytes copied.
    pub size: u64,
    /// SHA-256 of the bytes.
    pub sha256: [u8; 32],
}

/// Copies the plain file `from` to `to` on any file system, never replacing `to`: the bytes
/// go to `<to dir>/.<to name>.part` (created with `mode`), which is fsynced and checked
/// (the copy read back equal in size and SHA-256 to what was read, from 4 MiB on while
/// another thread waits for the fsync; then the source unchanged since it was opened),
/// renamed to `to` without replacing, and the directory fsynced. The
/// source is left in place. Memory: one buffer of at most 256 KiB.
///
/// # Errors
/// [`CopyError::Changed`] or [`CopyError::Mismatch`] (the part file is removed), or I/O
/// (`AlreadyExists` when `to` exists; the source opened through a symlink is refused:
/// `ELOOP`).
pub fn copy_durable(from: &Path, to: &Path, mode: u32) -> Result<Copied, CopyError> {
    copy_in_form(from, to, mode, None, &mut |_| {})
}

/// How a copy stores what it reads: transformed on the way in (sealed at rest, see
/// `keys::at_rest::Sealing`), in a form whose every reader authenticates what it reads.
pub trait StoreForm {
    /// Starts the stored form on `out` (the copy's file).
    ///
    /// # Errors
    /// Writing the form's start failed.
    fn writer<'a>(&self, out: &'a mut dyn Write) -> io::Result<Box<dyn FormWriter + 'a>>;

    /// The bytes the stored form of `plain` bytes takes on disk (the copy's check).
    fn stored_len(&self, plain: u64) -> u64;
}

/// A writer of a stored form, ended by [`FormWriter::finish`] (without it the copy is
/// incomplete).
pub trait FormWriter: Write {
    /// Ends the stored form and flushes it (not synced: the caller's).
    ///
    /// # Errors
    /// The write failed.
    fn finish(self: Box<Self>) -> io::Result<()>;

    /// Writes all of `bytes`, which the caller no longer needs: the form may transform
    /// them where they lie (a sealed form seals them in place, one copy of every byte
    /// fewer), so their content afterwards is the form's. By default, `write_all`.
    ///
    /// # Errors
    /// The write failed.
    fn write_consumed(&mut self, bytes: &mut [u8]) -> io::Result<()> {
        self.write_all(bytes)
    }
}

/// [`copy_durable`], storing the bytes in `form`: the copy is not read back (one pass over
/// the file fewer), since every reader of the form authenticates each stored piece (a
/// sealed form's tags: a copy that does not read back whole fails its first reader, which
/// refuses it); after its fsync the stored copy must be the size the form gives for the
/// bytes read. Returns the bytes copied. `tap` is handed each piece read from `from`, in
/// order, right after it was written into the form (to hash the content as it is stored;
/// what it was handed stands only if the copy succeeds: a retried copy hands its pieces
/// again to the next call's tap).
///
/// # Errors
/// As [`copy_durable`]; [`CopyError::Mismatch`] (`"size"`) when the stored copy is not the
/// form's size for what was read.
pub fn copy_durable_as(
    from: &Path,
    to: &Path,
    mode: u32,
    form: &dyn StoreForm,
    tap: &mut dyn FnMut(&[u8]),
) -> Result<u64, CopyError> {
    copy_in_form(from, to, mode, Some(form), tap).map(|c| c.size)
}

/// [`copy_durable`] or [`copy_durable_as`].
fn copy_in_form(
    from: &Path,
    to: &Path,
    mode: u32,
    form: Option<&dyn StoreForm>,
    tap: &mut dyn FnMut(&[u8]),
) -> Result<Copied, CopyError> {
    let dir = to.parent().unwrap_or(Path::new("."));
    let part = dir.join(format!(
        ".{}.part",
        to.file_name().and_then(|n| n.to_str()).unwrap_or("copy")
    ));
    let result = copy_to_part(from, &part, mode, form, tap);
    match result {
        Ok(copied) => match rename_noreplace(&part, to) {
            Ok(()) => {
                sync_dir(dir)?;
                Ok(copied)
            }
            Err(e) => {
                let _ = fs::remove_file(&part);
                Err(e.into())
            }
        },
        Err(e) => {
            let _ = fs::remove_file(&part);
            Err(e)
        }
    }
}

/// The copy of [`copy_durable`] up to its fsynced, checked part file.
fn copy_to_part(
    from: &Path,
    part: &Path,
    mode: u32,
    form: Option<&dyn StoreForm>,
    tap: &mut dyn FnMut(&[u8]),
) -> Result<Copied, CopyError> {
    let mut src = open_nofollow(from)?;
    let before = Fingerprint::of(&src)?;
    // durable anyway: written back as it goes, and out of the page cache behind
    let mut out = DropBehind::new(
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(part)?,
    );
    // no larger than the file: a small file costs a small buffer
    let len = usize::try_from(before.size).unwrap_or(COPY_BUFFER);
    let mut buf = vec![0u8; len.clamp(4096, COPY_BUFFER)];
    if let Some(form) = form {
        // a form authenticates what it stores: no hash to compare, no read-back
        let mut w = form.writer(&mut out)?;
        // the tap first: the form may then store the bytes where they lie
        let sink = |bytes: &mut [u8]| {
            tap(bytes);
            w.write_consumed(bytes)
        };
        let read = digest_through(&mut src, sink, &mut buf, false)?;
        w.finish()?;
        let out = out.into_inner();
        out.set_permissions(fs::Permissions::from_mode(mode))?;
        out.sync_all()?;
        if Fingerprint::of(&src)? != before || read.size != before.size {
            return Err(CopyError::Changed);
        }
        if out.metadata()?.len() != form.stored_len(read.size) {
            return Err(CopyError::Mismatch { what: "size" });
        }
        return Ok(read);
    }
    let read = digest_through(&mut src, |bytes| out.write_all(bytes), &mut buf, true)?;
    let out = out.into_inner();
    out.set_permissions(fs::Permissions::from_mode(mode))?;
    // the read-back reads what the kernel holds, synced or not: a large copy is read back
    // on this thread while another waits for the disk, and both must succeed
    let read_back = |buf: &mut [u8]| -> io::Result<Copied> {
        let mut stored = DropBehind::new(File::open(part)?);
        digest_through(&mut stored, |_| Ok(()), buf, true)
    };
    let back = std::thread::scope(|scope| {
        let syncing = (read.size >= SYNC_BESIDE_FROM)
            .then(|| {
                std::thread::Builder::new()
                    .name("isogate-fsync".into())
                    .spawn_scoped(scope, || out.sync_all())
                    .ok()
            })
            .flatten();
        match syncing {
            Some(synced) => {
                let back = read_back(&mut buf);
                match synced.join() {
                    Ok(Ok(())) => back,
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(io::Error::other("the fsync thread panicked")),
                }
            }
            // a small copy, or no thread to be had: fsynced first
            None => out.sync_all().and_then(|()| read_back(&mut buf)),
        }
    })?;
    // the source unchanged while it was read and the copy made durable
    if Fingerprint::of(&src)? != before || read.size != before.size {
        return Err(CopyError::Changed);
    }
    drop(out);
    if back.size != read.size {
        return Err(CopyError::Mismatch { what: "size" });
    }
    if back.sha256 != read.sha256 {
        return Err(CopyError::Mismatch { what: "SHA-256" });
    }
    Ok(read)
}

/// Reads `r` to its end through `buf`, handing each piece to `sink` (which may change it:
/// the hash is taken first); the size and SHA-256 of what was read (all zero unless
/// `hash`).
fn digest_through(
    r: &mut impl Read,
    mut sink: impl FnMut(&mut [u8]) -> io::Result<()>,
    buf: &mut [u8],
    hash: bool,
) -> io::Result<Copied> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut size = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let piece = buf.get_mut(..n).unwrap_or_default();
        // hashed before the sink, which may change the bytes (a form's in-place write)
        if hash {
            ctx.update(piece);
        }
        sink(piece)?;
        size += n as u64;
    }
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(ctx.finish().as_ref());
    Ok(Copied { size, sha256 })
}

/// How [`move_across`] moved an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// One rename: both paths on one file system.
    Renamed,
    /// Copied onto the other file system (verified, fsynced), then the source removed.
    Copied,
}

/// Moves the entry `from` to `to` without replacing `to`, on one file system or across
/// two. A rename when it can be; where the kernel answers `EXDEV`, the entry is made again
/// at `to` as it is (a plain file by [`copy_durable`], keeping its permission bits; a
/// symlink as a link, never followed; a FIFO, socket or device node by `mknod`; a
/// directory entry by entry, depth first, with an explicit stack), fsynced, and only then is
/// the source removed and its directory fsynced.
///
/// # Errors
/// I/O (`AlreadyExists` when `to` exists; `NotFound` when `from` does not), or a copy that
/// could not be verified (the source changed while it was read). The source is then left
/// in place and a partly made directory at `to` removed (a directory is copied from the
/// [`STAGING_DIR`] beside it, where it was renamed first).
pub fn move_across(from: &Path, to: &Path) -> io::Result<Moved> {
    match rename_noreplace(from, to) {
        Ok(()) => return Ok(Moved::Renamed),
        Err(e) if is_cross_device(&e) => {}
        Err(e) => return Err(e),
    }
    if fs::symlink_metadata(to).is_ok() {
        return Err(io::Error::from(io::ErrorKind::AlreadyExists));
    }
    let meta = fs::symlink_metadata(from)?;
    if meta.is_dir() {
        move_tree_across(from, to)?;
    } else {
        make_again(from, to, &meta)?;
        fs::remove_file(from)?;
    }
    if let Some(parent) = from.parent() {
        sync_dir(parent)?;
    }
    Ok(Moved::Copied)
}

/// Moves the directory `from` to `to` on another file system: first renamed into the
/// [`STAGING_DIR`] beside it (one file system, atomic: no path-based writer adds to it
/// after that), copied from there, then removed. On a failed copy the partial tree at `to`
/// is removed and the directory renamed back to `from` (left staged, said at WARN, when
/// `from` was made again meanwhile).
fn move_tree_across(from: &Path, to: &Path) -> io::Result<()> {
    let parent = from.parent().unwrap_or(Path::new("."));
    let staging = private_staging(parent)?;
    let tag = to.file_name().unwrap_or(OsStr::new("tree"));
    let staged = staging.join(tag);
    rename_noreplace(from, &staged)?;
    sync_dir(&staging)?;
    sync_dir(parent)?;
    if let Err(e) = copy_tree(&staged, to) {
        if let Err(r) = fs::remove_dir_all(to)
            && r.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %to.display(), error = %r, "cannot remove a partly made copy of a directory");
        }
        match rename_noreplace(&staged, from) {
            Ok(()) => sync_dir(parent)?,
            Err(b) => {
                tracing::warn!(staged = %staged.display(), error = %b, "cannot put a directory back after a failed copy; left staged")
            }
        }
        return Err(e);
    }
    fs::remove_dir_all(&staged)?;
    sync_dir(&staging)
}

/// Makes the non-directory entry `from` again at `to`, fsynced (the directory too).
fn make_again(from: &Path, to: &Path, meta: &fs::Metadata) -> io::Result<()> {
    let ft = meta.file_type();
    let dir = to.parent().unwrap_or(Path::new("."));
    if ft.is_file() {
        copy_durable(from, to, meta.mode() & 0o777)?;
        return Ok(());
    }
    if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(from)?, to)?;
    } else {
        let kind = if ft.is_fifo() {
            rustix::fs::FileType::Fifo
        } else if ft.is_socket() {
            rustix::fs::FileType::Socket
        } else if ft.is_block_device() {
            rustix::fs::FileType::BlockDevice
        } else {
            rustix::fs::FileType::CharacterDevice
        };
        rustix::fs::mknodat(
            rustix::fs::CWD,
            to,
            kind,
            rustix::fs::Mode::from_raw_mode(meta.mode() & 0o777),
            meta.rdev(),
        )?;
    }
    sync_dir(dir)
}

/// Makes the directory tree `from` again at `to`, each entry as it is (see
/// [`move_across`]); nothing is removed.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let mut stack: Vec<(PathBuf, PathBuf)> = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((src, dst)) = stack.pop() {
        let mode = fs::symlink_metadata(&src)?.mode() & 0o777;
        fs::create_dir(&dst)?;
        fs::set_permissions(&dst, fs::Permissions::from_mode(mode | 0o700))?;
        for entry in fs::read_dir(&src)? {
            let entry = entry?;
            let (s, d) = (entry.path(), dst.join(entry.file_name()));
            let meta = fs::symlink_metadata(&s)?;
            if meta.is_dir() {
                stack.push((s, d));
            } else {
                make_again(&s, &d, &meta)?;
            }
        }
        sync_dir(&dst)?;
        if let Some(parent) = dst.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// The [`STAGING_DIR`] of `parent` (an outbox), made when missing: a directory only the
/// node's user may enter (0700), the parent fsynced. One that is there already is used
/// only when it is a real directory (not a symbolic link) owned by the node's effective
/// user with no access for group or others: a writer of the outbox could otherwise make
/// it, and reach or redirect the files staged there.
///
/// # Errors
/// `PermissionDenied` (or `InvalidInput` for a link or a file) naming the folder and what
/// is wrong with it; I/O making or syncing it.
pub fn private_staging(parent: &Path) -> io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let dir = parent.join(STAGING_DIR);
    let meta = match fs::symlink_metadata(&dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    // exactly 0700, whatever the umask left (it only takes bits away)
                    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
                    sync_dir(parent)?;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            fs::symlink_metadata(&dir)?
        }
        Err(e) => return Err(e),
    };
    let refuse = |kind: io::ErrorKind, why: String| {
        Err(io::Error::new(
            kind,
            format!(
                "{}: the staging folder {why}: move it aside; the node makes the folder itself",
                dir.display()
            ),
        ))
    };
    if meta.file_type().is_symlink() {
        return refuse(io::ErrorKind::InvalidInput, "is a symbolic link".into());
    }
    if !meta.is_dir() {
        return refuse(io::ErrorKind::InvalidInput, "is not a directory".into());
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return refuse(
            io::ErrorKind::PermissionDenied,
            format!(
                "belongs to uid {}, not to the node's user (uid {me})",
                meta.uid()
            ),
        );
    }
    if meta.mode() & 0o077 != 0 {
        return refuse(
            io::ErrorKind::PermissionDenied,
            format!(
                "is open to group or others (mode {:o})",
                meta.mode() & 0o7777
            ),
        );
    }
    Ok(dir)
}

mod group_sync;

/// Fsyncs a directory so that entries created, renamed or removed in it before the call
/// are durable. Threads syncing the same directory at once share one fsync where they can
/// (group commit: see `group_sync`); each returns only after an fsync that started after
/// its call.
///
/// # Errors
/// Opening or syncing the directory failed (another caller's fsync, where it was shared).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    group_sync::sync(dir, || File::open(dir)?.sync_all())
}

/// Writes `bytes` to `path` through a temp file (`.<name>.tmp`), fsync and rename, without
/// the directory's fsync of [`write_durable`]: the file's bytes are durable, its name only
/// once the caller fsyncs the directory. For a file that a later [`sync_dir`] of the same
/// directory makes durable before anything relies on it (one directory fsync for several
/// names).
///
/// # Errors
/// Writing, syncing or renaming fails.
pub fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_through_temp(path, bytes, true)
}

/// The temporary name a file is written through before its rename to `path`:
/// `.<name>.tmp` beside it.
fn temp_name(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ))
}

/// Writes `bytes` to [`temp_name`]`(path)` (made or emptied), fsynced where `sync`, and
/// renames it to `path`.
fn write_through_temp(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let tmp = temp_name(path);
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    if sync {
        f.sync_all()?;
    }
    drop(f);
    fs::rename(&tmp, path)
}

/// Writes `bytes` to `path` through a temp file (`.<name>.tmp`) and a rename, with no
/// fsync at all: readers see the old file or the whole new one, but after a power cut the
/// file may be missing, empty, cut short or the older version. Only for a file the caller
/// can rebuild, or do without, when it reads back something it cannot use (a cache). Costs
/// no flush of the disk's cache, which a small file's [`write_durable`] pays twice.
///
/// # Errors
/// Writing or renaming fails.
pub fn write_replaced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_through_temp(path, bytes, false)
}

/// Writes `bytes` to `path` through a temp file, fsync and rename, then fsyncs the directory.
pub fn write_durable(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_synced(path, bytes)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// [`write_durable`] with the file given exactly `mode` (permission bits, the umask not
/// applied) before it appears under `path`, whatever mode a leftover temporary file had;
/// the file keeps the group its directory gives new files (set-group-ID directories).
///
/// # Errors
/// Writing, syncing, changing the mode or renaming fails.
pub fn write_durable_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_name(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Makes a directory `mode` when missing and takes any access by others ("world") off it
/// when it has some (made by an earlier version, or by hand): whatever the umask, it is
/// never readable, writable or searchable by all. Group bits an administrator gave it stay.
///
/// # Errors
/// It cannot be made, read or changed.
pub fn private_dir(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
    {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let m = fs::symlink_metadata(path)?;
    if !m.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a directory", path.display()),
        ));
    }
    let now = m.permissions().mode() & 0o7777;
    if now & 0o007 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(now & !0o007))?;
    }
    Ok(())
}

/// Takes the exclusive lock (`flock(2)`) of the file `path`, made with `mode` (less the
/// umask) if missing: `Ok(Some(file))` holds it until the file is dropped or the process
/// ends, however it ends; `Ok(None)` when another open file holds it (another process, or
/// another open of it in this one: `flock` refuses a second lock of one file even there).
///
/// # Errors
/// The file cannot be made or opened, or locking it failed otherwise.
pub fn lock_exclusive(path: &Path, mode: u32) -> io::Result<Option<File>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(mode)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Opens a file for reading, refusing to follow a symbolic link at its last component and
/// never blocking on a FIFO.
pub fn open_nofollow(path: &Path) -> io::Result<File> {
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
}

/// Empties the regular file `path` in place, never through a symbolic link: its bytes go
/// (its blocks freed), its inode stays, for a next write through the same file. On ext4
/// without a journal, making a file soon after others were deleted scans past each
/// recently deleted inode: a file kept and emptied costs none of that.
///
/// # Errors
/// Opening it for writing (`ELOOP`: a link; `ENXIO`: a FIFO) failed, it is not a regular
/// file, or truncating it failed.
pub fn empty(path: &Path) -> io::Result<()> {
    // never blocks on a FIFO (ENXIO without a reader), never truncates what is not a file
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let f = OpenOptions::new()
        .write(true)
        .custom_flags(flags.bits() as i32)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other(format!(
            "{}: not a regular file, not emptied",
            path.display()
        )));
    }
    f.set_len(0)
}

/// Renames `from` to `to` unless `to` exists (atomically: `AlreadyExists` if it does).
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        from,
        rustix::fs::CWD,
        to,
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .map_err(io::Error::from)
}

/// What says whether a file's content may have changed: inode, size, and modification and
/// status-change times (ns). A write through any descriptor changes the size or the times;
/// the status-change time cannot be set back by the writer (`utimensat` sets it to now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    /// Device and inode.
    pub dev_ino: (u64, u64),
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i128,
    /// Status-change time, ns since the epoch.
    pub ctime_ns: i128,
}

impl Fingerprint {
    /// The fingerprint of an open file (`fstat`).
    ///
    /// # Errors
    /// `fstat` fails.
    pub fn of(file: &File) -> io::Result<Fingerprint> {
        let m = file.metadata()?;
        Ok(Fingerprint {
            dev_ino: (m.dev(), m.ino()),
            size: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        })
    }
}

/// Bytes each piece of a [`copy_overlapped`] holds.
pub const OVERLAP_PIECE: usize = 1 << 20;

/// How many pieces a [`copy_overlapped`] reader may have read ahead of its writer.
const OVERLAP_AHEAD: usize = 2;

/// Copies all of `from` into `to`, reading on a thread of its own while this one writes,
/// so that the reader's work (reading the page cache, opening a sealed copy's chunks) and
/// the writer's (filling fresh pages of the page cache) overlap on two cores. Memory: at
/// most 4 pieces of [`OVERLAP_PIECE`] bytes (2 read ahead, one being read, one being
/// written). Returns the bytes copied.
/// A thread costs more than a small copy: for a few MiB or less, [`io::copy`] does better.
///
/// # Errors
/// Reading or writing failed (the first error; the other side stops), or the reading
/// thread could not be started.
pub fn copy_overlapped(from: &mut (dyn Read + Send), to: &mut dyn Write) -> io::Result<u64> {
    use std::sync::mpsc::{channel, sync_channel};
    let (full_tx, full_rx) = sync_channel::<io::Result<(Vec<u8>, usize)>>(OVERLAP_AHEAD);
    let (empty_tx, empty_rx) = channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("isogate-read-ahead".into())
            .spawn_scoped(scope, move || {
                loop {
                    let mut piece = empty_rx
                        .try_recv()
                        .unwrap_or_else(|_| vec![0; OVERLAP_PIECE]);
                    let mut filled = 0;
                    let read = loop {
                        match from.read(&mut piece[filled..]) {
                            Ok(0) => break Ok(()),
                            Ok(n) => {
                                filled += n;
                                if filled == piece.len() {
                                    break Ok(());
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => break Err(e),
                        }
                    };
                    let end = read.is_err() || filled < piece.len();
                    let sent = match read {
                        Ok(()) => full_tx.send(Ok((piece, filled))),
                        Err(e) => full_tx.send(Err(e)),
                    };
                    // the writer stopped (it failed), or all was read
                    if sent.is_err() || end {
                        return;
                    }
                }
            })?;
        let mut copied = 0u64;
        for piece in full_rx {
            let (piece, filled) = piece?;
            to.write_all(&piece[..filled])?;
            copied += filled as u64;
            let _ = empty_tx.send(piece);
        }
        Ok(copied)
    })
}

/// How often (bytes) a [`DropBehind`] file tells the kernel it is done with what lies behind.
pub const BEHIND_WINDOW: u64 = 8 << 20;

/// The page size the advice rounds to (bytes): x86-64's and most others'; a larger one only
/// leaves a part of a page cached.
const PAGE: u64 = 4096;

/// A file read or written once, from start to end, that leaves little of itself in the
/// page cache: every [`BEHIND_WINDOW`], what lies behind is handed back with
/// `posix_fadvise(POSIX_FADV_DONTNEED)` (POSIX.1-2008), which starts the write-back of
/// dirty pages and drops clean ones. Read, at most the last four windows (and the kernel's
/// read-ahead) stay cached. Written, a page is dropped at the last advice that covers it
/// (three windows on) only if its write-back is over by then: a writer that outruns its
/// disk keeps more cached, as without the advice.
///
/// Why: a large object streamed through the page cache fills it with pages nobody reads
/// again, and on a virtual machine whose freed memory goes back to its host, every fresh
/// page costs the writer a fault (about 1 s of CPU per GiB, measured). Pages handed back
/// behind the stream are taken again by its next writes, already backed; the final fsync
/// finds little left to write, and other services keep their cache. What is read or
/// written is unchanged: the advice is only advice, and an error from it is ignored.
///
/// Use it where the bytes are durable anyway (fsynced) or only read: on a file deleted
/// before the kernel would write it back, the advice would write it for nothing. The
/// offset is the file's own (`Read`/`Write` through this wrapper only); a file opened
/// with `O_APPEND` is not for it.
#[derive(Debug)]
pub struct DropBehind {
    file: File,
    /// The next offset read or written (bytes from the start of the file).
    pos: u64,
    behind: Behind,
}

impl DropBehind {
    /// Wraps `file`, read or written from its current offset on.
    pub fn new(mut file: File) -> DropBehind {
        use std::io::Seek;
        let pos = file.stream_position().unwrap_or(0);
        DropBehind {
            file,
            pos,
            behind: Behind::from(pos),
        }
    }

    /// The file back.
    pub fn into_inner(self) -> File {
        self.file
    }

    fn moved(&mut self, n: usize) {
        self.pos += n as u64;
        self.behind.reached(&self.file, self.pos);
    }
}

/// The advice of [`DropBehind`] for a reader that keeps its own offset (`pread`): told
/// where the stream has reached, it hands back what lies behind, once a [`BEHIND_WINDOW`].
/// It only moves forward: a second pass over the same file with the same `Behind` gives
/// no advice until it passes the first.
#[derive(Debug, Clone, Copy)]
pub struct Behind {
    /// Where the advice was given last (bytes from the start of the file).
    advised: u64,
}

impl Behind {
    /// A stream starting at `pos` (bytes).
    pub fn from(pos: u64) -> Behind {
        Behind { advised: pos }
    }

    /// The stream on `file` has reached `pos` (bytes): from a window past the last advice
    /// on, the four windows behind it go back (the pages whose write-back the calls before
    /// started are clean by then), up to the last whole page before `pos` (4 KiB: the page
    /// being written is left alone).
    pub fn reached(&mut self, file: &File, pos: u64) {
        if pos < self.advised.saturating_add(BEHIND_WINDOW) {
            return;
        }
        let end = pos & !(PAGE - 1);
        let from = self.advised.saturating_sub(3 * BEHIND_WINDOW) & !(PAGE - 1);
        self.advised = pos;
        // never an empty range: to the kernel that means "to the end of the file"
        let Some(len) = std::num::NonZeroU64::new(end.saturating_sub(from)) else {
            return;
        };
        let _ = rustix::fs::fadvise(file, from, Some(len), rustix::fs::Advice::DontNeed);
    }
}

impl Read for DropBehind {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.moved(n);
        Ok(n)
    }
}

impl Write for DropBehind {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.moved(n);
        Ok(n)
    }

    /// One `writev(2)` for all of `bufs`: a sealed chunk and its tag go in one call.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let n = self.file.write_vectored(bufs)?;
        self.moved(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
/// Bytes of `path` in the page cache, as util-linux's `fincore` counts them; `None` where
/// the tool is missing, or where its folder's file system does not drop a file's pages on
/// advice (tmpfs, ramfs, some overlays): tried first on a small fsynced file there.
pub(crate) fn resident(path: &Path) -> Option<u64> {
    let count = |p: &Path| -> Option<u64> {
        let out = std::process::Command::new("fincore")
            .args(["--bytes", "--noheadings", "--raw", "--output", "RES"])
            .arg(p)
            .output()
            .ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    let probe = path.with_extension("probe");
    let dropped = (|| {
        let mut f = File::create(&probe).ok()?;
        f.write_all(&[7u8; 64 * 1024]).ok()?;
        f.sync_all().ok()?;
        rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).ok()?;
        Some(count(&probe)? == 0)
    })();
    let _ = fs::remove_file(&probe);
    if dropped != Some(true) {
        return None;
    }
    count(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that fails after `ok` bytes.
    struct FailsAfter {
        ok: usize,
    }

    impl Read for FailsAfter {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.ok == 0 {
                return Err(io::Error::other("the disk said no"));
            }
            let n = buf.len().min(self.ok).min(1000);
            buf[..n].fill(7);
            self.ok -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_replaced_file_is_whole_under_its_name_with_no_temporary_left() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("manifest");
        write_replaced(&path, b"first, longer version").unwrap();
        write_replaced(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsStr::new("manifest").to_os_string()]);
        // a leftover temporary file (a cut write) is written over, never appended to
        fs::write(t.path().join(".manifest.tmp"), b"left by a cut write, long").unwrap();
        write_replaced(&path, b"third").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"third");
        assert!(!t.path().join(".manifest.tmp").exists());
    }

    #[test]
    fn an_overlapped_copy_is_whole_in_order_and_stops_at_either_side_s_error() {
        // not a multiple of a piece, and a reader that returns short reads
        let content: Vec<u8> = (0..(3 * OVERLAP_PIECE + 12_345))
            .map(|i| (i % 251) as u8)
            .collect();
        let mut out = Vec::new();
        let copied = copy_overlapped(&mut io::Cursor::new(&content), &mut out).unwrap();
        assert_eq!(copied, content.len() as u64);
        assert_eq!(out, content);
        let mut empty = Vec::new();
        assert_eq!(copy_overlapped(&mut io::empty(), &mut empty).unwrap(), 0);
        // the reader's error reaches the caller, after what was read before it
        let mut out = Vec::new();
        let e = copy_overlapped(
            &mut FailsAfter {
                ok: 2 * OVERLAP_PIECE,
            },
            &mut out,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "the disk said no");
        assert_eq!(out.len(), 2 * OVERLAP_PIECE);
        // a writer that fails stops the reader (an endless one: the call would never
        // return otherwise), with the writer's error
        let mut full = [0u8; 100];
        let e =
            copy_overlapped(&mut io::repeat(7), &mut io::Cursor::new(&mut full[..])).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WriteZero);
    }

    #[test]
    fn drop_behind_keeps_every_byte_and_hands_back_what_it_read() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("stream");
        let mut bytes = vec![0u8; (12 * BEHIND_WINDOW) as usize + 12_345];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let mut w = DropBehind::new(File::create(&path).unwrap());
        for piece in bytes.chunks(100_000) {
            w.write_all(piece).unwrap();
        }
        w.into_inner().sync_all().unwrap();
        assert_eq!(fs::read(&path).unwrap(), bytes);
        // from an offset: the stream starts there
        let mut f = File::open(&path).unwrap();
        std::io::Seek::seek(&mut f, io::SeekFrom::Start(5)).unwrap();
        let mut r = DropBehind::new(f);
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(back, bytes[5..]);
        // read whole (clean, fsynced), at most the last four windows and the kernel's
        // read-ahead stay in the cache
        let Some(left) = resident(&path) else {
            eprintln!(
                "SKIPPED the page-cache check: no fincore (util-linux-extra), or a file system that keeps pages on advice"
            );
            return;
        };
        assert!(
            left <= 4 * BEHIND_WINDOW + (4 << 20),
            "{left} of {} bytes still cached",
            bytes.len()
        );
    }

    #[test]
    fn a_staging_folder_is_the_nodes_own_or_refused() {
        let t = tempfile::tempdir().unwrap();
        let o = t.path().join("outbox");
        fs::create_dir(&o).unwrap();
        let made = private_staging(&o).unwrap();
        assert_eq!(made, o.join(STAGING_DIR));
        let mode = fs::symlink_metadata(&made).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(private_staging(&o).unwrap(), made, "used again as it is");
        // opened to the group: refused, not used
        fs::set_permissions(&made, fs::Permissions::from_mode(0o770)).unwrap();
        let e = private_staging(&o).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("mode 770"), "{e}");
        fs::remove_dir(&made).unwrap();
        // a link to another folder, or a file: refused
        let elsewhere = t.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &made).unwrap();
        let e = private_staging(&o).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("symbolic link"), "{e}");
        fs::remove_file(&made).unwrap();
        fs::write(&made, b"").unwrap();
        assert!(
            private_staging(&o)
                .unwrap_err()
                .to_string()
                .contains("not a directory")
        );
    }

    #[test]
    fn a_write_through_an_old_descriptor_changes_the_fingerprint() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        let mut w = File::create(&p).unwrap();
        w.write_all(b"abc").unwrap();
        let r = open_nofollow(&p).unwrap();
        let before = Fingerprint::of(&r).unwrap();
        assert_eq!(before, Fingerprint::of(&r).unwrap());
        fs::rename(&p, t.path().join("g")).unwrap();
        w.write_all(b"d").unwrap();
        assert_ne!(before, Fingerprint::of(&r).unwrap());
    }

    /// A folder on another file system than the temp dir (`/dev/shm`), or `None` (said).
    fn other_fs(t: &Path) -> Option<tempfile::TempDir> {
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() || same_file_system(shm, t).unwrap_or(true) {
            eprintln!("SKIPPED: no second file system (/dev/shm) beside the temp dir");
            return None;
        }
        tempfile::tempdir_in(shm).ok()
    }

    #[test]
    fn a_copy_is_verified_never_replaces_and_never_follows_a_link() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        fs::write(&a, b"court file").unwrap();
        let b = t.path().join("b");
        let c = copy_durable(&a, &b, 0o600).unwrap();
        assert_eq!(c.size, 10);
        assert_eq!(fs::read(&b).unwrap(), b"court file");
        assert_eq!(
            fs::metadata(&b).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(a.exists());
        // never replaces, and leaves no part file behind
        fs::write(&a, b"other").unwrap();
        match copy_durable(&a, &b, 0o600) {
            Err(CopyError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::AlreadyExists),
            other => panic!("{other:?}"),
        }
        assert_eq!(fs::read(&b).unwrap(), b"court file");
        assert!(!t.path().join(".b.part").exists());
        // a symlink source is refused, not followed
        let l = t.path().join("l");
        std::os::unix::fs::symlink(&a, &l).unwrap();
        assert!(copy_durable(&l, &t.path().join("m"), 0o600).is_err());
        assert!(!t.path().join("m").exists());
    }

    /// A stored form that inverts every byte; `short`: what it stores is one byte shorter
    /// than the size it gives for it.
    struct Inverted {
        short: bool,
    }

    struct InvertedWriter<'a>(&'a mut dyn Write);

    impl Write for InvertedWriter<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let inverted: Vec<u8> = buf.iter().map(|b| !b).collect();
            self.0.write_all(&inverted)?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.0.flush()
        }
    }

    impl FormWriter for InvertedWriter<'_> {
        fn finish(self: Box<Self>) -> io::Result<()> {
            self.0.flush()
        }
    }

    impl StoreForm for Inverted {
        fn writer<'a>(&self, out: &'a mut dyn Write) -> io::Result<Box<dyn FormWriter + 'a>> {
            Ok(Box::new(InvertedWriter(out)))
        }
        fn stored_len(&self, plain: u64) -> u64 {
            plain + u64::from(self.short)
        }
    }

    #[test]
    fn a_large_copy_read_back_beside_its_fsync_is_checked_the_same() {
        let t = tempfile::tempdir().unwrap();
        for len in [1000usize, SYNC_BESIDE_FROM as usize + 12_345] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let a = t.path().join(format!("a{len}"));
            fs::write(&a, &data).unwrap();
            // plain: the SHA-256 of what was read
            let plain = t.path().join(format!("plain{len}"));
            let c = copy_durable(&a, &plain, 0o600).unwrap();
            assert_eq!(c.size, len as u64);
            assert_eq!(
                c.sha256.as_slice(),
                ring::digest::digest(&ring::digest::SHA256, &data).as_ref()
            );
            assert_eq!(fs::read(&plain).unwrap(), data);
            // in a form: stored transformed, not read back
            let stored = t.path().join(format!("stored{len}"));
            let mut tapped = Vec::new();
            let size = copy_durable_as(&a, &stored, 0o600, &Inverted { short: false }, &mut |b| {
                tapped.extend_from_slice(b)
            })
            .unwrap();
            assert_eq!(size, len as u64);
            assert!(
                tapped == data,
                "the tap is handed every byte read, in order"
            );
            let on_disk = fs::read(&stored).unwrap();
            assert!(on_disk.iter().zip(&data).all(|(s, d)| *s == !*d));
            // a copy that is not the form's size is refused, and leaves nothing behind
            let bad = t.path().join(format!("bad{len}"));
            match copy_durable_as(&a, &bad, 0o600, &Inverted { short: true }, &mut |_| {}) {
                Err(CopyError::Mismatch { what: "size" }) => {}
                other => panic!("{other:?}"),
            }
            assert!(!bad.exists());
            assert!(!t.path().join(format!(".bad{len}.part")).exists());
        }
    }

    #[test]
    fn a_move_on_one_file_system_is_a_rename() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        fs::write(&a, b"x").unwrap();
        let ino = fs::metadata(&a).unwrap().ino();
        let b = t.path().join("b");
        assert_eq!(move_across(&a, &b).unwrap(), Moved::Renamed);
        assert_eq!(fs::metadata(&b).unwrap().ino(), ino);
        fs::write(&a, b"y").unwrap();
        let e = move_across(&a, &b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&b).unwrap(), b"x");
    }

    #[test]
    fn a_move_across_file_systems_copies_each_kind_then_removes_the_source() {
        let t = tempfile::tempdir().unwrap();
        let Some(other) = other_fs(t.path()) else {
            return;
        };
        let o = other.path();
        // a plain file: copied with its mode, verified, source removed
        let a = o.join("a.pdf");
        fs::write(&a, b"%PDF-1.7 evidence").unwrap();
        fs::set_permissions(&a, fs::Permissions::from_mode(0o640)).unwrap();
        let rename = fs::rename(&a, t.path().join("x")).unwrap_err();
        assert!(is_cross_device(&rename));
        let to = t.path().join("a.pdf");
        assert_eq!(move_across(&a, &to).unwrap(), Moved::Copied);
        assert!(!a.exists());
        assert_eq!(fs::read(&to).unwrap(), b"%PDF-1.7 evidence");
        assert_eq!(
            fs::metadata(&to).unwrap().permissions().mode() & 0o777,
            0o640
        );
        // never replaces: the source stays
        fs::write(&a, b"again").unwrap();
        assert_eq!(
            move_across(&a, &to).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert!(a.exists());
        // a symlink: the link itself, never its target
        let l = o.join("l");
        std::os::unix::fs::symlink("/etc/passwd", &l).unwrap();
        let lt = t.path().join("l");
        assert_eq!(move_across(&l, &lt).unwrap(), Moved::Copied);
        assert_eq!(fs::read_link(&lt).unwrap(), Path::new("/etc/passwd"));
        assert!(fs::symlink_metadata(&l).is_err());
        // a FIFO: made again, never opened
        let f = o.join("f");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &f,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let ft = t.path().join("f");
        move_across(&f, &ft).unwrap();
        assert!(fs::symlink_metadata(&ft).unwrap().file_type().is_fifo());
        assert!(fs::symlink_metadata(&f).is_err());
        // a directory tree, with a link inside
        let d = o.join("d");
        fs::create_dir_all(d.join("sub")).unwrap();
        fs::write(d.join("sub/deep.txt"), b"deep").unwrap();
        std::os::unix::fs::symlink("sub/deep.txt", d.join("link")).unwrap();
        let dt = t.path().join("d");
        move_across(&d, &dt).unwrap();
        assert_eq!(fs::read(dt.join("sub/deep.txt")).unwrap(), b"deep");
        assert!(
            fs::symlink_metadata(dt.join("link"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(!d.exists());
        // copied from the staging folder it was renamed into first, which is left empty
        let staging = o.join(STAGING_DIR);
        assert_eq!(fs::read_dir(&staging).unwrap().count(), 0);
        assert_eq!(
            fs::metadata(&staging).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // a directory that cannot be staged (its staging name taken): left where it was,
        // nothing made at the target
        let e = o.join("e");
        fs::create_dir_all(e.join("sub")).unwrap();
        fs::write(e.join("sub/x"), b"x").unwrap();
        let et = t.path().join("e");
        fs::create_dir(staging.join("e")).unwrap();
        assert!(move_tree_across(&e, &et).is_err());
        assert!(e.join("sub/x").exists());
        assert!(!et.exists());
    }
}
