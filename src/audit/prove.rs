//! `isogate audit prove` and `verify-proof`: an inclusion proof of an object's records
//! against the latest signed checkpoint, checkable offline with only the node's public key.
//! This is what an officer hands to a court or anchors elsewhere.

use super::Record;
use super::read::{self, VerifyError};
use crate::checkpoint::{self, Checkpoint};
use crate::keys::VerifyKey;
use crate::merkle::{self, Hash};
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
}

/// Makes the proof of every record about `object_id` against the latest checkpoint.
pub fn prove(dir: &Path, object_id: &str, key: Option<&VerifyKey>) -> Result<Proof, ProofError> {
    let report = read::verify(dir, key)?;
    let key = match key {
        Some(k) => k.clone(),
        None => read::node_key(dir)?,
    };
    let stored = read::checkpoints(dir).map_err(VerifyError::from)?;
    let cp = stored
        .iter()
        .rev()
        .find(|c| c.size == report.last_checkpoint)
        .ok_or_else(|| ProofError::NotCovered(object_id.to_string()))?;
    let all = read::leaves(dir).map_err(VerifyError::from)?;
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
            path: merkle::inclusion_proof(&leaves, i)
                .iter()
                .map(hex::encode)
                .collect(),
        });
    }
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

/// Checks a proof offline with the node's public key.
pub fn verify_proof(proof: &Proof, key: &VerifyKey) -> Result<Proven, ProofError> {
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
    let cp = Checkpoint::open(&proof.checkpoint, key, origin)?;
    let mut records = Vec::new();
    for e in &proof.entries {
        let path = e
            .path
            .iter()
            .map(|p| hash32(p))
            .collect::<Result<Vec<_>, _>>()?;
        let leaf = merkle::leaf_hash(e.record.as_bytes());
        if !merkle::verify_inclusion(e.index, cp.size, &leaf, &path, &cp.root) {
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
