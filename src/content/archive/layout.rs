//! One view of a zip, or a refusal: every byte of the file is accounted for by the layout
//! APPNOTE 6.3.10 §4.3.6 gives, so that no other reader (7-Zip, a streaming extractor, the
//! receiving desktop's shell) can see another archive in the same bytes.
//!
//! ```text
//!  [local header │ name │ extra │ data │ descriptor?] × n   entries, from byte 0, no gaps
//!  [central-directory header] × n                          contiguous, in one block
//!  [zip64 end record │ zip64 locator]?                     only where the end record needs it
//!  [end-of-central-directory record │ comment]              exactly one, ending the file
//! ```
//!
//! Each local header must agree with its central-directory header: name bytes, flags,
//! method, CRC-32 and sizes (from the data descriptor when bit 3 is set; from the zip64 extra
//! field where a size is 0xFFFFFFFF); an Info-ZIP Unicode Path field in the local header must
//! agree with the central one. Names must not collide as Windows would extract them (NFC,
//! case-insensitive). Memory: the fixed headers and one name at a time, plus the set of
//! names (bounded by the entry limit the caller has enforced).
//!
//! A finding is `Err(detail)`: the caller refuses the archive as `archive_ambiguous`.

use crate::content::source::Source;
use std::collections::HashMap;
use std::io;

/// The end-of-central-directory record's fixed part (APPNOTE 4.3.16).
const EOCD_LEN: u64 = 22;

/// The zip64 end-of-central-directory locator (APPNOTE 4.3.15).
const LOCATOR_LEN: u64 = 20;

/// The fixed part of a local file header (APPNOTE 4.3.7).
const LOCAL_LEN: u64 = 30;

/// Largest tail searched for end records: the record and the longest comment.
const TAIL_LEN: u64 = EOCD_LEN + 65_535;

/// The zip64 extended information extra field's header ID (APPNOTE 4.5.3).
const ZIP64_EXTRA: u16 = 0x0001;

/// The Info-ZIP Unicode Path extra field's header ID (APPNOTE 4.6.9).
const UNICODE_PATH: u16 = 0x7075;

/// What the central directory says of one entry, with where its headers are in the file.
#[derive(Debug, Clone)]
pub(super) struct Central {
    /// The name as decoded (NFC), for messages and the collision check.
    pub name: String,
    /// The raw name bytes of the central header.
    pub raw_name: Vec<u8>,
    /// General-purpose flags.
    pub flags: u16,
    /// Compression method.
    pub method: u16,
    /// CRC-32 of the expanded data.
    pub crc32: u32,
    /// Compressed size, bytes (zip64 resolved).
    pub compressed: u64,
    /// Expanded size, bytes (zip64 resolved).
    pub size: u64,
    /// Offset of the local header in the file.
    pub local_at: u64,
    /// Offset of the central header in the file, and its whole length.
    pub central_at: u64,
    /// Length of the central header with its name, extra field and comment.
    pub central_len: u64,
    /// The UTF-8 name of the central header's Unicode Path field, if any.
    pub unicode_path: Option<Vec<u8>>,
}

fn le16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        word.copy_from_slice(s);
    }
    u64::from_le_bytes(word)
}

/// Reads `len` bytes at `at`; `None` past the end of the file.
fn read_at(file: &dyn Source, at: u64, len: usize, file_len: u64) -> io::Result<Option<Vec<u8>>> {
    if at.saturating_add(len as u64) > file_len {
        return Ok(None);
    }
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, at)?;
    Ok(Some(buf))
}

/// The extra-field records of `extra`: (header ID, data). `None` when one runs past the end.
pub(super) fn extra_fields(extra: &[u8]) -> Option<Vec<(u16, &[u8])>> {
    let mut fields = Vec::new();
    let mut at = 0;
    while at < extra.len() {
        let id = le16(extra, at);
        let len = usize::from(le16(extra, at + 2));
        fields.push((id, extra.get(at + 4..at + 4 + len)?));
        at += 4 + len;
    }
    Some(fields)
}

