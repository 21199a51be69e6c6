//! What each console page shows, read from the running node: its health (as `/healthz`
//! says it), its counters, the audit log's verification (as `audit verify`), searches of the
//! log (`audit::query`'s filter), an object's trail and inclusion proof (`audit prove`), the
//! quarantine (`node::quarantine`'s listing) and what waits for approval
//! (`node::approvals`). Read only: nothing here writes.
//!
//! ```text
//!  Node ─► overview   name, zone, health::problems, counters from the metrics, LogCheck
//!       ─► search     form fields ─► FilterArgs ─► Filter ─► for_each_match ─► last 200
//!       ─► object     Filter{object} ─► trail; prove ─► verify_proof; quarantine::find
//!       ─► quarantine quarantine::list (newest first, at most 1000)
//!       ─► approvals  approvals::list ─► the exact messages to sign, hex
//!       ─► health     health::problems + the metrics text
//! ```

use crate::audit::query::{self, Filter, FilterArgs};
use crate::audit::{prove, read, when};
use crate::core::approval::{self, Decision};
use crate::node::Node;
use jiff::tz::TimeZone;
use minijinja::{Value, context};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// Most search results shown (the latest matches).
pub const MAX_ROWS: usize = 200;
/// Most quarantine entries shown (the newest).
pub const MAX_QUARANTINE_ROWS: usize = 1000;
/// The audit log is verified again at most this often, in ms.
pub const LOG_CHECK_EVERY_MS: u64 = 5000;
/// Longest value taken from a search field, in bytes.
pub const MAX_FIELD: usize = 255;
/// Node-level events a search leaves out unless its event filter names one: they are about
/// the link and the log, not about objects, and would crowd out what an officer looks for.
pub const NODE_EVENTS: &[&str] = &["witnessed", "link_up", "link_down"];

/// The search form's fields, as given.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SearchForm {
    /// Name contains.
    pub q: String,
    /// Hash of the content: SHA-256, or SM3 in a `gm` log (either is searched).
    pub sha256: String,
    /// From (any form of `when`).
    pub since: String,
    /// Until.
    pub until: String,
    /// Channel.
    pub channel: String,
    /// Event.
    pub event: String,
    /// Reason code.
    pub reason: String,
}

impl SearchForm {
    /// The fields of a query string's pairs; `None` when the query names none (the form
    /// was not sent yet).
    pub fn from_pairs(pairs: &[(String, String)]) -> Option<SearchForm> {
        let mut f = SearchForm::default();
        let mut any = false;
        for (k, v) in pairs {
            let v: String = v.trim().chars().take(MAX_FIELD).collect();
            let slot = match k.as_str() {
                "q" => &mut f.q,
                "sha256" => &mut f.sha256,
                "since" => &mut f.since,
                "until" => &mut f.until,
                "channel" => &mut f.channel,
                "event" => &mut f.event,
                "reason" => &mut f.reason,
                _ => continue,
            };
            any = true;
            *slot = v;
        }
        any.then_some(f)
    }

    /// The filter arguments of `audit query` these fields mean: the name as a substring
    /// (`*q*`); without an event, the [`NODE_EVENTS`] are left out.
    pub fn args(&self) -> FilterArgs {
        let one = |s: &str| {
            if s.is_empty() {
                Vec::new()
            } else {
                vec![s.to_string()]
            }
        };
        FilterArgs {
            since: (!self.since.is_empty()).then(|| self.since.clone()),
            until: (!self.until.is_empty()).then(|| self.until.clone()),
            channels: one(&self.channel),
            events: one(&self.event),
            reasons: one(&self.reason),
            names: if self.q.is_empty() {
                Vec::new()
            } else {
                vec![format!("*{}*", self.q)]
            },
            // one box for the content hash: SHA-256, or SM3 in a `gm` pair's log
            sha256s: one(&self.sha256),
            sm3s: one(&self.sha256),
            not_events: if self.event.is_empty() {
                NODE_EVENTS.iter().map(|e| e.to_string()).collect()
            } else {
                Vec::new()
            },
            ..FilterArgs::default()
        }
    }
}

/// A search the console cannot run, as the label that says why (in the page's language)
/// and the value given.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SearchError {
    /// The label's key in [`super::lang`] (`bad_since`, …); empty when none.
    pub label: &'static str,
    /// The value given, or the log's error (not translated: it names files).
    pub value: String,
}

