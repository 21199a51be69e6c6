//! End to end: both nodes run a workload, then every kind of tampering applied to a copy of
//! a log is found by `isogate audit verify`; proofs verify and fail once altered; reconcile
//! finds exactly the objects a receiver's early log copy lacks; the live syslog export runs.

use crate::common;
use common::*;
use isogate::core::checkpoint::Checkpoint;
use isogate::keys::SigningKey;
use std::fs;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn isogate(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn verify(dir: &Path) -> (bool, String) {
    let (ok, out, err) = isogate(&["audit", "verify", dir.to_str().unwrap()]);
    (ok, format!("{out}{err}"))
}

/// Applies `tamper` to a fresh copy of `log` and expects verify to fail saying `expect`.
fn detects(log: &Path, work: &Path, what: &str, expect: &str, tamper: impl FnOnce(&Path)) {
    let copy = work.join(what.replace(' ', "-"));
    copy_dir(log, &copy);
    assert!(verify(&copy).0, "the untouched copy verifies");
    tamper(&copy);
    let (ok, text) = verify(&copy);
    assert!(!ok, "{what}: not detected\n{text}");
    assert!(
        text.contains(expect),
        "{what}: expected {expect:?} in:\n{text}"
    );
    assert_eq!(text.trim().lines().count(), 1, "one-line reason: {text}");
}

fn lines(p: &Path) -> Vec<String> {
    fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn write_lines(p: &Path, l: &[String]) {
    fs::write(p, l.iter().map(|x| format!("{x}\n")).collect::<String>()).unwrap();
}

fn seg(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("log-{n:08}.jsonl"))
}

#[test]
fn tampering_is_detected_proofs_hold_and_logs_reconcile() {
    let lab = Lab::new(21490);
    // small segments, so that rotation and missing segments are exercised; a syslog collector
    let collector = UdpSocket::bind("127.0.0.1:0").unwrap();
    collector
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let text = fs::read_to_string(lab.config("court")).unwrap();
    let text = text
        .replace("segment_records = 100000", "segment_records = 25")
        .replace(
            "# syslog = \"udp:127.0.0.1:514\"",
            &format!("syslog = \"udp:{}\"", collector.local_addr().unwrap()),
        );
    fs::write(lab.config("court"), text).unwrap();
    let court = lab.start("court");
    let internet = lab.start("internet");
    for i in 0..8 {
        lab.publish(
            "court",
            "to-internet",
            &format!("判决书-{i}.txt"),
            format!("第{i}号判决\n").as_bytes(),
        );
    }
    lab.publish("court", "to-internet", "bad.pdf", b"not a pdf at all\n");
    let inbox = lab.inbox("internet", "to-internet");
    wait_until(30, "8 files to land", || visible(&inbox).len() == 8);
    // the receiver's log as it was before the last objects landed
    std::thread::sleep(Duration::from_millis(300));
    let early = lab.dir.join("internet-audit-early");
    copy_dir(&lab.dir.join("internet/audit"), &early);
    for i in 0..3 {
        lab.publish("court", "to-internet", &format!("late-{i}.txt"), b"late\n");
    }
    wait_until(30, "the late files to land", || visible(&inbox).len() == 11);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(court.stop().success());
    assert!(internet.stop().success());

    // syslog: RFC 5424 lines for the court's records
    let mut buf = [0u8; 65536];
    let n = collector.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        msg.starts_with("<134>1 ") && msg.contains(" court isogate "),
        "{msg}"
    );

    let court_log = lab.dir.join("court/audit");
    let internet_log = lab.dir.join("internet/audit");
    for log in [&court_log, &internet_log] {
        let (ok, text) = verify(log);
        assert!(ok, "{text}");
        assert!(
            !text.contains("not yet covered"),
            "a clean stop checkpoints everything: {text}"
        );
    }
    assert!(seg(&court_log, 3).exists(), "segments rotated");

    let work = lab.dir.join("tamper");
    let s2 = seg(&court_log, 2);
    detects(
        &court_log,
        &work,
        "flipped byte",
        "does not match the records",
        |d| {
            let p = d.join(s2.file_name().unwrap());
            let mut l = lines(&p);
            l[3] = l[3].replacen("\"seq\":", "\"seq\": ", 1);
            write_lines(&p, &l);
        },
    );
    detects(&court_log, &work, "removed record", "removed record", |d| {
        let p = d.join(s2.file_name().unwrap());
        let mut l = lines(&p);
        l.remove(5);
        write_lines(&p, &l);
    });
    detects(
        &court_log,
        &work,
        "inserted record",
        "duplicated or reordered",
        |d| {
            let p = d.join(s2.file_name().unwrap());
            let mut l = lines(&p);
            let dup = l[5].clone();
            l.insert(6, dup);
            write_lines(&p, &l);
        },
    );
    detects(&court_log, &work, "reordered records", "where", |d| {
        let p = d.join(s2.file_name().unwrap());
        let mut l = lines(&p);
        l.swap(2, 3);
        write_lines(&p, &l);
    });
    detects(
        &court_log,
        &work,
        "missing segment",
        "segment log-00000002.jsonl is missing",
        |d| {
            fs::remove_file(d.join(s2.file_name().unwrap())).unwrap();
        },
    );
    detects(
        &court_log,
        &work,
        "truncated log",
        "records at the end were removed",
        |d| {
            let last = isogate::audit::read::segment_numbers(d)
                .unwrap()
                .pop()
                .unwrap();
            let p = seg(d, last as u32);
            let mut l = lines(&p);
            l.truncate(l.len().saturating_sub(2));
            write_lines(&p, &l);
        },
    );
    detects(
        &court_log,
        &work,
        "torn record",
        "not a valid record",
        |d| {
            let p = d.join(s2.file_name().unwrap());
            let t = fs::read_to_string(&p).unwrap();
            fs::write(&p, &t[..t.len() - 7]).unwrap();
        },
    );
    detects(
        &court_log,
        &work,
        "deleted checkpoints",
        "no signed checkpoint covers",
        |d| {
            fs::remove_file(d.join("checkpoints.jsonl")).unwrap();
        },
    );
    detects(
        &court_log,
        &work,
        "checkpoint by another key",
        "not signed by the expected key",
        |d| {
            let p = d.join("checkpoints.jsonl");
            let mut l = lines(&p);
            let mut cp: serde_json::Value = serde_json::from_str(&l[0]).unwrap();
            let mut root = [0u8; 32];
            hex::decode_to_slice(cp["root"].as_str().unwrap(), &mut root).unwrap();
            let forged = Checkpoint {
                origin: "isogate/court".into(),
                size: cp["size"].as_u64().unwrap(),
                root,
                time_ms: cp["time_ms"].as_u64().unwrap(),
            }
            .sign(&SigningKey::generate().unwrap());
            cp["note"] = forged.into();
            l[0] = cp.to_string();
            write_lines(&p, &l);
        },
    );

    // An insider with the node's own key rewrites history and re-signs every checkpoint:
    // the log verifies on its own, but the receiver's witness shows the rewrite.
    let rewritten = work.join("rewritten");
    copy_dir(&court_log, &rewritten);
    let key = SigningKey::load(&lab.dir.join("certs/court.sign.key")).unwrap();
    let p = seg(&rewritten, 1);
    let mut l = lines(&p);
    let idx = l
        .iter()
        .position(|x| x.contains("\"event\":\"sealed\""))
        .unwrap();
    l[idx] = l[idx].replace("判决书-", "改写-");
    write_lines(&p, &l);
    let leaves = isogate::audit::read::leaves(&rewritten, key.suite()).unwrap();
    let mut cps = String::new();
    for c in isogate::audit::read::checkpoints(&rewritten).unwrap() {
        let hs: Vec<_> = leaves[..c.size as usize].iter().map(|(h, _)| *h).collect();
        let root = isogate::core::merkle::root_of(key.suite(), &hs);
        let note = Checkpoint {
            origin: "isogate/court".into(),
            size: c.size,
            root,
            time_ms: c.time_ms,
        }
        .sign(&key);
        cps.push_str(&format!(
            "{}\n",
            serde_json::json!({"size": c.size, "root": hex::encode(root), "time_ms": c.time_ms, "note": note})
        ));
    }
    fs::write(rewritten.join("checkpoints.jsonl"), cps).unwrap();
    assert!(
        verify(&rewritten).0,
        "a re-signed rewrite verifies on its own"
    );
    let (ok, out, _) = isogate(&[
        "audit",
        "reconcile",
        rewritten.to_str().unwrap(),
        internet_log.to_str().unwrap(),
        "--key",
        lab.dir.join("certs/court.sign.pub").to_str().unwrap(),
    ]);
    assert!(!ok, "{out}");
    assert!(out.contains("no longer matches"), "{out}");

    // Reconcile: clean against the final receiver log, exactly the late files against the early copy.
    let (ok, out, _) = isogate(&[
        "audit",
        "reconcile",
        court_log.to_str().unwrap(),
        internet_log.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    // 8 + 3 landed; bad.pdf was refused by the sender and never sealed
    assert!(out.contains("matched: 11"), "{out}");
    let (ok, out, _) = isogate(&[
        "audit",
        "reconcile",
        court_log.to_str().unwrap(),
        early.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        out.contains("sent but never landed or quarantined: 3"),
        "{out}"
    );
    for i in 0..3 {
        assert!(out.contains(&format!("late-{i}.txt")), "{out}");
    }

    // Query and prove the landing of one file.
    let (ok, out, _) = isogate(&[
        "audit",
        "query",
        internet_log.to_str().unwrap(),
        "--event",
        "landed",
        "--name",
        "判决书-3*",
        "--format",
        "json",
    ]);
    assert!(ok);
    assert_eq!(out.lines().count(), 1, "{out}");
    let rec: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let id = rec["object_id"].as_str().unwrap();
    let (ok, csv, _) = isogate(&[
        "audit",
        "query",
        court_log.to_str().unwrap(),
        "--verdict",
        "reject",
        "--format",
        "csv",
    ]);
    assert!(
        ok && csv.contains("type_mismatch") && csv.starts_with("seq,time,"),
        "{csv}"
    );
    let proof = lab.dir.join("proof.json");
    let (ok, _, err) = isogate(&[
        "audit",
        "prove",
        internet_log.to_str().unwrap(),
        id,
        "--out",
        proof.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let key_file = lab.dir.join("certs/internet.sign.pub");
    let (ok, out, _) = isogate(&[
        "audit",
        "verify-proof",
        proof.to_str().unwrap(),
        "--key",
        key_file.to_str().unwrap(),
    ]);
    assert!(ok && out.contains("landed"), "{out}");
    let doc = fs::read_to_string(&proof).unwrap();
    let altered = lab.dir.join("altered.json");
    fs::write(&altered, doc.replacen("判决书-3", "判决书-9", 1)).unwrap();
    let (ok, _, err) = isogate(&[
        "audit",
        "verify-proof",
        altered.to_str().unwrap(),
        "--key",
        key_file.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("INVALID"), "{err}");
    let (ok, _, _) = isogate(&[
        "audit",
        "verify-proof",
        proof.to_str().unwrap(),
        "--key",
        lab.dir.join("certs/court.sign.pub").to_str().unwrap(),
    ]);
    assert!(!ok, "a proof does not verify under another node's key");
    let (ok, out, _) = isogate(&[
        "audit",
        "export",
        court_log.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    assert!(ok && out.lines().count() > 30);
}
