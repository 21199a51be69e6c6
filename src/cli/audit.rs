//! `isogate audit …`: verify a log, query it, prove an object's records from it, check a
//! proof offline, reconcile a sender's log with its receiver's, export it. Each subcommand
//! is one function here and prints its own output.
//!
//! ```text
//!  audit verify       DIR            ─► read::verify        ─► summary line(s)
//!  audit query        DIR + filter   ─► read_all ─► filter  ─► table | JSON lines | CSV
//!  audit prove        DIR OBJECT_ID  ─► prove::prove        ─► proof (JSON)
//!  audit verify-proof PROOF          ─► prove::verify_proof ─► the proven records
//!  audit reconcile    SENDER RECEIVER─► reconcile           ─► differences; non-zero if any
//!  audit export       DIR            ─► read::for_each_line ─► JSON lines, as logged
//! ```

use crate::audit::{prove, query, read, reconcile};
use crate::keys::VerifyKey;
use anyhow::{Context, Result, anyhow, bail};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON record per line, exactly as logged.
    Jsonl,
}

/// The filters of `audit query`, as given on the command line; a record must match every
/// one that is set.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// At or after this time (RFC 3339, or ms since the epoch).
    pub since: Option<String>,
    /// Before this time (RFC 3339, or ms since the epoch).
    pub until: Option<String>,
    /// Channel name.
    pub channel: Option<String>,
    /// Event name (taken, accepted, …).
    pub event: Option<String>,
    /// accept or reject.
    pub verdict: Option<String>,
    /// Reason code.
    pub reason: Option<String>,
    /// Name pattern (`*` and `?`).
    pub name: Option<String>,
    /// Object id.
    pub object: Option<String>,
    /// SHA-256 of the content (hex, either case).
    pub sha256: Option<String>,
}

/// The exit status of `audit verify`, `prove` and `verify-proof` when the key given never
/// signed the log or proof, which other keys did (1 stays for a changed log or proof).
pub const WRONG_KEY: u8 = 3;

/// Says on standard error that the key given is not the signer's, and gives [`WRONG_KEY`].
fn wrong_key(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("isogate: WRONG KEY: {e}");
    ExitCode::from(WRONG_KEY)
}

/// Loads the public key to pin, when one is named.
fn load_key(path: Option<&Path>) -> Result<Option<VerifyKey>> {
    path.map(VerifyKey::load).transpose().map_err(Into::into)
}

