//! Release on the receiving node: a plain file refused for a content reason is inspected
//! again with this node's policy in force and landed if it now passes; if not, it stays in
//! quarantine with the fresh reason. It keeps its object id: it is the very object the
//! sender signed (and `audit reconcile` matches it with the sender's records); its `landed`
//! record says it was released. An entry refused for an integrity reason (signature, hash,
//! size, wire) is never released (see [`crate::node::quarantine::Listed::releasable`]).
//! Nor is one refused as `approval_missing`, nor any entry of a channel whose policy has
//! `[approval]`: the approvals travel in the manifest, which the quarantined copy does not
//! keep, so they cannot be checked again; the sender sends the object again with them.
//! Nor is a batch of a messages channel: it would land as a file in the inbox, which no
//! reader of the channel's message log sees ([`NotReleasable::MessageBatch`]).
//!
//! ```text
//! pending record ─► quarantine/<ch>/<id> ─copy (fsync*)─► the staged copy (sealed again
//!   where the node seals: <inbox>/.isogate-tmp/<id>.sealed, else <id>.part)
//!   ─► audit quarantine_released (who) ─► inspect (this node's policy in force)
//!        accepted ─► unseal into <id>.part ─► audit landed (durable)
//!                    ─► Lander::land (marker `landed`, rename)
//!                    ─► entry purged ─► pending record removed
//!        refused  ─► Node::refuse: the same entry, its reason file rewritten; part removed
//!                    ─► pending record removed
//! ```
//!
//! Recovery of a pending record: the delivery marker says `landed` → the entry goes;
//! otherwise the staged copy and part file (if any) go and the entry stays in quarantine.

use super::Receiver;
use super::land::{Lander, Outcome, first_free};
use super::staged::Staged;
use crate::audit::{Entry, Event};
use crate::core::id::ObjectId;
use crate::core::reason::Side;
use crate::inspect::inspect_stored;
use crate::node::desk::{self, Desk, Failed, Pending, Releaser, Who};
use crate::node::quarantine::{self, Listed, NotReleasable};
use crate::node::{Fault, Refused};
use crate::ops::events::Subject;
use std::io;
use std::sync::Arc;

/// The receiving node's releaser.
pub struct ReceiveRelease(pub Arc<Receiver>);

