//! Raw to typed: checks a parsed [`RawConfig`] and builds the [`Config`] it describes,
//! reporting every problem into the file's [`Source`] (file, line and key) rather than
//! stopping at the first. The zones and names, the node and its peer with their key files,
//! the channels (files, stream, messages) with their policies and the compliance review,
//! then the `[link]`, `[audit]`, `[diode]`, `[metrics]`, `[console]` and `[messages]`
//! sections, in that order (the message API's address checked against every other socket
//! of the node).

use super::raw::{RawChannel, RawConfig, RawDiode, RawNode, RawPeer, S};
use super::{
    AuditConfig, Channel, Config, ConsoleConfig, DEFAULT_CONSOLE_IDLE_MS, DEFAULT_ZONES,
    DiodeConfig, DiskConfig, IntakeConfig, LinkConfig, MetricsConfig, NextNodeKeys, NextPeerKeys,
    NodeConfig, PeerConfig, QuarantineConfig, Role, StreamChannel, TempNames, compliance,
};
use super::{
    DEFAULT_BATCH_MAX, DEFAULT_BATCH_MAX_BYTES, DEFAULT_LINGER_MS, DEFAULT_RETENTION_MS,
    MAX_BATCH_MAX, MAX_BATCH_MAX_BYTES, MAX_LINGER_MS, MAX_RETENTION_MS, MIN_BATCH_MAX_BYTES,
    MIN_RETENTION_MS, MessageChannel, MessagesApiConfig, NatsDeliver, NatsSource, parse_size,
};
use crate::core::stream::Protocol;
use crate::core::wire::LinkKind;
use crate::keys::suite::Suite;
use crate::policy::Policy;
use crate::problem::{Problem, Problems, Source, relative_to};
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Whether loading reads the node's private keys (`run`, `check`) or only what a reader of
/// its folders needs (`quarantine list|show`, run by an auditor who may not read them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateKeys {
    /// Read and check every key file.
    Check,
    /// Leave the private key files (signing key, TLS key, the diode's datagram key) unread:
    /// their paths are kept.
    Skip,
}

/// Validates `raw`, parsed from `src`, into a [`Config`]; `file` is the configuration file,
/// absolute, that relative paths in it are resolved against. The problems are left in
/// `src.problems` (those of the policy files and of the compliance review after the
/// configuration's own); the returned value is meaningful only when there are none.
pub(super) fn config(
    src: &mut Source,
    file: &Path,
    raw: &RawConfig,
    private: PrivateKeys,
) -> Config {
    let zones = zones(raw);
    let (node, peer) = node_and_peer(src, file, raw, &zones, private);
    let (channels, mut extra, warnings) =
        channels(src, file, &raw.channels, &node, &peer, &zones, private);
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
                format!(
                    "{:?}: use udp:HOST:PORT or tcp:HOST:PORT (HOST: an IPv4 address, [IPv6] in brackets, or a host name)",
                    s.get_ref()
                ),
            );
        }
        t
    });
    let diode = diode(
        src,
        file,
        raw.diode.as_ref(),
        &channels,
        &node,
        &peer,
        private,
    );
    // the addresses this node sends to, where it sends on that link (a node that only
    // receives never dials its peer)
    let sends_on = |link: LinkKind| {
        channels
            .iter()
            .any(|c| c.role == Role::Send && c.link == link)
    };
    if sends_on(LinkKind::Quic) && raw.peer.address.get_ref().parse::<SocketAddr>().is_ok() {
        destination(src, &raw.peer.address, "peer.address", peer.address);
    }
    if let Some(d) = diode.as_ref().filter(|_| sends_on(LinkKind::Diode)) {
        match raw.diode.as_ref().and_then(|r| r.peer.as_ref()) {
            Some(s) => destination(src, s, "diode.peer", d.peer),
            None if raw.peer.address.get_ref().parse::<SocketAddr>().is_ok() => {
                destination(src, &raw.peer.address, "peer.address", d.peer);
            }
            None => {}
        }
    }
    stream_clashes(src, &raw.channels, &channels, &node, diode.as_ref());
    emit_loops(src, &raw.channels, &channels, &node, &peer, diode.as_ref());
    let keep_days = raw.quarantine.keep_days.as_ref().map(|k| {
        if *k.get_ref() == 0 {
            src.report(
                Some(k.span()),
                "quarantine.keep_days",
                "must be at least 1 (leave it out to keep entries until an officer purges them)",
            );
        }
        *k.get_ref()
    });
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
    let mut taken = vec![(node.listen, "node.listen")];
    if let Some(d) = &diode {
        taken.push((d.listen, "diode.listen"));
    }
    if let Some(m) = metrics_listen {
        taken.push((m, "metrics.listen"));
    }
    let console = raw
        .console
        .as_ref()
        .and_then(|c| console(src, file, c, &taken));
    let mut taken: Vec<(SocketAddr, String)> =
        taken.into_iter().map(|(a, k)| (a, k.to_string())).collect();
    if let Some(c) = &console {
        taken.push((c.listen, "console.listen".into()));
    }
    for c in channels.iter().filter(|c| c.role == Role::Send) {
        if let Some(s) = &c.stream {
            taken.push((s.listen, format!("channel {}'s listen", c.name)));
        }
    }
    let messages = raw
        .messages
        .as_ref()
        .and_then(|m| messages_api(src, m, &taken));
    let mut warnings = warnings;
    if let Some(m) = &messages
        && m.allow_remote
        && m.hosts.is_empty()
    {
        warnings.push(Problem {
            file: file.to_path_buf(),
            line: None,
            key: Some("messages.hosts".into()),
            message: format!(
                "allow_remote = true and no hosts: a request whose Host is a DNS name (as many TLS proxies pass on the name clients use) gets 421 host_not_allowed; list that name, e.g. hosts = [\"gateway.court.example\"], or have the proxy send an IP address as Host (the API listens on {})",
                m.listen
            ),
        });
    }
    if raw.messages.is_none() {
        for c in channels.iter().filter(|c| c.is_messages()) {
            warnings.push(Problem {
                file: file.to_path_buf(),
                line: None,
                key: Some("messages.listen".into()),
                message: format!(
                    "channel {} carries messages but this node has no [messages] listen: no HTTP API for it (the outbox and NATS still work)",
                    c.name
                ),
            });
        }
    }
    let cfg = Config {
        messages,
        console,
        diode,
        metrics: MetricsConfig {
            listen: metrics_listen,
        },
        disk: DiskConfig {
            min_free_bytes: raw.disk.min_free_bytes,
        },
        quarantine: QuarantineConfig { keep_days },
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
    cfg
}

/// Validates `[console]`: a listen address, an IP address and a port other than 0,
/// loopback (IPv4-mapped loopback too) unless `allow_remote` (the console speaks plain
/// HTTP: anything else goes through TLS in front of it or an SSH tunnel), not one of the
/// node's other addresses (`taken`: the links', the metrics'); the password file, and an
/// idle timeout of 1 minute to 24 hours (humantime, e.g. `"15m"`).
fn console(
    src: &mut Source,
    file: &Path,
    c: &super::raw::RawConsole,
    taken: &[(SocketAddr, &str)],
) -> Option<ConsoleConfig> {
    let text = c.listen.get_ref();
    let clash = |a: &SocketAddr| taken.iter().find(|(t, _)| same_socket(a, t));
    let listen = match text.parse::<SocketAddr>() {
        Ok(a) if a.port() == 0 => {
            src.report(
                Some(c.listen.span()),
                "console.listen",
                format!("{a}: port 0 is not a port to give officers; choose one, e.g. 7408"),
            );
            None
        }
        Ok(a) if !is_loopback(&a) && !c.allow_remote => {
            src.report(
                Some(c.listen.span()),
                "console.listen",
                format!(
                    "{}: not a loopback address; the console speaks plain HTTP, so reach it through an SSH tunnel, or put a TLS proxy in front and set allow_remote = true",
                    a
                ),
            );
            None
        }
        Ok(a) => match clash(&a) {
            Some((t, key)) => {
                src.report(
                    Some(c.listen.span()),
                    "console.listen",
                    format!("{a}: {key} is {t}; give the console an address of its own"),
                );
                None
            }
            None => Some(a),
        },
        Err(_) => {
            let port = text.rsplit_once(':').map(|(_, p)| p).unwrap_or("7408");
            src.report(
                Some(c.listen.span()),
                "console.listen",
                format!(
                    "{text:?}: write an IP address and a port, e.g. 127.0.0.1:{port} or [::1]:{port} (not a host name)"
                ),
            );
            None
        }
    };
    let idle_timeout_ms = match &c.idle_timeout {
        None => Some(DEFAULT_CONSOLE_IDLE_MS),
        Some(t) => match humantime::parse_duration(t.get_ref()) {
            Ok(d) if (60..=86_400).contains(&d.as_secs()) => {
                Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            }
            _ => {
                src.report(
                    Some(t.span()),
                    "console.idle_timeout",
                    format!(
                        "{:?}: use a duration from 1m to 24h, e.g. \"15m\"",
                        t.get_ref()
                    ),
                );
                None
            }
        },
    };
    if c.users.get_ref().is_empty() {
        src.report(
            Some(c.users.span()),
            "console.users",
            "the password file's path (write it with `isogate console passwd`)",
        );
        return None;
    }
    Some(ConsoleConfig {
        listen: listen?,
        users: path(file, &c.users),
        idle_timeout_ms: idle_timeout_ms?,
        allow_remote: c.allow_remote,
    })
}

/// A path in the file, resolved against the configuration file's directory.
fn path(file: &Path, s: &S) -> PathBuf {
    relative_to(file, s.get_ref())
}

/// The zone levels: `[zones]`, or [`DEFAULT_ZONES`].
fn zones(raw: &RawConfig) -> BTreeMap<String, i64> {
    match &raw.zones {
        Some(z) => z.iter().map(|(k, v)| (k.clone(), *v.get_ref())).collect(),
        None => DEFAULT_ZONES
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
    }
}

