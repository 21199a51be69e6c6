//! Messages, sans I/O: the message id, the cursor of the receiving node's message log, and
//! the batch form in which many messages cross as one object.
//!
//! ```text
//!  batch object (content type application/x-ndjson), one line per message, in order:
//!    {"id":"<32 hex digits>","body":<the message, compact JSON>}\n
//!  ids: random (a message posted without Idempotency-Key), or derived from the channel and
//!       a key (SHA-256, see MessageId::derive) so that a retry, a NATS redelivery or an
//!       outbox file taken again after a crash carries the same id, and the receiving node
//!       drops the copy
//!  cursor: "<log sequence>.<index>" — the position of one message in the receiving
//!       node's log (batch number in the log, message index in that batch, from 0)
//! ```
//!
//! Every length read is capped before anything is allocated: [`parse_batch`] reads at most
//! [`MAX_BATCH_MESSAGES`] lines of at most [`MAX_LINE_BYTES`] each.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Most messages one batch object may hold.
pub const MAX_BATCH_MESSAGES: usize = 10_000;
/// Largest batch object, in bytes: the largest `batch_max_bytes` of a channel (64 MiB)
/// and room for each message's id line.
pub const MAX_BATCH_BYTES: u64 = 64 * 1024 * 1024 + MAX_BATCH_MESSAGES as u64 * 128;
/// Longest line of a batch: a 1 MiB body (the policy cap) and its id, with room.
pub const MAX_LINE_BYTES: usize = 1024 * 1024 + 128;

/// A message id: 128 bits, shown as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; 16]);

impl MessageId {
    /// A fresh random id from the system's generator.
    ///
    /// # Errors
    /// [`crate::core::id::RandomError`] when the generator fails.
    pub fn random() -> Result<MessageId, crate::core::id::RandomError> {
        crate::core::id::ObjectId::random().map(|o| MessageId(o.0))
    }

    /// The id of the message posted on `channel` under `key` (an `Idempotency-Key`, with
    /// the message's index within its request; a JetStream stream sequence; an outbox
    /// file's identity): the first 128 bits of SHA-256 over a domain-separated encoding.
    /// The same channel and key give the same id, on any node, at any time.
    pub fn derive(channel: &str, key: &str) -> MessageId {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"isogate message id v1\0");
        ctx.update(&(channel.len() as u64).to_be_bytes());
        ctx.update(channel.as_bytes());
        ctx.update(&(key.len() as u64).to_be_bytes());
        ctx.update(key.as_bytes());
        let d = ctx.finish();
        let mut b = [0u8; 16];
        b.copy_from_slice(&d.as_ref()[..16]);
        MessageId(b)
    }

    /// Parses exactly 32 lowercase or uppercase hex digits; `None` for anything else.
    pub fn parse(s: &str) -> Option<MessageId> {
        let mut b = [0u8; 16];
        hex::decode_to_slice(s, &mut b).ok()?;
        Some(MessageId(b))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

impl Serialize for MessageId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<MessageId, D::Error> {
        let s = <&str>::deserialize(d)?;
        MessageId::parse(s).ok_or_else(|| serde::de::Error::custom("not a 32-hex-digit id"))
    }
}

/// A position in the receiving node's message log: `batch` is the log's sequence number
/// of a landed batch (from 1), `index` the message's place in it (from 0). Written
/// `"<batch>.<index>"`; cursors order as positions do.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct Cursor {
    /// The log's batch sequence number, from 1.
    pub batch: u64,
    /// The message's index in that batch, from 0.
    pub index: u32,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.batch, self.index)
    }
}

/// A cursor that is not `"<batch>.<index>"` in decimal.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("not a cursor (expected BATCH.INDEX, for example 12.0): {0:?}")]
pub struct BadCursor(pub String);

impl FromStr for Cursor {
    type Err = BadCursor;
    fn from_str(s: &str) -> Result<Cursor, BadCursor> {
        let bad = || BadCursor(s.chars().take(40).collect());
        let (b, i) = s.split_once('.').ok_or_else(bad)?;
        let digits =
            |t: &str| !t.is_empty() && t.len() <= 20 && t.bytes().all(|c| c.is_ascii_digit());
        if !digits(b) || !digits(i) {
            return Err(bad());
        }
        Ok(Cursor {
            batch: b.parse().map_err(|_| bad())?,
            index: i.parse().map_err(|_| bad())?,
        })
    }
}

