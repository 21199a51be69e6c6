//! `isogate audit query` and `export`: read filter arguments into a [`Filter`], match
//! records against it, and print them as a table, JSON lines or CSV, or export them as
//! logged (JSON lines) or as RFC 5424 syslog lines, after an incremental cursor.
//!
//! ```text
//!  FilterArgs (strings, as typed) ──► Filter::from_args ──► Filter   (bad value: FilterError
//!    --event a,b  --not-event c        when::parse(--since, --tz)     listing the valid ones)
//!
//!  audit dir ──► read::for_each_line ──► Record ──► Filter::matches ─┬► print(): table | json | csv
//!               (for_each_match: one record at a time)              └► export(): line as logged
//!                                                                        | syslog::format_exported(rec)
//! ```

use super::when::{self, WhenError};
use super::{Event, Record, read, syslog};
use crate::core::id::ObjectId;
use crate::core::reason::Reason;
use jiff::tz::TimeZone;
use serde::Serialize;
use std::io::{self, Write};
use std::path::Path;
use thiserror::Error;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// The verdicts a record can carry, as `--verdict` names them.
pub const VERDICTS: [&str; 2] = ["accept", "reject"];

/// Other words for a verdict that `--verdict` takes: `(alias, verdict)`. `refused` is not
/// one: it names an event (the sender's refusal only), so it is refused as a verdict with a
/// pointer to `--event`, never read as one of the two.
pub const VERDICT_ALIASES: [(&str, &str); 4] = [
    ("accepted", "accept"),
    ("allow", "accept"),
    ("rejected", "reject"),
    ("deny", "reject"),
];

/// A filter argument that names nothing a record can hold. Each message lists the valid
/// values, so that a typo is never taken for "no such records".
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FilterError {
    /// `--event` / `--not-event` names no event.
    #[error("{0:?} is not an event; valid events: {list}", list = event_names().join(", "))]
    Event(String),
    /// `--verdict` is neither `accept` nor `reject` (nor one of [`VERDICT_ALIASES`]).
    #[error(
        "{0:?} is not a verdict; valid verdicts: accept (or accepted, allow), reject (or rejected, deny){hint}",
        hint = event_hint(.0)
    )]
    Verdict(String),
    /// `--reason` / `--not-reason` is not a reason code.
    #[error("{0:?} is not a reason code; valid reasons: {list}", list = reason_names().join(", "))]
    Reason(String),
    /// `--sha256` is not 64 hexadecimal digits.
    #[error("{0:?} is not a SHA-256: give 64 hexadecimal digits")]
    Sha256(String),
    /// `--sm3` is not 64 hexadecimal digits.
    #[error("{0:?} is not an SM3 hash: give 64 hexadecimal digits")]
    Sm3(String),
    /// `--object` is not an object id.
    #[error("{0:?} is not an object id: give 32 hexadecimal digits")]
    Object(String),
    /// `--since` / `--until` or `--tz` cannot be read (see [`when`]).
    #[error("{flag}: {source}")]
    Time {
        /// The option that held it.
        flag: &'static str,
        /// Why it could not be read.
        source: WhenError,
    },
}

/// For a verdict that is an event's name: where that belongs.
fn event_hint(value: &str) -> String {
    match parse_event(value) {
        Ok(e) => format!(" ({} is an event: --event {})", e.as_str(), e.as_str()),
        Err(_) => String::new(),
    }
}

/// Every event name, in documentation order.
pub fn event_names() -> Vec<&'static str> {
    Event::ALL.iter().map(|e| e.as_str()).collect()
}

/// Every reason code, in documentation order.
pub fn reason_names() -> Vec<&'static str> {
    Reason::ALL.iter().map(|r| r.as_str()).collect()
}