impl SearchError {
    fn of(e: &query::FilterError) -> SearchError {
        use query::FilterError as F;
        let (label, value) = match e {
            F::Time {
                flag: "--until", ..
            } => ("bad_until", String::new()),
            F::Time { .. } => ("bad_since", String::new()),
            F::Event(v) => ("bad_event", v.clone()),
            F::Reason(v) => ("bad_reason", v.clone()),
            F::Sha256(v) | F::Sm3(v) => ("bad_sha256", v.clone()),
            F::Verdict(v) | F::Object(v) => ("bad_search", v.clone()),
        };
        SearchError { label, value }
    }
}

/// The audit log's verification, as last checked.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LogStatus {
    /// Whether it verifies.
    pub ok: bool,
    /// Why not.
    pub error: String,
    /// Records verified.
    pub records: u64,
    /// Checkpoints verified.
    pub checkpoints: usize,
    /// Records after the last checkpoint.
    pub unsigned_tail: u64,
    /// When it was checked (node's time zone).
    pub checked_at: String,
}

/// `audit verify` over the node's log, at most every [`LOG_CHECK_EVERY_MS`].
#[derive(Debug, Default)]
pub struct LogCheck {
    last: Mutex<Option<(u64, LogStatus)>>,
}

impl LogCheck {
    /// The status, verified again when the last check is older than
    /// [`LOG_CHECK_EVERY_MS`] (`mono_ms` on the monotonic clock).
    pub fn status(&self, node: &Node, tz: &TimeZone, mono_ms: u64) -> LogStatus {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, s)) = last.as_ref()
            && mono_ms.saturating_sub(*at) < LOG_CHECK_EVERY_MS
        {
            return s.clone();
        }
        let checked_at = when::format(crate::now_ms(), tz);
        let s = match read::verify(&node.cfg.node.audit_dir, None) {
            Ok(r) => LogStatus {
                ok: true,
                error: String::new(),
                records: r.records,
                checkpoints: r.checkpoints,
                unsigned_tail: r.unsigned_tail,
                checked_at,
            },
            Err(e) => LogStatus {
                ok: false,
                error: e.to_string(),
                checked_at,
                ..LogStatus::default()
            },
        };
        *last = Some((mono_ms, s.clone()));
        s
    }
}

/// Sums of the counters (`*_total`) in Prometheus text, over their labels; those not zero,
/// each with its sum as shown (whole numbers without a fraction).
pub fn counters(metrics: &str) -> Vec<(String, String)> {
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    for line in metrics.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        if !name.ends_with("_total") {
            continue;
        }
        if let Ok(v) = value.parse::<f64>() {
            *sums.entry(name.to_string()).or_default() += v;
        }
    }
    sums.into_iter()
        .filter(|(_, v)| *v != 0.0)
        .map(|(k, v)| {
            let shown = if v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{v:.0}")
            } else {
                v.to_string()
            };
            (k, shown)
        })
        .collect()
}

/// The overview page's data.
pub fn overview(node: &Node, tz: &TimeZone, log: LogStatus) -> Value {
    let problems = crate::node::health::problems(node);
    crate::node::health::refresh(node);
    let metrics = String::from_utf8_lossy(&node.metrics.encode()).into_owned();
    context! {
        zone => node.cfg.node.zone.clone(),
        peer => node.cfg.peer.name.clone(),
        tz => when::zone_name(tz, crate::now_ms()),
        problems => problems,
        log => Value::from(minijinja::value::Serde(&log)),
        counters => counters(&metrics),
    }
}

/// The health page's data.
pub fn health(node: &Node) -> Value {
    let problems = crate::node::health::problems(node);
    crate::node::health::refresh(node);
    let metrics = String::from_utf8_lossy(&node.metrics.encode()).into_owned();
    context! { problems => problems, metrics => metrics.lines().map(str::to_string).collect::<Vec<_>>() }
}

fn record_row(r: &crate::audit::Record, tz: &TimeZone) -> Value {
    context! {
        seq => r.seq,
        time => when::format(r.time_ms, tz),
        event => r.event.as_str(),
        channel => r.channel.clone().unwrap_or_default(),
        object_id => r.object_id.clone().unwrap_or_default(),
        name => r.name.clone().unwrap_or_default(),
        // a size only for records about an object
        size => r.size.filter(|_| r.object_id.is_some()).map(|s| s.to_string()).unwrap_or_default(),
        sha256 => r.sha256.clone().or_else(|| r.sm3.clone()).unwrap_or_default(),
        reason => r.reason.map(|x| x.as_str()).unwrap_or_default(),
        detail => r.detail.clone().unwrap_or_default(),
    }
}

