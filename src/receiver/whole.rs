//! The content hashes of a large arriving object, on threads of their own: the link's
//! writer writes the bytes while one thread hashes them whole and another checks each
//! chunk's hash, so that one object's two hashes (SHA-256, or SM3 under `gm`) run on two
//! cores beside the writer (the sender's run beside its copy: `sender::spool`).
//!
//! ```text
//!  Arriving::write(bytes) ─► Reception::feed (counts the bytes) ─► staged copy
//!          └─► batch of ≥ BATCH bytes ─► two queues (≤ IN_FLIGHT batches each)
//!                ├─► thread: WholeHash
//!                └─► thread: ChunkCheck ── a chunk refused: the thread ends, the next
//!                                          batch finds it gone: the object is refused
//!  every byte in (close) ─► last batch, queues closed: the threads take what is queued, end
//!  Receiver::finish ─► threads joined ─► Reception::finish_apart(whole, chunks)
//! ```
//!
//! The batches hold the link's own buffers (`Bytes` slices, no copy, each keeping the whole
//! buffer it slices alive: a QUIC receive buffer, a decoded diode block); the writer waits
//! when a thread is IN_FLIGHT batches behind, so memory stays bounded whatever the
//! object's size, and a link closes the queues as soon as the last byte is in, so an object
//! waiting for its turn to land holds none of them. A chunk that does not match stops the
//! object within IN_FLIGHT batches of it. Where a thread cannot be had, its hash stays in
//! the reception, checked on the writer's thread as before.

use crate::core::reason::Refusal;
use crate::core::verify::{ChunkCheck, Reception, WholeHash};
use bytes::Bytes;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Objects of this many bytes or more get the threads; below, a thread costs more than the
/// hash it overlaps.
pub const FROM: u64 = 4 << 20;
/// Bytes gathered before a batch goes to the threads.
const BATCH: usize = 256 << 10;
/// Batches queued for each thread at most.
const IN_FLIGHT: usize = 8;

/// Why [`Beside::write`] took no more bytes.
#[derive(Debug)]
pub enum Stop {
    /// A chunk did not match its hash (or more bytes came than announced): the object is
    /// refused.
    Refused(Refusal),
    /// A thread is gone, or the queues were closed: the hashes cannot be had.
    Broken,
}

/// One thread and its queue.
struct Lane<T> {
    /// `None` once closed: the thread's loop ends when it took what is queued.
    queue: Option<mpsc::SyncSender<Vec<Bytes>>>,
    thread: JoinHandle<Option<T>>,
}

impl<T: Send + 'static> Lane<T> {
    /// Starts a thread that is handed `hash`, then hands it every batch through `take`
    /// (`false`: stop taking, the hash is done with) and gives it back at the end.
    ///
    /// # Errors
    /// No thread can be had: `hash` is given back, untouched.
    fn start(
        name: &str,
        hash: T,
        take: impl Fn(&mut T, &[u8]) -> bool + Send + 'static,
    ) -> Result<Lane<T>, T> {
        let (queue, batches) = mpsc::sync_channel::<Vec<Bytes>>(IN_FLIGHT);
        // handed over once the thread runs, so that a failed spawn does not lose it
        let (hand, handed) = mpsc::sync_channel::<T>(1);
        let spawned = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut hash = handed.recv().ok()?;
                for batch in batches {
                    if !batch.iter().all(|b| take(&mut hash, b)) {
                        break;
                    }
                }
                Some(hash)
            });
        let Ok(thread) = spawned else {
            return Err(hash);
        };
        match hand.send(hash) {
            Ok(()) => Ok(Lane {
                queue: Some(queue),
                thread,
            }),
            // the thread is gone already
            Err(mpsc::SendError(hash)) => Err(hash),
        }
    }
}

/// The threads hashing an arriving object's content, and the batch being gathered.
pub struct Beside {
    batch: Vec<Bytes>,
    batched: usize,
    /// `false` once closed ([`Beside::close`]).
    open: bool,
    /// Gave up a batch: a thread is gone, the hashes cannot be had.
    broken: bool,
    whole: Option<Lane<WholeHash>>,
    chunks: Option<Lane<ChunkCheck>>,
    /// The chunk thread's refusal, once it stopped on one.
    refused: Option<Refusal>,
}

