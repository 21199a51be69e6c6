//! The antivirus client: clamd's `zINSTREAM` protocol over a Unix or TCP socket.
//!
//! The content is streamed to clamd in length-prefixed chunks and clamd answers with one
//! NUL-terminated line: clean, a signature name, or an error. Every blocking operation has a
//! timeout and a whole scan has an overall deadline that grows with the bytes sent, so a
//! stalled or vanished clamd is an error, never a hang. An error is never a verdict: the caller
//! refuses what could not be scanned.

use crate::policy::antivirus::ClamdAddr;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Largest chunk of content sent in one INSTREAM frame.
pub const CHUNK_LEN: usize = 256 * 1024;

/// Longest reply accepted from clamd; real replies are a few dozen bytes.
const MAX_REPLY: usize = 4096;

/// The overall deadline of a scan grows by one timeout per this many bytes sent.
const BYTES_PER_TIMEOUT: u64 = 1 << 20;

/// The reply clamd sends, before closing the connection, when a stream exceeds StreamMaxLength.
const SIZE_LIMIT_REPLY: &str = "INSTREAM size limit exceeded. ERROR";

/// clamd's verdict on a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanResult {
    /// No signature matched.
    Clean,
    /// A signature matched; its name as clamd reports it (signatures from a database that is
    /// not official carry the suffix `.UNOFFICIAL`).
    Found(String),
}

/// Why a scan or a ping did not give a verdict.
#[derive(Debug, Error)]
pub enum ClamdError {
    /// The socket could not be opened: clamd is not running, not listening there, or the host
    /// does not resolve or answer in time.
    #[error("cannot connect to clamd at {addr}: {source}")]
    Connect {
        /// Where clamd was expected.
        addr: ClamdAddr,
        /// The connect error.
        source: io::Error,
    },
    /// Reading the content, sending it, or reading the reply failed, for instance because
    /// clamd closed the connection without an answer.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The I/O error.
        source: io::Error,
    },
    /// clamd did not take the content or did not answer within the timeout.
    #[error("clamd timed out {op} after {waited:?}")]
    Timeout {
        /// What was being done.
        op: &'static str,
        /// Time since the connection was opened.
        waited: Duration,
    },
    /// clamd refused the stream as longer than its `StreamMaxLength`.
    #[error("clamd refused the stream: INSTREAM size limit exceeded (clamd's StreamMaxLength)")]
    SizeLimit,
    /// clamd answered with an error other than the size limit, or with a reply this client
    /// does not understand.
    #[error("unexpected reply from clamd: {0:?}")]
    Reply(String),
}

/// A clamd client. Each call opens its own connection, so one `Clamd` may be shared by threads.
#[derive(Debug, Clone)]
pub struct Clamd {
    addr: ClamdAddr,
    timeout: Duration,
}

/// An open connection to clamd.
enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Conn {
    fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.set_read_timeout(Some(t)),
            Conn::Tcp(s) => s.set_read_timeout(Some(t)),
        }
    }

    fn set_write_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.set_write_timeout(Some(t)),
            Conn::Tcp(s) => s.set_write_timeout(Some(t)),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.flush(),
            Conn::Tcp(s) => s.flush(),
        }
    }
}

/// One scan or ping: the connection, when it started and its current deadline.
struct Session {
    conn: Conn,
    start: Instant,
    deadline: Instant,
    timeout: Duration,
}

impl Session {
    /// Time left before the deadline; `Timeout` once it has passed.
    fn remaining(&self, op: &'static str) -> Result<Duration, ClamdError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timed_out(op));
        }
        Ok(left)
    }

    fn timed_out(&self, op: &'static str) -> ClamdError {
        ClamdError::Timeout {
            op,
            waited: self.start.elapsed(),
        }
    }

    /// Writes all of `bytes` with a write timeout of one timeout or the time left, if less.
    fn send(&mut self, bytes: &[u8], op: &'static str) -> Result<(), io::Error> {
        let left = self
            .remaining(op)
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?;
        self.conn.set_write_timeout(left.min(self.timeout))?;
        self.conn.write_all(bytes)
    }

    /// Reads up to the NUL that ends clamd's reply, or to the end of the connection, waiting
    /// until the deadline (clamd answers only once it has scanned everything). A reset after
    /// part of a reply keeps the part.
    fn read_reply(&mut self) -> Result<String, ClamdError> {
        const OP: &str = "waiting for clamd's reply";
        let mut reply = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            let left = self.remaining(OP)?;
            self.conn
                .set_read_timeout(left)
                .map_err(|source| ClamdError::Io {
                    op: "setting the read timeout",
                    source,
                })?;
            match self.conn.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    reply.extend_from_slice(&buf[..n]);
                    if reply.contains(&0) {
                        break;
                    }
                    if reply.len() > MAX_REPLY {
                        return Err(ClamdError::Reply(format!(
                            "{}…",
                            decode(&reply[..MAX_REPLY])
                        )));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(self.timed_out(OP)),
                Err(_) if !reply.is_empty() => break,
                Err(source) => {
                    return Err(ClamdError::Io {
                        op: "reading clamd's reply",
                        source,
                    });
                }
            }
        }
        if reply.is_empty() {
            return Err(ClamdError::Io {
                op: "reading clamd's reply",
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "clamd closed the connection without a reply",
                ),
            });
        }
        let end = reply.iter().position(|&b| b == 0).unwrap_or(reply.len());
        Ok(decode(&reply[..end]))
    }
}

