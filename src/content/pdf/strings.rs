//! Text a reader sees outside the page content: the document information (`/Title`,
//! `/Subject`, `/Author`, `/Keywords`), outline item titles, annotation and pop-up contents
//! (`/Contents`), form field values and tooltips (`/V`, `/TU`), structure alternates
//! (`/ActualText`, `/Alt`). Read from the top-level bytes as they pass: after one of these
//! keys, a literal `( … )` or hex `< … >` string is captured (at most [`MAX_STRING`] bytes)
//! and decoded as a PDF text string (ISO 32000-2 §7.9.2.2: UTF-16BE or UTF-8 with a
//! byte-order mark, else PDFDocEncoding).
//!
//! ```text
//!  top-level byte ─► name ∈ KEYS? ─► next token a string? ─► capture ─► decode ─► a line
//! ```

use super::active::Names;
use super::encoding::Base;
use super::lexical::{hex_value, is_white};

/// Longest string captured; a longer one is reported as cut so that the caller refuses it.
pub(super) const MAX_STRING: usize = 64 * 1024;

/// Keys whose string value a reader sees.
const KEYS: &[&[u8]] = &[
    b"Title",
    b"Subject",
    b"Author",
    b"Keywords",
    b"Contents",
    b"V",
    b"TU",
    b"ActualText",
    b"Alt",
];

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Idle,
    /// Inside a literal string: its parenthesis depth and escape state.
    Literal { depth: u32, escape: Escape },
    /// After `<`: a hex string, or a dictionary if another `<` follows.
    Angle,
    /// Inside a hex string, with a pending high nibble.
    Hex { high: Option<u8> },
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    /// After `\`.
    Start,
    /// Inside an octal escape: its value and digits so far.
    Octal(u8, u8),
    /// After `\` and a carriage return (a line continuation).
    Cr,
}

/// What a finished capture gives.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Found {
    /// The decoded text of one string.
    Text(String),
    /// A string longer than [`MAX_STRING`]: it cannot be read whole.
    TooLong,
}

/// Watches top-level bytes for the strings of [`KEYS`].
#[derive(Debug, Default)]
pub(super) struct DocStrings {
    names: Names,
    want: bool,
    state: State,
    buf: Vec<u8>,
    long: bool,
}

impl DocStrings {
    /// Feeds one top-level byte; a finished string when this byte ends one.
    pub(super) fn feed(&mut self, b: u8) -> Option<Found> {
        match self.state {
            State::Idle => {}
            State::Angle => {
                if b == b'<' {
                    self.state = State::Idle;
                    return None;
                }
                self.state = State::Hex { high: None };
                return self.hex(b);
            }
            State::Hex { .. } => return self.hex(b),
            State::Literal { .. } => return self.literal(b),
        }
        let ended = self.names.feed(b);
        if ended {
            self.want = KEYS.contains(&self.names.last());
        }
        if !self.want {
            return None;
        }
        match b {
            b'(' => self.start(State::Literal {
                depth: 1,
                escape: Escape::None,
            }),
            b'<' => self.start(State::Angle),
            b if is_white(b) => {}
            _ => self.want = false,
        }
        None
    }

    fn start(&mut self, state: State) {
        self.want = false;
        self.state = state;
        self.buf.clear();
        self.long = false;
    }

    fn push(&mut self, b: u8) {
        if self.buf.len() < MAX_STRING {
            self.buf.push(b);
        } else {
            self.long = true;
        }
    }

    fn finish(&mut self) -> Option<Found> {
        self.state = State::Idle;
        if self.long {
            return Some(Found::TooLong);
        }
        Some(Found::Text(decode(&self.buf)))
    }

    fn hex(&mut self, b: u8) -> Option<Found> {
        let State::Hex { high } = self.state else {
            return None;
        };
        if b == b'>' {
            if let Some(h) = high {
                self.push(h << 4);
            }
            return self.finish();
        }
        if let Some(v) = hex_value(b) {
            match high {
                None => self.state = State::Hex { high: Some(v) },
                Some(h) => {
                    self.push(h << 4 | v);
                    self.state = State::Hex { high: None };
                }
            }
        } else if !is_white(b) {
            // not a hex string after all
            self.state = State::Idle;
        }
        None
    }

