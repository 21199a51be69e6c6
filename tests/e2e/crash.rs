//! Crash tests: kill -9 either node in the middle of a large transfer, or at 20 random
//! moments of a mixed workload published both ways, restart it, and check that every file
//! lands exactly once, whole, and that no partial file is ever visible in an inbox; over
//! both links (the diode on the loopback, where a GSO batch is one packet).

use crate::common;
use common::inbox::{
    Expected, Watch, assert_exactly_once, assert_staging_sealed, entries, expect, name_for,
    part_bytes,
};
use common::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const BIG: u64 = 256 << 20;

fn publish_workload(lab: &Lab) -> HashMap<String, (u64, String)> {
    // expected hashes first: the transfer must still be running when the test looks for it
    let mut files = HashMap::new();
    files.insert(
        "大文件-卷宗.pdf".to_string(),
        (BIG, sha256_of_generated(BIG, 42)),
    );
    for i in 0..5u64 {
        let size = 10_000 + i * 777;
        files.insert(
            format!("small-{i}.pdf"),
            (size, sha256_of_generated(size, i)),
        );
    }
    for i in 0..5u64 {
        let size = 10_000 + i * 777;
        lab.publish_generated("court", "to-internet", &format!("small-{i}.pdf"), size, i);
    }
    lab.publish_generated("court", "to-internet", "大文件-卷宗.pdf", BIG, 42);
    files
}

