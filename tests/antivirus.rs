//! End to end with a real clamd (Debian's clamav-daemon) started by the test with a
//! signature database the test writes itself: malware nested in archives is refused, a
//! clean file passes, and while clamd is down objects wait instead of crossing unscanned.

mod common;

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
