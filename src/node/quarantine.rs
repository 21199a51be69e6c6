//! Quarantine: where refused objects go on either node, never delivered, each with a reason
//! file that says what it was and why it was refused.
//!
//! ```text
//! <exchange>/quarantine/<channel>/<object id>               the refused entry, if any
//! <exchange>/quarantine/<channel>/<object id>.reason.json   reason code, detail, name, time
//! ```
//!
//! Modes: a channel's directory is made 0750 and a reason file 0640, so that the group of
//! the quarantine (set-group-ID, `isogate-audit` where the package made it) reads why;
//! the copy itself is 0400, the service user's alone.
//!
//! A quarantined copy never changes once its reason is recorded: a plain file (one link) is
//! copied in from the bytes read, made read-only (0440) and fsynced, and only then is the
//! original removed, so a process that still holds the original open writes into a file
//! nobody keeps. Anything else (a symlink, FIFO, device, directory, hard-linked file) is
//! renamed in as it is, never followed; where the quarantine is on another file system than
//! the entry, it is made again there as it is ([`crate::fsx::move_across`]) and then removed.

use crate::core::id::ObjectId;
use crate::core::reason::{Refusal, Side};
use crate::fsx::{open_nofollow, rename_noreplace, sync_dir, write_durable_mode};
use serde::Serialize;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What the reason file records.
#[derive(Debug, Serialize)]
struct ReasonFile<'a> {
    object_id: String,
    channel: &'a str,
    name: &'a str,
    node: &'a str,
    side: &'a str,
    reason: &'a str,
    detail: &'a str,
    time_ms: u64,
}

/// The object being quarantined.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Its id (names the quarantine entry).
    pub id: ObjectId,
    /// Its channel.
    pub channel: &'a str,
    /// Its name, as given (recorded, never used as a path).
    pub name: &'a str,
}

/// Mode of a quarantined copy: read-only, for the service user alone. The quarantine's group
/// (`isogate-audit` where the package made it) reads the reasons, never the content: an
/// auditor reviews what was refused and why without holding what may be malware or a leak.
const COPY_MODE: u32 = 0o400;
/// Mode of a reason file: the node writes, the quarantine's group reads.
pub const REASON_MODE: u32 = 0o640;
/// Mode of a channel's quarantine directory the node makes (set-group-ID comes from its
/// parent, with the group).
pub const DIR_MODE: u32 = 0o750;

/// Moves `entry` (if any) into the channel's quarantine as `<id>` and writes its reason
/// file: a plain file with one link is copied in read-only and then removed; anything else
/// is renamed, never read or followed. Returns the quarantined path.
pub fn put(
    dir: &Path,
    subject: &Subject<'_>,
    entry: Option<&Path>,
    node: &str,
    side: Side,
    refusal: &Refusal,
) -> io::Result<PathBuf> {
    let Subject { id, channel, name } = *subject;
    std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), DIR_MODE)
        .create(dir)?;
    let target = dir.join(id.to_string());
    if let Some(entry) = entry {
        let plain = match fs::symlink_metadata(entry) {
            Ok(m) => m.file_type().is_file() && m.nlink() == 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        let moved = if plain {
            copy_in(dir, entry, &target)
        } else {
            // as it is, by one rename, or made again on the quarantine's file system
            crate::fsx::move_across(entry, &target).map(|_| ())
        };
        match moved {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let reason = ReasonFile {
        object_id: id.to_string(),
        channel,
        name,
        node,
        side: side.as_str(),
        reason: refusal.reason.as_str(),
        detail: &refusal.detail,
        time_ms: crate::now_ms(),
    };
    let json = serde_json::to_vec_pretty(&reason).map_err(io::Error::other)?;
    write_durable_mode(&dir.join(format!("{id}.reason.json")), &json, REASON_MODE)?;
    sync_dir(dir)?;
    Ok(target)
}

/// Copies a plain file into quarantine as `target` (read-only, fsynced, never replacing an
/// earlier copy of the same object), then removes the original.
fn copy_in(dir: &Path, entry: &Path, target: &Path) -> io::Result<()> {
    let tmp = dir.join(format!(
        ".{}.part",
        target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("copy")
    ));
    let mut from = open_nofollow(entry)?;
    let mut to = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    io::copy(&mut from, &mut to)?;
    to.set_permissions(fs::Permissions::from_mode(COPY_MODE))?;
    to.sync_all()?;
    match rename_noreplace(&tmp, target) {
        Ok(()) => {}
        // an earlier run copied it and stopped before removing the original
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => fs::remove_file(&tmp)?,
        Err(e) => return Err(e),
    }
    sync_dir(dir)?;
    match fs::remove_file(entry) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(parent) = entry.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::reason::Reason;
    use std::io::Write;

    #[test]
    fn a_quarantined_copy_never_changes_after_its_record() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path().join("q");
        let src = t.path().join("content");
        let mut writer = fs::File::create(&src).unwrap();
        writer.write_all(b"forty per cent").unwrap();
        let subject = Subject {
            id: ObjectId([3; 16]),
            channel: "c",
            name: "a.pdf",
        };
        let refusal = Refusal::new(Reason::SizeMismatch, "cut");
        let at = put(&q, &subject, Some(&src), "n", Side::Sender, &refusal).unwrap();
        // the writer that still held the original goes on writing: the copy stays as recorded
        writer.write_all(b" and the rest").unwrap();
        drop(writer);
        assert_eq!(fs::read(&at).unwrap(), b"forty per cent");
        assert!(!src.exists());
        let mode = fs::metadata(&at).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, COPY_MODE);
        let reason = fs::metadata(q.join(format!("{}.reason.json", subject.id))).unwrap();
        assert_eq!(reason.permissions().mode() & 0o7777, REASON_MODE);
        // a symlink is renamed in as it is, never followed
        let link = t.path().join("link");
        std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
        let s2 = Subject {
            id: ObjectId([4; 16]),
            ..subject
        };
        let at2 = put(&q, &s2, Some(&link), "n", Side::Sender, &refusal).unwrap();
        assert!(fs::symlink_metadata(&at2).unwrap().file_type().is_symlink());
    }
}
