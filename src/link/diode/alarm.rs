//! What the diode receiver says when the link does not work as configured. The link
//! negotiates nothing, so a mismatch would otherwise only show as files that never come:
//! here every disagreement the core finds (the sender's MTU, symbol size, block size or
//! configuration digest; heartbeats without data) and every session whose datagrams do
//! not authenticate (another datagram key, suite or release) is said once per change in the log (WARN),
//! counted (`isogate_diode_mismatch{reason}`, `isogate_diode_dropped_total{reason}`),
//! named on `/healthz` while it lasts, and audited `link_mismatch` with both values.
//!
//! ```text
//! core Mismatch(list) ──► changed? ─► WARN + audit per new one, gauges, /healthz
//! core Unauthenticated ─► WARN + audit "could not authenticate session X from ADDR"
//! stats, every second ──► dropped_total{reason} += delta; recent too_long or failed
//!                         heartbeats ─► /healthz (and WARN when they start)
//! ```

use crate::audit::{Entry, Event};
use crate::core::diode::{Mismatch, ReceiverStats, wire};
use crate::keys::suite::Suite;
use crate::node::Node;
use std::net::SocketAddr;

/// How long a burst of over-long datagrams or unauthenticated heartbeats keeps
/// `/healthz` unhealthy after the last one.
const RECENT_MS: u64 = 5_000;

/// A session whose datagrams do not authenticate, as far as the receiver can tell.
#[derive(Debug, Clone, Copy)]
pub struct Unauthenticated {
    /// The session id their header claims.
    pub session: u64,
    /// Where the first one came from.
    pub from: Option<SocketAddr>,
    /// The protocol version their header claims ([`wire::VERSION`] for this release).
    pub version: u8,
    /// The other suite whose tag its datagrams carry, when they do.
    pub tagged_by: Option<Suite>,
}

impl Unauthenticated {
    /// Why, as far as the receiver can tell: another release, another suite, or another
    /// datagram key.
    fn why(&self, ours: Suite) -> String {
        if self.version != wire::VERSION {
            return format!(
                "its datagrams speak diode protocol version {}, this node version {} (whose datagram tags are {} in this suite): the sender runs another isogate release (run the same release on both nodes of a pair)",
                self.version,
                wire::VERSION,
                ours.mac()
            );
        }
        match self.tagged_by {
            Some(theirs) => format!(
                "its datagrams carry {} tags under this link's key: the sender runs the {theirs} suite, this node the {ours} ([node] suite must be the same on both nodes of a pair)",
                theirs.mac()
            ),
            None => "other datagram key? (the sender's key file must be the same as this node's [diode] key)".to_string(),
        }
    }
}

/// The receiver's alarms: the state behind the log lines, metrics, `/healthz` lines and
/// audit records about the link itself.
pub struct Alarm {
    mtu: usize,
    mismatches: Vec<Mismatch>,
    counted: ReceiverStats,
    unauthenticated: Option<Unauthenticated>,
    failed_heartbeat_at: Option<u64>,
    too_long_at: Option<u64>,
    too_long_recent: u64,
}

fn from_text(from: Option<SocketAddr>) -> String {
    from.map_or_else(|| "an unknown address".to_string(), |a| a.to_string())
}

fn audit(node: &Node, detail: String) {
    let e = Entry {
        detail: Some(detail),
        peer: Some(node.cfg.peer.name.clone()),
        ..Entry::default()
    };
    if let Err(err) = node.audit.append(Event::LinkMismatch, e) {
        tracing::error!(error = %err, "cannot audit a diode link mismatch");
    }
}

impl Alarm {
    /// Alarms for a receiver configured with `mtu`; makes the metrics exist at 0.
    pub fn new(node: &Node, mtu: usize) -> Alarm {
        node.metrics.diode_receiver();
        Alarm {
            mtu,
            mismatches: Vec::new(),
            counted: ReceiverStats::default(),
            unauthenticated: None,
            failed_heartbeat_at: None,
            too_long_at: None,
            too_long_recent: 0,
        }
    }

    /// The core's list of disagreements changed to `list`.
    pub fn mismatch(&mut self, node: &Node, now_ms: u64, list: Vec<Mismatch>) {
        for m in list.iter().filter(|m| !self.mismatches.contains(m)) {
            tracing::warn!(reason = m.reason(), "diode link mismatch: {m}");
            audit(node, format!("{}: {m}", m.reason()));
        }
        if list.is_empty() && !self.mismatches.is_empty() {
            tracing::info!("the diode sender's settings fit this receiver again");
            audit(
                node,
                "resolved: the diode sender's settings fit this receiver again".to_string(),
            );
        }
        for reason in Mismatch::REASONS {
            let on = list.iter().any(|m| m.reason() == reason);
            node.metrics
                .diode_mismatch
                .with_label_values(&[reason])
                .set(i64::from(on));
        }
        self.mismatches = list;
        self.publish(node, now_ms);
    }

