//! One running node: loads its keys and state, recovers what an earlier run left, and runs
//! its stages until asked to stop.
//!
//! ```text
//!  sender side:   watch ─► intake (take) ─► inspect ─► seal ─► transmit ══ quic ══►
//!  receiver side: ══ quic ══► receive (verify) ─► inspect again ─► land | quarantine
//! ```

use crate::audit::{AuditError, AuditLog, Entry, Event};
use crate::config::{Channel, Config, LinkKind};
use crate::inspect::{self, InspectError};
use crate::keys::KeyError;
use crate::land::Lander;
use crate::link::LinkError;
use crate::policies::{Policies, Reload};
use crate::quarantine::{self, Side, Subject};
use crate::reason::Refusal;
use crate::seal;
use crate::spool::Spool;
use crate::stage::{Sealed, Spooled};
use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc;

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
    /// The outbox watch could not be set up.
    #[error("watching the outboxes: {0}")]
    Watch(#[from] notify::Error),
    /// The diode link could not start.
    #[error(transparent)]
    Diode(#[from] crate::diode_link::DiodeError),
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

/// A node's loaded state, shared by its stages.
pub struct Node {
    /// The validated configuration.
    pub cfg: Config,
    /// The audit log.
    pub audit: AuditLog,
    /// The keys in force (signing, TLS, the peer's pins), switched on SIGHUP.
    pub keys: crate::rotate::Keys,
    pub(crate) spool: Spool,
    pub(crate) lander: Lander,
    /// The policies in force, swapped on reload.
    pub policies: Policies,
    /// The node's metrics.
    pub metrics: crate::metrics::Metrics,
    /// Objects waiting for an inspection that could not run (antivirus down, I/O fault).
    waiting: Mutex<Vec<Spooled>>,
    /// Objects whose deferral is already audited (once per object, not per attempt).
    deferred: Mutex<std::collections::HashSet<crate::manifest::ObjectId>>,
    /// Received objects the antivirus could not scan: when each was first deferred.
    pub(crate) deferred_received: Mutex<std::collections::HashMap<crate::manifest::ObjectId, u64>>,
}

fn mkdir(path: &Path) -> Result<(), NodeError> {
    std::fs::create_dir_all(path).map_err(|error| NodeError::Dir {
        path: path.to_path_buf(),
        error,
    })
}

impl Node {
    /// Loads keys, opens the audit log, spool and delivery state, makes the directories.
    pub fn open(cfg: Config) -> Result<Node, NodeError> {
        let keys = crate::rotate::Keys::load(&cfg)?;
        for dir in [&cfg.node.state_dir, &cfg.node.audit_dir] {
            mkdir(dir)?;
        }
        for c in &cfg.channels {
            mkdir(&c.quarantine)?;
            match c.role {
                crate::config::Role::Send => mkdir(&c.outbox)?,
                crate::config::Role::Receive => mkdir(&c.inbox)?,
            }
        }
        let dir_err = |path: &Path| {
            let path = path.to_path_buf();
            move |error| NodeError::Dir { path, error }
        };
        let spool = Spool::open(&cfg.node.state_dir).map_err(dir_err(&cfg.node.state_dir))?;
        let lander = Lander::open(&cfg.node.state_dir).map_err(dir_err(&cfg.node.state_dir))?;
        let audit = AuditLog::open(
            &cfg.node.audit_dir,
            &cfg.node.name,
            keys.signing(),
            cfg.audit.checkpoints,
            cfg.audit.syslog,
        )?;
        let policies = Policies::new(&cfg);
        let metrics = crate::metrics::Metrics::new()?;
        for (channel, version) in policies.versions() {
            metrics.policy_version(&channel, None, &version);
        }
        Ok(Node {
            policies,
            metrics,
            waiting: Mutex::default(),
            deferred: Mutex::default(),
            deferred_received: Mutex::default(),
            cfg,
            audit,
            keys,
            spool,
            lander,
        })
    }

    /// Runs the node until `shutdown` resolves.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
        // QUIC only when a channel uses it: a diode-only node opens no socket that could
        // answer anything
        let endpoint = if self.cfg.channels.iter().any(|c| c.link == LinkKind::Quic) {
            Some(self.keys.bind(self.cfg.node.listen)?)
        } else {
            None
        };
        self.audit.durable(
            Event::ConfigLoaded,
            Entry {
                detail: Some(format!(
                    "config {} ({} channels)",
                    self.cfg.file.display(),
                    self.cfg.channels.len()
                )),
                peer: Some(self.cfg.peer.name.clone()),
                ..Entry::default()
            },
        )?;
        tracing::info!(node = %self.cfg.node.name, zone = %self.cfg.node.zone, listen = %self.cfg.node.listen, "node started");

        for c in self.cfg.receiving() {
            let delivered =
                self.lander
                    .recover(&c.inbox, &c.name)
                    .map_err(|error| NodeError::Dir {
                        path: c.inbox.clone(),
                        error,
                    })?;
            for (id, p) in delivered {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let mut e = Entry::object(&c.name, id, &name);
                e.detail = Some("delivery finished after a restart".into());
                e.peer = Some(self.cfg.peer.name.clone());
                self.audit.durable(Event::Landed, e)?;
                tracing::info!(channel = %c.name, path = %p.display(), "delivery finished after restart");
            }
        }

        for w in &self.cfg.warnings {
            tracing::warn!(warning = %w, "compliance review");
        }
        let (queue_tx, queue_rx) = mpsc::unbounded_channel::<Sealed>();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(checkpoints(self.clone()));
        tasks.spawn(reloads(self.clone())?);
        if let Some(ep) = &endpoint {
            tasks.spawn(crate::receive::serve(self.clone(), ep.clone()));
        }
        let _diode_receiver = if self.cfg.receiving().any(|c| c.link == LinkKind::Diode) {
            Some(crate::diode_link::recv::start(self.clone())?)
        } else {
            None
        };
        if self.cfg.sending().next().is_some() {
            let (quic_tx, quic_rx) = mpsc::unbounded_channel::<Sealed>();
            let diode_tx = if self.cfg.sending().any(|c| c.link == LinkKind::Diode) {
                let (tx, rx) = std::sync::mpsc::channel();
                crate::diode_link::send::start(self.clone(), rx)?;
                Some(tx)
            } else {
                None
            };
            tasks.spawn(route(self.clone(), queue_rx, quic_tx, diode_tx));
            if let Some(ep) = &endpoint {
                tasks.spawn(crate::transmit::run(
                    self.clone(),
                    ep.clone(),
                    queue_tx.clone(),
                    quic_rx,
                ));
            }
            let recovered = self.spool.recover().map_err(|error| NodeError::Dir {
                path: self.cfg.node.state_dir.clone(),
                error,
            })?;
            for r in recovered {
                let node = self.clone();
                let tx = queue_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let sealed = match r.manifest {
                        Some(frame) => seal::reload(r.spooled.clone(), frame, &node.keys.own_key())
                            .map(Some)
                            .or_else(|e| {
                                tracing::warn!(object = %r.spooled.id, error = %e, "stored manifest unusable; sealing again");
                                node.pipeline(r.spooled)
                            }),
                        None => node.pipeline(r.spooled),
                    };
                    node.forward(sealed, &tx);
                });
            }
            let watch = crate::watch::Watch::start(self.clone(), queue_tx.clone())?;
            tasks.spawn(watch.run());
            tasks.spawn(retry_waiting(self.clone(), queue_tx.clone()));
        }
        drop(queue_tx);
        let status =
            match self.cfg.metrics.listen {
                Some(addr) => Some(crate::status::serve(self.clone(), addr).map_err(|e| {
                    NodeError::Status {
                        addr,
                        why: e.to_string(),
                    }
                })?),
                None => None,
            };
        notify_systemd(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&format!(
                "node {} up; {} channel(s)",
                self.cfg.node.name,
                self.cfg.channels.len()
            )),
        ]);
        if let Some(interval) = sd_notify::watchdog_enabled() {
            tasks.spawn(watchdog(interval / 2));
        }

        shutdown.await;
        notify_systemd(&[sd_notify::NotifyState::Stopping]);
        drop(status);
        tracing::info!("stopping");
        self.audit.durable(Event::Stopped, Entry::default())?;
        // the last checkpoint covers the whole log; give it a moment to reach the peer
        if self.audit.checkpoint(true)?.is_some() && self.cfg.sending().next().is_some() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        tasks.abort_all();
        if let Some(ep) = &endpoint {
            ep.close(0u32.into(), b"stopping");
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), ep.wait_idle()).await;
        }
        // and a last one over whatever the closing link added
        self.audit.checkpoint(true)?;
        Ok(())
    }

    /// Sends the latest checkpoint of this node's audit log to the peer, for its witness.
    pub(crate) async fn send_checkpoint(
        &self,
        conn: &quinn::Connection,
        note: &str,
    ) -> io::Result<()> {
        let frame = crate::wire::encode_frame(crate::wire::FrameKind::Checkpoint, note.as_bytes())
            .map_err(io::Error::other)?;
        let mut s = conn.open_uni().await.map_err(io::Error::other)?;
        s.write_all(&frame).await.map_err(io::Error::other)?;
        s.finish().map_err(io::Error::other)
    }

    /// Queues a sealed object, or logs why there is none.
    pub(crate) fn forward(
        &self,
        sealed: io::Result<Option<Sealed>>,
        tx: &mpsc::UnboundedSender<Sealed>,
    ) {
        match sealed {
            Ok(Some(s)) => {
                let _ = tx.send(s);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "object stays in the spool and is retried at the next start");
            }
        }
    }

    /// Inspects and seals a spooled object (blocking). `Ok(None)`: it was refused.
    pub(crate) fn pipeline(&self, spooled: Spooled) -> io::Result<Option<Sealed>> {
        let Some(channel) = self.cfg.channel(&spooled.channel).cloned() else {
            return Err(io::Error::other(format!(
                "spooled object {} names unknown channel {}",
                spooled.id, spooled.channel
            )));
        };
        let policy = self.policies.get(&channel.name);
        let checked = match inspect::inspect(&policy, spooled.clone()) {
            Ok(Ok(c)) => c,
            Ok(Err((spooled, refusal))) => {
                self.refuse_spooled(&channel, &spooled, &refusal)?;
                return Ok(None);
            }
            Err(InspectError::Io(e)) => {
                tracing::error!(channel = %channel.name, name = %spooled.name, error = %e, "inspection failed; the object waits and is tried again");
                self.wait(spooled);
                return Ok(None);
            }
            Err(InspectError::Scan(e)) => {
                self.defer(&channel, &policy, spooled, &e.to_string())?;
                return Ok(None);
            }
        };
        if let Some(m) = checked.masked() {
            let s = checked.spooled();
            let original = hash_file(&s.content())?;
            self.audit_masked(Entry::object(&s.channel, s.id, &s.name), original, m)?;
        }
        let inspected = checked.commit()?;
        let s = inspected.spooled();
        let mut e = Entry::object(&s.channel, s.id, &s.name);
        e.detail = Some(format!(
            "{} (policy {})",
            inspected.content_type(),
            policy.version
        ));
        self.audit
            .append(Event::Accepted, e)
            .map_err(io::Error::other)?;
        let sealed = seal::seal(inspected, &self.keys.signing(), &self.cfg.node.name)
            .map_err(io::Error::other)?;
        self.spool
            .store_manifest(sealed.spooled(), sealed.frame())?;
        let m = sealed.manifest();
        let mut e = Entry::object(&m.channel, m.object_id, &m.name);
        e.size = Some(m.size);
        e.sha256 = Some(m.sha256);
        self.audit
            .append(Event::Sealed, e)
            .map_err(io::Error::other)?;
        Ok(Some(sealed))
    }

    /// Moves a spooled object to quarantine with its reason, audits it, drops it from the spool.
    pub(crate) fn refuse_spooled(
        &self,
        channel: &Channel,
        spooled: &Spooled,
        refusal: &Refusal,
    ) -> io::Result<()> {
        let subject = Subject {
            id: spooled.id,
            channel: &channel.name,
            name: &spooled.name,
        };
        quarantine::put(
            &channel.quarantine,
            &subject,
            Some(&spooled.content()),
            &self.cfg.node.name,
            Side::Sender,
            refusal,
        )?;
        let mut e = Entry::object(&channel.name, spooled.id, &spooled.name);
        e.reason = Some(refusal.reason);
        e.detail = Some(refusal.detail.clone());
        self.audit
            .durable(Event::Refused, e)
            .map_err(io::Error::other)?;
        self.metrics.refused(&channel.name, refusal.reason);
        tracing::warn!(channel = %channel.name, name = %spooled.name, reason = %refusal.reason, detail = %refusal.detail, "refused");
        self.spool.remove(spooled)
    }
}

