//! RTF (Rich Text Format 1.9.1): its text for the rules, and the constructs by which an RTF
//! document runs or fetches something when opened refused as active content: embedded and
//! linked OLE objects (`\object`, `\objdata`, `\objlink`, `\objautlink`, `\objupdate`), a
//! remote template (`\*\template`), and fields that run or fetch (`DDE`, `DDEAUTO`, `LINK`,
//! `INCLUDETEXT`, `INCLUDEPICTURE`, `IMPORT` in `\fldinst`).
//!
//! ```text
//!  bytes ─► tokens: { } \word[N] \'hh \uN \bin N text ─► groups (destination, code page)
//!        ─► text of body groups ─► lines (\par, \line, \row, \cell) ─► sink
//!        ─► \object …, \*\template, \fldinst DDE … ─► active_content
//! ```
//!
//! Text in `\'hh` escapes is decoded in the document's code page (`\ansicpg936` is GBK, the
//! Chinese default); `\uN` gives a UTF-16 code unit whose `\ucN` fallback characters are
//! skipped. Destinations that hold no reader-visible text (font and colour tables, style
//! sheets, pictures, `\*` destinations not known to carry text) are skipped; the document
//! information (`\info`: title, subject, author, keywords) is text. Memory: one line of at most
//! [`MAX_LINE`] bytes, the group stack (at most [`MAX_DEPTH`] groups), one control word.

use crate::content::reach;
use crate::content::{LineSink, Scan};
use crate::core::reason::{Reason, Refusal};
use std::io::{self, BufRead};

/// Deepest group nesting read; deeper is refused (readers disagree past their own limits).
pub const MAX_DEPTH: usize = 1000;

/// Longest line handed to the sink at once, in bytes of UTF-8; a longer one is cut (the
/// piece after a cut begins with the end of the one before, see `text::overlap_tail`).
pub const MAX_LINE: usize = 64 * 1024;

/// Longest control word or parameter read (RTF allows 32 letters and a 10-digit parameter).
const MAX_WORD: usize = 48;

/// Longest field instruction kept, in bytes.
const MAX_INSTRUCTION: usize = 4096;

/// Destinations whose content is not text a reader sees.
const SKIPPED: &[&str] = &[
    "fonttbl",
    "colortbl",
    "stylesheet",
    "listtable",
    "listoverridetable",
    "revtbl",
    "rsidtbl",
    "generator",
    "pict",
    "themedata",
    "colorschememapping",
    "latentstyles",
    "datastore",
    "xmlnstbl",
    "mmathPr",
    "pgdsctbl",
    "filetbl",
    "fldrslt_never",
];

/// What the group being read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dest {
    /// Text a reader sees.
    Text,
    /// Content skipped (tables, pictures, unknown `\*` destinations).
    Skip,
    /// A field instruction (`\fldinst`): gathered and judged.
    Instruction,
}

#[derive(Debug, Clone, Copy)]
struct Group {
    dest: Dest,
    /// Fallback characters to skip after `\uN` (`\ucN`).
    uc: u32,
    /// Whether the group has seen a token yet (a destination word must come first).
    fresh: bool,
    /// Whether the group started with `\*` (an optional destination).
    starred: bool,
}

/// Reads an RTF document from `input`, handing its text line by line to `sink` (when given)
/// and refusing active content whatever the text rules.
///
/// # Errors
/// Reading `input` failed. Malformed RTF (unbalanced groups, nesting deeper than
/// [`MAX_DEPTH`], a control word too long, a `\bin` past the end) is a `content_unreadable`
/// refusal.
pub fn scan_rtf(input: &mut dyn BufRead, sink: Option<&mut LineSink<'_>>) -> Scan {
    let mut r = Reader {
        input,
        sink,
        line: String::new(),
        pending: Vec::new(),
        code_page: encoding_rs::WINDOWS_1252,
        stack: Vec::new(),
        skip_chars: 0,
        instruction: String::new(),
        unit_high: None,
    };
    r.run()
}

