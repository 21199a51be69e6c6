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
//!
//! Flate is decoded by `flate2`, LZW by `weezl` (most significant bit first, 9 to 12-bit
//! codes; /EarlyChange 1, PDF's default, widens the codes one code sooner as TIFF does, and
//! /EarlyChange 0 as the original LZW does); both are handed one output buffer at a time.

use super::lexical::{hex_value, is_white};
use crate::core::reason::Refusal;
use flate2::{Decompress, FlushDecompress, Status};
use std::fmt;
use weezl::decode::Decoder;
use weezl::{BitOrder, LzwStatus};

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

/// Output buffer of a Flate or LZW stage: the most handed on at once.
const OUT_BUF: usize = 64 * 1024;

/// Calls in a row that an LZW decoder may make no progress (clear codes only) before a stage
/// stops asking it; more than its bit buffer can hold.
const LZW_IDLE: u32 = 64;

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

/// An LZW decoder (weezl's), as PDF's LZWDecode needs it.
pub(super) struct Lzw(Decoder);

impl Lzw {
    /// A decoder of 8-bit data in 9 to 12-bit codes, most significant bit first; with
    /// `early_change` the codes widen one code sooner (TIFF's size switch).
    fn new(early_change: bool) -> Lzw {
        Lzw(if early_change {
            Decoder::with_tiff_size_switch(BitOrder::Msb, 8)
        } else {
            Decoder::new(BitOrder::Msb, 8)
        })
    }
}

impl fmt::Debug for Lzw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lzw")
            .field("ended", &self.0.has_ended())
            .finish_non_exhaustive()
    }
}

/// The work of one filter stage.
#[derive(Debug)]
pub(super) enum Step {
    /// Inflating a zlib stream.
    Flate(Box<Decompress>),
    /// Decoding LZW codes.
    Lzw(Lzw),
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
                FilterKind::Lzw => Step::Lzw(Lzw::new(filter.early_change)),
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

    /// Counts what one decoder call took and made (cutting the stage at the per-stream cap
    /// or the expansion ratio), records how the decoder stopped unless the stage was cut, and
    /// hands the `made` bytes of the output buffer to `next`.
    fn pass_on(
        &mut self,
        taken: usize,
        made: usize,
        decoded: Stop,
        next: &mut Next<'_>,
    ) -> Result<(), Refusal> {
        self.total_in = self.total_in.saturating_add(taken as u64);
        self.total_out = self.total_out.saturating_add(made as u64);
        if self.total_out > STREAM_CAP
            || (self.total_out >= BOMB_FLOOR
                && self.total_out > BOMB_RATIO.saturating_mul(self.total_in.max(1)))
        {
            self.stop = Stop::Cut;
        }
        if decoded != Stop::Running && self.stop != Stop::Cut {
            self.stop = decoded;
        }
        next(&self.out[..made])
    }

    /// Decodes `input`, handing the output to `next`.
    fn push(&mut self, input: &[u8], next: &mut Next<'_>) -> Result<(), Refusal> {
        if self.stop != Stop::Running {
            return Ok(());
        }
        match self.step {
            Step::Flate(_) => self.push_flate(input, next),
            Step::Lzw(_) => self.push_lzw(input, next),
            _ => self.push_slices(input, next),
        }
    }

    /// Inflates `input` into the output buffer, one buffer at a time.
    fn push_flate(&mut self, input: &[u8], next: &mut Next<'_>) -> Result<(), Refusal> {
        if self.out.len() < OUT_BUF {
            self.out.resize(OUT_BUF, 0);
        }
        let mut input = input;
        while self.stop == Stop::Running && !input.is_empty() {
            let Step::Flate(decompress) = &mut self.step else {
                return Ok(());
            };
            let decompress: &mut Decompress = decompress;
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
            self.pass_on(taken, made, stop, next)?;
        }
        Ok(())
    }

