//! The signing keys of an audit log over time, and how a switch from one to the next is
//! recorded so that anyone holding the first key (or any later one) can follow it.
//!
//! ```text
//!  records ... ─► key_switched (seq S, detail: new key, old key's fingerprint)
//!  checkpoints:   ... ─► size S signed by the OLD key ─► size S signed by the NEW key ─► ...
//! ```
//!
//! A switch takes effect only once a checkpoint of exactly size S signed by the key in force
//! covers its record: the old key endorses the new one. Until then (and if that never
//! happens: a record forged after the fact, or a crash between the two writes) the old key
//! stays in force, so every later checkpoint must still be signed by it. The key for a
//! checkpoint of size N is therefore the initial key, or the one announced by the last
//! endorsed `key_switched` record with seq < N; at N = S either key (the old one endorses,
//! the new one acknowledges).
//!
//! `<audit_dir>/node.keys` lists the keys the log was signed with, oldest first, one 64-hex
//! key a line; `node.pub` holds the key in force. Both are the node's own word: pin a key
//! with `--key` for a check that does not depend on them.

use super::{Event, NODE_PUB, Record};
use crate::core::checkpoint::{Checkpoint, CheckpointError};
use crate::keys::VerifyKey;
use std::io;
use std::path::Path;

/// File listing the keys the log was signed with, oldest first.
pub const NODE_KEYS: &str = "node.keys";

const NEW_KEY: &str = "new key ";
const OLD_KEY: &str = ", old key ";

/// The detail of a `key_switched` record: the new key in full (the form of `node.pub` and
/// of `signing_public_key` files), and the old key's fingerprint.
pub fn switch_detail(new: &VerifyKey, old: &VerifyKey) -> String {
    format!("{NEW_KEY}{}{OLD_KEY}{}", new.to_hex(), old.fingerprint())
}

/// Parses the detail of a `key_switched` record: the new key and the old key's fingerprint.
pub fn parse_switch(detail: &str) -> Option<(VerifyKey, String)> {
    let rest = detail.strip_prefix(NEW_KEY)?;
    let (key, old) = rest.split_once(OLD_KEY)?;
    Some((VerifyKey::parse(key)?, old.to_string()))
}

/// The key history recorded in an audit directory: `node.keys`, or for a log written
/// before keys could rotate, the one key of `node.pub`. `None` if neither exists.
pub fn history(dir: &Path) -> io::Result<Option<Vec<VerifyKey>>> {
    let text = match std::fs::read_to_string(dir.join(NODE_KEYS)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match std::fs::read_to_string(dir.join(NODE_PUB)) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            VerifyKey::parse(l).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{l:?} is not a public key (64 hex digits of Ed25519, or SM2's 130)"),
                )
            })
        })
        .collect::<io::Result<Vec<_>>>()?;
    if keys.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no key in the key file",
        ));
    }
    Ok(Some(keys))
}

/// Writes `node.keys` (the history) and `node.pub` (its last key), durably.
pub fn write_history(dir: &Path, keys: &[VerifyKey]) -> io::Result<()> {
    let text: String = keys.iter().map(|k| format!("{}\n", k.to_hex())).collect();
    crate::fsx::write_durable_mode(&dir.join(NODE_KEYS), text.as_bytes(), super::FILE_MODE)?;
    if let Some(last) = keys.last() {
        crate::fsx::write_durable_mode(
            &dir.join(NODE_PUB),
            format!("{}\n", last.to_hex()).as_bytes(),
            super::FILE_MODE,
        )?;
    }
    Ok(())
}

/// One endorsed switch of a log's signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    /// Seq of the `key_switched` record (and size of the endorsing checkpoint).
    pub seq: u64,
    /// The key in force from then on.
    pub key: VerifyKey,
    /// The endorsing checkpoint note, signed by the previous key.
    pub endorsement: String,
}

/// The keys of a log over time: the initial key and the endorsed switches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// The key the log began with.
    pub initial: VerifyKey,
    /// The switches, in order.
    pub switches: Vec<Switch>,
}

