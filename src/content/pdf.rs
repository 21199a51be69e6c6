//! PDF: active content (JavaScript, launch actions, embedded files, rich media, XFA) and the
//! text shown by content streams, read in one pass over bounded chunks. Nothing is executed
//! and no object graph is built.
//!
//! ```text
//!  bytes ─► names (#xx decoded) ─► active?                 (every byte outside streams)
//!    └─► tokens (strings, comments, dictionaries skipped as a parser does)
//!          └─ `stream` right after an object's dictionary ─► filters, capped
//!               (Flate, LZW, ASCIIHex, ASCII85, RunLength; PNG and TIFF predictors)
//!                  ├─► names ─► active?        (object streams, other non-image streams)
//!                  ├─► tokens ─► CID font without /ToUnicode?   (object streams)
//!                  └─► Tj TJ ' " ─► lines, cut pieces overlapping ─► sink   (any stream)
//! ```
//!
//! A stream ends at its direct /Length when `endstream` follows there, else at the first
//! `endstream`. An object stream is one labelled /ObjStm or carrying /N and /First, whatever
//! else it claims. For active content a well-formed image stream is skipped unread, and a
//! malformed image has its raw bytes searched for names. Text is read from every stream that
//! can be decoded (the dictionary of a content stream is not to be trusted), strictly from
//! those that look like content. Dictionaries, top-level and in object streams, are followed
//! for CID fonts without a /ToUnicode map. A `>> stream` the tokens do not accept (in a
//! string or a comment, after a stream ended early) is still decoded on the side, so that a
//! parser that reads the file otherwise cannot be shown an object stream this one missed.
//! Memory: one read chunk, a tail of recent bytes, one stream dictionary, a few decode
//! buffers and a line of text; a decoded stream is never held whole.

use crate::content::{LineSink, Scan};
use crate::core::reason::{Reason, Refusal};
use flate2::{Decompress, FlushDecompress, Status};
use std::io::{self, Read};

/// Bytes read from the input at a time.
const CHUNK: usize = 1 << 20;

/// The header `%PDF-` must start within this many bytes.
const HEADER_WINDOW: usize = 1024;

/// Most bytes taken out of one filter of one stream.
const STREAM_CAP: u64 = 64 << 20;

/// A filter expanding more than this many times is a bomb: it is stopped.
const BOMB_RATIO: u64 = 1000;

/// The ratio check applies once a filter has put out this many bytes.
const BOMB_FLOOR: u64 = 1 << 20;

/// Bytes kept before a `stream` keyword, and the longest stream dictionary read.
const RECENT_CAP: usize = 64 * 1024;

/// Longest piece of a line of text handed to the sink at once, in bytes of UTF-8.
const MAX_LINE: usize = 64 * 1024;

/// Characters a cut piece of a line carries into the next, so that no match is split.
const OVERLAP: usize = 256;

/// Longest string operand kept, in bytes.
const MAX_STRING: usize = 64 * 1024;

/// Most operands kept before an operator.
const MAX_OPERANDS: usize = 16 * 1024;

/// Most bytes of string operands kept before an operator.
const MAX_OPERAND_BYTES: usize = 1 << 20;

/// Longest name kept (longer names match nothing).
const MAX_NAME: usize = 40;

/// Deepest nesting of arrays and dictionaries followed.
const MAX_NESTING: usize = 64;

/// A direct /Length up to this many bytes is checked against the `endstream` after it.
const VERIFY_MAX: usize = CHUNK / 2;

/// Longest predictor row undone, in bytes.
const MAX_ROW: usize = 1 << 20;

/// Input bytes a byte-wise filter decodes before handing its output on.
const SLICE: usize = 256;

/// Bytes of dictionaries read for side streams, on top of four times the top-level bytes.
const SIDE_WORK: u64 = 64 << 20;

/// Names that make a PDF active, and what they mean.
const ACTIVE: &[(&[u8], &str)] = &[
    (b"JavaScript", "JavaScript"),
    (b"JS", "JavaScript"),
    (b"Launch", "a launch action"),
    (b"EmbeddedFile", "an embedded file"),
    (b"EmbeddedFiles", "embedded files"),
    (b"RichMedia", "rich media"),
    (b"XFA", "an XFA form"),
    (b"GoToE", "an action into an embedded file"),
];

/// What `scan_pdf` refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdfOptions {
    /// Refuse active content (JavaScript, launch actions, embedded files, rich media, XFA).
    pub refuse_active: bool,
    /// The caller reads the text: refuse (ContentUnreadable) a PDF whose text cannot be read
    /// whole — a content stream that cannot be decoded or is cut by a cap, a CID (Type0) font
    /// without a /ToUnicode map — instead of passing part of it.
    pub read_text: bool,
}

fn unreadable(detail: impl Into<String>) -> Refusal {
    Refusal::new(Reason::ContentUnreadable, detail)
}

fn is_white(b: u8) -> bool {
    matches!(b, 0 | b'\t' | b'\n' | 0x0c | b'\r' | b' ')
}

fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

fn is_regular(b: u8) -> bool {
    !is_white(b) && !is_delimiter(b)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut at = 0;
    while at + needle.len() <= hay.len() {
        let offset = hay[at..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)?;
        at += offset;
        if &hay[at + 1..at + needle.len()] == rest {
            return Some(at);
        }
        at += 1;
    }
    None
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > hay.len() {
        return None;
    }
    (0..=hay.len() - needle.len())
        .rev()
        .find(|&at| &hay[at..at + needle.len()] == needle)
}

/// Where a stream that should end after `len` bytes does end: just past `endstream`, when it
/// follows (after at most 8 bytes of white space).
fn endstream_at(rest: &[u8], len: usize) -> Option<usize> {
    let mut at = len;
    while at < rest.len() && at - len < 8 && is_white(rest[at]) {
        at += 1;
    }
    rest.get(at..)?
        .starts_with(b"endstream")
        .then_some(at + b"endstream".len())
}

/// Finds names (`/Name`, with `#xx` escapes decoded) in a byte stream fed one byte at a time.
#[derive(Debug, Default)]
struct Names {
    in_name: bool,
    /// 0: no escape; 1: after `#`; 2: after `#` and one hex digit.
    escape: u8,
    high: u8,
    name: Vec<u8>,
    long: bool,
    done: Vec<u8>,
}

impl Names {
    /// Feeds one byte; true when a name has just ended (read it with `last`).
    fn feed(&mut self, b: u8) -> bool {
        let mut ended = false;
        if self.in_name {
            match self.escape {
                1 => {
                    if let Some(v) = hex_value(b) {
                        self.high = v;
                        self.escape = 2;
                        return false;
                    }
                    self.escape = 0;
                    self.push(b'#');
                }
                2 => {
                    self.escape = 0;
                    if let Some(v) = hex_value(b) {
                        self.push(self.high << 4 | v);
                        return false;
                    }
                    self.push(b'#');
                    self.push(b"0123456789ABCDEF"[usize::from(self.high)]);
                }
                _ => {}
            }
            if b == b'#' {
                self.escape = 1;
                return false;
            }
            if is_regular(b) {
                self.push(b);
                return false;
            }
            self.in_name = false;
            self.done.clear();
            if !self.long {
                self.done.extend_from_slice(&self.name);
            }
            ended = true;
        }
        if b == b'/' {
            self.in_name = true;
            self.escape = 0;
            self.name.clear();
            self.long = false;
        }
        ended
    }

    fn push(&mut self, b: u8) {
        if self.name.len() < MAX_NAME {
            self.name.push(b);
        } else {
            self.long = true;
        }
    }

    fn last(&self) -> &[u8] {
        &self.done
    }

    /// Feeds every byte; a refusal on the first active name.
    fn scan(&mut self, data: &[u8]) -> Result<(), Refusal> {
        for &b in data {
            if self.feed(b) {
                check_active(self.last())?;
            }
        }
        Ok(())
    }

    /// Ends a name that runs to the end of the data.
    fn finish(&mut self) -> Result<(), Refusal> {
        if self.feed(b' ') {
            check_active(self.last())?;
        }
        Ok(())
    }
}

fn check_active(name: &[u8]) -> Result<(), Refusal> {
    match ACTIVE.iter().find(|(active, _)| *active == name) {
        Some((_, what)) => Err(Refusal::new(
            Reason::ActiveContent,
            format!("PDF carries {what} (/{})", String::from_utf8_lossy(name)),
        )),
        None => Ok(()),
    }
}

/// A name (#xx decoded) or a bare word, up to `MAX_NAME` bytes; longer ones match nothing.
#[derive(Debug, Clone, Copy)]
struct Short {
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

    fn is(&self, s: &[u8]) -> bool {
        !self.long && &self.buf[..usize::from(self.len)] == s
    }
}

/// One token of PDF object syntax; strings and numbers are not kept.
#[derive(Debug, Clone, Copy)]
enum Tok {
    DictOpen,
    DictClose,
    ArrayOpen,
    ArrayClose,
    Str,
    Name(Short),
    Word(Short),
}

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
struct Tokenizer {
    state: Syn,
    depth: u32,
    short: Short,
    high: u8,
}

type Toks = [Option<Tok>; 2];

impl Tokenizer {
    fn new() -> Tokenizer {
        Tokenizer {
            state: Syn::Ground,
            depth: 0,
            short: Short::EMPTY,
            high: 0,
        }
    }

    /// Back to the ground state, a pending token dropped.
    fn reset(&mut self) {
        self.state = Syn::Ground;
    }

