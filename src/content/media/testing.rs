//! Shared test support: run a checker over bytes, a small zip to append, and the three
//! verdicts every format is tried for.

use super::check;
use crate::core::reason::{Reason, Refusal};

/// The verdict of `check(family)` over `bytes`.
pub(super) fn verdict(family: &str, bytes: &[u8]) -> Result<(), Refusal> {
    let mut input = bytes;
    check(family, &mut input).unwrap()
}

/// A small but whole zip archive (one stored entry).
pub(super) fn zip() -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    w.start_file("payload.exe", stored).unwrap();
    w.write_all(b"MZ not really").unwrap();
    w.finish().unwrap().into_inner()
}

pub(super) fn accepted(family: &str, bytes: &[u8]) {
    assert_eq!(verdict(family, bytes), Ok(()), "{family} should pass");
}

pub(super) fn refused(family: &str, bytes: &[u8], reason: Reason) -> String {
    match verdict(family, bytes) {
        Err(r) if r.reason == reason => r.detail,
        other => panic!("{family}: expected {reason}, got {other:?}"),
    }
}

/// The three cases every format gets: the valid file passes; the same cut short (every cut
/// in `cuts`, offsets from the end) is unreadable; the same with a zip appended is a
/// polyglot.
pub(super) fn three_cases(family: &str, valid: &[u8], cuts: &[usize]) {
    accepted(family, valid);
    for cut in cuts {
        let short = &valid[..valid.len() - cut];
        refused(family, short, Reason::ContentUnreadable);
    }
    let mut poly = valid.to_vec();
    poly.extend_from_slice(&zip());
    let detail = refused(family, &poly, Reason::Polyglot);
    assert!(detail.contains(family), "{detail}");
    // zero padding of a few bytes is tolerated where a format has no rule of its own
    if !matches!(family, "wav" | "webp" | "mp4" | "mov" | "heic" | "amr") {
        let mut padded = valid.to_vec();
        padded.extend_from_slice(&[0; 100]);
        accepted(family, &padded);
    }
}

#[test]
fn a_zip_or_a_pdf_hidden_inside_the_structure_is_found() {
    use super::png::tests::{chunk, png};
    // a zip in a private PNG chunk before IEND: zip tools find its end record
    let mut hidden = png();
    let iend = hidden.len() - 12;
    hidden.splice(iend..iend, chunk(b"zIPs", &zip()));
    let d = refused("png", &hidden, Reason::Polyglot);
    assert!(d.contains("zip end record"), "{d}");
    // the benign twin: the same chunk holding other bytes
    let mut twin = png();
    twin.splice(iend..iend, chunk(b"zIPs", &vec![7u8; zip().len()]));
    accepted("png", &twin);
    // a PDF header in the first kilobyte
    let mut pdf = png();
    pdf.splice(iend..iend, chunk(b"tEXt", b"Comment\0%PDF-1.7 1 0 obj"));
    let d = refused("png", &pdf, Reason::Polyglot);
    assert!(d.contains("PDF header"), "{d}");
}
