//! Stream channels over QUIC end to end: RTP packets (RFC 3550, payload type 33: MPEG-TS,
//! RFC 2250) sent to the court node's `hearing` listen port come out of the internet node's
//! emit port in order and byte for byte, as QUIC datagrams in between; packets the policy
//! refuses (a payload type not allowed, malformed headers, too large) never come out and
//! are counted by reason; both nodes audit the stream's start and stop.

use crate::common;

use common::*;
use std::io::{Read, Write};
use std::net::UdpSocket;
use std::sync::mpsc;
use std::time::Duration;

use common::http_get as get;

const BASE: u16 = 27200;
const SSRC: u32 = 0x1234_5678;

/// The metrics of a node, or nothing while its status endpoint is not up yet.
fn try_metrics(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    Some(raw)
}

/// The value of one sample line (`name{labels}`) in Prometheus text, 0 if absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn dropped(text: &str, reason: &str) -> f64 {
    sample(
        text,
        &format!("isogate_stream_dropped_total{{channel=\"hearing\",reason=\"{reason}\"}}"),
    )
}

/// An RTP packet (RFC 3550 §5.1: version 2, no padding, extension or CSRC) of payload type
/// `pt` carrying seven 188-byte MPEG-TS packets, each with its sync byte 0x47, PID 256 and
/// a body that differs from packet to packet.
fn rtp(pt: u8, seq: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + 7 * 188);
    p.push(0x80);
    p.push(pt & 0x7f);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    p.extend_from_slice(&SSRC.to_be_bytes());
    for i in 0..7u8 {
        let mut ts = [0u8; 188];
        ts[0] = 0x47;
        ts[1] = 0x01; // PID 0x0100
        ts[2] = 0x00;
        ts[3] = 0x10 | (i & 0x0f); // payload only, continuity counter
        for (j, b) in ts[4..].iter_mut().enumerate() {
            *b = (seq as usize + usize::from(i) * 7 + j) as u8;
        }
        p.extend_from_slice(&ts);
    }
    p
}

/// The RTP sequence number of a packet.
fn seq_of(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[2], p[3]])
}

