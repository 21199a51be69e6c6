//! Steps of the wall clock, told from its drift against the monotonic clock; no I/O: the
//! shell reads both clocks and passes them in.
//!
//! ```text
//!  every second:  (wall_ms, mono_ms) ─► StepDetector::observe ─► None | Some(Step)
//!
//!  between two looks:  Δwall − Δmono ≥ +threshold   the wall clock jumped forward
//!                      Δwall − Δmono ≤ −threshold   the wall clock was stepped back
//! ```
//!
//! NTP slews small errors (at most 0.5 ms per second) and steps large ones; a step shows as
//! the wall clock moving by a different amount than the monotonic clock between two looks.
//! Each look measures from the one before, so one step is reported once, and a slow slew
//! never adds up to a step.

/// The default threshold: a difference below it between two looks is not a step.
pub const DEFAULT_THRESHOLD_MS: u64 = 2_000;

/// A step of the wall clock seen between two looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Its size in ms: positive when the wall clock jumped forward, negative when it was
    /// stepped back.
    pub ms: i64,
    /// The wall clock at the look before (ms since the Unix epoch).
    pub wall_before_ms: u64,
    /// The wall clock at the look that saw it (ms since the Unix epoch).
    pub wall_after_ms: u64,
}

/// Watches the wall clock against the monotonic clock (see the module header).
#[derive(Debug, Clone)]
pub struct StepDetector {
    threshold_ms: u64,
    last: Option<(u64, u64)>,
}

impl StepDetector {
    /// A detector that reports differences of at least `threshold_ms` (at least 1) between
    /// two looks.
    pub fn new(threshold_ms: u64) -> Self {
        StepDetector {
            threshold_ms: threshold_ms.max(1),
            last: None,
        }
    }

    /// One look at both clocks: `wall_ms` in ms since the Unix epoch, `mono_ms` in ms on
    /// any monotonic clock. Returns the step since the last look, if there was one; the
    /// first look only sets the baseline. A monotonic value below the last one (not a
    /// monotonic clock) resets the baseline and reports nothing.
    pub fn observe(&mut self, wall_ms: u64, mono_ms: u64) -> Option<Step> {
        let last = self.last.replace((wall_ms, mono_ms));
        let (wall0, mono0) = last?;
        if mono_ms < mono0 {
            return None;
        }
        let drift = (i128::from(wall_ms) - i128::from(wall0)) - i128::from(mono_ms - mono0);
        if drift.unsigned_abs() < u128::from(self.threshold_ms) {
            return None;
        }
        Some(Step {
            ms: i64::try_from(drift).unwrap_or(if drift < 0 { i64::MIN } else { i64::MAX }),
            wall_before_ms: wall0,
            wall_after_ms: wall_ms,
        })
    }
}

impl Default for StepDetector {
    fn default() -> Self {
        Self::new(DEFAULT_THRESHOLD_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000_000;

    #[test]
    fn steady_clocks_report_nothing() {
        let mut d = StepDetector::default();
        for i in 0..100 {
            assert_eq!(d.observe(T0 + i * 1000, 5 + i * 1000), None);
        }
    }

    #[test]
    fn a_step_back_is_reported_once_with_its_size() {
        let mut d = StepDetector::default();
        assert_eq!(d.observe(T0, 1_000), None);
        assert_eq!(d.observe(T0 + 1_000, 2_000), None);
        // an hour back, a second later on the monotonic clock
        let s = d.observe(T0 + 2_000 - 3_600_000, 3_000).unwrap();
        assert_eq!(s.ms, -3_600_000);
        assert_eq!(s.wall_before_ms, T0 + 1_000);
        assert_eq!(s.wall_after_ms, T0 + 2_000 - 3_600_000);
        // then both run together again
        assert_eq!(d.observe(T0 + 3_000 - 3_600_000, 4_000), None);
    }

    #[test]
    fn a_step_forward_is_reported() {
        let mut d = StepDetector::new(3_000);
        d.observe(T0, 0);
        let s = d.observe(T0 + 1_000 + 60_000, 1_000).unwrap();
        assert_eq!(s.ms, 60_000);
    }

    #[test]
    fn below_the_threshold_is_no_step() {
        let mut d = StepDetector::new(3_000);
        d.observe(T0, 0);
        assert_eq!(d.observe(T0 + 1_000 + 2_999, 1_000), None);
        assert_eq!(d.observe(T0 + 2_000 + 2_999 - 2_999, 2_000), None);
        // exactly the threshold counts, either way
        assert_eq!(
            d.observe(T0 + 3_000 + 3_000, 3_000).map(|s| s.ms),
            Some(3_000)
        );
        assert_eq!(d.observe(T0 + 4_000, 4_000).map(|s| s.ms), Some(-3_000));
    }

    #[test]
    fn a_slow_slew_never_adds_up() {
        // 0.5 ms per second for a day, looked at every second
        let mut d = StepDetector::default();
        for i in 0..86_400u64 {
            assert_eq!(d.observe(T0 + i * 1000 + i / 2, i * 1000), None, "at {i}");
        }
    }

    #[test]
    fn a_late_look_measures_the_whole_gap() {
        // the watcher was held up for a minute: both clocks moved a minute, no step
        let mut d = StepDetector::default();
        d.observe(T0, 10);
        assert_eq!(d.observe(T0 + 60_000, 60_010), None);
        // a step and the delay together: only the step counts
        assert_eq!(
            d.observe(T0 + 60_000 + 30_000 - 5_000, 90_010)
                .map(|s| s.ms),
            Some(-5_000)
        );
    }

    #[test]
    fn a_clock_that_goes_back_resets_the_baseline() {
        let mut d = StepDetector::default();
        d.observe(T0, 10_000);
        assert_eq!(d.observe(T0 + 1, 5_000), None);
        assert_eq!(d.observe(T0 + 1_001, 6_000), None);
        assert!(
            d.observe(0, 7_000)
                .is_some_and(|s| s.ms < -1_000_000_000_000)
        );
    }
}
