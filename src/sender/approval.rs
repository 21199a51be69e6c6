//! The approval desk of the sending node: a sealed object on a channel whose policy has
//! `[approval]` waits here ("pending") until enough pinned approvers have signed its
//! manifest digest, one rejects it, or it expires; approvers' signed decisions arrive as
//! request files and are served every 500 ms.
//!
//! ```text
//!  seal ─► hold ─ no [approval] ───────────────────────────────────────────► route ─► link
//!            │ [approval]: spool/<channel>/<id>/approvals.json (durable: since, approvals)
//!            │             audit approval_pending (once) ─► state/approvals/<id>.json (view)
//!            ▼
//!  state/approval-requests/<n>.req ─claim─► <n>.taken ─► check (policy in force):
//!     key pinned? digest the object's? signature? level order? not twice?
//!       approve ─► approvals.json (durable) ─► audit approved (durable) ─► view
//!                  complete ─► manifest re-encoded with the approvals (spool)
//!                            ─► approvals.json released (durable) ─► route
//!                  (a released object goes on at start; sent again by a link: below)
//!       reject  ─► approvals.json rejected (durable) ─► audit approval_rejected
//!                  ─► quarantine (approval_rejected); at any later gate or start: the
//!                  same (the record first if cut off), never out
//!       else    ─► audit approval_request_refused (reason capped; after 16 a minute,
//!                  one summary a minute); nothing changes
//!     ─► <n>.out DecisionAnswer ─► <n>.taken removed
//!  every 2 s: expired (wall time at first, then the monotonic clock)? ─► approval_expired
//!             [approval] removed, or fewer required (after a restart)? ─► audit approval_waived
//!             (durable) ─► released ─► goes on (the operator's decision)
//!  a fault (gate, release, quarantine) ─► kept by the desk, judged again every 2 s
//!  released and sent again by a link: complete under the rule in force? goes : new wait
//!  requests are served once the spool's recovery has put an earlier run's objects back
//! ```
//!
//! The signature says who decided, never the request file's owner: the folder may be
//! writable by the approvers' group (`isogate-approver`, mode 3770), so a request is read
//! through one descriptor, never following a link, at most
//! [`approvals::MAX_FILE_BYTES`], and parsed strictly; a folder that is not a directory,
//! is owned by someone other than root or the node, is world-writable, or group-writable
//! without the sticky bit is not served.

use crate::audit::{Entry, Event};
use crate::core::approval::{Approval, Decision, Rule, SIGNATURE_LEN};
use crate::core::id::ObjectId;
use crate::core::manifest::SignedManifest;
use crate::core::reason::{Reason, Refusal};
use crate::core::stage::Sealed;
use crate::core::wire;
use crate::fsx::{sync_dir, write_durable};
use crate::keys::VerifyKey;
use crate::keys::suite::Suite;
use crate::node::Fault;
use crate::node::approvals::{
    self, DecisionAnswer, DecisionRequest, MAX_NOTE, PENDING_DIR, PendingView, Pinned,
    REQUESTS_DIR, Signed,
};
use crate::sender::pipeline::{Hold, Queue, Sender};
use crate::sender::seal;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The file of an object's approval state in its spool entry.
pub const STORED: &str = "approvals.json";
/// How often request files are claimed.
pub const POLL: Duration = Duration::from_millis(500);
/// How often pending objects are checked for expiry and for a changed rule (in polls).
const CHECK_EVERY_POLLS: u32 = 4;
/// Most requests served in one pass; more wait for the next.
const MAX_REQUESTS: usize = 16;
/// Extension of a claimed request.
const TAKEN: &str = "taken";
/// Extension a claimed request that is a non-empty directory is set aside with.
const REFUSED: &str = "refused";
/// Refused requests recorded one by one in a minute; more are counted into one summary
/// record per minute.
const REFUSED_RECORDS_PER_MINUTE: u32 = 16;
/// The window those are counted in (ms, monotonic clock).
const REFUSED_WINDOW_MS: u64 = 60_000;
/// Most terminal columns of a refused request's reason kept in its audit record.
const MAX_REFUSED_DETAIL: usize = 200;
/// Labels of `isogate_approval_decisions_total{decision}`.
pub const DECISIONS: [&str; 4] = ["approve", "reject", "expired", "refused"];

/// One decision taken (an approval, or the rejection), as the spool entry keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredDecision {
    /// The approver's name in the channel's pinned list when it was taken.
    pub approver: String,
    /// Their level then.
    pub level: u8,
    /// Their public key (64 hex digits, or SM2's 130).
    pub key: String,
    /// Ed25519 signature over `approval::message(decision, digest)` (128 hex digits):
    /// `approve` for one in `Stored::approvals`, `reject` for `Stored::rejected`.
    pub signature: String,
    /// When the node took it, ms since the Unix epoch.
    pub time_ms: u64,
    /// The approver's note.
    #[serde(default)]
    pub note: String,
    /// Where it came from (`cli`, `console:USER`).
    #[serde(default)]
    pub via: String,
    /// Whether its `approved` (or `approval_rejected`) record is written; one a stop or a
    /// fault cut off is written at the next start, before anything else is done with the
    /// object.
    #[serde(default)]
    pub audited: bool,
}

/// An object's approval state, kept durably in its spool entry (`approvals.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stored {
    /// The digest approved (hex): an object sealed again (its content was taken again)
    /// has another, and starts over.
    pub digest: String,
    /// When it began to wait, ms since the Unix epoch (wall time).
    pub pending_since_ms: u64,
    /// Whether `approval_pending` is audited.
    pub announced: bool,
    /// The approvals taken, in order.
    pub approvals: Vec<StoredDecision>,
    /// Approvals the rule in force required when it last waited (0: not recorded): a
    /// reloaded rule that needs fewer makes its release a waiver (`approval_waived`).
    #[serde(default)]
    pub required: usize,
    /// Released: its approvals were complete (the stored frame carries them) or waived by
    /// a policy change (audited `approval_waived`). Written before it is queued; at a start
    /// a released object goes on as it went, whatever the policy says then (on the diode it
    /// stays in the spool for its repeat window); one a link sends again goes while its
    /// approvals complete the rule in force, else it begins a new wait.
    #[serde(default)]
    pub released: bool,
    /// Rejected: stored durably before its `approval_rejected` record, so that no restart
    /// or fault can undo it; an object carrying one only ever goes to quarantine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<StoredDecision>,
}

impl StoredDecision {
    /// Who rejected, as the audit detail and the refusal say it: `NAME (level L, key FP)`.
    fn who(&self) -> String {
        let fp = VerifyKey::parse(&self.key).map_or_else(|| self.key.clone(), |k| k.fingerprint());
        format!("{} (level {}, key {fp})", self.approver, self.level)
    }

    /// `; via …` and `; note: "…"`, each when given.
    fn via_note(&self) -> (String, String) {
        let via = if self.via.is_empty() {
            String::new()
        } else {
            format!("; via {}", self.via)
        };
        let note = if self.note.is_empty() {
            String::new()
        } else {
            format!("; note: {:?}", self.note)
        };
        (via, note)
    }
}

impl Stored {
    /// The state in a spool entry; `None` when there is none.
    ///
    /// # Errors
    /// It exists but cannot be read or parsed.
    pub fn load(dir: &Path) -> io::Result<Option<Stored>> {
        let path = dir.join(STORED);
        let bytes = match read_capped(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{STORED}: {e}")))
    }

    /// Writes it durably (temp file, fsync, rename, directory fsync).
    ///
    /// # Errors
    /// It cannot be written.
    pub fn store(&self, dir: &Path) -> io::Result<()> {
        let body = serde_json::to_vec(self).map_err(io::Error::other)?;
        write_durable(&dir.join(STORED), &body)
    }

    /// The approvals that count under `rule` for `digest`: each names a pinned approver
    /// (with the same key as when it was taken), verifies, and appears once. Approvals that
    /// no longer verify (the rule changed) do not count.
    pub fn counted(&self, rule: &Rule, digest: &[u8; 32]) -> Vec<Approval> {
        let mut out: Vec<Approval> = Vec::new();
        for a in &self.approvals {
            let Some(who) = rule.approver(&a.approver) else {
                continue;
            };
            let mut sig = [0u8; SIGNATURE_LEN];
            if hex::decode_to_slice(&a.signature, &mut sig).is_err()
                || !Rule::verifies(who, Decision::Approve, digest, &sig)
                || out.iter().any(|x| x.approver == a.approver)
            {
                continue;
            }
            out.push(Approval {
                approver: a.approver.clone(),
                signature: sig,
            });
        }
        out
    }
}

/// A request, checked field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The object.
    pub id: ObjectId,
    /// What was decided.
    pub decision: Decision,
    /// The digest signed.
    pub digest: [u8; 32],
    /// The approver's public key.
    pub key: VerifyKey,
    /// The signature.
    pub signature: [u8; SIGNATURE_LEN],
    /// The note, cut to [`MAX_NOTE`] characters, control characters but newlines out.
    pub note: String,
    /// Where it came from (`cli`, `console:USER`), at most 64 characters, no controls.
    pub via: String,
}

/// Parses a request file's bytes strictly: JSON of a [`DecisionRequest`] with no unknown
/// field, a 32-hex-digit id, `approve` or `reject`, 64 hex digits of digest, a public key
/// (64 hex digits, or SM2's 130) and 128 of signature.
///
/// # Errors
/// What is wrong, in one sentence (and the object id, when it could be read).
pub fn parse_request(bytes: &[u8]) -> Result<Parsed, (Option<ObjectId>, String)> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Strict {
        id: String,
        decision: String,
        digest: String,
        key: String,
        signature: String,
        #[serde(default)]
        note: String,
        #[serde(default)]
        via: String,
    }
    let r: Strict = serde_json::from_slice(bytes)
        .map_err(|e| (None, format!("not valid JSON of a decision request: {e}")))?;
    let r = DecisionRequest {
        id: r.id,
        decision: r.decision,
        digest: r.digest,
        key: r.key,
        signature: r.signature,
        note: r.note,
        via: r.via,
    };
    let id = ObjectId::parse(&r.id).ok_or((None, "the object id is not 32 hex digits".into()))?;
    let bad = |why: &str| (Some(id), why.to_string());
    let decision = r
        .decision()
        .ok_or_else(|| bad("the decision is neither approve nor reject"))?;
    let mut digest = [0u8; 32];
    hex::decode_to_slice(&r.digest, &mut digest)
        .map_err(|_| bad("the digest is not 64 hex digits"))?;
    let key = VerifyKey::parse(&r.key)
        .ok_or_else(|| bad("the key is not a public key (64 hex digits, or SM2's 130)"))?;
    let mut signature = [0u8; SIGNATURE_LEN];
    hex::decode_to_slice(&r.signature, &mut signature)
        .map_err(|_| bad("the signature is not 128 hex digits"))?;
    let note: String = r
        .note
        .chars()
        .filter(|c| *c == '\n' || !c.is_control())
        .take(MAX_NOTE)
        .collect();
    let via: String = r.via.chars().filter(|c| !c.is_control()).take(64).collect();
    Ok(Parsed {
        id,
        decision,
        digest,
        key,
        signature,
        note,
        via,
    })
}

