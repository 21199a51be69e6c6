//! Roles and the security management centre, end to end on a real lab:
//!
//! - the live syslog stream to an IPv6 TCP collector that is down when the node starts,
//!   comes up (the node connects and sends what waited), goes down and comes up again
//!   (the node connects again), while files keep crossing all along;
//! - the separation of duties: where the audit and quarantine directories belong to the
//!   auditors' group (set-group-ID, as the package makes them), the node writes the log and
//!   the reason files 0640 into that group and the quarantined content 0400, so that an
//!   auditor (not root, not the service) reads and verifies the log and the reasons and
//!   cannot read the content. Needs root (to make the group and act as another user);
//!   without it the test says so on stderr and passes without checking.

use crate::common;

use common::*;
use std::fs;
use std::io::Read;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A syslog collector on one accepted TCP connection: reads octet-counted frames into
/// `frames` until the connection ends.
struct Collector {
    frames: Arc<Mutex<Vec<String>>>,
    conn: Arc<Mutex<Option<TcpStream>>>,
    _listener: TcpListener,
}

impl Collector {
    fn listen(port: u16) -> Collector {
        let listener = TcpListener::bind(("::1", port)).unwrap();
        let frames = Arc::new(Mutex::new(Vec::new()));
        let conn = Arc::new(Mutex::new(None));
        let l = listener.try_clone().unwrap();
        let (f, c) = (frames.clone(), conn.clone());
        std::thread::spawn(move || {
            let accepted = l.accept();
            // one connection only: nobody else listens while it lasts or after it
            drop(l);
            let Ok((mut stream, _)) = accepted else {
                return;
            };
            *c.lock().unwrap() = Some(stream.try_clone().unwrap());
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            while let Ok(n) = stream.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Some(sp) = buf.iter().position(|b| *b == b' ') {
                    let len: usize = std::str::from_utf8(&buf[..sp]).unwrap().parse().unwrap();
                    if buf.len() < sp + 1 + len {
                        break;
                    }
                    let frame = String::from_utf8(buf[sp + 1..sp + 1 + len].to_vec()).unwrap();
                    f.lock().unwrap().push(frame);
                    buf.drain(..sp + 1 + len);
                }
            }
        });
        Collector {
            frames,
            conn,
            _listener: listener,
        }
    }

    fn frames(&self) -> Vec<String> {
        self.frames.lock().unwrap().clone()
    }

    /// The messages received, parsed by an independent RFC 5424 parser.
    fn messages(&self) -> Vec<syslog_rfc5424::SyslogMessage> {
        self.frames()
            .iter()
            .map(|f| syslog_rfc5424::parse_message(f).unwrap_or_else(|e| panic!("{e}: {f}")))
            .collect()
    }

    fn names(&self) -> Vec<String> {
        self.messages()
            .iter()
            .filter_map(|m| m.sd.find_tuple("isogate@32473", "name").map(String::from))
            .collect()
    }

    /// Goes down: the connection is closed and nobody listens any more.
    fn down(self) {
        if let Some(c) = self.conn.lock().unwrap().take() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn publish_batch(lab: &Lab, tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let name = format!("民事判决书-{tag}-{i}.txt");
            lab.publish(
                "court",
                "to-internet",
                &name,
                format!("第{i}号 {tag}\n").as_bytes(),
            );
            name
        })
        .collect()
}

fn wait_landed(lab: &Lab, names: &[String]) {
    let inbox = lab.inbox("internet", "to-internet");
    wait_until(30, "the batch to land while the collector is away", || {
        let seen = visible(&inbox);
        names.iter().all(|n| seen.contains(n))
    });
}

