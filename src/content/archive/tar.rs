//! Tar: POSIX, GNU and PAX members read raw, so that long names and PAX records are read here
//! with a cap; links, devices, FIFOs, sparse files and unknown member types are refused; each
//! regular file is read through a meter.

use super::meter::{Meter, Packed};
use super::paths::path_problem;
use super::{Budget, IO_BUF, Input, Visitor, bad_path, stream, unreadable, visit};
use crate::content::Scan;
use crate::core::reason::{Reason, Refusal};
use std::collections::HashMap;
use std::io::{self, BufReader, Read};

/// Longest GNU long-name or PAX extension record read from a tar.
const TAR_EXTENSION_CAP: u64 = 64 * 1024;

/// Most extension headers (long name, long link, PAX) in a row before a member.
const TAR_EXTENSION_RUN: u32 = 8;

/// Reads at most `cap` bytes; `None` when there are more.
fn read_capped(reader: &mut dyn Read, cap: u64) -> io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    reader.take(cap + 1).read_to_end(&mut data)?;
    if data.len() as u64 > cap {
        return Ok(None);
    }
    Ok(Some(data))
}

/// Walks a tar read from `input`.
pub(super) fn walk_tar(
    input: Input<'_>,
    depth: u32,
    budget: &mut Budget,
    visitor: &mut dyn Visitor,
) -> Scan {
    let mut file_slot = None;
    let reader = stream(input, &mut file_slot);
    let mut archive = tar::Archive::new(BufReader::with_capacity(IO_BUF, reader));
    // Raw entries: long names and PAX records are read here, with a cap, not by the crate.
    let mut entries = archive.entries()?.raw(true);
    let mut long_name: Option<Vec<u8>> = None;
    let mut pax_path: Option<Vec<u8>> = None;
    let mut run = 0u32;
    let mut seen: HashMap<String, String> = HashMap::new();
    for entry in entries.by_ref() {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions()
        {
            run += 1;
            if run > TAR_EXTENSION_RUN {
                return unreadable("tar has too many extension headers in a row");
            }
            let Some(data) = read_capped(&mut entry, TAR_EXTENSION_CAP)? else {
                return unreadable("tar extension header longer than 64 KiB");
            };
            if kind.is_gnu_longname() {
                let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                long_name = Some(data[..end].to_vec());
            } else if kind.is_pax_local_extensions() {
                for record in tar::PaxExtensions::new(&data) {
                    let Ok(record) = record else {
                        return unreadable("tar PAX record is malformed");
                    };
                    let key = record.key_bytes();
                    if key == b"path" {
                        pax_path = Some(record.value_bytes().to_vec());
                    } else if key == b"size" || key.starts_with(b"GNU.sparse") {
                        return unreadable("tar PAX size and sparse records are not supported");
                    }
                }
            }
            continue;
        }
        run = 0;
        if let Err(refusal) = budget.count_entry() {
            return Ok(Err(refusal));
        }
        let ustar = entry.path_bytes().into_owned();
        let (raw, from_pax) = match (pax_path.take(), long_name.take()) {
            (Some(path), _) => (path, true),
            (None, Some(path)) => (path, false),
            (None, None) => (ustar.clone(), false),
        };
        // A reader that ignores the PAX or GNU record reads the ustar name: it must name the
        // same file (the long name cut short, as writers store it).
        let ustar_trimmed = ustar.strip_suffix(b"/").unwrap_or(&ustar);
        if !ustar.is_empty() && !raw.starts_with(ustar_trimmed) {
            return ambiguous(format!(
                "tar entry {:?}: its ustar name {:?} names another file",
                String::from_utf8_lossy(&raw),
                String::from_utf8_lossy(&ustar)
            ));
        }
        let path = match super::names::tar_name(&raw, from_pax, budget.limits().legacy_names) {
            Ok(path) => path,
            Err(why) => {
                return Ok(Err(Refusal::new(
                    Reason::ArchivePath,
                    format!("tar entry {:?}: {why}", String::from_utf8_lossy(&raw)),
                )));
            }
        };
        if let Some(why) = path_problem(&path, kind.is_dir()) {
            return bad_path(&path, why);
        }
        if let Some(first) = seen.insert(path.trim_end_matches('/').to_lowercase(), path.clone()) {
            return ambiguous(format!(
                "two tar entries name the same file as Windows extracts them: {first:?} and {path:?}"
            ));
        }
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            tar::EntryType::Directory => continue,
            tar::EntryType::Symlink => return bad_path(&path, "symbolic link"),
            tar::EntryType::Link => return bad_path(&path, "hard link"),
            tar::EntryType::Char | tar::EntryType::Block => return bad_path(&path, "device"),
            tar::EntryType::Fifo => return bad_path(&path, "FIFO"),
            tar::EntryType::GNUSparse => return unreadable("tar sparse files are not supported"),
            other => {
                return unreadable(format!(
                    "tar entry type {:?} is not supported",
                    char::from(other.as_byte())
                ));
            }
        }
        let mut meter = Meter::new(&mut entry, budget, Packed::Same);
        if let Err(refusal) = visit(visitor, &path, depth, &mut meter, budget)? {
            return Ok(Err(refusal));
        }
    }
    if run > 0 {
        return unreadable("tar ends with an extension header but no member");
    }
    // After the end-of-archive blocks only zero padding: GNU tar -i would read on.
    let mut rest = archive.into_inner();
    let mut buf = vec![0u8; IO_BUF];
    let mut after = 0u64;
    loop {
        let n = match rest.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if let Some(at) = buf.get(..n).and_then(|b| b.iter().position(|&x| x != 0)) {
            return ambiguous(format!(
                "data after the end of the tar archive, {} bytes past its end-of-archive blocks",
                after + at as u64
            ));
        }
        after += n as u64;
    }
    Ok(Ok(()))
}

