//! Content type detection: decided from the content's first bytes, never from the name. The
//! extension only chooses between text formats (plain, CSV, JSON, XML) that share the same
//! bytes, and must then agree with what the content is. Media (audio, video, photos) is told
//! by the content engine's own sniffing before the general rules, so that `#!AMR` stays audio
//! and the ISO brands decide between mp4, mov and heic.

use crate::content::text;

/// How many bytes of the head of a file the type detection looks at.
pub const HEAD_LEN: usize = 8192;

/// Content types a policy can allow; `types.allow` names them. Executables are not among
/// them: they cross only when `types.executable_names` names the file.
pub const KNOWN_TYPES: &[&str] = &[
    "text",
    "csv",
    "json",
    "xml",
    "pdf",
    "png",
    "jpeg",
    "gif",
    "ooxml",
    "odf",
    "ofd",
    "rtf",
    "legacy_office",
    "zip",
    "tar",
    "gzip",
    "mp3",
    "amr",
    "wav",
    "mp4",
    "mov",
    "heic",
    "tiff",
    "webp",
];

/// The signature of an OLE2 compound file ([MS-CFB] 2.2), the container of legacy Office
/// (.doc, .xls, .ppt) and WPS (.wps, .et, .dps) documents, but also of installers (.msi),
/// Outlook messages (.msg) and thumbnail caches: the head cannot tell them apart, the content
/// scan confirms which one it is from the root entries.
pub const CFB_SIGNATURE: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";

/// Extensions of the documents a compound file may be: Word, Excel and PowerPoint binary
/// files and templates, and WPS Office's own Writer, Spreadsheets and Presentation formats.
pub const LEGACY_OFFICE_EXTENSIONS: &[&str] = &[
    "doc", "dot", "xls", "xlt", "ppt", "pot", "pps", "wps", "et", "ett", "dps", "dpt",
];

/// The family of executables (ELF, PE, Mach-O, shebang scripts, Windows shortcuts …).
pub const EXECUTABLE: &str = "executable";

/// A detected content type: its family (as named in policies) and the extensions that agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// Family name, one of `KNOWN_TYPES`, `EXECUTABLE` or "unknown".
    pub family: &'static str,
    /// Extensions that agree with the content.
    pub extensions: &'static [&'static str],
}

impl Detected {
    /// Whether the content is an archive the engine opens (zip, tar, gzip).
    pub fn is_archive(&self) -> bool {
        matches!(self.family, "zip" | "tar" | "gzip")
    }

    /// Whether the content is plain text of some form.
    pub fn is_text(&self) -> bool {
        matches!(self.family, "text" | "csv" | "json" | "xml")
    }
}

