//! Batches in flight: message batches made durable by a channel's batcher whose link has
//! not yet let them go (on quic: no receipt yet; on the diode: the first pass not yet out).
//! The batcher holds its open batch while its channel has [`MAX_IN_FLIGHT`] of them, so
//! that under load messages wait in one growing batch instead of in a queue of small
//! objects, each paying the whole per-object cost (spool entry, seal, landing): the
//! number of objects follows what the link and the receiving node keep up with, and the
//! latency stays near one object's way across (natural batching, as in group commit).
//!
//! ```text
//!  batcher: commit ─► begin(channel, id) ─► pipeline ─► link ─► done(id) ─► waker(channel)
//!  batcher: open batch due ─► count(channel) < MAX_IN_FLIGHT, or held HOLD_MAX? ─► cut
//! ```
//!
//! Nothing here decides what is durable or sent: a batch that never reports (refused,
//! waiting for the antivirus, a link down) stops counting after [`STALE`], and a batch is
//! never held longer than the batcher's own cap, so a stuck link delays the answers to
//! posts by at most that cap, never loses or blocks them.

use crate::core::id::ObjectId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Batches of one channel that may be in flight before the batcher holds its open batch.
pub const MAX_IN_FLIGHT: usize = 2;

/// The longest an open batch is held past its `linger_ms` while its channel has
/// [`MAX_IN_FLIGHT`] batches on their way: what a post may wait more at most when the link
/// is slow or down (the object rate then stays at most one batch per hold).
pub const HOLD_MAX: Duration = Duration::from_millis(50);

/// After this long a batch no longer counts as in flight, whether or not its link said so.
pub const STALE: Duration = Duration::from_millis(500);

/// Called when a batch of the channel it was registered for leaves the flight.
type Waker = Box<dyn Fn() + Send + Sync>;

/// The message batches in flight on this node, by channel (see the module's diagram).
pub struct InFlight {
    /// Batch object id → its channel and when it was committed.
    objects: Mutex<HashMap<ObjectId, (String, Instant)>>,
    /// Channel → what wakes its batcher.
    wakers: Mutex<HashMap<String, Waker>>,
    /// [`HOLD_MAX`] and [`STALE`] (other values in tests only).
    hold: Duration,
    stale: Duration,
}

impl Default for InFlight {
    fn default() -> Self {
        InFlight::with_limits(HOLD_MAX, STALE)
    }
}

impl InFlight {
    /// An empty register whose batches are held at most `hold` and count as in flight at
    /// most `stale` (the product uses [`HOLD_MAX`] and [`STALE`]).
    pub fn with_limits(hold: Duration, stale: Duration) -> Self {
        InFlight {
            objects: Mutex::default(),
            wakers: Mutex::default(),
            hold,
            stale,
        }
    }

    /// The longest a batch is held past its linger while its channel has
    /// [`MAX_IN_FLIGHT`] batches on their way.
    pub fn hold(&self) -> Duration {
        self.hold
    }

    /// Registers what wakes `channel`'s batcher when one of its batches lands or is sent
    /// (replacing any earlier one).
    pub fn on_done(&self, channel: &str, waker: impl Fn() + Send + Sync + 'static) {
        self.wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(channel.to_string(), Box::new(waker));
    }

    /// A batch of `channel` was made durable and goes to its link.
    pub fn begin(&self, channel: &str, id: ObjectId) {
        let mut o = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        o.retain(|_, (_, at)| now.duration_since(*at) < self.stale);
        o.insert(id, (channel.to_string(), now));
    }

    /// The link is done with object `id` (a receipt came, or its first pass is out); any
    /// object may be given, only batches registered by [`InFlight::begin`] count.
    pub fn done(&self, id: ObjectId) {
        let channel = {
            let mut o = self.objects.lock().unwrap_or_else(|e| e.into_inner());
            match o.remove(&id) {
                Some((channel, _)) => channel,
                None => return,
            }
        };
        let wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(wake) = wakers.get(&channel) {
            wake();
        }
    }

    /// How many batches of `channel` are in flight (committed less than [`STALE`] ago and
    /// not yet done).
    pub fn count(&self, channel: &str) -> usize {
        let o = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        o.values()
            .filter(|(c, at)| c == channel && now.duration_since(*at) < self.stale)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn id(n: u8) -> ObjectId {
        ObjectId([n; 16])
    }

    #[test]
    fn counts_by_channel_until_done_and_wakes_the_channel() {
        let f = InFlight::default();
        let woken = Arc::new(AtomicUsize::new(0));
        let w = woken.clone();
        f.on_done("notices", move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        f.begin("notices", id(1));
        f.begin("notices", id(2));
        f.begin("filings", id(3));
        assert_eq!(f.count("notices"), 2);
        assert_eq!(f.count("filings"), 1);
        f.done(id(1));
        assert_eq!(f.count("notices"), 1);
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        // an object that is not a batch, or one done twice, wakes nobody
        f.done(id(9));
        f.done(id(1));
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        // another channel's batch does not wake this channel's batcher
        f.done(id(3));
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        assert_eq!(f.count("filings"), 0);
    }

    #[test]
    fn a_batch_that_never_reports_stops_counting() {
        let stale = Duration::from_millis(100);
        let f = InFlight::with_limits(HOLD_MAX, stale);
        f.begin("notices", id(1));
        assert_eq!(f.count("notices"), 1);
        std::thread::sleep(stale + Duration::from_millis(20));
        assert_eq!(f.count("notices"), 0);
        // and is forgotten at the next begin
        f.begin("notices", id(2));
        assert_eq!(f.objects.lock().unwrap().len(), 1);
    }
}
