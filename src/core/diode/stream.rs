//! Live stream frames over the diode: forward error correction in small RaptorQ blocks
//! (RFC 6330, systematic, via the `raptorq` crate as in `fec.rs`) sized for a delay
//! budget rather than for throughput. Owns the layout of frames in symbols, the sending
//! side's open block ([`StreamEncoder`]) and the receiving side's bounded set of recent
//! blocks ([`StreamDecoder`]). The frames are opaque bytes here (what
//! `core::stream::frame` makes of one packet); order, lateness and duplicates are the
//! playout's business on the receiving node.
//!
//! ```text
//!  push(frame) ─► source symbol(s) at once (K = 0 on the wire: the block is still open)
//!  block closes: MAX_STREAM_SYMBOLS symbols, or delay_ms/2 after its first frame (poll)
//!            ─► ceil(K·repair_ratio) + 1 repair symbols (carrying K)
//!
//!  source symbol ─► its frame whole? ─► delivered at once
//!  repair symbols ─► K known, enough symbols ─► decode ─► the missing frames delivered
//!  a block more than WINDOW_BLOCKS behind the newest ─► forgotten
//! ```
//!
//! Symbol layout (T bytes): `frame_len u16 | piece u16 | up to T−4 bytes of the frame |
//! zero padding`, big-endian. A frame of up to T−4 bytes (the usual case: one RTP packet
//! under the MTU) is one symbol; a longer one (up to 65 507 bytes) spans `ceil(len /
//! (T−4))` consecutive symbols of one block, numbered by `piece`, and is delivered once
//! all of them are there. Every symbol says which frame it belongs to, so a lost symbol
//! never hides where the next frame starts.

use std::collections::{BTreeMap, VecDeque};

use raptorq::{EncodingPacket, ObjectTransmissionInformation, PayloadId, SourceBlockDecoder};
use thiserror::Error;

use super::ConfigError;
use super::fec::{self, FecError, REPAIR_SLACK};
use super::wire::{Body, MAX_STREAM_SYMBOLS, MIN_SYMBOL_SIZE, SYMBOL_ALIGN, StreamSymbol};

/// Bytes at the start of every stream source symbol: frame length u16, piece u16.
pub const PIECE_HEADER: usize = 4;
/// Largest frame carried (the largest UDP payload over IPv4).
pub const MAX_FRAME: usize = 65_507;
/// Repair symbols added to every block on top of `ceil(K·repair_ratio)`.
pub const REPAIR_EXTRA: u16 = 1;
/// Blocks the decoder keeps behind the newest one it has seen; older ones are forgotten.
pub const WINDOW_BLOCKS: u64 = 16;

/// Why a frame could not be sent.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum StreamError {
    /// The frame is empty or longer than [`MAX_FRAME`].
    #[error("stream frame of {0} bytes out of range 1..=65507")]
    FrameLength(usize),
    /// The frame needs more symbols of this size than one block holds.
    #[error("stream frame of {len} bytes needs more than {max} symbols of {t} bytes")]
    FrameTooLarge {
        /// Frame length in bytes.
        len: usize,
        /// Symbol size in bytes.
        t: u16,
        /// Most symbols in a block.
        max: u16,
    },
    /// The block could not be coded.
    #[error("stream block coding failed: {0}")]
    Fec(#[from] FecError),
}

/// A stream symbol ready to go: the owned form of [`StreamSymbol`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDatagram {
    /// Stream block number.
    pub block: u64,
    /// 0 on a source symbol, K on a repair symbol.
    pub source_symbols: u16,
    /// Symbol size T in bytes.
    pub symbol_size: u16,
    /// Encoding symbol id.
    pub esi: u32,
    /// The T bytes of the symbol.
    pub data: Vec<u8>,
}

impl StreamDatagram {
    /// The datagram body to encode with `wire::encode`.
    pub fn body(&self) -> Body<'_> {
        Body::Stream(StreamSymbol {
            block: self.block,
            source_symbols: self.source_symbols,
            symbol_size: self.symbol_size,
            esi: self.esi,
            data: &self.data,
        })
    }
}

