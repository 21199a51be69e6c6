//! Benchmark: the inspect stage over a 1 GiB allowed file, with the lab's full outbound
//! policy and with a type-only policy, printed beside this machine's one-core SHA-256
//! throughput. Two files: a PDF (a large image stream, the common case of scanned court
//! records) and a CSV of case records in Chinese (every line decoded and run through the
//! keyword, marking and personal-data rules). Run with `cargo bench --bench inspect`
//! (`INSPECT_MIB=N` to change the size).

mod common;

use common::{cores, sha256_throughput};
use isogate::inspect::inspect_file;
use isogate::policy::Policy;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

const TYPE_ONLY: &str = r#"
[names]
max_length = 200
extensions = ["pdf", "csv"]
[size]
max_bytes = 4294967296
[types]
allow = ["pdf", "csv"]
[compliance]
opt_out = ["markings", "personal_data"]
"#;

/// A PDF whose one object is an image stream of pseudo-random bytes.
fn write_pdf(path: &Path, size: u64) {
    let mut f = BufWriter::new(std::fs::File::create(path).expect("create"));
    let head =
        b"%PDF-1.7\n1 0 obj\n<< /Type /XObject /Subtype /Image /Filter /DCTDecode >>\nstream\n";
    let tail = b"\nendstream\nendobj\ntrailer\n<< /Size 2 >>\n%%EOF\n";
    f.write_all(head).expect("write");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut left = size - (head.len() + tail.len()) as u64;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let b = state.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).expect("write");
        left -= n as u64;
    }
    f.write_all(tail).expect("write");
}

/// A CSV of case records: Chinese text, dates, amounts and case numbers, no personal data.
fn write_csv(path: &Path, size: u64) {
    let mut f = BufWriter::new(std::fs::File::create(path).expect("create"));
    let header = "案号,案由,立案日期,标的额（元）,承办部门,备注\n";
    f.write_all(header.as_bytes()).expect("write");
    let mut written = header.len() as u64;
    let mut i = 0u64;
    loop {
        let line = format!(
            "（2026）吉01民初{}号,买卖合同纠纷,2026-{:02}-{:02},{}.{:02},民事审判第{}庭,已送达起诉状副本并告知举证期限\n",
            i,
            i % 12 + 1,
            i % 28 + 1,
            i * 37 % 1_000_000,
            i % 100,
            i % 5 + 1
        );
        if written + line.len() as u64 > size {
            break;
        }
        f.write_all(line.as_bytes()).expect("write");
        written += line.len() as u64;
        i += 1;
    }
}

fn time_inspect(policy: &Policy, name: &str, path: &Path, work: &Path) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..2 {
        let t = Instant::now();
        let verdict = inspect_file(
            policy,
            name,
            path,
            work,
            isogate::keys::suite::Suite::Default,
        )
        .expect("inspect");
        let took = t.elapsed().as_secs_f64();
        assert!(verdict.is_ok(), "{name} refused: {verdict:?}");
        best = best.min(took);
    }
    best
}

fn main() {
    let mib: u64 = std::env::var("INSPECT_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let size = mib << 20;
    let sha = sha256_throughput();
    println!(
        "machine: {} cores; one core SHA-256: {sha:.0} MiB/s",
        cores()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let full = Policy::parse(
        Path::new("policy/to-internet.toml"),
        isogate::cli::init::POLICY_TO_INTERNET,
    )
    .expect("lab policy");
    let type_only = Policy::parse(Path::new("type-only.toml"), TYPE_ONLY).expect("policy");
    for (name, write) in [
        ("卷宗扫描件.pdf", write_pdf as fn(&Path, u64)),
        ("案件清单.csv", write_csv),
    ] {
        let path = dir.path().join(name);
        write(&path, size);
        let bytes = std::fs::metadata(&path).expect("size").len() as f64 / (1 << 20) as f64;
        let t_type = time_inspect(&type_only, name, &path, dir.path());
        let t_full = time_inspect(&full, name, &path, dir.path());
        let rate = |t: f64| bytes / t;
        println!(
            "{name}: {bytes:.0} MiB; type-only {:.0} MiB/s ({:.2} x SHA-256); full outbound policy {:.0} MiB/s ({:.2} x SHA-256)",
            rate(t_type),
            rate(t_type) / sha,
            rate(t_full),
            rate(t_full) / sha,
        );
        std::fs::remove_file(&path).expect("remove");
    }
}
