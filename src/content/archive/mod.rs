//! Archive walking: zip, tar and gzip entries handed one at a time to a visitor, with the
//! limits of one object (nesting depth, entry count, expanded bytes, expansion ratio)
//! enforced while the bytes are read, not taken on trust from the headers.
//!
//! ```text
//!  walk(kind, input) ─► entry path checked ─► metered reader ─► Visitor::entry
//!                                                   │ (may call walk again, depth + 1)
//!                          Budget (shared by every level of one object)
//! ```
//!
//! A zip needs its central directory, so a zip that does not arrive as a file is spilled to
//! an anonymous temporary file first (at most 256 MiB; a larger one is an `ArchiveLimit`
//! refusal); the expansion itself is never written anywhere. The central directory is sized
//! from the end-of-central-directory records and refused if it is larger than the entry limit
//! allows, before the zip reader loads it. A corrupt archive is a `ContentUnreadable` refusal;
//! only a fault of the outer file, the input stream or the spill file (a full disk included)
//! is an `io::Error`.
//!
//! One module per format, and the parts they share:
//!
//! ```text
//!  mod     Kind, Limits, Budget, Visitor, Input; walk dispatches on Kind
//!  zip     spill to a file, central directory checked, entries metered
//!  layout  one view of a zip: every byte accounted for, local and central headers agree
//!  tar     raw entries, extension headers read with a cap, links and devices refused
//!  gzip    one entry named from its header, compressed bytes counted for the ratio
//!  meter   the reader that enforces expanded bytes and ratio while an entry is read
//!  names   entry names decoded as written (flag, Unicode Path field, UTF-8, GB18030), NFC
//!  paths   the rules an entry path must follow
//! ```

mod gzip;
mod layout;
mod meter;
mod names;
mod paths;
mod tar;
#[cfg(test)]
pub(crate) mod testing;
mod zip;

pub use names::{LegacyNames, nfc};
pub(crate) use zip::{Spill, spill};

use crate::content::Scan;
use crate::content::source::{Source, SourceCursor};
use crate::core::reason::{Reason, Refusal};
use meter::LimitHit;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The ratio limit applies once an entry has expanded to at least this many bytes.
const RATIO_FLOOR: u64 = 1 << 20;

/// Size of the read buffers (spill copy, tar and gzip input).
const IO_BUF: usize = 64 * 1024;

/// The archive formats `walk` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A zip archive (central directory, stored or deflated entries).
    Zip,
    /// A POSIX, GNU or PAX tar archive, uncompressed.
    Tar,
    /// A gzip stream, seen as one entry named from its header (or the empty path).
    Gzip,
}

/// The limits of one object, across every nesting level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting: 1 allows the outer archive only.
    pub max_depth: u32,
    /// Most entries (files, directories, links) counted over all levels.
    pub max_entries: u64,
    /// Most expanded bytes read over all levels.
    pub max_expanded_bytes: u64,
    /// Largest expansion ratio of one entry, checked once it has expanded to 1 MiB.
    pub max_ratio: u64,
    /// How entry names in no stated encoding that are not UTF-8 are read.
    pub legacy_names: LegacyNames,
}

/// The counters and the first limit crossed, shared by every level of one object.
#[derive(Debug, Default)]
struct Shared {
    entries: AtomicU64,
    expanded: AtomicU64,
    tripped: AtomicBool,
    refusal: Mutex<Option<Refusal>>,
}

impl Shared {
    /// Records the first limit crossed and returns the refusal that stands.
    fn trip(&self, refusal: Refusal) -> Refusal {
        let mut slot = self
            .refusal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let standing = slot.get_or_insert(refusal).clone();
        self.tripped.store(true, Ordering::SeqCst);
        standing
    }

