//! The sending node's stream shell: for every `stream` channel this node sends, a UDP
//! socket on the channel's `listen` address and a thread that passes each packet through
//! the channel's gate (the stream rules in force: size, source, RTP (RFC 3550) or MPEG-TS
//! (ISO/IEC 13818-1) headers, SSRC, bitrate), wraps what passes in a link frame and hands
//! it to the outgoing queue of the channel's link, never waiting for it.
//!
//! ```text
//!  application ─UDP─► listen socket ─► Gate.admit (rules in force, source checked)
//!     dropped: counted by reason                │ admitted
//!                                               ▼
//!     link down ◄── link state ── StreamFrame { channel, session, seq, sent_us, payload }
//!     queue full (link_busy) ◄── try_send ─► Outgoing (one per link kind) ─► link send shell
//! ```
//!
//! The thread blocks on its socket: it wakes for a packet, or at the stream's silence
//! deadline while a stream is live (then `stream_stopped`, and the gate's SSRC pin is
//! released). Nothing runs while no stream is live.

use crate::core::stream::frame::StreamFrame;
use crate::core::stream::gate::Gate;
use crate::core::stream::{DropReason, StreamRules};
use crate::core::wire::LinkKind;
use crate::node::Node;
use crate::ops::stream::Life;
use bytes::Bytes;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The receiving end of a link's outgoing stream queue: encoded [`StreamFrame`]s, one per
/// packet, in the order they were admitted. The link's send shell drains it.
pub type Outgoing = std::sync::mpsc::Receiver<Bytes>;

/// The sending end of a link's outgoing stream queue.
pub type OutgoingTx = SyncSender<Bytes>;

/// How many frames a link's outgoing queue holds; beyond, packets are dropped
/// (`link_busy`).
pub const QUEUE_FRAMES: usize = 4096;

/// The largest UDP payload read from a listen socket, in bytes.
const READ_BUFFER: usize = 65_535;

/// The receive buffer asked for on each stream's listening socket, in bytes.
const RECV_BUFFER: usize = 8 * 1024 * 1024;

/// How often the stream rules in force are looked up again, in ms (a reload takes effect
/// within this).
const RULES_EVERY_MS: u64 = 100;

/// A new outgoing queue for one link kind (bounded, [`QUEUE_FRAMES`]).
pub fn queue() -> (OutgoingTx, Outgoing) {
    std::sync::mpsc::sync_channel(QUEUE_FRAMES)
}

/// The outgoing queues of the links this node's stream channels use: `None` for a link
/// kind no sending stream channel uses, or whose shell takes no streams.
#[derive(Default, Clone)]
pub struct Queues {
    /// Frames for the QUIC link (sent as QUIC DATAGRAM frames, RFC 9221).
    pub quic: Option<OutgoingTx>,
    /// Frames for the diode link.
    pub diode: Option<OutgoingTx>,
}

impl Queues {
    fn for_link(&self, link: LinkKind) -> Option<OutgoingTx> {
        match link {
            LinkKind::Quic => self.quic.clone(),
            LinkKind::Diode => self.diode.clone(),
        }
    }
}

/// Why the stream shell could not start.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The channel's listen address could not be bound.
    #[error("stream channel {channel}: cannot listen on {addr}: {source}")]
    Bind {
        /// The channel.
        channel: String,
        /// Its `listen` address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The channel's thread could not be started.
    #[error("stream channel {channel}: cannot start its thread: {source}")]
    Thread {
        /// The channel.
        channel: String,
        /// The error.
        source: std::io::Error,
    },
    /// The channel has no stream rules in force (its policy is not a stream policy).
    #[error("stream channel {0}: its policy has no [stream] rules")]
    NoRules(String),
    /// The system random generator failed (the session id).
    #[error("no random session id: the system random generator failed")]
    Random,
}

/// The stream channels this node sends, each with its socket and thread.
pub struct Streams {
    node: Arc<Node>,
    channels: Vec<Arc<Channel>>,
}

struct Channel {
    name: String,
    link: LinkKind,
    queue: Option<OutgoingTx>,
    /// Where the socket is bound (to wake its thread at stop).
    local: SocketAddr,
    stop: AtomicBool,
    state: Mutex<State>,
}

