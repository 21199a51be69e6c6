//! Active content: the names that make a PDF active (JavaScript, launch actions, embedded
//! files, rich media, XFA, actions into embedded files or other documents, form submission,
//! data import, movies and sounds; URI actions where the policy refuses hyperlinks), wherever
//! they hang (open actions, additional actions of the catalog, pages, annotations and fields,
//! named actions, outlines: every name of the file is searched), and a search for names, `#xx`
//! escapes decoded, in bytes fed one at a time (top-level bytes, decoded streams, the raw bytes
//! of a malformed image).

use super::MAX_NAME;
use super::lexical::{hex_value, is_regular};
use crate::core::reason::{Reason, Refusal};

/// Names that make a PDF active, and what they mean.
const ACTIVE: &[(&[u8], &str)] = &[
    (b"JavaScript", "JavaScript"),
    (b"JS", "JavaScript"),
    (b"Launch", "a launch action"),
    (b"EmbeddedFile", "an embedded file"),
    (b"EmbeddedFiles", "embedded files"),
    (b"RichMedia", "rich media"),
    (b"XFA", "an XFA form"),
    (b"GoToE", "an action into an embedded file"),
    (b"GoToR", "an action that opens another document (GoToR)"),
    (b"SubmitForm", "a form that submits itself"),
    (b"ImportData", "an action that imports data from a file"),
    (b"Movie", "a movie that plays"),
    (b"Sound", "a sound that plays"),
    (b"Rendition", "a media rendition"),
];

/// The name of a URI action (a hyperlink), refused only where hyperlinks are.
const URI: &[u8] = b"URI";

/// Bytes of a URI action's target kept to judge it (its scheme is at the start).
const MAX_TARGET: usize = 2048;

/// Where the reading of a URI action's target stands (ISO 32000-1 §12.6.4.7: `/URI` is an
/// ASCII string, literal `(…)` or hexadecimal `<…>`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Not after a `/URI` name.
    #[default]
    Idle,
    /// Just after a `/URI` name: its value, if it is one, comes next.
    Expect,
    /// In a comment between `/URI` and its value (to the end of the line).
    Comment,
    /// After `<`: a hexadecimal string, or `<<` (a dictionary: not a value of `/URI`).
    Angle,
    /// In a hexadecimal string; the high digit of a byte when one was read.
    Hex(Option<u8>),
    /// In a literal string: parentheses open, and the escape being read (0: none; 1: after
    /// `\`; 2 to 4: that many octal digits read, less one).
    Literal { depth: u32, escape: u8, octal: u8 },
}

/// Finds names (`/Name`, with `#xx` escapes decoded) in a byte stream fed one byte at a time.
#[derive(Debug, Default)]
pub(super) struct Names {
    /// Whether URI actions are allowed: then each one's target is read and judged
    /// (http, https and mailto cross; `file:`, UNC, `javascript:` … are refused).
    allow_uri: bool,
    /// The reading of a URI action's target.
    target: Target,
    /// The target read so far (at most [`MAX_TARGET`] bytes).
    uri: Vec<u8>,
    /// A target read and refused, shown; handed out by [`Names::check`].
    refused_target: Option<String>,
    in_name: bool,
    /// 0: no escape; 1: after `#`; 2: after `#` and one hex digit.
    escape: u8,
    high: u8,
    name: Vec<u8>,
    long: bool,
    done: Vec<u8>,
}

impl Names {
    /// A search that refuses URI actions unless `allow_uri`.
    pub(super) fn new(allow_uri: bool) -> Names {
        Names {
            allow_uri,
            ..Names::default()
        }
    }

    /// Feeds one byte; true when a name has just ended (read it with `last`), or a URI
    /// action's target was read (judge both with [`Names::check`]).
    pub(super) fn feed(&mut self, b: u8) -> bool {
        let reading = self.target != Target::Idle;
        let mut judged = self.target_byte(b);
        let ended = self.name_byte(b);
        // a `/URI` met while a target is read (inside its string) starts nothing
        if ended && self.allow_uri && self.done == URI && !reading {
            // the byte that ended the name may begin its value: `/URI(…)`, `/URI<…>`
            self.target = Target::Expect;
            judged |= self.target_byte(b);
        }
        judged || ended
    }

