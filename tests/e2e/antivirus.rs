//! End to end with a real clamd (Debian's clamav-daemon) started by the test with a
//! signature database the test writes itself: malware nested in archives is refused, a
//! clean file passes, and while clamd is down objects wait instead of crossing unscanned.

use crate::common;

use common::clamd::{TestClamd, eicar};
use common::*;
use std::fs;
use std::time::Duration;

#[test]
fn malware_in_nested_archives_is_refused_and_a_stopped_clamd_makes_objects_wait() {
    let mut clamd = TestClamd::start();
    let addr = clamd.addr();
    let lab = Lab::new_with(21540, &["--clamd", &addr]);
    let _court = lab.start("court");
    let _internet = lab.start("internet");

    let inner = zip_of(&[("readme.txt", &eicar())]);
    let outer = zip_of(&[("inner.zip", &inner)]);
    lab.publish("internet", "to-court", "evidence.zip", &outer);
    lab.publish("internet", "to-court", "clean.txt", "证据清单\n".as_bytes());
    let inbox = lab.inbox("court", "to-court");
    let q = lab.quarantine("internet", "to-court");
    wait_until(60, "the clean file", || inbox.join("clean.txt").exists());
    wait_until(60, "the malware refusal", || reasons(&q) == vec!["malware"]);
    let reason = fs::read_dir(&q)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with(".reason.json"))
        .map(|e| fs::read_to_string(e.path()).unwrap())
        .unwrap();
    assert!(reason.contains("Isogate.Test"), "{reason}");

    // clamd stops: an object waits, it does not cross unscanned
    clamd.stop();
    lab.publish(
        "court",
        "to-internet",
        "while-down.txt",
        "扫描期间\n".as_bytes(),
    );
    let out_inbox = lab.inbox("internet", "to-internet");
    wait_until(30, "the scan to be deferred", || {
        events(&lab, "court", "scan_deferred") >= 1
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !out_inbox.join("while-down.txt").exists(),
        "crossed while the antivirus was down"
    );
    assert!(reasons(&lab.quarantine("court", "to-internet")).is_empty());
    // and crosses once clamd is back
    clamd.restart();
    wait_until(60, "the waiting object to cross", || {
        out_inbox.join("while-down.txt").exists()
    });
}

#[test]
fn a_receiver_without_antivirus_verdict_quarantines_after_its_waiting_time() {
    let mut clamd = TestClamd::start();
    let addr = clamd.addr();
    let lab = Lab::new(21560);
    // only the receiver scans, and waits 3 s at most
    let policy = lab.dir.join("policy");
    let text = fs::read_to_string(policy.join("to-internet.toml")).unwrap();
    fs::write(
        policy.join("internet-own.toml"),
        format!("{text}\n[antivirus]\nclamd = \"{addr}\"\ntimeout_ms = 2000\nmax_wait_ms = 3000\n"),
    )
    .unwrap();
    let config = lab.config("internet");
    let cfg = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        cfg.replace(
            "policy = \"policy/to-internet.toml\"",
            "policy = \"policy/internet-own.toml\"",
        ),
    )
    .unwrap();
    clamd.stop();
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    lab.publish(
        "court",
        "to-internet",
        "报告.txt",
        "扫描不可用\n".as_bytes(),
    );
    let q = lab.quarantine("internet", "to-internet");
    wait_until(60, "scan_failed on the receiver", || {
        reasons(&q) == vec!["scan_failed"]
    });
    assert!(visible(&lab.inbox("internet", "to-internet")).is_empty());
    // deferred once in the audit log, not once per attempt
    assert_eq!(events(&lab, "internet", "scan_deferred"), 1);
    // the sender is told and forgets it
    wait_until(30, "the sender to confirm", || {
        events(&lab, "court", "confirmed") == 1
    });
}