/// Where the central directory must end, found from the single end record that ends the
/// file: the start of the zip64 end record when there is one, else of the end record.
fn directory_end(file: &dyn Source, len: u64) -> io::Result<Result<u64, String>> {
    let tail_len = len.min(TAIL_LEN);
    let tail_at = len - tail_len;
    let Some(tail) = read_at(file, tail_at, tail_len as usize, len)? else {
        return Ok(Err("the file is shorter than an end record".into()));
    };
    let mut ends = Vec::new();
    let mut stray_after = 0usize;
    for at in 0..tail.len().saturating_sub(3) {
        if tail.get(at..at + 4) != Some(b"PK\x05\x06") {
            continue;
        }
        let comment = u64::from(le16(&tail, at + 20));
        if at + EOCD_LEN as usize <= tail.len() && tail_at + at as u64 + EOCD_LEN + comment == len {
            ends.push(at);
        } else if !ends.is_empty() {
            stray_after += 1;
        }
    }
    let end_at = match ends.as_slice() {
        [one] => *one,
        [] => {
            return Ok(Err(
                "no end-of-central-directory record ends the file".into()
            ));
        }
        many => {
            return Ok(Err(format!(
                "{} end-of-central-directory records could each end the file",
                many.len()
            )));
        }
    };
    // A signature inside the comment: a reader that searches backward would stop there.
    if stray_after > 0 {
        return Ok(Err(
            "the end record's comment holds another end-record signature".into(),
        ));
    }
    let end_pos = tail_at + end_at as u64;
    if end_pos >= LOCATOR_LEN
        && let Some(locator) = read_at(file, end_pos - LOCATOR_LEN, LOCATOR_LEN as usize, len)?
        && locator.starts_with(b"PK\x06\x07")
    {
        let record_at = le64(&locator, 8);
        let Some(record) = read_at(file, record_at, 56, len)? else {
            return Ok(Err(
                "the zip64 end record lies past the end of the file".into()
            ));
        };
        if !record.starts_with(b"PK\x06\x06") {
            return Ok(Err("the zip64 locator points at no zip64 end record".into()));
        }
        // size of the record after its first 12 bytes
        let record_end = record_at
            .saturating_add(12)
            .saturating_add(le64(&record, 4));
        if record_end != end_pos - LOCATOR_LEN {
            return Ok(Err(
                "bytes between the zip64 end record and its locator".into()
            ));
        }
        return Ok(Ok(record_at));
    }
    Ok(Ok(end_pos))
}

/// The sizes and CRC a data descriptor after `data_end` gives, and its length, choosing the
/// form (with or without signature, 32- or 64-bit sizes) that matches the central entry.
fn descriptor(
    file: &dyn Source,
    data_end: u64,
    len: u64,
    entry: &Central,
) -> io::Result<Result<u64, String>> {
    let bytes = read_at(
        file,
        data_end,
        24.min((len - data_end.min(len)) as usize),
        len,
    )?
    .unwrap_or_default();
    for (sig, wide) in [(true, false), (false, false), (true, true), (false, true)] {
        let at = if sig { 4 } else { 0 };
        if sig && !bytes.starts_with(b"PK\x07\x08") {
            continue;
        }
        let (crc, compressed, size, total) = if wide {
            (
                le32(&bytes, at),
                le64(&bytes, at + 4),
                le64(&bytes, at + 12),
                at + 20,
            )
        } else {
            (
                le32(&bytes, at),
                u64::from(le32(&bytes, at + 4)),
                u64::from(le32(&bytes, at + 8)),
                at + 12,
            )
        };
        if total <= bytes.len()
            && crc == entry.crc32
            && compressed == entry.compressed
            && size == entry.size
        {
            return Ok(Ok(total as u64));
        }
    }
    Ok(Err(format!(
        "zip entry {:?}: its data descriptor disagrees with the central directory",
        entry.name
    )))
}

