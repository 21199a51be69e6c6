//! Where an inline image's data ends (ISO 32000-2 §8.9.7). MuPDF and Poppler read the data
//! by what its dictionary says (the unfiltered data's length, the first filter's end of
//! data), then look for the next `EI` (MuPDF: followed by white space, `<` or `/`; Poppler:
//! any). A lexer that ends the image at the first `EI` between white space disagrees with
//! them where the data holds one, or where the real `EI` has no white space before it: the
//! operators on one side of the disagreement are image data to the other (a `Tf` that
//! changes the font of later text, a `%` that hides the rest of a line). So an inline image
//! of a content stream is read as they read it, and refused where readers could differ.
//!
//! ```text
//!  BI /W 4 /H 2 /BPC 8 /CS /G ID ␠ ........ EI␠     data of 8 bytes = 4 × 2 × 8 bits × 1
//!  BI /F /Fl … ID ␠ <zlib stream> EI␠             the zlib stream ends, then the EI
//!  BI /F /DCT … ID ␠ FFD8 … FFD9 EI␠              the JPEG's markers walked to its EOI
//! ```
//!
//! Refused (`content_unreadable`): an `EI` between white space inside the data (a reader
//! that scans for it ends there); an `EI` that only Poppler ends at (not followed by white
//! space, `<` or `/`) between the data's end and the one both end at; a colour space no
//! inline image may give (a family that needs parameters given by name, or a Separation,
//! DeviceN or ICCBased array: MuPDF then reads the data as operators, Poppler passes it
//! over); an unfiltered image without a whole width, height, bits (1, 2, 4, 8 or 16) and
//! colour space to measure it by; an unknown filter, or two different ones; a JPEG whose
//! markers the walk cannot follow; a stream that ends inside an image (the content lexer
//! refuses that, and an operator between `BI` and `ID`). Left to the first `EI` between
//! white space, as before:
//! images in a filter this reader does not decode (CCITTFax, JBIG2, JPX). Not caught: a
//! name that the page's resources do not define as a colour space (this reader does not
//! look them up; MuPDF reads such an image's data as operators); and where the lexer's
//! measure and the viewers' differ (a colour space named by the page's resources counts
//! one component, the least it may have; a key given twice, in a nested dictionary too,
//! counts at its largest), an `EI` with no white space before it between the two ends.

use super::filters::{self, Filter, FilterKind, Stage, Stop};
use super::lexical::{is_delimiter, is_white};
use crate::core::reason::Refusal;

/// Most bytes of an inline image's data kept to find its end (of any image in a content
/// stream): the specification advises under 4 KB; past this the stream is refused.
pub(super) const MAX_KEPT: usize = 16 << 20;

/// One item of an inline image's dictionary as the content lexer read it: its key-value
/// pairs in order, an array's items between `Open` and `Close`. A nested dictionary's `<<`
/// and `>>` are not read at all, so its keys stand among the image's: a key's values are
/// all taken into account (see [`InlineImage::new`]).
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
    Length(usize),
    /// The first filter's end of data: its decoding stage, fed the data up to `fed`.
    Decoded {
        filter: Filter,
        stage: Vec<Stage>,
        fed: usize,
    },
    /// A JPEG's end-of-image marker, walked to.
    Jpeg(JpegWalk),
    /// Not known: the first `EI` between white space (or a delimiter after it).
    FirstEi,
}

