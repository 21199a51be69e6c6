//! Every metric the node exports, named here and nowhere else, in Prometheus text format.
//! Names follow `isogate_<stage>_<thing>`; labels are `channel` (from the configuration),
//! `reason` (a reason code), `status` (a receipt status), `outcome` (of a policy reload),
//! `dir` (state or exchange), `link` (quic or diode), `version` (one policy version per
//! channel at a time; the build's on `isogate_build_info`) and `node`/`peer` (this node's
//! and its peer's names, from the configuration): nothing unbounded.
//!
//! Counters are bumped where things happen. Gauges that describe the disk (quarantine and
//! spool contents, free space, checkpoint age) are measured when scraped.
//!
//! From zero: every labelled counter whose label values are known at start (each
//! configured channel, each reason code, each final receipt status, each policy reload
//! outcome) is exported at 0 before anything happens ([`Metrics::prime`]), so that
//! `increase(...[5m]) > 0` sees the first event after a restart (a series born at 1 is
//! no increase to Prometheus).
//!
//! ```text
//!  start ─► Metrics::new ─► prime(sending, receiving) ─► every series at 0 ─► /metrics
//!  event ─► counter.inc()  ─► 0 → 1: an increase an alert sees
//! ```

use crate::core::reason::Reason;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The node's metrics.
pub struct Metrics {
    registry: Registry,
    /// Files taken from an outbox, by channel.
    pub intake_objects: IntCounterVec,
    /// Bytes taken from an outbox, by channel.
    pub intake_bytes: IntCounterVec,
    /// Whether intake is paused because free space is below the floor (0 or 1).
    pub intake_paused: IntGauge,
    /// Whether the last take from a channel's outbox failed (0 or 1), by channel: a fault
    /// that repeats keeps it at 1 and `/healthz` names it.
    pub intake_failing: IntGaugeVec,
    /// Objects sent on the link, by channel.
    pub transmit_objects: IntCounterVec,
    /// Bytes sent on the link, by channel.
    pub transmit_bytes: IntCounterVec,
    /// Final receipts, by channel and status.
    pub transmit_receipts: IntCounterVec,
    /// Seconds from the start of sending an object to its receipt, by channel.
    pub transmit_receipt_seconds: HistogramVec,
    /// Objects delivered into an inbox, by channel.
    pub land_objects: IntCounterVec,
    /// Bytes delivered into an inbox, by channel.
    pub land_bytes: IntCounterVec,
    /// Objects told to wait because their inbox's file system has no room for them above
    /// the floor (the space ledger), by channel.
    pub land_waiting_space: IntGaugeVec,
    /// Refusals, by channel and reason code (on whichever side refused).
    pub refusals: IntCounterVec,
    /// Objects whose personal data was masked, by channel.
    pub masked: IntCounterVec,
    /// Objects that waited for an antivirus scan, by channel.
    pub scan_deferred: IntCounterVec,
    /// Policy reloads, by channel and outcome (reloaded or refused).
    pub policy_reloads: IntCounterVec,
    /// The policy version in force, by channel (value 1).
    pub policy_info: IntGaugeVec,
    /// Whether each link to the peer is up (0 or 1), by link (`quic` or `diode`). Written
    /// by the link events; the node's state lives in the node, never read back from here.
    pub link_up: IntGaugeVec,
    /// The QUIC path's largest UDP payload now, in bytes (what its MTU discovery, RFC 8899,
    /// confirmed), by link; written by the sending node while its connection is up.
    pub link_path_mtu: IntGaugeVec,
    /// QUIC packets the sending node's connection declared lost (what they carried that
    /// must arrive is sent again; stream datagrams are not), by link.
    pub link_lost_packets: IntCounterVec,
    /// FEC repair symbols used to recover blocks (diode links).
    pub fec_repairs: IntCounter,
    /// FEC blocks that could not be recovered (diode links).
    pub fec_lost_blocks: IntCounter,
    /// Diode datagrams dropped because they failed authentication.
    pub diode_forged: IntCounter,
    /// Later copies of diode objects that resumed a lost copy after the bytes kept of it,
    /// instead of starting over.
    pub diode_resumed: IntCounter,
    /// Diode datagrams the kernel dropped before the node could read them.
    pub diode_kernel_drops: IntCounter,
    /// Diode datagrams the receiver dropped, by reason ([`DIODE_DROP_REASONS`]).
    pub diode_dropped: IntCounterVec,
    /// 1 while the diode sender's settings do not fit this receiver, by reason
    /// (`mtu`, `symbol_size`, `block_size`, `config`, `no_data`).
    pub diode_mismatch: IntGaugeVec,
    /// Diode objects whose repeat window ended on the sender (audited `retired`), by channel.
    pub diode_retired: IntCounterVec,
    /// Diode objects the receiver audited `lost` (retired by the sender, never arrived
    /// whole), by channel.
    pub diode_lost: IntCounterVec,
    /// Diode objects sent again at an operator's request (`isogate resend`), by channel.
    pub diode_resent: IntCounterVec,
    /// Refused objects held in quarantine, by channel.
    pub quarantine_objects: IntGaugeVec,
    /// Bytes held in quarantine, by channel.
    pub quarantine_bytes: IntGaugeVec,
    /// Objects in the spool (taken, not yet confirmed or retired), by channel.
    pub spool_objects: IntGaugeVec,
    /// Age of the oldest object in the spool, by channel.
    pub spool_oldest_age_seconds: IntGaugeVec,
    /// Objects waiting on the sender's approval desk, by channel.
    pub approval_pending: IntGaugeVec,
    /// Approvers' decisions on the sender, by channel and decision (`approve`, `reject`,
    /// `expired`: the node's own, `refused`: a request that changed nothing).
    pub approval_decisions: IntCounterVec,
    /// Free bytes on the file system of the state or exchange directory.
    pub disk_free_bytes: IntGaugeVec,
    /// Seconds since the last signed checkpoint of the audit log.
    pub audit_checkpoint_age_seconds: IntGauge,
    /// Audit records that make a checkpoint due and wait for it (all but `witnessed`):
    /// 0 when the log is idle and signed as far as it needs to be.
    pub audit_checkpoint_due_records: IntGauge,
    /// Constant 1, labelled with the build's `version` and this node's `node` and `peer`
    /// names: tells what runs where (and joins other series by `instance`).
    pub build_info: IntGaugeVec,
    /// Stream packets passed on (to the link on the sending node, to the application on
    /// the receiving node), by channel.
    pub stream_packets: IntCounterVec,
    /// Bytes of those packets (UDP payloads), by channel.
    pub stream_bytes: IntCounterVec,
    /// Stream packets dropped, by channel and reason (`core::stream::DropReason::code`).
    /// Frames that name no stream channel of this node count on `_unverified`.
    pub stream_dropped: IntCounterVec,
    /// Seconds from the sending node's wall clock at sending to this node's at arrival,
    /// by channel (receiving node; meaningful on one host or with synchronized clocks).
    pub stream_latency_seconds: HistogramVec,
    /// 1 while a stream is live on the channel (a packet passed within `silence_s`).
    pub stream_live: IntGaugeVec,
    /// Messages the sending node's policy accepted and made durable in a batch, by channel.
    pub messages_accepted: IntCounterVec,
    /// Messages the sending node refused, by channel and reason code.
    pub messages_refused: IntCounterVec,
    /// Batch objects made durable in the spool (one group commit each), by channel.
    pub messages_batches: IntCounterVec,
    /// Messages appended to the receiving node's message log, by channel.
    pub messages_delivered: IntCounterVec,
    /// Messages dropped by the receiving node because their id was already in its log.
    pub messages_duplicate: IntCounterVec,
    /// Messages published to the channel's JetStream subject and acknowledged by it.
    pub messages_nats_published: IntCounterVec,
    /// Failed JetStream operations (connect, fetch, publish, ack), by channel.
    pub messages_nats_errors: IntCounterVec,
}

