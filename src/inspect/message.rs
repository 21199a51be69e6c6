//! The message evaluator on either node: one message (a JSON value) against its channel's
//! messages policy, and the shell step that re-checks a whole batch object.
//!
//! ```text
//!  body (compact JSON) ─► size (max_message_bytes) ─► JSON (RFC 8259)
//!    ─► JSON Schema (draft 2020-12), first error: its instance path and text
//!    ─► every string value and object key, depth first, in document order:
//!         keywords and patterns ─► refuse (keyword_match)
//!         classification markings ─► refuse (classification_marking)
//!         personal data ─► mask that string (action mask) or refuse (personal_data);
//!                          an object key is never masked: personal data in one refuses
//!    ─► masked: the schema again over what crosses (a mask that breaks it refuses)
//!    ─► accepted: the body that crosses (masked field by field), the masked fields'
//!       JSON Pointers (RFC 6901), the suite's hash of the body as given and as it crosses
//!  batch object ─► core::message::parse_batch ─► each message as above
//!    ─► every message refused, or the batch unreadable: the object is refused
//!    ─► some refused: they are returned (each quarantined on its own by the caller) and
//!       the copy holds the others; masking also rewrites the batch (the masked copy)
//! ```
//!
//! The text checks are the files' own ([`crate::inspect::evaluate::check_text`]): the same
//! rules, detection view and masking as a line of text, applied to each string.

use crate::core::message;
use crate::core::reason::{Reason, Refusal};
use crate::inspect::evaluate::check_text;
use crate::inspect::{Accepted, InspectError, Masked, Outcome};
use crate::keys::at_rest::{Sealing, Stored};
use crate::keys::suite::{Suite, digest};
use crate::policy::Policy;
use serde_json::Value;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::Path;

/// The content type of a batch object (one JSON line per message).
pub const BATCH_CONTENT_TYPE: &str = "application/x-ndjson";

pub use crate::core::message::MAX_BATCH_BYTES;

/// Longest detail of a schema refusal, in characters.
pub const MAX_SCHEMA_DETAIL: usize = 300;

/// Longest detail of any other refusal, in characters (a pointer can be long).
const MAX_DETAIL: usize = 1000;

/// A message of a batch that the policy refused while it accepted others of the same batch:
/// the caller quarantines it on its own (`<id>`, audited `message_refused`) before the
/// batch's copy, which leaves it out, goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedMessage {
    /// The message's id.
    pub id: message::MessageId,
    /// Its body as the batch holds it (compact JSON).
    pub body: String,
    /// Why: the reason code and a detail naming the field (without the message's id).
    pub refusal: Refusal,
}

/// A message the policy accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedMessage {
    /// The body that crosses: compact JSON, personal data masked where the policy masks.
    pub body: String,
    /// JSON Pointers (RFC 6901) of the string values masking changed, in document order;
    /// empty when nothing was masked.
    pub masked: Vec<String>,
    /// The suite's hash (SHA-256, or SM3 under `gm`) of the body as given (compact).
    pub original_digest: [u8; 32],
    /// The same hash of [`CheckedMessage::body`] (equal to `original_digest` when unmasked).
    pub digest: [u8; 32],
}

