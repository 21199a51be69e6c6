//! Active content: the names that make a PDF active (JavaScript, launch actions, embedded
//! files, rich media, XFA, actions into embedded files), and a search for names, `#xx`
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
];

/// Finds names (`/Name`, with `#xx` escapes decoded) in a byte stream fed one byte at a time.
#[derive(Debug, Default)]
pub(super) struct Names {
    in_name: bool,
    /// 0: no escape; 1: after `#`; 2: after `#` and one hex digit.
    escape: u8,
    high: u8,
    name: Vec<u8>,
    long: bool,
    done: Vec<u8>,
}

impl Names {
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
        for &b in data {
            if self.feed(b) {
                check_active(self.last())?;
            }
        }
        Ok(())
    }

    /// Ends a name that runs to the end of the data.
    pub(super) fn finish(&mut self) -> Result<(), Refusal> {
        if self.feed(b' ') {
            check_active(self.last())?;
        }
        Ok(())
    }
}

/// A refusal (ActiveContent) when `name` is one of the active names.
pub(super) fn check_active(name: &[u8]) -> Result<(), Refusal> {
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
        // Names that only look alike pass.
        let doc = pdf(&[catalog(), ("<< /JavaScripts 1 /JSX 2 /Jav#61 3 >>", None)]);
        assert_eq!(scan(&doc, true).0, Ok(()));
    }
}
