//! Plain text: decides the encoding of a text file (UTF-8, UTF-16 with a byte-order mark, or
//! GB18030, four-byte sequences included) from its first bytes,
//! scans it line by line in bounded memory, optionally writing a copy in which the lines
//! the caller replaced are re-encoded and every other line is copied byte for byte, and gives
//! the detection view of a line: its escapes decoded and its invisible characters dropped.
//!
//! Lines are split at `\n`, which never occurs inside a multi-byte sequence of either
//! encoding. A line longer than [`MAX_LINE`] is cut at a byte below `0x30` (always a
//! character boundary in both encodings) and scanned in pieces; each piece after a cut is
//! handed over with the last [`OVERLAP`] characters of the line before it, so that nothing
//! straddling a cut goes unseen. Memory stays bounded by the read buffer (two lines' worth)
//! and the decoded piece, whatever the size of the input.
//!
//! UTF-16 is read through [`crate::content::utf16`]: turned into UTF-8 as it is read, and a
//! copy written back turned into the same UTF-16, so that an unchanged text is still copied
//! byte for byte.
//!
//! Text holds no C0 control character but tab, line feed, carriage return and form feed,
//! nor DEL ([`is_control`]): the rule type detection holds a file's first 8 KiB to, held here to
//! every line, so that a text that turns binary after its head (a program appended to a
//! letter) is refused (`text_encoding`), never read as text by one reader and as data by
//! another.
//!
//! A file sniffed as UTF-8 (no byte-order mark) whose lines so far were pure ASCII switches
//! to GB18030 at the first line that is not UTF-8 but is GB18030: ASCII reads the same in
//! both, so a GBK file that starts with a long ASCII header is read whole.

use crate::content::utf16::{ByteOrder, Malformed, Utf16Reader, Utf16Writer};
use crate::core::reason::{Reason, Refusal};
use std::borrow::Cow;
use std::io::{self, Read, Write};

/// A text encoding the gateway can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8, with or without a byte-order mark.
    Utf8,
    /// GB18030, which includes GBK and GB2312.
    Gb18030,
    /// UTF-16, little-endian, after its byte-order mark `FF FE`.
    Utf16Le,
    /// UTF-16, big-endian, after its byte-order mark `FE FF`.
    Utf16Be,
}

impl Encoding {
    /// The encoding's name as written in logs and refusal details.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Gb18030 => "GB18030",
            Encoding::Utf16Le => "UTF-16LE",
            Encoding::Utf16Be => "UTF-16BE",
        }
    }

    /// The byte order of a UTF-16 encoding, `None` for the others.
    fn utf16(self) -> Option<ByteOrder> {
        match self {
            Encoding::Utf16Le => Some(ByteOrder::Le),
            Encoding::Utf16Be => Some(ByteOrder::Be),
            Encoding::Utf8 | Encoding::Gb18030 => None,
        }
    }
}

/// Longest line scanned in one piece; a longer line is cut and scanned in pieces.
pub const MAX_LINE: usize = 1 << 20;

/// How many characters of the line before a cut are handed over again with the piece after
/// it (see [`overlap_tail`]).
pub const OVERLAP: usize = 256;

/// At most this many bytes are added to the start of an overlap to take in the whole of a
/// word or number it would cut.
const OVERLAP_WIDEN: usize = 64;

/// The UTF-8 byte-order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The read buffer: room for a whole line of `MAX_LINE` bytes and as much again to read into.
const BUF_LEN: usize = 2 * MAX_LINE;

/// The buffer is compacted when less than this much room is left at its end.
const MIN_READ: usize = 64 * 1024;

/// Decides the encoding of a text from its first bytes (say up to 8 KiB).
///
/// A UTF-16 byte-order mark gives `Utf16Le` or `Utf16Be` (the rest is checked while it is
/// read); a UTF-32 byte-order mark gives `None`; a UTF-8 byte-order mark, or bytes that are
/// valid UTF-8, give `Utf8`; bytes that decode as GB18030 without error give `Gb18030`;
/// anything else gives `None` ([`unsupported`] says why). In UTF-8 and GB18030 a multi-byte
/// character cut off at the very end of `head` is accepted.
pub fn sniff(head: &[u8]) -> Option<Encoding> {
    if head.starts_with(UTF32LE_BOM) || head.starts_with(UTF32BE_BOM) {
        return None;
    }
    if head.starts_with(ByteOrder::Le.bom()) {
        return Some(Encoding::Utf16Le);
    }
    if head.starts_with(ByteOrder::Be.bom()) {
        return Some(Encoding::Utf16Be);
    }
    if looks_like_utf16(head) {
        // zero bytes are valid UTF-8, but this is UTF-16 whose byte order is not stated
        return None;
    }
    if head.starts_with(BOM) || utf8_prefix(head) {
        Some(Encoding::Utf8)
    } else if gb18030_prefix(head) {
        Some(Encoding::Gb18030)
    } else {
        None
    }
}

/// The UTF-32 byte-order marks: text, but in an encoding the gateway does not read.
const UTF32LE_BOM: &[u8] = b"\xFF\xFE\0\0";
const UTF32BE_BOM: &[u8] = b"\0\0\xFE\xFF";

/// Whether `head` starts with a byte-order mark of UTF-16 or UTF-32: text whatever bytes
/// follow, though not text as [`looks_like_utf16`] or a byte test would see it.
pub fn has_unicode_bom(head: &[u8]) -> bool {
    head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") || head.starts_with(UTF32BE_BOM)
}

/// Whether `head` looks like UTF-16 without a byte-order mark: Latin text in which every
/// other byte is zero (at least 16 bytes, nine tenths of the code units of the form `xx 00`
/// or `00 xx`, and no zero on the other side).
pub fn looks_like_utf16(head: &[u8]) -> bool {
    let units = head.len() / 2;
    if units < 8 {
        return false;
    }
    let pairs = || head.chunks_exact(2);
    let le = pairs().filter(|p| p[1] == 0 && p[0] != 0).count();
    let be = pairs().filter(|p| p[0] == 0 && p[1] != 0).count();
    let both = pairs().filter(|p| p[0] == 0 && p[1] == 0).count();
    both == 0 && (le.max(be) * 10 >= units * 9) && le.min(be) == 0
}

/// Why a text has no encoding the gateway reads, for the `text_encoding` refusal.
pub fn unsupported(head: &[u8]) -> &'static str {
    if head.starts_with(UTF32LE_BOM) || head.starts_with(UTF32BE_BOM) {
        "text in UTF-32, which is not read here (UTF-8, UTF-16 with a byte-order mark and \
         GB18030 are)"
    } else if looks_like_utf16(head) {
        "text in UTF-16 without a byte-order mark, whose byte order cannot be told for sure \
         (save it as UTF-8, or as UTF-16 with a byte-order mark)"
    } else {
        "text that is neither UTF-8, UTF-16 with a byte-order mark nor GB18030"
    }
}

/// Whether `head` is valid UTF-8 save perhaps for a sequence cut off at its end.
fn utf8_prefix(head: &[u8]) -> bool {
    match std::str::from_utf8(head) {
        Ok(_) => true,
        // `error_len` is `None` only when the input ended inside a sequence.
        Err(e) => e.error_len().is_none(),
    }
}

/// Whether `head` decodes as GB18030 save perhaps for a sequence cut off at its end.
fn gb18030_prefix(head: &[u8]) -> bool {
    let mut decoder = encoding_rs::GB18030.new_decoder_without_bom_handling();
    let mut out = [0u8; 4096];
    let mut rest = head;
    loop {
        // `last = false`: an incomplete sequence at the end is kept pending, not an error.
        let (result, read, _) = decoder.decode_to_utf8_without_replacement(rest, &mut out, false);
        rest = rest.get(read..).unwrap_or_default();
        match result {
            encoding_rs::DecoderResult::InputEmpty => return true,
            encoding_rs::DecoderResult::OutputFull => {}
            encoding_rs::DecoderResult::Malformed(_, _) => return false,
        }
    }
}

