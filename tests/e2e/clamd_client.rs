//! The clamd client against a real clamd started by the test with its own signature database,
//! and against fake servers for the failures a real clamd does not show on demand.

use crate::common::clamd::{EICAR_REPORTED, TestClamd, eicar};
use isogate::inspect::clamd::{Clamd, ClamdError, ScanResult};
use isogate::policy::antivirus::ClamdAddr;
use std::io::{Cursor, Read, Write};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(20);

fn client(clamd: &TestClamd) -> Clamd {
    Clamd::new(clamd.addr().parse().unwrap(), TIMEOUT)
}

fn scan(c: &Clamd, bytes: &[u8]) -> Result<ScanResult, ClamdError> {
    c.scan(&mut Cursor::new(bytes))
}

/// Text that is no signature, `len` bytes long.
fn clean_bytes(len: usize) -> Vec<u8> {
    let line = b"isogate carries plain text across the boundary, line after line.\n";
    line.iter().copied().cycle().take(len).collect()
}

/// A zip archive holding one file.
fn zip_one(name: &str, body: &[u8]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    w.start_file(name, options).unwrap();
    w.write_all(body).unwrap();
    w.finish().unwrap().into_inner()
}

#[test]
fn clean_content_is_clean() {
    let clamd = TestClamd::start();
    let c = client(&clamd);
    c.ping().unwrap();
    assert_eq!(scan(&c, b"hello, world\n").unwrap(), ScanResult::Clean);
    assert_eq!(scan(&c, b"").unwrap(), ScanResult::Clean);
    // Several chunks.
    assert_eq!(
        scan(&c, &clean_bytes(3 * 1024 * 1024 + 17)).unwrap(),
        ScanResult::Clean
    );
}

#[test]
fn eicar_is_found_anywhere_in_the_stream() {
    let clamd = TestClamd::start();
    let c = client(&clamd);
    assert_eq!(
        scan(&c, &eicar()).unwrap(),
        ScanResult::Found(EICAR_REPORTED.into())
    );
    // Across the boundary between the first and the second chunk.
    let mut body = clean_bytes(isogate::inspect::clamd::CHUNK_LEN - 30);
    body.extend_from_slice(&eicar());
    body.extend_from_slice(&clean_bytes(1000));
    assert_eq!(
        scan(&c, &body).unwrap(),
        ScanResult::Found(EICAR_REPORTED.into())
    );
}

#[test]
fn eicar_in_a_zip_in_a_zip_is_found() {
    let clamd = TestClamd::start();
    let c = client(&clamd);
    let inner = zip_one("docs/eicar.com", &eicar());
    let outer = zip_one("inner.zip", &inner);
    assert_eq!(
        scan(&c, &outer).unwrap(),
        ScanResult::Found(EICAR_REPORTED.into())
    );
    let harmless = zip_one("inner.zip", &zip_one("a.txt", &clean_bytes(5000)));
    assert_eq!(scan(&c, &harmless).unwrap(), ScanResult::Clean);
}

