//! Wire encoding between the two nodes of a pair: the object header frame that opens every
//! object stream, and the fixed-size receipt that is the only thing a receiver sends back.
//!
//! ```text
//! object stream:  "ISGO" | version u8 | kind u8 | length u32 BE | payload (length bytes)
//!                 followed by exactly `manifest.size` bytes of content, then the end of stream
//! receipt:        "ISGR" | version u8 | status u8 | object id (16 bytes)        = 22 bytes
//! ```
//!
//! Pure functions over bytes: no I/O. Every length is checked against a cap before anything
//! is allocated, and decoding refuses trailing bytes.

use crate::core::id::ObjectId;
use thiserror::Error;

/// The link a channel uses (DESIGN.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// QUIC with mutual TLS; the receiver sends back only receipts.
    Quic,
    /// One-way UDP with forward error correction; nothing is ever sent back.
    Diode,
}

impl LinkKind {
    /// The name used in configuration, metrics labels and logs: `quic` or `diode`.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Quic => "quic",
            LinkKind::Diode => "diode",
        }
    }
}

/// Version of the frame layout written by this build.
pub const VERSION: u8 = 2;
/// Magic bytes opening an object stream.
pub const OBJECT_MAGIC: [u8; 4] = *b"ISGO";
/// Magic bytes opening a receipt.
pub const RECEIPT_MAGIC: [u8; 4] = *b"ISGR";
/// Length of the fixed object frame header.
pub const HEADER_LEN: usize = 10;
/// Length of a receipt.
pub const RECEIPT_LEN: usize = 22;
/// Largest header payload (a signed manifest) accepted from the wire.
pub const MAX_PAYLOAD: u32 = 8 * 1024 * 1024;

/// What a frame header announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A signed manifest, followed on the stream by the object's content.
    Object = 1,
    /// A signed checkpoint of the sender's audit log, for the receiver to witness.
    Checkpoint = 2,
}

/// A decoded object frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the payload is.
    pub kind: FrameKind,
    /// Length of the payload that follows the header, already checked against the cap.
    pub len: u32,
}

/// Why bytes from the wire could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// The input ended before the structure was complete.
    #[error("truncated: needed {needed} bytes, got {got}")]
    Truncated {
        /// Bytes the structure needs.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// Bytes remained after the structure.
    #[error("{0} trailing bytes after the structure")]
    Trailing(usize),
    /// The magic bytes are wrong: not an isogate peer, or a different stream.
    #[error("bad magic bytes")]
    BadMagic,
    /// The frame was written by an incompatible version.
    #[error("unsupported frame version {0}")]
    Version(u8),
    /// The frame kind is unknown.
    #[error("unknown frame kind {0}")]
    Kind(u8),
    /// A length exceeds its cap.
    #[error("length {len} exceeds the cap of {cap}")]
    TooLong {
        /// The announced length.
        len: u64,
        /// The cap it exceeds.
        cap: u64,
    },
    /// The receipt status byte is unknown.
    #[error("unknown receipt status {0}")]
    Status(u8),
}

fn exact<const N: usize>(bytes: &[u8]) -> Result<&[u8; N], WireError> {
    if bytes.len() < N {
        return Err(WireError::Truncated {
            needed: N,
            got: bytes.len(),
        });
    }
    if bytes.len() > N {
        return Err(WireError::Trailing(bytes.len() - N));
    }
    bytes.try_into().map_err(|_| WireError::Truncated {
        needed: N,
        got: bytes.len(),
    })
}

/// `N` bytes that open with `magic`, this version and `code` (the frame kind, the receipt
/// status); the caller writes the rest from byte 6.
fn opening<const N: usize>(magic: [u8; 4], code: u8) -> [u8; N] {
    let mut out = [0u8; N];
    out[..4].copy_from_slice(&magic);
    out[4] = VERSION;
    out[5] = code;
    out
}

/// Exactly `N` bytes that open with `magic` and this version; the caller reads the code
/// (byte 5) and the rest.
fn opened<const N: usize>(bytes: &[u8], magic: [u8; 4]) -> Result<&[u8; N], WireError> {
    let b = exact::<N>(bytes)?;
    if b[..4] != magic {
        return Err(WireError::BadMagic);
    }
    if b[4] != VERSION {
        return Err(WireError::Version(b[4]));
    }
    Ok(b)
}

