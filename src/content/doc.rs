//! Text of OOXML (docx, xlsx, pptx) and ODF (odt, ods, odp) documents: which parts of the
//! package carry text, which parts are active content, and the text of one XML part streamed
//! paragraph by paragraph.
//!
//! The XML is read with a streaming reader and one reused buffer; no single token may be
//! longer than `MAX_TOKEN`, nesting deeper than `MAX_NESTING` is refused, and a paragraph
//! longer than `MAX_PARAGRAPH` reaches the sink in pieces, each piece after a cut beginning
//! with the end of the piece before it ([`overlap_tail`]), so a word across a cut is seen
//! whole. Entities beyond the five of XML and character references are not expanded: a part
//! that uses one is refused as unreadable.

use crate::content::reach::Watch;
use crate::content::text::overlap_tail;
use crate::content::{LineSink, Scan};
use crate::core::reason::{Reason, Refusal};
use quick_xml::events::{BytesRef, Event};
use std::borrow::Cow;
use std::io::{self, BufRead};
use std::sync::Arc;

/// Longest paragraph handed to the sink at once, in bytes of UTF-8.
pub const MAX_PARAGRAPH: usize = 64 * 1024;

/// Longest single XML token (a tag, a text node, a comment) read, in bytes.
pub const MAX_TOKEN: usize = 8 << 20;

/// Deepest element nesting accepted.
pub const MAX_NESTING: usize = 1024;

/// How an element shapes the text around it, by local name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Ends a paragraph (or a line, a row, a shared string).
    Break,
    /// Stands for a tab.
    Tab,
    /// Stands for a space (ODF `text:s`).
    Space,
    /// Anything else.
    Plain,
}

fn shape(local: &[u8]) -> Shape {
    match local {
        // w:p, a:p, text:p, text:h, w:br, a:br, w:cr, text:line-break, table rows (w:tr,
        // a:tr, table:table-row, x row), shared strings (si), list items, slides and pages.
        b"p" | b"h" | b"br" | b"cr" | b"line-break" | b"tr" | b"table-row" | b"row" | b"si"
        | b"list-item" | b"page" | b"sld" | b"txBody" | b"note" | b"annotation" => Shape::Break,
        // w:tab, text:tab.
        b"tab" => Shape::Tab,
        b"s" => Shape::Space,
        _ => Shape::Plain,
    }
}

/// A reader that lets the XML parser take at most `allowance` bytes per token (the caller
/// resets it before each token); `exceeded` tells a token cut by it from malformed XML.
/// Shared by the readers of XML parts (office documents, OFD).
pub(super) struct Bounded<'a> {
    pub(super) inner: &'a mut dyn BufRead,
    pub(super) allowance: usize,
    pub(super) exceeded: bool,
}

impl io::Read for Bounded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Bounded<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.allowance == 0 {
            self.exceeded = true;
            return Err(io::Error::other("XML token too long"));
        }
        let allowance = self.allowance;
        let available = self.inner.fill_buf()?;
        let n = available.len().min(allowance);
        Ok(&available[..n])
    }

    fn consume(&mut self, amt: usize) {
        self.allowance = self.allowance.saturating_sub(amt);
        self.inner.consume(amt);
    }
}

/// Gathers the text of the current paragraph and hands it to the sink.
struct Paragraph<'s, 'a> {
    text: String,
    /// How many bytes at the start of `text` were handed over already, as the end of the
    /// piece before a cut.
    carried: usize,
    sink: &'s mut LineSink<'a>,
}

impl Paragraph<'_, '_> {
    fn push(&mut self, mut s: &str) -> Result<(), Refusal> {
        while self.text.len() + s.len() > MAX_PARAGRAPH {
            let mut room = MAX_PARAGRAPH.saturating_sub(self.text.len());
            while room > 0 && !s.is_char_boundary(room) {
                room -= 1;
            }
            if room == 0 && self.text.is_empty() {
                // Cannot happen for MAX_PARAGRAPH ≥ 4, kept for safety: take one char.
                room = s.chars().next().map_or(s.len(), char::len_utf8);
            }
            self.text.push_str(&s[..room]);
            s = &s[room..];
            self.cut()?;
        }
        self.text.push_str(s);
        Ok(())
    }

    /// Text that may carry line breaks of its own: each one ends a line.
    fn push_text(&mut self, s: &str) -> Result<(), Refusal> {
        let mut lines = s.split('\n');
        if let Some(first) = lines.next() {
            self.push(first.trim_end_matches('\r'))?;
        }
        for line in lines {
            self.flush()?;
            self.push(line.trim_end_matches('\r'))?;
        }
        Ok(())
    }

