//! The diode's behaviour scenarios (the ones lidi, an open-source diode, is judged by), end
//! to end, as root, in network namespaces: loss per datagram and in bursts, a link outage,
//! either node killed with `kill -9` and restarted, many files at once. In every scenario
//! **every** file must land exactly once, whole (by hash), under its own name, with no
//! partial or temporary name ever visible in the inbox, and nothing sent back toward the
//! sender.
//!
//! ```text
//!   court ns (sender)  ══ veth ══►  internet ns (receiver)
//!   outbox ─► spool ─► diode        loss / outage (netfilter) ─► inbox ◄── Watch
//! ```

use crate::common;

use common::inbox::*;
use common::net::*;
use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The outage and receiver restart scenarios rely on the repeat window alone: one carousel
/// copy, then the object stays in the spool and is sent again with spare capacity.
const REPEAT_WINDOW: &[(&str, &str)] = &[("copies", "1"), ("repeat_window_s", "600")];

const MIB: u64 = 1 << 20;

/// A diode pair in namespaces, both nodes running.
struct Pair {
    net: Net,
    lab: Lab,
    court: Option<Running>,
    internet: Option<Running>,
}

impl Pair {
    fn start(id: u8, port_base: u16, wire: Wire, loss: &str, diode: &[(&str, &str)]) -> Pair {
        let net = Net::with(id, wire, loss);
        let lab = diode_lab(port_base, &net, diode);
        let mut pair = Pair {
            net,
            lab,
            court: None,
            internet: None,
        };
        pair.up("internet");
        pair.up("court");
        pair
    }

    /// Starts a node and waits until its diode end says it is up.
    fn up(&mut self, node: &str) {
        let (netns, line) = if node == "court" {
            (&self.net.snd, "diode sender up")
        } else {
            (&self.net.rcv, "diode receiver up")
        };
        let before = self.lab.log(node).matches(line).count();
        let running = start_in(&self.lab, node, netns);
        wait_until(30, &format!("{node} to start"), || {
            self.lab.log(node).matches(line).count() > before
        });
        *self.slot(node) = Some(running);
    }

    fn slot(&mut self, node: &str) -> &mut Option<Running> {
        if node == "court" {
            &mut self.court
        } else {
            &mut self.internet
        }
    }

    /// `kill -9` a node while fewer than `all` files have landed, and start it again
    /// `after` later.
    fn kill_and_restart(&mut self, node: &str, after: Duration, all: usize) {
        self.slot(node).take().expect("running").kill9();
        assert!(entries(&self.inbox()).len() < all, "the kill came too late");
        std::thread::sleep(after);
        self.up(node);
    }

    fn inbox(&self) -> PathBuf {
        self.lab.inbox("internet", "to-internet")
    }

    /// Starts watching the inbox for `files`, then publishes them.
    fn publish(&self, files: &[(String, u64, u64)]) -> (Expected, Watch) {
        let expected = expect(files);
        let watch = Watch::start(self.inbox(), &expected);
        publish_all(&self.lab, "court", "to-internet", files);
        (expected, watch)
    }

    /// Waits until the first file is streaming in and `bytes` of it have arrived.
    fn wait_streaming(&self, bytes: u64) {
        let inbox = self.inbox();
        wait_until(120, "content to be streaming in", || {
            part_bytes(&inbox) >= bytes
        });
    }

