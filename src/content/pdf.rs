//! PDF: active content (JavaScript, launch actions, embedded files, rich media, XFA) and the
//! text shown by content streams, read in one pass over bounded chunks. Nothing is executed
//! and no object graph is built.
//!
//! ```text
//!  bytes ─► names (#xx decoded) ─► active?            (outside streams)
//!    └─ "stream" after a dictionary ─► /FlateDecode? ─► inflate (capped)
//!                                          ├─► names ─► active?   (object streams)
//!                                          └─► Tj TJ ' " ─► lines ─► sink
//! ```
//!
//! Stream data that is not inflated (images, other filters) is skipped by searching for
//! `endstream`. Memory: one read chunk, a tail of recent bytes to read stream dictionaries
//! from, one inflate buffer, and a line of text; an inflated stream is never held whole.

use crate::content::{LineSink, Scan};
use crate::reason::{Reason, Refusal};
use flate2::{Decompress, FlushDecompress, Status};
use std::io::{self, Read};

/// Bytes read from the input at a time.
const CHUNK: usize = 1 << 20;

/// The header `%PDF-` must start within this many bytes.
const HEADER_WINDOW: usize = 1024;

/// Most expanded bytes taken from one stream.
const STREAM_CAP: u64 = 64 << 20;

/// An inflating stream expanding more than this many times is a bomb: it is stopped.
const BOMB_RATIO: u64 = 1000;

/// The ratio check applies once a stream has expanded to this many bytes.
const BOMB_FLOOR: u64 = 1 << 20;

/// Bytes kept before a `stream` keyword to read the stream's dictionary from.
const RECENT_CAP: usize = 64 * 1024;

/// Longest line of text handed to the sink at once, in bytes of UTF-8.
const MAX_LINE: usize = 64 * 1024;

/// Longest string operand kept, in bytes.
const MAX_STRING: usize = 64 * 1024;

/// Most operands kept before an operator.
const MAX_OPERANDS: usize = 4096;

/// Most bytes of string operands kept before an operator.
const MAX_OPERAND_BYTES: usize = 1 << 20;

/// Longest name kept (longer names match nothing).
const MAX_NAME: usize = 40;

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
}

fn active(name: &[u8]) -> Option<&'static str> {
    ACTIVE
        .iter()
        .find(|(active, _)| *active == name)
        .map(|(_, what)| *what)
}

fn refuse_active(name: &[u8], what: &str) -> Refusal {
    Refusal::new(
        Reason::ActiveContent,
        format!("PDF carries {what} (/{})", String::from_utf8_lossy(name)),
    )
}

/// What the dictionary before a `stream` keyword says about the stream.
#[derive(Debug, Default)]
struct StreamDict {
    flate: bool,
    other_filter: bool,
    typed: bool,
    subtyped: bool,
    image: bool,
    form: bool,
    font: bool,
    object_stream: bool,
    xref: bool,
}

impl StreamDict {
    fn read(dict: &[u8]) -> StreamDict {
        let mut names = Names::default();
        let mut d = StreamDict::default();
        let mut previous: Vec<u8> = Vec::new();
        for &b in dict.iter().chain(b" ") {
            if !names.feed(b) {
                continue;
            }
            let name = names.last();
            match name {
                b"FlateDecode" | b"Fl" => d.flate = true,
                b"ASCIIHexDecode" | b"AHx" | b"ASCII85Decode" | b"A85" | b"LZWDecode" | b"LZW"
                | b"RunLengthDecode" | b"RL" | b"CCITTFaxDecode" | b"CCF" | b"DCTDecode"
                | b"DCT" | b"JPXDecode" | b"JBIG2Decode" | b"Crypt" => d.other_filter = true,
                b"Length1" | b"Length2" | b"Length3" => d.font = true,
                _ => {}
            }
            match (previous.as_slice(), name) {
                (b"Type", b"ObjStm") => d.object_stream = true,
                (b"Type", b"XRef") => d.xref = true,
                (b"Type", _) => d.typed = true,
                (b"Subtype", b"Image") => d.image = true,
                (b"Subtype", b"Form") => d.form = true,
                (b"Subtype", _) => d.subtyped = true,
                _ => {}
            }
            previous.clear();
            previous.extend_from_slice(name);
        }
        d
    }

