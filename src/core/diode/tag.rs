//! The protection of each diode datagram: 16 bytes of tag over its header and body, under
//! the key the two ends of a link share (`[diode] key`), and in the default suite the body
//! encrypted.
//!
//! ```text
//! default suite   K_s = HKDF-SHA256(salt = SALT, IKM = link key, info = "session" | session)
//!                 body | tag = AES-256-GCM(K_s, nonce = 0u32 | seq, AAD = header, body)
//! gm suite        tag = HMAC-SM3(link key, header | body)[..16]; the body in clear
//! ```
//!
//! AES-256-GCM (NIST SP 800-38D) over the body runs at several times HMAC-SHA256's speed:
//! the tag of every datagram was the diode sender's and receiver's largest single cost
//! (40 % and 58 % of their threads' time), and GCM authenticates its ciphertext many
//! blocks at a time where it takes additional data one block at a time (so a GMAC of the
//! whole datagram was no faster than the HMAC). The body is therefore encrypted, which also
//! keeps what crosses from anyone who reads the wire. GCM's one rule is that a key never
//! seals two messages under one nonce. Each session (a sender's run, named by a random
//! 64-bit id in every header) has its own key, derived with HKDF (RFC 5869), and within a
//! session the nonce is the datagram's sequence number, which the sender never repeats.
//! The header, session and sequence number included, is authenticated: a datagram moved to
//! another session or number does not open. The national suite keeps HMAC-SM3 (GB/T
//! 15852.2, truncated to 16 bytes) over a body in clear: SM4-GCM seals at a tenth of the
//! speed the diode needs.
//!
//! The key of the last session that opened is kept, so that a derivation happens once a
//! session, not once a datagram, and datagrams forged under made-up sessions never push it
//! out.

use std::sync::{Arc, Mutex};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Prk, Salt};

use crate::keys::suite::{MacKey, Suite};

/// Length of a datagram's tag.
pub const TAG_LEN: usize = 16;

/// HKDF's salt for the per-session keys: names the protocol and what the keys are for.
pub const SALT: &[u8] = b"isogate diode v2 datagram AES-256-GCM";

/// The 32-byte key shared by the two ends of a link, ready for the pair's suite's datagram
/// protection: AES-256-GCM under a per-session key (the default suite) or HMAC-SM3 (`gm`).
pub struct LinkKey(Keyed);

enum Keyed {
    Gcm(Gcm),
    Hmac(MacKey),
}

/// The HKDF pseudorandom key the session keys are expanded from, and the keys kept.
struct Gcm {
    prk: Prk,
    kept: Mutex<Kept>,
}

/// Two session keys kept: that of the last session whose datagram was sealed or opened,
/// and the last one derived for a datagram not yet opened. So datagrams forged under
/// made-up sessions cost one derivation each and never push out the real session's key.
#[derive(Default)]
struct Kept {
    good: Option<(u64, Arc<LessSafeKey>)>,
    tried: Option<(u64, Arc<LessSafeKey>)>,
}

impl LinkKey {
    /// Prepares `key` for the default suite's AES-256-GCM.
    pub fn new(key: &[u8; 32]) -> Self {
        Self::for_suite(Suite::Default, key)
    }

    /// Prepares `key` for `suite`'s datagram protection.
    pub fn for_suite(suite: Suite, key: &[u8; 32]) -> Self {
        Self(match suite {
            Suite::Default => Keyed::Gcm(Gcm {
                prk: Salt::new(HKDF_SHA256, SALT).extract(key),
                kept: Mutex::new(Kept::default()),
            }),
            Suite::Gm => Keyed::Hmac(MacKey::new(Suite::Gm, key)),
        })
    }

    /// The suite whose tag this is.
    pub fn suite(&self) -> Suite {
        match &self.0 {
            Keyed::Gcm(_) => Suite::Default,
            Keyed::Hmac(k) => k.suite(),
        }
    }

