//! OFD (GB/T 33190-2016, the national format of e-documents and e-invoices): the text a
//! reader of one XML part sees, the actions that leave the document, and the bookkeeping of
//! the package around the parts (its root entry, which entries are attachments).
//!
//! ```text
//!  OFD.xml  ofd:OFD ─► DocBody ─► DocInfo (Title, Author, Subject, Abstract, Keywords,
//!                     │            Creator, CustomDatas)
//!                     └─► DocRoot Doc_0/Document.xml ─► CommonData, Pages, Outlines, Actions,
//!                            Annotations, CustomTags, Attachments (each a part of its own)
//!                            └─► Pages/Page_0/Content.xml ─► Layer ─► PageBlock ─►
//!                                   TextObject ─► TextCode (the text)
//!
//!  read_part: one XML part ─► TextCode text, one line per baseline of a layer ─► LineSink
//!                          ─► other character data, text attributes (Remark, Title, Name …)
//!                          ─► Action children URI, GotoA, Sound, Movie ─► Found::Action
//!                          ─► Attachment/FileLoc ─► Found::Attachment
//!  Package:   the root OFD.xml confirmed; entries of unknown type held until it is known
//!             whether an attachment list names them
//! ```
//!
//! Every XML part of the package is read, whether or not a page or list refers to it, so
//! text in a part nothing refers to is seen too. Character data is read wherever it stands,
//! except the ASCII content of elements that hold numbers, dates, identifiers and locations
//! ([`NON_TEXT`]: page boxes, path data, glyph ids, file locations), which would only give
//! the rules false matches.
//!
//! The XML is read with a streaming reader and one reused buffer: no token may be longer
//! than `MAX_TOKEN`, nesting deeper than `MAX_NESTING` is refused, and a line longer than
//! `MAX_LINE` reaches the sink in pieces, each after a cut beginning with the end of the
//! piece before it ([`overlap_tail`]), so a word across a cut is seen whole. Entities other
//! than the five of XML and character references are refused as unreadable.

use crate::content::LineSink;
use crate::content::doc::{Bounded, entity};
use crate::content::text::overlap_tail;
use crate::core::reason::{Reason, Refusal};
use quick_xml::XmlVersion;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesStart, Event};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::io::{self, BufRead};
use std::sync::Arc;

/// The namespace of OFD elements (GB/T 33190-2016, 7.1).
pub const NAMESPACE: &str = "http://www.ofdspec.org/2016";

/// The entry at the root of every OFD package (GB/T 33190-2016, 7.4).
pub const MAIN_ENTRY: &str = "OFD.xml";

/// Longest line handed to the sink at once, in bytes of UTF-8.
pub const MAX_LINE: usize = 64 * 1024;

/// Longest single XML token (a tag with its attributes, a text node, a comment), in bytes.
pub const MAX_TOKEN: usize = 8 << 20;

/// Deepest element nesting accepted.
pub const MAX_NESTING: usize = 1024;

/// Longest attachment location (`Attachment/FileLoc`) read, in bytes.
pub const MAX_LOCATION: usize = 4096;

/// Most attachment locations, and most entries of unknown type held, in one package.
pub const MAX_HELD: usize = 4096;

/// Two text codes whose baselines differ by at most this much (in the document's unit,
/// millimetres) stand on one line.
pub const BASELINE_TOLERANCE: f64 = 0.5;

/// Elements whose ASCII content is numbers, dates, identifiers, enumerations or locations,
/// not text a reader sees: skipped when ASCII (content with other characters is read).
pub const NON_TEXT: &[&str] = &[
    "AbbreviatedData",
    "Annotations",
    "ApplicationBox",
    "Attachments",
    "BaseLoc",
    "BleedBox",
    "CheckValue",
    "ContentBox",
    "CreationDate",
    "CustomTags",
    "DefaultCS",
    "DocID",
    "DocRoot",
    "DocUsage",
    "DocumentRes",
    "Edit",
    "Export",
    "ExtendData",
    "Extensions",
    "FileLoc",
    "FontFile",
    "Glyphs",
    "HideMenubar",
    "HideToolbar",
    "HideWindowUI",
    "MaxUnitID",
    "MediaFile",
    "ModDate",
    "PageLayout",
    "PageMode",
    "PageRes",
    "PhysicalBox",
    "PrintScreen",
    "PublicRes",
    "SchemaLoc",
    "SignatureDateTime",
    "SignatureMethod",
    "SignedValue",
    "Signatures",
    "TabDisplay",
    "Watermark",
    "Zoom",
    "ZoomMode",
];

/// Attributes that carry text a reader sees: annotation remarks, outline titles, names of
/// bookmarks, attachments, custom data and parameters, creators and signers.
const TEXT_ATTRIBUTES: &[&str] = &[
    "AppName",
    "Company",
    "Creator",
    "Name",
    "ProviderName",
    "Remark",
    "Subtype",
    "Title",
    "Usage",
];

/// Elements whose end ends the line of text codes being gathered.
const LINE_ENDS: &[&str] = &[
    "Layer",
    "Appearance",
    "Annot",
    "Content",
    "Page",
    "Template",
];

/// What an action does, as named by the child of `ofd:Action` (GB/T 33190-2016, 14.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// `ofd:URI`: opens an address outside the document.
    Uri,
    /// `ofd:GotoA`: opens an attachment.
    GotoA,
    /// `ofd:Sound`: plays a sound resource.
    Sound,
    /// `ofd:Movie`: plays a video resource.
    Movie,
    /// A child the standard does not define: fails closed as active content.
    Unknown,
}

/// An action that leaves the document or plays media: active content. `ofd:Goto` (within
/// the document) is not reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// What the action does.
    pub kind: ActionKind,
    /// The URI, the attachment id, the resource id, or (for `Unknown`) the element's name;
    /// at most 200 bytes, cut on a character boundary.
    pub target: String,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.target;
        match self.kind {
            ActionKind::Uri => write!(f, "action URI → {t}"),
            ActionKind::GotoA => write!(f, "action GotoA → attachment {t}"),
            ActionKind::Sound => write!(f, "action Sound → resource {t}"),
            ActionKind::Movie => write!(f, "action Movie → resource {t}"),
            ActionKind::Unknown => write!(f, "action {t} (not defined by GB/T 33190)"),
        }
    }
}

/// What a part holds besides text, handed to the caller as it is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found<'a> {
    /// An action that leaves the document or plays media.
    Action(&'a Action),
    /// The location of an attached file (`ofd:Attachment/ofd:FileLoc`), as written: relative
    /// to the part, or from the package root when it starts with '/'.
    Attachment(&'a str),
}

/// Receives what [`read_part`] finds; a refusal stops the read.
pub type FoundSink<'a> = dyn FnMut(Found<'_>) -> Result<(), Refusal> + 'a;

/// What [`read_part`] learnt of a part as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartInfo {
    /// The root element is `OFD` in the OFD namespace: the part is an OFD entry file.
    pub root_is_ofd: bool,
}

