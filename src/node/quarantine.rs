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
//! copied in from the bytes read, made read-only (0400) and fsynced, and only then is the
//! original removed, so a process that still holds the original open writes into a file
//! nobody keeps. With the node's data keys (`[node] data_key`) the copy is sealed as it is
//! written (`keys::at_rest`, bound to its object id), and only a sealed copy is ever read
//! back. Anything else (a symlink, FIFO, device, directory, hard-linked file) is
//! renamed in as it is, never followed; where the quarantine is on another file system than
//! the entry, it is made again there as it is ([`crate::fsx::move_across`]) and then removed.
//!
//! The officer's side of it, read without the node ([`list`], [`find`]) and changed only by
//! the running node ([`purge`], and a release: `node::desk`):
//!
//! ```text
//! quarantine/<channel>/*.reason.json ─► list() ─► Listed (what, why, when, kind, size,
//!                                        │        │   at_rest: from the copy's header)
//!                                        │        └─► releasable(): plain file, content
//!                                        │            reason, not an integrity failure
//!                                        │            releasable_by(seals): and at rest as
//!                                        │            the node would open it
//!                                        └─► purge(): entry, then reason file, dir fsynced
//! ```

use crate::core::id::ObjectId;
use crate::core::reason::{Reason, Refusal, Side};
use crate::fsx::{open_nofollow, rename_noreplace, sync_dir, write_durable_mode};
use crate::keys::at_rest::{self, DataKeys, OpenReader, SealWriter};
use serde::{Deserialize, Serialize};
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Seek, Write};
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

/// What a refusal holds for the quarantine.
#[derive(Debug, Clone, Copy)]
pub enum Held<'a> {
    /// An entry on disk (outbox entry, spool content or part file), moved in.
    Entry(&'a Path),
    /// Bytes held in memory (a refused message's body), written in without ever resting
    /// anywhere else on disk.
    Bytes(&'a [u8]),
    /// Content sealed at rest for `context` (a spool entry's, or a receiver's staged copy):
    /// read through the data keys, copied in (sealed again, for its quarantine name), then
    /// removed. A sealed copy that does not open (changed on disk) is moved in as it is: it
    /// never opens there either, and is never released.
    Stored {
        /// The content file.
        path: &'a Path,
        /// What its sealing is bound to.
        context: &'a [u8],
    },
}

/// Writes the reason file of `<id>` in the channel's quarantine, durably, then puts
/// `held` (if any) in as `<id>`: bytes are written in, and a plain entry with one link is
/// copied in, read-only, then removed; any other entry is renamed, never read or followed.
/// Done again after a crash, it keeps the copy already in. Returns the quarantined path.
pub fn put(
    dir: &Path,
    subject: &Subject<'_>,
    held: Option<Held<'_>>,
    node: &str,
    side: Side,
    refusal: &Refusal,
    sealing: Option<&DataKeys>,
) -> io::Result<PathBuf> {
    let Subject { id, channel, name } = *subject;
    std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), DIR_MODE)
        .create(dir)?;
    let target = dir.join(id.to_string());
    // the reason file first: a crash before the content is in leaves an entry listed
    // without content (and its source where it was, put in again when the refusal is
    // repeated), never content that no listing shows
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
    if let Some(Held::Bytes(bytes)) = held {
        write_in(dir, &mut &bytes[..], &target, sealing)?;
    }
    let entry = match held {
        Some(Held::Entry(path)) => Some((path, None)),
        Some(Held::Stored { path, context }) => Some((path, Some(context))),
        _ => None,
    };
    if let Some((entry, stored)) = entry {
        let plain = match fs::symlink_metadata(entry) {
            Ok(m) => m.file_type().is_file() && m.nlink() == 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        let moved = if plain {
            match copy_in(dir, entry, stored, &target, sealing) {
                Err(e) if at_rest::is_tampered(&e) => {
                    tracing::warn!(entry = %entry.display(), error = %e, "a sealed copy that does not open is quarantined as it is");
                    crate::fsx::move_across(entry, &target).map(|_| ())
                }
                copied => copied,
            }
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
    sync_dir(dir)?;
    Ok(target)
}

/// Copies a plain file into quarantine as `target` ([`write_in`]), then removes the
/// original. With `stored` (its context), the file is sealed at rest and read through
/// `sealing`'s keys.
fn copy_in(
    dir: &Path,
    entry: &Path,
    stored: Option<&[u8]>,
    target: &Path,
    sealing: Option<&DataKeys>,
) -> io::Result<()> {
    let from = open_nofollow(entry)?;
    match stored {
        Some(context) => {
            let keys = sealing.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "sealed at rest, and this node has no data key",
                )
            })?;
            let mut from = at_rest::SealedFile::open(keys, from, context)?;
            write_in(dir, &mut from, target, sealing)?;
        }
        None => write_in(dir, &mut &from, target, sealing)?,
    }
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

