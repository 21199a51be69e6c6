//! Entry paths: the rules a path inside an archive must follow before its entry is read
//! (relative, no `..` or empty components, no backslash, drive letter or control character,
//! and no directory name that displays other than it is or that Windows reserves).

/// Invisible formatting characters that make a name display other than it is: bidi embeddings,
/// overrides and isolates, zero-width characters, word joiners, the byte-order mark.
fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
            | '\u{061C}'
    )
}

/// A Windows reserved device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9), with or without an
/// extension, in any case; trailing spaces before the extension are ignored, as Windows does.
fn is_device_name(part: &str) -> bool {
    let stem = part.split('.').next().unwrap_or(part).trim_end_matches(' ');
    let upper = stem.to_ascii_uppercase();
    if matches!(upper.as_str(), "CON" | "PRN" | "AUX" | "NUL") {
        return true;
    }
    let mut chars = upper.chars();
    let prefix: String = chars.by_ref().take(3).collect();
    let digit = chars.next();
    matches!(prefix.as_str(), "COM" | "LPT")
        && matches!(digit, Some('1'..='9' | '\u{b9}' | '\u{b2}' | '\u{b3}'))
        && chars.next().is_none()
}

/// Why an entry path is refused, if it is. A directory may end with one `/`.
pub(super) fn path_problem(path: &str, is_dir: bool) -> Option<&'static str> {
    let body = if is_dir {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    };
    if body.is_empty() {
        return Some("empty path");
    }
    if body.starts_with('/') {
        return Some("absolute path");
    }
    if body.contains('\\') {
        return Some("backslash in path");
    }
    if body.chars().any(char::is_control) {
        return Some("control character in path");
    }
    let bytes = body.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Some("drive letter in path");
    }
    for part in body.split('/') {
        match part {
            "" => return Some("empty path component"),
            "." => return Some("`.` path component"),
            ".." => return Some("`..` path component"),
            _ => {}
        }
    }
    // Directory components; the leaf is checked by the caller's name rules.
    let dirs = if is_dir {
        Some(body)
    } else {
        body.rsplit_once('/').map(|(dirs, _)| dirs)
    };
    for part in dirs.into_iter().flat_map(|dirs| dirs.split('/')) {
        if part.chars().any(is_format_char) {
            return Some("invisible formatting character in a directory name");
        }
        if is_device_name(part) {
            return Some("Windows device name as a directory name");
        }
        if part.starts_with('-') {
            return Some("directory name starts with `-`");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::Kind;
    use super::super::testing::{limits, refused, zip_of};
    use super::*;
    use crate::core::reason::Reason;

    #[test]
    fn directory_names_with_invisible_characters_or_device_names_are_refused() {
        for name in [
            "a\u{202E}txt.exe/x.txt",
            "safe/\u{200B}/x.txt",
            "\u{2066}d/x",
            "d\u{FEFF}/x",
            "d\u{061C}/x",
            "d\u{2060}/x",
            "CON/x.txt",
            "docs/nul.txt/x",
            "Lpt9/x",
            "com1.d/x",
            "AUX /x",
            "-rf/x",
            "a/--help/x",
            "a/b/CON/",
        ] {
            let data = zip_of(&[("ok.txt", b"fine"), (name, b"x")]);
            let refusal = refused(Kind::Zip, &data, limits());
            assert_eq!(refusal.reason, Reason::ArchivePath, "{name:?}: {refusal}");
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_entry_type(if name.ends_with('/') {
                tar::EntryType::Directory
            } else {
                tar::EntryType::Regular
            });
            let mut b = tar::Builder::new(Vec::new());
            b.append_data(&mut h, name, &b"x"[..]).unwrap();
            let data = b.into_inner().unwrap();
            let refusal = refused(Kind::Tar, &data, limits());
            assert_eq!(refusal.reason, Reason::ArchivePath, "{name:?}: {refusal}");
        }
        // The leaf is left to the caller's name rules; look-alikes pass.
        for name in [
            "d/CON.txt",
            "d/-x.txt",
            "d/a\u{202E}b.txt",
            "CONSOLE/x",
            "COM10/x",
            "LPT0/x",
            "com/x",
            "a-b/x",
        ] {
            assert_eq!(path_problem(name, false), None, "{name:?}");
        }
    }

    #[test]
    fn path_rules() {
        assert_eq!(path_problem("a/b.txt", false), None);
        assert_eq!(path_problem("dir/", true), None);
        assert!(path_problem("dir/", false).is_some());
        assert!(path_problem("", false).is_some());
        assert!(path_problem("/", true).is_some());
        assert!(path_problem("a/./b", false).is_some());
        assert!(path_problem("a\u{7f}", false).is_some());
        assert!(path_problem("a:b", false).is_some());
        assert_eq!(path_problem("ab:c", false), None);
    }
}
