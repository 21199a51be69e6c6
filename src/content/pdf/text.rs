//! Content streams: a lexer of their operators that gathers the strings shown by Tj, TJ, '
//! and " into lines, one line per baseline, each string kept raw with the font resource name
//! it is shown in (Tf) and handed to the fonts to decode; and the operators of a CMap stream
//! (code spaces, bfchar, bfrange, usecmap), whose map is handed to the fonts at its end.
//!
//! ```text
//!  bytes ─► operands ─► Tf ─► font name      Tj TJ ' " ─► runs (font, raw bytes) ─► a line
//!                   └► begincodespacerange … endbfrange ─► CMap                  │
//!                                       line ends (T*, Td/Tm down, ') ─► fonts ◄─┘
//! ```

use super::cmap::{CMap, Item, Parent};
use super::fonts::{Edges, Fonts, MAX_LINE, NO_FONT, SPACE, push_run, tail_from};
use super::inline_image::{self, InlineImage};
use super::lexical::{hex_value, is_delimiter, is_regular, is_white, unescape_name};
use super::unreadable;
use crate::content::LineSink;
use crate::core::reason::Refusal;

/// Raw bytes of text a cut line carries into its next piece (at least `fonts::OVERLAP`
/// characters of up to four bytes each), so that no match is split.
const OVERLAP_BYTES: usize = 4 * super::fonts::OVERLAP;

/// Longest string operand kept, in bytes.
pub(super) const MAX_STRING: usize = 64 * 1024;

/// Longest token kept, in bytes: a name's 127 bytes (ISO 32000-1 Annex C) and its slash.
/// A longer name (it could not be matched to its resource) makes a content stream's text
/// unreadable, whatever it names.
const MAX_TOKEN: usize = 128;

/// Depth of the graphics-state stack (`q`) whose fonts are kept.
const MAX_SAVED: usize = 256;

/// Most operands kept before an operator.
const MAX_OPERANDS: usize = 16 * 1024;

/// Most bytes of string operands kept before an operator.
const MAX_OPERAND_BYTES: usize = 1 << 20;

/// One item before a content-stream operator.
#[derive(Debug)]
enum Operand {
    Str(Vec<u8>),
    Number(f64),
    Name(Vec<u8>),
    /// `true` or `false` (an inline image's /IM).
    Bool(bool),
    /// `null`, or the `R` of a reference.
    Null,
    ArrayOpen,
    ArrayClose,
}

/// Where the lexer stands in the syntax.
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
pub(super) struct Lexer {
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
    /// The inline image being passed over in a content stream, measured as viewers measure
    /// it and checked at each `EI` ([`inline_image`]); `None` in a stream read loosely.
    image: Option<InlineImage>,
    /// The last operator was `BI`: an `ID` now starts the image's data (an `ID` anywhere
    /// else is an unknown operator, as viewers take it).
    after_bi: bool,
    /// The runs of the current line (see `fonts::push_run`).
    line: Vec<u8>,
    /// Bytes of text in `line`.
    line_text: usize,
    /// The font resource name of Tf, as its id (`NO_FONT`: none of this stream's, or one
    /// an ExtGState may have set).
    font: u32,
    /// The fonts saved by `q`, restored by `Q` (the graphics state's stack), up to
    /// `MAX_SAVED`; `q` past it is counted in `saved_over`, and its `Q` leaves the font
    /// unknown (`NO_FONT`, read in every font it may be).
    saved: Vec<u32>,
    saved_over: usize,
    /// The token being read was longer than `MAX_TOKEN` bytes and cut.
    token_cut: bool,
    /// The CMap this stream defines, once a CMap operator has been seen.
    cmap: Option<CMap>,
    /// The object number of the stream, and its /UseCMap: where a CMap read from it goes.
    pub(super) cmap_target: Option<(u32, Option<Parent>)>,
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
    pub(super) shown: bool,
    /// The object number of the stream, where its text may be one of a page's streams:
    /// the ends of its text go to the fonts at its end ([`Fonts::stream_edges`]).
    pub(super) object: Option<u32>,
    /// The ends of the text handed on so far.
    edges: Edges,
}

