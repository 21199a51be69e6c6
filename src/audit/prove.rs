//! `isogate audit prove` and `verify-proof`: an inclusion proof of an object's records
//! against the latest signed checkpoint, checkable offline with only the node's public key.
//! This is what an officer hands to a court or anchors elsewhere.
//!
//! When the node's signing key was switched, the proof also carries each `key_switched`
//! record with its inclusion path in the checkpoint the old key signed over it, so that the
//! proof verifies with the node's original key (or any later one) alone.

use super::Record;
use super::read::{self, VerifyError};
use crate::core::checkpoint::{self, Checkpoint};
use crate::core::merkle::{self, Hash};
use crate::keys::VerifyKey;
use crate::keys::suite::Suite;
use serde::{Deserialize, Serialize};
use std::path::Path;
use thiserror::Error;

/// A proof document (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proof {
    /// Format version.
    pub version: u32,
    /// The object the proof is about.
    pub object_id: String,
    /// The signed checkpoint note the entries are proved against.
    pub checkpoint: String,
    /// The node's public key, hex (for reference: pin it from elsewhere with `--key`).
    pub public_key: String,
    /// Each record about the object, with its inclusion path.
    pub entries: Vec<ProofEntry>,
    /// The switches of the node's signing key, oldest first: how the key that signed
    /// `checkpoint` descends from earlier ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_switches: Vec<KeyStep>,
}

/// One switch of the node's signing key: the `key_switched` record, its inclusion path, and
/// the checkpoint over it signed with the old key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyStep {
    /// 0-based leaf index of the record (seq - 1).
    pub index: u64,
    /// The record's exact line.
    pub record: String,
    /// Sibling hashes, bottom-up, hex, in the tree of `checkpoint`.
    pub path: Vec<String>,
    /// The checkpoint of exactly `index + 1` records, signed with the old key.
    pub checkpoint: String,
}

/// One record and its inclusion path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProofEntry {
    /// 0-based leaf index (seq - 1).
    pub index: u64,
    /// The record's exact line.
    pub record: String,
    /// Sibling hashes, bottom-up, hex.
    pub path: Vec<String>,
}

/// Why a proof could not be made or does not hold.
#[derive(Debug, Error)]
pub enum ProofError {
    /// The log does not verify.
    #[error("the audit log does not verify: {0}")]
    Log(#[from] VerifyError),
    /// The key given signed neither the log nor the proof; the keys named signed it: the
    /// wrong key, or a log or proof re-signed with another key. Nothing is verified against
    /// the pinned key.
    #[error(
        "the {what} was not signed by this key ({pinned}): {signed} signed by {signers}. Either \
         this is the wrong key, or the {what} was re-signed with another key: it is not \
         verified; check those fingerprints against the node's keys on record"
    )]
    NotSignedBy {
        /// `log` or `proof`.
        what: &'static str,
        /// What the signers signed: `its checkpoints are` or `its checkpoint is`.
        signed: &'static str,
        /// The fingerprint of the key given.
        pinned: String,
        /// The fingerprints of the keys that signed, oldest first.
        signers: String,
    },
    /// Nothing to prove.
    #[error("no record of object {0} in the log")]
    NotFound(String),
    /// The records are newer than every checkpoint.
    #[error(
        "the records of {0} are not yet covered by a checkpoint (one is written every second, and at a clean stop); try again"
    )]
    NotCovered(String),
    /// The proof document is malformed.
    #[error("malformed proof: {0}")]
    Malformed(String),
    /// The checkpoint is not signed by the key.
    #[error("the checkpoint does not verify: {0}")]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// An entry does not hold.
    #[error("record at index {0} is not included in the signed tree")]
    NotIncluded(u64),
    /// A key switch does not hold.
    #[error("key switch at index {index}: {what}")]
    KeySwitch {
        /// 0-based leaf index of the `key_switched` record.
        index: u64,
        /// What is wrong.
        what: String,
    },
}