/// Checks that `entries` (the whole central directory, in any order) and the end records
/// account for every byte of `file` (of `len` bytes), each local header agreeing with its
/// central header, and that no two names collide. `Err(detail)` is a finding.
///
/// # Errors
/// Reading the file failed.
pub(super) fn check(
    file: &dyn Source,
    len: u64,
    entries: &[Central],
) -> io::Result<Result<(), String>> {
    // names that would land on the same file on Windows
    let mut seen: HashMap<String, &str> = HashMap::with_capacity(entries.len());
    for e in entries {
        let key = e.name.trim_end_matches('/').to_lowercase();
        if let Some(first) = seen.insert(key, &e.name) {
            return Ok(Err(format!(
                "two entries name the same file as Windows extracts them: {first:?} and {:?}",
                e.name
            )));
        }
    }
    let directory_end = match directory_end(file, len)? {
        Ok(at) => at,
        Err(why) => return Ok(Err(why)),
    };
    // the entries, from byte 0, each where the previous one ended
    let mut by_local: Vec<&Central> = entries.iter().collect();
    by_local.sort_by_key(|e| e.local_at);
    let mut expected = 0u64;
    for e in by_local {
        if e.local_at != expected {
            return Ok(Err(gap("entry", &e.name, expected, e.local_at)));
        }
        let Some(header) = read_at(file, e.local_at, LOCAL_LEN as usize, len)? else {
            return Ok(Err(format!(
                "zip entry {:?}: local header past the end",
                e.name
            )));
        };
        if !header.starts_with(b"PK\x03\x04") {
            return Ok(Err(format!(
                "zip entry {:?}: no local header where the directory says",
                e.name
            )));
        }
        let name_len = usize::from(le16(&header, 26));
        let extra_len = usize::from(le16(&header, 28));
        let Some(rest) = read_at(file, e.local_at + LOCAL_LEN, name_len + extra_len, len)? else {
            return Ok(Err(format!(
                "zip entry {:?}: local header past the end",
                e.name
            )));
        };
        let (raw_name, extra) = rest.split_at(name_len);
        let differ = |what: &str| {
            Ok(Err(format!(
                "zip entry {:?}: the local header and the central directory disagree on {what}",
                e.name
            )))
        };
        if raw_name != e.raw_name.as_slice() {
            return Ok(Err(format!(
                "zip entry {:?}: the local header names another file ({:?})",
                e.name,
                String::from_utf8_lossy(raw_name)
            )));
        }
        if le16(&header, 6) != e.flags {
            return differ("the flags");
        }
        if le16(&header, 8) != e.method {
            return differ("the compression method");
        }
        let Some(fields) = extra_fields(extra) else {
            return Ok(Err(format!(
                "zip entry {:?}: a local extra field runs past its end",
                e.name
            )));
        };
        for (id, data) in &fields {
            if *id == UNICODE_PATH
                && Some(data.get(5..).unwrap_or_default()) != e.unicode_path.as_deref()
            {
                return Ok(Err(format!(
                    "zip entry {:?}: the local Unicode Path field names another file",
                    e.name
                )));
            }
        }
        let data_start = e.local_at + LOCAL_LEN + (name_len + extra_len) as u64;
        let data_end = data_start.saturating_add(e.compressed);
        if data_end > len {
            return Ok(Err(format!(
                "zip entry {:?}: data runs past the end",
                e.name
            )));
        }
        let mut end = data_end;
        if e.flags & 0x8 != 0 {
            // sizes and CRC follow the data; the local ones may be zero
            match descriptor(file, data_end, len, e)? {
                Ok(n) => end += n,
                Err(why) => return Ok(Err(why)),
            }
            let (crc, compressed, size) = (le32(&header, 14), le32(&header, 18), le32(&header, 22));
            if (crc != 0 && crc != e.crc32)
                || (compressed != 0
                    && u64::from(compressed) != e.compressed
                    && compressed != u32::MAX)
                || (size != 0 && u64::from(size) != e.size && size != u32::MAX)
            {
                return differ("the CRC or the sizes");
            }
        } else {
            if le32(&header, 14) != e.crc32 {
                return differ("the CRC-32");
            }
            let zip64 = fields
                .iter()
                .find(|(id, _)| *id == ZIP64_EXTRA)
                .map(|(_, d)| *d);
            let (mut size, mut compressed) =
                (u64::from(le32(&header, 22)), u64::from(le32(&header, 18)));
            // in the local zip64 field both sizes are present, expanded first (APPNOTE 4.5.3)
            if size == u64::from(u32::MAX) || compressed == u64::from(u32::MAX) {
                let Some(z) = zip64.filter(|z| z.len() >= 16) else {
                    return differ("the sizes (no zip64 field)");
                };
                size = le64(z, 0);
                compressed = le64(z, 8);
            }
            if size != e.size || compressed != e.compressed {
                return differ("the sizes");
            }
        }
        expected = end;
    }
    // then the central directory, in one block
    let mut by_central: Vec<&Central> = entries.iter().collect();
    by_central.sort_by_key(|e| e.central_at);
    for e in by_central {
        if e.central_at != expected {
            return Ok(Err(gap(
                "central-directory header",
                &e.name,
                expected,
                e.central_at,
            )));
        }
        expected = e.central_at.saturating_add(e.central_len);
    }
    if expected != directory_end {
        return Ok(Err(if expected < directory_end {
            format!(
                "{} bytes between the central directory and the end record",
                directory_end - expected
            )
        } else {
            "the central directory overlaps the end record".to_string()
        }));
    }
    Ok(Ok(()))
}

/// The finding for a structure that does not start where the one before it ended.
fn gap(what: &str, name: &str, expected: u64, found: u64) -> String {
    if found > expected {
        if expected == 0 {
            format!("{found} bytes before the first entry (another archive or file in front)")
        } else {
            format!(
                "{} bytes before the {what} of {name:?} that no entry accounts for",
                found - expected
            )
        }
    } else {
        format!("the {what} of {name:?} overlaps what comes before it")
    }
}

#[cfg(test)]
mod tests {
    use super::super::Kind;
    use super::super::testing::{limits, raw_zip, refused, run, zip_of};
    use crate::core::reason::Reason;

    fn ambiguous(data: &[u8], why: &str) {
        let r = refused(Kind::Zip, data, limits());
        assert_eq!(r.reason, Reason::ArchiveAmbiguous, "{why}: {r}");
        assert!(r.detail.contains(why), "{why}: {r}");
    }

