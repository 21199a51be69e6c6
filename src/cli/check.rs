//! `isogate check`: loads a configuration and the policies it names, and prints the
//! compliance review — every problem with its file, line and key, or each channel's
//! effective rules (a stream channel's addresses, timing and packet rules; a messages
//! channel's batching, retention, NATS addresses, schema and content rules; the node's
//! message API address), and which configured folders share a file system (and where a move
//! must copy instead of rename), and the fingerprints of the node's keys and of the peer's
//! pinned ones — as a readable report or one JSON document.

use crate::core::stream::{Protocol, StreamRules};
use crate::core::wire::LinkKind;
use crate::keys;
use crate::keys::suite::Suite;
use crate::node::config::{Config, MessageChannel, MessagesApiConfig, Role, StreamChannel};
use crate::node::layout::survey;
use crate::policy::{PiiAction, Policy};
use crate::problem::Problem;
use anyhow::{Result, bail};
use std::path::Path;
use std::process::ExitCode;

/// `println!` that returns the write's error instead of panicking: a reader that closed
/// the pipe early (`isogate check … | head`) ends the report quietly.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// The report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A readable report: the problems on standard error, or the rules on standard output.
    Text,
    /// One JSON document on standard output.
    Json,
}

/// Checks the configuration `config` and prints the report in `format`.
///
/// # Errors
/// The configuration has a problem (the error counts them; the report lists them), or the
/// JSON document cannot be written.
pub fn command(config: &Path, format: Format) -> Result<ExitCode> {
    let loaded = Config::load(config).and_then(|cfg| match missing_folder(config, &cfg) {
        Some(p) => Err(crate::problem::Problems(vec![p])),
        None => Ok(cfg),
    });
    let extra = loaded
        .as_ref()
        .map(|c| link_warnings(config, c))
        .unwrap_or_default();
    match format {
        Format::Json => {
            let doc = match &loaded {
                Ok(cfg) => serde_json::json!({
                    "ok": true,
                    "config": config.display().to_string(),
                    "node": cfg.node.name,
                    "zone": cfg.node.zone,
                    "peer": cfg.peer.name,
                    "channels": cfg.channels.iter().map(|c| serde_json::json!({
                        "name": c.name,
                        "from": c.from,
                        "to": c.to,
                        "outbound": c.outbound,
                        "role": if c.role == Role::Send { "send" } else { "receive" },
                        "kind": kind(c),
                        "stream": c.stream.as_ref().map(stream_json),
                        "messages": c.messages.as_ref().map(messages_json),
                        "policy": c.policy_file.display().to_string(),
                        "rules": c.policy.report(),
                    })).collect::<Vec<_>>(),
                    "keys": key_fingerprints(cfg).into_iter().map(|(who, tls, sign)| serde_json::json!({
                        "of": who,
                        "tls_certificate": tls,
                        "signing_key": sign,
                    })).collect::<Vec<_>>(),
                    "cryptography": crypto_json(cfg),
                    "messages_api": cfg.messages.as_ref().map(|m| serde_json::json!({
                        "listen": m.listen.to_string(),
                        "allow_remote": m.allow_remote,
                        "hosts": m.hosts,
                        "url": api_url(m.listen),
                    })),
                    "problems": [],
                    "warnings": cfg.warnings.iter().chain(&extra).map(problem_json).collect::<Vec<_>>(),
                    "file_systems": layout_json(cfg),
                }),
                Err(p) => serde_json::json!({
                    "ok": false,
                    "config": config.display().to_string(),
                    "problems": p.0.iter().map(problem_json).collect::<Vec<_>>(),
                }),
            };
            outln!("{}", serde_json::to_string_pretty(&doc)?)?;
        }
        Format::Text => match &loaded {
            Ok(cfg) => {
                outln!(
                    "{}: ok — node {} (zone {}), peer {} at {}",
                    config.display(),
                    cfg.node.name,
                    cfg.node.zone,
                    cfg.peer.name,
                    cfg.peer.address
                )?;
                for (who, tls, sign) in key_fingerprints(cfg) {
                    outln!("  {who:<22} tls {tls}  signing {sign}")?;
                }
                for line in crypto_lines(cfg) {
                    outln!("{line}")?;
                }
                match &cfg.messages {
                    Some(m) => outln!(
                        "  message API {}{}{}",
                        api_url(m.listen),
                        if m.allow_remote {
                            " (allow_remote: TLS in front of it)"
                        } else {
                            ""
                        },
                        if m.hosts.is_empty() {
                            String::new()
                        } else {
                            format!(", Host also {}", m.hosts.join(", "))
                        }
                    )?,
                    None => outln!("  message API none ([messages] listen not set)")?,
                }
                for c in &cfg.channels {
                    outln!(
                        "  channel {}: {} -> {} ({}), this node {}s{}",
                        c.name,
                        c.from,
                        c.to,
                        if c.outbound { "outbound" } else { "inbound" },
                        if c.role == Role::Send {
                            "send"
                        } else {
                            "receive"
                        },
                        match kind(c) {
                            "files" => String::new(),
                            k => format!(" ({k})"),
                        },
                    )?;
                    match (&c.stream, &c.policy.stream, &c.messages) {
                        (Some(s), Some(rules), _) => {
                            for line in
                                stream_lines(&c.policy_file, &c.policy.version, c.role, s, rules)
                            {
                                outln!("{line}")?;
                            }
                        }
                        (_, _, Some(m)) => {
                            for line in message_lines(
                                &c.name,
                                c.role,
                                m,
                                cfg.messages.as_ref(),
                                &c.policy_file,
                                &c.policy,
                            ) {
                                outln!("{line}")?;
                            }
                        }
                        _ => print_rules(&c.policy_file, &c.policy)?,
                    }
                }
                let layout = survey(cfg);
                for (i, shared) in layout.lines().iter().enumerate() {
                    outln!("  file system {}: {shared}", i + 1)?;
                }
                for cost in &layout.costs {
                    outln!("  copy: {cost}")?;
                }
                for w in cfg.warnings.iter().chain(&extra) {
                    outln!("warning: {w}")?;
                }
            }
            Err(p) => {
                for x in &p.0 {
                    eprintln!("{x}");
                }
            }
        },
    }
    match loaded {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(p) => bail!("{} problem(s) in {}", p.0.len(), config.display()),
    }
}

