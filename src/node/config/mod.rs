//! Node configuration: TOML parsed into raw structs (`deny_unknown_fields`), then validated
//! into a typed `Config` at start-up. Every problem names the file, the line and the key.
//!
//! Both nodes of a pair can load the same channel list: each finds its role (sender or
//! receiver) from its own zone.

use crate::core::wire::LinkKind;
use crate::policy::Policy;
use crate::problem::{Problem, Problems, Source, relative_to};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The default zones and levels (DESIGN.md §2).
pub const DEFAULT_ZONES: &[(&str, i64)] = &[
    ("internet", 0),
    ("mobile", 1),
    ("external", 1),
    ("court", 2),
    ("classified", 3),
];

type S = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node: RawNode,
    peer: RawPeer,
    #[serde(default)]
    zones: Option<BTreeMap<String, Spanned<i64>>>,
    #[serde(default, rename = "channel")]
    channels: Vec<RawChannel>,
    #[serde(default)]
    intake: RawIntake,
    #[serde(default)]
    link: RawLink,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    disk: RawDisk,
    diode: Option<RawDiode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiode {
    key: S,
    listen: Option<S>,
    peer: Option<S>,
    #[serde(default = "default_mtu")]
    mtu: u32,
    #[serde(default = "default_rate")]
    rate_mbit: u64,
    #[serde(default = "default_repair")]
    repair_ratio: f64,
    #[serde(default = "default_copies")]
    copies: u32,
}

fn default_mtu() -> u32 {
    1500
}

fn default_rate() -> u64 {
    4000
}

fn default_repair() -> f64 {
    0.1
}

fn default_copies() -> u32 {
    2
}

/// Checks the `[diode]` section against the channels that use the diode link.
fn validate_diode(
    src: &mut Source,
    raw: Option<&RawDiode>,
    channels: &[Channel],
    node: &NodeConfig,
    peer: &PeerConfig,
    path: &dyn Fn(&S) -> PathBuf,
) -> Option<DiodeConfig> {
    let uses = channels.iter().any(|c| c.link == LinkKind::Diode);
    let quic = channels.iter().any(|c| c.link == LinkKind::Quic);
    let Some(raw) = raw else {
        if uses {
            src.report(
                None,
                "diode",
                "a channel uses link = \"diode\" but there is no [diode] section (key = \"certs/diode.key\")",
            );
        }
        return None;
    };
    let addr = |src: &mut Source, v: &Option<S>, key: &str, default: SocketAddr| match v {
        None => Some(default),
        Some(s) => match s.get_ref().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                src.report(
                    Some(s.span()),
                    key,
                    format!("{:?}: use HOST:PORT", s.get_ref()),
                );
                None
            }
        },
    };
    let listen = addr(src, &raw.listen, "diode.listen", node.listen)?;
    let peer_addr = addr(src, &raw.peer, "diode.peer", peer.address)?;
    if quic && listen == node.listen {
        src.report(
            raw.listen.as_ref().map(|s| s.span()),
            "diode.listen",
            "this node also has QUIC channels on node.listen: give the diode its own address",
        );
    }
    if crate::core::diode::symbol_size_for_mtu(raw.mtu as usize).is_none() || raw.mtu > 65_535 {
        src.report(
            None,
            "diode.mtu",
            format!(
                "{} is not a usable MTU (576 to 65535; 1500 or 9000)",
                raw.mtu
            ),
        );
    }
    if raw.rate_mbit == 0 {
        src.report(None, "diode.rate_mbit", "must be greater than 0");
    }
    if !(0.0..=2.0).contains(&raw.repair_ratio) {
        src.report(None, "diode.repair_ratio", "must be between 0 and 2");
    }
    if raw.copies == 0 || raw.copies > 16 {
        src.report(None, "diode.copies", "must be between 1 and 16");
    }
    let key_file = path(&raw.key);
    if let Err(e) = crate::keys::diode::load(&key_file) {
        src.report(Some(raw.key.span()), "diode.key", e.to_string());
    }
    Some(DiodeConfig {
        key_file,
        listen,
        peer: peer_addr,
        mtu: raw.mtu as usize,
        rate_bytes_per_s: raw.rate_mbit.saturating_mul(1_000_000 / 8),
        repair_ratio: raw.repair_ratio,
        copies: raw.copies,
    })
}

