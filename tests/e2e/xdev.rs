//! Outboxes, inboxes and quarantine each on a file system of their own, end to end, as
//! root: every node runs inside a mount namespace of its own where each of those folders
//! is a separate tmpfs (1 GiB: above the free-space floor; the state directory stays on
//! the test's disk), so every take, landing and quarantine move would cross file systems.
//! Files cross both ways, a refused file lands in quarantine and never lingers in the
//! inbox's staging folder, and a sender killed with `kill -9` again and again while it
//! copies loses and duplicates nothing. A take that keeps failing is named by `/healthz`
//! until it passes, and leaves no half-made spool entries behind.
//!
//! ```text
//!   holder (unshare -m, sleeps) ── tmpfs: outbox/*, inbox/*, quarantine/*
//!      ▲ nsenter -m                         ▲ the test reads and writes through
//!   isogate run (court | internet)          /proc/<holder>/root/<path>
//! ```

use crate::common;

use common::*;
use std::fs;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const MIB: u64 = 1 << 20;
const CHANNELS: [&str; 2] = ["to-internet", "to-court"];

/// A process that holds a mount namespace with a tmpfs on each of a node's outboxes,
/// inboxes and quarantine folders; killed when dropped (the mounts go with it).
struct Holder {
    child: Child,
}

impl Holder {
    /// `None` (said loudly) when mount namespaces cannot be made here.
    fn new(lab: &Lab, node: &str) -> Option<Holder> {
        let mut script = String::new();
        for kind in ["outbox", "inbox", "quarantine"] {
            for ch in CHANNELS {
                let dir = lab.dir.join(node).join(kind).join(ch);
                fs::create_dir_all(&dir).unwrap();
                script.push_str(&format!(
                    "mount -t tmpfs -o size=1g tmpfs '{}' && ",
                    dir.display()
                ));
            }
        }
        script.push_str("echo ready && exec sleep 3600");
        let mut child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .ok()?;
        let mut line = String::new();
        let out = child.stdout.take().unwrap();
        std::io::BufReader::new(out).read_line(&mut line).ok()?;
        if line.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        Some(Holder { child })
    }

