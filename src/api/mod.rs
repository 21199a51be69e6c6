//! The node's message API (`[messages] listen`): HTTP/1.1 on [`crate::ops::http`]
//! (persistent connections), JSON (RFC 8259) in and out. It owns the routes, the request
//! checks and the status codes; the messages themselves are taken by
//! [`crate::sender::messages::Messages`] and read from
//! [`crate::receiver::messages::MessageLog`].
//!
//! ```text
//!  POST /v1/channels/{channel}/messages   a channel this node sends
//!    Content-Type ─► 415 · Content-Length ─► 411 · ≤ batch_max_bytes ─► 413
//!    Idempotency-Key (at most once, 1..=200 visible ASCII) ─► 400 · parse_posted ─► 400 / 413
//!    Messages::post (blocks until durable) ─► 202 {"id"} | {"ids"}
//!      refused ─► 400 / 413 / 422 {"reason","detail"(,"index")} · 503 + Retry-After: 1
//!  GET  /v1/channels/{channel}/messages?after=B.I&limit=N&wait=S   a channel it receives
//!    ─► MessageLog::read (long poll up to `wait` s) ─► 200 {"messages":[…],"next"}
//!  anything else ─► 404 · another method ─► 405
//! ```
//!
//! Requests that wait (a post for its group commit, a read for its long poll) each hold a
//! connection thread: the server serves up to [`MAX_CONNECTIONS`] at once (beyond: 503
//! `unavailable` with `Retry-After: 1`, worded in JSON like every refusal the transport
//! decides before a request reaches the API: [`http::Refusals::Json`]);
//! a client's next request on the same connection is served by the same thread, and an
//! idle kept connection holds its place for at most [`http::IDLE_DEADLINE`] (kept only
//! while at most half the places are taken).

use crate::core::message::{Cursor, parse_posted};
use crate::core::reason::{Reason, Refusal};
use crate::node::Node;
use crate::node::config::MessagesApiConfig;
use crate::ops::http::{self, BodyError, Method, Request};
use crate::receiver::Receiver;
use crate::sender::messages::{Messages, PostError};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Connections served at the same time (each long poll and each waiting post holds one).
pub const MAX_CONNECTIONS: usize = 512;
/// Longest `Idempotency-Key`, in characters (visible ASCII).
pub const MAX_KEY: usize = 200;
/// Most messages one read returns (`limit`), and the default.
pub const MAX_LIMIT: usize = 1000;
/// `limit` when not given.
pub const DEFAULT_LIMIT: usize = 100;
/// Longest long poll (`wait`), in seconds.
pub const MAX_WAIT_S: u64 = 30;
/// Longest request target, in bytes.
pub const MAX_URL: usize = 4096;

/// Why the message API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The address cannot be bound.
    #[error(
        "message API: cannot listen on {addr}: {why} (is another program using the port? change [messages] listen)"
    )]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// What the system said.
        why: String,
    },
}

/// The running message API; stops accepting when dropped (requests under way finish).
pub struct Api {
    _server: http::Server,
}

/// What the connection threads share.
struct App {
    node: Arc<Node>,
    messages: Option<Arc<Messages>>,
    receiver: Option<Arc<Receiver>>,
    /// The DNS names a request's `Host` may carry ([`MessagesApiConfig::hosts`]).
    hosts: Vec<String>,
}

/// Serves the message API of `node` on `cfg.listen`: posts for the messages channels it
/// sends (through `messages`), reads for those it receives (through `receiver`).
///
/// # Errors
/// [`ApiError::Listen`]: the address cannot be bound or the accept thread cannot start.
pub fn start(
    node: Arc<Node>,
    cfg: &MessagesApiConfig,
    messages: Option<Arc<Messages>>,
    receiver: Option<Arc<Receiver>>,
) -> Result<Api, ApiError> {
    let app = Arc::new(App {
        node,
        messages,
        receiver,
        hosts: cfg.hosts.clone(),
    });
    let a = app.clone();
    let refusals = http::Refusals::Json;
    let server = http::serve_with(
        cfg.listen,
        "messages",
        MAX_CONNECTIONS,
        refusals,
        move |r| {
            handle(&a, r);
        },
    )
    .map_err(|e| ApiError::Listen {
        addr: cfg.listen,
        why: e.to_string(),
    })?;
    tracing::info!(listen = %cfg.listen, "serving the message API");
    Ok(Api { _server: server })
}

