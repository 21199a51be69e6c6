//! Shared helpers of the end-to-end tests: a lab made by `isogate init`, real `isogate run`
//! processes, publishing files the way applications do, and waiting with a deadline.
#![allow(dead_code)]

pub mod cdp;
pub mod clamd;
pub mod inbox;
pub mod media;
pub mod net;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_isogate");

pub struct Lab {
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub port_base: u16,
}

pub struct Running {
    pub name: String,
    child: Child,
}

impl Running {
    /// kill -9.
    /// Wraps a node process started some other way (say, inside a network namespace).
    pub fn from_child(name: &str, child: Child) -> Running {
        Running {
            name: name.to_string(),
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop on SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for node in ["court", "internet"] {
                let log = self.log(node);
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- last lines of {node}.log ----");
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

impl Lab {
    pub fn new(port_base: u16) -> Lab {
        Lab::new_with(port_base, &[])
    }

    /// A lab made with extra `isogate init` arguments (say `--clamd ADDR`).
    pub fn new_with(port_base: u16, extra: &[&str]) -> Lab {
        let tmp = tempfile::Builder::new()
            .prefix("isogate-lab-")
            .tempdir()
            .unwrap();
        let dir = tmp.path().join("lab");
        let out = Command::new(BIN)
            .args([
                "init",
                dir.to_str().unwrap(),
                "--port-base",
                &port_base.to_string(),
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Lab {
            dir,
            _tmp: Some(tmp),
            port_base,
        }
    }

    /// A lab already written by `isogate init` at `dir`.
    pub fn at(dir: PathBuf, port_base: u16) -> Lab {
        Lab {
            dir,
            _tmp: None,
            port_base,
        }
    }

    pub fn config(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.toml"))
    }

    /// The audit records of `event` on a node.
    pub fn records(&self, node: &str, event: &str) -> Vec<isogate::audit::Record> {
        read_live(&self.dir.join(node).join("audit"))
            .into_iter()
            .filter(|r| r.event.as_str() == event)
            .collect()
    }

    /// Starts `isogate run` for a node, logging to `<lab>/<node>.log`.
    pub fn start(&self, node: &str) -> Running {
        self.start_with(node, &self.config(node))
    }

    pub fn start_with(&self, node: &str, config: &Path) -> Running {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{node}.log")))
            .unwrap();
        let child = Command::new(BIN)
            .args(["run", "--config", config.to_str().unwrap()])
            .env("RUST_LOG", "info,quinn=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Running {
            name: node.to_string(),
            child,
        }
    }

    pub fn log(&self, node: &str) -> String {
        fs::read_to_string(self.dir.join(format!("{node}.log"))).unwrap_or_default()
    }

    pub fn outbox(&self, node: &str, channel: &str) -> PathBuf {
        self.dir.join(node).join("outbox").join(channel)
    }

    pub fn inbox(&self, node: &str, channel: &str) -> PathBuf {
        self.dir.join(node).join("inbox").join(channel)
    }

    pub fn quarantine(&self, node: &str, channel: &str) -> PathBuf {
        self.dir.join(node).join("quarantine").join(channel)
    }

    /// Publishes a file the recommended way: written under a dot name, then renamed in.
    pub fn publish(&self, node: &str, channel: &str, name: &str, content: &[u8]) {
        let outbox = self.outbox(node, channel);
        let tmp = outbox.join(format!(".{name}.tmp"));
        fs::write(&tmp, content).unwrap();
        fs::rename(&tmp, outbox.join(name)).unwrap();
    }

    /// Publishes a large file written in pieces, without holding it in memory.
    pub fn publish_generated(&self, node: &str, channel: &str, name: &str, size: u64, seed: u64) {
        let outbox = self.outbox(node, channel);
        let tmp = outbox.join(format!(".{name}.tmp"));
        write_generated(&tmp, size, seed);
        fs::rename(&tmp, outbox.join(name)).unwrap();
    }
}

/// Below this size, generated content is plain text: a PDF needs room for an object.
pub const SMALLEST_PDF: u64 = 128;

/// Deterministic pseudo-random bytes as the image stream of a PDF (the lab policies accept
/// PDF): a header and a stream object around them, exactly `size` bytes in all. Below
/// `SMALLEST_PDF` bytes, a line of plain text repeated.
pub fn generated(size: u64, seed: u64) -> Box<dyn Iterator<Item = Vec<u8>>> {
    if size < SMALLEST_PDF {
        let line = format!("isogate test data, seed {seed}\n");
        let text: Vec<u8> = line.bytes().cycle().take(size as usize).collect();
        return Box::new((size > 0).then_some(text).into_iter());
    }
    const HEAD: &[u8] =
        b"%PDF-1.7\n1 0 obj\n<< /Type /XObject /Subtype /Image /Length 0 >>\nstream\n";
    const TAIL: &[u8] = b"\nendstream\nendobj\ntrailer\n<< /Size 2 >>\n%%EOF\n";
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut at = 0u64;
    Box::new(std::iter::from_fn(move || {
        if at == size {
            return None;
        }
        let n = (size - at).min(1 << 20) as usize;
        let mut buf = Vec::with_capacity(n);
        while buf.len() < n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            buf.extend_from_slice(&state.to_le_bytes());
        }
        buf.truncate(n);
        // overlay the header at offset 0 and the trailer at the end, where they fall
        let end = at + n as u64;
        for pos in at..end.min(HEAD.len() as u64) {
            buf[(pos - at) as usize] = HEAD[pos as usize];
        }
        let tail_at = size
            .saturating_sub(TAIL.len() as u64)
            .max(HEAD.len() as u64);
        for pos in at.max(tail_at)..end {
            buf[(pos - at) as usize] = TAIL[(pos - tail_at) as usize];
        }
        at += n as u64;
        Some(buf)
    }))
}

pub fn write_generated(path: &Path, size: u64, seed: u64) {
    let mut f = fs::File::create(path).unwrap();
    for piece in generated(size, seed) {
        f.write_all(&piece).unwrap();
    }
}

pub fn sha256_of_generated(size: u64, seed: u64) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for piece in generated(size, seed) {
        ctx.update(&piece);
    }
    hex::encode(ctx.finish())
}

pub fn sha256_file(path: &Path) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut f = fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    hex::encode(ctx.finish())
}

/// Visible (non-dot) entries of a directory.
pub fn visible(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// What an inbox's staging folder holds besides the receiver's emptied, kept sealed
/// copies (`.kept-<n>`, which hold no byte: checked here): the files of objects arriving,
/// or stranded.
pub fn staged(staging: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(staging)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .filter(|e| {
                    let kept = e.file_name().to_string_lossy().starts_with(".kept-");
                    if kept {
                        let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                        assert_eq!(len, 0, "a kept file holds bytes: {:?}", e.path());
                    }
                    !kept
                })
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Waits until `cond` holds, or fails the test with `what` after `secs` seconds.
pub fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reason codes of the reason files in a quarantine directory.
pub fn reasons(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".reason.json"))
                .map(|e| {
                    let j: serde_json::Value =
                        serde_json::from_slice(&fs::read(e.path()).unwrap()).unwrap();
                    j["reason"].as_str().unwrap().to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The records of an audit log a running node may be appending to: a read that met the
/// record being written (its line not yet whole) is read again.
pub fn read_live(dir: &Path) -> Vec<isogate::audit::Record> {
    let mut tries = 0;
    loop {
        match isogate::audit::read_all(dir) {
            Ok(records) => return records,
            Err(_) if tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{}: {e}", dir.display()),
        }
    }
}

/// How many records of `event` a node's audit log holds.
pub fn events(lab: &Lab, node: &str, event: &str) -> usize {
    read_live(&lab.dir.join(node).join("audit"))
        .iter()
        .filter(|r| r.event.as_str() == event)
        .count()
}

/// A zip archive of the given entries (deflated).
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A minimal Word document whose body is `paragraphs`.
pub fn docx_of(paragraphs: &[&str]) -> Vec<u8> {
    let body: String = paragraphs
        .iter()
        .map(|p| {
            // split every paragraph over two runs, as Word does
            let mid = p
                .char_indices()
                .nth(p.chars().count() / 2)
                .map_or(0, |(i, _)| i);
            format!(
                "<w:p><w:r><w:t>{}</w:t></w:r><w:r><w:t>{}</w:t></w:r></w:p>",
                &p[..mid],
                &p[mid..]
            )
        })
        .collect();
    let document = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>{body}</w:body></w:document>"
    );
    zip_of(&[
        (
            "[Content_Types].xml",
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"><Default Extension=\"xml\" ContentType=\"application/xml\"/><Override PartName=\"/word/document.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml\"/></Types>",
        ),
        (
            "_rels/.rels",
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"word/document.xml\"/></Relationships>",
        ),
        ("word/document.xml", document.as_bytes()),
    ])
}

/// A small, well-formed PDF whose page shows `text` (ASCII).
pub fn pdf_of(text: &str, extra_catalog: &str) -> Vec<u8> {
    let content = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET");
    let objects = [
        format!("<< /Type /Catalog /Pages 2 0 R {extra_catalog}>>"),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>".to_string(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
    ];
    let mut out = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A valid 1×1 PNG.
pub const PNG_1X1: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0a, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

/// A valid 18-digit resident ID number for a region, birth date and sequence.
pub fn resident_id(prefix17: &str) -> String {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = prefix17
        .chars()
        .zip(W)
        .map(|(c, w)| c.to_digit(10).unwrap() * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{prefix17}{check}")
}

/// Runs `isogate check` on a config with extra arguments.
pub fn check(config: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(["check", "--config", config.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap()
}

/// A manifest for `content` as the court would seal it, for tests that play a node.
pub fn manifest(content: &[u8], name: &str, channel: &str) -> isogate::core::manifest::Manifest {
    let (digest, chunks) = isogate::core::digest::hash_content(
        &mut &content[..],
        isogate::core::manifest::CHUNK_SIZE,
        isogate::keys::suite::Suite::Default,
    )
    .unwrap();
    isogate::core::manifest::Manifest {
        object_id: isogate::core::id::ObjectId::random().unwrap(),
        channel: channel.into(),
        name: name.into(),
        size: content.len() as u64,
        content_type: "text".into(),
        digest,
        chunk_size: isogate::core::manifest::CHUNK_SIZE,
        chunks,
        sender: "court".into(),
        sequence: 1,
        created_ms: 0,
        verdict: "accept".into(),
    }
}

/// A compound file (OLE2) of the given streams.
fn compound_of(streams: &[(&str, &[u8])]) -> Vec<u8> {
    let mut cf = cfb::CompoundFile::create(std::io::Cursor::new(Vec::new())).unwrap();
    for (path, data) in streams {
        cf.create_stream(path).unwrap().write_all(data).unwrap();
    }
    cf.flush().unwrap();
    cf.into_inner().into_inner()
}

/// A Word 97-2003 document ([MS-DOC]) whose text is `paragraphs`: a FIB and one UTF-16LE
/// piece in `WordDocument`, the piece table in `1Table`.
pub fn doc_of(paragraphs: &[&str]) -> Vec<u8> {
    const TEXT_AT: usize = 1024;
    let text: String = paragraphs.iter().map(|p| format!("{p}\r")).collect();
    let units: Vec<u16> = text.encode_utf16().collect();
    let mut word = vec![0u8; TEXT_AT];
    word[0..2].copy_from_slice(&0xA5ECu16.to_le_bytes());
    word[2..4].copy_from_slice(&0x00C1u16.to_le_bytes());
    word[0x0A..0x0C].copy_from_slice(&0x0200u16.to_le_bytes()); // 1Table
    word[0x20..0x22].copy_from_slice(&14u16.to_le_bytes());
    word[0x3E..0x40].copy_from_slice(&22u16.to_le_bytes());
    word[0x98..0x9A].copy_from_slice(&93u16.to_le_bytes());
    word.extend(units.iter().flat_map(|u| u.to_le_bytes()));
    let mut plc = Vec::new();
    plc.extend_from_slice(&0u32.to_le_bytes());
    plc.extend_from_slice(&(units.len() as u32).to_le_bytes());
    plc.extend_from_slice(&[0, 0]);
    plc.extend_from_slice(&(TEXT_AT as u32).to_le_bytes());
    plc.extend_from_slice(&[0, 0]);
    let mut table = vec![0x02];
    table.extend_from_slice(&(plc.len() as u32).to_le_bytes());
    table.extend_from_slice(&plc);
    let at_clx = 0x9A + 8 * 33;
    word[at_clx + 4..at_clx + 8].copy_from_slice(&(table.len() as u32).to_le_bytes());
    compound_of(&[("WordDocument", &word), ("1Table", &table)])
}

/// An Excel 97-2003 workbook ([MS-XLS] BIFF8) whose shared strings are `strings`.
pub fn xls_of(strings: &[&str]) -> Vec<u8> {
    let record = |kind: u16, body: &[u8]| {
        let mut out = kind.to_le_bytes().to_vec();
        out.extend_from_slice(&(body.len() as u16).to_le_bytes());
        out.extend_from_slice(body);
        out
    };
    let mut sst = Vec::new();
    sst.extend_from_slice(&(strings.len() as u32).to_le_bytes());
    sst.extend_from_slice(&(strings.len() as u32).to_le_bytes());
    for s in strings {
        let units: Vec<u16> = s.encode_utf16().collect();
        sst.extend_from_slice(&(units.len() as u16).to_le_bytes());
        sst.push(0x01);
        sst.extend(units.iter().flat_map(|u| u.to_le_bytes()));
    }
    let mut sheet = vec![0, 0, 0, 0, 0, 0, 6, 0];
    sheet.extend_from_slice(b"Sheet1");
    let mut book = record(0x0809, &[0x00, 0x06, 0x05, 0x00, 0, 0, 0, 0]);
    book.extend(record(0x0085, &sheet));
    book.extend(record(0x00FC, &sst));
    book.extend(record(0x000A, &[]));
    compound_of(&[("Workbook", &book)])
}

/// A plain HTTP/1.1 GET of `path` on 127.0.0.1:`port` (a node's /metrics or /healthz);
/// returns the status code and the body.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap();
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}
