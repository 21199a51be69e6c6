//! The approval desk's files: what a running node says of the objects waiting for approval,
//! and how an approver's signed decision reaches it. Shared by the node (which serves
//! decisions and is the audit log's one writer), `isogate approve|reject` and the web
//! console.
//!
//! ```text
//! node (sender) ─writes─► state/approvals/<object id>.json     PendingView: what waits, the
//!                          │                                     digest to sign, who signed
//! isogate approve|reject ──┤ reads it, signs approval::message(decision, digest) with the
//! web console (browser) ───┘ approver's own key (never the node's)
//!        ─submit─► state/approval-requests/<n>.req  DecisionRequest (signature, key, note)
//! node, every 500 ms ─claim─► <n>.taken ─► verify against the channel's pinned approvers,
//!        take or refuse (audited) ─► <n>.out  DecisionAnswer ─► <n>.taken removed
//! ```
//!
//! The signature, not the request file's owner, says who decided: a request whose
//! signature does not verify with a pinned approver's key changes nothing (audited as
//! `approval_request_refused`).
//! The other way, the owner does count: an answer (`<n>.out`) is believed only when its
//! file is owned by root or by the request folder's owner (the node's user), since
//! officers may write that folder. The folder should be sticky (mode 3770 or 1770), so that
//! officers cannot remove or rename each other's requests.

use crate::core::approval::Decision;
use crate::core::id::ObjectId;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Folder, under the state directory, of the objects waiting for approval.
pub const PENDING_DIR: &str = "approvals";
/// Folder, under the state directory, of approvers' decisions on their way to the node.
pub const REQUESTS_DIR: &str = "approval-requests";
/// Largest request or pending file read (bytes).
pub const MAX_FILE_BYTES: u64 = 64 * 1024;
/// Longest note kept with a decision (characters).
pub const MAX_NOTE: usize = 500;
/// File, in [`PENDING_DIR`], where the node says why it refuses to serve its request
/// folder (one line); absent while it serves it.
pub const REQUESTS_REFUSED: &str = "requests-refused";

/// One approval already taken, as the pending view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    /// The approver's name in the channel's pinned list.
    pub approver: String,
    /// Their level.
    pub level: u8,
    /// When the node took it, ms since the Unix epoch.
    pub time_ms: u64,
    /// The approver's note.
    #[serde(default)]
    pub note: String,
}

/// An object waiting for approval, as the node describes it in
/// `state/approvals/<id>.json` (written atomically, mode 0640).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingView {
    /// Object id (32 hex digits).
    pub id: String,
    /// Channel.
    pub channel: String,
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, hex (a pair of the `default` suite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// SM3 of the content, hex (a `gm` pair, in place of `sha256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sm3: Option<String>,
    /// Content type the inspection decided.
    pub content_type: String,
    /// Hash of the signed manifest body (SHA-256, or SM3 on a `gm` pair), hex: what approvers sign
    /// (`core::approval::message`).
    pub digest: String,
    /// When it began to wait, ms since the Unix epoch.
    pub pending_since_ms: u64,
    /// When it expires (then it is quarantined as `approval_expired`), ms since the epoch.
    pub expires_ms: u64,
    /// Distinct approvals required.
    pub required: usize,
    /// The approvals taken so far.
    pub approvals: Vec<Signed>,
    /// Levels with no approval yet, lowest first (empty when levels are not used).
    #[serde(default)]
    pub levels_missing: Vec<u8>,
    /// The approvers pinned for the object by the policy in force (the node rewrites the
    /// view when a policy is reloaded): the commands check a key against these, never
    /// against the policy file on disk. Empty in a view of an earlier version.
    #[serde(default)]
    pub approvers: Vec<Pinned>,
    /// The version of the channel policy in force (`Policy::version`, 12 hex digits).
    #[serde(default)]
    pub policy_version: String,
}

impl PendingView {
    /// The content's hash, hex, whichever the pair's suite names.
    pub fn content_hash(&self) -> &str {
        self.sha256.as_deref().or(self.sm3.as_deref()).unwrap_or("")
    }
}

/// An approver pinned by the rule in force, as the pending view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinned {
    /// The approver's name.
    pub name: String,
    /// Their level (1 when levels are not used).
    pub level: u8,
    /// Their public key: Ed25519's 64 hex digits, or SM2's 130.
    pub key: String,
}

/// An approver's decision, as `isogate approve|reject` and the console hand it to the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRequest {
    /// Object id (32 hex digits).
    pub id: String,
    /// `approve` or `reject` ([`Decision::as_str`]).
    pub decision: String,
    /// The digest signed, hex (must be the object's current one).
    pub digest: String,
    /// The approver's public key: Ed25519's 64 hex digits, or SM2's 130.
    pub key: String,
    /// Ed25519 signature over `approval::message(decision, digest)`, 128 hex digits.
    pub signature: String,
    /// The approver's note (cut to [`MAX_NOTE`] characters by the node).
    #[serde(default)]
    pub note: String,
    /// Where it came from: `cli` or `console` (with the console user, `console:USER`), as
    /// whoever wrote the request file says: NOT authenticated (anyone who may write the
    /// folder may write any text here); only the signature says who decided. Kept in the
    /// audit detail as a hint.
    #[serde(default)]
    pub via: String,
}

