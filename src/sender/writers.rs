//! Who still has an outbox file open: an inotify watch on every outbox that counts each
//! name's opens against its closes, so that intake never takes a file some process is still
//! writing, however long that writer pauses.
//!
//! ```text
//!  kernel ─ IN_OPEN ──────────────► open += 1
//!         ─ IN_CLOSE_WRITE ───────► open -= 1, clean   (never below 0)
//!         ─ IN_CLOSE_NOWRITE ─────► open -= 1
//!         ─ IN_MODIFY ────────────► dirty: written since the last close-write
//!         ─ IN_MOVED_FROM/TO ─────► the state follows a rename inside the outbox
//!         ─ IN_MOVED_FROM ────────► also kept: was the name busy when moved away?
//!         ─ IN_DELETE ────────────► forgotten
//!         ─ IN_Q_OVERFLOW ────────► every state reset; logged (the settle rule decides)
//!         ─ IN_DELETE_SELF, IN_MOVE_SELF,
//!           IN_UNMOUNT, IN_IGNORED ► the outbox folder itself is gone: its watch is lost
//!  watch::poll ─ busy(dir, name): open > 0 or dirty ─► not taken, whatever the settle rule
//!  spool::take ─ renames it away ─ in_use_when_moved? ─► yes: put back, busy until the
//!                                                        writer's close-write
//!  watch (every 500 ms) ─ lost(dir)? ─► renew(dir): the new folder at that path is watched
//! ```
//!
//! Why this and not a lease or a `/proc` scan: a Linux read lease (`F_SETLEASE`) tells the
//! same thing with one call, but no maintained crate exposes it without `unsafe`, which this
//! crate forbids; a scan of `/proc/*/fd` needs `CAP_SYS_PTRACE` and cannot see other users'
//! processes under the unit's `ProtectProc=invisible`. Inotify reports the opens and closes
//! of every process, of any user, with no capability at all: local writers, `smbd`, an SFTP
//! server, and `nfsd` on kernels that report its opens.
//!
//! The kernel merges an event into the previous one when they are identical and the first
//! is still unread, so a count can be off by the merged events. Too low (two opens merged):
//! a second writer that writes after the first one closed is still seen (`dirty` until a
//! close-write). Too high (two closes merged): the name would wait for ever, so a name busy
//! with no event for [`QUIET`] is released unless a scan of `/proc` still finds a process
//! holding the file (the scan sees what the service may see; a release is logged).
//!
//! What it cannot see, and what covers it: a file opened before the watch started is checked
//! against [`holders`] (a `/proc` scan, of what the service may see) before it is taken,
//! when it has not changed since; a queue overflow loses the counts, and from then on a
//! file whose status last changed before the overflow is checked the same way (the
//! overflow moves [`Writers::watched_since_ns`]). Intake then falls back to the settle
//! rule (`idle_ms`) for what the scan cannot see, and every object is
//! checked again at seal (size, times, inode: a change means it is inspected again from
//! the start, never sent). Where the spool is sealed at rest (or on another file system)
//! the take is a copy, checked unchanged while it is copied.
//!
//! A writer that opens the file after the take's `busy` check and before its rename (`cp`
//! over a file just renamed in) would write on into the taken file, or into a deleted one
//! once a copy is done, and could pause for the whole copy. Its open is in the queue before
//! the take's own `IN_MOVED_FROM`, so the take waits until that rename is read and asks
//! [`Writers::in_use_when_moved`]: in use, the file goes back to the outbox with the opens
//! and writes counted when it was taken, and is free again only once they are closed and a
//! `/proc` scan shows no holder (two writers' opens may have been merged into one event,
//! and a close while the file was away is not seen: such a name is looked at after
//! [`CARRIED_QUIET`], not [`QUIET`]). A take whose rename is not read within its wait
//! counts the file in use but carries nothing: the settle rule decides for it. A messages
//! channel's `.json`/`.ndjson` files get the same question: they are renamed into the
//! outbox's staging folder and read there (the spool's `stage_out`).
//!
//! What is left: an open whose path was looked up before the rename but that completes
//! after it (the kernel reports it where the file is then), a window of the open call
//! itself; a file renamed into the outbox while a process already holds it open from
//! elsewhere (its open was never in an outbox: publishing by rename means the file is
//! complete). A reader that keeps a file open also holds it back: the count does not tell
//! readers from writers, and waiting is the safe side.

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Size of the buffer each read of the inotify queue fills.
const EVENT_BUFFER: usize = 64 * 1024;

/// A name busy this long with no event is checked against `/proc` (and released if no
/// process is seen holding it).
pub const QUIET: Duration = Duration::from_secs(600);

