//! End to end: two real `isogate run` processes on a lab, files crossing both channels.

use crate::common;
use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::time::Duration;

#[test]
fn fifty_files_cross_both_channels_intact() {
    let lab = Lab::new(21400);
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    let sizes: [u64; 25] = [
        0,
        1,
        9,
        100,
        4095,
        4096,
        4097,
        65_536,
        1 << 20,
        (1 << 20) - 1,
        (1 << 20) + 1,
        3 << 20,
        5_000_000,
        200_000,
        12_345,
        777,
        31,
        2 << 20,
        16 << 20,
        64 << 20,
        8192,
        40_000,
        300_000,
        1_500_000,
        0,
    ];
    let mut expect: BTreeMap<(String, String), String> = BTreeMap::new();
    for (chan, from, to, big) in [
        ("to-internet", "court", "internet", 256u64 << 20),
        ("to-court", "internet", "court", 100u64 << 20),
    ] {
        for (i, size) in sizes.iter().enumerate() {
            let size = if i == 24 { big } else { *size };
            let seed = i as u64 + if from == "court" { 1000 } else { 2000 };
            // small generated content is plain text
            let name = if size < SMALLEST_PDF {
                format!("短文件-{i}.txt")
            } else {
                format!("案卷材料（2026）第{i}号.pdf")
            };
            if size == 0 {
                lab.publish(from, chan, &name, b"");
            } else {
                lab.publish_generated(from, chan, &name, size, seed);
            }
            let sha = if size == 0 {
                sha256_of_generated(0, 0)
            } else {
                sha256_of_generated(size, seed)
            };
            expect.insert((to.to_string(), name), sha);
        }
    }
    wait_until(240, "all 50 files to land", || {
        visible(&lab.inbox("internet", "to-internet")).len() == 25
            && visible(&lab.inbox("court", "to-court")).len() == 25
    });
    for ((node, name), sha) in &expect {
        let chan = if node == "internet" {
            "to-internet"
        } else {
            "to-court"
        };
        let path = lab.inbox(node, chan).join(name);
        assert_eq!(&sha256_file(&path), sha, "{}", path.display());
    }
    // the senders' spools drain once the receipts arrive
    wait_until(30, "spools to drain", || {
        ["court", "internet"].iter().all(|n| {
            let spool = lab.dir.join(n).join("state/spool");
            fs::read_dir(&spool)
                .map(|chans| {
                    chans.flatten().all(|c| {
                        fs::read_dir(c.path())
                            .map(|mut e| e.next().is_none())
                            .unwrap_or(true)
                    })
                })
                .unwrap_or(true)
        })
    });
    // the audit logs tell the same story on both sides
    assert_eq!(events(&lab, "internet", "landed"), 25);
    assert_eq!(events(&lab, "court", "confirmed"), 25);
}

#[test]
fn slow_writer_in_place_is_delivered_only_whole() {
    let lab = Lab::new(21410);
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    std::thread::sleep(Duration::from_millis(500));
    let path = lab.outbox("court", "to-internet").join("慢慢写.txt");
    let mut f = fs::File::create(&path).unwrap();
    let line = "第一行文字，慢慢写入。\n".repeat(20);
    let inbox = lab.inbox("internet", "to-internet");
    for _ in 0..30 {
        f.write_all(line.as_bytes()).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            visible(&inbox).is_empty(),
            "delivered while still being written"
        );
    }
    drop(f);
    wait_until(30, "the slow file to land", || !visible(&inbox).is_empty());
    assert_eq!(visible(&inbox), vec!["慢慢写.txt".to_string()]);
    let got = fs::read_to_string(inbox.join("慢慢写.txt")).unwrap();
    assert_eq!(got, line.repeat(30));
}