/// The folder `isogate run` would refuse to start without, as a problem of the file
/// (line and key): a missing exchange directory, or a missing parent of the state or
/// audit directory ([`crate::node::check_folders`]).
fn missing_folder(file: &Path, cfg: &Config) -> Option<Problem> {
    match crate::node::check_folders(&cfg.node) {
        Err(crate::node::NodeError::Missing { key, path, what }) => Some(Problem {
            file: file.to_path_buf(),
            line: Config::node_dir_line(file, key),
            key: Some(key.to_string()),
            message: crate::node::missing(&path, what),
        }),
        _ => None,
    }
}

/// What this host's network says about the configuration (best effort, never an
/// error): a `[diode] mtu` larger than the interface toward the peer carries.
fn link_warnings(file: &Path, cfg: &Config) -> Vec<Problem> {
    let Some(d) = &cfg.diode else {
        return Vec::new();
    };
    crate::link::diode::path::mtu_warning(d.mtu, d.peer.ip())
        .map(|message| Problem {
            file: file.to_path_buf(),
            line: None,
            key: Some("diode.mtu".to_string()),
            message,
        })
        .into_iter()
        .collect()
}

/// The node's data keys for the report: the sealing key's cipher, and every key by id
/// (`DataKeys::describe`); `None` without `[node] data_key`.
fn at_rest(cfg: &Config) -> Option<(String, String)> {
    let file = cfg.node.data_key.as_ref()?;
    Some(match keys::at_rest::DataKeys::load(file) {
        Ok(k) => (k.suite().cipher().to_string(), k.describe()),
        Err(_) => ("unreadable".into(), "unreadable".into()),
    })
}

