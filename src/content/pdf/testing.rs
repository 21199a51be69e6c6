//! Test helpers shared by the PDF modules' tests: encoders for each filter, a builder of small
//! PDF files, and scans that collect the verdict and the lines of text.

use super::filters::paeth;
use super::{PdfOptions, scan_pdf};
use crate::reason::{Reason, Refusal};
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
        },
    )
}

pub(super) fn reason(data: &[u8], refuse_active: bool, read_text: bool) -> Option<Reason> {
    let opts = PdfOptions {
        refuse_active,
        read_text,
    };
    scan_with(data, opts).0.err().map(|r| r.reason)
}

pub(super) const PAGE: &[u8] = b"BT /F1 12 Tf 72 712 Td (Hello secret) Tj ET";

pub(super) const HIDDEN: &[u8] =
    b"5 0 6 30 << /OpenAction 6 0 R >> << /S /JavaScript /JS (app.alert\\(1\\)) >>";

pub(super) fn catalog() -> (&'static str, Option<&'static [u8]>) {
    ("<< /Type /Catalog /Pages 2 0 R >>", None)
}
