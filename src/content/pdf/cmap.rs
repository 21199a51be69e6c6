//! CMaps: the code space of a composite font's strings and the map from codes to Unicode
//! (ISO 32000-1 §9.7.5, §9.10.3; Adobe Technical Note #5014 and #5411), as read from an
//! embedded CMap stream, and the predefined Adobe-GB1 CMaps whose codes are text already.
//!
//! ```text
//!  CMap stream ─► (text lexer) begincodespacerange / bfchar / bfrange / usecmap ─► CMap
//!  string bytes ─► codes (code space ranges, 1 to 4 bytes) ─► bfchar / bfrange ─► text
//!                  (one- and two-byte codes through a direct table made from them)
//!  UniGB-UCS2 / UniGB-UTF16 ─► UTF-16BE     GBK-EUC / GBpc-EUC / GBK2K / GB-EUC ─► GB18030
//! ```

use std::collections::HashMap;

/// Most mappings (code space ranges, bfchar entries, bfrange ranges and their array items)
/// kept over all the CMaps of one file; a CMap that would pass it is kept as unusable.
pub(super) const MAX_CMAP_ENTRIES: usize = 256 * 1024;

/// Ranges that may overlap one code looked up (ranges do not overlap in a well-made CMap).
const OVERLAPPING: usize = 8;

/// Longest Unicode text one code maps to, in UTF-16 units.
const MAX_DEST_UNITS: usize = 32;

/// Entries of the direct tables ([`Dense`]) kept over all the CMaps of one file (4 bytes
/// each: 4 MiB): a CMap past it is read through its ranges only.
pub(super) const MAX_DENSE_CODES: usize = 1 << 20;

/// A [`Dense`] entry: this CMap does not map the code.
const UNMAPPED: u32 = u32::MAX;

/// A [`Dense`] entry: the code maps to more than one character (read through the ranges).
const SEVERAL: u32 = u32::MAX - 1;

/// The parent of a CMap (`usecmap` or the stream's /UseCMap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Parent {
    /// A CMap named by `/Name usecmap`: predefined, or an embedded one with that /CMapName.
    Name(Vec<u8>),
    /// An embedded CMap stream (the stream dictionary's /UseCMap).
    Object(u32),
}

/// Where a range of codes maps.
#[derive(Debug, Clone)]
enum RangeDest {
    /// The first code's text; each next code increments its last UTF-16 unit.
    Incrementing(Vec<u16>),
    /// One text per code.
    Each(Vec<String>),
}

/// One code space range: codes of `len` bytes, each byte within its bounds.
#[derive(Debug, Clone, Copy)]
struct Space {
    len: u8,
    low: [u8; 4],
    high: [u8; 4],
}

/// The codes of one length a CMap maps, each to its one character, in a table indexed by
/// the code: what `lookup_into` reads first (a lookup per character shown, where the
/// ranges cost a binary search and a UTF-16 decoding).
#[derive(Debug, Clone)]
struct Dense {
    /// Code length in bytes (1 or 2).
    len: u8,
    /// The lowest code any of its ranges or bfchar entries of that length starts at:
    /// entry 0.
    first: u32,
    /// One entry per code from `first` to the highest mapped: the character's scalar value,
    /// [`UNMAPPED`] or [`SEVERAL`].
    entries: Vec<u32>,
}

/// An embedded CMap: its code spaces and its code-to-Unicode map.
#[derive(Debug, Clone, Default)]
pub(super) struct CMap {
    spaces: Vec<Space>,
    chars: HashMap<(u8, u32), String>,
    ranges: Vec<(u8, u32, u32, RangeDest)>,
    /// Direct tables of its one- and two-byte codes, made by `seal` (within the file's
    /// [`MAX_DENSE_CODES`]); the same answers as `chars` and `ranges`.
    dense: Vec<Dense>,
    /// Its /CMapName, if it defines one.
    pub(super) name: Option<Vec<u8>>,
    pub(super) parent: Option<Parent>,
    /// A mapping was dropped (a cap): the map is not whole.
    pub(super) overflow: bool,
}

