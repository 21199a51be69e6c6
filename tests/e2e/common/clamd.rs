//! A real clamd for the tests: started in its own temporary directory with its own config and
//! a one-signature database written by the test, so no signature download is ever needed.
//!
//! clamd 1.x starts in a few tens of milliseconds with this database, refuses to start with an
//! empty database directory, and reports our signature as `Isogate.Test.EICAR.UNOFFICIAL`.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The name of the test signature in `db/test.ndb`.
pub const EICAR_SIGNATURE: &str = "Isogate.Test.EICAR";

/// The name clamd reports for the test signature (clamd marks non-official databases).
pub const EICAR_REPORTED: &str = "Isogate.Test.EICAR.UNOFFICIAL";

/// How long clamd may take to answer PING after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A clamd started by the test with its own config and a signature database it writes itself.
pub struct TestClamd {
    /// The directory holding the config, the database, the socket and the logs.
    pub dir: tempfile::TempDir,
    /// clamd's Unix socket.
    pub socket: PathBuf,
    child: Option<Child>,
}

impl TestClamd {
    /// A clamd with a StreamMaxLength of 100M.
    pub fn start() -> TestClamd {
        TestClamd::start_with("100M")
    }

    /// A clamd with the given StreamMaxLength (clamd syntax: "1M", "500K", "100M").
    pub fn start_with(max_stream: &str) -> TestClamd {
        let dir = tempfile::Builder::new()
            .prefix("isogate-clamd-")
            .tempdir()
            .expect("temporary directory for clamd");
        let root = dir.path().to_path_buf();
        let db = root.join("db");
        fs::create_dir(&db).unwrap();
        // A body signature: the hex of the whole EICAR string, anywhere in any file type,
        // including members of (nested) archives.
        fs::write(
            db.join("test.ndb"),
            format!("{EICAR_SIGNATURE}:0:*:{}\n", hex(&eicar())),
        )
        .unwrap();
        let socket = root.join("clamd.sock");
        let p = |name: &str| root.join(name).display().to_string();
        // No `User` line: clamd keeps the test's user, root included. Foreground, so that the
        // child is the daemon. No TCPSocket line: the Unix socket only.
        let conf = format!(
            "LocalSocket {socket}\n\
             FixStaleSocket yes\n\
             DatabaseDirectory {db}\n\
             TemporaryDirectory {tmp}\n\
             Foreground yes\n\
             LogFile {log}\n\
             LogTime yes\n\
             LogVerbose yes\n\
             PidFile {pid}\n\
             ScanArchive yes\n\
             AlertExceedsMax yes\n\
             StreamMaxLength {max_stream}\n\
             SelfCheck 0\n",
            socket = socket.display(),
            db = db.display(),
            tmp = root.display(),
            log = p("clamd.log"),
            pid = p("clamd.pid"),
        );
        fs::write(root.join("clamd.conf"), conf).unwrap();
        let mut clamd = TestClamd {
            dir,
            socket,
            child: None,
        };
        clamd.launch();
        clamd
    }

    /// "unix:<socket>", for `ClamdAddr::from_str`.
    pub fn addr(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// Kills clamd and waits for it (the socket file stays behind, as after a crash).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops clamd if it runs and starts it again with the same config and database.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// clamd's log and its standard output and error, for failure messages.
    pub fn log(&self) -> String {
        let mut text = String::new();
        for name in ["clamd.log", "clamd.out"] {
            let body = fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            text.push_str(&format!("---- {name} ----\n{body}\n"));
        }
        text
    }

    fn launch(&mut self) {
        let root = self.dir.path();
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("clamd.out"))
            .unwrap();
        let err = out.try_clone().unwrap();
        let started = Instant::now();
        let mut child = Command::new(clamd_program())
            .arg(format!(
                "--config-file={}",
                root.join("clamd.conf").display()
            ))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run clamd: {e}; install it with `apt-get install -y clamav-daemon`")
            });
        loop {
            if ping(&self.socket) {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("clamd exited with {status} while starting\n{}", self.log());
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "clamd did not answer PING within {START_TIMEOUT:?}\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }
}

impl Drop for TestClamd {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!("{}", self.log());
        }
        self.stop();
    }
}

/// The EICAR test string, built at runtime from pieces so that the source file itself is not a
/// signature match for any scanner.
pub fn eicar() -> Vec<u8> {
    let pieces: [&str; 5] = [
        "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
        "EICAR-",
        "STANDARD-ANTIVIRUS-",
        "TEST-FILE!",
        "$H+H*",
    ];
    pieces.concat().into_bytes()
}

/// clamd from PATH, else from the sbin directories that are not on a user's PATH.
fn clamd_program() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let fixed = ["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from);
    on_path
        .iter()
        .chain(fixed.iter())
        .map(|d| d.join("clamd"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("clamd"))
}

/// One PING over the socket, answered PONG within a second.
fn ping(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"zPING\0").is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    reply.starts_with(b"PONG")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
