//! Content type detection: decided from the content's first bytes, never from the name. The
//! extension only chooses between text formats (plain, CSV, JSON, XML) that share the same
//! bytes, and must then agree with what the content is. Media (audio, video, photos) is told
//! by the content engine's own sniffing before the general rules, so that `#!AMR` stays audio
//! and the ISO brands decide between mp4, mov and heic.

/// How many bytes of the head of a file the type detection looks at.
pub const HEAD_LEN: usize = 8192;

/// Content types a policy can allow; `types.allow` names them. Executables are not among
/// them: they cross only when `types.executable_names` names the file.
pub const KNOWN_TYPES: &[&str] = &[
    "text", "csv", "json", "xml", "pdf", "png", "jpeg", "gif", "ooxml", "odf", "zip", "tar",
    "gzip", "mp3", "amr", "wav", "mp4", "mov", "heic", "tiff", "webp",
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
    if let Some(t) = infer::get(head) {
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
    if !looks_like_text(head) {
        return d("unknown", &[]);
    }
    match ext {
        "csv" => d("csv", &["csv"]),
        "json" if head.is_empty() || starts_like_json(body) => d("json", &["json"]),
        "xml" if head.is_empty() || starts_like_xml(body) => d("xml", &["xml"]),
        _ => d("text", &["txt", "md", "log"]),
    }
}

/// A zip, or an office package (OOXML, ODF) told apart by the names of its first entries,
/// read from the local file headers in the head.
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
/// their magic with Java classes), WebAssembly, Dalvik.
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
    ];
    MAGIC.iter().any(|m| head.starts_with(m)) || (head.starts_with(b"MZ") && !looks_like_text(head))
}

fn first_non_space(body: &[u8]) -> Option<u8> {
    body.iter().copied().find(|b| !b.is_ascii_whitespace())
}

fn starts_like_json(body: &[u8]) -> bool {
    matches!(first_non_space(body), Some(b'{') | Some(b'['))
}

fn starts_like_xml(body: &[u8]) -> bool {
    first_non_space(body) == Some(b'<')
}

/// Plain text: no NUL or control bytes other than tab, newline, form feed and carriage
/// return. Multi-byte text (UTF-8, GB18030) passes; decoding is the content engine's job.
fn looks_like_text(head: &[u8]) -> bool {
    head.iter()
        .all(|b| *b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r' | 0x0c))
        && !head.contains(&0x7f)
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
    fn text_formats_follow_the_extension_only_among_text() {
        assert_eq!(detect(b"a,b\n1,2\n", "csv").family, "csv");
        assert_eq!(detect(b"{\"a\":1}", "json").family, "json");
        assert_eq!(detect(b"not json", "json").family, "text");
        assert_eq!(detect(b"<?xml version=\"1.0\"?><a/>", "xml").family, "xml");
        assert_eq!(detect("民事判决书".as_bytes(), "txt").family, "text");
        assert_eq!(detect(b"\x00\x01binary", "txt").family, "unknown");
    }

    #[test]
    fn archives() {
        assert_eq!(detect(b"\x1f\x8b\x08\0\0\0\0\0\0\x03", "gz").family, "gzip");
        assert!(detect(b"\x1f\x8b\x08\0\0\0\0\0\0\x03", "gz").is_archive());
        assert_eq!(detect(b"PK\x03\x04\x14\0\0\0", "zip").family, "zip");
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
    }
}