/// A code: its length in bytes and its value, big-endian.
pub(super) type Code = (u8, u32);

fn value(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0, |v, &b| v << 8 | u32::from(b))
}

/// UTF-16BE bytes (the destination of a bfchar or bfrange) as units.
fn units(bytes: &[u8]) -> Vec<u16> {
    bytes
        .chunks(2)
        .take(MAX_DEST_UNITS)
        .map(|pair| u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]))
        .collect()
}

fn text_of(units: &[u16]) -> String {
    char::decode_utf16(units.iter().copied())
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// The text of a glyph name as a bfchar destination (`/space`): its Unicode by the glyph list.
fn name_text(name: &[u8]) -> Option<String> {
    super::encoding::glyph_text(name)
}

/// One item of a bfchar or bfrange block, as the content lexer hands it on.
#[derive(Debug)]
pub(super) enum Item<'a> {
    Str(&'a [u8]),
    Name(&'a [u8]),
    ArrayOpen,
    ArrayClose,
}

impl CMap {
    /// Whether it maps any code to text.
    pub(super) fn maps(&self) -> bool {
        !self.chars.is_empty() || !self.ranges.is_empty()
    }

    /// Whether it says anything at all (a stream that is no CMap says nothing).
    pub(super) fn is_empty(&self) -> bool {
        self.spaces.is_empty() && !self.maps() && self.parent.is_none()
    }

    /// `begincodespacerange … endcodespacerange`: pairs of strings of equal length (1 to 4).
    pub(super) fn code_spaces(&mut self, strings: &[&[u8]], room: &mut usize) {
        for pair in strings.chunks_exact(2) {
            let (low, high) = (pair[0], pair[1]);
            if low.len() != high.len() || low.is_empty() || low.len() > 4 {
                continue;
            }
            if !take(room) {
                self.overflow = true;
                return;
            }
            let mut space = Space {
                len: low.len() as u8,
                low: [0; 4],
                high: [0; 4],
            };
            space.low[..low.len()].copy_from_slice(low);
            space.high[..high.len()].copy_from_slice(high);
            self.spaces.push(space);
        }
    }

    /// `beginbfchar … endbfchar`: pairs of a code and its text (UTF-16BE, or a glyph name).
    pub(super) fn bf_chars(&mut self, items: &[Item<'_>], room: &mut usize) {
        for pair in items.chunks_exact(2) {
            let Item::Str(code) = pair[0] else { continue };
            if code.is_empty() || code.len() > 4 {
                continue;
            }
            let text = match pair[1] {
                Item::Str(dest) => text_of(&units(dest)),
                Item::Name(name) => match name_text(name) {
                    Some(text) => text,
                    None => continue,
                },
                _ => continue,
            };
            if !take(room) {
                self.overflow = true;
                return;
            }
            self.chars.insert((code.len() as u8, value(code)), text);
        }
    }

    /// `beginbfrange … endbfrange`: a low and a high code, then the first code's text (the
    /// next codes increment its last unit) or an array of one text per code.
    pub(super) fn bf_ranges(&mut self, items: &[Item<'_>], room: &mut usize) {
        let mut at = 0;
        while at + 2 < items.len() {
            let (Item::Str(low), Item::Str(high)) = (&items[at], &items[at + 1]) else {
                at += 1;
                continue;
            };
            at += 2;
            let dest = match items.get(at) {
                Some(Item::Str(first)) => {
                    at += 1;
                    Some(RangeDest::Incrementing(units(first)))
                }
                Some(Item::ArrayOpen) => {
                    at += 1;
                    let mut each = Vec::new();
                    while let Some(item) = items.get(at) {
                        at += 1;
                        match item {
                            Item::Str(s) => each.push(text_of(&units(s))),
                            Item::Name(n) => each.push(name_text(n).unwrap_or_default()),
                            Item::ArrayClose => break,
                            Item::ArrayOpen => {}
                        }
                    }
                    Some(RangeDest::Each(each))
                }
                _ => None,
            };
            let Some(dest) = dest else { continue };
            if low.len() != high.len() || low.is_empty() || low.len() > 4 {
                continue;
            }
            let cost = match &dest {
                RangeDest::Incrementing(_) => 1,
                RangeDest::Each(items) => items.len().max(1),
            };
            if *room < cost {
                self.overflow = true;
                *room = 0;
                return;
            }
            *room -= cost;
            self.ranges
                .push((low.len() as u8, value(low), value(high), dest));
        }
    }

    /// The text of one code, if this CMap maps it.
    #[cfg(test)]
    pub(super) fn lookup(&self, code: Code) -> Option<String> {
        let mut out = String::new();
        self.lookup_into(code, &mut out).then_some(out)
    }

    /// Appends the text of one code to `out`; false (nothing appended) when this CMap does
    /// not map it. No allocation beyond `out`'s growth: this runs once per character shown.
    pub(super) fn lookup_into(&self, code: Code, out: &mut String) -> bool {
        let (len, v) = code;
        if let Some(dense) = self.dense.iter().find(|d| d.len == len) {
            // outside the table: a code of this length that no entry maps
            let entry = v
                .checked_sub(dense.first)
                .and_then(|i| dense.entries.get(i as usize))
                .copied()
                .unwrap_or(UNMAPPED);
            match entry {
                UNMAPPED => return false,
                SEVERAL => {}
                c => {
                    out.push(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
                    return true;
                }
            }
        }
        self.lookup_mapped(code, out)
    }

    /// [`CMap::lookup_into`] through `chars` and `ranges` alone.
    fn lookup_mapped(&self, code: Code, out: &mut String) -> bool {
        if !self.chars.is_empty()
            && let Some(text) = self.chars.get(&code)
        {
            out.push_str(text);
            return true;
        }
        let (len, v) = code;
        // Ranges are sorted by (length, low code) once read (`seal`): the ranges that may
        // hold the code are the few that start at or below it.
        let end = self
            .ranges
            .partition_point(|(l, low, ..)| (*l, *low) <= (len, v));
        let candidates = self.ranges.get(end.saturating_sub(OVERLAPPING)..end);
        for (l, low, high, dest) in candidates.into_iter().flatten().rev() {
            if *l != len || v < *low || v > *high {
                continue;
            }
            let offset = v - low;
            return match dest {
                RangeDest::Incrementing(first) => {
                    let Some((last, head)) = first.split_last() else {
                        return false;
                    };
                    let last = last.wrapping_add(offset as u16);
                    let units = head.iter().copied().chain(std::iter::once(last));
                    out.extend(
                        char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)),
                    );
                    true
                }
                RangeDest::Each(items) => match items.get(offset as usize) {
                    Some(text) => {
                        out.push_str(text);
                        true
                    }
                    None => false,
                },
            };
        }
        false
    }

    /// Sorts the ranges for `lookup`, once the CMap has been read whole, and makes the
    /// direct tables of its one- and two-byte codes while `room` (entries, shared by the
    /// file's CMaps) lasts.
    pub(super) fn seal(&mut self, room: &mut usize) {
        self.ranges.sort_by_key(|(l, low, ..)| (*l, *low));
        self.dense.clear();
        if self.overflow {
            // refused when used: no room spent on it
            return;
        }
        for len in [1u8, 2] {
            let codes = self
                .ranges
                .iter()
                .filter(|(l, ..)| *l == len)
                .map(|(_, low, high, _)| (*low, *high))
                .chain(
                    self.chars
                        .keys()
                        .filter(|(l, _)| *l == len)
                        .map(|(_, v)| (*v, *v)),
                );
            let Some((first, last)) = codes.fold(None, |span: Option<(u32, u32)>, (lo, hi)| {
                Some(span.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))))
            }) else {
                continue;
            };
            // none when the only ranges run backwards (they map nothing)
            let Some(size) = last.checked_sub(first).map(|n| n as usize + 1) else {
                continue;
            };
            if size > *room {
                continue;
            }
            *room -= size;
            let mut text = String::new();
            let entries = (first..=last)
                .map(|v| {
                    text.clear();
                    if !self.lookup_mapped((len, v), &mut text) {
                        return UNMAPPED;
                    }
                    let mut chars = text.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) => u32::from(c),
                        _ => SEVERAL,
                    }
                })
                .collect();
            self.dense.push(Dense {
                len,
                first,
                entries,
            });
        }
    }

    /// Whether it has code space ranges to split strings with.
    pub(super) fn has_spaces(&self) -> bool {
        !self.spaces.is_empty()
    }

    /// Splits the start of `s` into one code by the code space ranges (ISO 32000-1 §9.7.6.2):
    /// the shortest range that matches; bytes no range matches make a code as long as the
    /// shortest range. Returns the code and its length in bytes (at least 1).
    pub(super) fn next_code(&self, s: &[u8]) -> (Code, usize) {
        for len in 1..=4usize {
            let Some(bytes) = s.get(..len) else { break };
            let hit = self.spaces.iter().any(|space| {
                usize::from(space.len) == len
                    && bytes
                        .iter()
                        .enumerate()
                        .all(|(i, b)| (space.low[i]..=space.high[i]).contains(b))
            });
            if hit {
                return ((len as u8, value(bytes)), len);
            }
        }
        let shortest = self
            .spaces
            .iter()
            .map(|s| usize::from(s.len))
            .min()
            .unwrap_or(1)
            .min(s.len())
            .max(1);
        let bytes = s.get(..shortest).unwrap_or(s);
        ((bytes.len() as u8, value(bytes)), bytes.len().max(1))
    }
}

