//! `isogate keygen`: makes a node's signing key pair and TLS certificate and key, and
//! prints where it wrote them and their fingerprints, in the form compared by telephone
//! with the peer's operator before each pins the other's files.
//!
//! ```text
//!  keygen NAME [--suite gm] ─► keys::keygen_for ─► 4 files (SM2 signing key) ─► paths
//!                                        └─► sha256:… fingerprints, AB12 CD34 … groups,
//!                                            the public key's 64 hex digits (as in config)
//!  keygen --data-key FILE [--suite gm] ─► keys::at_rest::DataKeys::add_key (new, or first)
//!  keygen --approver NAME [--suite gm] ─► NAME.approver.key (PKCS#8 PEM, 0600), NAME.approver.pub
//!                        └─► fingerprint, the line to paste into [approval] approvers
//! ```

use crate::keys::suite::Suite;
use crate::keys::{self, KeyError, KeyFiles, SigningKey, VerifyKey};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Makes an approver's key pair of `suite` in `out` (Ed25519, or SM2 for a `gm` pair, whose
/// approvers sign with `isogate approve`: the console's WebCrypto has no SM2):
/// `NAME.approver.key` (PKCS#8 PEM, like a node's signing key, mode 0600) and
/// `NAME.approver.pub` (64 hex digits, or SM2's 130); neither is ever
/// overwritten. Prints the files, the key's fingerprint and the line to paste into a
/// channel policy's `[approval] approvers`. The private key stays with the approver: the
/// node never needs it.
///
/// # Errors
/// The name is not an approver name (`core::approval::valid_name`; no leading dot), a file
/// exists already, or a file cannot be written.
pub fn approver(name: &str, out: &Path, suite: Suite) -> Result<ExitCode, KeyError> {
    let (key_file, pub_file) = approver_files(name, out)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| KeyError::Io { path, error }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    for f in [&key_file, &pub_file] {
        if std::fs::symlink_metadata(f).is_ok() {
            return Err(KeyError::Io {
                path: f.clone(),
                error: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "exists already; never overwritten",
                ),
            });
        }
    }
    let (_, pem) = keys::signing_pem(suite)?;
    write_new(&key_file, pem.as_bytes(), 0o600).map_err(io(&key_file))?;
    let public = SigningKey::load(&key_file)?.verify_key();
    write_new(
        &pub_file,
        format!("{}\n", public.to_hex()).as_bytes(),
        0o644,
    )
    .map_err(io(&pub_file))?;
    let fp = public.fingerprint();
    println!(
        "approver key:    {} (keep it; mode 0600)",
        key_file.display()
    );
    println!("approver public: {}", pub_file.display());
    println!("fingerprint:     {fp}");
    println!("  by telephone:  {}", keys::telephone(&fp));
    println!();
    println!("in the channel policies of both nodes, under [approval] approvers:");
    println!(
        "  {{ name = {:?}, key = \"{}\", level = 1 }},",
        name,
        public.to_hex()
    );
    Ok(ExitCode::SUCCESS)
}

/// The two files of approver `name` in `out`.
fn approver_files(name: &str, out: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
    if !crate::core::approval::valid_name(name) || name.starts_with('.') {
        return Err(KeyError::ApproverName(name.to_string()));
    }
    Ok((
        out.join(format!("{name}.approver.key")),
        out.join(format!("{name}.approver.pub")),
    ))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Makes the data key file `file` with one key of `suite` (default: the default suite's), or
/// puts a new key first in it (a rotation; default: of the suite of the key it follows),
/// and prints what it did.
///
/// # Errors
/// The existing file is not a data key file the service user alone reads, or the file
/// cannot be written.
pub fn data_key(file: &Path, suite: Option<Suite>) -> Result<ExitCode, KeyError> {
    let existed = std::fs::symlink_metadata(file).is_ok();
    // a rotation keeps the cipher of the key it follows unless told otherwise: a gm node
    // refuses an AES key first in its file
    let suite = match suite {
        Some(s) => s,
        None if existed => keys::at_rest::DataKeys::load(file)?.suite(),
        None => Suite::Default,
    };
    let id = keys::at_rest::DataKeys::add_key(file, suite)?;
    println!("data key file:   {} (mode 0600)", file.display());
    println!("sealing key:     {id} ({})", suite.cipher());
    if existed {
        println!(
            "rotated:         the new key is first and seals once the node reads the file again (SIGHUP or a restart); the older keys stay, to open what they sealed"
        );
    } else {
        println!(
            "in the node's configuration: [node] data_key = \"{}\"; the file must be the service user's (chown)",
            file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Makes the key files of node `name` in the directory `out` and prints their paths and
/// fingerprints.
///
/// # Errors
/// The name is not usable, a file already exists, or a file cannot be written or read back.
pub fn command(name: &str, out: &Path, suite: Suite) -> Result<ExitCode, KeyError> {
    let files = keys::keygen_for(name, out, suite)?;
    println!("signing key:     {}", files.signing_key.display());
    println!("signing public:  {}", files.signing_pub.display());
    println!("tls certificate: {}", files.tls_cert.display());
    println!("tls key:         {}", files.tls_key.display());
    if suite == Suite::Gm {
        println!(
            "signing with:    SM2 (GB/T 32918.2, user id {})",
            keys::suite::SM2_USER_ID
        );
        println!("note:            for a pair with suite = \"gm\" under [node], on both nodes");
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_data_key_rotation_keeps_the_cipher_unless_told() {
        let dir = tempfile::tempdir().unwrap();
        let suite_of = |f: &Path| keys::at_rest::DataKeys::load(f).unwrap().suite();
        let plain = dir.path().join("default.data.key");
        data_key(&plain, None).unwrap();
        assert_eq!(suite_of(&plain), Suite::Default);
        let gm = dir.path().join("gm.data.key");
        data_key(&gm, Some(Suite::Gm)).unwrap();
        data_key(&gm, None).unwrap();
        assert_eq!(suite_of(&gm), Suite::Gm, "a rotation keeps SM4-GCM");
        data_key(&gm, Some(Suite::Default)).unwrap();
        assert_eq!(suite_of(&gm), Suite::Default, "unless told");
    }

    #[test]
    fn an_approver_key_is_made_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        approver("张伟", dir.path(), Suite::Default).unwrap();
        let key = dir.path().join("张伟.approver.key");
        let public = dir.path().join("张伟.approver.pub");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            SigningKey::load(&key).unwrap().verify_key(),
            VerifyKey::load(&public).unwrap()
        );
        let before = std::fs::read(&key).unwrap();
        assert!(
            approver("张伟", dir.path(), Suite::Default).is_err(),
            "never overwritten"
        );
        assert_eq!(std::fs::read(&key).unwrap(), before);
        let e = approver("a/b", dir.path(), Suite::Default)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("invalid approver name") && e.contains("letters and digits of any script"),
            "{e}"
        );
        assert!(approver(".hidden", dir.path(), Suite::Default).is_err());
        // an SM2 approver key, for a pair on the national suite
        approver("李娜", dir.path(), Suite::Gm).unwrap();
        let public = VerifyKey::load(&dir.path().join("李娜.approver.pub")).unwrap();
        assert_eq!(public.suite(), Suite::Gm);
        let key = SigningKey::load(&dir.path().join("李娜.approver.key")).unwrap();
        assert_eq!(key.verify_key(), public);
    }
}
