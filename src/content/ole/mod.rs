//! OLE2 compound files ([MS-CFB]): legacy Word, Excel and PowerPoint documents and WPS
//! Office's own formats (.wps, .et, .dps), told apart by their root entries and read for
//! what a policy refuses: macros, encryption, embedded objects and text.
//!
//! ```text
//!  input ─► spill (a stream; at most MAX_COMPOUND_FILE) ─► preflight: the DIFAT, directory
//!           and MiniFAT chains sized before the reader loads them ─► cfb ─► root entries:
//!    WordDocument         ─► word        FIB: encryption; piece table ─► lines
//!    Workbook | Book      ─► excel       BIFF: FILEPASS, macro sheets; SST, LABEL ─► lines
//!    PowerPoint Document  ─► powerpoint  records: encryption, VBA; text atoms ─► lines;
//!                            ExOleObjStg ─► inflated to a temporary file ─► an object
//!    anything else        ─► refused: an installer, a mail message, a thumbnail cache …
//!  a document's \x05SummaryInformation, \x05DocumentSummaryInformation ─► lines
//!  any storage: Macros, _VBA_PROJECT_CUR, VBA, _VBA_PROJECT, dir + PROJECT ─► ActiveContent
//!               EncryptionInfo, EncryptedPackage, \x06DataSpaces ─► ContentUnreadable
//!  ObjectPool/*, MBD*:  \x01Ole10Native ─► package ─► the file inside, to the visitor
//!                       Equation Native ─► ActiveContent (Equation Editor 3.0)
//!                       an office document ─► read like one, one level deeper
//!                       Package, CONTENTS ─► the file inside, to the visitor
//!                       anything else ─► ContentUnreadable
//! ```
//!
//! One module per format:
//!
//! ```text
//!  mod         open, preflight, root entries, storages, embedded objects, the line buffer
//!  word        [MS-DOC]  FIB, Clx, PlcPcd pieces (CP1252-compressed or UTF-16LE)
//!  excel       [MS-XLS]  BIFF8 records: BoundSheet8, FILEPASS, SST + CONTINUE, LABEL …
//!  powerpoint  [MS-PPT]  the record tree: text atoms, CryptSession10Container, VBAInfo
//!  package     the OLE Package (Ole10Native) header: the embedded file's name and size
//!  properties  [MS-OLEPS] SummaryInformation, DocumentSummaryInformation: title, author …
//! ```
//!
//! Memory: the compound file reader keeps the FAT (4 bytes a sector), the MiniFAT and the
//! directory (one entry per 128 bytes of directory sectors) in memory, so the preflight
//! refuses a file whose DIFAT, directory or MiniFAT chain is longer than the caps below
//! before the reader is opened; every stream is then read through buffers of fixed size.
//! A corrupt compound file or stream is `ContentUnreadable`; only a fault of the machine (an
//! OS error of the file or the spill) is an `io::Error`.

mod excel;
mod package;
mod powerpoint;
mod properties;
mod word;

use crate::content::archive::{self, Budget, Input, Spill, Visitor};
use crate::content::detect::{HEAD_LEN, LEGACY_OFFICE_EXTENSIONS, detect};
use crate::content::source::{Source, SourceCursor};
use crate::content::text::overlap_tail;
use crate::content::{LineSink, Scan};
use crate::core::reason::{Reason, Refusal};
use crate::keys::at_rest::Scratch;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// Largest compound file read, in bytes (a stream is spilled up to this size; a larger file
/// is an `ArchiveLimit` refusal).
pub const MAX_COMPOUND_FILE: u64 = 256 << 20;

/// Most directory entries a compound file may declare (each 128 bytes on disk).
pub const MAX_DIRECTORY_ENTRIES: u64 = 65_536;

/// Largest MiniFAT, in bytes (the reader loads it whole): 1 Mi mini sectors of 64 bytes.
pub const MAX_MINIFAT_BYTES: u64 = 4 << 20;

/// Most FAT sectors the DIFAT may list: enough for a file of `MAX_COMPOUND_FILE` bytes in
/// 512-byte sectors, plus slack.
const MAX_FAT_SECTORS: u64 = (MAX_COMPOUND_FILE / 512) / 128 + 8;

/// Buffer of one open stream inside the compound file reader, in bytes.
const STREAM_BUFFER: usize = 64 * 1024;