/// What is sealed at rest with a data key.
const SEALED: &str = "the quarantine, the spool (objects waiting to cross or for approval) and each received object until it is cleared to land";

/// What is never sealed at rest, whatever the data key: what has landed, which
/// applications read (and the part file a cleared object is unsealed into, beside the
/// inbox, for the moment before it is renamed in).
const NOT_SEALED: &str = "the inboxes and message logs (what has landed: applications read them)";

/// What the pair's suite does not cover: under the national suite, approvers sign with the
/// command only, and the identifiers whose standards name SHA-256 keep it.
fn not_yet(s: keys::suite::Suite) -> Option<String> {
    let d = keys::suite::Suite::Default;
    (s != d).then(|| {
        format!(
            "approvers sign with `isogate approve`, not in the console (the browser has no {}); identifiers stay {}: key and certificate fingerprints and checkpoint key ids (OpenSSL's and C2SP's forms), message ids, policy versions, the diode settings digest",
            s.signature(),
            d.hash(),
        )
    })
}

/// The suite and what protects each place, as the assessor reads them: the report's
/// cryptography lines.
fn crypto_lines(cfg: &Config) -> Vec<String> {
    let s = cfg.node.suite;
    let mut out = vec![format!(
        "  cryptography           suite {s}: signatures {} ({}), hashes {} (content, chunks, the audit log's Merkle tree); transport: {}",
        s.signature(),
        signed(cfg).join(", "),
        s.hash(),
        transport(cfg).join("; ")
    )];
    if let Some(gaps) = not_yet(s) {
        out.push(format!("  {:<23}{gaps}", format!("not yet in suite {s}")));
    }
    let flag = s.keygen_flag();
    out.push(match at_rest(cfg) {
        Some((_, keys)) => format!(
            "  data at rest           sealed: {SEALED}; data keys {keys}; not sealed: {NOT_SEALED}"
        ),
        None => format!(
            "  data at rest           in plaintext: no [node] data_key (`isogate keygen --data-key FILE{flag}`); not sealed either way: {NOT_SEALED}"
        ),
    });
    out
}

/// Whether a channel of this node uses `link`.
fn uses(cfg: &Config, link: LinkKind) -> bool {
    cfg.channels.iter().any(|c| c.link == link)
}

/// What the node's signing key signs: receipts only where a QUIC link carries them back.
fn signed(cfg: &Config) -> Vec<&'static str> {
    let mut out = vec!["manifests"];
    if uses(cfg, LinkKind::Quic) {
        out.push("receipts");
    }
    out.extend(["audit checkpoints", "key switches", "approvals"]);
    out
}

/// How each link the node uses protects what crosses: QUIC is encrypted and authenticated
/// by TLS 1.3; the diode's datagrams are encrypted and authenticated with AES-256-GCM in the
/// default suite, and authenticated by HMAC-SM3, not encrypted, in `gm`.
fn transport(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if uses(cfg, LinkKind::Quic) {
        out.push(
            "QUIC over TLS 1.3 with ECDSA P-256 certificates, encrypted (no TLCP: the TLS stack has none)"
                .to_string(),
        );
    }
    if uses(cfg, LinkKind::Diode) {
        out.push(match cfg.node.suite {
            Suite::Default => "diode, UDP datagrams encrypted and authenticated with AES-256-GCM under a key derived for each session from the pair's key (a one-way link has no handshake: the pair's key is never replaced by one agreed for the session, so whoever learns it reads what crossed)".to_string(),
            Suite::Gm => format!(
                "diode, UDP datagrams tagged with {} under the pair's key, NOT encrypted (SM4-GCM is too slow for the link; a one-way link has no handshake: put it on a wire of its own)",
                cfg.node.suite.mac()
            ),
        });
    }
    out
}

