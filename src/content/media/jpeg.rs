//! JPEG (ITU-T T.81 / ISO/IEC 10918-1, JFIF, Exif): SOI, marker segments and entropy-coded
//! scans up to EOI; nothing after EOI but the further images an MPF index (CIPA DC-007,
//! APP2 `MPF\0`) announces, each itself a whole JPEG at the offset and of the size the index
//! gives.
//!
//! ```text
//!  FFD8 │ FFEn len payload │ … │ FFDA len hdr  scan (FF00, FFD0-7 inside) │ … │ FFD9 │ MPF image 2 │ … │ (end)
//! ```
//!
//! Segment payloads are skipped, so a thumbnail JPEG inside APP1 (Exif) is never mistaken for
//! the end of the file: only the EOI of the outer structure ends it. Data after EOI that no
//! MPF entry covers (a zip, a second image, a motion-photo video appended by a phone without
//! an MPF entry) is refused as a polyglot.

use super::source::Source;
use super::{CHUNK, Flaw, broken, end};

/// Most images an MPF index may list (primary image included).
const MAX_MPF_IMAGES: usize = 32;

/// Walks a JPEG from SOI to EOI, then the images its MPF index lists, and checks that
/// nothing else follows.
pub(super) fn check(src: &mut Source<'_>) -> Result<(), Flaw> {
    let mut more = walk(src, true)?;
    more.sort_unstable();
    for (n, (start, size)) in more.into_iter().enumerate() {
        let at = src.pos();
        if start != at {
            return Err(broken(format!(
                "jpeg: MPF image {} announced at offset {start}, the previous one ends at {at}",
                n + 2
            )));
        }
        walk(src, false)?;
        let used = src.pos() - start;
        if used > size {
            return Err(broken(format!(
                "jpeg: MPF image {} runs past its announced size {size}",
                n + 2
            )));
        }
        // an MPF image may be padded up to its announced size
        let (_, zeros) = src.each(size - used, |b| b.iter().all(|x| *x == 0))?;
        if !zeros {
            return Err(Flaw::Polyglot(format!(
                "jpeg: data after the end of MPF image {}",
                n + 2
            )));
        }
    }
    end(src, "jpeg", "the end of image (EOI)")
}

/// Walks one JPEG from SOI to EOI; returns the further images (absolute offset, size) its MPF
/// index lists when `mpf` is set.
fn walk(src: &mut Source<'_>, mpf: bool) -> Result<Vec<(u64, u64)>, Flaw> {
    if src.need::<2>("jpeg: start of image")? != [0xFF, 0xD8] {
        return Err(broken("jpeg: no start of image (SOI)"));
    }
    let mut images: Option<Vec<(u64, u64)>> = None;
    loop {
        let at = src.pos();
        let [ff] = src.need::<1>("jpeg: marker")?;
        if ff != 0xFF {
            return Err(broken(format!("jpeg: expected a marker at offset {at}")));
        }
        let marker = loop {
            let [m] = src.need::<1>("jpeg: marker")?;
            if m != 0xFF {
                break m;
            }
        };
        match marker {
            0xD9 => return Ok(images.unwrap_or_default()),
            0xD8 | 0x00 => {
                return Err(broken(format!(
                    "jpeg: marker FF{marker:02X} out of place at offset {at}"
                )));
            }
            0x01 | 0xD0..=0xD7 => {}
            _ => {
                let len = u16::from_be_bytes(src.need::<2>("jpeg: segment length")?);
                if len < 2 {
                    return Err(broken(format!(
                        "jpeg: segment FF{marker:02X} at offset {at} has length {len}"
                    )));
                }
                let body = u64::from(len - 2);
                if marker == 0xE2 && mpf && src.peek(4)?.starts_with(b"MPF\0") {
                    if images.is_some() {
                        return Err(broken("jpeg: two MPF indexes"));
                    }
                    let base = src.pos() + 4;
                    let payload = src
                        .bytes(usize::from(len - 2))?
                        .ok_or_else(|| broken("jpeg: MPF segment cut short"))?;
                    images = Some(mpf_images(payload.get(4..).unwrap_or_default(), base)?);
                } else {
                    src.skip_all(body, &format!("jpeg: segment FF{marker:02X}"))?;
                }
                if marker == 0xDA {
                    scan(src)?;
                }
            }
        }
    }
}

/// Skips entropy-coded data up to the next marker that is not a stuffed byte (FF00), a
/// restart marker (FFD0–FFD7) or fill (FFFF); the marker itself is left unread.
fn scan(src: &mut Source<'_>) -> Result<(), Flaw> {
    loop {
        let buf = src.peek(CHUNK)?;
        if buf.is_empty() {
            return Err(broken("jpeg: file ends inside a scan"));
        }
        match buf.iter().position(|b| *b == 0xFF) {
            None => {
                let n = buf.len();
                src.consume(n);
            }
            Some(i) => {
                src.consume(i);
                let two = src.peek(2)?;
                match two.get(1) {
                    None => return Err(broken("jpeg: file ends inside a scan")),
                    Some(0x00 | 0xD0..=0xD7) => src.consume(2),
                    Some(0xFF) => src.consume(1),
                    Some(_) => return Ok(()),
                }
            }
        }
    }
}