/// What the threads give back at the end, for [`Reception::finish_apart`]: each hash
/// taken apart, `None` where the reception kept it.
pub struct Apart {
    /// The whole hash.
    pub whole: Option<WholeHash>,
    /// The chunk check.
    pub chunks: Option<ChunkCheck>,
}

impl Beside {
    /// Takes `reception`'s whole hash and chunk check apart onto a new thread each. `None`
    /// when neither thread can be had or the hashes are no longer apart-able (bytes already
    /// fed): the reception then keeps them and checks them itself; one thread had, the
    /// other hash stays in the reception.
    pub fn start(reception: &mut Reception) -> Option<Beside> {
        // a hash whose thread cannot be had goes back: the reception checks it itself
        let whole = reception.take_whole().and_then(|w| {
            let took = |w: &mut WholeHash, b: &[u8]| {
                w.update(b);
                true
            };
            Lane::start("isogate-whole", w, took)
                .map_err(|w| reception.put_whole(w))
                .ok()
        });
        let chunks = reception.take_chunks().and_then(|c| {
            let took = |c: &mut ChunkCheck, b: &[u8]| c.update(b).is_ok();
            Lane::start("isogate-chunks", c, took)
                .map_err(|c| reception.put_chunks(c))
                .ok()
        });
        if whole.is_none() && chunks.is_none() {
            return None;
        }
        Some(Beside {
            batch: Vec::new(),
            batched: 0,
            open: true,
            broken: false,
            whole,
            chunks,
            refused: None,
        })
    }

    /// Takes the next bytes, the same ones the reception was fed.
    ///
    /// # Errors
    /// [`Stop::Refused`]: the chunk thread refused a chunk (every later call says so
    /// again); [`Stop::Broken`]: a thread is gone or the queues were closed (the hashes
    /// cannot be had: the object is not verified).
    pub fn write(&mut self, bytes: &Bytes) -> Result<(), Stop> {
        self.stopped()?;
        if !self.open {
            self.broken = true;
            return Err(Stop::Broken);
        }
        self.batched += bytes.len();
        self.batch.push(bytes.clone());
        if self.batched < BATCH {
            return Ok(());
        }
        self.batched = 0;
        self.flush()
    }

    /// Why no more bytes are taken, if so.
    fn stopped(&self) -> Result<(), Stop> {
        match (&self.refused, self.broken) {
            (Some(r), _) => Err(Stop::Refused(r.clone())),
            (None, true) => Err(Stop::Broken),
            (None, false) => Ok(()),
        }
    }

    /// Sends the gathered batch to the threads; a thread that will take no more is joined
    /// to learn why (a chunk refused, or broken for good).
    fn flush(&mut self) -> Result<(), Stop> {
        let batch = std::mem::take(&mut self.batch);
        if batch.is_empty() {
            return self.stopped();
        }
        if let Some(queue) = self.chunks.as_ref().and_then(|l| l.queue.as_ref())
            && queue.send(batch.clone()).is_err()
        {
            // the chunk thread ended early: on a refusal, or it failed
            let check = self
                .chunks
                .take()
                .and_then(|l| l.thread.join().ok().flatten());
            match check.and_then(|c| c.refusal().cloned()) {
                Some(r) => self.refused = Some(r),
                None => self.broken = true,
            }
            return self.stopped();
        }
        if let Some(queue) = self.whole.as_ref().and_then(|l| l.queue.as_ref())
            && queue.send(batch).is_err()
        {
            self.broken = true;
        }
        self.stopped()
    }