/// Refused requests in the current minute: at most [`REFUSED_RECORDS_PER_MINUTE`] records,
/// then one summary record of the rest when the minute is over, so that a writer of the
/// request folder cannot grow the audit log without bound.
#[derive(Debug, Default)]
struct RefusedWindow {
    /// When the minute began ([`crate::mono_ms`]).
    began: u64,
    /// Refusals in it so far.
    seen: u32,
    /// Of those, not recorded one by one.
    quiet: u32,
}

impl RefusedWindow {
    /// The count of quiet refusals of a minute that is over at `now` (ms, monotonic),
    /// which the caller records as one summary; the window starts again. `None`: the
    /// minute goes on, or nothing was kept quiet.
    fn due(&mut self, now: u64) -> Option<u32> {
        if now.saturating_sub(self.began) < REFUSED_WINDOW_MS {
            return None;
        }
        let quiet = self.quiet;
        *self = RefusedWindow {
            began: now,
            seen: 0,
            quiet: 0,
        };
        (quiet > 0).then_some(quiet)
    }

    /// Counts one refusal: whether it gets its own record.
    fn note(&mut self) -> bool {
        self.seen = self.seen.saturating_add(1);
        if self.seen <= REFUSED_RECORDS_PER_MINUTE {
            return true;
        }
        self.quiet = self.quiet.saturating_add(1);
        false
    }
}

/// A refused request's reason as its audit record keeps it: control and bidirectional
/// formatting characters escaped (`\u{…}`, as `audit query` shows a cell) and at most
/// `MAX_REFUSED_DETAIL` columns (cut with `…`): a parse error may quote the request.
pub fn refused_detail(why: &str) -> String {
    crate::audit::query::cell(why, Some(MAX_REFUSED_DETAIL))
}

/// An object waiting on the desk.
struct Waiting {
    sealed: Sealed,
    /// The pair's hash (SHA-256 or SM3) of its signed manifest body: what approvers sign.
    digest: [u8; 32],
    /// The pair's suite: which hash the manifest's are.
    suite: Suite,
    /// Its state as stored.
    stored: Stored,
    /// How long it had waited when this run first saw it (ms, from its stored wall time,
    /// see [`waited_before`]).
    waited_before: u64,
    /// When this run first saw it on the monotonic clock ([`crate::mono_ms`]).
    seen_mono: u64,
    /// The version of the policy its view was written under: a reload rewrites the view.
    version: String,
}

impl Waiting {
    /// How long it has waited (ms): what it had waited when this run saw it, plus the
    /// monotonic time since.
    fn waited(&self, mono_now: u64) -> u64 {
        self.waited_before
            .saturating_add(mono_now.saturating_sub(self.seen_mono))
    }
}

/// How long an object had waited when a run first sees it (ms): the wall time since its
/// wait began (`pending_since_ms`), never less than nothing nor more than the whole wait
/// (`expire_ms`), so a clock set back or forward cannot stretch or skip it.
pub fn waited_before(now_wall_ms: u64, pending_since_ms: u64, expire_ms: u64) -> u64 {
    now_wall_ms.saturating_sub(pending_since_ms).min(expire_ms)
}

/// The desk of one sending node: its folders and the objects waiting.
pub struct Desk {
    views: PathBuf,
    requests: PathBuf,
    waiting: Mutex<HashMap<ObjectId, Waiting>>,
    /// Views an earlier run left of objects still in the spool, not yet judged again.
    left: Mutex<HashSet<ObjectId>>,
    /// Objects an earlier run left in the spool, not yet judged again: a released one
    /// goes on as it went; one judged after that (sent again by a link) comes back.
    recovering: Mutex<HashSet<ObjectId>>,
    /// Objects a fault left off the desk (the gate, a release or a quarantine failed):
    /// judged again at each check, never dropped while their spool entry exists.
    retry: Mutex<Vec<Sealed>>,
    /// Refused requests of the current minute.
    refused: Mutex<RefusedWindow>,
    closed_said: AtomicBool,
}

impl Desk {
    /// The desk under a node's state directory; makes its folders when missing: the views
    /// (0750) and the request folder (0700: an administrator may give it to the
    /// approvers' group (3770), see the README).
    ///
    /// # Errors
    /// A folder cannot be made.
    pub fn open(state_dir: &Path) -> io::Result<Desk> {
        let views = state_dir.join(PENDING_DIR);
        let requests = state_dir.join(REQUESTS_DIR);
        // never open to all, whatever the umask; the approvers' group an administrator
        // gives them stays
        for (dir, mode) in [(&views, 0o750), (&requests, 0o700)] {
            crate::fsx::private_dir(dir, mode)?;
        }
        Ok(Desk {
            views,
            requests,
            waiting: Mutex::default(),
            left: Mutex::default(),
            recovering: Mutex::default(),
            retry: Mutex::default(),
            refused: Mutex::default(),
            closed_said: AtomicBool::new(false),
        })
    }