impl Releaser for ReceiveRelease {
    fn release(&self, desk: &Desk, e: &Listed, who: &Who) -> Result<(String, bool), Failed> {
        let r = &self.0;
        let node = &r.node;
        let old = &e.object_id;
        let Some(channel) = node.cfg.channel(&e.channel).cloned() else {
            return Err(io::Error::other("the channel is not configured").into());
        };
        let forbid =
            approvals_forbid(&node.policies.get(&channel.name), &channel.name).or_else(|| {
                channel
                    .is_messages()
                    .then(|| NotReleasable::MessageBatch(channel.name.clone()))
            });
        if let Some(why) = forbid {
            tracing::warn!(channel = %e.channel, object = %old, why = %why, who = %who.detail(), "quarantine release refused");
            let mut rec = desk::entry_of(e);
            rec.detail = Some(format!("{}; not releasable: {why}", who.detail()));
            if let Err(err) = node.audit.durable(Event::QuarantineReleaseRefused, rec) {
                tracing::error!(error = %err, "cannot audit a refused quarantine release");
            }
            return Err(Failed::audited(io::Error::other(format!(
                "not releasable: {why}"
            ))));
        }
        if e.name.is_empty() {
            return Err(io::Error::other("its reason file names no file name").into());
        }
        let Some(new) = ObjectId::parse(old) else {
            return Err(io::Error::other("the entry is not named by an object id").into());
        };
        // the object may be arriving again now (a resend, a diode repeat): its staged copy
        // and part file are that arrival's until it ends
        let _busy = {
            let mut busy = r.busy.lock().unwrap_or_else(|p| p.into_inner());
            if !busy.insert(new) {
                return Err(io::Error::other(
                    "the same object is arriving from the sender now; try again in a moment",
                )
                .into());
            }
            super::BusyGuard(r.busy.clone(), new)
        };
        let pending = Pending {
            token: ObjectId::random()?.to_string(),
            side: "receiver".into(),
            channel: e.channel.clone(),
            old_id: old.clone(),
            who: Some(who.detail()),
            direct: false,
        };
        // disk safety, as for an arriving object: its size above the floor (twice when the
        // policy masks: the masked copy is written beside it), held until it has landed
        let policy = node.policies.get(&channel.name);
        let size = e.size.unwrap_or(0);
        let keys = node.keys.data();
        let need = Staged::room(size, keys.is_some(), policy.masks());
        let (room, _) = r
            .space
            .reserve(&channel.name, &channel.inbox, new, need, crate::mono_ms());
        let _room = match room {
            Ok(room) => room,
            Err(short) => {
                r.space.forget(&channel.name, new, crate::mono_ms());
                return Err(io::Error::other(format!("{short}; try again later")).into());
            }
        };
        desk.begin(&pending)?;
        // the quarantined copy is read into the staged copy, sealed again where the node
        // seals: nothing of it rests in plaintext until it is cleared
        let staged = Staged::of(&channel.inbox, &channel.name, new, keys.clone());
        let copied = (|| -> io::Result<()> {
            let (_, mut file) = Staged::create(&channel.inbox, &channel.name, new, keys.clone())?;
            let mut src = quarantine::open_content(&e.path, keys.as_deref())?;
            io::copy(&mut src, &mut file)?;
            file.finish()
        })();
        let cleanup = || {
            let _ = staged.remove();
            let _ = std::fs::remove_file(Lander::part_path(&channel.inbox, new));
        };
        if let Err(err) = copied {
            cleanup();
            let _ = desk.end(&pending);
            return Err(err.into());
        }
        // before its `quarantine_released` record: nothing to say
        let unbegun = |err: Fault| {
            cleanup();
            let _ = desk.end(&pending);
            err
        };
        // after it: the withdrawal is on record too
        let withdraw = |err: Fault| {
            cleanup();
            let _ = desk.end(&pending);
            desk::audit_withdrawn(node, &e.channel, old, Some(&who.detail()), &err.to_string());
            Failed::audited(err)
        };
        let mut rec = desk::entry_of(e);
        rec.detail = Some(format!(
            "{}; inspected again with this node's policy in force",
            who.detail()
        ));
        node.audit
            .durable(Event::QuarantineReleased, rec)
            .map_err(|err| unbegun(err.into()))?;
        let work = staged
            .path()
            .parent()
            .unwrap_or(&channel.inbox)
            .to_path_buf();
        let suite = node.cfg.node.suite;
        let inspected = inspect_stored(
            &policy,
            &e.name,
            staged.path(),
            &work,
            staged.sealing().as_ref(),
            suite,
        );
        let line = match inspected {
            Ok(Ok(accepted)) => {
                let (size, original) = staged.measure(suite).map_err(|err| withdraw(err.into()))?;
                let size = Some(size);
                let subject = Subject {
                    channel: &channel.name,
                    id: new,
                    name: &e.name,
                    size,
                    digest: Some(original),
                };
                if let Some(m) = &accepted.masked {
                    node.masked(subject, original, m).map_err(&withdraw)?;
                    std::fs::rename(&m.path, staged.path()).map_err(|err| withdraw(err.into()))?;
                    crate::fsx::sync_dir(&work).map_err(|err| withdraw(err.into()))?;
                }
                let (size, sha) = staged.measure(suite).map_err(|err| withdraw(err.into()))?;
                // cleared: its plaintext rests on disk only now, as the part file that lands
                staged
                    .unseal(&channel.inbox, new)
                    .map_err(|err| withdraw(err.into()))?;
                if let Err(err) = staged.remove_sealed() {
                    tracing::warn!(part = %staged.path().display(), error = %err, "cannot remove the sealed copy of a released object; the next start removes it");
                }
                let planned = first_free(&channel.inbox, &e.name);
                let mut rec = Entry::object(&channel.name, new, &e.name);
                rec.size = Some(size);
                rec.digest = Some(sha);
                rec.peer = Some(node.cfg.peer.name.clone());
                let mut detail = format!("released from quarantine {}", who.detail());
                if planned != e.name {
                    detail.push_str(&format!("; delivered as {planned}"));
                }
                rec.detail = Some(detail);
                // write-ahead, as every landing: recorded before it is committed
                node.audit
                    .durable(Event::Landed, rec)
                    .map_err(|err| withdraw(err.into()))?;
                // counted as every landing is (events::Landed has no room for the
                // release's detail, so its record is written here)
                node.metrics
                    .land_objects
                    .with_label_values(&[channel.name.as_str()])
                    .inc();
                node.metrics
                    .land_bytes
                    .with_label_values(&[channel.name.as_str()])
                    .inc_by(size);
                tracing::debug!(channel = %channel.name, name = %e.name, object = %new, size, "landed");
                let path = r
                    .lander
                    .land(&channel.inbox, &channel.name, new, &e.name, sha, suite)
                    .map_err(Failed::settled)?;
                let landed = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                quarantine::purge(e).map_err(Failed::settled)?;
                (
                    format!(
                        "{old}: released: inspected again with this node's policy in force and landed as {landed}"
                    ),
                    true,
                )
            }
            Ok(Err(refusal)) => {
                let size = staged.open().and_then(|c| c.len()).ok();
                node.refuse(
                    &Refused {
                        subject: Subject {
                            channel: &channel.name,
                            id: new,
                            name: &e.name,
                            size,
                            digest: None,
                        },
                        quarantine: &channel.quarantine,
                        content: Some(staged.held()),
                        side: Side::Receiver,
                    },
                    &refusal,
                )
                .map_err(Failed::settled)?;
                (
                    format!(
                        "{old}: released, but refused again by this node's policy in force: {} ({}); it stays in quarantine",
                        refusal.reason.as_str(),
                        refusal.detail
                    ),
                    false,
                )
            }
            Err(err) => {
                return Err(withdraw(
                    io::Error::other(format!("the inspection could not run ({err}); try again"))
                        .into(),
                ));
            }
        };
        desk.end(&pending).map_err(Failed::settled)?;
        tracing::info!(channel = %e.channel, object = %old, who = %who.detail(), "quarantine entry released: inspected again");
        Ok(line)
    }