/// Checks one message (compact JSON text, as `core::message::parse_posted` returns it)
/// against a messages policy. Masking is idempotent: a masked body checks again unchanged.
///
/// The order: size (`max_message_bytes`, the body's bytes) → JSON (RFC 8259) → the schema
/// (JSON Schema draft 2020-12) → every string value and object key, depth first (see the
/// module's documentation) → when masked, the schema again over the masked message.
///
/// # Errors
/// The refusal, with its reason code (`size_limit`, `message_malformed`,
/// `schema_violation`, `keyword_match`, `classification_marking`, `personal_data`) and a
/// detail that names the field (JSON Pointer, RFC 6901; `(root)` for the whole message)
/// and, for a schema, what the schema says (the first error, at most 300 characters,
/// values left out). A policy that is not a messages policy refuses every message
/// (`type_refused`).
pub fn check_message(policy: &Policy, body: &str, suite: Suite) -> Result<CheckedMessage, Refusal> {
    let Some(rules) = &policy.messages else {
        return Err(Refusal::new(
            Reason::TypeRefused,
            "this channel's policy is not a messages policy (it has no [messages] table)",
        ));
    };
    if body.len() as u64 > rules.max_message_bytes {
        return Err(Refusal::new(
            Reason::SizeLimit,
            format!(
                "{} bytes, the policy allows {}",
                body.len(),
                rules.max_message_bytes
            ),
        ));
    }
    // the reader of posted and dropped messages, for those from NATS too: a member named
    // twice, or hidden in serde_json's raw-value form, is refused, never one of them dropped
    let mut value: Value = crate::core::message::parse_json(body.as_bytes())
        .map_err(|e| Refusal::new(Reason::MessageMalformed, e))?;
    let original = serde_json::to_string(&value)
        .map_err(|e| Refusal::new(Reason::MessageMalformed, e.to_string()))?;
    if let Some(schema) = &rules.schema {
        schema_check(policy, schema, &value, "")?;
    }
    let mut walk = Walk {
        policy,
        mask: policy.masks(),
        masked: Vec::new(),
    };
    walk.value(&mut value, &mut String::new())?;
    let original_digest = digest(suite, original.as_bytes());
    if walk.masked.is_empty() {
        return Ok(CheckedMessage {
            body: original,
            masked: Vec::new(),
            original_digest,
            digest: original_digest,
        });
    }
    if let Some(schema) = &rules.schema {
        schema_check(policy, schema, &value, "after masking, ")?;
    }
    let body = serde_json::to_string(&value)
        .map_err(|e| Refusal::new(Reason::MessageMalformed, e.to_string()))?;
    let crossing = digest(suite, body.as_bytes());
    Ok(CheckedMessage {
        body,
        masked: walk.masked,
        original_digest,
        digest: crossing,
    })
}

