//! The security officer's desk on a running node: `isogate quarantine release | purge`
//! write a request into the node's state directory; the node (the audit log's one writer)
//! takes it within a second, acts, audits who asked, and answers beside it.
//!
//! ```text
//! isogate quarantine release|purge ─► state/quarantine-requests/<n>.req  (JSON: action, ids,
//!                                      │  cut-off, stated user, note; owner uid from metadata)
//!          running node, every 500 ms ─┴► claim: rename <n>.req ─► <n>.taken (one at a time;
//!                                      │  a command that gave up unlinks <n>.req: one wins)
//!                                      ├► owner root or the node's user? folder not group- or
//!                                      │  world-writable? else refused (audited / logged)
//!                                      └► Desk::serve ─► purge: quarantine::purge + audit
//!                                                     └► release: Releaser of the entry's side
//!          ◄─ state/quarantine-requests/<n>.out  (JSON: one line per entry, failures counted),
//!             then <n>.taken removed (kept if the answer cannot be written)
//! state/quarantine-release/<token>.json   a release under way (side, channel, old id), with
//! state/quarantine-release/<token>        the sender's staged copy until the spool takes it
//! ```
//!
//! Who asked is the request file's owner uid, read from its metadata (never from its text),
//! and the user name the command states (`SUDO_USER`, or the login name), with the
//! officer's note: all three are in the `quarantine_released` / `quarantine_purged` record.
//! A release is never an override: the entry crosses through the full policy of both nodes
//! again ([`Releaser`]).

use crate::audit::{Entry, Event};
use crate::core::id::ObjectId;
use crate::core::reason::Reason;
use crate::fsx::{sync_dir, write_durable};
use crate::node::config::{Config, Role};
use crate::node::quarantine::{self, Listed, UNVERIFIED};
use crate::node::{Fault, Node};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Folder of requests under the state directory.
pub const REQUESTS: &str = "quarantine-requests";
/// Folder of releases under way under the state directory.
pub const PENDING: &str = "quarantine-release";
/// Most requests served in one pass (one at a time); more wait for the next.
const MAX_REQUESTS: usize = 16;
/// Largest request file read (bytes).
const MAX_REQUEST_BYTES: u64 = 256 * 1024;
/// Most objects one request may name.
pub const MAX_REQUEST_IDS: usize = 1000;
/// Longest note kept (characters).
pub const MAX_NOTE: usize = 500;

/// Extension of a request the node has claimed.
const TAKEN: &str = "taken";

/// Whether a uid may ask the node: root, or the node's own user. (The state directory's
/// group is the applications' group: its members never release or purge.)
pub fn trusted_uid(uid: u32) -> bool {
    uid == 0 || uid == rustix::process::geteuid().as_raw()
}

/// A request the node has claimed.
#[derive(Debug)]
pub struct Taken {
    /// Its file, now `<n>.taken`.
    pub path: PathBuf,
    /// The request, or what is wrong with it (said in the answer).
    pub request: Result<Request, String>,
    /// Its file's owner (from the descriptor's metadata); `None` when it could not be read.
    pub uid: Option<u32>,
}

/// Reads a claimed request through one descriptor, never following a link; says what is
/// wrong when it cannot be used.
fn read_request(path: &Path) -> (Result<Request, String>, Option<u32>) {
    let f = match crate::fsx::open_nofollow(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return (
                Err("the request is a symbolic link; links are never followed".into()),
                None,
            );
        }
        Err(e) => return (Err(format!("the request cannot be opened: {e}")), None),
    };
    let m = match f.metadata() {
        Ok(m) => m,
        Err(e) => return (Err(format!("the request cannot be read: {e}")), None),
    };
    let uid = Some(m.uid());
    if !m.is_file() {
        return (Err("the request is not a plain file".into()), uid);
    }
    if m.len() > MAX_REQUEST_BYTES {
        return (
            Err(format!(
                "the request is too large ({} bytes; at most {MAX_REQUEST_BYTES})",
                m.len()
            )),
            uid,
        );
    }
    let mut body = Vec::new();
    if let Err(e) = f.take(MAX_REQUEST_BYTES + 1).read_to_end(&mut body) {
        return (Err(format!("the request cannot be read: {e}")), uid);
    }
    if body.len() as u64 > MAX_REQUEST_BYTES {
        return (
            Err(format!(
                "the request is too large (at most {MAX_REQUEST_BYTES} bytes)"
            )),
            uid,
        );
    }
    let r = match serde_json::from_slice::<Request>(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                Err(format!("the request is not valid JSON of a request: {e}")),
                uid,
            );
        }
    };
    if r.ids.len() > MAX_REQUEST_IDS {
        return (
            Err(format!(
                "the request names {} objects; at most {MAX_REQUEST_IDS}",
                r.ids.len()
            )),
            uid,
        );
    }
    (Ok(r), uid)
}

/// What an officer asks of the running node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Let entries cross again, through the full policy of both nodes.
    Release,
    /// Remove entries for good (their audit records stay).
    Purge,
}

