//! The node's audit log: every step on this node, appended as one JSON line per record
//! through this one interface, tamper-evident.
//!
//! ```text
//! <audit_dir>/log-00000001.jsonl   segments of records, one JSON line each, rotated every
//! <audit_dir>/log-00000002.jsonl   `segment_records` records; each line is a Merkle leaf
//! <audit_dir>/checkpoints.jsonl    signed checkpoints (tree size, root) in C2SP note form
//! <audit_dir>/node.pub             the node's signing public key in force (hex)
//! <audit_dir>/node.keys            every key the log was signed with, oldest first
//! <audit_dir>/audit.lock           empty; its one writer holds its lock (`flock`)
//! ```
//!
//! The signing key can be switched on a running node (`switch_key`): the switch is a
//! `key_switched` record endorsed by a checkpoint signed with the old key (see `keys`).
//!
//! Records that must be durable before the object they describe is acknowledged or removed
//! are group-committed with one fsync. A checkpoint is written every `checkpoint_records`
//! records or `checkpoint_ms`, whichever comes first, and at a clean stop; it fsyncs the
//! records it covers first. The interval is measured on the monotonic clock (a wall clock
//! stepped back holds no checkpoint up); records and checkpoints carry the wall time. Records also go to in-process subscribers (the demo prints them)
//! and, when configured, to a live RFC 5424 syslog stream.
//!
//! Quiet when idle. The two nodes witness each other's checkpoints, and a `witnessed`
//! record is itself a record: if it made a checkpoint due, that checkpoint would be
//! witnessed by the peer, whose record would make one due there, and so on, once a
//! second for ever. So:
//!
//! ```text
//!  peer checkpoint ──► witness(note) ── same note as the last one witnessed? ──► nothing
//!                                   └── new ──► `witnessed` record (waits, makes no
//!                                               checkpoint due by itself)
//!  any other record ──► makes a checkpoint due (covers the waiting `witnessed` too)
//!  clean stop ───────► checkpoint of everything (`witnessed` included)
//! ```
//!
//! - no checkpoint is written when no record was added since the last one;
//! - a checkpoint is due only when a record other than `witnessed` was added since the
//!   last one; `witnessed` records wait for the next checkpoint (the next object, policy
//!   or link event, the next start, the clean stop, or at the latest `WITNESS_WAIT_MS`,
//!   one hour, after the last checkpoint), which covers them: an idle pair writes at most
//!   one checkpoint and one `witnessed` record per node per hour;
//! - a peer's checkpoint is recorded once, when it arrives the first time (promptly); the
//!   same note sent again (a reconnection, the diode's repeats) is not recorded again.
//!   The last note witnessed is found again in the log at start.
//!
//! Modes, for the auditors' group (separation of duties): files are written 0640 and a
//! directory the log makes is 0750, so that the group of the audit directory (set-group-ID,
//! group `isogate-audit` where the package made it) reads the log and nobody else; files
//! found with other modes at `open` (an older version's) are set to 0640.

pub mod keys;
pub mod prove;
pub mod query;
pub mod read;
pub mod reconcile;
pub mod report;
pub mod report_render;
pub mod syslog;
pub mod when;

use crate::core::checkpoint::{self, Checkpoint};
use crate::core::id::ObjectId;
use crate::core::merkle::{Frontier, leaf_hash};
use crate::core::reason::Reason;
use crate::keys::SigningKey;
use crate::keys::suite::Suite;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use thiserror::Error;
use tokio::sync::{broadcast, watch};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The node started with a valid configuration.
    ConfigLoaded,
    /// The node stopped.
    Stopped,
    /// A file was taken from an outbox into the spool.
    Taken,
    /// The sender's inspection accepted an object.
    Accepted,
    /// The sender refused an object (it went to quarantine).
    Refused,
    /// The manifest was built and signed.
    Sealed,
    /// The object was sent on the link.
    Sent,
    /// The peer's receipt arrived; the spool copy is removed.
    Confirmed,
    /// The object was delivered into the inbox.
    Landed,
    /// The receiver refused an object (it went to quarantine).
    Quarantined,
    /// An object already landed arrived again and was not delivered twice.
    Duplicate,
    /// The link to the peer came up.
    LinkUp,
    /// The link to the peer went down.
    LinkDown,
    /// A signed checkpoint of the peer's audit log arrived and verified.
    Witnessed,
    /// Personal data was masked: `sha256` (`sm3` in a `gm` log) is the masked copy that
    /// crosses, `detail` names the original's hash (same algorithm).
    Masked,
    /// The antivirus could not scan an object; it waits and is tried again.
    ScanDeferred,
    /// A changed policy file was validated and put in force (`detail`: file and version).
    PolicyReloaded,
    /// A changed policy file was invalid and refused; the old policy stays in force.
    PolicyRefused,
    /// The node's signing key was switched (`detail`: the new key and the old one's
    /// fingerprint); the checkpoint of this record is signed by the old key, later ones by
    /// the new key.
    KeySwitched,
    /// Diode sender: the object's last copy went out and it left the spool. Nothing
    /// confirms on a one-way link; a copy may be held for `isogate resend` (`detail`).
    Retired,
    /// Diode receiver: the sender retired an object that never arrived whole here; no
    /// further copy comes unless the sender's operator resends it (`isogate resend`).
    Lost,
    /// Diode sender: an operator asked for an object to be sent again (`detail`: the
    /// request); it was put back in the spool and queued.
    Resent,
    /// The wall clock was stepped (NTP, an operator): `detail` gives the step's size in ms,
    /// negative when stepped back. Timers run on the monotonic clock and go on; records
    /// after it carry the new wall time.
    ClockStep,
    /// Diode receiver: the sender's settings do not fit this node's, or its datagrams do
    /// not authenticate (`detail`: the reason code — `mtu`, `symbol_size`, `block_size`,
    /// `config`, `no_data`, `key` or `resolved` — then both values).
    LinkMismatch,
    /// An officer released a quarantine entry (`isogate quarantine release`): `object_id`
    /// is the entry, `detail` who asked (`by USER (uid N)`, the request file's owner; the
    /// note) and where it went. Not an override: the entry crosses again through the full
    /// policy of both nodes, as a new object whose records name this id.
    QuarantineReleased,
    /// An officer's release of a quarantine entry did not happen: never releasable (an
    /// integrity failure, not a plain file, no content kept), asked by someone not allowed,
    /// failed before it began (`failed: WHY`), or begun and withdrawn (`withdrawn: WHY`).
    /// The entry stays; `detail` says who asked and why.
    QuarantineReleaseRefused,
    /// A quarantine entry was removed for good (`isogate quarantine purge`, or `[quarantine]
    /// keep_days`): `detail` says who asked, as for `quarantine_released`.
    QuarantinePurged,
    /// Sender, channel with `[approval]`: the object passed inspection and was sealed; it
    /// waits until enough approvers sign it (`detail`: how many of whom, when it expires).
    ApprovalPending,
    /// An approver's signed approval was taken (sender: `detail` names the approver, level,
    /// key fingerprint, the count so far and the note) or verified on arrival against this
    /// node's own pinned approvers (receiver, before `landed`).
    Approved,
    /// Sender: an approver rejected the object (`detail`: who, the note); it goes to
    /// quarantine as `approval_rejected`.
    ApprovalRejected,
    /// Sender: an approval or rejection was not taken (unknown key, signature that does not
    /// verify, an approver out of level order or signing twice, object not pending);
    /// `detail` says why. Nothing changed.
    ApprovalRequestRefused,
    /// Sender: an object that waited for approval leaves without all of them because the
    /// policy changed (`[approval]` removed, or `required` lowered); `detail` names the
    /// policy version in force, what it requires and what the object had. Durable, written
    /// before the object is queued.
    ApprovalWaived,
    /// Web console: an officer logged in (`detail`: user, remote address).
    ConsoleLogin,
    /// Web console: a login failed (`detail`: the user name tried, remote address).
    ConsoleLoginFailed,
    /// A stream channel's first packet passed the gate after a start or a stop (`stream`:
    /// the RTP SSRC; on the sending node the source address). One record per stream, never
    /// one per packet.
    StreamStarted,
    /// A stream went silent for the channel's `silence_s`, or the node stopped cleanly while
    /// it was live (`stream`: SSRC, packets and bytes passed on, drops by reason code,
    /// duration in ms, whether packets were dropped over the bitrate).
    StreamStopped,
    /// A message was accepted by the sending node's policy and is durable in a batch
    /// (`message`: its id; `object_id`: the batch object it crosses in; `sha256`, or `sm3`
    /// in a `gm` log: of the body as received; `detail`: what was masked and the same hash
    /// of the body that crosses, when masking applied).
    MessageAccepted,
    /// A message was refused by the sending node's policy (`message`: its id when one was
    /// given, `reason`, `detail`, `sha256` (`sm3`) of the body); it is in quarantine.
    MessageRefused,
    /// A message was appended to the receiving node's message log (`message`, `object_id`
    /// of its batch, `detail`: its cursor).
    MessageDelivered,
    /// A message whose id is already in the receiving node's log was dropped (`message`,
    /// `object_id` of the batch that carried it again).
    MessageDuplicate,
}

