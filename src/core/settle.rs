//! When is a file in an outbox complete? The intake's decision, without I/O.
//!
//! A file is taken when it was renamed in (complete by construction), when its writer
//! closed it and it stayed unchanged for `settle_ms`, or when it stayed unchanged for
//! `idle_ms` with no close seen (rescans, lost events). A write after a close starts over.
//!
//! A writer that closes and opens the file again to append (a resumed upload): the settle
//! time counts from the last close-write, so a file reopened within `settle_ms` of its
//! close is not taken in between (while it is open the intake does not even poll it), and
//! it crosses once, whole, after its last close. A file left closed and unchanged for
//! `settle_ms` is complete by this rule and is taken: what a writer appends after that
//! goes into a new file (the taken one left the outbox), which is a new object. A writer
//! that pauses with the file closed for longer writes under a temporary name (`temp_names`)
//! and renames it in when done, or the operator raises `settle_ms`.
//!
//! ```text
//!  Changed ─► closed = false          (poll: stat changed ─► stable_since = now)
//!  Closed  ─► closed = true           (take once stable for settle_ms)
//!  write ─ close ─ reopen ─ append ─ close ─ settle_ms ─► Take (one object, whole)
//!  write ─ close ─ settle_ms ─► Take │ append ─► a new file ─► a new object
//! ```

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};

/// What the file system watch reported about a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The name was renamed into the outbox.
    RenamedIn,
    /// A writer closed the file.
    Closed,
    /// The file was created or written.
    Changed,
    /// A rescan found the name.
    Seen,
}

/// What a poll found on disk for a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ms since the Unix epoch.
    pub mtime_ms: u64,
    /// Inode number (a replaced file starts over).
    pub ino: u64,
}

/// The decision for one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Take it now.
    Take,
    /// Not yet.
    Wait,
    /// It is gone: forget it.
    Forget,
}

#[derive(Debug, Default)]
struct Entry {
    stat: Option<Stat>,
    stable_since: u64,
    renamed: bool,
    closed: bool,
}

/// The settle state of one outbox.
#[derive(Debug)]
pub struct Settler {
    settle_ms: u64,
    idle_ms: u64,
    entries: HashMap<OsString, Entry>,
}

impl Settler {
    /// A settler with the given times.
    pub fn new(settle_ms: u64, idle_ms: u64) -> Settler {
        Settler {
            settle_ms,
            idle_ms: idle_ms.max(settle_ms),
            entries: HashMap::new(),
        }
    }

    /// Records a signal about a name.
    pub fn signal(&mut self, name: &OsStr, signal: Signal) {
        let e = self.entries.entry(name.to_os_string()).or_default();
        match signal {
            Signal::RenamedIn => e.renamed = true,
            Signal::Closed => e.closed = true,
            Signal::Changed => {
                e.renamed = false;
                e.closed = false;
            }
            Signal::Seen => {}
        }
    }

