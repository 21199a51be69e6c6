//! Network namespaces for the diode tests, as root: the court node and the internet node
//! each in their own namespace, joined by a veth pair, with loss, outages and a one-way
//! return path made by the kernel's own tools (iproute2, iptables, `tc netem` where the
//! kernel has it).
//!
//! ```text
//!   <tag>s (court, sender)              <tag>r (internet, receiver)
//!   10.77.ID.1  veth <tag>a ═══════════ veth <tag>b  10.77.ID.2
//!               gso_max_segs 1          INPUT:  outage DROP, random DROP (loss)
//!               (PerDatagram only)      OUTPUT: DROP everything toward the sender
//!                                       no ARP, no IPv6
//!   <tag>e (attacker) ═══ second veth ══╝ (attach_evil)
//! ```
//!
//! Two ways for datagrams to travel ([`Wire`]): one datagram per packet, so that loss
//! hits datagrams one at a time; or the sender's GSO batches whole, so that netfilter sees
//! one packet per batch and a drop loses up to 64 consecutive datagrams at once (a burst,
//! as when a receiver's socket buffer overflows).

use super::{BIN, Lab, Running};
use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs a command, panicking with its stderr when it fails; returns its stdout.
pub fn sh(args: &[&str]) -> String {
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

/// Runs a command inside a namespace.
pub fn ns(ns: &str, args: &[&str]) -> String {
    let mut a = vec!["ip", "netns", "exec", ns];
    a.extend_from_slice(args);
    sh(&a)
}

/// How the sender's datagrams cross the veth pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// One datagram per packet (`gso_max_segs 1` on the sender's veth), as on a real link:
    /// loss drops datagrams one at a time.
    PerDatagram,
    /// The sender's GSO batches cross whole (up to 64 datagrams in one packet): netfilter
    /// drops whole batches, so losses come in bursts.
    Batches,
}

/// Two (or three) namespaces joined by veth pairs; removed when dropped.
pub struct Net {
    pub tag: String,
    pub snd: String,
    pub rcv: String,
    pub evil: String,
    pub snd_ip: String,
    pub rcv_ip: String,
    pub rcv_veth: String,
    pub snd_veth: String,
    pub wire: Wire,
}

impl Net {
    /// One datagram per packet, with random loss `loss` ("0%", "1%", "5%").
    pub fn new(id: u8, loss: &str) -> Net {
        Net::with(id, Wire::PerDatagram, loss)
    }