/// An answer: status, extra headers, JSON body.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply::text(status, body.to_string())
    }

    /// A reply whose JSON body is already written.
    fn text(status: u16, body: String) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body,
        }
    }

    /// `{"reason": reason, "detail": detail}`.
    fn refused(status: u16, reason: &str, detail: &str) -> Reply {
        Reply::json(status, json!({ "reason": reason, "detail": detail }))
    }

    fn send(self, r: Request) {
        let body = self.body;
        let mut headers: Vec<(&str, &str)> = vec![
            ("Content-Type", "application/json"),
            ("Cache-Control", "no-store"),
        ];
        headers.extend(self.headers.iter().map(|(k, v)| (*k, v.as_str())));
        r.respond(self.status, &headers, body.as_bytes());
    }
}

/// The HTTP status of a refusal's reason: a request that is not what the API takes (400),
/// too large (413), or content the policy refuses (422).
pub fn status_of(reason: Reason) -> u16 {
    match reason {
        Reason::MessageMalformed | Reason::SchemaViolation => 400,
        Reason::SizeLimit => 413,
        _ => 422,
    }
}

fn handle(app: &App, mut r: Request) {
    let reply = route(app, &mut r);
    reply.send(r);
}

fn route(app: &App, r: &mut Request) -> Reply {
    // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host (HTTP/1.0 may have none)
    let hosts = r.headers_named("Host").count();
    if hosts > 1 || (hosts == 0 && r.is_http_1_1()) {
        return Reply::refused(
            400,
            "bad_request",
            &format!(
                "an HTTP/1.1 request has exactly one Host header (RFC 9112 §3.2); this one has {hosts}"
            ),
        );
    }
    if let Some(host) = r.header("Host")
        && !http::host_allowed(host, &app.hosts)
    {
        return Reply::refused(
            421,
            "host_not_allowed",
            &format!(
                "Host {host:?} is not a name of this API: use its IP address, or add the name to [messages] hosts in the node's config"
            ),
        );
    }
    if r.url.len() > MAX_URL {
        return Reply::refused(414, "bad_request", "the request target is too long");
    }
    let (path, query) = match r.url.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (r.url.clone(), String::new()),
    };
    let channel = path
        .strip_prefix("/v1/channels/")
        .and_then(|p| p.strip_suffix("/messages"))
        .filter(|c| !c.is_empty() && !c.contains('/'));
    let Some(channel) = channel else {
        return Reply::refused(404, "not_found", "no such resource");
    };
    match r.method {
        Method::Post => post(app, r, channel),
        Method::Get | Method::Head => get(app, channel, &query, &|| {
            r.client_gone() || r.server_stopping()
        }),
        Method::Other => {
            let mut reply = Reply::refused(405, "method", "GET or POST");
            reply.headers.push(("Allow", "GET, POST".into()));
            reply
        }
    }
}

/// Whether the request's `Content-Type` is JSON (`Some(true)`: one message), NDJSON
/// (`Some(false)`: many), or neither. A `charset` parameter other than UTF-8 is neither:
/// JSON exchanged between systems is UTF-8 (RFC 8259 §8.1), and a body in another
/// encoding would be read as other text than its author wrote.
fn media_type(r: &Request) -> Option<bool> {
    // several Content-Types: which one the body is cannot be known
    if r.headers_named("Content-Type").count() > 1 {
        return None;
    }
    let mut parts = r.header("Content-Type")?.split(';');
    let t = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    for p in parts {
        let (name, value) = p.split_once('=').unwrap_or((p, ""));
        if name.trim().eq_ignore_ascii_case("charset") {
            let value = value.trim().trim_matches('"');
            if !value.eq_ignore_ascii_case("utf-8") && !value.eq_ignore_ascii_case("utf8") {
                return None;
            }
        }
    }
    match t.as_str() {
        "application/json" => Some(true),
        "application/x-ndjson" | "application/jsonl" | "application/ndjson" => Some(false),
        _ => None,
    }
}

/// The `Idempotency-Key`: `Ok(None)` when absent; `Err` when not 1..=200 visible ASCII,
/// or given more than once (which one the client meant cannot be known).
fn idempotency_key(r: &Request) -> Result<Option<String>, String> {
    let given = r.headers_named("Idempotency-Key").count();
    if given > 1 {
        return Err(format!("Idempotency-Key given {given} times: send it once"));
    }
    let Some(k) = r.header("Idempotency-Key") else {
        return Ok(None);
    };
    if k.is_empty() || k.len() > MAX_KEY || !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "Idempotency-Key must be 1 to {MAX_KEY} visible ASCII characters"
        ));
    }
    Ok(Some(k.to_string()))
}

