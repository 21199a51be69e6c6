//! The seal stage: hashes the spooled content chunk by chunk (streaming, bounded memory),
//! builds the manifest, signs it and frames it for the link.

use crate::keys::{SigningKey, VerifyKey};
use crate::manifest::{CHUNK_SIZE, Manifest, ManifestError, SignedManifest};
use crate::stage::{Inspected, Sealed, Spooled};
use crate::wire;
use ring::digest::{Context, SHA256};
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

/// SHA-256 of the whole content and of each `chunk`-sized piece, reading in bounded steps.
pub fn hash_content<R: Read>(r: &mut R, chunk: u32) -> io::Result<([u8; 32], Vec<[u8; 32]>)> {
    let chunk = chunk as usize;
    let mut buf = vec![0u8; chunk.clamp(4096, 1 << 20)];
    let mut total = Context::new(&SHA256);
    let mut part = Context::new(&SHA256);
    let mut in_part = 0usize;
    let mut parts = Vec::new();
    loop {
        let want = (chunk - in_part).min(buf.len());
        let n = r.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        total.update(&buf[..n]);
        part.update(&buf[..n]);
        in_part += n;
        if in_part == chunk {
            let done = std::mem::replace(&mut part, Context::new(&SHA256));
            parts.push(digest32(done));
            in_part = 0;
        }
    }
    if in_part > 0 {
        parts.push(digest32(part));
    }
    Ok((digest32(total), parts))
}

fn digest32(ctx: Context) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_hashes_match_independent_hashes() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let (total, parts) = hash_content(&mut &data[..], 4096).unwrap();
        assert_eq!(parts.len(), 3);
        let h = |b: &[u8]| {
            digest32({
                let mut c = Context::new(&SHA256);
                c.update(b);
                c
            })
        };
        assert_eq!(total, h(&data));
        assert_eq!(parts[0], h(&data[..4096]));
        assert_eq!(parts[2], h(&data[8192..]));
        let (_, none) = hash_content(&mut &b""[..], 4096).unwrap();
        assert!(none.is_empty());
    }
}
