//! The outbox watch and intake: notices files in each sending channel's outbox (inotify
//! through `notify`, a rescan at start-up and periodically, since events can be lost),
//! decides when each is complete (`settle`), and takes it into the spool.
//!
//! Only regular files with one link are taken; symlinks, hard links, FIFOs, devices and
//! directories are moved to quarantine as they are, never opened or followed. Names
//! beginning with a dot, and the channel's `temp_names` (`*.filepart`, `*.part`, …), are
//! work in progress and are left alone: an SFTP upload is taken under its final name.
//!
//! ```text
//!  notify events, rescans ─► Settler (settle_ms / idle_ms) ─► due?
//!                                                               │ writers.busy: not yet  
//!                                                               ▼ (a writer that pauses keeps it)
//!                                     intake (blocking): checked again, spool.take, pipeline
//! ```
//!
//! A messages channel's settled files are not spooled as they are: they go to
//! [`crate::sender::messages::Messages::take_file`], which takes their messages in batches.
//!
//! A file some process still holds open is never taken ([`crate::sender::writers`]),
//! however long its writer pauses; where that cannot be seen (a file already open when the
//! node started), the settle rule decides and the pipeline's check at seal catches a file
//! that changed after it was taken.
//!
//! An outbox folder replaced under the node (removed and made again by a cleanup job, moved
//! away, a file system mounted over it) leaves its watches on the old folder. Every
//! [`RENEW_EVERY`] (and at once on an event about the folder itself) each outbox's
//! (device, inode) is compared with the one watched, and a lost watch is asked about; a new
//! folder is watched in its place, rescanned, and logged at WARN ("outbox replaced"). A
//! missing outbox is logged once, and watched again when it comes back.
//!
//! ```text
//!  every 500 ms, IN_DELETE_SELF/IN_MOVE_SELF/IN_UNMOUNT/IN_IGNORED ─► check_outboxes
//!     same (dev, ino), watch alive ─► nothing
//!     other (dev, ino), or lost    ─► unwatch, watch the new folder, rescan it, WARN
//!     missing                      ─► WARN once; checked again until it is back
//! ```

use crate::audit::{Entry, Event};
use crate::core::reason::{Reason, Refusal};
use crate::core::settle::{Decision, Settler, Signal, Stat};
use crate::core::stage::Sealed;
use crate::node::config::Channel;
use crate::node::{Fault, NodeError};
use crate::sender::messages::Messages;
use crate::sender::pipeline::{Sender, forward};
use crate::sender::spool::Taken;
use crate::sender::writers::Writers;
use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};

/// A name due to be taken: its channel, its name, its (device, inode) when it has not
/// changed since before the watch started or an overflow (its writer may have opened it
/// unseen), and its size when polled (bytes).
type Due = (Channel, OsString, Option<(u64, u64)>, u64);

/// A file smaller than this (bytes, when polled) takes one unit of an intake slot, a larger
/// one (or anything not a regular file) a whole slot ([`SMALL_PER_SLOT`] units): a small
/// file's take mostly waits on its fsyncs and its buffers are small, so more of them go at
/// once (its inspection is bounded as any other's: an archive's expansion by its limits).
const SMALL_OBJECT_MAX: u64 = 1 << 20;

/// How many small files share one of [`crate::node::objects_at_once`]'s slots.
const SMALL_PER_SLOT: u32 = 4;

/// The units of the intake's slots a file of `size` bytes holds while it is taken,
/// inspected and sealed.
fn intake_units(size: u64) -> u32 {
    if size < SMALL_OBJECT_MAX {
        1
    } else {
        SMALL_PER_SLOT
    }
}

/// How often each outbox folder is checked to be the one watched.
pub const RENEW_EVERY: Duration = Duration::from_millis(500);

/// How long an outbox may be missing before it is logged (a folder removed and made again
/// at once is logged as replaced only).
const MISSING_GRACE: Duration = Duration::from_secs(1);

/// What the watch knows of one outbox folder.
#[derive(Debug, Default)]
struct Folder {
    /// The (device, inode) watched; `None` while missing.
    id: Option<(u64, u64)>,
    /// An event said the folder itself was removed or moved away.
    stale: bool,
    /// Since when it is missing, and whether that was logged.
    missing: Option<(Instant, bool)>,
}

