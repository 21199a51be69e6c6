//! The two cryptographic suites a pair of nodes may run, and their primitives: the hash, the
//! keyed tag and the authenticated cipher of each (the signatures are [`super::SigningKey`]'s).
//!
//! ```text
//!  suite     signatures            hashes               tags          data at rest
//!  default   Ed25519 (RFC 8032)    SHA-256 (FIPS 180-4)  HMAC-SHA256   AES-256-GCM (SP 800-38D)
//!  gm        SM2 (GB/T 32918.2)    SM3 (GB/T 32905)      HMAC-SM3      SM4-GCM (GB/T 32907,
//!            user id 1234567812345678 (GM/T 0009)                      RFC 8998)
//! ```
//!
//! Every primitive comes from a maintained library, none is written here: `ring` for the
//! default suite, the RustCrypto crates (`sm2`, `sm3`, `sm4`, `hmac`, and `aes-gcm`'s generic
//! GCM over SM4) for the national one. The QUIC transport is TLS 1.3 under both suites (the
//! TLS stack has no TLCP, GB/T 38636).
//!
//! Every output is 32 bytes (hashes, tags) or a 12-byte nonce and a 16-byte tag (ciphers) in
//! both suites, so what records them keeps one shape.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInOut, KeyInit};
use hmac::{Hmac, Mac};
use sm3::{Digest, Sm3};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// A suite of algorithms: what signs, hashes, tags and encrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Suite {
    /// Ed25519, SHA-256, HMAC-SHA256, AES-256-GCM.
    #[default]
    Default,
    /// The national (国密) suite: SM2, SM3, HMAC-SM3, SM4-GCM.
    Gm,
}

/// Bytes of a hash or a tag in either suite.
pub const DIGEST_LEN: usize = 32;
/// Bytes of a cipher's nonce in either suite (GCM's 96-bit IV).
pub const NONCE_LEN: usize = 12;
/// Bytes of a cipher's authentication tag in either suite (GCM's full 128-bit tag).
pub const TAG_LEN: usize = 16;

/// The GB/T 32918.2 user id (distinguishing identifier) every SM2 signature and
/// verification here uses: GM/T 0009's default, `1234567812345678`.
pub const SM2_USER_ID: &str = "1234567812345678";

impl Suite {
    /// Both suites, the default first.
    pub const ALL: [Suite; 2] = [Suite::Default, Suite::Gm];

    /// The name a configuration gives: `default` or `gm`.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Default => "default",
            Suite::Gm => "gm",
        }
    }

    /// The signature algorithm's name.
    pub fn signature(self) -> &'static str {
        match self {
            Suite::Default => "Ed25519",
            Suite::Gm => "SM2",
        }
    }

    /// The hash's name.
    pub fn hash(self) -> &'static str {
        match self {
            Suite::Default => "SHA-256",
            Suite::Gm => "SM3",
        }
    }

    /// The name of the audit record's field that holds a content hash of this suite, and of
    /// the `audit query` option that finds it: `sha256` or `sm3`.
    pub fn hash_field(self) -> &'static str {
        match self {
            Suite::Default => "sha256",
            Suite::Gm => "sm3",
        }
    }

    /// The name of what protects each diode datagram (`core::diode::tag`): AES-256-GCM
    /// (NIST SP 800-38D) under a per-session key, which encrypts the body too, or HMAC-SM3
    /// (GB/T 15852.2).
    pub fn mac(self) -> &'static str {
        match self {
            Suite::Default => "AES-256-GCM",
            Suite::Gm => "HMAC-SM3",
        }
    }

    /// The cipher's name.
    pub fn cipher(self) -> &'static str {
        match self {
            Suite::Default => "AES-256-GCM",
            Suite::Gm => "SM4-GCM",
        }
    }

    /// What `isogate keygen` needs to make keys of this suite: nothing for the default
    /// one, ` --suite gm` for the national one.
    pub fn keygen_flag(self) -> &'static str {
        match self {
            Suite::Default => "",
            Suite::Gm => " --suite gm",
        }
    }

    /// Bytes of the cipher's key: 32 (AES-256) or 16 (SM4).
    pub fn cipher_key_len(self) -> usize {
        match self {
            Suite::Default => 32,
            Suite::Gm => 16,
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A suite name that is neither `default` nor `gm`.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "unknown suite {0:?}: use \"default\" (Ed25519, SHA-256, AES-256-GCM) or \"gm\" (SM2, SM3, SM4-GCM)"
)]
pub struct UnknownSuite(pub String);

