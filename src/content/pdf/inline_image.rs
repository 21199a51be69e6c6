//! Where an inline image's data ends (ISO 32000-2 §8.9.7): the content lexer ends it at the
//! first `EI` between white space, while viewers read the data by what its dictionary says
//! (MuPDF and Poppler: the unfiltered data's length, or the first filter's end of data,
//! then the next `EI`). An `EI` inside the data makes the two disagree: operators written
//! after a fake `EI` are obeyed by one reader and are image data to the other (a `Tf` that
//! changes the font of later text, text shown or hidden). So an inline image of a content
//! stream is checked at its first `EI`: its data must be whole by then, by the measure its
//! dictionary gives; else the stream is refused.
//!
//! ```text
//!  BI /W 4 /H 2 /BPC 8 /CS /G ID ␠ ........ ␠EI␠   data of 8 bytes = 4 × 2 × 8 bits × 1
//!  BI /F /Fl … ID ␠ <zlib stream> ␠EI␠          the zlib stream ended before the EI
//!  BI /F /DCT … ID ␠ FFD8 … FFD9 ␠EI␠           the JPEG's markers walked to its EOI
//! ```
//!
//! Left to the first `EI`: images in a filter this reader does not decode (CCITTFax, JBIG2,
//! JPX), and a colour space named by a resource, whose components are counted as one (the
//! least it may have).

use super::filters::{self, Filter, FilterKind, Stage, Stop};
use crate::core::reason::Refusal;

/// Most bytes of an inline image's data kept to find its end (a filtered or JPEG one): the
/// specification advises under 4 KB; past this the stream is refused.
pub(super) const MAX_KEPT: usize = 16 << 20;

/// One item of an inline image's dictionary as the content lexer read it: its key-value
/// pairs in order, with the items of an array or a nested dictionary between brackets
/// (`<<` and `>>` are not told apart from `[` and `]`, nor read at all: see [`Dict`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Item<'a> {
    Name(&'a [u8]),
    Number(f64),
    Bool(bool),
    Open,
    Close,
    Other,
}

/// How the data's end is known.
#[derive(Debug)]
enum Measure {
    /// Unfiltered: this many bytes.
    Length(u64),
    /// The first filter's end of data (its decoding stage).
    Decoded(Vec<Stage>),
    /// A JPEG's end-of-image marker.
    Jpeg,
    /// Not known: the first `EI` is taken.
    FirstEi,
}

/// An inline image being passed over: what its dictionary says of its data, and the bytes
/// after `ID` seen so far (kept where the check needs them).
#[derive(Debug)]
pub(super) struct InlineImage {
    measure: Measure,
    /// Bytes after `ID` (its white space included), up to and with the `EI` and the byte
    /// after it.
    seen: u64,
    /// The first two of them (to pass over `ID`'s white space: one byte, or CR LF).
    first: [u8; 2],
    kept: Vec<u8>,
    /// More than [`MAX_KEPT`] bytes came.
    over: bool,
}

/// A filter name of an inline image, abbreviated or not (ISO 32000-2 Table 93).
fn filter_kind(name: &[u8]) -> Option<Result<FilterKind, ()>> {
    Some(Ok(match name {
        b"AHx" | b"ASCIIHexDecode" => FilterKind::AsciiHex,
        b"A85" | b"ASCII85Decode" => FilterKind::Ascii85,
        b"LZW" | b"LZWDecode" => FilterKind::Lzw,
        b"Fl" | b"FlateDecode" => FilterKind::Flate,
        b"RL" | b"RunLengthDecode" => FilterKind::RunLength,
        b"DCT" | b"DCTDecode" => return Some(Err(())),
        b"CCF" | b"CCITTFaxDecode" | b"JBIG2Decode" | b"JPXDecode" => FilterKind::Image,
        _ => return None,
    }))
}

/// Colour components of a colour space named in an inline image (ISO 32000-2 §8.6, Table
/// 93's abbreviations); a name of the page's resources counts one, the least it may have.
fn components(name: &[u8]) -> u64 {
    match name {
        b"RGB" | b"DeviceRGB" | b"CalRGB" | b"Lab" => 3,
        b"CMYK" | b"DeviceCMYK" => 4,
        _ => 1,
    }
}

