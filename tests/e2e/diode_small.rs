//! Many small files at once on the diode, end to end with two real nodes on the loopback:
//! a block of the diode's stream carries hundreds of them, and the sender holds their
//! spool files open only while a pass reads each, not until the block is out; every file
//! lands once.

use crate::common;

use common::inbox::{assert_exactly_once, entries, expect, name_for, publish_all};
use common::*;
use std::fs;

/// How many of a process's open descriptors are spool entries' content files.
fn open_spool_contents(pid: u32) -> usize {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.filter_map(|e| e.ok())
        .filter_map(|e| fs::read_link(e.path()).ok())
        .filter(|target| {
            target.ends_with("content") && target.components().any(|c| c.as_os_str() == "spool")
        })
        .count()
}

#[test]
fn a_thousand_small_files_cross_with_few_spool_files_open_at_once() {
    let lab = Lab::new_with(26100, &["--link", "diode"]);
    // all in the outbox before the sender starts: they are taken and sent as one burst
    let files: Vec<(String, u64, u64)> = (0..1000u64)
        .map(|i| (name_for(&format!("通知-{i}"), 4096), 4096, 7000 + i))
        .collect();
    publish_all(&lab, "court", "to-internet", &files);
    let expected = expect(&files);
    let _internet = lab.start("internet");
    let court = lab.start("court");
    let inbox = lab.inbox("internet", "to-internet");
    let mut most = 0;
    wait_until(180, "1000 small files to land", || {
        most = most.max(open_spool_contents(court.pid()));
        entries(&inbox).len() >= files.len()
    });
    assert_exactly_once(&lab, "internet", &inbox, &expected);
    // the intake's readers (inspection and hash, two for each of up to 16 files at once)
    // and the diode's one; each object's file used to stay open until its block was out
    assert!(
        most <= 40,
        "{most} spool files open at once on the sending node"
    );
}
