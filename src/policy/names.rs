//! The name rules every channel applies to a file's base name, whatever its policy.

use crate::core::reason::{Reason, Refusal};

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

/// The name rules every channel applies, whatever its policy: a plain base name.
pub fn check_name_rules(name: &str, max_len: usize) -> Result<(), Refusal> {
    let refuse = |d: String| Err(Refusal::new(Reason::NameRefused, d));
    if name.is_empty() {
        return refuse("empty name".into());
    }
    if name.len() > max_len {
        return refuse(format!("{} bytes is longer than {max_len}", name.len()));
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
pub const DEFAULT_PUNCTUATION: &str = " ._-+()[]（）【】《》〔〕「」，、。·＃#&@%～~=";

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
