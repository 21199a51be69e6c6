//! Simple fonts (Type1, TrueType, Type3): the text of their one-byte codes by the font's
//! /Encoding — a base encoding (WinAnsiEncoding, MacRomanEncoding, StandardEncoding;
//! ISO 32000-1 Annex D) changed by a /Differences array of glyph names — and the Unicode of
//! glyph names (Adobe Glyph List Specification: `uniXXXX`, `uXXXX[XX]`, and the names that
//! occur in practice; suffixes after `.` dropped, ligatures on `_` split).
//!
//! ```text
//!  code ─► /Differences name? ─► glyph list ─► text     (an unknown name: none)
//!       └► base encoding ─► text
//! ```

use std::fmt::Write;

/// A base encoding of a simple font.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Base {
    WinAnsi,
    MacRoman,
    Standard,
    /// PDFDocEncoding (Annex D.2), which also stands for a font without an encoding.
    PdfDoc,
}

impl Base {
    /// The base encoding of this name; None for one not defined (e.g. MacExpertEncoding).
    pub(super) fn of(name: &[u8]) -> Option<Base> {
        Some(match name {
            b"WinAnsiEncoding" => Base::WinAnsi,
            b"MacRomanEncoding" => Base::MacRoman,
            b"StandardEncoding" => Base::Standard,
            b"PDFDocEncoding" => Base::PdfDoc,
            _ => return None,
        })
    }

    /// The text of one code; None where the encoding defines no character.
    pub(super) fn char(self, code: u8) -> Option<char> {
        match self {
            Base::WinAnsi => one(encoding_rs::WINDOWS_1252, code),
            Base::MacRoman => one(encoding_rs::MACINTOSH, code),
            Base::Standard => standard(code),
            Base::PdfDoc => pdf_doc(code),
        }
    }
}

fn one(encoding: &'static encoding_rs::Encoding, code: u8) -> Option<char> {
    let bytes = [code];
    let (text, _) = encoding.decode_without_bom_handling(&bytes);
    text.chars().next()
}

/// StandardEncoding (Annex D.2): ASCII but for the two quotes, and its own upper half.
fn standard(code: u8) -> Option<char> {
    match code {
        0x27 => Some('\u{2019}'),
        0x60 => Some('\u{2018}'),
        0x20..=0x7e => Some(char::from(code)),
        0xa1..=0xff => STANDARD_HIGH
            .iter()
            .find(|(c, _)| *c == code)
            .map(|&(_, ch)| ch),
        _ => None,
    }
}

const STANDARD_HIGH: [(u8, char); 54] = [
    (0xa1, '¡'),
    (0xa2, '¢'),
    (0xa3, '£'),
    (0xa4, '⁄'),
    (0xa5, '¥'),
    (0xa6, 'ƒ'),
    (0xa7, '§'),
    (0xa8, '¤'),
    (0xa9, '\''),
    (0xaa, '“'),
    (0xab, '«'),
    (0xac, '‹'),
    (0xad, '›'),
    (0xae, 'ﬁ'),
    (0xaf, 'ﬂ'),
    (0xb1, '–'),
    (0xb2, '†'),
    (0xb3, '‡'),
    (0xb4, '·'),
    (0xb6, '¶'),
    (0xb7, '•'),
    (0xb8, '‚'),
    (0xb9, '„'),
    (0xba, '”'),
    (0xbb, '»'),
    (0xbc, '…'),
    (0xbd, '‰'),
    (0xbf, '¿'),
    (0xc1, '`'),
    (0xc2, '´'),
    (0xc3, 'ˆ'),
    (0xc4, '˜'),
    (0xc5, '¯'),
    (0xc6, '˘'),
    (0xc7, '˙'),
    (0xc8, '¨'),
    (0xca, '˚'),
    (0xcb, '¸'),
    (0xcd, '˝'),
    (0xce, '˛'),
    (0xcf, 'ˇ'),
    (0xd0, '—'),
    (0xe1, 'Æ'),
    (0xe3, 'ª'),
    (0xe8, 'Ł'),
    (0xe9, 'Ø'),
    (0xea, 'Œ'),
    (0xeb, 'º'),
    (0xf1, 'æ'),
    (0xf5, 'ı'),
    (0xf8, 'ł'),
    (0xf9, 'ø'),
    (0xfa, 'œ'),
    (0xfb, 'ß'),
];

