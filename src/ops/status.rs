//! The node's status endpoint, for the supervision platform: `GET /metrics` (Prometheus
//! text) and `GET /healthz` (200 "ok" when the node can do its job, 503 with one line per
//! problem otherwise). Served over plain HTTP on its own thread; nothing else is answered.
//!
//! What is healthy, and the gauges measured at scrape time, are the node's to say: it
//! hands the server a [`Probe`].

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
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts serving `/metrics` and `/healthz` at `addr` on a thread of its own.
///
/// # Errors
/// The address cannot be bound, or the thread cannot start.
pub fn serve(
    probe: Arc<dyn Probe>,
    addr: std::net::SocketAddr,
) -> Result<StatusServer, Box<dyn std::error::Error + Send + Sync>> {
    let server = Arc::new(tiny_http::Server::http(addr)?);
    let s = server.clone();
    let thread = std::thread::Builder::new()
        .name("isogate-status".into())
        .spawn(move || {
            for request in s.incoming_requests() {
                answer(probe.as_ref(), request);
            }
        })?;
    tracing::info!(listen = %addr, "serving /metrics and /healthz");
    Ok(StatusServer {
        server,
        thread: Some(thread),
    })
}

fn answer(probe: &dyn Probe, request: tiny_http::Request) {
    let header = |v: &str| {
        tiny_http::Header::from_bytes(&b"Content-Type"[..], v.as_bytes())
            .map_err(|()| tracing::error!("bad header"))
            .ok()
    };
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let get = *request.method() == tiny_http::Method::Get;
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
    let mut response = tiny_http::Response::from_data(body).with_status_code(status);
    if let Some(h) = header(kind) {
        response = response.with_header(h);
    }
    if let Err(e) = request.respond(response) {
        tracing::debug!(error = %e, "status client went away");
    }
}
