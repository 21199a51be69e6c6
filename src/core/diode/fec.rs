//! Forward error correction for the diode: RaptorQ (RFC 6330, via the `raptorq`
//! crate) over blocks of K source symbols of T bytes. Owns block encoding on the
//! sending side (source symbols go out as-is, repair symbols are computed here),
//! and on the receiving side the per-block [`Assembler`] and the bounded
//! reassembly [`Window`] that gives a block up when it falls out of the window or
//! times out, and hands blocks on strictly in order.
//!
//! Each block is coded on its own as RaptorQ source block 0 of an object of
//! exactly K·T bytes: the block number lives in the datagram header, not in the
//! 8-bit RaptorQ source block number. Every value given to `raptorq` is checked
//! first, so none of its internal assertions can fire on wire input.

use std::collections::VecDeque;
use std::sync::Arc;

use raptorq::{
    EncodingPacket, ObjectTransmissionInformation, PayloadId, SourceBlockDecoder,
    SourceBlockEncoder,
};
use thiserror::Error;

use super::wire::{MAX_ESI, MAX_SOURCE_SYMBOLS, MIN_SYMBOL_SIZE, SYMBOL_ALIGN};

/// Repair symbols stored beyond K per block, for the rare failed decode at
/// exactly K symbols. Further repair symbols are dropped as unneeded.
pub const REPAIR_SLACK: usize = 4;

/// Why a block could not be coded.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum FecError {
    /// The symbol size is below the minimum or misaligned.
    #[error("symbol size {0} is below the minimum or not a multiple of 8")]
    SymbolSize(u16),
    /// The block is not a whole number of symbols.
    #[error("block of {len} bytes is not a whole number of {t}-byte symbols")]
    BlockLength {
        /// Block length.
        len: usize,
        /// Symbol size.
        t: u16,
    },
    /// The block has no symbols or more than RFC 6330 allows.
    #[error("{0} source symbols per block is out of range")]
    SymbolCount(usize),
    /// More repair symbols than 24-bit symbol ids can number.
    #[error("{0} repair symbols is too many")]
    RepairCount(u32),
    /// The coder computing a block's repair symbols elsewhere stopped without them.
    #[error("the repair coder stopped before the block's repair symbols were ready")]
    CoderStopped,
}

/// Where closed blocks' repair symbols are computed when not on the sender's own thread:
/// the shell hands the sender one ([`super::Sender::set_coder`]) that computes them
/// elsewhere, on worker threads, while the block's source symbols go out. The symbols must
/// be [`encode_repair`]'s, byte for byte: only where and when they are computed differs.
pub trait RepairCoder: Send + std::fmt::Debug {
    /// Starts computing `repair` repair symbols of `block` (K·T bytes, T = `t` bytes per
    /// symbol), as [`encode_repair`] would.
    fn start(&self, block: Arc<Vec<u8>>, t: u16, repair: u32) -> Box<dyn RepairJob>;
}

/// A block's repair symbols being computed by a [`RepairCoder`].
pub trait RepairJob: Send + std::fmt::Debug {
    /// Waits for them: [`encode_repair`]'s result, or [`FecError::CoderStopped`].
    fn wait(self: Box<Self>) -> Result<Vec<Vec<u8>>, FecError>;
}

/// A block's repair symbols: computed, or on their way from a [`RepairCoder`].
#[derive(Debug)]
pub enum Repairs {
    /// Computed.
    Ready(Vec<Vec<u8>>),
    /// Being computed elsewhere.
    Coming(Box<dyn RepairJob>),
}

impl Repairs {
    /// The symbols, waiting for them the first time if they are still coming.
    ///
    /// # Errors
    /// As [`encode_repair`], or [`FecError::CoderStopped`].
    pub fn get(&mut self) -> Result<&[Vec<u8>], FecError> {
        if let Repairs::Coming(_) = self
            && let Repairs::Coming(job) = std::mem::replace(self, Repairs::Ready(Vec::new()))
        {
            *self = Repairs::Ready(job.wait()?);
        }
        match self {
            Repairs::Ready(r) => Ok(r),
            Repairs::Coming(_) => Err(FecError::CoderStopped),
        }
    }
}

