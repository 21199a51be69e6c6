//! The RTP header reader of the stream gate (RFC 3550 §5.1, §5.3.1): checks that a UDP
//! payload is a well-formed RTP packet and tells where its payload lies. It owns nothing
//! but that reading; what is allowed (payload types, SSRC pinning) is the gate's.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! |                           timestamp                           |
//! |           synchronization source (SSRC) identifier            |
//! |            contributing source (CSRC) identifiers  × CC       |
//! | [extension: profile (16) | length in 32-bit words (16) | …]   |
//! | payload …                 [padding …, last byte = pad count]  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::ops::Range;

use super::DropReason;

/// Length of the fixed RTP header, in bytes (RFC 3550 §5.1).
pub const FIXED_HEADER_LEN: usize = 12;

/// The RTP version this reader accepts (RFC 3550: 2).
pub const VERSION: u8 = 2;

/// The static payload type of MPEG-2 transport streams (RFC 3551 §6, RFC 2250 §2): the
/// payload is a whole number of 188-byte TS packets.
pub const MPEG_TS_PAYLOAD_TYPE: u8 = 33;

/// The fields of a valid RTP header, and where the payload lies in the packet it was read
/// from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpHeader {
    /// The marker bit (M): its meaning is the profile's (often the end of a video frame).
    pub marker: bool,
    /// The payload type (PT), 0..=127.
    pub payload_type: u8,
    /// The sequence number, +1 per packet, wrapping at 2^16.
    pub sequence_number: u16,
    /// The RTP timestamp, in the payload format's clock rate (90 kHz for video).
    pub timestamp: u32,
    /// The synchronization source identifier.
    pub ssrc: u32,
    /// The number of contributing source identifiers (CC), 0..=15.
    pub csrc_count: u8,
    /// Bytes of header before the payload: 12 + 4·CC, plus the extension header if any.
    pub header_len: usize,
    /// Where the payload lies in the packet, padding excluded; never empty.
    pub payload: Range<usize>,
}

