//! Keys that explain themselves: a node pinning the wrong certificate fails the handshake and
//! both nodes' logs name the expected and presented fingerprints; `check` refuses a peer pin
//! that is the node's own; `audit verify --key` (and `prove`, `verify-proof`) with another
//! node's key says it never signed the log, with its own exit status, apart from tampering.

use crate::common;
use common::*;
use isogate::keys::{self, VerifyKey};
use std::fs;
use std::process::Command;

fn cert_fp(path: &std::path::Path) -> String {
    keys::cert_fingerprint(&keys::load_cert(path).unwrap())
}

fn key_fp(path: &std::path::Path) -> String {
    VerifyKey::load(path).unwrap().fingerprint()
}

#[test]
fn a_wrong_pin_fails_the_handshake_and_each_log_names_both_fingerprints() {
    let lab = Lab::new(25400);
    let out = Command::new(BIN)
        .args(["keygen", "--name", "mallory", "--out"])
        .arg(lab.dir.join("mallory"))
        .output()
        .unwrap();
    assert!(out.status.success());
    // the internet node pins a stranger's certificate as the court's
    let text = fs::read_to_string(lab.config("internet")).unwrap().replace(
        "tls_cert = \"certs/court.tls.crt\"",
        "tls_cert = \"mallory/mallory.tls.crt\"",
    );
    let wrong = lab.dir.join("internet-wrong-pin.toml");
    fs::write(&wrong, &text).unwrap();
    let expected = cert_fp(&lab.dir.join("mallory/mallory.tls.crt"));
    let presented = cert_fp(&lab.dir.join("certs/court.tls.crt"));
    let _internet = lab.start_with("internet", &wrong);
    let _court = lab.start("court");
    lab.publish("court", "to-internet", "never.txt", b"must not cross\n");
    let both = format!("expected {expected}, presented {presented}");
    // the internet node refuses the court as the client of its server (court -> internet)
    // and as the server it connects to (internet -> court); the court hears why from it
    wait_until(30, "both nodes to log the fingerprints", || {
        let internet = lab.log("internet");
        let court = lab.log("court");
        internet.contains(&format!("client certificate not pinned: {both}"))
            && internet.contains(&format!("server certificate not pinned: {both}"))
            && court
                .lines()
                .any(|l| l.contains("handshake refused") && l.contains(&both))
    });
    assert!(visible(&lab.inbox("internet", "to-internet")).is_empty());
    // the court's connection is refused after its side of the handshake (waited for above): a
    // refusal, never a link that came up and went down
    let court = lab.log("court");
    assert!(!court.contains("link up"), "{court}");
    assert!(lab.records("court", "link_up").is_empty());
    assert!(
        !lab.log("internet")
            .contains("ApplicationVerificationFailure"),
        "the bare rustls reason is gone"
    );
}

#[test]
fn check_refuses_a_peer_pin_equal_to_the_nodes_own() {
    let lab = Lab::new(25410);
    let file = lab.config("court");
    let text = fs::read_to_string(&file).unwrap();
    // the peer's certificate line is the second tls_cert line, under [peer]
    let own = text.replacen(
        "tls_cert = \"certs/internet.tls.crt\"",
        "tls_cert = \"certs/court.tls.crt\"",
        1,
    );
    assert_ne!(own, text);
    fs::write(&file, &own).unwrap();
    let line = own
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("tls_cert = \"certs/court.tls.crt\""))
        .map(|(i, _)| i + 1)
        .last()
        .unwrap();
    let out = check(&file, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let fp = cert_fp(&lab.dir.join("certs/court.tls.crt"));
    let want = format!(
        "{}:{line}: peer.tls_cert: pins this node's own TLS certificate ({fp})",
        file.display()
    );
    assert!(err.contains(&want), "{want}\n{err}");
    // the sound lab shows the fingerprints that keygen printed
    fs::write(&file, &text).unwrap();
    let out = check(&file, &[]);
    assert!(out.status.success());
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains(&fp), "{report}");
    assert!(
        report.contains(&cert_fp(&lab.dir.join("certs/internet.tls.crt"))),
        "{report}"
    );
}

#[test]
fn audit_verify_with_another_nodes_key_says_it_never_signed_the_log() {
    let lab = Lab::new(25420);
    let court = lab.start("court");
    lab.publish("court", "to-internet", "a.txt", b"hello\n");
    wait_until(30, "the file to be taken", || {
        !lab.records("court", "taken").is_empty()
    });
    assert!(court.stop().success());
    let audit = lab.dir.join("court/audit");
    let own = lab.dir.join("certs/court.sign.pub");
    let other = lab.dir.join("certs/internet.sign.pub");
    let run = |args: &[&std::ffi::OsStr]| Command::new(BIN).args(args).output().unwrap();
    let verify = |key: &std::path::Path| {
        run(&[
            "audit".as_ref(),
            "verify".as_ref(),
            audit.as_os_str(),
            "--key".as_ref(),
            key.as_os_str(),
        ])
    };
    let ok = verify(&own);
    assert!(ok.status.success(), "{ok:?}");
    let wrong = verify(&other);
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(3), "{err}");
    let want = format!(
        "the log was not signed by this key ({}): its checkpoints are signed by {}",
        key_fp(&other),
        key_fp(&own)
    );
    assert!(err.contains(&want), "{want}\n{err}");
    assert!(!err.contains("TAMPERED"), "{err}");

    // prove and verify-proof say the same
    let object = isogate::audit::read_all(&audit)
        .unwrap()
        .into_iter()
        .find_map(|r| r.object_id)
        .unwrap();
    let proof = lab.dir.join("proof.json");
    let prove = |key: &std::path::Path| {
        run(&[
            "audit".as_ref(),
            "prove".as_ref(),
            audit.as_os_str(),
            object.as_ref(),
            "--out".as_ref(),
            proof.as_os_str(),
            "--key".as_ref(),
            key.as_os_str(),
        ])
    };
    let p = prove(&other);
    assert_eq!(p.status.code(), Some(3), "{p:?}");
    assert!(String::from_utf8_lossy(&p.stderr).contains(&want), "{p:?}");
    let p = prove(&own);
    assert!(p.status.success(), "{p:?}");
    let check_proof = |key: &std::path::Path| {
        run(&[
            "audit".as_ref(),
            "verify-proof".as_ref(),
            proof.as_os_str(),
            "--key".as_ref(),
            key.as_os_str(),
        ])
    };
    assert!(check_proof(&own).status.success());
    let v = check_proof(&other);
    assert_eq!(v.status.code(), Some(3), "{v:?}");
    let err = String::from_utf8_lossy(&v.stderr);
    assert!(
        err.contains(&format!(
            "the proof was not signed by this key ({}): its checkpoint is signed by {}",
            key_fp(&other),
            key_fp(&own)
        )),
        "{err}"
    );

    // a changed record stays TAMPERED (exit 1), whichever key is given
    let seg = fs::read_dir(&audit)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("log-"))
        })
        .unwrap();
    let text = fs::read_to_string(&seg).unwrap();
    fs::write(&seg, text.replacen("a.txt", "b.txt", 1)).unwrap();
    for key in [&own, &other] {
        let t = verify(key);
        assert_eq!(t.status.code(), Some(1), "{t:?}");
        assert!(String::from_utf8_lossy(&t.stderr).contains("TAMPERED"));
    }
}
