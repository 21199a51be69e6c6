//! The fonts of one file and the text of the strings shown in them: what object dictionaries
//! say about fonts (resource names bound to font objects, /Encoding, /ToUnicode), the CMaps
//! read from streams, and the lines of text, decoded as soon as every font they use is known,
//! else kept (raw) until the end of the file.
//!
//! ```text
//!  object dictionaries ─► /Font << /F1 5 0 R >> ─► bindings  /F1 → {5}
//!                      └► font 5: Type0 /Identity-H /ToUnicode 8 ─► fonts
//!  CMap streams ─► cmaps (8)
//!  a line of runs (/F1, raw bytes) ─► every font known? ─► decode ─► sink
//!                                           └ no ─► kept, raw, decoded at the end of file
//! ```
//!
//! Fonts and CMaps may come before or after the pages that use them (one pass, no seeking):
//! a line of text whose fonts are not all known yet is kept as raw string bytes, up to
//! `MAX_DEFERRED` bytes for the whole file, and decoded at the end; past that cap the PDF is
//! refused (ContentUnreadable), never passed. Fonts are found by their resource name through
//! every `/Font` resource dictionary of the file, not page by page: a name bound to several
//! fonts (different pages reusing `/F1`) gives one reading of the line per font (up to
//! `MAX_BINDINGS`), each handed to the sink. A line decoded before a later page binds its name
//! to another font is not read again with that font. A name never bound to any font (a broken
//! file) is read as a viewer falls back: Latin-1, or UTF-16BE after a byte-order mark.
//! Text shown before any Tf of its stream (a Form XObject, or a page's later content
//! stream, inherits the font in force where it is drawn) is read as that fallback and also
//! in every font some Tf of the file selects or an ExtGState's /Font sets (up to
//! `MAX_INHERITED`, else refused), each beside every reading of the line's named runs: such
//! a line waits for the end of the file, when all of them are known. A font it may inherit
//! that no map reads refuses it.
//! Text in a font no map lets one read (a CID font with Identity-H and no /ToUnicode, a
//! simple font whose /Differences names mostly glyphs the glyph list does not know, a Type3
//! font without /Encoding) is refused, naming the font; a code one map leaves unread among
//! others it reads is U+FFFD. Other caps: `MAX_FONTS` summaries, `MAX_NAMES` resource names,
//! `cmap::MAX_CMAP_ENTRIES` mappings; a font lost to a cap is unreadable when used. The
//! direct code tables CMaps are read through are capped at `cmap::MAX_DENSE_CODES`
//! entries for the file: past it a CMap is read through its ranges, to the same text.

use super::cmap::{CMap, Code, MAX_CMAP_ENTRIES, MAX_DENSE_CODES, Parent, Predefined};
use super::encoding::{Base, Difference, SimpleEncoding};
use super::objects::Value;
use super::unreadable;
use crate::content::LineSink;
use crate::core::reason::Refusal;
use std::collections::{HashMap, HashSet};

/// Raw bytes of text kept until the end of the file, for lines whose fonts came later.
pub(super) const MAX_DEFERRED: usize = 16 << 20;

/// Font, encoding and font-map dictionaries summarised.
const MAX_FONTS: usize = 16 * 1024;

/// Entries of dictionaries of references kept as possible /Font maps.
const MAX_REF_ENTRIES: usize = 64 * 1024;

/// Distinct font resource names (`/F1`) followed.
pub(super) const MAX_NAMES: usize = 4096;

/// Fonts one resource name may be bound to (one reading of a line each).
const MAX_BINDINGS: usize = 32;

/// Longest piece of a line of text handed to the sink at once, in bytes of UTF-8.
pub(super) const MAX_LINE: usize = 64 * 1024;

/// Characters a cut piece of a line carries into the next, so that no match is split.
pub(super) const OVERLAP: usize = 256;

/// Bytes of text kept from each end of a content stream's text, to be read across the
/// streams of one page ([`Edges`]): more than any rule's match, in two-byte codes.
const JOIN_BYTES: usize = 256;

/// Content streams whose ends are kept, at most; past it, a page that lists a stream whose
/// ends were not kept is refused as unreadable.
const MAX_EDGES: usize = 16 * 1024;

/// References in pages' /Contents arrays kept, at most; past it the file is refused as
/// unreadable (a page of several streams could not be kept).
const MAX_CONTENTS_REFS: usize = 1 << 20;

/// References in array objects kept, at most (any of which may be a page's /Contents);
/// past it, a page whose /Contents names an array not kept is refused as unreadable.
const MAX_ARRAY_REFS: usize = 1 << 20;

/// The run of a line shown in no font (before any Tf).
pub(super) const NO_FONT: u32 = u32::MAX;

/// Fonts a run shown in no font of its own is read in, at most (each a reading of its
/// line): past it, the line is refused as unreadable.
const MAX_INHERITED: usize = 1024;

/// Work of reading lines in the fonts text shown in no font may inherit, at most, for the
/// file: each such line's readings times its length plus `READING_COST`. Past it, refused
/// as unreadable.
const INHERITED_WORK: usize = 128 << 20;

/// What one reading of a line costs beside its bytes (its buffers, its readers), in the
/// units of `INHERITED_WORK`: a file of many short lines is bounded as one of long ones.
const READING_COST: usize = 64;

/// Tags of the records of a line (see `Line`).
pub(super) const RUN: u8 = 0;
pub(super) const SPACE: u8 = 1;
const END: u8 = 2;

/// A font: an object number, or an inline font dictionary (numbered past `u32::MAX`).
type FontId = u64;

/// The /Encoding of a simple font.
#[derive(Debug, Clone)]
enum SimpleEnc {
    None,
    Named(Base),
    Object(u32),
    Inline(SimpleEncoding),
}

/// The /Encoding of a composite (Type0) font.
#[derive(Debug, Clone)]
enum CidEnc {
    Predefined(Predefined),
    /// A predefined CMap whose codes are not text (another character collection).
    Other(String),
    Embedded(u32),
    None,
}

#[derive(Debug, Clone)]
enum Kind {
    Composite(CidEnc),
    Simple(SimpleEnc),
    Type3(SimpleEnc),
}

/// What a font dictionary says, as far as its text is read.
#[derive(Debug, Clone)]
struct Font {
    kind: Kind,
    to_unicode: Option<u32>,
}

/// How one font's strings are read, once all it refers to is known.
enum Reader<'a> {
    /// Something it refers to has not been read yet.
    Pending,
    /// No map lets its text be read: why.
    Unreadable(String),
    /// Latin-1, or UTF-16BE after a byte-order mark (no font, or a font never defined).
    Fallback,
    Composite {
        split: Split<'a>,
        map: Vec<&'a CMap>,
        direct: Option<Predefined>,
    },
    Simple {
        map: Vec<&'a CMap>,
        encoding: SimpleEncoding,
        /// Most glyph names are not known: a code named by an unknown one is unreadable
        /// (else it reads as U+FFFD).
        custom: bool,
    },
}

/// How a composite font's strings split into codes.
enum Split<'a> {
    Predefined(Predefined),
    Embedded(&'a CMap),
}