/// The inspect step for a batch object of a messages channel (`content`: the spool entry's,
/// read through the data keys where it is sealed, or the receiver's part file, opened by
/// [`super::inspect_stored`]): every message checked with [`check_message`]. When masking
/// changed any, or the policy refused some but not all, the batch that crosses (the ids
/// accepted, in their order, masked) is written to `masked_path` (sealed with `sealing`
/// where given) and returned as the [`Masked`] copy (`lines`: messages masking changed),
/// and the refused ones as [`Accepted::refused`], for the caller to quarantine one by one.
///
/// The object must be at most [`MAX_BATCH_BYTES`]; the content type of an accepted batch is [`BATCH_CONTENT_TYPE`].
/// The object is refused when every message is refused (the first refusal, naming the
/// message: `message <id>: <detail>`) or when the batch does not parse
/// (`message_malformed`, naming the line).
///
/// # Errors
/// Reading the batch or writing the masked copy failed.
pub fn inspect_batch(
    policy: &Policy,
    content: Stored,
    masked_path: &Path,
    sealing: Option<&Sealing<'_>>,
    suite: Suite,
) -> Result<Outcome, InspectError> {
    let mut bytes = Vec::new();
    let mut file = content;
    (&mut file)
        .take(MAX_BATCH_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_BATCH_BYTES {
        return Ok(Err(Refusal::new(
            Reason::SizeLimit,
            format!("a batch object larger than {MAX_BATCH_BYTES} bytes"),
        )));
    }
    let outcome = judge_batch(policy, &bytes, suite);
    let Judged {
        kept: checked,
        changed,
        refused,
    } = match outcome {
        Err(r) => return Ok(Err(r)),
        Ok(c) => c,
    };
    if checked.is_empty() {
        // nothing of the batch crosses: the object is refused, as its first message was
        return Ok(Err(refused.into_iter().next().map_or_else(
            || Refusal::new(Reason::MessageMalformed, "batch: no message"),
            |r| {
                Refusal::new(
                    r.refusal.reason,
                    cap(
                        &format!("message {}: {}", r.id, r.refusal.detail),
                        MAX_DETAIL + 50,
                    ),
                )
            },
        )));
    }
    if changed == 0 && refused.is_empty() {
        return Ok(Ok(Accepted {
            content_type: BATCH_CONTENT_TYPE.into(),
            masked: None,
            refused,
        }));
    }
    let mut out = Vec::with_capacity(bytes.len());
    for (id, body) in &checked {
        if let Err(e) = message::encode_line(&mut out, *id, body) {
            return Ok(Err(Refusal::new(
                Reason::MessageMalformed,
                format!("message {id}: {e}"),
            )));
        }
    }
    let mut f = super::MaskedOut::create(masked_path, sealing, suite)?;
    f.write_all(&out)?;
    let digest = f.finish()?;
    Ok(Ok(Accepted {
        content_type: BATCH_CONTENT_TYPE.into(),
        masked: Some(Masked {
            path: masked_path.to_path_buf(),
            lines: changed,
            left_out: refused.len() as u64,
            digest,
        }),
        refused,
    }))
}

/// A batch's messages judged: those that cross and how many masking changed, and those
/// refused.
struct Judged {
    /// The ids and bodies that cross (masked), in the batch's order.
    kept: Vec<(message::MessageId, String)>,
    /// How many of them masking changed.
    changed: u64,
    /// The messages refused, in the batch's order.
    refused: Vec<RefusedMessage>,
}

/// Every message of a batch checked, each on its own; or the refusal of a batch that does
/// not parse.
fn judge_batch(policy: &Policy, bytes: &[u8], suite: Suite) -> Result<Judged, Refusal> {
    let batch = message::parse_batch(bytes)
        .map_err(|e| Refusal::new(Reason::MessageMalformed, format!("batch: {e}")))?;
    let mut judged = Judged {
        kept: Vec::with_capacity(batch.len()),
        changed: 0,
        refused: Vec::new(),
    };
    for m in batch {
        match check_message(policy, &m.body, suite) {
            Ok(checked) => {
                if !checked.masked.is_empty() {
                    judged.changed += 1;
                }
                judged.kept.push((m.id, checked.body));
            }
            Err(refusal) => judged.refused.push(RefusedMessage {
                id: m.id,
                body: m.body,
                refusal,
            }),
        }
    }
    Ok(judged)
}

/// Validates `value` against `schema`: the first error as a `schema_violation` naming the
/// instance path and what the schema says. Values are left out of the text and personal
/// data in what remains (property names) is masked: a detail goes to the audit log.
fn schema_check(
    policy: &Policy,
    schema: &jsonschema::Validator,
    value: &Value,
    when: &str,
) -> Result<(), Refusal> {
    match schema.validate(value) {
        Ok(()) => Ok(()),
        Err(e) => {
            let at = place(e.instance_path().as_str());
            let detail = format!("{when}{at}: {}", e.masked());
            let detail = policy
                .pii_detector()
                .and_then(|p| p.mask(&detail))
                .unwrap_or(detail);
            Err(Refusal::new(
                Reason::SchemaViolation,
                cap(&detail, MAX_SCHEMA_DETAIL),
            ))
        }
    }
}

/// The depth-first walk over a message's strings and keys.
struct Walk<'p> {
    policy: &'p Policy,
    mask: bool,
    masked: Vec<String>,
}

impl Walk<'_> {
    /// Checks `v` at JSON Pointer `at` (grown and restored while walking below it).
    fn value(&mut self, v: &mut Value, at: &mut String) -> Result<(), Refusal> {
        match v {
            Value::String(s) => {
                let found = check_text(self.policy, self.mask, s).map_err(|r| {
                    Refusal::new(
                        r.reason,
                        cap(&format!("{}: {}", place(at), r.detail), MAX_DETAIL),
                    )
                })?;
                if let Some(m) = found.filter(|m| m.as_str() != s.as_str()) {
                    *s = m;
                    self.masked.push(at.clone());
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = at.len();
                    let _ = write!(at, "/{i}");
                    self.value(item, at)?;
                    at.truncate(len);
                }
            }
            Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    self.key(key, at)?;
                    let len = at.len();
                    push_token(at, key);
                    self.value(item, at)?;
                    at.truncate(len);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
        Ok(())
    }

    /// Checks an object key of the object at `parent`. A key is a name, not data: it is
    /// never masked (two masked keys could become one), so personal data in it refuses.
    /// The detail names the object, not the key (the key may be what is refused).
    fn key(&self, key: &str, parent: &str) -> Result<(), Refusal> {
        let refuse = |detail: String| {
            cap(
                &format!("{}: an object key: {detail}", place(parent)),
                MAX_DETAIL,
            )
        };
        match check_text(self.policy, self.mask, key) {
            Err(r) => Err(Refusal::new(r.reason, refuse(r.detail))),
            Ok(None) => Ok(()),
            Ok(Some(_)) => {
                let kind = self
                    .policy
                    .pii_detector()
                    .and_then(|p| p.find(key).first().map(|m| m.kind.as_str()))
                    .unwrap_or("personal data");
                Err(Refusal::new(
                    Reason::PersonalData,
                    refuse(format!("{kind} found; a key cannot be masked")),
                ))
            }
        }
    }
}

