//! The diode datagram codec: a fixed header, a body (a RaptorQ symbol, a
//! heartbeat, an object announcement or a signed audit checkpoint) and a
//! 16-byte tag over both (AES-256-GCM under a per-session key, which also
//! encrypts the body, or HMAC-SM3 under the national suite: `tag.rs`). Owns the byte layout, the size limits
//! derived from the MTU, and the checks a received datagram must pass (tag
//! first, then every length and field) before anything else looks at it.
//!
//! ```text
//! header (20 bytes)   magic "ID" | version u8 | kind u8 | session u64 | seq u64
//! symbol body         block u64 | K u16 | T u16 | esi u32 | T bytes of symbol
//! heartbeat body      session_start_ms u64 | sender_time_ms u64 | objects_enqueued u64
//!                     | objects_sent u64 | objects_retired u64 | blocks_sent u64
//!                     | carousel_pending u32 | interval_ms u32
//!                     [ | mtu u32 | symbol_size u16 | source_symbols u16
//!                       | config_digest [16] ]      the link parameters (80 bytes in
//!                                                   all; 56 from senders before them)
//! announce body       object id [16] | object_seq u64 | size u64 | block_bound u64
//!                     | flags u8 | channel_len u8 | name_len u16 | channel | name
//! checkpoint body     the sender's signed audit checkpoint (C2SP note), 1..=1024 bytes
//! stream body         block u64 | K u16 | T u16 | esi u32 | T bytes of symbol
//!                     (live stream frames, see `stream.rs`: K is 0 on a source
//!                     symbol, sent before its block is closed, and the block's K on
//!                     a repair symbol, whose esi is K or more)
//! tag (16 bytes)      AES-256-GCM(HKDF(key, session), nonce seq, AAD header, body),
//!                     the body sent encrypted; or HMAC-SM3(key, header | body)[..16],
//!                     the body in clear  (see `tag.rs`)
//! ```
//! Version 1 (isogate before the GCM seal) tagged every datagram with
//! HMAC-SHA256(key, header | body)[..16] in the default suite; a receiver names a
//! sender of another version (see [`claimed`]) and takes none of its datagrams.
//! All integers are big-endian. A datagram is exactly as long as its kind says:
//! trailing bytes are an error. A heartbeat is one of exactly two lengths: without
//! the link parameters (56, as the first senders made it) or with them (80).
//!
//! The link negotiates nothing (nothing goes back), so each heartbeat carries the
//! sender's settings that the receiver must be able to take ([`LinkParams`]); the
//! receiver compares them with its own (see `agree.rs`).

pub use super::tag::{LinkKey, TAG_LEN};
use thiserror::Error;

/// The two magic bytes that open every datagram.
pub const MAGIC: [u8; 2] = *b"ID";
/// The protocol version this code speaks: 2 since the default suite seals each datagram
/// with AES-256-GCM (1: an HMAC-SHA256 tag over a body in clear).
pub const VERSION: u8 = 2;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 20;
/// Length of a symbol body before the symbol bytes.
pub const SYMBOL_PREFIX_LEN: usize = 16;
/// Length of a heartbeat body with the link parameters.
pub const HEARTBEAT_BODY_LEN: usize = HEARTBEAT_V1_BODY_LEN + LINK_PARAMS_LEN;
/// Length of a heartbeat body without the link parameters (senders before them).
pub const HEARTBEAT_V1_BODY_LEN: usize = 56;
/// Length of the link parameters at the end of a heartbeat body.
pub const LINK_PARAMS_LEN: usize = 4 + 2 + 2 + CONFIG_DIGEST_LEN;
/// Length of a configuration digest.
pub const CONFIG_DIGEST_LEN: usize = 16;
/// Bytes of IPv4 (20) and UDP (8) headers around each datagram.
pub const IPV4_UDP_OVERHEAD: usize = 28;
/// Largest UDP payload over IPv4.
pub const MAX_DATAGRAM: usize = 65_507;
/// Smallest symbol size accepted (bytes).
pub const MIN_SYMBOL_SIZE: u16 = 64;
/// Symbol sizes are multiples of this alignment.
pub const SYMBOL_ALIGN: u16 = 8;
/// Largest number of source symbols in one block (RFC 6330's K'max).
pub const MAX_SOURCE_SYMBOLS: u16 = 56_403;
/// Encoding symbol ids are 24-bit (RFC 6330).
pub const MAX_ESI: u32 = (1 << 24) - 1;
/// Per-datagram overhead of a symbol datagram: header, symbol prefix and tag.
pub const SYMBOL_OVERHEAD: usize = HEADER_LEN + SYMBOL_PREFIX_LEN + TAG_LEN;

/// Length of an announce body before the channel and name bytes.
pub const ANNOUNCE_PREFIX_LEN: usize = 16 + 8 + 8 + 8 + 1 + 1 + 2;
/// Longest object name an announcement carries (bytes of UTF-8); longer names are cut.
pub const MAX_ANNOUNCE_NAME: usize = 512;
/// Longest signed checkpoint a checkpoint datagram carries.
pub const MAX_CHECKPOINT: usize = 1024;
/// Announce flag: the sender has retired the object; no further copy will come
/// unless an operator sends it again.
pub const ANNOUNCE_RETIRED: u8 = 1;

const KIND_SYMBOL: u8 = 1;
const KIND_HEARTBEAT: u8 = 2;
const KIND_ANNOUNCE: u8 = 3;
const KIND_CHECKPOINT: u8 = 4;
const KIND_STREAM: u8 = 5;

/// Most source symbols in one stream block: a small block keeps the wait for its repair
/// symbols (and the decoding work) short.
pub const MAX_STREAM_SYMBOLS: u16 = 64;

