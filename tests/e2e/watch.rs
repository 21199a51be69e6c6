//! End to end, over `quic`: an outbox folder replaced under the node (removed and made
//! again, moved away and made again, missing for a while) is watched again; a file written
//! in place by a writer that closes and reopens it to append crosses once, whole; and the
//! log at the default level says no per-object line, only a summary.

use crate::common;
use common::*;
use std::fs;
use std::io::Write;
use std::time::Duration;

/// A lab whose intake settings are replaced: `(key = default, key = value)` pairs.
fn lab(port_base: u16, set: &[(&str, &str)]) -> Lab {
    let lab = Lab::new(port_base);
    for node in ["court", "internet"] {
        let cfg = lab.config(node);
        let mut text = fs::read_to_string(&cfg).unwrap();
        for (from, to) in set {
            assert!(text.contains(from), "the lab sets {from}");
            text = text.replace(from, to);
        }
        fs::write(&cfg, text).unwrap();
    }
    lab
}

fn ready(lab: &Lab) {
    wait_until(30, "the court node's link", || {
        lab.log("court").contains("link up")
    });
}

/// Waits until `line` is in the court's log `n` times.
fn logged(lab: &Lab, line: &str, n: usize) {
    wait_until(10, &format!("{n} × {line:?} in the court's log"), || {
        lab.log("court").matches(line).count() >= n
    });
}

#[test]
fn a_replaced_outbox_is_watched_again() {
    // the periodic rescan comes only every 10 minutes: within this test, only the watch
    // finds a file
    let lab = lab(24710, &[("rescan_ms = 2000", "rescan_ms = 600000")]);
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    ready(&lab);
    let outbox = lab.outbox("court", "to-internet");
    let inbox = lab.inbox("internet", "to-internet");
    let landed = |n: usize, name: &str| {
        wait_until(30, &format!("{name} to land"), || {
            inbox.join(name).exists() && lab.records("internet", "landed").len() == n
        });
    };
    lab.publish("court", "to-internet", "之前.txt", "before\n".as_bytes());
    landed(1, "之前.txt");

    // removed and made again (a cleanup job)
    fs::remove_dir_all(&outbox).unwrap();
    fs::create_dir(&outbox).unwrap();
    logged(&lab, "outbox replaced: watching the new folder", 1);
    lab.publish("court", "to-internet", "重建.txt", "recreated\n".as_bytes());
    landed(2, "重建.txt");

    // moved away, and a new folder made in its place; what is put in the old one stays
    let away = lab.dir.join("court").join("outbox-away");
    fs::rename(&outbox, &away).unwrap();
    fs::create_dir(&outbox).unwrap();
    logged(&lab, "outbox replaced: watching the new folder", 2);
    fs::write(away.join("旧目录.txt"), "in the old folder\n").unwrap();
    lab.publish(
        "court",
        "to-internet",
        "移走.txt",
        "moved away\n".as_bytes(),
    );
    landed(3, "移走.txt");

    // missing for a while: said once, not at every check; watched again when back
    fs::remove_dir_all(&outbox).unwrap();
    logged(&lab, "outbox missing", 1);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        lab.log("court").matches("outbox missing").count(),
        1,
        "a missing outbox is logged once"
    );
    fs::create_dir(&outbox).unwrap();
    logged(&lab, "outbox replaced: watching the new folder", 3);
    lab.publish("court", "to-internet", "回来.txt", "back\n".as_bytes());
    landed(4, "回来.txt");

    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        visible(&inbox),
        ["之前.txt", "回来.txt", "移走.txt", "重建.txt"]
    );
    assert_eq!(lab.records("court", "taken").len(), 4);
    assert!(
        away.join("旧目录.txt").exists(),
        "the moved folder is not watched"
    );
    assert!(reasons(&lab.quarantine("court", "to-internet")).is_empty());
}

#[test]
fn a_writer_that_closes_and_reopens_to_append_crosses_once_whole() {
    // a settle time long enough that the pauses below are clearly within it
    let lab = lab(24720, &[("settle_ms = 250", "settle_ms = 2000")]);
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    ready(&lab);
    let size: u64 = 3 << 20;
    let pieces: Vec<Vec<u8>> = generated(size, 41).collect();
    let thirds = pieces.len().div_ceil(3);
    let path = lab.outbox("court", "to-internet").join("续传.pdf");
    // a resumed upload: written in three sessions, each closed, the next reopened to append
    // 800 ms later
    for (i, chunk) in pieces.chunks(thirds).enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(800));
        }
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        for p in chunk {
            f.write_all(p).unwrap();
        }
    }
    let inbox = lab.inbox("internet", "to-internet");
    wait_until(60, "the file to land", || {
        lab.records("internet", "landed").len() == 1
    });
    // a second object (the last part taken apart) would come within the settle time
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(visible(&inbox), ["续传.pdf"], "one file");
    assert_eq!(
        sha256_file(&inbox.join("续传.pdf")),
        sha256_of_generated(size, 41),
        "whole"
    );
    assert_eq!(lab.records("court", "taken").len(), 1);
    assert_eq!(lab.records("internet", "landed").len(), 1);
}

#[test]
fn the_default_log_has_a_summary_and_no_line_per_object() {
    let lab = Lab::new(24730);
    let court = lab.start("court");
    let internet = lab.start("internet");
    ready(&lab);
    let names: Vec<String> = (0..50).map(|i| format!("批量-{i:02}.txt")).collect();
    for (i, n) in names.iter().enumerate() {
        lab.publish("court", "to-internet", n, format!("file {i}\n").as_bytes());
    }
    let inbox = lab.inbox("internet", "to-internet");
    wait_until(60, "50 files to land", || {
        visible(&inbox).len() == 50 && lab.records("court", "confirmed").len() == 50
    });
    // the summary of the last minute is said at stop at the latest
    assert!(court.stop().success());
    assert!(internet.stop().success());
    for (node, counted) in [("court", "taken=50"), ("internet", "landed=50")] {
        let log = lab.log(node);
        let lines = log.lines().count();
        for n in &names {
            assert!(!log.contains(n.as_str()), "{node} logs {n}:\n{log}");
        }
        let summary: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("summary") && l.contains("channel=to-internet"))
            .collect();
        assert!(!summary.is_empty(), "no summary on {node}:\n{log}");
        let total: u64 = summary
            .iter()
            .filter_map(|l| {
                let key = counted.split('=').next().unwrap();
                let at = l.find(&format!("{key}="))?;
                l[at + key.len() + 1..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum();
        assert_eq!(
            format!("{}={total}", counted.split('=').next().unwrap()),
            counted,
            "{node}: {summary:?}"
        );
        assert!(lines < 40, "{node} logs {lines} lines for 50 files:\n{log}");
    }
}
