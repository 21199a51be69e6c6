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
    let mut src = Source::new(input);
    let walked = match family {
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
    };
    match walked {
        Ok(()) => Ok(Ok(())),
        Err(Flaw::Io(e)) => Err(e),
        Err(Flaw::Broken(detail)) => Ok(Err(Refusal::new(Reason::ContentUnreadable, detail))),
        Err(Flaw::Polyglot(detail)) => Ok(Err(Refusal::new(Reason::Polyglot, detail))),
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