impl Event {
    /// The stable name of the event.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::ConfigLoaded => "config_loaded",
            Event::Stopped => "stopped",
            Event::Taken => "taken",
            Event::Accepted => "accepted",
            Event::Refused => "refused",
            Event::Sealed => "sealed",
            Event::Sent => "sent",
            Event::Confirmed => "confirmed",
            Event::Landed => "landed",
            Event::Quarantined => "quarantined",
            Event::Duplicate => "duplicate",
            Event::LinkUp => "link_up",
            Event::LinkDown => "link_down",
            Event::Witnessed => "witnessed",
            Event::Masked => "masked",
            Event::ScanDeferred => "scan_deferred",
            Event::PolicyReloaded => "policy_reloaded",
            Event::PolicyRefused => "policy_refused",
            Event::KeySwitched => "key_switched",
            Event::Retired => "retired",
            Event::Lost => "lost",
            Event::Resent => "resent",
            Event::ClockStep => "clock_step",
            Event::LinkMismatch => "link_mismatch",
            Event::QuarantineReleased => "quarantine_released",
            Event::QuarantineReleaseRefused => "quarantine_release_refused",
            Event::QuarantinePurged => "quarantine_purged",
            Event::ApprovalPending => "approval_pending",
            Event::Approved => "approved",
            Event::ApprovalRejected => "approval_rejected",
            Event::ApprovalRequestRefused => "approval_request_refused",
            Event::ApprovalWaived => "approval_waived",
            Event::ConsoleLogin => "console_login",
            Event::ConsoleLoginFailed => "console_login_failed",
            Event::StreamStarted => "stream_started",
            Event::StreamStopped => "stream_stopped",
            Event::MessageAccepted => "message_accepted",
            Event::MessageRefused => "message_refused",
            Event::MessageDelivered => "message_delivered",
            Event::MessageDuplicate => "message_duplicate",
        }
    }

    /// Every event, in documentation order.
    pub const ALL: [Event; 40] = [
        Event::ConfigLoaded,
        Event::Stopped,
        Event::Taken,
        Event::Accepted,
        Event::Refused,
        Event::Sealed,
        Event::Sent,
        Event::Confirmed,
        Event::Landed,
        Event::Quarantined,
        Event::Duplicate,
        Event::LinkUp,
        Event::LinkDown,
        Event::Witnessed,
        Event::Masked,
        Event::ScanDeferred,
        Event::PolicyReloaded,
        Event::PolicyRefused,
        Event::KeySwitched,
        Event::Retired,
        Event::Lost,
        Event::Resent,
        Event::ClockStep,
        Event::LinkMismatch,
        Event::QuarantineReleased,
        Event::QuarantineReleaseRefused,
        Event::QuarantinePurged,
        Event::ApprovalPending,
        Event::Approved,
        Event::ApprovalRejected,
        Event::ApprovalRequestRefused,
        Event::ApprovalWaived,
        Event::ConsoleLogin,
        Event::ConsoleLoginFailed,
        Event::StreamStarted,
        Event::StreamStopped,
        Event::MessageAccepted,
        Event::MessageRefused,
        Event::MessageDelivered,
        Event::MessageDuplicate,
    ];

    /// The verdict an event records, if it records one.
    pub fn verdict(self) -> Option<&'static str> {
        match self {
            Event::Accepted
            | Event::Landed
            | Event::Confirmed
            | Event::MessageAccepted
            | Event::MessageDelivered => Some("accept"),
            Event::Refused | Event::Quarantined | Event::MessageRefused => Some("reject"),
            _ => None,
        }
    }
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Position in this node's log, from 1.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The node writing the record.
    pub node: String,
    /// What happened.
    pub event: Event,
    /// The channel, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The object id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// The object's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The object's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// SHA-256 of the content, hex (a log of the `default` suite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// SM3 (GB/T 32905) of the content, hex (a log of the `gm` suite, in place of `sha256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sm3: Option<String>,
    /// Reason code of a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Free detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The peer node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// What a stream carried (`stream_started`, `stream_stopped` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamRecord>,
    /// The message id (`message_*` records only; 32 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The body of a `stream_started` or `stream_stopped` record: one stream of a `stream`
