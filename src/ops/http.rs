//! The node's small HTTP/1.1 transport on std sockets, for the web console, the status
//! endpoint (`/metrics`, `/healthz`) and the message API: every read has a socket timeout
//! and every request a deadline, so a slow or silent client holds one connection thread
//! for a few seconds per request at most, never the server. The request head is parsed
//! by `httparse`; this module only frames (caps, deadlines, Content-Length, persistent
//! connections).
//! (tiny_http 0.12, used before, sets no socket timeout, and on dropping a request whose
//! body was not read it reads the rest into a buffer of the announced Content-Length: one
//! request announcing 10^15 bytes aborted the node.)
//!
//! Connections are persistent as RFC 9112 §9.3 has them: an HTTP/1.1 request without
//! `Connection: close` leaves the connection open for the next one, when its body was read
//! whole (or it had none), at most [`MAX_REQUESTS`] times, while at most half the server's
//! connection places are taken and the server is not stopping; a connection that stays
//! idle [`IDLE_DEADLINE`] is closed without an answer. Anything else is answered with
//! `Connection: close` and closed: a body left unread is never read, nor one whose framing
//! is in doubt (a Transfer-Encoding, a Content-Length that is not a number, several that
//! differ, or none where the handler needed one: its 411). Closing stops sending, then
//! drops what the client still sends for up to [`IO_STEP`], so that an answer sent before
//! its body was read (413, 401) reaches the client instead of being cut by a reset. A
//! request target in absolute form (`http://host/path`, as a proxy sends it) is served as
//! its path (RFC 9112 §3.2.2).
//!
//! ```text
//!  TcpListener ─► accept thread ─► at most MAX_CONNECTIONS threads (beyond: 503 at once)
//!    ─► head: ≤ MAX_HEAD bytes within HEAD_DEADLINE (httparse) ─► else 431 / 408 / 400
//!       (worded as the server's `Refusals` say: a line of text, or JSON for the API)
//!    ─► the handler: checks the head, then reads the body it allows (≤ its cap, within
//!       BODY_DEADLINE) or refuses unread ─► response
//!    ─► persistent (above): the next head on the same thread, else `Connection: close`
//! ```

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Largest request head (request line and headers), in bytes.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers in a request.
pub const MAX_HEADERS: usize = 64;
/// Time allowed for a request's head to arrive.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// Time allowed for a body to arrive, after the head.
pub const BODY_DEADLINE: Duration = Duration::from_secs(5);
/// Once the server stops, how long a body still arriving is waited for
/// ([`BodyError::Stopping`] after).
pub const STOP_BODY: Duration = Duration::from_secs(1);
/// The read step while a body arrives: how late a stop is seen at most.
const BODY_STEP: Duration = Duration::from_millis(250);
/// Longest wait for one read or write on a socket.
pub const IO_STEP: Duration = Duration::from_secs(1);
/// Longest time to write an answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at the same time.
pub const MAX_CONNECTIONS: usize = 64;
/// Longest wait for the next request on a persistent connection before it is closed.
pub const IDLE_DEADLINE: Duration = Duration::from_secs(5);
/// Most requests served on one connection.
pub const MAX_REQUESTS: usize = 1000;

/// A request method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD (answered as GET, without the body).
    Head,
    /// POST.
    Post,
    /// Anything else.
    Other,
}

/// One client connection, served by one thread, request after request.
struct Conn {
    stream: TcpStream,
    remote: IpAddr,
    /// Bytes read past the last request's end (the start of the next one).
    ahead: Vec<u8>,
    /// Requests served on it so far.
    served: usize,
    /// Whether the next request may be read (set by [`Request::respond`]).
    reuse: bool,
    /// The server is stopping.
    stop: Arc<AtomicBool>,
    /// Connections the server serves now, and its most.
    open: Arc<AtomicUsize>,
    max: usize,
}

impl Conn {
    /// Whether the server keeps connections open now: not stopping, and at most half its
    /// connection places taken (idle persistent connections never crowd out new clients).
    fn room(&self) -> bool {
        !self.stop.load(Ordering::SeqCst) && self.open.load(Ordering::Acquire) <= self.max / 2
    }
}

