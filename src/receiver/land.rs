//! The land stage on the receiving node: a verified object becomes a file in the inbox
//! exactly once, and only complete.
//!
//! ```text
//! <inbox>/.isogate-tmp/<id>.part     the content (same file system as the inbox, so landing
//!                                    is one rename; the folder is 0700): as it streams in
//!                                    on a node without a data key, else unsealed from the
//!                                    sealed copy once cleared (`staged`)
//! state/landed/<channel>/<id>        marker: the object is committed (or quarantined),
//!                                    with the size and hash its part file must have
//! <inbox>/<name>                     the delivered file, renamed in without replacing
//! ```
//!
//! Order: write and fsync the part file and the staging folder, write the marker durably,
//! rename the part file into the inbox (never over an existing name), fsync the inbox. A
//! crash before the marker leaves a part file that recovery deletes (the sender sends
//! again); a crash after it leaves a part file that recovery renames in, once its size and
//! hash (the suite's) are those the marker recorded (a part file changed on disk meanwhile
//! is never delivered: [`Pending::Damaged`], which the receiver quarantines); a resent
//! object whose marker exists is a duplicate and is never delivered twice. Recovery deletes every
//! other file of the staging folder (sealed copies, masked copies): never needed once the
//! part file is whole.
//!
//! A `messages` channel's batch never becomes a file of its own: it is appended to the
//! channel's message log (the `messages` module beside this one), which is its landing
//! record (no marker is written; the log answers a resend), and its staged copy is then
//! deleted; recovery deletes such copies, never renames them in. Only when the log's
//! retention forgets a batch does it get a marker here, so that a late resend is still a
//! duplicate.

use crate::core::id::ObjectId;
use crate::fsx::{rename_noreplace, sync_dir, write_durable};
use crate::keys::suite::Suite;
use crate::policy::extension;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Name of the staging directory inside each inbox (a dot name: applications ignore it).
pub const STAGING: &str = ".isogate-tmp";

/// Mode of the staging directory: only the node may reach content that is not yet
/// verified, inspected and landed (a refused object's bytes never sit where the inbox's
/// readers can open them).
const STAGING_MODE: u32 = 0o700;

/// What a marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Committed for delivery into the inbox.
    Landed,
    /// Received, then refused into quarantine (the content is in this node's quarantine).
    Quarantined,
    /// Refused before any content was read (name, size): the sender keeps the content.
    Refused,
}

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    outcome: Outcome,
    name: String,
    /// Bytes of the committed part file (markers of earlier versions have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    /// Hex of the committed part file's hash, in `suite` (SHA-256 or SM3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    /// The suite of `digest` (`default` or `gm`): the node's at the commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    suite: Option<String>,
}

/// What a landing's marker says was committed: the part file's size and hash, in the
/// hash's suite.
#[derive(Debug, Clone, Copy)]
struct Committed {
    size: u64,
    digest: [u8; 32],
    suite: Suite,
}

impl Marker {
    /// What it says was committed (`None` for a marker of an earlier version, which
    /// recorded neither size nor hash; the node's `suite` where it names none).
    ///
    /// # Errors
    /// Its record cannot be read (changed on disk): said in words, for the refusal.
    fn committed(&self, suite: Suite) -> Result<Option<Committed>, &'static str> {
        let (Some(size), Some(digest)) = (self.size, self.digest.as_deref()) else {
            return Ok(None);
        };
        let digest = hex::decode(digest)
            .ok()
            .and_then(|d| <[u8; 32]>::try_from(d).ok())
            .ok_or("its marker's hash cannot be read")?;
        let suite = match self.suite.as_deref() {
            None => suite,
            Some(name) => name
                .parse()
                .map_err(|_| "its marker names no known suite")?,
        };
        Ok(Some(Committed {
            size,
            digest,
            suite,
        }))
    }
}

/// What became of a part file left in the staging folder ([`Lander::finish_pending`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// There was none, or it was not committed and is deleted now (the sender sends the
    /// object again).
    None,
    /// Committed: renamed into the inbox now.
    Delivered {
        /// Where it was delivered.
        path: PathBuf,
        /// Its size and hash (in the marker's suite) as committed, where the marker
        /// recorded them (markers of earlier versions did not).
        committed: Option<(u64, [u8; 32])>,
    },
    /// Committed, but its size or hash is no longer what the marker recorded (changed on
    /// disk after its commit): not delivered, left where it is for the receiver to
    /// quarantine (`Lander::record` `Quarantined` after).
    Damaged(Damage),
}