/// The fonts of one file, and the lines of text waiting for theirs.
#[derive(Debug, Default)]
pub(super) struct Fonts {
    fonts: HashMap<FontId, Font>,
    encodings: HashMap<u32, SimpleEncoding>,
    cmaps: HashMap<u32, CMap>,
    cmap_room: usize,
    /// Room left for the CMaps' direct tables (entries).
    dense_room: usize,
    names: Vec<Vec<u8>>,
    names_index: HashMap<Vec<u8>, u32>,
    bindings: Vec<Vec<FontId>>,
    /// A name bound to more fonts than `MAX_BINDINGS`.
    crowded: Vec<bool>,
    /// A name some Tf selects: text shown in no font may inherit its fonts.
    selected: Vec<bool>,
    /// Fonts an ExtGState's /Font entry sets (`gs`): text shown in no font may be in them.
    state_fonts: Vec<FontId>,
    /// Work done so far reading in inherited fonts (see `INHERITED_WORK`).
    inherited_work: std::cell::Cell<usize>,
    /// [`Fonts::inherited`] once the file has ended (nothing binds or selects a font after).
    inherited_at_end: std::cell::OnceCell<Result<Vec<(u32, FontId)>, Refusal>>,
    /// Dictionaries of names and references, any of which may be a /Font map met later.
    ref_dicts: HashMap<u32, Vec<(Vec<u8>, u32)>>,
    /// Entries in `ref_dicts`.
    ref_entries: usize,
    /// A dictionary was not kept in `ref_dicts` for want of room.
    ref_dicts_full: bool,
    /// /Font maps given by reference and not read yet.
    wanted_maps: HashSet<u32>,
    /// Embedded CMaps by their /CMapName.
    cmap_names: HashMap<Vec<u8>, u32>,
    summaries: usize,
    next_inline: FontId,
    deferred: Vec<u8>,
    /// Some object could not be summarised (too long, a cap): a font may be unknown.
    pub(super) lost: bool,
    /// The end of the file has been reached: nothing more will come.
    ended: bool,
    /// The ends of the text of content streams, by object number.
    edges: HashMap<u32, Edges>,
    /// Streams with text whose ends were not kept for want of room.
    edges_dropped: HashSet<u32>,
    /// The /Contents of pages that may show several streams.
    contents: Vec<Contents>,
    /// References kept in `contents`.
    contents_refs: usize,
    /// A page's /Contents was not kept for want of room.
    contents_full: bool,
    /// Arrays of references by object number (a /Contents given by reference).
    ref_arrays: HashMap<u32, Vec<u32>>,
    /// References kept in `ref_arrays`.
    array_refs: usize,
    /// Array objects not kept (for want of room, or too long to capture).
    arrays_dropped: HashSet<u32>,
}

/// The object numbers of the references in an array, in order (anything else in it, a
/// `null` say, shows nothing and is passed over); `None` when it holds no reference.
fn refs_of(items: &[Value]) -> Option<Vec<u32>> {
    let refs: Vec<u32> = items
        .iter()
        .filter_map(|v| match v {
            Value::Ref(r) => Some(*r),
            _ => None,
        })
        .collect();
    (!refs.is_empty()).then_some(refs)
}

fn get<'v>(entries: &'v [(Vec<u8>, Value)], key: &[u8]) -> Option<&'v Value> {
    entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn name(value: Option<&Value>) -> Option<&[u8]> {
    match value {
        Some(Value::Name(n)) => Some(n),
        _ => None,
    }
}

fn simple_encoding(entries: &[(Vec<u8>, Value)]) -> SimpleEncoding {
    let base = name(get(entries, b"BaseEncoding"))
        .and_then(Base::of)
        .unwrap_or(Base::Standard);
    let differences = match get(entries, b"Differences") {
        Some(Value::Array(items)) => {
            SimpleEncoding::differences(items.iter().filter_map(|v| match v {
                Value::Int(n) => Some(Difference::Code(*n)),
                Value::Name(n) => Some(Difference::Name(n)),
                _ => None,
            }))
        }
        _ => Vec::new(),
    };
    SimpleEncoding { base, differences }
}

fn is_font(entries: &[(Vec<u8>, Value)]) -> bool {
    name(get(entries, b"Type")) == Some(b"Font")
        || matches!(
            name(get(entries, b"Subtype")),
            Some(b"Type0" | b"Type1" | b"MMType1" | b"TrueType" | b"Type3")
        )
}

fn font_of(entries: &[(Vec<u8>, Value)]) -> Font {
    let encoding = get(entries, b"Encoding");
    let simple = || match encoding {
        Some(Value::Name(n)) => Base::of(n).map_or(SimpleEnc::None, SimpleEnc::Named),
        Some(Value::Ref(r)) => SimpleEnc::Object(*r),
        Some(Value::Dict(d)) => SimpleEnc::Inline(simple_encoding(d)),
        _ => SimpleEnc::None,
    };
    let kind = match name(get(entries, b"Subtype")) {
        Some(b"Type0") => Kind::Composite(match encoding {
            Some(Value::Name(n)) => match Predefined::of(n) {
                Some(p) => CidEnc::Predefined(p),
                None => CidEnc::Other(String::from_utf8_lossy(n).into_owned()),
            },
            Some(Value::Ref(r)) => CidEnc::Embedded(*r),
            _ => CidEnc::None,
        }),
        Some(b"Type3") => Kind::Type3(simple()),
        _ => Kind::Simple(simple()),
    };
    let to_unicode = match get(entries, b"ToUnicode") {
        Some(Value::Ref(r)) => Some(*r),
        _ => None,
    };
    Font { kind, to_unicode }
}

/// Latin-1, or UTF-16BE after a byte-order mark.
fn fallback_text(s: &[u8], out: &mut String) {
    if let Some(utf16) = s.strip_prefix(&[0xfe, 0xff]) {
        let units = utf16
            .chunks(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]));
        out.extend(char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)));
    } else {
        out.extend(s.iter().map(|&b| char::from(b)));
    }
}

/// One record of a line: a run of a string's raw bytes shown in a font, or a space.
#[derive(Clone, Copy)]
enum Record<'l> {
    Run(u32, &'l [u8]),
    Space,
}

/// The records of a line: `RUN`, name id (u32 LE), length (u32 LE), bytes; or `SPACE`.
fn records(line: &[u8]) -> impl Iterator<Item = (usize, Record<'_>)> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let start = at;
        match *line.get(at)? {
            RUN => {
                let id = u32::from_le_bytes(line.get(at + 1..at + 5)?.try_into().ok()?);
                let len = u32::from_le_bytes(line.get(at + 5..at + 9)?.try_into().ok()?) as usize;
                let bytes = line.get(at + 9..at + 9 + len)?;
                at += 9 + len;
                Some((start, Record::Run(id, bytes)))
            }
            _ => {
                at += 1;
                Some((start, Record::Space))
            }
        }
    })
}

/// Appends a run record to a line.
pub(super) fn push_run(line: &mut Vec<u8>, font: u32, bytes: &[u8]) {
    line.push(RUN);
    line.extend_from_slice(&font.to_le_bytes());
    line.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    line.extend_from_slice(bytes);
}

/// Appends a record to a line.
fn push_record(line: &mut Vec<u8>, r: Record<'_>) {
    match r {
        Record::Run(font, b) => push_run(line, font, b),
        Record::Space => line.push(SPACE),
    }
}

/// The first `bytes` bytes of text of a line (records), a run cut to fit (at an even
/// length, which keeps two-byte codes whole); and whether that is the whole line.
fn clip_head(line: &[u8], bytes: usize) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut held = 0;
    for (_, r) in records(line) {
        if held >= bytes {
            return (out, false);
        }
        if let Record::Run(font, b) = r
            && b.len() > bytes - held
        {
            let room = bytes - held;
            push_run(&mut out, font, &b[..(room + (room & 1)).min(b.len())]);
            return (out, false);
        }
        held += match r {
            Record::Run(_, b) => b.len(),
            Record::Space => 1,
        };
        push_record(&mut out, r);
    }
    (out, true)
}

/// The last `bytes` bytes of text of a line (records), a run cut to fit at an even length.
fn clip_tail(line: &[u8], bytes: usize) -> Vec<u8> {
    let recs: Vec<Record<'_>> = records(line).map(|(_, r)| r).collect();
    let mut held = 0;
    let mut from = recs.len();
    let mut cut = None;
    while from > 0 && held < bytes {
        match recs[from - 1] {
            Record::Run(font, b) if b.len() > bytes - held => {
                let room = bytes - held;
                cut = Some((font, &b[b.len() - (room + (room & 1)).min(b.len())..]));
                break;
            }
            Record::Run(_, b) => held += b.len(),
            Record::Space => held += 1,
        }
        from -= 1;
    }
    let mut out = Vec::new();
    if let Some((font, b)) = cut {
        push_run(&mut out, font, b);
    }
    for &r in &recs[from..] {
        push_record(&mut out, r);
    }
    out
}

/// The two ends of a content stream's text (records, see [`push_run`]). A page whose
/// /Contents is an array shows its streams as one (ISO 32000-1 §7.8.2): a line cut where
/// one stream ends goes on where the next begins, so the ends of consecutive streams are
/// read together at the end of the file ([`Fonts::finish`]).
#[derive(Debug, Default, Clone)]
pub(super) struct Edges {
    /// The first [`JOIN_BYTES`] bytes of text of its first line (all of it when shorter).
    head: Vec<u8>,
    /// The last [`JOIN_BYTES`] bytes of text of its last line.
    tail: Vec<u8>,
    /// Lines handed on (each piece of a cut line counts).
    lines: u32,
    /// Its only line is held whole in `head`.
    whole: bool,
}

