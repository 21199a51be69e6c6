//! The diode negotiates nothing, so mismatched settings must be loud: end to end, as
//! root, in network namespaces. A last hop whose MTU is below the configured one is named
//! by the receiver (log, `/healthz`, metric, audit) and, with `mtu` set to the path's on
//! both nodes, carries files; `isogate check` on the receiving host warns beforehand. A
//! receiver whose mtu is smaller than the sender's, or that holds another datagram key,
//! says so in the same four places, naming both values or the session.
//!
//! ```text
//!   court ns (sender)   veth mtu A ══ veth mtu B   internet ns (receiver)
//!   last hop 1400:      A = 1500,  B = 1400        mtu 1500: named; mtu 1400: delivers
//!   receiver mtu 1500:  A = B = 9000               sender mtu 9000: too_long, `mtu`
//!   another key:        A = B = 1500               bad_tag, the session named
//! ```

use crate::common;

use common::net::*;
use common::*;
use std::fs;
use std::time::{Duration, Instant};

/// Sets the MTU of a namespace's veth.
fn set_mtu(netns: &str, dev: &str, mtu: u16) {
    ns(
        netns,
        &["ip", "link", "set", "dev", dev, "mtu", &mtu.to_string()],
    );
}

/// The receiver's `/healthz` body.
fn healthz(net: &Net, port_base: u16) -> String {
    ns(
        &net.rcv,
        &[
            "curl",
            "-s",
            &format!("http://127.0.0.1:{}/healthz", port_base + 3),
        ],
    )
}

/// Polls `cond` every 200 ms for up to `secs`; on time-out fails with both logs.
fn wait_for(lab: &common::Lab, secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}\n--- court ---\n{}\n--- internet ---\n{}",
            tail(&lab.log("court")),
            tail(&lab.log("internet"))
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The details of the receiver's `link_mismatch` audit records.
fn mismatch_details(lab: &common::Lab) -> Vec<String> {
    lab.records("internet", "link_mismatch")
        .into_iter()
        .filter_map(|r| r.detail)
        .collect()
}

/// Starts the receiver, then the sender, each in its namespace.
fn start_pair(lab: &common::Lab, net: &Net) -> (Running, Running) {
    let internet = start_in(lab, "internet", &net.rcv);
    wait_for(lab, 30, "the receiver", || {
        lab.log("internet").contains("diode receiver up")
    });
    let court = start_in(lab, "court", &net.snd);
    wait_for(lab, 30, "the sender", || {
        lab.log("court").contains("diode sender up")
    });
    (internet, court)
}

#[test]
fn a_last_hop_of_mtu_1400_is_named_with_mtu_1500_and_carries_files_with_mtu_1400() {
    let port_base = 24810;
    let net = Net::new(51, "0%");
    // the last hop (the receiver's side of the wire) carries 1400 bytes at most
    set_mtu(&net.rcv, &net.rcv_veth, 1400);
    let lab = diode_lab(port_base, &net, &[]);
    // `isogate check` on the receiving host sees the interface toward the peer
    let out = ns(
        &net.rcv,
        &[
            BIN,
            "check",
            "--config",
            lab.config("internet").to_str().unwrap(),
        ],
    );
    assert!(
        out.contains("warning:") && out.contains("mtu = 1500 exceeds the MTU 1400"),
        "{out}"
    );
    let (internet, court) = start_pair(&lab, &net);
    lab.publish_generated("court", "to-internet", "一千字节.pdf", 1000, 1);
    wait_for(&lab, 30, "/healthz to name the path MTU", || {
        healthz(&net, port_base).contains("path MTU below mtu = 1500")
    });
    let m = metrics(&net.rcv, port_base + 3);
    assert_eq!(
        sample(&m, "isogate_diode_mismatch{reason=\"no_data\"}"),
        1.0,
        "{m}"
    );
    assert!(
        m.contains("isogate_diode_dropped_total{reason=\"too_long\"} 0"),
        "the drop counters exist from the start: {m}"
    );
    assert!(
        lab.log("internet")
            .contains("heartbeats arrive but no data"),
        "{}",
        tail(&lab.log("internet"))
    );
    wait_for(&lab, 20, "the audit record", || {
        mismatch_details(&lab)
            .iter()
            .any(|d| d.starts_with("no_data:") && d.contains("1500"))
    });
    assert!(visible(&lab.inbox("internet", "to-internet")).is_empty());
    assert_eq!(net.dropped_toward_sender(), 0, "the receiver tried to send");

    // the remedy: the path's MTU on both nodes; the file is still in the sender's repeat
    // window and crosses after the restart, and so does a larger one
    court.stop();
    internet.stop();
    for node in ["court", "internet"] {
        let file = lab.config(node);
        let text = set_diode_key(&fs::read_to_string(&file).unwrap(), "mtu", "1400");
        fs::write(&file, text).unwrap();
    }
    let _pair = start_pair(&lab, &net);
    lab.publish_generated("court", "to-internet", "一兆字节.pdf", 1 << 20, 2);
    let inbox = lab.inbox("internet", "to-internet");
    wait_for(&lab, 40, "both files to land", || {
        visible(&inbox).len() == 2
    });
    assert_eq!(
        sha256_file(&inbox.join("一千字节.pdf")),
        sha256_of_generated(1000, 1)
    );
    assert_eq!(
        sha256_file(&inbox.join("一兆字节.pdf")),
        sha256_of_generated(1 << 20, 2)
    );
    assert_eq!(healthz(&net, port_base).trim(), "ok");
    net.assert_one_way();
}