/// The filter arguments as given on the command line. Each list holds the values of all the
/// flag's occurrences; a value may itself hold several, separated by commas (except
/// `names` and `not_names`: file names may contain commas).
#[derive(Debug, Clone, Default)]
pub struct FilterArgs {
    /// `--since`: at or after this time (any form of [`when::FORMS`]).
    pub since: Option<String>,
    /// `--until`: before this time.
    pub until: Option<String>,
    /// `--channel`: any of these channels.
    pub channels: Vec<String>,
    /// `--not-channel`: none of these channels.
    pub not_channels: Vec<String>,
    /// `--event`: any of these events.
    pub events: Vec<String>,
    /// `--not-event`: none of these events.
    pub not_events: Vec<String>,
    /// `--verdict`: any of these verdicts.
    pub verdicts: Vec<String>,
    /// `--reason`: any of these reason codes.
    pub reasons: Vec<String>,
    /// `--not-reason`: none of these reason codes (records without a reason pass).
    pub not_reasons: Vec<String>,
    /// `--name`: any of these patterns (`*` any run of characters, `?` one).
    pub names: Vec<String>,
    /// `--not-name`: none of these patterns.
    pub not_names: Vec<String>,
    /// `--object`: any of these object ids.
    pub objects: Vec<String>,
    /// `--sha256`: any of these content hashes (hex, either case).
    pub sha256s: Vec<String>,
    /// `--sm3`: any of these content hashes of a `gm` log (hex, either case).
    pub sm3s: Vec<String>,
    /// `--after` (export): only records with a greater sequence number.
    pub after: Option<u64>,
}

/// Record filters, read and checked. Every part that is set must match: a list matches
/// when the record's value is one of it, an exclusion list when it is none of it.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Records at or after this time (ms since the epoch).
    pub since_ms: Option<u64>,
    /// Records before this time (ms since the epoch).
    pub until_ms: Option<u64>,
    /// Records with a greater sequence number only.
    pub after_seq: Option<u64>,
    /// Channel names (exact).
    pub channels: Vec<String>,
    /// Channel names excluded.
    pub not_channels: Vec<String>,
    /// Events.
    pub events: Vec<Event>,
    /// Events excluded.
    pub not_events: Vec<Event>,
    /// `accept` / `reject`.
    pub verdicts: Vec<&'static str>,
    /// Reason codes.
    pub reasons: Vec<Reason>,
    /// Reason codes excluded.
    pub not_reasons: Vec<Reason>,
    /// Name patterns with `*` and `?`.
    pub names: Vec<String>,
    /// Name patterns excluded.
    pub not_names: Vec<String>,
    /// Object ids (lower-case hex).
    pub object_ids: Vec<String>,
    /// SHA-256 of the content (lower-case hex).
    pub sha256s: Vec<String>,
    /// SM3 of the content (lower-case hex). A record passes the two hash lists when both
    /// are empty or either lists its hash.
    pub sm3s: Vec<String>,
}

/// Matches `text` against a pattern where `*` is any run of characters and `?` one.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if p.get(pi).is_some_and(|c| *c == '?' || Some(c) == t.get(ti)) {
            pi += 1;
            ti += 1;
        } else if p.get(pi) == Some(&'*') {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p.get(pi..).unwrap_or_default().iter().all(|c| *c == '*')
}

/// Splits every value at commas, trims each part and drops empty ones.
fn split(values: &[String]) -> impl Iterator<Item = &str> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Reads an event name.
///
/// # Errors
/// [`FilterError::Event`], listing the events.
pub fn parse_event(s: &str) -> Result<Event, FilterError> {
    Event::ALL
        .into_iter()
        .find(|e| e.as_str() == s)
        .ok_or_else(|| FilterError::Event(s.to_string()))
}

/// Reads a verdict, `accept` or `reject`, or one of [`VERDICT_ALIASES`] (any case).
///
/// # Errors
/// [`FilterError::Verdict`], listing the verdicts.
pub fn parse_verdict(s: &str) -> Result<&'static str, FilterError> {
    let lower = s.to_ascii_lowercase();
    VERDICTS
        .into_iter()
        .find(|v| *v == lower)
        .or_else(|| {
            VERDICT_ALIASES
                .into_iter()
                .find(|(a, _)| *a == lower)
                .map(|(_, v)| v)
        })
        .ok_or_else(|| FilterError::Verdict(s.to_string()))
}

/// Reads a reason code ([`Reason::as_str`]).
///
/// # Errors
/// [`FilterError::Reason`], listing the codes.
pub fn parse_reason(s: &str) -> Result<Reason, FilterError> {
    Reason::ALL
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| FilterError::Reason(s.to_string()))
}