/// The value of `key` in the dictionary's items: `None` where the key is missing. A key
/// given more than once (as a nested dictionary's key too) gives the largest number.
fn largest(items: &[Item<'_>], keys: [&[u8]; 2]) -> Option<f64> {
    let mut found: Option<f64> = None;
    for pair in items.windows(2) {
        if let [Item::Name(k), Item::Number(v)] = pair
            && keys.contains(k)
        {
            found = Some(found.map_or(*v, |f| f.max(*v)));
        }
    }
    found
}

impl InlineImage {
    /// What the dictionary read between `BI` and `ID` says of the data's end.
    ///
    /// # Errors
    /// A filter name no reader knows (`content_unreadable`): where viewers stop is not known.
    pub(super) fn new(items: &[Item<'_>]) -> Result<InlineImage, Refusal> {
        let measure = Self::measure(items)?;
        Ok(InlineImage {
            measure,
            seen: 0,
            first: [0; 2],
            kept: Vec::new(),
            over: false,
        })
    }

    fn measure(items: &[Item<'_>]) -> Result<Measure, Refusal> {
        let key =
            |i: usize, keys: [&[u8]; 2]| matches!(items[i], Item::Name(k) if keys.contains(&k));
        // every value given (a key of a nested dictionary is read as one too): a second,
        // different filter is refused, the colour space with most components counts, and a
        // mask is measured both as a mask and as the image its other keys describe
        let mut filters: Vec<Vec<&[u8]>> = Vec::new();
        let mut comps: Option<u64> = None;
        let mut mask = false;
        for i in 0..items.len() {
            let value = items.get(i + 1..).unwrap_or_default();
            if key(i, [b"F", b"Filter"]) {
                let names = match value {
                    [Item::Name(f), ..] => vec![*f],
                    [Item::Open, rest @ ..] => rest
                        .iter()
                        .map_while(|it| match it {
                            Item::Name(f) => Some(*f),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                if !filters.contains(&names) {
                    filters.push(names);
                }
            } else if key(i, [b"CS", b"ColorSpace"]) {
                // [/I /RGB 255 <…>], [/CalRGB <<…>>]: the family names the count
                if let [Item::Name(s), ..] | [Item::Open, Item::Name(s), ..] = value {
                    comps = Some(comps.unwrap_or(0).max(components(s)));
                }
            } else if key(i, [b"IM", b"ImageMask"]) {
                mask |= matches!(value, [Item::Bool(true), ..]);
            }
        }
        if filters.len() > 1 {
            return Err(super::unreadable(
                "PDF inline image gives its filter twice, differently: where its data ends cannot be told",
            ));
        }
        if let Some(first) = filters.first().and_then(|f| f.first()) {
            return match filter_kind(first) {
                None => Err(super::unreadable(format!(
                    "PDF inline image uses the filter /{}, which no reader knows: where its data ends cannot be told",
                    String::from_utf8_lossy(first)
                ))),
                Some(Err(())) => Ok(Measure::Jpeg),
                Some(Ok(FilterKind::Image)) => Ok(Measure::FirstEi),
                Some(Ok(kind)) => Ok(Stage::chain(&[Filter {
                    kind,
                    predictor: None,
                    early_change: true,
                }])
                .map_or(Measure::FirstEi, Measure::Decoded)),
            };
        }
        let whole = |v: Option<f64>| v.filter(|v| *v >= 0.0).map(|v| v.ceil() as u64);
        let (Some(width), Some(height)) = (
            whole(largest(items, [b"W", b"Width"])),
            whole(largest(items, [b"H", b"Height"])),
        ) else {
            return Ok(Measure::FirstEi);
        };
        let bits = whole(largest(items, [b"BPC", b"BitsPerComponent"]));
        let length = |bits: u64, comps: u64| {
            let row = width
                .saturating_mul(comps)
                .saturating_mul(bits)
                .saturating_add(7)
                / 8;
            row.saturating_mul(height)
        };
        let image = bits.zip(comps).map(|(b, c)| length(b, c));
        match (mask.then(|| length(1, 1)), image) {
            (None, None) => Ok(Measure::FirstEi),
            (a, b) => Ok(Measure::Length(a.max(b).unwrap_or(0))),
        }
    }

    /// Takes one byte of the data (before the `EI` is known to be there).
    pub(super) fn byte(&mut self, b: u8) {
        if let Some(slot) = self.first.get_mut(self.seen as usize) {
            *slot = b;
        }
        self.seen += 1;
        if matches!(self.measure, Measure::Decoded(_) | Measure::Jpeg) {
            if self.kept.len() < MAX_KEPT {
                self.kept.push(b);
            } else {
                self.over = true;
            }
        }
    }

    /// The check at the first `EI` (the white space before it, `E`, `I` and the byte after
    /// it taken by [`InlineImage::byte`]): the data must be whole by then.
    ///
    /// # Errors
    /// `content_unreadable`: the data goes on past this `EI` by its dictionary's measure,
    /// or cannot be measured (too long to keep, a filter's data broken, a JPEG whose
    /// markers do not end before it).
    pub(super) fn check(self) -> Result<(), Refusal> {
        // ID's white space: one byte, or CR LF (as MuPDF passes it over)
        let lead: u64 = if self.first == *b"\r\n" { 2 } else { 1 };
        let data = self.seen.saturating_sub(lead + 4);
        let ambiguous = |what: &str| {
            super::unreadable(format!(
                "PDF inline image has `EI` inside its data ({what}): viewers that read the data by its dictionary do not end it there, so the operators after it are read differently"
            ))
        };
        if self.over {
            return Err(super::unreadable(format!(
                "PDF inline image is over {} MiB: where its data ends cannot be checked",
                MAX_KEPT >> 20
            )));
        }
        let kept = {
            let end = self.kept.len().saturating_sub(4);
            let start = (lead as usize).min(end);
            &self.kept[start..end]
        };
        match self.measure {
            Measure::FirstEi => Ok(()),
            Measure::Length(length) if data < length => Err(ambiguous(&format!(
                "{data} bytes before it, {length} by its width, height, bits and colour space"
            ))),
            Measure::Length(_) => Ok(()),
            Measure::Decoded(mut stages) => {
                // the chain of the first filter alone: its end of data is the data's end
                filters::run(&mut stages, kept, &mut |_| Ok(()))?;
                match stages.first().map(|s| s.stop) {
                    Some(Stop::Ended) => Ok(()),
                    Some(Stop::Running) => Err(ambiguous("its filter's data has not ended")),
                    _ => Err(super::unreadable(
                        "PDF inline image's filtered data is broken or too large: where it ends cannot be told",
                    )),
                }
            }
            Measure::Jpeg => match jpeg_end(kept) {
                Some(end) if !kept[end..].windows(2).any(|w| w == b"EI") => Ok(()),
                Some(_) => Err(ambiguous("an `EI` between the JPEG's end and this one")),
                None => Err(ambiguous("the JPEG's markers do not reach its end")),
            },
        }
    }
}

/// The offset just past a JPEG's end-of-image marker, found by walking its markers (ITU-T
/// T.81 Annex B): segments by their lengths, entropy-coded data to the next marker that is
/// not a restart (`FF 00` is a stuffed byte). `None` where `data` is no JPEG or ends first.
fn jpeg_end(data: &[u8]) -> Option<usize> {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let length = |at: usize| -> Option<usize> {
        let l = usize::from(u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]));
        (l >= 2).then_some(l)
    };
    let mut at = 2;
    loop {
        if *data.get(at)? != 0xFF {
            return None;
        }
        while *data.get(at)? == 0xFF {
            at += 1;
        }
        let marker = data[at];
        at += 1;
        match marker {
            0xD9 => return Some(at),
            0xD0..=0xD7 | 0x01 => {}
            0xDA => {
                at += length(at)?;
                // entropy-coded data: up to a marker that is neither stuffing nor a restart
                loop {
                    let ff = at + memchr::memchr(0xFF, data.get(at..)?)?;
                    match *data.get(ff + 1)? {
                        0x00 | 0xD0..=0xD7 => at = ff + 2,
                        0xFF => at = ff + 1,
                        _ => {
                            at = ff;
                            break;
                        }
                    }
                }
            }
            _ => at += length(at)?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(items: &[Item<'_>], data: &[u8]) -> Result<(), Refusal> {
        let mut img = InlineImage::new(items)?;
        let mut bytes = b" ".to_vec();
        bytes.extend_from_slice(data);
        bytes.extend_from_slice(b" EI ");
        for b in bytes {
            img.byte(b);
        }
        img.check()
    }

    use Item::{Bool, Close, Name, Number, Open};

    #[test]
    fn unfiltered_data_is_measured_by_width_height_bits_and_colour_space() {
        let gray = [
            Name(b"W"),
            Number(4.0),
            Name(b"H"),
            Number(2.0),
            Name(b"BPC"),
            Number(8.0),
            Name(b"CS"),
            Name(b"G"),
        ];
        assert!(image(&gray, &[7; 8]).is_ok());
        // more before the EI (white space) is as viewers read it
        assert!(image(&gray, &[7; 9]).is_ok());
        let short = image(&gray, &[7; 7]).unwrap_err();
        assert!(
            short.detail.contains("7 bytes before it, 8 by"),
            "{}",
            short.detail
        );
        // RGB: 3 components; an indexed space in an array: 1; a mask: 1 bit
        let rgb = [
            Name(b"Width"),
            Number(2.0),
            Name(b"Height"),
            Number(2.0),
            Name(b"BitsPerComponent"),
            Number(8.0),
            Name(b"ColorSpace"),
            Name(b"DeviceRGB"),
        ];
        assert!(image(&rgb, &[1; 12]).is_ok());
        assert!(image(&rgb, &[1; 11]).is_err());
        let indexed = [
            Name(b"W"),
            Number(3.0),
            Name(b"H"),
            Number(1.0),
            Name(b"BPC"),
            Number(8.0),
            Name(b"CS"),
            Open,
            Name(b"I"),
            Name(b"RGB"),
            Number(1.0),
            Item::Other,
            Close,
        ];
        assert!(image(&indexed, &[1; 3]).is_ok());
        assert!(image(&indexed, &[1; 2]).is_err());
        let mask = [
            Name(b"W"),
            Number(9.0),
            Name(b"H"),
            Number(2.0),
            Name(b"IM"),
            Bool(true),
        ];
        assert!(image(&mask, &[0; 4]).is_ok());
        assert!(image(&mask, &[0; 3]).is_err());
        // a key given twice (a nested dictionary's too) counts at its largest
        let twice = [gray.as_slice(), &[Name(b"H"), Number(3.0)]].concat();
        assert!(image(&twice, &[7; 8]).is_err());
        assert!(image(&twice, &[7; 12]).is_ok());
        // /IM true in a nested dictionary of an image described in full: both measures, the
        // larger counts; a second colour space counts at its most components
        let masked = [gray.as_slice(), &[Name(b"DP"), Name(b"IM"), Bool(true)]].concat();
        assert!(image(&masked, &[7; 7]).is_err());
        let spaces = [gray.as_slice(), &[Name(b"CS"), Name(b"CMYK")]].concat();
        assert!(image(&spaces, &[7; 31]).is_err());
        assert!(image(&spaces, &[7; 32]).is_ok());
        // nothing to measure by: the first EI
        assert!(image(&[Name(b"W"), Number(2.0), Name(b"H"), Number(2.0)], b"").is_ok());
    }

    #[test]
    fn filtered_data_must_have_ended_and_unknown_filters_are_refused() {
        let hex = [Name(b"F"), Name(b"AHx")];
        assert!(image(&hex, b"0102 03>").is_ok());
        assert!(image(&hex, b"0102 03").is_err());
        let chain = [Name(b"F"), Open, Name(b"A85"), Name(b"Fl"), Close];
        assert!(image(&chain, b"87cUR~>").is_ok());
        assert!(image(&chain, b"87cUR").is_err());
        let unknown = InlineImage::new(&[Name(b"F"), Name(b"Crypt")]).unwrap_err();
        assert!(unknown.detail.contains("/Crypt"), "{}", unknown.detail);
        // a filter given twice, differently (a nested dictionary's /F too): refused
        let two = InlineImage::new(&[
            Name(b"F"),
            Name(b"Fl"),
            Name(b"DP"),
            Name(b"F"),
            Name(b"AHx"),
        ])
        .unwrap_err();
        assert!(two.detail.contains("twice"), "{}", two.detail);
        // a filter this reader never decodes: the first EI
        assert!(image(&[Name(b"F"), Name(b"CCF")], b"\x01\x02").is_ok());
    }

    #[test]
    fn a_jpegs_markers_are_walked_to_its_end() {
        // SOI, APP0 (4 bytes), SOS (header of 2 bytes), entropy data with FF00 and RST0, EOI
        let jpeg: &[u8] =
            b"\xFF\xD8\xFF\xE0\x00\x04ab\xFF\xDA\x00\x02\x12\xFF\x00\x34\xFF\xD0\x56\xFF\xD9";
        assert_eq!(jpeg_end(jpeg), Some(jpeg.len()));
        let dct = [Name(b"F"), Name(b"DCT")];
        assert!(image(&dct, jpeg).is_ok());
        // an EI inside a comment segment: the walk ends before its EOI
        let inside: &[u8] = b"\xFF\xD8\xFF\xFE\x00\x10 EI /F2 12 Tf ";
        assert_eq!(jpeg_end(inside), None);
        assert!(image(&dct, inside).is_err());
        // bytes after the EOI that hold an EI: a viewer that walks the JPEG stops there
        let after = [jpeg, b" xEIx".as_slice()].concat();
        assert!(image(&dct, &after).is_err());
        assert_eq!(jpeg_end(b"not a jpeg"), None);
    }
}
