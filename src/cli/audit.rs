//! `isogate audit …`: verify a log, query it, prove an object's records from it, check a
//! proof offline, reconcile a sender's log with its receiver's, export it. Each subcommand
//! is one function here and prints its own output.
//!
//! ```text
//!  audit verify       DIR            ─► read::verify        ─► summary line(s)
//!  audit query        DIR + filter   ─► query::print        ─► table | JSON lines | CSV
//!                     (--tz: times read and shown in that zone; bad value: exit 2)
//!  audit prove        DIR OBJECT_ID  ─► prove::prove        ─► proof (JSON)
//!  audit verify-proof PROOF          ─► prove::verify_proof ─► the proven records
//!  audit reconcile    SENDER RECEIVER─► reconcile           ─► differences; non-zero if any
//!  audit export       DIR + filter   ─► query::export       ─► JSON lines as logged | syslog
//!                     + --after SEQ / --cursor FILE          ─► stderr: exported=N last_seq=S
//!  audit report       DIR + period   ─► report::Builder     ─► text | CSV | JSON | HTML
//! ```

use crate::audit::query::FilterArgs;
use crate::audit::{prove, query, read, reconcile, report, report_render, when};
use crate::keys::VerifyKey;
use anyhow::{Context, Result, bail};
use jiff::tz::TimeZone;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

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

/// The current time, for relative time arguments (`-1h`, `today`).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Reads `--tz` and the filter arguments; a value that names nothing is a usage error: it is
/// printed here and the command exits with status 2 (`Err(code)`).
fn filter_of(args: &FilterArgs, tz: Option<&str>) -> Result<(query::Filter, TimeZone), ExitCode> {
    let usage = |e: &dyn std::fmt::Display| {
        eprintln!("isogate: error: {e}");
        ExitCode::from(2)
    };
    let tz = when::zone(tz).map_err(|e| usage(&format_args!("--tz: {e}")))?;
    let filter = query::Filter::from_args(args, &tz, now_ms()).map_err(|e| usage(&e))?;
    Ok((filter, tz))
}

