//! The sans-IO core of the `stream` channel kind: live RTP (RFC 3550) or raw MPEG-TS
//! (ISO/IEC 13818-1) packets that cross one by one, never as files. This module owns the
//! values both nodes share: the validated rules of a stream policy, the reasons a packet is
//! dropped, and the counts a stream keeps for its audit record.
//!
//! ```text
//!  sending node:   UDP packet ─► gate (policy) ─► frame ══ link ══►
//!  receiving node: ══► frame ─► gate (its own policy) ─► playout (order, late dropped) ─► UDP
//! ```

pub mod frame;
pub mod gate;
pub mod playout;
pub mod rtp;
pub mod ts;

pub use frame::{FrameError, StreamFrame};
pub use gate::{Admitted, Gate};
pub use playout::{Out, Playout};
pub use rtp::RtpHeader;
pub use ts::check_ts;

use std::collections::BTreeMap;
use std::net::IpAddr;

/// What a stream channel carries on its UDP sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// RTP over UDP (RFC 3550), any payload: MPEG-TS as payload type 33 (RFC 2250), or
    /// dynamic types (96–127) for H.264, H.265, AAC, Opus.
    Rtp,
    /// Raw MPEG-TS over UDP: each datagram a whole number of 188-byte transport packets.
    UdpTs,
}

impl Protocol {
    /// The name used in the configuration: `rtp` or `udp-ts`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Rtp => "rtp",
            Protocol::UdpTs => "udp-ts",
        }
    }
}

/// One entry of a source address allow-list: an IPv4 or IPv6 network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceNet {
    /// The network address.
    pub addr: IpAddr,
    /// Prefix length in bits: 0..=32 for IPv4, 0..=128 for IPv6.
    pub prefix: u8,
}

impl SourceNet {
    /// Whether `ip` lies in this network. An IPv4 address never matches an IPv6 network
    /// (an IPv4-mapped IPv6 address is compared as the IPv4 address it maps).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let bits = u32::from(self.prefix.min(32));
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let bits = u32::from(self.prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The validated rules of a stream channel's policy file (its `[stream]` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRules {
    /// What the channel carries.
    pub protocol: Protocol,
    /// RTP payload types allowed (0..=127); empty for `udp-ts`.
    pub payload_types: Vec<u8>,
    /// Largest UDP payload accepted, in bytes.
    pub max_packet_bytes: usize,
    /// Highest bitrate, in bits per second; packets above it are dropped (`over_rate`).
    pub max_bitrate_bps: u64,
    /// MPEG-TS PIDs allowed (0..=8191); empty: not checked (only allowed for `rtp`). The
    /// null PID 0x1FFF is always allowed.
    pub pids: Vec<u16>,
    /// Source addresses allowed on the sending node; the receiving node does not check
    /// them (it only ever sees its peer).
    pub sources: Vec<SourceNet>,
}

/// Why a stream packet was dropped. Each is counted by its [`DropReason::code`] in
/// `isogate_stream_dropped_total{channel, reason}` and in the `stream_stopped` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// The RTP header is not valid (RFC 3550 §5.1): version, CSRC count, extension or
    /// padding lengths inconsistent with the packet, or no payload.
    RtpMalformed,
    /// The MPEG-TS data is not whole 188-byte packets starting with the sync byte 0x47.
    TsMalformed,
    /// The RTP payload type is not in the policy's list.
    PayloadType,
    /// The packet is larger than the policy's `max_packet_bytes`, or (sending node) than a
    /// QUIC datagram on the path to the peer carries.
    PacketSize,
    /// The packet would take the stream above the policy's bitrate.
    OverRate,
    /// An RTP packet of another SSRC than the one the stream is pinned to.
    Ssrc,
    /// An MPEG-TS packet of a PID the policy does not allow.
    Pid,
    /// The packet came from an address outside the policy's `sources`.
    Source,
    /// The packet arrived after later packets had already been emitted (receiving node).
    Late,
    /// The link frame around the packet could not be read, or names a channel that this
    /// node does not receive as a stream (receiving node).
    Frame,
    /// The link's outgoing queue was full (sending node).
    LinkBusy,
    /// The link to the peer was down (sending node).
    LinkDown,
}

impl DropReason {
    /// Every reason, in the order of their codes.
    pub const ALL: [DropReason; 12] = [
        DropReason::RtpMalformed,
        DropReason::TsMalformed,
        DropReason::PayloadType,
        DropReason::PacketSize,
        DropReason::OverRate,
        DropReason::Ssrc,
        DropReason::Pid,
        DropReason::Source,
        DropReason::Late,
        DropReason::Frame,
        DropReason::LinkBusy,
        DropReason::LinkDown,
    ];

    /// The reason code used in metrics labels and audit records (snake case, stable).
    pub fn code(self) -> &'static str {
        match self {
            DropReason::RtpMalformed => "rtp_malformed",
            DropReason::TsMalformed => "ts_malformed",
            DropReason::PayloadType => "payload_type",
            DropReason::PacketSize => "packet_size",
            DropReason::OverRate => "over_rate",
            DropReason::Ssrc => "ssrc",
            DropReason::Pid => "pid",
            DropReason::Source => "source",
            DropReason::Late => "late",
            DropReason::Frame => "frame",
            DropReason::LinkBusy => "link_busy",
            DropReason::LinkDown => "link_down",
        }
    }
}

/// What one stream has carried and dropped since it started: the body of its
/// `stream_stopped` audit record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Packets passed on (sent to the link, or emitted to the application).
    pub packets: u64,
    /// Bytes of those packets (UDP payloads).
    pub bytes: u64,
    /// Packets dropped, by reason.
    pub drops: BTreeMap<DropReason, u64>,
}

impl Counts {
    /// Counts one packet passed on.
    pub fn passed(&mut self, bytes: usize) {
        self.packets += 1;
        self.bytes += bytes as u64;
    }

    /// Counts one packet dropped.
    pub fn dropped(&mut self, reason: DropReason) {
        *self.drops.entry(reason).or_default() += 1;
    }

    /// Whether any packet was dropped over the bitrate.
    pub fn over_rate(&self) -> bool {
        self.drops.contains_key(&DropReason::OverRate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str, prefix: u8) -> SourceNet {
        SourceNet {
            addr: s.parse().unwrap(),
            prefix,
        }
    }

    #[test]
    fn source_networks_match_by_prefix() {
        let lo = net("127.0.0.1", 32);
        assert!(lo.contains("127.0.0.1".parse().unwrap()));
        assert!(!lo.contains("127.0.0.2".parse().unwrap()));
        assert!(lo.contains("::ffff:127.0.0.1".parse().unwrap()));
        let ten = net("10.1.0.0", 16);
        assert!(ten.contains("10.1.255.7".parse().unwrap()));
        assert!(!ten.contains("10.2.0.1".parse().unwrap()));
        assert!(net("0.0.0.0", 0).contains("192.0.2.1".parse().unwrap()));
        assert!(!net("0.0.0.0", 0).contains("2001:db8::1".parse().unwrap()));
        let v6 = net("2001:db8::", 32);
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::5".parse().unwrap()));
    }

    #[test]
    fn reason_codes_are_distinct() {
        let codes: std::collections::BTreeSet<_> =
            DropReason::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), DropReason::ALL.len());
    }

    #[test]
    fn counts_add_up() {
        let mut c = Counts::default();
        c.passed(1316);
        c.passed(1316);
        c.dropped(DropReason::OverRate);
        assert_eq!((c.packets, c.bytes), (2, 2632));
        assert!(c.over_rate());
    }
}
