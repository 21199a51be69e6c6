//! `isogate audit report`: one node's audit log over a period, summed up per day (in the
//! officer's zone) and per channel — what crossed, what was refused and why, what was masked,
//! quarantined, sent twice or lost, key and policy changes, clock steps and link mismatches —
//! with the verification status of the log and of the peer's witness. Records in, a
//! [`Report`] out, no I/O: the command reads the log and renders the report
//! (`report_render`).
//!
//! ```text
//!  records, in log order ──► Builder::add ──┐   (one at a time: memory holds the sums
//!  read::verify's result ──► Verification ──┼─►  and one 16-byte id per object crossed,
//!                                           │    not the records)
//!  witnessed records, --peer ► Witness ─────┴─► Builder::finish ─► Report ─► text | CSV |
//!                                                                           JSON | HTML
//! ```
//!
//! What counts, per (day, channel):
//! - **crossed**: an object that `landed` here (receiving side), or that the peer `confirmed`
//!   (quic) or the sender `retired` after its last copy (diode) (sending side); each object
//!   once, by its id, whatever records repeat it (a delivery finished after a restart, a
//!   resend confirmed again). Bytes: the object's size in that record. `sent` records are
//!   attempts, not crossings, and are not counted.
//! - **refused**: `refused` records (this node refused as sender); **quarantined**:
//!   `quarantined` records (this node refused as receiver). Both are broken down by reason,
//!   with the most frequent names and matched rules (keyword, pattern, marking, kind of
//!   personal data, antivirus signature; for other reasons the refusal's detail).
//! - **masked**, **duplicates**, **lost**, **key switches**, **policy reloads / refusals**,
//!   **clock steps**, **link mismatches**: one per record of that event.
//! - **messages** (channels of kind `messages`): on the sending node **accepted**
//!   (`message_accepted`: durable in a batch; a masked one also counts as **masked**) and
//!   **refused** (`message_refused`, also listed by reason with the refusals); on the
//!   receiving node **delivered** (`message_delivered`: in the message log, once per id) and
//!   **duplicates** (`message_duplicate`: dropped, already there). The batches they cross in
//!   are objects, counted as crossed like files.
//!
//! Events of the node as a whole (key switches, clock steps, link mismatches, objects whose
//! manifest could not be trusted) have no channel: they are counted under the channel `""`
//! and kept whatever `--channel` filter is given.

use super::{Event, Record, reconcile, when};
use crate::core::reason::Reason;
use jiff::tz::TimeZone;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// How many names or rules are listed per reason.
pub const TOP: usize = 5;
/// Distinct names (or rules) counted per (channel, reason); later new ones count as
/// [`OTHERS`]: the report's memory stays bounded whatever the log holds.
pub const MAX_DISTINCT: usize = 1000;
/// The name under which values beyond [`MAX_DISTINCT`] are counted.
pub const OTHERS: &str = "(others)";
/// Key, policy, clock and link changes listed one by one; later ones are only counted.
pub const MAX_CHANGES: usize = 500;
/// Periods up to this many days list every day, even days with no record.
pub const MAX_LISTED_DAYS: u64 = 62;

/// The counts of one day and channel, one channel, or the whole period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Objects crossed (landed here, or confirmed / retired as sender), each once.
    pub crossed_objects: u64,
    /// Their bytes.
    pub crossed_bytes: u64,
    /// `refused` records: refused by this node as sender.
    pub refused: u64,
    /// `quarantined` records: refused by this node as receiver; on a sending node also the
    /// objects whose receipt says the receiver quarantined them (`confirmed quarantined`).
    pub quarantined: u64,
    /// `masked` records: personal data masked in what crossed.
    pub masked: u64,
    /// `duplicate` records: objects that arrived again and were not delivered twice.
    pub duplicates: u64,
    /// `lost` records: diode objects retired by the sender that never arrived whole.
    pub lost: u64,
    /// `key_switched` records.
    pub key_switches: u64,
    /// `policy_reloaded` records.
    pub policy_reloads: u64,
    /// `policy_refused` records.
    pub policy_refusals: u64,
    /// `clock_step` records.
    pub clock_steps: u64,
    /// `link_mismatch` records.
    pub link_mismatches: u64,
    /// `message_accepted` records: messages durable in a batch on the sending node.
    pub messages_accepted: u64,
    /// `message_refused` records: messages refused by the sending node.
    pub messages_refused: u64,
    /// `message_delivered` records: messages appended to the receiving node's message log.
    pub messages_delivered: u64,
    /// `message_duplicate` records: messages that arrived again and were dropped.
    pub messages_duplicates: u64,
}

impl Counts {
    /// Adds `o` to these counts (saturating).
    pub fn add(&mut self, o: &Counts) {
        self.crossed_objects = self.crossed_objects.saturating_add(o.crossed_objects);
        self.crossed_bytes = self.crossed_bytes.saturating_add(o.crossed_bytes);
        self.refused = self.refused.saturating_add(o.refused);
        self.quarantined = self.quarantined.saturating_add(o.quarantined);
        self.masked = self.masked.saturating_add(o.masked);
        self.duplicates = self.duplicates.saturating_add(o.duplicates);
        self.lost = self.lost.saturating_add(o.lost);
        self.key_switches = self.key_switches.saturating_add(o.key_switches);
        self.policy_reloads = self.policy_reloads.saturating_add(o.policy_reloads);
        self.policy_refusals = self.policy_refusals.saturating_add(o.policy_refusals);
        self.clock_steps = self.clock_steps.saturating_add(o.clock_steps);
        self.link_mismatches = self.link_mismatches.saturating_add(o.link_mismatches);
        self.messages_accepted = self.messages_accepted.saturating_add(o.messages_accepted);
        self.messages_refused = self.messages_refused.saturating_add(o.messages_refused);
        self.messages_delivered = self.messages_delivered.saturating_add(o.messages_delivered);
        self.messages_duplicates = self
            .messages_duplicates
            .saturating_add(o.messages_duplicates);
    }

