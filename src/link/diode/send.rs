//! The sending side of the diode link: takes sealed objects, hands the core their signed
//! manifest frame and then their content as it asks for it, and sends the datagrams it
//! yields, paced by the core's token bucket, in GSO batches. An object leaves the spool when
//! its last carousel copy has gone out (there are no receipts on a diode).

use super::DiodeError;
use crate::core::diode::{Sender as Core, SenderConfig, SenderEvent};
use crate::core::stage::Sealed;
use crate::core::wire::LinkKind;
use crate::keys::diode::load as load_key;
use crate::link::diode::udp::Udp;
use crate::ops::events::{Sent, Subject};
use crate::sender::pipeline::Sender;
use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// Starts the sender thread; it ends when `rx` is closed.
pub fn start(
    sender: Arc<Sender>,
    rx: Receiver<Sealed>,
) -> Result<std::thread::JoinHandle<()>, DiodeError> {
    let node = &sender.node;
    let d = node.cfg.diode.clone().ok_or(DiodeError::NotConfigured)?;
    let key = load_key(&d.key_file)?;
    let bind: SocketAddr = if d.peer.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let udp = Udp::bind(bind, Duration::from_millis(100))
        .map_err(|error| DiodeError::Socket { addr: bind, error })?;
    let mut cfg = SenderConfig::new(key, d.mtu);
    cfg.repair_ratio = d.repair_ratio;
    cfg.rate_bytes_per_s = d.rate_bytes_per_s;
    cfg.copies = u8::try_from(d.copies).unwrap_or(u8::MAX);
    // a millisecond of sending at full rate, at least: the thread wakes once a millisecond
    cfg.burst_bytes = (d.rate_bytes_per_s / 500).max(256 * 1024);
    let session = random_session();
    let core = Core::new(cfg, session, crate::now_ms())?;
    tracing::info!(peer = %d.peer, mtu = d.mtu, rate_bytes_per_s = d.rate_bytes_per_s, repair_ratio = d.repair_ratio, copies = d.copies, session = format!("{session:016x}"), gso_segments = udp.max_segments(), "diode sender up");
    // one way: nothing tells the sender whether the receiver hears it; the link is up
    // while the sender runs
    node.link_changed(LinkKind::Diode, true, &format!("to {}", d.peer), false);
    std::thread::Builder::new()
        .name("isogate-diode-send".into())
        .spawn(move || run(sender, rx, udp, core, d.peer))
        .map_err(|error| DiodeError::Socket { addr: bind, error })
}

fn random_session() -> u64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    // the time is a fine fallback: a session id only tells restarts apart
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        return crate::now_ms();
    }
    u64::from_le_bytes(b)
}

/// An object being sent: its seal and its open content file.
struct Sending {
    sealed: Sealed,
    file: File,
    first_sent: bool,
}