/// Counters of the sending side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncoderStats {
    /// Frames pushed.
    pub frames: u64,
    /// Source symbols made.
    pub source_symbols: u64,
    /// Repair symbols made.
    pub repair_symbols: u64,
    /// Blocks closed.
    pub blocks: u64,
}

fn check_symbol_size(t: u16) -> Result<(), ConfigError> {
    if t < MIN_SYMBOL_SIZE || !t.is_multiple_of(SYMBOL_ALIGN) {
        return Err(ConfigError::SymbolSize(t));
    }
    Ok(())
}

/// Symbols of `t` bytes a frame of `len` bytes takes.
fn pieces(len: usize, t: u16) -> usize {
    len.div_ceil(usize::from(t) - PIECE_HEADER)
}

/// The sending side: one open block at a time. Each frame goes out at once as source
/// symbols; the block's repair symbols follow when it closes.
#[derive(Debug)]
pub struct StreamEncoder {
    t: u16,
    ratio: f64,
    close_after_ms: u64,
    block: u64,
    data: Vec<u8>,
    k: u16,
    opened_ms: u64,
    stats: EncoderStats,
}

impl StreamEncoder {
    /// An encoder for symbols of `symbol_size` bytes (at least 64, a multiple of 8, and
    /// fitting the MTU: the caller's check), adding `ceil(K·repair_ratio) + 1` repair
    /// symbols (ratio 0..=4) to each block, and closing a block `delay_ms / 2`
    /// milliseconds after its first frame (the other half of the delay budget is for the
    /// path and the receiver's wait).
    ///
    /// # Errors
    /// [`ConfigError::SymbolSize`] or [`ConfigError::RepairRatio`].
    pub fn new(symbol_size: u16, repair_ratio: f64, delay_ms: u64) -> Result<Self, ConfigError> {
        check_symbol_size(symbol_size)?;
        if !repair_ratio.is_finite() || !(0.0..=4.0).contains(&repair_ratio) {
            return Err(ConfigError::RepairRatio(repair_ratio));
        }
        Ok(Self {
            t: symbol_size,
            ratio: repair_ratio,
            close_after_ms: delay_ms / 2,
            block: 0,
            data: Vec::new(),
            k: 0,
            opened_ms: 0,
            stats: EncoderStats::default(),
        })
    }

    /// Counters.
    pub fn stats(&self) -> EncoderStats {
        self.stats
    }

    /// The symbol size T.
    pub fn symbol_size(&self) -> u16 {
        self.t
    }

    /// Takes one frame (1..=[`MAX_FRAME`] bytes) at `now_ms`: its source symbols, to be
    /// sent at once, then the repair symbols of the block it closed, if any (the open
    /// block was due, or had no room left for this frame, or this frame filled it).
    ///
    /// # Errors
    /// [`StreamError::FrameLength`], [`StreamError::FrameTooLarge`] (nothing is sent), or
    /// [`StreamError::Fec`] should the coder refuse a block (its frames went already).
    pub fn push(
        &mut self,
        now_ms: u64,
        frame: &[u8],
    ) -> Result<impl Iterator<Item = StreamDatagram> + use<>, StreamError> {
        let len = frame.len();
        if len == 0 || len > MAX_FRAME {
            return Err(StreamError::FrameLength(len));
        }
        let n = pieces(len, self.t);
        let max = usize::from(MAX_STREAM_SYMBOLS);
        if n > max {
            return Err(StreamError::FrameTooLarge {
                len,
                t: self.t,
                max: MAX_STREAM_SYMBOLS,
            });
        }
        let mut closed = Vec::new();
        let due = self.next_deadline().is_some_and(|d| now_ms >= d);
        if self.k > 0 && (due || usize::from(self.k) + n > max) {
            closed = self.close()?;
        }
        if self.k == 0 {
            self.opened_ms = now_ms;
        }
        let t = usize::from(self.t);
        let room = t - PIECE_HEADER;
        let mut out = Vec::with_capacity(n + closed.len());
        // len <= MAX_FRAME < 65536 and n <= 64: both fit u16
        for (piece, chunk) in frame.chunks(room).enumerate() {
            let mut sym = vec![0u8; t];
            sym[0..2].copy_from_slice(&(len as u16).to_be_bytes());
            sym[2..4].copy_from_slice(&(piece as u16).to_be_bytes());
            sym[PIECE_HEADER..PIECE_HEADER + chunk.len()].copy_from_slice(chunk);
            self.data.extend_from_slice(&sym);
            out.push(StreamDatagram {
                block: self.block,
                source_symbols: 0,
                symbol_size: self.t,
                esi: u32::from(self.k),
                data: sym,
            });
            self.k += 1;
        }
        self.stats.frames += 1;
        self.stats.source_symbols += n as u64;
        out.extend(closed);
        if self.k >= MAX_STREAM_SYMBOLS {
            out.extend(self.close()?);
        }
        Ok(out.into_iter())
    }

