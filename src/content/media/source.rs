//! The one buffered, forward-only view of the input every media walker reads through: it
//! peeks up to [`CHUNK`] bytes, consumes, skips payloads by reading them into the same
//! buffer, and counts the absolute offset.
//!
//! ```text
//!  input ─► [ buf: CHUNK bytes │ start .. end ] ─► peek / consume / need / skip
//!                               pos = offset of buf[start] in the file
//! ```

use super::{CHUNK, Flaw, broken};
use std::io::{self, Read};

/// A forward-only reader with a fixed buffer of [`CHUNK`] bytes.
pub(super) struct Source<'a> {
    inner: &'a mut dyn Read,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    pos: u64,
    eof: bool,
}

impl<'a> Source<'a> {
    /// A source over `inner`, positioned at offset 0.
    pub(super) fn new(inner: &'a mut dyn Read) -> Source<'a> {
        Source {
            inner,
            buf: vec![0; CHUNK].into_boxed_slice(),
            start: 0,
            end: 0,
            pos: 0,
            eof: false,
        }
    }

    /// Offset of the next unread byte from the start of the input.
    pub(super) fn pos(&self) -> u64 {
        self.pos
    }

    /// The next bytes, at least `n` (at most [`CHUNK`]) unless the input ends first; fewer
    /// than `n` means the input ends there. Nothing is consumed.
    pub(super) fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        let n = n.min(CHUNK);
        if self.end - self.start < n && !self.eof {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            while self.end < n {
                let Some(room) = self.buf.get_mut(self.end..) else {
                    break;
                };
                match self.inner.read(room) {
                    Ok(0) => {
                        self.eof = true;
                        break;
                    }
                    Ok(got) => self.end += got,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(self.buf.get(self.start..self.end).unwrap_or_default())
    }

    /// Drops `n` bytes already peeked (at most what is buffered).
    pub(super) fn consume(&mut self, n: usize) {
        let n = n.min(self.end - self.start);
        self.start += n;
        self.pos += n as u64;
    }

    /// Whether the input has no byte left.
    pub(super) fn at_end(&mut self) -> io::Result<bool> {
        Ok(self.peek(1)?.is_empty())
    }

    /// The next `N` bytes (N ≤ [`CHUNK`]), consumed; `None` when the input ends first.
    pub(super) fn array<const N: usize>(&mut self) -> io::Result<Option<[u8; N]>> {
        let got = self.peek(N)?;
        let Some(bytes) = got.get(..N) else {
            return Ok(None);
        };
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        self.consume(N);
        Ok(Some(out))
    }

    /// The next `N` bytes, or a `Broken` flaw saying that `what` is cut short.
    pub(super) fn need<const N: usize>(&mut self, what: &str) -> Result<[u8; N], Flaw> {
        let at = self.pos;
        self.array::<N>()?
            .ok_or_else(|| broken(format!("{what} at offset {at} is cut short")))
    }

    /// Reads `n` bytes into a new buffer, `n` capped by the caller with a documented
    /// constant; `None` when the input ends first.
    pub(super) fn bytes(&mut self, n: usize) -> io::Result<Option<Vec<u8>>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let want = n - out.len();
            let got = self.peek(want)?;
            if got.is_empty() {
                return Ok(None);
            }
            let take = got.len().min(want);
            out.extend_from_slice(got.get(..take).unwrap_or_default());
            self.consume(take);
        }
        Ok(Some(out))
    }

    /// Skips `n` bytes; returns how many were skipped (fewer when the input ends).
    pub(super) fn skip(&mut self, n: u64) -> io::Result<u64> {
        self.each(n, |_| true).map(|(done, _)| done)
    }

    /// Skips `n` bytes, or a `Broken` flaw saying that `what` is cut short.
    pub(super) fn skip_all(&mut self, n: u64, what: &str) -> Result<(), Flaw> {
        let at = self.pos;
        if self.skip(n)? < n {
            return Err(broken(format!(
                "{what} at offset {at} ({n} bytes) is cut short by the end of the file"
            )));
        }
        Ok(())
    }

    /// Hands the next `n` bytes (or up to the end of the input, when `n` is `u64::MAX`) to
    /// `f` piece by piece, consuming them; stops early when `f` says false. Returns the bytes
    /// consumed and whether `f` went on to the last.
    pub(super) fn each(
        &mut self,
        n: u64,
        mut f: impl FnMut(&[u8]) -> bool,
    ) -> io::Result<(u64, bool)> {
        let mut done = 0u64;
        while done < n {
            let want = usize::try_from(n - done).unwrap_or(CHUNK).min(CHUNK);
            let got = self.peek(want)?;
            if got.is_empty() {
                break;
            }
            let take = got.len().min(want);
            let piece = got.get(..take).unwrap_or_default();
            let go_on = f(piece);
            self.consume(take);
            done += take as u64;
            if !go_on {
                return Ok((done, false));
            }
        }
        Ok((done, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeks_across_refills_and_counts_offsets() {
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut input = &data[..];
        let mut src = Source::new(&mut input);
        assert_eq!(src.skip(CHUNK as u64 - 3).unwrap(), CHUNK as u64 - 3);
        let eight = src.array::<8>().unwrap().unwrap();
        assert_eq!(eight[0], (CHUNK - 3) as u8);
        assert_eq!(src.pos(), CHUNK as u64 + 5);
        assert_eq!(src.skip(1 << 30).unwrap(), 200_000 - CHUNK as u64 - 5);
        assert!(src.at_end().unwrap());
        assert!(src.need::<1>("x").is_err());
    }
}
