//! Keys of a node: the key that signs manifests (Ed25519, or SM2 for the national suite:
//! [`suite`]), the TLS certificate and key of the QUIC link, and `keygen`, which makes
//! them. Private key files are written mode 0600.
//!
//! Fingerprints (`sha256:` and the first 16 bytes of the SHA-256 of the public key or of the
//! certificate, in hex) name keys in logs and audit records without repeating them whole.
//!
//! ```text
//!  keygen ─► NAME.sign.key (0600) NAME.sign.pub   NAME.tls.key (0600) NAME.tls.crt
//!  SigningKey ─sign─► manifests, checkpoints      tls: pinned mutual TLS for quinn
//!  VerifyKey  ─verify─► the peer's manifests      diode: the pair's datagram key
//! ```

pub mod at_rest;
pub mod diode;
pub mod suite;
pub mod tls;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use suite::Suite;
use thiserror::Error;

/// Why a key could not be made, read or written.
#[derive(Debug, Error)]
pub enum KeyError {
    /// A key file could not be read or written.
    #[error("key file {path}: {error}{}", crate::problem::hint(error))]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A key file does not hold what it should.
    #[error("{path}: {what}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// Key generation failed.
    #[error("key generation failed: {0}")]
    Generate(String),
    /// The node name cannot name key files.
    #[error("invalid node name {0:?}: use letters, digits, '-' and '_'")]
    Name(String),
    /// The approver name cannot name an approver (`core::approval::valid_name`).
    #[error(
        "invalid approver name {0:?}: use 1 to 64 bytes of letters and digits of any script (张伟, zhang.wei), '-', '_' and '.', not beginning with '.'"
    )]
    ApproverName(String),
}

/// The key a node signs its manifests with: Ed25519 (the default suite) or SM2 (the `gm`
/// suite, GB/T 32918.2 with the user id [`suite::SM2_USER_ID`]). Either signs with a
/// 64-byte signature (Ed25519's R‖S, SM2's r‖s).
pub struct SigningKey(Signer);

enum Signer {
    Ed25519(ring::signature::Ed25519KeyPair),
    Sm2(Box<sm2::dsa::SigningKey>),
}

/// A pinned public key: 32 Ed25519 bytes, or SM2's 65-byte uncompressed point (SEC 1:
/// `04`, x, y).
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyKey(Public);

#[derive(Clone, PartialEq, Eq)]
enum Public {
    Ed25519([u8; 32]),
    Sm2([u8; SM2_PUBLIC_LEN]),
}

/// Bytes of an SM2 public key as written here: the uncompressed point (SEC 1 § 2.3.3).
pub const SM2_PUBLIC_LEN: usize = 65;

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VerifyKey({} {})",
            self.suite().signature(),
            self.to_hex()
        )
    }
}

/// `sha256:` and the first 16 bytes of the SHA-256 of `bytes`, in hex.
fn fingerprint_of(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    format!("sha256:{}", hex::encode(&d.as_ref()[..16]))
}

/// The fingerprint of a certificate (of its DER bytes), for logs and audit records.
pub fn cert_fingerprint(cert: &CertificateDer<'_>) -> String {
    fingerprint_of(cert.as_ref())
}