/// A request file's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// What to do.
    pub action: Action,
    /// Object ids (32 hex digits).
    #[serde(default)]
    pub ids: Vec<String>,
    /// Purge only: every entry refused before this time (ms since the epoch).
    #[serde(default)]
    pub before_ms: Option<u64>,
    /// Purge by time only: entries of this channel only.
    #[serde(default)]
    pub channel: Option<String>,
    /// The user name the command states (`SUDO_USER` or the login name): recorded beside
    /// the file owner's uid, never instead of it.
    pub user: String,
    /// The officer's note.
    #[serde(default)]
    pub note: Option<String>,
}

/// Who asked for an action, as audited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    /// The request file's owner (from its metadata); `None` for the node's own ageing out.
    pub uid: Option<u32>,
    /// The user name the command stated.
    pub user: String,
    /// The officer's note.
    pub note: Option<String>,
}

impl Who {
    /// The automatic ageing out of `[quarantine] keep_days`.
    pub fn keep_days(days: u32) -> Who {
        Who {
            uid: None,
            user: format!("the node ([quarantine] keep_days = {days})"),
            note: None,
        }
    }

    /// `by USER (uid N); note: "…"` for an audit record's detail.
    pub fn detail(&self) -> String {
        // a user name as the command stated it (SUDO_USER, the login name) is text from
        // the requester: quoted unless it is a plain account name, so it cannot pass for
        // more of the record
        let plain = !self.user.is_empty()
            && self
                .user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '$'));
        let user = if plain || self.uid.is_none() && self.user.starts_with("the node (") {
            self.user.clone()
        } else {
            format!("{:?}", self.user)
        };
        let mut s = match self.uid {
            Some(uid) => format!("by {user} (uid {uid})"),
            None => format!("by {user}"),
        };
        if let Some(n) = &self.note {
            s.push_str(&format!("; note: {n:?}"));
        }
        s
    }
}

/// A node's answer to one request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// One line per entry (or one for the whole request).
    pub lines: Vec<String>,
    /// How many entries asked for were not released or purged.
    pub failed: usize,
}

/// A release under way, written before its first step and removed after its last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    /// Its token (32 hex digits): names this file and, on the sending node, the staged copy;
    /// on the receiving node, the new object id.
    pub token: String,
    /// The side whose quarantine holds the entry.
    pub side: String,
    /// The entry's channel.
    pub channel: String,
    /// The entry's object id.
    pub old_id: String,
    /// Who asked, as the audit records say it (`by USER (uid N); note: "…"`), so that a
    /// release withdrawn at the next start still names them (absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who: Option<String>,
    /// On the sending node: the release puts the quarantined content straight into the
    /// spool, as the entry named by `token`, with no staged copy (absent in older records,
    /// whose staged copy in the pending folder is named by `token`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub direct: bool,
}

/// A release that did not happen: the entry stays in quarantine (or the pending record
/// finishes it at the next start).
#[derive(Debug)]
pub struct Failed {
    /// What went wrong.
    pub fault: Fault,
    /// Whether the failure is on record already (`quarantine_release_refused`: not
    /// releasable, or withdrawn after its `quarantine_released` record); else the desk
    /// records it.
    pub audited: bool,
}

impl Failed {
    /// A failure already on record.
    pub fn audited(fault: impl Into<Fault>) -> Failed {
        Failed {
            fault: fault.into(),
            audited: true,
        }
    }

    /// A failure past the release's `quarantine_released` record, once the object has
    /// moved on (landed, spooled, or refused again): its pending record settles it at the
    /// next start (finished, or withdrawn on record), so the desk records nothing more.
    pub fn settled(fault: impl Into<Fault>) -> Failed {
        Failed::audited(fault)
    }
}

impl From<Fault> for Failed {
    fn from(fault: Fault) -> Failed {
        Failed {
            fault,
            audited: false,
        }
    }
}

impl From<io::Error> for Failed {
    fn from(e: io::Error) -> Failed {
        Fault::from(e).into()
    }
}

impl From<crate::audit::AuditError> for Failed {
    fn from(e: crate::audit::AuditError) -> Failed {
        Fault::from(e).into()
    }
}

impl From<crate::core::id::RandomError> for Failed {
    fn from(e: crate::core::id::RandomError) -> Failed {
        Fault::from(e).into()
    }
}

/// Lets a quarantine entry of one side cross again. Implemented by the sender (the entry is
/// taken into the spool as a new object and inspected with the policy in force) and the
/// receiver (inspected again with this node's policy in force, landed if it passes).
pub trait Releaser: Send + Sync {
    /// Releases one releasable entry ([`Listed::releasable_by`] holds): writes its [`Pending`]
    /// record first, audits `quarantine_released`, moves it on, removes the old entry and
    /// the pending record. Returns the answer line, and whether the entry passed the
    /// policy in force (`false`: it was refused again, into a new entry with a fresh reason).
    ///
    /// # Errors
    /// [`Failed`]: the entry stays in quarantine (or the pending record finishes it at the
    /// next start).
    fn release(&self, desk: &Desk, entry: &Listed, who: &Who) -> Result<(String, bool), Failed>;

