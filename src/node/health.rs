//! The node's health and its disk: the free-space floor that pauses intake (the receiver
//! keeps it with its space ledger), the problems `/healthz` reports (a link down, the
//! diode sender's settings not fitting this receiver, free space below the floor, an inbox
//! full with objects waiting, a channel whose last take from its outbox failed, clamd
//! unreachable, an expected stream silent), and the gauges measured when `/metrics` is scraped (quarantine contents,
//! free space, checkpoint age).

use crate::inspect::clamd::Clamd;
use crate::node::Node;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// Free bytes available to unprivileged users on the file system holding `path`.
///
/// # Errors
/// `statvfs(2)` failed on `path`.
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
///
/// # Errors
/// One line naming each directory that is short or cannot be measured.
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

/// Every problem that keeps the node from doing its job: each link it uses that is down,
/// the disk, each clamd its policies name, each stream channel with `expected = true`
/// that is silent (`stream: NAME silent`).
pub fn problems(node: &Node) -> Vec<String> {
    let mut problems = Vec::new();
    for link in node.links_in_use() {
        if !node.link_is_up(link) {
            problems.push(format!(
                "link: {} down (peer {})",
                link.as_str(),
                node.cfg.peer.name
            ));
        }
    }
    problems.extend(
        node.diode_problems()
            .into_iter()
            .map(|p| format!("diode: {p}")),
    );
    if let Err(e) = disk_ok(node) {
        problems.push(format!("disk: {e}"));
    }
    // the receiver's space ledger: objects told to wait for room in their inbox
    for c in node.cfg.file_receiving() {
        let waiting = node
            .metrics
            .land_waiting_space
            .with_label_values(&[c.name.as_str()])
            .get();
        if waiting > 0 {
            problems.push(format!(
                "inbox full: {waiting} objects waiting for free space in {} (channel {})",
                c.inbox.display(),
                c.name
            ));
        }
    }
    for c in node.cfg.file_sending() {
        let failing = node
            .metrics
            .intake_failing
            .with_label_values(&[c.name.as_str()]);
        if failing.get() != 0 {
            problems.push(format!(
                "intake: channel {}: the last take from {} failed (see the log)",
                c.name,
                c.outbox.display()
            ));
        }
    }
    // an always-on feed (`expected = true`) that went silent
    for c in &node.cfg.channels {
        if c.stream.as_ref().is_some_and(|s| s.expected)
            && node
                .metrics
                .stream_live
                .with_label_values(&[c.name.as_str()])
                .get()
                == 0
        {
            problems.push(format!("stream: {} silent", c.name));
        }
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

/// Measures the gauges that describe the node's disk: quarantine contents, free space,
/// checkpoint age. (The spool's gauges are the sender's.)
pub fn refresh(node: &Node) {
    let m = &node.metrics;
    for c in node.cfg.file_channels() {
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
    let _ = disk_ok(node);
    // on the monotonic clock: a wall clock stepped back must not make it read 0
    let age = node.audit.checkpoint_age_ms() / 1000;
    m.audit_checkpoint_age_seconds
        .set(i64::try_from(age).unwrap_or(i64::MAX));
    m.audit_checkpoint_due_records
        .set(i64::try_from(node.audit.due_records()).unwrap_or(i64::MAX));
}
