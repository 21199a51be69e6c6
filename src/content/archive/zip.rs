//! Zip: a zip that arrives as a stream is spilled to an anonymous temporary file (capped); the
//! end-of-central-directory records are read first and a directory larger than the entry limit
//! allows is refused before the zip reader loads it; every entry's path, type, encryption and
//! compression are checked and declared sizes weighed against the limits before anything is
//! expanded; then each entry is read through a meter.

use super::layout::{self, Central};
use super::meter::{Meter, Packed};
use super::paths::path_problem;
use super::{
    Budget, IO_BUF, Kind, RATIO_FLOOR, Visitor, bad_path, from_io, truncate, unreadable, visit,
};
use crate::content::Scan;
use crate::content::source::{Source, SourceCursor};
use crate::core::reason::{Reason, Refusal};
use crate::keys::at_rest::{Scratch, SealedFile};
use std::io::{self, Read, Write};
use std::path::Path;

/// Largest zip spilled to a temporary file (a zip that arrives as a stream, nested ones).
pub(super) const SPILL_CAP: u64 = 256 << 20;

/// Central-directory bytes allowed for each entry the limits allow.
const DIRECTORY_PER_ENTRY: u64 = 1024;

/// Central-directory bytes allowed on top of the per-entry allowance.
const DIRECTORY_SLACK: u64 = 64 * 1024;

/// A stream spilled to a file, or the verdict that ends the walk.
pub(crate) enum Spill {
    /// The spilled zip, ready to read (sealed under a one-time key: nothing of it rests
    /// on disk in plaintext).
    Ready(SealedFile),
    /// The verdict (a refusal or a fault) that ends the walk.
    Verdict(Scan),
}

/// Copies a stream that must be read in place (a zip, a compound file) to an anonymous
/// temporary file in `dir`, sealed under a one-time key (`keys::at_rest::Scratch`), at most `cap` bytes: more is an `ArchiveLimit` refusal saying
/// "`what` larger than … MiB". A fault of the spill file is returned as `Err` as it is; a
/// fault of the input is sorted by `from_io` (a limit crossed while reading a nested entry
/// stays a refusal).
pub(crate) fn spill(
    reader: &mut dyn Read,
    dir: &Path,
    cap: u64,
    what: &str,
    budget: &Budget,
) -> Spill {
    let mut file = match Scratch::new(dir) {
        Ok(file) => file,
        Err(e) => return Spill::Verdict(Err(e)),
    };
    match copy_capped(reader, &mut file, cap, what, budget) {
        Ok(()) => match file.finish() {
            Ok(file) => Spill::Ready(file),
            Err(e) => Spill::Verdict(Err(e)),
        },
        Err(verdict) => Spill::Verdict(verdict),
    }
}

/// Copies `reader` to `out`, refusing (ArchiveLimit) more than `cap` bytes of `what`; `Err`
/// holds the verdict that ends the walk.
pub(crate) fn copy_capped(
    reader: &mut dyn Read,
    out: &mut dyn Write,
    cap: u64,
    what: &str,
    budget: &Budget,
) -> Result<(), Scan> {
    let mut buf = vec![0u8; IO_BUF];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(from_io(e, Kind::Zip)),
        };
        total = total.saturating_add(n as u64);
        if total > cap {
            return Err(budget.refuse_limit(format!("{what} larger than {} MiB", cap >> 20)));
        }
        // A full disk or any other failure of the spill file is a fault, never a verdict.
        if let Err(e) = out.write_all(&buf[..n]) {
            return Err(Err(e));
        }
    }
}

