//! Reading an audit directory, and `isogate audit verify`: recompute the Merkle tree over
//! every record and check it against every signed checkpoint, so that any change to the
//! record — a flipped byte, a removed, inserted, duplicated or reordered record, a truncated
//! or missing segment, a checkpoint that does not match or is not signed by the node's key —
//! is found, and said where.
//!
//! Each checkpoint is checked with the key in force at its size: the log's initial key, or
//! the one announced by the last `key_switched` record its old key endorsed (see `keys`).

use super::keys::{self, Schedule, ScheduleError, Timeline};
use super::{CHECKPOINTS, NODE_PUB, Record, StoredCheckpoint, segment_name};
use crate::core::checkpoint::{self, Checkpoint};
use crate::core::merkle::{Frontier, leaf_hash};
use crate::keys::VerifyKey;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use thiserror::Error;

/// What `verify` found in a sound log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The node whose log it is.
    pub node: String,
    /// Records verified.
    pub records: u64,
    /// Segment files.
    pub segments: usize,
    /// Checkpoints verified.
    pub checkpoints: usize,
    /// Size covered by the last checkpoint.
    pub last_checkpoint: u64,
    /// Records after the last checkpoint (not yet covered by a signature).
    pub unsigned_tail: u64,
    /// The signing keys of the log over time.
    pub timeline: Timeline,
    /// Seqs of `key_switched` records that never took effect: not endorsed by a checkpoint
    /// of the key in force (a crash between the two writes, or a record added later).
    pub ignored_switches: Vec<u64>,
}

/// Why a log does not verify: where, and what.
#[derive(Debug, Error)]
pub enum VerifyError {
    /// A problem at a line of a file.
    #[error("{file}:{line}: {what}")]
    At {
        /// The file name in the audit directory.
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// A problem with the log as a whole.
    #[error("{0}")]
    Log(String),
    /// The pinned key signed none of the log's checkpoints, and the log's own keys did (its
    /// content matches their signatures). Either the wrong key was given, or the whole log
    /// was re-signed with another key: the log is NOT verified against the pinned key, and
    /// the signers' fingerprints must be checked against the records of the node's keys.
    #[error(
        "the log was not signed by this key ({pinned}): its checkpoints are signed by {signers}. \
         Either this is the wrong key, or the whole log was re-signed with another key: the log \
         is not verified; check those fingerprints against the node's keys on record (the \
         peer's configuration pins them)"
    )]
    NotSignedBy {
        /// The fingerprint of the key given.
        pinned: String,
        /// The fingerprints of the keys that signed the log, oldest first (`, then `).
        signers: String,
    },
    /// The directory or a file could not be read.
    #[error("{0}")]
    Io(#[from] io::Error),
}

fn at(file: &str, line: usize, what: impl Into<String>) -> VerifyError {
    VerifyError::At {
        file: file.to_string(),
        line,
        what: what.into(),
    }
}

/// The segment numbers present, sorted.
pub fn segment_numbers(dir: &Path) -> io::Result<Vec<u64>> {
    super::segments(dir)
}

/// Calls `f(segment file name, line number, line)` for every line of every segment, in
/// order. A last line without a newline is passed with its bytes as they are.
pub fn for_each_line(
    dir: &Path,
    mut f: impl FnMut(&str, usize, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    for n in segment_numbers(dir)? {
        let name = segment_name(n);
        let mut r = BufReader::with_capacity(1 << 20, File::open(dir.join(&name))?);
        let mut buf = Vec::with_capacity(512);
        let mut line_no = 0;
        loop {
            buf.clear();
            if r.read_until(b'\n', &mut buf)? == 0 {
                break;
            }
            line_no += 1;
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            f(&name, line_no, line)?;
        }
    }
    Ok(())
}

/// A line of `checkpoints.jsonl` that does not parse as a checkpoint: where, and why.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {why}")]
pub struct BadCheckpoint {
    /// The checkpoint's number in the file, from 1, empty lines not counted (as every
    /// other `checkpoints.jsonl:N` of [`verify`] counts).
    pub line: usize,
    /// What the JSON reader found, with the column in that line.
    pub why: String,
}

/// The stored checkpoints, in file order (unverified).
///
/// # Errors
/// The file cannot be read (a missing file is no checkpoint yet), or a line does not parse:
/// an [`io::Error`] of kind `Other` whose inner error is a [`BadCheckpoint`].
pub fn checkpoints(dir: &Path) -> io::Result<Vec<StoredCheckpoint>> {
    let text = match std::fs::read_to_string(dir.join(CHECKPOINTS)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    text.lines()
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                // each line is read alone: its "line 1" would mislead
                let text = e.to_string();
                let position = format!(" at line {} column {}", e.line(), e.column());
                let what = text.strip_suffix(&position).unwrap_or(&text);
                io::Error::other(BadCheckpoint {
                    line: i + 1,
                    why: format!("{what} at column {}", e.column()),
                })
            })
        })
        .collect()
}