/// One message of a batch: its id and its body (compact JSON, as it crosses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMessage {
    /// The message id.
    pub id: MessageId,
    /// The body, one JSON value, compact (no newline inside).
    pub body: String,
}

/// Why bytes are not a batch.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// More than [`MAX_BATCH_MESSAGES`] lines.
    #[error("more than {MAX_BATCH_MESSAGES} messages in one batch")]
    TooMany,
    /// A line longer than [`MAX_LINE_BYTES`] (1-based line number).
    #[error("line {0}: longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong(usize),
    /// A line that is not `{"id":…,"body":…}` (1-based line number, what is wrong).
    #[error("line {0}: {1}")]
    Line(usize, String),
    /// No message at all, or bytes after the last newline.
    #[error("{0}")]
    Shape(&'static str),
}

#[derive(Serialize)]
struct LineOut<'a> {
    id: MessageId,
    body: &'a RawValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineIn<'a> {
    id: MessageId,
    #[serde(borrow)]
    body: &'a RawValue,
}

/// Appends one message's batch line (with its newline) to `out`.
///
/// # Errors
/// `body` is not one JSON value (the caller passes what it parsed and re-serialised).
pub fn encode_line(out: &mut Vec<u8>, id: MessageId, body: &str) -> Result<(), BatchError> {
    let raw: &RawValue = serde_json::from_str(body)
        .map_err(|e| BatchError::Line(0, format!("body is not one JSON value: {e}")))?;
    serde_json::to_writer(&mut *out, &LineOut { id, body: raw })
        .map_err(|e| BatchError::Line(0, e.to_string()))?;
    out.push(b'\n');
    Ok(())
}

/// Reads a whole batch: one `{"id":…,"body":…}` line per message, each ending with `\n`,
/// at least one message, at most [`MAX_BATCH_MESSAGES`]. Each body must be in the compact
/// form [`encode_line`] writes from a parsed body (no whitespace outside strings, object
/// keys sorted and each once, strings escaped as serde_json writes them): the bytes checked
/// are the bytes delivered. The same id twice in one batch is refused.
///
/// # Errors
/// [`BatchError`] for anything else; nothing is allocated beyond the caps.
pub fn parse_batch(bytes: &[u8]) -> Result<Vec<BatchMessage>, BatchError> {
    batch_lines(bytes, true)
}

/// Reads a batch this gateway wrote itself (a receiving node's message log, whose bodies
/// [`encode_line`] wrote compact): the same checks as [`parse_batch`], but each body is
/// kept as written, not parsed and written again.
///
/// # Errors
/// As [`parse_batch`].
pub fn read_written_batch(bytes: &[u8]) -> Result<Vec<BatchMessage>, BatchError> {
    batch_lines(bytes, false)
}

/// [`parse_batch`] and [`read_written_batch`]: with `compact`, each body is parsed and
/// written again without whitespace.
fn batch_lines(bytes: &[u8], compact: bool) -> Result<Vec<BatchMessage>, BatchError> {
    if bytes.is_empty() {
        return Err(BatchError::Shape("an empty batch"));
    }
    if bytes.last() != Some(&b'\n') {
        return Err(BatchError::Shape("the batch does not end with a newline"));
    }
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (n, line) in bytes[..bytes.len() - 1].split(|&b| b == b'\n').enumerate() {
        let no = n + 1;
        if out.len() >= MAX_BATCH_MESSAGES {
            return Err(BatchError::TooMany);
        }
        if line.len() > MAX_LINE_BYTES {
            return Err(BatchError::LineTooLong(no));
        }
        let parsed: LineIn<'_> =
            serde_json::from_slice(line).map_err(|e| BatchError::Line(no, e.to_string()))?;
        if !seen.insert(parsed.id) {
            return Err(BatchError::Line(no, format!("id {} twice", parsed.id)));
        }
        let body = if compact {
            let value: serde_json::Value = serde_json::from_str(parsed.body.get())
                .map_err(|e| BatchError::Line(no, e.to_string()))?;
            let body =
                serde_json::to_string(&value).map_err(|e| BatchError::Line(no, e.to_string()))?;
            // what was read is what is kept: a body written otherwise (whitespace, keys out
            // of order, the same key twice, escapes) could read differently elsewhere
            if body != parsed.body.get() {
                return Err(BatchError::Line(
                    no,
                    "the body is not in the compact form the gateway writes (no whitespace, keys sorted, each once)".into(),
                ));
            }
            body
        } else {
            parsed.body.get().to_string()
        };
        out.push(BatchMessage {
            id: parsed.id,
            body,
        });
    }
    Ok(out)
}

