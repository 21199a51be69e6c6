//! `isogate keygen`: makes a node's signing key pair and TLS certificate and key, and
//! prints where it wrote them and their fingerprints, in the form compared by telephone
//! with the peer's operator before each pins the other's files.
//!
//! ```text
//!  keygen NAME ─► keys::keygen ─► 4 files ─► paths
//!                                        └─► sha256:… fingerprints, AB12 CD34 … groups,
//!                                            the public key's 64 hex digits (as in config)
//! ```

use crate::keys::{self, KeyError, KeyFiles, VerifyKey};
use std::path::Path;
use std::process::ExitCode;

/// Makes the key files of node `name` in the directory `out` and prints their paths and
/// fingerprints.
///
/// # Errors
/// The name is not usable, a file already exists, or a file cannot be written or read back.
pub fn command(name: &str, out: &Path) -> Result<ExitCode, KeyError> {
    let files = keys::keygen(name, out)?;
    println!("signing key:     {}", files.signing_key.display());
    println!("signing public:  {}", files.signing_pub.display());
    println!("tls certificate: {}", files.tls_cert.display());
    println!("tls key:         {}", files.tls_key.display());
    println!();
    for line in fingerprint_lines(&files)? {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The fingerprints of a node's certificate and signing key, as `keygen` prints them:
/// the `sha256:` form that logs and `check` show, the same digits in groups of four to read
/// out over the telephone, and the public key's 64 hex digits as its `.sign.pub` file and
/// the configuration hold it.
///
/// # Errors
/// A file cannot be read or does not hold a certificate or public key.
pub fn fingerprint_lines(files: &KeyFiles) -> Result<Vec<String>, KeyError> {
    let cert = keys::cert_fingerprint(&keys::load_cert(&files.tls_cert)?);
    let public = VerifyKey::load(&files.signing_pub)?;
    let sign = public.fingerprint();
    Ok(vec![
        format!("tls certificate fingerprint: {cert}"),
        format!("  by telephone:              {}", keys::telephone(&cert)),
        format!("signing key fingerprint:     {sign}"),
        format!("  by telephone:              {}", keys::telephone(&sign)),
        format!("signing public key:          {}", public.to_hex()),
    ])
}