/// At most this many takes' renames are awaited or answered at once (more: all are
/// forgotten, and their takes count their files as in use when not answered in time).
const MOVED_OUT_MAX: usize = 1024;

/// A name put back because it was in use is checked against `/proc` after this long with
/// no event (not [`QUIET`]): the close of a writer that closed while the file was away
/// was not seen.
pub const CARRIED_QUIET: Duration = Duration::from_secs(30);

/// A put-back's state is applied to its `IN_MOVED_TO` only if that comes within this long.
const CARRY_TTL: Duration = Duration::from_secs(10);

/// What the events say of one name.
#[derive(Debug, Clone, Copy)]
struct Use {
    /// Open file descriptions.
    open: u32,
    /// Written since the last close-write.
    dirty: bool,
    /// When the last event came (or the last `/proc` check found a holder).
    last: Instant,
}

impl Use {
    fn busy(&self) -> bool {
        self.open > 0 || self.dirty
    }
}

#[derive(Default)]
struct State {
    /// The watched directories and their watches (a renewed watch replaces its entry).
    dirs: Vec<(PathBuf, WatchDescriptor)>,
    /// The watches whose folder was removed, moved away or unmounted.
    lost: HashSet<WatchDescriptor>,
    /// Per (outbox, name), from the events seen since start; only names in use are kept.
    names: HashMap<(WatchDescriptor, OsString), Use>,
    /// A rename whose `IN_MOVED_TO` has not come yet: its cookie and state.
    moving: Option<(u32, Use)>,
    /// How many times events were lost (the states were reset).
    overflows: u64,
    /// When each renewed folder's watch began (ns since the epoch); others: at start.
    since: HashMap<PathBuf, i128>,
    /// The names a take is about to rename away ([`Writers::moving_out`]).
    expected: HashSet<(WatchDescriptor, OsString)>,
    /// Their renames, as read (`IN_MOVED_FROM`): the name's state then (`None`: free); a
    /// take asks about its own ([`Writers::in_use_when_moved`]).
    moved_out: HashMap<(WatchDescriptor, OsString), Option<Use>>,
    /// The states of names a take found in use, until it puts them back.
    held_away: HashMap<(WatchDescriptor, OsString), Use>,
    /// Names a take is putting back because they were in use: the state they get at their
    /// `IN_MOVED_TO`, and since when ([`Writers::putting_back`]).
    carried: HashMap<(WatchDescriptor, OsString), (Use, Instant)>,
    /// Names put back in use: free only once the events say so and `/proc` shows no
    /// holder (see [`Writers::busy`]).
    put_back: HashSet<(WatchDescriptor, OsString)>,
    /// The events are no longer read (the reading thread ended).
    stopped: bool,
}

/// What is watched in each outbox.
const MASK: WatchMask = WatchMask::OPEN
    .union(WatchMask::CLOSE_WRITE)
    .union(WatchMask::CLOSE_NOWRITE)
    .union(WatchMask::MODIFY)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::DELETE)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::ONLYDIR);

/// The open counts of every outbox, kept by a thread that reads the inotify queue.
#[derive(Clone)]
pub struct Writers {
    watches: Arc<Mutex<inotify::Watches>>,
    state: Arc<Mutex<State>>,
    /// Signalled each time a batch of events has been applied, and when reading stops.
    applied: Arc<Condvar>,
    started_ns: i128,
}

