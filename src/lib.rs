//! isogate: a cross-network secure isolation-exchange gateway.
//!
//! Two nodes on the two sides of a network boundary carry files across it through a
//! one-way, policy-checked ferry with signed manifests and an audit log. See the README and
//! DESIGN.md for the vocabulary and the architecture.
//!
//! The core (`wire`, `manifest`, `verify`, `settle`, `policy`, `reason`) knows no I/O; the
//! stages (`watch`, `inspect`, `seal`, `transmit`, `receive`, `land`) move bytes and files.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod bench;
pub mod checkpoint;
pub mod clamd;
pub mod config;
pub mod content;
pub mod demo;
pub mod diode;
pub mod diode_link;
pub mod fsx;
pub mod fuzzing;
pub mod init;
pub mod inspect;
pub mod keys;
pub mod land;
pub mod link;
pub mod manifest;
pub mod merkle;
pub mod metrics;
pub mod node;
pub mod policies;
pub mod policy;
pub mod problem;
pub mod quarantine;
pub mod reason;
pub mod receive;
pub mod rotate;
pub mod seal;
pub mod settle;
pub mod spool;
pub mod stage;
pub mod status;
pub mod transmit;
pub mod udp;
pub mod verify;
pub mod watch;
pub mod wire;

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