    /// Finishes or withdraws a release that a stop interrupted (at start).
    ///
    /// # Errors
    /// The state cannot be read or the old entry removed.
    fn recover(&self, desk: &Desk, pending: &Pending) -> io::Result<()>;
}

/// Every quarantine folder of a node: each channel's, and `_unverified`.
pub fn quarantine_dirs(cfg: &Config) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = cfg.file_channels().map(|c| c.quarantine.clone()).collect();
    dirs.push(cfg.node.exchange_dir.join("quarantine").join(UNVERIFIED));
    dirs
}

/// The request queue and releases under way of one node.
#[derive(Debug, Clone)]
pub struct Desk {
    requests: PathBuf,
    pending: PathBuf,
}

impl Desk {
    /// The paths under a node's state directory, creating nothing.
    pub fn paths(state_dir: &Path) -> Desk {
        Desk {
            requests: state_dir.join(REQUESTS),
            pending: state_dir.join(PENDING),
        }
    }

    /// The request folder (the running node makes it, mode 0700).
    pub fn requests_dir(&self) -> &Path {
        &self.requests
    }

    /// The folder of releases under way (the sender stages its copies there: the state
    /// directory's file system, so the spool takes them by one rename, or copies them in
    /// sealed where it seals).
    pub fn pending_dir(&self) -> &Path {
        &self.pending
    }

    /// Makes the request folder, the running node's own (mode 0700: only the service user
    /// and root put requests in it). Called by the node at start, never by the command line
    /// (a folder that root made would be closed to the node).
    ///
    /// # Errors
    /// It cannot be made.
    pub fn open(&self) -> io::Result<()> {
        std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
            .create(&self.requests)
    }

    /// Queues a request for the running node; returns its file (`<n>.req`, mode 0644 in the
    /// node's 0700 folder: the node reads a request that root wrote).
    ///
    /// # Errors
    /// The request folder is missing (the node has not made it) or cannot be written.
    pub fn submit(&self, request: &Request) -> io::Result<PathBuf> {
        if !self.requests.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{}: no request folder (the running node makes it at start)",
                    self.requests.display()
                ),
            ));
        }
        let name = format!(
            "{:016}-{}",
            crate::now_ms(),
            ObjectId::random().map_err(io::Error::other)?
        );
        let body = serde_json::to_vec(request).map_err(io::Error::other)?;
        // written beside it as a dot file and renamed: the node never sees half a request
        let path = self.requests.join(format!("{name}.req"));
        crate::fsx::write_durable_mode(&path, &body, 0o644)?;
        Ok(path)
    }

    /// The answer file of a request (`<n>.out`, for `<n>.req` and `<n>.taken` alike).
    pub fn answer_path(request: &Path) -> PathBuf {
        request.with_extension("out")
    }

    /// The name a request has once the node has claimed it (`<n>.taken`).
    pub fn taken_path(request: &Path) -> PathBuf {
        request.with_extension(TAKEN)
    }

    /// Withdraws a request the node has not taken, by removing `<n>.req`: of this unlink and
    /// the node's claiming rename, exactly one wins. `Ok(false)`: the node took it first
    /// (its answer comes, or the node stopped while serving it).
    ///
    /// # Errors
    /// The request cannot be removed.
    pub fn withdraw(&self, request: &Path) -> io::Result<bool> {
        match fs::remove_file(request) {
            Ok(()) => {
                sync_dir(&self.requests)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Why the node does not serve its request folder at all, if it does not: the folder
    /// is not a directory, is owned by someone other than root or the node, or is group- or
    /// world-writable (anyone in that group could queue requests or swap them).
    pub fn closed(&self) -> Option<String> {
        let m = match fs::symlink_metadata(&self.requests) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => return Some(format!("it cannot be read: {e}")),
        };
        if !m.is_dir() {
            return Some("it is not a directory".to_string());
        }
        if !trusted_uid(m.uid()) {
            return Some(format!(
                "it is owned by uid {}, neither root nor the node's user",
                m.uid()
            ));
        }
        if m.mode() & 0o022 != 0 {
            return Some(format!(
                "it is group- or world-writable (mode {:o}); make it 0700",
                m.mode() & 0o7777
            ));
        }
        None
    }

    /// Claims the oldest waiting request, by renaming `<n>.req` to `<n>.taken` (so a
    /// command that gives up waiting can no longer withdraw it), and reads it through one
    /// descriptor, never following a link: the owner and the bytes are those of the same
    /// file. `None`: nothing waits (or the folder is [`closed`](Self::closed)).
    pub fn take(&self) -> Option<Taken> {
        if self.closed().is_some() {
            return None;
        }
        let dir = fs::read_dir(&self.requests).ok()?;
        let mut paths: Vec<PathBuf> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "req"))
            .collect();
        paths.sort();
        for p in paths {
            let taken = Self::taken_path(&p);
            match fs::rename(&p, &taken) {
                Ok(()) => {}
                // withdrawn meanwhile
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    tracing::error!(request = %p.display(), error = %e, "cannot claim a quarantine request");
                    return None;
                }
            }
            let _ = sync_dir(&self.requests);
            let (request, uid) = read_request(&taken);
            return Some(Taken {
                path: taken,
                request,
                uid,
            });
        }
        None
    }

    /// Writes the answer to a claimed request, then removes the request. If the answer
    /// cannot be written (a full disk), the request stays claimed (`<n>.taken`), so the
    /// command that waits says the node took it and could not answer; `false` then.
    pub fn answer(&self, request: &Path, answer: &Answer) -> bool {
        let written = serde_json::to_vec(answer)
            .map_err(io::Error::other)
            .and_then(|b| crate::fsx::write_durable_mode(&Self::answer_path(request), &b, 0o644));
        if let Err(e) = written {
            tracing::error!(request = %request.display(), error = %e, "cannot answer a quarantine request; it stays, claimed");
            return false;
        }
        let _ = fs::remove_file(request);
        let _ = sync_dir(&self.requests);
        true
    }

    /// Answers the requests a stop interrupted while they were served (at start): what
    /// was done is in the audit log.
    pub fn answer_interrupted(&self) {
        let Ok(dir) = fs::read_dir(&self.requests) else {
            return;
        };
        for p in dir.flatten().map(|e| e.path()) {
            if p.extension().is_some_and(|x| x == TAKEN) {
                self.answer(
                    &p,
                    &Answer {
                        lines: vec!["the node stopped while serving this request; what it did is in its audit log (`isogate quarantine show ID`)".to_string()],
                        failed: 1,
                    },
                );
            }
        }
    }

    /// Records a release under way, durably.
    ///
    /// # Errors
    /// It cannot be written.
    pub fn begin(&self, pending: &Pending) -> io::Result<()> {
        fs::create_dir_all(&self.pending)?;
        let body = serde_json::to_vec(pending).map_err(io::Error::other)?;
        write_durable(&self.pending.join(format!("{}.json", pending.token)), &body)?;
        sync_dir(&self.pending)
    }

    /// Removes a release's record once it is finished or withdrawn.
    ///
    /// # Errors
    /// It cannot be removed.
    pub fn end(&self, pending: &Pending) -> io::Result<()> {
        match fs::remove_file(self.pending.join(format!("{}.json", pending.token))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        sync_dir(&self.pending)
    }

    /// The releases under way (unreadable records are skipped and left for a person).
    pub fn pending(&self) -> Vec<Pending> {
        let Ok(dir) = fs::read_dir(&self.pending) else {
            return Vec::new();
        };
        dir.flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| fs::read(p).ok())
            .filter_map(|b| serde_json::from_slice::<Pending>(&b).ok())
            .filter(|p| ObjectId::parse(&p.token).is_some())
            .collect()
    }

    /// Whether an entry has a release under way.
    pub fn is_pending(&self, channel: &str, id: &str) -> bool {
        self.pending()
            .iter()
            .any(|p| p.channel == channel && p.old_id == id)
    }
}

