//! Apple metadata inside archives made on macOS: the AppleDouble companions (`._name`, and
//! the whole `__MACOSX/` tree the Finder's "Compress" adds) and the Finder's `.DS_Store`.
//! They are recognised by their names and then checked as what they are, by their structure,
//! rather than refused for a name that starts with a dot: an entry so named that is not what
//! its name says is refused.
//!
//! ```text
//!  entry path ─► kind_of: AppleDouble (`__MACOSX/…`, `._*`) | DS_Store | neither
//!  AppleDouble ─► RFC 1740 header (magic 0x00051607, version 2), entry table in bounds,
//!                 no data fork, a resource fork no larger than the blank one, nothing after
//!                 the last entry
//!  .DS_Store   ─► "Bud1" buddy-allocator header
//! ```
//!
//! Memory: at most [`MAX_APPLE_DOUBLE`] or [`MAX_DS_STORE`] bytes are read; a larger entry is
//! refused.

use crate::content::Scan;
use crate::core::reason::{Reason, Refusal};
use std::io::Read;

/// Largest AppleDouble companion accepted: Finder info and extended attributes of one file.
pub const MAX_APPLE_DOUBLE: u64 = 64 * 1024;

/// Largest `.DS_Store` accepted.
pub const MAX_DS_STORE: u64 = 1 << 20;

/// Largest resource fork accepted in an AppleDouble companion: the empty resource map macOS
/// writes ("This resource fork intentionally left blank") is 286 bytes.
pub const MAX_RESOURCE_FORK: u32 = 286;

/// The AppleDouble magic number and version 2 (RFC 1740 §3).
const MAGIC: [u8; 8] = [0x00, 0x05, 0x16, 0x07, 0x00, 0x02, 0x00, 0x00];

/// Header bytes before the entry table: magic, version, 16 filler bytes, entry count.
const HEADER_LEN: usize = 26;

/// The `.DS_Store` header: alignment word 1, then "Bud1".
const DS_STORE_MAGIC: &[u8] = b"\0\0\0\x01Bud1";

/// What an archive entry's path says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppleKind {
    /// An AppleDouble companion: a base name starting with `._` or a path under `__MACOSX/`.
    AppleDouble,
    /// The Finder's folder settings, `.DS_Store`.
    DsStore,
}

/// What the entry at `path` (inside an archive, `/`-separated) is by its name, or `None` when
/// it is an ordinary entry.
pub fn kind_of(path: &str) -> Option<AppleKind> {
    let base = path.rsplit('/').next().unwrap_or(path);
    if base == ".DS_Store" {
        Some(AppleKind::DsStore)
    } else if base.starts_with("._") || path.starts_with("__MACOSX/") {
        Some(AppleKind::AppleDouble)
    } else {
        None
    }
}

/// Checks an entry named as Apple metadata of `kind` against that format, reading at most
/// its size limit. A refusal (`content_unreadable`) says what is wrong.
///
/// # Errors
/// Reading the entry failed.
pub fn check(kind: AppleKind, reader: &mut dyn Read) -> Scan {
    let cap = match kind {
        AppleKind::AppleDouble => MAX_APPLE_DOUBLE,
        AppleKind::DsStore => MAX_DS_STORE,
    };
    let mut bytes = Vec::new();
    reader.take(cap + 1).read_to_end(&mut bytes)?;
    let what = match kind {
        AppleKind::AppleDouble => "AppleDouble companion",
        AppleKind::DsStore => ".DS_Store",
    };
    if bytes.len() as u64 > cap {
        return refused(format!("{what} larger than {cap} bytes"));
    }
    let problem = match kind {
        AppleKind::AppleDouble => apple_double_problem(&bytes),
        AppleKind::DsStore => (!bytes.starts_with(DS_STORE_MAGIC))
            .then(|| "not a Finder store (no Bud1 header)".to_string()),
    };
    match problem {
        Some(why) => refused(format!("named as an {what} but {why}")),
        None => Ok(Ok(())),
    }
}

