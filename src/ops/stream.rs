//! The life of one stream of a `stream` channel as both nodes account for it: when it is
//! live, what it passed on and dropped, and the two audit records that bracket it. The
//! sending and the receiving shells each keep one [`Life`] per channel and tell it what
//! happens to every packet; it bumps the metrics at once and writes `stream_started` at
//! the first packet passed after a stop (or the start) and `stream_stopped` after the
//! channel's silence, or when the node stops. Never a record per packet.
//!
//! ```text
//!  packet ─► dropped(reason) ───────────────────────────► counts + isogate_stream_dropped_total
//!        └─► admitted(ssrc, source) ─► not live? ─► `stream_started`, isogate_stream_live 1
//!            passed(bytes) ──────────────────────► counts + isogate_stream_packets/bytes_total
//!  deadline (last admitted + silence) ─► silent ─► `stream_stopped` {counts, drops, duration}
//!  clean stop ─────────────────────────► stop ───► `stream_stopped` (if anything happened)
//! ```
//!
//! Times are [`crate::mono_ms`] milliseconds: a wall clock stepped back stops no stream.

use crate::audit::{AuditLog, Entry, Event, StreamRecord};
use crate::core::stream::{Counts, DropReason};
use crate::ops::metrics::Metrics;
use std::net::SocketAddr;

/// The accounting of one channel's stream (see the module header).
#[derive(Debug)]
pub struct Life {
    channel: String,
    silence_ms: u64,
    counts: Counts,
    /// When the first packet of this period arrived (admitted or not).
    first_ms: Option<u64>,
    /// When the stream went live: its first admitted packet.
    started_ms: Option<u64>,
    /// When the last admitted packet arrived.
    last_ms: u64,
    ssrc: Option<u32>,
}

impl Life {
    /// A silent stream on `channel` that stops after `silence_ms` milliseconds with no
    /// packet admitted.
    pub fn new(channel: &str, silence_ms: u64) -> Life {
        Life {
            channel: channel.to_string(),
            silence_ms: silence_ms.max(1),
            counts: Counts::default(),
            first_ms: None,
            started_ms: None,
            last_ms: 0,
            ssrc: None,
        }
    }

    /// Whether a packet was admitted within the silence.
    pub fn is_live(&self) -> bool {
        self.started_ms.is_some()
    }

    /// The counts since the last stop.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// When the stream goes silent (ms, [`crate::mono_ms`]): the last admitted packet plus
    /// the silence; for a period of dropped packets only, its first packet plus the
    /// silence. `None` when nothing happened since the last stop.
    pub fn deadline(&self) -> Option<u64> {
        if self.started_ms.is_some() {
            Some(self.last_ms.saturating_add(self.silence_ms))
        } else {
            self.first_ms.map(|f| f.saturating_add(self.silence_ms))
        }
    }

    /// Counts a packet dropped for `reason` at `now_ms`.
    pub fn dropped(&mut self, metrics: &Metrics, now_ms: u64, reason: DropReason) {
        self.first_ms.get_or_insert(now_ms);
        self.counts.dropped(reason);
        metrics.stream_drop(&self.channel, reason);
    }

    /// Notes a packet the gate admitted at `now_ms`, of RTP source `ssrc`, from `source`
    /// (the sending node's UDP peer; `None` on the receiving node). The first one after a
    /// stop writes `stream_started`.
    pub fn admitted(
        &mut self,
        audit: &AuditLog,
        metrics: &Metrics,
        now_ms: u64,
        ssrc: Option<u32>,
        source: Option<SocketAddr>,
    ) {
        self.first_ms.get_or_insert(now_ms);
        self.last_ms = now_ms;
        if self.started_ms.is_some() {
            return;
        }
        self.started_ms = Some(now_ms);
        self.ssrc = ssrc;
        metrics
            .stream_live
            .with_label_values(&[self.channel.as_str()])
            .set(1);
        let body = StreamRecord {
            ssrc,
            source: source.map(|s| s.to_string()),
            ..StreamRecord::default()
        };
        let detail = match (ssrc, source) {
            (Some(s), Some(from)) => format!("ssrc {s:#010x} from {from}"),
            (Some(s), None) => format!("ssrc {s:#010x}"),
            (None, Some(from)) => format!("from {from}"),
            (None, None) => String::new(),
        };
        tracing::info!(channel = %self.channel, detail = %detail, "stream started");
        let e = Entry {
            channel: Some(self.channel.clone()),
            detail: (!detail.is_empty()).then_some(detail),
            ..Entry::default()
        };
        if let Err(err) = audit.append_stream(Event::StreamStarted, e, body) {
            tracing::error!(channel = %self.channel, error = %err, "cannot audit the stream's start");
        }
    }

