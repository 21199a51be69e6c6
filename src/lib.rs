//! isogate: a cross-network secure isolation-exchange gateway.
//!
//! Two nodes on the two sides of a network boundary carry files across it through a
//! one-way, policy-checked ferry with signed manifests and an audit log. See the README and
//! DESIGN.md for the vocabulary and the architecture.
//!
//! The modules, top-down in pipeline order:
//!
//! ```text
//!  cli       the commands; `run` starts a node's pipeline
//!  core      sans-IO: ids, stage types, manifest, wire, verify, settle, digest, reasons,
//!            Merkle tree and checkpoints, the diode's FEC/pack/session state machines
//!  content   readers of formats and the detectors: bytes in, findings out
//!  policy    policy files: raw ─► validated, per-channel rules
//!  inspect   the evaluator (content + policy ─► verdict, masked copy), clamd
//!  sender    intake (watch) ─► spool ─► inspect ─► seal ─► route
//!  receiver  one link-neutral path: begin ─► write ─► verify ─► inspect again ─► land
//!  link      quic and diode shells around the wire and the diode core
//!  audit     the log, its checkpoints, witness, query, prove, reconcile, export
//!  node      config, keys and rotation, policies in force, quarantine and its desk, health
//!            and disk
//!  ops       metrics, telemetry events, /metrics and /healthz, systemd
//!  console   the officers' read-only web console (and its one writing action, approval)
//!  api       the message API: POST and GET of JSON messages on messages channels
//! ```
//!
//! Layers, each importing only those below it:
//! `cli` ─► `link`, `console`, `api` ─► `sender`, `receiver` ─► `node` ─► `ops` ─► `audit` ─► `inspect` ─►
//! `policy` ─► `content` ─► `core` ─► the support modules `keys` (Ed25519 and TLS key
//! material), `fsx` (durable file operations) and `problem` (errors that name file, line
//! and key).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod audit;
pub mod cli;
pub mod console;
pub mod content;
pub mod core;
pub mod inspect;
pub mod link;
pub mod node;
pub mod ops;
pub mod policy;
pub mod receiver;
pub mod sender;

pub mod fsx;
pub mod fuzzing;
pub mod keys;
pub mod problem;

/// Milliseconds since the Unix epoch (0 if the clock is before it): the wall clock, which
/// NTP or an operator may step either way. Only for what is recorded (audit records,
/// manifests, marks kept on disk), never to measure an interval or a deadline: that is
/// [`mono_ms`].
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch (0 if the clock is before it): the wall clock, as
/// [`now_ms`]; the stamp of a stream packet for the latency metric, never for order.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Milliseconds on the process's monotonic clock (`CLOCK_MONOTONIC`, through
/// [`std::time::Instant`]), counted from 1 at its first use: never 0, never back, untouched
/// when the wall clock is stepped. Every timer, pacer, heartbeat, timeout and interval
/// counts in these; the value means nothing outside this process and is never recorded.
pub fn mono_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_millis())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}
