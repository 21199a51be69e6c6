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

use crate::content::Scan;
use crate::core::reason::{Reason, Refusal};
use std::cell::Cell;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The ratio limit applies once an entry has expanded to at least this many bytes.
const RATIO_FLOOR: u64 = 1 << 20;

/// Size of the read buffers (spill copy, tar and gzip input).
const IO_BUF: usize = 64 * 1024;

/// Longest GNU long-name or PAX extension record read from a tar.
const TAR_EXTENSION_CAP: u64 = 64 * 1024;

/// Most extension headers (long name, long link, PAX) in a row before a member.
const TAR_EXTENSION_RUN: u32 = 8;

/// Largest zip spilled to a temporary file (a zip that arrives as a stream, nested ones).
const SPILL_CAP: u64 = 256 << 20;

/// Central-directory bytes allowed for each entry the limits allow.
const DIRECTORY_PER_ENTRY: u64 = 1024;

/// Central-directory bytes allowed on top of the per-entry allowance.
const DIRECTORY_SLACK: u64 = 64 * 1024;

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
}

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

    fn tripped(&self) -> Option<Refusal> {
        self.shared.tripped()
    }

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
    /// A file, read from its start; a zip is read in place.
    File(&'a File),
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
            let file: &File = match input {
                Input::File(file) => file,
                Input::Stream(reader) => match spill(reader, spill_dir, budget) {
                    Spill::Ready(file) => {
                        spilled = file;
                        &spilled
                    }
                    Spill::Verdict(verdict) => return verdict,
                },
            };
            walk_zip(file, depth, budget, visitor)
        }
        Kind::Tar => walk_tar(input, depth, budget, visitor),
        Kind::Gzip => walk_gzip(input, depth, budget, visitor),
    };
    if let Some(refusal) = budget.tripped() {
        return Ok(Err(refusal));
    }
    match result {
        Ok(verdict) => Ok(verdict),
        Err(e) => from_io(e, kind),
    }
}

/// The io::Error a metered reader fails with once a limit is crossed.
#[derive(Debug)]
struct LimitHit(Refusal);

impl fmt::Display for LimitHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for LimitHit {}

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

fn unreadable(detail: impl Into<String>) -> Scan {
    Ok(Err(Refusal::new(Reason::ContentUnreadable, detail)))
}

fn bad_path(path: &str, why: &str) -> Scan {
    Ok(Err(Refusal::new(
        Reason::ArchivePath,
        format!("archive entry {:?}: {why}", truncate(path, 200)),
    )))
}

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

/// Invisible formatting characters that make a name display other than it is: bidi embeddings,
/// overrides and isolates, zero-width characters, word joiners, the byte-order mark.
fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
            | '\u{061C}'
    )
}

/// A Windows reserved device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9), with or without an
/// extension, in any case; trailing spaces before the extension are ignored, as Windows does.
fn is_device_name(part: &str) -> bool {
    let stem = part.split('.').next().unwrap_or(part).trim_end_matches(' ');
    let upper = stem.to_ascii_uppercase();
    if matches!(upper.as_str(), "CON" | "PRN" | "AUX" | "NUL") {
        return true;
    }
    let mut chars = upper.chars();
    let prefix: String = chars.by_ref().take(3).collect();
    let digit = chars.next();
    matches!(prefix.as_str(), "COM" | "LPT")
        && matches!(digit, Some('1'..='9' | '\u{b9}' | '\u{b2}' | '\u{b3}'))
        && chars.next().is_none()
}

/// Why an entry path is refused, if it is. A directory may end with one `/`.
fn path_problem(path: &str, is_dir: bool) -> Option<&'static str> {
    let body = if is_dir {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    };
    if body.is_empty() {
        return Some("empty path");
    }
    if body.starts_with('/') {
        return Some("absolute path");
    }
    if body.contains('\\') {
        return Some("backslash in path");
    }
    if body.chars().any(char::is_control) {
        return Some("control character in path");
    }
    let bytes = body.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Some("drive letter in path");
    }
    for part in body.split('/') {
        match part {
            "" => return Some("empty path component"),
            "." => return Some("`.` path component"),
            ".." => return Some("`..` path component"),
            _ => {}
        }
    }
    // Directory components; the leaf is checked by the caller's name rules.
    let dirs = if is_dir {
        Some(body)
    } else {
        body.rsplit_once('/').map(|(dirs, _)| dirs)
    };
    for part in dirs.into_iter().flat_map(|dirs| dirs.split('/')) {
        if part.chars().any(is_format_char) {
            return Some("invisible formatting character in a directory name");
        }
        if is_device_name(part) {
            return Some("Windows device name as a directory name");
        }
        if part.starts_with('-') {
            return Some("directory name starts with `-`");
        }
    }
    None
}

/// Where the compressed size of an entry comes from, for the ratio check.
enum Packed {
    /// Not compressed (tar members): no ratio check.
    Same,
    /// Known from the archive (zip: the entry's compressed size).
    Fixed(u64),
    /// Counted as the decompressor consumes its input (gzip).
    Counted(Rc<Cell<u64>>),
}

