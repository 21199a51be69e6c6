//! The summary property sets of a document ([MS-OLEPS]): `\x05SummaryInformation` (title,
//! subject, author, keywords, comments, last author …) and `\x05DocumentSummaryInformation`
//! (category, manager, company …); every string property is a line of text.
//!
//! ```text
//!  PropertySetStream: ByteOrder 0xFFFE, Version, SystemIdentifier, CLSID, NumPropertySets,
//!                     (FMTID, Offset)* ─► PropertySet: Size, NumProperties,
//!                     (PropertyIdentifier, Offset)* ─► TypedPropertyValue:
//!    VT_LPSTR 0x001E   u32 size, bytes in the set's code page (property 1, VT_I2; when
//!                      it is missing: UTF-8 if valid, else GB18030)
//!    VT_LPWSTR 0x001F  u32 characters, UTF-16LE
//!    anything else     skipped
//! ```
//!
//! The stream is read whole, so one larger than `MAX_PROPERTY_STREAM` is refused as
//! unreadable; a string in a code page not known here, and not plain ASCII, too.

use super::{Step, TextOut, join, le16, le32, shown, unreadable};
use std::io::{Read, Seek};

/// Largest property set stream read, in bytes.
pub const MAX_PROPERTY_STREAM: u64 = 256 * 1024;

/// Most properties read from one property set.
const MAX_PROPERTIES: u32 = 4096;

const VT_I2: u16 = 0x0002;
const VT_LPSTR: u16 = 0x001E;
const VT_LPWSTR: u16 = 0x001F;
const PID_CODEPAGE: u32 = 1;

/// Hands the string properties of the summary property sets in `storage` to `text`, one
/// line each.
pub(super) fn scan<F: Read + Seek>(
    cf: &mut cfb::CompoundFile<F>,
    storage: &str,
    text: &mut TextOut<'_, '_>,
) -> Step {
    for name in ["\u{5}SummaryInformation", "\u{5}DocumentSummaryInformation"] {
        let path = join(storage, name);
        if !cf.is_stream(&path) {
            continue;
        }
        let part = shown(&path);
        let mut stream = cf.open_stream(&path)?;
        if stream.len() > MAX_PROPERTY_STREAM {
            return Err(unreadable(format!(
                "{part}: property set larger than {MAX_PROPERTY_STREAM} bytes"
            )));
        }
        let mut data = Vec::new();
        stream.read_to_end(&mut data)?;
        text.part(&path)?;
        let mut strings = Vec::new();
        strings_of(&data, &mut strings).map_err(|why| unreadable(format!("{part}: {why}")))?;
        for s in strings {
            text.push_str(&s)?;
            text.end()?;
        }
    }
    Ok(())
}

/// The string properties of every property set in a property set stream.
fn strings_of(data: &[u8], out: &mut Vec<String>) -> Result<(), &'static str> {
    if le16(data, 0) != Some(0xFFFE) {
        return Err("not a property set stream");
    }
    let sets = le32(data, 24).ok_or("property set stream truncated")?;
    for i in 0..sets.min(2) as usize {
        let offset = le32(data, 28 + 20 * i + 16).ok_or("property set stream truncated")?;
        let set = data
            .get(offset as usize..)
            .ok_or("property set out of range")?;
        set_strings(set, out)?;
    }
    Ok(())
}

/// The string properties of one property set, decoded with its code page.
fn set_strings(set: &[u8], out: &mut Vec<String>) -> Result<(), &'static str> {
    let count = le32(set, 4).ok_or("property set truncated")?;
    if count > MAX_PROPERTIES {
        return Err("too many properties");
    }
    let entry = |i: u32| -> Result<(u32, usize), &'static str> {
        let at = 8 + 8 * i as usize;
        let id = le32(set, at).ok_or("property set truncated")?;
        let offset = le32(set, at + 4).ok_or("property set truncated")?;
        Ok((id, offset as usize))
    };
    // 0: not stated (PID_CODEPAGE is required, but not every writer obeys)
    let mut code_page = 0u16;
    for i in 0..count {
        let (id, offset) = entry(i)?;
        if id == PID_CODEPAGE && le16(set, offset) == Some(VT_I2) {
            code_page = le16(set, offset + 4).ok_or("property out of range")?;
        }
    }
    for i in 0..count {
        let (id, offset) = entry(i)?;
        if id < 2 {
            continue;
        }
        let kind = le16(set, offset).ok_or("property out of range")?;
        let size = le32(set, offset + 4).unwrap_or(0) as usize;
        let body = offset.checked_add(8).ok_or("property out of range")?;
        match kind {
            VT_LPSTR => {
                let bytes = body
                    .checked_add(size)
                    .and_then(|end| set.get(body..end))
                    .ok_or("string property out of range")?;
                let bytes = bytes.split(|&b| b == 0).next().unwrap_or_default();
                out.push(decode(bytes, code_page)?);
            }
            VT_LPWSTR => {
                let bytes = size
                    .checked_mul(2)
                    .and_then(|n| body.checked_add(n))
                    .and_then(|end| set.get(body..end))
                    .ok_or("string property out of range")?;
                let units = bytes
                    .chunks_exact(2)
                    .map(|u| u16::from_le_bytes([u[0], u[1]]))
                    .take_while(|&u| u != 0);
                out.push(
                    char::decode_utf16(units)
                        .map(|c| c.unwrap_or('\u{FFFD}'))
                        .collect(),
                );
            }
            _ => {}
        }
    }
    Ok(())
}