impl FromStr for Suite {
    type Err = UnknownSuite;

    fn from_str(s: &str) -> Result<Suite, UnknownSuite> {
        Suite::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| UnknownSuite(s.to_string()))
    }
}

/// A running hash of a suite, fed in pieces: SHA-256 or SM3, 32 bytes either way.
#[derive(Clone)]
pub struct Hasher(HasherState);

#[derive(Clone)]
enum HasherState {
    Sha256(ring::digest::Context),
    Sm3(Sm3),
}

impl Hasher {
    /// A fresh hash of `suite`.
    pub fn new(suite: Suite) -> Hasher {
        Hasher(match suite {
            Suite::Default => {
                HasherState::Sha256(ring::digest::Context::new(&ring::digest::SHA256))
            }
            Suite::Gm => HasherState::Sm3(Sm3::new()),
        })
    }

    /// The suite whose hash this is.
    pub fn suite(&self) -> Suite {
        match self.0 {
            HasherState::Sha256(_) => Suite::Default,
            HasherState::Sm3(_) => Suite::Gm,
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.0 {
            HasherState::Sha256(c) => c.update(bytes),
            HasherState::Sm3(h) => Digest::update(h, bytes),
        }
    }

    /// The 32-byte digest of everything added.
    pub fn finish(self) -> [u8; DIGEST_LEN] {
        match self.0 {
            HasherState::Sha256(c) => {
                let mut out = [0u8; DIGEST_LEN];
                out.copy_from_slice(c.finish().as_ref());
                out
            }
            HasherState::Sm3(h) => h.finalize().into(),
        }
    }
}

/// The 32-byte hash of `bytes` under `suite`.
pub fn digest(suite: Suite, bytes: &[u8]) -> [u8; DIGEST_LEN] {
    let mut h = Hasher::new(suite);
    h.update(bytes);
    h.finish()
}

/// The suite's keyed tag (RFC 2104 HMAC over SHA-256 or SM3) of `msg` under `key`.
pub fn hmac(suite: Suite, key: &[u8], msg: &[u8]) -> [u8; DIGEST_LEN] {
    match suite {
        Suite::Default => {
            let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
            let mut out = [0u8; DIGEST_LEN];
            out.copy_from_slice(ring::hmac::sign(&k, msg).as_ref());
            out
        }
        Suite::Gm => sm3_mac(key, msg).finalize().into_bytes().into(),
    }
}

/// A key prepared for the suite's HMAC (RFC 2104 over SHA-256 or SM3), to tag many
/// messages: the key schedule is done once, not per message.
#[derive(Clone)]
pub struct MacKey(MacState);

#[derive(Clone)]
enum MacState {
    Sha256(ring::hmac::Key),
    Sm3(Hmac<Sm3>),
}

impl MacKey {
    /// Prepares `key` (any length) for `suite`'s HMAC.
    pub fn new(suite: Suite, key: &[u8]) -> MacKey {
        MacKey(match suite {
            Suite::Default => MacState::Sha256(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key)),
            Suite::Gm => MacState::Sm3(sm3_mac(key, b"")),
        })
    }

    /// The suite whose HMAC this is.
    pub fn suite(&self) -> Suite {
        match self.0 {
            MacState::Sha256(_) => Suite::Default,
            MacState::Sm3(_) => Suite::Gm,
        }
    }

    /// The 32-byte tag of `msg`.
    pub fn tag(&self, msg: &[u8]) -> [u8; DIGEST_LEN] {
        match &self.0 {
            MacState::Sha256(k) => {
                let mut out = [0u8; DIGEST_LEN];
                out.copy_from_slice(ring::hmac::sign(k, msg).as_ref());
                out
            }
            MacState::Sm3(keyed) => {
                let mut m = keyed.clone();
                m.update(msg);
                m.finalize().into_bytes().into()
            }
        }
    }
}

/// Whether `tag` is the suite's HMAC of `msg` under `key`, compared in constant time.
pub fn hmac_verify(suite: Suite, key: &[u8], msg: &[u8], tag: &[u8]) -> bool {
    match suite {
        Suite::Default => {
            let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
            ring::hmac::verify(&k, msg, tag).is_ok()
        }
        Suite::Gm => sm3_mac(key, msg).verify_slice(tag).is_ok(),
    }
}