impl DecisionRequest {
    /// The decision, if it names one.
    pub fn decision(&self) -> Option<Decision> {
        Decision::parse(&self.decision)
    }
}

/// The node's answer to a decision (`<n>.out`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionAnswer {
    /// Whether the decision was taken.
    pub taken: bool,
    /// What happened, in one sentence (why not, when not taken).
    pub message: String,
    /// Approvals the object has now.
    pub approved: usize,
    /// Approvals it needs.
    pub required: usize,
    /// Whether the object left the approval desk: released to its link, or rejected.
    pub done: bool,
}

/// The pending view of one object, if it waits.
///
/// # Errors
/// The file exists but cannot be read or parsed.
pub fn read(state_dir: &Path, id: &str) -> io::Result<Option<PendingView>> {
    if ObjectId::parse(id).is_none() {
        return Ok(None);
    }
    let path = state_dir.join(PENDING_DIR).join(format!("{id}.json"));
    match read_capped(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every object waiting for approval, oldest first. Unreadable files are skipped.
///
/// # Errors
/// The folder exists but cannot be listed.
pub fn list(state_dir: &Path) -> io::Result<Vec<PendingView>> {
    let dir = state_dir.join(PENDING_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out: Vec<PendingView> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| read_capped(&p).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    out.sort_by(|a, b| (a.pending_since_ms, &a.id).cmp(&(b.pending_since_ms, &b.id)));
    Ok(out)
}

/// Why the running node refuses to serve its request folder (not a directory, owned by
/// another user, world-writable), as it wrote it; `None` while it serves it (or says
/// nothing).
pub fn requests_refused(state_dir: &Path) -> Option<String> {
    let bytes = read_capped(&state_dir.join(PENDING_DIR).join(REQUESTS_REFUSED)).ok()?;
    let why: String = String::from_utf8_lossy(&bytes)
        .chars()
        .filter(|c| !c.is_control())
        .take(500)
        .collect();
    Some(why)
}

/// Hands a decision to the running node; returns the request file (`<n>.req`).
///
/// # Errors
/// The request folder is missing (the node makes it at start) or cannot be written.
pub fn submit(state_dir: &Path, request: &DecisionRequest) -> io::Result<PathBuf> {
    let dir = state_dir.join(REQUESTS_DIR);
    if !dir.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{}: no approval request folder (the running node makes it at start)",
                dir.display()
            ),
        ));
    }
    let name = format!(
        "{:016}-{}",
        crate::now_ms(),
        ObjectId::random().map_err(io::Error::other)?
    );
    let body = serde_json::to_vec(request).map_err(io::Error::other)?;
    let path = dir.join(format!("{name}.req"));
    crate::fsx::write_durable_mode(&path, &body, 0o644)?;
    Ok(path)
}

/// Waits up to `timeout` for the node's answer to a submitted request. `Ok(None)`: no
/// answer yet (the node is not running, or busy).
///
/// Only the node writes answers: an answer file is read through one descriptor, never
/// following a link, and accepted only when that descriptor's owner is root or the owner
/// of the request folder (the node's user, [`trusted_answer`]). One written by anyone else
/// (an officer who may write the folder) is left alone and the wait goes on.
///
/// # Errors
/// A trusted answer cannot be parsed; or only an untrusted answer came: another owner, a
/// link, not a plain file, too big (`PermissionDenied`, saying which).
pub fn await_answer(request: &Path, timeout: Duration) -> io::Result<Option<DecisionAnswer>> {
    use std::os::unix::fs::MetadataExt;
    let out = request.with_extension("out");
    let folder = request
        .parent()
        .map(fs::metadata)
        .transpose()?
        .map(|m| m.uid());
    let start = std::time::Instant::now();
    let mut untrusted = None;
    loop {
        match read_owned(&out) {
            Ok((uid, bytes)) if folder.is_some_and(|f| trusted_answer(uid, f)) => {
                let a = serde_json::from_slice(&bytes)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                let _ = fs::remove_file(&out);
                return Ok(Some(a));
            }
            Ok((uid, _)) => {
                untrusted = Some(format!(
                    "it is owned by uid {uid}, neither root nor the node's user (the owner of the request folder)"
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // a link, not a plain file, too big: not the node's answer either
            Err(e) => untrusted = Some(e.to_string()),
        }
        if start.elapsed() >= timeout {
            return match untrusted {
                Some(why) => Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("{}: the answer could not be trusted: {why}", out.display()),
                )),
                None => Ok(None),
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether an answer file owned by `uid` may be believed: only root or the request folder's
/// owner (`folder_uid`, the node's user) write answers.
pub fn trusted_answer(uid: u32, folder_uid: u32) -> bool {
    uid == 0 || uid == folder_uid
}

/// Like [`read_capped`], with the owner of the opened descriptor (what is read is what was
/// checked, whatever is renamed in meanwhile).
fn read_owned(path: &Path) -> io::Result<(u32, Vec<u8>)> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let f = crate::fsx::open_nofollow(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a plain file", path.display()),
        ));
    }
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: over {MAX_FILE_BYTES} bytes", path.display()),
        ));
    }
    Ok((meta.uid(), bytes))
}

