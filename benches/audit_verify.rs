//! Benchmark: `audit verify` over 1,000,000 records (target: at most 10 s), printed beside
//! this machine's one-core SHA-256 throughput; then what an officer runs over the same log:
//! `audit export` with a filter, and `audit report` of the whole period. Run with
//! `cargo bench --bench audit_verify` (`AUDIT_RECORDS=N` to change the count).

mod common;

use common::{cores, sha256_throughput};
use isogate::audit::{AuditLog, CheckpointPolicy, Entry, Event, query, read, report, when};
use isogate::core::id::ObjectId;
use isogate::keys::SigningKey;
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let records: u64 = std::env::var("AUDIT_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let key = Arc::new(SigningKey::generate().expect("key"));
    println!(
        "machine: {} cores; one core SHA-256: {:.0} MiB/s",
        cores(),
        sha256_throughput()
    );
    let t = Instant::now();
    {
        let log = AuditLog::open(dir.path(), "court", key, CheckpointPolicy::default(), None)
            .expect("open");
        for i in 0..records {
            let mut e = Entry::object(
                "to-internet",
                ObjectId((i as u128).to_be_bytes()),
                "民事判决书（2026）吉01民初123号.pdf",
            );
            e.size = Some(i * 7);
            e.digest = Some([7; 32]);
            e.peer = Some("internet".into());
            log.append(
                if i % 2 == 0 {
                    Event::Sealed
                } else {
                    Event::Confirmed
                },
                e,
            )
            .expect("append");
            if i % 10_000 == 9_999 {
                log.checkpoint(true).expect("checkpoint");
            }
        }
        log.checkpoint(true).expect("checkpoint");
    }
    let written = t.elapsed();
    let bytes: u64 = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "wrote {records} records ({:.0} MiB) in {:.2} s ({:.0} records/s)",
        bytes as f64 / (1 << 20) as f64,
        written.as_secs_f64(),
        records as f64 / written.as_secs_f64()
    );
    let t = Instant::now();
    let report = read::verify(dir.path(), None).expect("verify");
    let took = t.elapsed().as_secs_f64();
    assert_eq!(report.records, records);
    println!(
        "audit verify: {records} records, {} checkpoints in {took:.2} s ({:.0} records/s; target 1,000,000 in <= 10 s: {})",
        report.checkpoints,
        records as f64 / took,
        if records >= 1_000_000 && took <= 10.0 {
            "met"
        } else if records < 1_000_000 {
            "n/a"
        } else {
            "MISSED"
        }
    );

    // audit export --name '*123号*' --not-event sealed, written nowhere
    let t = Instant::now();
    let filter = query::Filter {
        names: vec!["*123号.pdf".into()],
        not_events: vec![Event::Sealed],
        ..query::Filter::default()
    };
    let done = query::export(
        dir.path(),
        &filter,
        query::ExportFormat::Jsonl,
        &mut std::io::sink(),
    )
    .expect("export");
    let took = t.elapsed().as_secs_f64();
    assert_eq!(done.records, records / 2);
    println!(
        "audit export (name pattern, event exclusion): {records} records read, {} written in {took:.2} s ({:.0} records/s, one core)",
        done.records,
        records as f64 / took
    );

    // audit report over the whole log, per day and channel
    let t = Instant::now();
    let tz = when::zone(Some("Asia/Shanghai")).expect("zone");
    let mut b = report::Builder::new(report::Params {
        since_ms: 0,
        until_ms: u64::MAX / 2,
        tz,
        channels: Vec::new(),
        now_ms: 0,
    });
    query::for_each_match(dir.path(), &query::Filter::default(), |_, r| {
        b.add(r);
        Ok(())
    })
    .expect("read");
    let rep = b.finish(
        report::Verification::from_verify(&Ok(report), false),
        report::Witness::default(),
    );
    let took = t.elapsed().as_secs_f64();
    assert_eq!(rep.totals.crossed_objects, records / 2);
    println!(
        "audit report (per day and channel, names and rules tallied): {records} records in {took:.2} s ({:.0} records/s, one core)",
        records as f64 / took
    );
}
