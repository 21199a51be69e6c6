//! The manifest: the signed description of one object that crosses (DESIGN.md §2), its
//! binary encoding and its signature.
//!
//! The encoding is written by hand, like `wire.rs`: a fixed layout, big-endian fixed-width
//! integers, every length and count checked against its cap before anything is allocated.
//! It is canonical: each value has exactly one encoding, and decoding refuses anything else
//! (truncation, trailing bytes, counts or lengths over the caps, invalid UTF-8, an unknown
//! magic or version), so `encode(decode(b)) == b` for every `b` that decodes.
//!
//! ```text
//! signed manifest (the payload of an object frame)
//! field        width             meaning
//! -----------  ----------------  ----------------------------------------------------------
//! magic        4                 "ISGM"
//! version      1                 VERSION (2) with no approvals; APPROVED_VERSION (3) with
//!                                approvals (version 1 was the bincode layout)
//! body_len     4, u32 BE         length of body, at most MAX_ENCODED - 73
//! body         body_len          the manifest body below, exactly the bytes signed
//! signature    64                Ed25519 over SIGNING_CONTEXT || body
//! -- version 3 only: the officers' approvals of this body (approval.rs) --
//! count        1                 number of approvals, 1 to approval::MAX_APPROVALS
//! approvals    count * (1+n+64)  u8 length n <= approval::MAX_APPROVER_NAME, then n bytes
//!                                of UTF-8 (the approver's name), then 64 bytes of Ed25519
//!                                (or SM2) over approval::message(approve, H(body)),
//!                                H SHA-256 (SM3 under `gm`)
//!
//! manifest body
//! field        width             meaning
//! -----------  ----------------  ----------------------------------------------------------
//! object_id    16                random object id; first, so that a refusal can name the
//!                                object before its signature is checked (verify.rs)
//! version      1                 VERSION (2)
//! channel      2 + n             u16 BE length n <= MAX_TEXT, then n bytes of UTF-8
//! name         2 + n             same, base name of the file
//! size         8, u64 BE         content size in bytes
//! content_type 2 + n             same, content type decided by the sender
//! digest       32                hash of the whole content: SHA-256, or SM3 (GB/T 32905)
//!                                in a pair of the `gm` suite (the signing key's suite)
//! chunk_size   4, u32 BE         size of every chunk but the last
//! chunk_count  4, u32 BE         number of chunk hashes, at most MAX_CHUNKS
//! chunks       32 * chunk_count  hash of each chunk, in order (same hash)
//! sender       2 + n             same, name of the sending node
//! sequence     8, u64 BE         per-channel sequence number on the sender
//! created_ms   8, u64 BE         when the sender took the object, ms since the Unix epoch
//! verdict      2 + n             same, the sender's verdict code
//! ```
//!
//! Decoding checks the layout only; `SignedManifest::open` verifies the signature first,
//! then decodes the body and checks its consistency (`Manifest::validate`). The approvals
//! are outside the node's signature: each is signed by its approver over the body's digest,
//! and checked by the receiver against its own pinned approvers (`approval::Rule::check`).
//! A version 2 envelope is exactly today's layout, so a channel without approval is
//! unchanged on the wire; a version 3 envelope with no approval does not decode.
//!
//! Pure functions over bytes: building, encoding, signing and verifying need no I/O.

use crate::core::approval::{self, Approval, MAX_APPROVALS, MAX_APPROVER_NAME};
use crate::core::id::ObjectId;
use crate::keys::{SigningKey, VerifyKey};
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
/// Domain separation for manifest signatures; names the body layout (`VERSION`).
pub(crate) const SIGNING_CONTEXT: &[u8] = b"isogate manifest v2\0";
/// Magic bytes opening a signed manifest.
pub const MAGIC: [u8; 4] = *b"ISGM";
/// Version of the manifest layout written by this build, in the envelope and the body.
pub const VERSION: u8 = 2;
/// Envelope version of a signed manifest that carries approvals.
pub const APPROVED_VERSION: u8 = 3;
/// Length of an Ed25519 signature.
const SIGNATURE_LEN: usize = 64;
/// Envelope bytes around the body: magic, version, body length, signature.
const ENVELOPE_LEN: usize = 4 + 1 + 4 + SIGNATURE_LEN;
/// Largest body, so that the signed manifest stays within `MAX_ENCODED`.
const MAX_BODY: usize = MAX_ENCODED as usize - ENVELOPE_LEN;

