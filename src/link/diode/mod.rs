//! The I/O shell of the one-way `diode` link around the sans-IO core in [`crate::core::diode`]:
//! threads, sockets, spool files and part files. Each side runs on its own OS threads (the
//! FEC and HMAC work is CPU-bound and must not stall the async runtime).
//!
//! ```text
//!  sending node                                      receiving node
//!  sealed ─► send: enqueue ─► wants ─► read spool    recv: UDP (GRO) ─► core.handle
//!            poll_transmit ─► UDP (GSO), paced ════►       events ─► write: verify chunks,
//!            retired ─► audit, held for resend              part file ─► inspect ─► land
//!            announce, checkpoint frames ════════════►  announced but missed ─► audit `lost`
//!                                                      checkpoint ─► audit `witnessed`
//! ```
//!
//! Nothing is ever sent toward the sender: the receiving side has no output path at all.

pub mod held;
pub mod recv;
pub mod send;
pub mod udp;

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
    /// A directory of the node's state could not be made or used.
    #[error("directory {path}: {error}{}", crate::problem::hint(error))]
    State {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
}
