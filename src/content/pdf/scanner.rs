//! The whole-file scanner: every top-level byte searched for active names and split into
//! tokens; the dictionary of each object captured (and, when text is read, handed to the
//! fonts), and a `stream` right after it opened with a plan of what to do with its data
//! (decode, search, read text and CMaps, read objects, or skip); a `>> stream` the tokens do
//! not accept decoded on the side.

use super::active::Names;
use super::filters::Stage;
use super::fonts::Fonts;
use super::lexical::{find, is_regular, is_white, rfind};
use super::objects::Parser;
use super::objstm::ObjStm;
use super::stream::{StreamState, TextMode};
use super::stream_info::StreamInfo;
use super::strings::{DocStrings, Found, MAX_STRING};
use super::text::Lexer;
use super::tokenizer::{Frames, Tok, Tokenizer};
use super::{CHUNK, PdfOptions, unreadable};
use crate::content::LineSink;
use crate::core::reason::Refusal;

/// Bytes kept before a `stream` keyword, and the longest stream dictionary read.
pub(super) const RECENT_CAP: usize = 64 * 1024;

/// A direct /Length up to this many bytes is checked against the `endstream` after it.
const VERIFY_MAX: usize = CHUNK / 2;

/// Bytes of dictionaries read for side streams, on top of four times the top-level bytes.
const SIDE_WORK: u64 = 64 << 20;

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
pub(super) struct Scanner<'s, 'a> {
    opts: PdfOptions,
    sink: &'s mut LineSink<'a>,
    /// Names in every byte outside streams, strings and comments included.
    names: Names,
    /// Document-level strings a reader sees (title, annotations, field values).
    doc_strings: DocStrings,
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
    /// The fonts and CMaps met, and the text waiting for them.
    fonts: Fonts,
    /// The numbers of the last two tokens, if they were numbers (`5 0` before `obj`).
    numbers: [Option<u32>; 2],
    /// The number of the current object.
    object: Option<u32>,
    /// The current object has a stream (its dictionary was handed on at `stream`).
    streamed: bool,
    /// The last stream ended at the first `endstream` found, no /Length confirming it:
    /// the token after it must be `endobj`, else where it ended is in doubt.
    end_unconfirmed: bool,
}

/// Six bytes as one big-endian number, to compare with the last six bytes read.
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
/// The last six bytes of the rolling window.
const SIX: u64 = 0xffff_ffff_ffff;

impl<'s, 'a> Scanner<'s, 'a> {
    /// A scanner at the start of the file, handing text to `sink`.
    pub(super) fn new(opts: PdfOptions, sink: &'s mut LineSink<'a>) -> Scanner<'s, 'a> {
        Scanner {
            opts,
            sink,
            names: Names::new(opts.allow_uri),
            doc_strings: DocStrings::default(),
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
            fonts: Fonts::new(),
            numbers: [None; 2],
            object: None,
            streamed: false,
            end_unconfirmed: false,
        }
    }
}