/// channel (RTP, RFC 3550, or raw MPEG-TS, ISO/IEC 13818-1), from its first packet that
/// passed the gate to its silence or the node's stop. Fields a record does not know are
/// absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRecord {
    /// The RTP synchronization source the stream is pinned to (RTP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssrc: Option<u32>,
    /// The UDP source address of the first packet (`ip:port`; sending node only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Packets passed on: to the link (sending node) or to the application (receiving).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    /// Bytes of those packets (UDP payloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Packets dropped, by reason code (`payload_type`, `over_rate`, `late`, ...).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub drops: std::collections::BTreeMap<String, u64>,
    /// Milliseconds from the stream's first packet to its last one passed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Whether any packet was dropped over the policy's bitrate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over_rate: Option<bool>,
}

/// A record being built; `AuditLog::append` fills in the sequence, time and node.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// See `Record`.
    pub channel: Option<String>,
    /// See `Record`.
    pub object_id: Option<ObjectId>,
    /// See `Record`.
    pub name: Option<String>,
    /// See `Record`.
    pub size: Option<u64>,
    /// The content's hash under the log's suite: written as the record's `sha256` in a
    /// `default` log, as its `sm3` in a `gm` one.
    pub digest: Option<[u8; 32]>,
    /// See `Record`.
    pub reason: Option<Reason>,
    /// See `Record`.
    pub detail: Option<String>,
    /// See `Record`.
    pub peer: Option<String>,
    /// See `Record`.
    pub message: Option<String>,
}

impl Entry {
    /// An entry about an object on a channel.
    pub fn object(channel: &str, id: ObjectId, name: &str) -> Entry {
        Entry {
            channel: Some(channel.to_string()),
            object_id: Some(id),
            name: Some(name.to_string()),
            ..Entry::default()
        }
    }
}

/// Why the audit log could not be written.
#[derive(Debug, Error)]
pub enum AuditError {
    /// Opening, writing or syncing the log failed.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A record could not be encoded.
    #[error("audit record does not encode: {0}")]
    Encode(#[from] serde_json::Error),
    /// The log was written with another key than the configured one.
    #[error(
        "{0} holds another key than the configured signing_key: this audit directory belongs to another node, or the key was replaced while the node was stopped (switch keys on the running node with SIGHUP: see certs/README.md)"
    )]
    OtherKey(PathBuf),
    /// The records on disk do not match the last signed checkpoint.
    #[error(
        "{dir}: the log ({records} records) does not match its last checkpoint of {size} records; run `isogate audit verify` and investigate before starting the node"
    )]
    Diverged {
        /// The audit directory.
        dir: PathBuf,
        /// Size of the last checkpoint.
        size: u64,
        /// Records found.
        records: u64,
    },
    /// A `gm` log whose checkpoints sign a SHA-256 tree: written before the suite's tree was
    /// SM3.
    #[error(
        "{0}: this log of a gm node was written with a SHA-256 Merkle tree, by an isogate release older than SM3 trees; the suite's tree is SM3 now: move the directory aside (keep it: the release that wrote it verifies it) and start the node with a new, empty audit directory"
    )]
    Sha256Tree(PathBuf),
    /// Another process holds the log's writer lock ([`LOCK`]): two writers would give
    /// records the same sequence numbers, a log that never verifies again.
    #[error(
        "{0} is locked: another `isogate run` writes this audit directory (stop it first, or give each node its own node.audit_dir)"
    )]
    Locked(PathBuf),
}

/// Mode of every file of the log: the node writes, the audit directory's group reads.
pub const FILE_MODE: u32 = 0o640;
/// How the detail of a `message_accepted` record begins when masking applied to the
/// message: `masked <what>; crossing <hash field> <hex>` (the report counts it as masked).
pub const MASKED_DETAIL: &str = "masked ";
/// How the detail of a `masked` record begins when nothing was masked: a batch's copy that
/// only leaves refused messages out (the report does not count it as masked).
pub const NOTHING_MASKED: &str = "personal data masked in 0 line(s)";
/// Mode of an audit directory the node makes (set-group-ID comes from its parent).
pub const DIR_MODE: u32 = 0o750;

/// Records per segment file, by default.
pub const SEGMENT_RECORDS: u64 = 100_000;
/// File of signed checkpoints.
pub const CHECKPOINTS: &str = "checkpoints.jsonl";
/// The file of an audit directory whose exclusive lock (`flock(2)`) its one writer holds
/// while it runs: taken by [`AuditLog::open`] before it reads anything, released when the
/// process ends, however it ends. Empty; readers ignore it. Named apart from the state
/// directory's `lock`: a node may keep its audit log in its state directory, and `flock`
/// refuses a second lock of one file even to the process that holds the first.
pub const LOCK: &str = "audit.lock";
/// File holding the node's public key.
pub const NODE_PUB: &str = "node.pub";

/// The file name of segment `n` (from 1).
pub fn segment_name(n: u64) -> String {
    format!("log-{n:08}.jsonl")
}

/// One line of `checkpoints.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredCheckpoint {
    /// Records covered.
    pub size: u64,
    /// Merkle root, hex.
    pub root: String,
    /// When it was made.
    pub time_ms: u64,
    /// The signed note.
    pub note: String,
}

/// The longest a `witnessed` record waits for a checkpoint on a node that appends nothing
/// else (ms): one hour.
pub const WITNESS_WAIT_MS: u64 = 3_600_000;

/// When checkpoints are written.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    /// At most this many records between checkpoints.
    pub records: u64,
    /// At most this long between checkpoints while records arrive.
    pub interval_ms: u64,
    /// Records per segment file before rotation.
    pub segment_records: u64,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            records: 10_000,
            interval_ms: 1000,
            segment_records: SEGMENT_RECORDS,
        }
    }
}

struct Writer {
    key: Arc<SigningKey>,
    history: Vec<crate::keys::VerifyKey>,
    file: File,
    bytes: u64,
    segment: u64,
    in_segment: u64,
    next_seq: u64,
    tree: Frontier,
    checkpointed: u64,
    /// Records since the last checkpoint that make one due: all but `witnessed`.
    due: u64,
    /// The peer's checkpoint note witnessed last (its `witnessed` record's detail).
    last_witnessed: Option<String>,
    /// Wall time of the last checkpoint (ms since the epoch), or of the opening.
    checkpoint_ms: u64,
    /// The same moment on the monotonic clock ([`crate::mono_ms`]): intervals count from it.
    checkpoint_mono: u64,
}

