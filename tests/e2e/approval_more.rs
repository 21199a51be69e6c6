//! End to end on the lab, release approval against the paths that once went around it: a
//! diode `isogate resend` passes the approval desk again (an object approved under a rule
//! since replaced waits for the new approvers), and the receiving node never releases from
//! quarantine what its approvals would have to vouch for (`approval_missing`, or any entry
//! of a channel whose policy has `[approval]`).

use crate::common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

fn isogate(args: &[&str]) -> Output {
    std::process::Command::new(BIN)
        .args(args)
        .env("SUDO_USER", "officer")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An approver's key pair from `isogate keygen --approver`: the private key file and the
/// public key's hex digits.
fn approver(lab: &Lab, name: &str) -> (PathBuf, String) {
    let dir = lab.dir.join("approvers");
    let out = isogate(&["keygen", "--approver", name, "--out", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let public = fs::read_to_string(dir.join(format!("{name}.approver.pub")))
        .unwrap()
        .trim()
        .to_string();
    (dir.join(format!("{name}.approver.key")), public)
}

/// `[approval]` requiring the one approver `name` with `key`.
fn section(name: &str, key: &str) -> String {
    format!(
        "\n[approval]\nrequired = 1\nexpire_after = \"72h\"\napprovers = [\n  {{ name = \"{name}\", key = \"{key}\" }},\n]\n"
    )
}

fn append(file: &Path, text: &str) {
    let mut t = fs::read_to_string(file).unwrap();
    t.push_str(text);
    fs::write(file, t).unwrap();
}

/// The ids of the objects waiting for approval on the sending node.
fn pending(lab: &Lab) -> Vec<String> {
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
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn approve(lab: &Lab, id: &str, key: &Path) -> Output {
    isogate(&[
        "approve",
        id,
        "--key",
        key.to_str().unwrap(),
        "--config",
        lab.config("court").to_str().unwrap(),
    ])
}

fn count(lab: &Lab, node: &str, event: &str, id: &str) -> usize {
    lab.records(node, event)
        .iter()
        .filter(|r| r.object_id.as_deref() == Some(id))
        .count()
}

#[test]
fn a_diode_resend_waits_for_the_approvers_of_the_rule_in_force() {
    // one copy, no repeat window: an object retires as soon as its pass is out
    let lab = Lab::new_with(25900, &["--link", "diode"]);
    let cfg = lab.config("court");
    let t = fs::read_to_string(&cfg)
        .unwrap()
        .replace("repeat_window_s = 600", "repeat_window_s = 0");
    fs::write(&cfg, t).unwrap();
    let (zhang, zk) = approver(&lab, "zhang");
    let (li, lk) = approver(&lab, "li");
    let policy = lab.dir.join("policy/to-internet.toml");
    let base = fs::read_to_string(&policy).unwrap();
    append(&policy, &section("zhang", &zk));
    let court = lab.start("court");
    lab.publish("court", "to-internet", "公告.txt", "公告正文\n".as_bytes());
    let mut id = String::new();
    wait_until(30, "the file to wait for approval", || {
        match pending(&lab).first() {
            Some(i) => {
                id = i.clone();
                true
            }
            None => false,
        }
    });
    let out = approve(&lab, &id, &zhang);
    assert!(out.status.success(), "{}", text(&out));
    wait_until(30, "the approved file to retire", || {
        count(&lab, "court", "retired", &id) == 1
    });
    // the administrator restarts the node with another approver
    court.stop();
    fs::write(&policy, format!("{base}{}", section("li", &lk))).unwrap();
    let court = lab.start("court");
    let out = isogate(&["resend", "--config", cfg.to_str().unwrap(), &id]);
    let said = text(&out);
    assert!(!said.contains("queued again"), "{said}");
    assert!(
        said.contains("waiting for its inspection or its approvals"),
        "{said}"
    );
    assert_eq!(count(&lab, "court", "resent", &id), 1);
    // zhang's approval no longer counts: it waits for li
    assert_eq!(pending(&lab), vec![id.clone()]);
    let out = approve(&lab, &id, &li);
    assert!(out.status.success(), "{}", text(&out));
    wait_until(30, "the file approved again to retire again", || {
        count(&lab, "court", "retired", &id) == 2
    });
    assert!(pending(&lab).is_empty());
    court.stop();
}

/// `isogate quarantine release ID` on `node`, asked once the node runs (its state lock
/// held): the command's output.
fn release_on(lab: &Lab, node: &str, id: &str) -> Output {
    let mut out = None;
    wait_until(30, "the node to take quarantine requests", || {
        let o = isogate(&[
            "quarantine",
            "release",
            id,
            "--config",
            lab.config(node).to_str().unwrap(),
        ]);
        let running = !text(&o).contains("is not running");
        out = Some(o);
        running
    });
    out.unwrap()
}

#[test]
fn the_receiver_never_releases_what_approvals_must_vouch_for() {
    let lab = Lab::new(25920);
    let internet = lab.start("internet");
    let q = lab.quarantine("internet", "to-internet");
    fs::create_dir_all(&q).unwrap();
    // entries as the receiving node writes them: the content, sealed with its data key,
    // and its reason file
    let keys =
        isogate::keys::at_rest::DataKeys::load(&lab.dir.join("certs/internet.data.key")).unwrap();
    let entry = |id: &str, reason: &str| {
        let reason: isogate::core::reason::Reason =
            serde_json::from_value(serde_json::json!(reason)).unwrap();
        isogate::node::quarantine::put(
            &q,
            &isogate::node::quarantine::Subject {
                id: isogate::core::id::ObjectId::parse(id).unwrap(),
                channel: "to-internet",
                name: &format!("{id}.txt"),
            },
            Some(isogate::node::quarantine::Held::Bytes(
                "公告正文\n".as_bytes(),
            )),
            "internet",
            isogate::core::reason::Side::Receiver,
            &isogate::core::reason::Refusal::new(reason, "why"),
            Some(&keys),
        )
        .unwrap();
    };
    let release = |id: &str| release_on(&lab, "internet", id);
    let missing = "0123456789abcdef0123456789abcd01";
    entry(missing, "approval_missing");
    let out = release(missing);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("approvals cannot be checked again"),
        "{}",
        text(&out)
    );
    assert_eq!(
        count(&lab, "internet", "quarantine_release_refused", missing),
        1
    );
    assert!(q.join(missing).exists(), "it stays");

    // a content refusal on a channel with [approval]: not released either
    internet.stop();
    let (_, zk) = approver(&lab, "zhang");
    append(
        &lab.dir.join("policy/to-internet.toml"),
        &section("zhang", &zk),
    );
    let internet = lab.start("internet");
    let content = "0123456789abcdef0123456789abcd02";
    entry(content, "keyword_match");
    let out = release(content);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("channel to-internet requires release approvals"),
        "{}",
        text(&out)
    );
    assert_eq!(
        count(&lab, "internet", "quarantine_release_refused", content),
        1
    );
    assert!(q.join(content).exists(), "it stays");
    assert!(visible(&lab.inbox("internet", "to-internet")).is_empty());
    assert!(lab.records("internet", "landed").is_empty());
    internet.stop();
}

/// A batch of a messages channel the receiving node refused is not released: it would land
/// as a file in the inbox, beside the message log, where no reader of the channel sees it
/// (and the audit would say `landed`).
#[test]
fn the_receiver_never_releases_a_batch_of_messages_as_a_file() {
    let lab = Lab::new(26740);
    let internet = lab.start("internet");
    let q = lab.quarantine("internet", "notices");
    fs::create_dir_all(&q).unwrap();
    let keys =
        isogate::keys::at_rest::DataKeys::load(&lab.dir.join("certs/internet.data.key")).unwrap();
    let id = "0123456789abcdef0123456789abcd03";
    isogate::node::quarantine::put(
        &q,
        &isogate::node::quarantine::Subject {
            id: isogate::core::id::ObjectId::parse(id).unwrap(),
            channel: "notices",
            name: &format!("{id}.ndjson"),
        },
        Some(isogate::node::quarantine::Held::Bytes(
            b"{\"id\":\"0123456789abcdef0123456789abcd04\",\"body\":{\"type\":\"status\"}}\n",
        )),
        "internet",
        isogate::core::reason::Side::Receiver,
        &isogate::core::reason::Refusal::new(
            isogate::core::reason::Reason::SchemaViolation,
            "message 0123456789abcdef0123456789abcd04: /case: required",
        ),
        Some(&keys),
    )
    .unwrap();
    let out = release_on(&lab, "internet", id);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("channel notices carries messages"),
        "{}",
        text(&out)
    );
    assert_eq!(count(&lab, "internet", "quarantine_release_refused", id), 1);
    assert!(q.join(id).exists(), "it stays");
    assert!(
        !visible(&lab.inbox("internet", "notices"))
            .iter()
            .any(|n| n.contains(".ndjson")),
        "no batch file in the inbox"
    );
    assert!(lab.records("internet", "landed").is_empty());
    internet.stop();
}