/// Parses one JSON text (RFC 8259) as it is posted or dropped, refusing what readers
/// could take differently: an object with the same member name twice (§4 leaves which one
/// counts to the reader: serde_json keeps the last, many others the first, and the
/// gateway's own copy would drop one unseen) and a leading byte order mark (§8.1: a JSON
/// text must not begin with one; most parsers refuse it).
///
/// # Errors
/// A sentence for the author: where the text stops being JSON (line and column), which
/// member is named twice, that a byte order mark starts it, that it is not UTF-8 (the
/// first byte that is not, and where), or that it nests deeper than [`MAX_DEPTH`].
pub fn parse_json(text: &[u8]) -> Result<serde_json::Value, String> {
    use serde::de::DeserializeSeed;
    if text.starts_with(b"\xEF\xBB\xBF") {
        return Err(
            "not JSON: the text starts with a byte order mark (EF BB BF), which JSON text must \
             not (RFC 8259 §8.1); save it as UTF-8 without one"
                .into(),
        );
    }
    if let Err(e) = std::str::from_utf8(text) {
        let at = e.valid_up_to();
        let line = 1 + text[..at].iter().filter(|&&b| b == b'\n').count();
        return Err(format!(
            "not JSON: the text is not UTF-8, which JSON exchanged between systems must be \
             (RFC 8259 §8.1): byte 0x{:02X} at offset {at} (line {line}); save it as UTF-8 \
             (text in GBK or GB18030 must be converted)",
            text.get(at).copied().unwrap_or(0)
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(text);
    let parsed = UniqueMembers
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    parsed.map_err(|e| match e.classify() {
        // raised by UniqueMembers: already a sentence
        serde_json::error::Category::Data => e.to_string(),
        // serde_json's limit, which RFC 8259 §9 lets a reader set: valid JSON, too deep
        _ if e.to_string().starts_with("recursion limit exceeded") => format!(
            "nested deeper than {MAX_DEPTH} arrays and objects, the gateway's limit (RFC 8259 §9 lets a reader set one), at line {} column {}",
            e.line(),
            e.column()
        ),
        _ => format!("not JSON: {e}"),
    })
}

/// How deep arrays and objects may nest in a message: serde_json's reading limit (a
/// stack bound; RFC 8259 §9 lets a reader set one). A message nested deeper is refused
/// `message_malformed`, saying so.
pub const MAX_DEPTH: usize = 127;

/// Reads a JSON value as [`serde_json::Value`] does, refusing an object that names a
/// member twice (see [`parse_json`]). Nesting stays bounded by serde_json's own limit.
struct UniqueMembers;

impl<'de> serde::de::DeserializeSeed<'de> for UniqueMembers {
    type Value = serde_json::Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueMembers {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        // a parsed JSON number is always finite
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(UniqueMembers)? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = serde_json::Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if members.contains_key(&name) {
                // a name may be as long as a message: the first 64 characters say which
                let shown: String = name.chars().take(64).collect();
                let cut = if shown.len() < name.len() { "…" } else { "" };
                return Err(serde::de::Error::custom(format!(
                    "the member {shown:?}{cut} is named twice in one object, and readers \
                     differ on which one counts (RFC 8259 §4): name it once"
                )));
            }
            let value = map.next_value_seed(UniqueMembers)?;
            members.insert(name, value);
        }
        Ok(serde_json::Value::Object(members))
    }
}

/// The messages of a posted body or an outbox file: `json` — exactly one JSON value
/// (`Content-Type: application/json`, a `.json` file); otherwise NDJSON — one JSON value
/// per line, blank lines (and a final line without newline) allowed, at least one value.
/// Each comes back compact; at most `max_messages` values, each at most `max_bytes` long
/// as written (a longer one is `Err((line, SizeLimit))`).
///
/// # Errors
/// `(line, reason, detail)` of the first bad value, 1-based (`1` for a `.json` body).
pub fn parse_posted(
    bytes: &[u8],
    json: bool,
    max_messages: usize,
    max_bytes: u64,
) -> Result<Vec<String>, (usize, crate::core::reason::Reason, String)> {
    use crate::core::reason::Reason;
    let one = |no: usize, text: &[u8]| -> Result<String, (usize, Reason, String)> {
        if text.len() as u64 > max_bytes {
            return Err((
                no,
                Reason::SizeLimit,
                format!("{} bytes, the policy allows {max_bytes}", text.len()),
            ));
        }
        let v = parse_json(text).map_err(|e| (no, Reason::MessageMalformed, e))?;
        serde_json::to_string(&v).map_err(|e| (no, Reason::MessageMalformed, e.to_string()))
    };
    if json {
        return Ok(vec![one(1, bytes)?]);
    }
    let mut out = Vec::new();
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if out.len() >= max_messages {
            return Err((
                n + 1,
                Reason::SizeLimit,
                format!("more than {max_messages} messages in one request"),
            ));
        }
        out.push(one(n + 1, line)?);
    }
    if out.is_empty() {
        return Err((1, Reason::MessageMalformed, "no message".into()));
    }
    Ok(out)
}

/// Whether `name` is a batch object's name: its object id (32 lowercase hex digits) and
/// `.ndjson`, as the sending node's message intake names every batch.
pub fn is_batch_name(name: &str) -> bool {
    name.strip_suffix(".ndjson").is_some_and(|id| {
        id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_round_trip_and_refusals() {
        let a = MessageId::derive("notices", "k#0");
        let b = MessageId::derive("notices", "k#1");
        assert_eq!(a, MessageId::derive("notices", "k#0"));
        assert_ne!(a, MessageId::derive("filings", "k#0"));
        let mut out = Vec::new();
        encode_line(&mut out, a, "{\"x\":1}").unwrap();
        encode_line(&mut out, b, "\"文\"").unwrap();
        let got = parse_batch(&out).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].id, a);
        assert_eq!(got[0].body, "{\"x\":1}");
        assert_eq!(got[1].body, "\"文\"");
        let mut twice = out.clone();
        encode_line(&mut twice, a, "1").unwrap();
        assert!(parse_batch(&twice).is_err());
        assert!(parse_batch(&out[..out.len() - 1]).is_err());
        assert!(parse_batch(b"").is_err());
        assert!(parse_batch(b"{\"id\":\"00\",\"body\":1}\n").is_err());
        let extra = format!("{{\"id\":\"{a}\",\"body\":1,\"x\":2}}\n");
        assert!(parse_batch(extra.as_bytes()).is_err());
    }

    #[test]
    fn a_body_not_in_compact_form_is_refused_from_the_wire_and_kept_as_written_locally() {
        let a = MessageId::derive("notices", "k#0");
        for body in [
            "{\"x\": 1}",
            "{\"b\":1,\"a\":2}",
            "{\"a\":\"safe\",\"a\":\"秘密\"}",
            "\"\\u6587\"",
        ] {
            let mut out = Vec::new();
            encode_line(&mut out, a, body).unwrap();
            let e = parse_batch(&out).unwrap_err();
            assert!(e.to_string().contains("compact form"), "{body}: {e}");
            // the log's own reader takes what this node wrote as it is
            assert_eq!(read_written_batch(&out).unwrap()[0].body, body);
        }
        // a posted body, made compact, reads back from a batch byte for byte: floats too
        // (serde_json's float_roundtrip)
        for body in [
            "0.30000000000000004",
            "2.2250738585072014e-308",
            "1.7976931348623157e308",
            "{\"x\":[1e-7, 5e-324, 123456789012345680000.0, -0.0]}",
        ] {
            let posted = parse_posted(body.as_bytes(), true, 1, 65_536).unwrap();
            let mut out = Vec::new();
            encode_line(&mut out, a, &posted[0]).unwrap();
            assert_eq!(parse_batch(&out).unwrap()[0].body, posted[0], "{body}");
        }
        // the compact form of each reads back unchanged
        let mut out = Vec::new();
        encode_line(&mut out, a, "{\"a\":\"秘密\",\"b\":[1,2.5,null]}").unwrap();
        assert_eq!(
            parse_batch(&out).unwrap()[0].body,
            "{\"a\":\"秘密\",\"b\":[1,2.5,null]}"
        );
    }

    #[test]
    fn batch_names() {
        assert!(is_batch_name(&format!("{}.ndjson", "0a".repeat(16))));
        assert!(!is_batch_name(&format!("{}.ndjson", "0A".repeat(16))));
        assert!(!is_batch_name(&format!("{}.json", "0a".repeat(16))));
        assert!(!is_batch_name("x.ndjson"));
    }

    #[test]
    fn cursors_parse_and_order() {
        let c: Cursor = "12.3".parse().unwrap();
        assert_eq!(
            c,
            Cursor {
                batch: 12,
                index: 3
            }
        );
        assert_eq!(c.to_string(), "12.3");
        assert!("12".parse::<Cursor>().is_err());
        assert!("-1.0".parse::<Cursor>().is_err());
        assert!("1.x".parse::<Cursor>().is_err());
        assert!(Cursor { batch: 2, index: 0 } > Cursor { batch: 1, index: 9 });
    }

    #[test]
    fn posted_bodies() {
        assert_eq!(
            parse_posted(b"{ \"a\" : 1 }", true, 10, 100).unwrap(),
            vec!["{\"a\":1}"]
        );
        let nd = b"{\"a\":1}\n\n{\"a\":2}\r\n{\"a\":3}";
        assert_eq!(parse_posted(nd, false, 10, 100).unwrap().len(), 3);
        let e = parse_posted(b"{\"a\":1}\nnope\n", false, 10, 100).unwrap_err();
        assert_eq!(e.0, 2);
        assert!(parse_posted(b"1\n2\n3\n", false, 2, 100).is_err());
        assert!(parse_posted(b"\"long long\"", true, 2, 4).is_err());
        assert!(parse_posted(b"\n\n", false, 2, 100).is_err());
    }

    #[test]
    fn a_member_named_twice_or_a_byte_order_mark_is_refused_and_says_so() {
        use crate::core::reason::Reason;
        for (text, line, says) in [
            (
                &b"{\"type\":\"status\",\"type\":\"revoked\"}"[..],
                1,
                "the member \"type\" is named twice",
            ),
            // nested, in an array, on the second line of NDJSON
            (
                b"{\"a\":1}\n{\"case\":[{\"no\":1,\"no\":2}]}\n",
                2,
                "the member \"no\" is named twice",
            ),
            // the same name, written with an escape
            (
                b"{\"a\":1,\"\\u0061\":2}",
                1,
                "the member \"a\" is named twice",
            ),
            (
                "\u{feff}{\"a\":1}".as_bytes(),
                1,
                "byte order mark (EF BB BF)",
            ),
            // 开庭 in GBK: not UTF-8, said so with where
            (
                b"{\"a\":\"\xBF\xAA\xCD\xA5\"}",
                1,
                "not UTF-8, which JSON exchanged between systems must be (RFC 8259 §8.1): byte 0xBF at offset 6 (line 1)",
            ),
        ] {
            let json = !text.contains(&b'\n');
            let (no, reason, detail) = parse_posted(text, json, 10, 1000).unwrap_err();
            assert_eq!((no, reason), (line, Reason::MessageMalformed), "{detail}");
            assert!(detail.contains(says), "{detail}");
        }
        // where the error is, as for any other
        let e = parse_json(b"{\"a\":1,\"a\":2}").unwrap_err();
        assert!(e.contains("line 1 column"), "{e}");
        assert!(
            parse_json(b"{\"a\":1")
                .unwrap_err()
                .starts_with("not JSON: ")
        );
        assert!(parse_json(b"{} {}").unwrap_err().starts_with("not JSON: "));
        // as deep as the limit, and one deeper: valid JSON refused for its depth, not as
        // "not JSON"
        let nested = |d: usize| format!("{}{}", "[".repeat(d), "]".repeat(d));
        assert!(parse_json(nested(MAX_DEPTH).as_bytes()).is_ok());
        let e = parse_json(nested(MAX_DEPTH + 1).as_bytes()).unwrap_err();
        assert!(
            e.starts_with("nested deeper than 127 arrays and objects") && e.contains("column 128"),
            "{e}"
        );
        // the same name in different objects, and every kind of value, read as serde_json does
        let text = br#"{"a":{"x":1},"b":{"x":[1,-2,3.5,1.5e300,true,null,"s",{"x":{}}]},"c":18446744073709551615}"#;
        assert_eq!(
            parse_json(text),
            serde_json::from_slice::<serde_json::Value>(text).map_err(|e| e.to_string())
        );
        // nesting stays bounded
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(parse_json(deep.as_bytes()).is_err());
    }
}
