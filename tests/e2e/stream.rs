//! The `stream` channel end to end, with real `isogate run` processes and Debian's ffmpeg
//! as the application on both sides: the lab's `hearing` channel (court listens on port
//! base + 6, internet emits to 127.0.0.1 at base + 7) carries a 10-second 720p H.264/AAC
//! test pattern sent as RTP with an MPEG-TS payload, which the receiving ffmpeg decodes
//! with no error — over the quic link on loopback, and over the diode in network
//! namespaces, clean and at 1 % random loss. Packets the policy refuses (a source outside
//! `sources`, a payload type outside the list, malformed RTP headers) cross nothing and are
//! counted by reason, in `/metrics` and in the `stream_stopped` audit record.
//!
//! The ffmpeg logs and the received transport stream stay under the build's target
//! directory (`tmp/stream/<test>/`).

use crate::common;

use common::media;
use common::net::{self, Net};
use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::net::UdpSocket;
use std::time::Duration;

/// Sets `key = value` in the `[[channel]]` block named `channel` of a node config:
/// replaces the key's line where the block has one, else adds it below the name.
fn set_channel_key(text: &str, channel: &str, key: &str, value: &str) -> String {
    let name_line = format!("name = \"{channel}\"");
    let mut out: Vec<String> = Vec::new();
    let (mut in_channel, mut inside, mut done) = (false, false, false);
    for line in text.lines() {
        if line.starts_with('[') {
            in_channel = line.trim() == "[[channel]]";
            inside = false;
        } else if in_channel && line.trim() == name_line {
            inside = true;
            out.push(line.to_string());
            out.push(format!("{key} = {value}"));
            done = true;
            continue;
        }
        let is_key = line.split_once('=').is_some_and(|(k, _)| k.trim() == key);
        if !(inside && is_key) {
            out.push(line.to_string());
        }
    }
    assert!(done, "a [[channel]] named {channel}");
    out.join("\n") + "\n"
}

/// Both nodes' `hearing` channel stops a stream after `silence_s` seconds without a packet
/// (so that the tests see `stream_stopped` soon).
fn quick_silence(lab: &Lab, silence_s: u64) {
    for node in ["court", "internet"] {
        let file = lab.config(node);
        let text = fs::read_to_string(&file).unwrap();
        let text = set_channel_key(&text, "hearing", "silence_s", &silence_s.to_string());
        fs::write(&file, text).unwrap();
    }
}

/// GET a path on a node's metrics port (loopback); the whole answer.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    raw
}

/// The value of `name{labels…}` in Prometheus text whatever the order of its labels (0
/// when absent).
fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (head, value) = l.rsplit_once(' ')?;
            let rest = head.strip_prefix(name)?;
            let inner = if rest.is_empty() {
                ""
            } else {
                rest.strip_prefix('{')?.strip_suffix('}')?
            };
            let have: Vec<&str> = inner.split(',').filter(|s| !s.is_empty()).collect();
            let all = labels
                .iter()
                .all(|(k, v)| have.contains(&format!("{k}=\"{v}\"").as_str()));
            (all && have.len() == labels.len())
                .then(|| value.parse().ok())
                .flatten()
        })
        .unwrap_or(0.0)
}

fn dropped(text: &str, reason: &str) -> f64 {
    series(
        text,
        "isogate_stream_dropped_total",
        &[("channel", "hearing"), ("reason", reason)],
    )
}

fn packets(text: &str) -> f64 {
    series(
        text,
        "isogate_stream_packets_total",
        &[("channel", "hearing")],
    )
}

/// The body of a stream record (channel, SSRC, packets, bytes, drops by reason, duration,
/// over-rate).
fn body(r: &isogate::audit::Record) -> isogate::audit::StreamRecord {
    r.stream
        .clone()
        .unwrap_or_else(|| panic!("a stream record without its body: {r:?}"))
}

/// Waits for the first `stream_stopped` record of the hearing on a node.
fn stopped(lab: &Lab, node: &str) -> isogate::audit::Record {
    let mut found = None;
    wait_until(60, &format!("stream_stopped on {node}"), || {
        found = lab
            .records(node, "stream_stopped")
            .into_iter()
            .find(|r| r.channel.as_deref() == Some("hearing"));
        found.is_some()
    });
    found.unwrap()
}

/// Both nodes audited the stream's start and stop; the packets counted agree.
fn assert_audited(lab: &Lab) {
    for node in ["court", "internet"] {
        assert!(
            lab.records(node, "stream_started")
                .iter()
                .any(|r| r.channel.as_deref() == Some("hearing")),
            "stream_started on {node}"
        );
    }
    let (court, internet) = (stopped(lab, "court"), stopped(lab, "internet"));
    let (c, i) = (body(&court), body(&internet));
    let (sent, emitted) = (c.packets.unwrap_or(0), i.packets.unwrap_or(0));
    assert!(sent > 100, "{c:?}");
    assert!(emitted > 100 && emitted <= sent, "{c:?} {i:?}");
    assert!(c.ssrc.is_some(), "{c:?}");
    assert_eq!(c.ssrc, i.ssrc, "the same SSRC on both sides");
    assert_eq!(c.over_rate, Some(false), "{c:?}");
    assert!(c.drops.is_empty(), "{c:?}");
}

