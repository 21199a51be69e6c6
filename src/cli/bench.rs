//! `isogate bench`: the project's benchmark. In one run it measures this machine's own
//! limits (one core's SHA-256, SM3, AES-256-GCM and SM4-GCM, raw loopback UDP and TCP, the
//! disk's durable writes, the file system under the bench's directory: see
//! `bench/filesystem.rs`),
//! then, on a fresh lab with both nodes running as real `isogate run` processes, the
//! gateway's figures — one large file drop to landed (split by its audit records into its
//! steps: see `bench/phases.rs`), sustained small files per second (with the disk's cache
//! flushes per file meanwhile: see `bench/flushes.rs`),
//! latency at a steady 100 files/s, the
//! `hearing` stream's added latency per packet and highest bitrate without loss (see
//! `bench/stream.rs`), the `notices` channel's messages per second through the message API
//! and their latency from POST to readable at 1,000 messages/s (see `bench/messages.rs`),
//! peak resident memory of each node while a very large file crosses —
//! and prints each figure beside the limit it is bounded by, as a ratio, and last a short
//! table of the file and memory figures beside their targets (see `bench/summary.rs`).
//! Before the labs, the content-inspection figures (see `bench_inspect`): documents as
//! Chinese office tools write them, inspected on one core.
//!
//! Full checks stay on: signatures, the suite's hash (SHA-256 or SM3) of every chunk and
//! of the whole, the lab's
//! policies on both nodes, durable landing and audit records.

mod filesystem;
mod flushes;
pub(crate) mod messages;
mod phases;
mod stream;
mod summary;

use crate::cli::init::{self, LabLink};
use crate::keys::{self, suite::Suite};
use notify::Watcher;
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Why the benchmark could not run.
#[derive(Debug, Error)]
pub enum BenchError {
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The lab could not be written.
    #[error(transparent)]
    Init(#[from] init::InitError),
    /// Something did not happen in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Watching the inbox failed.
    #[error("watching the inbox: {0}")]
    Watch(#[from] notify::Error),
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

/// The repeat window of a diode lab as `isogate init` writes it, in seconds.
const LAB_REPEAT_WINDOW_S: u64 = 600;
/// The diode lab's pacing (`[diode] rate_mbit`), which `--diode-rate-mbit` rewrites.
const LAB_RATE_MBIT: u64 = 4000;

/// The bitrate line of the lab's `hearing` stream policy as `isogate init` writes it.
const LAB_HEARING_RATE: &str = "max_bitrate_kbit = 20000\n";
/// What the bench sets instead: the stream section steps up to 256 Mbit/s.
const BENCH_HEARING_RATE: &str = "max_bitrate_kbit = 10000000\n";

/// A group of figures, for [`BenchOptions::only`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// Content inspection of generated documents, on one core.
    Inspect,
    /// Idle CPU, the large file, 4 KiB files per second, the latency at 100 files/s.
    Files,
    /// The stream channel's added latency and highest rate without loss.
    Streams,
    /// Messages per second through the message API and their latency at 1,000/s.
    Messages,
    /// Peak resident memory of each node while the very large file crosses.
    Memory,
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Where to put the labs (a new temporary directory when `None`).
    pub dir: Option<PathBuf>,
    /// Port base of the first lab; each further lab adds 10.
    pub port_base: u16,
    /// The large file, in MiB (0: none).
    pub big_mib: u64,
    /// The very large file for the memory figure, in MiB (0: none).
    pub huge_mib: u64,
    /// How many 4 KiB files (0: none).
    pub small_files: usize,
    /// How many files of [`BenchOptions::parallel_mib`] are dropped at once (0: none).
    pub parallel: usize,
    /// Each file of the parallel figure, in MiB.
    pub parallel_mib: u64,
    /// How long the 100 files/s latency run lasts, in seconds (0: none).
    pub latency_secs: u64,
    /// Link types to measure.
    pub links: Vec<LabLink>,
    /// Size of each generated document of the content-inspection figures, in MiB (0: skip).
    pub inspect_mib: u64,
    /// `[diode] repeat_window_s` of the diode lab, in seconds (`None`: the lab's 600).
    pub repeat_window_s: Option<u64>,
    /// `[diode] rate_mbit` of the diode lab, in Mbit/s (`None`: the lab's 4,000).
    pub diode_rate_mbit: Option<u64>,
    /// The figures to measure (empty: all of them).
    pub only: Vec<Figure>,
    /// The pairs' suites: each link is measured on a lab of each, in this order.
    pub suites: Vec<Suite>,
}

impl BenchOptions {
    /// Whether `figure` is measured.
    pub fn wants(&self, figure: Figure) -> bool {
        self.only.is_empty() || self.only.contains(&figure)
    }
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            dir: None,
            port_base: 7600,
            big_mib: 1024,
            huge_mib: 4096,
            small_files: 3000,
            parallel: 8,
            parallel_mib: 256,
            latency_secs: 10,
            links: vec![LabLink::Quic],
            inspect_mib: 256,
            repeat_window_s: None,
            diode_rate_mbit: None,
            only: Vec::new(),
            suites: vec![Suite::Default],
        }
    }
}

/// One core's SHA-256 throughput, in MiB/s, measured for about a second.
pub fn sha256_throughput() -> f64 {
    let buf = vec![0x5au8; 64 << 20];
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed().as_secs_f64() < 1.0 {
        std::hint::black_box(ring::digest::digest(&ring::digest::SHA256, &buf));
        n += buf.len() as u64;
    }
    mib_per_s(n, t.elapsed())
}

/// One core's throughput of `suite`'s hash, in MiB/s, measured for about a second.
pub fn hash_throughput(suite: Suite) -> f64 {
    let buf = vec![0x5au8; 16 << 20];
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed().as_secs_f64() < 1.0 {
        std::hint::black_box(keys::suite::digest(suite, &buf));
        n += buf.len() as u64;
    }
    mib_per_s(n, t.elapsed())
}

