//! Live export of audit records to the security management centre as RFC 5424 syslog
//! messages, over UDP (one datagram per record) or TCP (octet-counted frames, RFC 6587).
//! A background thread sends; a full queue or an unreachable collector never blocks or
//! fails the node (the audit log on disk stays the record of truth), and is logged.

use super::Record;
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::Duration;

/// Where to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// UDP datagrams.
    Udp(SocketAddr),
    /// A TCP stream with octet counting.
    Tcp(SocketAddr),
}

impl Target {
    /// Parses `udp:HOST:PORT` or `tcp:HOST:PORT`.
    pub fn parse(s: &str) -> Option<Target> {
        let (proto, addr) = s.split_once(':')?;
        let addr: SocketAddr = addr.parse().ok()?;
        match proto {
            "udp" => Some(Target::Udp(addr)),
            "tcp" => Some(Target::Tcp(addr)),
            _ => None,
        }
    }
}

/// Escapes an RFC 5424 SD-PARAM value.
fn sd_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Formats one record as an RFC 5424 message: facility local0, severity warning for
/// refusals and info otherwise; the structured data carries the key fields, the message
/// body the whole record as JSON.
pub fn format(rec: &Record) -> String {
    let severity = if rec.event.verdict() == Some("reject") {
        4
    } else {
        6
    };
    let pri = 16 * 8 + severity;
    let time = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + Duration::from_millis(rec.time_ms),
    );
    let mut sd = format!(
        "[isogate@32473 seq=\"{}\" event=\"{}\"",
        rec.seq,
        rec.event.as_str()
    );
    for (k, v) in [
        ("channel", rec.channel.as_deref()),
        ("object", rec.object_id.as_deref()),
        ("reason", rec.reason.map(|r| r.as_str())),
        ("peer", rec.peer.as_deref()),
    ] {
        if let Some(v) = v {
            sd.push_str(&format!(" {k}=\"{}\"", sd_escape(v)));
        }
    }
    sd.push(']');
    let body = serde_json::to_string(rec).unwrap_or_default();
    format!(
        "<{pri}>1 {time} {host} isogate {pid} {msgid} {sd} {body}",
        host = if rec.node.is_empty() { "-" } else { &rec.node },
        pid = std::process::id(),
        msgid = rec.event.as_str(),
    )
}

/// The sending side of the exporter.
pub struct Sink {
    tx: SyncSender<String>,
}

impl Sink {
    /// Starts the sender thread.
    pub fn start(target: Target) -> Sink {
        let (tx, rx) = mpsc::sync_channel::<String>(10_000);
        std::thread::spawn(move || {
            let mut tcp: Option<TcpStream> = None;
            let udp = UdpSocket::bind(("0.0.0.0", 0)).ok();
            while let Ok(msg) = rx.recv() {
                match target {
                    Target::Udp(addr) => {
                        if let Some(s) = &udp
                            && let Err(e) = s.send_to(msg.as_bytes(), addr)
                        {
                            tracing::warn!(target = %addr, error = %e, "syslog export failed");
                        }
                    }
                    Target::Tcp(addr) => {
                        if tcp.is_none() {
                            tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok();
                        }
                        let frame = format!("{} {msg}", msg.len());
                        let sent = tcp.as_mut().map(|s| s.write_all(frame.as_bytes()));
                        if !matches!(sent, Some(Ok(()))) {
                            tracing::warn!(target = %addr, "syslog export failed; reconnecting at the next record");
                            tcp = None;
                        }
                    }
                }
            }
        });
        Sink { tx }
    }

    /// Queues a record for export, never blocking.
    pub fn send(&self, rec: &Record) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(format(rec)) {
            tracing::warn!(
                "syslog export queue full; a record was not exported (it is in the audit log)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Event;

    #[test]
    fn rfc5424_shape_and_escaping() {
        let rec = Record {
            seq: 7,
            time_ms: 0,
            node: "court".into(),
            event: Event::Refused,
            channel: Some("to-internet".into()),
            object_id: Some("ab".into()),
            name: Some("x\"].pdf".into()),
            size: None,
            sha256: None,
            reason: Some(crate::core::reason::Reason::TypeRefused),
            detail: None,
            peer: Some("a]b".into()),
        };
        let m = format(&rec);
        assert!(
            m.starts_with("<132>1 1970-01-01T00:00:00.000Z court isogate "),
            "{m}"
        );
        assert!(
            m.contains(
                " refused [isogate@32473 seq=\"7\" event=\"refused\" channel=\"to-internet\""
            ),
            "{m}"
        );
        assert!(m.contains("peer=\"a\\]b\"]"), "{m}");
        assert!(m.ends_with('}'));
        assert_eq!(
            Target::parse("udp:127.0.0.1:514"),
            Some(Target::Udp("127.0.0.1:514".parse().unwrap()))
        );
        assert_eq!(
            Target::parse("tcp:[::1]:601"),
            Some(Target::Tcp("[::1]:601".parse().unwrap()))
        );
        assert_eq!(Target::parse("http:x"), None);
    }
}