    /// Removes the views an earlier run left of objects no longer in the spool (at start,
    /// after the spool's recovery; each object still there writes its own again).
    pub fn prune(&self, spooled: &HashSet<ObjectId>) {
        self.recovering
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(spooled.iter().copied());
        let Ok(d) = fs::read_dir(&self.views) else {
            return;
        };
        for e in d.flatten() {
            let path = e.path();
            let id = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(ObjectId::parse);
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            match id.filter(|id| spooled.contains(id)) {
                Some(id) => {
                    self.left
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id);
                }
                None => {
                    let _ = fs::remove_file(&path);
                }
            }
        }
    }

    fn view_path(&self, id: ObjectId) -> PathBuf {
        self.views.join(format!("{id}.json"))
    }

    fn remove_view(&self, id: ObjectId) {
        match fs::remove_file(self.view_path(id)) {
            Ok(()) => {
                let _ = sync_dir(&self.views);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(object = %id, error = %e, "cannot remove an approval view"),
        }
    }

    /// Why the request folder is not served, if it is not: not a directory, owned by
    /// someone other than root or the node, world-writable, or group-writable without the
    /// sticky bit (one approver could remove or rename another's request).
    pub fn closed(&self) -> Option<String> {
        let m = match fs::symlink_metadata(&self.requests) {
            Ok(m) => m,
            Err(e) => return Some(format!("it cannot be read: {e}")),
        };
        if !m.is_dir() {
            return Some("it is not a directory".into());
        }
        if !crate::node::desk::trusted_uid(m.uid()) {
            return Some(format!(
                "it is owned by uid {}, neither root nor the node's user",
                m.uid()
            ));
        }
        if m.mode() & 0o002 != 0 {
            return Some(format!(
                "it is world-writable (mode {:o}); make it 0700, or 3770 with the approvers' group",
                m.mode() & 0o7777
            ));
        }
        if m.mode() & 0o020 != 0 && m.mode() & 0o1000 == 0 {
            return Some(format!(
                "it is group-writable without the sticky bit (mode {:o}); make it 3770 so that officers cannot remove or rename each other's requests",
                m.mode() & 0o7777
            ));
        }
        None
    }

    /// How many objects wait, by channel.
    fn counts(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for w in self.lock().values() {
            *out.entry(w.sealed.manifest().channel.clone()).or_insert(0) += 1;
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectId, Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The `approval_waived` detail of an object that waited when `[approval]` was removed
/// from its channel's policy (`version`): what it had.
pub fn waived_removed(version: &str, st: &Stored) -> String {
    format!(
        "[approval] removed from policy {version}; it had {} of {}",
        st.approvals.len(),
        st.required
    )
}

/// The `approval_waived` detail of an object whose approvals are complete only because
/// the policy in force (`version`) requires fewer (`required`) than it waited for
/// (`st.required`); `None` when it is no waiver (it has what it waited for, or that is not
/// recorded).
pub fn waived_lowered(
    version: &str,
    required: usize,
    st: &Stored,
    counted: &[Approval],
) -> Option<String> {
    if counted.len() >= st.required {
        return None;
    }
    let names: Vec<&str> = counted.iter().map(|a| a.approver.as_str()).collect();
    Some(format!(
        "policy {version} requires {required} (it waited for {}); approved by {}",
        st.required,
        if names.is_empty() {
            "nobody".to_string()
        } else {
            names.join(", ")
        }
    ))
}

/// The digest approvers sign for a sealed object: the `suite`'s hash (the pair's: SHA-256
/// or SM3) of its signed manifest body.
///
/// # Errors
/// The frame does not decode (it was built by this node: a fault).
pub fn digest_of(sealed: &Sealed, suite: Suite) -> Result<[u8; 32], Fault> {
    let payload = wire::decode_object_frame(sealed.frame())?;
    Ok(SignedManifest::decode(payload)?.digest(suite))
}

impl Desk {
    /// The desk's gate after seal (and at recovery): an object on a channel without
    /// `[approval]` goes on (`Some`); one with it waits (`None`) until its approvals are
    /// complete under the rule in force, then goes with them in its manifest.
    ///
    /// # Errors
    /// A fault (the state cannot be written, the audit fails): the object stays in the
    /// spool and is judged again at the next start.
    pub fn gate(&self, sender: &Sender, sealed: Sealed) -> Result<Option<Sealed>, Fault> {
        let m = sealed.manifest();
        let (channel, id) = (m.channel.clone(), m.object_id);
        let policy = sender.node.policies.get(&channel);
        let left = self
            .left
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        let recovering = self
            .recovering
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        let Some(rule) = policy.approval.as_ref() else {
            // [approval] is fixed at start, so on a channel without it nothing of this run
            // waited: only an object of an earlier run may carry a stored decision, and no
            // file is read for the others (every object of such a channel passes here)
            if !(recovering || left) {
                return Ok(Some(sealed));
            }
            // a stored rejection stands whatever the policy says now
            let dir = sealed.spooled().dir.clone();
            let stored = Stored::load(&dir)?;
            if let Some(st) = stored.clone().filter(|st| st.rejected.is_some()) {
                return self.quarantine_rejected(sender, sealed, st).map(|()| None);
            }
            if left {
                if let Some(st) = stored.filter(|st| !st.released) {
                    tracing::info!(channel = %channel, object = %id, "the channel's [approval] was removed; the object goes on without approvals");
                    let detail = waived_removed(&policy.version, &st);
                    return self
                        .release(sender, sealed, st, None, Some(detail))
                        .map(Some);
                }
                self.remove_view(id);
            }
            return Ok(Some(sealed));
        };
        let dir = sealed.spooled().dir.clone();
        let stored = Stored::load(&dir)?;
        // rejected (whatever its digest): only ever to quarantine, its record first
        if let Some(st) = stored.clone().filter(|st| st.rejected.is_some()) {
            return self.quarantine_rejected(sender, sealed, st).map(|()| None);
        }
        let digest = digest_of(&sealed, sender.node.cfg.node.suite)?;
        let mut st = match stored {
            // released, at start: it went (or goes) with the frame it was released with,
            // never judged again
            Some(st) if st.released && st.digest == hex::encode(digest) && recovering => {
                self.remove_view(id);
                return Ok(Some(sealed));
            }
            // released, and sent again by a link (a diode resend, a QUIC re-queue): it goes
            // while its approvals are complete under the rule in force, else a new wait
            // begins (announced again, its expiry counted from now)
            Some(st) if st.released && st.digest == hex::encode(digest) => {
                let counted = st.counted(rule, &digest);
                if rule.tally(&digest, &counted).is_ok_and(|t| t.complete()) {
                    self.remove_view(id);
                    return Ok(Some(sealed));
                }
                Stored {
                    pending_since_ms: crate::now_ms(),
                    announced: false,
                    required: rule.required,
                    released: false,
                    ..st
                }
            }
            Some(st) if st.digest == hex::encode(digest) => st,
            _ => Stored {
                digest: hex::encode(digest),
                pending_since_ms: crate::now_ms(),
                announced: false,
                approvals: Vec::new(),
                required: rule.required,
                released: false,
                rejected: None,
            },
        };
        // approvals whose record a stop cut off (stored first, audited after)
        if st.approvals.iter().any(|a| !a.audited) {
            for a in st.approvals.iter_mut().filter(|a| !a.audited) {
                let mut e = Entry::object(&channel, id, &m.name);
                e.size = Some(m.size);
                e.digest = Some(m.digest);
                e.detail = Some(format!(
                    "by {} (level {}); taken {} before a stop, recorded at start{}",
                    a.approver,
                    a.level,
                    crate::audit::when::format(a.time_ms, &jiff::tz::TimeZone::UTC),
                    if a.via.is_empty() {
                        String::new()
                    } else {
                        format!("; via {}", a.via)
                    }
                ));
                sender.node.audit.durable(Event::Approved, e)?;
                a.audited = true;
            }
            st.store(&dir)?;
        }
        let counted = st.counted(rule, &digest);
        if rule.tally(&digest, &counted).is_ok_and(|t| t.complete()) {
            let waived = waived_lowered(&policy.version, rule.required, &st, &counted);
            return self
                .release(sender, sealed, st, Some(counted), waived)
                .map(Some);
        }
        if st.required != rule.required {
            st.required = rule.required;
            if st.announced {
                st.store(&dir)?;
            }
        }
        if !st.announced {
            st.store(&dir)?;
            let mut e = Entry::object(&channel, id, &m.name);
            e.size = Some(m.size);
            e.digest = Some(m.digest);
            e.detail = Some(format!(
                "waits for {} approval(s) of {} ({}); expires after {}",
                rule.required,
                rule.approvers
                    .iter()
                    .map(|a| format!("{} level {}", a.name, a.level))
                    .collect::<Vec<_>>()
                    .join(", "),
                hex::encode(digest),
                humantime::format_duration(Duration::from_millis(rule.expire_ms)),
            ));
            sender.node.audit.durable(Event::ApprovalPending, e)?;
            st.announced = true;
            st.store(&dir)?;
        }
        // the wait began at `pending_since_ms` (wall time; never counted as more than the
        // whole wait, nor less than nothing) and goes on by the monotonic clock
        let waited_before = waited_before(crate::now_ms(), st.pending_since_ms, rule.expire_ms);
        tracing::info!(channel = %channel, name = %m.name, object = %id, approvals = counted.len(), required = rule.required, "waits for approval");
        let w = Waiting {
            sealed,
            digest,
            suite: sender.node.cfg.node.suite,
            stored: st,
            waited_before,
            seen_mono: crate::mono_ms(),
            version: policy.version.clone(),
        };
        self.write_view(&w, rule);
        self.lock().insert(id, w);
        self.approval_gauges(sender);
        Ok(None)
    }

    /// Releases an object: its frame rebuilt with its approvals (`Some`) and stored in
    /// place of the manifest (a restart sends the approved frame); a waiver (`waived`: the
    /// detail) audited `approval_waived` (durable); then `released` stored in its
    /// `approvals.json` — all before the caller queues it — and it is taken off the desk.
    ///
    /// # Errors
    /// A fault: the object stays in the spool and is judged again at the next start.
    fn release(
        &self,
        sender: &Sender,
        sealed: Sealed,
        mut st: Stored,
        approvals: Option<Vec<Approval>>,
        waived: Option<String>,
    ) -> Result<Sealed, Fault> {
        let id = sealed.manifest().object_id;
        let sealed = match approvals {
            Some(approvals) => {
                let sealed = seal::approve(sealed, approvals).map_err(|e| match e {
                    seal::SealError::Io(e) => Fault::Io(e),
                    seal::SealError::Manifest(e) => Fault::Manifest(e),
                    seal::SealError::Wire(e) => Fault::Wire(e),
                })?;
                sender
                    .spool
                    .store_manifest(sealed.spooled(), sealed.frame(), true)?;
                sealed
            }
            None => sealed,
        };
        if let Some(detail) = waived {
            let m = sealed.manifest();
            let mut e = Entry::object(&m.channel, id, &m.name);
            e.size = Some(m.size);
            e.digest = Some(m.digest);
            e.detail = Some(detail);
            sender.node.audit.durable(Event::ApprovalWaived, e)?;
        }
        st.released = true;
        st.store(&sealed.spooled().dir)?;
        self.lock().remove(&id);
        self.remove_view(id);
        self.approval_gauges(sender);
        let m = sealed.manifest();
        tracing::info!(channel = %m.channel, name = %m.name, object = %id, "approved; released to its link");
        Ok(sealed)
    }

    /// Writes an object's pending view (atomically, mode 0640).
    fn write_view(&self, w: &Waiting, rule: &Rule) {
        let m = w.sealed.manifest();
        let counted = w.stored.counted(rule, &w.digest);
        let levels_missing = rule
            .tally(&w.digest, &counted)
            .map(|t| t.levels_missing)
            .unwrap_or_default();
        let view = PendingView {
            id: m.object_id.to_string(),
            channel: m.channel.clone(),
            name: m.name.clone(),
            size: m.size,
            sha256: (w.suite == Suite::Default).then(|| hex::encode(m.digest)),
            sm3: (w.suite == Suite::Gm).then(|| hex::encode(m.digest)),
            content_type: m.content_type.clone(),
            digest: hex::encode(w.digest),
            pending_since_ms: w.stored.pending_since_ms,
            expires_ms: w.stored.pending_since_ms.saturating_add(rule.expire_ms),
            required: rule.required,
            approvals: w
                .stored
                .approvals
                .iter()
                .filter(|a| counted.iter().any(|c| c.approver == a.approver))
                .map(|a| Signed {
                    approver: a.approver.clone(),
                    level: a.level,
                    time_ms: a.time_ms,
                    note: a.note.clone(),
                })
                .collect(),
            levels_missing,
            approvers: rule
                .approvers
                .iter()
                .map(|a| Pinned {
                    name: a.name.clone(),
                    level: a.level,
                    key: a.key.to_hex(),
                })
                .collect(),
            policy_version: w.version.clone(),
        };
        let written = serde_json::to_vec_pretty(&view)
            .map_err(io::Error::other)
            .and_then(|b| crate::fsx::write_durable_mode(&self.view_path(m.object_id), &b, 0o640));
        if let Err(e) = written {
            tracing::error!(object = %m.object_id, error = %e, "cannot write the approval view; the object waits all the same");
        }
    }

    /// Sets `isogate_approval_pending{channel}` for every sending channel.
    fn approval_gauges(&self, sender: &Sender) {
        let counts = self.counts();
        for c in sender.node.cfg.file_sending() {
            let n = counts.get(&c.name).copied().unwrap_or(0);
            sender
                .node
                .metrics
                .approval_pending
                .with_label_values(&[c.name.as_str()])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    fn count_decision(&self, sender: &Sender, channel: &str, decision: &str) {
        sender
            .node
            .metrics
            .approval_decisions
            .with_label_values(&[channel, decision])
            .inc();
    }

    /// Answers the requests a stop interrupted while they were served.
    fn answer_interrupted(&self) {
        let Ok(dir) = fs::read_dir(&self.requests) else {
            return;
        };
        for p in dir.flatten().map(|e| e.path()) {
            if p.extension().is_some_and(|x| x == TAKEN) {
                self.answer(
                    &p,
                    &DecisionAnswer {
                        taken: false,
                        message: "the node stopped while serving this decision; whether it was taken is in its audit log and `isogate approvals list`".into(),
                        approved: 0,
                        required: 0,
                        done: false,
                    },
                );
            }
        }
    }

    /// One pass over the request folder.
    fn serve_requests(&self, sender: &Sender, queue: &Queue) {
        if let Some(why) = self.closed() {
            if !self.closed_said.swap(true, Ordering::Relaxed) {
                tracing::error!(folder = %self.requests.display(), why = %why, "approval decisions are not served: the request folder is unsafe");
                // the commands say so instead of waiting for an answer
                let note = self.views.join(approvals::REQUESTS_REFUSED);
                let line = format!("{}: {why}", self.requests.display());
                if let Err(e) = crate::fsx::write_durable_mode(&note, line.as_bytes(), 0o640) {
                    tracing::warn!(error = %e, "cannot say in the views why requests are not served");
                }
            }
            return;
        }
        self.flush_refused(sender);
        if self.closed_said.swap(false, Ordering::Relaxed) {
            tracing::info!(folder = %self.requests.display(), "approval decisions are served again");
            self.clear_refused_note();
        }
        let Ok(dir) = fs::read_dir(&self.requests) else {
            return;
        };
        let mut paths: Vec<PathBuf> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "req"))
            .collect();
        paths.sort();
        for p in paths.into_iter().take(MAX_REQUESTS) {
            let taken = p.with_extension(TAKEN);
            match fs::rename(&p, &taken) {
                Ok(()) => {}
                // withdrawn meanwhile
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    tracing::error!(request = %p.display(), error = %e, "cannot claim an approval request");
                    return;
                }
            }
            let kind = fs::symlink_metadata(&taken).map(|m| m.file_type());
            let answer = match read_capped(&taken) {
                _ if kind.as_ref().is_ok_and(|t| t.is_symlink()) => self.refuse_request(
                    sender,
                    None,
                    None,
                    "the request is a symbolic link; refused",
                ),
                _ if kind.as_ref().is_ok_and(|t| !t.is_file()) => self.refuse_request(
                    sender,
                    None,
                    None,
                    "the request is not a plain file; refused",
                ),
                Ok(bytes) => self.serve_one(sender, &bytes, queue),
                Err(e) => self.refuse_request(
                    sender,
                    None,
                    None,
                    &format!("the request cannot be read: {e}"),
                ),
            };
            self.answer(&taken, &answer);
        }
    }

    /// Removes the note that says why requests are not served (at start, and once they
    /// are served again).
    fn clear_refused_note(&self) {
        match fs::remove_file(self.views.join(approvals::REQUESTS_REFUSED)) {
            Ok(()) => {
                let _ = sync_dir(&self.views);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(error = %e, "cannot remove the note on the request folder"),
        }
    }

    /// Writes the answer beside a claimed request, then removes the request (a directory
    /// named as a request: removed when empty, else set aside as `<n>.refused`).
    fn answer(&self, taken: &Path, answer: &DecisionAnswer) {
        let written = serde_json::to_vec(answer)
            .map_err(io::Error::other)
            .and_then(|b| write_answer(&taken.with_extension("out"), &b));
        if let Err(e) = written {
            tracing::error!(request = %taken.display(), error = %e, "cannot answer an approval request; it stays, claimed");
            return;
        }
        let removed = match fs::symlink_metadata(taken) {
            Ok(m) if m.is_dir() => {
                fs::remove_dir(taken).or_else(|_| fs::rename(taken, taken.with_extension(REFUSED)))
            }
            _ => fs::remove_file(taken),
        };
        if let Err(e) = removed {
            tracing::warn!(request = %taken.display(), error = %e, "cannot remove a served approval request");
        }
        let _ = sync_dir(&self.requests);
    }

    /// Audits a request that changes nothing and says why.
    fn refuse_request(
        &self,
        sender: &Sender,
        id: Option<ObjectId>,
        who: Option<&str>,
        why: &str,
    ) -> DecisionAnswer {
        // what the object has and needs, when it waits
        let waiting = id.and_then(|id| {
            self.lock().get(&id).map(|w| {
                let m = w.sealed.manifest();
                let policy = sender.node.policies.get(&m.channel);
                let (approved, required) = match policy.approval.as_ref() {
                    Some(rule) => (w.stored.counted(rule, &w.digest).len(), rule.required),
                    None => (0, 0),
                };
                (m.channel.clone(), m.name.clone(), approved, required)
            })
        });
        let mut e = match (&waiting, id) {
            (Some((c, n, _, _)), Some(id)) => Entry::object(c, id, n),
            (None, Some(id)) => Entry {
                object_id: Some(id),
                ..Entry::default()
            },
            _ => Entry::default(),
        };
        e.detail = Some(refused_detail(&match who {
            Some(w) => format!("{w}: {why}"),
            None => why.to_string(),
        }));
        // at most REFUSED_RECORDS_PER_MINUTE records a minute, then one summary
        let (summary, recorded) = {
            let mut r = self.refused.lock().unwrap_or_else(|p| p.into_inner());
            let summary = r.due(crate::mono_ms());
            (summary, r.note())
        };
        if let Some(n) = summary {
            self.record_refused_summary(sender, n);
        }
        if recorded && let Err(err) = sender.node.audit.durable(Event::ApprovalRequestRefused, e) {
            tracing::error!(error = %err, "cannot audit a refused approval request");
        }
        // a request that names no waiting object (unreadable, unknown) counts under ""
        let channel = waiting.as_ref().map_or("", |w| w.0.as_str());
        self.count_decision(sender, channel, "refused");
        let object = id.map(|i| i.to_string()).unwrap_or_default();
        tracing::warn!(object = %object, why, "approval request refused");
        let (approved, required) = waiting.as_ref().map_or((0, 0), |w| (w.2, w.3));
        DecisionAnswer {
            taken: false,
            message: refused_detail(why),
            approved,
            required,
            done: false,
        }
    }

    /// Writes the summary of the refused requests of a minute not recorded one by one.
    fn record_refused_summary(&self, sender: &Sender, quiet: u32) {
        let e = Entry {
            detail: Some(format!(
                "{quiet} more approval request(s) refused within a minute, after {REFUSED_RECORDS_PER_MINUTE} recorded one by one (each is in the node's log)"
            )),
            ..Entry::default()
        };
        if let Err(err) = sender.node.audit.durable(Event::ApprovalRequestRefused, e) {
            tracing::error!(error = %err, "cannot audit the refused approval requests of a minute");
        }
    }

    /// Writes the summary of a minute of refused requests once it is over.
    fn flush_refused(&self, sender: &Sender) {
        let due = self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .due(crate::mono_ms());
        if let Some(n) = due {
            self.record_refused_summary(sender, n);
        }
    }

    /// Serves one request's bytes.
    fn serve_one(&self, sender: &Sender, bytes: &[u8], queue: &Queue) -> DecisionAnswer {
        let r = match parse_request(bytes) {
            Ok(r) => r,
            Err((id, why)) => return self.refuse_request(sender, id, None, &why),
        };
        let fp = r.key.fingerprint();
        let key_says = format!("key {fp}");
        let found = self
            .lock()
            .get(&r.id)
            .map(|w| (w.sealed.manifest().channel.clone(), w.digest));
        let (channel, digest) = match found {
            Some(found) => found,
            None => {
                return self.refuse_request(sender,
                    Some(r.id),
                    Some(&key_says),
                    "the object is not waiting for approval (released, rejected, expired, or unknown)",
                );
            }
        };
        let policy = sender.node.policies.get(&channel);
        let Some(rule) = policy.approval.as_ref() else {
            return self.refuse_request(
                sender,
                Some(r.id),
                Some(&key_says),
                &format!(
                    "channel {channel} no longer requires approval; the object goes on without"
                ),
            );
        };
        let Some(approver) = rule.approver_by_key(&r.key).cloned() else {
            return self.refuse_request(
                sender,
                Some(r.id),
                Some(&key_says),
                &format!("{fp} is not a pinned approver of channel {channel}"),
            );
        };
        let who = format!("{} (level {}, key {fp})", approver.name, approver.level);
        if r.digest != digest {
            return self.refuse_request(
                sender,
                Some(r.id),
                Some(&who),
                "the digest signed is not this object's manifest digest",
            );
        }
        if !Rule::verifies(&approver, r.decision, &digest, &r.signature) {
            return self.refuse_request(
                sender,
                Some(r.id),
                Some(&who),
                &format!(
                    "the signature does not verify with {}'s pinned key",
                    approver.name
                ),
            );
        }
        match r.decision {
            Decision::Approve => self.take_approval(sender, &r, rule, &approver, &who, queue),
            Decision::Reject => self.take_rejection(sender, &r, rule, &approver, &who),
        }
    }

    /// Takes a verified approval: stored durably, audited, the view updated; released
    /// when complete.
    fn take_approval(
        &self,
        sender: &Sender,
        r: &Parsed,
        rule: &Rule,
        approver: &crate::core::approval::Approver,
        who: &str,
        queue: &Queue,
    ) -> DecisionAnswer {
        let mut desk = self.lock();
        let Some(w) = desk.get_mut(&r.id) else {
            drop(desk);
            return self.refuse_request(
                sender,
                Some(r.id),
                Some(who),
                "the object is no longer waiting",
            );
        };
        // its wait is over: it goes to quarantine at the next check, never released
        if w.waited(crate::mono_ms()) >= rule.expire_ms {
            drop(desk);
            return self.refuse_request(
                sender,
                Some(r.id),
                Some(who),
                "the object's wait for approval is over (approval_expired)",
            );
        }
        let counted = w.stored.counted(rule, &w.digest);
        let refusal = match rule.tally(&w.digest, &counted) {
            Ok(t) => rule.may_approve(approver, &t).err().map(|e| e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = refusal {
            drop(desk);
            return self.refuse_request(sender, Some(r.id), Some(who), &why);
        }
        let now = crate::now_ms();
        let mut st = w.stored.clone();
        // an earlier approval under this name that no longer counts is replaced
        st.approvals.retain(|a| a.approver != approver.name);
        st.approvals.push(StoredDecision {
            approver: approver.name.clone(),
            level: approver.level,
            key: approver.key.to_hex(),
            signature: hex::encode(r.signature),
            time_ms: now,
            note: r.note.clone(),
            via: r.via.clone(),
            audited: false,
        });
        let dir = w.sealed.spooled().dir.clone();
        if let Err(e) = st.store(&dir) {
            drop(desk);
            tracing::error!(object = %r.id, error = %e, "cannot store an approval");
            return DecisionAnswer {
                taken: false,
                message: format!("the node cannot store the approval: {e}"),
                approved: counted.len(),
                required: rule.required,
                done: false,
            };
        }
        w.stored = st;
        let counted = w.stored.counted(rule, &w.digest);
        let m = w.sealed.manifest();
        let (channel, name) = (m.channel.clone(), m.name.clone());
        let mut e = Entry::object(&channel, r.id, &name);
        e.size = Some(m.size);
        e.digest = Some(m.digest);
        let mut detail = format!(
            "by {who}; {} of {} approval(s)",
            counted.len(),
            rule.required
        );
        if !r.via.is_empty() {
            detail.push_str(&format!("; via {}", r.via));
        }
        if !r.note.is_empty() {
            detail.push_str(&format!("; note: {:?}", r.note));
        }
        e.detail = Some(detail);
        match sender.node.audit.durable(Event::Approved, e) {
            Ok(_) => {
                if let Some(a) = w
                    .stored
                    .approvals
                    .iter_mut()
                    .find(|a| a.approver == approver.name)
                {
                    a.audited = true;
                }
                if let Err(e) = w.stored.store(&dir) {
                    // the record is written: at the next start it may be written twice
                    tracing::warn!(object = %r.id, error = %e, "cannot mark an approval audited");
                }
            }
            // stored: it counts; its record is written at the next start
            Err(err) => {
                tracing::error!(object = %r.id, error = %err, "an approval was stored but cannot be audited yet");
            }
        }
        let complete = rule.tally(&w.digest, &counted).is_ok_and(|t| t.complete());
        if !complete {
            self.write_view(w, rule);
        }
        drop(desk);
        self.count_decision(sender, &channel, "approve");
        tracing::info!(channel = %channel, object = %r.id, who, approvals = counted.len(), required = rule.required, "approval taken");
        let mut answer = DecisionAnswer {
            taken: true,
            message: format!(
                "approval by {who} taken: {} of {} approval(s)",
                counted.len(),
                rule.required
            ),
            approved: counted.len(),
            required: rule.required,
            done: false,
        };
        if complete {
            let Some(w) = self.lock().remove(&r.id) else {
                return answer;
            };
            let again = w.sealed.clone();
            match self.release(sender, w.sealed, w.stored, Some(counted), None) {
                Ok(sealed) => {
                    let _ = queue.send(sealed);
                    answer.done = true;
                    answer.message.push_str("; released to its link");
                }
                Err(e) => {
                    tracing::error!(object = %r.id, error = %e, "cannot release an approved object; tried again");
                    self.keep_for_retry(again);
                    answer.message.push_str(&format!(
                        "; complete, but the release failed ({e}): it is tried again"
                    ));
                }
            }
        }
        answer
    }

    /// Takes a verified rejection: stored durably in the object's `approvals.json` (so no
    /// restart or fault can undo it), then audited `approval_rejected`, then the object goes
    /// to quarantine ([`Desk::quarantine_rejected`]). A quarantine that fails is tried again
    /// at each check; the object never goes back on the desk.
    fn take_rejection(
        &self,
        sender: &Sender,
        r: &Parsed,
        rule: &Rule,
        approver: &crate::core::approval::Approver,
        who: &str,
    ) -> DecisionAnswer {
        let taken = self.lock().remove(&r.id);
        let Some(mut w) = taken else {
            return self.refuse_request(
                sender,
                Some(r.id),
                Some(who),
                "the object is no longer waiting",
            );
        };
        let counted = w.stored.counted(rule, &w.digest).len();
        let mut st = w.stored.clone();
        st.rejected = Some(StoredDecision {
            approver: approver.name.clone(),
            level: approver.level,
            key: approver.key.to_hex(),
            signature: hex::encode(r.signature),
            time_ms: crate::now_ms(),
            note: r.note.clone(),
            via: r.via.clone(),
            audited: false,
        });
        if let Err(err) = st.store(&w.sealed.spooled().dir) {
            // back on the desk: nothing changed
            tracing::error!(object = %r.id, error = %err, "cannot store a rejection; the object waits");
            self.lock().insert(r.id, w);
            return DecisionAnswer {
                taken: false,
                message: format!("the node cannot store the rejection: {err}"),
                approved: counted,
                required: rule.required,
                done: false,
            };
        }
        w.stored = st.clone();
        let channel = w.sealed.manifest().channel.clone();
        self.count_decision(sender, &channel, "reject");
        let done = match self.quarantine_rejected(sender, w.sealed.clone(), st) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(object = %r.id, error = %e, "cannot quarantine a rejected object; tried again");
                self.keep_for_retry(w.sealed);
                false
            }
        };
        DecisionAnswer {
            taken: true,
            message: if done {
                format!("rejection by {who} taken; the object is quarantined (approval_rejected)")
            } else {
                format!(
                    "rejection by {who} taken and stored; the quarantine failed, it is tried again (the object never goes)"
                )
            },
            approved: counted,
            required: rule.required,
            done,
        }
    }

    /// Sends an object carrying a stored rejection to quarantine (`approval_rejected`):
    /// its `approval_rejected` record first when none is written yet (durable, then marked
    /// in `approvals.json`), then it is taken off the desk, its view removed, and it is
    /// quarantined.
    ///
    /// # Errors
    /// A fault (the record, the state or the quarantine cannot be written): it stays in the
    /// spool, still rejected.
    fn quarantine_rejected(
        &self,
        sender: &Sender,
        sealed: Sealed,
        mut st: Stored,
    ) -> Result<(), Fault> {
        let Some(mut rej) = st.rejected.clone() else {
            return Ok(());
        };
        let m = sealed.manifest();
        let id = m.object_id;
        let who = rej.who();
        let (via, note) = rej.via_note();
        if !rej.audited {
            let mut e = Entry::object(&m.channel, id, &m.name);
            e.size = Some(m.size);
            e.digest = Some(m.digest);
            e.detail = Some(format!("by {who}{via}{note}"));
            sender.node.audit.durable(Event::ApprovalRejected, e)?;
            rej.audited = true;
            st.rejected = Some(rej);
            st.store(&sealed.spooled().dir)?;
        }
        self.lock().remove(&id);
        self.remove_view(id);
        self.approval_gauges(sender);
        let Some(channel) = sender.node.cfg.channel(&m.channel).cloned() else {
            return Err(Fault::UnknownChannel {
                object: id,
                channel: m.channel.clone(),
            });
        };
        let refusal = Refusal::new(Reason::ApprovalRejected, format!("rejected by {who}{note}"));
        sender.refuse(&channel, sealed.spooled(), &refusal)?;
        tracing::warn!(channel = %m.channel, object = %id, who, "rejected; quarantined");
        Ok(())
    }

    /// Keeps an object a fault left off the desk, judged again at the next check.
    fn keep_for_retry(&self, sealed: Sealed) {
        self.retry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(sealed);
    }

    /// Judges again the objects a fault left off the desk; one whose spool entry is gone
    /// (moved to quarantine half-way) is dropped, one that faults again is kept.
    fn judge_again(&self, sender: &Sender, queue: &Queue) {
        let again = std::mem::take(&mut *self.retry.lock().unwrap_or_else(|p| p.into_inner()));
        for sealed in again {
            if !sealed.spooled().content().exists() {
                continue;
            }
            let id = sealed.manifest().object_id;
            match self.gate(sender, sealed.clone()) {
                Ok(Some(s)) => {
                    let _ = queue.send(s);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(object = %id, error = %e, "the approval desk faults again; tried again");
                    self.keep_for_retry(sealed);
                }
            }
        }
    }

    /// Quarantines an object taken off the desk; one that cannot be is kept and judged
    /// again at the next check (back on the desk, where it expires again).
    fn refuse_waiting(&self, sender: &Sender, w: &Waiting, refusal: &Refusal) -> bool {
        let m = w.sealed.manifest();
        let refused = match sender.node.cfg.channel(&m.channel).cloned() {
            Some(channel) => sender.refuse(&channel, w.sealed.spooled(), refusal),
            None => Err(Fault::UnknownChannel {
                object: m.object_id,
                channel: m.channel.clone(),
            }),
        };
        match refused {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(object = %m.object_id, error = %e, "cannot quarantine an object off the approval desk; tried again");
                self.keep_for_retry(w.sealed.clone());
                false
            }
        }
    }

    /// Checks each waiting object with the rule in force: removed → it goes on without;
    /// complete (a lower `required`) → it goes; expired → quarantined (`approval_expired`).
    fn check_pending(&self, sender: &Sender, queue: &Queue) {
        self.judge_again(sender, queue);
        let ids: Vec<ObjectId> = self.lock().keys().copied().collect();
        let mono = crate::mono_ms();
        for id in ids {
            let Some(w) = self.lock().remove(&id) else {
                continue;
            };
            let m = w.sealed.manifest();
            let channel = m.channel.clone();
            let policy = sender.node.policies.get(&channel);
            let Some(rule) = policy.approval.as_ref() else {
                tracing::info!(channel = %channel, object = %id, "the channel's [approval] was removed; the object goes on without approvals");
                let detail = waived_removed(&policy.version, &w.stored);
                let again = w.sealed.clone();
                match self.release(sender, w.sealed, w.stored, None, Some(detail)) {
                    Ok(s) => {
                        let _ = queue.send(s);
                    }
                    Err(e) => {
                        tracing::error!(object = %id, error = %e, "cannot release an object whose [approval] was removed; tried again");
                        self.keep_for_retry(again);
                    }
                }
                continue;
            };
            let counted = w.stored.counted(rule, &w.digest);
            if rule.tally(&w.digest, &counted).is_ok_and(|t| t.complete()) {
                let waived = waived_lowered(&policy.version, rule.required, &w.stored, &counted);
                let again = w.sealed.clone();
                match self.release(sender, w.sealed, w.stored, Some(counted), waived) {
                    Ok(s) => {
                        let _ = queue.send(s);
                    }
                    Err(e) => {
                        tracing::error!(object = %id, error = %e, "cannot release an approved object; tried again");
                        self.keep_for_retry(again);
                    }
                }
                continue;
            }
            let waited = w.waited(mono);
            if waited < rule.expire_ms {
                let mut w = w;
                if w.version != policy.version {
                    // a reload: the view shows the rule in force, the state what it waits for
                    w.version = policy.version.clone();
                    if w.stored.required != rule.required {
                        w.stored.required = rule.required;
                        if let Err(e) = w.stored.store(&w.sealed.spooled().dir) {
                            tracing::warn!(object = %id, error = %e, "cannot store the approvals now required");
                        }
                    }
                    self.write_view(&w, rule);
                }
                self.lock().insert(id, w);
                continue;
            }
            let names: Vec<&str> = counted.iter().map(|a| a.approver.as_str()).collect();
            let detail = format!(
                "waited {}; {} of {} approval(s){}",
                humantime::format_duration(Duration::from_secs(waited / 1000)),
                counted.len(),
                rule.required,
                if names.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", names.join(", "))
                }
            );
            self.remove_view(id);
            self.approval_gauges(sender);
            tracing::warn!(channel = %channel, object = %id, detail = %detail, "approval expired");
            if self.refuse_waiting(sender, &w, &Refusal::new(Reason::ApprovalExpired, detail)) {
                self.count_decision(sender, &channel, "expired");
            }
        }
    }
}

/// Serves a sending node's approval desk until aborted: claims requests every 500 ms,
/// checks expiry and changed rules every 2 s. At start, answers requests a stop
/// interrupted.
pub async fn serve(desk: Arc<Desk>, sender: Arc<Sender>, queue: Queue) {
    {
        let d = desk.clone();
        let _ = tokio::task::spawn_blocking(move || {
            d.clear_refused_note();
            d.answer_interrupted()
        })
        .await;
    }
    for c in sender.node.cfg.file_sending() {
        for d in DECISIONS {
            sender
                .node
                .metrics
                .approval_decisions
                .with_label_values(&[c.name.as_str(), d]);
        }
    }
    desk.approval_gauges(&sender);
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u32;
    let mut said = false;
    loop {
        tick.tick().await;
        n = n.wrapping_add(1);
        // no request is served before the objects of an earlier run are back on the desk
        if !sender.recovered() {
            if !said {
                tracing::info!("approval requests wait until the spool is recovered");
                said = true;
            }
            continue;
        }
        let (d, s, q) = (desk.clone(), sender.clone(), queue.clone());
        let check = n.is_multiple_of(CHECK_EVERY_POLLS);
        let _ = tokio::task::spawn_blocking(move || {
            d.serve_requests(&s, &q);
            if check {
                d.check_pending(&s, &q);
            }
        })
        .await;
    }
}

impl Hold for Desk {
    /// [`Desk::gate`]; a fault keeps the object with the desk, judged again at each check
    /// (never dropped until the next start, never handed back to be sealed again).
    fn hold(&self, sender: &Sender, sealed: Sealed) -> Result<Option<Sealed>, Fault> {
        let id = sealed.manifest().object_id;
        match self.gate(sender, sealed.clone()) {
            Err(e) => {
                tracing::error!(object = %id, error = %e, "the approval desk cannot judge the object; tried again");
                self.keep_for_retry(sealed);
                Ok(None)
            }
            judged => judged,
        }
    }

    fn recovered(&self, spooled: &HashSet<ObjectId>) {
        self.prune(spooled);
    }
}

/// Reads a small file through one descriptor, never following a link: a plain file of at
/// most [`approvals::MAX_FILE_BYTES`].
fn read_capped(path: &Path) -> io::Result<Vec<u8>> {
    let f = crate::fsx::open_nofollow(path)?;
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a plain file",
        ));
    }
    let mut bytes = Vec::new();
    f.take(approvals::MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > approvals::MAX_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("over {} bytes", approvals::MAX_FILE_BYTES),
        ));
    }
    Ok(bytes)
}