impl Lexer {
    pub(super) fn new(strict: bool) -> Lexer {
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
            image: None,
            after_bi: false,
            line: Vec::new(),
            line_text: 0,
            font: NO_FONT,
            saved: Vec::new(),
            saved_over: 0,
            token_cut: false,
            cmap: None,
            cmap_target: None,
            lost: false,
            y: 0.0,
            scale: 1.0,
            size: 0.0,
            leading: 0.0,
            line_y: None,
            strict,
            shown: false,
            object: None,
            edges: Edges::default(),
        }
    }

    /// Whether the lexer stands inside a comment or a string: where a stream's data
    /// cannot end.
    pub(super) fn in_comment_or_string(&self) -> bool {
        matches!(
            self.state,
            Lex::Comment | Lex::Literal | Lex::Escape | Lex::Octal | Lex::Hex
        )
    }

    pub(super) fn feed(
        &mut self,
        data: &[u8],
        sink: &mut LineSink<'_>,
        doc: &mut Fonts,
    ) -> Result<(), Refusal> {
        let mut rest = data;
        while !rest.is_empty() {
            if self.state == Lex::Hex {
                // a hex string's digits up to its `>` (most of a CID font's text), taken
                // without the byte-by-byte dispatch; the `>` goes through `byte`
                let end = memchr::memchr(b'>', rest).unwrap_or(rest.len());
                for &b in &rest[..end] {
                    self.hex_digit(b);
                }
                rest = &rest[end..];
            }
            let Some((&b, tail)) = rest.split_first() else {
                break;
            };
            rest = tail;
            self.byte(b, sink, doc)?;
        }
        Ok(())
    }

    /// One byte inside a hex string: a digit is kept (two make a byte), white space and
    /// anything else is passed over (ISO 32000-1 §7.3.4.3).
    fn hex_digit(&mut self, b: u8) {
        if let Some(v) = hex_value(b) {
            match self.hex_high.take() {
                Some(high) => self.string_byte(high << 4 | v),
                None => self.hex_high = Some(v),
            }
        }
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

    fn byte(&mut self, b: u8, sink: &mut LineSink<'_>, doc: &mut Fonts) -> Result<(), Refusal> {
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
                            // a copy of its size: `string` keeps its room for the next
                            let s = self.string.clone();
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
                self.byte(b, sink, doc)
            }
            Lex::HexOrDict => {
                if b == b'<' {
                    self.state = Lex::Ground;
                    return Ok(());
                }
                self.state = Lex::Hex;
                self.hex_high = None;
                self.string.clear();
                self.byte(b, sink, doc)
            }
            Lex::Hex => {
                if b == b'>' {
                    if let Some(high) = self.hex_high.take() {
                        self.string_byte(high << 4);
                    }
                    let s = self.string.clone();
                    self.operand(Operand::Str(s));
                    self.state = Lex::Ground;
                } else {
                    self.hex_digit(b);
                }
                Ok(())
            }
            Lex::InlineImage => {
                // a content stream's image: measured as viewers measure it
                if let Some(image) = self.image.as_mut() {
                    if image.byte(b)? {
                        self.image = None;
                        self.state = Lex::Ground;
                        self.clear_operands();
                        // the byte after EI starts what follows (`/F1 …`, `<…>`)
                        return self.byte(b, sink, doc);
                    }
                    return Ok(());
                }
                // Skip binary image data up to whitespace, `EI`, whitespace.
                self.image_tail = self.image_tail << 8 | u32::from(b);
                let [w1, e, i, w2] = self.image_tail.to_be_bytes();
                if is_white(w1) && e == b'E' && i == b'I' && (is_white(w2) || is_delimiter(w2)) {
                    self.state = Lex::Ground;
                    self.clear_operands();
                    return self.byte(b, sink, doc);
                }
                Ok(())
            }
            Lex::Token => {
                if is_regular(b) {
                    if self.token.len() < MAX_TOKEN {
                        self.token.push(b);
                    } else {
                        self.token_cut = true;
                    }
                    return Ok(());
                }
                self.state = Lex::Ground;
                self.end_token(sink, doc)?;
                self.byte(b, sink, doc)
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
                    b'[' => self.operand(Operand::ArrayOpen),
                    b']' => self.operand(Operand::ArrayClose),
                    b'>' | b'{' | b'}' | b')' => {}
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

    fn end_token(&mut self, sink: &mut LineSink<'_>, doc: &mut Fonts) -> Result<(), Refusal> {
        let token = std::mem::take(&mut self.token);
        let cut = std::mem::take(&mut self.token_cut);
        if cut && token.starts_with(b"/") {
            // past a name's longest: it cannot be matched to its resource, and is never
            // read as another (a content stream's is refused at its operator)
            self.lost = true;
        }
        let result = self.token_done(&token, sink, doc);
        self.token = token;
        self.token.clear();
        result
    }

    fn token_done(
        &mut self,
        token: &[u8],
        sink: &mut LineSink<'_>,
        doc: &mut Fonts,
    ) -> Result<(), Refusal> {
        if let Some(name) = token.strip_prefix(b"/") {
            self.operand(Operand::Name(unescape_name(name)));
            return Ok(());
        }
        // values, not operators, in an inline image's dictionary (elsewhere an operator,
        // which leaves the next one without its operands, as before)
        if let Some(value) = match token {
            _ if !self.after_bi => None,
            b"true" => Some(Operand::Bool(true)),
            b"false" => Some(Operand::Bool(false)),
            // the `R` of a reference (`[/ICCBased 5 0 R]`)
            b"null" | b"R" => Some(Operand::Null),
            _ => None,
        } {
            self.operand(value);
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
        if self.lost
            && let Some(cmap) = self.cmap.as_mut()
        {
            cmap.overflow = true;
        }
        self.lost = false;
        let operands = std::mem::take(&mut self.operands);
        let result = self.operator(token, &operands, sink, doc);
        self.operands = operands;
        self.clear_operands();
        result
    }

    fn operator(
        &mut self,
        op: &[u8],
        operands: &[Operand],
        sink: &mut LineSink<'_>,
        doc: &mut Fonts,
    ) -> Result<(), Refusal> {
        let after_bi = std::mem::replace(&mut self.after_bi, op == b"BI");
        if after_bi && self.strict && op != b"ID" {
            // Poppler passes over a key it cannot read and draws the image, MuPDF fails:
            // the data is image to one and operators to the other
            return Err(unreadable(format!(
                "PDF inline image's dictionary holds the operator `{}`: viewers differ on what follows",
                String::from_utf8_lossy(op)
            )));
        }
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
                    self.show(s, sink, doc)?;
                }
            }
            b"'" | b"\"" => {
                self.next_line(sink, doc)?;
                if let Some(s) = last_string() {
                    self.show(s, sink, doc)?;
                }
            }
            b"TJ" => {
                for operand in operands {
                    match operand {
                        Operand::Str(s) => self.show(s, sink, doc)?,
                        Operand::Number(n) if *n < -200.0 => {
                            self.line.push(SPACE);
                            self.line_text += 1;
                        }
                        _ => {}
                    }
                }
            }
            b"BT" => {
                self.y = 0.0;
                self.scale = 1.0;
            }
            // the font is part of the graphics state, saved by q and restored by Q
            b"q" => {
                if self.saved.len() < MAX_SAVED {
                    self.saved.push(self.font);
                } else {
                    self.saved_over += 1;
                }
            }
            b"Q" => {
                if self.saved_over > 0 {
                    self.saved_over -= 1;
                    self.font = NO_FONT;
                } else if let Some(font) = self.saved.pop() {
                    self.font = font;
                }
            }
            b"Tf" => {
                self.size = numbers(1)[0];
                let name = operands.iter().rev().find_map(|o| match o {
                    Operand::Name(n) => Some(n.as_slice()),
                    _ => None,
                });
                self.font = match name {
                    Some(name) => doc.intern_selected(name).ok_or_else(|| {
                        unreadable(format!(
                            "PDF uses more than {} font names: its text cannot be read",
                            super::fonts::MAX_NAMES
                        ))
                    })?,
                    None => NO_FONT,
                };
            }
            b"TL" => self.leading = numbers(1)[0],
            b"T*" => self.next_line(sink, doc)?,
            b"Td" | b"TD" => {
                let ty = numbers(2)[1];
                if op == b"TD" {
                    self.leading = -ty;
                }
                self.y += ty * self.scale;
                self.moved(sink, doc)?;
            }
            b"Tm" => {
                let m = numbers(6);
                self.scale = if m[3] != 0.0 { m[3] } else { 1.0 };
                self.y = m[5];
                self.moved(sink, doc)?;
            }
            b"ID" if after_bi => {
                self.state = Lex::InlineImage;
                self.image_tail = 0x2020_2020;
                // a content stream's image is measured as viewers measure it; a stream read
                // loosely may be image data whose `ID` is chance
                self.image = if self.strict {
                    let items: Vec<inline_image::Item<'_>> = operands
                        .iter()
                        .map(|o| match o {
                            Operand::Name(n) => inline_image::Item::Name(n),
                            Operand::Number(v) => inline_image::Item::Number(*v),
                            Operand::Bool(b) => inline_image::Item::Bool(*b),
                            Operand::ArrayOpen => inline_image::Item::Open,
                            Operand::ArrayClose => inline_image::Item::Close,
                            Operand::Str(_) | Operand::Null => inline_image::Item::Other,
                        })
                        .collect();
                    Some(InlineImage::new(&items)?)
                } else {
                    None
                };
            }
            b"begincmap"
            | b"begincodespacerange"
            | b"beginbfchar"
            | b"beginbfrange"
            | b"usecmap"
            | b"endcodespacerange"
            | b"endbfchar"
            | b"endbfrange" => {
                self.cmap_operator(op, operands, doc);
            }
            b"def" if self.cmap.is_some() => {
                if let [.., Operand::Name(key), Operand::Name(value)] = operands
                    && key == b"CMapName"
                    && let Some(cmap) = self.cmap.as_mut()
                {
                    cmap.name = Some(value.clone());
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The operators of a CMap stream (Adobe Technical Note #5014, #5411).
    fn cmap_operator(&mut self, op: &[u8], operands: &[Operand], doc: &mut Fonts) {
        let cmap = self.cmap.get_or_insert_with(CMap::default);
        let items = || {
            operands.iter().filter_map(|o| match o {
                Operand::Str(s) => Some(Item::Str(s)),
                Operand::Name(n) => Some(Item::Name(n)),
                Operand::ArrayOpen => Some(Item::ArrayOpen),
                Operand::ArrayClose => Some(Item::ArrayClose),
                Operand::Number(_) | Operand::Bool(_) | Operand::Null => None,
            })
        };
        match op {
            b"endcodespacerange" => {
                let strings: Vec<&[u8]> = operands
                    .iter()
                    .filter_map(|o| match o {
                        Operand::Str(s) => Some(s.as_slice()),
                        _ => None,
                    })
                    .collect();
                cmap.code_spaces(&strings, doc.cmap_room());
            }
            b"endbfchar" => cmap.bf_chars(&items().collect::<Vec<_>>(), doc.cmap_room()),
            b"endbfrange" => cmap.bf_ranges(&items().collect::<Vec<_>>(), doc.cmap_room()),
            b"usecmap" => {
                if let Some(Operand::Name(n)) = operands.last() {
                    cmap.parent = Some(Parent::Name(n.clone()));
                }
            }
            _ => {}
        }
    }

    /// T*: the next line, always a new line of text.
    fn next_line(&mut self, sink: &mut LineSink<'_>, doc: &mut Fonts) -> Result<(), Refusal> {
        self.y -= self.leading * self.scale;
        self.line_y = Some(self.y);
        self.flush(sink, doc)
    }

    /// The text position moved: a new line when it moved down by more than a third of the font
    /// height, or up by more than the height (a new column); not for sub- and superscripts.
    fn moved(&mut self, sink: &mut LineSink<'_>, doc: &mut Fonts) -> Result<(), Refusal> {
        let height = (self.size * self.scale).abs();
        let height = if height > 0.0 { height } else { 1.0 };
        match self.line_y {
            Some(line_y) if self.y < line_y - height / 3.0 || self.y > line_y + height => {
                self.line_y = Some(self.y);
                self.flush(sink, doc)
            }
            Some(_) => Ok(()),
            None => {
                self.line_y = Some(self.y);
                Ok(())
            }
        }
    }

    /// Adds a string operand to the line, raw, with the font it is shown in.
    fn show(&mut self, s: &[u8], sink: &mut LineSink<'_>, doc: &mut Fonts) -> Result<(), Refusal> {
        self.shown |= s.iter().any(|&b| !is_white(b));
        push_run(&mut self.line, self.font, s);
        self.line_text += s.len();
        if self.line_text > MAX_LINE {
            // A cut, not the end of a line: the next piece starts with the end of this one.
            self.edges.note(&self.line);
            let result = doc.line(&self.line, sink);
            let keep = tail_from(&self.line, OVERLAP_BYTES);
            self.line.drain(..keep);
            self.line_text = self.line_text.min(OVERLAP_BYTES + s.len());
            result?;
        }
        Ok(())
    }

    fn flush(&mut self, sink: &mut LineSink<'_>, doc: &mut Fonts) -> Result<(), Refusal> {
        self.edges.note(&self.line);
        let result = doc.line(&self.line, sink);
        self.line.clear();
        self.line_text = 0;
        result
    }

    /// The end of the stream; `failed` when it did not decode whole (a CMap read from it is
    /// then kept as unusable).
    pub(super) fn finish(
        &mut self,
        sink: &mut LineSink<'_>,
        doc: &mut Fonts,
        failed: bool,
    ) -> Result<(), Refusal> {
        if self.state == Lex::Token {
            self.state = Lex::Ground;
            self.end_token(sink, doc)?;
        }
        // the stream's end after `EI` ends the image as white space would (MuPDF's test)
        let ended = match self.image.as_mut() {
            Some(image) if self.state == Lex::InlineImage => image.byte(b'\n')?,
            _ => true,
        };
        if !ended {
            // no EI that ends it: a reader that ends it at another `EI` reads what follows
            return Err(unreadable(
                "PDF content stream ends inside an inline image: where viewers end the image cannot be told",
            ));
        }
        if let Some(mut cmap) = self.cmap.take()
            && let Some((num, parent)) = self.cmap_target.take()
        {
            cmap.overflow |= failed || self.lost;
            if cmap.parent.is_none() {
                cmap.parent = parent;
            }
            doc.add_cmap(num, cmap);
        }
        if self.lost && self.strict {
            return Err(unreadable(
                "PDF text string or operator too long to read whole",
            ));
        }
        self.flush(sink, doc)?;
        if let Some(num) = self.object {
            doc.stream_edges(num, std::mem::take(&mut self.edges));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{catalog, pdf, scan};
    use super::*;
    use std::io::Write;

    #[test]
    fn text_operators_strings_and_lines() {
        let content =
            br"BT (first) Tj T* [(Sec) -50 (ret) -400 (word)] TJ 0 -14 Td (third\051 \(x\) \101) Tj
<48656C6C6F> Tj 0 0 Td (same) Tj (line) ' ET
BT <FEFF673A5BC6> Tj ET
q BI /W 2 /H 2 /BPC 8 /CS /G ID \x00\x01(garbage) Tj EI Q
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

    /// A page whose /Contents is several streams shows them as one: a word cut where one
    /// stream ends is read whole across them, in the page's order (not the file's), through
    /// a stream whose text is one short line, and when the array is given by reference.
    #[test]
    fn a_line_cut_between_a_pages_content_streams_is_read_across_them() {
        let first: &[u8] = b"BT (line one) Tj T* <FEFF673A> Tj ET";
        let middle: &[u8] = b"BT <FEFF5BC6> Tj ET";
        let last: &[u8] = b"BT <FEFF6587 4EF6> Tj T* (last line) Tj ET";
        // objects: 1 catalog, 2 page, 3 last, 4 middle, 5 first (the file's order reversed)
        let page = |contents: &str| format!("<< /Type /Page /Contents {contents} >>");
        let direct = page("[5 0 R null 4 0 R 3 0 R]");
        let doc = pdf(&[
            catalog(),
            (&direct, None),
            ("<< >>", Some(last)),
            ("<< >>", Some(middle)),
            ("<< >>", Some(first)),
        ]);
        let (verdict, lines) = scan(&doc, true);
        assert_eq!(verdict, Ok(()));
        assert!(lines.iter().any(|l| l == "机密文件"), "{lines:?}");
        // given by reference, in an object after the page
        let indirect = page("6 0 R");
        let doc = pdf(&[
            catalog(),
            (&indirect, None),
            ("<< >>", Some(last)),
            ("<< >>", Some(middle)),
            ("<< >>", Some(first)),
            ("[5 0 R 4 0 R 3 0 R]", None),
        ]);
        let (verdict, lines) = scan(&doc, true);
        assert_eq!(verdict, Ok(()));
        assert!(lines.iter().any(|l| l == "机密文件"), "{lines:?}");
        // one stream per page: nothing is joined
        let single = page("5 0 R");
        let doc = pdf(&[
            catalog(),
            (&single, None),
            ("<< >>", Some(last)),
            ("<< >>", Some(middle)),
            ("<< >>", Some(first)),
        ]);
        let (_, lines) = scan(&doc, true);
        assert!(!lines.iter().any(|l| l.contains("机密")), "{lines:?}");
    }

    /// A long string listed many times over, by many pages: each page's join holds only
    /// the streams' ends, and an array named by reference is read once.
    #[test]
    fn joining_a_pages_streams_stays_bounded_however_often_they_are_listed() {
        let mut long = b"BT <".to_vec();
        for _ in 0..30_000 {
            long.extend_from_slice(b"0041");
        }
        long.extend_from_slice(b"> Tj ET");
        let doc = |listed: usize| {
            let array = format!("[{}]", "4 0 R ".repeat(listed));
            let mut objects: Vec<(String, Option<&[u8]>)> = vec![
                ("<< /Type /Page /Contents 3 0 R >>".to_owned(), None),
                (array, None),
                ("<< >>".to_owned(), Some(&long)),
            ];
            for _ in 0..2_000 {
                objects.push(("<< /Type /Page /Contents 3 0 R >>".to_owned(), None));
            }
            let mut all = vec![catalog()];
            all.extend(objects.iter().map(|(d, b)| (d.as_str(), *b)));
            pdf(&all)
        };
        let (verdict, lines) = scan(&doc(10_000), true);
        assert_eq!(verdict, Ok(()));
        // each join holds two ends of 256 bytes, read once for the one array: about 5 MB
        // of lines in all (two whole strings a join would be 1.2 GB)
        let held: usize = lines.iter().map(String::len).sum();
        assert!(held < 8 << 20, "{held} bytes of lines");
        // an array too long to keep, named as a page's /Contents: not read, so refused
        let (verdict, _) = scan(&doc(20_000), true);
        assert_eq!(
            verdict.unwrap_err().reason,
            crate::core::reason::Reason::ContentUnreadable
        );
    }

    /// An `EI` inside an inline image's data: MuPDF and Poppler read the 30 bytes the
    /// dictionary gives and show the text after the real `EI`; read to the first `EI`, the
    /// `%` after it hid that text in a comment. Refused; the same image without it is read.
    #[test]
    fn an_inline_image_with_an_ei_inside_its_data_is_refused() {
        let page = |data: &[u8], dict: &str| {
            let mut content = format!(
                "BT /F1 24 Tf 50 700 Td (VISIBLE) Tj ET q 30 0 0 1 50 650 cm BI {dict} ID "
            )
            .into_bytes();
            content.extend_from_slice(data);
            content.extend_from_slice(b" EI Q BT /F1 24 Tf 50 600 Td (SECRET) Tj ET");
            pdf(&[catalog(), ("<< >>", Some(&content))])
        };
        let gray = "/W 30 /H 1 /BPC 8 /CS /G";
        let fake = [b" EI %".as_slice(), &[0; 25]].concat();
        let (verdict, _) = scan(&page(&fake, gray), true);
        let refusal = verdict.unwrap_err();
        assert_eq!(
            refusal.reason,
            crate::core::reason::Reason::ContentUnreadable
        );
        assert!(
            refusal
                .detail
                .contains("1 bytes before it, 30 by its width"),
            "{}",
            refusal.detail
        );
        let (verdict, lines) = scan(&page(&[1; 30], gray), true);
        assert_eq!(verdict, Ok(()));
        assert_eq!(lines, ["VISIBLE", "SECRET"]);
        // a mask given by `/IM true`: 30 × 1 bits, 4 bytes
        let mask = "/W 30 /H 1 /IM true";
        assert!(scan(&page(b" EI %", mask), true).0.is_err());
        assert_eq!(scan(&page(&[1; 4], mask), true).0, Ok(()));
        // a Flate image whose zlib stream (stored blocks: its bytes show through) holds the EI
        let flate = "/W 30 /H 1 /BPC 8 /CS /G /F /Fl";
        let stored = super::super::testing::stored(&fake);
        assert!(scan(&page(&stored, flate), true).0.is_err());
        let deflated = super::super::testing::deflate(&[1; 30]);
        assert_eq!(scan(&page(&deflated, flate), true).0, Ok(()));
        // the EI right after the data, with no white space before it: MuPDF and Poppler end
        // the image there and show the text after it, and so does the lexer
        let (verdict, lines) = scan(
            &page(b"12345678901234567890123456789AEI\nBT (x) Tj ET\n", gray),
            true,
        );
        assert_eq!(verdict, Ok(()));
        assert_eq!(lines, ["VISIBLEx", "SECRET"]);
        // a bare `ID`, no `BI` before it: an unknown operator to viewers, which draw the text
        let content = b"BT (VISIBLE) Tj ET q ID\n BT (SHOWN) Tj ET \nQ EI\n";
        let (verdict, lines) = scan(&pdf(&[catalog(), ("<< >>", Some(content))]), true);
        assert_eq!(verdict, Ok(()));
        assert_eq!(lines, ["VISIBLESHOWN"]);
        // a reference in the dictionary is read as one value, not as an operator, and an
        // ICCBased array (MuPDF reads the data of an image it cannot make as operators) refused
        let icc = scan(
            &page(&[1; 30], "/W 30 /H 1 /BPC 8 /CS [/ICCBased 5 0 R]"),
            true,
        );
        assert!(icc.0.unwrap_err().detail.contains("/ICCBased"));
        // an operator inside the dictionary: Poppler draws the image, MuPDF fails
        let stray = scan(&page(&[1; 30], "/W 30 foo /H 1 /BPC 8 /CS /G"), true);
        assert!(stray.0.unwrap_err().detail.contains("`foo`"));
        // outside one, `true` is still an operator: the Tf after it has no name
        let content = b"BT /F1 12 true Tf (x) Tj ET";
        assert_eq!(
            scan(&pdf(&[catalog(), ("<< >>", Some(content))]), true).0,
            Ok(())
        );
        // the stream ends inside the image: refused; right after its `EI`: read
        let cut = b"BT (x) Tj ET BI /W 4 /H 1 /BPC 8 /CS /G ID 1234 (hidden) Tj";
        let (verdict, _) = scan(&pdf(&[catalog(), ("<< >>", Some(cut))]), true);
        assert!(
            verdict
                .unwrap_err()
                .detail
                .contains("ends inside an inline image")
        );
        let last = b"BT (x) Tj ET BI /W 4 /H 1 /BPC 8 /CS /G ID 1234EI";
        assert_eq!(
            scan(&pdf(&[catalog(), ("<< >>", Some(last))]), true).0,
            Ok(())
        );
        // an unknown filter: where viewers end it is not known
        let unknown = scan(&page(&[1; 30], "/F /Crypt"), true).0.unwrap_err();
        assert!(unknown.detail.contains("/Crypt"), "{}", unknown.detail);
    }

    #[test]
    fn hex_strings_read_the_same_in_pieces_of_any_size() {
        // white space inside, either case, an odd last digit (a trailing 0), one unclosed
        let content: &[u8] =
            b"BT << /A <42> >> <48 65\n6C6c\r\t6F> Tj T* <FEFF 673a\n5BC6> Tj T* (x) Tj <41 4> Tj ET <41";
        let read = |step: usize| {
            let mut lines: Vec<String> = Vec::new();
            let mut fonts = Fonts::new();
            let mut lexer = Lexer::new(true);
            let mut sink = |line: &str| {
                lines.push(line.to_string());
                Ok(())
            };
            for piece in content.chunks(step) {
                lexer.feed(piece, &mut sink, &mut fonts).unwrap();
            }
            lexer.finish(&mut sink, &mut fonts, false).unwrap();
            fonts.finish(&mut sink).unwrap();
            lines
        };
        let whole = read(content.len());
        assert_eq!(whole, ["Hello", "机密", "xA@"]);
        for step in 1..content.len() {
            assert_eq!(read(step), whole, "pieces of {step} bytes");
        }
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
        assert!(lines.iter().all(|l| l.len() <= MAX_LINE));
        assert!(lines.iter().any(|l| l.contains("机密")));
        assert!(lines.last().unwrap().ends_with("密tail"));
        // No piece is handed on twice whole, and no more text than twice the line comes out.
        let total: usize = lines.iter().map(String::len).sum();
        assert!(total < 2 * (4 * 16_383 + 10), "{total}");
    }
}
