//! The receiver's verification state machine, without I/O.
//!
//! ```text
//!  header payload ──► begin ──► Reception ──feed(bytes)*──► finish ──► Verified
//!                      │  signature by a pinned key         │ chunk hashes as bytes arrive
//!                      │  sender is the peer                │ exact size, whole hash
//!                      │  (its key's suite names the hash:  │ (SHA-256 or SM3)
//!                      │   SHA-256 or SM3)                  │
//!                      └─ channel received from this peer   └─ any failure: a Refusal
//! ```
//!
//! The shell reads the stream, hands every byte to `feed` before writing it to the temp
//! file, and lands the file only with a `Verified` in hand. For a large object the shell
//! may take the whole hash apart ([`Reception::take_whole`]), feed it the same bytes on
//! another core, and end with [`Reception::finish_with`]: the chunk hashes are still
//! checked here as the bytes arrive, and the whole hash still decides the end.

use crate::core::approval::Approval;
use crate::core::id::ObjectId;
use crate::core::manifest::{Manifest, ManifestError, SignedManifest};
use crate::core::reason::{Reason, Refusal};
use crate::keys::VerifyKey;
use crate::keys::suite::Hasher;

/// What a receiving node expects of its peer.
#[derive(Clone)]
pub struct ReceiveRules {
    /// The peer's node name, as manifests must give it.
    pub peer: String,
    /// The peer's pinned signing keys: its current key and, while it rotates, its next one.
    /// A manifest signed by any of them is accepted; by any other key, refused.
    pub peer_keys: Vec<VerifyKey>,
    /// Channels this node receives from the peer.
    pub channels: Vec<String>,
}

/// An object whose manifest verified, with its content arriving.
pub struct Reception {
    manifest: Manifest,
    approvals: Vec<Approval>,
    digest: [u8; 32],
    received: u64,
    chunk_index: usize,
    in_chunk: u64,
    chunk_ctx: Hasher,
    /// The whole hash, unless the shell took it apart ([`Reception::take_whole`]).
    total_ctx: Option<Hasher>,
}

/// The hash of an arriving object's whole content (SHA-256, RFC 6234, or SM3, GB/T
/// 32905), taken apart from its [`Reception`] so that it can be computed on another
/// thread: fed every byte the reception is fed, in the same order, then given back to
/// [`Reception::finish_with`], which finishes it and compares. Only the reception makes
/// one and only it reads the result, so no caller can put a digest of its choosing in its
/// place.
pub struct WholeHash(Hasher);

impl WholeHash {
    /// Takes the next bytes: the same ones, in the same order, as the reception's `feed`.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The 32-byte hash of every byte taken.
    fn finish(self) -> [u8; 32] {
        self.0.finish()
    }
}

/// An object whose manifest and every byte of content verified.
#[derive(Debug)]
pub struct Verified {
    /// The verified manifest.
    pub manifest: Manifest,
    /// The approvals the manifest carried (not yet checked against any rule: the
    /// receiver checks them with its own pinned approvers).
    pub approvals: Vec<Approval>,
    /// The hash (SHA-256, or SM3 under `gm`) of the signed manifest body: what the approvals sign.
    pub digest: [u8; 32],
}

/// A refusal at the start, with the id the peer claimed, if the body decoded at all.
#[derive(Debug)]
pub struct BeginRefusal {
    /// The refusal.
    pub refusal: Refusal,
    /// The object id claimed by an unverified manifest (only for receipts and quarantine).
    pub claimed_id: Option<ObjectId>,
}

/// The object id an unverified body claims; used to name a refusal, never to trust it.
pub fn claimed_id(signed: &SignedManifest) -> Option<ObjectId> {
    let body = signed.body.get(..16)?;
    let mut id = [0u8; 16];
    id.copy_from_slice(body);
    Some(ObjectId(id))
}