/// The elements the reader keeps track of, by local name and parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    TextObject,
    TextCode,
    Action,
    Attachment,
    /// `FileLoc` inside `Attachment`.
    AttachmentLoc,
    NonText,
    LineEnd,
    Other,
}

fn classify(local: &[u8], parent: Option<Elem>) -> Elem {
    let is = |names: &[&str]| names.iter().any(|n| n.as_bytes() == local);
    match local {
        b"TextObject" => Elem::TextObject,
        b"TextCode" => Elem::TextCode,
        b"Action" => Elem::Action,
        b"Attachment" => Elem::Attachment,
        b"FileLoc" if parent == Some(Elem::Attachment) => Elem::AttachmentLoc,
        _ if is(NON_TEXT) => Elem::NonText,
        _ if is(LINE_ENDS) => Elem::LineEnd,
        _ => Elem::Other,
    }
}

/// A line being gathered, handed to the sink in pieces of at most `MAX_LINE` bytes that
/// overlap across a cut.
#[derive(Default)]
struct LineBuf {
    text: String,
    /// How many bytes at the start of `text` were handed over already, as the end of the
    /// piece before a cut.
    carried: usize,
}

impl LineBuf {
    fn push(&mut self, mut s: &str, sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        while self.text.len() + s.len() > MAX_LINE {
            let mut room = MAX_LINE.saturating_sub(self.text.len());
            while room > 0 && !s.is_char_boundary(room) {
                room -= 1;
            }
            if room == 0 && self.text.len() <= self.carried {
                // the carried overlap alone fills the line: take one character past it
                room = s.chars().next().map_or(s.len(), char::len_utf8);
            }
            self.text.push_str(s.get(..room).unwrap_or_default());
            s = s.get(room..).unwrap_or_default();
            self.cut(sink)?;
        }
        self.text.push_str(s);
        Ok(())
    }

    /// Text whose own line breaks end lines.
    fn push_text(&mut self, s: &str, sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        let mut lines = s.split('\n');
        if let Some(first) = lines.next() {
            self.push(first.trim_end_matches('\r'), sink)?;
        }
        for line in lines {
            self.flush(sink)?;
            self.push(line.trim_end_matches('\r'), sink)?;
        }
        Ok(())
    }

    /// Ends the line: hands over what was not handed over yet.
    fn flush(&mut self, sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        let fresh = self.text.len() > self.carried && !self.text.trim().is_empty();
        let result = if fresh { sink(&self.text) } else { Ok(()) };
        self.text.clear();
        self.carried = 0;
        result
    }

    /// Hands over a full piece of a line that goes on, keeping its end to start the next.
    fn cut(&mut self, sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        sink(&self.text)?;
        let keep = overlap_tail(&self.text).len();
        self.text.drain(..self.text.len() - keep);
        self.carried = keep;
        Ok(())
    }
}

/// The geometry of the text object being read: where its baselines fall on the page.
#[derive(Debug, Default)]
struct TextGeometry {
    /// `Boundary` y: the object's origin on the page.
    origin_y: f64,
    /// `CTM` a b c d e f, when given.
    ctm: Option<[f64; 6]>,
    /// Text codes seen in the object so far.
    codes: usize,
    /// `Y` of the last text code that gave one.
    last_y: Option<f64>,
}

impl TextGeometry {
    fn of(start: &BytesStart<'_>) -> TextGeometry {
        let boundary = attribute(start, b"Boundary");
        let ctm = attribute(start, b"CTM").and_then(|s| {
            let v: Vec<f64> = numbers(&s).take(7).collect();
            <[f64; 6]>::try_from(v).ok()
        });
        TextGeometry {
            origin_y: boundary
                .and_then(|b| numbers(&b).nth(1))
                .unwrap_or_default(),
            ctm,
            codes: 0,
            last_y: None,
        }
    }

    /// The baseline on the page of a text code at (`x`, `y`) in the object, when known.
    fn baseline(&mut self, x: Option<f64>, y: Option<f64>) -> Option<f64> {
        let y = y.or(self.last_y)?;
        self.last_y = Some(y);
        let local = match self.ctm {
            Some([_, b, _, d, _, f]) => b * x.unwrap_or_default() + d * y + f,
            None => y,
        };
        Some(self.origin_y + local).filter(|v| v.is_finite())
    }
}

fn numbers(s: &str) -> impl Iterator<Item = f64> + '_ {
    s.split_ascii_whitespace()
        .map(|n| n.parse::<f64>().ok().filter(|v| v.is_finite()))
        .map_while(|v| v)
}

/// The value of the attribute with this local name, decoded; `None` when absent or
/// malformed. A namespace declaration is no attribute here: `xmlns:Y` is never `Y`. The
/// caller has checked the attributes are well formed and no local name repeats
/// (`bad_attribute`, on every element `read_part` reads): that check is not made again.
fn attribute(start: &BytesStart<'_>, local: &[u8]) -> Option<String> {
    checked_attributes(start)
        .find(|a| a.key.local_name().as_ref() == local)
        .and_then(|a| value(&a).ok())
        .map(Cow::into_owned)
}

/// An element's attributes once `bad_attribute` has passed them (well formed, no local name
/// repeated: not checked again), without its namespace declarations, which bind prefixes
/// and are no attributes here (`xmlns:Y` is never `Y`).
fn checked_attributes<'a>(start: &'a BytesStart<'_>) -> impl Iterator<Item = Attribute<'a>> {
    let mut attributes = start.attributes();
    attributes.with_checks(false);
    attributes
        .flatten()
        .filter(|a| a.key.as_namespace_binding().is_none())
}

fn value<'a>(a: &Attribute<'a>) -> Result<Cow<'a, str>, String> {
    a.normalized_value(XmlVersion::Implicit1_0)
        .map_err(|e| e.to_string())
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// Whether the root element declares itself `OFD` in the OFD namespace, by its own prefix
/// and namespace declarations.
fn is_ofd_root(start: &BytesStart<'_>) -> bool {
    let name = start.name();
    if name.local_name().as_ref() != b"OFD" {
        return false;
    }
    let wanted: Vec<u8> = match name.prefix() {
        Some(p) => [b"xmlns:", p.as_ref()].concat(),
        None => b"xmlns".to_vec(),
    };
    start
        .attributes()
        .flatten()
        .any(|a| a.key.as_ref() == wanted.as_slice() && value(&a).is_ok_and(|v| v == NAMESPACE))
}

/// The reader's state over one part.
struct PartReader<'p> {
    /// Put before the detail of the reader's own refusals.
    at: &'p str,
    stack: Vec<Elem>,
    /// Text codes of the current baseline.
    line: LineBuf,
    /// Other text, ended with its element.
    field: LineBuf,
    /// The location of the attachment being read.
    location: String,
    /// The text object being read.
    object: TextGeometry,
    /// The baseline of the last text code.
    baseline: Option<f64>,
    info: PartInfo,
    root_seen: bool,
}

