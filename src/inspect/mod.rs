//! The inspect stage on either node: opens the content without following links, checks it
//! is a plain file with one link, and runs the channel's whole policy over it, streaming.
//! A sender gets an `Inspected` only from here; a receiver runs the same code over the part
//! file with its own copy of the policy.
//!
//! ```text
//!  open (no link followed, one hard link) ─► name ─► size ─► type from the first bytes
//!    text, csv, json, xml ─► decode (UTF-8 | GB18030) ─► lines ─► rules, markings, personal data
//!    pdf                  ─► active content; text ─► rules, markings, personal data
//!    ooxml, odf           ─► parts: macros refused; XML text ─► rules, markings, personal data
//!    zip, tar, gzip       ─► entries, limits enforced while reading ─► each checked like a file
//!  ─► antivirus (clamd INSTREAM) ─► accepted, with a masked copy when personal data was masked
//! ```

pub mod clamd;

use crate::content::archive::{self, Budget, Input, Kind, Limits, Visitor};
use crate::content::{Scan, doc, pdf, text};
use crate::core::reason::{Reason, Refusal};
use crate::core::stage::{Inspected, Spooled};
use crate::fsx::open_nofollow;
use crate::inspect::clamd::{Clamd, ClamdError, ScanResult};
use crate::policy::{Detected, EXECUTABLE, HEAD_LEN, Policy, detect};
use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// Why inspection could not reach a verdict. The object waits and is tried again.
#[derive(Debug, Error)]
pub enum InspectError {
    /// Reading the content or writing the masked copy failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The antivirus could not scan the content (down, timed out, refused the size).
    #[error("antivirus scan impossible: {0}")]
    Scan(#[from] ClamdError),
}

/// A copy of the content with personal data masked: what crosses instead of the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked {
    /// The masked copy, beside the content.
    pub path: PathBuf,
    /// How many lines were changed.
    pub lines: u64,
}

/// What inspection decided about an object the policy accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The content type decided from the content.
    pub content_type: String,
    /// The masked copy, when personal data was masked.
    pub masked: Option<Masked>,
}

/// A verdict: accepted, or refused with a reason.
pub type Outcome = Result<Accepted, Refusal>;

/// Runs the policy over the file at `path` (already in our spool or staging area). A masked
/// copy, if any, is written into `work`.
pub fn inspect_file(
    policy: &Policy,
    name: &str,
    path: &Path,
    work: &Path,
) -> Result<Outcome, InspectError> {
    let mut file = match open_nofollow(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Ok(Err(Refusal::new(Reason::Symlink, "a symbolic link")));
        }
        Err(e) => return Err(e.into()),
    };
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Ok(Err(Refusal::new(
            Reason::NotRegularFile,
            "not a regular file",
        )));
    }
    if meta.nlink() != 1 {
        return Ok(Err(Refusal::new(
            Reason::HardLink,
            format!("{} hard links", meta.nlink()),
        )));
    }
    let head = read_head(&mut file)?;
    let detected = match policy
        .check_name(name)
        .and_then(|()| policy.check_size(meta.len()))
        .and_then(|()| policy.classify(name, &head))
        // a name is text too: a marking or a keyword in it is refused like one inside
        .and_then(|d| {
            Lines::new(policy, false, "name: ")
                .refuse_only(name)
                .map(|()| d)
        }) {
        Ok(d) => d,
        Err(r) => return Ok(Err(r)),
    };
    file.seek(SeekFrom::Start(0))?;
    let mut masked_name = path.file_name().unwrap_or_default().to_os_string();
    masked_name.push(".masked");
    let masked_path = work.join(masked_name);
    let item = Item {
        name,
        at: "",
        detected: &detected,
        head: &head,
    };
    let judged = judge(policy, &item, &file, path, &masked_path, work);
    // the masked copy exists only beside an accepted object
    if !matches!(&judged, Ok(Ok(Some(_)))) && masked_path.exists() {
        std::fs::remove_file(&masked_path)?;
    }
    Ok(judged?.map(|masked| Accepted {
        content_type: detected.family.to_string(),
        masked,
    }))
}

