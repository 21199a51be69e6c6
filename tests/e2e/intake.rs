//! End to end, over `quic`: intake never takes a file that is still being written, leaves the
//! temporary names of common tools alone, and never sends a spool copy that changed after it
//! was taken.

use crate::common;
use common::*;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A lab whose sending node takes a file never seen closed after 1 s unchanged.
fn lab(port_base: u16) -> Lab {
    let lab = Lab::new(port_base);
    for node in ["court", "internet"] {
        let cfg = lab.config(node);
        let text = fs::read_to_string(&cfg).unwrap();
        assert!(text.contains("idle_ms = 5000"), "the lab sets idle_ms");
        fs::write(&cfg, text.replace("idle_ms = 5000", "idle_ms = 1000")).unwrap();
    }
    lab
}

/// [`lab`] whose nodes have no data key: the spool holds each file as renamed in from the
/// outbox (plaintext), so a writer that still holds the file open writes into the spool
/// copy. (With a data key the copy is sealed, and a change to it is refused as
/// `content_hash`: tests/e2e/ferry.rs.)
fn plain_spool_lab(port_base: u16) -> Lab {
    let lab = lab(port_base);
    for node in ["court", "internet"] {
        let cfg = lab.config(node);
        let text = fs::read_to_string(&cfg).unwrap();
        let line = format!("data_key = \"certs/{node}.data.key\"\n");
        assert!(text.contains(&line), "the lab seals its spool");
        fs::write(&cfg, text.replace(&line, "")).unwrap();
    }
    lab
}

/// Waits until the sending node watches its outboxes and its link is up: a file already
/// open when the node starts is one it cannot know is open.
fn ready(lab: &Lab) {
    wait_until(30, "the court node's link", || {
        lab.log("court").contains("link up")
    });
}

#[test]
fn a_writer_that_pauses_with_the_file_open_is_waited_for() {
    let lab = lab(23400);
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    ready(&lab);
    let size: u64 = 4 << 20;
    let pieces: Vec<Vec<u8>> = generated(size, 77).collect();
    let total: usize = pieces.iter().map(Vec::len).sum();
    let path = lab.outbox("court", "to-internet").join("卷宗-停顿.pdf");
    let mut f = fs::File::create(&path).unwrap();
    let mut written = 0usize;
    let mut pieces = pieces.into_iter();
    for p in pieces.by_ref() {
        f.write_all(&p).unwrap();
        written += p.len();
        if written * 10 >= total * 4 {
            break;
        }
    }
    f.flush().unwrap();
    // ten seconds with 40 % written and the file open: ten times idle_ms
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(lab.records("court", "taken").len(), 0, "taken while open");
    assert!(path.exists(), "the open file left the outbox");
    for p in pieces {
        f.write_all(&p).unwrap();
    }
    drop(f);
    let inbox = lab.inbox("internet", "to-internet");
    wait_until(60, "the file to land", || {
        visible(&inbox) == ["卷宗-停顿.pdf"] && lab.records("internet", "landed").len() == 1
    });
    assert_eq!(
        sha256_file(&inbox.join("卷宗-停顿.pdf")),
        sha256_of_generated(size, 77),
        "landed whole"
    );
    // exactly once: give a duplicate time to show up
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lab.records("internet", "landed").len(), 1);
    assert_eq!(lab.records("court", "taken").len(), 1);
    assert!(reasons(&lab.quarantine("court", "to-internet")).is_empty());
    assert!(reasons(&lab.quarantine("internet", "to-internet")).is_empty());
}

