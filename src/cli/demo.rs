//! `isogate demo`: makes a lab (in a new temporary directory, or `--dir`), runs both nodes
//! in this process, drops a few sample files — one of which the policy refuses — and prints
//! what crossed and what was refused as it happens; then posts court notices to the court
//! node's message API (one masked, one refused) and reads those that crossed from the
//! internet node's, printing them, until Ctrl-C.

use crate::audit::{Event, Record};
use crate::cli::init::{self, InitError, LabLink};
use crate::cli::process;
use crate::node::config::Config;
use crate::node::{Node, NodeError};
use crate::problem::Problems;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use thiserror::Error;
use tokio::sync::watch;

/// Why the demo could not run.
#[derive(Debug, Error)]
pub enum DemoError {
    /// The lab could not be written.
    #[error(transparent)]
    Init(#[from] InitError),
    /// A lab config did not load.
    #[error("{0}")]
    Config(#[from] Problems),
    /// A node could not open.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// A node failed while running.
    #[error(transparent)]
    Run(#[from] crate::cli::run::RunError),
    /// Writing a sample file failed.
    #[error("writing sample {path}: {source}")]
    Sample {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A minimal PDF document.
const SAMPLE_PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
/// The start of an ELF executable: refused whatever its name says.
const SAMPLE_ELF: &[u8; 64] = &{
    let mut b = [0u8; 64];
    let head =
        *b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00\x01\x00\x00\x00";
    let mut i = 0;
    while i < head.len() {
        b[i] = head[i];
        i += 1;
    }
    b
};
/// A 1x1 PNG image.
const SAMPLE_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0a, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x01, 0x54, 0xa2, 0x4f, 0x5d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

/// The sample files: (node, channel, name, content).
fn samples() -> Vec<(&'static str, &'static str, &'static str, Vec<u8>)> {
    vec![
        (
            "court",
            "to-internet",
            "民事判决书（2026）吉01民初123号.pdf",
            SAMPLE_PDF.to_vec(),
        ),
        (
            "court",
            "to-internet",
            "公告.txt",
            "本院定于2026年12月1日公开开庭审理原告与被告合同纠纷一案。\n"
                .as_bytes()
                .to_vec(),
        ),
        ("internet", "to-court", "起诉状.pdf", SAMPLE_PDF.to_vec()),
        (
            "internet",
            "to-court",
            "evidence-photo.png",
            SAMPLE_PNG.to_vec(),
        ),
        ("internet", "to-court", "invoice.pdf", SAMPLE_ELF.to_vec()),
    ]
}

fn describe(r: &Record) -> Option<String> {
    let name = r.name.as_deref().unwrap_or("?");
    let channel = r.channel.as_deref().unwrap_or("?");
    match r.event {
        Event::Landed => Some(format!(
            "CROSSED   {channel:<12} {name} ({} bytes) landed on {}",
            r.size.unwrap_or(0),
            r.node
        )),
        Event::Refused | Event::Quarantined => Some(format!(
            "REFUSED   {channel:<12} {name} by {}: {} ({})",
            r.node,
            r.reason.map(|x| x.as_str()).unwrap_or("?"),
            r.detail.as_deref().unwrap_or("")
        )),
        Event::MessageRefused => Some(format!(
            "REFUSED   {channel:<12} message {} by {}: {} ({})",
            r.message.as_deref().unwrap_or("?"),
            r.node,
            r.reason.map(|x| x.as_str()).unwrap_or("?"),
            r.detail.as_deref().unwrap_or("")
        )),
        Event::LinkUp => Some(format!(
            "LINK UP   {} {}",
            r.node,
            r.detail.as_deref().unwrap_or("")
        )),
        _ => None,
    }
}

/// `isogate demo`: runs the demo (see [`run`]) on a new runtime until SIGTERM or SIGINT.
///
/// # Errors
/// The runtime or the signal handlers cannot start, or as [`run`].
pub fn command(dir: Option<PathBuf>, port_base: u16) -> anyhow::Result<ExitCode> {
    let runtime = process::runtime()?;
    let shutdown = runtime.block_on(async { process::shutdown_signal() })?;
    runtime.block_on(run(dir, port_base, shutdown))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the demo until `shutdown` resolves.
pub async fn run(
    dir: Option<PathBuf>,
    port_base: u16,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DemoError> {
    let dir = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!(
            "isogate-demo-{}-{}",
            std::process::id(),
            crate::now_ms()
        )),
    };
    init::init(&dir, LabLink::Quic, port_base, None)?;
    println!("isogate demo: lab in {}", dir.display());
    println!(
        "  drop files into {}/court/outbox/to-internet or {}/internet/outbox/to-court",
        dir.display(),
        dir.display()
    );
    println!("  press Ctrl-C to stop\n");
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut nodes = tokio::task::JoinSet::new();
    for (name, _) in init::NODES {
        let node = Arc::new(Node::open(Config::load(
            &dir.join(format!("{name}.toml")),
        )?)?);
        let mut events = node.audit.subscribe();
        tokio::spawn(async move {
            while let Ok(r) = events.recv().await {
                if let Some(line) = describe(&r) {
                    println!("{line}");
                }
            }
        });
        let mut rx = stop_rx.clone();
        nodes.spawn(crate::cli::run::run(node, async move {
            let _ = rx.wait_for(|s| *s).await;
        }));
    }
    // Let both nodes start watching, then publish the samples.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    drop_samples(&dir)?;
    let apis = (
        init::messages_port("court", port_base),
        init::messages_port("internet", port_base),
    );
    let messages = tokio::task::spawn_blocking(move || {
        demo_messages(apis.0, apis.1, std::time::Duration::from_secs(10))
    });
    tokio::select! {
        _ = shutdown => {}
        Some(r) = nodes.join_next() => {
            let _ = stop_tx.send(true);
            if let Ok(Err(e)) = r { return Err(e.into()); }
        }
    }
    let _ = stop_tx.send(true);
    messages.abort();
    while let Some(r) = nodes.join_next().await {
        if let Ok(Err(e)) = r {
            return Err(e.into());
        }
    }
    println!("\nstopped; the lab stays in {}", dir.display());
    Ok(())
}

/// The demo's court notices, as NDJSON lines: a hearing notice whose party's mobile
/// number the lab's notices policy masks, and a judgment notice; both satisfy its schema.
const NOTICES: [&str; 2] = [
    r#"{"type":"hearing","case":"(2026)吉01民初123号","text":"本院定于2026年12月1日公开开庭审理原告与被告合同纠纷一案。","party":{"name":"张三","phone":"13812348000"}}"#,
    r#"{"type":"judgment","case":"(2026)吉01民初77号","text":"判决已生效。"}"#,
];
/// A notice the lab's notices policy refuses: a keyword of its `[text]` rules.
const REFUSED_NOTICE: &str =
    r#"{"type":"status","case":"(2026)吉01民初124号","text":"内部资料，不得外传。"}"#;

/// Posts the demo notices to the court node's message API (port `court`) and reads them
/// from the internet node's (port `internet`), long-polling up to a minute: prints one line
/// each (POSTED, MESSAGE), or what went wrong, and returns them. The first POST is tried
/// again for `patience` while the API is not up yet. Runs on a blocking thread.
fn demo_messages(court: u16, internet: u16, patience: std::time::Duration) -> Vec<String> {
    use crate::cli::bench::messages::{post, read_page};
    let court = std::net::SocketAddr::from(([127, 0, 0, 1], court));
    let internet = std::net::SocketAddr::from(([127, 0, 0, 1], internet));
    let mut out = Vec::new();
    fn say(out: &mut Vec<String>, line: String) {
        println!("{line}");
        out.push(line);
    }
    let ndjson = format!("{}\n{}\n", NOTICES[0], NOTICES[1]);
    let t = std::time::Instant::now();
    let posted = loop {
        // the API opens with the node: try again for a few seconds
        match post(court, "notices", true, ndjson.as_bytes()) {
            Ok(r) => break r,
            Err(e) if t.elapsed() >= patience => {
                say(
                    &mut out,
                    format!("messages: the court node's API at {court}: {e}"),
                );
                return out;
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(200)),
        }
    };
    say(
        &mut out,
        format!(
            "POSTED    notices      2 notices to http://{court}/v1/channels/notices/messages: {} {}",
            posted.status,
            posted.text().trim()
        ),
    );
    match post(court, "notices", false, REFUSED_NOTICE.as_bytes()) {
        Ok(r) => say(
            &mut out,
            format!(
                "POSTED    notices      a notice marked 内部资料: {} {}",
                r.status,
                r.text().trim()
            ),
        ),
        Err(e) => say(&mut out, format!("messages: posting to {court}: {e}")),
    }
    if posted.status != 202 {
        return out;
    }
    let mut cursor: Option<String> = None;
    let mut read = 0;
    while read < NOTICES.len() && t.elapsed() < std::time::Duration::from_secs(60) {
        match read_page(internet, "notices", cursor.as_deref(), 100, 10) {
            Ok(page) => {
                for m in &page.messages {
                    read += 1;
                    say(
                        &mut out,
                        format!(
                            "MESSAGE   notices      read from http://{internet}/ cursor {} id {}: {}",
                            m.cursor, m.id, m.body
                        ),
                    );
                }
                if let Some(next) = page.next {
                    cursor = Some(next);
                }
            }
            Err(e) => {
                say(&mut out, format!("messages: reading from {internet}: {e}"));
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    }
    out
}

/// Publishes each sample the recommended way: written under a dot name, then renamed in.
fn drop_samples(dir: &Path) -> Result<(), DemoError> {
    for (node, channel, name, content) in samples() {
        let outbox = dir.join(node).join("outbox").join(channel);
        let tmp = outbox.join(format!(".{name}.part"));
        let target = outbox.join(name);
        std::fs::write(&tmp, &content)
            .and_then(|()| std::fs::rename(&tmp, &target))
            .map_err(|source| DemoError::Sample {
                path: target,
                source,
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_notices_satisfy_the_lab_schema_and_the_refused_one_too() {
        let schema: serde_json::Value = serde_json::from_str(init::SCHEMA_NOTICES).unwrap();
        let v = jsonschema::draft202012::new(&schema).unwrap();
        for n in NOTICES.iter().chain([&REFUSED_NOTICE]) {
            let body: serde_json::Value = serde_json::from_str(n).unwrap();
            assert!(v.is_valid(&body), "{n}");
        }
        // refused by the policy's keywords, not by the schema
        assert!(init::POLICY_NOTICES.contains("\"内部资料\""));
        assert!(REFUSED_NOTICE.contains("内部资料"));
    }

    #[test]
    fn the_demo_says_so_when_the_message_api_is_not_there() {
        // nothing listens on these ports of the test range
        let lines = demo_messages(28186, 28187, std::time::Duration::ZERO);
        assert!(
            matches!(&lines[..], [one] if one.starts_with("messages: the court node's API at 127.0.0.1:28186")),
            "{lines:?}"
        );
    }

    #[test]
    fn every_sample_meant_to_cross_passes_its_channel_policy() {
        let png = crate::content::media::check("png", &mut &SAMPLE_PNG[..]).unwrap();
        assert_eq!(png, Ok(()));
    }
}
