//! Renders a [`Report`] for people and programs: text for a terminal, one CSV table, JSON
//! (the `Report` struct as it is), and a self-contained HTML page to print.
//!
//! ```text
//!  Report ─┬─► text  aligned sections (wide CJK characters count two columns; control
//!          │         characters from the log are shown escaped, never sent to the terminal)
//!          ├─► csv   one table: scope,day,channel,reason,<counts…>,top_names,top_rules,
//!          │         <message counts…> (added last: earlier columns keep their places)
//!          ├─► json  serde_json of Report (stable field names)
//!          └─► html  report.html through minijinja (every value HTML-escaped), inline CSS,
//!                    inline SVG bar charts (bytes crossed per day, refusals by reason), A4 print
//! ```
//!
//! The CSV columns, one row per `scope`:
//! - `day`: one day (`day`) of one `channel` (`""`: the node as a whole), its counts;
//! - `channel`: one channel over the period, its counts (`day` empty);
//! - `total`: the whole period (`day` and `channel` empty);
//! - `reason`: refusals of one `reason` on one `channel`: `refused`, `quarantined`,
//!   `messages_refused`, and `top_names` / `top_rules` as `value (count); …`; the other
//!   counts empty.
//!
//! Counts: `crossed_objects, crossed_bytes, refused, quarantined, masked, duplicates, lost,
//! key_switches, policy_reloads, policy_refusals, clock_steps, link_mismatches`, then
//! `top_names, top_rules`, then `messages_accepted, messages_refused, messages_delivered,
//! messages_duplicates` (see `report`). A text cell from the log that starts with `=`, `+`, `-` or `@` gets a leading
//! `'` so that a spreadsheet does not run it as a formula.

use super::report::{self, Counts, Report, Top};
use serde::Serialize;
use std::io::{self, Write};
use thiserror::Error;

/// The HTML template (minijinja syntax; auto-escaped as HTML).
pub const HTML_TEMPLATE: &str = include_str!("report.html");
/// The colour of the bytes-per-day bars.
pub const CROSSED_COLOUR: &str = "#1f6fb2";
/// The colour of the refusals-by-reason bars.
pub const REFUSED_COLOUR: &str = "#c0392b";

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned sections for a terminal.
    Text,
    /// One CSV table (see the module header).
    Csv,
    /// The `Report` as one JSON document.
    Json,
    /// A self-contained HTML page.
    Html,
}

/// Why a report could not be written.
#[derive(Debug, Error)]
pub enum RenderError {
    /// Writing the output failed.
    #[error("writing the report: {0}")]
    Io(#[from] io::Error),
    /// The CSV writer failed.
    #[error("writing the CSV report: {0}")]
    Csv(#[from] csv::Error),
    /// The JSON encoder failed.
    #[error("encoding the JSON report: {0}")]
    Json(#[from] serde_json::Error),
    /// The HTML template failed to render.
    #[error("rendering the HTML report: {0}")]
    Html(#[from] minijinja::Error),
}

/// Writes `report` in `format`.
///
/// # Errors
/// [`RenderError`] when the output cannot be written or encoded.
pub fn write(out: &mut dyn Write, report: &Report, format: Format) -> Result<(), RenderError> {
    match format {
        Format::Text => text(out, report)?,
        Format::Csv => csv_table(out, report)?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            out.write_all(b"\n")?;
        }
        Format::Html => out.write_all(html(report)?.as_bytes())?,
    }
    out.flush()?;
    Ok(())
}

/// `1536` → `1.5 KiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS.get(unit).copied().unwrap_or("B"))
    }
}

/// Columns a character takes in a terminal: 2 for East Asian wide and full-width forms.
fn char_width(c: char) -> usize {
    match c {
        '\u{1100}'..='\u{115F}'
        | '\u{2E80}'..='\u{A4CF}'
        | '\u{AC00}'..='\u{D7A3}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{FE30}'..='\u{FE4F}'
        | '\u{FF00}'..='\u{FF60}'
        | '\u{FFE0}'..='\u{FFE6}'
        | '\u{1F300}'..='\u{1FAFF}'
        | '\u{20000}'..='\u{3FFFD}' => 2,
        _ => 1,
    }
}

/// Columns a string takes in a terminal.
pub fn width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// A value from the log made safe for a terminal: control and bidi characters escaped.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}') {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn table(out: &mut dyn Write, head: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let cols = head.len();
    let mut widths: Vec<usize> = head.iter().map(|h| width(h)).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(width(cell));
        }
    }
    let line = |out: &mut dyn Write, cells: &[String]| -> io::Result<()> {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            s.push_str(cell);
            if i + 1 < cols {
                s.push_str(&" ".repeat(w.saturating_sub(width(cell)) + 2));
            }
        }
        writeln!(out, "  {}", s.trim_end())
    };
    line(out, &head.iter().map(|h| h.to_string()).collect::<Vec<_>>())?;
    for r in rows {
        line(out, r)?;
    }
    Ok(())
}

