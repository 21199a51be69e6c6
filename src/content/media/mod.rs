//! Media evidence and pictures: the container structure of recordings, photos and videos is
//! walked from the first byte to the last, and a file that carries anything after its end
//! (a second file: a polyglot) is refused. Payloads (audio frames, `mdat`, strips, scans)
//! are skipped, never read into memory; every checker reads the input once, forward, through
//! one fixed buffer of [`CHUNK`] bytes.
//!
//! ```text
//!  sniff:  first bytes ─► family (mp3 | amr | wav | webp | mp4 | mov | heic | tiff)
//!  check:  family ─► one walker per container family ─► the end of the file's structure
//!                                                       ─► end: nothing, zero padding, or
//!                                                              a refusal (polyglot)
//!          riff      RIFF size ─► chunks              (WAV, WebP)
//!          isobmff   box tree: ftyp … moov … mdat     (MP4, M4A, MOV, HEIC)
//!          tiff      IFD chain, strips and tiles      (TIFF, BigTIFF)
//!          mp3       ID3v2 ─► MPEG audio frames ─► APEv2 ─► ID3v1
//!          amr       magic ─► frames by frame type    (AMR, AMR-WB)
//!          png       signature ─► chunks ─► IEND
//!          jpeg      SOI ─► segments, scans ─► EOI ─► MPF images
//!          gif       header ─► blocks ─► trailer 0x3B
//! ```
//!
//! A structure that is inconsistent or cut short is refused as `content_unreadable`; bytes
//! after the end are refused as `polyglot`, except a run of zero bytes no longer than
//! [`ZERO_PAD_ALLOWANCE`] (padding some writers add) and what each format's module names.
//! Two files can also hide inside a valid structure, in a chunk, box or strip whose payload
//! is skipped: a zip whose end record lies near the end of the file (zip tools find it
//! there) and a `%PDF-` header in the first 1024 bytes (PDF readers find it there) are
//! refused as `polyglot` too.

mod amr;
mod gif;
mod isobmff;
mod jpeg;
mod mp3;
mod png;
mod riff;
mod source;
mod tiff;

use crate::content::Scan;
use crate::core::reason::{Reason, Refusal};
use source::Source;
use std::io::{self, Read};

/// Size of the one read buffer a checker uses, in bytes; also the longest run any checker
/// looks at in one piece.
pub const CHUNK: usize = 64 * 1024;

/// Zero bytes tolerated after the end of a file that has one (sector or block padding).
pub const ZERO_PAD_ALLOWANCE: u64 = 4096;

/// A media type told from the first bytes: the family a policy names and the extensions that
/// agree with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    /// Family name as policies write it: "mp3", "amr", "wav", "webp", "mp4", "mov", "heic",
    /// "tiff".
    pub family: &'static str,
    /// Extensions, lower case, without the dot.
    pub extensions: &'static [&'static str],
}

/// Tells a media type from the first bytes of a file (`head`, any length; the longer the
/// surer). `None` when none of the media families matches: the caller goes on with its other
/// rules. The AMR magics (`#!AMR\n`, `#!AMR-WB\n`, RFC 4867 §5) are matched exactly, so that
/// any other `#!` stays a script.
pub fn sniff(head: &[u8]) -> Option<Sniffed> {
    let s = |family, extensions| Some(Sniffed { family, extensions });
    if amr::sniff(head) {
        return s("amr", &["amr"]);
    }
    if let Some(form) = riff::sniff(head) {
        return match form {
            riff::Form::Wave => s("wav", &["wav"]),
            riff::Form::Webp => s("webp", &["webp"]),
        };
    }
    if let Some(family) = isobmff::sniff(head) {
        return match family {
            isobmff::Family::Mp4 => s("mp4", &["mp4", "m4a", "m4v"]),
            isobmff::Family::Mov => s("mov", &["mov", "qt"]),
            isobmff::Family::Heic => s("heic", &["heic", "heif"]),
        };
    }
    if tiff::sniff(head) {
        return s("tiff", &["tif", "tiff"]);
    }
    if mp3::sniff(head) {
        return s("mp3", &["mp3"]);
    }
    None
}