/// An inline image being passed over: what its dictionary says of its data, and the bytes
/// after `ID` seen so far.
#[derive(Debug)]
pub(super) struct InlineImage {
    measure: Measure,
    /// Every byte after `ID` (its white space included), up to the last taken.
    kept: Vec<u8>,
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

/// Colour-space families that need parameters, so never stand alone as a name: an inline
/// image naming one cannot be drawn (ISO 32000-2 §8.6.3, §8.9.7).
const INVALID_INLINE: [&[u8]; 10] = [
    b"I",
    b"Indexed",
    b"Pattern",
    b"Separation",
    b"DeviceN",
    b"ICCBased",
    b"CalGray",
    b"CalRGB",
    b"Lab",
    b"DeviceNColorSpace",
];

/// The families an inline image may give as an array (Indexed, which §8.9.7 allows, and the
/// CIE-based ones MuPDF and Poppler both make); any other (Separation, DeviceN, ICCBased)
/// belongs in the page's resources.
const LISTED_INLINE: [&[u8]; 5] = [b"I", b"Indexed", b"CalGray", b"CalRGB", b"Lab"];

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
            kept: Vec::new(),
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
                let (family, listed) = match value {
                    [Item::Name(s), ..] => (*s, false),
                    [Item::Open, Item::Name(s), ..] => (*s, true),
                    _ => continue,
                };
                // MuPDF reads the data of an image whose colour space it cannot make as
                // operators; Poppler passes it over
                if (!listed && INVALID_INLINE.contains(&family))
                    || (listed && !LISTED_INLINE.contains(&family))
                {
                    return Err(super::unreadable(format!(
                        "PDF inline image's colour space /{} {}: viewers differ on what its data is",
                        String::from_utf8_lossy(family),
                        if listed {
                            "is not one an inline image may give in an array"
                        } else {
                            "needs parameters an inline image cannot give by name"
                        }
                    )));
                }
                comps = Some(comps.unwrap_or(0).max(components(family)));
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
                Some(Err(())) => Ok(Measure::Jpeg(JpegWalk::default())),
                Some(Ok(FilterKind::Image)) => Ok(Measure::FirstEi),
                Some(Ok(kind)) => {
                    // LZW's code width: /EarlyChange 0 in the parameters (1 by default)
                    let early_change = items.windows(2).all(|pair| {
                        !matches!(pair, [Item::Name(b"EarlyChange"), Item::Number(v)] if *v == 0.0)
                    });
                    let filter = Filter {
                        kind,
                        predictor: None,
                        early_change,
                    };
                    Ok(
                        Stage::chain(&[filter]).map_or(Measure::FirstEi, |stage| {
                            Measure::Decoded {
                                filter,
                                stage,
                                fed: 0,
                            }
                        }),
                    )
                }
            };
        }
        let unmeasured = || {
            super::unreadable(
                "PDF inline image lacks a whole width, height, bits per component (1, 2, 4, 8 or 16) or colour space to measure its data by: viewers cannot draw it, and where it ends cannot be told",
            )
        };
        // MuPDF and Poppler draw whole, positive sizes only, and 1, 2, 4, 8 or 16 bits
        let whole = |v: Option<f64>| {
            v.filter(|v| *v >= 1.0 && v.fract() == 0.0)
                .map(|v| v as u64)
        };
        let (Some(width), Some(height)) = (
            whole(largest(items, [b"W", b"Width"])),
            whole(largest(items, [b"H", b"Height"])),
        ) else {
            return Err(unmeasured());
        };
        let bits = largest(items, [b"BPC", b"BitsPerComponent"])
            .map(|b| {
                whole(Some(b))
                    .filter(|b| [1, 2, 4, 8, 16].contains(b))
                    .ok_or_else(unmeasured)
            })
            .transpose()?;
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
            (None, None) => Err(unmeasured()),
            (a, b) => {
                let bytes = a.max(b).unwrap_or(0);
                Ok(Measure::Length(
                    usize::try_from(bytes).unwrap_or(usize::MAX),
                ))
            }
        }
    }

    /// Takes the next byte after `ID`. Returns whether the image ended with it: it was the
    /// byte after an `EI` that ends the image, and is to be read again as content (a `/`
    /// or `<` starts the next token).
    ///
    /// # Errors
    /// `content_unreadable`: the image is over [`MAX_KEPT`] bytes, or readers could end it
    /// in different places (see the module's doc), or its filtered data is broken.
    pub(super) fn byte(&mut self, b: u8) -> Result<bool, Refusal> {
        if self.kept.len() >= MAX_KEPT {
            return Err(super::unreadable(format!(
                "PDF inline image is over {} MiB: where its data ends cannot be checked",
                MAX_KEPT >> 20
            )));
        }
        self.kept.push(b);
        let n = self.kept.len();
        let (at, after) = match self.kept[n.saturating_sub(3)..] {
            [b'E', b'I', after] => (n - 3, after),
            _ => return Ok(false),
        };
        let white_before = at == 0 || is_white(self.kept[at - 1]);
        let scanned_end = white_before && (is_white(after) || is_delimiter(after));
        if matches!(self.measure, Measure::FirstEi) {
            return Ok(scanned_end);
        }
        // MuPDF's test of the EI that ends an image; Poppler takes any
        if !(after <= b' ' || after == b'<' || after == b'/') {
            return Ok(false);
        }
        // ID's white space: one byte, or CR LF (as MuPDF passes it over)
        let lead = match self.kept.as_slice() {
            [b'\r', b'\n', ..] => 2,
            [w, ..] if is_white(*w) => 1,
            _ => 0,
        }
        .min(at);
        let data_end = self.data_end(lead, at)?;
        let data = &self.kept[lead..at];
        match data_end {
            // inside the data: a reader that scans for EI between white space ends here
            None if scanned_end => Err(ambiguous(&format!(
                "{} bytes before it, {}",
                data.len(),
                self.measure.what()
            ))),
            None => Ok(false),
            Some(end) if data[end..].windows(2).any(|w| w == b"EI") => Err(ambiguous(
                "an `EI` that only some readers end the image at comes first, after its data",
            )),
            Some(_) => Ok(true),
        }
    }

    /// Where the data (`kept[lead..at]`) ends, if it ends within it: the offset in it.
    fn data_end(&mut self, lead: usize, at: usize) -> Result<Option<usize>, Refusal> {
        let data = &self.kept[lead..at];
        match &mut self.measure {
            Measure::FirstEi => Ok(Some(0)),
            Measure::Length(length) => Ok((*length <= data.len()).then_some(*length)),
            Measure::Jpeg(walk) => match walk.walk(data) {
                Walked::End(end) => Ok(Some(end)),
                Walked::More => Ok(None),
                // viewers' JPEG readers pass over what this walk does not: where they end
                // the data is not known
                Walked::Broken => Err(super::unreadable(
                    "PDF inline image's JPEG data does not follow JPEG's markers: where viewers end it cannot be told",
                )),
            },
            Measure::Decoded { filter, stage, fed } => {
                let from = (*fed).min(data.len());
                filters::run(stage, &data[from..], &mut |_| Ok(()))?;
                *fed = data.len();
                match stage.first().map(|s| s.stop) {
                    Some(Stop::Running) => Ok(None),
                    Some(Stop::Ended) => {
                        // the exact end: a fresh decoder fed what did not end it, then a
                        // byte at a time (once an image)
                        let Some(mut again) = Stage::chain(&[*filter]) else {
                            return Err(super::unreadable(
                                "PDF inline image's filter cannot be decoded again",
                            ));
                        };
                        filters::run(&mut again, &data[..from], &mut |_| Ok(()))?;
                        for (i, b) in data.iter().enumerate().skip(from) {
                            filters::run(&mut again, &[*b], &mut |_| Ok(()))?;
                            if again.first().is_none_or(|s| s.stop != Stop::Running) {
                                return Ok(Some(i + 1));
                            }
                        }
                        Ok(Some(data.len()))
                    }
                    _ => Err(super::unreadable(
                        "PDF inline image's filtered data is broken or too large: where it ends cannot be told",
                    )),
                }
            }
        }
    }
}

