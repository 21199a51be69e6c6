//! `isogate bench`, the stream section: on a lab already running, the `hearing` channel
//! (court listens on port base + 6, internet emits to 127.0.0.1 at base + 7) fed by this
//! process with RTP packets as a live MPEG-TS source sends them (RFC 3550 header, payload
//! type 33, seven 188-byte transport packets of ISO/IEC 13818-1 each: 1316 payload bytes),
//! and received back on the emit address by this process too.
//!
//! ```text
//!   bench UDP socket ─► court :N+6 ─► gate ═ link ═► internet ─► :N+7 bench UDP socket
//!   (send instant, index in the first TS packet's body)        (receive instant)
//! ```
//!
//! Two figures, each with the cores each node used meanwhile: the latency the gateway adds
//! per packet at a steady 8 Mbit/s (p50, p99, from the instant the packet is sent to the
//! instant it is received), and the highest bitrate carried with under 0.1 % loss, stepping
//! up from 8 Mbit/s (8, 16, … 256 Mbit/s, 2 s each, stopping at the first step that loses
//! 0.1 % or more), beside the machine's loopback UDP throughput.

use super::{BenchError, CpuUse, Lab, io_err, percentile};
use crate::cli::init::LabLink;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// RTP payload type of MPEG-TS (RFC 3551 §6, RFC 2250).
const PT_MP2T: u8 = 33;
/// Transport packets per RTP packet: 7 × 188 = 1316 bytes, the usual for a 1500-byte MTU.
const TS_PER_PACKET: usize = 7;
/// One MPEG-TS packet (ISO/IEC 13818-1 §2.4.3.2).
const TS_PACKET: usize = 188;
/// The RTP header without CSRCs or extension (RFC 3550 §5.1).
const RTP_HEADER: usize = 12;
/// A whole RTP packet of the bench: 1328 bytes.
const PACKET: usize = RTP_HEADER + TS_PER_PACKET * TS_PACKET;
/// The PID of the bench's transport packets.
const PID: u16 = 0x100;
/// The SSRC the bench's stream uses.
const SSRC: u32 = 0x1b3e_c0de;
/// The steady rate of the latency figure, in Mbit/s.
const LATENCY_MBIT: u64 = 8;
/// How long the latency figure sends, in seconds.
const LATENCY_SECS: u64 = 5;
/// The bitrate steps, in Mbit/s, 2 s each.
const STEPS_MBIT: [u64; 6] = [8, 16, 32, 64, 128, 256];
/// How long each step sends.
const STEP: Duration = Duration::from_secs(2);
/// Loss at or above which a step fails, in percent.
const MAX_LOSS_PERCENT: f64 = 0.1;
/// How long after the last packet of a phase its stragglers may still arrive (above every
/// delay budget of the lab).
const DRAIN: Duration = Duration::from_millis(500);

/// The bench's RTP packet number `index`: header (version 2, payload type 33, sequence
/// number and 90 kHz timestamp from the index, the bench's SSRC) and seven transport
/// packets of PID 0x100 (sync byte 0x47, payload only, continuity counter running), the
/// index big-endian in the first one's body.
fn packet(index: u64) -> [u8; PACKET] {
    let mut p = [0xffu8; PACKET];
    p[0] = 0x80;
    p[1] = PT_MP2T;
    p[2..4].copy_from_slice(&(index as u16).to_be_bytes());
    // a 1328-byte packet every 1.328 ms at 8 Mbit/s: about 120 ticks of 90 kHz
    p[4..8].copy_from_slice(&((index as u32).wrapping_mul(120)).to_be_bytes());
    p[8..12].copy_from_slice(&SSRC.to_be_bytes());
    for (k, ts) in p[RTP_HEADER..].chunks_exact_mut(TS_PACKET).enumerate() {
        let cc = ((index * TS_PER_PACKET as u64 + k as u64) & 0x0f) as u8;
        ts[0] = 0x47;
        ts[1] = (PID >> 8) as u8 & 0x1f;
        ts[2] = PID as u8;
        ts[3] = 0x10 | cc;
    }
    p[RTP_HEADER + 4..RTP_HEADER + 12].copy_from_slice(&index.to_be_bytes());
    p
}

