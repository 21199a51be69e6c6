//! The QUIC receiving shell: accepts the peer's connections, reads each object stream into
//! the one receiver pipeline, and sends the receipt it answers. Checkpoint frames of the
//! peer's audit log are witnessed here.
//!
//! ```text
//!  connection ─► uni stream ─► frame header ─► payload
//!     checkpoint frame ─► witness (signature checked) ─► audit `witnessed`
//!     object frame ─► receiver.begin(quic) ─► chunks, gathered 128 KiB a batch
//!                   ─► writer thread: Arriving::write
//!                   ─► receiver.finish ─► receipt (fixed 22 bytes, no content)
//!  connection ─► datagram (RFC 9221) ─► receiver.stream_frame (stream channels)
//! ```

use crate::core::checkpoint::Checkpoint;
use crate::core::id::ObjectId;
use crate::core::wire::{FrameHeader, FrameKind, HEADER_LEN, LinkKind, Receipt, ReceiptStatus};
use crate::receiver::{Arriving, Begin, Receiver};
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Accepts connections until aborted.
pub async fn serve(receiver: Arc<Receiver>, endpoint: quinn::Endpoint) {
    let current: Arc<Mutex<Option<quinn::Connection>>> = Arc::default();
    while let Some(incoming) = endpoint.accept().await {
        let receiver = receiver.clone();
        let current = current.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            match incoming.await {
                Ok(conn) => {
                    receiver.node.keys.track(&conn);
                    // The peer has one sending connection: a new one (say, after the peer
                    // restarted) supersedes the old, whose streams end now rather than at
                    // the idle timeout.
                    let old = current
                        .lock()
                        .ok()
                        .and_then(|mut c| c.replace(conn.clone()));
                    if let Some(old) = old {
                        old.close(0u32.into(), b"superseded");
                    }
                    connection(receiver, conn).await
                }
                // an unpinned certificate names the expected and presented fingerprints;
                // another suite is said in words
                Err(e) => {
                    let e = super::send::refusal(&e, receiver.node.cfg.node.suite);
                    crate::ops::repeat::warn_repeated!("link.accept", &format!("{remote}: {e}");
                    remote = %remote, error = %e, "refused a connection")
                }
            }
        });
    }
}

/// The stream that carries receipts back, opened on the first one.
struct Receipts {
    conn: quinn::Connection,
    stream: tokio::sync::Mutex<Option<quinn::SendStream>>,
}

impl Receipts {
    async fn send(&self, object_id: ObjectId, status: ReceiptStatus) {
        let bytes = Receipt { object_id, status }.encode();
        let mut guard = self.stream.lock().await;
        if guard.is_none() {
            match self.conn.open_uni().await {
                Ok(s) => *guard = Some(s),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot open the receipt stream");
                    return;
                }
            }
        }
        if let Some(s) = guard.as_mut()
            && let Err(e) = s.write_all(&bytes).await
        {
            tracing::debug!(error = %e, "receipt not sent; the peer will send again");
            *guard = None;
        }
    }
}

async fn connection(receiver: Arc<Receiver>, conn: quinn::Connection) {
    let node = receiver.node.clone();
    let remote = conn.remote_address();
    // a node that also sends over QUIC reports the link from its own connection
    let reports = !node.cfg.sending().any(|c| c.link == LinkKind::Quic);
    if reports {
        node.link_changed(LinkKind::Quic, true, &format!("from {remote}"), true);
    } else {
        audit_link(&receiver, true, &format!("from {remote}"));
    }
    let receipts = Arc::new(Receipts {
        conn: conn.clone(),
        stream: tokio::sync::Mutex::new(None),
    });
    // stream channels: one QUIC DATAGRAM frame (RFC 9221) per stream packet
    let datagrams = tokio::spawn(datagrams(receiver.clone(), conn.clone()));
    loop {
        let recv = match conn.accept_uni().await {
            Ok(r) => r,
            Err(e) => {
                datagrams.abort();
                if reports {
                    node.link_changed(LinkKind::Quic, false, &e.to_string(), true);
                } else {
                    audit_link(&receiver, false, &e.to_string());
                }
                return;
            }
        };
        let receiver = receiver.clone();
        let receipts = receipts.clone();
        tokio::spawn(async move {
            if let Some((id, status)) = object(&receiver, recv).await {
                receipts.send(id, status).await;
            }
        });
    }
}

