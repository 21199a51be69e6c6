//! A wall clock stepped back by NTP while both nodes run, end to end on each link. Each node
//! runs under libfaketime (Debian's `faketime`) reading its offset from a control file, with
//! the monotonic clock left alone (`FAKETIME_DONT_FAKE_MONOTONIC`), as a real NTP step
//! leaves it. The test steps both wall clocks back an hour: each node audits `clock_step`
//! with the step's size, files keep crossing both ways, signed checkpoints keep coming, the
//! checkpoint-age gauge keeps counting, and both audit logs still verify.

use crate::common;

use common::*;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The step: one hour back.
const STEP_MS: i64 = -3_600_000;

/// libfaketime's preload library (the thread-safe build), where Debian puts it.
fn libfaketime() -> Option<PathBuf> {
    let mut dirs = vec![PathBuf::from("/usr/lib/faketime")];
    if let Ok(entries) = fs::read_dir("/usr/lib") {
        for e in entries.flatten() {
            dirs.push(e.path().join("faketime"));
        }
    }
    dirs.into_iter()
        .map(|d| d.join("libfaketimeMT.so.1"))
        .find(|p| p.is_file())
}

/// Writes a libfaketime offset ("+0", "-3600") into a control file, whole at once.
fn set_offset(control: &Path, offset: &str) {
    let tmp = control.with_extension("tmp");
    fs::write(&tmp, format!("{offset}\n")).unwrap();
    fs::rename(&tmp, control).unwrap();
}

