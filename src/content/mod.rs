//! The content engine: everything the inspect stage reads inside a file, without I/O of its
//! own beyond the reader it is handed. Each module owns one kind of content:
//!
//! ```text
//!  detect    first bytes ─► content type (the extension only picks among text formats)
//!  text      bytes ─► encoding (UTF-8 | UTF-16 | GB18030) ─► lines (masked copy written back)
//!  utf16     UTF-16 ─► UTF-8 as read, and back as written
//!  rules     line  ─► keyword and regular-expression rules
//!  variants  a keyword's characters ─► their simplified and traditional forms
//!  marking   line  ─► classification markings (绝密, 机密, 秘密 …)
//!  pii       line  ─► resident ID, mobile, bank card, e-mail: find or mask
//!  archive   zip | tar | gzip ─► entries, limits enforced while reading
//!  apple     `__MACOSX/`, `._*`, `.DS_Store` entries ─► checked as AppleDouble / Finder store
//!  doc       OOXML / ODF XML part ─► paragraphs of text
//!  rtf       RTF ─► text in its code page; OLE objects, templates, fetching fields refused
//!  reach     OOXML relationships, fields, ODF links ─► what reaches outside the document
//!  pdf       PDF ─► active content (JavaScript, launch, embedded files) and text
//!  ofd       OFD XML part (GB/T 33190) ─► text codes, annotations, tags; actions
//!  ole       compound files (doc, xls, ppt, wps, et, dps) ─► macros, objects and text
//!  media     audio, video, pictures ─► container structure to its end (polyglots refused)
//!  source    a file read in place, plain or sealed at rest ─► bytes at any offset
//! ```
//!
//! A scanner returns `Ok(Ok(()))` to go on, `Ok(Err(refusal))` when the content is refused
//! (a verdict, audited and quarantined), and `Err` when the content could not be read (a
//! fault: the object is tried again).

pub mod apple;
pub mod archive;
pub mod detect;
pub mod doc;
pub mod marking;
pub mod media;
pub mod ofd;
pub mod ole;
pub mod pdf;
pub mod pii;
pub mod reach;
pub mod rtf;
pub mod rules;
pub mod source;
pub mod text;
pub mod utf16;
pub mod variants;

use crate::core::reason::Refusal;

/// The result of a scan: a fault, a refusal, or nothing found.
pub type Scan = std::io::Result<Result<(), Refusal>>;

/// Receives text one line or paragraph at a time; a refusal stops the scan.
pub type LineSink<'a> = dyn FnMut(&str) -> Result<(), Refusal> + 'a;
