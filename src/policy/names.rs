//! The name rules every channel applies to a file's base name, whatever its policy.

use crate::core::reason::{Reason, Refusal};

/// A name in Unicode normalisation form C: the spelling the rules see and that lands. A name
/// taken from an outbox or an archive is normalised before any rule; a name that arrives over
/// the link must already be in NFC (see [`check_name_rules`]).
pub use crate::content::archive::nfc;

/// The lower-case extension of a name, without the dot.
pub fn extension(name: &str) -> Option<String> {
    let (stem, ext) = name.rsplit_once('.')?;
    (!stem.is_empty()).then(|| ext.to_lowercase())
}

const RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

fn forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
        // bidi embeddings, overrides and isolates
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}')
        // zero-width and invisible characters
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

/// The name rules every channel applies, whatever its policy: a plain base name, in Unicode
/// NFC (the sender normalises what it takes; a name in another form is refused).
pub fn check_name_rules(name: &str, max_len: usize) -> Result<(), Refusal> {
    let refuse = |d: String| Err(Refusal::new(Reason::NameRefused, d));
    if name.is_empty() {
        return refuse("empty name".into());
    }
    if name.len() > max_len {
        return refuse(format!("{} bytes is longer than {max_len}", name.len()));
    }
    if !unicode_normalization::is_nfc(name) {
        return refuse("the name is not in Unicode normalisation form C".into());
    }
    if let Some(c) = name.chars().find(|c| forbidden_char(*c)) {
        return refuse(format!("forbidden character U+{:04X}", c as u32));
    }
    if name.starts_with('.') || name.starts_with('-') || name.starts_with(' ') {
        return refuse("name starts with '.', '-' or a space".into());
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return refuse("name ends with '.' or a space".into());
    }
    let stem = name.split('.').next().unwrap_or(name).to_ascii_uppercase();
    if RESERVED.contains(&stem.as_str()) {
        return refuse(format!("{stem} is a reserved device name"));
    }
    Ok(())
}

/// Punctuation allowed in names when a policy does not list its own: what court file names
/// use (full-width brackets and the enumeration comma included), nothing a shell or a path
/// treats specially.
pub const DEFAULT_PUNCTUATION: &str =
    " ._-+()[]（）【】《》〔〕「」『』，、。：；！？“”‘’·—…＃#&@%～~=";

/// Checks that every character is a letter or digit of any script, or listed in
/// `punctuation`.
pub fn check_charset(name: &str, punctuation: &str) -> Result<(), Refusal> {
    match name
        .chars()
        .find(|c| !c.is_alphanumeric() && !punctuation.contains(*c))
    {
        Some(c) => Err(Refusal::new(
            Reason::NameRefused,
            format!(
                "character {c:?} (U+{:04X}) is not allowed in names",
                c as u32
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unicode_normalization::UnicodeNormalization;

    #[test]
    fn names_are_judged_in_nfc_and_the_nfd_spelling_is_normalised_not_refused() {
        let nfc_name = "Café-がくせい.pdf";
        let nfd_name: String = nfc_name.nfd().collect();
        assert_ne!(nfd_name, nfc_name);
        // a name in another form than NFC never reaches the rules as it is
        let refused = check_name_rules(&nfd_name, 255).unwrap_err();
        assert!(refused.detail.contains("form C"), "{refused}");
        // normalised, as the sender and the archive reader do, it is the same name
        assert_eq!(nfc(&nfd_name), nfc_name);
        assert_eq!(check_name_rules(&nfc(&nfd_name), 255), Ok(()));
        assert_eq!(check_charset(&nfc(&nfd_name), DEFAULT_PUNCTUATION), Ok(()));
    }

    #[test]
    fn the_punctuation_of_chinese_titles_is_allowed_by_default() {
        let title = "关于“某某案”的说明：第一部分；附件【二】、《三》〔四〕「五」『六』！？—….pdf";
        assert_eq!(check_name_rules(title, 255), Ok(()));
        assert_eq!(check_charset(title, DEFAULT_PUNCTUATION), Ok(()));
        // their ASCII look-alikes that shells and file systems treat specially are not
        for bad in ["a:b.pdf", "a?.pdf", "a\"b\".pdf"] {
            assert!(check_name_rules(bad, 255).is_err(), "{bad}");
        }
    }
}