/// What one object is, as the sender sealed it.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Hash of the whole content: SHA-256, or SM3 when the manifest is signed with an SM2
    /// key (the `gm` suite).
    pub digest: [u8; 32],
    /// Size of every chunk but the last.
    pub chunk_size: u32,
    /// Hash of each chunk, in order (SHA-256 or SM3, as `digest`).
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedManifest {
    /// The encoded manifest body (layout in the module documentation).
    pub body: Vec<u8>,
    /// Ed25519 signature over the signing context and `body`.
    pub signature: Vec<u8>,
    /// The officers' approvals of `body` (empty on a channel without approval); not
    /// covered by `signature`: each is checked on its own (`approval::Rule::check`).
    pub approvals: Vec<Approval>,
}

/// Why bytes do not decode as a signed manifest or a manifest body.
#[derive(Debug, Clone, Copy, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("truncated in {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// Bytes remained after the last field.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// The magic bytes are wrong: not a signed manifest.
    #[error("bad magic bytes")]
    BadMagic,
    /// The layout version is not the one this build reads (`VERSION`).
    #[error("unsupported manifest version {0}")]
    Version(u8),
    /// A length or count exceeds its cap.
    #[error("{field} is {len}, over the cap of {cap}")]
    TooLong {
        /// The field whose length or count it is.
        field: &'static str,
        /// The announced length or count.
        len: u64,
        /// The cap it exceeds.
        cap: u64,
    },
    /// A text field is not valid UTF-8.
    #[error("{field} is not valid UTF-8")]
    Utf8 {
        /// The field.
        field: &'static str,
    },
}

/// Why a manifest could not be built, decoded or verified.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The bytes do not decode.
    #[error("manifest does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// The signature does not verify against the pinned key.
    #[error("manifest signature does not verify")]
    Signature,
    /// The manifest is inconsistent, or cannot be encoded within the caps.
    #[error("manifest is inconsistent: {0}")]
    Invalid(&'static str),
}

/// Number of chunks for `size` bytes in chunks of `chunk_size`.
pub fn chunk_count(size: u64, chunk_size: u32) -> u64 {
    size.div_ceil(u64::from(chunk_size.max(1)))
}