/// Takes one unit of room; false when there is none left.
fn take(room: &mut usize) -> bool {
    if *room == 0 {
        return false;
    }
    *room -= 1;
    true
}

/// A predefined CMap (ISO 32000-1 §9.7.5.2, Table 118), as far as text is read through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Predefined {
    /// Identity-H / Identity-V: two-byte codes that are glyph ids, no text without a map.
    Identity,
    /// UniGB-UCS2-H/V: two-byte UCS-2 codes.
    Ucs2,
    /// UniGB-UTF16-H/V (and the other UTF-16 CMaps): UTF-16BE.
    Utf16,
    /// GB-EUC, GBpc-EUC, GBK-EUC, GBKp-EUC, GBK2K (H and V): GB 2312, GBK, GB 18030 bytes.
    Gb,
}

impl Predefined {
    /// The predefined CMap of this name, if text can be read through it (codes that are
    /// text) or it is Identity.
    pub(super) fn of(name: &[u8]) -> Option<Predefined> {
        let base = name
            .strip_suffix(b"-H")
            .or_else(|| name.strip_suffix(b"-V"))?;
        Some(match base {
            b"Identity" => Predefined::Identity,
            b"UniGB-UCS2" | b"UniCNS-UCS2" | b"UniJIS-UCS2" | b"UniKS-UCS2" => Predefined::Ucs2,
            b"UniGB-UTF16" | b"UniCNS-UTF16" | b"UniJIS-UTF16" | b"UniKS-UTF16" => {
                Predefined::Utf16
            }
            b"GB-EUC" | b"GBpc-EUC" | b"GBK-EUC" | b"GBKp-EUC" | b"GBK2K" => Predefined::Gb,
            _ => return None,
        })
    }

