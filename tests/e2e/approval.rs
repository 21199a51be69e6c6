//! End to end on the lab: release approval by several officers (`[approval]` in the channel
//! policies of both nodes, keys from `isogate keygen --approver`). On quic and on the diode:
//! a file waits, one approval leaves it waiting, the second releases it and it lands after
//! the receiver audits both approvals; `audit prove` covers them on both nodes. A rejected
//! file is quarantined on the sender and never crosses; an expired one is quarantined as
//! `approval_expired`; requests signed by an unknown key or a non-approver change nothing
//! and are audited. The receiver refuses forged and missing approvals with its own pinned
//! list. Approvals survive kill -9 of the sender. On the diode, a released object stays
//! released across a restart under a stricter policy (it never comes back to the desk); a
//! decision handed over while the node is stopped is served once the node has its objects
//! back; `[approval]` removed by a restart lets a waiting object go, audited `approval_waived`.

use crate::common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// The court node's metrics (Prometheus text at port base + 2).
fn metrics(lab: &Lab) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", lab.port_base + 2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    raw
}

/// The value of one sample (`name{labels}`) in Prometheus text, 0 if absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn isogate(args: &[&str]) -> Output {
    std::process::Command::new(BIN).args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Makes an approver's key pair with `isogate keygen --approver`; returns the private key
/// file and the public key's hex digits.
fn approver(lab: &Lab, dir: &str, name: &str) -> (PathBuf, String) {
    approver_of(lab, dir, name, "default")
}

/// [`approver`] of `suite` (`isogate keygen --approver NAME --suite SUITE`).
fn approver_of(lab: &Lab, dir: &str, name: &str, suite: &str) -> (PathBuf, String) {
    let out_dir = lab.dir.join(dir);
    let out = isogate(&[
        "keygen",
        "--approver",
        name,
        "--suite",
        suite,
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("[approval]"), "{}", text(&out));
    let public = fs::read_to_string(out_dir.join(format!("{name}.approver.pub")))
        .unwrap()
        .trim()
        .to_string();
    (out_dir.join(format!("{name}.approver.key")), public)
}

/// The `[approval]` section for `approvers` (name, public key).
fn section(required: usize, expire: &str, approvers: &[(&str, &str)]) -> String {
    let mut s = format!(
        "\n[approval]\nrequired = {required}\nexpire_after = \"{expire}\"\napprovers = [\n"
    );
    for (name, key) in approvers {
        s.push_str(&format!("  {{ name = \"{name}\", key = \"{key}\" }},\n"));
    }
    s.push_str("]\n");
    s
}

/// Gives the receiving node its own copy of the outbound policy (so the two can differ);
/// returns the sender's and the receiver's policy files.
fn own_policies(lab: &Lab) -> (PathBuf, PathBuf) {
    let policy = lab.dir.join("policy");
    let sender = policy.join("to-internet.toml");
    let own = policy.join("internet-own.toml");
    fs::copy(&sender, &own).unwrap();
    let config = lab.config("internet");
    let cfg = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        cfg.replace("policy/to-internet.toml", "policy/internet-own.toml"),
    )
    .unwrap();
    (sender, own)
}

fn append(file: &Path, text: &str) {
    let mut t = fs::read_to_string(file).unwrap();
    t.push_str(text);
    fs::write(file, t).unwrap();
}

/// `isogate approve|reject ID --key KEY --config court.toml`.
fn decide(lab: &Lab, what: &str, id: &str, key: &Path, note: &str) -> Output {
    isogate(&[
        what,
        id,
        "--key",
        key.to_str().unwrap(),
        "--config",
        lab.config("court").to_str().unwrap(),
        "--note",
        note,
    ])
}

