//! UDP for the diode link, batched where it pays: on send, runs of equal-size datagrams go
//! out as one `sendmsg` with UDP GSO (segmentation offload); on receive, GRO hands back
//! several datagrams per call. The system calls and their control messages are quinn-udp's
//! (a well-kept crate that holds the unsafe code), so this crate stays free of `unsafe`.
//! This module also sizes the receive buffer and reads the kernel's drop counter for the
//! socket, so that datagrams lost before they reach the node are reported plainly.

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// A UDP socket with quinn-udp's batching state.
pub struct Udp {
    sock: UdpSocket,
    state: UdpSocketState,
}

impl Udp {
    /// Binds a blocking socket; `timeout` bounds each receive, which sleeps in the kernel
    /// until a datagram or the timeout comes (an idle link costs no CPU).
    pub fn bind(addr: SocketAddr, timeout: Duration) -> io::Result<Udp> {
        let sock = UdpSocket::bind(addr)?;
        let state = UdpSocketState::new((&sock).into())?;
        // quinn-udp makes the socket non-blocking (it is written for an async runtime): a
        // receive would then return at once and the thread's loop spin on an idle link
        sock.set_nonblocking(false)?;
        sock.set_read_timeout(Some(timeout))?;
        Ok(Udp { sock, state })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// Asks for a receive buffer of `bytes`; returns what the kernel granted (half what
    /// it reports: Linux doubles the size it grants, for its bookkeeping). With
    /// CAP_NET_ADMIN the request may exceed `net.core.rmem_max` (SO_RCVBUFFORCE);
    /// otherwise the kernel caps it there.
    pub fn set_recv_buffer(&self, bytes: usize) -> io::Result<usize> {
        if rustix::net::sockopt::set_socket_recv_buffer_size_force(&self.sock, bytes).is_err() {
            self.state
                .set_recv_buffer_size((&self.sock).into(), bytes)?;
        }
        Ok(self.state.recv_buffer_size((&self.sock).into())? / 2)
    }

    /// How many datagrams one send may carry.
    pub fn max_segments(&self) -> usize {
        self.state.max_gso_segments().max(1)
    }

    /// How many datagrams one receive may return.
    pub fn gro_segments(&self) -> usize {
        self.state.gro_segments().max(1)
    }

    /// Sends `contents`, datagrams of `segment` bytes back to back (the last may be
    /// shorter), to `to`. Blocks while the socket buffer is full.
    pub fn send(&self, to: SocketAddr, contents: &[u8], segment: usize) -> io::Result<()> {
        let t = Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size: (contents.len() > segment).then_some(segment),
            src_ip: None,
        };
        loop {
            match self.state.send((&self.sock).into(), &t) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_micros(50))
                }
                other => return other,
            }
        }
    }

    /// Receives into `buf`; returns the byte count and the datagram size within it (GRO
    /// packs several datagrams of that size back to back). `Ok(None)` on timeout.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<(usize, usize, SocketAddr)>> {
        let mut meta = [RecvMeta::default()];
        let mut bufs = [IoSliceMut::new(buf)];
        match self.state.recv((&self.sock).into(), &mut bufs, &mut meta) {
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some((meta[0].len, meta[0].stride.max(1), meta[0].addr))),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Datagrams the kernel dropped for this socket (its receive queue overflowed), from
    /// `/proc/net/udp`; `None` if it cannot be read.
    pub fn kernel_drops(&self) -> Option<u64> {
        let port = self.sock.local_addr().ok()?.port();
        let table = std::fs::read_to_string(match self.sock.local_addr().ok()? {
            SocketAddr::V4(_) => "/proc/net/udp",
            SocketAddr::V6(_) => "/proc/net/udp6",
        })
        .ok()?;
        drops_for_port(&table, port)
    }
}

/// The `drops` column of the `/proc/net/udp` row whose local port is `port`.
fn drops_for_port(table: &str, port: u16) -> Option<u64> {
    let want = format!(":{port:04X}");
    table.lines().skip(1).find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        let local = cols.get(1)?;
        if local.ends_with(&want) {
            cols.last()?.parse().ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_read_from_the_kernel_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
                     12: 0100007F:1CE8 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 123 2 0000000000000000 17\n";
        assert_eq!(drops_for_port(table, 0x1CE8), Some(17));
        assert_eq!(drops_for_port(table, 80), None);
    }

    #[test]
    fn the_socket_blocks_so_an_idle_receiver_sleeps() {
        let rx = Udp::bind("127.0.0.1:0".parse().unwrap(), Duration::from_millis(20)).unwrap();
        let flags = rustix::fs::fcntl_getfl(&rx.sock).unwrap();
        assert!(!flags.contains(rustix::fs::OFlags::NONBLOCK));
        // a receive with nothing to read waits for the timeout and reports none
        let mut buf = vec![0u8; 2048];
        assert!(rx.recv(&mut buf).unwrap().is_none());
    }

    #[test]
    fn batched_datagrams_arrive_one_by_one_or_coalesced() {
        let rx = Udp::bind("127.0.0.1:0".parse().unwrap(), Duration::from_millis(500)).unwrap();
        let tx = Udp::bind("127.0.0.1:0".parse().unwrap(), Duration::from_millis(500)).unwrap();
        let to = rx.local_addr().unwrap();
        let n = tx.max_segments().min(10);
        let mut batch = Vec::new();
        for i in 0..n {
            batch.extend(std::iter::repeat_n(i as u8, 100));
        }
        tx.send(to, &batch, 100).unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        while got.len() < n {
            let (len, stride, _) = rx.recv(&mut buf).unwrap().expect("datagrams");
            for d in buf[..len].chunks(stride) {
                got.push(d.to_vec());
            }
        }
        for (i, d) in got.iter().enumerate() {
            assert_eq!(d, &vec![i as u8; 100]);
        }
        assert!(rx.kernel_drops().is_some());
    }
}
