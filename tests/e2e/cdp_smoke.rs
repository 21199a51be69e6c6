//! The DevTools driver of the browser tests (tests/e2e/common/cdp.rs) against a page this test
//! serves itself: headless Chromium reads an approver's PEM key file chosen in a file input,
//! signs an approval message with WebCrypto's Ed25519 (what the console's approve button
//! does), and ring accepts the signature; a 401 page reports 401; a screenshot is a PNG.

use crate::common;
use common::cdp::{self, Browser};

use isogate::core::approval::{self, Decision};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// The page's script: the PEM file's DER, made PKCS#8 v1 and imported as an Ed25519 key,
/// signs the hex message shown in the page; the signature (hex) goes into #signature.
const SIGN_JS: &str = r#"
function hexToBytes(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(2 * i, 2), 16);
  return out;
}
function bytesToHex(bytes) {
  return Array.from(bytes, b => b.toString(16).padStart(2, '0')).join('');
}
function pemToDer(pem) {
  const b64 = pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, '').replace(/\s+/g, '');
  const bin = atob(b64);
  const der = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) der[i] = bin.charCodeAt(i);
  return der;
}
// Chromium's WebCrypto imports PKCS#8 v1 only (RFC 8410) and refuses with a DataError the
// v2 document (RFC 5958, with the public key) that ring and `isogate keygen` write: take the
// 32-byte seed that follows the Ed25519 OID and wrap it again as v1.
function ed25519Pkcs8V1(der) {
  const marker = [0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
  for (let i = 0; i + marker.length + 32 <= der.length; i++) {
    if (marker.every((b, j) => der[i + j] === b)) {
      const v1 = new Uint8Array(48);
      v1.set([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70,
              0x04, 0x22, 0x04, 0x20]);
      v1.set(der.subarray(i + marker.length, i + marker.length + 32), 16);
      return v1;
    }
  }
  throw new Error('not an Ed25519 PKCS#8 key');
}
document.getElementById('approve').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const status = document.getElementById('status');
  try {
    const file = document.getElementById('key').files[0];
    if (!file) throw new Error('choose your key file');
    const der = ed25519Pkcs8V1(pemToDer(await file.text()));
    const key = await crypto.subtle.importKey('pkcs8', der, {name: 'Ed25519'}, false, ['sign']);
    const message = hexToBytes(document.getElementById('message').dataset.hex);
    const sig = new Uint8Array(await crypto.subtle.sign({name: 'Ed25519'}, key, message));
    document.getElementById('signature').textContent = bytesToHex(sig);
    status.textContent = 'signed by ' + document.getElementById('approver').value;
  } catch (e) {
    status.textContent = 'error: ' + e;
  }
});
"#;

fn sign_page(message_hex: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Approve</title></head>
<body>
<h1>Approve report-2026.pdf</h1>
<p>Digest to sign: <code id="message" data-hex="{message_hex}">{message_hex}</code></p>
<form id="approve">
  <label>Approver <input id="approver" name="approver"></label>
  <label>Key file <input id="key" type="file" accept=".pem"></label>
  <button id="sign" type="submit">Approve</button>
</form>
<p id="status"></p>
<pre id="signature"></pre>
<script>{SIGN_JS}</script>
</body></html>
"#
    )
}

/// Serves `GET /` (the signing page) and anything else as a 401 login page, one connection
/// at a time, until the test ends.
fn serve(page: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = answer(stream, &page);
        }
    });
    port
}

fn answer(mut stream: TcpStream, page: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut authorization = String::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorization = value.trim().to_string();
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match path {
        "/" => ("200 OK", page.to_string()),
        "/favicon.ico" => ("404 Not Found", String::new()),
        // officer:secret
        "/basic" if authorization == "Basic b2ZmaWNlcjpzZWNyZXQ=" => (
            "200 OK",
            "<!doctype html><h1>Welcome</h1>".to_string(),
        ),
        "/basic" => (
            "401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"console\"",
            "<!doctype html><h1>Who are you?</h1>".to_string(),
        ),
        _ => (
            "401 Unauthorized",
            "<!doctype html><title>Log in</title><h1>Log in first</h1><a id=\"back\" href=\"/\">back</a>"
                .to_string(),
        ),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// A PKCS#8 document PEM-wrapped the way `isogate keygen` writes keys.
fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

#[test]
fn chromium_signs_an_approval_with_a_pem_key_file_and_reports_statuses() {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let key_file = work.path().join("officer-a.pem");
    std::fs::write(&key_file, pem(pkcs8.as_ref())).unwrap();

    let digest = approval::digest(
        isogate::keys::suite::Suite::Default,
        b"a signed manifest body",
    );
    let message = approval::message(Decision::Approve, &digest);
    let port = serve(sign_page(&hex::encode(&message)));
    let base = format!("http://127.0.0.1:{port}");

    let browser = Browser::launch();
    let page = browser.new_page();
    assert_eq!(page.goto(&format!("{base}/")), 200);
    assert_eq!(page.text("h1"), "Approve report-2026.pdf");
    page.fill("#approver", "officer-a");
    page.set_files("#key", &[&key_file]);
    assert_eq!(
        page.eval("document.getElementById('key').files[0].name"),
        "officer-a.pem"
    );
    page.click("#sign");
    page.wait_for(
        "document.getElementById('status').textContent !== ''",
        Duration::from_secs(10),
    );
    assert_eq!(page.text("#status"), "signed by officer-a");
    let signature = hex::decode(page.text("#signature").trim()).unwrap();
    assert_eq!(signature.len(), approval::SIGNATURE_LEN);
    UnparsedPublicKey::new(&ED25519, pair.public_key().as_ref())
        .verify(&message, &signature)
        .expect("the browser's signature verifies with ring");
    // Ed25519 is deterministic: the very bytes ring would have made
    assert_eq!(signature, pair.sign(&message).as_ref());
    assert!(page.errors().is_empty(), "{:?}", page.errors());

    let shot = cdp::screenshot_dir("cdp_smoke").join("signed.png");
    page.screenshot(&shot);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG: {}",
        shot.display()
    );
    let info = png::Decoder::new(std::io::Cursor::new(png))
        .read_info()
        .unwrap()
        .info()
        .clone();
    assert!(info.width > 0 && info.height > 0);

    // a page behind authentication
    assert_eq!(page.goto(&format!("{base}/console/pending")), 401);
    assert_eq!(page.text("h1"), "Log in first");
    // a click that navigates reports the new page's status
    assert_eq!(page.click_and_wait("#back"), 200);
    assert_eq!(page.url(), format!("{base}/"));
    // HTTP authentication: cancelled, then answered
    page.http_auth(None);
    assert_eq!(page.goto(&format!("{base}/basic")), 401);
    assert_eq!(page.text("h1"), "Who are you?");
    page.http_auth(Some(("officer", "wrong")));
    assert_eq!(page.goto(&format!("{base}/basic")), 401);
    page.http_auth(Some(("officer", "secret")));
    assert_eq!(page.goto(&format!("{base}/basic")), 200);
    assert_eq!(page.text("h1"), "Welcome");

    // a script error is reported with its message
    let thrown = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        page.eval("(() => { throw new Error('no such approval') })()")
    }))
    .expect_err("eval of a throwing script panics");
    let text = thrown.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("no such approval"), "{text}");
}