impl PartReader<'_> {
    /// An element starts (`Start` or `Empty`): its text attributes, actions and geometry.
    fn open(
        &mut self,
        start: &BytesStart<'_>,
        sink: &mut LineSink<'_>,
        found: &mut FoundSink<'_>,
    ) -> Result<Elem, Refusal> {
        if !self.root_seen {
            self.root_seen = true;
            self.info.root_is_ofd = is_ofd_root(start);
        }
        let parent = self.stack.last().copied();
        let name = start.local_name();
        let local = name.as_ref();
        let elem = classify(local, parent);
        match elem {
            Elem::TextObject => self.object = TextGeometry::of(start),
            Elem::TextCode => {
                let x = attribute(start, b"X").and_then(|v| numbers(&v).next());
                let y = attribute(start, b"Y").and_then(|v| numbers(&v).next());
                let first = self.object.codes == 0 || parent != Some(Elem::TextObject);
                self.object.codes += 1;
                if let Some(here) = self.object.baseline(x, y) {
                    if first
                        && self
                            .baseline
                            .is_some_and(|b| (b - here).abs() > BASELINE_TOLERANCE)
                    {
                        self.line.flush(sink)?;
                    }
                    self.baseline = Some(here);
                }
            }
            Elem::AttachmentLoc => self.location.clear(),
            _ => {}
        }
        if parent == Some(Elem::Action) {
            let kind = match local {
                b"Goto" | b"Region" => None,
                b"URI" => Some((ActionKind::Uri, &b"URI"[..])),
                b"GotoA" => Some((ActionKind::GotoA, &b"AttachID"[..])),
                b"Sound" => Some((ActionKind::Sound, &b"ResourceID"[..])),
                b"Movie" => Some((ActionKind::Movie, &b"ResourceID"[..])),
                _ => Some((ActionKind::Unknown, &b""[..])),
            };
            if let Some((kind, key)) = kind {
                let target = match kind {
                    ActionKind::Unknown => String::from_utf8_lossy(start.name().as_ref()).into(),
                    _ => attribute(start, key).unwrap_or_default(),
                };
                let action = Action {
                    kind,
                    target: truncate(&target, 200).to_string(),
                };
                found(Found::Action(&action))?;
            }
        }
        // a namespace declaration (`xmlns:Remark`) is no text attribute
        for a in checked_attributes(start) {
            let key = a.key.local_name();
            if TEXT_ATTRIBUTES.iter().any(|t| t.as_bytes() == key.as_ref()) {
                let v = value(&a).map_err(|e| unreadable(self.at, e))?;
                self.field.flush(sink)?;
                self.field.push_text(&v, sink)?;
                self.field.flush(sink)?;
            }
        }
        Ok(elem)
    }

    /// An element ends.
    fn close(
        &mut self,
        elem: Elem,
        sink: &mut LineSink<'_>,
        found: &mut FoundSink<'_>,
    ) -> Result<(), Refusal> {
        match elem {
            Elem::AttachmentLoc => {
                let location = self.location.trim();
                if !location.is_empty() {
                    found(Found::Attachment(location))?;
                }
                self.location.clear();
            }
            Elem::LineEnd => {
                self.line.flush(sink)?;
                self.baseline = None;
            }
            _ => {}
        }
        self.field.flush(sink)
    }

    /// Character data of the innermost element.
    fn text(&mut self, s: &str, sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        match self.stack.last() {
            Some(Elem::TextCode) => {
                let joined: Cow<'_, str> = if s.contains(['\n', '\r']) {
                    Cow::Owned(s.replace(['\n', '\r'], ""))
                } else {
                    Cow::Borrowed(s)
                };
                self.line.push(&joined, sink)
            }
            Some(Elem::AttachmentLoc) => {
                if self.location.len() + s.len() > MAX_LOCATION {
                    return Err(unreadable(
                        self.at,
                        format!("an attachment location longer than {MAX_LOCATION} bytes"),
                    ));
                }
                self.location.push_str(s);
                self.non_text(s, sink)
            }
            Some(Elem::NonText) => self.non_text(s, sink),
            _ => {
                // whitespace with a line break between tags is layout, not text
                let layout = s.contains('\n') && s.trim().is_empty();
                if layout || (self.field.text.is_empty() && s.trim().is_empty()) {
                    Ok(())
                } else {
                    self.field.push_text(s, sink)
                }
            }
        }
    }

    fn non_text(&mut self, s: &str, sink: &mut LineSink<'_>) -> Result<(), Refusal> {
        if s.is_ascii() {
            Ok(())
        } else {
            self.field.push_text(s, sink)
        }
    }
}

fn unreadable(at: &str, detail: impl fmt::Display) -> Refusal {
    Refusal::new(
        Reason::ContentUnreadable,
        format!("{at}OFD XML cannot be read: {detail}"),
    )
}

/// The attributes [`attribute`] reads, for the place of text (`Boundary`, `CTM`, `X`, `Y`)
/// and the target of an action (`URI`, `AttachID`, `ResourceID`). GB/T 33190 gives them
/// no namespace.
const READ_ATTRIBUTES: [&[u8]; 7] = [
    b"Boundary",
    b"CTM",
    b"X",
    b"Y",
    b"URI",
    b"AttachID",
    b"ResourceID",
];

/// The first malformed attribute of an element, or the first local name two of its
/// attributes share (a qualified name repeated, or `X` beside `p:X`: two readers could take
/// either value, and [`attribute`] takes the first by local name), or the first of
/// [`READ_ATTRIBUTES`] under a prefix (`p:Y` alone: a reader that matches local names takes
/// it for `Y`, a namespace-aware one sees no `Y`) or with a value that cannot be decoded (an
/// undefined entity: [`attribute`] would see no value where another reader may), if any.
/// Namespace declarations (`xmlns`, `xmlns:p`) bind prefixes and are not counted with the
/// attributes (a declaration repeated is malformed: quick-xml's check of qualified names).
/// Linear in the attributes: a tag may hold hundreds of thousands within [`MAX_TOKEN`].
fn bad_attribute(start: &BytesStart<'_>) -> Option<String> {
    /// Local names compared one by one; past these, through a hash set.
    const FEW: usize = 8;
    let mut few: [&[u8]; FEW] = [&[]; FEW];
    let mut many: HashSet<&[u8]> = HashSet::new();
    let mut count = 0usize;
    // quick-xml's own check (on) refuses a qualified name repeated; a local name repeated
    // under another prefix is looked for here
    for a in start.attributes() {
        let a = match a {
            Ok(a) => a,
            Err(e) => return Some(e.to_string()),
        };
        if a.key.as_namespace_binding().is_some() {
            continue;
        }
        let local = a.key.local_name().into_inner();
        if READ_ATTRIBUTES.contains(&local) {
            if a.key.prefix().is_some() {
                return Some(format!(
                    "the attribute {:?} has a prefix: a reader may take it for {:?}, or see none",
                    String::from_utf8_lossy(a.key.as_ref()),
                    String::from_utf8_lossy(local)
                ));
            }
            // [`attribute`] takes a value it cannot decode for none at all
            if let Err(e) = value(&a) {
                return Some(format!("{}: {e}", String::from_utf8_lossy(local)));
            }
        }
        let twice = match few.get_mut(count) {
            Some(slot) => {
                *slot = local;
                few.get(..count).unwrap_or_default().contains(&local)
            }
            None => {
                if many.is_empty() {
                    many.extend(few);
                }
                !many.insert(local)
            }
        };
        if twice {
            return Some(format!(
                "two attributes have the local name {:?}",
                String::from_utf8_lossy(local)
            ));
        }
        count += 1;
    }
    None
}