/// Whether [`check`] walks content of this family: the media families of [`sniff`] and the
/// pictures png, jpeg and gif.
pub fn checks(family: &str) -> bool {
    matches!(
        family,
        "mp3" | "amr" | "wav" | "webp" | "mp4" | "mov" | "heic" | "tiff" | "png" | "jpeg" | "gif"
    )
}

/// Walks the container structure of content of `family` (see [`checks`]) read from its first
/// byte, to its end and past it. `Ok(Err(_))`: `content_unreadable` when the structure is cut
/// short or inconsistent, `polyglot` when data follows the end. `Err` only when reading
/// `input` fails. A family not in [`checks`] passes unread.
pub fn check(family: &str, input: &mut dyn Read) -> Scan {
    let mut tail = Tail::new(input);
    let walked = walk(family, &mut tail).and_then(|()| match tail.zip_end() {
        Some(at) => Err(Flaw::Polyglot(format!(
            "{family}: a zip end record at offset {at}, inside the file's structure (zip tools \
             open the file as an archive)"
        ))),
        None => Ok(()),
    });
    match walked {
        Ok(()) => Ok(Ok(())),
        Err(Flaw::Io(e)) => Err(e),
        Err(Flaw::Broken(detail)) => Ok(Err(Refusal::new(Reason::ContentUnreadable, detail))),
        Err(Flaw::Polyglot(detail)) => Ok(Err(Refusal::new(Reason::Polyglot, detail))),
    }
}

/// How far from its start PDF readers look for `%PDF-` (Adobe's implementation notes: the
/// first 1024 bytes).
const PDF_HEADER_WINDOW: usize = 1024;

/// Walks the structure of `family`, after looking for a PDF header where PDF readers would
/// find one.
fn walk(family: &str, input: &mut dyn Read) -> Result<(), Flaw> {
    let mut src = Source::new(input);
    let head = src.peek(PDF_HEADER_WINDOW)?;
    if let Some(at) = head.windows(5).position(|w| w == b"%PDF-") {
        return Err(Flaw::Polyglot(format!(
            "{family}: a PDF header at offset {at} (PDF readers open the file as a PDF)"
        )));
    }
    match family {
        "mp3" => mp3::check(&mut src),
        "amr" => amr::check(&mut src),
        "wav" => riff::check(&mut src, riff::Form::Wave),
        "webp" => riff::check(&mut src, riff::Form::Webp),
        "mp4" => isobmff::check(&mut src, isobmff::Family::Mp4),
        "mov" => isobmff::check(&mut src, isobmff::Family::Mov),
        "heic" => isobmff::check(&mut src, isobmff::Family::Heic),
        "tiff" => tiff::check(&mut src),
        "png" => png::check(&mut src),
        "jpeg" => jpeg::check(&mut src),
        "gif" => gif::check(&mut src),
        _ => Ok(()),
    }
}

/// How far from the end zip readers look for the end-of-central-directory record: the
/// record (22 bytes) and the longest comment (65,535 bytes).
const ZIP_END_WINDOW: usize = 22 + 65_535;

/// A reader that keeps the last [`ZIP_END_WINDOW`] bytes it passed on (in at most twice
/// that), so that a zip hidden inside the structure, near the end, is found after the walk.
pub(crate) struct Tail<'a> {
    inner: &'a mut dyn Read,
    window: Vec<u8>,
    total: u64,
}