/// What a scan saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextSummary {
    /// Lines read (a last line without a terminator counts).
    pub lines: u64,
    /// Lines of which the callback replaced at least one piece.
    pub changed_lines: u64,
}

/// Reads `input` line by line, decodes each line strictly in `enc` and hands it, terminator
/// included, to `on_line`.
///
/// The callback returns `Ok(None)` to keep the line, `Ok(Some(text))` to replace it (the
/// replacement should carry the terminator it wants), or `Err(refusal)` to stop the scan.
/// When `output` is given every line is written to it: the original bytes when kept (so an
/// unchanged text is copied byte for byte), the replacement encoded in `enc` when replaced.
/// A UTF-8 byte-order mark at the start is not passed to the callback but is always written.
///
/// A line longer than [`MAX_LINE`] is cut after the last byte below `0x30` in its first
/// `MAX_LINE` bytes and the pieces are scanned separately; a line with no such byte, one
/// that does not decode, or one holding a control byte ([`is_control`]) is refused with
/// [`Reason::TextEncoding`]. The callback gets each
/// piece after a cut with the end of the line before it in front ([`overlap_tail`] of what
/// it got last), so a marking, keyword or number across the cut is seen whole. When such a
/// piece is replaced, the replacement must leave the overlap as it was written already (or
/// change it only as the previous piece's replacement did); a change there would split a
/// replacement across the cut, and the line is refused with [`Reason::TextEncoding`] as too
/// long to mask safely.
///
/// With `enc` UTF-8 and no byte-order mark, a line that is not UTF-8 but is GB18030 while
/// every line before it was pure ASCII switches the rest of the scan to GB18030 (the head
/// the encoding was sniffed from held only ASCII); otherwise it is refused.
///
/// With `enc` UTF-16, `input` must start with its byte-order mark; the text is turned into
/// UTF-8 as it is read (the callback sees UTF-8 text as for any other encoding) and the copy
/// written to `output` is turned back into the same UTF-16, mark first. Text that is not
/// well-formed UTF-16 (an unpaired surrogate, an odd byte at the end) is refused with
/// [`Reason::TextEncoding`].
///
/// `Err` is a read or write failure; `Ok(Err(_))` a refusal, from the callback or the decoder.
pub fn scan_lines<R: Read, W: Write>(
    input: R,
    enc: Encoding,
    output: Option<&mut W>,
    on_line: &mut dyn FnMut(&str) -> Result<Option<String>, Refusal>,
) -> io::Result<Result<TextSummary, Refusal>> {
    let Some(order) = enc.utf16() else {
        return scan_decoded(input, enc, output, on_line);
    };
    let reader = Utf16Reader::new(input, order);
    let result = match output {
        Some(out) => {
            let mut writer = Utf16Writer::new(out, order);
            let result = scan_decoded(reader, Encoding::Utf8, Some(&mut writer), on_line);
            match result {
                Ok(Ok(summary)) => writer.finish().map(|()| Ok(summary)),
                other => other,
            }
        }
        None => scan_decoded(reader, Encoding::Utf8, None::<&mut io::Sink>, on_line),
    };
    match result {
        Err(e) => match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<Malformed>())
        {
            Some(m) => Ok(Err(Refusal::new(
                Reason::TextEncoding,
                format!("{}: {m}", enc.as_str()),
            ))),
            None => Err(e),
        },
        Ok(verdict) => Ok(verdict),
    }
}

/// [`scan_lines`] over an input in UTF-8 or GB18030.
fn scan_decoded<R: Read, W: Write>(
    mut input: R,
    enc: Encoding,
    output: Option<&mut W>,
    on_line: &mut dyn FnMut(&str) -> Result<Option<String>, Refusal>,
) -> io::Result<Result<TextSummary, Refusal>> {
    let mut lines = Lines {
        enc,
        output,
        on_line,
        summary: TextSummary::default(),
        line_no: 1,
        open: false,
        changed: false,
        at_start: true,
        bom: false,
        ascii_so_far: true,
        carry: String::new(),
        carry_written: None,
    };
    let mut buf = vec![0u8; BUF_LEN];
    // buf[start..filled] is read but not yet scanned; buf[start..searched] holds no newline.
    let mut start = 0;
    let mut searched = 0;
    let mut filled = 0;
    let mut eof = false;
    loop {
        let pending = buf.get(searched..filled).unwrap_or_default();
        if let Some(i) = find_newline(pending) {
            let end = searched + i + 1;
            let piece = buf.get(start..end).unwrap_or_default();
            if let Err(refusal) = lines.piece(piece, true)? {
                return Ok(Err(refusal));
            }
            start = end;
            searched = end;
            continue;
        }
        searched = filled;
        if filled - start >= MAX_LINE {
            let window = buf.get(start..start + MAX_LINE).unwrap_or_default();
            let Some(cut) = window.iter().rposition(|&b| b < 0x30) else {
                return Ok(Err(Refusal::new(
                    Reason::TextEncoding,
                    format!(
                        "line {} is longer than {MAX_LINE} bytes and cannot be cut",
                        lines.line_no
                    ),
                )));
            };
            let end = start + cut + 1;
            if let Err(refusal) = lines.piece(window.get(..=cut).unwrap_or_default(), false)? {
                return Ok(Err(refusal));
            }
            start = end;
            continue;
        }
        if eof {
            if start < filled {
                let piece = buf.get(start..filled).unwrap_or_default();
                if let Err(refusal) = lines.piece(piece, true)? {
                    return Ok(Err(refusal));
                }
            }
            break;
        }
        if BUF_LEN - filled < MIN_READ {
            // Fewer than MAX_LINE bytes are pending here (else the line was cut above).
            buf.copy_within(start..filled, 0);
            filled -= start;
            searched -= start;
            start = 0;
        }
        let room = buf.get_mut(filled..).unwrap_or_default();
        let n = loop {
            match input.read(room) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        filled += n;
        eof = n == 0;
    }
    if lines.open {
        lines.end_line();
    }
    Ok(Ok(lines.summary))
}

/// The position of the first `\n` in `bytes`, looking at 32 bytes at a time.
fn find_newline(bytes: &[u8]) -> Option<usize> {
    let mut chunks = bytes.chunks_exact(32);
    let mut offset = 0;
    for chunk in chunks.by_ref() {
        // A branch-free fold the compiler turns into vector compares.
        if chunk.iter().fold(false, |seen, &b| seen | (b == b'\n')) {
            return chunk.iter().position(|&b| b == b'\n').map(|i| offset + i);
        }
        offset += 32;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| offset + i)
}

/// The end of `text` handed over again with the piece after a cut: its last [`OVERLAP`]
/// characters, widened to the start of an ASCII word, number or address cut in two (by at
/// most 64 bytes), so the overlap does not start in the middle of one.
pub fn overlap_tail(text: &str) -> &str {
    let mut start = text
        .char_indices()
        .rev()
        .nth(OVERLAP - 1)
        .map_or(0, |(i, _)| i);
    let floor = start.saturating_sub(OVERLAP_WIDEN);
    let bytes = text.as_bytes();
    while start > floor
        && bytes
            .get(start - 1)
            .is_some_and(|&c| c.is_ascii_alphanumeric() || b" +-._%@".contains(&c))
    {
        start -= 1;
    }
    text.get(start..).unwrap_or_default()
}

/// Whether `c` is invisible in print and dropped from the [`detection_view`]: the soft
/// hyphen, zero-width spaces and joiners, directional marks and embeddings, the word
/// joiner and invisible operators, the byte-order mark, variation selectors, tags and the
/// other default-ignorable and format characters, and the control characters that are not
/// whitespace (C0 but tab and line ends, DEL, C1 but NEL: `机\u{0}密` reads as `机密`).
pub const fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{8}'
            | '\u{E}'..='\u{1F}'
            | '\u{7F}'..='\u{84}'
            | '\u{86}'..='\u{9F}'
            | '\u{AD}'
            | '\u{34F}'
            | '\u{61C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// What a character becomes in the detection view: `None` when dropped.
fn view_char(c: char) -> Option<char> {
    if is_invisible(c) {
        return None;
    }
    Some(match c {
        // Full-width ASCII: ！ to ～, digits ０-９ and ＠ among them.
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
        '\u{A0}'
        | '\u{2000}'..='\u{200A}'
        | '\u{2028}'
        | '\u{2029}'
        | '\u{202F}'
        | '\u{205F}'
        | '\u{3000}' => ' ',
        _ => c,
    })
}

/// Which bytes may start something the detection view changes: a backslash, an ampersand,
/// the ASCII characters [`is_invisible`] drops (the controls) and the lead bytes of the
/// other characters [`view_char`] changes.
const MAY_CHANGE: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 0x80 {
        table[c] = is_invisible(c as u8 as char);
        c += 1;
    }
    let starts: [u8; 11] = [
        b'\\', b'&', 0xC2, 0xCD, 0xD8, 0xE1, 0xE2, 0xE3, 0xEF, 0xF0, 0xF3,
    ];
    let mut i = 0;
    while i < starts.len() {
        table[starts[i] as usize] = true;
        i += 1;
    }
    table
};