fn tops(t: &[Top]) -> String {
    t.iter()
        .map(|x| format!("{} ({})", x.value, x.count))
        .collect::<Vec<_>>()
        .join("; ")
}

fn count_cells(c: &Counts) -> Vec<String> {
    vec![
        c.crossed_objects.to_string(),
        bytes(c.crossed_bytes),
        c.refused.to_string(),
        c.quarantined.to_string(),
        c.masked.to_string(),
        c.duplicates.to_string(),
        c.lost.to_string(),
        match (
            c.messages_accepted.saturating_add(c.messages_delivered),
            c.messages_refused,
        ) {
            (0, 0) => "-".to_string(),
            (ok, refused) => format!("{ok}/{refused}"),
        },
    ]
}

const COUNT_HEAD: [&str; 8] = [
    "crossed",
    "bytes",
    "refused",
    "quarantined",
    "masked",
    "duplicates",
    "lost",
    "msgs ok/refused",
];

fn channel_name(c: &str) -> String {
    if c.is_empty() {
        "(node)".to_string()
    } else {
        printable(c)
    }
}

fn text(out: &mut dyn Write, r: &Report) -> io::Result<()> {
    writeln!(out, "Audit report of node {}", printable(&r.node))?;
    writeln!(out, "period: {} to {} ({})", r.since, r.until, r.zone)?;
    if !r.channel_filter.is_empty() {
        writeln!(out, "channels: {}", printable(&r.channel_filter.join(", ")))?;
    }
    writeln!(
        out,
        "generated: {}; {} records read",
        r.generated, r.records
    )?;
    let v = &r.verification;
    writeln!(out)?;
    if v.verified {
        writeln!(
            out,
            "log: VERIFIED{}: {}",
            if v.pinned_key {
                " with the pinned key"
            } else {
                ""
            },
            v.detail
        )?;
        if v.unsigned_tail > 0 {
            writeln!(
                out,
                "     the last {} record(s) are not yet covered by a checkpoint",
                v.unsigned_tail
            )?;
        }
    } else {
        writeln!(out, "log: NOT VERIFIED: {}", v.detail)?;
    }
    match &r.witness.newest {
        Some(w) => writeln!(
            out,
            "witness: this node last witnessed {}'s log at {} records, {} (seq {})",
            printable(&w.peer),
            w.size,
            w.time,
            w.seq
        )?,
        None => writeln!(out, "witness: no witnessed record in this log")?,
    }
    writeln!(
        out,
        "peer's witness of this log: {}",
        r.witness.peer_status()
    )?;
    let t = &r.totals;
    writeln!(out)?;
    writeln!(
        out,
        "totals: {} object(s) crossed ({}), {} refused, {} quarantined, {} masked, {} duplicate(s), {} lost",
        t.crossed_objects,
        bytes(t.crossed_bytes),
        t.refused,
        t.quarantined,
        t.masked,
        t.duplicates,
        t.lost
    )?;
    writeln!(
        out,
        "        {} key switch(es), {} policy reload(s), {} policy refusal(s), {} clock step(s), {} link mismatch(es)",
        t.key_switches, t.policy_reloads, t.policy_refusals, t.clock_steps, t.link_mismatches
    )?;
    writeln!(
        out,
        "        messages: {} accepted, {} refused (sender); {} delivered, {} duplicate(s) dropped (receiver)",
        t.messages_accepted, t.messages_refused, t.messages_delivered, t.messages_duplicates
    )?;
    writeln!(
        out,
        "\nper channel (msgs ok: accepted on a sending channel, delivered on a receiving one):"
    )?;
    let mut head = vec!["channel", "role"];
    head.extend(COUNT_HEAD);
    let rows: Vec<Vec<String>> = r
        .channels
        .iter()
        .map(|c| {
            let mut v = vec![channel_name(&c.channel), c.role.clone()];
            v.extend(count_cells(&c.counts));
            v
        })
        .collect();
    table(out, &head, &rows)?;
    writeln!(out, "\nper day:")?;
    let mut head = vec!["day", "channel"];
    head.extend(COUNT_HEAD);
    let rows: Vec<Vec<String>> = r
        .days
        .iter()
        .map(|d| {
            let mut v = vec![d.day.clone(), channel_name(&d.channel)];
            v.extend(count_cells(&d.counts));
            v
        })
        .collect();
    table(out, &head, &rows)?;
    writeln!(out, "\nrefusals by reason:")?;
    if r.refusals.is_empty() {
        writeln!(out, "  none")?;
    }
    for x in &r.refusals {
        writeln!(
            out,
            "  {} on {}: {} refused, {} quarantined{}",
            x.reason,
            channel_name(&x.channel),
            x.refused,
            x.quarantined,
            if x.messages_refused > 0 {
                format!(", {} message(s) refused", x.messages_refused)
            } else {
                String::new()
            }
        )?;
        if !x.top_names.is_empty() {
            writeln!(out, "    names: {}", printable(&tops(&x.top_names)))?;
        }
        if !x.top_rules.is_empty() {
            writeln!(out, "    rules: {}", printable(&tops(&x.top_rules)))?;
        }
    }
    writeln!(out, "\nkey, policy, clock and link changes:")?;
    if r.changes.is_empty() {
        writeln!(out, "  none")?;
    }
    for c in &r.changes {
        writeln!(
            out,
            "  {}  {}  {}  {}",
            c.time,
            c.event,
            channel_name(&c.channel),
            printable(&c.detail)
        )?;
    }
    if r.changes_omitted > 0 {
        writeln!(out, "  … and {} more", r.changes_omitted)?;
    }
    Ok(())
}

