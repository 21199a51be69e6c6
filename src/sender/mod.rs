//! The sending node's pipeline.
//!
//! ```text
//!  outbox ─► watch (settle, take) ─► spool ─► inspect ─► seal ─► route ─► link (quic | diode)
//!              Spooled                         Inspected  Sealed
//! ```
//!
//! [`watch`] notices and takes files (never one that [`writers`] says is still open), [`spool`] keeps them durable until the link is done
//! with them, [`pipeline`] inspects and seals, [`route`] hands each sealed object to its
//! channel's link.

pub mod pipeline;
pub mod release;
pub mod route;
pub mod seal;
pub mod spool;
pub mod watch;
pub mod writers;