impl Timeline {
    /// The keys that may sign a checkpoint of `size` records.
    pub fn keys_at(&self, size: u64) -> Vec<VerifyKey> {
        let mut key = &self.initial;
        for s in &self.switches {
            if s.seq == size {
                return vec![key.clone(), s.key.clone()];
            }
            if s.seq < size {
                key = &s.key;
            }
        }
        vec![key.clone()]
    }

    /// The key in force after the last switch.
    pub fn current(&self) -> &VerifyKey {
        self.switches.last().map_or(&self.initial, |s| &s.key)
    }

    /// Every key, oldest first.
    pub fn keys(&self) -> Vec<VerifyKey> {
        std::iter::once(self.initial.clone())
            .chain(self.switches.iter().map(|s| s.key.clone()))
            .collect()
    }

    /// The switches a log's records announce, without checking their endorsement: for a
    /// second opinion (reconcile) on a log that does not verify on its own.
    pub fn announced(initial: VerifyKey, records: &[Record]) -> Timeline {
        let switches = records
            .iter()
            .filter(|r| r.event == Event::KeySwitched)
            .filter_map(|r| {
                let (key, _) = parse_switch(r.detail.as_deref()?)?;
                Some(Switch {
                    seq: r.seq,
                    key,
                    endorsement: String::new(),
                })
            })
            .collect();
        Timeline { initial, switches }
    }
}

/// Follows the key in force while a log is read in order (used by `verify`).
#[derive(Debug)]
pub struct Schedule {
    timeline: Timeline,
    in_force: VerifyKey,
    /// A `key_switched` record read last, not yet endorsed: (seq, new key, old fingerprint).
    pending: Option<(u64, VerifyKey, String)>,
    /// `key_switched` records that never took effect.
    ignored: Vec<u64>,
}

/// Why a checkpoint did not verify under the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleError {
    /// The note is malformed or not signed by the key in force.
    Checkpoint(CheckpointError),
    /// An endorsed switch names another old key than the one in force.
    OldKeyMismatch {
        /// Seq of the record.
        seq: u64,
        /// The fingerprint it names.
        named: String,
        /// The fingerprint of the key in force.
        in_force: String,
    },
}

impl Schedule {
    /// Starts with the log's initial key.
    pub fn new(initial: VerifyKey) -> Schedule {
        Schedule {
            in_force: initial.clone(),
            timeline: Timeline {
                initial,
                switches: Vec::new(),
            },
            pending: None,
            ignored: Vec::new(),
        }
    }

    /// Takes the next record of the log (its seq, event and detail).
    pub fn record(&mut self, seq: u64, event: Event, detail: Option<&str>) {
        if let Some((s, ..)) = self.pending.take() {
            // its endorsement had to come at exactly its size
            self.ignored.push(s);
        }
        if event == Event::KeySwitched {
            match detail.and_then(parse_switch) {
                Some((key, old)) => self.pending = Some((seq, key, old)),
                None => self.ignored.push(seq),
            }
        }
    }

    /// Verifies a checkpoint of the records read so far (`size` of them) with the key in
    /// force; a checkpoint by that key at the size of a pending switch endorses it.
    pub fn checkpoint(
        &mut self,
        note: &str,
        size: u64,
        origin: &str,
    ) -> Result<Checkpoint, ScheduleError> {
        let cp =
            Checkpoint::open(note, &self.in_force, origin).map_err(ScheduleError::Checkpoint)?;
        if let Some((seq, key, old)) = self.pending.take_if(|(seq, ..)| *seq == size) {
            let in_force = self.in_force.fingerprint();
            if old != in_force {
                return Err(ScheduleError::OldKeyMismatch {
                    seq,
                    named: old,
                    in_force,
                });
            }
            self.in_force = key.clone();
            self.timeline.switches.push(Switch {
                seq,
                key,
                endorsement: note.to_string(),
            });
        }
        Ok(cp)
    }

    /// The key in force now.
    pub fn in_force(&self) -> &VerifyKey {
        &self.in_force
    }

