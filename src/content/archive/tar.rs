//! Tar: POSIX, GNU and PAX members read raw, so that long names and PAX records are read here
//! with a cap; links, devices, FIFOs, sparse files and unknown member types are refused; each
//! regular file is read through a meter.

use super::meter::{Meter, Packed};
use super::paths::path_problem;
use super::{Budget, IO_BUF, Input, Visitor, bad_path, stream, unreadable, visit};
use crate::content::Scan;
use crate::core::reason::{Reason, Refusal};
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
    let reader = stream(input, &mut file_slot)?;
    let mut archive = tar::Archive::new(BufReader::with_capacity(IO_BUF, reader));
    // Raw entries: long names and PAX records are read here, with a cap, not by the crate.
    let entries = archive.entries()?.raw(true);
    let mut long_name: Option<Vec<u8>> = None;
    let mut pax_path: Option<Vec<u8>> = None;
    let mut run = 0u32;
    for entry in entries {
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
        let (raw, from_pax) = match (pax_path.take(), long_name.take()) {
            (Some(path), _) => (path, true),
            (None, Some(path)) => (path, false),
            (None, None) => (entry.path_bytes().into_owned(), false),
        };
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
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::super::Kind;
    use super::super::testing::{limits, refused, run, tar_of};
    use super::*;

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
