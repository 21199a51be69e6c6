//! The space ledger of the receiving node: before an object's first byte is written, its
//! declared size (from its signed manifest) is reserved against the free space of its
//! inbox's file system above the node's floor; the reservation shrinks as bytes land on
//! disk and goes when the object is landed, refused or abandoned. Concurrent objects can
//! never overrun the floor together, as each checking free space on its own would.
//!
//! ```text
//!  begin ─► reserve(channel, inbox, id, size)
//!             avail  = statvfs(inbox).f_bavail × f_frsize        (one file system: st_dev)
//!             owed   = Σ (size − written) of its open reservations
//!             avail − owed ≥ floor + size ?
//!               yes ─► Reservation (write: wrote(n) ─► owed shrinks; drop ─► released)
//!               no  ─► Short: the object waits (QUIC: "retry"; diode: the next repeat)
//!  waiting ─► ids told to wait, by channel, until they get room (or are not seen again for
//!             `STALE_MS`); the first to wait and the last to leave are reported once
//! ```
//!
//! Another writer on the same file system can still fill it between the check and the
//! write: that object then fails with `ENOSPC`, its staged copy is removed and it is sent
//! again, like any I/O fault.

use crate::core::id::ObjectId;
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// An object told to wait and not seen again for this long (ms) no longer counts as
/// waiting (its sender gave up, or the diode retired it).
pub const STALE_MS: u64 = 120_000;

/// Most waiting objects remembered per channel; beyond it the stalest are forgotten.
const MAX_WAITING: usize = 65_536;

/// Measures a directory's file system: (device id, bytes available to unprivileged users).
pub type Probe = dyn Fn(&Path) -> io::Result<(u64, u64)> + Send + Sync;

/// The real probe: `stat(2)` for the device, `statvfs(2)` for the space.
///
/// # Errors
/// Either call fails on `dir`.
pub fn statvfs_probe(dir: &Path) -> io::Result<(u64, u64)> {
    let dev = std::fs::metadata(dir)?.dev();
    let s = rustix::fs::statvfs(dir)?;
    Ok((dev, s.f_bavail.saturating_mul(s.f_frsize)))
}

/// Why an object did not get its room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Short {
    /// Not enough free space above the floor once the open reservations are counted.
    #[error(
        "{free} bytes free, {owed} owed to objects arriving, floor {floor}: no room for {size} bytes"
    )]
    NoRoom {
        /// Bytes free on the file system now.
        free: u64,
        /// Bytes still to be written by the objects already arriving there.
        owed: u64,
        /// The node's floor (`[disk] min_free_bytes`).
        floor: u64,
        /// The object's declared size.
        size: u64,
    },
    /// The file system could not be measured (the inbox is missing or unreadable).
    #[error("cannot measure free space: {0}")]
    Probe(String),
}

/// A change of a channel's waiting state, to be reported once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spell {
    /// The first object started to wait: the inbox is full.
    Began,
    /// The last waiting object got its room (or went stale): the inbox has room again.
    Ended,
}

/// What a reservation attempt left the channel's waiting state at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    /// Objects of the channel waiting for room now.
    pub count: usize,
    /// Whether this attempt began or ended a spell of waiting.
    pub spell: Option<Spell>,
}

/// One open reservation: its declared size and the bytes already written.
struct Entry {
    dev: u64,
    size: u64,
    written: Arc<AtomicU64>,
}

#[derive(Default)]
struct Books {
    next: u64,
    open: HashMap<u64, Entry>,
    /// By channel: object id → when it was last told to wait (ms).
    waiting: HashMap<String, HashMap<ObjectId, u64>>,
    /// Channels in a spell of waiting already reported as begun.
    full: HashSet<String>,
}

impl Books {
    fn owed(&self, dev: u64) -> u64 {
        self.open
            .values()
            .filter(|e| e.dev == dev)
            .map(|e| e.size.saturating_sub(e.written.load(Ordering::Relaxed)))
            .fold(0u64, u64::saturating_add)
    }

    /// Drops stale waiters of a channel; returns how many wait now.
    fn prune(&mut self, channel: &str, now_ms: u64) -> usize {
        let Some(w) = self.waiting.get_mut(channel) else {
            return 0;
        };
        w.retain(|_, at| now_ms.saturating_sub(*at) < STALE_MS);
        if w.len() > MAX_WAITING {
            let mut ages: Vec<u64> = w.values().copied().collect();
            ages.sort_unstable();
            let cut = ages.get(w.len() - MAX_WAITING).copied().unwrap_or(0);
            w.retain(|_, at| *at >= cut);
        }
        w.len()
    }

