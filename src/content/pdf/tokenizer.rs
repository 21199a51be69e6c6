//! The file-level tokenizer: PDF object syntax split into tokens one byte at a time
//! (comments and strings passed over as a parser does), and the nesting of arrays and
//! dictionaries followed over those tokens to find a CID (Type0) font without a /ToUnicode map.

use super::lexical::{hex_value, is_regular};
use super::{MAX_NAME, MAX_NESTING, unreadable};
use crate::core::reason::Refusal;

/// A name (#xx decoded) or a bare word, up to `MAX_NAME` bytes; longer ones match nothing.
#[derive(Debug, Clone, Copy)]
pub(super) struct Short {
    buf: [u8; MAX_NAME],
    len: u8,
    long: bool,
}

impl Short {
    const EMPTY: Short = Short {
        buf: [0; MAX_NAME],
        len: 0,
        long: false,
    };

    fn push(&mut self, b: u8) {
        let len = usize::from(self.len);
        if len < MAX_NAME {
            self.buf[len] = b;
            self.len += 1;
        } else {
            self.long = true;
        }
    }

    pub(super) fn is(&self, s: &[u8]) -> bool {
        !self.long && &self.buf[..usize::from(self.len)] == s
    }
}

/// One token of PDF object syntax; strings and numbers are not kept.
#[derive(Debug, Clone, Copy)]
pub(super) enum Tok {
    DictOpen,
    DictClose,
    ArrayOpen,
    ArrayClose,
    Str,
    Name(Short),
    Word(Short),
}

/// Where the tokenizer stands in the syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syn {
    Ground,
    Comment,
    Literal,
    Escape,
    Hex,
    Lt,
    Gt,
    Word,
    Name,
    /// After `#` in a name.
    Hash1,
    /// After `#` and one hex digit in a name.
    Hash2,
}

/// Splits PDF object syntax into tokens, one byte at a time: comments, literal strings
/// (balanced parentheses, backslash escapes) and hex strings are passed over as a parser does.
#[derive(Debug)]
pub(super) struct Tokenizer {
    state: Syn,
    depth: u32,
    short: Short,
    high: u8,
}

/// The tokens one byte ends: at most two.
pub(super) type Toks = [Option<Tok>; 2];

impl Tokenizer {
    pub(super) fn new() -> Tokenizer {
        Tokenizer {
            state: Syn::Ground,
            depth: 0,
            short: Short::EMPTY,
            high: 0,
        }
    }

    /// Back to the ground state, a pending token dropped.
    pub(super) fn reset(&mut self) {
        self.state = Syn::Ground;
    }

    /// Feeds one byte; returns the tokens it ends (at most two).
    pub(super) fn feed(&mut self, b: u8) -> Toks {
        match self.state {
            Syn::Ground => [self.ground(b), None],
            Syn::Comment => {
                if b == b'\n' || b == b'\r' {
                    self.state = Syn::Ground;
                }
                [None, None]
            }
            Syn::Literal => {
                match b {
                    b'\\' => self.state = Syn::Escape,
                    b'(' => self.depth += 1,
                    b')' => {
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0 {
                            self.state = Syn::Ground;
                            return [Some(Tok::Str), None];
                        }
                    }
                    _ => {}
                }
                [None, None]
            }
            Syn::Escape => {
                self.state = Syn::Literal;
                [None, None]
            }
            Syn::Hex => {
                if b == b'>' {
                    self.state = Syn::Ground;
                    return [Some(Tok::Str), None];
                }
                [None, None]
            }
            Syn::Lt => {
                if b == b'<' {
                    self.state = Syn::Ground;
                    return [Some(Tok::DictOpen), None];
                }
                self.state = Syn::Hex;
                self.feed(b)
            }
            Syn::Gt => {
                self.state = Syn::Ground;
                if b == b'>' {
                    return [Some(Tok::DictClose), None];
                }
                [self.ground(b), None]
            }
            Syn::Word => {
                if is_regular(b) {
                    self.short.push(b);
                    return [None, None];
                }
                self.state = Syn::Ground;
                [Some(Tok::Word(self.short)), self.ground(b)]
            }
            Syn::Hash1 => {
                if let Some(v) = hex_value(b) {
                    self.high = v;
                    self.state = Syn::Hash2;
                    return [None, None];
                }
                self.short.push(b'#');
                self.state = Syn::Name;
                self.feed(b)
            }
            Syn::Hash2 => {
                self.state = Syn::Name;
                if let Some(v) = hex_value(b) {
                    self.short.push(self.high << 4 | v);
                    return [None, None];
                }
                self.short.push(b'#');
                self.short.push(b"0123456789ABCDEF"[usize::from(self.high)]);
                self.feed(b)
            }
            Syn::Name => {
                if b == b'#' {
                    self.state = Syn::Hash1;
                    return [None, None];
                }
                if is_regular(b) {
                    self.short.push(b);
                    return [None, None];
                }
                self.state = Syn::Ground;
                [Some(Tok::Name(self.short)), self.ground(b)]
            }
        }
    }

    fn ground(&mut self, b: u8) -> Option<Tok> {
        match b {
            b'(' => {
                self.state = Syn::Literal;
                self.depth = 1;
                None
            }
            b'<' => {
                self.state = Syn::Lt;
                None
            }
            b'>' => {
                self.state = Syn::Gt;
                None
            }
            b'[' => Some(Tok::ArrayOpen),
            b']' => Some(Tok::ArrayClose),
            b'/' => {
                self.state = Syn::Name;
                self.short = Short::EMPTY;
                None
            }
            b'%' => {
                self.state = Syn::Comment;
                None
            }
            _ if !is_regular(b) => None,
            _ => {
                self.state = Syn::Word;
                self.short = Short::EMPTY;
                self.short.push(b);
                None
            }
        }
    }

