//! The whole-content hash of a large arriving object, on a thread of its own: the link's
//! writer checks each chunk's hash and writes the bytes while this thread hashes the same
//! bytes whole, so that one object's two hashes (SHA-256, or SM3 under `gm`) run on two
//! cores, as the sender's do (`core::digest::hash_content`).
//!
//! ```text
//!  Arriving::write(bytes) ─► Reception::feed (chunk hashes) ─► staged copy
//!          └─► batch of ≥ BATCH bytes ─► queue (≤ IN_FLIGHT batches) ─► thread: WholeHash
//!  every byte in (close) ─► last batch, queue closed: the thread hashes what is queued, ends
//!  Receiver::finish ─► thread joined ─► its WholeHash ─► Reception::finish_with
//! ```
//!
//! The batches hold the link's own buffers (`Bytes` slices, no copy, each keeping the whole
//! buffer it slices alive: a QUIC receive buffer, a decoded diode block); the writer waits
//! when the thread is IN_FLIGHT batches behind, so memory stays bounded whatever the
//! object's size, and a link closes the queue as soon as the last byte is in, so an object
//! waiting for its turn to land holds none of them.

use crate::core::verify::{Reception, WholeHash};
use bytes::Bytes;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Objects of this many bytes or more get the thread; below, a thread costs more than the
/// hash it overlaps.
pub const FROM: u64 = 4 << 20;
/// Bytes gathered before a batch goes to the thread.
const BATCH: usize = 256 << 10;
/// Batches queued for the thread at most.
const IN_FLIGHT: usize = 8;

/// The thread hashing an arriving object's content whole, and the batch being gathered.
pub struct Beside {
    batch: Vec<Bytes>,
    batched: usize,
    /// `None` once closed ([`Beside::close`]).
    queue: Option<mpsc::SyncSender<Vec<Bytes>>>,
    /// Gave up a batch: the thread is gone, the hash cannot be had.
    broken: bool,
    thread: JoinHandle<Option<WholeHash>>,
}

impl Beside {
    /// Takes `reception`'s whole hash apart onto a new thread. `None` when no thread can
    /// be had or the hash is no longer apart-able (bytes already fed): the reception then
    /// keeps its whole hash and checks it itself.
    pub fn start(reception: &mut Reception) -> Option<Beside> {
        let (queue, batches) = mpsc::sync_channel::<Vec<Bytes>>(IN_FLIGHT);
        let (hand, handed) = mpsc::sync_channel::<WholeHash>(1);
        let thread = std::thread::Builder::new()
            .name("isogate-whole".into())
            .spawn(move || {
                let mut whole = handed.recv().ok()?;
                for batch in batches {
                    for b in &batch {
                        whole.update(b);
                    }
                }
                Some(whole)
            })
            .ok()?;
        // without the hash handed over, the thread ends at once with nothing
        let whole = reception.take_whole()?;
        if let Err(mpsc::SendError(whole)) = hand.send(whole) {
            // the thread is gone already: the reception hashes whole itself again
            reception.put_whole(whole);
            return None;
        }
        Some(Beside {
            batch: Vec::new(),
            batched: 0,
            queue: Some(queue),
            broken: false,
            thread,
        })
    }

    /// Takes the next bytes, the same ones the reception was fed. `false` when the thread
    /// is gone or the queue closed (it cannot give a hash of them: the object is not
    /// verified).
    pub fn write(&mut self, bytes: &Bytes) -> bool {
        if self.queue.is_none() || self.broken {
            self.broken = true;
            return false;
        }
        self.batched += bytes.len();
        self.batch.push(bytes.clone());
        if self.batched < BATCH {
            return true;
        }
        self.batched = 0;
        self.flush()
    }

    /// Sends the gathered batch to the thread; `false` (and broken for good) when it cannot.
    fn flush(&mut self) -> bool {
        let batch = std::mem::take(&mut self.batch);
        if batch.is_empty() {
            return !self.broken;
        }
        let sent = self.queue.as_ref().is_some_and(|q| q.send(batch).is_ok());
        if !sent {
            self.broken = true;
        }
        sent
    }

    /// Every byte was taken: the last batch goes to the thread and its queue closes, so the
    /// thread hashes what is queued and ends, letting the link's buffers go before the
    /// object waits to land. Later bytes are refused ([`Beside::write`]: `false`).
    pub fn close(&mut self) {
        self.flush();
        self.queue = None;
    }

    /// Every byte was taken: the whole hash of them all, to give to
    /// [`Reception::finish_with`], or `None` when the thread failed.
    pub fn finish(mut self) -> Option<WholeHash> {
        self.close();
        if self.broken {
            return None;
        }
        self.thread.join().ok().flatten()
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

    #[test]
    fn the_hash_beside_verifies_the_same_bytes_in_any_steps() {
        let data = content(5 << 20);
        for step in [1000usize, 64 << 10, 300 << 10, 5 << 20] {
            let mut r = reception(&data);
            let mut beside = Beside::start(&mut r).unwrap();
            for i in (0..data.len()).step_by(step) {
                let piece = data.slice(i..(i + step).min(data.len()));
                r.feed(&piece).unwrap();
                assert!(beside.write(&piece));
            }
            let whole = beside.finish().unwrap();
            r.finish_with(whole).unwrap();
        }
        // closed when the last byte is in, finished later: the same hash, and no byte
        // is taken after the close
        let mut r = reception(&data);
        let mut beside = Beside::start(&mut r).unwrap();
        r.feed(&data).unwrap();
        assert!(beside.write(&data));
        beside.close();
        assert!(!beside.write(&data.slice(..1)));
        assert!(
            beside.finish().is_none(),
            "a byte after the close breaks it"
        );
        let mut r = reception(&data);
        let mut beside = Beside::start(&mut r).unwrap();
        r.feed(&data).unwrap();
        assert!(beside.write(&data));
        beside.close();
        r.finish_with(beside.finish().unwrap()).unwrap();
    }

    #[test]
    fn a_byte_missed_by_the_thread_is_a_content_refusal() {
        let data = content(5 << 20);
        let mut r = reception(&data);
        let mut beside = Beside::start(&mut r).unwrap();
        r.feed(&data).unwrap();
        // the thread misses the last byte: the reception refuses what it did not see hashed
        assert!(beside.write(&data.slice(..data.len() - 1)));
        let whole = beside.finish().unwrap();
        assert_eq!(
            r.finish_with(whole).unwrap_err().reason,
            Reason::ContentHash
        );
        // and a reception whose hash went to a thread cannot end without it
        let mut r = reception(&data);
        let beside = Beside::start(&mut r).unwrap();
        r.feed(&data).unwrap();
        drop(beside);
        assert_eq!(r.finish().unwrap_err().reason, Reason::ContentHash);
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