    /// Every byte was taken: the last batch goes to the threads and their queues close, so
    /// the threads take what is queued and end, letting the link's buffers go before the
    /// object waits to land. Later bytes are refused ([`Beside::write`]: [`Stop::Broken`]).
    pub fn close(&mut self) {
        if self.open {
            let _ = self.flush();
            self.open = false;
            // dropping a queue's sender ends its thread's loop
            if let Some(lane) = &mut self.whole {
                lane.queue = None;
            }
            if let Some(lane) = &mut self.chunks {
                lane.queue = None;
            }
        }
    }

    /// Every byte was taken: the hashes taken apart, to give to
    /// [`Reception::finish_apart`].
    ///
    /// # Errors
    /// As [`Beside::write`]: the chunk thread's refusal, or [`Stop::Broken`] when a thread
    /// failed.
    pub fn finish(mut self) -> Result<Apart, Stop> {
        self.close();
        self.stopped()?;
        // the chunk check first: its refusal stands whatever became of the whole hash
        let chunks = match self.chunks.take() {
            Some(lane) => Some(lane.thread.join().ok().flatten().ok_or(Stop::Broken)?),
            None => None,
        };
        if let Some(r) = chunks.as_ref().and_then(ChunkCheck::refusal) {
            return Err(Stop::Refused(r.clone()));
        }
        let whole = match self.whole.take() {
            Some(lane) => Some(lane.thread.join().ok().flatten().ok_or(Stop::Broken)?),
            None => None,
        };
        Ok(Apart { whole, chunks })
    }