/// The node's audit log.
pub struct AuditLog {
    node: String,
    dir: PathBuf,
    suite: Suite,
    policy: CheckpointPolicy,
    writer: Mutex<Writer>,
    sync_lock: Mutex<()>,
    written: AtomicU64,
    synced: AtomicU64,
    events: broadcast::Sender<Record>,
    checkpoints: watch::Sender<Option<String>>,
    syslog: Option<syslog::Sink>,
    /// The exclusive lock on [`LOCK`], held while the log is open.
    _lock: std::fs::File,
}

/// Takes the exclusive lock on `dir`'s [`LOCK`] file (made with [`FILE_MODE`] if missing).
///
/// # Errors
/// [`AuditError::Locked`] where another open file holds it (another process, or another
/// [`AuditLog`] of this one); [`AuditError::Io`] where the file cannot be made or locked.
fn lock_dir(dir: &Path) -> Result<std::fs::File, AuditError> {
    let path = dir.join(LOCK);
    match crate::fsx::lock_exclusive(&path, FILE_MODE) {
        Ok(Some(file)) => Ok(file),
        Ok(None) => Err(AuditError::Locked(path)),
        Err(source) => Err(AuditError::Io { path, source }),
    }
}

fn segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_prefix("log-")
            .and_then(|r| r.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            v.push(n);
        }
    }
    v.sort_unstable();
    Ok(v)
}

/// Sets the files of the log found with another mode than [`FILE_MODE`] (written by an
/// older version, or by hand) to it: never group-writable, never world-readable. A file
/// that cannot be changed (another owner) is reported, not fatal: the log stays usable.
fn settle_modes(dir: &Path, segs: &[u64]) {
    use std::os::unix::fs::PermissionsExt;
    let names = segs
        .iter()
        .map(|n| segment_name(*n))
        .chain([CHECKPOINTS, NODE_PUB, keys::NODE_KEYS].map(String::from));
    for name in names {
        let path = dir.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_file() && meta.permissions().mode() & 0o7777 != FILE_MODE {
            let set = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(FILE_MODE));
            if let Err(e) = set {
                tracing::warn!(file = %path.display(), error = %e, "cannot set the audit file's mode to 0640");
            }
        }
    }
}

