//! Live export of audit records to the security management centre as RFC 5424 syslog
//! messages, over UDP (one datagram per record, RFC 5426) or TCP (octet-counted frames,
//! RFC 6587 §3.4.1), to an IPv4 or IPv6 collector or a host name.
//!
//! ```text
//!  AuditLog::append ─► Sink::send ─ try_send ─► bounded queue ─► sender thread ─► collector
//!   (never waits)        │ full: counted,        (QUEUE records)   │ resolve, connect,
//!                        ▼ logged once a burst                     │ write; on failure:
//!                     dropped                                      ▼ back off ×2 up to
//!                                                                  BACKOFF_MAX, retry
//! ```
//!
//! The node never waits for the collector: `send` only queues, and a full queue drops the
//! record (counted; one warning per burst, one line with the count when export resumes).
//! The audit log on disk stays the record of truth: `isogate audit export --after SEQ` fills
//! any gap, and the `seq` parameter of every message shows where one is.
//!
//! Message shape (RFC 5424 §6): `<PRI>1 TIMESTAMP HOSTNAME isogate PROCID MSGID [SD] MSG`,
//! facility local0, severity warning for refusals and info otherwise; HOSTNAME is the node,
//! MSGID the event, the structured data `isogate@32473` carries every field of the record and
//! MSG is the record as logged (JSON), preceded by the UTF-8 BOM when it is not plain ASCII
//! (§6.4: a Chinese file name).

use super::Record;
use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// Records waiting for the collector at most; more are dropped (and counted).
pub const QUEUE: usize = 4096;
/// First wait before connecting again after a failure.
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest wait between two connection attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long a connection attempt or one write may take before the collector counts as down.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The private enterprise number of the structured data id (RFC 5424 §7.2.2).
pub const SD_ID: &str = "isogate@32473";
/// The UTF-8 byte order mark that opens a UTF-8 MSG (RFC 5424 §6.4).
pub const BOM: char = '\u{feff}';

/// The transport to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP datagrams, one message each (RFC 5426).
    Udp,
    /// A TCP stream with octet counting (RFC 6587 §3.4.1).
    Tcp,
}

/// Where to send: a transport, a host (IPv4, IPv6 or a name resolved when the exporter
/// starts, and again after a failure) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// UDP or TCP.
    pub transport: Transport,
    /// An IP address (IPv6 without its brackets) or a host name.
    pub host: String,
    /// The collector's port.
    pub port: u16,
}

impl Target {
    /// Parses `udp:HOST:PORT` or `tcp:HOST:PORT`, where HOST is an IPv4 address, an IPv6
    /// address in brackets (`tcp:[::1]:514`) or a host name. `None` if it is none of these.
    pub fn parse(s: &str) -> Option<Target> {
        let (proto, rest) = s.split_once(':')?;
        let transport = match proto {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            _ => return None,
        };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, port) = v6.split_once("]:")?;
            host.parse::<std::net::Ipv6Addr>().ok()?;
            (host, port)
        } else {
            let (host, port) = rest.rsplit_once(':')?;
            let name_ok = host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
            if !name_ok || host.len() > 253 {
                return None;
            }
            (host, port)
        };
        let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
        Some(Target {
            transport,
            host: host.to_string(),
            port,
        })
    }

    /// The collector's addresses, IPv6 and IPv4 as the resolver gives them.
    ///
    /// # Errors
    /// The name does not resolve (or resolves to nothing).
    pub fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port).to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} resolves to no address", self.host),
            ));
        }
        Ok(addrs)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = match self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        };
        if self.host.contains(':') {
            write!(f, "{proto}:[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{proto}:{}:{}", self.host, self.port)
        }
    }
}

/// Escapes an SD-PARAM value (RFC 5424 §6.3.3): `"`, `\` and `]` get a backslash. Control
/// characters, which would let a name end the line early for a line-reading collector, are
/// replaced by U+FFFD (the MSG keeps the exact value, JSON-escaped).
fn sd_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(if c.is_control() { '\u{fffd}' } else { c });
    }
    out
}

/// A header field (RFC 5424 §6.2: PRINTUSASCII, no space, at most `max` octets), or the
/// NILVALUE `-` when nothing printable is left.
fn header_field(v: &str, max: usize) -> String {
    let s: String = v
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(max)
        .collect();
    if s.is_empty() { "-".to_string() } else { s }
}