impl FrameHeader {
    /// Encodes the header for a payload of `len` bytes.
    pub fn encode(kind: FrameKind, len: u32) -> [u8; HEADER_LEN] {
        let mut out = opening::<HEADER_LEN>(OBJECT_MAGIC, kind as u8);
        out[6..].copy_from_slice(&len.to_be_bytes());
        out
    }

    /// Decodes exactly `HEADER_LEN` bytes.
    pub fn decode(bytes: &[u8]) -> Result<FrameHeader, WireError> {
        let b = opened::<HEADER_LEN>(bytes, OBJECT_MAGIC)?;
        let kind = match b[5] {
            1 => FrameKind::Object,
            2 => FrameKind::Checkpoint,
            k => return Err(WireError::Kind(k)),
        };
        let len = u32::from_be_bytes([b[6], b[7], b[8], b[9]]);
        let cap = match kind {
            FrameKind::Object => MAX_PAYLOAD,
            FrameKind::Checkpoint => crate::core::checkpoint::MAX_NOTE as u32,
        };
        if len > cap {
            return Err(WireError::TooLong {
                len: u64::from(len),
                cap: u64::from(cap),
            });
        }
        Ok(FrameHeader { kind, len })
    }
}

/// Encodes a whole object frame (header and payload) into one buffer.
pub fn encode_object_frame(payload: &[u8]) -> Result<Vec<u8>, WireError> {
    encode_frame(FrameKind::Object, payload)
}

/// Encodes a whole frame of `kind` into one buffer.
pub fn encode_frame(kind: FrameKind, payload: &[u8]) -> Result<Vec<u8>, WireError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| *l <= MAX_PAYLOAD)
        .ok_or(WireError::TooLong {
            len: payload.len() as u64,
            cap: u64::from(MAX_PAYLOAD),
        })?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&FrameHeader::encode(kind, len));
    out.extend_from_slice(payload);
    Ok(out)
}

/// Splits a complete object frame into its payload; the payload length must match exactly.
pub fn decode_object_frame(bytes: &[u8]) -> Result<&[u8], WireError> {
    if bytes.len() < HEADER_LEN {
        return Err(WireError::Truncated {
            needed: HEADER_LEN,
            got: bytes.len(),
        });
    }
    let header = FrameHeader::decode(&bytes[..HEADER_LEN])?;
    let payload = &bytes[HEADER_LEN..];
    let len = header.len as usize;
    match payload.len().cmp(&len) {
        std::cmp::Ordering::Less => Err(WireError::Truncated {
            needed: HEADER_LEN + len,
            got: bytes.len(),
        }),
        std::cmp::Ordering::Greater => Err(WireError::Trailing(payload.len() - len)),
        std::cmp::Ordering::Equal => Ok(payload),
    }
}

/// What became of an object on the receiving node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptStatus {
    /// Durable in the inbox.
    Landed = 1,
    /// Refused and durable in quarantine.
    Quarantined = 2,
    /// Already landed or quarantined earlier: not delivered again.
    Duplicate = 3,
    /// The receiver could not take it now (e.g. its disk is full): send it again later.
    Retry = 4,
    /// Refused before any content was read (name, size, signature, channel): the content
    /// never entered the receiving zone, so the sender keeps it in its own quarantine.
    Refused = 5,
}

impl ReceiptStatus {
    /// The sender may forget the object: it is durable on the other side.
    pub fn is_final(self) -> bool {
        !matches!(self, ReceiptStatus::Retry)
    }

    /// A short name for logs and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptStatus::Landed => "landed",
            ReceiptStatus::Quarantined => "quarantined",
            ReceiptStatus::Duplicate => "duplicate",
            ReceiptStatus::Retry => "retry",
            ReceiptStatus::Refused => "refused",
        }
    }
}

/// The fixed-size receipt, the only thing that travels from receiver to sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The object it answers for.
    pub object_id: ObjectId,
    /// What became of it.
    pub status: ReceiptStatus,
}