    /// Feeds one byte; returns the tokens it ends (at most two).
    fn feed(&mut self, b: u8) -> Toks {
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
    fn finish(&mut self) -> Option<Tok> {
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
struct Frames {
    stack: Vec<Frame>,
    /// Levels opened beyond `MAX_NESTING`.
    deep: usize,
    cid_without_map: bool,
}

impl Frames {
    fn clear(&mut self) {
        self.stack.clear();
        self.deep = 0;
    }

    fn depth(&self) -> usize {
        self.stack.len() + self.deep
    }

    fn value_done(&mut self) {
        if let Some(frame) = self.stack.last_mut() {
            frame.value_next = false;
            frame.subtype_key = false;
        }
    }

    /// Takes one token; true when it closes an outermost dictionary.
    fn token(&mut self, tok: &Tok) -> bool {
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

fn cid_refusal() -> Refusal {
    unreadable("PDF uses a CID (Type0) font without a /ToUnicode map: its text cannot be read")
}

/// A PDF object, as far as a stream dictionary needs it.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Bool,
    Int(i64),
    Real,
    Str,
    Name(Vec<u8>),
    Ref,
    Array(Vec<Value>),
    Dict(Vec<(Vec<u8>, Value)>),
}

/// Parses one PDF object from a byte slice (a captured stream dictionary).
struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    /// The object that makes up the whole of `s` (white space and comments around it aside).
    fn whole(s: &[u8]) -> Option<Value> {
        let mut p = Parser { s, at: 0 };
        let value = p.value(0)?;
        p.skip_white();
        (p.at == s.len()).then_some(value)
    }

    fn skip_white(&mut self) {
        while let Some(&b) = self.s.get(self.at) {
            if is_white(b) {
                self.at += 1;
            } else if b == b'%' {
                while self
                    .s
                    .get(self.at)
                    .is_some_and(|&b| b != b'\n' && b != b'\r')
                {
                    self.at += 1;
                }
            } else {
                break;
            }
        }
    }

    fn word(&mut self) -> &[u8] {
        let start = self.at;
        while self.s.get(self.at).is_some_and(|&b| is_regular(b)) {
            self.at += 1;
        }
        &self.s[start..self.at]
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_NESTING {
            return None;
        }
        self.skip_white();
        let b = *self.s.get(self.at)?;
        match b {
            b'<' if self.s.get(self.at + 1) == Some(&b'<') => {
                self.at += 2;
                let mut entries = Vec::new();
                loop {
                    self.skip_white();
                    if self.s[self.at..].starts_with(b">>") {
                        self.at += 2;
                        return Some(Value::Dict(entries));
                    }
                    let Value::Name(key) = self.value(depth + 1)? else {
                        return None;
                    };
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                }
            }
            b'<' => {
                let end = self.s[self.at..].iter().position(|&b| b == b'>')?;
                self.at += end + 1;
                Some(Value::Str)
            }
            b'(' => {
                let mut nest = 0u32;
                while let Some(&b) = self.s.get(self.at) {
                    self.at += 1;
                    match b {
                        b'\\' => self.at += 1,
                        b'(' => nest += 1,
                        b')' => {
                            nest -= 1;
                            if nest == 0 {
                                return Some(Value::Str);
                            }
                        }
                        _ => {}
                    }
                }
                None
            }
            b'[' => {
                self.at += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_white();
                    if self.s.get(self.at) == Some(&b']') {
                        self.at += 1;
                        return Some(Value::Array(items));
                    }
                    items.push(self.value(depth + 1)?);
                }
            }
            b'/' => {
                self.at += 1;
                let raw = self.word();
                let mut name = Vec::with_capacity(raw.len());
                let mut i = 0;
                while i < raw.len() {
                    let decoded = (raw[i] == b'#')
                        .then(|| {
                            Some(hex_value(*raw.get(i + 1)?)? << 4 | hex_value(*raw.get(i + 2)?)?)
                        })
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
                Some(Value::Name(name))
            }
            _ if is_regular(b) => {
                let word = self.word().to_vec();
                match word.as_slice() {
                    b"true" | b"false" => return Some(Value::Bool),
                    b"null" => return Some(Value::Null),
                    _ => {}
                }
                let text = std::str::from_utf8(&word).ok()?;
                if let Ok(n) = text.parse::<i64>() {
                    // `n g R` is a reference.
                    let back = self.at;
                    self.skip_white();
                    let generation = self.word().to_vec();
                    self.skip_white();
                    let r = self.word().to_vec();
                    if n >= 0
                        && !generation.is_empty()
                        && generation.iter().all(u8::is_ascii_digit)
                        && r == b"R"
                    {
                        return Some(Value::Ref);
                    }
                    self.at = back;
                    return Some(Value::Int(n));
                }
                let numeric = text
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b"+-.".contains(&b));
                (numeric && text.bytes().any(|b| b.is_ascii_digit())).then_some(Value::Real)
            }
            _ => None,
        }
    }
}

/// A decoding filter this scanner applies, or an image filter it never applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilterKind {
    Flate,
    Lzw,
    AsciiHex,
    Ascii85,
    RunLength,
    /// DCT, JPX, JBIG2, CCITT: image data, never decoded.
    Image,
}

/// A predictor to undo after a Flate or LZW filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Predictor {
    /// 2 (TIFF) or 10-15 (PNG).
    kind: i64,
    /// Bytes per pixel (at least 1).
    pixel: usize,
    /// Bytes per row, without the PNG tag byte.
    row: usize,
}

/// One filter of a stream's chain, with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Filter {
    kind: FilterKind,
    predictor: Option<Predictor>,
    early_change: bool,
}

/// What a stream dictionary says about the stream.
#[derive(Debug)]
struct StreamInfo {
    object_stream: bool,
    /// Has /Subtype /Image.
    image: bool,
    /// An image whose dictionary is well-formed: only /Subtype /Image, /Type absent or
    /// /XObject, a direct chain of known filters.
    plain_image: bool,
    /// By its dictionary, a stream that holds no page text (a font program, metadata, an
    /// embedded file, an ICC profile, a function, a shading, a CMap): its text is still read,
    /// but only shown text makes a failure to decode it a refusal.
    aside: bool,
    /// The direct /Length.
    length: Option<usize>,
    /// The filter chain, or why it cannot be followed.
    filters: Result<Vec<Filter>, String>,
}

fn name_of(value: &Value) -> Option<&[u8]> {
    match value {
        Value::Name(n) => Some(n),
        _ => None,
    }
}

fn filter_kind(name: &[u8]) -> Result<FilterKind, String> {
    Ok(match name {
        b"FlateDecode" | b"Fl" => FilterKind::Flate,
        b"LZWDecode" | b"LZW" => FilterKind::Lzw,
        b"ASCIIHexDecode" | b"AHx" => FilterKind::AsciiHex,
        b"ASCII85Decode" | b"A85" => FilterKind::Ascii85,
        b"RunLengthDecode" | b"RL" => FilterKind::RunLength,
        b"DCTDecode" | b"DCT" | b"JPXDecode" | b"JBIG2Decode" | b"CCITTFaxDecode" | b"CCF" => {
            FilterKind::Image
        }
        other => {
            return Err(format!(
                "the /{} filter",
                String::from_utf8_lossy(&other[..other.len().min(MAX_NAME)])
            ));
        }
    })
}

/// The parameters of one filter from its /DecodeParms dictionary (or null).
fn filter_of(kind: FilterKind, parms: Option<&Value>) -> Result<Filter, String> {
    let mut filter = Filter {
        kind,
        predictor: None,
        early_change: true,
    };
    let entries = match parms {
        None | Some(Value::Null) => return Ok(filter),
        Some(Value::Dict(entries)) => entries,
        Some(Value::Ref) => return Err("an indirect /DecodeParms".into()),
        Some(_) => return Err("a malformed /DecodeParms".into()),
    };
    let get = |key: &[u8], default: i64| -> Result<i64, String> {
        match entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v) {
            None => Ok(default),
            Some(Value::Int(n)) => Ok(*n),
            Some(Value::Ref) => Err("an indirect decode parameter".into()),
            Some(_) => Err("a malformed decode parameter".into()),
        }
    };
    let predictor = get(b"Predictor", 1)?;
    let colors = get(b"Colors", 1)?;
    let bits = get(b"BitsPerComponent", 8)?;
    let columns = get(b"Columns", 1)?;
    filter.early_change = get(b"EarlyChange", 1)? != 0;
    if predictor <= 1 || !matches!(kind, FilterKind::Flate | FilterKind::Lzw) {
        return Ok(filter);
    }
    let supported = predictor == 2 && bits == 8 || (10..=15).contains(&predictor);
    if !supported
        || !(1..=32).contains(&colors)
        || !matches!(bits, 1 | 2 | 4 | 8 | 16)
        || columns < 1
    {
        return Err(format!(
            "predictor {predictor} ({colors} colours, {bits} bits)"
        ));
    }
    let bits_per_pixel = (colors * bits) as u64;
    let row = (columns as u64).saturating_mul(bits_per_pixel).div_ceil(8);
    if row > MAX_ROW as u64 {
        return Err(format!("a predictor row of {row} bytes"));
    }
    filter.predictor = Some(Predictor {
        kind: predictor,
        pixel: bits_per_pixel.div_ceil(8) as usize,
        row: row as usize,
    });
    Ok(filter)
}

/// The filter chain of a stream dictionary's entries.
fn filters_of(entries: &[(Vec<u8>, Value)]) -> Result<Vec<Filter>, String> {
    let all = |key: &[u8], short: &[u8]| -> Vec<&Value> {
        entries
            .iter()
            .filter(|(k, _)| k == key || k == short)
            .map(|(_, v)| v)
            .collect()
    };
    let filter = all(b"Filter", b"F");
    let parms = all(b"DecodeParms", b"DP");
    // /F is also a file specification (the data in another file): not decoded here.
    let filter: Vec<&Value> = filter
        .into_iter()
        .filter(|v| !matches!(v, Value::Str | Value::Dict(_)))
        .collect();
    if filter.len() > 1 || parms.len() > 1 {
        return Err("a duplicate /Filter or /DecodeParms".into());
    }
    let names: Vec<&[u8]> = match filter.first() {
        None => return Ok(Vec::new()),
        Some(Value::Name(n)) => vec![n.as_slice()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| name_of(v).ok_or_else(|| "a malformed /Filter".to_string()))
            .collect::<Result<_, _>>()?,
        Some(Value::Ref) => return Err("an indirect /Filter".into()),
        Some(_) => return Err("a malformed /Filter".into()),
    };
    let parms = parms.first().copied();
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let p = match parms {
                Some(Value::Array(items)) => items.get(i),
                other => other,
            };
            filter_of(filter_kind(name)?, p)
        })
        .collect()
}

impl StreamInfo {
    fn of(dict: Option<&Value>) -> StreamInfo {
        let Some(Value::Dict(entries)) = dict else {
            return StreamInfo {
                object_stream: false,
                image: false,
                plain_image: false,
                aside: false,
                length: None,
                filters: Err("a stream dictionary that cannot be parsed".into()),
            };
        };
        let values = |key: &'static [u8]| {
            entries
                .iter()
                .filter(move |(k, _)| k == key)
                .map(|(_, v)| v)
        };
        let types: Vec<&Value> = values(b"Type").collect();
        let subtypes: Vec<&Value> = values(b"Subtype").collect();
        let is = |v: &&Value, n: &[u8]| name_of(v) == Some(n);
        let has = |key: &[u8]| entries.iter().any(|(k, _)| k == key);
        // A parser finds object streams through the cross-reference data and needs only
        // /N and /First: either makes an object stream here, whatever else it claims.
        let object_stream = types.iter().any(|v| is(v, b"ObjStm")) || (has(b"N") && has(b"First"));
        let xref = types.iter().any(|v| is(v, b"XRef"));
        let untyped = types.is_empty() && subtypes.is_empty();
        // A thumbnail is an image without /Type or /Subtype.
        let image = subtypes.iter().any(|v| is(v, b"Image"))
            || (untyped && has(b"Width") && has(b"Height"));
        let filters = filters_of(entries);
        let plain_image = image
            && !object_stream
            && !xref
            && types.iter().all(|v| is(v, b"XObject"))
            && !subtypes.is_empty()
            && subtypes.iter().all(|v| is(v, b"Image"))
            && filters.is_ok();
        let aside = xref
            || types
                .iter()
                .any(|v| is(v, b"Metadata") || is(v, b"EmbeddedFile") || is(v, b"CMap"))
            || subtypes.iter().any(|v| {
                is(v, b"XML") || is(v, b"Type1C") || is(v, b"CIDFontType0C") || is(v, b"OpenType")
            })
            || [
                &b"Length1"[..],
                b"Length2",
                b"Length3",
                b"N",
                b"FunctionType",
                b"ShadingType",
            ]
            .iter()
            .any(|key| has(key));
        let lengths: Vec<&Value> = values(b"Length").collect();
        let length = match lengths.as_slice() {
            [Value::Int(n)] => usize::try_from(*n).ok(),
            _ => None,
        };
        StreamInfo {
            object_stream,
            image,
            plain_image,
            aside,
            length,
            filters,
        }
    }
}

/// How a filter stage stopped, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Stop {
    #[default]
    Running,
    /// The filter's end (end of the zlib stream, end-of-data marker).
    Ended,
    /// Undecodable data.
    Error,
    /// The per-stream cap or the expansion ratio.
    Cut,
}

/// LZW decoding state (9 to 12-bit codes, as PDF writes them).
#[derive(Debug)]
struct Lzw {
    early: u16,
    bits: u32,
    nbits: u32,
    width: u32,
    next: u16,
    previous: Option<u16>,
    prefix: Vec<u16>,
    suffix: Vec<u8>,
    first: Vec<u8>,
    scratch: Vec<u8>,
}

impl Lzw {
    fn new(early_change: bool) -> Lzw {
        let mut lzw = Lzw {
            early: u16::from(early_change),
            bits: 0,
            nbits: 0,
            width: 9,
            next: 258,
            previous: None,
            prefix: vec![0; 4096],
            suffix: vec![0; 4096],
            first: vec![0; 4096],
            scratch: Vec::with_capacity(4096),
        };
        for code in 0..256u16 {
            lzw.suffix[usize::from(code)] = code as u8;
            lzw.first[usize::from(code)] = code as u8;
            lzw.prefix[usize::from(code)] = u16::MAX;
        }
        lzw
    }

    /// Appends the bytes of `code` to `out`.
    fn emit(&mut self, code: u16, out: &mut Vec<u8>) {
        self.scratch.clear();
        let mut c = code;
        while c != u16::MAX && self.scratch.len() < 4096 {
            self.scratch.push(self.suffix[usize::from(c)]);
            c = self.prefix[usize::from(c)];
        }
        out.extend(self.scratch.iter().rev());
    }