/// Reads one XML part of an OFD package (GB/T 33190-2016): `OFD.xml`, `Document.xml`, page
/// `Content.xml`, templates, annotation, custom tag, attachment, outline, signature and
/// resource lists, or a custom tag file in a namespace of its own.
///
/// Text goes to `sink`: the text codes of one text object joined, and those of consecutive
/// text objects on one baseline (within [`BASELINE_TOLERANCE`]) of one layer joined, so a
/// word split over several codes or objects on a line is seen whole; the text of every other
/// element one line per element (except the ASCII content of [`NON_TEXT`] elements); text
/// attributes (`Remark`, `Title`, `Name`, `Creator` …) one line each. Lines longer than
/// [`MAX_LINE`] bytes come in overlapping pieces. Actions that leave the document (`URI`,
/// `GotoA`, `Sound`, `Movie`, and children of `ofd:Action` the standard does not define) and
/// attachment locations go to `found` as they are met.
///
/// Returns what the part is ([`PartInfo`]). Malformed XML, an undefined entity, a token
/// longer than [`MAX_TOKEN`], nesting deeper than [`MAX_NESTING`] or an attachment location
/// longer than [`MAX_LOCATION`] → a ContentUnreadable refusal whose detail starts with `at`;
/// a refusal from `sink` or `found` stops the read and is returned as it is; an I/O fault
/// of `input` is an `Err`.
pub fn read_part(
    input: &mut dyn BufRead,
    at: &str,
    sink: &mut LineSink<'_>,
    found: &mut FoundSink<'_>,
) -> io::Result<Result<PartInfo, Refusal>> {
    let bounded = Bounded {
        inner: input,
        allowance: MAX_TOKEN,
        exceeded: false,
    };
    let mut reader = quick_xml::Reader::from_reader(bounded);
    let mut buf = Vec::with_capacity(8 * 1024);
    let mut part = PartReader {
        at,
        stack: Vec::new(),
        line: LineBuf::default(),
        field: LineBuf::default(),
        location: String::new(),
        object: TextGeometry::default(),
        baseline: None,
        info: PartInfo::default(),
        root_seen: false,
    };
    let malformed = |detail: &dyn fmt::Display| Ok(Err(unreadable(at, detail)));
    loop {
        buf.clear();
        if buf.capacity() > 1 << 20 {
            buf.shrink_to(64 * 1024);
        }
        reader.get_mut().allowance = MAX_TOKEN;
        let event = match reader.read_event_into(&mut buf) {
            Ok(event) => event,
            Err(_) if reader.get_ref().exceeded => {
                return malformed(&format!("a token is longer than {MAX_TOKEN} bytes"));
            }
            Err(quick_xml::Error::Io(e)) => {
                return Err(
                    Arc::try_unwrap(e).unwrap_or_else(|e| io::Error::new(e.kind(), e.to_string()))
                );
            }
            Err(e) => return malformed(&e),
        };
        if let Event::Start(start) | Event::Empty(start) = &event
            && let Some(bad) = bad_attribute(start)
        {
            return malformed(&bad);
        }
        let step = match event {
            Event::Start(start) => {
                if part.stack.len() >= MAX_NESTING {
                    return malformed(&format!("elements nested deeper than {MAX_NESTING}"));
                }
                part.open(&start, sink, found)
                    .map(|elem| part.stack.push(elem))
            }
            Event::Empty(start) => part
                .open(&start, sink, found)
                .and_then(|elem| part.close(elem, sink, found)),
            Event::End(_) => match part.stack.pop() {
                Some(elem) => part.close(elem, sink, found),
                None => return malformed(&"an end tag without its start"),
            },
            Event::Text(text) => match text.xml10_content() {
                Ok(text) => part.text(&text, sink),
                Err(e) => return malformed(&e),
            },
            Event::CData(data) => match data.xml10_content() {
                Ok(text) => part.text(&text, sink),
                Err(e) => return malformed(&e),
            },
            Event::GeneralRef(reference) => match entity(&reference) {
                Ok(text) => part.text(&text, sink),
                Err(e) => return malformed(&e),
            },
            Event::Eof => {
                if !part.stack.is_empty() {
                    return malformed(&"the part ends inside an element");
                }
                break;
            }
            // OFD parts have none; its entities and default attribute values would be read
            // by a reader that honours a DTD and not by this one (`Y="&y;"`, an ATTLIST
            // giving every text code a Y)
            Event::DocType(_) => return malformed(&"a document type declaration"),
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => Ok(()),
        };
        if let Err(refusal) = step {
            return Ok(Err(refusal));
        }
    }
    let verdict = part
        .line
        .flush(sink)
        .and_then(|()| part.field.flush(sink))
        .map(|()| part.info);
    Ok(verdict)
}