/// Appends `/token` to a JSON Pointer, escaped as RFC 6901 says (`~` as `~0`, `/` as `~1`).
fn push_token(at: &mut String, token: &str) {
    at.push('/');
    for c in token.chars() {
        match c {
            '~' => at.push_str("~0"),
            '/' => at.push_str("~1"),
            c => at.push(c),
        }
    }
}

/// A JSON Pointer as shown in a detail: the whole document's (empty) as `(root)`.
fn place(at: &str) -> &str {
    if at.is_empty() { "(root)" } else { at }
}

/// `text` cut to at most `max` characters (an ellipsis marks a cut).
fn cap(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((i, _)) if text.chars().count() > max => format!("{}…", &text[..i]),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::{MessageId, encode_line, parse_batch};

    const SCHEMA: &str = r#"{
      "$schema": "https://json-schema.org/draft/2020-12/schema",
      "type": "object",
      "required": ["type", "case", "text"],
      "properties": {
        "type": {"enum": ["status", "service", "hearing", "judgment"]},
        "case": {"type": "string", "maxLength": 64},
        "text": {"type": "string", "maxLength": 4000},
        "party": {
          "type": "object",
          "properties": {
            "name": {"type": "string"},
            "phone": {"type": "string", "maxLength": 20}
          },
          "additionalProperties": false
        },
        "tags": {"type": "array", "items": {"type": "string"}},
        "extra": {"type": "object"},
        "digits": {"type": "string", "pattern": "^[0-9]+$"}
      },
      "additionalProperties": false
    }"#;

    /// A messages policy with `action` for personal data, every other content rule on.
    fn policy_with(action: &str, max: u64) -> Policy {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("n.schema.json"), SCHEMA).unwrap();
        let text = format!(
            "[messages]\nschema = \"n.schema.json\"\nmax_message_bytes = {max}\n\
             [text]\nkeywords = [\"内部资料\"]\n\
             [markings]\nrefuse = true\nallow_phrases = [\"商业秘密\"]\n\
             [personal_data]\ndetect = [\"resident_id\", \"mobile\", \"bank_card\"]\naction = \"{action}\"\n"
        );
        Policy::parse(&dir.path().join("n.toml"), &text).unwrap()
    }

    fn masking() -> Policy {
        policy_with("mask", 65536)
    }

    fn refused(policy: &Policy, body: &str) -> Refusal {
        check_message(policy, body, Suite::Default).unwrap_err()
    }

    #[test]
    fn a_member_named_twice_is_refused_however_the_message_came_and_however_it_hides() {
        let p = masking();
        // as a NATS message reaches the check, without the posted bodies' reader
        let r = refused(
            &p,
            r#"{"type":"status","case":"c","text":"x","type":"revoked"}"#,
        );
        assert_eq!(r.reason, Reason::MessageMalformed);
        assert!(
            r.detail.contains(r#"the member "type" is named twice"#),
            "{}",
            r.detail
        );
        // serde_json's raw-value form would parse the string and keep its last member:
        // read as JSON, it is an object with one member, which the schema then refuses
        let hidden = r#"{"$serde_json::private::RawValue":"{\"type\":\"status\",\"case\":\"c\",\"text\":\"x\",\"text\":\"y\"}"}"#;
        let r = refused(&p, hidden);
        assert_eq!(r.reason, Reason::SchemaViolation, "{}", r.detail);
        // a long name is cut in the detail
        let long = format!(r#"{{"{0}":1,"{0}":2}}"#, "名".repeat(5000));
        let r = refused(&p, &long);
        assert_eq!(r.reason, Reason::MessageMalformed);
        assert!(r.detail.chars().count() < 300, "{}", r.detail);
    }

    #[test]
    fn the_schema_passes_and_fails_naming_the_pointer_not_the_value() {
        let p = masking();
        let ok = check_message(
            &p,
            r#"{"type":"status","case":"(2026)吉01民初123号","text":"已立案"}"#,
            Suite::Default,
        )
        .unwrap();
        assert!(ok.masked.is_empty());
        assert_eq!(ok.digest, ok.original_digest);
        let r = refused(&p, r#"{"type":"status","text":"x"}"#);
        assert_eq!(r.reason, Reason::SchemaViolation);
        assert!(
            r.detail.starts_with("(root): ") && r.detail.contains("case"),
            "{}",
            r.detail
        );
        let r = refused(
            &p,
            r#"{"type":"status","case":"c","text":"x","party":{"phone":13800138000}}"#,
        );
        assert_eq!(r.reason, Reason::SchemaViolation);
        assert!(r.detail.starts_with("/party/phone: "), "{}", r.detail);
        assert!(!r.detail.contains("13800138000"), "{}", r.detail);
        let r = refused(&p, r#"{"type":"verdict","case":"c","text":"x"}"#);
        assert!(r.detail.starts_with("/type: "), "{}", r.detail);
        let long = format!(
            r#"{{"type":"status","case":"c","text":"x","extra":{{"{}":1}},"bogus":1}}"#,
            "k".repeat(2000)
        );
        let r = refused(&p, &long);
        assert_eq!(r.reason, Reason::SchemaViolation);
        assert!(
            r.detail.chars().count() <= MAX_SCHEMA_DETAIL,
            "{}",
            r.detail
        );
    }

    #[test]
    fn size_and_syntax_come_first() {
        let p = policy_with("mask", 40);
        let r = refused(&p, &format!(r#"{{"text":"{}"}}"#, "a".repeat(40)));
        assert_eq!(r.reason, Reason::SizeLimit);
        assert!(r.detail.contains("the policy allows 40"), "{}", r.detail);
        let r = refused(&p, "{\"type\":");
        assert_eq!(r.reason, Reason::MessageMalformed);
    }

    #[test]
    fn keywords_and_markings_are_found_in_nested_fields_and_arrays() {
        let p = masking();
        let r = refused(
            &p,
            r#"{"type":"status","case":"c","text":"x","party":{"name":"内部资料 张伟"}}"#,
        );
        assert_eq!(r.reason, Reason::KeywordMatch);
        assert!(
            r.detail.starts_with("/party/name: matches rule"),
            "{}",
            r.detail
        );
        let r = refused(
            &p,
            r#"{"type":"status","case":"c","text":"x","tags":["a","★机密★"]}"#,
        );
        assert_eq!(r.reason, Reason::ClassificationMarking);
        assert!(
            r.detail.starts_with("/tags/1: classification marking"),
            "{}",
            r.detail
        );
        // written with an escape, the marking is still read
        let r = refused(&p, r#"{"type":"status","case":"c","text":"\u7edd\u5bc6"}"#);
        assert_eq!(r.reason, Reason::ClassificationMarking);
        // split by control characters (dropped, or a gap where they are whitespace, as
        // NEL is), it is read as one
        for split in [
            r"机\u0000密",
            r"機\u0001密",
            r"机\u001f密",
            r"机\u007f密",
            r"秘\u0085密",
        ] {
            let r = refused(
                &p,
                &format!(r#"{{"type":"status","case":"c","text":"{split}"}}"#),
            );
            assert_eq!(r.reason, Reason::ClassificationMarking, "{split}");
        }
        // a mobile number split by them cannot be masked in place: refused
        let r = refused(
            &p,
            r#"{"type":"status","case":"c","text":"138\u00001234\u00005678"}"#,
        );
        assert_eq!(r.reason, Reason::PersonalData);
        // the allowed phrase crosses
        check_message(
            &p,
            r#"{"type":"status","case":"c","text":"涉及商业秘密的证据"}"#,
            Suite::Default,
        )
        .unwrap();
    }

    #[test]
    fn object_keys_are_checked_and_never_masked() {
        let p = masking();
        let r = refused(
            &p,
            r#"{"type":"status","case":"c","text":"x","extra":{"秘密":1}}"#,
        );
        assert_eq!(r.reason, Reason::ClassificationMarking);
        assert!(
            r.detail.starts_with("/extra: an object key: "),
            "{}",
            r.detail
        );
        let r = refused(
            &p,
            r#"{"type":"status","case":"c","text":"x","extra":{"13800138000":"张伟"}}"#,
        );
        assert_eq!(r.reason, Reason::PersonalData);
        assert!(
            r.detail.contains("mobile found; a key cannot be masked"),
            "{}",
            r.detail
        );
        assert!(!r.detail.contains("13800138000"), "{}", r.detail);
        // pointers are escaped as RFC 6901 says
        let r = refused(
            &p,
            r#"{"type":"status","case":"c","text":"x","extra":{"a/b~c":"内部资料"}}"#,
        );
        assert!(r.detail.starts_with("/extra/a~1b~0c: "), "{}", r.detail);
    }

    #[test]
    fn personal_data_is_masked_field_by_field_and_the_rest_is_untouched() {
        let p = masking();
        let body = r#"{"case":"(2026)吉01民初123号","extra":{"deep":[{"id":"11010519491231002X"}]},"party":{"name":"张伟","phone":"13800138000"},"tags":["卡号 6222021234567894","无"],"text":"请于 2026-03-01 到庭","type":"hearing"}"#;
        let c = check_message(&p, body, Suite::Default).unwrap();
        assert_eq!(
            c.masked,
            vec!["/extra/deep/0/id", "/party/phone", "/tags/0"],
            "{}",
            c.body
        );
        let expected = body
            .replace("11010519491231002X", "110105********002X")
            .replace("13800138000", "138****8000")
            .replace("6222021234567894", "622202******7894");
        assert_eq!(c.body, expected);
        assert_eq!(c.original_digest, digest(Suite::Default, body.as_bytes()));
        assert_eq!(c.digest, digest(Suite::Default, expected.as_bytes()));
        assert_ne!(c.digest, c.original_digest);
        // under `gm` the same check hashes with SM3
        let gm = check_message(&p, body, Suite::Gm).unwrap();
        assert_eq!(gm.body, c.body);
        assert_eq!(gm.original_digest, digest(Suite::Gm, body.as_bytes()));
        assert_eq!(gm.digest, digest(Suite::Gm, expected.as_bytes()));
        // masking is idempotent: what crosses checks again unchanged
        let again = check_message(&p, &c.body, Suite::Default).unwrap();
        assert_eq!(again.body, c.body);
        assert!(again.masked.is_empty());
    }

    #[test]
    fn personal_data_refused_when_the_policy_refuses_it() {
        let p = policy_with("refuse", 65536);
        let r = refused(
            &p,
            r#"{"type":"status","case":"c","text":"x","party":{"phone":"13800138000"}}"#,
        );
        assert_eq!(r.reason, Reason::PersonalData);
        assert_eq!(r.detail, "/party/phone: mobile found");
        let r = refused(
            &p,
            r#"{"type":"status","case":"c","text":"x","tags":["6222021234567894"]}"#,
        );
        assert_eq!(r.detail, "/tags/0: bank_card found");
        let r = refused(
            &p,
            r#"{"type":"status","case":"c","text":"身份证 11010519491231002X"}"#,
        );
        assert_eq!(r.detail, "/text: resident_id found");
    }

    #[test]
    fn a_mask_that_breaks_the_schema_refuses() {
        let p = masking();
        let r = refused(
            &p,
            r#"{"type":"status","case":"c","text":"x","digits":"13800138000"}"#,
        );
        assert_eq!(r.reason, Reason::SchemaViolation);
        assert!(
            r.detail.starts_with("after masking, /digits: "),
            "{}",
            r.detail
        );
    }

    #[test]
    fn a_files_policy_refuses_every_message() {
        let files = Policy::parse(
            Path::new("p.toml"),
            "[names]\nmax_length = 200\nextensions = [\"txt\"]\n[size]\nmax_bytes = 1000\n[types]\nallow = [\"text\"]\n",
        )
        .unwrap();
        assert_eq!(refused(&files, "{}").reason, Reason::TypeRefused);
    }

    fn batch(bodies: &[&str]) -> (Vec<u8>, Vec<MessageId>) {
        let mut out = Vec::new();
        let mut ids = Vec::new();
        for (i, b) in bodies.iter().enumerate() {
            let id = MessageId::derive("notices", &format!("k#{i}"));
            encode_line(&mut out, id, b).unwrap();
            ids.push(id);
        }
        (out, ids)
    }

    #[test]
    fn a_batch_is_accepted_refused_or_masked_with_the_same_ids() {
        let p = masking();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.ndjson");
        let masked_path = dir.path().join("b.ndjson.masked");
        let clean = r#"{"case":"c","text":"已立案","type":"status"}"#;
        let phone = r#"{"case":"c","party":{"phone":"13800138000"},"text":"x","type":"service"}"#;

        let (bytes, _) = batch(&[clean, clean]);
        std::fs::write(&path, &bytes).unwrap();
        let a = inspect_batch(&p, plain(&path), &masked_path, None, Suite::Default)
            .unwrap()
            .unwrap();
        assert_eq!(a.content_type, BATCH_CONTENT_TYPE);
        assert_eq!(a.masked, None);
        assert!(!masked_path.exists());

        let (bytes, ids) = batch(&[clean, phone, clean]);
        std::fs::write(&path, &bytes).unwrap();
        let a = inspect_batch(&p, plain(&path), &masked_path, None, Suite::Default)
            .unwrap()
            .unwrap();
        let m = a.masked.unwrap();
        assert_eq!(m.lines, 1);
        let copy = parse_batch(&std::fs::read(&m.path).unwrap()).unwrap();
        assert_eq!(copy.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
        assert_eq!(copy[0].body, clean);
        assert_eq!(copy[1].body, phone.replace("13800138000", "138****8000"));
        assert_eq!(copy[2].body, clean);
        // the masked copy is accepted unchanged (the receiving node's re-check)
        std::fs::rename(&m.path, &path).unwrap();
        let again = inspect_batch(&p, plain(&path), &masked_path, None, Suite::Default)
            .unwrap()
            .unwrap();
        assert_eq!(again.masked, None);

        // one message refused among others: it is returned to be quarantined on its own,
        // and the copy that crosses holds the others, masked, in their order
        let secret = r#"{"case":"c","text":"绝密","type":"status"}"#;
        let (bytes, ids) = batch(&[clean, secret, phone]);
        std::fs::write(&path, &bytes).unwrap();
        let a = inspect_batch(&p, plain(&path), &masked_path, None, Suite::Default)
            .unwrap()
            .unwrap();
        assert_eq!(a.refused.len(), 1);
        assert_eq!(a.refused[0].id, ids[1]);
        assert_eq!(a.refused[0].body, secret);
        assert_eq!(a.refused[0].refusal.reason, Reason::ClassificationMarking);
        assert!(
            a.refused[0].refusal.detail.starts_with("/text: "),
            "{}",
            a.refused[0].refusal.detail
        );
        let m = a.masked.unwrap();
        assert_eq!((m.lines, m.left_out), (1, 1));
        let copy = parse_batch(&std::fs::read(&m.path).unwrap()).unwrap();
        assert_eq!(
            copy.iter().map(|m| m.id).collect::<Vec<_>>(),
            [ids[0], ids[2]]
        );
        assert_eq!(copy[1].body, phone.replace("13800138000", "138****8000"));
        // left out without masking: a copy all the same, nothing masked in it
        let (bytes, ids) = batch(&[clean, secret]);
        std::fs::write(&path, &bytes).unwrap();
        let a = inspect_batch(&p, plain(&path), &masked_path, None, Suite::Default)
            .unwrap()
            .unwrap();
        let m = a.masked.unwrap();
        assert_eq!((m.lines, m.left_out), (0, 1));
        let copy = parse_batch(&std::fs::read(&m.path).unwrap()).unwrap();
        assert_eq!(copy.iter().map(|m| m.id).collect::<Vec<_>>(), [ids[0]]);

        // every message refused: the object is refused, naming the first
        let (bytes, ids) = batch(&[secret, secret]);
        std::fs::write(&path, &bytes).unwrap();
        let r = inspect_batch(&p, plain(&path), &masked_path, None, Suite::Default)
            .unwrap()
            .unwrap_err();
        assert_eq!(r.reason, Reason::ClassificationMarking);
        assert!(
            r.detail
                .starts_with(&format!("message {}: /text: ", ids[0])),
            "{}",
            r.detail
        );

        std::fs::write(&path, b"{\"id\":\"nope\",\"body\":1}\n").unwrap();
        let r = inspect_batch(&p, plain(&path), &masked_path, None, Suite::Default)
            .unwrap()
            .unwrap_err();
        assert_eq!(r.reason, Reason::MessageMalformed);
        assert!(r.detail.starts_with("batch: line 1"), "{}", r.detail);
    }

    fn plain(path: &Path) -> Stored {
        Stored::Plain(std::fs::File::open(path).unwrap())
    }

    #[test]
    fn a_sealed_batch_is_read_through_its_keys_and_masked_into_a_sealed_copy() {
        use crate::keys::at_rest::{DataKeys, OpenReader, SealWriter};
        let p = masking();
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("data.key");
        DataKeys::add_key(&key_file, crate::keys::suite::Suite::Default).unwrap();
        let keys = DataKeys::load(&key_file).unwrap();
        let sealing = Sealing {
            keys: &keys,
            context: b"spool/notices/1",
        };
        let path = dir.path().join("content");
        let phone = r#"{"case":"c","party":{"phone":"13800138000"},"text":"x","type":"service"}"#;
        let (bytes, _) = batch(&[phone]);
        let mut w = SealWriter::new(&keys, Vec::new(), sealing.context).unwrap();
        w.write_all(&bytes).unwrap();
        std::fs::write(&path, w.finish().unwrap()).unwrap();
        let a = crate::inspect::inspect_stored(
            &p,
            "1.ndjson",
            &path,
            dir.path(),
            Some(&sealing),
            Suite::Default,
        )
        .unwrap()
        .unwrap();
        let m = a.masked.unwrap();
        let stored = std::fs::read(&m.path).unwrap();
        assert!(
            !stored.windows(4).any(|w| w == b"8000"),
            "no plaintext rests"
        );
        let mut copy = Vec::new();
        OpenReader::new(&keys, &stored[..], sealing.context)
            .unwrap()
            .read_to_end(&mut copy)
            .unwrap();
        let copy = parse_batch(&copy).unwrap();
        assert_eq!(copy[0].body, phone.replace("13800138000", "138****8000"));
        // read as plain bytes (a receiving node never seals), a sealed batch is no batch
        let e = crate::inspect::inspect_file(&p, "1.ndjson", &path, dir.path(), Suite::Default);
        assert!(e.is_ok_and(|v| v.is_err()), "refused as malformed");
    }

    #[test]
    fn inspect_file_dispatches_a_messages_policy_to_the_batch_check() {
        let p = masking();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0001.ndjson");
        let phone = r#"{"case":"c","party":{"phone":"13800138000"},"text":"x","type":"service"}"#;
        let (bytes, _) = batch(&[phone]);
        std::fs::write(&path, &bytes).unwrap();
        let a = crate::inspect::inspect_file(&p, "0001.ndjson", &path, dir.path(), Suite::Default)
            .unwrap()
            .unwrap();
        let m = a.masked.unwrap();
        assert_eq!(m.path, dir.path().join("0001.ndjson.masked"));
        assert!(m.path.exists());
        // one refused beside it: the copy leaves it out
        let secret = r#"{"case":"c","text":"内部资料","type":"status"}"#;
        let (bytes, _) = batch(&[phone, secret]);
        std::fs::write(&path, &bytes).unwrap();
        let a = crate::inspect::inspect_file(&p, "0001.ndjson", &path, dir.path(), Suite::Default)
            .unwrap()
            .unwrap();
        assert_eq!(a.refused.len(), 1);
        assert_eq!(a.masked.unwrap().left_out, 1);
        // every message refused: the object is, and no copy is left behind
        std::fs::remove_file(dir.path().join("0001.ndjson.masked")).unwrap();
        let (bytes, _) = batch(&[secret]);
        std::fs::write(&path, &bytes).unwrap();
        let r = crate::inspect::inspect_file(&p, "0001.ndjson", &path, dir.path(), Suite::Default)
            .unwrap()
            .unwrap_err();
        assert_eq!(r.reason, Reason::KeywordMatch);
        assert!(!dir.path().join("0001.ndjson.masked").exists());
    }
}