impl Measure {
    /// What the data's end is measured by, for a refusal's detail (English).
    fn what(&self) -> String {
        match self {
            Measure::Length(length) => {
                format!("{length} by its width, height, bits and colour space")
            }
            Measure::Decoded { .. } => "its filter's data has not ended".to_string(),
            Measure::Jpeg(_) => "the JPEG's markers do not reach its end".to_string(),
            Measure::FirstEi => String::new(),
        }
    }
}

/// The refusal of an image whose end readers could see in different places.
fn ambiguous(what: &str) -> Refusal {
    super::unreadable(format!(
        "PDF inline image has `EI` inside its data ({what}): viewers that read the data by its dictionary end it elsewhere, so the operators after it are read differently"
    ))
}

/// A walk of a JPEG's markers (ITU-T T.81 Annex B) to its end-of-image marker, resumed
/// where it stopped as more data comes: segments by their lengths, entropy-coded data to
/// the next marker that is not a restart (`FF 00` is a stuffed byte).
#[derive(Debug, Default, Clone, Copy)]
struct JpegWalk {
    /// Where the walk stands in the data: a marker's first `FF`, or inside entropy-coded
    /// data; 0 before the start-of-image marker is checked.
    at: usize,
    /// Inside entropy-coded data (after a start-of-scan segment).
    entropy: bool,
}