    /// Names waiting for a decision.
    pub fn pending(&self) -> Vec<OsString> {
        self.entries.keys().cloned().collect()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Decides for one name given what is on disk now (`None`: gone). A `Take` or `Forget`
    /// removes the name; a later signal brings it back. `now_ms` is on a monotonic clock
    /// (how long the file has stood unchanged is counted on it); `wall_ms` is the wall
    /// clock (ms since the Unix epoch), only compared with the file's modification time,
    /// which the kernel stamps from it: a wall clock stepped back makes a file wait no
    /// longer than `idle_ms`.
    pub fn poll(
        &mut self,
        name: &OsStr,
        stat: Option<Stat>,
        now_ms: u64,
        wall_ms: u64,
    ) -> Decision {
        let Some(e) = self.entries.get_mut(name) else {
            return Decision::Forget;
        };
        let Some(stat) = stat else {
            self.entries.remove(name);
            return Decision::Forget;
        };
        if e.stat != Some(stat) {
            if e.stat.is_some_and(|old| old.ino != stat.ino) {
                e.closed = false;
            }
            e.stat = Some(stat);
            e.stable_since = now_ms;
        }
        let stable = now_ms.saturating_sub(e.stable_since);
        let untouched = wall_ms.saturating_sub(stat.mtime_ms);
        let take = e.renamed
            || (e.closed && stable >= self.settle_ms)
            || (stable >= self.settle_ms && untouched >= self.idle_ms)
            || stable >= self.idle_ms;
        if take {
            self.entries.remove(name);
            Decision::Take
        } else {
            Decision::Wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(size: u64, mtime_ms: u64) -> Option<Stat> {
        Some(Stat {
            size,
            mtime_ms,
            ino: 1,
        })
    }

    #[test]
    fn renamed_in_is_taken_at_once() {
        let mut s = Settler::new(250, 5000);
        s.signal(OsStr::new("a"), Signal::RenamedIn);
        assert_eq!(
            s.poll(OsStr::new("a"), st(10, 1000), 1000, 1000),
            Decision::Take
        );
        assert!(s.is_empty());
    }

    #[test]
    fn slow_writer_is_taken_only_after_close_and_settle() {
        let mut s = Settler::new(250, 5000);
        let a = OsStr::new("a");
        // written in place for 3 s, a write every 100 ms
        for i in 0..30u64 {
            s.signal(a, Signal::Changed);
            let now = 10_000 + i * 100;
            assert_eq!(
                s.poll(a, st(i * 10, now), now, now),
                Decision::Wait,
                "at {i}"
            );
        }
        s.signal(a, Signal::Closed);
        assert_eq!(s.poll(a, st(300, 13_000), 13_050, 13_050), Decision::Wait);
        assert_eq!(s.poll(a, st(300, 13_000), 13_200, 13_200), Decision::Wait);
        assert_eq!(s.poll(a, st(300, 13_000), 13_310, 13_310), Decision::Take);
    }

    #[test]
    fn write_after_close_starts_over() {
        let mut s = Settler::new(250, 5000);
        let a = OsStr::new("a");
        s.signal(a, Signal::Changed);
        s.signal(a, Signal::Closed);
        s.signal(a, Signal::Changed);
        assert_eq!(s.poll(a, st(1, 1000), 1000, 1000), Decision::Wait);
        assert_eq!(s.poll(a, st(1, 1000), 1300, 1300), Decision::Wait);
        assert_eq!(s.poll(a, st(1, 1000), 6000, 6000), Decision::Take);
    }

    #[test]
    fn a_close_and_a_reopen_to_append_within_settle_is_one_file() {
        let mut s = Settler::new(1000, 5000);
        let a = OsStr::new("a");
        // half written, closed at 10 000
        s.signal(a, Signal::Changed);
        s.signal(a, Signal::Closed);
        assert_eq!(s.poll(a, st(50, 10_000), 10_000, 10_000), Decision::Wait);
        assert_eq!(s.poll(a, st(50, 10_000), 10_600, 10_600), Decision::Wait);
        // reopened at 10 700 (not polled while open), the rest appended, closed at 11 000
        s.signal(a, Signal::Changed);
        s.signal(a, Signal::Closed);
        assert_eq!(s.poll(a, st(100, 11_000), 11_000, 11_000), Decision::Wait);
        // a settle time from the first close would have taken it here
        assert_eq!(s.poll(a, st(100, 11_000), 11_100, 11_100), Decision::Wait);
        assert_eq!(s.poll(a, st(100, 11_000), 11_900, 11_900), Decision::Wait);
        assert_eq!(s.poll(a, st(100, 11_000), 12_000, 12_000), Decision::Take);
        // appended after it was taken: a new file, a new object
        s.signal(a, Signal::Changed);
        s.signal(a, Signal::Closed);
        assert_eq!(s.poll(a, st(20, 13_000), 13_000, 13_000), Decision::Wait);
        assert_eq!(s.poll(a, st(20, 13_000), 14_000, 14_000), Decision::Take);
    }

    #[test]
    fn old_file_found_by_rescan_is_taken_after_settle() {
        let mut s = Settler::new(250, 5000);
        let a = OsStr::new("a");
        s.signal(a, Signal::Seen);
        assert_eq!(s.poll(a, st(5, 1000), 100_000, 100_000), Decision::Wait);
        assert_eq!(s.poll(a, st(5, 1000), 100_300, 100_300), Decision::Take);
    }

    #[test]
    fn vanished_is_forgotten() {
        let mut s = Settler::new(250, 5000);
        let a = OsStr::new("a");
        s.signal(a, Signal::Changed);
        assert_eq!(s.poll(a, None, 1, 1), Decision::Forget);
        assert!(s.is_empty());
    }

    #[test]
    fn a_wall_clock_stepped_back_waits_only_idle() {
        // modified at T on the wall clock, which then went back an hour
        let t = 1_800_000_000_000;
        let mut s = Settler::new(250, 5000);
        let a = OsStr::new("a");
        s.signal(a, Signal::Seen);
        assert_eq!(s.poll(a, st(5, t), 1_000, t - 3_600_000), Decision::Wait);
        assert_eq!(s.poll(a, st(5, t), 5_999, t - 3_595_001), Decision::Wait);
        assert_eq!(s.poll(a, st(5, t), 6_000, t - 3_595_000), Decision::Take);
    }
}