impl Reception {
    /// Verifies a header payload against the rules and starts receiving.
    pub fn begin(payload: &[u8], rules: &ReceiveRules) -> Result<Reception, BeginRefusal> {
        let signed = SignedManifest::decode(payload).map_err(|e| BeginRefusal {
            refusal: Refusal::new(Reason::BadManifest, e.to_string()),
            claimed_id: None,
        })?;
        let claimed = claimed_id(&signed);
        let refuse = |reason, detail: String| BeginRefusal {
            refusal: Refusal::new(reason, detail),
            claimed_id: claimed,
        };
        let mut opened = Err(ManifestError::Signature);
        // the content hashes are of the suite of the key that signed them
        let mut suite = crate::keys::suite::Suite::Default;
        for key in &rules.peer_keys {
            opened = signed.open(key);
            suite = key.suite();
            if !matches!(opened, Err(ManifestError::Signature)) {
                break;
            }
        }
        let manifest = opened.map_err(|e| match e {
            ManifestError::Signature => refuse(
                Reason::BadSignature,
                format!("not signed by a pinned key of {}", rules.peer),
            ),
            e => refuse(Reason::BadManifest, e.to_string()),
        })?;
        if manifest.sender != rules.peer {
            return Err(refuse(
                Reason::BadManifest,
                format!(
                    "sender is {:?}, the peer is {:?}",
                    manifest.sender, rules.peer
                ),
            ));
        }
        if !rules.channels.contains(&manifest.channel) {
            return Err(refuse(
                Reason::WrongChannel,
                format!(
                    "this node does not receive channel {:?} from {}",
                    manifest.channel, rules.peer
                ),
            ));
        }
        Ok(Reception {
            manifest,
            digest: signed.digest(suite),
            approvals: signed.approvals,
            received: 0,
            chunk_index: 0,
            in_chunk: 0,
            chunk_ctx: Hasher::new(suite),
            total_ctx: Some(Hasher::new(suite)),
        })
    }

    /// The verified manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The approvals the manifest carried, unchecked (see [`Verified::approvals`]).
    pub fn approvals(&self) -> &[Approval] {
        &self.approvals
    }

