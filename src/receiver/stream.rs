//! The receiving node's stream shell: each link frame that arrives (QUIC datagram, diode
//! stream block) is read, passed through the channel's gate again under THIS node's own
//! stream rules (RTP, RFC 3550, or MPEG-TS, ISO/IEC 13818-1; the source is not checked
//! here: this node only ever sees its peer), put back in order by the channel's playout,
//! and sent to the channel's `emit` address from a UDP socket bound at start.
//!
//! ```text
//!  link shell ─► frame(now_ms, bytes) ─► StreamFrame::decode ─ bad, unknown channel ─► `frame`
//!                                        │ (a new session: the old stream stops)
//!                                        ▼
//!                 Gate.admit (own rules) ─► Playout.push ─► pop ─► UDP send_to(emit)
//!                   │ refused: counted by reason          late ─► `late`
//!                   └─► Playout.pass_over (the packets after it do not wait for it)
//!  timer thread: sleeps until the next playout deadline or silence deadline, or a wake
//!                ─► pops held packets ─► a silent stream: `stream_stopped`
//! ```
//!
//! [`Streams::frame`] never blocks on I/O beyond one non-blocking UDP send: a link shell
//! calls it from a tokio task or a plain thread. With no stream live and nothing held the
//! timer thread waits on its condition variable: no CPU while idle.

use crate::core::stream::frame::StreamFrame;
use crate::core::stream::gate::Gate;
use crate::core::stream::playout::{Out, Playout};
use crate::core::stream::{DropReason, StreamRules};
use crate::node::Node;
use crate::ops::stream::Life;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How often the stream rules in force are looked up again, in ms.
const RULES_EVERY_MS: u64 = 100;

/// The metrics label of frames that name no stream channel this node receives.
const UNKNOWN: &str = crate::node::quarantine::UNVERIFIED;

/// Why the receiving stream shell could not start.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The socket that emits a channel's packets could not be bound.
    #[error("stream channel {channel}: cannot open a socket to emit to {addr}: {source}")]
    Bind {
        /// The channel.
        channel: String,
        /// Its `emit` address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The timer thread could not be started.
    #[error("cannot start the stream timer thread: {0}")]
    Thread(std::io::Error),
    /// The channel has no stream rules in force (its policy is not a stream policy).
    #[error("stream channel {0}: its policy has no [stream] rules")]
    NoRules(String),
}

/// The stream channels this node receives.
pub struct Streams {
    node: Arc<Node>,
    channels: HashMap<String, Channel>,
    /// Bumped on every change the timer must see; the timer waits on `wake`.
    generation: Mutex<u64>,
    wake: Condvar,
    stop: AtomicBool,
}

struct Channel {
    emit: SocketAddr,
    socket: UdpSocket,
    delay_ms: u64,
    state: Mutex<State>,
}

struct State {
    gate: Gate,
    rules: StreamRules,
    rules_at: u64,
    playout: Playout,
    life: Life,
    /// The sending node's session of the frames in play.
    session: Option<u64>,
}