fn run(owner: Arc<Sender>, rx: Receiver<Sealed>, udp: Udp, mut sender: Core, peer: SocketAddr) {
    let mut sending: HashMap<crate::core::id::ObjectId, Sending> = HashMap::new();
    let max_dgram = sender.max_datagram_len();
    let per_send = udp
        .max_segments()
        .min(64)
        .min(65_000 / max_dgram.max(1))
        .max(1);
    let mut batch: Vec<u8> = Vec::with_capacity(per_send * max_dgram);
    let mut segment = 0usize;
    let mut dgram = vec![0u8; max_dgram];
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        // wait for work: a new object, or the core's next deadline
        let now = crate::now_ms();
        // the core counts in milliseconds: a deadline due now still waits one, so that a
        // pacer short of tokens is not polled in a busy loop
        let wait = if sender.wants().is_some() {
            0
        } else {
            sender
                .poll_timeout()
                .map_or(500, |t| t.saturating_sub(now))
                .clamp(1, 500)
        };
        match rx.recv_timeout(Duration::from_millis(wait)) {
            Ok(s) => take(&mut sender, &mut sending, s),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while let Ok(s) = rx.try_recv() {
            take(&mut sender, &mut sending, s);
        }
        // produce and send whatever the pacer allows now
        loop {
            while let Some(w) = sender.wants() {
                let Some(s) = sending.get(&w.id) else {
                    sender.cancel(w.id);
                    continue;
                };
                let n = w.max_len.min(chunk.len());
                let read = match s.file.read_at(&mut chunk[..n], w.offset) {
                    Ok(0) | Err(_) => {
                        tracing::error!(object = %s.sealed.manifest().object_id, "cannot read the spooled content; the object is sent again at the next start");
                        sender.cancel(w.id);
                        continue;
                    }
                    Ok(r) => r,
                };
                if let Err(e) = sender.feed(w.id, w.offset, &chunk[..read]) {
                    tracing::error!(error = %e, "diode sender refused content");
                    sender.cancel(w.id);
                }
            }
            let len = match sender.poll_transmit(crate::now_ms(), &mut dgram) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "diode sender failed");
                    break;
                }
            };
            if !batch.is_empty() && (len != segment || batch.len() + len > per_send * segment) {
                flush(&udp, peer, &mut batch, segment);
            }
            if batch.is_empty() {
                segment = len;
            }
            batch.extend_from_slice(&dgram[..len]);
            if len < segment {
                // a shorter datagram ends a GSO batch
                flush(&udp, peer, &mut batch, segment);
            }
        }
        flush(&udp, peer, &mut batch, segment);
        while let Some(ev) = sender.poll_event() {
            event(&owner, &mut sending, ev);
        }
    }
}

fn flush(udp: &Udp, peer: SocketAddr, batch: &mut Vec<u8>, segment: usize) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = udp.send(peer, batch, segment) {
        // a diode has no way to know: the carousel's next copy is the remedy
        tracing::warn!(peer = %peer, error = %e, "diode send failed");
    }
    batch.clear();
}

/// Hands a sealed object to the core.
fn take(
    sender: &mut Core,
    sending: &mut HashMap<crate::core::id::ObjectId, Sending>,
    sealed: Sealed,
) {
    let m = sealed.manifest();
    let id = m.object_id;
    if sending.contains_key(&id) {
        return;
    }
    let file = match crate::fsx::open_nofollow(&sealed.spooled().content()) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(object = %m.object_id, error = %e, "cannot open the spooled content");
            return;
        }
    };
    if let Err(e) = sender.enqueue(id, sealed.frame().to_vec(), m.size) {
        tracing::error!(object = %m.object_id, error = %e, "diode sender refused the object; it is sent again at the next start");
        return;
    }
    sending.insert(
        id,
        Sending {
            sealed,
            file,
            first_sent: false,
        },
    );
}

/// Acts on what the core reports.
fn event(
    owner: &Sender,
    sending: &mut HashMap<crate::core::id::ObjectId, Sending>,
    ev: SenderEvent,
) {
    match ev {
        SenderEvent::ObjectSent { id, .. } => {
            if let Some(s) = sending.get_mut(&id)
                && !s.first_sent
            {
                s.first_sent = true;
                let m = s.sealed.manifest();
                Sent {
                    subject: Subject {
                        channel: &m.channel,
                        id: m.object_id,
                        name: &m.name,
                        size: Some(m.size),
                        sha256: Some(m.sha256),
                    },
                    link: LinkKind::Diode,
                }
                .emit(owner.node.sink());
            }
        }
        SenderEvent::ObjectRetired { id } => {
            if let Some(s) = sending.remove(&id) {
                retire(owner, &s.sealed);
            }
        }
        SenderEvent::ObjectCancelled { id } => {
            sending.remove(&id);
        }
    }
}

/// The last copy has gone out: the object's retention ends; it leaves the spool.
fn retire(owner: &Sender, sealed: &Sealed) {
    let m = sealed.manifest();
    if let Err(e) = owner.confirm(sealed, "diode: every carousel copy sent", false) {
        tracing::error!(object = %m.object_id, error = %e, "cannot retire; the object stays in the spool");
    }
}
