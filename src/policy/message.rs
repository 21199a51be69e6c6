//! The rules of a `messages` channel's policy (its `[messages]` table): the JSON Schema
//! (draft 2020-12) every message must satisfy and the size limit of one message. The
//! policy's text rules, classification markings and personal-data rules apply to every
//! string value of a message (see the message evaluator in the inspect stage).
//!
//! ```toml
//! [messages]
//! schema = "notice.schema.json"   # beside the policy file, or an absolute path; required
//! max_message_bytes = 65536       # one message's JSON body, 2..=1 MiB
//! [text]                          # as in a files policy
//! [markings]                      # as in a files policy
//! [personal_data]                 # as in a files policy
//! [compliance]                    # as in a files policy
//! ```
//!
//! ```text
//!  policy/notices.toml ─► top-level tables: [messages] and the content rules only
//!                      ─► RawMessagesPolicy (deny_unknown_fields)
//!                      ─► schema file (relative to the policy file) ─► JSON (RFC 8259)
//!                         ─► compiled once, draft 2020-12, formats asserted, no remote $ref
//!                      ─► Policy { messages: Some(rules), text, markings, personal data,
//!                                  version (policy text and schema), .. deny_all() }
//! ```
//!
//! A file with a `[messages]` table is a messages policy: the tables of a files policy
//! (`[names]`, `[size]`, `[types]`, `[archives]`, `[pdf]`, `[documents]`, `[antivirus]`,
//! `[approval]`) are refused in it, with the file, line and key, and so is `[messages]` in
//! a files or stream policy. A messages policy refuses every file.

use super::{
    Policy, RawCompliance, RawMarkings, RawPersonalData, RawText, content_rules, opt_outs,
    stream::{table_span, top_level_keys},
};
use crate::problem::{Problems, Source, relative_to};
use serde::Deserialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;

/// Largest `max_message_bytes` a policy may set (1 MiB).
pub const MAX_MESSAGE_BYTES_CAP: u64 = 1024 * 1024;
/// `max_message_bytes` when the policy does not set it (64 KiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 64 * 1024;
/// Smallest `max_message_bytes` (the shortest JSON text, `{}`, is two bytes).
pub const MIN_MESSAGE_BYTES: u64 = 2;
/// Largest schema file read, in bytes (4 MiB): a schema is a document, not data.
pub const MAX_SCHEMA_BYTES: u64 = 4 * 1024 * 1024;

/// The tables of a files policy that have no meaning for messages: each is refused in a
/// messages policy.
const FILE_ONLY_TABLES: &[&str] = &[
    "names",
    "size",
    "types",
    "archives",
    "pdf",
    "documents",
    "antivirus",
    "approval",
];

/// A messages policy's own rules.
#[derive(Clone)]
pub struct MessageRules {
    /// The schema file, as resolved (for reports).
    pub schema_file: Option<PathBuf>,
    /// The compiled JSON Schema (draft 2020-12); `None` only when the policy sets none
    /// (`isogate check` refuses that on an outbound channel).
    pub schema: Option<Arc<jsonschema::Validator>>,
    /// Largest JSON body of one message, in bytes.
    pub max_message_bytes: u64,
}

