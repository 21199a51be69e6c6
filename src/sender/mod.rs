//! The sending node's pipeline.
//!
//! ```text
//!  outbox ─► watch (settle, take) ─► spool ─► inspect ─► seal ─► approval ─► route ─► link
//!              Spooled                         Inspected  Sealed  (pending)      (quic | diode)
//! ```
//!
//! [`watch`] notices and takes files (never one that [`writers`] says is still open), [`spool`] keeps them durable until the link is done
//! with them, [`pipeline`] inspects and seals, [`approval`] holds what a channel's
//! `[approval]` makes wait for its approvers, [`route`] hands each sealed object to its
//! channel's link. [`stream`] is the other path, for `stream` channels: UDP packets through
//! the stream gate straight to the link's outgoing queue, never spooled. [`messages`] takes
//! messages into batch objects, holding a batch while [`flow`] says the channel's earlier
//! batches are still on their way.

pub mod approval;
pub mod flow;
pub mod messages;
pub mod pipeline;
pub mod release;
pub mod route;
pub mod seal;
pub mod source;
pub mod spool;
pub mod stream;
pub mod watch;
pub mod writers;
