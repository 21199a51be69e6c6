//! The read-only web console for security officers, served by the running node (it is the
//! audit log's one writer, so logins are audited in its log): what crossed and what was
//! refused, each object's trail and proof, the quarantine, the objects waiting for approval
//! (with approve and reject, signed in the approver's browser), health and metrics; in
//! Chinese and English. Plain HTTP on a loopback address (TLS in front, or an SSH tunnel,
//! for anything else), behind a password file of argon2id hashes and session cookies.
//!
//! ```text
//!  browser ─HTTP─► http (a thread per connection, read deadlines) ─► head check: method,
//!    URL, route, session, Content-Length (a refusal leaves the body unread)
//!    ─► the body (login ≤ 4 KiB, logout ≤ 1 KiB, decision ≤ 8 KiB; 408 when slow)
//!    ─► lang (query ─► cookie ─► Accept-Language)
//!    ─► POST /login ─► guard (back-off) ─► users (argon2id) ─► sessions ─► audit console_login(_failed)
//!    ─► no session ─► 401 (login page, or JSON for /api/)
//!    ─► GET / · /search · /object/ID · /quarantine · /approvals · /health ─► pages ─► view
//!    ─► POST /logout · /api/decision (CSRF token) ─► decide ─► node::approvals ─► the desk
//! ```

pub mod decide;
pub mod guard;
pub mod lang;
pub mod pages;
pub mod session;
pub mod users;
pub mod view;

use crate::audit::{Entry, Event, when};
use crate::node::Node;
use crate::node::config::ConsoleConfig;
use crate::ops::http;
use guard::Guard;
use jiff::tz::TimeZone;
use lang::Lang;
use session::{Session, Sessions};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use thiserror::Error;
use users::Users;

/// Largest login form read, in bytes.
pub const MAX_LOGIN_BODY: usize = 4 * 1024;
/// Largest logout form read, in bytes.
pub const MAX_LOGOUT_BODY: usize = 1024;
/// Largest decision read, in bytes (ids, a 500-character note in UTF-8, the keys).
pub const MAX_DECISION_BODY: usize = 8 * 1024;

/// Longest request URL, in bytes.
pub const MAX_URL: usize = 4096;
/// Name of the cookie that carries the login form's CSRF token (before any session).
pub const LOGIN_COOKIE: &str = "isogate_login";

/// Why the console could not start.
#[derive(Debug, Error)]
pub enum ConsoleError {
    /// The password file cannot be read.
    #[error("console: {0}")]
    Users(#[from] users::UsersError),
    /// The password file lists nobody.
    #[error("console: the password file {0} lists no user (add one with `isogate console passwd`)")]
    NoUsers(PathBuf),
    /// The address cannot be bound.
    #[error("console: cannot listen on {addr}: {why}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// What the system said.
        why: String,
    },
    /// The system's time zone cannot be read.
    #[error("console: {0}")]
    Zone(#[from] when::WhenError),
    /// A thread cannot start.
    #[error("console: cannot start a thread: {0}")]
    Thread(std::io::Error),
}

/// The running console; stops when dropped.
pub struct Console {
    _server: http::Server,
}

/// What the threads share.
struct App {
    node: Arc<Node>,
    users: Users,
    sessions: Mutex<Sessions>,
    guard: Mutex<Guard>,
    /// One password check at a time: argon2id takes 19 MiB each.
    hashing: Mutex<()>,
    tz: TimeZone,
    log: pages::LogCheck,
}

/// Starts the console of `node` as `cfg` says, on threads of its own.
///
/// # Errors
/// The password file cannot be read or lists nobody, the address cannot be bound, or a
/// thread cannot start.
pub fn start(node: Arc<Node>, cfg: &ConsoleConfig) -> Result<Console, ConsoleError> {
    let users = Users::load(&cfg.users)?;
    if users.is_empty() {
        return Err(ConsoleError::NoUsers(cfg.users.clone()));
    }
    let app = Arc::new(App {
        node,
        users,
        sessions: Mutex::new(Sessions::new(cfg.idle_timeout_ms)),
        guard: Mutex::new(Guard::new()),
        hashing: Mutex::new(()),
        tz: when::zone(None)?,
        log: pages::LogCheck::default(),
    });
    let a = app.clone();
    let server = http::serve(cfg.listen, "console", move |r| handle(&a, r)).map_err(|e| {
        ConsoleError::Listen {
            addr: cfg.listen,
            why: e.to_string(),
        }
    })?;
    let console = Console { _server: server };
    tracing::info!(listen = %cfg.listen, users = app.users.len(), "serving the web console");
    Ok(console)
}

/// One request, as the routes need it.
struct Req {
    post: bool,
    path: String,
    query: Vec<(String, String)>,
    cookies: String,
    accept_language: Option<String>,
    csrf_header: Option<String>,
    addr: IpAddr,
    body: Vec<u8>,
}

/// One answer.
struct Reply {
    status: u16,
    body: Vec<u8>,
    kind: &'static str,
    cookies: Vec<String>,
    location: Option<String>,
    nonce: String,
}

impl Reply {
    fn new(status: u16, kind: &'static str, body: Vec<u8>, nonce: &str) -> Reply {
        Reply {
            status,
            body,
            kind,
            cookies: Vec::new(),
            location: None,
            nonce: nonce.to_string(),
        }
    }