fn refused(detail: String) -> Scan {
    Ok(Err(Refusal::new(Reason::ContentUnreadable, detail)))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// What is wrong with an AppleDouble file, or `None`.
fn apple_double_problem(b: &[u8]) -> Option<String> {
    if !b.starts_with(&MAGIC) || b.len() < HEADER_LEN {
        return Some("it has no AppleDouble version 2 header".into());
    }
    let count = usize::from(u16::from_be_bytes([b[24], b[25]]));
    let table_end = HEADER_LEN + count * 12;
    if table_end > b.len() {
        return Some("its entry table runs past its end".into());
    }
    let mut end = table_end;
    for i in 0..count {
        let at = HEADER_LEN + i * 12;
        let (Some(id), Some(offset), Some(len)) = (be32(b, at), be32(b, at + 4), be32(b, at + 8))
        else {
            return Some("its entry table is cut short".into());
        };
        let (offset, len64) = (offset as usize, len as usize);
        let Some(stop) = offset.checked_add(len64).filter(|s| *s <= b.len()) else {
            return Some(format!("entry {id} runs past its end"));
        };
        if offset < table_end && len64 > 0 {
            return Some(format!("entry {id} overlaps its header"));
        }
        match id {
            1 => return Some("it carries a data fork (a second copy of a file)".into()),
            2 if len > MAX_RESOURCE_FORK => {
                return Some(format!(
                    "it carries a resource fork of {len} bytes, which cannot be inspected"
                ));
            }
            _ => {}
        }
        end = end.max(stop);
    }
    (end < b.len()).then(|| format!("{} bytes follow its last entry", b.len() - end))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An AppleDouble file with the given (id, data) entries laid out after the table.
    fn apple_double(entries: &[(u32, &[u8])]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(b"Mac OS X        ");
        out.extend_from_slice(&(entries.len() as u16).to_be_bytes());
        let mut offset = HEADER_LEN + entries.len() * 12;
        for (id, data) in entries {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&(offset as u32).to_be_bytes());
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            offset += data.len();
        }
        for (_, data) in entries {
            out.extend_from_slice(data);
        }
        out
    }

    fn verdict(kind: AppleKind, bytes: &[u8]) -> Result<(), Refusal> {
        check(kind, &mut &bytes[..]).unwrap()
    }

    #[test]
    fn names_say_what_an_entry_claims_to_be() {
        assert_eq!(
            kind_of("__MACOSX/起诉材料/._民事起诉状.pdf"),
            Some(AppleKind::AppleDouble)
        );
        assert_eq!(
            kind_of("起诉材料/._民事起诉状.pdf"),
            Some(AppleKind::AppleDouble)
        );
        assert_eq!(kind_of("起诉材料/.DS_Store"), Some(AppleKind::DsStore));
        assert_eq!(kind_of("起诉材料/民事起诉状.pdf"), None);
        assert_eq!(kind_of(".hidden"), None);
    }

    #[test]
    fn what_macos_writes_passes() {
        let finder_info = [0u8; 32];
        let mut blank_fork = vec![0u8; 286];
        blank_fork[16..59].copy_from_slice(b"This resource fork intentionally left blank");
        let ok = apple_double(&[(9, &finder_info), (2, &blank_fork)]);
        assert_eq!(verdict(AppleKind::AppleDouble, &ok), Ok(()));
        let mut store = DS_STORE_MAGIC.to_vec();
        store.resize(6148, 0);
        assert_eq!(verdict(AppleKind::DsStore, &store), Ok(()));
    }

    #[test]
    fn what_is_not_apple_metadata_or_hides_something_is_refused() {
        let finder_info = [0u8; 32];
        let zip = b"PK\x03\x04 a zip";
        let cases: Vec<(AppleKind, Vec<u8>, &str)> = vec![
            (AppleKind::AppleDouble, zip.to_vec(), "no AppleDouble"),
            (
                AppleKind::AppleDouble,
                apple_double(&[(1, b"MZ payload")]),
                "data fork",
            ),
            (
                AppleKind::AppleDouble,
                apple_double(&[(9, &finder_info), (2, &[7u8; 4096])]),
                "resource fork",
            ),
            (
                AppleKind::AppleDouble,
                [apple_double(&[(9, &finder_info)]), zip.to_vec()].concat(),
                "follow its last entry",
            ),
            (
                AppleKind::AppleDouble,
                apple_double(&[(9, &finder_info)])[..40].to_vec(),
                "past its end",
            ),
            (AppleKind::DsStore, b"#!/bin/sh\n".to_vec(), "Bud1"),
            (
                AppleKind::AppleDouble,
                vec![0u8; MAX_APPLE_DOUBLE as usize + 1],
                "larger than",
            ),
        ];
        for (kind, bytes, why) in cases {
            let refusal = verdict(kind, &bytes).unwrap_err();
            assert_eq!(refusal.reason, Reason::ContentUnreadable);
            assert!(refusal.detail.contains(why), "{why}: {refusal}");
        }
    }

    #[test]
    fn reading_stops_at_the_cap() {
        let mut endless = std::io::repeat(0);
        let refusal = check(AppleKind::DsStore, &mut endless)
            .unwrap()
            .unwrap_err();
        assert!(refusal.detail.contains("larger than"));
    }
}
