//! The seal stage: hashes the spooled content chunk by chunk (streaming, bounded memory),
//! builds the manifest, signs it and frames it for the link; and, for the links, checks that
//! the content read for sending is still the content sealed ([`Unchanged`]).
//!
//! ```text
//!  spool content ─► hash (whole + per chunk; or taken by the pipeline on another core
//!                   while the content engine reads it, or by the take as it sealed
//!                   its copy) ─► Manifest ─► sign ─► frame ─► Sealed
//!  Sealed + approvals ─► approve ─► the same body and signature, approvals after them
//!  spool content ─► link reader ─► Unchanged::feed (each chunk against the manifest)
//!                                  └ a chunk differs, or the file grew: Changed ─► retake
//! ```
//!
//! Where the spool copy is sealed at rest, the seal records which sealing it hashed (the
//! copy's [`SealId`]), and a link reading that very sealing is not hashed again: every
//! chunk it reads opens only if it is the chunk sealed at that index under that sealing's
//! key (AES-256-GCM or SM4-GCM, `keys::at_rest`), so it is the chunk hashed. Another
//! sealing (a copy sealed again, swapped in under the same name) is [`Changed`]; a copy
//! changed in place does not open (tampered). Both are taken again. The manifest reloaded
//! after a restart has no sealing recorded: its content is hashed again as it is read.
//! This rests on the data key being the node's alone, as its signing key is: whoever holds
//! it could seal other bytes under a recorded salt, as they could sign another manifest
//! (the receiver, which hashes every chunk, would still refuse them).

use crate::core::approval::Approval;
use crate::core::digest::hash_content;
use crate::core::manifest::{CHUNK_SIZE, Manifest, ManifestError, SignedManifest};
use crate::core::stage::{Inspected, Sealed, Spooled};
use crate::core::wire;
use crate::keys::at_rest::{DataKeys, SealId, Stored};
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
    /// The sealing at rest of the copy read (`None`: a plain copy).
    pub sealed_as: Option<SealId>,
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
    let sealed_as = f.seal_id();
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
        sealed_as,
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

/// [`seal`], with the content's hashes taken from the very content inspected (the caller's
/// word: by [`hash`] from the spool entry as it was when both read it, or by the take from
/// that very sealing at rest; not a masked copy that replaced it since) where given in the
/// signing key's suite; else hashed here.
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
        sealed_as,
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
    Ok(Sealed::new(spooled, manifest, frame, sealed_as))
}

/// Rebuilds a `Sealed` from a manifest stored in the spool by an earlier run, checking it
/// with this node's own public key. No sealing at rest is recorded: the links hash its
/// content again as they read it ([`Unchanged::for_stored`]).
pub fn reload(spooled: Spooled, frame: Vec<u8>, own: &VerifyKey) -> Result<Sealed, SealError> {
    let payload = wire::decode_object_frame(&frame)?;
    let manifest = SignedManifest::decode(payload)?.open(own)?;
    if manifest.object_id != spooled.id {
        return Err(SealError::Manifest(ManifestError::Invalid(
            "stored manifest belongs to another object",
        )));
    }
    Ok(Sealed::new(spooled, manifest, frame, None))
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
    Ok(Sealed::new(spooled, manifest, frame, sealed.sealed_as()))
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
/// end where the manifest says. Memory: one hash context. Read from the very sealing at
/// rest that was hashed, only the size is counted ([`Unchanged::for_stored`]).
pub struct Unchanged<'a> {
    manifest: &'a Manifest,
    index: usize,
    in_chunk: u64,
    fed: u64,
    /// `None`: the sealing at rest vouches for each chunk; only the size is checked.
    ctx: Option<Hasher>,
}