    fn text(status: u16, text: &str) -> Reply {
        Reply::new(
            status,
            "text/plain; charset=utf-8",
            text.as_bytes().to_vec(),
            "",
        )
    }

    fn json(status: u16, value: &impl serde::Serialize) -> Reply {
        Reply::new(
            status,
            "application/json",
            serde_json::to_vec(value).unwrap_or_default(),
            "",
        )
    }

    fn redirect(to: &str) -> Reply {
        let mut r = Reply::text(303, "");
        r.location = Some(to.to_string());
        r
    }
}

/// The body size allowed on `path` by POST, or `None` when that route takes no POST.
fn body_cap(path: &str) -> Option<usize> {
    match path {
        "/login" => Some(MAX_LOGIN_BODY),
        "/logout" => Some(MAX_LOGOUT_BODY),
        "/api/decision" => Some(MAX_DECISION_BODY),
        _ => None,
    }
}

/// Checks a request's head before any of its body is read: method, URL length, route,
/// session (all POSTs but the login), Content-Length; the body size then allowed. A refusal
/// leaves the body unread.
fn check_head(app: &App, request: &http::Request) -> Result<usize, Reply> {
    if request.url.len() > MAX_URL {
        return Err(Reply::text(414, "URL too long\n"));
    }
    match request.method {
        http::Method::Get | http::Method::Head => return Ok(0),
        http::Method::Post => {}
        http::Method::Other => return Err(Reply::text(405, "only GET and POST\n")),
    }
    let path = request.url.split('?').next().unwrap_or("");
    let Some(cap) = body_cap(path) else {
        return Err(Reply::text(404, "not found\n"));
    };
    if path != "/login" {
        let cookies = request.header("Cookie").unwrap_or("");
        let token = session::cookie(cookies, session::COOKIE).unwrap_or("");
        let known = app
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .touch(token, crate::mono_ms())
            .is_some();
        if !known {
            return Err(Reply::json(
                401,
                &serde_json::json!({"taken": false, "message": "log in first"}),
            ));
        }
    }
    match request.body_length() {
        Ok(Some(n)) if n > cap => Err(Reply::text(413, "request body too large\n")),
        Ok(Some(_)) => Ok(cap),
        Err(http::BodyError::BadLength) => Err(Reply::text(400, "a bad Content-Length\n")),
        Ok(None) | Err(_) => Err(Reply::text(411, "a POST needs a Content-Length\n")),
    }
}

/// Checks, reads, answers and sends one request.
fn handle(app: &App, mut request: http::Request) {
    let reply = match check_head(app, &request).and_then(|cap| read(&mut request, cap)) {
        Ok(req) => route(app, &req),
        Err(r) => r,
    };
    send(request, reply);
}

/// Sends `reply` with the console's security headers.
fn send(request: http::Request, reply: Reply) {
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{}'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        if reply.nonce.is_empty() {
            "none"
        } else {
            &reply.nonce
        }
    );
    let mut headers = vec![
        ("Content-Type", reply.kind),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("Content-Security-Policy", csp.as_str()),
    ];
    headers.extend(reply.cookies.iter().map(|c| ("Set-Cookie", c.as_str())));
    if let Some(l) = &reply.location {
        headers.push(("Location", l.as_str()));
    }
    request.respond(reply.status, &headers, &reply.body);
}