/// Why a datagram could not be decoded or encoded.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than a header and a tag.
    #[error("datagram of {len} bytes is shorter than header and tag")]
    TooShort {
        /// Length received.
        len: usize,
    },
    /// Longer than any UDP payload.
    #[error("datagram of {len} bytes is longer than a UDP payload")]
    TooLong {
        /// Length received.
        len: usize,
    },
    /// The authentication tag does not match: wrong key, forged or damaged.
    #[error("authentication tag does not match")]
    BadTag,
    /// The magic bytes are wrong.
    #[error("bad magic bytes")]
    BadMagic,
    /// A protocol version this code does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// A datagram kind this code does not know.
    #[error("unknown datagram kind {0}")]
    UnknownKind(u8),
    /// The body is not exactly as long as its kind requires.
    #[error("body of {got} bytes where {expected} were expected")]
    BodyLength {
        /// Length the kind requires.
        expected: usize,
        /// Length present.
        got: usize,
    },
    /// The symbol size is out of range or misaligned.
    #[error("symbol size {0} out of range or not a multiple of 8")]
    BadSymbolSize(u16),
    /// The block's source symbol count is zero or above the RFC 6330 limit.
    #[error("source symbol count {0} out of range")]
    BadSymbolCount(u16),
    /// The encoding symbol id is beyond 24 bits.
    #[error("encoding symbol id {0} out of range")]
    BadSymbolId(u32),
    /// An announcement's flags, channel or name are not acceptable (unknown
    /// flag bits, an empty channel, or lengths that do not add up).
    #[error("malformed object announcement")]
    BadAnnounce,
    /// A checkpoint body is empty or longer than [`MAX_CHECKPOINT`].
    #[error("checkpoint of {0} bytes out of range 1..=1024")]
    BadCheckpoint(usize),
    /// A stream symbol's K or id do not fit together: a source symbol (K = 0) with an
    /// id of [`MAX_STREAM_SYMBOLS`] or more, a repair symbol with an id below its K, or
    /// a K above [`MAX_STREAM_SYMBOLS`].
    #[error("stream symbol with K {k} and id {esi} out of range")]
    BadStreamSymbol {
        /// The K given.
        k: u16,
        /// The encoding symbol id given.
        esi: u32,
    },
    /// The datagram could not be sealed (its session's key not derived, or the cipher
    /// refused): nothing is sent. Neither happens for datagrams of this codec's sizes.
    #[error("the datagram could not be sealed")]
    Unsealed,
    /// The output buffer is too small for the datagram.
    #[error("buffer of {have} bytes cannot hold a datagram of {need}")]
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
}

/// UDP payload bytes available under an IPv4 MTU (1500 → 1472, 9000 → 8972).
pub fn max_payload(mtu: usize) -> usize {
    mtu.saturating_sub(IPV4_UDP_OVERHEAD).min(MAX_DATAGRAM)
}

/// The largest aligned symbol size whose datagram fits the MTU (1500 → 1416,
/// 9000 → 8920), or `None` when the MTU is too small for [`MIN_SYMBOL_SIZE`].
pub fn symbol_size_for_mtu(mtu: usize) -> Option<u16> {
    let room = max_payload(mtu).checked_sub(SYMBOL_OVERHEAD)?;
    let aligned = room / usize::from(SYMBOL_ALIGN) * usize::from(SYMBOL_ALIGN);
    let t = u16::try_from(aligned).ok()?;
    (t >= MIN_SYMBOL_SIZE).then_some(t)
}

/// Whether `t` is an acceptable symbol size for a datagram of at most `max_len`.
pub fn symbol_size_ok(t: u16, max_len: usize) -> bool {
    t >= MIN_SYMBOL_SIZE
        && t.is_multiple_of(SYMBOL_ALIGN)
        && usize::from(t) + SYMBOL_OVERHEAD <= max_len
}

/// The fixed header fields that vary per datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Random id chosen by the sender when it starts.
    pub session: u64,
    /// Datagram sequence number within the session, from 0.
    pub seq: u64,
}

/// One RaptorQ encoding symbol of one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol<'a> {
    /// Block number within the session, from 0.
    pub block: u64,
    /// Source symbols in the block (K); the block carries K·T bytes.
    pub source_symbols: u16,
    /// Symbol size T in bytes.
    pub symbol_size: u16,
    /// Encoding symbol id: below K a source symbol, from K on a repair symbol.
    pub esi: u32,
    /// The symbol's T bytes.
    pub data: &'a [u8],
}

/// One symbol of a live stream's FEC block (RaptorQ, RFC 6330, systematic): a source
/// symbol holds (a piece of) one stream frame and goes as soon as the frame is pushed,
/// before its block is closed; repair symbols follow when it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSymbol<'a> {
    /// Stream block number within the session, from 0 (its own numbering, apart from
    /// the blocks of objects).
    pub block: u64,
    /// 0 on a source symbol; on a repair symbol, the block's source symbols (K,
    /// 1..=[`MAX_STREAM_SYMBOLS`]).
    pub source_symbols: u16,
    /// Symbol size T in bytes.
    pub symbol_size: u16,
    /// Encoding symbol id: a source symbol's index in its block (below
    /// [`MAX_STREAM_SYMBOLS`]), or a repair symbol's id (K or more).
    pub esi: u32,
    /// The symbol's T bytes.
    pub data: &'a [u8],
}

/// The sender's periodic sign of life and progress report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Heartbeat {
    /// Sender clock when the session started (orders sessions across restarts).
    pub session_start_ms: u64,
    /// Sender clock when this heartbeat was made.
    pub sender_time_ms: u64,
    /// Objects enqueued in this session so far.
    pub objects_enqueued: u64,
    /// Object copies whose last record has been sent.
    pub objects_sent: u64,
    /// Objects whose last carousel copy has been sent.
    pub objects_retired: u64,
    /// Blocks fully sent so far (the next block number).
    pub blocks_sent: u64,
    /// Carousel copies waiting to be sent.
    pub carousel_pending: u32,
    /// The heartbeat interval, so the receiver knows when to expect the next.
    pub interval_ms: u32,
    /// The sender's link parameters; `None` from a sender that predates them.
    pub link: Option<LinkParams>,
}