/// How often objects waiting for the antivirus are tried again.
const RETRY_SCAN: Duration = Duration::from_secs(2);

impl Node {
    /// An object the antivirus could not scan waits in the spool and is tried again, until
    /// the channel's waiting time is over: then it goes to quarantine. It never crosses
    /// unscanned.
    fn defer(
        &self,
        channel: &Channel,
        policy: &crate::policy::Policy,
        spooled: Spooled,
        why: &str,
    ) -> io::Result<()> {
        let max_wait = policy.antivirus.as_ref().map_or(0, |a| a.max_wait_ms);
        let waited = crate::now_ms().saturating_sub(spooled.taken_ms);
        if waited >= max_wait {
            let refusal = Refusal::new(
                crate::reason::Reason::ScanFailed,
                format!("no antivirus verdict after {} s: {why}", waited / 1000),
            );
            return self.refuse_spooled(channel, &spooled, &refusal);
        }
        let first = self
            .deferred
            .lock()
            .map(|mut d| d.insert(spooled.id))
            .unwrap_or(true);
        if first {
            self.metrics
                .scan_deferred
                .with_label_values(&[channel.name.as_str()])
                .inc();
            let mut e = Entry::object(&channel.name, spooled.id, &spooled.name);
            e.detail = Some(why.to_string());
            self.audit
                .append(Event::ScanDeferred, e)
                .map_err(io::Error::other)?;
            tracing::warn!(channel = %channel.name, name = %spooled.name, error = %why, "antivirus unavailable; the object waits");
        }
        self.wait(spooled);
        Ok(())
    }