/// Writes an answer in a folder others may write: a fresh temporary file (any leftover
/// removed, created exclusively, never through a link), synced, renamed into place.
fn write_answer(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("answer")
    ));
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::approval::{self, Approver};
    use crate::keys::SigningKey;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_seed(&[n; 32]).unwrap()
    }

    fn rule() -> Rule {
        Rule {
            required: 2,
            approvers: (1..=3)
                .map(|i| Approver {
                    name: format!("a{i}"),
                    key: key(i).verify_key(),
                    level: 1,
                })
                .collect(),
            expire_ms: 60_000,
        }
    }

    fn stored(i: u8, d: &[u8; 32]) -> StoredDecision {
        StoredDecision {
            approver: format!("a{i}"),
            level: 1,
            key: key(i).verify_key().to_hex(),
            signature: hex::encode(approval::try_sign(&key(i), Decision::Approve, d).unwrap()),
            time_ms: 5,
            note: "ok".into(),
            via: "cli".into(),
            audited: true,
        }
    }

    #[test]
    fn stored_approvals_round_trip_and_count_under_the_rule_in_force() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Stored::load(dir.path()).unwrap(), None);
        let d = approval::digest(Suite::Default, b"body");
        let st = Stored {
            digest: hex::encode(d),
            pending_since_ms: 1_000,
            announced: true,
            approvals: vec![stored(1, &d), stored(2, &d)],
            required: 2,
            released: false,
            rejected: None,
        };
        st.store(dir.path()).unwrap();
        let back = Stored::load(dir.path()).unwrap().unwrap();
        assert_eq!(back, st);
        let r = rule();
        let counted = back.counted(&r, &d);
        assert_eq!(counted.len(), 2);
        assert!(r.tally(&d, &counted).unwrap().complete());
        // another object's digest: nothing counts
        assert!(
            back.counted(&r, &approval::digest(Suite::Default, b"other"))
                .is_empty()
        );
        // a reload pins another key under a2: a2's approval no longer counts
        let mut changed = r.clone();
        changed.approvers[1].key = key(9).verify_key();
        let counted = back.counted(&changed, &d);
        assert_eq!(counted.len(), 1);
        assert!(!changed.tally(&d, &counted).unwrap().complete());
        // a2 removed from the list: the same
        let mut removed = r.clone();
        removed.approvers.remove(1);
        assert_eq!(back.counted(&removed, &d).len(), 1);
        // twice under one name counts once
        let twice = Stored {
            approvals: vec![stored(1, &d), stored(1, &d)],
            ..st.clone()
        };
        assert_eq!(twice.counted(&r, &d).len(), 1);
        // an approval whose record a stop cut off reads as not audited
        let mut j = serde_json::to_value(&st).unwrap();
        j["approvals"][0].as_object_mut().unwrap().remove("audited");
        let cut: Stored = serde_json::from_value(j).unwrap();
        assert!(!cut.approvals[0].audited && cut.approvals[1].audited);
        // a broken state file is an error, not an empty one
        fs::write(dir.path().join(STORED), b"{").unwrap();
        assert!(Stored::load(dir.path()).is_err());
    }

    #[test]
    fn released_is_stored_and_a_state_of_an_earlier_version_reads_as_not_released() {
        let dir = tempfile::tempdir().unwrap();
        let d = approval::digest(Suite::Default, b"body");
        let st = Stored {
            digest: hex::encode(d),
            pending_since_ms: 1_000,
            announced: true,
            approvals: vec![stored(1, &d), stored(2, &d)],
            required: 2,
            released: true,
            rejected: None,
        };
        st.store(dir.path()).unwrap();
        assert!(Stored::load(dir.path()).unwrap().unwrap().released);
        let mut j = serde_json::to_value(&st).unwrap();
        let o = j.as_object_mut().unwrap();
        o.remove("released");
        o.remove("required");
        let old: Stored = serde_json::from_value(j).unwrap();
        assert!(!old.released);
        assert_eq!(old.required, 0);
    }

    #[test]
    fn the_wait_counts_from_when_it_began_not_from_the_start_of_the_run() {
        let hour = 3_600_000;
        // began 2 h ago (wall time) with 72 h to wait: 2 h waited already
        assert_eq!(waited_before(10 * hour, 8 * hour, 72 * hour), 2 * hour);
        // never more than the whole wait (a clock set forward)...
        assert_eq!(waited_before(100 * hour, hour, 72 * hour), 72 * hour);
        // ...nor less than nothing (a clock set back)
        assert_eq!(waited_before(hour, 8 * hour, 72 * hour), 0);
    }

    #[test]
    fn a_waiver_says_what_the_policy_requires_and_what_the_object_had() {
        let d = approval::digest(Suite::Default, b"body");
        let st = Stored {
            digest: hex::encode(d),
            pending_since_ms: 1_000,
            announced: true,
            approvals: vec![stored(1, &d)],
            required: 2,
            released: false,
            rejected: None,
        };
        assert_eq!(
            waived_removed("abc123", &st),
            "[approval] removed from policy abc123; it had 1 of 2"
        );
        let mut lower = rule();
        lower.required = 1;
        let counted = st.counted(&lower, &d);
        assert_eq!(
            waived_lowered("abc123", 1, &st, &counted).as_deref(),
            Some("policy abc123 requires 1 (it waited for 2); approved by a1")
        );
        // complete under what it waited for: no waiver
        let full = Stored {
            approvals: vec![stored(1, &d), stored(2, &d)],
            ..st.clone()
        };
        assert_eq!(
            waived_lowered("abc123", 2, &full, &full.counted(&rule(), &d)),
            None
        );
    }

    #[test]
    fn at_start_views_of_objects_still_spooled_stay_and_others_go() {
        let dir = tempfile::tempdir().unwrap();
        let desk = Desk::open(dir.path()).unwrap();
        let (kept, gone) = (ObjectId([1; 16]), ObjectId([2; 16]));
        for id in [kept, gone] {
            fs::write(desk.view_path(id), b"{}").unwrap();
        }
        fs::write(desk.views.join("junk.json"), b"{}").unwrap();
        desk.prune(&HashSet::from([kept]));
        assert!(desk.view_path(kept).exists());
        assert!(!desk.view_path(gone).exists());
        assert!(!desk.views.join("junk.json").exists());
        assert!(desk.left.lock().unwrap().contains(&kept));
        // the request folder: the node's (0700) is served; world-writable or a link is not
        assert_eq!(desk.closed(), None);
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&desk.requests, fs::Permissions::from_mode(0o3770)).unwrap();
        assert_eq!(
            desk.closed(),
            None,
            "the approvers' group may write it, sticky"
        );
        // group-writable without the sticky bit: one approver could remove another's request
        for mode in [0o2770, 0o0770] {
            fs::set_permissions(&desk.requests, fs::Permissions::from_mode(mode)).unwrap();
            let why = desk.closed().unwrap();
            assert!(
                why.contains("group-writable without the sticky bit"),
                "{why}"
            );
            assert!(why.contains("make it 3770"), "{why}");
        }
        // group-readable only (no write): served
        fs::set_permissions(&desk.requests, fs::Permissions::from_mode(0o2750)).unwrap();
        assert_eq!(desk.closed(), None);
        fs::set_permissions(&desk.requests, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(desk.closed().unwrap().contains("world-writable"));
        fs::remove_dir(&desk.requests).unwrap();
        std::os::unix::fs::symlink(dir.path(), &desk.requests).unwrap();
        assert!(desk.closed().unwrap().contains("not a directory"));
    }

    #[test]
    fn requests_are_parsed_strictly() {
        let d = approval::digest(Suite::Default, b"body");
        let sig = approval::try_sign(&key(1), Decision::Approve, &d).unwrap();
        let good = serde_json::json!({
            "id": "ab".repeat(16),
            "decision": "approve",
            "digest": hex::encode(d),
            "key": key(1).verify_key().to_hex(),
            "signature": hex::encode(sig),
            "note": "fine\u{202e}\u{0007}\nline two",
            "via": "cli",
        });
        let p = parse_request(good.to_string().as_bytes()).unwrap();
        assert_eq!(p.decision, Decision::Approve);
        assert_eq!(p.digest, d);
        assert_eq!(p.signature, sig);
        assert_eq!(p.note, "fine\u{202e}\nline two");
        assert!(!p.note.contains('\u{0007}'));
        let with = |k: &str, v: serde_json::Value| {
            let mut j = good.clone();
            j[k] = v;
            parse_request(j.to_string().as_bytes())
        };
        assert!(with("decision", "maybe".into()).is_err());
        assert!(with("digest", "00".into()).is_err());
        assert!(with("key", "zz".repeat(32).into()).is_err());
        assert!(with("signature", "00".repeat(63).into()).is_err());
        assert!(matches!(with("id", "../x".into()), Err((None, _))));
        assert!(with("extra", 1.into()).is_err(), "unknown fields refused");
        assert!(parse_request(b"not json").is_err());
        let long = with("note", "长".repeat(2 * MAX_NOTE).into()).unwrap();
        assert_eq!(long.note.chars().count(), MAX_NOTE);
    }

    /// A sending node of a fresh lab (port base `port`), its desk and a queue.
    fn lab_desk(
        port: u16,
    ) -> (
        tempfile::TempDir,
        Arc<Sender>,
        Desk,
        tokio::sync::mpsc::UnboundedReceiver<Sealed>,
        Queue,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, port, None).unwrap();
        let cfg = crate::node::config::Config::load(&lab.join("court.toml")).unwrap();
        let state = cfg.node.state_dir.clone();
        let node = Arc::new(crate::node::Node::open(cfg).unwrap());
        let sender = Arc::new(Sender::open(node).unwrap());
        let desk = Desk::open(&state).unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (dir, sender, desk, rx, tx)
    }

    fn answer_of(desk: &Desk, n: &str) -> DecisionAnswer {
        let out = desk.requests.join(format!("{n}.out"));
        serde_json::from_slice(&fs::read(out).unwrap()).unwrap()
    }

    /// A sending node of a fresh lab (port base `port`) whose channel `to-internet` needs
    /// `required` approvals of a1..a3 (level 1), with its desk as the pipeline's holder.
    fn approval_lab(port: u16, required: usize) -> (tempfile::TempDir, Arc<Sender>, Arc<Desk>) {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, port, None).unwrap();
        set_required(&lab, required);
        let (sender, desk) = open_node(&lab);
        (dir, sender, desk)
    }

    /// Writes `[approval]` with `required` of a1..a3 into the lab's outbound policy.
    fn set_required(lab: &Path, required: usize) {
        let policy = lab.join("policy/to-internet.toml");
        let mut t = crate::cli::init::POLICY_TO_INTERNET.to_string();
        t.push_str(&format!(
            "\n[approval]\nrequired = {required}\nexpire_after = \"72h\"\napprovers = [\n"
        ));
        for i in 1..=3u8 {
            t.push_str(&format!(
                "  {{ name = \"a{i}\", key = \"{}\" }},\n",
                key(i).verify_key().to_hex()
            ));
        }
        t.push_str("]\n");
        fs::write(policy, t).unwrap();
    }

    /// The lab's sending node (as at a start) and its desk, set as the pipeline's holder.
    fn open_node(lab: &Path) -> (Arc<Sender>, Arc<Desk>) {
        let cfg = crate::node::config::Config::load(&lab.join("court.toml")).unwrap();
        let state = cfg.node.state_dir.clone();
        let node = Arc::new(crate::node::Node::open(cfg).unwrap());
        let sender = Arc::new(Sender::open(node).unwrap());
        let desk = Arc::new(Desk::open(&state).unwrap());
        assert!(sender.set_hold(desk.clone()));
        (sender, desk)
    }

    /// Takes a text file through the pipeline; it waits on the desk. Its sealed object.
    fn publish_waiting(sender: &Sender, desk: &Desk, name: &str) -> Sealed {
        let outbox = sender
            .node
            .cfg
            .channel("to-internet")
            .unwrap()
            .outbox
            .clone();
        fs::create_dir_all(&outbox).unwrap();
        fs::write(outbox.join(name), "公告正文\n").unwrap();
        let spooled = sender
            .spool
            .take(
                "to-internet",
                &outbox,
                std::ffi::OsStr::new(name),
                name,
                None,
                None,
            )
            .unwrap()
            .unwrap()
            .spooled;
        assert!(
            sender.pipeline(spooled.clone()).unwrap().is_none(),
            "it waits"
        );
        desk.lock()
            .get(&spooled.id)
            .expect("on the desk")
            .sealed
            .clone()
    }

    /// Hands a signed decision to the desk and serves it.
    fn decide(
        sender: &Sender,
        desk: &Desk,
        queue: &Queue,
        sealed: &Sealed,
        i: u8,
        d: Decision,
    ) -> DecisionAnswer {
        let digest = digest_of(sealed, Suite::Default).unwrap();
        let req = serde_json::json!({
            "id": sealed.manifest().object_id.to_string(),
            "decision": if d == Decision::Approve { "approve" } else { "reject" },
            "digest": hex::encode(digest),
            "key": key(i).verify_key().to_hex(),
            "signature": hex::encode(approval::try_sign(&key(i), d, &digest).unwrap()),
            "note": "",
            "via": "cli",
        });
        let n = format!("{}-{i}", crate::now_ms());
        fs::write(desk.requests.join(format!("{n}.req")), req.to_string()).unwrap();
        desk.serve_requests(sender, queue);
        answer_of(desk, &n)
    }

    fn records(sender: &Sender, event: Event) -> Vec<crate::audit::Record> {
        crate::audit::read_all(&sender.node.cfg.node.audit_dir)
            .unwrap()
            .into_iter()
            .filter(|r| r.event == event)
            .collect()
    }

    #[test]
    fn a_stored_rejection_is_never_undone_the_gate_quarantines_it_and_writes_its_record() {
        let (dir, sender, desk) = approval_lab(25750, 2);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let sealed = publish_waiting(&sender, &desk, "a.txt");
        let spooled = sealed.spooled().clone();
        // a1 approved; a2's rejection was stored, and a stop (kill -9) cut off its record
        // and the quarantine
        assert!(decide(&sender, &desk, &tx, &sealed, 1, Decision::Approve).taken);
        let mut st = Stored::load(&spooled.dir).unwrap().unwrap();
        let digest = digest_of(&sealed, Suite::Default).unwrap();
        st.rejected = Some(StoredDecision {
            approver: "a2".into(),
            level: 1,
            key: key(2).verify_key().to_hex(),
            signature: hex::encode(approval::try_sign(&key(2), Decision::Reject, &digest).unwrap()),
            time_ms: 7,
            note: "no".into(),
            via: "cli".into(),
            audited: false,
        });
        st.store(&spooled.dir).unwrap();
        assert_eq!(
            Stored::load(&spooled.dir).unwrap().unwrap(),
            st,
            "kept as stored"
        );
        // the next start: judged again, it goes to quarantine, never back on the desk
        let lab = dir.path().join("lab");
        drop((sender, desk));
        let (sender, desk) = open_node(&lab);
        desk.prune(&HashSet::from([spooled.id]));
        assert!(desk.gate(&sender, sealed.clone()).unwrap().is_none());
        assert!(desk.lock().is_empty(), "not pending again");
        assert!(!spooled.dir.exists(), "out of the spool");
        let rejected = records(&sender, Event::ApprovalRejected);
        assert_eq!(rejected.len(), 1, "its record, written once");
        let detail = rejected[0].detail.clone().unwrap();
        assert!(detail.starts_with("by a2 (level 1, key "), "{detail}");
        assert!(
            detail.contains("via cli") && detail.contains("\"no\""),
            "{detail}"
        );
        let refused = records(&sender, Event::Refused);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].reason, Some(Reason::ApprovalRejected));
        // a further approval changes nothing: it is not waiting
        let late = decide(&sender, &desk, &tx, &sealed, 3, Decision::Approve);
        assert!(!late.taken, "{late:?}");
        assert!(rx.try_recv().is_err(), "nothing goes to the link");
        assert_eq!(approval::Decision::Reject, Decision::Reject);
    }

    #[test]
    fn a_rejection_is_stored_before_its_record_and_the_object_only_goes_to_quarantine() {
        let (_dir, sender, desk) = approval_lab(25755, 2);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let sealed = publish_waiting(&sender, &desk, "b.txt");
        let dir = sealed.spooled().dir.clone();
        // the quarantine cannot be written: the rejection stands all the same
        let q = sender
            .node
            .cfg
            .channel("to-internet")
            .unwrap()
            .quarantine
            .clone();
        fs::create_dir_all(q.parent().unwrap()).unwrap();
        let _ = fs::remove_dir_all(&q);
        fs::write(&q, b"not a folder").unwrap();
        let a = decide(&sender, &desk, &tx, &sealed, 2, Decision::Reject);
        assert!(a.taken && !a.done, "{a:?}");
        let st = Stored::load(&dir).unwrap().unwrap();
        let rej = st.rejected.expect("stored");
        assert_eq!((rej.approver.as_str(), rej.audited), ("a2", true));
        assert_eq!(records(&sender, Event::ApprovalRejected).len(), 1);
        // not on the desk: approvals are refused, and it is tried again, never released
        assert!(desk.lock().is_empty());
        assert!(!decide(&sender, &desk, &tx, &sealed, 1, Decision::Approve).taken);
        assert!(!decide(&sender, &desk, &tx, &sealed, 3, Decision::Approve).taken);
        desk.check_pending(&sender, &tx);
        assert!(dir.exists() && desk.lock().is_empty());
        assert!(rx.try_recv().is_err());
        // once the quarantine can be written, it goes there (one record only)
        fs::remove_file(&q).unwrap();
        desk.check_pending(&sender, &tx);
        assert!(!dir.exists(), "quarantined");
        assert!(rx.try_recv().is_err());
        assert_eq!(records(&sender, Event::ApprovalRejected).len(), 1);
        assert_eq!(records(&sender, Event::Refused).len(), 1);
    }

    #[test]
    fn a_fault_of_the_gate_keeps_the_object_and_it_is_judged_again() {
        let (_dir, sender, desk) = approval_lab(25760, 1);
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let sealed = publish_waiting(&sender, &desk, "c.txt");
        let id = sealed.manifest().object_id;
        let dir = sealed.spooled().dir.clone();
        let good = fs::read(dir.join(STORED)).unwrap();
        desk.lock().clear();
        // the state cannot be read: the gate faults, the desk keeps the object
        fs::write(dir.join(STORED), b"{").unwrap();
        assert!(sender.hold(sealed.clone()).unwrap().is_none());
        assert_eq!(desk.retry.lock().unwrap().len(), 1);
        desk.check_pending(&sender, &tx);
        assert_eq!(desk.retry.lock().unwrap().len(), 1, "kept while it faults");
        // once it can be read again, it is back on the desk, with its view
        fs::write(dir.join(STORED), &good).unwrap();
        desk.check_pending(&sender, &tx);
        assert!(desk.retry.lock().unwrap().is_empty());
        assert!(desk.lock().contains_key(&id));
        assert!(desk.view_path(id).exists());
    }

    #[test]
    fn an_object_sent_again_whose_approvals_no_longer_suffice_begins_a_new_wait() {
        let (dir, sender, desk) = approval_lab(25765, 1);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let sealed = publish_waiting(&sender, &desk, "d.txt");
        let entry = sealed.spooled().dir.clone();
        let id = sealed.manifest().object_id;
        let a = decide(&sender, &desk, &tx, &sealed, 1, Decision::Approve);
        assert!(a.done, "{a:?}");
        let released = rx.try_recv().unwrap();
        // sent again under the same rule: it goes
        assert!(desk.gate(&sender, released.clone()).unwrap().is_some());
        // a restart under a rule that needs two
        let lab = dir.path().join("lab");
        drop((sender, desk));
        set_required(&lab, 2);
        let (sender, desk) = open_node(&lab);
        desk.prune(&HashSet::from([id]));
        // at start a released object goes on as it went
        assert!(desk.gate(&sender, released.clone()).unwrap().is_some());
        let before = crate::now_ms();
        // sent again by its link: a new wait, announced again, counted from now
        assert!(desk.gate(&sender, released.clone()).unwrap().is_none());
        let st = Stored::load(&entry).unwrap().unwrap();
        assert!(!st.released && st.announced);
        assert!(
            st.pending_since_ms >= before,
            "{} < {before}",
            st.pending_since_ms
        );
        assert_eq!(st.required, 2);
        assert_eq!(records(&sender, Event::ApprovalPending).len(), 2);
        desk.check_pending(&sender, &tx);
        assert!(desk.lock().contains_key(&id), "not expired at once");
        // a second approver releases it again
        assert!(decide(&sender, &desk, &tx, &released, 2, Decision::Approve).done);
    }

    #[test]
    fn refused_requests_are_recorded_short_and_at_most_sixteen_a_minute() {
        let (_dir, sender, desk, _rx, queue) = lab_desk(25780);
        for n in 0..20 {
            let junk = format!("{{\"{}\\u202e\\u0007\": 2, \"id\": 1}}", "x".repeat(5000));
            fs::write(desk.requests.join(format!("{n:02}.req")), junk).unwrap();
        }
        desk.serve_requests(&sender, &queue);
        desk.serve_requests(&sender, &queue);
        // every writer gets an answer
        for n in 0..20 {
            assert!(!answer_of(&desk, &format!("{n:02}")).taken);
        }
        let recs = records(&sender, Event::ApprovalRequestRefused);
        assert_eq!(
            recs.len(),
            16,
            "one record each for the first 16 of a minute"
        );
        for r in &recs {
            let d = r.detail.as_deref().unwrap();
            assert!(d.chars().count() <= 200, "{}", d.len());
            assert!(
                !d.chars().any(|c| c.is_control() || c == '\u{202e}'),
                "{d:?}"
            );
        }
        let quoted = refused_detail("a\u{202e}b\u{0007}c");
        assert_eq!(quoted, "a\\u{202e}b\\u{7}c");
        // the rest are counted into one summary once the minute is over
        let mut w = RefusedWindow::default();
        assert_eq!(w.due(1_000), None);
        for _ in 0..REFUSED_RECORDS_PER_MINUTE {
            assert!(w.note());
        }
        for _ in 0..5 {
            assert!(!w.note());
        }
        assert_eq!(w.due(REFUSED_WINDOW_MS - 1), None, "the minute goes on");
        assert_eq!(w.due(REFUSED_WINDOW_MS), Some(5));
        assert!(w.note(), "a new minute records again");
        assert_eq!(w.due(3 * REFUSED_WINDOW_MS), None, "nothing kept quiet");
    }

    #[test]
    fn links_and_folders_named_as_requests_are_refused_counted_and_cleared() {
        let (dir, sender, desk, _rx, queue) = lab_desk(25770);
        let target = dir.path().join("elsewhere.json");
        fs::write(&target, b"{}").unwrap();
        std::os::unix::fs::symlink(&target, desk.requests.join("a.req")).unwrap();
        fs::create_dir(desk.requests.join("b.req")).unwrap();
        fs::create_dir(desk.requests.join("c.req")).unwrap();
        fs::write(desk.requests.join("c.req/inside"), b"x").unwrap();
        desk.serve_requests(&sender, &queue);
        let a = answer_of(&desk, "a");
        assert!(
            !a.taken && a.message == "the request is a symbolic link; refused",
            "{a:?}"
        );
        let b = answer_of(&desk, "b");
        assert!(!b.taken && b.message.contains("not a plain file"), "{b:?}");
        assert!(answer_of(&desk, "c").message.contains("not a plain file"));
        // nothing claimed is left behind (a non-empty folder is set aside)
        for n in ["a", "b", "c"] {
            assert!(!desk.requests.join(format!("{n}.taken")).exists(), "{n}");
            assert!(!desk.requests.join(format!("{n}.req")).exists(), "{n}");
        }
        assert!(desk.requests.join("c.refused").is_dir());
        assert_eq!(fs::read(&target).unwrap(), b"{}");
        // each counts as refused, under no channel
        let refused = sender
            .node
            .metrics
            .approval_decisions
            .with_label_values(&["", "refused"])
            .get();
        assert_eq!(refused, 3);
        // each is audited
        let n = crate::audit::read_all(&sender.node.cfg.node.audit_dir)
            .unwrap()
            .iter()
            .filter(|r| r.event == Event::ApprovalRequestRefused)
            .count();
        assert_eq!(n, 3);
    }

    #[test]
    fn an_unsafe_request_folder_is_said_where_the_commands_read() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, sender, desk, _rx, queue) = lab_desk(25775);
        let state = sender.node.cfg.node.state_dir.clone();
        fs::set_permissions(&desk.requests, fs::Permissions::from_mode(0o777)).unwrap();
        desk.serve_requests(&sender, &queue);
        let why = approvals::requests_refused(&state).expect("said");
        assert!(why.contains("world-writable"), "{why}");
        fs::set_permissions(&desk.requests, fs::Permissions::from_mode(0o700)).unwrap();
        desk.serve_requests(&sender, &queue);
        assert_eq!(approvals::requests_refused(&state), None);
    }

    #[test]
    fn the_desks_folders_and_the_spool_are_never_open_to_all() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // made open to all by an earlier version, or by hand
        for d in [PENDING_DIR, REQUESTS_DIR, "spool"] {
            fs::create_dir(dir.path().join(d)).unwrap();
            fs::set_permissions(dir.path().join(d), fs::Permissions::from_mode(0o2777)).unwrap();
        }
        let _desk = Desk::open(dir.path()).unwrap();
        let _spool = crate::sender::spool::Spool::open(dir.path()).unwrap();
        for d in [PENDING_DIR, REQUESTS_DIR, "spool", "seq"] {
            let mode = fs::metadata(dir.path().join(d))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o007, 0, "{d}: {mode:o}");
        }
        // the group an administrator gave stays
        let mode = fs::metadata(dir.path().join(REQUESTS_DIR))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7770, 0o2770);
    }

    #[test]
    fn requests_are_read_capped_and_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.req");
        fs::write(&big, vec![b' '; approvals::MAX_FILE_BYTES as usize + 1]).unwrap();
        assert!(read_capped(&big).is_err());
        let target = dir.path().join("target");
        fs::write(&target, b"{}").unwrap();
        let link = dir.path().join("link.req");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(read_capped(&link).is_err());
        assert_eq!(read_capped(&target).unwrap(), b"{}");
        // an answer never goes through a link planted at its temporary name
        let out = dir.path().join("n.out");
        std::os::unix::fs::symlink(&target, dir.path().join(".n.out.tmp")).unwrap();
        write_answer(&out, b"answer").unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"answer");
        assert_eq!(fs::read(&target).unwrap(), b"{}");
    }
}