/// PDFDocEncoding (Annex D.2): Latin-1 but for 0x18–0x1F and 0x80–0xA0.
fn pdf_doc(code: u8) -> Option<char> {
    const LOW: &str = "˘ˇˆ˙˝˛˚˜";
    const HIGH: &str = "•†‡…—–ƒ⁄‹›−‰„“”‘’‚™ﬁﬂŁŒŠŸŽıłœšž";
    match code {
        0x18..=0x1f => LOW.chars().nth(usize::from(code - 0x18)),
        0x80..=0x9e => HIGH.chars().nth(usize::from(code - 0x80)),
        0x9f => None,
        0xa0 => Some('€'),
        _ => Some(char::from(code)),
    }
}

/// Glyph names of ASCII 0x20–0x7E, in order.
const ASCII_NAMES: [&str; 95] = [
    "space",
    "exclam",
    "quotedbl",
    "numbersign",
    "dollar",
    "percent",
    "ampersand",
    "quotesingle",
    "parenleft",
    "parenright",
    "asterisk",
    "plus",
    "comma",
    "hyphen",
    "period",
    "slash",
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "colon",
    "semicolon",
    "less",
    "equal",
    "greater",
    "question",
    "at",
    "A",
    "B",
    "C",
    "D",
    "E",
    "F",
    "G",
    "H",
    "I",
    "J",
    "K",
    "L",
    "M",
    "N",
    "O",
    "P",
    "Q",
    "R",
    "S",
    "T",
    "U",
    "V",
    "W",
    "X",
    "Y",
    "Z",
    "bracketleft",
    "backslash",
    "bracketright",
    "asciicircum",
    "underscore",
    "grave",
    "a",
    "b",
    "c",
    "d",
    "e",
    "f",
    "g",
    "h",
    "i",
    "j",
    "k",
    "l",
    "m",
    "n",
    "o",
    "p",
    "q",
    "r",
    "s",
    "t",
    "u",
    "v",
    "w",
    "x",
    "y",
    "z",
    "braceleft",
    "bar",
    "braceright",
    "asciitilde",
];

/// Glyph names of Latin-1 0xA1–0xFF, in order.
const LATIN1_NAMES: [&str; 95] = [
    "exclamdown",
    "cent",
    "sterling",
    "currency",
    "yen",
    "brokenbar",
    "section",
    "dieresis",
    "copyright",
    "ordfeminine",
    "guillemotleft",
    "logicalnot",
    "sfthyphen",
    "registered",
    "macron",
    "degree",
    "plusminus",
    "twosuperior",
    "threesuperior",
    "acute",
    "mu",
    "paragraph",
    "periodcentered",
    "cedilla",
    "onesuperior",
    "ordmasculine",
    "guillemotright",
    "onequarter",
    "onehalf",
    "threequarters",
    "questiondown",
    "Agrave",
    "Aacute",
    "Acircumflex",
    "Atilde",
    "Adieresis",
    "Aring",
    "AE",
    "Ccedilla",
    "Egrave",
    "Eacute",
    "Ecircumflex",
    "Edieresis",
    "Igrave",
    "Iacute",
    "Icircumflex",
    "Idieresis",
    "Eth",
    "Ntilde",
    "Ograve",
    "Oacute",
    "Ocircumflex",
    "Otilde",
    "Odieresis",
    "multiply",
    "Oslash",
    "Ugrave",
    "Uacute",
    "Ucircumflex",
    "Udieresis",
    "Yacute",
    "Thorn",
    "germandbls",
    "agrave",
    "aacute",
    "acircumflex",
    "atilde",
    "adieresis",
    "aring",
    "ae",
    "ccedilla",
    "egrave",
    "eacute",
    "ecircumflex",
    "edieresis",
    "igrave",
    "iacute",
    "icircumflex",
    "idieresis",
    "eth",
    "ntilde",
    "ograve",
    "oacute",
    "ocircumflex",
    "otilde",
    "odieresis",
    "divide",
    "oslash",
    "ugrave",
    "uacute",
    "ucircumflex",
    "udieresis",
    "yacute",
    "thorn",
    "ydieresis",
];

