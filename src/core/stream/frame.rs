//! The stream frame: what crosses a link for one admitted stream packet (one QUIC DATAGRAM
//! frame, or one frame of the diode's stream FEC). It owns the encoding and its reading,
//! which rejects anything it does not consume.
//!
//! ```text
//!  big-endian:
//!  magic "IGS1" (4) | channel_len u8 (1..=64) | channel (UTF-8) | session u64 |
//!  seq u64 | sent_us u64 | payload_len u16 (0..=65_507) | payload
//! ```

use thiserror::Error;

/// The first bytes of every stream frame.
pub const MAGIC: [u8; 4] = *b"IGS1";

/// The longest channel name a frame carries, in bytes.
pub const MAX_CHANNEL_LEN: usize = 64;

/// The largest payload a frame carries, in bytes: the largest UDP payload over IPv4.
pub const MAX_PAYLOAD: usize = 65_507;

/// Bytes of a frame besides its channel name and payload.
pub const FIXED_LEN: usize = 4 + 1 + 8 + 8 + 8 + 2;

/// One stream packet on the link, with where it belongs and its place in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFrame {
    /// The stream channel's name (1..=64 bytes of UTF-8).
    pub channel: String,
    /// Random per start of the sending node, so that a restart resets the receiver's order.
    pub session: u64,
    /// The packet's number in the session, per channel: 0 for the first packet the
    /// sending node handed to its link, +1 per packet handed on (a packet refused or found
    /// the link busy or down takes no number; one the link drops after that leaves a gap).
    pub seq: u64,
    /// The sending node's wall clock when it admitted the packet, in µs since the Unix
    /// epoch: for the latency metric only, never trusted for order.
    pub sent_us: u64,
    /// The packet as the sending node received it (the UDP payload), at most
    /// [`MAX_PAYLOAD`] bytes.
    pub payload: Vec<u8>,
}

/// Why bytes could not be read as a stream frame, or a frame cannot be encoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    /// The input ended before the frame was complete.
    #[error("truncated stream frame: needed {needed} bytes, got {got}")]
    Truncated {
        /// Bytes the frame needs (as far as it was read).
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// Bytes remained after the frame.
    #[error("{0} trailing bytes after the stream frame")]
    Trailing(usize),
    /// The magic bytes are not `IGS1`.
    #[error("bad stream frame magic")]
    BadMagic,
    /// The channel name's length is 0 or above [`MAX_CHANNEL_LEN`].
    #[error("stream frame channel name of {0} bytes (1..=64 allowed)")]
    ChannelLen(usize),
    /// The channel name is not UTF-8.
    #[error("stream frame channel name is not UTF-8")]
    ChannelUtf8,
    /// The payload is longer than [`MAX_PAYLOAD`].
    #[error("stream frame payload of {0} bytes (at most 65507 allowed)")]
    PayloadLen(usize),
}

impl StreamFrame {
    /// Whether this frame can be encoded as it is: a channel name of 1..=64 bytes and a
    /// payload of at most [`MAX_PAYLOAD`] bytes.
    ///
    /// # Errors
    ///
    /// [`FrameError::ChannelLen`] or [`FrameError::PayloadLen`].
    pub fn check(&self) -> Result<(), FrameError> {
        let len = self.channel.len();
        if len == 0 || len > MAX_CHANNEL_LEN {
            return Err(FrameError::ChannelLen(len));
        }
        if self.payload.len() > MAX_PAYLOAD {
            return Err(FrameError::PayloadLen(self.payload.len()));
        }
        Ok(())
    }

    /// The frame's encoded length in bytes: 31 + channel + payload.
    pub fn encoded_len(&self) -> usize {
        FIXED_LEN + self.channel.len() + self.payload.len()
    }

    /// Encodes the frame (layout in the module header). A frame that fails
    /// [`StreamFrame::check`] encodes to bytes that [`StreamFrame::decode`] refuses (its
    /// channel length written as 0), never to another valid frame.
    pub fn encode(&self) -> Vec<u8> {
        let valid = self.check().is_ok();
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&MAGIC);
        out.push(if valid { self.channel.len() as u8 } else { 0 });
        out.extend_from_slice(self.channel.as_bytes());
        out.extend_from_slice(&self.session.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.sent_us.to_be_bytes());
        let payload_len = u16::try_from(self.payload.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&payload_len.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// Reads one frame that fills `bytes` exactly.
    ///
    /// # Errors
    ///
    /// [`FrameError::Truncated`] for short input, [`FrameError::BadMagic`],
    /// [`FrameError::ChannelLen`] for a channel length of 0 or above 64,
    /// [`FrameError::ChannelUtf8`], [`FrameError::PayloadLen`] for a payload length above
    /// [`MAX_PAYLOAD`] (checked before anything is allocated), [`FrameError::Trailing`] when
    /// bytes remain after the payload.
    pub fn decode(bytes: &[u8]) -> Result<StreamFrame, FrameError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(4)? != MAGIC {
            return Err(FrameError::BadMagic);
        }
        let channel_len = usize::from(r.u8()?);
        if channel_len == 0 || channel_len > MAX_CHANNEL_LEN {
            return Err(FrameError::ChannelLen(channel_len));
        }
        let channel = std::str::from_utf8(r.take(channel_len)?)
            .map_err(|_| FrameError::ChannelUtf8)?
            .to_owned();
        let session = r.u64()?;
        let seq = r.u64()?;
        let sent_us = r.u64()?;
        let payload_len = usize::from(u16::from_be_bytes(r.array()?));
        if payload_len > MAX_PAYLOAD {
            return Err(FrameError::PayloadLen(payload_len));
        }
        let payload = r.take(payload_len)?.to_vec();
        let rest = bytes.len() - r.at;
        if rest > 0 {
            return Err(FrameError::Trailing(rest));
        }
        Ok(StreamFrame {
            channel,
            session,
            seq,
            sent_us,
            payload,
        })
    }
}

