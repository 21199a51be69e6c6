//! `isogate bench`, the messages section: on a lab already running, the `notices` channel
//! (court → internet) through the message API of each node (court on port base + 4,
//! internet on base + 5), with messages of 1 KiB that the lab's notices policy and schema
//! accept, in plain HTTP/1.1 over `std::net::TcpStream`, each thread on a persistent
//! connection of its own (the small client here, which `isogate demo` uses too).
//!
//! ```text
//!   bench POST ─► court API :N+4 ─► batch ═ link ═► internet log ─► API :N+5 ◄─ bench GET
//!   (POST instant, index in the body's "case")                 (instant the page arrives)
//! ```
//!
//! Two figures, each with the cores each node used meanwhile: messages per second (and
//! MiB/s) from the first POST of NDJSON batches of 100 to the last message readable on the
//! far side, beside the machine's limit; and the latency from POST to readable (p50, p99)
//! at a steady 1,000 messages/s, each posted alone (`application/json`).

use super::{BenchError, CpuUse, Lab, io_err, percentile};
use crate::cli::init;
use serde::Deserialize;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The size of each message body, in bytes.
const MESSAGE_BYTES: usize = 1024;
/// Messages in one NDJSON POST of the throughput figure.
const PER_POST: usize = 100;
/// NDJSON POSTs of the throughput figure.
const POSTS: usize = 500;
/// Threads posting at once in the throughput figure.
const POSTERS: usize = 8;
/// The steady rate of the latency figure, messages per second.
const LATENCY_RATE: u64 = 1000;
/// How long the latency figure posts, in seconds.
const LATENCY_SECS: u64 = 5;
/// Threads posting in the latency figure (each POST waits for the group commit of its
/// batch, so several are in flight at 1,000 messages/s).
const LATENCY_POSTERS: usize = 32;
/// Most messages one GET returns (the API's limit).
const PAGE: usize = 1000;
/// The long-poll wait of each GET, in seconds.
const WAIT_S: u64 = 5;
/// How long a figure may take before the bench gives up.
const DEADLINE: Duration = Duration::from_secs(300);
/// Largest HTTP response the client reads (a page of 1,000 messages of 1 KiB is ~1.2 MB).
const MAX_RESPONSE: u64 = 64 << 20;
/// Largest HTTP response head the client reads.
const MAX_HEAD: u64 = 16 << 10;
/// The channel measured.
const CHANNEL: &str = "notices";

/// One HTTP response: the status and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    /// The status code.
    pub(crate) status: u16,
    /// The body, as sent (at most the `Content-Length` bytes when one is given).
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy UTF-8), for messages.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A response head: the status, the `Content-Length` when given, and whether the server
/// closes the connection after it (`Connection: close`, or an HTTP/1.0 answer).
struct Head {
    status: u16,
    length: Option<usize>,
    close: bool,
}

/// Reads a response head (RFC 9112): status line and header fields, without the blank
/// line that ends them.
fn parse_head(head: &[u8]) -> io::Result<Head> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let head = std::str::from_utf8(head).map_err(|_| bad("a response head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(bad("not an HTTP/1.x status line"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| bad("no status code"))?;
    let mut parsed = Head {
        status,
        length: None,
        close: version != "HTTP/1.1",
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") {
            parsed.length = Some(
                value
                    .trim()
                    .parse()
                    .map_err(|_| bad("a Content-Length that is not a number"))?,
            );
        } else if name.eq_ignore_ascii_case("connection")
            && value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"))
        {
            parsed.close = true;
        }
    }
    Ok(parsed)
}

/// An HTTP/1.1 client of one server that keeps its connection open from one request to
/// the next (RFC 9112 §9.3), as HTTP libraries do: one per thread.
pub(crate) struct Client {
    addr: SocketAddr,
    /// The longest wait for each read or write.
    timeout: Duration,
    /// The kept connection and when its last answer came.
    conn: Option<(io::BufReader<TcpStream>, Instant)>,
}

/// How long a kept connection may have been idle and still be used: less than the
/// server's idle deadline (5 s), so that it is not closed under a request.
const REUSE_IDLE: Duration = Duration::from_secs(4);

impl Client {
    /// A client of the server at `addr`, waiting at most `timeout` for each read or write.
    pub(crate) fn new(addr: SocketAddr, timeout: Duration) -> Client {
        Client {
            addr,
            timeout,
            conn: None,
        }
    }