/// Writes what `from` reads into quarantine as `target`: sealed with `sealing`'s key where
/// there is one, read-only, fsynced, never replacing an earlier copy of the same object.
fn write_in(
    dir: &Path,
    from: &mut dyn Read,
    target: &Path,
    sealing: Option<&DataKeys>,
) -> io::Result<()> {
    let tmp = dir.join(format!(
        ".{}.part",
        target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("copy")
    ));
    let written = (|| {
        let mut to = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        match sealing {
            Some(keys) => {
                let out = io::BufWriter::new(&mut to);
                let mut sealed = SealWriter::new(keys, out, &context(target))?;
                io::copy(from, &mut sealed)?;
                sealed.finish()?.flush()?;
            }
            None => {
                io::copy(from, &mut to)?;
            }
        }
        to.set_permissions(fs::Permissions::from_mode(COPY_MODE))?;
        to.sync_all()
    })();
    if let Err(e) = written {
        // a source that failed part-way (a sealed chunk that does not open): nothing kept
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    match rename_noreplace(&tmp, target) {
        Ok(()) => {}
        // an earlier run copied it and stopped before removing the original
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => fs::remove_file(&tmp)?,
        Err(e) => return Err(e),
    }
    sync_dir(dir)
}

/// The quarantine folder of objects whose manifest could not be trusted (no channel).
pub const UNVERIFIED: &str = "_unverified";

/// Suffix of a reason file.
pub const REASON_SUFFIX: &str = ".reason.json";

/// Largest reason file read (bytes): a larger one is listed as unreadable.
const MAX_REASON_BYTES: u64 = 64 * 1024;

/// Most entries [`list`] returns (bounded memory); more are left for a later listing.
pub const MAX_LISTED: usize = 100_000;

/// The reason file as read back.
#[derive(Debug, Deserialize)]
struct ReadReason {
    #[serde(default)]
    name: String,
    #[serde(default)]
    node: String,
    #[serde(default)]
    side: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    time_ms: u64,
}

/// What a quarantine entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A plain file with one link: the refused content.
    File,
    /// A symbolic link, kept as it was (never followed).
    Symlink,
    /// A directory, kept as it was.
    Directory,
    /// A FIFO, socket, device or hard-linked file, kept as it was.
    Other,
    /// No content: refused before any was read (or never trusted); the reason file only.
    None,
}

impl Kind {
    /// The stable name (`file`, `symlink`, `directory`, `other`, `none`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Symlink => "symlink",
            Kind::Directory => "directory",
            Kind::Other => "other",
            Kind::None => "none",
        }
    }
}

/// One quarantine entry, as its reason file and its content describe it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// The channel folder it is in (`_unverified` for objects whose manifest was not trusted).
    pub channel: String,
    /// The object id (32 hex digits).
    pub object_id: String,
    /// The object's name as given (never used as a path).
    pub name: String,
    /// The node that refused it.
    pub node: String,
    /// Which side refused it: `sender` or `receiver`.
    pub side: String,
    /// The reason code.
    pub reason: String,
    /// The reason's detail.
    pub detail: String,
    /// When it was refused (ms since the Unix epoch).
    pub time_ms: u64,
    /// What the entry holds.
    pub kind: Kind,
    /// Size of the content in bytes (a plain file only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// How the content rests on disk (a plain file only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_rest: Option<AtRest>,
    /// The content's path (present or not).
    #[serde(skip)]
    pub path: PathBuf,
    /// The reason file's path.
    #[serde(skip)]
    pub reason_path: PathBuf,
}

/// The reason code listed for an entry whose reason file cannot be read.
const UNREADABLE: &str = "unreadable";

/// How a quarantined copy rests on disk, read from its first bytes without any key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AtRest {
    /// Kept in plaintext (before the node had a data key, or put there by hand).
    Plaintext,
    /// Sealed ([`crate::keys::at_rest`]) with `cipher` under the data key `key` (8 hex
    /// digits, its id in the data key file).
    Sealed {
        /// The cipher: `AES-256-GCM` or `SM4-GCM`.
        cipher: &'static str,
        /// The data key's id.
        key: String,
    },
    /// Begins as a sealed file, with a header this version never writes (changed on
    /// disk): it never opens.
    BadHeader,
}

impl std::fmt::Display for AtRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AtRest::Plaintext => f.write_str("plaintext"),
            AtRest::Sealed { cipher, key } => write!(f, "sealed with {cipher}, data key {key}"),
            AtRest::BadHeader => f.write_str(BAD_HEADER),
        }
    }
}