#[test]
fn a_stream_over_stream_max_length_is_size_limit() {
    let clamd = TestClamd::start_with("1M");
    let c = client(&clamd);
    assert_eq!(
        scan(&c, &clean_bytes(1024 * 1024 - 1)).unwrap(),
        ScanResult::Clean
    );
    for len in [1024 * 1024 + 1, 8 * 1024 * 1024] {
        let started = Instant::now();
        match scan(&c, &clean_bytes(len)) {
            Err(ClamdError::SizeLimit) => {}
            other => panic!("{len} bytes gave {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // clamd is still fine afterwards.
    c.ping().unwrap();
}

#[test]
fn clamd_stopping_is_a_quick_connect_error_and_restarting_heals() {
    let mut clamd = TestClamd::start();
    let c = client(&clamd);
    assert_eq!(scan(&c, b"before").unwrap(), ScanResult::Clean);
    clamd.stop();
    let started = Instant::now();
    match scan(&c, b"during") {
        Err(e @ ClamdError::Connect { .. }) => {
            assert!(e.to_string().contains(&clamd.addr()), "{e}");
        }
        other => panic!("scan with clamd stopped gave {other:?}"),
    }
    assert!(matches!(c.ping(), Err(ClamdError::Connect { .. })));
    assert!(started.elapsed() < Duration::from_secs(1));
    clamd.restart();
    assert_eq!(scan(&c, b"after").unwrap(), ScanResult::Clean);
    assert_eq!(
        scan(&c, &eicar()).unwrap(),
        ScanResult::Found(EICAR_REPORTED.into())
    );
}

#[test]
fn a_missing_socket_is_a_connect_error() {
    let dir = tempfile::tempdir().unwrap();
    let addr: ClamdAddr = format!("unix:{}", dir.path().join("no-such.sock").display())
        .parse()
        .unwrap();
    let c = Clamd::new(addr.clone(), TIMEOUT);
    assert_eq!(c.addr(), &addr);
    match scan(&c, b"x") {
        Err(ClamdError::Connect { addr: a, .. }) => assert_eq!(a, addr),
        other => panic!("{other:?}"),
    }
}

/// A fake clamd on a Unix socket: each connection is handed to `serve`.
fn fake_clamd(
    serve: impl Fn(std::os::unix::net::UnixStream) + Send + 'static,
) -> (tempfile::TempDir, ClamdAddr) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            serve(conn);
        }
    });
    (dir, ClamdAddr::Unix(path))
}

/// Reads the command and the chunks up to the zero length.
fn read_stream(conn: &mut std::os::unix::net::UnixStream) {
    let mut cmd = [0u8; 10];
    conn.read_exact(&mut cmd).unwrap();
    assert_eq!(&cmd, b"zINSTREAM\0");
    loop {
        let mut len = [0u8; 4];
        conn.read_exact(&mut len).unwrap();
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            return;
        }
        assert!(len <= isogate::inspect::clamd::CHUNK_LEN);
        let mut chunk = vec![0u8; len];
        conn.read_exact(&mut chunk).unwrap();
    }
}

#[test]
fn a_silent_clamd_is_a_timeout() {
    let (_dir, addr) = fake_clamd(|mut conn| {
        std::thread::spawn(move || {
            read_stream(&mut conn);
            std::thread::sleep(Duration::from_secs(5));
        });
    });
    let c = Clamd::new(addr, Duration::from_millis(300));
    let started = Instant::now();
    match scan(&c, b"anything") {
        Err(ClamdError::Timeout { .. }) => {}
        other => panic!("{other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
}

#[test]
fn a_clamd_that_stops_reading_is_a_timeout() {
    let (_dir, addr) = fake_clamd(|conn| {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(10));
            drop(conn);
        });
    });
    let c = Clamd::new(addr, Duration::from_millis(300));
    let started = Instant::now();
    match scan(&c, &clean_bytes(16 * 1024 * 1024)) {
        Err(ClamdError::Timeout { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn odd_replies_and_early_closes_are_errors() {
    let (_dir, addr) = fake_clamd(|mut conn| {
        read_stream(&mut conn);
        let _ = conn.write_all(b"stream: Can't allocate memory ERROR\0");
    });
    match scan(&Clamd::new(addr, TIMEOUT), b"x") {
        Err(ClamdError::Reply(r)) => assert_eq!(r, "stream: Can't allocate memory ERROR"),
        other => panic!("{other:?}"),
    }

    let (_dir, addr) = fake_clamd(|mut conn| {
        read_stream(&mut conn);
    });
    match scan(&Clamd::new(addr, TIMEOUT), b"x") {
        Err(ClamdError::Io { .. }) => {}
        other => panic!("{other:?}"),
    }

    let (_dir, addr) = fake_clamd(|mut conn| {
        let mut cmd = [0u8; 6];
        let _ = conn.read_exact(&mut cmd);
        let _ = conn.write_all(b"PANG\0");
    });
    match Clamd::new(addr, TIMEOUT).ping() {
        Err(ClamdError::Reply(r)) => assert_eq!(r, "PANG"),
        other => panic!("{other:?}"),
    }
}