impl Edges {
    /// Notes a line (records) the stream hands on, in order.
    pub(super) fn note(&mut self, line: &[u8]) {
        if line.is_empty() {
            return;
        }
        if self.lines == 0 {
            (self.head, self.whole) = clip_head(line, JOIN_BYTES);
        } else {
            self.whole = false;
        }
        self.tail = clip_tail(line, JOIN_BYTES);
        self.lines = self.lines.saturating_add(1);
    }
}

/// A page's /Contents, where it may be several streams.
#[derive(Debug, Clone)]
enum Contents {
    /// An array of references, in the page's order.
    Streams(Vec<u32>),
    /// A reference to an object that may be such an array.
    Indirect(u32),
}

/// Where the last records of a line, holding at least `bytes` bytes of text, start.
pub(super) fn tail_from(line: &[u8], bytes: usize) -> usize {
    let starts: Vec<(usize, usize)> = records(line)
        .map(|(at, r)| {
            (
                at,
                match r {
                    Record::Run(_, b) => b.len(),
                    Record::Space => 1,
                },
            )
        })
        .collect();
    let mut held = 0;
    for &(at, len) in starts.iter().rev() {
        held += len;
        if held >= bytes {
            return at;
        }
    }
    0
}

/// Hands `text` to the sink in pieces of at most `MAX_LINE` bytes that overlap by `OVERLAP`
/// characters; control characters dropped, a blank text not handed on.
fn emit(text: &str, sink: &mut LineSink<'_>) -> Result<(), Refusal> {
    if text.trim().is_empty() {
        return Ok(());
    }
    // the usual line: short enough, nothing to drop
    if text.len() <= MAX_LINE && !text.chars().any(char::is_control) {
        return sink(text);
    }
    let mut piece = String::new();
    for c in text.chars().filter(|c| !c.is_control()) {
        if piece.len() + c.len_utf8() > MAX_LINE {
            sink(&piece)?;
            let keep = piece
                .char_indices()
                .rev()
                .nth(OVERLAP - 1)
                .map_or(0, |(at, _)| at);
            piece.drain(..keep);
        }
        piece.push(c);
    }
    if !piece.trim().is_empty() {
        sink(&piece)?;
    }
    Ok(())
}

impl Fonts {
    pub(super) fn new() -> Fonts {
        Fonts {
            cmap_room: MAX_CMAP_ENTRIES,
            dense_room: MAX_DENSE_CODES,
            next_inline: 1 << 32,
            ..Fonts::default()
        }
    }

    /// The id of a font resource name; None past `MAX_NAMES` names.
    pub(super) fn intern(&mut self, name: &[u8]) -> Option<u32> {
        if let Some(&id) = self.names_index.get(name) {
            return Some(id);
        }
        if self.names.len() >= MAX_NAMES {
            return None;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_vec());
        self.names_index.insert(name.to_vec(), id);
        self.bindings.push(Vec::new());
        self.crowded.push(false);
        self.selected.push(false);
        Some(id)
    }

    /// [`Fonts::intern`] of the name a Tf selects: the fonts it stands for are also those
    /// that text shown in no font may be in.
    pub(super) fn intern_selected(&mut self, name: &[u8]) -> Option<u32> {
        let id = self.intern(name)?;
        if let Some(s) = self.selected.get_mut(id as usize) {
            *s = true;
        }
        Some(id)
    }

    /// The fonts text shown in no font of its own may inherit: every font of every name a
    /// Tf selects, each with a name that stands for it (for the refusal's words).
    ///
    /// # Errors
    /// More than `MAX_INHERITED` of them, or a name that stands for more fonts than were
    /// kept: the text cannot be read in all of them.
    fn inherited(&self) -> Result<Vec<(u32, FontId)>, Refusal> {
        let too_many = || {
            unreadable(format!(
                "PDF shows text in no font of its own, in a file whose Tf select or ExtGStates set more than {MAX_INHERITED} fonts it may inherit: its text cannot be read"
            ))
        };
        let mut out: Vec<(u32, FontId)> = Vec::new();
        let mut seen: HashSet<FontId> = HashSet::new();
        for (id, _) in self.selected.iter().enumerate().filter(|(_, s)| **s) {
            if self.crowded.get(id) == Some(&true) {
                return Err(unreadable(format!(
                    "PDF shows text in no font of its own, and font name /{} it may inherit stands for more than {MAX_BINDINGS} fonts: its text cannot be read",
                    self.label(id as u32)
                )));
            }
            for &f in self.bindings.get(id).map_or(&[][..], Vec::as_slice) {
                if seen.insert(f) {
                    out.push((id as u32, f));
                }
            }
            if out.len() > MAX_INHERITED {
                return Err(too_many());
            }
        }
        for &f in &self.state_fonts {
            if seen.insert(f) {
                out.push((NO_FONT, f));
            }
        }
        if out.len() > MAX_INHERITED {
            return Err(too_many());
        }
        Ok(out)
    }

    fn bind(&mut self, name: &[u8], font: FontId) {
        let Some(id) = self.intern(name) else {
            self.lost = true;
            return;
        };
        let id = id as usize;
        let (Some(list), Some(crowded)) = (self.bindings.get_mut(id), self.crowded.get_mut(id))
        else {
            return;
        };
        if list.contains(&font) {
            return;
        }
        if list.len() >= MAX_BINDINGS {
            *crowded = true;
        } else {
            list.push(font);
        }
    }

    fn room(&mut self) -> bool {
        if self.summaries >= MAX_FONTS {
            self.lost = true;
            return false;
        }
        self.summaries += 1;
        true
    }

    /// Takes what the dictionary of object `num` says about fonts; `stream` when it is a
    /// stream's dictionary (no font, encoding or font map, but maybe resources).
    pub(super) fn object(&mut self, num: Option<u32>, value: &Value, stream: bool) {
        self.walk(value, 0);
        // an array object of references and other plain items: maybe a page's /Contents
        if let (Some(num), Value::Array(items), false) = (num, value, stream)
            && !items
                .iter()
                .any(|v| matches!(v, Value::Array(_) | Value::Dict(_)))
            && let Some(refs) = refs_of(items).filter(|r| r.len() > 1)
        {
            if self.array_refs + refs.len() > MAX_ARRAY_REFS {
                self.arrays_dropped.insert(num);
            } else {
                self.array_refs += refs.len();
                self.ref_arrays.insert(num, refs);
            }
        }
        let (Some(num), Value::Dict(entries), false) = (num, value, stream) else {
            return;
        };
        match get(entries, b"Contents") {
            Some(Value::Array(items)) => {
                if let Some(refs) = refs_of(items).filter(|r| r.len() > 1)
                    && self.contents_room(refs.len())
                {
                    self.contents.push(Contents::Streams(refs));
                }
            }
            Some(Value::Ref(r)) if self.contents_room(1) => {
                self.contents.push(Contents::Indirect(*r));
            }
            _ => {}
        }
        let encoding = name(get(entries, b"Type")) == Some(b"Encoding")
            || get(entries, b"Differences").is_some();
        if is_font(entries) && self.room() {
            self.fonts.insert(u64::from(num), font_of(entries));
        } else if !is_font(entries) && encoding && self.room() {
            self.encodings.insert(num, simple_encoding(entries));
        }
        let refs: Vec<(Vec<u8>, u32)> = entries
            .iter()
            .filter_map(|(k, v)| match v {
                Value::Ref(r) => Some((k.clone(), *r)),
                _ => None,
            })
            .collect();
        if refs.is_empty() || refs.len() != entries.len() {
            return;
        }
        if self.wanted_maps.remove(&num) {
            for (k, r) in refs {
                self.bind(&k, u64::from(r));
            }
        } else if self.ref_entries + refs.len() <= MAX_REF_ENTRIES {
            self.ref_entries += refs.len();
            self.ref_dicts.insert(num, refs);
        } else {
            self.ref_dicts_full = true;
        }
    }