/// Walks a zip read in place from `file`.
pub(super) fn walk_zip(
    file: &dyn Source,
    depth: u32,
    budget: &mut Budget,
    visitor: &mut dyn Visitor,
) -> Scan {
    let limits = budget.limits;
    let directory = declared_zip_directory(file)?;
    let declared = directory.entries;
    if budget.entries().saturating_add(declared) > limits.max_entries {
        return budget.refuse_limit(format!(
            "zip declares {declared} entries, limit {}",
            limits.max_entries
        ));
    }
    let directory_cap = limits
        .max_entries
        .saturating_mul(DIRECTORY_PER_ENTRY)
        .saturating_add(DIRECTORY_SLACK);
    if directory.bytes > directory_cap {
        return budget.refuse_limit(format!(
            "zip central directory of {} bytes, limit {directory_cap}",
            directory.bytes
        ));
    }
    let mut archive = match zip::ZipArchive::new(SourceCursor::new(file)) {
        Ok(archive) => archive,
        Err(e) => return zip_error(e),
    };
    let count = archive.len() as u64;
    if budget.entries().saturating_add(count) > limits.max_entries {
        return budget.refuse_limit(format!(
            "zip holds {count} entries, limit {}",
            limits.max_entries
        ));
    }

    // The central directory first: refuse an obvious bomb before expanding anything.
    let mut declared_bytes: u64 = 0;
    let mut names = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let entry = match archive.by_index_raw(index) {
            Ok(entry) => entry,
            Err(e) => return zip_error(e),
        };
        let central = match central_entry(file, &entry, limits.legacy_names)? {
            Ok(central) => central,
            Err(why) => return bad_path(&String::from_utf8_lossy(entry.name_raw()), &why),
        };
        if let Some(why) = path_problem(&central.name, entry.is_dir()) {
            return bad_path(&central.name, why);
        }
        let name = central.name.as_str();
        if entry.is_symlink() {
            return bad_path(name, "symbolic link");
        }
        // a folder holds no bytes: one that carries some hides them from every check (an
        // empty deflate stream, which Java's zip writer gives a folder, is 2 bytes)
        if entry.is_dir() && (entry.size() > 0 || entry.compressed_size() > 2) {
            return Ok(Err(Refusal::new(
                Reason::ArchiveAmbiguous,
                format!(
                    "zip folder entry {:?} carries {} bytes ({} stored): a folder holds none, so no reader shows them",
                    truncate(name, 200),
                    entry.size(),
                    entry.compressed_size()
                ),
            )));
        }
        if entry.encrypted() {
            return unreadable(format!(
                "zip entry {:?} is encrypted and cannot be inspected",
                truncate(name, 200)
            ));
        }
        if !matches!(
            entry.compression(),
            zip::CompressionMethod::Stored | zip::CompressionMethod::Deflated
        ) {
            return unreadable(format!(
                "zip entry {:?} uses unsupported compression {}",
                truncate(name, 200),
                entry.compression()
            ));
        }
        let size = entry.size();
        if size >= RATIO_FLOOR
            && size
                > limits
                    .max_ratio
                    .saturating_mul(entry.compressed_size().max(1))
        {
            return budget.refuse_limit(format!(
                "zip entry {:?} declares expansion more than {} times",
                truncate(name, 200),
                limits.max_ratio
            ));
        }
        declared_bytes = declared_bytes.saturating_add(size);
        names.push(central);
    }
    // One view of the archive: every byte accounted for, local and central headers agreeing.
    let len = file.size()?;
    if let Err(why) = layout::check(file, len, &names)? {
        return Ok(Err(Refusal::new(Reason::ArchiveAmbiguous, why)));
    }
    if budget.expanded().saturating_add(declared_bytes) > limits.max_expanded_bytes {
        return budget.refuse_limit(format!(
            "zip declares {declared_bytes} expanded bytes, limit {}",
            limits.max_expanded_bytes
        ));
    }

    // Then the entries themselves, metered while read.
    for index in 0..archive.len() {
        if let Err(refusal) = budget.count_entry() {
            return Ok(Err(refusal));
        }
        let mut entry = match archive.by_index(index) {
            Ok(entry) => entry,
            Err(e) => return zip_error(e),
        };
        if entry.is_dir() {
            continue;
        }
        let Some(path) = names.get(index).map(|c| c.name.clone()) else {
            return unreadable("zip entries changed between two readings of its directory");
        };
        let packed = entry.compressed_size();
        let mut meter = Meter::new(&mut entry, budget, Packed::Fixed(packed));
        if let Err(refusal) = visit(visitor, &path, depth, &mut meter, budget)? {
            return Ok(Err(refusal));
        }
    }
    Ok(Ok(()))
}