    /// The token pending at the end of the data, if any.
    pub(super) fn finish(&mut self) -> Option<Tok> {
        let state = std::mem::replace(&mut self.state, Syn::Ground);
        match state {
            Syn::Word => Some(Tok::Word(self.short)),
            Syn::Name | Syn::Hash1 | Syn::Hash2 => Some(Tok::Name(self.short)),
            _ => None,
        }
    }
}

/// One open array or dictionary, as far as the font check needs it.
#[derive(Debug, Clone, Copy, Default)]
struct Frame {
    dict: bool,
    /// A key has been read; its value comes next.
    value_next: bool,
    /// The key just read is /Subtype.
    subtype_key: bool,
    /// /Subtype /Type0: a composite (CID) font.
    type0: bool,
    /// Has a /ToUnicode key.
    to_unicode: bool,
}

/// Follows the nesting of arrays and dictionaries in a token stream, and notes a Type0 (CID)
/// font dictionary without a /ToUnicode map.
#[derive(Debug, Default)]
pub(super) struct Frames {
    stack: Vec<Frame>,
    /// Levels opened beyond `MAX_NESTING`.
    deep: usize,
    pub(super) cid_without_map: bool,
}

impl Frames {
    pub(super) fn clear(&mut self) {
        self.stack.clear();
        self.deep = 0;
    }

    pub(super) fn depth(&self) -> usize {
        self.stack.len() + self.deep
    }

    fn value_done(&mut self) {
        if let Some(frame) = self.stack.last_mut() {
            frame.value_next = false;
            frame.subtype_key = false;
        }
    }

    /// Takes one token; true when it closes an outermost dictionary.
    pub(super) fn token(&mut self, tok: &Tok) -> bool {
        match tok {
            Tok::DictOpen | Tok::ArrayOpen => {
                self.value_done();
                if self.stack.len() < MAX_NESTING && self.deep == 0 {
                    self.stack.push(Frame {
                        dict: matches!(tok, Tok::DictOpen),
                        ..Frame::default()
                    });
                } else {
                    self.deep += 1;
                }
            }
            Tok::DictClose | Tok::ArrayClose => {
                if self.deep > 0 {
                    self.deep -= 1;
                } else if let Some(frame) = self.stack.pop() {
                    if frame.dict && frame.type0 && !frame.to_unicode {
                        self.cid_without_map = true;
                    }
                    return frame.dict && self.stack.is_empty();
                }
            }
            Tok::Name(name) => {
                if let Some(frame) = self.stack.last_mut().filter(|f| f.dict) {
                    if frame.value_next {
                        if frame.subtype_key && name.is(b"Type0") {
                            frame.type0 = true;
                        }
                        frame.value_next = false;
                        frame.subtype_key = false;
                    } else {
                        frame.value_next = true;
                        frame.subtype_key = name.is(b"Subtype");
                        if name.is(b"ToUnicode") {
                            frame.to_unicode = true;
                        }
                    }
                }
            }
            Tok::Str | Tok::Word(_) => self.value_done(),
        }
        false
    }
}

/// The refusal for a CID font without a /ToUnicode map: its text cannot be read.
pub(super) fn cid_refusal() -> Refusal {
    unreadable("PDF uses a CID (Type0) font without a /ToUnicode map: its text cannot be read")
}

#[cfg(test)]
mod tests {
    use super::super::testing::{PAGE, catalog, deflate, pdf, reason, scan};
    use crate::core::reason::Reason;

    #[test]
    fn a_cid_font_without_a_unicode_map_is_refused_when_text_is_read() {
        let font = "<< /Type /Font /Subtype /Type0 /BaseFont /ABCDEF+SimSun /Encoding /Identity-H /DescendantFonts [5 0 R] >>";
        let doc = pdf(&[catalog(), (font, None), ("<< >>", Some(PAGE))]);
        assert_eq!(reason(&doc, false, true), Some(Reason::ContentUnreadable));
        assert_eq!(reason(&doc, true, false), None);
        // Nested in a resource dictionary, or inside an object stream.
        let resources = format!("<< /Font << /F1 {font} >> >>");
        let doc = pdf(&[catalog(), (&resources, None)]);
        assert_eq!(reason(&doc, false, true), Some(Reason::ContentUnreadable));
        let packed = deflate(format!("5 0 {font}").as_bytes());
        let doc = pdf(&[
            catalog(),
            (
                "<< /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode >>",
                Some(&packed),
            ),
        ]);
        assert_eq!(reason(&doc, false, true), Some(Reason::ContentUnreadable));
        // With a /ToUnicode map, or a simple font, it passes.
        let mapped = font.replace(" >>", " /ToUnicode 6 0 R >>");
        let doc = pdf(&[catalog(), (&mapped, None), ("<< >>", Some(PAGE))]);
        assert_eq!(scan(&doc, true), (Ok(()), vec!["Hello secret".to_owned()]));
        let simple =
            "<< /Type /Font /Subtype /TrueType /BaseFont /Arial /Encoding /WinAnsiEncoding >>";
        let doc = pdf(&[catalog(), (simple, None)]);
        assert_eq!(reason(&doc, true, true), None);
    }
}