/// The releasers of a node's two sides, as they run.
pub struct Sides<'a> {
    /// The sending side's, when the node sends.
    pub sender: Option<&'a dyn Releaser>,
    /// The receiving side's, when the node receives.
    pub receiver: Option<&'a dyn Releaser>,
}

/// The audit entry about a quarantine entry.
pub fn entry_of(e: &Listed) -> Entry {
    Entry {
        channel: Some(e.channel.clone()),
        object_id: ObjectId::parse(&e.object_id),
        name: Some(e.name.clone()).filter(|n| !n.is_empty()),
        size: e.size,
        reason: serde_json::from_value::<Reason>(serde_json::Value::String(e.reason.clone())).ok(),
        ..Entry::default()
    }
}

/// Finishes or withdraws the releases a stop interrupted. Runs once at start, before the
/// first request is served.
pub fn recover(node: &Node, sides: &Sides<'_>) {
    let desk = Desk::paths(&node.cfg.node.state_dir);
    if let Err(e) = desk.open() {
        tracing::error!(folder = %desk.requests.display(), error = %e, "cannot make the quarantine request folder");
    }
    desk.answer_interrupted();
    let pending = desk.pending();
    // a staged copy no record names: a stop came before its record was written
    if let Ok(dir) = fs::read_dir(&desk.pending) {
        for f in dir.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            let stem = name.trim_start_matches('.').split('.').next().unwrap_or("");
            if !name.ends_with(".json") && !pending.iter().any(|p| p.token == stem) {
                let _ = fs::remove_file(f.path());
            }
        }
    }
    for p in pending {
        let side = match p.side.as_str() {
            "sender" => sides.sender,
            "receiver" => sides.receiver,
            _ => None,
        };
        let Some(side) = side else {
            tracing::warn!(token = %p.token, side = %p.side, "a release under way names a side this node does not run; left for a person");
            continue;
        };
        if let Err(e) = side.recover(&desk, &p) {
            tracing::error!(token = %p.token, error = %e, "cannot finish a release a stop interrupted; tried again at the next start");
        }
    }
}

