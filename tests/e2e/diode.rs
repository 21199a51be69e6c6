//! The diode link end to end, as root, on real network namespaces: the court node and the
//! internet node each in their own namespace, joined by a veth pair. The receiver's side
//! answers no ARP and has no IPv6, `iptables` drops anything it would send toward the
//! sender, and the test asserts both that counter and the veth's transmit counter stayed
//! at zero. `tc netem` adds random loss on the sender's side. A third namespace sends
//! forged datagrams, which must be dropped and counted.

use crate::common;

use common::net::*;
use common::*;
use std::time::Duration;

fn cross_intact(loss: &str, id: u8, port_base: u16, sizes: &[u64]) {
    let net = Net::new(id, loss);
    let lab = diode_lab(port_base, &net, &[("copies", "2")]);
    let _internet = start_in(&lab, "internet", &net.rcv);
    std::thread::sleep(Duration::from_millis(500));
    let _court = start_in(&lab, "court", &net.snd);
    let mut expect = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let name = if *size < SMALLEST_PDF {
            format!("小件-{i}.txt")
        } else {
            format!("卷宗-{i}.pdf")
        };
        lab.publish_generated("court", "to-internet", &name, *size, i as u64 + 7);
        expect.push((name, sha256_of_generated(*size, i as u64 + 7)));
    }
    let inbox = lab.inbox("internet", "to-internet");
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    while visible(&inbox).len() < sizes.len() {
        if std::time::Instant::now() > deadline {
            panic!(
                "{} of {} files landed\n--- court ---\n{}\n--- internet ---\n{}",
                visible(&inbox).len(),
                sizes.len(),
                tail(&lab.log("court")),
                tail(&lab.log("internet"))
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for (name, sha) in &expect {
        assert_eq!(&sha256_file(&inbox.join(name)), sha, "{name} changed");
    }
    // exactly once, even though every object was sent twice
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(visible(&inbox).len(), sizes.len());
    assert_eq!(events(&lab, "internet", "landed"), sizes.len());
    assert_eq!(net.dropped_toward_sender(), 0, "the receiver tried to send");
    assert_eq!(
        net.receiver_tx_packets(),
        0,
        "the receiver's side transmitted"
    );
    let m = metrics(&net.rcv, port_base + 3);
    if loss != "0%" {
        assert!(sample(&m, "isogate_fec_repairs_total") > 0.0, "{m}");
    }
}

#[test]
fn files_cross_one_way_at_one_percent_loss() {
    let sizes = [
        0,
        1,
        100,
        4096,
        4097,
        65_536,
        1 << 20,
        3 << 20,
        16 << 20,
        64 << 20,
    ];
    cross_intact("1%", 11, 21800, &sizes);
}

#[test]
fn files_up_to_512_mib_cross_one_way_at_five_percent_loss() {
    let mut sizes = vec![0u64, 1, 1 << 20, 512 << 20];
    sizes.extend(std::iter::repeat_n(4096, 40));
    cross_intact("5%", 12, 21810, &sizes);
}

#[test]
fn a_receiver_restart_mid_stream_and_forged_datagrams() {
    let net = Net::new(13, "1%");
    let evil_target = net.attach_evil(13);
    let lab = diode_lab(21820, &net, &[("copies", "4")]);
    let internet = start_in(&lab, "internet", &net.rcv);
    std::thread::sleep(Duration::from_millis(500));
    let _court = start_in(&lab, "court", &net.snd);
    lab.publish_generated("court", "to-internet", "大文件.pdf", 200 << 20, 1);
    let inbox = lab.inbox("internet", "to-internet");
    // kill the receiver while the first copy streams in, then start it again
    wait_until(60, "the first copy to start arriving", || {
        !staged(&inbox.join(".isogate-tmp")).is_empty()
    });
    internet.kill9();
    std::thread::sleep(Duration::from_millis(300));
    let _internet = start_in(&lab, "internet", &net.rcv);
    // a third namespace sends forged datagrams at the receiver
    let forged = format!(
        "for i in $(seq 200); do head -c 1400 /dev/urandom > /dev/udp/{evil_target}/21821; done"
    );
    ns(&net.evil, &["bash", "-c", &forged]);
    wait_until(300, "the large file to land", || {
        inbox.join("大文件.pdf").exists()
    });
    assert_eq!(
        sha256_file(&inbox.join("大文件.pdf")),
        sha256_of_generated(200 << 20, 1)
    );
    lab.publish("court", "to-internet", "after.txt", "重启之后\n".as_bytes());
    wait_until(60, "a file after the restart", || {
        inbox.join("after.txt").exists()
    });
    wait_until(10, "the forged datagrams to be counted", || {
        sample(
            &metrics(&net.rcv, 21823),
            "isogate_diode_forged_datagrams_total",
        ) >= 150.0
    });
    // the warning is logged just after the count moves
    wait_until(10, "the forged datagrams to be logged", || {
        lab.log("internet").contains("failed authentication")
    });
    assert_eq!(visible(&inbox).len(), 2);
    // the node never sent toward the sender, even across its own restart (the kernel's
    // ICMP answers while the port was closed are counted apart by the icmp rule)
    assert_eq!(net.dropped_toward_sender(), 0);
}