/// The node's public key as recorded in the audit directory.
pub fn node_key(dir: &Path) -> Result<VerifyKey, VerifyError> {
    VerifyKey::load(&dir.join(NODE_PUB)).map_err(|e| VerifyError::Log(e.to_string()))
}

/// The keys the log says it was signed with, oldest first (`node.keys`, or `node.pub`).
pub fn node_keys(dir: &Path) -> Result<Vec<VerifyKey>, VerifyError> {
    keys::history(dir)
        .map_err(|e| VerifyError::Log(format!("{}: {e}", dir.join(keys::NODE_KEYS).display())))?
        .ok_or_else(|| {
            VerifyError::Log(format!(
                "{}: neither {} nor {NODE_PUB} exists",
                dir.display(),
                keys::NODE_KEYS
            ))
        })
}

/// The key a log began with, given the key pinned by the caller, if any: the pinned key is
/// the initial key, unless the log's own history names it as a later key (then the history
/// supplies the initial key, and the pinned key must sign a checkpoint of the log).
pub(crate) fn initial_key(dir: &Path, pin: Option<&VerifyKey>) -> Result<VerifyKey, VerifyError> {
    match pin {
        None => node_keys(dir).map(|h| h[0].clone()),
        Some(k) => Ok(match keys::history(dir) {
            Ok(Some(h)) if h.contains(k) => h[0].clone(),
            _ => k.clone(),
        }),
    }
}