impl std::fmt::Debug for MessageRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageRules")
            .field("schema_file", &self.schema_file)
            .field("schema", &self.schema.is_some())
            .field("max_message_bytes", &self.max_message_bytes)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessagesPolicy {
    messages: RawMessages,
    text: Option<RawText>,
    markings: Option<RawMarkings>,
    personal_data: Option<RawPersonalData>,
    compliance: Option<RawCompliance>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessages {
    schema: Option<Spanned<String>>,
    max_message_bytes: Option<Spanned<i64>>,
}

/// Whether policy text has a top-level `messages` table (then it is a messages policy).
pub(super) fn has_messages_table(text: &str) -> bool {
    top_level_keys(text).iter().any(|k| k == "messages")
}

/// Reads and compiles the schema at `file`: at most [`MAX_SCHEMA_BYTES`], JSON (RFC 8259),
/// a valid draft 2020-12 schema. Formats (`date-time`, `email`, …) are asserted, not only
/// annotated; a `$ref` to another document is never fetched (it fails to compile).
/// Returns the validator and the file's bytes (for the policy's version).
fn compile_schema(file: &Path) -> Result<(jsonschema::Validator, Vec<u8>), String> {
    let shown = file.display();
    let f = std::fs::File::open(file).map_err(|e| {
        format!(
            "cannot read the schema {shown}: {e}{}",
            crate::problem::hint(&e)
        )
    })?;
    let mut bytes = Vec::new();
    f.take(MAX_SCHEMA_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the schema {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_SCHEMA_BYTES {
        return Err(format!(
            "the schema {shown} is larger than {MAX_SCHEMA_BYTES} bytes"
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the schema {shown} is not JSON: {e}"))?;
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&value)
        .map_err(|e| {
            let text: String = e.to_string().chars().take(300).collect();
            let at = e.instance_path().as_str();
            let at = if at.is_empty() {
                String::new()
            } else {
                format!(" at {at}")
            };
            format!("the schema {shown} is not a valid JSON Schema (draft 2020-12){at}: {text}")
        })?;
    Ok((validator, bytes))
}

impl Policy {
    /// Parses and validates the policy of a `messages` channel (text with a `[messages]`
    /// table, from `path`): the schema (read relative to `path`, compiled once), the size
    /// limit, and the content rules shared with files policies. The result refuses every
    /// file and has [`Policy::messages`] set.
    ///
    /// # Errors
    /// Every problem, with the file, line and key: a files policy table, an unknown key,
    /// no `schema`, a schema file that cannot be read, is not JSON or is not a valid
    /// draft 2020-12 schema, `max_message_bytes` outside 2..=1 MiB, a bad content rule.
    pub(super) fn parse_messages(path: &Path, text: &str) -> Result<Policy, Problems> {
        let mut src = Source::new(path, text);
        let mut foreign = false;
        for key in top_level_keys(text) {
            if FILE_ONLY_TABLES.contains(&key.as_str()) {
                let span = table_span(text, &key);
                src.report(
                    span,
                    &key,
                    format!(
                        "[{key}] is a files policy table: a policy with a [messages] table is a \
                         messages channel's policy, with only [messages], [text], [markings], \
                         [personal_data] and [compliance]"
                    ),
                );
                foreign = true;
            }
        }
        if foreign {
            return src.finish(Policy::deny_all());
        }
        let Some(raw) = src.parse::<RawMessagesPolicy>() else {
            return src.finish(Policy::deny_all());
        };
        let max_message_bytes = match &raw.messages.max_message_bytes {
            None => DEFAULT_MAX_MESSAGE_BYTES,
            Some(m) => match u64::try_from(*m.get_ref()) {
                Ok(n) if (MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES_CAP).contains(&n) => n,
                _ => {
                    src.report(
                        Some(m.span()),
                        "messages.max_message_bytes",
                        format!(
                            "{}: must be between {MIN_MESSAGE_BYTES} and {MAX_MESSAGE_BYTES_CAP} (1 MiB)",
                            m.get_ref()
                        ),
                    );
                    DEFAULT_MAX_MESSAGE_BYTES
                }
            },
        };
        let mut schema_bytes = Vec::new();
        let (schema_file, schema) = match &raw.messages.schema {
            None => {
                src.report(
                    table_span(text, "messages"),
                    "messages.schema",
                    "missing: name the JSON Schema (draft 2020-12) every message must \
                     satisfy, e.g. schema = \"notices.schema.json\" beside this file",
                );
                (None, None)
            }
            Some(s) if s.get_ref().trim().is_empty() => {
                src.report(
                    Some(s.span()),
                    "messages.schema",
                    "empty: name the schema file",
                );
                (None, None)
            }
            Some(s) => {
                let file = relative_to(path, s.get_ref());
                match compile_schema(&file) {
                    Ok((v, bytes)) => {
                        schema_bytes = bytes;
                        (Some(file), Some(Arc::new(v)))
                    }
                    Err(e) => {
                        src.report(Some(s.span()), "messages.schema", e);
                        (Some(file), None)
                    }
                }
            }
        };
        let content = content_rules(&mut src, raw.text, raw.markings, raw.personal_data);
        let opt_out = opt_outs(&mut src, raw.compliance);
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(text.as_bytes());
        ctx.update(b"\0schema\0");
        ctx.update(&schema_bytes);
        let digest = ctx.finish();
        src.finish(Policy {
            keywords: content.keywords,
            patterns: content.patterns,
            markings: content.markings,
            personal_data: content.personal_data,
            opt_out,
            messages: Some(MessageRules {
                schema_file,
                schema,
                max_message_bytes,
            }),
            version: hex::encode(&digest.as_ref()[..6]),
            compiled: Arc::new(content.compiled),
            ..Policy::deny_all()
        })
    }
}

/// The `messages` part of a policy's compliance report.
pub(super) fn report(rules: &MessageRules) -> serde_json::Value {
    serde_json::json!({
        "schema": rules.schema_file.as_ref().map(|f| f.display().to_string()),
        "max_message_bytes": rules.max_message_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::stream::Protocol;

    const SCHEMA: &str =
        r#"{"type":"object","required":["case"],"properties":{"case":{"type":"string"}}}"#;

    /// A folder with the schema file `s.json` (when given) and the policy path `p.toml`.
    fn folder(schema: Option<&str>) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        if let Some(s) = schema {
            std::fs::write(dir.path().join("s.json"), s).unwrap();
        }
        let path = dir.path().join("p.toml");
        (dir, path)
    }

    fn problems(path: &Path, text: &str) -> String {
        Policy::parse(path, text).unwrap_err().to_string()
    }

    #[test]
    fn a_policy_with_a_messages_table_is_a_messages_policy() {
        let (_dir, path) = folder(Some(SCHEMA));
        let p = Policy::parse(
            &path,
            "[messages]\nschema = \"s.json\"\n[markings]\nrefuse = true\n\
             [personal_data]\ndetect = [\"mobile\"]\naction = \"mask\"\n[text]\nkeywords = [\"内部资料\"]\n",
        )
        .unwrap();
        let m = p.messages.as_ref().unwrap();
        assert_eq!(m.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
        assert_eq!(
            m.schema_file.as_deref(),
            Some(path.with_file_name("s.json").as_path())
        );
        let schema = m.schema.as_ref().unwrap();
        assert!(schema.is_valid(&serde_json::json!({"case": "c"})));
        assert!(!schema.is_valid(&serde_json::json!({"case": 1})));
        assert!(p.masks() && p.marking_detector().is_some() && p.text_rules().is_some());
        // it refuses every file
        assert!(p.check_name("a.txt").is_err());
        let report = p.report();
        assert_eq!(report["messages"]["max_message_bytes"], 65536);
        assert!(
            report["messages"]["schema"]
                .as_str()
                .unwrap()
                .ends_with("s.json")
        );
        assert_eq!(report["personal_data"]["action"], "mask");
        assert_eq!(report["markings"]["refuse"], true);
        assert!(report.get("names").is_none());
        // formats are asserted
        let (_dir, path) = folder(Some(
            r#"{"properties":{"submitted":{"type":"string","format":"date-time"}}}"#,
        ));
        let p = Policy::parse(
            &path,
            "[messages]\nschema = \"s.json\"\nmax_message_bytes = 2\n",
        )
        .unwrap();
        let schema = p.messages.unwrap().schema.unwrap();
        assert!(schema.is_valid(&serde_json::json!({"submitted": "2026-12-01T08:00:00Z"})));
        assert!(!schema.is_valid(&serde_json::json!({"submitted": "yesterday"})));
    }

    #[test]
    fn the_version_follows_the_schema() {
        let (dir, path) = folder(Some(SCHEMA));
        let text = "[messages]\nschema = \"s.json\"\n";
        let a = Policy::parse(&path, text).unwrap().version;
        std::fs::write(dir.path().join("s.json"), r#"{"type":"object"}"#).unwrap();
        let b = Policy::parse(&path, text).unwrap().version;
        assert_ne!(a, b);
    }

    #[test]
    fn schema_problems_name_the_file_line_and_key() {
        let (dir, path) = folder(None);
        let shown = path.display().to_string();
        let e = problems(&path, "[messages]\nmax_message_bytes = 100\n");
        assert!(
            e.contains(&format!("{shown}:1: messages.schema: missing")),
            "{e}"
        );
        let e = problems(&path, "# notices\n[messages]\nschema = \"s.json\"\n");
        assert!(
            e.contains(&format!(
                "{shown}:3: messages.schema: cannot read the schema"
            )),
            "{e}"
        );
        assert!(e.contains("s.json"), "{e}");
        std::fs::write(dir.path().join("s.json"), "{not json").unwrap();
        let e = problems(&path, "[messages]\nschema = \"s.json\"\n");
        assert!(
            e.contains("messages.schema: the schema") && e.contains("is not JSON"),
            "{e}"
        );
        std::fs::write(dir.path().join("s.json"), r#"{"type": 12}"#).unwrap();
        let e = problems(&path, "[messages]\nschema = \"s.json\"\n");
        assert!(e.contains("not a valid JSON Schema (draft 2020-12)"), "{e}");
        // a remote reference is never fetched: the schema does not compile
        std::fs::write(
            dir.path().join("s.json"),
            r#"{"$ref": "https://example.com/notice.schema.json"}"#,
        )
        .unwrap();
        let e = problems(&path, "[messages]\nschema = \"s.json\"\n");
        assert!(e.contains("messages.schema"), "{e}");
    }

    #[test]
    fn limits_and_unknown_keys_are_refused() {
        let (_dir, path) = folder(Some(SCHEMA));
        let shown = path.display().to_string();
        for bad in ["1", "1048577", "-5"] {
            let e = problems(
                &path,
                &format!("[messages]\nschema = \"s.json\"\nmax_message_bytes = {bad}\n"),
            );
            assert!(
                e.contains(&format!("{shown}:3: messages.max_message_bytes")),
                "{e}"
            );
        }
        let e = problems(&path, "[messages]\nschema = \"s.json\"\nbatch = 3\n");
        assert!(
            e.contains(&format!("{shown}:3")) && e.contains("batch"),
            "{e}"
        );
        let e = problems(
            &path,
            "[messages]\nschema = \"s.json\"\n[personal_data]\ndetect = []\naction = \"mask\"\n",
        );
        assert!(e.contains("personal_data.detect"), "{e}");
    }

    #[test]
    fn file_tables_and_messages_do_not_mix() {
        let (_dir, path) = folder(Some(SCHEMA));
        let shown = path.display().to_string();
        // file tables in a messages policy
        let e = problems(
            &path,
            "[messages]\nschema = \"s.json\"\n[antivirus]\nclamd = \"tcp://127.0.0.1:3310\"\n[approval]\nrequired = 1\n",
        );
        assert!(
            e.contains(&format!(
                "{shown}:3: antivirus: [antivirus] is a files policy table"
            )),
            "{e}"
        );
        assert!(e.contains(&format!("{shown}:5: approval: ")), "{e}");
        // [messages] added to a files policy: its file tables are refused
        let e = problems(
            &path,
            "[names]\nmax_length = 200\nextensions = [\"txt\"]\n[size]\nmax_bytes = 1000\n\
             [types]\nallow = [\"text\"]\n[messages]\nschema = \"s.json\"\n",
        );
        assert!(
            e.contains(&format!(
                "{shown}:1: names: [names] is a files policy table"
            )),
            "{e}"
        );
        assert!(e.contains(&format!("{shown}:4: size: ")), "{e}");
        assert!(e.contains(&format!("{shown}:6: types: ")), "{e}");
        // [messages] in a stream policy
        let e = Policy::parse_stream(
            &path,
            "[stream]\nmax_packet_bytes = 1400\nmax_bitrate_kbit = 8000\nsources = [\"10.0.0.0/8\"]\npayload_types = [96]\n[messages]\nschema = \"s.json\"\n",
            Protocol::Rtp,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(&format!(
                "{shown}:6: messages: [messages] belongs in the policy of a messages channel"
            )),
            "{e}"
        );
        // a files policy stays a files policy
        let files = Policy::parse(
            &path,
            "[names]\nmax_length = 200\nextensions = [\"txt\"]\n[size]\nmax_bytes = 1000\n[types]\nallow = [\"text\"]\n",
        )
        .unwrap();
        assert!(files.messages.is_none());
    }
}