/// How far a [`JpegWalk`] got.
#[derive(Debug, PartialEq, Eq)]
enum Walked {
    /// The end-of-image marker ends at this offset.
    End(usize),
    /// The data ends first.
    More,
    /// Not a JPEG's markers.
    Broken,
}

impl JpegWalk {
    /// Walks `data` (the data so far: what was walked before and more) from where the walk
    /// stopped; each byte is passed over about once, whatever the number of calls.
    fn walk(&mut self, data: &[u8]) -> Walked {
        if self.at == 0 {
            if data.len() < 2 {
                return Walked::More;
            }
            if !data.starts_with(&[0xFF, 0xD8]) {
                return Walked::Broken;
            }
            self.at = 2;
        }
        loop {
            if self.entropy {
                let rest = data.get(self.at..).unwrap_or_default();
                let Some(ff) = memchr::memchr(0xFF, rest).map(|o| self.at + o) else {
                    self.at = data.len();
                    return Walked::More;
                };
                let Some(&next) = data.get(ff + 1) else {
                    self.at = ff;
                    return Walked::More;
                };
                match next {
                    0x00 | 0xD0..=0xD7 => self.at = ff + 2,
                    0xFF => self.at = ff + 1,
                    _ => {
                        self.at = ff;
                        self.entropy = false;
                    }
                }
                continue;
            }
            match data.get(self.at) {
                None => return Walked::More,
                Some(0xFF) => {}
                Some(_) => return Walked::Broken,
            }
            let mut i = self.at;
            while data.get(i) == Some(&0xFF) {
                i += 1;
            }
            let Some(&marker) = data.get(i) else {
                return Walked::More;
            };
            i += 1;
            match marker {
                0xD9 => return Walked::End(i),
                0xD0..=0xD7 | 0x01 => self.at = i,
                0xD8 => return Walked::Broken,
                _ => {
                    let (Some(&high), Some(&low)) = (data.get(i), data.get(i + 1)) else {
                        return Walked::More;
                    };
                    let length = usize::from(u16::from_be_bytes([high, low]));
                    if length < 2 {
                        return Walked::Broken;
                    }
                    if i + length > data.len() {
                        return Walked::More;
                    }
                    self.at = i + length;
                    self.entropy = marker == 0xDA;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Item::{Bool, Close, Name, Number, Open};

    /// Hands `after_id` (the bytes after `ID`, its white space first) to an image of
    /// `items`: how many it took before it ended, or `None` if it did not.
    fn ends(items: &[Item<'_>], after_id: &[u8]) -> Result<Option<usize>, Refusal> {
        let mut img = InlineImage::new(items)?;
        for (i, b) in after_id.iter().enumerate() {
            if img.byte(*b)? {
                return Ok(Some(i + 1));
            }
        }
        Ok(None)
    }

    /// `data` between `ID ` and ` EI `: whether the image ends at that `EI` (and no sooner).
    fn image(items: &[Item<'_>], data: &[u8]) -> Result<bool, Refusal> {
        let bytes = [b" ".as_slice(), data, b" EI "].concat();
        Ok(ends(items, &bytes)? == Some(bytes.len()))
    }

    const GRAY: [Item<'static>; 8] = [
        Name(b"W"),
        Number(4.0),
        Name(b"H"),
        Number(2.0),
        Name(b"BPC"),
        Number(8.0),
        Name(b"CS"),
        Name(b"G"),
    ];

    #[test]
    fn unfiltered_data_is_measured_by_width_height_bits_and_colour_space() {
        assert!(image(&GRAY, &[7; 8]).unwrap());
        // the white space before EI may be the data's last byte, as viewers read it
        assert!(image(&GRAY, &[7; 7]).unwrap());
        let short = image(&GRAY, &[7; 6]).unwrap_err();
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
        assert!(image(&rgb, &[1; 12]).unwrap());
        assert!(image(&rgb, &[1; 10]).is_err());
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
        assert!(image(&indexed, &[1; 3]).unwrap());
        assert!(image(&indexed, &[1; 1]).is_err());
        let mask = [
            Name(b"W"),
            Number(9.0),
            Name(b"H"),
            Number(2.0),
            Name(b"IM"),
            Bool(true),
        ];
        assert!(image(&mask, &[0; 4]).unwrap());
        assert!(image(&mask, &[0; 2]).is_err());
        // a key given twice (a nested dictionary's too) counts at its largest
        let twice = [GRAY.as_slice(), &[Name(b"H"), Number(3.0)]].concat();
        assert!(image(&twice, &[7; 8]).is_err());
        assert!(image(&twice, &[7; 12]).unwrap());
        // /IM true in a nested dictionary of an image described in full: both measures, the
        // larger counts; a second colour space counts at its most components
        let masked = [GRAY.as_slice(), &[Name(b"DP"), Name(b"IM"), Bool(true)]].concat();
        assert!(image(&masked, &[7; 6]).is_err());
        let spaces = [GRAY.as_slice(), &[Name(b"CS"), Name(b"CMYK")]].concat();
        assert!(image(&spaces, &[7; 30]).is_err());
        assert!(image(&spaces, &[7; 32]).unwrap());
        // a colour space MuPDF cannot make (its data then read as operators): refused
        for space in [
            [Name(b"CS"), Name(b"Indexed"), Item::Other],
            [Name(b"CS"), Open, Name(b"Separation")],
            [Name(b"CS"), Open, Name(b"ICCBased")],
        ] {
            let items = [&GRAY[..6], space.as_slice()].concat();
            let refused = InlineImage::new(&items).unwrap_err();
            assert!(
                refused.detail.contains("colour space"),
                "{}",
                refused.detail
            );
        }
        // nothing to measure by: refused, viewers cannot draw it
        let unmeasured = InlineImage::new(&[Name(b"W"), Number(2.0), Name(b"H"), Number(2.0)]);
        assert!(
            unmeasured
                .unwrap_err()
                .detail
                .contains("lacks a whole width")
        );
        // sizes viewers do not draw: a fraction, zero, 3 bits
        for (key, value) in [(b"W".as_slice(), 4.2), (b"H", 0.0), (b"BPC", 3.0)] {
            let mut items = GRAY.to_vec();
            items.extend([Name(key), Number(value)]);
            let at = items.iter().position(|i| *i == Name(key)).unwrap();
            items.drain(at..at + 2);
            assert!(InlineImage::new(&items).is_err(), "{key:?} {value}");
        }
    }

    /// MuPDF and Poppler read the data, then the next `EI`: one with no white space before
    /// it ends the image; one inside the data does not, and one between white space there
    /// is refused (a reader that scans for it ends there).
    #[test]
    fn the_ei_after_the_data_ends_it_wherever_it_stands() {
        // "AEI\n": one byte of data, then EI with nothing before it
        assert_eq!(ends(&GRAY, b" 1234567\x01EI\n").unwrap(), Some(12));
        assert_eq!(ends(&GRAY, b" 12345678EI/F1").unwrap(), Some(12));
        // within the data, an EI not between white space is data
        assert_eq!(ends(&GRAY, b" 1EI 5678 EI ").unwrap(), Some(13));
        // between white space: refused
        assert!(ends(&GRAY, b" 1 EI 678 EI ").is_err());
        // an EI only Poppler ends at (followed by `(`) before the one both end at: refused
        assert!(ends(&GRAY, b" 12345678 EI( EI ").is_err());
        // CR LF after ID is its white space
        assert_eq!(ends(&GRAY, b"\r\n12345678 EI ").unwrap(), Some(14));
    }

    #[test]
    fn filtered_data_must_have_ended_and_unknown_filters_are_refused() {
        let hex = [Name(b"F"), Name(b"AHx")];
        assert!(image(&hex, b"0102 03>").unwrap());
        assert_eq!(ends(&hex, b" 41>EI ").unwrap(), Some(7));
        assert!(image(&hex, b"0102 03").is_err());
        // an `I` in hex data is broken data: where viewers end it cannot be told
        assert!(ends(&hex, b" 41EI\n 42> EI ").is_err());
        let chain = [Name(b"F"), Open, Name(b"A85"), Name(b"Fl"), Close];
        assert!(image(&chain, b"87cUR~>").unwrap());
        assert!(image(&chain, b"87cUR").is_err());
        // the exact end: an `EI` right after `~>` that only Poppler ends at, then the real one
        assert!(ends(&chain, b" 87cUR~>EIx EI ").is_err());
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
        // a filter this reader never decodes: the first EI between white space
        let ccf = [Name(b"F"), Name(b"CCF")];
        assert_eq!(ends(&ccf, b" \x01EI \x02 EI ").unwrap(), Some(10));
    }

    /// The end of a JPEG walked in one go.
    fn jpeg_end(data: &[u8]) -> Option<usize> {
        match JpegWalk::default().walk(data) {
            Walked::End(end) => Some(end),
            _ => None,
        }
    }

    #[test]
    fn a_jpegs_markers_are_walked_to_its_end() {
        // SOI, APP0 (4 bytes), SOS (header of 2 bytes), entropy data with FF00 and RST0, EOI
        let jpeg: &[u8] =
            b"\xFF\xD8\xFF\xE0\x00\x04ab\xFF\xDA\x00\x02\x12\xFF\x00\x34\xFF\xD0\x56\xFF\xD9";
        assert_eq!(jpeg_end(jpeg), Some(jpeg.len()));
        let dct = [Name(b"F"), Name(b"DCT")];
        assert!(image(&dct, jpeg).unwrap());
        // an EI inside a comment segment: the walk ends before its EOI
        let inside: &[u8] = b"\xFF\xD8\xFF\xFE\x00\x10 EI /F2 12 Tf ";
        assert_eq!(jpeg_end(inside), None);
        assert!(image(&dct, inside).is_err());
        // bytes after the EOI that hold an EI only Poppler ends at
        let after = [jpeg, b" xEIx".as_slice()].concat();
        assert!(image(&dct, &after).is_err());
        assert_eq!(JpegWalk::default().walk(b"not a jpeg"), Walked::Broken);
        // walked a byte more at a time, it ends in the same place
        let mut walk = JpegWalk::default();
        let walked: Vec<Walked> = (0..=jpeg.len()).map(|n| walk.walk(&jpeg[..n])).collect();
        assert_eq!(walked[jpeg.len()], Walked::End(jpeg.len()));
        assert!(walked[..jpeg.len()].iter().all(|w| *w == Walked::More));
        // bytes between markers (which libjpeg passes over): refused, not waited past
        let junk = b" \xFF\xD8\xFF\xE0\x00\x04abjunk\xFF\xD9EI\n";
        let dct = [Name(b"F"), Name(b"DCT")];
        assert!(ends(&dct, junk).unwrap_err().detail.contains("JPEG"));
    }

    /// Data made of nothing but `EI` candidates (none between white space) is walked once:
    /// each candidate hands the measure only the bytes after the one before (quadratic
    /// work would not end within the test's time).
    #[test]
    fn many_ei_candidates_in_the_data_are_walked_once() {
        let candidates = |start: &[u8]| {
            let mut data = b" ".to_vec();
            data.extend_from_slice(start);
            data.extend(b"aEI/".iter().cycle().take(4 << 20));
            data
        };
        let dct = [Name(b"F"), Name(b"DCT")];
        assert_eq!(
            ends(&dct, &candidates(b"\xFF\xD8\xFF\xDA\x00\x02")).unwrap(),
            None
        );
        let a85 = [Name(b"F"), Name(b"A85")];
        assert_eq!(ends(&a85, &candidates(b"")).unwrap(), None);
        let huge = [
            Name(b"W"),
            Number(1e9),
            Name(b"H"),
            Number(1.0),
            Name(b"IM"),
            Bool(true),
        ];
        assert_eq!(ends(&huge, &candidates(b"")).unwrap(), None);
    }
}