/// Settings of the one-way diode link.
#[derive(Debug, Clone)]
pub struct DiodeConfig {
    /// The file holding the pair's 32-byte datagram key (64 hex digits).
    pub key_file: PathBuf,
    /// Where this node receives diode datagrams.
    pub listen: SocketAddr,
    /// Where this node sends its diode datagrams.
    pub peer: SocketAddr,
    /// The path MTU (1500, or 9000 with jumbo frames).
    pub mtu: usize,
    /// The sending rate, in bytes per second.
    pub rate_bytes_per_s: u64,
    /// Repair symbols per source symbol.
    pub repair_ratio: f64,
    /// How many times each object is sent (the carousel).
    pub copies: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDisk {
    min_free_bytes: u64,
}

impl Default for RawDisk {
    fn default() -> Self {
        RawDisk {
            min_free_bytes: DEFAULT_MIN_FREE,
        }
    }
}

/// The free-space floor when a configuration does not set one: 256 MiB.
pub const DEFAULT_MIN_FREE: u64 = 256 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAudit {
    checkpoint_records: u64,
    checkpoint_ms: u64,
    segment_records: u64,
    syslog: Option<S>,
}

impl Default for RawAudit {
    fn default() -> Self {
        RawAudit {
            checkpoint_records: 10_000,
            checkpoint_ms: 1000,
            segment_records: crate::audit::SEGMENT_RECORDS,
            syslog: None,
        }
    }
}

/// Audit log settings.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// When checkpoints are written.
    pub checkpoints: crate::audit::CheckpointPolicy,
    /// Live RFC 5424 export, if any.
    pub syslog: Option<crate::audit::syslog::Target>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: S,
    zone: S,
    listen: S,
    state_dir: S,
    exchange_dir: S,
    audit_dir: S,
    signing_key: S,
    tls_cert: S,
    tls_key: S,
    next_signing_key: Option<S>,
    next_tls_cert: Option<S>,
    next_tls_key: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    name: S,
    zone: S,
    address: S,
    tls_cert: S,
    signing_public_key: S,
    next_tls_cert: Option<S>,
    next_signing_public_key: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    name: S,
    kind: S,
    from: S,
    to: S,
    link: S,
    policy: S,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawIntake {
    settle_ms: u64,
    idle_ms: u64,
    rescan_ms: u64,
}

impl Default for RawIntake {
    fn default() -> Self {
        RawIntake {
            settle_ms: 250,
            idle_ms: 5000,
            rescan_ms: 2000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLink {
    max_in_flight: usize,
}

impl Default for RawLink {
    fn default() -> Self {
        RawLink { max_in_flight: 32 }
    }
}

/// This node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Node name; manifests carry it as the sender.
    pub name: String,
    /// The zone this node sits in.
    pub zone: String,
    /// UDP address the QUIC link listens on.
    pub listen: SocketAddr,
    /// Spool and delivery state.
    pub state_dir: PathBuf,
    /// Holds `outbox/<channel>`, `inbox/<channel>` and `quarantine/<channel>`.
    pub exchange_dir: PathBuf,
    /// The audit log.
    pub audit_dir: PathBuf,
    /// Ed25519 signing key (PKCS#8 PEM).
    pub signing_key: PathBuf,
    /// TLS certificate (PEM).
    pub tls_cert: PathBuf,
    /// TLS private key (PEM).
    pub tls_key: PathBuf,
    /// The keys this node switches to next, held ready beside the current ones.
    pub next: Option<NextNodeKeys>,
}

/// A node's next signing key and TLS certificate and key (`[node] next_*`): validated and
/// held ready; they take over when the operator names them as the current ones and sends
/// SIGHUP (see certs/README.md).
#[derive(Debug, Clone)]
pub struct NextNodeKeys {
    /// Ed25519 signing key (PKCS#8 PEM).
    pub signing_key: PathBuf,
    /// TLS certificate (PEM).
    pub tls_cert: PathBuf,
    /// TLS private key (PEM).
    pub tls_key: PathBuf,
}

/// The peer's next certificate and signing key (`[peer] next_*`): accepted beside the
/// current ones while the peer rotates.
#[derive(Debug, Clone)]
pub struct NextPeerKeys {
    /// The peer's next TLS certificate.
    pub tls_cert: PathBuf,
    /// The peer's next Ed25519 public key (hex file).
    pub signing_public_key: PathBuf,
}

/// The other node of the pair.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Peer node name.
    pub name: String,
    /// The peer's zone.
    pub zone: String,
    /// The peer's link address.
    pub address: SocketAddr,
    /// The peer's pinned TLS certificate.
    pub tls_cert: PathBuf,
    /// The peer's pinned Ed25519 public key (hex file).
    pub signing_public_key: PathBuf,
    /// The peer's next certificate and key, accepted too while it rotates.
    pub next: Option<NextPeerKeys>,
}

/// This node's part in a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Files leave this node on this channel.
    Send,
    /// Files arrive at this node on this channel.
    Receive,
}

/// A validated channel, with this node's role in it.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Channel name.
    pub name: String,
    /// Zone the files come from.
    pub from: String,
    /// Zone the files go to.
    pub to: String,
    /// Toward a lower level.
    pub outbound: bool,
    /// Link type.
    pub link: LinkKind,
    /// The policy file.
    pub policy_file: PathBuf,
    /// The policy, loaded and validated.
    pub policy: Policy,
    /// This node's role.
    pub role: Role,
    /// Where applications drop files (sender).
    pub outbox: PathBuf,
    /// Where files are delivered (receiver).
    pub inbox: PathBuf,
    /// Where refused objects go.
    pub quarantine: PathBuf,
}

