//! The Excel binary format ([MS-XLS]), BIFF8 as Excel 97-2003 and WPS Spreadsheets write
//! it: the workbook stream is read one record at a time.
//!
//! ```text
//!  Workbook: record (type u16, size u16 ≤ 8224, body) …
//!    FILEPASS 0x002F          ─► encrypted: refused
//!    BoundSheet8 0x0085       ─► a macro sheet (dt 1) or VBA module (dt 6): refused;
//!                                its name ─► lines
//!    SST 0x00FC + CONTINUE    ─► XLUnicodeRichExtendedString …: fHighByte, rich runs,
//!                                ext data; a string across CONTINUE records takes a new
//!                                fHighByte at each one ─► one line a string
//!    LABEL 0x0204, STRING 0x0207, HEADER 0x0014, FOOTER 0x0015 ─► lines
//!    TXO 0x01B6 (text boxes, comments) + CONTINUE: cchText characters, each CONTINUE
//!                                starting with its fHighByte ─► lines
//!  Book (BIFF5): macro sheets refused as above; its text (in a code page) is not read.
//! ```
//!
//! One record body is held at a time, at most `MAX_RECORD` bytes.

use super::{Child, Step, TextOut, encrypted, join, le16, le32, refuse, shown, unreadable};
use crate::core::reason::Reason;
use std::io::Read;

/// Largest record body BIFF8 allows ([MS-XLS] 2.1.4).
const MAX_RECORD: usize = 8224;

const FILEPASS: u16 = 0x002F;
const BOUNDSHEET: u16 = 0x0085;
const SST: u16 = 0x00FC;
const CONTINUE: u16 = 0x003C;
const LABEL: u16 = 0x0204;
const STRING: u16 = 0x0207;
const HEADER: u16 = 0x0014;
const FOOTER: u16 = 0x0015;
const TXO: u16 = 0x01B6;

/// Records read one at a time, with one record of look-ahead.
struct Records<R> {
    inner: R,
    kind: u16,
    body: Vec<u8>,
    held: bool,
}