    /// Ends the paragraph: hands over what it has not handed over yet.
    fn flush(&mut self) -> Result<(), Refusal> {
        let fresh = self.text.len() > self.carried;
        let result = if fresh {
            (self.sink)(&self.text)
        } else {
            Ok(())
        };
        self.text.clear();
        self.carried = 0;
        result
    }

    /// Hands over a full piece of a paragraph that goes on, keeping its end to start the
    /// next piece with.
    fn cut(&mut self) -> Result<(), Refusal> {
        (self.sink)(&self.text)?;
        let keep = overlap_tail(&self.text).len();
        self.text.drain(..self.text.len() - keep);
        self.carried = keep;
        Ok(())
    }
}

fn malformed(detail: impl std::fmt::Display) -> Scan {
    Ok(Err(Refusal::new(
        Reason::ContentUnreadable,
        format!("document XML cannot be read: {detail}"),
    )))
}

/// The text of an entity reference: a character reference or one of the five XML entities;
/// `Err` names any other (not expanded: a part that uses one is refused).
pub(super) fn entity(reference: &BytesRef<'_>) -> Result<Cow<'static, str>, String> {
    match reference.resolve_char_ref() {
        Ok(Some(c)) => return Ok(Cow::Owned(c.to_string())),
        Ok(None) => {}
        Err(e) => return Err(e.to_string()),
    }
    let name = reference.decode().map_err(|e| e.to_string())?;
    match quick_xml::escape::resolve_xml_entity(&name) {
        Some(text) => Ok(Cow::Borrowed(text)),
        None => Err(format!("undefined entity &{name};")),
    }
}

/// Streams the text of one XML part (a docx/xlsx/pptx part such as word/document.xml,
/// xl/sharedStrings.xml, ppt/slides/slide1.xml, or ODF content.xml / styles.xml / meta.xml)
/// to `sink`: character data (and CDATA) concatenated, with a line break emitted at the end
/// of each paragraph-like element (p, h, br, cr, tr, row, si, list-item, page …; tab as a
/// tab) so runs like `<w:t>机</w:t><w:t>密</w:t>` in one paragraph come out
/// as "机密". Text outside any paragraph (document properties, cell values) ends a line where
/// its element ends. Entity references are decoded. A paragraph longer than 64 KiB is
/// flushed in pieces of at most 64 KiB, each after the first starting with the last
/// [`OVERLAP`](crate::content::text::OVERLAP) characters of the one before. Malformed XML → ContentUnreadable refusal; an I/O fault of `input` is
/// returned as an error.
pub fn xml_text(input: &mut dyn BufRead, sink: &mut LineSink<'_>) -> Scan {
    read_part(input, sink, None)
}

/// [`xml_text`], with `watch` shown every element and the text inside it, so that what
/// reaches outside the document (fields, links; see [`crate::content::reach`]) is refused
/// as the part is read, in the same pass.
pub fn xml_text_watched(
    input: &mut dyn BufRead,
    sink: &mut LineSink<'_>,
    watch: &mut Watch<'_>,
) -> Scan {
    read_part(input, sink, Some(watch))
}

fn read_part(
    input: &mut dyn BufRead,
    sink: &mut LineSink<'_>,
    mut watch: Option<&mut Watch<'_>>,
) -> Scan {
    let bounded = Bounded {
        inner: input,
        allowance: MAX_TOKEN,
        exceeded: false,
    };
    let mut reader = quick_xml::Reader::from_reader(bounded);
    let mut buf = Vec::with_capacity(8 * 1024);
    let mut para = Paragraph {
        text: String::new(),
        carried: 0,
        sink,
    };
    let mut depth = 0usize;
    let mut in_paragraph = 0usize;
    loop {
        buf.clear();
        if buf.capacity() > 1 << 20 {
            buf.shrink_to(64 * 1024);
        }
        reader.get_mut().allowance = MAX_TOKEN;
        let event = match reader.read_event_into(&mut buf) {
            Ok(event) => event,
            Err(_) if reader.get_ref().exceeded => {
                return malformed(format!("a token is longer than {MAX_TOKEN} bytes"));
            }
            Err(quick_xml::Error::Io(e)) => {
                return Err(
                    Arc::try_unwrap(e).unwrap_or_else(|e| io::Error::new(e.kind(), e.to_string()))
                );
            }
            Err(e) => return malformed(e),
        };
        let step = match event {
            Event::Start(start) => {
                if let Some(e) = start.attributes().find_map(Result::err) {
                    return malformed(e);
                }
                if let Some(Err(r)) = watch.as_deref_mut().map(|w| w.start(&start)) {
                    return Ok(Err(r));
                }
                if let Err(r) = attribute_text(&start, para.sink) {
                    return Ok(Err(r));
                }
                // `<w:sym …></w:sym>` as well as `<w:sym …/>`
                if start.local_name().as_ref() == b"sym"
                    && let Some(c) = sym_char(&start)
                    && let Err(r) = para.push(c.encode_utf8(&mut [0u8; 4]))
                {
                    return Ok(Err(r));
                }
                depth += 1;
                if depth > MAX_NESTING {
                    return malformed(format!("elements nested deeper than {MAX_NESTING}"));
                }
                if shape(start.local_name().as_ref()) == Shape::Break {
                    in_paragraph += 1;
                }
                Ok(())
            }
            Event::End(end) => {
                if let Some(Err(r)) = watch
                    .as_deref_mut()
                    .map(|w| w.end(end.local_name().as_ref()))
                {
                    return Ok(Err(r));
                }
                depth = depth.saturating_sub(1);
                match shape(end.local_name().as_ref()) {
                    Shape::Break => {
                        in_paragraph = in_paragraph.saturating_sub(1);
                        para.flush()
                    }
                    Shape::Tab => para.push("\t"),
                    Shape::Space => para.push(" "),
                    Shape::Plain if in_paragraph == 0 => para.flush(),
                    Shape::Plain => Ok(()),
                }
            }
            Event::Empty(empty) => {
                if let Some(e) = empty.attributes().find_map(Result::err) {
                    return malformed(e);
                }
                if let Some(w) = watch.as_deref_mut()
                    && let Err(r) = w
                        .start(&empty)
                        .and_then(|()| w.end(empty.local_name().as_ref()))
                {
                    return Ok(Err(r));
                }
                if let Err(r) = attribute_text(&empty, para.sink) {
                    return Ok(Err(r));
                }
                // a symbol character (ECMA-376 Part 1 §17.3.3.30, `w:sym w:char="673A"`):
                // text of the run it stands in, as Word shows it
                if empty.local_name().as_ref() == b"sym"
                    && let Some(c) = sym_char(&empty)
                    && let Err(r) = para.push(c.encode_utf8(&mut [0u8; 4]))
                {
                    return Ok(Err(r));
                }
                match shape(empty.local_name().as_ref()) {
                    Shape::Break => para.flush(),
                    Shape::Tab => para.push("\t"),
                    Shape::Space => para.push(" "),
                    Shape::Plain => Ok(()),
                }
            }
            Event::Text(text) => {
                let text = match text.xml10_content() {
                    Ok(text) => text,
                    Err(e) => return malformed(e),
                };
                if let Some(Err(r)) = watch.as_deref_mut().map(|w| w.text(&text)) {
                    return Ok(Err(r));
                }
                // Whitespace with a line break between tags is layout, not text.
                let layout = text.contains('\n') && text.trim().is_empty();
                if layout || (para.text.is_empty() && text.trim().is_empty()) {
                    Ok(())
                } else {
                    para.push_text(&text)
                }
            }
            // the watch reads a field's code or a formula through references and CDATA too
            // (`&#124;` is the DDE operator as well as `|` is)
            Event::CData(data) => match data.xml10_content() {
                Ok(text) => {
                    if let Some(Err(r)) = watch.as_deref_mut().map(|w| w.text(&text)) {
                        return Ok(Err(r));
                    }
                    para.push_text(&text)
                }
                Err(e) => return malformed(e),
            },
            Event::GeneralRef(reference) => match entity(&reference) {
                Ok(text) => {
                    if let Some(Err(r)) = watch.as_deref_mut().map(|w| w.text(&text)) {
                        return Ok(Err(r));
                    }
                    para.push_text(&text)
                }
                Err(e) => return malformed(e),
            },
            Event::Eof => {
                if depth != 0 {
                    return malformed("the document ends inside an element");
                }
                if let Some(Err(r)) = watch.as_deref_mut().map(|w| w.finish()) {
                    return Ok(Err(r));
                }
                break;
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => Ok(()),
        };
        if let Err(refusal) = step {
            return Ok(Err(refusal));
        }
    }
    Ok(para.flush())
}

/// Attributes that hold text a reader sees, by element and attribute local name: sheet tabs
/// (`sheet/@name` in SpreadsheetML, `table:table/@table:name` in ODF), picture and shape alt
/// text and titles (`wp:docPr`, `p:cNvPr`, `xdr:cNvPr` `@descr` and `@title`), content
/// control names (`w:alias/@w:val`).
const TEXT_ATTRIBUTES: &[(&[u8], &[u8])] = &[
    // VML WordArt: the text it draws
    (b"textpath", b"string"),
    (b"sheet", b"name"),
    (b"table", b"name"),
    (b"docPr", b"descr"),
    (b"docPr", b"title"),
    (b"cNvPr", b"descr"),
    (b"cNvPr", b"title"),
    (b"alias", b"val"),
];

/// The character a `w:sym` element stands for: its `char` attribute, hexadecimal.
fn sym_char(start: &quick_xml::events::BytesStart<'_>) -> Option<char> {
    let value = start
        .attributes()
        .flatten()
        .find_map(|a| (a.key.local_name().as_ref() == b"char").then(|| a.value.into_owned()))?;
    let hex = std::str::from_utf8(&value).ok()?;
    char::from_u32(u32::from_str_radix(hex, 16).ok()?)
}

/// Hands the text of `start`'s text-bearing attributes ([`TEXT_ATTRIBUTES`]) to `sink`, each
/// as a line of its own (in pieces of at most [`MAX_PARAGRAPH`] bytes, each after the first
/// starting with the end of the one before).
fn attribute_text(
    start: &quick_xml::events::BytesStart<'_>,
    sink: &mut LineSink<'_>,
) -> Result<(), Refusal> {
    let local = start.local_name();
    if !TEXT_ATTRIBUTES.iter().any(|(e, _)| *e == local.as_ref()) {
        return Ok(());
    }
    for attr in start.attributes().flatten() {
        let key = attr.key.local_name();
        if !TEXT_ATTRIBUTES
            .iter()
            .any(|(e, a)| *e == local.as_ref() && *a == key.as_ref())
        {
            continue;
        }
        let Ok(value) = attr.normalized_value(quick_xml::XmlVersion::Implicit1_0) else {
            return Err(Refusal::new(
                Reason::ContentUnreadable,
                "document XML cannot be read: an attribute's text cannot be decoded",
            ));
        };
        let mut rest: &str = &value;
        loop {
            if rest.len() <= MAX_PARAGRAPH {
                sink(rest)?;
                break;
            }
            let mut end = MAX_PARAGRAPH;
            while !rest.is_char_boundary(end) {
                end -= 1;
            }
            let piece = &rest[..end];
            sink(piece)?;
            let keep = overlap_tail(piece).len();
            rest = &rest[end - keep..];
        }
    }
    Ok(())
}

fn lower(path: &str) -> String {
    path.to_ascii_lowercase()
}

/// Which parts of an OOXML/ODF package carry text worth scanning (by path): *.xml parts under
/// word/, xl/, ppt/, docProps/, and ODF content.xml, styles.xml, meta.xml; not media.
pub fn is_text_part(path: &str) -> bool {
    let path = lower(path);
    if matches!(path.as_str(), "content.xml" | "styles.xml" | "meta.xml") {
        return true;
    }
    if !path.ends_with(".xml") || path.contains("/media/") || path.contains("/_rels/") {
        return false;
    }
    ["word/", "xl/", "ppt/", "docprops/"]
        .iter()
        .any(|prefix| path.starts_with(prefix))
}

/// Active content in an OOXML/ODF package, by part path: VBA projects (vbaProject.bin and its
/// signature and data parts), Excel 4.0 macro sheets, ActiveX controls (activeX/), ODF Basic
/// and Scripts directories; returns a description to refuse with ActiveContent.
pub fn active_part(path: &str) -> Option<&'static str> {
    let path = lower(path);
    let name = path.rsplit('/').next().unwrap_or(&path);
    if name.starts_with("vbaproject") || name == "vbadata.xml" {
        return Some("VBA macro project");
    }
    if path.contains("macrosheets/") {
        return Some("Excel 4.0 macro sheet");
    }
    if path.starts_with("activex/") || path.contains("/activex/") {
        return Some("ActiveX control");
    }
    if name == "connections.xml" || path.contains("querytables/") {
        return Some(
            "external data connection (a web query, database or file the workbook refreshes from)",
        );
    }
    if path.starts_with("basic/") {
        return Some("ODF Basic macros");
    }
    if path.starts_with("scripts/") {
        return Some("ODF scripts");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(xml: &str) -> Result<Vec<String>, Refusal> {
        let mut out = Vec::new();
        let mut sink = |line: &str| {
            out.push(line.to_owned());
            Ok(())
        };
        let mut input = xml.as_bytes();
        xml_text(&mut input, &mut sink).expect("no I/O fault")?;
        Ok(out)
    }

    #[test]
    fn docx_runs_in_one_paragraph_are_joined() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">
  <w:body>
    <w:p><w:pPr><w:jc w:val="center"/></w:pPr>
      <w:r><w:t>机</w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>密</w:t></w:r>
    </w:p>
    <w:p><w:r><w:t xml:space="preserve">Name </w:t></w:r><w:r><w:tab/><w:t>Value</w:t></w:r><w:r><w:br/><w:t>next</w:t></w:r></w:p>
    <w:tbl><w:tr><w:tc><w:p><w:r><w:t>a</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>b</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
  </w:body>
</w:document>"#;
        assert_eq!(
            lines(xml).unwrap(),
            ["机密", "Name \tValue", "next", "a", "b"]
        );
    }

    #[test]
    fn xlsx_shared_strings_one_per_line() {
        let xml = r#"<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="2">
<si><t>绝密</t></si><si><r><t>身份证</t></r><r><rPr><b/></rPr><t>号码</t></r></si><si><t/></si></sst>"#;
        assert_eq!(lines(xml).unwrap(), ["绝密", "身份证号码"]);
    }

    #[test]
    fn odf_content_and_meta() {
        let xml = r#"<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:text>
<text:h text:outline-level="1">标题</text:h>
<text:p>秘<text:span>密</text:span>文件<text:s/>end<text:line-break/>second</text:p>
<text:list><text:list-item><text:p>item</text:p></text:list-item></text:list>
</office:text></office:body></office:document-content>"#;
        assert_eq!(
            lines(xml).unwrap(),
            ["标题", "秘密文件 end", "second", "item"]
        );
        let meta = r#"<office:document-meta xmlns:office="o" xmlns:dc="d"><office:meta><dc:title>Plan</dc:title><dc:creator>Zhang</dc:creator></office:meta></office:document-meta>"#;
        assert_eq!(lines(meta).unwrap(), ["Plan", "Zhang"]);
    }

    #[test]
    fn entities_and_cdata_are_decoded() {
        let xml = "<w:p xmlns:w=\"w\"><w:t>a &amp; b &lt;c&gt; &#26426;&#x5BC6; &quot;q&apos;</w:t><w:t><![CDATA[<raw>]]></w:t></w:p>";
        assert_eq!(lines(xml).unwrap(), ["a & b <c> 机密 \"q'<raw>"]);
    }

    #[test]
    fn malformed_xml_is_unreadable() {
        for xml in [
            "<w:p><w:t>x</w:p>",
            "<a><b></a>",
            "<p>&undefined;</p>",
            "<p>open",
            "<p attr=>x</p>",
            "<p>&#0;</p>",
        ] {
            let refusal = lines(xml).expect_err(xml);
            assert_eq!(
                refusal.reason,
                Reason::ContentUnreadable,
                "{xml}: {refusal}"
            );
        }
    }

    #[test]
    fn long_paragraphs_come_in_pieces_and_nesting_is_bounded() {
        let body = "机".repeat(50_000); // 150,000 bytes
        let got = lines(&format!("<p>{body}</p>")).unwrap();
        assert!(got.len() >= 3);
        assert!(got.iter().all(|l| l.len() <= MAX_PARAGRAPH));
        // Each piece after the first starts with the end of the one before.
        let mut joined = got[0].clone();
        for pair in got.windows(2) {
            let tail = overlap_tail(&pair[0]);
            assert_eq!(tail.chars().count(), crate::content::text::OVERLAP);
            let rest = pair[1].strip_prefix(tail).expect("overlap");
            assert!(!rest.is_empty());
            joined.push_str(rest);
        }
        assert!(joined == body, "the pieces make the paragraph");
        let deep = "<a>".repeat(MAX_NESTING + 1);
        assert_eq!(lines(&deep).unwrap_err().reason, Reason::ContentUnreadable);
    }

    /// The pieces of one paragraph of `before` then `word` then `after`, where `before` is
    /// long enough for the cut to fall inside `word`.
    fn straddling(before: &str, word: &str, after: &str) -> Vec<String> {
        let got = lines(&format!("<w:p><w:t>{before}{word}{after}</w:t></w:p>")).unwrap();
        assert!(got.len() >= 2, "the paragraph is cut");
        got
    }

    #[test]
    fn a_word_across_a_cut_is_seen_whole() {
        let markings = crate::content::marking::MarkingDetector::new(&[]);
        // The cut falls right after 绝: the first piece ends with it.
        let pad = "x".repeat(MAX_PARAGRAPH - "绝".len());
        let got = straddling(&pad, "绝密", "。后文");
        assert!(got[0].ends_with('绝'));
        assert!(markings.find(&got[0]).is_none());
        assert_eq!(markings.find(&got[1]).unwrap().level, "绝密");
        // A card number in groups, cut between its groups.
        let card = "4111 1111 1111 1111";
        let pad = "y".repeat(MAX_PARAGRAPH - 10);
        let got = straddling(&format!("{pad} "), card, " 止");
        let pii = crate::content::pii::PiiDetector::new(&crate::content::pii::PiiKind::ALL);
        assert!(pii.find(&got[0]).is_empty());
        let found = pii.find(&got[1]);
        assert_eq!(found.len(), 1);
        assert_eq!(&got[1][found[0].range.clone()], card);
        // A keyword in Chinese, cut in the middle.
        let rules = crate::content::rules::TextRules::new(&["内部资料".to_string()], &[]).unwrap();
        let pad = "机".repeat(MAX_PARAGRAPH / 3 - 1);
        let got = straddling(&pad, "内部资料", "");
        assert!(rules.find(&got[0]).is_none());
        assert_eq!(rules.find(&got[1]).unwrap().rule, "内部资料");
    }

    #[test]
    fn the_overlap_ends_with_the_paragraph() {
        // A paragraph that fills one piece exactly is handed over once; the next paragraph
        // carries nothing of it.
        let full = "z".repeat(MAX_PARAGRAPH);
        let got = lines(&format!("<r><p>{full}</p><p>next</p></r>")).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], full);
        assert_eq!(got[1], "next");
        // Text outside the paragraphs does not see the end of the last one either.
        let got = lines(&format!("<r><p>{full}a</p><t>other</t></r>")).unwrap();
        assert_eq!(got.len(), 3);
        assert!(got[1].ends_with('a') && got[1].len() > 1);
        assert_eq!(got[2], "other");
    }

    #[test]
    fn an_overlong_token_is_refused() {
        let xml = format!("<p>{}</p>", "x".repeat(MAX_TOKEN + 10));
        assert_eq!(lines(&xml).unwrap_err().reason, Reason::ContentUnreadable);
    }

    #[test]
    fn a_sink_refusal_stops_the_scan() {
        let mut calls = 0;
        let mut sink = |line: &str| {
            calls += 1;
            if line.contains("机密") {
                Err(Refusal::new(Reason::ClassificationMarking, "机密"))
            } else {
                Ok(())
            }
        };
        let mut input = "<r><p>ok</p><p>机密</p><p>never</p></r>".as_bytes();
        let verdict = xml_text(&mut input, &mut sink).unwrap();
        assert_eq!(verdict.unwrap_err().reason, Reason::ClassificationMarking);
        assert_eq!(calls, 2);
    }

    #[test]
    fn text_parts_and_active_parts() {
        for path in [
            "word/document.xml",
            "word/footnotes.xml",
            "xl/sharedStrings.xml",
            "xl/worksheets/sheet1.xml",
            "ppt/slides/slide1.xml",
            "docProps/core.xml",
            "content.xml",
            "styles.xml",
            "meta.xml",
        ] {
            assert!(is_text_part(path), "{path}");
        }
        for path in [
            "word/media/image1.png",
            "[Content_Types].xml",
            "word/_rels/document.xml.rels",
            "Pictures/a.png",
            "settings.xml",
            "word/vbaProject.bin",
        ] {
            assert!(!is_text_part(path), "{path}");
        }
        assert!(active_part("word/vbaProject.bin").is_some());
        assert!(active_part("xl/vbaProjectSignature.bin").is_some());
        assert!(active_part("xl/macrosheets/sheet1.xml").is_some());
        assert!(active_part("word/activeX/activeX1.xml").is_some());
        assert!(active_part("Basic/Standard/Module1.xml").is_some());
        assert!(active_part("Scripts/python/x.py").is_some());
        assert_eq!(active_part("word/document.xml"), None);
        assert_eq!(active_part("content.xml"), None);
    }

    fn watched(xml: &str) -> Result<(), Refusal> {
        watched_as("content.xml", xml)
    }

    fn watched_as(path: &str, xml: &str) -> Result<(), Refusal> {
        let mut watch = Watch::new(path, crate::content::reach::Hyperlinks::Allow);
        xml_text_watched(&mut xml.as_bytes(), &mut |_| Ok(()), &mut watch).unwrap()
    }

    #[test]
    fn formulas_are_read_through_references_and_cdata_and_data_connections_refused() {
        let sheet = |cell: &str| {
            format!(
                r#"<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1">{cell}<v>0</v></c></row></sheetData></worksheet>"#
            )
        };
        for cell in [
            "<f>cmd|'/c calc'!A1</f>",
            "<f>cmd&#124;'/c calc'!A1</f>",
            r#"<f><![CDATA[WEBSERVICE("http://198.51.100.1/x")]]></f>"#,
            "<f>HYPERLINK(&quot;file://198.51.100.1/x.exe&quot;)</f>",
        ] {
            let r = watched_as("xl/worksheets/sheet1.xml", &sheet(cell)).unwrap_err();
            assert_eq!(r.reason, Reason::ActiveContent, "{cell}: {r}");
        }
        // a fraction of a Word equation is no formula: |x| is an absolute value there
        let equation = r#"<w:p><m:oMath><m:f><m:num><m:r><m:t>|x|</m:t></m:r></m:num><m:den><m:r><m:t>2</m:t></m:r></m:den></m:f></m:oMath></w:p>"#;
        assert_eq!(watched_as("word/document.xml", equation), Ok(()));
        for cell in [
            "<f>SUM(B1:B9)&amp;\"元\"</f>",
            "<f>HYPERLINK(&quot;https://www.court.gov.cn/&quot;,&quot;法院&quot;)</f>",
            r#"<f t="shared" ref="A1:A9" si="0"/>"#,
        ] {
            assert_eq!(
                watched_as("xl/worksheets/sheet1.xml", &sheet(cell)),
                Ok(()),
                "{cell}"
            );
        }
        for part in ["xl/connections.xml", "xl/queryTables/queryTable1.xml"] {
            assert!(active_part(part).is_some_and(|w| w.contains("data connection")));
        }
    }

    #[test]
    fn odf_links_to_the_outside_are_refused_and_embedded_ones_pass() {
        let doc = |inner: &str| {
            format!(
                r#"<office:document-content xmlns:office="o" xmlns:text="t" xmlns:draw="d" xmlns:xlink="x" xmlns:table="b"><office:body><office:text>{inner}</office:text></office:body></office:document-content>"#
            )
        };
        let hostile = [
            r#"<draw:frame><draw:object xlink:href="http://198.51.100.7/o.odt"/></draw:frame>"#,
            r#"<draw:frame><draw:image xlink:href="\\198.51.100.7\share\a.png"/></draw:frame>"#,
            r#"<text:section><text:section-source xlink:href="file:///etc/passwd"/></text:section>"#,
            r#"<text:dde-connection-decl office:dde-application="cmd"/>"#,
            r#"<table:table><table:table-source xlink:href="https://198.51.100.7/s.ods"/></table:table>"#,
            r#"<text:p><text:a xlink:href="file:///C:/x.exe">x</text:a></text:p>"#,
            // a relative reference resolves against the package: ../ is beside the document
            r#"<draw:frame><draw:object xlink:href="../evil.ods" xlink:type="simple"/></draw:frame>"#,
            r#"<draw:frame><draw:image xlink:href="..\share\a.png"/></draw:frame>"#,
            r#"<draw:frame><draw:object xlink:href="./../evil.ods"/></draw:frame>"#,
            r#"<draw:frame><draw:image xlink:href="Pictures/../../x.png"/></draw:frame>"#,
            r#"<draw:frame><draw:object xlink:href="%2E%2E/x.ods"/></draw:frame>"#,
        ];
        for inner in hostile {
            let r = watched(&doc(inner)).unwrap_err();
            assert_eq!(r.reason, Reason::ActiveContent, "{inner}: {r}");
        }
        let benign = [
            r#"<draw:frame><draw:object xlink:href="./Object 1"/></draw:frame>"#,
            r#"<draw:frame><draw:image xlink:href="Pictures/1.png"/></draw:frame>"#,
            r#"<draw:frame><draw:image xlink:href="Pictures/../Pictures/1.png"/></draw:frame>"#,
            r#"<text:p><text:a xlink:href="https://www.court.gov.cn/">法院</text:a></text:p>"#,
        ];
        for inner in benign {
            assert_eq!(watched(&doc(inner)), Ok(()), "{inner}");
        }
    }

    #[test]
    fn field_code_after_the_result_and_simple_fields_inside_code_are_judged() {
        let run = |inner: &str| format!("<w:r>{inner}</w:r>");
        let begin = run(r#"<w:fldChar w:fldCharType="begin"/>"#);
        let separate = run(r#"<w:fldChar w:fldCharType="separate"/>"#);
        let end = run(r#"<w:fldChar w:fldCharType="end"/>"#);
        let code = |t: &str| run(&format!("<w:instrText>{t}</w:instrText>"));
        let doc =
            |body: String| format!("<w:document><w:body><w:p>{body}</w:p></w:body></w:document>");
        // code written after the result began: judged alone
        let late = doc(format!(
            "{begin}{separate}{}{end}",
            code(r"DDEAUTO c:\cmd.exe")
        ));
        assert!(watched_as("word/document.xml", &late).is_err());
        // a simple field that spells the keyword inside another's code
        let simple = doc(format!(
            r#"{begin}<w:fldSimple w:instr="QUOTE 68 68 69 65 85 84 79"/>{}{end}"#,
            code(r" c:\cmd.exe")
        ));
        let r = watched_as("word/document.xml", &simple).unwrap_err();
        assert!(r.detail.contains("built by a nested field"), "{r}");
        let page =
            doc(r#"<w:fldSimple w:instr=" PAGE "><w:r><w:t>3</w:t></w:r></w:fldSimple>"#.into());
        assert_eq!(watched_as("word/document.xml", &page), Ok(()));
    }

    #[test]
    fn symbols_and_wordart_are_text() {
        let sym = r#"<w:p><w:r><w:t>本件</w:t><w:sym w:font="SimSun" w:char="673A"/><w:sym w:font="SimSun" w:char="5BC6"/></w:r></w:p>"#;
        assert_eq!(lines(sym).unwrap(), vec!["本件机密"]);
        let open_close =
            r#"<w:p><w:r><w:sym w:char="673A"></w:sym><w:sym w:char="5BC6"></w:sym></w:r></w:p>"#;
        assert_eq!(lines(open_close).unwrap(), vec!["机密"]);
        let art = r#"<w:p><w:r><w:pict><v:shape><v:textpath style="font-family:SimSun" string="机密"/></v:shape></w:pict></w:r></w:p>"#;
        assert!(lines(art).unwrap().contains(&"机密".to_string()));
        // a symbol font's private-use character is kept, and a broken one is no text
        let odd = r#"<w:p><w:r><w:sym w:font="Wingdings" w:char="F04A"/><w:sym w:char="zz"/></w:r></w:p>"#;
        assert_eq!(lines(odd).unwrap(), vec!["\u{F04A}"]);
    }

    #[test]
    fn text_held_in_attributes_is_read_sheet_tabs_and_alt_text() {
        let workbook = r#"<workbook><sheets><sheet name="机密" sheetId="1"/></sheets></workbook>"#;
        assert_eq!(lines(workbook).unwrap(), vec!["机密"]);
        let picture = r#"<w:p><w:r><w:t>见附图</w:t><w:drawing><wp:inline><wp:docPr id="1" name="图片 1" descr="内部资料 照片"/></wp:inline></w:drawing></w:r></w:p>"#;
        let got = lines(picture).unwrap();
        assert!(got.contains(&"内部资料 照片".to_string()), "{got:?}");
        assert!(got.iter().any(|l| l.contains("见附图")), "{got:?}");
        let ods = r#"<office:spreadsheet><table:table table:name="不得外传"><table:table-row/></table:table></office:spreadsheet>"#;
        assert!(lines(ods).unwrap().contains(&"不得外传".to_string()));
        // other attributes are not text
        let plain = r#"<w:p w:rsidR="00AB12CD"><w:r><w:t>x</w:t></w:r></w:p>"#;
        assert_eq!(lines(plain).unwrap(), vec!["x"]);
    }
}