impl Clamd {
    /// A client for clamd at `addr`. `timeout` bounds connecting, every write and a ping; a
    /// whole scan may take one `timeout` plus one more per MiB of content. A zero timeout
    /// counts as one millisecond. (Connecting to a Unix socket does not block in practice.)
    pub fn new(addr: ClamdAddr, timeout: Duration) -> Clamd {
        Clamd {
            addr,
            timeout: timeout.max(Duration::from_millis(1)),
        }
    }

    /// Where this client connects.
    pub fn addr(&self) -> &ClamdAddr {
        &self.addr
    }

    /// The timeout of each operation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Streams `content` to clamd with `zINSTREAM` in chunks of at most `CHUNK_LEN` bytes, each
    /// prefixed with its length as a big-endian u32 and ended by a zero length, then reads the
    /// NUL-terminated reply.
    ///
    /// Connecting and every write have the client's timeout; the whole scan, reading the
    /// content and waiting for clamd's verdict included, must end within one timeout plus one
    /// more per MiB sent. When clamd closes the connection early (it does when the stream
    /// exceeds its StreamMaxLength) the reply it sent first decides the error.
    ///
    /// Replies: `stream: OK` is `Clean`, `stream: <name> FOUND` is `Found(name)`,
    /// `INSTREAM size limit exceeded. ERROR` is `SizeLimit`, anything else is `Reply`.
    pub fn scan(&self, content: &mut dyn Read) -> Result<ScanResult, ClamdError> {
        const SEND: &str = "sending the content to clamd";
        let mut session = self.connect()?;
        let mut frame = vec![0u8; 4 + CHUNK_LEN];
        if let Err(e) = session.send(b"zINSTREAM\0", SEND) {
            return Err(self.after_write_error(&mut session, e, SEND));
        }
        let mut sent: u64 = 0;
        loop {
            let n = fill(content, &mut frame[4..]).map_err(|source| ClamdError::Io {
                op: "reading the content to scan",
                source,
            })?;
            // n <= CHUNK_LEN, which fits in a u32.
            let len = u32::try_from(n).unwrap_or(u32::MAX);
            frame[..4].copy_from_slice(&len.to_be_bytes());
            if let Err(e) = session.send(&frame[..4 + n], SEND) {
                return Err(self.after_write_error(&mut session, e, SEND));
            }
            if n == 0 {
                break;
            }
            sent = sent.saturating_add(n as u64);
            session.deadline = deadline_after(session.start, self.budget(sent));
        }
        let reply = session.read_reply()?;
        let verdict = parse_reply(&reply);
        tracing::debug!(
            addr = %self.addr,
            bytes = sent,
            elapsed_ms = session.start.elapsed().as_millis() as u64,
            reply = %reply,
            "clamd scan"
        );
        verdict
    }

    /// Sends `zPING` and expects `PONG`.
    pub fn ping(&self) -> Result<(), ClamdError> {
        const SEND: &str = "sending PING to clamd";
        let mut session = self.connect()?;
        if let Err(e) = session.send(b"zPING\0", SEND) {
            return Err(self.after_write_error(&mut session, e, SEND));
        }
        match session.read_reply()? {
            r if r == "PONG" => Ok(()),
            r => Err(ClamdError::Reply(r)),
        }
    }

    /// The overall time a scan may take once `sent` bytes have been streamed.
    fn budget(&self, sent: u64) -> Duration {
        let steps = u32::try_from(sent / BYTES_PER_TIMEOUT).unwrap_or(u32::MAX);
        self.timeout.saturating_mul(steps.saturating_add(1))
    }

    fn connect(&self) -> Result<Session, ClamdError> {
        let start = Instant::now();
        let conn = match &self.addr {
            ClamdAddr::Unix(path) => UnixStream::connect(path).map(Conn::Unix),
            ClamdAddr::Tcp(host_port) => connect_tcp(host_port, self.timeout).map(Conn::Tcp),
        }
        .map_err(|source| ClamdError::Connect {
            addr: self.addr.clone(),
            source,
        })?;
        Ok(Session {
            conn,
            start,
            deadline: deadline_after(start, self.budget(0)),
            timeout: self.timeout,
        })
    }

    /// Turns a failed write into the error to report: a timeout, the error clamd sent before
    /// closing the connection, or the write error itself.
    fn after_write_error(
        &self,
        session: &mut Session,
        err: io::Error,
        op: &'static str,
    ) -> ClamdError {
        if is_timeout(&err) {
            return session.timed_out(op);
        }
        // clamd writes why before it closes; give it a short while to be read.
        session.deadline = deadline_after(Instant::now(), self.timeout.min(Duration::from_secs(1)));
        match session.read_reply() {
            Ok(reply) => match parse_reply(&reply) {
                Err(e) => e,
                Ok(_) => ClamdError::Reply(format!(
                    "{reply} (sent before the end of the stream, then the connection closed)"
                )),
            },
            _ => ClamdError::Io { op, source: err },
        }
    }
}

