//! The sans-IO core: values and state machines that take bytes and a clock value and
//! return bytes and events. Nothing here opens a file, a socket or a thread, so all of it
//! is fast, fuzzable and testable under a simulated network.
//!
//! ```text
//!  sender:   Spooled ─► Inspected ─► Sealed ─► wire frame ══►        (stage, manifest, wire)
//!  receiver: ══► wire frame ─► verify::Reception ─► Verified          (wire, verify)
//!  diode:    objects ─► diode::Sender ═ datagrams ═► diode::Receiver ─► object events
//!  audit:    records ─► merkle::Frontier ─► checkpoint (signed note)
//!  intake:   outbox signals ─► settle::Settler ─► take | wait
//!  streams:  UDP packet ─► stream::Gate ─► frame ══► Gate ─► Playout ─► UDP    (stream)
//!  clocks:   (wall, monotonic) ─► clock::StepDetector ─► step of the wall clock
//! ```

pub mod approval;
pub mod checkpoint;
pub mod clock;
pub mod digest;
pub mod diode;
pub mod id;
pub mod manifest;
pub mod merkle;
pub mod message;
pub mod reason;
pub mod settle;
pub mod stage;
pub mod stream;
pub mod verify;
pub mod wire;
