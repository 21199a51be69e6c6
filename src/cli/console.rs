//! `isogate console passwd`: sets a console user's password in the password file that
//! `[console] users` names (argon2id hashes; the password is read from standard input,
//! never from the command line, where `ps` would show it).
//!
//! ```text
//!  stdin (first line) ─► console::users::passwd(FILE, USER) ─► FILE (0600)
//! ```

use anyhow::Context;
use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;

/// Reads the password from the first line of `input` and sets it for `user` in `users`.
///
/// # Errors
/// No password on the input, or as [`crate::console::users::passwd`] (a short or empty
/// password, a bad user name, a file that cannot be read or written).
pub fn passwd(users: &Path, user: &str, input: &mut dyn BufRead) -> anyhow::Result<ExitCode> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        anyhow::bail!("no password on standard input (an empty one is refused)");
    }
    crate::console::users::passwd(users, user, password)?;
    println!("password of {user} set in {}", users.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_line_and_refuses_empty() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("users");
        assert!(passwd(&f, "officer", &mut &b"\n"[..]).is_err());
        assert!(passwd(&f, "officer", &mut &b"short\n"[..]).is_err());
        passwd(
            &f,
            "officer",
            &mut &b"a long enough password\nignored\n"[..],
        )
        .unwrap();
        let u = crate::console::users::Users::load(&f).unwrap();
        assert!(u.verify("officer", "a long enough password"));
    }
}