/// `audit query`: prints the records of the log in `dir` that match every filter in
/// `args`, in `format`, times in the zone `tz` (default: the system's).
///
/// Exit status 2 when a filter value or the zone names nothing (the message lists the valid
/// values).
///
/// # Errors
/// The log cannot be read or the output written.
pub fn query(
    dir: &Path,
    args: &FilterArgs,
    tz: Option<&str>,
    format: query::Format,
) -> Result<ExitCode> {
    let (filter, tz) = match filter_of(args, tz) {
        Ok(f) => f,
        Err(code) => return Ok(code),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (_, scan) = query::print(dir, &filter, format, &tz, &mut out)
        .with_context(|| format!("querying {}", dir.display()))?;
    hash_hint(dir, &filter);
    Ok(check_channels(&scan, &filter))
}

/// A warning on standard error when the content hashes searched are all of the other
/// suite's kind than the log's (`--sha256` on a `gm` log, whose records name `sm3`, or the
/// reverse): such a search finds nothing, and a hash pasted from `sha256sum` must not read
/// as a file that never crossed.
fn hash_hint(dir: &Path, filter: &query::Filter) {
    let Ok(keys) = crate::audit::read::node_keys(dir) else {
        return;
    };
    let Some(suite) = keys.first().map(|k| k.suite()) else {
        return;
    };
    // (the log's own hash list, the other's, and the other's option)
    let (mine, given, other) = match suite {
        crate::keys::suite::Suite::Gm => (&filter.sm3s, &filter.sha256s, "--sha256"),
        crate::keys::suite::Suite::Default => (&filter.sha256s, &filter.sm3s, "--sm3"),
    };
    if !given.is_empty() && mine.is_empty() {
        eprintln!(
            "isogate: warning: this log is of the {suite} suite: its records name the content's {} (`--{}`), so {other} finds none of them",
            suite.hash(),
            suite.hash_field()
        );
    }
}

/// A `--channel`/`--not-channel` value that no record of the log names: a warning on
/// standard error listing the channels it does name, and exit status 2 when none of the
/// `--channel` values is named (a typo must not read as a quiet period); success otherwise.
fn check_channels(scan: &query::Scan, filter: &query::Filter) -> ExitCode {
    let unknown = scan.unknown_channels(filter);
    if unknown.is_empty() {
        return ExitCode::SUCCESS;
    }
    let known: Vec<&str> = scan.channels.iter().map(String::as_str).collect();
    let known = if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    };
    let none_known =
        !filter.channels.is_empty() && filter.channels.iter().all(|c| unknown.contains(c));
    let what = if none_known { "error" } else { "warning" };
    eprintln!(
        "isogate: {what}: no record of this log names the channel(s) {}; it names: {known}",
        unknown.join(", ")
    );
    if none_known {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
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
            r.sha256.as_deref().or(r.sm3.as_deref()).unwrap_or("")
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
    if !r.waiting.is_empty() {
        println!(
            "waiting for approval on the sender (not expected yet): {}",
            r.waiting.len()
        );
        for i in &r.waiting {
            println!("  {} {} {}", i.object_id, i.channel, i.name);
        }
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

/// `audit export`: writes the records of the log in `dir` that match every filter in
/// `args` (with `--after SEQ`: only later ones) to standard output in `format`, one per
/// line, and then `exported=N last_seq=S` on standard error: `S` is the cursor to pass as
/// `--after` next time (the one given, or 0, when nothing new was exported).
///
/// `cursor`: a file that keeps the cursor between runs: read for `--after` when that is not
/// given (a missing file is the start of the log), written (atomically) once the output is
/// flushed.
///
/// Exit status 2 when a filter value, the zone or the cursor file's content names nothing.
///
/// # Errors
/// The log or the cursor file cannot be read, or the output or the cursor file written.
pub fn export(
    dir: &Path,
    args: &FilterArgs,
    tz: Option<&str>,
    format: query::ExportFormat,
    cursor: Option<&Path>,
) -> Result<ExitCode> {
    let mut args = args.clone();
    if let (None, Some(path)) = (args.after, cursor) {
        match std::fs::read_to_string(path) {
            Ok(text) => match text.trim().parse::<u64>() {
                Ok(seq) => args.after = Some(seq),
                Err(_) => {
                    eprintln!(
                        "isogate: error: {}: not a cursor (a sequence number)",
                        path.display()
                    );
                    return Ok(ExitCode::from(2));
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    let (filter, _) = match filter_of(&args, tz) {
        Ok(f) => f,
        Err(code) => return Ok(code),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let done = query::export(dir, &filter, format, &mut out)
        .with_context(|| format!("exporting {}", dir.display()))?;
    let last = done.last_seq.or(args.after).unwrap_or(0);
    if let Some(after) = args.after
        && after > done.scan.last_seq.unwrap_or(0)
    {
        // a reset or replaced log, or a mistyped cursor: nothing would ever be exported
        eprintln!(
            "isogate: error: --after {after} is past the last record of this log ({}): a log started anew, another node's log, or a wrong cursor{}; nothing exported",
            done.scan
                .last_seq
                .map_or("none".to_string(), |s| s.to_string()),
            cursor.map_or(String::new(), |p| format!(" (cursor {})", p.display()))
        );
        return Ok(ExitCode::from(2));
    }
    if let Some(path) = cursor {
        write_cursor(path, last).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!("exported={} last_seq={last}", done.records);
    Ok(check_channels(&done.scan, &filter))
}

/// Writes the cursor file: a temporary file beside it, synced, then renamed over it.
fn write_cursor(path: &Path, seq: u64) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    {
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{seq}")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
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

/// The default length of a report's period: 7 calendar days in the report's zone.
pub const REPORT_DAYS: i64 = 7;

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
    let since =
        time(&o.since, "--since")?.unwrap_or_else(|| when::days_before(until, REPORT_DAYS, &tz));
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
    if let Some(peer) = &o.peer {
        // the same node's log twice (a copy, or the folder itself) would read as a peer that
        // witnessed checkpoints this log "no longer matches": say what it is instead
        let own = |d: &Path| std::fs::read(d.join(crate::audit::NODE_PUB)).ok();
        if own(dir).is_some() && own(dir) == own(peer) {
            bail!(
                "--peer {}: that folder holds this node's own log (the same node.pub as {}); give the other node's audit folder",
                peer.display(),
                dir.display()
            );
        }
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
