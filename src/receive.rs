//! The receive stage: accepts the peer's QUIC connections, reads each object stream,
//! verifies it as it streams in (`verify`), inspects it again with this node's own copy of
//! the policy, and lands it or quarantines it. Then, and only then, it sends the receipt.
//!
//! ```text
//!  stream ─► header ─► verify::begin ─► name/size pre-check ─► part file (chunks verified)
//!        ─► verify::finish ─► fsync ─► inspect again ─► land ─► audit ─► receipt
//!                    any refusal ─► quarantine ─► audit ─► receipt
//! ```

use crate::audit::{Entry, Event};
use crate::checkpoint::Checkpoint;
use crate::config::Channel;
use crate::inspect::{InspectError, inspect_file};
use crate::land::{Lander, Outcome};
use crate::manifest::{Manifest, ObjectId};
use crate::node::Node;
use crate::quarantine::{self, Side, Subject};
use crate::reason::{Reason, Refusal};
use crate::verify::{BeginRefusal, Reception};
use crate::wire::{FrameHeader, FrameKind, HEADER_LEN, Receipt, ReceiptStatus};
use bytes::Bytes;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Quarantine directory for objects whose manifest could not be trusted.
pub const UNVERIFIED: &str = "_unverified";

/// Accepts connections until aborted.
pub async fn serve(node: Arc<Node>, endpoint: quinn::Endpoint) {
    let busy: Arc<Mutex<HashSet<ObjectId>>> = Arc::default();
    let current: Arc<Mutex<Option<quinn::Connection>>> = Arc::default();
    while let Some(incoming) = endpoint.accept().await {
        let node = node.clone();
        let busy = busy.clone();
        let current = current.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            match incoming.await {
                Ok(conn) => {
                    node.keys.track(&conn);
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
                    connection(node, conn, busy).await
                }
                Err(e) => tracing::warn!(remote = %remote, error = %e, "refused a connection"),
            }
        });
    }
}

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
        if let Some(s) = guard.as_mut() {
            if let Err(e) = s.write_all(&bytes).await {
                tracing::debug!(error = %e, "receipt not sent; the peer will send again");
                *guard = None;
            }
        }
    }
}

async fn connection(node: Arc<Node>, conn: quinn::Connection, busy: Arc<Mutex<HashSet<ObjectId>>>) {
    let remote = conn.remote_address();
    let _ = node.audit.append(
        Event::LinkUp,
        Entry {
            peer: Some(node.cfg.peer.name.clone()),
            detail: Some(format!("from {remote}")),
            ..Entry::default()
        },
    );
    if node.cfg.sending().next().is_none() {
        node.metrics.link_up.set(1);
    }
    tracing::info!(remote = %remote, "peer connected");
    let receipts = Arc::new(Receipts {
        conn: conn.clone(),
        stream: tokio::sync::Mutex::new(None),
    });
    loop {
        let recv = match conn.accept_uni().await {
            Ok(r) => r,
            Err(e) => {
                let _ = node.audit.append(
                    Event::LinkDown,
                    Entry {
                        peer: Some(node.cfg.peer.name.clone()),
                        detail: Some(e.to_string()),
                        ..Entry::default()
                    },
                );
                if node.cfg.sending().next().is_none() {
                    node.metrics.link_up.set(0);
                }
                tracing::info!(remote = %remote, reason = %e, "peer disconnected");
                return;
            }
        };
        let node = node.clone();
        let receipts = receipts.clone();
        let busy = busy.clone();
        tokio::spawn(async move {
            if let Some((id, status)) = object(&node, recv, &busy).await {
                receipts.send(id, status).await;
            }
        });
    }
}

/// Clears an object id from the in-progress set when dropped.
struct BusyGuard<'a>(&'a Mutex<HashSet<ObjectId>>, ObjectId);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut b) = self.0.lock() {
            b.remove(&self.1);
        }
    }
}