/// A fingerprint (`sha256:` and hex digits, as [`cert_fingerprint`] and
/// [`VerifyKey::fingerprint`] give) in the form read out over the telephone: the hex digits
/// upper-case in groups of four, `AB12 CD34 …` (8 groups for a 16-byte fingerprint).
/// Anything without the `sha256:` prefix is grouped whole.
pub fn telephone(fingerprint: &str) -> String {
    let digits = fingerprint.strip_prefix("sha256:").unwrap_or(fingerprint);
    digits
        .to_ascii_uppercase()
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

impl SigningKey {
    /// A fresh random Ed25519 key (the default suite).
    pub fn generate() -> Result<SigningKey, KeyError> {
        Self::generate_for(Suite::Default)
    }

    /// A fresh random key of `suite`'s signature algorithm, from the system's random
    /// source.
    pub fn generate_for(suite: Suite) -> Result<SigningKey, KeyError> {
        let rng = ring::rand::SystemRandom::new();
        match suite {
            Suite::Default => {
                let doc = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
                    .map_err(|e| KeyError::Generate(e.to_string()))?;
                Self::from_pkcs8(doc.as_ref()).map_err(KeyError::Generate)
            }
            Suite::Gm => Ok(SigningKey(Signer::Sm2(Box::new(sm2_generate(&rng)?)))),
        }
    }

    /// A key from PKCS#8 DER: Ed25519 (RFC 8410) or SM2 (an EC key on the SM2 curve,
    /// OID 1.2.156.10197.1.301, as OpenSSL writes it).
    fn from_pkcs8(der: &[u8]) -> Result<SigningKey, String> {
        if let Ok(pair) = ring::signature::Ed25519KeyPair::from_pkcs8(der)
            .or_else(|_| ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der))
        {
            return Ok(SigningKey(Signer::Ed25519(pair)));
        }
        use sm2::pkcs8::DecodePrivateKey;
        let secret = sm2::SecretKey::from_pkcs8_der(der)
            .map_err(|_| "neither an Ed25519 nor an SM2 PKCS#8 key".to_string())?;
        let key = sm2::dsa::SigningKey::new(suite::SM2_USER_ID, &secret)
            .map_err(|e| format!("not a usable SM2 key: {e}"))?;
        Ok(SigningKey(Signer::Sm2(Box::new(key))))
    }

    /// A key from a fixed 32-byte seed: deterministic, for tests and fuzzing only.
    pub fn from_seed(seed: &[u8; 32]) -> Result<SigningKey, KeyError> {
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        Ok(SigningKey(Signer::Ed25519(pair)))
    }

    /// Reads a PKCS#8 PEM file (Ed25519 or SM2).
    pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
        let key = PrivateKeyDer::from_pem_file(path).map_err(|e| KeyError::Format {
            path: path.to_path_buf(),
            what: format!("no PEM private key: {e}"),
        })?;
        Self::from_pkcs8(key.secret_der()).map_err(|what| KeyError::Format {
            path: path.to_path_buf(),
            what,
        })
    }

    /// The suite whose signature algorithm this key is.
    pub fn suite(&self) -> Suite {
        match self.0 {
            Signer::Ed25519(_) => Suite::Default,
            Signer::Sm2(_) => Suite::Gm,
        }
    }

    /// Signs a message: 64 bytes (Ed25519, RFC 8032; or SM2, GB/T 32918.2 § 6.1 over
    /// SM3(Z_A ‖ msg), r ‖ s, its nonce derived as RFC 6979 does).
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        match &self.0 {
            Signer::Ed25519(pair) => pair.sign(msg).as_ref().to_vec(),
            Signer::Sm2(key) => {
                use sm2::dsa::signature::Signer as _;
                let sig: sm2::dsa::Signature = key.sign(msg);
                sig.to_bytes().to_vec()
            }
        }
    }

    /// The public half.
    pub fn verify_key(&self) -> VerifyKey {
        match &self.0 {
            Signer::Ed25519(pair) => {
                let mut b = [0u8; 32];
                b.copy_from_slice(ring::signature::KeyPair::public_key(pair).as_ref());
                VerifyKey(Public::Ed25519(b))
            }
            Signer::Sm2(key) => {
                let mut b = [0u8; SM2_PUBLIC_LEN];
                b.copy_from_slice(&key.verifying_key().to_sec1_bytes());
                VerifyKey(Public::Sm2(b))
            }
        }
    }

    /// The key as PKCS#8 PEM (what [`SigningKey::load`] reads); only for SM2 keys, whose
    /// PEM the `sm2` crate writes (Ed25519 keys are written from `rcgen`'s).
    fn sm2_pem(&self) -> Result<String, KeyError> {
        use sm2::pkcs8::EncodePrivateKey;
        let Signer::Sm2(key) = &self.0 else {
            return Err(KeyError::Generate("not an SM2 key".into()));
        };
        let secret = sm2::SecretKey::from_bytes(&key.to_bytes())
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        secret
            .to_pkcs8_pem(sm2::pkcs8::LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|e| KeyError::Generate(e.to_string()))
    }
}