fn d(family: &'static str, extensions: &'static [&'static str]) -> Detected {
    Detected { family, extensions }
}

/// Windows shell link (.lnk) header: size 0x4C and the link CLSID.
const LNK: &[u8] = b"\x4c\x00\x00\x00\x01\x14\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00";

/// Decides the content type from the first bytes.
pub fn detect(head: &[u8], ext: &str) -> Detected {
    if let Some(m) = crate::content::media::sniff(head) {
        return d(m.family, m.extensions);
    }
    let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    if body.starts_with(b"#!") || head.starts_with(LNK) || machine_code(head) {
        return d(EXECUTABLE, &[]);
    }
    if head.starts_with(b"PK\x03\x04") {
        return package(head);
    }
    if head.starts_with(b"{\\rtf") {
        return d("rtf", &["rtf"]);
    }
    if head.starts_with(CFB_SIGNATURE) {
        return d("legacy_office", LEGACY_OFFICE_EXTENSIONS);
    }
    if let Some(t) = infer::get(head).filter(|t| !letters_of_text(head, t.extension())) {
        return match t.extension() {
            "pdf" => d("pdf", &["pdf"]),
            "png" => d("png", &["png"]),
            "jpg" => d("jpeg", &["jpg", "jpeg"]),
            "gif" => d("gif", &["gif"]),
            "docx" => d("ooxml", &["docx"]),
            "xlsx" => d("ooxml", &["xlsx"]),
            "pptx" => d("ooxml", &["pptx"]),
            "odt" => d("odf", &["odt"]),
            "ods" => d("odf", &["ods"]),
            "odp" => d("odf", &["odp"]),
            "zip" => d("zip", &["zip"]),
            "tar" => d("tar", &["tar"]),
            "gz" => d("gzip", &["gz", "tgz"]),
            "xml" => d("xml", &["xml"]),
            _ if t.matcher_type() == infer::MatcherType::App => d(EXECUTABLE, &[]),
            _ => d("unknown", &[]),
        };
    }
    // UTF-16 and UTF-32 hold zero bytes: text by their byte-order mark (or, for UTF-16
    // without one, by the shape of Latin text), refused later if not read (text_encoding)
    if !looks_like_text(head) && !text::has_unicode_bom(head) && !text::looks_like_utf16(head) {
        return d("unknown", &[]);
    }
    match ext {
        "csv" => d("csv", &["csv"]),
        "json" if head.is_empty() || starts_like_json(body) => d("json", &["json"]),
        "xml" if head.is_empty() || starts_like_xml(body) => d("xml", &["xml"]),
        _ => d("text", &["txt", "md", "log"]),
    }
}

/// A zip, or an office package (OOXML, ODF) or an OFD document (GB/T 33190, its `OFD.xml` at
/// the root) told apart by the names of its first entries, read from the local file headers
/// in the head.
fn package(head: &[u8]) -> Detected {
    let mut at = 0;
    let mut first = true;
    while let Some(h) = head.get(at..at + 30) {
        if !h.starts_with(b"PK\x03\x04") {
            break;
        }
        let u16_at = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]) as usize;
        let name_len = u16_at(26);
        let extra_len = u16_at(28);
        let Some(name) = head.get(at + 30..at + 30 + name_len) else {
            break;
        };
        let data = at + 30 + name_len + extra_len;
        if first && name == b"mimetype" {
            let body = head.get(data..).unwrap_or_default();
            for (mime, ext) in [
                (
                    &b"application/vnd.oasis.opendocument.text"[..],
                    &["odt"][..],
                ),
                (b"application/vnd.oasis.opendocument.spreadsheet", &["ods"]),
                (b"application/vnd.oasis.opendocument.presentation", &["odp"]),
            ] {
                if body.starts_with(mime) && body[mime.len()..].first().is_none_or(|b| *b != b'-') {
                    return d("odf", ext);
                }
            }
        }
        first = false;
        if name == b"OFD.xml" {
            return d("ofd", &["ofd"]);
        }
        for (prefix, ext) in [
            (&b"word/"[..], &["docx"][..]),
            (b"xl/", &["xlsx"]),
            (b"ppt/", &["pptx"]),
        ] {
            if name.starts_with(prefix) {
                return d("ooxml", ext);
            }
        }
        // the next header: after the data when its size is known, else search for it
        let flags = u16_at(6);
        let size = u32::from_le_bytes([h[18], h[19], h[20], h[21]]) as usize;
        at = if flags & 0x8 == 0 && size > 0 {
            data.saturating_add(size)
        } else {
            match head
                .get(data..)
                .and_then(|rest| rest.windows(4).position(|w| w == b"PK\x03\x04"))
            {
                Some(p) => data + p,
                None => break,
            }
        };
    }
    d("zip", &["zip"])
}

/// Object code whatever its length: ELF, DOS/PE, Mach-O (and fat binaries, which share
/// their magic with Java classes), WebAssembly, Dalvik. Any head that starts `MZ` is a DOS
/// program, text or not: every field of its header can be a letter, and what DOS loads can
/// lie past the head.
fn machine_code(head: &[u8]) -> bool {
    const MAGIC: &[&[u8]] = &[
        b"\x7fELF",
        b"\xfe\xed\xfa\xce",
        b"\xfe\xed\xfa\xcf",
        b"\xce\xfa\xed\xfe",
        b"\xcf\xfa\xed\xfe",
        b"\xca\xfe\xba\xbe",
        b"\0asm",
        b"dex\n",
        b"MZ",
    ];
    MAGIC.iter().any(|m| head.starts_with(m))
}