/// The final receipt statuses (`isogate_transmit_receipts_total{status}`).
const RECEIPT_STATUSES: [crate::core::wire::ReceiptStatus; 4] = [
    crate::core::wire::ReceiptStatus::Landed,
    crate::core::wire::ReceiptStatus::Quarantined,
    crate::core::wire::ReceiptStatus::Duplicate,
    crate::core::wire::ReceiptStatus::Refused,
];

/// The outcomes of a policy reload (`isogate_policy_reloads_total{outcome}`).
pub const RELOAD_OUTCOMES: [&str; 2] = ["reloaded", "refused"];

/// Why the diode receiver drops a datagram: longer than its MTU allows, failing
/// authentication, malformed, a block larger than it accepts, of an old session, or
/// seen already.
pub const DIODE_DROP_REASONS: [&str; 6] = [
    "too_long",
    "bad_tag",
    "bad_header",
    "block_too_large",
    "stale_session",
    "duplicate",
];

type R<T> = Result<T, prometheus::Error>;

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> R<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> R<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn gauge(r: &Registry, name: &str, help: &str) -> R<IntGauge> {
    let g = IntGauge::new(name, help)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn plain_counter(r: &Registry, name: &str, help: &str) -> R<IntCounter> {
    let c = IntCounter::new(name, help)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

impl Metrics {
    /// Defines every metric. The names and labels are constants: an error here is a
    /// programming error, which the unit tests catch.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let r = Registry::new();
        let ch = &["channel"];
        let receipt = HistogramVec::new(
            HistogramOpts::new(
                "isogate_transmit_receipt_seconds",
                "Seconds from the start of sending an object to its receipt.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0,
            ]),
            ch,
        )?;
        r.register(Box::new(receipt.clone()))?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "isogate_stream_latency_seconds",
                "Seconds from the sending node's clock at sending to this node's at arrival.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0,
            ]),
            ch,
        )?;
        r.register(Box::new(latency.clone()))?;
        Ok(Metrics {
            intake_objects: counter(
                &r,
                "isogate_intake_objects_total",
                "Files taken from an outbox.",
                ch,
            )?,
            intake_bytes: counter(
                &r,
                "isogate_intake_bytes_total",
                "Bytes taken from an outbox.",
                ch,
            )?,
            intake_paused: gauge(
                &r,
                "isogate_intake_paused",
                "1 while intake is paused: free space below the floor.",
            )?,
            intake_failing: gauge_vec(
                &r,
                "isogate_intake_failing",
                "1 while the last take from the channel's outbox failed.",
                ch,
            )?,
            transmit_objects: counter(
                &r,
                "isogate_transmit_objects_total",
                "Objects sent on the link.",
                ch,
            )?,
            transmit_bytes: counter(
                &r,
                "isogate_transmit_bytes_total",
                "Bytes sent on the link.",
                ch,
            )?,
            transmit_receipts: counter(
                &r,
                "isogate_transmit_receipts_total",
                "Final receipts from the peer, by status.",
                &["channel", "status"],
            )?,
            transmit_receipt_seconds: receipt,
            land_objects: counter(
                &r,
                "isogate_land_objects_total",
                "Objects delivered into an inbox.",
                ch,
            )?,
            land_bytes: counter(
                &r,
                "isogate_land_bytes_total",
                "Bytes delivered into an inbox.",
                ch,
            )?,
            land_waiting_space: gauge_vec(
                &r,
                "isogate_land_waiting_space_objects",
                "Objects waiting for free space in their inbox (inbox full).",
                ch,
            )?,
            refusals: counter(
                &r,
                "isogate_refusals_total",
                "Objects refused and quarantined, by reason code.",
                &["channel", "reason"],
            )?,
            masked: counter(
                &r,
                "isogate_inspect_masked_total",
                "Objects whose personal data was masked.",
                ch,
            )?,
            scan_deferred: counter(
                &r,
                "isogate_inspect_scan_deferred_total",
                "Objects that waited because the antivirus could not scan.",
                ch,
            )?,
            policy_reloads: counter(
                &r,
                "isogate_policy_reloads_total",
                "Policy reloads, by outcome (reloaded, refused).",
                &["channel", "outcome"],
            )?,
            policy_info: gauge_vec(
                &r,
                "isogate_policy_info",
                "The policy version in force (value 1).",
                &["channel", "version"],
            )?,
            link_up: gauge_vec(
                &r,
                "isogate_link_up",
                "1 while the link to the peer is up, by link.",
                &["link"],
            )?,
            link_path_mtu: gauge_vec(
                &r,
                "isogate_link_path_mtu_bytes",
                "The QUIC path's largest UDP payload now (bytes), by link.",
                &["link"],
            )?,
            link_lost_packets: counter(
                &r,
                "isogate_link_lost_packets_total",
                "QUIC packets the sending node declared lost, by link.",
                &["link"],
            )?,
            fec_repairs: plain_counter(
                &r,
                "isogate_fec_repairs_total",
                "FEC repair symbols used to recover blocks (diode links).",
            )?,
            fec_lost_blocks: plain_counter(
                &r,
                "isogate_fec_lost_blocks_total",
                "FEC blocks that could not be recovered (diode links).",
            )?,
            diode_forged: plain_counter(
                &r,
                "isogate_diode_forged_datagrams_total",
                "Diode datagrams dropped because they failed authentication.",
            )?,
            diode_resumed: plain_counter(
                &r,
                "isogate_diode_resumed_total",
                "Diode object copies that resumed a lost earlier copy after its kept bytes.",
            )?,
            diode_kernel_drops: plain_counter(
                &r,
                "isogate_diode_kernel_drops_total",
                "Diode datagrams the kernel dropped: the socket's receive queue overflowed.",
            )?,
            diode_dropped: counter(
                &r,
                "isogate_diode_dropped_total",
                "Diode datagrams the receiver dropped, by reason.",
                &["reason"],
            )?,
            diode_mismatch: gauge_vec(
                &r,
                "isogate_diode_mismatch",
                "1 while the diode sender's settings do not fit this receiver, by reason.",
                &["reason"],
            )?,
            diode_retired: counter(
                &r,
                "isogate_diode_retired_total",
                "Diode objects whose repeat window ended on the sender (audited retired).",
                ch,
            )?,
            diode_lost: counter(
                &r,
                "isogate_diode_lost_total",
                "Diode objects the sender retired that never arrived whole here (audited lost).",
                ch,
            )?,
            diode_resent: counter(
                &r,
                "isogate_diode_resent_total",
                "Diode objects sent again at an operator's request (isogate resend).",
                ch,
            )?,
            quarantine_objects: gauge_vec(
                &r,
                "isogate_quarantine_objects",
                "Refused objects held in quarantine.",
                ch,
            )?,
            quarantine_bytes: gauge_vec(
                &r,
                "isogate_quarantine_bytes",
                "Bytes held in quarantine.",
                ch,
            )?,
            approval_pending: gauge_vec(
                &r,
                "isogate_approval_pending",
                "Objects waiting on the sender for their approvers ([approval]).",
                ch,
            )?,
            approval_decisions: counter(
                &r,
                "isogate_approval_decisions_total",
                "Approval decisions on the sender: approve, reject, expired, refused (a request that changed nothing).",
                &["channel", "decision"],
            )?,
            spool_objects: gauge_vec(
                &r,
                "isogate_spool_objects",
                "Objects in the spool: taken, not yet confirmed (quic) or retired (diode).",
                ch,
            )?,
            spool_oldest_age_seconds: gauge_vec(
                &r,
                "isogate_spool_oldest_age_seconds",
                "Age of the oldest object in the spool.",
                ch,
            )?,
            disk_free_bytes: gauge_vec(
                &r,
                "isogate_disk_free_bytes",
                "Free bytes on the file system of the state or exchange directory.",
                &["dir"],
            )?,
            audit_checkpoint_age_seconds: gauge(
                &r,
                "isogate_audit_checkpoint_age_seconds",
                "Seconds since the last signed checkpoint of the audit log.",
            )?,
            audit_checkpoint_due_records: gauge(
                &r,
                "isogate_audit_checkpoint_due_records",
                "Audit records waiting for a checkpoint that makes one due (all but witnessed).",
            )?,
            build_info: gauge_vec(
                &r,
                "isogate_build_info",
                "Constant 1: the version running, this node's name and its peer's.",
                &["version", "node", "peer"],
            )?,
            stream_packets: counter(
                &r,
                "isogate_stream_packets_total",
                "Stream packets passed on (to the link, or to the application).",
                ch,
            )?,
            stream_bytes: counter(
                &r,
                "isogate_stream_bytes_total",
                "Bytes of stream packets passed on (UDP payloads).",
                ch,
            )?,
            stream_dropped: counter(
                &r,
                "isogate_stream_dropped_total",
                "Stream packets dropped, by reason.",
                &["channel", "reason"],
            )?,
            stream_latency_seconds: latency,
            stream_live: gauge_vec(
                &r,
                "isogate_stream_live",
                "1 while a stream is live on the channel.",
                ch,
            )?,
            messages_accepted: counter(
                &r,
                "isogate_messages_accepted_total",
                "Messages accepted and made durable in a batch (sending node).",
                ch,
            )?,
            messages_refused: counter(
                &r,
                "isogate_messages_refused_total",
                "Messages refused by the sending node's policy, by reason.",
                &["channel", "reason"],
            )?,
            messages_batches: counter(
                &r,
                "isogate_messages_batches_total",
                "Batch objects of messages made durable in the spool.",
                ch,
            )?,
            messages_delivered: counter(
                &r,
                "isogate_messages_delivered_total",
                "Messages appended to the message log (receiving node).",
                ch,
            )?,
            messages_duplicate: counter(
                &r,
                "isogate_messages_duplicate_total",
                "Messages dropped because their id was already in the message log.",
                ch,
            )?,
            messages_nats_published: counter(
                &r,
                "isogate_messages_nats_published_total",
                "Messages published to JetStream and acknowledged (receiving node).",
                ch,
            )?,
            messages_nats_errors: counter(
                &r,
                "isogate_messages_nats_errors_total",
                "Failed JetStream operations (connect, fetch, publish, ack).",
                ch,
            )?,
            registry: r,
        })
    }

    /// Makes the diode counters of `channel` exist at 0 from the start, so that the
    /// first retirement, loss or resend is an increase an alert sees.
    pub fn diode_channel(&self, channel: &str) {
        for c in [&self.diode_retired, &self.diode_lost, &self.diode_resent] {
            c.with_label_values(&[channel]);
        }
    }

    /// Makes the diode receiver's drop counters and mismatch gauges exist at 0 from the
    /// start, so that the first drop or mismatch is a change an alert sees.
    pub fn diode_receiver(&self) {
        for reason in DIODE_DROP_REASONS {
            self.diode_dropped.with_label_values(&[reason]);
        }
        for reason in crate::core::diode::Mismatch::REASONS {
            self.diode_mismatch.with_label_values(&[reason]).set(0);
        }
    }

    /// Exports `isogate_build_info{version, node, peer}` = 1.
    pub fn build(&self, node: &str, peer: &str) {
        self.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), node, peer])
            .set(1);
    }

    /// Makes every labelled counter whose label values are known at start exist at 0, so
    /// that the first event after a start is an increase an alert sees: for each channel
    /// this node sends on (`sending`) its intake, transmit, receipt, masking and deferral
    /// counters; for each it receives on (`receiving`) its landing, masking and deferral
    /// counters; for both, every reason of `isogate_refusals_total` and both policy reload
    /// outcomes. (The receiver adds its `_unverified` pseudo-channel with
    /// [`Metrics::prime_refusals`].)
    pub fn prime(&self, sending: &[&str], receiving: &[&str]) {
        for &c in sending {
            for v in [
                &self.intake_objects,
                &self.intake_bytes,
                &self.transmit_objects,
                &self.transmit_bytes,
            ] {
                v.with_label_values(&[c]);
            }
            for s in RECEIPT_STATUSES {
                self.transmit_receipts.with_label_values(&[c, s.as_str()]);
            }
        }
        for &c in receiving {
            self.land_objects.with_label_values(&[c]);
            self.land_bytes.with_label_values(&[c]);
        }
        for &c in sending.iter().chain(receiving) {
            self.prime_refusals(c);
            self.masked.with_label_values(&[c]);
            self.scan_deferred.with_label_values(&[c]);
            for outcome in RELOAD_OUTCOMES {
                self.policy_reloads.with_label_values(&[c, outcome]);
            }
        }
    }

    /// Makes `isogate_refusals_total` exist at 0 for every reason on `channel`.
    pub fn prime_refusals(&self, channel: &str) {
        for reason in Reason::ALL {
            self.refusals.with_label_values(&[channel, reason.as_str()]);
        }
    }

    /// Makes a stream channel's series exist at 0 from the start: packets, bytes, every
    /// drop reason, and the live gauge.
    pub fn stream_channel(&self, channel: &str) {
        self.stream_packets.with_label_values(&[channel]);
        self.stream_bytes.with_label_values(&[channel]);
        self.stream_live.with_label_values(&[channel]).set(0);
        for reason in crate::core::stream::DropReason::ALL {
            self.stream_dropped
                .with_label_values(&[channel, reason.code()]);
        }
    }

    /// Counts a stream packet dropped on `channel`.
    pub fn stream_drop(&self, channel: &str, reason: crate::core::stream::DropReason) {
        self.stream_dropped
            .with_label_values(&[channel, reason.code()])
            .inc();
    }

    /// Counts a stream packet of `bytes` passed on on `channel`.
    pub fn stream_passed(&self, channel: &str, bytes: usize) {
        self.stream_packets.with_label_values(&[channel]).inc();
        self.stream_bytes
            .with_label_values(&[channel])
            .inc_by(bytes as u64);
    }

    /// Counts a refusal.
    pub fn refused(&self, channel: &str, reason: Reason) {
        self.refusals
            .with_label_values(&[channel, reason.as_str()])
            .inc();
    }

    /// Records the policy version in force on a channel, replacing the one before.
    pub fn policy_version(&self, channel: &str, old: Option<&str>, version: &str) {
        if let Some(old) = old {
            let _ = self.policy_info.remove_label_values(&[channel, old]);
        }
        self.policy_info
            .with_label_values(&[channel, version])
            .set(1);
    }

    /// Observes a receipt latency.
    pub fn receipt(&self, channel: &str) -> Histogram {
        self.transmit_receipt_seconds.with_label_values(&[channel])
    }

    /// Every metric, in Prometheus text format.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_named_isogate_and_encodes() {
        let m = Metrics::new().unwrap();
        m.refused("to-internet", Reason::Malware);
        m.intake_objects.with_label_values(&["to-internet"]).inc();
        m.receipt("to-internet").observe(0.02);
        m.policy_version("to-internet", None, "abc");
        m.policy_version("to-internet", Some("abc"), "def");
        let text = String::from_utf8(m.encode()).unwrap();
        assert!(
            text.contains("isogate_refusals_total{channel=\"to-internet\",reason=\"malware\"} 1")
        );
        assert!(text.contains("isogate_policy_info{channel=\"to-internet\",version=\"def\"} 1"));
        assert!(!text.contains("version=\"abc\""));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("isogate_"), "{line}");
        }
    }

    #[test]
    fn primed_series_exist_at_zero_before_any_event() {
        let m = Metrics::new().unwrap();
        m.prime(&["to-internet"], &["to-court"]);
        m.prime_refusals("_unverified");
        m.build("court", "internet");
        let text = String::from_utf8(m.encode()).unwrap();
        for reason in Reason::ALL {
            for channel in ["to-internet", "to-court", "_unverified"] {
                let series = format!(
                    "isogate_refusals_total{{channel=\"{channel}\",reason=\"{}\"}} 0",
                    reason.as_str()
                );
                assert!(text.contains(&series), "{series} missing");
            }
        }
        for series in [
            "isogate_intake_objects_total{channel=\"to-internet\"} 0",
            "isogate_transmit_receipts_total{channel=\"to-internet\",status=\"quarantined\"} 0",
            "isogate_land_objects_total{channel=\"to-court\"} 0",
            "isogate_inspect_masked_total{channel=\"to-court\"} 0",
            "isogate_inspect_scan_deferred_total{channel=\"to-internet\"} 0",
            "isogate_policy_reloads_total{channel=\"to-court\",outcome=\"refused\"} 0",
        ] {
            assert!(text.contains(series), "{series} missing");
        }
        // a sending channel does not land, nor a receiving one take
        assert!(!text.contains("isogate_land_objects_total{channel=\"to-internet\"}"));
        assert!(!text.contains("isogate_intake_objects_total{channel=\"to-court\"}"));
        let info = format!(
            "isogate_build_info{{node=\"court\",peer=\"internet\",version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&info), "{info} missing");
        m.stream_channel("hearing");
        let text = String::from_utf8(m.encode()).unwrap();
        for series in [
            "isogate_stream_packets_total{channel=\"hearing\"} 0",
            "isogate_stream_dropped_total{channel=\"hearing\",reason=\"payload_type\"} 0",
            "isogate_stream_dropped_total{channel=\"hearing\",reason=\"link_down\"} 0",
            "isogate_stream_live{channel=\"hearing\"} 0",
        ] {
            assert!(text.contains(series), "{series} missing");
        }
        // the first refusal is an increase from 0
        m.refused("to-internet", Reason::Malware);
        let text = String::from_utf8(m.encode()).unwrap();
        assert!(
            text.contains("isogate_refusals_total{channel=\"to-internet\",reason=\"malware\"} 1")
        );
    }

    /// The alert rules and the dashboard shipped under `monitoring/` use only metrics that
    /// exist, so a rename here cannot silently blind the supervision platform.
    #[test]
    fn shipped_alerts_and_dashboard_name_real_metrics() {
        // every metric is named by a string literal in this module
        let source = include_str!("metrics.rs");
        let names: Vec<&str> = source
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|s| s.starts_with("isogate_") && !s.contains(' '))
            .collect();
        for (file, text) in [
            ("alerts.yml", include_str!("../../monitoring/alerts.yml")),
            (
                "grafana-dashboard.json",
                include_str!("../../monitoring/grafana-dashboard.json"),
            ),
        ] {
            let mut seen = 0;
            for (i, _) in text.match_indices("isogate_") {
                let name: String = text[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(&name);
                assert!(
                    names.contains(&base),
                    "{file} uses {name}, which is not a metric"
                );
                seen += 1;
            }
            assert!(seen > 5, "{file} names too few metrics");
        }
    }
}
