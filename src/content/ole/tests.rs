use super::testing::*;
use super::*;
use crate::content::archive::Limits;
use crate::content::detect::EXECUTABLE;

/// Generous limits: depth 3.
fn limits() -> Limits {
    Limits {
        max_depth: 3,
        max_entries: 1000,
        max_expanded_bytes: 64 << 20,
        max_ratio: 200,
        legacy_names: crate::content::archive::LegacyNames::Gb18030,
    }
}

/// Keeps every embedded file; refuses executables, as the evaluator does.
#[derive(Default)]
struct Objects {
    seen: Vec<(String, u32, Vec<u8>)>,
}

impl Visitor for Objects {
    fn entry(
        &mut self,
        path: &str,
        depth: u32,
        reader: &mut dyn Read,
        _budget: &mut Budget,
    ) -> Scan {
        let mut data = Vec::new();
        reader.read_to_end(&mut data)?;
        if detect(&data, "").family == EXECUTABLE {
            return Ok(Err(Refusal::new(
                Reason::TypeRefused,
                format!("entry {path}: an executable"),
            )));
        }
        self.seen.push((path.to_string(), depth, data));
        Ok(Ok(()))
    }
}

/// What a scan found.
struct Found {
    verdict: Result<(), Refusal>,
    lines: Vec<String>,
    objects: Vec<(String, u32, Vec<u8>)>,
}

