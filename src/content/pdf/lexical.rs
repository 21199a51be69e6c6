//! The byte classes of PDF syntax (white space, delimiters, regular characters, hex digits)
//! and plain byte search, shared by every reader of the file.

/// White space: NUL, tab, line feed, form feed, carriage return, space.
pub(super) fn is_white(b: u8) -> bool {
    matches!(b, 0 | b'\t' | b'\n' | 0x0c | b'\r' | b' ')
}

/// A delimiter: it ends a name or a word and is a token of its own.
pub(super) fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

/// A regular character: neither white space nor a delimiter.
pub(super) fn is_regular(b: u8) -> bool {
    !is_white(b) && !is_delimiter(b)
}

/// The value of a hex digit, either case.
pub(super) fn hex_value(b: u8) -> Option<u8> {
    // a table, not a match: the digits of a CID font's text come in no order a branch
    // predictor could learn
    let v = HEX_VALUES[usize::from(b)];
    (v != NOT_HEX).then_some(v)
}

/// [`HEX_VALUES`] of a byte that is no hex digit.
const NOT_HEX: u8 = 0xff;

/// The value of each byte as a hex digit, or [`NOT_HEX`].
const HEX_VALUES: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// A name's bytes with each `#` and two hex digits decoded (ISO 32000-1 §7.3.5); a `#` not
/// followed by two hex digits is kept as it is.
pub(super) fn unescape_name(raw: &[u8]) -> Vec<u8> {
    let mut name = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let decoded = (raw[i] == b'#')
            .then(|| Some(hex_value(*raw.get(i + 1)?)? << 4 | hex_value(*raw.get(i + 2)?)?))
            .flatten();
        match decoded {
            Some(v) => {
                name.push(v);
                i += 3;
            }
            None => {
                name.push(raw[i]);
                i += 1;
            }
        }
    }
    name
}

/// Where `needle` first occurs in `hay` (SIMD search, `memchr::memmem`).
pub(super) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// Where `needle` last occurs in `hay` (SIMD search, `memchr::memmem`).
pub(super) fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::rfind(hay, needle)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_values_are_those_of_the_hex_digits_only() {
        for b in 0..=u8::MAX {
            let want = char::from(b).to_digit(16).map(|v| v as u8);
            assert_eq!(super::hex_value(b), want, "byte {b:#04x}");
        }
    }
}