/// Whether the last pass found the request folder closed (it is said once per change, not
/// every pass).
static CLOSED_SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Serves the waiting requests (one pass, one claimed at a time, at most 16). A request
/// whose file is owned by neither root nor the node's user is refused (audited for a
/// release, logged for a purge); nothing is served from a folder others may write.
pub fn serve(node: &Node, sides: &Sides<'_>) {
    use std::sync::atomic::Ordering;
    let desk = Desk::paths(&node.cfg.node.state_dir);
    match desk.closed() {
        Some(why) => {
            if !CLOSED_SAID.swap(true, Ordering::Relaxed) {
                tracing::error!(folder = %desk.requests.display(), why = %why, "quarantine requests are not served: the request folder is not the node's alone");
            }
            return;
        }
        None => {
            if CLOSED_SAID.swap(false, Ordering::Relaxed) {
                tracing::info!(folder = %desk.requests.display(), "quarantine requests are served again");
            }
        }
    }
    for _ in 0..MAX_REQUESTS {
        let Some(taken) = desk.take() else {
            break;
        };
        let answer = serve_one(node, &desk, sides, &taken);
        desk.answer(&taken.path, &answer);
    }
}

/// Serves one claimed request.
fn serve_one(node: &Node, desk: &Desk, sides: &Sides<'_>, taken: &Taken) -> Answer {
    let refused = |line: String| Answer {
        lines: vec![format!("refused: {line}")],
        failed: 1,
    };
    let request = match &taken.request {
        Ok(r) => r,
        Err(why) => {
            tracing::warn!(request = %taken.path.display(), why = %why, "quarantine request refused");
            return refused(why.clone());
        }
    };
    let Some(uid) = taken.uid else {
        return refused("its owner cannot be read".to_string());
    };
    let who = Who {
        uid: Some(uid),
        user: clean(&request.user, 64),
        // kept whole (escaped when the detail is written), newlines included
        note: request
            .note
            .as_deref()
            .map(|n| n.chars().take(MAX_NOTE).collect::<String>()),
    };
    if !trusted_uid(uid) {
        let why = format!(
            "the request file is owned by uid {uid}, neither root nor the node's user: only they release or purge (see the README's quarantine desk)"
        );
        tracing::warn!(uid, user = %who.user, action = ?request.action, "quarantine request refused: not root nor the node's user");
        if request.action == Action::Release {
            let rec = Entry {
                detail: Some(format!("{}; refused: {why}", who.detail())),
                ..Entry::default()
            };
            if let Err(err) = node.audit.durable(Event::QuarantineReleaseRefused, rec) {
                tracing::error!(error = %err, "cannot audit a refused quarantine release");
            }
        }
        return refused(why);
    }
    match request.action {
        Action::Purge => purge_request(node, request, &who),
        Action::Release => release_request(node, desk, sides, request, &who),
    }
}

/// Audits a release that was begun (its `quarantine_released` record written) and then
/// withdrawn, the entry left in quarantine: `quarantine_release_refused`, `detail`
/// `withdrawn: WHY`.
pub fn audit_withdrawn(node: &Node, channel: &str, old_id: &str, who: Option<&str>, why: &str) {
    // the entry stays: its reason file names the file, so the record (and a report) can
    let name = quarantine::find(&quarantine_dirs(&node.cfg), old_id)
        .ok()
        .flatten()
        .filter(|e| e.channel == channel && !e.name.is_empty())
        .map(|e| e.name);
    let rec = Entry {
        channel: Some(channel.to_string()),
        object_id: ObjectId::parse(old_id),
        name,
        detail: Some(match who {
            Some(w) => format!("{w}; withdrawn: {why}; the entry stays in quarantine"),
            None => format!("withdrawn: {why}; the entry stays in quarantine"),
        }),
        ..Entry::default()
    };
    if let Err(err) = node.audit.durable(Event::QuarantineReleaseRefused, rec) {
        tracing::error!(error = %err, object = %old_id, "cannot audit a withdrawn quarantine release");
    }
    tracing::warn!(channel = %channel, object = %old_id, why = %why, "quarantine release withdrawn; the entry stays in quarantine");
}

/// How often the running node looks for requests.
const POLL: std::time::Duration = std::time::Duration::from_millis(500);
/// How often the node ages out entries past `[quarantine] keep_days`.
const AGE_OUT_EVERY_MS: u64 = 3_600_000;

/// The desk of a running node, until aborted: finishes the releases a stop interrupted,
/// then serves requests every 500 ms and ages out entries (at start, then hourly) when
/// `[quarantine] keep_days` is set.
pub async fn run(
    node: std::sync::Arc<Node>,
    sender: Option<std::sync::Arc<dyn Releaser>>,
    receiver: Option<std::sync::Arc<dyn Releaser>>,
) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    let mut aged_at: Option<u64> = None;
    loop {
        tick.tick().await;
        let (n, s, r) = (node.clone(), sender.clone(), receiver.clone());
        let now = crate::mono_ms();
        let age = n
            .cfg
            .quarantine
            .keep_days
            .filter(|_| aged_at.is_none_or(|at| now.saturating_sub(at) >= AGE_OUT_EVERY_MS));
        if age.is_some() {
            aged_at = Some(now);
        }
        let recovering = std::mem::take(&mut first);
        let _ = tokio::task::spawn_blocking(move || {
            let sides = Sides {
                sender: s.as_deref(),
                receiver: r.as_deref(),
            };
            if recovering {
                recover(&n, &sides);
            }
            serve(&n, &sides);
            if let Some(days) = age {
                let purged = age_out(&n, days, crate::now_ms());
                if purged > 0 {
                    tracing::info!(purged, keep_days = days, "quarantine entries aged out");
                }
            }
        })
        .await;
    }
}

