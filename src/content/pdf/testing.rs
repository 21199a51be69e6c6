//! Test helpers shared by the PDF modules' tests: encoders for each filter, a builder of small
//! PDF files, and scans that collect the verdict and the lines of text.

use super::filters::paeth;
use super::{PdfOptions, scan_pdf};
use crate::core::reason::{Reason, Refusal};
use std::collections::HashMap;
use std::io::Write;

/// Deflate (zlib), compressed.
pub(super) fn deflate(data: &[u8]) -> Vec<u8> {
    let mut w = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

/// Deflate in stored blocks: the data shows through as it is.
pub(super) fn stored(data: &[u8]) -> Vec<u8> {
    let mut w = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::none());
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

/// ASCII85, with the `~>` end marker.
pub(super) fn ascii85(data: &[u8]) -> Vec<u8> {
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

/// ASCIIHex, a space after each pair, with the `>` end marker.
pub(super) fn ascii_hex(data: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = data
        .iter()
        .flat_map(|b| format!("{b:02X} ").into_bytes())
        .collect();
    out.push(b'>');
    out
}

/// LZW with literal codes only (a clear code every 200 codes keeps them 9 bits wide).
pub(super) fn lzw(data: &[u8]) -> Vec<u8> {
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

/// Writes LZW codes most significant bit first, at the widths a PDF decoder reads them.
struct Codes {
    out: Vec<u8>,
    bits: u64,
    n: u32,
    width: u32,
    /// The next entry of the decoder's table, as the encoder counts it (one ahead).
    next: u32,
    early: u32,
}

impl Codes {
    fn new(early_change: bool) -> Codes {
        Codes {
            out: Vec::new(),
            bits: 0,
            n: 0,
            width: 9,
            next: 258,
            early: u32::from(early_change),
        }
    }

    fn put(&mut self, code: u32) {
        self.bits = self.bits << self.width | u64::from(code);
        self.n += self.width;
        while self.n >= 8 {
            self.out.push((self.bits >> (self.n - 8)) as u8);
            self.n -= 8;
        }
    }

    /// A data code; the decoder adds its table entry for it, and widens its codes when the
    /// table reaches the width's end (one entry sooner with early change).
    fn data(&mut self, code: u32) {
        self.put(code);
        if self.next + self.early >= 1 << self.width && self.width < 12 {
            self.width += 1;
        }
        self.next += 1;
    }

    fn clear(&mut self) {
        self.put(256);
        self.width = 9;
        self.next = 258;
    }

    fn finish(mut self) -> Vec<u8> {
        self.put(257);
        if self.n > 0 {
            self.out.push((self.bits << (8 - self.n)) as u8);
        }
        self.out
    }
}

/// LZW as a PDF writer makes it: codes from 9 to 12 bits wide, widened one code sooner with
/// `early_change`, and a clear code before the table fills.
pub(super) fn lzw_coded(data: &[u8], early_change: bool) -> Vec<u8> {
    let mut codes = Codes::new(early_change);
    let fresh =
        || -> HashMap<Vec<u8>, u32> { (0..=255u8).map(|b| (vec![b], u32::from(b))).collect() };
    let mut table = fresh();
    codes.clear();
    let mut current: Vec<u8> = Vec::new();
    for &b in data {
        current.push(b);
        if table.contains_key(&current) {
            continue;
        }
        let entry = current.clone();
        current.pop();
        codes.data(table[&current]);
        table.insert(entry, codes.next - 1);
        if codes.next >= 4000 {
            codes.clear();
            table = fresh();
        }
        current = vec![b];
    }
    if !current.is_empty() {
        codes.data(table[&current]);
    }
    codes.finish()
}

/// An LZW bomb: each code one byte longer than the one before (`0`, `00`, `000` …), up to a
/// full table, `cycles` times over: some 7 MB of zeros from every 5.5 KB.
pub(super) fn lzw_bomb(cycles: usize, early_change: bool) -> Vec<u8> {
    let mut codes = Codes::new(early_change);
    for _ in 0..cycles {
        codes.clear();
        codes.data(0);
        while codes.next < 4000 {
            // The entry the decoder is about to add: the last string and its first byte.
            codes.data(codes.next - 1);
        }
    }
    codes.finish()
}

/// PNG-filters rows of `columns` bytes (one byte a pixel), cycling through the five tags.
pub(super) fn png_rows(data: &[u8], columns: usize) -> Vec<u8> {
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
pub(super) fn pdf(objects: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
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

pub(super) fn scan_with(data: &[u8], opts: PdfOptions) -> (Result<(), Refusal>, Vec<String>) {
    let mut lines = Vec::new();
    let mut sink = |line: &str| {
        lines.push(line.to_owned());
        Ok(())
    };
    let mut input = data;
    let verdict = scan_pdf(&mut input, &opts, &mut sink).expect("no I/O fault");
    (verdict, lines)
}

pub(super) fn scan(data: &[u8], refuse_active: bool) -> (Result<(), Refusal>, Vec<String>) {
    scan_with(
        data,
        PdfOptions {
            refuse_active,
            read_text: true,
            allow_uri: true,
        },
    )
}

pub(super) fn reason(data: &[u8], refuse_active: bool, read_text: bool) -> Option<Reason> {
    let opts = PdfOptions {
        refuse_active,
        read_text,
        allow_uri: true,
    };
    scan_with(data, opts).0.err().map(|r| r.reason)
}

pub(super) const PAGE: &[u8] = b"BT /F1 12 Tf 72 712 Td (Hello secret) Tj ET";

pub(super) const HIDDEN: &[u8] =
    b"5 0 6 30 << /OpenAction 6 0 R >> << /S /JavaScript /JS (app.alert\\(1\\)) >>";

pub(super) fn catalog() -> (&'static str, Option<&'static [u8]>) {
    ("<< /Type /Catalog /Pages 2 0 R >>", None)
}