    /// Sends one request (`Content-Length` when a body is given) and reads its whole
    /// response. A connection idle for [`REUSE_IDLE`] or more is not used again. A GET on
    /// a kept connection that the server closed meanwhile fails before any byte of the
    /// answer comes, and is then sent once more on a new connection; a POST is never sent
    /// twice (RFC 9112 §9.3.1: it may have been taken).
    ///
    /// # Errors
    /// The connection or the exchange fails, or the response is malformed or over 64 MiB.
    pub(crate) fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> io::Result<Response> {
        let mut out = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if let Some(t) = content_type {
            out.push_str(&format!("Content-Type: {t}\r\n"));
        }
        if method != "GET" || !body.is_empty() {
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(body);
        if let Some((conn, last)) = self.conn.take()
            && last.elapsed() < REUSE_IDLE
        {
            match exchange(conn, &out) {
                Ok((r, kept)) => {
                    self.conn = kept.map(|c| (c, Instant::now()));
                    return Ok(r);
                }
                Err(Exchange::Stale) if method == "GET" => {}
                Err(Exchange::Stale) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection without an answer",
                    ));
                }
                Err(Exchange::Failed(e)) => return Err(e),
            }
        }
        let s = TcpStream::connect_timeout(&self.addr, self.timeout)?;
        s.set_read_timeout(Some(self.timeout))?;
        s.set_write_timeout(Some(self.timeout))?;
        s.set_nodelay(true)?;
        match exchange(io::BufReader::new(s), &out) {
            Ok((r, kept)) => {
                self.conn = kept.map(|c| (c, Instant::now()));
                Ok(r)
            }
            Err(Exchange::Stale) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection without an answer",
            )),
            Err(Exchange::Failed(e)) => Err(e),
        }
    }
}

/// Why an exchange on a connection failed.
enum Exchange {
    /// Before any byte of the answer: the server had closed the connection.
    Stale,
    /// Anything else.
    Failed(io::Error),
}

/// Sends `request` on `conn` and reads the response; the connection back when the server
/// keeps it.
fn exchange(
    mut conn: io::BufReader<TcpStream>,
    request: &[u8],
) -> Result<(Response, Option<io::BufReader<TcpStream>>), Exchange> {
    use std::io::BufRead;
    let stale = |e: io::Error| match e.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof => Exchange::Stale,
        _ => Exchange::Failed(e),
    };
    conn.get_mut().write_all(request).map_err(stale)?;
    let mut first = true;
    let parsed = loop {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let before = head.len();
            let fresh = first && before == 0;
            let n = (&mut conn)
                .take(MAX_HEAD)
                .read_until(b'\n', &mut head)
                .map_err(|e| if fresh { stale(e) } else { Exchange::Failed(e) })?;
            if n == 0 {
                return Err(if fresh {
                    Exchange::Stale
                } else {
                    Exchange::Failed(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection closed inside a response head",
                    ))
                });
            }
            if head.len() as u64 > MAX_HEAD {
                return Err(Exchange::Failed(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a response head over 16 KiB",
                )));
            }
        }
        first = false;
        let parsed = parse_head(&head[..head.len() - 4]).map_err(Exchange::Failed)?;
        // an interim answer (1xx) comes before the final one (RFC 9110 §15.2)
        if parsed.status >= 200 {
            break parsed;
        }
    };
    let too_large = || {
        Exchange::Failed(io::Error::new(
            io::ErrorKind::InvalidData,
            "a response over 64 MiB",
        ))
    };
    let mut body = Vec::new();
    // 204 and 304 have no body, whatever their head says (RFC 9112 §6.3)
    let length = if matches!(parsed.status, 204 | 304) {
        Some(0)
    } else {
        parsed.length
    };
    match length {
        Some(n) if n as u64 > MAX_RESPONSE => return Err(too_large()),
        Some(n) => {
            body.resize(n, 0);
            conn.read_exact(&mut body).map_err(Exchange::Failed)?;
        }
        None => {
            // no length: the body runs to the connection's end
            (&mut conn)
                .take(MAX_RESPONSE + 1)
                .read_to_end(&mut body)
                .map_err(Exchange::Failed)?;
            if body.len() as u64 > MAX_RESPONSE {
                return Err(too_large());
            }
        }
    }
    let keep = length.is_some() && !parsed.close;
    let response = Response {
        status: parsed.status,
        body,
    };
    Ok((response, keep.then_some(conn)))
}