/// Why an entry cannot be released.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReleasable {
    /// The entry is not a plain file (a symlink, FIFO, device, directory or hard-linked
    /// file): such an entry never crosses.
    #[error("it is a {0}, not a plain file: only plain files are ever released")]
    NotPlain(&'static str),
    /// No content is kept: refused before it was read, or its manifest was never trusted.
    #[error("no content is kept for it (refused before its content was read)")]
    NoContent,
    /// Refused because the object's integrity failed (signature, hash, size, wire): what
    /// arrived is not what the sender signed, and no officer can make it so.
    #[error(
        "refused for an integrity reason ({0}): what arrived is not what the sender signed; it is never releasable (the sender publishes it again)"
    )]
    Integrity(String),
    /// The name could not be read as UTF-8: it cannot cross under its own name.
    #[error("its name is not valid UTF-8: rename it and publish it again")]
    Name,
    /// Refused for its release approvals (`approval_missing`), or arrived on a channel whose
    /// policy requires them: the approvals travel in the manifest and cannot be checked
    /// again from a quarantined copy.
    #[error(
        "{0}: its approvals cannot be checked again from a quarantined copy; never releasable here (the sender sends it again with its approvals)"
    )]
    Approval(String),
    /// A message or a batch of a messages channel that the receiving node refused:
    /// released, it would land as a file in the inbox, where no reader of the channel's
    /// message log sees it.
    #[error(
        "channel {0} carries messages: a message or batch refused here is never released as a file into the inbox, where the channel's readers (the message log, its API and NATS delivery) never see it; read it with `isogate quarantine show` (a batch: one JSON line per message) and post it again"
    )]
    MessageBatch(String),
    /// Its reason file cannot be read (missing, not a plain file, too large, not its
    /// JSON): why it was refused is not known, so it is never released.
    #[error(
        "its reason file cannot be read (missing, not a plain file, over 64 KiB or not its JSON): why it was refused is not known, so it is never released"
    )]
    ReasonFile,
    /// The copy's state at rest does not fit the node's: kept in plaintext where the node
    /// seals (it cannot be told from one put there by hand), or sealed where the node has
    /// no data key.
    #[error("{0}")]
    AtRest(&'static str),
}

/// The reasons that say what arrived is not what the sender signed: never released.
/// (`peer_refused` is not one of them: the receiving node refused the object by its name or
/// size before reading it; the sender's copy may be released, and the receiver checks again.)
const INTEGRITY: [Reason; 6] = [
    Reason::BadSignature,
    Reason::BadManifest,
    Reason::WrongChannel,
    Reason::ChunkHash,
    Reason::ContentHash,
    Reason::SizeMismatch,
];

/// The reasons that say what the entry is rather than what it holds: never released.
const NOT_PLAIN: [(Reason, &str); 3] = [
    (Reason::Symlink, "symlink"),
    (Reason::HardLink, "hard-linked file"),
    (Reason::NotRegularFile, "directory, FIFO, socket or device"),
];

/// Whether entry `id` of the quarantine `dir` holds something other than `bytes`: its
/// reason file or content exists, and its content is not `bytes` (read through `keys`
/// where sealed; an entry without content yet, a crash between its reason file and its
/// content, holds nothing other).
///
/// # Errors
/// The entry exists but cannot be read.
pub fn holds_other(
    dir: &Path,
    id: ObjectId,
    bytes: &[u8],
    keys: Option<&DataKeys>,
) -> io::Result<bool> {
    let content = dir.join(id.to_string());
    let mut held = match open_content(&content, keys) {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(true),
        Err(e) => return Err(e),
    };
    let mut read = Vec::with_capacity(bytes.len());
    (&mut held)
        .take(bytes.len() as u64 + 1)
        .read_to_end(&mut read)?;
    Ok(read != bytes)
}

/// Opens an entry's content to copy it out (a release): never following a link, and only a
/// plain file with one link, checked on the opened descriptor (what is read is what was
/// checked, whatever is renamed in meanwhile). With `keys` (the node seals its quarantine)
/// only a copy sealed for this entry opens, read chunk by chunk, each checked; without, only
/// a plaintext one.
///
/// # Errors
/// It cannot be opened, or it is not a plain file with one link (`InvalidData`).
pub fn open_content(path: &Path, keys: Option<&DataKeys>) -> io::Result<Content> {
    let mut f = open_nofollow(path)?;
    let m = f.metadata()?;
    if !m.is_file() || m.nlink() != 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: not a plain file with one link ({} links): never released",
                path.display(),
                m.nlink()
            ),
        ));
    }
    let head = read_head(&mut f, at_rest::MAGIC.len())?;
    f.seek(io::SeekFrom::Start(0))?;
    let refuse = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {why}", path.display()),
        )
    };
    match (at_rest::is_sealed(&head), keys) {
        (false, None) => Ok(Content::Plain(f)),
        (false, Some(_)) => Err(refuse(PLAIN_WHILE_SEALING)),
        (true, None) => Err(refuse(SEALED_WITHOUT_KEY)),
        (true, Some(keys)) => Ok(Content::Sealed(Box::new(OpenReader::new(
            keys,
            f,
            &context(path),
        )?))),
    }
}