impl Writers {
    /// Watches the opens and closes in each directory and starts the thread that counts
    /// them. The thread lives as long as the process.
    ///
    /// # Errors
    /// Inotify cannot be set up, or a directory cannot be watched.
    pub fn start(dirs: &[PathBuf]) -> io::Result<Writers> {
        let mut inotify = Inotify::init()?;
        let mut watches = inotify.watches();
        let mut watched = Vec::new();
        for d in dirs {
            watched.push((d.clone(), watches.add(d, MASK)?));
        }
        let state = Arc::new(Mutex::new(State {
            dirs: watched,
            ..State::default()
        }));
        let shared = state.clone();
        let applied = Arc::new(Condvar::new());
        let signal = applied.clone();
        std::thread::Builder::new()
            .name("outbox-writers".into())
            .spawn(move || {
                // however the thread ends, a take waiting for its rename is told
                let _reading = Reading(shared.clone(), signal.clone());
                let mut buf = vec![0u8; EVENT_BUFFER];
                loop {
                    let events = match inotify.read_events_blocking(&mut buf) {
                        Ok(e) => e,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot read the outbox open/close events; intake falls back to the settle rule");
                            if let Ok(mut s) = shared.lock() {
                                s.names.clear();
                            }
                            return;
                        }
                    };
                    let Ok(mut s) = shared.lock() else { return };
                    let now = Instant::now();
                    for ev in events {
                        s.apply(&ev.wd, ev.mask, ev.cookie, ev.name, now);
                    }
                    drop(s);
                    signal.notify_all();
                }
            })?;
        let started_ns = wall_ns();
        Ok(Writers {
            watches: Arc::new(Mutex::new(watches)),
            state,
            applied,
            started_ns,
        })
    }

    /// Whether the watch on `dir` is lost: the folder it watched was removed, moved away
    /// or unmounted (false when `dir` is not watched).
    pub fn lost(&self, dir: &Path) -> bool {
        self.state
            .lock()
            .is_ok_and(|s| s.wd(dir).is_some_and(|wd| s.lost.contains(&wd)))
    }

    /// Watches the folder now at `dir` in place of the one watched before (which may be
    /// gone, or moved elsewhere: its watch is removed). The counts of the old folder's names
    /// are forgotten.
    ///
    /// # Errors
    /// The folder cannot be watched (it is missing, or not a directory); the old watch is
    /// then counted as lost.
    pub fn renew(&self, dir: &Path) -> io::Result<()> {
        let mut watches = self
            .watches
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        let old = self.state.lock().ok().and_then(|s| s.wd(dir));
        if let Some(old) = &old {
            // already gone when the folder was removed (IN_IGNORED): nothing to remove
            let _ = watches.remove(old.clone());
        }
        let added = watches.add(dir, MASK);
        let mut s = self
            .state
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        if let Some(old) = &old {
            s.lost.remove(old);
            s.names.retain(|(wd, _), _| wd != old);
            s.carried.retain(|(wd, _), _| wd != old);
            s.put_back.retain(|(wd, _)| wd != old);
            s.dirs.retain(|(d, _)| d != dir);
        }
        match added {
            Ok(wd) => {
                s.dirs.push((dir.to_path_buf(), wd));
                s.since.insert(dir.to_path_buf(), wall_ns());
                Ok(())
            }
            Err(e) => {
                // still watched by nothing: keep a lost entry so that it is tried again
                if let Some(old) = old {
                    s.lost.insert(old.clone());
                    s.dirs.push((dir.to_path_buf(), old));
                }
                Err(e)
            }
        }
    }

    /// Whether `dir/name` is in use: open by some process, or written since its last
    /// close-write (false when the directory is not watched). A name busy with no event for
    /// [`QUIET`] is checked against `/proc` and released if no holder is seen.
    pub fn busy(&self, dir: &Path, name: &OsStr) -> bool {
        let (key, quiet, put_back) = {
            let Ok(s) = self.state.lock() else {
                return false;
            };
            let Some(wd) = s.wd(dir) else {
                return false;
            };
            let key = (wd, name.to_os_string());
            let put_back = s.put_back.contains(&key);
            let quiet = match s.names.get(&key) {
                Some(u) if u.busy() => u.last.elapsed() >= QUIET,
                // free by the events, but put back in use: two opens may have been merged
                // into one event, so the last close is not trusted without a look
                _ if put_back => true,
                _ => return false,
            };
            (key, quiet, put_back)
        };
        if !quiet {
            return true;
        }
        let held = held_open(&dir.join(name));
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        if held {
            let now = Instant::now();
            s.names
                .entry(key)
                .and_modify(|u| u.last = now)
                .or_insert(Use {
                    open: 1,
                    dirty: false,
                    last: looked_at_after_carried_quiet(now),
                });
            true
        } else {
            if s.names.remove(&key).is_some() {
                tracing::warn!(outbox = %dir.display(), name = %name.to_string_lossy(), put_back, "open with no event for a while and no holder seen: released to the settle rule");
            }
            s.put_back.remove(&key);
            false
        }
    }

    /// Before a take renames `dir/name` out of the outbox: the next rename of that name
    /// away is remembered for [`Writers::in_use_when_moved`] (and only such renames are).
    pub fn moving_out(&self, dir: &Path, name: &OsStr) {
        if let Ok(mut s) = self.state.lock()
            && let Some(wd) = s.wd(dir)
        {
            if s.expected.len() + s.moved_out.len() + s.held_away.len() >= MOVED_OUT_MAX {
                s.expected.clear();
                s.moved_out.clear();
                s.held_away.clear();
            }
            let key = (wd, name.to_os_string());
            s.moved_out.remove(&key);
            // a take of this name that ended without putting it back (it vanished)
            s.held_away.remove(&key);
            s.expected.insert(key);
        }
    }

    /// After a take renamed `dir/name` out of the outbox: waits, at most `wait`, until the
    /// events up to that rename are read, and says whether the name was in use at the
    /// rename (open by some process, or written since its last close-write). A writer that
    /// opened the file between the take's [`Writers::busy`] check and its rename is seen
    /// here; its writes from then on would go to the taken file.
    ///
    /// `None` when it cannot be known: `dir` is not watched, its watch is lost, or the
    /// events are no longer read. `Some(true)` when the rename is not seen within `wait`
    /// (events lost to an overflow): in use, the safe side.
    pub fn in_use_when_moved(&self, dir: &Path, name: &OsStr, wait: Duration) -> Option<bool> {
        let deadline = Instant::now() + wait;
        let mut s = self.state.lock().ok()?;
        let wd = s.wd(dir)?;
        let key = (wd, name.to_os_string());
        loop {
            if s.lost.contains(&key.0) || s.stopped {
                s.expected.remove(&key);
                return None;
            }
            if let Some(state) = s.moved_out.remove(&key) {
                return Some(match state {
                    Some(u) if u.busy() => {
                        s.held_away.insert(key, u);
                        true
                    }
                    _ => false,
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                s.expected.remove(&key);
                return Some(true);
            }
            s = self.applied.wait_timeout(s, left).ok()?.0;
        }
    }

    /// Before a take puts back as `dir/name` the file it took as `dir/taken` and found in
    /// use ([`Writers::in_use_when_moved`] said so): from the put-back's `IN_MOVED_TO` on,
    /// the name has the opens and writes it had when taken, busy until they are closed.
    /// A close while the file was away is not seen: such a name is checked against `/proc`
    /// after [`CARRIED_QUIET`] with no event. Nothing is carried for a file not found in
    /// use. [`Writers::not_put_back`] undoes it when the rename fails.
    pub fn putting_back(&self, dir: &Path, taken: &OsStr, name: &OsStr) {
        if let Ok(mut s) = self.state.lock()
            && let Some(wd) = s.wd(dir)
            && let Some(u) = s
                .held_away
                .get(&(wd.clone(), taken.to_os_string()))
                .copied()
        {
            s.carried
                .insert((wd, name.to_os_string()), (u, Instant::now()));
        }
    }

    /// The put-back of [`Writers::putting_back`] did not happen under `dir/name`.
    pub fn not_put_back(&self, dir: &Path, name: &OsStr) {
        if let Ok(mut s) = self.state.lock()
            && let Some(wd) = s.wd(dir)
        {
            s.carried.remove(&(wd, name.to_os_string()));
        }
    }

    /// The take of `dir/taken` is over (taken, or put back): its state is forgotten.
    pub fn take_done(&self, dir: &Path, taken: &OsStr) {
        if let Ok(mut s) = self.state.lock()
            && let Some(wd) = s.wd(dir)
        {
            s.held_away.remove(&(wd, taken.to_os_string()));
        }
    }

    /// How many open file descriptions of `dir/name` the events account for now (0 when
    /// the directory is not watched).
    pub fn open(&self, dir: &Path, name: &OsStr) -> u32 {
        self.state
            .lock()
            .ok()
            .and_then(|s| {
                let wd = s.wd(dir)?;
                s.names.get(&(wd, name.to_os_string())).map(|u| u.open)
            })
            .unwrap_or(0)
    }

    /// When the watch on `dir` began (ns since the epoch: at start, or when a replaced
    /// folder's watch was renewed): a file whose status last changed before may have been
    /// opened unseen, and is checked against [`holders`] before it is taken.
    pub fn watched_since_ns(&self, dir: &Path) -> i128 {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.since.get(dir).copied())
            .unwrap_or(self.started_ns)
    }

    /// How many times the kernel's queue overflowed (counts were reset) since start.
    pub fn overflows(&self) -> u64 {
        self.state.lock().map(|s| s.overflows).unwrap_or(0)
    }
}