/// Longest line handed to the sink at once, in bytes of UTF-8: a longer paragraph comes in
/// pieces, each after a cut beginning with the end of the piece before it, so a word across
/// a cut is seen whole.
pub const MAX_LINE: usize = 64 * 1024;

/// Size of the buffers streams are read through, in bytes.
const IO_BUF: usize = 64 * 1024;

/// Why reading stops: a verdict on the content, or a fault of the machine.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The content is refused.
    Refused(Refusal),
    /// The machine failed (an OS error of the file or the spill).
    Fault(io::Error),
}

/// What a reading step gives: go on, or stop.
pub(crate) type Step = Result<(), Stop>;

impl From<io::Error> for Stop {
    /// An OS error is a fault; any other error of the compound file reader means the
    /// content cannot be read as the compound file it claims to be.
    fn from(e: io::Error) -> Stop {
        if e.raw_os_error().is_some() {
            Stop::Fault(e)
        } else {
            Stop::Refused(Refusal::new(
                Reason::ContentUnreadable,
                format!("compound file cannot be read: {e}"),
            ))
        }
    }
}

/// A refusal that ends the reading.
pub(crate) fn refuse(reason: Reason, detail: impl Into<String>) -> Stop {
    Stop::Refused(Refusal::new(reason, detail))
}

/// The content cannot be read (ContentUnreadable).
pub(crate) fn unreadable(detail: impl Into<String>) -> Stop {
    refuse(Reason::ContentUnreadable, detail)
}

/// The refusal for an encrypted document, whatever the channel.
pub(crate) fn encrypted(part: &str, how: &str) -> Stop {
    unreadable(format!("{part}: encrypted ({how}): cannot be inspected"))
}

/// The document a compound file holds, told by its root entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    /// A `WordDocument` stream: Word 97-2003 or WPS Writer.
    Word,
    /// A `Workbook` (BIFF8) or `Book` (BIFF5) stream: Excel or WPS Spreadsheets.
    Excel,
    /// A `PowerPoint Document` stream: PowerPoint 97-2003 or WPS Presentation.
    PowerPoint,
}

impl Document {
    /// The document's name in refusal details.
    pub fn name(self) -> &'static str {
        match self {
            Document::Word => "a Word document",
            Document::Excel => "an Excel workbook",
            Document::PowerPoint => "a PowerPoint presentation",
        }
    }

    /// The extensions that agree with the document.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Document::Word => &["doc", "dot", "wps"],
            Document::Excel => &["xls", "xlt", "et", "ett"],
            Document::PowerPoint => &["ppt", "pot", "pps", "dps", "dpt"],
        }
    }
}

/// One entry of a storage: its name and whether it is a stream.
#[derive(Debug, Clone)]
struct Child {
    name: String,
    stream: bool,
}

/// The document the entries of a storage make, if any.
fn document_of(children: &[Child]) -> Option<Document> {
    let has = |n: &str| children.iter().any(|c| c.stream && c.name == n);
    if has("WordDocument") {
        Some(Document::Word)
    } else if has("Workbook") || has("Book") {
        Some(Document::Excel)
    } else if has("PowerPoint Document") {
        Some(Document::PowerPoint)
    } else {
        None
    }
}

/// What a compound file that holds no office document is, for the refusal detail.
fn describe_other(children: &[Child]) -> &'static str {
    let has = |n: &str| children.iter().any(|c| c.name.eq_ignore_ascii_case(n));
    let msi = children.iter().any(|c| {
        c.name
            .chars()
            .next()
            .is_some_and(|ch| ('\u{3800}'..='\u{4840}').contains(&ch))
    });
    if msi {
        "a Windows Installer package"
    } else if has("__properties_version1.0")
        || children.iter().any(|c| c.name.starts_with("__substg1.0_"))
    {
        "an Outlook message"
    } else if has("Catalog") {
        "a Windows thumbnail cache"
    } else if has("EncryptionInfo") || has("EncryptedPackage") {
        "an encrypted Office Open XML document"
    } else if has("\u{1}Ole10Native") {
        "an OLE package"
    } else if has("CONTENTS") {
        "a Works or other non-Office document"
    } else {
        "a compound file holding no Word, Excel or PowerPoint document"
    }
}

/// `name` inside `storage`, as a path for the reader ("/" is the root).
fn join(storage: &str, name: &str) -> String {
    if storage == "/" {
        format!("/{name}")
    } else {
        format!("{storage}/{name}")
    }
}