/// Scans `data` named with `ext`, reading text when `text`; the sink refuses "机密".
fn scan(data: &[u8], ext: &str, text: bool) -> Found {
    let mut lines = Vec::new();
    let mut sink = |l: &str| {
        lines.push(l.to_string());
        if l.contains("机密") {
            return Err(Refusal::new(
                Reason::ClassificationMarking,
                "marking 机密".to_string(),
            ));
        }
        Ok(())
    };
    let mut objects = Objects::default();
    let mut budget = Budget::new(limits());
    let mut input = data;
    let verdict = scan_ole(
        Input::Stream(&mut input),
        ext,
        text.then_some(&mut sink as &mut LineSink<'_>),
        &mut objects,
        0,
        &mut budget,
        &std::env::temp_dir(),
    )
    .expect("no fault");
    Found {
        verdict,
        lines,
        objects: objects.seen,
    }
}

fn refused(data: &[u8], ext: &str, text: bool) -> Refusal {
    scan(data, ext, text).verdict.expect_err("refused")
}

#[test]
fn word_text_is_read_from_the_piece_table() {
    let found = scan(&doc("民事判决书\r本院认为\x07第三段"), "doc", true);
    assert_eq!(found.verdict, Ok(()));
    assert_eq!(found.lines, ["民事判决书", "本院认为", "第三段"]);
    let r = refused(&doc("案件材料\r机密★10年\r"), "doc", true);
    assert_eq!(r.reason, Reason::ClassificationMarking);
    assert!(r.detail.starts_with("stream WordDocument: "), "{r}");
    // without text rules the same document passes unread
    assert_eq!(scan(&doc("机密"), "doc", false).verdict, Ok(()));
    // the same document as WPS Writer names it
    assert_eq!(scan(&doc("正文"), "wps", true).verdict, Ok(()));
}

#[test]
fn word_fields_that_reach_outside_are_refused_with_or_without_text_rules() {
    // Word 97 and WPS write a field as 0x13 code 0x14 result 0x15 ([MS-DOC] 2.8.25)
    let dde = "正文\r\u{13} DDEAUTO c:\\windows\\system32\\cmd.exe \"/k calc\" \u{14}x\u{15}\r";
    for (ext, text) in [("doc", true), ("doc", false), ("wps", true), ("wps", false)] {
        let r = refused(&doc(dde), ext, text);
        assert_eq!(r.reason, Reason::ActiveContent, "{ext} {text}: {r}");
        assert!(r.detail.contains("field DDEAUTO reaches outside"), "{r}");
    }
    // a keyword spelled by a nested QUOTE field
    let quoted =
        "\u{13}\u{13}QUOTE 68 68 69 65 85 84 79\u{14}DDEAUTO\u{15} c:\\cmd.exe\u{14}\u{15}";
    let r = refused(&doc(quoted), "doc", false);
    assert!(r.detail.contains("built by a nested field"), "{r}");
    // ordinary fields pass, their results are text
    let page = "第\u{13} PAGE \\* MERGEFORMAT \u{14}3\u{15}页\r";
    let found = scan(&doc(page), "doc", true);
    assert_eq!(found.verdict, Ok(()));
    assert_eq!(found.lines, ["第 PAGE \\* MERGEFORMAT 3页"]);
}

#[test]
fn word_compressed_pieces_are_cp1252() {
    let (word, table) = word_streams("caf\u{e9} \u{93}quoted\u{94}\rnext", true, 0);
    let data = compound(&[("WordDocument", &word), ("1Table", &table)], &[]);
    let found = scan(&data, "doc", true);
    assert_eq!(found.verdict, Ok(()));
    assert_eq!(found.lines, ["café \u{201C}quoted\u{201D}", "next"]);
}

#[test]
fn word_piece_table_out_of_range_is_unreadable_on_every_channel() {
    let (word, mut table) = word_streams("text", false, 0);
    // the piece's fc past the end of the stream
    let n = table.len();
    table[n - 6..n - 2].copy_from_slice(&0x0100_0000u32.to_le_bytes());
    let data = compound(&[("WordDocument", &word), ("1Table", &table)], &[]);
    let r = refused(&data, "doc", true);
    assert_eq!(r.reason, Reason::ContentUnreadable);
    assert!(r.detail.contains("piece 0 out of range"), "{r}");
    // its fields are judged whatever the text rules: text that cannot be read is refused
    assert_eq!(
        refused(&data, "doc", false).reason,
        Reason::ContentUnreadable
    );
    // no table stream
    let data = compound(&[("WordDocument", &word)], &[]);
    assert_eq!(
        refused(&data, "doc", true).reason,
        Reason::ContentUnreadable
    );
    // not a FIB
    let data = compound(&[("WordDocument", &[0u8; 600])], &[]);
    assert_eq!(
        refused(&data, "doc", false).reason,
        Reason::ContentUnreadable
    );
}

#[test]
fn encrypted_documents_are_unreadable_whatever_the_channel() {
    let (word, table) = word_streams("text", false, 0x0100);
    let data = compound(&[("WordDocument", &word), ("1Table", &table)], &[]);
    let r = refused(&data, "doc", false);
    assert_eq!(r.reason, Reason::ContentUnreadable);
    assert!(r.detail.contains("encrypted"), "{r}");
    let book = workbook(&[record(0x002F, &[0, 0, 0, 0]), sst(&["x"], 8224)]);
    let data = compound(&[("Workbook", &book)], &[]);
    let r = refused(&data, "xls", false);
    assert!(r.detail.contains("encrypted"), "{r}");
    let stream = ppt_stream(&[ppt_record(0x000F, 0x2F14, &[])]);
    let data = compound(&[("PowerPoint Document", &stream)], &[]);
    let r = refused(&data, "ppt", false);
    assert!(r.detail.contains("encrypted"), "{r}");
    let data = compound(
        &[
            ("EncryptionInfo", b"\x04\x00\x04\x00"),
            ("EncryptedPackage", b"x"),
        ],
        &[],
    );
    let r = refused(&data, "doc", false);
    assert_eq!(r.reason, Reason::ContentUnreadable);
    assert!(r.detail.contains("encrypted"), "{r}");
}

#[test]
fn excel_shared_strings_across_continue_records() {
    let id = resident_id("22010219800101123");
    let strings = ["原告", &id, "长文本".repeat(40).leak() as &str];
    let book = workbook(&[boundsheet("Sheet1", 0), sst(&strings, 60)]);
    let data = compound(&[("Workbook", &book)], &[]);
    let found = scan(&data, "xls", true);
    assert_eq!(found.verdict, Ok(()));
    assert_eq!(found.lines[0], "Sheet1");
    assert_eq!(&found.lines[1..], &strings);
    // a label cell and a marking in the strings
    let mut label = vec![0, 0, 0, 0, 0, 0, 2, 0, 1];
    label.extend("机密".encode_utf16().flat_map(|u| u.to_le_bytes()));
    let book = workbook(&[boundsheet("S", 0), record(0x0204, &label)]);
    let data = compound(&[("Workbook", &book)], &[]);
    let r = refused(&data, "et", true);
    assert_eq!(r.reason, Reason::ClassificationMarking);
    assert!(r.detail.starts_with("stream Workbook: "), "{r}");
    assert_eq!(
        scan(&xls(&["机密"]), "xls", true)
            .verdict
            .unwrap_err()
            .reason,
        Reason::ClassificationMarking
    );
    assert_eq!(scan(&xls(&["公开"]), "xls", true).verdict, Ok(()));
}

#[test]
fn powerpoint_text_atoms_are_read() {
    let found = scan(&ppt("第一页\r第二行"), "ppt", true);
    assert_eq!(found.verdict, Ok(()));
    assert_eq!(found.lines, ["第一页", "第二行"]);
    let stream = ppt_stream(&[
        ppt_record(0, 0x0FA8, b"plain bytes"),
        ppt_record(
            0,
            0x0FBA,
            &"机密"
                .encode_utf16()
                .flat_map(|u| u.to_le_bytes())
                .collect::<Vec<_>>(),
        ),
    ]);
    let data = compound(&[("PowerPoint Document", &stream)], &[]);
    let found = scan(&data, "dps", true);
    assert_eq!(found.lines[0], "plain bytes");
    assert_eq!(
        found.verdict.unwrap_err().reason,
        Reason::ClassificationMarking
    );
    // an atom longer than the stream
    let mut stream = ppt_stream(&[ppt_record(0, 0x0FA0, b"ab")]);
    let n = stream.len();
    stream[n - 6..n - 2].copy_from_slice(&1000u32.to_le_bytes());
    let data = compound(&[("PowerPoint Document", &stream)], &[]);
    assert_eq!(
        refused(&data, "ppt", true).reason,
        Reason::ContentUnreadable
    );
}

#[test]
fn macros_are_active_content() {
    let (word, table) = word_streams("text", false, 0);
    let with = |extra: &str| {
        compound(
            &[
                ("WordDocument", &word),
                ("1Table", &table),
                (extra, b"Attribute VB_Name"),
            ],
            &[],
        )
    };
    for (path, ext) in [
        ("Macros/VBA/ThisDocument", "doc"),
        ("Macros/PROJECT", "doc"),
        ("_VBA_PROJECT_CUR/VBA/dir", "doc"),
        ("Other/VBA/_VBA_PROJECT", "doc"),
    ] {
        let r = refused(&with(path), ext, false);
        assert_eq!(r.reason, Reason::ActiveContent, "{path}: {r}");
    }
    // a dir stream beside a PROJECT stream
    let data = compound(
        &[
            ("WordDocument", &word),
            ("1Table", &table),
            ("P/dir", b"x"),
            ("P/PROJECT", b"x"),
        ],
        &[],
    );
    assert_eq!(refused(&data, "doc", false).reason, Reason::ActiveContent);
    // the benign twin: a data storage
    assert_eq!(scan(&with("Data/Item"), "doc", true).verdict, Ok(()));
    // an Excel 4.0 macro sheet
    let book = workbook(&[boundsheet("Sheet1", 0), boundsheet("Auto", 1)]);
    let r = refused(&compound(&[("Workbook", &book)], &[]), "xls", false);
    assert_eq!(r.reason, Reason::ActiveContent);
    assert!(r.detail.contains("macro sheet \"Auto\""), "{r}");
    // PowerPoint's VBA project
    let stream = ppt_stream(&[ppt_record(0x000F, 0x03FF, &[])]);
    let r = refused(
        &compound(&[("PowerPoint Document", &stream)], &[]),
        "ppt",
        false,
    );
    assert_eq!(r.reason, Reason::ActiveContent);
}

#[test]
fn compound_files_that_are_not_the_named_document_are_mismatches() {
    // an installer: MSI stream names are encoded in the CJK range
    let msi = compound(
        &[
            ("\u{4840}\u{3f3f}\u{4577}", b"x"),
            ("\u{5}SummaryInformation", b"x"),
        ],
        &[],
    );
    let r = refused(&msi, "doc", false);
    assert_eq!(r.reason, Reason::TypeMismatch);
    assert!(r.detail.contains("Windows Installer"), "{r}");
    let msg = compound(
        &[("__substg1.0_0037001F", b"x")],
        &["__properties_version1.0"],
    );
    let r = refused(&msg, "doc", false);
    assert!(r.detail.contains("Outlook message"), "{r}");
    // a workbook named .doc
    let r = refused(&xls(&["x"]), "doc", false);
    assert_eq!(r.reason, Reason::TypeMismatch);
    assert!(r.detail.contains("Excel workbook"), "{r}");
    assert_eq!(scan(&xls(&["x"]), "xls", false).verdict, Ok(()));
    // not a compound file at all
    let r = refused(b"not a compound file, just text", "doc", false);
    assert_eq!(r.reason, Reason::ContentUnreadable);
}

/// A Word document holding the object storage `object` (streams relative to it).
fn doc_with_object(object: &[(&str, &[u8])]) -> Vec<u8> {
    let (word, table) = word_streams("正文", false, 0);
    let paths: Vec<String> = object
        .iter()
        .map(|(n, _)| format!("ObjectPool/_1234/{n}"))
        .collect();
    let mut streams: Vec<(&str, &[u8])> = vec![("WordDocument", &word), ("1Table", &table)];
    streams.extend(paths.iter().zip(object).map(|(p, (_, d))| (p.as_str(), *d)));
    compound(&streams, &[])
}

#[test]
fn packaged_files_go_to_the_visitor_by_their_name() {
    let text = package(b"notes", b"C:\\Users\\u\\notes.txt", b"hello");
    let data = doc_with_object(&[("\u{1}Ole10Native", &text), ("\u{1}CompObj", b"x")]);
    let found = scan(&data, "doc", true);
    assert_eq!(found.verdict, Ok(()));
    assert_eq!(
        found.objects,
        [(
            "ObjectPool/_1234/notes.txt".to_string(),
            1,
            b"hello".to_vec()
        )]
    );
    let elf = package(b"tool", b"C:\\tool.txt", b"\x7fELF\x02\x01\x01\0\0\0\0\0");
    let r = refused(
        &doc_with_object(&[("\u{1}Ole10Native", &elf)]),
        "doc",
        false,
    );
    assert_eq!(r.reason, Reason::TypeRefused, "{r}");
    // in an Excel workbook, under an MBD storage
    let book = workbook(&[boundsheet("S", 0)]);
    let data = compound(
        &[("Workbook", &book), ("MBD00A1B2C3/\u{1}Ole10Native", &elf)],
        &[],
    );
    assert_eq!(refused(&data, "xls", false).reason, Reason::TypeRefused);
    // a package whose data runs past its stream
    let mut short = text.clone();
    short.truncate(short.len() - 2);
    let r = refused(
        &doc_with_object(&[("\u{1}Ole10Native", &short)]),
        "doc",
        false,
    );
    assert_eq!(r.reason, Reason::ContentUnreadable, "{r}");
}

#[test]
fn embedded_objects_equations_and_documents() {
    let r = refused(
        &doc_with_object(&[("Equation Native", b"\x1c\x00")]),
        "doc",
        false,
    );
    assert_eq!(r.reason, Reason::ActiveContent);
    assert!(r.detail.contains("CVE-2017-11882"), "{r}");
    // an embedded Word document is read like one, text and all
    let (word, table) = word_streams("机密", false, 0);
    let data = doc_with_object(&[("WordDocument", &word), ("1Table", &table)]);
    assert_eq!(
        refused(&data, "doc", true).reason,
        Reason::ClassificationMarking
    );
    let (word, table) = word_streams("公开", false, 0);
    let data = doc_with_object(&[("WordDocument", &word), ("1Table", &table)]);
    let found = scan(&data, "doc", true);
    assert_eq!(found.verdict, Ok(()));
    assert_eq!(found.lines, ["正文", "公开"]);
    // an object with nothing that can be inspected
    let r = refused(
        &doc_with_object(&[("\u{1}Ole", b"x"), ("\u{1}CompObj", b"x")]),
        "doc",
        false,
    );
    assert_eq!(r.reason, Reason::ContentUnreadable);
    // a PDF as the CONTENTS of an object
    let data = doc_with_object(&[("CONTENTS", b"%PDF-1.4\n%%EOF\n")]);
    let found = scan(&data, "doc", false);
    assert_eq!(found.verdict, Ok(()));
    assert_eq!(found.objects[0].0, "ObjectPool/_1234/1234.pdf");
    // an OLE object read on its own (an office package's oleObject1.bin)
    let text = package(b"a", b"a.txt", b"fine");
    let bin = compound(&[("\u{1}Ole10Native", &text)], &[]);
    let found = scan(&bin, "bin", true);
    assert_eq!(found.verdict, Ok(()));
    assert_eq!(found.objects[0].0, "a.txt");
}

#[test]
fn directories_larger_than_the_cap_are_refused_before_loading() {
    // a header whose directory chain loops on itself: sector 0 points to sector 0
    let mut data = doc("x");
    let first_dir = le32(&data, 0x30).unwrap();
    let fat_sector = le32(&data, 0x4C).unwrap();
    let sector_len = 1usize << le16(&data, 0x1E).unwrap();
    let at = (fat_sector as usize + 1) * sector_len + first_dir as usize * 4;
    data[at..at + 4].copy_from_slice(&first_dir.to_le_bytes());
    let r = refused(&data, "doc", false);
    assert_eq!(r.reason, Reason::ArchiveLimit, "{r}");
}

#[test]
fn mutated_compound_files_are_refused_or_passed_never_a_panic() {
    let (word, table) = word_streams("正文\r第二段", false, 0);
    let native = package(b"a", b"a.txt", b"hello");
    let seeds = [
        compound(
            &[
                ("WordDocument", &word),
                ("1Table", &table),
                ("ObjectPool/_1/\u{1}Ole10Native", &native),
            ],
            &[],
        ),
        xls(&["原告", "被告", "长文本"]),
        ppt("第一页\r第二行"),
    ];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..1500 {
        let seed = &seeds[i % seeds.len()];
        let mut data = seed.clone();
        // the header and the first sectors hold every structure of these small files
        let span = data.len().min(4 * 4096 + 512);
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % span;
            data[at] = next() as u8;
        }
        let ext = ["doc", "xls", "ppt"][i % 3];
        let _ = scan(&data, ext, true);
    }
}