/// A fresh SM2 key: 32 random bytes, drawn again while they are not a valid secret
/// scalar (zero or not below the group order: a chance of about 2^-32 each).
fn sm2_generate(rng: &ring::rand::SystemRandom) -> Result<sm2::dsa::SigningKey, KeyError> {
    use ring::rand::SecureRandom;
    for _ in 0..64 {
        let mut bytes = [0u8; 32];
        rng.fill(&mut bytes)
            .map_err(|_| KeyError::Generate("the system's random source failed".into()))?;
        if let Ok(key) = sm2::dsa::SigningKey::from_slice(suite::SM2_USER_ID, &bytes) {
            return Ok(key);
        }
    }
    Err(KeyError::Generate(
        "no valid SM2 secret in 64 draws from the system's random source".into(),
    ))
}

impl VerifyKey {
    /// Verifies a signature made by this key's algorithm (Ed25519, or SM2 with the user
    /// id [`suite::SM2_USER_ID`]); anything else, or a signature of another algorithm,
    /// is false.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match &self.0 {
            Public::Ed25519(key) => {
                ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
                    .verify(msg, sig)
                    .is_ok()
            }
            Public::Sm2(point) => {
                use sm2::dsa::signature::Verifier as _;
                let Ok(key) = sm2::dsa::VerifyingKey::from_sec1_bytes(suite::SM2_USER_ID, point)
                else {
                    return false;
                };
                let Ok(sig) = sm2::dsa::Signature::from_slice(sig) else {
                    return false;
                };
                key.verify(msg, &sig).is_ok()
            }
        }
    }

    /// Reads a public key file: 64 hex digits (Ed25519) or 130 (SM2's uncompressed
    /// point, beginning `04`).
    pub fn load(path: &Path) -> Result<VerifyKey, KeyError> {
        let text = fs::read_to_string(path).map_err(|error| KeyError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(text.trim()).ok_or_else(|| KeyError::Format {
            path: path.to_path_buf(),
            what: "expected 64 hex digits of an Ed25519 public key or 130 of an SM2 one".into(),
        })
    }

    /// Parses 64 hex digits (Ed25519) or 130 (SM2: `04`, x, y; a point on the curve).
    pub fn parse(s: &str) -> Option<VerifyKey> {
        match s.len() {
            64 => {
                let mut b = [0u8; 32];
                hex::decode_to_slice(s, &mut b).ok()?;
                Some(VerifyKey(Public::Ed25519(b)))
            }
            130 => {
                let mut b = [0u8; SM2_PUBLIC_LEN];
                hex::decode_to_slice(s, &mut b).ok()?;
                if b[0] != 0x04 {
                    return None;
                }
                sm2::dsa::VerifyingKey::from_sec1_bytes(suite::SM2_USER_ID, &b).ok()?;
                Some(VerifyKey(Public::Sm2(b)))
            }
            _ => None,
        }
    }

    /// The suite whose signature algorithm this key is.
    pub fn suite(&self) -> Suite {
        match self.0 {
            Public::Ed25519(_) => Suite::Default,
            Public::Sm2(_) => Suite::Gm,
        }
    }

    /// The raw bytes of the key: 32 (Ed25519) or 65 (SM2).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Public::Ed25519(b) => b,
            Public::Sm2(b) => b,
        }
    }

    /// The key in hex: 64 digits (Ed25519) or 130 (SM2).
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }

    /// The key's fingerprint: `sha256:` and 32 hex digits.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(self.as_bytes())
    }
}

/// Reads the first certificate of a PEM file.
pub fn load_cert(path: &Path) -> Result<CertificateDer<'static>, KeyError> {
    CertificateDer::from_pem_file(path).map_err(|e| KeyError::Format {
        path: path.to_path_buf(),
        what: format!("no PEM certificate: {e}"),
    })
}

/// Reads a PEM private key for TLS.
pub fn load_tls_key(path: &Path) -> Result<PrivateKeyDer<'static>, KeyError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| KeyError::Format {
        path: path.to_path_buf(),
        what: format!("no PEM private key: {e}"),
    })
}

/// Reads a TLS certificate and its key and checks that they belong together.
pub fn load_tls_pair(
    cert_path: &Path,
    key_path: &Path,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), KeyError> {
    let cert = load_cert(cert_path)?;
    let key = load_tls_key(key_path)?;
    let format = |what: String| KeyError::Format {
        path: key_path.to_path_buf(),
        what,
    };
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format(format!("unsupported TLS key: {e}")))?;
    rustls::sign::CertifiedKey::new(vec![cert.clone()], signer)
        .keys_match()
        .map_err(|_| {
            format(format!(
                "is not the key of the certificate {}",
                cert_path.display()
            ))
        })?;
    Ok((cert, key))
}