/// The objects `approvals list --format json` shows on the sending node.
fn pending(lab: &Lab) -> Vec<serde_json::Value> {
    let out = isogate(&[
        "approvals",
        "list",
        "--format",
        "json",
        "--config",
        lab.config("court").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Publishes a file and waits until it waits for approval; returns its object id.
fn publish_pending(lab: &Lab, name: &str) -> String {
    lab.publish(
        "court",
        "to-internet",
        name,
        format!("{name}: 判决书正文\n").as_bytes(),
    );
    let mut id = String::new();
    wait_until(30, "the file to wait for approval", || {
        match pending(lab).iter().find(|v| v["name"] == name) {
            Some(v) => {
                id = v["id"].as_str().unwrap().to_string();
                true
            }
            None => false,
        }
    });
    id
}

fn records_of(lab: &Lab, node: &str, event: &str, id: &str) -> Vec<isogate::audit::Record> {
    lab.records(node, event)
        .into_iter()
        .filter(|r| r.object_id.as_deref() == Some(id))
        .collect()
}

/// The events of the records `audit prove` of an object on a node includes.
fn proved_events(lab: &Lab, node: &str, id: &str) -> Vec<String> {
    let out = lab.dir.join(format!("proof-{node}-{id}.json"));
    let o = isogate(&[
        "audit",
        "prove",
        lab.dir.join(node).join("audit").to_str().unwrap(),
        id,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let proof: serde_json::Value = serde_json::from_slice(&fs::read(out).unwrap()).unwrap();
    proof["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let r: serde_json::Value = serde_json::from_str(e["record"].as_str().unwrap()).unwrap();
            r["event"].as_str().unwrap().to_string()
        })
        .collect()
}

/// The records of a refusal with `reason` on a node, on either side (`refused` on the
/// sender, `quarantined` on the receiver).
fn refusals(lab: &Lab, node: &str, reason: &str) -> Vec<isogate::audit::Record> {
    let mut v = lab.records(node, "refused");
    v.extend(lab.records(node, "quarantined"));
    v.retain(|r| r.reason.map(|x| x.as_str()) == Some(reason));
    v
}

/// Two approvals release a file; returns its id. The first leaves it waiting.
fn two_approvals_release(lab: &Lab, zhang: &Path, li: &Path, name: &str) -> String {
    let id = publish_pending(lab, name);
    assert_eq!(records_of(lab, "court", "approval_pending", &id).len(), 1);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        visible(&lab.inbox("internet", "to-internet")).is_empty(),
        "nothing crosses before its approvals"
    );
    let out = decide(lab, "approve", &id, zhang, "checked");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("1 of 2"), "{}", text(&out));
    // the same approver twice: refused by the command (the view shows the approval)
    let again = decide(lab, "approve", &id, zhang, "again");
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(text(&again).contains("already"), "{}", text(&again));
    std::thread::sleep(Duration::from_secs(2));
    assert!(visible(&lab.inbox("internet", "to-internet")).is_empty());
    let v = pending(lab);
    let v = v.iter().find(|v| v["id"] == id.as_str()).unwrap();
    assert_eq!(v["approvals"].as_array().unwrap().len(), 1);
    assert_eq!(v["approvals"][0]["approver"], "zhang");
    let out = decide(lab, "approve", &id, li, "ok");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("released"), "{}", text(&out));
    wait_until(30, "the approved file to land", || {
        visible(&lab.inbox("internet", "to-internet")).contains(&name.to_string())
    });
    assert!(pending(lab).iter().all(|v| v["id"] != id.as_str()));
    // the receiver audits both approvals, verified with its own pinned list, before landed
    let approved = records_of(lab, "internet", "approved", &id);
    let landed = records_of(lab, "internet", "landed", &id);
    assert_eq!(approved.len(), 2, "{approved:?}");
    assert_eq!(landed.len(), 1);
    assert!(approved.iter().all(|a| a.seq < landed[0].seq));
    assert_eq!(records_of(lab, "court", "approved", &id).len(), 2);
    id
}

/// A lab whose outbound channel needs two approvals, by zhang and li (li at `li_level`,
/// zhang at level 1); returns their key files.
fn approval_lab(port_base: u16, extra: &[&str], li_level: u8) -> (Lab, PathBuf, PathBuf) {
    let lab = Lab::new_with(port_base, extra);
    let (zhang, zk) = approver(&lab, "approvers", "zhang");
    let (li, lk) = approver(&lab, "approvers", "li");
    let mut s = section(2, "72h", &[("zhang", &zk), ("li", &lk)]);
    if li_level != 1 {
        s = s.replace(
            &format!("key = \"{lk}\" }}"),
            &format!("key = \"{lk}\", level = {li_level} }}"),
        );
    }
    append(&lab.dir.join("policy/to-internet.toml"), &s);
    (lab, zhang, li)
}

/// Hands the running sending node a decision signed with `key_file`, as a request file
/// made by hand (not through `isogate approve`, which refuses some before asking), and
/// waits for its answer.
fn hand_made(
    lab: &Lab,
    id: &str,
    key_file: &Path,
    decision: isogate::core::approval::Decision,
) -> isogate::node::approvals::DecisionAnswer {
    let digest = pending(lab).iter().find(|v| v["id"] == id).unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let key = isogate::keys::SigningKey::load(key_file).unwrap();
    let mut d = [0u8; 32];
    hex::decode_to_slice(&digest, &mut d).unwrap();
    let req = isogate::node::approvals::DecisionRequest {
        id: id.to_string(),
        decision: decision.as_str().into(),
        digest,
        key: key.verify_key().to_hex(),
        signature: hex::encode(isogate::core::approval::try_sign(&key, decision, &d).unwrap()),
        note: "by hand".into(),
        via: "cli".into(),
    };
    let p = isogate::node::approvals::submit(&lab.dir.join("court/state"), &req).unwrap();
    isogate::node::approvals::await_answer(&p, Duration::from_secs(10))
        .unwrap()
        .expect("an answer")
}

#[test]
fn two_approvals_release_a_file_over_quic_and_a_rejection_quarantines() {
    let (lab, zhang, li) = approval_lab(25700, &[], 1);
    let check = common::check(&lab.config("court"), &[]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(
        text(&check).contains("approver    zhang level 1"),
        "{}",
        text(&check)
    );
    let court = lab.start("court");
    let internet = lab.start("internet");
    let id = two_approvals_release(&lab, &zhang, &li, "判决书-1.txt");

    // a request signed by an unknown key, and a rejection by a non-approver: nothing changes
    let other = publish_pending(&lab, "判决书-2.txt");
    let (stranger, _) = approver(&lab, "strangers", "zhang");
    let out = decide(&lab, "approve", &other, &stranger, "me");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not an approver"), "{}", text(&out));
    // the command refuses before asking; a hand-made request reaches the node
    for decision in [
        isogate::core::approval::Decision::Approve,
        isogate::core::approval::Decision::Reject,
    ] {
        let a = hand_made(&lab, &other, &stranger, decision);
        assert!(!a.taken, "{a:?}");
        assert!(a.message.contains("not a pinned approver"), "{a:?}");
    }
    assert_eq!(
        records_of(&lab, "court", "approval_request_refused", &other).len(),
        2
    );
    assert!(records_of(&lab, "court", "approved", &other).is_empty());
    assert!(pending(&lab).iter().any(|v| v["id"] == other.as_str()));
    let m = metrics(&lab);
    assert_eq!(
        sample(&m, "isogate_approval_pending{channel=\"to-internet\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "isogate_approval_decisions_total{channel=\"to-internet\",decision=\"approve\"}"
        ),
        2.0
    );
    assert_eq!(
        sample(
            &m,
            "isogate_approval_decisions_total{channel=\"to-internet\",decision=\"refused\"}"
        ),
        2.0
    );

    // a pinned approver rejects it: quarantined on the sender, never crosses
    let out = decide(&lab, "reject", &other, &li, "personal data in the annex");
    assert!(out.status.success(), "{}", text(&out));
    wait_until(10, "the rejected file refused", || {
        refusals(&lab, "court", "approval_rejected").len() == 1
    });
    assert_eq!(
        reasons(&lab.quarantine("court", "to-internet")),
        vec!["approval_rejected".to_string()]
    );
    let rejected = records_of(&lab, "court", "approval_rejected", &other);
    assert_eq!(rejected.len(), 1);
    assert!(
        rejected[0].detail.as_deref().unwrap_or("").contains("li"),
        "{rejected:?}"
    );
    assert!(pending(&lab).is_empty());
    // approving it now: not pending, and the command says why
    let out = decide(&lab, "approve", &other, &zhang, "late");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("rejected"), "{}", text(&out));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        visible(&lab.inbox("internet", "to-internet")),
        vec!["判决书-1.txt".to_string()]
    );
    assert!(records_of(&lab, "internet", "landed", &other).is_empty());
    let waiting = publish_pending(&lab, "判决书-3.txt");

    court.stop();
    internet.stop();
    // the logs reconcile: the rejected object was never sent, the waiting one is listed apart
    let audit = |n: &str| lab.dir.join(n).join("audit").to_str().unwrap().to_string();
    let out = isogate(&["audit", "reconcile", &audit("court"), &audit("internet")]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("sent but never landed or quarantined: 0")
            && text(&out).contains("waiting for approval on the sender (not expected yet): 1")
            && text(&out).contains(&waiting),
        "{}",
        text(&out)
    );
    for node in ["court", "internet"] {
        let events = proved_events(&lab, node, &id);
        assert_eq!(
            events.iter().filter(|e| *e == "approved").count(),
            2,
            "{node}: {events:?}"
        );
    }
}

#[test]
fn two_approvals_release_a_file_over_the_diode_and_an_expired_one_is_quarantined() {
    let (lab, zhang, li) = approval_lab(25710, &["--link", "diode"], 1);
    let court = lab.start("court");
    let internet = lab.start("internet");
    let id = two_approvals_release(&lab, &zhang, &li, "公告-1.txt");

    // expire_after = 5s: a reload cannot change [approval], a restart does
    let policy = lab.dir.join("policy/to-internet.toml");
    let t = fs::read_to_string(&policy).unwrap();
    fs::write(
        &policy,
        t.replace("expire_after = \"72h\"", "expire_after = \"5s\""),
    )
    .unwrap();
    wait_until(10, "the reload refused", || {
        lab.records("court", "policy_refused").iter().any(|r| {
            r.detail
                .as_deref()
                .is_some_and(|d| d.contains("[approval] section changed"))
        })
    });
    assert_eq!(events(&lab, "court", "policy_reloaded"), 0);
    court.stop();
    let court = lab.start("court");
    let late = publish_pending(&lab, "公告-2.txt");
    let out = decide(&lab, "approve", &late, &zhang, "one of two");
    assert!(out.status.success(), "{}", text(&out));
    wait_until(20, "the expired file refused", || {
        refusals(&lab, "court", "approval_expired").len() == 1
    });
    assert_eq!(
        reasons(&lab.quarantine("court", "to-internet")),
        vec!["approval_expired".to_string()]
    );
    let refused = refusals(&lab, "court", "approval_expired");
    assert_eq!(refused[0].object_id.as_deref(), Some(late.as_str()));
    let detail = refused[0].detail.clone().unwrap_or_default();
    assert!(
        detail.contains("1 of 2") && detail.contains("zhang"),
        "{detail}"
    );
    assert!(pending(&lab).is_empty());
    std::thread::sleep(Duration::from_secs(1));
    assert!(records_of(&lab, "internet", "landed", &late).is_empty());

    court.stop();
    internet.stop();
    for node in ["court", "internet"] {
        let events = proved_events(&lab, node, &id);
        assert_eq!(
            events.iter().filter(|e| *e == "approved").count(),
            2,
            "{node}: {events:?}"
        );
    }
}

#[test]
fn on_the_national_suite_two_sm2_approvals_release_a_file() {
    let lab = Lab::new_with(27820, &["--suite", "gm"]);
    let policy = lab.dir.join("policy/to-internet.toml");
    let before = fs::read_to_string(&policy).unwrap();
    // an Ed25519 approver on a gm pair: neither node's configuration loads
    let (_, wang) = approver(&lab, "approvers", "wang");
    append(&policy, &section(1, "72h", &[("wang", &wang)]));
    for node in ["court", "internet"] {
        let out = check(&lab.config(node), &[]);
        assert!(!out.status.success());
        let said = text(&out);
        assert!(said.contains("to-internet.toml"), "{said}");
        assert!(said.contains("approval.approvers"), "{said}");
        assert!(
            said.contains("approver \"wang\" is pinned with an Ed25519 key, but this pair runs the gm suite, whose approvals are signed with SM2: make the approver's key with `isogate keygen --approver wang --suite gm`"),
            "{said}"
        );
    }
    // SM2 approvers, signing with `isogate approve`
    let (zhang, zk) = approver_of(&lab, "approvers", "zhang", "gm");
    let (li, lk) = approver_of(&lab, "approvers", "li", "gm");
    assert_eq!(zk.len(), 130, "an SM2 public key: {zk}");
    fs::write(
        &policy,
        format!(
            "{before}{}",
            section(2, "72h", &[("zhang", &zk), ("li", &lk)])
        ),
    )
    .unwrap();
    for node in ["court", "internet"] {
        let out = check(&lab.config(node), &[]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    // the receiver verifies both SM2 approvals with its own pinned keys before it lands
    // the file (two_approvals_release checks the records and their order)
    two_approvals_release(&lab, &zhang, &li, "判决书-gm.txt");
}

#[test]
fn the_receiver_refuses_forged_and_missing_approvals() {
    let lab = Lab::new(25720);
    let (zhang, zk) = approver(&lab, "approvers", "zhang");
    // the receiver pins another key under the same name
    let (_, other) = approver(&lab, "impostor", "zhang");
    let (sender, own) = own_policies(&lab);
    append(&sender, &section(1, "72h", &[("zhang", &zk)]));
    append(&own, &section(1, "72h", &[("zhang", &other)]));
    let court = lab.start("court");
    let internet = lab.start("internet");
    let forged = publish_pending(&lab, "forged.txt");
    let out = decide(&lab, "approve", &forged, &zhang, "ok");
    assert!(out.status.success(), "{}", text(&out));
    wait_until(30, "the receiver's refusal", || {
        refusals(&lab, "internet", "approval_missing").len() == 1
    });
    let r = &refusals(&lab, "internet", "approval_missing")[0];
    assert_eq!(r.object_id.as_deref(), Some(forged.as_str()));

    // the sender restarted without [approval]: the object leaves with none; the receiver
    // refuses it
    court.stop();
    let t = fs::read_to_string(&sender).unwrap();
    let cut = t.find("\n[approval]").unwrap();
    fs::write(&sender, &t[..cut]).unwrap();
    let court = lab.start("court");
    lab.publish("court", "to-internet", "missing.txt", "无审批\n".as_bytes());
    wait_until(30, "the receiver's second refusal", || {
        refusals(&lab, "internet", "approval_missing").len() == 2
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(visible(&lab.inbox("internet", "to-internet")).is_empty());
    assert!(lab.records("internet", "landed").is_empty());
    court.stop();
    internet.stop();
}

#[test]
fn approvals_survive_kill_9_of_the_sender_and_levels_sign_in_order() {
    // li is the security office (level 2): signs after the department (zhang, level 1)
    let (lab, zhang, li) = approval_lab(25730, &[], 2);
    let court = lab.start("court");
    let internet = lab.start("internet");
    let id = publish_pending(&lab, "kill.txt");
    let out = decide(&lab, "approve", &id, &li, "too early");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("level 1 approves first"),
        "{}",
        text(&out)
    );
    let a = hand_made(&lab, &id, &li, isogate::core::approval::Decision::Approve);
    assert!(
        !a.taken && a.message.contains("level 1 approves first"),
        "{a:?}"
    );
    // a refusal says what the object has and needs
    assert_eq!((a.approved, a.required), (0, 2), "{a:?}");
    assert_eq!(
        records_of(&lab, "court", "approval_request_refused", &id).len(),
        1
    );
    let out = decide(&lab, "approve", &id, &zhang, "first");
    assert!(out.status.success(), "{}", text(&out));
    court.kill9();
    let court = lab.start("court");
    // judged again by the restarted node: waits, with the approval it had
    wait_until(30, "the restarted node to hold the object again", || {
        lab.log("court").matches("waits for approval").count() == 2
    });
    wait_until(30, "the object pending again with its approval", || {
        pending(&lab).iter().any(|v| {
            v["id"] == id.as_str() && v["approvals"].as_array().map(|a| a.len()) == Some(1)
        })
    });
    let out = decide(&lab, "approve", &id, &li, "second");
    assert!(out.status.success(), "{}", text(&out));
    wait_until(30, "the file to land", || {
        visible(&lab.inbox("internet", "to-internet")) == vec!["kill.txt".to_string()]
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        visible(&lab.inbox("internet", "to-internet")),
        vec!["kill.txt".to_string()],
        "landed exactly once"
    );
    assert_eq!(records_of(&lab, "internet", "landed", &id).len(), 1);
    assert_eq!(records_of(&lab, "court", "approval_pending", &id).len(), 1);
    assert_eq!(records_of(&lab, "internet", "approved", &id).len(), 2);
    court.stop();
    internet.stop();
}

#[test]
fn on_the_diode_a_released_object_stays_released_and_a_removed_rule_is_audited_as_waived() {
    let (lab, zhang, li) = approval_lab(25740, &["--link", "diode"], 1);
    let court = lab.start("court");
    let internet = lab.start("internet");
    let id = publish_pending(&lab, "公告-重启.txt");
    let out = decide(&lab, "approve", &id, &zhang, "first");
    assert!(out.status.success(), "{}", text(&out));
    // the second approval is handed over while the node is stopped: served once the node
    // has its objects back on the desk, not refused as "not waiting"
    court.stop();
    let digest = pending(&lab)
        .iter()
        .find(|v| v["id"] == id.as_str())
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let key = isogate::keys::SigningKey::load(&li).unwrap();
    let mut d = [0u8; 32];
    hex::decode_to_slice(&digest, &mut d).unwrap();
    let approve = isogate::core::approval::Decision::Approve;
    let req = isogate::node::approvals::DecisionRequest {
        id: id.clone(),
        decision: approve.as_str().into(),
        digest,
        key: key.verify_key().to_hex(),
        signature: hex::encode(isogate::core::approval::try_sign(&key, approve, &d).unwrap()),
        note: "while stopped".into(),
        via: "cli".into(),
    };
    let p = isogate::node::approvals::submit(&lab.dir.join("court/state"), &req).unwrap();
    let court = lab.start("court");
    let a = isogate::node::approvals::await_answer(&p, Duration::from_secs(30))
        .unwrap()
        .expect("an answer");
    assert!(a.taken && a.done, "{a:?}");
    wait_until(30, "the approved file to land", || {
        visible(&lab.inbox("internet", "to-internet")).contains(&"公告-重启.txt".to_string())
    });

    // a stricter policy, and a restart while the object is in its repeat window: it went,
    // approved; it never comes back to the desk
    let (_, wk) = approver(&lab, "approvers", "wang");
    let policy = lab.dir.join("policy/to-internet.toml");
    let t = fs::read_to_string(&policy).unwrap();
    let cut = t.find("\n[approval]").unwrap();
    let stricter = format!(
        "{}{}",
        &t[..cut],
        section(
            3,
            "72h",
            &[
                ("zhang", &approver_key(&lab, "zhang")),
                ("li", &approver_key(&lab, "li")),
                ("wang", &wk)
            ]
        )
    );
    court.stop();
    fs::write(&policy, &stricter).unwrap();
    let court = lab.start("court");
    let next = publish_pending(&lab, "公告-之后.txt");
    std::thread::sleep(Duration::from_secs(2));
    let ids: Vec<String> = pending(&lab)
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        vec![next.clone()],
        "the released object is not pending"
    );
    assert_eq!(records_of(&lab, "court", "approval_pending", &id).len(), 1);
    // the view names the rule in force
    let v = pending(&lab);
    assert_eq!(v[0]["required"], 3);
    assert_eq!(v[0]["approvers"].as_array().unwrap().len(), 3);

    // [approval] removed, and both nodes restarted (a reload never changes [approval]; in
    // the lab they read the same policy file): the waiting object goes on, and its trail
    // says so
    court.stop();
    internet.stop();
    fs::write(&policy, &t[..cut]).unwrap();
    // the receiver listens before the sender starts: a diode sender's first datagrams to
    // a port not yet bound are gone, and its next pass is a repeat window away
    let up = || lab.log("internet").matches("diode receiver up").count();
    let before = up();
    let internet = lab.start("internet");
    wait_until(30, "the internet node to listen", || up() > before);
    let court = lab.start("court");
    wait_until(30, "the waived file to land", || {
        visible(&lab.inbox("internet", "to-internet")).contains(&"公告-之后.txt".to_string())
    });
    let waived = records_of(&lab, "court", "approval_waived", &next);
    assert_eq!(waived.len(), 1, "{waived:?}");
    let detail = waived[0].detail.clone().unwrap_or_default();
    assert!(
        detail.contains("[approval] removed from policy") && detail.contains("0 of 3"),
        "{detail}"
    );
    // on the diode the file may land from its source symbols before the last repair
    // symbol leaves and `sent` is recorded
    let mut sent = Vec::new();
    wait_until(30, "the waived file recorded sent", || {
        sent = records_of(&lab, "court", "sent", &next);
        !sent.is_empty()
    });
    assert!(waived[0].seq < sent[0].seq);
    court.stop();
    internet.stop();
}

/// The public key (hex) of an approver made by [`approver`] in `approvers/`.
fn approver_key(lab: &Lab, name: &str) -> String {
    fs::read_to_string(lab.dir.join(format!("approvers/{name}.approver.pub")))
        .unwrap()
        .trim()
        .to_string()
}