/// The request as the routes need it, its body read (at most `cap` bytes).
fn read(request: &mut http::Request, cap: usize) -> Result<Req, Reply> {
    let url = request.url.clone();
    let post = request.method == http::Method::Post;
    let body = if post {
        request.read_body(cap).map_err(|e| match e {
            http::BodyError::NoLength => Reply::text(411, "a POST needs a Content-Length\n"),
            http::BodyError::BadLength => Reply::text(400, "a bad Content-Length\n"),
            http::BodyError::TooLarge => Reply::text(413, "request body too large\n"),
            http::BodyError::Slow => Reply::text(408, "the body did not come in time\n"),
            http::BodyError::Stopping => Reply::text(503, "the node is stopping; send it again\n"),
        })?
    } else {
        Vec::new()
    };
    let get = |name: &str| request.header(name).map(str::to_string);
    let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
    Ok(Req {
        post,
        path: path.to_string(),
        query: form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
        cookies: get("Cookie").unwrap_or_default(),
        accept_language: get("Accept-Language"),
        csrf_header: get("X-CSRF-Token"),
        addr: request.remote,
        body,
    })
}

impl Req {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        session::cookie(&self.cookies, name)
    }

    fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn cookie_line(name: &str, value: &str, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/");
    if let Some(a) = max_age {
        c.push_str(&format!("; Max-Age={a}"));
    }
    c
}

fn route(app: &App, req: &Req) -> Reply {
    let lang = Lang::choose(
        req.param("lang"),
        req.cookie(lang::COOKIE),
        req.accept_language.as_deref(),
    );
    let mut reply = route_in(app, req, lang);
    if let Some(l) = req.param("lang").and_then(Lang::parse) {
        reply
            .cookies
            .push(cookie_line(lang::COOKIE, l.as_str(), Some(365 * 86_400)));
    }
    reply
}

fn route_in(app: &App, req: &Req, lang: Lang) -> Reply {
    if req.post && req.path == "/login" {
        return login(app, req, lang);
    }
    let token = req.cookie(session::COOKIE).unwrap_or("");
    let session = app
        .sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .touch(token, crate::mono_ms());
    let Some(session) = session else {
        if req.path.starts_with("/api/") {
            return Reply::json(
                401,
                &serde_json::json!({"taken": false, "message": "log in first"}),
            );
        }
        let status = if req.path == "/login" && !req.post {
            200
        } else {
            401
        };
        return login_page(app, lang, status, "");
    };
    match (req.post, req.path.as_str()) {
        (false, "/login") => Reply::redirect("/"),
        (true, "/logout") => {
            let form = req.form();
            if !session::csrf_ok(&session, field(&form, "csrf")) {
                return Reply::text(403, "CSRF token missing or wrong\n");
            }
            app.sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .close(token);
            let mut r = Reply::redirect("/login");
            r.cookies.push(cookie_line(session::COOKIE, "", Some(0)));
            r
        }
        (true, "/api/decision") => decision(app, req, &session),
        (false, path) => page(app, req, lang, &session, path),
        (true, _) => Reply::text(404, "not found\n"),
    }
}

fn nonce() -> String {
    session::token().unwrap_or_default()
}

fn html(
    app: &App,
    lang: Lang,
    status: u16,
    page: &str,
    user: &str,
    csrf: &str,
    data: minijinja::Value,
) -> Reply {
    let nonce = nonce();
    let title = lang.labels().get(page).copied().unwrap_or(page).to_string();
    let frame = view::Frame {
        node: &app.node.cfg.node.name,
        user,
        csrf,
        nonce: &nonce,
    };
    match view::render(page, &title, lang, &frame, data) {
        Ok(body) => Reply::new(
            status,
            "text/html; charset=utf-8",
            body.into_bytes(),
            &nonce,
        ),
        Err(e) => {
            tracing::error!(error = %e, "console page failed");
            Reply::text(500, "the page could not be rendered (see the node's log)\n")
        }
    }
}

fn login_page(app: &App, lang: Lang, status: u16, message: &str) -> Reply {
    let csrf = session::token().unwrap_or_default();
    let mut r = html(
        app,
        lang,
        status,
        "login",
        "",
        &csrf,
        minijinja::context! { message => message },
    );
    r.cookies.push(cookie_line(LOGIN_COOKIE, &csrf, None));
    r
}

fn audit(app: &App, event: Event, detail: String) -> bool {
    match app.node.audit.append(
        event,
        Entry {
            detail: Some(detail),
            ..Entry::default()
        },
    ) {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(error = %e, "console: the audit log cannot be written");
            false
        }
    }
}