/// A text cell from the log, defused for spreadsheets ([`super::query::spreadsheet_safe`]).
fn cell(s: &str) -> String {
    super::query::spreadsheet_safe(s)
}

/// The CSV header.
pub const CSV_COLUMNS: [&str; 22] = [
    "scope",
    "day",
    "channel",
    "reason",
    "crossed_objects",
    "crossed_bytes",
    "refused",
    "quarantined",
    "masked",
    "duplicates",
    "lost",
    "key_switches",
    "policy_reloads",
    "policy_refusals",
    "clock_steps",
    "link_mismatches",
    "top_names",
    "top_rules",
    "messages_accepted",
    "messages_refused",
    "messages_delivered",
    "messages_duplicates",
];

fn counts_row(scope: &str, day: &str, channel: &str, c: &Counts) -> Vec<String> {
    let mut v = vec![
        scope.to_string(),
        day.to_string(),
        cell(channel),
        String::new(),
    ];
    v.extend(
        [
            c.crossed_objects,
            c.crossed_bytes,
            c.refused,
            c.quarantined,
            c.masked,
            c.duplicates,
            c.lost,
            c.key_switches,
            c.policy_reloads,
            c.policy_refusals,
            c.clock_steps,
            c.link_mismatches,
        ]
        .iter()
        .map(u64::to_string),
    );
    v.extend([String::new(), String::new()]);
    v.extend(
        [
            c.messages_accepted,
            c.messages_refused,
            c.messages_delivered,
            c.messages_duplicates,
        ]
        .iter()
        .map(u64::to_string),
    );
    v
}