fn post(app: &App, r: &mut Request, channel: &str) -> Reply {
    if receives(app, channel) {
        return other_side(
            channel,
            "POST it on the sending node; read it here with GET",
            "GET, HEAD",
        );
    }
    let Some(messages) = &app.messages else {
        return no_channel(channel);
    };
    let Some(settings) = app
        .node
        .cfg
        .sending()
        .find(|c| c.name == channel)
        .and_then(|c| c.messages.clone())
    else {
        return no_channel(channel);
    };
    let Some(json) = media_type(r) else {
        return Reply::refused(
            415,
            "unsupported_media_type",
            "Content-Type must be application/json (one message) or application/x-ndjson (one per line), in UTF-8 (no other charset)",
        );
    };
    let key = match idempotency_key(r) {
        Ok(k) => k,
        Err(why) => return Reply::refused(400, "bad_request", &why),
    };
    let cap = usize::try_from(settings.batch_max_bytes).unwrap_or(usize::MAX);
    // refused unread: audited without a hash, nothing to quarantine
    let too_large = || {
        let refusal = Refusal::new(
            Reason::SizeLimit,
            format!("the body is larger than the channel's batch_max_bytes ({cap})"),
        );
        if let Err(e) = messages.refuse_unread(channel, &refusal) {
            return unavailable(&e.to_string());
        }
        refusal_reply(&refusal, None)
    };
    match r.body_length() {
        Ok(Some(n)) if n > cap => return too_large(),
        Ok(Some(_)) => {}
        Ok(None) | Err(BodyError::NoLength) => {
            return Reply::refused(411, "length_required", "Content-Length is required");
        }
        Err(_) => return Reply::refused(400, "bad_request", "bad Content-Length"),
    }
    let body = match r.read_body(cap) {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::NoLength) => {
            return Reply::refused(411, "length_required", "Content-Length is required");
        }
        Err(BodyError::Slow) => {
            return Reply::refused(408, "timeout", "the body did not arrive in time");
        }
        Err(BodyError::Stopping) => {
            return unavailable(
                "the node is stopping and the body was not all there; send it again",
            );
        }
        Err(BodyError::BadLength) => {
            return Reply::refused(400, "bad_request", "bad Content-Length");
        }
    };
    let max_bytes = app
        .node
        .policies
        .get(channel)
        .messages
        .as_ref()
        .map_or(crate::policy::message::MAX_MESSAGE_BYTES_CAP, |m| {
            m.max_message_bytes
        });
    let bodies = match parse_posted(&body, json, settings.batch_max, max_bytes) {
        Ok(b) => b,
        Err((line, reason, detail)) => {
            let index = if json { 0 } else { index_of_line(&body, line) };
            let refusal = Refusal::new(reason, format!("line {line}: {detail}"));
            let raw = if json {
                &body[..]
            } else {
                body.split(|&b| b == b'\n')
                    .nth(line.saturating_sub(1))
                    .unwrap_or_default()
            };
            let id = key
                .as_deref()
                .map(|k| crate::core::message::MessageId::derive(channel, &format!("{k}#{index}")));
            if let Err(e) = messages.refuse(channel, id, raw, &refusal) {
                return unavailable(&e.to_string());
            }
            return refusal_reply(&refusal, (!json).then_some(index));
        }
    };
    match messages.post(channel, key.as_deref(), bodies) {
        Ok(posted) if json => {
            let mut out = json!({ "id": posted.first().map(|p| p.id.to_string()) });
            if posted.first().is_some_and(|p| p.masked) {
                out["masked"] = Value::Bool(true);
            }
            Reply::json(202, out)
        }
        Ok(posted) => {
            let ids: Vec<String> = posted.iter().map(|p| p.id.to_string()).collect();
            let masked: Vec<usize> = posted
                .iter()
                .enumerate()
                .filter(|(_, p)| p.masked)
                .map(|(i, _)| i)
                .collect();
            let mut out = json!({ "ids": ids });
            if !masked.is_empty() {
                out["masked"] = json!(masked);
            }
            Reply::json(202, out)
        }
        Err(PostError::NoChannel(_)) => no_channel(channel),
        Err(PostError::Refused { index, refusal }) => {
            refusal_reply(&refusal, (!json).then_some(index))
        }
        Err(e @ PostError::KeyReused { index }) => {
            let mut out = json!({ "reason": "idempotency_key_reused", "detail": e.to_string() });
            if !json {
                out["index"] = json!(index);
            }
            Reply::json(422, out)
        }
        Err(PostError::Unavailable(why)) => unavailable(&why),
    }
}