/// A presentation holding one object storage in an ExOleObjStg record, compressed or not.
fn ppt_with_object(storage: &[u8], compressed: bool) -> Vec<u8> {
    use std::io::Write;
    let atom = if compressed {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(storage).unwrap();
        let mut body = (storage.len() as u32).to_le_bytes().to_vec();
        body.extend(z.finish().unwrap());
        ppt_record(0x0010, 0x1011, &body)
    } else {
        ppt_record(0x0000, 0x1011, storage)
    };
    let chars: Vec<u8> = "标题"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let stream = ppt_stream(&[ppt_record(0, 0x0FA0, &chars), atom]);
    compound(&[("PowerPoint Document", &stream)], &[])
}

#[test]
fn presentation_objects_are_inflated_and_read() {
    let clean = compound(
        &[("\u{1}Ole10Native", &package(b"a", b"a.txt", b"hello"))],
        &[],
    );
    for compressed in [true, false] {
        let found = scan(&ppt_with_object(&clean, compressed), "ppt", true);
        assert_eq!(found.verdict, Ok(()));
        assert_eq!(found.lines, ["标题"]);
        assert_eq!(found.objects, [("a.txt".to_string(), 1, b"hello".to_vec())]);
    }
    // an embedded workbook saying 机密
    let r = refused(&ppt_with_object(&xls(&["机密"]), true), "ppt", true);
    assert_eq!(r.reason, Reason::ClassificationMarking);
    assert!(
        r.detail
            .starts_with("PowerPoint Document: embedded object 1: "),
        "{r}"
    );
    // an executable in a package
    let elf = compound(
        &[(
            "\u{1}Ole10Native",
            &package(b"a", b"a.txt", b"\x7fELF\x02\x01\x01\0"),
        )],
        &[],
    );
    let r = refused(&ppt_with_object(&elf, true), "ppt", false);
    assert_eq!(r.reason, Reason::TypeRefused);
    // a damaged zlib stream
    let mut data = ppt_with_object(&clean, true);
    let at = data.windows(2).position(|w| w == [0x78, 0x9c]).unwrap();
    for b in &mut data[at + 2..at + 12] {
        *b ^= 0x5A;
    }
    let r = refused(&data, "ppt", false);
    assert_eq!(r.reason, Reason::ContentUnreadable, "{r}");
}

