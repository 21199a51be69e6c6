//! One running node: loads its keys and state, recovers what an earlier run left, and runs
//! its stages until asked to stop.
//!
//! ```text
//!  sender side:   watch ─► intake (take) ─► inspect ─► seal ─► transmit ══ quic ══►
//!  receiver side: ══ quic ══► receive (verify) ─► inspect again ─► land | quarantine
//! ```

use crate::audit::{AuditError, AuditLog, Entry, Event};
use crate::config::{Channel, Config};
use crate::inspect;
use crate::keys::{self, KeyError, SigningKey, VerifyKey};
use crate::land::Lander;
use crate::link::{self, Identity, LinkError};
use crate::quarantine::{self, Side, Subject};
use crate::reason::Refusal;
use crate::seal;
use crate::spool::Spool;
use crate::stage::{Sealed, Spooled};
use crate::verify::ReceiveRules;
use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;
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
    #[error("{path}: {source}")]
    Dir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The outbox watch could not be set up.
    #[error("watching the outboxes: {0}")]
    Watch(#[from] notify::Error),
}

/// A node's loaded state, shared by its stages.
pub struct Node {
    /// The validated configuration.
    pub cfg: Config,
    /// The audit log.
    pub audit: AuditLog,
    pub(crate) key: Arc<SigningKey>,
    pub(crate) own_key: VerifyKey,
    pub(crate) spool: Spool,
    pub(crate) lander: Lander,
    pub(crate) rules: ReceiveRules,
    identity: Identity,
}

fn mkdir(path: &Path) -> Result<(), NodeError> {
    std::fs::create_dir_all(path).map_err(|source| NodeError::Dir {
        path: path.to_path_buf(),
        source,
    })
}

impl Node {
    /// Loads keys, opens the audit log, spool and delivery state, makes the directories.
    pub fn open(cfg: Config) -> Result<Node, NodeError> {
        let key = Arc::new(SigningKey::load(&cfg.node.signing_key)?);
        let peer_key = VerifyKey::load(&cfg.peer.signing_public_key)?;
        let identity = Identity {
            cert: keys::load_cert(&cfg.node.tls_cert)?,
            key: keys::load_tls_key(&cfg.node.tls_key)?,
            peer_cert: keys::load_cert(&cfg.peer.tls_cert)?,
        };
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
            move |source| NodeError::Dir { path, source }
        };
        let spool = Spool::open(&cfg.node.state_dir).map_err(dir_err(&cfg.node.state_dir))?;
        let lander = Lander::open(&cfg.node.state_dir).map_err(dir_err(&cfg.node.state_dir))?;
        let audit = AuditLog::open(
            &cfg.node.audit_dir,
            &cfg.node.name,
            key.clone(),
            cfg.audit.checkpoints,
            cfg.audit.syslog,
        )?;
        let rules = ReceiveRules {
            peer: cfg.peer.name.clone(),
            peer_key,
            channels: cfg.receiving().map(|c| c.name.clone()).collect(),
        };
        let own_key = key.verify_key();
        Ok(Node {
            cfg,
            audit,
            key,
            own_key,
            spool,
            lander,
            rules,
            identity,
        })
    }

    /// Runs the node until `shutdown` resolves.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
        let endpoint = link::endpoint(&self.identity, self.cfg.node.listen)?;
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
                    .map_err(|source| NodeError::Dir {
                        path: c.inbox.clone(),
                        source,
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

        let (queue_tx, queue_rx) = mpsc::unbounded_channel::<Sealed>();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(checkpoints(self.clone()));
        tasks.spawn(crate::receive::serve(self.clone(), endpoint.clone()));
        if self.cfg.sending().next().is_some() {
            tasks.spawn(crate::transmit::run(
                self.clone(),
                endpoint.clone(),
                queue_tx.clone(),
                queue_rx,
            ));
            let recovered = self.spool.recover().map_err(|source| NodeError::Dir {
                path: self.cfg.node.state_dir.clone(),
                source,
            })?;
            for r in recovered {
                let node = self.clone();
                let tx = queue_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let sealed = match r.manifest {
                        Some(frame) => seal::reload(r.spooled.clone(), frame, &node.own_key)
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
        }
        drop(queue_tx);

        shutdown.await;
        tracing::info!("stopping");
        self.audit.durable(Event::Stopped, Entry::default())?;
        // the last checkpoint covers the whole log; give it a moment to reach the peer
        if self.audit.checkpoint(true)?.is_some() && self.cfg.sending().next().is_some() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        tasks.abort_all();
        endpoint.close(0u32.into(), b"stopping");
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), endpoint.wait_idle()).await;
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
        let inspected = match inspect::inspect(&channel.policy, spooled)? {
            Ok(i) => i,
            Err((spooled, refusal)) => {
                self.refuse_spooled(&channel, &spooled, &refusal)?;
                return Ok(None);
            }
        };
        let s = inspected.spooled();
        let mut e = Entry::object(&s.channel, s.id, &s.name);
        e.detail = Some(inspected.content_type().to_string());
        self.audit
            .append(Event::Accepted, e)
            .map_err(io::Error::other)?;
        let sealed =
            seal::seal(inspected, &self.key, &self.cfg.node.name).map_err(io::Error::other)?;
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
        tracing::warn!(channel = %channel.name, name = %spooled.name, reason = %refusal.reason, detail = %refusal.detail, "refused");
        self.spool.remove(spooled)
    }
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