/// Hands every datagram of the connection to the receiver's stream shell, until the
/// connection ends.
async fn datagrams(receiver: Arc<Receiver>, conn: quinn::Connection) {
    while let Ok(d) = conn.read_datagram().await {
        receiver.stream_frame(crate::mono_ms(), &d);
    }
}

/// Audits a connection of the peer's without touching the link state, which the node's own
/// sending connection owns.
fn audit_link(receiver: &Receiver, up: bool, detail: &str) {
    let node = &receiver.node;
    let e = crate::audit::Entry {
        peer: Some(node.cfg.peer.name.clone()),
        detail: Some(detail.to_string()),
        ..crate::audit::Entry::default()
    };
    let event = if up {
        crate::audit::Event::LinkUp
    } else {
        crate::audit::Event::LinkDown
    };
    if let Err(err) = node.audit.append(event, e) {
        tracing::error!(error = %err, "cannot audit the peer's connection");
    }
}

/// Handles one stream; returns the receipt to send, if any.
async fn object(
    receiver: &Arc<Receiver>,
    mut recv: quinn::RecvStream,
) -> Option<(ObjectId, ReceiptStatus)> {
    let mut header = [0u8; HEADER_LEN];
    recv.read_exact(&mut header).await.ok()?;
    let header = match FrameHeader::decode(&header) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "malformed object frame; stream dropped");
            let _ = recv.stop(1u32.into());
            return None;
        }
    };
    let mut payload = vec![0u8; header.len as usize];
    recv.read_exact(&mut payload).await.ok()?;
    if header.kind == FrameKind::Checkpoint {
        witness(receiver, &payload);
        return None;
    }
    let r = receiver.clone();
    let begun = tokio::task::spawn_blocking(move || r.begin(LinkKind::Quic, &payload, None))
        .await
        .ok()?;
    let arriving = match begun {
        Begin::Arriving(a) => a,
        Begin::Answered(answer) => {
            let _ = recv.stop(2u32.into());
            return answer;
        }
    };
    let id = arriving.manifest().object_id;
    let (tx, rx) = mpsc::channel::<Vec<Bytes>>(WRITES_IN_FLIGHT);
    let writer = tokio::task::spawn_blocking(move || write(*arriving, rx));
    let mut complete = true;
    let mut batch = Batch::default();
    loop {
        match recv.read_chunk(1 << 20, true).await {
            Ok(Some(chunk)) => {
                // the writer stopped (a refusal or an I/O error): said at once, not a
                // batch later
                if tx.is_closed() {
                    break;
                }
                if let Some(full) = batch.add(chunk.bytes)
                    && tx.send(full).await.is_err()
                {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(object = %id, error = %e, "stream broken");
                complete = false;
                break;
            }
        }
    }
    // every byte read is written, the stream whole or not (a bad chunk among them is
    // refused as such); a writer that stopped has said why already
    if let Some(rest) = batch.rest() {
        let _ = tx.send(rest).await;
    }
    drop(tx);
    let arriving = writer.await.ok()?;
    let r = receiver.clone();
    let result = tokio::task::spawn_blocking(move || r.finish(arriving, complete))
        .await
        .ok()?;
    match result {
        Ok(status) => status.map(|s| (id, s)),
        Err(e) => {
            crate::ops::repeat::error_repeated!("quic.land", &e.to_string();
                object = %id, error = %e, "could not land; the peer will send again");
            Some((id, ReceiptStatus::Retry))
        }
    }
}

/// Bytes of a stream gathered before they go to its writer thread at once: one wake of
/// the writer a batch, rather than one a QUIC frame (a few KiB: 1 GiB made some 160,000
/// context switches on the receiving node, measured). Each chunk keeps alive the whole
/// buffer quinn received it in (up to 64 packets), so a batch is kept small.
const WRITE_BATCH: usize = 128 << 10;

