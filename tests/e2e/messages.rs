//! The `messages` channel end to end, with two real `isogate run` nodes made by
//! `isogate init`: the lab's `notices` channel (court → internet; court's message API at
//! port base + 4, internet's at base + 5) over the quic link and over the diode (on the
//! loopback). Messages posted to `POST /v1/channels/notices/messages` on court cross in
//! batches and are read back from `GET /v1/channels/notices/messages` on internet, in
//! order, with the ids the post answered; what the policy refuses (a schema violation, a
//! classification marking, a refused keyword) is answered with its reason code, never
//! crosses, and is quarantined and audited; a mobile number crosses masked; a retried post
//! with the same `Idempotency-Key` is delivered once; `.json` and `.ndjson` files dropped in
//! the outbox cross too; a long-poll read returns when a message lands; and a run of
//! 10,000 messages survives kill -9 of either node with none lost and none duplicated.

use crate::common;

use common::*;
use isogate::core::message::MessageId;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CHANNEL: &str = "notices";

/// One HTTP answer: status, headers (names lowercased), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes a chunked HTTP/1.1 body (RFC 9112 §7.1).
fn dechunk(mut raw: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = raw.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        raw = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// One HTTP/1.1 request on 127.0.0.1:`port` (one request per connection); `Err` when the
/// node is not there or the connection broke.
fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Answer> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (top, rest) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP header: {raw:?}")))?;
    let mut lines = top.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status: {top:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn post_path() -> String {
    format!("/v1/channels/{CHANNEL}/messages")
}

/// Posts one JSON message to court's API.
fn post_one(lab: &Lab, body: &Value, key: Option<&str>) -> Answer {
    let mut h = vec![("Content-Type", "application/json")];
    if let Some(k) = key {
        h.push(("Idempotency-Key", k));
    }
    request(
        lab.port_base + 4,
        "POST",
        &post_path(),
        &h,
        body.to_string().as_bytes(),
    )
    .unwrap()
}

/// Posts many messages as NDJSON to court's API.
fn post_many(lab: &Lab, bodies: &[Value], key: Option<&str>) -> std::io::Result<Answer> {
    let mut text = String::new();
    for b in bodies {
        text.push_str(&b.to_string());
        text.push('\n');
    }
    let mut h = vec![("Content-Type", "application/x-ndjson")];
    if let Some(k) = key {
        h.push(("Idempotency-Key", k));
    }
    request(lab.port_base + 4, "POST", &post_path(), &h, text.as_bytes())
}

/// One message read back: id, cursor, body.
#[derive(Debug, Clone)]
struct Read1 {
    id: String,
    cursor: String,
    body: Value,
}

/// One GET of internet's message log.
fn get_page(
    lab: &Lab,
    after: Option<&str>,
    limit: usize,
    wait: u64,
) -> (Vec<Read1>, Option<String>) {
    let mut path = format!("/v1/channels/{CHANNEL}/messages?limit={limit}&wait={wait}");
    if let Some(a) = after {
        path.push_str(&format!("&after={a}"));
    }
    let a = request(lab.port_base + 5, "GET", &path, &[], b"").unwrap();
    assert_eq!(a.status, 200, "GET {path}: {}", a.body);
    let j = a.json();
    let msgs = j["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| Read1 {
            id: m["id"].as_str().unwrap().to_string(),
            cursor: m["cursor"].as_str().unwrap().to_string(),
            body: m["body"].clone(),
        })
        .collect();
    (msgs, j["next"].as_str().map(str::to_string))
}

/// Reads internet's log from the start until it holds at least `want` messages (or fails
/// after `secs` seconds); returns every message read, in order.
fn read_until(lab: &Lab, want: usize, secs: u64) -> Vec<Read1> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut all: Vec<Read1> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (page, next) = get_page(lab, after.as_deref(), 1000, 1);
        if let Some(n) = next {
            after = Some(n);
        }
        all.extend(page);
        if all.len() >= want {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s: {} of {want} messages read back",
            all.len()
        );
    }
}

fn notice(case: &str, text: &str) -> Value {
    json!({"type": "status", "case": case, "text": text})
}

/// Starts both nodes and waits until court's message API answers.
fn start_both(lab: &Lab) -> HashMap<&'static str, Running> {
    let nodes: HashMap<&'static str, Running> = ["court", "internet"]
        .into_iter()
        .map(|n| (n, lab.start(n)))
        .collect();
    wait_up(lab);
    nodes
}