#[test]
fn syslog_to_an_ipv6_collector_that_comes_and_goes() {
    let lab = Lab::new(25500);
    // a free port on ::1, closed again: the collector is down when the node starts
    let port = TcpListener::bind("[::1]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = fs::read_to_string(lab.config("court")).unwrap();
    let text = text.replace(
        "# syslog = \"udp:127.0.0.1:514\"",
        &format!("syslog = \"tcp:[::1]:{port}\""),
    );
    assert!(
        text.contains("syslog = \"tcp:[::1]"),
        "the lab config changed"
    );
    fs::write(lab.config("court"), text).unwrap();
    let court = lab.start("court");
    let internet = lab.start("internet");

    // down: files cross all the same
    let first = publish_batch(&lab, "a", 3);
    wait_landed(&lab, &first);

    // up: the node connects and sends what waited, from its first record on
    let collector = Collector::listen(port);
    wait_until(40, "the records that waited to reach the collector", || {
        let names = collector.names();
        first.iter().all(|n| names.contains(n))
    });
    let messages = collector.messages();
    let seq = |m: &syslog_rfc5424::SyslogMessage| -> u64 {
        m.sd.find_tuple("isogate@32473", "seq")
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(seq(&messages[0]), 1, "the first record waited in the queue");
    assert_eq!(messages[0].msgid.as_deref(), Some("config_loaded"));
    // a Chinese name: the MSG is the record as logged, opened by the BOM (RFC 5424 §6.4)
    let taken = messages
        .iter()
        .find(|m| m.msgid.as_deref() == Some("taken"))
        .expect("a taken record");
    let json = taken
        .msg
        .strip_prefix('\u{feff}')
        .expect("BOM before a UTF-8 MSG");
    let rec: isogate::audit::Record = serde_json::from_str(json).unwrap();
    assert_eq!(
        rec.name.as_deref(),
        taken
            .sd
            .find_tuple("isogate@32473", "name")
            .map(String::as_str)
    );
    assert!(first.contains(rec.name.as_ref().unwrap()));
    assert_eq!(taken.hostname.as_deref(), Some("court"));

    // down again, files go on crossing; then up again: the node connects again
    collector.down();
    let second = publish_batch(&lab, "b", 3);
    wait_landed(&lab, &second);
    let collector = Collector::listen(port);
    let third = publish_batch(&lab, "c", 3);
    wait_landed(&lab, &third);
    wait_until(40, "the node to come back to the collector", || {
        let names = collector.names();
        third.iter().all(|n| names.contains(n))
    });
    assert!(
        collector
            .messages()
            .iter()
            .all(|m| m.hostname.as_deref() == Some("court"))
    );

    assert!(court.stop().success());
    assert!(internet.stop().success());
    let log = lab.log("court");
    assert!(log.contains("syslog collector unreachable"), "{log}");
    assert!(log.contains("syslog export resumed"), "{log}");
}

/// The group id of `name`, if the group exists.
fn gid_of(name: &str) -> Option<u32> {
    let out = Command::new("getent").args(["group", name]).output().ok()?;
    let line = String::from_utf8(out.stdout).ok()?;
    line.split(':').nth(2)?.trim().parse().ok()
}

/// Whether `nobody` with only the supplementary group `gid` can read `path`.
fn auditor_reads(gid: u32, path: &Path) -> bool {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            &format!("--groups={gid}"),
            "cat",
        ])
        .arg(path)
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn auditors_read_the_log_and_the_reasons_not_the_content() {
    // the owner of /proc/self is this process's effective user
    if fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
        eprintln!(
            "SKIPPED auditors_read_the_log_and_the_reasons_not_the_content: needs root to make \
             the isogate-audit group and to act as an auditor"
        );
        return;
    }
    if gid_of("isogate-audit").is_none() {
        let made = Command::new("groupadd")
            .args(["--system", "isogate-audit"])
            .status();
        if !matches!(made, Ok(s) if s.success()) && gid_of("isogate-audit").is_none() {
            eprintln!(
                "SKIPPED auditors_read_the_log_and_the_reasons_not_the_content: cannot make \
                 the isogate-audit group ({made:?})"
            );
            return;
        }
    }
    let audit_gid = gid_of("isogate-audit").unwrap();
    let lab = Lab::new(25520);
    // the way the package lays them out (isogate.tmpfile): the auditors pass through the
    // parents, and the audit and quarantine directories are theirs, set-group-ID
    let mut up = lab.dir.clone();
    while let Some(parent) = up.parent().map(Path::to_path_buf) {
        if parent == Path::new("/") || parent == std::env::temp_dir() {
            break;
        }
        up = parent;
    }
    for d in [up.as_path(), lab.dir.as_path()] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o711)).unwrap();
    }
    for node in ["court", "internet"] {
        fs::set_permissions(lab.dir.join(node), fs::Permissions::from_mode(0o711)).unwrap();
        for sub in ["audit", "quarantine"] {
            let d = lab.dir.join(node).join(sub);
            // empty, as the package makes them: the node makes what goes inside
            let _ = fs::remove_dir_all(&d);
            fs::create_dir_all(&d).unwrap();
            std::os::unix::fs::chown(&d, None, Some(audit_gid)).unwrap();
            fs::set_permissions(&d, fs::Permissions::from_mode(0o2750)).unwrap();
        }
    }
    let court = lab.start("court");
    let internet = lab.start("internet");
    lab.publish("court", "to-internet", "判决书.txt", "第1号\n".as_bytes());
    lab.publish("court", "to-internet", "bad.pdf", b"not a pdf at all\n");
    let quarantine = lab.quarantine("court", "to-internet");
    wait_until(30, "a file to land and one to be refused", || {
        visible(&lab.inbox("internet", "to-internet")).len() == 1
            && fs::read_dir(&quarantine).is_ok_and(|d| d.count() >= 2)
    });
    assert!(court.stop().success());
    assert!(internet.stop().success());

    let mode_gid = |p: &Path| {
        let m = fs::symlink_metadata(p).unwrap();
        (m.mode() & 0o7777, m.gid())
    };
    for node in ["court", "internet"] {
        let audit = lab.dir.join(node).join("audit");
        assert_eq!(mode_gid(&audit), (0o2750, audit_gid), "{}", audit.display());
        let mut files = 0;
        for e in fs::read_dir(&audit).unwrap() {
            let p = e.unwrap().path();
            assert_eq!(mode_gid(&p), (0o640, audit_gid), "{}", p.display());
            files += 1;
        }
        assert!(
            files >= 3,
            "segment, checkpoints and keys in {}",
            audit.display()
        );
        assert!(auditor_reads(audit_gid, &audit.join("log-00000001.jsonl")));
        // the auditor verifies the log, as itself
        let out = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                &format!("--groups={audit_gid}"),
                BIN,
                "audit",
                "verify",
            ])
            .arg(&audit)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{node}: auditor's audit verify: {out:?}"
        );
        // someone outside the group reads nothing
        let outsider = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
            .arg(audit.join("log-00000001.jsonl"))
            .status()
            .unwrap();
        assert!(
            !outsider.success(),
            "{node}: the log is readable outside the group"
        );
    }

    assert_eq!(mode_gid(&quarantine), (0o2750, audit_gid));
    let mut reasons = 0;
    for e in fs::read_dir(&quarantine).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".reason.json") {
            assert_eq!(mode_gid(&p), (0o640, audit_gid), "{name}");
            assert!(auditor_reads(audit_gid, &p), "{name}");
            reasons += 1;
        } else {
            assert_eq!(mode_gid(&p), (0o400, audit_gid), "{name}");
            assert!(
                !auditor_reads(audit_gid, &p),
                "the auditor read the content {name}"
            );
        }
    }
    assert_eq!(reasons, 1);
}