/// The index of a bench packet, if `p` is one.
fn index_of(p: &[u8]) -> Option<u64> {
    if p.len() != PACKET || p[1] & 0x7f != PT_MP2T {
        return None;
    }
    let b = p.get(RTP_HEADER + 4..RTP_HEADER + 12)?;
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

/// Packets per second at `mbit` Mbit/s of whole RTP packets (UDP payloads).
fn packets_per_second(mbit: u64) -> f64 {
    (mbit * 1_000_000) as f64 / (PACKET * 8) as f64
}

/// The sending side: a socket toward the court's `listen`, the next index, and the
/// instant each packet was sent.
struct Sender {
    socket: UdpSocket,
    to: SocketAddr,
    next: u64,
    sent_at: Vec<Instant>,
}

impl Sender {
    /// Sends at `mbit` Mbit/s for `how_long`, paced packet by packet (a late sender catches
    /// up at once, so the mean rate holds); returns the range of indexes sent.
    fn send(&mut self, mbit: u64, how_long: Duration) -> Result<std::ops::Range<u64>, BenchError> {
        let pps = packets_per_second(mbit);
        let n = (pps * how_long.as_secs_f64()).round() as u64;
        let first = self.next;
        let start = Instant::now();
        for i in 0..n {
            let due = start + Duration::from_secs_f64(i as f64 / pps);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let p = packet(self.next);
            self.sent_at.push(Instant::now());
            self.socket
                .send_to(&p, self.to)
                .map_err(io_err("sending a stream packet"))?;
            self.next += 1;
        }
        Ok(first..self.next)
    }
}

/// What arrived on the emit address: (index, instant) pairs, as the receiving thread read
/// them.
struct Arrivals {
    rx: mpsc::Receiver<(u64, Instant)>,
    got: Vec<(u64, Instant)>,
}

impl Arrivals {
    /// Waits `DRAIN`, then returns the arrivals of `range` (each index once).
    fn of(&mut self, range: &std::ops::Range<u64>) -> Vec<(u64, Instant)> {
        std::thread::sleep(DRAIN);
        self.got.extend(self.rx.try_iter());
        let mut mine: Vec<(u64, Instant)> = self
            .got
            .iter()
            .copied()
            .filter(|(i, _)| range.contains(i))
            .collect();
        mine.sort_by_key(|(i, _)| *i);
        mine.dedup_by_key(|(i, _)| *i);
        self.got.retain(|(i, _)| *i >= range.end);
        mine
    }
}

fn loss_percent(sent: u64, got: usize) -> f64 {
    if sent == 0 {
        return 0.0;
    }
    100.0 * sent.saturating_sub(got as u64) as f64 / sent as f64
}

/// Runs the stream section on a running lab whose `hearing` channel allows the bench's
/// bitrates; `udp_mib` is this machine's loopback UDP throughput in MiB/s.
pub(super) fn run(lab: &Lab, link: LabLink, udp_mib: f64) -> Result<(), BenchError> {
    let emit = UdpSocket::bind(("127.0.0.1", lab.port_base + 7))
        .map_err(io_err("binding the hearing's emit address"))?;
    emit.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(io_err("emit socket timeout"))?;
    // room for a burst at the highest step while the reading thread is descheduled
    let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&emit, 8 << 20);
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let reader = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = emit.recv(&mut buf) {
                    let at = Instant::now();
                    if let Some(i) = buf.get(..n).and_then(index_of) {
                        let _ = tx.send((i, at));
                    }
                }
            }
        })
    };
    let result = measure(lab, link, udp_mib, rx);
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    result
}