/// Counts expanded bytes of one entry against the budget and the ratio limit as they are read.
struct Meter<R> {
    inner: R,
    shared: Arc<Shared>,
    limits: Limits,
    expanded: u64,
    packed: Packed,
}

impl<R: Read> Meter<R> {
    fn new(inner: R, budget: &Budget, packed: Packed) -> Meter<R> {
        Meter {
            inner,
            shared: Arc::clone(&budget.shared),
            limits: budget.limits,
            expanded: 0,
            packed,
        }
    }

    fn hit(&self, detail: String) -> io::Error {
        let refusal = self.shared.trip(Refusal::new(Reason::ArchiveLimit, detail));
        io::Error::other(LimitHit(refusal))
    }
}

impl<R: Read> Read for Meter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(refusal) = self.shared.tripped() {
            return Err(io::Error::other(LimitHit(refusal)));
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            return Ok(0);
        }
        let n64 = n as u64;
        self.expanded = self.expanded.saturating_add(n64);
        let total = self
            .shared
            .expanded
            .fetch_add(n64, Ordering::SeqCst)
            .saturating_add(n64);
        if total > self.limits.max_expanded_bytes {
            return Err(self.hit(format!(
                "archive expands to more than {} bytes",
                self.limits.max_expanded_bytes
            )));
        }
        let packed = match &self.packed {
            Packed::Same => None,
            Packed::Fixed(n) => Some(*n),
            Packed::Counted(c) => Some(c.get()),
        };
        if let Some(packed) = packed {
            if self.expanded >= RATIO_FLOOR
                && self.expanded > self.limits.max_ratio.saturating_mul(packed.max(1))
            {
                return Err(self.hit(format!(
                    "archive entry expands more than {} times",
                    self.limits.max_ratio
                )));
            }
        }
        Ok(n)
    }
}

/// Counts the bytes a decompressor takes from its input.
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get().saturating_add(n as u64));
        Ok(n)
    }
}

/// The input as a stream: a file is read from its start.
fn stream<'a: 'b, 'b>(
    input: Input<'a>,
    file_slot: &'b mut Option<&'a File>,
) -> io::Result<&'b mut (dyn Read + 'a)> {
    match input {
        Input::File(file) => {
            let mut handle = file;
            handle.seek(SeekFrom::Start(0))?;
            Ok(file_slot.insert(handle))
        }
        Input::Stream(reader) => Ok(reader),
    }
}

/// A zip stream spilled to a file, or the verdict that ends the walk.
enum Spill {
    Ready(File),
    Verdict(Scan),
}

/// Copies a zip stream to an anonymous temporary file in `dir`, at most `SPILL_CAP` bytes.
/// A fault of the spill file is returned as `Err` as it is; a fault of the input is sorted
/// by `from_io` (a limit crossed while reading a nested entry stays a refusal).
fn spill(reader: &mut dyn Read, dir: &Path, budget: &Budget) -> Spill {
    let mut file = match tempfile::tempfile_in(dir) {
        Ok(file) => file,
        Err(e) => return Spill::Verdict(Err(e)),
    };
    match copy_capped(reader, &mut file, SPILL_CAP, budget) {
        Ok(()) => Spill::Ready(file),
        Err(verdict) => Spill::Verdict(verdict),
    }
}

/// Copies `reader` to `out`, refusing (ArchiveLimit) more than `cap` bytes; `Err` holds the
/// verdict that ends the walk.
fn copy_capped(
    reader: &mut dyn Read,
    out: &mut dyn Write,
    cap: u64,
    budget: &Budget,
) -> Result<(), Scan> {
    let mut buf = vec![0u8; IO_BUF];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(from_io(e, Kind::Zip)),
        };
        total = total.saturating_add(n as u64);
        if total > cap {
            return Err(budget.refuse_limit(format!("nested zip larger than {} MiB", cap >> 20)));
        }
        // A full disk or any other failure of the spill file is a fault, never a verdict.
        if let Err(e) = out.write_all(&buf[..n]) {
            return Err(Err(e));
        }
    }
}