/// What a quarantined copy is sealed for: its name (the object id), so that a sealed copy
/// moved over another entry's name does not open.
fn context(path: &Path) -> Vec<u8> {
    let mut c = b"quarantine/".to_vec();
    c.extend_from_slice(path.file_name().unwrap_or_default().as_encoded_bytes());
    c
}

/// The first `len` bytes of `f` (fewer when it is shorter).
fn read_head(f: &mut fs::File, len: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(len);
    f.take(len as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// A quarantined copy's content as it was refused: read through the data keys when it
/// was sealed at rest (each chunk checked; a changed one is an error, never returned), as
/// it is when it was kept before the node had a data key.
pub enum Content {
    /// Kept in plaintext.
    Plain(fs::File),
    /// Sealed at rest.
    Sealed(Box<OpenReader<fs::File>>),
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Content::Plain(_) => "Content::Plain",
            Content::Sealed(_) => "Content::Sealed",
        })
    }
}

impl Read for Content {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Content::Plain(f) => f.read(buf),
            Content::Sealed(r) => r.read(buf),
        }
    }
}

impl Listed {
    /// Whether an officer may release the entry: a plain file refused for a content
    /// reason. A release is never an override: the entry crosses through the full policy of
    /// both nodes again.
    ///
    /// # Errors
    /// [`NotReleasable`]: why not.
    pub fn releasable(&self) -> Result<(), NotReleasable> {
        if self.reason == UNREADABLE {
            return Err(NotReleasable::ReasonFile);
        }
        let integrity = self.channel == UNVERIFIED
            || INTEGRITY.iter().any(|r| r.as_str() == self.reason)
            || Reason::ALL.iter().all(|r| r.as_str() != self.reason);
        if integrity {
            return Err(NotReleasable::Integrity(self.reason.clone()));
        }
        // what it is, not what it holds: whatever the entry looks like now (a hard link's
        // other name may have gone since), such an entry never crosses
        if let Some((_, what)) = NOT_PLAIN.iter().find(|(r, _)| r.as_str() == self.reason) {
            return Err(NotReleasable::NotPlain(what));
        }
        if self.reason == Reason::ApprovalMissing.as_str() {
            return Err(NotReleasable::Approval(format!(
                "refused as {}",
                self.reason
            )));
        }
        match self.kind {
            Kind::File => {}
            Kind::None => return Err(NotReleasable::NoContent),
            Kind::Other => {
                return Err(NotReleasable::NotPlain(
                    "hard-linked file, FIFO, socket or device",
                ));
            }
            other => return Err(NotReleasable::NotPlain(other.as_str())),
        }
        if self.reason == Reason::NameNotUtf8.as_str() {
            return Err(NotReleasable::Name);
        }
        Ok(())
    }

    /// [`Listed::releasable`] on a node that seals its quarantine at rest (`seals`: it has
    /// a data key) or not: a copy kept in plaintext where the node seals, or sealed where
    /// it has none, is not releasable either (as [`open_content`] would refuse it). A copy
    /// sealed under a key the node no longer loads is only found out by the release.
    ///
    /// # Errors
    /// [`NotReleasable`]: why not.
    pub fn releasable_by(&self, seals: bool) -> Result<(), NotReleasable> {
        self.releasable()?;
        match (&self.at_rest, seals) {
            (Some(AtRest::Plaintext), true) => Err(NotReleasable::AtRest(PLAIN_WHILE_SEALING)),
            (Some(AtRest::Sealed { .. }), false) => Err(NotReleasable::AtRest(SEALED_WITHOUT_KEY)),
            (Some(AtRest::BadHeader), _) => Err(NotReleasable::AtRest(BAD_HEADER)),
            _ => Ok(()),
        }
    }
}

/// Why a plaintext copy is not released by a node that seals.
const PLAIN_WHILE_SEALING: &str = "kept in plaintext, and this node seals its quarantine at rest: a plaintext copy cannot be told from one put there by hand, so it is never released";
/// Why a copy whose sealed header was changed is never released.
const BAD_HEADER: &str =
    "sealed, with a header this version never writes (changed on disk): it never opens";
/// Why a sealed copy is not released by a node without a data key.
const SEALED_WITHOUT_KEY: &str = "sealed at rest, and the node has no data key ([node] data_key)";