    /// Finds /Font resource maps anywhere in a value.
    fn walk(&mut self, value: &Value, depth: usize) {
        if depth > super::MAX_NESTING {
            return;
        }
        match value {
            Value::Array(items) => items.iter().for_each(|v| self.walk(v, depth + 1)),
            Value::Dict(entries) => {
                for (k, v) in entries {
                    if k == b"Font" {
                        self.font_map(v);
                    }
                    self.walk(v, depth + 1);
                }
            }
            _ => {}
        }
    }

    fn font_map(&mut self, value: &Value) {
        match value {
            // an ExtGState's /Font [font size] (ISO 32000-1 §8.4.5)
            Value::Array(items) => {
                if let Some(Value::Ref(r)) = items.first() {
                    let font = u64::from(*r);
                    if !self.state_fonts.contains(&font) && self.state_fonts.len() <= MAX_INHERITED
                    {
                        self.state_fonts.push(font);
                    }
                }
            }
            Value::Dict(map) => {
                for (k, v) in map {
                    match v {
                        Value::Ref(r) => self.bind(k, u64::from(*r)),
                        Value::Dict(d) if is_font(d) && self.room() => {
                            let id = self.next_inline;
                            self.next_inline += 1;
                            self.fonts.insert(id, font_of(d));
                            self.bind(k, id);
                        }
                        _ => {}
                    }
                }
            }
            Value::Ref(r) => {
                if let Some(refs) = self.ref_dicts.get(r).cloned() {
                    for (k, f) in refs {
                        self.bind(&k, u64::from(f));
                    }
                } else if self.wanted_maps.len() < MAX_FONTS {
                    self.wanted_maps.insert(*r);
                } else {
                    self.lost = true;
                }
            }
            _ => {}
        }
    }

    /// Room left for CMap mappings.
    pub(super) fn cmap_room(&mut self) -> &mut usize {
        &mut self.cmap_room
    }

    /// Keeps the CMap read from stream object `num`.
    pub(super) fn add_cmap(&mut self, num: u32, mut cmap: CMap) {
        cmap.seal(&mut self.dense_room);
        if !cmap.is_empty() {
            if let Some(name) = &cmap.name {
                self.cmap_names.insert(name.clone(), num);
            }
            self.cmaps.insert(num, cmap);
        }
    }

    /// A CMap and its parents (at most four levels).
    fn chain(&self, num: u32) -> Vec<&CMap> {
        let mut out: Vec<&CMap> = Vec::new();
        let mut next = self.cmaps.get(&num);
        while let Some(cmap) = next {
            if out.len() >= 4 {
                break;
            }
            out.push(cmap);
            next = match &cmap.parent {
                Some(Parent::Object(n)) => self.cmaps.get(n),
                Some(Parent::Name(want)) => {
                    self.cmap_names.get(want).and_then(|n| self.cmaps.get(n))
                }
                None => None,
            };
        }
        out
    }

    /// The predefined CMap a CMap chain ends in (`/UniGB-UCS2-H usecmap`), if any.
    fn chain_predefined(chain: &[&CMap]) -> Option<Predefined> {
        match chain.last().and_then(|c| c.parent.as_ref()) {
            Some(Parent::Name(n)) => Predefined::of(n),
            _ => None,
        }
    }

