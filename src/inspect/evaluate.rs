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
//!            zip, tar, gzip       ─► entries, limits enforced while reading ─► each judged
//!                                    like a file (admit + evaluate)
//! ```

use crate::content::archive::{self, Budget, Input, Kind, Limits, Visitor};
use crate::content::{Scan, apple, doc, pdf, reach, rtf, text};
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
    let summary = text::scan_lines(input, enc, Some(&mut out), &mut |l| lines.check(l))?;
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
        if detected.is_text() {
            // text in an encoding the gateway cannot read is refused even where no rule
            // reads it: what cannot be read does not cross
            let Some(enc) = text::sniff(head) else {
                return Ok(Err(prefixed(at, not_text(head))));
            };
            if !policy.reads_text() {
                return Ok(Ok(()));
            }
            let mut lines = Lines::new(policy, false, at);
            let mut reader = reader_of(input);
            return text::scan_lines(&mut reader, enc, None::<&mut io::Sink>, &mut |l| {
                lines.refuse_only(l).map(|()| None)
            })
            .map(|r| r.map(|_| ()));
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
            let mut input = BufReader::new(reader);
            return reach::relationships(&mut input, path, policy.hyperlinks);
        }
        // every XML part is read: fields and links that reach outside are refused in the
        // same pass as the text rules (when the policy has any) see its text
        if lower.ends_with(".xml") || doc::is_text_part(path) {
            let mut input = BufReader::new(reader);
            let mut watch = reach::Watch::new(path, policy.hyperlinks);
            let reads_text = policy.reads_text();
            let mut lines = Lines::new(policy, false, &at);
            return doc::xml_text_watched(
                &mut input,
                &mut |l| {
                    if reads_text {
                        lines.refuse_only(l)
                    } else {
                        Ok(())
                    }
                },
                &mut watch,
            )
            .map(|v| v.map_err(|r| prefixed_once(&at, r)));
        }
        let head = read_head(reader)?;
        let ext = crate::policy::extension(path).unwrap_or_default();
        let detected = detect(&head, &ext);
        match detected.family {
            EXECUTABLE => Ok(Err(Refusal::new(
                Reason::TypeRefused,
                format!("{at}an executable inside the document"),
            ))),
            "zip" | "tar" | "gzip" | "ooxml" | "odf" | "pdf" | "rtf" | "text" | "csv" | "json"
            | "xml" => {
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
        let hostile: Vec<(&str, Vec<u8>, &str)> = vec![
            ("DDE field", docx(&dde, &[]), "field DDEAUTO"),
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
