//! The evaluator: a channel's policy over content, without opening, creating or deleting
//! any file and without talking to any service. Bytes in (a reader, or a file the shell
//! opened), a verdict out; when the policy masks personal data, the masked text is written
//! to the writer the shell gives. Archive entries that must be seekable are spilled by the
//! archive reader into the directory the shell names.
//!
//! ```text
//!  admit:    name ─► size ─► type from the first bytes ─► the name's own text
//!  evaluate: text, csv, json, xml ─► decode (UTF-8 | GB18030) ─► lines ─► rules, markings,
//!                                    personal data (masked into the writer, or refused)
//!            pdf                  ─► active content; text ─► the same line rules
//!            ooxml, odf           ─► parts: macros refused; XML text ─► line rules
//!            zip, tar, gzip       ─► entries, limits enforced while reading ─► each judged
//!                                    like a file (admit + evaluate)
//!            media, png, jpeg, gif ─► container structure to its end (always: a polyglot
//!                                    is refused whatever the text rules)
//! ```

use crate::content::archive::{self, Budget, Input, Kind, Limits, Visitor};
use crate::content::{Scan, doc, media, pdf, text};
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
        return Ok(Err(not_text()));
    };
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let mut lines = Lines::new(policy, true, "");
    let summary = text::scan_lines(input, enc, Some(&mut out), &mut |l| lines.check(l))?;
    out.flush()?;
    Ok(summary.map(|s| s.changed_lines))
}

fn not_text() -> Refusal {
    Refusal::new(
        Reason::TextEncoding,
        "text that is neither UTF-8 nor GB18030",
    )
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

    /// Checks one line: `Ok(Some(masked))` replaces it. The rules run over the line as
    /// written and, when it differs, over its detection view (escapes decoded, invisible
    /// characters dropped, full-width forms folded), so that disguised text is caught.
    fn check(&mut self, text: &str) -> Result<Option<String>, Refusal> {
        self.line += 1;
        let (at, n) = (self.at, self.line);
        let view = text::detection_view(text);
        let forms: &[&str] = match &view {
            Cow::Owned(v) => &[text, v.as_str()],
            Cow::Borrowed(_) => &[text],
        };
        for form in forms {
            if let Some(hit) = self.policy.text_rules().and_then(|r| r.find(form)) {
                return Err(Refusal::new(
                    Reason::KeywordMatch,
                    format!("{at}line {n}: matches rule {}", hit.rule),
                ));
            }
            if let Some(hit) = self.policy.marking_detector().and_then(|m| m.find(form)) {
                return Err(Refusal::new(
                    Reason::ClassificationMarking,
                    format!("{at}line {n}: classification marking {:?}", hit.text),
                ));
            }
        }
        let Some(pii) = self.policy.pii_detector() else {
            return Ok(None);
        };
        let refuse = |kind: &str, how: &str| {
            Err(Refusal::new(
                Reason::PersonalData,
                format!("{at}line {n}: {kind} found{how}"),
            ))
        };
        if self.mask {
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
                let how = if self.policy.masks() {
                    " (masking applies to plain text, CSV, JSON and XML only)"
                } else {
                    ""
                };
                return refuse(found.kind.as_str(), how);
            }
        }
        Ok(None)
    }

    /// Checks one line of a document, where nothing can be masked.
    fn refuse_only(&mut self, text: &str) -> Result<(), Refusal> {
        self.mask = false;
        self.check(text).map(|_| ())
    }
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
        if detected.is_text() {
            if !policy.reads_text() {
                return Ok(Ok(()));
            }
            let Some(enc) = text::sniff(head) else {
                return Ok(Err(prefixed(at, not_text())));
            };
            let mut lines = Lines::new(policy, false, at);
            let mut reader = reader_of(input);
            return text::scan_lines(&mut reader, enc, None::<&mut io::Sink>, &mut |l| {
                lines.refuse_only(l).map(|()| None)
            })
            .map(|r| r.map(|_| ()));
        }
        if detected.family == "pdf" && (policy.pdf_refuse_active || policy.reads_text()) {
            let opts = pdf::PdfOptions {
                refuse_active: policy.pdf_refuse_active,
                read_text: policy.reads_text(),
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

/// A reader over either kind of input.
fn reader_of<'a>(input: Input<'a>) -> Box<dyn Read + 'a> {
    match input {
        Input::File(f) => Box::new(BufReader::with_capacity(1 << 20, f)),
        Input::Stream(s) => Box::new(s),
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
        if lower.ends_with(".xml") || lower.ends_with(".rels") || doc::is_text_part(path) {
            if !policy.reads_text() {
                return Ok(Ok(()));
            }
            let mut input = BufReader::new(reader);
            let mut lines = Lines::new(policy, false, &at);
            return doc::xml_text(&mut input, &mut |l| lines.refuse_only(l));
        }
        let head = read_head(reader)?;
        let ext = crate::policy::extension(path).unwrap_or_default();
        let detected = detect(&head, &ext);
        match detected.family {
            EXECUTABLE => Ok(Err(Refusal::new(
                Reason::TypeRefused,
                format!("{at}an executable inside the document"),
            ))),
            "zip" | "tar" | "gzip" | "ooxml" | "odf" | "pdf" | "text" | "csv" | "json" | "xml" => {
                let item = Item {
                    name: path.rsplit('/').next().unwrap_or(path),
                    at: &at,
                    detected: &detected,
                    head: &head,
                };
                self.scanner
                    .content_after_head(&item, reader, depth, budget)
            }
            "unknown" if lower.contains("embeddings/") || lower.starts_with("object ") => {
                Ok(Err(Refusal::new(
                    Reason::ContentUnreadable,
                    format!("{at}an embedded object of a type that cannot be inspected"),
                )))
            }
            // pictures, fonts, printer settings
            _ => Ok(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The lab's inbound policy, as shipped.
    fn inbound() -> Policy {
        Policy::parse(
            Path::new("to-court.toml"),
            include_str!("../../policy/to-court.toml"),
        )
        .unwrap()
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
}