/// Reads a SHA-256 as 64 hex digits, either case; returns it in lower case.
///
/// # Errors
/// [`FilterError::Sha256`].
pub fn parse_sha256(s: &str) -> Result<String, FilterError> {
    hex64(s).ok_or_else(|| FilterError::Sha256(s.to_string()))
}

/// Reads an SM3 hash (GB/T 32905) as 64 hex digits, either case; returns it in lower case.
///
/// # Errors
/// [`FilterError::Sm3`].
pub fn parse_sm3(s: &str) -> Result<String, FilterError> {
    hex64(s).ok_or_else(|| FilterError::Sm3(s.to_string()))
}

fn hex64(s: &str) -> Option<String> {
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

/// Reads an object id (32 hex digits, either case); returns it in lower case.
///
/// # Errors
/// [`FilterError::Object`].
pub fn parse_object(s: &str) -> Result<String, FilterError> {
    let lower = s.to_ascii_lowercase();
    match ObjectId::parse(&lower) {
        Some(_) => Ok(lower),
        None => Err(FilterError::Object(s.to_string())),
    }
}

fn all<T>(
    values: &[String],
    parse: impl Fn(&str) -> Result<T, FilterError>,
) -> Result<Vec<T>, FilterError> {
    split(values).map(parse).collect()
}

impl Filter {
    /// Reads and checks the arguments: times in `tz` (relative ones from `now_ms`), every
    /// listed value against the values a record can hold.
    ///
    /// # Errors
    /// The first value that names nothing ([`FilterError`]).
    pub fn from_args(args: &FilterArgs, tz: &TimeZone, now_ms: u64) -> Result<Filter, FilterError> {
        let time = |s: &Option<String>, flag: &'static str| {
            s.as_deref()
                .map(|v| {
                    when::parse(v, tz, now_ms).map_err(|source| FilterError::Time { flag, source })
                })
                .transpose()
        };
        let owned = |v: &[String]| split(v).map(str::to_string).collect::<Vec<_>>();
        let patterns = |v: &[String]| {
            v.iter()
                .filter(|p| !p.is_empty())
                .cloned()
                .collect::<Vec<_>>()
        };
        Ok(Filter {
            since_ms: time(&args.since, "--since")?,
            until_ms: time(&args.until, "--until")?,
            after_seq: args.after,
            channels: owned(&args.channels),
            not_channels: owned(&args.not_channels),
            events: all(&args.events, parse_event)?,
            not_events: all(&args.not_events, parse_event)?,
            verdicts: all(&args.verdicts, parse_verdict)?,
            reasons: all(&args.reasons, parse_reason)?,
            not_reasons: all(&args.not_reasons, parse_reason)?,
            names: patterns(&args.names),
            not_names: patterns(&args.not_names),
            object_ids: all(&args.objects, parse_object)?,
            sha256s: all(&args.sha256s, parse_sha256)?,
            sm3s: all(&args.sm3s, parse_sm3)?,
        })
    }

    /// Whether a record passes every filter.
    pub fn matches(&self, r: &Record) -> bool {
        // An empty list lets everything through; else the record's value must be listed.
        fn any_of<T: PartialEq>(list: &[T], got: Option<T>) -> bool {
            list.is_empty() || got.is_some_and(|g| list.contains(&g))
        }
        // An exclusion: a record without the value is not excluded.
        fn none_of<T: PartialEq>(list: &[T], got: Option<T>) -> bool {
            got.is_none_or(|g| !list.contains(&g))
        }
        let s = |list: &[String], got: &Option<String>| {
            list.is_empty() || got.as_ref().is_some_and(|g| list.contains(g))
        };
        let listed = |list: &[String], got: &Option<String>| {
            got.as_ref()
                .is_some_and(|g| list.contains(&g.to_ascii_lowercase()))
        };
        let name = r.name.as_deref();
        self.since_ms.is_none_or(|t| r.time_ms >= t)
            && self.until_ms.is_none_or(|t| r.time_ms < t)
            && self.after_seq.is_none_or(|a| r.seq > a)
            && any_of(&self.events, Some(r.event))
            && none_of(&self.not_events, Some(r.event))
            && s(&self.channels, &r.channel)
            && r.channel
                .as_ref()
                .is_none_or(|c| !self.not_channels.contains(c))
            && any_of(&self.verdicts, r.event.verdict())
            && any_of(&self.reasons, r.reason)
            && none_of(&self.not_reasons, r.reason)
            && (self.names.is_empty()
                || name.is_some_and(|n| self.names.iter().any(|p| glob(p, n))))
            && name.is_none_or(|n| !self.not_names.iter().any(|p| glob(p, n)))
            && s(&self.object_ids, &r.object_id)
            && ((self.sha256s.is_empty() && self.sm3s.is_empty())
                || listed(&self.sha256s, &r.sha256)
                || listed(&self.sm3s, &r.sm3))
    }
}

