//! The diode's behaviour scenarios (the ones lidi, an open-source diode, is judged by), end
//! to end, as root, in network namespaces: loss per datagram and in bursts, a link outage,
//! either node killed with `kill -9` and restarted, many files at once, and each copy of a
//! file losing blocks in another place. In every scenario
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

/// Drops the datagrams whose sequence numbers (the low 32 bits) lie in `from..=to` on
/// arrival at the receiver. The header is in clear (wire.rs): "ID", version, kind, session
/// u64, seq u64, so the low half of seq is at offset 16 of the UDP payload, found past an IP
/// header of any length. Returns what the rule's listing shows, to read its counter.
fn drop_seqs(net: &Net, from: u32, to: u32) -> String {
    let matcher = format!("0>>22&0x3C@24={from}:{to}");
    net.drop_arriving(&["-m", "u32", "--u32", &matcher]);
    format!("0x{from:x}:0x{to:x}")
}

#[test]
fn each_copy_of_a_file_losing_blocks_in_another_place_still_lands_once() {
    // Two copies, no repeat window: whatever is lost of both copies is lost for good,
    // unless the second goes on from the bytes the first brought. A 20 MiB file is about 30
    // blocks of 617 datagrams (K 512, 105 repair) a copy, about 18,500 datagrams; 400 in a
    // row cost each of the 3 blocks in rotation more than its repair symbols. The first
    // copy loses blocks at about 70 % of it, the second at about 25 %: below where the
    // first was lost, so only its later blocks matter, and they all arrive.
    let pair = Pair::start(
        38,
        22370,
        Wire::PerDatagram,
        "0%",
        &[("copies", "2"), ("repeat_window_s", "0")],
    );
    let first = drop_seqs(&pair.net, 13_000, 13_399);
    let second = drop_seqs(&pair.net, 23_000, 23_399);
    let (expected, watch) = pair.publish(&files("两份各缺", 1, 20 * MIB, 50));
    pair.finish(&expected, watch, 60);
    // the losses happened where they were meant to
    assert_eq!(pair.net.dropped_by(&first), 400);
    assert_eq!(pair.net.dropped_by(&second), 400);
    let log = pair.lab.log("internet");
    assert_eq!(
        log.matches("what arrived is kept for the next copy")
            .count(),
        1,
        "{}",
        tail(&log)
    );
    assert_eq!(
        log.matches("a later copy goes on from the bytes kept of a lost one")
            .count(),
        1,
        "{}",
        tail(&log)
    );
    // the counters move into the metrics once a second
    let m = || metrics(&pair.net.rcv, 22370 + 3);
    wait_until(10, "the resumed copy to be counted", || {
        sample(&m(), "isogate_diode_resumed_total") >= 1.0
    });
    let m = m();
    assert_eq!(sample(&m, "isogate_diode_resumed_total"), 1.0, "{m}");
    assert!(sample(&m, "isogate_fec_lost_blocks_total") >= 6.0, "{m}");
    assert!(pair.lab.records("internet", "lost").is_empty());
    pair.net.assert_one_way();
}