/// `audit verify`: recomputes the log in `dir` and its signed checkpoints, pinning `key`
/// (default: the log's own `node.pub`), and prints a summary.
///
/// # Errors
/// The key cannot be loaded, or the log is tampered with or unreadable (`TAMPERED: …`).
/// A key that never signed the log, which the log's own keys did, is said apart (`WRONG
/// KEY: the log was not signed by this key …`, exit status [`WRONG_KEY`]).
pub fn verify(dir: &Path, key: Option<&Path>) -> Result<ExitCode> {
    let key = load_key(key)?;
    let r = match read::verify(dir, key.as_ref()) {
        Ok(r) => r,
        Err(e @ read::VerifyError::NotSignedBy { .. }) => return Ok(wrong_key(&e)),
        Err(e) => bail!("TAMPERED: {e}"),
    };
    println!(
        "ok: {} records of node {} in {} segment(s), {} signed checkpoint(s), the last covering {} records",
        r.records, r.node, r.segments, r.checkpoints, r.last_checkpoint
    );
    if r.unsigned_tail > 0 {
        println!(
            "note: the last {} record(s) are not yet covered by a checkpoint (the node is running, or stopped uncleanly)",
            r.unsigned_tail
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `audit query`: prints the records of the log in `dir` that match every filter set in
/// `options`, in `format`.
///
/// # Errors
/// A time or event filter does not parse, or the log cannot be read or the output written.
pub fn query(dir: &Path, options: QueryOptions, format: query::Format) -> Result<ExitCode> {
    let QueryOptions {
        since,
        until,
        channel,
        event,
        verdict,
        reason,
        name,
        object,
        sha256,
    } = options;
    let time = |s: &Option<String>, flag: &str| -> Result<Option<u64>> {
        s.as_deref()
            .map(|v| {
                query::parse_time(v).ok_or_else(|| {
                    anyhow!(
                        "{flag} {v:?}: use RFC 3339 (2026-11-26T08:00:00Z) or ms since the epoch"
                    )
                })
            })
            .transpose()
    };
    let event = event
        .as_deref()
        .map(|e| query::parse_event(e).ok_or_else(|| anyhow!("unknown event {e:?}")))
        .transpose()?;
    let filter = query::Filter {
        since_ms: time(&since, "--since")?,
        until_ms: time(&until, "--until")?,
        channel,
        event,
        verdict,
        reason,
        name,
        object_id: object,
        sha256: sha256.map(|s| s.to_lowercase()),
    };
    let records: Vec<_> = crate::audit::read_all(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .into_iter()
        .filter(|r| filter.matches(r))
        .collect();
    query::write(&mut std::io::stdout().lock(), &records, format)?;
    Ok(ExitCode::SUCCESS)
}

/// `audit prove`: writes an inclusion proof of the records of `object_id` in the log in
/// `dir` against its latest checkpoint, to `out` or standard output.
///
/// # Errors
/// The key cannot be loaded, the proof cannot be made, or it cannot be written.
pub fn prove(
    dir: &Path,
    object_id: &str,
    out: Option<&Path>,
    key: Option<&Path>,
) -> Result<ExitCode> {
    let key = load_key(key)?;
    let proof = match prove::prove(dir, object_id, key.as_ref()) {
        Ok(p) => p,
        Err(e @ prove::ProofError::NotSignedBy { .. }) => return Ok(wrong_key(&e)),
        Err(e) => return Err(e.into()),
    };
    let text = serde_json::to_string_pretty(&proof)? + "\n";
    match out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "proof of {} record(s) written to {}",
                proof.entries.len(),
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `audit verify-proof`: checks the proof in the file `proof` offline with the node's
/// public key in `key`, and prints the records it proves.
///
/// # Errors
/// The key or the proof cannot be read, or the proof does not hold (`INVALID: …`).
pub fn verify_proof(proof: &Path, key: &Path) -> Result<ExitCode> {
    let key = VerifyKey::load(key)?;
    let text =
        std::fs::read_to_string(proof).with_context(|| format!("reading {}", proof.display()))?;
    let doc: prove::Proof = serde_json::from_str(&text).context("not a proof document")?;
    let proven = match prove::verify_proof(&doc, &key) {
        Ok(p) => p,
        Err(e @ prove::ProofError::NotSignedBy { .. }) => return Ok(wrong_key(&e)),
        Err(e) => bail!("INVALID: {e}"),
    };
    println!(
        "ok: {} record(s) of object {} are in the log of {} (checkpoint of {} records)",
        proven.records.len(),
        doc.object_id,
        proven.checkpoint.origin,
        proven.checkpoint.size
    );
    for r in &proven.records {
        println!(
            "  seq {} {} {} {}",
            r.seq,
            r.event.as_str(),
            r.name.as_deref().unwrap_or(""),
            r.sha256.as_deref().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `audit reconcile`: compares the sending node's log in `sender` with the receiving
/// node's in `receiver`, pinning the sender's `key` (default: `sender/node.pub`), and
/// prints the differences. `strict`: no witnessed checkpoint is a failure too.
///
/// # Errors
/// A log or the key cannot be read, or the two logs do not reconcile.
pub fn reconcile(
    sender: &Path,
    receiver: &Path,
    key: Option<&Path>,
    strict: bool,
) -> Result<ExitCode> {
    let key = load_key(key)?;
    let r = reconcile::reconcile(sender, receiver, key.as_ref())?;
    println!("matched: {}", r.matched);
    println!(
        "sent but never landed or quarantined: {}",
        r.sent_not_landed.len()
    );
    for i in &r.sent_not_landed {
        println!("  {} {} {}", i.object_id, i.channel, i.name);
    }
    println!("landed but never sent: {}", r.landed_not_sent.len());
    for i in &r.landed_not_sent {
        println!("  {} {} {}", i.object_id, i.channel, i.name);
    }
    println!(
        "witnessed checkpoints matching the sender's log: {}",
        r.witness_ok
    );
    if !r.witness_mismatch.is_empty() {
        println!(
            "witnessed checkpoints the sender's log no longer matches (sizes): {:?}",
            r.witness_mismatch
        );
    }
    if r.retired > 0 {
        println!(
            "retired by the sender on a link with no return path (sent, nothing confirms): {}",
            r.retired
        );
    }
    println!("lost on the way and not landed since: {}", r.lost.len());
    for i in &r.lost {
        println!("  {} {} {}", i.object_id, i.channel, i.name);
    }
    if r.unwitnessed() {
        eprintln!(
            "warning: the receiver witnessed none of the sender's checkpoints: nothing corroborates the sender's log"
        );
    }
    if !r.is_clean() {
        bail!("the two logs do not reconcile")
    }
    if strict && r.unwitnessed() {
        bail!("no checkpoint of the sender was witnessed (--strict)")
    }
    Ok(ExitCode::SUCCESS)
}

/// `audit export`: writes the records of the log in `dir` to standard output in `format`.
///
/// # Errors
/// The log cannot be read or the output written.
pub fn export(dir: &Path, format: ExportFormat) -> Result<ExitCode> {
    let ExportFormat::Jsonl = format;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    read::for_each_line(dir, |_, _, line| {
        out.write_all(line)?;
        out.write_all(b"\n")
    })
    .with_context(|| format!("reading {}", dir.display()))?;
    Ok(ExitCode::SUCCESS)
}