/// A path as shown in refusal details: without the leading slash, control characters
/// escaped.
pub(crate) fn shown(path: &str) -> String {
    path.trim_start_matches('/')
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Gathers text into lines and hands each to the sink; a line longer than [`MAX_LINE`]
/// comes in pieces that overlap. `part` names the stream in refusal details.
pub(crate) struct TextOut<'s, 'a> {
    line: String,
    /// How many bytes at the start of `line` were handed over already, as the end of the
    /// piece before a cut.
    carried: usize,
    sink: &'s mut LineSink<'a>,
    part: String,
}

impl<'s, 'a> TextOut<'s, 'a> {
    /// Lines to `sink`.
    pub(crate) fn new(sink: &'s mut LineSink<'a>) -> TextOut<'s, 'a> {
        TextOut {
            line: String::new(),
            carried: 0,
            sink,
            part: String::new(),
        }
    }

    /// Names the part the next lines come from (ends the current line).
    pub(crate) fn part(&mut self, part: &str) -> Step {
        self.end()?;
        self.part = shown(part);
        Ok(())
    }

    fn hand(&mut self) -> Step {
        (self.sink)(&self.line).map_err(|r| {
            Stop::Refused(Refusal::new(
                r.reason,
                format!("stream {}: {}", self.part, r.detail),
            ))
        })
    }

    /// Adds one character to the current line.
    pub(crate) fn push(&mut self, c: char) -> Step {
        if self.line.len() + c.len_utf8() > MAX_LINE {
            self.hand()?;
            let keep = overlap_tail(&self.line).len();
            self.line.drain(..self.line.len() - keep);
            self.carried = keep;
        }
        self.line.push(c);
        Ok(())
    }

    /// Adds text to the current line.
    pub(crate) fn push_str(&mut self, s: &str) -> Step {
        s.chars().try_for_each(|c| self.push(c))
    }

    /// Ends the current line: hands over what was not handed over yet.
    pub(crate) fn end(&mut self) -> Step {
        let fresh = self.line.len() > self.carried;
        let result = if fresh { self.hand() } else { Ok(()) };
        self.line.clear();
        self.carried = 0;
        result
    }
}

/// Reads a compound file: the document it holds (`ext` is the name's extension; one of
/// [`LEGACY_OFFICE_EXTENSIONS`] asks for a document that agrees with it, any other — `bin`
/// for the OLE objects of an office package — reads the root as an embedded object).
/// Lines of text go to `lines` when given (the policy reads text); embedded files go to
/// `embedded` at nesting `depth + 1`, counted against `budget`'s depth limit. A stream is
/// spilled into `work` first.
///
/// Refusals: `TypeMismatch` (no office document, or one that disagrees with the
/// extension), `ActiveContent` (macros, macro sheets, Equation Editor objects),
/// `ContentUnreadable` (encrypted, corrupt, an embedded object that cannot be inspected),
/// `ArchiveLimit` (larger than [`MAX_COMPOUND_FILE`], a directory larger than
/// [`MAX_DIRECTORY_ENTRIES`], nested too deep), and whatever the sink or the visitor refuse.
///
/// # Errors
/// An OS error reading the file or writing the spill.
pub fn scan_ole(
    input: Input<'_>,
    ext: &str,
    lines: Option<&mut LineSink<'_>>,
    embedded: &mut dyn Visitor,
    depth: u32,
    budget: &mut Budget,
    work: &Path,
) -> Scan {
    let spilled;
    let file: &dyn Source = match input {
        Input::File(file) => file,
        Input::Stream(reader) => {
            match archive::spill(reader, work, MAX_COMPOUND_FILE, "compound file", budget) {
                Spill::Ready(file) => {
                    spilled = file;
                    &spilled
                }
                Spill::Verdict(verdict) => return verdict,
            }
        }
    };
    let mut text = lines.map(TextOut::new);
    let result = open_and_read(file, ext, text.as_mut(), embedded, depth, budget, work)
        .and_then(|()| text.as_mut().map_or(Ok(()), TextOut::end));
    match result {
        Ok(()) => Ok(Ok(())),
        Err(Stop::Refused(r)) => Ok(Err(r)),
        Err(Stop::Fault(e)) => Err(e),
    }
}

fn open_and_read(
    file: &dyn Source,
    ext: &str,
    text: Option<&mut TextOut<'_, '_>>,
    embedded: &mut dyn Visitor,
    depth: u32,
    budget: &mut Budget,
    work: &Path,
) -> Step {
    let len = file.size()?;
    if len > MAX_COMPOUND_FILE {
        return Err(refuse(
            Reason::ArchiveLimit,
            format!("compound file larger than {} MiB", MAX_COMPOUND_FILE >> 20),
        ));
    }
    let mut handle = SourceCursor::new(file);
    preflight(&mut handle, len)?;
    handle.seek(SeekFrom::Start(0))?;
    let cf = cfb::OpenOptions::new()
        .max_buffer_size(STREAM_BUFFER)
        .open_with(handle)?;
    let mut ole = Ole {
        cf,
        text,
        embedded,
        budget,
        work,
        expanded: 0,
    };
    if LEGACY_OFFICE_EXTENSIONS.contains(&ext) {
        ole.root_document(ext, depth)
    } else {
        ole.object("/", depth)
    }
}

/// An open compound file and where what is found in it goes.
struct Ole<'f, 't, 's, 'a, 'v> {
    cf: cfb::CompoundFile<SourceCursor<'f>>,
    text: Option<&'t mut TextOut<'s, 'a>>,
    embedded: &'v mut dyn Visitor,
    budget: &'v mut Budget,
    /// Where embedded storages are decompressed to.
    work: &'v Path,
    /// Bytes of embedded storages decompressed so far.
    expanded: u64,
}