/// Other glyph names met in practice (typographic punctuation, WinAnsi's upper half).
const OTHER_NAMES: [(&str, char); 63] = [
    ("dotlessj", 'ȷ'),
    ("Gamma", 'Γ'),
    ("Delta", 'Δ'),
    ("Theta", 'Θ'),
    ("Lambda", 'Λ'),
    ("Xi", 'Ξ'),
    ("Pi", 'Π'),
    ("Sigma", 'Σ'),
    ("Upsilon", 'Υ'),
    ("Phi", 'Φ'),
    ("Psi", 'Ψ'),
    ("Omega", 'Ω'),
    ("alpha", 'α'),
    ("beta", 'β'),
    ("gamma", 'γ'),
    ("delta", 'δ'),
    ("epsilon", 'ε'),
    ("lambda", 'λ'),
    ("mu", 'μ'),
    ("pi", 'π'),
    ("sigma", 'σ'),
    ("omega", 'ω'),
    ("visiblespace", '␣'),
    ("quoteleft", '‘'),
    ("quoteright", '’'),
    ("quotedblleft", '“'),
    ("quotedblright", '”'),
    ("quotesinglbase", '‚'),
    ("quotedblbase", '„'),
    ("endash", '–'),
    ("emdash", '—'),
    ("bullet", '•'),
    ("ellipsis", '…'),
    ("dagger", '†'),
    ("daggerdbl", '‡'),
    ("perthousand", '‰'),
    ("guilsinglleft", '‹'),
    ("guilsinglright", '›'),
    ("fi", 'ﬁ'),
    ("fl", 'ﬂ'),
    ("fraction", '⁄'),
    ("florin", 'ƒ'),
    ("Euro", '€'),
    ("trademark", '™'),
    ("minus", '−'),
    ("OE", 'Œ'),
    ("oe", 'œ'),
    ("Scaron", 'Š'),
    ("scaron", 'š'),
    ("Zcaron", 'Ž'),
    ("zcaron", 'ž'),
    ("Ydieresis", 'Ÿ'),
    ("Lslash", 'Ł'),
    ("lslash", 'ł'),
    ("dotlessi", 'ı'),
    ("circumflex", 'ˆ'),
    ("tilde", '˜'),
    ("breve", '˘'),
    ("dotaccent", '˙'),
    ("ring", '˚'),
    ("hungarumlaut", '˝'),
    ("ogonek", '˛'),
    ("caron", 'ˇ'),
];

/// The character of one glyph name component: `uniXXXX[XXXX…]`, `uXXXX` to `uXXXXXX`, or a
/// name of the glyph list.
fn component(name: &str, out: &mut String) -> bool {
    if let Some(hex) = name.strip_prefix("uni")
        && !hex.is_empty()
        && hex.len() % 4 == 0
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        let units: Vec<u16> = hex
            .as_bytes()
            .chunks(4)
            .filter_map(|c| u16::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
            .collect();
        for c in char::decode_utf16(units) {
            out.push(c.unwrap_or(char::REPLACEMENT_CHARACTER));
        }
        return true;
    }
    if let Some(hex) = name.strip_prefix('u')
        && (4..=6).contains(&hex.len())
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && let Some(c) = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
    {
        out.push(c);
        return true;
    }
    // Ligatures of several letters (TeX's ff, ffi, ffl).
    if matches!(name, "ff" | "ffi" | "ffl") {
        out.push_str(name);
        return true;
    }
    let found = ASCII_NAMES
        .iter()
        .position(|n| *n == name)
        .map(|i| char::from(0x20 + i as u8))
        .or_else(|| {
            LATIN1_NAMES
                .iter()
                .position(|n| *n == name)
                .map(|i| char::from(0xa1 + i as u8))
        })
        .or_else(|| {
            OTHER_NAMES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|&(_, c)| c)
        })
        .or(match name {
            "nbspace" | "nonbreakingspace" => Some('\u{a0}'),
            "middot" => Some('·'),
            _ => None,
        });
    match found {
        Some(c) => {
            out.push(c);
            true
        }
        None => false,
    }
}

/// The text of a glyph name (Adobe Glyph List Specification, "Mapping a glyph name to a
/// Unicode value"): the part before the first `.`, split on `_` into components each mapped.
/// None when a component is not known (`g12`, `cid00041`, a subsetting tool's own names).
pub(super) fn glyph_text(name: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(name).ok()?;
    let base = name.split('.').next().unwrap_or_default();
    if base.is_empty() {
        return None;
    }
    let mut out = String::new();
    for part in base.split('_') {
        if !component(part, &mut out) {
            return None;
        }
    }
    Some(out)
}

