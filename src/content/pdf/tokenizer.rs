//! The file-level tokenizer: PDF object syntax split into tokens one byte at a time
//! (comments and strings passed over as a parser does), and the nesting of arrays and
//! dictionaries followed over those tokens.

use super::lexical::{hex_value, is_regular};
use super::{MAX_NAME, MAX_NESTING};

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

    /// Its bytes, unless it was too long to keep.
    pub(super) fn bytes(&self) -> Option<&[u8]> {
        (!self.long).then(|| &self.buf[..usize::from(self.len)])
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
    Name,
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
                [Some(Tok::Name), self.ground(b)]
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
            Syn::Name | Syn::Hash1 | Syn::Hash2 => Some(Tok::Name),
            _ => None,
        }
    }
}

/// One open array or dictionary.
#[derive(Debug, Clone, Copy, Default)]
struct Frame {
    dict: bool,
}

/// Follows the nesting of arrays and dictionaries in a token stream.
#[derive(Debug, Default)]
pub(super) struct Frames {
    stack: Vec<Frame>,
    /// Levels opened beyond `MAX_NESTING`.
    deep: usize,
}

impl Frames {
    pub(super) fn clear(&mut self) {
        self.stack.clear();
        self.deep = 0;
    }

    pub(super) fn depth(&self) -> usize {
        self.stack.len() + self.deep
    }

    /// Takes one token; true when it closes an outermost dictionary.
    pub(super) fn token(&mut self, tok: &Tok) -> bool {
        match tok {
            Tok::DictOpen | Tok::ArrayOpen => {
                if self.stack.len() < MAX_NESTING && self.deep == 0 {
                    self.stack.push(Frame {
                        dict: matches!(tok, Tok::DictOpen),
                    });
                } else {
                    self.deep += 1;
                }
            }
            Tok::DictClose | Tok::ArrayClose => {
                if self.deep > 0 {
                    self.deep -= 1;
                } else if let Some(frame) = self.stack.pop() {
                    return frame.dict && self.stack.is_empty();
                }
            }
            Tok::Name | Tok::Str | Tok::Word(_) => {}
        }
        false
    }
}