    /// Refusals on either side: `refused` + `quarantined`.
    pub fn refusals(&self) -> u64 {
        self.refused.saturating_add(self.quarantined)
    }
}

/// One day of one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayRow {
    /// The calendar day in the report's zone, `2026-11-30`.
    pub day: String,
    /// The channel (`""`: the node as a whole).
    pub channel: String,
    /// Its counts.
    #[serde(flatten)]
    pub counts: Counts,
}

/// One channel over the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelRow {
    /// The channel (`""`: the node as a whole).
    pub channel: String,
    /// This node's side of it, as its records show: `sender`, `receiver` or `""` (unknown).
    pub role: String,
    /// Its counts.
    #[serde(flatten)]
    pub counts: Counts,
}

/// A value and how often it was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Top {
    /// The name, rule or detail.
    pub value: String,
    /// How many records.
    pub count: u64,
}

/// The refusals of one reason on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusalRow {
    /// The channel (`""`: objects whose manifest could not be trusted).
    pub channel: String,
    /// The reason code (`keyword_match`, `malware`, …).
    pub reason: String,
    /// `refused` records (this node as sender).
    pub refused: u64,
    /// `quarantined` records (this node as receiver).
    pub quarantined: u64,
    /// `message_refused` records (this node as sender). A messages file refused for one of
    /// its lines counts here for that message and under `refused` for the file.
    pub messages_refused: u64,
    /// The most frequent object names, at most [`TOP`], most frequent first.
    pub top_names: Vec<Top>,
    /// The most frequent matched rules (see the module header), at most [`TOP`].
    pub top_rules: Vec<Top>,
}

impl RefusalRow {
    /// Its records of every kind: `refused` + `quarantined` + `messages_refused`.
    pub fn total(&self) -> u64 {
        self.refused
            .saturating_add(self.quarantined)
            .saturating_add(self.messages_refused)
    }
}

/// A key, policy, clock or link change, one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The record's seq.
    pub seq: u64,
    /// When, ms since the epoch.
    pub time_ms: u64,
    /// When, RFC 3339 in the report's zone.
    pub time: String,
    /// The event (`key_switched`, `policy_reloaded`, `policy_refused`, `clock_step`,
    /// `link_mismatch`).
    pub event: String,
    /// The channel, if any.
    pub channel: String,
    /// The record's detail.
    pub detail: String,
}

/// Whether the log verifies (`read::verify`, with the pinned key when one is given).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// The whole log verifies against its signed checkpoints.
    pub verified: bool,
    /// A pinned key (`--key`) was checked, not only the log's own `node.pub`.
    pub pinned_key: bool,
    /// One line: a summary, or where and how the log fails.
    pub detail: String,
    /// Records verified (0 when it fails).
    pub records: u64,
    /// Signed checkpoints verified.
    pub checkpoints: u64,
    /// Records after the last checkpoint, not yet covered by a signature.
    pub unsigned_tail: u64,
    /// Fingerprints of the keys the log was signed with, oldest first.
    pub keys: Vec<String>,
}

impl Verification {
    /// The status from `read::verify`'s answer.
    pub fn from_verify(
        r: &Result<super::read::Report, super::read::VerifyError>,
        pinned_key: bool,
    ) -> Verification {
        match r {
            Ok(r) => Verification {
                verified: true,
                pinned_key,
                detail: format!(
                    "{} records of node {} in {} segment(s), {} signed checkpoint(s), the last covering {} records",
                    r.records, r.node, r.segments, r.checkpoints, r.last_checkpoint
                ),
                records: r.records,
                checkpoints: r.checkpoints as u64,
                unsigned_tail: r.unsigned_tail,
                keys: r.timeline.keys().iter().map(|k| k.fingerprint()).collect(),
            },
            Err(e) => Verification {
                verified: false,
                pinned_key,
                detail: e.to_string(),
                records: 0,
                checkpoints: 0,
                unsigned_tail: 0,
                keys: Vec::new(),
            },
        }
    }
}

/// The newest `witnessed` record: this node checked a signed checkpoint of its peer's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Witnessed {
    /// The record's seq.
    pub seq: u64,
    /// When, ms since the epoch.
    pub time_ms: u64,
    /// When, RFC 3339 in the report's zone.
    pub time: String,
    /// The peer whose checkpoint it was.
    pub peer: String,
    /// The size of the peer's log that checkpoint covers.
    pub size: u64,
}

/// The peer's witness, both ways.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Witness {
    /// The newest `witnessed` record of this log (whatever the period): how far this node
    /// has corroborated its peer's log. `None`: never.
    pub newest: Option<Witnessed>,
    /// Whether the peer's log was read (`--peer DIR`).
    pub peer_checked: bool,
    /// Checkpoints of this node that the peer witnessed and that match this log.
    pub peer_witnessed_ok: u64,
    /// Sizes of checkpoints the peer witnessed that this log no longer matches (or that do
    /// not verify under this node's keys): a rewritten history.
    pub peer_witness_mismatch: Vec<u64>,
    /// Why the peer's log could not be read, if it could not.
    pub peer_error: Option<String>,
}

impl Witness {
    /// Fills the `--peer` part from `reconcile(this node's log, the peer's log)`.
    pub fn set_peer(&mut self, r: Result<reconcile::Reconciliation, String>) {
        self.peer_checked = true;
        match r {
            Ok(r) => {
                self.peer_witnessed_ok = r.witness_ok as u64;
                self.peer_witness_mismatch = r.witness_mismatch;
            }
            Err(e) => self.peer_error = Some(e),
        }
    }

