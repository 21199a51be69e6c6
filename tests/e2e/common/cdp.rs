//! A small driver of headless Chromium over the DevTools protocol (CDP), for end-to-end tests
//! of web pages the nodes serve: open a page, read its HTTP status, fill a form, choose files,
//! click, run a script, wait for a condition, read text, save a screenshot.
//!
//! ```text
//!   test ── Browser::launch() ──► chromium --headless=new --remote-debugging-port=0
//!     │        (stderr: "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/…")
//!     │
//!     └── one WebSocket (JSON commands {id, method, params, sessionId} ⇄ replies and events)
//!            ├── Page (Target.createTarget + attachToTarget, flatten: its own sessionId)
//!            └── Page …
//! ```
//!
//! Everything is synchronous and every call has a deadline ([`DEFAULT_TIMEOUT`], or
//! [`Page::set_timeout`]); a failure panics with what was asked and what the browser said
//! (the last lines of Chromium's own log when it died), as test code should.
//!
//! ```ignore
//! let browser = cdp::Browser::launch(); // or launch_with(&["--lang=zh-CN"])
//! let page = browser.new_page();
//! assert_eq!(page.goto(&format!("http://127.0.0.1:{port}/")), 401); // not logged in
//! // page.http_auth(Some(("alice", "secret"))) first if the server asks WWW-Authenticate
//! assert_eq!(page.goto(&format!("http://127.0.0.1:{port}/login")), 200);
//! page.fill("#user", "alice");
//! page.fill("#password", "secret");
//! assert_eq!(page.click_and_wait("button[type=submit]"), 200); // a click that navigates
//! page.wait_for("document.querySelector('#pending tr') !== null", Duration::from_secs(5));
//! page.set_files("input[type=file]", &[key_path.as_path()]);
//! page.click("#approve");                    // a click handled by the page's script
//! let n = page.eval("document.querySelectorAll('tr').length"); // serde_json::Value
//! let title = page.text("h1");               // innerText
//! let shots = cdp::screenshot_dir("console"); // <target>/screenshots/console/, kept
//! page.screenshot(&shots.join("pending.png")); // PNG of the whole page
//! assert!(page.errors().is_empty());         // console errors and uncaught exceptions
//! ```
//!
//! HTTP authentication (`WWW-Authenticate`) is answered only after [`Page::http_auth`].
//! JavaScript dialogs (`alert`, `confirm`, `prompt`) are accepted at once and their messages
//! kept ([`Page::dialogs`]). The browser runs without a sandbox (the tests run as root) in a
//! fresh profile in a temporary directory; it is killed (with its whole process group) and
//! reaped when the [`Browser`] is dropped.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

/// The deadline of each call unless [`Page::set_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long [`Browser::launch`] waits for Chromium to print its DevTools address.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Events kept unread at most (the oldest are dropped first).
const MAX_EVENTS: usize = 10_000;

/// Lines of Chromium's own log kept for panic messages.
const LOG_LINES: usize = 60;

/// The browser's viewport, in CSS pixels.
const WINDOW: (u32, u32) = (1280, 900);

/// A headless Chromium process and the WebSocket to its DevTools endpoint.
pub struct Browser {
    conn: Rc<RefCell<Conn>>,
    child: Child,
    log: Arc<Mutex<VecDeque<String>>>,
    _profile: tempfile::TempDir,
}

/// One tab, attached through its own flattened session.
pub struct Page {
    conn: Rc<RefCell<Conn>>,
    target: String,
    session: String,
    frame: String,
    timeout: Duration,
}

