//! Operations: what the supervision platform sees of a node.
//!
//! ```text
//!  stages ─► events (one struct per event: log line + audit record + metric)
//!                      │
//!            metrics ◄─┘ ─► status: GET /metrics, GET /healthz
//!            systemd: READY=1, RELOADING=1, WATCHDOG=1, STOPPING=1
//! ```

pub mod events;
pub mod metrics;
pub mod status;
pub mod systemd;