/// The sender's settings a receiver must be able to take, carried by every heartbeat
/// (the link negotiates nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkParams {
    /// The sender's configured IPv4 MTU (bytes).
    pub mtu: u32,
    /// The symbol size T of its symbol datagrams (bytes).
    pub symbol_size: u16,
    /// Source symbols in its full blocks (K): a block holds up to K·T bytes.
    pub source_symbols: u16,
    /// Digest of the settings both nodes must share (see `agree::config_digest`).
    pub config_digest: [u8; CONFIG_DIGEST_LEN],
}

/// The sender's word that an object exists in its session: sent periodically
/// while the sender holds the object, so that a receiver that saw nothing of it
/// (it was down) can still name it when it is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announce<'a> {
    /// The object id (16 bytes).
    pub id: [u8; 16],
    /// The object's number in this session's announcements, from 0.
    pub object_seq: u64,
    /// Content size in bytes.
    pub size: u64,
    /// Every block carrying the object's copies sent so far is numbered below
    /// this (the number the sender's next block will get when the announcement
    /// is made; with interleaved blocks, some below it may still be going out).
    pub block_bound: u64,
    /// [`ANNOUNCE_RETIRED`] or 0; other bits are refused.
    pub flags: u8,
    /// The channel name (1..=255 bytes, UTF-8 expected, not trusted).
    pub channel: &'a [u8],
    /// The object's base name (0..=[`MAX_ANNOUNCE_NAME`] bytes, not trusted).
    pub name: &'a [u8],
}

impl Announce<'_> {
    /// Whether the sender has retired the object.
    pub fn retired(&self) -> bool {
        self.flags & ANNOUNCE_RETIRED != 0
    }

    fn body_len(&self) -> usize {
        ANNOUNCE_PREFIX_LEN + self.channel.len() + self.name.len()
    }

    fn check(&self) -> Result<(), WireError> {
        if self.flags & !ANNOUNCE_RETIRED != 0
            || self.channel.is_empty()
            || self.channel.len() > usize::from(u8::MAX)
            || self.name.len() > MAX_ANNOUNCE_NAME
        {
            return Err(WireError::BadAnnounce);
        }
        Ok(())
    }
}