/// Formats one record as an RFC 5424 message, the whole line as a `String`: facility local0,
/// severity warning (4) for refusals and info (6) otherwise; the timestamp in UTC with
/// milliseconds; HOSTNAME the node, APP-NAME `isogate`, PROCID this process, MSGID the event;
/// one SD-ELEMENT `isogate@32473` with every field of the record present (`seq`, `time_ms`,
/// `event`, `channel`, `object`, `name`, `size`, `sha256` (or `sm3`), `reason`, `detail`, `peer`;
/// values escaped per §6.3.3); and MSG, the record as logged (JSON), opened by the BOM
/// U+FEFF when it holds any non-ASCII character (§6.4). No trailing newline.
pub fn format(rec: &Record) -> String {
    format_as(rec, Some(std::process::id()))
}

/// [`format()`] for a record read back from a log (`audit export --format syslog`): the
/// PROCID is the NILVALUE `-` (§6.2.6), since the process that wrote the record is not
/// known, rather than the exporting command's own pid.
pub fn format_exported(rec: &Record) -> String {
    format_as(rec, None)
}

/// [`format()`] with PROCID `pid`, or `-` for `None`.
fn format_as(rec: &Record, pid: Option<u32>) -> String {
    let severity = if rec.event.verdict() == Some("reject") {
        4
    } else {
        6
    };
    let pri = 16 * 8 + severity;
    let time = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + Duration::from_millis(rec.time_ms),
    );
    let seq = rec.seq.to_string();
    let time_ms = rec.time_ms.to_string();
    let size = rec.size.map(|s| s.to_string());
    let mut sd = format!("[{SD_ID}");
    for (k, v) in [
        ("seq", Some(seq.as_str())),
        ("time_ms", Some(time_ms.as_str())),
        ("event", Some(rec.event.as_str())),
        ("channel", rec.channel.as_deref()),
        ("object", rec.object_id.as_deref()),
        ("name", rec.name.as_deref()),
        ("size", size.as_deref()),
        ("sha256", rec.sha256.as_deref()),
        ("sm3", rec.sm3.as_deref()),
        ("reason", rec.reason.map(|r| r.as_str())),
        ("detail", rec.detail.as_deref()),
        ("peer", rec.peer.as_deref()),
    ] {
        if let Some(v) = v {
            sd.push_str(&format!(" {k}=\"{}\"", sd_escape(v)));
        }
    }
    sd.push(']');
    let body = serde_json::to_string(rec).unwrap_or_default();
    let bom = if body.is_ascii() {
        String::new()
    } else {
        BOM.to_string()
    };
    format!(
        "<{pri}>1 {time} {host} isogate {pid} {msgid} {sd} {bom}{body}",
        host = header_field(&rec.node, 255),
        pid = pid.map_or("-".to_string(), |p| p.to_string()),
        msgid = header_field(rec.event.as_str(), 32),
    )
}

/// What the exporter shares between the node's threads and its sender thread.
#[derive(Debug, Default)]
struct Counters {
    /// Records dropped since the start (queue full).
    dropped: AtomicU64,
    /// Records dropped in the current burst: reset, with one log line, when export resumes.
    burst: AtomicU64,
    /// Records delivered to the collector's socket.
    sent: AtomicU64,
}

/// The sending side of the exporter: queues records, never blocks.
pub struct Sink {
    tx: SyncSender<String>,
    counters: Arc<Counters>,
}

impl Sink {
    /// Starts the sender thread for `target` with a queue of [`QUEUE`] records. Never fails:
    /// a collector that cannot be resolved or reached is tried again with backoff.
    pub fn start(target: Target) -> Sink {
        Self::start_with(target, QUEUE)
    }

    /// [`Sink::start`] with a queue of `queue` records (at least 1).
    pub fn start_with(target: Target, queue: usize) -> Sink {
        let (tx, rx) = mpsc::sync_channel::<String>(queue.max(1));
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        let spawned = std::thread::Builder::new()
            .name("syslog-export".into())
            .spawn(move || Sender::new(target, shared).run(rx));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the syslog exporter; records stay in the audit log only");
        }
        Sink { tx, counters }
    }

    /// Queues a record for export, never blocking. A full queue (or a stopped exporter)
    /// drops it: counted, and logged once per burst.
    pub fn send(&self, rec: &Record) {
        match self.tx.try_send(format(rec)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                if self.counters.burst.fetch_add(1, Ordering::AcqRel) == 0 {
                    tracing::warn!(
                        seq = rec.seq,
                        "syslog export queue full: records are not exported until the collector takes them again (they are in the audit log; `isogate audit export --after SEQ` fills the gap)"
                    );
                }
            }
        }
    }

    /// Records dropped since the start because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Records handed to the collector's socket since the start.
    pub fn sent(&self) -> u64 {
        self.counters.sent.load(Ordering::Relaxed)
    }
}