/// Intake timing.
#[derive(Debug, Clone, Copy)]
pub struct IntakeConfig {
    /// A file closed by its writer is taken once unchanged this long.
    pub settle_ms: u64,
    /// A file with no close seen is taken once unchanged this long.
    pub idle_ms: u64,
    /// Period of the full outbox rescan.
    pub rescan_ms: u64,
}

/// Where the node serves `/metrics` and `/healthz`.
#[derive(Debug, Clone, Copy)]
pub struct MetricsConfig {
    /// The HTTP address, if any.
    pub listen: Option<SocketAddr>,
}

/// Disk safety.
#[derive(Debug, Clone, Copy)]
pub struct DiskConfig {
    /// Below this many free bytes on the state or exchange file system, intake pauses and
    /// the receiver asks the peer to send again later.
    pub min_free_bytes: u64,
}

/// Link tuning.
#[derive(Debug, Clone, Copy)]
pub struct LinkConfig {
    /// Objects in flight at once.
    pub max_in_flight: usize,
}

/// A validated node configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from.
    pub file: PathBuf,
    /// This node.
    pub node: NodeConfig,
    /// Its peer.
    pub peer: PeerConfig,
    /// Zone levels.
    pub zones: BTreeMap<String, i64>,
    /// Channels, with this node's role in each.
    pub channels: Vec<Channel>,
    /// Intake timing.
    pub intake: IntakeConfig,
    /// Link tuning.
    pub link: LinkConfig,
    /// Audit log settings.
    pub audit: AuditConfig,
    /// The metrics and health endpoint.
    pub metrics: MetricsConfig,
    /// Disk safety.
    pub disk: DiskConfig,
    /// The diode link, when a channel uses it.
    pub diode: Option<DiodeConfig>,
    /// What the compliance review accepts but warns about (explicit opt-outs, no antivirus).
    pub warnings: Vec<Problem>,
}

/// The compliance review of one channel's policy: least privilege for what crosses. Returns
/// the problems that refuse the configuration and the warnings that do not (a rule the
/// policy explicitly opts out of with `[compliance] opt_out`).
pub fn compliance(
    outbound: bool,
    policy_file: &Path,
    policy: &Policy,
) -> (Vec<Problem>, Vec<Problem>) {
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    let problem = |key: &str, message: String| Problem {
        file: policy_file.to_path_buf(),
        line: None,
        key: Some(key.to_string()),
        message,
    };
    if outbound {
        let required = [
            (
                "markings",
                policy.markings.is_none(),
                "an outbound channel must refuse classification markings ([markings] refuse = true)",
            ),
            (
                "personal_data",
                policy.personal_data.is_none(),
                "an outbound channel must refuse or mask personal data ([personal_data])",
            ),
        ];
        for (key, missing, message) in required {
            if !missing {
                continue;
            }
            if policy.opt_out.iter().any(|o| o == key) {
                warnings.push(problem(
                    key,
                    format!("{message}; opted out by compliance.opt_out"),
                ));
            } else {
                errors.push(problem(
                    key,
                    format!(
                        "{message}, or opt out explicitly with [compliance] opt_out = [\"{key}\"]"
                    ),
                ));
            }
        }
    }
    if policy.antivirus.is_none() {
        warnings.push(problem(
            "antivirus",
            "no antivirus: content crosses without a malware scan ([antivirus] clamd = ...)".into(),
        ));
    }
    (errors, warnings)
}