/// A committed part file that is no longer what was committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The part file, still in the staging folder.
    pub part: PathBuf,
    /// The name it was to land under.
    pub name: String,
    /// What differs, for the refusal's detail (English).
    pub detail: String,
}

/// Delivery state of the receiving node.
pub struct Lander {
    markers: PathBuf,
}

impl Lander {
    /// Opens the delivery state under a node's state directory.
    pub fn open(state_dir: &Path) -> io::Result<Lander> {
        let markers = state_dir.join("landed");
        fs::create_dir_all(&markers)?;
        Ok(Lander { markers })
    }

    fn marker(&self, channel: &str, id: ObjectId) -> PathBuf {
        self.markers.join(channel).join(id.to_string())
    }

    /// The outcome already recorded for an object, if any.
    pub fn outcome(&self, channel: &str, id: ObjectId) -> io::Result<Option<Outcome>> {
        match fs::read(self.marker(channel, id)) {
            Ok(b) => Ok(serde_json::from_slice::<Marker>(&b).ok().map(|m| m.outcome)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The part file for an object in an inbox.
    pub fn part_path(inbox: &Path, id: ObjectId) -> PathBuf {
        inbox.join(STAGING).join(format!("{id}.part"))
    }

    /// The inbox's staging folder, made (mode 0700) if it is not there.
    ///
    /// # Errors
    /// It is a symbolic link or not a directory (named), or it cannot be made.
    pub(super) fn staging_dir(inbox: &Path) -> io::Result<PathBuf> {
        let dir = inbox.join(STAGING);
        check_staging(&dir)?;
        if !dir.is_dir() {
            fs::create_dir_all(inbox)?;
            match fs::DirBuilder::new().mode(STAGING_MODE).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Ok(dir)
    }

    /// Creates (or truncates) the part file for an object.
    pub(super) fn create_part(inbox: &Path, id: ObjectId) -> io::Result<(PathBuf, File)> {
        Self::staging_dir(inbox)?;
        let path = Self::part_path(inbox, id);
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        Ok((path, f))
    }

    /// Records the outcome of an object durably.
    pub(super) fn record(
        &self,
        channel: &str,
        id: ObjectId,
        outcome: Outcome,
        name: &str,
    ) -> io::Result<()> {
        self.write_marker(
            channel,
            id,
            &Marker {
                outcome,
                name: name.to_string(),
                size: None,
                digest: None,
                suite: None,
            },
        )
    }

    fn write_marker(&self, channel: &str, id: ObjectId, m: &Marker) -> io::Result<()> {
        let dir = self.markers.join(channel);
        fs::create_dir_all(&dir)?;
        write_durable(
            &self.marker(channel, id),
            &serde_json::to_vec(m).map_err(io::Error::other)?,
        )
    }

    /// Commits a complete, fsynced part file and delivers it under `name` (already checked
    /// as a plain base name). `digest` is the hash (in `suite`, the node's) of what the
    /// part file holds: the marker records it with the file's size, for recovery to check.
    /// Returns the delivered path. Only the receiver pipeline calls this, with a `Cleared`
    /// object (verified and inspected again) in hand.
    pub(super) fn land(
        &self,
        inbox: &Path,
        channel: &str,
        id: ObjectId,
        name: &str,
        digest: [u8; 32],
        suite: Suite,
    ) -> io::Result<PathBuf> {
        let part = Self::part_path(inbox, id);
        let size = fs::metadata(&part)?.len();
        self.write_marker(
            channel,
            id,
            &Marker {
                outcome: Outcome::Landed,
                name: name.to_string(),
                size: Some(size),
                digest: Some(hex::encode(digest)),
                suite: Some(suite.name().to_string()),
            },
        )?;
        deliver(&part, inbox, name)
    }

    /// Finishes deliveries a crash interrupted and deletes uncommitted part files, and
    /// every other file of the staging folder: sealed copies ([`super::staged`]), masked
    /// copies. Returns what became of each committed part file found
    /// ([`Lander::finish_pending`]; `suite` is the node's), in no particular order.
    pub fn recover(
        &self,
        inbox: &Path,
        channel: &str,
        suite: Suite,
    ) -> io::Result<Vec<(ObjectId, Pending)>> {
        let dir = inbox.join(STAGING);
        check_staging(&dir)?;
        let mut done = Vec::new();
        // made by an earlier version with the default mode: closed to the inbox's readers
        if let Ok(m) = fs::metadata(&dir)
            && m.permissions().mode() & 0o777 != STAGING_MODE
        {
            fs::set_permissions(&dir, fs::Permissions::from_mode(STAGING_MODE))?;
        }
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(done),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            let id = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".part"))
                .and_then(ObjectId::parse);
            let Some(id) = id else {
                fs::remove_file(&path)?;
                continue;
            };
            match self.finish_pending(inbox, channel, id, suite) {
                Ok(Pending::None) => {}
                Ok(p) => done.push((id, p)),
                // one object that cannot be delivered must not stop the node
                Err(e) => {
                    tracing::error!(object = %id, inbox = %inbox.display(), error = %e, "cannot finish a delivery; it stays in the staging area")
                }
            }
        }
        Ok(done)
    }

    /// Deletes every part file (and any other leftover) in an inbox's staging folder: the
    /// recovery of a `messages` channel, whose part files are never renamed into the
    /// inbox (a batch lands by its append to the message log, before its marker; a part
    /// file left behind is either landed already or sent again, and the log drops the
    /// copy). Returns how many files were deleted.
    pub fn discard_parts(inbox: &Path) -> io::Result<usize> {
        let dir = inbox.join(STAGING);
        check_staging(&dir)?;
        if let Ok(m) = fs::metadata(&dir)
            && m.permissions().mode() & 0o777 != STAGING_MODE
        {
            fs::set_permissions(&dir, fs::Permissions::from_mode(STAGING_MODE))?;
        }
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut n = 0;
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                fs::remove_file(entry.path())?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Deletes the part file and the sealed copy of one object, where they are: a batch of
    /// a `messages` channel (never renamed into the inbox: see [`Lander::discard_parts`]),
    /// or an uncommitted release from the quarantine.
    pub fn discard_part(inbox: &Path, id: ObjectId) -> io::Result<()> {
        let sealed = inbox
            .join(STAGING)
            .join(format!("{id}{}", super::staged::SEALED_SUFFIX));
        for path in [Self::part_path(inbox, id), sealed] {
            match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// If an object was committed but its part file was not yet renamed in, delivers it,
    /// once it is still a plain file with one link, of the size and hash its marker
    /// recorded (in the marker's suite, else `suite`, the node's); else leaves it for
    /// quarantine ([`Pending::Damaged`]). A marker of an earlier
    /// version, without them, delivers as it is. An uncommitted part file is deleted.
    ///
    /// # Errors
    /// Reading, hashing, renaming or syncing failed.
    pub fn finish_pending(
        &self,
        inbox: &Path,
        channel: &str,
        id: ObjectId,
        suite: Suite,
    ) -> io::Result<Pending> {
        let part = Self::part_path(inbox, id);
        // whatever is there, a dangling link included
        if fs::symlink_metadata(&part).is_err() {
            return Ok(Pending::None);
        }
        // a marker that cannot be read now (not one that is missing or not its JSON) keeps
        // the part file for the next try: it may say the object is committed
        let marker = match fs::read(self.marker(channel, id)) {
            Ok(b) => serde_json::from_slice::<Marker>(&b).ok(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        match marker {
            Some(m) if m.outcome == Outcome::Landed => {
                let damaged = |detail: String| {
                    Pending::Damaged(Damage {
                        part: part.clone(),
                        name: m.name.clone(),
                        detail,
                    })
                };
                let committed = match m.committed(suite) {
                    Ok(c) => c,
                    Err(why) => return Ok(damaged(format!("{CHANGED}: {why}"))),
                };
                if let Some(detail) = changed(&part, committed.as_ref())? {
                    return Ok(damaged(detail));
                }
                // for the record, which names the hash of the node's suite
                let committed = committed
                    .filter(|c| c.suite == suite)
                    .map(|c| (c.size, c.digest));
                deliver(&part, inbox, &m.name).map(|path| Pending::Delivered { path, committed })
            }
            Some(_) => {
                fs::remove_file(&part)?;
                Ok(Pending::None)
            }
            None => {
                // never committed (the sender sends it again), or its marker cannot be read
                if self.marker(channel, id).exists() {
                    tracing::warn!(object = %id, marker = %self.marker(channel, id).display(), "a delivery marker cannot be read; its part file is deleted and the object is taken as not committed");
                }
                fs::remove_file(&part)?;
                Ok(Pending::None)
            }
        }
    }
}

/// Refuses a staging folder that is a symbolic link (the node would write where the link
/// points) or anything but a directory, naming it; one that does not exist yet is fine.
fn check_staging(dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(m) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{}: the inbox's staging folder is {}, not a directory: move it aside; the node makes the folder itself",
                dir.display(),
                if m.file_type().is_symlink() {
                    "a symbolic link"
                } else {
                    "a file"
                }
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Why a committed part file is not delivered, before what differs.
const CHANGED: &str = "its part file changed on disk after the landing was committed";

/// What differs between a committed part file and what was `committed`, if anything: what
/// it is (a plain file with one link, looked at without following a link), its size (no
/// read), then its hash, read through the descriptor looked at. A file that passes is
/// never left wider than a landing.
fn changed(part: &Path, committed: Option<&Committed>) -> io::Result<Option<String>> {
    let mut f = match crate::fsx::open_nofollow(part) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Ok(Some(format!("{CHANGED}: it is a symbolic link")));
        }
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    if !meta.is_file() || meta.nlink() != 1 {
        return Ok(Some(format!(
            "{CHANGED}: it is no longer a plain file with one link"
        )));
    }
    // delivered never wider than a landing: no set-id, sticky or exec bits, never
    // writable by others
    let mode = meta.mode() & 0o7777;
    if mode & !0o664 != 0 {
        f.set_permissions(fs::Permissions::from_mode(mode & 0o664))?;
    }
    let Some(c) = committed else {
        return Ok(None);
    };
    let size = meta.len();
    if size != c.size {
        return Ok(Some(format!(
            "{CHANGED}: {size} bytes, {} committed",
            c.size
        )));
    }
    let (got, _) =
        crate::core::digest::hash_content(&mut f, crate::core::manifest::CHUNK_SIZE, c.suite)?;
    Ok((got != c.digest).then(|| {
        format!(
            "{CHANGED}: {} {}, {} committed",
            c.suite.hash(),
            hex::encode(got),
            hex::encode(c.digest)
        )
    }))
}

/// The name a delivery of `name` into `inbox` would take now (the first free numbering).
pub fn first_free(inbox: &Path, name: &str) -> String {
    (1u32..10_000)
        .map(|n| numbered(name, n))
        .find(|c| fs::symlink_metadata(inbox.join(c)).is_err())
        .unwrap_or_else(|| name.to_string())
}

/// Renames `part` into `inbox` as `name`, or as `name (2).ext`, `name (3).ext`, … when the
/// name is taken: never overwriting. Fsyncs the inbox.
fn deliver(part: &Path, inbox: &Path, name: &str) -> io::Result<PathBuf> {
    for n in 1u32..10_000 {
        let candidate = inbox.join(numbered(name, n));
        match rename_noreplace(part, &candidate) {
            Ok(()) => {
                sync_dir(inbox)?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("too many files named {name:?} in the inbox"),
    ))
}

/// Longest file name the inbox's file system takes, in bytes.
const NAME_MAX: usize = 255;

/// `name` for n = 1, else the stem with " (n)" before the extension, the stem shortened
/// (at a character boundary) so that the whole stays within `NAME_MAX` bytes.
pub fn numbered(name: &str, n: u32) -> String {
    if n == 1 {
        return name.to_string();
    }
    let (stem, ext) = match extension(name) {
        Some(_) => name
            .rsplit_once('.')
            .map(|(s, e)| (s, format!(".{e}")))
            .unwrap_or((name, String::new())),
        None => (name, String::new()),
    };
    let suffix = format!(" ({n}){ext}");
    let mut keep = NAME_MAX.saturating_sub(suffix.len()).min(stem.len());
    while !stem.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{suffix}", &stem[..keep])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn lands_without_overwriting() {
        let t = tempfile::tempdir().unwrap();
        let inbox = t.path().join("inbox");
        fs::create_dir_all(&inbox).unwrap();
        fs::write(inbox.join("a.txt"), b"old").unwrap();
        let lander = Lander::open(&t.path().join("state")).unwrap();
        let id = ObjectId([1; 16]);
        let (_, mut f) = Lander::create_part(&inbox, id).unwrap();
        f.write_all(b"new").unwrap();
        let p = lander
            .land(
                &inbox,
                "c",
                id,
                "a.txt",
                crate::keys::suite::digest(Suite::Default, b"new"),
                Suite::Default,
            )
            .unwrap();
        assert_eq!(p, inbox.join("a (2).txt"));
        assert_eq!(fs::read(inbox.join("a.txt")).unwrap(), b"old");
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(lander.outcome("c", id).unwrap(), Some(Outcome::Landed));
        assert_eq!(numbered("noext", 3), "noext (3)");
        let long = format!("{}.pdf", "长".repeat(84)); // 256 bytes
        let n = numbered(&long, 12);
        assert!(n.len() <= 255 && n.ends_with(" (12).pdf"), "{n}");
    }

    #[test]
    fn messages_recovery_never_renames_a_part_in() {
        let t = tempfile::tempdir().unwrap();
        let inbox = t.path().join("inbox");
        let lander = Lander::open(&t.path().join("state")).unwrap();
        let id = ObjectId([3; 16]);
        Lander::create_part(&inbox, id)
            .unwrap()
            .1
            .write_all(b"{}")
            .unwrap();
        Lander::create_part(&inbox, ObjectId([4; 16])).unwrap();
        fs::write(inbox.join(STAGING).join("x.ndjson.tmp"), b"{").unwrap();
        lander.record("m", id, Outcome::Landed, "b.ndjson").unwrap();
        assert_eq!(Lander::discard_parts(&inbox).unwrap(), 3);
        assert_eq!(fs::read_dir(inbox.join(STAGING)).unwrap().count(), 0);
        assert!(!inbox.join("b.ndjson").exists());
        Lander::create_part(&inbox, id).unwrap();
        Lander::discard_part(&inbox, id).unwrap();
        Lander::discard_part(&inbox, id).unwrap();
        assert!(!Lander::part_path(&inbox, id).exists());
        assert_eq!(Lander::discard_parts(&t.path().join("none")).unwrap(), 0);
    }

    #[test]
    fn recovery_finishes_committed_and_drops_uncommitted() {
        let t = tempfile::tempdir().unwrap();
        let inbox = t.path().join("inbox");
        fs::create_dir_all(&inbox).unwrap();
        let lander = Lander::open(&t.path().join("state")).unwrap();
        let committed = ObjectId([1; 16]);
        let partial = ObjectId([2; 16]);
        Lander::create_part(&inbox, committed)
            .unwrap()
            .1
            .write_all(b"c")
            .unwrap();
        Lander::create_part(&inbox, partial)
            .unwrap()
            .1
            .write_all(b"p")
            .unwrap();
        // the bytes in staging are the node's alone
        let mode = fs::metadata(inbox.join(STAGING))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, STAGING_MODE);
        // crash after the marker, before the rename
        lander
            .record("c", committed, Outcome::Landed, "done.txt")
            .unwrap();
        let delivered = lander.recover(&inbox, "c", Suite::Default).unwrap();
        assert_eq!(
            delivered,
            vec![(
                committed,
                Pending::Delivered {
                    path: inbox.join("done.txt"),
                    committed: None
                }
            )]
        );
        assert!(!Lander::part_path(&inbox, partial).exists());
        // a second recovery delivers nothing more
        assert!(
            lander
                .recover(&inbox, "c", Suite::Default)
                .unwrap()
                .is_empty()
        );
        let names: Vec<_> = fs::read_dir(&inbox)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}"); // done.txt and the staging dir
    }

    /// Commits a part file as `land` does, without its rename (the crash between).
    fn commit(lander: &Lander, inbox: &Path, id: ObjectId, bytes: &[u8], suite: Suite) {
        Lander::create_part(inbox, id)
            .unwrap()
            .1
            .write_all(bytes)
            .unwrap();
        lander
            .write_marker(
                "c",
                id,
                &Marker {
                    outcome: Outcome::Landed,
                    name: format!("{id}.txt"),
                    size: Some(bytes.len() as u64),
                    digest: Some(hex::encode(crate::keys::suite::digest(suite, bytes))),
                    suite: Some(suite.name().into()),
                },
            )
            .unwrap();
    }

    #[test]
    fn recovery_never_delivers_a_committed_part_file_changed_on_disk() {
        for suite in Suite::ALL {
            let t = tempfile::tempdir().unwrap();
            let inbox = t.path().join("inbox");
            let lander = Lander::open(&t.path().join("state")).unwrap();
            let (whole, cut, flipped) = (ObjectId([1; 16]), ObjectId([2; 16]), ObjectId([3; 16]));
            for id in [whole, cut, flipped] {
                commit(&lander, &inbox, id, b"committed content", suite);
            }
            // delivered never wider than a landing: no set-id bits, no write by others
            fs::set_permissions(
                Lander::part_path(&inbox, whole),
                fs::Permissions::from_mode(0o6777),
            )
            .unwrap();
            OpenOptions::new()
                .write(true)
                .open(Lander::part_path(&inbox, cut))
                .unwrap()
                .set_len(4)
                .unwrap();
            fs::write(Lander::part_path(&inbox, flipped), b"committed CONTENT").unwrap();
            let mut got = lander.recover(&inbox, "c", suite).unwrap();
            got.sort_by_key(|(id, _)| *id);
            assert_eq!(got.len(), 3, "{got:?}");
            assert_eq!(
                got[0],
                (
                    whole,
                    Pending::Delivered {
                        path: inbox.join(format!("{whole}.txt")),
                        committed: Some((
                            17,
                            crate::keys::suite::digest(suite, b"committed content")
                        ))
                    }
                )
            );
            let mode = fs::metadata(inbox.join(format!("{whole}.txt")))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o7777, 0o664);
            for ((id, p), what) in got[1..].iter().zip(["4 bytes, 17 committed", suite.hash()]) {
                let Pending::Damaged(d) = p else {
                    panic!("{id}: {p:?}")
                };
                assert_eq!(d.part, Lander::part_path(&inbox, *id));
                assert_eq!(d.name, format!("{id}.txt"));
                assert!(d.detail.contains(what), "{}", d.detail);
                // left in place, never in the inbox
                assert!(d.part.exists());
                assert!(!inbox.join(&d.name).exists());
            }
            // checked with the suite recorded at the commit, whatever the node's is now
            let other = Suite::ALL.into_iter().find(|s| *s != suite).unwrap();
            let id = ObjectId([4; 16]);
            commit(&lander, &inbox, id, b"x", suite);
            assert!(matches!(
                lander.finish_pending(&inbox, "c", id, other).unwrap(),
                Pending::Delivered { .. }
            ));
            // what is no longer a plain file with one link is never renamed in
            let (linked, hard) = (ObjectId([5; 16]), ObjectId([6; 16]));
            commit(&lander, &inbox, linked, b"y", suite);
            let target = t.path().join("elsewhere");
            fs::write(&target, b"y").unwrap();
            fs::remove_file(Lander::part_path(&inbox, linked)).unwrap();
            std::os::unix::fs::symlink(&target, Lander::part_path(&inbox, linked)).unwrap();
            commit(&lander, &inbox, hard, b"z", suite);
            fs::hard_link(Lander::part_path(&inbox, hard), t.path().join("second")).unwrap();
            let dangling = ObjectId([7; 16]);
            commit(&lander, &inbox, dangling, b"w", suite);
            fs::remove_file(Lander::part_path(&inbox, dangling)).unwrap();
            std::os::unix::fs::symlink(t.path().join("gone"), Lander::part_path(&inbox, dangling))
                .unwrap();
            for (id, what) in [
                (linked, "symbolic link"),
                (hard, "one link"),
                (dangling, "symbolic link"),
            ] {
                let Pending::Damaged(d) = lander.finish_pending(&inbox, "c", id, suite).unwrap()
                else {
                    panic!("{id}")
                };
                assert!(d.detail.contains(what), "{}", d.detail);
            }
        }
    }

    #[test]
    fn a_staging_folder_that_is_a_link_or_a_file_is_refused_by_name() {
        let t = tempfile::tempdir().unwrap();
        let lander = Lander::open(&t.path().join("state")).unwrap();
        let elsewhere = t.path().join("elsewhere");
        fs::create_dir_all(&elsewhere).unwrap();
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o755)).unwrap();
        for (inbox, what) in [("linked", "a symbolic link"), ("filed", "a file")] {
            let inbox = t.path().join(inbox);
            fs::create_dir_all(&inbox).unwrap();
            if what == "a file" {
                fs::write(inbox.join(STAGING), b"").unwrap();
            } else {
                std::os::unix::fs::symlink(&elsewhere, inbox.join(STAGING)).unwrap();
            }
            let e = lander.recover(&inbox, "c", Suite::Default).unwrap_err();
            assert!(
                e.to_string()
                    .contains(&format!("{}", inbox.join(STAGING).display()))
                    && e.to_string().contains(what),
                "{e}"
            );
            assert!(Lander::create_part(&inbox, ObjectId([1; 16])).is_err());
            assert!(Lander::discard_parts(&inbox).is_err());
        }
        // nothing was made or changed where the link points
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
        let mode = fs::metadata(&elsewhere).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
    }
}
