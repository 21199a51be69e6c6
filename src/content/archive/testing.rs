//! Test helpers shared by the archive modules' tests: a visitor that collects every entry
//! (recursing into the archives it recognises), builders of zip, tar and gzip archives, and
//! walks that return the verdict and what was seen.

use super::{Budget, Input, Kind, Limits, Visitor, walk};
use crate::content::Scan;
use crate::core::reason::Refusal;
use std::io::{self, Cursor, Read, Write};
use std::path::PathBuf;
use zip::write::SimpleFileOptions;

/// Limits generous enough for every clean test archive.
pub(super) fn limits() -> Limits {
    Limits {
        max_depth: 4,
        max_entries: 1000,
        max_expanded_bytes: 256 << 20,
        max_ratio: 200,
        legacy_names: super::LegacyNames::Gb18030,
    }
}

/// Reads every entry, recursing into archives it recognises; keeps the first 4 KiB.
pub(super) struct Collect {
    pub(super) seen: Vec<(String, u32, Vec<u8>)>,
    pub(super) spill: PathBuf,
}

impl Collect {
    pub(super) fn new() -> Collect {
        Collect {
            seen: Vec::new(),
            spill: std::env::temp_dir(),
        }
    }

    /// What was seen, borrowed: path, depth and the bytes kept, entry by entry.
    pub(super) fn entries(&self) -> Vec<(&str, u32, &[u8])> {
        self.seen
            .iter()
            .map(|(p, d, b)| (p.as_str(), *d, b.as_slice()))
            .collect()
    }
}

/// The archive format `head` starts, if any.
fn sniff(head: &[u8]) -> Option<Kind> {
    if head.starts_with(b"PK\x03\x04") {
        Some(Kind::Zip)
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Some(Kind::Gzip)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Some(Kind::Tar)
    } else {
        None
    }
}

impl Visitor for Collect {
    fn entry(
        &mut self,
        path: &str,
        depth: u32,
        reader: &mut dyn Read,
        budget: &mut Budget,
    ) -> Scan {
        let mut head = Vec::new();
        reader.take(512).read_to_end(&mut head)?;
        if let Some(kind) = sniff(&head) {
            self.seen.push((path.to_owned(), depth, Vec::new()));
            let spill = self.spill.clone();
            let mut whole = head.as_slice().chain(reader);
            return walk(
                kind,
                Input::Stream(&mut whole),
                depth + 1,
                budget,
                &spill,
                self,
            );
        }
        let mut kept = head;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            if kept.len() < 4096 {
                kept.extend_from_slice(&buf[..n.min(4096)]);
            }
        }
        self.seen.push((path.to_owned(), depth, kept));
        Ok(Ok(()))
    }
}

/// A zip of deflated entries (a name ending in `/` is a directory).
pub(super) fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        if name.ends_with('/') {
            w.add_directory(*name, opts).unwrap();
        } else {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
    }
    w.finish().unwrap().into_inner()
}

/// A GNU tar of regular files.
pub(super) fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// A gzip of `data`, with a stored file name if given.
pub(super) fn gzip_of(name: Option<&str>, data: &[u8]) -> Vec<u8> {
    let mut builder = flate2::GzBuilder::new();
    if let Some(name) = name {
        builder = builder.filename(name);
    }
    let mut w = builder.write(Vec::new(), flate2::Compression::default());
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

/// Walks `data` as an archive of `kind` from a stream: the verdict and what was seen.
pub(super) fn run(kind: Kind, data: &[u8], limits: Limits) -> (Result<(), Refusal>, Collect) {
    let mut visitor = Collect::new();
    let mut budget = Budget::new(limits);
    let mut reader = data;
    let spill = visitor.spill.clone();
    let verdict = walk(
        kind,
        Input::Stream(&mut reader),
        1,
        &mut budget,
        &spill,
        &mut visitor,
    )
    .expect("no I/O fault");
    (verdict, visitor)
}

/// The refusal a walk must end in.
pub(super) fn refused(kind: Kind, data: &[u8], limits: Limits) -> Refusal {
    run(kind, data, limits).0.expect_err("refused")
}

/// A zip of one deflated entry of `len` zeros.
pub(super) fn zeros_zip(len: u64) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(len >= u32::MAX as u64);
    w.start_file("zeros.bin", opts).unwrap();
    io::copy(&mut io::repeat(0).take(len), &mut w).unwrap();
    w.finish().unwrap().into_inner()
}

/// Rewrites the declared uncompressed size of the only entry (a lying header).
pub(super) fn understate(data: &mut [u8], size: u32) {
    let local = data.windows(4).position(|w| w == b"PK\x03\x04").unwrap();
    data[local + 22..local + 26].copy_from_slice(&size.to_le_bytes());
    let central = data.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    data[central + 24..central + 28].copy_from_slice(&size.to_le_bytes());
}

/// One entry of [`raw_zip`]: raw name bytes, general-purpose flags, extra field, data.
pub(crate) type RawEntry<'a> = (&'a [u8], u16, &'a [u8], &'a [u8]);

/// A zip of stored entries written byte by byte, as other archivers write them, with each
/// entry's raw name bytes, flags and extra field as given (the same extra field in the local
/// and the central header). Flag bit 3 writes the sizes and CRC in a signed data descriptor
/// after the data and zeros in the local header, as streaming writers do.
pub(crate) fn raw_zip(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, flags, extra, data) in entries {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let offset = out.len() as u32;
        let descriptor = flags & 0x8 != 0;
        let fixed = |sig: &[u8], central: bool| {
            let mut h = sig.to_vec();
            if central {
                h.extend_from_slice(&20u16.to_le_bytes());
            }
            h.extend_from_slice(&20u16.to_le_bytes());
            h.extend_from_slice(&flags.to_le_bytes());
            h.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // stored, time, date
            let (crc, size) = if descriptor && !central {
                (0, 0)
            } else {
                (crc.sum(), data.len() as u32)
            };
            h.extend_from_slice(&crc.to_le_bytes());
            h.extend_from_slice(&size.to_le_bytes());
            h.extend_from_slice(&size.to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&(extra.len() as u16).to_le_bytes());
            h
        };
        out.extend(fixed(b"PK\x03\x04", false));
        out.extend_from_slice(name);
        out.extend_from_slice(extra);
        out.extend_from_slice(data);
        if descriptor {
            out.extend_from_slice(b"PK\x07\x08");
            out.extend_from_slice(&crc.sum().to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        }
        central.extend(fixed(b"PK\x01\x02", true));
        central.extend_from_slice(&[0; 10]); // comment length, disk, attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name);
        central.extend_from_slice(extra);
    }
    let at = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&at.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}
