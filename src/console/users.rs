//! The console's password file: who may log in, each with an argon2id hash (RFC 9106) of
//! their password, never the password itself.
//!
//! ```text
//!  isogate console passwd --users FILE --user NAME  ◄─ password on stdin
//!        └─► hash (argon2id, random 128-bit salt, PHC string) ─► FILE (0600, durable)
//!  FILE: one `user:$argon2id$v=19$m=…,t=…,p=…$salt$hash` per line; `#` comments
//!  node start ─► Users::load ─► login: Users::verify(user, password) ─► true | false
//! ```
//!
//! A login for an unknown user costs the same as one for a known user (a dummy hash is
//! checked), so the answer's delay does not tell which names exist.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use thiserror::Error;

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD: usize = 12;
/// Longest password accepted, in bytes (argon2 takes any length; a login form is bounded).
pub const MAX_PASSWORD: usize = 1024;
/// Fewest different characters in a password.
pub const MIN_DISTINCT: usize = 5;
/// Longest user name, in bytes.
pub const MAX_USER: usize = 64;
/// Largest password file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Why the password file cannot be read or changed.
#[derive(Debug, Error)]
pub enum UsersError {
    /// The file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The password file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not `user:argon2id-hash`.
    #[error("{path}:{line}: {what}")]
    Line {
        /// The password file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong (never the hash itself).
        what: String,
    },
    /// A user name outside `[A-Za-z0-9._-]`, empty or longer than 64 bytes.
    #[error("{0:?}: a user name is 1 to 64 letters, digits, '.', '_' or '-'")]
    Name(String),
    /// The password is refused: empty, too short or too long.
    #[error("password refused: {0}")]
    Weak(String),
    /// Hashing failed (the system's random generator, or argon2 itself).
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

/// Whether `name` may name a console user: 1 to 64 ASCII letters, digits, '.', '_', '-'.
pub fn valid_user(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_USER
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The argon2id instance used: RFC 9106's second recommended option as argon2's defaults
/// give it (19 MiB of memory, 2 passes, 1 lane).
fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// Hashes a password with argon2id and a fresh random salt; the PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$…`).
///
/// # Errors
/// [`UsersError::Weak`] for a password shorter than [`MIN_PASSWORD`] characters, longer
/// than [`MAX_PASSWORD`] bytes, all whitespace, or of fewer than [`MIN_DISTINCT`] different
/// characters (so not one character repeated); [`UsersError::Hash`] if the random generator fails.
pub fn hash(password: &str) -> Result<String, UsersError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(UsersError::Weak(format!(
            "at least {MIN_PASSWORD} characters, please"
        )));
    }
    if password.len() > MAX_PASSWORD {
        return Err(UsersError::Weak(format!("at most {MAX_PASSWORD} bytes")));
    }
    if password.chars().all(char::is_whitespace) {
        return Err(UsersError::Weak("not only spaces, please".into()));
    }
    let distinct: std::collections::BTreeSet<char> = password.chars().collect();
    if distinct.len() < MIN_DISTINCT {
        return Err(UsersError::Weak(format!(
            "at least {MIN_DISTINCT} different characters, please"
        )));
    }
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| UsersError::Hash("system random generator failed".into()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| UsersError::Hash(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Hash(e.to_string()))
}

/// A hash nobody's password matches, checked for unknown users so that they cost as much.
fn dummy() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut r = [0u8; 24];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut r);
        hash(&hex::encode(r)).unwrap_or_default()
    })
}

/// The console's users and their password hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Users {
    hashes: BTreeMap<String, String>,
}

impl Users {
    /// Reads a password file (at most [`MAX_FILE_BYTES`], never through a link).
    ///
    /// # Errors
    /// The file cannot be read, or a line is not `user:argon2id-hash`.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let io = |source| UsersError::Io {
            path: path.to_path_buf(),
            source,
        };
        let f = crate::fsx::open_nofollow(path).map_err(io)?;
        let mut text = String::new();
        f.take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("over {MAX_FILE_BYTES} bytes"),
            )));
        }
        Users::parse(&text, path)
    }

    /// Parses the text of a password file; `path` names it in errors.
    ///
    /// # Errors
    /// A line that is not `user:argon2id-hash`, or a user listed twice.
    pub fn parse(text: &str, path: &Path) -> Result<Users, UsersError> {
        let mut hashes = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |what: &str| UsersError::Line {
                path: path.to_path_buf(),
                line: i + 1,
                what: what.to_string(),
            };
            let (user, h) = line
                .split_once(':')
                .ok_or_else(|| bad("expected user:hash"))?;
            if !valid_user(user) {
                return Err(bad(
                    "a user name is 1 to 64 letters, digits, '.', '_' or '-'",
                ));
            }
            let parsed = PasswordHash::new(h).map_err(|_| bad("not a PHC hash string"))?;
            if parsed.algorithm.as_str() != "argon2id" {
                return Err(bad("not an argon2id hash"));
            }
            if hashes.insert(user.to_string(), h.to_string()).is_some() {
                return Err(bad("user listed twice"));
            }
        }
        Ok(Users { hashes })
    }

    /// The file's text: one `user:hash` per line, users in order.
    pub fn to_text(&self) -> String {
        let mut s =
            String::from("# isogate console users: user:argon2id hash (isogate console passwd)\n");
        for (u, h) in &self.hashes {
            s.push_str(u);
            s.push(':');
            s.push_str(h);
            s.push('\n');
        }
        s
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether `user` has a password here.
    pub fn contains(&self, user: &str) -> bool {
        self.hashes.contains_key(user)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Sets (adds or replaces) a user's password.
    ///
    /// # Errors
    /// A bad user name, a refused password, or hashing failed.
    pub fn set(&mut self, user: &str, password: &str) -> Result<(), UsersError> {
        if !valid_user(user) {
            return Err(UsersError::Name(user.to_string()));
        }
        let h = hash(password)?;
        self.hashes.insert(user.to_string(), h);
        Ok(())
    }

    /// Whether `password` is `user`'s. An unknown user costs as much as a known one.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        if password.len() > MAX_PASSWORD {
            return false;
        }
        let (h, known) = match self.hashes.get(user) {
            Some(h) => (h.as_str(), true),
            None => (dummy(), false),
        };
        let Ok(parsed) = PasswordHash::new(h) else {
            return false;
        };
        // the parameters in the stored hash govern; Argon2::default only supplies the code
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && known
    }
}

