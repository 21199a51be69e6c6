//! What a stream dictionary says about its stream: an object stream, an image, a stream that
//! holds no page text, its direct /Length, and its filter chain with the parameters of each
//! filter (or why the chain cannot be followed).

use super::MAX_NAME;
use super::cmap::Parent;
use super::filters::{Filter, FilterKind, MAX_ROW, Predictor};
use super::objects::Value;

/// What a stream dictionary says about the stream.
#[derive(Debug)]
pub(super) struct StreamInfo {
    pub(super) object_stream: bool,
    /// Has /Subtype /Image.
    pub(super) image: bool,
    /// An image whose dictionary is well-formed: only /Subtype /Image, /Type absent or
    /// /XObject, a direct chain of known filters.
    pub(super) plain_image: bool,
    /// By its dictionary, a stream that holds no page text (a font program, metadata, an
    /// embedded file, an ICC profile, a function, a shading, a CMap): its text is still read,
    /// but only shown text makes a failure to decode it a refusal.
    pub(super) aside: bool,
    /// The direct /Length.
    pub(super) length: Option<usize>,
    /// The filter chain, or why it cannot be followed.
    pub(super) filters: Result<Vec<Filter>, String>,
    /// The direct /First of an object stream: where its first object starts.
    pub(super) first: Option<usize>,
    /// The /UseCMap of a CMap stream.
    pub(super) use_cmap: Option<Parent>,
}

/// The name a value is, if it is one.
fn name_of(value: &Value) -> Option<&[u8]> {
    match value {
        Value::Name(n) => Some(n),
        _ => None,
    }
}

/// The filter a /Filter name stands for, or what the name is when it is none this scanner
/// knows.
fn filter_kind(name: &[u8]) -> Result<FilterKind, String> {
    Ok(match name {
        b"FlateDecode" | b"Fl" => FilterKind::Flate,
        b"LZWDecode" | b"LZW" => FilterKind::Lzw,
        b"ASCIIHexDecode" | b"AHx" => FilterKind::AsciiHex,
        b"ASCII85Decode" | b"A85" => FilterKind::Ascii85,
        b"RunLengthDecode" | b"RL" => FilterKind::RunLength,
        b"DCTDecode" | b"DCT" | b"JPXDecode" | b"JBIG2Decode" | b"CCITTFaxDecode" | b"CCF" => {
            FilterKind::Image
        }
        other => {
            return Err(format!(
                "the /{} filter",
                String::from_utf8_lossy(&other[..other.len().min(MAX_NAME)])
            ));
        }
    })
}

/// The parameters of one filter from its /DecodeParms dictionary (or null).
fn filter_of(kind: FilterKind, parms: Option<&Value>) -> Result<Filter, String> {
    let mut filter = Filter {
        kind,
        predictor: None,
        early_change: true,
    };
    let entries = match parms {
        None | Some(Value::Null) => return Ok(filter),
        Some(Value::Dict(entries)) => entries,
        Some(Value::Ref(_)) => return Err("an indirect /DecodeParms".into()),
        Some(_) => return Err("a malformed /DecodeParms".into()),
    };
    let get = |key: &[u8], default: i64| -> Result<i64, String> {
        match entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v) {
            None => Ok(default),
            Some(Value::Int(n)) => Ok(*n),
            Some(Value::Ref(_)) => Err("an indirect decode parameter".into()),
            Some(_) => Err("a malformed decode parameter".into()),
        }
    };
    let predictor = get(b"Predictor", 1)?;
    let colors = get(b"Colors", 1)?;
    let bits = get(b"BitsPerComponent", 8)?;
    let columns = get(b"Columns", 1)?;
    filter.early_change = get(b"EarlyChange", 1)? != 0;
    if predictor <= 1 || !matches!(kind, FilterKind::Flate | FilterKind::Lzw) {
        return Ok(filter);
    }
    let supported = predictor == 2 && bits == 8 || (10..=15).contains(&predictor);
    if !supported
        || !(1..=32).contains(&colors)
        || !matches!(bits, 1 | 2 | 4 | 8 | 16)
        || columns < 1
    {
        return Err(format!(
            "predictor {predictor} ({colors} colours, {bits} bits)"
        ));
    }
    let bits_per_pixel = (colors * bits) as u64;
    let row = (columns as u64).saturating_mul(bits_per_pixel).div_ceil(8);
    if row > MAX_ROW as u64 {
        return Err(format!("a predictor row of {row} bytes"));
    }
    filter.predictor = Some(Predictor {
        kind: predictor,
        pixel: bits_per_pixel.div_ceil(8) as usize,
        row: row as usize,
    });
    Ok(filter)
}