#[test]
fn rtp_crosses_in_order_and_refused_packets_are_counted() {
    let lab = Lab::new(BASE);
    let (listen, emit) = (BASE + 6, BASE + 7);
    let (court_metrics, internet_metrics) = (BASE + 2, BASE + 3);
    // the application on the internet side: every packet the node emits, in arrival order
    let app = UdpSocket::bind(("127.0.0.1", emit)).unwrap();
    app.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        loop {
            match app.recv(&mut buf) {
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("{e}"),
            }
        }
    });
    let court = lab.start("court");
    let internet = lab.start("internet");
    wait_until(30, "the quic link up", || {
        try_metrics(court_metrics)
            .is_some_and(|m| sample(&m, "isogate_link_up{link=\"quic\"}") == 1.0)
    });
    let source = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = ("127.0.0.1", listen);

    // until the path's MTU is known a packet may not fit a datagram yet: send one at a
    // time until one comes through
    let mut seq = 0u16;
    loop {
        source.send_to(&rtp(33, seq), to).unwrap();
        seq += 1;
        if let Ok(p) = rx.recv_timeout(Duration::from_millis(300)) {
            assert!(seq_of(&p) < seq);
            assert_eq!(p, rtp(33, seq_of(&p)), "a packet changed on the way");
            break;
        }
        assert!(seq < 100, "no packet came through");
    }
    while rx.recv_timeout(Duration::from_millis(300)).is_ok() {}

    // 300 packets, paced a little (the sockets' buffers are the kernel's defaults)
    let first = seq;
    for _ in 0..300 {
        source.send_to(&rtp(33, seq), to).unwrap();
        seq += 1;
        if seq.is_multiple_of(20) {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    for expect in first..seq {
        let p = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("packet {expect} never came out"));
        assert_eq!(seq_of(&p), expect, "out of order");
        assert_eq!(p, rtp(33, expect), "packet {expect} changed on the way");
    }

    // packets larger than a datagram before the path's MTU was known: dropped by the link
    // as packet_size, and not counted as passed in the stream's record
    let early = dropped(&get(court_metrics, "/metrics").1, "packet_size");

    // refused on the court node: a payload type not in the policy, malformed headers, a
    // packet over max_packet_bytes; none comes out
    source.send_to(&rtp(34, seq), to).unwrap();
    let mut v1 = rtp(33, seq);
    v1[0] = 0x40; // version 1
    source.send_to(&v1, to).unwrap();
    let mut csrc = rtp(33, seq)[..16].to_vec();
    csrc[0] = 0x8f; // fifteen CSRC identifiers announced, one present
    source.send_to(&csrc, to).unwrap();
    source.send_to(&[0x80, 33, 0, 1], to).unwrap(); // shorter than a header
    let mut big = rtp(33, seq);
    big.extend_from_slice(&[0x47; 188]);
    source.send_to(&big, to).unwrap();
    wait_until(30, "the refusals counted on the court node", || {
        let m = get(court_metrics, "/metrics").1;
        dropped(&m, "payload_type") == 1.0
            && dropped(&m, "rtp_malformed") == 3.0
            && dropped(&m, "packet_size") == early + 1.0
    });
    // the next good packet is the next one out: nothing refused came out before it
    source.send_to(&rtp(33, seq), to).unwrap();
    let p = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(p, rtp(33, seq));
    seq += 1;
    // handed to the link: every good packet; the link dropped some of the first ones at
    // most (larger than the path carried before its MTU was known). A node counts a packet
    // just after handing it on: the count may trail the packet received by a moment
    let packets = "isogate_stream_packets_total{channel=\"hearing\"}";
    let mut m = String::new();
    wait_until(10, "the court's count of the packets handed on", || {
        m = get(court_metrics, "/metrics").1;
        sample(&m, packets) >= f64::from(seq)
    });
    let sent = sample(&m, packets) as u64;
    assert_eq!(sent, u64::from(seq));
    let link_lost = (early + dropped(&m, "link_busy") + dropped(&m, "link_down")) as u64;
    assert!(
        link_lost < u64::from(first),
        "lost on the link: {link_lost}"
    );
    let mut m = String::new();
    wait_until(
        10,
        "the internet node's count of the packets emitted",
        || {
            m = get(internet_metrics, "/metrics").1;
            sample(&m, packets) >= (sent - link_lost) as f64
        },
    );
    let emitted = sample(&m, packets) as u64;
    assert_eq!(
        emitted,
        sent - link_lost,
        "the internet node emitted what crossed"
    );
    assert_eq!(dropped(&m, "late"), 0.0);
    assert_eq!(
        sample(&m, "isogate_stream_live{channel=\"hearing\"}"),
        1.0,
        "live while packets flow"
    );
    assert!(m.contains("isogate_stream_latency_seconds_count{channel=\"hearing\"}"));

    // silence: both nodes stop the stream after the channel's silence_s, and say so
    wait_until(60, "stream_stopped on both nodes", || {
        !lab.records("court", "stream_stopped").is_empty()
            && !lab.records("internet", "stream_stopped").is_empty()
    });
    let started = lab.records("court", "stream_started");
    assert_eq!(started.len(), 1);
    let body = started[0].stream.clone().unwrap();
    assert_eq!(body.ssrc, Some(SSRC));
    let from = source.local_addr().unwrap().to_string();
    assert_eq!(body.source.as_deref(), Some(from.as_str()));
    assert_eq!(lab.records("internet", "stream_started").len(), 1);
    let stopped = lab.records("court", "stream_stopped");
    assert_eq!(stopped.len(), 1);
    let body = stopped[0].stream.clone().unwrap();
    assert_eq!(stopped[0].channel.as_deref(), Some("hearing"));
    assert_eq!(body.ssrc, Some(SSRC));
    // the record counts what the link took: the packets it dropped are drops, not passed
    assert_eq!(body.packets, Some(sent - link_lost));
    assert_eq!(body.drops.get("payload_type"), Some(&1));
    assert_eq!(body.drops.values().sum::<u64>(), 5 + link_lost);
    assert_eq!(body.drops.get("rtp_malformed"), Some(&3));
    assert_eq!(body.drops.get("packet_size"), Some(&(1 + early as u64)));
    assert_eq!(body.over_rate, Some(false));
    let stopped = lab.records("internet", "stream_stopped");
    assert_eq!(stopped.len(), 1);
    let body = stopped[0].stream.clone().unwrap();
    assert_eq!(body.packets, Some(emitted));
    assert_eq!(body.ssrc, Some(SSRC));
    assert!(body.drops.is_empty(), "{:?}", body.drops);
    // the gauge drops just after the record is written
    wait_until(10, "the stream no longer live on the court node", || {
        let m = get(court_metrics, "/metrics").1;
        sample(&m, "isogate_stream_live{channel=\"hearing\"}") == 0.0
    });

    // a new stream, then a clean stop while it is live: stopped with the node
    source.send_to(&rtp(33, seq), to).unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    wait_until(30, "the second stream started on both nodes", || {
        lab.records("court", "stream_started").len() == 2
            && lab.records("internet", "stream_started").len() == 2
    });
    assert!(court.stop().success());
    assert!(internet.stop().success());
    assert_eq!(lab.records("court", "stream_stopped").len(), 2);
    assert_eq!(lab.records("internet", "stream_stopped").len(), 2);
    // the logs with the new kinds verify
    for node in ["court", "internet"] {
        let out = std::process::Command::new(BIN)
            .args(["audit", "verify"])
            .arg(lab.dir.join(node).join("audit"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{node}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