/// Bytes of a central-directory file header before its name (APPNOTE 4.3.12).
const CENTRAL_HEADER_LEN: usize = 46;

/// The Info-ZIP Unicode Path extra field's header ID (APPNOTE 4.6.9).
const UNICODE_PATH: u16 = 0x7075;

/// What the central-directory header of `entry` says, read from the header itself, with the
/// name decoded as its author wrote it (see `names`: flag bit 11, Unicode Path field, UTF-8,
/// the legacy encoding). `Ok(Err(why))` when the name cannot be read as one name.
fn central_entry(
    file: &dyn Source,
    entry: &zip::read::ZipFile<'_, SourceCursor<'_>>,
    legacy: super::LegacyNames,
) -> io::Result<Result<Central, String>> {
    let offset = entry.central_header_start();
    let mut header = [0u8; CENTRAL_HEADER_LEN];
    file.read_exact_at(&mut header, offset)?;
    if !header.starts_with(b"PK\x01\x02") {
        return Ok(Err("central-directory header not found".into()));
    }
    let field16 = |at: usize| u16::from_le_bytes([header[at], header[at + 1]]);
    let (flags, method) = (field16(8), field16(10));
    let crc32 = u32::from_le_bytes([header[16], header[17], header[18], header[19]]);
    let name_len = usize::from(field16(28));
    let extra_len = usize::from(field16(30));
    let comment_len = u64::from(field16(32));
    let mut rest = vec![0u8; name_len + extra_len];
    file.read_exact_at(&mut rest, offset + CENTRAL_HEADER_LEN as u64)?;
    let (raw, extra) = rest.split_at(name_len);
    let Some(fields) = layout::extra_fields(extra) else {
        return Ok(Err("an extra field runs past its header".into()));
    };
    // version (1), CRC-32 of the raw name (4, checked by the zip reader), UTF-8 name
    let unicode_path = fields
        .iter()
        .find(|(id, _)| *id == UNICODE_PATH)
        .map(|(_, data)| data.get(5..).unwrap_or_default().to_vec());
    let name = match super::names::zip_name(
        raw,
        flags & (1 << 11) != 0,
        unicode_path.as_deref(),
        legacy,
    ) {
        Ok(name) => name,
        Err(why) => return Ok(Err(why)),
    };
    Ok(Ok(Central {
        name,
        raw_name: raw.to_vec(),
        flags,
        method,
        crc32,
        compressed: entry.compressed_size(),
        size: entry.size(),
        local_at: entry.header_start(),
        central_at: offset,
        central_len: CENTRAL_HEADER_LEN as u64 + (name_len + extra_len) as u64 + comment_len,
        unicode_path,
    }))
}

/// Sorts an error of the zip reader: a fault of the machine, or a zip that cannot be read.
fn zip_error(e: zip::result::ZipError) -> Scan {
    match e {
        zip::result::ZipError::Io(e) if e.raw_os_error().is_some() => Err(e),
        zip::result::ZipError::UnsupportedArchive(why)
            if why == zip::result::ZipError::PASSWORD_REQUIRED =>
        {
            unreadable("zip entry is encrypted and cannot be inspected")
        }
        other => unreadable(format!("zip archive cannot be read: {other}")),
    }
}

/// The little-endian number at `at`, or 0 past the end.
fn le16(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 2)
        .map_or(0, |s| u64::from(u16::from_le_bytes([s[0], s[1]])))
}

/// The little-endian number at `at`, or 0 past the end.
fn le32(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 4).map_or(0, |s| {
        u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    })
}