impl Channel {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Streams {
    /// Opens the emitting socket of every stream channel this node receives and starts the
    /// timer thread.
    ///
    /// # Errors
    /// A socket cannot be bound, a channel has no stream rules, or the thread cannot start.
    pub fn start(node: Arc<Node>) -> Result<Arc<Streams>, StreamError> {
        let mut channels = HashMap::new();
        for c in node.cfg.receiving() {
            let Some(s) = &c.stream else { continue };
            let rules = node
                .policies
                .stream_rules(&c.name)
                .ok_or_else(|| StreamError::NoRules(c.name.clone()))?;
            let any: SocketAddr = match s.emit {
                SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
                SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            let bind = |source| StreamError::Bind {
                channel: c.name.clone(),
                addr: s.emit,
                source,
            };
            let socket = UdpSocket::bind(any).map_err(bind)?;
            socket.set_nonblocking(true).map_err(bind)?;
            node.metrics.stream_channel(&c.name);
            tracing::info!(channel = %c.name, emit = %s.emit, "stream channel emitting");
            channels.insert(
                c.name.clone(),
                Channel {
                    emit: s.emit,
                    socket,
                    delay_ms: s.delay_ms,
                    state: Mutex::new(State {
                        gate: Gate::new(rules.clone()),
                        rules,
                        rules_at: crate::mono_ms(),
                        playout: Playout::new(s.delay_ms),
                        life: Life::new(&c.name, s.silence_ms),
                        session: None,
                    }),
                },
            );
        }
        node.metrics
            .stream_dropped
            .with_label_values(&[UNKNOWN, DropReason::Frame.code()]);
        let streams = Arc::new(Streams {
            node,
            channels,
            generation: Mutex::new(0),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let s = streams.clone();
        std::thread::Builder::new()
            .name("stream-timer".into())
            .spawn(move || s.timer())
            .map_err(StreamError::Thread)?;
        Ok(streams)
    }

    /// Takes one link frame that arrived at `now_ms` ([`crate::mono_ms`]): see the module
    /// header. Never fails: what cannot pass is counted by reason and dropped.
    pub fn frame(&self, now_ms: u64, bytes: &[u8]) {
        let m = &self.node.metrics;
        let frame = match StreamFrame::decode(bytes) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(error = %e, "stream frame not readable; dropped");
                m.stream_drop(UNKNOWN, DropReason::Frame);
                return;
            }
        };
        let Some(chan) = self.channels.get(&frame.channel) else {
            crate::ops::repeat::warn_repeated!("stream.channel", &frame.channel;
                channel = %frame.channel, "a stream frame for a channel this node does not receive as a stream; dropped");
            m.stream_drop(UNKNOWN, DropReason::Frame);
            return;
        };
        let latency_us = crate::now_us().saturating_sub(frame.sent_us);
        m.stream_latency_seconds
            .with_label_values(&[frame.channel.as_str()])
            .observe(latency_us as f64 / 1e6);
        let sink = self.node.sink();
        let mut st = chan.lock();
        let before = (st.life.deadline(), st.playout.next_deadline());
        if now_ms.saturating_sub(st.rules_at) >= RULES_EVERY_MS {
            st.rules_at = now_ms;
            if let Some(rules) = self.node.policies.stream_rules(&frame.channel)
                && rules != st.rules
            {
                st.gate.set_rules(rules.clone());
                st.rules = rules;
            }
        }
        // the sending node restarted: its stream starts over (order, SSRC)
        if st.session.is_some_and(|s| s != frame.session) {
            flush(chan, &mut st, m, now_ms, true);
            st.life.stop(sink.audit, m, "the sending node restarted");
            st.gate.reset();
            st.playout = Playout::new(chan.delay_ms);
        }
        st.session = Some(frame.session);
        match st.gate.admit(now_ms, None, &frame.payload) {
            Ok(a) => {
                st.life.admitted(sink.audit, m, now_ms, a.ssrc, None);
                st.playout
                    .push(now_ms, frame.session, frame.seq, frame.payload);
            }
            Err(reason) => {
                st.life.dropped(m, now_ms, reason);
                // the packets after it need not wait for it
                st.playout.pass_over(now_ms, frame.session, frame.seq);
            }
        }
        flush(chan, &mut st, m, now_ms, false);
        let after = (st.life.deadline(), st.playout.next_deadline());
        drop(st);
        // the timer sleeps until the earliest deadline it knew: wake it for an earlier one
        let earlier = |b: Option<u64>, a: Option<u64>| a.is_some_and(|a| b.is_none_or(|b| a < b));
        if earlier(before.0, after.0) || earlier(before.1, after.1) {
            self.nudge();
        }
    }

    fn nudge(&self) {
        let mut g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        *g = g.wrapping_add(1);
        self.wake.notify_one();
    }

    /// Stops the timer; a stream live now is audited `stream_stopped`.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.nudge();
        let now = crate::mono_ms();
        let sink = self.node.sink();
        for chan in self.channels.values() {
            let mut st = chan.lock();
            flush(chan, &mut st, sink.metrics, now, true);
            st.life.stop(sink.audit, sink.metrics, "node stopping");
        }
    }

    /// Pops held packets at their deadline and stops silent streams, until stopped.
    fn timer(&self) {
        let sink = self.node.sink();
        let mut g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let now = crate::mono_ms();
            let mut next: Option<u64> = None;
            for chan in self.channels.values() {
                let mut st = chan.lock();
                flush(chan, &mut st, sink.metrics, now, false);
                if st.life.silent(sink.audit, sink.metrics, now) {
                    st.gate.reset();
                }
                for d in [st.playout.next_deadline(), st.life.deadline()]
                    .into_iter()
                    .flatten()
                {
                    next = Some(next.map_or(d, |n| n.min(d)));
                }
            }
            g = match next {
                None => self.wake.wait(g).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let wait = Duration::from_millis(d.saturating_sub(now).max(1));
                    self.wake
                        .wait_timeout(g, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }
}

/// Emits what the playout lets out at `now_ms` (with `all`: everything it holds, in order,
/// gaps skipped).
fn flush(chan: &Channel, st: &mut State, m: &crate::ops::metrics::Metrics, now_ms: u64, all: bool) {
    // an hour on: later than any playout deadline
    let now = if all {
        now_ms.saturating_add(3_600_000)
    } else {
        now_ms
    };
    while let Some(out) = st.playout.pop(now) {
        match out {
            Out::Packet(p) => match chan.socket.send_to(&p, chan.emit) {
                Ok(_) => st.life.passed(m, p.len()),
                Err(e) => {
                    crate::ops::repeat::warn_repeated!("stream.emit", &chan.emit.to_string();
                        emit = %chan.emit, error = %e, "cannot emit a stream packet");
                }
            },
            Out::Late => st.life.dropped(m, now_ms, DropReason::Late),
            Out::Gap(n) => tracing::debug!(skipped = n, "stream gap skipped"),
        }
    }
}