impl State {
    /// The watch of `dir` in force.
    fn wd(&self, dir: &Path) -> Option<WatchDescriptor> {
        self.dirs
            .iter()
            .find(|(d, _)| d == dir)
            .map(|(_, wd)| wd.clone())
    }

    fn apply(
        &mut self,
        wd: &WatchDescriptor,
        mask: EventMask,
        cookie: u32,
        name: Option<&OsStr>,
        now: Instant,
    ) {
        if mask.contains(EventMask::Q_OVERFLOW) {
            self.names.clear();
            self.moving = None;
            self.moved_out.clear();
            self.expected.clear();
            self.carried.clear();
            self.put_back.clear();
            self.overflows += 1;
            // a file opened before now may be open still, unseen: from here on it is asked
            // of the processes before it is taken, as at start
            let now_ns = wall_ns();
            for (dir, _) in &self.dirs {
                self.since.insert(dir.clone(), now_ns);
            }
            crate::ops::repeat::warn_repeated!("writers.overflow", "queue";
                "outbox events were lost; a file whose status changed before now is taken only once no process is seen holding it open"
            );
            return;
        }
        let gone =
            EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::UNMOUNT | EventMask::IGNORED;
        if mask.intersects(gone) {
            // the outbox folder itself (a watch already renewed is no longer in `dirs`)
            if self.dirs.iter().any(|(_, w)| w == wd) {
                self.lost.insert(wd.clone());
                self.names.retain(|(w, _), _| w != wd);
            }
            return;
        }
        let Some(name) = name else { return };
        if mask.contains(EventMask::ISDIR) {
            return;
        }
        let key = (wd.clone(), name.to_os_string());
        if mask.intersects(EventMask::OPEN | EventMask::MODIFY) {
            let u = self.names.entry(key.clone()).or_insert(Use {
                open: 0,
                dirty: false,
                last: now,
            });
            u.last = now;
            if mask.contains(EventMask::OPEN) {
                u.open += 1;
            }
            if mask.contains(EventMask::MODIFY) {
                u.dirty = true;
            }
        }
        if mask.intersects(EventMask::CLOSE_WRITE | EventMask::CLOSE_NOWRITE)
            && let Some(u) = self.names.get_mut(&key)
        {
            u.open = u.open.saturating_sub(1);
            u.last = now;
            if mask.contains(EventMask::CLOSE_WRITE) {
                u.dirty = false;
            }
            if !u.busy() {
                self.names.remove(&key);
            }
        }
        if mask.intersects(EventMask::MOVED_FROM | EventMask::DELETE) {
            self.put_back.remove(&key);
        }
        if mask.contains(EventMask::MOVED_FROM) {
            self.moving = self.names.remove(&key).map(|u| (cookie, u));
            if self.expected.remove(&key) {
                let state = self.moving.as_ref().map(|(_, u)| *u);
                self.moved_out.insert(key.clone(), state);
            }
        }
        if mask.contains(EventMask::MOVED_TO) {
            match self.moving.take() {
                Some((c, u)) if c == cookie => {
                    self.names.insert(key.clone(), u);
                }
                // from a folder not watched: a take's put-back carries its state
                _ => match self.carried.remove(&key) {
                    Some((u, since)) if since.elapsed() < CARRY_TTL => {
                        let last = looked_at_after_carried_quiet(now);
                        self.names.insert(key.clone(), Use { last, ..u });
                        if self.put_back.len() >= MOVED_OUT_MAX {
                            self.put_back.clear();
                        }
                        self.put_back.insert(key.clone());
                    }
                    _ => {
                        self.names.remove(&key);
                    }
                },
            }
        }
        if mask.contains(EventMask::DELETE) {
            self.names.remove(&key);
        }
    }
}

