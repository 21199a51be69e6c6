//! The Word binary format ([MS-DOC]), as Word 97-2003 and WPS Writer write it: the File
//! Information Block says whether the document is encrypted and where its piece table is;
//! the text is read piece by piece.
//!
//! ```text
//!  WordDocument: FIB ─► fEncrypted ─► refused
//!                    └► fWhichTblStm ─► 0Table | 1Table ─► Clx at fcClx (lcbClx bytes):
//!                         Prc* (skipped) ─► Pcdt ─► PlcPcd: CP[n+1], Pcd[n]
//!  each piece: FcCompressed ─► 8-bit (CP1252 with the [MS-DOC] 2.4.1 table) at fc/2
//!                           └► UTF-16LE at fc
//!             ─► read through one IO_BUF buffer ─► lines at 0x0D, 0x07, 0x0B, 0x0C, 0x0E
//!                                               └► fields 0x13 code 0x14 result 0x15:
//!                                                  DDE, DDEAUTO, INCLUDETEXT … refused
//! ```
//!
//! The piece table is read one entry at a time from the table stream, never loaded whole;
//! pieces that together cover more bytes than the `WordDocument` stream holds are refused
//! as unreadable (a loop of pieces over the same bytes would otherwise read without end).

use super::{IO_BUF, Step, Stop, TextOut, encrypted, join, le16, le32, shown, unreadable};
use crate::content::reach::Fields;
use crate::core::reason::Refusal;
use std::io::{Read, Seek, SeekFrom};

/// Bytes of the FIB read: FibBase, FibRgW97, FibRgLw97 and the FibRgFcLcb97 fields used.
const FIB_READ: usize = 1024;

/// The FIB's wIdent.
const WORD_IDENT: u16 = 0xA5EC;

/// Index of fcClx among the FibRgFcLcb97 pairs ([MS-DOC] 2.5.6).
const CLX_PAIR: usize = 33;

/// Reads the `WordDocument` stream in `storage`: refuses an encrypted document, and a field
/// that reaches outside or whose keyword a nested field builds ([`Fields`]); with `text`,
/// hands its text over line by line.
pub(super) fn scan<F: Read + Seek>(
    cf: &mut cfb::CompoundFile<F>,
    storage: &str,
    text: Option<&mut TextOut<'_, '_>>,
) -> Step {
    let word_path = join(storage, "WordDocument");
    let part = shown(&word_path);
    let mut word = cf.open_stream(&word_path)?;
    let word_len = word.len();
    let mut fib = Vec::with_capacity(FIB_READ);
    (&mut word).take(FIB_READ as u64).read_to_end(&mut fib)?;
    let bad = |why: &str| unreadable(format!("{part}: {why}"));
    if le16(&fib, 0) != Some(WORD_IDENT) {
        return Err(bad("not a Word binary document (FIB identifier)"));
    }
    let flags = le16(&fib, 0x0A).unwrap_or(0);
    if flags & 0x0100 != 0 {
        return Err(encrypted(&part, "FIB fEncrypted"));
    }
    // the text is read whatever the policy's text rules: its fields are always judged
    let mut text = text;
    // FibBase (32 bytes), csw and FibRgW97, cslw and FibRgLw97, cbRgFcLcb and the pairs.
    let csw = usize::from(le16(&fib, 0x20).ok_or_else(|| bad("FIB too short"))?);
    let at_cslw = 0x22 + 2 * csw;
    let cslw = usize::from(le16(&fib, at_cslw).ok_or_else(|| bad("FIB too short"))?);
    let at_cb = at_cslw + 2 + 4 * cslw;
    let pairs = usize::from(le16(&fib, at_cb).ok_or_else(|| bad("FIB too short"))?);
    if pairs <= CLX_PAIR {
        return Err(bad("FIB of a Word version before 97: text cannot be read"));
    }
    let at_clx = at_cb + 2 + 8 * CLX_PAIR;
    let (Some(fc_clx), Some(lcb_clx)) = (le32(&fib, at_clx), le32(&fib, at_clx + 4)) else {
        return Err(bad("FIB too short"));
    };
    let table_name = if flags & 0x0200 != 0 {
        "1Table"
    } else {
        "0Table"
    };
    let table_path = join(storage, table_name);
    if !cf.is_stream(&table_path) {
        return Err(bad(&format!("the table stream {table_name} is missing")));
    }
    let mut table = cf.open_stream(&table_path)?;
    let (fc_clx, lcb_clx) = (u64::from(fc_clx), u64::from(lcb_clx));
    let clx_end = fc_clx + lcb_clx;
    if lcb_clx < 5 || clx_end > table.len() {
        return Err(bad("piece table (Clx) out of range"));
    }

    // Clx: Prc entries (clxt 1) are skipped, then the Pcdt (clxt 2).
    let mut at = fc_clx;
    let plc_len = loop {
        let mut kind = [0u8; 1];
        table.seek(SeekFrom::Start(at))?;
        table.read_exact(&mut kind)?;
        match kind[0] {
            1 => {
                let mut size = [0u8; 2];
                table.read_exact(&mut size)?;
                let size = i16::from_le_bytes(size);
                if size < 0 {
                    return Err(bad("piece table (Prc) malformed"));
                }
                at += 3 + size as u64;
            }
            2 => {
                let mut size = [0u8; 4];
                table.read_exact(&mut size)?;
                at += 5;
                break u64::from(u32::from_le_bytes(size));
            }
            _ => return Err(bad("piece table (Clx) malformed")),
        }
        if at + 5 > clx_end {
            return Err(bad("piece table (Pcdt) missing"));
        }
    };
    if plc_len < 4 || (plc_len - 4) % 12 != 0 || at + plc_len > clx_end {
        return Err(bad("piece table (PlcPcd) out of range"));
    }
    let pieces = (plc_len - 4) / 12;
    let plc = at;
    let pcds = plc + 4 * (pieces + 1);

    if let Some(text) = text.as_mut() {
        text.part(&word_path)?;
    }
    let mut fields = Fields::new(&part);
    let mut covered = 0u64;
    let mut buf = vec![0u8; IO_BUF];
    let mut chars = String::with_capacity(IO_BUF);
    for i in 0..pieces {
        let mut cps = [0u8; 8];
        table.seek(SeekFrom::Start(plc + 4 * i))?;
        table.read_exact(&mut cps)?;
        let (Some(start), Some(end)) = (le32(&cps, 0), le32(&cps, 4)) else {
            return Err(bad("piece table truncated"));
        };
        let mut pcd = [0u8; 8];
        table.seek(SeekFrom::Start(pcds + 8 * i))?;
        table.read_exact(&mut pcd)?;
        let fc = le32(&pcd, 2).unwrap_or(0);
        let Some(count) = end.checked_sub(start) else {
            return Err(bad(&format!("piece {i} ends before it starts")));
        };
        let compressed = fc & 0x4000_0000 != 0;
        let fc = u64::from(fc & 0x3FFF_FFFF);
        let (offset, bytes) = if compressed {
            (fc / 2, u64::from(count))
        } else {
            (fc, 2 * u64::from(count))
        };
        covered += bytes;
        if offset + bytes > word_len || covered > word_len {
            return Err(bad(&format!("piece {i} out of range")));
        }
        word.seek(SeekFrom::Start(offset))?;
        let mut left = bytes;
        let mut utf16 = encoding_rs::UTF_16LE.new_decoder_without_bom_handling();
        while left > 0 {
            let n = left.min(IO_BUF as u64) as usize;
            let chunk = buf.get_mut(..n).unwrap_or_default();
            word.read_exact(chunk)?;
            left -= n as u64;
            chars.clear();
            if compressed {
                chars.extend(chunk.iter().map(|&b| cp1252(b)));
            } else {
                let _ = utf16.decode_to_string(chunk, &mut chars, left == 0);
            }
            for c in chars.chars() {
                field_mark(&mut fields, c).map_err(Stop::Refused)?;
                if let Some(text) = text.as_mut() {
                    emit(text, c)?;
                }
            }
        }
    }
    fields.finish().map_err(Stop::Refused)?;
    text.map_or(Ok(()), |t| t.end())
}