    /// Seals `datagram` in place and returns its tag: the datagram's header (its first
    /// `body_at` bytes, which name `session` and `seq`) and its body (the rest). In the
    /// default suite the body is encrypted under `session`'s key with `seq` as the nonce
    /// and the header authenticated with it; in `gm` both are tagged and the body is left as
    /// it is. `body_at` beyond the datagram is taken as its end. `None` when the seal could
    /// not be made (neither the derivation of 32 bytes nor a seal of under 64 KiB fails):
    /// then nothing may be sent, for the body may be in clear.
    pub fn seal(
        &self,
        session: u64,
        seq: u64,
        datagram: &mut [u8],
        body_at: usize,
    ) -> Option<[u8; TAG_LEN]> {
        let mut out = [0u8; TAG_LEN];
        match &self.0 {
            Keyed::Gcm(g) => {
                let (key, kept) = g.session_key(session)?;
                let (header, body) = datagram.split_at_mut(body_at.min(datagram.len()));
                let tag = key
                    .seal_in_place_separate_tag(nonce(seq), Aad::from(&*header), body)
                    .ok()?;
                if !kept {
                    g.keep(session);
                }
                out.copy_from_slice(tag.as_ref());
            }
            Keyed::Hmac(k) => out.copy_from_slice(&k.tag(datagram)[..TAG_LEN]),
        }
        Some(out)
    }

    /// Opens `datagram` (header and body, as [`LinkKey::seal`] left them, named `session`
    /// and `seq` by its header) against `tag`: `true` when the tag is right, and then the
    /// body is plaintext; `false` otherwise, and then the body is unspecified. The tag is
    /// compared in constant time.
    pub fn open(
        &self,
        session: u64,
        seq: u64,
        datagram: &mut [u8],
        body_at: usize,
        tag: &[u8],
    ) -> bool {
        let Ok(tag) = <[u8; TAG_LEN]>::try_from(tag) else {
            return false;
        };
        match &self.0 {
            Keyed::Gcm(g) => {
                let Some((key, kept)) = g.session_key(session) else {
                    return false;
                };
                let (header, body) = datagram.split_at_mut(body_at.min(datagram.len()));
                let opened = key
                    .open_in_place_separate_tag(
                        nonce(seq),
                        Aad::from(&*header),
                        Tag::from(tag),
                        body,
                        0..,
                    )
                    .is_ok();
                if opened && !kept {
                    g.keep(session);
                }
                opened
            }
            Keyed::Hmac(k) => {
                let want = k.tag(datagram);
                let diff = want.iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b));
                diff == 0
            }
        }
    }
}

impl Gcm {
    /// The AES-256-GCM key of `session`, and whether it is the good one (so that a
    /// datagram of the session that has been opening takes the lock once): a kept one, else
    /// derived (HKDF-Expand, RFC 5869) and kept as tried; `None` if HKDF refused (it cannot
    /// for 32 bytes).
    fn session_key(&self, session: u64) -> Option<(Arc<LessSafeKey>, bool)> {
        // a poisoned lock only held a cache: the key is derived again
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((s, k)) = &kept.good
            && *s == session
        {
            return Some((Arc::clone(k), true));
        }
        if let Some((s, k)) = &kept.tried
            && *s == session
        {
            return Some((Arc::clone(k), false));
        }
        let id = session.to_be_bytes();
        let info: [&[u8]; 2] = [b"session", &id];
        let okm = self.prk.expand(&info, &AES_256_GCM).ok()?;
        let key = Arc::new(LessSafeKey::new(UnboundKey::from(okm)));
        kept.tried = Some((session, Arc::clone(&key)));
        Some((key, false))
    }

    /// A datagram of `session` was sealed or opened: its key is kept as the good one.
    fn keep(&self, session: u64) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.good.as_ref().is_some_and(|(s, _)| *s == session) {
            return;
        }
        if kept.tried.as_ref().is_some_and(|(s, _)| *s == session) {
            kept.good = kept.tried.take();
        }
    }
}

