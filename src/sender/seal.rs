//! The seal stage: hashes the spooled content chunk by chunk (streaming, bounded memory),
//! builds the manifest, signs it and frames it for the link; and, for the links, checks that
//! the content read for sending is still the content sealed ([`Unchanged`]).
//!
//! ```text
//!  spool content ─► hash (whole + per chunk; or taken by the pipeline on another core
//!                   while the content engine reads it) ─► Manifest ─► sign ─► frame ─► Sealed
//!  Sealed + approvals ─► approve ─► the same body and signature, approvals after them
//!  spool content ─► link reader ─► Unchanged::feed (each chunk against the manifest)
//!                                  └ a chunk differs, or the file grew: Changed ─► retake
//! ```

use crate::core::approval::Approval;
use crate::core::digest::hash_content;
use crate::core::manifest::{CHUNK_SIZE, Manifest, ManifestError, SignedManifest};
use crate::core::stage::{Inspected, Sealed, Spooled};
use crate::core::wire;
use crate::keys::at_rest::DataKeys;
use crate::keys::suite::{Hasher, Suite};
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

/// The hashes of a spooled object's content, as its manifest carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    /// Bytes of content.
    pub size: u64,
    /// The hash of the whole content (SHA-256, or SM3 under `gm`).
    pub digest: [u8; 32],
    /// The hash of each chunk of [`CHUNK_SIZE`] bytes, in order.
    pub chunks: Vec<[u8; 32]>,
    /// The suite of the hashes.
    pub suite: Suite,
}

/// Reads a spooled object's content once (through `data_keys` where it is sealed at
/// rest) and hashes it, whole and per chunk, in `suite`: what [`seal_hashed`] takes, so
/// that the pipeline can hash on another core while the content engine reads the same
/// content.
///
/// # Errors
/// The content cannot be opened or read (a sealed chunk that does not open).
pub fn hash(s: &Spooled, data_keys: Option<&DataKeys>, suite: Suite) -> io::Result<Hashed> {
    let mut f = crate::sender::spool::open_content(s, data_keys)?;
    let mut size = 0u64;
    let (digest, chunks) = {
        let mut counting = CountingReader {
            inner: &mut f,
            n: &mut size,
        };
        hash_content(&mut counting, CHUNK_SIZE, suite)?
    };
    Ok(Hashed {
        size,
        digest,
        chunks,
        suite,
    })
}

/// Seals an inspected object: hashes, manifest, signature, frame. The content is read
/// through `data_keys` where the spool entry is sealed at rest.
///
/// # Errors
/// As [`seal_hashed`].
pub fn seal(
    inspected: Inspected,
    key: &SigningKey,
    node: &str,
    data_keys: Option<&DataKeys>,
) -> Result<Sealed, SealError> {
    seal_hashed(inspected, key, node, data_keys, None)
}

/// [`seal`], with the content's hashes taken by [`hash`] from the very content inspected
/// (the caller's word: the spool entry as it was when both read it, not a masked copy
/// that replaced it since) where given in the signing key's suite; else hashed here.
///
/// # Errors
/// Reading the content, or building or signing the manifest, failed.
pub fn seal_hashed(
    inspected: Inspected,
    key: &SigningKey,
    node: &str,
    data_keys: Option<&DataKeys>,
    hashed: Option<Hashed>,
) -> Result<Sealed, SealError> {
    let s = inspected.spooled();
    // the hashes of the signing key's suite: SHA-256, or SM3 under `gm`
    let Hashed {
        size,
        digest,
        chunks,
        ..
    } = match hashed {
        Some(h) if h.suite == key.suite() => h,
        _ => hash(s, data_keys, key.suite())?,
    };
    let manifest = Manifest {
        object_id: s.id,
        channel: s.channel.clone(),
        name: s.name.clone(),
        size,
        content_type: inspected.content_type().to_string(),
        digest,
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

/// Re-encodes a sealed object's signed manifest with the approvers' signatures
/// (`SignedManifest.approvals`, envelope version 3) and frames it again. The body and the
/// node's signature stay as they were: the approvals sign the body's digest.
///
/// # Errors
/// The stored frame does not decode, or the approvals do not fit the envelope (more than
/// `MAX_APPROVALS`, a name empty or too long).
pub fn approve(sealed: Sealed, approvals: Vec<Approval>) -> Result<Sealed, SealError> {
    let payload = wire::decode_object_frame(sealed.frame())?;
    let mut signed = SignedManifest::decode(payload)?;
    signed.approvals = approvals;
    let frame = wire::encode_object_frame(&signed.encode()?)?;
    let manifest = sealed.manifest().clone();
    let spooled = sealed.spooled().clone();
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

/// The spooled content read for sending is not the content sealed: it was written after it
/// was taken. The object must be taken again (the pipeline's `Sender::retake`),
/// never sent as it is.
#[derive(Debug, Error)]
#[error("the spooled content changed after it was sealed ({0})")]
pub struct Changed(&'static str);

impl From<Changed> for io::Error {
    fn from(c: Changed) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, c)
    }
}

impl Changed {
    /// Whether an I/O error raised by a link's reader is a [`Changed`].
    pub fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<Changed>())
    }
}

/// Checks content read for sending against the sealed manifest as it goes: bytes in order,
/// each `chunk_size` piece's hash (SHA-256, RFC 6234, or SM3, GB/T 32905) must be the manifest's, and the file must
/// end where the manifest says. Memory: one hash context.
pub struct Unchanged<'a> {
    manifest: &'a Manifest,
    index: usize,
    in_chunk: u64,
    fed: u64,
    ctx: Hasher,
}

