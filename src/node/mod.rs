//! The node: its configuration, keys, policies, audit log and metrics, loaded once and
//! shared by every stage; the refusal chain (quarantine, audit, metric, log) in one place;
//! the node's health and disk; key rotation; the watch on the wall clock.
//!
//! ```text
//!  config ─► Node::open ─► keys (rotate) · audit log · policies (live set) · metrics
//!                │
//!                ├─► sender::Sender   (spool, intake, inspect, seal)      } started by
//!                ├─► receiver::Receiver (delivery state, one pipeline)    } cli::run
//!                └─► refuse(): quarantine::put ─► ops::events::Refused
//! ```
//!
//! The node knows no stage: stages hold an `Arc<Node>` and never call back into the
//! pipeline through it.

pub mod approvals;
pub mod clock;
pub mod config;
pub mod desk;
pub mod health;
pub mod layout;
pub mod nats;
pub mod policies;
pub mod quarantine;
pub mod rotate;

use crate::audit::{AuditError, AuditLog};
use crate::core::id::ObjectId;
use crate::core::reason::{Refusal, Side};
use crate::core::wire::LinkKind;
use crate::keys::KeyError;
use crate::keys::tls::LinkError;
use crate::node::config::Config;
use crate::node::policies::{Policies, Reload};
use crate::ops::events::{self, Sink, Subject};
use crate::ops::systemd;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use thiserror::Error;

/// Why a node could not start or had to stop.
#[derive(Debug, Error)]
pub enum NodeError {
    /// A key could not be loaded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The audit log could not be opened or written.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The link could not be set up.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// A directory could not be made or used.
    #[error("directory {path}: {error}{}", crate::problem::hint(error))]
    Dir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        error: io::Error,
    },
    /// A receiving channel's message log could not be opened.
    #[error("channel {channel}: {error}")]
    MessageLog {
        /// The channel.
        channel: String,
        /// What failed (it names the file).
        error: String,
    },
    /// A folder the node works in, or the folder it is made in, does not exist: the node
    /// makes its own folders, never the exchange directory (an operator's, perhaps a share
    /// not mounted yet) nor the parent of its state or audit directory (a mistyped path
    /// would otherwise become a new tree that nothing reads).
    #[error("{key} = {}", missing(path, what))]
    Missing {
        /// The configuration key.
        key: &'static str,
        /// The path as configured.
        path: std::path::PathBuf,
        /// Which folder is missing: the path itself, or its parent.
        what: &'static str,
    },
    /// Another process runs a node on this state directory.
    #[error(
        "{path} is locked: another `isogate run` uses this state directory (stop it first, or give this node its own node.state_dir)"
    )]
    Locked {
        /// The lock file.
        path: std::path::PathBuf,
    },
    /// The outbox watch could not be set up.
    #[error("watching the outboxes: {0}")]
    Watch(#[from] notify::Error),
    /// The metrics could not be defined.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The status endpoint could not listen.
    #[error(
        "cannot serve /metrics on {addr}: {why} (is another program using the port? change [metrics] listen)"
    )]
    Status {
        /// The address.
        addr: std::net::SocketAddr,
        /// What failed.
        why: String,
    },
}

