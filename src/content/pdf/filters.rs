//! Filter chains: each filter of a stream (Flate, LZW, ASCIIHex, ASCII85, RunLength) and each
//! predictor (PNG, TIFF) is one stage that decodes what it is handed and hands its output to
//! the next, with its own accounting: a stage is cut at the per-stream cap or when it expands
//! more than the bomb ratio. Every stage works on bounded buffers; a decoded stream is never
//! held whole.
//!
//! ```text
//!  stream data ─► stage ─► stage ─► … ─► readers (names, objects, text)
//!                  │ each: decode into a bounded buffer, count in and out, cut on cap or ratio
//! ```

use super::lexical::{hex_value, is_white};
use crate::reason::Refusal;
use flate2::{Decompress, FlushDecompress, Status};

/// Most bytes taken out of one filter of one stream.
const STREAM_CAP: u64 = 64 << 20;

/// A filter expanding more than this many times is a bomb: it is stopped.
const BOMB_RATIO: u64 = 1000;

/// The ratio check applies once a filter has put out this many bytes.
const BOMB_FLOOR: u64 = 1 << 20;

/// Longest predictor row undone, in bytes.
pub(super) const MAX_ROW: usize = 1 << 20;

/// Input bytes a byte-wise filter decodes before handing its output on.
const SLICE: usize = 256;

/// A decoding filter this scanner applies, or an image filter it never applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FilterKind {
    /// FlateDecode (zlib).
    Flate,
    /// LZWDecode.
    Lzw,
    /// ASCIIHexDecode.
    AsciiHex,
    /// ASCII85Decode.
    Ascii85,
    /// RunLengthDecode.
    RunLength,
    /// DCT, JPX, JBIG2, CCITT: image data, never decoded.
    Image,
}

/// A predictor to undo after a Flate or LZW filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Predictor {
    /// 2 (TIFF) or 10-15 (PNG).
    pub(super) kind: i64,
    /// Bytes per pixel (at least 1).
    pub(super) pixel: usize,
    /// Bytes per row, without the PNG tag byte.
    pub(super) row: usize,
}

/// One filter of a stream's chain, with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Filter {
    /// Which filter.
    pub(super) kind: FilterKind,
    /// The predictor undone after it (Flate and LZW only).
    pub(super) predictor: Option<Predictor>,
    /// LZW: codes widen one code sooner (/EarlyChange 1, the default).
    pub(super) early_change: bool,
}

/// How a filter stage stopped, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Stop {
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
pub(super) struct Lzw {
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
    /// A decoder at the start of its data; `early_change` widens the codes one code sooner.
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

    /// Adds a table entry: `prefix` followed by `byte`.
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

    /// Decodes the whole codes in `input` into `out`.
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
pub(super) enum Step {
    /// Inflating a zlib stream.
    Flate(Box<Decompress>),
    /// Decoding LZW codes.
    Lzw(Box<Lzw>),
    /// Hex digit pairs to bytes; `high` is a digit waiting for its pair.
    AsciiHex { high: Option<u8> },
    /// Base-85 groups to bytes: `n` digits of `group` read, `tilde` after `~`.
    Ascii85 {
        group: [u8; 5],
        n: usize,
        tilde: bool,
    },
    /// Runs and literal spans to bytes.
    RunLength {
        /// Literal bytes still to copy, or the count of a repeat waiting for its byte.
        literal: usize,
        repeat: usize,
    },
    /// PNG predictor rows undone: `row` read so far (tag byte first), the rows before and now.
    Png {
        predictor: Predictor,
        row: Vec<u8>,
        previous: Vec<u8>,
        current: Vec<u8>,
    },
    /// TIFF predictor 2 undone, one row at a time.
    Tiff { predictor: Predictor, row: Vec<u8> },
}

/// One stage of a filter chain, with its own output accounting.
#[derive(Debug)]
pub(super) struct Stage {
    /// What it decodes.
    pub(super) step: Step,
    /// Its output buffer.
    out: Vec<u8>,
    /// Bytes taken in.
    total_in: u64,
    /// Bytes put out.
    pub(super) total_out: u64,
    /// Whether, and how, it stopped.
    pub(super) stop: Stop,
}

/// Where a stage hands its output: the next stage, or the stream's consumers.
pub(super) type Next<'n> = dyn FnMut(&[u8]) -> Result<(), Refusal> + 'n;

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
pub(super) fn paeth(a: u8, b: u8, c: u8) -> u8 {
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

/// Appends the bytes of a base-85 group of `n` digits (2 to 5); false when it overflows.
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
    /// A stage at the start of its data.
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
    pub(super) fn chain(filters: &[Filter]) -> Option<Vec<Stage>> {
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
pub(super) fn run(stages: &mut [Stage], input: &[u8], out: &mut Next<'_>) -> Result<(), Refusal> {
    match stages.split_first_mut() {
        None => out(input),
        Some((first, rest)) => first.push(input, &mut |piece| run(rest, piece, out)),
    }
}

/// Flushes every stage in turn at the end of the data.
pub(super) fn run_flush(stages: &mut [Stage], out: &mut Next<'_>) -> Result<(), Refusal> {
    if let Some((first, rest)) = stages.split_first_mut() {
        first.flush(&mut |piece| run(rest, piece, out))?;
        run_flush(rest, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{
        HIDDEN, ascii_hex, ascii85, catalog, deflate, lzw, pdf, png_rows, reason, scan,
    };
    use super::*;
    use crate::reason::Reason;
    use std::time::Instant;

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
}
