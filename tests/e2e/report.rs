//! End to end: `isogate audit report` on a real lab's logs after a known workload (files
//! that land, files refused by the outbound rules, one masked), compared with counts this
//! test computes itself from the raw audit lines; and the HTML page opened in headless
//! Chromium: no console error, and its screenshot shows the charts' bars.

use crate::common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;

const ZONE: &str = "Asia/Shanghai";

fn isogate(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every line of every segment of an audit directory, as JSON, in order.
fn raw_records(dir: &Path) -> Vec<serde_json::Value> {
    let mut segs: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("log-") && n.ends_with(".jsonl")
        })
        .collect();
    segs.sort();
    segs.iter()
        .flat_map(|p| {
            fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn day_in_zone(ms: u64) -> String {
    let tz = jiff::tz::TimeZone::get(ZONE).unwrap();
    jiff::Timestamp::from_millisecond(ms as i64)
        .unwrap()
        .to_zoned(tz)
        .date()
        .to_string()
}

/// What the report must say, computed from the raw lines: per (day, channel) the objects and
/// bytes crossed (landed, confirmed or retired; each object id once), refused, quarantined
/// and masked; per (channel, reason) the refusals.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    days: BTreeMap<(String, String), [u64; 5]>,
    reasons: BTreeMap<(String, String), u64>,
}

fn expected(records: &[serde_json::Value]) -> Expected {
    let mut e = Expected::default();
    let mut crossed = BTreeSet::new();
    for r in records {
        let event = r["event"].as_str().unwrap();
        let channel = r["channel"].as_str().unwrap_or("").to_string();
        let day = day_in_zone(r["time_ms"].as_u64().unwrap());
        let mut add = |i: usize, n: u64| {
            e.days.entry((day.clone(), channel.clone())).or_default()[i] += n;
        };
        match event {
            // each object once, whatever records repeat it
            "landed" | "confirmed" | "retired"
                if crossed.insert(r["object_id"].as_str().unwrap().to_string()) =>
            {
                add(0, 1);
                add(1, r["size"].as_u64().unwrap());
            }
            "refused" | "quarantined" => {
                add(if event == "refused" { 2 } else { 3 }, 1);
                let reason = r["reason"].as_str().unwrap().to_string();
                *e.reasons.entry((channel.clone(), reason)).or_default() += 1;
            }
            "masked" => add(4, 1),
            _ => {}
        }
    }
    e
}

fn reported(json: &serde_json::Value) -> Expected {
    let mut e = Expected::default();
    for d in json["days"].as_array().unwrap() {
        let row = [
            "crossed_objects",
            "crossed_bytes",
            "refused",
            "quarantined",
            "masked",
        ]
        .map(|k| d[k].as_u64().unwrap());
        if row != [0; 5] {
            let key = (
                d["day"].as_str().unwrap().to_string(),
                d["channel"].as_str().unwrap().to_string(),
            );
            e.days.insert(key, row);
        }
    }
    for x in json["refusals"].as_array().unwrap() {
        let key = (
            x["channel"].as_str().unwrap().to_string(),
            x["reason"].as_str().unwrap().to_string(),
        );
        let n = x["refused"].as_u64().unwrap() + x["quarantined"].as_u64().unwrap();
        e.reasons.insert(key, n);
    }
    e
}

fn report_json(dir: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "audit",
        "report",
        dir.to_str().unwrap(),
        "--tz",
        ZONE,
        "--format",
        "json",
    ];
    args.extend(extra);
    let (ok, out, err) = isogate(&args);
    assert!(ok, "report failed: {err}\n{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn report_counts_equal_the_raw_audit_records_of_a_known_workload() {
    let lab = Lab::new(25100);
    let court = lab.start("court");
    let internet = lab.start("internet");
    let id = resident_id("11010519900307123");
    let clean: Vec<(&str, Vec<u8>)> = vec![
        (
            "民事判决书（2026）吉01民初123号.pdf",
            pdf_of("Judgment of first instance", ""),
        ),
        ("现场照片.png", PNG_1X1.to_vec()),
        (
            "立案信息.txt",
            "立案信息：本院已受理。\n".as_bytes().to_vec(),
        ),
    ];
    for (name, bytes) in &clean {
        lab.publish("court", "to-internet", name, bytes);
    }
    lab.publish(
        "court",
        "to-internet",
        "名单.csv",
        format!("姓名,身份证号\n张三,{id}\n").as_bytes(),
    );
    lab.publish(
        "court",
        "to-internet",
        "内部.txt",
        "本材料为内部资料\n".as_bytes(),
    );
    lab.publish("court", "to-internet", "外传.txt", "不得外传\n".as_bytes());
    lab.publish(
        "court",
        "to-internet",
        "通知.docx",
        &docx_of(&["关于某案的通知", "机密"]),
    );
    lab.publish("court", "to-internet", "<script>alert(1)<", b"x\n");
    lab.publish(
        "internet",
        "to-court",
        "起诉状.pdf",
        &pdf_of("Complaint", ""),
    );

    let inbox = lab.inbox("internet", "to-internet");
    wait_until(60, "the clean files and the masked CSV to land", || {
        visible(&inbox).len() == clean.len() + 1
    });
    wait_until(60, "the complaint to land", || {
        visible(&lab.inbox("court", "to-court")).len() == 1
    });
    wait_until(30, "four refusals on the court", || {
        reasons(&lab.quarantine("court", "to-internet")).len() == 4
    });
    wait_until(30, "every landing confirmed", || {
        events(&lab, "court", "confirmed") == 4 && events(&lab, "internet", "confirmed") == 1
    });
    wait_until(30, "a witnessed checkpoint of the court", || {
        !lab.records("internet", "witnessed").is_empty()
    });
    assert!(court.stop().success());
    assert!(internet.stop().success());

    for (node, peer) in [("court", "internet"), ("internet", "court")] {
        let dir = lab.dir.join(node).join("audit");
        let peer_dir = lab.dir.join(peer).join("audit");
        let json = report_json(&dir, &["--peer", peer_dir.to_str().unwrap()]);
        let want = expected(&raw_records(&dir));
        assert_eq!(reported(&json), want, "{node}: {json:#}");
        let sum = |i: usize| want.days.values().map(|r| r[i]).sum::<u64>();
        for (i, k) in [
            "crossed_objects",
            "crossed_bytes",
            "refused",
            "quarantined",
            "masked",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(json["totals"][k].as_u64(), Some(sum(i)), "{node} {k}");
        }
        assert_eq!(json["node"], node);
        assert_eq!(json["zone"], ZONE);
        assert_eq!(json["verification"]["verified"], true, "{json:#}");
        assert_eq!(json["verification"]["unsigned_tail"], 0);
        assert_eq!(json["witness"]["peer_checked"], true);
        assert_eq!(
            json["witness"]["peer_witness_mismatch"],
            serde_json::json!([])
        );
    }

    // the workload itself, so that a report and an expectation both empty cannot pass
    let court_json = report_json(&lab.dir.join("court").join("audit"), &[]);
    let t = &court_json["totals"];
    assert_eq!(
        (
            t["crossed_objects"].as_u64(),
            t["refused"].as_u64(),
            t["masked"].as_u64()
        ),
        (Some(5), Some(4), Some(1)),
        "{court_json:#}"
    );
    let channels: Vec<(&str, &str, u64)> = court_json["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["channel"].as_str().unwrap(),
                c["role"].as_str().unwrap(),
                c["crossed_objects"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        channels,
        [("to-court", "receiver", 1), ("to-internet", "sender", 4)]
    );
    let rules: Vec<String> = court_json["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["reason"] == "keyword_match")
        .flat_map(|x| x["top_rules"].as_array().unwrap().clone())
        .map(|t| t["value"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert!(rules.iter().any(|r| r.contains("内部资料")), "{rules:?}");
    let internet_json = report_json(
        &lab.dir.join("internet").join("audit"),
        &["--channel", "to-internet"],
    );
    assert_eq!(internet_json["totals"]["crossed_objects"], 4);
    assert!(
        internet_json["witness"]["newest"]["size"].as_u64() > Some(0),
        "{internet_json:#}"
    );
    // a period that holds none of it
    let empty = report_json(
        &lab.dir.join("court").join("audit"),
        &["--since", "2020-01-01", "--until", "2020-01-08"],
    );
    assert_eq!(empty["totals"]["crossed_objects"], 0);
    assert_eq!(empty["days"].as_array().unwrap().len(), 7, "{empty:#}");

    // text and CSV carry the same totals; a bad time says which forms are good
    let court_dir = lab.dir.join("court").join("audit");
    let (ok, text, _) = isogate(&["audit", "report", court_dir.to_str().unwrap()]);
    assert!(ok);
    assert!(text.contains("totals: 5 object(s) crossed"), "{text}");
    assert!(text.contains("log: VERIFIED"), "{text}");
    let (ok, csv, _) = isogate(&[
        "audit",
        "report",
        court_dir.to_str().unwrap(),
        "--format",
        "csv",
    ]);
    assert!(ok);
    assert!(csv.lines().any(|l| l.starts_with("total,,,,5,")), "{csv}");
    let (ok, _, err) = isogate(&[
        "audit",
        "report",
        court_dir.to_str().unwrap(),
        "--since",
        "last tuesday",
    ]);
    assert!(!ok);
    assert!(err.contains("RFC 3339"), "{err}");
    let (ok, _, err) = isogate(&[
        "audit",
        "report",
        court_dir.to_str().unwrap(),
        "--channel",
        "to-nowhere",
    ]);
    assert!(!ok);
    assert!(err.contains("to-court, to-internet"), "{err}");

    // a log changed after the fact: the report is still written, says so, and fails
    let copy = lab.dir.join("court-audit-copy");
    fs::create_dir_all(&copy).unwrap();
    for e in fs::read_dir(&court_dir).unwrap().flatten() {
        fs::copy(e.path(), copy.join(e.file_name())).unwrap();
    }
    let seg = copy.join("log-00000001.jsonl");
    let text = fs::read_to_string(&seg).unwrap();
    fs::write(&seg, text.replacen("内部.txt", "外部.txt", 1)).unwrap();
    let (ok, out, err) = isogate(&[
        "audit",
        "report",
        copy.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(!ok, "{out}");
    assert!(err.contains("does not verify"), "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["verification"]["verified"], false);
}

/// Counts the pixels of a colour (within a small tolerance) in a PNG.
fn pixels_of(png_bytes: &[u8], rgb: [u8; 3]) -> usize {
    let mut dec = png::Decoder::new(std::io::Cursor::new(png_bytes));
    dec.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected colour type {other:?}"),
    };
    buf[..info.buffer_size()]
        .chunks_exact(step)
        .filter(|p| (0..3).all(|i| p[i].abs_diff(rgb[i]) <= 6))
        .count()
}

fn hex_colour(s: &str) -> [u8; 3] {
    let s = s.trim_start_matches('#');
    [0, 2, 4].map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
}

/// Opens `page` in headless Chromium: its screenshot and what it logged.
fn chromium(page: &Path, shot: &Path) -> (Vec<u8>, String) {
    let _ = fs::remove_file(shot);
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=1",
            &format!("--user-data-dir={}", profile.path().display()),
            &format!("--screenshot={}", shot.display()),
            "--window-size=1000,2600",
            &format!("file://{}", page.display()),
        ])
        .output()
        .expect("chromium (Debian package chromium; scripts/test.sh installs it)");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "chromium failed:\n{log}");
    (fs::read(shot).unwrap(), log)
}

/// Console messages and script errors in Chromium's log.
fn console_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught") || l.contains("Refused to"))
        .collect()
}

#[test]
fn the_html_report_opens_in_chromium_without_errors_and_shows_its_charts() {
    use isogate::audit::{AuditLog, CheckpointPolicy, Entry, Event};
    use isogate::core::id::ObjectId;
    use isogate::core::reason::Reason;
    use isogate::keys::SigningKey;
    use std::sync::Arc;

    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("audit");
    let key = Arc::new(SigningKey::generate().unwrap());
    let log = AuditLog::open(&dir, "internet", key, CheckpointPolicy::default(), None).unwrap();
    for i in 0..6u8 {
        let mut e = Entry::object("to-internet", ObjectId([i; 16]), &format!("判决书-{i}.pdf"));
        e.size = Some(1 << (10 + 2 * u64::from(i)));
        e.peer = Some("court".into());
        log.append(Event::Landed, e).unwrap();
    }
    for (i, (reason, name, detail)) in [
        (
            Reason::KeywordMatch,
            "内部.txt",
            "line 1: matches rule 内部资料",
        ),
        (
            Reason::KeywordMatch,
            "<script>alert(1)</script>.txt",
            "line 1: matches rule <b>x</b>",
        ),
        (
            Reason::Malware,
            "x.pdf",
            "antivirus found Eicar-Test-Signature",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = Entry::object("to-internet", ObjectId([100 + i as u8; 16]), name);
        e.reason = Some(reason);
        e.detail = Some(detail.into());
        log.append(Event::Quarantined, e).unwrap();
    }
    log.checkpoint(true).unwrap();
    drop(log);

    let page = work.path().join("report.html");
    let (ok, _, err) = isogate(&[
        "audit",
        "report",
        dir.to_str().unwrap(),
        "--tz",
        ZONE,
        "--format",
        "html",
        "--out",
        page.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let html = fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("&lt;script&gt;alert(1)"),
        "the name is escaped"
    );
    assert!(!html.contains("<script"), "no script at all");
    assert!(html.contains("内部.txt (1)") && html.contains("内部资料 (1)"));

    let crossed = hex_colour(isogate::audit::report_render::CROSSED_COLOUR);
    let refused = hex_colour(isogate::audit::report_render::REFUSED_COLOUR);
    let shot = work.path().join("report.png");
    let (png_bytes, log) = chromium(&page, &shot);
    assert!(
        console_errors(&log).is_empty(),
        "{:?}",
        console_errors(&log)
    );
    let (blue, red) = (
        pixels_of(&png_bytes, crossed),
        pixels_of(&png_bytes, refused),
    );
    // the bars: one day of 6 objects, two reasons; each bar is 16 px high
    assert!(blue > 16 * 100, "bytes-per-day bar pixels: {blue}");
    assert!(red > 16 * 100, "refusal bar pixels: {red}");

    // the same page without its charts: the screenshot has none of their colour, so the
    // counts above come from the charts and nothing else
    let bare = work.path().join("bare.html");
    let mut without = String::new();
    let mut rest = html.as_str();
    while let Some(start) = rest.find("<svg") {
        without.push_str(&rest[..start]);
        let end = rest[start..].find("</svg>").unwrap() + start + "</svg>".len();
        rest = &rest[end..];
    }
    without.push_str(rest);
    fs::write(&bare, without).unwrap();
    let (bare_png, log) = chromium(&bare, &shot);
    assert!(
        console_errors(&log).is_empty(),
        "{:?}",
        console_errors(&log)
    );
    assert_eq!(pixels_of(&bare_png, crossed), 0);
    assert_eq!(pixels_of(&bare_png, refused), 0);

    // and the log shows a script's error when a page has one: its absence above means
    // something
    let broken = work.path().join("broken.html");
    fs::write(
        &broken,
        "<!DOCTYPE html><meta charset=utf-8><script>console.error('oops'); undefinedCall();</script>",
    )
    .unwrap();
    let (_, log) = chromium(&broken, &shot);
    assert!(!console_errors(&log).is_empty(), "{log}");
}