impl Ole<'_, '_, '_, '_, '_> {
    /// The entries of `storage`.
    fn children(&self, storage: &str) -> Result<Vec<Child>, Stop> {
        Ok(self
            .cf
            .read_storage(storage)?
            .map(|e| Child {
                name: e.name().to_string(),
                stream: e.is_stream(),
            })
            .collect())
    }

    /// The root of a file named as a document: it must hold the document its extension
    /// says.
    fn root_document(&mut self, ext: &str, depth: u32) -> Step {
        let children = self.children("/")?;
        encryption_streams("/", &children)?;
        let Some(document) = document_of(&children) else {
            return Err(refuse(
                Reason::TypeMismatch,
                format!(
                    "compound file is {}, not a document the extension {ext:?} names",
                    describe_other(&children)
                ),
            ));
        };
        if !document.extensions().contains(&ext) {
            return Err(refuse(
                Reason::TypeMismatch,
                format!(
                    "compound file holds {} but the extension is {ext:?}",
                    document.name()
                ),
            ));
        }
        self.document("/", document, depth)
    }

    /// Reads the document in `storage`: encryption, macros, its main stream (text, macro
    /// sheets, objects of a presentation), then its embedded objects at `depth + 1`.
    fn document(&mut self, storage: &str, document: Document, depth: u32) -> Step {
        let children = self.children(storage)?;
        encryption_streams(storage, &children)?;
        self.macros(storage)?;
        let text = self.text.as_deref_mut();
        match document {
            Document::Word => word::scan(&mut self.cf, storage, text)?,
            Document::Excel => excel::scan(&mut self.cf, storage, &children, text)?,
            Document::PowerPoint => {
                let objects = powerpoint::scan(&mut self.cf, storage, text)?;
                for (n, object) in objects.iter().enumerate() {
                    self.presentation_object(storage, n, object, depth + 1)?;
                }
            }
        }
        if let Some(text) = self.text.as_deref_mut() {
            properties::scan(&mut self.cf, storage, text)?;
        }
        let objects: Vec<String> = match document {
            Document::Word => {
                let pool = join(storage, "ObjectPool");
                if self.cf.is_storage(&pool) {
                    self.children(&pool)?
                        .into_iter()
                        .filter(|c| !c.stream)
                        .map(|c| join(&pool, &c.name))
                        .collect()
                } else {
                    Vec::new()
                }
            }
            Document::Excel => children
                .iter()
                .filter(|c| !c.stream && c.name.starts_with("MBD"))
                .map(|c| join(storage, &c.name))
                .collect(),
            // a presentation keeps its objects inside its stream (ExOleObjStg records)
            Document::PowerPoint => Vec::new(),
        };
        for object in objects {
            self.object(&object, depth + 1)?;
        }
        Ok(())
    }

    /// Refuses VBA projects and ActiveX controls anywhere under `storage`.
    fn macros(&self, storage: &str) -> Step {
        for entry in self.cf.walk_storage(storage)? {
            let name = entry.name();
            let path = entry.path().to_string_lossy();
            let what = match name.to_ascii_lowercase().as_str() {
                "macros" if entry.is_storage() => Some("Word macros (VBA project)"),
                "_vba_project_cur" if entry.is_storage() => Some("Excel macros (VBA project)"),
                "vba" if entry.is_storage() => Some("VBA project"),
                "_vba_project" => Some("VBA project"),
                "dir" if entry.is_stream() => {
                    let parent = entry.path().parent().unwrap_or(Path::new("/"));
                    self.cf
                        .is_stream(parent.join("PROJECT"))
                        .then_some("VBA project")
                }
                "\u{3}ocxname" => Some("ActiveX control"),
                _ => None,
            };
            if let Some(what) = what {
                return Err(refuse(
                    Reason::ActiveContent,
                    format!("{}: {what}", shown(&path)),
                ));
            }
        }
        Ok(())
    }

    /// Reads the embedded object in `storage`, nested `depth` deep.
    fn object(&mut self, storage: &str, depth: u32) -> Step {
        let limit = self.budget.limits().max_depth;
        if depth > limit {
            return Err(refuse(
                Reason::ArchiveLimit,
                format!(
                    "{}: embedded object nested {depth} deep, limit {limit}",
                    shown(storage)
                ),
            ));
        }
        let children = self.children(storage)?;
        let has = |n: &str| children.iter().any(|c| c.stream && c.name == n);
        encryption_streams(storage, &children)?;
        self.macros(storage)?;
        if has("\u{1}Ole10Native") {
            return self.package(storage, depth);
        }
        if has("Equation Native") {
            return Err(refuse(
                Reason::ActiveContent,
                format!(
                    "{}: Equation Editor 3.0 object (exploited by CVE-2017-11882)",
                    shown(storage)
                ),
            ));
        }
        if let Some(document) = document_of(&children) {
            return self.document(storage, document, depth);
        }
        for name in ["Package", "CONTENTS", "Contents"] {
            if has(name) {
                return self.contents(storage, name, depth);
            }
        }
        Err(unreadable(format!(
            "{}: an embedded object that cannot be inspected",
            shown(storage)
        )))
    }

    /// Reads the storage of an object embedded in a presentation, nested `depth` deep: it is
    /// decompressed (or copied) into an anonymous temporary file, at most the smaller of
    /// [`MAX_COMPOUND_FILE`] and what the expanded-bytes limit has left, and read as an
    /// object of its own.
    fn presentation_object(
        &mut self,
        storage: &str,
        n: usize,
        object: &powerpoint::Object,
        depth: u32,
    ) -> Step {
        let path = join(storage, "PowerPoint Document");
        let part = format!("{}: embedded object {}", shown(&path), n + 1);
        let limits = self.budget.limits();
        let left = limits
            .max_expanded_bytes
            .saturating_sub(self.budget.expanded())
            .saturating_sub(self.expanded);
        let cap = MAX_COMPOUND_FILE.min(left);
        let mut stream = self.cf.open_stream(&path)?;
        stream.seek(SeekFrom::Start(object.offset))?;
        let mut raw = stream.take(object.len);
        // spilled sealed under a one-time key: nothing of it rests on disk in plaintext
        let mut file = Scratch::new(self.work).map_err(Stop::Fault)?;
        let copied = if object.compressed {
            let mut declared = [0u8; 4];
            raw.read_exact(&mut declared)?;
            let mut inflate = flate2::read::ZlibDecoder::new(raw);
            copy_capped(&mut inflate, &mut file, cap)
        } else {
            copy_capped(&mut raw, &mut file, cap)
        };
        let size = match copied {
            Copied::Done(size) => size,
            Copied::Over => {
                return Err(refuse(
                    Reason::ArchiveLimit,
                    format!("{part}: expands to more than {cap} bytes"),
                ));
            }
            Copied::Corrupt(e) => {
                return Err(unreadable(format!("{part} cannot be decompressed: {e}")));
            }
            Copied::Fault(e) => return Err(Stop::Fault(e)),
        };
        self.expanded = self.expanded.saturating_add(size);
        let file = file.finish().map_err(Stop::Fault)?;
        let nested = open_and_read(
            &file,
            "",
            self.text.as_deref_mut(),
            &mut *self.embedded,
            depth,
            &mut *self.budget,
            self.work,
        );
        nested.map_err(|stop| match stop {
            Stop::Refused(r) => {
                Stop::Refused(Refusal::new(r.reason, format!("{part}: {}", r.detail)))
            }
            fault => fault,
        })
    }

    /// Hands the file of an OLE package to the visitor, by its own name.
    fn package(&mut self, storage: &str, depth: u32) -> Step {
        let path = join(storage, "\u{1}Ole10Native");
        let mut stream = self.cf.open_stream(&path)?;
        let len = stream.len();
        let header = match package::read_header(&mut stream, len) {
            Ok(header) => header,
            Err(package::Problem::Io(e)) => return Err(e.into()),
            Err(package::Problem::Malformed(why)) => {
                return Err(unreadable(format!("{}: OLE package {why}", shown(&path))));
            }
        };
        let name = join(storage, &header.name);
        let mut data = stream.take(u64::from(header.size));
        self.visit(&name, depth, &mut data)
    }

    /// Hands the content stream of an object (an embedded OOXML package, a PDF …) to the
    /// visitor, named after the object with the extension its content has.
    fn contents(&mut self, storage: &str, stream_name: &str, depth: u32) -> Step {
        let path = join(storage, stream_name);
        let mut stream = self.cf.open_stream(&path)?;
        let mut head = Vec::new();
        (&mut stream).take(HEAD_LEN as u64).read_to_end(&mut head)?;
        let found = detect(&head, "");
        let Some(ext) = found
            .extensions
            .first()
            .filter(|_| !matches!(found.family, "unknown" | "legacy_office" | "text"))
        else {
            return Err(unreadable(format!(
                "{}: an embedded object of a type that cannot be inspected",
                shown(&path)
            )));
        };
        let base = storage.rsplit('/').next().unwrap_or(storage);
        let name = join(storage, &format!("{}.{ext}", base.trim_start_matches('_')));
        let mut whole = head.as_slice().chain(stream);
        self.visit(&name, depth, &mut whole)
    }

    /// Hands an embedded file to the visitor; its I/O errors are sorted like the reader's.
    fn visit(&mut self, path: &str, depth: u32, reader: &mut dyn Read) -> Step {
        match self
            .embedded
            .entry(path.trim_start_matches('/'), depth, reader, self.budget)
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(r)) => Err(Stop::Refused(r)),
            Err(e) => Err(e.into()),
        }
    }
}

