//! A messages channel between two JetStream streams, end to end, with real processes: a
//! `nats-server -js` started here, the lab's two nodes (`isogate init`) with the `notices`
//! channel's `source` (court) and `deliver` (internet) set. Messages published into the
//! source stream arrive exactly once in the destination stream, each with the gateway's
//! message id as `Nats-Msg-Id`, across a kill -9 of the sending node and of the receiving
//! node in the middle of the flow.

use crate::common;

use async_nats::jetstream::{self, consumer::pull, stream};
use common::Lab;
use isogate::core::message::MessageId;
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LAB_PORTS: u16 = 28600;
const NATS_PORT: u16 = 28650;

/// `nats-server -js` on 127.0.0.1:NATS_PORT with its store in `dir`; killed when dropped.
struct Nats(Child);

impl Nats {
    fn start(dir: &std::path::Path) -> Nats {
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &NATS_PORT.to_string(),
                "-sd",
            ])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server must be installed (scripts/test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", NATS_PORT)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nats(child)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sets `key = "value"` in the `[[channel]]` table named `channel` of a node's config
/// text: any line setting that key there is replaced, else the line is added after the
/// channel's `name`.
fn set_channel_key(text: &str, channel: &str, key: &str, value: &str) -> String {
    let mut out = Vec::new();
    let mut inside = false;
    let mut done = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            inside = false;
        }
        if t.starts_with("name")
            && t.split('=').nth(1).map(str::trim) == Some(&format!("\"{channel}\""))
        {
            inside = true;
            out.push(line.to_string());
            out.push(format!("{key} = \"{value}\""));
            done = true;
            continue;
        }
        if inside && t.split('=').next().map(str::trim) == Some(key) {
            continue;
        }
        out.push(line.to_string());
    }
    assert!(done, "no channel {channel} in the lab's config");
    out.join("\n") + "\n"
}

