//! Key rotation end to end, with two real `isogate run` processes that are never restarted:
//! the internet node pins the court's next keys beside the current ones, the court promotes
//! its next keys on SIGHUP, the internet drops the old ones; files cross before, during and
//! after, exactly once; the court's audit log records the switch and still verifies with its
//! original key; a manifest signed by an unknown key is still refused. A configuration that
//! does not validate on SIGHUP changes nothing.

use crate::common;
use common::*;
use isogate::core::wire::encode_object_frame;
use isogate::keys::tls::{Identity, SERVER_NAME, client_config};
use isogate::keys::{self, SigningKey};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn hup(node: &Running) {
    let ok = Command::new("kill")
        .args(["-HUP", &node.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -HUP {}", node.name);
}

fn alive(node: &Running) -> bool {
    Command::new("kill")
        .args(["-0", &node.pid().to_string()])
        .status()
        .unwrap()
        .success()
}

/// Rewrites a config file: every `(from, to)` replacement must apply.
fn edit(file: &Path, changes: &[(&str, &str)]) {
    let mut text = fs::read_to_string(file).unwrap();
    for (from, to) in changes {
        assert!(text.contains(from), "{} has no {from:?}", file.display());
        text = text.replacen(from, to, 1);
    }
    fs::write(file, text).unwrap();
}

/// Sends SIGHUP and waits for the node to log the outcome (`what`, one more time).
fn reload(lab: &Lab, node: &Running, what: &str) {
    let before = lab.log(&node.name).matches(what).count();
    hup(node);
    wait_until(20, &format!("{} to log {what:?}", node.name), || {
        lab.log(&node.name).matches(what).count() > before
    });
}

fn publish_batch(lab: &Lab, tag: &str, n: usize) -> Vec<(String, String)> {
    let mut sent = Vec::new();
    for i in 0..n {
        for (from, chan) in [("court", "to-internet"), ("internet", "to-court")] {
            let name = format!("{tag}-{i}-{from}.txt");
            lab.publish(
                from,
                chan,
                &name,
                format!("{tag} file {i} from {from}\n").as_bytes(),
            );
            sent.push((chan.to_string(), name));
        }
    }
    sent
}

fn inbox_of(lab: &Lab, chan: &str) -> Vec<String> {
    let to = if chan == "to-internet" {
        "internet"
    } else {
        "court"
    };
    visible(&lab.inbox(to, chan))
}

/// Every file published so far landed, and nothing else (no second copy, no refusal).
fn all_landed(lab: &Lab, sent: &[(String, String)]) {
    for chan in ["to-internet", "to-court"] {
        let mut want: Vec<String> = sent
            .iter()
            .filter(|(c, _)| c == chan)
            .map(|(_, n)| n.clone())
            .collect();
        want.sort();
        wait_until(60, &format!("{} files on {chan}", want.len()), || {
            inbox_of(lab, chan).len() >= want.len()
        });
        assert_eq!(inbox_of(lab, chan), want, "{chan}: each file exactly once");
    }
    for (node, chan) in [("court", "to-internet"), ("internet", "to-court")] {
        assert!(
            visible(&lab.quarantine(node, chan)).is_empty(),
            "nothing refused on {node}"
        );
    }
}

fn isogate(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// Plays the court with its (new) certificate and sends a manifest signed by a key the
/// internet node never pinned; returns once the internet node has refused it.
fn send_forged(lab: &Lab) {
    let certs = lab.dir.join("certs");
    let id = Identity {
        cert: keys::load_cert(&certs.join("next/court.tls.crt")).unwrap(),
        key: keys::load_tls_key(&certs.join("next/court.tls.key")).unwrap(),
        peer_cert: keys::load_cert(&certs.join("internet.tls.crt")).unwrap(),
    };
    let unverified = lab.dir.join("internet/quarantine/_unverified");
    let third = SigningKey::generate().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        ep.set_default_client_config(client_config(&id).unwrap());
        let addr = format!("127.0.0.1:{}", lab.port_base + 1).parse().unwrap();
        // the real court reconnects and supersedes this connection: try until refused
        for _ in 0..50 {
            if let Ok(conn) = ep.connect(addr, SERVER_NAME).unwrap().await
                && let Ok(mut send) = conn.open_uni().await
            {
                let m = manifest(b"forged\n", "forged.txt", "to-internet");
                let payload = m.sign(&third).unwrap().encode().unwrap();
                let _ = send
                    .write_all(&encode_object_frame(&payload).unwrap())
                    .await;
                let _ = send.write_all(b"forged\n").await;
                let _ = send.finish();
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            if reasons(&unverified).contains(&"bad_signature".to_string()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the forged manifest was never refused");
    });
}

#[test]
fn keys_rotate_without_restart_and_the_audit_log_follows() {
    let lab = Lab::new(21700);
    let (court_cfg, internet_cfg) = (lab.config("court"), lab.config("internet"));
    let court = lab.start("court");
    let internet = lab.start("internet");
    let mut sent = publish_batch(&lab, "before", 3);
    all_landed(&lab, &sent);

    // New keys for the court, made beside the current ones.
    let out = Command::new(BIN)
        .args(["keygen", "--name", "court", "--out"])
        .arg(lab.dir.join("certs/next"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 1. The internet pins the court's next keys beside the current ones.
    edit(
        &internet_cfg,
        &[(
            "signing_public_key = \"certs/court.sign.pub\"",
            "signing_public_key = \"certs/court.sign.pub\"\nnext_signing_public_key = \"certs/next/court.sign.pub\"\nnext_tls_cert = \"certs/next/court.tls.crt\"",
        )],
    );
    reload(&lab, &internet, "SIGHUP: keys reloaded");
    // The court holds its next keys ready (nothing switches yet).
    edit(
        &court_cfg,
        &[(
            "tls_key = \"certs/court.tls.key\"",
            "tls_key = \"certs/court.tls.key\"\nnext_signing_key = \"certs/next/court.sign.key\"\nnext_tls_cert = \"certs/next/court.tls.crt\"\nnext_tls_key = \"certs/next/court.tls.key\"",
        )],
    );
    reload(&lab, &court, "SIGHUP: keys reloaded");
    assert_eq!(events(&lab, "court", "key_switched"), 0);
    sent.extend(publish_batch(&lab, "pinned", 2));

    // 2. The court promotes its next keys to current; files are in flight meanwhile.
    sent.extend(publish_batch(&lab, "during", 4));
    edit(
        &court_cfg,
        &[
            (
                "signing_key = \"certs/court.sign.key\"",
                "signing_key = \"certs/next/court.sign.key\"",
            ),
            (
                "tls_cert = \"certs/court.tls.crt\"",
                "tls_cert = \"certs/next/court.tls.crt\"",
            ),
            (
                "tls_key = \"certs/court.tls.key\"",
                "tls_key = \"certs/next/court.tls.key\"",
            ),
            ("next_signing_key = \"certs/next/court.sign.key\"\n", ""),
            ("next_tls_cert = \"certs/next/court.tls.crt\"\n", ""),
            ("next_tls_key = \"certs/next/court.tls.key\"\n", ""),
        ],
    );
    reload(&lab, &court, "SIGHUP: switched to the new signing key");
    assert_eq!(events(&lab, "court", "key_switched"), 1);
    sent.extend(publish_batch(&lab, "after", 3));
    all_landed(&lab, &sent);
    // what crossed after the switch was signed with the new key: only it verifies now
    let new_pub = fs::read_to_string(lab.dir.join("certs/next/court.sign.pub")).unwrap();
    let audit_pub = fs::read_to_string(lab.dir.join("court/audit/node.pub")).unwrap();
    assert_eq!(audit_pub.trim(), new_pub.trim());

    // 3. The internet drops the court's old keys: the next ones become the only ones.
    edit(
        &internet_cfg,
        &[
            (
                "tls_cert = \"certs/court.tls.crt\"",
                "tls_cert = \"certs/next/court.tls.crt\"",
            ),
            (
                "signing_public_key = \"certs/court.sign.pub\"",
                "signing_public_key = \"certs/next/court.sign.pub\"",
            ),
            (
                "next_signing_public_key = \"certs/next/court.sign.pub\"\n",
                "",
            ),
            ("next_tls_cert = \"certs/next/court.tls.crt\"\n", ""),
        ],
    );
    reload(&lab, &internet, "SIGHUP: keys reloaded");
    sent.extend(publish_batch(&lab, "dropped", 3));
    all_landed(&lab, &sent);

    // A manifest signed by a key neither pinned is refused, as always.
    send_forged(&lab);
    sent.extend(publish_batch(&lab, "last", 1));
    all_landed(&lab, &sent);

    // Never restarted: the same processes, no stop in either log.
    assert!(alive(&court) && alive(&internet));
    assert_eq!(events(&lab, "court", "stopped"), 0);
    assert_eq!(events(&lab, "internet", "stopped"), 0);
    let log = lab.log("internet");
    assert!(
        !log.contains("refused a checkpoint from the peer"),
        "the internet witnessed every court checkpoint"
    );
    assert!(court.stop().success());
    assert!(internet.stop().success());

    // The court's log verifies, by its own key history and pinned to either key.
    let audit = lab.dir.join("court/audit");
    let audit = audit.to_str().unwrap();
    let old_pub = lab.dir.join("certs/court.sign.pub");
    let new_pub = lab.dir.join("certs/next/court.sign.pub");
    for args in [
        vec!["audit", "verify", audit],
        vec!["audit", "verify", audit, "--key", old_pub.to_str().unwrap()],
        vec!["audit", "verify", audit, "--key", new_pub.to_str().unwrap()],
    ] {
        let out = isogate(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let internet_pub = lab.dir.join("certs/internet.sign.pub");
    let out = isogate(&[
        "audit",
        "verify",
        audit,
        "--key",
        internet_pub.to_str().unwrap(),
    ]);
    assert!(
        !out.status.success(),
        "another node's key does not verify it"
    );
    // The internet's witness of the court's checkpoints matches the court's log, across
    // the switch, pinned to the court's original key.
    let out = isogate(&[
        "audit",
        "reconcile",
        audit,
        lab.dir.join("internet/audit").to_str().unwrap(),
        "--key",
        old_pub.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A proof made after the switch verifies offline with the original key.
    let records = isogate::audit::read_all(Path::new(audit)).unwrap();
    let landed_after = records
        .iter()
        .find(|r| {
            r.event == isogate::audit::Event::Sealed
                && r.name.as_deref() == Some("last-0-court.txt")
        })
        .and_then(|r| r.object_id.clone())
        .unwrap();
    let proof = lab.dir.join("proof.json");
    let out = isogate(&[
        "audit",
        "prove",
        audit,
        &landed_after,
        "--out",
        proof.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = isogate(&[
        "audit",
        "verify-proof",
        proof.to_str().unwrap(),
        "--key",
        old_pub.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_invalid_config_on_sighup_changes_nothing() {
    let lab = Lab::new(21710);
    let court_cfg = lab.config("court");
    let court = lab.start("court");
    let internet = lab.start("internet");
    let mut sent = publish_batch(&lab, "before", 1);
    all_landed(&lab, &sent);
    let original = fs::read_to_string(&court_cfg).unwrap();

    // only two of the three next keys
    edit(
        &court_cfg,
        &[(
            "tls_key = \"certs/court.tls.key\"",
            "tls_key = \"certs/court.tls.key\"\nnext_signing_key = \"certs/internet.sign.key\"\nnext_tls_cert = \"certs/internet.tls.crt\"",
        )],
    );
    reload(&lab, &court, "SIGHUP: configuration refused");
    let log = lab.log("court");
    let line = log
        .lines()
        .rfind(|l| l.contains("SIGHUP: configuration refused"))
        .unwrap();
    assert!(
        line.contains("court.toml:") && line.contains("node.next_signing_key"),
        "{line}"
    );

    // a signing key that does not parse
    fs::write(&court_cfg, &original).unwrap();
    fs::write(lab.dir.join("certs/broken.sign.key"), "not a key\n").unwrap();
    edit(
        &court_cfg,
        &[(
            "signing_key = \"certs/court.sign.key\"",
            "signing_key = \"certs/broken.sign.key\"",
        )],
    );
    reload(&lab, &court, "SIGHUP: configuration refused");

    // a certificate with another node's key
    fs::write(&court_cfg, &original).unwrap();
    edit(
        &court_cfg,
        &[(
            "tls_key = \"certs/court.tls.key\"",
            "tls_key = \"certs/internet.tls.key\"",
        )],
    );
    reload(&lab, &court, "SIGHUP: configuration refused");

    // a channel's policy file moved: SIGHUP cannot apply it and says so, loudly
    fs::write(&court_cfg, &original).unwrap();
    fs::copy(
        lab.dir.join("policy/to-internet.toml"),
        lab.dir.join("policy/to-internet-2.toml"),
    )
    .unwrap();
    edit(
        &court_cfg,
        &[(
            "policy = \"policy/to-internet.toml\"",
            "policy = \"policy/to-internet-2.toml\"",
        )],
    );
    reload(&lab, &court, "need a restart and are NOT in force");
    let log = lab.log("court");
    let line = log
        .lines()
        .rfind(|l| l.contains("need a restart and are NOT in force"))
        .unwrap();
    assert!(
        line.contains("channel to-internet: policy") && line.contains("to-internet-2.toml"),
        "{line}"
    );

    // nothing changed: same keys, no switch, files still cross
    assert_eq!(events(&lab, "court", "key_switched"), 0);
    fs::write(&court_cfg, &original).unwrap();
    reload(&lab, &court, "SIGHUP: keys unchanged");
    sent.extend(publish_batch(&lab, "after", 2));
    all_landed(&lab, &sent);
    assert!(alive(&court) && alive(&internet));

    // `isogate check` names the file, the line and the key of the same mistakes
    edit(
        &court_cfg,
        &[(
            "tls_key = \"certs/court.tls.key\"",
            "tls_key = \"certs/court.tls.key\"\nnext_signing_key = \"certs/missing.sign.key\"\nnext_tls_cert = \"certs/court.tls.crt\"\nnext_tls_key = \"certs/court.tls.key\"",
        )],
    );
    let out = check(&court_cfg, &[]);
    assert!(!out.status.success());
    let err =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("court.toml:") && err.contains("node.next_signing_key"),
        "{err}"
    );
}
