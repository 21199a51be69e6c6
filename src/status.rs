//! The node's status endpoint, for the supervision platform: `GET /metrics` (Prometheus
//! text) and `GET /healthz` (200 "ok" when the node can do its job, 503 with one line per
//! problem otherwise: link down, free space below the floor, clamd unreachable). Served
//! over plain HTTP on its own thread; nothing else is answered.
//!
//! It also owns the disk-space check that pauses intake, and the gauges measured at scrape
//! time (quarantine and spool contents, free space, checkpoint age).

use crate::clamd::Clamd;
use crate::node::Node;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Free bytes available to unprivileged users on the file system holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let s = rustix::fs::statvfs(path)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// The directories whose file systems must keep free space: state (spool, markers) and
/// exchange (outboxes, inboxes, quarantine).
fn watched_dirs(node: &Node) -> [(&'static str, &Path); 2] {
    [
        ("state", node.cfg.node.state_dir.as_path()),
        ("exchange", node.cfg.node.exchange_dir.as_path()),
    ]
}

/// Whether every watched file system has more free space than the floor; if not, what is
/// short. Updates the free-space gauges.
pub fn disk_ok(node: &Node) -> Result<(), String> {
    let floor = node.cfg.disk.min_free_bytes;
    let mut short = Vec::new();
    for (label, dir) in watched_dirs(node) {
        match free_bytes(dir) {
            Ok(free) => {
                node.metrics
                    .disk_free_bytes
                    .with_label_values(&[label])
                    .set(i64::try_from(free).unwrap_or(i64::MAX));
                if free < floor {
                    short.push(format!(
                        "{label} directory {}: {} MiB free, below the floor of {} MiB",
                        dir.display(),
                        free >> 20,
                        floor >> 20
                    ));
                }
            }
            Err(e) => short.push(format!("{label} directory {}: {e}", dir.display())),
        }
    }
    if short.is_empty() {
        Ok(())
    } else {
        Err(short.join("; "))
    }
}

/// The node's health: every problem that keeps it from doing its job.
pub fn health(node: &Node) -> Vec<String> {
    let mut problems = Vec::new();
    if node.metrics.link_up.get() == 0 {
        problems.push(format!("link: down (peer {})", node.cfg.peer.name));
    }
    if let Err(e) = disk_ok(node) {
        problems.push(format!("disk: {e}"));
    }
    let clamds: BTreeSet<String> = node
        .cfg
        .channels
        .iter()
        .filter_map(|c| node.policies.get(&c.name).antivirus.clone())
        .map(|a| a.clamd.to_string())
        .collect();
    for addr in clamds {
        if let Ok(a) = addr.parse()
            && let Err(e) = Clamd::new(a, Duration::from_secs(2)).ping()
        {
            problems.push(format!("clamd {addr}: {e}"));
        }
    }
    problems
}

/// Measures the gauges that describe the disk.
fn refresh(node: &Node) {
    let m = &node.metrics;
    for c in &node.cfg.channels {
        let (mut objects, mut bytes) = (0i64, 0i64);
        if let Ok(dir) = std::fs::read_dir(&c.quarantine) {
            for e in dir.flatten() {
                let name = e.file_name();
                if name.to_string_lossy().ends_with(".reason.json") {
                    objects += 1;
                } else if let Ok(meta) = e.metadata() {
                    bytes += i64::try_from(meta.len()).unwrap_or(i64::MAX);
                }
            }
        }
        m.quarantine_objects
            .with_label_values(&[c.name.as_str()])
            .set(objects);
        m.quarantine_bytes
            .with_label_values(&[c.name.as_str()])
            .set(bytes);
    }
    let now = crate::now_ms();
    for (channel, depth, oldest) in node.spool.census() {
        m.spool_objects
            .with_label_values(&[channel.as_str()])
            .set(depth as i64);
        let age = oldest.map_or(0, |t| now.saturating_sub(t) / 1000);
        m.spool_oldest_age_seconds
            .with_label_values(&[channel.as_str()])
            .set(i64::try_from(age).unwrap_or(i64::MAX));
    }
    let _ = disk_ok(node);
    let age = now.saturating_sub(node.audit.last_checkpoint_ms()) / 1000;
    m.audit_checkpoint_age_seconds
        .set(i64::try_from(age).unwrap_or(i64::MAX));
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

/// Starts serving `/metrics` and `/healthz` at `addr`.
pub fn serve(
    node: Arc<Node>,
    addr: std::net::SocketAddr,
) -> Result<StatusServer, Box<dyn std::error::Error + Send + Sync>> {
    let server = Arc::new(tiny_http::Server::http(addr)?);
    let s = server.clone();
    let thread = std::thread::Builder::new()
        .name("isogate-status".into())
        .spawn(move || {
            for request in s.incoming_requests() {
                answer(&node, request);
            }
        })?;
    tracing::info!(listen = %addr, "serving /metrics and /healthz");
    Ok(StatusServer {
        server,
        thread: Some(thread),
    })
}

fn answer(node: &Node, request: tiny_http::Request) {
    let header = |v: &str| {
        tiny_http::Header::from_bytes(&b"Content-Type"[..], v.as_bytes())
            .map_err(|()| tracing::error!("bad header"))
            .ok()
    };
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let get = *request.method() == tiny_http::Method::Get;
    let (status, body, kind) = match (get, path.as_str()) {
        (true, "/metrics") => {
            refresh(node);
            (
                200,
                node.metrics.encode(),
                "text/plain; version=0.0.4; charset=utf-8",
            )
        }
        (true, "/healthz") => {
            let problems = health(node);
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