    /// Patches the end record's comment length and appends the comment.
    fn with_comment(mut zip: Vec<u8>, comment: &[u8]) -> Vec<u8> {
        let n = zip.len();
        zip[n - 2..].copy_from_slice(&(comment.len() as u16).to_le_bytes());
        zip.extend_from_slice(comment);
        zip
    }

    #[test]
    fn well_formed_zips_pass_including_descriptors_and_comments() {
        let plain = zip_of(&[("a.txt", b"alpha"), ("d/b.txt", b"beta")]);
        assert_eq!(run(Kind::Zip, &plain, limits()).0, Ok(()));
        let streamed = raw_zip(&[
            (b"a.txt", 0x8, b"", b"alpha"),
            (b"b.txt", 0x8, b"", b"beta"),
        ]);
        assert_eq!(run(Kind::Zip, &streamed, limits()).0, Ok(()));
        let commented = with_comment(zip_of(&[("a.txt", b"alpha")]), b"made by a scanner");
        assert_eq!(run(Kind::Zip, &commented, limits()).0, Ok(()));
    }

    #[test]
    fn the_real_world_concatenated_zip_is_refused() {
        let case = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/cases/to-court/concatenated.zip"
        ))
        .unwrap();
        ambiguous(&case, "before the first entry");
    }

    #[test]
    fn two_archives_one_after_the_other_are_refused_whichever_is_read() {
        let first = zip_of(&[("invoice.exe", b"MZ")]);
        let second = zip_of(&[("发票.pdf", b"%PDF-1.4")]);
        ambiguous(
            &[first.clone(), second.clone()].concat(),
            "before the first entry",
        );
        // bytes in front (a self-extractor stub) and after the end record
        ambiguous(
            &[b"MZ stub".to_vec(), second.clone()].concat(),
            "before the first entry",
        );
        let mut trailing = second.clone();
        trailing.extend_from_slice(b"PK\x03\x04 more");
        ambiguous(&trailing, "end");
    }

    #[test]
    fn a_local_header_that_disagrees_with_the_directory_is_refused() {
        let zip = raw_zip(&[(b"notes.txt", 0, b"", b"hello")]);
        // the local name says .cmd, the central one .txt
        let mut renamed = zip.clone();
        let at = 30 + "notes.".len();
        renamed[at..at + 3].copy_from_slice(b"cmd");
        ambiguous(&renamed, "names another file");
        // the local CRC differs
        let mut crc = zip.clone();
        crc[14] ^= 0xFF;
        ambiguous(&crc, "CRC");
        // the flags differ
        let mut flags = zip;
        flags[6] = 0x01;
        ambiguous(&flags, "flags");
    }

    #[test]
    fn bytes_between_entries_and_signatures_in_the_comment_are_refused() {
        let one = raw_zip(&[(b"a.txt", 0, b"", b"alpha")]);
        // an entry whose data the directory does not account for: patch the central offset
        // of a second entry to skip a hidden block
        let two = raw_zip(&[(b"a.txt", 0, b"", b"alpha"), (b"b.txt", 0, b"", b"beta")]);
        let first_len = 30 + 5 + 5;
        let mut hidden = two[..first_len].to_vec();
        hidden.extend_from_slice(b"HIDDEN");
        hidden.extend_from_slice(&two[first_len..]);
        // shift the central offsets of b.txt and of the directory by the 6 bytes
        let cd = hidden.len() - 22 - (46 + 5) * 2;
        let b_offset = cd + 46 + 5 + 42;
        let v = u32::from_le_bytes(hidden[b_offset..b_offset + 4].try_into().unwrap()) + 6;
        hidden[b_offset..b_offset + 4].copy_from_slice(&v.to_le_bytes());
        let n = hidden.len();
        let v = u32::from_le_bytes(hidden[n - 6..n - 2].try_into().unwrap()) + 6;
        hidden[n - 6..n - 2].copy_from_slice(&v.to_le_bytes());
        ambiguous(&hidden, "no entry accounts for");
        let sneaky = with_comment(one, b"PK\x05\x06 another end");
        ambiguous(&sneaky, "comment");
    }

    #[test]
    fn names_that_collide_on_windows_are_refused() {
        let zip = zip_of(&[("Report.txt", b"one"), ("report.TXT", b"two")]);
        ambiguous(&zip, "same file");
        let zip = zip_of(&[("证据/a.txt", b"one"), ("证据/A.txt", b"two")]);
        ambiguous(&zip, "same file");
        let fine = zip_of(&[("证据/a.txt", b"one"), ("证据/b.txt", b"two")]);
        assert_eq!(run(Kind::Zip, &fine, limits()).0, Ok(()));
    }
}