fn measure(
    lab: &Lab,
    link: LabLink,
    udp_mib: f64,
    rx: mpsc::Receiver<(u64, Instant)>,
) -> Result<(), BenchError> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(io_err("binding the stream's source"))?;
    let mut sender = Sender {
        socket,
        to: SocketAddr::from((Ipv4Addr::LOCALHOST, lab.port_base + 6)),
        next: 0,
        sent_at: Vec::new(),
    };
    let mut arrivals = Arrivals {
        rx,
        got: Vec::new(),
    };
    println!("  stream: RTP packets of {PACKET} bytes (payload type 33, 7 TS packets each)");
    // a first second starts the stream on both nodes (and pins its SSRC)
    let warm = sender.send(LATENCY_MBIT, Duration::from_secs(1))?;
    if arrivals.of(&warm).is_empty() {
        return Err(BenchError::Timeout(format!(
            "stream packets to reach 127.0.0.1:{} through the hearing channel (see {})",
            lab.port_base + 7,
            lab.dir.display()
        )));
    }

    let cpu = CpuUse::start(lab);
    let range = sender.send(LATENCY_MBIT, Duration::from_secs(LATENCY_SECS))?;
    let cores = cpu.cores();
    let got = arrivals.of(&range);
    let mut ms: Vec<f64> = got
        .iter()
        .filter_map(|(i, at)| {
            let sent = sender.sent_at.get(usize::try_from(*i).ok()?)?;
            Some(at.saturating_duration_since(*sent).as_secs_f64() * 1000.0)
        })
        .collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let target = match link {
        LabLink::Quic => 20.0,
        LabLink::Diode => 50.0,
    };
    let (p50, p99) = (percentile(&ms, 0.5), percentile(&ms, 0.99));
    println!(
        "  added latency at {LATENCY_MBIT} Mbit/s, {LATENCY_SECS} s   p50 {p50:6.2} ms, p99 {p99:6.2} ms  ({:.2} x target p99 {target:.0} ms; loss {:.3} %; {cores})",
        p99 / target,
        loss_percent(range.end - range.start, got.len()),
    );

    let udp_mbit = udp_mib * (1u64 << 20) as f64 * 8.0 / 1e6;
    let mut best = None;
    for mbit in STEPS_MBIT {
        let cpu = CpuUse::start(lab);
        let range = sender.send(mbit, STEP)?;
        let cores = cpu.cores();
        let sent = range.end - range.start;
        let got = arrivals.of(&range);
        let loss = loss_percent(sent, got.len());
        println!(
            "    {mbit:4} Mbit/s for {} s: {sent} sent, {} received, loss {loss:.3} %  ({cores})",
            STEP.as_secs(),
            got.len()
        );
        if loss >= MAX_LOSS_PERCENT {
            break;
        }
        best = Some(mbit);
    }
    match best {
        Some(mbit) => println!(
            "  highest rate with < {MAX_LOSS_PERCENT} % loss   {mbit:8} Mbit/s  ({:.3} x loopback UDP {udp_mbit:.0} Mbit/s{})",
            mbit as f64 / udp_mbit,
            if Some(mbit) == STEPS_MBIT.last().copied() {
                "; the highest step"
            } else {
                ""
            }
        ),
        None => println!(
            "  highest rate with < {MAX_LOSS_PERCENT} % loss   none: {} Mbit/s already lost more",
            STEPS_MBIT[0]
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_packets_are_rtp_carrying_mpeg_ts_and_give_back_their_index() {
        for index in [0u64, 1, 65_535, 65_536, u64::from(u32::MAX) + 7] {
            let p = packet(index);
            assert_eq!(p.len(), 1328);
            assert_eq!(p[0] >> 6, 2, "RTP version 2");
            assert_eq!(p[0] & 0x3f, 0, "no padding, extension or CSRC");
            assert_eq!(p[1], 33);
            assert_eq!(u16::from_be_bytes([p[2], p[3]]), index as u16);
            for ts in p[12..].chunks_exact(188) {
                assert_eq!(ts[0], 0x47);
                assert_eq!(u16::from_be_bytes([ts[1], ts[2]]) & 0x1fff, PID);
            }
            assert_eq!(index_of(&p), Some(index));
        }
        assert_eq!(index_of(&packet(3)[..100]), None);
    }

    #[test]
    fn eight_megabits_is_about_753_packets_a_second() {
        assert!((packets_per_second(8) - 753.0).abs() < 1.0);
        assert_eq!(loss_percent(1000, 999), 0.1);
        assert_eq!(loss_percent(0, 0), 0.0);
    }
}
