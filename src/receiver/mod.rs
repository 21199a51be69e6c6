//! The receiving node's pipeline, one path for both links: the QUIC and diode shells hand
//! it an object's signed manifest frame, then its bytes, then the end; it answers with the
//! receipt status (which only QUIC sends back).
//!
//! ```text
//!  link shell ─► begin ─────────────► Arriving ─► write(bytes)* ─► finish
//!                 │ signature, sender, channel   (every chunk hashed    │ size, whole hash,
//!                 │ received over THIS link      before it is written   │ (fsync*) ─► Received
//!                 │ duplicate? name, size, room  to the staged copy,    ▼
//!                 │ (space ledger)               sealed at rest)  inspect again (own
//!                 │                                               policy) ─► Cleared
//!                 │                                                     ▼
//!                 └─ any refusal ─► refuse: quarantine + audit ◄─── land: unseal into the
//!                                   + metric + log + outcome         part file, audit
//!                                                                    (write-ahead), marker,
//!                                                                    rename into inbox
//! ```
//!
//! A large object's chunks are hashed beside the write, on a thread of their own
//! ([`whole`]): a chunk that does not match may reach the staged copy before the object is
//! refused (within about 3 MiB of it: the batches queued for the thread), and the staged copy
//! goes with the refusal; a stream cut short meanwhile is refused all the same.
//!
//! With a data key the staged copy is sealed ([`staged`]): what this node has not cleared
//! never rests in plaintext on its disk. (fsync*: only a plaintext staged copy, the part
//! file, is fsynced there; a sealed one is fsynced where it is copied to.)
//!
//! The stage values (`Arriving`, `Received`, `Cleared`) can only be made here, by the step
//! that did the work: nothing lands that was not verified and inspected again.

pub mod deliver;
pub mod land;
pub mod messages;
pub mod release;
pub mod space;
pub mod staged;
pub mod stream;
pub mod whole;

use crate::core::id::ObjectId;
use crate::core::manifest::Manifest;
use crate::core::reason::{Reason, Refusal, Side};
use crate::core::verify::{BeginRefusal, Reception, Verified};
use crate::core::wire::{LinkKind, ReceiptStatus};
use crate::inspect::{InspectError, Masked, inspect_stored};
use crate::node::config::{Channel, Role};
use crate::node::{Fault, Node, NodeError, Refused};
use crate::ops::events::{self, Subject};
use bytes::Bytes;
use land::{Lander, Outcome};
use staged::{Staged, StagedWriter};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Quarantine directory for objects whose manifest could not be trusted.
pub const UNVERIFIED: &str = crate::node::quarantine::UNVERIFIED;

/// The receiving side of a node: its delivery state and the objects in progress.
pub struct Receiver {
    /// The node.
    pub node: Arc<Node>,
    lander: Lander,
    /// Objects being received now: a second copy at the same time waits.
    busy: Arc<Mutex<HashSet<ObjectId>>>,
    /// Received objects the antivirus could not scan: when each was first deferred
    /// ([`crate::mono_ms`]).
    deferred: Mutex<HashMap<ObjectId, u64>>,
    /// The room reserved in each inbox's file system for the objects arriving now.
    space: space::Ledger,
    /// The stream channels this node receives, once started ([`Receiver::start_streams`]).
    streams: std::sync::OnceLock<Arc<stream::Streams>>,
    /// The message log of each messages channel this node receives, by channel name.
    logs: HashMap<String, Arc<messages::MessageLog>>,
}

/// How `begin` ended.
pub enum Begin {
    /// The object may arrive: write its bytes, then finish it.
    Arriving(Box<Arriving>),
    /// Nothing more to read: the answer for the sender (none when the object has no id
    /// to answer for, or the link should simply wait for the next copy).
    Answered(Option<(ObjectId, ReceiptStatus)>),
}

/// An object whose signed manifest verified and passed the pre-checks; its bytes are
/// arriving into its staged copy in the inbox's staging directory (sealed at rest where the
/// node has a data key: [`staged`]).
pub struct Arriving {
    channel: Channel,
    manifest: Manifest,
    staged: Staged,
    file: StagedWriter,
    reception: Reception,
    /// The whole hash and the chunk check on threads of their own (a large object:
    /// [`whole::FROM`]).
    whole: Option<whole::Beside>,
    refused: Option<Refusal>,
    failed: Option<std::io::Error>,
    room: space::Reservation,
    _busy: BusyGuard,
}

/// An object whose every byte verified, in its staged copy (durable where that is the
/// plaintext part file; a sealed copy need not be: see [`StagedWriter::finish`]).
pub struct Received {
    channel: Channel,
    verified: Verified,
    staged: Staged,
}

/// A received object this node's own policy accepted: ready to land.
pub struct Cleared {
    received: Received,
    masked: Option<Masked>,
    /// The approvals that verified against this node's pinned approvers, one line each for
    /// the `approved` records written before `landed` (empty without `[approval]`).
    approvals: Vec<String>,
}