/// The 96-bit GCM nonce of sequence number `seq`: four zero bytes, then `seq` big-endian.
fn nonce(seq: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

impl Clone for LinkKey {
    fn clone(&self) -> Self {
        Self(match &self.0 {
            Keyed::Gcm(g) => Keyed::Gcm(Gcm {
                prk: g.prk.clone(),
                kept: Mutex::new(Kept::default()),
            }),
            Keyed::Hmac(k) => Keyed::Hmac(k.clone()),
        })
    }
}

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const HEADER: usize = 20;

    /// A datagram's header (kind 1, `session`, `seq`) and `body`.
    fn datagram(session: u64, seq: u64, body: &[u8]) -> Vec<u8> {
        let mut d = b"ID\x02\x01".to_vec();
        d.extend_from_slice(&session.to_be_bytes());
        d.extend_from_slice(&seq.to_be_bytes());
        d.extend_from_slice(body);
        d
    }

    /// Computed with another implementation (Python's `cryptography`: HKDF-SHA256 with this
    /// salt and info, then AES-256-GCM with the header as additional data).
    #[test]
    fn the_default_suite_seals_as_hkdf_then_aes_256_gcm_compute_it() {
        let body = b"the court's notice, 2026";
        let mut d = datagram(0x0123_4567_89ab_cdef, 42, body);
        let tag = LinkKey::new(&KEY)
            .seal(0x0123_4567_89ab_cdef, 42, &mut d, HEADER)
            .unwrap();
        assert_eq!(
            hex::encode(&d[..HEADER]),
            "494402010123456789abcdef000000000000002a"
        );
        assert_eq!(
            hex::encode(&d[HEADER..]),
            "2afc9607f71e764ee43ecd0de27079d0983d0bd819dc9983"
        );
        assert_eq!(hex::encode(tag), "aada318d570d5470a61a739ceefa05b8");
        assert!(LinkKey::new(&KEY).open(0x0123_4567_89ab_cdef, 42, &mut d, HEADER, &tag));
        assert_eq!(&d[HEADER..], body);
    }

    #[test]
    fn a_changed_header_body_tag_session_or_key_does_not_open() {
        let key = LinkKey::new(&KEY);
        let body = vec![5u8; 1416];
        let mut sealed = datagram(9, 3, &body);
        let tag = key.seal(9, 3, &mut sealed, HEADER).unwrap();
        assert_ne!(&sealed[HEADER..], &body[..], "the body is encrypted");
        let opens = |d: &[u8], session: u64, seq: u64, tag: &[u8], key: &LinkKey| {
            let mut d = d.to_vec();
            key.open(session, seq, &mut d, HEADER, tag)
        };
        assert!(opens(&sealed, 9, 3, &tag, &key));
        for at in [0, 3, 4, 12, 19, HEADER, sealed.len() - 1] {
            let mut m = sealed.clone();
            m[at] ^= 1;
            assert!(!opens(&m, 9, 3, &tag, &key), "byte {at} changed");
        }
        let mut bad = tag;
        bad[15] ^= 0x80;
        assert!(!opens(&sealed, 9, 3, &bad, &key));
        assert!(!opens(&sealed, 9, 3, &tag[..15], &key));
        // another session's key, another number's nonce, another link key
        assert!(!opens(&sealed, 10, 3, &tag, &key));
        assert!(!opens(&sealed, 9, 4, &tag, &key));
        assert!(!opens(&sealed, 9, 3, &tag, &LinkKey::new(&[8; 32])));
        // a clone keeps no state that matters: it opens the same
        assert!(opens(&sealed, 9, 3, &tag, &key.clone()));
    }

    #[test]
    fn each_session_has_its_own_key_and_the_last_one_is_kept() {
        let key = LinkKey::new(&KEY);
        let body = vec![1u8; 64];
        let mut a = datagram(1, 0, &body);
        let mut b = datagram(2, 0, &body);
        let ta = key.seal(1, 0, &mut a, HEADER).unwrap();
        let tb = key.seal(2, 0, &mut b, HEADER).unwrap();
        assert_ne!(
            a[HEADER..],
            b[HEADER..],
            "same body and number, other session"
        );
        assert_ne!(ta, tb);
        // sessions taking turns (a restarted sender's old and new datagrams) both open
        for (d, s, t) in [(&a, 1, ta), (&b, 2, tb), (&a, 1, ta)] {
            let mut d = d.clone();
            assert!(key.open(s, 0, &mut d, HEADER, &t));
            assert_eq!(d[HEADER..], body[..]);
        }
    }

    #[test]
    fn the_national_suite_tags_with_hmac_sm3_and_leaves_the_body_in_clear() {
        let key = LinkKey::for_suite(Suite::Gm, &KEY);
        assert_eq!(key.suite(), Suite::Gm);
        let body = b"notice".to_vec();
        let mut d = datagram(1, 1, &body);
        let plain = d.clone();
        let tag = key.seal(1, 1, &mut d, HEADER).unwrap();
        assert_eq!(d, plain);
        assert_eq!(
            tag[..],
            crate::keys::suite::hmac(Suite::Gm, &KEY, &plain)[..TAG_LEN]
        );
        assert!(key.open(1, 1, &mut d, HEADER, &tag));
        d[HEADER] ^= 1;
        assert!(!key.open(1, 1, &mut d, HEADER, &tag));
        // the default suite's key does not open it
        let mut d = plain.clone();
        assert!(!LinkKey::new(&KEY).open(1, 1, &mut d, HEADER, &tag));
    }
}