    fn recover(&self, desk: &Desk, p: &Pending) -> io::Result<()> {
        let r = &self.0;
        let id = ObjectId::parse(&p.old_id);
        let landed = match id {
            Some(id) => r.lander.outcome(&p.channel, id)? == Some(Outcome::Landed),
            None => false,
        };
        if landed {
            let dirs = desk::quarantine_dirs(&r.node.cfg);
            if let Some(e) = quarantine::find(&dirs, &p.old_id)?
                && e.channel == p.channel
            {
                quarantine::purge(&e)?;
            }
        } else {
            if let (Some(c), Some(id)) = (r.node.cfg.channel(&p.channel), id) {
                Lander::discard_part(&c.inbox, id)?;
            }
            desk::audit_withdrawn(
                &r.node,
                &p.channel,
                &p.old_id,
                p.who.as_deref(),
                "the node stopped before it landed",
            );
        }
        desk.end(p)
    }
}

/// Why no receiver-side entry of a channel whose policy has `[approval]` is released: the
/// object's approvals travel in its manifest, which is not kept with the quarantined copy,
/// so they cannot be checked again; the sender sends it again with its approvals.
fn approvals_forbid(policy: &crate::policy::Policy, channel: &str) -> Option<NotReleasable> {
    policy.approval.as_ref().map(|_| {
        NotReleasable::Approval(format!(
            "channel {channel} requires release approvals ([approval])"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_with_approval_never_releases_on_the_receiving_side() {
        let without = crate::policy::Policy::deny_all();
        assert!(approvals_forbid(&without, "to-internet").is_none());
        let key = crate::keys::SigningKey::from_seed(&[1; 32]).unwrap();
        let mut with = without.clone();
        with.approval = Some(crate::policy::ApprovalRule {
            required: 1,
            approvers: vec![crate::core::approval::Approver {
                name: "zhang".into(),
                key: key.verify_key(),
                level: 1,
            }],
            expire_ms: 1000,
        });
        let why = approvals_forbid(&with, "to-internet").unwrap().to_string();
        assert!(
            why.contains("channel to-internet requires release approvals"),
            "{why}"
        );
        assert!(
            why.contains("cannot be checked again from a quarantined copy"),
            "{why}"
        );
    }
}