    /// Ends the log: the timeline, and the seqs of `key_switched` records that never took
    /// effect (not endorsed, or unreadable).
    pub fn finish(mut self) -> (Timeline, Vec<u64>) {
        if let Some((s, ..)) = self.pending.take() {
            self.ignored.push(s);
        }
        (self.timeline, self.ignored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::read::verify;
    use crate::audit::{AuditError, AuditLog, CHECKPOINTS, CheckpointPolicy, Entry, segment_name};
    use crate::core::checkpoint::{self, Checkpoint};
    use crate::core::id::ObjectId;
    use crate::keys::SigningKey;
    use std::sync::Arc;

    fn key(seed: u8) -> Arc<SigningKey> {
        Arc::new(SigningKey::from_seed(&[seed; 32]).unwrap())
    }

    fn open(dir: &Path, k: &Arc<SigningKey>) -> AuditLog {
        AuditLog::open(dir, "court", k.clone(), CheckpointPolicy::default(), None).unwrap()
    }

    fn some_records(log: &AuditLog, n: u8) {
        for i in 0..n {
            let e = Entry::object("to-internet", ObjectId([i; 16]), &format!("判决书-{i}.pdf"));
            log.append(Event::Sealed, e).unwrap();
        }
    }

    /// A log of key A, switched to B, then to C, with records and checkpoints between.
    fn two_switches(dir: &Path) -> [Arc<SigningKey>; 3] {
        let [a, b, c] = [key(1), key(2), key(3)];
        let log = open(dir, &a);
        some_records(&log, 3);
        log.checkpoint(true).unwrap();
        some_records(&log, 2);
        assert_eq!(log.switch_key(b.clone()).unwrap(), Some(6));
        assert_eq!(log.switch_key(b.clone()).unwrap(), None, "already in force");
        some_records(&log, 4);
        log.checkpoint(true).unwrap();
        drop(log);
        // a restart with the new key continues the log
        let log = open(dir, &b);
        some_records(&log, 1);
        assert_eq!(log.switch_key(c.clone()).unwrap(), Some(12));
        some_records(&log, 2);
        log.checkpoint(true).unwrap();
        [a, b, c]
    }

    #[test]
    fn a_log_with_two_switches_verifies_with_any_of_its_keys() {
        let dir = tempfile::tempdir().unwrap();
        let [a, b, c] = two_switches(dir.path());
        let (a, b, c) = (a.verify_key(), b.verify_key(), c.verify_key());
        let report = verify(dir.path(), None).unwrap();
        assert_eq!(report.records, 14);
        assert_eq!(report.unsigned_tail, 0);
        assert_eq!(
            report.timeline.keys(),
            vec![a.clone(), b.clone(), c.clone()]
        );
        assert_eq!(
            report
                .timeline
                .switches
                .iter()
                .map(|s| s.seq)
                .collect::<Vec<_>>(),
            vec![6, 12]
        );
        assert!(report.ignored_switches.is_empty());
        for pin in [&a, &b, &c] {
            assert_eq!(verify(dir.path(), Some(pin)).unwrap(), report);
        }
        let stranger = key(9).verify_key();
        assert!(verify(dir.path(), Some(&stranger)).is_err());
        assert_eq!(
            history(dir.path()).unwrap().unwrap(),
            vec![a.clone(), b, c.clone()]
        );
        let node_pub = std::fs::read_to_string(dir.path().join(NODE_PUB)).unwrap();
        assert_eq!(node_pub.trim(), c.to_hex());
        // the switch record says what it should
        let rec = &crate::audit::read_all(dir.path()).unwrap()[5];
        assert_eq!(rec.event, Event::KeySwitched);
        let (new, old) = parse_switch(rec.detail.as_deref().unwrap()).unwrap();
        assert_eq!((new, old), (key(2).verify_key(), a.fingerprint()));
        // the old key can no longer open the log
        assert!(matches!(
            AuditLog::open(
                dir.path(),
                "court",
                key(1),
                CheckpointPolicy::default(),
                None
            ),
            Err(AuditError::OtherKey(_))
        ));
    }

    #[test]
    fn proofs_and_witnesses_follow_the_switches() {
        let dir = tempfile::tempdir().unwrap();
        let [a, b, c] = two_switches(dir.path());
        let id = ObjectId([1; 16]).to_string();
        let proof = crate::audit::prove::prove(dir.path(), &id, None).unwrap();
        assert_eq!(proof.key_switches.len(), 2);
        for k in [&a, &b, &c] {
            crate::audit::prove::verify_proof(&proof, &k.verify_key()).unwrap();
        }
        assert!(crate::audit::prove::verify_proof(&proof, &key(9).verify_key()).is_err());
        // a proof stripped of its switches only verifies with the key in force
        let mut bare = proof.clone();
        bare.key_switches.clear();
        assert!(crate::audit::prove::verify_proof(&bare, &a.verify_key()).is_err());
        crate::audit::prove::verify_proof(&bare, &c.verify_key()).unwrap();
        // a switch record altered in the proof breaks it
        let mut forged = proof.clone();
        forged.key_switches[0].record = forged.key_switches[0]
            .record
            .replace(&b.verify_key().to_hex(), &key(9).verify_key().to_hex());
        assert!(crate::audit::prove::verify_proof(&forged, &a.verify_key()).is_err());
        // the timeline gives the key in force at each size
        let t = verify(dir.path(), None).unwrap().timeline;
        assert_eq!(t.keys_at(5), vec![a.verify_key()]);
        assert_eq!(t.keys_at(6), vec![a.verify_key(), b.verify_key()]);
        assert_eq!(t.keys_at(7), vec![b.verify_key()]);
        assert_eq!(t.keys_at(14), vec![c.verify_key()]);
    }

    fn forge_checkpoint(dir: &Path, size: u64, root: crate::core::merkle::Hash, k: &SigningKey) {
        let note = Checkpoint {
            origin: checkpoint::origin("court"),
            size,
            root,
            time_ms: 1,
        }
        .sign(k);
        let line = serde_json::to_string(&crate::audit::StoredCheckpoint {
            size,
            root: hex::encode(root),
            time_ms: 1,
            note,
        })
        .unwrap();
        let path = dir.join(CHECKPOINTS);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, format!("{text}{line}\n")).unwrap();
    }

    fn root_of(dir: &Path) -> (u64, crate::core::merkle::Hash) {
        let suite = crate::audit::read::node_keys(dir).unwrap()[0].suite();
        let mut tree = crate::core::merkle::Frontier::new(suite);
        for (leaf, _) in crate::audit::read::leaves(dir, suite).unwrap() {
            tree.push(leaf);
        }
        (tree.size(), tree.root())
    }

    #[test]
    fn a_switch_record_changed_or_added_later_fails() {
        // changed: the switch to B now names the insider's key
        let dir = tempfile::tempdir().unwrap();
        let [_, b, _] = two_switches(dir.path());
        let insider = key(9);
        let seg = dir.path().join(segment_name(1));
        let text = std::fs::read_to_string(&seg).unwrap();
        let changed = text.replace(&b.verify_key().to_hex(), &insider.verify_key().to_hex());
        assert_ne!(changed, text);
        std::fs::write(&seg, changed).unwrap();
        assert!(verify(dir.path(), None).is_err());

        // added at the end of a log without switches, with checkpoints of the insider's key
        // and a history that names it: the old key never endorsed it
        let dir = tempfile::tempdir().unwrap();
        let a = key(1);
        {
            let log = open(dir.path(), &a);
            some_records(&log, 3);
            log.checkpoint(true).unwrap();
        }
        let forged = crate::audit::Record {
            seq: 4,
            time_ms: 1,
            node: "court".into(),
            event: Event::KeySwitched,
            channel: None,
            object_id: None,
            name: None,
            size: None,
            sha256: None,
            sm3: None,
            reason: None,
            detail: Some(switch_detail(&insider.verify_key(), &a.verify_key())),
            peer: None,
            stream: None,
            message: None,
        };
        let seg = dir.path().join(segment_name(1));
        let text = std::fs::read_to_string(&seg).unwrap();
        let line = serde_json::to_string(&forged).unwrap();
        std::fs::write(&seg, format!("{text}{line}\n")).unwrap();
        let (size, root) = root_of(dir.path());
        forge_checkpoint(dir.path(), size, root, &insider);
        write_history(dir.path(), &[a.verify_key(), insider.verify_key()]).unwrap();
        let e = verify(dir.path(), None).unwrap_err().to_string();
        assert!(e.contains("checkpoints.jsonl:2"), "{e}");
        assert!(verify(dir.path(), Some(&a.verify_key())).is_err());
        assert!(verify(dir.path(), Some(&insider.verify_key())).is_err());

        // inserted in the middle of a signed log
        let dir = tempfile::tempdir().unwrap();
        {
            let log = open(dir.path(), &a);
            some_records(&log, 4);
            log.checkpoint(true).unwrap();
        }
        let seg = dir.path().join(segment_name(1));
        let text = std::fs::read_to_string(&seg).unwrap();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let mut rec = forged.clone();
        rec.seq = 3;
        lines.insert(2, serde_json::to_string(&rec).unwrap());
        for (i, l) in lines.iter_mut().enumerate().skip(3) {
            *l = l.replacen(&format!("\"seq\":{}", i), &format!("\"seq\":{}", i + 1), 1);
        }
        std::fs::write(&seg, lines.join("\n") + "\n").unwrap();
        assert!(verify(dir.path(), None).is_err());
    }

    #[test]
    fn a_checkpoint_of_the_new_key_before_its_switch_fails() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (key(1), key(2));
        {
            let log = open(dir.path(), &a);
            some_records(&log, 3);
            log.checkpoint(true).unwrap();
            some_records(&log, 2);
            // the new key signs a checkpoint of 5 records, before the switch at 6
            let (size, root) = root_of(dir.path());
            forge_checkpoint(dir.path(), size, root, &b);
            log.switch_key(b.clone()).unwrap();
            some_records(&log, 1);
            log.checkpoint(true).unwrap();
        }
        let e = verify(dir.path(), None).unwrap_err().to_string();
        assert!(
            e.contains("checkpoints.jsonl:2") && e.contains("size 5"),
            "{e}"
        );
        assert!(verify(dir.path(), Some(&a.verify_key())).is_err());
    }