/// Number of repair symbols for a block of `k` source symbols: `ceil(k·ratio) + extra`.
pub fn repair_count(k: u16, ratio: f64, extra: u16) -> u32 {
    let scaled = (f64::from(k) * ratio).ceil();
    // The ratio is validated to 0..=4, so this stays far inside u32.
    let scaled = if scaled.is_finite() && scaled > 0.0 {
        scaled as u32
    } else {
        0
    };
    scaled.saturating_add(u32::from(extra))
}

fn oti(k: u16, t: u16) -> Result<ObjectTransmissionInformation, FecError> {
    if t < MIN_SYMBOL_SIZE || !t.is_multiple_of(SYMBOL_ALIGN) {
        return Err(FecError::SymbolSize(t));
    }
    if k == 0 || k > MAX_SOURCE_SYMBOLS {
        return Err(FecError::SymbolCount(usize::from(k)));
    }
    let len = u64::from(k) * u64::from(t);
    // One source block, one sub-block, alignment 8: valid for any checked k and t.
    Ok(ObjectTransmissionInformation::new(
        len,
        t,
        1,
        1,
        SYMBOL_ALIGN as u8,
    ))
}

/// Computes `repair` repair symbols (ids K, K+1, …) of a block of K·T bytes.
pub fn encode_repair(block: &[u8], t: u16, repair: u32) -> Result<Vec<Vec<u8>>, FecError> {
    if t == 0 || !block.len().is_multiple_of(usize::from(t)) {
        return Err(FecError::BlockLength {
            len: block.len(),
            t,
        });
    }
    let k = block.len() / usize::from(t);
    let k16 = u16::try_from(k).map_err(|_| FecError::SymbolCount(k))?;
    let info = oti(k16, t)?;
    if u64::from(repair) + u64::from(k16) > u64::from(MAX_ESI) {
        return Err(FecError::RepairCount(repair));
    }
    if repair == 0 {
        return Ok(Vec::new());
    }
    let encoder = SourceBlockEncoder::new(0, &info, block);
    Ok(encoder
        .repair_packets(0, repair)
        .into_iter()
        .map(|p| p.split().1)
        .collect())
}

/// What [`Assembler::add`] did with a symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Stored; the block may now be complete.
    Stored,
    /// Already had it, or enough symbols are stored already.
    Unneeded,
    /// It does not belong to this block (size or id out of range).
    Mismatch,
}

/// A recovered block.
#[derive(Debug)]
pub struct Recovered {
    /// The block's K·T bytes.
    pub bytes: Vec<u8>,
    /// Repair symbols that stood in for lost source symbols (0: no decoding).
    pub repair_used: u32,
}

/// Collects the symbols of one block until it can be recovered. Source symbols
/// are written straight into place, so a block whose source symbols all arrive
/// needs no decoding at all.
#[derive(Debug)]
pub struct Assembler {
    k: u16,
    t: u16,
    buf: Vec<u8>,
    have: Vec<bool>,
    sources: usize,
    repair: Vec<(u32, Vec<u8>)>,
    tried_at: usize,
}

impl Assembler {
    /// A block of `k` symbols of `t` bytes (both already checked by the wire codec).
    pub fn new(k: u16, t: u16) -> Self {
        let k_us = usize::from(k);
        Self {
            k,
            t,
            buf: vec![0u8; k_us * usize::from(t)],
            have: vec![false; k_us],
            sources: 0,
            repair: Vec::new(),
            tried_at: 0,
        }
    }

    /// Whether this assembler is for blocks of this shape.
    pub fn matches(&self, k: u16, t: u16) -> bool {
        self.k == k && self.t == t
    }