/// A request whose head is read; its body is still on the wire.
pub struct Request<'c> {
    /// The method.
    pub method: Method,
    /// The request target (path and query), as sent.
    pub url: String,
    /// Headers, in order (names as sent).
    pub headers: Vec<(String, String)>,
    /// The client's address.
    pub remote: IpAddr,
    conn: &'c mut Conn,
    /// HTTP/1.1 without `Connection: close`: the client keeps the connection.
    persistent: bool,
    /// Whether all of the body is read (or there is none): the next request then starts
    /// at `conn.ahead`.
    body_read: bool,
    /// Whether [`Request::read_body`] was called.
    body_taken: bool,
    /// HTTP/1.1 (else 1.0).
    version_1_1: bool,
    head_done: Instant,
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// No Content-Length (or a Transfer-Encoding): 411.
    NoLength,
    /// A Content-Length that is not a decimal number, or several that differ (RFC 9112
    /// §6.3: the framing cannot be trusted): 400, and the connection closed.
    BadLength,
    /// Longer than allowed: 413.
    TooLarge,
    /// Not all there within [`BODY_DEADLINE`], or the client went away: 408.
    Slow,
    /// The server began to stop and the rest did not arrive within [`STOP_BODY`] of that:
    /// 503, to be sent again (a stop answers what is under way within [`STOP_WAIT`]).
    Stopping,
}

impl Request<'_> {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the request is HTTP/1.1 (else 1.0).
    pub fn is_http_1_1(&self) -> bool {
        self.version_1_1
    }

    /// Every header named `name` (any case), in the order received.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The announced body length: `Ok(None)` for none; [`BodyError::NoLength`] for a
    /// Transfer-Encoding, [`BodyError::BadLength`] for a Content-Length that is not only
    /// decimal digits, or for several (headers or comma-separated values) that differ.
    pub fn body_length(&self) -> Result<Option<usize>, BodyError> {
        if self.header("Transfer-Encoding").is_some() {
            return Err(BodyError::NoLength);
        }
        let mut length = None;
        for (_, v) in self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        {
            for value in v.split(',').map(str::trim) {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(BodyError::BadLength);
                }
                let n = value
                    .parse::<u64>()
                    .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                    .unwrap_or(usize::MAX);
                if length.is_some_and(|l| l != n) {
                    return Err(BodyError::BadLength);
                }
                length = Some(n);
            }
        }
        Ok(length)
    }

    /// Whether the server is stopping: a handler that waits long (a long poll) answers
    /// with what it has as soon as it sees this, within the server's [`STOP_WAIT`].
    pub fn server_stopping(&self) -> bool {
        self.conn.stop.load(Ordering::SeqCst)
    }

    /// Whether the client has closed its side of the connection (or reset it) while its
    /// request is served: what a handler that waits long (a long poll) asks now and then,
    /// so as to stop waiting for a client that is gone. Bytes the client sent on (a next
    /// request) mean it is still there.
    pub fn client_gone(&self) -> bool {
        if !self.conn.ahead.is_empty() {
            return false;
        }
        let stream = &self.conn.stream;
        if stream.set_nonblocking(true).is_err() {
            return false;
        }
        let peeked = stream.peek(&mut [0u8; 1]);
        let _ = stream.set_nonblocking(false);
        match peeked {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !is_timeout(&e),
        }
    }

    /// Reads the body, of at most `cap` bytes, within [`BODY_DEADLINE`] of the head.
    ///
    /// # Errors
    /// [`BodyError`]: no length, too large, too slow, or cut short by a stop.
    pub fn read_body(&mut self, cap: usize) -> Result<Vec<u8>, BodyError> {
        if self.body_taken {
            // the body is read once: what follows it is the next request
            return Ok(Vec::new());
        }
        self.body_taken = true;
        let length = self.body_length()?.unwrap_or(0);
        if length > cap {
            return Err(BodyError::TooLarge);
        }
        let conn = &mut *self.conn;
        let expects = self.headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("Expect") && v.trim().eq_ignore_ascii_case("100-continue")
        });
        if expects && self.version_1_1 && conn.ahead.len() < length {
            // RFC 9110 §10.1.1: the client waits for this before it sends the body
            let _ = conn.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let mut body = std::mem::take(&mut conn.ahead);
        if body.len() > length {
            conn.ahead = body.split_off(length);
        }
        let mut chunk = [0u8; 4096];
        let mut stop_seen: Option<Instant> = None;
        let _ = conn.stream.set_read_timeout(Some(BODY_STEP));
        while body.len() < length {
            if self.head_done.elapsed() > BODY_DEADLINE {
                return Err(BodyError::Slow);
            }
            if conn.stop.load(Ordering::SeqCst)
                && stop_seen.get_or_insert_with(Instant::now).elapsed() >= STOP_BODY
            {
                return Err(BodyError::Stopping);
            }
            let want = (length - body.len()).min(chunk.len());
            match conn.stream.read(&mut chunk[..want]) {
                Ok(0) => return Err(BodyError::Slow),
                Ok(n) => body.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(e) if is_timeout(&e) => continue,
                Err(_) => return Err(BodyError::Slow),
            }
        }
        let _ = conn.stream.set_read_timeout(Some(IO_STEP));
        self.body_read = true;
        Ok(body)
    }

    /// Sends the answer. The connection then serves the next request when it may (see the
    /// module's header: persistent, body read whole, room on the server); otherwise the
    /// answer says `Connection: close` and the connection is closed (a body left unread is
    /// never read).
    pub fn respond(self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        let head_only = self.method == Method::Head;
        let conn = self.conn;
        // a 411 says the body's length was needed and not given: what follows may be that
        // body, never to be read as the next request
        let keep = self.persistent
            && self.body_read
            && status != 411
            && conn.served < MAX_REQUESTS
            && conn.room();
        let written = write_response(&mut conn.stream, status, headers, body, head_only, keep);
        conn.reuse = keep && written.is_ok();
        if !conn.reuse {
            close(&mut conn.stream);
        }
    }
}