/// Runs the content rules and the antivirus; returns the masked copy, if one was made.
fn judge(
    policy: &Policy,
    item: &Item<'_>,
    mut file: &File,
    path: &Path,
    masked_path: &Path,
    work: &Path,
) -> Result<Result<Option<Masked>, Refusal>, InspectError> {
    let mut masked = None;
    let verdict = if item.detected.is_text() && policy.masks() {
        let out = File::create(masked_path)?;
        match scan_text_masking(policy, item.head, &mut file, out)? {
            Ok(0) => Ok(()),
            Ok(lines) => {
                masked = Some(Masked {
                    path: masked_path.to_path_buf(),
                    lines,
                });
                Ok(())
            }
            Err(r) => Err(r),
        }
    } else {
        let limits = policy.archives.unwrap_or(NO_ARCHIVES);
        let mut budget = Budget::new(limits);
        let mut scanner = Scanner { policy, work };
        scanner.content(item, Input::File(file), 0, &mut budget)?
    };
    if let Err(r) = verdict {
        return Ok(Err(r));
    }
    if let Some(av) = &policy.antivirus {
        // scan what crosses: the masked copy when there is one
        let crossing = masked.as_ref().map_or(path, |m: &Masked| m.path.as_path());
        let clamd = Clamd::new(av.clamd.clone(), Duration::from_millis(av.timeout_ms));
        let mut content = BufReader::new(File::open(crossing)?);
        if let ScanResult::Found(signature) = clamd.scan(&mut content)? {
            return Ok(Err(Refusal::new(
                Reason::Malware,
                format!("antivirus found {signature}"),
            )));
        }
    }
    Ok(Ok(masked))
}

/// The first `HEAD_LEN` bytes, from which the type is decided.
fn read_head(reader: &mut dyn Read) -> io::Result<Vec<u8>> {
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
    out: File,
) -> Result<Result<u64, Refusal>, InspectError> {
    let Some(enc) = text::sniff(head) else {
        return Ok(Err(not_text()));
    };
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let mut lines = Lines::new(policy, true, "");
    let summary = text::scan_lines(input, enc, Some(&mut out), &mut |l| lines.check(l))?;
    let out = out.into_inner().map_err(|e| e.into_error())?;
    Ok(match summary {
        Ok(s) => {
            if s.changed_lines > 0 {
                out.sync_all()?;
            }
            Ok(s.changed_lines)
        }
        Err(r) => Err(r),
    })
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
        let mut rest = io::Cursor::new(head.clone()).chain(reader);
        let item = Item {
            name: base,
            at: &at,
            detected: &detected,
            head: &head,
        };
        self.scanner
            .content(&item, Input::Stream(&mut rest), depth, budget)
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
        let mut rest = io::Cursor::new(head.clone()).chain(reader);
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
                    .content(&item, Input::Stream(&mut rest), depth, budget)
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

/// An object that passed inspection on the sending node, its masked copy not yet in place.
#[derive(Debug)]
pub struct Checked {
    spooled: Spooled,
    accepted: Accepted,
}

impl Checked {
    /// The spooled object.
    pub fn spooled(&self) -> &Spooled {
        &self.spooled
    }

    /// The masked copy, if personal data was masked.
    pub fn masked(&self) -> Option<&Masked> {
        self.accepted.masked.as_ref()
    }

    /// Puts the masked copy, if any, in place of the content (durably) and vouches for the
    /// object. The caller records both hashes in the audit log first.
    pub fn commit(self) -> io::Result<Inspected> {
        if let Some(m) = &self.accepted.masked {
            std::fs::rename(&m.path, self.spooled.content())?;
            crate::fsx::sync_dir(&self.spooled.dir)?;
        }
        Ok(Inspected::new(self.spooled, self.accepted.content_type))
    }
}

/// Inspects a spooled object on the sending node.
pub fn inspect(
    policy: &Policy,
    spooled: Spooled,
) -> Result<Result<Checked, (Spooled, Refusal)>, InspectError> {
    Ok(
        match inspect_file(policy, &spooled.name, &spooled.content(), &spooled.dir)? {
            Ok(accepted) => Ok(Checked { spooled, accepted }),
            Err(r) => Err((spooled, r)),
        },
    )
}
