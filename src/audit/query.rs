//! `isogate audit query` and `export`: filter records and print them as a table, JSON lines
//! or CSV.

use super::{Event, Record};
use std::io::{self, Write};
use std::time::{Duration, UNIX_EPOCH};

/// Record filters; every one that is set must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Records at or after this time (ms since the epoch).
    pub since_ms: Option<u64>,
    /// Records before this time (ms since the epoch).
    pub until_ms: Option<u64>,
    /// Channel name.
    pub channel: Option<String>,
    /// Event name.
    pub event: Option<Event>,
    /// `accept` or `reject`.
    pub verdict: Option<String>,
    /// Reason code.
    pub reason: Option<String>,
    /// Name pattern with `*` and `?`.
    pub name: Option<String>,
    /// Object id.
    pub object_id: Option<String>,
    /// SHA-256 of the content, hex.
    pub sha256: Option<String>,
}

/// Matches `text` against a pattern where `*` is any run of characters and `?` one.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
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
    p[pi..].iter().all(|c| *c == '*')
}

impl Filter {
    /// Whether a record passes every filter.
    pub fn matches(&self, r: &Record) -> bool {
        let eq = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| got == Some(w))
        };
        self.since_ms.is_none_or(|t| r.time_ms >= t)
            && self.until_ms.is_none_or(|t| r.time_ms < t)
            && self.event.is_none_or(|e| r.event == e)
            && eq(&self.channel, r.channel.as_deref())
            && eq(&self.verdict, r.event.verdict())
            && eq(&self.reason, r.reason.map(|x| x.as_str()))
            && eq(&self.object_id, r.object_id.as_deref())
            && eq(&self.sha256, r.sha256.as_deref())
            && self
                .name
                .as_deref()
                .is_none_or(|p| r.name.as_deref().is_some_and(|n| glob(p, n)))
    }
}

/// Parses a time given as RFC 3339 (`2026-11-26T08:00:00Z`) or milliseconds since the epoch.
pub fn parse_time(s: &str) -> Option<u64> {
    if let Ok(ms) = s.parse::<u64>() {
        return Some(ms);
    }
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_millis() as u64)
}

/// Parses an event name.
pub fn parse_event(s: &str) -> Option<Event> {
    Event::ALL.into_iter().find(|e| e.as_str() == s)
}

fn time(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for reading.
    Table,
    /// One JSON record per line.
    Json,
    /// CSV with a header line.
    Csv,
}

const COLUMNS: [&str; 11] = [
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
];

fn row(r: &Record) -> [String; 11] {
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    [
        r.seq.to_string(),
        time(r.time_ms),
        r.node.clone(),
        r.event.as_str().to_string(),
        s(&r.channel),
        s(&r.name),
        r.size.map(|x| x.to_string()).unwrap_or_default(),
        s(&r.sha256),
        r.reason.map(|x| x.as_str().to_string()).unwrap_or_default(),
        s(&r.object_id),
        s(&r.peer),
    ]
}

/// Writes the records in a format.
pub fn write(out: &mut dyn Write, records: &[Record], format: Format) -> io::Result<()> {
    match format {
        Format::Json => {
            for r in records {
                serde_json::to_writer(&mut *out, r)?;
                out.write_all(b"\n")?;
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(COLUMNS).map_err(io::Error::other)?;
            for r in records {
                w.write_record(row(r)).map_err(io::Error::other)?;
            }
            w.flush()?;
        }
        Format::Table => {
            let shown = [0usize, 1, 3, 4, 5, 6, 8, 9];
            let rows: Vec<[String; 11]> = records.iter().map(row).collect();
            let width = |i: usize| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([COLUMNS[i].len()])
                    .max()
                    .unwrap_or(0)
            };
            let widths: Vec<usize> = shown.iter().map(|i| width(*i)).collect();
            let line = |cells: Vec<&str>| {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c}{}", " ".repeat(w.saturating_sub(c.chars().count()))))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_string()
            };
            writeln!(out, "{}", line(shown.iter().map(|i| COLUMNS[*i]).collect()))?;
            for r in &rows {
                writeln!(
                    out,
                    "{}",
                    line(shown.iter().map(|i| r[*i].as_str()).collect())
                )?;
            }
            writeln!(out, "({} records)", rows.len())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn times_parse() {
        assert_eq!(parse_time("1000"), Some(1000));
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(parse_time("yesterday"), None);
    }
}
