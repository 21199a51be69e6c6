//! The sending node's pipeline after intake: a spooled object is inspected with the
//! channel's policy, sealed (hashed, manifest signed, framed) and queued for its link; a
//! QUIC link that is done with it (the peer's receipt) clears it from the spool; the diode
//! link retires its objects itself (audited `retired`, held for `isogate resend`).
//!
//! ```text
//!  Spooled ─► inspect::inspect ─► Inspected ─► seal ─► Sealed ─► queue ─► route ─► link
//!     │  (a message batch its batcher noted as checked under the policy in force:
//!     │   accepted unchecked, then its sealed hash must be the one noted)
//!     │            │ refused: quarantine + audit (Node::refuse), spool entry removed
//!     │            └ antivirus down: waits, tried again every 2 s until max_wait
//!     └ recovered at start-up: sealed again, or reloaded from its stored manifest
//!  quic receipt ─► confirm: audit `confirmed` (durable) ─► spool entry removed
//! ```
//!
//! The spool copy is immutable once taken: its fingerprint (inode, size, modification and
//! status-change times) is read before inspection and checked again after it and once
//! sealed. A change (a writer that still held the file when it was renamed into the spool)
//! means the object is taken again: it waits until it has been left alone for `idle_ms`,
//! then is inspected from the start; it is never sealed, refused or sent as it was. A link
//! that finds the content no longer matches the sealed manifest hands it back the same way
//! ([`Sender::retake`]).

use crate::audit::{Entry, Event};
use crate::core::id::ObjectId;
use crate::core::reason::{Reason, Refusal, Side};
use crate::core::stage::{Sealed, Spooled};
use crate::core::wire::LinkKind;
use crate::fsx::Fingerprint;
use crate::inspect::{self, InspectError};
use crate::keys::at_rest::{self, Sealing};
use crate::node::config::Channel;
use crate::node::quarantine::Held;
use crate::node::{Fault, Node, NodeError, Refused};
use crate::ops::events::{self, Subject};
use crate::policy::Policy;
use crate::sender::seal;
use crate::sender::spool::{self, Spool, TakenHashes, hash_spooled};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often objects waiting for the antivirus are tried again.
const RETRY_SCAN: Duration = Duration::from_secs(2);
/// Bytes (as stored) from which an object's manifest hashes are taken on a thread of their
/// own while it is inspected: below, a thread costs more than the hash it overlaps.
const HASH_BESIDE_MIN: u64 = 4 << 20;

/// The queue of sealed objects between the pipeline and the links.
pub type Queue = mpsc::UnboundedSender<Sealed>;

/// The sending side of a node: its spool and the objects waiting for an inspection.
pub struct Sender {
    /// The node.
    pub node: Arc<Node>,
    /// The spool: every object from intake until its link is done with it.
    pub spool: Spool,
    /// Objects waiting for an inspection that could not run (antivirus down, I/O fault).
    waiting: Mutex<Vec<Spooled>>,
    /// Objects whose deferral is already audited (once per object, not per attempt), with
    /// when their wait began ([`crate::mono_ms`]).
    deferred: Mutex<HashMap<ObjectId, u64>>,
    /// Objects that changed after they were taken: inspected again once left alone. With
    /// the status-change time last seen of their content and since when it has stood
    /// ([`crate::mono_ms`]), once looked at.
    changed: Mutex<HashMap<ObjectId, Option<(i128, u64)>>>,
    /// What holds sealed objects before their link: the approval desk
    /// (`sender::approval`), set once at start by [`Sender::set_hold`].
    hold: std::sync::OnceLock<Arc<dyn Hold>>,
    /// Objects of an earlier run still being recovered (judged again, sealed again); until
    /// it is 0 the approval desk serves no request (a valid approval would find its object
    /// not back on the desk yet).
    recovering: std::sync::atomic::AtomicUsize,
    /// Message batches on their way: the links report when they are done with an object,
    /// the message batchers read how many of their channel's are still going.
    pub in_flight: crate::sender::flow::InFlight,
    /// Message batches this node's batchers wrote, each from messages checked under the
    /// policy kept here, with the hash of the bytes written: the pipeline accepts such a
    /// batch without checking each message again while that policy is still in force and
    /// the content is still those bytes (see [`Sender::prechecked`]).
    prechecked: Mutex<HashMap<ObjectId, Prechecked>>,
}

/// A batch written by a message batcher: its channel, the policy its messages were checked
/// under, and the hash (SHA-256, or SM3 under `gm`) of the bytes written.
type Prechecked = (String, Arc<Policy>, [u8; 32]);