    #[test]
    fn a_switch_never_endorsed_does_not_take_effect() {
        // a crash between the record and its endorsement: the old key stays in force
        let dir = tempfile::tempdir().unwrap();
        let a = key(1);
        let log = open(dir.path(), &a);
        some_records(&log, 2);
        let detail = switch_detail(&key(2).verify_key(), &a.verify_key());
        log.append(
            Event::KeySwitched,
            Entry {
                detail: Some(detail),
                ..Entry::default()
            },
        )
        .unwrap();
        some_records(&log, 2);
        log.checkpoint(true).unwrap();
        let report = verify(dir.path(), None).unwrap();
        assert_eq!(report.ignored_switches, vec![3]);
        assert_eq!(report.timeline.keys(), vec![a.verify_key()]);
    }

    #[test]
    fn switch_detail_round_trips_and_timeline_picks_keys() {
        let a = SigningKey::generate().unwrap().verify_key();
        let b = SigningKey::generate().unwrap().verify_key();
        let d = switch_detail(&b, &a);
        assert_eq!(parse_switch(&d), Some((b.clone(), a.fingerprint())));
        assert!(d.contains(&b.to_hex()));
        assert_eq!(parse_switch("new key zz, old key x"), None);
        let t = Timeline {
            initial: a.clone(),
            switches: vec![Switch {
                seq: 10,
                key: b.clone(),
                endorsement: String::new(),
            }],
        };
        assert_eq!(t.keys_at(9), vec![a.clone()]);
        assert_eq!(t.keys_at(10), vec![a.clone(), b.clone()]);
        assert_eq!(t.keys_at(11), vec![b.clone()]);
        assert_eq!(t.current(), &b);
    }
}
