//! The manifest: the signed description of one object that crosses (DESIGN.md §2), its
//! binary encoding (serde + bincode, capped, trailing bytes refused) and its signature.
//!
//! Pure functions over bytes: building, encoding, signing and verifying need no I/O.

pub use crate::core::id::ObjectId;
use crate::keys::{SigningKey, VerifyKey};
use bincode::Options;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Smallest chunk size a manifest may declare.
pub const MIN_CHUNK: u32 = 4 * 1024;
/// Largest chunk size a manifest may declare.
pub const MAX_CHUNK: u32 = 16 * 1024 * 1024;
/// Chunk size this build writes.
pub const CHUNK_SIZE: u32 = 1024 * 1024;
/// Largest number of chunks in one manifest (with 1 MiB chunks: 256 GiB).
pub const MAX_CHUNKS: u64 = 256 * 1024;
/// Longest name, channel or node string in a manifest, in bytes.
pub const MAX_TEXT: usize = 1024;
/// Largest encoded manifest body or signed manifest.
pub const MAX_ENCODED: u64 = 9 * 1024 * 1024;
/// Domain separation for manifest signatures.
const SIGNING_CONTEXT: &[u8] = b"isogate manifest v1\0";

/// What one object is, as the sender sealed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Unique id of the object.
    pub object_id: ObjectId,
    /// Channel it travels on.
    pub channel: String,
    /// Base name of the file.
    pub name: String,
    /// Size of the content in bytes.
    pub size: u64,
    /// Content type decided by the sender's inspection.
    pub content_type: String,
    /// SHA-256 of the whole content.
    pub sha256: [u8; 32],
    /// Size of every chunk but the last.
    pub chunk_size: u32,
    /// SHA-256 of each chunk, in order.
    pub chunks: Vec<[u8; 32]>,
    /// Name of the sending node.
    pub sender: String,
    /// Per-channel sequence number on the sender.
    pub sequence: u64,
    /// When the sender took the object, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The sender's verdict code (for the audit; the receiver decides for itself).
    pub verdict: String,
}

/// A manifest body with its Ed25519 signature, as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedManifest {
    /// The bincode encoding of the manifest.
    pub body: Vec<u8>,
    /// Ed25519 signature over the signing context and `body`.
    pub signature: Vec<u8>,
}

/// Why a manifest could not be built, decoded or verified.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The bytes do not decode (truncated, trailing bytes, over the cap, bad field).
    #[error("manifest does not decode: {0}")]
    Decode(#[from] bincode::Error),
    /// The signature does not verify against the pinned key.
    #[error("manifest signature does not verify")]
    Signature,
    /// The manifest decodes but is inconsistent.
    #[error("manifest is inconsistent: {0}")]
    Invalid(&'static str),
    /// The system random generator failed.
    #[error("system random generator failed")]
    Random,
}

fn codec() -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(MAX_ENCODED)
        .with_fixint_encoding()
        .reject_trailing_bytes()
}

/// Number of chunks for `size` bytes in chunks of `chunk_size`.
pub fn chunk_count(size: u64, chunk_size: u32) -> u64 {
    size.div_ceil(u64::from(chunk_size.max(1)))
}

impl Manifest {
    /// Checks the structural invariants a manifest from the wire must meet.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if !(MIN_CHUNK..=MAX_CHUNK).contains(&self.chunk_size) {
            return Err(ManifestError::Invalid("chunk size out of range"));
        }
        let n = chunk_count(self.size, self.chunk_size);
        if n > MAX_CHUNKS {
            return Err(ManifestError::Invalid("too many chunks"));
        }
        if n != self.chunks.len() as u64 {
            return Err(ManifestError::Invalid("chunk count does not match size"));
        }
        for s in [
            &self.channel,
            &self.name,
            &self.sender,
            &self.content_type,
            &self.verdict,
        ] {
            if s.len() > MAX_TEXT {
                return Err(ManifestError::Invalid("text field too long"));
            }
        }
        if self.name.is_empty() || self.channel.is_empty() || self.sender.is_empty() {
            return Err(ManifestError::Invalid("empty name, channel or sender"));
        }
        Ok(())
    }

    /// Encodes and signs the manifest.
    pub fn sign(&self, key: &SigningKey) -> Result<SignedManifest, ManifestError> {
        self.validate()?;
        let body = codec().serialize(self)?;
        let signature = key.sign(&signing_message(&body));
        Ok(SignedManifest { body, signature })
    }
}

