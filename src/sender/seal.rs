//! The seal stage: hashes the spooled content chunk by chunk (streaming, bounded memory),
//! builds the manifest, signs it and frames it for the link.

use crate::core::digest::hash_content;
use crate::core::manifest::{CHUNK_SIZE, Manifest, ManifestError, SignedManifest};
use crate::core::stage::{Inspected, Sealed, Spooled};
use crate::core::wire;
use crate::keys::{SigningKey, VerifyKey};
use std::io::{self, Read};
use thiserror::Error;

/// Why an object could not be sealed.
#[derive(Debug, Error)]
pub enum SealError {
    /// Reading the spooled content failed.
    #[error("reading the spooled content: {0}")]
    Io(#[from] io::Error),
    /// The manifest could not be built or signed.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The frame could not be built.
    #[error(transparent)]
    Wire(#[from] wire::WireError),
}

/// Seals an inspected object: hashes, manifest, signature, frame.
pub fn seal(inspected: Inspected, key: &SigningKey, node: &str) -> Result<Sealed, SealError> {
    let s = inspected.spooled();
    let mut f = crate::fsx::open_nofollow(&s.content())?;
    let mut size = 0u64;
    let (sha256, chunks) = {
        let mut counting = CountingReader {
            inner: &mut f,
            n: &mut size,
        };
        hash_content(&mut counting, CHUNK_SIZE)?
    };
    let manifest = Manifest {
        object_id: s.id,
        channel: s.channel.clone(),
        name: s.name.clone(),
        size,
        content_type: inspected.content_type().to_string(),
        sha256,
        chunk_size: CHUNK_SIZE,
        chunks,
        sender: node.to_string(),
        sequence: s.sequence,
        created_ms: s.taken_ms,
        verdict: "accept".into(),
    };
    let encoded = manifest.sign(key)?.encode()?;
    let frame = wire::encode_object_frame(&encoded)?;
    let spooled = inspected.spooled().clone();
    Ok(Sealed::new(spooled, manifest, frame))
}

/// Rebuilds a `Sealed` from a manifest stored in the spool by an earlier run, checking it
/// with this node's own public key.
pub fn reload(spooled: Spooled, frame: Vec<u8>, own: &VerifyKey) -> Result<Sealed, SealError> {
    let payload = wire::decode_object_frame(&frame)?;
    let manifest = SignedManifest::decode(payload)?.open(own)?;
    if manifest.object_id != spooled.id {
        return Err(SealError::Manifest(ManifestError::Invalid(
            "stored manifest belongs to another object",
        )));
    }
    Ok(Sealed::new(spooled, manifest, frame))
}

struct CountingReader<'a, R> {
    inner: &'a mut R,
    n: &'a mut u64,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        *self.n += n as u64;
        Ok(n)
    }
}
