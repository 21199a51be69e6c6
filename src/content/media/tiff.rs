//! TIFF (TIFF 6.0; BigTIFF): the header names the first IFD; each IFD (a count, 12-byte —
//! BigTIFF 20-byte — entries, the offset of the next IFD) names out-of-line values, strips
//! or tiles, sub-IFDs (SubIFDs, Exif, GPS, Interoperability) and the next IFD. The file is
//! read once, forward: every IFD and every offset array must lie ahead of what was already
//! read (a loop, or an IFD behind the reading position, is refused).
//!
//! ```text
//!  II*\0 ifd0 │ … strips … │ IFD0: n entries (tag type count value|offset) next │ values │ IFD1 … │ (end)
//!                                     └──── strips, tiles, values: extents ────┘
//! ```
//!
//! TIFF has no end marker. The rule here: the file ends at the furthest byte that the IFDs,
//! their out-of-line values and their strips or tiles reach; a structure that reaches beyond
//! the file is unreadable, and more than [`TAIL_ALLOWANCE`] bytes after that end (beyond the
//! zero padding every format is allowed) are a polyglot. Bytes between referenced regions
//! are not examined.

use super::source::Source;
use super::{Flaw, broken, end};
use std::collections::BTreeMap;

/// Bytes of any kind tolerated after the furthest extent (word alignment, a writer's pad).
pub(super) const TAIL_ALLOWANCE: u64 = 16;

/// Most entries one IFD may have.
const MAX_ENTRIES: u64 = 4096;

/// Most IFDs (the chain and every sub-IFD together).
const MAX_IFDS: usize = 256;

/// Most values read from one offset array (strip or tile offsets or counts, sub-IFDs).
const MAX_ARRAY: u64 = 1 << 16;

/// Most places waiting to be read ahead.
const MAX_PENDING: usize = 1024;

const STRIP_OFFSETS: u16 = 273;
const STRIP_COUNTS: u16 = 279;
const TILE_OFFSETS: u16 = 324;
const TILE_COUNTS: u16 = 325;
/// Tags whose values are offsets of further IFDs: SubIFDs, Exif, GPS, Interoperability.
const IFD_TAGS: [u16; 4] = [330, 34665, 34853, 40965];

/// Whether `head` starts with a TIFF or BigTIFF header.
pub(super) fn sniff(head: &[u8]) -> bool {
    matches!(
        head.get(..4),
        Some(b"II\x2a\x00" | b"MM\x00\x2a" | b"II\x2b\x00" | b"MM\x00\x2b")
    )
}

/// Byte order and offset size.
#[derive(Clone, Copy)]
struct Form {
    le: bool,
    big: bool,
}

impl Form {
    fn uint(self, b: &[u8]) -> u64 {
        let mut v = 0u64;
        if self.le {
            for x in b.iter().rev() {
                v = v << 8 | u64::from(*x);
            }
        } else {
            for x in b {
                v = v << 8 | u64::from(*x);
            }
        }
        v
    }

    /// Size of an offset or count field.
    fn word(self) -> usize {
        if self.big { 8 } else { 4 }
    }
}

/// Size in bytes of one value of a TIFF field type; `None` for unknown types.
fn type_size(ty: u16) -> Option<u64> {
    match ty {
        1 | 2 | 6 | 7 => Some(1),
        3 | 8 => Some(2),
        4 | 9 | 11 | 13 => Some(4),
        5 | 10 | 12 | 16 | 17 | 18 => Some(8),
        _ => None,
    }
}

/// A place ahead to read.
enum Need {
    /// An IFD.
    Ifd,
    /// An array of `count` values of `ty` for `tag` of IFD number `ifd`.
    Array {
        ifd: usize,
        tag: u16,
        ty: u16,
        count: u64,
    },
}

/// Strip or tile offsets and byte counts of one IFD, until both are known.
#[derive(Default)]
struct Data {
    offsets: Option<Vec<u64>>,
    counts: Option<Vec<u64>>,
}

struct Walk {
    form: Form,
    pending: BTreeMap<(u64, usize), Need>,
    seq: usize,
    ifds: Vec<Data>,
    extent: u64,
}

impl Walk {
    fn push(&mut self, at: u64, need: Need) -> Result<(), Flaw> {
        if self.pending.len() >= MAX_PENDING {
            return Err(broken("tiff: too many places to read"));
        }
        self.seq += 1;
        self.pending.insert((at, self.seq), need);
        Ok(())
    }

    fn reach(&mut self, at: u64, len: u64) -> Result<(), Flaw> {
        let end = at
            .checked_add(len)
            .ok_or_else(|| broken("tiff: an extent beyond 2^64"))?;
        self.extent = self.extent.max(end);
        Ok(())
    }