/// Every quarantine entry under the given quarantine folders (`quarantine/<channel>`),
/// oldest first; at most [`MAX_LISTED`]. A folder that does not exist holds none; an
/// unreadable reason file is listed with reason `unreadable`.
///
/// # Errors
/// A folder exists but cannot be read.
pub fn list(dirs: &[PathBuf]) -> io::Result<Vec<Listed>> {
    let mut out = Vec::new();
    for dir in dirs {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
        };
        for e in entries {
            let e = e?;
            let file = e.file_name();
            let Some(id) = file.to_str().and_then(|n| n.strip_suffix(REASON_SUFFIX)) else {
                continue;
            };
            if ObjectId::parse(id).is_none() {
                continue;
            }
            if out.len() >= MAX_LISTED {
                break;
            }
            out.push(read_listed(dir, id));
        }
    }
    out.sort_by(|a, b| (a.time_ms, &a.object_id).cmp(&(b.time_ms, &b.object_id)));
    Ok(out)
}

/// The entry whose object id is `id` (32 hex digits, any case).
///
/// # Errors
/// A folder cannot be read.
pub fn find(dirs: &[PathBuf], id: &str) -> io::Result<Option<Listed>> {
    let id = id.trim().to_ascii_lowercase();
    if ObjectId::parse(&id).is_none() {
        return Ok(None);
    }
    for dir in dirs {
        if dir.join(format!("{id}{REASON_SUFFIX}")).exists() {
            return Ok(Some(read_listed(dir, &id)));
        }
    }
    Ok(None)
}

/// The size of a quarantined copy's content and how it rests: of the plaintext when it is
/// sealed at rest (read from its header), else as stored; `None` for how it rests where the
/// reader may not open it (an auditor reads the reasons, never the content), and the size
/// as stored.
fn content_size(path: &Path, stored: u64) -> (u64, Option<AtRest>) {
    let head = open_nofollow(path).and_then(|mut f| read_head(&mut f, at_rest::HEADER_LEN));
    let Ok(head) = head else {
        return (stored, None);
    };
    if !at_rest::is_sealed(&head) {
        return (stored, Some(AtRest::Plaintext));
    }
    let size = at_rest::plain_len(stored).unwrap_or(stored);
    // a header this version does not write: never opened, as plaintext or otherwise
    let how = at_rest::sealed_with(&head).map_or(AtRest::BadHeader, |(suite, id)| AtRest::Sealed {
        cipher: suite.cipher(),
        key: hex::encode(id),
    });
    (size, Some(how))
}

fn read_listed(dir: &Path, id: &str) -> Listed {
    let reason_path = dir.join(format!("{id}{REASON_SUFFIX}"));
    let read = fs::symlink_metadata(&reason_path)
        .ok()
        .filter(|m| m.is_file() && m.len() <= MAX_REASON_BYTES)
        .and_then(|_| fs::read(&reason_path).ok())
        .and_then(|b| serde_json::from_slice::<ReadReason>(&b).ok());
    let r = read.unwrap_or(ReadReason {
        name: String::new(),
        node: String::new(),
        side: String::new(),
        reason: UNREADABLE.to_string(),
        detail: "the reason file cannot be read".to_string(),
        time_ms: fs::symlink_metadata(&reason_path)
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    });
    let path = dir.join(id);
    let (kind, size, at_rest) = match fs::symlink_metadata(&path) {
        Err(_) => (Kind::None, None, None),
        Ok(m) => {
            let ft = m.file_type();
            if ft.is_file() && m.nlink() == 1 {
                let (size, at_rest) = content_size(&path, m.len());
                (Kind::File, Some(size), at_rest)
            } else if ft.is_symlink() {
                (Kind::Symlink, None, None)
            } else if ft.is_dir() {
                (Kind::Directory, None, None)
            } else {
                (Kind::Other, None, None)
            }
        }
    };
    Listed {
        channel: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        object_id: id.to_string(),
        name: r.name,
        node: r.node,
        side: r.side,
        reason: r.reason,
        detail: r.detail,
        time_ms: r.time_ms,
        kind,
        size,
        at_rest,
        path,
        reason_path,
    }
}

