//! `isogate resend`: asks the running diode sender to send objects again, by id or by the
//! time they were retired: what an operator does with the receiving node's `lost` records,
//! carried across by hand. The objects must still be held (`[diode] keep_sent_s`).
//!
//! ```text
//! ids, --since/--until ─► held copies? ─► state/resend/<n>.req ─► (running sender, ≤ 1 s)
//!  (when::parse, --tz)     no: "object X is no longer held"   ─► state/resend/<n>.out ─► print
//! ```

use crate::audit::when;
use crate::link::diode::held::{Held, MAX_REQUEST_IDS, Request};
use crate::node::config::Config;
use anyhow::{Context, Result, anyhow, bail};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Queues a resend request for the node configured in `config` and prints its answer,
/// waiting up to `wait` for the running node to give one. `since`/`until` take every form of
/// [`when::FORMS`], wall times and dates in the zone `tz` (default: the system's).
///
/// Exit status 0: every object asked for is held and was queued; 2: some (or all) named
/// ids, or the whole time range, match no held object (the rest are queued).
///
/// # Errors
/// The configuration cannot be loaded or names no diode; an id or time does not parse;
/// the request cannot be written.
pub fn command(
    config: &Path,
    ids: &[String],
    since: Option<&str>,
    until: Option<&str>,
    tz: Option<&str>,
    wait: Duration,
) -> Result<ExitCode> {
    let cfg = Config::load(config).map_err(|p| anyhow!("{}: {p}", config.display()))?;
    if cfg.diode.is_none() {
        bail!(
            "{}: no [diode] section: resend is for the diode link (quic resends until the receipt)",
            config.display()
        );
    }
    if ids.is_empty() && since.is_none() && until.is_none() {
        bail!("name object ids, or a time range with --since/--until");
    }
    if ids.len() > MAX_REQUEST_IDS {
        bail!("at most {MAX_REQUEST_IDS} ids in one request");
    }
    let tz = when::zone(tz).map_err(|e| anyhow!("--tz: {e}"))?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let time = |s: Option<&str>, flag: &str| -> Result<Option<u64>> {
        s.map(|t| when::parse(t, &tz, now_ms).map_err(|e| anyhow!("{flag}: {e}")))
            .transpose()
    };
    let mut request = Request {
        ids: Vec::new(),
        since_ms: time(since, "--since")?,
        until_ms: time(until, "--until")?,
    };
    for id in ids {
        let id = id.trim().to_ascii_lowercase();
        if crate::core::id::ObjectId::parse(&id).is_none() {
            bail!("{id}: not an object id (32 hex digits)");
        }
        request.ids.push(id);
    }
    let held = Held::paths(&cfg.node.state_dir);
    let listed = held.list();
    let matching = listed.iter().filter(|h| request.matches(h)).count();
    let held_ids: std::collections::HashSet<String> =
        listed.iter().map(|h| h.spooled.id.to_string()).collect();
    let mut not_held = 0;
    for id in &request.ids {
        if held_ids.contains(id) {
            continue;
        }
        not_held += 1;
        if held.in_any_spool(id) {
            println!("{id}: still in the spool; it is sent from there");
        } else {
            println!("object {id} is no longer held");
        }
    }
    if matching == 0 {
        if request.ids.is_empty() {
            println!("no held object was retired in that time range");
        }
        eprintln!("nothing to resend");
        return Ok(ExitCode::from(2));
    }
    let path = held.submit(&request).with_context(|| {
        format!(
            "cannot queue the request in {}",
            cfg.node.state_dir.display()
        )
    })?;
    let answer = Held::answer_path(&path);
    let started = Instant::now();
    while started.elapsed() < wait {
        if let Ok(text) = std::fs::read_to_string(&answer) {
            print!("{text}");
            let _ = std::fs::remove_file(&answer);
            return Ok(if not_held > 0 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "{matching} held object(s) asked for; the request waits in {} for the running node (taken within a second while it runs, else at its next start)",
        path.display()
    );
    Ok(if not_held > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