/// How a capped copy ended.
enum Copied {
    /// All of it, this many bytes.
    Done(u64),
    /// More than the cap.
    Over,
    /// The input is corrupt (a bad zlib stream, a stream of the compound file that cannot
    /// be read).
    Corrupt(io::Error),
    /// Writing the copy failed (a full disk), or an OS error.
    Fault(io::Error),
}

/// Copies `reader` to `out` through one `IO_BUF` buffer, at most `cap` bytes.
fn copy_capped(reader: &mut dyn Read, out: &mut dyn std::io::Write, cap: u64) -> Copied {
    let mut buf = vec![0u8; IO_BUF];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Copied::Done(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.raw_os_error().is_some() => return Copied::Fault(e),
            Err(e) => return Copied::Corrupt(e),
        };
        total = total.saturating_add(n as u64);
        if total > cap {
            return Copied::Over;
        }
        if let Err(e) = out.write_all(buf.get(..n).unwrap_or_default()) {
            return Copied::Fault(e);
        }
    }
}

/// Refuses a storage that holds an encrypted package or protected content.
fn encryption_streams(storage: &str, children: &[Child]) -> Step {
    for c in children {
        if matches!(
            c.name.as_str(),
            "EncryptionInfo" | "EncryptedPackage" | "\u{6}DataSpaces" | "EncryptedSummary"
        ) {
            return Err(encrypted(
                &shown(&join(storage, &c.name)),
                "protected storage",
            ));
        }
    }
    Ok(())
}