impl<R: Read> Records<R> {
    /// The next record, into `kind` and `body`; `false` at the end of the stream.
    fn next(&mut self) -> Result<bool, String> {
        if self.held {
            self.held = false;
            return Ok(true);
        }
        let mut head = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.inner.read(&mut head[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => return Err("record header truncated".into()),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        self.kind = u16::from_le_bytes([head[0], head[1]]);
        let size = usize::from(u16::from_le_bytes([head[2], head[3]]));
        if size > MAX_RECORD {
            return Err(format!("record of {size} bytes, more than BIFF8 allows"));
        }
        self.body.resize(size, 0);
        self.inner
            .read_exact(&mut self.body)
            .map_err(|_| "record truncated".to_string())?;
        Ok(true)
    }

    /// Keeps the current record for the next call to `next`.
    fn hold(&mut self) {
        self.held = true;
    }
}

/// Reads the workbook stream in `storage`: refuses an encrypted workbook and macro sheets;
/// with `text`, hands over its strings line by line.
pub(super) fn scan<F: Read + std::io::Seek>(
    cf: &mut cfb::CompoundFile<F>,
    storage: &str,
    children: &[Child],
    mut text: Option<&mut TextOut<'_, '_>>,
) -> Step {
    let biff8 = children.iter().any(|c| c.stream && c.name == "Workbook");
    let path = join(storage, if biff8 { "Workbook" } else { "Book" });
    let part = shown(&path);
    if !biff8 && text.is_some() {
        return Err(unreadable(format!(
            "{part}: an Excel 5.0/95 workbook: its text cannot be read"
        )));
    }
    let stream = cf.open_stream(&path)?;
    let mut records = Records {
        inner: std::io::BufReader::with_capacity(super::IO_BUF, stream),
        kind: 0,
        body: Vec::with_capacity(MAX_RECORD),
        held: false,
    };
    if let Some(text) = text.as_deref_mut() {
        text.part(&path)?;
    }
    let bad = |why: String| unreadable(format!("{part}: {why}"));
    let mut line = String::new();
    loop {
        match records.next() {
            Ok(true) => {}
            Ok(false) => break,
            Err(why) => return Err(bad(why)),
        }
        let body = &records.body;
        match records.kind {
            FILEPASS => return Err(encrypted(&part, "FILEPASS record")),
            BOUNDSHEET => {
                let dt = body.get(5).copied().unwrap_or(0);
                line.clear();
                if biff8 {
                    short_string(body.get(6..).unwrap_or_default(), &mut line);
                }
                match dt {
                    1 => {
                        return Err(refuse(
                            Reason::ActiveContent,
                            format!("{part}: Excel 4.0 macro sheet {line:?}"),
                        ));
                    }
                    6 => {
                        return Err(refuse(
                            Reason::ActiveContent,
                            format!("{part}: VBA module sheet {line:?}"),
                        ));
                    }
                    _ => {}
                }
                if let Some(text) = text.as_deref_mut() {
                    text.push_str(&line)?;
                    text.end()?;
                }
            }
            SST => {
                if let Some(text) = text.as_deref_mut() {
                    sst(&mut records, text).map_err(|why| match why {
                        SstStop::Bad(why) => bad(why),
                        SstStop::Stop(stop) => stop,
                    })?;
                }
            }
            TXO => {
                let Some(text) = text.as_deref_mut() else {
                    continue;
                };
                let cch = usize::from(le16(body, 10).unwrap_or(0));
                if cch == 0 {
                    continue;
                }
                // the text follows in CONTINUE records, each starting with its fHighByte
                let at = body.len();
                let mut cursor = Cursor {
                    records: &mut records,
                    at,
                };
                cursor
                    .chars(cch, false, text)
                    .and_then(|()| text.end().map_err(SstStop::Stop))
                    .map_err(|why| match why {
                        SstStop::Bad(why) => bad(format!("text box or comment: {why}")),
                        SstStop::Stop(stop) => stop,
                    })?;
            }
            LABEL | STRING | HEADER | FOOTER => {
                let Some(text) = text.as_deref_mut() else {
                    continue;
                };
                let at = if records.kind == LABEL { 6 } else { 0 };
                if body.len() <= at {
                    continue;
                }
                line.clear();
                if !unicode_string(body.get(at..).unwrap_or_default(), &mut line) {
                    return Err(bad(format!(
                        "string record 0x{:04X} truncated",
                        records.kind
                    )));
                }
                text.push_str(&line)?;
                text.end()?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A ShortXLUnicodeString (cch u8, fHighByte, characters), as far as `b` holds it.
fn short_string(b: &[u8], out: &mut String) {
    let cch = usize::from(b.first().copied().unwrap_or(0));
    let high = b.get(1).is_some_and(|f| f & 1 != 0);
    chars_into(b.get(2..).unwrap_or_default(), cch, high, out);
}

/// An XLUnicodeString (cch u16, fHighByte, characters); `false` if `b` is too short.
fn unicode_string(b: &[u8], out: &mut String) -> bool {
    let cch = usize::from(le16(b, 0).unwrap_or(0));
    let high = b.get(2).is_some_and(|f| f & 1 != 0);
    let body = b.get(3..).unwrap_or_default();
    let needed = if high { cch * 2 } else { cch };
    chars_into(body, cch, high, out);
    body.len() >= needed
}

/// Appends up to `cch` characters from `b`: UTF-16LE when `high`, else one byte each (the
/// low byte of the code point). Returns how many bytes were used.
fn chars_into(b: &[u8], cch: usize, high: bool, out: &mut String) -> usize {
    if high {
        let units = b
            .chunks_exact(2)
            .take(cch)
            .map(|u| u16::from_le_bytes([u[0], u[1]]));
        out.extend(char::decode_utf16(units).map(|c| c.unwrap_or('\u{FFFD}')));
        (cch * 2).min(b.len() - b.len() % 2)
    } else {
        let n = cch.min(b.len());
        out.extend(b.iter().take(n).map(|&c| char::from(c)));
        n
    }
}

/// Why reading the shared strings stops.
enum SstStop {
    /// The table is malformed.
    Bad(String),
    /// The sink refused, or a fault.
    Stop(super::Stop),
}

impl From<super::Stop> for SstStop {
    fn from(s: super::Stop) -> SstStop {
        SstStop::Stop(s)
    }
}

/// The shared string table: the SST record's body and the CONTINUE records after it seen as
/// one run of bytes, except that characters carried over into a CONTINUE record start with a
/// new fHighByte ([MS-XLS] 2.4.265, 2.5.293).
struct Cursor<'r, R> {
    records: &'r mut Records<R>,
    at: usize,
}

impl<R: Read> Cursor<'_, R> {
    /// Moves to the next CONTINUE record; `false` when the table ends.
    fn advance(&mut self) -> Result<bool, SstStop> {
        match self.records.next() {
            Ok(true) if self.records.kind == CONTINUE => {
                self.at = 0;
                Ok(true)
            }
            Ok(true) => {
                self.records.hold();
                Ok(false)
            }
            Ok(false) => Ok(false),
            Err(why) => Err(SstStop::Bad(why)),
        }
    }

    fn byte(&mut self) -> Result<u8, SstStop> {
        while self.at >= self.records.body.len() {
            if !self.advance()? {
                return Err(SstStop::Bad("string truncated".into()));
            }
        }
        let b = self.records.body.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, SstStop> {
        Ok(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }

    fn u32(&mut self) -> Result<u32, SstStop> {
        Ok(u32::from_le_bytes([
            self.byte()?,
            self.byte()?,
            self.byte()?,
            self.byte()?,
        ]))
    }

    fn skip(&mut self, mut n: u64) -> Result<(), SstStop> {
        while n > 0 {
            let left = self.records.body.len().saturating_sub(self.at) as u64;
            if left == 0 {
                if !self.advance()? {
                    return Err(SstStop::Bad("string truncated".into()));
                }
                continue;
            }
            let step = left.min(n);
            self.at += step as usize;
            n -= step;
        }
        Ok(())
    }

    /// `cch` characters to `text`, starting as `high` says; a CONTINUE record met on the
    /// way starts with its own fHighByte.
    fn chars(
        &mut self,
        mut cch: usize,
        mut high: bool,
        text: &mut TextOut<'_, '_>,
    ) -> Result<(), SstStop> {
        let mut piece = String::new();
        while cch > 0 {
            if self.at >= self.records.body.len() {
                if !self.advance()? {
                    return Err(SstStop::Bad("string truncated".into()));
                }
                high = self.records.body.first().is_some_and(|f| f & 1 != 0);
                self.at = 1;
                continue;
            }
            let rest = self.records.body.get(self.at..).unwrap_or_default();
            let fit = if high { rest.len() / 2 } else { rest.len() };
            if fit == 0 {
                return Err(SstStop::Bad("shared string character split".into()));
            }
            let take = fit.min(cch);
            piece.clear();
            let used = chars_into(rest, take, high, &mut piece);
            self.at += used;
            cch -= take;
            text.push_str(&piece)?;
        }
        Ok(())
    }
}

/// Reads the shared string table whose SST record is current, one line a string.
fn sst<R: Read>(records: &mut Records<R>, text: &mut TextOut<'_, '_>) -> Result<(), SstStop> {
    let unique = le32(&records.body, 4).unwrap_or(0);
    let mut cursor = Cursor { records, at: 8 };
    for _ in 0..unique {
        // the table may end early: Excel's own count is not always exact
        if cursor.at >= cursor.records.body.len() && !cursor.advance()? {
            break;
        }
        let cch = usize::from(cursor.u16()?);
        let flags = cursor.byte()?;
        let runs = if flags & 0x08 != 0 { cursor.u16()? } else { 0 };
        let ext = if flags & 0x04 != 0 { cursor.u32()? } else { 0 };
        cursor.chars(cch, flags & 1 != 0, text)?;
        text.end()?;
        cursor.skip(4 * u64::from(runs) + u64::from(ext))?;
    }
    // what is left of the table (CONTINUE records) is skipped
    while cursor.advance()? {}
    Ok(())
}