/// A string in a Windows code page.
fn decode(bytes: &[u8], code_page: u16) -> Result<String, &'static str> {
    let encoding = match code_page {
        936 | 54936 | 20936 => encoding_rs::GB18030,
        950 => encoding_rs::BIG5,
        65001 => encoding_rs::UTF_8,
        1200 => encoding_rs::UTF_16LE,
        1252 => encoding_rs::WINDOWS_1252,
        _ if bytes.is_ascii() => encoding_rs::WINDOWS_1252,
        0 if std::str::from_utf8(bytes).is_ok() => encoding_rs::UTF_8,
        0 => encoding_rs::GB18030,
        _ => return Err("string property in a code page that cannot be read"),
    };
    Ok(encoding.decode_without_bom_handling(bytes).0.into_owned())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A property set stream with one set of the given properties.
    pub(crate) fn property_stream(props: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut out = vec![0xFE, 0xFF, 0, 0, 0, 0, 0, 0];
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&48u32.to_le_bytes());
        let mut set = Vec::new();
        let table = 8 + 8 * props.len();
        let mut values = Vec::new();
        for (id, value) in props {
            set.extend_from_slice(&id.to_le_bytes());
            set.extend_from_slice(&((table + values.len()) as u32).to_le_bytes());
            values.extend_from_slice(value);
        }
        let mut whole = ((table + values.len()) as u32).to_le_bytes().to_vec();
        whole.extend_from_slice(&(props.len() as u32).to_le_bytes());
        whole.extend_from_slice(&set);
        whole.extend_from_slice(&values);
        out.extend_from_slice(&whole);
        out
    }

    pub(crate) fn lpstr(bytes: &[u8]) -> Vec<u8> {
        let mut v = VT_LPSTR.to_le_bytes().to_vec();
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(&(bytes.len() as u32 + 1).to_le_bytes());
        v.extend_from_slice(bytes);
        v.push(0);
        while !v.len().is_multiple_of(4) {
            v.push(0);
        }
        v
    }

    #[test]
    fn titles_and_authors_in_their_code_page() {
        let code_page = vec![2, 0, 0, 0, 0xA8, 0x03, 0, 0];
        let title = encoding_rs::GBK.encode("机密审理报告").0.into_owned();
        let data = property_stream(&[(1, code_page), (2, lpstr(&title)), (4, lpstr(b"Zhang"))]);
        let mut out = Vec::new();
        strings_of(&data, &mut out).unwrap();
        assert_eq!(out, ["机密审理报告", "Zhang"]);
        // an unknown code page: ASCII only
        let odd = vec![2, 0, 0, 0, 0x34, 0x12, 0, 0];
        let data = property_stream(&[(1, odd.clone()), (2, lpstr(b"plain"))]);
        let mut out = Vec::new();
        strings_of(&data, &mut out).unwrap();
        assert_eq!(out, ["plain"]);
        let data = property_stream(&[(1, odd), (2, lpstr(&title))]);
        assert!(strings_of(&data, &mut Vec::new()).is_err());
        // a string that runs out of the set
        let mut long = lpstr(b"abc");
        long[4] = 200;
        let data = property_stream(&[(2, long)]);
        assert!(strings_of(&data, &mut Vec::new()).is_err());
        assert!(strings_of(b"junk", &mut Vec::new()).is_err());
    }
}