/// The level of the zone `s` (at `key`); reports an unknown zone.
fn zone_of(src: &mut Source, zones: &BTreeMap<String, i64>, s: &S, key: &str) -> Option<i64> {
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
}

/// The socket address `s` (at `key`); reports one that does not parse (and stands in
/// `0.0.0.0:0` for it).
fn address(src: &mut Source, s: &S, key: &str) -> SocketAddr {
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
}

/// Reports an address this node sends to that no packet can reach: port 0, or an
/// unspecified IP (`0.0.0.0`, `::`), which are only for listening.
fn destination(src: &mut Source, s: &S, key: &str, a: SocketAddr) {
    let why = if a.port() == 0 {
        "port 0"
    } else if a.ip().is_unspecified() {
        "an unspecified IP address"
    } else {
        return;
    };
    src.report(
        Some(s.span()),
        key,
        format!(
            "{:?} has {why}, which only a listening socket may use: give the peer's own address and port, e.g. 192.0.2.7:7401",
            s.get_ref()
        ),
    );
}

/// A node or channel name: 1-63 lower-case letters, digits, `-` or `_`, not starting
/// with `-`.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && !s.starts_with('-')
}

/// `[node]` and `[peer]`: zones, names, addresses and key files.
fn node_and_peer(
    src: &mut Source,
    file: &Path,
    raw: &RawConfig,
    zones: &BTreeMap<String, i64>,
    private: PrivateKeys,
) -> (NodeConfig, PeerConfig) {
    zone_of(src, zones, &raw.node.zone, "node.zone");
    zone_of(src, zones, &raw.peer.zone, "peer.zone");
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
    let listen = address(src, &raw.node.listen, "node.listen");
    let peer_addr = address(src, &raw.peer.address, "peer.address");
    let pair = pair_suite(src, raw.node.suite.as_ref());
    let (node_next, peer_next) = key_files(src, file, &raw.node, &raw.peer, private, pair);
    // a wrong suite is reported above: the configuration does not load
    let suite = pair.unwrap_or_default();
    let node = NodeConfig {
        name: raw.node.name.get_ref().clone(),
        zone: raw.node.zone.get_ref().clone(),
        listen,
        state_dir: path(file, &raw.node.state_dir),
        exchange_dir: path(file, &raw.node.exchange_dir),
        audit_dir: path(file, &raw.node.audit_dir),
        signing_key: path(file, &raw.node.signing_key),
        tls_cert: path(file, &raw.node.tls_cert),
        tls_key: path(file, &raw.node.tls_key),
        next: node_next,
        data_key: raw.node.data_key.as_ref().map(|k| path(file, k)),
        suite,
    };
    let peer = PeerConfig {
        name: raw.peer.name.get_ref().clone(),
        zone: raw.peer.zone.get_ref().clone(),
        address: peer_addr,
        tls_cert: path(file, &raw.peer.tls_cert),
        signing_public_key: path(file, &raw.peer.signing_public_key),
        next: peer_next,
    };
    (node, peer)
}

/// `[node] suite`: `default` (also when absent) or `gm`; anything else is reported, and
/// `None`: the keys are then not held to any suite (that would only add errors that follow
/// from this one).
fn pair_suite(src: &mut Source, raw: Option<&S>) -> Option<Suite> {
    let Some(raw) = raw else {
        return Some(Suite::Default);
    };
    match raw.get_ref().parse::<Suite>() {
        Ok(suite) => Some(suite),
        Err(e) => {
            src.report(Some(raw.span()), "node.suite", e.to_string());
            None
        }
    }
}

/// What a key file named in the configuration must hold.
#[derive(Debug, Clone, Copy)]
enum KeyFile {
    /// A signing key of the pair's suite (PKCS#8 PEM: Ed25519, or SM2 under `gm`).
    Signing,
    /// A public signing key of the pair's suite (64 hex digits of Ed25519, or SM2's 130).
    Public,
    /// A TLS certificate (PEM).
    Cert,
    /// A TLS private key (PEM).
    TlsKey,
    /// A data key file (`keys::at_rest`: the service user's alone); under `gm` its current
    /// key must be SM4-GCM, under the default suite either cipher seals (a node's own
    /// choice: the peer never sees its data key).
    Data,
}

/// Checks that a key file exists and holds what it should, of the pair's `suite` (not held
/// to one when `None`: the suite itself is wrong); the message names the problem.
fn check_key_file(file: &Path, kind: KeyFile, suite: Option<Suite>) -> Result<(), String> {
    if !file.is_file() {
        let flag = suite.unwrap_or_default().keygen_flag();
        let make = match kind {
            KeyFile::Data => format!("make one with `isogate keygen --data-key FILE{flag}`"),
            _ => format!("make keys with `isogate keygen{flag}`"),
        };
        return Err(format!(
            "{} does not exist or is not a file ({make})",
            file.display()
        ));
    }
    let found = match kind {
        KeyFile::Signing => crate::keys::SigningKey::load(file).map(|k| Some(k.suite())),
        KeyFile::Public => crate::keys::VerifyKey::load(file).map(|k| Some(k.suite())),
        KeyFile::Cert => crate::keys::load_cert(file).map(|_| None),
        KeyFile::TlsKey => crate::keys::load_tls_key(file).map(|_| None),
        KeyFile::Data => crate::keys::at_rest::DataKeys::load(file).map(|k| Some(k.suite())),
    };
    match (found.map_err(|e| e.to_string())?, kind, suite) {
        // a default pair may seal at rest with SM4-GCM: the data key is the node's alone
        (Some(_), KeyFile::Data, Some(Suite::Default)) => Ok(()),
        (Some(found), _, Some(suite)) if found != suite => {
            Err(other_suite(file.display(), kind, found, suite))
        }
        _ => Ok(()),
    }
}

/// Why a node refuses a key of another suite than its pair's: a pair runs one suite, and
/// every key it signs, verifies or seals with is of that suite.
fn other_suite(what: impl std::fmt::Display, kind: KeyFile, found: Suite, suite: Suite) -> String {
    match kind {
        KeyFile::Data => format!(
            "{what}: its current key is {} ({found} suite), but this pair runs the {suite} suite (`[node] suite`), which seals data at rest with {}: add a key with `isogate keygen --data-key FILE{}`, the older one stays to open what it sealed",
            found.cipher(),
            suite.cipher(),
            suite.keygen_flag()
        ),
        _ => format!(
            "{what} is an {} key (`isogate keygen{}`), but this pair runs the {suite} suite (`[node] suite`), which signs with {}: make keys with `isogate keygen{}`, or set suite = \"{found}\" under [node] on both nodes",
            found.signature(),
            found.keygen_flag(),
            suite.signature(),
            suite.keygen_flag()
        ),
    }
}