    fn add(&mut self, prefix: u16, byte: u8) {
        if self.next < 4096 {
            let at = usize::from(self.next);
            self.prefix[at] = prefix;
            self.suffix[at] = byte;
            self.first[at] = self.first[usize::from(prefix)];
            self.next += 1;
            if u32::from(self.next + self.early) >= 1 << self.width && self.width < 12 {
                self.width += 1;
            }
        }
    }

    fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Stop {
        for &b in input {
            self.bits = self.bits << 8 | u32::from(b);
            self.nbits += 8;
            while self.nbits >= self.width {
                let code =
                    ((self.bits >> (self.nbits - self.width)) & ((1 << self.width) - 1)) as u16;
                self.nbits -= self.width;
                match code {
                    256 => {
                        self.width = 9;
                        self.next = 258;
                        self.previous = None;
                    }
                    257 => return Stop::Ended,
                    _ => {
                        let known = code < 256 || (code >= 258 && code < self.next);
                        match self.previous {
                            Some(p) if known => {
                                self.emit(code, out);
                                self.add(p, self.first[usize::from(code)]);
                            }
                            Some(p) if code == self.next => {
                                let byte = self.first[usize::from(p)];
                                self.emit(p, out);
                                out.push(byte);
                                self.add(p, byte);
                            }
                            None if known => self.emit(code, out),
                            _ => return Stop::Error,
                        }
                        self.previous = Some(code);
                    }
                }
            }
        }
        Stop::Running
    }
}

/// The work of one filter stage.
#[derive(Debug)]
enum Step {
    Flate(Box<Decompress>),
    Lzw(Box<Lzw>),
    AsciiHex {
        high: Option<u8>,
    },
    Ascii85 {
        group: [u8; 5],
        n: usize,
        tilde: bool,
    },
    RunLength {
        /// Literal bytes still to copy, or the count of a repeat waiting for its byte.
        literal: usize,
        repeat: usize,
    },
    Png {
        predictor: Predictor,
        row: Vec<u8>,
        previous: Vec<u8>,
        current: Vec<u8>,
    },
    Tiff {
        predictor: Predictor,
        row: Vec<u8>,
    },
}

/// One stage of a filter chain, with its own output accounting.
#[derive(Debug)]
struct Stage {
    step: Step,
    out: Vec<u8>,
    total_in: u64,
    total_out: u64,
    stop: Stop,
}

/// Where a stage hands its output: the next stage, or the stream's consumers.
type Next<'n> = dyn FnMut(&[u8]) -> Result<(), Refusal> + 'n;

/// Counts a stage's input and output; cuts it at the per-stream cap or the expansion ratio.
fn account(stop: &mut Stop, total_in: &mut u64, total_out: &mut u64, taken: usize, made: usize) {
    *total_in = total_in.saturating_add(taken as u64);
    *total_out = total_out.saturating_add(made as u64);
    if *total_out > STREAM_CAP
        || (*total_out >= BOMB_FLOOR && *total_out > BOMB_RATIO.saturating_mul((*total_in).max(1)))
    {
        *stop = Stop::Cut;
    }
}

/// The PNG Paeth predictor.
fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let estimate = i16::from(a) + i16::from(b) - i16::from(c);
    let (da, db, dc) = (
        (estimate - i16::from(a)).abs(),
        (estimate - i16::from(b)).abs(),
        (estimate - i16::from(c)).abs(),
    );
    if da <= db && da <= dc {
        a
    } else if db <= dc {
        b
    } else {
        c
    }
}

fn a85_group(group: &[u8; 5], n: usize, out: &mut Vec<u8>) -> bool {
    let mut value: u64 = 0;
    for (i, &digit) in group.iter().enumerate() {
        value = value * 85 + u64::from(if i < n { digit } else { 84 });
    }
    if value > u64::from(u32::MAX) {
        return false;
    }
    out.extend_from_slice(&(value as u32).to_be_bytes()[..n - 1]);
    true
}

impl Stage {
    fn new(step: Step) -> Stage {
        Stage {
            step,
            out: Vec::new(),
            total_in: 0,
            total_out: 0,
            stop: Stop::Running,
        }
    }

    /// The stages that decode `filters`, predictors included; `None` if one is an image
    /// filter.
    fn chain(filters: &[Filter]) -> Option<Vec<Stage>> {
        let mut stages = Vec::new();
        for filter in filters {
            stages.push(Stage::new(match filter.kind {
                FilterKind::Image => return None,
                FilterKind::Flate => Step::Flate(Box::new(Decompress::new(true))),
                FilterKind::Lzw => Step::Lzw(Box::new(Lzw::new(filter.early_change))),
                FilterKind::AsciiHex => Step::AsciiHex { high: None },
                FilterKind::Ascii85 => Step::Ascii85 {
                    group: [0; 5],
                    n: 0,
                    tilde: false,
                },
                FilterKind::RunLength => Step::RunLength {
                    literal: 0,
                    repeat: 0,
                },
            }));
            if let Some(predictor) = filter.predictor {
                stages.push(Stage::new(if predictor.kind == 2 {
                    Step::Tiff {
                        predictor,
                        row: Vec::new(),
                    }
                } else {
                    Step::Png {
                        predictor,
                        row: Vec::new(),
                        previous: vec![0; predictor.row],
                        current: vec![0; predictor.row],
                    }
                }));
            }
        }
        Some(stages)
    }

    /// Decodes `input`, handing the output to `next`.
    fn push(&mut self, input: &[u8], next: &mut Next<'_>) -> Result<(), Refusal> {
        if self.stop != Stop::Running {
            return Ok(());
        }
        if let Step::Flate(decompress) = &mut self.step {
            let decompress: &mut Decompress = decompress;
            if self.out.len() < 64 * 1024 {
                self.out.resize(64 * 1024, 0);
            }
            let mut input = input;
            while self.stop == Stop::Running && !input.is_empty() {
                let before_in = decompress.total_in();
                let before_out = decompress.total_out();
                let status = decompress.decompress(input, &mut self.out, FlushDecompress::None);
                let taken = (decompress.total_in() - before_in) as usize;
                let made = (decompress.total_out() - before_out) as usize;
                input = &input[taken.min(input.len())..];
                let stop = match status {
                    Ok(Status::StreamEnd) => Stop::Ended,
                    Err(_) => Stop::Error,
                    Ok(_) if taken == 0 && made == 0 => break,
                    Ok(_) => Stop::Running,
                };
                account(
                    &mut self.stop,
                    &mut self.total_in,
                    &mut self.total_out,
                    taken,
                    made,
                );
                if stop != Stop::Running && self.stop != Stop::Cut {
                    self.stop = stop;
                }
                next(&self.out[..made])?;
            }
            return Ok(());
        }
        for slice in input.chunks(SLICE) {
            self.out.clear();
            let stop = self.decode(slice);
            let made = self.out.len();
            account(
                &mut self.stop,
                &mut self.total_in,
                &mut self.total_out,
                slice.len(),
                made,
            );
            if stop != Stop::Running && self.stop != Stop::Cut {
                self.stop = stop;
            }
            next(&self.out)?;
            if self.stop != Stop::Running {
                break;
            }
        }
        Ok(())
    }

    /// Decodes one slice of input into `self.out` (every step but Flate).
    fn decode(&mut self, input: &[u8]) -> Stop {
        let out = &mut self.out;
        match &mut self.step {
            Step::Flate(_) => Stop::Error,
            Step::Lzw(lzw) => lzw.decode(input, out),
            Step::AsciiHex { high } => {
                for &b in input {
                    if b == b'>' {
                        if let Some(h) = high.take() {
                            out.push(h << 4);
                        }
                        return Stop::Ended;
                    }
                    match (hex_value(b), *high) {
                        (Some(v), Some(h)) => {
                            out.push(h << 4 | v);
                            *high = None;
                        }
                        (Some(v), None) => *high = Some(v),
                        (None, _) if is_white(b) => {}
                        (None, _) => return Stop::Error,
                    }
                }
                Stop::Running
            }
            Step::Ascii85 { group, n, tilde } => {
                for &b in input {
                    if *tilde {
                        return if b == b'>' { Stop::Ended } else { Stop::Error };
                    }
                    match b {
                        b'~' => {
                            *tilde = true;
                            if *n == 1 || (*n > 1 && !a85_group(group, *n, out)) {
                                return Stop::Error;
                            }
                            *n = 0;
                        }
                        b'z' if *n == 0 => out.extend_from_slice(&[0; 4]),
                        b'!'..=b'u' => {
                            group[*n] = b - b'!';
                            *n += 1;
                            if *n == 5 {
                                if !a85_group(group, 5, out) {
                                    return Stop::Error;
                                }
                                *n = 0;
                            }
                        }
                        _ if is_white(b) => {}
                        _ => return Stop::Error,
                    }
                }
                Stop::Running
            }
            Step::RunLength { literal, repeat } => {
                for &b in input {
                    if *literal > 0 {
                        out.push(b);
                        *literal -= 1;
                    } else if *repeat > 0 {
                        out.extend(std::iter::repeat_n(b, *repeat));
                        *repeat = 0;
                    } else if b < 128 {
                        *literal = usize::from(b) + 1;
                    } else if b == 128 {
                        return Stop::Ended;
                    } else {
                        *repeat = 257 - usize::from(b);
                    }
                }
                Stop::Running
            }
            Step::Png {
                predictor,
                row,
                previous,
                current,
            } => {
                for &b in input {
                    row.push(b);
                    if row.len() < predictor.row + 1 {
                        continue;
                    }
                    let p = predictor.pixel;
                    for i in 0..predictor.row {
                        let x = row[i + 1];
                        let a = if i >= p { current[i - p] } else { 0 };
                        let up = previous[i];
                        let c = if i >= p { previous[i - p] } else { 0 };
                        current[i] = match row[0] {
                            0 => x,
                            1 => x.wrapping_add(a),
                            2 => x.wrapping_add(up),
                            3 => x.wrapping_add(((u16::from(a) + u16::from(up)) / 2) as u8),
                            4 => x.wrapping_add(paeth(a, up, c)),
                            _ => return Stop::Error,
                        };
                    }
                    out.extend_from_slice(current);
                    std::mem::swap(previous, current);
                    row.clear();
                }
                Stop::Running
            }
            Step::Tiff { predictor, row } => {
                for &b in input {
                    let i = row.len();
                    let left = if i >= predictor.pixel {
                        row[i - predictor.pixel]
                    } else {
                        0
                    };
                    row.push(b.wrapping_add(left));
                    if row.len() == predictor.row {
                        out.extend_from_slice(row);
                        row.clear();
                    }
                }
                Stop::Running
            }
        }
    }

    /// Hands on what is pending at the end of the data (a last partial group or row).
    fn flush(&mut self, next: &mut Next<'_>) -> Result<(), Refusal> {
        if self.stop != Stop::Running {
            return Ok(());
        }
        self.out.clear();
        match &mut self.step {
            Step::AsciiHex { high } => {
                if let Some(h) = high.take() {
                    self.out.push(h << 4);
                }
            }
            Step::Ascii85 { group, n, .. } => {
                if *n > 1 && !a85_group(group, *n, &mut self.out) {
                    self.stop = Stop::Error;
                }
                *n = 0;
            }
            Step::Tiff { row, .. } => self.out.append(row),
            _ => {}
        }
        if self.out.is_empty() {
            return Ok(());
        }
        next(&self.out)
    }
}

/// Hands `input` through `stages` in turn, and what comes out of the last to `out`.
fn run(stages: &mut [Stage], input: &[u8], out: &mut Next<'_>) -> Result<(), Refusal> {
    match stages.split_first_mut() {
        None => out(input),
        Some((first, rest)) => first.push(input, &mut |piece| run(rest, piece, out)),
    }
}

/// Flushes every stage in turn at the end of the data.
fn run_flush(stages: &mut [Stage], out: &mut Next<'_>) -> Result<(), Refusal> {
    if let Some((first, rest)) = stages.split_first_mut() {
        first.flush(&mut |piece| run(rest, piece, out))?;
        run_flush(rest, out)?;
    }
    Ok(())
}

