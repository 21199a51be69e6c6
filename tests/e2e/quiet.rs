//! End to end, on a real lab: a quiet log when idle, metrics from zero, refused records
//! that carry the hash of what was refused, and a refused policy file reported once per
//! change. Port bases 25300-25390.

use crate::common;

use common::clamd::{TestClamd, eicar};
use common::*;
use std::fs;
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

/// Records and signed checkpoints in a node's audit directory.
fn log_size(lab: &Lab, node: &str) -> (usize, usize) {
    let dir = lab.dir.join(node).join("audit");
    let records = read_live(&dir).len();
    let checkpoints = fs::read_to_string(dir.join("checkpoints.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0);
    (records, checkpoints)
}

/// Both nodes' log sizes.
fn both(lab: &Lab) -> [(usize, usize); 2] {
    [log_size(lab, "court"), log_size(lab, "internet")]
}

/// Waits until neither node's audit log has changed for 3 s: what crossed has settled
/// (checkpoints written, the peer's witnessed).
fn settle(lab: &Lab) {
    let mut last = both(lab);
    let mut since = Instant::now();
    wait_until(60, "the audit logs to settle", || {
        let now = both(lab);
        if now != last {
            last = now;
            since = Instant::now();
        }
        since.elapsed() >= Duration::from_secs(3)
    });
}

/// `isogate audit verify` of a node's log: its stdout, after checking it succeeded.
fn verify(lab: &Lab, node: &str) -> String {
    let out = Command::new(BIN)
        .args(["audit", "verify"])
        .arg(lab.dir.join(node).join("audit"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{node}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_idle_lab_writes_no_audit_record_in_30_s() {
    let lab = Lab::new(25300);
    let court = lab.start("court");
    let internet = lab.start("internet");
    for i in 0..3 {
        let text = format!("民事判决书 第{i}号\n").repeat(20);
        lab.publish(
            "court",
            "to-internet",
            &format!("判决书{i}.txt"),
            text.as_bytes(),
        );
        lab.publish(
            "internet",
            "to-court",
            &format!("起诉状{i}.txt"),
            text.as_bytes(),
        );
    }
    wait_until(60, "the files to be confirmed both ways", || {
        events(&lab, "court", "confirmed") == 3 && events(&lab, "internet", "confirmed") == 3
    });
    settle(&lab);
    // each node witnessed the other's checkpoints
    for node in ["court", "internet"] {
        assert!(events(&lab, node, "witnessed") >= 1, "{node}");
    }
    let before = both(&lab);
    std::thread::sleep(Duration::from_secs(30));
    assert_eq!(
        both(&lab),
        before,
        "(records, checkpoints) of court and internet: an idle lab wrote to its audit logs"
    );

    // a new checkpoint of the peer is still witnessed, once
    let witnessed = events(&lab, "internet", "witnessed");
    lab.publish("court", "to-internet", "补充.txt", "补充材料\n".as_bytes());
    wait_until(
        30,
        "the internet to witness the court's new checkpoint",
        || events(&lab, "internet", "witnessed") > witnessed,
    );
    settle(&lab);
    for node in ["court", "internet"] {
        let notes: Vec<_> = lab
            .records(node, "witnessed")
            .into_iter()
            .map(|r| r.detail)
            .collect();
        let mut distinct = notes.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), notes.len(), "{node} witnessed a note twice");
    }

    // a clean stop signs every record, the waiting `witnessed` ones included
    assert!(court.stop().success());
    assert!(internet.stop().success());
    for node in ["court", "internet"] {
        let out = verify(&lab, node);
        assert!(!out.contains("not yet covered"), "{node}: {out}");
    }
}

/// A diode sender sends its latest checkpoint again every few seconds: the receiver
/// witnesses it once.
#[test]
fn an_idle_diode_lab_witnesses_a_repeated_checkpoint_once() {
    let lab = Lab::new_with(25310, &["--link", "diode"]);
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    wait_until(60, "each node to witness the other's checkpoint", || {
        events(&lab, "court", "witnessed") >= 1 && events(&lab, "internet", "witnessed") >= 1
    });
    settle(&lab);
    let before = both(&lab);
    std::thread::sleep(Duration::from_secs(30));
    assert_eq!(
        both(&lab),
        before,
        "an idle diode lab wrote to its audit logs"
    );
}

/// The value of one series in a node's `/metrics`, if it is exported.
fn series(port: u16, name_and_labels: &str) -> Option<f64> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    raw.lines().find_map(|l| {
        l.strip_prefix(name_and_labels)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn the_first_malware_after_a_restart_moves_a_counter_exported_at_0() {
    let clamd = TestClamd::start();
    let lab = Lab::new_with(25320, &["--clamd", &clamd.addr()]);
    let metrics = lab.port_base + 2; // the court's
    let malware = "isogate_refusals_total{channel=\"to-internet\",reason=\"malware\"}";
    let court = lab.start("court");
    let _internet = lab.start("internet");
    wait_until(30, "the court's metrics", || {
        series(metrics, malware).is_some()
    });
    assert!(court.stop().success());
    let _court = lab.start("court");
    wait_until(30, "the court's metrics after its restart", || {
        series(metrics, malware).is_some()
    });
    // exported at 0 before the first event, and the node says what runs
    assert_eq!(series(metrics, malware), Some(0.0));
    let info = format!(
        "isogate_build_info{{node=\"court\",peer=\"internet\",version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(series(metrics, &info), Some(1.0));

    let content = eicar();
    lab.publish("court", "to-internet", "eicar.txt", &content);
    wait_until(60, "the malware refusal", || {
        events(&lab, "court", "refused") == 1
    });
    wait_until(10, "the counter to move", || {
        series(metrics, malware) == Some(1.0)
    });
    // the refusal names the whole file's hash
    let refused = lab.records("court", "refused");
    let hash = hex::encode(ring::digest::digest(&ring::digest::SHA256, &content));
    assert_eq!(refused[0].sha256.as_deref(), Some(hash.as_str()));
    assert_eq!(refused[0].size, Some(content.len() as u64));
}

/// The internet's own copy of the to-internet policy: no `csv`, and one more keyword.
fn stricter_receiver(lab: &Lab) {
    let policy = fs::read_to_string(lab.dir.join("policy/to-internet.toml")).unwrap();
    let stricter = policy.replacen("\"csv\", ", "", 1).replacen(
        "\nkeywords = [",
        "\nkeywords = [\"仅限法院\", ",
        1,
    );
    assert_ne!(stricter, policy);
    fs::write(lab.dir.join("policy/to-internet.receiver.toml"), stricter).unwrap();
    let cfg = lab.config("internet");
    let text = fs::read_to_string(&cfg).unwrap();
    let text = text.replacen(
        "policy = \"policy/to-internet.toml\"",
        "policy = \"policy/to-internet.receiver.toml\"",
        1,
    );
    fs::write(&cfg, text).unwrap();
}

/// The SHA-256 of the records of `event` on `node` about the file `name`.
fn hashes(lab: &Lab, node: &str, event: &str, name: &str) -> Vec<Option<String>> {
    lab.records(node, event)
        .into_iter()
        .filter(|r| r.name.as_deref() == Some(name))
        .map(|r| r.sha256)
        .collect()
}

#[test]
fn refused_records_carry_the_files_sha256_on_both_nodes() {
    let lab = Lab::new(25330);
    stricter_receiver(&lab);
    let court = lab.start("court");
    let _internet = lab.start("internet");

    // refused by the receiver before its content crossed (the name): both nodes refuse it
    let csv = "案号,当事人\n(2026)吉01民初123号,张三\n".as_bytes();
    lab.publish("court", "to-internet", "台账.csv", csv);
    // refused by the receiver's own inspection, after its content crossed
    let text = "本通知仅限法院内部传阅。\n".as_bytes();
    lab.publish("court", "to-internet", "通知.txt", text);
    // refused by the sender's inspection
    let marked = "机密 内部文件\n".as_bytes();
    lab.publish("court", "to-internet", "机要.txt", marked);
    wait_until(60, "the three refusals", || {
        events(&lab, "court", "refused") == 2 && events(&lab, "internet", "quarantined") == 2
    });
    let sha = |b: &[u8]| Some(hex::encode(ring::digest::digest(&ring::digest::SHA256, b)));
    assert_eq!(hashes(&lab, "court", "refused", "台账.csv"), vec![sha(csv)]);
    assert_eq!(
        hashes(&lab, "internet", "quarantined", "台账.csv"),
        vec![sha(csv)]
    );
    assert_eq!(
        hashes(&lab, "internet", "quarantined", "通知.txt"),
        vec![sha(text)]
    );
    wait_until(30, "the court to confirm 通知.txt", || {
        hashes(&lab, "court", "confirmed", "通知.txt") == vec![sha(text)]
    });
    assert_eq!(
        hashes(&lab, "court", "refused", "机要.txt"),
        vec![sha(marked)]
    );
    let reasons: Vec<_> = lab
        .records("court", "refused")
        .into_iter()
        .map(|r| r.reason.map(|r| r.as_str()))
        .collect();
    assert!(reasons.contains(&Some("peer_refused")), "{reasons:?}");
    assert!(
        reasons.contains(&Some("classification_marking")),
        "{reasons:?}"
    );

    // a refused policy file is reported once per content, not at every read
    let file = lab.dir.join("policy/to-internet.toml");
    let good = fs::read_to_string(&file).unwrap();
    let broken = good.replacen("max_length = 255", "max_length = 0", 1);
    assert_ne!(broken, good);
    // every write replaces the file whole (written beside it, then renamed), so that no
    // read of the node's sees it half written: a half-written file is other bytes, and is
    // reported as such
    let replace = |text: &str| {
        let tmp = lab.dir.join("policy/.to-internet.toml.tmp");
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, &file).unwrap();
    };
    replace(&broken);
    wait_until(30, "the policy refusal", || {
        events(&lab, "court", "policy_refused") == 1
    });
    // the same broken bytes, written again and again, and a SIGHUP
    for _ in 0..3 {
        replace(&broken);
        std::thread::sleep(Duration::from_millis(400));
    }
    Command::new("kill")
        .args(["-HUP", &court.pid().to_string()])
        .status()
        .unwrap();
    // fixed (another version): reloaded, after every read of the broken file
    replace(&format!("{good}\n# fixed\n"));
    wait_until(30, "the fixed policy", || {
        events(&lab, "court", "policy_reloaded") == 1
    });
    assert_eq!(events(&lab, "court", "policy_refused"), 1);
    // broken again with the very same bytes: reported again
    replace(&broken);
    wait_until(30, "the second policy refusal", || {
        events(&lab, "court", "policy_refused") == 2
    });
    let said = lab.log("court").matches("policy refused").count();
    assert_eq!(said, 2, "{}", lab.log("court"));
}