/// A datagram body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    /// A RaptorQ symbol.
    Symbol(Symbol<'a>),
    /// A heartbeat.
    Heartbeat(Heartbeat),
    /// An object announcement.
    Announce(Announce<'a>),
    /// A signed checkpoint of the sender's audit log, for the receiver to witness.
    Checkpoint(&'a [u8]),
    /// A symbol of a live stream's FEC block.
    Stream(StreamSymbol<'a>),
}

/// A verified, decoded datagram borrowing from the received bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// Header fields.
    pub header: Header,
    /// Body.
    pub body: Body<'a>,
}

fn put_header(out: &mut [u8], kind: u8, h: &Header) {
    out[0..2].copy_from_slice(&MAGIC);
    out[2] = VERSION;
    out[3] = kind;
    out[4..12].copy_from_slice(&h.session.to_be_bytes());
    out[12..20].copy_from_slice(&h.seq.to_be_bytes());
}

/// Reads the fields of a symbol body (file data or stream), `block | K | T | ESI | data`,
/// checked by `check`, and its data of exactly T bytes.
fn symbol_body(
    b: &[u8],
    check: fn(u16, u16, u32) -> Result<(), WireError>,
) -> Result<(u64, u16, u16, u32, &[u8]), WireError> {
    if b.len() < SYMBOL_PREFIX_LEN {
        return Err(WireError::BodyLength {
            expected: SYMBOL_PREFIX_LEN,
            got: b.len(),
        });
    }
    let (k, t, esi) = (be_u16(b, 8), be_u16(b, 10), be_u32(b, 12));
    check(k, t, esi)?;
    let expected = SYMBOL_PREFIX_LEN + usize::from(t);
    if b.len() != expected {
        return Err(WireError::BodyLength {
            expected,
            got: b.len(),
        });
    }
    Ok((be_u64(b, 0), k, t, esi, &b[SYMBOL_PREFIX_LEN..]))
}

fn check_symbol_fields(k: u16, t: u16, esi: u32) -> Result<(), WireError> {
    if t < MIN_SYMBOL_SIZE || !t.is_multiple_of(SYMBOL_ALIGN) {
        return Err(WireError::BadSymbolSize(t));
    }
    if k == 0 || k > MAX_SOURCE_SYMBOLS {
        return Err(WireError::BadSymbolCount(k));
    }
    if esi > MAX_ESI {
        return Err(WireError::BadSymbolId(esi));
    }
    Ok(())
}

fn check_stream_fields(k: u16, t: u16, esi: u32) -> Result<(), WireError> {
    if t < MIN_SYMBOL_SIZE || !t.is_multiple_of(SYMBOL_ALIGN) {
        return Err(WireError::BadSymbolSize(t));
    }
    let ok = match k {
        0 => esi < u32::from(MAX_STREAM_SYMBOLS),
        k => k <= MAX_STREAM_SYMBOLS && esi >= u32::from(k) && esi <= MAX_ESI,
    };
    if !ok {
        return Err(WireError::BadStreamSymbol { k, esi });
    }
    Ok(())
}

/// The body length of a symbol (file data or stream) whose data must be exactly T bytes.
fn symbol_body_len(t: u16, data: &[u8]) -> Result<usize, WireError> {
    if data.len() != usize::from(t) {
        return Err(WireError::BodyLength {
            expected: usize::from(t),
            got: data.len(),
        });
    }
    Ok(SYMBOL_PREFIX_LEN + data.len())
}

/// The length of the datagram carrying `body`, checked as [`encode`] checks it, without
/// writing or sealing anything: what a sender measures before it knows the datagram's
/// place in its sequence.
///
/// # Errors
/// As [`encode`], but for the buffer's size.
pub fn datagram_len(body: &Body<'_>) -> Result<usize, WireError> {
    let body_len = match body {
        Body::Symbol(s) => {
            check_symbol_fields(s.source_symbols, s.symbol_size, s.esi)?;
            symbol_body_len(s.symbol_size, s.data)?
        }
        Body::Heartbeat(hb) => {
            if hb.link.is_some() {
                HEARTBEAT_BODY_LEN
            } else {
                HEARTBEAT_V1_BODY_LEN
            }
        }
        Body::Announce(a) => {
            a.check()?;
            a.body_len()
        }
        Body::Checkpoint(note) => {
            if note.is_empty() || note.len() > MAX_CHECKPOINT {
                return Err(WireError::BadCheckpoint(note.len()));
            }
            note.len()
        }
        Body::Stream(s) => {
            check_stream_fields(s.source_symbols, s.symbol_size, s.esi)?;
            symbol_body_len(s.symbol_size, s.data)?
        }
    };
    let len = HEADER_LEN + body_len + TAG_LEN;
    if len > MAX_DATAGRAM {
        return Err(WireError::TooLong { len });
    }
    Ok(len)
}

/// Writes a datagram into `out`, sealed under `key` (its body encrypted in the default
/// suite: `tag.rs`), and returns its length. Each `header` (session, sequence number) must
/// be sealed once: the sender never seals two datagrams under one number.
///
/// # Errors
/// A field the codec refuses, a datagram longer than a UDP payload, or an `out` too small.
pub fn encode(
    key: &LinkKey,
    header: &Header,
    body: &Body<'_>,
    out: &mut [u8],
) -> Result<usize, WireError> {
    let len = datagram_len(body)?;
    let body_len = len - HEADER_LEN - TAG_LEN;
    if out.len() < len {
        return Err(WireError::BufferTooSmall {
            need: len,
            have: out.len(),
        });
    }
    match body {
        Body::Symbol(s) => {
            put_header(out, KIND_SYMBOL, header);
            let b = &mut out[HEADER_LEN..HEADER_LEN + body_len];
            b[0..8].copy_from_slice(&s.block.to_be_bytes());
            b[8..10].copy_from_slice(&s.source_symbols.to_be_bytes());
            b[10..12].copy_from_slice(&s.symbol_size.to_be_bytes());
            b[12..16].copy_from_slice(&s.esi.to_be_bytes());
            b[16..].copy_from_slice(s.data);
        }
        Body::Heartbeat(hb) => {
            put_header(out, KIND_HEARTBEAT, header);
            let b = &mut out[HEADER_LEN..HEADER_LEN + body_len];
            b[0..8].copy_from_slice(&hb.session_start_ms.to_be_bytes());
            b[8..16].copy_from_slice(&hb.sender_time_ms.to_be_bytes());
            b[16..24].copy_from_slice(&hb.objects_enqueued.to_be_bytes());
            b[24..32].copy_from_slice(&hb.objects_sent.to_be_bytes());
            b[32..40].copy_from_slice(&hb.objects_retired.to_be_bytes());
            b[40..48].copy_from_slice(&hb.blocks_sent.to_be_bytes());
            b[48..52].copy_from_slice(&hb.carousel_pending.to_be_bytes());
            b[52..56].copy_from_slice(&hb.interval_ms.to_be_bytes());
            if let Some(p) = &hb.link {
                b[56..60].copy_from_slice(&p.mtu.to_be_bytes());
                b[60..62].copy_from_slice(&p.symbol_size.to_be_bytes());
                b[62..64].copy_from_slice(&p.source_symbols.to_be_bytes());
                b[64..80].copy_from_slice(&p.config_digest);
            }
        }
        Body::Announce(a) => {
            put_header(out, KIND_ANNOUNCE, header);
            let b = &mut out[HEADER_LEN..HEADER_LEN + body_len];
            b[0..16].copy_from_slice(&a.id);
            b[16..24].copy_from_slice(&a.object_seq.to_be_bytes());
            b[24..32].copy_from_slice(&a.size.to_be_bytes());
            b[32..40].copy_from_slice(&a.block_bound.to_be_bytes());
            b[40] = a.flags;
            // lengths checked above: channel <= 255, name <= MAX_ANNOUNCE_NAME
            b[41] = a.channel.len() as u8;
            b[42..44].copy_from_slice(&(a.name.len() as u16).to_be_bytes());
            let c_end = ANNOUNCE_PREFIX_LEN + a.channel.len();
            b[ANNOUNCE_PREFIX_LEN..c_end].copy_from_slice(a.channel);
            b[c_end..].copy_from_slice(a.name);
        }
        Body::Checkpoint(note) => {
            put_header(out, KIND_CHECKPOINT, header);
            out[HEADER_LEN..HEADER_LEN + body_len].copy_from_slice(note);
        }
        Body::Stream(s) => {
            put_header(out, KIND_STREAM, header);
            let b = &mut out[HEADER_LEN..HEADER_LEN + body_len];
            b[0..8].copy_from_slice(&s.block.to_be_bytes());
            b[8..10].copy_from_slice(&s.source_symbols.to_be_bytes());
            b[10..12].copy_from_slice(&s.symbol_size.to_be_bytes());
            b[12..16].copy_from_slice(&s.esi.to_be_bytes());
            b[16..].copy_from_slice(s.data);
        }
    }
    let Some(tag) = key.seal(
        header.session,
        header.seq,
        &mut out[..HEADER_LEN + body_len],
        HEADER_LEN,
    ) else {
        // the body may be in clear: the datagram is wiped, never handed on
        out[..len].fill(0);
        return Err(WireError::Unsealed);
    };
    out[HEADER_LEN + body_len..len].copy_from_slice(&tag);
    Ok(len)
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn be_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// What a datagram that failed authentication claims about itself, read without
/// trusting it: only good for naming, in a report, the session whose datagrams do not
/// authenticate (a sender with another key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    /// The protocol version its header names: [`VERSION`] or an earlier one (a sender of
    /// an earlier isogate release, named as such).
    pub version: u8,
    /// The session id its header names.
    pub session: u64,
    /// Whether it has a heartbeat's kind and length.
    pub heartbeat: bool,
}

/// The header of a datagram that opens with this protocol's magic and a version it has
/// had (this one or an earlier one), read without checking its tag; `None` for anything
/// else (too short, another protocol, a version never made).
pub fn claimed(datagram: &[u8]) -> Option<Claimed> {
    let len = datagram.len();
    if !(HEADER_LEN + TAG_LEN..=MAX_DATAGRAM).contains(&len)
        || datagram[0..2] != MAGIC
        || !(1..=VERSION).contains(&datagram[2])
    {
        return None;
    }
    let body = len - HEADER_LEN - TAG_LEN;
    Some(Claimed {
        version: datagram[2],
        session: be_u64(datagram, 4),
        heartbeat: datagram[3] == KIND_HEARTBEAT
            && (body == HEARTBEAT_BODY_LEN || body == HEARTBEAT_V1_BODY_LEN),
    })
}

/// Opens `datagram` (checks its tag and, in the default suite, decrypts its body) into
/// `plain`, then decodes it from there. The tag is checked before any field is read; every
/// length is checked before it is used. `plain` is a buffer the caller keeps between
/// datagrams (it is cleared and grown as needed), which the decoded datagram borrows.
///
/// # Errors
/// [`WireError::BadTag`] when the tag is wrong (another key, suite or release, forged or
/// damaged); the others for a datagram that authenticates but is malformed.
pub fn decode<'a>(
    key: &LinkKey,
    datagram: &[u8],
    plain: &'a mut Vec<u8>,
) -> Result<Datagram<'a>, WireError> {
    let len = datagram.len();
    if len > MAX_DATAGRAM {
        return Err(WireError::TooLong { len });
    }
    if len < HEADER_LEN + TAG_LEN {
        return Err(WireError::TooShort { len });
    }
    let (sealed, tag) = datagram.split_at(len - TAG_LEN);
    plain.clear();
    plain.extend_from_slice(sealed);
    // the header's session and number choose the key and nonce; it is authenticated with
    // the body, so a changed one does not open
    let (session, seq) = (be_u64(sealed, 4), be_u64(sealed, 12));
    if !key.open(session, seq, plain, HEADER_LEN, tag) {
        return Err(WireError::BadTag);
    }
    let signed: &'a [u8] = plain;
    if signed[0..2] != MAGIC {
        return Err(WireError::BadMagic);
    }
    if signed[2] != VERSION {
        return Err(WireError::UnsupportedVersion(signed[2]));
    }
    let header = Header {
        session: be_u64(signed, 4),
        seq: be_u64(signed, 12),
    };
    let b = &signed[HEADER_LEN..];
    let body = match signed[3] {
        KIND_SYMBOL => {
            let (block, k, t, esi, data) = symbol_body(b, check_symbol_fields)?;
            Body::Symbol(Symbol {
                block,
                source_symbols: k,
                symbol_size: t,
                esi,
                data,
            })
        }
        KIND_HEARTBEAT => {
            let link = match b.len() {
                HEARTBEAT_V1_BODY_LEN => None,
                HEARTBEAT_BODY_LEN => {
                    let mut config_digest = [0u8; CONFIG_DIGEST_LEN];
                    config_digest.copy_from_slice(&b[64..80]);
                    Some(LinkParams {
                        mtu: be_u32(b, 56),
                        symbol_size: be_u16(b, 60),
                        source_symbols: be_u16(b, 62),
                        config_digest,
                    })
                }
                got => {
                    return Err(WireError::BodyLength {
                        expected: HEARTBEAT_BODY_LEN,
                        got,
                    });
                }
            };
            Body::Heartbeat(Heartbeat {
                session_start_ms: be_u64(b, 0),
                sender_time_ms: be_u64(b, 8),
                objects_enqueued: be_u64(b, 16),
                objects_sent: be_u64(b, 24),
                objects_retired: be_u64(b, 32),
                blocks_sent: be_u64(b, 40),
                carousel_pending: be_u32(b, 48),
                interval_ms: be_u32(b, 52),
                link,
            })
        }
        KIND_ANNOUNCE => Body::Announce(decode_announce(b)?),
        KIND_CHECKPOINT => {
            if b.is_empty() || b.len() > MAX_CHECKPOINT {
                return Err(WireError::BadCheckpoint(b.len()));
            }
            Body::Checkpoint(b)
        }
        KIND_STREAM => {
            let (block, k, t, esi, data) = symbol_body(b, check_stream_fields)?;
            Body::Stream(StreamSymbol {
                block,
                source_symbols: k,
                symbol_size: t,
                esi,
                data,
            })
        }
        other => return Err(WireError::UnknownKind(other)),
    };
    Ok(Datagram { header, body })
}