    /// Bytes held.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len() + self.repair.len() * usize::from(self.t)
    }

    /// Adds one symbol.
    pub fn add(&mut self, esi: u32, data: &[u8]) -> Added {
        let t = usize::from(self.t);
        if data.len() != t {
            return Added::Mismatch;
        }
        let k = usize::from(self.k);
        match usize::try_from(esi) {
            Ok(i) if i < k => {
                if self.have[i] {
                    return Added::Unneeded;
                }
                self.buf[i * t..(i + 1) * t].copy_from_slice(data);
                self.have[i] = true;
                self.sources += 1;
                Added::Stored
            }
            Ok(_) => {
                if self.sources + self.repair.len() >= k + REPAIR_SLACK
                    || self.repair.iter().any(|(e, _)| *e == esi)
                {
                    return Added::Unneeded;
                }
                self.repair.push((esi, data.to_vec()));
                Added::Stored
            }
            Err(_) => Added::Mismatch,
        }
    }

    /// Recovers the block if enough symbols are present. A failed decode is
    /// retried only once another symbol has arrived.
    pub fn try_recover(&mut self) -> Option<Recovered> {
        let k = usize::from(self.k);
        if self.sources == k {
            return Some(Recovered {
                bytes: std::mem::take(&mut self.buf),
                repair_used: 0,
            });
        }
        let count = self.sources + self.repair.len();
        if count < k || count <= self.tried_at {
            return None;
        }
        self.tried_at = count;
        let info = oti(self.k, self.t).ok()?;
        let t = usize::from(self.t);
        let mut decoder = SourceBlockDecoder::new(0, &info, info.transfer_length());
        let mut packets = Vec::with_capacity(count);
        for (i, present) in self.have.iter().enumerate() {
            if *present {
                // i < k <= MAX_SOURCE_SYMBOLS, far below the 24-bit limit.
                packets.push(EncodingPacket::new(
                    PayloadId::new(0, i as u32),
                    self.buf[i * t..(i + 1) * t].to_vec(),
                ));
            }
        }
        for (esi, data) in &self.repair {
            packets.push(EncodingPacket::new(PayloadId::new(0, *esi), data.clone()));
        }
        let bytes = decoder.decode(packets)?;
        if bytes.len() != self.buf.len() {
            return None;
        }
        let repair_used = (k - self.sources) as u32;
        self.buf = Vec::new();
        self.repair = Vec::new();
        Some(Recovered { bytes, repair_used })
    }
}

/// What the window hands on, strictly in block order.
#[derive(Debug)]
pub enum Delivery {
    /// The recovered bytes of a block.
    Block {
        /// Block number.
        block: u64,
        /// Its K·T bytes.
        bytes: Vec<u8>,
        /// Repair symbols used to recover it (0: all source symbols arrived).
        repair_used: u32,
    },
    /// `count` consecutive blocks from `first` were given up.
    Lost {
        /// First block given up.
        first: u64,
        /// How many.
        count: u64,
    },
}

#[derive(Debug)]
enum SlotState {
    /// Known to exist (a later block or a heartbeat said so); no symbol yet.
    Gap,
    /// Collecting symbols.
    Collecting(Assembler),
    /// Recovered, waiting for an earlier block.
    Ready(Vec<u8>, u32),
}

#[derive(Debug)]
struct Slot {
    last_activity: u64,
    state: SlotState,
}

/// What [`Window::symbol`] did with a symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolOutcome {
    /// For a block already delivered or given up.
    Stale,
    /// Stored, block not yet recovered.
    Stored,
    /// Not needed (duplicate id or block already recovered).
    Unneeded,
    /// Its K or T differ from the block's other symbols.
    Mismatch,
    /// The block was recovered with this symbol.
    Recovered,
}

/// The receiver's bounded reassembly window: at most `capacity` consecutive
/// blocks are held (collecting, or recovered and waiting for an earlier one).
/// A symbol for a block beyond the window pushes the oldest blocks out; a block
/// with no new symbol for `timeout_ms` is given up when it is the oldest.
#[derive(Debug)]
pub struct Window {
    capacity: usize,
    timeout_ms: u64,
    base: Option<u64>,
    slots: VecDeque<Slot>,
    out: VecDeque<Delivery>,
    buffered: usize,
    peak: usize,
}

impl Window {
    /// An empty window of `capacity` blocks (at least 1).
    pub fn new(capacity: usize, timeout_ms: u64) -> Self {
        Self {
            capacity: capacity.max(1),
            timeout_ms,
            base: None,
            slots: VecDeque::new(),
            out: VecDeque::new(),
            buffered: 0,
            peak: 0,
        }
    }

    /// Forgets every block (a new session), without reporting any loss.
    pub fn reset(&mut self) {
        self.base = None;
        self.slots.clear();
        self.out.clear();
        self.buffered = 0;
    }

    /// Bytes held now (collecting buffers, stored repair symbols, recovered blocks).
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// The most bytes ever held at once.
    pub fn peak_bytes(&self) -> usize {
        self.peak
    }

    /// The next undelivered block number, once the window has started.
    pub fn next_block(&self) -> Option<u64> {
        self.base
    }

    /// The next delivery, in block order.
    pub fn pop_delivery(&mut self) -> Option<Delivery> {
        self.out.pop_front()
    }

