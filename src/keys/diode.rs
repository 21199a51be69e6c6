//! The diode link's pair key: 32 random bytes shared by the two nodes of a pair, stored as
//! 64 hexadecimal digits in a file only the service user can read. Every datagram carries
//! a tag under it (AES-256-GCM under a per-session key, or HMAC-SM3: see
//! `core::diode::tag`).

use std::path::Path;
use thiserror::Error;

/// Why the pair's datagram key could not be read.
#[derive(Debug, Error)]
pub enum DiodeKeyError {
    /// The key file could not be read.
    #[error("diode key {path}: {error}{}", crate::problem::hint(error))]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The key file does not hold 64 hexadecimal digits.
    #[error(
        "diode key {0}: expected 64 hexadecimal digits (32 bytes); make one with `isogate init` or `head -c 32 /dev/urandom | xxd -p -c 64`"
    )]
    Format(std::path::PathBuf),
}

/// Reads the pair's 32-byte datagram key: 64 hexadecimal digits, surrounding whitespace
/// allowed.
pub fn load(path: &Path) -> Result<[u8; 32], DiodeKeyError> {
    let text = std::fs::read_to_string(path).map_err(|error| DiodeKeyError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let bytes = hex::decode(text.trim()).map_err(|_| DiodeKeyError::Format(path.to_path_buf()))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| DiodeKeyError::Format(path.to_path_buf()))
}

/// Writes a new random key file (owner-only permissions).
pub fn write(path: &Path) -> std::io::Result<()> {
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
        write(&p).unwrap();
        assert_eq!(load(&p).unwrap().len(), 32);
        assert!(write(&p).is_err(), "never overwrites a key");
        std::fs::write(&p, "abcd\n").unwrap();
        assert!(load(&p).unwrap_err().to_string().contains("64 hexadecimal"));
        assert!(matches!(
            load(&dir.path().join("none")),
            Err(DiodeKeyError::Io { .. })
        ));
    }
}