/// One item before a content-stream operator.
#[derive(Debug)]
enum Operand {
    Str(Vec<u8>),
    Number(f64),
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    Ground,
    Token,
    Comment,
    Literal,
    Escape,
    Octal,
    HexOrDict,
    Hex,
    InlineImage,
}

/// Reads the operators of a content stream and gathers the text they show into lines: text
/// shown on one baseline is one line, across BT…ET blocks; a line too long for the sink is
/// handed on in pieces that overlap by `OVERLAP` characters.
#[derive(Debug)]
struct Lexer {
    state: Lex,
    depth: u32,
    octal: u32,
    octal_digits: u8,
    hex_high: Option<u8>,
    token: Vec<u8>,
    string: Vec<u8>,
    operands: Vec<Operand>,
    operand_bytes: usize,
    image_tail: u32,
    line: String,
    /// Text that could not be kept (a string or an operand list over its cap).
    lost: bool,
    /// The baseline of the text position, in the units of the text matrix's origin.
    y: f64,
    /// The vertical scale of the text matrix (its `d`).
    scale: f64,
    /// The font size set by Tf.
    size: f64,
    /// The leading set by TL or TD.
    leading: f64,
    /// The baseline of the current line, once text has been placed.
    line_y: Option<f64>,
    /// Text that cannot be kept is a refusal (a content stream), not passed over.
    strict: bool,
    /// Some text has been shown.
    shown: bool,
}

impl Lexer {
    fn new(strict: bool) -> Lexer {
        Lexer {
            state: Lex::Ground,
            depth: 0,
            octal: 0,
            octal_digits: 0,
            hex_high: None,
            token: Vec::new(),
            string: Vec::new(),
            operands: Vec::new(),
            operand_bytes: 0,
            image_tail: 0,
            line: String::new(),
            lost: false,
            y: 0.0,
            scale: 1.0,
            size: 0.0,
            leading: 0.0,
            line_y: None,
            strict,
            shown: false,
        }
    }

    fn feed(&mut self, data: &[u8], sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        for &b in data {
            self.byte(b, sink)?;
        }
        Ok(())
    }

    fn string_byte(&mut self, b: u8) {
        if self.string.len() < MAX_STRING {
            self.string.push(b);
        } else {
            self.lost = true;
        }
    }

    fn operand(&mut self, operand: Operand) {
        if let Operand::Str(s) = &operand {
            if self.operand_bytes + s.len() > MAX_OPERAND_BYTES {
                self.lost = true;
                return;
            }
            self.operand_bytes += s.len();
        }
        if self.operands.len() < MAX_OPERANDS {
            self.operands.push(operand);
        } else {
            self.lost = true;
        }
    }

    fn clear_operands(&mut self) {
        self.operands.clear();
        self.operand_bytes = 0;
    }

    fn byte(&mut self, b: u8, sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        match self.state {
            Lex::Comment => {
                if b == b'\n' || b == b'\r' {
                    self.state = Lex::Ground;
                }
                Ok(())
            }
            Lex::Literal => {
                match b {
                    b'\\' => self.state = Lex::Escape,
                    b'(' => {
                        self.depth += 1;
                        self.string_byte(b);
                    }
                    b')' => {
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0 {
                            let s = std::mem::take(&mut self.string);
                            self.operand(Operand::Str(s));
                            self.state = Lex::Ground;
                        } else {
                            self.string_byte(b);
                        }
                    }
                    _ => self.string_byte(b),
                }
                Ok(())
            }
            Lex::Escape => {
                self.state = Lex::Literal;
                match b {
                    b'n' => self.string_byte(b'\n'),
                    b'r' => self.string_byte(b'\r'),
                    b't' => self.string_byte(b'\t'),
                    b'b' => self.string_byte(8),
                    b'f' => self.string_byte(12),
                    b'0'..=b'7' => {
                        self.octal = u32::from(b - b'0');
                        self.octal_digits = 1;
                        self.state = Lex::Octal;
                    }
                    b'\n' | b'\r' => {}
                    _ => self.string_byte(b),
                }
                Ok(())
            }
            Lex::Octal => {
                if (b'0'..=b'7').contains(&b) && self.octal_digits < 3 {
                    self.octal = self.octal * 8 + u32::from(b - b'0');
                    self.octal_digits += 1;
                    return Ok(());
                }
                self.string_byte((self.octal & 0xff) as u8);
                self.state = Lex::Literal;
                self.byte(b, sink)
            }
            Lex::HexOrDict => {
                if b == b'<' {
                    self.state = Lex::Ground;
                    return Ok(());
                }
                self.state = Lex::Hex;
                self.hex_high = None;
                self.string.clear();
                self.byte(b, sink)
            }
            Lex::Hex => {
                if b == b'>' {
                    if let Some(high) = self.hex_high.take() {
                        self.string_byte(high << 4);
                    }
                    let s = std::mem::take(&mut self.string);
                    self.operand(Operand::Str(s));
                    self.state = Lex::Ground;
                } else if let Some(v) = hex_value(b) {
                    match self.hex_high.take() {
                        Some(high) => self.string_byte(high << 4 | v),
                        None => self.hex_high = Some(v),
                    }
                }
                Ok(())
            }
            Lex::InlineImage => {
                // Skip binary image data up to whitespace, `EI`, whitespace.
                self.image_tail = self.image_tail << 8 | u32::from(b);
                let [w1, e, i, w2] = self.image_tail.to_be_bytes();
                if is_white(w1) && e == b'E' && i == b'I' && (is_white(w2) || is_delimiter(w2)) {
                    self.state = Lex::Ground;
                    self.clear_operands();
                }
                Ok(())
            }
            Lex::Token => {
                if is_regular(b) {
                    if self.token.len() < 64 {
                        self.token.push(b);
                    }
                    return Ok(());
                }
                self.state = Lex::Ground;
                self.end_token(sink)?;
                self.byte(b, sink)
            }
            Lex::Ground => {
                match b {
                    b'(' => {
                        self.state = Lex::Literal;
                        self.depth = 1;
                        self.string.clear();
                    }
                    b'<' => self.state = Lex::HexOrDict,
                    b'%' => self.state = Lex::Comment,
                    b'/' => {
                        self.state = Lex::Token;
                        self.token.clear();
                        self.token.push(b);
                    }
                    b'[' | b']' | b'>' | b'{' | b'}' | b')' => {}
                    _ if is_white(b) => {}
                    _ => {
                        self.state = Lex::Token;
                        self.token.clear();
                        self.token.push(b);
                    }
                }
                Ok(())
            }
        }
    }

    fn end_token(&mut self, sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        let token = std::mem::take(&mut self.token);
        let result = self.token_done(&token, sink);
        self.token = token;
        self.token.clear();
        result
    }

    fn token_done(&mut self, token: &[u8], sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        if token.first() == Some(&b'/') {
            self.operand(Operand::Other);
            return Ok(());
        }
        if let Some(n) = std::str::from_utf8(token)
            .ok()
            .filter(|t| t.bytes().all(|b| b.is_ascii_digit() || b"+-.".contains(&b)))
            .and_then(|t| t.parse::<f64>().ok())
        {
            self.operand(Operand::Number(n));
            return Ok(());
        }
        if self.lost && self.strict {
            return Err(unreadable(
                "PDF text string or operator too long to read whole",
            ));
        }
        self.lost = false;
        let operands = std::mem::take(&mut self.operands);
        let result = self.operator(token, &operands, sink);
        self.operands = operands;
        self.clear_operands();
        result
    }

    fn operator(
        &mut self,
        op: &[u8],
        operands: &[Operand],
        sink: &mut LineSink<'_>,
    ) -> Result<(), Refusal> {
        let last_string = || {
            operands.iter().rev().find_map(|o| match o {
                Operand::Str(s) => Some(s.as_slice()),
                _ => None,
            })
        };
        // The last `N` numbers, in order (missing ones are 0).
        let numbers = |n: usize| -> Vec<f64> {
            let all: Vec<f64> = operands
                .iter()
                .filter_map(|o| match o {
                    Operand::Number(v) => Some(*v),
                    _ => None,
                })
                .collect();
            let mut last = vec![0.0; n.saturating_sub(all.len())];
            last.extend_from_slice(&all[all.len().saturating_sub(n)..]);
            last
        };
        match op {
            b"Tj" => {
                if let Some(s) = last_string() {
                    self.show(s, sink)?;
                }
            }
            b"'" | b"\"" => {
                self.next_line(sink)?;
                if let Some(s) = last_string() {
                    self.show(s, sink)?;
                }
            }
            b"TJ" => {
                for operand in operands {
                    match operand {
                        Operand::Str(s) => self.show(s, sink)?,
                        Operand::Number(n) if *n < -200.0 => self.push(" ", sink)?,
                        _ => {}
                    }
                }
            }
            b"BT" => {
                self.y = 0.0;
                self.scale = 1.0;
            }
            b"Tf" => self.size = numbers(1)[0],
            b"TL" => self.leading = numbers(1)[0],
            b"T*" => self.next_line(sink)?,
            b"Td" | b"TD" => {
                let ty = numbers(2)[1];
                if op == b"TD" {
                    self.leading = -ty;
                }
                self.y += ty * self.scale;
                self.moved(sink)?;
            }
            b"Tm" => {
                let m = numbers(6);
                self.scale = if m[3] != 0.0 { m[3] } else { 1.0 };
                self.y = m[5];
                self.moved(sink)?;
            }
            b"ID" => {
                self.state = Lex::InlineImage;
                self.image_tail = 0x2020_2020;
            }
            _ => {}
        }
        Ok(())
    }

    /// T*: the next line, always a new line of text.
    fn next_line(&mut self, sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        self.y -= self.leading * self.scale;
        self.line_y = Some(self.y);
        self.flush(sink)
    }

    /// The text position moved: a new line when it moved down by more than a third of the font
    /// height, or up by more than the height (a new column); not for sub- and superscripts.
    fn moved(&mut self, sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        let height = (self.size * self.scale).abs();
        let height = if height > 0.0 { height } else { 1.0 };
        match self.line_y {
            Some(line_y) if self.y < line_y - height / 3.0 || self.y > line_y + height => {
                self.line_y = Some(self.y);
                self.flush(sink)
            }
            Some(_) => Ok(()),
            None => {
                self.line_y = Some(self.y);
                Ok(())
            }
        }
    }

    /// Adds the text of a string operand: UTF-16BE with a byte-order mark, else Latin-1.
    fn show(&mut self, s: &[u8], sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        let text: String = if let Some(utf16) = s.strip_prefix(&[0xfe, 0xff]) {
            let units = utf16
                .chunks(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]));
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .filter(|c| !c.is_control())
                .collect()
        } else {
            s.iter()
                .map(|&b| char::from(b))
                .filter(|c| !c.is_control())
                .collect()
        };
        self.shown |= !text.trim().is_empty();
        self.push(&text, sink)
    }

    fn push(&mut self, text: &str, sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        for c in text.chars() {
            if self.line.len() + c.len_utf8() > MAX_LINE {
                // A cut, not the end of a line: the next piece starts with the end of this one.
                let result = sink(&self.line);
                let keep = self
                    .line
                    .char_indices()
                    .rev()
                    .nth(OVERLAP - 1)
                    .map_or(0, |(at, _)| at);
                self.line.drain(..keep);
                result?;
            }
            self.line.push(c);
        }
        Ok(())
    }

    fn flush(&mut self, sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        if self.line.trim().is_empty() {
            self.line.clear();
            return Ok(());
        }
        let result = sink(&self.line);
        self.line.clear();
        result
    }

    fn finish(&mut self, sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        if self.state == Lex::Token {
            self.state = Lex::Ground;
            self.end_token(sink)?;
        }
        if self.lost && self.strict {
            return Err(unreadable(
                "PDF text string or operator too long to read whole",
            ));
        }
        self.flush(sink)
    }
}