    /// When the oldest pending block times out, if any block is pending.
    pub fn next_deadline(&self) -> Option<u64> {
        self.slots
            .front()
            .map(|s| s.last_activity.saturating_add(self.timeout_ms))
    }

    fn recount(&mut self) {
        self.buffered = self
            .slots
            .iter()
            .map(|s| match &s.state {
                SlotState::Gap => 0,
                SlotState::Collecting(a) => a.buffered_bytes(),
                SlotState::Ready(b, _) => b.len(),
            })
            .sum();
        self.peak = self.peak.max(self.buffered);
    }

    fn push_lost(&mut self, first: u64, count: u64) {
        if count == 0 {
            return;
        }
        if let Some(Delivery::Lost { first: f, count: c }) = self.out.back_mut()
            && f.saturating_add(*c) == first
        {
            *c = c.saturating_add(count);
            return;
        }
        self.out.push_back(Delivery::Lost { first, count });
    }

    fn pop_front_slot(&mut self) {
        let Some(base) = self.base else { return };
        match self.slots.pop_front() {
            Some(Slot {
                state: SlotState::Ready(bytes, repair_used),
                ..
            }) => {
                self.out.push_back(Delivery::Block {
                    block: base,
                    bytes,
                    repair_used,
                });
            }
            Some(_) | None => self.push_lost(base, 1),
        }
        self.base = Some(base.saturating_add(1));
    }

    fn deliver_ready(&mut self) {
        while matches!(
            self.slots.front(),
            Some(Slot {
                state: SlotState::Ready(..),
                ..
            })
        ) {
            self.pop_front_slot();
        }
    }

    /// Gives up blocks until `new_base` is the oldest block.
    fn advance_to(&mut self, new_base: u64) {
        while let Some(base) = self.base {
            if base >= new_base {
                break;
            }
            if self.slots.is_empty() {
                self.push_lost(base, new_base - base);
                self.base = Some(new_base);
                break;
            }
            self.pop_front_slot();
        }
    }

    /// Makes sure a slot exists for `block` (and for every block before it),
    /// pushing the oldest out as needed. Returns its index, or `None` if stale.
    fn slot_for(&mut self, now: u64, block: u64) -> Option<usize> {
        let base = *self.base.get_or_insert(block);
        if block < base {
            return None;
        }
        let cap = self.capacity as u64;
        if block - base >= cap {
            self.advance_to(block - cap + 1);
        }
        let base = self.base?;
        let idx = usize::try_from(block - base).ok()?;
        while self.slots.len() <= idx {
            self.slots.push_back(Slot {
                last_activity: now,
                state: SlotState::Gap,
            });
        }
        Some(idx)
    }

    /// Takes one symbol of block `block` (K = `k`, T = `t`).
    pub fn symbol(
        &mut self,
        now: u64,
        block: u64,
        k: u16,
        t: u16,
        esi: u32,
        data: &[u8],
    ) -> SymbolOutcome {
        let Some(idx) = self.slot_for(now, block) else {
            return SymbolOutcome::Stale;
        };
        let outcome = match self.slots.get_mut(idx) {
            None => SymbolOutcome::Stale,
            Some(slot) => {
                if matches!(slot.state, SlotState::Gap) {
                    slot.state = SlotState::Collecting(Assembler::new(k, t));
                }
                match &mut slot.state {
                    SlotState::Collecting(asm) if !asm.matches(k, t) => SymbolOutcome::Mismatch,
                    SlotState::Collecting(asm) => match asm.add(esi, data) {
                        Added::Mismatch => SymbolOutcome::Mismatch,
                        Added::Unneeded => SymbolOutcome::Unneeded,
                        Added::Stored => {
                            slot.last_activity = now;
                            match asm.try_recover() {
                                Some(r) => {
                                    slot.state = SlotState::Ready(r.bytes, r.repair_used);
                                    SymbolOutcome::Recovered
                                }
                                None => SymbolOutcome::Stored,
                            }
                        }
                    },
                    SlotState::Ready(..) | SlotState::Gap => SymbolOutcome::Unneeded,
                }
            }
        };
        self.recount();
        self.deliver_ready();
        self.recount();
        outcome
    }

    /// The sender says `blocks_sent` blocks exist: blocks below it that never
    /// showed up become known gaps (and time out like any pending block).
    pub fn note_sent(&mut self, now: u64, blocks_sent: u64) {
        if blocks_sent == 0 {
            return;
        }
        match self.base {
            // A fresh receiver starts with the next block the sender makes.
            None => self.base = Some(blocks_sent),
            Some(_) => {
                let _ = self.slot_for(now, blocks_sent - 1);
                self.deliver_ready();
                self.recount();
            }
        }
    }

