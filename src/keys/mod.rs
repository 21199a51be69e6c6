//! Keys of a node: the Ed25519 key that signs manifests, the TLS certificate and key of the
//! QUIC link, and `keygen`, which makes them. Private key files are written mode 0600.
//!
//! Fingerprints (`sha256:` and the first 16 bytes of the SHA-256 of the public key or of the
//! certificate, in hex) name keys in logs and audit records without repeating them whole.
//!
//! ```text
//!  keygen ─► NAME.sign.key (0600) NAME.sign.pub   NAME.tls.key (0600) NAME.tls.crt
//!  SigningKey ─sign─► manifests, checkpoints      tls: pinned mutual TLS for quinn
//!  VerifyKey  ─verify─► the peer's manifests      diode: the pair's datagram key
//! ```

pub mod diode;
pub mod tls;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
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

/// The Ed25519 key a node signs its manifests with.
pub struct SigningKey {
    pair: ring::signature::Ed25519KeyPair,
}

/// A pinned Ed25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyKey([u8; 32]);

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyKey({})", self.to_hex())
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
    /// A fresh random key.
    pub fn generate() -> Result<SigningKey, KeyError> {
        let rng = ring::rand::SystemRandom::new();
        let doc = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        Self::from_pkcs8(doc.as_ref()).map_err(KeyError::Generate)
    }

    fn from_pkcs8(der: &[u8]) -> Result<SigningKey, String> {
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(der)
            .or_else(|_| ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der))
            .map_err(|e| format!("not an Ed25519 PKCS#8 key: {e}"))?;
        Ok(SigningKey { pair })
    }

    /// A key from a fixed 32-byte seed: deterministic, for tests and fuzzing only.
    pub fn from_seed(seed: &[u8; 32]) -> Result<SigningKey, KeyError> {
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        Ok(SigningKey { pair })
    }

    /// Reads a PKCS#8 PEM file.
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

    /// Signs a message.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.pair.sign(msg).as_ref().to_vec()
    }

    /// The public half.
    pub fn verify_key(&self) -> VerifyKey {
        let mut b = [0u8; 32];
        b.copy_from_slice(ring::signature::KeyPair::public_key(&self.pair).as_ref());
        VerifyKey(b)
    }
}

impl VerifyKey {
    /// Verifies an Ed25519 signature.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &self.0)
            .verify(msg, sig)
            .is_ok()
    }

    /// Reads a public key file: 64 hex digits.
    pub fn load(path: &Path) -> Result<VerifyKey, KeyError> {
        let text = fs::read_to_string(path).map_err(|error| KeyError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(text.trim()).ok_or_else(|| KeyError::Format {
            path: path.to_path_buf(),
            what: "expected 64 hex digits of an Ed25519 public key".into(),
        })
    }

    /// Parses 64 hex digits.
    pub fn parse(s: &str) -> Option<VerifyKey> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b).ok()?;
        Some(VerifyKey(b))
    }

    /// The raw 32 bytes of the key.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The key as 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The key's fingerprint: `sha256:` and 32 hex digits.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&self.0)
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
    /// NAME.sign.key: Ed25519 PKCS#8 PEM, mode 0600.
    pub signing_key: PathBuf,
    /// NAME.sign.pub: the public key as 64 hex digits.
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
    let sign_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    let sign = SigningKey::from_pkcs8(&sign_pair.serialize_der()).map_err(KeyError::Generate)?;
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
    write_new(
        &files.signing_key,
        sign_pair.serialize_pem().as_bytes(),
        0o600,
    )
    .map_err(io(&files.signing_key))?;
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
}
