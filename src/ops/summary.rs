//! The node's periodic summary: what each channel did since the last one, as one INFO line
//! per channel, read from the metrics' counters. Per-object lines are DEBUG; this is what an
//! operator reads at the default level. Nothing is said for a channel that did nothing, and
//! nothing at all while the node is idle.
//!
//! ```text
//!  counters (intake, transmit, land, refusals, masked) ─► Summary::take(metrics)
//!      ─► now − last, per channel ─► one `summary` line per channel that moved
//!  every SUMMARY_EVERY, and once more when the node stops
//! ```

use crate::ops::metrics::Metrics;
use prometheus::IntCounterVec;
use prometheus::core::Collector;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How often the summary is said (when anything happened).
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// What one channel did: counts of objects and bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Files taken from the outbox.
    pub taken: u64,
    /// Bytes taken from the outbox.
    pub taken_bytes: u64,
    /// Objects sent on a link (each sending, a resend too).
    pub sent: u64,
    /// Bytes sent on a link.
    pub sent_bytes: u64,
    /// Objects delivered into the inbox.
    pub landed: u64,
    /// Bytes delivered into the inbox.
    pub landed_bytes: u64,
    /// Objects refused (either side), every reason.
    pub refused: u64,
    /// Objects whose personal data was masked.
    pub masked: u64,
}

impl Counts {
    fn since(&self, before: &Counts) -> Counts {
        Counts {
            taken: self.taken.saturating_sub(before.taken),
            taken_bytes: self.taken_bytes.saturating_sub(before.taken_bytes),
            sent: self.sent.saturating_sub(before.sent),
            sent_bytes: self.sent_bytes.saturating_sub(before.sent_bytes),
            landed: self.landed.saturating_sub(before.landed),
            landed_bytes: self.landed_bytes.saturating_sub(before.landed_bytes),
            refused: self.refused.saturating_sub(before.refused),
            masked: self.masked.saturating_sub(before.masked),
        }
    }

    fn is_zero(&self) -> bool {
        *self == Counts::default()
    }
}

/// The counters' values at one moment, by channel.
pub type Snapshot = BTreeMap<String, Counts>;

/// The summary's memory: the counters as of the last line, and when that was.
#[derive(Debug)]
pub struct Summary {
    last: Snapshot,
    since: Instant,
}

impl Summary {
    /// A summary that counts from `metrics` as they are now (what happened before, say
    /// recovery at start-up, is not in the first line).
    pub fn new(metrics: &Metrics) -> Summary {
        Summary {
            last: snapshot(metrics),
            since: Instant::now(),
        }
    }

    /// What each channel did since the last call, for the channels that did anything.
    pub fn take(&mut self, metrics: &Metrics) -> Vec<(String, Counts)> {
        let now = snapshot(metrics);
        let moved = changes(&self.last, &now);
        self.last = now;
        moved
    }

    /// Says what each channel did since the last call: one INFO line per channel that moved
    /// (`period_s`: the seconds the line covers); nothing when idle.
    pub fn say(&mut self, metrics: &Metrics) {
        let period = std::mem::replace(&mut self.since, Instant::now()).elapsed();
        for (channel, c) in self.take(metrics) {
            tracing::info!(
                channel = %channel,
                taken = c.taken,
                taken_bytes = c.taken_bytes,
                sent = c.sent,
                sent_bytes = c.sent_bytes,
                landed = c.landed,
                landed_bytes = c.landed_bytes,
                refusals = c.refused,
                masked = c.masked,
                period_s = period.as_secs(),
                "summary"
            );
        }
    }
}

/// The channels whose counts differ between `before` and `now`, and by how much.
pub fn changes(before: &Snapshot, now: &Snapshot) -> Vec<(String, Counts)> {
    now.iter()
        .filter_map(|(channel, c)| {
            let d = c.since(&before.get(channel).copied().unwrap_or_default());
            (!d.is_zero()).then(|| (channel.clone(), d))
        })
        .collect()
}

/// Which of a channel's counts a counter feeds.
type Field = fn(&mut Counts) -> &mut u64;

/// The counters now, by channel (only the series that exist: reading creates none).
pub fn snapshot(m: &Metrics) -> Snapshot {
    let mut out = Snapshot::new();
    let fields: [(&IntCounterVec, Field); 8] = [
        (&m.intake_objects, |c| &mut c.taken),
        (&m.intake_bytes, |c| &mut c.taken_bytes),
        (&m.transmit_objects, |c| &mut c.sent),
        (&m.transmit_bytes, |c| &mut c.sent_bytes),
        (&m.land_objects, |c| &mut c.landed),
        (&m.land_bytes, |c| &mut c.landed_bytes),
        (&m.refusals, |c| &mut c.refused),
        (&m.masked, |c| &mut c.masked),
    ];
    for (counter, field) in fields {
        for family in counter.collect() {
            for metric in family.get_metric() {
                let Some(channel) = metric
                    .get_label()
                    .iter()
                    .find(|l| l.name() == "channel")
                    .map(|l| l.value().to_string())
                else {
                    continue;
                };
                // counters are whole numbers of objects or bytes
                let value = metric.get_counter().get_value().max(0.0) as u64;
                let slot = field(out.entry(channel).or_default());
                *slot = slot.saturating_add(value);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::reason::Reason;

    #[test]
    fn only_channels_that_moved_are_said_and_nothing_when_idle() {
        let m = Metrics::new().unwrap();
        m.intake_objects.with_label_values(&["a"]).inc();
        let mut s = Summary::new(&m);
        assert!(s.take(&m).is_empty(), "what came before is not counted");
        m.intake_objects.with_label_values(&["a"]).inc_by(3);
        m.intake_bytes.with_label_values(&["a"]).inc_by(4096);
        m.transmit_objects.with_label_values(&["a"]).inc_by(3);
        m.land_objects.with_label_values(&["b"]).inc();
        m.land_bytes.with_label_values(&["b"]).inc_by(10);
        m.refused("b", Reason::SizeLimit);
        m.refused("b", Reason::Symlink);
        let moved = s.take(&m);
        assert_eq!(moved.len(), 2);
        assert_eq!(moved[0].0, "a");
        assert_eq!(
            moved[0].1,
            Counts {
                taken: 3,
                taken_bytes: 4096,
                sent: 3,
                ..Counts::default()
            }
        );
        assert_eq!(moved[1].0, "b");
        assert_eq!(
            moved[1].1,
            Counts {
                landed: 1,
                landed_bytes: 10,
                refused: 2,
                ..Counts::default()
            }
        );
        // idle: nothing
        assert!(s.take(&m).is_empty());
        // reading created no series: channel "c" never appears
        assert!(!snapshot(&m).contains_key("c"));
        assert!(
            !String::from_utf8(m.encode())
                .unwrap()
                .contains("channel=\"c\"")
        );
    }
}