/// How a failure to read a stream's text whole is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum TextMode {
    /// The text is not read.
    #[default]
    Off,
    /// A content stream: any failure (cut, undecodable, not to its end, a string too long)
    /// is a refusal.
    Strict,
    /// A stream that should hold no text (an image, a font, on the side): a failure is a
    /// refusal only once text has been shown from it.
    Loose,
}

/// What is done with the data of one stream.
#[derive(Debug, Default)]
struct StreamState {
    /// Decoding stages; none for raw bytes.
    stages: Vec<Stage>,
    /// Searches the (decoded) bytes for active names.
    names: Option<Names>,
    /// Reads the text of a content stream.
    lexer: Option<Lexer>,
    /// Reads the objects of an object stream for the font check.
    objects: Option<(Tokenizer, Frames)>,
    /// An object stream read for active content or fonts: it must decode to its end, uncut.
    strict_objects: bool,
    /// Whether a stream whose text is read must decode to its end, uncut.
    text: TextMode,
    /// Searches the raw bytes, before any decoding, for active names (a malformed image).
    raw_names: Option<Names>,
    /// Started on the side (a `>> stream` the tokens did not accept): a decode that fails
    /// before putting anything out is a false start, not a refusal.
    side: bool,
}

fn consume(
    names: &mut Option<Names>,
    lexer: &mut Option<Lexer>,
    objects: &mut Option<(Tokenizer, Frames)>,
    data: &[u8],
    sink: &mut LineSink<'_>,
) -> Result<(), Refusal> {
    if let Some(names) = names.as_mut() {
        names.scan(data)?;
    }
    if let Some((tokens, frames)) = objects.as_mut() {
        for &b in data {
            for tok in tokens.feed(b).into_iter().flatten() {
                frames.token(&tok);
            }
        }
        if frames.cid_without_map {
            return Err(cid_refusal());
        }
    }
    if let Some(lexer) = lexer.as_mut() {
        lexer.feed(data, sink)?;
    }
    Ok(())
}

impl StreamState {
    fn idle(&self) -> bool {
        self.names.is_none()
            && self.lexer.is_none()
            && self.objects.is_none()
            && self.raw_names.is_none()
    }

    fn feed(&mut self, data: &[u8], sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        if let Some(raw) = self.raw_names.as_mut() {
            raw.scan(data)?;
        }
        if self.names.is_none() && self.lexer.is_none() && self.objects.is_none() {
            return Ok(());
        }
        let StreamState {
            stages,
            names,
            lexer,
            objects,
            ..
        } = self;
        run(stages, data, &mut |piece| {
            consume(names, lexer, objects, piece, sink)
        })
    }

    fn finish(&mut self, sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        if let Some(raw) = self.raw_names.as_mut() {
            raw.finish()?;
        }
        if self.names.is_none() && self.lexer.is_none() && self.objects.is_none() {
            return Ok(());
        }
        let StreamState {
            stages,
            names,
            lexer,
            objects,
            ..
        } = self;
        run_flush(stages, &mut |piece| {
            consume(names, lexer, objects, piece, sink)
        })?;
        if let Some(names) = names.as_mut() {
            names.finish()?;
        }
        if let Some((tokens, frames)) = objects.as_mut() {
            if let Some(tok) = tokens.finish() {
                frames.token(&tok);
            }
            if frames.cid_without_map {
                return Err(cid_refusal());
            }
        }
        if let Some(lexer) = lexer.as_mut() {
            lexer.finish(sink)?;
        }
        let cut = stages.iter().any(|s| s.stop == Stop::Cut);
        let error = stages.iter().any(|s| s.stop == Stop::Error);
        let unfinished = stages
            .iter()
            .any(|s| matches!(s.step, Step::Flate(_)) && s.stop != Stop::Ended);
        let started = stages.first().is_none_or(|s| s.total_out > 0);
        let failed = cut || error || unfinished;
        if self.strict_objects && failed && (!self.side || started) {
            return Err(unreadable(if cut {
                "PDF object stream too large to inspect"
            } else {
                "PDF object stream cannot be decoded to its end"
            }));
        }
        let shown = lexer.as_ref().is_some_and(|lexer| lexer.shown);
        let text_failed = match self.text {
            TextMode::Off => false,
            TextMode::Strict => failed,
            TextMode::Loose => failed && shown,
        };
        if text_failed {
            return Err(unreadable(if cut {
                "PDF page text too large to read whole (per-stream cap or expansion limit)"
            } else {
                "PDF content stream cannot be decoded to its end"
            }));
        }
        Ok(())
    }
}

/// What comes between the `stream` keyword and the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lead {
    /// Nothing more.
    Data,
    /// A line feed, if any (after a carriage return).
    Lf,
    /// Spaces, then one end of line (the keyword was not followed by one).
    Line,
}

/// The stream being read.
#[derive(Debug)]
struct Open {
    state: StreamState,
    /// The direct /Length, still to be checked against the `endstream` after it.
    verify: Option<usize>,
    lead: Lead,
}

/// A stream decoded on the side of the top-level bytes.
#[derive(Debug)]
struct Side {
    state: StreamState,
    pending: Vec<u8>,
    skip_lf: bool,
}

/// The whole-file scanner.
struct Scanner<'s, 'a> {
    opts: PdfOptions,
    sink: &'s mut LineSink<'a>,
    /// Names in every byte outside streams, strings and comments included.
    names: Names,
    tokens: Tokenizer,
    frames: Frames,
    /// Between `obj` and `endobj`.
    in_object: bool,
    /// The last token closed the outermost dictionary of an object.
    after_dict: bool,
    /// The outermost dictionary of the current object, as read.
    capture: Vec<u8>,
    capturing: bool,
    capture_closing: bool,
    capture_long: bool,
    recent: Vec<u8>,
    roll: u64,
    objects: u64,
    stream: Option<Open>,
    side: Option<Side>,
    /// Top-level bytes read.
    top_bytes: u64,
    /// Bytes read looking for side-stream dictionaries.
    side_work: u64,
}

const fn word(s: &[u8; 6]) -> u64 {
    (s[0] as u64) << 40
        | (s[1] as u64) << 32
        | (s[2] as u64) << 24
        | (s[3] as u64) << 16
        | (s[4] as u64) << 8
        | s[5] as u64
}

const STREAM: u64 = word(b"stream");
const ENDOBJ: u64 = word(b"endobj");
const SIX: u64 = 0xffff_ffff_ffff;

impl Scanner<'_, '_> {
    /// Scans `data`; returns how many bytes were consumed (the rest comes again, with more).
    fn feed(&mut self, data: &[u8], eof: bool) -> Result<usize, Refusal> {
        let mut at = 0;
        while at < data.len() {
            let Some(open) = self.stream.as_mut() else {
                let b = data[at];
                at += 1;
                self.byte(b)?;
                continue;
            };
            match open.lead {
                Lead::Data => {}
                Lead::Lf => {
                    open.lead = Lead::Data;
                    if data[at] == b'\n' {
                        at += 1;
                    }
                    continue;
                }
                Lead::Line => {
                    match data[at] {
                        b' ' | b'\t' | 0 | 0x0c => at += 1,
                        b'\r' => {
                            open.lead = Lead::Lf;
                            at += 1;
                        }
                        b'\n' => {
                            open.lead = Lead::Data;
                            at += 1;
                        }
                        _ => open.lead = Lead::Data,
                    }
                    continue;
                }
            }
            let rest = &data[at..];
            if let Some(len) = open.verify {
                if rest.len() < len + b"endstream".len() + 8 && !eof {
                    return Ok(at);
                }
                open.verify = None;
                if let Some(end) = endstream_at(rest, len) {
                    open.state.feed(&rest[..len], self.sink)?;
                    self.end_stream()?;
                    at += end;
                    continue;
                }
            }
            match find(rest, b"endstream") {
                Some(end) => {
                    open.state.feed(&rest[..end], self.sink)?;
                    self.end_stream()?;
                    at += end + b"endstream".len();
                }
                None if eof => return Err(unreadable("PDF ends inside a stream")),
                None => {
                    let keep = rest.len().min(b"endstream".len() - 1);
                    let take = rest.len() - keep;
                    open.state.feed(&rest[..take], self.sink)?;
                    return Ok(at + take);
                }
            }
        }
        Ok(at)
    }

    fn end_stream(&mut self) -> Result<(), Refusal> {
        if let Some(mut open) = self.stream.take() {
            open.state.finish(self.sink)?;
        }
        self.recent.clear();
        self.roll = 0;
        self.tokens.reset();
        self.after_dict = false;
        self.capturing = false;
        Ok(())
    }

    fn byte(&mut self, b: u8) -> Result<(), Refusal> {
        self.top_bytes += 1;
        self.roll = self.roll << 8 | u64::from(b);
        if self.names.feed(b) {
            let name = self.names.last();
            if name == b"Encrypt" {
                return Err(unreadable("PDF is encrypted and cannot be inspected"));
            }
            if self.opts.refuse_active {
                check_active(name)?;
            }
        }
        if self.recent.len() >= RECENT_CAP {
            self.recent.drain(..RECENT_CAP / 2);
        }
        self.recent.push(b);
        if b == b'j' && self.roll & SIX == ENDOBJ {
            self.objects += 1;
        }
        if self.side.is_some() {
            self.side_byte(b)?;
        }
        let mut started = false;
        for tok in self.tokens.feed(b).into_iter().flatten() {
            if self.token(tok, b)? {
                started = true;
                break;
            }
        }
        if started {
            return Ok(());
        }
        if self.capturing {
            if self.capture.len() < RECENT_CAP {
                self.capture.push(b);
            } else {
                self.capture_long = true;
            }
            if self.capture_closing {
                self.capturing = false;
                self.capture_closing = false;
            }
        }
        if (b == b'\n' || b == b'\r')
            && (self.roll >> 8) & SIX == STREAM
            && !is_regular((self.roll >> 56) as u8)
            && self.side.is_none()
            && (self.opts.refuse_active || self.opts.read_text)
        {
            self.start_side(b)?;
        }
        Ok(())
    }

    /// Takes one top-level token; true when it starts a stream.
    fn token(&mut self, tok: Tok, b: u8) -> Result<bool, Refusal> {
        let depth_before = self.frames.depth();
        let closed_outer = self.frames.token(&tok);
        if self.opts.read_text && self.frames.cid_without_map {
            return Err(cid_refusal());
        }
        let after_dict = std::mem::replace(&mut self.after_dict, closed_outer);
        match tok {
            Tok::DictOpen if depth_before == 0 => {
                self.capture.clear();
                self.capture.push(b'<');
                self.capturing = true;
                self.capture_closing = false;
                self.capture_long = false;
            }
            Tok::DictClose if closed_outer => self.capture_closing = true,
            Tok::Word(w) if w.is(b"obj") || w.is(b"endobj") => {
                self.in_object = w.is(b"obj");
                self.frames.clear();
                self.capturing = false;
            }
            Tok::Word(w) if w.is(b"stream") && after_dict && self.in_object => {
                self.start_stream(b)?;
                return Ok(true);
            }
            _ => {}
        }
        Ok(false)
    }

    fn start_stream(&mut self, eol: u8) -> Result<(), Refusal> {
        self.end_side()?;
        if self.capture_long {
            return Err(unreadable("PDF stream dictionary longer than 64 KiB"));
        }
        let dict = Parser::whole(&self.capture);
        let info = StreamInfo::of(dict.as_ref());
        let state = self.plan(&info, false)?;
        self.stream = Some(Open {
            state,
            verify: info.length.filter(|&len| len <= VERIFY_MAX),
            lead: match eol {
                b'\n' => Lead::Data,
                b'\r' => Lead::Lf,
                _ => Lead::Line,
            },
        });
        self.tokens.reset();
        self.capturing = false;
        self.after_dict = false;
        Ok(())
    }

