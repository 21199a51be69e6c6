//! Signed checkpoints of an audit log, in the C2SP tlog-checkpoint note form:
//!
//! ```text
//! isogate/court                      origin: the node whose log this is
//! 1234                               tree size: records covered
//! 3q2+7w==...                        base64 of the Merkle root
//! time 1795660000000                 extension line: when it was made (ms since the epoch)
//!                                    (blank line)
//! — isogate/court AbCd...            signature line: key name, base64(key id ‖ Ed25519 or SM2 sig)
//! ```
//!
//! The signature covers the three body lines (with their newlines). Parsing is strict: the
//! text must be exactly one body and one signature line for the expected key.

use crate::core::merkle::Hash;
use crate::keys::{SigningKey, VerifyKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use thiserror::Error;

/// Largest checkpoint note accepted.
pub const MAX_NOTE: usize = 4096;

/// A checkpoint: the size and root of a node's audit log at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// `isogate/<node name>`.
    pub origin: String,
    /// Number of records covered.
    pub size: u64,
    /// Merkle root of those records.
    pub root: Hash,
    /// When it was made, in ms since the Unix epoch.
    pub time_ms: u64,
}

/// Why a checkpoint note was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// The note does not have the checkpoint shape.
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    /// No signature line verifies with the expected key.
    #[error("checkpoint is not signed by the expected key")]
    Signature,
}

/// The origin line of a node's log.
pub fn origin(node: &str) -> String {
    format!("isogate/{node}")
}

fn key_id(name: &str, key: &VerifyKey) -> [u8; 4] {
    // as in C2SP signed-note: SHA-256(name || 0x0A || 0x01 || public key)[:4]
    let mut c = ring::digest::Context::new(&ring::digest::SHA256);
    c.update(name.as_bytes());
    c.update(b"\n\x01");
    c.update(key.as_bytes());
    let d = c.finish();
    let mut id = [0u8; 4];
    id.copy_from_slice(&d.as_ref()[..4]);
    id
}

impl Checkpoint {
    fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\ntime {}\n",
            self.origin,
            self.size,
            B64.encode(self.root),
            self.time_ms
        )
    }

    /// The signed note.
    pub fn sign(&self, key: &SigningKey) -> String {
        let sig = key.sign(self.body().as_bytes());
        let mut blob = key_id(&self.origin, &key.verify_key()).to_vec();
        blob.extend_from_slice(&sig);
        format!(
            "{}\n\u{2014} {} {}\n",
            self.body(),
            self.origin,
            B64.encode(blob)
        )
    }

    /// Parses a signed note and verifies it with `key`; the origin must be `expect_origin`.
    pub fn open(
        note: &str,
        key: &VerifyKey,
        expect_origin: &str,
    ) -> Result<Checkpoint, CheckpointError> {
        use CheckpointError::Malformed;
        if note.len() > MAX_NOTE {
            return Err(Malformed("too long"));
        }
        let (body, sigs) = note.split_once("\n\n").ok_or(Malformed("no blank line"))?;
        let body = format!("{body}\n");
        let mut lines = body.lines();
        let origin = lines.next().ok_or(Malformed("no origin"))?;
        let size = lines.next().ok_or(Malformed("no size"))?;
        let root = lines.next().ok_or(Malformed("no root"))?;
        let time = lines
            .next()
            .and_then(|l| l.strip_prefix("time "))
            .ok_or(Malformed("no time line"))?;
        if time.is_empty() || (time.len() > 1 && time.starts_with('0')) {
            return Err(Malformed("bad time"));
        }
        let time_ms: u64 = time.parse().map_err(|_| Malformed("bad time"))?;
        if lines.next().is_some() {
            return Err(Malformed("extra body lines"));
        }
        if origin != expect_origin {
            return Err(Malformed("unexpected origin"));
        }
        if size.is_empty() || (size.len() > 1 && size.starts_with('0')) {
            return Err(Malformed("bad size"));
        }
        let size: u64 = size.parse().map_err(|_| Malformed("bad size"))?;
        let root_bytes = B64.decode(root).map_err(|_| Malformed("bad root"))?;
        let root: Hash = root_bytes
            .try_into()
            .map_err(|_| Malformed("bad root length"))?;
        let cp = Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            time_ms,
        };
        if !sigs.ends_with('\n') {
            return Err(Malformed("no final newline"));
        }
        let want_id = key_id(origin, key);
        for line in sigs.lines() {
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or(Malformed("bad signature line"))?;
            let (name, blob) = rest
                .split_once(' ')
                .ok_or(Malformed("bad signature line"))?;
            let blob = B64
                .decode(blob)
                .map_err(|_| Malformed("bad signature encoding"))?;
            if name != origin || blob.len() != 68 || blob[..4] != want_id {
                continue;
            }
            if key.verify(cp.body().as_bytes(), &blob[4..]) {
                return Ok(cp);
            }
        }
        Err(CheckpointError::Signature)
    }

    /// Like `open`, accepting a signature by any of `keys` (a peer's current and next key
    /// while it rotates). A malformed note is refused whatever the keys.
    pub fn open_any(
        note: &str,
        keys: &[VerifyKey],
        expect_origin: &str,
    ) -> Result<Checkpoint, CheckpointError> {
        let mut last = CheckpointError::Signature;
        for key in keys {
            match Checkpoint::open(note, key, expect_origin) {
                Ok(cp) => return Ok(cp),
                Err(e @ CheckpointError::Malformed(_)) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_open_round_trip_and_tampering() {
        let key = SigningKey::generate().unwrap();
        let cp = Checkpoint {
            origin: origin("court"),
            size: 1234,
            root: [7; 32],
            time_ms: 99,
        };
        let note = cp.sign(&key);
        assert!(note.starts_with("isogate/court\n1234\n"));
        assert_eq!(
            Checkpoint::open(&note, &key.verify_key(), "isogate/court").unwrap(),
            cp
        );
        let other = SigningKey::generate().unwrap();
        assert_eq!(
            Checkpoint::open(&note, &other.verify_key(), "isogate/court"),
            Err(CheckpointError::Signature)
        );
        let bad = note.replace("1234", "1235");
        assert_eq!(
            Checkpoint::open(&bad, &key.verify_key(), "isogate/court"),
            Err(CheckpointError::Signature)
        );
        assert!(Checkpoint::open(&note, &key.verify_key(), "isogate/internet").is_err());
        let both = [other.verify_key(), key.verify_key()];
        assert_eq!(
            Checkpoint::open_any(&note, &both, "isogate/court").unwrap(),
            cp
        );
        assert_eq!(
            Checkpoint::open_any(&note, &both[..1], "isogate/court"),
            Err(CheckpointError::Signature)
        );
        for n in 0..note.len() {
            if note.is_char_boundary(n) {
                assert!(Checkpoint::open(&note[..n], &key.verify_key(), "isogate/court").is_err());
            }
        }
    }
}