/// The files `keygen` writes for a node called NAME.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    /// NAME.sign.key: Ed25519 (or SM2) PKCS#8 PEM, mode 0600.
    pub signing_key: PathBuf,
    /// NAME.sign.pub: the public key as 64 hex digits (SM2: 130).
    pub signing_pub: PathBuf,
    /// NAME.tls.crt: self-signed certificate, PEM.
    pub tls_cert: PathBuf,
    /// NAME.tls.key: the certificate's key, PEM, mode 0600.
    pub tls_key: PathBuf,
}

impl KeyFiles {
    /// Where keygen puts the files of `name` in `dir`.
    pub fn in_dir(dir: &Path, name: &str) -> KeyFiles {
        KeyFiles {
            signing_key: dir.join(format!("{name}.sign.key")),
            signing_pub: dir.join(format!("{name}.sign.pub")),
            tls_cert: dir.join(format!("{name}.tls.crt")),
            tls_key: dir.join(format!("{name}.tls.key")),
        }
    }
}

/// Makes a signing key pair and a TLS certificate and key for node `name` in `dir`.
/// Refuses to overwrite existing key files.
pub fn keygen(name: &str, dir: &Path) -> Result<KeyFiles, KeyError> {
    keygen_for(name, dir, Suite::Default)
}

/// A fresh signing key of `suite` (Ed25519 or SM2) and its PKCS#8 PEM, the form every key
/// file holds (OpenSSL reads both).
///
/// # Errors
/// [`KeyError::Generate`]: the system's random source or the encoding failed.
pub fn signing_pem(suite: Suite) -> Result<(SigningKey, String), KeyError> {
    match suite {
        Suite::Default => {
            let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
                .map_err(|e| KeyError::Generate(e.to_string()))?;
            let sign = SigningKey::from_pkcs8(&pair.serialize_der()).map_err(KeyError::Generate)?;
            Ok((sign, pair.serialize_pem()))
        }
        Suite::Gm => {
            let sign = SigningKey::generate_for(Suite::Gm)?;
            let pem = sign.sm2_pem()?;
            Ok((sign, pem))
        }
    }
}

