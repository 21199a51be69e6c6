//! The command line: one module per command. Each parses nothing (clap does, in
//! `main.rs`) and renders its own output.
//!
//! ```text
//!  isogate init | run | demo | check | keygen | audit … | bench
//!            │     │
//!            │     └─► run: opens the node and starts its pipeline (sender, receiver, links)
//!            └─► init: writes a two-node lab
//! ```

pub mod bench;
pub mod demo;
pub mod init;
pub mod run;
