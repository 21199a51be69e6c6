//! Group commit of directory fsyncs: threads that each need the same directory made
//! durable share one `fsync(2)` where they can, as a database shares one log flush among
//! the transactions that commit together.
//!
//! ```text
//!  caller changes dir D (create, rename, unlink), then sync(D):
//!    no fsync of D running ──► it runs one (generation n), and returns its result
//!    one running (started before the change: it may miss it)
//!      ──► waits for it, then for generation n+1, which the first of the waiters runs
//!          for all of them: their changes all came before it started
//! ```
//!
//! Each caller returns only after an fsync of D that *started after its call* has
//! finished, so it never relies on one that may have missed its change; it returns that
//! fsync's error, if any, whoever ran it (or a later fsync's, when one failed before it
//! looked: the safe side). Several directories sync at once, each in its
//! own group; a group lives while a caller uses it (bounded by the callers).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, PoisonError};

/// The groups in use, by directory.
static GROUPS: LazyLock<Mutex<HashMap<PathBuf, Arc<Group>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// One directory's fsyncs: at most one runs at a time.
#[derive(Default)]
struct Group {
    state: Mutex<State>,
    finished: Condvar,
}

#[derive(Default)]
struct State {
    /// Generation of the last fsync started (0: none yet).
    started: u64,
    /// Generation of the last fsync finished.
    finished: u64,
    /// An fsync is running (generation `started`).
    running: bool,
    /// The last failed fsync: its generation and its error.
    failed: Option<(u64, Failure)>,
    /// Callers waiting for a generation to finish.
    waiting: usize,
}

/// What a failed fsync said, to be told again to each caller it covered.
struct Failure {
    /// The OS's error number, where it gave one.
    errno: Option<i32>,
    kind: io::ErrorKind,
    text: String,
}

impl Failure {
    fn of(e: &io::Error) -> Failure {
        Failure {
            errno: e.raw_os_error(),
            kind: e.kind(),
            text: e.to_string(),
        }
    }

    fn error(&self) -> io::Error {
        let e = match self.errno {
            Some(n) => io::Error::from_raw_os_error(n),
            None => io::Error::from(self.kind),
        };
        io::Error::new(
            e.kind(),
            format!("the shared fsync of this folder failed: {}", self.text),
        )
    }
}

/// Ends the running fsync of a group when dropped, even if the fsync unwound: the next
/// caller runs one, the waiters wake.
struct Running<'a> {
    group: &'a Group,
    generation: u64,
    failure: Option<Failure>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut st = lock(&self.group.state);
        st.running = false;
        st.finished = self.generation;
        if let Some(f) = self.failure.take() {
            st.failed = Some((self.generation, f));
        }
        self.group.finished.notify_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // the state is a few counters, consistent at every unlock: a panic elsewhere leaves
    // it usable
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `fsync` for `dir` unless another caller runs one for it that starts after this
/// call (then waits for that one): see the module's header.
///
/// # Errors
/// The error of the fsync that covers this call (`fsync`'s own, or the same kind and
/// text where another caller ran it).
pub fn sync(dir: &Path, fsync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
    let group = Arc::clone(lock(&GROUPS).entry(dir.to_path_buf()).or_default());
    let result = group.sync(fsync);
    let mut groups = lock(&GROUPS);
    // only the map and this caller hold it: no one else can take it from the map
    // while the map is locked here
    if Arc::strong_count(&group) == 2 {
        groups.remove(dir);
    }
    result
}

