//! Quarantine: where refused objects go on either node, never delivered, each with a reason
//! file that says what it was and why it was refused.
//!
//! ```text
//! <exchange>/quarantine/<channel>/<object id>               the refused entry, if any
//! <exchange>/quarantine/<channel>/<object id>.reason.json   reason code, detail, name, time
//! ```

use crate::core::id::ObjectId;
use crate::core::reason::{Refusal, Side};
use crate::fsx::{sync_dir, write_durable};
use serde::Serialize;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What the reason file records.
#[derive(Debug, Serialize)]
struct ReasonFile<'a> {
    object_id: String,
    channel: &'a str,
    name: &'a str,
    node: &'a str,
    side: &'a str,
    reason: &'a str,
    detail: &'a str,
    time_ms: u64,
}

/// The object being quarantined.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Its id (names the quarantine entry).
    pub id: ObjectId,
    /// Its channel.
    pub channel: &'a str,
    /// Its name, as given (recorded, never used as a path).
    pub name: &'a str,
}

/// Moves `entry` (if any) into the channel's quarantine as `<id>` and writes its reason
/// file. The entry is renamed, never read or followed. Returns the quarantined path.
pub fn put(
    dir: &Path,
    subject: &Subject<'_>,
    entry: Option<&Path>,
    node: &str,
    side: Side,
    refusal: &Refusal,
) -> io::Result<PathBuf> {
    let Subject { id, channel, name } = *subject;
    fs::create_dir_all(dir)?;
    let target = dir.join(id.to_string());
    if let Some(entry) = entry {
        match fs::rename(entry, &target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let reason = ReasonFile {
        object_id: id.to_string(),
        channel,
        name,
        node,
        side: side.as_str(),
        reason: refusal.reason.as_str(),
        detail: &refusal.detail,
        time_ms: crate::now_ms(),
    };
    let json = serde_json::to_vec_pretty(&reason).map_err(io::Error::other)?;
    write_durable(&dir.join(format!("{id}.reason.json")), &json)?;
    sync_dir(dir)?;
    Ok(target)
}