/// The `last` event time that has [`Writers::busy`] look at a name (a `/proc` scan) once
/// [`CARRIED_QUIET`] has passed since `now`, not [`QUIET`].
fn looked_at_after_carried_quiet(now: Instant) -> Instant {
    now.checked_sub(QUIET.saturating_sub(CARRIED_QUIET))
        .unwrap_or(now)
}

/// Held by the thread that reads the events: when it ends, however it ends, takes waiting
/// for their renames are told that nothing more will be read.
struct Reading(Arc<Mutex<State>>, Arc<Condvar>);

impl Drop for Reading {
    fn drop(&mut self) {
        match self.0.lock() {
            Ok(mut s) => s.stopped = true,
            Err(poisoned) => poisoned.into_inner().stopped = true,
        }
        self.1.notify_all();
    }
}

/// Whether any process this one may inspect holds `path` open (see [`holders`]).
fn held_open(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| holders().contains(&(m.dev(), m.ino())))
}

/// The files (device, inode) that the processes this one may inspect hold open: a scan of
/// `/proc/*/fd`. Processes it may not inspect (other users', without `CAP_SYS_PTRACE`, or
/// hidden by `ProtectProc=invisible`) are not seen; kernel holders (`nfsd`) never are.
pub fn holders() -> HashSet<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = HashSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        if !p
            .file_name()
            .as_encoded_bytes()
            .iter()
            .all(u8::is_ascii_digit)
        {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(m) = std::fs::metadata(fd.path())
                && m.file_type().is_file()
            {
                out.insert((m.dev(), m.ino()));
            }
        }
    }
    out
}