/// Most batches noted as checked at once (see [`Sender::note_prechecked`]).
pub const PRECHECKED_MAX: usize = 4096;

/// Holds a sealed object before its link (the approval desk of a channel with
/// `[approval]`): the pipeline hands it every sealed object, and one recovered at start.
pub trait Hold: Send + Sync {
    /// `Ok(Some)`: the object goes on now (perhaps with a rebuilt frame); `Ok(None)`: it
    /// waits, and the holder queues it when it may go (or quarantines it).
    ///
    /// # Errors
    /// A fault: the object stays in the spool.
    fn hold(&self, sender: &Sender, sealed: Sealed) -> Result<Option<Sealed>, Fault>;

    /// At start, after the spool's recovery: the objects still in the spool.
    fn recovered(&self, spooled: &std::collections::HashSet<ObjectId>);
}

impl Sender {
    /// Opens the spool under the node's state directory.
    ///
    /// # Errors
    /// The spool directory cannot be made or read.
    pub fn open(node: Arc<Node>) -> Result<Sender, NodeError> {
        let dir = node.cfg.node.state_dir.clone();
        let spool = Spool::open(&dir).map_err(|error| NodeError::Dir { path: dir, error })?;
        Ok(Sender {
            node,
            spool,
            waiting: Mutex::default(),
            deferred: Mutex::default(),
            changed: Mutex::default(),
            hold: std::sync::OnceLock::new(),
            recovering: std::sync::atomic::AtomicUsize::new(usize::MAX),
            in_flight: crate::sender::flow::InFlight::default(),
            prechecked: Mutex::default(),
        })
    }

    /// Sets what holds sealed objects before their link (once, before [`Sender::recover`]);
    /// `false` when one is set already.
    pub fn set_hold(&self, hold: Arc<dyn Hold>) -> bool {
        self.hold.set(hold).is_ok()
    }

    /// Hands a sealed object to the holder. Without one (never in a running node), an
    /// object on a channel with `[approval]` stays in the spool: it never leaves unapproved.
    ///
    /// # Errors
    /// The holder's fault: the object stays in the spool.
    pub fn hold(&self, sealed: Sealed) -> Result<Option<Sealed>, Fault> {
        match self.hold.get() {
            Some(h) => h.hold(self, sealed),
            None if self
                .node
                .policies
                .get(&sealed.manifest().channel)
                .approval
                .is_some() =>
            {
                tracing::error!(object = %sealed.manifest().object_id, "no approval desk runs; the object stays in the spool");
                Ok(None)
            }
            None => Ok(Some(sealed)),
        }
    }

