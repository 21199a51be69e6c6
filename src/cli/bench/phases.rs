//! `isogate bench`, where a large file's time goes: the audit records of its crossing,
//! read back from both nodes' logs once it has landed, split its drop-to-landed time into
//! the steps of the pipeline (DESIGN.md §3):
//!
//! ```text
//!  dropped ─► taken ─► sealed ───────────► sent ──────────► landed ───────────► in the inbox
//!   (bench)   intake   inspected, hashed,  the last byte    verified, inspected  marker written,
//!             (spool)  signed (sending)    handed to the    again (receiving;    renamed in
//!                                          link             audited first)       (seen by the bench)
//! ```
//!
//! Times are the records' `time_ms` (the nodes' wall clocks, milliseconds, both on this
//! machine) and the bench's wall clock when it renamed the file into the outbox and when it
//! saw the file in the inbox.
//!
//! Beside each step, the cores each node used in it ([`CpuTrace`]): each node's CPU time
//! (`/proc/PID/stat`, user and system) sampled on the same wall clock while the file
//! crossed. A step whose node used about one core waits on one thread; one well under a
//! core waits on the disk or on the other node; one at the machine's cores is bound by them.

use crate::audit::{Event, Record, read};
use std::io;
use std::path::Path;

/// The audit times of one crossing, in milliseconds since the Unix epoch: `taken`,
/// `sealed` and the first `sent` from the sending node's log, `landed` from the receiving
/// node's; `None` for a step with no record (yet).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Phases {
    /// Taken into the spool.
    pub taken: Option<u64>,
    /// Inspected and sealed (signed manifest).
    pub sealed: Option<u64>,
    /// First sent in full over the link.
    pub sent: Option<u64>,
    /// Landed in the receiving node's inbox.
    pub landed: Option<u64>,
}

impl Phases {
    /// Whether every step has its record.
    pub fn complete(&self) -> bool {
        self.missing().is_empty()
    }

    /// The line the bench prints: seconds from `dropped_ms` to taken, then each step's
    /// seconds from the one before, the last one up to `seen_ms` (the file seen in the
    /// inbox); a step that ends before it starts (a wall clock stepped back) reads `n/a`.
    /// `None` unless [`Phases::complete`].
    pub fn line(&self, dropped_ms: u64, seen_ms: u64) -> Option<String> {
        let (taken, sealed, sent, landed) = (self.taken?, self.sealed?, self.sent?, self.landed?);
        let s = |from: u64, to: u64| match to.checked_sub(from) {
            Some(ms) => format!("{:.2} s", ms as f64 / 1000.0),
            None => "n/a".to_string(),
        };
        Some(format!(
            "drop to taken {}, inspected and sealed {}, sent {}, landed {}, in the inbox {}",
            s(dropped_ms, taken),
            s(taken, sealed),
            s(sealed, sent),
            s(sent, landed),
            s(landed, seen_ms)
        ))
    }

    /// The line of the cores each node used in each step, from `dropped_ms` to `landed`
    /// (`cores used, court / internet: drop to taken 0.62 / 0.01, …`; `—` for a step
    /// [`CpuTrace::cores`] cannot tell). `None` unless [`Phases::complete`] and the trace
    /// has nodes.
    pub fn cores_line(&self, dropped_ms: u64, trace: &CpuTrace) -> Option<String> {
        let (taken, sealed, sent, landed) = (self.taken?, self.sealed?, self.sent?, self.landed?);
        if trace.nodes.is_empty() {
            return None;
        }
        let step = |what: &str, from: u64, to: u64| {
            let each = match trace.cores(from, to) {
                Some(c) => c
                    .iter()
                    .map(|c| format!("{c:.2}"))
                    .collect::<Vec<_>>()
                    .join(" / "),
                None => "—".to_string(),
            };
            format!("{what} {each}")
        };
        Some(format!(
            "cores used, {}: {}, {}, {}, {}",
            trace.nodes.join(" / "),
            step("drop to taken", dropped_ms, taken),
            step("inspected and sealed", taken, sealed),
            step("sent", sealed, sent),
            step("landed", sent, landed),
        ))
    }

    /// The steps with no record, by their audit event names (empty when complete).
    pub fn missing(&self) -> Vec<&'static str> {
        [
            ("taken", self.taken),
            ("sealed", self.sealed),
            ("sent", self.sent),
            ("landed", self.landed),
        ]
        .into_iter()
        .filter_map(|(name, t)| t.is_none().then_some(name))
        .collect()
    }
}

/// Steps shorter than this (milliseconds) get no cores: the kernel counts CPU time in clock
/// ticks (10 ms at the usual 100 Hz), too coarse for them.
pub const MIN_STEP_MS: u64 = 100;