    fn literal(&mut self, b: u8) -> Option<Found> {
        let State::Literal { depth, escape } = self.state else {
            return None;
        };
        let mut depth = depth;
        let next = match escape {
            Escape::Start => match b {
                b'n' => self.put(b'\n'),
                b'r' => self.put(b'\r'),
                b't' => self.put(b'\t'),
                b'b' => self.put(0x08),
                b'f' => self.put(0x0c),
                b'0'..=b'7' => Escape::Octal(b - b'0', 1),
                b'\r' => Escape::Cr,
                b'\n' => Escape::None,
                other => self.put(other),
            },
            Escape::Cr => {
                if b == b'\n' {
                    Escape::None
                } else {
                    return self.literal_plain(b, depth);
                }
            }
            Escape::Octal(v, n) => match b {
                b'0'..=b'7' if n < 3 => {
                    let v = v.wrapping_mul(8).wrapping_add(b - b'0');
                    if n + 1 == 3 {
                        self.put(v)
                    } else {
                        Escape::Octal(v, n + 1)
                    }
                }
                _ => {
                    self.push(v);
                    self.state = State::Literal {
                        depth,
                        escape: Escape::None,
                    };
                    return self.literal_plain(b, depth);
                }
            },
            Escape::None => {
                if b == b'\\' {
                    Escape::Start
                } else {
                    match b {
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                return self.finish();
                            }
                        }
                        _ => {}
                    }
                    self.push(b);
                    Escape::None
                }
            }
        };
        self.state = State::Literal {
            depth,
            escape: next,
        };
        None
    }

    fn literal_plain(&mut self, b: u8, depth: u32) -> Option<Found> {
        self.state = State::Literal {
            depth,
            escape: Escape::None,
        };
        self.literal(b)
    }

    fn put(&mut self, b: u8) -> Escape {
        self.push(b);
        Escape::None
    }
}

/// A PDF text string as text: UTF-16BE or UTF-8 after their byte-order marks, else
/// PDFDocEncoding.
fn decode(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        let units = rest.chunks(2).map(|p| {
            u16::from_be_bytes([
                p.first().copied().unwrap_or(0),
                p.get(1).copied().unwrap_or(0),
            ])
        });
        return char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect();
    }
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return String::from_utf8_lossy(rest).into_owned();
    }
    bytes
        .iter()
        .map(|&b| Base::PdfDoc.char(b).unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(data: &[u8]) -> Vec<Found> {
        let mut w = DocStrings::default();
        data.iter().filter_map(|&b| w.feed(b)).collect()
    }

    fn text(s: &str) -> Found {
        Found::Text(s.to_string())
    }

    #[test]
    fn the_strings_of_the_keys_are_captured_and_decoded() {
        let data = b"<< /Title <FEFF673A5BC6> /Author (J\\374rgen \\(x\\)) /Producer (skip) >>\n\
                     << /Contents(line\\\n2\\101) /V<FEFF 0041> /T (name) /Dest [1 0 R] >>";
        assert_eq!(
            strings(data),
            vec![text("机密"), text("Jürgen (x)"), text("line2A"), text("A")]
        );
    }

    #[test]
    fn dictionaries_and_names_after_a_key_are_not_strings() {
        assert_eq!(
            strings(b"/Contents << /Length 5 >> /Title /Name (x)"),
            vec![]
        );
        assert_eq!(strings(b"/V 12 (not this)"), vec![]);
    }

    #[test]
    fn a_string_longer_than_the_cap_is_reported() {
        let mut data = b"/Title (".to_vec();
        data.extend(std::iter::repeat_n(b'a', MAX_STRING + 1));
        data.push(b')');
        assert_eq!(strings(&data), vec![Found::TooLong]);
    }
}