/// The harness alone: ffmpeg straight to ffmpeg, no gateway between. What the gateway
/// tests below must come near.
#[test]
fn ffmpeg_alone_decodes_every_frame_it_receives() {
    let dir = media::log_dir("direct");
    let sink = media::receive(27046, None, &dir);
    media::send(27046, 27045, None, &dir).wait();
    let got = sink.finish();
    got.assert_good(98);
}

#[test]
fn ffmpeg_live_video_crosses_the_quic_link() {
    let lab = Lab::new(27000);
    quick_silence(&lab, 2);
    let base = lab.port_base;
    let _internet = lab.start("internet");
    let _court = lab.start("court");
    wait_until(30, "the link up", || {
        series(
            &http_get(base + 2, "/metrics"),
            "isogate_link_up",
            &[("link", "quic")],
        ) == 1.0
    });
    let dir = media::log_dir("quic");
    let sink = media::receive(base + 7, None, &dir);
    // the source's RTCP goes to a port nothing listens on: only RTP crosses
    let source = media::send(base + 6, base + 5, None, &dir);
    wait_until(10, "the stream live on both nodes", || {
        [base + 2, base + 3].iter().all(|p| {
            series(
                &http_get(*p, "/metrics"),
                "isogate_stream_live",
                &[("channel", "hearing")],
            ) == 1.0
        })
    });
    source.wait();
    let got = sink.finish();
    got.assert_good(95);
    let m = http_get(base + 3, "/metrics");
    assert!(packets(&m) > 100.0, "{m}");
    assert_audited(&lab);
    // once stopped, the stream is no longer live (the gauge drops just after the record)
    wait_until(10, "the stream no longer live", || {
        let m = http_get(base + 3, "/metrics");
        series(&m, "isogate_stream_live", &[("channel", "hearing")]) == 0.0
    });
}

/// ffmpeg → court (namespace of its own) ══ diode ══ internet (its namespace) → ffmpeg.
fn across_the_diode(loss: &str, id: u8, base: u16) {
    let n = Net::new(id, loss);
    let lab = net::diode_lab(base, &n, &[]);
    quick_silence(&lab, 2);
    let _internet = net::start_in(&lab, "internet", &n.rcv);
    wait_until(30, "the internet node's metrics", || {
        up_in(&n.rcv, base + 3)
    });
    let _court = net::start_in(&lab, "court", &n.snd);
    wait_until(30, "the court node's metrics", || up_in(&n.snd, base + 2));
    let dir = media::log_dir(&format!("diode-{}", loss.trim_end_matches('%')));
    let sink = media::receive(base + 7, Some(&n.rcv), &dir);
    media::send(base + 6, base + 5, Some(&n.snd), &dir).wait();
    let got = sink.finish();
    got.assert_good(95);
    let m = net::metrics(&n.rcv, base + 3);
    assert!(packets(&m) > 100.0, "{m}");
    assert_audited(&lab);
    n.assert_one_way();
}

/// Whether a node's /healthz answers (any status) inside a namespace.
fn up_in(netns: &str, port: u16) -> bool {
    std::process::Command::new("ip")
        .args(["netns", "exec", netns, "curl", "-s", "-o", "/dev/null"])
        .arg(format!("http://127.0.0.1:{port}/metrics"))
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn ffmpeg_live_video_crosses_the_diode() {
    across_the_diode("0%", 70, 27020);
}

#[test]
fn ffmpeg_live_video_crosses_the_diode_at_one_percent_loss() {
    across_the_diode("1%", 71, 27030);
}

/// An RTP packet (RFC 3550 §5.1, version 2, no CSRC, no extension) carrying `payload`.
fn rtp(pt: u8, seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt & 0x7f];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 3600).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Seven MPEG-TS null packets (PID 0x1FFF) whose bodies hold `mark`.
fn ts_payload(mark: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(7 * 188);
    for _ in 0..7 {
        let mut p = vec![mark; 188];
        p[..4].copy_from_slice(&[0x47, 0x1f, 0xff, 0x10]);
        out.extend_from_slice(&p);
    }
    out
}