    /// Waits for every file, then checks the outcome: each expected file exactly once and
    /// whole, nothing else, never anything partial, nothing sent toward the sender.
    fn finish(&self, expected: &Expected, watch: Watch, secs: u64) {
        let inbox = self.inbox();
        let deadline = Instant::now() + Duration::from_secs(secs);
        while entries(&inbox).len() < expected.len() && !watch.failed() {
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if watch.failed() {
            watch.finish();
            unreachable!("the watch failed");
        }
        assert_exactly_once(&self.lab, "internet", &inbox, expected);
        watch.finish();
        assert_eq!(
            self.net.dropped_toward_sender(),
            0,
            "the receiver tried to send"
        );
    }
}

/// `n` generated files of `size` bytes named `stem-i`, with seeds from `seed`.
fn files(stem: &str, n: u64, size: u64, seed: u64) -> Vec<(String, u64, u64)> {
    (0..n)
        .map(|i| (name_for(&format!("{stem}-{i}"), size), size, seed + i))
        .collect()
}

/// 5 % random loss on a 100 KiB and a 100 MiB file.
fn five_percent_loss(id: u8, port_base: u16, wire: Wire) {
    let pair = Pair::start(id, port_base, wire, "5%", &[]);
    let (expected, watch) = pair.publish(&[
        ("五厘-100KB.pdf".to_string(), 100 << 10, 1),
        ("五厘-100MB.pdf".to_string(), 100 * MIB, 2),
    ]);
    pair.finish(&expected, watch, 180);
    let m = metrics(&pair.net.rcv, port_base + 3);
    assert!(sample(&m, "isogate_fec_repairs_total") > 0.0, "{m}");
    pair.net.assert_one_way();
    if wire == Wire::Batches {
        // the losses really were bursts: whole GSO batches, several datagrams a packet
        let (packets, bytes) = pair.net.dropped_on_arrival();
        assert!(packets > 0, "nothing was dropped");
        assert!(
            bytes / packets > 3 * 1500,
            "{packets} packets of {bytes} bytes dropped: single datagrams, not batches"
        );
    }
}

#[test]
fn five_percent_loss_per_datagram_100kb_and_100mb_land() {
    five_percent_loss(31, 22300, Wire::PerDatagram);
}

#[test]
fn five_percent_loss_in_gso_bursts_100kb_and_100mb_land() {
    five_percent_loss(32, 22310, Wire::Batches);
}

#[test]
fn a_one_second_outage_during_three_100mb_files_loses_nothing() {
    let pair = Pair::start(33, 22320, Wire::Batches, "0%", REPEAT_WINDOW);
    let (expected, watch) = pair.publish(&files("断链", 3, 100 * MIB, 10));
    pair.wait_streaming(16 * MIB);
    assert!(entries(&pair.inbox()).len() < 3, "the outage came too late");
    let dropped = pair.net.outage(Duration::from_secs(1));
    assert!(
        dropped > 0,
        "the outage dropped nothing: nothing was crossing"
    );
    pair.finish(&expected, watch, 180);
    pair.net.assert_one_way();
}

#[test]
fn a_receiver_killed_and_restarted_during_two_100mb_files_loses_nothing() {
    let mut pair = Pair::start(34, 22330, Wire::Batches, "0%", REPEAT_WINDOW);
    let (expected, watch) = pair.publish(&files("收端重启", 2, 100 * MIB, 20));
    pair.wait_streaming(16 * MIB);
    pair.kill_and_restart("internet", Duration::from_secs(1), 2);
    pair.finish(&expected, watch, 180);
}

#[test]
fn a_sender_killed_and_restarted_during_two_100mb_files_loses_nothing() {
    let mut pair = Pair::start(35, 22340, Wire::Batches, "0%", &[]);
    let (expected, watch) = pair.publish(&files("发端重启", 2, 100 * MIB, 30));
    pair.wait_streaming(16 * MIB);
    pair.kill_and_restart("court", Duration::from_secs(1), 2);
    pair.finish(&expected, watch, 180);
    pair.net.assert_one_way();
}

#[test]
fn ten_10mb_files_at_once_land() {
    let pair = Pair::start(36, 22350, Wire::Batches, "0%", &[]);
    let (expected, watch) = pair.publish(&files("十件", 10, 10 * MIB, 40));
    pair.finish(&expected, watch, 180);
    pair.net.assert_one_way();
}

#[test]
fn a_thousand_small_files_across_a_sender_restart_land() {
    let mut pair = Pair::start(37, 22360, Wire::Batches, "0%", &[]);
    let list: Vec<(String, u64, u64)> = (0..1000u64)
        .map(|i| {
            let size = 1 + (i * 397) % 4000;
            (name_for(&format!("小件-{i:04}"), size), size, 1000 + i)
        })
        .collect();
    let (expected, watch) = pair.publish(&list);
    let inbox = pair.inbox();
    wait_until(120, "the first files to land", || {
        watch.failed() || entries(&inbox).len() >= 100
    });
    pair.kill_and_restart("court", Duration::from_secs(1), 1000);
    pair.finish(&expected, watch, 180);
    pair.net.assert_one_way();
}
