//! ISO base media files (ISO/IEC 14496-12; MP4 14496-14, HEIF 23008-12) and QuickTime
//! movies (Apple QuickTime File Format): a tree of boxes, each a 32-bit size and a type
//! (size 1: a 64-bit size follows; size 0: the box runs to the end of the file, top level
//! only). The top-level boxes must cover the file exactly; the children of the container
//! boxes must cover their parent exactly. Payloads (`mdat` above all) are skipped, never read.
//!
//! ```text
//!  │ size "ftyp" major minor compatible… │ size "moov" │ size "trak" │ … │ │ 1 "mdat" size64 ▒▒▒ │ (end)
//!                                        └─ children cover the parent ─┘
//! ```
//!
//! The brands decide the family: `qt  ` a QuickTime movie (mov); `heic`, `heix`, `heim`,
//! `heis`, `hevc`, `hevx`, `mif1`, `msf1` HEIF images (heic); the ISO, MP4, M4A/M4V, AVC,
//! DASH and 3GPP brands MP4 (mp4). `ftyp` must be the first box, except in a QuickTime movie:
//! older QuickTime files have no `ftyp` and start with `wide`, `free`, `skip`, `mdat`, `moov`
//! or `pnot`, and are read as mov. A movie (mp4, mov) must have a `moov` box, an image (heic)
//! a `meta` box. `free`, `skip` and `wide` boxes, at any depth, must hold only zero bytes:
//! anything else there (another file hidden in the padding) is a polyglot.

use super::source::Source;
use super::{Flaw, broken, magic_name};

/// The families a box tree is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    /// MP4, M4A, M4V, 3GPP.
    Mp4,
    /// QuickTime movie.
    Mov,
    /// HEIF / HEIC image.
    Heic,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::Mp4 => "mp4",
            Family::Mov => "mov",
            Family::Heic => "heic",
        }
    }
}

/// Deepest nesting of container boxes read.
const MAX_DEPTH: u32 = 16;

/// Largest `ftyp` box read, in bytes.
const MAX_FTYP: u64 = 4096;

/// Boxes whose payload is a sequence of boxes.
const CONTAINERS: &[&[u8; 4]] = &[
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"dinf", b"edts", b"udta", b"mvex", b"moof",
    b"traf", b"mfra", b"meta", b"iprp", b"ipco",
];

/// Boxes a QuickTime movie without `ftyp` may start with.
const QT_LEADING: &[&[u8; 4]] = &[b"wide", b"free", b"skip", b"mdat", b"moov", b"pnot"];

/// Padding boxes: zero bytes only.
const PADDING: &[&[u8; 4]] = &[b"free", b"skip", b"wide"];

/// The family the brands of an `ftyp` payload (major, minor version, compatible…) name.
fn brands(ftyp: &[u8]) -> Option<Family> {
    let major = ftyp.get(..4)?;
    let compatible = ftyp.get(8..).unwrap_or_default().chunks_exact(4);
    let all = || std::iter::once(major).chain(compatible.clone());
    const HEIF: &[&[u8]] = &[
        b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1",
    ];
    let mp4 = |b: &[u8]| {
        b.starts_with(b"iso")
            || b.starts_with(b"mp4")
            || b.starts_with(b"3gp")
            || b.starts_with(b"3g2")
            || matches!(
                b,
                b"mp71"
                    | b"avc1"
                    | b"M4A "
                    | b"M4V "
                    | b"M4B "
                    | b"M4P "
                    | b"dash"
                    | b"MSNV"
                    | b"f4v "
                    | b"NDAS"
            )
    };
    if major == b"qt  " {
        return Some(Family::Mov);
    }
    if HEIF.contains(&major) {
        return Some(Family::Heic);
    }
    if mp4(major) {
        return Some(Family::Mp4);
    }
    if all().any(|b| HEIF.contains(&b)) {
        return Some(Family::Heic);
    }
    if all().any(mp4) {
        return Some(Family::Mp4);
    }
    if all().any(|b| b == b"qt  ") {
        return Some(Family::Mov);
    }
    None
}

fn printable(ty: &[u8]) -> bool {
    ty.iter().all(|b| (0x20..0x7f).contains(b) || *b == 0xA9)
}