fn login(app: &App, req: &Req, lang: Lang) -> Reply {
    let labels = lang.labels();
    let form = req.form();
    let (user, password, csrf) = (
        field(&form, "user"),
        field(&form, "password"),
        field(&form, "csrf"),
    );
    let expected = req.cookie(LOGIN_COOKIE).unwrap_or("");
    if expected.is_empty() || !session::same(expected, csrf) {
        return login_page(
            app,
            lang,
            403,
            labels.get("login_needed").copied().unwrap_or(""),
        );
    }
    // a name outside the rules is never a user; it is not written to the log as given
    let shown = if users::valid_user(user) {
        user.to_string()
    } else {
        "(not a user name)".to_string()
    };
    let now = crate::mono_ms();
    let known = app.users.contains(user);
    let (wait, notes) = {
        let mut g = app.guard.lock().unwrap_or_else(|e| e.into_inner());
        let notes = g.summaries(now);
        let wait = g.wait(&shown, known, req.addr, now);
        let first = wait.and_then(|ms| g.refused(&shown, req.addr, ms, now));
        (wait, notes.into_iter().chain(first).collect::<Vec<_>>())
    };
    // one record per back-off spell (and a summary), never one per refused attempt
    for detail in notes {
        audit(app, Event::ConsoleLoginFailed, detail);
    }
    if let Some(ms) = wait {
        let secs = ms.div_ceil(1000);
        let msg = format!("{} {secs}", labels.get("login_wait").copied().unwrap_or(""));
        return login_page(app, lang, 429, &msg);
    }
    let ok = {
        let _one = app.hashing.lock().unwrap_or_else(|e| e.into_inner());
        app.users.verify(user, password)
    };
    if !ok {
        app.guard.lock().unwrap_or_else(|e| e.into_inner()).failed(
            &shown,
            known,
            req.addr,
            crate::mono_ms(),
        );
        audit(
            app,
            Event::ConsoleLoginFailed,
            format!(
                "user {shown} from {}: wrong user name or password",
                req.addr
            ),
        );
        tracing::warn!(user = %shown, from = %req.addr, "console login failed");
        return login_page(
            app,
            lang,
            401,
            labels.get("login_failed").copied().unwrap_or(""),
        );
    }
    app.guard
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .succeeded(user, req.addr);
    // fail closed: no session that the log does not record
    if !audit(
        app,
        Event::ConsoleLogin,
        format!("user {user} from {}", req.addr),
    ) {
        return Reply::text(500, "the audit log cannot be written: no login\n");
    }
    let opened = app
        .sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .open(user, crate::mono_ms());
    match opened {
        Ok((token, _)) => {
            tracing::info!(user = %user, from = %req.addr, "console login");
            let mut r = Reply::redirect("/");
            r.cookies.push(cookie_line(session::COOKIE, &token, None));
            r.cookies.push(cookie_line(LOGIN_COOKIE, "", Some(0)));
            r
        }
        Err(e) => Reply::text(500, &format!("{e}\n")),
    }
}

fn page(app: &App, req: &Req, lang: Lang, s: &Session, path: &str) -> Reply {
    let node = app.node.as_ref();
    let (status, name, data) = match path {
        "/" => (
            200,
            "overview",
            pages::overview(
                node,
                &app.tz,
                app.log.status(node, &app.tz, crate::mono_ms()),
            ),
        ),
        "/search" => (
            200,
            "search",
            pages::search(node, &app.tz, pages::SearchForm::from_pairs(&req.query)),
        ),
        "/quarantine" => (200, "quarantine", pages::quarantine(node, &app.tz)),
        "/approvals" => (200, "approvals", pages::approvals(node, &app.tz)),
        "/health" => (200, "health", pages::health(node)),
        _ => match path.strip_prefix("/object/") {
            Some(id) => match pages::object(node, &app.tz, id) {
                Some(d) => (200, "object", d),
                None => (404, "missing", minijinja::context! { id => id }),
            },
            None => (404, "missing", minijinja::context! { id => "" }),
        },
    };
    html(app, lang, status, name, &s.user, &s.csrf, data)
}

fn decision(app: &App, req: &Req, s: &Session) -> Reply {
    let posted: decide::Posted = match serde_json::from_slice(&req.body) {
        Ok(p) => p,
        Err(e) => {
            return Reply::json(
                400,
                &serde_json::json!({"taken": false, "message": format!("not a decision: {e}")}),
            );
        }
    };
    let csrf = req.csrf_header.as_deref().unwrap_or(posted.csrf.as_str());
    if !session::csrf_ok(s, csrf) {
        return Reply::json(
            403,
            &serde_json::json!({"taken": false, "message": "CSRF token missing or wrong"}),
        );
    }
    let answer = decide::decide(&app.node, &s.user, &posted, decide::ANSWER_WAIT);
    tracing::info!(user = %s.user, id = %posted.id, decision = %posted.decision, taken = answer.taken, "console decision");
    Reply::json(answer.status, &answer)
}
