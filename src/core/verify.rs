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
//! may take the whole hash apart ([`Reception::take_whole`]) and the chunk hashes too
//! ([`Reception::take_chunks`]), feed them the same bytes on other cores, and end with
//! [`Reception::finish_apart`]: the reception still counts every byte against the
//! manifest's size, a chunk check taken apart still compares each chunk as it completes
//! (the shell stops on its first refusal), and the end needs both back, each having seen
//! every byte.

use crate::core::approval::Approval;
use crate::core::id::ObjectId;
use crate::core::manifest::{Manifest, ManifestError, SignedManifest};
use crate::core::reason::{Reason, Refusal};
use crate::keys::VerifyKey;
use crate::keys::suite::{Hasher, Suite};

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
    /// The suite of the content hashes.
    suite: Suite,
    /// The chunk hashes, unless the shell took them apart ([`Reception::take_chunks`]).
    chunks: Option<ChunkCheck>,
    /// The whole hash, unless the shell took it apart ([`Reception::take_whole`]).
    total_ctx: Option<Hasher>,
}

/// The check of an arriving object's chunk hashes (SHA-256, RFC 6234, or SM3, GB/T 32905,
/// of each chunk of the manifest's `chunk_size` bytes, the last one shorter), taken apart
/// from its [`Reception`] so that it can run on another thread, as a [`WholeHash`]: fed
/// every byte the reception is fed, in the same order, it compares each chunk with the
/// manifest's hash as the chunk completes, and the first refusal sticks. Given back to
/// [`Reception::finish_apart`], which requires it to have seen every byte the reception
/// counted. Only the reception makes one (from the verified manifest's hashes), so no
/// caller can put hashes of its choosing in their place.
pub struct ChunkCheck {
    /// The manifest's hash of each chunk, in order.
    expected: Vec<[u8; 32]>,
    /// Bytes in every chunk but the last.
    chunk_size: u64,
    /// The content's size, in bytes.
    size: u64,
    /// Bytes taken.
    received: u64,
    /// The chunk being hashed.
    index: usize,
    /// Bytes of it taken.
    in_chunk: u64,
    ctx: Hasher,
    /// The first refusal, given again to every later call.
    failed: Option<Refusal>,
}

impl ChunkCheck {
    fn new(manifest: &Manifest, suite: Suite) -> ChunkCheck {
        ChunkCheck {
            expected: manifest.chunks.clone(),
            chunk_size: u64::from(manifest.chunk_size),
            size: manifest.size,
            received: 0,
            index: 0,
            in_chunk: 0,
            ctx: Hasher::new(suite),
            failed: None,
        }
    }

    /// The length of the chunk being hashed: `chunk_size`, the last one what is left.
    fn chunk_len(&self) -> u64 {
        let start = (self.index as u64).saturating_mul(self.chunk_size);
        self.chunk_size.min(self.size.saturating_sub(start))
    }

    /// The refusal this check stopped on, if any.
    pub fn refusal(&self) -> Option<&Refusal> {
        self.failed.as_ref()
    }

    /// Takes the next bytes: the same ones, in the same order, as the reception's `feed`.
    ///
    /// # Errors
    /// More bytes than the manifest's size (`SizeMismatch`), or a chunk that does not
    /// match its hash (`ChunkHash`); once refused, every later call gives that refusal.
    pub fn update(&mut self, data: &[u8]) -> Result<(), Refusal> {
        if let Some(r) = &self.failed {
            return Err(r.clone());
        }
        let checked = self.check(data);
        if let Err(r) = &checked {
            self.failed = Some(r.clone());
        }
        checked
    }

    fn check(&mut self, mut data: &[u8]) -> Result<(), Refusal> {
        if self.received.saturating_add(data.len() as u64) > self.size {
            return Err(Refusal::new(
                Reason::SizeMismatch,
                format!("more than the {} bytes announced", self.size),
            ));
        }
        while !data.is_empty() {
            let len = self.chunk_len();
            let want = len.saturating_sub(self.in_chunk);
            if want == 0 {
                // cannot be: the size check leaves every byte a chunk (a valid manifest)
                return Err(Refusal::new(
                    Reason::SizeMismatch,
                    format!("more than the {} bytes announced", self.size),
                ));
            }
            let n = usize::try_from(want).map_or(data.len(), |w| w.min(data.len()));
            let (now, rest) = data.split_at(n);
            self.ctx.update(now);
            self.in_chunk += n as u64;
            self.received += n as u64;
            data = rest;
            if self.in_chunk == len {
                let fresh = Hasher::new(self.ctx.suite());
                let got = std::mem::replace(&mut self.ctx, fresh).finish();
                if self.expected.get(self.index) != Some(&got) {
                    return Err(Refusal::new(
                        Reason::ChunkHash,
                        format!("chunk {} does not match the manifest", self.index),
                    ));
                }
                self.index += 1;
                self.in_chunk = 0;
            }
        }
        Ok(())
    }
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
            digest: signed.digest(suite),
            approvals: signed.approvals,
            received: 0,
            suite,
            chunks: Some(ChunkCheck::new(&manifest, suite)),
            total_ctx: Some(Hasher::new(suite)),
            manifest,
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