struct State {
    gate: Gate,
    rules: StreamRules,
    rules_at: u64,
    life: Life,
    session: u64,
    seq: u64,
}

impl Channel {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A random session id: a restart of this node starts a new order on the receiver.
fn session_id() -> Result<u64, StreamError> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| StreamError::Random)?;
    Ok(u64::from_be_bytes(b))
}

impl Streams {
    /// Binds the `listen` socket of every stream channel this node sends and starts its
    /// thread; frames go to the queue of the channel's link in `queues` (none: every
    /// admitted packet is dropped as `link_down`).
    ///
    /// # Errors
    /// A listen address cannot be bound (the error names the channel and the address), a
    /// channel has no stream rules, a thread cannot start, or no random session id.
    pub fn start(node: Arc<Node>, queues: &Queues) -> Result<Arc<Streams>, StreamError> {
        let session = session_id()?;
        let mut channels = Vec::new();
        let mut sockets = Vec::new();
        for c in node.cfg.sending() {
            let Some(s) = &c.stream else { continue };
            let rules = node
                .policies
                .stream_rules(&c.name)
                .ok_or_else(|| StreamError::NoRules(c.name.clone()))?;
            let bind = |source| StreamError::Bind {
                channel: c.name.clone(),
                addr: s.listen,
                source,
            };
            let socket = UdpSocket::bind(s.listen).map_err(bind)?;
            // a burst (a key frame, or a flood from a refused source) waits in the kernel
            // rather than pushing the admitted stream's packets out; the kernel caps the
            // request at net.core.rmem_max unless the node may force it
            if rustix::net::sockopt::set_socket_recv_buffer_size_force(&socket, RECV_BUFFER)
                .is_err()
            {
                let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&socket, RECV_BUFFER);
            }
            let local = socket.local_addr().map_err(bind)?;
            node.metrics.stream_channel(&c.name);
            channels.push(Arc::new(Channel {
                name: c.name.clone(),
                link: c.link,
                queue: queues.for_link(c.link),
                local,
                stop: AtomicBool::new(false),
                state: Mutex::new(State {
                    gate: Gate::new(rules.clone()),
                    rules,
                    rules_at: crate::mono_ms(),
                    life: Life::new(&c.name, s.silence_ms),
                    session,
                    seq: 0,
                }),
            }));
            sockets.push(socket);
        }
        let streams = Arc::new(Streams {
            node: node.clone(),
            channels,
        });
        for (chan, socket) in streams.channels.iter().zip(sockets) {
            let (node, chan2) = (node.clone(), chan.clone());
            std::thread::Builder::new()
                .name(format!("stream-{}", chan.name))
                .spawn(move || listen(&node, &chan2, &socket))
                .map_err(|source| StreamError::Thread {
                    channel: chan.name.clone(),
                    source,
                })?;
            tracing::info!(channel = %chan.name, listen = %chan.local, link = chan.link.as_str(), "stream channel listening");
        }
        Ok(streams)
    }

    /// Counts a frame the link's send shell could not send after it was counted as passed
    /// (`link_down`, `packet_size`): the channel is read from the frame, and the stream's
    /// record no longer counts the packet as passed.
    pub fn link_dropped(&self, frame: &[u8], reason: DropReason) {
        let Some(name) = frame_channel(frame) else {
            return;
        };
        if let Some(chan) = self.channels.iter().find(|c| c.name == name) {
            let now = crate::mono_ms();
            let bytes = frame
                .len()
                .saturating_sub(crate::core::stream::frame::FIXED_LEN + name.len());
            chan.lock()
                .life
                .unsent(&self.node.metrics, now, reason, bytes);
        }
    }

    /// Stops every channel's thread; a stream live now is audited `stream_stopped`.
    pub fn stop(&self) {
        let sink = self.node.sink();
        for chan in &self.channels {
            chan.stop.store(true, Ordering::SeqCst);
            chan.lock()
                .life
                .stop(sink.audit, sink.metrics, "node stopping");
            wake(chan.local);
        }
    }
}