#[test]
fn symlinks_and_hard_links_are_refused_never_followed() {
    let lab = Lab::new(21420);
    let secret_dir = lab.dir.join("elsewhere");
    fs::create_dir_all(&secret_dir).unwrap();
    let secret = "TOP-SECRET-CONTENT-THAT-MUST-NOT-CROSS\n";
    fs::write(secret_dir.join("secret.txt"), secret).unwrap();
    fs::write(secret_dir.join("secret2.txt"), secret).unwrap();
    let outbox = lab.outbox("court", "to-internet");
    std::os::unix::fs::symlink(secret_dir.join("secret.txt"), outbox.join("link.txt")).unwrap();
    fs::hard_link(secret_dir.join("secret2.txt"), outbox.join("hard.txt")).unwrap();
    std::process::Command::new("mkfifo")
        .arg(outbox.join("pipe.txt"))
        .status()
        .unwrap();
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    lab.publish("court", "to-internet", "ok.txt", b"an ordinary file\n");
    let inbox = lab.inbox("internet", "to-internet");
    wait_until(30, "ok.txt to land", || inbox.join("ok.txt").exists());
    let q = lab.quarantine("court", "to-internet");
    wait_until(30, "three refusals", || reasons(&q).len() == 3);
    assert_eq!(
        reasons(&q),
        vec!["hard_link", "not_regular_file", "symlink"]
    );
    // each reason file is written before its entry moves out of the outbox
    wait_until(30, "refused entries to leave the outbox", || {
        visible(&outbox).is_empty()
    });
    // the targets are untouched and their content never crossed
    assert_eq!(
        fs::read_to_string(secret_dir.join("secret.txt")).unwrap(),
        secret
    );
    assert_eq!(
        fs::read_to_string(secret_dir.join("secret2.txt")).unwrap(),
        secret
    );
    for entry in walk(&lab.dir.join("internet")) {
        if entry.is_file() {
            let bytes = fs::read(&entry).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains("TOP-SECRET"),
                "secret found in {}",
                entry.display()
            );
        }
    }
    assert_eq!(visible(&inbox), vec!["ok.txt".to_string()]);
}

#[test]
fn refused_type_goes_to_quarantine_and_name_clashes_never_overwrite() {
    let lab = Lab::new(21430);
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0\x01\0\0\0".to_vec();
    elf.resize(4096, 0);
    lab.publish("internet", "to-court", "invoice.pdf", &elf);
    let inbox = lab.inbox("internet", "to-internet");
    lab.publish("court", "to-internet", "同名.txt", b"first\n");
    wait_until(30, "first file", || inbox.join("同名.txt").exists());
    lab.publish("court", "to-internet", "同名.txt", b"second\n");
    wait_until(30, "second file", || inbox.join("同名 (2).txt").exists());
    assert_eq!(
        fs::read_to_string(inbox.join("同名.txt")).unwrap(),
        "first\n"
    );
    assert_eq!(
        fs::read_to_string(inbox.join("同名 (2).txt")).unwrap(),
        "second\n"
    );
    let q = lab.quarantine("internet", "to-court");
    wait_until(30, "the ELF refusal", || {
        reasons(&q) == vec!["type_refused"]
    });
    assert!(visible(&lab.inbox("court", "to-court")).is_empty());
}

