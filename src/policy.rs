//! A channel's policy: the rules a file must pass to cross, loaded from TOML and evaluated
//! without I/O over the name, the size and the first bytes of the content.
//!
//! Deny by default: a type not on the allow-list, an extension not on the list, a size over
//! the limit are all refusals with a stable reason code. This is the minimal engine (names,
//! sizes, types by magic bytes); content rules plug in behind `Policy::check`.

use crate::problem::{Problems, Source};
use crate::reason::{Reason, Refusal};
use serde::Deserialize;
use std::path::Path;
use toml::Spanned;

/// How many bytes of the head of a file the type detection looks at.
pub const HEAD_LEN: usize = 8192;

/// Content types the policy knows; `types.allow` names them.
pub const KNOWN_TYPES: &[&str] = &[
    "text",
    "csv",
    "json",
    "pdf",
    "png",
    "jpeg",
    "ooxml",
    "zip",
    "executable",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    names: RawNames,
    size: RawSize,
    types: RawTypes,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNames {
    max_length: Spanned<u64>,
    extensions: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSize {
    #[serde(default)]
    min_bytes: u64,
    max_bytes: Spanned<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTypes {
    allow: Spanned<Vec<Spanned<String>>>,
}

/// A validated channel policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Longest file name, in bytes of UTF-8.
    pub max_name_len: usize,
    /// Allowed extensions, lower case, without the dot.
    pub extensions: Vec<String>,
    /// Smallest file size.
    pub min_bytes: u64,
    /// Largest file size.
    pub max_bytes: u64,
    /// Allowed content types (names from `KNOWN_TYPES`).
    pub allow: Vec<String>,
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

impl Policy {
    /// Loads and validates a policy file, naming the file, line and key of every problem.
    pub fn load(path: &Path) -> Result<Policy, Problems> {
        let text = crate::problem::read(path)?;
        Self::parse(path, &text)
    }

    /// Parses and validates policy text that came from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Policy, Problems> {
        let mut src = Source::new(path, text);
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
        let max_bytes = *raw.size.max_bytes.get_ref();
        if max_bytes == 0 {
            src.report(
                Some(raw.size.max_bytes.span()),
                "size.max_bytes",
                "must be greater than 0",
            );
        }
        if raw.size.min_bytes > max_bytes {
            src.report(
                Some(raw.size.max_bytes.span()),
                "size.min_bytes",
                "is greater than size.max_bytes",
            );
        }
        let mut allow = Vec::new();
        for t in raw.types.allow.get_ref() {
            let v = t.get_ref();
            if v == "*" {
                src.report(
                    Some(t.span()),
                    "types.allow",
                    "wildcard types are not allowed: list each type",
                );
            } else if !KNOWN_TYPES.contains(&v.as_str()) {
                src.report(
                    Some(t.span()),
                    "types.allow",
                    format!("unknown type {v:?}; known: {}", KNOWN_TYPES.join(", ")),
                );
            }
            allow.push(v.clone());
        }
        if allow.is_empty() {
            src.report(
                Some(raw.types.allow.span()),
                "types.allow",
                "empty: nothing could cross; list the allowed types",
            );
        }
        src.finish(Policy {
            max_name_len: max_len as usize,
            extensions,
            min_bytes: raw.size.min_bytes,
            max_bytes,
            allow,
        })
    }

    /// A policy that refuses everything (used only when a policy could not be loaded).
    pub fn deny_all() -> Policy {
        Policy {
            max_name_len: 0,
            extensions: Vec::new(),
            min_bytes: 0,
            max_bytes: 0,
            allow: Vec::new(),
        }
    }

    /// Checks a file name alone (both intake and landing use it).
    pub fn check_name(&self, name: &str) -> Result<(), Refusal> {
        check_name_rules(name, self.max_name_len)?;
        let ext = extension(name).unwrap_or_default();
        if !self.extensions.contains(&ext) {
            return Err(Refusal::new(
                Reason::ExtensionRefused,
                format!("extension {ext:?} is not allowed on this channel"),
            ));
        }
        Ok(())
    }

    /// Checks an object: its name, its size and the first `HEAD_LEN` bytes of its content.
    pub fn check(&self, name: &str, size: u64, head: &[u8]) -> Verdict {
        if let Err(r) = self.check_name(name) {
            return Verdict::Reject(r);
        }
        if size < self.min_bytes || size > self.max_bytes {
            return Verdict::Reject(Refusal::new(
                Reason::SizeLimit,
                format!(
                    "{size} bytes is outside {}..={} bytes",
                    self.min_bytes, self.max_bytes
                ),
            ));
        }
        let ext = extension(name).unwrap_or_default();
        let detected = detect(head, &ext);
        if !self.allow.iter().any(|t| t == detected.family) {
            return Verdict::Reject(Refusal::new(
                Reason::TypeRefused,
                format!(
                    "content is {}, not allowed on this channel",
                    detected.family
                ),
            ));
        }
        if !detected.extensions.contains(&ext.as_str()) {
            return Verdict::Reject(Refusal::new(
                Reason::TypeMismatch,
                format!(
                    "content is {} but the extension is {ext:?}",
                    detected.family
                ),
            ));
        }
        Verdict::Accept {
            content_type: detected.family.to_string(),
        }
    }
}

/// The lower-case extension of a name, without the dot.
pub fn extension(name: &str) -> Option<String> {
    let (stem, ext) = name.rsplit_once('.')?;
    (!stem.is_empty()).then(|| ext.to_lowercase())
}

const RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

fn forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
        // bidi embeddings, overrides and isolates
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}')
        // zero-width and invisible characters
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

/// The name rules every channel applies, whatever its policy: a plain base name.
pub fn check_name_rules(name: &str, max_len: usize) -> Result<(), Refusal> {
    let refuse = |d: String| Err(Refusal::new(Reason::NameRefused, d));
    if name.is_empty() {
        return refuse("empty name".into());
    }
    if name.len() > max_len {
        return refuse(format!("{} bytes is longer than {max_len}", name.len()));
    }
    if let Some(c) = name.chars().find(|c| forbidden_char(*c)) {
        return refuse(format!("forbidden character U+{:04X}", c as u32));
    }
    if name.starts_with('.') || name.starts_with('-') || name.starts_with(' ') {
        return refuse("name starts with '.', '-' or a space".into());
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return refuse("name ends with '.' or a space".into());
    }
    let stem = name.split('.').next().unwrap_or(name).to_ascii_uppercase();
    if RESERVED.contains(&stem.as_str()) {
        return refuse(format!("{stem} is a reserved device name"));
    }
    Ok(())
}

/// A detected content type: its family (as named in policies) and the extensions that agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// Family name, one of `KNOWN_TYPES` or "unknown".
    pub family: &'static str,
    /// Extensions that agree with the content.
    pub extensions: &'static [&'static str],
}