    /// One line for people: `ok`, `none` or what is wrong with the peer's witness.
    pub fn peer_status(&self) -> String {
        if !self.peer_checked {
            "not checked (give --peer PEER_AUDIT_DIR)".to_string()
        } else if let Some(e) = &self.peer_error {
            format!("ERROR: the peer's log cannot be read: {e}")
        } else if !self.peer_witness_mismatch.is_empty() {
            format!(
                "MISMATCH: the peer witnessed checkpoints this log no longer matches (sizes {:?})",
                self.peer_witness_mismatch
            )
        } else if self.peer_witnessed_ok == 0 {
            "none: the peer witnessed no checkpoint of this log".to_string()
        } else {
            format!(
                "ok: the peer witnessed {} checkpoint(s) of this log, all matching",
                self.peer_witnessed_ok
            )
        }
    }

    /// Whether the peer's witness shows a problem (a mismatch or an unreadable peer log).
    pub fn peer_failed(&self) -> bool {
        self.peer_error.is_some() || !self.peer_witness_mismatch.is_empty()
    }
}

/// What the report covers.
#[derive(Debug, Clone)]
pub struct Params {
    /// From this time (ms since the epoch), included.
    pub since_ms: u64,
    /// To this time, excluded.
    pub until_ms: u64,
    /// The zone of days and printed times.
    pub tz: TimeZone,
    /// Only these channels (empty: all); node-wide records are kept.
    pub channels: Vec<String>,
    /// When the report is made (ms since the epoch).
    pub now_ms: u64,
}

/// The summary of one node's log over a period. Field names are stable (the JSON form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The node whose log it is.
    pub node: String,
    /// The zone of days and times (`Asia/Shanghai`, `UTC`, `+08:00`).
    pub zone: String,
    /// Start of the period, ms since the epoch (included).
    pub since_ms: u64,
    /// End of the period, ms since the epoch (excluded).
    pub until_ms: u64,
    /// Start, RFC 3339 in the zone.
    pub since: String,
    /// End, RFC 3339 in the zone.
    pub until: String,
    /// When the report was made, RFC 3339 in the zone.
    pub generated: String,
    /// The channels asked for (empty: all).
    pub channel_filter: Vec<String>,
    /// Records of the period that the report read (after the channel filter).
    pub records: u64,
    /// The whole period.
    pub totals: Counts,
    /// Per channel, by name.
    pub channels: Vec<ChannelRow>,
    /// Per day and channel, by day then channel; days without records are listed (with
    /// the channel `""`) when the period is at most [`MAX_LISTED_DAYS`] days.
    pub days: Vec<DayRow>,
    /// Refusals per channel and reason, most frequent first.
    pub refusals: Vec<RefusalRow>,
    /// Key, policy, clock and link changes, in log order (at most [`MAX_CHANGES`]).
    pub changes: Vec<Change>,
    /// Changes beyond [`MAX_CHANGES`], counted only.
    pub changes_omitted: u64,
    /// The log's verification.
    pub verification: Verification,
    /// The peer's witness.
    pub witness: Witness,
}

/// A bounded counter of distinct values.
#[derive(Default)]
struct Tally(HashMap<String, u64>);

impl Tally {
    fn add(&mut self, value: &str) {
        if let Some(n) = self.0.get_mut(value) {
            *n += 1;
        } else if self.0.len() < MAX_DISTINCT {
            self.0.insert(value.to_string(), 1);
        } else {
            *self.0.entry(OTHERS.to_string()).or_insert(0) += 1;
        }
    }

    fn top(&self) -> Vec<Top> {
        let mut v: Vec<Top> = self
            .0
            .iter()
            .map(|(value, count)| Top {
                value: value.clone(),
                count: *count,
            })
            .collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        v.truncate(TOP);
        v
    }
}

#[derive(Default)]
struct Refusals {
    refused: u64,
    quarantined: u64,
    messages_refused: u64,
    names: Tally,
    rules: Tally,
}

/// Builds a [`Report`] from records given one at a time, in log order.
pub struct Builder {
    params: Params,
    node: String,
    records: u64,
    days: BTreeMap<(String, String), Counts>,
    roles: BTreeMap<String, (bool, bool)>,
    refusals: BTreeMap<(String, &'static str), Refusals>,
    crossed: HashSet<u128>,
    changes: Vec<Change>,
    changes_omitted: u64,
    newest_witness: Option<Witnessed>,
    seen_channels: std::collections::BTreeSet<String>,
}

/// The rule a refusal's detail names: the keyword or pattern after `matches rule `, the
/// marking after `classification marking `, the kind of personal data before ` found`, the
/// signature after `antivirus found `; else the detail itself (clipped to 120 characters).
pub fn rule_of(reason: Reason, detail: &str) -> Option<String> {
    let detail = detail.trim();
    if detail.is_empty() {
        return None;
    }
    let after = |mark: &str| detail.find(mark).map(|i| &detail[i + mark.len()..]);
    let found = match reason {
        Reason::KeywordMatch => after("matches rule "),
        Reason::ClassificationMarking => after("classification marking "),
        Reason::Malware => after("antivirus found "),
        Reason::PersonalData => detail.find(" found").map(|end| {
            let head = &detail[..end];
            head.rfind(": ").map_or(head, |i| &head[i + 2..])
        }),
        _ => None,
    };
    Some(found.unwrap_or(detail).chars().take(120).collect())
}

/// A change's detail: the record's, after the entry's name and object id for an officer's
/// quarantine action (which entry was released or purged).
fn change_detail(r: &Record) -> String {
    let detail = r.detail.clone().unwrap_or_default();
    match r.event {
        Event::QuarantineReleased
        | Event::QuarantineReleaseRefused
        | Event::QuarantinePurged
        | Event::Approved
        | Event::ApprovalRejected
        | Event::ApprovalRequestRefused
        | Event::ApprovalWaived => {
            format!(
                "{} ({}): {detail}",
                r.name.as_deref().unwrap_or("?"),
                r.object_id.as_deref().unwrap_or("?")
            )
        }
        _ => detail,
    }
}

impl Builder {
    /// A builder for the period and channels of `params`.
    pub fn new(params: Params) -> Builder {
        Builder {
            params,
            node: String::new(),
            records: 0,
            days: BTreeMap::new(),
            roles: BTreeMap::new(),
            refusals: BTreeMap::new(),
            crossed: HashSet::new(),
            changes: Vec::new(),
            changes_omitted: 0,
            newest_witness: None,
            seen_channels: std::collections::BTreeSet::new(),
        }
    }