    /// Content bytes fed so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Takes the next bytes of content, checking each chunk as it completes (unless the
    /// chunk check was taken apart: [`Reception::take_chunks`]).
    ///
    /// # Errors
    /// More bytes than the manifest's size (`SizeMismatch`), or a chunk that does not
    /// match its hash (`ChunkHash`).
    pub fn feed(&mut self, data: &[u8]) -> Result<(), Refusal> {
        if self.received.saturating_add(data.len() as u64) > self.manifest.size {
            return Err(Refusal::new(
                Reason::SizeMismatch,
                format!("more than the {} bytes announced", self.manifest.size),
            ));
        }
        if let Some(chunks) = &mut self.chunks {
            chunks.update(data)?;
        }
        if let Some(total) = &mut self.total_ctx {
            total.update(data);
        }
        self.received += data.len() as u64;
        Ok(())
    }

    /// Takes the chunk hashes' check apart, to be fed by the caller (on another thread)
    /// and given back to [`Reception::finish_apart`]; the reception still counts the bytes.
    /// Only before the first byte is fed, and only once: `None` otherwise.
    pub fn take_chunks(&mut self) -> Option<ChunkCheck> {
        if self.received > 0 {
            return None;
        }
        self.chunks.take()
    }

    /// Puts back a chunk check taken apart before any byte was fed to it or to this
    /// reception (its thread could not be had): the reception checks the chunks itself
    /// again. `false`, and nothing put back, once bytes were fed.
    pub fn put_chunks(&mut self, chunks: ChunkCheck) -> bool {
        if self.received > 0 || chunks.received > 0 || self.chunks.is_some() {
            return false;
        }
        self.chunks = Some(chunks);
        true
    }

    /// Takes the whole-content hash apart, to be computed by the caller (on another
    /// thread) and given back to [`Reception::finish_with`] or [`Reception::finish_apart`];
    /// the chunk hashes stay here unless taken apart too ([`Reception::take_chunks`]).
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
    /// A short stream (`SizeMismatch`), another whole hash (`ContentHash`), or a hash taken
    /// apart ([`Reception::take_whole`], [`Reception::take_chunks`]) and not given back
    /// (`ContentHash`: fails closed; end such a reception with
    /// [`Reception::finish_apart`]).
    pub fn finish(self) -> Result<Verified, Refusal> {
        self.finish_apart(None, None)
    }

    /// Ends a content whose whole hash was taken apart: `whole` is that [`WholeHash`], fed
    /// every byte. As [`Reception::finish`] otherwise; where the hash was not taken apart,
    /// the one computed here must match as well.
    ///
    /// # Errors
    /// As [`Reception::finish`].
    pub fn finish_with(self, whole: WholeHash) -> Result<Verified, Refusal> {
        self.finish_apart(Some(whole), None)
    }