/// Most bytes dropped while a connection closes.
const LINGER_BYTES: usize = 1 << 20;

/// Closes a connection whose answer is sent: stops sending (FIN after the answer), then
/// reads and drops what the client still sends, for up to [`IO_STEP`] and
/// [`LINGER_BYTES`], so that closing with unread input does not reset the connection and
/// destroy the answer before the client reads it (RFC 9112 §9.6).
fn close(stream: &mut TcpStream) {
    if stream.shutdown(std::net::Shutdown::Write).is_err() {
        return;
    }
    let start = Instant::now();
    let _ = stream.set_read_timeout(Some(IO_STEP / 4));
    let mut sink = [0u8; 8192];
    let mut dropped = 0;
    while start.elapsed() < IO_STEP && dropped < LINGER_BYTES {
        match stream.read(&mut sink) {
            Ok(0) => break,
            Ok(n) => dropped += n,
            Err(e) if is_timeout(&e) => {}
            Err(_) => break,
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// The reason phrase of the statuses the console sends.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        421 => "Misdirected Request",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

fn write_response(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
    head_only: bool,
    keep: bool,
) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        // our own values; a line break would split the header
        if v.contains(['\r', '\n']) || k.contains(['\r', '\n', ':']) {
            continue;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    if !keep {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(body);
    }
    stream.write_all(&bytes)?;
    stream.flush()
}

/// Reads the next request head on `conn` within [`HEAD_DEADLINE`] of its first byte (of
/// the connection's start for its first request). `Ok(None)` when the client closed the
/// connection, or left it idle [`IDLE_DEADLINE`] after an earlier request, or the server is
/// stopping meanwhile: it is closed without an answer. `Err(status)` to answer with when
/// the head cannot be read.
fn read_head(conn: &mut Conn) -> Result<Option<Request<'_>>, u16> {
    let mut start = Instant::now();
    let first = conn.served == 0;
    let mut buf = std::mem::take(&mut conn.ahead);
    let mut chunk = [0u8; 2048];
    loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Request::new(&mut headers);
            match parsed.parse(&buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let method = match parsed.method {
                        Some("GET") => Method::Get,
                        Some("HEAD") => Method::Head,
                        Some("POST") => Method::Post,
                        _ => Method::Other,
                    };
                    let url = origin_form(parsed.path.unwrap_or("/")).to_string();
                    let headers: Vec<(String, String)> = parsed
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    let close = headers.iter().any(|(k, v)| {
                        k.eq_ignore_ascii_case("Connection")
                            && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))
                    });
                    let parsed_1_1 = parsed.version == Some(1);
                    let persistent = parsed_1_1 && !close;
                    conn.ahead = buf.split_off(len);
                    conn.served += 1;
                    let remote = conn.remote;
                    let mut request = Request {
                        method,
                        url,
                        headers,
                        remote,
                        conn,
                        persistent,
                        body_read: false,
                        body_taken: false,
                        version_1_1: parsed_1_1,
                        head_done: Instant::now(),
                    };
                    request.body_read = matches!(request.body_length(), Ok(None | Some(0)));
                    return Ok(Some(request));
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
                Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                    return Err(431);
                }
                Err(_) => return Err(400),
            }
        }
        let idle = buf.is_empty() && !first;
        // stopping: a connection with no request begun is closed, new or kept
        if buf.is_empty() && conn.stop.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let deadline = if idle { IDLE_DEADLINE } else { HEAD_DEADLINE };
        if start.elapsed() > deadline {
            return if idle { Ok(None) } else { Err(408) };
        }
        match conn.stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) => return Err(400),
            Ok(n) => {
                if idle {
                    // the next request's head has its own deadline
                    start = Instant::now();
                }
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
            Err(e) if is_timeout(&e) => continue,
            Err(_) => return Err(400),
        }
    }
}

