//! Key rotation: the keys a running node uses, and their switch on SIGHUP without a restart.
//!
//! ```text
//!  SIGHUP ─► Config::load (whole file validated; refused: one log line, nothing changes)
//!         ─► KeySet::load (current keys, next keys, the peer's current and next pins)
//!         ─► new TLS server/client configs built (refused if they cannot be)
//!         ─► own signing key changed?  AuditLog::switch_key (key_switched, endorsed)
//!         ─► swap: manifests are signed with the new key, new QUIC connections present
//!            the new certificate (server config of the endpoint, `client_config` for the
//!            next `connect_with`); existing connections finish; connections whose peer certificate is no longer pinned close
//!            (the sender reconnects and sends again what had no receipt)
//! ```
//!
//! The peer side accepts either the current or the next key and certificate of its peer
//! (`[peer] next_*`), so a pair rotates with no moment where the two disagree:
//! (1) the peer pins our next keys beside the current ones; (2) we promote our next keys to
//! current and send SIGHUP; (3) the peer drops our old keys. See certs/README.md.

use crate::audit::{AuditError, AuditLog, Entry, Event};
use crate::core::verify::ReceiveRules;
use crate::keys::at_rest::DataKeys;
use crate::keys::tls::{self, Credentials, LinkError};
use crate::keys::{self, KeyError, SigningKey, VerifyKey};
use crate::node::config::Config;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use thiserror::Error;

/// Why a key reload was refused (the keys in force stay).
#[derive(Debug, Error)]
pub enum RotateError {
    /// A key or certificate could not be loaded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The TLS configuration could not be built from the new certificate and key.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The switch could not be recorded in the audit log.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The configuration names another node or peer than the running one.
    #[error("{0} changed: that needs a restart, not SIGHUP")]
    Identity(&'static str),
    /// The configuration names another suite than the running node's.
    #[error(
        "node.suite changed: a pair's suite is chosen when the pair is set up (both nodes, keys of that suite, a new audit log: its key switches stay within one suite); the node keeps the suite it started with"
    )]
    Suite,
    /// The data keys would no longer open what the node sealed with the ones in force.
    #[error("{0}")]
    DataKeys(String),
}

/// Every key the node uses at one moment.
pub struct KeySet {
    /// Signs manifests and audit checkpoints.
    pub signing: Arc<SigningKey>,
    /// Our TLS certificate and key, and the peer certificates accepted.
    pub credentials: Credentials,
    /// What the receiver accepts from the peer (its current and next signing keys).
    pub rules: Arc<ReceiveRules>,
    /// Our next signing key (public half), when one is held ready.
    pub next_signing: Option<VerifyKey>,
    /// The data keys (`[node] data_key`) that seal what the node keeps at rest; read again
    /// on SIGHUP, so a rotated key seals from then on.
    pub data: Option<Arc<DataKeys>>,
}

impl KeySet {
    /// Loads the keys a configuration names; `channels` are the channels received.
    pub fn load(cfg: &Config, channels: Vec<String>) -> Result<KeySet, KeyError> {
        let signing = Arc::new(SigningKey::load(&cfg.node.signing_key)?);
        let (cert, key) = keys::load_tls_pair(&cfg.node.tls_cert, &cfg.node.tls_key)?;
        let mut peer_keys = vec![VerifyKey::load(&cfg.peer.signing_public_key)?];
        let mut peer_certs = vec![keys::load_cert(&cfg.peer.tls_cert)?];
        if let Some(next) = &cfg.peer.next {
            let k = VerifyKey::load(&next.signing_public_key)?;
            if !peer_keys.contains(&k) {
                peer_keys.push(k);
            }
            let c = keys::load_cert(&next.tls_cert)?;
            if !peer_certs.contains(&c) {
                peer_certs.push(c);
            }
        }
        let next_signing = match &cfg.node.next {
            Some(next) => {
                // held ready: checked now, so that promoting them cannot fail later
                keys::load_tls_pair(&next.tls_cert, &next.tls_key)?;
                Some(SigningKey::load(&next.signing_key)?.verify_key())
            }
            None => None,
        };
        let data = match &cfg.node.data_key {
            Some(path) => Some(Arc::new(DataKeys::load(path)?)),
            None => None,
        };
        // the configuration's review checked the same files a moment ago: checked again on
        // what is loaded, so that a file replaced in between cannot mix suites
        let of_suite = signing.suite() == cfg.node.suite
            && peer_keys
                .iter()
                .chain(next_signing.iter())
                .all(|k| k.suite() == cfg.node.suite);
        if !of_suite {
            return Err(KeyError::Format {
                path: cfg.file.clone(),
                what: format!(
                    "the signing keys it names are not all of the pair's suite {} ([node] suite): a key file changed after the configuration was reviewed",
                    cfg.node.suite
                ),
            });
        }
        Ok(KeySet {
            signing,
            credentials: Credentials {
                cert,
                key,
                peer_certs,
                suite: cfg.node.suite,
            },
            rules: Arc::new(ReceiveRules {
                peer: cfg.peer.name.clone(),
                peer_keys,
                channels,
            }),
            next_signing,
            data,
        })
    }