    /// What to do with a stream's data.
    fn plan(&self, info: &StreamInfo, side: bool) -> Result<StreamState, Refusal> {
        let PdfOptions {
            refuse_active,
            read_text,
        } = self.opts;
        let idle = StreamState::default();
        let chain = match &info.filters {
            Ok(filters) => Stage::chain(filters).ok_or_else(|| "an image filter".to_string()),
            Err(why) => Err(why.clone()),
        };
        if info.object_stream {
            if !refuse_active && !read_text {
                return Ok(idle);
            }
            let stages = match chain {
                Ok(stages) => stages,
                Err(_) if side && !refuse_active => return Ok(idle),
                Err(why) => {
                    return Err(unreadable(format!(
                        "PDF object stream uses {why}, which cannot be inspected"
                    )));
                }
            };
            // Its text is read too: a content stream may claim to be an object stream.
            return Ok(StreamState {
                stages,
                names: refuse_active.then(Names::default),
                objects: read_text.then(|| (Tokenizer::new(), Frames::default())),
                lexer: read_text.then(|| Lexer::new(false)),
                text: if read_text {
                    TextMode::Loose
                } else {
                    TextMode::Off
                },
                strict_objects: true,
                side,
                ..idle
            });
        }
        // Every other stream. Its text is read whatever its dictionary says (a viewer shows
        // a page's content stream whatever that says), strictly when it looks like content.
        let text = if !read_text {
            TextMode::Off
        } else if info.image || info.aside || side {
            TextMode::Loose
        } else {
            TextMode::Strict
        };
        let stages = match chain {
            Ok(stages) => Some(stages),
            Err(_) if side || info.image => None,
            Err(why) if refuse_active => {
                return Err(unreadable(format!(
                    "PDF stream uses {why}, which cannot be inspected for active content"
                )));
            }
            Err(why) if text == TextMode::Strict => {
                return Err(unreadable(format!(
                    "PDF content stream uses {why}: its text cannot be read"
                )));
            }
            Err(_) => None,
        };
        // A well-formed image is not searched for names: its data is no dictionary. The raw
        // bytes of a malformed one are (on the side they already are, as top-level bytes).
        let names = refuse_active && !info.image && stages.is_some();
        let raw_names = refuse_active && info.image && !info.plain_image && !side;
        let lexer = text != TextMode::Off && stages.is_some();
        Ok(StreamState {
            stages: if names || lexer {
                stages.unwrap_or_default()
            } else {
                Vec::new()
            },
            names: names.then(Names::default),
            raw_names: raw_names.then(Names::default),
            lexer: lexer.then(|| Lexer::new(text == TextMode::Strict)),
            text: if lexer { text } else { TextMode::Off },
            side,
            ..idle
        })
    }

    /// A `>> stream` the tokens did not accept: decoded on the side if its dictionary reads.
    fn start_side(&mut self, eol: u8) -> Result<(), Refusal> {
        let before = &self.recent[..self.recent.len().saturating_sub(7)];
        // Bounded work: a file made of `>> stream` lines is refused, not read for ever.
        self.side_work = self.side_work.saturating_add(9 * before.len() as u64);
        if self.side_work > SIDE_WORK.saturating_add(self.top_bytes.saturating_mul(4)) {
            return Err(unreadable(
                "PDF has too many stream keywords outside streams to inspect",
            ));
        }
        let from = rfind(before, b"obj").map_or(0, |at| at + 3);
        let dict = &before[from..];
        let end = dict
            .iter()
            .rposition(|&b| !is_white(b))
            .map_or(0, |at| at + 1);
        let dict = &dict[..end];
        if !dict.ends_with(b">>") {
            return Ok(());
        }
        // The outermost dictionary that reads to the end; a few tries at most.
        let value = (0..dict.len().saturating_sub(1))
            .filter(|&at| dict[at..].starts_with(b"<<"))
            .take(8)
            .find_map(|at| Parser::whole(&dict[at..]));
        if value.is_none() {
            return Ok(());
        }
        let info = StreamInfo::of(value.as_ref());
        let state = self.plan(&info, true)?;
        if !state.idle() {
            self.side = Some(Side {
                state,
                pending: Vec::new(),
                skip_lf: eol == b'\r',
            });
        }
        Ok(())
    }

    fn side_byte(&mut self, b: u8) -> Result<(), Refusal> {
        let Some(side) = self.side.as_mut() else {
            return Ok(());
        };
        if std::mem::take(&mut side.skip_lf) && b == b'\n' {
            return Ok(());
        }
        side.pending.push(b);
        if b == b'm' && side.pending.ends_with(b"endstream") {
            let len = side.pending.len() - b"endstream".len();
            side.pending.truncate(len);
            return self.end_side();
        }
        if side.pending.len() >= 64 * 1024 {
            let take = side.pending.len() - (b"endstream".len() - 1);
            side.state.feed(&side.pending[..take], self.sink)?;
            side.pending.drain(..take);
        }
        Ok(())
    }

    fn end_side(&mut self) -> Result<(), Refusal> {
        if let Some(mut side) = self.side.take() {
            side.state.feed(&side.pending, self.sink)?;
            side.state.finish(self.sink)?;
        }
        Ok(())
    }

    /// The end of the file.
    fn finish(&mut self) -> Result<(), Refusal> {
        if let Some(tok) = self.tokens.finish() {
            self.frames.token(&tok);
            if self.opts.read_text && self.frames.cid_without_map {
                return Err(cid_refusal());
            }
        }
        if self.names.feed(b' ') && self.opts.refuse_active {
            check_active(self.names.last())?;
        }
        self.end_side()?;
        if self.objects == 0 {
            return Err(unreadable("PDF holds no objects"));
        }
        Ok(())
    }
}