/// Reads an MPF index (a TIFF-structured block: byte order, 42, IFD offset; tag 0xB002
/// MPEntry: 16 bytes per image — attributes, size, offset from `base`). Returns the images
/// other than the primary one as (absolute offset, size).
fn mpf_images(b: &[u8], base: u64) -> Result<Vec<(u64, u64)>, Flaw> {
    let bad = || broken("jpeg: MPF index is inconsistent");
    let le = match b.get(..4) {
        Some(b"II\x2a\x00") => true,
        Some(b"MM\x00\x2a") => false,
        _ => return Err(bad()),
    };
    let u16_at = |i: usize| -> Option<u16> {
        let s: [u8; 2] = b.get(i..i.checked_add(2)?)?.try_into().ok()?;
        Some(if le {
            u16::from_le_bytes(s)
        } else {
            u16::from_be_bytes(s)
        })
    };
    let u32_at = |i: usize| -> Option<u32> {
        let s: [u8; 4] = b.get(i..i.checked_add(4)?)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        })
    };
    let ifd = u32_at(4).ok_or_else(bad)? as usize;
    let count = usize::from(u16_at(ifd).ok_or_else(bad)?);
    let mut entries = None;
    for i in 0..count {
        let e = ifd.saturating_add(2 + 12 * i);
        if u16_at(e).ok_or_else(bad)? == 0xB002 {
            let n = u32_at(e.saturating_add(4)).ok_or_else(bad)? as usize / 16;
            let at = u32_at(e.saturating_add(8)).ok_or_else(bad)? as usize;
            entries = Some((n, at));
        }
    }
    let Some((n, at)) = entries else {
        return Ok(Vec::new());
    };
    if n > MAX_MPF_IMAGES {
        return Err(broken(format!("jpeg: MPF index lists {n} images")));
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let e = at.saturating_add(16 * i);
        let size = u32_at(e.saturating_add(4)).ok_or_else(bad)?;
        let offset = u32_at(e.saturating_add(8)).ok_or_else(bad)?;
        if offset != 0 {
            out.push((base + u64::from(offset), u64::from(size)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{accepted, refused, three_cases};
    use crate::core::reason::Reason;

    fn seg(marker: u8, payload: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFF, marker];
        s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        s.extend_from_slice(payload);
        s
    }

    /// A JPEG with the given extra segments after SOI: a frame header, a scan with a stuffed
    /// FF00 and a restart marker, EOI.
    fn jpeg(extra: &[Vec<u8>]) -> Vec<u8> {
        let mut f = vec![0xFF, 0xD8];
        f.extend(seg(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
        for e in extra {
            f.extend_from_slice(e);
        }
        f.extend(seg(0xDB, &[0; 65]));
        f.extend(seg(0xC0, b"\x08\x00\x01\x00\x01\x01\x01\x11\x00"));
        f.extend(seg(0xDA, b"\x01\x01\x00\x00\x3f\x00"));
        f.extend_from_slice(b"\x12\xFF\x00\x34\xFF\xD0\x56");
        f.extend_from_slice(&[0xFF, 0xD9]);
        f
    }

    #[test]
    fn jpeg_ends_at_eoi() {
        three_cases("jpeg", &jpeg(&[]), &[1, 4, 20]);
        let mut poly = jpeg(&[]);
        poly.extend(super::super::testing::zip());
        let d = refused("jpeg", &poly, Reason::Polyglot);
        assert!(d.contains("EOI") && d.contains("zip"), "{d}");
    }

    #[test]
    fn a_thumbnail_inside_app1_is_not_the_end() {
        let mut exif = b"Exif\0\0".to_vec();
        exif.extend(jpeg(&[])); // a whole thumbnail, its own EOI inside the segment
        accepted("jpeg", &jpeg(&[seg(0xE1, &exif)]));
    }

    /// A primary image whose MPF index lists a second image of `second.len()` bytes.
    fn with_mpf(second: &[u8], announced: u32) -> Vec<u8> {
        // the MPF block: II*\0, IFD at 8, one entry B002 → two MP entries at 26
        let mut mpf = b"MPF\0II\x2a\x00\x08\x00\x00\x00\x01\x00".to_vec();
        mpf.extend_from_slice(&0xB002u16.to_le_bytes());
        mpf.extend_from_slice(&7u16.to_le_bytes());
        mpf.extend_from_slice(&32u32.to_le_bytes());
        mpf.extend_from_slice(&26u32.to_le_bytes());
        mpf.extend_from_slice(&0u32.to_le_bytes()); // next IFD
        let mut entries = vec![0u8; 32];
        entries[20..24].copy_from_slice(&(second.len() as u32).to_le_bytes());
        mpf.extend(entries);
        let primary_len = jpeg(&[seg(0xE2, &mpf)]).len();
        // MPF offsets count from the byte after "MPF\0": SOI (2) + APP0 (18) + FFE2 len (4) + 4
        let base = 2 + 18 + 4 + 4;
        let offset = (primary_len - base) as u32 + announced;
        let n = mpf.len();
        mpf[n - 16 + 8..n - 16 + 12].copy_from_slice(&offset.to_le_bytes());
        let mut f = jpeg(&[seg(0xE2, &mpf)]);
        assert_eq!(f.len(), primary_len);
        f.extend_from_slice(second);
        f
    }

    #[test]
    fn mpf_images_are_followed_by_their_offsets() {
        let second = jpeg(&[]);
        accepted("jpeg", &with_mpf(&second, 0));
        refused("jpeg", &with_mpf(&second, 4), Reason::ContentUnreadable);
        let mut poly = with_mpf(&second, 0);
        poly.extend(super::super::testing::zip());
        refused("jpeg", &poly, Reason::Polyglot);
        // a second image with no MPF entry is a polyglot
        let mut two = jpeg(&[]);
        two.extend(jpeg(&[]));
        refused("jpeg", &two, Reason::Polyglot);
    }
}
