//! PDF: active content (JavaScript, launch actions, embedded files, rich media, XFA) and the
//! text shown by content streams, read in one pass over bounded chunks. Nothing is executed
//! and no object graph is built.
//!
//! ```text
//!  bytes ─► names (#xx decoded) ─► active?                 (every byte outside streams)
//!    └─► tokens (strings, comments, dictionaries skipped as a parser does)
//!          └─ `stream` right after an object's dictionary ─► filters, capped
//!               (Flate, LZW, ASCIIHex, ASCII85, RunLength; PNG and TIFF predictors)
//!                  ├─► names ─► active?        (object streams, other non-image streams)
//!                  ├─► objects ─► fonts                         (object streams)
//!                  ├─► CMap operators ─► fonts                  (any stream)
//!                  └─► Tj TJ ' " ─► lines of (font, raw string) ─► fonts   (any stream)
//!  object dictionaries ─► fonts: /Font resources, font and encoding dictionaries
//!  fonts: a line whose fonts are known ─► decoded ─► cut pieces overlapping ─► sink
//!         else kept raw (at most 16 MiB) ─► decoded at the end of the file ─► sink
//!  a page of several content streams (/Contents [a b c], direct or by reference):
//!         the ends of each stream's text kept ─► at the end of the file, the end of a's
//!         text with the start of b's (and so on, in the page's order) ─► one line ─► sink
//! ```
//!
//! A stream ends at its direct /Length when `endstream` follows there, else at the first
//! `endstream`. An object stream is one labelled /ObjStm or carrying /N and /First, whatever
//! else it claims. For active content a well-formed image stream is skipped unread, and a
//! malformed image has its raw bytes searched for names. Text is read from every stream that
//! can be decoded (the dictionary of a content stream is not to be trusted), strictly from
//! those that look like content. Strings are decoded through their font (`fonts`): the
//! dictionaries of objects, top-level and in object streams, say which font a resource name
//! stands for and how its codes read (a /ToUnicode CMap, a predefined CMap, an encoding); a
//! line of text whose fonts come later in the file is kept raw until the end (a bounded
//! store, see `fonts`), and text in a font no map lets one read is refused. A `>> stream` the tokens do not accept (in a
//! string or a comment, after a stream ended early) is still decoded on the side, so that a
//! parser that reads the file otherwise cannot be shown an object stream this one missed.
//! Memory: one read chunk, a tail of recent bytes, one stream dictionary, a few decode
//! buffers, a line of text, the summaries of fonts and their CMaps (capped counts), and the
//! raw text waiting for fonts that come later (at most 16 MiB); a decoded stream is never
//! held whole.
//!
//! One job per module:
//!
//! ```text
//!  scanner      the whole file: top-level bytes, object dictionaries, where streams start/end
//!  lexical      byte classes of PDF syntax, byte search
//!  active       active names (/JavaScript …), found with #xx decoded
//!  tokenizer    file-level tokens; array and dictionary nesting
//!  objects      one object parsed from a captured dictionary
//!  objstm       the objects of an object stream, as they stream past
//!  stream_info  what a stream dictionary says: kind of stream, /Length, filter chain
//!  filters      decoding stages (Flate, LZW, ASCIIHex, ASCII85, RunLength, predictors), capped
//!  stream       one stream's data through its stages to its readers; failures at its end
//!  text         content-stream operators ─► lines of (font, raw string); CMap operators
//!  cmap         CMaps: code spaces, bfchar/bfrange, usecmap; predefined Adobe-GB1 CMaps
//!  encoding     simple fonts: base encodings, /Differences, glyph names
//!  fonts        fonts of the file, decoding lines through them, text kept for later fonts
//! ```

mod active;
mod cmap;
mod encoding;
mod filters;
mod fonts;
mod inline_image;
mod lexical;
mod objects;
mod objstm;
mod scanner;
mod stream;
mod stream_info;
mod strings;
#[cfg(test)]
mod testing;
mod text;
mod tokenizer;

use crate::content::{LineSink, Scan};
use crate::core::reason::{Reason, Refusal};
use lexical::find;
use scanner::Scanner;
use std::io::{self, Read};

/// Bytes read from the input at a time, at most: the most the scanner may hold unconsumed.
const CHUNK: usize = 1 << 20;

/// The read buffer's first size, doubled up to [`CHUNK`] whenever it is full.
const FIRST_BUFFER: usize = 64 * 1024;

/// The header `%PDF-` must start within this many bytes.
const HEADER_WINDOW: usize = 1024;

/// Longest name kept (longer names match nothing).
const MAX_NAME: usize = 40;