/// Output formats of `audit query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for reading; long details cut with `…`.
    Table,
    /// One JSON record per line, as logged plus `time` in the zone.
    Json,
    /// CSV with a header line; nothing cut.
    Csv,
}

const COLUMNS: [&str; 13] = [
    "seq",
    "time",
    "node",
    "event",
    "channel",
    "name",
    "size",
    "sha256",
    "reason",
    "object_id",
    "peer",
    "detail",
    "sm3",
];

/// The columns the table shows (indexes into the CSV's).
const SHOWN: [usize; 9] = [0, 1, 3, 4, 5, 6, 8, 9, 11];

/// The widest a detail is shown in the table, in terminal columns.
pub const DETAIL_WIDTH: usize = 60;

fn row(r: &Record, tz: &TimeZone) -> [String; 13] {
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    [
        r.seq.to_string(),
        when::format(r.time_ms, tz),
        r.node.clone(),
        r.event.as_str().to_string(),
        s(&r.channel),
        s(&r.name),
        r.size.map(|x| x.to_string()).unwrap_or_default(),
        s(&r.sha256),
        r.reason.map(|x| x.as_str().to_string()).unwrap_or_default(),
        s(&r.object_id),
        s(&r.peer),
        s(&r.detail),
        s(&r.sm3),
    ]
}

/// A CSV cell defused for spreadsheets (OWASP "CSV injection"): a value from the log that
/// begins with `=`, `+`, `-`, `@`, a tab or a carriage return (a file name is chosen by
/// whoever dropped it) gets a leading `'`, so a spreadsheet shows it as text and never runs
/// it as a formula. Other values are unchanged.
pub fn spreadsheet_safe(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// A record as a CSV row: [`row`] with every cell [`spreadsheet_safe`].
fn csv_row(r: &Record, tz: &TimeZone) -> [String; 13] {
    row(r, tz).map(|c| spreadsheet_safe(&c))
}

/// Whether a character would move the cursor or reorder the text around it on a terminal:
/// control characters and the bidirectional formatting ones.
fn unsafe_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A cell as the table shows it: control and bidi characters written as `\u{…}` escapes,
/// and at most `max` terminal columns wide (cut with `…`).
pub fn cell(text: &str, max: Option<usize>) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        if unsafe_on_terminal(c) {
            shown.push_str(&c.escape_unicode().to_string());
        } else {
            shown.push(c);
        }
    }
    match max {
        Some(max) if shown.width() > max => {
            let mut out = String::new();
            let mut used = 0;
            for c in shown.chars() {
                let w = c.width().unwrap_or(0);
                if used + w + 1 > max {
                    break;
                }
                used += w;
                out.push(c);
            }
            out.push('…');
            out
        }
        _ => shown,
    }
}

/// Lays out rows of cells in columns two spaces apart, each as wide as its widest cell in
/// terminal columns (a Chinese character takes two); trailing blanks trimmed.
pub fn align(rows: &[Vec<String>]) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.width())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (c, w) in r.iter().zip(&widths) {
                line.push_str(c);
                line.push_str(&" ".repeat(w.saturating_sub(c.width()) + 2));
            }
            line.trim_end().to_string()
        })
        .collect()
}

/// A record as `--format json` prints it: every logged field, then `time` in the zone.
#[derive(Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    record: &'a Record,
    time: String,
}

