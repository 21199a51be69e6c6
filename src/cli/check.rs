//! `isogate check`: loads a configuration and the policies it names, and prints the
//! compliance review — every problem with its file, line and key, or each channel's
//! effective rules, and which configured folders share a file system (and where a move
//! must copy instead of rename), and the fingerprints of the node's keys and of the peer's
//! pinned ones — as a readable report or one JSON document.

use crate::keys;
use crate::node::config::{Config, Role};
use crate::node::layout::survey;
use crate::policy::{PiiAction, Policy};
use crate::problem::Problem;
use anyhow::{Result, bail};
use std::path::Path;
use std::process::ExitCode;

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
    let loaded = Config::load(config);
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
                        "policy": c.policy_file.display().to_string(),
                        "rules": c.policy.report(),
                    })).collect::<Vec<_>>(),
                    "keys": key_fingerprints(cfg).into_iter().map(|(who, tls, sign)| serde_json::json!({
                        "of": who,
                        "tls_certificate": tls,
                        "signing_key": sign,
                    })).collect::<Vec<_>>(),
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
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Format::Text => match &loaded {
            Ok(cfg) => {
                println!(
                    "{}: ok — node {} (zone {}), peer {} at {}",
                    config.display(),
                    cfg.node.name,
                    cfg.node.zone,
                    cfg.peer.name,
                    cfg.peer.address
                );
                for (who, tls, sign) in key_fingerprints(cfg) {
                    println!("  {who:<22} tls {tls}  signing {sign}");
                }
                for c in &cfg.channels {
                    println!(
                        "  channel {}: {} -> {} ({}), this node {}s",
                        c.name,
                        c.from,
                        c.to,
                        if c.outbound { "outbound" } else { "inbound" },
                        if c.role == Role::Send {
                            "send"
                        } else {
                            "receive"
                        },
                    );
                    print_rules(&c.policy_file, &c.policy);
                }
                let layout = survey(cfg);
                for (i, shared) in layout.lines().iter().enumerate() {
                    println!("  file system {}: {shared}", i + 1);
                }
                for cost in &layout.costs {
                    println!("  copy: {cost}");
                }
                for w in cfg.warnings.iter().chain(&extra) {
                    println!("warning: {w}");
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
fn print_rules(file: &Path, p: &Policy) {
    let or_none = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    println!(
        "    policy        {} (version {})",
        file.display(),
        p.version
    );
    println!(
        "    names         at most {} bytes; extensions {}",
        p.max_name_len,
        p.extensions.join(", ")
    );
    println!("    size          {}..={} bytes", p.min_bytes, p.max_bytes);
    println!(
        "    types         {}; executables allowed by name: {}",
        p.allow.join(", "),
        or_none(&p.executable_names)
    );
    match &p.archives {
        Some(a) => println!(
            "    archives      depth {}, {} entries, {} bytes expanded, ratio {}",
            a.max_depth, a.max_entries, a.max_expanded_bytes, a.max_ratio
        ),
        None => println!("    archives      none allowed"),
    }
    println!(
        "    text rules    {} keyword(s), {} pattern(s)",
        p.keywords.len(),
        p.patterns.len()
    );
    println!(
        "    pdf           active content {}",
        if p.pdf_refuse_active {
            "refused"
        } else {
            "allowed"
        }
    );
    match &p.markings {
        Some(allow) => println!(
            "    markings      refused; exempt phrases: {}",
            or_none(allow)
        ),
        None => println!("    markings      not checked"),
    }
    match &p.personal_data {
        Some(pd) => println!(
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
        ),
        None => println!("    personal data not checked"),
    }
    match &p.antivirus {
        Some(a) => println!(
            "    antivirus     clamd {} (timeout {} ms, quarantine after {} s waiting)",
            a.clamd,
            a.timeout_ms,
            a.max_wait_ms / 1000
        ),
        None => println!("    antivirus     none"),
    }
    match &p.approval {
        Some(a) => {
            println!(
                "    approval      {} of {} approver(s); expires after {}",
                a.required,
                a.approvers.len(),
                humantime::format_duration(std::time::Duration::from_millis(a.expire_ms))
            );
            for x in &a.approvers {
                println!(
                    "      approver    {} level {} key {}",
                    x.name,
                    x.level,
                    x.key.fingerprint()
                );
            }
        }
        None => println!("    approval      none required"),
    }
}