fn csv_table(out: &mut dyn Write, r: &Report) -> Result<(), RenderError> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_COLUMNS)?;
    for d in &r.days {
        w.write_record(counts_row("day", &d.day, &d.channel, &d.counts))?;
    }
    for c in &r.channels {
        w.write_record(counts_row("channel", "", &c.channel, &c.counts))?;
    }
    w.write_record(counts_row("total", "", "", &r.totals))?;
    for x in &r.refusals {
        let mut v = vec![
            "reason".to_string(),
            String::new(),
            cell(&x.channel),
            x.reason.clone(),
            String::new(),
            String::new(),
            x.refused.to_string(),
            x.quarantined.to_string(),
        ];
        v.extend(std::iter::repeat_n(String::new(), 8));
        v.push(cell(&tops(&x.top_names)));
        v.push(cell(&tops(&x.top_rules)));
        v.extend([
            String::new(),
            x.messages_refused.to_string(),
            String::new(),
            String::new(),
        ]);
        w.write_record(v)?;
    }
    w.flush()?;
    Ok(())
}

/// One bar of a chart, in SVG user units.
#[derive(Debug, Serialize)]
struct Bar {
    label: String,
    value: String,
    y: u64,
    width: u64,
}

/// A horizontal bar chart, laid out for the template.
#[derive(Debug, Serialize)]
struct Chart {
    title: String,
    colour: &'static str,
    width: u64,
    height: u64,
    label_width: u64,
    bars: Vec<Bar>,
}

const CHART_WIDTH: u64 = 640;
const LABEL_WIDTH: u64 = 190;
const BAR_AREA: u64 = 360;
const ROW: u64 = 22;

fn chart(title: &str, colour: &'static str, data: &[(String, u64, String)]) -> Chart {
    let max = data.iter().map(|d| d.1).max().unwrap_or(0).max(1);
    let bars: Vec<Bar> = data
        .iter()
        .enumerate()
        .map(|(i, (label, v, value))| Bar {
            label: label.chars().take(30).collect(),
            value: value.clone(),
            y: i as u64 * ROW + 4,
            width: if *v == 0 {
                0
            } else {
                (v.saturating_mul(BAR_AREA) / max).max(2)
            },
        })
        .collect();
    let all_zero = data.iter().all(|d| d.1 == 0);
    Chart {
        title: title.to_string(),
        colour,
        width: CHART_WIDTH,
        height: bars.len() as u64 * ROW + 8,
        label_width: LABEL_WIDTH,
        bars: if all_zero { Vec::new() } else { bars },
    }
}

/// The bars of the bytes-crossed chart: one per day, or one per month (`2026-11`) when
/// the period is longer than [`report::MAX_LISTED_DAYS`] days or lists more days than
/// that, so that a year stays readable.
fn crossed_bars(
    days: Vec<(String, Counts)>,
    period_ms: u64,
) -> (Vec<(String, u64, String)>, &'static str) {
    let monthly = days.len() as u64 > report::MAX_LISTED_DAYS
        || period_ms > report::MAX_LISTED_DAYS * 86_400_000;
    let mut groups: Vec<(String, Counts)> = Vec::new();
    for (day, c) in days {
        let key = if monthly {
            day.chars().take(7).collect()
        } else {
            day
        };
        match groups.last_mut() {
            Some((k, sum)) if *k == key => sum.add(&c),
            _ => groups.push((key, c)),
        }
    }
    let bars = groups
        .into_iter()
        .map(|(key, c)| {
            let label = format!("{} ({})", bytes(c.crossed_bytes), c.crossed_objects);
            (key, c.crossed_bytes, label)
        })
        .collect();
    let title = if monthly {
        "每月交换字节 Bytes crossed per month (objects)"
    } else {
        "每日交换字节 Bytes crossed per day (objects)"
    };
    (bars, title)
}

#[derive(Serialize)]
struct Page<'a> {
    r: &'a Report,
    charts: Vec<Chart>,
    total_bytes: String,
    peer_status: String,
    peer_class: &'static str,
}