/// Reads fields front to back; every read checks that the bytes are there.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated { field });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    fn version(&mut self, field: &'static str) -> Result<(), DecodeError> {
        match self.u8(field)? {
            VERSION => Ok(()),
            v => Err(DecodeError::Version(v)),
        }
    }

    fn text(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let len = usize::from(self.u16(field)?);
        if len > MAX_TEXT {
            return Err(DecodeError::TooLong {
                field,
                len: len as u64,
                cap: MAX_TEXT as u64,
            });
        }
        let bytes = self.take(len, field)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Utf8 { field })
    }

    fn finish(self) -> Result<(), DecodeError> {
        match self.rest.len() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

fn put_text(out: &mut Vec<u8>, s: &str) -> Result<(), ManifestError> {
    let len = u16::try_from(s.len())
        .ok()
        .filter(|l| usize::from(*l) <= MAX_TEXT)
        .ok_or(ManifestError::Invalid("text field too long"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Encodes a manifest body; refuses only what the decoder would refuse (caps).
fn encode_body(m: &Manifest) -> Result<Vec<u8>, ManifestError> {
    let count = u32::try_from(m.chunks.len())
        .ok()
        .filter(|n| u64::from(*n) <= MAX_CHUNKS)
        .ok_or(ManifestError::Invalid("too many chunks"))?;
    let texts = [&m.channel, &m.name, &m.content_type, &m.sender, &m.verdict];
    let len = 16
        + 1
        + 8
        + 32
        + 4
        + 4
        + 8
        + 8
        + 32 * m.chunks.len()
        + texts.iter().map(|t| 2 + t.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&m.object_id.0);
    out.push(VERSION);
    put_text(&mut out, &m.channel)?;
    put_text(&mut out, &m.name)?;
    out.extend_from_slice(&m.size.to_be_bytes());
    put_text(&mut out, &m.content_type)?;
    out.extend_from_slice(&m.digest);
    out.extend_from_slice(&m.chunk_size.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    for c in &m.chunks {
        out.extend_from_slice(c);
    }
    put_text(&mut out, &m.sender)?;
    out.extend_from_slice(&m.sequence.to_be_bytes());
    out.extend_from_slice(&m.created_ms.to_be_bytes());
    put_text(&mut out, &m.verdict)?;
    Ok(out)
}

/// Decodes a manifest body: layout and caps only, no consistency checks.
fn decode_body(bytes: &[u8]) -> Result<Manifest, DecodeError> {
    if bytes.len() > MAX_BODY {
        return Err(DecodeError::TooLong {
            field: "body",
            len: bytes.len() as u64,
            cap: MAX_BODY as u64,
        });
    }
    let mut r = Reader { rest: bytes };
    let object_id = ObjectId(r.array("object_id")?);
    r.version("version")?;
    let channel = r.text("channel")?;
    let name = r.text("name")?;
    let size = r.u64("size")?;
    let content_type = r.text("content_type")?;
    let digest = r.array("digest")?;
    let chunk_size = r.u32("chunk_size")?;
    let count = r.u32("chunk_count")?;
    if u64::from(count) > MAX_CHUNKS {
        return Err(DecodeError::TooLong {
            field: "chunk_count",
            len: u64::from(count),
            cap: MAX_CHUNKS,
        });
    }
    // All the hashes must be present before the vector is allocated.
    let hashes = r.take(32 * count as usize, "chunks")?;
    let chunks = hashes
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            h
        })
        .collect();
    let sender = r.text("sender")?;
    let sequence = r.u64("sequence")?;
    let created_ms = r.u64("created_ms")?;
    let verdict = r.text("verdict")?;
    r.finish()?;
    Ok(Manifest {
        object_id,
        channel,
        name,
        size,
        content_type,
        digest,
        chunk_size,
        chunks,
        sender,
        sequence,
        created_ms,
        verdict,
    })
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
        let body = encode_body(self)?;
        let signature = key.sign(&signing_message(&body));
        Ok(SignedManifest {
            body,
            signature,
            approvals: Vec::new(),
        })
    }
}

fn signing_message(body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_CONTEXT.len() + body.len());
    m.extend_from_slice(SIGNING_CONTEXT);
    m.extend_from_slice(body);
    m
}

impl SignedManifest {
    /// Encodes the signed manifest for the wire; refuses a body over the cap or a signature
    /// that is not 64 bytes, which the decoder would refuse.
    pub fn encode(&self) -> Result<Vec<u8>, ManifestError> {
        let len = u32::try_from(self.body.len())
            .ok()
            .filter(|l| *l as usize <= MAX_BODY)
            .ok_or(ManifestError::Invalid("body over the size cap"))?;
        if self.signature.len() != SIGNATURE_LEN {
            return Err(ManifestError::Invalid("signature is not 64 bytes"));
        }
        if self.approvals.len() > MAX_APPROVALS {
            return Err(ManifestError::Invalid("too many approvals"));
        }
        let mut out = Vec::with_capacity(ENVELOPE_LEN + self.body.len());
        out.extend_from_slice(&MAGIC);
        out.push(if self.approvals.is_empty() {
            VERSION
        } else {
            APPROVED_VERSION
        });
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&self.signature);
        if !self.approvals.is_empty() {
            out.push(self.approvals.len() as u8);
            for a in &self.approvals {
                let n = u8::try_from(a.approver.len())
                    .ok()
                    .filter(|n| usize::from(*n) <= MAX_APPROVER_NAME && *n > 0)
                    .ok_or(ManifestError::Invalid("approver name empty or too long"))?;
                out.push(n);
                out.extend_from_slice(a.approver.as_bytes());
                out.extend_from_slice(&a.signature);
            }
        }
        if out.len() as u64 > MAX_ENCODED {
            return Err(ManifestError::Invalid("signed manifest over the size cap"));
        }
        Ok(out)
    }

    /// The digest approvers sign: the `suite`'s hash of the body (`approval::digest`): the
    /// suite of the key that signed it.
    pub fn digest(&self, suite: crate::keys::suite::Suite) -> [u8; 32] {
        approval::digest(suite, &self.body)
    }

    /// Decodes a signed manifest from the wire; nothing in it is trusted yet.
    pub fn decode(bytes: &[u8]) -> Result<SignedManifest, ManifestError> {
        let mut r = Reader { rest: bytes };
        if r.array::<4>("magic")? != MAGIC {
            return Err(DecodeError::BadMagic.into());
        }
        let approved = match r.u8("version")? {
            VERSION => false,
            APPROVED_VERSION => true,
            v => return Err(DecodeError::Version(v).into()),
        };
        let len = r.u32("body_len")?;
        if len as usize > MAX_BODY {
            return Err(DecodeError::TooLong {
                field: "body_len",
                len: u64::from(len),
                cap: MAX_BODY as u64,
            }
            .into());
        }
        let body = r.take(len as usize, "body")?.to_vec();
        let signature = r.take(SIGNATURE_LEN, "signature")?.to_vec();
        let mut approvals = Vec::new();
        if approved {
            let count = usize::from(r.u8("approval_count")?);
            if count == 0 || count > MAX_APPROVALS {
                return Err(DecodeError::TooLong {
                    field: "approval_count",
                    len: count as u64,
                    cap: MAX_APPROVALS as u64,
                }
                .into());
            }
            for _ in 0..count {
                let n = usize::from(r.u8("approver")?);
                if n == 0 || n > MAX_APPROVER_NAME {
                    return Err(DecodeError::TooLong {
                        field: "approver",
                        len: n as u64,
                        cap: MAX_APPROVER_NAME as u64,
                    }
                    .into());
                }
                let name = std::str::from_utf8(r.take(n, "approver")?)
                    .map_err(|_| DecodeError::Utf8 { field: "approver" })?
                    .to_owned();
                let signature = r.array("approval_signature")?;
                approvals.push(Approval {
                    approver: name,
                    signature,
                });
            }
        }
        r.finish()?;
        Ok(SignedManifest {
            body,
            signature,
            approvals,
        })
    }

    /// Verifies the signature with the pinned key, then decodes and validates the body.
    pub fn open(&self, key: &VerifyKey) -> Result<Manifest, ManifestError> {
        if !key.verify(&signing_message(&self.body), &self.signature) {
            return Err(ManifestError::Signature);
        }
        let m = decode_body(&self.body)?;
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
            digest: [2; 32],
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
    fn approvals_travel_in_a_version_3_envelope_and_nothing_else_changes() {
        use crate::core::approval::{Decision, try_sign};
        let key = SigningKey::generate().unwrap();
        let officer = SigningKey::from_seed(&[5; 32]).unwrap();
        let m = sample(10);
        let plain = m.sign(&key).unwrap();
        let plain_bytes = plain.encode().unwrap();
        assert_eq!(plain_bytes[4], VERSION);
        let mut approved = plain.clone();
        let d = approved.digest(crate::keys::suite::Suite::Default);
        approved.approvals = vec![Approval {
            approver: "张伟".into(),
            signature: try_sign(&officer, Decision::Approve, &d).unwrap(),
        }];
        let bytes = approved.encode().unwrap();
        assert_eq!(bytes[4], APPROVED_VERSION);
        assert_eq!(&bytes[5..plain_bytes.len()], &plain_bytes[5..], "same body");
        let back = SignedManifest::decode(&bytes).unwrap();
        assert_eq!(back, approved);
        assert_eq!(back.encode().unwrap(), bytes, "canonical");
        assert_eq!(back.open(&key.verify_key()).unwrap(), m);
        for n in plain_bytes.len()..bytes.len() {
            assert!(SignedManifest::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        // version 3 with no approval, version 2 with a trailer: refused
        let mut empty3 = plain_bytes.clone();
        empty3[4] = APPROVED_VERSION;
        assert!(SignedManifest::decode(&empty3).is_err());
        empty3.push(0);
        assert!(SignedManifest::decode(&empty3).is_err());
        let mut v2_trailer = bytes.clone();
        v2_trailer[4] = VERSION;
        assert!(SignedManifest::decode(&v2_trailer).is_err());
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

    fn decode_err(bytes: &[u8]) -> DecodeError {
        match SignedManifest::decode(bytes) {
            Err(ManifestError::Decode(e)) => e,
            other => panic!("expected a decode error, got {other:?}"),
        }
    }

    #[test]
    fn oversized_length_refused_without_allocating() {
        // A body length of 4 GiB: decoding must fail on the cap, not try to allocate.
        let mut bytes = MAGIC.to_vec();
        bytes.push(VERSION);
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        bytes.extend_from_slice(&[0; 16]);
        assert!(matches!(
            decode_err(&bytes),
            DecodeError::TooLong {
                field: "body_len",
                ..
            }
        ));
        // A chunk count over the cap, and one under it with the hashes missing.
        let body = encode_body(&sample(10)).unwrap();
        let at = chunk_count_offset(&sample(10));
        for (count, field) in [(u32::MAX, "chunk_count"), (MAX_CHUNKS as u32, "chunks")] {
            let mut b = body.clone();
            b[at..at + 4].copy_from_slice(&count.to_be_bytes());
            let e = decode_body(&b).unwrap_err();
            assert!(
                matches!(e, DecodeError::TooLong { field: f, .. } | DecodeError::Truncated { field: f } if f == field),
                "{e:?}"
            );
        }
    }

    /// Offset of the chunk count in the body of `m`.
    fn chunk_count_offset(m: &Manifest) -> usize {
        16 + 1 + 2 + m.channel.len() + 2 + m.name.len() + 8 + 2 + m.content_type.len() + 32 + 4
    }

    /// Offsets of the five text length fields in the body of `m`.
    fn text_offsets(m: &Manifest) -> [usize; 5] {
        let channel = 17;
        let name = channel + 2 + m.channel.len();
        let content_type = name + 2 + m.name.len() + 8;
        let sender = content_type + 2 + m.content_type.len() + 32 + 4 + 4 + 32 * m.chunks.len();
        let verdict = sender + 2 + m.sender.len() + 8 + 8;
        [channel, name, content_type, sender, verdict]
    }

    #[test]
    fn layout_is_the_documented_one() {
        let m = sample(3 * 1024 * 1024 + 5);
        let body = encode_body(&m).unwrap();
        assert_eq!(body[..16], m.object_id.0);
        assert_eq!(body[16], VERSION);
        let at = chunk_count_offset(&m);
        assert_eq!(body[at..at + 4], 4u32.to_be_bytes());
        assert_eq!(body[at - 4..at], CHUNK_SIZE.to_be_bytes());
        let [.., verdict] = text_offsets(&m);
        assert_eq!(body[verdict..], *b"\0\x06accept");
        let key = SigningKey::generate().unwrap();
        let bytes = m.sign(&key).unwrap().encode().unwrap();
        assert_eq!(bytes[..5], *b"ISGM\x02");
        assert_eq!(bytes[5..9], (body.len() as u32).to_be_bytes());
        assert_eq!(bytes[9..9 + body.len()], body[..]);
        assert_eq!(bytes.len(), ENVELOPE_LEN + body.len());
    }

    #[test]
    fn canonical_round_trip_and_flipped_lengths_refused() {
        let key = SigningKey::generate().unwrap();
        let m = sample(3 * 1024 * 1024 + 5);
        let bytes = m.sign(&key).unwrap().encode().unwrap();
        let signed = SignedManifest::decode(&bytes).unwrap();
        assert_eq!(signed.encode().unwrap(), bytes);
        assert_eq!(
            encode_body(&decode_body(&signed.body).unwrap()).unwrap(),
            signed.body
        );
        // The body length one more or one less than the body: refused.
        for delta in [1u32, u32::MAX] {
            let mut b = bytes.clone();
            let len = u32::from_be_bytes([b[5], b[6], b[7], b[8]]).wrapping_add(delta);
            b[5..9].copy_from_slice(&len.to_be_bytes());
            assert!(SignedManifest::decode(&b).is_err(), "body_len {len}");
        }
        // Any text length one more or one less, or its high bit flipped: refused.
        for at in text_offsets(&m) {
            for flip in [0x0001u16, 0x8000, 0x0400] {
                for op in [u16::wrapping_add, u16::wrapping_sub, |a: u16, b: u16| a ^ b] {
                    let mut b = signed.body.clone();
                    let len = op(u16::from_be_bytes([b[at], b[at + 1]]), flip);
                    b[at..at + 2].copy_from_slice(&len.to_be_bytes());
                    assert!(decode_body(&b).is_err(), "length {len} at {at}");
                }
            }
        }
    }

    #[test]
    fn bad_magic_version_utf8_and_trailing_refused() {
        let key = SigningKey::generate().unwrap();
        let m = sample(10);
        let bytes = m.sign(&key).unwrap().encode().unwrap();
        let mut b = bytes.clone();
        b[0] = b'X';
        assert_eq!(decode_err(&b), DecodeError::BadMagic);
        let mut b = bytes.clone();
        b[4] = 1;
        assert_eq!(decode_err(&b), DecodeError::Version(1));
        let mut long = bytes.clone();
        long.extend_from_slice(&[0; 3]);
        assert_eq!(decode_err(&long), DecodeError::Trailing(3));

        let body = encode_body(&m).unwrap();
        let mut b = body.clone();
        b[16] = 3;
        assert_eq!(decode_body(&b), Err(DecodeError::Version(3)));
        let mut b = body.clone();
        let name = text_offsets(&m)[1] + 2;
        b[name] = 0xff;
        assert_eq!(decode_body(&b), Err(DecodeError::Utf8 { field: "name" }));
        let mut b = body.clone();
        b.push(0);
        assert_eq!(decode_body(&b), Err(DecodeError::Trailing(1)));
        for n in 0..body.len() {
            assert!(
                matches!(decode_body(&body[..n]), Err(DecodeError::Truncated { .. })),
                "prefix {n}"
            );
        }
        // A body that decodes but is inconsistent, properly signed, is refused on open.
        let mut bad = m.clone();
        bad.chunks.push([0; 32]);
        let body = encode_body(&bad).unwrap();
        let signature = key.sign(&signing_message(&body));
        assert!(matches!(
            SignedManifest {
                body,
                signature,
                approvals: Vec::new(),
            }
            .open(&key.verify_key()),
            Err(ManifestError::Invalid(_))
        ));
    }

    #[test]
    fn text_and_signature_caps_on_encode() {
        let mut m = sample(10);
        m.name = "x".repeat(MAX_TEXT);
        let body = encode_body(&m).unwrap();
        assert_eq!(decode_body(&body).unwrap(), m);
        m.name.push('x');
        assert!(encode_body(&m).is_err());
        let mut b = body.clone();
        let at = text_offsets(&sample(10))[1];
        b[at..at + 2].copy_from_slice(&(MAX_TEXT as u16 + 1).to_be_bytes());
        assert!(matches!(
            decode_body(&b),
            Err(DecodeError::TooLong { field: "name", .. })
        ));
        let s = SignedManifest {
            body: vec![0; 10],
            signature: vec![0; 63],
            approvals: Vec::new(),
        };
        assert!(s.encode().is_err());
        let s = SignedManifest {
            body: vec![0; MAX_BODY + 1],
            signature: vec![0; SIGNATURE_LEN],
            approvals: Vec::new(),
        };
        assert!(s.encode().is_err());
    }

    /// A deterministic pseudo-random generator for the smoke runs (here and in `fuzzing`).
    pub(crate) fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    fn random_text(next: &mut impl FnMut() -> u64) -> String {
        const PIECES: [&str; 8] = ["a", "Z", "0", "-", ".", "民", "（", "\u{1F600}"];
        let n = match next() % 16 {
            0 => 0,
            1 => 300,
            _ => (next() % 24) as usize,
        };
        let mut s: String = (0..n)
            .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
            .collect();
        while s.len() > MAX_TEXT {
            s.pop();
        }
        s
    }

    fn random_manifest(next: &mut impl FnMut() -> u64) -> Manifest {
        fn hash(next: &mut impl FnMut() -> u64) -> [u8; 32] {
            let mut h = [0u8; 32];
            for (i, b) in h.iter_mut().enumerate() {
                *b = (next() >> (i % 8)) as u8;
            }
            h
        }
        let n = next() % 6;
        let chunks = (0..n).map(|_| hash(next)).collect();
        let digest = hash(next);
        Manifest {
            object_id: ObjectId((next() as u128 | (next() as u128) << 64).to_be_bytes()),
            channel: random_text(next),
            name: random_text(next),
            size: next() >> (next() % 64),
            content_type: random_text(next),
            digest,
            chunk_size: next() as u32,
            chunks,
            sender: random_text(next),
            sequence: next(),
            created_ms: next() >> 20,
            verdict: random_text(next),
        }
    }

    /// Over many random manifests: decoding inverts encoding, and any mutation of the bytes
    /// either is refused or decodes to a value that encodes back to exactly those bytes.
    #[test]
    fn random_manifests_round_trip_canonically() {
        let key = SigningKey::from_seed(&[5u8; 32]).unwrap();
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let m = random_manifest(&mut next);
            let body = encode_body(&m).unwrap();
            assert_eq!(decode_body(&body).unwrap(), m);
            let signature = key.sign(&signing_message(&body));
            let bytes = SignedManifest {
                body,
                signature,
                approvals: Vec::new(),
            }
            .encode()
            .unwrap();
            let back = SignedManifest::decode(&bytes).unwrap();
            assert_eq!(back.encode().unwrap(), bytes);
            for _ in 0..8 {
                let mut b = back.body.clone();
                for _ in 0..=(next() % 3) {
                    let pos = (next() as usize) % b.len();
                    b[pos] = next() as u8;
                }
                if next().is_multiple_of(4) {
                    b.truncate((next() as usize) % (b.len() + 1));
                }
                if let Ok(m2) = decode_body(&b) {
                    assert_eq!(encode_body(&m2).unwrap(), b);
                }
            }
        }
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