/// Each node's CPU time sampled while a file crossed, on the wall clock of the audit
/// records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuTrace {
    /// The nodes' names, in the order of each sample's values.
    pub nodes: Vec<String>,
    /// Samples in time order: the wall clock (milliseconds since the Unix epoch) and each
    /// node's CPU time then (seconds, user and system).
    pub samples: Vec<(u64, Vec<f64>)>,
}

impl CpuTrace {
    /// Each node's CPU time (seconds) at `at_ms`, interpolated between the samples on
    /// either side; `None` outside the trace.
    fn at(&self, at_ms: u64) -> Option<Vec<f64>> {
        let after = self.samples.partition_point(|(t, _)| *t < at_ms);
        let (t1, c1) = self.samples.get(after)?;
        if *t1 == at_ms {
            return Some(c1.clone());
        }
        let (t0, c0) = self.samples.get(after.checked_sub(1)?)?;
        // samples out of order (a wall clock stepped back) tell nothing
        let span = t1.checked_sub(*t0).filter(|s| *s > 0)?;
        let f = at_ms.checked_sub(*t0)? as f64 / span as f64;
        Some(c0.iter().zip(c1).map(|(a, b)| a + (b - a) * f).collect())
    }

    /// The cores each node used from `from_ms` to `to_ms` (CPU seconds per wall-clock
    /// second), in the order of [`CpuTrace::nodes`]; `None` for a step shorter than
    /// [`MIN_STEP_MS`], not inside the trace, or where a node's CPU time could not be read.
    pub fn cores(&self, from_ms: u64, to_ms: u64) -> Option<Vec<f64>> {
        if to_ms < from_ms.saturating_add(MIN_STEP_MS) {
            return None;
        }
        let (from, to) = (self.at(from_ms)?, self.at(to_ms)?);
        let secs = (to_ms - from_ms) as f64 / 1000.0;
        let cores: Vec<f64> = from.iter().zip(&to).map(|(a, b)| (b - a) / secs).collect();
        cores.iter().all(|c| c.is_finite()).then_some(cores)
    }
}

