//! The sans-IO core of the one-way `diode` link: objects in, authenticated UDP
//! datagrams out on the sending side; datagrams in, ordered object events out on
//! the receiving side. Nothing here touches a socket, a file, a thread or the
//! real clock: every call takes the bytes and the time (milliseconds) it needs and
//! returns bytes and events, so the whole link can be driven by a simulated
//! network in tests. (A shell may hand the sender a repair coder running on its own
//! threads, [`fec::RepairCoder`]: then `poll_transmit` may wait for its computation.) Nothing is ever sent back: the receiver has no output path.
//!
//! ```text
//!  sending node                                   receiving node
//!  ────────────                                   ──────────────
//!  shell: enqueue(id, header, size)               shell: handle(now, datagram)
//!         wants() ─► feed(id, off, bytes)                poll_event() ─► part files
//!           │                                              ▲
//!  ┌────────▼─────────┐                           ┌────────┴─────────┐
//!  │ sender.rs        │ new objects first, then   │ receiver.rs      │ session,
//!  │  (carousel,      │ planned copies, then      │  (session, replay│ dedup by
//!  │   repeat window, │ spare passes until the    │   window, dedup) │ object id
//!  │   interleaving,  │ repeat window ends; the   │                  │
//!  │   heartbeats)    │ symbols of D blocks alter-│                  │
//!  │                  │ nate on the wire          │                  │
//!  ├──────────────────┤                           ├──────────────────┤
//!  │ pack.rs          │ records → blocks that     │ pack.rs          │ blocks →
//!  │  BlockWriter     │ start on a record bound.  │  Unpacker        │ ObjectStart/
//!  ├──────────────────┤                           ├──────────────────┤ Data/Complete/
//!  │ fec.rs           │ RaptorQ: K source +       │ fec.rs           │ Lost
//!  │  encode_block    │ ceil(K·r)+c repair syms   │  Window, Assembl.│ bounded window
//!  ├──────────────────┤                           ├──────────────────┤
//!  │ pacer.rs         │ token bucket              │                  │
//!  ├──────────────────┤                           ├──────────────────┤
//!  │ wire.rs, tag.rs  │ header|body|GCM tag ═════►│ wire.rs, tag.rs  │ tag checked
//!  └──────────────────┘   UDP, one way only       └──────────────────┘ before parsing
//!  poll_transmit(now, buf) ─► socket              (never writes to the network)
//! ```
//!
//! Beside the data, the sender announces the objects it holds (and, with a
//! retired flag, those whose last copy has gone) and sends its signed audit
//! checkpoints as their own frames; the receiver names a retired object that never
//! completed ([`ReceiverEvent::ObjectMissed`]) and passes checkpoints on to be
//! witnessed.
//!
//! The link negotiates nothing, so each heartbeat carries the sender's MTU, symbol
//! size, block size and configuration digest; the receiver names every way they do not
//! fit its own settings ([`ReceiverEvent::Mismatch`]), and the sessions whose datagrams
//! fail authentication ([`ReceiverEvent::Unauthenticated`]).
//!
//! Module map: [`wire`] (datagram codec), [`tag`] (datagram authentication), [`agree`] (what both ends
//! must agree on, and the receiver's check), [`fec`] (RaptorQ
//! block coding and the receiver's reassembly window), [`pack`] (objects to a
//! record stream in blocks and back), [`pacer`] (token bucket), [`sender`] and
//! [`receiver`] (the two state machines), [`stream`] (live stream frames in small
//! FEC blocks sized for a delay budget, carried beside the objects).

pub mod agree;
pub mod fec;
pub mod pacer;
pub mod pack;
pub mod receiver;
pub mod sender;
pub mod stream;
pub mod tag;
pub mod wire;

#[cfg(test)]
mod sim;

pub use agree::{ChannelSpec, Mismatch, config_digest};
pub use pack::LossReason;
pub use receiver::{Receiver, ReceiverConfig, ReceiverEvent, ReceiverStats};
pub use sender::{MAX_INTERLEAVE, Sender, SenderConfig, SenderError, SenderEvent, Want};
pub use stream::{StreamDecoder, StreamEncoder, StreamError};
pub use wire::{LinkKey, WireError, max_payload, symbol_size_for_mtu};

use thiserror::Error;

/// A sender or receiver configuration that cannot work.
#[derive(Debug, Error, Clone, Copy, PartialEq)]
pub enum ConfigError {
    /// The MTU leaves no room for a symbol of the minimum size.
    #[error("MTU {0} is too small for a diode datagram")]
    MtuTooSmall(usize),
    /// The symbol size is misaligned, too small, or does not fit the MTU.
    #[error("symbol size {0} does not fit the MTU or is not a multiple of 8")]
    SymbolSize(u16),
    /// The number of source symbols per block is zero or above the limit.
    #[error("source symbols per block {0} out of range")]
    SourceSymbols(u16),
    /// The repair ratio is not a finite number in 0..=4.
    #[error("repair ratio {0} out of range 0..=4")]
    RepairRatio(f64),
    /// The interleave depth is above the receiver's window allows.
    #[error("interleave depth {0} out of range 0..=4")]
    Interleave(u16),
    /// Carousel copies must be at least 1.
    #[error("carousel copies must be at least 1")]
    Copies,
    /// The heartbeat interval must be positive.
    #[error("heartbeat interval must be positive")]
    HeartbeatInterval,
    /// The token bucket's burst is too small for one datagram, or too large.
    #[error("burst of {0} bytes must hold one datagram and stay below 1 TiB")]
    Burst(u64),
    /// A count or size limit is zero.
    #[error("limit `{0}` must be positive")]
    ZeroLimit(&'static str),
}

pub use crate::core::id::ObjectId;
