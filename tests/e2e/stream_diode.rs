//! The `stream` channel kind over the diode, end to end, as root, on real network
//! namespaces (see `common::net`): RTP packets (version 2, payload type 33, seven 188-byte
//! MPEG-TS packets each), built here, are sent to the court node's `hearing` listen port
//! inside the sender's namespace and must come out of the internet node's emit port, inside
//! the receiver's namespace, intact and in order: all of them without loss, at least 99 %
//! at 1 % random loss (the stream blocks' repair symbols fill the gaps).
//!
//! The test binary plays both ends of the stream itself: it runs again inside each
//! namespace (`ip netns exec`) as the `rtp_source` or `rtp_sink` helper below, told what to
//! do by environment variables.

use crate::common;

use common::net::*;
use common::*;
use std::fs;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// RTP packets per second the source sends (about 5.4 Mbit/s of 1328-byte packets).
const PPS: u64 = 500;
/// The SSRC of the test stream.
const SSRC: u32 = 0x1516_2026;

/// RTP packet `seq` (RFC 3550 §5.1): version 2, payload type 33 (MPEG-TS, RFC 2250), a
/// 90 kHz timestamp, then seven TS packets (ISO/IEC 13818-1: sync byte 0x47, PID 256)
/// whose payload bytes are derived from `seq`.
fn rtp_packet(seq: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + 7 * 188);
    p.push(0x80);
    p.push(33);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 180).to_be_bytes());
    p.extend_from_slice(&SSRC.to_be_bytes());
    for i in 0..7u8 {
        p.extend_from_slice(&[0x47, 0x01, 0x00, 0x10 | (seq as u8).wrapping_add(i) & 0x0f]);
        p.extend((0..184u32).map(|j| (u32::from(seq) * 7 + u32::from(i) + j) as u8));
    }
    p
}