    /// A content stream (page or form): its text is extracted.
    fn content(&self) -> bool {
        self.form
            || !(self.typed
                || self.subtyped
                || self.image
                || self.font
                || self.xref
                || self.object_stream)
    }
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

/// Reads the operators of a content stream and gathers the text they show into lines.
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
}

impl Lexer {
    fn new() -> Lexer {
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
        }
    }

    fn operand(&mut self, operand: Operand) {
        if let Operand::Str(s) = &operand {
            if self.operand_bytes + s.len() > MAX_OPERAND_BYTES {
                return;
            }
            self.operand_bytes += s.len();
        }
        if self.operands.len() < MAX_OPERANDS {
            self.operands.push(operand);
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
        match op {
            b"Tj" => {
                if let Some(s) = last_string() {
                    self.show(s, sink)?;
                }
            }
            b"'" | b"\"" => {
                self.flush(sink)?;
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
            b"T*" | b"ET" => self.flush(sink)?,
            b"Td" | b"TD" => {
                let ty = operands.iter().rev().find_map(|o| match o {
                    Operand::Number(n) => Some(*n),
                    _ => None,
                });
                if ty.is_some_and(|ty| ty != 0.0) {
                    self.flush(sink)?;
                }
            }
            b"ID" => {
                self.state = Lex::InlineImage;
                self.image_tail = 0x2020_2020;
            }
            _ => {}
        }
        Ok(())
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
        self.push(&text, sink)
    }

    fn push(&mut self, text: &str, sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        for c in text.chars() {
            if self.line.len() + c.len_utf8() > MAX_LINE {
                self.flush(sink)?;
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
        self.flush(sink)
    }
}

/// Inflates one FlateDecode stream as its bytes arrive, within the per-stream caps.
struct Inflate {
    decompress: Decompress,
    out: Vec<u8>,
    /// Stopped: the end of the zlib stream, an error, or a cap.
    stopped: bool,
}

/// The stream being read: what is done with its bytes.
struct StreamState {
    inflate: Option<Inflate>,
    names: Option<Names>,
    lexer: Option<Lexer>,
    object_stream: bool,
}

impl StreamState {
    fn feed(&mut self, data: &[u8], sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        let Some(inflate) = self.inflate.as_mut() else {
            return consume(&mut self.names, &mut self.lexer, data, sink);
        };
        let mut input = data;
        while !inflate.stopped && !input.is_empty() {
            let before_in = inflate.decompress.total_in();
            let before_out = inflate.decompress.total_out();
            let status =
                inflate
                    .decompress
                    .decompress(input, &mut inflate.out, FlushDecompress::None);
            let taken = (inflate.decompress.total_in() - before_in) as usize;
            let made = (inflate.decompress.total_out() - before_out) as usize;
            input = &input[taken.min(input.len())..];
            consume(&mut self.names, &mut self.lexer, &inflate.out[..made], sink)?;
            match status {
                Ok(Status::StreamEnd) | Err(_) => inflate.stopped = true,
                Ok(_) if taken == 0 && made == 0 => break,
                Ok(_) => {}
            }
            let total_out = inflate.decompress.total_out();
            let total_in = inflate.decompress.total_in().max(1);
            if total_out > STREAM_CAP
                || (total_out >= BOMB_FLOOR && total_out > BOMB_RATIO.saturating_mul(total_in))
            {
                inflate.stopped = true;
                if self.object_stream && self.names.is_some() {
                    return Err(unreadable(
                        "PDF object stream too large to inspect for active content",
                    ));
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        if let Some(names) = self.names.as_mut() {
            if names.feed(b' ') {
                if let Some(what) = active(names.last()) {
                    return Err(refuse_active(names.last(), what));
                }
            }
        }
        match self.lexer.as_mut() {
            Some(lexer) => lexer.finish(sink),
            None => Ok(()),
        }
    }
}

fn consume(
    names: &mut Option<Names>,
    lexer: &mut Option<Lexer>,
    data: &[u8],
    sink: &mut LineSink<'_>,
) -> Result<(), Refusal> {
    if let Some(names) = names.as_mut() {
        for &b in data {
            if names.feed(b) {
                if let Some(what) = active(names.last()) {
                    return Err(refuse_active(names.last(), what));
                }
            }
        }
    }
    if let Some(lexer) = lexer.as_mut() {
        lexer.feed(data, sink)?;
    }
    Ok(())
}

/// The whole-file scanner.
struct Scanner<'s, 'a> {
    refuse_active: bool,
    sink: &'s mut LineSink<'a>,
    names: Names,
    recent: Vec<u8>,
    roll: u64,
    objects: u64,
    stream: Option<StreamState>,
    skip_lf: bool,
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
            match self.stream.as_mut() {
                Some(stream) => {
                    if self.skip_lf {
                        self.skip_lf = false;
                        if data[at] == b'\n' {
                            at += 1;
                            continue;
                        }
                    }
                    let rest = &data[at..];
                    match find(rest, b"endstream") {
                        Some(end) => {
                            stream.feed(&rest[..end], self.sink)?;
                            stream.finish(self.sink)?;
                            self.stream = None;
                            self.recent.clear();
                            self.roll = 0;
                            at += end + b"endstream".len();
                        }
                        None if eof => {
                            return Err(unreadable("PDF ends inside a stream"));
                        }
                        None => {
                            let keep = rest.len().min(b"endstream".len() - 1);
                            let take = rest.len() - keep;
                            stream.feed(&rest[..take], self.sink)?;
                            return Ok(at + take);
                        }
                    }
                }
                None => {
                    let b = data[at];
                    at += 1;
                    self.byte(b)?;
                }
            }
        }
        Ok(at)
    }

    fn byte(&mut self, b: u8) -> Result<(), Refusal> {
        self.roll = self.roll << 8 | u64::from(b);
        if self.names.feed(b) {
            let name = self.names.last();
            if name == b"Encrypt" {
                return Err(unreadable("PDF is encrypted and cannot be inspected"));
            }
            if self.refuse_active {
                if let Some(what) = active(name) {
                    return Err(refuse_active(name, what));
                }
            }
        }
        if self.recent.len() >= RECENT_CAP {
            self.recent.drain(..RECENT_CAP / 2);
        }
        self.recent.push(b);
        if b == b'j' && self.roll & SIX == ENDOBJ {
            self.objects += 1;
        }
        if (b == b'\n' || b == b'\r')
            && (self.roll >> 8) & SIX == STREAM
            && !is_regular((self.roll >> 56) as u8)
        {
            self.start_stream(b)?;
        }
        Ok(())
    }

    fn start_stream(&mut self, eol: u8) -> Result<(), Refusal> {
        let before = &self.recent[..self.recent.len().saturating_sub(7)];
        let from = rfind(before, b"obj").map_or(0, |at| at + 3);
        let dict = &before[from..];
        let trimmed = dict
            .iter()
            .rposition(|&b| !is_white(b))
            .map_or(&dict[..0], |end| &dict[..=end]);
        if !trimmed.ends_with(b">>") {
            return Ok(()); // `stream` not after a dictionary: not a stream.
        }
        let d = StreamDict::read(dict);
        if d.object_stream && d.other_filter && self.refuse_active {
            // Dictionaries hidden behind a filter this scanner does not decode.
            return Err(unreadable(
                "PDF object stream uses a filter that cannot be inspected for active content",
            ));
        }
        let content = d.content();
        let unfiltered = !d.flate && !d.other_filter;
        let inflate =
            d.flate && !d.other_filter && !d.image && !d.xref && (content || self.refuse_active);
        let names = self.refuse_active && (inflate || (unfiltered && !d.image));
        let lexer = content && (inflate || unfiltered);
        self.stream = Some(StreamState {
            inflate: inflate.then(|| Inflate {
                decompress: Decompress::new(true),
                out: vec![0u8; 64 * 1024],
                stopped: false,
            }),
            names: names.then(Names::default),
            lexer: lexer.then(Lexer::new),
            object_stream: d.object_stream,
        });
        self.skip_lf = eol == b'\r';
        Ok(())
    }
}

/// Reads a PDF in bounded chunks. If `refuse_active`, refuses with ActiveContent on
/// /JavaScript, /JS, /Launch, /EmbeddedFile(s), /RichMedia, /XFA, /GoToE — names compared
/// after decoding #xx escapes (so /J#61vaScript is caught) — found either in the file's bytes
/// or inside FlateDecode streams (object streams hide dictionaries there). Text: for each
/// FlateDecode-compressed (or uncompressed) content stream, inflate with a per-stream cap
/// (64 MiB expanded, or an expansion over 1000 times: extraction of that stream stops, the
/// rest of the file is still scanned) and pass the strings shown by Tj / TJ / ' / " (Latin-1,
/// or UTF-16BE with a BOM; hex strings too) to `sink`, one line per BT…ET block or per Td/T*
/// line break, as best effort. Nothing is executed. Not a PDF (no %PDF- in the first 1 KiB),
/// encrypted, truncated inside a stream or without any object → ContentUnreadable.
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
        refuse_active: opts.refuse_active,
        sink,
        names: Names::default(),
        recent: Vec::with_capacity(RECENT_CAP),
        roll: 0,
        objects: 0,
        stream: None,
        skip_lf: false,
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
    if scanner.names.feed(b' ') && opts.refuse_active {
        let name = scanner.names.last();
        if let Some(what) = active(name) {
            return Ok(Err(refuse_active(name, what)));
        }
    }
    if scanner.objects == 0 {
        return Ok(Err(unreadable("PDF holds no objects")));
    }
    Ok(Ok(()))
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

    fn scan(data: &[u8], refuse_active: bool) -> (Result<(), Refusal>, Vec<String>) {
        let mut lines = Vec::new();
        let mut sink = |line: &str| {
            lines.push(line.to_owned());
            Ok(())
        };
        let mut input = data;
        let verdict =
            scan_pdf(&mut input, &PdfOptions { refuse_active }, &mut sink).expect("no I/O fault");
        (verdict, lines)
    }

    const PAGE: &[u8] = b"BT /F1 12 Tf 72 712 Td (Hello secret) Tj ET";

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
                "line",
                "机密",
                "last"
            ]
        );
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
        let hidden =
            b"5 0 6 30 << /OpenAction 6 0 R >> << /S /JavaScript /JS (app.alert\\(1\\)) >>";
        let packed = deflate(hidden);
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
        let dict = "<< /Type /ObjStm /N 2 /First 8 /Filter [/ASCIIHexDecode] >>";
        let doc = pdf(&[catalog(), (dict, Some(b"3C3C3E3E>"))]);
        assert_eq!(
            scan(&doc, true).0.unwrap_err().reason,
            Reason::ContentUnreadable
        );
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
        let (verdict, lines) = scan(&doc, true);
        assert_eq!(verdict.unwrap_err().reason, Reason::ActiveContent);
        assert_eq!(lines, ["start"]);
        assert!(start.elapsed().as_secs() < 5);
        // The same bomb as an object stream is refused when active content matters.
        let dict = "<< /Type /ObjStm /Filter /FlateDecode >>";
        let doc = pdf(&[catalog(), (dict, Some(&packed))]);
        assert_eq!(
            scan(&doc, true).0.unwrap_err().reason,
            Reason::ContentUnreadable
        );
        assert_eq!(scan(&doc, false).0, Ok(()));
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
        let doc = pdf(&[
            catalog(),
            ("<< /Filter /FlateDecode >>", Some(&packed)),
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
            },
            &mut sink,
        )
        .unwrap();
        assert_eq!(verdict.unwrap_err().reason, Reason::ActiveContent);
        assert_eq!(lines, ["Hello secret"]);
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
}