impl AuditLog {
    /// Opens (or creates) the log in `dir`, replaying it to continue its sequence and tree.
    /// A last line torn by a crash (no final newline) is cut off: it was never durable.
    /// The log has one writer: its [`LOCK`] is held until this log is dropped.
    ///
    /// # Errors
    /// [`AuditError::Locked`]: another log writes `dir`; the others as they say (the
    /// directory or a file cannot be made, read or synced, another key, a log that does not
    /// match its checkpoint).
    pub fn open(
        dir: &Path,
        node: &str,
        key: Arc<SigningKey>,
        policy: CheckpointPolicy,
        syslog: Option<syslog::Target>,
    ) -> Result<AuditLog, AuditError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AuditError::Io { path, source }
        };
        std::os::unix::fs::DirBuilderExt::mode(
            std::fs::DirBuilder::new().recursive(true),
            DIR_MODE,
        )
        .create(dir)
        .map_err(io(dir))?;
        // before anything is read: a second writer would cut the first one's torn tail
        // and give its records the same sequence numbers
        let lock = lock_dir(dir)?;
        let keys_path = dir.join(keys::NODE_KEYS);
        let recorded = keys::history(dir).map_err(io(&keys_path))?;
        let cp_path = dir.join(CHECKPOINTS);
        if let Ok(bytes) = std::fs::read(&cp_path) {
            let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            if whole < bytes.len() {
                tracing::warn!(file = %cp_path.display(), "cutting a torn last checkpoint");
                let f = OpenOptions::new()
                    .write(true)
                    .open(&cp_path)
                    .map_err(io(&cp_path))?;
                f.set_len(whole as u64).map_err(io(&cp_path))?;
                f.sync_all().map_err(io(&cp_path))?;
            }
        }
        let last_cp = read::checkpoints(dir).map_err(io(&cp_path))?.pop();
        let mut cp_root: Option<crate::core::merkle::Hash> = None;
        // the tree hashes with the log's suite: its first key's, which every switch keeps
        let suite = recorded
            .as_ref()
            .and_then(|k| k.first())
            .map_or(key.suite(), |k| k.suite());
        let mut tree = Frontier::new(suite);
        let mut last_seq = 0;
        let mut last_switch: Option<(u64, crate::keys::VerifyKey)> = None;
        let mut last_witnessed: Option<String> = None;
        // records after the last checkpoint that make one due (all but `witnessed`)
        let mut due = 0;
        let mut in_segment = 0;
        let segs = segments(dir).map_err(io(dir))?;
        for (i, n) in segs.iter().enumerate() {
            let path = dir.join(segment_name(*n));
            let mut bytes = std::fs::read(&path).map_err(io(&path))?;
            let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            if whole < bytes.len() && i + 1 == segs.len() {
                tracing::warn!(file = %path.display(), bytes = bytes.len() - whole, "cutting a torn last audit record");
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io(&path))?;
                f.set_len(whole as u64).map_err(io(&path))?;
                f.sync_all().map_err(io(&path))?;
                bytes.truncate(whole);
            }
            in_segment = 0;
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                tree.push(leaf_hash(suite, line));
                if last_cp.as_ref().is_some_and(|c| c.size == tree.size()) {
                    cp_root = Some(tree.root());
                }
                in_segment += 1;
                let after_cp = last_cp.as_ref().is_none_or(|c| tree.size() > c.size);
                match serde_json::from_slice::<SeqOnly>(line) {
                    Ok(r) => {
                        last_seq = r.seq;
                        let witnessed = r.event.as_deref() == Some(Event::Witnessed.as_str());
                        if witnessed {
                            last_witnessed = r.detail.as_deref().map(str::to_string);
                        }
                        if after_cp && !witnessed {
                            due += 1;
                        }
                        if r.event.as_deref() == Some(Event::KeySwitched.as_str()) {
                            last_switch = r
                                .detail
                                .as_deref()
                                .and_then(keys::parse_switch)
                                .map(|(k, _)| (r.seq, k));
                        }
                    }
                    Err(_) => {
                        last_seq += 1;
                        if after_cp {
                            due += 1;
                        }
                    }
                }
            }
        }
        let segment = segs.last().copied().unwrap_or(1);
        let path = dir.join(segment_name(segment));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(io(&path))?;
        // Never sign over a log that no longer matches its own last checkpoint.
        if let Some(c) = &last_cp
            && cp_root.map(hex::encode).as_deref() != Some(c.root.as_str())
        {
            if suite == Suite::Gm && Self::sha256_tree(dir, c) {
                return Err(AuditError::Sha256Tree(dir.to_path_buf()));
            }
            return Err(AuditError::Diverged {
                dir: dir.to_path_buf(),
                size: c.size,
                records: tree.size(),
            });
        }
        let last_cp = last_cp.map(|c| c.size).unwrap_or(0);
        let history = Self::key_history(recorded, &key, last_switch, last_cp)
            .ok_or_else(|| AuditError::OtherKey(keys_path.clone()))?;
        keys::write_history(dir, &history).map_err(io(&keys_path))?;
        settle_modes(dir, &segs);
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let (events, _) = broadcast::channel(1024);
        let (checkpoints, _) = watch::channel(None);
        Ok(AuditLog {
            node: node.to_string(),
            dir: dir.to_path_buf(),
            suite,
            policy,
            writer: Mutex::new(Writer {
                key,
                history,
                file,
                bytes,
                segment,
                in_segment,
                next_seq: last_seq + 1,
                tree,
                checkpointed: last_cp,
                due,
                last_witnessed,
                checkpoint_ms: crate::now_ms(),
                checkpoint_mono: crate::mono_ms(),
            }),
            sync_lock: Mutex::new(()),
            written: AtomicU64::new(last_seq),
            synced: AtomicU64::new(last_seq),
            events,
            checkpoints,
            syslog: syslog.map(syslog::Sink::start),
            _lock: lock,
        })
    }

    /// Subscribes to records as they are appended.
    pub fn subscribe(&self) -> broadcast::Receiver<Record> {
        self.events.subscribe()
    }

    /// Subscribes to signed checkpoint notes as they are written.
    pub fn checkpoints(&self) -> watch::Receiver<Option<String>> {
        self.checkpoints.subscribe()
    }

    fn io(&self, source: std::io::Error) -> AuditError {
        AuditError::Io {
            path: self.dir.clone(),
            source,
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Writer>, AuditError> {
        self.writer
            .lock()
            .map_err(|_| self.io(std::io::Error::other("audit writer poisoned")))
    }

    /// Whether the SHA-256 tree of the log's first `c.size` records has `c`'s root: a `gm`
    /// log of the release whose trees were SHA-256.
    fn sha256_tree(dir: &Path, c: &StoredCheckpoint) -> bool {
        let Ok(leaves) = read::leaves(dir, Suite::Default) else {
            return false;
        };
        let Some(covered) = leaves.get(..c.size as usize) else {
            return false;
        };
        let hashes: Vec<_> = covered.iter().map(|(h, _)| *h).collect();
        hex::encode(crate::core::merkle::root_of(Suite::Default, &hashes)) == c.root
    }

    /// The key history of a log opened with `key`: the recorded one, extended when the last
    /// switch of the log (covered by a checkpoint) announced `key` but a crash came before
    /// the history was written. `None`: `key` is not the log's key.
    fn key_history(
        recorded: Option<Vec<crate::keys::VerifyKey>>,
        key: &SigningKey,
        last_switch: Option<(u64, crate::keys::VerifyKey)>,
        checkpointed: u64,
    ) -> Option<Vec<crate::keys::VerifyKey>> {
        let key = key.verify_key();
        let Some(mut history) = recorded else {
            return Some(vec![key]);
        };
        if history.last() == Some(&key) {
            return Some(history);
        }
        match last_switch {
            Some((seq, announced)) if announced == key && seq <= checkpointed => {
                history.push(key);
                Some(history)
            }
            _ => None,
        }
    }

    /// Appends a record (written, not yet synced); returns its sequence number.
    pub fn append(&self, event: Event, e: Entry) -> Result<u64, AuditError> {
        let mut w = self.lock()?;
        let rec = self.append_locked(&mut w, event, e)?;
        drop(w);
        let seq = rec.seq;
        self.publish(rec);
        Ok(seq)
    }

    /// Sends an appended record to the live syslog stream and the subscribers.
    fn publish(&self, rec: Record) {
        if let Some(s) = &self.syslog {
            s.send(&rec);
        }
        let _ = self.events.send(rec);
    }

    /// Appends a stream record (`stream_started`, `stream_stopped`) with its body
    /// (written, not yet synced); returns its sequence number.
    ///
    /// # Errors
    /// The record could not be written.
    pub fn append_stream(
        &self,
        event: Event,
        e: Entry,
        stream: StreamRecord,
    ) -> Result<u64, AuditError> {
        let mut w = self.lock()?;
        let rec = self.append_with(&mut w, event, e, Some(stream))?;
        drop(w);
        let seq = rec.seq;
        self.publish(rec);
        Ok(seq)
    }

    fn append_locked(&self, w: &mut Writer, event: Event, e: Entry) -> Result<Record, AuditError> {
        self.append_with(w, event, e, None)
    }

    fn append_with(
        &self,
        w: &mut Writer,
        event: Event,
        e: Entry,
        stream: Option<StreamRecord>,
    ) -> Result<Record, AuditError> {
        let rec = Record {
            seq: w.next_seq,
            time_ms: crate::now_ms(),
            node: self.node.clone(),
            event,
            channel: e.channel,
            object_id: e.object_id.map(|i| i.to_string()),
            name: e.name,
            size: e.size,
            sha256: e
                .digest
                .filter(|_| w.tree.suite() == Suite::Default)
                .map(hex::encode),
            sm3: e
                .digest
                .filter(|_| w.tree.suite() == Suite::Gm)
                .map(hex::encode),
            reason: e.reason,
            detail: e.detail,
            peer: e.peer,
            stream,
            message: e.message,
        };
        let mut line = serde_json::to_vec(&rec)?;
        let leaf = leaf_hash(w.tree.suite(), &line);
        line.push(b'\n');
        if let Err(e) = w.file.write_all(&line) {
            // leave no half record behind: the log stays whole and the record was not made
            let _ = w.file.set_len(w.bytes);
            return Err(self.io(e));
        }
        w.bytes += line.len() as u64;
        w.tree.push(leaf);
        if event != Event::Witnessed {
            w.due += 1;
        }
        w.next_seq += 1;
        w.in_segment += 1;
        if w.in_segment >= self.policy.segment_records {
            // the next segment starts only once this one is durable
            w.file.sync_data().map_err(|e| self.io(e))?;
            let segment = w.segment + 1;
            let path = self.dir.join(segment_name(segment));
            w.file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(FILE_MODE)
                .open(&path)
                .map_err(|e| self.io(e))?;
            crate::fsx::sync_dir(&self.dir).map_err(|e| self.io(e))?;
            w.segment = segment;
            w.in_segment = 0;
            w.bytes = 0;
        }
        self.written.store(rec.seq, Ordering::Release);
        Ok(rec)
    }

    /// Makes every record up to `seq` durable; concurrent callers share one fsync.
    pub fn sync_to(&self, seq: u64) -> Result<(), AuditError> {
        if self.synced.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let _g = self
            .sync_lock
            .lock()
            .map_err(|_| self.io(std::io::Error::other("audit sync poisoned")))?;
        if self.synced.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let upto = self.written.load(Ordering::Acquire);
        let file = self.lock()?.file.try_clone().map_err(|e| self.io(e))?;
        file.sync_data().map_err(|e| self.io(e))?;
        self.synced.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }

    /// Appends a record and makes it durable before returning.
    pub fn durable(&self, event: Event, e: Entry) -> Result<u64, AuditError> {
        let seq = self.append(event, e)?;
        self.sync_to(seq)?;
        Ok(seq)
    }

    /// Writes a checkpoint if records arrived since the last one (never otherwise) and
    /// either `force` (a clean stop: every record, `witnessed` ones included), or a record
    /// other than `witnessed` arrived and `checkpoint_records` records or `checkpoint_ms`
    /// have passed, or [`WITNESS_WAIT_MS`] passed since the last checkpoint (waiting
    /// `witnessed` records). Returns the note written.
    pub fn checkpoint(&self, force: bool) -> Result<Option<String>, AuditError> {
        self.checkpoint_at(force, crate::mono_ms())
    }

    /// [`AuditLog::checkpoint`] with the monotonic clock read by the caller (ms).
    fn checkpoint_at(&self, force: bool, mono_now: u64) -> Result<Option<String>, AuditError> {
        let mut w = self.lock()?;
        let now = crate::now_ms();
        let size = w.tree.size();
        let pending = size - w.checkpointed;
        let since = mono_now.saturating_sub(w.checkpoint_mono);
        let due = (w.due > 0 && (pending >= self.policy.records || since >= self.policy.interval_ms))
            // waiting `witnessed` records are signed within WITNESS_WAIT_MS on an idle node:
            // the peer's evidence is never left unsigned for long, and the two nodes' witness
            // exchange costs one checkpoint per node per WITNESS_WAIT_MS at most
            || since >= WITNESS_WAIT_MS.max(self.policy.interval_ms);
        if pending == 0 || !(force || due) {
            return Ok(None);
        }
        let note = self.write_checkpoint(&mut w, now)?;
        drop(w);
        self.checkpoints.send_replace(Some(note.clone()));
        Ok(Some(note))
    }

    /// Writes a checkpoint of everything appended so far, signed with the key in force.
    fn write_checkpoint(&self, w: &mut Writer, now: u64) -> Result<String, AuditError> {
        let size = w.tree.size();
        // a checkpoint never covers records that are not durable
        w.file.sync_data().map_err(|e| self.io(e))?;
        self.synced.fetch_max(w.next_seq - 1, Ordering::AcqRel);
        let root = w.tree.root();
        let note = Checkpoint {
            origin: checkpoint::origin(&self.node),
            size,
            root,
            time_ms: now,
        }
        .sign(&w.key);
        let stored = StoredCheckpoint {
            size,
            root: hex::encode(root),
            time_ms: now,
            note: note.clone(),
        };
        let mut line = serde_json::to_vec(&stored)?;
        line.push(b'\n');
        let path = self.dir.join(CHECKPOINTS);
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(|e| self.io(e))?;
        f.write_all(&line).map_err(|e| self.io(e))?;
        f.sync_data().map_err(|e| self.io(e))?;
        w.checkpointed = size;
        w.due = 0;
        w.checkpoint_ms = now;
        w.checkpoint_mono = crate::mono_ms();
        Ok(note)
    }

    /// Records the peer's checkpoint `note` (already verified by the caller) as a
    /// `witnessed` record, unless it is the very note witnessed last (a repeat: the
    /// diode sends its latest note every few seconds, a reconnection sends it again).
    /// `size` is the peer's tree size the note signs. Returns the record's seq, or `None`
    /// for a repeat. The record makes no checkpoint due by itself (see the module header).
    ///
    /// # Errors
    /// The record could not be written.
    pub fn witness(&self, peer: &str, note: &str, size: u64) -> Result<Option<u64>, AuditError> {
        let mut w = self.lock()?;
        if w.last_witnessed.as_deref() == Some(note) {
            return Ok(None);
        }
        let e = Entry {
            peer: Some(peer.to_string()),
            detail: Some(note.to_string()),
            size: Some(size),
            ..Entry::default()
        };
        let rec = self.append_locked(&mut w, Event::Witnessed, e)?;
        w.last_witnessed = Some(note.to_string());
        drop(w);
        let seq = rec.seq;
        self.publish(rec);
        Ok(Some(seq))
    }

    /// Records appended since the last checkpoint that make one due (all but `witnessed`):
    /// 0 when the log is idle and signed as far as it needs to be.
    pub fn due_records(&self) -> u64 {
        self.writer
            .lock()
            .map(|w| w.due)
            .unwrap_or_else(|p| p.into_inner().due)
    }

    /// The log's suite: its Merkle tree's hash, and so the field (`sha256` or `sm3`) its
    /// records name a content hash in.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Switches the signing key of the log, atomically for every writer: appends a
    /// `key_switched` record announcing the new key, writes a checkpoint covering it signed
    /// with the old key (the endorsement), records the new key in `node.keys` and
    /// `node.pub`, then writes a checkpoint of the same size signed with the new key. Every
    /// later checkpoint is signed with the new key. Returns the record's seq, or `None` if
    /// `new` is already the key in force.
    pub fn switch_key(&self, new: Arc<SigningKey>) -> Result<Option<u64>, AuditError> {
        let mut w = self.lock()?;
        let (old_pub, new_pub) = (w.key.verify_key(), new.verify_key());
        if old_pub == new_pub {
            return Ok(None);
        }
        let e = Entry {
            detail: Some(keys::switch_detail(&new_pub, &old_pub)),
            ..Entry::default()
        };
        let rec = self.append_locked(&mut w, Event::KeySwitched, e)?;
        let now = crate::now_ms();
        // Until the endorsement is written the old key stays in force (a record without it
        // never takes effect); once it is, the switch has happened, whatever comes next.
        self.write_checkpoint(&mut w, now)?;
        w.key = new;
        w.history.push(new_pub);
        if let Err(e) = keys::write_history(&self.dir, &w.history) {
            // `open` repairs the history from the log's last switch
            tracing::error!(dir = %self.dir.display(), error = %e, "cannot record the new key in node.keys");
        }
        let note = match self.write_checkpoint(&mut w, now) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::error!(error = %e, "cannot write the first checkpoint of the new key");
                None
            }
        };
        drop(w);
        let seq = rec.seq;
        self.publish(rec);
        if note.is_some() {
            self.checkpoints.send_replace(note);
        }
        Ok(Some(seq))
    }

    /// The public key the log is signed with now.
    pub fn verify_key(&self) -> Result<crate::keys::VerifyKey, AuditError> {
        Ok(self.lock()?.key.verify_key())
    }

    /// When the last checkpoint was written (or the log opened, if none since), in ms since
    /// the epoch: a recorded time, for display.
    pub fn last_checkpoint_ms(&self) -> u64 {
        self.writer
            .lock()
            .map(|w| w.checkpoint_ms)
            .unwrap_or_else(|p| p.into_inner().checkpoint_ms)
    }

    /// Milliseconds since the last checkpoint was written (or the log opened, if none
    /// since), measured on the monotonic clock: true whatever the wall clock does.
    pub fn checkpoint_age_ms(&self) -> u64 {
        let at = self
            .writer
            .lock()
            .map(|w| w.checkpoint_mono)
            .unwrap_or_else(|p| p.into_inner().checkpoint_mono);
        crate::mono_ms().saturating_sub(at)
    }

    /// The checkpoint policy in force.
    pub fn policy(&self) -> CheckpointPolicy {
        self.policy
    }
}