    /// The channels named by the records added so far, whatever their time (at most
    /// [`MAX_DISTINCT`]): what a `--channel` filter can be checked against.
    pub fn seen_channels(&self) -> &std::collections::BTreeSet<String> {
        &self.seen_channels
    }

    /// Counts one record (records outside the period or the channels asked for are skipped;
    /// `witnessed` records are followed whatever their time).
    pub fn add(&mut self, r: &Record) {
        if self.node.is_empty() {
            self.node = r.node.clone();
        }
        let tz = &self.params.tz;
        if r.event == Event::Witnessed {
            self.newest_witness = Some(Witnessed {
                seq: r.seq,
                time_ms: r.time_ms,
                time: when::format(r.time_ms, tz),
                peer: r.peer.clone().unwrap_or_default(),
                size: r.size.unwrap_or(0),
            });
        }
        if let Some(c) = &r.channel
            && self.seen_channels.len() < MAX_DISTINCT
            && !self.seen_channels.contains(c)
        {
            self.seen_channels.insert(c.clone());
        }
        if r.time_ms < self.params.since_ms || r.time_ms >= self.params.until_ms {
            return;
        }
        let channel = r.channel.clone().unwrap_or_default();
        if !channel.is_empty()
            && !self.params.channels.is_empty()
            && !self.params.channels.contains(&channel)
        {
            return;
        }
        self.records += 1;
        let role = match r.event {
            Event::Taken
            | Event::Accepted
            | Event::Refused
            | Event::Sealed
            | Event::Sent
            | Event::Confirmed
            | Event::Retired
            | Event::Resent
            | Event::MessageAccepted => Some(true),
            // a message the receiving node refused in a batch it checked names its peer
            Event::MessageRefused => Some(r.peer.is_none()),
            Event::Landed
            | Event::Quarantined
            | Event::Duplicate
            | Event::Lost
            | Event::MessageDelivered
            | Event::MessageDuplicate => Some(false),
            _ => None,
        };
        if let Some(sender) = role
            && !channel.is_empty()
        {
            let e = self.roles.entry(channel.clone()).or_default();
            if sender { e.0 = true } else { e.1 = true }
        }
        let mut c = Counts::default();
        let mut change = false;
        match r.event {
            // the receiver's receipt said it quarantined the object: refused there, never
            // crossed (the receiver's own log has the reason)
            Event::Confirmed if r.detail.as_deref() == Some("quarantined") => c.quarantined = 1,
            Event::Landed | Event::Confirmed | Event::Retired => {
                let id = r
                    .object_id
                    .as_deref()
                    .and_then(|h| u128::from_str_radix(h, 16).ok());
                if id.is_none_or(|id| self.crossed.insert(id)) {
                    c.crossed_objects = 1;
                    c.crossed_bytes = r.size.unwrap_or(0);
                }
            }
            Event::Refused | Event::Quarantined | Event::MessageRefused => {
                match r.event {
                    Event::Refused => c.refused = 1,
                    Event::MessageRefused => c.messages_refused = 1,
                    _ => c.quarantined = 1,
                }
                if let Some(reason) = r.reason {
                    let row = self
                        .refusals
                        .entry((channel.clone(), reason.as_str()))
                        .or_default();
                    if r.event == Event::MessageRefused {
                        row.messages_refused += 1;
                    } else if r.event == Event::Refused {
                        row.refused += 1;
                    } else {
                        row.quarantined += 1;
                    }
                    // a refused message's name is its id: no name an officer looks for
                    if let Some(name) = r.name.as_deref()
                        && r.event != Event::MessageRefused
                    {
                        row.names.add(name);
                    }
                    if let Some(rule) = r.detail.as_deref().and_then(|d| rule_of(reason, d)) {
                        row.rules.add(&rule);
                    }
                }
            }
            // a batch's copy that only leaves refused messages out masked nothing
            Event::Masked => {
                c.masked = u64::from(
                    !r.detail
                        .as_deref()
                        .is_some_and(|d| d.starts_with(super::NOTHING_MASKED)),
                );
            }
            Event::MessageAccepted => {
                c.messages_accepted = 1;
                // the detail of a masked message says what was masked
                c.masked = u64::from(
                    r.detail
                        .as_deref()
                        .is_some_and(|d| d.starts_with(super::MASKED_DETAIL)),
                );
            }
            Event::MessageDelivered => c.messages_delivered = 1,
            Event::MessageDuplicate => c.messages_duplicates = 1,
            Event::Duplicate => c.duplicates = 1,
            Event::Lost => c.lost = 1,
            Event::KeySwitched => (c.key_switches, change) = (1, true),
            Event::PolicyReloaded => (c.policy_reloads, change) = (1, true),
            Event::PolicyRefused => (c.policy_refusals, change) = (1, true),
            Event::ClockStep => (c.clock_steps, change) = (1, true),
            Event::LinkMismatch => (c.link_mismatches, change) = (1, true),
            // an officer's quarantine actions are listed with who did it (the detail)
            Event::QuarantineReleased
            | Event::QuarantineReleaseRefused
            | Event::QuarantinePurged => change = true,
            // so are the approvers' decisions (who, on which object) and failed console logins
            Event::Approved
            | Event::ApprovalRejected
            | Event::ApprovalRequestRefused
            | Event::ApprovalWaived
            | Event::ConsoleLoginFailed => change = true,
            // a stream's end says what it carried and dropped (its detail)
            Event::StreamStopped => change = true,
            _ => {}
        }
        if change {
            if self.changes.len() < MAX_CHANGES {
                self.changes.push(Change {
                    seq: r.seq,
                    time_ms: r.time_ms,
                    time: when::format(r.time_ms, tz),
                    event: r.event.as_str().to_string(),
                    channel: channel.clone(),
                    detail: change_detail(r),
                });
            } else {
                self.changes_omitted += 1;
            }
        }
        if c != Counts::default() {
            let day = when::day(r.time_ms, tz);
            self.days.entry((day, channel)).or_default().add(&c);
        }
    }