/// Clears an object id from the in-progress set when dropped.
struct BusyGuard(Arc<Mutex<HashSet<ObjectId>>>, ObjectId);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        if let Ok(mut b) = self.0.lock() {
            b.remove(&self.1);
        }
    }
}

impl Arriving {
    /// The verified manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Verifies and writes the next bytes of content (the link's buffer, handed on without
    /// a copy to the hashes' threads of a large object). After a refusal or a write
    /// failure nothing more is written; `false` tells the shell it may stop reading.
    pub fn write(&mut self, bytes: Bytes) -> bool {
        if self.refused.is_some() || self.failed.is_some() {
            return false;
        }
        if let Err(r) = self.reception.feed(&bytes) {
            self.refused = Some(r);
            return false;
        }
        if let Some(w) = &mut self.whole
            && let Err(stop) = w.write(&bytes)
        {
            match stop {
                whole::Stop::Refused(r) => self.refused = Some(r),
                whole::Stop::Broken => {
                    self.failed = Some(std::io::Error::other("a content hash's thread stopped"));
                }
            }
            return false;
        }
        if let Err(e) = self.file.write_all(&bytes) {
            self.failed = Some(e);
            return false;
        }
        self.room.wrote(bytes.len());
        true
    }

    /// Content bytes written so far.
    pub fn received(&self) -> u64 {
        self.reception.received()
    }

    /// Whether no refusal or failure is known so far (a large object's chunk checks run
    /// behind, on a thread of their own; all are checked before it lands): only
    /// then may a link keep it to go on with a later copy of the object.
    pub fn is_sound(&self) -> bool {
        self.refused.is_none() && self.failed.is_none()
    }

    /// Every byte is in (the link's stream ended whole): the hashes' threads of a large
    /// object get the last bytes and end, letting the link's buffers go while the object
    /// waits to land. Nothing more may be written.
    pub fn written(&mut self) {
        if let Some(w) = &mut self.whole {
            w.close();
        }
    }

    /// Drops the staged copy (the link lost this copy; the next one is awaited).
    pub fn abandon(self) {
        let _ = self.staged.remove();
    }
}

impl Receiver {
    /// Opens the delivery state under the node's state directory.
    ///
    /// # Errors
    /// The state directory cannot be made or read.
    pub fn open(node: Arc<Node>) -> Result<Receiver, NodeError> {
        let dir = node.cfg.node.state_dir.clone();
        let lander = Lander::open(&dir).map_err(|error| NodeError::Dir { path: dir, error })?;
        // its refusals are counted from 0, like every channel's
        node.metrics.prime_refusals(UNVERIFIED);
        let mut logs = HashMap::new();
        for c in node.cfg.receiving() {
            let Some(mc) = &c.messages else { continue };
            let log =
                messages::MessageLog::open(&c.name, &c.inbox, mc.retention_ms).map_err(|e| {
                    NodeError::MessageLog {
                        channel: c.name.clone(),
                        error: e.to_string(),
                    }
                })?;
            logs.insert(c.name.clone(), Arc::new(log));
        }
        Ok(Receiver {
            logs,
            lander,
            busy: Arc::default(),
            deferred: Mutex::default(),
            space: space::Ledger::new(node.cfg.disk.min_free_bytes),
            streams: std::sync::OnceLock::new(),
            node,
        })
    }

    /// Finishes the deliveries a crash interrupted after their commit and deletes
    /// uncommitted part files and sealed copies ([`staged`]), in every receiving channel.
    ///
    /// # Errors
    /// An inbox cannot be read, or a finished delivery cannot be audited.
    pub fn recover(&self) -> Result<(), NodeError> {
        let node = &self.node;
        for c in node.cfg.file_receiving() {
            if c.is_messages() {
                // a batch lands by its append to the log: its part file is never renamed in
                land::Lander::discard_parts(&c.inbox).map_err(|error| NodeError::Dir {
                    path: c.inbox.clone(),
                    error,
                })?;
                continue;
            }
            let found = self
                .lander
                .recover(&c.inbox, &c.name, node.cfg.node.suite)
                .map_err(|error| NodeError::Dir {
                    path: c.inbox.clone(),
                    error,
                })?;
            for (id, pending) in found {
                match self.finished(c, id, pending) {
                    Ok(()) => {}
                    Err(Fault::Audit(e)) => return Err(NodeError::Audit(e)),
                    // one object that cannot be quarantined must not stop the node: its
                    // part file stays, found again at its resend or the next start
                    Err(e) => {
                        tracing::error!(object = %id, inbox = %c.inbox.display(), error = %e, "cannot quarantine a changed part file; it stays in the staging area")
                    }
                }
            }
        }
        Ok(())
    }