/// Starts `isogate run` for a node under libfaketime, logging to `<lab>/<node>.log`;
/// returns it and its control file.
fn start_faked(lab: &Lab, node: &str, lib: &Path) -> (Running, PathBuf) {
    let control = lab.dir.join(format!("{node}.faketime"));
    set_offset(&control, "+0");
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(lab.dir.join(format!("{node}.log")))
        .unwrap();
    let child = Command::new(BIN)
        .args(["run", "--config", lab.config(node).to_str().unwrap()])
        .env("RUST_LOG", "info,quinn=warn")
        .env("NO_COLOR", "1")
        .env("LD_PRELOAD", lib)
        .env("FAKETIME_TIMESTAMP_FILE", &control)
        .env("FAKETIME_NO_CACHE", "1")
        // a real step moves the wall clock only
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .env("DONT_FAKE_MONOTONIC", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    (Running::from_child(node, child), control)
}

/// Signed checkpoints a node has written.
fn checkpoints(lab: &Lab, node: &str) -> usize {
    fs::read_to_string(lab.dir.join(node).join("audit/checkpoints.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// `isogate_audit_checkpoint_age_seconds` as a node's `/metrics` says it.
fn checkpoint_age(port: u16) -> f64 {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return -1.0;
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    raw.lines()
        .find_map(|l| {
            l.strip_prefix("isogate_audit_checkpoint_age_seconds ")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(-1.0)
}

/// A judgment-like text file.
fn text(n: usize) -> Vec<u8> {
    format!("民事判决书 第{n}页\n").repeat(100).into_bytes()
}

/// Both nodes under libfaketime; files cross both ways before and after both wall clocks
/// are stepped back an hour.
fn keeps_carrying_through_a_step_back(lab: &Lab) {
    let Some(lib) = libfaketime() else {
        eprintln!(
            "SKIPPED: libfaketime (Debian package faketime) is not installed; scripts/test.sh installs it"
        );
        return;
    };
    let (internet, internet_ctl) = start_faked(lab, "internet", &lib);
    let (court, court_ctl) = start_faked(lab, "court", &lib);
    let ways = [
        ("court", "to-internet", "internet"),
        ("internet", "to-court", "court"),
    ];
    let land = |tag: &str, n: usize| {
        for (from, channel, to) in ways {
            let names: Vec<String> = (0..n).map(|i| format!("{tag}-{channel}-{i}.txt")).collect();
            for (i, name) in names.iter().enumerate() {
                lab.publish(from, channel, name, &text(i));
            }
            let inbox = lab.inbox(to, channel);
            wait_until(30, &format!("{tag} files to land on {to}"), || {
                let v = visible(&inbox);
                names.iter().all(|n| v.contains(n))
            });
            for (i, name) in names.iter().enumerate() {
                assert_eq!(fs::read(inbox.join(name)).unwrap(), text(i), "{name}");
            }
        }
    };
    land("before", 1);
    let last_before: u64 = ["court", "internet"]
        .iter()
        .flat_map(|n| read_live(&lab.dir.join(n).join("audit")))
        .map(|r| r.time_ms)
        .max()
        .unwrap();
    assert!(lab.records("court", "clock_step").is_empty());

    // NTP steps both wall clocks back an hour
    set_offset(&court_ctl, &format!("{}", STEP_MS / 1000));
    set_offset(&internet_ctl, &format!("{}", STEP_MS / 1000));
    let checkpoints_at_step = [checkpoints(lab, "court"), checkpoints(lab, "internet")];
    for node in ["court", "internet"] {
        wait_until(15, &format!("{node} to audit clock_step"), || {
            !lab.records(node, "clock_step").is_empty()
        });
        let steps = lab.records(node, "clock_step");
        assert_eq!(steps.len(), 1, "{node}: {steps:?}");
        let detail = steps[0].detail.clone().unwrap_or_default();
        let ms: i64 = detail
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{node}: no step size in {detail:?}"));
        assert!((ms - STEP_MS).abs() < 5_000, "{node}: step {ms} ms");
        // stamped with the new wall time
        assert!(
            steps[0].time_ms < last_before - 3_000_000,
            "{node}: {steps:?}"
        );
        wait_until(5, &format!("{node} to log the step"), || {
            lab.log(node).contains("the wall clock was stepped")
        });
    }

    // files keep crossing, both ways, without waiting for the clock to catch up
    land("after", 3);
    // and signed checkpoints keep coming: an idle log writes none, so each round of files
    // after the last checkpoint makes one (the step and the first round may share one)
    for round in 1..=2 {
        if round == 2 {
            land("later", 1);
        }
        for (i, node) in ["court", "internet"].iter().enumerate() {
            wait_until(
                20,
                &format!("{node} to write checkpoints after the step"),
                || checkpoints(lab, node) >= checkpoints_at_step[i] + round,
            );
        }
    }
    // the age of the last checkpoint keeps counting while none is written (it read 0
    // while the wall clock caught up, so its alert could not fire)
    for port in [lab.port_base + 2, lab.port_base + 3] {
        wait_until(
            20,
            &format!("the checkpoint age on :{port} to count"),
            || {
                let age = checkpoint_age(port);
                (1.0..3_000.0).contains(&age)
            },
        );
    }
    for node in ["court", "internet"] {
        assert!(
            lab.records(node, "link_down").is_empty(),
            "{node}: {:?}",
            lab.records(node, "link_down")
        );
    }
    assert!(court.stop().success());
    assert!(internet.stop().success());
    for node in ["court", "internet"] {
        let out = Command::new(BIN)
            .args(["audit", "verify"])
            .arg(lab.dir.join(node).join("audit"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{node}: {out:?}");
    }
}

#[test]
fn quic_keeps_carrying_and_checkpointing_through_a_wall_clock_step_back() {
    keeps_carrying_through_a_step_back(&Lab::new(23700));
}

#[test]
fn diode_keeps_carrying_and_checkpointing_through_a_wall_clock_step_back() {
    let lab = Lab::new_with(23710, &["--link", "diode"]);
    for node in ["court", "internet"] {
        let file = lab.config(node);
        let t = fs::read_to_string(&file)
            .unwrap()
            .replace("rate_mbit = 4000", "rate_mbit = 400");
        fs::write(&file, t).unwrap();
    }
    keeps_carrying_through_a_step_back(&lab);
}