/// Ages out entries older than `days` (the automatic purge of `[quarantine] keep_days`);
/// returns how many were purged.
pub fn age_out(node: &Node, days: u32, now_ms: u64) -> usize {
    let before = now_ms.saturating_sub(u64::from(days) * 86_400_000);
    let Ok(all) = quarantine::list(&quarantine_dirs(&node.cfg)) else {
        return 0;
    };
    let who = Who::keep_days(days);
    all.iter()
        .filter(|e| e.time_ms < before)
        .filter(|e| purge_one(node, e, &who).is_ok())
        .count()
}

/// Control characters out, length capped: text from a request goes into records and logs.
fn clean(s: &str, max: usize) -> String {
    let t: String = s
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect::<String>();
    if t.is_empty() { "?".to_string() } else { t }
}

/// The entry named `id` (any case, trimmed), or why there is none: said after the id in
/// the answer.
fn find_entry(node: &Node, id: &str) -> Result<Listed, String> {
    match quarantine::find(&quarantine_dirs(&node.cfg), id) {
        Ok(Some(e)) => Ok(e),
        Ok(None) => Err(format!(
            "no such quarantine entry on {} (see `isogate quarantine list`)",
            node.cfg.node.name
        )),
        Err(e) => Err(format!("the quarantine cannot be read: {e}")),
    }
}

fn purge_request(node: &Node, request: &Request, who: &Who) -> Answer {
    let mut answer = Answer::default();
    let mut entries = Vec::new();
    for id in &request.ids {
        match find_entry(node, id) {
            Ok(e) => entries.push(e),
            Err(why) => {
                answer
                    .lines
                    .push(format!("{}: {why}", id.trim().to_ascii_lowercase()));
                answer.failed += 1;
            }
        }
    }
    if let Some(before) = request.before_ms {
        match quarantine::list(&quarantine_dirs(&node.cfg)) {
            Ok(all) => entries.extend(all.into_iter().filter(|e| {
                e.time_ms < before && request.channel.as_ref().is_none_or(|c| *c == e.channel)
            })),
            Err(e) => {
                answer
                    .lines
                    .push(format!("the quarantine cannot be read: {e}"));
                answer.failed += 1;
            }
        }
    }
    let desk = Desk::paths(&node.cfg.node.state_dir);
    // an id named twice, or named and older than the cut-off, is purged (and recorded) once
    let mut seen = std::collections::HashSet::new();
    entries.retain(|e| seen.insert((e.channel.clone(), e.object_id.clone())));
    for e in entries {
        if desk.is_pending(&e.channel, &e.object_id) {
            answer.lines.push(format!(
                "{}: a release of it is under way; not purged",
                e.object_id
            ));
            answer.failed += 1;
            continue;
        }
        match purge_one(node, &e, who) {
            Ok(()) => answer
                .lines
                .push(format!("{} ({}): purged", e.object_id, e.channel)),
            Err(err) => {
                answer
                    .lines
                    .push(format!("{}: not purged: {err}", e.object_id));
                answer.failed += 1;
            }
        }
    }
    if answer.lines.is_empty() {
        answer
            .lines
            .push("no quarantine entry matches; nothing purged".to_string());
    }
    answer
}

/// Purges one entry: audited first (durably, with who), then removed. A crash between
/// leaves the entry listed with its `quarantine_purged` record: purged again, recorded twice.
fn purge_one(node: &Node, e: &Listed, who: &Who) -> Result<(), Fault> {
    let mut entry = entry_of(e);
    entry.detail = Some(who.detail());
    node.audit.durable(Event::QuarantinePurged, entry)?;
    quarantine::purge(e)?;
    tracing::info!(channel = %e.channel, object = %e.object_id, who = %who.detail(), "quarantine entry purged");
    Ok(())
}

fn release_request(
    node: &Node,
    desk: &Desk,
    sides: &Sides<'_>,
    request: &Request,
    who: &Who,
) -> Answer {
    let mut answer = Answer::default();
    if request.ids.is_empty() {
        answer
            .lines
            .push("refused: name the entries to release by object id".to_string());
        answer.failed = 1;
    }
    let mut seen = std::collections::HashSet::new();
    for id in &request.ids {
        let named = id.trim().to_ascii_lowercase();
        // each entry once, however often it is named
        if !seen.insert(named.clone()) {
            continue;
        }
        let e = match find_entry(node, &named) {
            Ok(e) => e,
            Err(why) => {
                answer.lines.push(format!("{named}: {why}"));
                answer.failed += 1;
                // on record too: who asked for what, and why nothing happened
                let rec = Entry {
                    object_id: ObjectId::parse(&named),
                    detail: Some(format!("{}; failed: {why}", who.detail())),
                    ..Entry::default()
                };
                if let Err(err) = node.audit.durable(Event::QuarantineReleaseRefused, rec) {
                    tracing::error!(error = %err, "cannot audit a failed quarantine release");
                }
                continue;
            }
        };
        match release_one(node, desk, sides, &e, who) {
            Ok((line, true)) => answer.lines.push(line),
            Ok((line, false)) | Err(line) => {
                answer.lines.push(line);
                answer.failed += 1;
            }
        }
    }
    answer
}

