//! The stream gate: the policy check every stream packet passes, on the sending node (with
//! its source address) and again on the receiving node (its own rules, no source). It owns
//! the order of the checks, the SSRC a stream is pinned to and the bitrate's token bucket.
//!
//! ```text
//!  packet ─► size ─► source ─► headers (RTP: RFC 3550, payload type, TS of PT 33;
//!                               udp-ts: ISO/IEC 13818-1) ─► SSRC pin ─► token bucket ─► Admitted
//!             └──────────────── the first failing check: DropReason ────────────────┘
//! ```
//!
//! Sans-IO: the caller gives the packet, its source and a monotonic `now_ms`.

use std::net::IpAddr;

use super::rtp::{MPEG_TS_PAYLOAD_TYPE, RtpHeader};
use super::ts::check_ts;
use super::{DropReason, Protocol, StreamRules};

/// A packet the gate let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// The packet's RTP SSRC (the stream's pinned one); `None` for `udp-ts`.
    pub ssrc: Option<u32>,
    /// The packet's length in bytes (the UDP payload).
    pub bytes: usize,
}

/// The policy check of one stream channel, with the state it keeps between packets: the
/// SSRC pinned (RTP) and the bitrate's token bucket.
#[derive(Debug, Clone)]
pub struct Gate {
    rules: StreamRules,
    /// The SSRC of the first admitted RTP packet since the start or the last reset.
    ssrc: Option<u32>,
    /// Tokens in the bucket, in millibits (1/1000 bit), so that refills of a millisecond
    /// are exact at any bitrate.
    tokens_mbit: u64,
    /// When the bucket was last refilled (ms, the caller's monotonic clock).
    refilled_ms: Option<u64>,
}

impl Gate {
    /// A gate under `rules`, with no SSRC pinned and a full bucket (one second of the
    /// rules' bitrate).
    pub fn new(rules: StreamRules) -> Gate {
        let tokens_mbit = capacity_mbit(&rules);
        Gate {
            rules,
            ssrc: None,
            tokens_mbit,
            refilled_ms: None,
        }
    }

    /// Replaces the rules in force (a policy reload). The SSRC pin is kept; the bucket
    /// keeps its tokens, cut down to the new capacity.
    pub fn set_rules(&mut self, rules: StreamRules) {
        self.tokens_mbit = self.tokens_mbit.min(capacity_mbit(&rules));
        self.rules = rules;
    }

    /// The rules in force.
    pub fn rules(&self) -> &StreamRules {
        &self.rules
    }

    /// The SSRC the stream is pinned to, if an RTP packet was admitted since the start or
    /// the last [`Gate::reset`].
    pub fn pinned_ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Forgets the pinned SSRC (the stream stopped): the next admitted packet's SSRC wins.
    pub fn reset(&mut self) {
        self.ssrc = None;
    }

    /// Checks one packet (`packet`: a UDP payload, at `now_ms` on the caller's monotonic
    /// clock, from `source`, or `None` where the source is not checked: the receiving node).
    ///
    /// The checks, in this order, the first failing one giving the reason:
    /// 1. size: at most `max_packet_bytes` ([`DropReason::PacketSize`]);
    /// 2. source, when given: inside one of `sources` ([`DropReason::Source`]);
    /// 3. headers: RTP (RFC 3550) header valid ([`DropReason::RtpMalformed`]), payload type
    ///    allowed ([`DropReason::PayloadType`]), and for payload type 33 with `pids` given,
    ///    the TS packets inside; udp-ts: whole TS packets (ISO/IEC 13818-1) of allowed PIDs
    ///    ([`DropReason::TsMalformed`], [`DropReason::Pid`]);
    /// 4. RTP only: the SSRC is the pinned one; the first admitted SSRC is pinned until
    ///    [`Gate::reset`] ([`DropReason::Ssrc`]);
    /// 5. the token bucket: it holds `max_bitrate_bps` bits (one second's worth), refilled
    ///    at `max_bitrate_bps` bits per second; a packet takes 8·len bits
    ///    ([`DropReason::OverRate`]). A dropped packet takes no tokens and pins nothing.
    ///
    /// # Errors
    ///
    /// The [`DropReason`] of the first check that fails.
    pub fn admit(
        &mut self,
        now_ms: u64,
        source: Option<IpAddr>,
        packet: &[u8],
    ) -> Result<Admitted, DropReason> {
        let rules = &self.rules;
        if packet.len() > rules.max_packet_bytes {
            return Err(DropReason::PacketSize);
        }
        if let Some(ip) = source
            && !rules.sources.iter().any(|net| net.contains(ip))
        {
            return Err(DropReason::Source);
        }
        let ssrc = match rules.protocol {
            Protocol::Rtp => {
                let header = RtpHeader::read(packet)?;
                if !rules.payload_types.contains(&header.payload_type) {
                    return Err(DropReason::PayloadType);
                }
                if header.payload_type == MPEG_TS_PAYLOAD_TYPE && !rules.pids.is_empty() {
                    check_ts(header.payload_of(packet), &rules.pids)?;
                }
                if self.ssrc.is_some_and(|pinned| pinned != header.ssrc) {
                    return Err(DropReason::Ssrc);
                }
                Some(header.ssrc)
            }
            Protocol::UdpTs => {
                check_ts(packet, &rules.pids)?;
                None
            }
        };
        self.take_tokens(now_ms, packet.len())?;
        if ssrc.is_some() {
            self.ssrc = ssrc;
        }
        Ok(Admitted {
            ssrc,
            bytes: packet.len(),
        })
    }

