//! The national (国密) suite's primitives against OpenSSL 3, an independent implementation
//! run as a real process: SM2 keys made by `isogate keygen --suite gm` are read by OpenSSL,
//! signatures cross both ways with the standard user id, SM3 digests and HMAC-SM3 tags of
//! real files agree; a node refuses an SM2 key while its pair runs the default suite. A pair
//! made by `isogate init --suite gm` carries files and messages on both links, and two nodes
//! of different suites fail at start-up, each saying why.

use crate::common;

use common::BIN;
use isogate::keys::suite::{self, Suite};
use isogate::keys::{SigningKey, VerifyKey};
use std::path::Path;
use std::process::Command;

fn openssl(args: &[&str]) -> std::process::Output {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs (Debian's openssl package)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// OpenSSL's SM2 signature (DER) of the file `msg` with the key file `key`, under `distid`.
fn openssl_sign(key: &Path, msg: &Path, distid: &str, out: &Path) -> sm2::dsa::Signature {
    openssl(&[
        "pkeyutl",
        "-sign",
        "-rawin",
        "-digest",
        "sm3",
        "-pkeyopt",
        &format!("distid:{distid}"),
        "-inkey",
        key.to_str().unwrap(),
        "-in",
        msg.to_str().unwrap(),
        "-out",
        out.to_str().unwrap(),
    ]);
    sm2::dsa::Signature::from_der(&std::fs::read(out).unwrap()).unwrap()
}

/// Whether OpenSSL verifies the SM2 signature (DER) in `sig` of the file `msg` with the
/// public key PEM `public`, under the standard user id.
fn openssl_verifies(public: &Path, msg: &Path, sig: &Path) -> bool {
    Command::new("openssl")
        .args(["pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pkeyopt"])
        .arg(format!("distid:{}", suite::SM2_USER_ID))
        .args(["-pubin", "-inkey"])
        .arg(public)
        .arg("-in")
        .arg(msg)
        .arg("-sigfile")
        .arg(sig)
        .output()
        .unwrap()
        .status
        .success()
}

fn keygen_gm(dir: &Path, name: &str) -> std::process::Output {
    let out = Command::new(BIN)
        .args(["keygen", "--name", name, "--suite", "gm", "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A file of `len` bytes that is not all one value.
fn some_file(path: &Path, len: usize) -> Vec<u8> {
    let bytes: Vec<u8> = (0..len as u64)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(path, &bytes).unwrap();
    bytes
}

#[test]
fn sm2_signatures_cross_both_ways_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let printed = String::from_utf8(keygen_gm(d, "court").stdout).unwrap();
    assert!(printed.contains("SM2 (GB/T 32918.2, user id 1234567812345678)"));
    let key_file = d.join("court.sign.key");
    let key = SigningKey::load(&key_file).unwrap();
    assert_eq!(key.suite(), Suite::Gm);
    let public = VerifyKey::load(&d.join("court.sign.pub")).unwrap();
    assert_eq!(public, key.verify_key());
    assert_eq!(public.to_hex().len(), 130);
    // OpenSSL reads the private key as an SM2 key and derives the same public point
    let text = String::from_utf8(
        openssl(&["pkey", "-in", key_file.to_str().unwrap(), "-text", "-noout"]).stdout,
    )
    .unwrap();
    assert!(text.contains("ASN1 OID: SM2"), "{text}");
    let pub_pem = d.join("court.pub.pem");
    openssl(&[
        "pkey",
        "-in",
        key_file.to_str().unwrap(),
        "-pubout",
        "-out",
        pub_pem.to_str().unwrap(),
    ]);
    let spki = openssl(&[
        "pkey",
        "-pubin",
        "-in",
        pub_pem.to_str().unwrap(),
        "-outform",
        "DER",
    ])
    .stdout;
    assert!(
        spki.ends_with(public.as_bytes()),
        "OpenSSL's public key is another point"
    );

    let msg = d.join("manifest.bin");
    let content = some_file(&msg, 4096);

    // OpenSSL signs, we verify
    let sig = openssl_sign(&key_file, &msg, suite::SM2_USER_ID, &d.join("openssl.sig"));
    assert!(public.verify(&content, &sig.to_bytes()));
    let mut changed = content.clone();
    changed[100] ^= 1;
    assert!(!public.verify(&changed, &sig.to_bytes()));
    // a signature under another user id does not verify
    let sig = openssl_sign(
        &key_file,
        &msg,
        "ALICE123@YAHOO.COM",
        &d.join("other-id.sig"),
    );
    assert!(!public.verify(&content, &sig.to_bytes()));

    // we sign, OpenSSL verifies
    let ours = key.sign(&content);
    assert_eq!(ours.len(), 64);
    let ours_der = d.join("ours.sig");
    let der = sm2::dsa::Signature::from_slice(&ours).unwrap().to_der();
    std::fs::write(&ours_der, der.as_bytes()).unwrap();
    assert!(
        openssl_verifies(&pub_pem, &msg, &ours_der),
        "OpenSSL refuses our SM2 signature"
    );
    std::fs::write(&msg, &changed).unwrap();
    assert!(
        !openssl_verifies(&pub_pem, &msg, &ours_der),
        "OpenSSL verified changed bytes"
    );
}

#[test]
fn sm3_and_hmac_sm3_of_real_files_equal_openssls() {
    let dir = tempfile::tempdir().unwrap();
    // sizes around SM3's 64-byte block and the 1 MiB pieces the gateway reads in
    for len in [0usize, 55, 56, 64, 1000, (1 << 20) + 3] {
        let path = dir.path().join(format!("f{len}"));
        let bytes = some_file(&path, len);
        let out =
            String::from_utf8(openssl(&["dgst", "-sm3", "-r", path.to_str().unwrap()]).stdout)
                .unwrap();
        let theirs = out.split_whitespace().next().unwrap().to_string();
        let mut h = suite::Hasher::new(Suite::Gm);
        for piece in bytes.chunks(777) {
            h.update(piece);
        }
        assert_eq!(hex::encode(h.finish()), theirs, "SM3 of {len} bytes");

        let key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
        let out = String::from_utf8(
            openssl(&[
                "mac",
                "-digest",
                "SM3",
                "-macopt",
                &format!("hexkey:{key}"),
                "-in",
                path.to_str().unwrap(),
                "HMAC",
            ])
            .stdout,
        )
        .unwrap();
        let tag = suite::hmac(Suite::Gm, &hex::decode(key).unwrap(), &bytes);
        assert_eq!(
            hex::encode_upper(tag),
            out.trim(),
            "HMAC-SM3 of {len} bytes"
        );
        assert!(suite::hmac_verify(
            Suite::Gm,
            &hex::decode(key).unwrap(),
            &bytes,
            &tag
        ));
    }
}

#[test]
fn a_node_refuses_an_sm2_key_while_its_pair_runs_the_default_suite() {
    let lab = common::Lab::new(27640);
    let gm = lab.dir.join("gm");
    keygen_gm(&gm, "court");
    let config = lab.config("court");
    let text = std::fs::read_to_string(&config).unwrap();
    let swapped = text.replace(
        "signing_key = \"certs/court.sign.key\"",
        "signing_key = \"gm/court.sign.key\"",
    );
    assert_ne!(swapped, text, "the lab's config names certs/court.sign.key");
    std::fs::write(&config, swapped).unwrap();
    let out = common::check(&config, &[]);
    assert!(!out.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("court.toml"), "{said}");
    assert!(said.contains("node.signing_key"), "{said}");
    assert!(
        said.contains("is an SM2 key (`isogate keygen --suite gm`)"),
        "{said}"
    );
    assert!(
        said.contains(
            "but this pair runs the default suite (`[node] suite`), which signs with Ed25519"
        ),
        "{said}"
    );
    assert!(
        said.contains("or set suite = \"gm\" under [node]"),
        "{said}"
    );
    let run = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("is an SM2 key"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// `isogate` with `args`: success, and standard output and error together.
fn isogate(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A pair made by `isogate init --suite gm` carries files both ways and a message on `link`:
/// the nodes sign with SM2, tag diode datagrams with HMAC-SM3 and seal at rest with SM4-GCM,
/// and both audit logs verify with their SM2 keys.
fn a_gm_pair_carries(port_base: u16, link: &str) {
    let lab = common::Lab::new_with(port_base, &["--suite", "gm", "--link", link]);
    for node in ["court", "internet"] {
        let text = std::fs::read_to_string(lab.config(node)).unwrap();
        assert!(text.contains("\nsuite = \"gm\"\n"), "{text}");
        let out = common::check(&lab.config(node), &[]);
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains("suite gm: signatures SM2"), "{said}");
        if link == "diode" {
            // the diode's datagrams are authenticated, and said not to be encrypted
            assert!(said.contains("tagged with HMAC-SM3"), "{said}");
            assert!(said.contains("NOT encrypted"), "{said}");
        } else {
            assert!(said.contains("QUIC over TLS 1.3"), "{said}");
            assert!(!said.contains("HMAC-SM3"), "{said}");
        }
        assert!(said.contains("SM4-GCM"), "{said}");
        // the hashes are SM3, and what the suite does not cover yet is said, not hidden
        assert!(said.contains("hashes SM3 (content, chunks"), "{said}");
        assert!(said.contains("not in the console"), "{said}");
    }
    let court = lab.start("court");
    let internet = lab.start("internet");
    let text = |lines: usize| -> Vec<u8> {
        (0..lines)
            .flat_map(|i| format!("第{i}行: public notice, suite gm\n").into_bytes())
            .collect()
    };
    // there: past 4 MiB, so that its SM3 hashes are taken by the take's read-back of its
    // SM4-sealed spool copy
    let (there, back) = (text(150_000), text(2_000));
    assert!(there.len() > 4 << 20);
    lab.publish("court", "to-internet", "there.txt", &there);
    lab.publish("internet", "to-court", "back.txt", &back);
    std::fs::write(
        lab.outbox("court", "notices").join("n1.json"),
        r#"{"type":"status","case":"(2026)吉01民初123号","text":"已立案 gm"}"#,
    )
    .unwrap();
    let landed = |node: &str, channel: &str, name: &str| {
        std::fs::read(lab.inbox(node, channel).join(name)).ok()
    };
    common::wait_until(60, "both files to land", || {
        landed("internet", "to-internet", "there.txt").is_some()
            && landed("court", "to-court", "back.txt").is_some()
    });
    assert_eq!(
        landed("internet", "to-internet", "there.txt").unwrap(),
        there
    );
    assert_eq!(landed("court", "to-court", "back.txt").unwrap(), back);
    common::wait_until(60, "the notice to be readable on the internet node", || {
        let (status, body) =
            common::http_get(lab.port_base + 5, "/v1/channels/notices/messages?limit=10");
        status == 200 && body.contains("已立案 gm")
    });
    assert!(lab.records("court", "refused").is_empty());
    assert!(lab.records("internet", "refused").is_empty());
    // a clean stop writes the last checkpoint, which covers every record
    assert!(court.stop().success());
    assert!(internet.stop().success());
    for node in ["court", "internet"] {
        let audit = lab.dir.join(node).join("audit");
        // the log's key is the node's SM2 key (130 hex digits), and it verifies
        let key = std::fs::read_to_string(audit.join("node.pub")).unwrap();
        assert_eq!(VerifyKey::parse(key.trim()).unwrap().suite(), Suite::Gm);
        let (ok, said) = isogate(&["audit", "verify", audit.to_str().unwrap()]);
        assert!(ok, "{node}: {said}");
        // its Merkle tree is SM3's: the last checkpoint's root is the SM3 tree of the
        // records, not the SHA-256 one
        let cp = isogate::audit::read::checkpoints(&audit)
            .unwrap()
            .pop()
            .unwrap();
        let root = |suite| {
            let leaves = isogate::audit::read::leaves(&audit, suite).unwrap();
            let hashes: Vec<_> = leaves[..cp.size as usize].iter().map(|l| l.0).collect();
            hex::encode(isogate::core::merkle::root_of(suite, &hashes))
        };
        assert_eq!(root(Suite::Gm), cp.root, "{node}");
        assert_ne!(root(Suite::Default), cp.root, "{node}");
    }
    // the SM3 the audit records of each file, on both nodes, is OpenSSL's `dgst -sm3` of
    // the file delivered; no record of a gm log names a SHA-256
    let sm3_of = |path: &Path| {
        let out =
            String::from_utf8(openssl(&["dgst", "-sm3", "-r", path.to_str().unwrap()]).stdout)
                .unwrap();
        out.split_whitespace().next().unwrap().to_string()
    };
    for (from, to, channel, name) in [
        ("court", "internet", "to-internet", "there.txt"),
        ("internet", "court", "to-court", "back.txt"),
    ] {
        let theirs = sm3_of(&lab.inbox(to, channel).join(name));
        let named = |node: &str, event: &str| {
            lab.records(node, event)
                .into_iter()
                .find(|r| r.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("{node} has no {event} record of {name}"))
        };
        for r in [named(from, "sent"), named(to, "landed")] {
            assert_eq!(r.sm3.as_deref(), Some(theirs.as_str()), "{r:?}");
            assert_eq!(r.sha256, None, "{r:?}");
        }
        // and `audit query --sm3` finds the landing by it
        let audit = lab.dir.join(to).join("audit");
        let (ok, said) = isogate(&[
            "audit",
            "query",
            audit.to_str().unwrap(),
            "--sm3",
            &theirs,
            "--format",
            "csv",
        ]);
        assert!(
            ok && said.contains(name) && said.contains(&theirs),
            "{said}"
        );
        // a SHA-256 search of a gm log finds nothing, and says why
        let (ok, said) = isogate(&[
            "audit",
            "query",
            audit.to_str().unwrap(),
            "--sha256",
            &theirs,
        ]);
        assert!(
            ok && said.contains("its records name the content's SM3 (`--sm3`)"),
            "{said}"
        );
    }
    for node in ["court", "internet"] {
        let all = common::read_live(&lab.dir.join(node).join("audit"));
        assert!(all.iter().all(|r| r.sha256.is_none()), "{node}: {all:?}");
    }
    // a message's record carries the SM3 of its body
    let accepted = lab.records("court", "message_accepted");
    let body = r#"{"case":"(2026)吉01民初123号","text":"已立案 gm","type":"status"}"#;
    let want = hex::encode(suite::digest(Suite::Gm, body.as_bytes()));
    assert!(
        accepted
            .iter()
            .any(|r| r.sm3.as_deref() == Some(want.as_str())),
        "{accepted:?}"
    );
    // an inclusion proof of the landing verifies with the internet node's SM2 key only
    let landed = lab.records("internet", "landed");
    let id = landed
        .iter()
        .find(|r| r.name.as_deref() == Some("there.txt"))
        .and_then(|r| r.object_id.clone())
        .unwrap();
    let proof = lab.dir.join("proof.json");
    let log = lab.dir.join("internet/audit");
    let (ok, said) = isogate(&[
        "audit",
        "prove",
        log.to_str().unwrap(),
        &id,
        "--out",
        proof.to_str().unwrap(),
    ]);
    assert!(ok, "{said}");
    let verify_with = |key: &str| {
        let key = lab.dir.join("certs").join(key);
        isogate(&[
            "audit",
            "verify-proof",
            proof.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ])
    };
    let (ok, said) = verify_with("internet.sign.pub");
    assert!(ok && said.contains("landed"), "{said}");
    assert!(!verify_with("court.sign.pub").0);
}

#[test]
fn a_gm_pair_carries_files_and_messages_both_ways_over_quic() {
    a_gm_pair_carries(27720, "quic");
}

#[test]
fn a_gm_pair_carries_files_and_messages_both_ways_over_the_diode() {
    a_gm_pair_carries(27740, "diode");
}

/// The internet node of a `gm` lab turned into a default-suite node that is sound on its
/// own (its own Ed25519 and AES keys, an Ed25519 key pinned as the court's), keeping its
/// TLS certificate and the diode key: the two ends meet, and each says that the suites
/// differ.
fn turn_internet_default(lab: &common::Lab) -> std::path::PathBuf {
    let own = lab.dir.join("own");
    for name in ["internet", "court"] {
        let (ok, said) = isogate(&["keygen", "--name", name, "--out", own.to_str().unwrap()]);
        assert!(ok, "{said}");
    }
    let data = own.join("internet.data.key");
    let (ok, said) = isogate(&["keygen", "--data-key", data.to_str().unwrap()]);
    assert!(ok, "{said}");
    let text = std::fs::read_to_string(lab.config("internet")).unwrap();
    let changed = text
        .replace("\nsuite = \"gm\"\n", "\n")
        .replace(
            "signing_key = \"certs/internet.sign.key\"",
            "signing_key = \"own/internet.sign.key\"",
        )
        .replace(
            "data_key = \"certs/internet.data.key\"",
            "data_key = \"own/internet.data.key\"",
        )
        .replace(
            "signing_public_key = \"certs/court.sign.pub\"",
            "signing_public_key = \"own/court.sign.pub\"",
        );
    assert_eq!(changed.matches("own/").count(), 3, "{changed}");
    let config = lab.dir.join("internet-default.toml");
    std::fs::write(&config, changed).unwrap();
    let out = common::check(&config, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    config
}

#[test]
fn mixed_suites_fail_at_start_up_with_a_clear_error() {
    // one node's configuration mixing suites does not start
    let lab = common::Lab::new_with(27760, &["--suite", "gm"]);
    let config = lab.config("internet");
    let text = std::fs::read_to_string(&config).unwrap();
    let mixed = lab.dir.join("internet-mixed.toml");
    std::fs::write(&mixed, text.replace("\nsuite = \"gm\"\n", "\n")).unwrap();
    let (ok, said) = isogate(&["run", "--config", mixed.to_str().unwrap()]);
    assert!(!ok);
    for key in ["node.signing_key", "peer.signing_public_key"] {
        assert!(said.contains(key), "{key}: {said}");
    }
    assert!(
        said.contains(
            "is an SM2 key (`isogate keygen --suite gm`), but this pair runs the default suite"
        ),
        "{said}"
    );
    // a default pair may seal at rest with SM4-GCM: the data key is the node's own
    assert!(!said.contains("node.data_key"), "{said}");
    assert!(!lab.dir.join("internet/audit/node.pub").exists());
    // a gm node whose data key seals with AES-256-GCM does not start either
    let aes = lab.dir.join("aes.data.key");
    let (ok, said) = isogate(&["keygen", "--data-key", aes.to_str().unwrap()]);
    assert!(ok, "{said}");
    let with_aes = lab.dir.join("internet-aes.toml");
    std::fs::write(
        &with_aes,
        text.replace(
            "data_key = \"certs/internet.data.key\"",
            "data_key = \"aes.data.key\"",
        ),
    )
    .unwrap();
    let (ok, said) = isogate(&["run", "--config", with_aes.to_str().unwrap()]);
    assert!(!ok);
    assert!(said.contains("node.data_key"), "{said}");
    assert!(
        said.contains(
            "its current key is AES-256-GCM (default suite), but this pair runs the gm suite"
        ),
        "{said}"
    );
    assert!(
        said.contains("`isogate keygen --data-key FILE --suite gm`"),
        "{said}"
    );
    // a suite that is no suite is the one error, not one more per key
    let junk = lab.dir.join("internet-junk.toml");
    std::fs::write(&junk, text.replace("suite = \"gm\"", "suite = \"GM\"")).unwrap();
    let (ok, said) = isogate(&["run", "--config", junk.to_str().unwrap()]);
    assert!(!ok);
    assert!(said.contains("node.suite"), "{said}");
    assert!(said.contains("unknown suite \"GM\""), "{said}");
    assert!(!said.contains("this pair runs"), "{said}");

    // two nodes each sound on its own, of different suites: the QUIC handshake fails on
    // both ends, which say why, and nothing crosses
    let default = turn_internet_default(&lab);
    let _internet = lab.start_with("internet", &default);
    let _court = lab.start("court");
    lab.publish("court", "to-internet", "never.txt", b"must not cross\n");
    common::wait_until(30, "both nodes to name the other suite", || {
        lab.log("court")
            .contains("the peer runs another suite than this node's gm")
            && lab
                .log("internet")
                .contains("the peer runs another suite than this node's default")
    });
    assert!(common::visible(&lab.inbox("internet", "to-internet")).is_empty());
    assert!(lab.records("court", "link_up").is_empty());
}

#[test]
fn a_diode_receiver_of_another_suite_names_the_senders_suite() {
    let lab = common::Lab::new_with(27780, &["--suite", "gm", "--link", "diode"]);
    let default = turn_internet_default(&lab);
    let _internet = lab.start_with("internet", &default);
    let _court = lab.start("court");
    lab.publish("court", "to-internet", "never.txt", b"must not cross\n");
    common::wait_until(30, "the receiver to name the sender's suite", || {
        lab.log("internet").contains(
            "its datagrams carry HMAC-SM3 tags under this link's key: the sender runs the gm suite, this node the default",
        )
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(common::visible(&lab.inbox("internet", "to-internet")).is_empty());
}