/// A fault in a stage: the object waits (or the peer sends it again); nothing is lost.
/// A refusal is not a fault: it is a [`Refusal`], audited and quarantined.
#[derive(Debug, Error)]
pub enum Fault {
    /// A file or directory operation failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The audit log could not be written.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The system random generator failed.
    #[error(transparent)]
    Random(#[from] crate::core::id::RandomError),
    /// The manifest could not be built, signed or framed.
    #[error(transparent)]
    Manifest(#[from] crate::core::manifest::ManifestError),
    /// The object frame could not be built.
    #[error(transparent)]
    Wire(#[from] crate::core::wire::WireError),
    /// A spooled object names a channel the configuration no longer has.
    #[error("spooled object {object} names unknown channel {channel}")]
    UnknownChannel {
        /// The object.
        object: ObjectId,
        /// The channel it names.
        channel: String,
    },
}

/// A node's loaded state, shared by its stages.
pub struct Node {
    /// The validated configuration.
    pub cfg: Config,
    /// The audit log.
    pub audit: AuditLog,
    /// The keys in force (signing, TLS, the peer's pins), switched on SIGHUP.
    pub keys: rotate::Keys,
    /// The policies in force, swapped on reload.
    pub policies: Policies,
    /// The node's metrics.
    pub metrics: crate::ops::metrics::Metrics,
    /// Whether each link is up: `[quic, diode]`.
    links: [AtomicBool; 2],
    /// What the diode receiver finds wrong with the link now (mismatched settings,
    /// datagrams that do not authenticate), one line each, for `/healthz`.
    diode_problems: std::sync::Mutex<Vec<String>>,
    /// The exclusive lock on `<state_dir>/lock`, held while the node runs.
    _lock: std::fs::File,
}

/// Takes the exclusive lock (`flock`) on `<state_dir>/lock`, released when the process ends,
/// however it ends.
fn lock_state(state_dir: &Path) -> Result<std::fs::File, NodeError> {
    let path = state_dir.join("lock");
    // readable by the officers' commands, which ask whether a node holds it (umask aside)
    match crate::fsx::lock_exclusive(&path, 0o666) {
        Ok(Some(file)) => Ok(file),
        Ok(None) => Err(NodeError::Locked { path }),
        Err(error) => Err(NodeError::Dir { path, error }),
    }
}

/// What [`NodeError::Missing`] says after its key: the path, which folder is missing
/// (`what`) and what to do.
pub fn missing(path: &Path, what: &str) -> String {
    format!(
        "{}: {what} does not exist; create it (mount it, if it is a share) before the node starts, or correct the path",
        path.display()
    )
}

/// Checks that the folders the node makes its own in exist: the exchange directory
/// itself, and the parents of the state and audit directories (the node makes those two,
/// and the channels' folders, on a first start).
///
/// # Errors
/// [`NodeError::Missing`] naming the key and the path. `isogate check` reports the same.
pub fn check_folders(node: &config::NodeConfig) -> Result<(), NodeError> {
    // only a folder that is not there is missing: one the node may not reach is said as
    // the system says it, when it is used
    let missing =
        |p: &Path| std::fs::metadata(p).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
    if missing(&node.exchange_dir) {
        return Err(NodeError::Missing {
            key: "node.exchange_dir",
            path: node.exchange_dir.clone(),
            what: "this folder",
        });
    }
    for (key, path) in [
        ("node.state_dir", &node.state_dir),
        ("node.audit_dir", &node.audit_dir),
    ] {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        if missing(path) && parent.is_some_and(missing) {
            return Err(NodeError::Missing {
                key,
                path: path.clone(),
                what: "the folder it is made in",
            });
        }
    }
    Ok(())
}

fn mkdir(path: &Path) -> Result<(), NodeError> {
    std::fs::create_dir_all(path).map_err(|error| NodeError::Dir {
        path: path.to_path_buf(),
        error,
    })
}

/// Makes `path` with `mode` (less the umask) if it is missing, its missing parents as
/// `mkdir` does; an existing directory keeps its mode (the operator's, or the package's).
fn mkdir_mode(path: &Path, mode: u32) -> Result<(), NodeError> {
    use std::os::unix::fs::DirBuilderExt;
    let err = |error| NodeError::Dir {
        path: path.to_path_buf(),
        error,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        mkdir(parent)?;
    }
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(err(e)),
    }
}

/// What a refusal is about and where its content (if any) is.
pub struct Refused<'a> {
    /// The object.
    pub subject: Subject<'a>,
    /// The quarantine directory of its channel.
    pub quarantine: &'a Path,
    /// What goes into quarantine: an entry to move in (outbox entry, spool content or part
    /// file), or bytes to write in.
    pub content: Option<quarantine::Held<'a>>,
    /// Which side refused it.
    pub side: Side,
}

impl Node {
    /// Loads keys, opens the audit log, makes the directories.
    ///
    /// # Errors
    /// A key cannot be loaded, a directory cannot be made, the audit log cannot be opened,
    /// or the metrics cannot be defined.
    pub fn open(cfg: Config) -> Result<Node, NodeError> {
        let keys = rotate::Keys::load(&cfg)?;
        check_folders(&cfg.node)?;
        // the spool is the service's alone; the audit log and the quarantine reasons are
        // readable by their directory's group (the auditors), never by the world
        mkdir_mode(&cfg.node.state_dir, 0o700)?;
        mkdir_mode(&cfg.node.audit_dir, crate::audit::DIR_MODE)?;
        // before anything is read or written: a second node on the same state would
        // recover (delete) the first one's deliveries and interleave its audit records
        let lock = lock_state(&cfg.node.state_dir)?;
        // a stream channel has no folders
        for c in cfg.file_channels() {
            mkdir_mode(&c.quarantine, quarantine::DIR_MODE)?;
            match c.role {
                crate::node::config::Role::Send => mkdir(&c.outbox)?,
                crate::node::config::Role::Receive => mkdir(&c.inbox)?,
            }
        }
        let audit = AuditLog::open(
            &cfg.node.audit_dir,
            &cfg.node.name,
            keys.signing(),
            cfg.audit.checkpoints,
            cfg.audit.syslog.clone(),
        )?;
        let policies = Policies::new(&cfg);
        let metrics = crate::ops::metrics::Metrics::new()?;
        for (channel, version) in policies.versions() {
            metrics.policy_version(&channel, None, &version);
        }
        for c in cfg.channels.iter().filter(|c| c.link == LinkKind::Diode) {
            metrics.diode_channel(&c.name);
        }
        let sending: Vec<&str> = cfg.file_sending().map(|c| c.name.as_str()).collect();
        let receiving: Vec<&str> = cfg.file_receiving().map(|c| c.name.as_str()).collect();
        metrics.prime(&sending, &receiving);
        metrics.build(&cfg.node.name, &cfg.peer.name);
        Ok(Node {
            policies,
            metrics,
            cfg,
            audit,
            keys,
            links: [AtomicBool::new(false), AtomicBool::new(false)],
            diode_problems: std::sync::Mutex::new(Vec::new()),
            _lock: lock,
        })
    }