    /// Closes the open block if its time has come (`delay_ms / 2` after its first
    /// frame): its repair symbols, to be sent now.
    ///
    /// # Errors
    /// [`StreamError::Fec`] should the coder refuse the block (it is dropped).
    pub fn poll(
        &mut self,
        now_ms: u64,
    ) -> Result<impl Iterator<Item = StreamDatagram> + use<>, StreamError> {
        let out = match self.next_deadline() {
            Some(d) if now_ms >= d => self.close()?,
            _ => Vec::new(),
        };
        Ok(out.into_iter())
    }

    /// When the open block is due to close (ms), if one is open.
    pub fn next_deadline(&self) -> Option<u64> {
        (self.k > 0).then(|| self.opened_ms.saturating_add(self.close_after_ms))
    }

    /// Closes the open block: its repair symbols.
    fn close(&mut self) -> Result<Vec<StreamDatagram>, FecError> {
        let k = std::mem::take(&mut self.k);
        let data = std::mem::take(&mut self.data);
        let block = self.block;
        self.block += 1;
        if k == 0 {
            return Ok(Vec::new());
        }
        let repair = fec::repair_count(k, self.ratio, REPAIR_EXTRA);
        let symbols = fec::encode_repair(&data, self.t, repair)?;
        self.stats.blocks += 1;
        self.stats.repair_symbols += symbols.len() as u64;
        Ok(symbols
            .into_iter()
            .enumerate()
            .map(|(i, data)| StreamDatagram {
                block,
                source_symbols: k,
                symbol_size: self.t,
                // i < repair count, far below the 24-bit limit the codec checked
                esi: u32::from(k) + i as u32,
                data,
            })
            .collect())
    }
}

/// Counters of the receiving side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecoderStats {
    /// Frames delivered.
    pub frames: u64,
    /// Of them, frames that came out of a decoded block (a source symbol was lost).
    pub frames_recovered: u64,
    /// Blocks decoded from repair symbols.
    pub blocks_decoded: u64,
    /// Symbols for a block already forgotten.
    pub symbols_stale: u64,
    /// Symbols not needed (duplicates, or the block was whole already).
    pub symbols_unneeded: u64,
    /// Symbols that contradict their block (size, K, frame layout).
    pub symbols_malformed: u64,
}

/// One block being collected.
#[derive(Debug)]
struct Block {
    t: u16,
    k: Option<u16>,
    /// Source symbols by id (up to [`MAX_STREAM_SYMBOLS`]).
    src: Vec<Option<Vec<u8>>>,
    sources: usize,
    /// The ids of the first symbols of the frames delivered.
    delivered: Vec<bool>,
    repair: Vec<(u32, Vec<u8>)>,
    tried_at: usize,
    /// Every frame of it has been delivered.
    done: bool,
}

impl Block {
    fn new(t: u16) -> Self {
        let max = usize::from(MAX_STREAM_SYMBOLS);
        Self {
            t,
            k: None,
            src: vec![None; max],
            sources: 0,
            delivered: vec![false; max],
            repair: Vec::new(),
            tried_at: 0,
            done: false,
        }
    }

    /// The (frame length, piece) a source symbol states.
    fn header(sym: &[u8]) -> (usize, usize) {
        (
            usize::from(u16::from_be_bytes([sym[0], sym[1]])),
            usize::from(u16::from_be_bytes([sym[2], sym[3]])),
        )
    }