    /// `path` as the node in this namespace sees it.
    fn at(&self, path: &Path) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.child.id()))
            .join(path.strip_prefix("/").unwrap())
    }

    /// Starts `isogate run` for `node` inside this namespace, logging to `<lab>/<node>.log`.
    fn start(&self, lab: &Lab, node: &str) -> Running {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(lab.dir.join(format!("{node}.log")))
            .unwrap();
        let child = Command::new("nsenter")
            .args([
                "-t",
                &self.child.id().to_string(),
                "-m",
                BIN,
                "run",
                "--config",
            ])
            .arg(lab.config(node))
            .env("RUST_LOG", "info,quinn=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Running::from_child(node, child)
    }

    /// `isogate check` inside this namespace: its standard output.
    fn check(&self, lab: &Lab, node: &str) -> String {
        let out = Command::new("nsenter")
            .args([
                "-t",
                &self.child.id().to_string(),
                "-m",
                BIN,
                "check",
                "--config",
            ])
            .arg(lab.config(node))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Publishes a file into `dir` (as seen inside) the recommended way.
    fn publish(&self, dir: &Path, name: &str, content: &[u8]) {
        let dir = self.at(dir);
        let tmp = dir.join(format!(".{name}.tmp"));
        fs::write(&tmp, content).unwrap();
        fs::rename(&tmp, dir.join(name)).unwrap();
    }

    /// Publishes a generated file (see `common::generated`).
    fn publish_generated(&self, dir: &Path, name: &str, size: u64, seed: u64) {
        let dir = self.at(dir);
        let tmp = dir.join(format!(".{name}.tmp"));
        write_generated(&tmp, size, seed);
        fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Both holders, or `None` (said) where mount namespaces are missing.
fn holders(lab: &Lab) -> Option<(Holder, Holder)> {
    let (Some(c), Some(i)) = (Holder::new(lab, "court"), Holder::new(lab, "internet")) else {
        eprintln!(
            "SKIPPED: cannot make a mount namespace with tmpfs mounts (unshare -m, as root); the cross-file-system tests did not run"
        );
        return None;
    };
    Some((c, i))
}

/// `GET /healthz` on the lab's status port: status and body.
fn healthz(port: u16) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

/// Entries of a directory, dot names included.
fn all(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Gives the internet node its own copy of the to-internet policy that refuses a keyword
/// the sender's copy lets through: a refusal made on the receiver, after the content came.
fn receiver_refuses(lab: &Lab, keyword: &str) {
    let policy = lab.dir.join("policy");
    let text = fs::read_to_string(policy.join("to-internet.toml")).unwrap();
    fs::write(
        policy.join("internet-own.toml"),
        text.replace("keywords = [", &format!("keywords = [\"{keyword}\", ")),
    )
    .unwrap();
    let config = lab.config("internet");
    let cfg = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        cfg.replace(
            "policy = \"policy/to-internet.toml\"",
            "policy = \"policy/internet-own.toml\"",
        ),
    )
    .unwrap();
}

#[test]
fn files_cross_both_ways_and_refusals_reach_quarantine_across_file_systems() {
    let lab = Lab::new(24900);
    receiver_refuses(&lab, "仅收方规则");
    let Some((court_ns, internet_ns)) = holders(&lab) else {
        return;
    };
    // the survey names the copies before anything runs
    let check = court_ns.check(&lab, "court");
    assert!(
        check.contains("copy: outbox to-internet is on another file system than state_dir"),
        "{check}"
    );
    let court = court_ns.start(&lab, "court");
    let internet = internet_ns.start(&lab, "internet");

    let out_c = lab.outbox("court", "to-internet");
    let out_i = lab.outbox("internet", "to-court");
    let mut sent = Vec::new();
    for i in 0..12u64 {
        let (name, size) = (
            format!("判决书-{i}.pdf"),
            [300, 70_000, 3 * MIB][i as usize % 3],
        );
        court_ns.publish_generated(&out_c, &name, size, i);
        sent.push((name, size, i));
    }
    court_ns.publish(&out_c, "备注.txt", "仅收方规则\n".as_bytes());
    for i in 0..6u64 {
        internet_ns.publish_generated(&out_i, &format!("起诉状-{i}.pdf"), 90_000 + i, 100 + i);
    }

    let inbox_i = internet_ns.at(&lab.inbox("internet", "to-internet"));
    let inbox_c = court_ns.at(&lab.inbox("court", "to-court"));
    let q_i = internet_ns.at(&lab.quarantine("internet", "to-internet"));
    wait_until(60, "12 files on the internet side", || {
        visible(&inbox_i).len() == 12
    });
    wait_until(60, "6 files on the court side", || {
        visible(&inbox_c).len() == 6
    });
    wait_until(30, "the receiver's refusal in quarantine", || {
        reasons(&q_i) == vec!["keyword_match"]
    });
    for (name, size, seed) in &sent {
        assert_eq!(
            sha256_file(&inbox_i.join(name)),
            sha256_of_generated(*size, *seed),
            "{name}"
        );
    }
    for i in 0..6u64 {
        assert_eq!(
            sha256_file(&inbox_c.join(format!("起诉状-{i}.pdf"))),
            sha256_of_generated(90_000 + i, 100 + i)
        );
    }
    // the refused content is in quarantine, whole, and nowhere the inbox's readers can reach
    // (its reason file is written first, then the content copied in under its id)
    let id = all(&q_i)
        .iter()
        .find_map(|n| n.strip_suffix(".reason.json").map(str::to_string))
        .unwrap();
    wait_until(30, "the refused content in quarantine", || {
        q_i.join(&id).exists()
    });
    let kept: Vec<String> = all(&q_i)
        .into_iter()
        .filter(|n| !n.ends_with(".reason.json"))
        .collect();
    assert_eq!(kept, vec![id], "{kept:?}");
    // sealed at rest with the internet node's data key, and whole once opened
    let keys =
        isogate::keys::at_rest::DataKeys::load(&lab.dir.join("certs/internet.data.key")).unwrap();
    let mut opened = Vec::new();
    std::io::Read::read_to_end(
        &mut isogate::node::quarantine::open_content(&q_i.join(&kept[0]), Some(&keys)).unwrap(),
        &mut opened,
    )
    .unwrap();
    assert_eq!(opened, "仅收方规则\n".as_bytes());
    assert_ne!(fs::read(q_i.join(&kept[0])).unwrap(), opened);
    assert!(!visible(&inbox_i).contains(&"备注.txt".to_string()));
    // the sender stops sending once the receipt says quarantined: no endless resends
    wait_until(30, "the sender's spool to empty", || {
        all(&lab.dir.join("court/state/spool/to-internet")).is_empty()
    });
    let staging = inbox_i.join(".isogate-tmp");
    assert!(staged(&staging).is_empty(), "{:?}", all(&staging));
    let mode = fs::metadata(&staging).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o700
    );
    // the outboxes are empty, their staging folders too
    for (ns, dir) in [(&court_ns, &out_c), (&internet_ns, &out_i)] {
        let dir = ns.at(dir);
        assert_eq!(all(&dir), vec![".isogate-tmp".to_string()]);
        assert!(all(&dir.join(".isogate-tmp")).is_empty());
    }
    // a take that fails for good is not a silent retry: /healthz names it until it passes
    let port = lab.port_base + 2;
    assert_eq!(healthz(port).0, 200);
    let staging_c = court_ns.at(&out_c).join(".isogate-tmp");
    fs::remove_dir(&staging_c).unwrap();
    fs::write(&staging_c, b"in the way").unwrap();
    court_ns.publish(
        &out_c,
        "later.txt",
        b"after the fault
",
    );
    wait_until(30, "/healthz to name the failing intake", || {
        let (status, body) = healthz(port);
        status == 503 && body.contains("intake: channel to-internet")
    });
    fs::remove_file(&staging_c).unwrap();
    wait_until(30, "the file once the fault is gone", || {
        inbox_i.join("later.txt").exists()
    });
    wait_until(30, "/healthz to say ok again", || healthz(port).0 == 200);
    wait_until(30, "the sender's spool to empty again", || {
        all(&lab.dir.join("court/state/spool/to-internet")).is_empty()
    });
    drop((court, internet));
    assert_eq!(events(&lab, "court", "taken"), 14);
    assert_eq!(events(&lab, "internet", "landed"), 13);
    for node in ["court", "internet"] {
        let log = lab.log(node);
        assert!(!log.contains("cross-device"), "{node}: {log}");
        assert!(log.contains("a move crosses file systems"), "{node}");
    }
}

/// Whether some spool entry of `channel` is being copied into (its part file holds bytes:
/// a reused folder keeps an empty one).
fn copying(lab: &Lab, channel: &str) -> bool {
    let spool = lab.dir.join("court/state/spool").join(channel);
    all(&spool)
        .iter()
        .any(|e| fs::metadata(spool.join(e).join(".content.part")).is_ok_and(|m| m.len() > 0))
}

#[test]
fn a_sender_killed_while_it_copies_loses_and_duplicates_nothing() {
    let lab = Lab::new(24910);
    let Some((court_ns, internet_ns)) = holders(&lab) else {
        return;
    };
    let _internet = internet_ns.start(&lab, "internet");
    let out_c = lab.outbox("court", "to-internet");
    let inbox_i = internet_ns.at(&lab.inbox("internet", "to-internet"));
    const FILES: u64 = 16;
    const SIZE: u64 = 8 * MIB;
    for i in 0..FILES {
        court_ns.publish_generated(&out_c, &format!("卷-{i}.pdf"), SIZE + i, i);
    }
    // killed the moment a copy into the spool is seen under way, again and again
    let mut cut = 0;
    let started = || lab.log("court").matches("node started").count();
    for round in 0..6 {
        let court = court_ns.start(&lab, "court");
        wait_until(10, "the sender to start", || started() > round);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !copying(&lab, "to-internet") && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        if copying(&lab, "to-internet") {
            cut += 1;
        }
        court.kill9();
    }
    assert!(
        cut > 0,
        "no kill fell inside a copy: the scenario did not happen"
    );
    let court = court_ns.start(&lab, "court");
    wait_until(90, "every file landed", || {
        visible(&inbox_i).len() as u64 >= FILES
    });
    wait_until(30, "the sender's spool to empty", || {
        all(&lab.dir.join("court/state/spool/to-internet")).is_empty()
    });
    // exactly one of each, whole
    let landed = visible(&inbox_i);
    assert_eq!(landed.len() as u64, FILES, "{landed:?}");
    for i in 0..FILES {
        let name = format!("卷-{i}.pdf");
        assert_eq!(
            sha256_file(&inbox_i.join(&name)),
            sha256_of_generated(SIZE + i, i),
            "{name}"
        );
    }
    let outbox = court_ns.at(&out_c);
    assert_eq!(all(&outbox), vec![".isogate-tmp".to_string()]);
    assert!(all(&outbox.join(".isogate-tmp")).is_empty());
    drop(court);
    assert!(
        lab.log("court").contains("cut short is finished"),
        "no take was finished at start-up"
    );
    // one object per file: no name was taken as two objects, none landed twice
    let mut taken: std::collections::HashMap<String, std::collections::HashSet<String>> =
        std::collections::HashMap::new();
    for r in lab.records("court", "taken") {
        taken
            .entry(r.name.unwrap_or_default())
            .or_default()
            .insert(r.object_id.unwrap_or_default());
    }
    assert!(taken.values().all(|ids| ids.len() == 1), "{taken:?}");
    let landed: std::collections::HashSet<_> = lab
        .records("internet", "landed")
        .into_iter()
        .map(|r| r.object_id)
        .collect();
    assert_eq!(landed.len() as u64, FILES);
}