#[derive(Deserialize)]
struct SeqOnly<'a> {
    seq: u64,
    #[serde(borrow, default)]
    event: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    detail: Option<std::borrow::Cow<'a, str>>,
}

/// Reads every record of an audit directory, in order (no verification: see `read::verify`).
pub fn read_all(dir: &Path) -> std::io::Result<Vec<Record>> {
    let mut out = Vec::new();
    read::for_each_line(dir, |_, _, line| {
        out.push(serde_json::from_slice(line).map_err(std::io::Error::other)?);
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn open(dir: &Path, key: &Arc<SigningKey>) -> AuditLog {
        AuditLog::open(dir, "court", key.clone(), CheckpointPolicy::default(), None).unwrap()
    }

    #[test]
    fn appends_continue_sequence_and_tree_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(SigningKey::generate().unwrap());
        {
            let log = open(dir.path(), &key);
            let mut sub = log.subscribe();
            assert_eq!(
                log.append(Event::ConfigLoaded, Entry::default()).unwrap(),
                1
            );
            let e = Entry::object("to-internet", ObjectId([1; 16]), "a.pdf");
            assert_eq!(log.durable(Event::Taken, e).unwrap(), 2);
            assert_eq!(sub.try_recv().unwrap().seq, 1);
            assert!(log.checkpoint(true).unwrap().is_some());
            assert!(
                log.checkpoint(true).unwrap().is_none(),
                "nothing new to cover"
            );
        }
        let log = open(dir.path(), &key);
        assert_eq!(log.durable(Event::Stopped, Entry::default()).unwrap(), 3);
        log.checkpoint(true).unwrap();
        let all = read_all(dir.path()).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].event, Event::Taken);
        assert_eq!(all[1].name.as_deref(), Some("a.pdf"));
        let report = read::verify(dir.path(), None).unwrap();
        assert_eq!(report.records, 3);
        assert_eq!(report.checkpoints, 2);
        assert_eq!(report.unsigned_tail, 0);
    }

    /// Every file of the log is 0640 (the auditors' group reads it), also one an older
    /// version left group-writable, once the log is opened again.
    #[test]
    fn files_are_written_for_the_auditors_group() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(SigningKey::generate().unwrap());
        let mode = |name: &str| {
            std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        let names = [
            segment_name(1),
            CHECKPOINTS.into(),
            NODE_PUB.into(),
            keys::NODE_KEYS.into(),
        ];
        {
            let log = open(dir.path(), &key);
            log.durable(Event::ConfigLoaded, Entry::default()).unwrap();
            log.checkpoint(true).unwrap();
        }
        for n in &names {
            assert_eq!(mode(n), FILE_MODE, "{n}");
        }
        let seg = dir.path().join(segment_name(1));
        std::fs::set_permissions(&seg, std::fs::Permissions::from_mode(0o666)).unwrap();
        let _log = open(dir.path(), &key);
        assert_eq!(mode(&names[0]), FILE_MODE);
    }

    #[test]
    fn a_waiting_witnessed_record_is_signed_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(SigningKey::generate().unwrap());
        let log =
            AuditLog::open(dir.path(), "court", key, CheckpointPolicy::default(), None).unwrap();
        log.append(Event::ConfigLoaded, Entry::default()).unwrap();
        log.checkpoint(true).unwrap();
        assert_eq!(log.witness("internet", "note 1", 5).unwrap(), Some(2));
        assert!(log.checkpoint(false).unwrap().is_none(), "waits");
        let later = crate::mono_ms() + WITNESS_WAIT_MS - 1000;
        assert!(
            log.checkpoint_at(false, later).unwrap().is_none(),
            "not yet"
        );
        let hour = crate::mono_ms() + WITNESS_WAIT_MS;
        assert!(
            log.checkpoint_at(false, hour).unwrap().is_some(),
            "signed at the bound"
        );
        assert_eq!(read::verify(dir.path(), None).unwrap().unsigned_tail, 0);
        // and nothing more while nothing is added, however long it waits
        let days = crate::mono_ms() + 100 * WITNESS_WAIT_MS;
        assert!(log.checkpoint_at(false, days).unwrap().is_none());
    }

    #[test]
    fn an_idle_log_writes_nothing_and_witnessed_records_wait_for_the_next_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(SigningKey::generate().unwrap());
        // every checkpoint due at once by time: only what was added decides
        let policy = CheckpointPolicy {
            interval_ms: 0,
            ..CheckpointPolicy::default()
        };
        let open = || AuditLog::open(dir.path(), "court", key.clone(), policy, None).unwrap();
        let log = open();
        assert!(log.checkpoint(false).unwrap().is_none(), "nothing to sign");
        log.append(Event::ConfigLoaded, Entry::default()).unwrap();
        assert_eq!(log.due_records(), 1);
        assert!(log.checkpoint(false).unwrap().is_some());
        assert!(log.checkpoint(false).unwrap().is_none(), "nothing new");
        // a peer's checkpoint is recorded once, however often it arrives
        assert_eq!(log.witness("internet", "note 1", 5).unwrap(), Some(2));
        assert_eq!(log.witness("internet", "note 1", 5).unwrap(), None);
        // and makes no checkpoint due by itself: the witness loop stops here
        assert_eq!(log.due_records(), 0);
        assert!(log.checkpoint(false).unwrap().is_none());
        assert_eq!(log.witness("internet", "note 2", 6).unwrap(), Some(3));
        assert!(log.checkpoint(false).unwrap().is_none());
        // the next other record makes one due, which covers the witnessed ones too
        log.append(Event::LinkUp, Entry::default()).unwrap();
        assert!(log.checkpoint(false).unwrap().is_some());
        assert_eq!(read::verify(dir.path(), None).unwrap().unsigned_tail, 0);
        // and a clean stop covers a waiting one
        assert_eq!(log.witness("internet", "note 3", 7).unwrap(), Some(5));
        assert!(log.checkpoint(false).unwrap().is_none());
        assert!(log.checkpoint(true).unwrap().is_some());
        assert_eq!(read::verify(dir.path(), None).unwrap().unsigned_tail, 0);
        drop(log);
        // reopened: the last note witnessed is known, nothing is due
        let log = open();
        assert_eq!(log.due_records(), 0);
        assert_eq!(log.witness("internet", "note 3", 7).unwrap(), None);
        assert_eq!(log.witness("internet", "note 2", 6).unwrap(), Some(6));
        assert_eq!(log.due_records(), 0);
        // a record left uncovered by a crash is due after the next start
        log.append(Event::Stopped, Entry::default()).unwrap();
        drop(log);
        let log = open();
        assert_eq!(log.due_records(), 1);
        assert!(log.checkpoint(false).unwrap().is_some());
        let all = read_all(dir.path()).unwrap();
        let witnessed: Vec<_> = all.iter().filter(|r| r.event == Event::Witnessed).collect();
        assert_eq!(witnessed.len(), 4);
        assert_eq!(witnessed[0].detail.as_deref(), Some("note 1"));
        assert_eq!(witnessed[0].peer.as_deref(), Some("internet"));
        assert_eq!(witnessed[0].size, Some(5));
    }

    #[test]
    fn a_second_writer_of_the_same_directory_is_refused_until_the_first_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(SigningKey::generate().unwrap());
        let first = open(dir.path(), &key);
        first.append(Event::ConfigLoaded, Entry::default()).unwrap();
        let second = AuditLog::open(
            dir.path(),
            "court",
            key.clone(),
            CheckpointPolicy::default(),
            None,
        );
        let Err(AuditError::Locked(path)) = second else {
            panic!("a second writer opened the log");
        };
        assert_eq!(path, dir.path().join(LOCK));
        assert!(
            AuditError::Locked(path)
                .to_string()
                .contains("give each node its own node.audit_dir")
        );
        // the first writer's records go on, numbered as before
        assert_eq!(first.append(Event::Stopped, Entry::default()).unwrap(), 2);
        drop(first);
        let again = open(dir.path(), &key);
        assert_eq!(
            again.append(Event::ConfigLoaded, Entry::default()).unwrap(),
            3
        );
        // the lock file is not part of the log: it verifies
        again.checkpoint(true).unwrap();
        assert_eq!(read::verify(dir.path(), None).unwrap().records, 3);
    }

    #[test]
    fn torn_last_line_is_cut_and_another_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(SigningKey::generate().unwrap());
        {
            let log = open(dir.path(), &key);
            log.durable(Event::ConfigLoaded, Entry::default()).unwrap();
        }
        let seg = dir.path().join(segment_name(1));
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"{\"seq\":2,\"ti").unwrap();
        let log = open(dir.path(), &key);
        assert_eq!(log.append(Event::Stopped, Entry::default()).unwrap(), 2);
        log.checkpoint(true).unwrap();
        assert_eq!(read::verify(dir.path(), None).unwrap().records, 2);
        drop(log);
        let other = Arc::new(SigningKey::generate().unwrap());
        assert!(matches!(
            AuditLog::open(
                dir.path(),
                "court",
                other,
                CheckpointPolicy::default(),
                None
            ),
            Err(AuditError::OtherKey(_))
        ));
    }

    #[test]
    fn a_log_changed_under_its_checkpoint_is_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(SigningKey::generate().unwrap());
        {
            let log = open(dir.path(), &key);
            log.append(Event::ConfigLoaded, Entry::default()).unwrap();
            log.append(Event::Stopped, Entry::default()).unwrap();
            log.checkpoint(true).unwrap();
        }
        let seg = dir.path().join(segment_name(1));
        let text = std::fs::read_to_string(&seg).unwrap();
        std::fs::write(&seg, text.replace("stopped", "started")).unwrap();
        assert!(matches!(
            AuditLog::open(
                dir.path(),
                "court",
                key.clone(),
                CheckpointPolicy::default(),
                None
            ),
            Err(AuditError::Diverged { size: 2, .. })
        ));
    }

    #[test]
    fn a_gm_log_hashes_its_tree_and_records_with_sm3_and_an_older_sha256_tree_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(SigningKey::generate_for(Suite::Gm).unwrap());
        {
            let log = open(dir.path(), &key);
            let e = Entry {
                digest: Some([7; 32]),
                ..Entry::default()
            };
            log.append(Event::Landed, e).unwrap();
            log.append(Event::Stopped, Entry::default()).unwrap();
            log.checkpoint(true).unwrap();
        }
        let records = read_all(dir.path()).unwrap();
        // the content hash is written as `sm3`, never as `sha256`
        assert_eq!(records[0].sm3, Some("07".repeat(32)));
        assert_eq!(records[0].sha256, None);
        let cp = read::checkpoints(dir.path()).unwrap().pop().unwrap();
        let root = |suite| {
            let l = read::leaves(dir.path(), suite).unwrap();
            let h: Vec<_> = l.iter().map(|(h, _)| *h).collect();
            hex::encode(crate::core::merkle::root_of(suite, &h))
        };
        assert_eq!(cp.root, root(Suite::Gm));
        assert!(read::verify(dir.path(), None).is_ok());
        // a gm log whose checkpoint holds the SHA-256 tree's root (an older release's) is
        // named as such at open, not taken for tampering
        let path = dir.path().join(CHECKPOINTS);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace(&cp.root, &root(Suite::Default))).unwrap();
        let e = AuditLog::open(
            dir.path(),
            "court",
            key.clone(),
            CheckpointPolicy::default(),
            None,
        )
        .err()
        .unwrap();
        assert!(matches!(e, AuditError::Sha256Tree(_)), "{e}");
        assert!(e.to_string().contains("new, empty audit directory"), "{e}");
    }
}