/// Whether `name` is a DNS name as a `Host` header carries it (RFC 1123 §2.1 labels: 1-63
/// letters, digits and hyphens, not beginning or ending with a hyphen; at most 253
/// characters), not an IP address.
pub fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.parse::<std::net::Ipv4Addr>().is_err()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Whether a request's `Host` value (RFC 9110 §7.2: `host[:port]`) names this server: an
/// IP literal (IPv4, or IPv6 in brackets), `localhost`, or one of `names` (lowercase DNS
/// names, see [`is_dns_name`]), any port. A page a browser loaded from another name that
/// resolves here (DNS rebinding) sends that name, and is refused.
pub fn host_allowed(host: &str, names: &[String]) -> bool {
    let host = host.trim();
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split_once(']').is_some_and(|(ip, port)| {
            ip.parse::<std::net::Ipv6Addr>().is_ok()
                && (port.is_empty()
                    || port
                        .strip_prefix(':')
                        .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit())))
        });
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return false,
        None => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name.parse::<std::net::Ipv4Addr>().is_ok() || name == "localhost" || names.contains(&name)
}

/// The origin form (path and query) of a request target: an absolute-form target
/// (`http://host:port/path?query`, which RFC 9112 §3.2.2 says a server must accept) is
/// cut to its path, `/` when it has none; any other target is returned as it is.
fn origin_form(target: &str) -> &str {
    let scheme = target.get(..8).map_or(0, |start| {
        let start = start.to_ascii_lowercase();
        if start.starts_with("http://") {
            7
        } else if start.starts_with("https://") {
            8
        } else {
            0
        }
    });
    if scheme == 0 {
        return target;
    }
    let rest = target.get(scheme..).unwrap_or_default();
    match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes().get(i) == Some(&b'/') => rest.get(i..).unwrap_or("/"),
        _ => "/",
    }
}

/// A running server; when dropped it stops accepting and waits up to [`STOP_WAIT`] for
/// the connections under way to end.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<std::thread::JoinHandle<()>>,
    /// Connections served now.
    open: Arc<AtomicUsize>,
}

/// Longest wait, when a server stops, for the requests under way to be answered.
pub const STOP_WAIT: Duration = Duration::from_secs(3);