impl<'a> Tail<'a> {
    /// A reader of `inner` that keeps its last bytes.
    pub(crate) fn new(inner: &'a mut dyn Read) -> Tail<'a> {
        Tail {
            inner,
            window: Vec::with_capacity(2 * ZIP_END_WINDOW),
            total: 0,
        }
    }

    /// The offset of a zip end-of-central-directory record (APPNOTE 4.3.16) in the last bytes
    /// read, when one is there that a zip reader would take: one disk, its comment within the
    /// file, a central directory large enough for its entries that (when it lies in the
    /// window) starts with a central header.
    pub(crate) fn zip_end(&self) -> Option<u64> {
        let w = &self.window;
        let base = self.total - w.len() as u64;
        let mut at = w.len();
        while let Some(i) = w.get(..at)?.windows(4).rposition(|x| x == b"PK\x05\x06") {
            at = i + 3;
            let Some(rec) = w.get(i..i + 22) else {
                continue;
            };
            let u16_at = |k: usize| u16::from_le_bytes([rec[k], rec[k + 1]]);
            let cd_size = u32::from_le_bytes([rec[12], rec[13], rec[14], rec[15]]) as usize;
            let comment = usize::from(u16_at(20));
            let entries = usize::from(u16_at(10));
            // one disk, all entries on it, the comment within the file
            let plain = u16_at(4) == 0 && u16_at(6) == 0 && u16_at(8) == u16_at(10);
            let fits = i + 22 + comment <= w.len();
            let directory = match i.checked_sub(cd_size) {
                _ if cd_size < 46 * entries => false,
                _ if entries == 0 => cd_size == 0,
                Some(start) => w.get(start..).is_some_and(|d| d.starts_with(b"PK\x01\x02")),
                None => (cd_size as u64) <= base + i as u64,
            };
            if plain && fits && directory {
                return Some(base + i as u64);
            }
        }
        None
    }
}

impl Read for Tail<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let got = buf.get(..n).unwrap_or_default();
        self.window.extend_from_slice(got);
        self.total += n as u64;
        if self.window.len() > 2 * ZIP_END_WINDOW {
            let cut = self.window.len() - ZIP_END_WINDOW;
            self.window.drain(..cut);
        }
        Ok(n)
    }
}

/// What a walker found wrong, or the fault that stopped it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Flaw {
    /// Reading the input failed (a fault of the machine, not of the content).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The structure is cut short or inconsistent: refused as `content_unreadable`.
    #[error("{0}")]
    Broken(String),
    /// Data follows the end of the structure, or hides in a padding box: refused as
    /// `polyglot`.
    #[error("{0}")]
    Polyglot(String),
}

/// A `Broken` flaw with the given detail.
fn broken(detail: impl Into<String>) -> Flaw {
    Flaw::Broken(detail.into())
}

/// The name of a file format whose magic `bytes` start with, for refusal details.
fn magic_name(bytes: &[u8]) -> Option<&'static str> {
    const MAGICS: &[(&[u8], &str)] = &[
        (b"PK\x03\x04", "a zip local header"),
        (b"PK\x05\x06", "a zip end record"),
        (b"%PDF", "a PDF header"),
        (b"MZ", "a DOS/PE executable header"),
        (b"\x7fELF", "an ELF header"),
        (b"Rar!", "a RAR header"),
        (b"7z\xbc\xaf\x27\x1c", "a 7z header"),
        (b"\x1f\x8b", "a gzip header"),
        (b"\xff\xd8\xff", "a JPEG header"),
        (b"\x89PNG", "a PNG signature"),
        (b"#!", "a script"),
        (b"<", "markup (HTML or XML)"),
    ];
    MAGICS
        .iter()
        .find(|(m, _)| bytes.starts_with(m))
        .map(|(_, name)| *name)
}

/// A file's end: nothing may follow but up to [`ZERO_PAD_ALLOWANCE`] zero bytes. `what`
/// names the format, `after` the construct that ended it (for the detail).
fn end(src: &mut Source<'_>, what: &str, after: &str) -> Result<(), Flaw> {
    let at = src.pos();
    let first = src.peek(16)?;
    if first.is_empty() {
        return Ok(());
    }
    let magic = magic_name(first);
    let mut zeros = 0u64;
    loop {
        let buf = src.peek(CHUNK)?;
        if buf.is_empty() {
            return Ok(());
        }
        let run = buf.iter().take_while(|b| **b == 0).count();
        zeros += run as u64;
        if run < buf.len() || zeros > ZERO_PAD_ALLOWANCE {
            break;
        }
        src.consume(run);
    }
    let what_is_it = match magic {
        Some(m) => format!(", starting with {m}"),
        None => String::new(),
    };
    Err(Flaw::Polyglot(format!(
        "{what}: data after {after} at offset {at}{what_is_it}"
    )))
}

#[cfg(test)]
mod testing;