    /// The refusal that stands once a limit has been crossed.
    fn tripped(&self) -> Option<Refusal> {
        if !self.tripped.load(Ordering::SeqCst) {
            return None;
        }
        self.refusal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// Shared across all nesting levels of one object: counts entries and expanded bytes.
#[derive(Debug)]
pub struct Budget {
    limits: Limits,
    shared: Arc<Shared>,
}

impl Budget {
    /// A fresh budget for one object.
    pub fn new(limits: Limits) -> Budget {
        Budget {
            limits,
            shared: Arc::new(Shared::default()),
        }
    }

    /// The limits this budget enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Entries counted so far, over all levels.
    pub fn entries(&self) -> u64 {
        self.shared.entries.load(Ordering::SeqCst)
    }

    /// Expanded bytes read so far, over all levels.
    pub fn expanded(&self) -> u64 {
        self.shared.expanded.load(Ordering::SeqCst)
    }

    /// Counts one entry; a refusal past the entry limit.
    fn count_entry(&self) -> Result<(), Refusal> {
        let n = self
            .shared
            .entries
            .fetch_add(1, Ordering::SeqCst)
            .saturating_add(1);
        if n > self.limits.max_entries {
            return Err(self.shared.trip(Refusal::new(
                Reason::ArchiveLimit,
                format!("more than {} archive entries", self.limits.max_entries),
            )));
        }
        Ok(())
    }

    /// The refusal that stands once a limit has been crossed.
    fn tripped(&self) -> Option<Refusal> {
        self.shared.tripped()
    }

    /// Records a limit crossed (ArchiveLimit) and returns the verdict that stands.
    fn refuse_limit(&self, detail: String) -> Scan {
        Ok(Err(self
            .shared
            .trip(Refusal::new(Reason::ArchiveLimit, detail))))
    }
}

/// Called once per regular-file entry. `path` is the entry's full path inside the archive
/// (validated: relative, no `..`, no empty or `.` components, no backslash, no drive letter,
/// no NUL/control characters; no directory component with an invisible formatting character
/// (bidi override, zero-width), a Windows device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9,
/// with or without extension) or a leading `-`; otherwise the walker refuses with ArchivePath
/// before calling; the leaf name is left to the caller's name rules). `depth` is 1 for
/// entries of the outer archive. `reader` yields the expanded bytes and fails
/// with an io::Error the walker turns back into an ArchiveLimit refusal when the budget's
/// expanded-bytes limit or the ratio limit is crossed WHILE READING (declared sizes in headers
/// are not trusted). The visitor may recurse into a nested archive by calling `walk` again
/// with depth + 1 on the entry's reader.
pub trait Visitor {
    /// Inspects one regular-file entry; a refusal or an error stops the walk. `path` is empty
    /// for a gzip member without a stored name: the caller derives one from the archive's own
    /// name.
    fn entry(&mut self, path: &str, depth: u32, reader: &mut dyn Read, budget: &mut Budget)
    -> Scan;
}

/// The archive to walk: a file (read from its start, seekable) or any stream.
pub enum Input<'a> {
    /// A file, plain or sealed at rest, read from its start; a zip is read in place.
    File(&'a dyn Source),
    /// A stream, read once from where it stands; a zip is spilled to a temporary file.
    Stream(&'a mut dyn Read),
}

/// Walks one archive of `kind` at nesting `depth` (1 for the outer archive), calling
/// `visitor` for each regular file, counting entries and expanded bytes against `budget`.
/// A zip stream is spilled to an anonymous temporary file in `spill_dir`: one larger than
/// 256 MiB is refused (ArchiveLimit); a failure to write the spill file (a full disk) is an
/// `Err`, never a refusal.
pub fn walk(
    kind: Kind,
    input: Input<'_>,
    depth: u32,
    budget: &mut Budget,
    spill_dir: &Path,
    visitor: &mut dyn Visitor,
) -> Scan {
    let limits = budget.limits;
    if depth > limits.max_depth {
        return budget.refuse_limit(format!(
            "archive nested {depth} deep, limit {}",
            limits.max_depth
        ));
    }
    if let Some(refusal) = budget.tripped() {
        return Ok(Err(refusal));
    }
    let result = match kind {
        Kind::Zip => {
            let spilled;
            let file: &dyn Source = match input {
                Input::File(file) => file,
                Input::Stream(reader) => {
                    match zip::spill(reader, spill_dir, zip::SPILL_CAP, "nested zip", budget) {
                        zip::Spill::Ready(file) => {
                            spilled = file;
                            &spilled
                        }
                        zip::Spill::Verdict(verdict) => return verdict,
                    }
                }
            };
            zip::walk_zip(file, depth, budget, visitor)
        }
        Kind::Tar => tar::walk_tar(input, depth, budget, visitor),
        Kind::Gzip => gzip::walk_gzip(input, depth, budget, visitor),
    };
    if let Some(refusal) = budget.tripped() {
        return Ok(Err(refusal));
    }
    match result {
        Ok(verdict) => Ok(verdict),
        Err(e) => from_io(e, kind),
    }
}

/// Hands one entry, read through `reader` (its meter), to the visitor: a limit crossed while
/// the visitor read it stands over the visitor's own verdict.
fn visit(
    visitor: &mut dyn Visitor,
    path: &str,
    depth: u32,
    reader: &mut dyn Read,
    budget: &mut Budget,
) -> Scan {
    let verdict = visitor.entry(path, depth, reader, budget)?;
    if let Some(refusal) = budget.tripped() {
        return Ok(Err(refusal));
    }
    Ok(verdict)
}

/// Sorts an io::Error met while walking: a limit crossed, a fault of the machine (an OS
/// error, returned as is), or content that cannot be read as the archive it claims to be.
fn from_io(e: io::Error, kind: Kind) -> Scan {
    if let Some(hit) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<LimitHit>())
    {
        return Ok(Err(hit.0.clone()));
    }
    if e.raw_os_error().is_some() {
        return Err(e);
    }
    Ok(Err(Refusal::new(
        Reason::ContentUnreadable,
        format!("{kind:?} archive cannot be read: {e}"),
    )))
}

/// A verdict: the archive cannot be read (ContentUnreadable).
fn unreadable(detail: impl Into<String>) -> Scan {
    Ok(Err(Refusal::new(Reason::ContentUnreadable, detail)))
}

/// A verdict: an entry path is refused (ArchivePath).
fn bad_path(path: &str, why: &str) -> Scan {
    Ok(Err(Refusal::new(
        Reason::ArchivePath,
        format!("archive entry {:?}: {why}", truncate(path, 200)),
    )))
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The input as a stream: a file is read from its start.
fn stream<'a: 'b, 'b>(
    input: Input<'a>,
    file_slot: &'b mut Option<SourceCursor<'a>>,
) -> &'b mut (dyn Read + 'a) {
    match input {
        Input::File(file) => file_slot.insert(SourceCursor::new(file)),
        Input::Stream(reader) => reader,
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{limits, refused, run, tar_of, zip_of};
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn nesting_deeper_than_the_limit_is_refused() {
        let mut data = zip_of(&[("x.txt", b"x")]);
        for _ in 0..4 {
            data = zip_of(&[("n.zip", &data)]);
        }
        let r = refused(Kind::Zip, &data, limits());
        assert_eq!(r.reason, Reason::ArchiveLimit);
        assert!(r.detail.contains("nested"), "{r}");
    }

    #[test]
    fn nested_bomb_is_refused_quickly() {
        // 42.zip in small: 16 zips of 16 entries of 8 MiB of zeros, nested twice.
        let zeros = vec![0u8; 8 << 20];
        let leaf: Vec<(String, &[u8])> =
            (0..16).map(|i| (format!("{i}.bin"), &zeros[..])).collect();
        let leaf: Vec<(&str, &[u8])> = leaf.iter().map(|(n, d)| (n.as_str(), *d)).collect();
        let level1 = zip_of(&leaf);
        let names: Vec<String> = (0..16).map(|i| format!("{i}.zip")).collect();
        let level2: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &level1[..])).collect();
        let level2 = zip_of(&level2);
        let level3: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &level2[..])).collect();
        let top = zip_of(&level3);
        assert!(top.len() < 1 << 20);
        let generous = Limits {
            max_ratio: 2000,
            ..limits()
        };
        let start = Instant::now();
        let r = refused(Kind::Zip, &top, generous);
        assert_eq!(r.reason, Reason::ArchiveLimit, "{r}");
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn entry_count_is_enforced() {
        let names: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
        let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
        let few = Limits {
            max_entries: 10,
            ..limits()
        };
        assert_eq!(
            refused(Kind::Zip, &zip_of(&entries), few).reason,
            Reason::ArchiveLimit
        );
        assert_eq!(
            refused(Kind::Tar, &tar_of(&entries), few).reason,
            Reason::ArchiveLimit
        );
        let (verdict, v) = run(Kind::Tar, &tar_of(&entries[..10]), few);
        assert_eq!(verdict, Ok(()));
        assert_eq!(v.seen.len(), 10);
    }
}
