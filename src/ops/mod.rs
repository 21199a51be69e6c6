//! Operations: what the supervision platform sees of a node.
//!
//! ```text
//!  stages ─► events (one struct per event: log line + audit record + metric)
//!                      │
//!            metrics ◄─┘ ─► status: GET /metrics, GET /healthz (over http: HTTP/1.1
//!                                  with deadlines, shared with the web console)
//!            systemd: READY=1, RELOADING=1, WATCHDOG=1, STOPPING=1
//!            summary: one INFO line per busy channel a minute (per-object lines are DEBUG)
//!            repeat: a line that repeats is said once, then as a count once a minute
//!            stream: the life of a stream (started, its counts, stopped) on both nodes
//! ```

pub mod events;
pub mod http;
pub mod metrics;
pub mod repeat;
pub mod status;
pub mod stream;
pub mod summary;
pub mod systemd;
