//! The national (国密) suite's primitives against OpenSSL 3, an independent implementation
//! run as a real process: SM2 keys made by `isogate keygen --suite gm` are read by OpenSSL,
//! signatures cross both ways with the standard user id, SM3 digests and HMAC-SM3 tags of
//! real files agree; and a node refuses an SM2 key while its pair runs the default suite.

mod common;

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
    assert!(said.contains("a node signs with Ed25519 only"), "{said}");
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