/// The search page's data: the form (blank when `form` is `None`) and, when sent, the latest
/// [`MAX_ROWS`] matching records.
pub fn search(node: &Node, tz: &TimeZone, form: Option<SearchForm>) -> Value {
    let channels: Vec<String> = node.cfg.channels.iter().map(|c| c.name.clone()).collect();
    let (rows, truncated, error) = match &form {
        None => (Vec::new(), false, SearchError::default()),
        Some(f) => match Filter::from_args(&f.args(), tz, crate::now_ms()) {
            Err(e) => {
                let mut e = SearchError::of(&e);
                if e.label == "bad_since" {
                    e.value = f.since.clone();
                } else if e.label == "bad_until" {
                    e.value = f.until.clone();
                }
                (Vec::new(), false, e)
            }
            Ok(filter) => {
                let mut last: VecDeque<Value> = VecDeque::new();
                let mut truncated = false;
                let scan = query::for_each_match(&node.cfg.node.audit_dir, &filter, |_, r| {
                    if last.len() == MAX_ROWS {
                        last.pop_front();
                        truncated = true;
                    }
                    last.push_back(record_row(r, tz));
                    Ok(())
                });
                match scan {
                    Ok(_) => (
                        last.into_iter().rev().collect(),
                        truncated,
                        SearchError::default(),
                    ),
                    Err(e) => (
                        Vec::new(),
                        false,
                        SearchError {
                            label: "log_unreadable",
                            value: e.to_string(),
                        },
                    ),
                }
            }
        },
    };
    context! {
        f => Value::from(minijinja::value::Serde(form.clone().unwrap_or_default())),
        searched => form.is_some(),
        tz => when::zone_name(tz, crate::now_ms()),
        channels => channels,
        events => query::event_names(),
        reasons => query::reason_names(),
        error => Value::from(minijinja::value::Serde(&error)),
        rows => rows,
        truncated => truncated,
    }
}

/// The object page's data, or `None` when `id` is not an object id or the log has no
/// record of it (the console answers 404).
pub fn object(node: &Node, tz: &TimeZone, id: &str) -> Option<Value> {
    let id = query::parse_object(id).ok()?;
    let filter = Filter {
        object_ids: vec![id.clone()],
        ..Filter::default()
    };
    let mut trail = Vec::new();
    let _ = query::for_each_match(&node.cfg.node.audit_dir, &filter, |_, r| {
        if trail.len() < 10_000 {
            trail.push(record_row(r, tz));
        }
        Ok(())
    });
    if trail.is_empty() {
        return None;
    }
    let (proof, proof_error) = match prove::prove(&node.cfg.node.audit_dir, &id, None) {
        Ok(p) => {
            let check = crate::keys::VerifyKey::parse(&p.public_key)
                .ok_or_else(|| "no public key in the proof".to_string())
                .and_then(|k| prove::verify_proof(&p, &k).map_err(|e| e.to_string()));
            let (verified, error) = match check {
                Ok(_) => (true, String::new()),
                Err(e) => (false, e),
            };
            let entries: Vec<Value> = p
                .entries
                .iter()
                .map(|e| context! { index => e.index, path => e.path.clone() })
                .collect();
            (
                Some(context! {
                    verified => verified,
                    error => error,
                    // one line each: the note's newlines are its format, not a publisher's
                    checkpoint => p.checkpoint.lines().map(str::to_string).collect::<Vec<_>>(),
                    entries => entries,
                }),
                String::new(),
            )
        }
        Err(e) => (None, e.to_string()),
    };
    let entry = crate::node::quarantine::find(&crate::node::desk::quarantine_dirs(&node.cfg), &id)
        .ok()
        .flatten()
        .map(|e| quarantine_row(&e, tz));
    Some(context! {
        id => id,
        trail => trail,
        proof => proof,
        proof_error => proof_error,
        entry => entry,
    })
}

fn quarantine_row(e: &crate::node::quarantine::Listed, tz: &TimeZone) -> Value {
    context! {
        object_id => e.object_id.clone(),
        time => when::format(e.time_ms, tz),
        channel => e.channel.clone(),
        name => e.name.clone(),
        size => e.size.map(|s| s.to_string()).unwrap_or_default(),
        reason => e.reason.clone(),
        detail => e.detail.clone(),
        side => e.side.clone(),
    }
}

