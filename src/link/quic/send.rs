//! The transmit stage: sends sealed objects to the peer over QUIC, one unidirectional stream
//! per object and many in flight, and removes an object from the spool only when the peer's
//! receipt says it is durable there. When the link drops it reconnects with backoff and
//! sends again every object that has no receipt.
//!
//! ```text
//!  queue ─► send_one ─► stream ─► receipt
//!    ▲        final (landed, duplicate, quarantined, refused) ─► confirm ─► spool entry gone
//!    │        retry (the peer's inbox is full, its scanner down) ─► wait, backing off
//!    │              ─► Sender::hold (the approval desk: approvals still complete? else waits)
//!    └────────  no receipt, a broken stream, a confirm that failed ─► wait ─┘
//! ```
//!
//! An object leaves the queue only when it is confirmed, or handed back to the pipeline
//! (content changed after sealing): nothing sealed waits for the next start.

use crate::core::id::ObjectId;
use crate::core::stage::Sealed;
use crate::core::wire::{FrameKind, LinkKind, RECEIPT_LEN, Receipt, ReceiptStatus};
use crate::keys::at_rest::DataKeys;
use crate::keys::suite::Suite;
use crate::keys::tls::SERVER_NAME;
use crate::node::Node;
use crate::ops::events::{Sent, Subject};
use crate::sender::pipeline::Sender;
use crate::sender::seal::{Changed, Unchanged};
use bytes::Bytes;
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Why an object or a checkpoint could not be sent on a stream. The object stays in the
/// spool and is sent again.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The connection is gone.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Writing the stream failed (the peer stopped it, or the connection was lost).
    #[error("stream: {0}")]
    Write(#[from] quinn::WriteError),
    /// The stream was already finished or reset.
    #[error("stream closed: {0}")]
    Closed(#[from] quinn::ClosedStream),
    /// Reading the spooled content failed.
    #[error("reading the spooled content: {0}")]
    Read(#[from] std::io::Error),
    /// The checkpoint does not fit a frame.
    #[error(transparent)]
    Frame(#[from] crate::core::wire::WireError),
}

/// How long to wait for a receipt once the whole object is sent.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// How long to wait for the receipt of an object whose stream the peer stopped.
const STOPPED_RECEIPT_WAIT: Duration = Duration::from_secs(10);

/// The code a stream is reset with when its content could not be read whole and unchanged.
const STREAM_ABANDONED: u32 = 2;

/// Size of the reads that feed a stream.
const READ_SIZE: usize = 1024 * 1024;

type Pending = Arc<Mutex<HashMap<ObjectId, oneshot::Sender<ReceiptStatus>>>>;

/// How many times in a row each object was answered "retry" (or could not be confirmed):
/// its next wait doubles with each, from [`RETRY_DELAY`] up to [`RETRY_DELAY_MAX`].
type Retries = Arc<Mutex<HashMap<ObjectId, u32>>>;

/// The connection to the peer while it is up (`None` while it is down): the stream
/// datagram thread sends on it.
pub type Current = Arc<Mutex<Option<quinn::Connection>>>;

/// Sends the stream frames of `outgoing` as QUIC DATAGRAM frames (RFC 9221) on the
/// current connection, in a plain thread, until the queue's senders are gone. A frame
/// with no connection is dropped as `link_down`; one larger than the path carries yet
/// (before MTU discovery raised it), or that the peer does not accept, as `link_busy`
/// and `link_down`. QUIC authenticates and encrypts every datagram (TLS 1.3 keys of the
/// pinned mutual handshake).
///
/// # Errors
/// The thread could not be started.
pub fn datagrams(
    streams: Arc<crate::sender::stream::Streams>,
    outgoing: crate::sender::stream::Outgoing,
    current: Current,
) -> std::io::Result<()> {
    use crate::core::stream::DropReason;
    std::thread::Builder::new()
        .name("quic-datagrams".into())
        .spawn(move || {
            while let Ok(frame) = outgoing.recv() {
                let conn = current.lock().ok().and_then(|c| c.clone());
                let Some(conn) = conn else {
                    streams.link_dropped(&frame, DropReason::LinkDown);
                    continue;
                };
                let reason = match conn.send_datagram(frame.clone()) {
                    Ok(()) => continue,
                    // larger than a datagram the path carries: the packet, not the link
                    Err(quinn::SendDatagramError::TooLarge) => DropReason::PacketSize,
                    Err(quinn::SendDatagramError::ConnectionLost(_)) => DropReason::LinkDown,
                    Err(e) => {
                        crate::ops::repeat::warn_repeated!("quic.datagram", &e.to_string();
                            error = %e, "the peer takes no stream datagrams");
                        DropReason::LinkDown
                    }
                };
                streams.link_dropped(&frame, reason);
            }
        })?;
    Ok(())
}

/// Runs the sender side of the link until aborted; `current` holds the connection while
/// it is up.
pub async fn run(
    sender: Arc<Sender>,
    endpoint: quinn::Endpoint,
    queue_tx: mpsc::UnboundedSender<Sealed>,
    mut queue: mpsc::UnboundedReceiver<Sealed>,
    current: Current,
) {
    let node = sender.node.clone();
    let peer = node.cfg.peer.address;
    let mut backoff = Duration::from_millis(100);
    let retries: Retries = Arc::default();
    // the path's series exist from the start: no path (0) until the link is up
    node.metrics
        .link_path_mtu
        .with_label_values(&[LinkKind::Quic.as_str()])
        .set(0);
    node.metrics
        .link_lost_packets
        .with_label_values(&[LinkKind::Quic.as_str()]);
    loop {
        // the client configuration in force: after a key switch, the new certificate
        let client = match node.keys.client_config() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "no client configuration");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        let conn = match endpoint.connect_with(client, peer, SERVER_NAME) {
            Ok(connecting) => connecting.await,
            Err(e) => {
                tracing::error!(peer = %peer, error = %e, "cannot start a connection");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        // The server checks this node's certificate after the client's side of the
        // handshake is done: the link is up only once the server has confirmed it.
        let conn = match conn {
            Ok(c) => confirmed(c).await,
            Err(e) => Err(e),
        };
        let conn = match conn {
            Ok(c) => c,
            Err(e) if handshake_refused(&e) => {
                // a certificate one side does not pin: the error names the expected and
                // presented fingerprints; said once a minute while it lasts
                let e = refusal(&e, node.cfg.node.suite);
                crate::ops::repeat::warn_repeated!("link.handshake", &format!("{peer}: {e}");
                    peer = %peer, error = %e, "handshake refused; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            Err(e) => {
                tracing::debug!(peer = %peer, error = %e, "link not up; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        node.keys.track(&conn);
        let up_since = std::time::Instant::now();
        if let Ok(mut c) = current.lock() {
            *c = Some(conn.clone());
        }
        node.link_changed(LinkKind::Quic, true, &format!("to {peer}"), true);
        let pending: Pending = Arc::default();
        let path = tokio::spawn(watch_path(node.clone(), conn.clone()));
        let receipts = tokio::spawn(read_receipts(conn.clone(), pending.clone()));
        let witness = tokio::spawn(send_checkpoints(node.clone(), conn.clone()));
        let slots = Arc::new(Semaphore::new(node.cfg.link.max_in_flight));
        loop {
            let permit = tokio::select! {
                biased;
                _ = conn.closed() => break,
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let sealed = tokio::select! {
                biased;
                _ = conn.closed() => break,
                s = queue.recv() => match s { Some(s) => s, None => return },
            };
            tokio::spawn(send_one(
                sender.clone(),
                conn.clone(),
                sealed,
                pending.clone(),
                (queue_tx.clone(), retries.clone()),
                permit,
            ));
        }
        if let Ok(mut c) = current.lock() {
            *c = None;
        }
        receipts.abort();
        witness.abort();
        // the path's watch ends by itself once the connection is closed, counting the
        // losses of its last moments
        drop(path);
        if let Ok(mut p) = pending.lock() {
            p.clear();
        }
        let reason = conn
            .close_reason()
            .map(|r| r.to_string())
            .unwrap_or_default();
        node.link_changed(LinkKind::Quic, false, &reason, true);
        tracing::info!(peer = %peer, "reconnecting in {backoff:?}");
        // A link that drops at once (say, the peer refuses our certificate after the
        // handshake) backs off like one that never came up.
        if up_since.elapsed() > Duration::from_secs(10) {
            backoff = Duration::from_millis(100);
        } else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// How often the path's figures are read into the metrics while the link is up.
const PATH_EVERY: Duration = Duration::from_secs(1);

/// Keeps the metrics of the connection's path (`isogate_link_path_mtu_bytes`,
/// `isogate_link_lost_packets_total`) current, every [`PATH_EVERY`], until it closes:
/// then its last losses are counted and the path MTU reads 0 until the next connection.
async fn watch_path(node: Arc<Node>, conn: quinn::Connection) {
    let link = LinkKind::Quic.as_str();
    let mtu = node.metrics.link_path_mtu.with_label_values(&[link]);
    let lost = node.metrics.link_lost_packets.with_label_values(&[link]);
    let mut lost_before = 0;
    loop {
        let path = conn.stats().path;
        mtu.set(i64::from(path.current_mtu));
        lost.inc_by(path.lost_packets.saturating_sub(lost_before));
        lost_before = path.lost_packets;
        tokio::select! {
            _ = conn.closed() => break,
            _ = tokio::time::sleep(PATH_EVERY) => {}
        }
    }
    lost.inc_by(conn.stats().path.lost_packets.saturating_sub(lost_before));
    mtu.set(0);
}

/// The connection once the server has confirmed the handshake (its HANDSHAKE_DONE frame,
/// RFC 9001 §4.1.2, sent after it accepted this node's certificate), or why it closed
/// before. Bounded by the idle timeout, which closes a connection that hears nothing.
async fn confirmed(conn: quinn::Connection) -> Result<quinn::Connection, quinn::ConnectionError> {
    loop {
        if conn.stats().frame_rx.handshake_done > 0 {
            return Ok(conn);
        }
        tokio::select! {
            e = conn.closed() => return Err(e),
            _ = tokio::time::sleep(Duration::from_millis(2)) => {}
        }
    }
}

/// TLS alert 120, `no_application_protocol` (RFC 7301), as a QUIC crypto error code (RFC
/// 9001 §4.8: 0x100 + the alert).
const NO_APPLICATION_PROTOCOL: u64 = 0x100 + 120;

/// A refused handshake in words: the error, and when the two ends share no ALPN protocol,
/// that the pair's suites differ (`keys::tls::alpn`), naming the one `suite` this node runs
/// (or that the other end is no isogate node of this version).
pub(crate) fn refusal(e: &quinn::ConnectionError, suite: Suite) -> String {
    if error_code(e) == Some(NO_APPLICATION_PROTOCOL) {
        format!(
            "{e}: the peer runs another suite than this node's {suite} (`[node] suite` must be the same on both nodes of a pair), or is not an isogate node of this version"
        )
    } else {
        e.to_string()
    }
}

/// Whether a connection failed in the TLS handshake (a TLS alert, sent or received: an
/// unpinned certificate or another suite, on either end), rather than for want of a peer.
pub(crate) fn handshake_refused(e: &quinn::ConnectionError) -> bool {
    error_code(e).is_some_and(|code| (0x100..0x200).contains(&code))
}

/// The QUIC transport error code a connection failed with, sent or received.
fn error_code(e: &quinn::ConnectionError) -> Option<u64> {
    match e {
        quinn::ConnectionError::TransportError(t) => Some(u64::from(t.code)),
        quinn::ConnectionError::ConnectionClosed(c) => Some(u64::from(c.error_code)),
        _ => None,
    }
}

/// Sends the latest checkpoint of this node's audit log to the peer, for its witness.
async fn send_checkpoint(conn: &quinn::Connection, note: &str) -> Result<(), SendError> {
    let frame = crate::core::wire::encode_frame(FrameKind::Checkpoint, note.as_bytes())?;
    let mut s = conn.open_uni().await?;
    s.write_all(&frame).await?;
    Ok(s.finish()?)
}

/// Sends each new checkpoint of this node's audit log to the peer while the link is up.
async fn send_checkpoints(node: Arc<Node>, conn: quinn::Connection) {
    let mut notes = node.audit.checkpoints();
    loop {
        let note = notes.borrow_and_update().clone();
        if let Some(note) = note
            && let Err(e) = send_checkpoint(&conn, &note).await
        {
            tracing::debug!(error = %e, "checkpoint not sent to the peer");
            return;
        }
        if notes.changed().await.is_err() {
            return;
        }
    }
}

async fn read_receipts(conn: quinn::Connection, pending: Pending) {
    while let Ok(mut recv) = conn.accept_uni().await {
        let pending = pending.clone();
        let conn = conn.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; RECEIPT_LEN];
            while recv.read_exact(&mut buf).await.is_ok() {
                match Receipt::decode(&buf) {
                    Ok(r) => {
                        let waiter = pending.lock().ok().and_then(|mut p| p.remove(&r.object_id));
                        if let Some(w) = waiter {
                            let _ = w.send(r.status);
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "malformed receipt; closing the link");
                        conn.close(1u32.into(), b"malformed receipt");
                        return;
                    }
                }
            }
        });
    }
}

/// How long the sender first waits before sending again an object the receiver answered
/// "retry" (its inbox full, its antivirus down); doubled at each retry in a row.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// The longest wait between two tries of an object the receiver keeps answering "retry".
const RETRY_DELAY_MAX: Duration = Duration::from_secs(8);

/// The wait before the `n`-th retry in a row (from 1) of an object.
fn retry_delay(n: u32) -> Duration {
    let factor = 1u32 << n.saturating_sub(1).min(8);
    RETRY_DELAY.saturating_mul(factor).min(RETRY_DELAY_MAX)
}

/// Counts one more retry of `id`; returns how long to wait before it.
fn next_retry(retries: &Retries, id: ObjectId) -> Duration {
    let mut r = retries.lock().unwrap_or_else(|p| p.into_inner());
    let n = r.entry(id).or_insert(0);
    *n = n.saturating_add(1);
    retry_delay(*n)
}

/// Sends one object and waits for its receipt; on any failure puts it back in the queue.
async fn send_one(
    sender: Arc<Sender>,
    conn: quinn::Connection,
    sealed: Sealed,
    pending: Pending,
    (queue, retries): (mpsc::UnboundedSender<Sealed>, Retries),
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let node = &sender.node;
    let id = sealed.manifest().object_id;
    let (tx, rx) = oneshot::channel();
    if let Ok(mut p) = pending.lock() {
        p.insert(id, tx);
    }
    let started = std::time::Instant::now();
    let sent = stream_object(&conn, &sealed, node.keys.data(), node.cfg.node.suite).await;
    let status = match sent {
        Ok(()) => {
            let m = sealed.manifest();
            Sent {
                subject: Subject {
                    channel: &m.channel,
                    id,
                    name: &m.name,
                    size: Some(m.size),
                    digest: Some(m.digest),
                },
                link: LinkKind::Quic,
            }
            .emit(node.sink());
            // a receipt that never comes (the peer failed to answer) frees the slot and
            // sends the object again; the receiver drops the duplicate
            match tokio::time::timeout(RECEIPT_TIMEOUT, rx).await {
                Ok(r) => r.ok(),
                Err(_) => {
                    tracing::warn!(object = %id, "no receipt in {RECEIPT_TIMEOUT:?}; sending again");
                    None
                }
            }
        }
        // the receiver stopped the stream on purpose (it refused the object unread, or
        // asks for it later): its receipt says which
        Err(SendError::Write(quinn::WriteError::Stopped(code))) => {
            tracing::debug!(object = %id, code = %code, "the peer stopped the stream; waiting for its receipt");
            tokio::time::timeout(STOPPED_RECEIPT_WAIT, rx)
                .await
                .ok()
                .and_then(Result::ok)
        }
        // written after it was sealed, or its sealed copy changed on disk: taken again
        // (inspected again, and refused when it no longer opens), never sent as it is
        Err(SendError::Read(e)) if Changed::is(&e) || crate::keys::at_rest::is_tampered(&e) => {
            drop(permit);
            sender.in_flight.done(id);
            if let Ok(mut p) = pending.lock() {
                p.remove(&id);
            }
            let s2 = sender.clone();
            let spooled = sealed.spooled().clone();
            let why = e.to_string();
            if let Ok(mut r) = retries.lock() {
                r.remove(&id);
            }
            let retaken = tokio::task::spawn_blocking(move || s2.retake(spooled, &why)).await;
            if !matches!(retaken, Ok(Ok(()))) {
                tracing::error!(object = %id, "could not record that the changed object is taken again; it waits and is inspected again all the same");
            }
            return;
        }
        Err(e) => {
            tracing::debug!(object = %id, error = %e, "send failed");
            None
        }
    };
    drop(permit);
    // a receipt came (or none will): a message batch of this channel is no longer on
    // its way, whatever the receipt says
    sender.in_flight.done(id);
    if let Ok(mut p) = pending.lock() {
        p.remove(&id);
    }
    match status {
        Some(s) if s.is_final() => {
            let channel = sealed.manifest().channel.as_str();
            node.metrics
                .receipt(channel)
                .observe(started.elapsed().as_secs_f64());
            node.metrics
                .transmit_receipts
                .with_label_values(&[channel, s.as_str()])
                .inc();
            let s2 = sender.clone();
            let sealed2 = sealed.clone();
            let done = tokio::task::spawn_blocking(move || {
                s2.confirm(&sealed2, s.as_str(), s == ReceiptStatus::Refused)
            })
            .await;
            let failed = match done {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            match failed {
                None => {
                    if let Ok(mut r) = retries.lock() {
                        r.remove(&id);
                    }
                }
                // (say, this node's own disk is full): the object stays queued; sent again,
                // the peer answers the same, and the confirmation is tried again
                Some(e) => {
                    let wait = next_retry(&retries, id);
                    tracing::error!(object = %id, error = %e, "could not record the receipt; the object is sent again in {wait:?}");
                    tokio::time::sleep(wait).await;
                    let _ = queue.send(sealed);
                }
            }
        }
        // the receiver could not take it now (its inbox is full, its antivirus down): it
        // stays queued, and waits longer each time it is answered so
        Some(s) => {
            let wait = next_retry(&retries, id);
            tracing::debug!(object = %id, status = s.as_str(), "the peer asks for the object later; sent again in {wait:?}");
            tokio::time::sleep(wait).await;
            // back through the approval desk, as every sealed object: it goes again only
            // while its approvals are complete under the rule in force, else it waits there
            loop {
                let (s2, again) = (sender.clone(), sealed.clone());
                let why = match tokio::task::spawn_blocking(move || s2.hold(again)).await {
                    Ok(Ok(Some(sealed))) => {
                        let _ = queue.send(sealed);
                        break;
                    }
                    Ok(Ok(None)) => {
                        tracing::info!(object = %id, "asked for later, the object waits on the approval desk");
                        break;
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                };
                let wait = next_retry(&retries, id);
                tracing::error!(object = %id, error = %why, "cannot judge the object's approvals again; tried again in {wait:?}");
                tokio::time::sleep(wait).await;
            }
        }
        None => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = queue.send(sealed);
        }
    }
}

/// Streams the frame and the content of one object on a new unidirectional stream.
async fn stream_object(
    conn: &quinn::Connection,
    sealed: &Sealed,
    data_keys: Option<Arc<DataKeys>>,
    suite: crate::keys::suite::Suite,
) -> Result<(), SendError> {
    let mut send = conn.open_uni().await?;
    send.write_all(sealed.frame()).await?;
    let spooled = sealed.spooled().clone();
    let size = sealed.manifest().size;
    let manifest = sealed.manifest().clone();
    let sealed_as = sealed.sealed_as();
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    // every byte sent is checked against the sealed manifest as it is read (hashed again,
    // or opened from the very sealing at rest that was hashed): content written after
    // sealing is never sent (the stream is reset, the object taken again)
    let reader = tokio::task::spawn_blocking(move || {
        // read through the data keys where the spool entry is sealed at rest
        let mut f = match crate::sender::spool::open_content(&spooled, data_keys.as_deref()) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let mut unchanged = match Unchanged::for_stored(&manifest, suite, &f, sealed_as) {
            Ok(u) => u,
            Err(changed) => {
                let _ = tx.blocking_send(Err(changed.into()));
                return;
            }
        };
        let mut left = size;
        while left > 0 {
            let mut buf = vec![0u8; READ_SIZE.min(left as usize)];
            let r = f
                .read_exact(&mut buf)
                .and_then(|_| Ok(unchanged.feed(&buf)?))
                .map(|_| Bytes::from(buf));
            let failed = r.is_err();
            left -= READ_SIZE.min(left as usize) as u64;
            if tx.blocking_send(r).is_err() || failed {
                return;
            }
        }
        let end = f.len().and_then(|len| Ok(unchanged.finish(len)?));
        if let Err(e) = end {
            let _ = tx.blocking_send(Err(e));
        }
    });
    while let Some(chunk) = rx.recv().await {
        match chunk {
            Ok(c) => send.write_chunk(c).await?,
            Err(e) => {
                // never finish a stream whose content could not be read whole and unchanged:
                // the receiver discards a reset stream
                let _ = send.reset(STREAM_ABANDONED.into());
                return Err(SendError::Read(e));
            }
        }
    }
    let _ = reader.await;
    send.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_ceiling_and_start_over_per_object() {
        let waits: Vec<u64> = (1..=7).map(|n| retry_delay(n).as_millis() as u64).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(retry_delay(u32::MAX), RETRY_DELAY_MAX);
        let r: Retries = Arc::default();
        let (a, b) = (ObjectId([1; 16]), ObjectId([2; 16]));
        assert_eq!(next_retry(&r, a), Duration::from_millis(500));
        assert_eq!(next_retry(&r, a), Duration::from_secs(1));
        assert_eq!(next_retry(&r, b), Duration::from_millis(500));
    }
}