/// One core's throughput of `suite`'s authenticated cipher sealing 1 MiB pieces (each
/// under its own nonce), in MiB/s, measured for about a second.
///
/// # Errors
/// The cipher cannot be made or refuses a piece (neither happens with a right-sized key).
pub fn cipher_throughput(suite: Suite) -> Result<f64, BenchError> {
    let fail = |e: keys::suite::CipherError| BenchError::Io {
        what: format!("measuring {}", suite.cipher()),
        source: io::Error::other(e.to_string()),
    };
    let cipher =
        keys::suite::DataCipher::new(suite, &vec![0x17; suite.cipher_key_len()]).map_err(fail)?;
    let mut piece = vec![0x5au8; 1 << 20];
    let t = Instant::now();
    let mut n = 0u64;
    let mut counter = 0u64;
    while t.elapsed().as_secs_f64() < 1.0 {
        let mut nonce = [0u8; keys::suite::NONCE_LEN];
        nonce[4..].copy_from_slice(&counter.to_be_bytes());
        counter += 1;
        std::hint::black_box(cipher.seal(&nonce, b"", &mut piece).map_err(fail)?);
        n += piece.len() as u64;
    }
    Ok(mib_per_s(n, t.elapsed()))
}

/// What a file's CPU cost says about the most such files the machine can carry: `CPU for
/// the file 10.9 s, both nodes (10.9 s per GiB): at most 188 MiB/s on 2 cores` for
/// `cpu_secs` CPU seconds of both nodes together spent carrying `bytes`, on `cores` cores,
/// however well the steps overlap. `None` when no CPU was counted.
fn cpu_ceiling(cpu_secs: f64, bytes: u64, cores: usize) -> Option<String> {
    if !(cpu_secs.is_finite() && cpu_secs > 0.0 && bytes > 0) {
        return None;
    }
    let gib = bytes as f64 / (1u64 << 30) as f64;
    let per_gib = cpu_secs / gib;
    let ceiling = cores as f64 * 1024.0 / per_gib;
    Some(format!(
        "CPU for the file {cpu_secs:.1} s, both nodes ({per_gib:.1} s per GiB): at most \
         {ceiling:.0} MiB/s on {cores} cores"
    ))
}

/// What the small files' CPU cost says about the most such files the machine can carry,
/// for `cpu_secs` CPU seconds of both nodes together spent carrying `files` files, on
/// `cores` cores, however well they overlap: 4.44 s for 3,000 files on 2 cores reads `CPU
/// for the files 4.4 s, both nodes (1.48 ms per file): at most 1351 files/s on 2 cores`.
/// `None` when no CPU was counted.
fn files_ceiling(cpu_secs: f64, files: usize, cores: usize) -> Option<String> {
    if !(cpu_secs.is_finite() && cpu_secs > 0.0 && files > 0) {
        return None;
    }
    let per_file_ms = cpu_secs * 1000.0 / files as f64;
    let ceiling = cores as f64 * 1000.0 / per_file_ms;
    Some(format!(
        "CPU for the files {cpu_secs:.1} s, both nodes ({per_file_ms:.2} ms per file): at \
         most {ceiling:.0} files/s on {cores} cores"
    ))
}

fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1u64 << 20) as f64 / d.as_secs_f64().max(1e-9)
}

/// Raw loopback UDP: one thread sends 1472-byte datagrams (a 1500-byte MTU's payload) as
/// fast as it can for a second, another receives; MiB/s received.
pub fn udp_loopback() -> Result<f64, BenchError> {
    let rx = UdpSocket::bind("127.0.0.1:0").map_err(io_err("udp bind"))?;
    let addr = rx.local_addr().map_err(io_err("udp addr"))?;
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(io_err("udp timeout"))?;
    let tx = UdpSocket::bind("127.0.0.1:0").map_err(io_err("udp bind"))?;
    let sender = std::thread::spawn(move || {
        let buf = [0x42u8; 1472];
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(1) {
            let _ = tx.send_to(&buf, addr);
        }
    });
    let mut buf = [0u8; 2048];
    let mut got = 0u64;
    let t = Instant::now();
    while let Ok(n) = rx.recv(&mut buf) {
        got += n as u64;
    }
    let _ = sender.join();
    // the receiver stops 200 ms after the last datagram
    Ok(mib_per_s(
        got,
        t.elapsed().saturating_sub(Duration::from_millis(200)),
    ))
}

/// Raw loopback TCP: one connection, 1 MiB writes for a second; MiB/s received.
pub fn tcp_loopback() -> Result<f64, BenchError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io_err("tcp bind"))?;
    let addr = l.local_addr().map_err(io_err("tcp addr"))?;
    let sender = std::thread::spawn(move || -> io::Result<()> {
        let mut s = TcpStream::connect(addr)?;
        let buf = vec![0x42u8; 1 << 20];
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(1) {
            s.write_all(&buf)?;
        }
        Ok(())
    });
    let (mut c, _) = l.accept().map_err(io_err("tcp accept"))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    let t = Instant::now();
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n as u64,
        }
    }
    let took = t.elapsed();
    let _ = sender.join();
    Ok(mib_per_s(got, took))
}

/// Bytes the disk probe writes, then fsyncs.
const DISK_PROBE_BYTES: u64 = 256 << 20;

