//! Telemetry events as types: one struct per thing that happens to an object or a link,
//! whose `emit` writes the audit record, bumps the metric and writes the log line together,
//! so that the three never drift apart (vector's `internal_events` pattern).
//!
//! ```text
//!  stage ─► Refused { … }.emit(&sink) ─┬─► audit log   (durable where the event needs it)
//!                                      ├─► metrics     (bounded labels: channel, reason, link)
//!                                      └─► tracing     (fields first, then a short sentence)
//! ```
//!
//! Audit failures are returned: a stage that cannot record what it did must not go on as if
//! it had. Metrics and logs cannot fail.

use crate::audit::{AuditError, AuditLog, Entry, Event};
use crate::core::id::ObjectId;
use crate::core::reason::{Refusal, Side};
use crate::core::wire::LinkKind;
use crate::ops::metrics::Metrics;

/// Where events go: the node's audit log and its metrics.
#[derive(Clone, Copy)]
pub struct Sink<'a> {
    /// The node's audit log.
    pub audit: &'a AuditLog,
    /// The node's metrics.
    pub metrics: &'a Metrics,
}

/// The object an event is about, as far as it is known.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Its channel (`_unverified` for an object whose manifest could not be trusted).
    pub channel: &'a str,
    /// Its id.
    pub id: ObjectId,
    /// Its name (empty when unknown: a manifest that could not be trusted).
    pub name: &'a str,
    /// Its size in bytes, when known.
    pub size: Option<u64>,
    /// The hash of its content (SHA-256, or SM3 in a `gm` pair), when known.
    pub digest: Option<[u8; 32]>,
}

impl Subject<'_> {
    fn entry(&self, peer: Option<&str>) -> Entry {
        // an object whose manifest could not be trusted has no name: its record names
        // neither a name nor the pseudo-channel it is quarantined under
        let mut e = if self.name.is_empty() {
            Entry {
                object_id: Some(self.id),
                ..Entry::default()
            }
        } else {
            Entry::object(self.channel, self.id, self.name)
        };
        e.size = self.size;
        e.digest = self.digest;
        e.peer = peer.map(str::to_string);
        e
    }
}

/// An object was refused (on either side) and is in quarantine: audited durably as
/// `refused` (sender) or `quarantined` (receiver), counted in `isogate_refusals_total`.
///
/// Its `sha256` (`sm3` in a `gm` log; and `size`) is the whole file's wherever its content was read, so that
/// an attempted leak is found by hash on both nodes:
/// - sender, any refusal of a spooled object: the spooled file (what is in quarantine);
/// - receiver, refused by its own inspection (or its antivirus' waiting time): the
///   content, verified equal to the manifest's hash;
/// - receiver, content that fails verification (chunk or content hash, size): the bytes
///   received, which are not what the manifest signs;
/// - receiver, refused before the content arrived (name, size, type by name, a resend
///   after such a refusal): the sender's signed hash from the manifest.
///
/// No hash exists where nothing was read: an outbox entry refused for what it is before
/// it is opened (a symlink, directory, FIFO, socket or device, a file with other hard
/// links, a name that is not UTF-8), and on the receiver an object whose manifest could
/// not be trusted (`_unverified`: bad signature or manifest, unknown channel, a frame
/// that does not decode).
pub struct Refused<'a> {
    /// The object.
    pub subject: Subject<'a>,
    /// The side that refused it.
    pub side: Side,
    /// The peer node, on the receiving side.
    pub peer: Option<&'a str>,
    /// The reason code and its detail.
    pub refusal: &'a Refusal,
}

impl Refused<'_> {
    /// Records the refusal.
    ///
    /// # Errors
    /// The audit record could not be written durably.
    pub fn emit(&self, sink: Sink<'_>) -> Result<(), AuditError> {
        let s = &self.subject;
        let mut e = s.entry(self.peer);
        e.reason = Some(self.refusal.reason);
        e.detail = Some(self.refusal.detail.clone());
        let event = match self.side {
            Side::Sender => Event::Refused,
            Side::Receiver => Event::Quarantined,
        };
        sink.audit.durable(event, e)?;
        sink.metrics.refused(s.channel, self.refusal.reason);
        tracing::warn!(channel = %s.channel, name = %s.name, object = %s.id, side = self.side.as_str(), reason = %self.refusal.reason, detail = %self.refusal.detail, "refused");
        Ok(())
    }
}

/// An object is about to be committed into its inbox: audited durably as `landed` before
/// the commit (write-ahead), counted in `isogate_land_*`.
pub struct Landed<'a> {
    /// The object (size and hash as delivered).
    pub subject: Subject<'a>,
    /// The peer node that sent it.
    pub peer: &'a str,
    /// The name it is delivered under, when not its own (the inbox already held one).
    pub delivered_as: Option<&'a str>,
}