    /// Where this node's telemetry events go.
    pub fn sink(&self) -> Sink<'_> {
        Sink {
            audit: &self.audit,
            metrics: &self.metrics,
        }
    }

    /// The links this node's channels use.
    pub fn links_in_use(&self) -> Vec<LinkKind> {
        [LinkKind::Quic, LinkKind::Diode]
            .into_iter()
            .filter(|l| self.cfg.channels.iter().any(|c| c.link == *l))
            .collect()
    }

    fn link_slot(&self, link: LinkKind) -> &AtomicBool {
        match link {
            LinkKind::Quic => &self.links[0],
            LinkKind::Diode => &self.links[1],
        }
    }

    /// Whether a link is up now.
    pub fn link_is_up(&self, link: LinkKind) -> bool {
        self.link_slot(link).load(Ordering::Relaxed)
    }

    /// Replaces what the diode receiver finds wrong with the link (empty: nothing).
    pub fn set_diode_problems(&self, problems: Vec<String>) {
        if let Ok(mut p) = self.diode_problems.lock() {
            *p = problems;
        }
    }

    /// What the diode receiver finds wrong with the link now.
    pub fn diode_problems(&self) -> Vec<String> {
        self.diode_problems
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
    }

    /// Records that a link came up or went down: the node's state, and an
    /// [`events::LinkChanged`] (metric, log and, when `audited`, the audit record).
    pub fn link_changed(&self, link: LinkKind, up: bool, detail: &str, audited: bool) {
        self.link_slot(link).store(up, Ordering::Relaxed);
        events::LinkChanged {
            link,
            up,
            peer: &self.cfg.peer.name,
            detail,
            audited,
        }
        .emit(self.sink());
    }

    /// The refusal chain, the one place it is written: moves the content (if any) into the
    /// channel's quarantine with its reason file, then audits (durably), counts and logs it.
    ///
    /// # Errors
    /// The quarantine or the audit record could not be written; the caller keeps the
    /// object where it is and tries again.
    pub fn refuse(&self, r: &Refused<'_>, refusal: &Refusal) -> Result<(), Fault> {
        let s = &r.subject;
        let subject = quarantine::Subject {
            id: s.id,
            channel: s.channel,
            name: s.name,
        };
        quarantine::put(
            r.quarantine,
            &subject,
            r.content,
            &self.cfg.node.name,
            r.side,
            refusal,
            self.keys.data().as_deref(),
        )?;
        let peer = (r.side == Side::Receiver).then_some(self.cfg.peer.name.as_str());
        events::Refused {
            subject: *s,
            side: r.side,
            peer,
            refusal,
        }
        .emit(self.sink())?;
        Ok(())
    }

