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
//!  audit report       DIR + period   ─► report::Builder     ─► text | CSV | JSON | HTML
//! ```

use crate::audit::{prove, query, read, reconcile, report, report_render, when};
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

/// Loads the public key to pin, when one is named.
fn load_key(path: Option<&Path>) -> Result<Option<VerifyKey>> {
    path.map(VerifyKey::load).transpose().map_err(Into::into)
}

/// `audit verify`: recomputes the log in `dir` and its signed checkpoints, pinning `key`
/// (default: the log's own `node.pub`), and prints a summary.
///
/// # Errors
/// The key cannot be loaded, or the log is tampered with or unreadable (`TAMPERED: …`).
pub fn verify(dir: &Path, key: Option<&Path>) -> Result<ExitCode> {
    let key = load_key(key)?;
    let r = read::verify(dir, key.as_ref()).map_err(|e| anyhow!("TAMPERED: {e}"))?;
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
    let proof = prove::prove(dir, object_id, key.as_ref())?;
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
    let proven = prove::verify_proof(&doc, &key).map_err(|e| anyhow!("INVALID: {e}"))?;
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

/// The options of `audit report`, as given on the command line.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Start of the period (any `audit::when` form; default: 7 days before `until`).
    pub since: Option<String>,
    /// End of the period, excluded (default: now).
    pub until: Option<String>,
    /// The zone of days and times (default: the system's zone).
    pub tz: Option<String>,
    /// Only these channels (empty: all).
    pub channels: Vec<String>,
    /// Output format.
    pub format: report_render::Format,
    /// Write the report here instead of standard output.
    pub out: Option<std::path::PathBuf>,
    /// The node's signing public key to pin when verifying the log.
    pub key: Option<std::path::PathBuf>,
    /// The peer node's audit directory: check that it witnessed this node's checkpoints.
    pub peer: Option<std::path::PathBuf>,
}

/// The default length of a report's period: 7 days, in ms.
pub const REPORT_DAYS_MS: u64 = 7 * 86_400_000;

/// `audit report`: sums up the log in `dir` over a period per day and channel, with the
/// log's verification and the peer's witness, and writes it in the format asked for.
///
/// # Errors
/// A time, zone or key does not parse, the log cannot be read or the report written; and,
/// after the report is written, when the log does not verify or the peer's witness shows a
/// mismatch (the report says so too).
pub fn report(dir: &Path, o: ReportOptions) -> Result<ExitCode> {
    let tz = when::zone(o.tz.as_deref())?;
    let now = crate::now_ms();
    let time = |s: &Option<String>, flag: &str| -> Result<Option<u64>> {
        s.as_deref()
            .map(|v| when::parse(v, &tz, now).with_context(|| flag.to_string()))
            .transpose()
    };
    let until = time(&o.until, "--until")?.unwrap_or(now);
    let since = time(&o.since, "--since")?.unwrap_or(until.saturating_sub(REPORT_DAYS_MS));
    if since >= until {
        bail!(
            "the period is empty: --since {} is not before --until {}",
            when::format(since, &tz),
            when::format(until, &tz)
        );
    }
    let key = load_key(o.key.as_deref())?;
    if !dir.is_dir() {
        bail!("{}: not an audit directory", dir.display());
    }
    let mut b = report::Builder::new(report::Params {
        since_ms: since,
        until_ms: until,
        tz: tz.clone(),
        channels: o.channels.clone(),
        now_ms: now,
    });
    // a line that is not a record is left out here; verification below says where it is
    read::for_each_line(dir, |_, _, line| {
        if let Ok(r) = serde_json::from_slice::<crate::audit::Record>(line) {
            b.add(&r);
        }
        Ok(())
    })
    .with_context(|| format!("reading {}", dir.display()))?;
    // a channel no record names is a typo, not an empty report
    let seen = b.seen_channels();
    if let Some(unknown) = o.channels.iter().find(|c| !seen.contains(*c)) {
        let known: Vec<&str> = seen.iter().map(String::as_str).collect();
        bail!(
            "--channel {unknown:?}: no record of this log names that channel; it names: {}",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    let verification =
        report::Verification::from_verify(&read::verify(dir, key.as_ref()), key.is_some());
    let mut witness = report::Witness::default();
    if let Some(peer) = &o.peer {
        witness.set_peer(
            reconcile::reconcile(dir, peer, key.as_ref())
                .map_err(|e| format!("{}: {e}", peer.display())),
        );
    }
    let rep = b.finish(verification, witness);
    match &o.out {
        Some(path) => {
            let mut buf = Vec::new();
            report_render::write(&mut buf, &rep, o.format)?;
            std::fs::write(path, buf).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("report written to {}", path.display());
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            report_render::write(&mut out, &rep, o.format)?;
        }
    }
    if !rep.verification.verified {
        bail!("the log does not verify: {}", rep.verification.detail);
    }
    if rep.witness.peer_failed() {
        bail!("the peer's witness: {}", rep.witness.peer_status());
    }
    Ok(ExitCode::SUCCESS)
}