/// The little-endian u16 at `at`, if `b` holds it.
pub(crate) fn le16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

/// The little-endian u32 at `at`, if `b` holds it.
pub(crate) fn le32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Sector ids above this are special values ([MS-CFB] 2.1): DIFSECT, FATSECT, ENDOFCHAIN,
/// FREESECT.
const MAX_REGULAR_SECTOR: u32 = 0xFFFF_FFFA;
const END_OF_CHAIN: u32 = 0xFFFF_FFFE;
const FREE_SECT: u32 = 0xFFFF_FFFF;

/// Sizes the structures the compound file reader loads whole, from the header ([MS-CFB]
/// 2.2), the DIFAT and the FAT, before it loads them: at most `MAX_FAT_SECTORS` FAT
/// sectors, a directory chain of at most `MAX_DIRECTORY_ENTRIES` entries and a MiniFAT
/// chain of at most `MAX_MINIFAT_BYTES`. Reads at most a few sectors at a time.
fn preflight(file: &mut SourceCursor<'_>, len: u64) -> Step {
    let mut header = [0u8; 512];
    file.seek(SeekFrom::Start(0))?;
    if len < 512 || file.read_exact(&mut header).is_err() {
        return Err(unreadable("compound file shorter than its header"));
    }
    let shift = le16(&header, 0x1E).unwrap_or(0);
    let sector_len: u64 = match shift {
        9 => 512,
        12 => 4096,
        _ => {
            return Err(unreadable(format!(
                "compound file sector shift {shift} is neither 9 nor 12"
            )));
        }
    };
    let field = |at| le32(&header, at).unwrap_or(END_OF_CHAIN);
    let first_dir = field(0x30);
    let first_minifat = field(0x3C);
    let mut next_difat = field(0x44);
    let sectors = len.div_ceil(sector_len).saturating_sub(1);
    let per_sector = sector_len / 4;

    // The DIFAT: the header's 109 entries, then its own chain of sectors.
    let mut fat_sectors: Vec<u32> = (0..109)
        .filter_map(|i| le32(&header, 0x4C + 4 * i))
        .filter(|&s| s <= MAX_REGULAR_SECTOR)
        .collect();
    let mut sector = vec![0u8; sector_len as usize];
    let mut difat_steps = 0u64;
    while next_difat <= MAX_REGULAR_SECTOR {
        difat_steps += 1;
        if difat_steps > MAX_FAT_SECTORS / (per_sector - 1) + 1 {
            return Err(limit("DIFAT chain"));
        }
        read_sector(file, &mut sector, next_difat, sector_len, sectors)?;
        for i in 0..(per_sector as usize - 1) {
            if let Some(s) = le32(&sector, 4 * i).filter(|&s| s <= MAX_REGULAR_SECTOR) {
                fat_sectors.push(s);
            }
        }
        next_difat = le32(&sector, sector_len as usize - 4).unwrap_or(END_OF_CHAIN);
    }
    if fat_sectors.len() as u64 > MAX_FAT_SECTORS {
        return Err(limit("FAT"));
    }

    // A chain's length, following the FAT one entry at a time, up to `cap` sectors.
    let mut chain = |start: u32, cap: u64, what: &str| -> Step {
        let mut at = start;
        let mut steps = 0u64;
        let mut entry = [0u8; 4];
        while at != END_OF_CHAIN && at != FREE_SECT {
            steps += 1;
            if steps > cap {
                return Err(limit(what));
            }
            if u64::from(at) >= sectors {
                return Err(unreadable(format!(
                    "compound file {what} chain leaves the file"
                )));
            }
            let fat_index = u64::from(at) / per_sector;
            let Some(&fat_sector) = fat_sectors.get(fat_index as usize) else {
                return Err(unreadable(format!(
                    "compound file {what} chain beyond the FAT"
                )));
            };
            if u64::from(fat_sector) >= sectors {
                return Err(unreadable("compound file FAT sector outside the file"));
            }
            let offset =
                (u64::from(fat_sector) + 1) * sector_len + (u64::from(at) % per_sector) * 4;
            file.seek(SeekFrom::Start(offset))?;
            file.read_exact(&mut entry)?;
            at = u32::from_le_bytes(entry);
        }
        Ok(())
    };
    chain(
        first_dir,
        (MAX_DIRECTORY_ENTRIES * 128).div_ceil(sector_len),
        "directory",
    )?;
    chain(
        first_minifat,
        MAX_MINIFAT_BYTES.div_ceil(sector_len),
        "MiniFAT",
    )
}

fn read_sector(
    file: &mut SourceCursor<'_>,
    buf: &mut [u8],
    at: u32,
    sector_len: u64,
    sectors: u64,
) -> Step {
    if u64::from(at) >= sectors {
        return Err(unreadable("compound file DIFAT chain leaves the file"));
    }
    file.seek(SeekFrom::Start((u64::from(at) + 1) * sector_len))?;
    file.read_exact(buf)?;
    Ok(())
}

fn limit(what: &str) -> Stop {
    refuse(
        Reason::ArchiveLimit,
        format!("compound file {what} larger than the limits allow"),
    )
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