/// The running watch over every sending channel's outbox.
pub struct Watch {
    sender: Arc<Sender>,
    queue: mpsc::UnboundedSender<Sealed>,
    events: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    watcher: notify::RecommendedWatcher,
    channels: Vec<(Channel, Settler)>,
    folders: Vec<Folder>,
    writers: Writers,
    /// The message intake, which takes the files of a messages channel's outbox.
    messages: Option<Arc<Messages>>,
    /// The (channel, name) of each intake running now: a name published again while its
    /// last file is still being taken waits until that take is over (two takes of one
    /// name at once would each mistake the other's rename for a writer's).
    in_flight: Arc<std::sync::Mutex<HashSet<(String, OsString)>>>,
}

/// The (device, inode) of the directory at `path`, if there is one.
fn folder_id(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path)
        .ok()
        .filter(fs::Metadata::is_dir)
        .map(|m| (m.dev(), m.ino()))
}

impl Watch {
    /// Starts watching every outbox of the node's sending channels.
    ///
    /// # Errors
    /// An outbox cannot be watched.
    pub fn start(
        sender: Arc<Sender>,
        queue: mpsc::UnboundedSender<Sealed>,
    ) -> Result<Watch, NodeError> {
        let node = sender.node.clone();
        let (tx, events) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |res| {
            let _ = tx.send(res);
        })?;
        let mut channels = Vec::new();
        for c in node.cfg.file_sending() {
            watcher.watch(&c.outbox, RecursiveMode::NonRecursive)?;
            let i = node.cfg.intake;
            channels.push((c.clone(), Settler::new(i.settle_ms, i.idle_ms)));
        }
        let outboxes: Vec<PathBuf> = channels.iter().map(|(c, _)| c.outbox.clone()).collect();
        let writers = Writers::start(&outboxes).map_err(notify::Error::io)?;
        sender.spool.watch_writers(writers.clone());
        let folders = outboxes
            .iter()
            .map(|o| Folder {
                id: folder_id(o),
                ..Folder::default()
            })
            .collect();
        Ok(Watch {
            sender,
            queue,
            events,
            watcher,
            channels,
            folders,
            writers,
            messages: None,
            in_flight: Arc::default(),
        })
    }

    /// Hands the settled files of each messages channel's outbox to `messages` (without
    /// it, they are left in the outbox).
    pub fn set_messages(&mut self, messages: Arc<Messages>) {
        self.messages = Some(messages);
    }

    /// Runs until the task is aborted.
    pub async fn run(mut self) {
        // a large file holds a whole slot, a small one a unit of it (see SMALL_PER_SLOT)
        let workers = Arc::new(Semaphore::new(
            crate::node::objects_at_once() * SMALL_PER_SLOT as usize,
        ));
        let mut rescan =
            tokio::time::interval(Duration::from_millis(self.sender.node.cfg.intake.rescan_ms));
        let mut tick = tokio::time::interval(Duration::from_millis(25));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut renew = tokio::time::interval(RENEW_EVERY);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let pending = self.channels.iter().any(|(_, s)| !s.is_empty());
            tokio::select! {
                ev = self.events.recv() => {
                    let Some(ev) = ev else { return };
                    self.on_event(ev);
                    while let Ok(ev) = self.events.try_recv() {
                        self.on_event(ev);
                    }
                }
                _ = rescan.tick() => {
                    self.check_outboxes();
                    self.rescan();
                }
                _ = renew.tick() => self.check_outboxes(),
                _ = tick.tick(), if pending => {}
            }
            self.poll(&workers).await;
        }
    }

    fn on_event(&mut self, ev: notify::Result<notify::Event>) {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(error = %e, "watch error; rescanning the outboxes");
                self.rescan();
                return;
            }
        };
        tracing::trace!(kind = ?ev.kind, paths = ?ev.paths, "watch event");
        if ev.need_rescan() {
            self.rescan();
        }
        // the outbox folder itself removed or moved away: its watch is on the old folder
        if matches!(
            ev.kind,
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
        ) {
            let mut hit = false;
            for ((c, _), f) in self.channels.iter().zip(self.folders.iter_mut()) {
                if ev.paths.contains(&c.outbox) {
                    f.stale = true;
                    hit = true;
                }
            }
            if hit {
                self.check_outboxes();
                return;
            }
        }
        let (signal, path) = match ev.kind {
            EventKind::Create(_) => (Signal::Changed, ev.paths.first()),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                (Signal::RenamedIn, ev.paths.first())
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                (Signal::RenamedIn, ev.paths.get(1))
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::From)) => return,
            EventKind::Modify(_) => (Signal::Changed, ev.paths.first()),
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                (Signal::Closed, ev.paths.first())
            }
            EventKind::Access(_) => return,
            _ => (Signal::Seen, ev.paths.first()),
        };
        let Some(path) = path else { return };
        // a file a take put back (still written): settled again, not taken at once
        let signal = if signal == Signal::RenamedIn && self.sender.spool.was_put_back(path) {
            Signal::Changed
        } else {
            signal
        };
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return;
        };
        if let Some((c, settler)) = self.channels.iter_mut().find(|(c, _)| c.outbox == dir)
            && !c.temp_names.matches(name)
        {
            settler.signal(name, signal);
        }
    }

    fn rescan(&mut self) {
        for i in 0..self.channels.len() {
            self.rescan_one(i);
        }
    }

    /// Signals every name in one channel's outbox. A missing outbox is for
    /// [`Watch::check_outboxes`] to say; any other failure is said once, then counted.
    fn rescan_one(&mut self, i: usize) {
        let Some((c, settler)) = self.channels.get_mut(i) else {
            return;
        };
        let entries = match fs::read_dir(&c.outbox) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                crate::ops::repeat::error_repeated!("watch.rescan", &format!("{}: {e}", c.outbox.display());
                    channel = %c.name, outbox = %c.outbox.display(), error = %e, "cannot read the outbox");
                return;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !c.temp_names.matches(&name) {
                settler.signal(&name, Signal::Seen);
            }
        }
    }

    /// Makes sure each outbox folder watched is the one at its path: a replaced folder (or
    /// one back after it was missing) is watched in place of the old one and rescanned; a
    /// missing one is logged once.
    fn check_outboxes(&mut self) {
        for i in 0..self.channels.len() {
            let (Some((c, _)), Some(f)) = (self.channels.get(i), self.folders.get_mut(i)) else {
                continue;
            };
            let outbox = c.outbox.clone();
            let Some(id) = folder_id(&outbox) else {
                f.id = None;
                let (since, said) = f.missing.get_or_insert((Instant::now(), false));
                if !*said && since.elapsed() >= MISSING_GRACE {
                    *said = true;
                    tracing::warn!(channel = %c.name, outbox = %outbox.display(), "outbox missing: nothing is taken from it until it is back (it is watched again then)");
                }
                continue;
            };
            if f.id == Some(id) && !f.stale && !self.writers.lost(&outbox) {
                continue;
            }
            // the watch of the old folder, if it still exists (moved away), goes; the new
            // folder is watched
            let _ = self.watcher.unwatch(&outbox);
            let renewed = self
                .watcher
                .watch(&outbox, RecursiveMode::NonRecursive)
                .map_err(|e| e.to_string())
                .and_then(|()| self.writers.renew(&outbox).map_err(|e| e.to_string()));
            if let Err(e) = renewed {
                // tried again at the next check
                crate::ops::repeat::warn_repeated!("watch.renew", &format!("{}: {e}", outbox.display());
                    channel = %c.name, outbox = %outbox.display(), error = %e, "cannot watch the outbox again; retrying");
                continue;
            }
            let was_missing = f.missing.take().is_some_and(|(_, said)| said);
            f.id = Some(id);
            f.stale = false;
            tracing::warn!(channel = %c.name, outbox = %outbox.display(), was_missing, "outbox replaced: watching the new folder");
            // what was put in before the watch was renewed
            self.rescan_one(i);
        }
    }

    async fn poll(&mut self, workers: &Arc<Semaphore>) {
        let (now, wall) = (crate::mono_ms(), crate::now_ms());
        let mut due: Vec<Due> = Vec::new();
        let taking = self.in_flight.lock().map(|s| s.clone()).unwrap_or_default();
        for (c, settler) in &mut self.channels {
            for name in settler.pending() {
                // still open (a writer that paused), or its name still being taken: not
                // polled, so its settle state waits
                if taking.contains(&(c.name.clone(), name.clone()))
                    || self.writers.busy(&c.outbox, &name)
                {
                    continue;
                }
                let meta = fs::symlink_metadata(c.outbox.join(&name)).ok();
                let stat = meta.as_ref().map(|m| Stat {
                    size: m.len(),
                    mtime_ms: (m.mtime().max(0) as u64) * 1000
                        + (m.mtime_nsec().max(0) as u64) / 1_000_000,
                    ino: m.ino(),
                });
                let regular = meta.as_ref().is_some_and(|m| m.file_type().is_file());
                let decision = if meta.is_some() && !regular {
                    settler.poll(&name, None, now, wall);
                    Decision::Take
                } else {
                    settler.poll(&name, stat, now, wall)
                };
                if decision == Decision::Take {
                    // unchanged since before the watch started, or since an overflow lost
                    // its events: it may have been opened unseen, so the processes are asked
                    let unseen = meta.as_ref().is_some_and(|m| {
                        regular
                            && i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec())
                                < self.writers.watched_since_ns(&c.outbox)
                    });
                    let key = meta.as_ref().map(|m| (m.dev(), m.ino()));
                    // not a regular file, or gone: weighed as a large one
                    let size = meta
                        .as_ref()
                        .filter(|_| regular)
                        .map_or(u64::MAX, |m| m.len());
                    due.push((c.clone(), name, key.filter(|_| unseen), size));
                }
            }
        }
        if due.iter().any(|(_, _, unseen, _)| unseen.is_some()) {
            let Ok(held) = tokio::task::spawn_blocking(crate::sender::writers::holders).await
            else {
                return; // not asked: nothing taken this round
            };
            due.retain(|(c, name, unseen, _)| {
                let keep = unseen.is_none_or(|k| !held.contains(&k));
                if !keep {
                    tracing::info!(channel = %c.name, name = %name.to_string_lossy(), "held open by a process whose open the events did not show (before the start, or lost to an overflow); waiting for its writer");
                    if let Some((_, settler)) = self.channels.iter_mut().find(|(x, _)| x.name == c.name) {
                        settler.signal(name, Signal::Seen);
                    }
                }
                keep
            });
        }
        if !due.is_empty() {
            // Disk safety: below the free-space floor nothing is taken; files stay in the
            // outbox and the rescan finds them again once space returns.
            let node = &self.sender.node;
            match crate::node::health::disk_ok(node) {
                Ok(()) => {
                    if node.metrics.intake_paused.get() == 1 {
                        node.metrics.intake_paused.set(0);
                        tracing::info!("free space above the floor again; intake resumes");
                    }
                }
                Err(why) => {
                    if node.metrics.intake_paused.get() == 0 {
                        node.metrics.intake_paused.set(1);
                        tracing::warn!(problem = %why, "intake paused: free space below the floor; files stay in the outbox");
                    }
                    return;
                }
            }
        }
        for (channel, name, _, size) in due {
            let Ok(permit) = workers.clone().acquire_many_owned(intake_units(size)).await else {
                return;
            };
            let sender = self.sender.clone();
            let queue = self.queue.clone();
            let writers = self.writers.clone();
            let messages = self.messages.clone();
            let taking = Taking::start(&self.in_flight, (channel.name.clone(), name.clone()));
            tokio::task::spawn_blocking(move || {
                let result = intake(&sender, &writers, messages.as_deref(), &channel, &name);
                forward(result, &queue);
                drop(taking);
                drop(permit);
            });
        }
    }
}

