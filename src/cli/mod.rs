//! The command line: one module per command. Each parses nothing (clap does, in
//! `main.rs`): `main.rs` hands it plain arguments, and it does the command's work and
//! renders its own output. `anyhow` stops here, at the binary's edge.
//!
//! ```text
//!  main.rs: parse ─► dispatch ─┬─► init::command     writes a two-node lab
//!                              ├─► run::command      opens the node, starts its pipeline
//!                              ├─► demo::command     a lab, both nodes, sample files
//!                              ├─► bench::run        the machine's limits and the figures
//!                              ├─► check::command    the compliance review
//!                              ├─► audit::{verify, query, prove, verify_proof,
//!                              │          reconcile, export}
//!                              ├─► keygen::{command, approver}  a node's or an approver's keys
//!                              ├─► quarantine::{list, show, request}  the officer's desk
//!                              ├─► console::passwd   the web console's password file
//!                              ├─► approve::{decide, list}  an approver's signed decision
//!                              └─► resend::command   the diode sender sends held objects again
//!  process: logging, the async runtime, the shutdown signal
//! ```

pub mod approve;
pub mod audit;
pub mod bench;
pub mod bench_inspect;
pub mod check;
pub mod console;
pub mod demo;
pub mod init;
pub mod keygen;
pub mod process;
pub mod quarantine;
pub mod resend;
pub mod run;