/// The disk under `dir`, written durably: `DISK_PROBE_BYTES` in 1 MiB writes ended by one
/// fsync (MiB/s), then a 4 KiB write over the same block of one file and its fsync,
/// repeated for a second (per second: the floor of what each of a small file's fsyncs
/// costs; a sync that also writes a folder or a new file's metadata costs more). Both nodes of a lab keep their state on this disk, and each byte of a file that
/// crosses is written durably twice (the sending node's spool copy, sealed at rest, and the
/// receiving node's inbox), so half the first figure bounds a file's rate; the second is
/// what a sync costs a small file. The probe file is removed afterwards.
///
/// # Errors
/// Writing, syncing or removing the probe file failed.
pub fn disk_durable(dir: &Path) -> Result<(f64, f64), BenchError> {
    fs::create_dir_all(dir).map_err(io_err("making the bench's directory"))?;
    let path = dir.join(".disk-probe");
    let probe = || -> io::Result<(f64, f64)> {
        let mut f = fs::File::create(&path)?;
        // bytes that do not repeat: storage that compresses or skips zeros measures nothing
        let mut block = vec![0u8; 1 << 20];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for b in &mut block {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let t = Instant::now();
        for _ in 0..DISK_PROBE_BYTES >> 20 {
            f.write_all(&block)?;
        }
        f.sync_all()?;
        let rate = mib_per_s(DISK_PROBE_BYTES, t.elapsed());
        drop(f);
        let f = fs::File::create(&path)?;
        let t = Instant::now();
        let mut syncs = 0u64;
        while t.elapsed() < Duration::from_secs(1) {
            use std::os::unix::fs::FileExt;
            f.write_all_at(&block[..4096], 0)?;
            f.sync_all()?;
            syncs += 1;
        }
        let per_s = syncs as f64 / t.elapsed().as_secs_f64();
        Ok((rate, per_s))
    };
    let measured = probe();
    let removed = fs::remove_file(&path);
    let figures = measured.map_err(io_err("probing the disk"))?;
    removed.map_err(io_err("removing the disk probe"))?;
    Ok(figures)
}

/// A running lab: two `isogate run` children, stopped when dropped.
struct Lab {
    dir: PathBuf,
    port_base: u16,
    nodes: Vec<(String, Child)>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, c) in &mut self.nodes {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
        }
        for (_, c) in &mut self.nodes {
            let _ = c.wait();
        }
    }
}

impl Lab {
    fn start(
        dir: PathBuf,
        link: LabLink,
        suite: Suite,
        port_base: u16,
        repeat_window_s: Option<u64>,
        rate_mbit: Option<u64>,
    ) -> Result<Lab, BenchError> {
        init::init_suite(&dir, link, port_base, None, suite)?;
        if let Some(w) = repeat_window_s {
            rewrite_nodes(
                &dir,
                &format!("repeat_window_s = {LAB_REPEAT_WINDOW_S}\n"),
                &format!("repeat_window_s = {w}\n"),
            )?;
        }
        if let (LabLink::Diode, Some(r)) = (link, rate_mbit) {
            rewrite_nodes(
                &dir,
                &format!("rate_mbit = {LAB_RATE_MBIT}\n"),
                &format!("rate_mbit = {r}\n"),
            )?;
        }
        // the very large file is larger than the lab's outbound size limit; every other
        // rule stays as shipped
        let policy = dir.join("policy").join("to-internet.toml");
        let text = fs::read_to_string(&policy).map_err(io_err("reading the lab policy"))?;
        fs::write(
            &policy,
            text.replace("max_bytes = 1073741824", "max_bytes = 68719476736")
                .replace(
                    "max_expanded_bytes = 2147483648",
                    "max_expanded_bytes = 68719476736",
                ),
        )
        .map_err(io_err("writing the lab policy"))?;
        // the stream section steps above the lab's hearing bitrate; every other rule of the
        // stream policy stays as shipped
        let hearing = dir.join("policy").join("hearing.toml");
        let text =
            fs::read_to_string(&hearing).map_err(io_err("reading the lab's stream policy"))?;
        if !text.contains(LAB_HEARING_RATE) {
            return Err(io_err("raising the lab's stream bitrate")(
                io::Error::other(format!(
                    "{} has no line {LAB_HEARING_RATE:?}",
                    hearing.display()
                )),
            ));
        }
        fs::write(&hearing, text.replace(LAB_HEARING_RATE, BENCH_HEARING_RATE))
            .map_err(io_err("writing the lab's stream policy"))?;
        let exe = std::env::current_exe().map_err(io_err("finding this program"))?;
        let mut nodes = Vec::new();
        for node in ["court", "internet"] {
            let log = fs::File::create(dir.join(format!("{node}.log")))
                .map_err(io_err("creating a node log"))?;
            let err = log.try_clone().map_err(io_err("node log"))?;
            let child = Command::new(&exe)
                .arg("run")
                .arg("--config")
                .arg(dir.join(format!("{node}.toml")))
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .spawn()
                .map_err(io_err("starting a node"))?;
            nodes.push((node.to_string(), child));
        }
        let lab = Lab {
            dir,
            port_base,
            nodes,
        };
        lab.wait_healthy()?;
        Ok(lab)
    }