fn signing_message(body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_CONTEXT.len() + body.len());
    m.extend_from_slice(SIGNING_CONTEXT);
    m.extend_from_slice(body);
    m
}

impl SignedManifest {
    /// Encodes the signed manifest for the wire.
    pub fn encode(&self) -> Result<Vec<u8>, ManifestError> {
        Ok(codec().serialize(self)?)
    }

    /// Decodes a signed manifest from the wire; nothing in it is trusted yet.
    pub fn decode(bytes: &[u8]) -> Result<SignedManifest, ManifestError> {
        Ok(codec().deserialize(bytes)?)
    }

    /// Verifies the signature with the pinned key, then decodes and validates the body.
    pub fn open(&self, key: &VerifyKey) -> Result<Manifest, ManifestError> {
        if !key.verify(&signing_message(&self.body), &self.signature) {
            return Err(ManifestError::Signature);
        }
        let m: Manifest = codec().deserialize(&self.body)?;
        m.validate()?;
        Ok(m)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(size: u64) -> Manifest {
        let n = chunk_count(size, CHUNK_SIZE) as usize;
        Manifest {
            object_id: ObjectId([1; 16]),
            channel: "to-internet".into(),
            name: "民事判决书（2026）吉01民初123号.pdf".into(),
            size,
            content_type: "pdf".into(),
            sha256: [2; 32],
            chunk_size: CHUNK_SIZE,
            chunks: vec![[3; 32]; n],
            sender: "court".into(),
            sequence: 42,
            created_ms: 1_700_000_000_000,
            verdict: "accept".into(),
        }
    }

    #[test]
    fn round_trip_sign_open() {
        let key = SigningKey::generate().unwrap();
        let m = sample(3 * 1024 * 1024 + 5);
        let signed = m.sign(&key).unwrap();
        let bytes = signed.encode().unwrap();
        let back = SignedManifest::decode(&bytes).unwrap();
        assert_eq!(back.open(&key.verify_key()).unwrap(), m);
    }

    #[test]
    fn every_truncation_and_trailing_byte_refused() {
        let key = SigningKey::generate().unwrap();
        let bytes = sample(10).sign(&key).unwrap().encode().unwrap();
        for n in 0..bytes.len() {
            assert!(SignedManifest::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(SignedManifest::decode(&long).is_err());
    }

    #[test]
    fn oversized_length_refused_without_allocating() {
        // A body length of 2^62 bytes: decoding must fail on the cap, not try to allocate.
        let mut bytes = (1u64 << 62).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 16]);
        assert!(SignedManifest::decode(&bytes).is_err());
    }

    #[test]
    fn other_key_or_flipped_byte_refused() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let signed = sample(10).sign(&key).unwrap();
        assert!(matches!(
            signed.open(&other.verify_key()),
            Err(ManifestError::Signature)
        ));
        let mut bad = signed.clone();
        bad.body[5] ^= 1;
        assert!(matches!(
            bad.open(&key.verify_key()),
            Err(ManifestError::Signature)
        ));
    }

    #[test]
    fn inconsistent_manifest_refused() {
        let key = SigningKey::generate().unwrap();
        let mut m = sample(3 * 1024 * 1024);
        m.chunks.pop();
        assert!(m.sign(&key).is_err());
        let mut m = sample(10);
        m.chunk_size = 1;
        assert!(m.validate().is_err());
        assert_eq!(chunk_count(0, CHUNK_SIZE), 0);
        assert_eq!(chunk_count(1, CHUNK_SIZE), 1);
        assert_eq!(chunk_count(u64::from(CHUNK_SIZE), CHUNK_SIZE), 1);
    }
}