/// Releases one entry, or says why not. Every attempt that does not happen is on record:
/// `quarantine_release_refused`, with who asked and why (not releasable, or failed).
fn release_one(
    node: &Node,
    desk: &Desk,
    sides: &Sides<'_>,
    e: &Listed,
    who: &Who,
) -> Result<(String, bool), String> {
    let id = &e.object_id;
    if let Err(why) = e.releasable_by(node.keys.data().is_some()) {
        tracing::warn!(channel = %e.channel, object = %id, why = %why, who = %who.detail(), "quarantine release refused");
        // the attempt is on record too: nothing changed, and who asked is known
        let mut rec = entry_of(e);
        rec.detail = Some(format!("{}; not releasable: {why}", who.detail()));
        if let Err(err) = node.audit.durable(Event::QuarantineReleaseRefused, rec) {
            tracing::error!(error = %err, "cannot audit a refused quarantine release");
        }
        return Err(format!("{id}: not releasable: {why}"));
    }
    let failed = |why: &str| {
        tracing::warn!(channel = %e.channel, object = %id, why = %why, who = %who.detail(), "quarantine release failed; the entry stays in quarantine");
        let mut rec = entry_of(e);
        rec.detail = Some(format!(
            "{}; failed: {why}; the entry stays in quarantine",
            who.detail()
        ));
        if let Err(err) = node.audit.durable(Event::QuarantineReleaseRefused, rec) {
            tracing::error!(error = %err, "cannot audit a failed quarantine release");
        }
    };
    let side = releaser_of(node, desk, sides, e).inspect_err(|why| failed(why));
    side.map_err(|why| format!("{id}: {why}"))?
        .release(desk, e, who)
        .map_err(|f| {
            if !f.audited {
                failed(&f.fault.to_string());
            }
            format!(
                "{id}: not released: {}; the entry stays in quarantine",
                f.fault
            )
        })
}