    /// Puts an object on the list tried again every few seconds.
    fn wait(&self, spooled: Spooled) {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(spooled);
    }

    /// Records, durably, that personal data was masked: the hash of the masked copy that
    /// crosses (or lands) and the hash of the original.
    pub(crate) fn audit_masked(
        &self,
        mut e: Entry,
        original: [u8; 32],
        masked: &inspect::Masked,
    ) -> io::Result<()> {
        e.sha256 = Some(hash_file(&masked.path)?);
        e.detail = Some(format!(
            "personal data masked in {} line(s); original sha256 {}",
            masked.lines,
            hex::encode(original)
        ));
        let (channel, name) = (e.channel.clone(), e.name.clone());
        self.metrics
            .masked
            .with_label_values(&[channel.as_deref().unwrap_or("")])
            .inc();
        self.audit
            .durable(Event::Masked, e)
            .map_err(io::Error::other)?;
        tracing::info!(channel = ?channel, name = ?name, lines = masked.lines, "personal data masked");
        Ok(())
    }

    /// Records that an object went out on the link: audit record and counters.
    pub(crate) fn record_sent(&self, m: &crate::manifest::Manifest) {
        let mut e = Entry::object(&m.channel, m.object_id, &m.name);
        e.size = Some(m.size);
        if let Err(err) = self.audit.append(Event::Sent, e) {
            tracing::error!(object = %m.object_id, error = %err, "cannot audit a sent object");
        }
        self.metrics
            .transmit_objects
            .with_label_values(&[m.channel.as_str()])
            .inc();
        self.metrics
            .transmit_bytes
            .with_label_values(&[m.channel.as_str()])
            .inc_by(m.size);
    }