/// The position of the first byte at or after `from` that [`MAY_CHANGE`] marks.
fn next_may_change(b: &[u8], from: usize) -> Option<usize> {
    let rest = b.get(from..)?;
    let marked = |c: &u8| MAY_CHANGE[usize::from(*c)];
    let mut chunks = rest.chunks_exact(16);
    let mut offset = from;
    for chunk in chunks.by_ref() {
        // No branch per byte: one table load and an `or` each.
        if chunk.iter().fold(false, |seen, c| seen | marked(c)) {
            return chunk.iter().position(marked).map(|i| offset + i);
        }
        offset += 16;
    }
    chunks
        .remainder()
        .iter()
        .position(marked)
        .map(|i| offset + i)
}

/// `line` as the text rules should read it, so that an escaped or disguised word is seen:
///
/// * JSON escapes decoded: `\uXXXX` (a surrogate pair as one character), `\n`, `\t`, `\r`,
///   `\b`, `\f`, `\/`, `\\` and `\"`; a lone surrogate or an unknown escape stays as written;
/// * XML and HTML character references decoded: `&#NNNN;` and `&#xHHHH;` (the `;` may be
///   missing) and the five named entities `&amp;`, `&lt;`, `&gt;`, `&quot;` and `&apos;`;
/// * invisible characters dropped (see [`is_invisible`]);
/// * full-width ASCII (U+FF01 to U+FF5E) mapped to ASCII, and the ideographic space, the
///   no-break and other fixed-width spaces and the line and paragraph separators to a space.
///
/// Decoding is a single pass: what an escape decodes to is mapped but not decoded again.
/// A line with nothing to change is returned borrowed, after one fast pass over its bytes.
pub fn detection_view(line: &str) -> Cow<'_, str> {
    let b = line.as_bytes();
    let mut out: Option<String> = None;
    // line[..copied] is in `out` (when there is one).
    let mut copied = 0;
    let mut from = 0;
    while let Some(at) = next_may_change(b, from) {
        let rest = line.get(at..).unwrap_or_default();
        let Some((len, becomes)) = view_edit(rest) else {
            // Only ASCII and lead bytes are looked at, so `at + 1` is never inside a
            // character that could change.
            from = at + 1;
            continue;
        };
        let o = out.get_or_insert_with(|| String::with_capacity(line.len()));
        o.push_str(line.get(copied..at).unwrap_or_default());
        if let Some(c) = becomes {
            o.push(c);
        }
        copied = at + len;
        from = copied;
    }
    match out {
        None => Cow::Borrowed(line),
        Some(mut o) => {
            o.push_str(line.get(copied..).unwrap_or_default());
            Cow::Owned(o)
        }
    }
}

/// What the detection view makes of the start of `rest`: how many bytes it replaces and
/// with what (`None` to drop them), or `None` when it stays as it is.
fn view_edit(rest: &str) -> Option<(usize, Option<char>)> {
    let b = rest.as_bytes();
    match b.first()? {
        b'\\' => json_escape(b).map(|(len, c)| (len, view_char(c))),
        b'&' => char_reference(b).map(|(len, c)| (len, view_char(c))),
        _ => {
            let c = rest.chars().next()?;
            let becomes = view_char(c);
            (becomes != Some(c)).then_some((c.len_utf8(), becomes))
        }
    }
}

/// The JSON escape at the start of `b` (which starts with a backslash): its length and the
/// character it stands for.
fn json_escape(b: &[u8]) -> Option<(usize, char)> {
    let c = match b.get(1)? {
        b'n' => '\n',
        b't' => '\t',
        b'r' => '\r',
        b'b' => '\u{8}',
        b'f' => '\u{C}',
        b'/' => '/',
        b'\\' => '\\',
        b'"' => '"',
        b'u' => {
            let unit = hex4(b.get(2..6)?)?;
            if (0xD800..0xDC00).contains(&unit) {
                let low = match b.get(6..8)? {
                    b"\\u" => hex4(b.get(8..12)?)?,
                    _ => return None,
                };
                if !(0xDC00..0xE000).contains(&low) {
                    return None;
                }
                let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                return char::from_u32(code).map(|c| (12, c));
            }
            return char::from_u32(unit).map(|c| (6, c));
        }
        _ => return None,
    };
    Some((2, c))
}

/// The value of four hexadecimal digits.
fn hex4(digits: &[u8]) -> Option<u32> {
    digits
        .iter()
        .try_fold(0u32, |n, &d| char::from(d).to_digit(16).map(|v| n * 16 + v))
}

/// The character reference at the start of `b` (which starts with `&`): its length and the
/// character it stands for.
fn char_reference(b: &[u8]) -> Option<(usize, char)> {
    const NAMED: [(&[u8], char); 5] = [
        (b"&amp;", '&'),
        (b"&lt;", '<'),
        (b"&gt;", '>'),
        (b"&quot;", '"'),
        (b"&apos;", '\''),
    ];
    if b.get(1) != Some(&b'#') {
        return NAMED
            .iter()
            .find(|(name, _)| b.starts_with(name))
            .map(|&(name, c)| (name.len(), c));
    }
    let (radix, digits_at) = match b.get(2) {
        Some(b'x' | b'X') => (16, 3),
        _ => (10, 2),
    };
    let digits = b
        .get(digits_at..)?
        .iter()
        .take_while(|&&d| char::from(d).is_digit(radix))
        .count();
    if digits == 0 {
        return None;
    }
    // Leading zeros are allowed; anything past U+10FFFF saturates and is refused below.
    let value = b
        .get(digits_at..digits_at + digits)?
        .iter()
        .fold(0u32, |n, &d| {
            let v = char::from(d).to_digit(radix).unwrap_or(0);
            n.saturating_mul(radix).saturating_add(v).min(0x0011_0000)
        });
    let c = char::from_u32(value).filter(|&c| c != '\0')?;
    let end = digits_at + digits;
    let len = if b.get(end) == Some(&b';') {
        end + 1
    } else {
        end
    };
    Some((len, c))
}

/// Whether `b` is a control byte that plain text never holds: a C0 control other than tab,
/// line feed, form feed and carriage return, or DEL (ISO/IEC 6429's C0 set and `0x7F`).
/// No byte of a multi-byte character is below `0x30` or `0x7F`, in UTF-8 (all `0x80` and
/// above) or in GB18030 (second bytes `0x30`-`0x39`, `0x40`-`0x7E`, `0x80` and above), so
/// the test is exact on the bytes of both. C1 controls (U+0080 to U+009F) are characters of
/// several bytes, not refused here.
pub fn is_control(b: u8) -> bool {
    (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c)) || b == 0x7f
}

/// The position of the first [`is_control`] byte in `bytes`, looking at 32 bytes at a time.
pub fn first_control(bytes: &[u8]) -> Option<usize> {
    let mut chunks = bytes.chunks_exact(32);
    let mut offset = 0;
    for chunk in chunks.by_ref() {
        // A branch-free fold the compiler turns into vector compares.
        if chunk.iter().fold(false, |seen, &b| seen | is_control(b)) {
            return chunk
                .iter()
                .position(|&b| is_control(b))
                .map(|i| offset + i);
        }
        offset += 32;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| is_control(b))
        .map(|i| offset + i)
}