/// The last crossing of the file `name`: its last `taken` record in the sending node's
/// audit directory `sending`, the `sealed` and first `sent` records of that object after
/// it, and its `landed` record in the receiving node's audit directory `receiving`.
/// Lines that are not records are skipped.
///
/// # Errors
/// A log segment cannot be listed or read.
pub fn read_phases(sending: &Path, receiving: &Path, name: &str) -> io::Result<Phases> {
    let mut p = Phases::default();
    let mut id: Option<String> = None;
    read::for_each_line(sending, |_, _, line| {
        let Ok(r) = serde_json::from_slice::<Record>(line) else {
            return Ok(());
        };
        if r.event == Event::Taken && r.name.as_deref() == Some(name) {
            p = Phases {
                taken: Some(r.time_ms),
                ..Phases::default()
            };
            id = r.object_id;
        } else if id.is_some() && r.object_id == id {
            match r.event {
                Event::Sealed => p.sealed = Some(r.time_ms),
                Event::Sent if p.sent.is_none() => p.sent = Some(r.time_ms),
                _ => {}
            }
        }
        Ok(())
    })?;
    if id.is_some() {
        read::for_each_line(receiving, |_, _, line| {
            if let Ok(r) = serde_json::from_slice::<Record>(line)
                && r.event == Event::Landed
                && r.object_id == id
            {
                p.landed = Some(r.time_ms);
            }
            Ok(())
        })?;
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn log(dir: &Path, lines: &[&str]) {
        fs::create_dir_all(dir).unwrap();
        fs::write(
            dir.join(crate::audit::segment_name(1)),
            lines.join("\n") + "\n",
        )
        .unwrap();
    }

    #[test]
    fn the_last_crossing_of_a_name_is_split_into_its_steps() {
        let t = tempfile::tempdir().unwrap();
        let (court, internet) = (t.path().join("court"), t.path().join("internet"));
        log(
            &court,
            &[
                // an earlier crossing of the same name: replaced by the later one
                r#"{"seq":1,"time_ms":100,"node":"court","event":"taken","object_id":"aa","name":"big.pdf"}"#,
                r#"{"seq":2,"time_ms":150,"node":"court","event":"sealed","object_id":"aa","name":"big.pdf"}"#,
                r#"{"seq":3,"time_ms":1000,"node":"court","event":"taken","object_id":"bb","name":"big.pdf"}"#,
                r#"{"seq":4,"time_ms":1001,"node":"court","event":"taken","object_id":"cc","name":"other.pdf"}"#,
                r#"{"seq":5,"time_ms":1300,"node":"court","event":"sealed","object_id":"bb","name":"big.pdf"}"#,
                r#"{"seq":6,"time_ms":2000,"node":"court","event":"sent","object_id":"bb","name":"big.pdf"}"#,
                // sent again (a quic link's retry after a lost receipt): the first counts
                r#"{"seq":7,"time_ms":9000,"node":"court","event":"sent","object_id":"bb","name":"big.pdf"}"#,
                "not a record",
            ],
        );
        log(
            &internet,
            &[
                r#"{"seq":1,"time_ms":200,"node":"internet","event":"landed","object_id":"aa","name":"big.pdf"}"#,
                r#"{"seq":2,"time_ms":2400,"node":"internet","event":"landed","object_id":"bb","name":"big.pdf"}"#,
            ],
        );
        let p = read_phases(&court, &internet, "big.pdf").unwrap();
        assert_eq!(
            p,
            Phases {
                taken: Some(1000),
                sealed: Some(1300),
                sent: Some(2000),
                landed: Some(2400),
            }
        );
        assert_eq!(
            p.line(700, 2450).unwrap(),
            "drop to taken 0.30 s, inspected and sealed 0.30 s, sent 0.70 s, landed 0.40 s, in the inbox 0.05 s"
        );
        assert!(p.missing().is_empty());
        // a wall clock stepped back between two steps
        assert_eq!(
            p.line(1200, 2450).unwrap(),
            "drop to taken n/a, inspected and sealed 0.30 s, sent 0.70 s, landed 0.40 s, in the inbox 0.05 s"
        );
    }

    #[test]
    fn a_step_without_its_record_gives_no_line() {
        let t = tempfile::tempdir().unwrap();
        let (court, internet) = (t.path().join("court"), t.path().join("internet"));
        log(
            &court,
            &[
                r#"{"seq":1,"time_ms":1000,"node":"court","event":"taken","object_id":"bb","name":"big.pdf"}"#,
                r#"{"seq":2,"time_ms":1300,"node":"court","event":"sealed","object_id":"bb","name":"big.pdf"}"#,
                r#"{"seq":3,"time_ms":2000,"node":"court","event":"sent","object_id":"bb","name":"big.pdf"}"#,
            ],
        );
        log(&internet, &[]);
        let p = read_phases(&court, &internet, "big.pdf").unwrap();
        assert!(!p.complete());
        assert_eq!(p.missing(), ["landed"]);
        assert_eq!(p.line(900, 3000), None);
        let none = read_phases(&court, &internet, "absent.pdf").unwrap();
        assert_eq!(none, Phases::default());
    }

    #[test]
    fn the_cores_of_each_step_come_from_the_samples_around_it() {
        // court: 1 core from 1000 to 2000 ms, then none; internet: none, then 2 cores
        let trace = CpuTrace {
            nodes: vec!["court".into(), "internet".into()],
            samples: vec![
                (1000, vec![5.0, 7.0]),
                (1500, vec![5.5, 7.0]),
                (2000, vec![6.0, 7.0]),
                (3000, vec![6.0, 9.0]),
            ],
        };
        assert_eq!(trace.cores(1000, 2000), Some(vec![1.0, 0.0]));
        // between samples: interpolated
        assert_eq!(trace.cores(1250, 1750), Some(vec![1.0, 0.0]));
        assert_eq!(trace.cores(1500, 3000), Some(vec![1.0 / 3.0, 4.0 / 3.0]));
        // outside the trace, or too short a step to tell
        assert_eq!(trace.cores(900, 2000), None);
        assert_eq!(trace.cores(2000, 3001), None);
        assert_eq!(trace.cores(1000, 1000 + MIN_STEP_MS - 1), None);
        // a node not read, or samples out of order: nothing told
        let mut unread = trace.clone();
        unread.samples[1].1[1] = f64::NAN;
        assert_eq!(unread.cores(1250, 2000), None);
        assert_eq!(unread.cores(2000, 3000), Some(vec![0.0, 2.0]));
        let stepped = CpuTrace {
            nodes: vec!["court".into()],
            samples: vec![(1000, vec![1.0]), (900, vec![2.0])],
        };
        assert_eq!(stepped.cores(950, 1100), None);
        let p = Phases {
            taken: Some(1500),
            sealed: Some(2000),
            sent: Some(2050),
            landed: Some(3000),
        };
        assert_eq!(
            p.cores_line(1000, &trace).unwrap(),
            "cores used, court / internet: drop to taken 1.00 / 0.00, inspected and sealed \
             1.00 / 0.00, sent —, landed 0.00 / 2.00"
        );
        assert_eq!(p.cores_line(1000, &CpuTrace::default()), None);
        let incomplete = Phases { landed: None, ..p };
        assert_eq!(incomplete.cores_line(1000, &trace), None);
    }
}
