//! `isogate quarantine list | show | release | purge`: the security officer's work on a
//! node's quarantine. `list` and `show` only read (the node may be stopped); `release` and
//! `purge` ask the running node, the audit log's one writer, through its state directory.
//!
//! ```text
//! list  ─► quarantine::list (reason files) ─► filters ─► table | JSON lines
//! show  ─► quarantine::find ─► reason file + the object's audit records (read only)
//! release ID / purge ID… | --older-than AGE
//!       ─► node running? (its state lock) ─► Desk::submit ─► state/quarantine-requests/<n>.req
//!       ─► wait for <n>.out (--wait) ─► print; no answer: the request is withdrawn
//! ```

use crate::audit::{Record, when};
use crate::node::config::Config;
use crate::node::desk::{Action, Answer, Desk, MAX_NOTE, MAX_REQUEST_IDS, Request};
use crate::node::quarantine::{self, Listed};
use anyhow::{Context, Result, anyhow, bail};
use jiff::tz::TimeZone;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How `list` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// One JSON object per entry, one a line.
    Json,
}

/// The filters of `list`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this channel.
    pub channel: Option<String>,
    /// Only this reason code.
    pub reason: Option<String>,
    /// Only entries refused longer ago than this age (`30d`, `12h`) or before this time.
    pub older_than: Option<String>,
}

fn load(config: &Path) -> Result<Config> {
    Config::load(config).map_err(|p| anyhow!("{}: {p}", config.display()))
}

/// The cut-off time of `--older-than`: an age (`30d`, `1h30m`: that long before now) or any
/// time `audit::when` reads.
///
/// # Errors
/// Neither an age nor a time.
pub fn cutoff(text: &str, tz: &TimeZone, now_ms: u64) -> Result<u64> {
    let t = text.trim();
    let age_like = t.starts_with(|c: char| c.is_ascii_digit())
        && t.ends_with(|c: char| c.is_ascii_alphabetic());
    let as_time = if age_like {
        format!("-{t}")
    } else {
        t.to_string()
    };
    when::parse(&as_time, tz, now_ms).map_err(|e| {
        anyhow!("--older-than {text:?}: not an age (30d, 12h, 1h30m) nor a time ({e})")
    })
}

/// `45s`, `12m`, `3h 5m`, `4d 2h`.
pub fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Columns a text takes in a terminal: East Asian wide characters take two.
fn width(s: &str) -> usize {
    s.chars()
        .map(|c| match u32::from(c) {
            0x1100..=0x115F
            | 0x2E80..=0x303E
            | 0x3041..=0x33FF
            | 0x3400..=0x4DBF
            | 0x4E00..=0x9FFF
            | 0xA000..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6
            | 0x20000..=0x3FFFD => 2,
            _ => 1,
        })
        .sum()
}

fn pad(s: &str, w: usize) -> String {
    let mut out = s.to_string();
    out.extend(std::iter::repeat_n(' ', w.saturating_sub(width(s))));
    out
}

/// The entries of a node's quarantine that pass `filter`, oldest first.
///
/// # Errors
/// A quarantine folder cannot be read; `--older-than` does not parse.
pub fn entries(
    cfg: &Config,
    filter: &ListFilter,
    tz: &TimeZone,
    now_ms: u64,
) -> Result<Vec<Listed>> {
    let before = filter
        .older_than
        .as_deref()
        .map(|t| cutoff(t, tz, now_ms))
        .transpose()?;
    if let Some(c) = &filter.channel
        && cfg.channel(c).is_none()
        && c != quarantine::UNVERIFIED
    {
        let known: Vec<&str> = cfg.channels.iter().map(|c| c.name.as_str()).collect();
        bail!(
            "--channel {c}: not a channel of this node; use one of {}, {}",
            known.join(", "),
            quarantine::UNVERIFIED
        );
    }
    if let Some(r) = &filter.reason
        && crate::core::reason::Reason::ALL
            .iter()
            .all(|x| x.as_str() != r)
    {
        let codes: Vec<&str> = crate::core::reason::Reason::ALL
            .iter()
            .map(|r| r.as_str())
            .collect();
        bail!(
            "--reason {r}: not a reason code; use one of {}",
            codes.join(", ")
        );
    }
    let all = quarantine::list(&crate::node::desk::quarantine_dirs(cfg))?;
    Ok(all
        .into_iter()
        .filter(|e| filter.channel.as_ref().is_none_or(|c| *c == e.channel))
        .filter(|e| filter.reason.as_ref().is_none_or(|r| *r == e.reason))
        .filter(|e| before.is_none_or(|b| e.time_ms < b))
        .collect())
}