#[test]
fn run_stops_cleanly_on_sigterm_and_check_reports_problems() {
    let lab = Lab::new(21440);
    // SIGHUP, then SIGTERM, as soon as the node serves its metrics, while the rest of it may
    // still be starting: it stops cleanly (exit 0), never killed by either signal's default
    // action
    let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], lab.port_base + 2));
    for _ in 0..3 {
        let court = lab.start("court");
        wait_until(30, "the court's metrics port", || {
            std::net::TcpStream::connect_timeout(&metrics, Duration::from_millis(50)).is_ok()
        });
        std::process::Command::new("kill")
            .args(["-HUP", &court.pid().to_string()])
            .status()
            .unwrap();
        let status = court.stop();
        assert!(status.success(), "{status:?}\n{}", lab.log("court"));
    }
    let court = lab.start("court");
    std::thread::sleep(Duration::from_millis(500));
    assert!(court.stop().success());
    let out = check(&lab.config("court"), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("channel to-internet"));
    let policy = lab.dir.join("policy/to-internet.toml");
    let text = fs::read_to_string(&policy).unwrap();
    fs::write(
        &policy,
        text.replace("max_bytes = 1073741824", "max_bytes = 0"),
    )
    .unwrap();
    let out = check(&lab.config("court"), &["--format", "json"]);
    assert!(!out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["problems"][0]["key"], "size.max_bytes");
    assert!(doc["problems"][0]["line"].as_u64().unwrap() > 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one-line reason: {err}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A file waiting in the spool (its peer is down) is sealed at rest: the entry holds no
/// plaintext of it, nor does any other file of the node's state; once the peer is up it
/// crosses and lands whole, on both links. A sealed copy changed on disk is never sent: it
/// is refused (`content_hash`) and quarantined as it is. The files are large enough
/// (over 4 MiB) that the take hashes them as it seals them, never reading its copy back.
#[test]
fn a_spooled_file_is_sealed_at_rest_and_lands_whole_on_both_links() {
    for (link, port) in [("quic", 27680), ("diode", 27700)] {
        let lab = Lab::new_with(port, &["--link", link]);
        let court = lab.start("court");
        let marker = b"MARKER-spool-4711 ";
        let size = isogate::sender::spool::HASH_AT_TAKE_FROM as usize + 300_000;
        let content: Vec<u8> = marker.iter().copied().cycle().take(size).collect();
        lab.publish("court", "to-internet", "sealed.txt", &content);
        wait_until(20, "the file sealed", || {
            events(&lab, "court", "sealed") >= 1
        });
        let state = lab.dir.join("court").join("state");
        let spooled: Vec<_> = walk(&state.join("spool"))
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| n == "content"))
            .collect();
        assert_eq!(spooled.len(), 1, "{link}: {spooled:?}");
        let stored = fs::read(&spooled[0]).unwrap();
        assert!(stored.starts_with(b"isogate-rest-v1\0"), "{link}");
        for file in walk(&state)
            .into_iter()
            .chain(walk(&lab.outbox("court", "to-internet")))
        {
            let bytes = fs::read(&file).unwrap_or_default();
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker),
                "{link}: plaintext in {}",
                file.display()
            );
        }
        // quic: a second file, its sealed copy changed on disk while it waits for the peer
        let changed = (link == "quic").then(|| {
            lab.publish("court", "to-internet", "changed.txt", &content);
            wait_until(20, "the second file sealed", || {
                events(&lab, "court", "sealed") >= 2
            });
            let copy = walk(&state.join("spool"))
                .into_iter()
                .find(|p| p.file_name().is_some_and(|n| n == "content") && *p != spooled[0])
                .unwrap();
            let mut bytes = fs::read(&copy).unwrap();
            bytes[100_000] ^= 0x01;
            fs::write(&copy, &bytes).unwrap();
        });
        let internet = lab.start("internet");
        let inbox = lab.inbox("internet", "to-internet");
        wait_until(60, "the file landed", || {
            fs::read(inbox.join("sealed.txt")).is_ok_and(|b| b == content)
        });
        if changed.is_some() {
            let quarantine = lab.quarantine("court", "to-internet");
            wait_until(30, "the changed copy refused", || {
                reasons(&quarantine).contains(&"content_hash".to_string())
            });
            assert!(!inbox.join("changed.txt").exists());
            assert!(
                lab.log("court").contains("stored chunk 1"),
                "{}",
                lab.log("court")
            );
        }
        drop(court);
        drop(internet);
    }
}

/// The spool copy of an object that waits for its link, swapped for another copy sealed
/// with the node's own data key for the same entry (it opens as well as the one hashed):
/// the link finds another sealing than the one hashed into the manifest, the object is
/// taken again and inspected again, and what lands is what was sealed last, once; the
/// swapped bytes never cross under the first manifest.
#[test]
fn a_sealed_copy_swapped_for_another_sealing_is_taken_again_on_both_links() {
    for (link, port) in [("quic", 26600), ("diode", 26620)] {
        let lab = Lab::new_with(port, &["--link", link]);
        // the diode sends its first pass at once, to no one here: the spare passes read
        // the copy again, one a second
        for node in ["court", "internet"]
            .into_iter()
            .filter(|_| link == "diode")
        {
            let cfg = lab.config(node);
            let text = fs::read_to_string(&cfg).unwrap();
            let line = "repeat_window_s = 600";
            assert_eq!(text.matches(line).count(), 1, "{node}: the lab's window");
            fs::write(&cfg, text.replace(line, "repeat_window_s = 20")).unwrap();
        }
        let court = lab.start("court");
        let first = "第一稿：原告的诉讼请求。\n".repeat(20_000).into_bytes();
        let swapped = "第二稿：被告的答辩意见。\n".repeat(20_000).into_bytes();
        lab.publish("court", "to-internet", "裁定书.txt", &first);
        wait_until(20, "the file sealed", || {
            events(&lab, "court", "sealed") >= 1
        });
        let sealed = lab.records("court", "sealed");
        let id = swap_sealing(&lab, "裁定书.txt", &swapped);
        assert_eq!(sealed[0].object_id.as_deref(), Some(id.as_str()), "{link}");
        let internet = lab.start("internet");
        // what crossed is what was inspected and sealed last: the swapped-in content
        crossed_once_as_taken_again(
            &lab,
            ("裁定书.txt", &swapped),
            "not the sealed copy that was hashed",
            60,
            link,
        );
        drop(court);
        drop(internet);
    }
}