/// Batches queued for the writer thread at most; the stream's reader waits beyond (and
/// with it the peer, once the stream's receive window is full). What a stream holds
/// outside quinn's windows (read, so credited back to the peer, not yet written): this
/// many batches and the one being gathered, 384 KiB, for each object in flight. The
/// batch's size, not this depth, spares the wakes.
const WRITES_IN_FLIGHT: usize = 2;

/// The chunks of a stream gathered for its writer thread (the link's own buffers: no copy).
#[derive(Default)]
struct Batch {
    chunks: Vec<Bytes>,
    bytes: usize,
}

impl Batch {
    /// Adds `chunk`: the batch to hand to the writer once it holds [`WRITE_BATCH`] bytes.
    fn add(&mut self, chunk: Bytes) -> Option<Vec<Bytes>> {
        self.bytes += chunk.len();
        self.chunks.push(chunk);
        (self.bytes >= WRITE_BATCH).then(|| {
            self.bytes = 0;
            std::mem::take(&mut self.chunks)
        })
    }

    /// What is left at the stream's end, if anything.
    fn rest(&mut self) -> Option<Vec<Bytes>> {
        self.bytes = 0;
        Some(std::mem::take(&mut self.chunks)).filter(|c| !c.is_empty())
    }
}

/// Writes the stream's chunks, a batch at a time, into the arriving object until the
/// stream ends or the object refuses more.
fn write(mut arriving: Arriving, mut rx: mpsc::Receiver<Vec<Bytes>>) -> Arriving {
    while let Some(batch) = rx.blocking_recv() {
        for b in batch {
            if !arriving.write(b) {
                return arriving;
            }
        }
    }
    arriving
}

/// Records a checkpoint of the peer's audit log after checking its signature: this node
/// witnesses the peer's history, so the peer cannot later rewrite it unnoticed.
pub(crate) fn witness(receiver: &Receiver, payload: &[u8]) {
    let node = &receiver.node;
    let origin = crate::core::checkpoint::origin(&node.cfg.peer.name);
    let opened = std::str::from_utf8(payload).ok().map(|note| {
        (
            note,
            Checkpoint::open_any(note, &node.keys.rules().peer_keys, &origin),
        )
    });
    match opened {
        Some((note, Ok(cp))) => {
            // the same note again (a repeat, a reconnection) is not recorded again
            if let Err(e) = node.audit.witness(&node.cfg.peer.name, note, cp.size) {
                tracing::error!(error = %e, "cannot record the peer's checkpoint");
            }
        }
        Some((_, Err(e))) => tracing::warn!(error = %e, "refused a checkpoint from the peer"),
        None => tracing::warn!("refused a checkpoint from the peer: not UTF-8"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_goes_once_it_holds_a_batchs_bytes_and_the_rest_at_the_end() {
        let mut batch = Batch::default();
        assert!(
            batch.rest().is_none(),
            "nothing gathered: nothing to hand on"
        );
        let frame = Bytes::from(vec![7u8; 6000]);
        let mut handed = Vec::new();
        // three batches, each at most a frame over, and some bytes more
        let total = 3 * (WRITE_BATCH + frame.len()) + 100;
        let mut sent = 0;
        while sent < total {
            let n = frame.len().min(total - sent);
            if let Some(full) = batch.add(frame.slice(..n)) {
                handed.push(full);
            }
            sent += n;
        }
        assert_eq!(handed.len(), 3);
        for full in &handed {
            let bytes: usize = full.iter().map(Bytes::len).sum();
            assert!((WRITE_BATCH..WRITE_BATCH + frame.len()).contains(&bytes));
        }
        let rest = batch.rest().expect("the last bytes");
        let total: usize = handed.iter().chain([&rest]).flatten().map(Bytes::len).sum();
        assert_eq!(total, sent, "every byte handed on once");
        assert!(batch.rest().is_none());
    }
}