/// Verifies the whole log in `dir` against `key` (default: the keys in `node.keys` or
/// `node.pub`; pass the key from the node's configuration, or an earlier one, to pin it
/// independently). Across key switches the later keys come from the log itself, each
/// endorsed by the key before it.
pub fn verify(dir: &Path, key: Option<&VerifyKey>) -> Result<Report, VerifyError> {
    if let Some(pin) = key
        && foreign(dir, pin)
    {
        // checked whole with the keys that did sign it: a sound log signed by others is the
        // wrong key, not tampering; a log that fails with its own keys is tampered all the same
        let report = verify(dir, None)?;
        let t = &report.timeline;
        let signers = std::iter::once(&t.initial)
            .chain(t.switches.iter().map(|s| &s.key))
            .map(VerifyKey::fingerprint)
            .collect::<Vec<_>>()
            .join(", then ");
        return Err(VerifyError::NotSignedBy {
            pinned: pin.fingerprint(),
            signers,
        });
    }
    let initial = initial_key(dir, key)?;
    // the tree hashes with the log's suite: that of the key it began with (switches keep it)
    let suite = initial.suite();
    let mut schedule = Schedule::new(initial);
    let mut pin_signed = false;
    let segs = segment_numbers(dir)?;
    if segs.is_empty() {
        return Err(VerifyError::Log(format!(
            "{}: no audit segment (log-*.jsonl)",
            dir.display()
        )));
    }
    for (i, n) in segs.iter().enumerate() {
        if *n != i as u64 + 1 {
            return Err(VerifyError::Log(format!(
                "segment {} is missing (found {} next)",
                segment_name(i as u64 + 1),
                segment_name(*n)
            )));
        }
    }
    let stored = checkpoints(dir).map_err(|e| {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<BadCheckpoint>())
        {
            Some(bad) => at(CHECKPOINTS, bad.line, format!("unreadable: {}", bad.why)),
            None => at(CHECKPOINTS, 0, format!("unreadable: {e}")),
        }
    })?;
    let mut tree = Frontier::new(suite);
    let mut node: Option<String> = None;
    let mut verified_cps: Vec<Checkpoint> = Vec::new();
    let mut next_cp = 0usize;
    let mut expect_seq = 1u64;
    let mut failure: Option<VerifyError> = None;
    let mut check_cps = |tree: &Frontier,
                         node: &str,
                         schedule: &mut Schedule,
                         failure: &mut Option<VerifyError>| {
        while next_cp < stored.len() && stored[next_cp].size == tree.size() {
            let s = &stored[next_cp];
            let signer = schedule.in_force().clone();
            match schedule.checkpoint(&s.note, s.size, &checkpoint::origin(node)) {
                Err(ScheduleError::Checkpoint(e)) => {
                    *failure = Some(at(
                        CHECKPOINTS,
                        next_cp + 1,
                        format!(
                            "checkpoint of size {}: {e} (the key in force is {})",
                            s.size,
                            signer.fingerprint()
                        ),
                    ));
                    return;
                }
                Err(ScheduleError::OldKeyMismatch {
                    seq,
                    named,
                    in_force,
                }) => {
                    *failure = Some(at(
                        CHECKPOINTS,
                        next_cp + 1,
                        format!(
                            "the key_switched record at seq {seq} names the old key {named}, but the key in force is {in_force}"
                        ),
                    ));
                    return;
                }
                Ok(cp) => {
                    if hex::encode(cp.root) != s.root
                        || cp.size != s.size
                        || cp.time_ms != s.time_ms
                    {
                        *failure = Some(at(
                            CHECKPOINTS,
                            next_cp + 1,
                            "stored size, root or time differs from the signed note",
                        ));
                        return;
                    }
                    if cp.root != tree.root() {
                        *failure = Some(at(
                            CHECKPOINTS,
                            next_cp + 1,
                            format!(
                                "signed root at size {} does not match the records: a record up to seq {} was changed, removed or added",
                                cp.size, cp.size
                            ),
                        ));
                        return;
                    }
                    if key == Some(&signer) {
                        pin_signed = true;
                    }
                    verified_cps.push(cp);
                }
            }
            next_cp += 1;
        }
        if next_cp < stored.len() && stored[next_cp].size < tree.size() {
            *failure = Some(at(
                CHECKPOINTS,
                next_cp + 1,
                "checkpoints are out of order or duplicated",
            ));
        }
    };
    for_each_line(dir, |file, line_no, line| {
        if failure.is_some() {
            return Ok(());
        }
        let rec: Record = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) => {
                failure = Some(at(
                    file,
                    line_no,
                    format!("not a valid record ({e}): changed or truncated"),
                ));
                return Ok(());
            }
        };
        if rec.seq != expect_seq {
            let what = if rec.seq < expect_seq {
                "duplicated or reordered record"
            } else {
                "removed record(s) or reordered record"
            };
            failure = Some(at(
                file,
                line_no,
                format!("seq {} where {expect_seq} was expected: {what}", rec.seq),
            ));
            return Ok(());
        }
        match &node {
            None => node = Some(rec.node.clone()),
            Some(n) if *n != rec.node => {
                failure = Some(at(
                    file,
                    line_no,
                    format!("record of node {:?} in the log of {n:?}", rec.node),
                ));
                return Ok(());
            }
            Some(_) => {}
        }
        schedule.record(rec.seq, rec.event, rec.detail.as_deref());
        tree.push(leaf_hash(suite, line));
        expect_seq += 1;
        if let Some(n) = &node {
            check_cps(&tree, n, &mut schedule, &mut failure);
        }
        Ok(())
    })?;
    if let Some(f) = failure {
        return Err(f);
    }
    if let Some(extra) = stored.get(next_cp) {
        return Err(at(
            CHECKPOINTS,
            next_cp + 1,
            format!(
                "a checkpoint covers {} records but the log holds {}: records at the end were removed (truncated or missing segment)",
                extra.size,
                tree.size()
            ),
        ));
    }
    if tree.size() > 0 && verified_cps.is_empty() {
        return Err(VerifyError::Log(format!(
            "{}: no signed checkpoint covers the {} records ({CHECKPOINTS} is missing or was emptied)",
            dir.display(),
            tree.size()
        )));
    }
    if let Some(k) = key
        && !verified_cps.is_empty()
        && !pin_signed
    {
        return Err(VerifyError::Log(format!(
            "the pinned key {} signed no checkpoint of this log",
            k.fingerprint()
        )));
    }
    let last = verified_cps.last().map(|c| c.size).unwrap_or(0);
    let (timeline, ignored_switches) = schedule.finish();
    Ok(Report {
        timeline,
        ignored_switches,
        node: node.unwrap_or_default(),
        records: tree.size(),
        segments: segs.len(),
        checkpoints: verified_cps.len(),
        last_checkpoint: last,
        unsigned_tail: tree.size() - last,
    })
}

