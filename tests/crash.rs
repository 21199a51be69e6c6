//! Crash tests: kill -9 either node in the middle of a large transfer, restart it, and check
//! that every file lands exactly once and that no partial file is ever visible in an inbox.

mod common;
use common::*;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const BIG: u64 = 256 << 20;

/// Watches an inbox until stopped: every visible file must have its full expected size.
struct Monitor {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Result<u64, String>>>,
}

impl Monitor {
    fn start(inbox: PathBuf, sizes: HashMap<String, u64>) -> Monitor {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut looks = 0u64;
            while !s.load(Ordering::Relaxed) {
                for name in visible(&inbox) {
                    let Some(want) = sizes.get(&name) else {
                        return Err(format!("unexpected file {name} in the inbox"));
                    };
                    if let Ok(m) = fs::metadata(inbox.join(&name)) {
                        if m.len() != *want {
                            return Err(format!("{name} visible with {} of {want} bytes", m.len()));
                        }
                    }
                }
                looks += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(looks)
        });
        Monitor {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let looks = self.handle.take().unwrap().join().unwrap().unwrap();
        assert!(looks > 10);
    }
}

/// Bytes in the receiver's part files (content streaming in).
fn part_bytes(inbox: &Path) -> u64 {
    fs::read_dir(inbox.join(".isogate-tmp"))
        .map(|r| {
            r.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn publish_workload(lab: &Lab) -> HashMap<String, (u64, String)> {
    // expected hashes first: the transfer must still be running when the test looks for it
    let mut files = HashMap::new();
    files.insert(
        "大文件-卷宗.pdf".to_string(),
        (BIG, sha256_of_generated(BIG, 42)),
    );
    for i in 0..5u64 {
        let size = 10_000 + i * 777;
        files.insert(
            format!("small-{i}.pdf"),
            (size, sha256_of_generated(size, i)),
        );
    }
    for i in 0..5u64 {
        let size = 10_000 + i * 777;
        lab.publish_generated("court", "to-internet", &format!("small-{i}.pdf"), size, i);
    }
    lab.publish_generated("court", "to-internet", "大文件-卷宗.pdf", BIG, 42);
    files
}

fn check_exactly_once(lab: &Lab, files: &HashMap<String, (u64, String)>) {
    let inbox = lab.inbox("internet", "to-internet");
    wait_until(120, "every file to land", || {
        visible(&inbox).len() >= files.len()
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut names = visible(&inbox);
    names.sort();
    let mut want: Vec<String> = files.keys().cloned().collect();
    want.sort();
    assert_eq!(names, want, "each file exactly once, under its own name");
    for (name, (_, sha)) in files {
        assert_eq!(&sha256_file(&inbox.join(name)), sha, "{name}");
    }
    assert_eq!(events(lab, "internet", "landed"), files.len());
    wait_until(30, "the part files to be cleaned up", || {
        part_bytes(&inbox) == 0
    });
}

/// Kills `victim` with SIGKILL in the middle of the big transfer, restarts it, and checks
/// that every file lands exactly once with no partial file ever visible.
fn kill_mid_transfer(port_base: u16, victim: &str) {
    let lab = Lab::new(port_base);
    let mut nodes: HashMap<&str, Running> = ["court", "internet"]
        .into_iter()
        .map(|n| (n, lab.start(n)))
        .collect();
    let files = publish_workload(&lab);
    let inbox = lab.inbox("internet", "to-internet");
    let monitor = Monitor::start(
        inbox.clone(),
        files.iter().map(|(k, v)| (k.clone(), v.0)).collect(),
    );
    wait_until(60, "the big file to be mid-transfer", || {
        part_bytes(&inbox) > 8 << 20
    });
    nodes.remove(victim).unwrap().kill9();
    assert!(part_bytes(&inbox) < BIG, "killed mid-transfer");
    std::thread::sleep(Duration::from_millis(300));
    nodes.insert(victim, lab.start(victim));
    check_exactly_once(&lab, &files);
    monitor.finish();
}

#[test]
fn sender_killed_mid_transfer_delivers_exactly_once() {
    kill_mid_transfer(21450, "court");
}

#[test]
fn receiver_killed_mid_file_delivers_exactly_once() {
    kill_mid_transfer(21460, "internet");
}