#[test]
fn an_sftp_upload_lands_under_its_final_name_only() {
    let lab = lab(23410);
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    ready(&lab);
    let outbox = lab.outbox("court", "to-internet");
    let size: u64 = 300_000;
    // WinSCP writes NAME.filepart, closes it, and renames it when the upload is complete
    let part = outbox.join("判决书.pdf.filepart");
    write_generated(&part, size, 5);
    // closed and left alone for twice idle_ms: still work in progress
    std::thread::sleep(Duration::from_secs(2));
    assert!(part.exists(), "the .filepart was taken");
    assert_eq!(lab.records("court", "taken").len(), 0);
    fs::rename(&part, outbox.join("判决书.pdf")).unwrap();
    let inbox = lab.inbox("internet", "to-internet");
    wait_until(60, "the upload to land", || {
        visible(&inbox) == ["判决书.pdf"] && lab.records("internet", "landed").len() == 1
    });
    assert_eq!(visible(&inbox), ["判决书.pdf"]);
    assert_eq!(
        sha256_file(&inbox.join("判决书.pdf")),
        sha256_of_generated(size, 5)
    );
    std::thread::sleep(Duration::from_secs(2));
    let all = read_live(&lab.dir.join("court").join("audit"));
    assert!(
        all.iter()
            .all(|r| !r.name.as_deref().unwrap_or("").ends_with(".filepart")),
        "a .filepart object was taken or refused"
    );
    assert_eq!(lab.records("court", "taken").len(), 1);
    assert_eq!(lab.records("internet", "landed").len(), 1);
    assert!(reasons(&lab.quarantine("court", "to-internet")).is_empty());
}

/// The spool copies of a channel on a node.
fn spool_contents(lab: &Lab, node: &str, channel: &str) -> Vec<PathBuf> {
    let dir = lab.dir.join(node).join("state").join("spool").join(channel);
    fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.path().join("content"))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default()
}

/// Overwrites 64 KiB in the middle of a file through a descriptor of its own.
fn scribble(path: &Path, size: u64) {
    let mut f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(size / 2)).unwrap();
    f.write_all(&[0x55; 64 * 1024]).unwrap();
}

#[test]
fn a_spool_copy_written_after_it_was_sealed_never_crosses_as_it_is() {
    let lab = plain_spool_lab(23420);
    // the receiver is down: the object is taken, inspected and sealed, and waits
    let _court = lab.start("court");
    let size: u64 = 8 << 20;
    lab.publish_generated("court", "to-internet", "证据-改写.pdf", size, 9);
    wait_until(60, "the object to be sealed", || {
        lab.records("court", "sealed").len() == 1
    });
    let spooled = spool_contents(&lab, "court", "to-internet");
    assert_eq!(spooled.len(), 1);
    let original = sha256_of_generated(size, 9);
    assert_eq!(
        lab.records("court", "sealed")[0].sha256.as_deref(),
        Some(original.as_str())
    );
    // a writer changes the spool copy after it was sealed
    scribble(&spooled[0], size);
    let changed = sha256_file(&spooled[0]);
    assert_ne!(changed, original);
    let _internet = lab.start("internet");
    let inbox = lab.inbox("internet", "to-internet");
    wait_until(90, "the object to land", || {
        visible(&inbox) == ["证据-改写.pdf"] && lab.records("internet", "landed").len() == 1
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lab.records("internet", "landed").len(), 1, "exactly once");
    let landed = sha256_file(&inbox.join("证据-改写.pdf"));
    // what crossed is what was inspected and sealed last: the changed content, taken again
    assert_eq!(
        landed, changed,
        "the landed file is not the content as changed"
    );
    let sealed = lab.records("court", "sealed");
    assert_eq!(sealed.len(), 2, "sealed once as taken, once as changed");
    assert_eq!(sealed[1].sha256.as_deref(), Some(landed.as_str()));
    let again = lab.records("court", "taken");
    assert!(
        again.iter().any(|r| r
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("taken again"))),
        "no record that the object was taken again"
    );
    assert!(reasons(&lab.quarantine("internet", "to-internet")).is_empty());
    assert!(reasons(&lab.quarantine("court", "to-internet")).is_empty());
}