/// A name's place in the watch's set of intakes running now, given up when dropped: when
/// the intake ends, or unwinds from a panic (the name is never held for good).
struct Taking {
    set: Arc<std::sync::Mutex<HashSet<(String, OsString)>>>,
    key: (String, OsString),
}

impl Taking {
    fn start(
        set: &Arc<std::sync::Mutex<HashSet<(String, OsString)>>>,
        key: (String, OsString),
    ) -> Taking {
        if let Ok(mut s) = set.lock() {
            s.insert(key.clone());
        }
        Taking {
            set: set.clone(),
            key,
        }
    }
}

impl Drop for Taking {
    fn drop(&mut self) {
        // a lock poisoned by a panic elsewhere is still the set: the name is given up
        let mut s = self
            .set
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.remove(&self.key);
    }
}

/// Takes one outbox entry: refuses what is not a plain file, spools the rest, then inspects
/// and seals it. Blocking.
fn intake(
    sender: &Sender,
    writers: &Writers,
    messages: Option<&Messages>,
    channel: &Channel,
    file_name: &OsStr,
) -> Result<Option<Sealed>, Fault> {
    let node = &sender.node;
    let path = channel.outbox.join(file_name);
    let meta = match fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let display = file_name.to_string_lossy().into_owned();
    let ft = meta.file_type();
    let refusal = if ft.is_symlink() {
        let target = fs::read_link(&path)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        Some(Refusal::new(
            Reason::Symlink,
            format!("a symbolic link to {target:?}"),
        ))
    } else if ft.is_dir() {
        Some(Refusal::new(Reason::NotRegularFile, "a directory"))
    } else if ft.is_fifo() || ft.is_socket() || ft.is_block_device() || ft.is_char_device() {
        Some(Refusal::new(
            Reason::NotRegularFile,
            "a FIFO, socket or device",
        ))
    } else if meta.nlink() != 1 {
        Some(Refusal::new(
            Reason::HardLink,
            format!("{} hard links", meta.nlink()),
        ))
    } else if file_name.to_str().is_none() {
        Some(Refusal::new(
            Reason::NameNotUtf8,
            "the name is not valid UTF-8",
        ))
    } else {
        None
    };
    if let Some(refusal) = refusal {
        sender.refuse_outbox_entry(channel, &path, &display, &refusal)?;
        return Ok(None);
    }
    // opened since it was found due: left for its close event (or the rescan)
    if writers.busy(&channel.outbox, file_name) {
        return Ok(None);
    }
    // a messages channel: its files are messages, taken into batches, never spooled as
    // they are
    if channel.is_messages() {
        return match messages {
            Some(m) => m.take_file(channel, file_name).map(|()| None),
            None => Ok(None),
        };
    }
    // the spelling the rules see and that lands: NFC (macOS writes names in NFD)
    let name = crate::policy::nfc(&display);
    let failing = node
        .metrics
        .intake_failing
        .with_label_values(&[channel.name.as_str()]);
    let keys = node.keys.data();
    // the manifest's hashes in the signing key's suite, taken with the copy where the
    // spool is sealed at rest
    let taken = sender.spool.take(
        &channel.name,
        &channel.outbox,
        file_name,
        &name,
        keys.as_deref(),
        Some(node.keys.signing().suite()),
    );
    failing.set(i64::from(taken.is_err()));
    let Some(Taken {
        spooled,
        size,
        hashed,
    }) = taken?
    else {
        return Ok(None);
    };
    let mut e = Entry::object(&channel.name, spooled.id, &spooled.name);
    e.size = Some(size);
    node.audit.append(Event::Taken, e)?;
    node.metrics
        .intake_objects
        .with_label_values(&[channel.name.as_str()])
        .inc();
    node.metrics
        .intake_bytes
        .with_label_values(&[channel.name.as_str()])
        .inc_by(size);
    tracing::debug!(channel = %channel.name, name = %spooled.name, object = %spooled.id, "taken");
    sender.pipeline_taken(spooled, hashed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_file_holds_a_unit_of_a_slot_and_a_large_one_a_whole_slot() {
        assert_eq!(intake_units(0), 1);
        assert_eq!(intake_units(SMALL_OBJECT_MAX - 1), 1);
        assert_eq!(intake_units(SMALL_OBJECT_MAX), SMALL_PER_SLOT);
        assert_eq!(intake_units(u64::MAX), SMALL_PER_SLOT);
        // as many large files at once as slots, as before: their memory stays bounded
        let permits = crate::node::objects_at_once() * SMALL_PER_SLOT as usize;
        assert_eq!(
            permits / intake_units(SMALL_OBJECT_MAX) as usize,
            crate::node::objects_at_once()
        );
    }

    #[test]
    fn a_name_being_taken_is_given_up_when_its_intake_ends_or_panics() {
        let set: Arc<std::sync::Mutex<HashSet<(String, OsString)>>> = Arc::default();
        let key = ("notices".to_string(), OsString::from("same.json"));
        let taking = Taking::start(&set, key.clone());
        assert!(set.lock().unwrap().contains(&key));
        drop(taking);
        assert!(set.lock().unwrap().is_empty());
        let (s, k) = (set.clone(), key.clone());
        let unwound = std::thread::spawn(move || {
            let _taking = Taking::start(&s, k);
            panic!("an inspection that panics");
        })
        .join();
        assert!(unwound.is_err());
        assert!(set.lock().unwrap().is_empty(), "not held for good");
    }
}