/// Runs this test binary's helper `name` inside namespace `netns` with `env`.
/// `name` is the function's name in this module (the binary knows it by its module path).
fn helper(netns: &str, name: &str, env: &[(&str, String)]) -> std::process::Child {
    let exe = std::env::current_exe().unwrap();
    // "e2e::stream_diode" → "stream_diode::<name>", the test's name in this binary
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, m)| m);
    let name = format!("{module}::{name}");
    let mut c = Command::new("ip");
    c.args(["netns", "exec", netns])
        .arg(exe)
        .args([
            "--ignored",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
            &name,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

/// Sends `count` packets to the hearing port, paced, inside the sender's namespace, and
/// receives what the internet node emits inside the receiver's; returns the RTP sequence
/// numbers received intact, in the order they came.
fn stream_through(lab: &Lab, net: &Net, port_base: u16, count: u16) -> Vec<u16> {
    let out = lab.dir.join("received.txt");
    let _ = fs::remove_file(&out);
    let mut sink = helper(
        &net.rcv,
        "rtp_sink",
        &[
            ("ISOG_RTP_BIND", format!("127.0.0.1:{}", port_base + 7)),
            ("ISOG_RTP_COUNT", count.to_string()),
            ("ISOG_RTP_OUT", out.display().to_string()),
        ],
    );
    // the sink binds before anything is sent
    std::thread::sleep(Duration::from_millis(500));
    let status = helper(
        &net.snd,
        "rtp_source",
        &[
            ("ISOG_RTP_TO", format!("127.0.0.1:{}", port_base + 6)),
            ("ISOG_RTP_COUNT", count.to_string()),
        ],
    )
    .wait()
    .unwrap();
    assert!(status.success(), "the RTP source failed");
    let status = sink.wait().unwrap();
    assert!(status.success(), "the RTP sink failed");
    fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

/// Starts the internet node, then the court node, each in its namespace, and waits until
/// both have their diode socket up (and a moment more for the link's first heartbeat);
/// the court node first in the answer, so that it is stopped first.
fn start_both(lab: &Lab, net: &Net) -> [Running; 2] {
    let internet = start_in(lab, "internet", &net.rcv);
    std::thread::sleep(Duration::from_millis(500));
    let court = start_in(lab, "court", &net.snd);
    wait_until(30, "both nodes up", || {
        lab.log("court").contains("diode sender up")
            && lab.log("internet").contains("diode receiver up")
    });
    std::thread::sleep(Duration::from_millis(500));
    [court, internet]
}

/// Starts a diode lab with the hearing channel, sends `count` packets at `loss`, and checks
/// order, integrity and that at least `min_permille` of them arrived.
fn hearing_crosses(id: u8, port_base: u16, loss: &str, count: u16, min_permille: usize) {
    let net = Net::new(id, loss);
    let lab = diode_lab(port_base, &net, &[]);
    let court = fs::read_to_string(lab.config("court")).unwrap();
    assert!(
        court.contains("kind = \"stream\""),
        "the diode lab has a stream channel:\n{court}"
    );
    let _nodes = start_both(&lab, &net);
    let got = stream_through(&lab, &net, port_base, count);
    let logs = || {
        format!(
            "--- court ---\n{}\n--- internet ---\n{}",
            tail(&lab.log("court")),
            tail(&lab.log("internet"))
        )
    };
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "out of order or duplicated: {got:?}\n{}",
        logs()
    );
    assert!(
        got.len() * 1000 >= usize::from(count) * min_permille,
        "{} of {count} packets arrived at {loss} loss\n{}",
        got.len(),
        logs()
    );
    net.assert_one_way();
}

#[test]
fn rtp_crosses_the_diode_in_order_without_loss() {
    hearing_crosses(31, 27300, "0%", 2000, 1000);
}

#[test]
fn rtp_crosses_the_diode_at_one_percent_loss() {
    hearing_crosses(32, 27310, "1%", 5000, 990);
}

/// The first stream datagram of the sending node's session (the first source symbol of
/// stream block 0) is dropped on arrival: the packets after it wait for it, it is rebuilt
/// from the block's repair symbols, and it goes out first, so every packet crosses in
/// order. (With MPEG-TS the first packet carries the tables and the start of the first key
/// frame; made late, it cost a second of video.)
#[test]
fn the_sessions_first_packet_lost_on_the_wire_still_goes_out_first() {
    const COUNT: u16 = 500;
    let (id, port_base) = (33, 27320);
    let net = Net::new(id, "0%");
    let lab = diode_lab(port_base, &net, &[]);
    // the datagram's first bytes (wire.rs): "ID", version 2, kind 5 (stream symbol), at
    // an offset from the UDP header, past an IP header of any length. The body (block 0,
    // K 0: a source symbol, esi 0) is encrypted, so the first such datagram is picked by
    // count: the first stream symbol a session sends is its first packet's source symbol.
    // `statistic` in nth mode with `packet 0` matches the first packet it sees, and the
    // next one a million stream symbols later
    let stream_symbol = "0>>22&0x3C@8=0x49440205";
    net.drop_arriving(&[
        "-m",
        "u32",
        "--u32",
        stream_symbol,
        "-m",
        "statistic",
        "--mode",
        "nth",
        "--every",
        "1000000",
        "--packet",
        "0",
    ]);
    let _nodes = start_both(&lab, &net);
    let got = stream_through(&lab, &net, port_base, COUNT);
    let dropped = net.dropped_by("u32");
    assert_eq!(dropped, 1, "the first stream datagram, and only it");
    assert_eq!(
        got,
        (0..COUNT).collect::<Vec<_>>(),
        "every packet, in order\n--- internet ---\n{}",
        tail(&lab.log("internet"))
    );
    net.assert_one_way();
}

/// Helper run inside the sender's namespace: sends ISOG_RTP_COUNT packets to ISOG_RTP_TO
/// at [`PPS`] packets per second.
#[test]
#[ignore = "run inside a namespace by the tests above"]
fn rtp_source() {
    // run by hand among the ignored tests, without its orders: nothing to do
    let Ok(to) = std::env::var("ISOG_RTP_TO") else {
        return;
    };
    let count: u16 = std::env::var("ISOG_RTP_COUNT").unwrap().parse().unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let start = Instant::now();
    for seq in 0..count {
        let due = start + Duration::from_micros(u64::from(seq) * 1_000_000 / PPS);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        sock.send_to(&rtp_packet(seq), &to).unwrap();
    }
}

/// Helper run inside the receiver's namespace: receives on ISOG_RTP_BIND until
/// ISOG_RTP_COUNT packets came or none came for 5 s, and writes the sequence number of
/// each packet received intact, one a line, to ISOG_RTP_OUT.
#[test]
#[ignore = "run inside a namespace by the tests above"]
fn rtp_sink() {
    let Ok(bind) = std::env::var("ISOG_RTP_BIND") else {
        return;
    };
    let count: usize = std::env::var("ISOG_RTP_COUNT").unwrap().parse().unwrap();
    let out = std::env::var("ISOG_RTP_OUT").unwrap();
    let sock = UdpSocket::bind(&bind).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while got.len() < count {
        let Ok(n) = sock.recv(&mut buf) else {
            break;
        };
        let p = &buf[..n];
        if n >= 4 {
            let seq = u16::from_be_bytes([p[2], p[3]]);
            if p == rtp_packet(seq).as_slice() {
                got.push(seq.to_string());
            }
        }
    }
    fs::write(Path::new(&out), got.join("\n")).unwrap();
}