/// Waits until both nodes' message APIs accept connections.
fn wait_up(lab: &Lab) {
    for port in [lab.port_base + 4, lab.port_base + 5] {
        wait_until(60, "the message API to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }
}

fn diode_lab(base: u16) -> Lab {
    let lab = Lab::new_with(base, &["--link", "diode"]);
    for node in ["court", "internet"] {
        let file = lab.config(node);
        let text = std::fs::read_to_string(&file).unwrap();
        let text = common::net::set_diode_key(&text, "rate_mbit", "800");
        let text = common::net::set_diode_key(&text, "copies", "1");
        let text = common::net::set_diode_key(&text, "repeat_window_s", "600");
        std::fs::write(&file, text).unwrap();
    }
    lab
}

fn lab_for(base: u16, link: &str) -> Lab {
    match link {
        "diode" => diode_lab(base),
        _ => Lab::new(base),
    }
}

/// Everything a user of the API sees, on one link.
fn messages_cross(base: u16, link: &str) {
    let lab = lab_for(base, link);
    let _nodes = start_both(&lab);

    // valid messages, one and many
    let one = notice("(2026)京0105民初1号", "开庭时间变更为三月一日");
    let a = post_one(&lab, &one, None);
    assert_eq!(a.status, 202, "{}", a.body);
    let id_one = a.json()["id"].as_str().unwrap().to_string();
    assert!(a.json().get("masked").is_none(), "{}", a.body);
    let many: Vec<Value> = (0..50)
        .map(|i| notice(&format!("(2026)京0105民初{i}号"), &format!("第{i}号通知")))
        .collect();
    let a = post_many(&lab, &many, None).unwrap();
    assert_eq!(a.status, 202, "{}", a.body);
    let ids_many: Vec<String> = a.json()["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids_many.len(), 50);

    // refusals: answered with their reason codes, nothing of them crosses
    let mut bad_schema = notice("(2026)京0105民初2号", "missing nothing but type");
    bad_schema.as_object_mut().unwrap().remove("type");
    let a = post_one(&lab, &bad_schema, None);
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.json()["reason"], "schema_violation", "{}", a.body);
    let a = post_one(&lab, &notice("(2026)京0105民初3号", "本件秘密★10年"), None);
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(a.json()["reason"], "classification_marking", "{}", a.body);
    let a = post_one(&lab, &notice("(2026)京0105民初4号", "附内部资料一份"), None);
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(a.json()["reason"], "keyword_match", "{}", a.body);
    // one bad line refuses the whole NDJSON request, and says which
    let mixed = vec![
        notice("(2026)京0105民初5号", "fine"),
        notice("(2026)京0105民初6号", "附内部资料一份"),
    ];
    let a = post_many(&lab, &mixed, None).unwrap();
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(a.json()["index"], 1, "{}", a.body);
    let a = request(
        lab.port_base + 4,
        "POST",
        &post_path(),
        &[("Content-Type", "application/json")],
        b"{not json",
    )
    .unwrap();
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.json()["reason"], "message_malformed", "{}", a.body);

    // a mobile number crosses masked
    let phone = json!({"type": "service", "case": "(2026)京0105民初7号", "text": "送达",
        "party": {"name": "张三", "phone": "13800138000"}});
    let a = post_one(&lab, &phone, None);
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(a.json()["masked"], true, "{}", a.body);
    let id_phone = a.json()["id"].as_str().unwrap().to_string();

    // a retried post with the same key: the same id, delivered once
    let retry = notice("(2026)京0105民初8号", "重试");
    let first = post_one(&lab, &retry, Some("retry-1"));
    let second = post_one(&lab, &retry, Some("retry-1"));
    assert_eq!(first.status, 202, "{}", first.body);
    assert_eq!(second.status, 202, "{}", second.body);
    assert_eq!(first.json()["id"], second.json()["id"]);
    let id_retry = first.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        id_retry,
        MessageId::derive(CHANNEL, "retry-1#0").to_string(),
        "the id derives from the channel and the key"
    );
    // the same key with another body is refused (IETF idempotency-key draft: 422)
    let reused = post_one(
        &lab,
        &notice("(2026)京0105民初8号", "另一条"),
        Some("retry-1"),
    );
    assert_eq!(reused.status, 422, "{}", reused.body);
    assert_eq!(
        reused.json()["reason"],
        "idempotency_key_reused",
        "{}",
        reused.body
    );

    // files dropped in the outbox
    let file_one = notice("(2026)京0105民初9号", "来自文件");
    lab.publish(
        "court",
        CHANNEL,
        "one.json",
        file_one.to_string().as_bytes(),
    );
    let file_many = [
        notice("(2026)京0105民初10号", "文件第一行"),
        notice("(2026)京0105民初11号", "文件第二行"),
    ];
    let nd = format!("{}\n{}\n", file_many[0], file_many[1]);
    lab.publish("court", CHANNEL, "many.ndjson", nd.as_bytes());

    // everything accepted arrives, in the order of the posts, with the posted ids
    let want = 1 + 50 + 1 + 1 + 3;
    let got = read_until(&lab, want, 120);
    assert_eq!(got.len(), want, "{got:?}");
    let ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), want, "no message twice");
    let pos = |id: &str| ids.iter().position(|x| *x == id).unwrap();
    assert_eq!(got[pos(&id_one)].body, one);
    // the messages of one request stay in their order (separate requests may cross in
    // separate batches, which land in the order they arrive)
    let many_pos: Vec<usize> = ids_many.iter().map(|i| pos(i)).collect();
    assert!(many_pos.windows(2).all(|w| w[0] < w[1]), "in order");
    for (i, p) in many_pos.iter().enumerate() {
        assert_eq!(got[*p].body, many[i]);
    }
    let masked = &got[pos(&id_phone)].body;
    assert_eq!(masked["party"]["phone"], "138****8000", "{masked}");
    assert_eq!(masked["party"]["name"], "张三");
    let bodies: Vec<&Value> = got.iter().map(|m| &m.body).collect();
    for b in [&file_one, &file_many[0], &file_many[1]] {
        assert!(bodies.contains(&b), "{b} from the outbox");
    }
    for m in &got {
        let text = m.body["text"].as_str().unwrap_or("");
        assert!(
            !text.contains("秘密") && !text.contains("内部资料"),
            "{text}"
        );
    }
    // cursors go forward
    let cursors: Vec<(u64, u32)> = got
        .iter()
        .map(|m| {
            let (b, i) = m.cursor.split_once('.').unwrap();
            (b.parse().unwrap(), i.parse().unwrap())
        })
        .collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");

    // the refused messages: quarantined with their reasons, audited
    let reasons = reasons(&lab.quarantine("court", CHANNEL));
    for r in [
        "schema_violation",
        "classification_marking",
        "keyword_match",
    ] {
        assert!(reasons.iter().any(|x| x == r), "{r} in {reasons:?}");
    }
    let refused = lab.records("court", "message_refused");
    for r in [
        "schema_violation",
        "classification_marking",
        "keyword_match",
    ] {
        assert!(
            refused
                .iter()
                .any(|x| x.reason.map(|c| c.as_str()) == Some(r)),
            "message_refused {r}"
        );
    }
    let delivered = lab.records("internet", "message_delivered");
    let ids_delivered: HashSet<String> =
        delivered.iter().filter_map(|r| r.message.clone()).collect();
    assert!(ids_delivered.contains(&id_one) && ids_delivered.contains(&id_retry));
    assert!(delivered.iter().all(|r| {
        r.detail
            .as_deref()
            .is_some_and(|d| d.starts_with("cursor "))
    }));

    // the officer's report sums them per side, refusals by reason
    let report = |node: &str| -> Value {
        let dir = lab.dir.join(node).join("audit");
        let out = std::process::Command::new(BIN)
            .args(["audit", "report", dir.to_str().unwrap(), "--since", "-1d"])
            .args(["--channel", CHANNEL, "--format", "json"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
    };
    let (sent, got_report) = (report("court"), report("internet"));
    let accepted = lab.records("court", "message_accepted").len() as u64;
    assert!(accepted >= want as u64, "{accepted}");
    assert_eq!(sent["totals"]["messages_accepted"], accepted, "{sent}");
    assert_eq!(
        sent["totals"]["messages_refused"],
        refused.len() as u64,
        "{sent}"
    );
    assert!(sent["totals"]["masked"].as_u64().unwrap() >= 1, "{sent}");
    let by_reason: Vec<&str> = sent["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert!(by_reason.contains(&"classification_marking"), "{sent}");
    assert_eq!(
        got_report["totals"]["messages_delivered"],
        delivered.len() as u64,
        "{got_report}"
    );

    // a long-poll read returns when a message lands
    let last = got.last().unwrap().cursor.clone();
    let waiting = {
        let port = lab.port_base + 5;
        std::thread::spawn(move || {
            let path = format!("/v1/channels/{CHANNEL}/messages?after={last}&wait=30");
            request(port, "GET", &path, &[], b"").unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let late = notice("(2026)京0105民初12号", "等待中的读取");
    let a = post_one(&lab, &late, None);
    assert_eq!(a.status, 202, "{}", a.body);
    let answer = waiting.join().unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let j = answer.json();
    assert_eq!(j["messages"][0]["body"], late, "{}", answer.body);
    assert_eq!(j["messages"][0]["id"], a.json()["id"]);

    // a bad parameter is answered 400
    let bad = request(
        lab.port_base + 5,
        "GET",
        &format!("/v1/channels/{CHANNEL}/messages?after=nope"),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.json()["reason"], "bad_request");
}

#[test]
fn messages_cross_the_quic_link() {
    messages_cross(28300, "quic");
}

#[test]
fn messages_cross_the_diode() {
    messages_cross(28310, "diode");
}

/// Posts 10,000 messages as 100 NDJSON requests of 100, each with its own
/// `Idempotency-Key`, retried on any error (or 503) until answered 202, while `victim` is
/// killed with SIGKILL twice and restarted; then every message must be read back once,
/// with its body, under the id its key derives.
fn ten_thousand_survive_kill9(base: u16, link: &str, victim: &'static str) {
    const POSTS: usize = 100;
    const PER: usize = 100;
    let lab = Arc::new(lab_for(base, link));
    let mut nodes = start_both(&lab);
    let body = |p: usize, i: usize| {
        notice(
            &format!("(2026)京0105执{p}号"),
            &format!("第{p}批第{i}条：执行通知"),
        )
    };
    let done = Arc::new(AtomicUsize::new(0));
    let poster = {
        let lab = lab.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut retries = 0u64;
            for p in 0..POSTS {
                let bodies: Vec<Value> = (0..PER).map(|i| body(p, i)).collect();
                let key = format!("run-{p}");
                let deadline = Instant::now() + Duration::from_secs(300);
                loop {
                    match post_many(&lab, &bodies, Some(&key)) {
                        Ok(a) if a.status == 202 => {
                            let ids = a.json()["ids"].as_array().unwrap().len();
                            assert_eq!(ids, PER, "{}", a.body);
                            break;
                        }
                        Ok(a) if a.status >= 500 => {
                            if a.status == 503 {
                                assert_eq!(a.header("retry-after"), Some("1"));
                            }
                        }
                        Ok(a) => panic!("post {p}: {} {}", a.status, a.body),
                        Err(_) => {}
                    }
                    retries += 1;
                    assert!(Instant::now() < deadline, "post {p} never taken");
                    std::thread::sleep(Duration::from_millis(50));
                }
                done.store(p + 1, Ordering::SeqCst);
            }
            retries
        })
    };
    for at in [20, 55] {
        wait_until(300, "the posts to go on", || {
            done.load(Ordering::SeqCst) >= at
        });
        eprintln!("after post {at}: kill -9 {victim}");
        nodes.remove(victim).unwrap().kill9();
        std::thread::sleep(Duration::from_millis(300));
        nodes.insert(victim, lab.start(victim));
    }
    let retries = poster.join().unwrap();
    eprintln!("{retries} retried posts");
    wait_up(&lab);

    let got = read_until(&lab, POSTS * PER, 300);
    // a moment more: nothing else may arrive
    std::thread::sleep(Duration::from_millis(500));
    let after = got.last().map(|m| m.cursor.clone());
    let (more, _) = get_page(&lab, after.as_deref(), 1000, 0);
    assert!(more.is_empty(), "{} messages more than sent", more.len());
    assert_eq!(got.len(), POSTS * PER);
    let mut want: HashMap<String, Value> = HashMap::new();
    for p in 0..POSTS {
        for i in 0..PER {
            want.insert(
                MessageId::derive(CHANNEL, &format!("run-{p}#{i}")).to_string(),
                body(p, i),
            );
        }
    }
    let mut seen = HashSet::new();
    for m in &got {
        assert!(seen.insert(m.id.clone()), "{} twice", m.id);
        let w = want
            .get(&m.id)
            .unwrap_or_else(|| panic!("{} was never posted", m.id));
        assert_eq!(&m.body, w, "{}", m.id);
    }
    assert_eq!(seen.len(), want.len(), "none lost");
    // the messages of one post stay in their order
    let index: HashMap<&str, usize> = got
        .iter()
        .enumerate()
        .map(|(n, m)| (m.id.as_str(), n))
        .collect();
    for p in 0..POSTS {
        let at: Vec<usize> = (0..PER)
            .map(|i| {
                index[MessageId::derive(CHANNEL, &format!("run-{p}#{i}"))
                    .to_string()
                    .as_str()]
            })
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "post {p} in order");
    }
    let inbox = lab.inbox("internet", CHANNEL);
    wait_until(30, "the part files to be cleaned up", || {
        common::inbox::part_bytes(&inbox) == 0
    });
}

#[test]
fn ten_thousand_messages_survive_kill9_of_the_sending_node_over_quic() {
    ten_thousand_survive_kill9(28320, "quic", "court");
}

#[test]
fn ten_thousand_messages_survive_kill9_of_the_receiving_node_over_quic() {
    ten_thousand_survive_kill9(28330, "quic", "internet");
}

#[test]
fn ten_thousand_messages_survive_kill9_of_the_sending_node_over_the_diode() {
    ten_thousand_survive_kill9(28340, "diode", "court");
}

#[test]
fn ten_thousand_messages_survive_kill9_of_the_receiving_node_over_the_diode() {
    ten_thousand_survive_kill9(28350, "diode", "internet");
}

/// The receiving node runs its own copy of the policy, which refuses a keyword the sending
/// node's does not: of a batch of three, the message with that word is quarantined on the
/// receiving node on its own (`<id>`, `message_refused` by the receiver), and the other two
/// land and are read back. Nothing the sender accepted waits in quarantine because one
/// message beside it was refused.
#[test]
fn a_message_the_receiver_refuses_is_quarantined_alone_and_its_batch_lands() {
    let lab = Lab::new(26750);
    let policy = lab.dir.join("policy");
    let text = std::fs::read_to_string(policy.join("notices.toml")).unwrap();
    let own = text.replace("keywords = [", "keywords = [\"仅收方规则\", ");
    assert_ne!(own, text, "the keyword list is in the policy");
    std::fs::write(policy.join("internet-notices.toml"), own).unwrap();
    let config = lab.config("internet");
    let cfg = std::fs::read_to_string(&config).unwrap();
    let edited = cfg.replace(
        "policy = \"policy/notices.toml\"",
        "policy = \"policy/internet-notices.toml\"",
    );
    assert_ne!(edited, cfg, "internet names the notices policy");
    std::fs::write(&config, edited).unwrap();
    let _nodes = start_both(&lab);

    let bodies = vec![
        notice("(2026)京0105民初21号", "第一份"),
        notice("(2026)京0105民初22号", "附仅收方规则一份"),
        notice("(2026)京0105民初23号", "第三份"),
    ];
    let a = post_many(&lab, &bodies, None).unwrap();
    assert_eq!(
        a.status, 202,
        "the sending node accepts all three: {}",
        a.body
    );
    let ids: Vec<String> = a.json()["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);

    let got = read_until(&lab, 2, 60);
    let got_ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(got_ids, [ids[0].as_str(), ids[2].as_str()]);
    assert_eq!(got[1].body, bodies[2]);

    // the refused one: quarantined on the receiving node as its own entry, and audited
    let q = lab.quarantine("internet", CHANNEL);
    wait_until(30, "the refused message in the quarantine", || {
        q.join(format!("{}.reason.json", ids[1])).exists()
    });
    let reason: Value =
        serde_json::from_slice(&std::fs::read(q.join(format!("{}.reason.json", ids[1]))).unwrap())
            .unwrap();
    assert_eq!(reason["reason"], "keyword_match", "{reason}");
    assert_eq!(reason["side"], "receiver", "{reason}");
    assert!(q.join(&ids[1]).is_file(), "its body is held");
    let entries: Vec<String> = std::fs::read_dir(&q)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(
        entries.len(),
        2,
        "one entry, the message alone: {entries:?}"
    );
    let refused = lab.records("internet", "message_refused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].message.as_deref(), Some(ids[1].as_str()));
    assert_eq!(refused[0].reason.map(|r| r.as_str()), Some("keyword_match"));
    // the batch that landed is the copy without it, and the record says so
    let masked = lab.records("internet", "masked");
    assert!(
        masked.iter().any(|r| r
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("1 refused message(s) left out"))),
        "{masked:?}"
    );
    let delivered: HashSet<String> = lab
        .records("internet", "message_delivered")
        .into_iter()
        .filter_map(|r| r.message)
        .collect();
    assert!(delivered.contains(&ids[0]) && delivered.contains(&ids[2]));
    assert!(!delivered.contains(&ids[1]));
    assert!(lab.records("court", "message_refused").is_empty());
    // and no batch object waits in either quarantine
    assert!(
        std::fs::read_dir(lab.quarantine("court", CHANNEL))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );
}