impl Landed<'_> {
    /// Records the landing durably, then counts it.
    ///
    /// # Errors
    /// The audit record could not be written durably.
    pub fn emit(&self, sink: Sink<'_>) -> Result<(), AuditError> {
        let seq = self.append(sink)?;
        sink.audit.sync_to(seq)?;
        self.count(sink);
        Ok(())
    }

    /// Records the landing without waiting for it to be durable; returns the record's
    /// sequence number, for the caller's one [`crate::audit::AuditLog::sync_to`] after the
    /// records that go with it (a batch of messages' `message_delivered`). The caller
    /// counts the landing ([`Landed::count`]) once it is committed.
    ///
    /// # Errors
    /// The audit record could not be written.
    pub fn append(&self, sink: Sink<'_>) -> Result<u64, AuditError> {
        let s = &self.subject;
        let mut e = s.entry(Some(self.peer));
        e.detail = self.delivered_as.map(|n| format!("delivered as {n}"));
        sink.audit.append(Event::Landed, e)
    }

    /// Counts a committed landing in `isogate_land_*` and logs it.
    pub fn count(&self, sink: Sink<'_>) {
        let s = &self.subject;
        let channel = [s.channel];
        sink.metrics.land_objects.with_label_values(&channel).inc();
        sink.metrics
            .land_bytes
            .with_label_values(&channel)
            .inc_by(s.size.unwrap_or(0));
        tracing::debug!(channel = %s.channel, name = %s.name, object = %s.id, size = s.size.unwrap_or(0), delivered_as = self.delivered_as.unwrap_or(s.name), "landed");
    }
}

/// A delivery that a crash interrupted after its commit was finished at start-up.
pub struct LandingFinished<'a> {
    /// The object.
    pub subject: Subject<'a>,
    /// The peer node that sent it.
    pub peer: &'a str,
}

impl LandingFinished<'_> {
    /// Records the finished delivery (its `landed` record was written before the crash).
    ///
    /// # Errors
    /// The audit record could not be written durably.
    pub fn emit(&self, sink: Sink<'_>) -> Result<(), AuditError> {
        let s = &self.subject;
        let mut e = s.entry(Some(self.peer));
        e.detail = Some("delivery finished after a restart".into());
        sink.audit.durable(Event::Landed, e)?;
        tracing::info!(channel = %s.channel, name = %s.name, object = %s.id, "delivery finished after restart");
        Ok(())
    }
}

/// Personal data was masked, or refused messages were left out of a batch: the copy is
/// what crosses (or lands).
pub struct Masked<'a> {
    /// The object; its digest is the masked copy's.
    pub subject: Subject<'a>,
    /// The peer node, on the receiving side.
    pub peer: Option<&'a str>,
    /// The hash of the original content (SHA-256, or SM3 under `gm`).
    pub original: [u8; 32],
    /// How many lines (messages of a batch) were masked.
    pub lines: u64,
    /// How many refused messages of a batch the copy leaves out (each has its own
    /// `message_refused` record).
    pub left_out: u64,
}

impl Masked<'_> {
    /// Records the masking durably.
    ///
    /// # Errors
    /// The audit record could not be written durably.
    pub fn emit(&self, sink: Sink<'_>) -> Result<(), AuditError> {
        let s = &self.subject;
        let mut e = s.entry(self.peer);
        let left_out = match self.left_out {
            0 => String::new(),
            n => format!(", {n} refused message(s) left out"),
        };
        let masked = match self.lines {
            0 => crate::audit::NOTHING_MASKED.to_string(),
            n => format!("personal data masked in {n} line(s)"),
        };
        e.detail = Some(format!(
            "{masked}{left_out}; original {} {}",
            sink.audit.suite().hash_field(),
            hex::encode(self.original)
        ));
        sink.audit.durable(Event::Masked, e)?;
        if self.lines > 0 {
            sink.metrics.masked.with_label_values(&[s.channel]).inc();
        }
        tracing::debug!(channel = %s.channel, name = %s.name, lines = self.lines, "personal data masked");
        Ok(())
    }
}

/// The antivirus could not scan an object; it waits (sender) or the peer sends it again
/// (receiver). Emitted once per object, not per attempt.
pub struct ScanDeferred<'a> {
    /// The object.
    pub subject: Subject<'a>,
    /// What the antivirus client said.
    pub why: &'a str,
}