struct Reader<'a, 's, 'l> {
    input: &'a mut dyn BufRead,
    sink: Option<&'s mut LineSink<'l>>,
    line: String,
    /// Bytes of `\'hh` escapes not yet decoded.
    pending: Vec<u8>,
    code_page: &'static encoding_rs::Encoding,
    stack: Vec<Group>,
    /// Fallback characters still to skip after a `\uN`.
    skip_chars: u32,
    instruction: String,
    /// A high surrogate from `\uN` waiting for its low half.
    unit_high: Option<u16>,
}

fn unreadable(detail: impl Into<String>) -> Scan {
    Ok(Err(Refusal::new(
        Reason::ContentUnreadable,
        format!("RTF cannot be read: {}", detail.into()),
    )))
}

fn active(detail: String) -> Scan {
    Ok(Err(Refusal::new(Reason::ActiveContent, detail)))
}

impl Reader<'_, '_, '_> {
    fn peek(&mut self) -> io::Result<Option<u8>> {
        Ok(self.input.fill_buf()?.first().copied())
    }

    fn next(&mut self) -> io::Result<Option<u8>> {
        let b = self.peek()?;
        if b.is_some() {
            self.input.consume(1);
        }
        Ok(b)
    }

    fn dest(&self) -> Dest {
        self.stack.last().map_or(Dest::Text, |g| g.dest)
    }

    fn run(&mut self) -> Scan {
        // the header: "{\rtf" (version 1)
        let mut head = [0u8; 5];
        for b in &mut head {
            match self.next()? {
                Some(x) => *b = x,
                None => return unreadable("no {\\rtf header"),
            }
        }
        if &head != b"{\\rtf" {
            return unreadable("no {\\rtf header");
        }
        self.stack.push(Group {
            dest: Dest::Text,
            uc: 1,
            fresh: false,
            starred: false,
        });
        loop {
            let Some(b) = self.next()? else {
                if !self.stack.is_empty() {
                    return unreadable("the document ends inside a group");
                }
                break;
            };
            if self.stack.is_empty() {
                // after the closing brace only white space and NULs (editors pad files)
                if b.is_ascii_whitespace() || b == 0 {
                    continue;
                }
                return unreadable("data after the end of the document");
            }
            let step = match b {
                b'{' => self.open(),
                b'}' => self.close(),
                b'\\' => self.control(),
                b'\r' | b'\n' => Ok(Ok(())),
                _ => self.byte(b),
            };
            match step {
                Ok(Ok(())) => {}
                other => return other,
            }
        }
        if let Err(r) = self.flush_pending()? {
            return Ok(Err(r));
        }
        let line = std::mem::take(&mut self.line);
        Ok(self.emit(&line))
    }

    fn open(&mut self) -> Scan {
        if self.stack.len() >= MAX_DEPTH {
            return unreadable(format!("groups nested deeper than {MAX_DEPTH}"));
        }
        if let Err(r) = self.flush_pending()? {
            return Ok(Err(r));
        }
        let parent = self.stack.last().copied().unwrap_or(Group {
            dest: Dest::Text,
            uc: 1,
            fresh: false,
            starred: false,
        });
        self.stack.push(Group {
            fresh: true,
            starred: false,
            ..parent
        });
        Ok(Ok(()))
    }

    fn close(&mut self) -> Scan {
        if let Err(r) = self.flush_pending()? {
            return Ok(Err(r));
        }
        let Some(group) = self.stack.pop() else {
            return unreadable("a group closes that was never opened");
        };
        if group.dest == Dest::Instruction && self.dest() != Dest::Instruction {
            let instruction = std::mem::take(&mut self.instruction);
            if let Err(r) = reach_field(&instruction) {
                return Ok(Err(r));
            }
        }
        self.skip_chars = 0;
        Ok(Ok(()))
    }

    /// A character of text (or a byte of a multi-byte character in `\'hh` form).
    fn byte(&mut self, b: u8) -> Scan {
        if let Some(g) = self.stack.last_mut() {
            g.fresh = false;
        }
        if self.skip_chars > 0 {
            self.skip_chars -= 1;
            return Ok(Ok(()));
        }
        if let Err(r) = self.flush_pending()? {
            return Ok(Err(r));
        }
        self.push_char(char::from(b))
    }

    fn push_char(&mut self, c: char) -> Scan {
        match self.dest() {
            Dest::Text => {
                self.line.push(c);
                if self.line.len() >= MAX_LINE {
                    return self.cut();
                }
            }
            Dest::Instruction => {
                if self.instruction.len() < MAX_INSTRUCTION {
                    self.instruction.push(c);
                }
            }
            Dest::Skip => {}
        }
        Ok(Ok(()))
    }

    fn push_str(&mut self, s: &str) -> Scan {
        for c in s.chars() {
            match self.push_char(c) {
                Ok(Ok(())) => {}
                other => return other,
            }
        }
        Ok(Ok(()))
    }

    /// Decodes the `\'hh` bytes gathered so far in the document's code page.
    fn flush_pending(&mut self) -> Scan {
        if self.pending.is_empty() {
            return Ok(Ok(()));
        }
        let bytes = std::mem::take(&mut self.pending);
        let (text, _) = self.code_page.decode_without_bom_handling(&bytes);
        let text = text.into_owned();
        self.push_str(&text)
    }

    fn cut(&mut self) -> Scan {
        let line = std::mem::take(&mut self.line);
        let verdict = self.emit(&line);
        self.line = crate::content::text::overlap_tail(&line).to_string();
        Ok(verdict)
    }

    fn end_line(&mut self) -> Scan {
        if let Err(r) = self.flush_pending()? {
            return Ok(Err(r));
        }
        if self.dest() != Dest::Text {
            return Ok(Ok(()));
        }
        let line = std::mem::take(&mut self.line);
        Ok(self.emit(&line))
    }

    fn emit(&mut self, line: &str) -> Result<(), Refusal> {
        match self.sink.as_deref_mut() {
            Some(sink) if !line.trim().is_empty() => sink(line),
            _ => Ok(()),
        }
    }

    /// After a backslash: a control symbol, a `\'hh` escape or a control word.
    fn control(&mut self) -> io::Result<Result<(), Refusal>> {
        let Some(b) = self.next()? else {
            return unreadable("the document ends after a backslash");
        };
        match b {
            b'\'' => {
                let (Some(h), Some(l)) = (self.next()?, self.next()?) else {
                    return unreadable("a \\' escape is cut short");
                };
                let hex = |x: u8| char::from(x).to_digit(16);
                let (Some(h), Some(l)) = (hex(h), hex(l)) else {
                    return unreadable("a \\' escape is not two hex digits");
                };
                if let Some(g) = self.stack.last_mut() {
                    g.fresh = false;
                }
                if self.skip_chars > 0 {
                    self.skip_chars -= 1;
                    return Ok(Ok(()));
                }
                self.pending.push((h * 16 + l) as u8);
                Ok(Ok(()))
            }
            b'*' => {
                if let Some(g) = self.stack.last_mut() {
                    g.starred = true;
                }
                Ok(Ok(()))
            }
            b'\\' | b'{' | b'}' => self.byte(b),
            b'~' => self.push_char('\u{A0}'),
            b'_' => self.push_char('\u{2011}'),
            b'-' => Ok(Ok(())),
            b'\r' | b'\n' => self.end_line(),
            b'\t' => self.push_char('\t'),
            b if b.is_ascii_alphabetic() => self.word(b),
            _ => Ok(Ok(())),
        }
    }

    /// A control word starting with `first`, its parameter and its delimiter.
    fn word(&mut self, first: u8) -> io::Result<Result<(), Refusal>> {
        let mut name = String::from(char::from(first));
        while let Some(b) = self.peek()? {
            if !b.is_ascii_alphabetic() {
                break;
            }
            if name.len() >= MAX_WORD {
                return unreadable("a control word is too long");
            }
            name.push(char::from(b));
            self.input.consume(1);
        }
        let mut digits = String::new();
        if self.peek()? == Some(b'-') {
            digits.push('-');
            self.input.consume(1);
        }
        while let Some(b) = self.peek()? {
            if !b.is_ascii_digit() {
                break;
            }
            if digits.len() >= MAX_WORD {
                return unreadable("a control word's parameter is too long");
            }
            digits.push(char::from(b));
            self.input.consume(1);
        }
        if self.peek()? == Some(b' ') {
            self.input.consume(1);
        }
        let param: Option<i64> = digits.parse().ok();
        self.apply(&name, param)
    }

    fn apply(&mut self, name: &str, param: Option<i64>) -> io::Result<Result<(), Refusal>> {
        let (fresh, starred) = self
            .stack
            .last()
            .map_or((false, false), |g| (g.fresh, g.starred));
        if let Some(g) = self.stack.last_mut() {
            g.fresh = false;
        }
        // what runs or fetches something when the document opens
        match name {
            "object" | "objdata" | "objemb" | "objlink" | "objautlink" | "objupdate" | "objocx"
            | "objhtml" | "objclass" => {
                return active(format!("RTF: embedded or linked OLE object (\\{name})"));
            }
            "template" => return active("RTF: remote template (\\*\\template)".into()),
            _ => {}
        }
        let set_dest = |s: &mut Self, dest: Dest| {
            if let Some(g) = s.stack.last_mut() {
                g.dest = dest;
            }
        };
        match name {
            "ansicpg" => {
                if let Some(cp) = param.and_then(code_page) {
                    if let Err(r) = self.flush_pending()? {
                        return Ok(Err(r));
                    }
                    self.code_page = cp;
                }
            }
            "uc" => {
                if let (Some(g), Some(n)) = (self.stack.last_mut(), param) {
                    g.uc = u32::try_from(n.clamp(0, 10)).unwrap_or(1);
                }
            }
            "u" => {
                if let Err(r) = self.flush_pending()? {
                    return Ok(Err(r));
                }
                let unit = param.map_or(0, |n| if n < 0 { (n + 65536) as u16 } else { n as u16 });
                self.skip_chars = self.stack.last().map_or(1, |g| g.uc);
                let c = match (self.unit_high.take(), unit) {
                    (None, 0xD800..=0xDBFF) => {
                        self.unit_high = Some(unit);
                        None
                    }
                    (Some(high), 0xDC00..=0xDFFF) => {
                        char::decode_utf16([high, unit]).next().and_then(Result::ok)
                    }
                    (_, unit) => char::from_u32(u32::from(unit)),
                };
                if let Some(c) = c {
                    return self.push_char(c);
                }
            }
            "bin" => {
                // raw bytes: skipped, never read as text or control words
                let n = u64::try_from(param.unwrap_or(0)).unwrap_or(0);
                let mut raw = <&mut dyn BufRead as io::Read>::take(&mut *self.input, n);
                let skipped = io::copy(&mut raw, &mut io::sink())?;
                if skipped < n {
                    return unreadable("\\bin data runs past the end");
                }
            }
            "par" | "line" | "row" | "cell" | "sect" | "page" => return self.end_line(),
            "tab" => return self.push_char('\t'),
            "emdash" => return self.push_char('—'),
            "endash" => return self.push_char('–'),
            "lquote" => return self.push_char('‘'),
            "rquote" => return self.push_char('’'),
            "ldblquote" => return self.push_char('“'),
            "rdblquote" => return self.push_char('”'),
            "bullet" => return self.push_char('•'),
            "fldinst" => set_dest(self, Dest::Instruction),
            _ if fresh && SKIPPED.contains(&name) => set_dest(self, Dest::Skip),
            // an optional destination this reader does not know: no reader-visible text
            _ if fresh && starred && !matches!(name, "fldinst" | "shppict") => {
                set_dest(self, Dest::Skip)
            }
            _ => {}
        }
        Ok(Ok(()))
    }
}