/// The key files of `[node]` and `[peer]`, current and next: each must hold what it
/// should, each certificate must go with its key, and the next ones come as a full set or
/// not at all. Returns the next keys of the node and of the peer, when set.
fn key_files(
    src: &mut Source,
    file: &Path,
    n: &RawNode,
    p: &RawPeer,
    private: PrivateKeys,
    suite: Option<Suite>,
) -> (Option<NextNodeKeys>, Option<NextPeerKeys>) {
    use KeyFile::*;
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
        (n.data_key.as_ref(), "node.data_key", Data),
    ];
    let mut sound = true;
    let read =
        |kind: &KeyFile| private == PrivateKeys::Check || !matches!(kind, Signing | TlsKey | Data);
    for (s, key, kind) in files
        .into_iter()
        .filter_map(|(s, k, t)| Some((s?, k, t)))
        .filter(|(_, _, kind)| read(kind))
    {
        if let Err(message) = check_key_file(&path(file, s), kind, suite) {
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
    // the pairs and the self-pins need the private keys
    let sound = sound && private == PrivateKeys::Check;
    for (cert, key, name) in pairs {
        if let (true, Some(cert), Some(key)) = (sound, cert, key)
            && let Err(e) = crate::keys::load_tls_pair(&path(file, cert), &path(file, key))
        {
            src.report(Some(key.span()), name, e.to_string());
        }
    }
    if sound {
        self_pins(src, file, n, p);
    }
    let node_next = match (&n.next_signing_key, &n.next_tls_cert, &n.next_tls_key) {
        (Some(k), Some(c), Some(t)) => Some(NextNodeKeys {
            signing_key: path(file, k),
            tls_cert: path(file, c),
            tls_key: path(file, t),
        }),
        (None, None, None) => None,
        (k, c, t) => {
            let span = [k, c, t].into_iter().flatten().next().map(|s| s.span());
            src.report(
                span,
                "node.next_signing_key",
                "set all three of next_signing_key, next_tls_cert and next_tls_key, or none",
            );
            None
        }
    };
    let peer_next = match (&p.next_signing_public_key, &p.next_tls_cert) {
        (Some(k), Some(c)) => Some(NextPeerKeys {
            tls_cert: path(file, c),
            signing_public_key: path(file, k),
        }),
        (None, None) => None,
        (k, c) => {
            let span = [k, c].into_iter().flatten().next().map(|s| s.span());
            src.report(
                span,
                "peer.next_signing_public_key",
                "set both next_signing_public_key and next_tls_cert, or neither",
            );
            None
        }
    };
    (node_next, peer_next)
}

/// A peer pin that is this node's own certificate or public key (the operator copied the
/// wrong file): the link could never come up, or worse, would trust a copy of this node.
/// Compares contents, not paths; the next keys of both sides too. Run only once every key
/// file has loaded.
fn self_pins(src: &mut Source, file: &Path, n: &RawNode, p: &RawPeer) {
    let own_certs: Vec<_> = [Some(&n.tls_cert), n.next_tls_cert.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|s| crate::keys::load_cert(&path(file, s)).ok())
        .collect();
    let own_keys: Vec<_> = [Some(&n.signing_key), n.next_signing_key.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|s| crate::keys::SigningKey::load(&path(file, s)).ok())
        .map(|k| k.verify_key())
        .collect();
    for (s, key) in [
        (Some(&p.tls_cert), "peer.tls_cert"),
        (p.next_tls_cert.as_ref(), "peer.next_tls_cert"),
    ] {
        let Some(s) = s else { continue };
        if let Ok(cert) = crate::keys::load_cert(&path(file, s))
            && own_certs.iter().any(|c| c.as_ref() == cert.as_ref())
        {
            src.report(
                Some(s.span()),
                key,
                format!(
                    "pins this node's own TLS certificate ({}) as the peer's: pin the \
                     certificate of the peer (its operator reads its fingerprint from \
                     `isogate keygen`)",
                    crate::keys::cert_fingerprint(&cert)
                ),
            );
        }
    }
    for (s, key) in [
        (Some(&p.signing_public_key), "peer.signing_public_key"),
        (
            p.next_signing_public_key.as_ref(),
            "peer.next_signing_public_key",
        ),
    ] {
        let Some(s) = s else { continue };
        if let Ok(public) = crate::keys::VerifyKey::load(&path(file, s))
            && own_keys.contains(&public)
        {
            src.report(
                Some(s.span()),
                key,
                format!(
                    "pins this node's own signing key ({}) as the peer's: pin the public \
                     key of the peer (its operator reads its fingerprint from `isogate keygen`)",
                    public.fingerprint()
                ),
            );
        }
    }
}

/// The `[[channel]]`s, each with this node's role in it and its policy loaded and
/// reviewed. Returns them with the problems of the policy files and of the review, and the
/// review's warnings.
fn channels(
    src: &mut Source,
    file: &Path,
    raw: &[RawChannel],
    node: &NodeConfig,
    peer: &PeerConfig,
    zones: &BTreeMap<String, i64>,
    private: PrivateKeys,
) -> (Vec<Channel>, Vec<Problem>, Vec<Problem>) {
    let node_keys = node_keys(node, peer, private);
    let mut channels = Vec::new();
    let mut extra = Vec::new();
    let mut warnings = Vec::new();
    let mut names = HashSet::new();
    for (i, c) in raw.iter().enumerate() {
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
        let (is_stream, is_messages) = match c.kind.get_ref().as_str() {
            "files" => (false, false),
            "stream" => (true, false),
            "messages" => (false, true),
            other => {
                src.report(
                    Some(c.kind.span()),
                    &key("kind"),
                    format!("unsupported kind {other:?}; supported: files, stream, messages"),
                );
                (false, false)
            }
        };
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
        let from_level = zone_of(src, zones, &c.from, &key("from"));
        let to_level = zone_of(src, zones, &c.to, &key("to"));
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
        let policy_file = path(file, &c.policy);
        let outbound = matches!((from_level, to_level), (Some(f), Some(t)) if t < f);
        let (protocol, stream) = if is_stream {
            stream_channel(src, c, i, link)
        } else {
            refuse_stream_keys(src, c, i);
            (None, None)
        };
        let messages = if is_messages {
            message_channel(src, c, i)
        } else {
            refuse_message_keys(src, c, i);
            None
        };
        // a policy file that cannot be read at all is this file's problem: its
        // channel[i].policy names it
        let mut unreadable = |ps: Vec<crate::problem::Problem>| {
            for p in ps {
                if p.file == policy_file && p.line.is_none() && p.message.starts_with("cannot read")
                {
                    src.report(
                        Some(c.policy.span()),
                        &key("policy"),
                        format!("{}: {}", policy_file.display(), p.message),
                    );
                } else {
                    extra.push(p);
                }
            }
        };
        let policy = match protocol {
            Some(protocol) => match Policy::load_stream(&policy_file, protocol) {
                Ok(p) => p,
                Err(Problems(ps)) => {
                    unreadable(ps);
                    Policy::deny_all()
                }
            },
            // a stream channel without a valid protocol: reported already
            None if is_stream => Policy::deny_all(),
            None => match Policy::load(&policy_file) {
                Ok(p) => {
                    policy_kind(src, c, i, is_messages, &p);
                    let (mut errors, mut warned) = compliance(outbound, &policy_file, &p);
                    extra.append(&mut errors);
                    extra.extend(super::approval_self_pins(&policy_file, &p, &node_keys));
                    extra.extend(super::approval_suite(&policy_file, &p, node.suite));
                    warnings.append(&mut warned);
                    p
                }
                Err(Problems(ps)) => {
                    unreadable(ps);
                    Policy::deny_all()
                }
            },
        };
        let temp_names = match &c.temp_names {
            None => TempNames::default(),
            Some(ps) if is_stream => {
                let span = ps.first().map(|p| p.span()).or(Some(c.kind.span()));
                src.report(
                    span,
                    &key("temp_names"),
                    "a stream channel has no outbox: temp_names is for kind = \"files\"",
                );
                TempNames::default()
            }
            Some(ps) => {
                for p in ps {
                    if let Some(why) = TempNames::problem(p.get_ref()) {
                        src.report(
                            Some(p.span()),
                            &key("temp_names"),
                            format!("{:?}: {why}", p.get_ref()),
                        );
                    }
                }
                TempNames::new(ps.iter().map(|p| p.get_ref().clone()).collect())
            }
        };
        let x = &node.exchange_dir;
        channels.push(Channel {
            messages,
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
            temp_names,
            stream,
        });
    }
    if raw.is_empty() {
        src.report(
            None,
            "channel",
            "no channel is defined: nothing would cross",
        );
    }
    (channels, extra, warnings)
}

/// The `protocol` of a stream channel, if it is given and known; a problem otherwise.
fn stream_protocol(src: &mut Source, c: &RawChannel, key: &str) -> Option<Protocol> {
    let Some(p) = &c.protocol else {
        src.report(
            Some(c.kind.span()),
            key,
            "kind = \"stream\" needs protocol = \"rtp\" or \"udp-ts\"",
        );
        return None;
    };
    match p.get_ref().as_str() {
        "rtp" => Some(Protocol::Rtp),
        "udp-ts" => Some(Protocol::UdpTs),
        other => {
            src.report(
                Some(p.span()),
                key,
                format!("unsupported protocol {other:?}; supported: rtp, udp-ts"),
            );
            None
        }
    }
}

/// Validates the keys of a `kind = "stream"` channel (the `i`-th): `protocol`, `listen`
/// and `emit` required (`HOST:PORT`, an IP address and a port other than 0), `delay_ms`
/// 1..=1000 (default by `link`: 20 on quic, 40 on diode), `silence_s` 1..=3600 (default
/// 5), `expected` (default false). Returns the protocol when it is valid (its policy can
/// be checked) and the settings when all are (each problem reported with the line and key).
fn stream_channel(
    src: &mut Source,
    c: &RawChannel,
    i: usize,
    link: LinkKind,
) -> (Option<Protocol>, Option<StreamChannel>) {
    let key = |k: &str| format!("channel[{i}].{k}");
    let protocol = stream_protocol(src, c, &key("protocol"));
    let mut addr = |v: &Option<S>, k: &str, what: &str| -> Option<SocketAddr> {
        let Some(s) = v else {
            src.report(
                Some(c.kind.span()),
                &key(k),
                format!("kind = \"stream\" needs {k} = \"HOST:PORT\": {what}"),
            );
            return None;
        };
        match s.get_ref().parse::<SocketAddr>() {
            Ok(a) if a.port() != 0 => Some(a),
            Ok(_) => {
                src.report(Some(s.span()), &key(k), "port 0 is not a port: choose one");
                None
            }
            Err(_) => {
                src.report(
                    Some(s.span()),
                    &key(k),
                    format!(
                        "{:?}: use an IP address and a port, e.g. 127.0.0.1:7406 or [::1]:7406",
                        s.get_ref()
                    ),
                );
                None
            }
        }
    };
    let listen = addr(
        &c.listen,
        "listen",
        "the UDP address the sending node receives the stream on",
    );
    let emit = addr(
        &c.emit,
        "emit",
        "the UDP address the receiving node sends accepted packets to",
    );
    let default_delay = match link {
        LinkKind::Quic => super::DEFAULT_STREAM_DELAY_QUIC_MS,
        LinkKind::Diode => super::DEFAULT_STREAM_DELAY_DIODE_MS,
    };
    let mut bounded =
        |v: &Option<toml::Spanned<i64>>, k: &str, default: u64, max: u64, unit: &str| {
            let Some(v) = v else { return Some(default) };
            match u64::try_from(*v.get_ref()) {
                Ok(n) if (1..=max).contains(&n) => Some(n),
                _ => {
                    src.report(
                        Some(v.span()),
                        &key(k),
                        format!("{} is out of range 1..={max} ({unit})", v.get_ref()),
                    );
                    None
                }
            }
        };
    let delay_ms = bounded(
        &c.delay_ms,
        "delay_ms",
        default_delay,
        super::MAX_STREAM_DELAY_MS,
        "ms",
    );
    let silence_s = bounded(
        &c.silence_s,
        "silence_s",
        super::DEFAULT_STREAM_SILENCE_S,
        super::MAX_STREAM_SILENCE_S,
        "s",
    );
    let settings = match (protocol, listen, emit, delay_ms, silence_s) {
        (Some(protocol), Some(listen), Some(emit), Some(delay_ms), Some(silence_s)) => {
            Some(StreamChannel {
                protocol,
                listen,
                emit,
                delay_ms,
                silence_ms: silence_s * 1000,
                expected: c.expected.as_ref().is_some_and(|e| *e.get_ref()),
            })
        }
        _ => None,
    };
    (protocol, settings)
}

/// Reports a stream channel this node sends on whose `listen` is a UDP address the node
/// binds already: its link's (`node.listen`, `diode.listen`) or another stream's.
fn stream_clashes(
    src: &mut Source,
    raw: &[RawChannel],
    channels: &[Channel],
    node: &NodeConfig,
    diode: Option<&DiodeConfig>,
) {
    let mut taken: Vec<(SocketAddr, String)> = vec![(node.listen, "node.listen".into())];
    if let Some(d) = diode
        && d.listen != node.listen
    {
        taken.push((d.listen, "diode.listen".into()));
    }
    for (i, (r, c)) in raw.iter().zip(channels).enumerate() {
        let Some(s) = &c.stream else { continue };
        if c.role != Role::Send {
            continue;
        }
        if let Some((t, what)) = taken.iter().find(|(t, _)| same_socket(&s.listen, t)) {
            src.report(
                r.listen.as_ref().map(|l| l.span()),
                &format!("channel[{i}].listen"),
                format!(
                    "{}: {what} is {t}; give the stream a UDP address of its own",
                    s.listen
                ),
            );
        }
        taken.push((s.listen, format!("channel {}'s listen", c.name)));
    }
}

/// Reports a stream channel whose `emit` is an address the gateway itself listens on: a
/// stream channel's `listen` (on either node: the packets would come round again, as fast
/// as the bitrate lets them), or a link address of either node.
fn emit_loops(
    src: &mut Source,
    raw: &[RawChannel],
    channels: &[Channel],
    node: &NodeConfig,
    peer: &PeerConfig,
    diode: Option<&DiodeConfig>,
) {
    let same = |a: &SocketAddr, t: &SocketAddr| {
        a.port() == t.port()
            && (a.ip() == t.ip() || a.ip().is_unspecified() || t.ip().is_unspecified())
    };
    let mut gateway: Vec<(SocketAddr, String)> = vec![
        (node.listen, "node.listen".into()),
        (peer.address, "peer.address".into()),
    ];
    if let Some(d) = diode {
        gateway.push((d.listen, "diode.listen".into()));
        gateway.push((d.peer, "diode.peer".into()));
    }
    for c in channels {
        if let Some(s) = &c.stream {
            gateway.push((s.listen, format!("channel {}'s listen", c.name)));
        }
    }
    for (i, (r, c)) in raw.iter().zip(channels).enumerate() {
        let Some(s) = &c.stream else { continue };
        if let Some((t, what)) = gateway.iter().find(|(t, _)| same(&s.emit, t)) {
            src.report(
                r.emit.as_ref().map(|e| e.span()),
                &format!("channel[{i}].emit"),
                format!(
                    "{}: {what} is {t}; a stream is emitted to the application, never back into the gateway",
                    s.emit
                ),
            );
        }
    }
}

/// Reports the keys of a stream channel set on a files channel (the `i`-th).
fn refuse_stream_keys(src: &mut Source, c: &RawChannel, i: usize) {
    let spans = [
        ("protocol", c.protocol.as_ref().map(|s| s.span())),
        ("listen", c.listen.as_ref().map(|s| s.span())),
        ("emit", c.emit.as_ref().map(|s| s.span())),
        ("delay_ms", c.delay_ms.as_ref().map(|s| s.span())),
        ("silence_s", c.silence_s.as_ref().map(|s| s.span())),
        ("expected", c.expected.as_ref().map(|s| s.span())),
    ];
    for (k, span) in spans {
        if let Some(span) = span {
            src.report(
                Some(span),
                &format!("channel[{i}].{k}"),
                format!(
                    "{k} is a key of kind = \"stream\" channels, not of kind = {:?}",
                    c.kind.get_ref()
                ),
            );
        }
    }
}

/// The keys of a `kind = "messages"` channel, refused on any other kind.
const MESSAGE_KEYS: [&str; 6] = [
    "batch_max",
    "batch_max_bytes",
    "linger_ms",
    "retention",
    "source",
    "deliver",
];

/// Validates the keys of a `kind = "messages"` channel (the `i`-th): `batch_max`
/// 1..=10,000 (default 1,000), `batch_max_bytes` 1 KiB..=64 MiB, an integer or a string
/// with a unit (default 8 MiB), `linger_ms` 0..=1,000 (default 2), `retention` a duration
/// of 1 minute to 365 days (humantime, default 7 days), and the optional NATS addresses
/// `source` (`nats://HOST:PORT/STREAM/CONSUMER`) and `deliver` (`nats://HOST:PORT/SUBJECT`).
/// Returns the settings when all are valid (each problem reported with the line and key).
fn message_channel(src: &mut Source, c: &RawChannel, i: usize) -> Option<MessageChannel> {
    let key = |k: &str| format!("channel[{i}].{k}");
    let mut sound = true;
    let mut int = |v: &Option<toml::Spanned<i64>>, k: &str, default: u64, min: u64, max: u64| {
        let Some(v) = v else { return default };
        match u64::try_from(*v.get_ref()) {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                src.report(
                    Some(v.span()),
                    &key(k),
                    format!("{} is out of range {min}..={max}", v.get_ref()),
                );
                sound = false;
                default
            }
        }
    };
    let batch_max = int(
        &c.batch_max,
        "batch_max",
        DEFAULT_BATCH_MAX as u64,
        1,
        MAX_BATCH_MAX as u64,
    );
    let linger_ms = int(
        &c.linger_ms,
        "linger_ms",
        DEFAULT_LINGER_MS,
        0,
        MAX_LINGER_MS,
    );
    let batch_max_bytes = match &c.batch_max_bytes {
        None => DEFAULT_BATCH_MAX_BYTES,
        Some(v) => match parse_size(v.get_ref()) {
            Ok(n) if (MIN_BATCH_MAX_BYTES..=MAX_BATCH_MAX_BYTES).contains(&n) => n,
            Ok(n) => {
                src.report(
                    Some(v.span()),
                    &key("batch_max_bytes"),
                    format!(
                        "{n} bytes is out of range 1KiB..=64MiB ({MIN_BATCH_MAX_BYTES}..={MAX_BATCH_MAX_BYTES})"
                    ),
                );
                sound = false;
                DEFAULT_BATCH_MAX_BYTES
            }
            Err(e) => {
                src.report(Some(v.span()), &key("batch_max_bytes"), e.to_string());
                sound = false;
                DEFAULT_BATCH_MAX_BYTES
            }
        },
    };
    let retention_ms = match &c.retention {
        None => DEFAULT_RETENTION_MS,
        Some(t) => match humantime::parse_duration(t.get_ref()) {
            Ok(d)
                if (MIN_RETENTION_MS..=MAX_RETENTION_MS)
                    .contains(&u64::try_from(d.as_millis()).unwrap_or(u64::MAX)) =>
            {
                u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
            }
            _ => {
                src.report(
                    Some(t.span()),
                    &key("retention"),
                    format!(
                        "{:?}: use a duration from 1m to 365d, e.g. \"7d\"",
                        t.get_ref()
                    ),
                );
                sound = false;
                DEFAULT_RETENTION_MS
            }
        },
    };
    let source = c.source.as_ref().and_then(|s| {
        NatsSource::parse(s.get_ref())
            .map_err(|e| {
                src.report(Some(s.span()), &key("source"), e.to_string());
                sound = false;
            })
            .ok()
    });
    let deliver = c.deliver.as_ref().and_then(|d| {
        NatsDeliver::parse(d.get_ref())
            .map_err(|e| {
                src.report(Some(d.span()), &key("deliver"), e.to_string());
                sound = false;
            })
            .ok()
    });
    sound.then_some(MessageChannel {
        batch_max: usize::try_from(batch_max).unwrap_or(DEFAULT_BATCH_MAX),
        batch_max_bytes,
        linger_ms,
        retention_ms,
        source,
        deliver,
    })
}