/// Deepest nesting of arrays and dictionaries followed.
const MAX_NESTING: usize = 64;

/// What `scan_pdf` refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdfOptions {
    /// Refuse active content (JavaScript, launch actions, embedded files, rich media, XFA).
    pub refuse_active: bool,
    /// The caller reads the text: refuse (ContentUnreadable) a PDF whose text cannot be read
    /// whole — a content stream that cannot be decoded or is cut by a cap, text shown in a
    /// font no map lets one read (a CID font with Identity-H and no /ToUnicode), more text
    /// before its fonts than the store for it holds — instead of passing part of it.
    pub read_text: bool,
    /// With `refuse_active`: URI actions (hyperlinks, followed when a reader clicks them) are
    /// allowed; `false` refuses them too (`[documents] hyperlinks`).
    pub allow_uri: bool,
}

/// A refusal: the content cannot be read (ContentUnreadable).
fn unreadable(detail: impl Into<String>) -> Refusal {
    Refusal::new(Reason::ContentUnreadable, detail)
}

/// Reads a PDF in bounded chunks. If `refuse_active`, refuses with ActiveContent on
/// /JavaScript, /JS, /Launch, /EmbeddedFile(s), /RichMedia, /XFA, /GoToE — names compared
/// after decoding #xx escapes (so /J#61vaScript is caught) — found anywhere outside streams,
/// in object streams and other non-image streams once decoded (Flate, LZW, ASCIIHex,
/// ASCII85, RunLength, chained; PNG and TIFF predictors undone), or in the raw bytes of a
/// malformed image stream; an object stream or non-image stream it cannot decode (another
/// filter, another predictor, an indirect /Filter or /DecodeParms), cut by the per-stream cap
/// (64 MiB out of one filter, or an expansion over 1000 times) or not decoded to its end is
/// ContentUnreadable. A well-formed image stream (/Subtype /Image, known filters) is skipped.
/// If `read_text`, passes the text shown by Tj / TJ / ' / " (hex strings too), decoded
/// through its font (ISO 32000-1 §9.10: a /ToUnicode CMap first; the predefined UniGB-UCS2,
/// UniGB-UTF16, GB-EUC, GBpc-EUC, GBK-EUC, GBKp-EUC and GBK2K CMaps as UCS-2, UTF-16BE and
/// GB 18030; a simple font's encoding and /Differences; a name bound to no font as Latin-1,
/// or UTF-16BE with a BOM) in every stream it can decode — whatever the stream's dictionary claims,
/// as a viewer shows a page's content stream whatever that claims — to `sink`, one line per
/// baseline (BT…ET blocks on one baseline joined; a new line on T*, ' and ", or on Td / TD /
/// Tm moving down), lines longer than 64 KiB in pieces that overlap by 256 characters. A
/// content stream (by its dictionary) it cannot decode whole (another filter, cut by a cap,
/// not to its end, a string over 64 KiB), any other stream that showed text and was cut, text
/// shown in a font no map lets one read (Identity-H without /ToUnicode, /Differences of
/// mostly glyph names the glyph list does not know; the detail names the font), or over 16 MiB of raw text shown before
/// the fonts it is shown in is ContentUnreadable. Nothing is executed.
/// Not a PDF (no %PDF- in the first 1 KiB), encrypted, truncated inside a stream or without
/// any object, or without %%EOF → ContentUnreadable. Anything but white space after the
/// last %%EOF, or a zip end record a zip tool would take in the last 64 KiB → Polyglot.
pub fn scan_pdf(input: &mut dyn Read, opts: &PdfOptions, sink: &mut LineSink<'_>) -> Scan {
    // a zip hidden in a stream near the end: zip tools open the file as an archive
    let mut tail = crate::content::media::Tail::new(input);
    let verdict = scan_pdf_bytes(&mut tail, opts, sink)?;
    if verdict.is_ok()
        && let Some(at) = tail.zip_end()
    {
        return Ok(Err(Refusal::new(
            Reason::Polyglot,
            format!(
                "a zip end record at offset {at}, inside the PDF (zip tools open the file as an \
                 archive)"
            ),
        )));
    }
    Ok(verdict)
}

