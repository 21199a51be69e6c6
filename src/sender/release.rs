//! Release on the sending node: a quarantined plain file is taken again into the spool as a
//! new object (a new id; its `taken` record names the old one) and inspected with the
//! policy in force; it crosses if it passes, or is quarantined again with a fresh reason.
//! No officer overrides the policy: the receiving node checks it again with its own.
//!
//! ```text
//! quarantine/<ch>/<old> ─copy, fsync─► state/quarantine-release/<token> ─► pending record
//!   ─► audit quarantine_released (old id, who) ─► Spool::take (one rename; a sealed copy where the spool is sealed) ─► audit taken
//!   ─► old entry purged ─► pending record removed ─► pipeline (inspect, seal) ─► link
//! ```
//!
//! Recovery of a pending record: the staged copy still there → the spool never took it: the
//! copy and the record go, the entry stays in quarantine; gone → the spool took it: the old
//! entry is removed (never two copies that could both cross).

use crate::audit::{Entry, Event};
use crate::core::id::ObjectId;
use crate::fsx::sync_dir;
use crate::keys::at_rest::DataKeys;
use crate::node::Fault;
use crate::node::desk::{self, Desk, Pending, Releaser, Who};
use crate::node::quarantine::{self, Listed};
use crate::sender::pipeline::{Queue, Sender, forward};
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

/// The sending node's releaser: its sender and the queue to the links.
pub struct SendRelease {
    /// The sender.
    pub sender: Arc<Sender>,
    /// Where sealed objects go.
    pub queue: Queue,
}

/// Copies the content of the quarantined copy `from` (never followed; opened through the
/// data keys when sealed) to `to`, durably, through a temporary name.
fn stage(from: &Path, to: &Path, keys: Option<&DataKeys>) -> io::Result<()> {
    let dir = to.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        to.file_name().and_then(|n| n.to_str()).unwrap_or("staged")
    ));
    let mut src = quarantine::open_content(from, keys)?;
    let copied = (|| -> io::Result<()> {
        let mut dst = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        io::copy(&mut src, &mut dst)?;
        dst.sync_all()
    })();
    if let Err(e) = copied {
        // a copy refused part way (a changed chunk) leaves nothing of it behind
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, to)?;
    sync_dir(dir)
}

impl Releaser for SendRelease {
    fn release(&self, desk: &Desk, e: &Listed, who: &Who) -> Result<(String, bool), Fault> {
        let node = &self.sender.node;
        let old = &e.object_id;
        if e.name.is_empty() {
            return Err(io::Error::other("its reason file names no file name").into());
        }
        let token = ObjectId::random()?.to_string();
        let staged = desk.pending_dir().join(&token);
        // the copy is whole and durable before the record that names it
        stage(&e.path, &staged, node.keys.data().as_deref())?;
        let pending = Pending {
            token: token.clone(),
            side: "sender".into(),
            channel: e.channel.clone(),
            old_id: old.clone(),
            who: Some(who.detail()),
        };
        if let Err(err) = desk.begin(&pending) {
            let _ = fs::remove_file(&staged);
            return Err(err.into());
        }
        let mut rec = desk::entry_of(e);
        rec.detail = Some(format!(
            "{}; taken again into the spool, inspected with the policy in force",
            who.detail()
        ));
        if let Err(err) = node.audit.durable(Event::QuarantineReleased, rec) {
            let _ = fs::remove_file(&staged);
            let _ = desk.end(&pending);
            return Err(err.into());
        }
        let keys = self.sender.node.keys.data();
        let taken = match self.sender.spool.take(
            &e.channel,
            desk.pending_dir(),
            token.as_ref(),
            &e.name,
            keys.as_deref(),
        ) {
            Ok(t) => t,
            Err(err) if !staged.exists() => {
                // the spool took it before the fault: the pending record finishes the
                // release at the next start (the old entry goes; never two copies)
                return Err(err.into());
            }
            Err(err) => {
                // not taken: the staged copy goes, the entry stays
                let _ = fs::remove_file(&staged);
                let _ = desk.end(&pending);
                desk::audit_withdrawn(
                    node,
                    &e.channel,
                    old,
                    Some(&who.detail()),
                    &format!("the spool refused it ({err})"),
                );
                return Err(err.into());
            }
        };
        let Some(spooled) = taken else {
            let _ = desk.end(&pending);
            desk::audit_withdrawn(
                node,
                &e.channel,
                old,
                Some(&who.detail()),
                "the staged copy vanished",
            );
            return Err(io::Error::other("the staged copy vanished").into());
        };
        let mut rec = Entry::object(&spooled.channel, spooled.id, &spooled.name);
        rec.size = e.size;
        rec.detail = Some(format!(
            "released from quarantine entry {old} {}",
            who.detail()
        ));
        node.audit.append(Event::Taken, rec)?;
        // counted as every intake is
        let channel = [e.channel.as_str()];
        node.metrics
            .intake_objects
            .with_label_values(&channel)
            .inc();
        node.metrics
            .intake_bytes
            .with_label_values(&channel)
            .inc_by(e.size.unwrap_or(0));
        quarantine::purge(e)?;
        desk.end(&pending)?;
        tracing::info!(channel = %e.channel, object = %old, new = %spooled.id, who = %who.detail(), "quarantine entry released: taken again");
        let new = spooled.id;
        let sealed = self.sender.pipeline(spooled);
        let passed = matches!(sealed, Ok(Some(_)));
        forward(sealed, &self.queue);
        if passed {
            return Ok((
                format!(
                    "{old}: released as {new}: it passed the policy in force and is on its way (the receiving node checks it again)"
                ),
                true,
            ));
        }
        let dirs = desk::quarantine_dirs(&node.cfg);
        Ok(match quarantine::find(&dirs, &new.to_string()) {
            Ok(Some(again)) => (
                format!(
                    "{old}: released as {new}, refused again by the policy in force: {} ({}); see `isogate quarantine show {new}`",
                    again.reason, again.detail
                ),
                false,
            ),
            // sealed and back on the approval desk (its channel has [approval])
            _ if matches!(
                crate::node::approvals::read(&node.cfg.node.state_dir, &new.to_string()),
                Ok(Some(_))
            ) =>
            {
                (
                    format!(
                        "{old}: released as {new}: it passed the policy in force and waits for approval (`isogate approvals list`)"
                    ),
                    true,
                )
            }
            _ => (
                waiting_line(
                    old,
                    &new.to_string(),
                    crate::node::approvals::read(&node.cfg.node.state_dir, &new.to_string())
                        .ok()
                        .flatten()
                        .as_ref(),
                ),
                true,
            ),
        })
    }