/// A character of the document's text to its fields ([MS-DOC] 2.8.25): 0x13 begins a
/// field, 0x14 separates its code from its result, 0x15 ends it; other characters are code
/// while a field's code is open.
fn field_mark(fields: &mut Fields<'_>, c: char) -> Result<(), Refusal> {
    match c {
        '\u{13}' => fields.begin(),
        '\u{14}' => fields.separate(),
        '\u{15}' => fields.end(),
        c => {
            let mut utf8 = [0u8; 4];
            fields.code(c.encode_utf8(&mut utf8));
            Ok(())
        }
    }
}

/// A character of the document's text to the lines: paragraph, cell, line, page and
/// column marks end a line; field marks and other control characters are dropped.
fn emit(text: &mut TextOut<'_, '_>, c: char) -> Step {
    match c {
        '\r' | '\u{7}' | '\u{b}' | '\u{c}' | '\u{e}' => text.end(),
        '\t' => text.push('\t'),
        '\u{1e}' => text.push('-'),
        c if (c as u32) < 0x20 => Ok(()),
        c => text.push(c),
    }
}

/// An 8-bit character of a compressed piece ([MS-DOC] 2.4.1): the byte is the code point,
/// except these, which are CP1252's.
fn cp1252(b: u8) -> char {
    match b {
        0x82 => '\u{201A}',
        0x83 => '\u{0192}',
        0x84 => '\u{201E}',
        0x85 => '\u{2026}',
        0x86 => '\u{2020}',
        0x87 => '\u{2021}',
        0x88 => '\u{02C6}',
        0x89 => '\u{2030}',
        0x8A => '\u{0160}',
        0x8B => '\u{2039}',
        0x8C => '\u{0152}',
        0x91 => '\u{2018}',
        0x92 => '\u{2019}',
        0x93 => '\u{201C}',
        0x94 => '\u{201D}',
        0x95 => '\u{2022}',
        0x96 => '\u{2013}',
        0x97 => '\u{2014}',
        0x98 => '\u{02DC}',
        0x99 => '\u{2122}',
        0x9A => '\u{0161}',
        0x9B => '\u{203A}',
        0x9C => '\u{0153}',
        0x9F => '\u{0178}',
        b => char::from(b),
    }
}