/// [`crypto_lines`] for `--format json`.
fn crypto_json(cfg: &Config) -> serde_json::Value {
    let s = cfg.node.suite;
    serde_json::json!({
        "suite": s.name(),
        "signatures": s.signature(),
        "signed": signed(cfg),
        "approvals": s.signature(),
        "hashes": s.hash(),
        "datagram_tags": uses(cfg, LinkKind::Diode).then(|| s.mac()),
        "not_yet": not_yet(s),
        "transport": transport(cfg),
        "at_rest": at_rest(cfg).map(|(cipher, keys)| serde_json::json!({
            "sealed": ["quarantine", "spool", "approvals", "received"],
            "cipher": cipher,
            "data_keys": keys,
        })),
        "not_sealed": ["inboxes", "message logs"],
    })
}

/// The fingerprints of this node's certificate and signing key and of the peer's pinned
/// ones (current, then next while rotating), in the `sha256:` form `keygen` prints and
/// handshake failures log: (whose, TLS certificate, signing key). A file that cannot be
/// read (it was checked a moment ago) shows as `unreadable`.
fn key_fingerprints(cfg: &Config) -> Vec<(&'static str, String, String)> {
    let cert = |p: &Path| {
        keys::load_cert(p)
            .map(|c| keys::cert_fingerprint(&c))
            .unwrap_or_else(|_| "unreadable".into())
    };
    let own = |p: &Path| {
        keys::SigningKey::load(p)
            .map(|k| k.verify_key().fingerprint())
            .unwrap_or_else(|_| "unreadable".into())
    };
    let public = |p: &Path| {
        keys::VerifyKey::load(p)
            .map(|k| k.fingerprint())
            .unwrap_or_else(|_| "unreadable".into())
    };
    let mut out = vec![(
        "this node",
        cert(&cfg.node.tls_cert),
        own(&cfg.node.signing_key),
    )];
    if let Some(n) = &cfg.node.next {
        out.push(("this node (next)", cert(&n.tls_cert), own(&n.signing_key)));
    }
    out.push((
        "peer (pinned)",
        cert(&cfg.peer.tls_cert),
        public(&cfg.peer.signing_public_key),
    ));
    if let Some(n) = &cfg.peer.next {
        out.push((
            "peer (pinned, next)",
            cert(&n.tls_cert),
            public(&n.signing_public_key),
        ));
    }
    out
}