/// Whether `stored` is the sealing at rest recorded at seal (`sealed_as`, from
/// [`Sealed::sealed_as`]): always where none was recorded.
///
/// # Errors
/// A sealing was recorded and `stored` is another one, or plain: [`Changed`] (the object
/// is taken again).
pub fn same_sealing(stored: &Stored, sealed_as: Option<SealId>) -> Result<(), Changed> {
    match sealed_as {
        Some(hashed) if stored.seal_id() != Some(hashed) => {
            Err(Changed("not the sealed copy that was hashed"))
        }
        _ => Ok(()),
    }
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
            ctx: Some(Hasher::new(suite)),
        }
    }

    /// The check of content read from `stored` for the object of `manifest`, sealed as
    /// `sealed_as` ([`Sealed::sealed_as`]): `stored` being that very sealing, each chunk
    /// read opened under its key at its index, so it is the chunk hashed and only the size
    /// is counted (no hash); with no sealing recorded, [`Unchanged::new`] (every chunk
    /// hashed in `suite`).
    ///
    /// # Errors
    /// A sealing was recorded and `stored` is not it ([`same_sealing`]).
    pub fn for_stored(
        manifest: &'a Manifest,
        suite: Suite,
        stored: &Stored,
        sealed_as: Option<SealId>,
    ) -> Result<Unchanged<'a>, Changed> {
        same_sealing(stored, sealed_as)?;
        let mut check = Unchanged::new(manifest, suite);
        if sealed_as.is_some() {
            check.ctx = None;
        }
        Ok(check)
    }

    /// Bytes of chunk `index` of `manifest`'s content (the last one may be short).
    fn chunk_len(manifest: &Manifest, index: usize) -> u64 {
        let cs = u64::from(manifest.chunk_size);
        cs.min(manifest.size.saturating_sub(index as u64 * cs))
    }

    /// Takes the next bytes read.
    ///
    /// # Errors
    /// More bytes than the manifest's size, or a completed chunk whose hash differs.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), Changed> {
        if self.fed + data.len() as u64 > self.manifest.size {
            return Err(Changed("longer than sealed"));
        }
        let Some(ctx) = self.ctx.as_mut() else {
            self.fed += data.len() as u64;
            return Ok(());
        };
        while !data.is_empty() {
            let len = Self::chunk_len(self.manifest, self.index);
            let n = usize::try_from(len - self.in_chunk)
                .unwrap_or(usize::MAX)
                .min(data.len());
            let (now, rest) = data.split_at(n);
            ctx.update(now);
            self.in_chunk += n as u64;
            self.fed += n as u64;
            data = rest;
            if self.in_chunk == len {
                let got = std::mem::replace(ctx, Hasher::new(ctx.suite())).finish();
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

/// Chunk `index` of `manifest`'s object, read whole from `stored` and checked against the
/// manifest's hash of it (SHA-256, RFC 6234, or SM3, GB/T 32905, as `suite` says) before
/// any of its bytes is used; after the last chunk, the copy must end. For a link that
/// reads an object's content out of order or more than once (the diode's passes), where
/// no sealing at rest vouches for the copy (a plain spool, a manifest reloaded after a
/// restart) and [`Unchanged`]'s in-order check does not fit. Memory: the chunk, at most
/// `chunk_size` bytes (1 MiB).
///
/// # Errors
/// Reading failed; [`Changed`], as an `InvalidData` I/O error, when the chunk lies past
/// the manifest's end, the copy is shorter or longer than sealed, or the chunk's hash
/// differs (the object is taken again).
pub fn read_checked_chunk(
    stored: &Stored,
    manifest: &Manifest,
    index: usize,
    suite: Suite,
) -> io::Result<Vec<u8>> {
    let Some(want) = manifest.chunks.get(index) else {
        return Err(Changed("past the end sealed").into());
    };
    let start = index as u64 * u64::from(manifest.chunk_size);
    let len = usize::try_from(Unchanged::chunk_len(manifest, index))
        .map_err(|_| io::Error::from(Changed("a chunk larger than memory")))?;
    let mut bytes = vec![0u8; len];
    match stored.read_exact_at(&mut bytes, start) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(Changed("shorter than sealed").into());
        }
        other => other?,
    }
    if index + 1 == manifest.chunks.len() {
        let mut past = [0u8; 1];
        if stored.read_at(&mut past, manifest.size)? > 0 {
            return Err(Changed("longer than sealed").into());
        }
    }
    if crate::keys::suite::digest(suite, &bytes) != *want {
        return Err(Changed("a chunk differs from the manifest").into());
    }
    Ok(bytes)
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
        let sealed = Sealed::new(spooled.clone(), m.clone(), frame, None);
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

    #[test]
    fn the_sealing_that_was_hashed_is_counted_not_hashed_and_any_other_is_changed() {
        use crate::keys::at_rest::{SealWriter, SealedFile};
        use std::fs::File;
        use std::io::Write;
        let d = tempfile::tempdir().unwrap();
        let key_file = d.path().join("data.key");
        DataKeys::add_key(&key_file, Suite::Default).unwrap();
        let keys = DataKeys::load(&key_file).unwrap();
        let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let m = manifest(&content, 4096);
        let sealed_copy = |name: &str| {
            let path = d.path().join(name);
            let mut w = SealWriter::new(&keys, File::create(&path).unwrap(), b"ctx").unwrap();
            w.write_all(&content).unwrap();
            w.finish().unwrap();
            Stored::Sealed(SealedFile::open(&keys, File::open(&path).unwrap(), b"ctx").unwrap())
        };
        let hashed = sealed_copy("hashed");
        let id = hashed.seal_id();
        assert!(id.is_some());
        // the very sealing: its chunks open only as they were sealed, so only the size is
        // counted (bytes unlike the manifest's pass here: nothing hashes them)
        let mut u = Unchanged::for_stored(&m, Suite::Default, &hashed, id).unwrap();
        u.feed(&[0u8; 10_000]).unwrap();
        u.finish(10_000).unwrap();
        let mut u = Unchanged::for_stored(&m, Suite::Default, &hashed, id).unwrap();
        assert!(u.feed(&[0u8; 10_001]).is_err(), "longer than sealed");
        let mut u = Unchanged::for_stored(&m, Suite::Default, &hashed, id).unwrap();
        u.feed(&content[..100]).unwrap();
        assert!(u.finish(10_000).is_err(), "cut short");
        let mut u = Unchanged::for_stored(&m, Suite::Default, &hashed, id).unwrap();
        u.feed(&content).unwrap();
        assert!(u.finish(10_001).is_err(), "the file is another size");
        // the same bytes sealed again and swapped in: another sealing
        let again = sealed_copy("again");
        assert!(Unchanged::for_stored(&m, Suite::Default, &again, id).is_err());
        assert!(same_sealing(&again, id).is_err());
        assert!(same_sealing(&hashed, id).is_ok());
        // a plain copy where a sealed one was hashed
        let plain = d.path().join("plain");
        std::fs::write(&plain, &content).unwrap();
        let plain = Stored::Plain(File::open(&plain).unwrap());
        assert!(Unchanged::for_stored(&m, Suite::Default, &plain, id).is_err());
        // no sealing recorded (a manifest reloaded after a restart): every chunk is hashed
        assert!(same_sealing(&again, None).is_ok());
        let mut u = Unchanged::for_stored(&m, Suite::Default, &again, None).unwrap();
        assert!(u.feed(&[0u8; 10_000]).is_err());
        let mut u = Unchanged::for_stored(&m, Suite::Default, &plain, None).unwrap();
        u.feed(&content).unwrap();
        u.finish(10_000).unwrap();
    }

    #[test]
    fn a_chunk_read_out_of_order_is_checked_whole_before_it_is_used() {
        use std::fs::File;
        let d = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let m = manifest(&content, 4096);
        let path = d.path().join("copy");
        let copy = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            Stored::Plain(File::open(&path).unwrap())
        };
        let same = copy(&content);
        // any order, any number of times: each chunk as sealed, the last one short
        for index in [2, 0, 1, 2] {
            let got = read_checked_chunk(&same, &m, index, Suite::Default).unwrap();
            let from = index * 4096;
            assert_eq!(got, content[from..(from + 4096).min(content.len())]);
        }
        let changed = |bytes: &[u8], index: usize| {
            let e = read_checked_chunk(&copy(bytes), &m, index, Suite::Default).unwrap_err();
            assert!(Changed::is(&e), "{e}");
            e.to_string()
        };
        // one byte changed: that chunk, and only it
        let mut one = content.clone();
        one[5000] ^= 1;
        assert!(changed(&one, 1).contains("differs"));
        assert!(read_checked_chunk(&copy(&one), &m, 0, Suite::Default).is_ok());
        // cut short, grown, or asked past the end
        assert!(changed(&content[..9_000], 2).contains("shorter"));
        let mut longer = content.clone();
        longer.push(0);
        assert!(changed(&longer, 2).contains("longer"));
        assert!(changed(&content, 3).contains("past the end"));
        // another suite's hashes never match
        let e = read_checked_chunk(&copy(&content), &m, 0, Suite::Gm).unwrap_err();
        assert!(Changed::is(&e));
    }
}