/// The sender thread's state: the target, its connection and the backoff.
struct Sender {
    target: Target,
    counters: Arc<Counters>,
    tcp: Option<TcpStream>,
    udp: Option<(UdpSocket, SocketAddr)>,
    backoff: Duration,
    next_try: Instant,
    /// Whether the collector is known to be down (logged once until it is back).
    down: bool,
}

impl Sender {
    fn new(target: Target, counters: Arc<Counters>) -> Sender {
        Sender {
            target,
            counters,
            tcp: None,
            udp: None,
            backoff: BACKOFF_MIN,
            next_try: Instant::now(),
            down: false,
        }
    }

    fn run(mut self, rx: Receiver<String>) {
        // resolve at start, so that a wrong name is reported at once
        if let Err(e) = self.target.resolve() {
            tracing::warn!(target = %self.target, error = %e, "syslog collector does not resolve; trying again with backoff");
        }
        while let Ok(msg) = rx.recv() {
            // keep this message until it is written; wait for the collector meanwhile
            loop {
                let wait = self.next_try.saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    std::thread::sleep(wait);
                }
                match self.deliver(&msg) {
                    Ok(()) => {
                        self.counters.sent.fetch_add(1, Ordering::Relaxed);
                        self.up();
                        break;
                    }
                    Err(e) => self.failed(&e),
                }
            }
        }
        // the queue closed: the node stopped
    }

    /// Writes one message on the current connection, opening it first if needed.
    fn deliver(&mut self, msg: &str) -> std::io::Result<()> {
        match self.target.transport {
            Transport::Udp => {
                if self.udp.is_none() {
                    let addr = *self.target.resolve()?.first().ok_or_else(|| {
                        std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
                    })?;
                    let bind: SocketAddr = if addr.is_ipv6() {
                        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                    } else {
                        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
                    };
                    self.udp = Some((UdpSocket::bind(bind)?, addr));
                }
                let (socket, addr) = self.udp.as_ref().ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotConnected, "no socket")
                })?;
                socket.send_to(msg.as_bytes(), addr).map(|_| ())
            }
            Transport::Tcp => {
                if self.tcp.is_none() {
                    self.tcp = Some(self.connect()?);
                }
                let frame = format!("{} {msg}", msg.len());
                let stream = self.tcp.as_mut().ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotConnected, "no connection")
                })?;
                let written = stream.write_all(frame.as_bytes());
                if written.is_err() {
                    // a frame may have gone out in part: start again on a new connection
                    self.tcp = None;
                }
                written
            }
        }
    }

    /// Connects to the first address of the target that answers.
    fn connect(&self) -> std::io::Result<TcpStream> {
        let mut last = None;
        for addr in self.target.resolve()? {
            match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
                Ok(s) => {
                    s.set_write_timeout(Some(IO_TIMEOUT))?;
                    s.set_nodelay(true)?;
                    return Ok(s);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no address")))
    }

    fn failed(&mut self, e: &std::io::Error) {
        self.tcp = None;
        self.udp = None;
        if !self.down {
            tracing::warn!(target = %self.target, error = %e, "syslog collector unreachable; retrying with backoff (records wait in a bounded queue)");
            self.down = true;
        }
        self.next_try = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    fn up(&mut self) {
        let dropped = self.counters.burst.swap(0, Ordering::AcqRel);
        if self.down || dropped > 0 {
            tracing::info!(target = %self.target, dropped, "syslog export resumed");
        }
        self.down = false;
        self.backoff = BACKOFF_MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Event;
    use std::io::Read;
    use std::net::TcpListener;

    fn record() -> Record {
        Record {
            seq: 7,
            time_ms: 1_764_598_560_123,
            node: "court".into(),
            event: Event::Refused,
            channel: Some("to-internet".into()),
            object_id: Some("0123456789abcdef0123456789abcdef".into()),
            name: Some("民事判决书（2026）\"x\\y].pdf".into()),
            size: Some(4096),
            sha256: Some("ab".repeat(32)),
            sm3: None,
            reason: Some(crate::core::reason::Reason::TypeRefused),
            detail: Some("keyword 机密 in text] \"quoted\"".into()),
            peer: Some("a]b".into()),
            stream: None,
            message: None,
        }
    }

    #[test]
    fn rfc5424_shape_and_escaping() {
        let mut rec = record();
        rec.time_ms = 0;
        let m = format(&rec);
        assert!(
            m.starts_with("<132>1 1970-01-01T00:00:00.000Z court isogate "),
            "{m}"
        );
        assert!(
            m.contains(" refused [isogate@32473 seq=\"7\" time_ms=\"0\" event=\"refused\" channel=\"to-internet\""),
            "{m}"
        );
        assert!(m.contains("peer=\"a\\]b\"]"), "{m}");
        assert!(
            m.contains(" name=\"民事判决书（2026）\\\"x\\\\y\\].pdf\""),
            "{m}"
        );
        assert!(m.ends_with('}'));
        // the MSG holds Chinese text: it opens with the BOM, right after the SD
        assert!(m.contains("\"] \u{feff}{\"seq\":7"), "{m}");
        // an all-ASCII MSG goes without
        let mut ascii = rec.clone();
        ascii.name = Some("a.pdf".into());
        ascii.detail = None;
        assert!(!format(&ascii).contains(BOM));
        // controls never reach the line, even in a refused name
        let mut ctl = rec;
        ctl.name = Some("a\n<134>1 forged".into());
        let m = format(&ctl);
        assert!(!m.contains('\n'), "{m}");
        assert!(m.contains("name=\"a\u{fffd}<134>1 forged\""), "{m}");
    }

    #[test]
    fn targets_ipv4_ipv6_and_names() {
        let t = |s: &str| Target::parse(s);
        assert_eq!(
            t("udp:127.0.0.1:514"),
            Some(Target {
                transport: Transport::Udp,
                host: "127.0.0.1".into(),
                port: 514
            })
        );
        assert_eq!(
            t("tcp:[::1]:601"),
            Some(Target {
                transport: Transport::Tcp,
                host: "::1".into(),
                port: 601
            })
        );
        assert_eq!(
            t("udp:[2001:db8::1]:514").map(|t| t.host),
            Some("2001:db8::1".into())
        );
        assert_eq!(t("tcp:siem.court.example:6514").map(|t| t.port), Some(6514));
        for bad in [
            "http:x:1",
            "tcp:::1:514",
            "tcp:[::1]514",
            "tcp:[nope]:514",
            "udp:host:0",
            "udp:host:70000",
            "udp:ho st:514",
            "udp::514",
            "tcp:a..b:514",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
        for s in ["tcp:[::1]:601", "udp:10.0.0.5:514", "tcp:localhost:514"] {
            assert_eq!(t(s).unwrap().to_string(), s);
        }
        assert!(t("tcp:localhost:514").unwrap().resolve().is_ok());
    }

    /// The message read back by an independent RFC 5424 parser gives every field, every
    /// SD-PARAM and the Chinese MSG back unchanged.
    #[test]
    fn round_trip_through_an_independent_parser() {
        let rec = record();
        let line = format(&rec);
        let m = syslog_rfc5424::parse_message(&line).unwrap();
        assert_eq!(m.version, 1);
        assert_eq!(m.facility, syslog_rfc5424::SyslogFacility::LOG_LOCAL0);
        assert_eq!(m.severity, syslog_rfc5424::SyslogSeverity::SEV_WARNING);
        assert_eq!(m.timestamp, Some(1_764_598_560));
        assert_eq!(m.timestamp_nanos, Some(123_000_000));
        assert_eq!(m.hostname.as_deref(), Some("court"));
        assert_eq!(m.appname.as_deref(), Some("isogate"));
        assert_eq!(
            m.procid,
            Some(syslog_rfc5424::message::ProcId::PID(
                std::process::id() as i32
            ))
        );
        assert_eq!(m.msgid.as_deref(), Some("refused"));
        let exported = syslog_rfc5424::parse_message(format_exported(&rec)).unwrap();
        assert_eq!(
            exported.procid, None,
            "NILVALUE: the writer's pid is not known"
        );
        assert_eq!(exported.msgid.as_deref(), Some("refused"));
        let p = |k: &str| m.sd.find_tuple(SD_ID, k).map(|v| v.to_string());
        assert_eq!(p("seq"), Some("7".into()));
        assert_eq!(p("time_ms"), Some(rec.time_ms.to_string()));
        assert_eq!(p("event"), Some("refused".into()));
        assert_eq!(p("channel"), rec.channel.clone());
        assert_eq!(p("object"), rec.object_id.clone());
        assert_eq!(p("name"), rec.name.clone());
        assert_eq!(p("size"), Some("4096".into()));
        assert_eq!(p("sha256"), rec.sha256.clone());
        assert_eq!(p("reason"), Some("type_refused".into()));
        assert_eq!(p("detail"), rec.detail.clone());
        assert_eq!(p("peer"), rec.peer.clone());
        let msg = m
            .msg
            .strip_prefix(BOM)
            .expect("a UTF-8 MSG opens with the BOM");
        let back: Record = serde_json::from_str(msg).unwrap();
        assert_eq!(back, rec);
        assert_eq!(back.name.as_deref(), Some("民事判决书（2026）\"x\\y].pdf"));
    }

    fn read_frames(stream: &mut TcpStream, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while out.len() < n {
            let k = stream.read(&mut chunk).unwrap();
            assert!(k > 0, "collector connection closed after {out:?}");
            buf.extend_from_slice(&chunk[..k]);
            while let Some(sp) = buf.iter().position(|b| *b == b' ') {
                let len: usize = std::str::from_utf8(&buf[..sp]).unwrap().parse().unwrap();
                if buf.len() < sp + 1 + len {
                    break;
                }
                out.push(String::from_utf8(buf[sp + 1..sp + 1 + len].to_vec()).unwrap());
                buf.drain(..sp + 1 + len);
            }
        }
        out
    }

    /// A TCP collector on IPv6 that is down at first: records wait in the queue (what does
    /// not fit is counted), `send` never blocks, and once the collector listens the queue is
    /// delivered, in order, as octet-counted frames.
    #[test]
    fn tcp_collector_down_then_up_gets_the_queue() {
        // pick a free port, then close it: the collector is down
        let port = TcpListener::bind("[::1]:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let target = Target::parse(&format!("tcp:[::1]:{port}")).unwrap();
        let sink = Sink::start_with(target, 8);
        let mut rec = record();
        for seq in 1..=20 {
            rec.seq = seq;
            sink.send(&rec);
        }
        // at most the queue and the one in hand are kept
        assert!(sink.dropped() >= 20 - 9, "dropped {}", sink.dropped());
        let listener = TcpListener::bind(("::1", port)).unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        let kept = 20 - sink.dropped() as usize;
        let frames = read_frames(&mut conn, kept);
        let seqs: Vec<u64> = frames
            .iter()
            .map(|f| syslog_rfc5424::parse_message(f).unwrap())
            .map(|m| m.sd.find_tuple(SD_ID, "seq").unwrap().parse().unwrap())
            .collect();
        assert_eq!(seqs[0], 1);
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        // the collector goes away and comes back: the sender connects again
        drop(conn);
        drop(listener);
        let listener = TcpListener::bind(("::1", port)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = None;
        listener.set_nonblocking(true).unwrap();
        while got.is_none() && Instant::now() < deadline {
            rec.seq += 1;
            sink.send(&rec);
            std::thread::sleep(Duration::from_millis(50));
            if let Ok((c, _)) = listener.accept() {
                got = Some(c);
            }
        }
        let mut conn = got.expect("the exporter never came back to the collector");
        conn.set_nonblocking(false).unwrap();
        let frame = read_frames(&mut conn, 1).remove(0);
        assert!(syslog_rfc5424::parse_message(&frame).is_ok(), "{frame}");
    }

    #[test]
    fn udp_to_ipv6() {
        let collector = UdpSocket::bind("[::1]:0").unwrap();
        let target = Target::parse(&format!("udp:{}", collector.local_addr().unwrap())).unwrap();
        let sink = Sink::start(target);
        sink.send(&record());
        let mut buf = [0u8; 65536];
        collector
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let n = collector.recv(&mut buf).unwrap();
        let m = syslog_rfc5424::parse_message(std::str::from_utf8(&buf[..n]).unwrap()).unwrap();
        assert_eq!(m.msgid.as_deref(), Some("refused"));
    }
}
