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
//!  node      config, keys and rotation, policies in force, quarantine, health and disk
//!  ops       metrics, telemetry events, /metrics and /healthz, systemd
//! ```
//!
//! Layers, each importing only those below it:
//! `cli` ─► `link` ─► `sender`, `receiver` ─► `node` ─► `ops` ─► `audit` ─► `inspect` ─►
//! `policy` ─► `content` ─► `core` ─► the support modules `keys` (Ed25519 and TLS key
//! material), `fsx` (durable file operations) and `problem` (errors that name file, line
//! and key).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod cli;
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

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