    /// The id of the first symbol of the frame `esi` belongs to and the number of its
    /// symbols; `None` when its header does not make sense in this block.
    fn frame_of(&self, esi: usize) -> Option<(usize, usize)> {
        let sym = self.src.get(esi)?.as_ref()?;
        let (len, piece) = Self::header(sym);
        if len == 0 || len > MAX_FRAME {
            return None;
        }
        let n = pieces(len, self.t);
        let first = esi.checked_sub(piece)?;
        let limit = self.k.map_or(usize::from(MAX_STREAM_SYMBOLS), usize::from);
        (piece < n && first + n <= limit).then_some((first, n))
    }

    /// The frame starting at `first` of `n` symbols, if all are here and agree.
    /// `Err(())`: they are here but contradict each other.
    fn assemble(&self, first: usize, n: usize) -> Option<Result<Vec<u8>, ()>> {
        let room = usize::from(self.t) - PIECE_HEADER;
        let mut frame = Vec::new();
        let mut len = 0;
        for j in 0..n {
            let sym = self.src.get(first + j)?.as_ref()?;
            let (l, piece) = Self::header(sym);
            if j == 0 {
                len = l;
                frame.reserve(len);
            }
            if l != len || piece != j {
                return Some(Err(()));
            }
            let take = (len - j * room).min(room);
            frame.extend_from_slice(&sym[PIECE_HEADER..PIECE_HEADER + take]);
        }
        Some(Ok(frame))
    }
}

/// The receiving side: collects the symbols of the last [`WINDOW_BLOCKS`] blocks,
/// delivers each frame as soon as its source symbols are in, and the frames of lost
/// symbols once their block can be decoded. Frames come out in arrival order (a
/// recovered frame after later ones): the playout puts them in order.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    blocks: BTreeMap<u64, Block>,
    /// Blocks numbered below this are forgotten.
    floor: u64,
    frames: VecDeque<Vec<u8>>,
    stats: DecoderStats,
}