/// The JSON object `list --format json` prints for an entry.
fn json_of(e: &Listed, tz: &TimeZone, now_ms: u64) -> serde_json::Value {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("time".into(), when::format(e.time_ms, tz).into());
        o.insert(
            "age_s".into(),
            (now_ms.saturating_sub(e.time_ms) / 1000).into(),
        );
        o.insert(
            "releasable".into(),
            match e.releasable() {
                Ok(()) => serde_json::Value::Bool(true),
                Err(why) => why.to_string().into(),
            },
        );
    }
    v
}

/// `isogate quarantine list`: every entry with its channel, id, name, side, reason, detail,
/// size, age and time (in `--tz`).
///
/// # Errors
/// The configuration cannot be loaded; a filter or zone is invalid; the quarantine cannot
/// be read.
pub fn list(
    config: &Path,
    filter: &ListFilter,
    tz: Option<&str>,
    format: Format,
) -> Result<ExitCode> {
    let cfg = load(config)?;
    let tz = when::zone(tz)?;
    let now = crate::now_ms();
    let found = entries(&cfg, filter, &tz, now)?;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            for e in &found {
                writeln!(out, "{}", json_of(e, &tz, now))?;
            }
        }
        Format::Table => {
            let rows: Vec<[String; 10]> = found
                .iter()
                .map(|e| {
                    [
                        when::format(e.time_ms, &tz),
                        age(now.saturating_sub(e.time_ms)),
                        e.channel.clone(),
                        e.object_id.clone(),
                        e.side.clone(),
                        e.reason.clone(),
                        e.size.map_or_else(|| "-".into(), |s| s.to_string()),
                        e.kind.as_str().to_string(),
                        e.name.clone(),
                        e.detail.clone(),
                    ]
                })
                .collect();
            let head = [
                "TIME",
                "AGE",
                "CHANNEL",
                "OBJECT ID",
                "SIDE",
                "REASON",
                "SIZE",
                "KIND",
                "NAME",
                "DETAIL",
            ];
            let mut w: Vec<usize> = head.iter().map(|h| width(h)).collect();
            for r in &rows {
                for (wi, c) in w.iter_mut().zip(r) {
                    *wi = (*wi).max(width(c));
                }
            }
            let line = |cells: Vec<&str>| {
                let last = cells.len().saturating_sub(1);
                cells
                    .iter()
                    .zip(&w)
                    .enumerate()
                    .map(|(i, (c, wi))| {
                        if i == last {
                            c.to_string()
                        } else {
                            pad(c, *wi)
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("  ")
            };
            writeln!(out, "{}", line(head.to_vec()))?;
            for r in &rows {
                writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
            }
            let n = rows.len();
            writeln!(out, "({n} {})", if n == 1 { "entry" } else { "entries" })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Most records `show` prints about one entry (bounded memory on a large log).
const MAX_SHOWN: usize = 1000;

/// The audit records about an entry: its own, and those that name it (a release's new
/// object names the old id in its detail). Streams the log: only lines that hold the id are
/// parsed; at most [`MAX_SHOWN`] are kept.
fn records_of(audit_dir: &Path, id: &str) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    let needle = id.as_bytes();
    crate::audit::read::for_each_line(audit_dir, |_, _, line| {
        if out.len() < MAX_SHOWN
            && line.windows(needle.len()).any(|w| w == needle)
            && let Ok(r) = serde_json::from_slice::<Record>(line)
            && (r.object_id.as_deref() == Some(id)
                || r.detail.as_deref().is_some_and(|d| d.contains(id)))
        {
            out.push(r);
        }
        Ok(())
    })
    .with_context(|| format!("reading the audit log in {}", audit_dir.display()))?;
    Ok(out)
}

/// `isogate quarantine show ID`: the entry's reason file and its audit records.
///
/// # Errors
/// The configuration cannot be loaded; no entry has that id; the log cannot be read.
pub fn show(config: &Path, id: &str, tz: Option<&str>) -> Result<ExitCode> {
    let cfg = load(config)?;
    let tz = when::zone(tz)?;
    let id = id.trim().to_ascii_lowercase();
    if crate::core::id::ObjectId::parse(&id).is_none() {
        bail!("{id}: not an object id (32 hex digits; see `isogate quarantine list`)");
    }
    let dirs = crate::node::desk::quarantine_dirs(&cfg);
    let records = records_of(&cfg.node.audit_dir, &id)?;
    let now = crate::now_ms();
    let mut out = std::io::stdout().lock();
    match quarantine::find(&dirs, &id)? {
        Some(e) => {
            let releasable = match e.releasable() {
                Ok(()) => {
                    "yes (it crosses again through the full policy of both nodes)".to_string()
                }
                Err(why) => format!("no: {why}"),
            };
            let fields = [
                ("object id", e.object_id.clone()),
                ("channel", e.channel.clone()),
                ("name", e.name.clone()),
                ("node", e.node.clone()),
                ("side", e.side.clone()),
                ("reason", e.reason.clone()),
                ("detail", e.detail.clone()),
                (
                    "time",
                    format!(
                        "{} ({} ago)",
                        when::format(e.time_ms, &tz),
                        age(now.saturating_sub(e.time_ms))
                    ),
                ),
                ("kind", e.kind.as_str().to_string()),
                (
                    "size",
                    e.size.map_or_else(|| "-".into(), |s| format!("{s} bytes")),
                ),
                ("content", e.path.display().to_string()),
                ("reason file", e.reason_path.display().to_string()),
                ("releasable", releasable),
            ];
            for (k, v) in fields {
                writeln!(out, "{:<12} {v}", format!("{k}:"))?;
            }
        }
        None if records.is_empty() => bail!(
            "{id}: no such quarantine entry on {}, and no audit record names it (see `isogate quarantine list --config {}`)",
            cfg.node.name,
            config.display()
        ),
        None => writeln!(
            out,
            "{id}: no longer in the quarantine of {} (released or purged: see its records)",
            cfg.node.name
        )?,
    }
    writeln!(out, "\naudit records ({}):", records.len())?;
    for r in records {
        let mut line = format!(
            "  {:>6}  {}  {}",
            r.seq,
            when::format(r.time_ms, &tz),
            r.event.as_str()
        );
        if let Some(o) = r.object_id.as_deref().filter(|o| *o != id) {
            line.push_str(&format!("  object {o}"));
        }
        if let Some(reason) = r.reason {
            line.push_str(&format!("  {}", reason.as_str()));
        }
        if let Some(d) = &r.detail {
            line.push_str(&format!("  {d}"));
        }
        writeln!(out, "{line}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The user the command runs for: `SUDO_USER` (an officer working through sudo), else the
/// login name (`LOGNAME`, `USER`), else `unknown`. Recorded beside the request file's
/// owner uid, which the node reads itself.
pub fn stated_user() -> String {
    ["SUDO_USER", "LOGNAME", "USER"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Whether a node runs on this state directory: it holds the exclusive lock on
/// `<state_dir>/lock` while it runs.
fn node_running(state_dir: &Path) -> Result<bool> {
    let path = state_dir.join("lock");
    let file = match std::fs::OpenOptions::new().read(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(false),
        Err(std::fs::TryLockError::WouldBlock) => Ok(true),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// A release or purge: hands the request to the running node and prints its answer.
/// Exit 0: every entry asked for was released or purged; 2: some were not (the answer says
/// why); 1: no node runs, it did not answer in time, or the request is invalid.
///
/// # Errors
/// As said; the request cannot be written.
pub fn request(config: &Path, request: &Request, wait: Duration) -> Result<ExitCode> {
    let cfg = load(config)?;
    if request.ids.len() > MAX_REQUEST_IDS {
        bail!("at most {MAX_REQUEST_IDS} ids in one request");
    }
    if request
        .note
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTE)
    {
        bail!("--note: at most {MAX_NOTE} characters");
    }
    for id in &request.ids {
        if crate::core::id::ObjectId::parse(id).is_none() {
            bail!("{id}: not an object id (32 hex digits; see `isogate quarantine list`)");
        }
    }
    if !node_running(&cfg.node.state_dir)? {
        bail!(
            "node {} is not running: start it (`isogate run --config {}`, or systemctl start isogate); only the running node changes its quarantine, and audits who did",
            cfg.node.name,
            config.display()
        );
    }
    let desk = Desk::paths(&cfg.node.state_dir);
    let path = desk.submit(request).with_context(|| {
        format!(
            "cannot queue the request in {} (run as the node's user, or a member of its group)",
            cfg.node.state_dir.display()
        )
    })?;
    let answer_path = Desk::answer_path(&path);
    let started = Instant::now();
    let mut deadline = wait;
    loop {
        if let Ok(bytes) = std::fs::read(&answer_path) {
            let _ = std::fs::remove_file(&answer_path);
            let answer: Answer = serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: not an answer", answer_path.display()))?;
            for l in &answer.lines {
                println!("{l}");
            }
            return Ok(if answer.failed > 0 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            });
        }
        if started.elapsed() >= deadline {
            if desk.withdraw(&path)? {
                bail!(
                    "node {} gave no answer within {} s (is it running, and on this state directory?); the request was withdrawn and nothing was changed",
                    cfg.node.name,
                    wait.as_secs()
                );
            }
            // taken at the last moment: its answer comes
            deadline = wait + Duration::from_secs(30);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The request of `isogate quarantine release ID…`.
pub fn release_request(ids: &[String], note: Option<String>) -> Request {
    Request {
        action: Action::Release,
        ids: ids.iter().map(|i| i.trim().to_ascii_lowercase()).collect(),
        before_ms: None,
        channel: None,
        user: stated_user(),
        note,
    }
}

/// The request of `isogate quarantine purge (ID… | --older-than AGE [--channel C])`.
///
/// # Errors
/// Neither ids nor an age; `--older-than` or `--tz` does not parse.
pub fn purge_request(
    ids: &[String],
    older_than: Option<&str>,
    channel: Option<String>,
    tz: Option<&str>,
    note: Option<String>,
) -> Result<Request> {
    if ids.is_empty() && older_than.is_none() {
        bail!("name the entries to purge by object id, or give --older-than AGE (30d, 12h)");
    }
    let tz = when::zone(tz)?;
    let before_ms = older_than
        .map(|t| cutoff(t, &tz, crate::now_ms()))
        .transpose()?;
    Ok(Request {
        action: Action::Purge,
        ids: ids.iter().map(|i| i.trim().to_ascii_lowercase()).collect(),
        before_ms,
        channel,
        user: stated_user(),
        note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_cutoffs() {
        assert_eq!(age(45_000), "45s");
        assert_eq!(age(3 * 3_600_000 + 5 * 60_000), "3h 5m");
        assert_eq!(age(2 * 86_400_000 + 3_600_000), "2d 1h");
        let now = 40 * 86_400_000;
        assert_eq!(cutoff("30d", &TimeZone::UTC, now).unwrap(), 10 * 86_400_000);
        assert_eq!(
            cutoff("1970-01-02", &TimeZone::UTC, now).unwrap(),
            86_400_000
        );
        assert!(cutoff("soon", &TimeZone::UTC, now).is_err());
    }

    #[test]
    fn wide_names_take_two_columns() {
        assert_eq!(width("判决书.pdf"), 10);
        assert_eq!(pad("判决", 6), "判决  ");
    }

    #[test]
    fn purge_needs_ids_or_an_age() {
        assert!(purge_request(&[], None, None, Some("UTC"), None).is_err());
        let r = purge_request(&[], Some("7d"), Some("c".into()), Some("UTC"), None).unwrap();
        assert_eq!(r.action, Action::Purge);
        assert!(r.before_ms.is_some());
    }
}