    /// A one-line description for logs and the audit record: fingerprints only.
    pub fn describe(&self) -> String {
        let fps = |v: &mut dyn Iterator<Item = String>| v.collect::<Vec<_>>().join(" ");
        format!(
            "signing key {}; certificate {}; next signing key {}; peer signing keys {}; peer certificates {}; data keys {}",
            self.signing.verify_key().fingerprint(),
            keys::cert_fingerprint(&self.credentials.cert),
            self.next_signing
                .as_ref()
                .map_or("none".into(), VerifyKey::fingerprint),
            fps(&mut self.rules.peer_keys.iter().map(VerifyKey::fingerprint)),
            fps(&mut self
                .credentials
                .peer_certs
                .iter()
                .map(keys::cert_fingerprint)),
            self.data
                .as_ref()
                .map_or("none (stored in plaintext)".into(), |d| d.describe()),
        )
    }
}

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Our signing key was switched (the audit seq of the `key_switched` record).
    pub signing: Option<u64>,
    /// Our TLS certificate changed.
    pub certificate: bool,
    /// The peer's accepted keys or certificates changed.
    pub peer: bool,
    /// Our next keys changed.
    pub next: bool,
    /// The data keys changed (another sealing key, or keys added or dropped).
    pub data: bool,
    /// Connections closed because their peer certificate is no longer pinned.
    pub closed: usize,
}

impl Changes {
    /// Whether anything changed.
    pub fn any(&self) -> bool {
        self.signing.is_some() || self.certificate || self.peer || self.next || self.data
    }
}

/// The node's keys in force, swapped whole on reload.
pub struct Keys {
    current: RwLock<Arc<KeySet>>,
    channels: Vec<String>,
    node: String,
    peer: String,
    endpoint: Mutex<Option<quinn::Endpoint>>,
    client: Mutex<Option<quinn::ClientConfig>>,
    conns: Mutex<Vec<quinn::Connection>>,
    /// One reload at a time.
    reloading: Mutex<()>,
}

impl Keys {
    /// Loads the keys of a configuration.
    pub fn load(cfg: &Config) -> Result<Keys, KeyError> {
        let channels: Vec<String> = cfg.file_receiving().map(|c| c.name.clone()).collect();
        let set = KeySet::load(cfg, channels.clone())?;
        Ok(Keys {
            current: RwLock::new(Arc::new(set)),
            channels,
            node: cfg.node.name.clone(),
            peer: cfg.peer.name.clone(),
            endpoint: Mutex::default(),
            client: Mutex::default(),
            conns: Mutex::default(),
            reloading: Mutex::default(),
        })
    }

    /// The key set in force.
    pub fn current(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The key that signs manifests now.
    pub fn signing(&self) -> Arc<SigningKey> {
        self.current().signing.clone()
    }

    /// The data keys in force, if the node seals what it keeps at rest.
    pub fn data(&self) -> Option<Arc<DataKeys>> {
        self.current().data.clone()
    }

    /// The public half of the key that signs manifests now.
    pub fn own_key(&self) -> VerifyKey {
        self.current().signing.verify_key()
    }

    /// What the receiver accepts from the peer now.
    pub fn rules(&self) -> Arc<ReceiveRules> {
        self.current().rules.clone()
    }

    /// Binds the node's QUIC endpoint with the keys in force, and keeps it to update on a
    /// switch.
    pub fn bind(&self, listen: SocketAddr) -> Result<quinn::Endpoint, LinkError> {
        let credentials = &self.current().credentials;
        let client = tls::client_config_for(credentials)?;
        let ep = tls::endpoint_for(credentials, listen)?;
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(client);
        *self.endpoint.lock().unwrap_or_else(|p| p.into_inner()) = Some(ep.clone());
        Ok(ep)
    }

    /// The client configuration for the next connection to the peer (`connect_with`): it
    /// presents the certificate in force and pins the peer's. An endpoint handle's default
    /// client configuration is its own copy, so the sender asks here for each connection.
    pub fn client_config(&self) -> Result<quinn::ClientConfig, LinkError> {
        if let Some(c) = self
            .client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Ok(c);
        }
        tls::client_config_for(&self.current().credentials)
    }

    /// Keeps an established link connection, to close it if its peer's certificate stops
    /// being pinned.
    pub fn track(&self, conn: &quinn::Connection) {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.retain(|c| c.close_reason().is_none());
        conns.push(conn.clone());
    }