/// Removes an entry for good: its content (as it is: a directory with what it holds, a
/// link itself, never its target), then its reason file, then fsyncs the folder. A crash
/// half-way leaves the reason file, so the entry is still listed and purged again.
///
/// # Errors
/// The content or reason file cannot be removed.
pub fn purge(entry: &Listed) -> io::Result<()> {
    match fs::symlink_metadata(&entry.path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(&entry.path)?,
        Ok(_) => fs::remove_file(&entry.path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = entry.path.parent() {
        sync_dir(dir)?;
    }
    match fs::remove_file(&entry.reason_path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = entry.reason_path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn data_keys(dir: &Path, suite: crate::keys::suite::Suite) -> at_rest::DataKeys {
        let key_file = dir.join("node.data.key");
        at_rest::DataKeys::add_key(&key_file, suite).unwrap();
        at_rest::DataKeys::load(&key_file).unwrap()
    }

    #[test]
    fn bytes_held_in_memory_are_written_in_sealed_and_nothing_else_is_left() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path().join("q");
        let keys = data_keys(t.path(), crate::keys::suite::Suite::Default);
        let body = br#"{"note":"MARKER-4711 sealed body"}"#;
        let subject = Subject {
            id: ObjectId([7; 16]),
            channel: "c",
            name: "m.json",
        };
        let refusal = Refusal::new(Reason::KeywordMatch, "MARKER");
        let at = put(
            &q,
            &subject,
            Some(Held::Bytes(body)),
            "n",
            Side::Sender,
            &refusal,
            Some(&keys),
        )
        .unwrap();
        // the copy and its reason file, and nothing that holds the body in plaintext
        let mut names: Vec<_> = fs::read_dir(&q)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let id = subject.id.to_string();
        assert_eq!(names, [id.clone(), format!("{id}.reason.json")]);
        let stored = fs::read(&at).unwrap();
        assert!(!stored.windows(11).any(|w| w == b"MARKER-4711"));
        let mut back = Vec::new();
        open_content(&at, Some(&keys))
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, body);
        // the same bytes again are the same entry; other bytes, or another id, are not
        assert!(!holds_other(&q, subject.id, body, Some(&keys)).unwrap());
        assert!(holds_other(&q, subject.id, b"other", Some(&keys)).unwrap());
        assert!(!holds_other(&q, ObjectId([8; 16]), body, Some(&keys)).unwrap());
    }

    #[test]
    fn a_sealed_copy_holds_no_plaintext_and_opens_only_whole_with_the_data_key() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path().join("q");
        let keys = data_keys(t.path(), crate::keys::suite::Suite::Gm);
        let marker = "机密-MARKER-4711 ";
        let content = marker.repeat(20_000).into_bytes();
        let src = t.path().join("content");
        fs::write(&src, &content).unwrap();
        let subject = Subject {
            id: ObjectId([9; 16]),
            channel: "c",
            name: "判决.txt",
        };
        let refusal = Refusal::new(Reason::KeywordMatch, "机密");
        let at = put(
            &q,
            &subject,
            Some(Held::Entry(&src)),
            "n",
            Side::Sender,
            &refusal,
            Some(&keys),
        )
        .unwrap();
        assert!(!src.exists());
        let stored = fs::read(&at).unwrap();
        assert!(at_rest::is_sealed(&stored));
        let needle = marker.as_bytes();
        assert!(!stored.windows(needle.len()).any(|w| w == needle));
        assert_eq!(
            fs::metadata(&at).unwrap().permissions().mode() & 0o777,
            COPY_MODE
        );
        // listed with the size of what was refused, opened back whole
        let e = find(std::slice::from_ref(&q), &subject.id.to_string())
            .unwrap()
            .unwrap();
        assert_eq!(e.size, Some(content.len() as u64));
        let mut back = Vec::new();
        open_content(&at, Some(&keys))
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, content);
        // without the data key it does not open; with a flipped byte it is refused
        let e = open_content(&at, None).err().unwrap();
        assert!(e.to_string().contains("no data key"), "{e}");
        // moved over another entry's name, it does not open there
        let moved = q.join(ObjectId([8; 16]).to_string());
        fs::copy(&at, &moved).unwrap();
        let mut out = Vec::new();
        let e = open_content(&moved, Some(&keys))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(
            out.is_empty() && e.kind() == io::ErrorKind::InvalidData,
            "{e}"
        );
        // a plaintext copy where this node seals is never read
        fs::write(&moved, &content).unwrap();
        let e = open_content(&moved, Some(&keys)).err().unwrap();
        assert!(e.to_string().contains("kept in plaintext"), "{e}");
        let mut flipped = stored.clone();
        flipped[at_rest::HEADER_LEN + 70_000] ^= 4;
        fs::set_permissions(&at, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&at, &flipped).unwrap();
        let mut out = Vec::new();
        let e = open_content(&at, Some(&keys))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(
            out.len() <= at_rest::CHUNK,
            "only the chunk before the flip"
        );
    }

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
        let at = put(
            &q,
            &subject,
            Some(Held::Entry(&src)),
            "n",
            Side::Sender,
            &refusal,
            None,
        )
        .unwrap();
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
        let at2 = put(
            &q,
            &s2,
            Some(Held::Entry(&link)),
            "n",
            Side::Sender,
            &refusal,
            None,
        )
        .unwrap();
        assert!(fs::symlink_metadata(&at2).unwrap().file_type().is_symlink());
    }

    #[test]
    fn a_missing_approval_is_never_releasable_but_a_sender_side_rejection_is() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path().join("quarantine").join("c");
        let put_file = |n: u8, reason, side| {
            let src = t.path().join(format!("f{n}"));
            fs::write(&src, b"content").unwrap();
            let s = Subject {
                id: ObjectId([n; 16]),
                channel: "c",
                name: "报告.txt",
            };
            put(
                &q,
                &s,
                Some(Held::Entry(&src)),
                "n",
                side,
                &Refusal::new(reason, "why"),
                None,
            )
            .unwrap();
        };
        put_file(1, Reason::ApprovalMissing, Side::Receiver);
        put_file(2, Reason::ApprovalRejected, Side::Sender);
        put_file(3, Reason::ApprovalExpired, Side::Sender);
        let dirs = vec![q.clone()];
        let by = |n: u8| {
            find(&dirs, &ObjectId([n; 16]).to_string())
                .unwrap()
                .unwrap()
        };
        let missing = by(1).releasable();
        assert!(
            matches!(&missing, Err(NotReleasable::Approval(r)) if r.contains("approval_missing")),
            "{missing:?}"
        );
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("the sender sends it again with its approvals")
        );
        // the sender's own rejections and expiries go through the desk again
        assert_eq!(by(2).releasable(), Ok(()));
        assert_eq!(by(3).releasable(), Ok(()));
    }

    #[test]
    fn entries_are_listed_judged_and_purged() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path().join("quarantine").join("c");
        let refusal = |r| Refusal::new(r, "why");
        let put_file = |n: u8, reason| {
            let src = t.path().join(format!("f{n}"));
            fs::write(&src, b"content").unwrap();
            let s = Subject {
                id: ObjectId([n; 16]),
                channel: "c",
                name: "报告.txt",
            };
            put(
                &q,
                &s,
                Some(Held::Entry(&src)),
                "n",
                Side::Receiver,
                &refusal(reason),
                None,
            )
            .unwrap();
        };
        put_file(1, Reason::KeywordMatch);
        put_file(2, Reason::ContentHash);
        let link = t.path().join("l");
        std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
        let s3 = Subject {
            id: ObjectId([3; 16]),
            channel: "c",
            name: "l",
        };
        put(
            &q,
            &s3,
            Some(Held::Entry(&link)),
            "n",
            Side::Sender,
            &refusal(Reason::Symlink),
            None,
        )
        .unwrap();
        let s4 = Subject {
            id: ObjectId([4; 16]),
            ..s3
        };
        put(
            &q,
            &s4,
            None,
            "n",
            Side::Receiver,
            &refusal(Reason::NameRefused),
            None,
        )
        .unwrap();
        let dirs = vec![q.clone(), t.path().join("missing")];
        let all = list(&dirs).unwrap();
        assert_eq!(all.len(), 4);
        let by = |n: u8| {
            find(&dirs, &ObjectId([n; 16]).to_string())
                .unwrap()
                .unwrap()
        };
        let keyword = by(1);
        assert_eq!(
            (keyword.kind, keyword.size, keyword.name.as_str()),
            (Kind::File, Some(7), "报告.txt")
        );
        assert_eq!(keyword.side, "receiver");
        assert_eq!(keyword.releasable(), Ok(()));
        assert!(matches!(
            by(2).releasable(),
            Err(NotReleasable::Integrity(r)) if r == "content_hash"
        ));
        assert_eq!(by(3).releasable(), Err(NotReleasable::NotPlain("symlink")));
        assert_eq!(by(4).releasable(), Err(NotReleasable::NoContent));
        assert!(find(&dirs, "not an id").unwrap().is_none());
        // a purge removes the link itself, never its target
        purge(&by(3)).unwrap();
        assert!(std::path::Path::new("/etc/passwd").exists());
        purge(&keyword).unwrap();
        assert!(!keyword.path.exists() && !keyword.reason_path.exists());
        assert_eq!(list(&dirs).unwrap().len(), 2);
        // an unreadable reason file is listed, never trusted
        fs::write(
            q.join(format!("{}{REASON_SUFFIX}", ObjectId([5; 16]))),
            b"{",
        )
        .unwrap();
        assert_eq!(by(5).reason, "unreadable");
        assert!(by(5).releasable().is_err());
    }

    #[test]
    fn a_hard_linked_entry_is_never_releasable_even_once_alone() {
        let t = tempfile::tempdir().unwrap();
        let q = t.path().join("quarantine").join("c");
        let src = t.path().join("published");
        fs::write(&src, b"content").unwrap();
        let other = t.path().join("other-link");
        fs::hard_link(&src, &other).unwrap();
        let s = Subject {
            id: ObjectId([7; 16]),
            channel: "c",
            name: "a.txt",
        };
        let refusal = Refusal::new(Reason::HardLink, "2 links");
        put(
            &q,
            &s,
            Some(Held::Entry(&src)),
            "n",
            Side::Sender,
            &refusal,
            None,
        )
        .unwrap();
        let dirs = vec![q.clone()];
        let id = s.id.to_string();
        let e = find(&dirs, &id).unwrap().unwrap();
        assert_eq!(e.kind, Kind::Other);
        // the staging copy refuses it on the descriptor
        let err = open_content(&e.path, None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // the publisher drops its other link: one link now, a plain file to look at
        fs::remove_file(&other).unwrap();
        let e = find(&dirs, &id).unwrap().unwrap();
        assert_eq!(e.kind, Kind::File);
        assert_eq!(
            e.releasable(),
            Err(NotReleasable::NotPlain("hard-linked file"))
        );
        for (reason, what) in NOT_PLAIN {
            let mut r = e.clone();
            r.reason = reason.as_str().to_string();
            assert_eq!(r.releasable(), Err(NotReleasable::NotPlain(what)));
        }
        // a plain file with one link opens
        let plain = t.path().join("plain");
        fs::write(&plain, b"x").unwrap();
        assert!(open_content(&plain, None).is_ok());
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&plain, &link).unwrap();
        assert!(open_content(&link, None).is_err());
    }

    #[test]
    fn how_a_copy_rests_is_read_without_a_key_and_decides_where_it_may_be_released() {
        use crate::keys::suite::Suite;
        for suite in Suite::ALL {
            let t = tempfile::tempdir().unwrap();
            let keys = data_keys(t.path(), suite);
            let q = t.path().join("quarantine").join("c");
            let refusal = Refusal::new(Reason::KeywordMatch, "内部资料");
            let (sealed, plain) = (ObjectId([1; 16]), ObjectId([2; 16]));
            for (id, sealing) in [(sealed, Some(&keys)), (plain, None)] {
                let s = Subject {
                    id,
                    channel: "c",
                    name: "a.txt",
                };
                put(
                    &q,
                    &s,
                    Some(Held::Bytes(b"content")),
                    "n",
                    Side::Sender,
                    &refusal,
                    sealing,
                )
                .unwrap();
            }
            let dirs = vec![q.clone()];
            let s = find(&dirs, &sealed.to_string()).unwrap().unwrap();
            let Some(AtRest::Sealed { cipher, key }) = &s.at_rest else {
                panic!("{s:?}")
            };
            assert_eq!(*cipher, suite.cipher());
            let head = fs::read(&s.path).unwrap();
            assert_eq!(key, &hex::encode(&head[20..24]));
            assert_eq!(s.size, Some(7));
            let p = find(&dirs, &plain.to_string()).unwrap().unwrap();
            assert_eq!(p.at_rest, Some(AtRest::Plaintext));
            // as the release would find: plaintext where the node seals, sealed where not
            assert_eq!(s.releasable_by(true), Ok(()));
            assert_eq!(p.releasable_by(false), Ok(()));
            assert_eq!(
                p.releasable_by(true),
                Err(NotReleasable::AtRest(PLAIN_WHILE_SEALING))
            );
            assert_eq!(
                s.releasable_by(false),
                Err(NotReleasable::AtRest(SEALED_WITHOUT_KEY))
            );
            assert!(open_content(&p.path, Some(&keys)).is_err());
            assert!(open_content(&s.path, None).is_err());
            // a header changed past its magic: said so, never releasable
            let mut bytes = fs::read(&s.path).unwrap();
            bytes[25] ^= 1;
            let changed = q.join(ObjectId([3; 16]).to_string());
            fs::write(&changed, &bytes).unwrap();
            fs::copy(
                q.join(format!("{sealed}{REASON_SUFFIX}")),
                q.join(format!("{}{REASON_SUFFIX}", ObjectId([3; 16]))),
            )
            .unwrap();
            let b = find(&dirs, &ObjectId([3; 16]).to_string())
                .unwrap()
                .unwrap();
            assert_eq!(b.at_rest, Some(AtRest::BadHeader));
            let mut u = s.clone();
            u.reason = UNREADABLE.into();
            assert_eq!(u.releasable(), Err(NotReleasable::ReasonFile));
            assert_eq!(
                b.releasable_by(true),
                Err(NotReleasable::AtRest(BAD_HEADER))
            );
            // a reason that is never releasable says so first
            let mut i = s.clone();
            i.reason = "content_hash".into();
            assert!(matches!(
                i.releasable_by(true),
                Err(NotReleasable::Integrity(_))
            ));
        }
    }
}