#[test]
fn a_spool_copy_written_while_it_is_inspected_is_inspected_again() {
    let lab = plain_spool_lab(23430);
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    let size: u64 = 32 << 20;
    lab.publish_generated("court", "to-internet", "证据-途中.pdf", size, 11);
    let original = sha256_of_generated(size, 11);
    // write as soon as the copy is in the spool: inspection, sealing or sending is under way
    let mut spooled = None;
    wait_until(60, "the spool copy (or the landing)", || {
        spooled = spool_contents(&lab, "court", "to-internet")
            .into_iter()
            .next();
        spooled.is_some() || lab.records("internet", "landed").len() == 1
    });
    // the entry may already be gone (sent and confirmed): then nothing changes
    let changed = spooled.and_then(|p| {
        let mut f = fs::OpenOptions::new().write(true).open(&p).ok()?;
        f.seek(SeekFrom::Start(size / 2)).unwrap();
        f.write_all(&[0x55; 64 * 1024]).unwrap();
        drop(f);
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut pos = 0u64;
        for piece in generated(size, 11) {
            let mut piece = piece;
            let (from, to) = (pos, pos + piece.len() as u64);
            let (a, b) = (size / 2, size / 2 + 64 * 1024);
            for i in from.max(a)..to.min(b) {
                piece[(i - from) as usize] = 0x55;
            }
            pos = to;
            ctx.update(&piece);
        }
        Some(hex::encode(ctx.finish()))
    });
    let inbox = lab.inbox("internet", "to-internet");
    wait_until(90, "the object to land", || {
        visible(&inbox) == ["证据-途中.pdf"] && lab.records("internet", "landed").len() == 1
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lab.records("internet", "landed").len(), 1, "exactly once");
    let landed = sha256_file(&inbox.join("证据-途中.pdf"));
    // the original (the write came too late to matter) or the changed whole: never a mixture
    assert!(
        landed == original || Some(&landed) == changed.as_ref(),
        "a mixture landed"
    );
    // what landed is what the sender sealed last
    let sealed = lab.records("court", "sealed");
    assert_eq!(
        sealed.last().unwrap().sha256.as_deref(),
        Some(landed.as_str())
    );
    assert!(reasons(&lab.quarantine("internet", "to-internet")).is_empty());
}

#[test]
fn bad_temp_name_patterns_are_reported_with_file_line_and_key() {
    let lab = Lab::new(23440);
    let cfg = lab.config("court");
    let text = fs::read_to_string(&cfg).unwrap();
    let at = text.find("[[channel]]").unwrap();
    let end = text[at..].find("\npolicy = ").unwrap() + at;
    let line_end = text[end + 1..].find('\n').unwrap() + end + 1;
    let mut bad = text.clone();
    bad.insert_str(line_end, "\ntemp_names = [\"*.part\", \"*\", \"a/b\"]");
    fs::write(&cfg, &bad).unwrap();
    let out = check(&cfg, &[]);
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{said}");
    let line = bad[..line_end].lines().count() + 1;
    assert!(said.contains("channel[0].temp_names"), "{said}");
    assert!(
        said.contains(&format!("court.toml:{line}")),
        "line {line}: {said}"
    );
    assert!(said.contains("only wildcards"), "{said}");
    assert!(said.contains("'/'"), "{said}");
    // the same key with good patterns is accepted
    let good = text[..line_end].to_string()
        + "\ntemp_names = [\"*.filepart\", \"~$*\"]"
        + &text[line_end..];
    fs::write(&cfg, good).unwrap();
    let out = check(&cfg, &[]);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("temp_names"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_file_open_since_before_the_start_is_waited_for() {
    let lab = lab(23450);
    let size: u64 = 1 << 20;
    let pieces: Vec<Vec<u8>> = generated(size, 31).collect();
    let (first, rest) = pieces.split_at(pieces.len() / 2);
    let path = lab.outbox("court", "to-internet").join("早于启动.pdf");
    let mut f = fs::File::create(&path).unwrap();
    for p in first {
        f.write_all(p).unwrap();
    }
    f.flush().unwrap();
    // the node starts while the file is open: it never saw the open
    let _court = lab.start("court");
    let _internet = lab.start("internet");
    ready(&lab);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(lab.records("court", "taken").len(), 0, "taken while open");
    for p in rest {
        f.write_all(p).unwrap();
    }
    drop(f);
    let inbox = lab.inbox("internet", "to-internet");
    wait_until(60, "the file to land", || {
        visible(&inbox) == ["早于启动.pdf"] && lab.records("internet", "landed").len() == 1
    });
    assert_eq!(
        sha256_file(&inbox.join("早于启动.pdf")),
        sha256_of_generated(size, 31)
    );
    assert_eq!(lab.records("court", "taken").len(), 1);
}