/// The name of a control byte for a refusal: its Unicode code point and its ISO/IEC 6429
/// abbreviation where it has a common one.
fn control_name(b: u8) -> String {
    let abbreviation = match b {
        0x00 => " (NUL)",
        0x07 => " (BEL)",
        0x08 => " (BS)",
        0x0b => " (VT)",
        0x1a => " (SUB)",
        0x1b => " (ESC)",
        0x7f => " (DEL)",
        _ => "",
    };
    format!("U+{b:04X}{abbreviation}")
}

/// The state of a scan between pieces.
struct Lines<'o, 'c, W> {
    enc: Encoding,
    output: Option<&'o mut W>,
    on_line: &'c mut dyn FnMut(&str) -> Result<Option<String>, Refusal>,
    summary: TextSummary,
    /// The number of the line the next piece belongs to, from 1.
    line_no: u64,
    /// Whether a piece of the current line has been scanned.
    open: bool,
    /// Whether a piece of the current line was replaced.
    changed: bool,
    /// Whether the next piece is the first of the input.
    at_start: bool,
    /// Whether the input started with a UTF-8 byte-order mark.
    bom: bool,
    /// Whether every piece decoded so far was pure ASCII.
    ascii_so_far: bool,
    /// The end of the current line before the cut, handed over with the next piece (empty
    /// at the start of a line).
    carry: String,
    /// What was written for `carry` when an output is kept and it is known, character for
    /// byte (the replacements kept the length); `None` when unknown.
    carry_written: Option<String>,
}