    /// Audits what became of a committed part file found after a crash
    /// ([`Lander::finish_pending`]): its delivery finished now, or, when it changed on
    /// disk after its commit, its refusal into quarantine (`content_hash`; the marker then
    /// says quarantined, so a resend is answered as a duplicate, never delivered).
    fn finished(&self, c: &Channel, id: ObjectId, pending: land::Pending) -> Result<(), Fault> {
        let node = &self.node;
        match pending {
            land::Pending::None => Ok(()),
            land::Pending::Delivered { path, committed } => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                events::LandingFinished {
                    subject: Subject {
                        channel: &c.name,
                        id,
                        name: &name,
                        size: committed.map(|(size, _)| size),
                        digest: committed.map(|(_, digest)| digest),
                    },
                    peer: &node.cfg.peer.name,
                }
                .emit(node.sink())?;
                Ok(())
            }
            land::Pending::Damaged(d) => {
                tracing::error!(object = %id, part = %d.part.display(), detail = %d.detail, "a committed landing's part file changed on disk; quarantined, not delivered");
                let subject = Subject {
                    channel: &c.name,
                    id,
                    name: &d.name,
                    size: std::fs::symlink_metadata(&d.part).map(|m| m.len()).ok(),
                    digest: None,
                };
                let refusal = Refusal::new(Reason::ContentHash, d.detail);
                // write-ahead, as a landing: on record before the part file goes, so that a
                // crash in between repeats the record (the part file is found again at the
                // next start), never leaves a refusal unrecorded. Node::refuse records after
                // the move, which suits refusals that are repeated from their source (a
                // resend, a spool entry judged again) and records each once; nothing repeats
                // this one once its part file has gone.
                events::Refused {
                    subject,
                    side: Side::Receiver,
                    peer: Some(node.cfg.peer.name.as_str()),
                    refusal: &refusal,
                }
                .emit(node.sink())?;
                crate::node::quarantine::put(
                    &c.quarantine,
                    &crate::node::quarantine::Subject {
                        id,
                        channel: &c.name,
                        name: &d.name,
                    },
                    Some(crate::node::quarantine::Held::Entry(&d.part)),
                    &node.cfg.node.name,
                    Side::Receiver,
                    &refusal,
                    node.keys.data().as_deref(),
                )?;
                self.lander
                    .record(&c.name, id, Outcome::Quarantined, &d.name)?;
                Ok(())
            }
        }
    }

    /// The message log of `channel`, when it is a messages channel this node receives.
    pub fn message_log(&self, channel: &str) -> Option<Arc<messages::MessageLog>> {
        self.logs.get(channel).cloned()
    }

    /// Opens the emitting sockets of the stream channels this node receives and starts
    /// their timer (nothing when it receives none). Frames that arrive before are dropped.
    ///
    /// # Errors
    /// As [`stream::Streams::start`].
    pub fn start_streams(&self) -> Result<(), stream::StreamError> {
        if self.streams.get().is_some() || !self.node.cfg.receiving().any(|c| c.stream.is_some()) {
            return Ok(());
        }
        let s = stream::Streams::start(self.node.clone())?;
        let _ = self.streams.set(s);
        Ok(())
    }

    /// Takes one stream frame (a [`crate::core::stream::frame::StreamFrame`], encoded) that
    /// a link delivered at `now_ms` ([`crate::mono_ms`]): decoded, checked against this
    /// node's own stream rules, put in order and emitted to the channel's `emit` address.
    /// Synchronous and non-blocking: callable from a tokio task or a plain thread. What
    /// cannot pass is counted in `isogate_stream_dropped_total` by reason and dropped.
    pub fn stream_frame(&self, now_ms: u64, frame: &[u8]) {
        match self.streams.get() {
            Some(s) => s.frame(now_ms, frame),
            None => self
                .node
                .metrics
                .stream_drop(UNVERIFIED, crate::core::stream::DropReason::Frame),
        }
    }

    /// Stops the stream channels: a stream live now is audited `stream_stopped`.
    pub fn stop_streams(&self) {
        if let Some(s) = self.streams.get() {
            s.stop();
        }
    }

    /// Whether this node has already settled an object: landed, quarantined or refused.
    /// A `channel` that is not one of this node's (it names a directory) is never settled.
    pub fn settled(&self, channel: &str, id: ObjectId) -> bool {
        self.node
            .cfg
            .channel(channel)
            .filter(|c| c.is_files())
            .is_some_and(|c| matches!(self.outcome(c, id), Ok(Some(_))))
    }

    /// Starts an object that arrived over `link` with its frame payload (the signed
    /// manifest). `link_id` is the id the link itself carries, when it carries one (the
    /// diode's records): the manifest must name the same object. Blocking.
    pub fn begin(&self, link: LinkKind, payload: &[u8], link_id: Option<ObjectId>) -> Begin {
        let mut reception = match Reception::begin(payload, &self.node.keys.rules()) {
            Ok(r) => r,
            Err(BeginRefusal {
                refusal,
                claimed_id,
            }) => return self.refuse_unverified(link_id.or(claimed_id), &refusal),
        };
        let m = reception.manifest().clone();
        let id = m.object_id;
        if link_id.is_some_and(|l| l != id) {
            let r = Refusal::new(
                Reason::BadManifest,
                "the manifest names another object than the link",
            );
            return self.refuse_unverified(link_id, &r);
        }
        // a channel crosses on the link it is configured for, and no other
        let Some(channel) = self
            .node
            .cfg
            .channel(&m.channel)
            .filter(|c| c.role == Role::Receive && c.link == link && c.is_files())
            .cloned()
        else {
            let r = Refusal::new(
                Reason::WrongChannel,
                format!(
                    "{} is not a channel this node receives over {}",
                    m.channel,
                    link.as_str()
                ),
            );
            return self.refuse_unverified(Some(id), &r);
        };
        {
            let Ok(mut b) = self.busy.lock() else {
                return Begin::Answered(Some((id, ReceiptStatus::Retry)));
            };
            if !b.insert(id) {
                return Begin::Answered(Some((id, ReceiptStatus::Retry)));
            }
        }
        let busy = BusyGuard(self.busy.clone(), id);

        // exactly once: an object already landed or quarantined is never delivered again
        let pending = if channel.is_messages() {
            Lander::discard_part(&channel.inbox, id).map_err(Fault::from)
        } else {
            self.lander
                .finish_pending(&channel.inbox, &channel.name, id, self.node.cfg.node.suite)
                .map_err(Fault::from)
                .and_then(|p| self.finished(&channel, id, p))
        };
        let known = pending.and_then(|()| Ok(self.outcome(&channel, id)?));
        match known {
            // refused unread before: the same answer again, so that the sender keeps the
            // content (in its own quarantine) rather than forget it as delivered
            Ok(Some(Outcome::Refused)) if link == LinkKind::Quic => {
                self.stop_waiting(&channel.name, id);
                tracing::info!(channel = %m.channel, name = %m.name, object = %id, "sent again after a refusal; refused again");
                return Begin::Answered(Some((id, ReceiptStatus::Refused)));
            }
            Ok(Some(_)) => {
                self.stop_waiting(&channel.name, id);
                return self.duplicate(link, &m);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(object = %id, error = %e, "cannot read delivery state; the object is sent again");
                return Begin::Answered(Some((id, ReceiptStatus::Retry)));
            }
        }

        // both sides check: name and size against our own policy before any content
        let policy = self.node.policies.get(&channel.name);
        let pre = policy
            .check_name(&m.name)
            .and_then(|()| policy.check_size(m.size))
            .and_then(|()| {
                check_approvals(&policy, reception.digest(), reception.approvals()).map(|_| ())
            });
        if let Err(refusal) = pre {
            self.stop_waiting(&channel.name, id);
            return match self.refuse_received(&channel, &m, None, &refusal, Outcome::Refused) {
                Ok(()) => Begin::Answered(Some((id, ReceiptStatus::Refused))),
                Err(e) => {
                    tracing::error!(object = %id, error = %e, "cannot record a refusal");
                    Begin::Answered(Some((id, ReceiptStatus::Retry)))
                }
            };
        }

        // disk safety: the object's declared size is reserved above the floor before its
        // first byte is written; without room it waits (sent again later, or its repeat)
        // a policy that masks writes a masked copy beside the staged one while it inspects
        // (masking keeps the length; so does a messages policy, whose copy of a batch
        // leaves refused messages out), and a sealed copy is unsealed beside itself to
        // land, so such an object needs its size twice
        let keys = self.node.keys.data();
        let need = Staged::room(
            m.size,
            keys.is_some(),
            policy.masks() || policy.messages.is_some(),
        );
        let (room, waiting) =
            self.space
                .reserve(&channel.name, &channel.inbox, id, need, crate::mono_ms());
        self.report_waiting(&channel.name, waiting, room.as_ref().err());
        let room = match room {
            Ok(r) => r,
            Err(short) => {
                tracing::debug!(channel = %m.channel, name = %m.name, object = %id, why = %short, "no room in the inbox; the object waits");
                return Begin::Answered(Some((id, ReceiptStatus::Retry)));
            }
        };
        match Staged::create(&channel.inbox, &channel.name, id, keys) {
            Ok((staged, file)) => Begin::Arriving(Box::new(Arriving {
                channel,
                whole: if m.size >= whole::FROM {
                    whole::Beside::start(&mut reception)
                } else {
                    None
                },
                manifest: m,
                staged,
                file,
                reception,
                refused: None,
                failed: None,
                room,
                _busy: busy,
            })),
            Err(e) => {
                // the sender retries every object that meets it: said once, then as a count
                crate::ops::repeat::error_repeated!("receiver.staged", &format!("{}: {e}", channel.inbox.display());
                    inbox = %channel.inbox.display(), error = %e, "cannot create a staged copy");
                Begin::Answered(Some((id, ReceiptStatus::Retry)))
            }
        }
    }

    /// What became of object `id` of `channel` before: a batch its message log holds has
    /// landed; otherwise the lander's marker says (a batch the log no longer holds was
    /// handed to the lander before its segment went).
    fn outcome(&self, channel: &Channel, id: ObjectId) -> std::io::Result<Option<Outcome>> {
        if channel.is_messages()
            && self
                .logs
                .get(&channel.name)
                .is_some_and(|log| log.has_object(id))
        {
            return Ok(Some(Outcome::Landed));
        }
        self.lander.outcome(&channel.name, id)
    }

    /// Exports a channel's waiting state (metric, `/healthz`) and logs it once per spell:
    /// when the first object starts to wait, and when the last one got its room.
    fn report_waiting(&self, channel: &str, w: space::Waiting, why: Option<&space::Short>) {
        self.node
            .metrics
            .land_waiting_space
            .with_label_values(&[channel])
            .set(i64::try_from(w.count).unwrap_or(i64::MAX));
        match w.spell {
            Some(space::Spell::Began) => {
                let why = why.map(ToString::to_string).unwrap_or_default();
                tracing::warn!(channel, why = %why, "inbox full; objects wait for free space and are taken again once it returns");
            }
            Some(space::Spell::Ended) => {
                tracing::info!(
                    channel,
                    "inbox has room again; no object waits for free space"
                );
            }
            None => {}
        }
    }

    /// An object of `channel` no longer waits for room (the diode sender retired it: it
    /// is audited `lost`); the waiting state is exported again.
    pub fn stop_waiting(&self, channel: &str, id: ObjectId) {
        let w = self.space.forget(channel, id, crate::mono_ms());
        self.report_waiting(channel, w, None);
    }

    /// Exports every receiving channel's waiting state again, so that a spell whose
    /// waiters all went stale (their sender stopped asking) ends without a new arrival.
    /// Called every few seconds by the node.
    pub fn refresh_waiting(&self) {
        for c in self.node.cfg.file_receiving() {
            let w = self.space.waiting(&c.name, crate::mono_ms());
            self.report_waiting(&c.name, w, None);
        }
        // the message logs' retention, swept at most once a minute each
        for log in self.logs.values() {
            // an object the log forgets is answered by the lander's marker from then on
            let forget = |id: ObjectId| {
                self.lander
                    .record(log.channel(), id, Outcome::Landed, &format!("{id}.ndjson"))
                    .map_err(|source| messages::LogError::Io {
                        path: log.dir().to_path_buf(),
                        source,
                    })
            };
            if let Err(e) = log.sweep(crate::now_ms(), forget) {
                tracing::warn!(channel = %log.channel(), error = %e, "cannot remove expired batches of the message log");
            }
        }
    }

    /// An object already landed or quarantined arrived again. On QUIC the resend is
    /// recorded (durably, before the receipt that lets the sender forget it); on the
    /// diode it is the carousel's next copy and is dropped quietly.
    fn duplicate(&self, link: LinkKind, m: &Manifest) -> Begin {
        let id = m.object_id;
        if link == LinkKind::Diode {
            return Begin::Answered(None);
        }
        let mut e = crate::audit::Entry::object(&m.channel, id, &m.name);
        e.peer = Some(self.node.cfg.peer.name.clone());
        if let Err(err) = self.node.audit.durable(crate::audit::Event::Duplicate, e) {
            tracing::error!(object = %id, error = %err, "cannot audit a duplicate");
            return Begin::Answered(Some((id, ReceiptStatus::Retry)));
        }
        tracing::info!(channel = %m.channel, name = %m.name, object = %id, "duplicate; not delivered again");
        Begin::Answered(Some((id, ReceiptStatus::Duplicate)))
    }

    /// Ends an object after its last byte (`complete`) or a broken stream: verify, end
    /// the staged copy ([`StagedWriter::finish`]),
    /// inspect again, land or quarantine. Blocking. `Ok(None)`: nothing to answer (the
    /// stream broke; the sender sends again).
    ///
    /// # Errors
    /// A fault: nothing was delivered; the sender sends again.
    pub fn finish(
        &self,
        arriving: Arriving,
        complete: bool,
    ) -> Result<Option<ReceiptStatus>, Fault> {
        let Arriving {
            channel,
            manifest: m,
            staged,
            file,
            reception,
            whole,
            refused,
            failed,
            room,
            _busy,
        } = arriving;
        // kept until the object has landed or was answered: what is left of it is the room
        // for the masked copy that inspection may write beside the staged copy, or for the
        // part file a sealed copy is unsealed into
        let _room = room;
        if let Some(e) = failed {
            let _ = staged.remove();
            return Err(e.into());
        }
        // a stream cut short may hold a chunk refused beside it: refused, not sent again
        let (refused, whole) = match (refused, whole) {
            (None, Some(w)) if !complete => (w.refusal(), None),
            other => other,
        };
        let verified = match refused {
            Some(r) => Err(r),
            None if !complete => {
                staged.remove()?;
                return Ok(None);
            }
            None => match whole.map(whole::Beside::finish) {
                None => reception.finish(),
                Some(Ok(apart)) => reception.finish_apart(apart.whole, apart.chunks),
                Some(Err(whole::Stop::Refused(r))) => Err(r),
                Some(Err(whole::Stop::Broken)) => {
                    let _ = staged.remove();
                    return Err(std::io::Error::other("a content hash's thread failed").into());
                }
            },
        };
        // the copy ends (a sealed one's last chunk; a plaintext one, the part file, fsynced)
        if let Err(e) = file.finish() {
            let _ = staged.remove();
            return Err(e.into());
        }
        let verified = match verified {
            Ok(v) => v,
            Err(refusal) => {
                // what arrived is not what the manifest signs: the record names the hash
                // and size of the bytes received (in quarantine), not the manifest's
                let (size, digest) = staged.measure(self.node.cfg.node.suite)?;
                let received = Subject {
                    size: Some(size),
                    digest: Some(digest),
                    ..subject(&m)
                };
                self.refuse_as(&channel, received, Some(&staged), &refusal)?;
                self.lander
                    .record(&channel.name, m.object_id, Outcome::Quarantined, &m.name)?;
                return Ok(Some(ReceiptStatus::Quarantined));
            }
        };
        let received = Received {
            channel,
            verified,
            staged,
        };
        match self.inspect(received)? {
            Inspected::Cleared(c) => self.land(*c).map(Some),
            Inspected::Answered(s) => Ok(Some(s)),
        }
    }

    /// Runs this node's own copy of the policy over a received object.
    fn inspect(&self, received: Received) -> Result<Inspected, Fault> {
        let node = &self.node;
        let m = &received.verified.manifest;
        let channel = &received.channel;
        let staged = &received.staged;
        let policy = node.policies.get(&channel.name);
        let work = staged
            .path()
            .parent()
            .unwrap_or(&channel.inbox)
            .to_path_buf();
        // the approvals again, with the policy in force now (it may have been reloaded
        // while the content arrived)
        let approvals = match check_approvals(
            &policy,
            &received.verified.digest,
            &received.verified.approvals,
        ) {
            Ok(a) => a,
            Err(refusal) => {
                self.refuse_received(channel, m, Some(staged), &refusal, Outcome::Quarantined)?;
                return Ok(Inspected::Answered(ReceiptStatus::Quarantined));
            }
        };
        let inspected = inspect_stored(
            &policy,
            &m.name,
            staged.path(),
            &work,
            staged.sealing().as_ref(),
            self.node.cfg.node.suite,
        );
        let accepted = match inspected {
            Ok(Ok(a)) => {
                // a batch's messages this node refuses while it accepts the others: each
                // quarantined on its own, durably, before the copy that leaves them out
                // lands (the sender sends the batch again after a crash in between: they
                // are quarantined again, as one entry each)
                for r in &a.refused {
                    node.message_refused(
                        &channel.name,
                        r.id,
                        r.body.as_bytes(),
                        &r.refusal,
                        Side::Receiver,
                    )?;
                }
                a
            }
            Ok(Err(refusal)) => {
                self.refuse_received(channel, m, Some(staged), &refusal, Outcome::Quarantined)?;
                return Ok(Inspected::Answered(ReceiptStatus::Quarantined));
            }
            Err(InspectError::Io(e)) => {
                // a full disk while the masked copy was written, say: nothing stays behind
                // in the inbox's staging folder; the object is sent (or repeated) again
                if let Err(rm) = staged.remove() {
                    tracing::warn!(part = %staged.path().display(), error = %rm, "cannot remove a staged copy after a failed inspection");
                }
                return Err(e.into());
            }
            Err(InspectError::Scan(e)) => {
                // fail closed: the content stays out until it can be scanned; the peer sends
                // it again, until this node's waiting time is over
                staged.remove()?;
                // how long it has waited: on the monotonic clock
                let now = crate::mono_ms();
                let first = *self
                    .deferred
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(m.object_id)
                    .or_insert(now);
                let max_wait = policy.antivirus.as_ref().map_or(0, |a| a.max_wait_ms);
                if now.saturating_sub(first) >= max_wait {
                    self.forget_deferral(m.object_id);
                    let refusal = Refusal::new(
                        Reason::ScanFailed,
                        format!("no antivirus verdict after {} s: {e}", (now - first) / 1000),
                    );
                    self.refuse_received(channel, m, None, &refusal, Outcome::Quarantined)?;
                    return Ok(Inspected::Answered(ReceiptStatus::Quarantined));
                }
                if first == now {
                    events::ScanDeferred {
                        subject: subject(m),
                        why: &e.to_string(),
                    }
                    .emit(node.sink())?;
                }
                return Ok(Inspected::Answered(ReceiptStatus::Retry));
            }
        };
        self.forget_deferral(m.object_id);
        Ok(Inspected::Cleared(Box::new(Cleared {
            received,
            masked: accepted.masked,
            approvals,
        })))
    }

    /// Delivers a cleared object into its inbox, exactly once.
    fn land(&self, cleared: Cleared) -> Result<ReceiptStatus, Fault> {
        let node = &self.node;
        let Cleared {
            received,
            masked,
            approvals,
        } = cleared;
        let Received {
            channel,
            verified,
            staged,
        } = received;
        let m = &verified.manifest;
        if channel.is_messages() {
            return self.land_messages(&channel, m, &staged, masked.as_ref());
        }
        if let Some(masked) = &masked {
            // our own policy masks what the sender did not: the masked copy (sealed like
            // the staged one) is what lands
            node.masked(subject(m), m.digest, masked)?;
            std::fs::rename(&masked.path, staged.path())?;
            if let Some(dir) = staged.path().parent() {
                crate::fsx::sync_dir(dir)?;
            }
        }
        // cleared: only now does its plaintext rest on disk, as the part file that lands;
        // once that is durable the sealed copy is no longer needed
        if let Err(e) = staged.unseal(&channel.inbox, m.object_id) {
            let _ = staged.remove();
            return Err(e.into());
        }
        if let Err(e) = staged.remove_sealed() {
            tracing::warn!(part = %staged.path().display(), error = %e, "cannot remove the sealed copy of a cleared object; the next start removes it");
        }
        // Write-ahead: the landing is recorded, durably, before it is committed. A crash in
        // between makes the sender send again and the record appear twice; never a delivery
        // without a record. Not recorded: the part file goes, and the object is sent again.
        let recorded = (|| -> Result<(), Fault> {
            for detail in approvals {
                let mut e = crate::audit::Entry::object(&m.channel, m.object_id, &m.name);
                e.digest = Some(m.digest);
                e.peer = Some(node.cfg.peer.name.clone());
                e.detail = Some(detail);
                node.audit.append(crate::audit::Event::Approved, e)?;
            }
            let planned = land::first_free(&channel.inbox, &m.name);
            // what lands is the masked copy where this node masked: its hash is the record's
            let landed = Subject {
                digest: Some(masked.as_ref().map_or(m.digest, |mk| mk.digest)),
                ..subject(m)
            };
            events::Landed {
                subject: landed,
                peer: &node.cfg.peer.name,
                delivered_as: (planned != m.name).then_some(planned.as_str()),
            }
            .emit(node.sink())?;
            Ok(())
        })();
        if let Err(e) = recorded {
            let _ = std::fs::remove_file(Lander::part_path(&channel.inbox, m.object_id));
            return Err(e);
        }
        let path = self.lander.land(
            &channel.inbox,
            &channel.name,
            m.object_id,
            &m.name,
            masked.as_ref().map_or(m.digest, |mk| mk.digest),
            node.cfg.node.suite,
        )?;
        tracing::debug!(object = %m.object_id, path = %path.display(), "delivered");
        Ok(ReceiptStatus::Landed)
    }

    /// Lands a cleared batch of a messages channel: its messages (the masked copy's when
    /// this node masked) are appended to the channel's message log, durably and once
    /// (`landed`, `message_delivered` / `message_duplicate`), and the log's record of the
    /// batch is its landing; then its staged copy is deleted (never renamed into the
    /// inbox).
    fn land_messages(
        &self,
        channel: &Channel,
        m: &Manifest,
        staged: &Staged,
        masked: Option<&Masked>,
    ) -> Result<ReceiptStatus, Fault> {
        let node = &self.node;
        let Some(log) = self.logs.get(&channel.name) else {
            return Err(Fault::UnknownChannel {
                object: m.object_id,
                channel: channel.name.clone(),
            });
        };
        let landing = match masked {
            Some(mk) => {
                node.masked(subject(m), m.digest, mk)?;
                mk.path.as_path()
            }
            None => staged.path(),
        };
        // the batch passed this node's inspection under a messages policy, which parsed it
        // and refused any body not in compact form (and a masked copy is written compact):
        // read as written. Under any other policy nothing checked its messages: refused.
        let read = if node.policies.get(&channel.name).messages.is_some() {
            staged
                .read_path(landing)
                .map(|b| crate::core::message::read_written_batch(&b))?
        } else {
            Err(crate::core::message::BatchError::Shape(
                "the channel's policy in force has no [messages] rules: its messages were not checked",
            ))
        };
        let batch = match read {
            Ok(b) => b,
            Err(e) => {
                let refusal = Refusal::new(Reason::MessageMalformed, e.to_string());
                self.refuse_received(channel, m, Some(staged), &refusal, Outcome::Quarantined)?;
                if masked.is_some() {
                    let _ = std::fs::remove_file(landing);
                }
                return Ok(ReceiptStatus::Quarantined);
            }
        };
        // the log's record of the batch is its landing (no marker: the log answers a
        // resend as a duplicate); `landed` is recorded with its messages, ahead of it
        let landed = events::Landed {
            subject: subject(m),
            peer: &node.cfg.peer.name,
            delivered_as: None,
        };
        let appended = messages::land_batch(node, log, m.object_id, &batch, &landed)?;
        for p in [Some(staged.path()), masked.map(|mk| mk.path.as_path())]
            .into_iter()
            .flatten()
        {
            if let Err(e) = std::fs::remove_file(p)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(part = %p.display(), error = %e, "cannot remove a landed batch's staged copy");
            }
        }
        tracing::debug!(channel = %channel.name, object = %m.object_id, delivered = appended.delivered.len(), duplicates = appended.duplicates.len(), already = appended.already, "batch of messages landed");
        Ok(ReceiptStatus::Landed)
    }

    /// Drops the record of an object's deferred scans.
    fn forget_deferral(&self, id: ObjectId) {
        self.deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Quarantines a received object (with its staged copy, if any), records the outcome so
    /// that a resend is answered the same way, and audits it. `Outcome::Refused`: refused
    /// before any content was read (the sender keeps the content, in its own quarantine);
    /// `Outcome::Quarantined`: the content was received and is in this node's quarantine.
    ///
    /// The `quarantined` record carries the manifest's hash and size: the content's
    /// own once it was received and verified (refused by this node's inspection), the
    /// sender's signed hash of the whole file when it was refused before its content
    /// arrived (`Outcome::Refused`).
    fn refuse_received(
        &self,
        channel: &Channel,
        m: &Manifest,
        staged: Option<&Staged>,
        refusal: &Refusal,
        outcome: Outcome,
    ) -> Result<(), Fault> {
        self.refuse_as(channel, subject(m), staged, refusal)?;
        self.lander
            .record(&channel.name, m.object_id, outcome, &m.name)?;
        Ok(())
    }

    /// Quarantines a received object described by `subject` (with its staged copy, if any)
    /// and audits it.
    fn refuse_as(
        &self,
        channel: &Channel,
        subject: Subject<'_>,
        staged: Option<&Staged>,
        refusal: &Refusal,
    ) -> Result<(), Fault> {
        self.node.refuse(
            &Refused {
                subject,
                quarantine: &channel.quarantine,
                content: staged.map(Staged::held),
                side: Side::Receiver,
            },
            refusal,
        )
    }

    /// Refuses an object whose frame does not even decode (the diode carries the object id
    /// beside it): recorded like any unverified object.
    pub fn refuse_frame(&self, id: ObjectId, refusal: &Refusal) {
        let _ = self.refuse_unverified(Some(id), refusal);
    }

    /// Records a refusal of an object whose manifest could not be trusted: a reason file
    /// only (its content is never read), in the `_unverified` quarantine. Answered
    /// `refused` when the object has an id to answer for.
    fn refuse_unverified(&self, id: Option<ObjectId>, refusal: &Refusal) -> Begin {
        let node = &self.node;
        let named = match id.map_or_else(crate::node::fresh_id, Ok) {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(error = %e, "cannot name a refused object");
                return Begin::Answered(None);
            }
        };
        let dir = node
            .cfg
            .node
            .exchange_dir
            .join("quarantine")
            .join(UNVERIFIED);
        let refused = Refused {
            subject: Subject {
                channel: UNVERIFIED,
                id: named,
                name: "",
                size: None,
                digest: None,
            },
            quarantine: &dir,
            content: None,
            side: Side::Receiver,
        };
        match node.refuse(&refused, refusal) {
            Ok(()) => Begin::Answered(id.map(|i| (i, ReceiptStatus::Refused))),
            Err(e) => {
                tracing::error!(object = %named, error = %e, "cannot record a refusal");
                Begin::Answered(None)
            }
        }
    }
}