fn decode_announce(b: &[u8]) -> Result<Announce<'_>, WireError> {
    if b.len() < ANNOUNCE_PREFIX_LEN {
        return Err(WireError::BodyLength {
            expected: ANNOUNCE_PREFIX_LEN,
            got: b.len(),
        });
    }
    let channel_len = usize::from(b[41]);
    let name_len = usize::from(be_u16(b, 42));
    let expected = ANNOUNCE_PREFIX_LEN + channel_len + name_len;
    if b.len() != expected {
        return Err(WireError::BodyLength {
            expected,
            got: b.len(),
        });
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&b[0..16]);
    let c_end = ANNOUNCE_PREFIX_LEN + channel_len;
    let a = Announce {
        id,
        object_seq: be_u64(b, 16),
        size: be_u64(b, 24),
        block_bound: be_u64(b, 32),
        flags: b[40],
        channel: &b[ANNOUNCE_PREFIX_LEN..c_end],
        name: &b[c_end..],
    };
    a.check()?;
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> LinkKey {
        LinkKey::new(&[7u8; 32])
    }

    fn symbol_datagram() -> Vec<u8> {
        let data: Vec<u8> = (0..64u8).collect();
        let body = Body::Symbol(Symbol {
            block: 9,
            source_symbols: 3,
            symbol_size: 64,
            esi: 4,
            data: &data,
        });
        let mut buf = vec![0u8; 2000];
        let n = encode(
            &key(),
            &Header {
                session: 0xdead_beef,
                seq: 42,
            },
            &body,
            &mut buf,
        )
        .unwrap();
        buf.truncate(n);
        buf
    }

    fn stream_datagram(k: u16, esi: u32) -> Vec<u8> {
        let data = vec![0x5a; 64];
        let body = Body::Stream(StreamSymbol {
            block: 3,
            source_symbols: k,
            symbol_size: 64,
            esi,
            data: &data,
        });
        let mut buf = vec![0u8; 2000];
        let n = encode(&key(), &Header { session: 8, seq: 9 }, &body, &mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn stream_symbol_round_trip_and_field_checks() {
        for (k, esi) in [(0, 0), (0, 63), (5, 5), (5, 9), (64, 200)] {
            let d = stream_datagram(k, esi);
            assert_eq!(d.len(), SYMBOL_OVERHEAD + 64);
            let Body::Stream(s) = dec(&d).unwrap().body else {
                panic!("wrong kind")
            };
            assert_eq!(
                (s.block, s.source_symbols, s.symbol_size, s.esi),
                (3, k, 64, esi)
            );
            assert_eq!(s.data, &[0x5a; 64][..]);
        }
        let data = [0u8; 64];
        let mut buf = vec![0u8; 200];
        let h = Header { session: 0, seq: 0 };
        // a source symbol beyond the block's limit, a repair id below K, K too large
        for (k, esi) in [(0, 64), (5, 4), (65, 70)] {
            let body = Body::Stream(StreamSymbol {
                block: 0,
                source_symbols: k,
                symbol_size: 64,
                esi,
                data: &data,
            });
            assert_eq!(
                encode(&key(), &h, &body, &mut buf),
                Err(WireError::BadStreamSymbol { k, esi })
            );
        }
        // signed, but with a field out of range
        let d = stream_datagram(0, 1);
        let signed = opened(&d);
        let mut m = signed.clone();
        m[HEADER_LEN + 12..HEADER_LEN + 16].copy_from_slice(&64u32.to_be_bytes());
        assert_eq!(
            dec(&resign(m)),
            Err(WireError::BadStreamSymbol { k: 0, esi: 64 })
        );
        let mut m = signed.clone();
        m[HEADER_LEN + 10..HEADER_LEN + 12].copy_from_slice(&72u16.to_be_bytes());
        assert!(matches!(dec(&resign(m)), Err(WireError::BodyLength { .. })));
        let m = signed[..HEADER_LEN + 10].to_vec();
        assert!(matches!(dec(&resign(m)), Err(WireError::BodyLength { .. })));
    }

    fn heartbeat_datagram() -> (Heartbeat, Vec<u8>) {
        let hb = Heartbeat {
            session_start_ms: 1,
            sender_time_ms: 2,
            objects_enqueued: 3,
            objects_sent: 4,
            objects_retired: 5,
            blocks_sent: 6,
            carousel_pending: 7,
            interval_ms: 8,
            link: Some(LinkParams {
                mtu: 9000,
                symbol_size: 8920,
                source_symbols: 256,
                config_digest: [0xab; CONFIG_DIGEST_LEN],
            }),
        };
        let mut buf = vec![0u8; 200];
        let n = encode(
            &key(),
            &Header { session: 1, seq: 2 },
            &Body::Heartbeat(hb),
            &mut buf,
        )
        .unwrap();
        buf.truncate(n);
        (hb, buf)
    }

    #[test]
    fn mtu_sizes() {
        assert_eq!(max_payload(1500), 1472);
        assert_eq!(max_payload(9000), 8972);
        assert_eq!(symbol_size_for_mtu(1500), Some(1416));
        assert_eq!(symbol_size_for_mtu(9000), Some(8920));
        assert_eq!(symbol_size_for_mtu(100), None);
        for mtu in [576, 1280, 1500, 4000, 9000] {
            let t = symbol_size_for_mtu(mtu).unwrap();
            assert!(usize::from(t) + SYMBOL_OVERHEAD <= max_payload(mtu));
            assert!(symbol_size_ok(t, max_payload(mtu)));
        }
    }

    #[test]
    fn symbol_round_trip() {
        let d = symbol_datagram();
        assert_eq!(d.len(), HEADER_LEN + SYMBOL_PREFIX_LEN + 64 + TAG_LEN);
        let got = dec(&d).unwrap();
        assert_eq!(
            got.header,
            Header {
                session: 0xdead_beef,
                seq: 42
            }
        );
        match got.body {
            Body::Symbol(s) => {
                assert_eq!(
                    (s.block, s.source_symbols, s.symbol_size, s.esi),
                    (9, 3, 64, 4)
                );
                assert_eq!(s.data, &(0..64u8).collect::<Vec<_>>()[..]);
            }
            _ => panic!("wrong kind"),
        }
    }

    fn announce_datagram() -> Vec<u8> {
        let a = Announce {
            id: [5u8; 16],
            object_seq: 11,
            size: 1234,
            block_bound: 77,
            flags: ANNOUNCE_RETIRED,
            channel: b"to-internet",
            name: "判决书.pdf".as_bytes(),
        };
        let mut buf = vec![0u8; 1500];
        let n = encode(
            &key(),
            &Header { session: 3, seq: 4 },
            &Body::Announce(a),
            &mut buf,
        )
        .unwrap();
        buf.truncate(n);
        buf
    }

    fn checkpoint_datagram() -> Vec<u8> {
        let mut buf = vec![0u8; 1500];
        let n = encode(
            &key(),
            &Header { session: 3, seq: 5 },
            &Body::Checkpoint(b"court\n12\nroot\n\n- court sig\n"),
            &mut buf,
        )
        .unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn announce_round_trip() {
        let d = announce_datagram();
        let Body::Announce(a) = dec(&d).unwrap().body else {
            panic!("wrong kind")
        };
        assert_eq!(a.id, [5u8; 16]);
        assert_eq!((a.object_seq, a.size, a.block_bound), (11, 1234, 77));
        assert!(a.retired());
        assert_eq!(a.channel, b"to-internet");
        assert_eq!(a.name, "判决书.pdf".as_bytes());
    }

    #[test]
    fn checkpoint_round_trip() {
        let d = checkpoint_datagram();
        assert_eq!(
            dec(&d).unwrap().body,
            Body::Checkpoint(b"court\n12\nroot\n\n- court sig\n")
        );
    }

    #[test]
    fn bad_announce_and_checkpoint_refused() {
        let mut buf = vec![0u8; 4000];
        let h = Header { session: 0, seq: 0 };
        let base = Announce {
            id: [0; 16],
            object_seq: 0,
            size: 0,
            block_bound: 0,
            flags: 0,
            channel: b"c",
            name: b"n",
        };
        for a in [
            Announce { flags: 2, ..base },
            Announce {
                channel: b"",
                ..base
            },
            Announce {
                name: &[b'x'; MAX_ANNOUNCE_NAME + 1],
                ..base
            },
        ] {
            assert_eq!(
                encode(&key(), &h, &Body::Announce(a), &mut buf),
                Err(WireError::BadAnnounce)
            );
        }
        for note in [&[][..], &[b'x'; MAX_CHECKPOINT + 1][..]] {
            assert_eq!(
                encode(&key(), &h, &Body::Checkpoint(note), &mut buf),
                Err(WireError::BadCheckpoint(note.len()))
            );
        }
        // signed but with an unknown flag bit, or lengths that do not add up
        let d = announce_datagram();
        let signed = opened(&d);
        let mut m = signed.clone();
        m[HEADER_LEN + 40] = 0x80;
        assert_eq!(dec(&resign(m)), Err(WireError::BadAnnounce));
        let mut m = signed.clone();
        m[HEADER_LEN + 41] = 0;
        assert!(matches!(dec(&resign(m)), Err(WireError::BodyLength { .. })));
        let mut m = signed[..HEADER_LEN].to_vec();
        m[3] = KIND_CHECKPOINT;
        assert_eq!(dec(&resign(m)), Err(WireError::BadCheckpoint(0)));
    }

    #[test]
    fn heartbeat_round_trip() {
        let (hb, d) = heartbeat_datagram();
        assert_eq!(d.len(), HEADER_LEN + 80 + TAG_LEN);
        let got = dec(&d).unwrap();
        assert_eq!(got.body, Body::Heartbeat(hb));
        // the link parameters sit at the end of the (opened) body, big-endian
        let plain = opened(&d);
        let b = &plain[HEADER_LEN..HEADER_LEN + HEARTBEAT_BODY_LEN];
        assert_eq!(&b[56..60], &9000u32.to_be_bytes());
        assert_eq!(&b[60..62], &8920u16.to_be_bytes());
        assert_eq!(&b[62..64], &256u16.to_be_bytes());
        assert_eq!(&b[64..80], &[0xab; 16]);
    }

    #[test]
    fn a_heartbeat_without_link_parameters_still_decodes() {
        // as senders before the link parameters made it: 56 bytes of body
        let hb = Heartbeat {
            blocks_sent: 6,
            link: None,
            ..Heartbeat::default()
        };
        let mut buf = vec![0u8; 200];
        let n = encode(
            &key(),
            &Header { session: 1, seq: 2 },
            &Body::Heartbeat(hb),
            &mut buf,
        )
        .unwrap();
        assert_eq!(n, HEADER_LEN + HEARTBEAT_V1_BODY_LEN + TAG_LEN);
        assert_eq!(dec(&buf[..n]).unwrap().body, Body::Heartbeat(hb));
        // any other length between or around the two is refused, even signed
        let (_, d) = heartbeat_datagram();
        let signed = &opened(&d);
        for body in [0, 55, 57, 79, 81] {
            let m = signed[..HEADER_LEN]
                .iter()
                .chain(&signed[HEADER_LEN..])
                .copied();
            let mut m: Vec<u8> = m.take(HEADER_LEN + body.min(HEARTBEAT_BODY_LEN)).collect();
            m.resize(HEADER_LEN + body, 0);
            assert!(
                matches!(dec(&resign(m)), Err(WireError::BodyLength { .. })),
                "a heartbeat body of {body} bytes"
            );
        }
    }

    #[test]
    fn the_claimed_header_of_an_unauthenticated_datagram() {
        let (_, hb) = heartbeat_datagram();
        let other = LinkKey::new(&[9u8; 32]);
        assert_eq!(decode(&other, &hb, &mut Vec::new()), Err(WireError::BadTag));
        assert_eq!(
            claimed(&hb),
            Some(Claimed {
                version: VERSION,
                session: 1,
                heartbeat: true
            })
        );
        assert_eq!(
            claimed(&symbol_datagram()),
            Some(Claimed {
                version: VERSION,
                session: 0xdead_beef,
                heartbeat: false
            })
        );
        assert_eq!(claimed(&hb[..HEADER_LEN]), None);
        // a sender of the version before (HMAC-SHA256 tags) is named with its version
        let mut old = hb.clone();
        old[2] = 1;
        assert_eq!(dec(&old), Err(WireError::BadTag));
        assert_eq!(claimed(&old).map(|c| c.version), Some(1));
        // versions never made are not named as a release
        for v in [0, VERSION + 1, 0xff] {
            let mut m = hb.clone();
            m[2] = v;
            assert_eq!(claimed(&m), None, "version {v}");
        }
        let mut m = hb.clone();
        m[0] = b'X';
        assert_eq!(claimed(&m), None);
        assert_eq!(claimed(&[0u8; 100]), None);
    }

    #[test]
    fn every_truncation_rejected() {
        for d in [
            symbol_datagram(),
            heartbeat_datagram().1,
            announce_datagram(),
            checkpoint_datagram(),
            stream_datagram(0, 2),
            stream_datagram(4, 6),
        ] {
            for n in 0..d.len() {
                assert!(dec(&d[..n]).is_err(), "prefix of {n} accepted");
            }
        }
    }

    #[test]
    fn every_bit_flip_rejected() {
        for d in [
            symbol_datagram(),
            heartbeat_datagram().1,
            announce_datagram(),
            checkpoint_datagram(),
            stream_datagram(0, 2),
            stream_datagram(4, 6),
        ] {
            for i in 0..d.len() * 8 {
                let mut m = d.clone();
                m[i / 8] ^= 1 << (i % 8);
                assert_eq!(dec(&m), Err(WireError::BadTag), "flip {i} accepted");
            }
        }
    }

    #[test]
    fn trailing_bytes_rejected() {
        for d in [
            symbol_datagram(),
            heartbeat_datagram().1,
            announce_datagram(),
            stream_datagram(0, 2),
        ] {
            let mut m = d.clone();
            m.push(0);
            assert!(dec(&m).is_err());
            // Even when re-signed, a body longer than its kind says is refused.
            let mut signed = opened(&d);
            signed.push(0);
            assert!(matches!(
                dec(&resign(signed)),
                Err(WireError::BodyLength { .. })
            ));
        }
    }

    #[test]
    fn wrong_key_rejected() {
        let d = symbol_datagram();
        assert_eq!(
            decode(&LinkKey::new(&[8u8; 32]), &d, &mut Vec::new()),
            Err(WireError::BadTag)
        );
    }

    /// Seals `signed` (a header and a plaintext body) as the sender would, tag appended.
    fn resign(mut signed: Vec<u8>) -> Vec<u8> {
        let (session, seq) = (be_u64(&signed, 4), be_u64(&signed, 12));
        let tag = key().seal(session, seq, &mut signed, HEADER_LEN).unwrap();
        signed.extend_from_slice(&tag);
        signed
    }

    /// The header and plaintext body of `d`, a datagram sealed under [`key`].
    fn opened(d: &[u8]) -> Vec<u8> {
        let (sealed, tag) = d.split_at(d.len() - TAG_LEN);
        let mut plain = sealed.to_vec();
        assert!(key().open(be_u64(d, 4), be_u64(d, 12), &mut plain, HEADER_LEN, tag));
        plain
    }

    /// [`decode`] under [`key`], into a buffer of its own (leaked: a test's few bytes).
    fn dec(d: &[u8]) -> Result<Datagram<'static>, WireError> {
        decode(&key(), d, Box::leak(Box::default()))
    }

    #[test]
    fn signed_but_invalid_fields_rejected() {
        let d = symbol_datagram();
        let signed = opened(&d);
        let mut m = signed.clone();
        m[0] = b'X';
        assert_eq!(dec(&resign(m)), Err(WireError::BadMagic));
        let mut m = signed.clone();
        m[2] = 9;
        assert_eq!(dec(&resign(m)), Err(WireError::UnsupportedVersion(9)));
        let mut m = signed.clone();
        m[3] = 77;
        assert_eq!(dec(&resign(m)), Err(WireError::UnknownKind(77)));
        let mut m = signed.clone();
        m[HEADER_LEN + 8..HEADER_LEN + 10].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(dec(&resign(m)), Err(WireError::BadSymbolCount(0)));
        let mut m = signed.clone();
        m[HEADER_LEN + 10..HEADER_LEN + 12].copy_from_slice(&65u16.to_be_bytes());
        assert_eq!(dec(&resign(m)), Err(WireError::BadSymbolSize(65)));
        let mut m = signed.clone();
        m[HEADER_LEN + 10..HEADER_LEN + 12].copy_from_slice(&72u16.to_be_bytes());
        assert!(matches!(dec(&resign(m)), Err(WireError::BodyLength { .. })));
        let mut m = signed;
        m[HEADER_LEN + 12..HEADER_LEN + 16].copy_from_slice(&(1u32 << 24).to_be_bytes());
        assert_eq!(dec(&resign(m)), Err(WireError::BadSymbolId(1 << 24)));
    }

    #[test]
    fn encode_checks_buffer_and_fields() {
        let data = [0u8; 64];
        let body = Body::Symbol(Symbol {
            block: 0,
            source_symbols: 1,
            symbol_size: 64,
            esi: 0,
            data: &data,
        });
        let h = Header { session: 0, seq: 0 };
        let mut small = [0u8; 50];
        assert!(matches!(
            encode(&key(), &h, &body, &mut small),
            Err(WireError::BufferTooSmall { .. })
        ));
        let body = Body::Symbol(Symbol {
            block: 0,
            source_symbols: 1,
            symbol_size: 72,
            esi: 0,
            data: &data,
        });
        let mut buf = [0u8; 200];
        assert!(matches!(
            encode(&key(), &h, &body, &mut buf),
            Err(WireError::BodyLength { .. })
        ));
    }
}