/// One message of a page of `GET /v1/channels/{channel}/messages`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PageMessage {
    /// The message id (hex).
    pub(crate) id: String,
    /// Its place in the log, `B.I`.
    pub(crate) cursor: String,
    /// The message itself.
    pub(crate) body: serde_json::Value,
}

/// A page of `GET /v1/channels/{channel}/messages`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Page {
    /// The messages, oldest first.
    pub(crate) messages: Vec<PageMessage>,
    /// The cursor to read on from; `None` when the page is empty.
    pub(crate) next: Option<String>,
}

/// Reads one page of `channel`'s log from the message API at `api`, after `after` (from
/// the start when `None`), at most `limit` messages, waiting up to `wait_s` seconds for one.
///
/// # Errors
/// The request fails, the status is not 200, or the body is not a page.
pub(crate) fn read_page(
    api: SocketAddr,
    channel: &str,
    after: Option<&str>,
    limit: usize,
    wait_s: u64,
) -> io::Result<Page> {
    Client::new(api, Duration::from_secs(wait_s + 30)).read_page(channel, after, limit, wait_s)
}

/// Posts `body` to `channel` at the message API at `api`: `application/json` (one message)
/// or `application/x-ndjson` (one per line). Returns the response, whatever its status.
///
/// # Errors
/// The request fails.
pub(crate) fn post(
    api: SocketAddr,
    channel: &str,
    ndjson: bool,
    body: &[u8],
) -> io::Result<Response> {
    Client::new(api, Duration::from_secs(30)).post(channel, ndjson, body)
}