impl Receipt {
    /// Encodes the receipt into its fixed 22 bytes.
    pub fn encode(&self) -> [u8; RECEIPT_LEN] {
        let mut out = opening::<RECEIPT_LEN>(RECEIPT_MAGIC, self.status as u8);
        out[6..].copy_from_slice(&self.object_id.0);
        out
    }

    /// Decodes exactly `RECEIPT_LEN` bytes.
    pub fn decode(bytes: &[u8]) -> Result<Receipt, WireError> {
        let b = opened::<RECEIPT_LEN>(bytes, RECEIPT_MAGIC)?;
        let status = match b[5] {
            1 => ReceiptStatus::Landed,
            2 => ReceiptStatus::Quarantined,
            3 => ReceiptStatus::Duplicate,
            4 => ReceiptStatus::Retry,
            5 => ReceiptStatus::Refused,
            s => return Err(WireError::Status(s)),
        };
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[6..]);
        Ok(Receipt {
            object_id: ObjectId(id),
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_every_truncation() {
        let h = FrameHeader::encode(FrameKind::Object, 1234);
        assert_eq!(
            FrameHeader::decode(&h).unwrap(),
            FrameHeader {
                kind: FrameKind::Object,
                len: 1234
            }
        );
        for n in 0..HEADER_LEN {
            assert!(matches!(
                FrameHeader::decode(&h[..n]),
                Err(WireError::Truncated { .. })
            ));
        }
        let mut long = h.to_vec();
        long.push(0);
        assert_eq!(FrameHeader::decode(&long), Err(WireError::Trailing(1)));
    }

    #[test]
    fn header_refuses_bad_fields() {
        let mut h = FrameHeader::encode(FrameKind::Object, 10);
        h[0] = b'X';
        assert_eq!(FrameHeader::decode(&h), Err(WireError::BadMagic));
        let mut h = FrameHeader::encode(FrameKind::Object, 10);
        h[4] = 9;
        assert_eq!(FrameHeader::decode(&h), Err(WireError::Version(9)));
        let mut h = FrameHeader::encode(FrameKind::Object, 10);
        h[5] = 7;
        assert_eq!(FrameHeader::decode(&h), Err(WireError::Kind(7)));
        let h = FrameHeader::encode(FrameKind::Checkpoint, 5000);
        assert!(matches!(
            FrameHeader::decode(&h),
            Err(WireError::TooLong { cap: 4096, .. })
        ));
        let h = FrameHeader::encode(FrameKind::Object, u32::MAX);
        assert!(matches!(
            FrameHeader::decode(&h),
            Err(WireError::TooLong { .. })
        ));
    }

    #[test]
    fn object_frame_round_trip_truncation_trailing() {
        let frame = encode_object_frame(b"payload").unwrap();
        assert_eq!(decode_object_frame(&frame).unwrap(), b"payload");
        for n in 0..frame.len() {
            assert!(matches!(
                decode_object_frame(&frame[..n]),
                Err(WireError::Truncated { .. })
            ));
        }
        let mut long = frame.clone();
        long.push(1);
        assert_eq!(decode_object_frame(&long), Err(WireError::Trailing(1)));
    }

    #[test]
    fn receipt_round_trip_and_errors() {
        for status in [
            ReceiptStatus::Landed,
            ReceiptStatus::Quarantined,
            ReceiptStatus::Duplicate,
            ReceiptStatus::Retry,
            ReceiptStatus::Refused,
        ] {
            let r = Receipt {
                object_id: ObjectId([7; 16]),
                status,
            };
            let b = r.encode();
            assert_eq!(Receipt::decode(&b).unwrap(), r);
            for n in 0..RECEIPT_LEN {
                assert!(Receipt::decode(&b[..n]).is_err());
            }
            let mut long = b.to_vec();
            long.push(0);
            assert_eq!(Receipt::decode(&long), Err(WireError::Trailing(1)));
        }
        let mut b = Receipt {
            object_id: ObjectId([0; 16]),
            status: ReceiptStatus::Landed,
        }
        .encode();
        b[5] = 0;
        assert_eq!(Receipt::decode(&b), Err(WireError::Status(0)));
    }
}