/// Reads a PDF in bounded chunks. If `refuse_active`, refuses with ActiveContent on
/// /JavaScript, /JS, /Launch, /EmbeddedFile(s), /RichMedia, /XFA, /GoToE — names compared
/// after decoding #xx escapes (so /J#61vaScript is caught) — found anywhere outside streams,
/// in object streams and other non-image streams once decoded (Flate, LZW, ASCIIHex,
/// ASCII85, RunLength, chained; PNG and TIFF predictors undone), or in the raw bytes of a
/// malformed image stream; an object stream or non-image stream it cannot decode (another
/// filter, another predictor, an indirect /Filter or /DecodeParms), cut by the per-stream cap
/// (64 MiB out of one filter, or an expansion over 1000 times) or not decoded to its end is
/// ContentUnreadable. A well-formed image stream (/Subtype /Image, known filters) is skipped.
/// If `read_text`, passes the text shown by Tj / TJ / ' / " (Latin-1, or UTF-16BE with a BOM;
/// hex strings too) in every stream it can decode — whatever the stream's dictionary claims,
/// as a viewer shows a page's content stream whatever that claims — to `sink`, one line per
/// baseline (BT…ET blocks on one baseline joined; a new line on T*, ' and ", or on Td / TD /
/// Tm moving down), lines longer than 64 KiB in pieces that overlap by 256 characters. A
/// content stream (by its dictionary) it cannot decode whole (another filter, cut by a cap,
/// not to its end, a string over 64 KiB), any other stream that showed text and was cut, or a
/// CID (Type0) font without /ToUnicode is ContentUnreadable. Nothing is executed.
/// Not a PDF (no %PDF- in the first 1 KiB), encrypted, truncated inside a stream or without
/// any object → ContentUnreadable.
pub fn scan_pdf(input: &mut dyn Read, opts: &PdfOptions, sink: &mut LineSink<'_>) -> Scan {
    let mut buf = vec![0u8; CHUNK];
    let mut filled = 0;
    while filled < HEADER_WINDOW {
        let n = read_some(input, &mut buf[filled..HEADER_WINDOW])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    if find(&buf[..filled], b"%PDF-").is_none() {
        return Ok(Err(unreadable("not a PDF: no %PDF- header")));
    }
    let mut scanner = Scanner {
        opts: *opts,
        sink,
        names: Names::default(),
        tokens: Tokenizer::new(),
        frames: Frames::default(),
        in_object: false,
        after_dict: false,
        capture: Vec::new(),
        capturing: false,
        capture_closing: false,
        capture_long: false,
        recent: Vec::with_capacity(RECENT_CAP),
        roll: 0,
        objects: 0,
        stream: None,
        side: None,
        top_bytes: 0,
        side_work: 0,
    };
    loop {
        let n = read_some(input, &mut buf[filled..])?;
        let eof = n == 0;
        filled += n;
        let consumed = match scanner.feed(&buf[..filled], eof) {
            Ok(consumed) => consumed,
            Err(refusal) => return Ok(Err(refusal)),
        };
        buf.copy_within(consumed..filled, 0);
        filled -= consumed;
        if eof {
            break;
        }
    }
    Ok(scanner.finish())
}

fn read_some(input: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match input.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Instant;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut w = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    /// Deflate in stored blocks: the data shows through as it is.
    fn stored(data: &[u8]) -> Vec<u8> {
        let mut w = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::none());
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn ascii85(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for group in data.chunks(4) {
            let mut word = [0u8; 4];
            word[..group.len()].copy_from_slice(group);
            let mut value = u32::from_be_bytes(word);
            let mut digits = [0u8; 5];
            for d in digits.iter_mut().rev() {
                *d = (value % 85) as u8 + b'!';
                value /= 85;
            }
            out.extend_from_slice(&digits[..group.len() + 1]);
        }
        out.extend_from_slice(b"~>");
        out
    }

    fn ascii_hex(data: &[u8]) -> Vec<u8> {
        let mut out: Vec<u8> = data
            .iter()
            .flat_map(|b| format!("{b:02X} ").into_bytes())
            .collect();
        out.push(b'>');
        out
    }

    /// LZW with literal codes only (a clear code every 200 codes keeps them 9 bits wide).
    fn lzw(data: &[u8]) -> Vec<u8> {
        let mut codes = vec![256u16];
        for (i, &b) in data.iter().enumerate() {
            if i > 0 && i % 200 == 0 {
                codes.push(256);
            }
            codes.push(u16::from(b));
        }
        codes.push(257);
        let (mut out, mut bits, mut n) = (Vec::new(), 0u32, 0u32);
        for code in codes {
            bits = bits << 9 | u32::from(code);
            n += 9;
            while n >= 8 {
                out.push((bits >> (n - 8)) as u8);
                n -= 8;
            }
        }
        if n > 0 {
            out.push((bits << (8 - n)) as u8);
        }
        out
    }

    /// PNG-filters rows of `columns` bytes (one byte a pixel), cycling through the five tags.
    fn png_rows(data: &[u8], columns: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut previous = vec![0u8; columns];
        for (r, row) in data.chunks(columns).enumerate() {
            let mut row = row.to_vec();
            row.resize(columns, 0);
            let tag = (r % 5) as u8;
            out.push(tag);
            for i in 0..columns {
                let a = if i > 0 { row[i - 1] } else { 0 };
                let b = previous[i];
                let c = if i > 0 { previous[i - 1] } else { 0 };
                let predicted = match tag {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                    _ => paeth(a, b, c),
                };
                out.push(row[i].wrapping_sub(predicted));
            }
            previous = row;
        }
        out
    }

    /// A PDF of the given objects (dictionary text, optional stream data); the xref is sloppy.
    fn pdf(objects: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
        for (i, (dict, data)) in objects.iter().enumerate() {
            write!(out, "{} 0 obj\n{dict}", i + 1).unwrap();
            if let Some(data) = data {
                write!(out, "\nstream\r\n").unwrap();
                out.extend_from_slice(data);
                out.extend_from_slice(b"\nendstream");
            }
            out.extend_from_slice(b"\nendobj\n");
        }
        out.extend_from_slice(
            b"xref\n0 1\n0000000000 65535 f \ntrailer\n<< /Root 1 0 R >>\nstartxref\n0\n%%EOF\n",
        );
        out
    }

    fn scan_with(data: &[u8], opts: PdfOptions) -> (Result<(), Refusal>, Vec<String>) {
        let mut lines = Vec::new();
        let mut sink = |line: &str| {
            lines.push(line.to_owned());
            Ok(())
        };
        let mut input = data;
        let verdict = scan_pdf(&mut input, &opts, &mut sink).expect("no I/O fault");
        (verdict, lines)
    }

    fn scan(data: &[u8], refuse_active: bool) -> (Result<(), Refusal>, Vec<String>) {
        scan_with(
            data,
            PdfOptions {
                refuse_active,
                read_text: true,
            },
        )
    }

    fn reason(data: &[u8], refuse_active: bool, read_text: bool) -> Option<Reason> {
        let opts = PdfOptions {
            refuse_active,
            read_text,
        };
        scan_with(data, opts).0.err().map(|r| r.reason)
    }

    const PAGE: &[u8] = b"BT /F1 12 Tf 72 712 Td (Hello secret) Tj ET";

    const HIDDEN: &[u8] =
        b"5 0 6 30 << /OpenAction 6 0 R >> << /S /JavaScript /JS (app.alert\\(1\\)) >>";

    fn catalog() -> (&'static str, Option<&'static [u8]>) {
        ("<< /Type /Catalog /Pages 2 0 R >>", None)
    }

    #[test]
    fn text_of_raw_and_compressed_content_streams() {
        let raw = pdf(&[
            catalog(),
            (&format!("<< /Length {} >>", PAGE.len()), Some(PAGE)),
        ]);
        assert_eq!(scan(&raw, true), (Ok(()), vec!["Hello secret".to_owned()]));
        let packed = deflate(PAGE);
        let dict = format!("<< /Length {} /Filter /FlateDecode >>", packed.len());
        let compressed = pdf(&[catalog(), (&dict, Some(&packed))]);
        assert_eq!(
            scan(&compressed, true),
            (Ok(()), vec!["Hello secret".to_owned()])
        );
        // Text is not read when the caller does not ask for it.
        let opts = PdfOptions {
            refuse_active: true,
            read_text: false,
        };
        assert_eq!(scan_with(&compressed, opts), (Ok(()), Vec::new()));
    }

    #[test]
    fn text_operators_strings_and_lines() {
        let content =
            br"BT (first) Tj T* [(Sec) -50 (ret) -400 (word)] TJ 0 -14 Td (third\051 \(x\) \101) Tj
<48656C6C6F> Tj 0 0 Td (same) Tj (line) ' ET
BT <FEFF673A5BC6> Tj ET
q BI /W 2 /H 2 ID \x00\x01(garbage) Tj EI Q
BT % a comment (not shown) Tj
(last) Tj ET";
        let doc = pdf(&[catalog(), ("<< >>", Some(content))]);
        let (verdict, lines) = scan(&doc, true);
        assert_eq!(verdict, Ok(()));
        assert_eq!(
            lines,
            [
                "first",
                "Secret word",
                "third) (x) AHellosame",
                "line机密last"
            ]
        );
    }

    #[test]
    fn text_blocks_on_one_baseline_make_one_line() {
        let content = b"BT /F1 12 Tf 1 0 0 1 72 700 Tm (Hel) Tj ET
BT /F1 12 Tf 1 0 0 1 90 700 Tm (lo ) Tj ET
BT /F1 12 Tf 1 0 0 1 110 700 Tm <FEFF673A> Tj ET BT 1 0 0 1 122 700 Tm <FEFF5BC6> Tj ET
BT /F1 12 Tf 1 0 0 1 72 686 Tm (H) Tj 0 -3 Td (2) Tj 0 3 Td (O x) Tj 0 4 Td (2) Tj ET
BT /F1 1 Tf 12 0 0 12 72 600 Tm (scaled) Tj 0 -1.2 Td (down) Tj ET
BT /F1 12 Tf 1 0 0 1 300 720 Tm (next column) Tj ET";
        let doc = pdf(&[catalog(), ("<< >>", Some(content))]);
        let (verdict, lines) = scan(&doc, false);
        assert_eq!(verdict, Ok(()));
        assert_eq!(
            lines,
            ["Hello 机密", "H2O x2", "scaled", "down", "next column"]
        );
    }

    #[test]
    fn text_is_read_whatever_the_stream_claims_to_be() {
        let packed = deflate(PAGE);
        for dict in [
            "<< /Type /XObject /Subtype /Image /Width 1 /Height 1 /Filter /FlateDecode >>",
            "<< /Type /Metadata /Subtype /XML /Filter /FlateDecode >>",
            "<< /Type /Foo /N 3 /Filter /FlateDecode >>",
            "<< /Width 1 /Height 1 /Filter /FlateDecode >>",
            "<< /N 1 /First 0 /Filter /FlateDecode >>",
            "<< /Length1 9 /Filter /FlateDecode >>",
        ] {
            let doc = pdf(&[catalog(), (dict, Some(&packed))]);
            assert_eq!(
                scan(&doc, true),
                (Ok(()), vec!["Hello secret".to_owned()]),
                "{dict}"
            );
        }
        // Such a stream cut short is refused once it has shown text, not before.
        let mut bomb = PAGE.to_vec();
        bomb.resize(8 << 20, b' ');
        let dict = "<< /Type /XObject /Subtype /Image /Filter /FlateDecode >>";
        let doc = pdf(&[catalog(), (dict, Some(&deflate(&bomb)))]);
        assert_eq!(reason(&doc, false, true), Some(Reason::ContentUnreadable));
        let blank = deflate(&vec![0u8; 8 << 20]);
        let doc = pdf(&[catalog(), (dict, Some(&blank))]);
        assert_eq!(reason(&doc, true, true), None);
        // A thumbnail (an image without /Type or /Subtype) is not refused.
        let dict = "<< /Width 8 /Height 8 /ColorSpace /DeviceRGB /Filter /DCTDecode >>";
        let doc = pdf(&[catalog(), (dict, Some(&[0xff, 0xd8, 0x00][..]))]);
        assert_eq!(reason(&doc, true, true), None);
    }

    #[test]
    fn cut_line_pieces_overlap() {
        let filler = "a".repeat(16_383);
        let mut content = b"BT /F1 12 Tf 72 700 Td ".to_vec();
        for _ in 0..4 {
            write!(content, "({filler}) Tj ").unwrap();
        }
        content.extend_from_slice(b"<FEFF673A5BC6> Tj (tail) Tj ET");
        let doc = pdf(&[catalog(), ("<< >>", Some(&content))]);
        let (verdict, lines) = scan(&doc, false);
        assert_eq!(verdict, Ok(()));
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.len() <= MAX_LINE));
        assert!(lines[0].ends_with('机'));
        assert!(lines[1].contains("机密"), "{}", &lines[1][..40]);
        assert_eq!(lines[1].chars().count(), OVERLAP + 1 + 4);
        assert!(lines[1].ends_with("密tail"));
    }

    #[test]
    fn javascript_is_refused_in_plain_and_escaped_names() {
        for action in [
            "<< /S /JavaScript /JS (app.alert(1)) >>",
            "<< /S /J#61vaScript /JS (x) >>",
            "<< /S /Launch /F (cmd.exe) >>",
            "<< /Type /EmbeddedFile >>",
            "<< /Names << /EmbeddedFiles 9 0 R >> >>",
            "<< /AcroForm << /XFA 9 0 R >> >>",
            "<< /Type/Annot/Subtype/RichMedia >>",
        ] {
            let doc = pdf(&[catalog(), (action, None)]);
            let (verdict, _) = scan(&doc, true);
            assert_eq!(
                verdict.unwrap_err().reason,
                Reason::ActiveContent,
                "{action}"
            );
            assert_eq!(scan(&doc, false).0, Ok(()), "{action}");
        }
        // At the very end of the file, with no delimiter after the name.
        let mut doc = pdf(&[catalog()]);
        doc.extend_from_slice(b"/JavaScript");
        assert_eq!(
            scan(&doc, true).0.unwrap_err().reason,
            Reason::ActiveContent
        );
        // Names that only look alike pass.
        let doc = pdf(&[catalog(), ("<< /JavaScripts 1 /JSX 2 /Jav#61 3 >>", None)]);
        assert_eq!(scan(&doc, true).0, Ok(()));
    }

    #[test]
    fn javascript_inside_a_compressed_object_stream_is_refused() {
        let packed = deflate(HIDDEN);
        let dict = format!(
            "<< /Type /ObjStm /N 2 /First 8 /Length {} /Filter /FlateDecode >>",
            packed.len()
        );
        let doc = pdf(&[catalog(), (&dict, Some(&packed))]);
        let (verdict, lines) = scan(&doc, true);
        assert_eq!(verdict.unwrap_err().reason, Reason::ActiveContent);
        assert!(lines.is_empty());
        assert_eq!(scan(&doc, false), (Ok(()), Vec::new()));
        // An object stream behind a filter that is not decoded cannot be inspected.
        let dict = "<< /Type /ObjStm /N 2 /First 8 /Filter [/CCITTFaxDecode] >>";
        let doc = pdf(&[catalog(), (dict, Some(b"3C3C3E3E>"))]);
        assert_eq!(reason(&doc, true, false), Some(Reason::ContentUnreadable));
    }

    #[test]
    fn a_stream_start_in_a_comment_or_string_hides_nothing() {
        let tail = "3 0 obj << /S /JavaScript /JS (app.alert(1)) >> endobj
4 0 obj << /Length 3 >> stream
abc
endstream endobj
trailer << /Root 1 0 R >>
%%EOF
";
        for trick in [
            "<< /Producer (x) >>\n% << /Subtype /Image /Filter /DCTDecode >> stream\n",
            "<< /Title (a >> /Filter /LZWDecode >> stream\n) >>\n",
            "<< /Title (\\) << /Subtype /Image >> stream\n) >>\n",
            "<< /Title <3E3E> /X (>>) >> % stream\n",
        ] {
            let doc = format!(
                "%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n2 0 obj\n{trick}endobj\n{tail}"
            );
            assert_eq!(
                reason(doc.as_bytes(), true, false),
                Some(Reason::ActiveContent),
                "{trick}"
            );
            assert_eq!(reason(doc.as_bytes(), false, true), None, "{trick}");
        }
    }

    #[test]
    fn object_streams_are_decoded_whatever_they_claim_to_be() {
        let packed = deflate(HIDDEN);
        for dict in [
            "<< /Subtype /Image /N 2 /First 8 /Filter /FlateDecode >>",
            "<< /Type /XObject /Subtype /Image /Width 9 /N 2 /First 8 /Filter /FlateDecode >>",
            "<< /Type /ObjStm /Subtype /Image /N 2 /First 8 /Filter /FlateDecode >>",
            "<< /Type /ObjStm /Type /XRef /N 2 /First 8 /Filter /FlateDecode >>",
            "<< /Type /XRef /Type /ObjStm /Subtype /Image /Filter /FlateDecode >>",
            "<< /Subtype /Image /Type /ObjStm /Width 1 /Height 1 /Filter /FlateDecode >>",
        ] {
            let doc = pdf(&[catalog(), (dict, Some(&packed))]);
            assert_eq!(
                reason(&doc, true, false),
                Some(Reason::ActiveContent),
                "{dict}"
            );
        }
    }

    #[test]
    fn filter_chains_and_predictors_are_undone() {
        type Encode = fn(&[u8]) -> Vec<u8>;
        let cases: [(&str, Encode); 6] = [
            ("/Filter [/FlateDecode /FlateDecode]", |d| {
                deflate(&deflate(d))
            }),
            ("/Filter [/A85 /Fl]", |d| ascii85(&deflate(d))),
            ("/Filter [/ASCIIHexDecode /FlateDecode]", |d| {
                ascii_hex(&deflate(d))
            }),
            ("/Filter /LZWDecode", lzw),
            (
                "/Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 7 >>",
                |d| deflate(&png_rows(d, 7)),
            ),
            (
                "/Filter [/LZW] /DecodeParms [<< /Predictor 15 /Columns 5 /EarlyChange 1 >>]",
                |d| lzw(&png_rows(d, 5)),
            ),
        ];
        for (filter, encode) in cases {
            let dict = format!("<< /Type /ObjStm /N 2 /First 8 {filter} >>");
            let doc = pdf(&[catalog(), (&dict, Some(&encode(HIDDEN)))]);
            assert_eq!(
                reason(&doc, true, false),
                Some(Reason::ActiveContent),
                "{filter}"
            );
            // The same chain over harmless objects passes.
            let clean = encode(b"5 0 << /Type /Font /Subtype /Type1 >>");
            let doc = pdf(&[catalog(), (&dict, Some(&clean))]);
            assert_eq!(reason(&doc, true, true), None, "{filter}");
        }
        // The LZW example of the PDF reference.
        let mut lzw = Lzw::new(true);
        let mut out = Vec::new();
        let stop = lzw.decode(
            &[0x80, 0x0B, 0x60, 0x50, 0x22, 0x0C, 0x0C, 0x85, 0x01],
            &mut out,
        );
        assert_eq!((stop, out.as_slice()), (Stop::Ended, &b"-----A---B"[..]));
    }

    #[test]
    fn streams_that_cannot_be_decoded_are_refused_when_they_matter() {
        let packed = deflate(HIDDEN);
        for dict in [
            "<< /Type /ObjStm /Filter 9 0 R >>",
            "<< /Type /ObjStm /Filter [/FlateDecode 9 0 R] >>",
            "<< /Type /ObjStm /Filter /FlateDecode /DecodeParms 9 0 R >>",
            "<< /Type /ObjStm /Filter /FlateDecode /DecodeParms << /Predictor 3 >> >>",
            "<< /Type /ObjStm /Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 9 0 R >> >>",
            "<< /Type /ObjStm /Filter /FlateDecode /Filter /FlateDecode >>",
            "<< /Type /ObjStm /Filter /Crypt >>",
            "<< /Type /XObject /Subtype /Form /Filter /Foo >>",
            "<< /Type /Metadata /Filter 7 0 R >>",
            "<< /Type /Foo /Filter /JBIG2Decode >>",
        ] {
            let doc = pdf(&[catalog(), (dict, Some(&packed))]);
            assert_eq!(
                reason(&doc, true, false),
                Some(Reason::ContentUnreadable),
                "{dict}"
            );
        }
        // A malformed image is not refused, but its raw bytes are searched.
        let mut image = vec![0u8; 1000];
        image[100..112].copy_from_slice(b"/JavaScript ");
        let dict = "<< /Subtype /Image /Filter 9 0 R >>";
        let doc = pdf(&[catalog(), (dict, Some(&image))]);
        assert_eq!(reason(&doc, true, false), Some(Reason::ActiveContent));
        let doc = pdf(&[catalog(), (dict, Some(&image[..50]))]);
        assert_eq!(reason(&doc, true, false), None);
        // A well-formed image is skipped, whatever its filters.
        let dict = "<< /Type /XObject /Subtype /Image /Filter [/FlateDecode /DCTDecode] >>";
        let doc = pdf(&[catalog(), (dict, Some(&image))]);
        assert_eq!(reason(&doc, true, false), None);
    }

    #[test]
    fn a_stream_ended_early_does_not_hide_an_object_stream() {
        // An image whose data holds `endstream (`: a parser that goes by an indirect /Length
        // sees the object stream after it; a string opened in the image data must not hide it.
        let packed = deflate(HIDDEN);
        let mut doc = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
        doc.extend_from_slice(
            b"2 0 obj << /Subtype /Image /Length 9 0 R /Filter /DCTDecode >> stream\n\xff\xd8 endstream (\nendstream\nendobj\n",
        );
        writeln!(
            doc,
            "3 0 obj << /Type /ObjStm /N 2 /First 8 /Filter /FlateDecode /Length {} >> stream",
            packed.len()
        )
        .unwrap();
        doc.extend_from_slice(&packed);
        doc.extend_from_slice(b"\nendstream\nendobj\ntrailer << /Root 1 0 R >>\n%%EOF\n");
        assert_eq!(reason(&doc, true, false), Some(Reason::ActiveContent));
    }

    #[test]
    fn a_direct_length_is_followed_when_endstream_is_there() {
        let text = b"BT 72 700 Td (endstream) Tj (secret) Tj ET";
        let packed = stored(text);
        assert!(find(&packed, b"endstream").is_some());
        let dict = format!("<< /Length {} /Filter /FlateDecode >>", packed.len());
        let doc = pdf(&[catalog(), (&dict, Some(&packed))]);
        assert_eq!(
            scan(&doc, true),
            (Ok(()), vec!["endstreamsecret".to_owned()])
        );
        // Without a usable /Length the stream ends at the first `endstream`: its text is cut,
        // and a caller reading text is told so.
        for dict in [
            "<< /Length 9 0 R /Filter /FlateDecode >>".to_owned(),
            format!("<< /Length {} /Filter /FlateDecode >>", packed.len() - 1),
        ] {
            let doc = pdf(&[catalog(), (&dict, Some(&packed))]);
            assert_eq!(
                reason(&doc, false, true),
                Some(Reason::ContentUnreadable),
                "{dict}"
            );
        }
    }

    #[test]
    fn text_that_cannot_be_read_whole_is_refused_when_text_is_read() {
        let packed = deflate(PAGE);
        let mut corrupt = packed.clone();
        let n = corrupt.len();
        corrupt[n / 2..].iter_mut().for_each(|b| *b ^= 0x5a);
        let cases: [(&str, &[u8]); 5] = [
            ("<< /Filter /JBIG2Decode >>", PAGE),
            ("<< /Filter 4 0 R >>", &packed),
            ("<< /Type /XObject /Subtype /Form /Filter /Unknown >>", PAGE),
            ("<< /Filter /FlateDecode >>", &corrupt),
            ("<< /Filter /FlateDecode >>", &packed[..n - 6]),
        ];
        for (dict, data) in cases {
            let doc = pdf(&[catalog(), (dict, Some(data))]);
            assert_eq!(
                reason(&doc, false, true),
                Some(Reason::ContentUnreadable),
                "{dict}"
            );
        }
        let long = format!("BT ({}) Tj ET", "x".repeat(MAX_STRING + 1));
        let doc = pdf(&[catalog(), ("<< >>", Some(long.as_bytes()))]);
        assert_eq!(reason(&doc, false, true), Some(Reason::ContentUnreadable));
    }

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

    #[test]
    fn image_streams_are_skipped_and_names_in_them_ignored() {
        let mut image = vec![0u8; 300_000];
        image[1000..1011].copy_from_slice(b"/JavaScript");
        let dict = "<< /Type /XObject /Subtype /Image /Width 10 /Height 10 /Filter /DCTDecode >>";
        let doc = pdf(&[catalog(), (dict, Some(&image)), ("<< >>", Some(PAGE))]);
        assert_eq!(scan(&doc, true), (Ok(()), vec!["Hello secret".to_owned()]));
    }

    #[test]
    fn an_inflate_bomb_stops_the_stream_but_not_the_scan() {
        let mut bomb = b"BT (start) Tj ET ".to_vec();
        bomb.resize(200 << 20, b' ');
        bomb.extend_from_slice(b"BT (never reached) Tj ET");
        let packed = deflate(&bomb);
        let dict = "<< /Filter /FlateDecode >>";
        let doc = pdf(&[
            catalog(),
            (dict, Some(&packed)),
            ("<< /S /JavaScript >>", None),
        ]);
        let start = Instant::now();
        assert_eq!(reason(&doc, true, false), Some(Reason::ActiveContent));
        // A caller reading text is told the text was cut.
        let (verdict, lines) = scan(&doc, true);
        assert_eq!(verdict.unwrap_err().reason, Reason::ContentUnreadable);
        assert_eq!(lines, ["start"]);
        assert!(start.elapsed().as_secs() < 10);
        // The same bomb as an object stream is refused when active content matters.
        let dict = "<< /Type /ObjStm /Filter /FlateDecode >>";
        let doc = pdf(&[catalog(), (dict, Some(&packed))]);
        assert_eq!(reason(&doc, true, false), Some(Reason::ContentUnreadable));
    }

    #[test]
    fn not_a_pdf_or_broken_is_unreadable() {
        for data in [
            &b""[..],
            b"hello world",
            b"%PD",
            b"%PDF-1.4\n1 0 obj << >> stream\nabc",
            b"%PDF-1.4\nno objects here at all",
        ] {
            let (verdict, _) = scan(data, true);
            assert_eq!(
                verdict.unwrap_err().reason,
                Reason::ContentUnreadable,
                "{data:?}"
            );
        }
        let doc = pdf(&[catalog(), ("<< /Encrypt 5 0 R >>", None)]);
        assert_eq!(
            scan(&doc, false).0.unwrap_err().reason,
            Reason::ContentUnreadable
        );
        // A stream dictionary too long to read.
        let long = format!("<< /Filler ({}) >>", "x".repeat(RECENT_CAP));
        let doc = pdf(&[catalog(), (&long, Some(b"x"))]);
        assert_eq!(reason(&doc, true, false), Some(Reason::ContentUnreadable));
        // Junk before the header is tolerated, as viewers do.
        let mut doc = b"junk\n".to_vec();
        doc.extend_from_slice(&pdf(&[catalog()]));
        assert_eq!(scan(&doc, true).0, Ok(()));
    }

    #[test]
    fn streams_split_across_reads_are_found() {
        /// Returns at most 7 bytes a read.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(7).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let packed = deflate(PAGE);
        let with_length = format!("<< /Filter /FlateDecode /Length {} >>", packed.len());
        let doc = pdf(&[
            catalog(),
            ("<< /Filter /FlateDecode >>", Some(&packed)),
            (&with_length, Some(&packed)),
            ("<< /S /J#61vaScript >>", None),
        ]);
        let mut lines = Vec::new();
        let mut sink = |line: &str| {
            lines.push(line.to_owned());
            Ok(())
        };
        let verdict = scan_pdf(
            &mut Trickle(&doc),
            &PdfOptions {
                refuse_active: true,
                read_text: true,
            },
            &mut sink,
        )
        .unwrap();
        assert_eq!(verdict.unwrap_err().reason, Reason::ActiveContent);
        assert_eq!(lines, ["Hello secret", "Hello secret"]);
    }

    #[test]
    fn a_sink_refusal_stops_the_scan() {
        let doc = pdf(&[catalog(), ("<< >>", Some(PAGE))]);
        let mut sink = |line: &str| {
            if line.contains("secret") {
                Err(Refusal::new(Reason::KeywordMatch, "secret"))
            } else {
                Ok(())
            }
        };
        let mut input = doc.as_slice();
        let verdict = scan_pdf(
            &mut input,
            &PdfOptions {
                refuse_active: false,
                read_text: true,
            },
            &mut sink,
        );
        assert_eq!(verdict.unwrap().unwrap_err().reason, Reason::KeywordMatch);
    }

    #[test]
    fn a_stream_keyword_in_a_string_is_not_a_stream() {
        let doc = pdf(&[
            ("<< /Title (a stream\n) >>", None),
            ("<< /S /JavaScript >>", None),
            ("<< >>", Some(PAGE)),
        ]);
        assert_eq!(
            scan(&doc, true).0.unwrap_err().reason,
            Reason::ActiveContent
        );
    }

    #[test]
    fn a_flood_of_stream_keywords_is_refused_quickly() {
        let mut doc = b"%PDF-1.7\n1 0 obj << /T (".to_vec();
        doc.extend_from_slice(&[b'x'; 60_000]);
        for _ in 0..20_000 {
            doc.extend_from_slice(b">> stream\n");
        }
        doc.extend_from_slice(b") >> endobj\n");
        let start = Instant::now();
        assert_eq!(reason(&doc, true, true), Some(Reason::ContentUnreadable));
        assert!(start.elapsed().as_secs() < 5);
    }

    #[test]
    fn stream_dictionaries_parse() {
        let v = Parser::whole(
            b"<< /A [1 -2.5 .5 (s\\)(x)) <0A> /N#61me 3 0 R] /B << /C true /D null >> >> % c",
        )
        .unwrap();
        let Value::Dict(entries) = v else {
            panic!("not a dict")
        };
        assert_eq!(entries[0].0, b"A");
        assert_eq!(
            entries[0].1,
            Value::Array(vec![
                Value::Int(1),
                Value::Real,
                Value::Real,
                Value::Str,
                Value::Str,
                Value::Name(b"Name".to_vec()),
                Value::Ref,
            ])
        );
        assert!(Parser::whole(b"<< /A 1 >> junk").is_none());
        assert!(Parser::whole(b"<< /A (open >>").is_none());
        assert!(Parser::whole(&[b'['; 200]).is_none());
    }
}