fn walk_zip(file: &File, depth: u32, budget: &mut Budget, visitor: &mut dyn Visitor) -> Scan {
    let limits = budget.limits;
    let directory = declared_zip_directory(file)?;
    let declared = directory.entries;
    if budget.entries().saturating_add(declared) > limits.max_entries {
        return budget.refuse_limit(format!(
            "zip declares {declared} entries, limit {}",
            limits.max_entries
        ));
    }
    let directory_cap = limits
        .max_entries
        .saturating_mul(DIRECTORY_PER_ENTRY)
        .saturating_add(DIRECTORY_SLACK);
    if directory.bytes > directory_cap {
        return budget.refuse_limit(format!(
            "zip central directory of {} bytes, limit {directory_cap}",
            directory.bytes
        ));
    }
    let mut archive = match zip::ZipArchive::new(file) {
        Ok(archive) => archive,
        Err(e) => return zip_error(e),
    };
    let count = archive.len() as u64;
    if budget.entries().saturating_add(count) > limits.max_entries {
        return budget.refuse_limit(format!(
            "zip holds {count} entries, limit {}",
            limits.max_entries
        ));
    }

    // The central directory first: refuse an obvious bomb before expanding anything.
    let mut declared_bytes: u64 = 0;
    for index in 0..archive.len() {
        let entry = match archive.by_index_raw(index) {
            Ok(entry) => entry,
            Err(e) => return zip_error(e),
        };
        let name = entry.name();
        if let Some(why) = path_problem(name, entry.is_dir()) {
            return bad_path(name, why);
        }
        if entry.is_symlink() {
            return bad_path(name, "symbolic link");
        }
        if entry.encrypted() {
            return unreadable(format!(
                "zip entry {:?} is encrypted and cannot be inspected",
                truncate(name, 200)
            ));
        }
        if !matches!(
            entry.compression(),
            zip::CompressionMethod::Stored | zip::CompressionMethod::Deflated
        ) {
            return unreadable(format!(
                "zip entry {:?} uses unsupported compression {}",
                truncate(name, 200),
                entry.compression()
            ));
        }
        let size = entry.size();
        if size >= RATIO_FLOOR
            && size
                > limits
                    .max_ratio
                    .saturating_mul(entry.compressed_size().max(1))
        {
            return budget.refuse_limit(format!(
                "zip entry {:?} declares expansion more than {} times",
                truncate(name, 200),
                limits.max_ratio
            ));
        }
        declared_bytes = declared_bytes.saturating_add(size);
    }
    if budget.expanded().saturating_add(declared_bytes) > limits.max_expanded_bytes {
        return budget.refuse_limit(format!(
            "zip declares {declared_bytes} expanded bytes, limit {}",
            limits.max_expanded_bytes
        ));
    }

    // Then the entries themselves, metered while read.
    for index in 0..archive.len() {
        if let Err(refusal) = budget.count_entry() {
            return Ok(Err(refusal));
        }
        let mut entry = match archive.by_index(index) {
            Ok(entry) => entry,
            Err(e) => return zip_error(e),
        };
        if entry.is_dir() {
            continue;
        }
        let path = entry.name().to_owned();
        let packed = entry.compressed_size();
        let mut meter = Meter::new(&mut entry, budget, Packed::Fixed(packed));
        let verdict = visitor.entry(&path, depth, &mut meter, budget)?;
        if let Some(refusal) = budget.tripped() {
            return Ok(Err(refusal));
        }
        if let Err(refusal) = verdict {
            return Ok(Err(refusal));
        }
    }
    Ok(Ok(()))
}

fn zip_error(e: zip::result::ZipError) -> Scan {
    match e {
        zip::result::ZipError::Io(e) if e.raw_os_error().is_some() => Err(e),
        zip::result::ZipError::UnsupportedArchive(why)
            if why == zip::result::ZipError::PASSWORD_REQUIRED =>
        {
            unreadable("zip entry is encrypted and cannot be inspected")
        }
        other => unreadable(format!("zip archive cannot be read: {other}")),
    }
}

fn le16(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 2)
        .map_or(0, |s| u64::from(u16::from_le_bytes([s[0], s[1]])))
}

fn le32(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 4).map_or(0, |s| {
        u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    })
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        word.copy_from_slice(s);
    }
    u64::from_le_bytes(word)
}

/// What the end-of-central-directory records declare.
#[derive(Debug, Default)]
struct Directory {
    /// Most entries.
    entries: u64,
    /// Largest central-directory size, in bytes.
    bytes: u64,
}

/// The largest entry count and central-directory size any end-of-central-directory record in
/// the tail of the file declares (zip64 included), read before the zip reader loads its
/// directory.
fn declared_zip_directory(file: &File) -> io::Result<Directory> {
    const EOCD: &[u8] = b"PK\x05\x06";
    const LOCATOR64: &[u8] = b"PK\x06\x07";
    const EOCD64: &[u8] = b"PK\x06\x06";
    let len = file.metadata()?.len();
    let tail_len = len.min(22 + 65_535 + 20);
    let mut tail = vec![0u8; tail_len as usize];
    let mut handle = file;
    handle.seek(SeekFrom::Start(len - tail_len))?;
    handle.read_exact(&mut tail)?;
    let mut most = Directory::default();
    for at in (0..tail.len().saturating_sub(21)).rev() {
        if &tail[at..at + 4] != EOCD {
            continue;
        }
        most.entries = most.entries.max(le16(&tail, at + 10));
        most.bytes = most.bytes.max(le32(&tail, at + 12));
        if at < 20 || &tail[at - 20..at - 16] != LOCATOR64 {
            continue;
        }
        let offset = le64(&tail, at - 20 + 8);
        if offset.saturating_add(56) > len {
            continue;
        }
        let mut record = [0u8; 56];
        handle.seek(SeekFrom::Start(offset))?;
        handle.read_exact(&mut record)?;
        if &record[..4] == EOCD64 {
            most.entries = most.entries.max(le64(&record, 32));
            most.bytes = most.bytes.max(le64(&record, 40));
        }
    }
    Ok(most)
}

/// Reads at most `cap` bytes; `None` when there are more.
fn read_capped(reader: &mut dyn Read, cap: u64) -> io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    reader.take(cap + 1).read_to_end(&mut data)?;
    if data.len() as u64 > cap {
        return Ok(None);
    }
    Ok(Some(data))
}