/// `path` with a directory: a bare file name (whose parent is "", which no directory
/// is) lives in the current directory, `./name`.
fn in_a_directory(path: &Path) -> std::path::PathBuf {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new(".").join(path),
        _ => path.to_path_buf(),
    }
}

/// `isogate console passwd`: sets `user`'s password in the file at `path` (made when
/// missing), written durably with mode 0600.
///
/// # Errors
/// As [`Users::load`] (a missing file is an empty one) and [`Users::set`], or the file
/// cannot be written.
pub fn passwd(path: &Path, user: &str, password: &str) -> Result<(), UsersError> {
    let mut users = match Users::load(path) {
        Ok(u) => u,
        Err(UsersError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Users::default()
        }
        Err(e) => return Err(e),
    };
    users.set(user, password)?;
    crate::fsx::write_durable_mode(&in_a_directory(path), users.to_text().as_bytes(), 0o600)
        .map_err(|source| UsersError::Io {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("users");
        assert!(matches!(
            passwd(&f, "officer", ""),
            Err(UsersError::Weak(_))
        ));
        assert!(matches!(
            passwd(&f, "officer", "short"),
            Err(UsersError::Weak(_))
        ));
        assert!(matches!(
            passwd(&f, "bad:name", "correct horse battery"),
            Err(UsersError::Name(_))
        ));
        for weak in [
            "              ",
            "aaaaaaaaaaaaaaaa",
            "abababababababab",
            "abcdabcdabcdabcd",
        ] {
            assert!(
                matches!(passwd(&f, "officer", weak), Err(UsersError::Weak(_))),
                "{weak:?}"
            );
        }
        assert!(!f.exists(), "nothing saved for a refused password");
        passwd(&f, "officer", "correct horse battery").unwrap();
        passwd(&f, "li.na", "another good password").unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains("correct horse"), "no password in the file");
        assert!(text.contains("officer:$argon2id$"));
        let u = Users::load(&f).unwrap();
        assert_eq!(u.len(), 2);
        assert!(u.verify("officer", "correct horse battery"));
        assert!(!u.verify("officer", "correct horse batterY"));
        assert!(!u.verify("nobody", "correct horse battery"));
        assert!(!u.verify("li.na", "correct horse battery"));
        // changing a password replaces the old one
        passwd(&f, "officer", "a brand new password").unwrap();
        let u = Users::load(&f).unwrap();
        assert!(!u.verify("officer", "correct horse battery"));
        assert!(u.verify("officer", "a brand new password"));
    }

    #[test]
    fn a_bare_file_name_is_in_the_current_directory() {
        assert_eq!(in_a_directory(Path::new("users")), Path::new("./users"));
        assert_eq!(in_a_directory(Path::new("a/users")), Path::new("a/users"));
        assert_eq!(
            in_a_directory(Path::new("/etc/users")),
            Path::new("/etc/users")
        );
        // what the bare name used to give the durable write: a parent that is no directory
        assert!(std::fs::File::open(Path::new("users").parent().unwrap()).is_err());
        assert!(std::fs::File::open(in_a_directory(Path::new("users")).parent().unwrap()).is_ok());
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let p = Path::new("users");
        let e = Users::parse("# c\n\nofficer\n", p).unwrap_err().to_string();
        assert!(e.starts_with("users:3:"), "{e}");
        let e = Users::parse("officer:plaintext\n", p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("users:1: not a PHC"), "{e}");
        let h = hash("correct horse battery").unwrap();
        let e = Users::parse(&format!("a:{h}\na:{h}\n"), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("users:2: user listed twice"), "{e}");
        assert!(!e.contains(&h), "no hash in errors");
    }
}