impl<W: Write> Lines<'_, '_, W> {
    /// Decodes one piece, hands it to the callback and writes the result.
    fn piece(&mut self, raw: &[u8], ends_line: bool) -> io::Result<Result<(), Refusal>> {
        let bom = self.at_start && raw.starts_with(BOM);
        self.at_start = false;
        self.bom |= bom;
        let body = if bom {
            raw.get(BOM.len()..).unwrap_or_default()
        } else {
            raw
        };
        // the rule the head was held to (`detect`): a text that turns binary after its
        // first bytes reads as text to a reader that looks at its head, as data to one that
        // reads it all; two readings, so refused
        if let Some(at) = first_control(body) {
            let b = body.get(at).copied().unwrap_or_default();
            return Ok(Err(Refusal::new(
                Reason::TextEncoding,
                format!(
                    "line {} holds the control character {}: text holds no C0 control \
                     character but tab, line feed, carriage return and form feed, nor DEL",
                    self.line_no,
                    control_name(b)
                ),
            )));
        }
        let Some(text) = self.decode(body) else {
            return Ok(Err(Refusal::new(
                Reason::TextEncoding,
                format!("line {} is not valid {}", self.line_no, self.enc.as_str()),
            )));
        };
        let carried = self.carry.len();
        let seen: Cow<'_, str> = if carried == 0 {
            Cow::Borrowed(&text)
        } else {
            let mut joined = std::mem::take(&mut self.carry);
            joined.push_str(&text);
            Cow::Owned(joined)
        };
        let replacement = match (self.on_line)(&seen) {
            Ok(r) => r,
            Err(refusal) => return Ok(Err(refusal)),
        };
        self.open = true;
        // The text written for this piece: `None` for its original bytes.
        let written: Option<&str> = match &replacement {
            None => None,
            Some(new) if carried == 0 => Some(new),
            Some(new) => match self.past_overlap(&seen, new, carried) {
                Some(rest) => (rest != text.as_ref()).then_some(rest),
                None if self.output.is_some() => {
                    return Ok(Err(Refusal::new(
                        Reason::TextEncoding,
                        format!(
                            "line {} is longer than {MAX_LINE} bytes and too long to mask \
                             safely: a replacement crosses a cut",
                            self.line_no
                        ),
                    )));
                }
                None => None,
            },
        };
        if let Some(out) = self.output.as_deref_mut() {
            match written {
                None => out.write_all(raw)?,
                Some(new) => {
                    if bom {
                        out.write_all(BOM)?;
                    }
                    match self.enc {
                        // UTF-16 reaches here turned into UTF-8 (see `scan_lines`).
                        Encoding::Utf8 | Encoding::Utf16Le | Encoding::Utf16Be => {
                            out.write_all(new.as_bytes())?
                        }
                        Encoding::Gb18030 => {
                            // GB18030 covers all of Unicode: encoding never fails.
                            let (bytes, _, _) = encoding_rs::GB18030.encode(new);
                            out.write_all(&bytes)?;
                        }
                    }
                }
            }
        }
        if written.is_some() || (replacement.is_some() && self.output.is_none()) {
            self.changed = true;
        }
        if ends_line {
            self.carry.clear();
            self.carry_written = None;
            self.end_line();
        } else {
            let tail = overlap_tail(&seen);
            let keep = tail.len();
            if self.output.is_some() {
                // What the output holds for `seen`: the overlap as written before, then this
                // piece as written now; its end is what was written for the next overlap.
                let before = self.carry_written.take();
                let now = written.unwrap_or(&text);
                self.carry_written = match before {
                    Some(before) if before.len() == carried => {
                        let mut all = before;
                        all.push_str(now);
                        (all.len() == seen.len())
                            .then(|| all.get(all.len() - keep..).map(str::to_string))
                            .flatten()
                    }
                    Some(_) => None,
                    None if carried == 0 && now.len() == seen.len() => {
                        now.get(now.len() - keep..).map(str::to_string)
                    }
                    None => None,
                };
            }
            self.carry.clear();
            self.carry.push_str(tail);
        }
        Ok(Ok(()))
    }

    /// Decodes one piece in the scan's encoding, switching from UTF-8 to GB18030 when the
    /// piece is GB18030 and all before it was ASCII.
    fn decode<'b>(&mut self, body: &'b [u8]) -> Option<Cow<'b, str>> {
        match self.enc {
            Encoding::Utf8 => match std::str::from_utf8(body) {
                Ok(text) => {
                    if self.ascii_so_far && !text.is_ascii() {
                        self.ascii_so_far = false;
                    }
                    Some(Cow::Borrowed(text))
                }
                Err(_) if self.ascii_so_far && !self.bom => {
                    let text = encoding_rs::GB18030
                        .decode_without_bom_handling_and_without_replacement(body)?;
                    self.enc = Encoding::Gb18030;
                    self.ascii_so_far = false;
                    Some(text)
                }
                Err(_) => None,
            },
            Encoding::Gb18030 => {
                encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(body)
            }
            // UTF-16 reaches the pieces turned into UTF-8 (see `scan_lines`).
            Encoding::Utf16Le | Encoding::Utf16Be => {
                std::str::from_utf8(body).ok().map(Cow::Borrowed)
            }
        }
    }

    /// The part of `new`, the replacement of `seen` (`carried` bytes of overlap, then the piece),
    /// that replaces the piece — when `new` leaves the overlap as the output already holds
    /// it: untouched, or changed only where the previous replacement changed it the same
    /// way. `None` when a replacement would cross the cut.
    fn past_overlap<'n>(&self, seen: &str, new: &'n str, carried: usize) -> Option<&'n str> {
        let (head, rest) = (new.get(..carried)?, new.get(carried..)?);
        let old = seen.get(..carried)?;
        if head == old {
            return Some(rest);
        }
        let written = self.carry_written.as_deref()?;
        let same_length = new.len() == seen.len() && written.len() == carried;
        let agrees = old
            .bytes()
            .zip(head.bytes())
            .zip(written.bytes())
            .all(|((o, n), w)| o == n || n == w);
        (same_length && agrees).then_some(rest)
    }

    /// Counts the current line and starts the next.
    fn end_line(&mut self) {
        self.summary.lines += 1;
        if self.changed {
            self.summary.changed_lines += 1;
        }
        self.line_no += 1;
        self.open = false;
        self.changed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gb(s: &str) -> Vec<u8> {
        encoding_rs::GB18030.encode(s).0.into_owned()
    }

    /// Scans `input`, collecting the lines and the output; `f` decides each line.
    fn run(
        input: &[u8],
        enc: Encoding,
        mut f: impl FnMut(&str) -> Result<Option<String>, Refusal>,
    ) -> (Result<TextSummary, Refusal>, Vec<String>, Vec<u8>) {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        // Reads of 64 KiB: a line longer than MAX_LINE is cut before its end is read.
        let reader = Trickle {
            data: input,
            step: 64 * 1024,
            interrupt: false,
        };
        let result = scan_lines(reader, enc, Some(&mut out), &mut |line: &str| {
            seen.push(line.to_string());
            f(line)
        })
        .unwrap();
        (result, seen, out)
    }

    #[test]
    fn sniffs_gbk_as_gb18030() {
        let bytes = gb("民事判决书 机密\n");
        assert!(std::str::from_utf8(&bytes).is_err());
        assert_eq!(sniff(&bytes), Some(Encoding::Gb18030));
        // A double-byte character cut in half at the end of the head is fine.
        assert_eq!(sniff(&bytes[..3]), Some(Encoding::Gb18030));
        let (result, seen, out) = run(&bytes, Encoding::Gb18030, |_| Ok(None));
        assert_eq!(result.unwrap().lines, 1);
        assert_eq!(seen, vec!["民事判决书 机密\n"]);
        assert_eq!(out, bytes);
    }

    #[test]
    fn sniffs_utf8() {
        let text = "民事判决书\n第二行".as_bytes();
        assert_eq!(sniff(text), Some(Encoding::Utf8));
        // Cut inside the three-byte 书.
        assert_eq!(sniff(&text[..14]), Some(Encoding::Utf8));
        assert_eq!(sniff(b"plain ascii"), Some(Encoding::Utf8));
        assert_eq!(sniff(b""), Some(Encoding::Utf8));
        assert_eq!(sniff(b"\xEF\xBB\xBF\xFF\xFF"), Some(Encoding::Utf8));
    }

    #[test]
    fn binary_junk_is_neither() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\xff\xff\x00\x00\xff"), None);
        assert_eq!(sniff(&[0xFF; 64]), None);
        assert_eq!(sniff(b"ab\x81\x0acd"), None);
    }

    fn utf16(le: bool, text: &str) -> Vec<u8> {
        let mut out = if le {
            vec![0xFF, 0xFE]
        } else {
            vec![0xFE, 0xFF]
        };
        for u in text.encode_utf16() {
            out.extend_from_slice(&if le { u.to_le_bytes() } else { u.to_be_bytes() });
        }
        out
    }

    #[test]
    fn utf16_with_a_byte_order_mark_is_read_and_masked_in_its_own_encoding() {
        let text = "当事人：张三\r\n电话 13800138000\r\n";
        for (le, enc) in [(true, Encoding::Utf16Le), (false, Encoding::Utf16Be)] {
            let bytes = utf16(le, text);
            assert_eq!(sniff(&bytes), Some(enc));
            let (result, seen, out) = run(&bytes, enc, |_| Ok(None));
            assert_eq!(result.unwrap().lines, 2);
            assert_eq!(seen, vec!["当事人：张三\r\n", "电话 13800138000\r\n"]);
            assert_eq!(out, bytes, "unchanged UTF-16 is copied byte for byte");
            let (result, _, out) = run(&bytes, enc, |line| {
                Ok(line
                    .contains("138")
                    .then(|| line.replace("13800138000", "138****8000")))
            });
            assert_eq!(result.unwrap().changed_lines, 1);
            assert_eq!(out, utf16(le, "当事人：张三\r\n电话 138****8000\r\n"));
        }
    }

    #[test]
    fn a_control_byte_anywhere_is_refused_as_the_head_would_be() {
        // over 9 KiB of text, past the 8 KiB a head holds, then each control byte
        let head = "民事判决书，本院依法组成合议庭。\n".repeat(400);
        assert!(gb(&head).len() > 9 * 1024);
        let elf = b"\x7fELF\x02\x01\x01\0\0\0";
        for (tail, name) in [
            (&elf[..], "U+007F (DEL)"),
            (b"abc\0def\n", "U+0000 (NUL)"),
            (b"\x1b[31mred\x1b[0m\n", "U+001B (ESC)"),
            (b"end\x1a", "U+001A (SUB)"),
            (b"\x01", "U+0001"),
        ] {
            let mut utf8 = head.as_bytes().to_vec();
            utf8.extend_from_slice(tail);
            let mut gbk = gb(&head);
            gbk.extend_from_slice(tail);
            for (bytes, enc) in [(utf8, Encoding::Utf8), (gbk, Encoding::Gb18030)] {
                assert_eq!(sniff(&bytes[..8 * 1024]), Some(enc));
                let (result, _, _) = run(&bytes, enc, |_| Ok(None));
                let refusal = result.unwrap_err();
                assert_eq!(refusal.reason, Reason::TextEncoding, "{name}");
                let lines = head.lines().count() + 1;
                assert!(
                    refusal.detail.contains(&format!("line {lines} holds")),
                    "{refusal}"
                );
                assert!(refusal.detail.contains(name), "{refusal}");
            }
        }
        // in UTF-16 too: the control is a character of its own once read
        for (le, enc, tail) in [
            (true, Encoding::Utf16Le, [0x00, 0x00]),
            (false, Encoding::Utf16Be, [0x00, 0x7f]),
        ] {
            let mut bytes = utf16(le, &head);
            bytes.extend_from_slice(&tail);
            let (result, _, _) = run(&bytes, enc, |_| Ok(None));
            let refusal = result.unwrap_err();
            assert_eq!(refusal.reason, Reason::TextEncoding);
            let name = if le { "U+0000 (NUL)" } else { "U+007F (DEL)" };
            assert!(
                refusal
                    .detail
                    .starts_with(&format!("line 401 holds the control character {name}")),
                "{refusal}"
            );
        }
        // after a cut: a line of 1.5 MiB, cut at MAX_LINE, an ESC in its second piece
        let mut long = b"abc ".repeat(384 * 1024);
        long.extend_from_slice(b"\x1b[0m\n");
        let (result, seen, _) = run(&long, Encoding::Utf8, |_| Ok(None));
        assert_eq!(
            seen.len(),
            1,
            "the first piece was scanned, the second refused"
        );
        let refusal = result.unwrap_err();
        assert!(
            refusal
                .detail
                .starts_with("line 1 holds the control character U+001B (ESC)"),
            "{refusal}"
        );
        // the controls text has pass, and so does every GB18030 multi-byte character
        // (no byte of one is a control byte)
        let fine = "a\tb\r\n\x0cpage 2\n".as_bytes();
        let (result, _, out) = run(fine, Encoding::Utf8, |_| Ok(None));
        assert_eq!(result.unwrap().lines, 2);
        assert_eq!(out, fine);
        // every character from U+0080 on, two- and four-byte sequences both
        let all_gb: String = ('\u{80}'..='\u{2FFFF}')
            .filter(|c| !c.is_control())
            .collect();
        assert_eq!(first_control(&gb(&all_gb)), None);
        assert_eq!(first_control(b""), None);
        assert_eq!(first_control(&[b'a'; 100]), None);
        let mut late = vec![b'a'; 100];
        late[70] = 0x7f;
        assert_eq!(first_control(&late), Some(70));
        // in the remainder after the last whole 32 bytes
        let mut last = vec![b'a'; 100];
        last[98] = 0x00;
        assert_eq!(first_control(&last), Some(98));
    }

    #[test]
    fn malformed_utf16_is_refused_as_text_encoding() {
        let mut bytes = utf16(true, "ab");
        bytes.extend_from_slice(&[0x00, 0xDC]); // a lone low surrogate
        let (result, _, _) = run(&bytes, Encoding::Utf16Le, |_| Ok(None));
        let refusal = result.unwrap_err();
        assert_eq!(refusal.reason, Reason::TextEncoding);
        assert!(refusal.detail.contains("UTF-16LE"), "{refusal}");
    }

    #[test]
    fn gb18030_four_byte_sequences_are_read() {
        // U+20000 takes four bytes in GB18030 (95 32 82 36), 机密 two each
        let bytes = gb("𠀀 é 机密\n");
        assert_eq!(&bytes[..4], b"\x95\x32\x82\x36");
        assert_eq!(sniff(&bytes), Some(Encoding::Gb18030));
        let (result, seen, out) = run(&bytes, Encoding::Gb18030, |_| Ok(None));
        assert_eq!(result.unwrap().lines, 1);
        assert_eq!(seen, vec!["𠀀 é 机密\n"]);
        assert_eq!(out, bytes);
    }

    #[test]
    fn unsupported_encodings_say_what_they_seem_to_be() {
        assert_eq!(sniff(b"\xFF\xFE\0\0a\0\0\0"), None);
        assert!(unsupported(b"\xFF\xFE\0\0a\0\0\0").contains("UTF-32"));
        let no_bom = &utf16(true, "plain latin text here")[2..];
        assert!(looks_like_utf16(no_bom));
        assert!(unsupported(no_bom).contains("without a byte-order mark"));
        assert!(!looks_like_utf16(b"plain ascii text, no zeros"));
        assert!(!looks_like_utf16(&[0u8; 64]));
    }

    #[test]
    fn unchanged_text_is_copied_byte_for_byte() {
        let input = "第一行\r\nsecond line\n\n最后一行没有换行".as_bytes();
        let (result, seen, out) = run(input, Encoding::Utf8, |_| Ok(None));
        assert_eq!(
            result.unwrap(),
            TextSummary {
                lines: 4,
                changed_lines: 0
            }
        );
        assert_eq!(
            seen,
            vec!["第一行\r\n", "second line\n", "\n", "最后一行没有换行"]
        );
        assert_eq!(out, input);
    }

    #[test]
    fn replacement_is_reencoded_in_gb18030_and_crlf_kept() {
        let input = gb("甲 13800138000\r\n乙 无\r\n");
        let (result, _, out) = run(&input, Encoding::Gb18030, |line| {
            Ok(line
                .contains("138")
                .then(|| line.replace("13800138000", "138****8000")))
        });
        assert_eq!(
            result.unwrap(),
            TextSummary {
                lines: 2,
                changed_lines: 1
            }
        );
        assert_eq!(out, gb("甲 138****8000\r\n乙 无\r\n"));
    }

    #[test]
    fn bom_is_skipped_for_the_callback_and_kept_in_output() {
        let input = b"\xEF\xBB\xBFhello\nworld\n";
        let (_, seen, out) = run(input, Encoding::Utf8, |_| Ok(None));
        assert_eq!(seen, vec!["hello\n", "world\n"]);
        assert_eq!(out, input);
        let (_, _, out) = run(input, Encoding::Utf8, |l| Ok(Some(l.to_uppercase())));
        assert_eq!(out, b"\xEF\xBB\xBFHELLO\nWORLD\n");
    }

    #[test]
    fn undecodable_line_is_refused_with_its_number() {
        let input = b"ok\nstill ok\nbad \xFF here\n";
        let (result, seen, _) = run(input, Encoding::Utf8, |_| Ok(None));
        let refusal = result.unwrap_err();
        assert_eq!(refusal.reason, Reason::TextEncoding);
        assert!(refusal.detail.contains("line 3"), "{}", refusal.detail);
        assert_eq!(seen.len(), 2);
        // A GB18030 lead byte followed by a newline is not a character.
        let (result, _, _) = run(b"a\x81\nb\n", Encoding::Gb18030, |_| Ok(None));
        assert_eq!(result.unwrap_err().reason, Reason::TextEncoding);
    }

    #[test]
    fn callback_refusal_stops_the_scan() {
        let (result, seen, _) = run(b"a\nstop\nc\n", Encoding::Utf8, |l| {
            if l.starts_with("stop") {
                Err(Refusal::new(Reason::KeywordMatch, "stop"))
            } else {
                Ok(None)
            }
        });
        assert_eq!(result.unwrap_err().reason, Reason::KeywordMatch);
        assert_eq!(seen, vec!["a\n", "stop\n"]);
    }

    #[test]
    fn long_line_is_cut_at_a_low_byte() {
        // One line of 2.5 MiB of "机密," in GB18030, then a short line.
        let unit = gb("机密,");
        let mut input = Vec::new();
        while input.len() < MAX_LINE * 5 / 2 {
            input.extend_from_slice(&unit);
        }
        input.extend_from_slice(b"\ntail\n");
        let mut pieces = Vec::new();
        let mut out = Vec::new();
        let summary = scan_lines(
            &input[..],
            Encoding::Gb18030,
            Some(&mut out),
            &mut |line: &str| {
                assert!(line.len() <= MAX_LINE * 3 / 2);
                pieces.push(line.len());
                Ok(None)
            },
        )
        .unwrap()
        .unwrap();
        assert!(pieces.len() >= 4, "{pieces:?}");
        assert_eq!(summary.lines, 2);
        assert_eq!(out, input);
    }

    #[test]
    fn long_line_without_a_cut_point_is_refused() {
        let input = vec![b'a'; MAX_LINE + 10];
        let (result, _, _) = run(&input, Encoding::Utf8, |_| Ok(None));
        let refusal = result.unwrap_err();
        assert_eq!(refusal.reason, Reason::TextEncoding);
        assert!(refusal.detail.contains("line 1"));
        // Exactly MAX_LINE bytes with the newline is one piece.
        let mut input = vec![b'a'; MAX_LINE - 1];
        input.push(b'\n');
        let (result, seen, _) = run(&input, Encoding::Utf8, |_| Ok(None));
        assert_eq!(result.unwrap().lines, 1);
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn many_lines_across_reads_without_output() {
        let mut input = Vec::new();
        for i in 0..200_000 {
            input.extend_from_slice(format!("第{i}行 line {i}\n").as_bytes());
        }
        let mut count = 0u64;
        let summary = scan_lines(
            &input[..],
            Encoding::Utf8,
            None::<&mut Vec<u8>>,
            &mut |line: &str| {
                assert!(line.ends_with('\n') && line.starts_with('第'));
                count += 1;
                Ok(None)
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(summary.lines, 200_000);
        assert_eq!(count, 200_000);
    }

    /// A reader handing out at most `step` bytes per call, with an interruption between.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
        interrupt: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::Error::from(io::ErrorKind::Interrupted));
            }
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn small_and_interrupted_reads_give_the_same_lines() {
        let input = gb("第一行 机密\r\n第二行\n\n最后");
        let mut seen = Vec::new();
        let mut out = Vec::new();
        let reader = Trickle {
            data: &input,
            step: 1,
            interrupt: false,
        };
        let summary = scan_lines(reader, Encoding::Gb18030, Some(&mut out), &mut |l: &str| {
            seen.push(l.to_string());
            Ok(None)
        })
        .unwrap()
        .unwrap();
        assert_eq!(summary.lines, 4);
        assert_eq!(seen, vec!["第一行 机密\r\n", "第二行\n", "\n", "最后"]);
        assert_eq!(out, input);
    }

    #[test]
    fn read_errors_are_faults() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk gone"))
            }
        }
        let result = scan_lines(
            Broken,
            Encoding::Utf8,
            None::<&mut Vec<u8>>,
            &mut |_: &str| Ok(None),
        );
        assert!(result.is_err());
    }

    #[test]
    fn find_newline_agrees_with_position() {
        let mut bytes = vec![b'x'; 100];
        assert_eq!(find_newline(&bytes), None);
        for at in [0, 31, 32, 33, 63, 64, 99] {
            bytes.fill(b'x');
            bytes[at] = b'\n';
            assert_eq!(find_newline(&bytes), Some(at));
        }
    }

    /// One line longer than [`MAX_LINE`]: `head`, then `filler` (no byte below `0x30`)
    /// repeated to make the first piece end exactly after the last byte of `cut_at`, then
    /// `tail` and a newline. The caller places a byte below `0x30` at the end of `cut_at`.
    fn long_line(head: &str, cut_at: &str, tail: &str, filler: &str) -> String {
        let mut line = String::from(head);
        while line.len() + filler.len() + cut_at.len() <= MAX_LINE {
            line.push_str(filler);
        }
        while line.len() + cut_at.len() < MAX_LINE {
            line.push(':');
        }
        line.push_str(cut_at);
        assert_eq!(line.len(), MAX_LINE);
        line.push_str(tail);
        line.push('\n');
        line
    }

    fn trickle(data: &[u8]) -> Trickle<'_> {
        Trickle {
            data,
            step: 64 * 1024,
            interrupt: false,
        }
    }

    fn pii() -> crate::content::pii::PiiDetector {
        crate::content::pii::PiiDetector::new(&crate::content::pii::PiiKind::ALL)
    }

    #[test]
    fn a_marking_across_a_cut_is_seen() {
        let markings = crate::content::marking::MarkingDetector::new(&[]);
        let line = long_line("", "文件绝 ", "密★10年，其余正文", "机器");
        let check = |l: &str| match markings.find(l) {
            Some(m) => Err(Refusal::new(Reason::ClassificationMarking, m.text)),
            None => Ok(None),
        };
        let (result, seen, out) = run(line.as_bytes(), Encoding::Utf8, check);
        let refusal = result.unwrap_err();
        assert_eq!(refusal.reason, Reason::ClassificationMarking);
        assert!(refusal.detail.contains("绝 密★10年"), "{}", refusal.detail);
        assert_eq!(seen.len(), 2);
        assert!(seen[0].ends_with("绝 "));
        assert!(seen[1].starts_with("机器"));
        assert_eq!(
            seen[1].chars().count(),
            OVERLAP + "密★10年，其余正文\n".chars().count()
        );
        assert_eq!(out.len(), MAX_LINE, "the first piece was written");
        // Without the marking across the cut, the same line passes whole.
        let clean = long_line("", "文件绝 ", "再议，其余正文", "机器");
        let (result, _, out) = run(clean.as_bytes(), Encoding::Utf8, check);
        assert_eq!(result.unwrap().lines, 1);
        assert_eq!(out, clean.as_bytes());
    }

    #[test]
    fn a_keyword_and_a_card_across_a_cut_are_seen_without_output() {
        let rules = crate::content::rules::TextRules::new(&["project x".to_string()], &[]).unwrap();
        let line = long_line("", "the PROJECT ", "X plan", "机");
        let mut calls = 0;
        let result = scan_lines(
            trickle(line.as_bytes()),
            Encoding::Utf8,
            None::<&mut Vec<u8>>,
            &mut |l: &str| {
                calls += 1;
                match rules.find(l) {
                    Some(hit) => Err(Refusal::new(Reason::KeywordMatch, hit.rule)),
                    None => Ok(None),
                }
            },
        )
        .unwrap();
        assert_eq!(result.unwrap_err().reason, Reason::KeywordMatch);
        assert_eq!(calls, 2);
        // A card number in groups of four, cut between its second and third groups.
        let line = long_line("", "卡号4111 1111 ", "1111 1111 止", "机");
        let detector = pii();
        let mut found = Vec::new();
        let result = scan_lines(
            trickle(line.as_bytes()),
            Encoding::Utf8,
            None::<&mut Vec<u8>>,
            &mut |l: &str| {
                found.extend(detector.find(l).into_iter().map(|m| l[m.range].to_string()));
                Ok(None)
            },
        )
        .unwrap();
        assert_eq!(result.unwrap().lines, 1);
        assert_eq!(found, ["4111 1111 1111 1111"]);
    }

    #[test]
    fn masking_across_a_cut_fails_closed() {
        let detector = pii();
        let line = long_line("", "卡号4111 1111 ", "1111 1111 止", "机");
        let (result, seen, _) = run(line.as_bytes(), Encoding::Utf8, |l| Ok(detector.mask(l)));
        let refusal = result.unwrap_err();
        assert_eq!(refusal.reason, Reason::TextEncoding);
        assert!(
            refusal.detail.contains("line 1") && refusal.detail.contains("mask safely"),
            "{}",
            refusal.detail
        );
        assert_eq!(seen.len(), 2);
        // A shorter line with the same number is masked.
        let short = "卡号4111 1111 1111 1111 止\n";
        let (result, _, out) = run(short.as_bytes(), Encoding::Utf8, |l| Ok(detector.mask(l)));
        assert_eq!(result.unwrap().changed_lines, 1);
        assert_eq!(out, "卡号4111 11** **** 1111 止\n".as_bytes());
    }

    #[test]
    fn masking_inside_the_overlap_agrees_across_the_cut() {
        let detector = pii();
        // One mobile number far before the cut, one inside the overlap just before it, one
        // after it: each is masked once, as in the whole line.
        let line = long_line(
            "张三 13800138000，",
            "电话13912345678，,",
            "又13700001111止",
            "机",
        );
        let (result, seen, out) = run(line.as_bytes(), Encoding::Utf8, |l| Ok(detector.mask(l)));
        assert_eq!(
            result.unwrap(),
            TextSummary {
                lines: 1,
                changed_lines: 1
            }
        );
        assert_eq!(seen.len(), 2);
        assert!(seen[1].contains("13912345678"));
        let out = String::from_utf8(out).unwrap();
        assert!(out == detector.mask(&line).unwrap());
        assert_eq!(out.matches("****").count(), 3);
        // A replacement that changes the overlap the same way as before is accepted when the
        // lengths are kept; one that changes its length there is refused.
        let (result, _, _) = run(line.as_bytes(), Encoding::Utf8, |l| {
            Ok(l.contains("13912345678")
                .then(|| l.replace("13912345678", "139")))
        });
        assert_eq!(result.unwrap_err().reason, Reason::TextEncoding);
    }

    #[test]
    fn overlap_tail_takes_the_last_characters_and_whole_numbers() {
        let text = format!("{}{}", "甲".repeat(300), "乙".repeat(OVERLAP));
        assert_eq!(overlap_tail(&text), "乙".repeat(OVERLAP));
        assert_eq!(overlap_tail("short"), "short");
        assert_eq!(overlap_tail(""), "");
        // A number cut by the 256-character bound is taken whole.
        let text = format!("前文13800138000{}", "x".repeat(OVERLAP - 5));
        assert!(overlap_tail(&text).starts_with("13800138000"));
        // But never more than OVERLAP_WIDEN bytes beyond the bound.
        let text = "1".repeat(1000);
        assert_eq!(overlap_tail(&text).len(), OVERLAP + OVERLAP_WIDEN);
    }

    #[test]
    fn ascii_head_then_gbk_switches_to_gb18030() {
        let mut input = Vec::new();
        for i in 0..400 {
            input.extend_from_slice(format!("header line {i}, plain ASCII\r\n").as_bytes());
        }
        assert!(input.len() > 8192);
        assert_eq!(sniff(&input[..8192]), Some(Encoding::Utf8));
        input.extend_from_slice(&gb("民事判决书 张三\r\n"));
        input.extend_from_slice(&gb("电话 13800138000\r\n"));
        input.extend_from_slice(b"ascii again\r\n");
        input.extend_from_slice(&gb("最后一行"));
        let detector = pii();
        let (result, seen, out) = run(&input, Encoding::Utf8, |l| Ok(detector.mask(l)));
        let summary = result.unwrap();
        assert_eq!(
            summary,
            TextSummary {
                lines: 404,
                changed_lines: 1
            }
        );
        assert_eq!(seen[400], "民事判决书 张三\r\n");
        assert_eq!(seen[401], "电话 13800138000\r\n");
        assert_eq!(seen[403], "最后一行");
        // Unchanged lines are copied, the masked one is written back in GB18030.
        let mut expected = input[..input.len()].to_vec();
        let at = expected
            .windows(11)
            .position(|w| w == b"13800138000")
            .unwrap();
        expected[at + 3..at + 7].copy_from_slice(b"****");
        assert_eq!(out, expected);
    }

    #[test]
    fn gbk_after_non_ascii_or_a_bom_is_still_refused() {
        // A line of UTF-8 Chinese before: the file really is UTF-8, the GBK line is bad.
        let mut input = "第一行\n".as_bytes().to_vec();
        input.extend_from_slice(&gb("第二行\n"));
        let (result, seen, _) = run(&input, Encoding::Utf8, |_| Ok(None));
        let refusal = result.unwrap_err();
        assert_eq!(refusal.reason, Reason::TextEncoding);
        assert!(refusal.detail.contains("line 2") && refusal.detail.contains("UTF-8"));
        assert_eq!(seen.len(), 1);
        // A byte-order mark says UTF-8.
        let mut input = b"\xEF\xBB\xBFascii\n".to_vec();
        input.extend_from_slice(&gb("第二行\n"));
        let (result, _, _) = run(&input, Encoding::Utf8, |_| Ok(None));
        assert_eq!(result.unwrap_err().reason, Reason::TextEncoding);
        // Neither encoding.
        let (result, _, _) = run(b"ascii\nbad \xFF\xFF\n", Encoding::Utf8, |_| Ok(None));
        assert_eq!(result.unwrap_err().reason, Reason::TextEncoding);
        // Once switched, a later UTF-8-only line is judged as GB18030.
        let mut input = b"ascii\n".to_vec();
        input.extend_from_slice(&gb("机密\n"));
        input.extend_from_slice("\u{20AC}\n".as_bytes());
        let (result, seen, _) = run(&input, Encoding::Utf8, |_| Ok(None));
        assert_eq!(seen.len(), 2);
        assert!(result.unwrap_err().detail.contains("line 3"));
    }

    #[test]
    fn detection_view_decodes_json_escapes() {
        let cases = [
            (r#"{"note": "\u7edd\u5bc6"}"#, r#"{"note": "绝密"}"#),
            (
                r#""\u0031\u0033\u0038\u0030\u0030\u0031\u0033\u0038\u0030\u0030\u0030""#,
                r#""13800138000""#,
            ),
            (r#"\uD83D\uDE00 \ud83d\ude00"#, "\u{1F600} \u{1F600}"),
            (
                r#"a\nb\tc\rd\/e\\f\"g\bh\fi"#,
                // a backspace prints as nothing: dropped like the other controls
                "a\nb\tc\rd/e\\f\"gh\u{c}i",
            ),
            // A lone or reversed surrogate, a short escape, an unknown escape: as written.
            (
                r#"\ud83d x \ude00\ud83d \u12 \q C:\data"#,
                r#"\ud83d x \ude00\ud83d \u12 \q C:\data"#,
            ),
            // An escaped backslash is not the start of an escape.
            (r#"\\u7edd"#, r#"\u7edd"#),
            // What an escape decodes to is mapped: a zero-width space goes, full width folds.
            (r#"绝\u200b密 \uff11"#, "绝密 1"),
        ];
        for (line, want) in cases {
            assert_eq!(detection_view(line), want, "{line}");
        }
    }

    #[test]
    fn detection_view_decodes_character_references() {
        let cases = [
            ("&#x7EDD;&#x5BC6;", "绝密"),
            ("&#X7edd;&#23494;", "绝密"),
            ("&#27748;", "汤"),
            ("&#0000027748;", "汤"),
            ("&#27748 x", "汤 x"),
            ("a &amp; b &lt;c&gt; &quot;q&apos;", "a & b <c> \"q'"),
            ("&amp;#x7EDD;", "&#x7EDD;"),
            // Not references, or not characters: as written.
            (
                "&# &#x; &#0; &#x110000; &#xD800; &nbsp; & &foo;",
                "&# &#x; &#0; &#x110000; &#xD800; &nbsp; & &foo;",
            ),
            ("&#99999999999999999999;", "&#99999999999999999999;"),
            ("&#8203;", ""),
        ];
        for (line, want) in cases {
            assert_eq!(detection_view(line), want, "{line}");
        }
    }

    #[test]
    fn detection_view_drops_invisibles_and_folds_width() {
        let cases = [
            ("绝\u{200B}密", "绝密"),
            ("机\u{AD}\u{200C}\u{200D}\u{200E}\u{200F}密", "机密"),
            ("秘\u{2060}\u{2061}\u{2064}\u{FEFF}\u{180E}密", "秘密"),
            (
                "\u{202A}\u{202B}\u{202C}\u{202D}\u{202E}\u{2066}\u{2067}\u{2068}\u{2069}\u{61C}x",
                "x",
            ),
            ("a\u{FE0F}\u{E0041}b", "ab"),
            ("机\u{0}密", "机密"),
            ("機\u{1}\u{1F}\u{7F}密", "機密"),
            ("秘\u{80}\u{9F}密", "秘密"),
            ("138\u{0}1234\u{0}5678", "13812345678"),
            ("a\tb\u{B}c\u{C}d\r\u{85}e", "a\tb\u{B}c\u{C}d\r\u{85}e"),
            ("１３８００１３８０００", "13800138000"),
            ("ｚｈａｎｇ＠ｃｏｕｒｔ．ｇｏｖ．ｃｎ", "zhang@court.gov.cn"),
            ("（２０２６）吉０１民初１２３号", "(2026)吉01民初123号"),
            ("机\u{3000}密\u{2028}正文\u{2029}完", "机 密 正文 完"),
            ("138\u{A0}0013\u{202F}8000", "138 0013 8000"),
        ];
        for (line, want) in cases {
            assert_eq!(detection_view(line), want, "{line:?}");
        }
    }

    #[test]
    fn detection_view_borrows_when_nothing_changes() {
        for line in [
            "",
            "plain ascii, 13800138000 & more; a\\d",
            "民事判决书。“引号”、《书名》★绝密★ 😀 €",
            "ÀÉÎ ñ ß Ω Я ─ ① ※ 〜 ｡",
            "C:\\data\\old & new",
        ] {
            assert!(matches!(detection_view(line), Cow::Borrowed(_)), "{line:?}");
        }
        let long = "判决如下。".repeat(10_000);
        assert!(matches!(detection_view(&long), Cow::Borrowed(_)));
    }

    #[test]
    fn detectors_find_what_the_view_uncovers() {
        let markings = crate::content::marking::MarkingDetector::new(&[]);
        let rules = crate::content::rules::TextRules::new(&["内部资料".to_string()], &[]).unwrap();
        let detector = pii();
        let json = r#"{"a":"\u7edd\u5bc6","b":"\u5185\u90e8\u8d44\u6599","c":"\u0031\u0033\u0038\u0030\u0030\u0031\u0033\u0038\u0030\u0030\u0030"}"#;
        assert!(markings.find(json).is_none());
        assert!(rules.find(json).is_none());
        assert!(detector.find(json).is_empty());
        let view = detection_view(json);
        assert_eq!(markings.find(&view).unwrap().level, "绝密");
        assert_eq!(rules.find(&view).unwrap().rule, "内部资料");
        assert_eq!(detector.find(&view).len(), 1);
        let html = "<p>&#x7EDD;&#x5BC6;</p><p>手机：１３８ ００１３ ８０００</p>";
        assert!(markings.find(html).is_none());
        assert!(detector.find(html).is_empty());
        let view = detection_view(html);
        assert_eq!(markings.find(&view).unwrap().level, "绝密");
        assert_eq!(detector.find(&view).len(), 1);
    }

    /// Speed of the detection view on case-record lines (Chinese with full-width
    /// punctuation, so most lines change). Run with
    /// `cargo test --release -- --ignored --nocapture view_speed`.
    #[test]
    #[ignore]
    fn view_speed() {
        let line = "12345,2026-01-15,（2026）吉01民初1234号,张三诉李四借款合同纠纷,本金123456.78元，判决如下。\n";
        let plain = "12345,2026-01-15,(2026)吉01民初1234号,张三诉李四借款合同纠纷,本金123456.78元,判决如下。\n";
        for (name, line) in [("full-width", line), ("plain", plain)] {
            let text = line.repeat((64 << 20) / line.len());
            let started = std::time::Instant::now();
            let owned = text
                .split_inclusive('\n')
                .filter(|l| matches!(detection_view(l), Cow::Owned(_)))
                .count();
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{name}: {:.0} MiB/s, {owned} lines changed",
                text.len() as f64 / f64::from(1 << 20) / secs
            );
        }
    }
}
