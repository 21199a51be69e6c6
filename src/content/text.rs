//! Plain text: decides the encoding of a text file (UTF-8 or GB18030) from its first bytes,
//! and scans it line by line in bounded memory, optionally writing a copy in which the lines
//! the caller replaced are re-encoded and every other line is copied byte for byte.
//!
//! Lines are split at `\n`, which never occurs inside a multi-byte sequence of either
//! encoding. A line longer than [`MAX_LINE`] is cut at a byte below `0x30` (always a
//! character boundary in both encodings) and scanned in pieces; memory stays bounded by the
//! read buffer (two lines' worth) and the decoded piece, whatever the size of the input.

use crate::reason::{Reason, Refusal};
use std::borrow::Cow;
use std::io::{self, Read, Write};

/// A text encoding the gateway can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8, with or without a byte-order mark.
    Utf8,
    /// GB18030, which includes GBK and GB2312.
    Gb18030,
}

impl Encoding {
    /// The encoding's name as written in logs and refusal details.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Gb18030 => "GB18030",
        }
    }
}

/// Longest line scanned in one piece; a longer line is cut and scanned in pieces.
pub const MAX_LINE: usize = 1 << 20;

/// The UTF-8 byte-order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The read buffer: room for a whole line of `MAX_LINE` bytes and as much again to read into.
const BUF_LEN: usize = 2 * MAX_LINE;

/// The buffer is compacted when less than this much room is left at its end.
const MIN_READ: usize = 64 * 1024;

/// Decides the encoding of a text from its first bytes (say up to 8 KiB).
///
/// A UTF-8 byte-order mark, or bytes that are valid UTF-8, give `Utf8`; bytes that decode as
/// GB18030 without error give `Gb18030`; anything else gives `None`. In both encodings a
/// multi-byte character cut off at the very end of `head` is accepted.
pub fn sniff(head: &[u8]) -> Option<Encoding> {
    if head.starts_with(BOM) || utf8_prefix(head) {
        Some(Encoding::Utf8)
    } else if gb18030_prefix(head) {
        Some(Encoding::Gb18030)
    } else {
        None
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
/// `MAX_LINE` bytes and the pieces are scanned separately; a line with no such byte, or one
/// that does not decode, is refused with [`Reason::TextEncoding`].
///
/// `Err` is a read or write failure; `Ok(Err(_))` a refusal, from the callback or the decoder.
pub fn scan_lines<R: Read, W: Write>(
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
}

impl<W: Write> Lines<'_, '_, W> {
    /// Decodes one piece, hands it to the callback and writes the result.
    fn piece(&mut self, raw: &[u8], ends_line: bool) -> io::Result<Result<(), Refusal>> {
        let bom = self.at_start && raw.starts_with(BOM);
        self.at_start = false;
        let body = if bom {
            raw.get(BOM.len()..).unwrap_or_default()
        } else {
            raw
        };
        let decoded: Option<Cow<'_, str>> = match self.enc {
            Encoding::Utf8 => std::str::from_utf8(body).ok().map(Cow::Borrowed),
            Encoding::Gb18030 => {
                encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(body)
            }
        };
        let Some(text) = decoded else {
            return Ok(Err(Refusal::new(
                Reason::TextEncoding,
                format!("line {} is not valid {}", self.line_no, self.enc.as_str()),
            )));
        };
        let replacement = match (self.on_line)(&text) {
            Ok(r) => r,
            Err(refusal) => return Ok(Err(refusal)),
        };
        self.open = true;
        if let Some(out) = self.output.as_deref_mut() {
            match &replacement {
                None => out.write_all(raw)?,
                Some(new) => {
                    if bom {
                        out.write_all(BOM)?;
                    }
                    match self.enc {
                        Encoding::Utf8 => out.write_all(new.as_bytes())?,
                        Encoding::Gb18030 => {
                            // GB18030 covers all of Unicode: encoding never fails.
                            let (bytes, _, _) = encoding_rs::GB18030.encode(new);
                            out.write_all(&bytes)?;
                        }
                    }
                }
            }
        }
        if replacement.is_some() {
            self.changed = true;
        }
        if ends_line {
            self.end_line();
        }
        Ok(Ok(()))
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
        let result = scan_lines(input, enc, Some(&mut out), &mut |line: &str| {
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
}