    /// Refills the bucket for the time since the last refill, then takes 8·`len` bits.
    fn take_tokens(&mut self, now_ms: u64, len: usize) -> Result<(), DropReason> {
        let rate = self.rules.max_bitrate_bps;
        let elapsed = match self.refilled_ms {
            Some(last) => now_ms.saturating_sub(last),
            None => 0,
        };
        // a clock that goes back refills nothing and keeps the later time
        self.refilled_ms = Some(self.refilled_ms.map_or(now_ms, |last| last.max(now_ms)));
        // millibits per ms = bits per second
        self.tokens_mbit = self
            .tokens_mbit
            .saturating_add(elapsed.saturating_mul(rate))
            .min(capacity_mbit(&self.rules));
        let cost = (len as u64).saturating_mul(8_000);
        if cost > self.tokens_mbit {
            return Err(DropReason::OverRate);
        }
        self.tokens_mbit -= cost;
        Ok(())
    }
}

/// The bucket's capacity in millibits: one second of the rules' bitrate.
fn capacity_mbit(rules: &StreamRules) -> u64 {
    rules.max_bitrate_bps.saturating_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::super::SourceNet;
    use super::super::rtp::tests::packet;
    use super::super::ts::tests::ts_packet;
    use super::*;

    const LO: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    fn rtp_rules() -> StreamRules {
        StreamRules {
            protocol: Protocol::Rtp,
            payload_types: vec![33, 96],
            max_packet_bytes: 1500,
            max_bitrate_bps: 20_000_000,
            pids: vec![],
            sources: vec![SourceNet {
                addr: "127.0.0.1".parse().unwrap(),
                prefix: 32,
            }],
        }
    }

    fn ts_rules() -> StreamRules {
        StreamRules {
            protocol: Protocol::UdpTs,
            payload_types: vec![],
            pids: vec![0, 256],
            ..rtp_rules()
        }
    }

    fn seven_ts(pid: u16) -> Vec<u8> {
        (0..7).flat_map(|_| ts_packet(pid)).collect()
    }

    #[test]
    fn a_good_rtp_packet_is_admitted_and_pins_its_ssrc() {
        let mut gate = Gate::new(rtp_rules());
        let p = packet(96, 1, 42, 0, None, &[0; 100], 0);
        assert_eq!(
            gate.admit(0, LO, &p),
            Ok(Admitted {
                ssrc: Some(42),
                bytes: 112
            })
        );
        assert_eq!(gate.pinned_ssrc(), Some(42));
        // the receiving node: no source to check
        assert!(gate.admit(0, None, &p).is_ok());
    }

    #[test]
    fn checks_run_in_order() {
        let mut gate = Gate::new(rtp_rules());
        let spoofed = Some("127.0.0.2".parse().unwrap());
        // too big beats everything
        let big = vec![0u8; 1501];
        assert_eq!(gate.admit(0, spoofed, &big), Err(DropReason::PacketSize));
        // a bad source beats a malformed header
        assert_eq!(gate.admit(0, spoofed, b"junk"), Err(DropReason::Source));
        assert_eq!(gate.admit(0, LO, b"junk"), Err(DropReason::RtpMalformed));
        // a malformed header beats a payload type
        let mut v1 = packet(0, 1, 1, 0, None, b"a", 0);
        v1[0] = (v1[0] & 0x3f) | 0x40;
        assert_eq!(gate.admit(0, LO, &v1), Err(DropReason::RtpMalformed));
        assert_eq!(
            gate.admit(0, LO, &packet(97, 1, 1, 0, None, b"a", 0)),
            Err(DropReason::PayloadType)
        );
        // a payload type beats the SSRC pin
        gate.admit(0, LO, &packet(96, 1, 1, 0, None, b"a", 0))
            .unwrap();
        assert_eq!(
            gate.admit(0, LO, &packet(97, 2, 2, 0, None, b"a", 0)),
            Err(DropReason::PayloadType)
        );
        assert_eq!(
            gate.admit(0, LO, &packet(96, 2, 2, 0, None, b"a", 0)),
            Err(DropReason::Ssrc)
        );
        // the SSRC pin beats the bitrate: a tiny budget, spent
        let mut rules = rtp_rules();
        rules.max_bitrate_bps = 8 * 13;
        let mut gate = Gate::new(rules);
        gate.admit(0, LO, &packet(96, 1, 1, 0, None, b"a", 0))
            .unwrap();
        assert_eq!(
            gate.admit(0, LO, &packet(96, 2, 2, 0, None, b"a", 0)),
            Err(DropReason::Ssrc)
        );
        assert_eq!(
            gate.admit(0, LO, &packet(96, 2, 1, 0, None, b"a", 0)),
            Err(DropReason::OverRate)
        );
    }

    #[test]
    fn the_ts_inside_rtp_is_checked_only_when_pids_are_given() {
        let mut gate = Gate::new(rtp_rules());
        let ts = packet(33, 1, 9, 0, None, &seven_ts(300), 0);
        assert!(gate.admit(0, LO, &ts).is_ok());
        let broken = packet(33, 2, 9, 0, None, &seven_ts(300)[..1000], 0);
        assert!(gate.admit(0, LO, &broken).is_ok());
        let mut rules = rtp_rules();
        rules.max_packet_bytes = 1500;
        rules.pids = vec![256];
        gate.set_rules(rules);
        assert_eq!(gate.admit(0, LO, &ts), Err(DropReason::Pid));
        assert_eq!(gate.admit(0, LO, &broken), Err(DropReason::TsMalformed));
        let good = packet(33, 3, 9, 0, None, &seven_ts(256), 0);
        assert!(gate.admit(0, LO, &good).is_ok());
        // other payload types are not read as TS
        assert!(
            gate.admit(0, LO, &packet(96, 4, 9, 0, None, b"not ts", 0))
                .is_ok()
        );
    }

    #[test]
    fn udp_ts_is_checked_for_sync_and_pids() {
        let mut gate = Gate::new(ts_rules());
        assert_eq!(
            gate.admit(0, LO, &seven_ts(256)),
            Ok(Admitted {
                ssrc: None,
                bytes: 1316
            })
        );
        assert_eq!(gate.admit(0, LO, &seven_ts(257)), Err(DropReason::Pid));
        assert_eq!(
            gate.admit(0, LO, &seven_ts(256)[..1315]),
            Err(DropReason::TsMalformed)
        );
        // an RTP packet on a udp-ts channel is not TS
        let rtp = packet(33, 1, 9, 0, None, &seven_ts(256), 0);
        assert_eq!(gate.admit(0, LO, &rtp), Err(DropReason::TsMalformed));
        assert_eq!(gate.pinned_ssrc(), None);
    }

    #[test]
    fn the_ssrc_pin_holds_until_reset_and_survives_a_reload() {
        let mut gate = Gate::new(rtp_rules());
        let a = |seq| packet(96, seq, 0xaaaa, 0, None, b"x", 0);
        let b = |seq| packet(96, seq, 0xbbbb, 0, None, b"x", 0);
        // a packet dropped before the pin does not pin
        assert_eq!(
            gate.admit(0, LO, &packet(97, 1, 0xbbbb, 0, None, b"x", 0)),
            Err(DropReason::PayloadType)
        );
        assert_eq!(gate.pinned_ssrc(), None);
        assert!(gate.admit(0, LO, &a(1)).is_ok());
        assert_eq!(gate.admit(0, LO, &b(1)), Err(DropReason::Ssrc));
        gate.set_rules(rtp_rules());
        assert_eq!(gate.pinned_ssrc(), Some(0xaaaa));
        assert_eq!(gate.admit(0, LO, &b(2)), Err(DropReason::Ssrc));
        assert!(gate.admit(0, LO, &a(2)).is_ok());
        gate.reset();
        assert_eq!(gate.pinned_ssrc(), None);
        assert!(gate.admit(0, LO, &b(3)).is_ok());
        assert_eq!(gate.admit(0, LO, &a(3)), Err(DropReason::Ssrc));
        assert_eq!(gate.pinned_ssrc(), Some(0xbbbb));
    }

    #[test]
    fn a_packet_over_rate_pins_nothing() {
        let mut rules = rtp_rules();
        rules.max_bitrate_bps = 8 * 100; // 100 bytes per second
        let mut gate = Gate::new(rules);
        let big = packet(96, 1, 7, 0, None, &[0; 120], 0);
        assert_eq!(gate.admit(0, LO, &big), Err(DropReason::OverRate));
        assert_eq!(gate.pinned_ssrc(), None);
        let small = packet(96, 2, 8, 0, None, &[0; 8], 0);
        assert!(gate.admit(0, LO, &small).is_ok());
        assert_eq!(gate.pinned_ssrc(), Some(8));
    }

    #[test]
    fn the_token_bucket_refills_with_time() {
        // 1316-byte packets at 8 Mbit/s: 10_528 bits each; the bucket holds 1 s
        let mut rules = ts_rules();
        rules.max_bitrate_bps = 8_000_000;
        let mut gate = Gate::new(rules);
        let p = seven_ts(256);
        let bits = 8 * p.len() as u64;
        let burst = 8_000_000 / bits; // 759 packets fit in the full bucket
        for i in 0..burst {
            assert!(gate.admit(0, LO, &p).is_ok(), "packet {i} of the burst");
        }
        assert_eq!(gate.admit(0, LO, &p), Err(DropReason::OverRate));
        // 8_000_000 - 759·10_528 = 9_248 bits left; 1 ms adds 8_000 bits: one more packet
        assert!(gate.admit(1, LO, &p).is_ok());
        assert_eq!(gate.admit(1, LO, &p), Err(DropReason::OverRate));
        // at the steady rate (one packet per 1.316 ms) everything passes
        let mut passed = 0;
        for i in 0..10_000u64 {
            let now = 2 + i * 1316 / 1000;
            if gate.admit(now, LO, &p).is_ok() {
                passed += 1;
            }
        }
        assert!(passed >= 9_990, "{passed} of 10000 at the allowed rate");
        // at twice the rate, about half is dropped once the bucket is empty
        let start = 2 + 10_000 * 1316 / 1000 + 2000; // 2 s quiet: full again
        let mut passed = 0u64;
        let n = 20_000u64;
        for i in 0..n {
            let now = start + i * 658 / 1000;
            if gate.admit(now, LO, &p).is_ok() {
                passed += 1;
            }
        }
        // n packets over 13.16 s: 13.16 s of rate plus the 1 s burst
        let expected = (13_160 * 8_000 + 8_000_000) / bits;
        assert!(passed.abs_diff(expected) <= 2, "{passed} vs {expected}");
    }

    #[test]
    fn a_clock_that_goes_back_refills_nothing() {
        let mut rules = ts_rules();
        rules.max_bitrate_bps = 8 * 1316; // one packet per second
        let mut gate = Gate::new(rules);
        let p = seven_ts(256);
        assert!(gate.admit(10_000, LO, &p).is_ok());
        assert_eq!(gate.admit(5_000, LO, &p), Err(DropReason::OverRate));
        assert_eq!(gate.admit(10_500, LO, &p), Err(DropReason::OverRate));
        assert!(gate.admit(11_000, LO, &p).is_ok());
    }

    #[test]
    fn a_reload_to_a_lower_rate_cuts_the_bucket() {
        let mut gate = Gate::new(ts_rules());
        let p = seven_ts(256);
        assert!(gate.admit(0, LO, &p).is_ok());
        let mut rules = ts_rules();
        rules.max_bitrate_bps = 8 * 1316 * 2; // two packets per second
        gate.set_rules(rules);
        assert!(gate.admit(0, LO, &p).is_ok());
        assert!(gate.admit(0, LO, &p).is_ok());
        assert_eq!(gate.admit(0, LO, &p), Err(DropReason::OverRate));
        assert_eq!(gate.rules().max_bitrate_bps, 8 * 1316 * 2);
    }

    #[test]
    fn an_empty_source_list_admits_no_source() {
        let mut rules = rtp_rules();
        rules.sources.clear();
        let mut gate = Gate::new(rules);
        let p = packet(96, 1, 1, 0, None, b"x", 0);
        assert_eq!(gate.admit(0, LO, &p), Err(DropReason::Source));
        assert!(gate.admit(0, None, &p).is_ok());
    }
}