    /// The channel's waiting state now, and whether a spell began or ended with it.
    fn state(&mut self, channel: &str, now_ms: u64) -> Waiting {
        let count = self.prune(channel, now_ms);
        let spell = if count > 0 && !self.full.contains(channel) {
            self.full.insert(channel.to_string());
            Some(Spell::Began)
        } else if count == 0 && self.full.remove(channel) {
            Some(Spell::Ended)
        } else {
            None
        };
        Waiting { count, spell }
    }
}

/// The reservations of one node, across all its inboxes (grouped by file system).
pub struct Ledger {
    floor: u64,
    probe: Box<Probe>,
    books: Arc<Mutex<Books>>,
}

/// Room reserved for one arriving object; released when dropped.
pub struct Reservation {
    books: Arc<Mutex<Books>>,
    key: u64,
    written: Arc<AtomicU64>,
}

impl Reservation {
    /// Records `n` more bytes written to disk: they no longer count as owed.
    pub fn wrote(&self, n: usize) {
        self.written
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        lock(&self.books).open.remove(&self.key);
    }
}

fn lock(m: &Mutex<Books>) -> MutexGuard<'_, Books> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ledger {
    /// A ledger keeping `floor` bytes free on every inbox's file system, measured with
    /// `statvfs(2)`.
    pub fn new(floor: u64) -> Ledger {
        Ledger::with_probe(floor, Box::new(statvfs_probe))
    }

    /// A ledger measuring file systems with `probe` (tests pass a fake one).
    pub fn with_probe(floor: u64, probe: Box<Probe>) -> Ledger {
        Ledger {
            floor,
            probe,
            books: Arc::default(),
        }
    }

    /// Reserves `size` bytes (the manifest's declared size) for object `id` of `channel`
    /// in `inbox`, at `now_ms` (ms on the monotonic clock, [`crate::mono_ms`]). The measure and the booking are
    /// one step under the ledger's lock: two objects never both take the last room.
    ///
    /// # Errors
    /// [`Short`]: no room now, or the file system cannot be measured; the object is
    /// counted as waiting. Either way, the channel's waiting state is returned too.
    pub fn reserve(
        &self,
        channel: &str,
        inbox: &Path,
        id: ObjectId,
        size: u64,
        now_ms: u64,
    ) -> (Result<Reservation, Short>, Waiting) {
        let mut books = lock(&self.books);
        let measured = (self.probe)(inbox).map_err(|e| Short::Probe(e.to_string()));
        let booked = measured.and_then(|(dev, free)| {
            let owed = books.owed(dev);
            let need = self.floor.saturating_add(owed).saturating_add(size);
            if free >= need {
                Ok(dev)
            } else {
                Err(Short::NoRoom {
                    free,
                    owed,
                    floor: self.floor,
                    size,
                })
            }
        });
        let result = match booked {
            Ok(dev) => {
                if let Some(w) = books.waiting.get_mut(channel) {
                    w.remove(&id);
                }
                let key = books.next;
                books.next = books.next.wrapping_add(1);
                let written = Arc::new(AtomicU64::new(0));
                books.open.insert(
                    key,
                    Entry {
                        dev,
                        size,
                        written: written.clone(),
                    },
                );
                Ok(Reservation {
                    books: self.books.clone(),
                    key,
                    written,
                })
            }
            Err(short) => {
                books
                    .waiting
                    .entry(channel.to_string())
                    .or_default()
                    .insert(id, now_ms);
                Err(short)
            }
        };
        let waiting = books.state(channel, now_ms);
        (result, waiting)
    }

    /// Forgets that an object of `channel` waits (it was settled some other way: a
    /// duplicate, a refusal); returns the waiting state after.
    pub fn forget(&self, channel: &str, id: ObjectId, now_ms: u64) -> Waiting {
        let mut books = lock(&self.books);
        if let Some(w) = books.waiting.get_mut(channel) {
            w.remove(&id);
        }
        books.state(channel, now_ms)
    }

    /// The waiting state of `channel` at `now_ms` (a spell whose waiters all went stale
    /// ends here).
    pub fn waiting(&self, channel: &str, now_ms: u64) -> Waiting {
        lock(&self.books).state(channel, now_ms)
    }

    /// Bytes still owed to the objects arriving on the file system `dev`.
    pub fn owed(&self, dev: u64) -> u64 {
        lock(&self.books).owed(dev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    const MIB: u64 = 1 << 20;

    /// A ledger over one fake file system (device 7) whose free space the test sets.
    fn ledger(floor: u64) -> (Ledger, Arc<AtomicU64>) {
        let free = Arc::new(AtomicU64::new(0));
        let f = free.clone();
        let l = Ledger::with_probe(floor, Box::new(move |_| Ok((7, f.load(Ordering::Relaxed)))));
        (l, free)
    }

    fn id(n: u8) -> ObjectId {
        ObjectId([n; 16])
    }

    #[test]
    fn the_floor_and_open_reservations_bound_what_fits() {
        let (l, free) = ledger(MIB);
        free.store(4 * MIB, Ordering::Relaxed);
        let p = Path::new("inbox");
        let (a, _) = l.reserve("c", p, id(1), 2 * MIB, 0);
        let a = a.unwrap();
        // 4 free, 2 owed, floor 1: 1 MiB left
        let (b, w) = l.reserve("c", p, id(2), MIB + 1, 0);
        assert_eq!(
            b.err(),
            Some(Short::NoRoom {
                free: 4 * MIB,
                owed: 2 * MIB,
                floor: MIB,
                size: MIB + 1
            })
        );
        assert_eq!(
            w,
            Waiting {
                count: 1,
                spell: Some(Spell::Began)
            }
        );
        let (c, w) = l.reserve("c", p, id(3), MIB, 0);
        let c = c.unwrap();
        assert_eq!(w.count, 1);
        assert_eq!(w.spell, None);
        // nothing is left above the floor, not even for an empty object's neighbour
        assert!(l.reserve("c", p, id(4), 1, 0).0.is_err());
        // written bytes leave the books as they leave the free space
        a.wrote(usize::try_from(MIB).unwrap());
        free.store(3 * MIB, Ordering::Relaxed);
        assert_eq!(l.owed(7), 2 * MIB);
        assert!(l.reserve("c", p, id(5), 1, 0).0.is_err());
        // released on drop (landed, refused or abandoned)
        drop(c);
        drop(a);
        assert_eq!(l.owed(7), 0);
        let (d, w) = l.reserve("c", p, id(2), 2 * MIB, 0);
        assert!(d.is_ok());
        // ids 4 and 5 still wait
        assert_eq!(w.count, 2);
        assert_eq!(l.forget("c", id(4), 0).spell, None);
        assert_eq!(l.forget("c", id(5), 0).spell, Some(Spell::Ended));
    }

    #[test]
    fn concurrent_reservations_never_overrun_the_floor() {
        let (l, free) = ledger(10 * MIB);
        free.store(50 * MIB, Ordering::Relaxed);
        let l = Arc::new(l);
        let held = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..16u8)
            .map(|n| {
                let (l, held) = (l.clone(), held.clone());
                std::thread::spawn(move || {
                    for k in 0..8u8 {
                        let (r, _) = l.reserve("c", Path::new("i"), id(n * 8 + k), 3 * MIB, 0);
                        if let Ok(r) = r {
                            held.lock().unwrap().push(r);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // 40 MiB above the floor: exactly 13 objects of 3 MiB, however the threads ran
        assert_eq!(held.lock().unwrap().len(), 13);
        assert_eq!(l.owed(7), 39 * MIB);
        assert_eq!(l.waiting("c", 0).count, 128 - 13);
        held.lock().unwrap().clear();
        assert_eq!(l.owed(7), 0);
    }

    #[test]
    fn file_systems_are_booked_apart_and_waiters_go_stale() {
        let l = Ledger::with_probe(
            0,
            Box::new(|p: &Path| Ok((u64::from(p == Path::new("b")), 5 * MIB))),
        );
        let (a, _) = l.reserve("x", Path::new("a"), id(1), 5 * MIB, 0);
        let (b, _) = l.reserve("y", Path::new("b"), id(2), 5 * MIB, 0);
        assert!(a.is_ok() && b.is_ok());
        let (c, w) = l.reserve("x", Path::new("a"), id(3), 1, 1_000);
        assert!(c.is_err());
        assert_eq!(w.spell, Some(Spell::Began));
        assert_eq!(l.waiting("y", 1_000).count, 0);
        assert_eq!(l.waiting("x", 1_000 + STALE_MS - 1).count, 1);
        assert_eq!(
            l.waiting("x", 1_000 + STALE_MS),
            Waiting {
                count: 0,
                spell: Some(Spell::Ended)
            }
        );
        // an unmeasurable inbox is no room either
        let bad = Ledger::with_probe(0, Box::new(|_: &Path| Err(io::Error::other("gone"))));
        assert!(matches!(
            bad.reserve("x", Path::new("a"), id(1), 0, 0).0,
            Err(Short::Probe(_))
        ));
    }
}