/// The quarantine page's data: the newest [`MAX_QUARANTINE_ROWS`] entries first.
pub fn quarantine(node: &Node, tz: &TimeZone) -> Value {
    let (entries, error) =
        match crate::node::quarantine::list(&crate::node::desk::quarantine_dirs(&node.cfg)) {
            Ok(all) => (
                all.iter()
                    .rev()
                    .take(MAX_QUARANTINE_ROWS)
                    .map(|e| quarantine_row(e, tz))
                    .collect(),
                String::new(),
            ),
            Err(e) => (Vec::new(), e.to_string()),
        };
    context! { entries => entries, error => error }
}

/// The exact bytes an approver signs for `decision` on a pending object whose digest is
/// `digest_hex`, as hex; empty when the digest is not 64 hex digits.
pub fn message_hex(decision: Decision, digest_hex: &str) -> String {
    let mut d = [0u8; 32];
    match hex::decode_to_slice(digest_hex, &mut d) {
        Ok(()) => hex::encode(approval::message(decision, &d)),
        Err(_) => String::new(),
    }
}

/// The approvals page's data: every pending object with the messages to sign.
pub fn approvals(node: &Node, tz: &TimeZone) -> Value {
    let (pending, error) = match crate::node::approvals::list(&node.cfg.node.state_dir) {
        Ok(list) => (
            list.iter()
                .map(|p| {
                    context! {
                        id => p.id.clone(),
                        digest => p.digest.clone(),
                        channel => p.channel.clone(),
                        name => p.name.clone(),
                        sha256 => p.content_hash().to_string(),
                        size => p.size,
                        since => when::format(p.pending_since_ms, tz),
                        expires => when::format(p.expires_ms, tz),
                        required => p.required,
                        approvals => Value::from(minijinja::value::Serde(&p.approvals)),
                        levels_missing => p.levels_missing.clone(),
                        approve_message => message_hex(Decision::Approve, &p.digest),
                        reject_message => message_hex(Decision::Reject, &p.digest),
                    }
                })
                .collect(),
            String::new(),
        ),
        Err(e) => (Vec::new(), e.to_string()),
    };
    context! {
        pending => pending,
        error => error,
        config => node.cfg.file.display().to_string(),
        // SM2 approvers sign with `isogate approve` only: the browser has no SM2
        gm => node.cfg.node.suite == crate::keys::suite::Suite::Gm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_over_labels() {
        let text = "# HELP x\nisogate_a_total{channel=\"c\"} 2\nisogate_a_total{channel=\"d\"} 3\nisogate_b_total 0\nisogate_g 7\n";
        assert_eq!(
            counters(text),
            vec![("isogate_a_total".to_string(), "5".to_string())]
        );
    }

    #[test]
    fn search_form_means_audit_query_filters() {
        let pairs = vec![
            ("q".to_string(), " 判决 ".to_string()),
            ("event".to_string(), "landed".to_string()),
            ("channel".to_string(), String::new()),
        ];
        let f = SearchForm::from_pairs(&pairs).unwrap();
        let a = f.args();
        assert_eq!(a.names, vec!["*判决*".to_string()]);
        assert_eq!(a.events, vec!["landed".to_string()]);
        assert!(a.channels.is_empty() && a.since.is_none());
        assert!(
            a.not_events.is_empty(),
            "an event asked for: nothing left out"
        );
        let plain = SearchForm::from_pairs(&[("q".into(), "x".into())])
            .unwrap()
            .args();
        assert_eq!(plain.not_events, vec!["witnessed", "link_up", "link_down"]);
        let tz = when::zone(Some("UTC")).unwrap();
        for (k, v, label) in [
            ("since", "tomorrow-ish", "bad_since"),
            ("until", "2026-13-45", "bad_until"),
            ("event", "landing", "bad_event"),
            ("reason", "nope", "bad_reason"),
            ("sha256", "abc", "bad_sha256"),
        ] {
            let f = SearchForm::from_pairs(&[(k.into(), v.into())]).unwrap();
            let e = Filter::from_args(&f.args(), &tz, 0).unwrap_err();
            assert_eq!(SearchError::of(&e).label, label, "{k}");
            assert!(super::super::lang::Lang::Zh.labels().contains_key(label));
        }
        assert!(SearchForm::from_pairs(&[("lang".into(), "zh".into())]).is_none());
        let m = message_hex(Decision::Approve, &"11".repeat(32));
        assert!(m.starts_with(&hex::encode(b"isogate approval v1\0approve\0")));
        assert_eq!(message_hex(Decision::Approve, "zz"), "");
    }
}