/// The number of JSON values before 1-based `line` of an NDJSON body (blank lines do not
/// count): the index of the value on that line.
fn index_of_line(body: &[u8], line: usize) -> usize {
    body.split(|&b| b == b'\n')
        .take(line.saturating_sub(1))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count()
}

fn refusal_reply(refusal: &Refusal, index: Option<usize>) -> Reply {
    let mut out = json!({ "reason": refusal.reason.as_str(), "detail": refusal.detail });
    if let Some(i) = index {
        out["index"] = json!(i);
    }
    Reply::json(status_of(refusal.reason), out)
}

/// Whether this node sends the messages channel `channel`.
fn sends(app: &App, channel: &str) -> bool {
    app.node
        .cfg
        .sending()
        .any(|c| c.name == channel && c.is_messages())
}

/// Whether this node receives the messages channel `channel`.
fn receives(app: &App, channel: &str) -> bool {
    app.node
        .cfg
        .receiving()
        .any(|c| c.name == channel && c.is_messages())
}

/// A request for a messages channel of this node that only the other side serves:
/// `405 {"reason":"method"}` with the methods it takes here in `Allow` (RFC 9110 §15.5.6).
fn other_side(channel: &str, what: &str, allow: &str) -> Reply {
    let mut reply = Reply::refused(
        405,
        "method",
        &format!("channel {channel:?} crosses the other way on this node: {what}"),
    );
    reply.headers.push(("Allow", allow.into()));
    reply
}

fn no_channel(channel: &str) -> Reply {
    Reply::refused(
        404,
        "no_channel",
        &format!("no messages channel {channel:?} here"),
    )
}

fn unavailable(why: &str) -> Reply {
    let mut reply = Reply::refused(503, "unavailable", why);
    reply.headers.push(("Retry-After", "1".into()));
    reply
}

/// `after`, `limit` and `wait` of a read, or what is wrong with them.
fn read_params(query: &str) -> Result<(Option<Cursor>, usize, u64), String> {
    let (mut after, mut limit, mut wait) = (None, DEFAULT_LIMIT, 0u64);
    let mut seen: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if matches!(k, "after" | "limit" | "wait") {
            // which one the client meant cannot be known
            if seen.contains(&k) {
                return Err(format!("{k} given more than once: give it once"));
            }
            seen.push(k);
        }
        match k {
            "after" => after = Some(v.parse::<Cursor>().map_err(|e| e.to_string())?),
            "limit" => {
                limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| format!("limit must be 1 to {MAX_LIMIT}"))?;
            }
            "wait" => {
                wait = v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n <= MAX_WAIT_S)
                    .ok_or_else(|| format!("wait must be 0 to {MAX_WAIT_S} seconds"))?;
            }
            _ => {}
        }
    }
    Ok((after, limit, wait))
}

/// How often a long poll looks whether its client is still there.
const POLL_STEP: Duration = Duration::from_secs(1);

/// A read of `channel`'s log; a long poll waits in steps of [`POLL_STEP`] and answers the
/// empty page at once when the client closed its side meanwhile or the node is stopping
/// (`cut_short`), so that a client that went away does not hold its connection place for
/// the whole wait, and one still there is answered before the node stops.
fn get(app: &App, channel: &str, query: &str, cut_short: &dyn Fn() -> bool) -> Reply {
    if sends(app, channel) {
        return other_side(
            channel,
            "read it on the receiving node; POST to it here",
            "POST",
        );
    }
    let Some(receiver) = &app.receiver else {
        return no_channel(channel);
    };
    let received = app
        .node
        .cfg
        .receiving()
        .any(|c| c.name == channel && c.is_messages());
    if !received {
        return no_channel(channel);
    }
    let (after, limit, wait) = match read_params(query) {
        Ok(p) => p,
        Err(why) => return Reply::refused(400, "bad_request", &why),
    };
    let Some(log) = receiver.message_log(channel) else {
        return unavailable("the channel's message log is not open");
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(wait);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match log.read(after, limit, left.min(POLL_STEP)) {
            Ok(page) if !page.messages.is_empty() || left <= POLL_STEP || cut_short() => {
                return page_reply(&page);
            }
            Ok(_) => {}
            Err(e @ crate::receiver::messages::LogError::CursorAhead { .. }) => {
                return Reply::refused(400, "bad_request", &e.to_string());
            }
            Err(e) => return unavailable(&e.to_string()),
        }
    }
}