/// Writes the records in a format; times in `tz`.
///
/// # Errors
/// The output cannot be written.
pub fn write(
    out: &mut dyn Write,
    records: &[Record],
    format: Format,
    tz: &TimeZone,
) -> io::Result<()> {
    match format {
        Format::Json => {
            for r in records {
                let shown = Shown {
                    record: r,
                    time: when::format(r.time_ms, tz),
                };
                serde_json::to_writer(&mut *out, &shown)?;
                out.write_all(b"\n")?;
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(COLUMNS).map_err(io::Error::other)?;
            for r in records {
                w.write_record(csv_row(r, tz)).map_err(io::Error::other)?;
            }
            w.flush()?;
        }
        Format::Table => {
            let mut rows = Vec::with_capacity(records.len() + 1);
            rows.push(
                SHOWN
                    .iter()
                    .filter_map(|i| COLUMNS.get(*i))
                    .map(|c| c.to_string())
                    .collect(),
            );
            for r in records {
                let full = row(r, tz);
                rows.push(
                    SHOWN
                        .iter()
                        .filter_map(|i| {
                            let max = (*i == 11).then_some(DETAIL_WIDTH);
                            full.get(*i).map(|c| cell(c, max))
                        })
                        .collect(),
                );
            }
            for line in align(&rows) {
                writeln!(out, "{line}")?;
            }
            writeln!(out, "({} records)", records.len())?;
        }
    }
    Ok(())
}

/// Calls `f(line as logged, record)` for every record of the log in `dir` that passes
/// `filter`, in log order, one at a time.
///
/// # Errors
/// A segment cannot be read, a line is not a record (`file:line: not a record`), or `f`
/// fails.
pub fn for_each_match(
    dir: &Path,
    filter: &Filter,
    mut f: impl FnMut(&[u8], &Record) -> io::Result<()>,
) -> io::Result<Scan> {
    let mut scan = Scan::default();
    read::for_each_line(dir, |file, line_no, line| {
        let r: Record = serde_json::from_slice(line)
            .map_err(|e| io::Error::other(format!("{file}:{line_no}: not a record: {e}")))?;
        scan.last_seq = Some(r.seq);
        if let Some(c) = &r.channel
            && !scan.channels.contains(c)
            && scan.channels.len() < MAX_CHANNELS_SEEN
        {
            scan.channels.insert(c.clone());
        }
        if filter.matches(&r) {
            f(line, &r)
        } else {
            Ok(())
        }
    })?;
    Ok(scan)
}

/// The most channel names a [`Scan`] keeps (a log names a handful).
const MAX_CHANNELS_SEEN: usize = 1024;

/// What a pass over a whole log saw, matching or not: to tell a filter that names nothing
/// from a period with no records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// The sequence number of the log's last record; `None` for an empty log.
    pub last_seq: Option<u64>,
    /// The channels its records name (at most 1024).
    pub channels: std::collections::BTreeSet<String>,
}

impl Scan {
    /// The channels of `filter` (wanted or excluded) that no record of the log names, for
    /// an error that lists those it does name. Empty when every one is known.
    pub fn unknown_channels(&self, filter: &Filter) -> Vec<String> {
        filter
            .channels
            .iter()
            .chain(&filter.not_channels)
            .filter(|c| !self.channels.contains(*c))
            .cloned()
            .collect()
    }
}

/// Reads the records of the log in `dir` that pass `filter`, in log order, and what the
/// pass saw.
///
/// # Errors
/// As [`for_each_match`].
pub fn select(dir: &Path, filter: &Filter) -> io::Result<(Vec<Record>, Scan)> {
    let mut out = Vec::new();
    let scan = for_each_match(dir, filter, |_, r| {
        out.push(r.clone());
        Ok(())
    })?;
    Ok((out, scan))
}

