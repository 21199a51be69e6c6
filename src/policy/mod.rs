//! A channel's policy: the rules a file must pass to cross, loaded from TOML, validated with
//! errors that name the file, line and key, and compiled once (regular expressions, keyword
//! sets, detectors) so that every object is judged without further set-up.
//!
//! Deny by default: a type not on the allow-list, an extension not on the list, a size over
//! the limit are all refusals with a stable reason code. The cheap checks (name, size, type
//! from the first bytes) are here; the content checks they unlock (archives, text rules,
//! markings, personal data, PDF active content, antivirus) are run by the inspect stage with
//! the detectors this policy holds.
//!
//! ```text
//!  policy/*.toml ─► RawPolicy (deny_unknown_fields) ─► validate ─► Policy
//!                                                     (names, size, types, archives,
//!                                                      text rules, markings, personal
//!                                                      data, antivirus address)
//!  Policy::check_name, check_size, classify (detect: magic bytes + extension)
//!  Policy::text_rules, marking_detector, pii_detector ─► used by inspect::evaluate
//!  a [messages] table ─► message::parse_messages (schema + the same content rules)
//!  a [stream] table   ─► refused here (stream::parse_stream reads a stream policy)
//! ```

pub mod antivirus;
pub mod message;
mod names;
pub mod stream;

pub use crate::content::detect::{
    CFB_SIGNATURE, Detected, EXECUTABLE, HEAD_LEN, KNOWN_TYPES, LEGACY_OFFICE_EXTENSIONS, detect,
};
pub use names::{DEFAULT_PUNCTUATION, check_charset, check_name_rules, extension, nfc};

use crate::content::archive::{LegacyNames, Limits};
use crate::content::marking::MarkingDetector;
use crate::content::pii::{PiiDetector, PiiKind};
use crate::content::reach::Hyperlinks;
use crate::content::rules::TextRules;
pub use crate::core::approval::Rule as ApprovalRule;
use crate::core::approval::{Approver, MAX_APPROVALS, valid_name};
use crate::core::reason::{Reason, Refusal};
use crate::core::stream::StreamRules;
use crate::keys::VerifyKey;
use crate::policy::antivirus::ClamdAddr;
use crate::problem::{Problems, Source};
use serde::Deserialize;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use toml::Spanned;

/// The largest size limit a policy may set: a limit near the integer's range is no limit.
pub const MAX_SIZE_LIMIT: u64 = 1 << 40;