/// The path in the package a location written in `part` names (GB/T 33190-2016, ST_Loc):
/// from the root when it starts with '/', else from the part's folder; '\' read as '/', '.'
/// dropped, '..' going up. `None` when it leaves the package or names nothing.
pub fn resolve(part: &str, location: &str) -> Option<String> {
    let location = location.trim().replace('\\', "/");
    let mut parts: Vec<&str> = Vec::new();
    let rest = match location.strip_prefix('/') {
        Some(rest) => rest,
        None => {
            if let Some((folder, _)) = part.rsplit_once('/') {
                parts.extend(folder.split('/').filter(|c| !c.is_empty()));
            }
            location.as_str()
        }
    };
    for c in rest.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Folders that OFD producers keep attachments in; an entry under one is an attachment
/// whether or not a list names it.
const ATTACHMENT_FOLDERS: &[&str] = &["attach", "attachs", "attachment", "attachments"];

/// The package around the parts: whether its root `OFD.xml` is an OFD entry file, and which
/// entries are attachments. Entries of a type that cannot be inspected are allowed as
/// resources (signature values, seals, fonts, media) but refused as attachments; since an
/// attachment list may come after the entries it names, such entries are held (at most
/// [`MAX_HELD`]) until the list is read.
#[derive(Debug, Default)]
pub struct Package {
    main: bool,
    /// Attachment locations, resolved, lower case.
    attachments: BTreeSet<String>,
    /// Entries of unknown type seen so far, lower case.
    held: BTreeSet<String>,
}

impl Package {
    /// A package of which nothing has been read yet.
    pub fn new() -> Package {
        Package::default()
    }

    /// Records a part read by [`read_part`]: the root `OFD.xml` must have an `ofd:OFD` root
    /// element in the OFD namespace (TypeMismatch otherwise).
    pub fn part(&mut self, path: &str, info: &PartInfo) -> Result<(), Refusal> {
        if path != MAIN_ENTRY {
            return Ok(());
        }
        if !info.root_is_ofd {
            return Err(Refusal::new(
                Reason::TypeMismatch,
                format!(
                    "part {MAIN_ENTRY}: its root element is not ofd:OFD in {NAMESPACE}: not an OFD document"
                ),
            ));
        }
        self.main = true;
        Ok(())
    }

    /// Records an attachment location found in `part`; refuses (ContentUnreadable) when it
    /// names an entry already seen to be of a type that cannot be inspected, or when more
    /// than [`MAX_HELD`] attachments are listed.
    pub fn attachment(&mut self, part: &str, location: &str) -> Result<(), Refusal> {
        let Some(path) = resolve(part, location) else {
            return Ok(());
        };
        let key = path.to_lowercase();
        if self.held.contains(&key) {
            return Err(uninspectable(&path));
        }
        if self.attachments.len() >= MAX_HELD {
            return Err(Refusal::new(
                Reason::ContentUnreadable,
                format!("part {part}: more than {MAX_HELD} attachments"),
            ));
        }
        self.attachments.insert(key);
        Ok(())
    }

    /// Records an entry whose type cannot be inspected: refused (ContentUnreadable) when it
    /// is an attachment (listed already, or in an attachment folder), held otherwise; more
    /// than [`MAX_HELD`] such entries are refused.
    pub fn uninspectable_entry(&mut self, path: &str) -> Result<(), Refusal> {
        let key = path.to_lowercase();
        let in_folder = key.rsplit_once('/').is_some_and(|(folders, _)| {
            folders.split('/').any(|f| ATTACHMENT_FOLDERS.contains(&f))
        });
        if in_folder || self.attachments.contains(&key) {
            return Err(uninspectable(path));
        }
        if self.held.len() >= MAX_HELD {
            return Err(Refusal::new(
                Reason::ContentUnreadable,
                format!("more than {MAX_HELD} embedded files of a type that cannot be inspected"),
            ));
        }
        self.held.insert(key);
        Ok(())
    }

    /// Ends the package: refused (TypeMismatch) when no root `OFD.xml` was read.
    pub fn finish(&self) -> Result<(), Refusal> {
        if self.main {
            return Ok(());
        }
        Err(Refusal::new(
            Reason::TypeMismatch,
            format!("no {MAIN_ENTRY} at the root of the package: not an OFD document"),
        ))
    }
}

fn uninspectable(path: &str) -> Refusal {
    Refusal::new(
        Reason::ContentUnreadable,
        format!("part {path}: an attachment of a type that cannot be inspected"),
    )
}

/// Whether an entry of an OFD package is an XML part, by its name.
pub fn is_xml_part(path: &str) -> bool {
    path.to_ascii_lowercase().ends_with(".xml")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines, actions and attachment locations read from one part, and what it is.
    type Readout = (Vec<String>, Vec<Action>, Vec<String>, PartInfo);

    /// What one part gives, or the refusal.
    fn read(xml: &str) -> Result<Readout, Refusal> {
        let (mut lines, mut actions, mut attachments) = (Vec::new(), Vec::new(), Vec::new());
        let mut sink = |l: &str| {
            lines.push(l.to_owned());
            Ok(())
        };
        let mut found = |f: Found<'_>| {
            match f {
                Found::Action(a) => actions.push(a.clone()),
                Found::Attachment(l) => attachments.push(l.to_owned()),
            }
            Ok(())
        };
        let mut input = xml.as_bytes();
        let info =
            read_part(&mut input, "part x.xml: ", &mut sink, &mut found).expect("no fault")?;
        Ok((lines, actions, attachments, info))
    }

    fn page(body: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><ofd:Page xmlns:ofd="{NAMESPACE}"><ofd:Content><ofd:Layer ID="1">{body}</ofd:Layer></ofd:Content></ofd:Page>"#
        )
    }

    #[test]
    fn text_codes_of_one_object_and_one_baseline_are_joined() {
        let xml = page(
            r#"<ofd:TextObject ID="2" Boundary="10 20 50 6" Font="3" Size="5"><ofd:TextCode X="0" Y="5">机</ofd:TextCode><ofd:TextCode X="5" Y="5">密</ofd:TextCode></ofd:TextObject>
<ofd:TextObject ID="4" Boundary="10 40 10 6"><ofd:TextCode X="0" Y="5">绝</ofd:TextCode></ofd:TextObject>
<ofd:PathObject ID="6" Boundary="0 0 1 1"><ofd:AbbreviatedData>M 1234 5678 L 9012 3456 C</ofd:AbbreviatedData></ofd:PathObject>
<ofd:TextObject ID="5" Boundary="20 40 10 6"><ofd:TextCode X="0" Y="5">密</ofd:TextCode></ofd:TextObject>
<ofd:TextObject ID="7" Boundary="10 60 10 6"><ofd:TextCode X="0" Y="5">next line</ofd:TextCode></ofd:TextObject>"#,
        );
        let (lines, actions, _, info) = read(&xml).unwrap();
        assert_eq!(lines, ["机密", "绝密", "next line"]);
        assert!(actions.is_empty());
        assert!(!info.root_is_ofd);
    }

    #[test]
    fn a_ctm_moves_the_baseline_and_layers_end_lines() {
        let xml = page(
            r#"<ofd:TextObject ID="2" Boundary="0 0 50 50" CTM="1 0 0 1 0 30"><ofd:TextCode X="0" Y="5">内部</ofd:TextCode></ofd:TextObject>
<ofd:TextObject ID="3" Boundary="0 35 50 5"><ofd:TextCode X="9" Y="0">资料</ofd:TextCode></ofd:TextObject>
<ofd:TextObject ID="4" Boundary="0 0 50 5"><ofd:TextCode X="9" Y="5">other</ofd:TextCode></ofd:TextObject>"#,
        );
        let (lines, ..) = read(&xml).unwrap();
        assert_eq!(lines, ["内部资料", "other"]);
        let two_layers = format!(
            r#"<ofd:Page xmlns:ofd="{NAMESPACE}"><ofd:Content><ofd:Layer><ofd:TextObject Boundary="0 0 9 9"><ofd:TextCode Y="5">a</ofd:TextCode></ofd:TextObject></ofd:Layer><ofd:Layer><ofd:TextObject Boundary="0 0 9 9"><ofd:TextCode Y="5">b</ofd:TextCode></ofd:TextObject></ofd:Layer></ofd:Content></ofd:Page>"#
        );
        assert_eq!(read(&two_layers).unwrap().0, ["a", "b"]);
    }

    #[test]
    fn document_info_annotations_and_custom_tags_are_text() {
        let xml = format!(
            r#"<ofd:OFD xmlns:ofd="{NAMESPACE}" Version="1.1" DocType="OFD"><ofd:DocBody><ofd:DocInfo>
<ofd:DocID>0123456789012345678901234567890a</ofd:DocID><ofd:Title>判决书</ofd:Title><ofd:Author>张三</ofd:Author>
<ofd:CreationDate>2026-01-01</ofd:CreationDate><ofd:Keywords><ofd:Keyword>秘密</ofd:Keyword></ofd:Keywords>
<ofd:CustomDatas><ofd:CustomData Name="案号">NB-123456</ofd:CustomData></ofd:CustomDatas></ofd:DocInfo>
<ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>"#
        );
        let (lines, _, _, info) = read(&xml).unwrap();
        assert_eq!(lines, ["判决书", "张三", "秘密", "案号", "NB-123456"]);
        assert!(info.root_is_ofd);
        let annot = format!(
            r#"<ofd:PageAnnot xmlns:ofd="{NAMESPACE}"><ofd:Annot ID="1" Type="Stamp" Creator="李四" Remark="仅供内部使用"><ofd:Appearance Boundary="0 0 9 9"><ofd:TextObject Boundary="0 0 9 9"><ofd:TextCode X="0" Y="5">批注</ofd:TextCode></ofd:TextObject></ofd:Appearance></ofd:Annot></ofd:PageAnnot>"#
        );
        assert_eq!(read(&annot).unwrap().0, ["李四", "仅供内部使用", "批注"]);
        let tag = "<invoice xmlns=\"urn:example:tags\"><buyer>王五</buyer><note>机&#23494;</note></invoice>";
        assert_eq!(read(tag).unwrap().0, ["王五", "机密"]);
    }

    #[test]
    fn non_text_elements_are_skipped_only_when_ascii() {
        let xml = format!(
            r#"<ofd:Res xmlns:ofd="{NAMESPACE}"><ofd:Fonts><ofd:Font ID="2" FontName="宋体"><ofd:FontFile>font_1.ttf</ofd:FontFile></ofd:Font></ofd:Fonts><ofd:MultiMedias><ofd:MultiMedia ID="3" Type="Image"><ofd:MediaFile>机密.png</ofd:MediaFile></ofd:MultiMedia></ofd:MultiMedias></ofd:Res>"#
        );
        assert_eq!(read(&xml).unwrap().0, ["机密.png"]);
    }

    #[test]
    fn actions_that_leave_the_document_are_found_and_goto_is_not() {
        let wrap = |inner: &str| {
            format!(
                r#"<ofd:Document xmlns:ofd="{NAMESPACE}"><ofd:Actions><ofd:Action Event="DO">{inner}</ofd:Action></ofd:Actions></ofd:Document>"#
            )
        };
        let cases = [
            (
                r#"<ofd:URI URI="http://192.0.2.1/x"/>"#,
                ActionKind::Uri,
                "http://192.0.2.1/x",
            ),
            (
                r#"<ofd:GotoA AttachID="5" NewWindow="true"/>"#,
                ActionKind::GotoA,
                "5",
            ),
            (r#"<ofd:Sound ResourceID="7"/>"#, ActionKind::Sound, "7"),
            (
                r#"<ofd:Movie ResourceID="8" Operator="Play"/>"#,
                ActionKind::Movie,
                "8",
            ),
            (
                r#"<ofd:Script>x</ofd:Script>"#,
                ActionKind::Unknown,
                "ofd:Script",
            ),
        ];
        for (inner, kind, target) in cases {
            let (_, actions, ..) = read(&wrap(inner)).unwrap();
            assert_eq!(actions.len(), 1, "{inner}");
            assert_eq!(actions[0].kind, kind);
            assert_eq!(actions[0].target, target);
        }
        let goto = wrap(
            r#"<ofd:Goto><ofd:Dest Type="XYZ" PageID="1" Left="0" Top="0"/></ofd:Goto><ofd:Region><ofd:Area Start="0 0"><ofd:Line Point1="1 1"/></ofd:Area></ofd:Region>"#,
        );
        assert!(read(&goto).unwrap().1.is_empty());
        // a URI outside an action (a custom tag's own element) is not an action
        assert!(
            read("<t><URI URI=\"http://192.0.2.1/\"/></t>")
                .unwrap()
                .1
                .is_empty()
        );
        let a = Action {
            kind: ActionKind::Uri,
            target: "http://192.0.2.1/".into(),
        };
        assert_eq!(a.to_string(), "action URI → http://192.0.2.1/");
    }

    #[test]
    fn attachment_locations_are_found() {
        let xml = format!(
            r#"<ofd:Attachments xmlns:ofd="{NAMESPACE}"><ofd:Attachment ID="1" Name="证据.pdf" Format="pdf"><ofd:FileLoc>证据.pdf</ofd:FileLoc></ofd:Attachment><ofd:Attachment ID="2" Name="b"><ofd:FileLoc>/Doc_0/Attachs/b.bin</ofd:FileLoc></ofd:Attachment></ofd:Attachments>"#
        );
        let (lines, _, attachments, _) = read(&xml).unwrap();
        assert_eq!(attachments, ["证据.pdf", "/Doc_0/Attachs/b.bin"]);
        assert_eq!(lines, ["证据.pdf", "证据.pdf", "b"]);
    }

    #[test]
    fn a_local_name_repeated_among_many_attributes_is_found_at_once() {
        // past the few compared one by one: a tag of 200,000 attributes, the repeat last
        let mut tag = String::from("<a xmlns:p=\"urn:p\"");
        for i in 0..200_000 {
            tag.push_str(&format!(" a{i}=\"\""));
        }
        let unique = format!("{tag}/>");
        assert!(read(&unique).is_ok());
        // the same name (quick-xml's check), and one local name under a prefix (this one)
        for (repeat, said) in [
            (" a199999=\"\"", "duplicated attribute"),
            (" p:a7=\"\"", "local name \"a7\""),
            (" p:a12345=\"\"", "local name \"a12345\""),
        ] {
            let xml = format!("{tag}{repeat}/>");
            let r = read(&xml).expect_err(repeat);
            assert_eq!(r.reason, Reason::ContentUnreadable, "{repeat}: {r}");
            assert!(r.detail.contains(said), "{r}");
        }
    }

    #[test]
    fn a_namespace_declaration_is_not_read_as_the_attribute_of_its_prefix() {
        // `xmlns:Y` binds a prefix: it repeats no `Y`, and is never read as one (read as
        // the text code's Y, 900 would put 密 on a line of its own, apart from 机)
        for decl in [
            "xmlns:Y=\"900\" X=\"5\" Y=\"5\"",
            "X=\"5\" Y=\"5\" xmlns:Y=\"900\"",
        ] {
            let xml = page(&format!(
                r#"<ofd:TextObject Boundary="0 0 50 9"><ofd:TextCode X="0" Y="5">机</ofd:TextCode></ofd:TextObject>
<ofd:TextObject Boundary="0 0 50 9"><ofd:TextCode {decl}>密</ofd:TextCode></ofd:TextObject>"#
            ));
            assert_eq!(read(&xml).unwrap().0, ["机密"], "{decl}");
        }
        // nor read as a text attribute
        let (lines, ..) = read("<Annot xmlns:Remark=\"绝密\" Remark=\"批注\"/>").unwrap();
        assert_eq!(lines, ["批注"]);
    }

    #[test]
    fn a_place_or_target_attribute_under_a_prefix_is_unreadable() {
        // `p:Y` alone: a reader that matches local names puts 密 on a line of its own, a
        // namespace-aware one keeps it beside 机; either reading is refused, not chosen
        for (attrs, said) in [
            (r#"X="5" p:Y="900""#, "\"p:Y\""),
            (r#"p:X="5" Y="5""#, "\"p:X\""),
            (r#"ofd:Y="900" X="5""#, "\"ofd:Y\""),
        ] {
            let xml = page(&format!(
                r#"<ofd:TextObject Boundary="0 0 50 9" xmlns:p="urn:p"><ofd:TextCode X="0" Y="5">机</ofd:TextCode></ofd:TextObject>
<ofd:TextObject Boundary="0 0 50 9" xmlns:p="urn:p"><ofd:TextCode {attrs}>密</ofd:TextCode></ofd:TextObject>"#
            ));
            let r = read(&xml).expect_err(attrs);
            assert_eq!(r.reason, Reason::ContentUnreadable, "{attrs}: {r}");
            assert!(r.detail.contains(said), "{attrs}: {r}");
        }
        for xml in [
            r#"<a xmlns:p="urn:p" p:Boundary="0 0 9 9"/>"#,
            r#"<a xmlns:p="urn:p" p:CTM="1 0 0 1 0 0"/>"#,
            r#"<URI xmlns:p="urn:p" p:URI="http://192.0.2.1/"/>"#,
            r#"<GotoA xmlns:p="urn:p" p:AttachID="1"/>"#,
            r#"<Sound xmlns:p="urn:p" p:ResourceID="1"/>"#,
        ] {
            let r = read(xml).expect_err(xml);
            assert_eq!(r.reason, Reason::ContentUnreadable, "{xml}: {r}");
        }
        // an empty or undeclared prefix, and a URI action's target, all the same
        for xml in [
            r#"<a :Y="900"/>"#,
            r#"<a q:Y="900"/>"#,
            r#"<Action xmlns:p="urn:p"><URI p:URI="http://192.0.2.1/"/></Action>"#,
        ] {
            let r = read(xml).expect_err(xml);
            assert_eq!(r.reason, Reason::ContentUnreadable, "{xml}: {r}");
        }
        // other attributes keep their prefixes, and the unprefixed ones read as before
        let xml = page(
            r#"<ofd:TextObject Boundary="0 0 50 9" xmlns:p="urn:p" p:Note="x" xml:space="preserve"><ofd:TextCode X="0" Y="5" p:Yes="1">机密</ofd:TextCode></ofd:TextObject>"#,
        );
        assert_eq!(read(&xml).unwrap().0, ["机密"]);
        // a default namespace binds no attribute: OFD's own, unprefixed, reads as ever
        let xml = page(&format!(
            r#"<ofd:TextObject Boundary="0 0 50 9"><ofd:TextCode X="0" Y="5">机</ofd:TextCode></ofd:TextObject>
<TextObject xmlns="{NAMESPACE}" Boundary="0 0 50 9"><TextCode X="5" Y="5">密</TextCode></TextObject>"#
        ));
        assert_eq!(read(&xml).unwrap().0, ["机密"]);
    }

    #[test]
    fn a_document_type_declaration_or_an_entity_in_a_place_is_unreadable() {
        // a DTD-aware reader puts the second code at 900 (an entity, or an ATTLIST default
        // for a missing Y); this reader would not expand either, so it reads neither
        let half = r#"<ofd:TextObject Boundary="0 0 50 9"><ofd:TextCode X="0" Y="5">机</ofd:TextCode></ofd:TextObject>"#;
        for (doctype, code) in [
            (
                r#"<!DOCTYPE ofd:Page [<!ENTITY y "900">]>"#,
                r#"<ofd:TextCode X="5" Y="&y;">密</ofd:TextCode>"#,
            ),
            (
                r#"<!DOCTYPE ofd:Page [<!ATTLIST ofd:TextCode Y CDATA "900">]>"#,
                r#"<ofd:TextCode X="5">密</ofd:TextCode>"#,
            ),
            (
                r#"<!DOCTYPE ofd:Page>"#,
                r#"<ofd:TextCode X="5" Y="5">密</ofd:TextCode>"#,
            ),
        ] {
            let body =
                format!(r#"{half}<ofd:TextObject Boundary="0 0 50 9">{code}</ofd:TextObject>"#);
            let xml = page(&body).replacen("?>", &format!("?>{doctype}"), 1);
            let r = read(&xml).expect_err(doctype);
            assert_eq!(r.reason, Reason::ContentUnreadable, "{doctype}: {r}");
            assert!(r.detail.contains("document type declaration"), "{r}");
        }
        // without the declaration, the entity alone: an undefined one, named
        for attrs in [r#"X="5" Y="&y;""#, r#"X="&x;" Y="5""#] {
            let xml = page(&format!(
                r#"{half}<ofd:TextObject Boundary="0 0 50 9"><ofd:TextCode {attrs}>密</ofd:TextCode></ofd:TextObject>"#
            ));
            let r = read(&xml).expect_err(attrs);
            assert_eq!(r.reason, Reason::ContentUnreadable, "{attrs}: {r}");
        }
        let r = read(r#"<TextObject Boundary="&b;"/>"#).unwrap_err();
        assert!(r.detail.contains("Boundary"), "{r}");
        // the five predefined entities and character references still read
        let xml = page(&format!(
            r#"{half}<ofd:TextObject Boundary="0 0 50 9"><ofd:TextCode X="&#53;" Y="&#x35;">密</ofd:TextCode></ofd:TextObject>"#
        ));
        assert_eq!(read(&xml).unwrap().0, ["机密"]);
    }

    #[test]
    fn a_repeat_is_found_either_side_of_the_few_compared_one_by_one() {
        // nine or ten attributes: a repeat of one of the first eight, at the ninth or
        // tenth place, and a repeat of the ninth at the tenth
        let names: Vec<String> = (0..10).map(|i| format!("a{i}")).collect();
        for (len, repeat) in [(8, "a0"), (8, "a7"), (9, "a3"), (9, "a8")] {
            let attrs: String = names[..len].iter().map(|n| format!(" {n}=\"\"")).collect();
            let unique = format!("<a xmlns:p=\"urn:p\"{attrs}/>");
            assert!(read(&unique).is_ok(), "{unique}");
            let xml = format!("<a xmlns:p=\"urn:p\"{attrs} p:{repeat}=\"\"/>");
            let r = read(&xml).expect_err(&xml);
            assert!(
                r.detail.contains(&format!("local name \"{repeat}\"")),
                "{r}"
            );
        }
    }

    #[test]
    fn malformed_parts_are_unreadable() {
        for xml in [
            "<a><b></a>",
            "<p>&undefined;</p>",
            "<p>open",
            "<p attr=>x</p>",
            "</p>",
            "<a Remark=\"&bogus;\"/>",
            // one attribute twice: two readers could take either value
            "<a Remark=\"x\" Remark=\"机密\"/>",
            "<TextObject Boundary=\"0 0 9 9\"><TextCode X=\"0\" X=\"5\" Y=\"5\">a</TextCode></TextObject>",
            // a namespace declared twice
            "<a xmlns:p=\"urn:a\" xmlns:p=\"urn:b\"/>",
            "<a xmlns=\"urn:a\" xmlns=\"urn:b\"/>",
            // one local name under two prefixes: which one counts is the reader's guess
            "<a xmlns:p=\"urn:p\" Remark=\"x\" p:Remark=\"机密\"/>",
            "<a xmlns:p=\"urn:p\" xmlns:q=\"urn:q\" p:Remark=\"x\" q:Remark=\"机密\"/>",
            "<TextObject xmlns:p=\"urn:p\" Boundary=\"0 0 9 9\"><TextCode X=\"0\" p:X=\"5\" Y=\"5\">a</TextCode></TextObject>",
        ] {
            let r = read(xml).expect_err(xml);
            assert_eq!(r.reason, Reason::ContentUnreadable, "{xml}: {r}");
            assert!(r.detail.starts_with("part x.xml: "), "{r}");
        }
        let deep = "<a>".repeat(MAX_NESTING + 1);
        assert_eq!(read(&deep).unwrap_err().reason, Reason::ContentUnreadable);
        let xml = format!("<p>{}</p>", "x".repeat(MAX_TOKEN + 10));
        assert_eq!(read(&xml).unwrap_err().reason, Reason::ContentUnreadable);
        let long = format!(
            "<Attachment><FileLoc>{}</FileLoc></Attachment>",
            "a".repeat(MAX_LOCATION + 1)
        );
        assert_eq!(read(&long).unwrap_err().reason, Reason::ContentUnreadable);
    }

    #[test]
    fn a_long_line_comes_in_overlapping_pieces() {
        let codes = format!(
            "<ofd:TextObject Boundary=\"0 0 1 1\"><ofd:TextCode Y=\"1\">{}</ofd:TextCode><ofd:TextCode>内部资料</ofd:TextCode></ofd:TextObject>",
            "机".repeat(MAX_LINE / 3 - 1)
        );
        let (lines, ..) = read(&page(&codes)).unwrap();
        assert!(lines.len() >= 2);
        assert!(lines.iter().all(|l| l.len() <= MAX_LINE));
        assert!(!lines[0].contains("内部资料"));
        assert!(lines.last().unwrap().contains("内部资料"));
    }

    #[test]
    fn a_sink_refusal_stops_the_read() {
        let mut calls = 0;
        let mut sink = |l: &str| {
            calls += 1;
            if l.contains("机密") {
                Err(Refusal::new(Reason::ClassificationMarking, "机密"))
            } else {
                Ok(())
            }
        };
        let mut found = |_: Found<'_>| Ok(());
        let mut input = "<r><t>ok</t><t>机密</t><t>never</t></r>".as_bytes();
        let r = read_part(&mut input, "", &mut sink, &mut found).unwrap();
        assert_eq!(r.unwrap_err().reason, Reason::ClassificationMarking);
        assert_eq!(calls, 2);
    }

    #[test]
    fn the_root_must_be_ofd_in_its_namespace() {
        for (xml, ok) in [
            (format!("<ofd:OFD xmlns:ofd=\"{NAMESPACE}\"/>"), true),
            (format!("<OFD xmlns=\"{NAMESPACE}\"/>"), true),
            ("<ofd:OFD xmlns:ofd=\"urn:other\"/>".to_string(), false),
            ("<OFD/>".to_string(), false),
            (format!("<ofd:Document xmlns:ofd=\"{NAMESPACE}\"/>"), false),
        ] {
            assert_eq!(read(&xml).unwrap().3.root_is_ofd, ok, "{xml}");
        }
        let mut p = Package::new();
        assert_eq!(p.finish().unwrap_err().reason, Reason::TypeMismatch);
        let bad = p.part(MAIN_ENTRY, &PartInfo { root_is_ofd: false });
        assert_eq!(bad.unwrap_err().reason, Reason::TypeMismatch);
        p.part("Doc_0/Document.xml", &PartInfo::default()).unwrap();
        p.part(MAIN_ENTRY, &PartInfo { root_is_ofd: true }).unwrap();
        p.finish().unwrap();
    }

    #[test]
    fn locations_resolve_from_the_part_or_the_root() {
        let part = "Doc_0/Attachs/Attachments.xml";
        assert_eq!(
            resolve(part, "a.pdf").as_deref(),
            Some("Doc_0/Attachs/a.pdf")
        );
        assert_eq!(
            resolve(part, "/Doc_0/x.bin").as_deref(),
            Some("Doc_0/x.bin")
        );
        assert_eq!(
            resolve(part, "../Res\\y.bin").as_deref(),
            Some("Doc_0/Res/y.bin")
        );
        assert_eq!(resolve("OFD.xml", "./z").as_deref(), Some("z"));
        assert_eq!(resolve(part, "../../../x"), None);
        assert_eq!(resolve(part, "/"), None);
    }

    #[test]
    fn entries_of_unknown_type_are_refused_only_as_attachments() {
        // the list first, then the entry
        let mut p = Package::new();
        p.attachment("Doc_0/Attachments.xml", "data.bin").unwrap();
        let r = p.uninspectable_entry("Doc_0/data.bin").unwrap_err();
        assert_eq!(r.reason, Reason::ContentUnreadable);
        assert!(r.detail.contains("Doc_0/data.bin"), "{r}");
        // the entry first, then the list
        let mut p = Package::new();
        p.uninspectable_entry("Doc_0/Signs/Sign_0/SignedValue.dat")
            .unwrap();
        p.uninspectable_entry("Doc_0/Res/movie.mp4").unwrap();
        let r = p.attachment("Doc_0/Attachments.xml", "/Doc_0/Res/movie.mp4");
        assert_eq!(r.unwrap_err().reason, Reason::ContentUnreadable);
        // in an attachment folder, listed or not
        let mut p = Package::new();
        let r = p.uninspectable_entry("Doc_0/Attachs/x.bin");
        assert_eq!(r.unwrap_err().reason, Reason::ContentUnreadable);
    }
}