/// A simple font's encoding: a base and the differences from it.
#[derive(Debug, Clone)]
pub(super) struct SimpleEncoding {
    pub(super) base: Base,
    /// Codes given a name by /Differences, by code: the text of that name, None for an
    /// unknown name.
    pub(super) differences: Vec<(u8, Option<String>)>,
}

impl SimpleEncoding {
    /// Reads a /Differences array (a code, then the names of that code and the next ones).
    pub(super) fn differences<'v>(
        items: impl Iterator<Item = Difference<'v>>,
    ) -> Vec<(u8, Option<String>)> {
        let mut code: Option<u32> = None;
        let mut out: Vec<(u8, Option<String>)> = Vec::new();
        for item in items {
            match item {
                Difference::Code(n) => code = u32::try_from(n).ok(),
                Difference::Name(name) => {
                    if let Some(c) = code.filter(|&c| c <= 255) {
                        out.retain(|(k, _)| u32::from(*k) != c);
                        out.push((c as u8, glyph_text(name)));
                        code = Some(c + 1);
                    }
                }
            }
        }
        out.sort_unstable_by_key(|(c, _)| *c);
        out
    }

    /// Whether its /Differences are a custom encoding: more names the glyph list does not
    /// know than names it knows (`/g1 /g2 …`), so that no code's text can be trusted.
    pub(super) fn custom(&self) -> bool {
        let unknown = self.differences.iter().filter(|(_, t)| t.is_none()).count();
        unknown > 0 && unknown * 2 > self.differences.len()
    }

    /// The text of one code; Err when /Differences names it by a name that is not known.
    pub(super) fn char(&self, code: u8, out: &mut String) -> Result<(), ()> {
        if let Ok(at) = self.differences.binary_search_by_key(&code, |(c, _)| *c) {
            let text = self.differences.get(at).and_then(|(_, t)| t.as_ref());
            return match text {
                Some(text) => {
                    out.push_str(text);
                    Ok(())
                }
                None => Err(()),
            };
        }
        match self.base.char(code) {
            Some(c) => out.push(c),
            // A code the base leaves undefined: shown as its Latin-1 character.
            None => {
                let _ = write!(out, "{}", char::from(code));
            }
        }
        Ok(())
    }
}

/// One item of a /Differences array.
#[derive(Debug, Clone, Copy)]
pub(super) enum Difference<'v> {
    Code(i64),
    Name(&'v [u8]),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyph_names_map_to_unicode() {
        for (name, text) in [
            ("A", "A"),
            ("space", " "),
            ("zero", "0"),
            ("uni673A", "机"),
            ("uni673A5BC6", "机密"),
            ("u5BC6", "密"),
            ("u1F600", "😀"),
            ("eacute", "é"),
            ("quotedblleft", "“"),
            ("f_i", "fi"),
            ("a.sc", "a"),
            ("ffi", "ffi"),
            ("Omega", "Ω"),
        ] {
            assert_eq!(glyph_text(name.as_bytes()).as_deref(), Some(text), "{name}");
        }
        for name in ["g12", "cid00041", "", ".notdef", "uniXYZW", "u12"] {
            assert_eq!(glyph_text(name.as_bytes()), None, "{name}");
        }
    }

    #[test]
    fn base_encodings_and_differences() {
        assert_eq!(Base::WinAnsi.char(0x80), Some('€'));
        assert_eq!(Base::MacRoman.char(0x8e), Some('é'));
        assert_eq!(Base::Standard.char(0x27), Some('’'));
        assert_eq!(Base::Standard.char(0xe9), Some('Ø'));
        assert_eq!(Base::PdfDoc.char(0x92), Some('™'));
        assert_eq!(Base::PdfDoc.char(b'A'), Some('A'));
        let differences = SimpleEncoding::differences(
            [
                Difference::Code(65),
                Difference::Name(b"uni673A"),
                Difference::Name(b"uni5BC6"),
                Difference::Code(90),
                Difference::Name(b"g7"),
            ]
            .into_iter(),
        );
        let enc = SimpleEncoding {
            base: Base::WinAnsi,
            differences,
        };
        let mut out = String::new();
        for code in [b'A', b'B', b'C'] {
            enc.char(code, &mut out).unwrap();
        }
        assert_eq!(out, "机密C");
        assert!(enc.char(b'Z', &mut out).is_err());
    }
}
