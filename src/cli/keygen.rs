//! `isogate keygen`: makes a node's signing key pair and TLS certificate and key, and
//! prints where it wrote them.

use crate::keys::{self, KeyError};
use std::path::Path;
use std::process::ExitCode;

/// Makes the key files of node `name` in the directory `out` and prints their paths.
///
/// # Errors
/// The name is not usable, a file already exists, or a file cannot be written.
pub fn command(name: &str, out: &Path) -> Result<ExitCode, KeyError> {
    let files = keys::keygen(name, out)?;
    println!("signing key:     {}", files.signing_key.display());
    println!("signing public:  {}", files.signing_pub.display());
    println!("tls certificate: {}", files.tls_cert.display());
    println!("tls key:         {}", files.tls_key.display());
    Ok(ExitCode::SUCCESS)
}