    /// Datagrams of `who` fail authentication (the core names each session once,
    /// rate-limited); `heartbeat`: the first one had a heartbeat's kind and length.
    pub fn unauthenticated(
        &mut self,
        node: &Node,
        now_ms: u64,
        who: Unauthenticated,
        heartbeat: bool,
    ) {
        let Unauthenticated { session, from, .. } = who;
        let what = if who.version == wire::VERSION {
            "could not authenticate"
        } else {
            "dropping the datagrams of"
        };
        let text = format!(
            "{what} session {session:016x} from {}: {}",
            from_text(from),
            who.why(node.cfg.node.suite)
        );
        tracing::warn!(
            session = format!("{session:016x}"),
            heartbeat,
            "diode: {text}"
        );
        audit(node, format!("key: {text}"));
        self.unauthenticated = Some(who);
        if heartbeat {
            self.failed_heartbeat_at = Some(now_ms);
        }
        self.publish(node, now_ms);
    }

    /// Once a second: counts the datagrams dropped since the last call by reason, and
    /// updates what `/healthz` says.
    pub fn tick(&mut self, node: &Node, now_ms: u64, s: &ReceiverStats) {
        let b = &self.counted;
        let too_long = s.datagrams_too_long.saturating_sub(b.datagrams_too_long);
        let failed_heartbeats = s
            .heartbeats_unauthenticated
            .saturating_sub(b.heartbeats_unauthenticated);
        for (reason, now, before) in [
            ("too_long", s.datagrams_too_long, b.datagrams_too_long),
            ("bad_tag", s.datagrams_forged, b.datagrams_forged),
            ("bad_header", s.datagrams_malformed, b.datagrams_malformed),
            (
                "block_too_large",
                s.datagrams_block_too_large,
                b.datagrams_block_too_large,
            ),
            (
                "stale_session",
                s.datagrams_stale_session,
                b.datagrams_stale_session,
            ),
            ("duplicate", s.datagrams_duplicate, b.datagrams_duplicate),
        ] {
            let d = now.saturating_sub(before);
            if d > 0 {
                node.metrics
                    .diode_dropped
                    .with_label_values(&[reason])
                    .inc_by(d);
            }
        }
        if too_long > 0 {
            if !self.recent(self.too_long_at, now_ms) {
                tracing::warn!(
                    dropped = too_long,
                    mtu = self.mtu,
                    "diode datagrams longer than this receiver's mtu allows are dropped: is the sender's mtu larger?"
                );
                self.too_long_recent = 0;
            }
            self.too_long_at = Some(now_ms);
            self.too_long_recent += too_long;
        }
        if failed_heartbeats > 0 {
            self.failed_heartbeat_at = Some(now_ms);
        }
        self.counted = *s;
        self.publish(node, now_ms);
    }

    fn recent(&self, at: Option<u64>, now_ms: u64) -> bool {
        at.is_some_and(|t| now_ms.saturating_sub(t) < RECENT_MS)
    }

    /// What `/healthz` says about the link now.
    fn publish(&self, node: &Node, now_ms: u64) {
        let mut lines: Vec<String> = self.mismatches.iter().map(ToString::to_string).collect();
        let mtu_named = self
            .mismatches
            .iter()
            .any(|m| matches!(m, Mismatch::Mtu { .. } | Mismatch::SymbolSize { .. }));
        if !mtu_named && self.recent(self.too_long_at, now_ms) {
            lines.push(format!(
                "{} datagrams dropped as longer than mtu = {} allows (too_long): is the sender's mtu larger?",
                self.too_long_recent, self.mtu
            ));
        }
        if self.recent(self.failed_heartbeat_at, now_ms) {
            let line = match &self.unauthenticated {
                Some(u) => format!(
                    "heartbeats of session {:016x} from {} fail authentication (bad_tag): {}",
                    u.session,
                    from_text(u.from),
                    u.why(node.cfg.node.suite)
                ),
                None => "heartbeats of a sender fail authentication (bad_tag): other datagram key?"
                    .to_string(),
            };
            lines.push(line);
        }
        node.set_diode_problems(lines);
    }
}