/// Reports the keys of a messages channel set on a files or stream channel (the `i`-th).
fn refuse_message_keys(src: &mut Source, c: &RawChannel, i: usize) {
    let spans = [
        c.batch_max.as_ref().map(|s| s.span()),
        c.batch_max_bytes.as_ref().map(|s| s.span()),
        c.linger_ms.as_ref().map(|s| s.span()),
        c.retention.as_ref().map(|s| s.span()),
        c.source.as_ref().map(|s| s.span()),
        c.deliver.as_ref().map(|s| s.span()),
    ];
    for (k, span) in MESSAGE_KEYS.into_iter().zip(spans) {
        if let Some(span) = span {
            src.report(
                Some(span),
                &format!("channel[{i}].{k}"),
                format!(
                    "{k} is a key of kind = \"messages\" channels, not of kind = {:?}",
                    c.kind.get_ref()
                ),
            );
        }
    }
}

/// Reports a policy of the wrong kind for the `i`-th channel, at its `policy` key: a
/// `kind = "messages"` channel needs a messages policy (one with a `[messages]` table), and
/// a files channel refuses one.
fn policy_kind(src: &mut Source, c: &RawChannel, i: usize, is_messages: bool, p: &Policy) {
    let file = c.policy.get_ref();
    let message = match (is_messages, p.messages.is_some()) {
        (true, false) => format!(
            "{file}: a messages channel (kind = \"messages\") needs a messages policy, one with a [messages] table (schema, max_message_bytes) and the content rules"
        ),
        (false, true) if c.kind.get_ref() == "files" => format!(
            "{file} is a messages policy ([messages] table): it belongs to a kind = \"messages\" channel"
        ),
        _ => return,
    };
    src.report(
        Some(c.policy.span()),
        &format!("channel[{i}].policy"),
        message,
    );
}