impl Drop for Server {
    /// Stops accepting, then waits up to [`STOP_WAIT`] for the connections under way to
    /// end: each request being served is answered (a long poll at its next step, with what
    /// it has), and a connection with no request begun is closed within [`IO_STEP`].
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // wake the accept thread
        let _ = TcpStream::connect_timeout(&self.addr, IO_STEP);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let deadline = Instant::now() + STOP_WAIT;
        while self.open.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Frees a connection's place when its thread ends, however it ends.
struct Place(Arc<AtomicUsize>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How the transport words the refusals it decides itself, before any handler sees a
/// request: a head that is malformed (400), too slow (408) or too large (431), and every
/// connection place taken (503, with `Retry-After: 1`, RFC 9110 §10.2.3). Each is answered
/// with `Connection: close`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusals {
    /// `text/plain; charset=utf-8`: one line saying why (the console, the status endpoint).
    Text,
    /// `application/json`: `{"reason": CODE, "detail": …}` as the message API words its
    /// own refusals; the codes are `request_malformed`, `request_timeout`,
    /// `headers_too_large` and `unavailable`.
    Json,
}

impl Refusals {
    /// The content type and the body of the transport's refusal with `status`.
    fn answer(self, status: u16) -> (&'static str, Vec<u8>) {
        let (code, detail) = match status {
            408 => (
                "request_timeout",
                format!(
                    "the request head did not arrive within {} s",
                    HEAD_DEADLINE.as_secs()
                ),
            ),
            431 => (
                "headers_too_large",
                format!(
                    "the request head is over {} KiB or {MAX_HEADERS} header fields",
                    MAX_HEAD / 1024
                ),
            ),
            503 => (
                "unavailable",
                "every connection place is taken: try again in a second".to_string(),
            ),
            _ => (
                "request_malformed",
                "the request head is not valid HTTP/1.1 or HTTP/1.0".to_string(),
            ),
        };
        match self {
            Refusals::Text => (
                "text/plain; charset=utf-8",
                format!("{detail}\n").into_bytes(),
            ),
            Refusals::Json => (
                "application/json",
                serde_json::json!({ "reason": code, "detail": detail })
                    .to_string()
                    .into_bytes(),
            ),
        }
    }
}

/// Answers the transport's own refusal `status` on `stream` as `refusals` words it.
fn refuse(stream: &mut TcpStream, status: u16, refusals: Refusals) -> std::io::Result<()> {
    let (content_type, body) = refusals.answer(status);
    let mut headers = vec![
        ("Content-Type", content_type),
        ("Cache-Control", "no-store"),
    ];
    if status == 503 {
        headers.push(("Retry-After", "1"));
    }
    write_response(stream, status, &headers, &body, false, false)
}

/// Listens on `addr` and calls `handle` for each request, on a thread per connection (at
/// most [`MAX_CONNECTIONS`]; beyond, 503); the transport's own refusals in plain text.
///
/// # Errors
/// The address cannot be bound, or the accept thread cannot start.
pub fn serve<H>(addr: SocketAddr, name: &str, handle: H) -> std::io::Result<Server>
where
    H: Fn(Request<'_>) + Send + Sync + 'static,
{
    serve_with(addr, name, MAX_CONNECTIONS, Refusals::Text, handle)
}

/// [`serve`] with at most `max_connections` served at the same time (a server whose
/// handlers wait, such as the message API's long polls, needs more than the console), and
/// the transport's own refusals worded as `refusals` says.
///
/// # Errors
/// The address cannot be bound, or the accept thread cannot start.
pub fn serve_with<H>(
    addr: SocketAddr,
    name: &str,
    max_connections: usize,
    refusals: Refusals,
    handle: H,
) -> std::io::Result<Server>
where
    H: Fn(Request<'_>) + Send + Sync + 'static,
{
    let listener = TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let handle = Arc::new(handle);
    let open = Arc::new(AtomicUsize::new(0));
    let served = open.clone();
    let s = stop.clone();
    let conn_name = format!("isogate-{name}-conn");
    let accept = std::thread::Builder::new()
        .name(format!("isogate-{name}"))
        .spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = conn else { continue };
                let _ = stream.set_read_timeout(Some(IO_STEP));
                let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
                let _ = stream.set_nodelay(true);
                if open.fetch_add(1, Ordering::AcqRel) >= max_connections {
                    open.fetch_sub(1, Ordering::AcqRel);
                    let _ = stream.set_write_timeout(Some(IO_STEP));
                    let _ = refuse(&mut stream, 503, refusals);
                    // the request already here is dropped, not left unread: closing over
                    // unread bytes would reset the connection and may cut the answer
                    let _ = stream.shutdown(std::net::Shutdown::Write);
                    if stream.set_nonblocking(true).is_ok() {
                        let mut sink = [0u8; 4096];
                        for _ in 0..16 {
                            if !matches!(stream.read(&mut sink), Ok(n) if n > 0) {
                                break;
                            }
                        }
                    }
                    continue;
                }
                let place = Place(open.clone());
                let h = handle.clone();
                let (stop, open) = (s.clone(), open.clone());
                let spawned = std::thread::Builder::new()
                    .name(conn_name.clone())
                    .stack_size(512 * 1024)
                    .spawn(move || {
                        let _place = place;
                        let remote = stream
                            .peer_addr()
                            .map(|a| a.ip())
                            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
                        let mut conn = Conn {
                            stream,
                            remote,
                            ahead: Vec::new(),
                            served: 0,
                            reuse: false,
                            stop,
                            open,
                            max: max_connections,
                        };
                        loop {
                            match read_head(&mut conn) {
                                Ok(Some(r)) => h(r),
                                Ok(None) => break,
                                Err(status) => {
                                    let _ = refuse(&mut conn.stream, status, refusals);
                                    close(&mut conn.stream);
                                    break;
                                }
                            }
                            if !std::mem::take(&mut conn.reuse) {
                                break;
                            }
                        }
                    });
                if let Err(e) = spawned {
                    tracing::warn!(server = %conn_name, error = %e, "cannot start a connection thread");
                }
            }
        })?;
    Ok(Server {
        addr,
        stop,
        accept: Some(accept),
        open: served,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_server() -> Server {
        serve("127.0.0.1:0".parse().unwrap(), "test", |mut r: Request| {
            let body = r.read_body(4096);
            match body {
                Ok(b) => r.respond(200, &[("X-Len", &b.len().to_string())], b"ok"),
                Err(BodyError::TooLarge) => r.respond(413, &[], b""),
                Err(BodyError::NoLength) => r.respond(411, &[], b""),
                Err(BodyError::Slow) => r.respond(408, &[], b""),
                Err(BodyError::BadLength) => r.respond(400, &[], b""),
                Err(BodyError::Stopping) => r.respond(503, &[], b""),
            }
        })
        .unwrap()
    }

    /// Reads one response on `s` (its head and `Content-Length` bytes of body): the head
    /// and the body.
    fn response(s: &mut TcpStream) -> (String, Vec<u8>) {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut raw = Vec::new();
        let mut byte = [0u8; 1];
        while !raw.ends_with(b"\r\n\r\n") {
            assert_eq!(s.read(&mut byte).unwrap(), 1, "closed before a whole head");
            raw.push(byte[0]);
        }
        let head = String::from_utf8(raw).unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).unwrap();
        (head, body)
    }

    /// Whether the server closed `s` (nothing more comes).
    fn closed(s: &mut TcpStream) -> bool {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        matches!(s.read(&mut [0u8; 1]), Ok(0) | Err(_))
    }

    #[test]
    fn a_body_still_coming_when_the_server_stops_is_answered_503_before_it_ends() {
        let server = echo_server();
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nten bytes.")
            .unwrap();
        // the head is read and the body awaited before the stop
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        let stopping = std::thread::spawn(move || drop(server));
        let (head, _) = response(&mut s);
        assert!(head.starts_with("HTTP/1.1 503"), "{head}");
        assert!(head.contains("Connection: close"), "{head}");
        assert!(t.elapsed() < STOP_WAIT, "{:?}", t.elapsed());
        stopping.join().unwrap();
        assert!(
            t.elapsed() < STOP_WAIT,
            "the stop waited for the answer only"
        );
    }

    #[test]
    fn hosts_are_ip_literals_localhost_or_the_names_given() {
        let names = vec!["gateway.court.example".to_string()];
        for ok in [
            "127.0.0.1:7404",
            "10.1.2.3",
            "[::1]:7404",
            "[fe80::1]",
            "localhost:7404",
            "LOCALHOST",
            "Gateway.Court.Example:7404",
            "gateway.court.example.",
        ] {
            assert!(host_allowed(ok, &names), "{ok}");
        }
        for no in [
            "evil.example:7404",
            "gateway.court.example.evil.example",
            "127.0.0.1.nip.io",
            "[::1",
            "[::1]x",
            "localhost:http",
            "",
        ] {
            assert!(!host_allowed(no, &names), "{no}");
        }
        assert!(is_dns_name("gateway.court.example") && is_dns_name("a-1"));
        for no in [
            "",
            "-a",
            "a-",
            "a..b",
            "a b",
            "10.0.0.1",
            "gateway:80",
            &"a".repeat(64),
        ] {
            assert!(!is_dns_name(no), "{no}");
        }
    }

    #[test]
    fn a_persistent_connection_serves_request_after_request() {
        let server = echo_server();
        let mut s = TcpStream::connect(server.addr).unwrap();
        for body in ["a", "bcd", ""] {
            s.write_all(
                format!(
                    "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .unwrap();
            let (head, got) = response(&mut s);
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert!(!head.contains("Connection: close"), "{head}");
            assert!(head.contains(&format!("X-Len: {}", body.len())), "{head}");
            assert_eq!(got, b"ok");
        }
        // pipelined: two requests in one write, the second one asking to close
        s.write_all(
            b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nxyPOST / HTTP/1.1\r\nContent-Length: 1\r\nConnection: close\r\n\r\nz",
        )
        .unwrap();
        let (first, _) = response(&mut s);
        assert!(first.contains("X-Len: 2") && !first.contains("Connection: close"));
        let (second, _) = response(&mut s);
        assert!(second.contains("X-Len: 1") && second.contains("Connection: close"));
        assert!(closed(&mut s));
    }

    /// A POST without Content-Length has no body by RFC 9112 §6.3, but a 411 says one was
    /// meant: the bytes after the head may be it, and are never served as a request.
    #[test]
    fn a_length_required_answer_closes_the_connection() {
        // as the message API does: a POST must say its length
        let server = serve("127.0.0.1:0".parse().unwrap(), "test", |r: Request| match r
            .body_length()
        {
            Ok(None) if r.method == Method::Post => r.respond(411, &[], b""),
            _ => r.respond(200, &[], b"ok"),
        })
        .unwrap();
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(
            b"POST / HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
        )
        .unwrap();
        let (head, _) = response(&mut s);
        assert!(head.starts_with("HTTP/1.1 411"), "{head}");
        assert!(head.contains("Connection: close"), "{head}");
        assert!(
            closed(&mut s),
            "the body-like bytes were served as a request"
        );
    }

    #[test]
    fn a_connection_closes_when_its_body_is_unread_or_the_client_is_http_1_0() {
        let server = serve("127.0.0.1:0".parse().unwrap(), "test", |r: Request| {
            // answers without reading the body
            r.respond(404, &[], b"no");
        })
        .unwrap();
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nGET /")
            .unwrap();
        let (head, _) = response(&mut s);
        assert!(head.contains("Connection: close"), "{head}");
        assert!(
            closed(&mut s),
            "the unread body is never taken for a request"
        );
        let mut old = TcpStream::connect(server.addr).unwrap();
        old.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let (head, _) = response(&mut old);
        assert!(head.contains("Connection: close"), "{head}");
        assert!(closed(&mut old));
        // a GET without a body keeps the connection
        let mut get = TcpStream::connect(server.addr).unwrap();
        get.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let (head, _) = response(&mut get);
        assert!(!head.contains("Connection: close"), "{head}");
    }

    #[test]
    fn an_idle_connection_is_closed_without_an_answer() {
        let server = echo_server();
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let _ = response(&mut s);
        let t = Instant::now();
        let mut rest = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = s.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
        assert!(t.elapsed() >= IDLE_DEADLINE - Duration::from_millis(500));
    }

    #[test]
    fn a_client_that_expects_100_continue_gets_it_before_sending_its_body() {
        let server = echo_server();
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
            .unwrap();
        let mut interim = [0u8; 25];
        s.read_exact(&mut interim).unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        s.write_all(b"abc").unwrap();
        let (head, _) = response(&mut s);
        assert!(head.contains("200") && head.contains("X-Len: 3"), "{head}");
    }

    #[test]
    fn a_doubtful_content_length_is_refused_and_the_connection_closed() {
        let server = echo_server();
        // two lengths that differ: the bytes after the head are never a second request
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 18\r\n\r\nGET /x HTTP/1.1\r\n\r\n")
            .unwrap();
        let (head, _) = response(&mut s);
        assert!(
            head.starts_with("HTTP/1.1 400") && head.contains("Connection: close"),
            "{head}"
        );
        assert!(closed(&mut s));
        for length in ["+5", "5, 6", "0x5", ""] {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.write_all(
                format!("POST / HTTP/1.1\r\nContent-Length: {length}\r\n\r\nabcde").as_bytes(),
            )
            .unwrap();
            let (head, _) = response(&mut s);
            assert!(head.starts_with("HTTP/1.1 400"), "{length}: {head}");
            assert!(closed(&mut s));
        }
        // the same length twice is one length
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\nab")
            .unwrap();
        let (head, _) = response(&mut s);
        assert!(head.contains("X-Len: 2"), "{head}");
        // and an HTTP/1.0 client that expects 100-continue is not sent one
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(b"POST / HTTP/1.0\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\nz")
            .unwrap();
        let (head, _) = response(&mut s);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }

    #[test]
    fn an_answer_sent_before_the_body_reaches_a_client_still_sending_it() {
        let server = echo_server();
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        // a client that sends its whole body before it reads the answer (the server
        // refuses the body unread: 413)
        let mut request = b"POST / HTTP/1.1\r\nContent-Length: 600000\r\n\r\n".to_vec();
        request.resize(request.len() + 600_000, b'x');
        let _ = s.write_all(&request);
        let (head, _) = response(&mut s);
        assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    }

    fn status(s: &mut TcpStream) -> String {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.lines().next().unwrap_or("").to_string()
    }

    #[test]
    fn slow_and_silent_clients_get_answers_and_never_hold_the_server() {
        let server = echo_server();
        let addr = server.addr;
        // silent: a connection that sends nothing; slow: a body promised and never sent;
        // huge: a length no buffer could hold
        let mut silent: Vec<TcpStream> =
            (0..8).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let mut slow: Vec<TcpStream> = (0..8)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"POST / HTTP/1.1\r\nContent-Length: 4000\r\n\r\nab")
                    .unwrap();
                s
            })
            .collect();
        let mut huge = TcpStream::connect(addr).unwrap();
        huge.write_all(b"POST / HTTP/1.1\r\nContent-Length: 1000000000000000\r\n\r\n")
            .unwrap();
        let mut ok = TcpStream::connect(addr).unwrap();
        ok.write_all(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
            .unwrap();
        assert!(
            status(&mut ok).contains("200"),
            "served while the others wait"
        );
        assert!(status(&mut huge).contains("413"));
        for s in &mut slow {
            assert!(status(s).contains("408"));
        }
        for s in &mut silent {
            assert!(status(s).contains("408"));
        }
        let mut chunked = TcpStream::connect(addr).unwrap();
        chunked
            .write_all(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        assert!(status(&mut chunked).contains("411"));
        let mut big_head = TcpStream::connect(addr).unwrap();
        let _ =
            big_head.write_all(format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD)).as_bytes());
        assert!(status(&mut big_head).contains("431"));
    }