/// What inspecting a received object again ended with.
enum Inspected {
    /// Accepted: ready to land.
    Cleared(Box<Cleared>),
    /// Refused, deferred or quarantined: this is the answer.
    Answered(ReceiptStatus),
}

/// Checks an arriving object's approvals against this node's own pinned approvers (the
/// channel policy's `[approval]`): one line per approver that verified, for the audit; a
/// refusal `approval_missing` when they are missing, too few, forged, repeated, from an
/// unknown key or leave a level without one. Without `[approval]`, nothing is required
/// (approvals that came along are not counted).
fn check_approvals(
    policy: &crate::policy::Policy,
    digest: &[u8; 32],
    approvals: &[crate::core::approval::Approval],
) -> Result<Vec<String>, Refusal> {
    let Some(rule) = policy.approval.as_ref() else {
        return Ok(Vec::new());
    };
    match rule.check(digest, approvals) {
        Ok(approvers) => Ok(approvers
            .iter()
            .map(|a| {
                format!(
                    "by {} (level {}, key {}): verified with this node's pinned approvers",
                    a.name,
                    a.level,
                    a.key.fingerprint()
                )
            })
            .collect()),
        Err(e) => Err(Refusal::new(
            Reason::ApprovalMissing,
            format!(
                "{e}; this node requires {} approval(s) from its own pinned approvers",
                rule.required
            ),
        )),
    }
}

/// What the telemetry says of a received object.
fn subject(m: &Manifest) -> Subject<'_> {
    Subject {
        channel: &m.channel,
        id: m.object_id,
        name: &m.name,
        size: Some(m.size),
        digest: Some(m.digest),
    }
}
