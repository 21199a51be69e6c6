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

/// Finds names (`/Name`, with `#xx` escapes decoded) in a byte stream fed one byte at a time.
#[derive(Debug, Default)]
pub(super) struct Names {
    /// Whether URI actions are allowed.
    allow_uri: bool,
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

    /// Feeds one byte; true when a name has just ended (read it with `last`).
    pub(super) fn feed(&mut self, b: u8) -> bool {
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

    /// Feeds every byte; a refusal on the first active name.
    pub(super) fn scan(&mut self, data: &[u8]) -> Result<(), Refusal> {
        let mut rest = data;
        while !rest.is_empty() {
            if !self.in_name {
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
                check_active(self.last(), self.allow_uri)?;
            }
        }
        Ok(())
    }

    /// Ends a name that runs to the end of the data.
    pub(super) fn finish(&mut self) -> Result<(), Refusal> {
        if self.feed(b' ') {
            check_active(self.last(), self.allow_uri)?;
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
        // Names that only look alike pass.
        let doc = pdf(&[catalog(), ("<< /JavaScripts 1 /JSX 2 /Jav#61 3 >>", None)]);
        assert_eq!(scan(&doc, true).0, Ok(()));
    }
}