/// On the diode, a plain spool copy (a node without a data key) changed in place after it
/// was sealed is never sent as it is: each pass reads a chunk whole and checks it against
/// the manifest before any of it goes to the wire, so the spare pass that finds the change
/// takes the object again, and what crosses is the changed content, inspected and sealed
/// again. Before, such a copy's bytes went out under the first manifest (the receiver
/// refused them, but they had crossed).
#[test]
fn a_plain_spool_copy_changed_after_its_seal_is_taken_again_on_the_diode() {
    let lab = Lab::new_with(26660, &["--link", "diode"]);
    for node in ["court", "internet"] {
        let cfg = lab.config(node);
        let text = fs::read_to_string(&cfg).unwrap();
        let key = format!("data_key = \"certs/{node}.data.key\"\n");
        let window = "repeat_window_s = 600";
        assert_eq!(
            text.matches(&key).count(),
            1,
            "{node}: the lab seals its spool"
        );
        assert_eq!(text.matches(window).count(), 1, "{node}: the lab's window");
        let text = text
            .replace(&key, "")
            .replace(window, "repeat_window_s = 20");
        fs::write(&cfg, text).unwrap();
    }
    let court = lab.start("court");
    let first = "第一稿：原告的诉讼请求。\n".repeat(200_000).into_bytes();
    let changed = "第二稿：被告的答辩意见。\n".repeat(200_000).into_bytes();
    assert_eq!(first.len(), changed.len());
    lab.publish("court", "to-internet", "判决书.txt", &first);
    // the first pass goes out to no one (the receiver is down); the spare passes, a
    // second apart, read the copy again
    wait_until(30, "the first pass out", || {
        events(&lab, "court", "sent") >= 1
    });
    let content = walk(&lab.dir.join("court").join("state").join("spool"))
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "content"))
        .unwrap();
    assert_eq!(fs::read(&content).unwrap(), first, "a plain copy");
    // changed in place, same size: only its bytes tell
    fs::OpenOptions::new()
        .write(true)
        .open(&content)
        .unwrap()
        .write_all(&changed)
        .unwrap();
    let internet = lab.start("internet");
    crossed_once_as_taken_again(
        &lab,
        ("判决书.txt", &changed),
        "a chunk differs from the manifest",
        90,
        "diode",
    );
    drop(court);
    drop(internet);
}

/// Waits up to `secs` for the one file of channel `to-internet` to land on the internet
/// node, then checks that it landed once, as `content` (`name`, `content`), the content
/// sealed last; that the court sealed it twice and recorded taking it again because of
/// `why`; and that the receiver refused nothing (`link` names the run in a failure).
fn crossed_once_as_taken_again(
    lab: &Lab,
    (name, content): (&str, &[u8]),
    why: &str,
    secs: u64,
    link: &str,
) {
    let inbox = lab.inbox("internet", "to-internet");
    // the landing is recorded before the file is renamed into the inbox (write-ahead)
    wait_until(secs, "the file landed", || {
        lab.records("internet", "landed").len() == 1 && inbox.join(name).exists()
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lab.records("internet", "landed").len(), 1, "{link}: once");
    assert!(
        fs::read(inbox.join(name)).unwrap() == content,
        "{link}: not the content sealed last"
    );
    assert_eq!(
        lab.records("court", "sealed").len(),
        2,
        "{link}: sealed as taken, then again"
    );
    assert!(
        lab.records("court", "taken").iter().any(|r| r
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("taken again") && d.contains(why))),
        "{link}: no record that the object was taken again ({why})"
    );
    assert!(
        reasons(&lab.quarantine("internet", "to-internet")).is_empty(),
        "{link}: the receiver refused what crossed"
    );
}