/// Wakes a thread blocked on the socket bound at `local` with an empty datagram.
fn wake(local: SocketAddr) {
    let target = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), local.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), local.port())
        }
        _ => local,
    };
    let from: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    if let Ok(s) = UdpSocket::bind(from) {
        let _ = s.send_to(&[], target);
    }
}

/// The channel name a link frame carries (`magic | channel_len u8 | channel`), if any.
pub fn frame_channel(frame: &[u8]) -> Option<&str> {
    let len = usize::from(*frame.get(4)?);
    std::str::from_utf8(frame.get(5..5 + len)?).ok()
}

/// A channel's thread: reads packets until the node stops.
fn listen(node: &Node, chan: &Channel, socket: &UdpSocket) {
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        // block while silent; while live, wake at the silence deadline
        let timeout = chan
            .lock()
            .life
            .deadline()
            .map(|d| Duration::from_millis(d.saturating_sub(crate::mono_ms()).max(1)));
        if let Err(e) = socket.set_read_timeout(timeout) {
            tracing::error!(channel = %chan.name, error = %e, "cannot set the stream socket's timeout");
        }
        let got = socket.recv_from(&mut buf);
        if chan.stop.load(Ordering::SeqCst) {
            return;
        }
        let now = crate::mono_ms();
        match got {
            Ok((n, from)) => {
                let mut st = chan.lock();
                packet(
                    node,
                    chan,
                    &mut st,
                    now,
                    from,
                    buf.get(..n).unwrap_or_default(),
                );
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                crate::ops::repeat::warn_repeated!("stream.recv", &chan.name;
                    channel = %chan.name, error = %e, "cannot read the stream socket");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let mut st = chan.lock();
        let sink = node.sink();
        if st.life.silent(sink.audit, sink.metrics, now) {
            st.gate.reset();
        }
    }
}

/// Passes one packet from `from` through the gate and on to the link.
fn packet(node: &Node, chan: &Channel, st: &mut State, now: u64, from: SocketAddr, data: &[u8]) {
    let m = &node.metrics;
    if now.saturating_sub(st.rules_at) >= RULES_EVERY_MS {
        st.rules_at = now;
        if let Some(rules) = node.policies.stream_rules(&chan.name)
            && rules != st.rules
        {
            st.gate.set_rules(rules.clone());
            st.rules = rules;
        }
    }
    let admitted = match st.gate.admit(now, Some(from.ip()), data) {
        Ok(a) => a,
        Err(reason) => {
            st.life.dropped(m, now, reason);
            return;
        }
    };
    st.life
        .admitted(&node.audit, m, now, admitted.ssrc, Some(from));
    let sent = match &chan.queue {
        Some(q) if node.link_is_up(chan.link) => {
            let frame = StreamFrame {
                channel: chan.name.clone(),
                session: st.session,
                seq: st.seq,
                sent_us: crate::now_us(),
                payload: data.to_vec(),
            };
            match q.try_send(Bytes::from(frame.encode())) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(_)) => Err(DropReason::LinkBusy),
                Err(TrySendError::Disconnected(_)) => Err(DropReason::LinkDown),
            }
        }
        _ => Err(DropReason::LinkDown),
    };
    match sent {
        Ok(()) => {
            st.seq += 1;
            st.life.passed(m, data.len());
        }
        Err(reason) => st.life.dropped(m, now, reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_is_read_from_a_frame() {
        let f = StreamFrame {
            channel: "hearing".into(),
            session: 7,
            seq: 1,
            sent_us: 2,
            payload: vec![0x80; 20],
        }
        .encode();
        assert_eq!(frame_channel(&f), Some("hearing"));
        assert_eq!(frame_channel(&f[..6]), None);
        assert_eq!(frame_channel(&[]), None);
    }

    #[test]
    fn a_full_queue_refuses_at_once() {
        let (tx, rx) = queue();
        for _ in 0..QUEUE_FRAMES {
            tx.try_send(Bytes::from_static(b"x")).unwrap();
        }
        assert!(matches!(
            tx.try_send(Bytes::from_static(b"x")),
            Err(TrySendError::Full(_))
        ));
        drop(rx);
        assert!(matches!(
            tx.try_send(Bytes::from_static(b"x")),
            Err(TrySendError::Disconnected(_))
        ));
    }
}