/// What `[compliance] opt_out` may name: a rule `isogate check` otherwise requires.
pub const OPT_OUTS: &[&str] = &["markings", "personal_data"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    names: RawNames,
    size: RawSize,
    types: RawTypes,
    archives: Option<RawArchives>,
    text: Option<RawText>,
    pdf: Option<RawPdf>,
    documents: Option<RawDocuments>,
    markings: Option<RawMarkings>,
    personal_data: Option<RawPersonalData>,
    antivirus: Option<RawAntivirus>,
    approval: Option<RawApproval>,
    compliance: Option<RawCompliance>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApproval {
    required: Spanned<u64>,
    approvers: Spanned<Vec<Spanned<RawApprover>>>,
    expire_after: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApprover {
    name: String,
    key: String,
    level: Option<u8>,
}

/// How long an object waits for its approvals when `expire_after` is not given: 72 hours.
pub const DEFAULT_APPROVAL_EXPIRY_MS: u64 = 72 * 3_600_000;
/// Shortest `expire_after`: five seconds (for trials; a real desk waits hours or days).
pub const MIN_APPROVAL_EXPIRY_MS: u64 = 5_000;
/// Longest `expire_after`: 30 days (the spool is not an archive).
pub const MAX_APPROVAL_EXPIRY_MS: u64 = 30 * 86_400_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNames {
    max_length: Spanned<u64>,
    extensions: Spanned<Vec<Spanned<String>>>,
    punctuation: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSize {
    #[serde(default)]
    min_bytes: u64,
    max_bytes: Spanned<u64>,
    max_expanded_bytes: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTypes {
    allow: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    executable_names: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArchives {
    max_depth: Spanned<u32>,
    max_entries: Spanned<u64>,
    max_ratio: Spanned<u64>,
    legacy_names: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawText {
    #[serde(default)]
    keywords: Vec<String>,
    patterns: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPdf {
    refuse_active: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocuments {
    hyperlinks: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMarkings {
    refuse: Spanned<bool>,
    #[serde(default)]
    allow_phrases: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPersonalData {
    detect: Spanned<Vec<PiiKind>>,
    action: PiiAction,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAntivirus {
    clamd: Spanned<String>,
    #[serde(default = "default_scan_timeout")]
    timeout_ms: u64,
    #[serde(default = "default_max_wait")]
    max_wait_ms: u64,
}

fn default_scan_timeout() -> u64 {
    60_000
}

fn default_max_wait() -> u64 {
    3_600_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompliance {
    #[serde(default)]
    opt_out: Vec<Spanned<String>>,
}

/// What a channel does with personal data it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiAction {
    /// The object is refused.
    Refuse,
    /// In text, CSV, JSON and XML the data is masked and the masked copy crosses; in any other
    /// content (documents, archives) masking is impossible and the object is refused.
    Mask,
}

/// Personal-data rules of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalData {
    /// The kinds looked for.
    pub kinds: Vec<PiiKind>,
    /// Refuse or mask.
    pub action: PiiAction,
}

/// Antivirus settings of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Antivirus {
    /// Where clamd listens.
    pub clamd: ClamdAddr,
    /// Longest a scan may take, in ms.
    pub timeout_ms: u64,
    /// How long an object may wait for a scan that keeps failing before it goes to
    /// quarantine, in ms since it was taken.
    pub max_wait_ms: u64,
}

/// The detectors a policy compiles once.
#[derive(Default)]
struct Compiled {
    rules: Option<TextRules>,
    markings: Option<MarkingDetector>,
    pii: Option<PiiDetector>,
}

/// A validated channel policy.
#[derive(Clone)]
pub struct Policy {
    /// Longest file name, in bytes of UTF-8.
    pub max_name_len: usize,
    /// Allowed extensions, lower case, without the dot.
    pub extensions: Vec<String>,
    /// Punctuation allowed in names besides letters and digits.
    pub punctuation: String,
    /// Smallest file size.
    pub min_bytes: u64,
    /// Largest file size.
    pub max_bytes: u64,
    /// Allowed content types (names from `KNOWN_TYPES`).
    pub allow: Vec<String>,
    /// Exact file names that may be executables.
    pub executable_names: Vec<String>,
    /// Archive limits; `None` when no archive or package type is allowed.
    pub archives: Option<Limits>,
    /// Keyword rules (matched case-insensitively).
    pub keywords: Vec<String>,
    /// Regular-expression rules.
    pub patterns: Vec<String>,
    /// Whether PDFs with JavaScript, launch actions or embedded files are refused.
    pub pdf_refuse_active: bool,
    /// Whether hyperlinks to the outside in documents cross (`[documents] hyperlinks`);
    /// everything else that reaches outside a document is always refused.
    pub hyperlinks: Hyperlinks,
    /// Phrases exempt from the marking rule, when markings are refused.
    pub markings: Option<Vec<String>>,
    /// Personal-data rules.
    pub personal_data: Option<PersonalData>,
    /// Antivirus settings.
    pub antivirus: Option<Antivirus>,
    /// Release approval (`[approval]`): who must sign before an object leaves (sender) and
    /// whose approvals an arriving object must carry (receiver).
    pub approval: Option<ApprovalRule>,
    /// Rules this policy explicitly opts out of (`isogate check` warns instead of refusing).
    pub opt_out: Vec<String>,
    /// The rules of a stream channel's policy (its `[stream]` table, see [`stream`]); `None`
    /// for a files policy. A stream policy refuses every file.
    pub stream: Option<StreamRules>,
    /// The rules of a messages channel's policy (its `[messages]` table, see [`message`]);
    /// `None` for a files or stream policy. The text, marking and personal-data rules
    /// above apply to every string value of every message.
    pub messages: Option<message::MessageRules>,
    /// A short digest of the policy text: its version in the audit log and metrics.
    pub version: String,
    compiled: Arc<Compiled>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("version", &self.version)
            .field("extensions", &self.extensions)
            .field("allow", &self.allow)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The object may cross; its content type as decided from the content.
    Accept {
        /// The detected content type.
        content_type: String,
    },
    /// The object is refused.
    Reject(Refusal),
}

fn list_of_known(
    src: &mut Source,
    items: &Spanned<Vec<Spanned<String>>>,
    key: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for t in items.get_ref() {
        let v = t.get_ref();
        if v == "*" {
            src.report(
                Some(t.span()),
                key,
                "wildcard types are not allowed: list each type",
            );
        } else if v == EXECUTABLE {
            src.report(
                Some(t.span()),
                key,
                "executables are never allowed as a type; name each allowed file in types.executable_names",
            );
        } else if !KNOWN_TYPES.contains(&v.as_str()) {
            src.report(
                Some(t.span()),
                key,
                format!("unknown type {v:?}; known: {}", KNOWN_TYPES.join(", ")),
            );
        }
        out.push(v.clone());
    }
    if out.is_empty() {
        src.report(
            Some(items.span()),
            key,
            "empty: nothing could cross; list the allowed types",
        );
    }
    out
}

impl Policy {
    /// Loads and validates a policy file, naming the file, line and key of every problem.
    pub fn load(path: &Path) -> Result<Policy, Problems> {
        let text = crate::problem::read(path)?;
        Self::parse(path, &text)
    }

    /// Parses and validates policy text that came from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Policy, Problems> {
        let mut src = Source::new(path, text);
        if stream::refuse_stream_table(&mut src) {
            return src.finish(Policy::deny_all());
        }
        if message::has_messages_table(text) {
            return Self::parse_messages(path, text);
        }
        let Some(raw) = src.parse::<RawPolicy>() else {
            return src.finish(Policy::deny_all());
        };
        let max_len = *raw.names.max_length.get_ref();
        if max_len == 0 || max_len > 255 {
            src.report(
                Some(raw.names.max_length.span()),
                "names.max_length",
                "must be between 1 and 255 bytes",
            );
        }
        let mut extensions = Vec::new();
        for e in raw.names.extensions.get_ref() {
            let v = e.get_ref();
            if v.is_empty()
                || v.len() > 16
                || !v
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            {
                src.report(
                    Some(e.span()),
                    "names.extensions",
                    format!("{v:?}: an extension is 1-16 lower-case letters or digits, no dot"),
                );
            }
            extensions.push(v.clone());
        }
        if extensions.is_empty() {
            src.report(
                Some(raw.names.extensions.span()),
                "names.extensions",
                "empty: nothing could cross; list the allowed extensions",
            );
        }
        let punctuation = match &raw.names.punctuation {
            Some(p) => {
                if let Some(c) = p
                    .get_ref()
                    .chars()
                    .find(|c| c.is_control() || matches!(c, '/' | '\\' | '\0'))
                {
                    src.report(
                        Some(p.span()),
                        "names.punctuation",
                        format!("{c:?} can never be allowed in a name"),
                    );
                }
                p.get_ref().clone()
            }
            None => DEFAULT_PUNCTUATION.to_string(),
        };
        let max_bytes = *raw.size.max_bytes.get_ref();
        if max_bytes == 0 || max_bytes > MAX_SIZE_LIMIT {
            src.report(
                Some(raw.size.max_bytes.span()),
                "size.max_bytes",
                format!(
                    "must be between 1 and {MAX_SIZE_LIMIT} (1 TiB): there is no \"unlimited\""
                ),
            );
        }
        if raw.size.min_bytes > max_bytes {
            src.report(
                Some(raw.size.max_bytes.span()),
                "size.min_bytes",
                "is greater than size.max_bytes",
            );
        }
        let allow = list_of_known(&mut src, &raw.types.allow, "types.allow");
        let packages = allow
            .iter()
            .filter(|t| {
                matches!(
                    t.as_str(),
                    "zip" | "tar" | "gzip" | "ooxml" | "odf" | "ofd" | "legacy_office"
                )
            })
            .cloned()
            .collect::<Vec<_>>();
        let max_expanded = raw
            .size
            .max_expanded_bytes
            .as_ref()
            .map(|s| *s.get_ref())
            .unwrap_or(max_bytes);
        if let Some(s) = &raw.size.max_expanded_bytes
            && (*s.get_ref() == 0 || *s.get_ref() > MAX_SIZE_LIMIT)
        {
            src.report(
                Some(s.span()),
                "size.max_expanded_bytes",
                format!("must be between 1 and {MAX_SIZE_LIMIT} (1 TiB)"),
            );
        }
        let hyperlinks = match raw.documents.as_ref().and_then(|d| d.hyperlinks.as_ref()) {
            None => Hyperlinks::default(),
            Some(word) => Hyperlinks::parse(word.get_ref()).unwrap_or_else(|| {
                src.report(
                    Some(word.span()),
                    "documents.hyperlinks",
                    format!(
                        "{:?} is not a choice: use \"allow\" or \"refuse\"",
                        word.get_ref()
                    ),
                );
                Hyperlinks::Refuse
            }),
        };
        let archives = match &raw.archives {
            Some(a) => {
                if *a.max_depth.get_ref() == 0 || *a.max_depth.get_ref() > 16 {
                    src.report(
                        Some(a.max_depth.span()),
                        "archives.max_depth",
                        "must be between 1 and 16",
                    );
                }
                if *a.max_entries.get_ref() == 0 {
                    src.report(
                        Some(a.max_entries.span()),
                        "archives.max_entries",
                        "must be greater than 0",
                    );
                }
                if *a.max_ratio.get_ref() < 2 {
                    src.report(
                        Some(a.max_ratio.span()),
                        "archives.max_ratio",
                        "must be at least 2",
                    );
                }
                let legacy_names = match &a.legacy_names {
                    None => LegacyNames::default(),
                    Some(name) => LegacyNames::parse(name.get_ref()).unwrap_or_else(|| {
                        src.report(
                            Some(name.span()),
                            "archives.legacy_names",
                            format!(
                                "{:?} is not an encoding of entry names: use \"gb18030\" or \"cp437\"",
                                name.get_ref()
                            ),
                        );
                        LegacyNames::default()
                    }),
                };
                Some(Limits {
                    max_depth: *a.max_depth.get_ref(),
                    max_entries: *a.max_entries.get_ref(),
                    max_expanded_bytes: max_expanded,
                    max_ratio: *a.max_ratio.get_ref(),
                    legacy_names,
                })
            }
            None => {
                if !packages.is_empty() {
                    src.report(
                        Some(raw.types.allow.span()),
                        "archives",
                        format!(
                            "types.allow has {} but there is no [archives] section with max_depth, max_entries and max_ratio",
                            packages.join(", ")
                        ),
                    );
                }
                None
            }
        };
        let content = content_rules(&mut src, raw.text, raw.markings, raw.personal_data);
        let antivirus = match raw.antivirus {
            Some(a) => match a.clamd.get_ref().parse::<ClamdAddr>() {
                Ok(addr) => {
                    if a.timeout_ms == 0 {
                        src.report(None, "antivirus.timeout_ms", "must be greater than 0");
                    }
                    Some(Antivirus {
                        clamd: addr,
                        timeout_ms: a.timeout_ms,
                        max_wait_ms: a.max_wait_ms,
                    })
                }
                Err(e) => {
                    src.report(Some(a.clamd.span()), "antivirus.clamd", e);
                    None
                }
            },
            None => None,
        };
        let approval = raw.approval.and_then(|a| approval_rule(a, &mut src));
        let opt_out = opt_outs(&mut src, raw.compliance);
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        src.finish(Policy {
            max_name_len: max_len as usize,
            extensions,
            punctuation,
            min_bytes: raw.size.min_bytes,
            max_bytes,
            allow,
            executable_names: raw.types.executable_names,
            archives,
            keywords: content.keywords,
            patterns: content.patterns,
            pdf_refuse_active: raw.pdf.is_some_and(|p| p.refuse_active),
            hyperlinks,
            markings: content.markings,
            personal_data: content.personal_data,
            antivirus,
            approval,
            opt_out,
            stream: None,
            messages: None,
            version: hex::encode(&digest.as_ref()[..6]),
            compiled: Arc::new(content.compiled),
        })
    }

    /// A policy that refuses everything (used only when a policy could not be loaded).
    ///
    /// (Its `approval` is `None`: nothing passes it to need one.)
    pub fn deny_all() -> Policy {
        Policy {
            max_name_len: 0,
            extensions: Vec::new(),
            punctuation: String::new(),
            min_bytes: 0,
            max_bytes: 0,
            allow: Vec::new(),
            executable_names: Vec::new(),
            archives: None,
            keywords: Vec::new(),
            patterns: Vec::new(),
            pdf_refuse_active: true,
            hyperlinks: Hyperlinks::Refuse,
            markings: None,
            personal_data: None,
            antivirus: None,
            approval: None,
            opt_out: Vec::new(),
            stream: None,
            messages: None,
            version: "deny-all".into(),
            compiled: Arc::default(),
        }
    }

    /// The keyword and regular-expression rules, if any.
    pub fn text_rules(&self) -> Option<&TextRules> {
        self.compiled.rules.as_ref()
    }

    /// The marking detector, when markings are refused.
    pub fn marking_detector(&self) -> Option<&MarkingDetector> {
        self.compiled.markings.as_ref()
    }

    /// The personal-data detector, when personal data is looked for.
    pub fn pii_detector(&self) -> Option<&PiiDetector> {
        self.compiled.pii.as_ref()
    }

    /// Whether any rule reads the text of the content.
    pub fn reads_text(&self) -> bool {
        self.compiled.rules.is_some()
            || self.compiled.markings.is_some()
            || self.compiled.pii.is_some()
    }

    /// Whether the masking action applies.
    pub fn masks(&self) -> bool {
        self.personal_data
            .as_ref()
            .is_some_and(|p| p.action == PiiAction::Mask)
    }

    /// Checks a file name alone (both intake and landing use it, and archive entries).
    pub fn check_name(&self, name: &str) -> Result<(), Refusal> {
        if self.messages.is_some() {
            // a messages channel carries batch objects only, named by the sending node's
            // intake (<object id>.ndjson): nothing else is a message batch
            return if crate::core::message::is_batch_name(name) {
                Ok(())
            } else {
                Err(Refusal::new(
                    Reason::NameRefused,
                    "not a batch of messages (<object id>.ndjson)",
                ))
            };
        }
        check_name_rules(name, self.max_name_len)?;
        check_charset(name, &self.punctuation)?;
        let ext = extension(name).unwrap_or_default();
        if !self.extensions.contains(&ext) {
            return Err(Refusal::new(
                Reason::ExtensionRefused,
                format!("extension {ext:?} is not allowed on this channel"),
            ));
        }
        Ok(())
    }

    /// Checks the size of a file against the channel's limits.
    pub fn check_size(&self, size: u64) -> Result<(), Refusal> {
        if self.messages.is_some() {
            // each message is held to max_message_bytes when its batch is inspected
            return if size == 0 || size > crate::core::message::MAX_BATCH_BYTES {
                Err(Refusal::new(
                    Reason::SizeLimit,
                    format!(
                        "{size} bytes is outside 1..={} bytes for a batch of messages",
                        crate::core::message::MAX_BATCH_BYTES
                    ),
                ))
            } else {
                Ok(())
            };
        }
        if size < self.min_bytes || size > self.max_bytes {
            return Err(Refusal::new(
                Reason::SizeLimit,
                format!(
                    "{size} bytes is outside {}..={} bytes",
                    self.min_bytes, self.max_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Decides the content type from the first bytes and checks it against the allow-list
    /// and the extension of `name`.
    pub fn classify(&self, name: &str, head: &[u8]) -> Result<Detected, Refusal> {
        let ext = extension(name).unwrap_or_default();
        let detected = detect(head, &ext);
        if detected.family == EXECUTABLE {
            if self.executable_names.iter().any(|n| n == name) {
                return Ok(detected);
            }
            return Err(Refusal::new(
                Reason::TypeRefused,
                "content is an executable (machine code, script or shortcut), not allowed on this channel",
            ));
        }
        if !self.allow.iter().any(|t| t == detected.family) {
            return Err(Refusal::new(
                Reason::TypeRefused,
                format!(
                    "content is {}, not allowed on this channel",
                    detected.family
                ),
            ));
        }
        if !detected.extensions.contains(&ext.as_str()) {
            return Err(Refusal::new(
                Reason::TypeMismatch,
                format!(
                    "content is {} but the extension is {ext:?}",
                    detected.family
                ),
            ));
        }
        Ok(detected)
    }

    /// Checks an object: its name, its size and the first `HEAD_LEN` bytes of its content.
    pub fn check(&self, name: &str, size: u64, head: &[u8]) -> Verdict {
        let r = self
            .check_name(name)
            .and_then(|()| self.check_size(size))
            .and_then(|()| self.classify(name, head));
        match r {
            Ok(d) => Verdict::Accept {
                content_type: d.family.to_string(),
            },
            Err(r) => Verdict::Reject(r),
        }
    }

    /// The personal-data rules, for the compliance report.
    fn personal_data_report(&self) -> Option<serde_json::Value> {
        self.personal_data.as_ref().map(|p| {
            serde_json::json!({
                "detect": p.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                "action": p.action,
            })
        })
    }

    /// The effective rules, for the compliance report: a stream policy's are its version
    /// and its `stream` rules (see [`stream::report`]); a messages policy's its version,
    /// its `messages` rules (schema file, `max_message_bytes`) and its content rules.
    pub fn report(&self) -> serde_json::Value {
        if let Some(rules) = &self.stream {
            return serde_json::json!({
                "version": self.version,
                "stream": stream::report(rules),
            });
        }
        if let Some(rules) = &self.messages {
            return serde_json::json!({
                "version": self.version,
                "messages": message::report(rules),
                "text": { "keywords": self.keywords.len(), "patterns": self.patterns.len() },
                "markings": self.markings.as_ref().map(|p| serde_json::json!({ "refuse": true, "allow_phrases": p })),
                "personal_data": self.personal_data_report(),
                "opt_out": self.opt_out,
            });
        }
        serde_json::json!({
            "version": self.version,
            "names": {
                "max_length": self.max_name_len,
                "extensions": self.extensions,
                "punctuation": self.punctuation,
            },
            "size": {
                "min_bytes": self.min_bytes,
                "max_bytes": self.max_bytes,
            },
            "types": {
                "allow": self.allow,
                "executable_names": self.executable_names,
            },
            "archives": self.archives.map(|a| serde_json::json!({
                "max_depth": a.max_depth,
                "max_entries": a.max_entries,
                "max_expanded_bytes": a.max_expanded_bytes,
                "max_ratio": a.max_ratio,
                "legacy_names": a.legacy_names.as_str(),
            })),
            "text": { "keywords": self.keywords.len(), "patterns": self.patterns.len() },
            "pdf_refuse_active": self.pdf_refuse_active,
            "hyperlinks": self.hyperlinks.as_str(),
            "markings": self.markings.as_ref().map(|p| serde_json::json!({ "refuse": true, "allow_phrases": p })),
            "personal_data": self.personal_data_report(),
            "antivirus": self.antivirus.as_ref().map(|a| serde_json::json!({
                "clamd": a.clamd.to_string(),
                "timeout_ms": a.timeout_ms,
                "max_wait_ms": a.max_wait_ms,
            })),
            "approval": self.approval.as_ref().map(|a| serde_json::json!({
                "required": a.required,
                "expire_after_ms": a.expire_ms,
                "approvers": a.approvers.iter().map(|p| serde_json::json!({
                    "name": p.name,
                    "level": p.level,
                    "key": p.key.fingerprint(),
                })).collect::<Vec<_>>(),
            })),
            "opt_out": self.opt_out,
        })
    }
}
/// The content rules a files policy and a messages policy share: `[text]`, `[markings]`
/// and `[personal_data]`, validated and compiled.
struct ContentRules {
    keywords: Vec<String>,
    patterns: Vec<String>,
    markings: Option<Vec<String>>,
    personal_data: Option<PersonalData>,
    compiled: Compiled,
}

/// Validates and compiles `[text]`, `[markings]` and `[personal_data]`, reporting every
/// problem with its line and key.
fn content_rules(
    src: &mut Source<'_>,
    text: Option<RawText>,
    markings: Option<RawMarkings>,
    personal_data: Option<RawPersonalData>,
) -> ContentRules {
    let mut compiled = Compiled::default();
    let (keywords, patterns) = match text {
        Some(t) => {
            let span = t.patterns.as_ref().map(|p| p.span());
            let patterns = t.patterns.map(|p| p.into_inner()).unwrap_or_default();
            match TextRules::new(&t.keywords, &patterns) {
                Ok(r) => compiled.rules = (!r.is_empty()).then_some(r),
                Err(e) => {
                    let key = if e.index == usize::MAX {
                        "text".to_string()
                    } else {
                        format!("text.patterns[{}]", e.index)
                    };
                    src.report(span.clone(), &key, e.message.clone())
                }
            }
            (t.keywords, patterns)
        }
        None => (Vec::new(), Vec::new()),
    };
    let markings = match markings {
        Some(m) if *m.refuse.get_ref() => {
            compiled.markings = Some(MarkingDetector::new(&m.allow_phrases));
            Some(m.allow_phrases)
        }
        _ => None,
    };
    let personal_data = match personal_data {
        Some(p) => {
            if p.detect.get_ref().is_empty() {
                src.report(
                    Some(p.detect.span()),
                    "personal_data.detect",
                    "empty: list the kinds to look for, or remove the section",
                );
            }
            compiled.pii = Some(PiiDetector::new(p.detect.get_ref()));
            Some(PersonalData {
                kinds: p.detect.into_inner(),
                action: p.action,
            })
        }
        None => None,
    };
    ContentRules {
        keywords,
        patterns,
        markings,
        personal_data,
        compiled,
    }
}

/// Validates `[compliance] opt_out`: only the rules in [`OPT_OUTS`].
fn opt_outs(src: &mut Source<'_>, compliance: Option<RawCompliance>) -> Vec<String> {
    let mut opt_out = Vec::new();
    for o in compliance.map(|c| c.opt_out).unwrap_or_default() {
        if !OPT_OUTS.contains(&o.get_ref().as_str()) {
            src.report(
                Some(o.span()),
                "compliance.opt_out",
                format!(
                    "unknown rule {:?}; known: {}",
                    o.get_ref(),
                    OPT_OUTS.join(", ")
                ),
            );
        }
        opt_out.push(o.into_inner());
    }
    opt_out
}

/// Validates `[approval]`: at least one approver and `required` between 1 and their
/// number (and at least the number of levels), unique names and keys, keys of 64 hex
/// digits (Ed25519) or 130 (SM2; `isogate keygen --approver NAME [--suite gm]`), levels 1 to 9, `expire_after` a duration
/// (`humantime`: `72h`, `3d`) between five seconds and 30 days.
fn approval_rule(a: RawApproval, src: &mut Source<'_>) -> Option<ApprovalRule> {
    let mut approvers: Vec<Approver> = Vec::new();
    let span = a.approvers.span();
    for raw in a.approvers.into_inner() {
        let at = raw.span();
        let raw = raw.into_inner();
        if !valid_name(&raw.name) {
            src.report(
                Some(at.clone()),
                "approval.approvers.name",
                format!(
                    "{:?}: use 1 to 64 bytes of letters, digits, '-', '_' and '.'",
                    raw.name
                ),
            );
            continue;
        }
        let Some(key) = VerifyKey::parse(raw.key.trim()) else {
            src.report(
                Some(at.clone()),
                "approval.approvers.key",
                format!(
                    "approver {:?}: expected the 64 hex digits of an Ed25519 public key or the 130 of an SM2 one (the .pub file of `isogate keygen --approver {}`)",
                    raw.name, raw.name
                ),
            );
            continue;
        };
        let level = raw.level.unwrap_or(1);
        if !(1..=9).contains(&level) {
            src.report(
                Some(at.clone()),
                "approval.approvers.level",
                format!("approver {:?}: level {level}; use 1 to 9", raw.name),
            );
            continue;
        }
        if approvers.iter().any(|p| p.name == raw.name) {
            src.report(
                Some(at.clone()),
                "approval.approvers.name",
                format!("approver {:?} is listed twice", raw.name),
            );
            continue;
        }
        if let Some(p) = approvers.iter().find(|p| p.key == key) {
            src.report(
                Some(at.clone()),
                "approval.approvers.key",
                format!(
                    "approvers {:?} and {:?} have the same key: each officer needs a key of their own",
                    p.name, raw.name
                ),
            );
            continue;
        }
        approvers.push(Approver {
            name: raw.name,
            key,
            level,
        });
    }
    if approvers.is_empty() {
        src.report(
            Some(span),
            "approval.approvers",
            "no valid approver: list each officer with name and key",
        );
        return None;
    }
    if approvers.len() > MAX_APPROVALS {
        src.report(
            Some(span),
            "approval.approvers",
            format!("{} approvers; at most {MAX_APPROVALS}", approvers.len()),
        );
    }
    let mut rule = ApprovalRule {
        required: 0,
        approvers,
        expire_ms: DEFAULT_APPROVAL_EXPIRY_MS,
    };
    let required = *a.required.get_ref();
    let levels = rule.levels().len();
    if required == 0 || required > rule.approvers.len() as u64 {
        src.report(
            Some(a.required.span()),
            "approval.required",
            format!(
                "{required}: must be 1 to the number of approvers ({}); to send without approval, remove the section",
                rule.approvers.len()
            ),
        );
    } else if (required as usize) < levels {
        src.report(
            Some(a.required.span()),
            "approval.required",
            format!("{required}: the approvers have {levels} levels and each level must approve"),
        );
    }
    rule.required = usize::try_from(required).unwrap_or(usize::MAX);
    if let Some(e) = a.expire_after {
        match humantime::parse_duration(e.get_ref()) {
            Ok(d) => {
                let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                if !(MIN_APPROVAL_EXPIRY_MS..=MAX_APPROVAL_EXPIRY_MS).contains(&ms) {
                    src.report(
                        Some(e.span()),
                        "approval.expire_after",
                        format!("{:?}: use 5 s to 30 days", e.get_ref()),
                    );
                }
                rule.expire_ms = ms;
            }
            Err(_) => src.report(
                Some(e.span()),
                "approval.expire_after",
                format!(
                    "{:?} is not a duration: write a number and a unit, e.g. \"72h\", \"3d\" or \"90min\" (5 s to 30 days)",
                    e.get_ref()
                ),
            ),
        }
    }
    Some(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_section_is_validated_with_file_line_and_key() {
        let base = "[names]\nmax_length = 200\nextensions = [\"txt\"]\n[size]\nmax_bytes = 1000\n[types]\nallow = [\"text\"]\n";
        let k1 = SigningKeyForTest::key(1);
        let k2 = SigningKeyForTest::key(2);
        let ok = format!(
            "{base}[approval]\nrequired = 2\nexpire_after = \"2h\"\napprovers = [\n  {{ name = \"张伟\", key = \"{k1}\" }},\n  {{ name = \"li.na\", key = \"{k2}\", level = 2 }},\n]\n"
        );
        let p = Policy::parse(Path::new("p.toml"), &ok).unwrap();
        let a = p.approval.unwrap();
        assert_eq!(a.required, 2);
        assert_eq!(a.expire_ms, 7_200_000);
        assert_eq!(a.levels(), vec![1, 2]);
        let bad = |section: &str| {
            Policy::parse(Path::new("p.toml"), &format!("{base}{section}"))
                .unwrap_err()
                .to_string()
        };
        let e = bad(&format!(
            "[approval]\nrequired = 3\napprovers = [{{ name = \"a\", key = \"{k1}\" }}]\n"
        ));
        assert!(
            e.contains("p.toml") && e.contains("approval.required") && e.contains(":9"),
            "{e}"
        );
        let e = bad("[approval]\nrequired = 1\napprovers = [{ name = \"a\", key = \"abc\" }]\n");
        assert!(e.contains("approval.approvers.key"), "{e}");
        let e = bad(&format!(
            "[approval]\nrequired = 1\napprovers = [{{ name = \"a\", key = \"{k1}\" }}, {{ name = \"b\", key = \"{k1}\" }}]\n"
        ));
        assert!(e.contains("same key"), "{e}");
        let e = bad(&format!(
            "[approval]\nrequired = 1\nexpire_after = \"1s\"\napprovers = [{{ name = \"a\", key = \"{k1}\" }}]\n"
        ));
        assert!(e.contains("approval.expire_after"), "{e}");
        let e = bad(&format!(
            "[approval]\nrequired = 1\nexpire_after = \"soon\"\napprovers = [{{ name = \"a\", key = \"{k1}\" }}]\n"
        ));
        assert!(
            e.contains("\"soon\" is not a duration: write a number and a unit, e.g. \"72h\""),
            "{e}"
        );
        let e = bad(&format!(
            "[approval]\nrequired = 1\napprovers = [{{ name = \"a\", key = \"{k1}\" }}, {{ name = \"b\", key = \"{k2}\", level = 2 }}]\n"
        ));
        assert!(e.contains("each level must approve"), "{e}");
    }

    struct SigningKeyForTest;
    impl SigningKeyForTest {
        fn key(n: u8) -> String {
            crate::keys::SigningKey::from_seed(&[n; 32])
                .unwrap()
                .verify_key()
                .to_hex()
        }
    }

    fn lab() -> Policy {
        Policy::parse(
            Path::new("p.toml"),
            r#"
[names]
max_length = 200
extensions = ["pdf", "txt", "png", "csv", "json", "docx", "zip"]
[size]
max_bytes = 1000000
[types]
allow = ["pdf", "text", "png", "csv", "json", "ooxml", "zip"]
[archives]
max_depth = 3
max_entries = 100
max_ratio = 100
"#,
        )
        .unwrap()
    }

    #[test]
    fn chinese_pdf_accepted() {
        let v = lab().check("民事判决书（2026）吉01民初123号.pdf", 100, b"%PDF-1.7\n...");
        assert_eq!(
            v,
            Verdict::Accept {
                content_type: "pdf".into()
            }
        );
    }

    #[test]
    fn elf_renamed_pdf_refused() {
        let elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0";
        match lab().check("report.pdf", 100, elf) {
            Verdict::Reject(r) => assert_eq!(r.reason, Reason::TypeRefused),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn text_named_pdf_is_a_mismatch() {
        match lab().check("report.pdf", 5, b"hello") {
            Verdict::Reject(r) => assert_eq!(r.reason, Reason::TypeMismatch),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn names_refused() {
        let p = lab();
        for bad in [
            "",
            ".hidden.txt",
            "-rf.txt",
            "a/b.txt",
            "..",
            "CON.txt",
            "evil\u{202E}fdp.txt",
            "zero\u{200B}width.txt",
            "tab\there.txt",
            "trailing.txt.",
        ] {
            assert!(p.check_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            p.check_name("a.exe").unwrap_err().reason,
            Reason::ExtensionRefused
        );
        assert!(p.check_name(&"长".repeat(60)).is_err());
        assert!(p.check_name("案件材料 2026.txt").is_ok());
        assert!(p.check_name("民事判决书（2026）吉01民初123号.pdf").is_ok());
        assert_eq!(
            p.check_name("a;rm -rf.txt").unwrap_err().reason,
            Reason::NameRefused
        );
        assert_eq!(
            p.check_name("$(x).txt").unwrap_err().reason,
            Reason::NameRefused
        );
    }

    #[test]
    fn sizes_and_text_kinds() {
        let p = lab();
        assert!(matches!(
            p.check("a.txt", 2_000_000, b"x"),
            Verdict::Reject(Refusal {
                reason: Reason::SizeLimit,
                ..
            })
        ));
        assert!(matches!(
            p.check("empty.txt", 0, b""),
            Verdict::Accept { .. }
        ));
        assert!(matches!(
            p.check("a.json", 2, b"{}"),
            Verdict::Accept { .. }
        ));
        assert!(matches!(
            p.check("a.csv", 4, "姓名,号\n".as_bytes()),
            Verdict::Accept { .. }
        ));
        assert!(matches!(
            p.check("run.txt", 10, b"#!/bin/sh\n"),
            Verdict::Reject(Refusal {
                reason: Reason::TypeRefused,
                ..
            })
        ));
    }

    #[test]
    fn bad_policy_names_line_and_key() {
        let err = Policy::parse(
            Path::new("p.toml"),
            "[names]\nmax_length = 0\nextensions = [\"pdf\"]\n[size]\nmax_bytes = 10\n[types]\nallow = [\"*\", \"pdf\"]\n",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("p.toml:2: names.max_length"), "{text}");
        assert!(text.contains("p.toml:7: types.allow: wildcard"), "{text}");
        let err = Policy::parse(Path::new("p.toml"), "[names]\nbogus = 1\n").unwrap_err();
        assert!(err.to_string().contains("p.toml:2"), "{err}");
        let err = Policy::parse(
            Path::new("p.toml"),
            "[names]\nmax_length = 9\nextensions = [\"zip\"]\n[size]\nmax_bytes = 10\n[types]\nallow = [\"zip\", \"executable\"]\n[text]\npatterns = [\"(\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("p.toml:7: archives"), "{err}");
        assert!(err.contains("executables are never allowed"), "{err}");
        assert!(err.contains("text.patterns[0]"), "{err}");
    }
}