/// The family of a box tree from its first bytes: an `ftyp` with known brands, or a
/// QuickTime movie's leading box.
pub(super) fn sniff(head: &[u8]) -> Option<Family> {
    let size = u32::from_be_bytes(head.get(..4)?.try_into().ok()?);
    let ty = head.get(4..8)?;
    if ty == b"ftyp" {
        let size = usize::try_from(size).ok()?;
        if !(16..=MAX_FTYP as usize).contains(&size) || size % 4 != 0 {
            return None;
        }
        return brands(head.get(8..size.min(head.len()))?);
    }
    // a QuickTime atom: its size must be a size, not four letters of a text
    let size_bytes = head.get(..4)?;
    let text = size_bytes
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    if QT_LEADING.iter().any(|t| &t[..] == ty) && !text && (size == 1 || size >= 8) {
        return Some(Family::Mov);
    }
    None
}

/// A box header: its type, where it started and how many payload bytes follow (`None`: to
/// the end of the file).
struct Header {
    ty: [u8; 4],
    at: u64,
    payload: Option<u64>,
}

/// Reads a box header; `room` is what the parent has left (`None`: the rest of the file).
fn header(src: &mut Source<'_>, what: &str, room: Option<u64>) -> Result<Header, Flaw> {
    let at = src.pos();
    let h = src.need::<8>(&format!("{what}: box header"))?;
    let size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    let ty = [h[4], h[5], h[6], h[7]];
    let name = String::from_utf8_lossy(&ty).into_owned();
    if !printable(&ty) {
        return Err(broken(format!(
            "{what}: box at offset {at} has no printable type"
        )));
    }
    let (size, mut head_len) = match size {
        0 if room.is_none() => {
            return Ok(Header {
                ty,
                at,
                payload: None,
            });
        }
        0 => {
            return Err(broken(format!(
                "{what}: box {name:?} at offset {at} runs to the end inside a parent"
            )));
        }
        1 => (
            u64::from_be_bytes(src.need::<8>(&format!("{what}: box size"))?),
            16,
        ),
        n => (u64::from(n), 8),
    };
    if &ty == b"uuid" {
        src.need::<16>(&format!("{what}: uuid box"))?;
        head_len += 16;
    }
    if size < head_len || room.is_some_and(|r| size > r) {
        return Err(broken(format!(
            "{what}: box {name:?} at offset {at} has size {size}, outside its parent"
        )));
    }
    Ok(Header {
        ty,
        at,
        payload: Some(size - head_len),
    })
}

/// Walks a box tree of `family` from its first byte to its last.
pub(super) fn check(src: &mut Source<'_>, family: Family) -> Result<(), Flaw> {
    let what = family.name();
    let mut first = true;
    let mut seen_ftyp = false;
    let mut seen_main = false;
    while !src.at_end()? {
        let next = src.peek(16)?;
        if !first && next.get(4..8).is_some_and(|ty| !printable(ty)) {
            let found =
                magic_name(next).map_or_else(String::new, |m| format!(", starting with {m}"));
            return Err(Flaw::Polyglot(format!(
                "{what}: data after the last box at offset {} is not a box{found}",
                src.pos()
            )));
        }
        let b = header(src, what, None)?;
        let name = String::from_utf8_lossy(&b.ty).into_owned();
        if &b.ty == b"ftyp" {
            if seen_ftyp || !first {
                return Err(broken(format!(
                    "{what}: ftyp box at offset {} is not the first box",
                    b.at
                )));
            }
            seen_ftyp = true;
            let n = b.payload.unwrap_or(u64::MAX);
            if n > MAX_FTYP {
                return Err(broken(format!("{what}: ftyp box of {n} bytes")));
            }
            let payload = src
                .bytes(n as usize)?
                .ok_or_else(|| broken(format!("{what}: ftyp box cut short")))?;
            if brands(&payload) != Some(family) {
                return Err(broken(format!(
                    "{what}: the ftyp brands do not name {what}"
                )));
            }
        } else {
            if first && !(family == Family::Mov && QT_LEADING.contains(&&b.ty)) {
                return Err(broken(format!("{what}: first box is {name:?}, not ftyp")));
            }
            seen_main |= match family {
                Family::Heic => &b.ty == b"meta",
                _ => &b.ty == b"moov",
            };
            body(src, what, &b, 0)?;
        }
        first = false;
    }
    if !seen_main {
        return Err(broken(match family {
            Family::Heic => "heic: no meta box",
            _ => "the movie has no moov box",
        }));
    }
    Ok(())
}