impl ScanDeferred<'_> {
    /// Records the deferral.
    ///
    /// # Errors
    /// The audit record could not be written.
    pub fn emit(&self, sink: Sink<'_>) -> Result<(), AuditError> {
        let s = &self.subject;
        let mut e = s.entry(None);
        e.detail = Some(self.why.to_string());
        sink.audit.append(Event::ScanDeferred, e)?;
        sink.metrics
            .scan_deferred
            .with_label_values(&[s.channel])
            .inc();
        tracing::warn!(channel = %s.channel, name = %s.name, error = %self.why, "antivirus unavailable; the object waits");
        Ok(())
    }
}

/// An object went out on a link.
pub struct Sent<'a> {
    /// The object.
    pub subject: Subject<'a>,
    /// The link it went out on.
    pub link: LinkKind,
}

impl Sent<'_> {
    /// Records the sending. An audit failure is logged, not returned: the object stays in
    /// the spool until its receipt (or retention) either way.
    pub fn emit(&self, sink: Sink<'_>) {
        let s = &self.subject;
        if let Err(err) = sink.audit.append(Event::Sent, s.entry(None)) {
            tracing::error!(object = %s.id, error = %err, "cannot audit a sent object");
        }
        sink.metrics
            .transmit_objects
            .with_label_values(&[s.channel])
            .inc();
        sink.metrics
            .transmit_bytes
            .with_label_values(&[s.channel])
            .inc_by(s.size.unwrap_or(0));
        tracing::debug!(channel = %s.channel, name = %s.name, object = %s.id, link = self.link.as_str(), "sent");
    }
}

/// A link to the peer came up or went down.
pub struct LinkChanged<'a> {
    /// Which link.
    pub link: LinkKind,
    /// Up (true) or down.
    pub up: bool,
    /// The peer node.
    pub peer: &'a str,
    /// The remote address, or why the link went down.
    pub detail: &'a str,
    /// Whether to write an audit record (a link seen by heartbeats only logs and counts).
    pub audited: bool,
}

impl LinkChanged<'_> {
    /// Records the change. An audit failure is logged: a link change is not an object's
    /// fate, and the link must not stop for it.
    pub fn emit(&self, sink: Sink<'_>) {
        sink.metrics
            .link_up
            .with_label_values(&[self.link.as_str()])
            .set(i64::from(self.up));
        if self.audited {
            let event = if self.up {
                Event::LinkUp
            } else {
                Event::LinkDown
            };
            let e = Entry {
                peer: Some(self.peer.to_string()),
                detail: Some(self.detail.to_string()),
                ..Entry::default()
            };
            if let Err(err) = sink.audit.append(event, e) {
                tracing::error!(error = %err, "cannot audit a link change");
            }
        }
        if self.up {
            tracing::info!(link = self.link.as_str(), peer = %self.peer, detail = %self.detail, "link up");
        } else {
            tracing::warn!(link = self.link.as_str(), peer = %self.peer, detail = %self.detail, "link down");
        }
    }
}

/// The wall clock was stepped (seen against the monotonic clock): audited `clock_step` with
/// the signed size in ms, logged at WARN. Timers go on, on the monotonic clock.
pub struct ClockStepped {
    /// The step in ms: positive forward, negative back.
    pub ms: i64,
    /// The wall clock before the step, ms since the Unix epoch.
    pub wall_before_ms: u64,
    /// The wall clock after it, ms since the Unix epoch.
    pub wall_after_ms: u64,
}

impl ClockStepped {
    /// The audit record's `detail`: the signed size first, so that it reads as a number.
    pub fn detail(&self) -> String {
        let way = if self.ms < 0 { "back" } else { "forward" };
        format!(
            "{} ms: the wall clock was stepped {way} {:.3} s (from {} to {} ms since the epoch); timers run on the monotonic clock",
            self.ms,
            self.ms.unsigned_abs() as f64 / 1000.0,
            self.wall_before_ms,
            self.wall_after_ms
        )
    }

    /// Records the step. An audit failure is logged: the clock is not an object's fate,
    /// and the node must not stop for it.
    pub fn emit(&self, sink: Sink<'_>) {
        let e = Entry {
            detail: Some(self.detail()),
            ..Entry::default()
        };
        // logged first: whoever sees the record can find the log line too
        tracing::warn!(
            step_ms = self.ms,
            wall_before_ms = self.wall_before_ms,
            wall_after_ms = self.wall_after_ms,
            "the wall clock was stepped; timers go on by the monotonic clock, records carry the new time"
        );
        if let Err(err) = sink.audit.append(Event::ClockStep, e) {
            tracing::error!(error = %err, "cannot audit a step of the wall clock");
        }
    }
}
