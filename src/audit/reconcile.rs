//! `isogate audit reconcile SENDER_DIR RECEIVER_DIR`: matches what one node sent with what
//! the other landed or quarantined, and checks the sender's log against the checkpoints the
//! receiver witnessed, each with the sender's key in force at its size (the sender may have
//! switched keys: see `keys`).
//!
//! On a diode pair (no receipts) it reports what it can: what the sender `retired`
//! (every copy sent, nothing confirms), what the receiver audited `lost` and has not
//! landed since, and whether any of the sender's checkpoints were witnessed at all.
//! [`Reconciliation::unwitnessed`] says the sender's log is corroborated by nothing.
//!
//! What the receiver should have is what the sender sealed, less what it refused after
//! sealing (an approver's rejection, an expired approval: never sent) and what still waits
//! for approval on the sender (listed apart, not a failure):
//!
//! ```text
//!  sender, per object, in log order:  sealed ─► expected
//!                                     approval_pending ─► waiting
//!                                     sent | retired | confirmed | approval_waived ─► expected
//!                                     refused ─► not expected
//! ```

use super::keys::Timeline;
use super::read::{self, VerifyError};
use super::{Event, Record};
use crate::core::checkpoint::Checkpoint;
use crate::core::merkle::Frontier;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// An object named in a report.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Item {
    /// Object id.
    pub object_id: String,
    /// Channel.
    pub channel: String,
    /// Name.
    pub name: String,
}

/// The outcome of a reconciliation.
#[derive(Debug, Clone, Default)]
pub struct Reconciliation {
    /// Sent and landed or quarantined on the other side.
    pub matched: usize,
    /// Sent (sealed) by the sender but never landed nor quarantined by the receiver.
    pub sent_not_landed: Vec<Item>,
    /// Landed by the receiver but never sent by the sender.
    pub landed_not_sent: Vec<Item>,
    /// Witnessed checkpoints of the sender that match its log.
    pub witness_ok: usize,
    /// Witnessed checkpoints that do not match the sender's log (its history was rewritten).
    pub witness_mismatch: Vec<u64>,
    /// Objects the sender retired on a link with no return path (diode): sent, unconfirmed.
    pub retired: usize,
    /// Objects the receiver audited `lost` and never landed or quarantined afterwards.
    pub lost: Vec<Item>,
    /// Objects still waiting for approval on the sender (`approval_pending`, nothing
    /// after) that the receiver has not seen: not expected yet, not a failure.
    pub waiting: Vec<Item>,
}

impl Reconciliation {
    /// Whether everything matched.
    pub fn is_clean(&self) -> bool {
        self.sent_not_landed.is_empty()
            && self.landed_not_sent.is_empty()
            && self.witness_mismatch.is_empty()
    }

    /// Whether the receiver witnessed none of the sender's checkpoints: the sender's log
    /// is then corroborated by nothing (`audit reconcile --strict` fails).
    pub fn unwitnessed(&self) -> bool {
        self.witness_ok == 0 && self.witness_mismatch.is_empty()
    }
}

fn item(r: &Record) -> Option<(String, Item)> {
    let id = r.object_id.clone()?;
    Some((
        id.clone(),
        Item {
            object_id: id,
            channel: r.channel.clone().unwrap_or_default(),
            name: r.name.clone().unwrap_or_default(),
        },
    ))
}

/// What the sender's records say each object became, in log order (see the module
/// header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Sealed, or sent: the receiver should land or quarantine it.
    Expected,
    /// Waiting for approval.
    Waiting,
    /// Refused on the sender after it was sealed: never sent.
    Refused,
}

/// The objects the sender's records say the receiver should have, and those that still
/// wait for approval (by object id).
fn expected(s: &[Record]) -> (BTreeMap<String, Item>, BTreeMap<String, Item>) {
    let mut fate: BTreeMap<String, (Item, Fate)> = BTreeMap::new();
    for x in s {
        let next = match x.event {
            Event::Sealed
            | Event::Sent
            | Event::Retired
            | Event::Confirmed
            | Event::ApprovalWaived => Fate::Expected,
            Event::ApprovalPending => Fate::Waiting,
            Event::Refused => Fate::Refused,
            _ => continue,
        };
        let Some((id, it)) = item(x) else { continue };
        match fate.get_mut(&id) {
            Some(f) => f.1 = next,
            // a refusal before any seal (inspection) was never expected either
            None if next != Fate::Refused => {
                fate.insert(id, (it, next));
            }
            None => {}
        }
    }
    let (mut sent, mut waiting) = (BTreeMap::new(), BTreeMap::new());
    for (id, (it, f)) in fate {
        match f {
            Fate::Expected => {
                sent.insert(id, it);
            }
            Fate::Waiting => {
                waiting.insert(id, it);
            }
            Fate::Refused => {}
        }
    }
    (sent, waiting)
}

