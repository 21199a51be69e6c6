//! Operations end to end: the metrics a supervision platform scrapes agree with what
//! crossed, `/healthz` says when the node cannot do its job, and a file system that fills
//! up pauses intake without losing anything (a real tmpfs, mounted by the test as root).

use crate::common;

use common::http_get as get;
use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The value of one sample line (`name{labels}`) in Prometheus text, 0 if absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn metrics_count_what_crossed_and_health_follows_the_link() {
    let lab = Lab::new(21600);
    let (court_port, internet_port) = (21602, 21603);
    let _court = lab.start("court");
    let internet = lab.start("internet");
    let mut sent_bytes = 0u64;
    for i in 0..5u64 {
        let size = 1000 + i * 4096;
        lab.publish_generated("court", "to-internet", &format!("卷宗-{i}.pdf"), size, i);
        sent_bytes += size;
    }
    let mut elf = b"\x7fELF\x02\x01\x01\0".to_vec();
    elf.resize(512, 0);
    lab.publish("court", "to-internet", "tool.pdf", &elf);
    let inbox = lab.inbox("internet", "to-internet");
    wait_until(30, "five files", || visible(&inbox).len() == 5);
    // the receipt is counted, then the spool entry goes: wait for both, and for the
    // refusal (the five can land before the last file is even taken)
    wait_until(
        30,
        "five receipts and a refusal counted, the spool empty",
        || {
            let (_, m) = get(court_port, "/metrics");
            sample(
                &m,
                "isogate_transmit_receipts_total{channel=\"to-internet\",status=\"landed\"}",
            ) == 5.0
                && sample(
                    &m,
                    "isogate_refusals_total{channel=\"to-internet\",reason=\"type_refused\"}",
                ) == 1.0
                && sample(&m, "isogate_spool_objects{channel=\"to-internet\"}") == 0.0
        },
    );
    let (status, court) = get(court_port, "/metrics");
    assert_eq!(status, 200);
    let c = "{channel=\"to-internet\"}";
    assert_eq!(
        sample(&court, &format!("isogate_intake_objects_total{c}")),
        6.0
    );
    assert_eq!(
        sample(&court, &format!("isogate_transmit_objects_total{c}")),
        5.0
    );
    assert_eq!(
        sample(&court, &format!("isogate_transmit_bytes_total{c}")),
        sent_bytes as f64
    );
    assert_eq!(
        sample(
            &court,
            "isogate_refusals_total{channel=\"to-internet\",reason=\"type_refused\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(&court, &format!("isogate_quarantine_objects{c}")),
        1.0
    );
    assert_eq!(sample(&court, &format!("isogate_spool_objects{c}")), 0.0);
    assert_eq!(
        sample(
            &court,
            &format!("isogate_transmit_receipt_seconds_count{c}")
        ),
        5.0
    );
    assert_eq!(sample(&court, "isogate_link_up{link=\"quic\"}"), 1.0);
    // loopback carries the largest packets the link probes for (RFC 8899): the peer's
    // transport parameter allows them
    let mtu = |port| {
        sample(
            &get(port, "/metrics").1,
            "isogate_link_path_mtu_bytes{link=\"quic\"}",
        )
    };
    wait_until(30, "the path MTU discovered up to 6550 bytes", || {
        mtu(court_port) == 6550.0
    });
    assert!(court.contains("isogate_link_lost_packets_total{link=\"quic\"}"));
    assert!(court.contains("isogate_policy_info{channel=\"to-internet\",version=\""));
    assert!(sample(&court, "isogate_disk_free_bytes{dir=\"state\"}") > 0.0);

    let (_, internet_metrics) = get(internet_port, "/metrics");
    assert_eq!(
        sample(&internet_metrics, &format!("isogate_land_objects_total{c}")),
        5.0
    );
    assert_eq!(
        sample(&internet_metrics, &format!("isogate_land_bytes_total{c}")),
        sent_bytes as f64
    );
    let landed: u64 = visible(&inbox)
        .iter()
        .map(|n| fs::metadata(inbox.join(n)).unwrap().len())
        .sum();
    assert_eq!(landed, sent_bytes);
    // and a file of many full GSO sends of them crosses without the path falling back
    // (a send too long for the kernel loses its 10 packets, and a few such losses make
    // quinn's black-hole detection drop to 1200 bytes)
    lab.publish_generated("court", "to-internet", "大卷宗.pdf", 32 << 20, 9);
    wait_until(60, "the 32 MiB file", || visible(&inbox).len() == 6);
    assert_eq!(mtu(court_port), 6550.0);

    assert_eq!(get(court_port, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(get(court_port, "/nowhere").0, 404);
    // the peer goes away: the court's link drops and its health says so
    drop(internet);
    wait_until(30, "the court to report the link down", || {
        get(court_port, "/healthz").0 == 503
    });
    assert!(get(court_port, "/healthz").1.contains("link: quic down"));
    // no path while the link is down
    wait_until(10, "the path MTU to read 0", || mtu(court_port) == 0.0);
}

/// A tmpfs mounted for the test; unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount(8) is needed for the disk-full test");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_pauses_intake_and_nothing_is_lost() {
    let outer = tempfile::tempdir().unwrap();
    let _fs = Tmpfs::mount(&outer.path().join("fs"), "64m");
    let dir = outer.path().join("fs").join("lab");
    let out = Command::new(BIN)
        .args(["init", dir.to_str().unwrap(), "--port-base", "21610"])
        .output()
        .unwrap();
    assert!(out.status.success());
    for node in ["court", "internet"] {
        let file = dir.join(format!("{node}.toml"));
        let text = fs::read_to_string(&file).unwrap();
        fs::write(
            &file,
            text.replace("min_free_bytes = 268435456", "min_free_bytes = 10485760"),
        )
        .unwrap();
    }
    let lab = Lab::at(dir, 21610);
    // ballast leaves 17 MiB free: a 2 MiB file crosses above the 10 MiB floor (the
    // receiver wants the floor plus the file's size free), an 8 MiB one then does not
    let ballast = lab.dir.join("ballast");
    let free = isogate::node::health::free_bytes(&lab.dir).unwrap();
    write_generated(&ballast, free - (17 << 20), 7);
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    let inbox = lab.inbox("internet", "to-internet");
    lab.publish_generated("court", "to-internet", "a.pdf", 2 << 20, 1);
    wait_until(30, "a.pdf", || inbox.join("a.pdf").exists());
    // 8 MiB more in the outbox: below the floor, so the file stays where it is
    lab.publish_generated("court", "to-internet", "b.pdf", 8 << 20, 2);
    wait_until(30, "intake to pause", || {
        let (_, m) = get(21612, "/metrics");
        sample(&m, "isogate_intake_paused") == 1.0
    });
    let (status, body) = get(21612, "/healthz");
    assert_eq!(status, 503);
    assert!(body.contains("below the floor"), "{body}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(lab.outbox("court", "to-internet").join("b.pdf").exists());
    assert!(!inbox.join("b.pdf").exists());
    // space returns: intake resumes by itself and the file crosses intact
    fs::remove_file(&ballast).unwrap();
    wait_until(60, "b.pdf after space returned", || {
        inbox.join("b.pdf").exists()
    });
    assert_eq!(
        sha256_file(&inbox.join("b.pdf")),
        sha256_of_generated(8 << 20, 2)
    );
    assert_eq!(
        sha256_file(&inbox.join("a.pdf")),
        sha256_of_generated(2 << 20, 1)
    );
    let (_, m) = get(21612, "/metrics");
    assert_eq!(sample(&m, "isogate_intake_paused"), 0.0);
}