/// Reads a small file through one descriptor, never following a link, at most
/// [`MAX_FILE_BYTES`].
fn read_capped(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let f = crate::fsx::open_nofollow(path)?;
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: over {MAX_FILE_BYTES} bytes", path.display()),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_list_oldest_first_and_requests_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let pending = dir.path().join(PENDING_DIR);
        fs::create_dir_all(&pending).unwrap();
        for (id, since) in [("0".repeat(32), 20), ("1".repeat(32), 10)] {
            let v = PendingView {
                id: id.clone(),
                channel: "to-internet".into(),
                name: "判决书.pdf".into(),
                size: 3,
                sha256: Some("00".repeat(32)),
                sm3: None,
                content_type: "pdf".into(),
                digest: "11".repeat(32),
                pending_since_ms: since,
                expires_ms: since + 1000,
                required: 2,
                approvals: vec![],
                levels_missing: vec![],
                approvers: vec![Pinned {
                    name: "zhang".into(),
                    level: 1,
                    key: "22".repeat(32),
                }],
                policy_version: "abc123abc123".into(),
            };
            fs::write(
                pending.join(format!("{id}.json")),
                serde_json::to_vec(&v).unwrap(),
            )
            .unwrap();
        }
        fs::write(pending.join("junk.json"), b"not json").unwrap();
        let l = list(dir.path()).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].id, "1".repeat(32));
        assert!(read(dir.path(), &"0".repeat(32)).unwrap().is_some());
        assert!(read(dir.path(), "../../etc/passwd").unwrap().is_none());
        let req = DecisionRequest {
            id: "0".repeat(32),
            decision: "approve".into(),
            digest: "11".repeat(32),
            key: "22".repeat(32),
            signature: "33".repeat(64),
            note: String::new(),
            via: "cli".into(),
        };
        assert!(
            submit(dir.path(), &req).is_err(),
            "no folder: the node makes it"
        );
        fs::create_dir_all(dir.path().join(REQUESTS_DIR)).unwrap();
        let p = submit(dir.path(), &req).unwrap();
        let back: DecisionRequest = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        assert_eq!(back, req);
        assert_eq!(back.decision(), Some(Decision::Approve));
        assert!(
            await_answer(&p, Duration::from_millis(1))
                .unwrap()
                .is_none()
        );
    }

    fn answer() -> DecisionAnswer {
        DecisionAnswer {
            taken: true,
            message: "approved".into(),
            approved: 1,
            required: 1,
            done: true,
        }
    }

    #[test]
    fn only_an_answer_owned_by_root_or_the_folder_owner_is_believed() {
        assert!(trusted_answer(0, 1000));
        assert!(trusted_answer(1000, 1000));
        assert!(!trusted_answer(1001, 1000));
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join(REQUESTS_DIR);
        fs::create_dir_all(&folder).unwrap();
        let req = folder.join("1.req");
        fs::write(&req, b"{}").unwrap();
        let out = req.with_extension("out");
        fs::write(&out, serde_json::to_vec(&answer()).unwrap()).unwrap();
        // written by the folder's owner (this test's user): believed, and removed
        assert_eq!(
            await_answer(&req, Duration::from_millis(1)).unwrap(),
            Some(answer())
        );
        assert!(!out.exists());
        // a link to an answer is never followed
        let elsewhere = dir.path().join("forged.out");
        fs::write(&elsewhere, serde_json::to_vec(&answer()).unwrap()).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &out).unwrap();
        let e = await_answer(&req, Duration::from_millis(1)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        fs::remove_file(&out).unwrap();
        // written by someone else (root can make it so): never believed
        if rustix::process::geteuid().is_root() {
            use std::os::unix::fs::chown;
            chown(&folder, Some(4242), None).unwrap();
            fs::write(&out, serde_json::to_vec(&answer()).unwrap()).unwrap();
            chown(&out, Some(4343), None).unwrap();
            let e = await_answer(&req, Duration::from_millis(250)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
            assert!(e.to_string().contains("could not be trusted"), "{e}");
            assert!(out.exists(), "left alone");
            // the node's own answer (the folder's owner) is believed
            chown(&out, Some(4242), None).unwrap();
            assert_eq!(
                await_answer(&req, Duration::from_millis(1)).unwrap(),
                Some(answer())
            );
        }
    }
}