/// [`keygen`] for `suite`: the signing key is Ed25519 (default) or SM2 (`gm`: PKCS#8 PEM
/// that OpenSSL reads, the public key as 130 hex digits). The TLS key is ECDSA P-256 under
/// both: the QUIC link is TLS 1.3, which has no SM2 (TLCP is another protocol).
pub fn keygen_for(name: &str, dir: &Path, suite: Suite) -> Result<KeyFiles, KeyError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(KeyError::Name(name.to_string()));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| KeyError::Io { path, error }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let files = KeyFiles::in_dir(dir, name);
    let (sign, sign_pem) = signing_pem(suite)?;
    let tls_pair = rcgen::KeyPair::generate().map_err(|e| KeyError::Generate(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()])
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    // named after the node, so that an operator reading it (openssl x509 -subject) knows
    // whose it is
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, name);
    params.distinguished_name = dn;
    let cert = params
        .self_signed(&tls_pair)
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    write_new(&files.signing_key, sign_pem.as_bytes(), 0o600).map_err(io(&files.signing_key))?;
    write_new(&files.tls_key, tls_pair.serialize_pem().as_bytes(), 0o600)
        .map_err(io(&files.tls_key))?;
    write_new(
        &files.signing_pub,
        format!("{}\n", sign.verify_key().to_hex()).as_bytes(),
        0o644,
    )
    .map_err(io(&files.signing_pub))?;
    write_new(&files.tls_cert, cert.pem().as_bytes(), 0o644).map_err(io(&files.tls_cert))?;
    Ok(files)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn telephone_groups_upper_case_hex_by_four() {
        assert_eq!(
            telephone("sha256:ab12cd34ef560789ab12cd34ef560789"),
            "AB12 CD34 EF56 0789 AB12 CD34 EF56 0789"
        );
        assert_eq!(telephone("abcdef"), "ABCD EF");
        assert_eq!(telephone(""), "");
    }

    #[test]
    fn keygen_writes_loadable_keys_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let files = keygen("court", dir.path()).unwrap();
        let sign = SigningKey::load(&files.signing_key).unwrap();
        let pubkey = VerifyKey::load(&files.signing_pub).unwrap();
        assert!(pubkey == sign.verify_key());
        let sig = sign.sign(b"hello");
        assert!(pubkey.verify(b"hello", &sig));
        assert!(!pubkey.verify(b"hellp", &sig));
        load_cert(&files.tls_cert).unwrap();
        load_tls_key(&files.tls_key).unwrap();
        for p in [&files.signing_key, &files.tls_key] {
            let mode = fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        let (cert, _) = load_tls_pair(&files.tls_cert, &files.tls_key).unwrap();
        assert!(cert_fingerprint(&cert).starts_with("sha256:"));
        assert_eq!(pubkey.fingerprint().len(), "sha256:".len() + 32);
        // subject CN = the node's name (OID 2.5.4.3, UTF8String "court"), not rcgen's default
        let der = cert.as_ref();
        let cn = [&[0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 5][..], b"court"].concat();
        assert!(der.windows(cn.len()).any(|w| w == cn.as_slice()));
        assert!(!der.windows(6).any(|w| w == b"rcgen "));
        let other = keygen("internet", dir.path()).unwrap();
        assert!(load_tls_pair(&files.tls_cert, &other.tls_key).is_err());
        assert!(keygen("court", dir.path()).is_err(), "never overwrites");
        assert!(keygen("../x", dir.path()).is_err());
    }

    #[test]
    fn sm2_keys_sign_verify_and_read_back_and_never_cross_algorithms() {
        let dir = tempfile::tempdir().unwrap();
        let files = keygen_for("court", dir.path(), Suite::Gm).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&files.signing_key), 0o600);
        let key = SigningKey::load(&files.signing_key).unwrap();
        assert_eq!(key.suite(), Suite::Gm);
        let public = VerifyKey::load(&files.signing_pub).unwrap();
        assert_eq!(public, key.verify_key());
        assert_eq!(public.suite(), Suite::Gm);
        assert_eq!(public.as_bytes().len(), SM2_PUBLIC_LEN);
        assert_eq!(VerifyKey::parse(&public.to_hex()), Some(public.clone()));
        let sig = key.sign(b"manifest");
        assert_eq!(sig.len(), 64);
        assert!(public.verify(b"manifest", &sig));
        assert!(!public.verify(b"manifesT", &sig));
        assert!(!public.verify(b"manifest", &sig[..63]));
        // an Ed25519 signature never verifies under an SM2 key, nor the other way
        let ed = SigningKey::generate().unwrap();
        assert_eq!(ed.suite(), Suite::Default);
        assert!(!public.verify(b"manifest", &ed.sign(b"manifest")));
        assert!(!ed.verify_key().verify(b"manifest", &sig));
        // a fresh key is another key
        let again = SigningKey::generate_for(Suite::Gm).unwrap();
        assert_ne!(again.verify_key(), public);
        assert!(!again.verify_key().verify(b"manifest", &sig));
    }

    #[test]
    fn public_keys_that_are_not_points_or_not_uncompressed_are_refused() {
        let public = SigningKey::generate_for(Suite::Gm).unwrap().verify_key();
        let hex = public.to_hex();
        // compressed form tag, or a point off the curve
        assert_eq!(VerifyKey::parse(&format!("02{}", &hex[2..])), None);
        let mut off = hex.clone().into_bytes();
        let last = off.len() - 1;
        off[last] = if off[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(VerifyKey::parse(std::str::from_utf8(&off).unwrap()), None);
        assert_eq!(VerifyKey::parse(&hex[..128]), None);
        assert_eq!(VerifyKey::parse(&"zz".repeat(65)), None);
        let ed = SigningKey::generate().unwrap().verify_key();
        assert_eq!(VerifyKey::parse(&ed.to_hex()), Some(ed.clone()));
        assert_eq!(ed.as_bytes().len(), 32);
        assert!(format!("{public:?}").starts_with("VerifyKey(SM2 04"));
    }
}