impl Scanner<'_, '_> {
    /// Scans `data`; returns how many bytes were consumed (the rest comes again, with more).
    pub(super) fn feed(&mut self, data: &[u8], eof: bool) -> Result<usize, Refusal> {
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
                    open.state.feed(&rest[..len], self.sink, &mut self.fonts)?;
                    self.end_stream()?;
                    at += end;
                    continue;
                }
            }
            match find(rest, b"endstream") {
                Some(end) => {
                    open.state.feed(&rest[..end], self.sink, &mut self.fonts)?;
                    // `endstream` inside a raw content stream's comment or string, no
                    // /Length confirming it: where a viewer ends the stream is in doubt (in
                    // a filtered one, such a cut fails to decode, and is refused so; an
                    // image's raw bytes are no content and are not judged so)
                    if self.opts.read_text
                        && open.state.stages.is_empty()
                        && open.state.text == TextMode::Strict
                        && open
                            .state
                            .lexer
                            .as_ref()
                            .is_some_and(Lexer::in_comment_or_string)
                    {
                        return Err(unreadable(
                            "PDF stream ends at an `endstream` inside a comment or string of its content, which no /Length confirms: where it ends is in doubt",
                        ));
                    }
                    self.end_stream()?;
                    self.end_unconfirmed = true;
                    at += end + b"endstream".len();
                }
                None if eof => return Err(unreadable("PDF ends inside a stream")),
                None => {
                    let keep = rest.len().min(b"endstream".len() - 1);
                    let take = rest.len() - keep;
                    open.state.feed(&rest[..take], self.sink, &mut self.fonts)?;
                    return Ok(at + take);
                }
            }
        }
        Ok(at)
    }

    fn end_stream(&mut self) -> Result<(), Refusal> {
        if let Some(mut open) = self.stream.take() {
            open.state.finish(self.sink, &mut self.fonts)?;
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
        if self.opts.read_text {
            match self.doc_strings.feed(b) {
                Some(Found::Text(text)) => (self.sink)(&text)?,
                Some(Found::TooLong) => {
                    return Err(unreadable(format!(
                        "a document string (title, annotation or field value) longer than {} \
                         KiB cannot be read whole",
                        MAX_STRING >> 10
                    )));
                }
                None => {}
            }
        }
        self.roll = self.roll << 8 | u64::from(b);
        if self.names.feed(b) {
            let name = self.names.last();
            if name == b"Encrypt" {
                return Err(unreadable("PDF is encrypted and cannot be inspected"));
            }
            if self.opts.refuse_active {
                self.names.check()?;
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
        if std::mem::take(&mut self.end_unconfirmed)
            && self.opts.read_text
            && !matches!(&tok, Tok::Word(w) if [&b"endobj"[..], b"xref", b"trailer", b"startxref"].iter().any(|k| w.is(k)))
        {
            // `% endstream` in a content stream's comment, say: a reader that goes by the
            // /Length object reads on, and shows text this one would pass over as bytes
            return Err(unreadable(
                "PDF stream ends at an `endstream` that no /Length confirms and no `endobj` follows: where it ends is in doubt",
            ));
        }
        let depth_before = self.frames.depth();
        let closed_outer = self.frames.token(&tok);
        let number = match &tok {
            Tok::Word(w) => w
                .bytes()
                .and_then(|b| std::str::from_utf8(b).ok()?.parse().ok()),
            _ => None,
        };
        let numbers = self.numbers;
        self.numbers = [numbers[1], number];
        let after_dict = std::mem::replace(&mut self.after_dict, closed_outer);
        match tok {
            Tok::DictOpen if depth_before == 0 => {
                self.capture.clear();
                self.capture.push(b'<');
                self.capturing = true;
                self.capture_closing = false;
                self.capture_long = false;
            }
            // an object that is an array: maybe a page's /Contents, given by reference
            Tok::ArrayOpen if depth_before == 0 && self.in_object && !self.streamed => {
                // the `[` itself is this byte, captured below
                self.capture.clear();
                self.capturing = true;
                self.capture_closing = false;
                self.capture_long = false;
            }
            Tok::DictClose if closed_outer => self.capture_closing = true,
            Tok::ArrayClose if depth_before == 1 && self.frames.depth() == 0 => {
                self.capture_closing = true;
            }
            Tok::Word(w) if w.is(b"obj") || w.is(b"endobj") => {
                self.object_done();
                self.in_object = w.is(b"obj");
                self.object = if self.in_object { numbers[0] } else { None };
                self.streamed = false;
                self.frames.clear();
                self.capturing = false;
                self.capture.clear();
                self.capture_long = false;
            }
            Tok::Word(w) if w.is(b"stream") && after_dict && self.in_object => {
                self.start_stream(b)?;
                return Ok(true);
            }
            _ => {}
        }
        Ok(false)
    }

    /// The end of an object without a stream: its dictionary is handed to the fonts.
    fn object_done(&mut self) {
        if !self.in_object || self.streamed || !self.opts.read_text {
            return;
        }
        if self.capture_long {
            if self.capture.first() == Some(&b'[') {
                // an array too long to keep: a page whose /Contents names it is unreadable
                if let Some(num) = self.object {
                    self.fonts.array_not_kept(num);
                }
            } else {
                self.fonts.lost = true;
            }
        } else if let Some(value) = Parser::whole(&self.capture) {
            self.fonts.object(self.object, &value, false);
        }
    }

    fn start_stream(&mut self, eol: u8) -> Result<(), Refusal> {
        self.end_side()?;
        if self.capture_long {
            return Err(unreadable("PDF stream dictionary longer than 64 KiB"));
        }
        let dict = Parser::whole(&self.capture);
        let info = StreamInfo::of(dict.as_ref());
        let mut state = self.plan(&info, false)?;
        self.streamed = true;
        if self.opts.read_text {
            if let Some(dict) = &dict {
                self.fonts.object(self.object, dict, true);
            }
            if let (Some(lexer), Some(num)) = (state.lexer.as_mut(), self.object) {
                lexer.cmap_target = Some((num, info.use_cmap.clone()));
                lexer.object = Some(num);
            }
        }
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
            allow_uri,
        } = self.opts;
        let new_names = || Names::new(allow_uri);
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
                names: refuse_active.then(new_names),
                objects: read_text.then(|| ObjStm::new(info.first)),
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
            names: names.then(new_names),
            raw_names: raw_names.then(new_names),
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
            side.state
                .feed(&side.pending[..take], self.sink, &mut self.fonts)?;
            side.pending.drain(..take);
        }
        Ok(())
    }

    fn end_side(&mut self) -> Result<(), Refusal> {
        if let Some(mut side) = self.side.take() {
            side.state.feed(&side.pending, self.sink, &mut self.fonts)?;
            side.state.finish(self.sink, &mut self.fonts)?;
        }
        Ok(())
    }

    /// The end of the file.
    pub(super) fn finish(&mut self) -> Result<(), Refusal> {
        if let Some(tok) = self.tokens.finish() {
            self.frames.token(&tok);
        }
        if self.opts.refuse_active {
            self.names.finish()?;
        } else {
            self.names.feed(b' ');
        }
        self.end_side()?;
        if self.objects == 0 {
            return Err(unreadable("PDF holds no objects"));
        }
        if self.opts.read_text {
            self.object_done();
            self.fonts.finish(self.sink)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{HIDDEN, PAGE, catalog, deflate, pdf, reason, scan, stored};
    use super::*;
    use crate::core::reason::Reason;
    use std::io::Write;
    use std::time::Instant;

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

    /// An unfiltered content stream with an indirect /Length and `% endstream` in a comment:
    /// a reader that goes by the /Length shows the text after the comment; here the end is in
    /// doubt, so the file is unreadable. An ordinary indirect /Length passes.
    #[test]
    fn an_endstream_that_no_length_confirms_must_be_followed_by_endobj() {
        for hidden in [
            &b"BT (plain) Tj ET % endstream\nBT 72 680 Td <FEFF673A5BC6> Tj ET"[..],
            // `endobj` written after the false end: still inside the comment's line
            b"BT (plain) Tj ET % endstream\nendobj\nBT 72 680 Td <FEFF673A5BC6> Tj ET",
            // in a string
            b"BT (plain endstream\nendobj) Tj 72 680 Td <FEFF673A5BC6> Tj ET",
            // ended right, but something other than endobj follows
            b"BT (plain) Tj ET\nendstream\nBT 72 680 Td <FEFF673A5BC6> Tj ET",
        ] {
            let doc = pdf(&[catalog(), ("<< /Length 9 0 R >>", Some(hidden))]);
            assert_eq!(
                reason(&doc, false, true),
                Some(Reason::ContentUnreadable),
                "{}",
                String::from_utf8_lossy(hidden)
            );
        }
        let doc = pdf(&[catalog(), ("<< /Length 9 0 R >>", Some(PAGE))]);
        assert_eq!(scan(&doc, true), (Ok(()), vec!["Hello secret".to_owned()]));
        // an unfiltered image's bytes are no content: a `(` or `%` in them is no string
        let pixels: &[u8] = b"\x00\x01( %\xff\x80";
        let doc = pdf(&[catalog(), ("<< /Subtype /Image /Length 0 >>", Some(pixels))]);
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
}