    /// Applies a reload and audits each change or refusal.
    fn reload_policies(&self) {
        notify_systemd(&[sd_notify::NotifyState::Reloading]);
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
                Reload::Refused { channel, .. } => self
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
                        Event::PolicyReloaded,
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
                        Event::PolicyRefused,
                        format!("{problems}; version {kept} stays in force"),
                    )
                }
            };
            let channel = match &r {
                Reload::Reloaded { channel, .. } | Reload::Refused { channel, .. } => channel,
            };
            let e = Entry {
                channel: Some(channel.clone()),
                detail: Some(detail),
                ..Entry::default()
            };
            if let Err(e) = self.audit.durable(event, e) {
                tracing::error!(error = %e, "cannot audit a policy reload");
            }
        }
        notify_systemd(&[sd_notify::NotifyState::Ready]);
    }
}

fn hash_file(path: &Path) -> io::Result<[u8; 32]> {
    let mut f = std::fs::File::open(path)?;
    Ok(seal::hash_content(&mut f, crate::manifest::CHUNK_SIZE)?.0)
}

/// Sends each sealed object to its channel's link.
async fn route(
    node: Arc<Node>,
    mut queue: mpsc::UnboundedReceiver<Sealed>,
    quic: mpsc::UnboundedSender<Sealed>,
    diode: Option<std::sync::mpsc::Sender<Sealed>>,
) {
    while let Some(sealed) = queue.recv().await {
        let link = node.cfg.channel(&sealed.manifest().channel).map(|c| c.link);
        match (link, &diode) {
            (Some(LinkKind::Diode), Some(d)) => {
                if d.send(sealed).is_err() {
                    tracing::error!("the diode sender stopped; objects stay in the spool");
                }
            }
            _ => {
                let _ = quic.send(sealed);
            }
        }
    }
}