    /// Decodes the LZW codes in `input` into the output buffer, one buffer at a time: every
    /// whole code is decoded before it returns; the bits of a code cut by the end of `input`
    /// wait in the decoder for the next call.
    fn push_lzw(&mut self, input: &[u8], next: &mut Next<'_>) -> Result<(), Refusal> {
        if self.out.len() < OUT_BUF {
            self.out.resize(OUT_BUF, 0);
        }
        let mut input = input;
        let mut idle = 0;
        while self.stop == Stop::Running {
            let Step::Lzw(Lzw(decoder)) = &mut self.step else {
                return Ok(());
            };
            let result = decoder.decode_bytes(input, &mut self.out);
            let taken = result.consumed_in.min(input.len());
            let made = result.consumed_out.min(self.out.len());
            input = &input[taken..];
            let stop = match result.status {
                Ok(LzwStatus::Done) => Stop::Ended,
                Err(_) => Stop::Error,
                Ok(LzwStatus::Ok | LzwStatus::NoProgress) => Stop::Running,
            };
            self.pass_on(taken, made, stop, next)?;
            // No progress: the input is spent. A clear code is a call without input taken or
            // output made; only so many fit in the decoder's bit buffer.
            if matches!(result.status, Ok(LzwStatus::NoProgress)) {
                break;
            }
            if taken == 0 && made == 0 {
                idle += 1;
                if idle >= LZW_IDLE {
                    break;
                }
            } else {
                idle = 0;
            }
        }
        Ok(())
    }

    /// Decodes `input` by slices of `SLICE` bytes (every step but Flate and LZW).
    fn push_slices(&mut self, input: &[u8], next: &mut Next<'_>) -> Result<(), Refusal> {
        for slice in input.chunks(SLICE) {
            self.out.clear();
            let stop = self.decode(slice);
            let made = self.out.len();
            self.pass_on(slice.len(), made, stop, next)?;
            if self.stop != Stop::Running {
                break;
            }
        }
        Ok(())
    }