fn scan_pdf_bytes(input: &mut dyn Read, opts: &PdfOptions, sink: &mut LineSink<'_>) -> Scan {
    // grown up to CHUNK as the scanner keeps bytes: a small file costs a small buffer
    let mut buf = vec![0u8; FIRST_BUFFER];
    let mut filled = 0;
    while filled < HEADER_WINDOW {
        let n = read_some(input, &mut buf[filled..HEADER_WINDOW])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    if find(&buf[..filled], b"%PDF-").is_none() {
        return Ok(Err(unreadable("not a PDF: no %PDF- header")));
    }
    let mut scanner = Scanner::new(*opts, sink);
    let mut ending = Ending::default();
    ending.feed(&buf[..filled]);
    loop {
        if filled == buf.len() && buf.len() < CHUNK {
            buf.resize((buf.len() * 2).min(CHUNK), 0);
        }
        let n = read_some(input, &mut buf[filled..])?;
        let eof = n == 0;
        ending.feed(&buf[filled..filled + n]);
        filled += n;
        let consumed = match scanner.feed(&buf[..filled], eof) {
            Ok(consumed) => consumed,
            Err(refusal) => return Ok(Err(refusal)),
        };
        buf.copy_within(consumed..filled, 0);
        filled -= consumed;
        if eof {
            break;
        }
    }
    // what the document itself carries first, then what follows its end
    Ok(scanner.finish().and_then(|()| ending.verdict()))
}

/// Where the file ends: its last `%%EOF` marker (ISO 32000-2 §7.5.5), and what follows it.
/// Only white space may follow; anything else is a second file behind the PDF (a polyglot)
/// that other readers and tools may see instead.
#[derive(Debug, Default)]
struct Ending {
    /// The last (at most four) bytes fed, where a marker split between two feeds begins.
    carry: Vec<u8>,
    /// Whether a `%%EOF` was seen.
    seen: bool,
    /// Bytes fed.
    fed: u64,
    /// The offset just past the last `%%EOF` seen.
    marker_end: u64,
    /// The offset of the last byte fed that is not white space.
    last_solid: Option<u64>,
}

/// The end-of-file marker.
const EOF_MARK: &[u8] = b"%%EOF";

impl Ending {
    /// Feeds the next bytes of the file: one search for the last marker in them (and one
    /// across the boundary with the bytes before), and one for their last byte that is not
    /// white space, from their end (where it most often is: no byte is counted).
    fn feed(&mut self, data: &[u8]) {
        // forward search, vectorised (the reverse one is not), for the last marker
        let last = memchr::memmem::find_iter(data, EOF_MARK)
            .last()
            .map(|at| at + EOF_MARK.len())
            .or_else(|| {
                // a marker begun in the bytes before, ending in these
                let head = data.get(..EOF_MARK.len() - 1).unwrap_or(data);
                let mut joined = self.carry.clone();
                joined.extend_from_slice(head);
                lexical::rfind(&joined, EOF_MARK)
                    .map(|at| at + EOF_MARK.len())
                    .filter(|&end| end > self.carry.len())
                    .map(|end| end - self.carry.len())
            });
        if let Some(end) = last {
            self.seen = true;
            self.marker_end = self.fed + end as u64;
        }
        if let Some(at) = data.iter().rposition(|&b| !lexical::is_white(b)) {
            self.last_solid = Some(self.fed + at as u64);
        }
        self.fed += data.len() as u64;
        let keep = EOF_MARK.len() - 1;
        if data.len() >= keep {
            self.carry.clear();
            self.carry.extend_from_slice(&data[data.len() - keep..]);
        } else {
            self.carry.extend_from_slice(data);
            let excess = self.carry.len().saturating_sub(keep);
            self.carry.drain(..excess);
        }
    }

    fn verdict(&self) -> Result<(), Refusal> {
        if !self.seen {
            return Err(unreadable("the PDF has no %%EOF: it is cut short"));
        }
        if self.after() > 0 {
            return Err(Refusal::new(
                Reason::Polyglot,
                format!(
                    "{} bytes after the PDF's last %%EOF: a second file behind the document",
                    self.after()
                ),
            ));
        }
        Ok(())
    }

    /// The bytes after the last `%%EOF` when any of them is not white space, else 0 (and 0
    /// before a marker is seen).
    fn after(&self) -> u64 {
        match self.last_solid {
            Some(solid) if self.seen && solid >= self.marker_end => self.fed - self.marker_end,
            _ => 0,
        }
    }
}

/// Reads into `buf`, trying again when interrupted.
fn read_some(input: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match input.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::scanner::RECENT_CAP;
    use super::testing::{PAGE, catalog, deflate, pdf, reason, scan, scan_with};
    use super::*;

    #[test]
    fn document_strings_outside_the_pages_are_text() {
        for dict in [
            "<< /Title <FEFF673A5BC6> /Producer (x) >>",
            "<< /Type /Annot /Subtype /Text /Contents (\\346\\234\\272) >>",
            "<< /FT /Tx /T (f1) /V <FEFF673A5BC6> >>",
            "<< /Title (Outline) /Parent 1 0 R /Alt <FEFF673A5BC6> >>",
        ] {
            let doc = pdf(&[catalog(), (dict, None)]);
            let (verdict, lines) = scan(&doc, true);
            assert_eq!(verdict, Ok(()), "{dict}");
            assert!(!lines.is_empty(), "{dict}: {lines:?}");
        }
        let doc = pdf(&[catalog(), ("<< /Title <FEFF673A5BC6> >>", None)]);
        assert!(scan(&doc, true).1.contains(&"机密".to_string()));
    }

    /// The end of `data` as a byte-by-byte reading sees it: whether a `%%EOF` occurs, and
    /// how many bytes follow the last one where any of them is not white space.
    fn ending_bytewise(data: &[u8]) -> (bool, u64) {
        let mut last = None;
        for at in 0..data.len() {
            if data[at..].starts_with(b"%%EOF") {
                last = Some(at + 5);
            }
        }
        let count = |d: &[u8]| {
            d.iter()
                .filter(|&&b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0c | 0))
                .count() as u64
        };
        match last {
            Some(end) if count(&data[end..]) > 0 => (true, (data.len() - end) as u64),
            Some(_) => (true, 0),
            None => (false, 0),
        }
    }

    #[test]
    fn a_stream_held_whole_past_the_first_buffer_is_read_to_its_end() {
        // a direct /Length over the read buffer's first size, with `endstream` inside the
        // data: the scanner holds the stream until it can check where it ends, so the
        // buffer must grow (a buffer that stayed full would read as the file's end)
        let mut data = b"BT /F1 12 Tf 72 712 Td (before) Tj ET\n% endstream endobj\n".to_vec();
        data.resize(data.len() + 3 * FIRST_BUFFER, b' ');
        data.extend_from_slice(b"\nBT /F1 12 Tf 72 700 Td (after the padding) Tj ET");
        let dict = format!("<< /Length {} >>", data.len());
        let doc = pdf(&[catalog(), (&dict, Some(&data))]);
        let (verdict, lines) = scan(&doc, true);
        assert_eq!(verdict, Ok(()), "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("before")), "{lines:?}");
        assert!(
            lines.iter().any(|l| l.contains("after the padding")),
            "{lines:?}"
        );
    }

    #[test]
    fn the_end_is_found_whatever_the_reads_split() {
        let cases: [&[u8]; 7] = [
            b"%PDF-1.7 x %%EOF\n",
            b"%PDF-1.7 x %%EOF\n trailing junk",
            b"%%EOF%%EOF%%EOF",
            b"%%EO",
            b"x%%EOFx %%EOF \0\r\n",
            b"%%%EOF",
            b"no end at all",
        ];
        let long: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
        let mut long_marked = long.clone();
        long_marked.extend_from_slice(b"%%EOF \n");
        long_marked.extend_from_slice(&long[..700]);
        for data in cases.iter().copied().chain([&long[..], &long_marked[..]]) {
            let want = ending_bytewise(data);
            // every split into two feeds, and one feed per byte
            for cut in 0..=data.len() {
                let mut e = Ending::default();
                e.feed(&data[..cut]);
                e.feed(&data[cut..]);
                assert_eq!(
                    (e.seen, e.after()),
                    want,
                    "{:?} cut at {cut}",
                    String::from_utf8_lossy(data)
                );
            }
            let mut e = Ending::default();
            for b in data.chunks(1) {
                e.feed(b);
            }
            assert_eq!(
                (e.seen, e.after()),
                want,
                "{:?} byte by byte",
                String::from_utf8_lossy(data)
            );
        }
    }

    #[test]
    fn only_white_space_may_follow_the_last_eof() {
        let doc = pdf(&[catalog()]);
        assert_eq!(scan(&doc, true).0, Ok(()));
        // an incremental update after the first %%EOF ends with its own
        let mut updated = doc.clone();
        updated.extend_from_slice(b"1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\r\n\0\0");
        assert_eq!(scan(&updated, true).0, Ok(()));
        // a zip behind the document
        let mut zipped = doc.clone();
        zipped.extend_from_slice(b"PK\x03\x04\x14\0\0\0 hidden.exe");
        let r = scan(&zipped, true).0.unwrap_err();
        assert_eq!(r.reason, Reason::Polyglot, "{r}");
        // a zip inside a stream of an otherwise ordinary PDF
        let zip = {
            use std::io::Write as _;
            let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            w.start_file("payload.exe", zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(b"MZ").unwrap();
            w.finish().unwrap().into_inner()
        };
        let dict = format!("<< /Length {} >>", zip.len());
        let hidden = pdf(&[catalog(), (&dict, Some(&zip))]);
        let r = scan(&hidden, true).0.unwrap_err();
        assert_eq!(r.reason, Reason::Polyglot, "{r}");
        // no end at all
        let cut = &doc[..doc.len() - 7];
        assert_eq!(
            scan(cut, true).0.unwrap_err().reason,
            Reason::ContentUnreadable
        );
    }

    #[test]
    fn text_of_raw_and_compressed_content_streams() {
        let raw = pdf(&[
            catalog(),
            (&format!("<< /Length {} >>", PAGE.len()), Some(PAGE)),
        ]);
        assert_eq!(scan(&raw, true), (Ok(()), vec!["Hello secret".to_owned()]));
        let packed = deflate(PAGE);
        let dict = format!("<< /Length {} /Filter /FlateDecode >>", packed.len());
        let compressed = pdf(&[catalog(), (&dict, Some(&packed))]);
        assert_eq!(
            scan(&compressed, true),
            (Ok(()), vec!["Hello secret".to_owned()])
        );
        // Text is not read when the caller does not ask for it.
        let opts = PdfOptions {
            refuse_active: true,
            read_text: false,
            allow_uri: true,
        };
        assert_eq!(scan_with(&compressed, opts), (Ok(()), Vec::new()));
    }

    #[test]
    fn not_a_pdf_or_broken_is_unreadable() {
        for data in [
            &b""[..],
            b"hello world",
            b"%PD",
            b"%PDF-1.4\n1 0 obj << >> stream\nabc",
            b"%PDF-1.4\nno objects here at all",
        ] {
            let (verdict, _) = scan(data, true);
            assert_eq!(
                verdict.unwrap_err().reason,
                Reason::ContentUnreadable,
                "{data:?}"
            );
        }
        let doc = pdf(&[catalog(), ("<< /Encrypt 5 0 R >>", None)]);
        assert_eq!(
            scan(&doc, false).0.unwrap_err().reason,
            Reason::ContentUnreadable
        );
        // A stream dictionary too long to read.
        let long = format!("<< /Filler ({}) >>", "x".repeat(RECENT_CAP));
        let doc = pdf(&[catalog(), (&long, Some(b"x"))]);
        assert_eq!(reason(&doc, true, false), Some(Reason::ContentUnreadable));
        // Junk before the header is tolerated, as viewers do.
        let mut doc = b"junk\n".to_vec();
        doc.extend_from_slice(&pdf(&[catalog()]));
        assert_eq!(scan(&doc, true).0, Ok(()));
    }

    #[test]
    fn streams_split_across_reads_are_found() {
        /// Returns at most 7 bytes a read.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(7).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let packed = deflate(PAGE);
        let with_length = format!("<< /Filter /FlateDecode /Length {} >>", packed.len());
        let mut objects = vec![
            catalog(),
            ("<< /Filter /FlateDecode >>", Some(&packed[..])),
            (&with_length, Some(&packed[..])),
        ];
        let opts = PdfOptions {
            refuse_active: true,
            read_text: true,
            allow_uri: true,
        };
        let mut lines = Vec::new();
        let mut sink = |line: &str| {
            lines.push(line.to_owned());
            Ok(())
        };
        let verdict = scan_pdf(&mut Trickle(&pdf(&objects)), &opts, &mut sink).unwrap();
        assert_eq!(verdict, Ok(()));
        assert_eq!(lines, ["Hello secret", "Hello secret"]);
        objects.push(("<< /S /J#61vaScript >>", None));
        let verdict = scan_pdf(&mut Trickle(&pdf(&objects)), &opts, &mut |_| Ok(())).unwrap();
        assert_eq!(verdict.unwrap_err().reason, Reason::ActiveContent);
    }

    #[test]
    fn a_sink_refusal_stops_the_scan() {
        let doc = pdf(&[catalog(), ("<< >>", Some(PAGE))]);
        let mut sink = |line: &str| {
            if line.contains("secret") {
                Err(Refusal::new(Reason::KeywordMatch, "secret"))
            } else {
                Ok(())
            }
        };
        let mut input = doc.as_slice();
        let verdict = scan_pdf(
            &mut input,
            &PdfOptions {
                refuse_active: false,
                read_text: true,
                allow_uri: true,
            },
            &mut sink,
        );
        assert_eq!(verdict.unwrap().unwrap_err().reason, Reason::KeywordMatch);
    }
}