    /// The stream ended before its last byte: the chunk check's refusal of what did arrive,
    /// if it made one (once the threads took what is queued), so that a cut-short object
    /// with a bad chunk is refused as it would have been with its chunks checked inline,
    /// not sent again.
    pub fn refusal(mut self) -> Option<Refusal> {
        self.close();
        if let Some(r) = self.refused.take() {
            return Some(r);
        }
        let check = self.chunks.take()?.thread.join().ok().flatten()?;
        check.refusal().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::reason::Reason;
    use crate::core::verify::tests::{payload, setup};

    fn reception(content: &[u8]) -> Reception {
        let (key, rules, m) = setup(content, 1 << 20);
        Reception::begin(&payload(&m, &key), &rules).unwrap()
    }

    fn content(len: usize) -> Bytes {
        (0..len)
            .map(|i| (i % 241) as u8)
            .collect::<Vec<u8>>()
            .into()
    }

    /// Ends `r` with what `beside` gives back.
    fn end(r: Reception, beside: Beside) -> Result<(), Refusal> {
        let apart = match beside.finish() {
            Ok(a) => a,
            Err(Stop::Refused(r)) => return Err(r),
            Err(Stop::Broken) => panic!("a thread broke"),
        };
        assert!(apart.whole.is_some() && apart.chunks.is_some());
        r.finish_apart(apart.whole, apart.chunks).map(|_| ())
    }

    #[test]
    fn the_hashes_beside_verify_the_same_bytes_in_any_steps() {
        let data = content(5 << 20);
        for step in [1000usize, 64 << 10, 300 << 10, 5 << 20] {
            let mut r = reception(&data);
            let mut beside = Beside::start(&mut r).unwrap();
            for i in (0..data.len()).step_by(step) {
                let piece = data.slice(i..(i + step).min(data.len()));
                r.feed(&piece).unwrap();
                beside.write(&piece).unwrap();
            }
            end(r, beside).unwrap();
        }
        // closed when the last byte is in, finished later: the same hashes, and no byte
        // is taken after the close
        let mut r = reception(&data);
        let mut beside = Beside::start(&mut r).unwrap();
        r.feed(&data).unwrap();
        beside.write(&data).unwrap();
        beside.close();
        assert!(matches!(beside.write(&data.slice(..1)), Err(Stop::Broken)));
        assert!(
            matches!(beside.finish(), Err(Stop::Broken)),
            "a byte after the close breaks it"
        );
        let mut r = reception(&data);
        let mut beside = Beside::start(&mut r).unwrap();
        r.feed(&data).unwrap();
        beside.write(&data).unwrap();
        beside.close();
        end(r, beside).unwrap();
    }

    #[test]
    fn a_byte_missed_by_a_thread_is_a_content_refusal() {
        let data = content(5 << 20);
        let mut r = reception(&data);
        let mut beside = Beside::start(&mut r).unwrap();
        r.feed(&data).unwrap();
        // the threads miss the last byte: the reception refuses what they did not see
        beside.write(&data.slice(..data.len() - 1)).unwrap();
        assert_eq!(end(r, beside).unwrap_err().reason, Reason::ContentHash);
        // and a reception whose hashes went to threads cannot end without them
        let mut r = reception(&data);
        let beside = Beside::start(&mut r).unwrap();
        r.feed(&data).unwrap();
        drop(beside);
        assert_eq!(r.finish().unwrap_err().reason, Reason::ContentHash);
    }

    #[test]
    fn a_changed_chunk_stops_the_object_long_before_its_end() {
        // 64 chunks of 1 MiB; the second one changed after it was signed
        let data = content(64 << 20);
        let mut r = reception(&data);
        let mut bad = data.to_vec();
        bad[(1 << 20) + 5] ^= 1;
        let bad = Bytes::from(bad);
        let mut beside = Beside::start(&mut r).unwrap();
        let step = 64 << 10;
        let mut stopped_at = None;
        for i in (0..bad.len()).step_by(step) {
            let piece = bad.slice(i..(i + step).min(bad.len()));
            // the reception only counts: the chunk is checked beside
            r.feed(&piece).unwrap();
            match beside.write(&piece) {
                Ok(()) => {}
                Err(Stop::Refused(refusal)) => {
                    assert_eq!(refusal.reason, Reason::ChunkHash);
                    assert!(refusal.detail.contains("chunk 1 "), "{}", refusal.detail);
                    stopped_at = Some(i);
                    break;
                }
                Err(Stop::Broken) => panic!("broken, not refused"),
            }
        }
        let at = stopped_at.expect("refused before the end");
        // within the batches queued behind the bad chunk
        assert!(at <= (2 << 20) + (IN_FLIGHT + 2) * BATCH, "stopped at {at}");
        // and every later write and the end say so again
        assert!(matches!(
            beside.write(&bad.slice(..1)),
            Err(Stop::Refused(_))
        ));
        assert!(matches!(beside.finish(), Err(Stop::Refused(_))));
    }

    #[test]
    fn a_changed_last_chunk_is_refused_at_the_end() {
        let data = content(5 << 20);
        let mut r = reception(&data);
        let mut bad = data.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let bad = Bytes::from(bad);
        let mut beside = Beside::start(&mut r).unwrap();
        r.feed(&bad).unwrap();
        beside.write(&bad).unwrap();
        beside.close();
        assert_eq!(end(r, beside).unwrap_err().reason, Reason::ChunkHash);
    }

    #[test]
    fn a_stream_cut_short_after_a_changed_chunk_is_still_refused() {
        let data = content(8 << 20);
        let mut bad = data.to_vec();
        bad[10] ^= 1;
        let bad = Bytes::from(bad);
        // the stream ends after 3 MiB: chunk 0 was bad, the writer never learnt it
        let mut r = reception(&data);
        let mut beside = Beside::start(&mut r).unwrap();
        let cut = bad.slice(..3 << 20);
        r.feed(&cut).unwrap();
        let _ = beside.write(&cut);
        let refusal = beside.refusal().expect("the chunk's refusal");
        assert_eq!(refusal.reason, Reason::ChunkHash);
        // good bytes cut short: no refusal, the object is sent again
        let mut r = reception(&data);
        let mut beside = Beside::start(&mut r).unwrap();
        let cut = data.slice(..3 << 20);
        r.feed(&cut).unwrap();
        beside.write(&cut).unwrap();
        assert!(beside.refusal().is_none());
    }

    #[test]
    fn no_thread_once_bytes_were_fed() {
        let data = content(5 << 20);
        let mut r = reception(&data);
        r.feed(&data[..10]).unwrap();
        assert!(Beside::start(&mut r).is_none());
        r.feed(&data[10..]).unwrap();
        r.finish().unwrap();
    }
}