    /// Decodes one slice of input into `self.out` (every step but Flate and LZW).
    fn decode(&mut self, input: &[u8]) -> Stop {
        let out = &mut self.out;
        match &mut self.step {
            Step::Flate(_) | Step::Lzw(_) => Stop::Error,
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
        HIDDEN, ascii_hex, ascii85, catalog, deflate, lzw, lzw_bomb, lzw_coded, pdf, png_rows,
        reason, scan,
    };
    use super::*;
    use crate::core::reason::Reason;
    use std::time::Instant;

    /// Decodes `data` through the stages of `filters`, handed in pieces of `piece` bytes; the
    /// output, and how each stage stopped.
    fn decode(filters: &[Filter], data: &[u8], piece: usize) -> (Vec<u8>, Vec<Stop>) {
        let mut stages = Stage::chain(filters).expect("no image filter");
        let mut out = Vec::new();
        for chunk in data.chunks(piece) {
            run(&mut stages, chunk, &mut |p| {
                out.extend_from_slice(p);
                Ok(())
            })
            .unwrap();
        }
        run_flush(&mut stages, &mut |p| {
            out.extend_from_slice(p);
            Ok(())
        })
        .unwrap();
        (out, stages.iter().map(|s| s.stop).collect())
    }

    fn lzw_filter(early_change: bool) -> Filter {
        Filter {
            kind: FilterKind::Lzw,
            predictor: None,
            early_change,
        }
    }

    /// Text with enough variety to fill the LZW table several times over.
    fn varied(len: usize) -> Vec<u8> {
        let mut state = 12345u32;
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                b"abcdefghijklmnop ()/<>[]0123456789"[(state >> 16) as usize % 34]
            })
            .collect()
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
        // A caller reading text is told the text was cut (what it read before the cut,
        // shown in no font, waited for the end of the file that never came: not handed on).
        let (verdict, _) = scan(&doc, true);
        assert_eq!(verdict.unwrap_err().reason, Reason::ContentUnreadable);
        assert!(start.elapsed().as_secs() < 10);
        // The same bomb as an object stream is refused when active content matters.
        let dict = "<< /Type /ObjStm /Filter /FlateDecode >>";
        let doc = pdf(&[catalog(), (dict, Some(&packed))]);
        assert_eq!(reason(&doc, true, false), Some(Reason::ContentUnreadable));
    }

    #[test]
    fn lzw_reference_example_decodes() {
        // The LZW example of the PDF reference, whole and a byte at a time.
        let coded = [0x80, 0x0B, 0x60, 0x50, 0x22, 0x0C, 0x0C, 0x85, 0x01];
        for piece in [coded.len(), 1] {
            let (out, stops) = decode(&[lzw_filter(true)], &coded, piece);
            assert_eq!(out, b"-----A---B");
            assert_eq!(stops, [Stop::Ended]);
        }
    }

    #[test]
    fn lzw_codes_widen_as_early_change_says() {
        let data = varied(60_000);
        for early_change in [true, false] {
            let coded = lzw_coded(&data, early_change);
            // Codes of 12 bits, and clear codes: well under 9 bits a byte would be.
            assert!(coded.len() * 8 < data.len() * 9, "{}", coded.len());
            for piece in [coded.len(), 4096, 7, 1] {
                let (out, stops) = decode(&[lzw_filter(early_change)], &coded, piece);
                assert!(
                    out == data,
                    "early change {early_change}, pieces of {piece}"
                );
                assert_eq!(stops, [Stop::Ended]);
            }
            // Read with the other early change, the codes go wrong once they widen.
            let (out, stops) = decode(&[lzw_filter(!early_change)], &coded, 4096);
            assert!(out.len() > 200 && out[..200] == data[..200] && out != data);
            assert_eq!(stops, [Stop::Error]);
        }
        // Whole files: /EarlyChange 0 is followed, and 1 is the default.
        let mut objects = varied(20_000);
        objects.extend_from_slice(HIDDEN);
        for (parms, early_change) in [
            ("", true),
            ("/DecodeParms << /EarlyChange 1 >>", true),
            ("/DecodeParms << /EarlyChange 0 >>", false),
        ] {
            let dict = format!("<< /Type /ObjStm /N 2 /First 8 /Filter /LZWDecode {parms} >>");
            let right = lzw_coded(&objects, early_change);
            let doc = pdf(&[catalog(), (&dict, Some(&right))]);
            assert_eq!(
                reason(&doc, true, false),
                Some(Reason::ActiveContent),
                "{parms}"
            );
            let wrong = lzw_coded(&objects, !early_change);
            let doc = pdf(&[catalog(), (&dict, Some(&wrong))]);
            assert_eq!(
                reason(&doc, true, false),
                Some(Reason::ContentUnreadable),
                "{parms}"
            );
        }
    }

    #[test]
    fn lzw_that_cannot_be_decoded_stops_the_stage() {
        // A first code that is not yet in the table.
        let (out, stops) = decode(&[lzw_filter(true)], &[0x80, 0x40, 0x80], 1);
        assert_eq!(
            (out.as_slice(), stops.as_slice()),
            (&b""[..], &[Stop::Error][..])
        );
        // Nothing after the end-of-data code is read.
        let mut coded = lzw_coded(b"abc", true);
        coded.extend_from_slice(&[0xff; 16]);
        let (out, stops) = decode(&[lzw_filter(true)], &coded, 3);
        assert_eq!(
            (out.as_slice(), stops.as_slice()),
            (&b"abc"[..], &[Stop::Ended][..])
        );
    }

    #[test]
    fn an_lzw_bomb_is_cut() {
        let bomb = lzw_bomb(16, true);
        assert!(bomb.len() < 100_000, "{}", bomb.len());
        let start = Instant::now();
        let (out, stops) = decode(&[lzw_filter(true)], &bomb, 64 * 1024);
        assert_eq!(stops, [Stop::Cut]);
        assert!(out.len() as u64 <= STREAM_CAP, "{}", out.len());
        assert!(out.iter().all(|&b| b == 0));
        // In a file: an object stream cut short is refused, a content stream's text too.
        let dict = "<< /Type /ObjStm /N 1 /First 4 /Filter /LZWDecode >>";
        let doc = pdf(&[catalog(), (dict, Some(&bomb))]);
        assert_eq!(reason(&doc, true, false), Some(Reason::ContentUnreadable));
        let doc = pdf(&[catalog(), ("<< /Filter /LZWDecode >>", Some(&bomb))]);
        let (verdict, _) = scan(&doc, false);
        assert_eq!(verdict.unwrap_err().reason, Reason::ContentUnreadable);
        assert!(start.elapsed().as_secs() < 10);
    }
}
