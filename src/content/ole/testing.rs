//! Builders of small compound files for the tests: the records each reader needs and
//! nothing more (a FIB with the fields read and a Clx of one piece, a BIFF8 workbook
//! stream, a PowerPoint record tree, an OLE package).

use std::io::{Cursor, Write};

/// A compound file holding `streams` (paths with '/'; storages made as needed) and the
/// empty `storages`.
pub(crate) fn compound(streams: &[(&str, &[u8])], storages: &[&str]) -> Vec<u8> {
    let mut cf = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
    for storage in storages {
        cf.create_storage_all(storage).unwrap();
    }
    for (path, data) in streams {
        if let Some((parent, _)) = path.rsplit_once('/')
            && !parent.is_empty()
        {
            cf.create_storage_all(parent).unwrap();
        }
        cf.create_stream(path).unwrap().write_all(data).unwrap();
    }
    cf.flush().unwrap();
    cf.into_inner().into_inner()
}

/// Where the text of a built Word document starts in its `WordDocument` stream.
const TEXT_AT: usize = 1024;

/// The `WordDocument` and `1Table` streams of a Word document whose text is one piece:
/// UTF-16LE, or 8-bit when `compressed`. `flags` are OR-ed into the FIB's flags.
pub(crate) fn word_streams(text: &str, compressed: bool, flags: u16) -> (Vec<u8>, Vec<u8>) {
    let mut fib = vec![0u8; TEXT_AT];
    fib[0..2].copy_from_slice(&0xA5ECu16.to_le_bytes());
    fib[2..4].copy_from_slice(&0x00C1u16.to_le_bytes());
    fib[0x0A..0x0C].copy_from_slice(&(0x0200 | flags).to_le_bytes());
    fib[0x20..0x22].copy_from_slice(&14u16.to_le_bytes());
    fib[0x3E..0x40].copy_from_slice(&22u16.to_le_bytes());
    fib[0x98..0x9A].copy_from_slice(&93u16.to_le_bytes());
    let (bytes, count): (Vec<u8>, usize) = if compressed {
        (
            text.chars().map(|c| c as u8).collect(),
            text.chars().count(),
        )
    } else {
        let units: Vec<u16> = text.encode_utf16().collect();
        (
            units.iter().flat_map(|u| u.to_le_bytes()).collect(),
            units.len(),
        )
    };
    let mut word = fib;
    word.extend_from_slice(&bytes);
    let fc = if compressed {
        (TEXT_AT as u32 * 2) | 0x4000_0000
    } else {
        TEXT_AT as u32
    };
    let mut plc = Vec::new();
    plc.extend_from_slice(&0u32.to_le_bytes());
    plc.extend_from_slice(&(count as u32).to_le_bytes());
    plc.extend_from_slice(&0u16.to_le_bytes());
    plc.extend_from_slice(&fc.to_le_bytes());
    plc.extend_from_slice(&0u16.to_le_bytes());
    // a Prc before the Pcdt, as Word writes one
    let mut table = vec![0x01, 0x02, 0x00, 0xAA, 0xBB, 0x02];
    table.extend_from_slice(&(plc.len() as u32).to_le_bytes());
    table.extend_from_slice(&plc);
    let at_clx = 0x9A + 8 * 33;
    word[at_clx..at_clx + 4].copy_from_slice(&0u32.to_le_bytes());
    word[at_clx + 4..at_clx + 8].copy_from_slice(&(table.len() as u32).to_le_bytes());
    (word, table)
}

/// A Word document saying `text`.
pub(crate) fn doc(text: &str) -> Vec<u8> {
    let (word, table) = word_streams(text, false, 0);
    compound(&[("WordDocument", &word), ("1Table", &table)], &[])
}

