//! End to end: the officers' web console served by a real `isogate run` (the lab's [console]
//! on ports N+8 and N+9). Without a session every page and the decision API answer 401; a
//! wrong password is refused and audited in the node's log, without the password; a right
//! one opens a session (HttpOnly, SameSite=Strict) whose POSTs need the CSRF token; logout
//! ends it. Then headless Chromium, over the DevTools protocol, logs in, finds a landed file
//! by its Chinese name, opens its trail and proof, switches language, and approves a pending
//! file in the page (signed in the browser) before the CLI gives the second approval and it
//! lands; screenshots of the main pages are kept for a person to look at.

use crate::common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One HTTP/1.1 exchange: status, headers (lower-case names), body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    cookie: &str,
    body: &str,
    content_type: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAccept-Language: en\r\n"
    );
    if !cookie.is_empty() {
        req.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn get(port: u16, path: &str, cookie: &str) -> (u16, Vec<(String, String)>, String) {
    http(port, "GET", path, cookie, "", "")
}

fn post_form(
    port: u16,
    path: &str,
    cookie: &str,
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    http(
        port,
        "POST",
        path,
        cookie,
        body,
        "application/x-www-form-urlencoded",
    )
}

/// The `name=value` of each Set-Cookie whose name is `name`.
fn set_cookie(headers: &[(String, String)], name: &str) -> Option<(String, String)> {
    headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .find(|(_, v)| v.starts_with(&format!("{name}=")))
        .map(|(_, v)| {
            let pair = v.split(';').next().unwrap().to_string();
            (pair, v.clone())
        })
}

/// The value of the hidden `csrf` field of a page.
fn csrf_field(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    body[at..].split('"').next().unwrap().to_string()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn console_refuses_without_a_session_and_audits_a_wrong_password() {
    let lab = Lab::new(25800);
    let port = lab.port_base + 8;
    let _court = lab.start("court");
    wait_until(30, "the court console to listen", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let password = std::fs::read_to_string(lab.dir.join("console-officer.password"))
        .unwrap()
        .trim()
        .to_string();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(lab.dir.join("console-officer.password"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // no session: 401 everywhere, the login page as the body
    let id = "0".repeat(32);
    for path in [
        "/".to_string(),
        "/search?q=x".to_string(),
        format!("/object/{id}"),
        "/quarantine".to_string(),
        "/approvals".to_string(),
        "/health".to_string(),
        "/no/such/page".to_string(),
    ] {
        let (status, _, body) = get(port, &path, "");
        assert_eq!(status, 401, "{path}");
        assert!(body.contains("id=\"login\""), "{path}: the login page");
    }
    let decision = format!(
        r#"{{"id":"{id}","decision":"approve","signature":"{}","csrf":"x"}}"#,
        "00".repeat(64)
    );
    let (status, _, body) = http(
        port,
        "POST",
        "/api/decision",
        "",
        &decision,
        "application/json",
    );
    assert_eq!(status, 401, "{body}");
    let (status, _, _) = get(port, "/", "isogate_session=".to_string().as_str());
    assert_eq!(status, 401);
    let (status, _, _) = get(port, "/", &format!("isogate_session={}", "ab".repeat(32)));
    assert_eq!(status, 401, "a made-up token");

    // the login form carries its own CSRF token (cookie and field)
    let (status, headers, body) = get(port, "/login", "");
    assert_eq!(status, 200);
    let (login_cookie, _) = set_cookie(&headers, "isogate_login").expect("login cookie");
    let csrf = csrf_field(&body);
    assert_eq!(login_cookie, format!("isogate_login={csrf}"));

    let wrong = "not-the-password-42";
    let (status, _, body) = post_form(
        port,
        "/login",
        &login_cookie,
        &format!("user=officer&password={}&csrf={csrf}", enc(wrong)),
    );
    assert_eq!(status, 401);
    assert!(body.contains("Wrong user name or password"), "{body}");
    // without the form's token: refused before any password check
    let (status, _, _) = post_form(
        port,
        "/login",
        "",
        &format!("user=officer&password={}&csrf={csrf}", enc(&password)),
    );
    assert_eq!(status, 403);
    wait_until(10, "console_login_failed in the audit log", || {
        !lab.records("court", "console_login_failed").is_empty()
    });
    let failed = lab.records("court", "console_login_failed");
    assert_eq!(failed.len(), 1, "one failed login, one record");
    let detail = failed[0].detail.clone().unwrap();
    assert!(detail.contains("user officer from 127.0.0.1"), "{detail}");
    let log = std::fs::read_to_string(lab.dir.join("court.log")).unwrap_or_default();
    for dir in [lab.dir.join("court/audit")] {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let text = String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned();
            assert!(!text.contains(wrong), "no password in the audit log");
            assert!(!text.contains(&password), "no password in the audit log");
        }
    }
    assert!(
        !log.contains(wrong) && !log.contains(&password),
        "no password in the node's log"
    );
    assert!(!log.contains("$argon2id$"), "no hash in the node's log");

    // the right password opens a session
    let (status, headers, body) = post_form(
        port,
        "/login",
        &login_cookie,
        &format!("user=officer&password={}&csrf={csrf}", enc(&password)),
    );
    assert_eq!(status, 303, "{body}");
    let (session, line) = set_cookie(&headers, "isogate_session").expect("a session cookie");
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Strict") && line.contains("Path=/"),
        "{line}"
    );
    assert_eq!(
        session.len(),
        "isogate_session=".len() + 64,
        "256 random bits"
    );
    wait_until(10, "console_login in the audit log", || {
        !lab.records("court", "console_login").is_empty()
    });

    // a checkpoint comes within a second of the first records; the overview caches 5 s
    wait_until(20, "the overview to say the log verifies", || {
        let (status, _, body) = get(port, "/", &session);
        assert_eq!(status, 200);
        assert!(body.contains("court"));
        body.contains("The audit log verifies")
    });
    for path in [
        "/search?q=x",
        "/quarantine",
        "/approvals",
        "/health",
        "/search",
    ] {
        let (status, _, _) = get(port, path, &session);
        assert_eq!(status, 200, "{path}");
    }
    let (status, _, body) = get(port, "/?lang=zh", &session);
    assert_eq!(status, 200);
    assert!(body.contains("审计日志完整"), "Chinese on request");
    let page_csrf = csrf_field(&body);

    // POSTs need the session's CSRF token
    let (status, _, _) = http(
        port,
        "POST",
        "/api/decision",
        &session,
        &decision,
        "application/json",
    );
    assert_eq!(status, 403, "a wrong CSRF token");
    let (status, _, _) = post_form(port, "/logout", &session, "csrf=wrong");
    assert_eq!(status, 403);
    let ok_decision = decision.replace("\"csrf\":\"x\"", &format!("\"csrf\":\"{page_csrf}\""));
    let (status, _, body) = http(
        port,
        "POST",
        "/api/decision",
        &session,
        &ok_decision,
        "application/json",
    );
    assert_eq!(status, 404, "nothing waits: {body}");
    let (status, _, _) = post_form(port, "/logout", &session, &format!("csrf={page_csrf}"));
    assert_eq!(status, 303);
    let (status, _, _) = get(port, "/", &session);
    assert_eq!(status, 401, "logged out");
}

/// Sends a POST head that promises `length` bytes of body and sends only a few: the
/// connection is kept, held open by the caller.
fn promise_body(port: u16, path: &str, length: usize) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {length}\r\n\r\nuser="
    );
    s.write_all(head.as_bytes()).unwrap();
    s
}

/// The status of the answer on `s`, or `None` when none comes within its read timeout.
fn status_of(s: &mut TcpStream) -> Option<u16> {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n") {
        match s.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            _ => return None,
        }
    }
    String::from_utf8_lossy(&got)
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn console_serves_others_while_slow_clients_hold_bodies() {
    let lab = Lab::new(25820);
    let port = lab.port_base + 8;
    let _court = lab.start("court");
    wait_until(30, "the court console to listen", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // bodies promised and never sent: over the login cap, within it (more than the old 4
    // worker threads), to the decision API without a session, to a route that takes none
    let mut over: Vec<TcpStream> = (0..4)
        .map(|_| promise_body(port, "/login", 60_000))
        .collect();
    let mut within: Vec<TcpStream> = (0..8).map(|_| promise_body(port, "/login", 4000)).collect();
    let mut api: Vec<TcpStream> = (0..4)
        .map(|_| promise_body(port, "/api/decision", 6000))
        .collect();
    let mut other: Vec<TcpStream> = (0..4)
        .map(|_| promise_body(port, "/search", 100_000))
        .collect();
    // another client still gets its page at once (the read times out after 30 s otherwise)
    let (status, _, body) = get(port, "/login", "");
    assert_eq!(status, 200);
    assert!(body.contains("id=\"login\""));
    for s in &mut over {
        assert_eq!(
            status_of(s),
            Some(413),
            "over the 4 KiB login cap: refused unread"
        );
    }
    for s in &mut api {
        assert_eq!(status_of(s), Some(401), "no session: refused unread");
    }
    for s in &mut other {
        assert_eq!(
            status_of(s),
            Some(404),
            "no body on that route: refused unread"
        );
    }
    for s in &mut within {
        assert_eq!(status_of(s), Some(408), "the body did not come in time");
    }
    // two lengths that differ: 400, never a body taken for the next request
    let mut doubtful = TcpStream::connect(("127.0.0.1", port)).unwrap();
    doubtful
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    doubtful
        .write_all(b"POST /login HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nuser")
        .unwrap();
    assert_eq!(status_of(&mut doubtful), Some(400));

    // and an officer still logs in, the slow ones still held
    let password = std::fs::read_to_string(lab.dir.join("console-officer.password"))
        .unwrap()
        .trim()
        .to_string();
    let (_, headers, body) = get(port, "/login", "");
    let (login_cookie, _) = set_cookie(&headers, "isogate_login").unwrap();
    let csrf = csrf_field(&body);
    let (status, headers, _) = post_form(
        port,
        "/login",
        &login_cookie,
        &format!("user=officer&password={}&csrf={csrf}", enc(&password)),
    );
    assert_eq!(status, 303);
    let (session, _) = set_cookie(&headers, "isogate_session").unwrap();

    // an unknown object: 404 with a page in the officer's language
    let (status, _, body) = get(
        port,
        &format!("/object/{}?lang=zh", "0".repeat(32)),
        &session,
    );
    assert_eq!(status, 404);
    assert!(body.contains("审计日志中没有该对象的记录"), "{body}");
    // a search that cannot be read: the console's own words, in Chinese
    let (status, _, body) = get(port, "/search?since=soonish&until=&q=&lang=zh", &session);
    assert_eq!(status, 200);
    assert!(body.contains("无法识别起始时间"), "{body}");
    assert!(
        !body.contains("--since") && !body.contains("--tz"),
        "{body}"
    );
    // the metrics line by line
    let (_, _, body) = get(port, "/health", &session);
    assert!(body.contains("# HELP"), "{body}");
    assert!(!body.contains("\\u{a}"), "newlines kept: {body}");
    drop((over, within, api, other));
}

/// An approver's key pair made by `isogate keygen --approver`: the PEM key file and the
/// public key's hex digits.
fn approver_key(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, String) {
    let out = std::process::Command::new(BIN)
        .args(["keygen", "--approver", name, "--out", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = std::fs::read_to_string(dir.join(format!("{name}.approver.pub")))
        .unwrap()
        .trim()
        .to_string();
    (dir.join(format!("{name}.approver.key")), public)
}

/// Logs in through the form; the page after it.
fn browser_login(page: &cdp::Page, port: u16, password: &str) {
    assert_eq!(
        page.goto(&format!("http://127.0.0.1:{port}/")),
        401,
        "no session yet"
    );
    page.fill("#user", "officer");
    page.fill("#password", password);
    assert_eq!(page.click_and_wait("#login"), 200);
    assert!(page.exists("#log-status"), "the overview after login");
}

/// Headless Chromium drives the court's console: log in, find a landed file by its Chinese
/// name, open its trail and proof, switch language, see the quarantine, and approve a
/// pending outbound file twice (required = 2) until it lands on the internet side.
/// Screenshots of each main page are saved for a person to look at.
#[test]
fn console_in_a_browser_searches_and_approves() {
    let lab = Lab::new(25810);
    let port = lab.port_base + 8;
    let keys = tempfile::tempdir().unwrap();
    let (key1, pub1) = approver_key(keys.path(), "zhang.wei");
    let (key2, pub2) = approver_key(keys.path(), "li.na");
    // both nodes load this policy: the court waits for two approvals, the internet node
    // checks them against the same pinned keys
    let policy = lab.dir.join("policy/to-internet.toml");
    let mut text = std::fs::read_to_string(&policy).unwrap();
    text.push_str(&format!(
        "\n[approval]\nrequired = 2\nexpire_after = \"1h\"\napprovers = [\n  {{ name = \"zhang.wei\", key = \"{pub1}\" }},\n  {{ name = \"li.na\", key = \"{pub2}\" }},\n]\n"
    ));
    std::fs::write(&policy, text).unwrap();
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    wait_until(30, "both consoles to listen", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
            && TcpStream::connect(("127.0.0.1", port + 1)).is_ok()
    });
    let password = std::fs::read_to_string(lab.dir.join("console-officer.password"))
        .unwrap()
        .trim()
        .to_string();

    // a file that lands at the court, one the court refuses, one that waits for approval
    let judgment = "民事判决书（2026）吉01民初123号.pdf";
    lab.publish("internet", "to-court", judgment, &pdf_of("判决书正文", ""));
    lab.publish("court", "to-internet", "evil.exe", b"MZ not a document");
    let notice = "公告（2026）第7号.pdf";
    lab.publish("court", "to-internet", notice, &pdf_of("公告正文", ""));
    wait_until(60, "the judgment to land at the court", || {
        visible(&lab.inbox("court", "to-court")).contains(&judgment.to_string())
    });
    // a 240-character name must not push Approve/Reject off the screen
    let long = format!("{}.pdf", "a".repeat(236));
    lab.publish("court", "to-internet", &long, &pdf_of("长文件名", ""));
    wait_until(
        60,
        "the notice and the long name to wait for approval",
        || {
            std::fs::read_dir(lab.dir.join("court/state/approvals"))
                .map(|d| d.count() > 1)
                .unwrap_or(false)
        },
    );

    let shots = cdp::screenshot_dir("console");
    let browser = cdp::Browser::launch();
    let page = browser.new_page();
    assert_eq!(page.goto(&format!("http://127.0.0.1:{port}/health")), 401);
    assert!(page.exists("#login"));
    page.screenshot(&shots.join("login.png"));
    browser_login(&page, port, &password);
    page.screenshot(&shots.join("overview.png"));

    // search by the Chinese name, open the object
    assert_eq!(
        page.goto(&format!("http://127.0.0.1:{port}/search?lang=en")),
        200
    );
    page.fill("#q", "民事判决书");
    assert_eq!(page.click_and_wait("#search"), 200);
    assert!(page.text("table#results").contains(judgment));
    page.screenshot(&shots.join("search.png"));
    assert_eq!(page.click_and_wait("table#results a.object"), 200);
    let object_url = page.url();
    // the proof needs a checkpoint over the records: one comes within a second
    for _ in 0..20 {
        if page.text("#proof").contains("signed checkpoint") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(page.goto(&object_url), 200);
    }
    let trail = page.text("#trail");
    assert!(
        trail.contains("landed") && trail.contains(judgment),
        "{trail}"
    );
    assert!(
        page.text("#proof").contains("signed checkpoint"),
        "the proof verifies"
    );
    page.screenshot(&shots.join("object.png"));
    assert_eq!(page.click_and_wait("a#lang-zh"), 200);
    assert!(page.text("body").contains("审计轨迹"), "Chinese");
    page.screenshot(&shots.join("object-zh.png"));
    assert_eq!(
        page.goto(&format!("http://127.0.0.1:{port}/quarantine")),
        200
    );
    assert!(
        page.text("body").contains("隔离区"),
        "Chinese is remembered"
    );
    assert!(page.text("#quarantine").contains("evil.exe"));
    page.screenshot(&shots.join("quarantine.png"));
    assert_eq!(page.click_and_wait("a#lang-en"), 200);

    // approve through the console, once with each approver's key
    let id = std::fs::read_dir(lab.dir.join("court/state/approvals"))
        .unwrap()
        .flatten()
        .filter(|e| {
            !std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .contains(&long)
        })
        .map(|e| {
            e.file_name()
                .to_string_lossy()
                .trim_end_matches(".json")
                .to_string()
        })
        .next()
        .unwrap();
    assert_eq!(
        page.goto(&format!("http://127.0.0.1:{port}/approvals")),
        200
    );
    assert!(page.exists(&format!("table#pending tr[data-id='{id}']")));
    assert!(
        page.text("#cli")
            .contains(&format!("isogate approve {id} --key"))
    );
    page.screenshot(&shots.join("approvals.png"));
    let fits = page.eval(
        "Array.from(document.querySelectorAll('button.approve, button.reject')).every(b => b.getBoundingClientRect().right <= document.documentElement.clientWidth)",
    );
    assert_eq!(
        fits,
        serde_json::Value::Bool(true),
        "the buttons stay on the screen"
    );
    // a key that is not pinned is refused by the console at once
    let (stranger, _) = approver_key(keys.path(), "stranger");
    page.set_files("#key", &[stranger.as_path()]);
    page.click(&format!("button.approve[data-id='{id}']"));
    page.wait_for(
        "document.querySelector('#decision-result').dataset.taken === 'false'",
        Duration::from_secs(20),
    );
    assert!(
        page.text("#decision-result")
            .contains("matches no pinned approver")
    );
    // the first approver signs in the browser
    assert_eq!(
        page.goto(&format!("http://127.0.0.1:{port}/approvals")),
        200
    );
    page.set_files("#key", &[key1.as_path()]);
    page.fill("#note", "第一位审批人同意");
    page.click(&format!("button.approve[data-id='{id}']"));
    page.wait_for(
        "document.querySelector('#decision-result').dataset.taken === 'true'",
        Duration::from_secs(20),
    );
    let said = page.text("#decision-result");
    assert!(said.contains("(1/2)"), "{said}");
    page.screenshot(&shots.join("approved-once.png"));
    assert!(
        visible(&lab.inbox("internet", "to-internet")).is_empty(),
        "one approval of two lets nothing go"
    );
    // the second with the command the page shows
    let out = std::process::Command::new(BIN)
        .args(["approve", &id, "--key", key2.to_str().unwrap(), "--config"])
        .arg(lab.config("court"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until(60, "the approved notice to land", || {
        visible(&lab.inbox("internet", "to-internet")).contains(&notice.to_string())
    });
    let approved = lab.records("court", "approved");
    assert_eq!(approved.len(), 2);
    assert!(
        approved.iter().any(|r| r
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("console:officer")),
        "{approved:?}"
    );
    assert_eq!(page.goto(&format!("http://127.0.0.1:{port}/health")), 200);
    page.screenshot(&shots.join("health.png"));
    assert!(page.errors().is_empty(), "{:?}", page.errors());
    eprintln!("console screenshots: {}", shots.display());
}