/// RTP packets whose headers RFC 3550 does not allow, each with a reason.
fn malformed(ssrc: u32) -> Vec<(&'static str, Vec<u8>)> {
    let good = rtp(33, 100, ssrc, &ts_payload(9));
    let mut v1 = good.clone();
    v1[0] = 0x40; // version 1
    let mut csrc = good[..20].to_vec();
    csrc[0] = 0x8f; // 15 CSRCs (60 bytes) in a 20-byte packet
    let mut ext = good.clone();
    ext[0] = 0x90; // an extension whose length (16-bit words) runs past the packet
    ext[12..16].copy_from_slice(&[0xbe, 0xde, 0xff, 0xff]);
    let mut pad_zero = good.clone();
    pad_zero[0] = 0xa0; // padding, with a count of 0
    *pad_zero.last_mut().unwrap() = 0;
    let mut pad_long = rtp(33, 100, ssrc, &[0x47, 0, 0, 200]);
    pad_long[0] = 0xa0; // padding longer than the payload
    vec![
        ("version 1", v1),
        ("CSRC count past the end", csrc),
        ("extension past the end", ext),
        ("padding count 0", pad_zero),
        ("padding past the payload", pad_long),
        ("header only", good[..12].to_vec()),
        ("shorter than a header", good[..7].to_vec()),
    ]
}

#[test]
fn refused_packets_cross_nothing_and_are_counted_by_reason() {
    let lab = Lab::new(27010);
    quick_silence(&lab, 2);
    let base = lab.port_base;
    // the test is the application on the internet side
    let emit = UdpSocket::bind(("127.0.0.1", base + 7)).unwrap();
    emit.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _internet = lab.start("internet");
    let _court = lab.start("court");
    wait_until(30, "the link up", || {
        series(
            &http_get(base + 2, "/metrics"),
            "isogate_link_up",
            &[("link", "quic")],
        ) == 1.0
    });
    let to = ("127.0.0.1", base + 6);
    let good = UdpSocket::bind("127.0.0.1:0").unwrap();
    // loopback answers for all of 127/8: a sender outside the lab's sources (127.0.0.1/32)
    let spoofed = UdpSocket::bind("127.0.0.2:0").unwrap();
    let ssrc = 0x1234_5678;
    let recv = |want: &[u8]| {
        let mut buf = vec![0u8; 65_536];
        let n = emit.recv(&mut buf).expect("a packet emitted");
        assert_eq!(&buf[..n], want, "only the accepted packets are emitted");
    };

    // a first accepted packet starts the stream (and pins its SSRC)
    let first = rtp(33, 1, ssrc, &ts_payload(1));
    good.send_to(&first, to).unwrap();
    recv(&first);

    // then what the policy refuses
    for i in 0..10 {
        spoofed
            .send_to(&rtp(33, 2 + i, ssrc, &ts_payload(2)), to)
            .unwrap();
    }
    for i in 0..10 {
        // payload type 34 (H.263) is not in the lab's list [33, 96, 97, 98, 111]
        good.send_to(&rtp(34, 20 + i, ssrc, &ts_payload(3)), to)
            .unwrap();
    }
    let bad = malformed(ssrc);
    for (_, p) in &bad {
        good.send_to(p, to).unwrap();
    }

    // a last accepted packet: the court handles its socket in order, so whatever crossed of
    // the refused ones would arrive before it
    let last = rtp(33, 2, ssrc, &ts_payload(4));
    good.send_to(&last, to).unwrap();
    recv(&last);

    let want = [
        ("source", 10.0),
        ("payload_type", 10.0),
        ("rtp_malformed", bad.len() as f64),
    ];
    // each node counts a packet just after handing it on, so the count may trail the
    // packet the test received by a moment: wait for it, then check it is exactly 2
    let mut m = String::new();
    wait_until(
        10,
        "the drops and packets counted in the court's metrics",
        || {
            m = http_get(base + 2, "/metrics");
            want.iter().all(|(r, n)| dropped(&m, r) == *n) && packets(&m) >= 2.0
        },
    );
    assert_eq!(packets(&m), 2.0, "{m}");
    let mut internet = String::new();
    wait_until(10, "the packets counted in the internet's metrics", || {
        internet = http_get(base + 3, "/metrics");
        packets(&internet) >= 2.0
    });
    assert_eq!(packets(&internet), 2.0, "{internet}");
    for reason in isogate::core::stream::DropReason::ALL {
        assert_eq!(dropped(&internet, reason.code()), 0.0, "{internet}");
    }

    // the stream stops after silence_s: its record counts the drops by reason
    let c = body(&stopped(&lab, "court"));
    assert_eq!(c.packets, Some(2), "{c:?}");
    assert_eq!(c.ssrc, Some(ssrc), "{c:?}");
    assert_eq!(
        c.drops,
        want.iter()
            .map(|(r, n)| (r.to_string(), *n as u64))
            .collect::<BTreeMap<_, _>>(),
        "{c:?}"
    );
    let internet = body(&stopped(&lab, "internet"));
    assert_eq!(internet.packets, Some(2), "{internet:?}");
    assert!(internet.drops.is_empty(), "{internet:?}");
    let started = lab.records("court", "stream_started");
    assert!(
        started
            .iter()
            .filter_map(|r| body(r).source)
            .any(|s| s.starts_with("127.0.0.1:")),
        "the court's stream_started names the source: {started:?}"
    );

    // and nothing else reached the application
    emit.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    assert!(emit.recv(&mut buf).is_err(), "an extra packet was emitted");
}
