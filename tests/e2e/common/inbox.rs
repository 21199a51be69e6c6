//! What an application sees in an inbox, checked the way it would be: every name there is
//! one it expects, whole (its size and SHA-256), exactly once; nothing else is ever visible
//! but the receiver's own staging directory.
//!
//! ```text
//!   publish ──► Expected {name → (size, sha256)}
//!   inbox   ──► Watch (polls during the run: every entry expected and whole)
//!           ──► assert_exactly_once (at the end: exactly the expected names, hashes)
//! ```

use super::{Lab, sha256_file, sha256_of_generated, wait_until};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The receiver's staging directory inside each inbox (a dot name applications ignore).
pub const STAGING: &str = ".isogate-tmp";

/// The files a test published: name → (size, SHA-256 in hex).
pub type Expected = BTreeMap<String, (u64, String)>;

/// What must land for generated files (name, size, seed): name → (size, SHA-256).
pub fn expect(files: &[(String, u64, u64)]) -> Expected {
    files
        .iter()
        .map(|(name, size, seed)| (name.clone(), (*size, sha256_of_generated(*size, *seed))))
        .collect()
}

/// Publishes generated files (name, size, seed) into a node's outbox.
pub fn publish_all(lab: &Lab, node: &str, channel: &str, files: &[(String, u64, u64)]) {
    for (name, size, seed) in files {
        lab.publish_generated(node, channel, name, *size, *seed);
    }
}

/// A name for a generated file of `size` bytes: plain text below the smallest PDF.
pub fn name_for(stem: &str, size: u64) -> String {
    if size < super::SMALLEST_PDF {
        format!("{stem}.txt")
    } else {
        format!("{stem}.pdf")
    }
}

/// Every entry of an inbox but the receiver's staging directory, dot names included.
pub fn entries(inbox: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(inbox)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != STAGING)
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Bytes in the receiver's part files (content streaming in).
pub fn part_bytes(inbox: &Path) -> u64 {
    fs::read_dir(inbox.join(STAGING))
        .map(|r| {
            r.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Checks what a receiver keeps of an object arriving in `inbox` while it arrives (its node
/// seals at rest): every file of the staging folder over 1 MiB is a sealed copy
/// (`<id>.sealed`), at least one is there, and none holds any of `plaintext` (windows of
/// the content being sent). Reads each file whole: for files of some MiB.
pub fn assert_staging_sealed(inbox: &Path, plaintext: &[&[u8]]) {
    let mut sealed = 0;
    for entry in fs::read_dir(inbox.join(STAGING)).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // landed or kept meanwhile: gone from under its name
        let Ok(bytes) = fs::read(entry.path()) else {
            continue;
        };
        if bytes.len() > 1 << 20 {
            assert!(
                name.ends_with(".sealed"),
                "a large staged file in plaintext: {name}"
            );
        }
        if name.ends_with(".sealed") {
            sealed += 1;
            for p in plaintext {
                assert!(
                    !bytes.windows(p.len()).any(|w| w == *p),
                    "{name} holds plaintext of what arrives"
                );
            }
        }
    }
    assert!(sealed > 0, "no sealed copy in {}", inbox.display());
}

/// Watches an inbox until finished: every entry that appears must be an expected name,
/// with its full size and, looked at once, its expected hash; never a partial file,
/// never a temporary name, never a second copy under another name.
pub struct Watch {
    inbox: PathBuf,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Result<u64, String>>>,
}

impl Watch {
    pub fn start(inbox: PathBuf, expected: &Expected) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let want = expected.clone();
        let dir = inbox.clone();
        let handle = std::thread::spawn(move || {
            let mut looks = 0u64;
            let mut hashed: HashSet<String> = HashSet::new();
            while !s.load(Ordering::Relaxed) {
                for name in entries(&dir) {
                    let Some((size, sha)) = want.get(&name) else {
                        return Err(format!("unexpected entry {name:?} in the inbox"));
                    };
                    let Ok(m) = fs::metadata(dir.join(&name)) else {
                        return Err(format!("{name} vanished from the inbox"));
                    };
                    if m.len() != *size {
                        return Err(format!("{name} visible with {} of {size} bytes", m.len()));
                    }
                    if !hashed.contains(&name) {
                        let got = sha256_file(&dir.join(&name));
                        if &got != sha {
                            return Err(format!("{name} visible with other content"));
                        }
                        hashed.insert(name);
                    }
                }
                looks += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(looks)
        });
        Watch {
            inbox,
            stop,
            handle: Some(handle),
        }
    }

    /// Whether the watch has already seen something wrong (it stops at the first).
    pub fn failed(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| h.is_finished())
    }

    /// Stops watching; fails the test with the first thing seen wrong.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let looks = self
            .handle
            .take()
            .unwrap()
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("{}: {e}", self.inbox.display()));
        assert!(looks > 10, "the inbox was looked at only {looks} times");
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Waits (up to `secs`) until the inbox holds as many entries as expected, or the watch
/// saw something wrong.
pub fn wait_landed(inbox: &Path, expected: &Expected, watch: &Watch, secs: u64, what: &str) {
    wait_until(secs, what, || {
        watch.failed() || entries(inbox).len() >= expected.len()
    });
}

/// Asserts that the inbox holds exactly the expected files, each whole, and that the
/// receiver audited a landing for each object and for no other; waits a moment first so
/// that a late duplicate would show. The landing is recorded before it is committed
/// (write-ahead), so a kill between the two makes the record appear twice, for the same
/// object and name: records are counted by object id.
pub fn assert_exactly_once(lab: &Lab, node: &str, inbox: &Path, expected: &Expected) {
    std::thread::sleep(Duration::from_secs(1));
    let names = entries(inbox);
    let want: Vec<String> = expected.keys().cloned().collect();
    if names != want {
        let missing: Vec<&String> = want.iter().filter(|n| !names.contains(n)).collect();
        let extra: Vec<&String> = names.iter().filter(|n| !want.contains(n)).collect();
        panic!(
            "{} of {} files in {}: missing {missing:?}, unexpected {extra:?}",
            names.len(),
            want.len(),
            inbox.display()
        );
    }
    for (name, (_, sha)) in expected {
        assert_eq!(&sha256_file(&inbox.join(name)), sha, "{name} changed");
    }
    let channel = inbox.file_name().unwrap().to_string_lossy().into_owned();
    let records = super::read_live(&lab.dir.join(node).join("audit"));
    let mut landed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.event.as_str() == "landed" && r.channel.as_deref() == Some(&channel))
    {
        let id = r.object_id.clone().unwrap_or_default();
        landed
            .entry(id)
            .or_default()
            .insert(r.name.clone().unwrap_or_default());
    }
    assert_eq!(
        landed.len(),
        expected.len(),
        "objects audited landed on {node}/{channel}"
    );
    for (id, names) in &landed {
        assert_eq!(names.len(), 1, "object {id} audited landed under {names:?}");
        let name = names.iter().next().unwrap();
        assert!(
            expected.contains_key(name),
            "{name} audited landed, not expected"
        );
    }
}