fn walk_tar(input: Input<'_>, depth: u32, budget: &mut Budget, visitor: &mut dyn Visitor) -> Scan {
    let mut file_slot = None;
    let reader = stream(input, &mut file_slot)?;
    let mut archive = tar::Archive::new(BufReader::with_capacity(IO_BUF, reader));
    // Raw entries: long names and PAX records are read here, with a cap, not by the crate.
    let entries = archive.entries()?.raw(true);
    let mut long_name: Option<Vec<u8>> = None;
    let mut pax_path: Option<Vec<u8>> = None;
    let mut run = 0u32;
    for entry in entries {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions()
        {
            run += 1;
            if run > TAR_EXTENSION_RUN {
                return unreadable("tar has too many extension headers in a row");
            }
            let Some(data) = read_capped(&mut entry, TAR_EXTENSION_CAP)? else {
                return unreadable("tar extension header longer than 64 KiB");
            };
            if kind.is_gnu_longname() {
                let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                long_name = Some(data[..end].to_vec());
            } else if kind.is_pax_local_extensions() {
                for record in tar::PaxExtensions::new(&data) {
                    let Ok(record) = record else {
                        return unreadable("tar PAX record is malformed");
                    };
                    let key = record.key_bytes();
                    if key == b"path" {
                        pax_path = Some(record.value_bytes().to_vec());
                    } else if key == b"size" || key.starts_with(b"GNU.sparse") {
                        return unreadable("tar PAX size and sparse records are not supported");
                    }
                }
            }
            continue;
        }
        run = 0;
        if let Err(refusal) = budget.count_entry() {
            return Ok(Err(refusal));
        }
        let raw = match (pax_path.take(), long_name.take()) {
            (Some(path), _) | (None, Some(path)) => path,
            (None, None) => entry.path_bytes().into_owned(),
        };
        let Ok(path) = String::from_utf8(raw) else {
            return Ok(Err(Refusal::new(
                Reason::ArchivePath,
                "tar entry path is not UTF-8",
            )));
        };
        if let Some(why) = path_problem(&path, kind.is_dir()) {
            return bad_path(&path, why);
        }
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            tar::EntryType::Directory => continue,
            tar::EntryType::Symlink => return bad_path(&path, "symbolic link"),
            tar::EntryType::Link => return bad_path(&path, "hard link"),
            tar::EntryType::Char | tar::EntryType::Block => return bad_path(&path, "device"),
            tar::EntryType::Fifo => return bad_path(&path, "FIFO"),
            tar::EntryType::GNUSparse => return unreadable("tar sparse files are not supported"),
            other => {
                return unreadable(format!(
                    "tar entry type {:?} is not supported",
                    char::from(other.as_byte())
                ));
            }
        }
        let mut meter = Meter::new(&mut entry, budget, Packed::Same);
        let verdict = visitor.entry(&path, depth, &mut meter, budget)?;
        if let Some(refusal) = budget.tripped() {
            return Ok(Err(refusal));
        }
        if let Err(refusal) = verdict {
            return Ok(Err(refusal));
        }
    }
    if run > 0 {
        return unreadable("tar ends with an extension header but no member");
    }
    Ok(Ok(()))
}