/// Whether `pin` is a stranger to the log in `dir`: not among the keys it names, and not
/// the signer of its first checkpoint, which one of those keys signed.
fn foreign(dir: &Path, pin: &VerifyKey) -> bool {
    let Ok(own) = node_keys(dir) else {
        return false;
    };
    if own.contains(pin) {
        return false;
    }
    let Some(first) = checkpoints(dir).ok().and_then(|c| c.into_iter().next()) else {
        return false;
    };
    let Some(origin) = first.note.lines().next() else {
        return false;
    };
    let opens = |k: &VerifyKey| Checkpoint::open(&first.note, k, origin).is_ok();
    !opens(pin) && own.iter().any(opens)
}

/// The leaf hashes (with `suite`'s hash: the log's) of every record and the records' raw
/// lines (for proofs and witnesses).
pub fn leaves(
    dir: &Path,
    suite: crate::keys::suite::Suite,
) -> io::Result<Vec<(crate::core::merkle::Hash, Vec<u8>)>> {
    let mut out = Vec::new();
    for_each_line(dir, |_, _, line| {
        out.push((leaf_hash(suite, line), line.to_vec()));
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditLog, CheckpointPolicy, Entry, Event};
    use crate::core::id::ObjectId;
    use crate::keys::SigningKey;
    use std::sync::Arc;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn a_key_that_never_signed_the_log_is_named_apart_from_tampering() {
        let key = Arc::new(SigningKey::from_seed(&[3; 32]).unwrap());
        let other = SigningKey::from_seed(&[4; 32]).unwrap().verify_key();
        let dir = tempfile::tempdir().unwrap();
        let policy = CheckpointPolicy {
            records: 2,
            interval_ms: 1_000_000,
            segment_records: 100,
        };
        let log = AuditLog::open(dir.path(), "court", key.clone(), policy, None).unwrap();
        for i in 0..5u8 {
            let e = Entry::object("to-internet", ObjectId([i; 16]), "a.pdf");
            log.append(Event::ALL[0], e).unwrap();
        }
        log.checkpoint(true).unwrap();
        drop(log);
        verify(dir.path(), Some(&key.verify_key())).unwrap();
        match verify(dir.path(), Some(&other)) {
            Err(e @ VerifyError::NotSignedBy { .. }) => {
                let text = e.to_string();
                assert!(
                    text.starts_with("the log was not signed by this key"),
                    "{text}"
                );
                assert!(text.contains(&other.fingerprint()), "{text}");
                assert!(
                    text.contains(&format!("signed by {}", key.verify_key().fingerprint())),
                    "{text}"
                );
            }
            r => panic!("not told apart: {r:?}"),
        }
        // a changed log stays tampering, whichever key is given
        let seg = dir.path().join(segment_name(1));
        let text = std::fs::read_to_string(&seg).unwrap();
        std::fs::write(&seg, text.replacen("a.pdf", "b.pdf", 1)).unwrap();
        for pin in [Some(&other), Some(&key.verify_key()), None] {
            let r = verify(dir.path(), pin);
            assert!(
                matches!(r, Err(VerifyError::At { .. })),
                "pin {pin:?}: {r:?}"
            );
        }
    }

    /// A checkpoint line that no longer parses is named by its own line number, and the
    /// JSON reader's column, never "line 0" or the reader's "line 1".
    #[test]
    fn an_unreadable_checkpoint_is_named_by_its_line() {
        let key = Arc::new(SigningKey::from_seed(&[5; 32]).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let policy = CheckpointPolicy {
            records: 1,
            interval_ms: 1_000_000,
            segment_records: 100,
        };
        let log = AuditLog::open(dir.path(), "court", key.clone(), policy, None).unwrap();
        for i in 0..4u8 {
            let e = Entry::object("to-internet", ObjectId([i; 16]), "a.pdf");
            log.append(Event::ALL[0], e).unwrap();
            log.checkpoint(true).unwrap();
        }
        drop(log);
        let path = dir.path().join(CHECKPOINTS);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() >= 3, "{} checkpoints", lines.len());
        // the third line's first key loses its opening quote
        let broken: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if i == 2 {
                    l.replacen("{\"", "{", 1)
                } else {
                    l.to_string()
                }
            })
            .collect();
        std::fs::write(&path, broken.join("\n") + "\n").unwrap();
        match verify(dir.path(), None) {
            Err(e @ VerifyError::At { line: 3, .. }) => {
                let text = e.to_string();
                assert!(
                    text.starts_with("checkpoints.jsonl:3: unreadable: "),
                    "{text}"
                );
                assert!(text.ends_with("at column 2"), "{text}");
                assert!(!text.contains("line 1"), "{text}");
            }
            r => panic!("not named by its line: {r:?}"),
        }
    }

    /// Property: any sequence of appends (with rotations and checkpoints anywhere) verifies,
    /// and any single-byte change to any segment or checkpoint file does not.
    #[test]
    fn any_append_sequence_verifies_and_any_byte_change_does_not() {
        let key = Arc::new(SigningKey::from_seed(&[3; 32]).unwrap());
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        for case in 0..12 {
            let dir = tempfile::tempdir().unwrap();
            let policy = CheckpointPolicy {
                records: 1 + rng.next() % 20,
                interval_ms: 1_000_000,
                segment_records: 1 + rng.next() % 15,
            };
            let log = AuditLog::open(dir.path(), "court", key.clone(), policy, None).unwrap();
            let n = 1 + rng.next() % 60;
            for i in 0..n {
                let event = Event::ALL[(rng.next() % Event::ALL.len() as u64) as usize];
                let mut e = Entry::object(
                    "to-internet",
                    ObjectId([i as u8; 16]),
                    &format!("文件-{}.pdf", rng.next() % 1000),
                );
                e.size = Some(rng.next() % 100_000);
                log.append(event, e).unwrap();
                if rng.next().is_multiple_of(7) {
                    log.checkpoint(true).unwrap();
                }
                log.checkpoint(false).unwrap();
            }
            log.checkpoint(true).unwrap();
            drop(log);
            let report = verify(dir.path(), None).unwrap();
            assert_eq!(report.records, n, "case {case}");
            assert_eq!(report.unsigned_tail, 0);
            let mut files: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
                .collect();
            files.sort();
            for _ in 0..25 {
                let f = &files[(rng.next() % files.len() as u64) as usize];
                let original = std::fs::read(f).unwrap();
                let mut bytes = original.clone();
                let pos = (rng.next() % bytes.len() as u64) as usize;
                let old = bytes[pos];
                let mut new = rng.next() as u8;
                if new == old {
                    new ^= 0x20;
                }
                bytes[pos] = new;
                std::fs::write(f, &bytes).unwrap();
                assert!(
                    verify(dir.path(), None).is_err(),
                    "case {case}: byte {pos} of {} changed {old:#x} -> {new:#x} went unnoticed",
                    f.display()
                );
                std::fs::write(f, &original).unwrap();
            }
        }
    }
}