/// Reads the payload of box `b` at nesting `depth`: the children of a container, the zeros
/// of a padding box, or nothing (skipped).
fn body(src: &mut Source<'_>, what: &str, b: &Header, depth: u32) -> Result<(), Flaw> {
    let name = String::from_utf8_lossy(&b.ty).into_owned();
    let len = b.payload.unwrap_or(u64::MAX);
    if PADDING.contains(&&b.ty) {
        let at = src.pos();
        let start = src.peek(16)?;
        let magic = magic_name(start);
        let (n, zeros) = src.each(len, |piece| piece.iter().all(|x| *x == 0))?;
        if !zeros {
            let found = magic.map_or_else(|| "non-zero bytes".to_string(), str::to_string);
            return Err(Flaw::Polyglot(format!(
                "{what}: {name} box at offset {} holds {found} (payload at offset {at})",
                b.at
            )));
        }
        return short(n, b, what, &name);
    }
    if CONTAINERS.contains(&&b.ty) {
        if depth >= MAX_DEPTH {
            return Err(broken(format!(
                "{what}: boxes nested deeper than {MAX_DEPTH}"
            )));
        }
        let mut left = b.payload;
        if &b.ty == b"meta" {
            // ISO meta is a full box (version, flags); QuickTime's starts with its hdlr child
            let p = src.peek(8)?;
            if p.get(4..8) != Some(b"hdlr") {
                src.need::<4>(&format!("{what}: meta box"))?;
                left = left.map(|l| l.saturating_sub(4));
            }
        }
        loop {
            match left {
                Some(0) => return Ok(()),
                // QuickTime lets a user-data list end with a 32-bit zero
                Some(l) if l < 8 => {
                    let (n, zeros) = src.each(l, |p| p.iter().all(|x| *x == 0))?;
                    if n < l || !zeros || l > 4 {
                        return Err(broken(format!(
                            "{what}: {name} box at offset {} ends inside a child box",
                            b.at
                        )));
                    }
                    return Ok(());
                }
                None if src.at_end()? => return Ok(()),
                _ => {}
            }
            let child = header(src, what, Some(left.unwrap_or(u64::MAX)))?;
            if &child.ty == b"ftyp" {
                return Err(broken(format!("{what}: ftyp box inside {name}")));
            }
            body(src, what, &child, depth + 1)?;
            let used = src.pos() - child.at;
            left = left.map(|l| l.saturating_sub(used));
        }
    }
    let n = src.skip(len)?;
    short(n, b, what, &name)
}