impl StreamDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets every block and undelivered frame (the sender's session changed).
    pub fn reset(&mut self) {
        self.blocks.clear();
        self.floor = 0;
        self.frames.clear();
    }

    /// Counters.
    pub fn stats(&self) -> DecoderStats {
        self.stats
    }

    /// The next frame delivered, if any.
    pub fn poll_frame(&mut self) -> Option<Vec<u8>> {
        self.frames.pop_front()
    }

    /// Takes one authenticated stream symbol (its fields already checked by the wire
    /// codec: T aligned and at least 64, K and id consistent).
    pub fn symbol(&mut self, s: &StreamSymbol<'_>) {
        if s.block < self.floor {
            self.stats.symbols_stale += 1;
            return;
        }
        if s.data.len() != usize::from(s.symbol_size) {
            self.stats.symbols_malformed += 1;
            return;
        }
        let top = s.block.saturating_sub(WINDOW_BLOCKS - 1);
        if top > self.floor {
            self.floor = top;
            self.blocks = self.blocks.split_off(&top);
        }
        let block = self
            .blocks
            .entry(s.block)
            .or_insert_with(|| Block::new(s.symbol_size));
        if block.t != s.symbol_size {
            self.stats.symbols_malformed += 1;
            return;
        }
        if block.done {
            self.stats.symbols_unneeded += 1;
            return;
        }
        // the wire codec keeps ids of source symbols below MAX_STREAM_SYMBOLS
        let esi = s.esi as usize;
        if s.source_symbols == 0 {
            if block.k.is_some_and(|k| esi >= usize::from(k)) {
                self.stats.symbols_malformed += 1;
                return;
            }
            let Some(slot) = block.src.get_mut(esi) else {
                self.stats.symbols_malformed += 1;
                return;
            };
            if slot.is_some() {
                self.stats.symbols_unneeded += 1;
                return;
            }
            *slot = Some(s.data.to_vec());
            block.sources += 1;
            match block.frame_of(esi) {
                Some((first, n)) => {
                    Self::deliver(&mut self.stats, &mut self.frames, block, first, n, false)
                }
                None => self.stats.symbols_malformed += 1,
            }
        } else {
            let k = s.source_symbols;
            match block.k {
                Some(known) if known != k => {
                    self.stats.symbols_malformed += 1;
                    return;
                }
                Some(_) => {}
                None => {
                    // source symbols beyond K contradict it: dropped
                    let ku = usize::from(k);
                    for slot in block.src.iter_mut().skip(ku) {
                        if slot.take().is_some() {
                            block.sources -= 1;
                            self.stats.symbols_malformed += 1;
                        }
                    }
                    block.k = Some(k);
                }
            }
            let ku = usize::from(k);
            if block.sources + block.repair.len() >= ku + REPAIR_SLACK
                || block.repair.iter().any(|(e, _)| *e == s.esi)
            {
                self.stats.symbols_unneeded += 1;
                return;
            }
            block.repair.push((s.esi, s.data.to_vec()));
        }
        Self::try_decode(&mut self.stats, &mut self.frames, block);
    }

    /// Delivers the frame at `first` of `n` symbols if it is whole and not yet delivered.
    fn deliver(
        stats: &mut DecoderStats,
        frames: &mut VecDeque<Vec<u8>>,
        block: &mut Block,
        first: usize,
        n: usize,
        recovered: bool,
    ) {
        if block.delivered.get(first).copied().unwrap_or(true) {
            return;
        }
        match block.assemble(first, n) {
            None => {}
            Some(Err(())) => stats.symbols_malformed += 1,
            Some(Ok(frame)) => {
                block.delivered[first] = true;
                stats.frames += 1;
                if recovered {
                    stats.frames_recovered += 1;
                }
                frames.push_back(frame);
            }
        }
    }

    /// Once K is known: a block whose source symbols are all in is done; one with enough
    /// symbols is decoded and its missing frames delivered.
    fn try_decode(stats: &mut DecoderStats, frames: &mut VecDeque<Vec<u8>>, block: &mut Block) {
        let Some(k) = block.k else {
            return;
        };
        let ku = usize::from(k);
        if block.sources >= ku {
            block.done = true;
            block.repair = Vec::new();
            return;
        }
        let count = block.sources + block.repair.len();
        if count < ku || count <= block.tried_at {
            return;
        }
        block.tried_at = count;
        let t = usize::from(block.t);
        // one source block, one sub-block, alignment 8: valid for the checked K and T
        let info =
            ObjectTransmissionInformation::new((ku * t) as u64, block.t, 1, 1, SYMBOL_ALIGN as u8);
        let mut decoder = SourceBlockDecoder::new(0, &info, info.transfer_length());
        let mut packets = Vec::with_capacity(count);
        for (i, sym) in block.src.iter().enumerate().take(ku) {
            if let Some(sym) = sym {
                // i < MAX_STREAM_SYMBOLS
                packets.push(EncodingPacket::new(
                    PayloadId::new(0, i as u32),
                    sym.clone(),
                ));
            }
        }
        for (esi, data) in &block.repair {
            packets.push(EncodingPacket::new(PayloadId::new(0, *esi), data.clone()));
        }
        let Some(bytes) = decoder.decode(packets) else {
            return;
        };
        if bytes.len() != ku * t {
            stats.symbols_malformed += 1;
            return;
        }
        stats.blocks_decoded += 1;
        for (i, chunk) in bytes.chunks_exact(t).enumerate() {
            if let Some(slot @ None) = block.src.get_mut(i) {
                *slot = Some(chunk.to_vec());
            }
        }
        block.sources = ku;
        block.done = true;
        block.repair = Vec::new();
        // walk the frames of the whole block in order; deliver those not yet out
        let mut i = 0;
        while i < ku {
            match block.frame_of(i) {
                Some((first, n)) if first == i => {
                    Self::deliver(stats, frames, block, first, n, true);
                    i += n;
                }
                _ => {
                    stats.symbols_malformed += 1;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(i: u64, len: usize) -> Vec<u8> {
        let mut f = i.to_be_bytes().to_vec();
        f.extend((0..len.saturating_sub(8)).map(|j| (j as u64 ^ i) as u8));
        f.truncate(len);
        f
    }

    fn feed(dec: &mut StreamDecoder, d: &StreamDatagram) {
        let Body::Stream(s) = d.body() else {
            unreachable!()
        };
        dec.symbol(&s);
    }

    fn drain(dec: &mut StreamDecoder) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| dec.poll_frame()).collect()
    }

    #[test]
    fn refuses_bad_settings_and_frames() {
        assert_eq!(
            StreamEncoder::new(60, 0.2, 40).unwrap_err(),
            ConfigError::SymbolSize(60)
        );
        assert_eq!(
            StreamEncoder::new(1416, 5.0, 40).unwrap_err(),
            ConfigError::RepairRatio(5.0)
        );
        let mut e = StreamEncoder::new(64, 0.2, 40).unwrap();
        assert_eq!(e.push(0, &[]).err(), Some(StreamError::FrameLength(0)));
        assert_eq!(
            e.push(0, &vec![0; MAX_FRAME + 1]).err(),
            Some(StreamError::FrameLength(MAX_FRAME + 1))
        );
        // 65 symbols of 60 bytes of frame: more than a block
        assert!(matches!(
            e.push(0, &vec![0; 60 * 64 + 1]),
            Err(StreamError::FrameTooLarge { .. })
        ));
        assert_eq!(e.stats().frames, 0);
    }

    #[test]
    fn each_frame_goes_at_once_and_the_block_closes_on_time() {
        let mut e = StreamEncoder::new(1416, 0.2, 40).unwrap();
        let out: Vec<_> = e.push(100, &frame(0, 1366)).unwrap().collect();
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].block, out[0].source_symbols, out[0].esi), (0, 0, 0));
        assert_eq!(e.next_deadline(), Some(120));
        let out: Vec<_> = e.push(110, &frame(1, 200)).unwrap().collect();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].esi, 1);
        assert_eq!(e.poll(119).unwrap().count(), 0);
        let repair: Vec<_> = e.poll(120).unwrap().collect();
        // K = 2: ceil(0.4) + 1
        assert_eq!(repair.len(), 2);
        assert!(repair.iter().all(|r| r.source_symbols == 2 && r.block == 0));
        assert_eq!(e.next_deadline(), None);
        // a frame after the deadline, before any poll, closes the block first; its own
        // symbol goes before the repair symbols
        e.push(200, &frame(2, 10)).unwrap().for_each(drop);
        let out: Vec<_> = e.push(300, &frame(3, 10)).unwrap().collect();
        assert_eq!((out[0].block, out[0].esi, out[0].source_symbols), (2, 0, 0));
        assert_eq!(out.len(), 3);
        assert!(
            out[1..]
                .iter()
                .all(|r| r.block == 1 && r.source_symbols == 1)
        );
    }

    #[test]
    fn a_full_block_closes_at_once() {
        let mut e = StreamEncoder::new(64, 0.25, 1000).unwrap();
        let mut repair = 0;
        for i in 0..u64::from(MAX_STREAM_SYMBOLS) {
            for d in e.push(0, &frame(i, 60)).unwrap() {
                if d.source_symbols > 0 {
                    repair += 1;
                    assert_eq!(d.source_symbols, MAX_STREAM_SYMBOLS);
                }
            }
        }
        assert_eq!(repair, 17);
        assert_eq!(e.next_deadline(), None);
        // a frame of 3 symbols does not fit the 2 left after 62: the block closes first
        let mut e = StreamEncoder::new(64, 0.0, 1000).unwrap();
        for i in 0..62 {
            e.push(0, &frame(i, 60)).unwrap().for_each(drop);
        }
        let out: Vec<_> = e.push(0, &frame(99, 150)).unwrap().collect();
        assert_eq!(out.len(), 4);
        assert!(
            out[..3]
                .iter()
                .all(|d| d.block == 1 && d.source_symbols == 0)
        );
        assert_eq!((out[3].block, out[3].source_symbols), (0, 62));
    }

    #[test]
    fn frames_cross_whole_without_loss() {
        let mut e = StreamEncoder::new(1416, 0.2, 40).unwrap();
        let mut d = StreamDecoder::new();
        let sent: Vec<Vec<u8>> = (0..50)
            .map(|i| frame(i, [1, 1366, 1412, 1413, 5000, 65_507][i as usize % 6]))
            .collect();
        for (i, f) in sent.iter().enumerate() {
            for sym in e.push(i as u64, f).unwrap() {
                feed(&mut d, &sym);
            }
            if i % 6 == 5 {
                // one frame per symbol: delivered as soon as its symbols are in
                assert_eq!(drain(&mut d), sent[i - 5..=i].to_vec());
            }
        }
        assert_eq!(drain(&mut d), sent[48..].to_vec());
        // the repair symbols of blocks whose frames all came bring nothing more
        for sym in e.poll(u64::MAX).unwrap() {
            feed(&mut d, &sym);
        }
        assert!(drain(&mut d).is_empty());
        assert_eq!(d.stats().frames, 50);
        assert_eq!(d.stats().frames_recovered, 0);
    }

    #[test]
    fn lost_frames_come_back_from_the_repair_symbols() {
        let mut e = StreamEncoder::new(256, 0.5, 40).unwrap();
        let mut d = StreamDecoder::new();
        let sent: Vec<Vec<u8>> = (0..8).map(|i| frame(i, 100 + 90 * i as usize)).collect();
        let mut wire = Vec::new();
        for f in &sent {
            wire.extend(e.push(0, f).unwrap());
        }
        wire.extend(e.poll(20).unwrap());
        // 8 frames of 1..=4 symbols; drop the first symbol and a middle piece of a long one
        let k = wire
            .iter()
            .find(|s| s.source_symbols > 0)
            .unwrap()
            .source_symbols;
        assert!(k > 10);
        let lost = [0u32, 9];
        for sym in wire
            .iter()
            .filter(|s| s.source_symbols > 0 || !lost.contains(&s.esi))
        {
            feed(&mut d, sym);
        }
        let mut got = drain(&mut d);
        assert!(d.stats().frames_recovered >= 2, "{:?}", d.stats());
        got.sort();
        let mut want = sent.clone();
        want.sort();
        assert_eq!(got, want);
        // late copies of the lost symbols change nothing
        for sym in wire
            .iter()
            .filter(|s| s.source_symbols == 0 && lost.contains(&s.esi))
        {
            feed(&mut d, sym);
        }
        assert!(drain(&mut d).is_empty());
    }

    #[test]
    fn old_blocks_are_forgotten_and_bad_symbols_counted() {
        let mut d = StreamDecoder::new();
        let data = vec![0u8; 64];
        let sym = |block, k, esi, data: &[u8]| StreamDatagram {
            block,
            source_symbols: k,
            symbol_size: 64,
            esi,
            data: data.to_vec(),
        };
        // a header that says nothing sensible: length 0
        feed(&mut d, &sym(0, 0, 0, &data));
        assert_eq!(d.stats().symbols_malformed, 1);
        let mut good = data.clone();
        good[1] = 5;
        feed(&mut d, &sym(100, 0, 0, &good));
        assert_eq!(drain(&mut d), vec![vec![0u8; 5]]);
        feed(&mut d, &sym(100, 0, 0, &good));
        assert_eq!(d.stats().symbols_unneeded, 1);
        feed(&mut d, &sym(100 - WINDOW_BLOCKS, 0, 1, &good));
        assert_eq!(d.stats().symbols_stale, 1);
        assert!(d.blocks.len() <= WINDOW_BLOCKS as usize);
        // a piece whose first symbol would lie before the block
        let mut bad = good.clone();
        bad[3] = 2;
        feed(&mut d, &sym(101, 0, 1, &bad));
        assert_eq!(d.stats().symbols_malformed, 2);
        // repair symbols that disagree on K
        feed(&mut d, &sym(102, 3, 3, &data));
        feed(&mut d, &sym(102, 4, 4, &data));
        assert_eq!(d.stats().symbols_malformed, 3);
        d.reset();
        feed(&mut d, &sym(0, 0, 0, &good));
        assert_eq!(drain(&mut d).len(), 1);
    }
}