fn walk_gzip(input: Input<'_>, depth: u32, budget: &mut Budget, visitor: &mut dyn Visitor) -> Scan {
    let mut file_slot = None;
    let reader = stream(input, &mut file_slot)?;
    let consumed = Rc::new(Cell::new(0u64));
    let counting = Counting {
        inner: reader,
        count: Rc::clone(&consumed),
    };
    let decoder = flate2::bufread::MultiGzDecoder::new(BufReader::with_capacity(IO_BUF, counting));
    if let Err(refusal) = budget.count_entry() {
        return Ok(Err(refusal));
    }
    let mut meter = Meter::new(decoder, budget, Packed::Counted(consumed));
    // The header (and its file name) is known once the first bytes are read.
    let mut head = [0u8; 8192];
    let n = loop {
        match meter.read(&mut head) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    // No stored name, or one that is not a valid path: the empty path, and the caller derives
    // a name from the archive's own.
    let name = meter
        .inner
        .header()
        .and_then(|header| header.filename())
        .and_then(|name| std::str::from_utf8(name).ok())
        .filter(|name| !name.is_empty() && path_problem(name, false).is_none())
        .unwrap_or("")
        .to_owned();
    let mut whole = (&head[..n]).chain(&mut meter);
    let verdict = visitor.entry(&name, depth, &mut whole, budget)?;
    if let Some(refusal) = budget.tripped() {
        return Ok(Err(refusal));
    }
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::path::PathBuf;
    use std::time::{Duration, Instant};
    use zip::write::SimpleFileOptions;

    pub(crate) fn limits() -> Limits {
        Limits {
            max_depth: 4,
            max_entries: 1000,
            max_expanded_bytes: 256 << 20,
            max_ratio: 200,
        }
    }

    /// Reads every entry, recursing into archives it recognises; keeps the first 4 KiB.
    pub(crate) struct Collect {
        pub(crate) seen: Vec<(String, u32, Vec<u8>)>,
        pub(crate) spill: PathBuf,
    }

    impl Collect {
        pub(crate) fn new() -> Collect {
            Collect {
                seen: Vec::new(),
                spill: std::env::temp_dir(),
            }
        }
    }

    fn sniff(head: &[u8]) -> Option<Kind> {
        if head.starts_with(b"PK\x03\x04") {
            Some(Kind::Zip)
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Some(Kind::Gzip)
        } else if head.len() >= 262 && &head[257..262] == b"ustar" {
            Some(Kind::Tar)
        } else {
            None
        }
    }

    impl Visitor for Collect {
        fn entry(
            &mut self,
            path: &str,
            depth: u32,
            reader: &mut dyn Read,
            budget: &mut Budget,
        ) -> Scan {
            let mut head = Vec::new();
            reader.take(512).read_to_end(&mut head)?;
            if let Some(kind) = sniff(&head) {
                self.seen.push((path.to_owned(), depth, Vec::new()));
                let spill = self.spill.clone();
                let mut whole = head.as_slice().chain(reader);
                return walk(
                    kind,
                    Input::Stream(&mut whole),
                    depth + 1,
                    budget,
                    &spill,
                    self,
                );
            }
            let mut kept = head;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                if kept.len() < 4096 {
                    kept.extend_from_slice(&buf[..n.min(4096)]);
                }
            }
            self.seen.push((path.to_owned(), depth, kept));
            Ok(Ok(()))
        }
    }

    pub(crate) fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            if name.ends_with('/') {
                w.add_directory(*name, opts).unwrap();
            } else {
                w.start_file(*name, opts).unwrap();
                w.write_all(data).unwrap();
            }
        }
        w.finish().unwrap().into_inner()
    }

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn gzip_of(name: Option<&str>, data: &[u8]) -> Vec<u8> {
        let mut builder = flate2::GzBuilder::new();
        if let Some(name) = name {
            builder = builder.filename(name);
        }
        let mut w = builder.write(Vec::new(), flate2::Compression::default());
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn run(kind: Kind, data: &[u8], limits: Limits) -> (Result<(), Refusal>, Collect) {
        let mut visitor = Collect::new();
        let mut budget = Budget::new(limits);
        let mut reader = data;
        let spill = visitor.spill.clone();
        let verdict = walk(
            kind,
            Input::Stream(&mut reader),
            1,
            &mut budget,
            &spill,
            &mut visitor,
        )
        .expect("no I/O fault");
        (verdict, visitor)
    }

    fn refused(kind: Kind, data: &[u8], limits: Limits) -> Refusal {
        run(kind, data, limits).0.expect_err("refused")
    }

    #[test]
    fn clean_zip_visits_every_file_with_its_bytes() {
        let data = zip_of(&[
            ("docs/", b""),
            ("docs/a.txt", b"alpha"),
            ("b.bin", &[7u8; 70_000]),
            ("机密/说明.txt", "正文".as_bytes()),
        ]);
        let (verdict, v) = run(Kind::Zip, &data, limits());
        assert_eq!(verdict, Ok(()));
        let names: Vec<_> = v.seen.iter().map(|(p, d, _)| (p.as_str(), *d)).collect();
        assert_eq!(
            names,
            [("docs/a.txt", 1), ("b.bin", 1), ("机密/说明.txt", 1)]
        );
        assert_eq!(v.seen[0].2, b"alpha");
        assert_eq!(v.seen[1].2, vec![7u8; 4096 + 512]);
        assert_eq!(v.seen[2].2, "正文".as_bytes());
    }

    #[test]
    fn zip_from_a_file_is_read_in_place_and_entries_are_counted() {
        let data = zip_of(&[("d/", b""), ("d/x", b"1"), ("y", b"2")]);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data).unwrap();
        let mut visitor = Collect::new();
        let mut budget = Budget::new(limits());
        let spill = visitor.spill.clone();
        let verdict = walk(
            Kind::Zip,
            Input::File(&file),
            1,
            &mut budget,
            &spill,
            &mut visitor,
        );
        assert_eq!(verdict.unwrap(), Ok(()));
        assert_eq!(budget.entries(), 3);
        assert_eq!(budget.expanded(), 2);
        assert_eq!(visitor.seen.len(), 2);
    }

    #[test]
    fn zip_entry_paths_are_checked() {
        for name in [
            "../../x",
            "/etc/passwd",
            "a/../b",
            "a//b",
            "./a",
            "a\\b",
            "C:x",
            "a\u{0}b",
            "a\nb",
        ] {
            let data = zip_of(&[("ok.txt", b"fine"), (name, b"x")]);
            let refusal = refused(Kind::Zip, &data, limits());
            assert_eq!(refusal.reason, Reason::ArchivePath, "{name:?}: {refusal}");
        }
    }

    #[test]
    fn zip_symlink_is_refused() {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.add_symlink("link", "/etc/passwd", SimpleFileOptions::default())
            .unwrap();
        let data = w.finish().unwrap().into_inner();
        assert_eq!(
            refused(Kind::Zip, &data, limits()).reason,
            Reason::ArchivePath
        );
    }

    #[test]
    fn corrupt_zip_is_unreadable_not_a_fault() {
        let good = zip_of(&[("a.txt", &[b'a'; 10_000])]);
        // Not a zip at all.
        let r = refused(Kind::Zip, b"this is not a zip file", limits());
        assert_eq!(r.reason, Reason::ContentUnreadable);
        // Truncated.
        let r = refused(Kind::Zip, &good[..good.len() / 2], limits());
        assert_eq!(r.reason, Reason::ContentUnreadable);
        // Damaged deflate data (CRC or inflate error).
        let mut bad = good.clone();
        for b in &mut bad[40..50] {
            *b ^= 0x55;
        }
        let r = refused(Kind::Zip, &bad, limits());
        assert_eq!(r.reason, Reason::ContentUnreadable, "{r}");
    }

    #[test]
    fn encrypted_zip_is_unreadable() {
        let mut data = zip_of(&[("a.txt", b"secret")]);
        // Set the encryption bit in the central directory and the local header.
        for sig in [&b"PK\x03\x04"[..], &b"PK\x01\x02"[..]] {
            let at = data.windows(4).position(|w| w == sig).unwrap();
            let flags = if sig[2] == 3 { at + 6 } else { at + 8 };
            data[flags] |= 1;
        }
        let r = refused(Kind::Zip, &data, limits());
        assert_eq!(r.reason, Reason::ContentUnreadable, "{r}");
    }

    fn zeros_zip(len: u64) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(len >= u32::MAX as u64);
        w.start_file("zeros.bin", opts).unwrap();
        io::copy(&mut io::repeat(0).take(len), &mut w).unwrap();
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn zip_bomb_is_refused_at_once_from_the_central_directory() {
        let data = zeros_zip(2 << 30);
        assert!(data.len() < 4 << 20, "{}", data.len());
        let start = Instant::now();
        let r = refused(Kind::Zip, &data, limits());
        assert_eq!(r.reason, Reason::ArchiveLimit, "{r}");
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    /// Rewrites the declared uncompressed size of the only entry (a lying header).
    fn understate(data: &mut [u8], size: u32) {
        let local = data.windows(4).position(|w| w == b"PK\x03\x04").unwrap();
        data[local + 22..local + 26].copy_from_slice(&size.to_le_bytes());
        let central = data.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
        data[central + 24..central + 28].copy_from_slice(&size.to_le_bytes());
    }

    #[test]
    fn lying_zip_is_refused_while_reading_by_ratio_and_by_size() {
        let mut data = zeros_zip(64 << 20);
        understate(&mut data, 1000);
        let start = Instant::now();
        let r = refused(Kind::Zip, &data, limits());
        assert_eq!(r.reason, Reason::ArchiveLimit, "{r}");
        assert!(r.detail.contains("times"), "{r}");
        let no_ratio = Limits {
            max_ratio: u64::MAX,
            max_expanded_bytes: 8 << 20,
            ..limits()
        };
        let r = refused(Kind::Zip, &data, no_ratio);
        assert_eq!(r.reason, Reason::ArchiveLimit, "{r}");
        assert!(r.detail.contains("bytes"), "{r}");
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn nested_zip_is_visited_at_depth_two() {
        let inner = zip_of(&[("inner.txt", b"deep")]);
        let outer = zip_of(&[("top.txt", b"top"), ("inner.zip", &inner)]);
        let (verdict, v) = run(Kind::Zip, &outer, limits());
        assert_eq!(verdict, Ok(()));
        let got: Vec<_> = v
            .seen
            .iter()
            .map(|(p, d, b)| (p.as_str(), *d, b.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                ("top.txt", 1, &b"top"[..]),
                ("inner.zip", 1, &b""[..]),
                ("inner.txt", 2, &b"deep"[..]),
            ]
        );
    }

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

    #[test]
    fn clean_tar_visits_every_file_with_its_bytes() {
        let long = format!("{}/file.txt", "d".repeat(150));
        let data = tar_of(&[("a.txt", b"alpha"), (&long, b"long name"), ("e", b"")]);
        let (verdict, v) = run(Kind::Tar, &data, limits());
        assert_eq!(verdict, Ok(()));
        let got: Vec<_> = v
            .seen
            .iter()
            .map(|(p, d, b)| (p.as_str(), *d, b.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                ("a.txt", 1, &b"alpha"[..]),
                (long.as_str(), 1, &b"long name"[..]),
                ("e", 1, &b""[..]),
            ]
        );
    }

    #[test]
    fn tar_links_devices_and_bad_paths_are_refused() {
        for kind in [
            tar::EntryType::Symlink,
            tar::EntryType::Link,
            tar::EntryType::Char,
            tar::EntryType::Fifo,
        ] {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            h.set_entry_type(kind);
            h.set_link_name("target").unwrap();
            b.append_data(&mut h, "link", io::empty()).unwrap();
            let data = b.into_inner().unwrap();
            assert_eq!(
                refused(Kind::Tar, &data, limits()).reason,
                Reason::ArchivePath
            );
        }
        // A raw header: the builder itself refuses to write `..`.
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..7].copy_from_slice(b"../evil");
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        data.extend_from_slice(&[0u8; 1024]);
        assert_eq!(
            refused(Kind::Tar, &data, limits()).reason,
            Reason::ArchivePath
        );
    }

    #[test]
    fn corrupt_tar_is_unreadable() {
        let mut data = tar_of(&[("a.txt", b"alpha")]);
        data[148] ^= 0x11; // checksum field
        assert_eq!(
            refused(Kind::Tar, &data, limits()).reason,
            Reason::ContentUnreadable
        );
        let data = tar_of(&[("a.txt", &[1u8; 5000])]);
        assert_eq!(
            refused(Kind::Tar, &data[..2000], limits()).reason,
            Reason::ContentUnreadable
        );
    }

    #[test]
    fn gzip_is_one_entry_named_from_its_header() {
        let (verdict, v) = run(Kind::Gzip, &gzip_of(Some("report.txt"), b"hello"), limits());
        assert_eq!(verdict, Ok(()));
        assert_eq!(v.seen, [("report.txt".to_owned(), 1, b"hello".to_vec())]);
        let (verdict, v) = run(Kind::Gzip, &gzip_of(Some("../x"), b"hi"), limits());
        assert_eq!(verdict, Ok(()));
        assert_eq!(v.seen, [("".to_owned(), 1, b"hi".to_vec())]);
        let (_, v) = run(Kind::Gzip, &gzip_of(None, b""), limits());
        assert_eq!(v.seen, [("".to_owned(), 1, Vec::new())]);
    }

    #[test]
    fn gzip_without_a_stored_name_yields_the_empty_path() {
        let (verdict, v) = run(Kind::Gzip, &gzip_of(None, b"plain"), limits());
        assert_eq!(verdict, Ok(()));
        assert_eq!(v.seen, [(String::new(), 1, b"plain".to_vec())]);
        // A stored name that is not a valid path is not passed on either.
        for bad in ["", "/etc/passwd", "a\\b", "CON/x.txt", "-rf/x"] {
            let (verdict, v) = run(Kind::Gzip, &gzip_of(Some(bad), b"x"), limits());
            assert_eq!(verdict, Ok(()), "{bad:?}");
            assert_eq!(v.seen[0].0, "", "{bad:?}");
        }
        // A valid stored name is kept, directories included.
        let (_, v) = run(Kind::Gzip, &gzip_of(Some("d/report.txt"), b"x"), limits());
        assert_eq!(v.seen[0].0, "d/report.txt");
    }

    #[test]
    fn tar_gz_is_gzip_holding_a_tar() {
        let tgz = gzip_of(None, &tar_of(&[("a.txt", b"alpha"), ("b.txt", b"beta")]));
        let (verdict, v) = run(Kind::Gzip, &tgz, limits());
        assert_eq!(verdict, Ok(()));
        let got: Vec<_> = v.seen.iter().map(|(p, d, _)| (p.as_str(), *d)).collect();
        assert_eq!(got, [("", 1), ("a.txt", 2), ("b.txt", 2)]);
    }

    #[test]
    fn gzip_bomb_and_corruption_are_refused() {
        let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        io::copy(&mut io::repeat(0).take(256 << 20), &mut w).unwrap();
        let bomb = w.finish().unwrap();
        let start = Instant::now();
        let r = refused(Kind::Gzip, &bomb, limits());
        assert_eq!(r.reason, Reason::ArchiveLimit, "{r}");
        assert!(start.elapsed() < Duration::from_secs(1));
        let r = refused(Kind::Gzip, b"not gzip at all", limits());
        assert_eq!(r.reason, Reason::ContentUnreadable);
        let mut bad = gzip_of(None, &[b'z'; 10_000]);
        let n = bad.len();
        bad[n - 6] ^= 0xff; // CRC
        let r = refused(Kind::Gzip, &bad, limits());
        assert_eq!(r.reason, Reason::ContentUnreadable, "{r}");
    }

    #[test]
    fn a_visitor_that_swallows_the_limit_error_is_still_refused() {
        struct Swallow;
        impl Visitor for Swallow {
            fn entry(&mut self, _: &str, _: u32, r: &mut dyn Read, _: &mut Budget) -> Scan {
                let _ = io::copy(r, &mut io::sink());
                Ok(Ok(()))
            }
        }
        let mut data = zeros_zip(16 << 20);
        understate(&mut data, 10);
        let mut budget = Budget::new(limits());
        let mut reader = data.as_slice();
        let verdict = walk(
            Kind::Zip,
            Input::Stream(&mut reader),
            1,
            &mut budget,
            &std::env::temp_dir(),
            &mut Swallow,
        );
        assert_eq!(verdict.unwrap().unwrap_err().reason, Reason::ArchiveLimit);
    }

    #[test]
    fn directory_names_with_invisible_characters_or_device_names_are_refused() {
        for name in [
            "a\u{202E}txt.exe/x.txt",
            "safe/\u{200B}/x.txt",
            "\u{2066}d/x",
            "d\u{FEFF}/x",
            "d\u{061C}/x",
            "d\u{2060}/x",
            "CON/x.txt",
            "docs/nul.txt/x",
            "Lpt9/x",
            "com1.d/x",
            "AUX /x",
            "-rf/x",
            "a/--help/x",
            "a/b/CON/",
        ] {
            let data = zip_of(&[("ok.txt", b"fine"), (name, b"x")]);
            let refusal = refused(Kind::Zip, &data, limits());
            assert_eq!(refusal.reason, Reason::ArchivePath, "{name:?}: {refusal}");
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_entry_type(if name.ends_with('/') {
                tar::EntryType::Directory
            } else {
                tar::EntryType::Regular
            });
            let mut b = tar::Builder::new(Vec::new());
            b.append_data(&mut h, name, &b"x"[..]).unwrap();
            let data = b.into_inner().unwrap();
            let refusal = refused(Kind::Tar, &data, limits());
            assert_eq!(refusal.reason, Reason::ArchivePath, "{name:?}: {refusal}");
        }
        // The leaf is left to the caller's name rules; look-alikes pass.
        for name in [
            "d/CON.txt",
            "d/-x.txt",
            "d/a\u{202E}b.txt",
            "CONSOLE/x",
            "COM10/x",
            "LPT0/x",
            "com/x",
            "a-b/x",
        ] {
            assert_eq!(path_problem(name, false), None, "{name:?}");
        }
    }

    #[test]
    fn nested_zip_larger_than_the_spill_cap_is_refused() {
        let huge = Limits {
            max_expanded_bytes: 1 << 40,
            max_ratio: u64::MAX,
            ..limits()
        };
        let mut visitor = Collect::new();
        let mut budget = Budget::new(huge);
        let mut reader = io::repeat(0).take(SPILL_CAP + 1);
        let spill = visitor.spill.clone();
        let start = Instant::now();
        let verdict = walk(
            Kind::Zip,
            Input::Stream(&mut reader),
            2,
            &mut budget,
            &spill,
            &mut visitor,
        )
        .expect("no I/O fault");
        let r = verdict.expect_err("refused");
        assert_eq!(r.reason, Reason::ArchiveLimit, "{r}");
        assert_eq!(r.detail, "nested zip larger than 256 MiB");
        assert!(start.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn a_spill_fault_is_an_error_not_a_refusal() {
        /// A disk that is full, reported without an OS error code.
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let budget = Budget::new(limits());
        let mut reader = &b"PK\x03\x04 some zip bytes"[..];
        match copy_capped(&mut reader, &mut Full, SPILL_CAP, &budget) {
            Err(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::StorageFull),
            other => panic!("expected a fault, got {other:?}"),
        }
        assert_eq!(budget.tripped(), None);
        // A spill directory that cannot be written is a fault too.
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let mut visitor = Collect::new();
        let mut budget = Budget::new(limits());
        let data = zip_of(&[("a.txt", b"a")]);
        let mut reader = data.as_slice();
        let verdict = walk(
            Kind::Zip,
            Input::Stream(&mut reader),
            1,
            &mut budget,
            &missing,
            &mut visitor,
        );
        assert!(verdict.is_err(), "{verdict:?}");
    }

    #[test]
    fn oversized_central_directory_is_refused_before_it_is_loaded() {
        let few = Limits {
            max_entries: 10,
            ..limits()
        };
        let long: Vec<String> = (0..3)
            .map(|i| format!("{i}{}", "n".repeat(30_000)))
            .collect();
        let entries: Vec<(&str, &[u8])> = long.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
        let data = zip_of(&entries);
        let r = refused(Kind::Zip, &data, few);
        assert_eq!(r.reason, Reason::ArchiveLimit, "{r}");
        assert!(r.detail.contains("central directory"), "{r}");
        // The same zip passes when the limits allow it.
        let (verdict, v) = run(Kind::Zip, &data, limits());
        assert_eq!(verdict, Ok(()));
        assert_eq!(v.seen.len(), 3);
        // A zip64 record declaring a huge directory is refused too.
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.set_zip64_comment(Some("zip64"));
        w.start_file("a.txt", SimpleFileOptions::default()).unwrap();
        w.write_all(b"a").unwrap();
        let mut data = w.finish().unwrap().into_inner();
        assert_eq!(run(Kind::Zip, &data, limits()).0, Ok(()));
        let at = data
            .windows(4)
            .rposition(|w| w == b"PK\x06\x06")
            .expect("zip64 record");
        data[at + 40..at + 48].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let r = refused(Kind::Zip, &data, limits());
        assert_eq!(r.reason, Reason::ArchiveLimit, "{r}");
        assert!(r.detail.contains("central directory"), "{r}");
    }

    #[test]
    fn path_rules() {
        assert_eq!(path_problem("a/b.txt", false), None);
        assert_eq!(path_problem("dir/", true), None);
        assert!(path_problem("dir/", false).is_some());
        assert!(path_problem("", false).is_some());
        assert!(path_problem("/", true).is_some());
        assert!(path_problem("a/./b", false).is_some());
        assert!(path_problem("a\u{7f}", false).is_some());
        assert!(path_problem("a:b", false).is_some());
        assert_eq!(path_problem("ab:c", false), None);
    }
}