struct Conn {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    events: VecDeque<Value>,
    /// Console errors and uncaught exceptions, per session.
    errors: HashMap<String, Vec<String>>,
    /// Messages of JavaScript dialogs, per session.
    dialogs: HashMap<String, Vec<String>>,
    /// Sessions that answer HTTP authentication challenges: with these credentials, or
    /// `None` to cancel (the 401 page then shows).
    auth: HashMap<String, Option<(String, String)>>,
    /// Requests already answered with credentials (a second challenge is cancelled).
    auth_tried: VecDeque<String>,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Browser {
    /// Starts `chromium` (the Debian package; scripts/test.sh installs it) headless, with a
    /// fresh profile, and connects to its DevTools endpoint. Panics if it cannot be started or
    /// prints no "DevTools listening on ws://…" line within 30 s.
    pub fn launch() -> Browser {
        Browser::launch_with(&[])
    }

    /// [`Browser::launch`] with more Chromium switches, e.g. `--lang=zh-CN` or
    /// `--ignore-certificate-errors` for a page served over TLS with a test certificate.
    pub fn launch_with(extra_args: &[&str]) -> Browser {
        let profile = tempfile::tempdir().expect("a temporary directory for Chromium's profile");
        let mut child = Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-extensions",
                "--disable-sync",
                "--mute-audio",
                "--password-store=basic",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
                &format!("--window-size={},{}", WINDOW.0, WINDOW.1),
                &format!("--user-data-dir={}", profile.path().display()),
            ])
            .args(extra_args)
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // its own process group, so that Drop kills the renderers with it
            .process_group(0)
            .spawn()
            .expect("cannot start chromium (Debian package chromium; scripts/test.sh installs it)");
        let stderr = child.stderr.take().expect("chromium's stderr is piped");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::channel();
        let kept = Arc::clone(&log);
        // reads stderr to its end, so that Chromium never blocks on a full pipe
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("ws://") {
                    let _ = tx.send(line[at..].trim().to_string());
                }
                let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                if kept.len() == LOG_LINES {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        let url = match rx.recv_timeout(LAUNCH_TIMEOUT) {
            Ok(url) => url,
            Err(_) => {
                kill_group(&mut child);
                panic!(
                    "chromium printed no \"DevTools listening on ws://…\" line within {:?}; \
                     its log:\n{}",
                    LAUNCH_TIMEOUT,
                    tail(&log)
                );
            }
        };
        let conn = match connect(&url) {
            Ok(ws) => ws,
            Err(e) => {
                kill_group(&mut child);
                panic!("cannot connect to chromium's DevTools at {url}: {e}");
            }
        };
        Browser {
            conn: Rc::new(RefCell::new(Conn {
                ws: conn,
                next_id: 1,
                events: VecDeque::new(),
                errors: HashMap::new(),
                dialogs: HashMap::new(),
                auth: HashMap::new(),
                auth_tried: VecDeque::new(),
                log: Arc::clone(&log),
            })),
            child,
            log,
            _profile: profile,
        }
    }