impl RtpHeader {
    /// Reads the RTP header of `packet` (one UDP payload), per RFC 3550 §5.1 and §5.3.1.
    ///
    /// Checks: at least 12 bytes; version 2; the 4·CC bytes of CSRC identifiers present;
    /// with X set, the 4-byte extension header present and its length (in 32-bit words)
    /// inside the packet; with P set, the last byte (the padding count, which includes
    /// itself) at least 1 and at most the bytes after the header; a non-empty payload.
    ///
    /// # Errors
    ///
    /// [`DropReason::RtpMalformed`] when any check fails.
    pub fn read(packet: &[u8]) -> Result<RtpHeader, DropReason> {
        let bad = DropReason::RtpMalformed;
        let fixed: &[u8; FIXED_HEADER_LEN] = packet
            .get(..FIXED_HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(bad)?;
        let [b0, b1, s0, s1, t0, t1, t2, t3, i0, i1, i2, i3] = *fixed;
        if b0 >> 6 != VERSION {
            return Err(bad);
        }
        let padding = b0 & 0x20 != 0;
        let extension = b0 & 0x10 != 0;
        let csrc_count = b0 & 0x0f;
        let mut header_len = FIXED_HEADER_LEN + 4 * usize::from(csrc_count);
        if header_len > packet.len() {
            return Err(bad);
        }
        if extension {
            let ext = packet.get(header_len..header_len + 4).ok_or(bad)?;
            let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
            header_len += 4 + 4 * words;
            if header_len > packet.len() {
                return Err(bad);
            }
        }
        let mut end = packet.len();
        if padding {
            let count = usize::from(*packet.last().ok_or(bad)?);
            if count == 0 || count > end - header_len {
                return Err(bad);
            }
            end -= count;
        }
        if end <= header_len {
            return Err(bad);
        }
        Ok(RtpHeader {
            marker: b1 & 0x80 != 0,
            payload_type: b1 & 0x7f,
            sequence_number: u16::from_be_bytes([s0, s1]),
            timestamp: u32::from_be_bytes([t0, t1, t2, t3]),
            ssrc: u32::from_be_bytes([i0, i1, i2, i3]),
            csrc_count,
            header_len,
            payload: header_len..end,
        })
    }

    /// The payload bytes of `packet`, the packet this header was read from (empty if it
    /// is another, shorter packet).
    pub fn payload_of<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        packet.get(self.payload.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An RTP packet: version 2, the given flags, CSRCs, extension words and padding.
    pub(crate) fn packet(
        pt: u8,
        seq: u16,
        ssrc: u32,
        csrcs: u8,
        ext_words: Option<u16>,
        payload: &[u8],
        pad: u8,
    ) -> Vec<u8> {
        let mut p = Vec::new();
        let b0 = (2 << 6)
            | if pad > 0 { 0x20 } else { 0 }
            | if ext_words.is_some() { 0x10 } else { 0 }
            | csrcs;
        p.push(b0);
        p.push(0x80 | pt);
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&90_000u32.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        for i in 0..csrcs {
            p.extend_from_slice(&u32::from(i).to_be_bytes());
        }
        if let Some(words) = ext_words {
            p.extend_from_slice(&0xbedeu16.to_be_bytes());
            p.extend_from_slice(&words.to_be_bytes());
            p.extend(std::iter::repeat_n(0xee, 4 * usize::from(words)));
        }
        p.extend_from_slice(payload);
        if pad > 0 {
            p.extend(std::iter::repeat_n(0, usize::from(pad) - 1));
            p.push(pad);
        }
        p
    }

    #[test]
    fn reads_a_plain_packet() {
        let p = packet(96, 7, 0xdead_beef, 0, None, b"abc", 0);
        let h = RtpHeader::read(&p).unwrap();
        assert_eq!(
            h,
            RtpHeader {
                marker: true,
                payload_type: 96,
                sequence_number: 7,
                timestamp: 90_000,
                ssrc: 0xdead_beef,
                csrc_count: 0,
                header_len: 12,
                payload: 12..15,
            }
        );
        assert_eq!(h.payload_of(&p), b"abc");
        assert_eq!(h.payload_of(b"short"), b"");
    }

    #[test]
    fn csrcs_extension_and_padding_are_skipped() {
        let p = packet(33, 1, 5, 3, Some(2), b"payload", 4);
        let h = RtpHeader::read(&p).unwrap();
        assert_eq!(h.csrc_count, 3);
        assert_eq!(h.header_len, 12 + 12 + 4 + 8);
        assert_eq!(h.payload_of(&p), b"payload");
        // an empty extension (length 0) and padding of one byte (the count itself)
        let p = packet(33, 1, 5, 15, Some(0), b"x", 1);
        let h = RtpHeader::read(&p).unwrap();
        assert_eq!(h.header_len, 12 + 60 + 4);
        assert_eq!(h.payload_of(&p), b"x");
    }

    #[test]
    fn too_short_or_wrong_version_is_malformed() {
        let p = packet(96, 1, 1, 0, None, b"abc", 0);
        for len in 0..12 {
            assert_eq!(RtpHeader::read(&p[..len]), Err(DropReason::RtpMalformed));
        }
        for version in [0u8, 1, 3] {
            let mut q = p.clone();
            q[0] = (q[0] & 0x3f) | (version << 6);
            assert_eq!(
                RtpHeader::read(&q),
                Err(DropReason::RtpMalformed),
                "v{version}"
            );
        }
    }

    #[test]
    fn csrc_count_beyond_the_packet_is_malformed() {
        // CC = 2 claims 8 bytes after the fixed header; only 4 are there
        let mut p = packet(96, 1, 1, 0, None, b"abcd", 0);
        p[0] |= 2;
        assert_eq!(RtpHeader::read(&p), Err(DropReason::RtpMalformed));
        // exactly the CSRCs and nothing after: no payload
        p.extend_from_slice(b"efgh");
        assert_eq!(RtpHeader::read(&p), Err(DropReason::RtpMalformed));
        p.push(1);
        assert_eq!(RtpHeader::read(&p).unwrap().payload, 20..21);
    }

    #[test]
    fn extension_length_beyond_the_packet_is_malformed() {
        // X set but no room for the 4-byte extension header
        let mut p = packet(96, 1, 1, 0, None, b"ab", 0);
        p[0] |= 0x10;
        assert_eq!(RtpHeader::read(&p), Err(DropReason::RtpMalformed));
        // an extension claiming more words than the packet holds
        let mut p = packet(96, 1, 1, 0, Some(1), b"abcdefgh", 0);
        p[14..16].copy_from_slice(&4u16.to_be_bytes()); // 16 bytes claimed, 4 + 8 there
        assert_eq!(RtpHeader::read(&p), Err(DropReason::RtpMalformed));
        // the largest length: 65535 words
        p[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(RtpHeader::read(&p), Err(DropReason::RtpMalformed));
        // an extension that ends exactly at the end: no payload
        let mut p = packet(96, 1, 1, 0, Some(1), b"abcd", 0);
        p[14..16].copy_from_slice(&2u16.to_be_bytes());
        assert_eq!(RtpHeader::read(&p), Err(DropReason::RtpMalformed));
    }

    #[test]
    fn padding_counts_out_of_range_are_malformed() {
        // P set, count 0
        let mut p = packet(96, 1, 1, 0, None, b"abc", 0);
        p[0] |= 0x20;
        p.push(0);
        assert_eq!(RtpHeader::read(&p), Err(DropReason::RtpMalformed));
        // count larger than the bytes after the header
        let mut p = packet(96, 1, 1, 0, None, b"abc", 0);
        p[0] |= 0x20;
        p.push(5);
        assert_eq!(RtpHeader::read(&p), Err(DropReason::RtpMalformed));
        // count equal to the bytes after the header: the payload would be empty
        let mut p = packet(96, 1, 1, 0, None, b"abc", 0);
        p[0] |= 0x20;
        p.push(4);
        assert_eq!(RtpHeader::read(&p), Err(DropReason::RtpMalformed));
        // one less: one byte of payload
        let mut p = packet(96, 1, 1, 0, None, b"abc", 0);
        p[0] |= 0x20;
        p.push(3);
        assert_eq!(RtpHeader::read(&p).unwrap().payload, 12..13);
        // padding counted after CSRCs and an extension, not into them
        let p = packet(96, 1, 1, 1, Some(1), b"z", 255);
        assert_eq!(RtpHeader::read(&p).unwrap().payload, 24..25);
        let mut q = p.clone();
        *q.last_mut().unwrap() = 0; // count 0 with P set
        assert_eq!(RtpHeader::read(&q), Err(DropReason::RtpMalformed));
    }

    #[test]
    fn a_header_without_payload_is_malformed() {
        let p = packet(96, 1, 1, 0, None, b"", 0);
        assert_eq!(p.len(), 12);
        assert_eq!(RtpHeader::read(&p), Err(DropReason::RtpMalformed));
    }
}