    /// Queues what an earlier run left in the spool: each object is sealed again, or its
    /// stored manifest is reloaded. Runs on blocking threads.
    ///
    /// # Errors
    /// The spool cannot be read.
    pub fn recover(self: &Arc<Self>, queue: &Queue) -> Result<(), NodeError> {
        let keys = self.node.keys.data();
        let recovered = self
            .spool
            .recover(keys.as_deref())
            .map_err(|error| NodeError::Dir {
                path: self.node.cfg.node.state_dir.clone(),
                error,
            })?;
        // the holder forgets what is no longer in the spool
        if let Some(h) = self.hold.get() {
            h.recovered(&recovered.iter().map(|r| r.spooled.id).collect());
        }
        // staged files no entry claims (an earlier run cut short): back to their outboxes,
        // messages channels' too (`file_sending` has every channel with an outbox)
        for c in self.node.cfg.file_sending() {
            if let Err(e) = self.spool.sweep_staging(&c.outbox) {
                tracing::warn!(channel = %c.name, error = %e, "cannot sweep the outbox's staging folder; tried again at the next start");
            }
        }
        self.recovering
            .store(recovered.len(), std::sync::atomic::Ordering::SeqCst);
        for r in recovered {
            let sender = self.clone();
            let tx = queue.clone();
            tokio::task::spawn_blocking(move || {
                let sealed = match r.manifest {
                    Some(frame) => {
                        let reloaded =
                            seal::reload(r.spooled.clone(), frame, &sender.node.keys.own_key())
                                .and_then(|s| {
                                    // stored without fsync on a quic channel with no approval:
                                    // durable now where the channel has since come to need it
                                    if sender.manifest_durable(&s.manifest().channel) {
                                        sender.spool.sync_manifest(s.spooled())?;
                                    }
                                    Ok(s)
                                });
                        match reloaded {
                            // a channel with [approval]: judged again by the rule in force;
                            // a holder's fault leaves it waiting, tried again (the desk keeps
                            // its own and never faults here)
                            Ok(s) => {
                                let held = sender.hold(s);
                                if let Err(e) = &held {
                                    sender.wait_after_fault(r.spooled.clone(), e);
                                }
                                held
                            }
                            Err(e) => {
                                tracing::warn!(object = %r.spooled.id, error = %e, "stored manifest unusable; sealing again");
                                sender.pipeline(r.spooled)
                            }
                        }
                    }
                    None => sender.pipeline(r.spooled),
                };
                forward(sealed, &tx);
                sender
                    .recovering
                    .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        Ok(())
    }

    /// Whether what an earlier run left in the spool is recovered: [`Sender::recover`] ran
    /// and every object it found is judged again (back on the approval desk, queued,
    /// refused or waiting for the antivirus).
    pub fn recovered(&self) -> bool {
        self.recovering.load(std::sync::atomic::Ordering::SeqCst) == 0
    }

    /// Inspects and seals a spooled object (blocking). `Ok(None)`: it was refused, it
    /// waits for the antivirus, or it waits for its approvals ([`Sender::hold`]).
    ///
    /// # Errors
    /// A fault (I/O, a full disk, audit): the object stays in the spool and waits with
    /// the others, tried again every few seconds (never left until the next start).
    pub fn pipeline(&self, spooled: Spooled) -> Result<Option<Sealed>, Fault> {
        self.pipeline_taken(spooled, None)
    }

    /// [`Sender::pipeline`] of an object just taken, with the manifest's hashes its take
    /// took as it sealed its copy (`hashed`): the seal uses them, unhashed again, while the
    /// entry's content is the very sealing at rest they were taken of; else (and when the
    /// object is tried again) the content is hashed here.
    ///
    /// # Errors
    /// As [`Sender::pipeline`].
    pub(crate) fn pipeline_taken(
        &self,
        spooled: Spooled,
        hashed: Option<TakenHashes>,
    ) -> Result<Option<Sealed>, Fault> {
        let again = spooled.clone();
        let done = self
            .pipeline_once(spooled, hashed)
            .and_then(|sealed| match sealed {
                Some(sealed) => self.hold(sealed),
                None => Ok(None),
            });
        if let Err(e) = &done {
            self.wait_after_fault(again, e);
        }
        done
    }

    /// After a fault: the object waits and is tried again, while its spool entry exists
    /// (a refusal that failed half-way may have moved it already) and its channel is
    /// still configured.
    fn wait_after_fault(&self, spooled: Spooled, fault: &Fault) {
        if matches!(fault, Fault::UnknownChannel { .. }) || !spooled.content().exists() {
            return;
        }
        tracing::debug!(object = %spooled.id, error = %fault, "the object waits and is tried again");
        self.wait(spooled);
    }

    /// One pass of [`Sender::pipeline`] (`taken`: see [`Sender::pipeline_taken`]).
    fn pipeline_once(
        &self,
        spooled: Spooled,
        taken: Option<TakenHashes>,
    ) -> Result<Option<Sealed>, Fault> {
        let node = &self.node;
        let Some(channel) = node.cfg.channel(&spooled.channel).cloned() else {
            return Err(Fault::UnknownChannel {
                object: spooled.id,
                channel: spooled.channel,
            });
        };
        let policy = node.policies.get(&channel.name);
        // the content as taken: the bytes inspected and sealed must be these
        let content = crate::fsx::open_nofollow(&spooled.content())?;
        let before = Fingerprint::of(&content)?;
        if !self.left_alone(&spooled, &before) {
            self.wait(spooled);
            return Ok(None);
        }
        // a batch this node's batcher wrote under the policy in force: the hash it wrote,
        // compared below with the one sealed
        let precheck = self.take_prechecked(&spooled, &policy);
        let keys = node.keys.data();
        let context = spool::context(&spooled);
        let sealing = match (spool::is_sealed(&spooled)?, keys.as_deref()) {
            (false, _) => None,
            (true, Some(keys)) => Some(Sealing {
                keys,
                context: &context,
            }),
            (true, None) => return Err(spool::no_data_key().into()),
        };
        // the manifest's hashes are taken on another core while the content engine reads
        // the same content (a large object only: a thread costs more than a small hash)
        let suite = node.keys.signing().suite();
        // or they were taken with the copy, of this very sealing at rest
        let taken = taken
            .filter(|_| precheck.is_none())
            .and_then(|h| taken_usable(&content, keys.as_deref(), &context, suite, h));
        let (outcome, hashed) = std::thread::scope(|scope| {
            let hashing = (precheck.is_none() && taken.is_none() && before.size >= HASH_BESIDE_MIN)
                .then(|| {
                    let (s, keys) = (&spooled, keys.as_deref());
                    scope.spawn(move || seal::hash(s, keys, suite))
                });
            let outcome = match precheck {
                Some(_) => Ok(Ok(inspect::accepted_batch(spooled.clone()))),
                None => inspect::inspect(
                    &policy,
                    spooled.clone(),
                    sealing.as_ref(),
                    node.cfg.node.suite,
                ),
            };
            // a failed hash is taken again by the seal, which then says why
            let hashed = match taken {
                Some(h) => Some(h),
                None => hashing.and_then(|h| h.join().ok()).and_then(Result::ok),
            };
            (outcome, hashed)
        });
        let checked = match outcome {
            Ok(Ok(c)) => c,
            Ok(Err((spooled, refusal))) => {
                // a file refused as it was being written (cut, corrupt) is taken again
                if Fingerprint::of(&content)? != before {
                    self.retake_or_log(spooled, "changed while it was inspected");
                    return Ok(None);
                }
                self.refuse(&channel, &spooled, &refusal)?;
                return Ok(None);
            }
            Err(InspectError::Io(e)) if at_rest::is_tampered(&e) => {
                self.refuse_tampered(&channel, &spooled, &e)?;
                return Ok(None);
            }
            Err(InspectError::Io(e)) => {
                crate::ops::repeat::error_repeated!("sender.inspect", &format!("{} {}: {e}", channel.name, spooled.name);
                    channel = %channel.name, name = %spooled.name, error = %e, "inspection failed; the object waits and is tried again");
                self.wait(spooled);
                return Ok(None);
            }
            Err(InspectError::Scan(e)) => {
                self.defer(&channel, &policy, spooled, &e.to_string())?;
                return Ok(None);
            }
        };
        if Fingerprint::of(&content)? != before {
            self.retake_or_log(checked.spooled().clone(), "changed while it was inspected");
            return Ok(None);
        }
        // a batch's messages refused while others pass: each quarantined on its own,
        // durably, before the copy that leaves them out takes the content's place (a crash
        // in between takes the batch again and quarantines them again, as one entry each)
        for r in checked.refused() {
            node.message_refused(
                &channel.name,
                r.id,
                r.body.as_bytes(),
                &r.refusal,
                Side::Sender,
            )?;
        }
        let masked = checked.masked().is_some();
        if let Some(m) = checked.masked() {
            let s = checked.spooled();
            let original = match &hashed {
                Some(h) if h.suite == node.cfg.node.suite => h.digest,
                _ => hash_spooled(s, keys.as_deref(), node.cfg.node.suite)?.1,
            };
            node.masked(subject(s), original, m)?;
        }
        let inspected = checked.commit()?;
        let content_type = inspected.content_type().to_string();
        let spooled = inspected.spooled().clone();
        // what was hashed beside the inspection is what crosses, unless a masked copy
        // replaced it
        let sealed = match seal::seal_hashed(
            inspected,
            &node.keys.signing(),
            &node.cfg.node.name,
            keys.as_deref(),
            hashed.filter(|_| !masked),
        ) {
            Ok(sealed) => sealed,
            Err(seal::SealError::Io(e)) if at_rest::is_tampered(&e) => {
                self.refuse_tampered(&channel, &spooled, &e)?;
                return Ok(None);
            }
            Err(seal::SealError::Io(e)) => return Err(Fault::Io(e)),
            Err(other) => return Err(Fault::Io(std::io::Error::other(other))),
        };
        // the check at seal: what was hashed is what was inspected (a masked copy is this
        // node's own file, written from the bytes inspected)
        if !masked && Fingerprint::of(&content)? != before {
            self.retake_or_log(sealed.spooled().clone(), "changed before it was sealed");
            return Ok(None);
        }
        // a batch accepted unchecked: what was sealed must be the bytes the batcher wrote
        // from checked messages; else it is taken again and checked in full
        if precheck.is_some_and(|written| written != sealed.manifest().digest) {
            self.retake_or_log(sealed.spooled().clone(), "not the batch that was written");
            return Ok(None);
        }
        if let Ok(mut c) = self.changed.lock() {
            c.remove(&sealed.spooled().id);
        }
        let s = sealed.spooled();
        let mut e = Entry::object(&s.channel, s.id, &s.name);
        e.detail = Some(format!("{content_type} (policy {})", policy.version));
        node.audit.append(Event::Accepted, e)?;
        self.spool.store_manifest(
            sealed.spooled(),
            sealed.frame(),
            self.manifest_durable(&channel.name),
        )?;
        let m = sealed.manifest();
        let mut e = Entry::object(&m.channel, m.object_id, &m.name);
        e.size = Some(m.size);
        e.digest = Some(m.digest);
        node.audit.append(Event::Sealed, e)?;
        Ok(Some(sealed))
    }

    /// Whether `channel`'s manifests are stored durably ([`Spool::store_manifest`]): where a
    /// restart could not simply seal the object again, an object the approval desk may
    /// hold (its approvals sign the manifest's body) or one on the diode (its first-pass
    /// mark must never outlive the manifest it was sent under); and a channel no longer
    /// configured.
    pub(crate) fn manifest_durable(&self, channel: &str) -> bool {
        self.node.policies.get(channel).approval.is_some()
            || self
                .node
                .cfg
                .channel(channel)
                .is_none_or(|c| c.link != LinkKind::Quic)
    }

    /// Notes that the batch object `id` of `channel` was written by a message batcher as
    /// the bytes whose hash (the node's suite's) is `sha256`, from messages each checked by
    /// `inspect::message::check_message` under `policy`. Notes whose policy is no longer
    /// in force are dropped meanwhile, and all of them past [`PRECHECKED_MAX`] (a batch
    /// without its note is checked in full: nothing but time is lost).
    pub fn note_prechecked(
        &self,
        id: ObjectId,
        channel: &str,
        policy: Arc<Policy>,
        sha256: [u8; 32],
    ) {
        let mut notes = self.prechecked.lock().unwrap_or_else(|e| e.into_inner());
        notes.retain(|_, (c, p, _)| Arc::ptr_eq(p, &self.node.policies.get(c)));
        if notes.len() >= PRECHECKED_MAX {
            notes.clear();
        }
        notes.insert(id, (channel.to_string(), policy, sha256));
    }

    /// The SHA-256 noted for `spooled` by [`Sender::note_prechecked`] when its policy is
    /// still `policy` (the same loaded policy: a reload that changed it checks again).
    /// The note is removed: an object tried again after a fault, or one recovered after a
    /// restart, is checked in full.
    fn take_prechecked(&self, spooled: &Spooled, policy: &Arc<Policy>) -> Option<[u8; 32]> {
        let noted = self
            .prechecked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&spooled.id);
        match noted {
            Some((_, checked_under, sha256)) if Arc::ptr_eq(&checked_under, policy) => Some(sha256),
            _ => None,
        }
    }

    /// Moves an entry of `channel`'s outbox (`path`, shown as `name`) into quarantine as it
    /// is, with its reason (audited `refused` under a fresh object id), then syncs the
    /// outbox: a file the intake cannot take (not a plain file, a messages file refused).
    ///
    /// # Errors
    /// A fault: it could not be moved or audited.
    pub fn refuse_outbox_entry(
        &self,
        channel: &Channel,
        path: &std::path::Path,
        name: &str,
        refusal: &Refusal,
    ) -> Result<(), Fault> {
        self.refuse_outbox_read(channel, path, name, refusal, None)
    }

    /// [`Sender::refuse_outbox_entry`] of an entry whose bytes were read (`read`): the
    /// `refused` record gives their size and hash (the node's suite), so that
    /// `audit query --sha256` finds it.
    ///
    /// # Errors
    /// As [`Sender::refuse_outbox_entry`].
    pub fn refuse_outbox_read(
        &self,
        channel: &Channel,
        path: &std::path::Path,
        name: &str,
        refusal: &Refusal,
        read: Option<&[u8]>,
    ) -> Result<(), Fault> {
        let refused = Refused {
            subject: Subject {
                channel: &channel.name,
                id: crate::node::fresh_id()?,
                name,
                size: read.map(|b| b.len() as u64),
                digest: read.map(|b| crate::keys::suite::digest(self.node.cfg.node.suite, b)),
            },
            quarantine: &channel.quarantine,
            content: Some(Held::Entry(path)),
            side: Side::Sender,
        };
        self.node.refuse(&refused, refusal)?;
        crate::fsx::sync_dir(&channel.outbox)?;
        Ok(())
    }

    /// Refuses a spooled object whose sealed copy does not open (changed or cut on disk
    /// after it was taken): `content_hash`, the copy quarantined as it is.
    ///
    /// # Errors
    /// As [`Sender::refuse`].
    fn refuse_tampered(
        &self,
        channel: &Channel,
        spooled: &Spooled,
        e: &std::io::Error,
    ) -> Result<(), Fault> {
        let refusal = Refusal::new(
            Reason::ContentHash,
            format!("the spool's sealed copy was changed on disk: {e}"),
        );
        self.refuse(channel, spooled, &refusal)
    }

    /// Refuses a spooled object: quarantine, audit, metric, log (one chain, in
    /// [`Node::refuse`]), then drops it from the spool. The `refused` record carries the
    /// size and hash (SHA-256, or SM3 under `gm`) of the whole spooled file (what goes to quarantine), whatever the
    /// reason, so that an attempted leak can be traced by hash on both nodes.
    ///
    /// # Errors
    /// A fault (the spooled file cannot be read): the object stays in the spool.
    pub fn refuse(
        &self,
        channel: &Channel,
        spooled: &Spooled,
        refusal: &Refusal,
    ) -> Result<(), Fault> {
        if let Ok(mut c) = self.changed.lock() {
            c.remove(&spooled.id);
        }
        let content = spooled.content();
        let keys = self.node.keys.data();
        let (size, digest) = match hash_spooled(spooled, keys.as_deref(), self.node.cfg.node.suite)
        {
            Ok((size, digest)) => (Some(size), Some(digest)),
            // a sealed copy changed on disk has no content to hash: it goes as it is
            Err(e) if at_rest::is_tampered(&e) => (None, None),
            Err(e) => return Err(e.into()),
        };
        let context = spool::context(spooled);
        let held = match spool::is_sealed(spooled)? {
            true => Held::Stored {
                path: &content,
                context: &context,
            },
            false => Held::Entry(&content),
        };
        self.node.refuse(
            &Refused {
                subject: Subject {
                    size,
                    digest,
                    ..subject(spooled)
                },
                quarantine: &channel.quarantine,
                content: Some(held),
                side: Side::Sender,
            },
            refusal,
        )?;
        Ok(self.spool.remove(spooled)?)
    }

    /// The QUIC link is done with an object (the peer's final receipt): audited durably
    /// as `confirmed`, then the spool entry goes. A receipt that says the
    /// peer refused it unread moves it to this node's quarantine instead.
    ///
    /// # Errors
    /// A fault: the object stays in the spool and is sent again at the next start.
    pub fn confirm(&self, sealed: &Sealed, detail: &str, peer_refused: bool) -> Result<(), Fault> {
        let node = &self.node;
        let m = sealed.manifest();
        if peer_refused {
            let Some(channel) = node.cfg.channel(&m.channel) else {
                return Ok(());
            };
            let refusal = Refusal::new(
                Reason::PeerRefused,
                format!(
                    "{} refused it before reading the content; see its audit log",
                    node.cfg.peer.name
                ),
            );
            return self.refuse(channel, sealed.spooled(), &refusal);
        }
        let mut e = Entry::object(&m.channel, m.object_id, &m.name);
        e.size = Some(m.size);
        e.digest = Some(m.digest);
        e.detail = Some(detail.to_string());
        e.peer = Some(node.cfg.peer.name.clone());
        node.audit.durable(Event::Confirmed, e)?;
        tracing::debug!(channel = %m.channel, name = %m.name, object = %m.object_id, detail, "confirmed");
        Ok(self.spool.remove(sealed.spooled())?)
    }

    /// An object the antivirus could not scan waits in the spool and is tried again, until
    /// the channel's waiting time is over: then it goes to quarantine. It never crosses
    /// unscanned.
    fn defer(
        &self,
        channel: &Channel,
        policy: &crate::policy::Policy,
        spooled: Spooled,
        why: &str,
    ) -> Result<(), Fault> {
        let max_wait = policy.antivirus.as_ref().map_or(0, |a| a.max_wait_ms);
        // the wait began when it was taken (wall time, kept in the spool; never counted as
        // more than the whole wait, nor less than nothing) and goes on by the monotonic
        // clock: a step of the wall clock neither ends it early nor stretches it
        let mono = crate::mono_ms();
        let (began, first) = match self.deferred.lock() {
            Ok(mut d) => {
                let fresh = !d.contains_key(&spooled.id);
                let since_taken = crate::now_ms()
                    .saturating_sub(spooled.taken_ms)
                    .min(max_wait);
                (
                    *d.entry(spooled.id)
                        .or_insert(mono.saturating_sub(since_taken)),
                    fresh,
                )
            }
            Err(_) => (mono.saturating_sub(max_wait), true),
        };
        let waited = mono.saturating_sub(began);
        if waited >= max_wait {
            let refusal = Refusal::new(
                Reason::ScanFailed,
                format!("no antivirus verdict after {} s: {why}", waited / 1000),
            );
            return self.refuse(channel, &spooled, &refusal);
        }
        if first {
            events::ScanDeferred {
                subject: subject(&spooled),
                why,
            }
            .emit(self.node.sink())?;
        }
        self.wait(spooled);
        Ok(())
    }

    /// Takes an object again whose spool copy changed after it was taken (`why`: when the
    /// change was seen): its stored manifest goes, `taken` is audited again with the
    /// reason, and it waits until left alone for `idle_ms`, then is inspected from the
    /// start. Never sent as it was.
    ///
    /// # Errors
    /// The stored manifest cannot be removed, or the audit record cannot be written: the
    /// object waits all the same (it is inspected and sealed again from the start, so its
    /// old manifest is never used).
    pub fn retake(&self, spooled: Spooled, why: &str) -> Result<(), Fault> {
        if let Ok(mut c) = self.changed.lock() {
            c.insert(spooled.id, None);
        }
        let recorded = self.spool.forget_manifest(&spooled).map_err(Fault::from);
        let recorded = recorded.and_then(|()| {
            let mut e = Entry::object(&spooled.channel, spooled.id, &spooled.name);
            e.detail = Some(format!("taken again: {why}"));
            self.node.audit.append(Event::Taken, e)?;
            Ok(())
        });
        tracing::warn!(channel = %spooled.channel, name = %spooled.name, object = %spooled.id, why, "the spool copy changed after it was taken; it is inspected again once left alone");
        self.wait(spooled);
        recorded
    }

    /// [`Sender::retake`] inside the pipeline: the object waits either way; a record that
    /// could not be written is logged.
    fn retake_or_log(&self, spooled: Spooled, why: &str) {
        let id = spooled.id;
        if let Err(e) = self.retake(spooled, why) {
            tracing::error!(object = %id, error = %e, "cannot record that the object is taken again; it waits all the same");
        }
    }

    /// Whether an object may be inspected now: always, unless it changed after it was
    /// taken; then once its content was left alone (status-change time) for `idle_ms`.
    /// The status-change time is the wall clock's: how long it has stood is counted from
    /// it when first seen (never as more than `idle_ms`, nor less than nothing), then on
    /// the monotonic clock, so a clock stepped back makes nothing wait for the step.
    fn left_alone(&self, spooled: &Spooled, now: &Fingerprint) -> bool {
        let mut changed = self.changed.lock().unwrap_or_else(|p| p.into_inner());
        let Some(seen) = changed.get_mut(&spooled.id) else {
            return true;
        };
        let idle_ms = self.node.cfg.intake.idle_ms;
        let mono = crate::mono_ms();
        let since = match *seen {
            Some((ctime_ns, since)) if ctime_ns == now.ctime_ns => since,
            _ => {
                let wall_ns = i128::from(crate::now_ms()) * 1_000_000;
                let stood_ms = u64::try_from((wall_ns - now.ctime_ns) / 1_000_000)
                    .unwrap_or(0)
                    .min(idle_ms);
                let since = mono.saturating_sub(stood_ms);
                *seen = Some((now.ctime_ns, since));
                since
            }
        };
        mono.saturating_sub(since) >= idle_ms
    }

    /// Puts an object on the list tried again every few seconds.
    fn wait(&self, spooled: Spooled) {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(spooled);
    }

    /// Tries again, every few seconds, the objects waiting for the antivirus; runs until
    /// aborted.
    pub async fn retry_waiting(self: Arc<Self>, queue: Queue) {
        let mut tick = tokio::time::interval(RETRY_SCAN);
        loop {
            tick.tick().await;
            let waiting = self
                .waiting
                .lock()
                .map(|mut w| std::mem::take(&mut *w))
                .unwrap_or_default();
            for spooled in waiting {
                let s = self.clone();
                let tx = queue.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    let sealed = s.pipeline(spooled);
                    forward(sealed, &tx);
                })
                .await;
            }
        }
    }