    /// Takes the values of `tag` in IFD `ifd`.
    fn values(&mut self, ifd: usize, tag: u16, values: Vec<u64>) -> Result<(), Flaw> {
        if IFD_TAGS.contains(&tag) {
            for v in values.into_iter().filter(|v| *v != 0) {
                self.push(v, Need::Ifd)?;
            }
            return Ok(());
        }
        let Some(data) = self.ifds.get_mut(ifd) else {
            return Ok(());
        };
        match tag {
            STRIP_OFFSETS | TILE_OFFSETS => data.offsets = Some(values),
            _ => data.counts = Some(values),
        }
        if let (Some(o), Some(c)) = (&data.offsets, &data.counts) {
            if o.len() != c.len() {
                return Err(broken(format!(
                    "tiff: IFD {ifd} has {} strip or tile offsets but {} byte counts",
                    o.len(),
                    c.len()
                )));
            }
            let pairs: Vec<(u64, u64)> = o.iter().copied().zip(c.iter().copied()).collect();
            data.offsets = Some(Vec::new());
            data.counts = Some(Vec::new());
            for (at, len) in pairs {
                self.reach(at, len)?;
            }
        }
        Ok(())
    }
}

/// Walks a TIFF's IFDs forward and checks the file ends where its structure does.
pub(super) fn check(src: &mut Source<'_>) -> Result<(), Flaw> {
    let h = src.need::<4>("tiff: header")?;
    let form = match &h {
        b"II\x2a\x00" => Form {
            le: true,
            big: false,
        },
        b"MM\x00\x2a" => Form {
            le: false,
            big: false,
        },
        b"II\x2b\x00" => Form {
            le: true,
            big: true,
        },
        b"MM\x00\x2b" => Form {
            le: false,
            big: true,
        },
        _ => return Err(broken("tiff: no TIFF header")),
    };
    let first = if form.big {
        let b = src.need::<12>("tiff: BigTIFF header")?;
        if form.uint(&b[..2]) != 8 || form.uint(&b[2..4]) != 0 {
            return Err(broken("tiff: BigTIFF header with another offset size"));
        }
        form.uint(&b[4..])
    } else {
        form.uint(&src.need::<4>("tiff: header")?)
    };
    let mut w = Walk {
        form,
        pending: BTreeMap::new(),
        seq: 0,
        ifds: Vec::new(),
        extent: src.pos(),
    };
    if first == 0 {
        return Err(broken("tiff: no IFD"));
    }
    w.push(first, Need::Ifd)?;
    while let Some(((at, _), need)) = w.pending.pop_first() {
        if at < src.pos() {
            return Err(broken(format!(
                "tiff: offset {at} lies behind the reading position {} (a loop, an overlap or a backward layout)",
                src.pos()
            )));
        }
        src.skip_all(at - src.pos(), "tiff: the way to an IFD or value array")?;
        match need {
            Need::Ifd => ifd(src, &mut w)?,
            Need::Array {
                ifd,
                tag,
                ty,
                count,
            } => {
                let size = type_size(ty).unwrap_or(4);
                let mut values = Vec::new();
                for _ in 0..count {
                    let v = src
                        .bytes(size as usize)?
                        .ok_or_else(|| broken(format!("tiff: values of tag {tag} cut short")))?;
                    values.push(form.uint(&v));
                }
                w.values(ifd, tag, values)?;
            }
        }
    }
    for (n, d) in w.ifds.iter().enumerate() {
        if d.offsets.is_some() != d.counts.is_some() {
            return Err(broken(format!(
                "tiff: IFD {n} has strip or tile offsets without byte counts, or counts without offsets"
            )));
        }
    }
    if w.extent > src.pos() {
        let at = src.pos();
        src.skip_all(w.extent - at, "tiff: strip, tile or value data")?;
    }
    src.skip(TAIL_ALLOWANCE)?;
    end(src, "tiff", "the furthest extent its IFDs reference")
}

