//! The I/O shell of the one-way `diode` link around the sans-IO core in [`crate::core::diode`]:
//! threads, sockets, spool files and part files. Each side runs on its own OS threads (the
//! FEC and tagging work is CPU-bound and must not stall the async runtime); the sender's
//! RaptorQ repair coding runs on worker threads of its own ([`coder`]).
//!
//! ```text
//!  sending node                                      receiving node
//!  sealed ─► send: enqueue ─► wants ─► read spool    recv: UDP (GRO) ─► core.handle
//!            poll_transmit ─► UDP (GSO), paced ════►       events ─► write: verify chunks,
//!            retired ─► audit, held for resend              part file ─► inspect ─► land
//!            announce, checkpoint frames ════════════►  announced but missed ─► audit `lost`
//!                                                      checkpoint ─► audit `witnessed`
//!            heartbeats (mtu, T, K, digest) ═══════►  alarm: mismatch, bad key ─► log,
//!                                                      metric, /healthz, `link_mismatch`
//! ```
//!
//! Nothing is ever sent toward the sender: the receiving side has no output path at all.

pub mod alarm;
pub mod coder;
pub mod held;
pub mod path;
pub mod recv;
pub mod send;
pub mod udp;

use crate::core::diode::{ChannelSpec, config_digest as digest};
use crate::core::wire::LinkKind;
use crate::node::config::{Config, Role};

/// The digest of the diode channels this node carries in `role`: the sender's (its
/// sending channels) equals the receiver's (its receiving ones) when both nodes load the
/// same channel list. Stated in every heartbeat and checked by the receiver.
pub fn config_digest(cfg: &Config, role: Role) -> [u8; 16] {
    let specs: Vec<ChannelSpec<'_>> = cfg
        .channels
        .iter()
        .filter(|c| c.link == LinkKind::Diode && c.role == role)
        .map(|c| ChannelSpec {
            name: &c.name,
            kind: if c.stream.is_some() {
                "stream"
            } else {
                "files"
            },
            from: &c.from,
            to: &c.to,
        })
        .collect();
    digest(&specs)
}

use thiserror::Error;

/// Why the diode link could not start or had to stop.
#[derive(Debug, Error)]
pub enum DiodeError {
    /// The pair's datagram key could not be read.
    #[error(transparent)]
    Key(#[from] crate::keys::diode::DiodeKeyError),
    /// A socket operation failed.
    #[error("diode socket {addr}: {error}{}", crate::problem::hint(error))]
    Socket {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The sender's configuration was refused by the core.
    #[error("diode sender: {0}")]
    Sender(#[from] crate::core::diode::SenderError),
    /// The receiver's configuration was refused by the core.
    #[error("diode receiver: {0}")]
    Receiver(#[from] crate::core::diode::ConfigError),
    /// The node has no `[diode]` section.
    #[error("no [diode] section in the configuration")]
    NotConfigured,
    /// The system's random number generator gave no session id: the sender does not start,
    /// for a session id made another way could repeat one, and with it the keys and nonces
    /// its datagrams were sealed under.
    #[error("diode sender: the system's random number generator failed; no session id")]
    NoRandom,
    /// A directory of the node's state could not be made or used.
    #[error("directory {path}: {error}{}", crate::problem::hint(error))]
    State {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
}
