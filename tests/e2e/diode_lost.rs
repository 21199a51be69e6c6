//! What is lost on the diode is known, end to end with two real nodes on the loopback
//! (the one-way property itself is proved in namespaces by `tests/e2e/diode.rs`): a file sent
//! and retired while the receiver is down is audited `lost` by name once the receiver is
//! back, `isogate resend` brings it across, the sender's records say `sent` and `retired`
//! (never `confirmed`), the receiver witnesses the sender's checkpoints, and
//! `audit reconcile --strict` fails when no checkpoint was witnessed.

use crate::common;

use common::*;
use std::fs;
use std::process::Command;

/// A diode lab on the loopback with one copy and no repeat window, so objects retire
/// as soon as their only pass is out.
fn lab(port_base: u16) -> Lab {
    lab_with_window(port_base, 0)
}

/// A diode lab on the loopback with a repeat window of `window_s` seconds (repeats
/// every window/20, at least 1 s).
fn lab_with_window(port_base: u16, window_s: u64) -> Lab {
    let lab = Lab::new_with(port_base, &["--link", "diode"]);
    for node in ["court", "internet"] {
        let file = lab.config(node);
        let text = fs::read_to_string(&file)
            .unwrap()
            .replace(
                "repeat_window_s = 600",
                &format!("repeat_window_s = {window_s}"),
            )
            .replace("rate_mbit = 4000", "rate_mbit = 400");
        fs::write(&file, text).unwrap();
    }
    lab
}