/// The little-endian number at `at`, or 0 past the end.
fn le64(b: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        word.copy_from_slice(s);
    }
    u64::from_le_bytes(word)
}

/// What the end-of-central-directory records declare.
#[derive(Debug, Default)]
struct Directory {
    /// Most entries.
    entries: u64,
    /// Largest central-directory size, in bytes.
    bytes: u64,
}

/// The largest entry count and central-directory size any end-of-central-directory record in
/// the tail of the file declares (zip64 included), read before the zip reader loads its
/// directory.
fn declared_zip_directory(file: &dyn Source) -> io::Result<Directory> {
    const EOCD: &[u8] = b"PK\x05\x06";
    const LOCATOR64: &[u8] = b"PK\x06\x07";
    const EOCD64: &[u8] = b"PK\x06\x06";
    let len = file.size()?;
    let tail_len = len.min(22 + 65_535 + 20);
    let mut tail = vec![0u8; tail_len as usize];
    file.read_exact_at(&mut tail, len - tail_len)?;
    let mut most = Directory::default();
    for at in (0..tail.len().saturating_sub(21)).rev() {
        if &tail[at..at + 4] != EOCD {
            continue;
        }
        most.entries = most.entries.max(le16(&tail, at + 10));
        most.bytes = most.bytes.max(le32(&tail, at + 12));
        if at < 20 || &tail[at - 20..at - 16] != LOCATOR64 {
            continue;
        }
        let offset = le64(&tail, at - 20 + 8);
        if offset.saturating_add(56) > len {
            continue;
        }
        let mut record = [0u8; 56];
        file.read_exact_at(&mut record, offset)?;
        if &record[..4] == EOCD64 {
            most.entries = most.entries.max(le64(&record, 32));
            most.bytes = most.bytes.max(le64(&record, 40));
        }
    }
    Ok(most)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Collect, limits, refused, run, understate, zeros_zip, zip_of};
    use super::super::{Input, Limits, walk};
    use super::*;
    use crate::core::reason::Reason;
    use std::io::Cursor;
    use std::time::{Duration, Instant};
    use zip::write::SimpleFileOptions;

    #[test]
    fn clean_zip_visits_every_file_with_its_bytes() {
        let data = zip_of(&[
            ("docs/", b""),
            ("docs/a.txt", b"alpha"),
            ("b.bin", &[7u8; 70_000]),
            ("机密/说明.txt", "正文".as_bytes()),
        ]);
        let (verdict, v) = run(Kind::Zip, &data, limits());
        assert_eq!(verdict, Ok(()));
        let names: Vec<_> = v.seen.iter().map(|(p, d, _)| (p.as_str(), *d)).collect();
        assert_eq!(
            names,
            [("docs/a.txt", 1), ("b.bin", 1), ("机密/说明.txt", 1)]
        );
        assert_eq!(v.seen[0].2, b"alpha");
        assert_eq!(v.seen[1].2, vec![7u8; 4096 + 512]);
        assert_eq!(v.seen[2].2, "正文".as_bytes());
    }

    #[test]
    fn zip_from_a_file_is_read_in_place_and_entries_are_counted() {
        let data = zip_of(&[("d/", b""), ("d/x", b"1"), ("y", b"2")]);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data).unwrap();
        let mut visitor = Collect::new();
        let mut budget = Budget::new(limits());
        let spill = visitor.spill.clone();
        let verdict = walk(
            Kind::Zip,
            Input::File(&file),
            1,
            &mut budget,
            &spill,
            &mut visitor,
        );
        assert_eq!(verdict.unwrap(), Ok(()));
        assert_eq!(budget.entries(), 3);
        assert_eq!(budget.expanded(), 2);
        assert_eq!(visitor.seen.len(), 2);
    }

    #[test]
    fn zip_entry_paths_are_checked() {
        for name in [
            "../../x",
            "/etc/passwd",
            "a/../b",
            "a//b",
            "./a",
            "a\\b",
            "C:x",
            "a\u{0}b",
            "a\nb",
        ] {
            let data = zip_of(&[("ok.txt", b"fine"), (name, b"x")]);
            let refusal = refused(Kind::Zip, &data, limits());
            assert_eq!(refusal.reason, Reason::ArchivePath, "{name:?}: {refusal}");
        }
    }

    #[test]
    fn zip_symlink_is_refused() {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.add_symlink("link", "/etc/passwd", SimpleFileOptions::default())
            .unwrap();
        let data = w.finish().unwrap().into_inner();
        assert_eq!(
            refused(Kind::Zip, &data, limits()).reason,
            Reason::ArchivePath
        );
    }

    #[test]
    fn corrupt_zip_is_unreadable_not_a_fault() {
        let good = zip_of(&[("a.txt", &[b'a'; 10_000])]);
        // Not a zip at all.
        let r = refused(Kind::Zip, b"this is not a zip file", limits());
        assert_eq!(r.reason, Reason::ContentUnreadable);
        // Truncated.
        let r = refused(Kind::Zip, &good[..good.len() / 2], limits());
        assert_eq!(r.reason, Reason::ContentUnreadable);
        // Damaged deflate data (CRC or inflate error).
        let mut bad = good.clone();
        for b in &mut bad[40..50] {
            *b ^= 0x55;
        }
        let r = refused(Kind::Zip, &bad, limits());
        assert_eq!(r.reason, Reason::ContentUnreadable, "{r}");
    }

    #[test]
    fn encrypted_zip_is_unreadable() {
        let mut data = zip_of(&[("a.txt", b"secret")]);
        // Set the encryption bit in the central directory and the local header.
        for sig in [&b"PK\x03\x04"[..], &b"PK\x01\x02"[..]] {
            let at = data.windows(4).position(|w| w == sig).unwrap();
            let flags = if sig[2] == 3 { at + 6 } else { at + 8 };
            data[flags] |= 1;
        }
        let r = refused(Kind::Zip, &data, limits());
        assert_eq!(r.reason, Reason::ContentUnreadable, "{r}");
    }

    #[test]
    fn zip_bomb_is_refused_at_once_from_the_central_directory() {
        let data = zeros_zip(2 << 30);
        assert!(data.len() < 4 << 20, "{}", data.len());
        let start = Instant::now();
        let r = refused(Kind::Zip, &data, limits());
        assert_eq!(r.reason, Reason::ArchiveLimit, "{r}");
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn lying_zip_is_refused_while_reading_by_ratio_and_by_size() {
        let mut data = zeros_zip(64 << 20);
        understate(&mut data, 1000);
        let start = Instant::now();
        let r = refused(Kind::Zip, &data, limits());
        assert_eq!(r.reason, Reason::ArchiveLimit, "{r}");
        assert!(r.detail.contains("times"), "{r}");
        let no_ratio = Limits {
            max_ratio: u64::MAX,
            max_expanded_bytes: 8 << 20,
            ..limits()
        };
        let r = refused(Kind::Zip, &data, no_ratio);
        assert_eq!(r.reason, Reason::ArchiveLimit, "{r}");
        assert!(r.detail.contains("bytes"), "{r}");
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn nested_zip_is_visited_at_depth_two() {
        let inner = zip_of(&[("inner.txt", b"deep")]);
        let outer = zip_of(&[("top.txt", b"top"), ("inner.zip", &inner)]);
        let (verdict, v) = run(Kind::Zip, &outer, limits());
        assert_eq!(verdict, Ok(()));
        assert_eq!(
            v.entries(),
            [
                ("top.txt", 1, &b"top"[..]),
                ("inner.zip", 1, &b""[..]),
                ("inner.txt", 2, &b"deep"[..]),
            ]
        );
    }

    #[test]
    fn nested_zip_larger_than_the_spill_cap_is_refused() {
        let huge = Limits {
            max_expanded_bytes: 1 << 40,
            max_ratio: u64::MAX,
            ..limits()
        };
        let mut visitor = Collect::new();
        let mut budget = Budget::new(huge);
        let mut reader = io::repeat(0).take(SPILL_CAP + 1);
        let spill = visitor.spill.clone();
        let start = Instant::now();
        let verdict = walk(
            Kind::Zip,
            Input::Stream(&mut reader),
            2,
            &mut budget,
            &spill,
            &mut visitor,
        )
        .expect("no I/O fault");
        let r = verdict.expect_err("refused");
        assert_eq!(r.reason, Reason::ArchiveLimit, "{r}");
        assert_eq!(r.detail, "nested zip larger than 256 MiB");
        assert!(start.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn a_spill_fault_is_an_error_not_a_refusal() {
        /// A disk that is full, reported without an OS error code.
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let budget = Budget::new(limits());
        let mut reader = &b"PK\x03\x04 some zip bytes"[..];
        match copy_capped(&mut reader, &mut Full, SPILL_CAP, "nested zip", &budget) {
            Err(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::StorageFull),
            other => panic!("expected a fault, got {other:?}"),
        }
        assert_eq!(budget.tripped(), None);
        // A spill directory that cannot be written is a fault too.
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let mut visitor = Collect::new();
        let mut budget = Budget::new(limits());
        let data = zip_of(&[("a.txt", b"a")]);
        let mut reader = data.as_slice();
        let verdict = walk(
            Kind::Zip,
            Input::Stream(&mut reader),
            1,
            &mut budget,
            &missing,
            &mut visitor,
        );
        assert!(verdict.is_err(), "{verdict:?}");
    }

    #[test]
    fn a_folder_entry_that_carries_bytes_is_refused() {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for method in [
            zip::CompressionMethod::Stored,
            zip::CompressionMethod::Deflated,
        ] {
            let opts = SimpleFileOptions::default().compression_method(method);
            w.start_file(format!("{method}/"), opts).unwrap();
            w.write_all(b"MZ\x90\x00 hidden executable").unwrap();
        }
        let data = w.finish().unwrap().into_inner();
        let r = refused(Kind::Zip, &data, limits());
        assert_eq!(r.reason, Reason::ArchiveAmbiguous, "{r}");
        assert!(r.detail.contains("a folder holds none"), "{r}");
        // empty folders, as every writer makes them, pass
        let (verdict, _) = run(
            Kind::Zip,
            &zip_of(&[("d/", b""), ("d/a.txt", b"x")]),
            limits(),
        );
        assert_eq!(verdict, Ok(()));
    }

    #[test]
    fn oversized_central_directory_is_refused_before_it_is_loaded() {
        let few = Limits {
            max_entries: 10,
            ..limits()
        };
        let long: Vec<String> = (0..3)
            .map(|i| format!("{i}{}", "n".repeat(30_000)))
            .collect();
        let entries: Vec<(&str, &[u8])> = long.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
        let data = zip_of(&entries);
        let r = refused(Kind::Zip, &data, few);
        assert_eq!(r.reason, Reason::ArchiveLimit, "{r}");
        assert!(r.detail.contains("central directory"), "{r}");
        // The same zip passes when the limits allow it.
        let (verdict, v) = run(Kind::Zip, &data, limits());
        assert_eq!(verdict, Ok(()));
        assert_eq!(v.seen.len(), 3);
        // A zip64 record declaring a huge directory is refused too.
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.set_zip64_comment(Some("zip64"));
        w.start_file("a.txt", SimpleFileOptions::default()).unwrap();
        w.write_all(b"a").unwrap();
        let mut data = w.finish().unwrap().into_inner();
        assert_eq!(run(Kind::Zip, &data, limits()).0, Ok(()));
        let at = data
            .windows(4)
            .rposition(|w| w == b"PK\x06\x06")
            .expect("zip64 record");
        data[at + 40..at + 48].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let r = refused(Kind::Zip, &data, limits());
        assert_eq!(r.reason, Reason::ArchiveLimit, "{r}");
        assert!(r.detail.contains("central directory"), "{r}");
    }
}