/// Validates `[messages]`: `listen` an IP address and a port other than 0, loopback
/// (IPv4-mapped loopback too) unless `allow_remote` (the API speaks plain HTTP), and no
/// address another socket of the node has (`taken`: the links', the metrics', the
/// console's, the streams' this node binds).
fn messages_api(
    src: &mut Source,
    m: &super::raw::RawMessages,
    taken: &[(SocketAddr, String)],
) -> Option<MessagesApiConfig> {
    let text = m.listen.get_ref();
    let span = Some(m.listen.span());
    let clash = |a: &SocketAddr| taken.iter().find(|(t, _)| same_socket(a, t));
    let listen = match text.parse::<SocketAddr>() {
        Ok(a) if a.port() == 0 => {
            src.report(
                span,
                "messages.listen",
                format!("{a}: port 0 is not a port applications can find; choose one, e.g. 7404"),
            );
            return None;
        }
        Ok(a) if !is_loopback(&a) && !m.allow_remote => {
            src.report(
                span,
                "messages.listen",
                format!(
                    "{a}: not a loopback address; the message API speaks plain HTTP, so put a TLS proxy in front and set allow_remote = true"
                ),
            );
            return None;
        }
        Ok(a) => a,
        Err(_) => {
            let port = text.rsplit_once(':').map(|(_, p)| p).unwrap_or("7404");
            src.report(
                span,
                "messages.listen",
                format!(
                    "{text:?}: write an IP address and a port, e.g. 127.0.0.1:{port} or [::1]:{port} (not a host name)"
                ),
            );
            return None;
        }
    };
    if let Some((t, what)) = clash(&listen) {
        src.report(
            span,
            "messages.listen",
            format!("{listen}: {what} is {t}; give the message API an address of its own"),
        );
        return None;
    }
    let mut hosts = Vec::new();
    for h in &m.hosts {
        let given = h.get_ref();
        let name = given
            .strip_suffix('.')
            .unwrap_or(given)
            .to_ascii_lowercase();
        if crate::ops::http::is_dns_name(&name) {
            hosts.push(name);
        } else {
            src.report(
                Some(h.span()),
                "messages.hosts",
                format!(
                    "{:?}: write a DNS name the applications use to reach the API, e.g. \"gateway.court.example\" (no port, no scheme; IP addresses are always accepted)",
                    h.get_ref()
                ),
            );
        }
    }
    Some(MessagesApiConfig {
        listen,
        allow_remote: m.allow_remote,
        hosts,
    })
}

/// The signing keys of this node (only when its private keys are read) and of its peer,
/// current and next, each with what it is: none may be a pinned approver.
pub(super) fn node_keys(
    node: &NodeConfig,
    peer: &PeerConfig,
    private: PrivateKeys,
) -> Vec<(crate::keys::VerifyKey, &'static str)> {
    let mut out = Vec::new();
    if private == PrivateKeys::Check {
        let own = [
            Some(&node.signing_key),
            node.next.as_ref().map(|n| &n.signing_key),
        ];
        for (p, what) in own
            .into_iter()
            .zip(["this node's signing key", "this node's next signing key"])
        {
            if let Some(k) = p.and_then(|p| crate::keys::SigningKey::load(p).ok()) {
                out.push((k.verify_key(), what));
            }
        }
    }
    let theirs = [
        Some(&peer.signing_public_key),
        peer.next.as_ref().map(|n| &n.signing_public_key),
    ];
    for (p, what) in theirs
        .into_iter()
        .zip(["the peer's signing key", "the peer's next signing key"])
    {
        if let Some(k) = p.and_then(|p| crate::keys::VerifyKey::load(p).ok()) {
            out.push((k, what));
        }
    }
    out
}

/// Checks the `[diode]` section against the channels that use the diode link.
fn diode(
    src: &mut Source,
    file: &Path,
    raw: Option<&RawDiode>,
    channels: &[Channel],
    node: &NodeConfig,
    peer: &PeerConfig,
    private: PrivateKeys,
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
    if !(0.0..=2.0).contains(&raw.stream_repair_ratio) {
        src.report(None, "diode.stream_repair_ratio", "must be between 0 and 2");
    }
    if raw.copies == 0 || raw.copies > 16 {
        src.report(None, "diode.copies", "must be between 1 and 16");
    }
    if raw.repeat_window_s > 7 * 86_400 {
        src.report(
            None,
            "diode.repeat_window_s",
            "must be at most 604800 (a week)",
        );
    }
    if raw.interleave > crate::core::diode::MAX_INTERLEAVE {
        src.report(
            None,
            "diode.interleave",
            format!(
                "must be between 0 (derived) and {}",
                crate::core::diode::MAX_INTERLEAVE
            ),
        );
    }
    let key_file = path(file, &raw.key);
    // the datagram key is secret: an officer's or auditor's command never reads it
    if private == PrivateKeys::Check
        && let Err(e) = crate::keys::diode::load(&key_file)
    {
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
        keep_sent_ms: raw.keep_sent_s.saturating_mul(1000),
        repeat_window_ms: raw.repeat_window_s.saturating_mul(1000),
        interleave: raw.interleave,
        stream_repair_ratio: raw.stream_repair_ratio,
    })
}

/// Whether `a` is a loopback address (an IPv4-mapped IPv6 loopback too).
fn is_loopback(a: &SocketAddr) -> bool {
    match a.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
        ip => ip.is_loopback(),
    }
}