/// The self-contained HTML page of `report`: inline CSS and SVG, no script, no external
/// asset, UTF-8; every value from the log is HTML-escaped by the template engine.
///
/// # Errors
/// [`RenderError::Html`] if the template fails to render.
pub fn html(report: &Report) -> Result<String, RenderError> {
    let (per_day, crossed_title) = crossed_bars(
        report.by_day(),
        report.until_ms.saturating_sub(report.since_ms),
    );
    let per_reason: Vec<(String, u64, String)> = report
        .by_reason()
        .into_iter()
        .map(|(reason, n)| (reason, n, n.to_string()))
        .collect();
    let w = &report.witness;
    let page = Page {
        r: report,
        charts: vec![
            chart(crossed_title, CROSSED_COLOUR, &per_day),
            chart("拒绝原因 Refusals by reason", REFUSED_COLOUR, &per_reason),
        ],
        total_bytes: bytes(report.totals.crossed_bytes),
        peer_status: w.peer_status(),
        peer_class: if w.peer_failed() {
            "bad"
        } else if w.peer_checked && w.peer_witnessed_ok > 0 {
            "ok"
        } else {
            "note"
        },
    };
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    // names and details come from the log (a publisher chose them): control and bidi
    // characters are shown escaped, as in the text report, before HTML escaping
    env.set_formatter(|out, state, value| match value.as_str() {
        Some(s) => minijinja::escape_formatter(out, state, &minijinja::Value::from(printable(s))),
        None => minijinja::escape_formatter(out, state, value),
    });
    env.add_template("report.html", HTML_TEMPLATE)?;
    let t = env.get_template("report.html")?;
    Ok(t.render(minijinja::value::Serde(&page))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::report::{Builder, Params, Verification, Witness};
    use crate::audit::{Event, Record, when};
    use crate::core::reason::Reason;

    fn report() -> Report {
        let tz = when::zone(Some("Asia/Shanghai")).unwrap();
        let mut b = Builder::new(Params {
            since_ms: 0,
            until_ms: 10 * 86_400_000,
            tz,
            channels: vec![],
            now_ms: 10 * 86_400_000,
        });
        let base = Record {
            seq: 1,
            time_ms: 1000,
            node: "internet".into(),
            event: Event::Landed,
            channel: Some("to-internet".into()),
            object_id: Some(format!("{:032x}", 1)),
            name: Some("民事判决书（2026）吉01民初123号.pdf".into()),
            size: Some(2048),
            sha256: None,
            sm3: None,
            reason: None,
            detail: None,
            peer: Some("court".into()),
            stream: None,
            message: None,
        };
        b.add(&base);
        b.add(&Record {
            seq: 2,
            event: Event::Quarantined,
            object_id: Some(format!("{:032x}", 2)),
            name: Some("<script>alert(1)</script>.txt".into()),
            reason: Some(Reason::KeywordMatch),
            detail: Some("line 1: matches rule <img src=x onerror=alert(2)>".into()),
            ..base.clone()
        });
        b.add(&Record {
            seq: 3,
            event: Event::Quarantined,
            object_id: Some(format!("{:032x}", 3)),
            name: Some("=cmd|' /C calc'!A0\u{1b}[2J.txt".into()),
            reason: Some(Reason::NameRefused),
            detail: Some("bad name".into()),
            ..base.clone()
        });
        b.add(&Record {
            seq: 4,
            event: Event::Quarantined,
            object_id: Some(format!("{:032x}", 4)),
            name: Some("民事判决书（2026）吉01民初124号.docx".into()),
            reason: Some(Reason::KeywordMatch),
            detail: Some("word/document.xml: line 2: matches rule 内部资料".into()),
            ..base.clone()
        });
        b.finish(
            Verification::from_verify(
                &Err(crate::audit::read::VerifyError::Log("seq 4 missing".into())),
                false,
            ),
            Witness::default(),
        )
    }

    #[test]
    fn html_escapes_every_value_from_the_log_and_draws_the_charts() {
        let page = html(&report()).unwrap();
        assert!(!page.contains("<script"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;.txt"),
            "{page}"
        );
        assert!(!page.contains("<img"));
        // a control character from a publisher's name is shown escaped, never raw
        assert!(!page.contains('\u{1b}'), "raw ESC in the page");
        assert!(page.contains("\\u{1b}[2J.txt"), "{page}");
        assert!(page.contains("民事判决书（2026）吉01民初124号.docx (1)"));
        assert!(page.contains("内部资料 (1)"));
        assert!(page.contains("<meta charset=\"utf-8\">"));
        assert!(page.contains("@media print"));
        assert_eq!(
            page.matches(&format!("fill=\"{CROSSED_COLOUR}\"")).count(),
            1
        );
        assert_eq!(
            page.matches(&format!("fill=\"{REFUSED_COLOUR}\"")).count(),
            2
        );
        assert!(page.contains("NOT VERIFIED"));
        // self-contained: no script, no external asset
        assert!(!page.contains("src=\"") && !page.contains("href=\"") && !page.contains("<link"));
    }

    #[test]
    fn text_aligns_wide_names_and_escapes_control_characters() {
        let mut out = Vec::new();
        write(&mut out, &report(), Format::Text).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("\\u{1b}[2J"));
        assert!(text.contains("log: NOT VERIFIED: seq 4 missing"));
        assert!(text.contains("keyword_match on to-internet: 0 refused, 2 quarantined"));
        assert_eq!(width("民事a"), 5);
    }

    #[test]
    fn csv_is_one_table_with_defused_cells() {
        let mut out = Vec::new();
        write(&mut out, &report(), Format::Csv).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut rd = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(rd.headers().unwrap().len(), CSV_COLUMNS.len());
        let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
        assert!(rows.iter().all(|r| r.len() == CSV_COLUMNS.len()));
        let total = rows.iter().find(|r| &r[0] == "total").unwrap();
        assert_eq!((&total[4], &total[5], &total[7]), ("1", "2048", "3"));
        let name_refused = rows
            .iter()
            .find(|r| &r[0] == "reason" && &r[3] == "name_refused")
            .unwrap();
        assert!(name_refused[16].starts_with("'=cmd"), "{:?}", name_refused);
    }

    #[test]
    fn json_has_the_stable_field_names() {
        let mut out = Vec::new();
        write(&mut out, &report(), Format::Json).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["totals"]["crossed_objects"], 1);
        assert_eq!(v["totals"]["quarantined"], 3);
        assert_eq!(v["channels"][0]["channel"], "to-internet");
        assert_eq!(v["channels"][0]["crossed_bytes"], 2048);
        assert_eq!(v["refusals"][0]["reason"], "keyword_match");
        assert_eq!(v["verification"]["verified"], false);
        assert_eq!(v["zone"], "Asia/Shanghai");
    }

    #[test]
    fn a_long_period_is_charted_per_month() {
        let day = |d: &str, n: u64| {
            let c = Counts {
                crossed_objects: 1,
                crossed_bytes: n,
                ..Counts::default()
            };
            (d.to_string(), c)
        };
        let (bars, title) = crossed_bars(
            vec![day("2026-11-29", 5), day("2026-11-30", 7)],
            2 * 86_400_000,
        );
        assert_eq!(bars.len(), 2);
        assert!(title.contains("per day"));
        let mut year: Vec<(String, Counts)> = (1..=28)
            .flat_map(|d| {
                [
                    day(&format!("2026-01-{d:02}"), 1),
                    day(&format!("2026-02-{d:02}"), 2),
                    day(&format!("2026-03-{d:02}"), 3),
                ]
            })
            .collect();
        year.sort_by(|a, b| a.0.cmp(&b.0));
        let (bars, title) = crossed_bars(year, 365 * 86_400_000);
        assert!(title.contains("per month"));
        assert_eq!(bars[0].0, "2026-01");
        assert_eq!(bars[1].0, "2026-02");
        assert_eq!((bars[0].1, bars[1].1, bars[2].1), (28, 56, 84));
        assert_eq!(bars.len(), 3);
        // a long period with few active days is charted per month too
        let few = vec![day("2026-01-05", 1), day("2026-06-05", 2)];
        let (bars, title) = crossed_bars(few, 200 * 86_400_000);
        assert!(title.contains("per month"));
        assert_eq!(bars.len(), 2);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