/// What a key file named in the configuration must hold.
#[derive(Debug, Clone, Copy)]
enum KeyFile {
    /// An Ed25519 signing key (PKCS#8 PEM).
    Signing,
    /// An Ed25519 public key (64 hex digits).
    Public,
    /// A TLS certificate (PEM).
    Cert,
    /// A TLS private key (PEM).
    TlsKey,
}

/// Checks that a key file exists and holds what it should; the message names the problem.
fn check_key_file(file: &Path, kind: KeyFile) -> Result<(), String> {
    if !file.is_file() {
        return Err(format!(
            "{} does not exist or is not a file (make keys with `isogate keygen`)",
            file.display()
        ));
    }
    let loaded = match kind {
        KeyFile::Signing => crate::keys::SigningKey::load(file).map(drop),
        KeyFile::Public => crate::keys::VerifyKey::load(file).map(drop),
        KeyFile::Cert => crate::keys::load_cert(file).map(drop),
        KeyFile::TlsKey => crate::keys::load_tls_key(file).map(drop),
    };
    loaded.map_err(|e| e.to_string())
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && !s.starts_with('-')
}

impl Config {
    /// Loads and validates a config file and the policies it names, collecting every problem.
    pub fn load(file: &Path) -> Result<Config, Problems> {
        let text = crate::problem::read(file)?;
        let mut src = Source::new(file, &text);
        // Paths in the file are relative to its directory; keep them absolute from here on
        // (the outbox watch reports absolute paths).
        let file = &std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let Some(raw) = src.parse::<RawConfig>() else {
            return Err(Problems(src.problems));
        };
        let mut extra = Vec::new();
        let mut warnings = Vec::new();
        let path = |s: &S| relative_to(file, s.get_ref());

        let zones: BTreeMap<String, i64> = match &raw.zones {
            Some(z) => z.iter().map(|(k, v)| (k.clone(), *v.get_ref())).collect(),
            None => DEFAULT_ZONES
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        };
        let zone_of = |src: &mut Source, s: &S, key: &str| -> Option<i64> {
            let z = zones.get(s.get_ref()).copied();
            if z.is_none() {
                src.report(
                    Some(s.span()),
                    key,
                    format!(
                        "unknown zone {:?}; zones: {}",
                        s.get_ref(),
                        zones.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            z
        };
        zone_of(&mut src, &raw.node.zone, "node.zone");
        zone_of(&mut src, &raw.peer.zone, "peer.zone");
        if raw.node.zone.get_ref() == raw.peer.zone.get_ref() {
            src.report(
                Some(raw.peer.zone.span()),
                "peer.zone",
                "the peer must be in another zone than this node",
            );
        }
        for (s, key) in [(&raw.node.name, "node.name"), (&raw.peer.name, "peer.name")] {
            if !valid_name(s.get_ref()) {
                src.report(
                    Some(s.span()),
                    key,
                    "use 1-63 lower-case letters, digits, '-' or '_'",
                );
            }
        }
        let addr = |src: &mut Source, s: &S, key: &str| -> SocketAddr {
            s.get_ref().parse().unwrap_or_else(|e| {
                src.report(
                    Some(s.span()),
                    key,
                    format!(
                        "{:?} is not an address like 127.0.0.1:7400 ({e})",
                        s.get_ref()
                    ),
                );
                SocketAddr::from(([0, 0, 0, 0], 0))
            })
        };
        let listen = addr(&mut src, &raw.node.listen, "node.listen");
        let peer_addr = addr(&mut src, &raw.peer.address, "peer.address");

        let mut node = NodeConfig {
            name: raw.node.name.get_ref().clone(),
            zone: raw.node.zone.get_ref().clone(),
            listen,
            state_dir: path(&raw.node.state_dir),
            exchange_dir: path(&raw.node.exchange_dir),
            audit_dir: path(&raw.node.audit_dir),
            signing_key: path(&raw.node.signing_key),
            tls_cert: path(&raw.node.tls_cert),
            tls_key: path(&raw.node.tls_key),
            next: None,
        };
        let mut peer_next = None;
        {
            use KeyFile::*;
            let (n, p) = (&raw.node, &raw.peer);
            let files = [
                (Some(&n.signing_key), "node.signing_key", Signing),
                (Some(&n.tls_cert), "node.tls_cert", Cert),
                (Some(&n.tls_key), "node.tls_key", TlsKey),
                (Some(&p.tls_cert), "peer.tls_cert", Cert),
                (
                    Some(&p.signing_public_key),
                    "peer.signing_public_key",
                    Public,
                ),
                (
                    n.next_signing_key.as_ref(),
                    "node.next_signing_key",
                    Signing,
                ),
                (n.next_tls_cert.as_ref(), "node.next_tls_cert", Cert),
                (n.next_tls_key.as_ref(), "node.next_tls_key", TlsKey),
                (p.next_tls_cert.as_ref(), "peer.next_tls_cert", Cert),
                (
                    p.next_signing_public_key.as_ref(),
                    "peer.next_signing_public_key",
                    Public,
                ),
            ];
            let mut sound = true;
            for (s, key, kind) in files.into_iter().filter_map(|(s, k, t)| Some((s?, k, t))) {
                if let Err(message) = check_key_file(&path(s), kind) {
                    sound = false;
                    src.report(Some(s.span()), key, message);
                }
            }
            // A certificate must go with its key: a mismatch would only show at the switch.
            let pairs = [
                (Some(&n.tls_cert), Some(&n.tls_key), "node.tls_key"),
                (
                    n.next_tls_cert.as_ref(),
                    n.next_tls_key.as_ref(),
                    "node.next_tls_key",
                ),
            ];
            for (cert, key, name) in pairs {
                if let (true, Some(cert), Some(key)) = (sound, cert, key)
                    && let Err(e) = crate::keys::load_tls_pair(&path(cert), &path(key))
                {
                    src.report(Some(key.span()), name, e.to_string());
                }
            }
            match (&n.next_signing_key, &n.next_tls_cert, &n.next_tls_key) {
                (Some(k), Some(c), Some(t)) => {
                    node.next = Some(NextNodeKeys {
                        signing_key: path(k),
                        tls_cert: path(c),
                        tls_key: path(t),
                    });
                }
                (None, None, None) => {}
                (k, c, t) => {
                    let span = [k, c, t].into_iter().flatten().next().map(|s| s.span());
                    src.report(
                        span,
                        "node.next_signing_key",
                        "set all three of next_signing_key, next_tls_cert and next_tls_key, or none",
                    );
                }
            }
            match (&p.next_signing_public_key, &p.next_tls_cert) {
                (Some(k), Some(c)) => {
                    peer_next = Some(NextPeerKeys {
                        tls_cert: path(c),
                        signing_public_key: path(k),
                    });
                }
                (None, None) => {}
                (k, c) => {
                    let span = [k, c].into_iter().flatten().next().map(|s| s.span());
                    src.report(
                        span,
                        "peer.next_signing_public_key",
                        "set both next_signing_public_key and next_tls_cert, or neither",
                    );
                }
            }
        }
        let peer = PeerConfig {
            name: raw.peer.name.get_ref().clone(),
            zone: raw.peer.zone.get_ref().clone(),
            address: peer_addr,
            tls_cert: path(&raw.peer.tls_cert),
            signing_public_key: path(&raw.peer.signing_public_key),
            next: peer_next,
        };

        let mut channels = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (i, c) in raw.channels.iter().enumerate() {
            let key = |k: &str| format!("channel[{i}].{k}");
            let name = c.name.get_ref();
            if !valid_name(name) {
                src.report(
                    Some(c.name.span()),
                    &key("name"),
                    "use 1-63 lower-case letters, digits, '-' or '_'",
                );
            }
            if !names.insert(name.clone()) {
                src.report(
                    Some(c.name.span()),
                    &key("name"),
                    format!("channel {name:?} is defined twice"),
                );
            }
            if c.kind.get_ref() != "files" {
                src.report(
                    Some(c.kind.span()),
                    &key("kind"),
                    format!("unsupported kind {:?}; supported: files", c.kind.get_ref()),
                );
            }
            let link = match c.link.get_ref().as_str() {
                "quic" => LinkKind::Quic,
                "diode" => LinkKind::Diode,
                other => {
                    src.report(
                        Some(c.link.span()),
                        &key("link"),
                        format!("unsupported link {other:?}; supported: quic, diode"),
                    );
                    LinkKind::Quic
                }
            };
            let from_level = zone_of(&mut src, &c.from, &key("from"));
            let to_level = zone_of(&mut src, &c.to, &key("to"));
            if c.from.get_ref() == "classified" {
                src.report(
                    Some(c.from.span()),
                    &key("from"),
                    "nothing may ever flow out of the classified zone",
                );
            }
            let (from, to) = (c.from.get_ref().clone(), c.to.get_ref().clone());
            let role = if from == node.zone && to == peer.zone {
                Role::Send
            } else if to == node.zone && from == peer.zone {
                Role::Receive
            } else {
                src.report(
                    Some(c.from.span()),
                    &key("from"),
                    format!(
                        "channel {from} → {to} does not join this node ({}) and its peer ({})",
                        node.zone, peer.zone
                    ),
                );
                Role::Receive
            };
            let policy_file = path(&c.policy);
            let outbound = matches!((from_level, to_level), (Some(f), Some(t)) if t < f);
            let policy = match Policy::load(&policy_file) {
                Ok(p) => {
                    let (mut errors, mut warned) = compliance(outbound, &policy_file, &p);
                    extra.append(&mut errors);
                    warnings.append(&mut warned);
                    p
                }
                Err(Problems(mut ps)) => {
                    extra.append(&mut ps);
                    Policy::deny_all()
                }
            };
            let x = &node.exchange_dir;
            channels.push(Channel {
                name: name.clone(),
                outbound,
                from,
                to,
                link,
                policy_file,
                policy,
                role,
                outbox: x.join("outbox").join(name),
                inbox: x.join("inbox").join(name),
                quarantine: x.join("quarantine").join(name),
            });
        }
        if raw.channels.is_empty() {
            src.report(
                None,
                "channel",
                "no channel is defined: nothing would cross",
            );
        }
        if raw.link.max_in_flight == 0 || raw.link.max_in_flight > 1024 {
            src.report(None, "link.max_in_flight", "must be between 1 and 1024");
        }
        if raw.audit.checkpoint_records == 0
            || raw.audit.checkpoint_ms == 0
            || raw.audit.segment_records == 0
        {
            src.report(
                None,
                "audit",
                "checkpoint_records, checkpoint_ms and segment_records must be greater than 0",
            );
        }
        let syslog = raw.audit.syslog.as_ref().and_then(|s| {
            let t = crate::audit::syslog::Target::parse(s.get_ref());
            if t.is_none() {
                src.report(
                    Some(s.span()),
                    "audit.syslog",
                    format!("{:?}: use udp:HOST:PORT or tcp:HOST:PORT", s.get_ref()),
                );
            }
            t
        });
        let diode = validate_diode(&mut src, raw.diode.as_ref(), &channels, &node, &peer, &path);
        let metrics_listen = raw.metrics.listen.as_ref().and_then(|l| {
            let a = l.get_ref().parse::<SocketAddr>();
            if a.is_err() {
                src.report(
                    Some(l.span()),
                    "metrics.listen",
                    format!("{:?}: use HOST:PORT, e.g. 127.0.0.1:7402", l.get_ref()),
                );
            }
            a.ok()
        });
        let cfg = Config {
            diode,
            metrics: MetricsConfig {
                listen: metrics_listen,
            },
            disk: DiskConfig {
                min_free_bytes: raw.disk.min_free_bytes,
            },
            file: file.to_path_buf(),
            node,
            peer,
            zones,
            channels,
            intake: IntakeConfig {
                settle_ms: raw.intake.settle_ms,
                idle_ms: raw.intake.idle_ms.max(raw.intake.settle_ms),
                rescan_ms: raw.intake.rescan_ms.max(100),
            },
            link: LinkConfig {
                max_in_flight: raw.link.max_in_flight,
            },
            warnings,
            audit: AuditConfig {
                checkpoints: crate::audit::CheckpointPolicy {
                    records: raw.audit.checkpoint_records.max(1),
                    interval_ms: raw.audit.checkpoint_ms.max(1),
                    segment_records: raw.audit.segment_records.max(1),
                },
                syslog,
            },
        };
        src.problems.append(&mut extra);
        src.finish(cfg)
    }

    /// The channels this node sends on.
    pub fn sending(&self) -> impl Iterator<Item = &Channel> {
        self.channels.iter().filter(|c| c.role == Role::Send)
    }

    /// The channels this node receives on.
    pub fn receiving(&self) -> impl Iterator<Item = &Channel> {
        self.channels.iter().filter(|c| c.role == Role::Receive)
    }

    /// A channel by name.
    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.name == name)
    }
}