    /// Ends a content whose hashes may have been taken apart: `whole` and `chunks`, each
    /// fed every byte, where they were ([`Reception::take_whole`],
    /// [`Reception::take_chunks`]). A hash not taken apart is checked here; one taken
    /// apart must be given back, and a hash given back where this reception kept its own
    /// must agree with it.
    ///
    /// # Errors
    /// As [`Reception::finish`]; a chunk check given back refused (its refusal), made for
    /// another manifest, given where this reception kept its own, or that did not see
    /// every byte the reception counted (`ContentHash`).
    pub fn finish_apart(
        mut self,
        whole: Option<WholeHash>,
        chunks: Option<ChunkCheck>,
    ) -> Result<Verified, Refusal> {
        match (&chunks, &self.chunks) {
            (Some(_), Some(_)) => {
                return Err(Refusal::new(
                    Reason::ContentHash,
                    "a chunk check given back that this reception did not give out",
                ));
            }
            (Some(apart), None) => {
                if let Some(r) = &apart.failed {
                    return Err(r.clone());
                }
                if apart.expected != self.manifest.chunks
                    || apart.size != self.manifest.size
                    || apart.chunk_size != u64::from(self.manifest.chunk_size)
                {
                    return Err(Refusal::new(
                        Reason::ContentHash,
                        "the chunk hashes checked apart are another object's",
                    ));
                }
                if apart.received != self.received {
                    return Err(Refusal::new(
                        Reason::ContentHash,
                        "the chunk hashes checked apart did not see every byte",
                    ));
                }
            }
            (None, Some(own)) => {
                if let Some(r) = &own.failed {
                    return Err(r.clone());
                }
            }
            (None, None) => {
                return Err(Refusal::new(
                    Reason::ContentHash,
                    "the chunk hashes were taken apart and not given back",
                ));
            }
        }
        let got = match (whole, self.total_ctx.take()) {
            (Some(whole), Some(total)) => {
                let whole = whole.finish();
                if total.finish() != whole {
                    return Err(Refusal::new(
                        Reason::ContentHash,
                        "the whole hash computed apart differs from the reception's",
                    ));
                }
                whole
            }
            (Some(whole), None) => whole.finish(),
            (None, Some(total)) => total.finish(),
            (None, None) => {
                return Err(Refusal::new(
                    Reason::ContentHash,
                    "the whole hash was taken apart and not given back",
                ));
            }
        };
        self.end(got)
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
                format!("content does not match its {}", self.suite.hash()),
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

    #[test]
    fn a_chunk_check_taken_apart_ends_the_reception_as_before() {
        let content: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let (key, rules, m) = setup(&content, 4096);
        // both hashes apart, fed in odd steps: verified
        let mut r = Reception::begin(&payload(&m, &key), &rules).unwrap();
        let mut whole = r.take_whole().unwrap();
        let mut chunks = r.take_chunks().unwrap();
        assert!(r.take_chunks().is_none(), "only once");
        for piece in content.chunks(3000) {
            r.feed(piece).unwrap();
            whole.update(piece);
            chunks.update(piece).unwrap();
        }
        r.finish_apart(Some(whole), Some(chunks)).unwrap();
        // the chunks apart, the whole kept: verified too
        let mut r = Reception::begin(&payload(&m, &key), &rules).unwrap();
        let mut chunks = r.take_chunks().unwrap();
        r.feed(&content).unwrap();
        chunks.update(&content).unwrap();
        r.finish_apart(None, Some(chunks)).unwrap();
        // not given back: fails closed
        let mut r = Reception::begin(&payload(&m, &key), &rules).unwrap();
        let _kept = r.take_chunks().unwrap();
        r.feed(&content).unwrap();
        assert_eq!(r.finish().unwrap_err().reason, Reason::ContentHash);
        // only before the first byte
        let mut r = Reception::begin(&payload(&m, &key), &rules).unwrap();
        r.feed(&content[..1]).unwrap();
        assert!(r.take_chunks().is_none());
    }

    #[test]
    fn a_chunk_check_apart_refuses_its_chunk_and_sticks() {
        let content = vec![5u8; 20_000];
        let (key, rules, m) = setup(&content, 4096);
        let mut r = Reception::begin(&payload(&m, &key), &rules).unwrap();
        let mut chunks = r.take_chunks().unwrap();
        let mut bad = content.clone();
        bad[4096 * 2 + 1] = 6;
        // the reception only counts the bytes now: the check apart refuses chunk 2
        r.feed(&bad).unwrap();
        assert!(chunks.update(&bad[..4096 * 2]).is_ok());
        let e = chunks.update(&bad[4096 * 2..]).unwrap_err();
        assert_eq!(e.reason, Reason::ChunkHash);
        assert!(e.detail.contains("chunk 2 "), "{}", e.detail);
        assert_eq!(chunks.refusal(), Some(&e));
        assert_eq!(chunks.update(&[]).unwrap_err(), e, "the refusal sticks");
        assert_eq!(
            r.finish_apart(None, Some(chunks)).unwrap_err().reason,
            Reason::ChunkHash
        );
    }

    #[test]
    fn a_chunk_check_not_given_out_by_the_reception_is_refused() {
        let content = vec![1u8; 9000];
        let other = vec![2u8; 9000];
        let (key, rules, m) = setup(&content, 4096);
        let (okey, orules, om) = setup(&other, 4096);
        // another object's check, fed that object's bytes, given to this reception
        let mut theirs = Reception::begin(&payload(&om, &okey), &orules).unwrap();
        let mut foreign = theirs.take_chunks().unwrap();
        foreign.update(&other).unwrap();
        let mut r = Reception::begin(&payload(&m, &key), &rules).unwrap();
        let _ours = r.take_chunks().unwrap();
        r.feed(&content).unwrap();
        let e = r.finish_apart(None, Some(foreign)).unwrap_err();
        assert_eq!(e.reason, Reason::ContentHash);
        assert!(e.detail.contains("another object's"), "{}", e.detail);
        // one given where the reception kept its own
        let mut theirs = Reception::begin(&payload(&om, &okey), &orules).unwrap();
        let foreign = theirs.take_chunks().unwrap();
        let mut r = Reception::begin(&payload(&m, &key), &rules).unwrap();
        r.feed(&content).unwrap();
        let e = r.finish_apart(None, Some(foreign)).unwrap_err();
        assert_eq!(e.reason, Reason::ContentHash);
        // a check that missed bytes the reception counted
        let mut r = Reception::begin(&payload(&m, &key), &rules).unwrap();
        let mut chunks = r.take_chunks().unwrap();
        r.feed(&content).unwrap();
        chunks.update(&content[..4096]).unwrap();
        assert_eq!(
            r.finish_apart(None, Some(chunks)).unwrap_err().reason,
            Reason::ContentHash
        );
    }
}