/// Makes the proof of every record about `object_id` against the latest checkpoint.
pub fn prove(dir: &Path, object_id: &str, key: Option<&VerifyKey>) -> Result<Proof, ProofError> {
    let report = read::verify(dir, key).map_err(|e| match e {
        VerifyError::NotSignedBy { pinned, signers } => ProofError::NotSignedBy {
            what: "log",
            signed: "its checkpoints are",
            pinned,
            signers,
        },
        e => ProofError::Log(e),
    })?;
    let key = report.timeline.current().clone();
    let stored = read::checkpoints(dir).map_err(VerifyError::from)?;
    let cp = stored
        .iter()
        .rev()
        .find(|c| c.size == report.last_checkpoint)
        .ok_or_else(|| ProofError::NotCovered(object_id.to_string()))?;
    // the log's tree hash: the suite of the key it began with
    let suite = report.timeline.initial.suite();
    let all = read::leaves(dir, suite).map_err(VerifyError::from)?;
    let size = cp.size as usize;
    let leaves: Vec<Hash> = all[..size].iter().map(|(h, _)| *h).collect();
    let mut entries = Vec::new();
    let mut newer = false;
    for (i, (_, line)) in all.iter().enumerate() {
        let Ok(rec) = serde_json::from_slice::<Record>(line) else {
            continue;
        };
        if rec.object_id.as_deref() != Some(object_id) {
            continue;
        }
        if i >= size {
            newer = true;
            continue;
        }
        entries.push(ProofEntry {
            index: i as u64,
            record: String::from_utf8_lossy(line).into_owned(),
            path: merkle::inclusion_proof(suite, &leaves, i)
                .iter()
                .map(hex::encode)
                .collect(),
        });
    }
    let key_switches = report
        .timeline
        .switches
        .iter()
        .map(|s| {
            let i = (s.seq - 1) as usize;
            let leaves: Vec<Hash> = all[..s.seq as usize].iter().map(|(h, _)| *h).collect();
            KeyStep {
                index: s.seq - 1,
                record: String::from_utf8_lossy(&all[i].1).into_owned(),
                path: merkle::inclusion_proof(suite, &leaves, i)
                    .iter()
                    .map(hex::encode)
                    .collect(),
                checkpoint: s.endorsement.clone(),
            }
        })
        .collect();
    if entries.is_empty() {
        return Err(if newer {
            ProofError::NotCovered(object_id.to_string())
        } else {
            ProofError::NotFound(object_id.to_string())
        });
    }
    Ok(Proof {
        version: 1,
        object_id: object_id.to_string(),
        checkpoint: cp.note.clone(),
        public_key: key.to_hex(),
        entries,
        key_switches,
    })
}

/// What a valid proof shows.
#[derive(Debug, Clone)]
pub struct Proven {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The records proved, parsed.
    pub records: Vec<Record>,
}

fn hash32(s: &str) -> Result<Hash, ProofError> {
    let mut h = [0u8; 32];
    hex::decode_to_slice(s, &mut h)
        .map_err(|_| ProofError::Malformed(format!("bad hash {s:?}")))?;
    Ok(h)
}

/// Whether `record`, at `index` of the log, is in the tree `cp` commits to, by its audit
/// `path` (hex hashes, of `suite`'s hash: the log's); a malformed hash is an error.
fn included(
    suite: Suite,
    record: &str,
    index: u64,
    path: &[String],
    cp: &Checkpoint,
) -> Result<bool, ProofError> {
    let path = path
        .iter()
        .map(|p| hash32(p))
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = merkle::leaf_hash(suite, record.as_bytes());
    Ok(merkle::verify_inclusion(
        suite, index, cp.size, &leaf, &path, &cp.root,
    ))
}

/// Whether one of the proof's key switches names `key`, as the old key or the new one.
fn names_key(proof: &Proof, key: &VerifyKey) -> bool {
    proof.key_switches.iter().any(|step| {
        serde_json::from_str::<Record>(&step.record)
            .ok()
            .and_then(|r| r.detail)
            .and_then(|d| super::keys::parse_switch(&d))
            .is_some_and(|(new, old)| new == *key || old == key.fingerprint())
    })
}