#[test]
fn summary_properties_are_text() {
    use super::properties::tests::{lpstr, property_stream};
    let (word, table) = word_streams("正文", false, 0);
    let with_title = |title: &str| {
        let summary = property_stream(&[(2, lpstr(title.as_bytes()))]);
        compound(
            &[
                ("WordDocument", &word),
                ("1Table", &table),
                ("\u{5}SummaryInformation", &summary),
            ],
            &[],
        )
    };
    let found = scan(&with_title("审理报告"), "doc", true);
    assert_eq!(found.verdict, Ok(()));
    assert_eq!(found.lines, ["正文", "审理报告"]);
    let r = refused(&with_title("机密"), "doc", true);
    assert_eq!(r.reason, Reason::ClassificationMarking);
    assert!(r.detail.contains("SummaryInformation"), "{r}");
    assert_eq!(scan(&with_title("机密"), "doc", false).verdict, Ok(()));
}

#[test]
fn excel_text_boxes_and_comments_are_text() {
    let txo = |s: &str| {
        let mut body = vec![0u8; 18];
        body[10..12].copy_from_slice(&(s.encode_utf16().count() as u16).to_le_bytes());
        let mut chars = vec![1u8];
        chars.extend(s.encode_utf16().flat_map(|u| u.to_le_bytes()));
        let mut out = record(0x01B6, &body);
        out.extend(record(0x003C, &chars));
        out.extend(record(0x003C, &[0u8; 16]));
        out
    };
    let book = workbook(&[boundsheet("S", 0), txo("批注：机密")]);
    let r = refused(&compound(&[("Workbook", &book)], &[]), "xls", true);
    assert_eq!(r.reason, Reason::ClassificationMarking);
    let book = workbook(&[boundsheet("S", 0), txo("批注：公开")]);
    let found = scan(&compound(&[("Workbook", &book)], &[]), "xls", true);
    assert_eq!(found.verdict, Ok(()));
    assert_eq!(found.lines, ["S", "批注：公开"]);
    // text announced but no CONTINUE record after it
    let mut body = vec![0u8; 18];
    body[10] = 5;
    let book = workbook(&[record(0x01B6, &body)]);
    let r = refused(&compound(&[("Workbook", &book)], &[]), "xls", true);
    assert_eq!(r.reason, Reason::ContentUnreadable, "{r}");
}

#[test]
fn an_object_read_on_its_own_is_checked_for_macros_first() {
    let native = package(b"a", b"a.txt", b"fine");
    let bin = compound(
        &[
            ("\u{1}Ole10Native", &native),
            ("VBA/dir", b"x"),
            ("PROJECT", b"x"),
        ],
        &[],
    );
    assert_eq!(refused(&bin, "bin", false).reason, Reason::ActiveContent);
    let bin = compound(&[("\u{1}Ole10Native", &native)], &[]);
    assert_eq!(scan(&bin, "bin", false).verdict, Ok(()));
}