    fn wait_healthy(&self) -> Result<(), BenchError> {
        let t = Instant::now();
        for port in [self.port_base + 2, self.port_base + 3] {
            while !http_ok(port, "/healthz") {
                if t.elapsed() > Duration::from_secs(30) {
                    return Err(BenchError::Timeout(format!(
                        "the lab's nodes to report healthy (see {})",
                        self.dir.display()
                    )));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    fn outbox(&self) -> PathBuf {
        self.dir.join("court/outbox/to-internet")
    }

    fn inbox(&self) -> PathBuf {
        self.dir.join("internet/inbox/to-internet")
    }

    fn pids(&self) -> Vec<(String, u32)> {
        self.nodes
            .iter()
            .map(|(n, c)| (n.clone(), c.id()))
            .collect()
    }
}

fn http_ok(port: u16, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    raw.starts_with("HTTP/1.1 200")
}

/// Writes `size` bytes of a PDF-shaped file (header, one image stream of pseudo-random
/// bytes, trailer): content the lab's outbound policy accepts.
pub(super) fn write_pdf(path: &Path, size: u64, seed: u64) -> Result<(), BenchError> {
    let head =
        b"%PDF-1.7\n1 0 obj\n<< /Type /XObject /Subtype /Image /Filter /DCTDecode >>\nstream\n";
    let tail = b"\nendstream\nendobj\ntrailer\n<< /Size 2 >>\n%%EOF\n";
    let mut f = io::BufWriter::with_capacity(
        1 << 20,
        fs::File::create(path).map_err(io_err(format!("creating {}", path.display())))?,
    );
    let mut block = vec![0u8; 1 << 20];
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in block.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let b = state.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    let w = |f: &mut io::BufWriter<fs::File>, b: &[u8]| {
        f.write_all(b).map_err(io_err("writing a test file"))
    };
    let body = size.saturating_sub((head.len() + tail.len()) as u64);
    w(&mut f, head)?;
    let mut left = body;
    let mut turn = 0u8;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        // vary each MiB a little so that no two chunks are equal
        block[0] = turn;
        turn = turn.wrapping_add(1);
        w(&mut f, &block[..n])?;
        left -= n as u64;
    }
    w(&mut f, tail)?;
    f.into_inner()
        .map_err(|e| io_err("flushing a test file")(e.into_error()))?
        .sync_all()
        .map_err(io_err("syncing a test file"))
}

/// Replaces line `from` of both lab nodes' configs with `to`; an error names a config
/// without that line (the lab's template changed under the bench).
fn rewrite_nodes(dir: &Path, from: &str, to: &str) -> Result<(), BenchError> {
    for node in ["court", "internet"] {
        let file = dir.join(format!("{node}.toml"));
        let text = fs::read_to_string(&file).map_err(io_err("reading a lab config"))?;
        if !text.contains(from) {
            return Err(io_err("rewriting a lab config")(io::Error::other(format!(
                "{} has no line {from:?}",
                file.display()
            ))));
        }
        fs::write(&file, text.replace(from, to)).map_err(io_err("writing a lab config"))?;
    }
    Ok(())
}

/// Publishes a prepared file by renaming it into the outbox; returns when it was renamed.
fn publish(staged: &Path, outbox: &Path, name: &str) -> Result<Instant, BenchError> {
    let t = Instant::now();
    fs::rename(staged, outbox.join(name)).map_err(io_err("renaming into the outbox"))?;
    Ok(t)
}

fn wait_for(path: &Path, limit: Duration) -> Result<Instant, BenchError> {
    let t = Instant::now();
    while !path.exists() {
        if t.elapsed() > limit {
            return Err(BenchError::Timeout(format!("{} to land", path.display())));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(Instant::now())
}

/// Waits until each of `paths` exists, reading each lab node's resident memory every 20 ms
/// meanwhile: each node's name and peak RSS (MiB; NaN where it could never be read, not 0).
/// A path still missing `limit` after `t0` ends the wait with a timeout naming it.
fn land_sampling_rss(
    lab: &Lab,
    paths: &[PathBuf],
    t0: Instant,
    limit: Duration,
) -> Result<Vec<(String, f64)>, BenchError> {
    let mut peaks: Vec<(String, u32, f64)> = lab
        .pids()
        .into_iter()
        .map(|(name, pid)| (name, pid, f64::NAN))
        .collect();
    let mut waiting: Vec<&PathBuf> = paths.iter().collect();
    loop {
        for (_, pid, peak) in &mut peaks {
            *peak = peak.max(rss_mib(*pid).unwrap_or(f64::NAN));
        }
        waiting.retain(|p| !p.exists());
        let Some(first) = waiting.first() else {
            break;
        };
        if t0.elapsed() > limit {
            return Err(BenchError::Timeout(format!("{} to land", first.display())));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(peaks
        .into_iter()
        .map(|(name, _, peak)| (name, peak))
        .collect())
}

/// Resident set of a process now, in MiB, from /proc (`VmRSS`).
fn rss_mib(pid: u32) -> Option<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// CPU time a process has used so far (user and system, all threads), in seconds, from
/// `/proc/PID/stat` (fields 14 and 15, in clock ticks).
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) may hold spaces: count fields after its closing parenthesis
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// The CPU time of each node from a starting point: [`CpuUse::cores`] gives the cores each
/// used since then (CPU seconds per wall-clock second).
struct CpuUse {
    at: Instant,
    start: Vec<(String, u32, f64)>,
}

impl CpuUse {
    fn start(lab: &Lab) -> CpuUse {
        let start = lab
            .pids()
            .into_iter()
            .map(|(name, pid)| {
                let secs = cpu_secs(pid).unwrap_or(f64::NAN);
                (name, pid, secs)
            })
            .collect();
        CpuUse {
            at: Instant::now(),
            start,
        }
    }

    /// `court 0.82, internet 0.41 cores`: each node's cores since the start.
    fn cores(&self) -> String {
        format!("{} cores", self.each())
    }

    /// The CPU seconds both nodes used since the start, together; `None` when a node's
    /// CPU time cannot be read.
    fn total_secs(&self) -> Option<f64> {
        let mut total = 0.0;
        for (_, pid, before) in &self.start {
            let used = cpu_secs(*pid)? - before;
            if !used.is_finite() {
                return None;
            }
            total += used;
        }
        Some(total)
    }

    /// `court 0.82, internet 0.41`: each node's cores since the start.
    fn each(&self) -> String {
        let wall = self.at.elapsed().as_secs_f64().max(1e-9);
        let each: Vec<String> = self
            .start
            .iter()
            .map(|(name, pid, before)| {
                let used = cpu_secs(*pid).unwrap_or(f64::NAN) - before;
                format!("{name} {:.2}", used / wall)
            })
            .collect();
        each.join(", ")
    }
}

/// How often [`CpuSampler`] reads each node's CPU time.
const CPU_SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// Reads each node's CPU time every [`CPU_SAMPLE_EVERY`] on a thread of its own, on the
/// wall clock the audit records use, until stopped: the [`phases::CpuTrace`] of a crossing.
struct CpuSampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<phases::CpuTrace>>,
}

impl CpuSampler {
    /// Starts sampling the lab's nodes; `None` when no thread can be had (the figure then
    /// goes without the cores of each step).
    fn start(lab: &Lab) -> Option<CpuSampler> {
        let pids = lab.pids();
        let nodes = pids.iter().map(|(name, _)| name.clone()).collect();
        let sample = move |trace: &mut phases::CpuTrace| {
            let each = pids
                .iter()
                .map(|(_, pid)| cpu_secs(*pid).unwrap_or(f64::NAN))
                .collect();
            let now = crate::now_ms();
            // in time order only: a wall clock stepped back drops the samples until it
            // passes the last one again
            if trace.samples.last().is_none_or(|(last, _)| *last < now) {
                trace.samples.push((now, each));
            }
        };
        // the first sample before this returns: it comes before the file is dropped
        let mut trace = phases::CpuTrace {
            nodes,
            samples: Vec::new(),
        };
        sample(&mut trace);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("bench-cpu".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(CPU_SAMPLE_EVERY);
                    // a sample after the stop was asked for: the trace covers up to it
                    let done = stopped.load(Ordering::Relaxed);
                    sample(&mut trace);
                    if done {
                        return trace;
                    }
                }
            })
            .ok()?;
        Some(CpuSampler {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops sampling (after one last sample): the trace.
    fn stop(mut self) -> phases::CpuTrace {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

/// Dropped without [`CpuSampler::stop`] (the figure failed): its thread stops too.
impl Drop for CpuSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Each node's CPU while the lab has nothing to do (3 s, after a second to settle).
fn idle(lab: &Lab, summary: &mut summary::Summary) -> Result<(), BenchError> {
    std::thread::sleep(Duration::from_secs(1));
    let cpu = CpuUse::start(lab);
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu.each();
    println!("  idle, nothing to send, 3 s     {used} cores");
    summary.add("idle, nothing to send, 3 s", "—", "no cores", &used);
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Writes out what earlier figures left in the page cache (`sync(2)`), so that a figure
/// does not wait behind the disk writing the last one's data.
pub(crate) fn settle() {
    rustix::fs::sync();
}

/// Runs the benchmark and prints the report.
pub fn run(opts: &BenchOptions) -> Result<(), BenchError> {
    let tmp;
    let root = match &opts.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().map_err(io_err("making a temporary directory"))?;
            tmp.path().to_path_buf()
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut summary = summary::Summary::default();
    println!(
        "isogate bench — both nodes on this machine, full checks on; disks synced before each figure\n"
    );
    println!("machine limits");
    let sha = sha256_throughput();
    println!("  cores                          {cores}");
    println!("  SHA-256, one core              {sha:8.0} MiB/s");
    let sm3 = hash_throughput(Suite::Gm);
    println!("  SM3, one core                  {sm3:8.0} MiB/s");
    let mut ciphers = Vec::new();
    for suite in Suite::ALL {
        let rate = cipher_throughput(suite)?;
        println!(
            "  {:<30} {rate:8.0} MiB/s",
            format!("{}, one core", suite.cipher())
        );
        ciphers.push((suite, rate));
    }
    let udp = udp_loopback()?;
    println!("  loopback UDP, 1472-byte sends  {udp:8.0} MiB/s");
    let tcp = tcp_loopback()?;
    println!("  loopback TCP, one stream       {tcp:8.0} MiB/s");
    let (disk, syncs) = disk_durable(&root)?;
    println!("  disk, 256 MiB written, fsync   {disk:8.0} MiB/s");
    println!("  disk, 4 KiB written, fsync     {syncs:8.0} per s");
    let file_system = filesystem::describe(&root);
    println!("  file system                    {file_system}");
    if opts.inspect_mib > 0 && opts.wants(Figure::Inspect) {
        super::bench_inspect::run(&root.join("inspect"), opts.inspect_mib, sha)?;
    }
    let on_a_lab = [
        Figure::Files,
        Figure::Streams,
        Figure::Messages,
        Figure::Memory,
    ];
    let links = if on_a_lab.iter().any(|f| opts.wants(*f)) {
        &opts.links[..]
    } else {
        &[]
    };
    let labs = opts
        .suites
        .iter()
        .flat_map(|suite| links.iter().map(move |link| (*suite, *link)));
    for (i, (suite, link)) in labs.enumerate() {
        let name = link.as_str();
        // the suite's hash reads every byte: SHA-256, or SM3 under `gm`
        let hash = match suite {
            Suite::Default => sha,
            Suite::Gm => sm3,
        };
        let limit = match link {
            LabLink::Quic => tcp.min(hash),
            LabLink::Diode => udp.min(hash),
        };
        // the spool is sealed: the cipher at rest bounds a file as well
        let cipher = ciphers
            .iter()
            .find(|(s, _)| *s == suite)
            .map_or(f64::INFINITY, |(_, r)| *r);
        // each byte is written durably twice on this disk: spool copy and inbox
        let limit = limit.min(cipher).min(disk / 2.0);
        println!(
            "\nlink {name}, suite {suite}: signatures {}, hashes {}, datagram tags {}, at rest {} (ratios to min({} one core, {} one core, loopback, disk ÷ 2) = {limit:.0} MiB/s)",
            suite.signature(),
            suite.hash(),
            suite.mac(),
            suite.cipher(),
            suite.hash(),
            suite.cipher()
        );
        let dir = match suite {
            Suite::Default => root.join(format!("lab-{name}")),
            other => root.join(format!("lab-{name}-{other}")),
        };
        let base = u16::try_from(i)
            .ok()
            .and_then(|i| i.checked_mul(10))
            .and_then(|off| opts.port_base.checked_add(off))
            .ok_or_else(|| {
                io_err("choosing the lab's ports")(io::Error::other(format!(
                    "--port-base {} leaves no room for lab {}",
                    opts.port_base,
                    i + 1
                )))
            })?;
        let window = match link {
            LabLink::Quic => None,
            LabLink::Diode => Some(opts.repeat_window_s.unwrap_or(LAB_REPEAT_WINDOW_S)),
        };
        match window {
            Some(0) => println!("  repeat window off (each object sent once)"),
            Some(w) => println!(
                "  repeat window {w} s (each object sent again with spare capacity, at most every {} s)",
                (w / 20).max(1)
            ),
            None => {}
        }
        let rate = match link {
            LabLink::Quic => None,
            LabLink::Diode => {
                let r = opts.diode_rate_mbit.unwrap_or(LAB_RATE_MBIT);
                println!("  paced at {r} Mbit/s, repair ratio 0.2");
                (r != LAB_RATE_MBIT).then_some(r)
            }
        };
        let lab = Lab::start(dir, link, suite, base, window, rate)?;
        summary.lab(format!("{name} {suite}"));
        if opts.wants(Figure::Files) {
            idle(&lab, &mut summary)?;
            settle();
            let target = match link {
                LabLink::Quic => "≥ 400 MiB/s",
                LabLink::Diode => "≥ 350 MiB/s",
            };
            // a size or count of 0 skips its figure. The small objects go first: on the
            // diode, every object is sent again with spare capacity for the lab's repeat
            // window, and the large files' repeats, on the same cores, would weigh on
            // the small figures by how their passes fall (theirs weigh little on the
            // large ones)
            if opts.small_files > 0 {
                small_files(&lab, opts.small_files, cores, &mut summary)?;
                settle();
            }
            if opts.latency_secs > 0 {
                latency(&lab, opts.latency_secs, &mut summary)?;
                settle();
            }
            if opts.big_mib > 0 {
                big_file(&lab, opts.big_mib, limit, cores, &mut summary, target)?;
                settle();
            }
            if opts.parallel > 0 {
                parallel_files(&lab, opts.parallel, opts.parallel_mib, limit, &mut summary)?;
            }
        }
        if opts.wants(Figure::Streams) {
            settle();
            stream::run(&lab, link, udp)?;
        }
        if opts.wants(Figure::Messages) {
            settle();
            messages::run(&lab, limit)?;
        }
        if opts.wants(Figure::Memory) && opts.huge_mib > 0 {
            settle();
            memory(&lab, opts.huge_mib, &mut summary)?;
        }
    }
    println!("\ntargets (DESIGN.md §6): 1 GiB ≥ 400 MiB/s on quic, ≥ 350 on diode at MTU 1500;");
    println!("4 KiB ≥ 3000 files/s; p50 ≤ 10 ms and p99 ≤ 50 ms at 100 files/s; ≤ 100 MiB RSS");
    if let Some(table) = summary.table(cores, &file_system) {
        print!("{table}");
    }
    Ok(())
}

fn staging(lab: &Lab) -> Result<PathBuf, BenchError> {
    // a dot directory in the outbox: ignored by the watch, on the same file system
    let s = lab.outbox().join(".bench");
    fs::create_dir_all(&s).map_err(io_err("making the staging directory"))?;
    Ok(s)
}

fn big_file(
    lab: &Lab,
    mib: u64,
    limit: f64,
    cores: usize,
    summary: &mut summary::Summary,
    target: &'static str,
) -> Result<(), BenchError> {
    let staged = staging(lab)?.join("big.pdf");
    write_pdf(&staged, mib << 20, 1)?;
    let cpu = CpuUse::start(lab);
    let sampler = CpuSampler::start(lab);
    let dropped_ms = crate::now_ms();
    let t0 = publish(&staged, &lab.outbox(), "big.pdf")?;
    // a figure that fails here drops the sampler, which stops its thread
    let t1 = wait_for(&lab.inbox().join("big.pdf"), Duration::from_secs(600))?;
    let seen_ms = crate::now_ms();
    let trace = sampler.map(CpuSampler::stop).unwrap_or_default();
    let rate = mib_per_s(mib << 20, t1 - t0);
    let used = cpu.each();
    let cpu_secs = cpu.total_secs();
    println!(
        "  {mib} MiB file, drop to landed   {:8.2} s = {rate:6.0} MiB/s  ({:.2} x limit; {used} cores)",
        (t1 - t0).as_secs_f64(),
        rate / limit
    );
    if let Some(line) = cpu_secs.and_then(|s| cpu_ceiling(s, mib << 20, cores)) {
        println!("    {line}");
    }
    summary.add(
        format!("{mib} MiB file"),
        format!("{rate:.0} MiB/s"),
        target,
        &used,
    );
    // the receiving node audits `landed` before its rename into the inbox; a record the
    // sending node writes as the receiver finishes may trail by a moment
    let wait = Instant::now();
    let phases = loop {
        let read = phases::read_phases(
            &lab.dir.join("court/audit"),
            &lab.dir.join("internet/audit"),
            "big.pdf",
        );
        match read {
            Ok(p) if !p.complete() && wait.elapsed() < Duration::from_secs(2) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other,
        }
    };
    match phases {
        Ok(p) => match p.line(dropped_ms, seen_ms) {
            Some(line) => {
                println!("    where its time went (audit records): {line}");
                if let Some(cores) = p.cores_line(dropped_ms, &trace) {
                    println!("    {cores}");
                }
            }
            None => println!(
                "    where its time went: no audit record of {}",
                p.missing().join(", ")
            ),
        },
        Err(e) => println!("    where its time went: the lab's audit logs cannot be read ({e})"),
    }
    let _ = fs::remove_file(lab.inbox().join("big.pdf"));
    Ok(())
}

/// `n` files of `mib` MiB renamed into the outbox at once: the rate of all their bytes from
/// the first rename to the last file seen in the inbox, the cores each node used, and each
/// node's peak resident memory meanwhile (sampled every 20 ms).
fn parallel_files(
    lab: &Lab,
    n: usize,
    mib: u64,
    limit: f64,
    summary: &mut summary::Summary,
) -> Result<(), BenchError> {
    let stage = staging(lab)?;
    let names: Vec<String> = (0..n).map(|i| format!("p{i}.pdf")).collect();
    for (i, name) in names.iter().enumerate() {
        write_pdf(&stage.join(name), mib << 20, 100 + i as u64)?;
    }
    settle();
    let cpu = CpuUse::start(lab);
    let t0 = Instant::now();
    for name in &names {
        publish(&stage.join(name), &lab.outbox(), name)?;
    }
    // a minute per GiB, at least ten: a stalled lab ends the bench instead of hanging it
    let limit_wait =
        Duration::from_secs(((n as u64 * mib) >> 10).max(1) * 60).max(Duration::from_secs(600));
    let inbox = lab.inbox();
    let landed: Vec<PathBuf> = names.iter().map(|n| inbox.join(n)).collect();
    let peaks = land_sampling_rss(lab, &landed, t0, limit_wait)?;
    let took = t0.elapsed();
    let bytes = n as u64 * (mib << 20);
    let rate = mib_per_s(bytes, took);
    let used = cpu.each();
    println!(
        "  {n} x {mib} MiB at once            {:8.2} s = {rate:6.0} MiB/s  ({:.2} x limit; {used} cores)",
        took.as_secs_f64(),
        rate / limit
    );
    summary.add(
        format!("{n} x {mib} MiB at once"),
        format!("{rate:.0} MiB/s"),
        "—",
        &used,
    );
    let peaks: Vec<String> = peaks
        .iter()
        .map(|(name, p)| format!("{name} {p:.1}"))
        .collect();
    println!(
        "    peak RSS meanwhile: {} MiB (target 100 MiB per node, for one file)",
        peaks.join(", ")
    );
    for name in &names {
        let _ = fs::remove_file(inbox.join(name));
    }
    Ok(())
}

fn small_files(
    lab: &Lab,
    n: usize,
    cores: usize,
    summary: &mut summary::Summary,
) -> Result<(), BenchError> {
    let stage = staging(lab)?;
    for i in 0..n {
        write_pdf(&stage.join(format!("s{i}.pdf")), 4096, i as u64)?;
    }
    let inbox = lab.inbox();
    let before = count(&inbox);
    // the landings are seen from the inbox's events: listing an inbox of thousands of
    // files every few ms would take a share of the cores the nodes are measured on
    let (tx, rx) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        use notify::EventKind::{Create, Modify};
        use notify::event::{ModifyKind, RenameMode};
        // a landing is a name made in the inbox (renamed in): not an open or a read
        if let Ok(ev) = ev
            && matches!(
                ev.kind,
                Create(_) | Modify(ModifyKind::Name(RenameMode::To | RenameMode::Any))
            )
        {
            for p in ev.paths {
                let _ = tx.send(p);
            }
        }
    })?;
    watcher.watch(&inbox, notify::RecursiveMode::NonRecursive)?;
    let names: Vec<String> = (0..n).map(|i| format!("s{i}.pdf")).collect();
    let mut waiting: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    let cpu = CpuUse::start(lab);
    let disk = flushes::Flushes::start(&lab.dir);
    let t0 = Instant::now();
    for name in &names {
        publish(&stage.join(name), &lab.outbox(), name)?;
    }
    let deadline = Duration::from_secs(300);
    // a listing once a second as well: events the watch missed (its queue overflowed)
    let mut listed = Instant::now();
    while !waiting.is_empty() {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(path) => {
                if let Some(name) = path.file_name().and_then(|s| s.to_str())
                    && path.exists()
                {
                    waiting.remove(name);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            // the watch is gone: the listing below sees the rest, once a second
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if listed.elapsed() >= Duration::from_secs(1) {
            if count(&inbox) >= before + n {
                break;
            }
            listed = Instant::now();
        }
        if t0.elapsed() > deadline {
            for name in &names {
                let _ = fs::remove_file(inbox.join(name));
            }
            return Err(BenchError::Timeout(format!("{n} small files to land")));
        }
    }
    let took = t0.elapsed();
    // read now: the removals below are no part of the figure
    let disk_line = flushes::line(&disk, n);
    let used = cpu.each();
    let cpu_line = cpu.total_secs().and_then(|s| files_ceiling(s, n, cores));
    drop(watcher);
    for name in &names {
        let _ = fs::remove_file(inbox.join(name));
    }
    println!(
        "  {n} files of 4 KiB             {:8.2} s = {:6.0} files/s  ({:.2} x target 3000; {used} cores)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        n as f64 / took.as_secs_f64() / 3000.0
    );
    if let Some(line) = cpu_line {
        println!("    {line}");
    }
    summary.add(
        "4 KiB files",
        format!("{:.0} files/s", n as f64 / took.as_secs_f64()),
        "≥ 3000 files/s",
        &used,
    );
    println!("{disk_line}");
    Ok(())
}

fn count(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0)
}

fn latency(lab: &Lab, secs: u64, summary: &mut summary::Summary) -> Result<(), BenchError> {
    let n = (secs * 100) as usize;
    let stage = staging(lab)?;
    for i in 0..n {
        write_pdf(&stage.join(format!("l{i}.pdf")), 4096, 10_000 + i as u64)?;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            let now = Instant::now();
            for p in ev.paths {
                let _ = tx.send((p, now));
            }
        }
    })?;
    watcher.watch(&lab.inbox(), notify::RecursiveMode::NonRecursive)?;
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let cpu = CpuUse::start(lab);
    let start = Instant::now();
    for i in 0..n {
        let due = start + Duration::from_millis(10 * i as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let name = format!("l{i}.pdf");
        let t = publish(&stage.join(&name), &lab.outbox(), &name)?;
        sent.insert(name, t);
    }
    let mut lat = Vec::with_capacity(n);
    let deadline = Instant::now() + Duration::from_secs(60);
    while lat.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((path, at)) = rx.recv_timeout(left) else {
            return Err(BenchError::Timeout(format!(
                "latency files: {} of {n} landed",
                lat.len()
            )));
        };
        let name = path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(t) = sent.remove(&name) {
            lat.push((at - t).as_secs_f64() * 1000.0);
        }
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let used = cpu.each();
    println!(
        "  latency at 100 files/s, {secs} s    p50 {:6.1} ms, p99 {:6.1} ms  ({:.2} / {:.2} x targets 10 / 50 ms; {used} cores)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 0.5) / 10.0,
        percentile(&lat, 0.99) / 50.0
    );
    summary.add(
        "latency at 100 files/s, p50 / p99",
        format!(
            "{:.1} / {:.1} ms",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        ),
        "≤ 10 / 50 ms",
        &used,
    );
    Ok(())
}

fn memory(lab: &Lab, mib: u64, summary: &mut summary::Summary) -> Result<(), BenchError> {
    let staged = staging(lab)?.join("huge.pdf");
    write_pdf(&staged, mib << 20, 2)?;
    let cpu = CpuUse::start(lab);
    let t0 = publish(&staged, &lab.outbox(), "huge.pdf")?;
    let target = lab.inbox().join("huge.pdf");
    let peaks = land_sampling_rss(
        lab,
        std::slice::from_ref(&target),
        t0,
        Duration::from_secs(900),
    )?;
    let took = t0.elapsed();
    for (name, peak) in &peaks {
        println!(
            "  peak RSS of {name:<8} while {mib} MiB crosses: {peak:6.1} MiB  ({:.2} x target 100 MiB)",
            peak / 100.0
        );
    }
    let used = cpu.each();
    println!(
        "  ({mib} MiB crossed in {:.1} s = {:.0} MiB/s; {used} cores)",
        took.as_secs_f64(),
        mib_per_s(mib << 20, took)
    );
    let peaks: Vec<String> = peaks
        .iter()
        .map(|(name, p)| format!("{name} {p:.1}"))
        .collect();
    summary.add(
        format!("peak RSS while {mib} MiB crosses"),
        format!("{} MiB", peaks.join(", ")),
        "≤ 100 MiB per node",
        &used,
    );
    let _ = fs::remove_file(&target);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_ceiling_is_the_cores_over_the_cpu_a_gib_costs() {
        // a profile on the 2-core development machine: 10.9 CPU seconds for 1 GiB
        assert_eq!(
            cpu_ceiling(10.9, 1 << 30, 2).unwrap(),
            "CPU for the file 10.9 s, both nodes (10.9 s per GiB): at most 188 MiB/s on 2 cores"
        );
        // half a GiB for 4 s: 8 s a GiB, 16 cores carry 2,048 MiB/s
        assert_eq!(
            cpu_ceiling(4.0, 512 << 20, 16).unwrap(),
            "CPU for the file 4.0 s, both nodes (8.0 s per GiB): at most 2048 MiB/s on 16 cores"
        );
        for (secs, bytes) in [
            (0.0, 1 << 30),
            (f64::NAN, 1 << 30),
            (-1.0, 1 << 30),
            (1.0, 0),
        ] {
            assert_eq!(
                cpu_ceiling(secs, bytes, 2),
                None,
                "{secs} s for {bytes} bytes"
            );
        }
    }

    #[test]
    fn the_files_ceiling_is_the_cores_over_the_cpu_a_file_costs() {
        // a profile on the 2-core development machine: 4.44 CPU seconds for 3,000 files
        assert_eq!(
            files_ceiling(4.44, 3000, 2).unwrap(),
            "CPU for the files 4.4 s, both nodes (1.48 ms per file): at most 1351 files/s on 2 cores"
        );
        // 0.1 ms a file: 16 cores carry 160,000 files/s
        assert_eq!(
            files_ceiling(1.0, 10_000, 16).unwrap(),
            "CPU for the files 1.0 s, both nodes (0.10 ms per file): at most 160000 files/s on 16 cores"
        );
        for (secs, files) in [(0.0, 3000), (f64::NAN, 3000), (-1.0, 3000), (1.0, 0)] {
            assert_eq!(
                files_ceiling(secs, files, 2),
                None,
                "{secs} s for {files} files"
            );
        }
    }

    #[test]
    fn the_disk_probe_measures_durable_writes_and_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("not yet made");
        let (rate, syncs) = disk_durable(&dir).unwrap();
        assert!(rate.is_finite() && rate > 0.0, "{rate} MiB/s");
        assert!(syncs.is_finite() && syncs >= 1.0, "{syncs} per s");
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            0,
            "the probe file removed"
        );
        // a place that cannot hold the probe says what failed
        let file = t.path().join("a file");
        fs::write(&file, b"x").unwrap();
        let err = disk_durable(&file.join("below")).unwrap_err().to_string();
        assert!(err.contains("making the bench's directory"), "{err}");
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn cpu_time_of_this_process_is_read_and_grows() {
        let me = std::process::id();
        let before = cpu_secs(me).expect("cpu time");
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(cpu_secs(me).expect("cpu time") > before);
    }

    #[test]
    fn the_diode_lab_has_the_repeat_window_the_bench_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        init::init(dir.path(), LabLink::Diode, 7950, None).unwrap();
        for node in ["court", "internet"] {
            let text = fs::read_to_string(dir.path().join(format!("{node}.toml"))).unwrap();
            assert!(
                text.contains(&format!("repeat_window_s = {LAB_REPEAT_WINDOW_S}\n")),
                "{text}"
            );
        }
    }

    #[test]
    fn the_diode_lab_has_the_rate_the_bench_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        init::init(dir.path(), LabLink::Diode, 7950, None).unwrap();
        rewrite_nodes(dir.path(), "rate_mbit = 4000\n", "rate_mbit = 6000\n").unwrap();
        let court = fs::read_to_string(dir.path().join("court.toml")).unwrap();
        assert!(court.contains("rate_mbit = 6000\n"), "{court}");
        // a line the config lacks is an error, not a silent no-op
        let e = rewrite_nodes(dir.path(), "rate_mbit = 4000\n", "x").unwrap_err();
        assert!(e.to_string().contains("no line"), "{e}");
    }

    #[test]
    fn the_lab_has_the_hearing_bitrate_the_bench_rewrites() {
        for link in [LabLink::Quic, LabLink::Diode] {
            let dir = tempfile::tempdir().unwrap();
            init::init(dir.path(), link, 7950, None).unwrap();
            let text = fs::read_to_string(dir.path().join("policy/hearing.toml")).unwrap();
            assert!(text.contains(LAB_HEARING_RATE), "{text}");
            // and the raised rate is a valid stream policy, 10 Gbit/s
            let raised = text.replace(LAB_HEARING_RATE, BENCH_HEARING_RATE);
            let policy = crate::policy::Policy::parse_stream(
                Path::new("hearing.toml"),
                &raised,
                crate::core::stream::Protocol::Rtp,
            )
            .unwrap();
            assert_eq!(policy.stream.unwrap().max_bitrate_bps, 10_000_000_000);
        }
    }

    #[test]
    fn loopback_limits_are_measured() {
        assert!(tcp_loopback().unwrap() > 1.0);
        assert!(udp_loopback().unwrap() > 1.0);
    }

    #[test]
    fn pdf_test_files_have_the_exact_size_and_pass_the_lab_policy() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pdf");
        write_pdf(&p, 4096, 3).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().len(), 4096);
        let policy = crate::policy::Policy::parse(
            Path::new("to-internet.toml"),
            crate::cli::init::POLICY_TO_INTERNET,
        )
        .unwrap();
        let verdict = crate::inspect::inspect_file(
            &policy,
            "x.pdf",
            &p,
            dir.path(),
            crate::keys::suite::Suite::Default,
        )
        .unwrap();
        assert!(verdict.is_ok(), "{verdict:?}");
    }
}