    /// One byte of a URI action's target, when one is being read: true once it is read
    /// whole (and judged).
    fn target_byte(&mut self, b: u8) -> bool {
        match self.target {
            Target::Idle => false,
            Target::Expect => {
                match b {
                    b'(' => {
                        self.uri.clear();
                        self.target = Target::Literal {
                            depth: 1,
                            escape: 0,
                            octal: 0,
                        };
                    }
                    b'<' => self.target = Target::Angle,
                    b'0'..=b'9' => {
                        // `/URI 12 0 R`: a target held elsewhere, which this reading cannot follow
                        self.target = Target::Idle;
                        self.refused_target = Some("an indirect object".into());
                        self.done.clear();
                        return true;
                    }
                    b'%' => self.target = Target::Comment,
                    b if super::lexical::is_white(b) => {}
                    // the name was `/S /URI`'s value, not a key: a key or the end follows
                    b'/' | b'>' => self.target = Target::Idle,
                    // an array, a boolean, anything a reader might take for a target
                    // that this reading cannot judge
                    _ => {
                        self.target = Target::Idle;
                        self.refused_target = Some("a value that is not a string".into());
                        self.done.clear();
                        return true;
                    }
                }
                false
            }
            Target::Comment => {
                if b == b'\n' || b == b'\r' {
                    self.target = Target::Expect;
                }
                false
            }
            Target::Angle => {
                if b == b'<' {
                    self.target = Target::Idle;
                    return false;
                }
                self.uri.clear();
                self.target = Target::Hex(None);
                self.target_byte(b)
            }
            Target::Hex(high) => {
                if b == b'>' {
                    if let Some(h) = high {
                        self.keep(h << 4);
                    }
                    return self.judge_target();
                }
                if let Some(v) = hex_value(b) {
                    self.target = match high {
                        None => Target::Hex(Some(v)),
                        Some(h) => {
                            self.keep(h << 4 | v);
                            Target::Hex(None)
                        }
                    };
                }
                false
            }
            Target::Literal {
                depth,
                escape,
                octal,
            } => {
                let (mut depth, mut escape, mut octal) = (depth, escape, octal);
                if escape >= 2 {
                    if (b'0'..=b'7').contains(&b) && escape < 4 {
                        octal = octal.wrapping_mul(8).wrapping_add(b - b'0');
                        escape += 1;
                        self.target = Target::Literal {
                            depth,
                            escape,
                            octal,
                        };
                        return false;
                    }
                    self.keep(octal);
                    escape = 0;
                }
                if escape == 1 {
                    escape = 0;
                    match b {
                        b'0'..=b'7' => {
                            escape = 2;
                            octal = b - b'0';
                        }
                        b'n' => self.keep(b'\n'),
                        b'r' => self.keep(b'\r'),
                        b't' => self.keep(b'\t'),
                        b'b' => self.keep(0x08),
                        b'f' => self.keep(0x0C),
                        b'\r' | b'\n' => {}
                        other => self.keep(other),
                    }
                } else {
                    match b {
                        b'\\' => escape = 1,
                        b'(' => {
                            depth += 1;
                            self.keep(b);
                        }
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                return self.judge_target();
                            }
                            self.keep(b);
                        }
                        other => self.keep(other),
                    }
                }
                self.target = Target::Literal {
                    depth,
                    escape,
                    octal,
                };
                false
            }
        }
    }

    fn keep(&mut self, b: u8) {
        if self.uri.len() < MAX_TARGET {
            self.uri.push(b);
        }
    }

    /// The target is read: refused unless a plain hyperlink (http, https, mailto). Always
    /// true (the target is judged).
    fn judge_target(&mut self) -> bool {
        self.target = Target::Idle;
        let text = match self.uri.strip_prefix(b"\xFE\xFF") {
            // a text string in UTF-16BE (not what the standard asks of a URI, but readers take it)
            Some(utf16) => {
                let units: Vec<u16> = utf16
                    .chunks(2)
                    .map(|c| u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]))
                    .collect();
                String::from_utf16_lossy(&units)
            }
            None => String::from_utf8_lossy(&self.uri).into_owned(),
        };
        if !crate::content::reach::Hyperlinks::Allow.allows(&text) {
            self.refused_target = Some(format!("{:?}", text.chars().take(200).collect::<String>()));
        }
        self.done.clear();
        true
    }

    /// One byte of the name search; true when a name has just ended.
    fn name_byte(&mut self, b: u8) -> bool {
        let mut ended = false;
        if self.in_name {
            match self.escape {
                1 => {
                    if let Some(v) = hex_value(b) {
                        self.high = v;
                        self.escape = 2;
                        return false;
                    }
                    self.escape = 0;
                    self.push(b'#');
                }
                2 => {
                    self.escape = 0;
                    if let Some(v) = hex_value(b) {
                        self.push(self.high << 4 | v);
                        return false;
                    }
                    self.push(b'#');
                    self.push(b"0123456789ABCDEF"[usize::from(self.high)]);
                }
                _ => {}
            }
            if b == b'#' {
                self.escape = 1;
                return false;
            }
            if is_regular(b) {
                self.push(b);
                return false;
            }
            self.in_name = false;
            self.done.clear();
            if !self.long {
                self.done.extend_from_slice(&self.name);
            }
            ended = true;
        }
        if b == b'/' {
            self.in_name = true;
            self.escape = 0;
            self.name.clear();
            self.long = false;
        }
        ended
    }

    fn push(&mut self, b: u8) {
        if self.name.len() < MAX_NAME {
            self.name.push(b);
        } else {
            self.long = true;
        }
    }

    pub(super) fn last(&self) -> &[u8] {
        &self.done
    }

    /// The refusal of what the last [`Names::feed`] that returned true found: an active
    /// name (see [`check_active`]), or a URI action's target that is not a plain hyperlink.
    ///
    /// # Errors
    /// The `active_content` refusal.
    pub(super) fn check(&mut self) -> Result<(), Refusal> {
        if let Some(target) = self.refused_target.take() {
            return Err(Refusal::new(
                Reason::ActiveContent,
                format!(
                    "PDF carries a URI action to {target}: only http, https and mailto hyperlinks cross (/URI)"
                ),
            ));
        }
        check_active(self.last(), self.allow_uri)
    }

    /// Feeds every byte; a refusal on the first active name.
    pub(super) fn scan(&mut self, data: &[u8]) -> Result<(), Refusal> {
        let mut rest = data;
        while !rest.is_empty() {
            if !self.in_name && self.target == Target::Idle {
                // outside a name only the solidus that starts one matters (`feed`)
                match memchr::memchr(b'/', rest) {
                    Some(at) => rest = &rest[at..],
                    None => break,
                }
            }
            let Some((&b, tail)) = rest.split_first() else {
                break;
            };
            rest = tail;
            if self.feed(b) {
                self.check()?;
            }
        }
        Ok(())
    }

    /// Ends a name that runs to the end of the data; a URI action's target still open
    /// there (a string never closed) is refused.
    pub(super) fn finish(&mut self) -> Result<(), Refusal> {
        if self.feed(b' ') {
            self.check()?;
        }
        if !matches!(self.target, Target::Idle | Target::Expect | Target::Comment) {
            self.target = Target::Idle;
            self.refused_target = Some("a string that never ends".into());
            return self.check();
        }
        Ok(())
    }
}