/// The filter chain of a stream dictionary's entries.
fn filters_of(entries: &[(Vec<u8>, Value)]) -> Result<Vec<Filter>, String> {
    let all = |key: &[u8], short: &[u8]| -> Vec<&Value> {
        entries
            .iter()
            .filter(|(k, _)| k == key || k == short)
            .map(|(_, v)| v)
            .collect()
    };
    let filter = all(b"Filter", b"F");
    let parms = all(b"DecodeParms", b"DP");
    // /F is also a file specification (the data in another file): not decoded here.
    let filter: Vec<&Value> = filter
        .into_iter()
        .filter(|v| !matches!(v, Value::Str | Value::Dict(_)))
        .collect();
    if filter.len() > 1 || parms.len() > 1 {
        return Err("a duplicate /Filter or /DecodeParms".into());
    }
    let names: Vec<&[u8]> = match filter.first() {
        None => return Ok(Vec::new()),
        Some(Value::Name(n)) => vec![n.as_slice()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| name_of(v).ok_or_else(|| "a malformed /Filter".to_string()))
            .collect::<Result<_, _>>()?,
        Some(Value::Ref(_)) => return Err("an indirect /Filter".into()),
        Some(_) => return Err("a malformed /Filter".into()),
    };
    let parms = parms.first().copied();
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let p = match parms {
                Some(Value::Array(items)) => items.get(i),
                other => other,
            };
            filter_of(filter_kind(name)?, p)
        })
        .collect()
}

impl StreamInfo {
    /// What `dict` (the parsed stream dictionary, if it parsed) says.
    pub(super) fn of(dict: Option<&Value>) -> StreamInfo {
        let Some(Value::Dict(entries)) = dict else {
            return StreamInfo {
                object_stream: false,
                image: false,
                plain_image: false,
                aside: false,
                length: None,
                filters: Err("a stream dictionary that cannot be parsed".into()),
                first: None,
                use_cmap: None,
            };
        };
        let values = |key: &'static [u8]| {
            entries
                .iter()
                .filter(move |(k, _)| k == key)
                .map(|(_, v)| v)
        };
        let types: Vec<&Value> = values(b"Type").collect();
        let subtypes: Vec<&Value> = values(b"Subtype").collect();
        let is = |v: &&Value, n: &[u8]| name_of(v) == Some(n);
        let has = |key: &[u8]| entries.iter().any(|(k, _)| k == key);
        // A parser finds object streams through the cross-reference data and needs only
        // /N and /First: either makes an object stream here, whatever else it claims.
        let object_stream = types.iter().any(|v| is(v, b"ObjStm")) || (has(b"N") && has(b"First"));
        let xref = types.iter().any(|v| is(v, b"XRef"));
        let untyped = types.is_empty() && subtypes.is_empty();
        // A thumbnail is an image without /Type or /Subtype.
        let image = subtypes.iter().any(|v| is(v, b"Image"))
            || (untyped && has(b"Width") && has(b"Height"));
        let filters = filters_of(entries);
        let plain_image = image
            && !object_stream
            && !xref
            && types.iter().all(|v| is(v, b"XObject"))
            && !subtypes.is_empty()
            && subtypes.iter().all(|v| is(v, b"Image"))
            && filters.is_ok();
        let aside = xref
            || types
                .iter()
                .any(|v| is(v, b"Metadata") || is(v, b"EmbeddedFile") || is(v, b"CMap"))
            || subtypes.iter().any(|v| {
                is(v, b"XML") || is(v, b"Type1C") || is(v, b"CIDFontType0C") || is(v, b"OpenType")
            })
            || [
                &b"Length1"[..],
                b"Length2",
                b"Length3",
                b"N",
                b"FunctionType",
                b"ShadingType",
            ]
            .iter()
            .any(|key| has(key));
        let lengths: Vec<&Value> = values(b"Length").collect();
        let length = match lengths.as_slice() {
            [Value::Int(n)] => usize::try_from(*n).ok(),
            _ => None,
        };
        let first = match values(b"First").collect::<Vec<_>>().as_slice() {
            [Value::Int(n)] => usize::try_from(*n).ok(),
            _ => None,
        };
        let use_cmap = match values(b"UseCMap").next_back() {
            Some(Value::Ref(r)) => Some(Parent::Object(*r)),
            Some(Value::Name(n)) => Some(Parent::Name(n.clone())),
            _ => None,
        };
        StreamInfo {
            object_stream,
            image,
            plain_image,
            aside,
            length,
            filters,
            first,
            use_cmap,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{HIDDEN, catalog, deflate, pdf, reason};
    use crate::core::reason::Reason;

    #[test]
    fn object_streams_are_decoded_whatever_they_claim_to_be() {
        let packed = deflate(HIDDEN);
        for dict in [
            "<< /Subtype /Image /N 2 /First 8 /Filter /FlateDecode >>",
            "<< /Type /XObject /Subtype /Image /Width 9 /N 2 /First 8 /Filter /FlateDecode >>",
            "<< /Type /ObjStm /Subtype /Image /N 2 /First 8 /Filter /FlateDecode >>",
            "<< /Type /ObjStm /Type /XRef /N 2 /First 8 /Filter /FlateDecode >>",
            "<< /Type /XRef /Type /ObjStm /Subtype /Image /Filter /FlateDecode >>",
            "<< /Subtype /Image /Type /ObjStm /Width 1 /Height 1 /Filter /FlateDecode >>",
        ] {
            let doc = pdf(&[catalog(), (dict, Some(&packed))]);
            assert_eq!(
                reason(&doc, true, false),
                Some(Reason::ActiveContent),
                "{dict}"
            );
        }
    }
}
