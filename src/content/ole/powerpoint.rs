//! The PowerPoint binary format ([MS-PPT]), as PowerPoint 97-2003 and WPS Presentation write
//! it: the `PowerPoint Document` stream is a tree of records, walked in order.
//!
//! ```text
//!  Current User: CurrentUserAtom headerToken 0xF3D1C4DF ─► encrypted: refused
//!  PowerPoint Document: record header (recVer/recInstance u16, recType u16, recLen u32)
//!    recVer 0xF: a container ─► its children follow at once
//!    CryptSession10Container 0x2F14 ─► encrypted: refused
//!    VBAInfoContainer 0x03FF, VBAInfoAtom 0x0400 ─► macros: refused
//!    ExOleObjStg 0x1011 ─► an embedded object: where its storage lies is returned, and the
//!                          storage (zlib-compressed when recInstance is 1) read like one
//!    TextCharsAtom 0x0FA0 (UTF-16LE), TextBytesAtom 0x0FA8 (8-bit), CString 0x0FBA
//!      ─► lines at 0x0D and 0x0B
//!    any other atom ─► skipped
//! ```
//!
//! Every record of the stream is visited, those of earlier saves too; atoms are read through
//! one buffer of `IO_BUF` bytes.

use super::{IO_BUF, Stop, TextOut, encrypted, join, le32, refuse, shown, unreadable};
use crate::core::reason::Reason;
use std::io::{Read, Seek};

const CRYPT_SESSION: u16 = 0x2F14;
const VBA_INFO: u16 = 0x03FF;
const VBA_INFO_ATOM: u16 = 0x0400;
const EX_OLE_OBJ_STG: u16 = 0x1011;
const TEXT_CHARS: u16 = 0x0FA0;
const TEXT_BYTES: u16 = 0x0FA8;
const CSTRING: u16 = 0x0FBA;

/// The headerToken of the CurrentUserAtom of an encrypted document ([MS-PPT] 2.3.2).
const ENCRYPTED_TOKEN: u32 = 0xF3D1_C4DF;

/// Most embedded objects one presentation may hold.
pub const MAX_OBJECTS: usize = 1024;

/// Where an embedded object's storage lies in the `PowerPoint Document` stream: the body of
/// an ExOleObjStg record ([MS-PPT] 2.10.34, 2.10.35).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Object {
    /// Offset of the record's body in the stream, in bytes.
    pub offset: u64,
    /// Length of the body, in bytes.
    pub len: u64,
    /// Whether the body is a u32 decompressed size and a zlib stream (recInstance 1), or
    /// the storage's bytes as they are.
    pub compressed: bool,
}

/// Reads the presentation in `storage`: refuses encryption and macros; with `text`, hands
/// over its text line by line. Returns where its embedded objects are.
pub(super) fn scan<F: Read + Seek>(
    cf: &mut cfb::CompoundFile<F>,
    storage: &str,
    mut text: Option<&mut TextOut<'_, '_>>,
) -> Result<Vec<Object>, Stop> {
    let user = join(storage, "Current User");
    if cf.is_stream(&user) {
        let mut head = Vec::with_capacity(16);
        cf.open_stream(&user)?.take(16).read_to_end(&mut head)?;
        if le32(&head, 12) == Some(ENCRYPTED_TOKEN) {
            return Err(encrypted(&shown(&user), "CurrentUserAtom headerToken"));
        }
    }
    let path = join(storage, "PowerPoint Document");
    let part = shown(&path);
    let mut stream = cf.open_stream(&path)?;
    let len = stream.len();
    if let Some(text) = text.as_deref_mut() {
        text.part(&path)?;
    }
    let mut reader = std::io::BufReader::with_capacity(IO_BUF, &mut stream);
    let mut buf = vec![0u8; IO_BUF];
    let mut text_piece = String::with_capacity(IO_BUF);
    let mut at = 0u64;
    let mut objects = Vec::new();
    while at < len {
        let mut head = [0u8; 8];
        if at + 8 > len {
            return Err(unreadable(format!("{part}: record header truncated")));
        }
        reader.read_exact(&mut head)?;
        at += 8;
        let ver_instance = u16::from_le_bytes([head[0], head[1]]);
        let (ver, instance) = (ver_instance & 0xF, ver_instance >> 4);
        let kind = u16::from_le_bytes([head[2], head[3]]);
        let size = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
        match kind {
            CRYPT_SESSION => return Err(encrypted(&part, "CryptSession10Container")),
            VBA_INFO | VBA_INFO_ATOM => {
                return Err(refuse(
                    Reason::ActiveContent,
                    format!("{part}: macros (VBAInfo record)"),
                ));
            }
            EX_OLE_OBJ_STG if ver != 0xF => {
                if objects.len() >= MAX_OBJECTS {
                    return Err(refuse(
                        Reason::ArchiveLimit,
                        format!("{part}: more than {MAX_OBJECTS} embedded objects"),
                    ));
                }
                objects.push(Object {
                    offset: at,
                    len: size,
                    compressed: instance == 1,
                });
            }
            _ => {}
        }
        if ver == 0xF {
            // a container: its children are the next records
            continue;
        }
        if at + size > len {
            return Err(unreadable(format!(
                "{part}: record 0x{kind:04X} longer than the stream"
            )));
        }
        let wide = match kind {
            TEXT_CHARS | CSTRING => Some(true),
            TEXT_BYTES => Some(false),
            _ => None,
        };
        match (wide, text.as_deref_mut()) {
            (Some(wide), Some(text)) => {
                let mut left = size;
                let mut utf16 = encoding_rs::UTF_16LE.new_decoder_without_bom_handling();
                while left > 0 {
                    let n = left.min(IO_BUF as u64) as usize;
                    let chunk = buf.get_mut(..n).unwrap_or_default();
                    reader.read_exact(chunk)?;
                    left -= n as u64;
                    text_piece.clear();
                    if wide {
                        let _ = utf16.decode_to_string(chunk, &mut text_piece, left == 0);
                    } else {
                        text_piece.extend(chunk.iter().map(|&b| char::from(b)));
                    }
                    for c in text_piece.chars() {
                        match c {
                            '\r' | '\u{b}' | '\n' => text.end()?,
                            '\t' => text.push('\t')?,
                            c if (c as u32) < 0x20 => {}
                            c => text.push(c)?,
                        }
                    }
                }
                text.end()?;
            }
            _ => {
                reader.seek_relative(size as i64)?;
            }
        }
        at += size;
    }
    Ok(objects)
}