/// The encoding of Windows code page `n` (`\ansicpgN`), where encoding_rs has it.
fn code_page(n: i64) -> Option<&'static encoding_rs::Encoding> {
    let label = match n {
        936 => "gbk".to_string(),
        54936 => "gb18030".to_string(),
        950 => "big5".to_string(),
        932 => "shift_jis".to_string(),
        949 => "euc-kr".to_string(),
        65001 => "utf-8".to_string(),
        n => format!("windows-{n}"),
    };
    encoding_rs::Encoding::for_label(label.as_bytes())
}

fn reach_field(instruction: &str) -> Result<(), Refusal> {
    reach::field("RTF", instruction)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(rtf: &[u8]) -> (Result<(), Refusal>, Vec<String>) {
        let mut lines = Vec::new();
        let mut sink = |l: &str| {
            lines.push(l.to_string());
            Ok(())
        };
        let verdict = scan_rtf(&mut &rtf[..], Some(&mut sink)).unwrap();
        (verdict, lines)
    }

    #[test]
    fn text_is_read_in_its_code_page_and_from_unicode_escapes() {
        // 机密 in GBK escapes, 张三 as \u escapes with '?' fallbacks
        let rtf = br"{\rtf1\ansi\ansicpg936\deff0{\fonttbl{\f0\fnil \'cb\'ce\'cc\'e5;}}
{\info{\title \'c3\'f1\'ca\'c2\'c5\'d0\'be\'f6\'ca\'e9}}
\pard \'bb\'fa\'c3\'dc\'a1\'ef10\'c4\'ea\par
\uc1\u24352?\u19977? 13800138000\par
}";
        let (verdict, lines) = read(rtf);
        assert_eq!(verdict, Ok(()));
        assert!(lines.iter().any(|l| l.contains("民事判决书")), "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("机密★10年")), "{lines:?}");
        assert!(
            lines.iter().any(|l| l.contains("张三 13800138000")),
            "{lines:?}"
        );
        // the font table is not text
        assert!(!lines.iter().any(|l| l.contains("宋体")), "{lines:?}");
    }

    #[test]
    fn objects_templates_and_fetching_fields_are_refused() {
        let cases: [(&[u8], &str); 5] = [
            (br"{\rtf1{\object\objemb{\*\objclass Equation.3}{\*\objdata 0105000002}}}", "OLE"),
            (br"{\rtf1{\object\objautlink\objupdate{\*\objdata 01}}}", "OLE"),
            (br"{\rtf1{\*\template http://198.51.100.7/t.dot}hello}", "template"),
            (
                br#"{\rtf1{\field{\*\fldinst{ DDEAUTO c:\\windows\\system32\\cmd.exe "/k calc"}}{\fldrslt x}}}"#,
                "DDEAUTO",
            ),
            (
                br#"{\rtf1{\field{\*\fldinst INCLUDEPICTURE "http://198.51.100.7/a.png"}{\fldrslt }}}"#,
                "INCLUDEPICTURE",
            ),
        ];
        for (rtf, what) in cases {
            let r = read(rtf).0.unwrap_err();
            assert_eq!(r.reason, Reason::ActiveContent, "{what}: {r}");
            assert!(r.detail.contains(what), "{what}: {r}");
        }
        // an ordinary field and a picture pass
        let fine =
            br#"{\rtf1{\field{\*\fldinst PAGE}{\fldrslt 1}}{\pict\pngblip 89504e47}\par ok\par}"#;
        assert_eq!(read(fine).0, Ok(()));
    }

    #[test]
    fn malformed_rtf_is_unreadable() {
        for rtf in [
            &b"{\\rtf1 {unclosed"[..],
            b"{\\rtf1 }}",
            b"{\\rtf1 }trailing",
            b"not rtf",
            b"{\\rtf1 {\\bin99 short}}",
        ] {
            let r = read(rtf).0.unwrap_err();
            assert_eq!(r.reason, Reason::ContentUnreadable, "{r}");
        }
        let deep = [b"{\\rtf1 ".to_vec(), vec![b'{'; MAX_DEPTH + 1]].concat();
        assert_eq!(read(&deep).0.unwrap_err().reason, Reason::ContentUnreadable);
    }

    #[test]
    fn binary_data_is_skipped_not_read() {
        let mut rtf = b"{\\rtf1 before\\par{\\pict\\bin6 ".to_vec();
        rtf.extend_from_slice(b"}{\\obj");
        rtf.extend_from_slice(b"} after\\par}");
        let (verdict, lines) = read(&rtf);
        assert_eq!(verdict, Ok(()));
        assert!(lines.iter().any(|l| l.contains("after")), "{lines:?}");
    }
}