    /// Datagrams crossing as `wire` says, with random loss `loss` ("0%", "5%"), per packet.
    pub fn with(id: u8, wire: Wire, loss: &str) -> Net {
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
            wire,
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
        if wire == Wire::PerDatagram {
            // one datagram per packet on the wire, as on a real link: no GSO super-packets
            ns(
                &n.snd,
                &["ip", "link", "set", &n.snd_veth, "gso_max_segs", "1"],
            );
        }
        if loss != "0%" {
            // per datagram: tc netem on the sender's side where the kernel has it; in
            // batches, and where there is no netem, the kernel's own random packet drop
            // (netfilter's statistic match) on arrival, where a GSO batch is one packet
            let netem = wire == Wire::PerDatagram
                && Command::new("ip")
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
    pub fn attach_evil(&self, id: u8) -> String {
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

    /// Drops everything that reaches the receiver for `for_how_long`, then lets it through
    /// again; returns how many packets the outage dropped.
    pub fn outage(&self, for_how_long: Duration) -> u64 {
        let rule = ["-i", &self.rcv_veth, "-j", "DROP"];
        let mut insert = vec!["iptables", "-I", "INPUT", "1"];
        insert.extend_from_slice(&rule);
        ns(&self.rcv, &insert);
        std::thread::sleep(for_how_long);
        // the outage rule is the first one: read its counter before it goes
        let out = ns(&self.rcv, &["iptables", "-L", "INPUT", "-v", "-n", "-x"]);
        let dropped = out
            .lines()
            .find(|l| l.contains("DROP"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let mut delete = vec!["iptables", "-D", "INPUT"];
        delete.extend_from_slice(&rule);
        ns(&self.rcv, &delete);
        dropped
    }

    /// Inserts, first in the receiver's INPUT chain, a rule that drops the UDP datagrams
    /// arriving on its veth that `matches` (iptables match arguments: `-m u32 --u32 …`).
    pub fn drop_arriving(&self, matches: &[&str]) {
        let mut insert = vec![
            "iptables",
            "-I",
            "INPUT",
            "1",
            "-i",
            &self.rcv_veth,
            "-p",
            "udp",
        ];
        insert.extend_from_slice(matches);
        insert.extend_from_slice(&["-j", "DROP"]);
        ns(&self.rcv, &insert);
    }

    /// Packets dropped so far by the receiver's INPUT rule whose listing line contains
    /// `needle` (a rule of [`Net::drop_arriving`]).
    pub fn dropped_by(&self, needle: &str) -> u64 {
        let listing = ns(&self.rcv, &["iptables", "-L", "INPUT", "-v", "-n", "-x"]);
        listing
            .lines()
            .find(|l| l.contains(needle))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no rule with {needle}:\n{listing}"))
    }

    /// Packets and bytes the random loss dropped on arrival (zero where netem drops).
    pub fn dropped_on_arrival(&self) -> (u64, u64) {
        let out = ns(&self.rcv, &["iptables", "-L", "INPUT", "-v", "-n", "-x"]);
        out.lines()
            .find(|l| l.contains("statistic"))
            .map(|l| {
                let mut f = l.split_whitespace().map(|x| x.parse().unwrap_or(0));
                (f.next().unwrap_or(0), f.next().unwrap_or(0))
            })
            .unwrap_or((0, 0))
    }

    /// Packets the receiver's iptables rule dropped toward the sender.
    pub fn dropped_toward_sender(&self) -> u64 {
        let out = ns(&self.rcv, &["iptables", "-L", "OUTPUT", "-v", "-n", "-x"]);
        // the catch-all rule is the last one (the ICMP rule comes first)
        out.lines()
            .rfind(|l| l.contains("DROP"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(u64::MAX)
    }

    /// Packets the receiver's veth transmitted.
    pub fn receiver_tx_packets(&self) -> u64 {
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

    /// Asserts that the receiver never sent anything toward the sender.
    pub fn assert_one_way(&self) {
        assert_eq!(
            self.dropped_toward_sender(),
            0,
            "the receiver tried to send"
        );
        assert_eq!(
            self.receiver_tx_packets(),
            0,
            "the receiver's side transmitted"
        );
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for name in [&self.snd, &self.rcv, &self.evil] {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// Sets `key = value` in a config's `[diode]` section: replaces the key's line where the
/// section has one, else adds it below the section's header.
pub fn set_diode_key(text: &str, key: &str, value: &str) -> String {
    let mut out = Vec::new();
    let (mut inside, mut done) = (false, false);
    for line in text.lines() {
        if line.starts_with('[') {
            inside = line.trim() == "[diode]";
            out.push(line.to_string());
            if inside {
                out.push(format!("{key} = {value}"));
                done = true;
            }
            continue;
        }
        let is_key = line.split_once('=').is_some_and(|(k, _)| k.trim() == key);
        if !(inside && is_key) {
            out.push(line.to_string());
        }
    }
    assert!(done, "a [diode] section");
    out.join("\n") + "\n"
}

/// A diode lab whose only channel is court → internet, each node in its namespace, the
/// sender paced at 800 Mbit/s, with `diode` settings (key, TOML value) written into both
/// nodes' `[diode]` sections.
pub fn diode_lab(port_base: u16, net: &Net, diode: &[(&str, &str)]) -> Lab {
    let lab = Lab::new_with(port_base, &["--link", "diode"]);
    let port = |n: u16| (port_base + n).to_string();
    for (node, listen, peer) in [
        ("court", &net.snd_ip, &net.rcv_ip),
        ("internet", &net.rcv_ip, &net.snd_ip),
    ] {
        let file = lab.config(node);
        let mut text = fs::read_to_string(&file).unwrap();
        // drop the channels toward the court (files and messages): on this pair only
        // court → internet exists; each block ends where the next table begins
        for name in ["to-court", "filings"] {
            let cut = text
                .find(&format!("[[channel]]\nname = \"{name}\""))
                .unwrap();
            let body = cut + "[[channel]]".len();
            let end = text[body..]
                .find("\n[")
                .map_or(text.len(), |e| body + e + 1);
            text.replace_range(cut..end, "");
        }
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
            );
        text = set_diode_key(&text, "rate_mbit", "800");
        for (key, value) in diode {
            text = set_diode_key(&text, key, value);
        }
        fs::write(&file, text).unwrap();
    }
    lab
}

/// Starts `isogate run` for a lab node inside a namespace, logging to `<lab>/<node>.log`.
pub fn start_in(lab: &Lab, node: &str, netns: &str) -> Running {
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

/// A node's Prometheus text, read from inside its namespace.
pub fn metrics(netns: &str, port: u16) -> String {
    ns(
        netns,
        &["curl", "-s", &format!("http://127.0.0.1:{port}/metrics")],
    )
}

/// One series' value in Prometheus text (0 when absent).
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The last 30 lines of a log.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
