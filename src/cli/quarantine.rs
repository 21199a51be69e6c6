//! `isogate quarantine list | show | release | purge`: the security officer's work on a
//! node's quarantine. `list` and `show` only read (the node may be stopped); `release` and
//! `purge` ask the running node, the audit log's one writer, through its state directory.
//!
//! ```text
//! list  ─► quarantine::list (reason files) ─► filters ─► table | JSON lines
//! show  ─► quarantine::find ─► reason file + the object's audit records (read only)
//! release ID / purge ID… | --older-than AGE
//!       ─► node running? (its state lock) ─► Desk::submit ─► state/quarantine-requests/<n>.req
//!       ─► wait for <n>.out (--wait) ─► print (every cell escaped: `audit::query::cell`)
//!          not claimed by then: withdrawn (unlink <n>.req wins: nothing changed)
//!          claimed: wait on, until answered, the node stops, or 600 s in all
//! ```

use crate::audit::query::cell;
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

/// The configuration for `list` and `show`, which only read the node's folders: the private
/// keys are left unread, so an auditor (group `isogate-audit`) runs them without them.
fn load_for_reading(config: &Path) -> Result<Config> {
    Config::load_without_private_keys(config).map_err(|p| anyhow!("{}: {p}", config.display()))
}

/// The cut-off time of `--older-than`: an age (`30d`, `1h30m`: that long before now) or any
/// time `audit::when` reads.
///
/// # Errors
/// Neither an age nor a time.
pub fn cutoff(text: &str, tz: &TimeZone, now_ms: u64) -> Result<u64> {
    let t = text.trim();
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
        bail!(
            "--older-than {t}: give a unit ({t}d, {t}h, {t}m) or a time; a bare number is ambiguous"
        );
    }
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