/// A box whose payload ended after `n` bytes: cut short unless it runs to the end.
fn short(n: u64, b: &Header, what: &str, name: &str) -> Result<(), Flaw> {
    match b.payload {
        Some(len) if n < len => Err(broken(format!(
            "{what}: {name} box at offset {} ({len} bytes) is cut short by the end of the file",
            b.at
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{accepted, refused, three_cases, zip};
    use super::Family;
    use crate::core::reason::Reason;

    pub(crate) fn bx(ty: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(ty);
        b.extend_from_slice(payload);
        b
    }

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let mut p = major.to_vec();
        p.extend_from_slice(&[0, 0, 2, 0]);
        for c in compatible {
            p.extend_from_slice(*c);
        }
        bx(b"ftyp", &p)
    }

    fn moov() -> Vec<u8> {
        let mvhd = bx(b"mvhd", &[0; 100]);
        let tkhd = bx(b"tkhd", &[0; 84]);
        let trak = bx(b"trak", &tkhd);
        bx(b"moov", &[mvhd, trak].concat())
    }

    pub(crate) fn mp4(free: &[u8]) -> Vec<u8> {
        let mut f = ftyp(b"isom", &[b"isom", b"iso2", b"mp41"]);
        f.extend(bx(b"free", free));
        f.extend(moov());
        f.extend(bx(b"mdat", &[7; 64]));
        f
    }

    #[test]
    fn brands_decide_the_family() {
        assert_eq!(super::sniff(&mp4(&[])), Some(Family::Mp4));
        assert_eq!(super::sniff(&ftyp(b"M4A ", &[b"isom"])), Some(Family::Mp4));
        assert_eq!(super::sniff(&ftyp(b"qt  ", &[b"qt  "])), Some(Family::Mov));
        assert_eq!(super::sniff(&ftyp(b"mif1", &[b"heic"])), Some(Family::Heic));
        assert_eq!(super::sniff(&ftyp(b"heic", &[b"mif1"])), Some(Family::Heic));
        assert_eq!(super::sniff(&ftyp(b"avif", &[b"avif"])), None);
        assert_eq!(super::sniff(&bx(b"wide", b"")), Some(Family::Mov));
        assert_eq!(super::sniff(b"Get free stuff now"), None);
    }

    #[test]
    fn mp4_boxes_cover_the_file() {
        three_cases("mp4", &mp4(&[]), &[1, 64, 80]);
        // a 64-bit size, and a last box running to the end
        let mut large = mp4(&[]);
        let n = large.len();
        large.truncate(n - 72);
        large.extend_from_slice(&1u32.to_be_bytes());
        large.extend_from_slice(b"mdat");
        large.extend_from_slice(&(16u64 + 64).to_be_bytes());
        large.extend_from_slice(&[7; 64]);
        accepted("mp4", &large);
        let mut to_end = mp4(&[]);
        to_end.truncate(n - 72);
        to_end.extend_from_slice(&0u32.to_be_bytes());
        to_end.extend_from_slice(b"mdat");
        to_end.extend_from_slice(&[7; 1000]);
        accepted("mp4", &to_end);
        // a child running past its parent
        let mut bad = mp4(&[]);
        let at = bad.windows(4).position(|w| w == b"mvhd").unwrap() - 4;
        bad[at + 3] = 200;
        refused("mp4", &bad, Reason::ContentUnreadable);
        // ftyp second
        let mut late = moov();
        late.extend(ftyp(b"isom", &[]));
        refused("mp4", &late, Reason::ContentUnreadable);
    }

    #[test]
    fn a_free_box_holds_only_zeros() {
        accepted("mp4", &mp4(&[0; 500]));
        let d = refused("mp4", &mp4(&zip()), Reason::Polyglot);
        assert!(d.contains("free") && d.contains("zip"), "{d}");
        refused("mp4", &mp4(b"hidden text"), Reason::Polyglot);
        let nested = bx(b"moov", &[moov(), bx(b"skip", b"PK\x03\x04")].concat());
        let mut f = ftyp(b"isom", &[]);
        f.extend(nested);
        refused("mp4", &f, Reason::Polyglot);
    }

    /// A reader of `prefix`, then `zeros` zero bytes made on the fly, then `suffix`.
    struct Synth {
        prefix: Vec<u8>,
        zeros: u64,
        suffix: Vec<u8>,
    }

    impl std::io::Read for Synth {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if !self.prefix.is_empty() {
                let n = buf.len().min(self.prefix.len());
                buf[..n].copy_from_slice(&self.prefix[..n]);
                self.prefix.drain(..n);
                return Ok(n);
            }
            if self.zeros > 0 {
                let n = buf.len().min(self.zeros as usize);
                buf[..n].fill(0);
                self.zeros -= n as u64;
                return Ok(n);
            }
            let n = buf.len().min(self.suffix.len());
            buf[..n].copy_from_slice(&self.suffix[..n]);
            self.suffix.drain(..n);
            Ok(n)
        }
    }

    #[test]
    fn a_4_gib_mdat_is_skipped_not_held() {
        let payload = (4u64 << 30) + 123;
        let mut prefix = ftyp(b"isom", &[b"isom"]);
        prefix.extend(moov());
        prefix.extend_from_slice(&1u32.to_be_bytes());
        prefix.extend_from_slice(b"mdat");
        prefix.extend_from_slice(&(payload + 16).to_be_bytes());
        let mut whole = Synth {
            prefix: prefix.clone(),
            zeros: payload,
            suffix: Vec::new(),
        };
        assert_eq!(super::super::check("mp4", &mut whole).unwrap(), Ok(()));
        let mut poly = Synth {
            prefix,
            zeros: payload,
            suffix: zip(),
        };
        let r = super::super::check("mp4", &mut poly).unwrap().unwrap_err();
        assert_eq!(r.reason, Reason::Polyglot, "{r}");
    }

    #[test]
    fn quicktime_and_heic() {
        let mut mov = ftyp(b"qt  ", &[b"qt  "]);
        mov.extend(bx(b"wide", b""));
        mov.extend(bx(b"mdat", &[1; 32]));
        mov.extend(bx(
            b"moov",
            &bx(
                b"udta",
                &[bx(b"\xa9nam", b"x").as_slice(), &[0; 4]].concat(),
            ),
        ));
        three_cases("mov", &mov, &[1, 5]);
        // an old QuickTime file without ftyp
        let mut old = bx(b"wide", b"");
        old.extend(bx(b"mdat", &[1; 32]));
        old.extend(moov());
        accepted("mov", &old);
        refused("mp4", &old, Reason::ContentUnreadable);
        let mut heic = ftyp(b"heic", &[b"mif1", b"heic"]);
        let hdlr = bx(b"hdlr", &[0; 25]);
        let mut meta = vec![0, 0, 0, 0];
        meta.extend(hdlr);
        meta.extend(bx(b"iprp", &bx(b"ipco", &bx(b"ispe", &[0; 12]))));
        heic.extend(bx(b"meta", &meta));
        heic.extend(bx(b"mdat", &[3; 40]));
        three_cases("heic", &heic, &[1, 41]);
    }
}