fn reconcile(sender: &std::path::Path, receiver: &std::path::Path, strict: bool) -> (bool, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["audit", "reconcile"]).arg(sender).arg(receiver);
    if strict {
        cmd.arg("--strict");
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_file_lost_while_the_receiver_is_down_is_named_resent_and_lands() {
    let lab = lab(21900);
    let court = lab.start("court");
    let name = "判决书-遗失.txt";
    lab.publish(
        "court",
        "to-internet",
        name,
        "民事判决书 第一页\n".repeat(200).as_bytes(),
    );
    // the receiver is down: the only copy goes out and the object retires
    wait_until(60, "the sender to retire the file", || {
        !lab.records("court", "retired").is_empty()
    });
    let internet = lab.start("internet");
    wait_until(60, "the receiver to audit the file lost", || {
        !lab.records("internet", "lost").is_empty()
    });
    let lost = lab.records("internet", "lost");
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0].name.as_deref(), Some(name));
    assert_eq!(lost[0].channel.as_deref(), Some("to-internet"));
    let id = lost[0].object_id.clone().unwrap();
    assert_eq!(
        lab.records("court", "retired")[0].object_id.as_deref(),
        Some(id.as_str())
    );
    assert!(visible(&lab.inbox("internet", "to-internet")).is_empty());

    // an id the sender never held is reported as such
    let out = Command::new(BIN)
        .args(["resend", "--config"])
        .arg(lab.config("court"))
        .arg("00000000000000000000000000000001")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("is no longer held"),
        "{out:?}"
    );
    // the operator carries the id across and asks for it again
    let out = Command::new(BIN)
        .args(["resend", "--config"])
        .arg(lab.config("court"))
        .arg(&id)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}\n{}", lab.log("court"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("queued again"),
        "{out:?}"
    );
    let inbox = lab.inbox("internet", "to-internet");
    wait_until(60, "the resent file to land", || {
        visible(&inbox).contains(&name.to_string())
    });
    assert_eq!(
        fs::read(inbox.join(name)).unwrap(),
        "民事判决书 第一页\n".repeat(200).as_bytes()
    );
    assert_eq!(lab.records("court", "resent").len(), 1);
    // the same counts, for an alert
    let series = |port: u16, name: &str| {
        let out = Command::new("curl")
            .args(["-s", &format!("http://127.0.0.1:{port}/metrics")])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{channel=\"to-internet\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert_eq!(series(21902, "isogate_diode_resent_total"), 1.0);
    assert!(series(21902, "isogate_diode_retired_total") >= 1.0);
    assert_eq!(series(21903, "isogate_diode_lost_total"), 1.0);
    wait_until(30, "a witnessed checkpoint", || {
        !lab.records("internet", "witnessed").is_empty()
    });
    // let the sender's last checkpoints cross, then stop both
    std::thread::sleep(std::time::Duration::from_secs(3));
    court.stop();
    internet.stop();

    // nothing confirms on a one-way link
    assert_eq!(events(&lab, "court", "confirmed"), 0);
    assert!(events(&lab, "court", "sent") >= 2);
    assert_eq!(events(&lab, "court", "retired"), 2);
    assert_eq!(events(&lab, "internet", "lost"), 1);
    assert_eq!(events(&lab, "internet", "landed"), 1);

    let (s, r) = (lab.dir.join("court/audit"), lab.dir.join("internet/audit"));
    let (ok, text) = reconcile(&s, &r, true);
    assert!(ok, "{text}");
    assert!(text.contains("matched: 1"), "{text}");
    assert!(
        text.contains("lost on the way and not landed since: 0"),
        "{text}"
    );
    let witnessed = text
        .lines()
        .find_map(|l| l.strip_prefix("witnessed checkpoints matching the sender's log: "))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap();
    assert!(witnessed > 0, "{text}");

    // with the witnesses gone, the pair still reconciles, with a warning; --strict fails
    let bare = lab.dir.join("internet-unwitnessed");
    fs::create_dir_all(&bare).unwrap();
    for e in fs::read_dir(&r).unwrap().flatten() {
        let text = fs::read_to_string(e.path()).unwrap_or_default();
        let kept: String = text
            .lines()
            .filter(|l| !l.contains("\"event\":\"witnessed\""))
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(bare.join(e.file_name()), kept).unwrap();
    }
    let (ok, text) = reconcile(&s, &bare, false);
    assert!(ok, "{text}");
    assert!(text.contains("witnessed none"), "{text}");
    let (ok, text) = reconcile(&s, &bare, true);
    assert!(!ok, "{text}");
}

#[test]
fn a_second_node_on_the_same_state_is_refused_before_it_touches_anything() {
    let lab = lab(21920);
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    lab.publish("court", "to-internet", "一.txt", b"first");
    let inbox = lab.inbox("internet", "to-internet");
    wait_until(60, "the first file", || visible(&inbox) == ["一.txt"]);
    // the operator starts the receiver again by mistake
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(lab.config("internet"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another `isogate run` uses this state directory"),
        "{err}"
    );
    // the running node's audit log is untouched and it goes on landing files
    let audit = lab.dir.join("internet").join("audit");
    let verify = Command::new(BIN)
        .args(["audit", "verify"])
        .arg(&audit)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{verify:?}");
    lab.publish("court", "to-internet", "二.txt", b"second");
    wait_until(60, "the second file", || {
        visible(&inbox) == ["一.txt", "二.txt"]
    });
    assert_eq!(lab.records("internet", "config_loaded").len(), 1);
}

#[test]
fn a_copy_that_could_not_be_landed_is_taken_again_from_a_repeat() {
    let lab = lab_with_window(21930, 20);
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    let inbox = lab.inbox("internet", "to-internet");
    lab.publish("court", "to-internet", "一.txt", b"first");
    wait_until(60, "the first file", || visible(&inbox) == ["一.txt"]);
    // the staging directory is unusable while the next file arrives whole
    let staging = inbox.join(".isogate-tmp");
    fs::remove_dir_all(&staging).unwrap();
    fs::write(&staging, b"in the way").unwrap();
    lab.publish(
        "court",
        "to-internet",
        "二.txt",
        "民事裁定书".repeat(100).as_bytes(),
    );
    wait_until(30, "the first pass of the second file", || {
        !lab.records("court", "sent")
            .iter()
            .all(|r| r.name.as_deref() != Some("二.txt"))
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(visible(&inbox), ["一.txt"]);
    // repaired: a repeat (every second with this window) lands it, once
    fs::remove_file(&staging).unwrap();
    // the receiver may make it again itself, for a repeat arriving right now
    match fs::create_dir(&staging) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => assert!(staging.is_dir()),
        made => made.unwrap(),
    }
    wait_until(15, "the second file from a repeat", || {
        visible(&inbox) == ["一.txt", "二.txt"]
    });
    assert_eq!(
        fs::read_to_string(inbox.join("二.txt")).unwrap(),
        "民事裁定书".repeat(100)
    );
    assert!(lab.records("internet", "lost").is_empty());
    // the lost counter is there at 0 from the start, so that the first loss raises it
    let out = Command::new("curl")
        .args(["-s", "http://127.0.0.1:21933/metrics"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("isogate_diode_lost_total{channel=\"to-internet\"} 0"),
        "{text}"
    );
}