/// A refusal (ActiveContent) when `name` is one of the active names, or a URI action where
/// hyperlinks are not allowed (`allow_uri` false).
pub(super) fn check_active(name: &[u8], allow_uri: bool) -> Result<(), Refusal> {
    if name == URI && !allow_uri {
        return Err(Refusal::new(
            Reason::ActiveContent,
            "PDF carries a URI action (a hyperlink), refused by the policy (/URI)",
        ));
    }
    match ACTIVE.iter().find(|(active, _)| *active == name) {
        Some((_, what)) => Err(Refusal::new(
            Reason::ActiveContent,
            format!("PDF carries {what} (/{})", String::from_utf8_lossy(name)),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{catalog, pdf, scan};
    use crate::core::reason::Reason;

    #[test]
    fn names_are_found_across_pieces_of_any_size() {
        let data: &[u8] = b"<4E2D> Tj /F1 12 Tf (a/b) /J#61va#53cript /Launch";
        for step in 1..=data.len() {
            let mut names = super::Names::new(false);
            let refused = data
                .chunks(step)
                .map(|piece| names.scan(piece))
                .find_map(Result::err)
                .map(|r| r.detail);
            assert_eq!(
                refused.as_deref(),
                Some("PDF carries JavaScript (/JavaScript)"),
                "pieces of {step} bytes"
            );
        }
        // a name at the very end is ended by `finish`
        let mut names = super::Names::new(false);
        names.scan(b"x /Laun").unwrap();
        names.scan(b"ch").unwrap();
        assert_eq!(names.finish().unwrap_err().reason, Reason::ActiveContent);
    }

    #[test]
    fn javascript_is_refused_in_plain_and_escaped_names() {
        for action in [
            "<< /S /JavaScript /JS (app.alert(1)) >>",
            "<< /S /J#61vaScript /JS (x) >>",
            "<< /S /Launch /F (cmd.exe) >>",
            "<< /Type /EmbeddedFile >>",
            "<< /Names << /EmbeddedFiles 9 0 R >> >>",
            "<< /AcroForm << /XFA 9 0 R >> >>",
            "<< /Type/Annot/Subtype/RichMedia >>",
        ] {
            let doc = pdf(&[catalog(), (action, None)]);
            let (verdict, _) = scan(&doc, true);
            assert_eq!(
                verdict.unwrap_err().reason,
                Reason::ActiveContent,
                "{action}"
            );
            assert_eq!(scan(&doc, false).0, Ok(()), "{action}");
        }
        // At the very end of the file, with no delimiter after the name.
        let mut doc = pdf(&[catalog()]);
        doc.extend_from_slice(b"/JavaScript");
        assert_eq!(
            scan(&doc, true).0.unwrap_err().reason,
            Reason::ActiveContent
        );
        // Actions that leave the document or import or play something, wherever they hang.
        for action in [
            "<< /OpenAction << /S /GoToR /F (\\\\198.51.100.7\\share\\x.pdf) /D [0 /Fit] >> >>",
            "<< /AA << /O << /S /SubmitForm /F (http://198.51.100.7/) >> >> >>",
            "<< /Annots [<< /A << /S /ImportData /F (x.fdf) >> >>] >>",
            "<< /Outlines << /A << /S /Movie /T (m) >> >> >>",
            "<< /A << /S /Sound /Sound 9 0 R >> >>",
        ] {
            let doc = pdf(&[catalog(), (action, None)]);
            assert_eq!(
                scan(&doc, true).0.unwrap_err().reason,
                Reason::ActiveContent,
                "{action}"
            );
        }
        // URI actions follow the hyperlink switch.
        let link = pdf(&[
            catalog(),
            (
                "<< /A << /S /URI /URI (https://www.court.gov.cn/) >> >>",
                None,
            ),
        ]);
        assert_eq!(scan(&link, true).0, Ok(()));
        let strict = super::super::PdfOptions {
            refuse_active: true,
            read_text: true,
            allow_uri: false,
        };
        let r = super::super::testing::scan_with(&link, strict)
            .0
            .unwrap_err();
        assert_eq!(r.reason, Reason::ActiveContent, "{r}");
        // Where hyperlinks cross, a URI action's target must be one: http, https, mailto.
        for (action, shown) in [
            (
                r"<< /A << /S /URI /URI (file://198.51.100.1/share/x.exe) >> >>",
                "file://",
            ),
            (
                r"<< /A << /S /URI /URI (\\\\198.51.100.1\\share\\x) >> >>",
                r"\\198",
            ),
            (
                r"<< /A << /S /URI /URI (javascript:app.alert\(1\)) >> >>",
                "javascript:",
            ),
            (
                r"<< /A << /S /URI /URI<66696C653A2F2F782F79>>> >>",
                "file://x/y",
            ),
            (
                r"<< /A << /UR#49 (\146ile:///etc/passwd) /S /URI >> >>",
                "file:///etc",
            ),
            (r"<< /A << /S /URI /URI 12 0 R >> >>", "an indirect object"),
            // /URI inside the target, a comment or NUL before it, an array
            (
                r"<< /A << /S /URI /URI (file://198.51.100.1/URI/x.exe) >> >>",
                "file://",
            ),
            (
                "<< /A << /S /URI /URI%c\n(file://h/s/x.exe) >> >>",
                "file://h",
            ),
            (
                "<< /A << /S /URI /URI\x00(file://h/s/x.exe) >> >>",
                "file://h",
            ),
            (r"<< /A << /S /URI /URI [(file://h)] >> >>", "not a string"),
        ] {
            let doc = pdf(&[catalog(), (action, None)]);
            let r = scan(&doc, true).0.unwrap_err();
            assert_eq!(r.reason, Reason::ActiveContent, "{action}");
            assert!(
                r.detail.contains("URI action to") && r.detail.contains(shown),
                "{action}: {r}"
            );
        }
        for action in [
            r"<< /A << /S /URI /URI (HTTPS://www.court.gov.cn/a\(b\)) >> >>",
            r"<< /A << /URI <6D61696C746F3A612062> /S /URI >> >>",
            r"<< /A << /S /URI >> /B (file://not-a-target) >>",
        ] {
            let doc = pdf(&[catalog(), (action, None)]);
            assert_eq!(scan(&doc, true).0, Ok(()), "{action}");
        }
        // Names that only look alike pass.
        let doc = pdf(&[catalog(), ("<< /JavaScripts 1 /JSX 2 /Jav#61 3 >>", None)]);
        assert_eq!(scan(&doc, true).0, Ok(()));
    }
}