/// Handles one object stream; returns the receipt to send, if any.
async fn object(
    node: &Arc<Node>,
    mut recv: quinn::RecvStream,
    busy: &Mutex<HashSet<ObjectId>>,
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
        witness(node, &payload);
        return None;
    }
    let reception = match Reception::begin(&payload, &node.keys.rules()) {
        Ok(r) => r,
        Err(BeginRefusal {
            refusal,
            claimed_id,
        }) => {
            let _ = recv.stop(2u32.into());
            let id = claimed_id.map(Ok).unwrap_or_else(ObjectId::random).ok()?;
            let node = node.clone();
            let done =
                tokio::task::spawn_blocking(move || refuse_unverified(&node, id, &refusal)).await;
            return match done {
                Ok(Ok(())) => claimed_id.map(|id| (id, ReceiptStatus::Refused)),
                Ok(Err(e)) => {
                    tracing::error!(object = %id, error = %e, "cannot record a refusal");
                    None
                }
                Err(_) => None,
            };
        }
    };
    let m = reception.manifest().clone();
    let channel = node.cfg.channel(&m.channel)?.clone();
    let id = m.object_id;
    {
        let mut b = busy.lock().ok()?;
        if !b.insert(id) {
            let _ = recv.stop(3u32.into());
            return Some((id, ReceiptStatus::Retry));
        }
    }
    let _guard = BusyGuard(busy, id);

    // Already landed or quarantined: never deliver twice.
    let n2 = node.clone();
    let (c2, i2) = (channel.clone(), id);
    let known = tokio::task::spawn_blocking(move || -> io::Result<Option<Outcome>> {
        n2.lander.finish_pending(&c2.inbox, &c2.name, i2)?;
        n2.lander.outcome(&c2.name, i2)
    })
    .await
    .ok()?;
    match known {
        Ok(Some(_)) => {
            let _ = recv.stop(0u32.into());
            let mut e = Entry::object(&m.channel, id, &m.name);
            e.peer = Some(node.cfg.peer.name.clone());
            let n2 = node.clone();
            // durable before the receipt that lets the sender forget the object
            let recorded =
                tokio::task::spawn_blocking(move || n2.audit.durable(Event::Duplicate, e)).await;
            if !matches!(recorded, Ok(Ok(_))) {
                return Some((id, ReceiptStatus::Retry));
            }
            tracing::info!(channel = %m.channel, name = %m.name, object = %id, "duplicate; not delivered again");
            return Some((id, ReceiptStatus::Duplicate));
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(object = %id, error = %e, "cannot read delivery state");
            let _ = recv.stop(4u32.into());
            return Some((id, ReceiptStatus::Retry));
        }
    }

    // Both sides check: name and size against our own policy before reading any content.
    let policy = node.policies.get(&channel.name);
    let pre = policy.check_name(&m.name).and_then(|()| {
        if m.size > policy.max_bytes || m.size < policy.min_bytes {
            Err(Refusal::new(
                Reason::SizeLimit,
                format!("{} bytes is outside this channel's limits", m.size),
            ))
        } else {
            Ok(())
        }
    });
    if let Err(refusal) = pre {
        let _ = recv.stop(2u32.into());
        let node = node.clone();
        let done = tokio::task::spawn_blocking(move || {
            refuse_received(&node, &channel, &m, None, &refusal)
        })
        .await;
        return match done {
            Ok(Ok(())) => Some((id, ReceiptStatus::Refused)),
            _ => Some((id, ReceiptStatus::Retry)),
        };
    }

    // Disk safety: an object that would take the inbox's file system below the floor is
    // not started; the peer sends it again later.
    let floor = node.cfg.disk.min_free_bytes;
    match crate::status::free_bytes(&channel.inbox) {
        Ok(free) if free >= floor.saturating_add(m.size) => {}
        other => {
            tracing::warn!(channel = %m.channel, name = %m.name, free = ?other.ok(), floor, size = m.size, "inbox file system too full; the peer will send again");
            let _ = recv.stop(4u32.into());
            return Some((id, ReceiptStatus::Retry));
        }
    }
    let part = match Lander::create_part(&channel.inbox, id) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(inbox = %channel.inbox.display(), error = %e, "cannot create a part file");
            let _ = recv.stop(4u32.into());
            return Some((id, ReceiptStatus::Retry));
        }
    };
    let (part_path, file) = part;
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let writer = tokio::task::spawn_blocking(move || write_part(reception, file, rx));
    let mut stream_ok = true;
    loop {
        match recv.read_chunk(1 << 20, true).await {
            Ok(Some(chunk)) => {
                if tx.send(chunk.bytes).await.is_err() {
                    break; // the writer stopped: a refusal or an I/O error
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(object = %id, error = %e, "stream broken");
                stream_ok = false;
                break;
            }
        }
    }
    drop(tx);
    let written = writer.await.ok()?;
    let node2 = node.clone();
    let result = tokio::task::spawn_blocking(move || {
        finish(&node2, &channel, &m, part_path, written, stream_ok)
    })
    .await
    .ok()?;
    match result {
        Ok(status) => status.map(|s| (id, s)),
        Err(e) => {
            tracing::error!(object = %id, error = %e, "could not land; the peer will send again");
            Some((id, ReceiptStatus::Retry))
        }
    }
}