/// Reads one IFD at the current position.
fn ifd(src: &mut Source<'_>, w: &mut Walk) -> Result<(), Flaw> {
    let form = w.form;
    let at = src.pos();
    let n = w.ifds.len();
    if n >= MAX_IFDS {
        return Err(broken(format!("tiff: more than {MAX_IFDS} IFDs")));
    }
    w.ifds.push(Data::default());
    let count_len = if form.big { 8 } else { 2 };
    let count = form.uint(
        &src.bytes(count_len)?
            .ok_or_else(|| broken(format!("tiff: IFD {n} at offset {at} cut short")))?,
    );
    if count == 0 || count > MAX_ENTRIES {
        return Err(broken(format!(
            "tiff: IFD {n} at offset {at} has {count} entries"
        )));
    }
    let entry_len = if form.big { 20 } else { 12 };
    let word = form.word();
    for _ in 0..count {
        let e = src
            .bytes(entry_len)?
            .ok_or_else(|| broken(format!("tiff: IFD {n} at offset {at} cut short")))?;
        let tag = form.uint(e.get(..2).unwrap_or_default()) as u16;
        let ty = form.uint(e.get(2..4).unwrap_or_default()) as u16;
        let count = form.uint(e.get(4..4 + word).unwrap_or_default());
        let field = e.get(4 + word..).unwrap_or_default();
        let Some(size) = type_size(ty) else {
            continue; // an unknown type: skipped, as TIFF readers do
        };
        let total = size
            .checked_mul(count)
            .ok_or_else(|| broken(format!("tiff: tag {tag} of IFD {n}: count {count}")))?;
        let inline = total <= word as u64;
        let wanted = matches!(
            tag,
            STRIP_OFFSETS | STRIP_COUNTS | TILE_OFFSETS | TILE_COUNTS
        ) || IFD_TAGS.contains(&tag);
        if wanted && count > MAX_ARRAY {
            return Err(broken(format!(
                "tiff: tag {tag} of IFD {n} has {count} values (at most {MAX_ARRAY})"
            )));
        }
        if inline {
            if wanted {
                let values = field
                    .chunks_exact(size as usize)
                    .take(count as usize)
                    .map(|c| form.uint(c))
                    .collect();
                w.values(n, tag, values)?;
            }
        } else {
            let offset = form.uint(field);
            w.reach(offset, total)?;
            if wanted {
                w.push(
                    offset,
                    Need::Array {
                        ifd: n,
                        tag,
                        ty,
                        count,
                    },
                )?;
            }
        }
    }
    let next = form.uint(
        &src.bytes(word)?
            .ok_or_else(|| broken(format!("tiff: IFD {n} at offset {at} cut short")))?,
    );
    w.reach(at, src.pos() - at)?;
    if next != 0 {
        w.push(next, Need::Ifd)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{accepted, refused, three_cases};
    use crate::core::reason::Reason;

    fn entry(tag: u16, ty: u16, count: u32, value: u32) -> Vec<u8> {
        let mut e = tag.to_le_bytes().to_vec();
        e.extend_from_slice(&ty.to_le_bytes());
        e.extend_from_slice(&count.to_le_bytes());
        e.extend_from_slice(&value.to_le_bytes());
        e
    }

    /// A 2×2 grey TIFF: header, one 4-byte strip, IFD0 with an out-of-line resolution.
    fn tiff(next: u32) -> Vec<u8> {
        let mut f = b"II\x2a\x00".to_vec();
        f.extend_from_slice(&12u32.to_le_bytes()); // IFD0 at 12
        f.extend_from_slice(&[10, 20, 30, 40]); // the strip at 8
        let entries = [
            entry(256, 3, 1, 2),
            entry(257, 3, 1, 2),
            entry(258, 3, 1, 8),
            entry(262, 3, 1, 1),
            entry(273, 4, 1, 8),
            entry(279, 4, 1, 4),
            entry(282, 5, 1, 12 + 2 + 7 * 12 + 4), // XResolution after the IFD
        ];
        f.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for e in entries {
            f.extend(e);
        }
        f.extend_from_slice(&next.to_le_bytes());
        f.extend_from_slice(&72u32.to_le_bytes());
        f.extend_from_slice(&1u32.to_le_bytes());
        f
    }

    #[test]
    fn tiff_ends_at_its_furthest_extent() {
        three_cases("tiff", &tiff(0), &[1, 9, 40]);
        // a few bytes of slack are allowed
        let mut slack = tiff(0);
        slack.extend_from_slice(b"abc");
        accepted("tiff", &slack);
        // an IFD chain that loops back to IFD0
        refused("tiff", &tiff(12), Reason::ContentUnreadable);
        // an IFD past the end
        refused("tiff", &tiff(5000), Reason::ContentUnreadable);
        // a strip past the end
        let mut far = tiff(0);
        let at = far.windows(2).position(|w| w == [0x11, 0x01]).unwrap(); // tag 273
        far[at + 8] = 200;
        refused("tiff", &far, Reason::ContentUnreadable);
    }

    #[test]
    fn bigtiff_is_read_too() {
        let mut f = b"II\x2b\x00\x08\x00\x00\x00".to_vec();
        f.extend_from_slice(&20u64.to_le_bytes()); // IFD0 at 20
        f.extend_from_slice(&[1, 2, 3, 4]); // strip at 16
        f.extend_from_slice(&2u64.to_le_bytes());
        for (tag, value) in [(273u16, 16u64), (279, 4)] {
            f.extend_from_slice(&tag.to_le_bytes());
            f.extend_from_slice(&16u16.to_le_bytes());
            f.extend_from_slice(&1u64.to_le_bytes());
            f.extend_from_slice(&value.to_le_bytes());
        }
        f.extend_from_slice(&0u64.to_le_bytes());
        three_cases("tiff", &f, &[1, 30]);
    }
}