    fn recover(&self, desk: &Desk, p: &Pending) -> io::Result<()> {
        let staged = desk.pending_dir().join(&p.token);
        if staged.exists() {
            // never taken: the entry stays in quarantine
            fs::remove_file(&staged)?;
            sync_dir(desk.pending_dir())?;
            desk::audit_withdrawn(
                &self.sender.node,
                &p.channel,
                &p.old_id,
                p.who.as_deref(),
                "the node stopped before the spool took it",
            );
        } else {
            let dirs = desk::quarantine_dirs(&self.sender.node.cfg);
            if let Some(e) = quarantine::find(&dirs, &p.old_id)?
                && e.channel == p.channel
            {
                quarantine::purge(&e)?;
            }
        }
        desk.end(p)
    }
}

/// What a release says of an object that was taken again and neither went on nor was
/// refused: it waits for its approvals (`view`: its pending view on the approval desk, under
/// its new id), or for an inspection that could not run (antivirus down, a fault).
fn waiting_line(
    old: &str,
    new: &str,
    view: Option<&crate::node::approvals::PendingView>,
) -> String {
    match view {
        Some(v) => format!(
            "{old}: released as {new}: it passed the policy in force and waits for approval ({} of {}) under its new id; approvers decide with `isogate approve|reject {new}`",
            v.approvals.len(),
            v.required
        ),
        None => format!(
            "{old}: released as {new}: its inspection waits (antivirus or a fault); it stays in the spool and is tried again"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_released_object_on_the_approval_desk_is_said_to_wait_for_approval() {
        let view = crate::node::approvals::PendingView {
            id: "1".repeat(32),
            channel: "to-internet".into(),
            name: "判决书.pdf".into(),
            size: 3,
            sha256: "00".repeat(32),
            content_type: "pdf".into(),
            digest: "11".repeat(32),
            pending_since_ms: 1,
            expires_ms: 2,
            required: 2,
            approvals: vec![],
            levels_missing: vec![],
            approvers: vec![],
            policy_version: String::new(),
        };
        let (old, new) = ("0".repeat(32), "1".repeat(32));
        let line = waiting_line(&old, &new, Some(&view));
        assert!(line.contains("waits for approval (0 of 2)"), "{line}");
        assert!(
            line.contains(&format!("isogate approve|reject {new}")),
            "{line}"
        );
        assert!(!line.contains("antivirus"), "{line}");
        assert!(waiting_line(&old, &new, None).contains("antivirus or a fault"));
    }
}