/// Follows the proof's key switches from `key` (the node's original key, or any later one
/// the proof names) to the key that signed its checkpoint; returns that key and the size
/// from which it is in force.
fn follow_switches(
    proof: &Proof,
    key: &VerifyKey,
    origin: &str,
) -> Result<(VerifyKey, u64), ProofError> {
    let mut in_force = key.clone();
    let mut since = 0u64;
    // a key the proof names as a later one is trusted from its switch on
    let announced = |step: &KeyStep| {
        serde_json::from_str::<Record>(&step.record)
            .ok()
            .and_then(|r| r.detail)
            .and_then(|d| super::keys::parse_switch(&d))
            .map(|(k, _)| k)
    };
    let start = proof
        .key_switches
        .iter()
        .rposition(|s| announced(s).as_ref() == Some(key))
        .map_or(0, |i| {
            since = proof.key_switches[i].index + 1;
            i + 1
        });
    for step in &proof.key_switches[start..] {
        let fail = |what: String| ProofError::KeySwitch {
            index: step.index,
            what,
        };
        if step.index < since {
            return Err(fail("key switches are out of order".into()));
        }
        let cp = Checkpoint::open(&step.checkpoint, &in_force, origin)
            .map_err(|e| fail(format!("the endorsing checkpoint: {e}")))?;
        if cp.size != step.index + 1 {
            return Err(fail(
                "the endorsing checkpoint is not of the record's size".into(),
            ));
        }
        if !included(key.suite(), &step.record, step.index, &step.path, &cp)? {
            return Err(fail(
                "the record is not included in the endorsing checkpoint".into(),
            ));
        }
        let rec: Record =
            serde_json::from_str(&step.record).map_err(|e| fail(format!("not a record: {e}")))?;
        if rec.event != super::Event::KeySwitched || rec.seq != step.index + 1 {
            return Err(fail("not the key_switched record at this index".into()));
        }
        let (new, old) = rec
            .detail
            .as_deref()
            .and_then(super::keys::parse_switch)
            .ok_or_else(|| fail("the record names no new key".into()))?;
        if old != in_force.fingerprint() {
            return Err(fail(format!(
                "the record names the old key {old}, but the key in force is {}",
                in_force.fingerprint()
            )));
        }
        in_force = new;
        since = step.index + 1;
    }
    Ok((in_force, since))
}

/// Checks a proof offline with the node's public key: its key at the time of the proof's
/// checkpoint, or an earlier one when the proof carries the switches since.
pub fn verify_proof(proof: &Proof, key: &VerifyKey) -> Result<Proven, ProofError> {
    // a key the proof does not know, while the key it names holds it: the wrong key
    if let Some(own) = VerifyKey::parse(&proof.public_key)
        && own != *key
        && !names_key(proof, key)
        && verify_proof(proof, &own).is_ok()
    {
        return Err(ProofError::NotSignedBy {
            what: "proof",
            signed: "its checkpoint is",
            pinned: key.fingerprint(),
            signers: own.fingerprint(),
        });
    }
    if proof.version != 1 {
        return Err(ProofError::Malformed(format!(
            "unknown version {}",
            proof.version
        )));
    }
    let origin = proof
        .checkpoint
        .lines()
        .next()
        .ok_or_else(|| ProofError::Malformed("empty checkpoint".into()))?;
    let (key, since) = follow_switches(proof, key, origin)?;
    let cp = Checkpoint::open(&proof.checkpoint, &key, origin)?;
    if cp.size < since {
        return Err(ProofError::Malformed(
            "the checkpoint is older than the key switches the proof carries".into(),
        ));
    }
    let mut records = Vec::new();
    for e in &proof.entries {
        if !included(key.suite(), &e.record, e.index, &e.path, &cp)? {
            return Err(ProofError::NotIncluded(e.index));
        }
        let rec: Record =
            serde_json::from_str(&e.record).map_err(|e| ProofError::Malformed(e.to_string()))?;
        if rec.object_id.as_deref() != Some(proof.object_id.as_str()) || rec.seq != e.index + 1 {
            return Err(ProofError::Malformed(format!(
                "entry {} is about another object or index",
                e.index
            )));
        }
        records.push(rec);
    }
    if records.is_empty() {
        return Err(ProofError::Malformed("no entries".into()));
    }
    Ok(Proven {
        checkpoint: cp,
        records,
    })
}