/// Waits until `cond` holds, polling every 50 ms; fails after `secs`.
async fn until(secs: u64, what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The lab's notices schema: a court notice.
fn notice(i: usize) -> String {
    format!(
        "{{\"type\":\"status\",\"case\":\"(2026)京0105民初{i}号\",\"text\":\"Notice number {i}: the hearing is moved to room {}.\"}}",
        i % 7
    )
}

async fn destination_count(s: &mut stream::Stream) -> u64 {
    s.info().await.map(|i| i.state.messages).unwrap_or(0)
}

/// Every message of the destination stream: (Nats-Msg-Id, body).
async fn destination(s: &stream::Stream) -> Vec<(String, String)> {
    let last = s.get_info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        let m = s.get_raw_message(seq).await.unwrap();
        let id = m
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_string())
            .unwrap_or_default();
        out.push((id, String::from_utf8(m.payload.to_vec()).unwrap()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_to_jetstream_exactly_once_across_restarts() {
    let store = tempfile::tempdir().unwrap();
    let _nats = Nats::start(store.path());
    let client = async_nats::connect(format!("127.0.0.1:{NATS_PORT}"))
        .await
        .unwrap();
    let js = jetstream::new(client);
    // the court's side: where applications publish, and the gateway's durable consumer
    let src = js
        .create_stream(stream::Config {
            name: "NOTICES".into(),
            subjects: vec!["court.notices".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut consumer = src
        .create_consumer(pull::Config {
            durable_name: Some("isogate".into()),
            ack_wait: Duration::from_secs(3),
            ..Default::default()
        })
        .await
        .unwrap();
    // the internet's side: a stream capturing the delivery subject
    let mut dst = js
        .create_stream(stream::Config {
            name: "PUBLISHED".into(),
            subjects: vec!["internet.notices".into()],
            ..Default::default()
        })
        .await
        .unwrap();

    let lab = Lab::new(LAB_PORTS);
    let court = std::fs::read_to_string(lab.config("court")).unwrap();
    let court = set_channel_key(
        &court,
        "notices",
        "source",
        &format!("nats://127.0.0.1:{NATS_PORT}/NOTICES/isogate"),
    );
    std::fs::write(lab.config("court"), court).unwrap();
    let internet = std::fs::read_to_string(lab.config("internet")).unwrap();
    let internet = set_channel_key(
        &internet,
        "notices",
        "deliver",
        &format!("nats://127.0.0.1:{NATS_PORT}/internet.notices"),
    );
    std::fs::write(lab.config("internet"), internet).unwrap();

    let mut court = lab.start("court");
    let mut internet = lab.start("internet");

    // every body published: the gateway's id for each is read from the sending node's
    // message_accepted record of that body (derived from the source stream, the time it
    // stored the message and its sequence: a workqueue stream forgets the message once
    // the gateway acknowledged it, so the test cannot read that time itself)
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    let publish = async |i: usize| {
        let body = notice(i);
        js.publish("court.notices", body.clone().into())
            .await
            .unwrap()
            .await
            .unwrap();
        (body, String::new())
    };
    for i in 0..30 {
        let (b, id) = publish(i).await;
        expected.insert(b, id);
    }
    until(
        120,
        "the first notices published on the internet side",
        async || destination_count(&mut dst).await >= 5,
    )
    .await;

    // the sending node killed in the middle of the flow, more published while it is down
    court.kill9();
    for i in 30..60 {
        let (b, id) = publish(i).await;
        expected.insert(b, id);
    }
    court = lab.start("court");

    // the receiving node killed in the middle of the flow
    until(120, "more notices published", async || {
        destination_count(&mut dst).await >= 35
    })
    .await;
    internet.kill9();
    for i in 60..90 {
        let (b, id) = publish(i).await;
        expected.insert(b, id);
    }
    internet = lab.start("internet");

    until(240, "every notice in the destination stream", async || {
        let got: BTreeSet<String> = destination(&dst)
            .await
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        got.len() == expected.len()
    })
    .await;
    // everything taken from the source is acknowledged: nothing more can come
    until(120, "the source consumer settled", async || {
        consumer
            .info()
            .await
            .map(|i| i.num_pending == 0 && i.num_ack_pending == 0)
            .unwrap_or(false)
    })
    .await;
    // and everything in the receiving node's log went out: its delivery cursor stands at
    // the log's last message (the message_delivered records' last cursor)
    let delivered = lab.records("internet", "message_delivered");
    let last_cursor = delivered
        .iter()
        .filter_map(|r| {
            r.detail
                .as_deref()?
                .strip_prefix("cursor ")
                .map(str::to_string)
        })
        .max_by_key(|c| {
            let (b, i) = c.split_once('.').unwrap();
            (b.parse::<u64>().unwrap(), i.parse::<u32>().unwrap())
        })
        .expect("message_delivered records with their cursor");
    let cursor_file = lab
        .dir
        .join("internet")
        .join("state")
        .join("deliver")
        .join("notices");
    until(
        60,
        "the delivery cursor at the end of the log",
        async || {
            std::fs::read_to_string(&cursor_file)
                .map(|t| t.trim() == last_cursor)
                .unwrap_or(false)
        },
    )
    .await;

    let got = destination(&dst).await;
    assert_eq!(
        got.len(),
        expected.len(),
        "each notice exactly once in the destination stream"
    );
    // bodies compared as JSON values: the gateway writes each message compact, keys sorted
    let canonical = |b: &str| {
        serde_json::from_str::<serde_json::Value>(b)
            .unwrap()
            .to_string()
    };
    let got_map: BTreeMap<String, String> = got
        .iter()
        .map(|(id, b)| (canonical(b), id.clone()))
        .collect();
    let accepted: BTreeMap<String, String> = lab
        .records("court", "message_accepted")
        .into_iter()
        .filter_map(|r| Some((r.sha256?, r.message?)))
        .collect();
    let expected: BTreeMap<String, String> = expected
        .keys()
        .map(|b| {
            // the record hashes the body as the gateway reads it: compact JSON
            let hash = hex::encode(ring::digest::digest(
                &ring::digest::SHA256,
                canonical(b).as_bytes(),
            ));
            let id = accepted.get(&hash).cloned().unwrap_or_default();
            assert!(
                id.starts_with(|c: char| c.is_ascii_hexdigit()),
                "no message_accepted record of {b}"
            );
            // taken again after a kill: the same id, from the same stream message
            assert!(MessageId::parse(&id).is_some(), "{id}");
            (canonical(b), id)
        })
        .collect();
    assert_eq!(
        got_map, expected,
        "the same bodies, each with the gateway's id as Nats-Msg-Id"
    );
    // the receiving node's log took each id once, and only the gateway's ids
    let logged: Vec<String> = delivered.iter().filter_map(|r| r.message.clone()).collect();
    let distinct: BTreeSet<String> = logged.iter().cloned().collect();
    assert_eq!(
        distinct.len(),
        logged.len(),
        "no id delivered twice into the log"
    );
    let want: BTreeSet<String> = expected.values().cloned().collect();
    assert!(distinct.is_subset(&want));

    court.stop();
    internet.stop();
}
