//! `isogate approve | reject | approvals list`: an approver's side of the sending node's
//! approval desk. The command reads the node's pending view, signs the object's manifest
//! digest with the approver's own key (never the node's) and hands the signed decision to
//! the running node, which checks it against the channel's pinned approvers, audits it and
//! answers.
//!
//! ```text
//!  --config ─► the node's folders (no policy, no key) ─► state/approvals/<id>.json
//!  --key ─► approver's key ─► public half ─► the approvers the view pins (the rule the
//!     node holds in force: a policy file on disk it refused changes nothing here)
//!     ─► show what is signed (name, size, content hash, channel, approvals so far)
//!     ─► sign approval::message(decision, digest) ─► state/approval-requests/<n>.req
//!     ─► wait for <n>.out (--wait; withdrawn when no answer) ─► print ─► exit 0 | 1
//!  approvals list ─► every PendingView, oldest first (table | json)
//! ```

use crate::audit::query::cell;
use crate::audit::{Event, Record, when};
use crate::core::approval::{self, Decision};
use crate::keys::SigningKey;
use crate::keys::suite::Suite;
use crate::node::approvals::{self, DecisionRequest, MAX_NOTE, PendingView, Pinned};
use crate::node::config::{Config, NodeDirs};
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// Output of `approvals list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// One JSON object per pending object, one a line (the `PendingView` fields).
    Json,
}

fn load(config: &Path) -> Result<NodeDirs> {
    Config::load_dirs(config).map_err(|p| anyhow::anyhow!("{p}"))
}