/// Prints the records of the log in `dir` that pass `filter` to `out` in `format`, times in
/// `tz`. JSON lines and CSV stream record by record; the table holds the matching records
/// (it needs every cell to size its columns). Returns how many were printed, and what the
/// pass saw.
///
/// # Errors
/// As [`for_each_match`], or the output cannot be written.
pub fn print(
    dir: &Path,
    filter: &Filter,
    format: Format,
    tz: &TimeZone,
    out: &mut dyn Write,
) -> io::Result<(u64, Scan)> {
    let mut n = 0;
    let scan = match format {
        Format::Table => {
            let (records, scan) = select(dir, filter)?;
            write(out, &records, format, tz)?;
            n = records.len() as u64;
            scan
        }
        Format::Json => for_each_match(dir, filter, |_, r| {
            n += 1;
            write(out, std::slice::from_ref(r), format, tz)
        })?,
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record(COLUMNS).map_err(io::Error::other)?;
            let scan = for_each_match(dir, filter, |_, r| {
                n += 1;
                w.write_record(csv_row(r, tz)).map_err(io::Error::other)
            })?;
            w.flush()?;
            scan
        }
    };
    out.flush()?;
    Ok((n, scan))
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON record per line, byte for byte as logged.
    Jsonl,
    /// One RFC 5424 message per line, as the live syslog export sends it, but with PROCID
    /// `-` ([`syslog::format_exported`]).
    Syslog,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// Records written.
    pub records: u64,
    /// The sequence number of the last record written; `None` when none was.
    pub last_seq: Option<u64>,
    /// What the pass over the log saw.
    pub scan: Scan,
}