/// Parses clamd's reply to `zINSTREAM`, without its NUL.
fn parse_reply(reply: &str) -> Result<ScanResult, ClamdError> {
    let reply = reply.trim_end_matches(['\0', '\n', '\r']);
    if reply == SIZE_LIMIT_REPLY {
        return Err(ClamdError::SizeLimit);
    }
    if let Some(rest) = reply.strip_prefix("stream: ") {
        if rest == "OK" {
            return Ok(ScanResult::Clean);
        }
        if let Some(name) = rest.strip_suffix(" FOUND") {
            let name = name.trim();
            if !name.is_empty() {
                return Ok(ScanResult::Found(name.to_string()));
            }
        }
    }
    Err(ClamdError::Reply(reply.to_string()))
}

fn connect_tcp(host_port: &str, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in host_port.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "the host name resolves to no address",
        )
    }))
}

/// Reads until `buf` is full or the content ends; returns the bytes read.
fn fill(content: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match content.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// `start + d`, or as far as the clock goes.
fn deadline_after(start: Instant, d: Duration) -> Instant {
    start
        .checked_add(d)
        .or_else(|| start.checked_add(Duration::from_secs(u64::from(u32::MAX))))
        .unwrap_or(start)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// clamd's reply as text, with anything that is not UTF-8 replaced.
fn decode(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse() {
        assert_eq!(parse_reply("stream: OK").unwrap(), ScanResult::Clean);
        assert_eq!(
            parse_reply("stream: Eicar-Signature FOUND").unwrap(),
            ScanResult::Found("Eicar-Signature".into())
        );
        assert_eq!(
            parse_reply("stream: Isogate.Test.EICAR.UNOFFICIAL FOUND\n").unwrap(),
            ScanResult::Found("Isogate.Test.EICAR.UNOFFICIAL".into())
        );
        assert!(matches!(
            parse_reply("INSTREAM size limit exceeded. ERROR"),
            Err(ClamdError::SizeLimit)
        ));
        for bad in [
            "",
            "stream: FOUND",
            "stream:  FOUND",
            "stream: ok",
            "stream: Can't allocate memory ERROR",
            "COMMAND READ TIMED OUT",
            "UNKNOWN COMMAND",
            "PONG",
        ] {
            match parse_reply(bad) {
                Err(ClamdError::Reply(r)) => assert_eq!(r, bad),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn addresses_parse_and_display() {
        for (text, addr) in [
            (
                "unix:/run/clamav/clamd.ctl",
                ClamdAddr::Unix("/run/clamav/clamd.ctl".into()),
            ),
            (
                "tcp:127.0.0.1:3310",
                ClamdAddr::Tcp("127.0.0.1:3310".into()),
            ),
            (
                "tcp:av.example:3310",
                ClamdAddr::Tcp("av.example:3310".into()),
            ),
            ("tcp:[::1]:3310", ClamdAddr::Tcp("[::1]:3310".into())),
        ] {
            let parsed: ClamdAddr = text.parse().unwrap();
            assert_eq!(parsed, addr);
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn bad_addresses_name_the_two_forms() {
        for bad in [
            "",
            "/run/clamav/clamd.ctl",
            "unix:",
            "unix:clamd.sock",
            "tcp:",
            "tcp:localhost",
            "tcp::3310",
            "tcp:localhost:",
            "tcp:localhost:0",
            "tcp:localhost:65536",
            "tcp:localhost:http",
            "tcp:::1:3310",
            "tcp:bad host:3310",
            "udp:localhost:3310",
        ] {
            let err = bad.parse::<ClamdAddr>().unwrap_err();
            assert!(
                err.contains("unix:/path/to/clamd.sock") || err.contains("tcp:[::1]:3310"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn the_budget_grows_per_mib() {
        let c = Clamd::new(
            ClamdAddr::Tcp("localhost:3310".into()),
            Duration::from_secs(2),
        );
        assert_eq!(c.budget(0), Duration::from_secs(2));
        assert_eq!(c.budget(BYTES_PER_TIMEOUT - 1), Duration::from_secs(2));
        assert_eq!(c.budget(3 * BYTES_PER_TIMEOUT), Duration::from_secs(8));
        assert_eq!(
            c.budget(u64::MAX),
            Duration::from_secs(2 * u64::from(u32::MAX))
        );
        let forever = Clamd::new(ClamdAddr::Tcp("localhost:3310".into()), Duration::MAX);
        assert_eq!(forever.budget(1 << 30), Duration::MAX);
        let now = Instant::now();
        assert!(deadline_after(now, Duration::MAX) > now);
        let zero = Clamd::new(ClamdAddr::Tcp("localhost:3310".into()), Duration::ZERO);
        assert_eq!(zero.timeout(), Duration::from_millis(1));
    }
}