    /// The hash (SHA-256, or SM3 under `gm`) of the signed manifest body: what the approvals sign.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    fn chunk_len(&self, index: usize) -> u64 {
        let cs = u64::from(self.manifest.chunk_size);
        cs.min(self.manifest.size - index as u64 * cs)
    }

    /// Takes the next bytes of content, checking each chunk as it completes.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), Refusal> {
        if self.received + data.len() as u64 > self.manifest.size {
            return Err(Refusal::new(
                Reason::SizeMismatch,
                format!("more than the {} bytes announced", self.manifest.size),
            ));
        }
        while !data.is_empty() {
            let want = self.chunk_len(self.chunk_index) - self.in_chunk;
            let n = want.min(data.len() as u64) as usize;
            let (now, rest) = data.split_at(n);
            self.chunk_ctx.update(now);
            if let Some(total) = &mut self.total_ctx {
                total.update(now);
            }
            self.in_chunk += n as u64;
            self.received += n as u64;
            data = rest;
            if self.in_chunk == self.chunk_len(self.chunk_index) {
                let fresh = Hasher::new(self.chunk_ctx.suite());
                let got = std::mem::replace(&mut self.chunk_ctx, fresh).finish();
                if got != self.manifest.chunks[self.chunk_index] {
                    return Err(Refusal::new(
                        Reason::ChunkHash,
                        format!("chunk {} does not match the manifest", self.chunk_index),
                    ));
                }
                self.chunk_index += 1;
                self.in_chunk = 0;
            }
        }
        Ok(())
    }

    /// Takes the whole-content hash apart, to be computed by the caller (on another
    /// thread) and given back to [`Reception::finish_with`]; the chunk hashes stay here.
    /// Only before the first byte is fed, and only once: `None` otherwise.
    pub fn take_whole(&mut self) -> Option<WholeHash> {
        if self.received > 0 {
            return None;
        }
        self.total_ctx.take().map(WholeHash)
    }

    /// Puts back a whole hash taken apart before any byte was fed to it or to this
    /// reception (its thread could not be had): the reception hashes whole itself again.
    /// `false`, and nothing put back, once bytes were fed.
    pub fn put_whole(&mut self, whole: WholeHash) -> bool {
        if self.received > 0 || self.total_ctx.is_some() {
            return false;
        }
        self.total_ctx = Some(whole.0);
        true
    }

    /// Ends the content: every byte must have arrived and the whole hash must match.
    ///
    /// # Errors
    /// A short stream (`SizeMismatch`), another whole hash (`ContentHash`), or a whole hash
    /// taken apart ([`Reception::take_whole`]) and not given back (`ContentHash`: fails
    /// closed; end such a reception with [`Reception::finish_with`]).
    pub fn finish(mut self) -> Result<Verified, Refusal> {
        let Some(total) = self.total_ctx.take() else {
            return Err(Refusal::new(
                Reason::ContentHash,
                "the whole hash was taken apart and not given back",
            ));
        };
        self.end(total.finish())
    }

    /// Ends a content whose whole hash was taken apart: `whole` is that [`WholeHash`], fed
    /// every byte. As [`Reception::finish`] otherwise; where the hash was not taken apart,
    /// the one computed here must match as well.
    ///
    /// # Errors
    /// As [`Reception::finish`].
    pub fn finish_with(mut self, whole: WholeHash) -> Result<Verified, Refusal> {
        let whole = whole.finish();
        if let Some(total) = self.total_ctx.take()
            && total.finish() != whole
        {
            return Err(Refusal::new(
                Reason::ContentHash,
                "the whole hash computed apart differs from the reception's",
            ));
        }
        self.end(whole)
    }

    /// The end of either `finish`: size, then the whole hash `got` against the manifest.
    fn end(self, got: [u8; 32]) -> Result<Verified, Refusal> {
        if self.received != self.manifest.size {
            return Err(Refusal::new(
                Reason::SizeMismatch,
                format!(
                    "stream ended after {} of {} bytes",
                    self.received, self.manifest.size
                ),
            ));
        }
        if got != self.manifest.digest {
            return Err(Refusal::new(
                Reason::ContentHash,
                format!(
                    "content does not match its {}",
                    self.chunk_ctx.suite().hash()
                ),
            ));
        }
        Ok(Verified {
            manifest: self.manifest,
            approvals: self.approvals,
            digest: self.digest,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::digest::hash_content;
    use crate::keys::SigningKey;

    /// A key, the rules of a node receiving `to-internet` from `court` under it, and the
    /// manifest of `content` in chunks of `chunk` bytes (shared with the receiver's tests).
    pub(crate) fn setup(content: &[u8], chunk: u32) -> (SigningKey, ReceiveRules, Manifest) {
        let key = SigningKey::generate().unwrap();
        let rules = ReceiveRules {
            peer: "court".into(),
            peer_keys: vec![key.verify_key()],
            channels: vec!["to-internet".into()],
        };
        let (sha, chunks) = hash_content(&mut &content[..], chunk, key.suite()).unwrap();
        let m = Manifest {
            object_id: ObjectId([9; 16]),
            channel: "to-internet".into(),
            name: "a.txt".into(),
            size: content.len() as u64,
            content_type: "text".into(),
            digest: sha,
            chunk_size: chunk,
            chunks,
            sender: "court".into(),
            sequence: 1,
            created_ms: 0,
            verdict: "accept".into(),
        };
        (key, rules, m)
    }

    /// The signed, encoded manifest: a header frame's payload.
    pub(crate) fn payload(m: &Manifest, key: &SigningKey) -> Vec<u8> {
        m.sign(key).unwrap().encode().unwrap()
    }

    #[test]
    fn accepts_content_fed_in_any_split() {
        let content: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let (key, rules, m) = setup(&content, 4096);
        let p = payload(&m, &key);
        for step in [1usize, 7, 4096, 5000, 20_000] {
            let mut r = Reception::begin(&p, &rules).unwrap();
            for piece in content.chunks(step) {
                r.feed(piece).unwrap();
            }
            let v = r.finish().unwrap();
            assert_eq!(v.manifest, m);
        }
    }

    #[test]
    fn empty_object() {
        let (key, rules, m) = setup(b"", 4096);
        let r = Reception::begin(&payload(&m, &key), &rules).unwrap();
        r.finish().unwrap();
    }

    #[test]
    fn flipped_byte_is_a_chunk_hash_refusal_at_its_chunk() {
        let content = vec![5u8; 10_000];
        let (key, rules, m) = setup(&content, 4096);
        let mut bad = content.clone();
        bad[5000] ^= 1;
        let mut r = Reception::begin(&payload(&m, &key), &rules).unwrap();
        r.feed(&bad[..4096]).unwrap();
        let e = r.feed(&bad[4096..]).unwrap_err();
        assert_eq!(e.reason, Reason::ChunkHash);
        assert!(e.detail.contains("chunk 1"));
    }

    #[test]
    fn short_and_long_streams_refused() {
        let content = vec![1u8; 5000];
        let (key, rules, m) = setup(&content, 4096);
        let p = payload(&m, &key);
        let mut r = Reception::begin(&p, &rules).unwrap();
        r.feed(&content[..4999]).unwrap();
        assert_eq!(r.finish().unwrap_err().reason, Reason::SizeMismatch);
        let mut r = Reception::begin(&p, &rules).unwrap();
        r.feed(&content).unwrap();
        assert_eq!(r.feed(b"x").unwrap_err().reason, Reason::SizeMismatch);
    }

    #[test]
    fn wrong_key_sender_or_channel_refused() {
        let (key, rules, m) = setup(b"abc", 4096);
        let other = SigningKey::generate().unwrap();
        let e = Reception::begin(&payload(&m, &other), &rules)
            .err()
            .unwrap();
        assert_eq!(e.refusal.reason, Reason::BadSignature);
        assert_eq!(e.claimed_id, Some(ObjectId([9; 16])));
        let mut m2 = m.clone();
        m2.channel = "to-court".into();
        let e = Reception::begin(&payload(&m2, &key), &rules).err().unwrap();
        assert_eq!(e.refusal.reason, Reason::WrongChannel);
        let mut m3 = m.clone();
        m3.sender = "mallory".into();
        let e = Reception::begin(&payload(&m3, &key), &rules).err().unwrap();
        assert_eq!(e.refusal.reason, Reason::BadManifest);
        // while the peer rotates, its next key is accepted beside the current one
        let mut both = rules.clone();
        both.peer_keys.push(other.verify_key());
        Reception::begin(&payload(&m, &other), &both).unwrap();
        Reception::begin(&payload(&m, &key), &both).unwrap();
        let third = SigningKey::generate().unwrap();
        let e = Reception::begin(&payload(&m, &third), &both).err().unwrap();
        assert_eq!(e.refusal.reason, Reason::BadSignature);
        let e = Reception::begin(b"garbage", &rules).err().unwrap();
        assert_eq!(e.refusal.reason, Reason::BadManifest);
        assert_eq!(e.claimed_id, None);
    }

    #[test]
    fn forged_whole_hash_refused_at_finish() {
        let content = vec![3u8; 100];
        let (key, rules, mut m) = setup(&content, 4096);
        m.digest = [0; 32];
        let mut r = Reception::begin(&payload(&m, &key), &rules).unwrap();
        r.feed(&content).unwrap();
        assert_eq!(r.finish().unwrap_err().reason, Reason::ContentHash);
    }

    #[test]
    fn a_whole_hash_taken_apart_ends_the_reception_as_before() {
        let content: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
        let (key, rules, m) = setup(&content, 4096);
        let p = payload(&m, &key);
        let mut r = Reception::begin(&p, &rules).unwrap();
        let mut whole = r.take_whole().unwrap();
        // once only
        assert!(r.take_whole().is_none());
        for piece in content.chunks(3000) {
            r.feed(piece).unwrap();
            whole.update(piece);
        }
        assert_eq!(r.finish_with(whole).unwrap().manifest, m);
        // not given back: refused, never taken as verified
        let mut r = Reception::begin(&p, &rules).unwrap();
        let _kept = r.take_whole().unwrap();
        r.feed(&content).unwrap();
        assert_eq!(r.finish().unwrap_err().reason, Reason::ContentHash);
        // another result given back: refused
        let mut r = Reception::begin(&p, &rules).unwrap();
        let mut whole = r.take_whole().unwrap();
        r.feed(&content).unwrap();
        whole.update(&content[1..]);
        assert_eq!(
            r.finish_with(whole).unwrap_err().reason,
            Reason::ContentHash
        );
        // not taken apart: the hash kept here must match the one given as well
        let mut other = Reception::begin(&p, &rules).unwrap();
        let stranger = other.take_whole().unwrap();
        let mut r = Reception::begin(&p, &rules).unwrap();
        r.feed(&content).unwrap();
        assert_eq!(
            r.finish_with(stranger).unwrap_err().reason,
            Reason::ContentHash
        );
        // put back before any byte: the reception hashes whole itself again
        let mut r = Reception::begin(&p, &rules).unwrap();
        let whole = r.take_whole().unwrap();
        assert!(r.put_whole(whole));
        r.feed(&content).unwrap();
        assert_eq!(r.finish().unwrap().manifest, m);
    }

    #[test]
    fn the_whole_hash_is_taken_apart_only_before_the_first_byte() {
        let content = vec![7u8; 5000];
        let (key, rules, m) = setup(&content, 4096);
        let mut r = Reception::begin(&payload(&m, &key), &rules).unwrap();
        r.feed(&content[..1]).unwrap();
        assert!(r.take_whole().is_none());
        r.feed(&content[1..]).unwrap();
        r.finish().unwrap();
    }

    #[test]
    fn a_short_stream_with_its_whole_hash_apart_is_a_size_refusal() {
        let content = vec![9u8; 5000];
        let (key, rules, m) = setup(&content, 4096);
        let mut r = Reception::begin(&payload(&m, &key), &rules).unwrap();
        let mut whole = r.take_whole().unwrap();
        r.feed(&content[..4096]).unwrap();
        whole.update(&content[..4096]);
        assert_eq!(
            r.finish_with(whole).unwrap_err().reason,
            Reason::SizeMismatch
        );
    }
}
