//! The OLE Package object (`\x01Ole10Native` stream), in which Word, Excel and PowerPoint
//! embed a file as it is: its header gives the file's name and size, and its data follows.
//!
//! ```text
//!  u32 size of what follows
//!  u16 flags
//!  label         NUL-terminated, ANSI (the name shown in the document)
//!  source path   NUL-terminated, ANSI (where the file was embedded from)
//!  u16 reserved, u16 kind (3: embedded; 1: a link to a file outside)
//!  u32 length, temporary path (NUL-terminated, ANSI)
//!  u32 data size, the file's bytes ─► handed on
//!  (Unicode copies of the three names may follow: not read)
//! ```
//!
//! ANSI names are read as UTF-8 when they are valid UTF-8, else as GB18030 (the code page of
//! Chinese Windows). No name may be longer than `MAX_NAME` bytes.

use std::io::{self, Read};

/// Longest name in the header, in bytes.
pub const MAX_NAME: usize = 4096;

/// The embedded file of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The file's base name: from its source path, else its label, else its temporary path.
    pub name: String,
    /// The file's size in bytes; the data follows the header.
    pub size: u32,
}

/// Why a package header cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// The stream could not be read.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The header is not that of an embedded file.
    #[error("{0}")]
    Malformed(&'static str),
}

/// Reads a package header from `r`, a stream of `len` bytes, leaving `r` at the file's
/// data, whose size is checked against what the stream holds.
///
/// # Errors
/// `Malformed` for a header that is truncated, a name longer than `MAX_NAME`, a link rather
/// than an embedded file, or data larger than the stream; `Io` if reading fails.
pub fn read_header(r: &mut dyn Read, len: u64) -> Result<Header, Problem> {
    let mut used = 0u64;
    let u16_le = |r: &mut dyn Read, used: &mut u64| -> Result<u16, Problem> {
        let mut b = [0u8; 2];
        r.read_exact(&mut b).map_err(truncated)?;
        *used += 2;
        Ok(u16::from_le_bytes(b))
    };
    let mut b4 = [0u8; 4];
    r.read_exact(&mut b4).map_err(truncated)?;
    used += 4;
    let _flags = u16_le(r, &mut used)?;
    let label = cstring(r, &mut used)?;
    let source = cstring(r, &mut used)?;
    let _reserved = u16_le(r, &mut used)?;
    let kind = u16_le(r, &mut used)?;
    if kind == 1 {
        return Err(Problem::Malformed(
            "is a link to a file outside the document",
        ));
    }
    if kind != 3 {
        return Err(Problem::Malformed("of an unknown kind"));
    }
    r.read_exact(&mut b4).map_err(truncated)?;
    used += 4;
    let temp_len = u32::from_le_bytes(b4) as usize;
    if temp_len > MAX_NAME {
        return Err(Problem::Malformed("with a name too long"));
    }
    let mut temp = vec![0u8; temp_len];
    r.read_exact(&mut temp).map_err(truncated)?;
    used += temp_len as u64;
    let temp = trim_nul(&temp);
    r.read_exact(&mut b4).map_err(truncated)?;
    used += 4;
    let size = u32::from_le_bytes(b4);
    if used + u64::from(size) > len {
        return Err(Problem::Malformed("whose data is larger than the stream"));
    }
    let name = [source.as_slice(), label.as_slice(), temp]
        .into_iter()
        .map(|raw| base_name(&decode(raw)))
        .find(|n| !n.is_empty())
        .unwrap_or_default();
    if name.is_empty() {
        return Err(Problem::Malformed("without a file name"));
    }
    Ok(Header { name, size })
}

fn truncated(e: io::Error) -> Problem {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        Problem::Malformed("header truncated")
    } else {
        Problem::Io(e)
    }
}

/// A NUL-terminated string, without its NUL.
fn cstring(r: &mut dyn Read, used: &mut u64) -> Result<Vec<u8>, Problem> {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        r.read_exact(&mut b).map_err(truncated)?;
        *used += 1;
        if b[0] == 0 {
            return Ok(out);
        }
        if out.len() >= MAX_NAME {
            return Err(Problem::Malformed("with a name too long"));
        }
        out.push(b[0]);
    }
}

fn trim_nul(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    b.get(..end).unwrap_or_default()
}

/// An ANSI name: UTF-8 if valid, else GB18030.
fn decode(raw: &[u8]) -> String {
    match std::str::from_utf8(raw) {
        Ok(s) => s.to_string(),
        Err(_) => encoding_rs::GB18030
            .decode_without_bom_handling(raw)
            .0
            .into_owned(),
    }
}

/// The last component of a Windows or POSIX path.
fn base_name(path: &str) -> String {
    path.rsplit(['\\', '/'])
        .next()
        .unwrap_or(path)
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::super::testing::package;
    use super::*;

    #[test]
    fn the_header_names_the_file_and_leaves_the_reader_at_its_data() {
        let gbk = encoding_rs::GBK.encode("证据.txt").0.into_owned();
        let mut source = b"C:\\Users\\u\\".to_vec();
        source.extend_from_slice(&gbk);
        let stream = package(b"label", &source, b"hello");
        let mut r = stream.as_slice();
        let h = read_header(&mut r, stream.len() as u64).unwrap();
        assert_eq!(h.name, "证据.txt");
        assert_eq!(h.size, 5);
        assert_eq!(r, b"hello");
    }

    #[test]
    fn links_truncations_and_lies_are_malformed() {
        let mut link = package(b"a", b"C:\\a.txt", b"x");
        let at = 4 + 2 + 2 + 9;
        link[at + 2] = 1;
        let r = read_header(&mut link.as_slice(), link.len() as u64);
        assert!(
            matches!(r, Err(Problem::Malformed(w)) if w.contains("link")),
            "{r:?}"
        );
        let good = package(b"a", b"C:\\a.txt", b"xyz");
        let r = read_header(&mut &good[..20], 20);
        assert!(matches!(r, Err(Problem::Malformed(_))), "{r:?}");
        let r = read_header(&mut good.as_slice(), good.len() as u64 - 1);
        assert!(
            matches!(r, Err(Problem::Malformed(w)) if w.contains("larger")),
            "{r:?}"
        );
        let long = package(&vec![b'a'; MAX_NAME + 1], b"", b"");
        let r = read_header(&mut long.as_slice(), long.len() as u64);
        assert!(
            matches!(r, Err(Problem::Malformed(w)) if w.contains("long")),
            "{r:?}"
        );
    }
}