impl Group {
    fn sync(&self, fsync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let mut st = lock(&self.state);
        // the first generation that starts after this call
        let need = st.started + 1;
        loop {
            if st.finished >= need {
                // a later generation's failure may hide whether `need`'s succeeded: said
                // as failed then (the safe side; fsync errors are rare)
                return match &st.failed {
                    Some((generation, failure)) if *generation >= need => Err(failure.error()),
                    _ => Ok(()),
                };
            }
            if !st.running {
                st.running = true;
                st.started += 1;
                let mut running = Running {
                    group: self,
                    generation: st.started,
                    failure: None,
                };
                drop(st);
                let result = fsync();
                running.failure = result.as_ref().err().map(Failure::of);
                drop(running);
                return result;
            }
            st.waiting += 1;
            st = self
                .finished
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
            st.waiting -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Barrier, mpsc};
    use std::time::Duration;

    /// Waits until `n` callers wait in `dir`'s group.
    fn waiting(dir: &Path, n: usize) {
        for _ in 0..1000 {
            let group = lock(&GROUPS).get(dir).cloned();
            if group.is_some_and(|g| lock(&g.state).waiting == n) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("{n} callers never waited");
    }

    /// Every caller that arrives while an fsync runs gets one that starts after it
    /// arrived; they share it.
    #[test]
    fn callers_during_a_running_fsync_share_the_next_one() {
        let dir = Path::new("/group-sync-test/shared");
        let runs = Arc::new(AtomicUsize::new(0));
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let first = {
            let runs = Arc::clone(&runs);
            std::thread::spawn(move || {
                sync(dir, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    entered_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                    Ok(())
                })
            })
        };
        entered_rx.recv().unwrap();
        // eight callers arrive while the first fsync runs: none may rely on it
        let order = Arc::new(Mutex::new(Vec::new()));
        let waiters: Vec<_> = (0..8)
            .map(|i| {
                let runs = Arc::clone(&runs);
                let order = Arc::clone(&order);
                std::thread::spawn(move || {
                    let r = sync(dir, || {
                        runs.fetch_add(1, Ordering::SeqCst);
                        lock(&order).push(("fsync", i));
                        Ok(())
                    });
                    lock(&order).push(("returned", i));
                    r
                })
            })
            .collect();
        // let them all queue behind the running fsync
        waiting(dir, 8);
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "none ran while one was running"
        );
        assert!(
            lock(&order).is_empty(),
            "none returned on the running fsync"
        );
        release_tx.send(()).unwrap();
        first.join().unwrap().unwrap();
        for w in waiters {
            w.join().unwrap().unwrap();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2, "one fsync for the eight");
        let order = lock(&order);
        assert_eq!(
            order[0].0, "fsync",
            "no caller returned before its fsync: {order:?}"
        );
        assert!(
            lock(&GROUPS).get(dir).is_none(),
            "the group is gone once unused"
        );
    }

    /// The error of a shared fsync reaches every caller it covered; a later one starts
    /// afresh.
    #[test]
    fn a_shared_fsync_s_error_reaches_every_caller_it_covered() {
        let dir = Path::new("/group-sync-test/failing");
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let first = std::thread::spawn(move || {
            sync(dir, || {
                entered_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                Ok(())
            })
        });
        entered_rx.recv().unwrap();
        let barrier = Arc::new(Barrier::new(5));
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    sync(dir, || Err(io::Error::other("disk gone")))
                })
            })
            .collect();
        barrier.wait();
        waiting(dir, 4);
        release_tx.send(()).unwrap();
        first.join().unwrap().unwrap();
        for w in waiters {
            let e = w.join().unwrap().unwrap_err();
            assert!(e.to_string().contains("disk gone"), "{e}");
        }
        sync(dir, || Ok(())).unwrap();
    }

    /// An fsync that unwinds ends its generation: the next caller runs its own.
    #[test]
    fn an_fsync_that_panics_leaves_the_folder_syncable() {
        let dir = Path::new("/group-sync-test/panics");
        let unwound = std::thread::spawn(move || sync(dir, || panic!("fsync panicked"))).join();
        assert!(unwound.is_err());
        let ran = AtomicUsize::new(0);
        sync(dir, || {
            ran.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }

    /// Different folders never wait for each other.
    #[test]
    fn folders_sync_apart() {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let held = std::thread::spawn(move || {
            sync(Path::new("/group-sync-test/a"), || {
                entered_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                Ok(())
            })
        });
        entered_rx.recv().unwrap();
        let ran = AtomicUsize::new(0);
        sync(Path::new("/group-sync-test/b"), || {
            ran.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        release_tx.send(()).unwrap();
        held.join().unwrap().unwrap();
    }
}