/// What the part writer ended with.
pub(crate) enum Written {
    /// Every byte verified and written.
    Complete(Box<Reception>, File),
    /// The content was refused while streaming.
    Refused(Refusal),
    /// Writing failed.
    Failed(io::Error),
}

fn write_part(mut reception: Reception, mut file: File, mut rx: mpsc::Receiver<Bytes>) -> Written {
    while let Some(b) = rx.blocking_recv() {
        if let Err(r) = reception.feed(&b) {
            return Written::Refused(r);
        }
        if let Err(e) = file.write_all(&b) {
            return Written::Failed(e);
        }
    }
    Written::Complete(Box::new(reception), file)
}

/// Ends one object after its stream: verify, fsync, inspect, land or quarantine.
/// `Ok(None)`: nothing to answer (the stream broke; the peer sends again).
pub(crate) fn finish(
    node: &Node,
    channel: &Channel,
    m: &Manifest,
    part: PathBuf,
    written: Written,
    stream_ok: bool,
) -> io::Result<Option<ReceiptStatus>> {
    let verified = match written {
        Written::Failed(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
        Written::Refused(r) => Err(r),
        Written::Complete(_, _) if !stream_ok => {
            std::fs::remove_file(&part)?;
            return Ok(None);
        }
        Written::Complete(reception, file) => match reception.finish() {
            Ok(v) => {
                file.sync_all()?;
                Ok(v)
            }
            Err(r) => Err(r),
        },
    };
    let verified = match verified {
        Ok(v) => v,
        Err(refusal) => {
            refuse_received(node, channel, m, Some(&part), &refusal)?;
            return Ok(Some(ReceiptStatus::Quarantined));
        }
    };
    let policy = node.policies.get(&channel.name);
    let work = part.parent().unwrap_or(&channel.inbox).to_path_buf();
    let accepted = match inspect_file(&policy, &m.name, &part, &work) {
        Ok(Ok(a)) => a,
        Ok(Err(refusal)) => {
            refuse_received(node, channel, m, Some(&part), &refusal)?;
            return Ok(Some(ReceiptStatus::Quarantined));
        }
        Err(InspectError::Io(e)) => return Err(e),
        Err(InspectError::Scan(e)) => {
            // fail closed: the content stays out until it can be scanned; the peer sends
            // it again, until this node's waiting time is over
            std::fs::remove_file(&part)?;
            let now = crate::now_ms();
            let first = *node
                .deferred_received
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(m.object_id)
                .or_insert(now);
            let max_wait = policy.antivirus.as_ref().map_or(0, |a| a.max_wait_ms);
            if now.saturating_sub(first) >= max_wait {
                forget_deferral(node, m.object_id);
                let refusal = Refusal::new(
                    Reason::ScanFailed,
                    format!("no antivirus verdict after {} s: {e}", (now - first) / 1000),
                );
                refuse_received(node, channel, m, None, &refusal)?;
                node.lander
                    .record(&channel.name, m.object_id, Outcome::Quarantined, &m.name)?;
                return Ok(Some(ReceiptStatus::Quarantined));
            }
            if first == now {
                node.metrics
                    .scan_deferred
                    .with_label_values(&[m.channel.as_str()])
                    .inc();
                let mut d = Entry::object(&m.channel, m.object_id, &m.name);
                d.detail = Some(e.to_string());
                node.audit
                    .append(Event::ScanDeferred, d)
                    .map_err(io::Error::other)?;
                tracing::warn!(channel = %m.channel, name = %m.name, error = %e, "antivirus unavailable; the peer will send again");
            }
            return Ok(Some(ReceiptStatus::Retry));
        }
    };
    forget_deferral(node, m.object_id);
    let m = &verified.manifest;
    if let Some(masked) = &accepted.masked {
        // our own policy masks what the sender did not: the masked copy is what lands
        let mut e = Entry::object(&m.channel, m.object_id, &m.name);
        e.peer = Some(node.cfg.peer.name.clone());
        node.audit_masked(e, m.sha256, masked)?;
        std::fs::rename(&masked.path, &part)?;
        if let Some(dir) = part.parent() {
            crate::fsx::sync_dir(dir)?;
        }
    }
    // Write-ahead: the landing is recorded, durably, before it is committed. A crash in
    // between makes the sender send again and the record appear twice; never a delivery
    // without a record.
    let planned = crate::land::first_free(&channel.inbox, &m.name);
    let mut e = Entry::object(&m.channel, m.object_id, &m.name);
    e.size = Some(m.size);
    e.sha256 = Some(m.sha256);
    e.peer = Some(node.cfg.peer.name.clone());
    if planned != m.name {
        e.detail = Some(format!("delivered as {planned}"));
    }
    node.audit
        .durable(Event::Landed, e)
        .map_err(io::Error::other)?;
    let path = node
        .lander
        .land(&channel.inbox, &channel.name, m.object_id, &m.name)?;
    node.metrics
        .land_objects
        .with_label_values(&[m.channel.as_str()])
        .inc();
    node.metrics
        .land_bytes
        .with_label_values(&[m.channel.as_str()])
        .inc_by(m.size);
    tracing::info!(channel = %m.channel, name = %m.name, object = %m.object_id, size = m.size, path = %path.display(), "landed");
    Ok(Some(ReceiptStatus::Landed))
}

/// Drops the record of an object's deferred scans.
fn forget_deferral(node: &Node, id: ObjectId) {
    node.deferred_received
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
}

/// Quarantines a received object (with its part file, if any), records the outcome so that
/// a resend is a duplicate, and audits it.
pub(crate) fn refuse_received(
    node: &Node,
    channel: &Channel,
    m: &Manifest,
    part: Option<&std::path::Path>,
    refusal: &Refusal,
) -> io::Result<()> {
    let subject = Subject {
        id: m.object_id,
        channel: &channel.name,
        name: &m.name,
    };
    quarantine::put(
        &channel.quarantine,
        &subject,
        part,
        &node.cfg.node.name,
        Side::Receiver,
        refusal,
    )?;
    if part.is_some() {
        node.lander
            .record(&channel.name, m.object_id, Outcome::Quarantined, &m.name)?;
    }
    let mut e = Entry::object(&m.channel, m.object_id, &m.name);
    e.size = Some(m.size);
    e.sha256 = Some(m.sha256);
    e.reason = Some(refusal.reason);
    e.detail = Some(refusal.detail.clone());
    e.peer = Some(node.cfg.peer.name.clone());
    node.audit
        .durable(Event::Quarantined, e)
        .map_err(io::Error::other)?;
    node.metrics.refused(&channel.name, refusal.reason);
    tracing::warn!(channel = %m.channel, name = %m.name, object = %m.object_id, reason = %refusal.reason, detail = %refusal.detail, "quarantined");
    Ok(())
}

/// Records a refusal of an object whose manifest could not be trusted: a reason file only
/// (its content is never read), in the `_unverified` quarantine.
pub(crate) fn refuse_unverified(node: &Node, id: ObjectId, refusal: &Refusal) -> io::Result<()> {
    let dir = node
        .cfg
        .node
        .exchange_dir
        .join("quarantine")
        .join(UNVERIFIED);
    let subject = Subject {
        id,
        channel: UNVERIFIED,
        name: "",
    };
    quarantine::put(
        &dir,
        &subject,
        None,
        &node.cfg.node.name,
        Side::Receiver,
        refusal,
    )?;
    let e = Entry {
        object_id: Some(id),
        reason: Some(refusal.reason),
        detail: Some(refusal.detail.clone()),
        peer: Some(node.cfg.peer.name.clone()),
        ..Entry::default()
    };
    node.audit
        .durable(Event::Quarantined, e)
        .map_err(io::Error::other)?;
    node.metrics.refused(UNVERIFIED, refusal.reason);
    tracing::warn!(object = %id, reason = %refusal.reason, detail = %refusal.detail, "refused an unverified object");
    Ok(())
}

/// Records a checkpoint of the peer's audit log after checking its signature: this node
/// witnesses the peer's history, so the peer cannot later rewrite it unnoticed.
fn witness(node: &Node, payload: &[u8]) {
    let origin = crate::checkpoint::origin(&node.cfg.peer.name);
    let opened = std::str::from_utf8(payload).ok().map(|note| {
        (
            note,
            Checkpoint::open_any(note, &node.keys.rules().peer_keys, &origin),
        )
    });
    match opened {
        Some((note, Ok(cp))) => {
            let e = Entry {
                peer: Some(node.cfg.peer.name.clone()),
                detail: Some(note.to_string()),
                size: Some(cp.size),
                ..Entry::default()
            };
            if let Err(e) = node.audit.append(Event::Witnessed, e) {
                tracing::error!(error = %e, "cannot record the peer's checkpoint");
            }
        }
        Some((_, Err(e))) => tracing::warn!(error = %e, "refused a checkpoint from the peer"),
        None => tracing::warn!("refused a checkpoint from the peer: not UTF-8"),
    }
}
