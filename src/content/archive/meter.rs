//! Metered reading: every byte of an entry counted against the object's expanded-bytes limit
//! and the entry's expansion ratio as it is read, not taken on trust from the headers; a limit
//! crossed is an io::Error carrying the refusal, which `walk` turns back into the verdict.

use super::{Budget, Limits, RATIO_FLOOR, Shared};
use crate::core::reason::{Reason, Refusal};
use std::cell::Cell;
use std::fmt;
use std::io::{self, Read};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The io::Error a metered reader fails with once a limit is crossed.
#[derive(Debug)]
pub(super) struct LimitHit(pub(super) Refusal);

impl fmt::Display for LimitHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for LimitHit {}

/// Where the compressed size of an entry comes from, for the ratio check.
pub(super) enum Packed {
    /// Not compressed (tar members): no ratio check.
    Same,
    /// Known from the archive (zip: the entry's compressed size).
    Fixed(u64),
    /// Counted as the decompressor consumes its input (gzip).
    Counted(Rc<Cell<u64>>),
}

/// Counts expanded bytes of one entry against the budget and the ratio limit as they are read.
pub(super) struct Meter<R> {
    /// The reader of the expanded bytes.
    pub(super) inner: R,
    shared: Arc<Shared>,
    limits: Limits,
    expanded: u64,
    packed: Packed,
}

impl<R: Read> Meter<R> {
    /// Meters `inner` against `budget`; `packed` gives the compressed size for the ratio.
    pub(super) fn new(inner: R, budget: &Budget, packed: Packed) -> Meter<R> {
        Meter {
            inner,
            shared: Arc::clone(&budget.shared),
            limits: budget.limits,
            expanded: 0,
            packed,
        }
    }

    /// Records a limit crossed and returns the error that carries the standing refusal.
    fn hit(&self, detail: String) -> io::Error {
        let refusal = self.shared.trip(Refusal::new(Reason::ArchiveLimit, detail));
        io::Error::other(LimitHit(refusal))
    }
}

impl<R: Read> Read for Meter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(refusal) = self.shared.tripped() {
            return Err(io::Error::other(LimitHit(refusal)));
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            return Ok(0);
        }
        let n64 = n as u64;
        self.expanded = self.expanded.saturating_add(n64);
        let total = self
            .shared
            .expanded
            .fetch_add(n64, Ordering::SeqCst)
            .saturating_add(n64);
        if total > self.limits.max_expanded_bytes {
            return Err(self.hit(format!(
                "archive expands to more than {} bytes",
                self.limits.max_expanded_bytes
            )));
        }
        let packed = match &self.packed {
            Packed::Same => None,
            Packed::Fixed(n) => Some(*n),
            Packed::Counted(c) => Some(c.get()),
        };
        if let Some(packed) = packed
            && self.expanded >= RATIO_FLOOR
            && self.expanded > self.limits.max_ratio.saturating_mul(packed.max(1))
        {
            return Err(self.hit(format!(
                "archive entry expands more than {} times",
                self.limits.max_ratio
            )));
        }
        Ok(n)
    }
}

/// Counts the bytes a decompressor takes from its input.
pub(super) struct Counting<R> {
    /// The compressed input.
    pub(super) inner: R,
    /// Bytes taken so far.
    pub(super) count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get().saturating_add(n as u64));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{limits, understate, zeros_zip};
    use super::super::{Input, Kind, Visitor, walk};
    use super::*;
    use crate::content::Scan;
    use crate::core::reason::Reason;

    #[test]
    fn a_visitor_that_swallows_the_limit_error_is_still_refused() {
        struct Swallow;
        impl Visitor for Swallow {
            fn entry(&mut self, _: &str, _: u32, r: &mut dyn Read, _: &mut Budget) -> Scan {
                let _ = io::copy(r, &mut io::sink());
                Ok(Ok(()))
            }
        }
        let mut data = zeros_zip(16 << 20);
        understate(&mut data, 10);
        let mut budget = Budget::new(limits());
        let mut reader = data.as_slice();
        let verdict = walk(
            Kind::Zip,
            Input::Stream(&mut reader),
            1,
            &mut budget,
            &std::env::temp_dir(),
            &mut Swallow,
        );
        assert_eq!(verdict.unwrap().unwrap_err().reason, Reason::ArchiveLimit);
    }
}