    /// The calendar days of the period in the zone, when it is short enough to list them.
    fn period_days(&self) -> Vec<String> {
        let (since, until) = (self.params.since_ms, self.params.until_ms);
        if until <= since || until - since > MAX_LISTED_DAYS * 86_400_000 {
            return Vec::new();
        }
        // steps of 6 h meet every calendar day, 23-hour days of a daylight-saving change too
        let mut days: Vec<String> = Vec::new();
        let mut t = since;
        while t < until {
            let d = when::day(t, &self.params.tz);
            if days.last() != Some(&d) {
                days.push(d);
            }
            t += 6 * 3_600_000;
        }
        let last = when::day(until - 1, &self.params.tz);
        if days.last() != Some(&last) {
            days.push(last);
        }
        days
    }

    /// The report, with the log's verification and the peer's witness (its `newest` is
    /// filled here from the records).
    pub fn finish(mut self, verification: Verification, mut witness: Witness) -> Report {
        for day in self.period_days() {
            if !self.days.keys().any(|(d, _)| *d == day) {
                self.days.insert((day, String::new()), Counts::default());
            }
        }
        let mut per_channel: BTreeMap<String, Counts> = BTreeMap::new();
        let mut totals = Counts::default();
        for ((_, channel), c) in &self.days {
            per_channel.entry(channel.clone()).or_default().add(c);
            totals.add(c);
        }
        for channel in self.roles.keys() {
            per_channel.entry(channel.clone()).or_default();
        }
        let channels = per_channel
            .into_iter()
            .filter(|(ch, c)| !ch.is_empty() || *c != Counts::default())
            .map(|(channel, counts)| {
                let role = match self.roles.get(&channel) {
                    Some((true, false)) => "sender",
                    Some((false, true)) => "receiver",
                    Some((true, true)) => "sender and receiver",
                    _ => "",
                };
                ChannelRow {
                    role: role.to_string(),
                    channel,
                    counts,
                }
            })
            .collect();
        let days = self
            .days
            .into_iter()
            .map(|((day, channel), counts)| DayRow {
                day,
                channel,
                counts,
            })
            .collect();
        let mut refusals: Vec<RefusalRow> = self
            .refusals
            .into_iter()
            .map(|((channel, reason), r)| RefusalRow {
                channel,
                reason: reason.to_string(),
                refused: r.refused,
                quarantined: r.quarantined,
                messages_refused: r.messages_refused,
                top_names: r.names.top(),
                top_rules: r.rules.top(),
            })
            .collect();
        refusals.sort_by(|a, b| {
            b.total()
                .cmp(&a.total())
                .then_with(|| a.channel.cmp(&b.channel))
                .then_with(|| a.reason.cmp(&b.reason))
        });
        witness.newest = self.newest_witness;
        let tz = &self.params.tz;
        Report {
            node: self.node,
            zone: when::zone_name(tz, self.params.now_ms),
            since_ms: self.params.since_ms,
            until_ms: self.params.until_ms,
            since: when::format(self.params.since_ms, tz),
            until: when::format(self.params.until_ms, tz),
            generated: when::format(self.params.now_ms, tz),
            channel_filter: self.params.channels.clone(),
            records: self.records,
            totals,
            channels,
            days,
            refusals,
            changes: self.changes,
            changes_omitted: self.changes_omitted,
            verification,
            witness,
        }
    }
}

impl Report {
    /// Refusals per reason over every channel, most frequent first: `(reason, count)`
    /// (records of every kind: [`RefusalRow::total`]).
    pub fn by_reason(&self) -> Vec<(String, u64)> {
        let mut m: BTreeMap<&str, u64> = BTreeMap::new();
        for r in &self.refusals {
            let n = m.entry(&r.reason).or_default();
            *n = n.saturating_add(r.total());
        }
        let mut v: Vec<(String, u64)> = m.into_iter().map(|(k, n)| (k.to_string(), n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }

    /// Counts per day over every channel, by day.
    pub fn by_day(&self) -> Vec<(String, Counts)> {
        let mut m: BTreeMap<&str, Counts> = BTreeMap::new();
        for d in &self.days {
            m.entry(&d.day).or_default().add(&d.counts);
        }
        m.into_iter().map(|(k, c)| (k.to_string(), c)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000;
    // 2026-11-30T00:00:00+08:00
    const T0: u64 = 1_795_996_800_000 - 8 * 3_600_000;

    fn rec(seq: u64, t: u64, event: Event) -> Record {
        Record {
            seq,
            time_ms: t,
            node: "internet".into(),
            event,
            channel: Some("to-internet".into()),
            object_id: Some(format!("{seq:032x}")),
            name: Some(format!("f{seq}.pdf")),
            size: Some(100 * seq),
            sha256: None,
            sm3: None,
            reason: None,
            detail: None,
            peer: Some("court".into()),
            stream: None,
            message: None,
        }
    }

    fn refusal(seq: u64, t: u64, event: Event, reason: Reason, name: &str, detail: &str) -> Record {
        Record {
            reason: Some(reason),
            name: Some(name.into()),
            detail: Some(detail.into()),
            ..rec(seq, t, event)
        }
    }

    fn params(channels: &[&str]) -> Params {
        Params {
            since_ms: T0,
            until_ms: T0 + 2 * DAY,
            tz: when::zone(Some("Asia/Shanghai")).unwrap(),
            channels: channels.iter().map(|c| c.to_string()).collect(),
            now_ms: T0 + 2 * DAY,
        }
    }

    fn build(p: Params, records: &[Record]) -> Report {
        let mut b = Builder::new(p);
        for r in records {
            b.add(r);
        }
        b.finish(
            Verification::from_verify(
                &Err(super::super::read::VerifyError::Log("x".into())),
                false,
            ),
            Witness::default(),
        )
    }

    #[test]
    fn counts_per_day_in_the_zone_and_per_channel() {
        let mut other = rec(5, T0 + 3_600_000, Event::Landed);
        other.channel = Some("to-court".into());
        let records = vec![
            rec(1, T0 - 1, Event::Landed), // before the period
            rec(2, T0, Event::Landed),
            // 23:59 Beijing on the first day, 15:59 UTC: still day one in the zone
            rec(3, T0 + DAY - 60_000, Event::Landed),
            rec(4, T0 + DAY, Event::Masked),
            other,
            rec(6, T0 + 2 * DAY, Event::Landed), // at the end: excluded
        ];
        let r = build(params(&[]), &records);
        assert_eq!(r.records, 4);
        assert_eq!(r.totals.crossed_objects, 3);
        assert_eq!(r.totals.crossed_bytes, 200 + 300 + 500);
        assert_eq!(r.totals.masked, 1);
        let days: Vec<(&str, &str, u64)> = r
            .days
            .iter()
            .map(|d| (d.day.as_str(), d.channel.as_str(), d.counts.crossed_objects))
            .collect();
        assert_eq!(
            days,
            [
                ("2026-11-30", "to-court", 1),
                ("2026-11-30", "to-internet", 2),
                ("2026-12-01", "to-internet", 0)
            ]
        );
        assert_eq!(r.channels.len(), 2);
        assert_eq!(r.channels[1].role, "receiver");
        let mut b = Builder::new(params(&[]));
        records.iter().for_each(|r| b.add(r));
        let seen: Vec<&str> = b.seen_channels().iter().map(String::as_str).collect();
        assert_eq!(seen, ["to-court", "to-internet"]);
        let only = build(params(&["to-court"]), &records);
        assert_eq!(only.totals.crossed_objects, 1);
        assert_eq!(only.channels.len(), 1);
        assert_eq!(only.channel_filter, ["to-court"]);
    }

    #[test]
    fn messages_are_counted_per_side_and_their_refusals_by_reason() {
        let msg = |seq: u64, event: Event, channel: &str, detail: Option<&str>| Record {
            channel: Some(channel.into()),
            object_id: Some("b".repeat(32)),
            name: None,
            message: Some(format!("{seq:032x}")),
            detail: detail.map(Into::into),
            ..rec(seq, T0 + seq, event)
        };
        let mut refused = msg(4, Event::MessageRefused, "notices", Some("绝密"));
        refused.reason = Some(Reason::ClassificationMarking);
        refused.name = Some(format!("{:032x}.json", 4));
        // refused by the sending node: no peer (the receiving node's names its peer)
        refused.peer = None;
        let file = refusal(
            9,
            T0 + 9,
            Event::Refused,
            Reason::ClassificationMarking,
            "many.ndjson",
            "line 1: 绝密",
        );
        let records = vec![
            msg(1, Event::MessageAccepted, "notices", None),
            msg(
                2,
                Event::MessageAccepted,
                "notices",
                Some("masked mobile; crossing sha256 00"),
            ),
            msg(3, Event::MessageAccepted, "notices", None),
            refused,
            // the batch of the three crosses as one object
            Record {
                channel: Some("notices".into()),
                object_id: Some("b".repeat(32)),
                ..rec(5, T0 + 5, Event::Confirmed)
            },
            msg(6, Event::MessageDelivered, "filings", Some("cursor 1")),
            msg(7, Event::MessageDelivered, "filings", Some("cursor 2")),
            msg(8, Event::MessageDuplicate, "filings", None),
            Record {
                channel: Some("notices".into()),
                ..file
            },
        ];
        let r = build(params(&[]), &records);
        let t = r.totals;
        assert_eq!(
            (
                t.messages_accepted,
                t.messages_refused,
                t.messages_delivered,
                t.messages_duplicates
            ),
            (3, 1, 2, 1)
        );
        assert_eq!((t.masked, t.refused, t.crossed_objects), (1, 1, 1));
        let roles: Vec<(&str, &str)> = r
            .channels
            .iter()
            .map(|c| (c.channel.as_str(), c.role.as_str()))
            .collect();
        assert_eq!(roles, [("filings", "receiver"), ("notices", "sender")]);
        // the message refused, and the file of messages it came in refused whole
        assert_eq!(r.by_reason(), [("classification_marking".to_string(), 2)]);
        let row = &r.refusals[0];
        assert_eq!(
            (row.refused, row.quarantined, row.messages_refused),
            (1, 0, 1)
        );
        let names: Vec<&str> = row.top_names.iter().map(|t| t.value.as_str()).collect();
        assert_eq!(names, ["many.ndjson"], "a message's id is no name");
        let mut csv = Vec::new();
        super::super::report_render::write(&mut csv, &r, super::super::report_render::Format::Csv)
            .unwrap();
        let csv = String::from_utf8(csv).unwrap();
        let head: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let total: Vec<&str> = csv
            .lines()
            .find(|l| l.starts_with("total,"))
            .unwrap()
            .split(',')
            .collect();
        let col = |name: &str| total[head.iter().position(|h| *h == name).unwrap()];
        assert_eq!(
            [
                "messages_accepted",
                "messages_refused",
                "messages_delivered",
                "messages_duplicates"
            ]
            .map(col),
            ["3", "1", "2", "1"]
        );
        let mut text = Vec::new();
        super::super::report_render::write(
            &mut text,
            &r,
            super::super::report_render::Format::Text,
        )
        .unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("messages: 3 accepted, 1 refused (sender); 2 delivered, 1 duplicate(s)"),
            "{text}"
        );
        assert!(
            text.contains(
                "classification_marking on notices: 1 refused, 0 quarantined, 1 message(s) refused"
            ),
            "{text}"
        );
        let reason: Vec<&str> = csv
            .lines()
            .find(|l| l.starts_with("reason,"))
            .unwrap()
            .split(',')
            .collect();
        assert_eq!(reason.len(), head.len());
        assert_eq!(
            reason[head.iter().position(|h| *h == "messages_refused").unwrap()],
            "1"
        );
        let mut html = Vec::new();
        super::super::report_render::write(
            &mut html,
            &r,
            super::super::report_render::Format::Html,
        )
        .unwrap();
        let html = String::from_utf8(html).unwrap();
        assert!(html.contains("消息拒绝 Messages refused"));
    }

    #[test]
    fn an_object_crosses_once_whatever_repeats_it() {
        let first = rec(1, T0 + 10, Event::Landed);
        let mut again = rec(2, T0 + 20, Event::Landed);
        again.object_id = first.object_id.clone();
        again.detail = Some("delivery finished after a restart".into());
        let mut confirmed = rec(3, T0 + 30, Event::Confirmed);
        confirmed.channel = Some("to-court".into());
        let mut sent = rec(4, T0 + 40, Event::Sent);
        sent.channel = Some("to-court".into());
        let mut retired = rec(5, T0 + 50, Event::Retired);
        retired.channel = Some("to-court".into());
        let mut confirmed_again = confirmed.clone();
        confirmed_again.seq = 6;
        let r = build(
            params(&[]),
            &[first, again, sent, confirmed, retired, confirmed_again],
        );
        assert_eq!(r.totals.crossed_objects, 3);
        assert_eq!(r.totals.crossed_bytes, 100 + 300 + 500);
        let roles: Vec<&str> = r.channels.iter().map(|c| c.role.as_str()).collect();
        assert_eq!(roles, ["sender", "receiver"]);
    }

    #[test]
    fn an_object_the_receiver_quarantined_did_not_cross() {
        let mut landed = rec(1, T0 + 10, Event::Confirmed);
        landed.detail = Some("landed".into());
        let mut refused = rec(2, T0 + 20, Event::Confirmed);
        refused.detail = Some("quarantined".into());
        let r = build(params(&[]), &[landed, refused]);
        assert_eq!(r.totals.crossed_objects, 1);
        assert_eq!(r.totals.crossed_bytes, 100);
        assert_eq!(r.totals.quarantined, 1);
    }

    #[test]
    fn quarantine_actions_are_listed_with_who_did_them() {
        let mut released = rec(1, T0 + 1, Event::QuarantineReleased);
        released.detail = Some("released by alice (uid 0)".into());
        let mut purged = rec(2, T0 + 2, Event::QuarantinePurged);
        purged.detail = Some("purged by bob (uid 0)".into());
        let r = build(params(&[]), &[released, purged]);
        let listed: Vec<(&str, &str)> = r
            .changes
            .iter()
            .map(|c| (c.event.as_str(), c.detail.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                (
                    "quarantine_released",
                    "f1.pdf (00000000000000000000000000000001): released by alice (uid 0)"
                ),
                (
                    "quarantine_purged",
                    "f2.pdf (00000000000000000000000000000002): purged by bob (uid 0)"
                )
            ]
        );
    }

    #[test]
    fn approvers_decisions_and_failed_console_logins_are_listed() {
        let mut approved = rec(1, T0 + 1, Event::Approved);
        approved.detail = Some("by zhang (level 1): 1 of 2".into());
        let mut rejected = rec(2, T0 + 2, Event::ApprovalRejected);
        rejected.detail = Some("by li: 含个人信息".into());
        let mut login = rec(3, T0 + 3, Event::ConsoleLoginFailed);
        login.object_id = None;
        login.name = None;
        login.detail = Some("user officer from 127.0.0.1".into());
        let mut waived = rec(4, T0 + 4, Event::ApprovalWaived);
        waived.detail = Some("policy abc123 requires 1; approved by zhang".into());
        let r = build(params(&[]), &[approved, rejected, login, waived]);
        let listed: Vec<(&str, &str)> = r
            .changes
            .iter()
            .map(|c| (c.event.as_str(), c.detail.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                (
                    "approved",
                    "f1.pdf (00000000000000000000000000000001): by zhang (level 1): 1 of 2"
                ),
                (
                    "approval_rejected",
                    "f2.pdf (00000000000000000000000000000002): by li: 含个人信息"
                ),
                ("console_login_failed", "user officer from 127.0.0.1"),
                (
                    "approval_waived",
                    "f4.pdf (00000000000000000000000000000004): policy abc123 requires 1; approved by zhang"
                ),
            ]
        );
    }

    #[test]
    fn refusals_by_reason_with_top_names_and_rules() {
        let kw = |seq, name: &str, rule: &str| {
            refusal(
                seq,
                T0 + seq,
                Event::Refused,
                Reason::KeywordMatch,
                name,
                &format!("word/document.xml: line 3: matches rule {rule}"),
            )
        };
        let records = vec![
            kw(1, "a.docx", "内部资料"),
            kw(2, "a.docx", "内部资料"),
            kw(3, "<script>b.txt", "不得外传"),
            refusal(
                4,
                T0 + 4,
                Event::Quarantined,
                Reason::Malware,
                "x.pdf",
                "antivirus found Eicar-Test-Signature",
            ),
            refusal(
                5,
                T0 + 5,
                Event::Refused,
                Reason::PersonalData,
                "p.txt",
                "line 2: resident_id found in an escaped or disguised form",
            ),
            refusal(
                6,
                T0 + 6,
                Event::Refused,
                Reason::ClassificationMarking,
                "m.txt",
                "line 1: classification marking \"机密\"",
            ),
        ];
        let r = build(params(&[]), &records);
        assert_eq!(r.totals.refused, 5);
        assert_eq!(r.totals.quarantined, 1);
        assert_eq!(r.totals.refusals(), 6);
        let first = &r.refusals[0];
        assert_eq!(
            (first.reason.as_str(), first.refused, first.quarantined),
            ("keyword_match", 3, 0)
        );
        assert_eq!(
            first.top_names[0],
            Top {
                value: "a.docx".into(),
                count: 2
            }
        );
        let rules: Vec<&str> = first.top_rules.iter().map(|t| t.value.as_str()).collect();
        assert_eq!(rules, ["内部资料", "不得外传"]);
        let rule = |reason: &str| {
            r.refusals
                .iter()
                .find(|x| x.reason == reason)
                .map(|x| x.top_rules[0].value.clone())
        };
        assert_eq!(rule("malware").as_deref(), Some("Eicar-Test-Signature"));
        assert_eq!(rule("personal_data").as_deref(), Some("resident_id"));
        assert_eq!(rule("classification_marking").as_deref(), Some("\"机密\""));
        assert_eq!(r.by_reason()[0], ("keyword_match".to_string(), 3));
    }

    #[test]
    fn tallies_stay_bounded() {
        let mut t = Tally::default();
        for i in 0..MAX_DISTINCT + 10 {
            t.add(&format!("n{i}"));
        }
        t.add("n0");
        assert_eq!(t.0.len(), MAX_DISTINCT + 1);
        assert_eq!(t.0[OTHERS], 10);
        assert_eq!(t.top()[0].value, OTHERS);
        assert_eq!(t.top().len(), TOP);
    }

    #[test]
    fn changes_node_wide_events_and_the_newest_witness() {
        let mut switch = rec(1, T0 + 1, Event::KeySwitched);
        switch.channel = None;
        switch.detail = Some("new key ab, old key cd".into());
        let mut step = rec(2, T0 + 2, Event::ClockStep);
        step.channel = None;
        let mut mismatch = rec(3, T0 + 3, Event::LinkMismatch);
        mismatch.channel = None;
        let reload = rec(4, T0 + 4, Event::PolicyReloaded);
        let mut refused = rec(5, T0 + 5, Event::PolicyRefused);
        refused.channel = Some("to-court".into());
        let mut w1 = rec(6, T0 - DAY, Event::Witnessed);
        w1.size = Some(7);
        let mut w2 = rec(7, T0 + 7, Event::Witnessed);
        w2.size = Some(9);
        let r = build(
            params(&["to-internet"]),
            &[switch, step, mismatch, reload, refused, w1, w2],
        );
        assert_eq!(r.totals.key_switches, 1);
        assert_eq!(r.totals.clock_steps, 1);
        assert_eq!(r.totals.link_mismatches, 1);
        assert_eq!(r.totals.policy_reloads, 1);
        assert_eq!(r.totals.policy_refusals, 0, "another channel");
        let events: Vec<&str> = r.changes.iter().map(|c| c.event.as_str()).collect();
        assert_eq!(
            events,
            [
                "key_switched",
                "clock_step",
                "link_mismatch",
                "policy_reloaded"
            ]
        );
        assert_eq!(r.changes[0].time, "2026-11-30T00:00:00.001+08:00");
        let newest = r.witness.newest.as_ref().unwrap();
        assert_eq!((newest.seq, newest.size), (7, 9));
        assert!(!r.verification.verified);
    }

    #[test]
    fn peer_witness_status() {
        let mut w = Witness::default();
        assert!(w.peer_status().starts_with("not checked"));
        w.set_peer(Ok(reconcile::Reconciliation {
            witness_ok: 3,
            ..Default::default()
        }));
        assert!(w.peer_status().starts_with("ok"), "{}", w.peer_status());
        assert!(!w.peer_failed());
        w.set_peer(Ok(reconcile::Reconciliation {
            witness_mismatch: vec![12],
            ..Default::default()
        }));
        assert!(w.peer_status().starts_with("MISMATCH"));
        assert!(w.peer_failed());
    }
}
