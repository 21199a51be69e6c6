//! The hash of an object's content as the manifest records it, of the whole and of each
//! chunk, with the pair's suite: SHA-256 (RFC 6234, through `ring`) under `default`, SM3
//! (GB/T 32905) under `gm`; read in bounded steps whatever the size.

use crate::keys::suite::{Hasher, Suite};
use std::io::{self, Read};
use std::sync::{Arc, mpsc};

/// Bytes read at a time: a larger buffer buys nothing (the hash dominates), a smaller one
/// costs a small file less.
const STEP: usize = 64 * 1024;

/// Content longer than this is hashed on two cores: the whole on a thread of its own, the
/// chunks on the caller's. Shorter content is hashed on the caller's thread alone, where a
/// thread would cost more than it saves.
const TWO_CORES_FROM: u64 = 4 << 20;

/// Read buffers on their way to the thread hashing the whole, at most (memory: two more
/// than this many times [`STEP`], with the one being hashed and the one being read).
const IN_FLIGHT: usize = 16;

/// The `suite`'s hash of the whole content and of each `chunk`-sized piece (32 bytes each),
/// reading in bounded steps of at most 64 KiB. Past its first 4 MiB the hash of the whole
/// runs on a second thread beside the chunk hashes (two passes over each byte, on two
/// cores); memory stays at most 18 steps (about 1.1 MiB). Errors: the reader's.
pub fn hash_content<R: Read>(
    r: &mut R,
    chunk: u32,
    suite: Suite,
) -> io::Result<([u8; 32], Vec<[u8; 32]>)> {
    let mut chunks = Chunks::new(chunk, suite);
    let mut total = Hasher::new(suite);
    let mut buf = vec![0u8; (chunk as usize).clamp(4096, STEP)];
    if on_this_thread(r, &mut buf, &mut total, &mut chunks, TWO_CORES_FROM)? {
        return Ok((total.finish(), chunks.finish()));
    }
    // long content: the whole is hashed on its own thread from here on; the buffers go
    // there full and come back empty, so no more than IN_FLIGHT + 2 are ever allocated
    // (IN_FLIGHT queued, one being hashed, one being read)
    let (full_tx, full_rx) = mpsc::sync_channel::<(Vec<u8>, usize)>(IN_FLIGHT);
    let (empty_tx, empty_rx) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT + 1);
    let step = buf.len();
    // where no thread can be had (a process at its limit), the caller's thread goes on alone
    let mut on_one_thread = total.clone();
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("isogate-hash".into())
            .spawn_scoped(scope, move || {
                for (b, n) in full_rx {
                    total.update(&b[..n]);
                    // the reader may have stopped: then the buffer is simply dropped
                    let _ = empty_tx.send(b);
                }
                total
            });
        let Ok(whole) = spawned else {
            on_this_thread(r, &mut buf, &mut on_one_thread, &mut chunks, u64::MAX)?;
            return Ok((on_one_thread.finish(), chunks.finish()));
        };
        let mut spare = Some(buf);
        let read = loop {
            let mut b = match spare.take() {
                Some(b) => b,
                None => empty_rx.try_recv().unwrap_or_else(|_| vec![0u8; step]),
            };
            let n = match read_some(r, &mut b) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            chunks.update(&b[..n]);
            if full_tx.send((b, n)).is_err() {
                break Err(io::Error::other("the hashing thread stopped"));
            }
        };
        drop(full_tx);
        let total = whole
            .join()
            .map_err(|_| io::Error::other("the hashing thread panicked"))?;
        read.map(|()| (total.finish(), chunks.finish()))
    })
}

/// Pieces on their way to each of [`Pushed`]'s two threads, at most: the threads share
/// each piece, so with pieces of at most 256 KiB (a copy's buffer) at most about 1.5 MiB
/// is held per object (the queued pieces, one being hashed on each thread, one handed
/// over).
const PUSHED_IN_FLIGHT: usize = 4;

