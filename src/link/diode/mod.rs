//! The I/O shell of the one-way `diode` link around the sans-IO core in [`crate::core::diode`]:
//! threads, sockets, spool files and part files. Each side runs on its own OS threads (the
//! FEC and HMAC work is CPU-bound and must not stall the async runtime).
//!
//! ```text
//!  sending node                                      receiving node
//!  sealed ─► send: enqueue ─► wants ─► read spool    recv: UDP (GRO) ─► core.handle
//!            poll_transmit ─► UDP (GSO), paced ════►       events ─► write: verify chunks,
//!            retired ─► audit, spool entry removed          part file ─► inspect ─► land
//! ```
//!
//! Nothing is ever sent toward the sender: the receiving side has no output path at all.

pub mod recv;
pub mod send;
pub mod udp;

use std::path::Path;
use thiserror::Error;

/// Why the diode link could not start or had to stop.
#[derive(Debug, Error)]
pub enum DiodeError {
    /// The key file could not be read.
    #[error("diode key {path}: {error}{}", crate::problem::hint(error))]
    KeyIo {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The key file does not hold 64 hexadecimal digits.
    #[error(
        "diode key {0}: expected 64 hexadecimal digits (32 bytes); make one with `isogate init` or `head -c 32 /dev/urandom | xxd -p -c 64`"
    )]
    KeyFormat(std::path::PathBuf),
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
}

/// Reads the pair's 32-byte datagram key: 64 hexadecimal digits, surrounding whitespace
/// allowed.
pub fn load_key(path: &Path) -> Result<[u8; 32], DiodeError> {
    let text = std::fs::read_to_string(path).map_err(|error| DiodeError::KeyIo {
        path: path.to_path_buf(),
        error,
    })?;
    let bytes = hex::decode(text.trim()).map_err(|_| DiodeError::KeyFormat(path.to_path_buf()))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| DiodeError::KeyFormat(path.to_path_buf()))
}

/// Writes a new random key file (owner-only permissions).
pub fn write_key(path: &Path) -> std::io::Result<()> {
    use ring::rand::SecureRandom;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut key = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| std::io::Error::other("no system randomness"))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{}", hex::encode(key))?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("diode.key");
        write_key(&p).unwrap();
        assert_eq!(load_key(&p).unwrap().len(), 32);
        assert!(write_key(&p).is_err(), "never overwrites a key");
        std::fs::write(&p, "abcd\n").unwrap();
        assert!(
            load_key(&p)
                .unwrap_err()
                .to_string()
                .contains("64 hexadecimal")
        );
        assert!(matches!(
            load_key(&dir.path().join("none")),
            Err(DiodeError::KeyIo { .. })
        ));
    }
}