/// Which folders share a file system, and the moves that must copy, as a JSON object.
fn layout_json(cfg: &Config) -> serde_json::Value {
    let layout = survey(cfg);
    serde_json::json!({
        "groups": layout.groups.iter().map(|g| g.iter().map(|p| serde_json::json!({
            "role": p.role,
            "path": p.path.display().to_string(),
        })).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "copies": layout.costs,
    })
}

/// A stream channel's settings as a JSON object: protocol, addresses, delay budget (ms),
/// silence (s), expected.
fn stream_json(s: &StreamChannel) -> serde_json::Value {
    serde_json::json!({
        "protocol": s.protocol.as_str(),
        "listen": s.listen.to_string(),
        "emit": s.emit.to_string(),
        "delay_ms": s.delay_ms,
        "silence_s": s.silence_ms / 1000,
        "expected": s.expected,
    })
}

/// The settings and effective rules of one stream channel, for the compliance report: one
/// line each (policy, addresses, timing, payload types for RTP, packets, PIDs, sources).
fn stream_lines(
    file: &Path,
    version: &str,
    role: Role,
    s: &StreamChannel,
    r: &StreamRules,
) -> Vec<String> {
    let list = |v: Vec<String>, none: &str| {
        if v.is_empty() {
            none.to_string()
        } else {
            v.join(", ")
        }
    };
    let (here, mine, there, theirs) = match role {
        Role::Send => ("listens on", s.listen, "the peer emits to", s.emit),
        Role::Receive => ("emits to", s.emit, "the peer listens on", s.listen),
    };
    let mut out = vec![
        format!("    policy        {} (version {version})", file.display()),
        format!(
            "    stream        {} over UDP; this node {here} {mine} ({there} {theirs})",
            s.protocol.as_str()
        ),
        format!(
            "    timing        delay budget {} ms; stopped after {} s of silence; {}",
            s.delay_ms,
            s.silence_ms / 1000,
            if s.expected {
                "expected always on (/healthz fails while silent)"
            } else {
                "silence is normal"
            }
        ),
    ];
    if s.protocol == Protocol::Rtp {
        out.push(format!(
            "    payload types {}",
            list(r.payload_types.iter().map(u8::to_string).collect(), "none")
        ));
    }
    out.push(format!(
        "    packets       at most {} bytes, {} kbit/s",
        r.max_packet_bytes,
        r.max_bitrate_bps / 1000
    ));
    out.push(format!(
        "    pids          {}",
        list(r.pids.iter().map(u16::to_string).collect(), "not checked")
    ));
    out.push(format!(
        "    sources       {}{}",
        list(
            r.sources
                .iter()
                .map(crate::policy::stream::source_text)
                .collect(),
            "none"
        ),
        if role == Role::Receive {
            " (checked by the sending node)"
        } else {
            ""
        }
    ));
    out
}

/// A channel's kind as configured: `files`, `stream` or `messages`.
fn kind(c: &crate::node::config::Channel) -> &'static str {
    if c.is_stream() {
        "stream"
    } else if c.is_messages() {
        "messages"
    } else {
        "files"
    }
}

/// The message API's URL pattern at `listen`.
fn api_url(listen: std::net::SocketAddr) -> String {
    format!("http://{listen}/v1/channels/{{channel}}/messages")
}

/// A messages channel's settings as a JSON object: batching, retention (s), NATS addresses.
fn messages_json(m: &MessageChannel) -> serde_json::Value {
    serde_json::json!({
        "batch_max": m.batch_max,
        "batch_max_bytes": m.batch_max_bytes,
        "linger_ms": m.linger_ms,
        "retention_s": m.retention_ms / 1000,
        "source": m.source.as_ref().map(|s| format!("nats://{}/{}/{}", s.server, s.stream, s.consumer)),
        "deliver": m.deliver.as_ref().map(|d| format!("nats://{}/{}", d.server, d.subject)),
    })
}