    /// The text of a string shown through this CMap; None for Identity (glyph ids).
    pub(super) fn text(self, s: &[u8]) -> Option<String> {
        match self {
            Predefined::Identity => None,
            Predefined::Ucs2 | Predefined::Utf16 => Some(text_of(&units(s))),
            Predefined::Gb => {
                let (text, _) = encoding_rs::GB18030.decode_without_bom_handling(s);
                Some(text.into_owned())
            }
        }
    }

    /// Splits the start of `s` into one code as this CMap's code space does.
    pub(super) fn next_code(self, s: &[u8]) -> (Code, usize) {
        let len = match self {
            Predefined::Identity | Predefined::Ucs2 => 2,
            Predefined::Utf16 => match s {
                [0xd8..=0xdb, _, ..] => 4,
                _ => 2,
            },
            Predefined::Gb => match s {
                [0x81..=0xfe, 0x30..=0x39, ..] => 4,
                [0x81..=0xfe, ..] => 2,
                _ => 1,
            },
        };
        let bytes = s.get(..len).unwrap_or(s);
        ((bytes.len() as u8, value(bytes)), bytes.len().max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(items: &[&'static [u8]]) -> Vec<Item<'static>> {
        items.iter().map(|s| Item::Str(s)).collect()
    }

    #[test]
    fn bf_chars_and_both_kinds_of_ranges_map_codes() {
        let mut room = 100;
        let mut map = CMap::default();
        map.code_spaces(&[b"\x00\x00", b"\xff\xff"], &mut room);
        map.bf_chars(
            &strs(&[b"\x0a\x21", b"\x67\x3a", b"\x0a\x23", b"\x00f\x00i"]),
            &mut room,
        );
        map.bf_ranges(&strs(&[b"\x00\x10", b"\x00\x12", b"\x00\x41"]), &mut room);
        let mut items = strs(&[b"\x00\x20", b"\x00\x21"]);
        items.extend([
            Item::ArrayOpen,
            Item::Str(b"\x5b\xc6"),
            Item::Name(b"space"),
            Item::ArrayClose,
        ]);
        map.bf_ranges(&items, &mut room);
        // read through the direct table, and (no room for one) through the ranges alone:
        // codes 0x0010 to 0x0a23: a table of 2580 entries; with less room, none
        for given in [MAX_DENSE_CODES, 2580, 2579, 0] {
            let mut dense_room = given;
            map.seal(&mut dense_room);
            assert_eq!(map.dense.is_empty(), given < 2580, "room {given}");
            assert_eq!(dense_room, if given < 2580 { given } else { given - 2580 });
            assert_eq!(map.lookup((2, 0x0a21)).as_deref(), Some("机"));
            assert_eq!(map.lookup((2, 0x0012)).as_deref(), Some("C"));
            assert_eq!(map.lookup((2, 0x0013)), None);
            assert_eq!(map.lookup((2, 0x0020)).as_deref(), Some("密"));
            assert_eq!(map.lookup((2, 0x0021)).as_deref(), Some(" "));
            assert_eq!(map.lookup((2, 0x0009)), None);
            assert_eq!(map.lookup((2, 0x0a22)), None);
            // a code mapped to two characters is read through the map
            assert_eq!(map.lookup((2, 0x0a23)).as_deref(), Some("fi"));
            assert_eq!(map.lookup((2, 0x0a24)), None);
            assert_eq!(map.lookup((1, 0x0a)), None);
        }
        // The cap: what does not fit is dropped and the map marked.
        let mut room = 1;
        let mut small = CMap::default();
        small.bf_chars(&strs(&[b"\x01", b"\x00A", b"\x02", b"\x00B"]), &mut room);
        assert!(small.overflow);
    }

    #[test]
    fn the_direct_table_answers_as_the_map_for_every_code() {
        let mut room = 1000;
        let mut map = CMap::default();
        // one-byte codes: a range, a bfchar inside it (bfchar wins), a code to two chars
        map.bf_ranges(&strs(&[b"\x20", b"\x7e", b"\x00\x20"]), &mut room);
        map.bf_chars(
            &strs(&[b"\x41", b"\x67\x3a", b"\x42", b"\x00f\x00i"]),
            &mut room,
        );
        // two-byte codes: overlapping ranges, a range that runs backwards, an array range
        // with an empty and a missing item, a surrogate pair, a bfchar inside a range
        map.bf_ranges(
            &strs(&[
                b"\x4e\x00",
                b"\x4e\xff",
                b"\x4e\x00",
                b"\x4e\x80",
                b"\x4f\x10",
                b"\x5b\xc6",
                b"\x90\x00",
                b"\x8f\x00",
                b"\x00\x41",
                b"\x01\x00",
                b"\x01\x00",
                b"\xd8\x40\xdc\x00",
            ]),
            &mut room,
        );
        let mut items = strs(&[b"\x02\x00", b"\x02\x03"]);
        items.extend([
            Item::ArrayOpen,
            Item::Str(b"\x67\x3a"),
            Item::Str(b""),
            Item::Name(b"space"),
            Item::ArrayClose,
        ]);
        map.bf_ranges(&items, &mut room);
        map.bf_chars(&strs(&[b"\x4e\x10", b"\x5b\xc6"]), &mut room);
        let mut dense_room = MAX_DENSE_CODES;
        map.seal(&mut dense_room);
        assert_eq!(map.dense.len(), 2);
        let (mut fast, mut slow) = (String::new(), String::new());
        for (len, top) in [(1u8, 0xffu32), (2, 0xffff)] {
            for v in 0..=top {
                fast.clear();
                slow.clear();
                let hit = map.lookup_into((len, v), &mut fast);
                assert_eq!(hit, map.lookup_mapped((len, v), &mut slow), "{len} {v:#x}");
                assert_eq!(fast, slow, "{len} {v:#x}");
            }
        }
        assert_eq!(map.lookup((1, 0x41)).as_deref(), Some("机"));
        assert_eq!(map.lookup((1, 0x42)).as_deref(), Some("fi"));
        assert_eq!(map.lookup((2, 0x4e10)).as_deref(), Some("密"));
        assert_eq!(map.lookup((2, 0x0100)).as_deref(), Some("\u{20000}"));
        // an unusable map spends no room
        let mut over = map.clone();
        over.overflow = true;
        let mut dense_room = MAX_DENSE_CODES;
        over.seal(&mut dense_room);
        assert!(over.dense.is_empty());
        assert_eq!(dense_room, MAX_DENSE_CODES);
    }

    #[test]
    fn mixed_code_spaces_split_one_and_two_byte_codes() {
        let mut room = 100;
        let mut map = CMap::default();
        map.code_spaces(&[b"\x00", b"\x80", b"\x81\x40", b"\xfe\xfe"], &mut room);
        let s = b"\x41\x81\x40\x42";
        assert_eq!(map.next_code(s), ((1, 0x41), 1));
        assert_eq!(map.next_code(&s[1..]), ((2, 0x8140), 2));
        assert_eq!(map.next_code(&s[3..]), ((1, 0x42), 1));
        // A lone lead byte at the end is one code, not a fault.
        assert_eq!(map.next_code(b"\x90"), ((1, 0x90), 1));
    }

    #[test]
    fn predefined_chinese_cmaps_read_their_codes_as_text() {
        assert_eq!(Predefined::of(b"UniGB-UCS2-H"), Some(Predefined::Ucs2));
        assert_eq!(Predefined::of(b"UniGB-UTF16-V"), Some(Predefined::Utf16));
        for name in [
            "GBK-EUC-H",
            "GBpc-EUC-V",
            "GBK2K-H",
            "GB-EUC-H",
            "GBKp-EUC-V",
        ] {
            assert_eq!(
                Predefined::of(name.as_bytes()),
                Some(Predefined::Gb),
                "{name}"
            );
        }
        assert_eq!(Predefined::of(b"Identity-H"), Some(Predefined::Identity));
        assert_eq!(Predefined::of(b"90ms-RKSJ-H"), None);
        assert_eq!(Predefined::Ucs2.text(b"\x67\x3a\x5b\xc6").unwrap(), "机密");
        assert_eq!(
            Predefined::Utf16.text(b"\xd8\x40\xdc\x00").unwrap(),
            "\u{20000}"
        );
        // 机密 in GBK, and a four-byte GB 18030 sequence (U+0080).
        assert_eq!(Predefined::Gb.text(b"\xbb\xfa\xc3\xdcA").unwrap(), "机密A");
        assert_eq!(Predefined::Gb.text(b"\x81\x30\x81\x30").unwrap(), "\u{80}");
        assert_eq!(Predefined::Identity.text(b"\x0a\x21"), None);
        assert_eq!(Predefined::Gb.next_code(b"\xbb\xfa"), ((2, 0xbbfa), 2));
    }
}