    /// Reloads the keys from `cfg` (already validated) and switches to them: see the
    /// module header. On an error nothing has changed.
    pub fn apply(&self, cfg: &Config, audit: &AuditLog) -> Result<Changes, RotateError> {
        let _one = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        if cfg.node.name != self.node {
            return Err(RotateError::Identity("node.name"));
        }
        if cfg.peer.name != self.peer {
            return Err(RotateError::Identity("peer.name"));
        }
        let old = self.current();
        if cfg.node.suite != old.credentials.suite {
            return Err(RotateError::Suite);
        }
        let new = KeySet::load(cfg, self.channels.clone())?;
        if let Some(before) = &old.data {
            let Some(after) = &new.data else {
                return Err(RotateError::DataKeys(
                    "[node] data_key was removed: the quarantine's sealed copies would not open; that needs a restart".into(),
                ));
            };
            if let Some(id) = after.missing_from(before) {
                return Err(RotateError::DataKeys(format!(
                    "data key {id} is no longer in the data key file, or its key changed under the same id: copies it sealed would not open (drop a key only once nothing it sealed is kept, and restart)"
                )));
            }
        }
        let mut changes = Changes {
            certificate: new.credentials.cert != old.credentials.cert,
            peer: new.credentials.peer_certs != old.credentials.peer_certs
                || new.rules.peer_keys != old.rules.peer_keys,
            next: new.next_signing != old.next_signing,
            data: new.data.as_ref().map(|d| d.describe())
                != old.data.as_ref().map(|d| d.describe()),
            ..Changes::default()
        };
        let tls_changed = changes.certificate || changes.peer;
        let endpoint = self
            .endpoint
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // everything that can fail is done before anything changes
        let tls = match (&endpoint, tls_changed) {
            (Some(_), true) => Some((
                tls::server_config_for(&new.credentials)?,
                tls::client_config_for(&new.credentials)?,
            )),
            _ => None,
        };
        // the audit log switches first: nothing is signed with the new key before the
        // old key has endorsed it
        changes.signing = audit.switch_key(new.signing.clone())?;
        let new = Arc::new(new);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = new.clone();
        if let (Some(ep), Some((server, client))) = (endpoint, tls) {
            ep.set_server_config(Some(server));
            *self.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(client);
        }
        if changes.peer {
            changes.closed = self.close_unpinned(&new.credentials);
        }
        Ok(changes)
    }

    /// Closes the connections whose peer presented a certificate no longer pinned.
    fn close_unpinned(&self, credentials: &Credentials) -> usize {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.retain(|c| c.close_reason().is_none());
        let mut closed = 0;
        conns.retain(|c| {
            let pinned = tls::peer_certificate(c).is_some_and(|cert| credentials.accepts(&cert));
            if !pinned {
                c.close(0u32.into(), b"peer certificate no longer pinned");
                closed += 1;
            }
            pinned
        });
        closed
    }
}

/// SIGHUP: re-reads the node's configuration file and switches to the keys it names. A
/// configuration that does not validate, or keys that cannot be used, are refused with one
/// log line and change nothing. Blocking: call it off the async runtime.
pub fn reload(node: &crate::node::Node) {
    let cfg = match Config::load(&node.cfg.file) {
        Ok(cfg) => cfg,
        Err(problems) => {
            let why = problems
                .0
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            tracing::error!(config = %node.cfg.file.display(), problems = %why, "SIGHUP: configuration refused; the keys in force stay");
            return;
        }
    };
    let not_applied = node.cfg.restart_needed(&cfg);
    if !not_applied.is_empty() {
        tracing::warn!(
            config = %node.cfg.file.display(),
            changes = %not_applied.join("; "),
            "SIGHUP: these changes need a restart and are NOT in force (keys and the content of policy files are reloaded)"
        );
    }
    match node.keys.apply(&cfg, &node.audit) {
        Ok(changes) if !changes.any() => {
            tracing::info!("SIGHUP: keys unchanged");
        }
        Ok(changes) => {
            let set = node.keys.current();
            let summary = set.describe();
            if let Some(seq) = changes.signing {
                tracing::info!(seq, key = %set.signing.verify_key().fingerprint(), "SIGHUP: switched to the new signing key");
            }
            if changes.certificate {
                tracing::info!(certificate = %keys::cert_fingerprint(&set.credentials.cert), "SIGHUP: new connections present the new certificate");
            }
            let e = Entry {
                detail: Some(format!("keys reloaded on SIGHUP: {summary}")),
                peer: Some(node.cfg.peer.name.clone()),
                ..Entry::default()
            };
            if let Err(e) = node.audit.durable(Event::ConfigLoaded, e) {
                tracing::error!(error = %e, "cannot audit the key reload");
            }
            tracing::info!(keys = %summary, closed = changes.closed, "SIGHUP: keys reloaded");
        }
        Err(e) => {
            tracing::error!(config = %node.cfg.file.display(), error = %e, "SIGHUP: keys refused; the keys in force stay");
        }
    }
}