/// The settings and effective rules of one messages channel, for the compliance report:
/// one line each (policy, the API's route, batching, retention, NATS, schema, text rules,
/// markings, personal data).
fn message_lines(
    name: &str,
    role: Role,
    m: &MessageChannel,
    api: Option<&MessagesApiConfig>,
    file: &Path,
    p: &Policy,
) -> Vec<String> {
    let (method, nats) = match role {
        Role::Send => (
            "POST",
            m.source.as_ref().map(|s| {
                format!(
                    "takes from nats://{}/{}/{} (durable pull consumer)",
                    s.server, s.stream, s.consumer
                )
            }),
        ),
        Role::Receive => (
            "GET",
            m.deliver.as_ref().map(|d| {
                format!(
                    "publishes to nats://{}/{} (Nats-Msg-Id = message id)",
                    d.server, d.subject
                )
            }),
        ),
    };
    let mut out = vec![format!(
        "    policy        {} (version {})",
        file.display(),
        p.version
    )];
    out.push(match api {
        Some(api) => format!(
            "    api           {method} http://{}/v1/channels/{name}/messages",
            api.listen
        ),
        None => {
            "    api           none ([messages] listen not set): outbox and NATS only".to_string()
        }
    });
    out.push(format!(
        "    batches       at most {} messages, {} bytes; linger {} ms",
        m.batch_max, m.batch_max_bytes, m.linger_ms
    ));
    if role == Role::Receive {
        out.push(format!(
            "    retention     {}",
            humantime::format_duration(std::time::Duration::from_millis(m.retention_ms))
        ));
    }
    out.push(format!(
        "    nats          {}",
        nats.unwrap_or_else(|| "none".into())
    ));
    if let Some(rules) = &p.messages {
        out.push(format!(
            "    schema        {} (JSON Schema draft 2020-12); at most {} bytes a message",
            rules
                .schema_file
                .as_ref()
                .map_or("none".into(), |f| f.display().to_string()),
            rules.max_message_bytes
        ));
    }
    out.push(format!(
        "    text rules    {} keyword(s), {} pattern(s)",
        p.keywords.len(),
        p.patterns.len()
    ));
    out.push(match &p.markings {
        Some(allow) if allow.is_empty() => "    markings      refused".to_string(),
        Some(allow) => format!(
            "    markings      refused; exempt phrases: {}",
            allow.join(", ")
        ),
        None => "    markings      not checked".to_string(),
    });
    out.push(match &p.personal_data {
        Some(pd) => format!(
            "    personal data {} ({}) in every string value and key",
            match pd.action {
                PiiAction::Refuse => "refused",
                PiiAction::Mask => "masked",
            },
            pd.kinds
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => "    personal data not checked".to_string(),
    });
    out
}

/// One problem as a JSON object.
fn problem_json(x: &Problem) -> serde_json::Value {
    serde_json::json!({
        "file": x.file.display().to_string(),
        "line": x.line,
        "key": x.key,
        "message": x.message,
    })
}

/// The effective rules of one channel, for the compliance report.
fn print_rules(file: &Path, p: &Policy) -> std::io::Result<()> {
    let or_none = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    outln!(
        "    policy        {} (version {})",
        file.display(),
        p.version
    )?;
    outln!(
        "    names         at most {} bytes; extensions {}",
        p.max_name_len,
        p.extensions.join(", ")
    )?;
    outln!("    size          {}..={} bytes", p.min_bytes, p.max_bytes)?;
    outln!(
        "    types         {}; executables allowed by name: {}",
        p.allow.join(", "),
        or_none(&p.executable_names)
    )?;
    match &p.archives {
        Some(a) => outln!(
            "    archives      depth {}, {} entries, {} bytes expanded, ratio {}",
            a.max_depth,
            a.max_entries,
            a.max_expanded_bytes,
            a.max_ratio
        )?,
        None => outln!("    archives      none allowed")?,
    }
    outln!(
        "    text rules    {} keyword(s), {} pattern(s)",
        p.keywords.len(),
        p.patterns.len()
    )?;
    outln!(
        "    pdf           active content {}",
        if p.pdf_refuse_active {
            "refused"
        } else {
            "allowed"
        }
    )?;
    match &p.markings {
        Some(allow) => outln!(
            "    markings      refused; exempt phrases: {}",
            or_none(allow)
        )?,
        None => outln!("    markings      not checked")?,
    }
    match &p.personal_data {
        Some(pd) => outln!(
            "    personal data {} ({})",
            match pd.action {
                PiiAction::Refuse => "refused",
                PiiAction::Mask => "masked in text, CSV, JSON and XML; refused elsewhere",
            },
            pd.kinds
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )?,
        None => outln!("    personal data not checked")?,
    }
    match &p.antivirus {
        Some(a) => outln!(
            "    antivirus     clamd {} (timeout {} ms, quarantine after {} s waiting)",
            a.clamd,
            a.timeout_ms,
            a.max_wait_ms / 1000
        )?,
        None => outln!("    antivirus     none")?,
    }
    match &p.approval {
        Some(a) => {
            outln!(
                "    approval      {} of {} approver(s); expires after {}",
                a.required,
                a.approvers.len(),
                humantime::format_duration(std::time::Duration::from_millis(a.expire_ms))
            )?;
            for x in &a.approvers {
                outln!(
                    "      approver    {} level {} key {}",
                    x.name,
                    x.level,
                    x.key.fingerprint()
                )?;
            }
        }
        None => outln!("    approval      none required")?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::init::{LabLink, init};

    #[test]
    fn a_messages_channel_shows_its_route_batching_nats_and_rules() {
        let policy = Policy::parse(
            Path::new("to-internet.toml"),
            crate::cli::init::POLICY_TO_INTERNET,
        )
        .unwrap();
        let m = MessageChannel {
            batch_max: 1000,
            batch_max_bytes: 8 << 20,
            linger_ms: 2,
            retention_ms: 7 * 86_400_000,
            source: Some(
                crate::node::config::NatsSource::parse("nats://127.0.0.1:4222/NOTICES/isogate")
                    .unwrap(),
            ),
            deliver: Some(
                crate::node::config::NatsDeliver::parse("nats://127.0.0.1:4222/court.notices")
                    .unwrap(),
            ),
        };
        let api = MessagesApiConfig {
            listen: "127.0.0.1:28104".parse().unwrap(),
            allow_remote: false,
            hosts: Vec::new(),
        };
        let file = Path::new("policy/notices.toml");
        let send = message_lines("notices", Role::Send, &m, Some(&api), file, &policy).join("\n");
        for expect in [
            "api           POST http://127.0.0.1:28104/v1/channels/notices/messages",
            "batches       at most 1000 messages, 8388608 bytes; linger 2 ms",
            "nats          takes from nats://127.0.0.1:4222/NOTICES/isogate (durable pull consumer)",
            "text rules    3 keyword(s), 1 pattern(s)",
            "markings      refused; exempt phrases: 商业秘密",
            "personal data masked (resident_id, mobile, bank_card, email)",
        ] {
            assert!(send.contains(expect), "{expect:?} missing from:\n{send}");
        }
        assert!(!send.contains("retention"), "{send}");
        let receive = message_lines("notices", Role::Receive, &m, None, file, &policy).join("\n");
        for expect in [
            "api           none ([messages] listen not set)",
            "retention     7days",
            "nats          publishes to nats://127.0.0.1:4222/court.notices",
        ] {
            assert!(
                receive.contains(expect),
                "{expect:?} missing from:\n{receive}"
            );
        }
        let json = messages_json(&m);
        assert_eq!(json["retention_s"], 604_800);
        assert_eq!(json["batch_max_bytes"], 8 << 20);
        assert_eq!(json["source"], "nats://127.0.0.1:4222/NOTICES/isogate");
        assert_eq!(json["deliver"], "nats://127.0.0.1:4222/court.notices");
        assert_eq!(
            api_url(api.listen),
            "http://127.0.0.1:28104/v1/channels/{channel}/messages"
        );
    }

    #[test]
    fn a_new_lab_passes_check_and_shows_its_stream_channel() {
        let dir = tempfile::tempdir().unwrap();
        for link in [LabLink::Quic, LabLink::Diode] {
            let lab = dir.path().join(link.as_str());
            init(&lab, link, 27180, None).unwrap();
            for node in ["court", "internet"] {
                let file = lab.join(format!("{node}.toml"));
                for format in [Format::Text, Format::Json] {
                    assert!(command(&file, format).is_ok(), "{node} {link:?} {format:?}");
                }
            }
            let court = Config::load(&lab.join("court.toml")).unwrap();
            let c = court.channel("hearing").unwrap();
            let (s, rules) = (
                c.stream.as_ref().unwrap(),
                c.policy.stream.as_ref().unwrap(),
            );
            let lines = stream_lines(&c.policy_file, &c.policy.version, c.role, s, rules);
            let text = lines.join("\n");
            for expect in [
                "stream        rtp over UDP; this node listens on 127.0.0.1:27186 (the peer emits to 127.0.0.1:27187)",
                "payload types 33, 96, 97, 98, 111",
                "packets       at most 1500 bytes, 20000 kbit/s",
                "pids          not checked",
                "sources       127.0.0.1/32",
            ] {
                assert!(text.contains(expect), "{expect:?} missing from:\n{text}");
            }
            let delay = if link == LabLink::Quic { 20 } else { 40 };
            assert!(text.contains(&format!("delay budget {delay} ms")), "{text}");
            let json = stream_json(s);
            assert_eq!(json["listen"], "127.0.0.1:27186");
            assert_eq!(json["emit"], "127.0.0.1:27187");
            assert_eq!(json["protocol"], "rtp");
            assert_eq!(c.policy.report()["stream"]["max_bitrate_kbit"], 20000);
            let internet = Config::load(&lab.join("internet.toml")).unwrap();
            let c = internet.channel("hearing").unwrap();
            let lines = stream_lines(
                &c.policy_file,
                &c.policy.version,
                c.role,
                c.stream.as_ref().unwrap(),
                c.policy.stream.as_ref().unwrap(),
            );
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("this node emits to 127.0.0.1:27187")),
                "{lines:?}"
            );
        }
    }

    #[test]
    fn check_refuses_a_stream_policy_without_sources_or_with_no_bitrate() {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        init(&lab, LabLink::Quic, 27150, None).unwrap();
        let policy = lab.join("policy/hearing.toml");
        let good = std::fs::read_to_string(&policy).unwrap();
        for (from, to, key) in [
            (
                "sources = [\"127.0.0.1/32\"]",
                "sources = []",
                "stream.sources",
            ),
            (
                "max_bitrate_kbit = 20000",
                "max_bitrate_kbit = 0",
                "stream.max_bitrate_kbit",
            ),
            (
                "max_bitrate_kbit = 20000",
                "max_bitrate_kbit = 10000001",
                "stream.max_bitrate_kbit",
            ),
            (
                "payload_types = [33, 96, 97, 98, 111]",
                "payload_types = []",
                "stream.payload_types",
            ),
        ] {
            std::fs::write(&policy, good.replacen(from, to, 1)).unwrap();
            let err = command(&lab.join("court.toml"), Format::Json).unwrap_err();
            assert!(err.to_string().contains("1 problem(s)"), "{to}: {err}");
            let problems = Config::load(&lab.join("internet.toml")).unwrap_err();
            assert!(
                problems
                    .0
                    .iter()
                    .any(|p| p.key.as_deref() == Some(key) && p.line.is_some()),
                "{to}: {problems}"
            );
        }
    }

    #[test]
    fn check_names_the_line_of_a_folder_run_would_not_start_without() {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        init(&lab, LabLink::Quic, 27160, None).unwrap();
        let file = lab.join("court.toml");
        let good = std::fs::read_to_string(&file).unwrap();
        let cfg = Config::load(&file).unwrap();
        assert_eq!(
            missing_folder(&file, &cfg),
            None,
            "a new lab has its folders"
        );
        for (from, to, key) in [
            (
                "exchange_dir = \"court\"",
                "exchange_dir = \"courtt\"",
                "node.exchange_dir",
            ),
            (
                "state_dir = \"court/state\"",
                "state_dir = \"court/nonexistent/state\"",
                "node.state_dir",
            ),
        ] {
            assert!(good.contains(from), "{from} not in the lab's court.toml");
            std::fs::write(&file, good.replacen(from, to, 1)).unwrap();
            let line = good.lines().position(|l| l.starts_with(from)).unwrap() + 1;
            let cfg = Config::load(&file).unwrap();
            let p = missing_folder(&file, &cfg).unwrap();
            assert_eq!((p.key.as_deref(), p.line), (Some(key), Some(line)), "{p}");
            assert!(p.to_string().contains("does not exist"), "{p}");
            for format in [Format::Text, Format::Json] {
                let err = command(&file, format).unwrap_err();
                assert!(err.to_string().contains("1 problem(s)"), "{to}: {err}");
            }
        }
    }
}