fn d(family: &'static str, extensions: &'static [&'static str]) -> Detected {
    Detected { family, extensions }
}

/// Decides the content type from the first bytes, never from the name; the extension only
/// chooses between text formats (plain, CSV, JSON) that share the same bytes.
pub fn detect(head: &[u8], ext: &str) -> Detected {
    if head.starts_with(b"#!") {
        return d("executable", &[]);
    }
    if let Some(t) = infer::get(head) {
        return match t.extension() {
            "pdf" => d("pdf", &["pdf"]),
            "png" => d("png", &["png"]),
            "jpg" => d("jpeg", &["jpg", "jpeg"]),
            "docx" => d("ooxml", &["docx"]),
            "xlsx" => d("ooxml", &["xlsx"]),
            "pptx" => d("ooxml", &["pptx"]),
            "zip" => d("zip", &["zip"]),
            _ if t.matcher_type() == infer::MatcherType::App => d("executable", &[]),
            _ => d("unknown", &[]),
        };
    }
    if !looks_like_text(head) {
        return d("unknown", &[]);
    }
    match ext {
        "csv" => d("csv", &["csv"]),
        "json" if head.is_empty() || starts_like_json(head) => d("json", &["json"]),
        _ => d("text", &["txt", "md", "log", "xml"]),
    }
}

fn starts_like_json(head: &[u8]) -> bool {
    let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{') | Some(b'[')
    )
}

/// Plain text: no NUL or control bytes other than tab, newline, form feed and carriage
/// return. Multi-byte text (UTF-8, GB18030) passes; decoding is the content engine's job.
fn looks_like_text(head: &[u8]) -> bool {
    head.iter()
        .all(|b| *b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r' | 0x0c))
        && !head.contains(&0x7f)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