    /// Quarantines one refused message of `channel`: its body goes to the channel's
    /// quarantine as `<id>` (the message id; its reason file and audit record name it
    /// `<id>.json`), sealed where the node seals at rest; audited `message_refused`
    /// (durable, with the suite's hash and size of `body`) and counted in
    /// `isogate_messages_refused_total`. Done again for the same message (a batch checked
    /// again after a crash or a failed step), it keeps one entry and repeats the record.
    /// Where `<id>` already holds other content (another entry of that name, or the id
    /// given again to another body), the message goes in under a fresh random id instead,
    /// its name and record still naming the message: an entry is never rewritten as
    /// another. `side`: the node that refused it.
    ///
    /// # Errors
    /// [`Fault::UnknownChannel`], or the quarantine or the audit record cannot be written.
    pub fn message_refused(
        &self,
        channel: &str,
        id: crate::core::message::MessageId,
        body: &[u8],
        refusal: &Refusal,
        side: Side,
    ) -> Result<(), Fault> {
        let c = self
            .cfg
            .channel(channel)
            .ok_or_else(|| Fault::UnknownChannel {
                object: ObjectId(id.0),
                channel: channel.to_string(),
            })?;
        let keys = self.keys.data();
        let qid =
            match quarantine::holds_other(&c.quarantine, ObjectId(id.0), body, keys.as_deref())? {
                false => ObjectId(id.0),
                true => ObjectId::random()?,
            };
        let name = format!("{id}.json");
        let subject = quarantine::Subject {
            id: qid,
            channel,
            name: &name,
        };
        quarantine::put(
            &c.quarantine,
            &subject,
            Some(quarantine::Held::Bytes(body)),
            &self.cfg.node.name,
            side,
            refusal,
            keys.as_deref(),
        )?;
        let mut e = crate::audit::Entry::object(channel, qid, &name);
        e.message = Some(id.to_string());
        e.size = Some(body.len() as u64);
        e.digest = Some(crate::keys::suite::digest(self.cfg.node.suite, body));
        e.reason = Some(refusal.reason);
        e.detail = Some(refusal.detail.clone());
        e.peer = (side == Side::Receiver).then(|| self.cfg.peer.name.clone());
        self.audit.durable(crate::audit::Event::MessageRefused, e)?;
        self.metrics
            .messages_refused
            .with_label_values(&[channel, refusal.reason.as_str()])
            .inc();
        tracing::warn!(channel, message = %id, side = side.as_str(), reason = %refusal.reason, detail = %refusal.detail, "message refused");
        Ok(())
    }

    /// Records, durably, that personal data was masked: the hash of the masked copy that
    /// crosses (or lands) and the hash of the original.
    ///
    /// # Errors
    /// The masked copy cannot be read, or the audit record cannot be written.
    pub fn masked(
        &self,
        subject: Subject<'_>,
        original: [u8; 32],
        masked: &crate::inspect::Masked,
    ) -> Result<(), Fault> {
        let peer = self
            .cfg
            .receiving()
            .any(|c| c.name == subject.channel)
            .then_some(self.cfg.peer.name.as_str());
        events::Masked {
            subject: Subject {
                digest: Some(masked.digest),
                ..subject
            },
            peer,
            original,
            lines: masked.lines,
            left_out: masked.left_out,
        }
        .emit(self.sink())?;
        Ok(())
    }

    /// Applies a policy reload and audits each change or refusal.
    pub fn reload_policies(&self) {
        systemd::notify(&[sd_notify::NotifyState::Reloading]);
        for r in self.policies.reload(&self.cfg) {
            match &r {
                Reload::Reloaded {
                    channel, from, to, ..
                } => {
                    self.metrics.policy_version(channel, Some(from), to);
                    self.metrics
                        .policy_reloads
                        .with_label_values(&[channel.as_str(), "reloaded"])
                        .inc();
                }
                Reload::Refused { channel, .. } | Reload::ApprovalKept { channel, .. } => self
                    .metrics
                    .policy_reloads
                    .with_label_values(&[channel.as_str(), "refused"])
                    .inc(),
            }
            let (event, detail) = match &r {
                Reload::Reloaded {
                    channel,
                    file,
                    from,
                    to,
                } => {
                    tracing::info!(channel = %channel, file = %file.display(), from = %from, to = %to, "policy reloaded");
                    (
                        crate::audit::Event::PolicyReloaded,
                        format!("{}: version {from} -> {to}", file.display()),
                    )
                }
                Reload::Refused {
                    channel,
                    file,
                    kept,
                    problems,
                } => {
                    tracing::error!(channel = %channel, file = %file.display(), kept = %kept, problems = %problems, "policy refused; the one in force stays");
                    (
                        crate::audit::Event::PolicyRefused,
                        format!("{problems}; version {kept} stays in force"),
                    )
                }
                Reload::ApprovalKept {
                    channel,
                    file,
                    kept,
                } => {
                    tracing::warn!(channel = %channel, file = %file.display(), kept = %kept, "policy refused: its [approval] section changed, which needs a restart of the node; the whole file waits and the policy in force stays");
                    (
                        crate::audit::Event::PolicyRefused,
                        format!(
                            "{}: the [approval] section changed: that needs a restart of the node (the approval rule stays as at start); the whole file is refused and version {kept} stays in force",
                            file.display()
                        ),
                    )
                }
            };
            let channel = match &r {
                Reload::Reloaded { channel, .. }
                | Reload::Refused { channel, .. }
                | Reload::ApprovalKept { channel, .. } => channel,
            };
            let e = crate::audit::Entry {
                channel: Some(channel.clone()),
                detail: Some(detail),
                ..crate::audit::Entry::default()
            };
            if let Err(e) = self.audit.durable(event, e) {
                tracing::error!(error = %e, "cannot audit a policy reload");
            }
        }
        systemd::notify(&[sd_notify::NotifyState::Ready]);
    }
}