/// The approver `public` is in a view, or why they may not sign: not pinned, approved
/// already, or a lower level has not signed.
fn approver_in<'a>(
    view: &'a PendingView,
    public: &crate::keys::VerifyKey,
    decision: Decision,
) -> std::result::Result<&'a Pinned, String> {
    if view.approvers.is_empty() {
        return Err(format!(
            "the node's view of object {} names no approvers (an earlier version wrote it): restart the node to rewrite it",
            view.id
        ));
    }
    let hex = public.to_hex();
    let Some(approver) = view.approvers.iter().find(|a| a.key == hex) else {
        return Err(format!(
            "the key (fingerprint {}) is not an approver of channel {} (policy {} in force: {})",
            public.fingerprint(),
            view.channel,
            view.policy_version,
            view.approvers
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    if decision == Decision::Approve {
        if view.approvals.iter().any(|a| a.approver == approver.name) {
            return Err(format!(
                "{} has approved object {} already",
                approver.name, view.id
            ));
        }
        if let Some(lower) = view.levels_missing.iter().find(|l| **l < approver.level) {
            return Err(format!(
                "level {lower} approves first; {} is level {}",
                approver.name, approver.level
            ));
        }
    }
    Ok(approver)
}

/// `isogate approve | reject ID`: signs `decision` on object `id` with the approver's key
/// in `key_file`, hands it to the running node and waits up to `wait` for its answer.
/// Exit 0: taken; 1: refused, or no answer (the request is withdrawn).
///
/// # Errors
/// The configuration or key cannot be read; the object is not pending; the key is not an
/// approver of its channel; the approver approved it already or signs out of level order;
/// the request cannot be written.
pub fn decide(
    config: &Path,
    id: &str,
    key_file: &Path,
    decision: Decision,
    note: Option<&str>,
    wait: Duration,
) -> Result<ExitCode> {
    let dirs = load(config)?;
    let key = approver_key(key_file)?;
    let public = key.verify_key();
    let state = &dirs.state_dir;
    let Some(view) =
        approvals::read(state, id).with_context(|| format!("reading the pending view of {id}"))?
    else {
        bail!("{}", not_pending(&dirs, id));
    };
    let approver = match approver_in(&view, &public, decision) {
        Ok(a) => a.clone(),
        Err(why) => bail!("{} ({})", why, key_file.display()),
    };
    let mut digest = [0u8; 32];
    hex::decode_to_slice(&view.digest, &mut digest)
        .with_context(|| format!("the pending view of {id} has no valid digest"))?;
    let mut out = std::io::stdout().lock();
    show(&mut out, &view, key.suite())?;
    writeln!(
        out,
        "{} as {} (level {}, key {})",
        decision.as_str(),
        cell(&approver.name, None),
        approver.level,
        public.fingerprint()
    )?;
    let signature = approval::try_sign(&key, decision, &digest)?;
    let request = DecisionRequest {
        id: view.id.clone(),
        decision: decision.as_str().to_string(),
        digest: view.digest.clone(),
        key: public.to_hex(),
        signature: hex::encode(signature),
        note: note.unwrap_or("").chars().take(MAX_NOTE).collect(),
        via: "cli".to_string(),
    };
    if let Some(why) = approvals::requests_refused(state) {
        bail!("the node refuses its approval request folder, so no decision reaches it: {why}");
    }
    let path = approvals::submit(state, &request).context("handing the decision to the node")?;
    let answer = approvals::await_answer(&path, wait).context("reading the node's answer")?;
    match answer {
        Some(a) => {
            writeln!(out, "{}", cell(&a.message, None))?;
            if a.taken && !a.done {
                writeln!(
                    out,
                    "{} of {} approval(s); the object waits",
                    a.approved, a.required
                )?;
            }
            Ok(if a.taken {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        None => {
            // withdrawn unless the node took it meanwhile
            let withdrawn = std::fs::remove_file(&path).is_ok();
            if let (true, Some(why)) = (withdrawn, approvals::requests_refused(state)) {
                eprintln!(
                    "isogate: the node refuses its approval request folder ({why}); the decision is withdrawn"
                );
            } else if withdrawn {
                eprintln!(
                    "isogate: no answer from the running node within {} s; the decision is withdrawn (is the node running?)",
                    wait.as_secs()
                );
            } else {
                eprintln!(
                    "isogate: the node took the decision but did not answer within {} s; see `isogate approvals list` and its audit log",
                    wait.as_secs()
                );
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The approver's private key; a public key given instead is named as such, with the
/// file to give.
fn approver_key(key_file: &Path) -> Result<SigningKey> {
    match SigningKey::load(key_file) {
        Ok(k) => Ok(k),
        Err(_) if crate::keys::VerifyKey::load(key_file).is_ok() => {
            let name = key_file.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let private = name
                .strip_suffix(".approver.pub")
                .map_or("NAME.approver.key".to_string(), |n| {
                    format!("{n}.approver.key")
                });
            bail!(
                "{} is a public key (hex digits); sign with your private key: give --key {private} (made beside it by `isogate keygen --approver`)",
                key_file.display()
            )
        }
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

/// What a pending object is, as the approver sees it before signing.
/// `suite`: the approver's key's, which is the pair's (a key of another suite is refused).
fn show(out: &mut dyn Write, v: &PendingView, suite: Suite) -> Result<()> {
    let tz = when::zone(None).unwrap_or(jiff::tz::TimeZone::UTC);
    writeln!(out, "object    {}", v.id)?;
    writeln!(out, "channel   {}", cell(&v.channel, None))?;
    writeln!(out, "name      {}", cell(&v.name, None))?;
    writeln!(
        out,
        "size      {} bytes ({})",
        v.size,
        cell(&v.content_type, None)
    )?;
    writeln!(out, "{:<10}{}", suite.hash_field(), v.content_hash())?;
    writeln!(
        out,
        "digest    {} ({} of the signed manifest)",
        v.digest,
        suite.hash()
    )?;
    writeln!(
        out,
        "waiting   since {}; expires {}",
        when::format(v.pending_since_ms, &tz),
        when::format(v.expires_ms, &tz)
    )?;
    writeln!(
        out,
        "approvals {} of {}{}",
        v.approvals.len(),
        v.required,
        if v.approvals.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                v.approvals
                    .iter()
                    .map(|a| format!("{} level {}", cell(&a.approver, None), a.level))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    )?;
    Ok(())
}

/// Why an object is not pending, from the node's audit log when it can be read here.
fn not_pending(dirs: &NodeDirs, id: &str) -> String {
    let base = format!("object {id} is not waiting for approval");
    if crate::core::id::ObjectId::parse(id).is_none() {
        return format!("{id:?} is not an object id (32 hex digits)");
    }
    let mut last: Option<Record> = None;
    let needle = id.as_bytes();
    let read = crate::audit::read::for_each_line(&dirs.audit_dir, |_, _, line| {
        if line.windows(needle.len()).any(|w| w == needle)
            && let Ok(r) = serde_json::from_slice::<Record>(line)
            && r.object_id.as_deref() == Some(id)
            && matches!(
                r.event,
                Event::ApprovalRejected
                    | Event::Refused
                    | Event::ApprovalPending
                    | Event::Sent
                    | Event::Confirmed
                    | Event::Retired
            )
        {
            last = Some(r);
        }
        Ok(())
    });
    if read.is_err() {
        return format!("{base} (its audit log cannot be read here to say why)");
    }
    match last {
        Some(r) => match r.event {
            Event::ApprovalRejected => {
                format!("{base}: it was rejected ({})", r.detail.unwrap_or_default())
            }
            Event::Refused => match r.reason {
                Some(crate::core::reason::Reason::ApprovalExpired) => {
                    format!("{base}: it expired ({})", r.detail.unwrap_or_default())
                }
                Some(reason) => format!("{base}: it was refused ({})", reason.as_str()),
                None => format!("{base}: it was refused"),
            },
            Event::Sent | Event::Confirmed | Event::Retired => {
                format!("{base}: it was released")
            }
            _ => {
                format!("{base}: the node does not show it now (is it running, or still starting?)")
            }
        },
        None => format!("{base}: no such object on this node"),
    }
}

/// `isogate approvals list`: every object waiting for approval on the node, oldest first.
///
/// # Errors
/// The configuration or the pending folder cannot be read.
pub fn list(config: &Path, tz: Option<&str>, format: Format) -> Result<ExitCode> {
    let dirs = load(config)?;
    let tz = when::zone(tz)?;
    let views = approvals::list(&dirs.state_dir).context("reading the pending approvals")?;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            for v in &views {
                writeln!(out, "{}", serde_json::to_string(v)?)?;
            }
        }
        Format::Table => {
            if views.is_empty() {
                writeln!(out, "no object is waiting for approval")?;
            } else {
                writeln!(
                    out,
                    "{:<32}  {:<14}  {:<8}  {:<25}  {:<25}  NAME",
                    "OBJECT", "CHANNEL", "APPROVED", "SINCE", "EXPIRES"
                )?;
            }
            for v in &views {
                let who: Vec<String> = v.approvals.iter().map(|a| a.approver.clone()).collect();
                writeln!(
                    out,
                    "{:<32}  {:<14}  {:<8}  {:<25}  {:<25}  {}{}",
                    v.id,
                    cell(&v.channel, Some(14)),
                    format!("{}/{}", v.approvals.len(), v.required),
                    when::format(v.pending_since_ms, &tz),
                    when::format(v.expires_ms, &tz),
                    cell(&v.name, Some(60)),
                    if who.is_empty() {
                        String::new()
                    } else {
                        format!("  (by {})", cell(&who.join(", "), Some(60)))
                    }
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(approvers: Vec<Pinned>) -> PendingView {
        PendingView {
            id: "ab".repeat(16),
            channel: "to-internet".into(),
            name: "判决书.pdf".into(),
            size: 3,
            sha256: Some("00".repeat(32)),
            sm3: None,
            content_type: "pdf".into(),
            digest: "11".repeat(32),
            pending_since_ms: 1,
            expires_ms: 2,
            required: 2,
            approvals: vec![approvals::Signed {
                approver: "zhang".into(),
                level: 1,
                time_ms: 1,
                note: String::new(),
            }],
            levels_missing: vec![2],
            approvers,
            policy_version: "abc123abc123".into(),
        }
    }

    #[test]
    fn a_public_key_given_for_the_private_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        crate::cli::keygen::approver("zhang", dir.path(), crate::keys::suite::Suite::Default)
            .unwrap();
        let e = approver_key(&dir.path().join("zhang.approver.pub"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("is a public key") && e.contains("--key zhang.approver.key"),
            "{e}"
        );
        assert!(approver_key(&dir.path().join("zhang.approver.key")).is_ok());
    }

    #[test]
    fn a_refused_request_folder_is_said_by_the_command() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(approvals::requests_refused(dir.path()), None);
        let views = dir.path().join(approvals::PENDING_DIR);
        std::fs::create_dir_all(&views).unwrap();
        std::fs::write(
            views.join(approvals::REQUESTS_REFUSED),
            "approval-requests: it is world-writable (mode 777)",
        )
        .unwrap();
        assert!(
            approvals::requests_refused(dir.path())
                .unwrap()
                .contains("world-writable")
        );
        // a view list is not confused by it
        assert!(approvals::list(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn the_view_says_who_may_sign_not_the_policy_file() {
        let k = |n: u8| SigningKey::from_seed(&[n; 32]).unwrap().verify_key();
        let pinned = |name: &str, level, n| Pinned {
            name: name.into(),
            level,
            key: k(n).to_hex(),
        };
        let v = view(vec![
            pinned("zhang", 1, 1),
            pinned("wang", 1, 2),
            pinned("li", 2, 3),
        ]);
        assert_eq!(
            approver_in(&v, &k(2), Decision::Approve).unwrap().name,
            "wang"
        );
        let e = approver_in(&v, &k(9), Decision::Approve).unwrap_err();
        assert!(
            e.contains("not an approver") && e.contains("abc123abc123"),
            "{e}"
        );
        let e = approver_in(&v, &k(1), Decision::Approve).unwrap_err();
        assert!(e.contains("already"), "{e}");
        // a rejection by one who approved is still a decision to hand over
        assert!(approver_in(&v, &k(1), Decision::Reject).is_ok());
        assert!(approver_in(&v, &k(3), Decision::Approve).is_ok());
        let first = PendingView {
            approvals: vec![],
            levels_missing: vec![1, 2],
            ..v.clone()
        };
        let e = approver_in(&first, &k(3), Decision::Approve).unwrap_err();
        assert!(e.contains("level 1 approves first"), "{e}");
        // a view of an earlier version: no approvers named
        assert!(
            approver_in(&view(vec![]), &k(1), Decision::Approve)
                .unwrap_err()
                .contains("restart")
        );
    }

    #[test]
    fn the_commands_read_the_nodes_folders_whatever_the_policy_file_says() {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, 25780, None).unwrap();
        let file = lab.join("court.toml");
        let policy = lab.join("policy/to-internet.toml");
        std::fs::write(&policy, "[approval]\nrequired = \"two\"\n").unwrap();
        assert!(Config::load_without_private_keys(&file).is_err());
        let dirs = load(&file).unwrap();
        let cfg_text = std::fs::read_to_string(&file).unwrap();
        assert!(dirs.state_dir.is_absolute() && dirs.audit_dir.is_absolute());
        assert!(cfg_text.contains("state_dir"));
        assert!(list(&file, Some("UTC"), Format::Json).is_ok());
    }

    #[test]
    fn a_decision_signs_what_the_node_checks() {
        let key = SigningKey::from_seed(&[5; 32]).unwrap();
        let digest = approval::digest(crate::keys::suite::Suite::Default, b"body");
        let sig = approval::try_sign(&key, Decision::Reject, &digest).unwrap();
        let req = DecisionRequest {
            id: "ab".repeat(16),
            decision: "reject".into(),
            digest: hex::encode(digest),
            key: key.verify_key().to_hex(),
            signature: hex::encode(sig),
            note: "no".into(),
            via: "cli".into(),
        };
        let parsed =
            crate::sender::approval::parse_request(&serde_json::to_vec(&req).unwrap()).unwrap();
        assert_eq!(parsed.decision, Decision::Reject);
        assert!(key.verify_key().verify(
            &approval::message(Decision::Reject, &parsed.digest),
            &parsed.signature
        ));
    }
}