/// The `suite`'s hash of the whole content and of each `chunk`-sized piece, as
/// [`hash_content`] gives them, of content handed over piece by piece by a caller that
/// reads it anyway (the copy that takes a file into the spool): the whole and the chunks
/// are hashed on two threads of their own, so that the caller only copies each piece
/// once. Memory: at most four pieces queued (shared by both threads).
pub struct Pushed {
    whole: Option<mpsc::SyncSender<Arc<[u8]>>>,
    chunks: Option<mpsc::SyncSender<Arc<[u8]>>>,
    whole_done: std::thread::JoinHandle<Hasher>,
    chunks_done: std::thread::JoinHandle<Chunks>,
    size: u64,
    failed: bool,
}

impl Pushed {
    /// Starts the two hashing threads.
    ///
    /// # Errors
    /// A thread could not be started (a process at its limit).
    pub fn start(chunk: u32, suite: Suite) -> io::Result<Pushed> {
        let (whole, whole_rx) = mpsc::sync_channel::<Arc<[u8]>>(PUSHED_IN_FLIGHT);
        let (chunks, chunks_rx) = mpsc::sync_channel::<Arc<[u8]>>(PUSHED_IN_FLIGHT);
        let whole_done = std::thread::Builder::new()
            .name("isogate-hash".into())
            .spawn(move || {
                let mut h = Hasher::new(suite);
                for piece in whole_rx {
                    h.update(&piece);
                }
                h
            })?;
        let chunks_done = std::thread::Builder::new()
            .name("isogate-hash".into())
            .spawn(move || {
                let mut c = Chunks::new(chunk, suite);
                for piece in chunks_rx {
                    c.update(&piece);
                }
                c
            })?;
        Ok(Pushed {
            whole: Some(whole),
            chunks: Some(chunks),
            whole_done,
            chunks_done,
            size: 0,
            failed: false,
        })
    }

    /// Hands over the next piece of the content (waits while a thread is four pieces
    /// behind). A thread that stopped is reported by
    /// [`Pushed::finish`].
    pub fn update(&mut self, piece: &[u8]) {
        if piece.is_empty() || self.failed {
            return;
        }
        let shared: Arc<[u8]> = Arc::from(piece);
        let sent = [&self.whole, &self.chunks].into_iter().all(|tx| {
            tx.as_ref()
                .is_some_and(|tx| tx.send(shared.clone()).is_ok())
        });
        self.failed = !sent;
        self.size += piece.len() as u64;
    }

    /// The size handed over (bytes), the hash of the whole and the chunks' hashes.
    ///
    /// # Errors
    /// A hashing thread stopped (panicked) before the end.
    pub fn finish(mut self) -> io::Result<(u64, [u8; 32], Vec<[u8; 32]>)> {
        drop(self.whole.take());
        drop(self.chunks.take());
        let whole = self.whole_done.join();
        let chunks = self.chunks_done.join();
        match (whole, chunks) {
            (Ok(w), Ok(c)) if !self.failed => Ok((self.size, w.finish(), c.finish())),
            _ => Err(io::Error::other("a hashing thread stopped")),
        }
    }
}

/// Feeds `r` to `total` and `chunks` on the caller's thread until its end (`true`) or
/// until more than `limit` bytes were read (`false`: the rest is still to be read).
fn on_this_thread<R: Read>(
    r: &mut R,
    buf: &mut [u8],
    total: &mut Hasher,
    chunks: &mut Chunks,
    limit: u64,
) -> io::Result<bool> {
    let mut read = 0u64;
    while read <= limit {
        let n = read_some(r, buf)?;
        if n == 0 {
            return Ok(true);
        }
        total.update(&buf[..n]);
        chunks.update(&buf[..n]);
        read += n as u64;
    }
    Ok(false)
}

/// The hashes of consecutive `chunk`-sized pieces of a stream fed in any steps.
struct Chunks {
    chunk: usize,
    part: Hasher,
    in_part: usize,
    done: Vec<[u8; 32]>,
}

impl Chunks {
    fn new(chunk: u32, suite: Suite) -> Chunks {
        Chunks {
            chunk: (chunk as usize).max(1),
            part: Hasher::new(suite),
            in_part: 0,
            done: Vec::new(),
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let n = (self.chunk - self.in_part).min(data.len());
            let (now, rest) = data.split_at(n);
            self.part.update(now);
            self.in_part += n;
            data = rest;
            if self.in_part == self.chunk {
                let fresh = Hasher::new(self.part.suite());
                self.done
                    .push(std::mem::replace(&mut self.part, fresh).finish());
                self.in_part = 0;
            }
        }
    }