/// Tells systemd (when it started us with a notification socket) how the node is doing.
fn notify_systemd(states: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "cannot notify systemd");
    }
}

/// Tells systemd's watchdog the node is alive, at half its interval: a hung runtime stops
/// these and systemd restarts the service.
async fn watchdog(every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    loop {
        tick.tick().await;
        notify_systemd(&[sd_notify::NotifyState::Watchdog]);
    }
}

/// Tries again, every few seconds, the objects waiting for the antivirus.
async fn retry_waiting(node: Arc<Node>, tx: mpsc::UnboundedSender<Sealed>) {
    let mut tick = tokio::time::interval(RETRY_SCAN);
    loop {
        tick.tick().await;
        let waiting = node
            .waiting
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default();
        for spooled in waiting {
            let n = node.clone();
            let tx = tx.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let sealed = n.pipeline(spooled);
                n.forward(sealed, &tx);
            })
            .await;
        }
    }
}

/// Reloads the policies on SIGHUP and when a policy file changes.
fn reloads(node: Arc<Node>) -> Result<impl Future<Output = ()>, NodeError> {
    use notify::Watcher;
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let files: Vec<_> = node
        .cfg
        .channels
        .iter()
        .map(|c| c.policy_file.clone())
        .collect();
    let watched = files.clone();
    let notify_tx = tx.clone();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev
            && ev.paths.iter().any(|p| watched.contains(p))
        {
            let _ = notify_tx.send(());
        }
    })?;
    let mut dirs: Vec<_> = files.iter().filter_map(|f| f.parent()).collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        watcher.watch(d, notify::RecursiveMode::NonRecursive)?;
    }
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).map_err(
        |error| NodeError::Dir {
            path: node.cfg.file.clone(),
            error,
        },
    )?;
    Ok(async move {
        let _watcher = watcher;
        loop {
            tokio::select! {
                Some(()) = rx.recv() => {
                    // an editor writes in several steps: let them settle
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    while rx.try_recv().is_ok() {}
                }
                Some(()) = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the keys and the policies");
                    let n = node.clone();
                    let _ = tokio::task::spawn_blocking(move || crate::rotate::reload(&n)).await;
                }
                else => return,
            }
            let n = node.clone();
            let _ = tokio::task::spawn_blocking(move || n.reload_policies()).await;
        }
    })
}

/// Writes checkpoints of the audit log as its policy says, until aborted.
async fn checkpoints(node: Arc<Node>) {
    let period = (node.audit.policy().interval_ms / 10).clamp(10, 1000);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(period));
    loop {
        tick.tick().await;
        let n = node.clone();
        match tokio::task::spawn_blocking(move || n.audit.checkpoint(false)).await {
            Ok(Err(e)) => tracing::error!(error = %e, "cannot write an audit checkpoint"),
            Err(e) => tracing::error!(error = %e, "checkpoint task failed"),
            Ok(Ok(_)) => {}
        }
    }
}
