//! The diode sender's RaptorQ repair coding on worker threads: the core's sending thread
//! hands each closed block to the pool ([`crate::core::diode::fec::RepairCoder`]) and sends
//! its source symbols while a worker computes its repair symbols (RFC 6330, the same bytes
//! as on the sending thread). On one thread the coding was most of the sender's time: the
//! pool lets the link's rate grow with the cores.
//!
//! ```text
//!  core: close block ─► jobs (one queue) ─► isogate-fec threads: encode_repair
//!        sources go out ...                      │
//!        first repair symbol due ─► wait ◄── the block's own reply
//! ```
//!
//! Memory: a job holds its block (shared with the core, not copied) and its repair symbols
//! until the core takes them; the core has at most its interleave depth of blocks coded or
//! being coded.

use crate::core::diode::MAX_INTERLEAVE;
use crate::core::diode::fec::{self, FecError, RepairCoder, RepairJob};
use std::sync::{Arc, Mutex, mpsc};

/// One block to code, and where its repair symbols go.
struct Job {
    block: Arc<Vec<u8>>,
    t: u16,
    repair: u32,
    reply: mpsc::SyncSender<Result<Vec<Vec<u8>>, FecError>>,
}

/// Worker threads coding repair symbols; they end when the pool is dropped.
#[derive(Debug)]
pub struct Pool {
    jobs: Mutex<mpsc::Sender<Job>>,
}

/// How many workers a sender gets: one per core beside the sending thread, 1 to
/// [`MAX_INTERLEAVE`] (the core never has more blocks coding at once than its interleave
/// depth).
pub fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .clamp(1, usize::from(MAX_INTERLEAVE))
}

impl Pool {
    /// Starts `workers` threads.
    ///
    /// # Errors
    /// A thread cannot be started.
    pub fn start(workers: usize) -> std::io::Result<Pool> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..workers.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name("isogate-fec".into())
                .spawn(move || {
                    // one worker waits on the queue at a time; the lock is let go to code
                    let next = || queue.lock().ok()?.recv().ok();
                    while let Some(job) = next() {
                        let coded = fec::encode_repair(&job.block, job.t, job.repair);
                        // the core may have gone (the link stopped): nothing to hand it
                        let _ = job.reply.send(coded);
                    }
                })?;
        }
        Ok(Pool {
            jobs: Mutex::new(jobs),
        })
    }
}

/// A block's repair symbols on their way from a worker.
#[derive(Debug)]
struct Coming(mpsc::Receiver<Result<Vec<Vec<u8>>, FecError>>);

impl RepairJob for Coming {
    fn wait(self: Box<Self>) -> Result<Vec<Vec<u8>>, FecError> {
        self.0.recv().unwrap_or(Err(FecError::CoderStopped))
    }
}

impl RepairCoder for Pool {
    fn start(&self, block: Arc<Vec<u8>>, t: u16, repair: u32) -> Box<dyn RepairJob> {
        let (reply, coming) = mpsc::sync_channel(1);
        let job = Job {
            block,
            t,
            repair,
            reply,
        };
        // a pool whose workers are gone drops the job: its wait says CoderStopped
        if let Ok(jobs) = self.jobs.lock() {
            let _ = jobs.send(job);
        }
        Box::new(Coming(coming))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diode::{Sender, SenderConfig};

    fn block(k: usize, t: usize, seed: u8) -> Arc<Vec<u8>> {
        Arc::new(
            (0..k * t)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect(),
        )
    }

    #[test]
    fn the_pool_codes_the_same_symbols_as_the_sending_thread() {
        let pool = Pool::start(3).unwrap();
        let blocks: Vec<_> = (0..6).map(|i| block(64, 1024, i)).collect();
        let jobs: Vec<_> = blocks
            .iter()
            .map(|b| pool.start(b.clone(), 1024, 9))
            .collect();
        for (b, job) in blocks.iter().zip(jobs) {
            assert_eq!(job.wait().unwrap(), fec::encode_repair(b, 1024, 9).unwrap());
        }
        // a block the coder refuses says why, as on the sending thread
        let bad = pool.start(Arc::new(vec![0u8; 1000]), 1024, 9).wait();
        assert_eq!(bad, fec::encode_repair(&[0u8; 1000], 1024, 9));
        assert!(bad.is_err());
    }

    /// Every datagram a core sends over 3 MiB of content, in order, with or without
    /// the pool: they must be the same bytes.
    fn datagrams(pool: Option<Box<dyn RepairCoder>>) -> Vec<Vec<u8>> {
        let mut cfg = SenderConfig::new([7; 32], 1500);
        cfg.repair_ratio = 0.2;
        cfg.repeat_window_ms = 0;
        let mut core = Sender::new(cfg, 42, 1_000).unwrap();
        if let Some(p) = pool {
            core.set_coder(p);
        }
        let content: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
        let id = crate::core::id::ObjectId([3; 16]);
        core.enqueue(id, b"header".to_vec(), content.len() as u64)
            .unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; core.max_datagram_len()];
        let mut now = 1_000;
        for _ in 0..100_000 {
            while let Some(w) = core.wants() {
                let end = (w.offset as usize + w.max_len).min(content.len());
                core.feed(w.id, w.offset, &content[w.offset as usize..end])
                    .unwrap();
            }
            while core.poll_event().is_some() {}
            match core.poll_transmit(now, &mut buf).unwrap() {
                Some(n) => out.push(buf[..n].to_vec()),
                None if core.is_idle() => break,
                None => now += 1,
            }
        }
        out
    }

    #[test]
    fn a_sender_with_the_pool_sends_the_same_datagrams() {
        let inline = datagrams(None);
        assert!(inline.len() > 2_000, "{}", inline.len());
        assert_eq!(datagrams(Some(Box::new(Pool::start(2).unwrap()))), inline);
    }

    /// A coder that fails every block: stopped, or with one symbol short.
    #[derive(Debug)]
    struct Failing {
        short: bool,
    }

    #[derive(Debug)]
    struct Failed(Option<Vec<Vec<u8>>>);

    impl RepairJob for Failed {
        fn wait(self: Box<Self>) -> Result<Vec<Vec<u8>>, FecError> {
            self.0.ok_or(FecError::CoderStopped)
        }
    }

    impl RepairCoder for Failing {
        fn start(&self, block: Arc<Vec<u8>>, t: u16, repair: u32) -> Box<dyn RepairJob> {
            let short = self.short.then(|| {
                let mut r = fec::encode_repair(&block, t, repair).unwrap();
                r.pop();
                r
            });
            Box::new(Failed(short))
        }
    }

    #[test]
    fn a_failing_coder_has_its_blocks_coded_on_the_sending_thread() {
        let inline = datagrams(None);
        for short in [false, true] {
            assert_eq!(datagrams(Some(Box::new(Failing { short }))), inline);
        }
    }
}