/// Whether two sockets of one node would take the same port: same port, and the same IP
/// or either of them unspecified (`0.0.0.0`, `::`).
fn same_socket(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approver_pinned_with_a_nodes_own_signing_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, 25785, None).unwrap();
        let court = std::fs::read_to_string(lab.join("certs/court.sign.pub")).unwrap();
        let policy = lab.join("policy/to-internet.toml");
        let sound = Config::load(&lab.join("court.toml")).unwrap();
        let policies = crate::node::policies::Policies::new(&sound);
        let mut text = std::fs::read_to_string(&policy).unwrap();
        text.push_str(&format!(
            "\n[approval]\nrequired = 1\napprovers = [{{ name = \"court\", key = \"{}\" }}]\n",
            court.trim()
        ));
        std::fs::write(&policy, text).unwrap();
        let pinned = |node: &str, what: &str| {
            let problems = Config::load(&lab.join(format!("{node}.toml")))
                .unwrap_err()
                .0;
            assert!(
                problems
                    .iter()
                    .any(|p| p.key.as_deref() == Some("approval.approvers")
                        && p.file == policy
                        && p.message.contains(what)),
                "{node}: {problems:?}"
            );
        };
        // the sender could approve its own objects; the receiver pins its peer
        pinned("court", "this node's signing key");
        pinned("internet", "the peer's signing key");
        // a running node refuses it on reload too, and keeps the policy it had
        let events = policies.reload(&sound);
        assert!(
            matches!(&events[..], [crate::node::policies::Reload::Refused { problems, .. }]
                if problems.contains("this node's signing key")),
            "{events:?}"
        );
    }

    #[test]
    fn a_peer_address_no_packet_can_reach_is_refused_with_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Diode, 25795, None).unwrap();
        let file = lab.join("court.toml");
        let sound = std::fs::read_to_string(&file).unwrap();
        let line_of = |text: &str, needle: &str| {
            text.lines().position(|l| l.starts_with(needle)).unwrap() + 1
        };
        let cases = [
            (
                "address = \"127.0.0.1:25796\"",
                "address = \"127.0.0.1:0\"",
                "peer.address",
                "port 0",
            ),
            (
                "address = \"127.0.0.1:25796\"",
                "address = \"0.0.0.0:25796\"",
                "peer.address",
                "unspecified IP",
            ),
            (
                "[diode]\n",
                "[diode]\npeer = \"[::]:25797\"\n",
                "diode.peer",
                "unspecified IP",
            ),
        ];
        for (from, to, key, why) in cases {
            assert!(sound.contains(from), "{from} not in the lab's file");
            let text = sound.replacen(from, to, 1);
            std::fs::write(&file, &text).unwrap();
            let problems = Config::load(&file).unwrap_err().0;
            let needle = to.rsplit('\n').find(|l| !l.is_empty()).unwrap();
            let p = problems
                .iter()
                .find(|p| p.key.as_deref() == Some(key))
                .unwrap_or_else(|| panic!("{key} not named: {problems:?}"));
            assert_eq!(p.file, file);
            assert_eq!(p.line, Some(line_of(&text, needle)), "{p}");
            assert!(p.message.contains(why), "{p}");
        }
        // the lab as written is sound: its addresses are reachable ones
        std::fs::write(&file, &sound).unwrap();
        assert!(Config::load(&file).is_ok());
        // a node that only receives never dials its peer: a placeholder is no problem
        // (the lab's internet node, without the channels it sends)
        let receiver = lab.join("internet.toml");
        let full = std::fs::read_to_string(&receiver).unwrap();
        let mut blocks = full.split("\n[[channel]]\n");
        let mut text = blocks.next().unwrap().to_string();
        for block in blocks {
            // a channel's keys are its first paragraph; what follows (comments, [diode])
            // stays
            let (keys, rest) = block.split_once("\n\n").unwrap_or((block, ""));
            if keys.contains("from = \"internet\"") {
                text.push_str(&format!("\n\n{rest}"));
            } else {
                text.push_str(&format!("\n[[channel]]\n{block}"));
            }
        }
        let line = text
            .lines()
            .find(|l| l.starts_with("address = \"127.0.0.1:"))
            .unwrap();
        let placeholder = text.replacen(line, "address = \"0.0.0.0:7401\"", 1);
        std::fs::write(&receiver, placeholder).unwrap();
        let cfg = Config::load(&receiver).unwrap();
        assert!(cfg.channels.iter().all(|c| c.role == Role::Receive));
    }

    #[test]
    fn a_missing_policy_file_is_named_by_the_channel_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, 25800, None).unwrap();
        let file = lab.join("court.toml");
        let sound = std::fs::read_to_string(&file).unwrap();
        let from = "policy = \"policy/to-internet.toml\"";
        assert!(sound.contains(from));
        let text = sound.replacen(from, "policy = \"policy/missing.toml\"", 1);
        std::fs::write(&file, &text).unwrap();
        let problems = Config::load(&file).unwrap_err().0;
        let line = text
            .lines()
            .position(|l| l.contains("policy/missing.toml"))
            .unwrap()
            + 1;
        let p = problems
            .iter()
            .find(|p| p.message.contains("missing.toml"))
            .unwrap_or_else(|| panic!("not named: {problems:?}"));
        assert_eq!(p.file, file);
        assert_eq!(p.line, Some(line));
        assert_eq!(p.key.as_deref(), Some("channel[0].policy"));
        assert!(p.message.contains("cannot read"), "{p}");
        assert!(p.message.contains("No such file"), "{p}");
    }

    #[test]
    fn loading_without_private_keys_leaves_the_diode_key_unread() {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Diode, 25790, None).unwrap();
        let file = lab.join("internet.toml");
        assert!(Config::load(&file).is_ok(), "the lab as written is sound");
        let cfg = Config::load(&file).unwrap();
        let key = cfg.diode.as_ref().expect("a diode lab").key_file.clone();
        // a key the officers cannot read stands for one they may not
        std::fs::write(&key, b"unreadable to you").unwrap();
        let problems = Config::load(&file).unwrap_err().0;
        assert!(
            problems
                .iter()
                .any(|p| p.key.as_deref() == Some("diode.key"))
        );
        let cfg = Config::load_without_private_keys(&file).expect("the commands load it");
        assert_eq!(cfg.diode.unwrap().key_file, key);
    }

    #[test]
    fn a_peer_pin_equal_to_the_nodes_own_key_is_refused_with_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, 25480, None).unwrap();
        let file = lab.join("court.toml");
        assert!(Config::load(&file).is_ok(), "the lab as written is sound");
        let text = std::fs::read_to_string(&file).unwrap();
        let wrong = text
            .replace(
                "tls_cert = \"certs/internet.tls.crt\"",
                "tls_cert = \"certs/court.tls.crt\"",
            )
            .replace(
                "signing_public_key = \"certs/internet.sign.pub\"",
                "signing_public_key = \"certs/court.sign.pub\"",
            );
        assert_ne!(wrong, text);
        std::fs::write(&file, &wrong).unwrap();
        let problems = Config::load(&file).unwrap_err().0;
        let line_of = |needle: &str| {
            wrong
                .lines()
                .position(|l| l.starts_with(needle) && l.contains("certs/court."))
                .map(|i| i + 1)
        };
        let cert = problems
            .iter()
            .find(|p| p.key.as_deref() == Some("peer.tls_cert"))
            .expect("peer.tls_cert named");
        assert_eq!(cert.file, file);
        assert!(cert.line.is_some());
        assert!(
            cert.message.contains("own TLS certificate (sha256:"),
            "{cert}"
        );
        let key = problems
            .iter()
            .find(|p| p.key.as_deref() == Some("peer.signing_public_key"))
            .expect("peer.signing_public_key named");
        assert!(key.message.contains("own signing key (sha256:"), "{key}");
        assert_eq!(key.line, line_of("signing_public_key"));
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    /// A lab at `base` whose court config has `edit` applied to its hearing channel
    /// (the text from `name = "hearing"` on); the problems of loading it, one per line.
    fn hearing_problems(base: u16, edit: impl Fn(&str) -> String) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, base, None).unwrap();
        let file = lab.join("court.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        let at = text.find("name = \"hearing\"").unwrap();
        let changed = format!("{}{}", &text[..at], edit(&text[at..]));
        assert_ne!(changed, text, "the edit changes the hearing channel");
        std::fs::write(&file, &changed).unwrap();
        let err = Config::load(&file)
            .map(|_| String::new())
            .unwrap_or_else(|p| p.to_string());
        (err, changed)
    }

    /// The 1-based line of the first line of `text` containing `needle` at or after the
    /// hearing channel.
    fn line_of(text: &str, needle: &str) -> usize {
        let at = text.find("name = \"hearing\"").unwrap();
        let before = text[..at].matches('\n').count();
        before + text[at..].lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    #[test]
    fn the_lab_hearing_channel_is_a_stream_on_both_nodes() {
        let dir = tempfile::tempdir().unwrap();
        for (link, delay) in [
            (crate::cli::init::LabLink::Quic, 20),
            (crate::cli::init::LabLink::Diode, 40),
        ] {
            let lab = dir.path().join(link.as_str());
            crate::cli::init::init(&lab, link, 27100, None).unwrap();
            let court = Config::load(&lab.join("court.toml")).unwrap();
            let internet = Config::load(&lab.join("internet.toml")).unwrap();
            for (cfg, role) in [(&court, Role::Send), (&internet, Role::Receive)] {
                let c = cfg.channel("hearing").unwrap();
                assert_eq!(c.role, role);
                assert!(c.is_stream() && !c.is_files());
                let s = c.stream.as_ref().unwrap();
                assert_eq!(s.protocol, Protocol::Rtp);
                assert_eq!(s.listen, "127.0.0.1:27106".parse().unwrap());
                assert_eq!(s.emit, "127.0.0.1:27107".parse().unwrap());
                assert_eq!((s.delay_ms, s.silence_ms, s.expected), (delay, 5000, false));
                let rules = c.policy.stream.as_ref().unwrap();
                assert_eq!(rules.payload_types, [33, 96, 97, 98, 111]);
                let policies = crate::node::policies::Policies::new(cfg);
                assert_eq!(policies.stream_rules("hearing").as_ref(), Some(rules));
                assert_eq!(policies.stream_rules("to-internet"), None);
                assert_eq!(policies.stream_rules("nope"), None);
                // the walkers of folders never see it
                assert!(cfg.file_channels().all(|c| c.name != "hearing"));
                assert!(
                    cfg.file_sending()
                        .chain(cfg.file_receiving())
                        .all(|c| c.is_files())
                );
                assert_eq!(cfg.stream_channels().count(), 1);
                assert_eq!(cfg.file_channels().count(), 4);
            }
            assert!(!lab.join("court/outbox/hearing").exists());
            assert!(!lab.join("internet/inbox/hearing").exists());
            assert!(!lab.join("court/quarantine/hearing").exists());
            assert!(court.restart_needed(&court).is_empty());
        }
    }

    #[test]
    fn a_stream_channel_needs_protocol_listen_and_emit() {
        for (key, says) in [
            ("protocol", "needs protocol = \"rtp\" or \"udp-ts\""),
            ("listen", "needs listen = \"HOST:PORT\""),
            ("emit", "needs emit = \"HOST:PORT\""),
        ] {
            let (err, text) = hearing_problems(27110, |t| {
                t.lines()
                    .filter(|l| !l.starts_with(&format!("{key} =")))
                    .map(|l| format!("{l}\n"))
                    .collect()
            });
            let line = line_of(&text, "kind = \"stream\"");
            assert!(
                err.contains(&format!(
                    "court.toml:{line}: channel[2].{key}: kind = \"stream\" {says}"
                )),
                "{key}: {err}"
            );
        }
    }

    #[test]
    fn stream_channel_values_are_checked_with_line_and_key() {
        for (from, to, key, says) in [
            (
                "kind = \"stream\"",
                "kind = \"video\"",
                "kind",
                "supported: files, stream",
            ),
            (
                "protocol = \"rtp\"",
                "protocol = \"srt\"",
                "protocol",
                "supported: rtp, udp-ts",
            ),
            (
                "listen = \"127.0.0.1:27116\"",
                "listen = \"court:7406\"",
                "listen",
                "use an IP address and a port",
            ),
            (
                "emit = \"127.0.0.1:27117\"",
                "emit = \"127.0.0.1:0\"",
                "emit",
                "port 0",
            ),
            (
                "# delay_ms = 20",
                "delay_ms = 0",
                "delay_ms",
                "0 is out of range 1..=1000 (ms)",
            ),
            (
                "# delay_ms = 20",
                "delay_ms = 1001",
                "delay_ms",
                "out of range 1..=1000",
            ),
            (
                "# silence_s = 5",
                "silence_s = 0",
                "silence_s",
                "0 is out of range 1..=3600 (s)",
            ),
            (
                "# silence_s = 5",
                "silence_s = 3601",
                "silence_s",
                "out of range 1..=3600",
            ),
            (
                "# expected = false",
                "temp_names = [\"*.part\"]",
                "temp_names",
                "a stream channel has no outbox",
            ),
            (
                "listen = \"127.0.0.1:27116\"",
                "listen = \"127.0.0.1:27110\"",
                "listen",
                "node.listen is 127.0.0.1:27110",
            ),
            (
                "listen = \"127.0.0.1:27116\"",
                "listen = \"0.0.0.0:27110\"",
                "listen",
                "node.listen is",
            ),
        ] {
            let (err, text) = hearing_problems(27110, |t| t.replacen(from, to, 1));
            let line = line_of(&text, to);
            assert!(
                err.contains(&format!("court.toml:{line}: channel[2].{key}: ")),
                "{to}: {err}"
            );
            assert!(err.contains(says), "{to}: {err}");
        }
        // set, the optional keys are taken
        let (err, _) = hearing_problems(27120, |t| {
            t.replacen("# delay_ms = 20", "delay_ms = 100", 1)
                .replacen("# silence_s = 5", "silence_s = 60", 1)
                .replacen("# expected = false", "expected = true", 1)
                .replacen("protocol = \"rtp\"", "protocol = \"udp-ts\"", 1)
        });
        // udp-ts with the lab's rtp policy: the policy file is named, not the channel
        assert!(
            err.contains("hearing.toml:") && err.contains("stream.payload_types"),
            "{err}"
        );
        assert!(err.contains("stream.pids: empty"), "{err}");
        assert!(!err.contains("court.toml"), "{err}");
    }

    #[test]
    fn optional_stream_keys_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, 27130, None).unwrap();
        let file = lab.join("internet.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(
            &file,
            text.replacen("# delay_ms = 20", "delay_ms = 100", 1)
                .replacen("# silence_s = 5", "silence_s = 60", 1)
                .replacen("# expected = false", "expected = true", 1),
        )
        .unwrap();
        let cfg = Config::load(&file).unwrap();
        let s = cfg.channel("hearing").unwrap().stream.clone().unwrap();
        assert_eq!((s.delay_ms, s.silence_ms, s.expected), (100, 60_000, true));
        // a changed stream setting needs a restart
        let before = Config::load(&file).unwrap();
        std::fs::write(&file, text).unwrap();
        let after = Config::load(&file).unwrap();
        let said = before.restart_needed(&after);
        assert!(
            matches!(&said[..], [one] if one.starts_with("channel hearing: stream rtp listen")),
            "{said:?}"
        );
    }

    #[test]
    fn stream_keys_are_refused_on_a_files_channel() {
        for key_value in [
            "protocol = \"rtp\"",
            "listen = \"127.0.0.1:27146\"",
            "emit = \"127.0.0.1:27147\"",
            "delay_ms = 20",
            "silence_s = 5",
            "expected = true",
        ] {
            let dir = tempfile::tempdir().unwrap();
            let lab = dir.path().join("lab");
            crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, 27140, None).unwrap();
            let file = lab.join("court.toml");
            let text = std::fs::read_to_string(&file).unwrap();
            let bad = text.replacen(
                "policy = \"policy/to-court.toml\"",
                &format!("policy = \"policy/to-court.toml\"\n{key_value}"),
                1,
            );
            std::fs::write(&file, &bad).unwrap();
            let err = Config::load(&file).unwrap_err().to_string();
            let line = bad.lines().position(|l| l == key_value).unwrap() + 1;
            let key = key_value.split(' ').next().unwrap();
            assert!(
                err.contains(&format!(
                    "court.toml:{line}: channel[1].{key}: {key} is a key of kind = \"stream\" channels"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn a_stream_channel_needs_a_stream_policy_and_a_files_channel_a_files_one() {
        let (err, _) = hearing_problems(27150, |t| {
            t.replacen("policy/hearing.toml", "policy/to-court.toml", 1)
        });
        assert!(
            err.contains("to-court.toml:")
                && err.contains("names: [names] is a files policy table"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, 27160, None).unwrap();
        let file = lab.join("court.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(
            &file,
            text.replacen("policy/to-court.toml", "policy/hearing.toml", 1),
        )
        .unwrap();
        let err = Config::load(&file).unwrap_err().to_string();
        assert!(
            err.contains("hearing.toml:") && err.contains("stream: a [stream] table belongs"),
            "{err}"
        );
    }

    #[test]
    fn two_streams_cannot_listen_on_one_address() {
        let (err, text) = hearing_problems(27170, |t| {
            let second = t
                .replacen("name = \"hearing\"", "name = \"hearing-2\"", 1)
                .replacen(
                    "emit = \"127.0.0.1:27177\"",
                    "emit = \"127.0.0.1:27175\"",
                    1,
                );
            format!("{t}\n[[channel]]\n{second}")
        });
        let last = text.rfind("listen = \"127.0.0.1:27176\"").unwrap();
        let line = text[..last].matches('\n').count() + 1;
        assert!(
            err.contains(&format!(
                "court.toml:{line}: channel[5].listen: 127.0.0.1:27176: channel hearing's listen is 127.0.0.1:27176"
            )),
            "{err}"
        );
    }

    #[test]
    fn a_stream_is_never_emitted_back_into_the_gateway() {
        let (err, text) = hearing_problems(27180, |t| {
            t.replacen(
                "emit = \"127.0.0.1:27187\"",
                "emit = \"127.0.0.1:27186\"",
                1,
            )
        });
        let at = text.find("emit = \"127.0.0.1:27186\"").unwrap();
        let line = text[..at].matches('\n').count() + 1;
        assert!(
            err.contains(&format!(
                "court.toml:{line}: channel[2].emit: 127.0.0.1:27186: channel hearing's listen is 127.0.0.1:27186"
            )),
            "{err}"
        );
    }

    /// Validates `file` as [`Config::load`] does, keeping the configuration and every
    /// problem; the problems of the lab's messages policy files (`notices`, `filings`:
    /// policy text and schema) are left out, so that what the configuration itself says
    /// is tested whatever those files hold.
    fn validated(file: &Path) -> (Config, Vec<Problem>) {
        let text = std::fs::read_to_string(file).unwrap();
        let mut src = Source::new(file, &text);
        let raw = src.parse::<super::super::raw::RawConfig>().unwrap();
        let cfg = config(&mut src, file, &raw, PrivateKeys::Check);
        let own = src
            .problems
            .into_iter()
            .filter(|p| {
                let name = p.file.file_name().unwrap().to_string_lossy().to_string();
                !(name.starts_with("notices.") || name.starts_with("filings."))
            })
            .collect();
        (cfg, own)
    }

    /// A lab at `base` whose `node` config has `edit` applied from the notices channel on
    /// (`name = "notices"` to the end); the problems of the config itself, one per line,
    /// and the text written.
    fn notices_problems(base: u16, node: &str, edit: impl Fn(&str) -> String) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, base, None).unwrap();
        let file = lab.join(format!("{node}.toml"));
        let text = std::fs::read_to_string(&file).unwrap();
        let at = text.find("name = \"notices\"").unwrap();
        let changed = format!("{}{}", &text[..at], edit(&text[at..]));
        assert_ne!(changed, text, "the edit changes the notices channel");
        std::fs::write(&file, &changed).unwrap();
        let (_, problems) = validated(&file);
        let err = problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        (err, changed)
    }

    /// The 1-based line of the first line of `text` equal to `line`.
    fn line_no(text: &str, line: &str) -> usize {
        text.lines().position(|l| l == line).unwrap() + 1
    }

    #[test]
    fn the_lab_messages_channels_and_apis_are_read() {
        let dir = tempfile::tempdir().unwrap();
        for (i, link) in [
            crate::cli::init::LabLink::Quic,
            crate::cli::init::LabLink::Diode,
        ]
        .into_iter()
        .enumerate()
        {
            let lab = dir.path().join(link.as_str());
            let base = 28100 + 10 * i as u16;
            crate::cli::init::init(&lab, link, base, None).unwrap();
            for (node, api, notices, filings) in [
                ("court", base + 4, Role::Send, Role::Receive),
                ("internet", base + 5, Role::Receive, Role::Send),
            ] {
                let (cfg, problems) = validated(&lab.join(format!("{node}.toml")));
                assert!(problems.is_empty(), "{node}: {problems:?}");
                let m = cfg.messages.as_ref().unwrap();
                assert_eq!(m.listen, SocketAddr::from(([127, 0, 0, 1], api)));
                assert!(!m.allow_remote);
                let n = cfg.channel("notices").unwrap();
                let kind = match link {
                    crate::cli::init::LabLink::Quic => LinkKind::Quic,
                    crate::cli::init::LabLink::Diode => LinkKind::Diode,
                };
                assert_eq!((n.role, n.outbound, n.link), (notices, true, kind));
                assert!(n.is_messages() && n.is_files() && !n.is_stream());
                assert_eq!(
                    n.messages,
                    Some(MessageChannel {
                        batch_max: 1000,
                        batch_max_bytes: 8 << 20,
                        linger_ms: 2,
                        retention_ms: 7 * 86_400_000,
                        source: None,
                        deliver: None,
                    })
                );
                assert!(n.policy_file.ends_with("policy/notices.toml"));
                let f = cfg.channel("filings").unwrap();
                assert_eq!((f.role, f.outbound), (filings, false));
                assert!(f.is_messages());
                assert!(f.policy_file.ends_with("policy/filings.toml"));
                // the files channels are files channels still
                assert!(!cfg.channel("to-internet").unwrap().is_messages());
                assert_eq!(cfg.file_channels().count(), 4);
                let own = if node == "court" {
                    "notices"
                } else {
                    "filings"
                };
                assert!(lab.join(node).join("outbox").join(own).is_dir());
                assert!(lab.join(node).join("quarantine").join(own).is_dir());
                assert!(cfg.restart_needed(&cfg).is_empty());
            }
        }
    }

    #[test]
    fn message_channel_values_are_checked_with_line_and_key() {
        for (from, to, key, says) in [
            (
                "batch_max = 1000",
                "batch_max = 0",
                "batch_max",
                "0 is out of range 1..=10000",
            ),
            (
                "batch_max = 1000",
                "batch_max = 10001",
                "batch_max",
                "out of range 1..=10000",
            ),
            (
                "batch_max_bytes = \"8MiB\"",
                "batch_max_bytes = \"8MB\"",
                "batch_max_bytes",
                "KiB, MiB or GiB",
            ),
            (
                "batch_max_bytes = \"8MiB\"",
                "batch_max_bytes = 512",
                "batch_max_bytes",
                "512 bytes is out of range 1KiB..=64MiB",
            ),
            (
                "batch_max_bytes = \"8MiB\"",
                "batch_max_bytes = \"65MiB\"",
                "batch_max_bytes",
                "out of range 1KiB..=64MiB",
            ),
            (
                "batch_max_bytes = \"8MiB\"",
                "batch_max_bytes = -1",
                "batch_max_bytes",
                "-1: out of range",
            ),
            (
                "batch_max_bytes = \"8MiB\"",
                "batch_max_bytes = true",
                "batch_max_bytes",
                "write a number of bytes",
            ),
            (
                "linger_ms = 2",
                "linger_ms = -1",
                "linger_ms",
                "-1 is out of range 0..=1000",
            ),
            (
                "linger_ms = 2",
                "linger_ms = 1001",
                "linger_ms",
                "out of range 0..=1000",
            ),
            (
                "retention = \"7d\"",
                "retention = \"30s\"",
                "retention",
                "from 1m to 365d",
            ),
            (
                "retention = \"7d\"",
                "retention = \"366d\"",
                "retention",
                "from 1m to 365d",
            ),
            (
                "retention = \"7d\"",
                "retention = \"a week\"",
                "retention",
                "from 1m to 365d",
            ),
            (
                "# source = \"nats://127.0.0.1:4222/NOTICES/isogate\"",
                "source = \"nats://127.0.0.1:4222/NOTICES\"",
                "source",
                "nats://HOST:PORT/STREAM/CONSUMER",
            ),
            (
                "# source = \"nats://127.0.0.1:4222/NOTICES/isogate\"",
                "source = \"127.0.0.1:4222/NOTICES/isogate\"",
                "source",
                "begins with nats://",
            ),
            (
                "# deliver = \"nats://127.0.0.1:4222/court.notices\"",
                "deliver = \"nats://127.0.0.1:4222/court.*\"",
                "deliver",
                "wildcard",
            ),
            (
                "# deliver = \"nats://127.0.0.1:4222/court.notices\"",
                "deliver = \"nats://127.0.0.1:70000/court.notices\"",
                "deliver",
                "HOST:PORT",
            ),
            (
                "kind = \"messages\"",
                "kind = \"message\"",
                "kind",
                "supported: files, stream, messages",
            ),
        ] {
            let (err, text) = notices_problems(28120, "court", |t| t.replacen(from, to, 1));
            let line = line_no(&text, to);
            assert!(
                err.contains(&format!("court.toml:{line}: channel[3].{key}: ")),
                "{to}: {err}"
            );
            assert!(err.contains(says), "{to}: {err}");
        }
    }

    #[test]
    fn optional_message_keys_are_read_and_a_change_needs_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, 28130, None).unwrap();
        let file = lab.join("internet.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        let (before, _) = validated(&file);
        let changed = text
            .replacen("batch_max = 1000", "batch_max = 10000", 1)
            .replacen("batch_max_bytes = \"8MiB\"", "batch_max_bytes = 1024", 1)
            .replacen("linger_ms = 2", "linger_ms = 0", 1)
            .replacen("retention = \"7d\"", "retention = \"1m\"", 1)
            .replacen("# source = ", "source = ", 1)
            .replacen("# deliver = ", "deliver = ", 1)
            .replacen("127.0.0.1:28135", "127.0.0.1:28138", 1);
        std::fs::write(&file, &changed).unwrap();
        let (after, problems) = validated(&file);
        assert!(problems.is_empty(), "{problems:?}");
        let m = after.channel("notices").unwrap().messages.clone().unwrap();
        assert_eq!(
            (m.batch_max, m.batch_max_bytes, m.linger_ms, m.retention_ms),
            (10_000, 1024, 0, 60_000)
        );
        assert_eq!(
            m.source,
            Some(NatsSource {
                server: "127.0.0.1:4222".into(),
                stream: "NOTICES".into(),
                consumer: "isogate".into()
            })
        );
        assert_eq!(
            m.deliver,
            Some(NatsDeliver {
                server: "127.0.0.1:4222".into(),
                subject: "court.notices".into()
            })
        );
        let said = before.restart_needed(&after);
        assert!(
            said.iter().any(
                |l| l.starts_with("channel notices: messages batch_max 1000")
                    && l.contains("→ batch_max 10000")
            ),
            "{said:?}"
        );
        assert!(
            said.contains(&"messages: listen 127.0.0.1:28135 → 127.0.0.1:28138".to_string()),
            "{said:?}"
        );
        // without [messages]: none, and a warning for each messages channel
        let without = changed.replacen("[messages]\n", "[quarantine]\n", 1);
        let without = without
            .lines()
            .filter(|l| *l != "listen = \"127.0.0.1:28138\"")
            .map(|l| format!("{l}\n"))
            .collect::<String>();
        std::fs::write(&file, &without).unwrap();
        let (none, problems) = validated(&file);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(none.messages.is_none());
        let warned: Vec<_> = none
            .warnings
            .iter()
            .filter(|w| w.key.as_deref() == Some("messages.listen"))
            .collect();
        assert_eq!(warned.len(), 2, "{:?}", none.warnings);
        assert!(warned[0].message.contains("no HTTP API"), "{warned:?}");
        assert!(
            after
                .restart_needed(&none)
                .contains(&"messages: listen 127.0.0.1:28138 → none".to_string())
        );
    }

    #[test]
    fn message_keys_are_refused_on_files_and_stream_channels() {
        for (anchor, index) in [
            ("policy = \"policy/to-court.toml\"", 1),
            ("policy = \"policy/hearing.toml\"", 2),
        ] {
            for key_value in [
                "batch_max = 10",
                "batch_max_bytes = 4096",
                "linger_ms = 1",
                "retention = \"1d\"",
                "source = \"nats://127.0.0.1:4222/S/C\"",
                "deliver = \"nats://127.0.0.1:4222/s\"",
            ] {
                let dir = tempfile::tempdir().unwrap();
                let lab = dir.path().join("lab");
                crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, 28140, None).unwrap();
                let file = lab.join("court.toml");
                let text = std::fs::read_to_string(&file).unwrap();
                let bad = text.replacen(anchor, &format!("{anchor}\n{key_value}"), 1);
                std::fs::write(&file, &bad).unwrap();
                let (_, problems) = validated(&file);
                let line = line_no(&bad, key_value);
                let key = key_value.split(' ').next().unwrap();
                assert!(
                    problems.iter().any(|p| p.line == Some(line)
                        && p.key.as_deref() == Some(&format!("channel[{index}].{key}"))
                        && p.message
                            .contains("is a key of kind = \"messages\" channels")),
                    "{key_value}: {problems:?}"
                );
            }
        }
        // and the keys of a stream on a messages channel
        let (err, text) = notices_problems(28150, "court", |t| {
            t.replacen("linger_ms = 2", "linger_ms = 2\nprotocol = \"rtp\"", 1)
        });
        // the line after notices' linger_ms (the hearing channel has a protocol line too)
        let line = line_no(&text, "linger_ms = 2") + 1;
        assert!(
            err.contains(&format!(
                "court.toml:{line}: channel[3].protocol: protocol is a key of kind = \"stream\" channels, not of kind = \"messages\""
            )),
            "{err}"
        );
    }

    #[test]
    fn a_messages_channel_needs_a_messages_policy() {
        let (err, text) = notices_problems(28150, "court", |t| {
            t.replacen("policy/notices.toml", "policy/to-internet.toml", 1)
        });
        let at = text.find("name = \"notices\"").unwrap();
        let line = text[..at].matches('\n').count()
            + text[at..]
                .lines()
                .position(|l| l.contains("policy/to-internet.toml"))
                .unwrap()
            + 1;
        assert!(
            err.contains(&format!(
                "court.toml:{line}: channel[3].policy: policy/to-internet.toml: a messages channel (kind = \"messages\") needs a messages policy"
            )),
            "{err}"
        );
    }

    #[test]
    fn the_message_api_listens_on_an_address_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, 28160, None).unwrap();
        let file = lab.join("court.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        let own = "listen = \"127.0.0.1:28164\"";
        assert!(text.contains(own));
        let line = line_no(&text, own);
        let with = |listen: &str, extra: &str| {
            let changed = text.replacen(own, &format!("listen = \"{listen}\"{extra}"), 1);
            std::fs::write(&file, &changed).unwrap();
            let (cfg, problems) = validated(&file);
            (cfg, problems, line)
        };
        for (listen, says) in [
            ("127.0.0.1:0", "port 0"),
            (
                "localhost:28164",
                "e.g. 127.0.0.1:28164 or [::1]:28164 (not a host name)",
            ),
            ("10.1.2.3:28164", "not a loopback address"),
            ("127.0.0.1:28160", "node.listen is 127.0.0.1:28160"),
            ("127.0.0.1:28162", "metrics.listen is 127.0.0.1:28162"),
            ("127.0.0.1:28168", "console.listen is 127.0.0.1:28168"),
            (
                "127.0.0.1:28166",
                "channel hearing's listen is 127.0.0.1:28166",
            ),
        ] {
            let (cfg, problems, line) = with(listen, "");
            assert!(cfg.messages.is_none(), "{listen}");
            assert!(
                problems.iter().any(|p| p.line == Some(line)
                    && p.key.as_deref() == Some("messages.listen")
                    && p.message.contains(says)),
                "{listen}: {problems:?}"
            );
        }
        let (cfg, problems, _) = with("[::ffff:127.0.0.1]:28164", "");
        assert!(
            problems.is_empty() && cfg.messages.is_some(),
            "{problems:?}"
        );
        let (cfg, problems, _) = with("0.0.0.0:28164", "\nallow_remote = true");
        assert!(problems.is_empty(), "{problems:?}");
        // reachable from afar, but answering no DNS name: `check` warns
        assert!(
            cfg.warnings
                .iter()
                .any(|w| w.key.as_deref() == Some("messages.hosts")
                    && w.message.contains("421 host_not_allowed")),
            "{:?}",
            cfg.warnings
        );
        assert!(cfg.messages.unwrap().allow_remote);
        let (cfg, problems, _) = with(
            "0.0.0.0:28164",
            "\nallow_remote = true\nhosts = [\"gateway.court.example\"]",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert!(
            !cfg.warnings
                .iter()
                .any(|w| w.key.as_deref() == Some("messages.hosts")),
            "{:?}",
            cfg.warnings
        );
        let (cfg, problems, _) = with(
            "127.0.0.1:28164",
            "\nhosts = [\"Gateway.Court.Example.\", \"api-2\"]",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            cfg.messages.unwrap().hosts,
            ["gateway.court.example", "api-2"]
        );
        let (_, problems, line) = with("127.0.0.1:28164", "\nhosts = [\"https://gw:7404\"]");
        assert!(
            problems.iter().any(|p| p.line == Some(line + 1)
                && p.key.as_deref() == Some("messages.hosts")
                && p.message.contains("no port, no scheme")),
            "{problems:?}"
        );
        std::fs::write(
            &file,
            text.replacen(own, &format!("{own}\nremote = true"), 1),
        )
        .unwrap();
        let err = Config::load(&file).unwrap_err().to_string();
        assert!(err.contains("unknown field `remote`"), "{err}");
    }

    #[test]
    fn names_are_short_lower_case_words() {
        for ok in ["court", "to-internet", "a_1", "x"] {
            assert!(valid_name(ok), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in ["", "Court", "-x", "a b", "é", long.as_str()] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