/// Writes the records of the log in `dir` that pass `filter` to `out` in `format`, one per
/// line, streaming (memory stays flat whatever the log's size).
///
/// # Errors
/// A segment cannot be read, a line is not a record, or the output cannot be written.
pub fn export(
    dir: &Path,
    filter: &Filter,
    format: ExportFormat,
    out: &mut dyn Write,
) -> io::Result<Exported> {
    let mut done = Exported {
        records: 0,
        last_seq: None,
        scan: Scan::default(),
    };
    done.scan = for_each_match(dir, filter, |line, r| {
        match format {
            ExportFormat::Jsonl => out.write_all(line)?,
            ExportFormat::Syslog => out.write_all(syslog::format_exported(r).as_bytes())?,
        }
        out.write_all(b"\n")?;
        done.records += 1;
        done.last_seq = Some(r.seq);
        Ok(())
    })?;
    out.flush()?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_never_start_a_formula() {
        for bad in [
            "=HYPERLINK(\"http://x\")",
            "+1",
            "-1+1",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            assert_eq!(spreadsheet_safe(bad), format!("'{bad}"));
        }
        assert_eq!(spreadsheet_safe("判决书.pdf"), "判决书.pdf");
        assert_eq!(spreadsheet_safe(""), "");
    }

    fn rec(seq: u64, event: Event) -> Record {
        Record {
            seq,
            time_ms: 1_764_513_360_000 + seq * 1000,
            node: "court".into(),
            event,
            channel: Some("to-internet".into()),
            object_id: None,
            name: Some("民事判决书.pdf".into()),
            size: Some(10),
            sha256: None,
            sm3: None,
            reason: None,
            detail: None,
            peer: None,
            stream: None,
            message: None,
        }
    }

    fn args() -> FilterArgs {
        FilterArgs::default()
    }

    fn filter(a: &FilterArgs) -> Filter {
        Filter::from_args(a, &TimeZone::UTC, 1_764_513_360_000).unwrap()
    }

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn glob_patterns() {
        assert!(glob("*.pdf", "判决书.pdf"));
        assert!(glob("判决?.pdf", "判决书.pdf"));
        assert!(!glob("*.pdf", "a.txt"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
    }

    #[test]
    fn several_values_by_comma_and_by_repeating() {
        let a = FilterArgs {
            events: v(&["landed, refused", "sent"]),
            ..args()
        };
        let f = filter(&a);
        assert_eq!(f.events, vec![Event::Landed, Event::Refused, Event::Sent]);
        assert!(f.matches(&rec(1, Event::Landed)));
        assert!(f.matches(&rec(2, Event::Sent)));
        assert!(!f.matches(&rec(3, Event::Witnessed)));
        let mut other = rec(4, Event::Landed);
        other.channel = Some("to-court".into());
        let f = filter(&FilterArgs {
            channels: v(&["a,to-court"]),
            ..args()
        });
        assert!(f.matches(&other) && !f.matches(&rec(5, Event::Landed)));
    }

    #[test]
    fn exclusions_leave_records_without_the_field() {
        let f = filter(&FilterArgs {
            not_events: v(&["witnessed"]),
            not_channels: v(&["to-internet"]),
            not_reasons: v(&["type_mismatch"]),
            ..args()
        });
        assert!(!f.matches(&rec(1, Event::Witnessed)));
        assert!(!f.matches(&rec(1, Event::Landed)), "excluded channel");
        let mut r = rec(2, Event::LinkUp);
        r.channel = None;
        assert!(f.matches(&r), "no channel, no reason: not excluded");
        r.reason = Some(Reason::TypeMismatch);
        assert!(!f.matches(&r));
        let f = filter(&FilterArgs {
            not_names: v(&["*.pdf"]),
            ..args()
        });
        assert!(!f.matches(&rec(1, Event::Landed)));
    }

    #[test]
    fn a_reason_filter_needs_a_reason() {
        let f = filter(&FilterArgs {
            reasons: v(&["type_mismatch,wrong_channel"]),
            ..args()
        });
        let mut r = rec(1, Event::Refused);
        assert!(!f.matches(&r));
        r.reason = Some(Reason::TypeMismatch);
        assert!(f.matches(&r));
    }

    #[test]
    fn invalid_values_fail_and_list_the_valid_ones() {
        let bad = |a: FilterArgs| {
            Filter::from_args(&a, &TimeZone::UTC, 0)
                .unwrap_err()
                .to_string()
        };
        let e = bad(FilterArgs {
            verdicts: v(&["maybe"]),
            ..args()
        });
        assert!(e.contains("accept") && e.contains("reject"), "{e}");
        let e = bad(FilterArgs {
            reasons: v(&["bogus"]),
            ..args()
        });
        assert!(
            e.contains("\"bogus\"") && e.contains("type_mismatch"),
            "{e}"
        );
        let e = bad(FilterArgs {
            events: v(&["landed,landded"]),
            ..args()
        });
        assert!(e.contains("\"landded\"") && e.contains("witnessed"), "{e}");
        assert!(
            bad(FilterArgs {
                sha256s: v(&["abc"]),
                ..args()
            })
            .contains("SHA-256")
        );
        assert!(
            bad(FilterArgs {
                objects: v(&["zz"]),
                ..args()
            })
            .contains("object id")
        );
        assert!(
            bad(FilterArgs {
                since: Some("last tuesday".into()),
                ..args()
            })
            .starts_with("--since:")
        );
    }

    #[test]
    fn verdict_aliases_map_to_the_verdict() {
        assert_eq!(parse_verdict("Rejected"), Ok("reject"));
        assert_eq!(parse_verdict("accepted"), Ok("accept"));
        let e = parse_verdict("refused").unwrap_err().to_string();
        assert!(
            e.contains("accept") && e.contains("reject") && e.contains("--event refused"),
            "{e}"
        );
        let f = filter(&FilterArgs {
            verdicts: v(&["rejected"]),
            ..args()
        });
        assert!(f.matches(&rec(1, Event::Quarantined)));
        assert!(f.matches(&rec(1, Event::Refused)));
        assert!(!f.matches(&rec(1, Event::Landed)));
    }

    #[test]
    fn hashes_and_ids_match_in_either_case() {
        let hash = "AB".repeat(32);
        let f = filter(&FilterArgs {
            sha256s: v(&[&hash]),
            objects: v(&[&"0F".repeat(16)]),
            ..args()
        });
        let mut r = rec(1, Event::Landed);
        r.sha256 = Some("ab".repeat(32));
        r.object_id = Some("0f".repeat(16));
        assert!(f.matches(&r));
        r.object_id = Some("0e".repeat(16));
        assert!(!f.matches(&r));
    }

    #[test]
    fn an_sm3_is_found_by_sm3_and_either_list_lets_a_record_through() {
        let sm3 = "cd".repeat(32);
        let mut r = rec(1, Event::Landed);
        r.sm3 = Some(sm3.clone());
        let by_sm3 = filter(&FilterArgs {
            sm3s: v(&[&sm3.to_uppercase()]),
            ..args()
        });
        assert!(by_sm3.matches(&r));
        // an SM3 is not a SHA-256: the same digits given as --sha256 do not find it
        let by_sha = filter(&FilterArgs {
            sha256s: v(&[&sm3]),
            ..args()
        });
        assert!(!by_sha.matches(&r));
        // both lists: a record listed in either passes
        let both = filter(&FilterArgs {
            sha256s: v(&[&"ab".repeat(32)]),
            sm3s: v(&[&sm3]),
            ..args()
        });
        assert!(both.matches(&r));
        let mut other = rec(2, Event::Landed);
        other.sha256 = Some("ab".repeat(32));
        assert!(both.matches(&other));
        assert!(!both.matches(&rec(3, Event::Landed)));
        let e = Filter::from_args(
            &FilterArgs {
                sm3s: v(&["xyz"]),
                ..args()
            },
            &TimeZone::UTC,
            0,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not an SM3 hash"), "{e}");
    }

    #[test]
    fn time_window_in_a_zone_and_after_seq() {
        let tz = when::zone(Some("Asia/Shanghai")).unwrap();
        let f = Filter::from_args(
            &FilterArgs {
                since: Some("2025-11-30T22:36:01+08:00".into()),
                until: Some("2025-11-30 22:36:03".into()),
                after: Some(1),
                ..args()
            },
            &tz,
            0,
        )
        .unwrap();
        assert!(!f.matches(&rec(0, Event::Landed)));
        assert!(!f.matches(&rec(1, Event::Landed)), "seq 1 is not after 1");
        assert!(f.matches(&rec(2, Event::Landed)));
        assert!(!f.matches(&rec(3, Event::Landed)), "until is exclusive");
        let f = Filter::from_args(
            &FilterArgs {
                since: Some("2025-11-30T22:36:01.000+08:00".into()),
                ..args()
            },
            &TimeZone::UTC,
            0,
        )
        .unwrap();
        assert!(f.matches(&rec(1, Event::Landed)), "since is inclusive");
        assert!(!f.matches(&rec(0, Event::Landed)));
        let f = filter(&FilterArgs {
            after: Some(2),
            ..args()
        });
        assert!(!f.matches(&rec(2, Event::Landed)) && f.matches(&rec(3, Event::Landed)));
    }

    #[test]
    fn table_aligns_wide_characters() {
        let rows = vec![
            v(&["name", "size"]),
            v(&["民事判决书.pdf", "1"]),
            v(&["a.pdf", "22"]),
        ];
        let lines = align(&rows);
        // The second column starts at the same terminal column on every line.
        let starts: Vec<usize> = lines
            .iter()
            .zip(&rows)
            .map(|(l, r)| l.find(r[1].as_str()).map(|i| l[..i].width()).unwrap())
            .collect();
        assert_eq!(starts, vec![16, 16, 16], "{lines:#?}");
    }

    #[test]
    fn table_cells_are_cut_and_escaped_never_the_csv() {
        let long = "关键词匹配：".repeat(20);
        let c = cell(&long, Some(DETAIL_WIDTH));
        assert!(c.ends_with('…') && c.width() <= DETAIL_WIDTH, "{c}");
        assert_eq!(cell("a\u{202E}b\nc", None), "a\\u{202e}b\\u{a}c");
        let mut r = rec(1, Event::Refused);
        r.detail = Some(long.clone());
        let mut csv = Vec::new();
        write(&mut csv, &[r.clone()], Format::Csv, &TimeZone::UTC).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert!(csv.starts_with("seq,time,") && csv.contains(&long));
        let mut table = Vec::new();
        write(&mut table, &[r], Format::Table, &TimeZone::UTC).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(table.contains("detail") && table.contains('…') && !table.contains(&long));
    }

    #[test]
    fn times_follow_the_zone() {
        let tz = when::zone(Some("Asia/Shanghai")).unwrap();
        let r = rec(0, Event::Landed);
        let mut out = Vec::new();
        write(&mut out, std::slice::from_ref(&r), Format::Csv, &tz).unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("2025-11-30T22:36:00.000+08:00")
        );
        let mut out = Vec::new();
        write(&mut out, &[r], Format::Json, &tz).unwrap();
        let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(j["time_ms"], 1_764_513_360_000u64);
        assert_eq!(j["time"], "2025-11-30T22:36:00.000+08:00");
    }
}