/// Reconciles the sender's log with the receiver's; `key` pins the sender's signing key
/// (default: the key in the sender's audit directory).
pub fn reconcile(
    sender: &Path,
    receiver: &Path,
    key: Option<&crate::keys::VerifyKey>,
) -> Result<Reconciliation, VerifyError> {
    let s = super::read_all(sender)?;
    let r = super::read_all(receiver)?;
    let sender_node = s.first().map(|x| x.node.clone()).unwrap_or_default();
    let (sent, waiting) = expected(&s);
    let arrived: BTreeMap<String, Item> = r
        .iter()
        .filter(|x| matches!(x.event, Event::Landed | Event::Quarantined))
        .filter(|x| x.peer.as_deref() == Some(sender_node.as_str()))
        .filter_map(item)
        .collect();
    let landed: BTreeSet<&String> = r
        .iter()
        .filter(|x| x.event == Event::Landed && x.peer.as_deref() == Some(sender_node.as_str()))
        .filter_map(|x| x.object_id.as_ref())
        .collect();
    let mut out = Reconciliation {
        retired: s.iter().filter(|x| x.event == Event::Retired).count(),
        lost: r
            .iter()
            .filter(|x| x.event == Event::Lost && x.peer.as_deref() == Some(sender_node.as_str()))
            .filter_map(item)
            .filter(|(id, _)| !arrived.contains_key(id))
            .map(|(_, it)| it)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        ..Reconciliation::default()
    };
    for (id, it) in &waiting {
        // one the receiver has is sent all the same (its `sent` record may be missing)
        if arrived.contains_key(id) {
            out.matched += 1;
        } else {
            out.waiting.push(it.clone());
        }
    }
    for (id, it) in &sent {
        if arrived.contains_key(id) {
            out.matched += 1;
        } else {
            out.sent_not_landed.push(it.clone());
        }
    }
    for (id, it) in &arrived {
        if landed.contains(id) && !sent.contains_key(id) && !waiting.contains_key(id) {
            out.landed_not_sent.push(it.clone());
        }
    }
    // The receiver's witness of the sender's checkpoints. Pin the sender's key from the
    // receiver's configuration (`key`): the copy in the sender's own directory is the
    // sender's word. Its later keys come from its log: verified (each endorsed by the one
    // before) when the log verifies, else as its records announce them.
    let timeline = match read::verify(sender, key) {
        Ok(report) => report.timeline,
        Err(_) => Timeline::announced(read::initial_key(sender, key)?, &s),
    };
    let keys = timeline.keys();
    let origin = crate::core::checkpoint::origin(&sender_node);
    let mut witnessed: Vec<Checkpoint> = Vec::new();
    for x in r.iter().filter(|x| x.event == Event::Witnessed) {
        let opened = x.detail.as_deref().and_then(|note| {
            keys.iter().find_map(|k| {
                let cp = Checkpoint::open(note, k, &origin).ok()?;
                // signed by the key in force at its size, not merely by one of the keys
                timeline.keys_at(cp.size).contains(k).then_some(cp)
            })
        });
        match opened {
            Some(cp) => witnessed.push(cp),
            // a witness that does not verify under the sender's key is a mismatch, not noise
            _ => out.witness_mismatch.push(x.size.unwrap_or(0)),
        }
    }
    witnessed.sort_by_key(|c| (c.size, c.root));
    witnessed.dedup_by_key(|c| (c.size, c.root));
    for pair in witnessed.windows(2) {
        if pair[0].size == pair[1].size {
            // two different signed roots for one size: the sender's log forked
            out.witness_mismatch.push(pair[0].size);
        }
    }
    if !witnessed.is_empty() {
        // the sender's tree, hashed with its log's suite (its initial key's)
        let suite = timeline.initial.suite();
        let mut tree = Frontier::new(suite);
        let mut next = 0;
        read::for_each_line(sender, |_, _, line| {
            tree.push(crate::core::merkle::leaf_hash(suite, line));
            while next < witnessed.len() && witnessed[next].size == tree.size() {
                if witnessed[next].root == tree.root() {
                    out.witness_ok += 1;
                } else {
                    out.witness_mismatch.push(witnessed[next].size);
                }
                next += 1;
            }
            Ok(())
        })?;
        out.witness_mismatch
            .extend(witnessed[next..].iter().map(|c| c.size));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, id: u8, event: Event) -> Record {
        Record {
            seq,
            time_ms: seq,
            node: "internet".into(),
            event,
            channel: Some("to-court".into()),
            object_id: Some(format!("{id:032x}")),
            name: Some(format!("f{id}.pdf")),
            size: Some(1),
            sha256: None,
            sm3: None,
            reason: None,
            detail: None,
            peer: None,
            stream: None,
            message: None,
        }
    }

    #[test]
    fn refused_after_sealing_is_not_expected_and_waiting_is_apart() {
        use Event::*;
        let log = [
            // 1: plain, sent
            rec(1, 1, Sealed),
            rec(2, 1, Sent),
            // 2: waited, rejected (refused on the sender)
            rec(3, 2, Sealed),
            rec(4, 2, ApprovalPending),
            rec(5, 2, Refused),
            // 3: still waiting
            rec(6, 3, Sealed),
            rec(7, 3, ApprovalPending),
            rec(8, 3, Approved),
            // 4: approved and sent
            rec(9, 4, Sealed),
            rec(10, 4, ApprovalPending),
            rec(11, 4, Sent),
            // 5: refused by inspection, never sealed
            rec(12, 5, Refused),
            // 6: waited, then waived by a reload
            rec(13, 6, Sealed),
            rec(14, 6, ApprovalPending),
            rec(15, 6, ApprovalWaived),
            // 7: refused, released from quarantine, sealed again: expected
            rec(16, 7, Sealed),
            rec(17, 7, Refused),
            rec(18, 7, Sealed),
        ];
        let (sent, waiting) = expected(&log);
        let ids = |m: &BTreeMap<String, Item>| -> Vec<String> { m.keys().cloned().collect() };
        assert_eq!(
            ids(&sent),
            [1u8, 4, 6, 7].map(|i| format!("{i:032x}")).to_vec()
        );
        assert_eq!(ids(&waiting), vec![format!("{:032x}", 3)]);
    }
}