/// A cursor over the input that reports how many bytes a short read needed.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        let end = self.at + n;
        let out = self.bytes.get(self.at..end).ok_or(FrameError::Truncated {
            needed: end,
            got: self.bytes.len(),
        })?;
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let got = self.bytes.len();
        self.take(N)?
            .try_into()
            .map_err(|_| FrameError::Truncated { needed: N, got })
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.array::<1>()?[0])
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StreamFrame {
        StreamFrame {
            channel: "hearing".into(),
            session: 0x0102_0304_0506_0708,
            seq: 42,
            sent_us: 1_780_000_000_000_000,
            payload: vec![0x80, 33, 0, 1, 2, 3],
        }
    }

    #[test]
    fn round_trips_with_the_documented_layout() {
        let f = sample();
        let bytes = f.encode();
        assert_eq!(bytes.len(), f.encoded_len());
        assert_eq!(&bytes[..4], b"IGS1");
        assert_eq!(bytes[4], 7);
        assert_eq!(&bytes[5..12], b"hearing");
        assert_eq!(&bytes[12..20], &0x0102_0304_0506_0708u64.to_be_bytes());
        assert_eq!(&bytes[20..28], &42u64.to_be_bytes());
        assert_eq!(&bytes[36..38], &6u16.to_be_bytes());
        assert_eq!(&bytes[38..], &f.payload[..]);
        assert_eq!(StreamFrame::decode(&bytes), Ok(f));
    }

    #[test]
    fn extremes_round_trip() {
        for f in [
            StreamFrame {
                channel: "庭审直播".into(),
                payload: vec![],
                ..sample()
            },
            StreamFrame {
                channel: "c".repeat(64),
                session: u64::MAX,
                seq: u64::MAX,
                sent_us: 0,
                payload: vec![7; MAX_PAYLOAD],
            },
        ] {
            assert_eq!(f.check(), Ok(()));
            assert_eq!(StreamFrame::decode(&f.encode()), Ok(f));
        }
    }

    #[test]
    fn every_short_input_is_truncated() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(
                matches!(
                    StreamFrame::decode(&bytes[..len]),
                    Err(FrameError::Truncated { .. })
                ),
                "{len} bytes"
            );
        }
        assert_eq!(
            StreamFrame::decode(&bytes[..10]),
            Err(FrameError::Truncated {
                needed: 12,
                got: 10
            })
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = sample().encode();
        bytes.push(0);
        assert_eq!(StreamFrame::decode(&bytes), Err(FrameError::Trailing(1)));
        // two frames back to back are not one frame
        let two = [sample().encode(), sample().encode()].concat();
        assert_eq!(
            StreamFrame::decode(&two),
            Err(FrameError::Trailing(sample().encoded_len()))
        );
    }

    #[test]
    fn malformed_fields_are_refused() {
        let good = sample().encode();
        let mut bad = good.clone();
        bad[3] = b'2';
        assert_eq!(StreamFrame::decode(&bad), Err(FrameError::BadMagic));
        let mut bad = good.clone();
        bad[4] = 0;
        assert_eq!(StreamFrame::decode(&bad), Err(FrameError::ChannelLen(0)));
        let mut bad = good.clone();
        bad[4] = 65;
        assert_eq!(StreamFrame::decode(&bad), Err(FrameError::ChannelLen(65)));
        let mut bad = good.clone();
        bad[5] = 0xff;
        assert_eq!(StreamFrame::decode(&bad), Err(FrameError::ChannelUtf8));
        // a payload length above the cap, refused before the payload is looked for
        let mut bad = good[..38].to_vec();
        bad[36..38].copy_from_slice(&65_508u16.to_be_bytes());
        assert_eq!(
            StreamFrame::decode(&bad),
            Err(FrameError::PayloadLen(65_508))
        );
        // a payload length longer than what follows, or shorter
        let mut bad = good.clone();
        bad[36..38].copy_from_slice(&7u16.to_be_bytes());
        assert!(matches!(
            StreamFrame::decode(&bad),
            Err(FrameError::Truncated { .. })
        ));
        let mut bad = good.clone();
        bad[36..38].copy_from_slice(&5u16.to_be_bytes());
        assert_eq!(StreamFrame::decode(&bad), Err(FrameError::Trailing(1)));
        // a channel length that runs into the fields after it reads other bytes as UTF-8
        // or runs short, never past the input
        let mut bad = good.clone();
        bad[4] = 64;
        assert!(StreamFrame::decode(&bad).is_err());
    }

    #[test]
    fn frames_out_of_range_encode_to_refused_bytes() {
        for f in [
            StreamFrame {
                channel: String::new(),
                ..sample()
            },
            StreamFrame {
                channel: "c".repeat(65),
                ..sample()
            },
            StreamFrame {
                payload: vec![0; MAX_PAYLOAD + 1],
                ..sample()
            },
        ] {
            assert!(f.check().is_err());
            assert!(StreamFrame::decode(&f.encode()).is_err());
        }
        assert_eq!(
            StreamFrame {
                payload: vec![0; 70_000],
                ..sample()
            }
            .check(),
            Err(FrameError::PayloadLen(70_000))
        );
    }
}
