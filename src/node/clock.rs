//! The node's watch on its wall clock: once a second it reads both clocks and hands them to
//! the core's step detector; a step (NTP, an operator) is logged and audited `clock_step`.
//!
//! ```text
//!  every 1 s:  (crate::now_ms, crate::mono_ms) ─► core::clock::StepDetector
//!                    └─ Some(step) ─► ops::events::ClockStepped ─► audit `clock_step`
//!                                                                 └► WARN log
//! ```
//!
//! Nothing else reacts to a step: every timer already runs on the monotonic clock, and
//! records simply carry the wall time in force when they are made.

use crate::core::clock::{DEFAULT_THRESHOLD_MS, StepDetector};
use crate::node::Node;
use crate::ops::events::ClockStepped;
use std::sync::Arc;
use std::time::Duration;

/// How often both clocks are read.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Watches the wall clock until aborted (see the module header).
pub async fn watch(node: Arc<Node>) {
    let mut detector = StepDetector::new(DEFAULT_THRESHOLD_MS);
    let mut tick = tokio::time::interval(LOOK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some(step) = detector.observe(crate::now_ms(), crate::mono_ms()) {
            let n = node.clone();
            let _ = tokio::task::spawn_blocking(move || {
                ClockStepped {
                    ms: step.ms,
                    wall_before_ms: step.wall_before_ms,
                    wall_after_ms: step.wall_after_ms,
                }
                .emit(n.sink());
            })
            .await;
        }
    }
}