/// Renames over the court's one spool copy (channel `to-internet`, file `name`) another
/// copy of `content`, sealed for the same entry with the court's data key, as only a
/// holder of that key could: it opens as the entry's. Returns the entry's object id.
fn swap_sealing(lab: &Lab, name: &str, content: &[u8]) -> String {
    use isogate::keys::at_rest::{DataKeys, SealWriter, SealedFile};
    let entry = walk(&lab.dir.join("court").join("state").join("spool"))
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "content"))
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let id = entry.file_name().unwrap().to_str().unwrap().to_string();
    let keys = DataKeys::load(&lab.dir.join("certs").join("court.data.key")).unwrap();
    let spooled = isogate::core::stage::Spooled {
        id: isogate::core::id::ObjectId::parse(&id).unwrap(),
        channel: "to-internet".into(),
        name: name.into(),
        sequence: 0,
        taken_ms: 0,
        dir: entry.clone(),
    };
    let context = isogate::sender::spool::context(&spooled);
    let other = entry.join(".other");
    let mut w = SealWriter::new(&keys, fs::File::create(&other).unwrap(), &context).unwrap();
    w.write_all(content).unwrap();
    w.finish().unwrap().sync_all().unwrap();
    assert!(
        SealedFile::open(&keys, fs::File::open(&other).unwrap(), &context).is_ok(),
        "the swapped copy opens as the entry's"
    );
    fs::rename(&other, entry.join("content")).unwrap();
    id
}

/// A diode object taken again after its first pass, and sealed again only once that pass's
/// repeat window has ended, still crosses: taking it again forgets the first pass, so the
/// version sealed next goes out in full (before, it was retired unsent).
#[test]
fn a_diode_object_sealed_again_after_its_first_pass_s_window_still_crosses() {
    let lab = Lab::new_with(26640, &["--link", "diode"]);
    let cfg = lab.config("court");
    let text = fs::read_to_string(&cfg).unwrap();
    // spare passes a second apart, for 20 s; a changed copy waits 30 s before it is
    // inspected again, past that window
    for line in ["repeat_window_s = 600\n", "\nidle_ms = 5000\n"] {
        assert_eq!(text.matches(line).count(), 1, "the lab's {line:?}");
    }
    let text = text
        .replace("repeat_window_s = 600\n", "repeat_window_s = 20\n")
        .replace("\nidle_ms = 5000\n", "\nidle_ms = 30000\n");
    fs::write(&cfg, text).unwrap();
    let court = lab.start("court");
    // the outbox watched (the message API starts after the watch): a file renamed in is
    // taken at once, not after idle_ms
    wait_until(30, "the court node's start", || {
        lab.log("court").contains("serving the message API")
    });
    let first = "第一稿：原告的诉讼请求。\n".repeat(20_000).into_bytes();
    let swapped = "第二稿：被告的答辩意见。\n".repeat(20_000).into_bytes();
    lab.publish("court", "to-internet", "决定书.txt", &first);
    // the first pass goes out to no one (the receiver is down), and its window starts
    wait_until(20, "the first pass out", || {
        events(&lab, "court", "sent") >= 1
    });
    swap_sealing(&lab, "决定书.txt", &swapped);
    wait_until(10, "the object taken again", || {
        lab.records("court", "taken").iter().any(|r| {
            r.detail
                .as_deref()
                .is_some_and(|d| d.starts_with("taken again"))
        })
    });
    let internet = lab.start("internet");
    let inbox = lab.inbox("internet", "to-internet");
    // the landing is recorded before the file is renamed into the inbox (write-ahead):
    // both are waited for
    wait_until(90, "the version sealed again to land", || {
        lab.records("internet", "landed").len() == 1 && inbox.join("决定书.txt").exists()
    });
    assert!(fs::read(inbox.join("决定书.txt")).unwrap() == swapped);
    assert_eq!(
        events(&lab, "court", "sealed"),
        2,
        "sealed as taken, then again"
    );
    assert_eq!(
        events(&lab, "court", "retired"),
        0,
        "retired before its second version went out"
    );
    drop(court);
    drop(internet);
}