    /// Measures the spool's gauges: objects and the age of the oldest, by channel.
    pub fn refresh_gauges(&self) {
        let m = &self.node.metrics;
        let now = crate::now_ms();
        for (channel, depth, oldest) in self.spool.census() {
            m.spool_objects
                .with_label_values(&[channel.as_str()])
                .set(i64::try_from(depth).unwrap_or(i64::MAX));
            let age = oldest.map_or(0, |t| now.saturating_sub(t) / 1000);
            m.spool_oldest_age_seconds
                .with_label_values(&[channel.as_str()])
                .set(i64::try_from(age).unwrap_or(i64::MAX));
        }
    }
}

/// The hashes a take took of a spool entry (see [`spool::TakenHashes`]) as the seal takes
/// them: only in the signing key's `suite`, and only while the entry's `content` (the
/// descriptor the pipeline checks unchanged, sealed for `context` with `keys`) is the very
/// sealing at rest they were taken of, at their size. `None` otherwise: the pipeline hashes
/// the content.
fn taken_usable(
    content: &std::fs::File,
    keys: Option<&at_rest::DataKeys>,
    context: &[u8],
    suite: crate::keys::suite::Suite,
    h: TakenHashes,
) -> Option<seal::Hashed> {
    let sealed = at_rest::SealedFile::open(keys?, content.try_clone().ok()?, context).ok()?;
    (h.suite == suite && sealed.seal_id() == h.sealed_as && sealed.len() == h.size).then_some(
        seal::Hashed {
            size: h.size,
            digest: h.digest,
            chunks: h.chunks,
            suite: h.suite,
            sealed_as: Some(h.sealed_as),
        },
    )
}