#[test]
fn a_receiver_with_a_smaller_mtu_than_the_sender_is_loud() {
    let port_base = 24820;
    let net = Net::new(52, "0%");
    set_mtu(&net.snd, &net.snd_veth, 9000);
    set_mtu(&net.rcv, &net.rcv_veth, 9000);
    let lab = diode_lab(port_base, &net, &[]);
    let file = lab.config("court");
    let text = set_diode_key(&fs::read_to_string(&file).unwrap(), "mtu", "9000");
    fs::write(&file, text).unwrap();
    let (_internet, _court) = start_pair(&lab, &net);
    lab.publish_generated("court", "to-internet", "巨帧.pdf", 200_000, 3);
    wait_for(&lab, 30, "/healthz to name both MTUs", || {
        let h = healthz(&net, port_base);
        h.contains("mtu = 9000") && h.contains("mtu = 1500")
    });
    wait_for(&lab, 10, "over-long datagrams to be counted", || {
        let m = metrics(&net.rcv, port_base + 3);
        sample(&m, "isogate_diode_dropped_total{reason=\"too_long\"}") > 0.0
            && sample(&m, "isogate_diode_mismatch{reason=\"mtu\"}") == 1.0
    });
    let log = lab.log("internet");
    assert!(
        log.contains("WARN") && log.contains("diode link mismatch") && log.contains("9000"),
        "{}",
        tail(&log)
    );
    // said once per change, not per heartbeat
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        lab.log("internet").matches("diode link mismatch").count(),
        1,
        "{}",
        tail(&lab.log("internet"))
    );
    wait_for(&lab, 20, "the audit record", || {
        mismatch_details(&lab)
            .iter()
            .any(|d| d.starts_with("mtu:") && d.contains("9000") && d.contains("1500"))
    });
    assert!(visible(&lab.inbox("internet", "to-internet")).is_empty());
    net.assert_one_way();
}

#[test]
fn a_receiver_with_another_datagram_key_names_the_session() {
    let port_base = 24830;
    let net = Net::new(53, "0%");
    let lab = diode_lab(port_base, &net, &[]);
    // the receiver reinstalled with a key of its own
    fs::write(
        lab.dir.join("certs/other.key"),
        format!("{}\n", "5a".repeat(32)),
    )
    .unwrap();
    let file = lab.config("internet");
    let text = set_diode_key(
        &fs::read_to_string(&file).unwrap(),
        "key",
        "\"certs/other.key\"",
    );
    fs::write(&file, text).unwrap();
    let (_internet, _court) = start_pair(&lab, &net);
    let session = lab
        .log("court")
        .split("session=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .map(|s| s.trim_matches('"').to_string())
        .expect("the sender logs its session");
    lab.publish_generated("court", "to-internet", "换钥.pdf", 50_000, 4);
    wait_for(&lab, 30, "/healthz to name the failing heartbeats", || {
        let h = healthz(&net, port_base);
        h.contains("fail authentication") && h.contains(&session)
    });
    wait_for(
        &lab,
        10,
        "datagrams failing authentication to be counted",
        || {
            let m = metrics(&net.rcv, port_base + 3);
            sample(&m, "isogate_diode_dropped_total{reason=\"bad_tag\"}") > 0.0
        },
    );
    wait_for(&lab, 20, "the audit record", || {
        mismatch_details(&lab).iter().any(|d| {
            d.starts_with("key:")
                && d.contains(&format!("could not authenticate session {session}"))
                && d.contains(&net.snd_ip)
                && d.contains("other datagram key?")
        })
    });
    // once per session, however many datagrams fail
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        mismatch_details(&lab)
            .iter()
            .filter(|d| d.starts_with("key:"))
            .count(),
        1
    );
    assert!(
        lab.log("internet")
            .contains("could not authenticate session"),
        "{}",
        tail(&lab.log("internet"))
    );
    assert!(visible(&lab.inbox("internet", "to-internet")).is_empty());
    net.assert_one_way();
}
