//! The node's small HTTP/1.1 transport on std sockets, for the web console and the status
//! endpoint (`/metrics`, `/healthz`), one request per connection: every read has a socket
//! timeout and every request a deadline, so a slow or silent client holds one connection
//! thread for a few seconds at most, never the server. The request head is parsed by
//! `httparse`; this module only frames (caps, deadlines, Content-Length, `Connection:
//! close`). (tiny_http 0.12, used before, sets no socket timeout, and on dropping a request
//! whose body was not read it reads the rest into a buffer of the announced Content-Length:
//! one request announcing 10^15 bytes aborted the node.)
//!
//! ```text
//!  TcpListener ─► accept thread ─► at most MAX_CONNECTIONS threads (beyond: 503 at once)
//!    ─► head: ≤ MAX_HEAD bytes within HEAD_DEADLINE (httparse) ─► else 431 / 408 / 400
//!    ─► the handler: checks the head, then reads the body it allows (≤ its cap, within
//!       BODY_DEADLINE) or refuses unread ─► response, `Connection: close`, closed
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
/// Longest wait for one read or write on a socket.
pub const IO_STEP: Duration = Duration::from_secs(1);
/// Longest time to write an answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at the same time.
pub const MAX_CONNECTIONS: usize = 64;

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

/// A request whose head is read; its body is still on the wire.
#[derive(Debug)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The request target (path and query), as sent.
    pub url: String,
    /// Headers, in order (names as sent).
    pub headers: Vec<(String, String)>,
    /// The client's address.
    pub remote: IpAddr,
    stream: TcpStream,
    /// Body bytes that came with the head.
    early: Vec<u8>,
    head_done: Instant,
}

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// No Content-Length (or a Transfer-Encoding): 411.
    NoLength,
    /// Longer than allowed: 413.
    TooLarge,
    /// Not all there within [`BODY_DEADLINE`], or the client went away: 408.
    Slow,
}

impl Request {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The announced body length: `Ok(None)` for none, `Err` for a Transfer-Encoding or a
    /// Content-Length that is not a number.
    pub fn body_length(&self) -> Result<Option<usize>, BodyError> {
        if self.header("Transfer-Encoding").is_some() {
            return Err(BodyError::NoLength);
        }
        match self.header("Content-Length") {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(|n| Some(usize::try_from(n).unwrap_or(usize::MAX)))
                .map_err(|_| BodyError::NoLength),
        }
    }

    /// Reads the body, of at most `cap` bytes, within [`BODY_DEADLINE`] of the head.
    ///
    /// # Errors
    /// [`BodyError`]: no length, too large, or too slow.
    pub fn read_body(&mut self, cap: usize) -> Result<Vec<u8>, BodyError> {
        let length = self.body_length()?.unwrap_or(0);
        if length > cap {
            return Err(BodyError::TooLarge);
        }
        let mut body = std::mem::take(&mut self.early);
        body.truncate(length);
        let mut chunk = [0u8; 4096];
        while body.len() < length {
            if self.head_done.elapsed() > BODY_DEADLINE {
                return Err(BodyError::Slow);
            }
            let want = (length - body.len()).min(chunk.len());
            match self.stream.read(&mut chunk[..want]) {
                Ok(0) => return Err(BodyError::Slow),
                Ok(n) => body.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(e) if is_timeout(&e) => continue,
                Err(_) => return Err(BodyError::Slow),
            }
        }
        Ok(body)
    }

    /// Sends the answer and closes the connection (a body left unread is never read).
    pub fn respond(mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        let head_only = self.method == Method::Head;
        let _ = write_response(&mut self.stream, status, headers, body, head_only);
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
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
) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        // our own values; a line break would split the header
        if v.contains(['\r', '\n']) || k.contains(['\r', '\n', ':']) {
            continue;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(body);
    }
    stream.write_all(&bytes)?;
    stream.flush()
}

/// Reads a request head from `stream` within [`HEAD_DEADLINE`]; `Err(status)` to answer
/// with when it cannot.
fn read_head(mut stream: TcpStream, remote: IpAddr) -> Result<Request, (TcpStream, u16)> {
    let start = Instant::now();
    let mut buf: Vec<u8> = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    loop {
        if start.elapsed() > HEAD_DEADLINE {
            return Err((stream, 408));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err((stream, 400)),
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) if is_timeout(&e) => continue,
            Err(_) => return Err((stream, 400)),
        }
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
                let url = parsed.path.unwrap_or("/").to_string();
                let headers = parsed
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let early = buf.get(len..).unwrap_or_default().to_vec();
                return Ok(Request {
                    method,
                    url,
                    headers,
                    remote,
                    stream,
                    early,
                    head_done: Instant::now(),
                });
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                return Err((stream, 431));
            }
            Err(_) => return Err((stream, 400)),
        }
    }
}

/// A running server; stops accepting when dropped (connections under way finish within
/// their deadlines).
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // wake the accept thread
        let _ = TcpStream::connect_timeout(&self.addr, IO_STEP);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
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

/// Listens on `addr` and calls `handle` for each request, on a thread per connection (at
/// most [`MAX_CONNECTIONS`]); `busy` answers (status, headers, body) when they are all taken.
///
/// # Errors
/// The address cannot be bound, or the accept thread cannot start.
pub fn serve<H>(addr: SocketAddr, name: &str, handle: H) -> std::io::Result<Server>
where
    H: Fn(Request) + Send + Sync + 'static,
{
    serve_with(addr, name, MAX_CONNECTIONS, handle)
}

/// [`serve`] with at most `max_connections` served at the same time (a server whose
/// handlers wait, such as the message API's long polls, needs more than the console).
///
/// # Errors
/// The address cannot be bound, or the accept thread cannot start.
pub fn serve_with<H>(
    addr: SocketAddr,
    name: &str,
    max_connections: usize,
    handle: H,
) -> std::io::Result<Server>
where
    H: Fn(Request) + Send + Sync + 'static,
{
    let listener = TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let handle = Arc::new(handle);
    let open = Arc::new(AtomicUsize::new(0));
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
                    let _ = write_response(&mut stream, 503, &[], b"busy: try again\n", false);
                    continue;
                }
                let place = Place(open.clone());
                let h = handle.clone();
                let spawned = std::thread::Builder::new()
                    .name(conn_name.clone())
                    .stack_size(512 * 1024)
                    .spawn(move || {
                        let _place = place;
                        let remote = stream
                            .peer_addr()
                            .map(|a| a.ip())
                            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
                        match read_head(stream, remote) {
                            Ok(r) => h(r),
                            Err((mut stream, status)) => {
                                let _ = write_response(&mut stream, status, &[], b"", false);
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
            }
        })
        .unwrap()
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
}
