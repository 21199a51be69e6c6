//! Small durable file-system steps shared by the spool, landing and quarantine: fsync a
//! directory, write a file durably, open without following links, rename without replacing,
//! tell whether an open file changed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Fsyncs a directory so that entries created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `path` through a temp file, fsync and rename, then fsyncs the directory.
pub fn write_durable(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    sync_dir(dir)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
