//! The content-inspection part of `isogate bench`: documents as Chinese office tools write
//! them, generated at a chosen size, each inspected on one core by the inspect stage under
//! the lab's outbound policy (every text rule on), its throughput printed beside one core's
//! SHA-256 and the peak resident memory of this process beside the file's size.
//!
//! ```text
//!  generate (streamed to a file) ─► inspect_file (one thread) ─► MiB/s of the file, peak RSS
//!   CID-font PDF   Identity-H text with a /ToUnicode CMap, page streams FlateDecode
//!   OFD            pages of TextObject/TextCode, stored
//!   scanned PDF    one image stream (DCTDecode, not decoded), as the file figures send
//!   .doc           a compound file, WordDocument with one UTF-16LE piece, 1Table
//! ```
//!
//! The generated text is drawn from a pool of common characters without any marking,
//! keyword or number, so each document is read to its end and accepted.

use super::bench::{BenchError, io_err};
use crate::policy::Policy;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

/// Characters the generated text is made of: common in judgments, none of them part of a
/// marking (no 机, 密, 秘, 绝) or of a number.
const POOL: &str = "本院依法组成合议庭公开开庭审理了此案原告被告诉称辩称经审查查明事实证据如下判决驳回\
                    诉讼请求上诉人民法院裁定书民事行政案件受理费用负担当事人代理律师陈述意见双方合同约定";

/// A deterministic stream of characters from [`POOL`].
struct Text {
    chars: Vec<char>,
    state: u64,
}

