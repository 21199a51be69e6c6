//! The node's status endpoint, for the supervision platform: `GET /metrics` (Prometheus
//! text) and `GET /healthz` (200 "ok" when the node can do its job, 503 with one line per
//! problem otherwise). Served over plain HTTP (`ops::http`: deadlines, bodies never read);
//! nothing else is answered.
//!
//! What is healthy, and the gauges measured at scrape time, are the node's to say: it
//! hands the server a [`Probe`].

use crate::ops::http;
use std::sync::Arc;

/// What the status server asks of the node.
pub trait Probe: Send + Sync + 'static {
    /// Every problem that keeps the node from doing its job; empty when healthy.
    fn health(&self) -> Vec<String>;
    /// The metrics in Prometheus text format, gauges measured now.
    fn metrics(&self) -> Vec<u8>;
}

/// A running status server; stops when dropped.
pub struct StatusServer {
    _server: crate::ops::http::Server,
}

/// Starts serving `/metrics` and `/healthz` at `addr` (one short-lived thread per
/// connection, at most `http::MAX_CONNECTIONS`; every request within its deadlines, any
/// body refused unread).
///
/// # Errors
/// The address cannot be bound, or the thread cannot start.
pub fn serve(
    probe: Arc<dyn Probe>,
    addr: std::net::SocketAddr,
) -> Result<StatusServer, Box<dyn std::error::Error + Send + Sync>> {
    let server = http::serve(addr, "status", move |r| answer(probe.as_ref(), r))?;
    tracing::info!(listen = %addr, "serving /metrics and /healthz");
    Ok(StatusServer { _server: server })
}

fn answer(probe: &dyn Probe, request: http::Request) {
    let path = request.url.split('?').next().unwrap_or("").to_string();
    let get = matches!(request.method, http::Method::Get | http::Method::Head);
    let (status, body, kind) = match (get, path.as_str()) {
        (true, "/metrics") => (
            200,
            probe.metrics(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        (true, "/healthz") => {
            let problems = probe.health();
            if problems.is_empty() {
                (200, b"ok\n".to_vec(), "text/plain; charset=utf-8")
            } else {
                (
                    503,
                    format!("{}\n", problems.join("\n")).into_bytes(),
                    "text/plain; charset=utf-8",
                )
            }
        }
        (true, _) => (
            404,
            b"not found: try /metrics or /healthz\n".to_vec(),
            "text/plain",
        ),
        (false, _) => (405, b"only GET\n".to_vec(), "text/plain"),
    };
    // a body, if any, is never read: the connection is closed after the answer
    request.respond(status, &[("Content-Type", kind)], &body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    struct Fixed;
    impl Probe for Fixed {
        fn health(&self) -> Vec<String> {
            vec!["link: quic down (peer internet)".into()]
        }
        fn metrics(&self) -> Vec<u8> {
            b"isogate_up 1\n".to_vec()
        }
    }

    fn ask(addr: std::net::SocketAddr, raw: &[u8]) -> String {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        // one request per connection: the answer is read to the connection's end
        let raw = String::from_utf8_lossy(raw).replacen("\r\n", "\r\nConnection: close\r\n", 1);
        c.write_all(raw.as_bytes()).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn answers_get_and_never_reads_an_announced_body() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = free.local_addr().unwrap();
        drop(free);
        let _s = serve(Arc::new(Fixed), addr).unwrap();
        let m = ask(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(
            m.starts_with("HTTP/1.1 200") && m.ends_with("isogate_up 1\n"),
            "{m}"
        );
        let h = ask(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(
            h.starts_with("HTTP/1.1 503") && h.contains("quic down"),
            "{h}"
        );
        // this once aborted the node (tiny_http buffered the announced length): 405, unread
        let p = ask(
            addr,
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000000\r\n\r\nab",
        );
        assert!(p.starts_with("HTTP/1.1 405"), "{p}");
        let again = ask(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(again.starts_with("HTTP/1.1 200"), "{again}");
    }
}