/// A verdict: the archive could be read differently by another reader (ArchiveAmbiguous).
fn ambiguous(detail: String) -> Scan {
    Ok(Err(Refusal::new(Reason::ArchiveAmbiguous, detail)))
}

#[cfg(test)]
mod tests {
    use super::super::Kind;
    use super::super::testing::{limits, refused, run, tar_of};
    use super::*;

    /// A PAX extended header carrying `path`, as the member after it is named.
    fn pax_path(b: &mut tar::Builder<Vec<u8>>, path: &str) {
        let mut record = String::new();
        for digits in 1..6 {
            let len = digits + " path=".len() + path.len() + 1;
            if len.to_string().len() == digits {
                record = format!("{len} path={path}\n");
                break;
            }
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_path("PaxHeader").unwrap();
        h.set_size(record.len() as u64);
        h.set_cksum();
        b.append(&h, record.as_bytes()).unwrap();
    }

    fn member(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    #[test]
    fn a_pax_path_must_name_the_file_the_ustar_name_names() {
        let mut b = tar::Builder::new(Vec::new());
        pax_path(&mut b, "invoice.cmd");
        member(&mut b, "invoice.txt", b"echo");
        let r = refused(Kind::Tar, &b.into_inner().unwrap(), limits());
        assert_eq!(r.reason, Reason::ArchiveAmbiguous, "{r}");
        assert!(r.detail.contains("names another file"), "{r}");
        // the long name cut short in the ustar field, as writers store it
        let long = format!("{}/证据.txt", "目录".repeat(30));
        let mut b = tar::Builder::new(Vec::new());
        pax_path(&mut b, &long);
        let mut cut = long.as_bytes()[..90].to_vec();
        while std::str::from_utf8(&cut).is_err() {
            cut.pop();
        }
        member(&mut b, std::str::from_utf8(&cut).unwrap(), b"x");
        let (verdict, v) = run(Kind::Tar, &b.into_inner().unwrap(), limits());
        assert_eq!(verdict, Ok(()));
        assert_eq!(v.seen[0].0, long);
    }

    #[test]
    fn duplicate_names_and_data_after_the_end_are_refused() {
        let dup = tar_of(&[("Report.txt", b"one"), ("report.txt", b"two")]);
        let r = refused(Kind::Tar, &dup, limits());
        assert_eq!(r.reason, Reason::ArchiveAmbiguous, "{r}");
        let first = tar_of(&[("a.txt", b"a")]);
        let second = tar_of(&[("run.sh", b"#!/bin/sh")]);
        let r = refused(Kind::Tar, &[first.clone(), second].concat(), limits());
        assert_eq!(r.reason, Reason::ArchiveAmbiguous, "{r}");
        assert!(r.detail.contains("after the end"), "{r}");
        // zero padding to a full record is what tar writes
        let mut padded = first;
        padded.resize(padded.len() + 10240, 0);
        assert_eq!(run(Kind::Tar, &padded, limits()).0, Ok(()));
    }

    #[test]
    fn clean_tar_visits_every_file_with_its_bytes() {
        let long = format!("{}/file.txt", "d".repeat(150));
        let data = tar_of(&[("a.txt", b"alpha"), (&long, b"long name"), ("e", b"")]);
        let (verdict, v) = run(Kind::Tar, &data, limits());
        assert_eq!(verdict, Ok(()));
        assert_eq!(
            v.entries(),
            [
                ("a.txt", 1, &b"alpha"[..]),
                (long.as_str(), 1, &b"long name"[..]),
                ("e", 1, &b""[..]),
            ]
        );
    }

    #[test]
    fn tar_links_devices_and_bad_paths_are_refused() {
        for kind in [
            tar::EntryType::Symlink,
            tar::EntryType::Link,
            tar::EntryType::Char,
            tar::EntryType::Fifo,
        ] {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            h.set_entry_type(kind);
            h.set_link_name("target").unwrap();
            b.append_data(&mut h, "link", io::empty()).unwrap();
            let data = b.into_inner().unwrap();
            assert_eq!(
                refused(Kind::Tar, &data, limits()).reason,
                Reason::ArchivePath
            );
        }
        // A raw header: the builder itself refuses to write `..`.
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..7].copy_from_slice(b"../evil");
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        data.extend_from_slice(&[0u8; 1024]);
        assert_eq!(
            refused(Kind::Tar, &data, limits()).reason,
            Reason::ArchivePath
        );
    }

    #[test]
    fn corrupt_tar_is_unreadable() {
        let mut data = tar_of(&[("a.txt", b"alpha")]);
        data[148] ^= 0x11; // checksum field
        assert_eq!(
            refused(Kind::Tar, &data, limits()).reason,
            Reason::ContentUnreadable
        );
        let data = tar_of(&[("a.txt", &[1u8; 5000])]);
        assert_eq!(
            refused(Kind::Tar, &data[..2000], limits()).reason,
            Reason::ContentUnreadable
        );
    }
}