    fn finish(mut self) -> Vec<[u8; 32]> {
        if self.in_part > 0 {
            self.done.push(self.part.finish());
        }
        self.done
    }
}

/// One read, retried when interrupted.
fn read_some(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads in uneven pieces: 1, 2, … 9 bytes, then one read of up to a whole buffer.
    struct Uneven<'a>(&'a [u8], usize);

    impl Read for Uneven<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 += 1;
            let want = if self.1.is_multiple_of(10) {
                buf.len()
            } else {
                self.1 % 10
            };
            let n = want.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn long_content_hashed_on_two_threads_matches_independent_hashes() {
        // past the two-core threshold, with a last chunk cut short
        let len = TWO_CORES_FROM as usize + 3 * 1_048_576 + 12_345;
        let data: Vec<u8> = (0..len as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for suite in Suite::ALL {
            let h = |b: &[u8]| crate::keys::suite::digest(suite, b);
            let (total, parts) = hash_content(&mut Uneven(&data, 0), 1_048_576, suite).unwrap();
            assert_eq!(total, h(&data));
            assert_eq!(parts.len(), 8);
            for (i, part) in parts.iter().enumerate() {
                let end = ((i + 1) * 1_048_576).min(len);
                assert_eq!(*part, h(&data[i * 1_048_576..end]), "chunk {i}");
            }
        }
    }

    /// Fails its read after `ok` bytes.
    struct Failing<'a>(&'a [u8], usize);

    impl Read for Failing<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.1 == 0 {
                return Err(io::Error::other("disk gone"));
            }
            let n = buf.len().min(self.1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.1 -= n;
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_read_error_on_either_side_of_the_threshold_is_returned() {
        let data = vec![7u8; 8 << 20];
        for ok in [100_000, TWO_CORES_FROM as usize + 200_000] {
            let e = hash_content(&mut Failing(&data, ok), 1_048_576, Suite::Default).unwrap_err();
            assert_eq!(e.to_string(), "disk gone");
        }
    }

    #[test]
    fn pushed_pieces_hash_as_the_content_read_whole() {
        let len = 3 * 1_048_576 + 12_345;
        let data: Vec<u8> = (0..len as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        for suite in Suite::ALL {
            let want = hash_content(&mut &data[..], 1_048_576, suite).unwrap();
            let mut p = Pushed::start(1_048_576, suite).unwrap();
            // uneven pieces, one of them empty, across the chunk boundaries
            let mut at = 0;
            for step in (0..).map(|i| [1, 0, 70_000, 262_144, 999_999][i % 5]) {
                if at == len {
                    break;
                }
                let end = (at + step).min(len);
                p.update(&data[at..end]);
                at = end;
            }
            let (size, whole, chunks) = p.finish().unwrap();
            assert_eq!(size, len as u64);
            assert_eq!((whole, chunks), want);
        }
        let (size, whole, chunks) = Pushed::start(4096, Suite::Default)
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!((size, chunks.len()), (0, 0));
        assert_eq!(whole, crate::keys::suite::digest(Suite::Default, b""));
    }

    #[test]
    fn chunk_hashes_match_independent_hashes() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        for suite in Suite::ALL {
            let (total, parts) = hash_content(&mut &data[..], 4096, suite).unwrap();
            assert_eq!(parts.len(), 3);
            let h = |b: &[u8]| crate::keys::suite::digest(suite, b);
            assert_eq!(total, h(&data));
            assert_eq!(parts[0], h(&data[..4096]));
            assert_eq!(parts[2], h(&data[8192..]));
            let (_, none) = hash_content(&mut &b""[..], 4096, suite).unwrap();
            assert!(none.is_empty());
        }
        // SM3 of "abc", GB/T 32905 appendix A example 1
        let (abc, _) = hash_content(&mut &b"abc"[..], 4096, Suite::Gm).unwrap();
        assert_eq!(
            hex::encode(abc),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
    }
}