impl Text {
    fn new(seed: u64) -> Text {
        Text {
            chars: POOL.chars().collect(),
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    fn next(&mut self) -> char {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let i = (self.state % self.chars.len() as u64) as usize;
        self.chars.get(i).copied().unwrap_or('本')
    }

    fn line(&mut self, n: usize) -> String {
        (0..n).map(|_| self.next()).collect()
    }
}

/// Writes a PDF of about `size` bytes as Word and WPS save Chinese: one Type0 font with
/// Identity-H encoding and a /ToUnicode CMap, pages whose FlateDecode content streams show
/// two-byte glyph codes with `Tj`.
pub fn write_cid_pdf(path: &Path, size: u64) -> Result<(), BenchError> {
    let file = fs::File::create(path).map_err(io_err(format!("creating {}", path.display())))?;
    let mut w = Counted {
        inner: BufWriter::with_capacity(1 << 20, file),
        at: 0,
    };
    let mut text = Text::new(7);
    let e = io_err("writing the CID-font PDF");
    w.write_all(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n")
        .map_err(io_err("writing"))?;
    // 1 catalog, 2 pages, 3 font, 4 descendant, 5 ToUnicode; pages from 6 on (page, content)
    let mut cmap = String::from(
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n1 begincodespacerange <0000> <FFFF> endcodespacerange\n",
    );
    let blocks: Vec<u32> = (0x4E..=0x9F).collect();
    for chunk in blocks.chunks(100) {
        cmap.push_str(&format!("{} beginbfrange\n", chunk.len()));
        for hi in chunk {
            cmap.push_str(&format!("<{hi:02X}00> <{hi:02X}FF> <{hi:02X}00>\n"));
        }
        cmap.push_str("endbfrange\n");
    }
    cmap.push_str("endcmap CMapName currentdict /CMap defineresource pop end end\n");
    let page_text = 200_000usize; // characters of text per page before compression
    let mut pages = Vec::new();
    let mut next_id = 6u32;
    let fixed = [
        (3u32, b"<< /Type /Font /Subtype /Type0 /BaseFont /SimSun /Encoding /Identity-H /DescendantFonts [4 0 R] /ToUnicode 5 0 R >>".to_vec()),
        (4, b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /SimSun /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> /CIDToGIDMap /Identity >>".to_vec()),
    ];
    let mut xref: Vec<(u32, u64)> = Vec::new();
    for (id, body) in fixed {
        xref.push((id, w.at));
        writeln!(w, "{id} 0 obj").map_err(io_err("writing"))?;
        w.write_all(&body).map_err(io_err("writing"))?;
        w.write_all(b"\nendobj\n").map_err(io_err("writing"))?;
    }
    xref.push((5, w.at));
    write!(
        w,
        "5 0 obj\n<< /Length {} >>\nstream\n{cmap}\nendstream\nendobj\n",
        cmap.len() + 1
    )
    .map_err(io_err("writing"))?;
    while w.at < size {
        let (page, content) = (next_id, next_id + 1);
        next_id += 2;
        let mut stream = String::with_capacity(page_text * 6);
        stream.push_str("BT /F1 10.5 Tf 72 770 Td 14 TL\n");
        let mut written = 0;
        while written < page_text {
            let line = text.line(40);
            written += 40;
            stream.push('<');
            for c in line.chars() {
                stream.push_str(&format!("{:04X}", u32::from(c)));
            }
            stream.push_str("> Tj T*\n");
        }
        stream.push_str("ET\n");
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(stream.as_bytes())
            .map_err(io_err("compressing"))?;
        let packed = z.finish().map_err(io_err("compressing"))?;
        xref.push((page, w.at));
        write!(
            w,
            "{page} 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> /Contents {content} 0 R >>\nendobj\n"
        )
        .map_err(io_err("writing"))?;
        xref.push((content, w.at));
        write!(
            w,
            "{content} 0 obj\n<< /Length {} /Filter /FlateDecode >>\nstream\n",
            packed.len()
        )
        .map_err(io_err("writing"))?;
        w.write_all(&packed).map_err(io_err("writing"))?;
        w.write_all(b"\nendstream\nendobj\n")
            .map_err(io_err("writing"))?;
        pages.push(page);
    }
    xref.push((1, w.at));
    w.write_all(b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n")
        .map_err(io_err("writing"))?;
    xref.push((2, w.at));
    let kids: Vec<String> = pages.iter().map(|p| format!("{p} 0 R")).collect();
    write!(
        w,
        "2 0 obj\n<< /Type /Pages /Count {} /Kids [{}] >>\nendobj\n",
        pages.len(),
        kids.join(" ")
    )
    .map_err(io_err("writing"))?;
    xref.sort_by_key(|(id, _)| *id);
    let start = w.at;
    write!(w, "xref\n0 {}\n0000000000 65535 f \n", next_id).map_err(io_err("writing"))?;
    for (_, at) in &xref {
        writeln!(w, "{at:010} 00000 n ").map_err(io_err("writing"))?;
    }
    write!(
        w,
        "trailer\n<< /Size {next_id} /Root 1 0 R >>\nstartxref\n{start}\n%%EOF\n"
    )
    .map_err(e)?;
    w.inner
        .into_inner()
        .map_err(|e| io_err("flushing")(e.into_error()))?
        .sync_all()
        .map_err(io_err("syncing"))
}

/// Writes an OFD of about `size` bytes: pages of text objects, stored.
pub fn write_ofd(path: &Path, size: u64) -> Result<(), BenchError> {
    let file = fs::File::create(path).map_err(io_err(format!("creating {}", path.display())))?;
    let mut zip = zip::ZipWriter::new(BufWriter::with_capacity(1 << 20, file));
    let stored = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(false);
    let zerr = |e: zip::result::ZipError| BenchError::Io {
        what: "writing the OFD".into(),
        source: io::Error::other(e),
    };
    let ns = r#"xmlns:ofd="http://www.ofdspec.org/2016""#;
    zip.start_file("OFD.xml", stored).map_err(zerr)?;
    write!(zip, r#"<?xml version="1.0" encoding="UTF-8"?><ofd:OFD {ns} Version="1.1" DocType="OFD"><ofd:DocBody><ofd:DocInfo><ofd:DocID>0</ofd:DocID></ofd:DocInfo><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>"#)
        .map_err(io_err("writing the OFD"))?;
    let per_page = 1u64 << 20;
    let pages = size.div_ceil(per_page).max(1);
    zip.start_file("Doc_0/Document.xml", stored).map_err(zerr)?;
    write!(zip, r#"<?xml version="1.0" encoding="UTF-8"?><ofd:Document {ns}><ofd:CommonData><ofd:MaxUnitID>1</ofd:MaxUnitID><ofd:PageArea><ofd:PhysicalBox>0 0 210 297</ofd:PhysicalBox></ofd:PageArea></ofd:CommonData><ofd:Pages>"#)
        .map_err(io_err("writing the OFD"))?;
    for p in 0..pages {
        write!(
            zip,
            r#"<ofd:Page ID="{}" BaseLoc="Pages/Page_{p}/Content.xml"/>"#,
            p + 1
        )
        .map_err(io_err("writing the OFD"))?;
    }
    zip.write_all(b"</ofd:Pages></ofd:Document>")
        .map_err(io_err("writing the OFD"))?;
    let mut text = Text::new(11);
    for p in 0..pages {
        zip.start_file(format!("Doc_0/Pages/Page_{p}/Content.xml"), stored)
            .map_err(zerr)?;
        write!(zip, r#"<?xml version="1.0" encoding="UTF-8"?><ofd:Page {ns}><ofd:Content><ofd:Layer ID="1">"#)
            .map_err(io_err("writing the OFD"))?;
        let mut written = 0u64;
        let mut y = 10u64;
        while written < per_page {
            let line = text.line(40);
            let object = format!(
                r#"<ofd:TextObject ID="2" Boundary="10 {y} 190 6" Font="1" Size="4.2"><ofd:TextCode X="0" Y="4">{line}</ofd:TextCode></ofd:TextObject>"#
            );
            y = if y > 280 { 10 } else { y + 7 };
            written += object.len() as u64;
            zip.write_all(object.as_bytes())
                .map_err(io_err("writing the OFD"))?;
        }
        zip.write_all(b"</ofd:Layer></ofd:Content></ofd:Page>")
            .map_err(io_err("writing the OFD"))?;
    }
    zip.finish().map_err(zerr)?;
    Ok(())
}

/// Where the text of a generated Word document starts in its `WordDocument` stream.
const DOC_TEXT_AT: usize = 1024;

/// Writes a Word 97-2003 binary document ([MS-DOC]) of about `size` bytes: a compound file
/// whose `WordDocument` stream holds a FIB and one UTF-16LE piece of text, and whose `1Table`
/// stream holds the piece table.
pub fn write_doc(path: &Path, size: u64) -> Result<(), BenchError> {
    // the compound file reads back its own sectors while it is written
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(io_err(format!("creating {}", path.display())))?;
    let mut cf = cfb::CompoundFile::create(file).map_err(io_err("creating the compound file"))?;
    let mut fib = vec![0u8; DOC_TEXT_AT];
    let mut put = |at: usize, bytes: &[u8]| {
        if let Some(slot) = fib.get_mut(at..at + bytes.len()) {
            slot.copy_from_slice(bytes);
        }
    };
    put(0, &0xA5ECu16.to_le_bytes()); // wIdent
    put(2, &0x00C1u16.to_le_bytes()); // nFib of Word 97
    put(0x0A, &0x0200u16.to_le_bytes()); // fWhichTblStm: 1Table
    put(0x20, &14u16.to_le_bytes()); // csw
    put(0x3E, &22u16.to_le_bytes()); // cslw
    put(0x98, &93u16.to_le_bytes()); // cbRgFcLcb
    let mut text = Text::new(13);
    let mut units = 0u64;
    {
        let mut stream = cf
            .create_stream("WordDocument")
            .map_err(io_err("creating WordDocument"))?;
        let mut chunk = Vec::with_capacity(1 << 20);
        let mut written = DOC_TEXT_AT as u64;
        stream.write_all(&fib).map_err(io_err("writing the FIB"))?;
        while written < size {
            chunk.clear();
            while chunk.len() < 1 << 20 {
                let line = text.line(40) + "\r";
                for u in line.encode_utf16() {
                    chunk.extend_from_slice(&u.to_le_bytes());
                    units += 1;
                }
            }
            stream
                .write_all(&chunk)
                .map_err(io_err("writing the text"))?;
            written += chunk.len() as u64;
        }
    }
    // the piece table: one piece of `units` characters at DOC_TEXT_AT, UTF-16LE
    let count = u32::try_from(units).map_err(|_| BenchError::Io {
        what: "sizing the Word document".into(),
        source: io::Error::other("more than 4 Gi characters"),
    })?;
    let mut plc = Vec::new();
    plc.extend_from_slice(&0u32.to_le_bytes());
    plc.extend_from_slice(&count.to_le_bytes());
    plc.extend_from_slice(&0u16.to_le_bytes());
    plc.extend_from_slice(&(DOC_TEXT_AT as u32).to_le_bytes());
    plc.extend_from_slice(&0u16.to_le_bytes());
    let mut table = vec![0x02];
    table.extend_from_slice(&(plc.len() as u32).to_le_bytes());
    table.extend_from_slice(&plc);
    cf.create_stream("1Table")
        .and_then(|mut s| s.write_all(&table))
        .map_err(io_err("writing 1Table"))?;
    // fcClx = 0, lcbClx = the table's length, in the FibRgFcLcb97
    let at_clx = 0x9A + 8 * 33;
    let mut clx = [0u8; 8];
    clx[4..].copy_from_slice(&(table.len() as u32).to_le_bytes());
    {
        use std::io::{Seek, SeekFrom};
        let mut stream = cf
            .open_stream("WordDocument")
            .map_err(io_err("opening WordDocument"))?;
        stream
            .seek(SeekFrom::Start(at_clx as u64))
            .and_then(|_| stream.write_all(&clx))
            .map_err(io_err("writing the FIB"))?;
    }
    cf.flush().map_err(io_err("flushing the compound file"))
}

/// A writer that counts the bytes written.
struct Counted<W> {
    inner: W,
    at: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.at += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// This process's peak resident memory so far (VmHWM), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Generates each kind of document at `mib` MiB in `dir`, inspects it on one thread under
/// the lab's outbound policy, and prints MiB/s beside `sha` (one core's SHA-256, MiB/s).
///
/// # Errors
/// A document could not be written, or the inspection failed (not a refusal: a refusal of a
/// generated document is printed, as it would be a bug worth seeing).
pub fn run(dir: &Path, mib: u64, sha: f64) -> Result<(), BenchError> {
    let policy = Policy::parse(
        Path::new("to-internet.toml"),
        crate::cli::init::POLICY_TO_INTERNET,
    )
    .map_err(|e| BenchError::Io {
        what: "reading the lab's outbound policy".into(),
        source: io::Error::other(e.to_string()),
    })?;
    fs::create_dir_all(dir).map_err(io_err("making the inspect directory"))?;
    println!(
        "\ncontent inspection, one core, outbound policy (ratios to SHA-256 one core = {sha:.0} MiB/s)"
    );
    type Writer = fn(&Path, u64) -> Result<(), BenchError>;
    let kinds: [(&str, &str, Writer); 4] = [
        (
            "CID-font PDF (Identity-H + ToUnicode)",
            "报告.pdf",
            write_cid_pdf,
        ),
        ("OFD (GB/T 33190)", "判决书.ofd", write_ofd),
        (
            "scanned PDF (one image stream)",
            "扫描件.pdf",
            |path, size| super::bench::write_pdf(path, size, 1),
        ),
        ("Word 97-2003 .doc (UTF-16 piece)", "判决书.doc", write_doc),
    ];
    for (what, name, write) in kinds {
        let path = dir.join(name);
        // a compound file is refused past 256 MiB (its directory is read whole)
        let target = if name.ends_with(".doc") {
            mib.min(200)
        } else {
            mib
        };
        write(&path, target << 20)?;
        let size = fs::metadata(&path).map_err(io_err("sizing"))?.len();
        let t = Instant::now();
        let outcome = crate::inspect::inspect_file(
            &policy,
            name,
            &path,
            dir,
            crate::keys::suite::Suite::Default,
        )
        .map_err(|e| BenchError::Io {
            what: format!("inspecting {name}"),
            source: io::Error::other(e.to_string()),
        })?;
        let secs = t.elapsed().as_secs_f64();
        let rate = size as f64 / (1u64 << 20) as f64 / secs.max(1e-9);
        let verdict = match outcome {
            Ok(_) => "accepted".to_string(),
            Err(r) => format!("REFUSED {r}"),
        };
        println!(
            "  {what:<40} {:6.0} MiB in {secs:6.2} s = {rate:7.1} MiB/s  ({:.2} × SHA-256)  peak RSS {:.0} MiB  {verdict}",
            size as f64 / (1u64 << 20) as f64,
            rate / sha,
            peak_rss_mib().unwrap_or(0.0)
        );
        let _ = fs::remove_file(&path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_documents_are_accepted_and_their_text_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let outbound = Policy::parse(
            Path::new("to-internet.toml"),
            crate::cli::init::POLICY_TO_INTERNET,
        )
        .unwrap();
        // the same policy with a keyword the generated text holds: proves it is read
        let keyword = Policy::parse(
            Path::new("k.toml"),
            &crate::cli::init::POLICY_TO_INTERNET.replace(
                "keywords = [\"内部资料\"",
                "keywords = [\"合议庭\", \"内部资料\"",
            ),
        )
        .unwrap();
        type Writer = fn(&Path, u64) -> Result<(), BenchError>;
        let kinds: [(&str, Writer); 3] = [
            ("a.pdf", write_cid_pdf),
            ("a.ofd", write_ofd),
            ("a.doc", write_doc),
        ];
        for (name, write) in kinds {
            let path = dir.path().join(name);
            write(&path, 2 << 20).unwrap();
            let size = fs::metadata(&path).unwrap().len();
            assert!((2 << 20..4 << 20).contains(&size), "{name}: {size}");
            let verdict = crate::inspect::inspect_file(
                &outbound,
                name,
                &path,
                dir.path(),
                crate::keys::suite::Suite::Default,
            )
            .unwrap();
            assert!(verdict.is_ok(), "{name}: {:?}", verdict.err());
            let verdict = crate::inspect::inspect_file(
                &keyword,
                name,
                &path,
                dir.path(),
                crate::keys::suite::Suite::Default,
            )
            .unwrap();
            assert_eq!(
                verdict.err().map(|r| r.reason),
                Some(crate::core::reason::Reason::KeywordMatch),
                "{name}"
            );
        }
    }
}