    /// Gives up the oldest blocks whose deadline has passed.
    pub fn expire(&mut self, now: u64) {
        while let Some(deadline) = self.next_deadline() {
            if deadline > now {
                break;
            }
            self.pop_front_slot();
            self.deliver_ready();
        }
        self.recount();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(k: usize, t: usize) -> Vec<u8> {
        (0..k * t).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn all_sources_need_no_decoding() {
        let data = block(10, 64);
        let mut a = Assembler::new(10, 64);
        for i in 0..10 {
            assert_eq!(
                a.add(i, &data[i as usize * 64..(i as usize + 1) * 64]),
                Added::Stored
            );
        }
        let r = a.try_recover().unwrap();
        assert_eq!(r.repair_used, 0);
        assert_eq!(r.bytes, data);
    }

    #[test]
    fn repair_fills_losses() {
        let data = block(40, 128);
        let repair = encode_repair(&data, 128, 8).unwrap();
        let mut a = Assembler::new(40, 128);
        for i in (0..40).filter(|i| i % 7 != 3) {
            a.add(i, &data[i as usize * 128..(i as usize + 1) * 128]);
        }
        assert!(a.try_recover().is_none());
        let mut got = None;
        for (j, r) in repair.iter().enumerate() {
            assert_eq!(a.add(40 + j as u32, r), Added::Stored);
            if let Some(x) = a.try_recover() {
                got = Some(x);
                break;
            }
        }
        let r = got.unwrap();
        assert_eq!(r.bytes, data);
        assert_eq!(r.repair_used, 6);
    }

    #[test]
    fn bad_shapes_rejected() {
        assert_eq!(
            encode_repair(&[0u8; 100], 64, 1),
            Err(FecError::BlockLength { len: 100, t: 64 })
        );
        assert_eq!(
            encode_repair(&[0u8; 60], 60, 1),
            Err(FecError::SymbolSize(60))
        );
        assert_eq!(encode_repair(&[], 64, 1), Err(FecError::SymbolCount(0)));
        let mut a = Assembler::new(2, 64);
        assert_eq!(a.add(0, &[0u8; 63]), Added::Mismatch);
    }

    #[test]
    fn repair_count_rounds_up() {
        assert_eq!(repair_count(512, 0.1, 2), 54);
        assert_eq!(repair_count(3, 0.1, 2), 3);
        assert_eq!(repair_count(3, 0.0, 0), 0);
    }

    #[test]
    fn window_orders_and_gives_up() {
        let mut w = Window::new(2, 100);
        let s = vec![1u8; 64];
        // Block 0 half done, block 1 complete: nothing delivered yet.
        assert_eq!(w.symbol(0, 0, 2, 64, 0, &s), SymbolOutcome::Stored);
        assert_eq!(w.symbol(0, 1, 1, 64, 0, &s), SymbolOutcome::Recovered);
        assert!(w.pop_delivery().is_none());
        // Block 2 pushes block 0 out.
        assert_eq!(w.symbol(1, 2, 1, 64, 0, &s), SymbolOutcome::Recovered);
        assert!(matches!(
            w.pop_delivery(),
            Some(Delivery::Lost { first: 0, count: 1 })
        ));
        assert!(matches!(
            w.pop_delivery(),
            Some(Delivery::Block { block: 1, .. })
        ));
        assert!(matches!(
            w.pop_delivery(),
            Some(Delivery::Block { block: 2, .. })
        ));
        assert_eq!(w.symbol(1, 0, 2, 64, 1, &s), SymbolOutcome::Stale);
        // A far jump reports the whole gap at once.
        assert_eq!(w.symbol(2, 1_000_000, 2, 64, 0, &s), SymbolOutcome::Stored);
        assert!(matches!(
            w.pop_delivery(),
            Some(Delivery::Lost {
                first: 3,
                count: 999_996
            })
        ));
        // Timeout gives up the pending block.
        w.expire(50);
        assert!(w.pop_delivery().is_none());
        w.expire(102);
        assert!(matches!(
            w.pop_delivery(),
            Some(Delivery::Lost {
                first: 999_999,
                count: 2
            })
        ));
        assert_eq!(w.buffered_bytes(), 0);
    }
}
