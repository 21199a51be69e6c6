//! End to end: a lab sends files in two rounds, then `isogate audit query` with a window in
//! Beijing time (offsets with and without milliseconds, a wall time in `--tz`) returns exactly
//! the records whose `time_ms` falls in it, as computed here from the raw log lines; invalid
//! filter values fail with the valid list; several values and exclusions select what the raw
//! lines say; `audit export --after` returns only what is newer.

use crate::common;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn isogate(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The raw log lines of an audit directory, read as plain JSON (not through the crate).
fn raw(dir: &Path) -> Vec<Value> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("log-") && n.ends_with(".jsonl"))
        .collect();
    names.sort();
    names
        .iter()
        .flat_map(|n| {
            fs::read_to_string(dir.join(n))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn seqs_where(lines: &[Value], keep: impl Fn(&Value) -> bool) -> BTreeSet<u64> {
    lines
        .iter()
        .filter(|v| keep(v))
        .map(|v| v["seq"].as_u64().unwrap())
        .collect()
}

/// The sequence numbers that `audit query … --format json` prints.
fn query(dir: &Path, args: &[&str]) -> BTreeSet<u64> {
    let mut all = vec!["audit", "query", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let out = isogate(&all);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

/// `ms` since the epoch as a Beijing (UTC+8, no daylight saving) time, computed here from
/// the civil-from-days algorithm, independent of the crate's time code.
fn beijing(ms: u64, millis: bool) -> String {
    let t = ms as i64 + 8 * 3_600_000;
    let (secs, milli) = (t.div_euclid(1000), t.rem_euclid(1000));
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, s) = (sod / 3600, sod % 3600 / 60, sod % 60);
    if millis {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}+08:00")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}+08:00")
    }
}

fn time_of(lines: &[Value], event: &str, name: &str) -> u64 {
    lines
        .iter()
        .find(|v| v["event"] == event && v["name"] == name)
        .unwrap_or_else(|| panic!("no {event} record of {name}"))["time_ms"]
        .as_u64()
        .unwrap()
}

/// `export` output lines and the `last_seq` it reports on stderr.
fn export(dir: &Path, args: &[&str]) -> (Vec<String>, u64) {
    let mut all = vec!["audit", "export", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = isogate(&all);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let last = err
        .split_whitespace()
        .find_map(|w| w.strip_prefix("last_seq="))
        .unwrap_or_else(|| panic!("no last_seq in {err:?}"))
        .parse()
        .unwrap();
    (text(&out.stdout).lines().map(String::from).collect(), last)
}

#[test]
fn beijing_windows_filters_and_incremental_export() {
    let lab = Lab::new(25000);
    let court_log = lab.dir.join("court/audit");
    let internet_log = lab.dir.join("internet/audit");
    let inbox = lab.inbox("internet", "to-internet");

    // Round one: three files land, one is refused (not a PDF), one has a name the lab's
    // outbound policy refuses; the nodes stop and the court's log is exported.
    let court = lab.start("court");
    let internet = lab.start("internet");
    for i in 0..3 {
        lab.publish(
            "court",
            "to-internet",
            &format!("判决书-a-{i}.txt"),
            format!("第{i}号\n").as_bytes(),
        );
    }
    lab.publish("court", "to-internet", "bad.pdf", b"not a pdf at all\n");
    wait_until(30, "round one to land", || visible(&inbox).len() == 3);
    wait_until(30, "the refusal", || events(&lab, "court", "refused") == 1);
    std::thread::sleep(Duration::from_millis(500));
    assert!(court.stop().success());
    assert!(internet.stop().success());
    // round two starts over a second after round one's last record, so that a window in
    // whole seconds splits them
    std::thread::sleep(Duration::from_millis(1100));
    let (first, after_one) = export(&court_log, &["--format", "jsonl"]);
    let round_one = raw(&court_log);
    assert_eq!(first.len(), round_one.len());
    assert_eq!(
        after_one,
        round_one.last().unwrap()["seq"].as_u64().unwrap()
    );

    // Round two.
    let court = lab.start("court");
    let internet = lab.start("internet");
    for i in 0..3 {
        lab.publish(
            "court",
            "to-internet",
            &format!("判决书-b-{i}.txt"),
            format!("第{i}号\n").as_bytes(),
        );
    }
    wait_until(30, "round two to land", || visible(&inbox).len() == 6);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(court.stop().success());
    assert!(internet.stop().success());
    let lines = raw(&court_log);
    let all: BTreeSet<u64> = seqs_where(&lines, |_| true);

    // A window with milliseconds, Beijing offset: from the second file taken in round one to
    // the second file taken in round two (exclusive), read in UTC and in Asia/Shanghai.
    let since = time_of(&lines, "taken", "判决书-a-1.txt");
    let until = time_of(&lines, "taken", "判决书-b-1.txt");
    let expected = seqs_where(&lines, |v| {
        (since..until).contains(&v["time_ms"].as_u64().unwrap())
    });
    assert!(!expected.is_empty() && expected.len() < all.len());
    for tz in ["UTC", "Asia/Shanghai"] {
        let got = query(
            &court_log,
            &[
                "--since",
                &beijing(since, true),
                "--until",
                &beijing(until, true),
                "--tz",
                tz,
            ],
        );
        assert_eq!(got, expected, "window {}..{} in {tz}", since, until);
    }
    // ms since the epoch still work
    let got = query(
        &court_log,
        &["--since", &since.to_string(), "--until", &until.to_string()],
    );
    assert_eq!(got, expected, "window in ms");

    // Whole seconds, without milliseconds: round two only (it started a second later).
    let start_two = time_of(&lines, "taken", "判决书-b-0.txt") / 1000 * 1000;
    let expected = seqs_where(&lines, |v| v["time_ms"].as_u64().unwrap() >= start_two);
    let got = query(
        &court_log,
        &[
            "--since",
            &beijing(start_two, false),
            "--tz",
            "Asia/Shanghai",
        ],
    );
    assert_eq!(got, expected);
    assert!(got.iter().all(|s| *s > after_one) && !got.is_empty());
    // the same second as a wall time in the zone
    let wall = beijing(start_two, false)
        .replace("+08:00", "")
        .replace('T', " ");
    let got = query(&court_log, &["--since", &wall, "--tz", "Asia/Shanghai"]);
    assert_eq!(got, expected, "wall time {wall}");

    // Times shown follow --tz: JSON keeps time_ms and adds the zone's time; the table too.
    let out = isogate(&[
        "audit",
        "query",
        court_log.to_str().unwrap(),
        "--name",
        "判决书-b-1.txt",
        "--event",
        "taken",
        "--tz",
        "Asia/Shanghai",
        "--format",
        "json",
    ]);
    let j: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(j["time_ms"].as_u64(), Some(until));
    assert_eq!(j["time"].as_str(), Some(beijing(until, true).as_str()));
    let out = isogate(&[
        "audit",
        "query",
        court_log.to_str().unwrap(),
        "--event",
        "refused",
        "--tz",
        "Asia/Shanghai",
    ]);
    let table = text(&out.stdout);
    let refused = time_of(&lines, "refused", "bad.pdf");
    assert!(
        table.contains(&beijing(refused, true)) && table.contains("detail"),
        "{table}"
    );

    // Invalid values fail (status 2) and list the valid ones.
    for (args, valid) in [
        (&["--verdict", "refused"][..], "reject"),
        (&["--reason", "bogus"][..], "type_mismatch"),
        (&["--event", "landed,bogus"][..], "witnessed"),
        (&["--sha256", "abc"][..], "64 hexadecimal"),
        (&["--object", "xyz"][..], "32 hexadecimal"),
        (&["--since", "last tuesday"][..], "RFC 3339"),
    ] {
        let mut all = vec!["audit", "query", court_log.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = isogate(&all);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(valid) && out.stdout.is_empty(),
            "{args:?}: {err}"
        );
    }

    // Several values, comma-separated and repeated, and exclusions, on the receiver's log.
    let lines_r = raw(&internet_log);
    let ev = |v: &Value, names: &[&str]| names.iter().any(|n| v["event"] == *n);
    let expected = seqs_where(&lines_r, |v| ev(v, &["landed", "witnessed", "link_up"]));
    let got = query(
        &internet_log,
        &["--event", "landed,witnessed", "--event", "link_up"],
    );
    assert_eq!(got, expected);
    assert!(lines_r.iter().any(|v| v["event"] == "witnessed"));
    let expected = seqs_where(&lines_r, |v| !ev(v, &["witnessed", "link_up"]));
    let got = query(
        &internet_log,
        &["--not-event", "witnessed", "--not-event", "link_up"],
    );
    assert_eq!(got, expected);
    let expected = seqs_where(&lines_r, |v| {
        v["event"] == "landed"
            && v["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("判决书-b-") || n == "判决书-a-0.txt")
    });
    let got = query(
        &internet_log,
        &[
            "--event",
            "landed",
            "--name",
            "判决书-b-*",
            "--name",
            "判决书-a-0.txt",
        ],
    );
    assert_eq!(got, expected);
    assert_eq!(expected.len(), 4);
    let got = query(
        &internet_log,
        &["--event", "landed", "--not-name", "判决书-a-*"],
    );
    assert_eq!(
        got,
        seqs_where(&lines_r, |v| v["event"] == "landed"
            && !v["name"].as_str().unwrap().starts_with("判决书-a-"))
    );
    let got = query(&court_log, &["--not-channel", "to-internet"]);
    let expected = seqs_where(&lines, |v| v["channel"] != "to-internet");
    assert_eq!(got, expected);
    assert!(!expected.is_empty() && expected.len() < all.len());
    let got = query(
        &court_log,
        &[
            "--channel",
            "to-court,to-internet",
            "--not-event",
            "sent,sealed",
        ],
    );
    let expected = seqs_where(&lines, |v| {
        (v["channel"] == "to-court" || v["channel"] == "to-internet") && !ev(v, &["sent", "sealed"])
    });
    assert_eq!(got, expected);
    let rejects = seqs_where(&lines, |v| ev(v, &["refused", "quarantined"]));
    assert_eq!(query(&court_log, &["--verdict", "rejected"]), rejects);
    assert_eq!(
        query(
            &court_log,
            &["--verdict", "reject", "--not-reason", "type_mismatch"]
        ),
        seqs_where(&lines, |v| {
            ev(v, &["refused", "quarantined"]) && v["reason"] != "type_mismatch"
        })
    );
    assert!(!rejects.is_empty());

    // Incremental export: only the records after round one, as logged, and as syslog lines.
    let (newer, last) = export(&court_log, &["--after", &after_one.to_string()]);
    let want: Vec<&Value> = lines
        .iter()
        .filter(|v| v["seq"].as_u64().unwrap() > after_one)
        .collect();
    assert_eq!(newer.len(), want.len());
    for (line, v) in newer.iter().zip(&want) {
        assert_eq!(&serde_json::from_str::<Value>(line).unwrap(), *v);
    }
    assert_eq!(last, all.iter().next_back().copied().unwrap());
    let (syslog, _) = export(
        &court_log,
        &[
            "--after",
            &after_one.to_string(),
            "--format",
            "syslog",
            "--event",
            "taken",
        ],
    );
    assert_eq!(syslog.len(), 3, "{syslog:#?}");
    assert!(
        syslog
            .iter()
            .all(|l| l.starts_with("<134>1 ") && l.contains("event=\"taken\""))
    );
    // nothing newer: no output, and the cursor stays where it was
    let (none, same) = export(&court_log, &["--after", &last.to_string()]);
    assert!(none.is_empty() && same == last);
    // a cursor file keeps it between runs
    let cursor = lab.dir.join("export.cursor");
    fs::write(&cursor, format!("{after_one}\n")).unwrap();
    let (newer_again, _) = export(&court_log, &["--cursor", cursor.to_str().unwrap()]);
    assert_eq!(newer_again, newer);
    assert_eq!(
        fs::read_to_string(&cursor).unwrap().trim(),
        last.to_string()
    );
}