    #[test]
    fn an_absolute_form_target_is_served_as_its_path() {
        assert_eq!(origin_form("/v1/x?a=1"), "/v1/x?a=1");
        assert_eq!(origin_form("http://127.0.0.1:7404/v1/x?a=1"), "/v1/x?a=1");
        assert_eq!(origin_form("HTTPS://host/p"), "/p");
        assert_eq!(origin_form("http://host"), "/");
        assert_eq!(origin_form("http://host?q"), "/");
        assert_eq!(origin_form("http:/"), "http:/");
        assert_eq!(origin_form("*"), "*");
        let server = serve("127.0.0.1:0".parse().unwrap(), "test", |r: Request| {
            let url = r.url.clone();
            r.respond(200, &[], url.as_bytes());
        })
        .unwrap();
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(b"GET http://gateway.example:7404/healthz?x=1 HTTP/1.1\r\nHost: gateway.example:7404\r\n\r\n")
            .unwrap();
        let (head, body) = response(&mut s);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, b"/healthz?x=1");
    }

    /// Sends `raw` on a new connection to `addr` and reads the whole answer until close.
    fn answer_to(addr: SocketAddr, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.write_all(raw);
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn the_transport_words_its_own_refusals_as_the_server_asks() {
        let places = |n: usize, hold: Option<Arc<std::sync::Barrier>>| {
            serve_with(
                "127.0.0.1:0".parse().unwrap(),
                "test",
                n,
                Refusals::Json,
                move |r: Request| {
                    if let Some(h) = &hold {
                        h.wait();
                    }
                    r.respond(200, &[], b"ok");
                },
            )
            .unwrap()
        };
        let json = places(MAX_CONNECTIONS, None);
        let text = echo_server();
        let body = |answer: &str| answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        for (raw, status, code) in [
            (&b"NOT HTTP\r\n\r\n"[..], "400", "request_malformed"),
            (
                format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD)).as_bytes(),
                "431",
                "headers_too_large",
            ),
        ] {
            let a = answer_to(json.addr, raw);
            assert!(a.starts_with(&format!("HTTP/1.1 {status}")), "{a}");
            assert!(a.contains("Content-Type: application/json\r\n"), "{a}");
            assert!(a.contains("Cache-Control: no-store\r\n"), "{a}");
            assert!(a.contains("Connection: close\r\n"), "{a}");
            let j: serde_json::Value = serde_json::from_str(&body(&a)).unwrap();
            assert_eq!(j["reason"], code, "{a}");
            assert!(!j["detail"].as_str().unwrap().is_empty());
            let t = answer_to(text.addr, raw);
            assert!(t.starts_with(&format!("HTTP/1.1 {status}")), "{t}");
            assert!(
                t.contains("Content-Type: text/plain; charset=utf-8\r\n"),
                "{t}"
            );
            assert!(body(&t).ends_with('\n') && body(&t).len() > 10, "{t}");
        }
        // one connection place, held by the first connection's handler until told
        let hold = Arc::new(std::sync::Barrier::new(2));
        let json = places(1, Some(hold.clone()));
        // every place taken: 503 at once, with Retry-After
        let mut first = TcpStream::connect(json.addr).unwrap();
        first.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        // (accepted in order: the place is the first connection's)
        let busy = answer_to(json.addr, b"GET / HTTP/1.1\r\n\r\n");
        assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
        assert!(busy.contains("Retry-After: 1\r\n"), "{busy}");
        let j: serde_json::Value = serde_json::from_str(&body(&busy)).unwrap();
        assert_eq!(j["reason"], "unavailable");
        hold.wait();
        let (head, b) = response(&mut first);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(b, b"ok");
    }
}
