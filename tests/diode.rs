//! The diode link end to end, as root, on real network namespaces: the court node and the
//! internet node each in their own namespace, joined by a veth pair. The receiver's side
//! answers no ARP and has no IPv6, `iptables` drops anything it would send toward the
//! sender, and the test asserts both that counter and the veth's transmit counter stayed
//! at zero. `tc netem` adds random loss on the sender's side. A third namespace sends
//! forged datagrams, which must be dropped and counted.

mod common;

use common::*;
use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the diode tests need iproute2 and iptables, as root)",
                args[0]
            )
        });
    assert!(
        out.status.success(),
        "{}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ns(ns: &str, args: &[&str]) -> String {
    let mut a = vec!["ip", "netns", "exec", ns];
    a.extend_from_slice(args);
    sh(&a)
}

/// Two (or three) namespaces joined by veth pairs; removed when dropped.
struct Net {
    tag: String,
    snd: String,
    rcv: String,
    evil: String,
    snd_ip: String,
    rcv_ip: String,
    rcv_veth: String,
    snd_veth: String,
}

impl Net {
    fn new(id: u8, loss: &str) -> Net {
        let tag = format!("isg{}x{id}", std::process::id() % 10_000);
        let n = Net {
            snd: format!("{tag}s"),
            rcv: format!("{tag}r"),
            evil: format!("{tag}e"),
            snd_ip: format!("10.77.{id}.1"),
            rcv_ip: format!("10.77.{id}.2"),
            snd_veth: format!("{tag}a"),
            rcv_veth: format!("{tag}b"),
            tag,
        };
        for name in [&n.snd, &n.rcv, &n.evil] {
            sh(&["ip", "netns", "add", name]);
            ns(name, &["ip", "link", "set", "lo", "up"]);
        }
        sh(&[
            "ip",
            "link",
            "add",
            &n.snd_veth,
            "netns",
            &n.snd,
            "type",
            "veth",
            "peer",
            "name",
            &n.rcv_veth,
            "netns",
            &n.rcv,
        ]);
        // no IPv6 (no neighbour discovery) and no ARP on the receiving side: on a real
        // diode the receiver could not answer anyway
        for (name, dev) in [(&n.snd, &n.snd_veth), (&n.rcv, &n.rcv_veth)] {
            ns(
                name,
                &[
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{dev}.disable_ipv6=1"),
                ],
            );
        }
        ns(&n.rcv, &["ip", "link", "set", &n.rcv_veth, "arp", "off"]);
        ns(
            &n.snd,
            &[
                "ip",
                "addr",
                "add",
                &format!("{}/24", n.snd_ip),
                "dev",
                &n.snd_veth,
            ],
        );
        ns(
            &n.rcv,
            &[
                "ip",
                "addr",
                "add",
                &format!("{}/24", n.rcv_ip),
                "dev",
                &n.rcv_veth,
            ],
        );
        ns(&n.snd, &["ip", "link", "set", &n.snd_veth, "up"]);
        ns(&n.rcv, &["ip", "link", "set", &n.rcv_veth, "up"]);
        let rcv_mac = ns(
            &n.rcv,
            &["cat", &format!("/sys/class/net/{}/address", n.rcv_veth)],
        );
        ns(
            &n.snd,
            &[
                "ip",
                "neigh",
                "replace",
                &n.rcv_ip,
                "lladdr",
                rcv_mac.trim(),
                "dev",
                &n.snd_veth,
                "nud",
                "permanent",
            ],
        );
        // everything the receiver might send toward the sender is dropped, and counted; the
        // kernel's own ICMP "port unreachable" (while a killed receiver is down) is counted
        // apart: it is not the node's doing, and it never reaches the wire either
        ns(
            &n.rcv,
            &[
                "iptables",
                "-A",
                "OUTPUT",
                "-o",
                &n.rcv_veth,
                "-p",
                "icmp",
                "-j",
                "DROP",
            ],
        );
        ns(
            &n.rcv,
            &["iptables", "-A", "OUTPUT", "-o", &n.rcv_veth, "-j", "DROP"],
        );
        // one datagram per packet on the wire, as on a real link: no GSO super-packets
        ns(
            &n.snd,
            &["ip", "link", "set", &n.snd_veth, "gso_max_segs", "1"],
        );
        if loss != "0%" {
            // random loss on the sender's side: tc netem where the kernel has it, else the
            // kernel's own random packet drop (netfilter's statistic match)
            let netem = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &n.snd,
                    "tc",
                    "qdisc",
                    "add",
                    "dev",
                    &n.snd_veth,
                ])
                .args(["root", "netem", "loss", loss])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if !netem {
                // on arrival, where each datagram is a packet of its own
                let p = loss.trim_end_matches('%').parse::<f64>().unwrap() / 100.0;
                ns(
                    &n.rcv,
                    &[
                        "iptables",
                        "-A",
                        "INPUT",
                        "-i",
                        &n.rcv_veth,
                        "-m",
                        "statistic",
                        "--mode",
                        "random",
                        "--probability",
                        &p.to_string(),
                        "-j",
                        "DROP",
                    ],
                );
            }
        }
        n
    }

    /// Joins the third namespace to the receiver with a second veth pair.
    fn attach_evil(&self, id: u8) -> String {
        let (a, b) = (format!("{}c", self.tag), format!("{}d", self.tag));
        sh(&[
            "ip", "link", "add", &a, "netns", &self.evil, "type", "veth", "peer", "name", &b,
            "netns", &self.rcv,
        ]);
        ns(
            &self.evil,
            &["ip", "addr", "add", &format!("10.78.{id}.1/24"), "dev", &a],
        );
        ns(
            &self.rcv,
            &["ip", "addr", "add", &format!("10.78.{id}.2/24"), "dev", &b],
        );
        ns(&self.evil, &["ip", "link", "set", &a, "up"]);
        ns(&self.rcv, &["ip", "link", "set", &b, "up"]);
        // the attacker aims at the receiver's diode address, reached through its own link
        ns(
            &self.evil,
            &[
                "ip",
                "route",
                "add",
                &format!("{}/32", self.rcv_ip),
                "via",
                &format!("10.78.{id}.2"),
            ],
        );
        self.rcv_ip.clone()
    }

    /// Packets the receiver's iptables rule dropped toward the sender.
    fn dropped_toward_sender(&self) -> u64 {
        let out = ns(&self.rcv, &["iptables", "-L", "OUTPUT", "-v", "-n", "-x"]);
        // the catch-all rule is the last one (the ICMP rule comes first)
        out.lines()
            .rfind(|l| l.contains("DROP"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(u64::MAX)
    }

    /// Packets the receiver's veth transmitted.
    fn receiver_tx_packets(&self) -> u64 {
        ns(
            &self.rcv,
            &[
                "cat",
                &format!("/sys/class/net/{}/statistics/tx_packets", self.rcv_veth),
            ],
        )
        .trim()
        .parse()
        .unwrap()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for name in [&self.snd, &self.rcv, &self.evil] {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// A diode lab whose only channel is court → internet, each node in its namespace.
fn diode_lab(port_base: u16, net: &Net, copies: u32) -> Lab {
    let lab = Lab::new_with(port_base, &["--link", "diode"]);
    let port = |n: u16| (port_base + n).to_string();
    for (node, listen, peer) in [
        ("court", &net.snd_ip, &net.rcv_ip),
        ("internet", &net.rcv_ip, &net.snd_ip),
    ] {
        let file = lab.config(node);
        let mut text = fs::read_to_string(&file).unwrap();
        // drop the to-court channel: on this pair only court → internet exists
        let cut = text.find("[[channel]]\nname = \"to-court\"").unwrap();
        let end = text[cut..].find("\n\n").map_or(text.len(), |e| cut + e);
        text.replace_range(cut..end, "");
        let (own, other) = if node == "court" {
            (port(0), port(1))
        } else {
            (port(1), port(0))
        };
        text = text
            .replace(
                &format!("listen = \"127.0.0.1:{own}\""),
                &format!("listen = \"{listen}:{own}\""),
            )
            .replace(
                &format!("address = \"127.0.0.1:{other}\""),
                &format!("address = \"{peer}:{other}\""),
            )
            .replace("copies = 2", &format!("copies = {copies}"))
            .replace("rate_mbit = 2000", "rate_mbit = 800");
        fs::write(&file, text).unwrap();
    }
    lab
}

fn start_in(lab: &Lab, node: &str, netns: &str) -> Running {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(lab.dir.join(format!("{node}.log")))
        .unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", netns, BIN, "run", "--config"])
        .arg(lab.config(node))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    Running::from_child(node, child)
}

fn metrics(netns: &str, port: u16) -> String {
    ns(
        netns,
        &["curl", "-s", &format!("http://127.0.0.1:{port}/metrics")],
    )
}

fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn cross_intact(loss: &str, id: u8, port_base: u16, sizes: &[u64]) {
    let net = Net::new(id, loss);
    let lab = diode_lab(port_base, &net, 2);
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
    let lab = diode_lab(21820, &net, 4);
    let internet = start_in(&lab, "internet", &net.rcv);
    std::thread::sleep(Duration::from_millis(500));
    let _court = start_in(&lab, "court", &net.snd);
    lab.publish_generated("court", "to-internet", "大文件.pdf", 200 << 20, 1);
    let inbox = lab.inbox("internet", "to-internet");
    // kill the receiver while the first copy streams in, then start it again
    wait_until(60, "the first copy to start arriving", || {
        fs::read_dir(inbox.join(".isogate-tmp"))
            .map(|d| d.count() > 0)
            .unwrap_or(false)
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
    assert!(lab.log("internet").contains("failed authentication"));
    assert_eq!(visible(&inbox).len(), 2);
    // the node never sent toward the sender, even across its own restart (the kernel's
    // ICMP answers while the port was closed are counted apart by the icmp rule)
    assert_eq!(net.dropped_toward_sender(), 0);
}