/// One message of a page, its body as the log holds it (compact JSON, not parsed again).
#[derive(serde::Serialize)]
struct PageMessage<'a> {
    id: String,
    cursor: String,
    body: Option<&'a serde_json::value::RawValue>,
}

/// `{"messages": [{"id", "cursor", "body"}, …], "next"}`; a body the log holds that is not
/// one JSON value (it never is: the log checks what it reads) is given as `null`.
fn page_reply(page: &crate::receiver::messages::Page) -> Reply {
    #[derive(serde::Serialize)]
    struct Out<'a> {
        messages: Vec<PageMessage<'a>>,
        next: Option<String>,
    }
    let messages = page
        .messages
        .iter()
        .map(|m| PageMessage {
            id: m.id.to_string(),
            cursor: m.cursor.to_string(),
            body: serde_json::from_str::<&serde_json::value::RawValue>(&m.body).ok(),
        })
        .collect();
    let out = Out {
        messages,
        next: page.next.map(|c| c.to_string()),
    };
    match serde_json::to_string(&out) {
        Ok(text) => Reply::text(200, text),
        Err(e) => unavailable(&e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sender::messages::tests::{fake_check, lab_node, settings};
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};

    /// An answer: status and JSON body.
    fn call(addr: SocketAddr, raw: &[u8]) -> (u16, Value, String) {
        let raw = String::from_utf8_lossy(raw);
        // HTTP/1.1 requests carry one Host: the tests' own, unless the test gives one
        let extra = if raw.contains("\r\nHost:") || !raw.contains(" HTTP/1.1\r\n") {
            "Connection: close\r\n"
        } else {
            "Connection: close\r\nHost: 127.0.0.1\r\n"
        };
        call_as_is(
            addr,
            raw.replacen("\r\n", &format!("\r\n{extra}"), 1).as_bytes(),
        )
    }

    /// [`call`] without the Host it adds (a `Connection: close` only, one request per
    /// connection: the answer is read to the connection's end).
    fn call_as_is(addr: SocketAddr, raw: &[u8]) -> (u16, Value, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        // one request per connection: the answer is read to the connection's end
        let raw = String::from_utf8_lossy(raw);
        let raw = if raw.contains("\r\nConnection: close\r\n") {
            raw.into_owned()
        } else {
            raw.replacen("\r\n", "\r\nConnection: close\r\n", 1)
        };
        s.write_all(raw.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let json = serde_json::from_str(body).unwrap_or(Value::Null);
        (status, json, head.to_string())
    }

    fn post_req(channel: &str, ctype: &str, key: Option<&str>, body: &str) -> Vec<u8> {
        let key = key.map_or(String::new(), |k| format!("Idempotency-Key: {k}\r\n"));
        format!(
            "POST /v1/channels/{channel}/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n{key}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// A sending node with the API on `port` (its lab's base `lab`); `real`: the policy's
    /// checks (else the tests' fake one).
    fn sending_api(
        lab: u16,
        port: u16,
        real: bool,
        batch_max_bytes: u64,
    ) -> (tempfile::TempDir, Arc<Messages>, Api, SocketAddr) {
        let (d, node) = lab_node(lab, "court", settings(1000, batch_max_bytes, 0));
        let sender = Arc::new(crate::sender::pipeline::Sender::open(node.clone()).unwrap());
        let (tx, _) = tokio::sync::mpsc::unbounded_channel();
        let check: Arc<crate::sender::messages::Check> = if real {
            Arc::new(crate::inspect::message::check_message)
        } else {
            Arc::new(fake_check)
        };
        let m = Messages::start_with(sender, tx, check).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let cfg = MessagesApiConfig {
            listen: addr,
            allow_remote: false,
            hosts: Vec::new(),
        };
        let api = start(node, &cfg, Some(m.clone()), None).unwrap();
        (d, m, api, addr)
    }

    #[test]
    fn posts_answer_the_status_codes_of_the_api() {
        let (_d, m, _api, addr) = sending_api(28200, 28281, false, 1024);
        let nd = "application/x-ndjson; charset=utf-8";
        // accepted: one message, many, a retry with its key
        let (s, j, _) = call(
            addr,
            &post_req("notices", "application/json", Some("k1"), "{\"a\":1}"),
        );
        assert_eq!(s, 202, "{j}");
        let id = crate::core::message::MessageId::derive("notices", "k1#0").to_string();
        assert_eq!(j["id"], id.as_str());
        let (s, j2, _) = call(
            addr,
            &post_req("notices", "application/json", Some("k1"), "{\"a\":1}"),
        );
        assert_eq!((s, &j2), (202, &j));
        let (s, j, _) = call(
            addr,
            &post_req("notices", nd, None, "{\"a\":1}\n\n{\"a\":2}\n"),
        );
        assert_eq!(s, 202);
        assert_eq!(j["ids"].as_array().unwrap().len(), 2);
        // refused by the policy: 422 with the index; not JSON: 400 with the index
        let (s, j, _) = call(
            addr,
            &post_req("notices", nd, None, "{\"a\":1}\n{\"t\":\"refuse\"}\n"),
        );
        assert_eq!(
            (s, j["reason"].as_str(), j["index"].as_u64()),
            (422, Some("keyword_match"), Some(1))
        );
        let (s, j, _) = call(addr, &post_req("notices", nd, None, "{\"a\":1}\n\nnope\n"));
        assert_eq!(
            (s, j["reason"].as_str(), j["index"].as_u64()),
            (400, Some("message_malformed"), Some(1))
        );
        let (s, j, _) = call(addr, &post_req("notices", "application/json", None, "{"));
        assert_eq!((s, j["reason"].as_str()), (400, Some("message_malformed")));
        assert!(j.get("index").is_none());
        // 415, 411, 413, 404, 405, bad keys
        let (s, j, _) = call(addr, &post_req("notices", "text/plain", None, "{}"));
        assert_eq!(s, 415, "{j}");
        // JSON in another charset than UTF-8 would be read as other text
        for ctype in [
            "application/json; charset=gbk",
            "application/x-ndjson;charset=\"GB18030\"",
        ] {
            let (s, j, _) = call(addr, &post_req("notices", ctype, None, "{}"));
            assert_eq!(s, 415, "{ctype}: {j}");
            assert!(j["detail"].as_str().unwrap().contains("UTF-8"), "{j}");
        }
        let (s, j, _) = call(
            addr,
            &post_req("notices", "application/json; Charset=\"UTF-8\"", None, "{}"),
        );
        assert_eq!(s, 202, "{j}");
        let (s, _, _) = call(addr, &post_req("notices", "", None, "{}"));
        assert_eq!(s, 415);
        let (s, j, _) = call(
            addr,
            b"POST /v1/channels/notices/messages HTTP/1.1\r\nContent-Type: application/json\r\n\r\n",
        );
        assert_eq!(s, 411, "{j}");
        // RFC 9112 §3.2: one Host on HTTP/1.1 (none allowed on 1.0), one Content-Type
        let (s, j, _) = call(addr, &post_req("notices", "application/json", None, "{}"));
        assert_ne!(s, 400, "one Host, one Content-Type: {j}");
        let no_host = String::from_utf8(post_req("notices", "application/json", None, "{}"))
            .unwrap()
            .replacen("Host: 127.0.0.1\r\n", "", 1);
        let (s, j, _) = call_as_is(addr, no_host.as_bytes());
        assert_eq!((s, j["reason"].as_str()), (400, Some("bad_request")), "{j}");
        assert!(j["detail"].as_str().unwrap().contains("Host"), "{j}");
        let (s, j, _) = call_as_is(addr, no_host.replacen("HTTP/1.1", "HTTP/1.0", 1).as_bytes());
        assert_ne!(s, 400, "HTTP/1.0 needs no Host: {j}");
        let two_hosts = String::from_utf8(post_req("notices", "application/json", None, "{}"))
            .unwrap()
            .replacen(
                "Host: 127.0.0.1\r\n",
                "Host: 127.0.0.1\r\nHost: 127.0.0.2\r\n",
                1,
            );
        let (s, _, _) = call(addr, two_hosts.as_bytes());
        assert_eq!(s, 400);
        let two_types = String::from_utf8(post_req("notices", "application/json", None, "{}"))
            .unwrap()
            .replacen("\r\n\r\n", "\r\nContent-Type: text/plain\r\n\r\n", 1);
        let (s, _, _) = call(addr, two_types.as_bytes());
        assert_eq!(
            s, 415,
            "two Content-Types: which one is meant cannot be known"
        );
        let (s, j, _) = call(
            addr,
            &post_req(
                "notices",
                "application/json",
                None,
                &format!("\"{}\"", "x".repeat(2000)),
            ),
        );
        assert_eq!((s, j["reason"].as_str()), (413, Some("size_limit")));
        // refused unread, and audited all the same: no hash, no size (nothing was read)
        let records = crate::audit::read_all(&_d.path().join("lab/court/audit")).unwrap();
        let unread = records
            .iter()
            .rfind(|r| r.event == crate::audit::Event::MessageRefused)
            .expect("the refusal is audited");
        assert_eq!(unread.reason, Some(Reason::SizeLimit));
        assert_eq!(unread.channel.as_deref(), Some("notices"));
        assert!(
            unread
                .detail
                .as_deref()
                .unwrap()
                .contains("batch_max_bytes (1024)")
        );
        assert_eq!(
            (unread.size, &unread.sha256, &unread.sm3),
            (None, &None, &None)
        );
        let (s, j, head) = call(addr, &post_req("filings", "application/json", None, "{}"));
        assert_eq!((s, j["reason"].as_str()), (405, Some("method")), "{j}");
        assert!(head.contains("Allow: GET, HEAD"), "received here: {head}");
        let (s, j, head) = call(addr, b"GET /v1/channels/notices/messages HTTP/1.1\r\n\r\n");
        assert_eq!((s, j["reason"].as_str()), (405, Some("method")), "{j}");
        assert!(head.contains("Allow: POST"), "sent from here: {head}");
        let (s, j, _) = call(addr, &post_req("nowhere", "application/json", None, "{}"));
        assert_eq!((s, j["reason"].as_str()), (404, Some("no_channel")));
        // a page from another name that resolves here (DNS rebinding): 421, never read
        let (s, j, _) = call(
            addr,
            b"GET /v1/channels/filings/messages HTTP/1.1\r\nHost: rebind.evil.example:7404\r\n\r\n",
        );
        assert_eq!(
            (s, j["reason"].as_str()),
            (421, Some("host_not_allowed")),
            "{j}"
        );
        let (s, _, _) = call(
            addr,
            format!("GET /v1/channels/nowhere/messages HTTP/1.1\r\nHost: {addr}\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(s, 404, "its own address is served");
        let (s, _, _) = call(
            addr,
            &post_req("to-internet", "application/json", None, "{}"),
        );
        assert_eq!(s, 404, "a files channel takes no messages");
        let (s, _, _) = call(addr, b"GET /v2/other HTTP/1.1\r\n\r\n");
        assert_eq!(s, 404);
        let (s, _, head) = call(
            addr,
            b"DELETE /v1/channels/notices/messages HTTP/1.1\r\n\r\n",
        );
        assert_eq!(s, 405);
        assert!(head.contains("Allow: GET, POST"));
        for bad in ["", &"k".repeat(201), "two words", "caf\u{e9}"] {
            let (s, j, _) = call(
                addr,
                &post_req("notices", "application/json", Some(bad), "{}"),
            );
            assert_eq!(
                (s, j["reason"].as_str()),
                (400, Some("bad_request")),
                "key {bad:?}"
            );
        }
        let twice = String::from_utf8(post_req("notices", "application/json", Some("k2"), "{}"))
            .unwrap()
            .replacen(
                "Idempotency-Key: k2\r\n",
                "Idempotency-Key: k2\r\nidempotency-key: k3\r\n",
                1,
            );
        let (s, j, _) = call(addr, twice.as_bytes());
        assert_eq!((s, j["reason"].as_str()), (400, Some("bad_request")), "{j}");
        assert!(j.to_string().contains("given 2 times"), "{j}");
        let (s, _, _) = call(
            addr,
            &post_req("notices", "application/json", Some(&"k".repeat(200)), "{}"),
        );
        assert_eq!(s, 202);
        // a node that sends the channel but reads none: GET is 405, POST allowed
        let (s, _, _) = call(addr, b"GET /v1/channels/notices/messages HTTP/1.1\r\n\r\n");
        assert_eq!(s, 405);
        // stopped: 503 with Retry-After
        m.stop();
        let (s, j, head) = call(addr, &post_req("notices", "application/json", None, "{}"));
        assert_eq!((s, j["reason"].as_str()), (503, Some("unavailable")));
        assert!(head.contains("Retry-After: 1"));
    }

    /// With the policy's own checks: a valid notice is taken (202), one the schema refuses
    /// is 400 schema_violation.
    #[test]
    fn posts_are_checked_against_the_channels_policy() {
        let (_d, m, _api, addr) = sending_api(28210, 28282, true, 1 << 20);
        let ok = r#"{"type":"status","case":"C-1","text":"hearing moved"}"#;
        let (s, j, _) = call(
            addr,
            &post_req("notices", "application/json", Some("p"), ok),
        );
        assert_eq!(s, 202, "{j}");
        assert!(j.get("masked").is_none());
        let (s, j, _) = call(
            addr,
            &post_req("notices", "application/json", None, r#"{"type":"nope"}"#),
        );
        assert_eq!(
            (s, j["reason"].as_str()),
            (400, Some("schema_violation")),
            "{j}"
        );
        m.stop();
    }

    #[test]
    fn reads_check_their_parameters() {
        let (_d, node) = lab_node(28220, "internet", settings(1000, 1 << 20, 0));
        let receiver = Arc::new(Receiver::open(node.clone()).unwrap());
        let addr: SocketAddr = "127.0.0.1:28283".parse().unwrap();
        let cfg = MessagesApiConfig {
            listen: addr,
            allow_remote: false,
            hosts: Vec::new(),
        };
        let api = start(node, &cfg, None, Some(receiver)).unwrap();
        let get = |q: &str| {
            call(
                addr,
                format!("GET /v1/channels/notices/messages{q} HTTP/1.1\r\n\r\n").as_bytes(),
            )
        };
        for q in [
            "?limit=0",
            "?limit=1001",
            "?wait=31",
            "?after=x",
            "?after=1",
            "?limit=-1",
            "?after=0.0&after=0.0",
            "?limit=1&wait=0&limit=2",
            // a cursor this log never gave
            "?after=7.0",
        ] {
            let (s, j, _) = get(q);
            assert_eq!((s, j["reason"].as_str()), (400, Some("bad_request")), "{q}");
        }
        let (s, _, _) = call(
            addr,
            b"GET /v1/channels/to-internet/messages HTTP/1.1\r\n\r\n",
        );
        assert_eq!(s, 404, "a files channel has no message log");
        let (s, _, _) = call(addr, &post_req("notices", "application/json", None, "{}"));
        assert_eq!(s, 405, "a received channel takes no posts");
        // a read of the log: 200 with the page
        let (s, j, _) = get("?after=0.0&limit=10&wait=0");
        assert_eq!(s, 200, "{j}");
        assert_eq!(j["messages"], json!([]));
        // a long poll whose client closes its side is answered at once, not after its wait
        let t = std::time::Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /v1/channels/notices/messages?after=0.0&wait=20 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        s.shutdown(std::net::Shutdown::Write).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.ends_with(r#"{"messages":[],"next":"0.0"}"#), "{out}");
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        // a long poll under way when the node stops is answered before the API is gone
        let mut polling = TcpStream::connect(addr).unwrap();
        polling
            .write_all(b"GET /v1/channels/notices/messages?after=0.0&wait=20 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let t = std::time::Instant::now();
        drop(api);
        assert!(t.elapsed() < http::STOP_WAIT, "{:?}", t.elapsed());
        polling
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut out = String::new();
        let _ = polling.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.contains("Connection: close\r\n"), "{out}");
        assert!(out.ends_with(r#"{"messages":[],"next":"0.0"}"#), "{out}");
    }

    #[test]
    fn statuses_by_reason() {
        assert_eq!(status_of(Reason::SchemaViolation), 400);
        assert_eq!(status_of(Reason::SizeLimit), 413);
        assert_eq!(status_of(Reason::PersonalData), 422);
        assert_eq!(index_of_line(b"1\n\n2\n3", 4), 2);
        assert_eq!(
            read_params("after=3.1&limit=5&wait=2").unwrap(),
            (Some(Cursor { batch: 3, index: 1 }), 5, 2)
        );
    }
}