impl<'a> Unchanged<'a> {
    /// A check of the content of `manifest`'s object, from its first byte, with the hash
    /// of `suite` (the pair's: the manifest's hashes are of its signing key's suite).
    pub fn new(manifest: &'a Manifest, suite: Suite) -> Unchanged<'a> {
        Unchanged {
            manifest,
            index: 0,
            in_chunk: 0,
            fed: 0,
            ctx: Hasher::new(suite),
        }
    }

    fn chunk_len(&self) -> u64 {
        let cs = u64::from(self.manifest.chunk_size);
        cs.min(self.manifest.size.saturating_sub(self.index as u64 * cs))
    }

    /// Takes the next bytes read.
    ///
    /// # Errors
    /// More bytes than the manifest's size, or a completed chunk whose hash differs.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), Changed> {
        if self.fed + data.len() as u64 > self.manifest.size {
            return Err(Changed("longer than sealed"));
        }
        while !data.is_empty() {
            let want = self.chunk_len() - self.in_chunk;
            let n = usize::try_from(want).unwrap_or(usize::MAX).min(data.len());
            let (now, rest) = data.split_at(n);
            self.ctx.update(now);
            self.in_chunk += n as u64;
            self.fed += n as u64;
            data = rest;
            if self.in_chunk == self.chunk_len() {
                let fresh = Hasher::new(self.ctx.suite());
                let got = std::mem::replace(&mut self.ctx, fresh).finish();
                if self.manifest.chunks.get(self.index) != Some(&got) {
                    return Err(Changed("a chunk differs from the manifest"));
                }
                self.index += 1;
                self.in_chunk = 0;
            }
        }
        Ok(())
    }

    /// Ends the check: every byte was read and the file is still the sealed size.
    ///
    /// # Errors
    /// Fewer bytes than sealed, or the file is now another size.
    pub fn finish(self, file_len: u64) -> Result<(), Changed> {
        if self.fed != self.manifest.size || file_len != self.manifest.size {
            return Err(Changed("not the size sealed"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::id::ObjectId;

    fn manifest(content: &[u8], chunk: u32) -> Manifest {
        let (digest, chunks) = hash_content(&mut &content[..], chunk, Suite::Default).unwrap();
        Manifest {
            object_id: ObjectId([1; 16]),
            channel: "c".into(),
            name: "n".into(),
            size: content.len() as u64,
            content_type: "text/plain".into(),
            digest,
            chunk_size: chunk,
            chunks,
            sender: "s".into(),
            sequence: 1,
            created_ms: 0,
            verdict: "accept".into(),
        }
    }

    #[test]
    fn the_sealed_bytes_pass_in_any_read_sizes() {
        let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let m = manifest(&content, 4096);
        for step in [1, 7, 4096, 5000, 10_000] {
            let mut u = Unchanged::new(&m, Suite::Default);
            for piece in content.chunks(step) {
                u.feed(piece).unwrap();
            }
            u.finish(content.len() as u64).unwrap();
        }
    }

    #[test]
    fn approvals_are_added_to_the_stored_frame_and_nothing_else_changes() {
        use crate::core::approval::{self, Decision};
        let key = SigningKey::from_seed(&[3; 32]).unwrap();
        let m = manifest(b"content", 4096);
        let signed = m.sign(&key).unwrap();
        let frame = wire::encode_object_frame(&signed.encode().unwrap()).unwrap();
        let spooled = Spooled {
            id: m.object_id,
            channel: "c".into(),
            name: "n".into(),
            sequence: 1,
            taken_ms: 0,
            dir: std::path::PathBuf::from("x"),
        };
        let sealed = Sealed::new(spooled.clone(), m.clone(), frame);
        let d = signed.digest(Suite::Default);
        let a = Approval {
            approver: "张伟".into(),
            signature: approval::try_sign(
                &SigningKey::from_seed(&[4; 32]).unwrap(),
                Decision::Approve,
                &d,
            )
            .unwrap(),
        };
        let approved = approve(sealed, vec![a.clone()]).unwrap();
        let back =
            SignedManifest::decode(wire::decode_object_frame(approved.frame()).unwrap()).unwrap();
        assert_eq!(back.body, signed.body);
        assert_eq!(back.signature, signed.signature);
        assert_eq!(back.approvals, vec![a]);
        assert_eq!(back.digest(Suite::Default), d);
        // what a restart reloads from the spool is the approved frame
        let reloaded = reload(spooled, approved.frame().to_vec(), &key.verify_key()).unwrap();
        assert_eq!(reloaded.manifest(), &m);
    }

    #[test]
    fn a_change_a_growth_or_a_cut_is_caught() {
        let content = vec![7u8; 9000];
        let m = manifest(&content, 4096);
        let mut other = content.clone();
        other[8999] = 8;
        let mut u = Unchanged::new(&m, Suite::Default);
        assert!(u.feed(&other).is_err(), "last (partial) chunk differs");
        let mut u = Unchanged::new(&m, Suite::Default);
        u.feed(&content).unwrap();
        assert!(u.finish(9001).is_err(), "the file grew after sealing");
        let mut u = Unchanged::new(&m, Suite::Default);
        assert!(u.feed(&[content.clone(), vec![1]].concat()).is_err());
        let mut u = Unchanged::new(&m, Suite::Default);
        u.feed(&content[..100]).unwrap();
        assert!(u.finish(9000).is_err(), "cut short");
        let e: io::Error = Changed("x").into();
        assert!(Changed::is(&e));
        assert!(!Changed::is(&io::Error::other("y")));
    }
}