/// The side of this node that releases `e`, or why none may now: a release of it is under
/// way, its channel is not configured, or this node does not run its side.
fn releaser_of<'a>(
    node: &Node,
    desk: &Desk,
    sides: &Sides<'a>,
    e: &Listed,
) -> Result<&'a dyn Releaser, String> {
    if desk.is_pending(&e.channel, &e.object_id) {
        return Err("a release of it is under way already".into());
    }
    let role = node
        .cfg
        .channel(&e.channel)
        .map(|c| c.role)
        .ok_or_else(|| format!("channel {} is not in this node's configuration", e.channel))?;
    match (e.side.as_str(), role) {
        ("sender", Role::Send) => sides.sender,
        ("receiver", Role::Receive) => sides.receiver,
        _ => None,
    }
    .ok_or_else(|| {
        format!(
            "refused on the {} side, which this node does not run for channel {}",
            e.side, e.channel
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purge(ids: Vec<String>) -> Request {
        Request {
            action: Action::Purge,
            ids,
            before_ms: None,
            channel: None,
            user: "alice".into(),
            note: Some("old".into()),
        }
    }

    #[test]
    fn requests_carry_the_owner_uid_and_bad_ones_say_what_is_wrong() {
        let t = tempfile::tempdir().unwrap();
        let desk = Desk::paths(t.path());
        assert!(
            desk.submit(&purge(vec![])).is_err(),
            "the node makes the folder"
        );
        desk.open().unwrap();
        let r = purge(vec!["00".repeat(16)]);
        let p = desk.submit(&r).unwrap();
        let taken = desk.take().unwrap();
        assert_eq!(taken.path, Desk::taken_path(&p));
        assert_eq!(taken.request.unwrap(), r);
        assert_eq!(taken.uid, Some(fs::metadata(t.path()).unwrap().uid()));
        assert!(desk.answer(&taken.path, &Answer::default()));
        assert!(!taken.path.exists() && !p.exists());
        assert!(Desk::answer_path(&p).exists());
        assert!(desk.take().is_none());
        // each kind of bad request is answered with what is wrong with it
        let dir = t.path().join(REQUESTS);
        let elsewhere = t.path().join("elsewhere.json");
        fs::write(&elsewhere, serde_json::to_vec(&r).unwrap()).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join("1-link.req")).unwrap();
        fs::write(dir.join("2-json.req"), b"{\"user\": 1").unwrap();
        fs::write(
            dir.join("3-large.req"),
            vec![b' '; MAX_REQUEST_BYTES as usize + 1],
        )
        .unwrap();
        let many = purge(vec!["00".repeat(16); MAX_REQUEST_IDS + 1]);
        fs::write(dir.join("4-many.req"), serde_json::to_vec(&many).unwrap()).unwrap();
        let mut said = Vec::new();
        while let Some(t) = desk.take() {
            said.push(t.request.unwrap_err());
        }
        assert_eq!(said.len(), 4);
        assert!(said[0].contains("symbolic link"), "{said:?}");
        assert!(said[1].contains("not valid JSON"), "{said:?}");
        assert!(said[2].contains("too large"), "{said:?}");
        assert!(said[3].contains("at most 1000"), "{said:?}");
    }

    #[test]
    fn a_claimed_request_can_no_longer_be_withdrawn() {
        let t = tempfile::tempdir().unwrap();
        let desk = Desk::paths(t.path());
        desk.open().unwrap();
        let r = purge(vec!["00".repeat(16)]);
        // not taken yet: the withdrawal wins, and the node never sees it
        let q = desk.submit(&r).unwrap();
        assert!(desk.withdraw(&q).unwrap());
        assert!(desk.take().is_none());
        // claimed (renamed) before it is served: the withdrawal loses, the answer comes
        let q = desk.submit(&r).unwrap();
        let taken = desk.take().unwrap();
        assert!(!desk.withdraw(&q).unwrap());
        assert!(taken.path.exists());
        // one at a time: a second request waits for the next take
        let a = desk.submit(&r).unwrap();
        let b = desk.submit(&r).unwrap();
        let first = desk.take().unwrap().path;
        assert!(first == Desk::taken_path(&a) || first == Desk::taken_path(&b));
        assert_eq!(u8::from(a.exists()) + u8::from(b.exists()), 1);
    }

    #[test]
    fn an_answer_that_cannot_be_written_keeps_the_request() {
        let t = tempfile::tempdir().unwrap();
        let desk = Desk::paths(t.path());
        desk.open().unwrap();
        let q = desk.submit(&purge(vec![])).unwrap();
        let taken = desk.take().unwrap();
        // the answer's name is taken by a directory: it cannot be written
        fs::create_dir(Desk::answer_path(&q)).unwrap();
        assert!(!desk.answer(&taken.path, &Answer::default()));
        assert!(
            taken.path.exists(),
            "kept, so the command knows it was taken"
        );
        // at the next start, a request a stop interrupted is answered
        fs::remove_dir(Desk::answer_path(&q)).unwrap();
        desk.answer_interrupted();
        assert!(!taken.path.exists());
        let a: Answer = serde_json::from_slice(&fs::read(Desk::answer_path(&q)).unwrap()).unwrap();
        assert_eq!(a.failed, 1);
        assert!(a.lines[0].contains("stopped"));
    }

    #[test]
    fn a_request_folder_others_may_write_is_not_served() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let desk = Desk::paths(t.path());
        desk.open().unwrap();
        let dir = t.path().join(REQUESTS);
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        let q = desk.submit(&purge(vec![])).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o770)).unwrap();
        assert!(desk.closed().unwrap().contains("group- or world-writable"));
        assert!(desk.take().is_none());
        assert!(q.exists(), "left as it was");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        assert!(desk.closed().is_none());
        assert!(desk.take().is_some());
        // who may ask: root and the node's own user, nobody else
        assert!(trusted_uid(0));
        assert!(trusted_uid(rustix::process::geteuid().as_raw()));
        assert!(!trusted_uid(54_321) || rustix::process::geteuid().as_raw() == 54_321);
    }

    #[test]
    fn pending_records_round_trip() {
        let t = tempfile::tempdir().unwrap();
        let desk = Desk::paths(t.path());
        let p = Pending {
            token: "ab".repeat(16),
            side: "sender".into(),
            channel: "c".into(),
            old_id: "cd".repeat(16),
            who: Some("by alice (uid 0)".into()),
            direct: true,
        };
        desk.begin(&p).unwrap();
        assert_eq!(desk.pending(), vec![p.clone()]);
        assert!(desk.is_pending("c", &"cd".repeat(16)));
        desk.end(&p).unwrap();
        assert!(desk.pending().is_empty());
    }

    #[test]
    fn who_is_said_with_uid_user_and_note_without_control_characters() {
        let w = Who {
            uid: Some(1000),
            user: clean("ali\nce", 64),
            note: Some(clean("false\u{7} positive", MAX_NOTE)),
        };
        assert_eq!(w.detail(), "by alice (uid 1000); note: \"false positive\"");
        assert_eq!(clean("", 5), "?");
        // a stated name that is not a plain account name is quoted; a note keeps its lines
        // and bidirectional controls, escaped
        let forged = Who {
            uid: Some(0),
            user: clean("chief judge\"; note: \"approved", 64),
            note: Some("ok\nforged line \u{202e}evil".into()),
        };
        assert_eq!(
            forged.detail(),
            "by \"chief judge\\\"; note: \\\"approved\" (uid 0); note: \"ok\\nforged line \\u{202e}evil\""
        );
    }
}