impl Client {
    /// [`read_page`] on this client's connection (its timeout must exceed `wait_s`).
    ///
    /// # Errors
    /// The request fails, the status is not 200, or the body is not a page.
    pub(crate) fn read_page(
        &mut self,
        channel: &str,
        after: Option<&str>,
        limit: usize,
        wait_s: u64,
    ) -> io::Result<Page> {
        let mut path = format!("/v1/channels/{channel}/messages?limit={limit}&wait={wait_s}");
        if let Some(a) = after {
            path.push_str(&format!("&after={a}"));
        }
        let r = self.request("GET", &path, None, b"")?;
        if r.status != 200 {
            return Err(io::Error::other(format!(
                "GET {path}: {} {}",
                r.status,
                r.text()
            )));
        }
        serde_json::from_slice(&r.body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// [`post`] on this client's connection.
    ///
    /// # Errors
    /// The request fails.
    pub(crate) fn post(
        &mut self,
        channel: &str,
        ndjson: bool,
        body: &[u8],
    ) -> io::Result<Response> {
        let kind = if ndjson {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        self.request(
            "POST",
            &format!("/v1/channels/{channel}/messages"),
            Some(kind),
            body,
        )
    }
}

/// The bench's message number `index`: a court notice of exactly 1 KiB of compact JSON
/// that the lab's `notices` schema and policy accept (`"case":"bench-INDEX"`, ASCII text
/// with no personal data, marking or keyword).
pub(crate) fn notice(index: u64) -> String {
    let frame = |text: &str| {
        serde_json::json!({"type": "status", "case": format!("bench-{index}"), "text": text})
            .to_string()
    };
    let room = MESSAGE_BYTES.saturating_sub(frame("").len());
    let filler = "Notice of the case status for the bench run. ";
    let text: String = filler.chars().cycle().take(room).collect();
    frame(&text)
}

/// The index of a bench notice (its `case`), if the body is one.
pub(crate) fn index_of(body: &serde_json::Value) -> Option<u64> {
    body.get("case")?
        .as_str()?
        .strip_prefix("bench-")?
        .parse()
        .ok()
}

/// Waits until the message API of both nodes answers (the internet node's GET of
/// `notices` with 200), up to 30 s.
fn wait_ready(internet: SocketAddr) -> Result<(), BenchError> {
    let t = Instant::now();
    loop {
        if read_page(internet, CHANNEL, None, 1, 0).is_ok() {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(30) {
            return Err(BenchError::Timeout(format!(
                "the message API at {internet} to answer"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads `channel` on from `cursor` until the bench notices `first..first + n` have all
/// been read (others are skipped), or the deadline; returns the instant each was read
/// (indexed from `first`) and leaves `cursor` after the last message read.
fn read_all(
    api: SocketAddr,
    cursor: &mut Option<String>,
    first: u64,
    n: usize,
    stop: &AtomicBool,
) -> Result<Vec<Option<Instant>>, BenchError> {
    let mut seen = vec![None; n];
    let mut left = n;
    let mut client = Client::new(api, Duration::from_secs(WAIT_S + 30));
    let t = Instant::now();
    while left > 0 {
        if t.elapsed() > DEADLINE || stop.load(Ordering::Relaxed) {
            return Err(BenchError::Timeout(format!(
                "{left} of {n} messages to be readable on the internet node"
            )));
        }
        let page = client
            .read_page(CHANNEL, cursor.as_deref(), PAGE, WAIT_S)
            .map_err(io_err("reading messages from the internet node"))?;
        let now = Instant::now();
        for m in &page.messages {
            let Some(i) = index_of(&m.body).and_then(|i| i.checked_sub(first)) else {
                continue;
            };
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| seen.get_mut(i))
                && slot.is_none()
            {
                *slot = Some(now);
                left -= 1;
            }
        }
        if let Some(next) = page.next {
            *cursor = Some(next);
        }
    }
    Ok(seen)
}

/// Posts `body` and checks the API took it (202).
fn post_ok(client: &mut Client, ndjson: bool, body: &[u8]) -> Result<(), BenchError> {
    let r = client
        .post(CHANNEL, ndjson, body)
        .map_err(io_err("posting messages to the court node"))?;
    if r.status == 202 {
        Ok(())
    } else {
        Err(io_err("posting messages to the court node")(
            io::Error::other(format!("{} {}", r.status, r.text())),
        ))
    }
}

/// Runs the messages section on `lab` and prints its two figures; `limit` is the
/// machine's limit for this link, in MiB/s (as the file figures use).
pub(super) fn run(lab: &Lab, limit: f64) -> Result<(), BenchError> {
    let court = SocketAddr::from(([127, 0, 0, 1], init::messages_port("court", lab.port_base)));
    let internet = SocketAddr::from((
        [127, 0, 0, 1],
        init::messages_port("internet", lab.port_base),
    ));
    wait_ready(internet)?;
    let mut cursor = None;
    throughput(lab, court, internet, &mut cursor, limit)?;
    super::settle();
    latency(lab, court, internet, &mut cursor)
}

/// Messages per second, NDJSON POSTs of 100 by several threads, to all readable.
fn throughput(
    lab: &Lab,
    court: SocketAddr,
    internet: SocketAddr,
    cursor: &mut Option<String>,
    limit: f64,
) -> Result<(), BenchError> {
    let n = POSTS * PER_POST;
    let bodies: Vec<Vec<u8>> = (0..POSTS)
        .map(|p| {
            let mut b = String::with_capacity(PER_POST * (MESSAGE_BYTES + 1));
            for i in 0..PER_POST {
                b.push_str(&notice((p * PER_POST + i) as u64));
                b.push('\n');
            }
            b.into_bytes()
        })
        .collect();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let cpu = CpuUse::start(lab);
    let t0 = Instant::now();
    let (read, posted) = std::thread::scope(|s| {
        let reader = s.spawn(|| read_all(internet, cursor, 0, n, &stop));
        let posters: Vec<_> = (0..POSTERS)
            .map(|_| {
                s.spawn(|| -> Result<(), BenchError> {
                    let mut client = Client::new(court, Duration::from_secs(30));
                    loop {
                        let p = next.fetch_add(1, Ordering::Relaxed);
                        let Some(body) = bodies.get(p) else {
                            return Ok(());
                        };
                        post_ok(&mut client, true, body)?;
                    }
                })
            })
            .collect();
        let mut posted = Ok(());
        for p in posters {
            let r = p
                .join()
                .unwrap_or_else(|_| Err(BenchError::Timeout("a posting thread to finish".into())));
            if posted.is_ok() {
                posted = r;
            }
        }
        if posted.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(BenchError::Timeout("the reading thread to finish".into())));
        (read, posted)
    });
    posted?;
    let seen = read?;
    let last = seen.iter().flatten().max().copied().unwrap_or(t0);
    let took = last.duration_since(t0).as_secs_f64().max(1e-9);
    let mib = (n * MESSAGE_BYTES) as f64 / (1 << 20) as f64 / took;
    println!(
        "  {n} messages of 1 KiB, NDJSON of {PER_POST}, POST to readable {:6.2} s = {:7.0} msg/s, {mib:6.1} MiB/s ({:.3} x limit; {})",
        took,
        n as f64 / took,
        mib / limit,
        cpu.cores()
    );
    Ok(())
}

/// p50 and p99 from POST to readable at a steady 1,000 messages/s, each posted alone.
fn latency(
    lab: &Lab,
    court: SocketAddr,
    internet: SocketAddr,
    cursor: &mut Option<String>,
) -> Result<(), BenchError> {
    let n = (LATENCY_RATE * LATENCY_SECS) as usize;
    let first = (POSTS * PER_POST) as u64;
    let bodies: Vec<String> = (0..n).map(|i| notice(first + i as u64)).collect();
    let sent: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(u64::MAX)).collect();
    // when each POST was answered 202 (the message durable on the sending node)
    let durable: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(u64::MAX)).collect();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let period_ns = 1_000_000_000 / LATENCY_RATE;
    let cpu = CpuUse::start(lab);
    let t0 = Instant::now();
    let (read, posted) = std::thread::scope(|s| {
        let reader = s.spawn(|| read_all(internet, cursor, first, n, &stop));
        let posters: Vec<_> = (0..LATENCY_POSTERS)
            .map(|_| {
                s.spawn(|| -> Result<(), BenchError> {
                    let mut client = Client::new(court, Duration::from_secs(30));
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(body) = bodies.get(i) else {
                            return Ok(());
                        };
                        let due = t0 + Duration::from_nanos(period_ns * i as u64);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let at = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
                        if let Some(slot) = sent.get(i) {
                            slot.store(at, Ordering::Relaxed);
                        }
                        post_ok(&mut client, false, body.as_bytes())?;
                        let at = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
                        if let Some(slot) = durable.get(i) {
                            slot.store(at, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        let mut posted = Ok(());
        for p in posters {
            let r = p
                .join()
                .unwrap_or_else(|_| Err(BenchError::Timeout("a posting thread to finish".into())));
            if posted.is_ok() {
                posted = r;
            }
        }
        if posted.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(BenchError::Timeout("the reading thread to finish".into())));
        (read, posted)
    });
    posted?;
    let seen = read?;
    // milliseconds from `from` to `to` of each message that has both
    let span = |from: &dyn Fn(usize) -> Option<f64>, to: &dyn Fn(usize) -> Option<f64>| {
        let mut ms: Vec<f64> = (0..n)
            .filter_map(|i| Some((to(i)? - from(i)?).max(0.0) / 1e6))
            .collect();
        ms.sort_by(f64::total_cmp);
        ms
    };
    let stamp = |v: &[AtomicU64], i: usize| {
        let at = v.get(i)?.load(Ordering::Relaxed);
        (at != u64::MAX).then_some(at as f64)
    };
    let posted_at = |i: usize| stamp(&sent, i);
    let durable_at = |i: usize| stamp(&durable, i);
    let read_at = |i: usize| {
        let got = seen.get(i)?.as_ref()?;
        Some(got.duration_since(t0).as_nanos() as f64)
    };
    let total = span(&posted_at, &read_at);
    let answered = span(&posted_at, &durable_at);
    let across = span(&durable_at, &read_at);
    println!(
        "  {n} messages at {LATENCY_RATE}/s, POST to readable   p50 {:6.2} ms  p99 {:6.2} ms  ({})",
        percentile(&total, 0.50),
        percentile(&total, 0.99),
        cpu.cores()
    );
    println!(
        "    of which POST to 202 (durable)   p50 {:6.2} ms  p99 {:6.2} ms;  202 to readable   p50 {:6.2} ms  p99 {:6.2} ms",
        percentile(&answered, 0.50),
        percentile(&answered, 0.99),
        percentile(&across, 0.50),
        percentile(&across, 0.99),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_notices_are_1_kib_and_pass_the_lab_schema() {
        let schema: serde_json::Value = serde_json::from_str(init::SCHEMA_NOTICES).unwrap();
        let validator = jsonschema::draft202012::new(&schema).unwrap();
        for i in [0, 7, 49_999, 54_999, u64::MAX] {
            let n = notice(i);
            assert_eq!(n.len(), MESSAGE_BYTES, "{n}");
            let v: serde_json::Value = serde_json::from_str(&n).unwrap();
            assert!(validator.is_valid(&v), "{n}");
            assert_eq!(index_of(&v), Some(i));
            assert!(!n.contains('\n'), "one NDJSON line");
        }
        assert_eq!(index_of(&serde_json::json!({"case": "other-1"})), None);
        assert_eq!(index_of(&serde_json::json!({"text": "x"})), None);
    }

    #[test]
    fn response_heads_are_read_with_status_length_and_close() {
        let h = parse_head(
            b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\ncontent-length: 12",
        )
        .unwrap();
        assert_eq!((h.status, h.length, h.close), (202, Some(12), false));
        let h = parse_head(b"HTTP/1.0 404 Not Found").unwrap();
        assert_eq!((h.status, h.length, h.close), (404, None, true));
        let h = parse_head(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close").unwrap();
        assert!(h.close);
        for bad in [
            &b"SSH-2.0 x"[..],
            b"HTTP/1.1 abc",
            b"HTTP/1.1 999 x",
            b"HTTP/1.1 200 OK\r\nContent-Length: many",
            b"HTTP/1.1 200 \xff",
        ] {
            assert!(
                parse_head(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn pages_are_read_as_the_api_writes_them() {
        let page: Page = serde_json::from_str(
            r#"{"messages":[{"id":"0a","cursor":"1.0","body":{"case":"bench-3"}}],"next":"1.0"}"#,
        )
        .unwrap();
        assert_eq!(page.messages.len(), 1);
        assert_eq!(page.messages[0].cursor, "1.0");
        assert_eq!(page.messages[0].id, "0a");
        assert_eq!(index_of(&page.messages[0].body), Some(3));
        assert_eq!(page.next.as_deref(), Some("1.0"));
        let empty: Page = serde_json::from_str(r#"{"messages":[],"next":null}"#).unwrap();
        assert!(empty.messages.is_empty() && empty.next.is_none());
    }

    #[test]
    fn a_client_keeps_its_connection_and_never_sends_a_post_twice() {
        let listener = std::net::TcpListener::bind("127.0.0.1:28185").unwrap();
        let addr = listener.local_addr().unwrap();
        // reads one whole request from `c`: its head and its Content-Length of body
        fn one(c: &mut TcpStream) -> String {
            let mut got = Vec::new();
            let mut byte = [0u8; 1];
            while !got.ends_with(b"\r\n\r\n") {
                assert_eq!(c.read(&mut byte).unwrap(), 1);
                got.push(byte[0]);
            }
            let head = String::from_utf8(got).unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            let mut body = vec![0u8; len];
            c.read_exact(&mut body).unwrap();
            head
        }
        let server = std::thread::spawn(move || {
            // the first connection serves two posts, then the server closes it
            let (mut c, _) = listener.accept().unwrap();
            let first = one(&mut c);
            c.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 11\r\n\r\n{\"id\":\"0\"}\n")
                .unwrap();
            one(&mut c);
            c.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 11\r\n\r\n{\"id\":\"1\"}\n")
                .unwrap();
            drop(c);
            // the GET after it comes on a new connection: an interim answer, then the
            // page, and this connection closes
            let (mut c, _) = listener.accept().unwrap();
            let get = one(&mut c);
            let page = br#"{"messages":[],"next":null}"#;
            c.write_all(
                format!(
                    "HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                    page.len()
                )
                .as_bytes(),
            )
            .unwrap();
            c.write_all(page).unwrap();
            (first, get)
        });
        let mut client = Client::new(addr, Duration::from_secs(30));
        for i in 0..2 {
            let r = client.post("notices", true, b"{}\n").unwrap();
            assert_eq!((r.status, r.text()), (202, format!("{{\"id\":\"{i}\"}}\n")));
        }
        std::thread::sleep(Duration::from_millis(100));
        // the kept connection is closed: a post is not sent again on another
        assert!(client.post("notices", true, b"{}\n").is_err());
        // a read is
        let page = client.read_page("notices", None, 1, 0).unwrap();
        assert!(page.messages.is_empty());
        assert!(client.conn.is_none(), "closed after Connection: close");
        let (head, get) = server.join().unwrap();
        assert!(
            head.starts_with("POST /v1/channels/notices/messages HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.contains("Content-Type: application/x-ndjson\r\n"),
            "{head}"
        );
        assert!(head.contains("Content-Length: 3\r\n"), "{head}");
        assert!(get.starts_with("GET /v1/channels/notices/messages?limit=1&wait=0 HTTP/1.1"));
        // nothing listens there any more
        assert!(read_page(addr, "notices", None, 1, 0).is_err());
    }
}