/// What the telemetry says of a spooled object.
fn subject(s: &Spooled) -> Subject<'_> {
    Subject {
        channel: &s.channel,
        id: s.id,
        name: &s.name,
        size: None,
        digest: None,
    }
}

/// Queues a sealed object, or logs why there is none.
pub fn forward(sealed: Result<Option<Sealed>, Fault>, queue: &Queue) {
    match sealed {
        Ok(Some(s)) => {
            let _ = queue.send(s);
        }
        Ok(None) => {}
        // a fault met again at every retry (every rescan, every 2 s) is said once, then counted
        Err(e) => {
            crate::ops::repeat::error_repeated!("sender.forward", &e.to_string();
                error = %e, "object stays in the spool and is tried again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::at_rest::DataKeys;
    use crate::keys::suite::Suite;
    use std::ffi::OsStr;

    #[test]
    fn hashes_taken_with_the_copy_stand_only_for_that_very_sealing_and_suite() {
        let t = tempfile::tempdir().unwrap();
        let key = t.path().join("data.key");
        DataKeys::add_key(&key, Suite::Default).unwrap();
        let keys = DataKeys::load(&key).unwrap();
        let spool = Spool::open(&t.path().join("state")).unwrap();
        let outbox = t.path().join("outbox");
        std::fs::create_dir_all(&outbox).unwrap();
        let body = vec![0x5au8; spool::HASH_AT_TAKE_FROM as usize + 10];
        let take = |name: &str| {
            std::fs::write(outbox.join(name), &body).unwrap();
            let taken = spool
                .take(
                    "c",
                    &outbox,
                    OsStr::new(name),
                    name,
                    Some(&keys),
                    Some(Suite::Default),
                )
                .unwrap()
                .unwrap();
            (taken.spooled, taken.hashed.unwrap())
        };
        let (a, ha) = take("a.pdf");
        let (_, hb) = take("b.pdf");
        let context = spool::context(&a);
        let usable = |h: TakenHashes, keys: Option<&DataKeys>, suite: Suite| {
            let content = std::fs::File::open(a.content()).unwrap();
            taken_usable(&content, keys, &context, suite, h)
        };
        let h = usable(ha.clone(), Some(&keys), Suite::Default).expect("its own sealing");
        assert_eq!(
            (h.size, h.digest, h.sealed_as),
            (ha.size, ha.digest, Some(ha.sealed_as))
        );
        // the same bytes sealed as another copy (another salt): hashed again
        assert!(usable(hb.clone(), Some(&keys), Suite::Default).is_none());
        // another suite than the signing key's, another size than the content's, no keys
        assert!(usable(ha.clone(), Some(&keys), Suite::Gm).is_none());
        let short = TakenHashes {
            size: ha.size - 1,
            ..ha.clone()
        };
        assert!(usable(short, Some(&keys), Suite::Default).is_none());
        assert!(usable(ha.clone(), None, Suite::Default).is_none());
        // a content sealed again since (the copy made anew): no longer that sealing
        std::fs::remove_file(a.content()).unwrap();
        let mut w = crate::keys::at_rest::SealWriter::new(
            &keys,
            std::fs::File::create(a.content()).unwrap(),
            &context,
        )
        .unwrap();
        std::io::Write::write_all(&mut w, &body).unwrap();
        w.finish().unwrap();
        assert!(usable(ha, Some(&keys), Suite::Default).is_none());
    }
}