/// Refuses a `--channel` that is not one of the node's quarantine folders, listing them.
///
/// # Errors
/// Not a channel of this node nor `_unverified`.
fn check_channel(cfg: &Config, c: &str) -> Result<()> {
    if !cfg.channel(c).is_some_and(|c| c.is_files()) && c != quarantine::UNVERIFIED {
        let known: Vec<&str> = cfg.file_channels().map(|c| c.name.as_str()).collect();
        bail!(
            "--channel {c}: not a channel of this node; use one of {}, {}",
            known.join(", "),
            quarantine::UNVERIFIED
        );
    }
    Ok(())
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
    if let Some(c) = &filter.channel {
        check_channel(cfg, c)?;
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
fn json_of(e: &Listed, tz: &TimeZone, now_ms: u64, seals: bool) -> serde_json::Value {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("time".into(), when::format(e.time_ms, tz).into());
        o.insert(
            "age_s".into(),
            (now_ms.saturating_sub(e.time_ms) / 1000).into(),
        );
        o.insert(
            "releasable".into(),
            match e.releasable_by(seals) {
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
    let cfg = load_for_reading(config)?;
    let tz = when::zone(tz)?;
    let now = crate::now_ms();
    let found = entries(&cfg, filter, &tz, now)?;
    let seals = cfg.node.data_key.is_some();
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            for e in &found {
                writeln!(out, "{}", json_of(e, &tz, now, seals))?;
            }
        }
        Format::Table => {
            for l in table(&found, &tz, now) {
                writeln!(out, "{l}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The lines of `list`'s table: a head, one line per entry, a count. Every cell from a
/// reason file is shown through [`cell`] (control and bidi characters escaped), as `audit
/// query` shows its table: a name or detail never moves a terminal's cursor nor retitles it.
fn table(found: &[Listed], tz: &TimeZone, now: u64) -> Vec<String> {
    let rows: Vec<[String; 10]> = found
        .iter()
        .map(|e| {
            [
                when::format(e.time_ms, tz),
                age(now.saturating_sub(e.time_ms)),
                cell(&e.channel, None),
                cell(&e.object_id, None),
                cell(&e.side, None),
                cell(&e.reason, None),
                e.size.map_or_else(|| "-".into(), |s| s.to_string()),
                e.kind.as_str().to_string(),
                cell(&e.name, None),
                cell(&e.detail, None),
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
    let mut out = vec![line(head.to_vec())];
    for r in &rows {
        out.push(line(r.iter().map(String::as_str).collect()));
    }
    let n = rows.len();
    out.push(format!(
        "({n} {})",
        if n == 1 { "entry" } else { "entries" }
    ));
    out
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
    show_to(config, id, tz, &mut std::io::stdout().lock())
}

/// [`show`], written to `out`.
fn show_to(config: &Path, id: &str, tz: Option<&str>, out: &mut dyn Write) -> Result<ExitCode> {
    let cfg = load_for_reading(config)?;
    let tz = when::zone(tz)?;
    let id = id.trim().to_ascii_lowercase();
    if crate::core::id::ObjectId::parse(&id).is_none() {
        bail!("{id}: not an object id (32 hex digits; see `isogate quarantine list`)");
    }
    let dirs = crate::node::desk::quarantine_dirs(&cfg);
    let records = records_of(&cfg.node.audit_dir, &id)?;
    let now = crate::now_ms();

    match quarantine::find(&dirs, &id)? {
        Some(e) => {
            let releasable = match e.releasable_by(cfg.node.data_key.is_some()) {
                Ok(()) => {
                    if e.side == "receiver" {
                        "yes (it is inspected again with this node's policy in force)".to_string()
                    } else {
                        "yes (it crosses again through the full policy of both nodes)".to_string()
                    }
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
                (
                    "content",
                    match &e.at_rest {
                        Some(how) => format!("{} ({how})", e.path.display()),
                        None => e.path.display().to_string(),
                    },
                ),
                ("reason file", e.reason_path.display().to_string()),
                ("releasable", releasable),
            ];
            for (k, v) in fields {
                writeln!(out, "{:<12} {}", format!("{k}:"), cell(&v, None))?;
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
        writeln!(out, "{}", cell(&line, None))?;
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
    if let Some(c) = &request.channel {
        check_channel(&cfg, c)?;
    }
    if !node_running(&cfg.node.state_dir)? {
        bail!(
            "node {} is not running: start it (`isogate run --config {}`, or systemctl start isogate); only the running node changes its quarantine, and audits who did",
            cfg.node.name,
            config.display()
        );
    }
    let desk = Desk::paths(&cfg.node.state_dir);
    // a node that has just started makes its request folder within a second
    let made_by = Instant::now() + Duration::from_secs(5);
    while !desk.requests_dir().is_dir() && Instant::now() < made_by {
        std::thread::sleep(Duration::from_millis(100));
    }
    let path = desk.submit(request).with_context(|| {
        format!(
            "cannot queue the request in {} (run it as root or as the node's service user, e.g. `sudo -u isogate isogate quarantine …`; the node refuses requests from anyone else)",
            cfg.node.state_dir.display()
        )
    })?;
    let answer = wait_for(&desk, &path, wait, HARD_LIMIT, || {
        node_running(&cfg.node.state_dir).unwrap_or(true)
    })
    .map_err(|e| anyhow!("node {}: {e}", cfg.node.name))?;
    for l in &answer.lines {
        println!("{}", cell(l, None));
    }
    Ok(if answer.failed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// The longest the command waits for an answer once the node has taken the request (a
/// release inspects the whole entry again: a large file takes a while).
const HARD_LIMIT: Duration = Duration::from_secs(600);

/// Why no answer came.
#[derive(Debug, thiserror::Error)]
enum NoAnswer {
    /// Not taken within the wait, and withdrawn: nothing changed.
    #[error(
        "gave no answer within {0} s (is it running, and on this state directory?); the request was withdrawn and nothing was changed"
    )]
    Withdrawn(u64),
    /// Taken, and then no answer came.
    #[error(
        "took the request but gave no answer ({0}); what it did is in its audit log (`isogate quarantine show ID`, `isogate audit query --event quarantine_released,quarantine_release_refused,quarantine_purged`)"
    )]
    Lost(&'static str),
    /// The request or its answer cannot be read or removed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Waits for the answer to a request: until `wait`, then withdraws it if the node has not
/// taken it (nothing changed); once taken, waits while the node works on it, up to
/// `hard_limit` in all, and stops early when the node stops or the request vanishes
/// without an answer.
fn wait_for(
    desk: &Desk,
    path: &Path,
    wait: Duration,
    hard_limit: Duration,
    running: impl Fn() -> bool,
) -> std::result::Result<Answer, NoAnswer> {
    let answer_path = Desk::answer_path(path);
    let taken = Desk::taken_path(path);
    let started = Instant::now();
    let mut withdrawn_tried = false;
    loop {
        if let Ok(bytes) = std::fs::read(&answer_path) {
            let _ = std::fs::remove_file(&answer_path);
            return serde_json::from_slice(&bytes).map_err(|e| {
                NoAnswer::Io(std::io::Error::other(format!(
                    "{}: not an answer: {e}",
                    answer_path.display()
                )))
            });
        }
        let elapsed = started.elapsed();
        if elapsed >= wait && !withdrawn_tried {
            if desk.withdraw(path)? {
                return Err(NoAnswer::Withdrawn(wait.as_secs()));
            }
            // taken: its answer comes
            withdrawn_tried = true;
        }
        if withdrawn_tried {
            if elapsed >= wait.max(hard_limit) {
                return Err(NoAnswer::Lost("the command's time limit ran out"));
            }
            if !taken.exists() && !answer_path.exists() {
                return Err(NoAnswer::Lost("the request is gone"));
            }
            if !running() {
                return Err(NoAnswer::Lost("the node stopped"));
            }
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

    #[test]
    fn a_bare_number_is_not_an_age() {
        let err = cutoff("30", &TimeZone::UTC, 40 * 86_400_000).unwrap_err();
        assert!(err.to_string().contains("30d"), "{err}");
    }

    fn purge_of(ids: Vec<String>, before_ms: Option<u64>) -> Request {
        Request {
            action: Action::Purge,
            ids,
            before_ms,
            channel: None,
            user: "officer1".into(),
            note: None,
        }
    }

    #[test]
    fn the_wait_for_an_answer_is_bounded() {
        let t = tempfile::tempdir().unwrap();
        let desk = Desk::paths(t.path());
        desk.open().unwrap();
        let r = purge_of(vec![], Some(1));
        let short = Duration::from_millis(300);
        // not taken: withdrawn at the end of the wait, nothing changed
        let q = desk.submit(&r).unwrap();
        let got = wait_for(&desk, &q, Duration::ZERO, short, || true);
        assert!(matches!(got, Err(NoAnswer::Withdrawn(0))), "{got:?}");
        assert!(desk.take().is_none());
        // taken and never answered (the answer could not be written): the hard limit ends it
        let q = desk.submit(&r).unwrap();
        let taken = desk.take().unwrap();
        let got = wait_for(&desk, &q, Duration::ZERO, short, || true);
        assert!(
            matches!(got, Err(NoAnswer::Lost(m)) if m.contains("time limit")),
            "{got:?}"
        );
        // the node stopped meanwhile: said at once
        let got = wait_for(&desk, &q, Duration::ZERO, Duration::from_secs(600), || {
            false
        });
        assert!(
            matches!(got, Err(NoAnswer::Lost(m)) if m.contains("stopped")),
            "{got:?}"
        );
        // answered: the answer
        let answer = Answer {
            lines: vec!["done".into()],
            failed: 0,
        };
        assert!(desk.answer(&taken.path, &answer));
        assert_eq!(
            wait_for(&desk, &q, Duration::ZERO, short, || true).unwrap(),
            answer
        );
    }

    #[test]
    fn the_desk_of_a_lab_node_escapes_dedupes_and_checks_who_asks() {
        use crate::core::reason::{Reason, Refusal, Side};
        use crate::node::desk::{self, Sides};
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, 25600, None).unwrap();
        let config = lab.join("court.toml");
        let cfg = load(&config).unwrap();
        // a typo in --channel is an error that lists the channels, as for `list`
        let typo = check_channel(&cfg, "to-internt").unwrap_err().to_string();
        assert!(
            typo.contains("to-internet") && typo.contains("_unverified"),
            "{typo}"
        );
        let node = crate::node::Node::open(cfg.clone()).unwrap();
        let d = Desk::paths(&cfg.node.state_dir);
        d.open().unwrap();
        let quarantine_dir = cfg.channel("to-internet").unwrap().quarantine.clone();
        let put = |n: u8, name: &str| {
            let src = dir.path().join(format!("f{n}"));
            std::fs::write(&src, b"content").unwrap();
            let id = crate::core::id::ObjectId([n; 16]);
            let subject = quarantine::Subject {
                id,
                channel: "to-internet",
                name,
            };
            let refusal = Refusal::new(Reason::KeywordMatch, "\u{1b}[2Jmatched");
            quarantine::put(
                &quarantine_dir,
                &subject,
                Some(quarantine::Held::Entry(&src)),
                "court",
                Side::Sender,
                &refusal,
                None,
            )
            .unwrap();
            id.to_string()
        };
        // a publisher's name with an OSC sequence is shown escaped, never raw
        let evil = put(1, "\u{1b}]0;owned\u{7}判决.pdf");
        let now = crate::now_ms();
        let found = entries(&cfg, &ListFilter::default(), &TimeZone::UTC, now).unwrap();
        let lines = table(&found, &TimeZone::UTC, now).join("\n");
        assert!(
            !lines.contains('\u{1b}') && !lines.contains('\u{7}'),
            "{lines}"
        );
        assert!(lines.contains("\\u{1b}]0;owned"), "{lines}");
        let mut shown = Vec::new();
        show_to(&config, &evil, Some("UTC"), &mut shown).unwrap();
        let shown = String::from_utf8(shown).unwrap();
        assert!(
            !shown.contains('\u{1b}') && shown.contains("判决.pdf"),
            "{shown}"
        );
        let sides = Sides {
            sender: None,
            receiver: None,
        };
        let serve_one = |r: &Request, owner: Option<u32>| -> Answer {
            let q = d.submit(r).unwrap();
            if let Some(uid) = owner {
                std::os::unix::fs::chown(&q, Some(uid), None).unwrap();
            }
            desk::serve(&node, &sides);
            let a = serde_json::from_slice(&std::fs::read(Desk::answer_path(&q)).unwrap());
            std::fs::remove_file(Desk::answer_path(&q)).unwrap();
            a.unwrap()
        };
        let events = |id: &str, event: crate::audit::Event| {
            records_of(&cfg.node.audit_dir, id)
                .unwrap()
                .iter()
                .filter(|r| r.event == event)
                .count()
        };
        // someone else's request (only root can make one here) is refused, and audited
        let other = put(2, "b.txt");
        if rustix::process::geteuid().is_root() {
            let mut release = purge_of(vec![other.clone()], None);
            release.action = Action::Release;
            for r in [purge_of(vec![other.clone()], None), release] {
                let a = serve_one(&r, Some(54_321));
                assert_eq!(a.failed, 1);
                assert!(a.lines[0].contains("uid 54321"), "{a:?}");
            }
            assert!(
                quarantine::find(std::slice::from_ref(&quarantine_dir), &other)
                    .unwrap()
                    .is_some()
            );
            let refused = records_of(&cfg.node.audit_dir, "uid 54321").unwrap();
            assert_eq!(refused.len(), 1, "the release is audited, the purge logged");
            assert_eq!(
                refused[0].event,
                crate::audit::Event::QuarantineReleaseRefused
            );
        }
        // an id named twice and older than the cut-off: purged, and recorded, once
        let a = serve_one(
            &purge_of(vec![evil.clone(), evil.clone()], Some(now + 86_400_000)),
            None,
        );
        assert_eq!(a.failed, 0, "{a:?}");
        assert_eq!(events(&evil, crate::audit::Event::QuarantinePurged), 1);
        assert_eq!(events(&other, crate::audit::Event::QuarantinePurged), 1);
    }
}
