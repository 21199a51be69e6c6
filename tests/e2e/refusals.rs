//! Refusals at the link: an unknown peer cannot connect; an object with a bad signature, a
//! wrong chunk hash or a wrong channel is refused and quarantined; a replayed object is not
//! delivered twice. The test plays the court node itself, with the lab's court certificate.

use crate::common;
use common::*;
use isogate::core::manifest::{CHUNK_SIZE, Manifest};
use isogate::core::wire::{RECEIPT_LEN, Receipt, ReceiptStatus, encode_object_frame};
use isogate::keys::tls::{Identity, SERVER_NAME, client_config};
use isogate::keys::{self, SigningKey};
use std::fs;
use std::time::Duration;

#[test]
fn unknown_peer_cannot_connect() {
    let lab = Lab::new(21470);
    let out = std::process::Command::new(BIN)
        .args(["keygen", "--name", "mallory", "--out"])
        .arg(lab.dir.join("mallory"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = fs::read_to_string(lab.config("court"))
        .unwrap()
        .replace("certs/court.tls.crt", "mallory/mallory.tls.crt")
        .replace("certs/court.tls.key", "mallory/mallory.tls.key");
    let mallory = lab.dir.join("court-mallory.toml");
    fs::write(&mallory, text).unwrap();
    let _internet = lab.start("internet");
    let _court = lab.start_with("court", &mallory);
    lab.publish("court", "to-internet", "never.txt", b"must not cross\n");
    // the file is taken and waits, safe, in the sender's spool
    let spool = lab.dir.join("court/state/spool/to-internet");
    wait_until(20, "the file to be spooled", || {
        fs::read_dir(&spool)
            .map(|d| d.count() == 1)
            .unwrap_or(false)
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(visible(&lab.inbox("internet", "to-internet")).is_empty());
    assert_eq!(fs::read_dir(&spool).unwrap().count(), 1);
    let log = lab.log("internet");
    assert!(log.contains("refused a connection"), "{log}");
    assert!(log.contains("invalid peer certificate"), "{log}");
    let attempts = log.matches("refused a connection").count();
    assert!(attempts < 20, "the sender backs off: {attempts} attempts");
}

struct Forger {
    key: SigningKey,
    conn: quinn::Connection,
    receipts: quinn::RecvStream,
    _ep: quinn::Endpoint,
}

/// Connects to the internet node's QUIC link with the lab's court certificate.
async fn dial(lab: &Lab) -> (quinn::Endpoint, quinn::Connection) {
    let certs = lab.dir.join("certs");
    let id = Identity {
        cert: keys::load_cert(&certs.join("court.tls.crt")).unwrap(),
        key: keys::load_tls_key(&certs.join("court.tls.key")).unwrap(),
        peer_cert: keys::load_cert(&certs.join("internet.tls.crt")).unwrap(),
    };
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(client_config(&id).unwrap());
    let addr = format!("127.0.0.1:{}", lab.port_base + 1).parse().unwrap();
    for _ in 0..100 {
        let attempt = tokio::time::timeout(
            Duration::from_secs(2),
            ep.connect(addr, SERVER_NAME).unwrap(),
        );
        match attempt.await {
            Ok(Ok(c)) => return (ep, c),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("the internet node accepts the court certificate");
}

impl Forger {
    async fn connect(lab: &Lab) -> Forger {
        let certs = lab.dir.join("certs");
        let (ep, conn) = dial(lab).await;
        // The receiver opens its receipt stream with the first receipt; prime it with an
        // object, then keep the stream.
        let key = SigningKey::load(&certs.join("court.sign.key")).unwrap();
        let probe = manifest(b"probe\n", "probe.txt", "to-internet");
        let mut send = conn.open_uni().await.unwrap();
        send_object(&mut send, &probe, &key, b"probe\n").await;
        let mut receipts = conn.accept_uni().await.unwrap();
        let r = read_receipt(&mut receipts).await;
        assert_eq!(r.status, ReceiptStatus::Landed);
        Forger {
            key,
            conn,
            receipts,
            _ep: ep,
        }
    }

    async fn send(&mut self, m: &Manifest, key: Option<&SigningKey>, content: &[u8]) -> Receipt {
        let mut send = self.conn.open_uni().await.unwrap();
        send_object(&mut send, m, key.unwrap_or(&self.key), content).await;
        read_receipt(&mut self.receipts).await
    }
}

async fn send_object(send: &mut quinn::SendStream, m: &Manifest, key: &SigningKey, content: &[u8]) {
    let payload = m.sign(key).unwrap().encode().unwrap();
    let _ = send
        .write_all(&encode_object_frame(&payload).unwrap())
        .await;
    let _ = send.write_all(content).await;
    let _ = send.finish();
}

async fn read_receipt(r: &mut quinn::RecvStream) -> Receipt {
    let mut buf = [0u8; RECEIPT_LEN];
    tokio::time::timeout(Duration::from_secs(20), r.read_exact(&mut buf))
        .await
        .expect("a receipt in time")
        .unwrap();
    Receipt::decode(&buf).unwrap()
}

#[test]
fn forged_replayed_and_misdirected_objects_are_refused() {
    let lab = Lab::new(21480);
    let _internet = lab.start("internet");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut f = Forger::connect(&lab).await;
        let inbox = lab.inbox("internet", "to-internet");
        let q = lab.quarantine("internet", "to-internet");

        // A replayed object is acknowledged, not delivered twice.
        let content = "重放测试\n".as_bytes();
        let m = manifest(content, "replay.txt", "to-internet");
        assert_eq!(
            f.send(&m, None, content).await.status,
            ReceiptStatus::Landed
        );
        assert_eq!(
            f.send(&m, None, content).await.status,
            ReceiptStatus::Duplicate
        );
        assert_eq!(visible(&inbox), vec!["probe.txt", "replay.txt"]);

        // Signed by another key: refused before any content is read.
        let other = SigningKey::generate().unwrap();
        let m = manifest(b"forged\n", "forged.txt", "to-internet");
        let r = f.send(&m, Some(&other), b"forged\n").await;
        assert_eq!(r.status, ReceiptStatus::Refused);
        assert_eq!(r.object_id, m.object_id);
        assert_eq!(
            reasons(&lab.dir.join("internet/quarantine/_unverified")),
            vec!["bad_signature"]
        );

        // A chunk that does not match its hash: quarantined with its content.
        let good = vec![b'a'; 3 * CHUNK_SIZE as usize / 2];
        let mut bad = good.clone();
        bad[CHUNK_SIZE as usize + 10] = b'b';
        let m = manifest(&good, "tampered.txt", "to-internet");
        assert_eq!(
            f.send(&m, None, &bad).await.status,
            ReceiptStatus::Quarantined
        );
        assert_eq!(reasons(&q), vec!["chunk_hash"]);
        assert!(q.join(m.object_id.to_string()).is_file());
        // ... and a resend of it is a duplicate, not a second chance
        assert_eq!(
            f.send(&m, None, &good).await.status,
            ReceiptStatus::Duplicate
        );

        // A large object, whose chunks are checked beside the write on a thread of their
        // own: a bad chunk in the middle, and a bad last chunk, each quarantined the same
        let large = vec![b'c'; 6 * CHUNK_SIZE as usize + 777];
        for (at, name) in [
            (2 * CHUNK_SIZE as usize + 5, "large-middle.txt"),
            (large.len() - 1, "large-last.txt"),
        ] {
            let mut bad = large.clone();
            bad[at] = b'd';
            let m = manifest(&large, name, "to-internet");
            assert_eq!(
                f.send(&m, None, &bad).await.status,
                ReceiptStatus::Quarantined,
                "{name}"
            );
            assert!(q.join(m.object_id.to_string()).is_file(), "{name}");
        }
        assert_eq!(reasons(&q), vec!["chunk_hash"; 3]);

        // A channel the internet node does not receive from the court.
        let m = manifest(b"x\n", "wrong.txt", "to-court");
        assert_eq!(
            f.send(&m, None, b"x\n").await.status,
            ReceiptStatus::Refused
        );

        // A name that breaks the rules, though signed: refused unread ...
        let m = manifest(b"x\n", "..", "to-internet");
        assert_eq!(
            f.send(&m, None, b"x\n").await.status,
            ReceiptStatus::Refused
        );
        // ... and refused again when sent again (a lost receipt): never a "duplicate" that
        // would let the sender forget content that exists nowhere else
        assert_eq!(
            f.send(&m, None, b"x\n").await.status,
            ReceiptStatus::Refused
        );

        // Short content: the stream ends early.
        let m = manifest(b"complete content\n", "short.txt", "to-internet");
        assert_eq!(
            f.send(&m, None, b"compl").await.status,
            ReceiptStatus::Quarantined
        );

        assert_eq!(visible(&inbox), vec!["probe.txt", "replay.txt"]);
        let mut all = reasons(&q);
        all.sort();
        assert_eq!(
            all,
            vec![
                "chunk_hash",
                "chunk_hash",
                "chunk_hash",
                "name_refused",
                "size_mismatch"
            ]
        );
    });
}

#[test]
fn an_object_over_a_link_its_channel_does_not_use_is_refused() {
    // to-internet crosses on the diode; to-court on QUIC, so the internet node listens
    // for QUIC too. An object of to-internet arriving over QUIC, though signed by the
    // peer, is refused unread: a channel crosses only on the link it is configured for.
    let lab = Lab::new_with(21490, &["--link", "diode"]);
    let cfg = lab.config("internet");
    let text = fs::read_to_string(&cfg).unwrap();
    let i = text.find("name = \"to-court\"").unwrap();
    let (head, tail) = text.split_at(i);
    let tail = tail
        .replacen("link = \"diode\"", "link = \"quic\"", 1)
        .replace("[diode]\n", "[diode]\nlisten = \"127.0.0.1:29979\"\n");
    fs::write(&cfg, format!("{head}{tail}")).unwrap();
    let out = check(&cfg, &[]);
    assert!(out.status.success(), "{out:?}");
    let _internet = lab.start("internet");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt.block_on(async {
        let (_ep, conn) = dial(&lab).await;
        let key = SigningKey::load(&lab.dir.join("certs/court.sign.key")).unwrap();
        let content = b"over the wrong link\n";
        let m = manifest(content, "wrong-link.txt", "to-internet");
        let mut send = conn.open_uni().await.unwrap();
        send_object(&mut send, &m, &key, content).await;
        let mut receipts = conn.accept_uni().await.unwrap();
        let r = read_receipt(&mut receipts).await;
        assert_eq!(r.status, ReceiptStatus::Refused);
        assert_eq!(r.object_id, m.object_id);
        m.object_id
    });
    assert_eq!(
        reasons(&lab.dir.join("internet/quarantine/_unverified")),
        vec!["wrong_channel"]
    );
    assert!(visible(&lab.inbox("internet", "to-internet")).is_empty());
    let log = lab.log("internet");
    assert!(log.contains("wrong_channel"), "{log}");
    let out = std::process::Command::new(BIN)
        .args(["audit", "query"])
        .arg(lab.dir.join("internet/audit"))
        .args(["--reason", "wrong_channel", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&id.to_string()), "{text}");
    assert!(text.contains("quarantined"), "{text}");
}