/// One BIFF record.
pub(crate) fn record(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut out = kind.to_le_bytes().to_vec();
    out.extend_from_slice(&(body.len() as u16).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// A BoundSheet8 record of sheet type `dt` named `name` (8-bit characters).
pub(crate) fn boundsheet(name: &str, dt: u8) -> Vec<u8> {
    let mut body = vec![0, 0, 0, 0, 0, dt, name.len() as u8, 0];
    body.extend_from_slice(name.as_bytes());
    record(0x0085, &body)
}

/// An SST record and CONTINUE records holding `strings` (UTF-16), each record at most
/// `max` bytes: a string that does not fit goes on in the next record after a new
/// fHighByte, as Excel writes it.
pub(crate) fn sst(strings: &[&str], max: usize) -> Vec<u8> {
    let mut records = Vec::new();
    let mut body = Vec::new();
    body.extend_from_slice(&(strings.len() as u32).to_le_bytes());
    body.extend_from_slice(&(strings.len() as u32).to_le_bytes());
    let mut kind = 0x00FC;
    for s in strings {
        let units: Vec<u16> = s.encode_utf16().collect();
        if body.len() + 3 > max {
            records.extend(record(kind, &body));
            kind = 0x003C;
            body.clear();
        }
        body.extend_from_slice(&(units.len() as u16).to_le_bytes());
        body.push(0x01);
        for u in units {
            if body.len() + 2 > max {
                records.extend(record(kind, &body));
                kind = 0x003C;
                body = vec![0x01];
            }
            body.extend_from_slice(&u.to_le_bytes());
        }
    }
    records.extend(record(kind, &body));
    records
}

/// A BIFF8 workbook stream: BOF, `globals` records, EOF.
pub(crate) fn workbook(globals: &[Vec<u8>]) -> Vec<u8> {
    let mut out = record(0x0809, &[0x00, 0x06, 0x05, 0x00, 0, 0, 0, 0]);
    for r in globals {
        out.extend_from_slice(r);
    }
    out.extend(record(0x000A, &[]));
    out
}

/// An Excel workbook whose shared strings are `strings`.
pub(crate) fn xls(strings: &[&str]) -> Vec<u8> {
    let book = workbook(&[boundsheet("Sheet1", 0), sst(strings, 8224)]);
    compound(&[("Workbook", &book)], &[])
}

/// A PowerPoint record header and body.
pub(crate) fn ppt_record(ver: u16, kind: u16, body: &[u8]) -> Vec<u8> {
    let mut out = ver.to_le_bytes().to_vec();
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// A `PowerPoint Document` stream: a DocumentContainer holding `atoms`.
pub(crate) fn ppt_stream(atoms: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = atoms.concat();
    ppt_record(0x000F, 0x03E8, &body)
}

/// A PowerPoint presentation whose text is one TextCharsAtom.
pub(crate) fn ppt(text: &str) -> Vec<u8> {
    let chars: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    let stream = ppt_stream(&[ppt_record(0, 0x0FA0, &chars)]);
    compound(&[("PowerPoint Document", &stream)], &[])
}

/// An Ole10Native stream embedding `data` from `source`.
pub(crate) fn package(label: &[u8], source: &[u8], data: &[u8]) -> Vec<u8> {
    let mut body = vec![2, 0];
    body.extend_from_slice(label);
    body.push(0);
    body.extend_from_slice(source);
    body.push(0);
    body.extend_from_slice(&[0, 0, 3, 0]);
    let temp = b"C:\\Temp\\x.tmp\0";
    body.extend_from_slice(&(temp.len() as u32).to_le_bytes());
    body.extend_from_slice(temp);
    body.extend_from_slice(&(data.len() as u32).to_le_bytes());
    body.extend_from_slice(data);
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// A valid 18-digit resident ID number: `prefix17` and its check digit (GB 11643).
pub(crate) fn resident_id(prefix17: &str) -> String {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = prefix17
        .chars()
        .zip(W)
        .map(|(c, w)| c.to_digit(10).unwrap() * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{prefix17}{check}")
}