    /// Counts a packet of `bytes` passed on (to the link, or to the application).
    pub fn passed(&mut self, metrics: &Metrics, bytes: usize) {
        self.counts.passed(bytes);
        metrics.stream_passed(&self.channel, bytes);
    }

    /// A packet of `bytes` counted as passed that the link's send shell then could not send
    /// (`packet_size`: too large for a QUIC datagram on the path; `link_down`): the stream's
    /// record counts it as dropped for `reason` and no longer as passed. The metric
    /// `isogate_stream_packets_total` of the sending node keeps counting what was handed to
    /// the link; the drop is counted beside it.
    pub fn unsent(&mut self, metrics: &Metrics, now_ms: u64, reason: DropReason, bytes: usize) {
        self.counts.packets = self.counts.packets.saturating_sub(1);
        self.counts.bytes = self.counts.bytes.saturating_sub(bytes as u64);
        self.dropped(metrics, now_ms, reason);
    }

    /// Stops the stream when its deadline has come at `now_ms`: writes `stream_stopped`
    /// and starts a new period. Returns whether it stopped (the caller resets its gate).
    pub fn silent(&mut self, audit: &AuditLog, metrics: &Metrics, now_ms: u64) -> bool {
        match self.deadline() {
            Some(d) if d <= now_ms => {
                self.end(audit, metrics, "silent");
                true
            }
            _ => false,
        }
    }

    /// Stops the stream now (the node stops cleanly, or the sending node restarted):
    /// writes `stream_stopped` when anything happened since the last stop.
    pub fn stop(&mut self, audit: &AuditLog, metrics: &Metrics, why: &str) {
        if self.first_ms.is_some() {
            self.end(audit, metrics, why);
        }
    }

    /// The body of the `stream_stopped` record the stream would have now.
    pub fn record(&self) -> StreamRecord {
        let c = &self.counts;
        StreamRecord {
            ssrc: self.ssrc,
            source: None,
            packets: Some(c.packets),
            bytes: Some(c.bytes),
            drops: c
                .drops
                .iter()
                .map(|(r, n)| (r.code().to_string(), *n))
                .collect(),
            duration_ms: Some(
                self.started_ms
                    .map(|s| self.last_ms.saturating_sub(s))
                    .unwrap_or(0),
            ),
            over_rate: Some(c.over_rate()),
        }
    }

    fn end(&mut self, audit: &AuditLog, metrics: &Metrics, why: &str) {
        let body = self.record();
        let drops: Vec<String> = body.drops.iter().map(|(r, n)| format!("{r}={n}")).collect();
        let detail = format!(
            "{why}: {} packets, {} bytes in {} ms{}{}",
            body.packets.unwrap_or(0),
            body.bytes.unwrap_or(0),
            body.duration_ms.unwrap_or(0),
            if drops.is_empty() { "" } else { "; dropped " },
            drops.join(", ")
        );
        tracing::info!(channel = %self.channel, detail = %detail, "stream stopped");
        let e = Entry {
            channel: Some(self.channel.clone()),
            detail: Some(detail),
            ..Entry::default()
        };
        if let Err(err) = audit.append_stream(Event::StreamStopped, e, body) {
            tracing::error!(channel = %self.channel, error = %err, "cannot audit the stream's stop");
        }
        metrics
            .stream_live
            .with_label_values(&[self.channel.as_str()])
            .set(0);
        *self = Life::new(&self.channel, self.silence_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_follows_the_last_admitted_packet() {
        let m = Metrics::new().unwrap();
        let mut l = Life::new("hearing", 5000);
        assert_eq!(l.deadline(), None);
        l.dropped(&m, 100, DropReason::PayloadType);
        assert_eq!(
            l.deadline(),
            Some(5100),
            "drops alone end after the silence too"
        );
        assert!(!l.is_live());
        l.passed(&m, 1328);
        l.first_ms = Some(100);
        l.started_ms = Some(200);
        l.last_ms = 900;
        assert_eq!(l.deadline(), Some(5900));
        let r = l.record();
        assert_eq!(
            (r.packets, r.bytes, r.duration_ms),
            (Some(1), Some(1328), Some(700))
        );
        assert_eq!(r.drops.get("payload_type"), Some(&1));
        assert_eq!(r.over_rate, Some(false));
        let text = String::from_utf8(m.encode()).unwrap();
        assert!(text.contains(
            "isogate_stream_dropped_total{channel=\"hearing\",reason=\"payload_type\"} 1"
        ));
        assert!(text.contains("isogate_stream_bytes_total{channel=\"hearing\"} 1328"));
    }
}
