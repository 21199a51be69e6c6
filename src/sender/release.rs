//! Release on the sending node: a quarantined plain file is taken again into the spool as a
//! new object (a new id; its `taken` record names the old one) and inspected with the
//! policy in force; it crosses if it passes, or is quarantined again with a fresh reason.
//! No officer overrides the policy: the receiving node checks it again with its own.
//!
//! ```text
//! pending record (token = the new object id) ─► audit quarantine_released (old id, who)
//!   ─► Spool::put_from: quarantine/<ch>/<old> read (through the data keys where sealed)
//!      into spool/<ch>/<token>, sealed again where the spool is sealed ─► audit taken
//!   ─► old entry purged ─► pending record removed ─► pipeline (inspect, seal) ─► link
//! ```
//!
//! The content goes from the quarantine into the spool in one streamed copy: no staged
//! copy, and so nothing in plaintext on a node that seals. The spool entry is complete or
//! absent whenever the node stops, so the recovery of a pending record needs no more:
//! the entry is there → the spool took it: the old entry is removed (never two copies that
//! could both cross); not there → the entry stays in quarantine. (A record of an older
//! release, whose staged copy in the pending folder is named by the token, recovers as it
//! did: that copy there → never taken; gone → taken.)

use crate::audit::{Entry, Event};
use crate::core::id::ObjectId;
use crate::fsx::sync_dir;
use crate::node::desk::{self, Desk, Failed, Pending, Releaser, Who};
use crate::node::quarantine::{self, Listed};
use crate::sender::pipeline::{Queue, Sender, forward};
use std::fs;
use std::io;
use std::sync::Arc;

/// The sending node's releaser: its sender and the queue to the links.
pub struct SendRelease {
    /// The sender.
    pub sender: Arc<Sender>,
    /// Where sealed objects go.
    pub queue: Queue,
}

impl Releaser for SendRelease {
    fn release(&self, desk: &Desk, e: &Listed, who: &Who) -> Result<(String, bool), Failed> {
        let node = &self.sender.node;
        let old = &e.object_id;
        if e.name.is_empty() {
            return Err(io::Error::other("its reason file names no file name").into());
        }
        // the new object's id names the pending record: its spool entry says whether the
        // spool took it, whenever the node stops
        let new_id = ObjectId::random()?;
        let token = new_id.to_string();
        let pending = Pending {
            token: token.clone(),
            side: "sender".into(),
            channel: e.channel.clone(),
            old_id: old.clone(),
            who: Some(who.detail()),
            direct: true,
        };
        desk.begin(&pending)?;
        let mut rec = desk::entry_of(e);
        rec.detail = Some(format!(
            "{}; taken again into the spool, inspected with the policy in force",
            who.detail()
        ));
        if let Err(err) = node.audit.durable(Event::QuarantineReleased, rec) {
            let _ = desk.end(&pending);
            return Err(err.into());
        }
        let keys = node.keys.data();
        // one streamed copy, quarantine to spool: opened through the data keys where
        // sealed, sealed again for the spool entry where the spool is sealed
        let put = quarantine::open_content(&e.path, keys.as_deref()).and_then(|mut from| {
            self.sender
                .spool
                .put_from(new_id, &e.channel, &e.name, &mut from, keys.as_deref())
        });
        let spooled = match put {
            Ok(s) => s,
            Err(err) => {
                // not taken (the entry is removed whole): it stays in quarantine
                let _ = desk.end(&pending);
                desk::audit_withdrawn(
                    node,
                    &e.channel,
                    old,
                    Some(&who.detail()),
                    &format!("the spool refused it ({err})"),
                );
                return Err(Failed::audited(err));
            }
        };
        let mut rec = Entry::object(&spooled.channel, spooled.id, &spooled.name);
        rec.size = e.size;
        rec.detail = Some(format!(
            "released from quarantine entry {old} {}",
            who.detail()
        ));
        node.audit
            .append(Event::Taken, rec)
            .map_err(Failed::settled)?;
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
        quarantine::purge(e).map_err(Failed::settled)?;
        desk.end(&pending).map_err(Failed::settled)?;
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
        let taken = if p.direct {
            self.sender.spool.holds(&p.channel, &p.token)
        } else {
            !staged.exists()
        };
        if !taken {
            if !p.direct {
                fs::remove_file(&staged)?;
                sync_dir(desk.pending_dir())?;
            }
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
            sha256: Some("00".repeat(32)),
            sm3: None,
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
