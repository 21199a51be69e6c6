//! End to end on the lab: the security officer's quarantine commands. A file refused by a
//! rule is listed with its reason; released under the same policy it is refused again;
//! after the policy is changed it crosses and lands, and the release is audited with the
//! user and uid on a log that still verifies; entries that are not plain files or failed
//! an integrity check are never released; a purge by age removes only old entries and is
//! audited, as is the node's own ageing out (`[quarantine] keep_days`). Quarantined copies
//! are sealed at rest with the node's data key (rotated by SIGHUP); a changed one is never
//! released.

use crate::common;

use common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;

/// Runs `isogate quarantine ARGS --config <node's config>` as the user `officer`.
fn quarantine(lab: &Lab, node: &str, args: &[&str]) -> Output {
    std::process::Command::new(BIN)
        .arg("quarantine")
        .args(args)
        .arg("--config")
        .arg(lab.config(node))
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

/// The entries `quarantine list --format json` prints.
fn listed(lab: &Lab, node: &str) -> Vec<serde_json::Value> {
    let out = quarantine(lab, node, &["list", "--format", "json", "--tz", "UTC"]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The listing once `n` entries are listed, each with its content in: a refusal writes
/// the reason file (which lists the entry) before it moves the content in.
fn listed_whole(lab: &Lab, node: &str, n: usize) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    wait_until(30, &format!("{n} refusals on {node}, content in"), || {
        all = listed(lab, node);
        all.len() == n && all.iter().all(|e| e["kind"] != "none")
    });
    all
}

fn entry<'a>(entries: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    entries
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed in {entries:?}"))
}

fn id_of(v: &serde_json::Value) -> String {
    v["object_id"].as_str().unwrap().to_string()
}

/// The uid that owns files this test writes: the one the node reads from a request file.
fn own_uid(dir: &Path) -> u32 {
    fs::metadata(dir).unwrap().uid()
}

fn verify(lab: &Lab, node: &str) {
    let out = std::process::Command::new(BIN)
        .args(["audit", "verify"])
        .arg(lab.dir.join(node).join("audit"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{node}: {}", text(&out));
}

#[test]
fn a_false_positive_is_released_through_the_full_policy_and_audited() {
    let lab = Lab::new(25200);
    let court = lab.start("court");
    let internet = lab.start("internet");
    lab.publish(
        "court",
        "to-internet",
        "内部.txt",
        "本材料为内部资料\n".as_bytes(),
    );
    let outbox = lab.outbox("court", "to-internet");
    std::os::unix::fs::symlink("/etc/hostname", outbox.join("link.txt")).unwrap();
    // listed with its reason
    let all = listed_whole(&lab, "court", 2);
    let refused = entry(&all, "内部.txt");
    assert_eq!(refused["reason"], "keyword_match");
    assert_eq!(refused["side"], "sender");
    assert_eq!(refused["kind"], "file");
    assert_eq!(refused["releasable"], true);
    assert!(refused["detail"].as_str().unwrap().contains("内部资料"));
    let old = id_of(refused);
    let out = quarantine(&lab, "court", &["list", "--reason", "keyword_match"]);
    let table = text(&out);
    assert!(
        table.contains(&old) && table.contains("(1 entry)"),
        "{table}"
    );
    let out = quarantine(&lab, "court", &["show", &old, "--tz", "Asia/Shanghai"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("+08:00") && text(&out).contains("refused"));

    // never released: a symlink, and an entry refused for an integrity reason
    let link = id_of(entry(&all, "link.txt"));
    let out = quarantine(&lab, "court", &["release", &link]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not releasable: it is a symlink"));
    let bad = "0123456789abcdef0123456789abcdef";
    let q = lab.quarantine("internet", "to-internet");
    put_by_hand(
        &q,
        bad,
        b"not what was signed",
        ("x.txt", "internet", "receiver"),
        ("content_hash", "SHA-256 differs"),
    );
    let out = quarantine(&lab, "internet", &["release", bad]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("integrity reason (content_hash)"));
    let asked = lab.records("internet", "quarantine_release_refused");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].object_id.as_deref(), Some(bad));
    assert!(
        asked[0]
            .detail
            .as_deref()
            .unwrap_or_default()
            .starts_with("by officer (uid ")
    );
    let out = quarantine(
        &lab,
        "court",
        &["release", "fedcba9876543210fedcba9876543210"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("no such quarantine entry"));
    // asked all the same: on record, with who asked
    let asked: Vec<_> = lab
        .records("court", "quarantine_release_refused")
        .into_iter()
        .filter(|r| r.object_id.as_deref() == Some("fedcba9876543210fedcba9876543210"))
        .collect();
    assert_eq!(asked.len(), 1, "{asked:?}");
    let detail = asked[0].detail.as_deref().unwrap_or_default();
    assert!(
        detail.starts_with("by officer (uid ")
            && detail.contains("failed: ")
            && detail.contains("no such quarantine entry on court"),
        "{detail}"
    );

    // the same policy refuses it again: a fresh entry, the old one gone
    let out = quarantine(&lab, "court", &["release", &old]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("refused again"), "{}", text(&out));
    let all = listed(&lab, "court");
    let again = id_of(entry(&all, "内部.txt"));
    assert_ne!(again, old);

    // the rule is dropped on both nodes (the same policy file): now it crosses
    drop_keyword_rule(&lab);
    let out = quarantine(
        &lab,
        "court",
        &["release", &again, "--note", "false positive"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let inbox = lab.inbox("internet", "to-internet");
    wait_until(30, "the released file to land", || {
        inbox.join("内部.txt").exists()
    });
    assert_eq!(
        fs::read(inbox.join("内部.txt")).unwrap(),
        "本材料为内部资料\n".as_bytes()
    );
    assert!(
        listed(&lab, "court")
            .iter()
            .all(|e| e["name"] != "内部.txt")
    );

    // audited with who did it: the stated user and the uid that owns the request
    let uid = own_uid(&lab.dir);
    let released = lab.records("court", "quarantine_released");
    assert_eq!(released.len(), 2);
    let last = released.last().unwrap();
    assert_eq!(last.object_id.as_deref(), Some(again.as_str()));
    assert_eq!(
        last.detail.as_deref().unwrap_or_default(),
        format!(
            "by officer (uid {uid}); note: \"false positive\"; taken again into the spool, inspected with the policy in force"
        )
    );
    let taken = lab.records("court", "taken");
    let new = taken
        .iter()
        .find(|r| {
            r.detail
                .as_deref()
                .is_some_and(|d| d.starts_with(&format!("released from quarantine entry {again}")))
        })
        .expect("the new object's taken record names the old id");
    let landed = lab.records("internet", "landed");
    assert!(landed.iter().any(|r| r.object_id == new.object_id));
    let out = quarantine(&lab, "court", &["show", &again]);
    assert!(
        text(&out).contains("no longer in the quarantine"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("quarantine_released"));

    court.stop();
    internet.stop();
    verify(&lab, "court");
    verify(&lab, "internet");
    let out = std::process::Command::new(BIN)
        .args(["audit", "prove"])
        .arg(lab.dir.join("court").join("audit"))
        .arg(&again)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // only the running node changes its quarantine
    let out = quarantine(&lab, "court", &["release", &link]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("is not running"), "{}", text(&out));
    assert!(
        fs::read_dir(lab.dir.join("court/state/quarantine-requests"))
            .map(|d| d.count() == 0)
            .unwrap_or(true),
        "no request is left behind"
    );
}

#[test]
fn the_receiver_releases_with_its_own_policy_in_force() {
    let lab = Lab::new(25220);
    // the receiver's own copy of the policy refuses a word the sender's does not
    let policy = lab.dir.join("policy");
    let text_of = fs::read_to_string(policy.join("to-internet.toml")).unwrap();
    let own = policy.join("internet-own.toml");
    fs::write(
        &own,
        text_of.replace("keywords = [", "keywords = [\"蓝色\", "),
    )
    .unwrap();
    let config = lab.config("internet");
    let cfg = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        cfg.replace("policy/to-internet.toml", "policy/internet-own.toml"),
    )
    .unwrap();
    let court = lab.start("court");
    let internet = lab.start("internet");
    lab.publish("court", "to-internet", "blue.txt", "蓝色的天\n".as_bytes());
    let all = listed_whole(&lab, "internet", 1);
    let e = entry(&all, "blue.txt");
    assert_eq!(
        (e["side"].as_str(), e["reason"].as_str()),
        (Some("receiver"), Some("keyword_match"))
    );
    let id = id_of(e);
    // a changed stored copy never opens: the release fails, on record, and the copy stays
    let q = lab.quarantine("internet", "to-internet");
    let stored = fs::read(q.join(&id)).unwrap();
    let mut changed = stored.clone();
    changed[48 + 1] ^= 1;
    fs::write(q.join(&id), &changed).unwrap();
    let out = quarantine(&lab, "internet", &["release", &id]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("stored chunk 0"), "{}", text(&out));
    let failed = lab.records("internet", "quarantine_release_refused");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].object_id.as_deref(), Some(id.as_str()));
    let detail = failed[0].detail.as_deref().unwrap_or_default();
    assert!(
        detail.starts_with("by officer (uid ")
            && detail.contains("; failed: ")
            && detail.contains("stored chunk 0")
            && detail.ends_with("the entry stays in quarantine"),
        "{detail}"
    );
    assert!(lab.records("internet", "quarantine_released").is_empty());
    fs::write(q.join(&id), &stored).unwrap();
    let out = quarantine(&lab, "internet", &["release", &id]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("stays in quarantine"));
    fs::write(&own, &text_of).unwrap();
    wait_until(30, "the receiver to reload", || {
        events(&lab, "internet", "policy_reloaded") >= 1
    });
    let out = quarantine(&lab, "internet", &["release", &id]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        fs::read(lab.inbox("internet", "to-internet").join("blue.txt")).unwrap(),
        "蓝色的天\n".as_bytes()
    );
    assert!(listed(&lab, "internet").is_empty());
    let landed = lab.records("internet", "landed");
    assert_eq!(landed.len(), 1);
    assert_eq!(landed[0].object_id.as_deref(), Some(id.as_str()));
    court.stop();
    internet.stop();
    verify(&lab, "internet");
    // the very object the sender signed: the two logs still reconcile
    let out = std::process::Command::new(BIN)
        .args(["audit", "reconcile"])
        .arg(lab.dir.join("court/audit"))
        .arg(lab.dir.join("internet/audit"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// Moves an entry's refusal time `days` into the past.
fn backdate(lab: &Lab, node: &str, channel: &str, id: &str, days: u64) {
    let path = lab
        .quarantine(node, channel)
        .join(format!("{id}.reason.json"));
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let t = v["time_ms"].as_u64().unwrap() - days * 86_400_000;
    v["time_ms"] = t.into();
    fs::write(&path, v.to_string()).unwrap();
}

#[test]
fn purge_by_age_removes_only_old_entries_and_is_audited() {
    let lab = Lab::new(25240);
    let court = lab.start("court");
    for n in ["a", "b", "c"] {
        lab.publish(
            "court",
            "to-internet",
            &format!("{n}.txt"),
            "内部资料\n".as_bytes(),
        );
    }
    let all = listed_whole(&lab, "court", 3);
    let (a, b, c) = (
        id_of(entry(&all, "a.txt")),
        id_of(entry(&all, "b.txt")),
        id_of(entry(&all, "c.txt")),
    );
    backdate(&lab, "court", "to-internet", &a, 40);
    let out = quarantine(&lab, "court", &["list", "--older-than", "30d"]);
    assert!(text(&out).contains(&a) && !text(&out).contains(&b));

    let out = quarantine(
        &lab,
        "court",
        &["purge", "--older-than", "30d", "--note", "ageing"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(text(&out).matches("purged").count(), 1, "{}", text(&out));
    let left: Vec<String> = listed(&lab, "court").iter().map(id_of).collect();
    assert_eq!(left.len(), 2);
    assert!(!left.contains(&a));
    assert!(!lab.quarantine("court", "to-internet").join(&a).exists());
    let purged = lab.records("court", "quarantine_purged");
    assert_eq!(purged.len(), 1);
    assert_eq!(purged[0].object_id.as_deref(), Some(a.as_str()));
    let uid = own_uid(&lab.dir);
    assert_eq!(
        purged[0].detail.as_deref(),
        Some(format!("by officer (uid {uid}); note: \"ageing\"").as_str())
    );
    // the records of what was purged stay
    assert!(
        lab.records("court", "refused")
            .iter()
            .any(|r| r.object_id.as_deref() == Some(a.as_str()))
    );

    // by id
    let out = quarantine(&lab, "court", &["purge", &b]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(listed(&lab, "court").len(), 1);

    // the node's own ageing out, when configured
    court.stop();
    backdate(&lab, "court", "to-internet", &c, 8);
    let config = lab.config("court");
    let cfg = fs::read_to_string(&config).unwrap();
    fs::write(&config, format!("{cfg}\n[quarantine]\nkeep_days = 7\n")).unwrap();
    let court = lab.start("court");
    // audited first, then removed
    wait_until(30, "the old entry to age out", || {
        lab.records("court", "quarantine_purged").len() == 3 && listed(&lab, "court").is_empty()
    });
    let aged = lab.records("court", "quarantine_purged");
    assert_eq!(aged[2].object_id.as_deref(), Some(c.as_str()));
    assert!(
        aged[2]
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("keep_days = 7")
    );
    court.stop();
    verify(&lab, "court");
}

#[test]
fn a_release_cut_short_is_withdrawn_or_finished_at_the_next_start() {
    let lab = Lab::new(25260);
    let court = lab.start("court");
    for n in ["a", "b", "d"] {
        lab.publish(
            "court",
            "to-internet",
            &format!("{n}.txt"),
            "内部资料\n".as_bytes(),
        );
    }
    let all = listed_whole(&lab, "court", 3);
    let (a, b) = (id_of(entry(&all, "a.txt")), id_of(entry(&all, "b.txt")));
    let d = id_of(entry(&all, "d.txt"));
    court.stop();
    // as a kill -9 leaves them: a staged copy the spool never took (a), a copy the spool
    // took before the old entry was removed (b), a staged copy no record names yet (the
    // records of an older release); and a release of this one, which puts the content
    // straight into the spool, cut before its spool entry was whole (d: no entry)
    let pending = lab.dir.join("court/state/quarantine-release");
    fs::create_dir_all(&pending).unwrap();
    let record = |token: &str, old: &str, direct: bool| {
        let mut body = serde_json::json!({"token": token, "side": "sender",
            "channel": "to-internet", "old_id": old, "who": "by alice (uid 0)"});
        if direct {
            body["direct"] = true.into();
        }
        fs::write(pending.join(format!("{token}.json")), body.to_string()).unwrap();
    };
    let (ta, tb, tc, td) = (
        "a".repeat(32),
        "b".repeat(32),
        "c".repeat(32),
        "d".repeat(32),
    );
    fs::write(pending.join(&ta), "内部资料\n").unwrap();
    record(&ta, &a, false);
    record(&tb, &b, false);
    fs::write(pending.join(&tc), "内部资料\n").unwrap();
    record(&td, &d, true);
    let court = lab.start("court");
    wait_until(30, "the releases under way to be settled", || {
        fs::read_dir(&pending).unwrap().count() == 0
    });
    let mut left: Vec<String> = listed(&lab, "court").iter().map(id_of).collect();
    left.sort();
    let mut kept = vec![a.clone(), d.clone()];
    kept.sort();
    assert_eq!(left, kept, "a and d withdrawn (kept), b finished (removed)");
    // the withdrawal is on record: its quarantine_released (if any) is not the last word
    let out = std::process::Command::new(BIN)
        .args(["audit", "query"])
        .arg(lab.dir.join("court").join("audit"))
        .args(["--event", "quarantine_release_refused", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let withdrawn: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(withdrawn.len(), 2, "{withdrawn:?}");
    let mut ids: Vec<&str> = withdrawn
        .iter()
        .map(|w| w["object_id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut want = vec![a.as_str(), d.as_str()];
    want.sort();
    assert_eq!(ids, want);
    for w in &withdrawn {
        // the record names the file (its entry's reason file does), for a report to show
        assert!(
            w["name"].as_str().is_some_and(|n| n.ends_with(".txt")),
            "{withdrawn:?}"
        );
        assert!(
            w["detail"]
                .as_str()
                .unwrap()
                .starts_with("by alice (uid 0); withdrawn: "),
            "who asked is still named after the restart: {withdrawn:?}"
        );
    }
    // a withdrawn release can be asked again
    let out = quarantine(&lab, "court", &["release", &a]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("refused again"), "{}", text(&out));
    court.stop();
    verify(&lab, "court");
}

/// `list` and `show` only read the node's folders: an auditor, who may not read the node's
/// private keys, runs them. A signing key and a TLS key that cannot be read as keys do not
/// stop them (they are never opened), while `release` still loads the whole configuration.
#[test]
fn list_and_show_never_read_the_private_keys() {
    let lab = Lab::new(25280);
    for key in ["certs/court.sign.key", "certs/court.tls.key"] {
        fs::write(lab.dir.join(key), "not a key: the auditor cannot read it\n").unwrap();
    }
    let out = quarantine(&lab, "court", &["list"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("(0 entries)"), "{}", text(&out));
    let out = quarantine(&lab, "court", &["show", &"ab".repeat(16)]);
    assert!(
        !text(&out).contains("signing_key") && !text(&out).contains("tls_key"),
        "{}",
        text(&out)
    );
    let out = quarantine(&lab, "court", &["release", &"ab".repeat(16)]);
    assert!(!out.status.success());
    assert!(text(&out).contains("node.signing_key"), "{}", text(&out));
}

/// Drops the `内部资料` keyword from the outbound policy both nodes load, and waits for
/// both to reload it.
fn drop_keyword_rule(lab: &Lab) {
    let file = lab.dir.join("policy").join("to-internet.toml");
    let policy = fs::read_to_string(&file).unwrap();
    fs::write(&file, policy.replace("\"内部资料\", ", "")).unwrap();
    wait_until(30, "both nodes to reload the policy", || {
        events(lab, "court", "policy_reloaded") >= 1
            && events(lab, "internet", "policy_reloaded") >= 1
    });
}

/// Sends SIGHUP to `node` and waits for its log to say `what` once more.
fn hup_and_wait(lab: &Lab, node: &Running, what: &str) {
    let before = lab.log(&node.name).matches(what).count();
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &node.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    wait_until(20, &format!("{} to log {what:?}", node.name), || {
        lab.log(&node.name).matches(what).count() > before
    });
}

/// Puts an entry into a `to-internet` quarantine folder by hand, in plaintext, with its
/// reason file: `(name, node, side)`, `(reason, detail)`.
fn put_by_hand(q: &Path, id: &str, content: &[u8], who: (&str, &str, &str), why: (&str, &str)) {
    fs::create_dir_all(q).unwrap();
    fs::write(q.join(id), content).unwrap();
    fs::write(
        q.join(format!("{id}.reason.json")),
        serde_json::json!({"object_id": id, "channel": "to-internet", "name": who.0,
            "node": who.1, "side": who.2, "reason": why.0, "detail": why.1, "time_ms": 1})
        .to_string(),
    )
    .unwrap();
}

/// The data key's id that sealed a quarantined copy (its header's bytes 20..24, in hex).
fn sealed_by(copy: &Path) -> String {
    let bytes = fs::read(copy).unwrap();
    assert!(
        bytes.starts_with(b"isogate-rest-v1\0"),
        "{} is not sealed",
        copy.display()
    );
    hex_of(&bytes[20..24])
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn quarantined_copies_are_sealed_at_rest_rotated_by_sighup_and_never_released_changed() {
    let lab = Lab::new(27660);
    let court = lab.start("court");
    let internet = lab.start("internet");
    let marker = "内部资料 MARKER-7731 ";
    for name in ["a.txt", "b.txt"] {
        lab.publish("court", "to-internet", name, marker.repeat(5000).as_bytes());
    }
    let all = listed_whole(&lab, "court", 2);
    let q = lab.quarantine("court", "to-internet");
    let (a, b) = (id_of(entry(&all, "a.txt")), id_of(entry(&all, "b.txt")));
    // listed from its reason file, written before the copy moves in
    wait_until(30, "both copies in", || {
        q.join(&a).exists() && q.join(&b).exists()
    });
    // sealed: no plaintext of the marker, listed with the size that was refused
    for id in [&a, &b] {
        let stored = fs::read(q.join(id)).unwrap();
        let needle = "MARKER-7731".as_bytes();
        assert!(!stored.windows(needle.len()).any(|w| w == needle));
    }
    assert_eq!(
        entry(&all, "a.txt")["size"],
        (marker.len() * 5000) as u64,
        "{all:?}"
    );
    let first = sealed_by(&q.join(&a));
    // how it rests is shown, read without the key
    assert_eq!(
        entry(&all, "a.txt")["at_rest"],
        serde_json::json!({"sealed": {"cipher": "AES-256-GCM", "key": first}}),
        "{all:?}"
    );
    let out = quarantine(&lab, "court", &["show", &a]);
    assert!(
        text(&out).contains(&format!("(sealed with AES-256-GCM, data key {first})")),
        "{}",
        text(&out)
    );
    // a copy kept in plaintext while the node seals: shown as not releasable, and a
    // release is refused on record
    let plain = "0123456789abcdef0123456789abcd0f";
    put_by_hand(
        &q,
        plain,
        "内部资料 put here by hand\n".as_bytes(),
        ("p.txt", "court", "sender"),
        ("keyword_match", "内部资料"),
    );
    let listed_plain = listed(&lab, "court");
    let p = entry(&listed_plain, "p.txt");
    assert_eq!(p["at_rest"], "plaintext", "{p:?}");
    assert!(
        p["releasable"]
            .as_str()
            .is_some_and(|w| w.starts_with("kept in plaintext")),
        "{p:?}"
    );
    let out = quarantine(&lab, "court", &["show", plain]);
    assert!(
        text(&out).contains("releasable:  no: kept in plaintext"),
        "{}",
        text(&out)
    );
    let out = quarantine(&lab, "court", &["release", plain]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("not releasable: kept in plaintext"),
        "{}",
        text(&out)
    );
    let refused: Vec<_> = lab
        .records("court", "quarantine_release_refused")
        .into_iter()
        .filter(|r| r.object_id.as_deref() == Some(plain))
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    let out = quarantine(&lab, "court", &["purge", plain]);
    assert!(out.status.success(), "{}", text(&out));

    // a new data key, first in the file: it seals from the SIGHUP on
    let key_file = lab.dir.join("certs/court.data.key");
    let out = std::process::Command::new(BIN)
        .args(["keygen", "--data-key"])
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let second = text(&out)
        .lines()
        .find_map(|l| l.strip_prefix("sealing key:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    assert_ne!(second, first);
    hup_and_wait(&lab, &court, "SIGHUP: keys reloaded");
    lab.publish("court", "to-internet", "c.txt", marker.as_bytes());
    let c = id_of(entry(&listed_whole(&lab, "court", 3), "c.txt"));
    wait_until(30, "the third copy in", || q.join(&c).exists());
    assert_eq!(sealed_by(&q.join(&c)), second);

    // one byte of b's stored copy changes
    let mut bytes = fs::read(q.join(&b)).unwrap();
    bytes[48 + 1000] ^= 1;
    fs::write(q.join(&b), &bytes).unwrap();

    // the rule is dropped: a (sealed with the older key) crosses whole; b never does
    drop_keyword_rule(&lab);
    let out = quarantine(&lab, "court", &["release", &a]);
    assert!(out.status.success(), "{}", text(&out));
    let inbox = lab.inbox("internet", "to-internet");
    wait_until(30, "a to land", || inbox.join("a.txt").exists());
    assert_eq!(
        fs::read(inbox.join("a.txt")).unwrap(),
        marker.repeat(5000).as_bytes()
    );
    let out = quarantine(&lab, "court", &["release", &b]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("stored chunk 0"), "{}", text(&out));
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(!inbox.join("b.txt").exists());
    assert!(q.join(&b).exists(), "the changed copy stays in quarantine");
    // on record once: withdrawn after its quarantine_released, not counted twice
    let refused: Vec<_> = lab
        .records("court", "quarantine_release_refused")
        .into_iter()
        .filter(|r| r.object_id.as_deref() == Some(b.as_str()))
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0]
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("withdrawn: "),
        "{refused:?}"
    );

    // a reload that drops the older key (b's copy needs it) is refused
    let keys_text = fs::read_to_string(&key_file).unwrap();
    let newest: Vec<&str> = keys_text.lines().take(2).collect();
    fs::write(&key_file, newest.join("\n") + "\n").unwrap();
    hup_and_wait(&lab, &court, "SIGHUP: keys refused");
    assert!(
        lab.log("court").contains(&format!(
            "data key {first} is no longer in the data key file"
        )),
        "{}",
        lab.log("court")
    );
    court.stop();
    internet.stop();
    verify(&lab, "court");
}

#[test]
fn a_data_key_others_may_read_is_refused_naming_the_file_line_and_key() {
    let lab = Lab::new(27670);
    let key = lab.dir.join("certs/court.data.key");
    fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = check(&lab.config("court"), &[]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("court.toml:"), "{said}");
    assert!(said.contains("node.data_key"), "{said}");
    assert!(
        said.contains("mode 644") && said.contains("chmod 600"),
        "{said}"
    );
    fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = check(&lab.config("court"), &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out)
            .contains("data at rest           sealed: the quarantine, the spool (objects waiting to cross or for approval) and each received object until it is cleared to land; data keys AES-256-GCM "),
        "{}",
        text(&out)
    );
}