/// The hash of a file's content under `suite` (SHA-256, or SM3 under `gm`), read in bounded
/// chunks.
///
/// # Errors
/// The file cannot be opened or read.
pub fn hash_file(path: &Path, suite: crate::keys::suite::Suite) -> io::Result<[u8; 32]> {
    let mut f = crate::fsx::open_nofollow(path)?;
    Ok(crate::core::digest::hash_content(&mut f, crate::core::manifest::CHUNK_SIZE, suite)?.0)
}

/// How many objects a node handles at once where each mostly waits on its fsyncs (files
/// taken from the outboxes, objects landed from the diode): two per core, at least 4 (more
/// at once keep a disk busy) and at most 16 (each large one holds a few MiB of buffers and
/// a thread or two).
pub fn objects_at_once() -> usize {
    std::thread::available_parallelism()
        .map_or(4, |n| n.get().saturating_mul(2))
        .clamp(4, 16)
}

/// An object id for a refusal that has none yet (an outbox entry that never reached the
/// spool, or an object whose manifest could not be read).
///
/// # Errors
/// The system random generator failed.
pub fn fresh_id() -> Result<ObjectId, Fault> {
    Ok(ObjectId::random()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mistyped_exchange_state_or_audit_folder_stops_the_start_and_makes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, 25805, None).unwrap();
        let file = lab.join("court.toml");
        let sound = std::fs::read_to_string(&file).unwrap();
        let cases = [
            (
                "exchange_dir = \"court\"",
                "exchange_dir = \"courtt\"",
                "node.exchange_dir",
                "courtt",
            ),
            (
                "state_dir = \"court/state\"",
                "state_dir = \"court/nonexistent/state\"",
                "node.state_dir",
                "court/nonexistent",
            ),
            (
                "audit_dir = \"court/audit\"",
                "audit_dir = \"cour/audit\"",
                "node.audit_dir",
                "cour",
            ),
        ];
        for (from, to, key, made) in cases {
            assert!(sound.contains(from), "{from}");
            std::fs::write(&file, sound.replacen(from, to, 1)).unwrap();
            let cfg = Config::load(&file).unwrap();
            match Node::open(cfg) {
                Err(e @ NodeError::Missing { .. }) => {
                    let text = e.to_string();
                    assert!(text.starts_with(key), "{text}");
                    assert!(text.contains("does not exist"), "{text}");
                }
                Err(e) => panic!("{key}: {e}"),
                Ok(_) => panic!("{key}: started"),
            }
            assert!(!lab.join(made).exists(), "{made} was made");
        }
        // the lab as written starts, making its state and audit folders on a first start
        std::fs::write(&file, &sound).unwrap();
        for made in ["court/state", "court/audit"] {
            let _ = std::fs::remove_dir_all(lab.join(made));
        }
        let node = Node::open(Config::load(&file).unwrap()).unwrap();
        assert!(node.cfg.node.state_dir.is_dir() && node.cfg.node.audit_dir.is_dir());
        drop(node);
        // the audit log in the state directory: two locks, two files
        let together = sound.replacen(
            "audit_dir = \"court/audit\"",
            "audit_dir = \"court/state\"",
            1,
        );
        std::fs::write(&file, together).unwrap();
        let node = Node::open(Config::load(&file).unwrap()).unwrap();
        assert_eq!(node.cfg.node.audit_dir, node.cfg.node.state_dir);
    }
}