    /// Opens a new tab on `about:blank`, with the Page, Runtime, Network and DOM domains
    /// enabled.
    pub fn new_page(&self) -> Page {
        let deadline = Instant::now() + DEFAULT_TIMEOUT;
        let mut conn = self.conn.borrow_mut();
        let target = conn
            .call(
                None,
                "Target.createTarget",
                json!({"url": "about:blank"}),
                deadline,
            )
            .unwrap_or_else(|e| panic!("new_page: Target.createTarget: {e}"));
        let target = str_field(&target, "targetId", "Target.createTarget");
        let attached = conn
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
                deadline,
            )
            .unwrap_or_else(|e| panic!("new_page: Target.attachToTarget: {e}"));
        let session = str_field(&attached, "sessionId", "Target.attachToTarget");
        for domain in ["Page", "Runtime", "Network", "DOM"] {
            let method = format!("{domain}.enable");
            conn.call(Some(&session), &method, json!({}), deadline)
                .unwrap_or_else(|e| panic!("new_page: {method}: {e}"));
        }
        let tree = conn
            .call(Some(&session), "Page.getFrameTree", json!({}), deadline)
            .unwrap_or_else(|e| panic!("new_page: Page.getFrameTree: {e}"));
        let frame = tree["frameTree"]["frame"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("new_page: Page.getFrameTree gave no frame id: {tree}"))
            .to_string();
        drop(conn);
        Page {
            conn: Rc::clone(&self.conn),
            target,
            session,
            frame,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The last lines Chromium wrote to its stderr.
    pub fn log(&self) -> String {
        tail(&self.log)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

impl Page {
    /// Sets the deadline of each later call on this page.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Navigates to `url`, waits for the load event and returns the HTTP status of the main
    /// document (after redirects: the status of the page that loaded). Panics if the
    /// navigation fails (connection refused, bad address…) or does not load in time.
    pub fn goto(&self, url: &str) -> u16 {
        let deadline = self.deadline();
        let mut conn = self.conn.borrow_mut();
        conn.drop_events(&self.session);
        let nav = conn
            .call(
                Some(&self.session),
                "Page.navigate",
                json!({"url": url}),
                deadline,
            )
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
        if let Some(error) = nav["errorText"].as_str().filter(|e| !e.is_empty()) {
            panic!("goto {url}: navigation failed: {error}");
        }
        let loader = nav["loaderId"]
            .as_str()
            .unwrap_or_else(|| panic!("goto {url}: a same-document navigation has no status"))
            .to_string();
        let what = format!("goto {url}");
        conn.await_document(&self.session, &what, deadline, |e| {
            e["params"]["loaderId"].as_str() == Some(loader.as_str())
        })
    }

    /// Runs `js` (an expression; a promise is awaited) in the page and returns its value as
    /// JSON (`undefined` gives `Value::Null`; DOM nodes cannot be returned: return their
    /// text or attributes). Panics with the exception's message if the script throws.
    pub fn eval(&self, js: &str) -> Value {
        let deadline = self.deadline();
        match self.conn.borrow_mut().evaluate(&self.session, js, deadline) {
            Ok(v) => v,
            Err(e) => panic!("eval failed: {e}\nscript: {js}"),
        }
    }

    /// Waits until `js_condition` (an expression, awaited if a promise) is truthy, checking it
    /// every 50 ms; panics after `timeout` with the condition and its last value or error. A
    /// script error while waiting (say, during a navigation) counts as "not yet".
    pub fn wait_for(&self, js_condition: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let js = format!("!!({js_condition})");
        let last = loop {
            let step = (Instant::now() + self.timeout).min(deadline + Duration::from_secs(1));
            let got = self.conn.borrow_mut().evaluate(&self.session, &js, step);
            match got {
                Ok(Value::Bool(true)) => return,
                Ok(v) => {
                    if Instant::now() >= deadline {
                        break format!("last value {v}");
                    }
                }
                Err(e) => {
                    if Instant::now() >= deadline {
                        break format!("last error: {e}");
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        panic!(
            "wait_for: not true within {timeout:?}: {js_condition}\n{last}\npage text:\n{}",
            self.body_text()
        );
    }

    /// Puts `text` into the input or textarea matching `selector` (focused, its value
    /// replaced, then `input` and `change` events fired, as typing would). Panics if nothing
    /// matches.
    pub fn fill(&self, selector: &str, text: &str) {
        let js = format!(
            "(() => {{ const e = document.querySelector({sel}); \
             if (!e) throw new Error('no element matches ' + {sel}); \
             e.focus(); e.value = {text}; \
             e.dispatchEvent(new Event('input', {{bubbles: true}})); \
             e.dispatchEvent(new Event('change', {{bubbles: true}})); }})()",
            sel = js_str(selector),
            text = js_str(text),
        );
        let deadline = self.deadline();
        if let Err(e) = self
            .conn
            .borrow_mut()
            .evaluate(&self.session, &js, deadline)
        {
            panic!("fill {selector:?}: {e}");
        }
    }

    /// Clicks the element matching `selector` with the mouse, as a person would: scrolled into
    /// view, pressed and released at its centre. Panics if nothing matches, if it has no size
    /// (hidden), or if another element covers its centre. Does not wait for anything the
    /// click starts: see [`Page::click_and_wait`] and [`Page::wait_for`].
    pub fn click(&self, selector: &str) {
        let (x, y) = self.centre(selector);
        let deadline = self.deadline();
        let mut conn = self.conn.borrow_mut();
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            let params = json!({
                "type": kind, "x": x, "y": y, "button": "left",
                "buttons": if kind == "mousePressed" { 1 } else { 0 },
                "clickCount": if kind == "mouseMoved" { 0 } else { 1 },
            });
            conn.call(
                Some(&self.session),
                "Input.dispatchMouseEvent",
                params,
                deadline,
            )
            .unwrap_or_else(|e| panic!("click {selector:?}: {kind}: {e}"));
        }
    }

    /// Clicks (as [`Page::click`]) an element that navigates (a link, a form's submit
    /// button), waits for the new document's load event and returns its HTTP status (after
    /// redirects, such as a 303 after a POST).
    pub fn click_and_wait(&self, selector: &str) -> u16 {
        self.conn.borrow_mut().drop_events(&self.session);
        self.click(selector);
        let deadline = self.deadline();
        let frame = self.frame.clone();
        let what = format!("click_and_wait {selector:?}");
        self.conn
            .borrow_mut()
            .await_document(&self.session, &what, deadline, |e| {
                e["params"]["frameId"].as_str() == Some(frame.as_str())
            })
    }

    /// Chooses `paths` in the file input matching `selector` (DOM.setFileInputFiles; the
    /// page sees `input` and `change` events). Panics if nothing matches or a path does not
    /// exist.
    pub fn set_files(&self, selector: &str, paths: &[&Path]) {
        let files: Vec<String> = paths
            .iter()
            .map(|p| {
                let p = p
                    .canonicalize()
                    .unwrap_or_else(|e| panic!("set_files {selector:?}: {}: {e}", p.display()));
                p.display().to_string()
            })
            .collect();
        let deadline = self.deadline();
        let mut conn = self.conn.borrow_mut();
        let s = Some(self.session.as_str());
        let doc = conn
            .call(s, "DOM.getDocument", json!({"depth": 0}), deadline)
            .unwrap_or_else(|e| panic!("set_files {selector:?}: DOM.getDocument: {e}"));
        let root = doc["root"]["nodeId"].as_i64().unwrap_or(0);
        let found = conn
            .call(
                s,
                "DOM.querySelector",
                json!({"nodeId": root, "selector": selector}),
                deadline,
            )
            .unwrap_or_else(|e| panic!("set_files {selector:?}: DOM.querySelector: {e}"));
        let node = found["nodeId"].as_i64().unwrap_or(0);
        assert!(node != 0, "set_files: no element matches {selector:?}");
        conn.call(
            s,
            "DOM.setFileInputFiles",
            json!({"files": files, "nodeId": node}),
            deadline,
        )
        .unwrap_or_else(|e| panic!("set_files {selector:?}: {e}"));
    }

    /// Saves a PNG of the whole page (beyond the viewport, up to 16,384 px high) to `path`.
    pub fn screenshot(&self, path: &Path) {
        let deadline = self.deadline();
        let mut conn = self.conn.borrow_mut();
        let s = Some(self.session.as_str());
        let metrics = conn
            .call(s, "Page.getLayoutMetrics", json!({}), deadline)
            .unwrap_or_else(|e| panic!("screenshot: Page.getLayoutMetrics: {e}"));
        let size = &metrics["cssContentSize"];
        let width = size["width"].as_f64().unwrap_or(f64::from(WINDOW.0)).ceil();
        let height = size["height"].as_f64().unwrap_or(f64::from(WINDOW.1));
        let height = height.clamp(1.0, 16_384.0).ceil();
        let shot = conn
            .call(
                s,
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": width.max(1.0), "height": height, "scale": 1},
                }),
                deadline,
            )
            .unwrap_or_else(|e| panic!("screenshot: Page.captureScreenshot: {e}"));
        let data = shot["data"]
            .as_str()
            .unwrap_or_else(|| panic!("screenshot: no data in {shot}"));
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap_or_else(|e| panic!("screenshot: the PNG is not base64: {e}"));
        std::fs::write(path, png)
            .unwrap_or_else(|e| panic!("screenshot: cannot write {}: {e}", path.display()));
    }

    /// The text of the element matching `selector` as it is rendered (`innerText`). Panics
    /// if nothing matches.
    pub fn text(&self, selector: &str) -> String {
        let js = format!(
            "(() => {{ const e = document.querySelector({sel}); \
             if (!e) throw new Error('no element matches ' + {sel}); return e.innerText; }})()",
            sel = js_str(selector)
        );
        match self.eval(&js) {
            Value::String(s) => s,
            other => panic!("text {selector:?}: not a string: {other}"),
        }
    }

    /// Whether an element matches `selector` now.
    pub fn exists(&self, selector: &str) -> bool {
        let js = format!("document.querySelector({}) !== null", js_str(selector));
        self.eval(&js) == Value::Bool(true)
    }

    /// The address of the page now (after redirects).
    pub fn url(&self) -> String {
        match self.eval("location.href") {
            Value::String(s) => s,
            other => panic!("url: not a string: {other}"),
        }
    }

    /// Console errors (`console.error`, failed loads the browser logs) and uncaught
    /// exceptions seen on this page so far.
    pub fn errors(&self) -> Vec<String> {
        let deadline = self.deadline();
        let mut conn = self.conn.borrow_mut();
        // a round trip, so that every event sent before it has been read
        let _ = conn.evaluate(&self.session, "0", deadline);
        conn.errors.get(&self.session).cloned().unwrap_or_default()
    }

    /// Messages of the JavaScript dialogs (alert, confirm, prompt) seen so far; each was
    /// accepted.
    pub fn dialogs(&self) -> Vec<String> {
        let deadline = self.deadline();
        let mut conn = self.conn.borrow_mut();
        let _ = conn.evaluate(&self.session, "0", deadline);
        conn.dialogs.get(&self.session).cloned().unwrap_or_default()
    }

    /// Answers HTTP authentication challenges (`WWW-Authenticate: Basic`…) from now on:
    /// with `Some((user, password))`, or cancelled with `None`, so that the 401 page loads
    /// and [`Page::goto`] returns 401. Without this call Chromium fails such a navigation
    /// (`net::ERR_INVALID_AUTH_CREDENTIALS`) and `goto` panics. Wrong credentials are tried
    /// once per request, then cancelled.
    pub fn http_auth(&self, credentials: Option<(&str, &str)>) {
        let deadline = self.deadline();
        let mut conn = self.conn.borrow_mut();
        let creds = credentials.map(|(u, p)| (u.to_string(), p.to_string()));
        conn.auth.insert(self.session.clone(), creds);
        conn.call(
            Some(&self.session),
            "Fetch.enable",
            json!({"handleAuthRequests": true, "patterns": [{"urlPattern": "*"}]}),
            deadline,
        )
        .unwrap_or_else(|e| panic!("http_auth: {e}"));
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    fn body_text(&self) -> String {
        let deadline = self.deadline();
        let got = self.conn.borrow_mut().evaluate(
            &self.session,
            "document.body ? document.body.innerText.slice(0, 2000) : ''",
            deadline,
        );
        match got {
            Ok(Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(e) => format!("(unreadable: {e})"),
        }
    }

    /// The centre of the element matching `selector`, scrolled into view, in CSS pixels.
    fn centre(&self, selector: &str) -> (f64, f64) {
        let js = format!(
            "(() => {{ const e = document.querySelector({sel}); \
             if (!e) return {{error: 'no element matches ' + {sel}}}; \
             e.scrollIntoView({{block: 'center', inline: 'center'}}); \
             const r = e.getBoundingClientRect(); \
             if (r.width === 0 || r.height === 0) return {{error: 'it has no size (hidden?)'}}; \
             const x = r.left + r.width / 2, y = r.top + r.height / 2; \
             const top = document.elementFromPoint(x, y); \
             if (top !== e && !e.contains(top) && !(top && top.control === e)) \
               return {{error: 'it is covered by ' + (top ? top.outerHTML.slice(0, 200) : 'nothing')}}; \
             return {{x, y}}; }})()",
            sel = js_str(selector)
        );
        let v = self.eval(&js);
        if let Some(error) = v["error"].as_str() {
            panic!("click {selector:?}: {error}");
        }
        match (v["x"].as_f64(), v["y"].as_f64()) {
            (Some(x), Some(y)) => (x, y),
            _ => panic!("click {selector:?}: no position in {v}"),
        }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        // best effort: the browser may be gone already
        if let Ok(mut conn) = self.conn.try_borrow_mut() {
            let deadline = Instant::now() + Duration::from_secs(2);
            let params = json!({"targetId": self.target});
            let _ = conn.call(None, "Target.closeTarget", params, deadline);
            conn.errors.remove(&self.session);
            conn.dialogs.remove(&self.session);
            conn.auth.remove(&self.session);
            conn.drop_events(&self.session);
        }
    }
}

impl Conn {
    /// Sends one command and reads until its reply, keeping the events read meanwhile.
    fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
        deadline: Instant,
    ) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .map_err(|e| format!("{method}: cannot send: {e}{}", self.died()))?;
        loop {
            let got = self.read(deadline, method)?;
            if got["id"].as_u64() == Some(id) {
                if let Some(error) = got.get("error") {
                    return Err(format!("{method}: {error}"));
                }
                return Ok(got["result"].clone());
            }
            if got.get("id").is_none() {
                self.keep(got);
            }
            // a reply to a command nobody waits for (a dialog accepted): dropped
        }
    }

    /// Runs an expression and returns its value, or the exception's message.
    fn evaluate(&mut self, session: &str, js: &str, deadline: Instant) -> Result<Value, String> {
        let params = json!({
            "expression": js,
            "awaitPromise": true,
            "returnByValue": true,
            "userGesture": true,
        });
        let got = self.call(Some(session), "Runtime.evaluate", params, deadline)?;
        if let Some(ex) = got.get("exceptionDetails") {
            let text = ex["exception"]["description"]
                .as_str()
                .or_else(|| ex["exception"]["value"].as_str())
                .or_else(|| ex["text"].as_str())
                .unwrap_or("an exception");
            return Err(format!("the script threw: {text}"));
        }
        Ok(got["result"]["value"].clone())
    }

    /// Waits for the main document's response (the last one whose event `matches`, in the
    /// page's main frame) and then the load event; returns the response's HTTP status.
    fn await_document(
        &mut self,
        session: &str,
        what: &str,
        deadline: Instant,
        matches: impl Fn(&Value) -> bool,
    ) -> u16 {
        let mut status = None;
        loop {
            let event = match self.next_event(session, deadline, what) {
                Ok(e) => e,
                Err(e) => panic!("{what}: {e}"),
            };
            match event["method"].as_str() {
                Some("Network.responseReceived")
                    if event["params"]["type"] == "Document" && matches(&event) =>
                {
                    status = event["params"]["response"]["status"].as_u64();
                }
                Some("Page.loadEventFired") if status.is_some() => {
                    let s = status.unwrap_or(0);
                    return u16::try_from(s).unwrap_or_else(|_| panic!("{what}: status {s}"));
                }
                _ => {}
            }
        }
    }

    /// The next event of `session`, from those kept or from the socket.
    fn next_event(
        &mut self,
        session: &str,
        deadline: Instant,
        what: &str,
    ) -> Result<Value, String> {
        let kept = self
            .events
            .iter()
            .position(|e| e["sessionId"].as_str() == Some(session));
        if let Some(e) = kept.and_then(|at| self.events.remove(at)) {
            return Ok(e);
        }
        loop {
            let got = self.read(deadline, what)?;
            if got.get("id").is_some() {
                continue;
            }
            self.note(&got);
            if got["sessionId"].as_str() == Some(session) {
                return Ok(got);
            }
            self.keep_noted(got);
        }
    }

    /// Keeps an event for a later reader, noting errors and dialogs.
    fn keep(&mut self, event: Value) {
        self.note(&event);
        self.keep_noted(event);
    }

    fn keep_noted(&mut self, event: Value) {
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    fn drop_events(&mut self, session: &str) {
        self.events
            .retain(|e| e["sessionId"].as_str() != Some(session));
    }

    /// Records console errors, exceptions and dialogs (accepting the dialog); lets paused
    /// requests go on and answers authentication challenges (see [`Page::http_auth`]).
    fn note(&mut self, event: &Value) {
        let Some(session) = event["sessionId"].as_str().map(str::to_string) else {
            return;
        };
        let p = &event["params"];
        match event["method"].as_str() {
            Some("Runtime.exceptionThrown") => {
                let d = &p["exceptionDetails"];
                let text = d["exception"]["description"]
                    .as_str()
                    .or_else(|| d["text"].as_str())
                    .unwrap_or("an exception");
                self.errors
                    .entry(session)
                    .or_default()
                    .push(text.to_string());
            }
            Some("Runtime.consoleAPICalled") if p["type"] == "error" => {
                let args: Vec<String> = p["args"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| match &x["value"] {
                                Value::String(s) => s.clone(),
                                Value::Null => x["description"].as_str().unwrap_or("").into(),
                                v => v.to_string(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                self.errors.entry(session).or_default().push(args.join(" "));
            }
            Some("Page.javascriptDialogOpening") => {
                let text = p["message"].as_str().unwrap_or("").to_string();
                self.dialogs.entry(session.clone()).or_default().push(text);
                let params = json!({"accept": true});
                self.send_unanswered(&session, "Page.handleJavaScriptDialog", params);
            }
            Some("Fetch.requestPaused") => {
                let params = json!({"requestId": p["requestId"]});
                self.send_unanswered(&session, "Fetch.continueRequest", params);
            }
            Some("Fetch.authRequired") => {
                let request = p["requestId"].as_str().unwrap_or("").to_string();
                let tried = self.auth_tried.contains(&request);
                let creds = self.auth.get(&session).cloned().flatten();
                let answer = match creds {
                    Some((user, password)) if !tried => {
                        if self.auth_tried.len() == MAX_EVENTS {
                            self.auth_tried.pop_front();
                        }
                        self.auth_tried.push_back(request.clone());
                        json!({"response": "ProvideCredentials",
                            "username": user, "password": password})
                    }
                    _ => json!({"response": "CancelAuth"}),
                };
                let params = json!({"requestId": request, "authChallengeResponse": answer});
                self.send_unanswered(&session, "Fetch.continueWithAuth", params);
            }
            _ => {}
        }
    }

    /// Sends a command whose reply nobody waits for (it is dropped when read).
    fn send_unanswered(&mut self, session: &str, method: &str, params: Value) {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"id": id, "sessionId": session, "method": method, "params": params});
        let _ = self.ws.send(Message::text(msg.to_string()));
    }

    /// Reads one JSON message, waiting until `deadline`.
    fn read(&mut self, deadline: Instant, what: &str) -> Result<Value, String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("{what}: no answer from chromium in time"));
            }
            let _ = self.ws.get_ref().set_read_timeout(Some(left));
            match self.ws.read() {
                Ok(Message::Text(text)) => {
                    return serde_json::from_str(text.as_str())
                        .map_err(|e| format!("{what}: chromium sent bad JSON: {e}"));
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(format!("{what}: {e}{}", self.died())),
            }
        }
    }

    fn died(&self) -> String {
        format!("\nchromium's log ends:\n{}", tail(&self.log))
    }
}

/// Opens the WebSocket to the DevTools address printed by Chromium.
fn connect(url: &str) -> Result<WebSocket<TcpStream>, String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("not a ws:// address: {url}"))?;
    let host = rest.split('/').next().unwrap_or(rest);
    let stream = TcpStream::connect(host).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(DEFAULT_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let (ws, _) = tungstenite::client::client(url, stream).map_err(|e| e.to_string())?;
    Ok(ws)
}

/// Kills the browser's whole process group and reaps the browser.
fn kill_group(child: &mut Child) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn tail(log: &Mutex<VecDeque<String>>) -> String {
    let log = log.lock().unwrap_or_else(|e| e.into_inner());
    log.iter().cloned().collect::<Vec<_>>().join("\n")
}

fn str_field(v: &Value, key: &str, method: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{method} gave no {key}: {v}"))
        .to_string()
}

/// `s` as a JavaScript string literal.
fn js_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Where a test saves its screenshots for a person to look at: `screenshots/<test>/` in the
/// build directory that holds the test binary (`target/` or `CARGO_TARGET_DIR`), created if
/// missing; they outlive the run.
pub fn screenshot_dir(test: &str) -> PathBuf {
    // the test binary is <target>/<profile>/deps/<name>-<hash>
    let exe = std::env::current_exe().expect("the test binary's path");
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let dir = target.join("screenshots").join(test);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}