/// Whether `infer` matched a text head on letters alone: formats it tells by two or three
/// bytes that ordinary text begins with (`BC`, `BM`, `M4A `, and the GBK pairs `0\x82` and
/// `d\x86`), where a genuine file has a control or NUL byte within its first bytes (a
/// binary size, count or version: a BMP's header size, DER's inner tags, COFF's section
/// count) and a head free of them is text that starts with those letters, as `file(1)`, the
/// common reader, says too. Where a genuine file can have a head free of control bytes, the
/// verdict stands, whatever the text after it: `MZ` (a DOS program's header fields can all
/// be letters; see `machine_code`), `GIF` (common readers check the three letters, some a
/// version of any letters), LLVM bitcode's whole magic `BC\xC0\xDE`, and the heads that
/// common readers take from their letters (`BZh`, `ID3`, `MAC `, `FWS`, `%!`, cpio's
/// `q\xC7`, HTML).
fn letters_of_text(head: &[u8], extension: &str) -> bool {
    let coincidence = match extension {
        "bmp" | "der" | "obj" => true,
        "bc" => !head.starts_with(b"BC\xC0\xDE"),
        "m4a" => !head.get(4..).is_some_and(|h| h.starts_with(b"ftypM4A")),
        _ => false,
    };
    coincidence && looks_like_text(head)
}

/// The first byte that is not white space, or in UTF-16 (after its byte-order mark) the first
/// ASCII character that is not.
fn first_non_space(body: &[u8]) -> Option<u8> {
    let units = |rest: &[u8], le: bool| -> Option<u8> {
        rest.chunks_exact(2)
            .map(|p| if le { (p[0], p[1]) } else { (p[1], p[0]) })
            .find(|(lo, hi)| !(*hi == 0 && lo.is_ascii_whitespace()))
            .and_then(|(lo, hi)| (hi == 0).then_some(lo))
    };
    if let Some(rest) = body.strip_prefix(b"\xFF\xFE") {
        return units(rest, true);
    }
    if let Some(rest) = body.strip_prefix(b"\xFE\xFF") {
        return units(rest, false);
    }
    body.iter().copied().find(|b| !b.is_ascii_whitespace())
}

fn starts_like_json(body: &[u8]) -> bool {
    matches!(first_non_space(body), Some(b'{') | Some(b'['))
}

fn starts_like_xml(body: &[u8]) -> bool {
    first_non_space(body) == Some(b'<')
}