/// The wall clock in ns since the epoch (compared with files' ctimes).
fn wall_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, File, OpenOptions};
    use std::io::Write;
    use std::time::{Duration, Instant};

    /// Waits (bounded) until the thread has read the events that make `want` true.
    fn until(w: &Writers, dir: &Path, name: &str, want: impl Fn(u32) -> bool) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let n = w.open(dir, OsStr::new(name));
            if want(n) || Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_file_open_for_writing_is_busy_and_free_once_closed() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().to_path_buf();
        let w = Writers::start(std::slice::from_ref(&dir)).unwrap();
        let mut f = File::create(dir.join("a.pdf")).unwrap();
        f.write_all(b"%PDF-1.7 forty per cent").unwrap();
        assert_eq!(until(&w, &dir, "a.pdf", |n| n > 0), 1, "held open: busy");
        drop(f);
        assert_eq!(until(&w, &dir, "a.pdf", |n| n == 0), 0, "closed: free");
        assert!(!w.busy(&dir, OsStr::new("a.pdf")));
        // two writers, the second opened once the first open was read: busy until the
        // last one closes
        let a = OpenOptions::new()
            .append(true)
            .open(dir.join("a.pdf"))
            .unwrap();
        assert_eq!(until(&w, &dir, "a.pdf", |n| n == 1), 1);
        let mut b = OpenOptions::new()
            .append(true)
            .open(dir.join("a.pdf"))
            .unwrap();
        assert_eq!(until(&w, &dir, "a.pdf", |n| n == 2), 2);
        drop(a);
        assert_eq!(until(&w, &dir, "a.pdf", |n| n == 1), 1);
        assert!(w.busy(&dir, OsStr::new("a.pdf")));
        b.write_all(b" and the rest").unwrap();
        drop(b);
        assert_eq!(until(&w, &dir, "a.pdf", |n| n == 0), 0);
        assert!(!w.busy(&dir, OsStr::new("a.pdf")));
    }

    #[test]
    fn merged_opens_still_see_a_later_write_and_proc_finds_holders() {
        let t = tempfile::tempdir().unwrap();
        let ino = Inotify::init().unwrap();
        let wd = ino.watches().add(t.path(), WatchMask::OPEN).unwrap();
        let now = Instant::now();
        let mut s = State::default();
        let x = Some(OsStr::new("x"));
        // two opens merged into one event, the first writer closes, the second writes on
        s.apply(&wd, EventMask::OPEN, 0, x, now);
        s.apply(&wd, EventMask::CLOSE_WRITE, 0, x, now);
        assert!(s.names.is_empty());
        s.apply(&wd, EventMask::MODIFY, 0, x, now);
        assert!(s.names.values().all(Use::busy) && s.names.len() == 1);
        s.apply(&wd, EventMask::CLOSE_WRITE, 0, x, now);
        assert!(s.names.is_empty());
        // the scan behind a quiet name sees a holder in this process
        let p = t.path().join("held");
        let f = File::create(&p).unwrap();
        assert!(held_open(&p));
        drop(f);
        assert!(!held_open(&p));
    }

    #[test]
    fn the_count_follows_a_rename_and_forgets_a_delete() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().to_path_buf();
        let w = Writers::start(std::slice::from_ref(&dir)).unwrap();
        let f = File::create(dir.join("r.pdf.filepart")).unwrap();
        assert_eq!(until(&w, &dir, "r.pdf.filepart", |n| n == 1), 1);
        fs::rename(dir.join("r.pdf.filepart"), dir.join("r.pdf")).unwrap();
        assert_eq!(
            until(&w, &dir, "r.pdf", |n| n == 1),
            1,
            "still open after the rename"
        );
        assert_eq!(w.open(&dir, OsStr::new("r.pdf.filepart")), 0);
        drop(f);
        assert_eq!(until(&w, &dir, "r.pdf", |n| n == 0), 0);
        let g = File::create(dir.join("d.txt")).unwrap();
        assert_eq!(until(&w, &dir, "d.txt", |n| n == 1), 1);
        fs::remove_file(dir.join("d.txt")).unwrap();
        assert_eq!(until(&w, &dir, "d.txt", |n| n == 0), 0);
        drop(g);
        assert_eq!(w.open(Path::new("/nowhere"), OsStr::new("d.txt")), 0);
    }

    /// Waits (bounded) until the watch of `dir` is lost.
    fn until_lost(w: &Writers, dir: &Path) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !w.lost(dir) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    #[test]
    fn a_replaced_folder_loses_its_watch_and_the_new_one_is_counted_once_renewed() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("outbox");
        fs::create_dir(&dir).unwrap();
        let w = Writers::start(std::slice::from_ref(&dir)).unwrap();
        assert!(!w.lost(&dir));
        // removed and made again (a cleanup job)
        let held = File::create(dir.join("old.pdf")).unwrap();
        assert_eq!(until(&w, &dir, "old.pdf", |n| n == 1), 1);
        drop(held);
        fs::remove_dir_all(&dir).unwrap();
        fs::create_dir(&dir).unwrap();
        assert!(until_lost(&w, &dir), "the removal is seen");
        let f = File::create(dir.join("new.pdf")).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(w.open(&dir, OsStr::new("new.pdf")), 0, "not watched yet");
        drop(f);
        let before = w.watched_since_ns(&dir);
        std::thread::sleep(Duration::from_millis(5));
        w.renew(&dir).unwrap();
        assert!(!w.lost(&dir));
        // a file made before the renewal may have been opened unseen: it is asked about
        assert!(
            w.watched_since_ns(&dir) > before,
            "the renewed watch's own start"
        );
        let f = OpenOptions::new()
            .append(true)
            .open(dir.join("new.pdf"))
            .unwrap();
        assert_eq!(until(&w, &dir, "new.pdf", |n| n == 1), 1, "the new folder");
        drop(f);
        assert_eq!(until(&w, &dir, "new.pdf", |n| n == 0), 0);
        // moved away, and a new folder made in its place: the old folder's opens no
        // longer count for the path
        let away = t.path().join("away");
        fs::rename(&dir, &away).unwrap();
        fs::create_dir(&dir).unwrap();
        assert!(until_lost(&w, &dir), "the move is seen");
        w.renew(&dir).unwrap();
        let old = File::create(away.join("x.pdf")).unwrap();
        let new = File::create(dir.join("y.pdf")).unwrap();
        assert_eq!(until(&w, &dir, "y.pdf", |n| n == 1), 1);
        assert_eq!(w.open(&dir, OsStr::new("x.pdf")), 0, "the moved folder");
        drop((old, new));
        // a folder that is missing cannot be watched: still lost, renewed once back
        fs::remove_dir_all(&dir).unwrap();
        assert!(until_lost(&w, &dir));
        assert!(w.renew(&dir).is_err());
        assert!(w.lost(&dir));
        fs::create_dir(&dir).unwrap();
        w.renew(&dir).unwrap();
        assert!(!w.lost(&dir));
    }

    #[test]
    fn an_overflow_resets_the_counts() {
        let mut s = State::default();
        let t = tempfile::tempdir().unwrap();
        let ino = Inotify::init().unwrap();
        let wd = ino.watches().add(t.path(), WatchMask::OPEN).unwrap();
        let now = Instant::now();
        s.apply(&wd, EventMask::OPEN, 0, Some(OsStr::new("x")), now);
        assert_eq!(s.names.len(), 1);
        s.dirs.push((t.path().to_path_buf(), wd.clone()));
        let before = wall_ns();
        s.apply(&wd, EventMask::Q_OVERFLOW, 0, None, now);
        assert!(s.names.is_empty());
        assert_eq!(s.overflows, 1);
        // files changed before the overflow are asked of the processes before a take
        assert!(s.since.get(t.path()).is_some_and(|&at| at >= before));
        // a close for an open never seen does not go below zero
        s.apply(&wd, EventMask::CLOSE_WRITE, 0, Some(OsStr::new("x")), now);
        assert!(s.names.is_empty());
    }

    /// An outbox watched, and a folder beside it that is not (where a take moves files).
    fn outbox_and_away() -> (tempfile::TempDir, PathBuf, PathBuf, Writers) {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("outbox");
        let away = t.path().join("away");
        fs::create_dir(&dir).unwrap();
        fs::create_dir(&away).unwrap();
        let w = Writers::start(std::slice::from_ref(&dir)).unwrap();
        (t, dir, away, w)
    }

    /// Waits (bounded) until `dir/name` is not busy; whether it is free.
    fn until_free(w: &Writers, dir: &Path, name: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while w.busy(dir, OsStr::new(name)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        !w.busy(dir, OsStr::new(name))
    }

    #[test]
    fn a_take_learns_whether_the_file_it_moved_away_was_in_use() {
        let (_t, dir, away, w) = outbox_and_away();
        let wait = Duration::from_secs(5);
        let name = OsStr::new("a.txt");
        let free = |n: &str| until_free(&w, &dir, n);
        // closed before the rename: free
        fs::write(dir.join(name), b"A").unwrap();
        assert!(free("a.txt"));
        w.moving_out(&dir, name);
        fs::rename(dir.join(name), away.join("1")).unwrap();
        assert_eq!(w.in_use_when_moved(&dir, name, wait), Some(false));
        // opened for writing after it was found free, before the rename (`cp` over it)
        fs::write(dir.join(name), b"A").unwrap();
        assert!(free("a.txt"));
        let mut cp = File::create(dir.join(name)).unwrap();
        cp.write_all(b"the first part of B").unwrap();
        w.moving_out(&dir, name);
        fs::rename(dir.join(name), away.join("2")).unwrap();
        assert_eq!(w.in_use_when_moved(&dir, name, wait), Some(true));
        // asked once: a second question has no rename to answer for, and waits it out
        assert_eq!(
            w.in_use_when_moved(&dir, name, Duration::from_millis(50)),
            Some(true),
            "not seen in time counts as in use"
        );
        // put back: busy from its rename on, until the writer's close-write
        w.putting_back(&dir, name, name);
        fs::rename(away.join("2"), dir.join(name)).unwrap();
        assert_eq!(until(&w, &dir, name.to_str().unwrap(), |n| n == 1), 1);
        assert!(w.busy(&dir, name), "still held by the writer");
        cp.write_all(b" and the rest of B").unwrap();
        drop(cp);
        assert_eq!(until(&w, &dir, name.to_str().unwrap(), |n| n == 0), 0);
        assert!(!w.busy(&dir, name), "free once the writer closed");
        // a put-back that did not happen marks nothing
        w.putting_back(&dir, name, OsStr::new("b.txt"));
        w.not_put_back(&dir, OsStr::new("b.txt"));
        fs::write(away.join("b.txt"), b"b").unwrap();
        fs::rename(away.join("b.txt"), dir.join("b.txt")).unwrap();
        w.moving_out(&dir, OsStr::new("b.txt"));
        fs::rename(dir.join("b.txt"), away.join("b.txt")).unwrap();
        assert_eq!(
            w.in_use_when_moved(&dir, OsStr::new("b.txt"), wait),
            Some(false)
        );
        w.take_done(&dir, name);
        // a rename no take announced is not kept: a take that did not announce its own
        // waits it out, counts it in use, and has no state to carry back
        let mut held = File::create(dir.join("c.txt")).unwrap();
        assert_eq!(until(&w, &dir, "c.txt", |n| n == 1), 1);
        fs::rename(dir.join("c.txt"), away.join("c.txt")).unwrap();
        assert_eq!(
            w.in_use_when_moved(&dir, OsStr::new("c.txt"), Duration::from_millis(300)),
            Some(true)
        );
        w.putting_back(&dir, OsStr::new("c.txt"), OsStr::new("c.txt"));
        fs::rename(away.join("c.txt"), dir.join("c.txt")).unwrap();
        held.write_all(b"x").unwrap();
        drop(held);
        assert!(free("c.txt"), "the settle rule decides for it");
        // a folder not watched: nothing known
        assert_eq!(w.in_use_when_moved(&away, name, wait), None);
    }

    #[test]
    fn a_name_put_back_in_use_is_free_only_once_no_process_holds_it() {
        let (_t, dir, away, w) = outbox_and_away();
        let name = OsStr::new("two.txt");
        let mut first = File::create(dir.join(name)).unwrap();
        assert_eq!(until(&w, &dir, "two.txt", |n| n == 1), 1);
        w.moving_out(&dir, name);
        fs::rename(dir.join(name), away.join("x")).unwrap();
        assert_eq!(
            w.in_use_when_moved(&dir, name, Duration::from_secs(5)),
            Some(true)
        );
        // a second writer the events did not count (its open merged with the first's, or
        // made while the file was away)
        let mut second = OpenOptions::new()
            .append(true)
            .open(away.join("x"))
            .unwrap();
        w.putting_back(&dir, name, name);
        fs::rename(away.join("x"), dir.join(name)).unwrap();
        w.take_done(&dir, name);
        assert_eq!(until(&w, &dir, "two.txt", |n| n == 1), 1);
        first.write_all(b"first half").unwrap();
        drop(first);
        assert_eq!(until(&w, &dir, "two.txt", |n| n == 0), 0);
        assert!(w.busy(&dir, name), "the second writer still holds it");
        second.write_all(b", second half").unwrap();
        drop(second);
        assert!(until_free(&w, &dir, "two.txt"), "free once nobody holds it");
    }
}
