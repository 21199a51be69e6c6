//! Shared helpers of the end-to-end tests: a lab made by `isogate init`, real `isogate run`
//! processes, publishing files the way applications do, and waiting with a deadline.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_isogate");

pub struct Lab {
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
    pub port_base: u16,
}

pub struct Running {
    pub name: String,
    child: Child,
}

impl Running {
    /// kill -9.
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
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Lab {
            dir,
            _tmp: tmp,
            port_base,
        }
    }

    pub fn config(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.toml"))
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

/// Deterministic pseudo-random bytes behind a PDF header (the lab policies accept PDF).
pub fn generated(size: u64, seed: u64) -> impl Iterator<Item = Vec<u8>> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut left = size;
    let mut first = true;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = left.min(1 << 20) as usize;
        let mut buf = Vec::with_capacity(n);
        while buf.len() < n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            buf.extend_from_slice(&state.to_le_bytes());
        }
        buf.truncate(n);
        if first {
            let head = b"%PDF-1.7\n";
            let k = head.len().min(n);
            buf[..k].copy_from_slice(&head[..k]);
            first = false;
        }
        left -= n as u64;
        Some(buf)
    })
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

/// How many records of `event` a node's audit log holds.
pub fn events(lab: &Lab, node: &str, event: &str) -> usize {
    isogate::audit::read_all(&lab.dir.join(node).join("audit"))
        .unwrap()
        .iter()
        .filter(|r| r.event.as_str() == event)
        .count()
}
