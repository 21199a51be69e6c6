//! PNG (ISO/IEC 15948, W3C PNG 3rd ed.): the signature, then chunks (length, type, data,
//! CRC) from IHDR to IEND; nothing after IEND. Chunk data is skipped, never buffered; the
//! CRCs are not recomputed (the structure, not the pixels, is what this check answers for).
//!
//! ```text
//!  \x89PNG\r\n\x1a\n │ len type data crc │ IHDR … IDAT … │ 0 IEND crc │ (end)
//! ```

use super::source::Source;
use super::{Flaw, broken, end};

const SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// Largest chunk length PNG allows (2^31 − 1 bytes).
const MAX_CHUNK: u32 = 0x7fff_ffff;

/// Walks a PNG from its signature to IEND and checks that nothing follows.
pub(super) fn check(src: &mut Source<'_>) -> Result<(), Flaw> {
    if &src.need::<8>("png: signature")? != SIGNATURE {
        return Err(broken("png: no PNG signature"));
    }
    let mut first = true;
    loop {
        let at = src.pos();
        let h = src.need::<8>("png: chunk header")?;
        let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let ty = [h[4], h[5], h[6], h[7]];
        let name = String::from_utf8_lossy(&ty).into_owned();
        if len > MAX_CHUNK || !ty.iter().all(u8::is_ascii_alphabetic) {
            return Err(broken(format!(
                "png: chunk {name:?} at offset {at}: invalid type or length {len}"
            )));
        }
        if first && &ty != b"IHDR" {
            return Err(broken(format!("png: first chunk is {name:?}, not IHDR")));
        }
        first = false;
        src.skip_all(u64::from(len) + 4, &format!("png: chunk {name}"))?;
        if &ty == b"IEND" {
            if len != 0 {
                return Err(broken("png: IEND chunk with data"));
            }
            return end(src, "png", "the IEND chunk");
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::testing::{refused, three_cases};
    use crate::core::reason::Reason;

    pub(crate) fn chunk(ty: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(ty);
        c.extend_from_slice(data);
        c.extend_from_slice(&[0; 4]);
        c
    }

    pub(crate) fn png() -> Vec<u8> {
        let mut f = super::SIGNATURE.to_vec();
        f.extend(chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]));
        f.extend(chunk(b"IDAT", b"\x78\x9c\x63\x00\x00\x00\x01\x00\x01"));
        f.extend(chunk(b"IEND", b""));
        f
    }

    #[test]
    fn png_ends_at_iend() {
        three_cases("png", &png(), &[1, 12, 20]);
        let mut extra = png();
        extra.extend_from_slice(b"hello after IEND");
        let d = refused("png", &extra, Reason::Polyglot);
        assert!(d.contains("IEND"), "{d}");
        let mut no_ihdr = super::SIGNATURE.to_vec();
        no_ihdr.extend(chunk(b"IEND", b""));
        refused("png", &no_ihdr, Reason::ContentUnreadable);
    }
}