fn check_exactly_once(lab: &Lab, files: &HashMap<String, (u64, String)>) {
    let inbox = lab.inbox("internet", "to-internet");
    wait_until(120, "every file to land", || {
        visible(&inbox).len() >= files.len()
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut names = visible(&inbox);
    names.sort();
    let mut want: Vec<String> = files.keys().cloned().collect();
    want.sort();
    assert_eq!(names, want, "each file exactly once, under its own name");
    for (name, (_, sha)) in files {
        assert_eq!(&sha256_file(&inbox.join(name)), sha, "{name}");
    }
    assert_eq!(events(lab, "internet", "landed"), files.len());
    wait_until(30, "the part files to be cleaned up", || {
        part_bytes(&inbox) == 0
    });
}

/// Kills `victim` with SIGKILL in the middle of the big transfer, restarts it, and checks
/// that every file lands exactly once with no partial file ever visible.
fn kill_mid_transfer(port_base: u16, victim: &str) {
    let lab = Lab::new(port_base);
    let mut nodes: HashMap<&str, Running> = ["court", "internet"]
        .into_iter()
        .map(|n| (n, lab.start(n)))
        .collect();
    let files = publish_workload(&lab);
    let inbox = lab.inbox("internet", "to-internet");
    let monitor = Watch::start(
        inbox.clone(),
        &files.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    );
    wait_until(60, "the big file to be mid-transfer", || {
        part_bytes(&inbox) > 8 << 20
    });
    nodes.remove(victim).unwrap().kill9();
    assert!(part_bytes(&inbox) < BIG, "killed mid-transfer");
    if victim == "internet" {
        // what the killed receiver left of the arriving file is sealed: none of its
        // plaintext (the PDF header, windows of its first MiB) rests on its disk
        let head = generated(BIG, 42).next().unwrap();
        let windows = [&head[..24], &head[4096..4160], &head[(1 << 20) - 64..]];
        assert_staging_sealed(&inbox, &windows);
    }
    std::thread::sleep(Duration::from_millis(300));
    nodes.insert(victim, lab.start(victim));
    check_exactly_once(&lab, &files);
    monitor.finish();
}

#[test]
fn sender_killed_mid_transfer_delivers_exactly_once() {
    kill_mid_transfer(21450, "court");
}

#[test]
fn receiver_killed_mid_file_delivers_exactly_once() {
    kill_mid_transfer(21460, "internet");
}

/// A small deterministic generator (xorshift64*): the kill schedule of a run is replayed
/// from its seed, printed at the start (`ISOGATE_CRASH_SEED=N` to replay one).
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("ISOGATE_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("kill schedule seed: ISOGATE_CRASH_SEED={seed}");
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// The mixed workload: files of 0 B to 256 MiB each way (name, size, seed), the largest
/// first, about 330 MiB in all.
fn mixed(dir: &str) -> Vec<(String, u64, u64)> {
    let sizes: &[u64] = if dir == "to-internet" {
        &[
            256 << 20,
            32 << 20,
            8 << 20,
            8 << 20,
            1 << 20,
            1 << 20,
            1 << 20,
            65_536,
            65_536,
            65_536,
            4096,
            4096,
            4096,
            4096,
            4097,
            100,
            1,
            0,
        ]
    } else {
        &[16 << 20, 1 << 20, 1 << 20, 65_536, 4096, 4096, 4096, 100, 0]
    };
    let seed = if dir == "to-internet" { 100 } else { 200 };
    sizes
        .iter()
        .enumerate()
        .map(|(i, size)| {
            let stem = format!("{dir}-混合-{i:02}");
            (name_for(&stem, *size), *size, seed + i as u64)
        })
        .collect()
}

/// Kills either node with SIGKILL at 20 random moments while a mixed workload is
/// published both ways, restarting it 0.3 s later; then every file must land exactly
/// once, whole, and the watches must never have seen a partial or unexpected file.
fn twenty_random_kills(port_base: u16, link: &str, diode: &[(&str, &str)]) {
    let lab = Lab::new_with(port_base, &["--link", link]);
    if link == "diode" {
        for node in ["court", "internet"] {
            let file = lab.config(node);
            let mut text = std::fs::read_to_string(&file).unwrap();
            text = common::net::set_diode_key(&text, "rate_mbit", "800");
            for (key, value) in diode {
                text = common::net::set_diode_key(&text, key, value);
            }
            std::fs::write(&file, text).unwrap();
        }
    }
    let mut rng = Rng::from_env();
    // (publishing node, channel, receiving node)
    let ways = [
        ("court", "to-internet", "internet"),
        ("internet", "to-court", "court"),
    ];
    let work: Vec<Vec<(String, u64, u64)>> = ways.iter().map(|w| mixed(w.1)).collect();
    let expected: Vec<Expected> = work.iter().map(|w| expect(w)).collect();
    let watches: Vec<Watch> = ways
        .iter()
        .zip(&expected)
        .map(|((_, ch, to), e)| Watch::start(lab.inbox(to, ch), e))
        .collect();
    let mut nodes: HashMap<&str, Running> = ["court", "internet"]
        .into_iter()
        .map(|n| (n, lab.start(n)))
        .collect();
    // the largest files first, then the rest spread over the 20 rounds
    let mut queue: Vec<(usize, (String, u64, u64))> = Vec::new();
    for (w, files) in work.iter().enumerate() {
        queue.extend(files.iter().map(|f| (w, f.clone())));
    }
    queue.sort_by_key(|(_, f)| std::cmp::Reverse(f.1));
    let per_round = queue.len().div_ceil(20);
    let mut queue = queue.into_iter();
    for round in 0..20 {
        for (w, (name, size, seed)) in queue.by_ref().take(per_round) {
            lab.publish_generated(ways[w].0, ways[w].1, &name, size, seed);
        }
        std::thread::sleep(Duration::from_millis(100 + rng.below(1100)));
        let victim = ["court", "internet"][rng.below(2) as usize];
        eprintln!("round {round}: kill -9 {victim}");
        nodes.remove(victim).unwrap().kill9();
        std::thread::sleep(Duration::from_millis(300));
        nodes.insert(victim, lab.start(victim));
        assert!(
            !watches.iter().any(Watch::failed),
            "a watch saw a partial or unexpected file"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline
        && !watches.iter().any(Watch::failed)
        && ways
            .iter()
            .zip(&expected)
            .any(|((_, ch, to), e)| entries(&lab.inbox(to, ch)).len() < e.len())
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    for ((_, ch, to), e) in ways.iter().zip(&expected) {
        if watches.iter().any(Watch::failed) {
            break;
        }
        assert_exactly_once(&lab, to, &lab.inbox(to, ch), e);
    }
    for w in watches {
        w.finish();
    }
    for (_, ch, to) in ways.iter() {
        let inbox = lab.inbox(to, ch);
        wait_until(30, "the part files to be cleaned up", || {
            part_bytes(&inbox) == 0
        });
    }
}

#[test]
fn twenty_random_kills_over_quic_every_file_lands_exactly_once() {
    twenty_random_kills(22400, "quic", &[]);
}

#[test]
fn twenty_random_kills_over_the_diode_every_file_lands_exactly_once() {
    twenty_random_kills(
        22410,
        "diode",
        &[("copies", "1"), ("repeat_window_s", "600")],
    );
}

/// A landing committed just before a crash (its marker written, its part file not yet
/// renamed in) finishes at the next start only when its part file is still what was
/// committed: one changed on disk meanwhile is quarantined as `content_hash`, audited, and
/// never lands. The crash is reproduced by putting landed files back as part files while
/// the receiver is stopped.
#[test]
fn a_committed_part_file_changed_before_recovery_is_quarantined_not_delivered() {
    let lab = Lab::new(29100);
    let court = lab.start("court");
    let internet = lab.start("internet");
    lab.publish("court", "to-internet", "whole.txt", b"kept as committed\n");
    lab.publish(
        "court",
        "to-internet",
        "changed.txt",
        b"changed after its commit\n",
    );
    let inbox = lab.inbox("internet", "to-internet");
    wait_until(60, "both files to land", || visible(&inbox).len() == 2);
    internet.stop();
    let id_of = |name: &str| {
        lab.records("internet", "landed")
            .into_iter()
            .find(|r| r.name.as_deref() == Some(name))
            .and_then(|r| r.object_id)
            .unwrap()
    };
    let staging = inbox.join(isogate::receiver::land::STAGING);
    let part = |name: &str| staging.join(format!("{}.part", id_of(name)));
    std::fs::rename(inbox.join("whole.txt"), part("whole.txt")).unwrap();
    std::fs::rename(inbox.join("changed.txt"), part("changed.txt")).unwrap();
    // same size, one byte changed
    std::fs::write(part("changed.txt"), b"Changed after its commit\n").unwrap();

    let internet = lab.start("internet");
    let q = lab.quarantine("internet", "to-internet");
    wait_until(60, "the changed part file's refusal", || {
        reasons(&q) == vec!["content_hash"]
    });
    wait_until(30, "the whole part file to land", || {
        visible(&inbox) == vec!["whole.txt".to_string()]
    });
    assert_eq!(
        std::fs::read(inbox.join("whole.txt")).unwrap(),
        b"kept as committed\n"
    );
    let refused = lab.records("internet", "quarantined");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].name.as_deref(), Some("changed.txt"));
    let detail = refused[0].detail.as_deref().unwrap_or_default();
    assert!(detail.contains("changed on disk"), "{detail}");
    // the finished delivery is audited just after its rename into the inbox
    let finished = || -> Vec<_> {
        lab.records("internet", "landed")
            .into_iter()
            .filter(|r| r.detail.as_deref() == Some("delivery finished after a restart"))
            .map(|r| (r.name, r.size, r.sha256))
            .collect()
    };
    wait_until(30, "the finished delivery's record", || {
        !finished().is_empty()
    });
    assert_eq!(
        finished(),
        vec![(
            Some("whole.txt".to_string()),
            Some(18),
            Some(sha256_file(&inbox.join("whole.txt")))
        )]
    );
    // the reason file is written before the content moves in: wait for the move
    wait_until(30, "both part files to go", || {
        !part("changed.txt").exists() && !part("whole.txt").exists()
    });
    // the quarantined copy is the changed content, sealed at rest under the lab's key
    let copy = q.join(id_of("changed.txt"));
    let held = std::fs::read(&copy).unwrap();
    assert!(!held.windows(7).any(|w| w == b"Changed"));
    let keys =
        isogate::keys::at_rest::DataKeys::load(&lab.dir.join("certs/internet.data.key")).unwrap();
    let mut opened = Vec::new();
    std::io::Read::read_to_end(
        &mut isogate::node::quarantine::open_content(&copy, Some(&keys)).unwrap(),
        &mut opened,
    )
    .unwrap();
    assert_eq!(opened, b"Changed after its commit\n");
    internet.stop();
    court.stop();
}

/// The spool entries of `lab`'s court node for `to-internet`, by the name each holds.
fn spool_entries(lab: &Lab) -> HashMap<String, std::path::PathBuf> {
    let dir = lab.dir.join("court/state/spool/to-internet");
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let meta = std::fs::read(e.path().join("meta.json")).ok()?;
                    let v: serde_json::Value = serde_json::from_slice(&meta).ok()?;
                    Some((v["name"].as_str()?.to_string(), e.path()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// How many `event` records `node` holds for the file `name`.
fn records_of(lab: &Lab, node: &str, event: &str, name: &str) -> usize {
    lab.records(node, event)
        .iter()
        .filter(|r| r.name.as_deref() == Some(name))
        .count()
}

/// A QUIC channel's stored manifest is written with no fsync: what a power cut can leave
/// of it is reproduced while the sender is stopped. A manifest gone, cut short, or left
/// from another object is refused at the start and the object is inspected and sealed
/// again. An entry back after its delivery (a cut before its removal) is reloaded, sent
/// again and answered as a duplicate. Each file lands exactly once; the spool ends empty.
#[test]
fn manifests_and_removals_a_power_cut_lost_are_made_again_and_each_file_lands_once() {
    let lab = Lab::new(26760);
    // the peer is down: the files wait in the spool, sealed, their manifests stored
    let court = lab.start("court");
    let names = ["gone.txt", "cut.txt", "other.txt", "delivered.txt"];
    let body = |n: &str| format!("{n} crosses once\n").into_bytes();
    for n in names {
        lab.publish("court", "to-internet", n, &body(n));
    }
    wait_until(60, "the four manifests stored", || {
        let e = spool_entries(&lab);
        e.len() == 4 && e.values().all(|d| d.join("manifest").is_file())
    });
    court.stop();
    let entries = spool_entries(&lab);
    let manifest = |n: &str| entries[n].join("manifest");
    // `delivered.txt`'s entry as it is before its delivery
    let kept = lab.dir.join("kept-entry");
    std::fs::create_dir(&kept).unwrap();
    for f in std::fs::read_dir(&entries["delivered.txt"])
        .unwrap()
        .flatten()
    {
        std::fs::copy(f.path(), kept.join(f.file_name())).unwrap();
    }
    let first = std::fs::read(manifest("gone.txt")).unwrap();
    std::fs::remove_file(manifest("gone.txt")).unwrap();
    let cut = std::fs::read(manifest("cut.txt")).unwrap();
    std::fs::write(manifest("cut.txt"), &cut[..cut.len() / 2]).unwrap();
    std::fs::write(manifest("other.txt"), &first).unwrap();

    let internet = lab.start("internet");
    let court = lab.start("court");
    let inbox = lab.inbox("internet", "to-internet");
    wait_until(60, "the four files to land", || visible(&inbox).len() == 4);
    wait_until(30, "the spool emptied", || spool_entries(&lab).is_empty());
    for n in names {
        assert_eq!(std::fs::read(inbox.join(n)).unwrap(), body(n), "{n}");
    }
    // the three whose manifest could not be used were sealed again; the fourth reloaded
    for n in ["gone.txt", "cut.txt", "other.txt"] {
        assert_eq!(records_of(&lab, "court", "sealed", n), 2, "{n}");
    }
    assert_eq!(records_of(&lab, "court", "sealed", "delivered.txt"), 1);
    assert!(
        lab.log("court")
            .contains("stored manifest unusable; sealing again"),
        "{}",
        lab.log("court")
    );

    // stopped after the delivery and before the removal: the entry is back at the start
    court.stop();
    std::fs::rename(&kept, &entries["delivered.txt"]).unwrap();
    let court = lab.start("court");
    wait_until(60, "the resend answered as a duplicate", || {
        records_of(&lab, "internet", "duplicate", "delivered.txt") == 1
    });
    wait_until(30, "the spool emptied again", || {
        spool_entries(&lab).is_empty()
    });
    let mut landed = visible(&inbox);
    landed.sort();
    let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    want.sort();
    assert_eq!(landed, want, "each file exactly once");
    assert_eq!(events(&lab, "internet", "landed"), 4);
    court.stop();
    internet.stop();
}