fn sm3_mac(key: &[u8], msg: &[u8]) -> Hmac<Sm3> {
    // HMAC takes a key of any length (RFC 2104 § 2: a long one is hashed first)
    let mut m = match <Hmac<Sm3> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    m.update(msg);
    m
}

/// SM4 in GCM with a 96-bit nonce and the full tag (RFC 8998 § 3.1).
type Sm4Gcm = aes_gcm::AesGcm<sm4::Sm4, U12>;

/// Why a cipher could not be made or a sealed piece could not be opened.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CipherError {
    /// The key has the wrong length for the suite's cipher.
    #[error("a {cipher} key is {want} bytes, not {got}")]
    KeyLength {
        /// The cipher.
        cipher: &'static str,
        /// The length it takes.
        want: usize,
        /// The length given.
        got: usize,
    },
    /// The tag does not match: the piece, its nonce or its associated data changed, or
    /// another key sealed it.
    #[error("{0}: the authentication tag does not match (changed, cut, or another key)")]
    Tampered(&'static str),
    /// The piece is too long for the cipher (GCM: 2^36 - 32 bytes).
    #[error("{0}: the piece is too long")]
    TooLong(&'static str),
}

/// The authenticated cipher of a suite under one key: AES-256-GCM or SM4-GCM, each piece
/// sealed in place with a 12-byte nonce (never used twice with one key: the caller's
/// duty) and associated data, its 16-byte tag kept apart.
pub struct DataCipher {
    suite: Suite,
    key: CipherKey,
}

/// Boxed: a cipher is made once per key and kept, so the one indirection costs nothing.
enum CipherKey {
    Aes(Box<ring::aead::LessSafeKey>),
    Sm4(Box<Sm4Gcm>),
}

impl fmt::Debug for DataCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataCipher({})", self.suite.cipher())
    }
}