    /// How font `id` is read.
    fn reader(&self, id: FontId) -> Reader<'_> {
        let Some(font) = self.fonts.get(&id) else {
            return if !self.ended {
                Reader::Pending
            } else if self.lost {
                Reader::Unreadable("its font dictionary could not be read".into())
            } else {
                Reader::Fallback
            };
        };
        // The /ToUnicode map, once its stream has been read; an unusable one counts as none.
        let map = match font.to_unicode {
            Some(r) if !self.cmaps.contains_key(&r) && !self.ended => return Reader::Pending,
            Some(r) => {
                let chain = self.chain(r);
                if chain.iter().any(|c| c.overflow) {
                    return Reader::Unreadable("its /ToUnicode map is too large".into());
                }
                if chain.iter().any(|c| c.maps()) {
                    chain
                } else {
                    Vec::new()
                }
            }
            None => Vec::new(),
        };
        match &font.kind {
            Kind::Composite(enc) => {
                let (split, direct, label) = match enc {
                    CidEnc::Predefined(p) => (Some(Split::Predefined(*p)), Some(*p), None),
                    CidEnc::Embedded(r) => match self.cmaps.get(r) {
                        None if !self.ended => return Reader::Pending,
                        Some(c) if c.has_spaces() => {
                            let chain = self.chain(*r);
                            let direct = Self::chain_predefined(&chain);
                            (Some(Split::Embedded(c)), direct, Some("an embedded CMap"))
                        }
                        _ => (None, None, Some("an embedded CMap")),
                    },
                    CidEnc::Other(_) | CidEnc::None => (None, None, None),
                };
                let direct = direct.filter(|p| *p != Predefined::Identity);
                if map.is_empty() && direct.is_none() {
                    let what = match (enc, label) {
                        (CidEnc::Predefined(_), _) => "Identity-H".to_string(),
                        (CidEnc::Other(n), _) => n.clone(),
                        (_, Some(l)) => l.to_string(),
                        _ => "no /Encoding".to_string(),
                    };
                    return Reader::Unreadable(format!("{what}, no /ToUnicode"));
                }
                let split = split.unwrap_or(match map.iter().find(|c| c.has_spaces()) {
                    Some(c) => Split::Embedded(c),
                    None => Split::Predefined(Predefined::Identity),
                });
                Reader::Composite { split, map, direct }
            }
            Kind::Simple(enc) | Kind::Type3(enc) => {
                let encoding = match enc {
                    SimpleEnc::Object(r) => match self.encodings.get(r) {
                        Some(e) => e.clone(),
                        None if !self.ended => return Reader::Pending,
                        None => SimpleEncoding {
                            base: Base::Standard,
                            differences: Vec::new(),
                        },
                    },
                    SimpleEnc::Inline(e) => e.clone(),
                    SimpleEnc::Named(b) => SimpleEncoding {
                        base: *b,
                        differences: Vec::new(),
                    },
                    SimpleEnc::None => {
                        if matches!(font.kind, Kind::Type3(_)) && map.is_empty() {
                            return Reader::Unreadable("Type3, no /Encoding".into());
                        }
                        SimpleEncoding {
                            base: Base::Standard,
                            differences: Vec::new(),
                        }
                    }
                };
                let custom = encoding.custom();
                Reader::Simple {
                    map,
                    encoding,
                    custom,
                }
            }
        }
    }

    /// Whether every font the runs of `line` name is known now.
    fn ready(&self, line: &[u8]) -> bool {
        if !self.wanted_maps.is_empty() {
            return false;
        }
        // text shown in no font may be in any font a Tf selects, known only at the end
        if records(line).any(|(_, r)| matches!(r, Record::Run(NO_FONT, _))) {
            return false;
        }
        let mut ids: Vec<u32> = records(line)
            .filter_map(|(_, r)| match r {
                Record::Run(id, _) if id != NO_FONT => Some(id),
                _ => None,
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.iter().all(|&id| match self.bindings.get(id as usize) {
            Some(fonts) if !fonts.is_empty() => fonts
                .iter()
                .all(|&f| !matches!(self.reader(f), Reader::Pending)),
            _ => false,
        })
    }

    /// The text of one run through `reader`; Err with why when it cannot be read.
    fn decode(reader: &Reader<'_>, s: &[u8], out: &mut String) -> Result<(), String> {
        let lookup = |map: &[&CMap], code: Code, out: &mut String| {
            map.iter().any(|c| c.lookup_into(code, out))
        };
        match reader {
            Reader::Pending | Reader::Fallback => fallback_text(s, out),
            Reader::Unreadable(why) => return Err(why.clone()),
            Reader::Composite { split, map, direct } => {
                let mut at = 0;
                while at < s.len() {
                    let rest = &s[at..];
                    let (code, len) = match split {
                        Split::Predefined(p) => p.next_code(rest),
                        Split::Embedded(c) => c.next_code(rest),
                    };
                    let bytes = &rest[..len.min(rest.len())];
                    at += len.max(1);
                    if !lookup(map, code, out) {
                        match direct.and_then(|p| p.text(bytes)) {
                            Some(text) => out.push_str(&text),
                            None => out.push(char::REPLACEMENT_CHARACTER),
                        }
                    }
                }
            }
            Reader::Simple {
                map,
                encoding,
                custom,
            } => {
                for &b in s {
                    if lookup(map, (1, u32::from(b)), out) {
                    } else if encoding.char(b, out).is_err() {
                        if *custom {
                            return Err(
                                "glyph names the glyph list does not know, no /ToUnicode".into()
                            );
                        }
                        out.push(char::REPLACEMENT_CHARACTER);
                    }
                }
            }
        }
        Ok(())
    }

    fn label(&self, id: u32) -> String {
        let n = self
            .names
            .get(id as usize)
            .map_or(&[][..], |n| n.as_slice());
        String::from_utf8_lossy(&n[..n.len().min(super::MAX_NAME)]).into_owned()
    }

    /// Decodes a line in every reading its names allow and hands each to the sink. A run
    /// shown in no font is read as the fallback, then in each font it may inherit
    /// ([`Fonts::inherited`]), each of these with every reading of the named runs beside
    /// it (their product, within `INHERITED_WORK` bytes read for the file).
    fn read_line(&self, line: &[u8], sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        let inherited = if !records(line).any(|(_, r)| matches!(r, Record::Run(NO_FONT, _))) {
            Vec::new()
        } else if self.ended {
            // the same for every such line: worked out once
            self.inherited_at_end
                .get_or_init(|| self.inherited())
                .clone()?
        } else {
            self.inherited()?
        };
        let mut readings = 1;
        for (_, r) in records(line) {
            if let Record::Run(id, _) = r {
                if self.crowded.get(id as usize) == Some(&true) {
                    return Err(unreadable(format!(
                        "PDF font name /{} stands for more than {MAX_BINDINGS} fonts: its text cannot be read",
                        self.label(id)
                    )));
                }
                let n = self.bindings.get(id as usize).map_or(0, Vec::len);
                readings = readings.max(n);
            }
        }
        // named runs' readings, for each of the no-font runs' (fallback, then inherited)
        let named = readings;
        if !inherited.is_empty() {
            readings *= 1 + inherited.len();
            let work = self
                .inherited_work
                .get()
                .saturating_add(readings.saturating_mul(line.len() + READING_COST));
            if work > INHERITED_WORK {
                return Err(unreadable(format!(
                    "PDF shows text in no font of its own, to be read in {} fonts it may inherit: too much to read",
                    inherited.len()
                )));
            }
            self.inherited_work.set(work);
        }
        // the readings handed on, whole (no hash a crafted reading could collide with)
        let mut done: HashSet<String> = HashSet::new();
        for reading in 0..readings {
            let (inherit, reading) = (reading / named, reading % named);
            // room for the usual line at once: a two-byte code's character takes three
            // bytes of UTF-8, and its runs hold the codes and a few bytes more
            let mut text = String::with_capacity(line.len());
            let mut readers: HashMap<u32, Reader<'_>> = HashMap::new();
            let inherited = inherit.checked_sub(1).and_then(|i| inherited.get(i));
            // one reader for the no-font runs of this reading, made at the first of them
            let mut no_font: Option<Reader<'_>> = None;
            for (_, r) in records(line) {
                match r {
                    Record::Space => text.push(' '),
                    Record::Run(NO_FONT, bytes) => {
                        let reader = no_font.get_or_insert_with(|| {
                            inherited.map_or(Reader::Fallback, |&(_, f)| self.reader(f))
                        });
                        Self::decode(reader, bytes, &mut text).map_err(|why| {
                            let font = match inherited {
                                Some(&(name, _)) if name != NO_FONT => {
                                    format!("the font /{}", self.label(name))
                                }
                                _ => "an ExtGState's font".to_string(),
                            };
                            unreadable(format!(
                                "PDF text shown in no font of its own, read in {font} it may inherit ({why}): its text cannot be read"
                            ))
                        })?;
                    }
                    Record::Run(id, bytes) => {
                        let reader = readers.entry(id).or_insert_with(|| {
                            let font = self
                                .bindings
                                .get(id as usize)
                                .and_then(|f| f.get(reading.min(f.len().saturating_sub(1))));
                            match font {
                                Some(&f) => self.reader(f),
                                // A name bound to no font: a broken file, unless the font
                                // was in an object that could not be read.
                                None if id != NO_FONT && self.lost => Reader::Unreadable(
                                    "its font dictionary could not be read".into(),
                                ),
                                None => Reader::Fallback,
                            }
                        });
                        Self::decode(reader, bytes, &mut text).map_err(|why| {
                            unreadable(format!(
                                "PDF font /{} ({why}): its text cannot be read",
                                self.label(id)
                            ))
                        })?;
                    }
                }
            }
            if readings == 1 {
                emit(&text, sink)?;
                continue;
            }
            if !done.contains(&text) {
                emit(&text, sink)?;
                done.insert(text);
            }
        }
        Ok(())
    }

    /// Takes a line of text (records, see `push_run`): decoded now when its fonts are known,
    /// else kept for the end of the file.
    pub(super) fn line(&mut self, line: &[u8], sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        if line.is_empty() {
            return Ok(());
        }
        if self.ended || self.ready(line) {
            return self.read_line(line, sink);
        }
        if self.deferred.len() + line.len() + 1 > MAX_DEFERRED {
            return Err(unreadable(format!(
                "PDF shows more than {} MiB of text before the fonts it is shown in (text shown in no font of its own waits for the end of the file): too much to read whole",
                MAX_DEFERRED >> 20
            )));
        }
        self.deferred.extend_from_slice(line);
        self.deferred.push(END);
        Ok(())
    }

    /// Room for `n` more references of /Contents; when there is none, noted.
    fn contents_room(&mut self, n: usize) -> bool {
        if self.contents_refs + n > MAX_CONTENTS_REFS {
            self.contents_full = true;
            return false;
        }
        self.contents_refs += n;
        true
    }

    /// Keeps the ends of the text of content stream `num` (a stream without text has
    /// none), for reading a page's streams together at the end of the file.
    pub(super) fn stream_edges(&mut self, num: u32, edges: Edges) {
        if edges.lines == 0 {
            return;
        }
        if self.edges.len() >= MAX_EDGES && !self.edges.contains_key(&num) {
            self.edges_dropped.insert(num);
            return;
        }
        self.edges.insert(num, edges);
    }

    /// Notes that array object `num` was too long to read: a page whose /Contents names
    /// it cannot be read across its streams.
    pub(super) fn array_not_kept(&mut self, num: u32) {
        self.arrays_dropped.insert(num);
    }

    /// Reads the text of each page of several content streams across its streams: the
    /// end of one stream's text with the start of the next one's (through streams whose
    /// text is one short line), as one line.
    ///
    /// Each array given by reference is read once, however many pages name it; a line
    /// that grows past [`MAX_LINE`] (streams of one short line each) is read and goes on
    /// from its end.
    ///
    /// # Errors
    /// A refusal of such a line; `content_unreadable` when a page of several streams, or
    /// the ends of one of its streams, could not be kept.
    fn read_across_streams(&mut self, sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        let too_many = || {
            unreadable(
                "PDF page of several content streams in a file of too many: its text across them cannot be read",
            )
        };
        if self.contents_full {
            return Err(too_many());
        }
        let contents = std::mem::take(&mut self.contents);
        let edges = std::mem::take(&mut self.edges);
        let mut read: HashSet<u32> = HashSet::new();
        for c in &contents {
            let refs = match c {
                Contents::Streams(refs) => refs,
                Contents::Indirect(r) if self.arrays_dropped.contains(r) => {
                    return Err(too_many());
                }
                Contents::Indirect(r) => match self.ref_arrays.get(r) {
                    Some(refs) if read.insert(*r) => refs,
                    _ => continue,
                },
            };
            if refs.iter().any(|r| self.edges_dropped.contains(r)) {
                return Err(too_many());
            }
            let mut line: Vec<u8> = Vec::new();
            let mut parts = 0;
            for e in refs.iter().filter_map(|r| edges.get(r)) {
                line.extend_from_slice(&e.head);
                parts += 1;
                if !e.whole {
                    if parts > 1 {
                        self.read_line(&line, sink)?;
                    }
                    line.clone_from(&e.tail);
                    parts = 1;
                } else if line.len() > MAX_LINE {
                    self.read_line(&line, sink)?;
                    line = clip_tail(&line, JOIN_BYTES);
                    parts = 1;
                }
            }
            if parts > 1 {
                self.read_line(&line, sink)?;
            }
        }
        Ok(())
    }

    /// The end of the file: the lines kept are decoded with all that is known now.
    pub(super) fn finish(&mut self, sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        self.ended = true;
        if !self.wanted_maps.is_empty() && self.ref_dicts_full {
            self.lost = true;
        }
        let deferred = std::mem::take(&mut self.deferred);
        let mut at = 0;
        while at < deferred.len() {
            let rest = &deferred[at..];
            // A line ends at the END tag that follows its last record.
            let mut end = rest.len();
            for (start, _) in records(rest) {
                if rest.get(start) == Some(&END) {
                    end = start;
                    break;
                }
            }
            let (line, more) = rest.split_at(end);
            let result = self.read_line(line, sink);
            at += line.len() + usize::from(!more.is_empty());
            result?;
        }
        self.read_across_streams(sink)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{catalog, deflate, pdf, reason, scan};
    use super::super::{PdfOptions, scan_pdf};
    use crate::core::reason::{Reason, Refusal};

    /// A ToUnicode CMap of two-byte codes with the given bfchar and bfrange lines.
    fn to_unicode(chars: &[(&str, &str)], ranges: &[&str]) -> String {
        let mut out = String::from(
            "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n\
             /CMapName /Test-UCS def /CMapType 2 def\n\
             1 begincodespacerange <0000> <FFFF> endcodespacerange\n",
        );
        if !chars.is_empty() {
            out.push_str(&format!("{} beginbfchar\n", chars.len()));
            for (code, text) in chars {
                out.push_str(&format!("<{code}> <{text}>\n"));
            }
            out.push_str("endbfchar\n");
        }
        if !ranges.is_empty() {
            out.push_str(&format!("{} beginbfrange\n", ranges.len()));
            for range in ranges {
                out.push_str(range);
                out.push('\n');
            }
            out.push_str("endbfrange\n");
        }
        out.push_str("endcmap CMapName currentdict /CMap defineresource pop end end\n");
        out
    }

    const CID_FONT: &str = "<< /Type /Font /Subtype /Type0 /BaseFont /ABCDEF+SimSun /Encoding /Identity-H /DescendantFonts [9 0 R] /ToUnicode 5 0 R >>";

    /// Objects 1 catalog, 2 page (font /F1 is object 4), 3 content, 4 font, 5 the given
    /// stream (a CMap), in this order or with the content last.
    fn doc(font: &str, cmap: &[u8], content: &[u8], content_last: bool) -> Vec<u8> {
        let page = "<< /Type /Page /Resources << /Font << /F1 4 0 R >> >> /Contents 3 0 R >>";
        let packed = deflate(content);
        let dict = format!("<< /Length {} /Filter /FlateDecode >>", packed.len());
        if content_last {
            pdf(&[
                catalog(),
                (page, None),
                ("<< /Type /Foo >>", None),
                (font, None),
                ("<< >>", Some(cmap)),
                (&dict, Some(&packed)),
            ])
        } else {
            pdf(&[
                catalog(),
                (page, None),
                (&dict, Some(&packed)),
                (font, None),
                ("<< >>", Some(cmap)),
            ])
        }
    }

    fn lines_of(data: &[u8]) -> Vec<String> {
        let (verdict, lines) = scan(data, true);
        assert_eq!(verdict, Ok(()), "{lines:?}");
        lines
    }

    #[test]
    fn identity_h_with_bfchar_reads_before_and_after_its_font() {
        let cmap = to_unicode(&[("0A21", "673A"), ("0A28", "5BC6"), ("0A2F", "2605")], &[]);
        let content = b"BT /F1 12 Tf 72 700 Td <0A210A28> Tj <0A2F> Tj ET";
        for last in [false, true] {
            let lines = lines_of(&doc(CID_FONT, cmap.as_bytes(), content, last));
            assert_eq!(lines, ["机密★"], "content last: {last}");
        }
        // A marking split over two show operators of one line is one line.
        let split = b"BT /F1 12 Tf 72 700 Td <0A21> Tj [<0A28>] TJ ET";
        let lines = lines_of(&doc(CID_FONT, cmap.as_bytes(), split, false));
        assert_eq!(lines, ["机密"]);
        // A code the map does not know is a replacement character, not a refusal.
        let other = b"BT /F1 12 Tf 72 700 Td <0A210B00> Tj ET";
        let lines = lines_of(&doc(CID_FONT, cmap.as_bytes(), other, true));
        assert_eq!(lines, ["机\u{fffd}"]);
    }

    #[test]
    fn bfrange_incrementing_and_array_forms() {
        let cmap = to_unicode(
            &[],
            &["<0010> <0012> <0041>", "<0020> <0021> [<673A> <5BC6>]"],
        );
        let content = b"BT /F1 12 Tf 72 700 Td <001000110012> Tj <00200021> Tj ET";
        let lines = lines_of(&doc(CID_FONT, cmap.as_bytes(), content, false));
        assert_eq!(lines, ["ABC机密"]);
    }

    #[test]
    fn mixed_code_spaces_and_usecmap() {
        // An embedded encoding CMap (object 5) of one- and two-byte codes; the ToUnicode map
        // (object 6) maps what it does not take from its parent (object 7, by usecmap).
        let encoding = "/CIDInit /ProcSet findresource begin 12 dict begin begincmap
/CMapName /Mixed-H def
2 begincodespacerange <00> <80> <8140> <FEFE> endcodespacerange
1 begincidrange <00> <80> 1 endcidrange
endcmap end end";
        let parent = "begincmap /CMapName /Parent-UCS def
1 beginbfchar <8140> <673A> endbfchar endcmap";
        let child = "begincmap /Parent-UCS usecmap
2 begincodespacerange <00> <80> <8140> <FEFE> endcodespacerange
2 beginbfchar <41> <0041> <8141> <5BC6> endbfchar endcmap";
        let font = "<< /Type /Font /Subtype /Type0 /BaseFont /X /Encoding 5 0 R /DescendantFonts [9 0 R] /ToUnicode 6 0 R >>";
        let page = "<< /Type /Page /Resources << /Font << /F1 4 0 R >> >> /Contents 3 0 R >>";
        let content = b"BT /F1 12 Tf 72 700 Td <4181408141> Tj ET";
        let data = pdf(&[
            catalog(),
            (page, None),
            ("<< >>", Some(content)),
            (font, None),
            ("<< /Type /CMap >>", Some(encoding.as_bytes())),
            ("<< >>", Some(child.as_bytes())),
            ("<< >>", Some(parent.as_bytes())),
        ]);
        assert_eq!(lines_of(&data), ["A机密"]);
        // The same parent named by the stream's /UseCMap instead.
        let child = child.replace("/Parent-UCS usecmap", "");
        let data = pdf(&[
            catalog(),
            (page, None),
            ("<< >>", Some(content)),
            (font, None),
            ("<< /Type /CMap >>", Some(encoding.as_bytes())),
            ("<< /UseCMap 7 0 R >>", Some(child.as_bytes())),
            ("<< >>", Some(parent.as_bytes())),
        ]);
        assert_eq!(lines_of(&data), ["A机密"]);
    }

    #[test]
    fn predefined_chinese_cmaps_are_read_without_a_map() {
        for (encoding, content) in [
            ("UniGB-UCS2-H", &b"<673A5BC6> Tj"[..]),
            ("UniGB-UCS2-V", b"<673A5BC6> Tj"),
            ("UniGB-UTF16-H", b"<673A5BC6D840DC00> Tj"),
            ("GBK-EUC-H", b"(\xbb\xfa\xc3\xdc) Tj"),
            ("GBpc-EUC-H", b"<BBFAC3DC> Tj"),
            ("GBK2K-V", b"<BBFAC3DC> Tj"),
            ("GB-EUC-H", b"<BBFAC3DC> Tj"),
            ("GBKp-EUC-H", b"<BBFAC3DC> Tj"),
        ] {
            let font = format!(
                "<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /{encoding} /DescendantFonts [9 0 R] >>"
            );
            let mut text = b"BT /F1 12 Tf 72 700 Td ".to_vec();
            text.extend_from_slice(content);
            text.extend_from_slice(b" ET");
            let lines = lines_of(&doc(&font, b"", &text, false));
            assert_eq!(lines.len(), 1, "{encoding}");
            assert!(lines[0].starts_with("机密"), "{encoding}: {lines:?}");
        }
    }

    #[test]
    fn identity_h_without_a_map_is_unreadable_when_its_text_is_read() {
        let font = CID_FONT.replace(" /ToUnicode 5 0 R", "");
        let content = b"BT /F1 12 Tf 72 700 Td <0A210A28> Tj ET";
        for last in [false, true] {
            let data = doc(&font, b"", content, last);
            let (verdict, lines) = scan(&data, false);
            let refusal = verdict.unwrap_err();
            assert_eq!(refusal.reason, Reason::ContentUnreadable);
            assert!(
                refusal.detail.contains("/F1 (Identity-H, no /ToUnicode)"),
                "{}",
                refusal.detail
            );
            assert!(lines.is_empty());
            assert_eq!(reason(&data, true, false), None);
        }
        // The same font defined but never used to show text does not matter.
        let unused = b"BT /F2 12 Tf 72 700 Td (plain) Tj ET";
        assert_eq!(lines_of(&doc(&font, b"", unused, false)), ["plain"]);
        // A ToUnicode map without any mapping is no map.
        let empty = to_unicode(&[], &[]);
        let data = doc(CID_FONT, empty.as_bytes(), content, false);
        assert_eq!(reason(&data, false, true), Some(Reason::ContentUnreadable));
    }

    #[test]
    fn simple_fonts_read_by_their_encoding_and_differences() {
        let content = b"BT /F1 12 Tf 72 700 Td (ABC\x80) Tj ET";
        let cases = [
            (
                "<< /Type /Font /Subtype /TrueType /BaseFont /Arial /Encoding /WinAnsiEncoding >>",
                "ABC€",
            ),
            (
                "<< /Type /Font /Subtype /Type1 /BaseFont /X /Encoding << /BaseEncoding /WinAnsiEncoding /Differences [65 /uni673A /uni5BC6] >> >>",
                "机密C€",
            ),
            (
                "<< /Type /Font /Subtype /Type1 /BaseFont /X /Encoding 5 0 R >>",
                "机密C€",
            ),
            (
                "<< /Type /Font /Subtype /Type3 /Encoding << /Differences [65 /A /B /C 128 /Euro] >> >>",
                "ABC€",
            ),
        ];
        let encoding = "<< /Type /Encoding /BaseEncoding /WinAnsiEncoding /Differences [65 /uni673A /u5BC6] >>";
        for (font, text) in cases {
            let page = "<< /Type /Page /Resources << /Font << /F1 4 0 R >> >> /Contents 3 0 R >>";
            let data = pdf(&[
                catalog(),
                (page, None),
                ("<< >>", Some(content)),
                (font, None),
                (encoding, None),
            ]);
            assert_eq!(lines_of(&data), [text], "{font}");
        }
        // A Type3 font whose glyph names say nothing is unreadable once it shows text.
        let type3 =
            "<< /Type /Font /Subtype /Type3 /Encoding << /Differences [65 /g1 /g2 /g3] >> >>";
        let data = doc(type3, b"", b"BT /F1 12 Tf (ABC) Tj ET", false);
        assert_eq!(reason(&data, false, true), Some(Reason::ContentUnreadable));
        let data = doc(type3, b"", b"BT /F1 12 Tf ET", false);
        assert_eq!(reason(&data, false, true), None);
        // One unknown name among known ones is a character that cannot be read, not a font.
        let tex =
            "<< /Type /Font /Subtype /Type1 /Encoding << /Differences [65 /A /B /g3 /ffi] >> >>";
        let data = doc(tex, b"", b"BT /F1 12 Tf (ABCD) Tj ET", false);
        assert_eq!(lines_of(&data), ["AB\u{fffd}ffi"]);
        // A simple font's ToUnicode map comes first.
        let mapped = "<< /Type /Font /Subtype /Type3 /Encoding << /Differences [65 /g1] >> /ToUnicode 5 0 R >>";
        let cmap = "begincmap 1 begincodespacerange <00> <FF> endcodespacerange
1 beginbfchar <41> <673A> endbfchar endcmap";
        let data = doc(mapped, cmap.as_bytes(), b"BT /F1 12 Tf (A) Tj ET", true);
        assert_eq!(lines_of(&data), ["机"]);
    }

    #[test]
    fn a_name_bound_to_several_fonts_is_read_in_each() {
        let cmap = to_unicode(&[("0041", "673A"), ("0042", "5BC6")], &[]);
        let pages = "<< /Type /Page /Resources << /Font << /F1 4 0 R >> >> /Kids [<< /Resources << /Font << /F1 << /Type /Font /Subtype /TrueType /Encoding /WinAnsiEncoding >> >> >> >>] >>";
        let content = b"BT /F1 12 Tf <00410042> Tj ET";
        let data = pdf(&[
            catalog(),
            (pages, None),
            ("<< >>", Some(content)),
            (CID_FONT, None),
            ("<< >>", Some(cmap.as_bytes())),
        ]);
        assert_eq!(lines_of(&data), ["机密", "AB"]);
    }

    #[test]
    fn text_shown_in_no_font_is_read_in_every_font_a_tf_selects() {
        let cmap = to_unicode(&[("0041", "673A"), ("0042", "5BC6")], &[]);
        // stream 3 selects /F1 and shows nothing; stream 6, the page's next, shows codes
        // with no Tf of its own: a viewer draws them in /F1 (ISO 32000-1 §7.8.2)
        let page =
            "<< /Type /Page /Resources << /Font << /F1 4 0 R >> >> /Contents [3 0 R 6 0 R] >>";
        let later = |first: &[u8], second: &[u8]| {
            pdf(&[
                catalog(),
                (page, None),
                ("<< >>", Some(first)),
                (CID_FONT, None),
                ("<< >>", Some(cmap.as_bytes())),
                ("<< >>", Some(second)),
            ])
        };
        let data = later(b"BT /F1 12 Tf ET", b"BT 72 700 Td <00410042> Tj ET");
        assert_eq!(lines_of(&data), ["AB", "机密"]);
        // a Form XObject with no Tf, drawn after one: the same
        let form = "<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] >>";
        let data = pdf(&[
            catalog(),
            (
                "<< /Type /Page /Resources << /Font << /F1 4 0 R >> /XObject << /Fm1 6 0 R >> >> /Contents 3 0 R >>",
                None,
            ),
            ("<< >>", Some(b"BT /F1 12 Tf ET /Fm1 Do")),
            (CID_FONT, None),
            ("<< >>", Some(cmap.as_bytes())),
            (form, Some(b"BT 72 700 Td <00410042> Tj ET")),
        ]);
        assert_eq!(lines_of(&data), ["AB", "机密"]);
        // no font selected anywhere: the fallback reading alone, as before
        let data = later(b"BT ET", b"BT (plain) Tj ET");
        assert_eq!(lines_of(&data), ["plain"]);
    }

    #[test]
    fn text_in_no_font_is_read_with_every_reading_of_its_lines_named_runs() {
        let cmap = to_unicode(&[("0041", "673A"), ("0042", "5BC6")], &[]);
        let page =
            "<< /Type /Page /Resources << /Font << /F1 4 0 R >> >> /Contents [3 0 R 6 0 R] >>";
        // /F1 is also bound to Helvetica by a dictionary no page uses: 机 in no font and
        // 密 in /F1 must be read together in the CID font, whatever the order of bindings
        let data = pdf(&[
            catalog(),
            (page, None),
            ("<< >>", Some(b"BT /F1 24 Tf ET")),
            (CID_FONT, None),
            ("<< >>", Some(cmap.as_bytes())),
            (
                "<< >>",
                Some(b"BT 72 700 Td <0041> Tj /F1 24 Tf <0042> Tj ET"),
            ),
            (
                "<< /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >>",
                None,
            ),
        ]);
        assert!(lines_of(&data).contains(&"机密".to_string()));
    }

    #[test]
    fn fonts_set_by_an_extgstate_q_and_q_and_escaped_names_are_followed() {
        let cmap = to_unicode(&[("0041", "673A"), ("0042", "5BC6")], &[]);
        let helvetica = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>";
        let doc = |resources: &str, content: &[u8]| {
            let page = format!("<< /Type /Page /Resources {resources} /Contents 3 0 R >>");
            pdf(&[
                catalog(),
                (&page, None),
                ("<< >>", Some(content)),
                (CID_FONT, None),
                ("<< >>", Some(cmap.as_bytes())),
                (helvetica, None),
            ])
        };
        // an ExtGState's /Font [font size] (ISO 32000-1 §8.4.5), and no Tf at all
        let data = doc(
            "<< /ExtGState << /GS1 << /Font [4 0 R 24] >> >> >>",
            b"/GS1 gs BT 72 700 Td <00410042> Tj ET",
        );
        assert!(lines_of(&data).contains(&"机密".to_string()));
        // Q restores the font q saved (§8.4.2): the text is in /F1, not /F2
        let fonts = "<< /Font << /F1 4 0 R /F2 6 0 R >> >>";
        let data = doc(
            fonts,
            b"BT /F1 24 Tf ET q BT /F2 24 Tf ET Q BT 72 700 Td <00410042> Tj ET",
        );
        assert_eq!(lines_of(&data), ["机密"]);
        // a name with #-escapes (§7.3.5) is the resource it spells
        let data = doc(fonts, b"BT /F#31 24 Tf 72 700 Td <00410042> Tj ET");
        assert_eq!(lines_of(&data), ["机密"]);
        // a name longer than a name may be cannot be matched to its resource: refused
        let long = format!("BT /F{} 24 Tf 72 700 Td <00410042> Tj ET", "x".repeat(130));
        let (verdict, _) = super::super::testing::scan(&doc(fonts, long.as_bytes()), true);
        assert_eq!(verdict.unwrap_err().reason, Reason::ContentUnreadable);
    }

    #[test]
    fn reading_in_inherited_fonts_is_bounded_however_short_the_lines() {
        // 300 fonts selected, then 100,000 one-code lines in no font: 300 readings each
        let fonts: String = (0..300)
            .map(|i| format!("/F{i} << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> "))
            .collect();
        let page = format!(
            "<< /Type /Page /Resources << /Font << {fonts}>> >> /Contents [3 0 R 4 0 R] >>"
        );
        let select: String = (0..300).map(|i| format!("/F{i} 1 Tf ")).collect();
        let first = format!("BT {select}ET");
        let second = "BT 12 TL ".to_string() + &"T* <41> Tj ".repeat(100_000) + "ET";
        let data = pdf(&[
            catalog(),
            (&page, None),
            ("<< >>", Some(first.as_bytes())),
            ("<< >>", Some(second.as_bytes())),
        ]);
        let (verdict, lines) = super::super::testing::scan(&data, true);
        let refusal = verdict.unwrap_err();
        assert_eq!(refusal.reason, Reason::ContentUnreadable);
        assert!(
            refusal.detail.contains("too much to read"),
            "{}",
            refusal.detail
        );
        // refused long before the 30 million readings the file asks for
        assert!(lines.len() < 1_000_000, "{}", lines.len());
        // a few such lines are read in each font
        let few = "BT 12 TL ".to_string() + &"T* <41> Tj ".repeat(10) + "ET";
        let data = pdf(&[
            catalog(),
            (&page, None),
            ("<< >>", Some(first.as_bytes())),
            ("<< >>", Some(few.as_bytes())),
        ]);
        assert_eq!(lines_of(&data), vec!["A"; 10]);
    }

    #[test]
    fn text_shown_in_no_font_with_an_unreadable_font_to_inherit_is_refused() {
        let font = "<< /Type /Font /Subtype /Type0 /BaseFont /ABCDEF+SimSun /Encoding /Identity-H /DescendantFonts [9 0 R] >>";
        let page =
            "<< /Type /Page /Resources << /Font << /F1 4 0 R >> >> /Contents [3 0 R 6 0 R] >>";
        let data = pdf(&[
            catalog(),
            (page, None),
            ("<< >>", Some(b"BT /F1 12 Tf ET")),
            (font, None),
            ("<< >>", Some(b"")),
            ("<< >>", Some(b"BT <00410042> Tj ET")),
        ]);
        let (verdict, _) = super::super::testing::scan(&data, true);
        let refusal = verdict.unwrap_err();
        assert_eq!(refusal.reason, Reason::ContentUnreadable);
        assert!(
            refusal.detail.contains("no font of its own") && refusal.detail.contains("/F1"),
            "{}",
            refusal.detail
        );
    }

    /// An object stream holding a resource dictionary (object 4) and `font` (object 6).
    fn object_stream(font: &str) -> (String, Vec<u8>) {
        let resources = "<< /Font << /F1 6 0 R >> >> ";
        let header = format!("4 0 6 {} ", resources.len());
        let packed = deflate(format!("{header}{resources}{font}").as_bytes());
        let dict = format!(
            "<< /Type /ObjStm /N 2 /First {} /Filter /FlateDecode >>",
            header.len()
        );
        (dict, packed)
    }

    #[test]
    fn fonts_inside_object_streams_are_found() {
        let cmap = to_unicode(&[("0A21", "673A"), ("0A28", "5BC6")], &[]);
        let content = &b"BT /F1 12 Tf <0A210A28> Tj ET"[..];
        let (dict, packed) = object_stream(CID_FONT);
        let data = pdf(&[
            catalog(),
            ("<< >>", Some(content)),
            (&dict, Some(&packed)),
            ("<< /Type /Foo >>", None),
            ("<< >>", Some(cmap.as_bytes())),
        ]);
        assert_eq!(lines_of(&data), ["机密"]);
        // Without its map the font inside the object stream is unreadable.
        let (dict, packed) = object_stream(&CID_FONT.replace(" /ToUnicode 5 0 R", ""));
        let data = pdf(&[catalog(), ("<< >>", Some(content)), (&dict, Some(&packed))]);
        assert_eq!(reason(&data, false, true), Some(Reason::ContentUnreadable));
    }

    #[test]
    fn text_kept_for_fonts_that_come_later_is_capped() {
        let cmap = to_unicode(&[("0041", "0041")], &[]);
        let mut content = b"BT /F1 12 Tf 14 TL\n".to_vec();
        let line = format!("<{}> Tj T*\n", "0041".repeat(4096));
        while content.len() < (super::MAX_DEFERRED / 4096) * 8192 + 100_000 {
            content.extend_from_slice(line.as_bytes());
        }
        let data = doc(CID_FONT, cmap.as_bytes(), &content, false);
        let (verdict, _) = scan(&data, false);
        let refusal = verdict.unwrap_err();
        assert_eq!(refusal.reason, Reason::ContentUnreadable);
        assert!(refusal.detail.contains("MiB of text"), "{}", refusal.detail);
        // With its fonts first the same text streams through.
        let data = doc(CID_FONT, cmap.as_bytes(), &content, true);
        assert_eq!(reason(&data, false, true), None);
    }

    /// The real-world case: a judgment report as Word and WPS save Chinese (Identity-H with
    /// /ToUnicode, the page content before its font).
    #[test]
    fn the_cid_font_report_is_read_and_refused_on_its_marking() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/cases/to-internet/审理报告-cid-font.pdf"
        );
        let data = std::fs::read(path).unwrap();
        let text = lines_of(&data).join("\n");
        assert!(text.contains("机密★10年"), "{text}");
        let id = regex::Regex::new(r"[1-9]\d{16}[\dX]").unwrap();
        assert!(id.is_match(&text), "a resident ID number in {text}");
        let mut sink = |line: &str| {
            if line.contains("机密") {
                Err(Refusal::new(Reason::ClassificationMarking, "机密"))
            } else {
                Ok(())
            }
        };
        let verdict = scan_pdf(
            &mut data.as_slice(),
            &PdfOptions {
                refuse_active: true,
                read_text: true,
                allow_uri: true,
            },
            &mut sink,
        )
        .unwrap();
        assert_eq!(verdict.unwrap_err().reason, Reason::ClassificationMarking);
    }
}