/// Plain text: no NUL or control bytes other than tab, newline, form feed and carriage
/// return ([`text::is_control`]). Multi-byte text (UTF-8, GB18030) passes; decoding is the
/// content engine's job, and it holds the rest of the file to the same rule.
fn looks_like_text(head: &[u8]) -> bool {
    text::first_control(head).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executables_of_every_kind() {
        let cases: [&[u8]; 5] = [
            b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0",
            b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0",
            b"\xcf\xfa\xed\xfe\x07\0\0\x01\x03\0\0\0",
            b"#!/bin/sh\necho hi\n",
            LNK,
        ];
        for head in cases {
            assert_eq!(detect(head, "pdf").family, EXECUTABLE, "{head:?}");
        }
        assert_eq!(
            detect(b"\xEF\xBB\xBF#!/usr/bin/env python\n", "txt").family,
            EXECUTABLE
        );
    }

    #[test]
    fn media_by_its_own_magic_and_amr_is_not_a_script() {
        let mut amr = b"#!AMR\n".to_vec();
        amr.extend_from_slice(&[0x3c; 32]);
        assert_eq!(detect(&amr, "amr"), d("amr", &["amr"]));
        assert_eq!(detect(b"#!AMR-WB\n\x44", "amr").family, "amr");
        for script in [
            &b"#!/bin/sh\n"[..],
            b"#!AMR_MC1.0\n",
            b"#!AMRx\n",
            b"\xEF\xBB\xBF#!AMR\n",
        ] {
            assert_eq!(detect(script, "amr").family, EXECUTABLE, "{script:?}");
        }
        let ftyp = |brand: &[u8; 4]| {
            let mut b = b"\0\0\0\x14ftyp".to_vec();
            b.extend_from_slice(brand);
            b.extend_from_slice(b"\0\0\0\0");
            b.extend_from_slice(brand);
            b
        };
        assert_eq!(detect(&ftyp(b"isom"), "mp4").family, "mp4");
        assert_eq!(
            detect(&ftyp(b"M4A "), "m4a").extensions,
            &["mp4", "m4a", "m4v"]
        );
        assert_eq!(detect(&ftyp(b"qt  "), "mov").family, "mov");
        assert_eq!(detect(&ftyp(b"heic"), "heic").family, "heic");
        assert_eq!(detect(b"RIFF\x04\0\0\0WAVE", "wav").family, "wav");
        assert_eq!(detect(b"RIFF\x04\0\0\0WEBP", "webp").family, "webp");
        assert_eq!(detect(b"II*\0\x08\0\0\0\0\0\0\0", "tif").family, "tiff");
        assert_eq!(detect(b"MM\0*\0\0\0\x08", "tiff").family, "tiff");
        assert_eq!(detect(b"ID3\x04\0\0\0\0\0\0", "mp3").family, "mp3");
        assert_eq!(detect(b"\xff\xfb\x90\x64", "mp3").family, "mp3");
        // an AVI is RIFF but none of these; a JPEG is not an MPEG frame
        assert_eq!(detect(b"RIFF\x04\0\0\0AVI LIST", "avi").family, "unknown");
        assert_eq!(
            detect(b"\xff\xd8\xff\xe0\0\x10JFIF\0", "jpg").family,
            "jpeg"
        );
        assert_eq!(detect(b"Get free stuff", "txt").family, "text");
    }

    #[test]
    fn text_that_begins_with_a_short_magic_is_text() {
        let gbk = |b: &[u8]| {
            let mut t = b.to_vec();
            t.extend_from_slice(b"\xc5\xd0\xbe\xf6\xca\xe9\n"); // 判决书 in GBK
            t
        };
        let texts: [&[u8]; 8] = [
            b"BCD,amount\n1,2\n",
            b"BM 7 filed on 3 May\n",
            b"M4A sent\n",
            &gbk(b"0\x82\xa1"), // "0偂"
            &gbk(b"d\x86\xa1"), // "d啞"
            b"BMbase64+QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n",
            "BC 民事判决书\n".as_bytes(),
            b"BC",
        ];
        for t in texts {
            assert_eq!(detect(t, "txt").family, "text", "{t:?}");
        }
        assert_eq!(detect(b"BCD,amount\n1,2\n", "csv").family, "csv");
        // the genuine files, with their binary headers, are what they are
        assert_eq!(detect(b"BC\xc0\xde\x35\x14\0\0", "txt").family, EXECUTABLE);
        assert_eq!(detect(b"0\x82\x03\x1a\x30\x82", "txt").family, EXECUTABLE);
        assert_eq!(detect(b"d\x86\x03\0\0\0", "txt").family, EXECUTABLE);
        assert_eq!(detect(b"BM\x36\x04\0\0\0\0", "txt").family, "unknown");
        assert_eq!(detect(b"GIF89a\x01\0\x01\0\x80", "gif").family, "gif");
        // heads a genuine file can have free of control bytes keep their verdict: a DOS
        // program's header, a GIF of any version, LLVM bitcode's whole magic (its GB18030
        // reading is text), and what common readers take by its letters
        for head in [
            &b"MZ-2024 notice of hearing\n"[..],
            "MZ 民事判决书\n".as_bytes(),
            b"MZ\x09\x09\x09\x09\x09\x09\xfe\xfe  ",
        ] {
            assert_eq!(detect(head, "txt").family, EXECUTABLE, "{head:?}");
        }
        assert_eq!(detect(b"GIF89a hello", "txt").family, "gif");
        for head in [
            &b"GIFT list\n"[..],
            b"GIF89b  \x80\x80",
            b"BC\xc0\xde 5 text",
            b"BZh91AY&SY hello",
            b"ID3 tag list\n",
            b"MAC address list\n",
            b"FWS note\n",
            b"%!PS-Adobe-3.0\n",
            b"#! not a script?\n",
        ] {
            assert!(!detect(head, "txt").is_text(), "{head:?}");
        }
    }

    #[test]
    fn text_formats_follow_the_extension_only_among_text() {
        assert_eq!(detect(b"a,b\n1,2\n", "csv").family, "csv");
        assert_eq!(detect(b"{\"a\":1}", "json").family, "json");
        assert_eq!(detect(b"not json", "json").family, "text");
        assert_eq!(detect(b"<?xml version=\"1.0\"?><a/>", "xml").family, "xml");
        assert_eq!(detect("民事判决书".as_bytes(), "txt").family, "text");
        assert_eq!(detect(b"\x00\x01binary", "txt").family, "unknown");
    }

    #[test]
    fn utf16_and_utf32_are_text_and_follow_the_extension() {
        let utf16le = |t: &str| {
            let mut out = vec![0xFF, 0xFE];
            t.encode_utf16()
                .for_each(|u| out.extend_from_slice(&u.to_le_bytes()));
            out
        };
        assert_eq!(detect(&utf16le("民事判决书\r\n"), "txt").family, "text");
        assert_eq!(detect(&utf16le("a,b\r\n1,2"), "csv").family, "csv");
        assert_eq!(detect(&utf16le(" {\"a\": 1}"), "json").family, "json");
        assert_eq!(
            detect(&utf16le("<?xml version=\"1.0\"?>"), "xml").family,
            "xml"
        );
        let be: Vec<u8> = [0xFE, 0xFF, 0x00, b'{', 0x00, b'}'].to_vec();
        assert_eq!(detect(&be, "json").family, "json");
        // no byte-order mark: still text, so that it is refused as an encoding, not unknown
        assert_eq!(
            detect(&utf16le("plain latin text")[2..], "txt").family,
            "text"
        );
        assert_eq!(detect(b"\xFF\xFE\0\0a\0\0\0", "txt").family, "text");
    }

    #[test]
    fn archives() {
        assert_eq!(detect(b"\x1f\x8b\x08\0\0\0\0\0\0\x03", "gz").family, "gzip");
        assert!(detect(b"\x1f\x8b\x08\0\0\0\0\0\0\x03", "gz").is_archive());
        assert_eq!(detect(b"PK\x03\x04\x14\0\0\0", "zip").family, "zip");
    }

    #[test]
    fn compound_files_are_legacy_office_whatever_the_name() {
        let mut head = CFB_SIGNATURE.to_vec();
        head.extend_from_slice(&[0u8; 504]);
        for ext in ["doc", "xls", "ppt", "wps", "et", "dps", "msi", ""] {
            let found = detect(&head, ext);
            assert_eq!(found.family, "legacy_office", "{ext}");
        }
        assert!(detect(&head, "doc").extensions.contains(&"et"));
        assert!(!detect(&head, "msi").extensions.contains(&"msi"));
        // one byte off is not a compound file
        head[7] = 0;
        assert_ne!(detect(&head, "doc").family, "legacy_office");
    }

    fn zip_of(names: &[&str], first_body: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (i, n) in names.iter().enumerate() {
            w.start_file(*n, stored).unwrap();
            w.write_all(if i == 0 { first_body } else { b"<x/>" })
                .unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn office_packages_by_their_entries() {
        let docx = zip_of(
            &["[Content_Types].xml", "_rels/.rels", "word/document.xml"],
            b"<T/>",
        );
        assert_eq!(detect(&docx, "docx"), d("ooxml", &["docx"]));
        let xlsx = zip_of(&["[Content_Types].xml", "xl/workbook.xml"], b"<T/>");
        assert_eq!(detect(&xlsx, "xlsx"), d("ooxml", &["xlsx"]));
        let odt = zip_of(
            &["mimetype", "content.xml"],
            b"application/vnd.oasis.opendocument.text",
        );
        assert_eq!(detect(&odt, "odt"), d("odf", &["odt"]));
        let plain = zip_of(&["a.txt", "b/word/x.txt"], b"hello");
        assert_eq!(detect(&plain, "docx").family, "zip");
        let ofd = zip_of(&["OFD.xml", "Doc_0/Document.xml"], b"<ofd:OFD/>");
        assert_eq!(detect(&ofd, "ofd"), d("ofd", &["ofd"]));
        let nested = zip_of(&["Doc_0/OFD.xml", "ofd.xml"], b"<ofd:OFD/>");
        assert_eq!(detect(&nested, "ofd").family, "zip");
    }
}