impl DataCipher {
    /// The suite's cipher under `key` ([`Suite::cipher_key_len`] bytes).
    ///
    /// # Errors
    /// [`CipherError::KeyLength`] when the key has another length.
    pub fn new(suite: Suite, key: &[u8]) -> Result<DataCipher, CipherError> {
        let wrong = || CipherError::KeyLength {
            cipher: suite.cipher(),
            want: suite.cipher_key_len(),
            got: key.len(),
        };
        if key.len() != suite.cipher_key_len() {
            return Err(wrong());
        }
        let key = match suite {
            Suite::Default => CipherKey::Aes(Box::new(ring::aead::LessSafeKey::new(
                ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, key).map_err(|_| wrong())?,
            ))),
            Suite::Gm => CipherKey::Sm4(Box::new(
                <Sm4Gcm as KeyInit>::new_from_slice(key).map_err(|_| wrong())?,
            )),
        };
        Ok(DataCipher { suite, key })
    }

    /// The suite whose cipher this is.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Encrypts `piece` in place and returns its tag.
    ///
    /// # Errors
    /// [`CipherError::TooLong`] past GCM's limit.
    pub fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        piece: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CipherError> {
        let too_long = || CipherError::TooLong(self.suite.cipher());
        let mut out = [0u8; TAG_LEN];
        match &self.key {
            CipherKey::Aes(k) => {
                let nonce = ring::aead::Nonce::assume_unique_for_key(*nonce);
                let tag = k
                    .seal_in_place_separate_tag(nonce, ring::aead::Aad::from(aad), piece)
                    .map_err(|_| too_long())?;
                out.copy_from_slice(tag.as_ref());
            }
            CipherKey::Sm4(k) => {
                let tag = k
                    .encrypt_inout_detached(nonce.into(), aad, piece.into())
                    .map_err(|_| too_long())?;
                out.copy_from_slice(&tag);
            }
        }
        Ok(out)
    }

    /// Checks `tag` and decrypts `piece` in place; on a mismatch `piece` is left as
    /// garbage and must not be used.
    ///
    /// # Errors
    /// [`CipherError::Tampered`] when the tag does not match.
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        piece: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), CipherError> {
        let tampered = || CipherError::Tampered(self.suite.cipher());
        match &self.key {
            CipherKey::Aes(k) => {
                let nonce = ring::aead::Nonce::assume_unique_for_key(*nonce);
                k.open_in_place_separate_tag(
                    nonce,
                    ring::aead::Aad::from(aad),
                    ring::aead::Tag::from(*tag),
                    piece,
                    0..,
                )
                .map_err(|_| tampered())?;
            }
            CipherKey::Sm4(k) => {
                k.decrypt_inout_detached(nonce.into(), aad, piece.into(), tag.into())
                    .map_err(|_| tampered())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.split_whitespace().collect::<String>()).unwrap()
    }

    #[test]
    fn names_read_back() {
        for s in Suite::ALL {
            assert_eq!(s.name().parse::<Suite>(), Ok(s));
        }
        let e = "sm".parse::<Suite>().unwrap_err();
        assert!(e.to_string().contains("\"gm\""), "{e}");
        assert_eq!(Suite::default(), Suite::Default);
    }

    #[test]
    fn sm3_answers_gb_t_32905_appendix_a() {
        // example 1: "abc"
        assert_eq!(
            digest(Suite::Gm, b"abc").to_vec(),
            unhex("66c7f0f4 62eeedd9 d1f2d46b dc10e4e2 4167c487 5cf2f7a2 297da02b 8f4ba8e0")
        );
        // example 2: "abcd" 16 times (512 bits), fed in uneven pieces
        let msg = b"abcd".repeat(16);
        let mut h = Hasher::new(Suite::Gm);
        h.update(&msg[..5]);
        h.update(&msg[5..]);
        assert_eq!(h.suite(), Suite::Gm);
        assert_eq!(
            h.finish().to_vec(),
            unhex("debe9ff9 2275b8a1 38604889 c18e5a4d 6fdb70e5 387e5765 293dcba3 9c0c5732")
        );
    }

    #[test]
    fn sha256_answers_fips_180_4() {
        assert_eq!(
            digest(Suite::Default, b"abc").to_vec(),
            unhex("ba7816bf 8f01cfea 414140de 5dae2223 b00361a3 96177a9c b410ff61 f20015ad")
        );
    }

    #[test]
    fn sm4_answers_gb_t_32907_appendix_a() {
        use aes_gcm::aead::array::Array;
        use sm4::cipher::{BlockCipherEncrypt, KeyInit};
        // example 1: key = plaintext = 0123456789abcdeffedcba9876543210
        let key = unhex("0123456789abcdeffedcba9876543210");
        let c = sm4::Sm4::new_from_slice(&key).unwrap();
        let mut block = Array::try_from(&key[..]).unwrap();
        c.encrypt_block(&mut block);
        assert_eq!(block.to_vec(), unhex("681edf34d206965e86b3e94f536e4246"));
        // example 2: the same, encrypted 1,000,000 times
        let mut block = Array::try_from(&key[..]).unwrap();
        for _ in 0..1_000_000 {
            c.encrypt_block(&mut block);
        }
        assert_eq!(block.to_vec(), unhex("595298c7c6fd271f0402f804c33d3f66"));
    }

    #[test]
    fn sm4_gcm_answers_rfc_8998_appendix_a_1() {
        let key = unhex("0123456789ABCDEFFEDCBA9876543210");
        let nonce: [u8; NONCE_LEN] = unhex("00001234567800000000ABCD").try_into().unwrap();
        let aad = unhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2");
        let plain = unhex(
            "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB CCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD
             EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFF EEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA",
        );
        let c = DataCipher::new(Suite::Gm, &key).unwrap();
        let mut piece = plain.clone();
        let tag = c.seal(&nonce, &aad, &mut piece).unwrap();
        assert_eq!(
            piece,
            unhex(
                "17F399F08C67D5EE19D0DC9969C4BB7D 5FD46FD3756489069157B282BB200735
                 D82710CA5C22F0CCFA7CBF93D496AC15 A56834CBCF98C397B4024A2691233B8D"
            )
        );
        assert_eq!(tag.to_vec(), unhex("83DE3541E4C2B58177E065A9BF7B62EC"));
        c.open(&nonce, &aad, &mut piece, &tag).unwrap();
        assert_eq!(piece, plain);
    }

    #[test]
    fn aes_256_gcm_answers_the_gcm_spec_test_case_16() {
        // McGrew & Viega, "The Galois/Counter Mode of Operation", test case 16
        let key = unhex("feffe9928665731c6d6a8f9467308308 feffe9928665731c6d6a8f9467308308");
        let nonce: [u8; NONCE_LEN] = unhex("cafebabefacedbaddecaf888").try_into().unwrap();
        let aad = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let plain = unhex(
            "d9313225f88406e5a55909c5aff5269a 86a7a9531534f7da2e4c303d8a318a72
             1c3c0c95956809532fcf0e2449a6b525 b16aedf5aa0de657ba637b39",
        );
        let c = DataCipher::new(Suite::Default, &key).unwrap();
        let mut piece = plain.clone();
        let tag = c.seal(&nonce, &aad, &mut piece).unwrap();
        assert_eq!(
            piece,
            unhex(
                "522dc1f099567d07f47f37a32a84427d 643a8cdcbfe5c0c97598a2bd2555d1aa
                 8cb08e48590dbb3da7b08b1056828838 c5f61e6393ba7a0abcc9f662"
            )
        );
        assert_eq!(tag.to_vec(), unhex("76fc6ece0f4e1768cddf8853bb2d551b"));
    }

    #[test]
    fn a_changed_piece_nonce_aad_or_key_is_tampered_in_both_suites() {
        for suite in Suite::ALL {
            let key = vec![7u8; suite.cipher_key_len()];
            let c = DataCipher::new(suite, &key).unwrap();
            let nonce = [1u8; NONCE_LEN];
            let mut piece = b"a known marker".to_vec();
            let tag = c.seal(&nonce, b"chunk 0", &mut piece).unwrap();
            assert_ne!(&piece[..], b"a known marker");
            let mut flipped = piece.clone();
            flipped[3] ^= 1;
            assert_eq!(
                c.open(&nonce, b"chunk 0", &mut flipped, &tag),
                Err(CipherError::Tampered(suite.cipher()))
            );
            let mut moved = piece.clone();
            assert!(c.open(&nonce, b"chunk 1", &mut moved, &tag).is_err());
            let mut renonced = piece.clone();
            assert!(
                c.open(&[2u8; NONCE_LEN], b"chunk 0", &mut renonced, &tag)
                    .is_err()
            );
            let other = DataCipher::new(suite, &vec![8u8; suite.cipher_key_len()]).unwrap();
            let mut rekeyed = piece.clone();
            assert!(other.open(&nonce, b"chunk 0", &mut rekeyed, &tag).is_err());
            c.open(&nonce, b"chunk 0", &mut piece, &tag).unwrap();
            assert_eq!(&piece[..], b"a known marker");
            let e = DataCipher::new(suite, &[0u8; 24]).unwrap_err();
            assert!(e.to_string().contains("not 24"), "{e}");
        }
    }

    #[test]
    fn hmac_of_both_suites_verifies_only_its_own_tag() {
        // RFC 4231 test case 2 for HMAC-SHA256
        assert_eq!(
            hmac(Suite::Default, b"Jefe", b"what do ya want for nothing?").to_vec(),
            unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        for suite in Suite::ALL {
            let tag = hmac(suite, b"key", b"datagram");
            assert!(hmac_verify(suite, b"key", b"datagram", &tag));
            assert!(!hmac_verify(suite, b"key", b"datagran", &tag));
            assert!(!hmac_verify(suite, b"kez", b"datagram", &tag));
            assert!(!hmac_verify(suite, b"key", b"datagram", &tag[..31]));
        }
        assert_ne!(
            hmac(Suite::Gm, b"k", b"m"),
            hmac(Suite::Default, b"k", b"m")
        );
        // HMAC-SM3 as OpenSSL 3.0 computes it:
        // printf abc | openssl mac -digest SM3 -macopt hexkey:0102 HMAC
        assert_eq!(
            hmac(Suite::Gm, &[1, 2], b"abc").to_vec(),
            unhex("1F461DB7F335C6703B5D0B46348DE1E5318BE31C4DBF4346312F588D37205D80")
        );
    }

    #[test]
    fn a_prepared_mac_key_tags_like_the_one_shot_hmac_every_time() {
        // a long key (hashed first, RFC 2104 § 2) and a short one
        for key in [&[7u8; 100][..], b"key"] {
            for suite in Suite::ALL {
                let prepared = MacKey::new(suite, key);
                assert_eq!(prepared.suite(), suite);
                for msg in [&b""[..], b"datagram", &[9u8; 1500]] {
                    // twice: tagging leaves the prepared key as it was
                    assert_eq!(prepared.tag(msg), hmac(suite, key, msg));
                    assert_eq!(prepared.tag(msg), hmac(suite, key, msg));
                }
            }
        }
    }
}
