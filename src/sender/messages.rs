//! The sending node's message intake: messages from the HTTP API, from `.json` and
//! `.ndjson` files in a messages channel's outbox, and from a JetStream consumer, checked
//! one by one against the channel's policy, then group-committed into batch objects in
//! the spool: one fsync makes a whole batch durable, and only then is each message
//! answered (`202`, a JetStream ack, the outbox file removed).
//!
//! ```text
//!  post(channel, key, bodies) ─► check each (inspect::message) ─► refused: quarantine,
//!     message_refused, Err(Refused)          audit, metric; nothing of the request crosses
//!   ─► ids: derived from (channel, key#index) or random
//!   ─► the channel's open batch ◄── other requests (≤ batch_max, ≤ batch_max_bytes,
//!                                    ≤ linger_ms after its first message)
//!   ─► Spool::put (content = the batch form, durable) + message_accepted records (synced)
//!   ─► every waiting request answered ─► the pipeline (seal, route; each message is
//!      checked again only if the policy was reloaded meanwhile or the bytes changed)
//! ```
//!
//! One batcher thread per messages channel this node sends makes the batches, in order;
//! one pipeline thread per channel inspects and seals them, as the watch does for files.
//! A request's messages all go into one batch (all or nothing). An in-memory map of the
//! ids recently taken (at most [`RECENT_IDS`] per channel) answers a retry (same key, so
//! the same ids) with the ids already taken, without taking them twice; a retry that comes
//! while the first request waits for its batch waits for that same batch. After a restart
//! the map is empty: the receiving node's log drops the ids it already holds.

use crate::audit::{Entry, Event};
use crate::core::id::ObjectId;
use crate::core::message::{MessageId, encode_line};
use crate::core::reason::{Reason, Refusal, Side};
use crate::core::stage::Spooled;
use crate::inspect::message::CheckedMessage;
use crate::keys::suite::{Suite, digest};
use crate::node::config::{Channel, MessageChannel};
use crate::node::{Fault, NodeError};
use crate::policy::Policy;
use crate::sender::flow::MAX_IN_FLIGHT;
use crate::sender::pipeline::{Queue, Sender, forward};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most ids remembered per channel for retries (bounded memory; the oldest go first).
pub const RECENT_IDS: usize = 100_000;

/// How many failed batch numbers are remembered for the requests that wait on them.
const FAILED_KEPT: u64 = 4096;

/// How many times a request is tried again when a batch it counted on failed meanwhile.
const TRIES: usize = 3;

/// A message made durable in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// Its id (the same for a retry with the same key).
    pub id: MessageId,
    /// Whether personal data was masked in it.
    pub masked: bool,
}

/// Why a post was not taken.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// No messages channel of that name leaves this node (HTTP 404).
    #[error("no messages channel {0:?} sends from this node")]
    NoChannel(String),
    /// A message was refused by the policy (HTTP 400, 413 or 422 by reason): nothing of
    /// the request was taken. `index` is the message's place in the request, from 0.
    #[error("message {index}: {refusal}")]
    Refused {
        /// The refused message's index in the request.
        index: usize,
        /// Why.
        refusal: Refusal,
    },
    /// An `Idempotency-Key` that this node took a moment ago with another body (HTTP 422,
    /// as the IETF draft on the header asks). `index`: the first message of the request
    /// whose body differs. Nothing of the request was taken.
    #[error(
        "message {index}: the Idempotency-Key was used before with another body; use a new key for a new message"
    )]
    KeyReused {
        /// The message's index in the request.
        index: usize,
    },
    /// The node cannot make messages durable now (disk, spool, audit; HTTP 503).
    #[error("cannot take messages durably now: {0}")]
    Unavailable(String),
}

/// The check of one message: [`crate::inspect::message::check_message`] in the product.
/// It hashes with the suite given (the node's).
pub(crate) type Check =
    dyn Fn(&Policy, &str, Suite) -> Result<CheckedMessage, Refusal> + Send + Sync;

/// One accepted message waiting for its batch.
struct Item {
    id: MessageId,
    /// [`body_tag`] of the body as it was posted with a key (0 otherwise).
    tag: u64,
    checked: CheckedMessage,
    /// The policy it was checked under.
    policy: Arc<Policy>,
}

/// A batch being filled, or full and waiting for its commit.
struct Batch {
    /// Its number on the channel, from 1, in commit order.
    no: u64,
    items: Vec<Item>,
    /// Bytes of message bodies.
    bytes: u64,
    /// When its first message came ([`Instant`]).
    since: Instant,
}

/// What is known of a recently taken id.
#[derive(Debug, Clone, Copy)]
struct Known {
    /// The batch that holds it.
    batch: u64,
    masked: bool,
    /// [`body_tag`] of the body it was posted with under a key (0 otherwise).
    tag: u64,
}

/// A 64-bit hash of a posted body, as its bytes came: a retry under the same
/// `Idempotency-Key` with other bytes is told apart from a true retry (not a security
/// check: ids are derived from the key, and both bodies were checked by the policy).
fn body_tag(body: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    h.finish()
}

/// A channel's batches and the ids it took.
struct State {
    open: Option<Batch>,
    ready: VecDeque<Batch>,
    /// The number of the next batch opened.
    next_no: u64,
    /// Every batch up to this number is committed or failed.
    completed: u64,
    /// Batches that could not be made durable, and why.
    failed: BTreeMap<u64, String>,
    recent: HashMap<MessageId, Known>,
    order: VecDeque<MessageId>,
    stopping: bool,
}

impl State {
    fn remember(&mut self, id: MessageId, known: Known) {
        if self.recent.insert(id, known).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > RECENT_IDS {
            if let Some(old) = self.order.pop_front() {
                self.recent.remove(&old);
            }
        }
    }
}

/// One channel's batcher: its settings, its state, the thread that commits its batches.
struct Batcher {
    channel: String,
    settings: MessageChannel,
    /// Its messages are checked by the policy's own check (the pipeline need not check
    /// them again).
    policy_check: bool,
    state: Mutex<State>,
    /// Wakes the batcher thread (a message came, a batch is full, stop).
    wake: Condvar,
    /// Wakes the requests waiting for their batch.
    done: Condvar,
}

impl Batcher {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn full(&self, b: &Batch) -> bool {
        b.items.len() >= self.settings.batch_max || b.bytes >= self.settings.batch_max_bytes
    }
}

/// The message intake of a sending node (see the module's diagram).
pub struct Messages {
    sender: Arc<Sender>,
    check: Arc<Check>,
    batchers: HashMap<String, Arc<Batcher>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Messages {
    /// Starts one batcher and one pipeline thread per messages channel this node sends;
    /// the batches they make are inspected, sealed and put on `queue`.
    ///
    /// # Errors
    /// A thread cannot start ([`NodeError::Dir`] naming the channel's spool folder).
    pub fn start(sender: Arc<Sender>, queue: Queue) -> Result<Arc<Messages>, NodeError> {
        Messages::launch(
            sender,
            queue,
            Arc::new(crate::inspect::message::check_message),
            true,
        )
    }

    /// [`Messages::start`] with the check of one message given (the pipeline then checks
    /// every batch again: only the policy's own check lets it skip that).
    #[cfg(test)]
    pub(crate) fn start_with(
        sender: Arc<Sender>,
        queue: Queue,
        check: Arc<Check>,
    ) -> Result<Arc<Messages>, NodeError> {
        Messages::launch(sender, queue, check, false)
    }

    /// [`Messages::start`]; `policy_check`: `check` is the policy's own check, so the
    /// batches are noted as checked for the pipeline ([`Sender::note_prechecked`]).
    fn launch(
        sender: Arc<Sender>,
        queue: Queue,
        check: Arc<Check>,
        policy_check: bool,
    ) -> Result<Arc<Messages>, NodeError> {
        let node = sender.node.clone();
        let mut batchers = HashMap::new();
        let mut threads = Vec::new();
        for c in node.cfg.sending() {
            let Some(settings) = c.messages.clone() else {
                continue;
            };
            let b = Arc::new(Batcher {
                channel: c.name.clone(),
                settings,
                policy_check,
                state: Mutex::new(State {
                    open: None,
                    ready: VecDeque::new(),
                    next_no: 1,
                    completed: 0,
                    failed: BTreeMap::new(),
                    recent: HashMap::new(),
                    order: VecDeque::new(),
                    stopping: false,
                }),
                wake: Condvar::new(),
                done: Condvar::new(),
            });
            let thread_error = |error| NodeError::Dir {
                path: node.cfg.node.state_dir.join("spool").join(&c.name),
                error,
            };
            let (tx, rx) = std::sync::mpsc::channel::<Spooled>();
            let (s, q) = (sender.clone(), queue.clone());
            std::thread::Builder::new()
                .name(format!("isogate-msg-pipe-{}", c.name))
                .spawn(move || {
                    for spooled in rx {
                        forward(s.pipeline(spooled), &q);
                    }
                })
                .map_err(thread_error)?;
            let woken = b.clone();
            sender.in_flight.on_done(&c.name, move || {
                // under the state's lock: the batcher is either before its check or
                // waiting, never in between
                let _st = woken.lock();
                woken.wake.notify_all();
            });
            let (s, bb) = (sender.clone(), b.clone());
            let t = std::thread::Builder::new()
                .name(format!("isogate-msg-batch-{}", c.name))
                .spawn(move || run_batcher(&s, &bb, &tx))
                .map_err(thread_error)?;
            threads.push(t);
            batchers.insert(c.name.clone(), b);
        }
        Ok(Arc::new(Messages {
            sender,
            check,
            batchers,
            threads: Mutex::new(threads),
        }))
    }

    /// Takes the messages of one request (`bodies`: JSON texts, as
    /// [`crate::core::message::parse_posted`] returns them) on `channel`, all or nothing:
    /// each is checked against the channel's policy; message `i` gets the id
    /// `MessageId::derive(channel, "{key}#{i}")`, or a random one without a key. Blocks
    /// until the batch holding them is durable (group commit). A retry with the same key
    /// answers the same ids and takes nothing twice.
    ///
    /// # Errors
    /// [`PostError::NoChannel`]; [`PostError::Refused`] (the refused message is in
    /// quarantine, audited `message_refused`, counted; nothing of the request is taken);
    /// [`PostError::Unavailable`] when the disk is below its floor, the node stops, or the
    /// spool or the audit log cannot be written.
    pub fn post(
        &self,
        channel: &str,
        key: Option<&str>,
        bodies: Vec<String>,
    ) -> Result<Vec<Posted>, PostError> {
        self.post_with(channel, key, bodies)
    }

    /// Takes messages each checked alone (JetStream): `items` are (key, body), message
    /// `i` gets the id `MessageId::derive(channel, key)`. A refused message is quarantined,
    /// audited and counted, and answered `Err(refusal)` in its place; the accepted ones are
    /// durable when this returns.
    ///
    /// # Errors
    /// [`PostError::NoChannel`]; [`PostError::Unavailable`] (nothing was taken, no refusal
    /// is sure to be recorded: the caller tries them all again).
    pub fn post_each(
        &self,
        channel: &str,
        items: Vec<(String, String)>,
    ) -> Result<Vec<Result<Posted, Refusal>>, PostError> {
        self.post_each_with(channel, items)
    }

    /// Stops taking messages: the open batches are made durable, every waiting request is
    /// answered, the batcher threads end. Posts after this are [`PostError::Unavailable`].
    pub fn stop(&self) {
        for b in self.batchers.values() {
            b.lock().stopping = true;
            b.wake.notify_all();
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }

    /// The messages channels this node sends, by name.
    pub fn channels(&self) -> impl Iterator<Item = &str> {
        self.batchers.keys().map(String::as_str)
    }

    fn batcher(&self, channel: &str) -> Result<&Arc<Batcher>, PostError> {
        self.batchers
            .get(channel)
            .ok_or_else(|| PostError::NoChannel(channel.to_string()))
    }

    /// [`Messages::post`], its check being `self.check`.
    fn post_with(
        &self,
        channel: &str,
        key: Option<&str>,
        bodies: Vec<String>,
    ) -> Result<Vec<Posted>, PostError> {
        let check = &*self.check;
        let b = self.batcher(channel)?;
        if bodies.is_empty() {
            return Err(PostError::Refused {
                index: 0,
                refusal: Refusal::new(Reason::MessageMalformed, "no message"),
            });
        }
        if bodies.len() > b.settings.batch_max {
            return Err(PostError::Refused {
                index: b.settings.batch_max,
                refusal: Refusal::new(
                    Reason::SizeLimit,
                    format!(
                        "{} messages in one request; the channel's batch_max is {}",
                        bodies.len(),
                        b.settings.batch_max
                    ),
                ),
            });
        }
        let ids: Vec<MessageId> = match key {
            Some(k) => (0..bodies.len())
                .map(|i| MessageId::derive(channel, &format!("{k}#{i}")))
                .collect(),
            None => (0..bodies.len())
                .map(|_| MessageId::random())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| PostError::Unavailable(e.to_string()))?,
        };
        let policy = self.sender.node.policies.get(channel);
        // only a keyed post can come again with the same ids: only its bodies are hashed
        let tags: Vec<u64> = match key {
            Some(_) => bodies.iter().map(|b| body_tag(b)).collect(),
            None => vec![0; bodies.len()],
        };
        for _ in 0..TRIES {
            let known: Vec<bool> = {
                let st = b.lock();
                let mut known = Vec::with_capacity(ids.len());
                for (index, (id, tag)) in ids.iter().zip(&tags).enumerate() {
                    let was = st.recent.get(id);
                    if key.is_some() && was.is_some_and(|k| k.tag != *tag) {
                        return Err(PostError::KeyReused { index });
                    }
                    known.push(was.is_some());
                }
                known
            };
            let mut group = Vec::new();
            for (i, body) in bodies.iter().enumerate() {
                if known.get(i).copied().unwrap_or(false) {
                    continue;
                }
                match check(&policy, body, self.sender.node.cfg.node.suite) {
                    Ok(checked) => group.push(Item {
                        id: ids[i],
                        tag: tags[i],
                        checked,
                        policy: policy.clone(),
                    }),
                    Err(refusal) => {
                        self.refuse(channel, Some(ids[i]), body.as_bytes(), &refusal)?;
                        return Err(PostError::Refused { index: i, refusal });
                    }
                }
            }
            if !group.is_empty() {
                self.disk_ok()?;
            }
            match self.enqueue(b, &ids, vec![group])? {
                Some(posted) => return Ok(posted),
                None => continue,
            }
        }
        Err(PostError::Unavailable(
            "the batches of this request kept failing".into(),
        ))
    }

    /// [`Messages::post_each`], its check being `self.check`.
    fn post_each_with(
        &self,
        channel: &str,
        items: Vec<(String, String)>,
    ) -> Result<Vec<Result<Posted, Refusal>>, PostError> {
        let check = &*self.check;
        let b = self.batcher(channel)?;
        let ids: Vec<MessageId> = items
            .iter()
            .map(|(k, _)| MessageId::derive(channel, k))
            .collect();
        let policy = self.sender.node.policies.get(channel);
        for _ in 0..TRIES {
            let known: Vec<bool> = {
                let st = b.lock();
                ids.iter().map(|id| st.recent.contains_key(id)).collect()
            };
            let mut refused: Vec<Option<Refusal>> = vec![None; items.len()];
            let mut groups = Vec::new();
            for (i, (_, body)) in items.iter().enumerate() {
                if known.get(i).copied().unwrap_or(false) {
                    continue;
                }
                match check(&policy, body, self.sender.node.cfg.node.suite) {
                    Ok(checked) => groups.push(vec![Item {
                        id: ids[i],
                        // ids from the outbox and NATS are never posted again by
                        // key: nothing to compare
                        tag: 0,
                        checked,
                        policy: policy.clone(),
                    }]),
                    Err(refusal) => {
                        self.refuse(channel, Some(ids[i]), body.as_bytes(), &refusal)?;
                        refused[i] = Some(refusal);
                    }
                }
            }
            if !groups.is_empty() {
                self.disk_ok()?;
            }
            let taken: Vec<MessageId> = ids
                .iter()
                .zip(&refused)
                .filter(|(_, r)| r.is_none())
                .map(|(id, _)| *id)
                .collect();
            let Some(posted) = self.enqueue(b, &taken, groups)? else {
                continue;
            };
            let mut posted = posted.into_iter();
            return Ok(refused
                .into_iter()
                .map(|r| match r {
                    Some(r) => Err(r),
                    None => posted.next().ok_or_else(|| {
                        Refusal::new(Reason::MessageMalformed, "no answer for this message")
                    }),
                })
                .collect());
        }
        Err(PostError::Unavailable(
            "the batches of these messages kept failing".into(),
        ))
    }

    /// Free space above the node's floor, or `Unavailable`.
    fn disk_ok(&self) -> Result<(), PostError> {
        crate::node::health::disk_ok(&self.sender.node)
            .map_err(|why| PostError::Unavailable(format!("free space below the floor: {why}")))
    }

    /// Puts each group (its messages in one batch) into the channel's batches and waits
    /// until every id of `ids` is durable. `Ok(None)`: an id that was known when the
    /// groups were made is no longer (its batch failed): the caller checks again.
    fn enqueue(
        &self,
        b: &Batcher,
        ids: &[MessageId],
        groups: Vec<Vec<Item>>,
    ) -> Result<Option<Vec<Posted>>, PostError> {
        let mut st = b.lock();
        if st.stopping {
            return Err(PostError::Unavailable("the node is stopping".into()));
        }
        let grouped: std::collections::HashSet<MessageId> =
            groups.iter().flatten().map(|i| i.id).collect();
        if ids
            .iter()
            .any(|id| !grouped.contains(id) && !st.recent.contains_key(id))
        {
            return Ok(None);
        }
        for group in groups {
            // a retry that came meanwhile took some already
            let group: Vec<Item> = group
                .into_iter()
                .filter(|i| !st.recent.contains_key(&i.id))
                .collect();
            if group.is_empty() {
                continue;
            }
            let n = group.len();
            let bytes: u64 = group.iter().map(|i| i.checked.body.len() as u64).sum();
            if let Some(open) = st.open.take() {
                if open.items.len() + n > b.settings.batch_max
                    || open.bytes + bytes > b.settings.batch_max_bytes
                {
                    st.ready.push_back(open);
                } else {
                    st.open = Some(open);
                }
            }
            if st.open.is_none() {
                let no = st.next_no;
                st.next_no += 1;
                st.open = Some(Batch {
                    no,
                    items: Vec::new(),
                    bytes: 0,
                    since: Instant::now(),
                });
            }
            let Some(mut open) = st.open.take() else {
                continue;
            };
            for item in group {
                let known = Known {
                    batch: open.no,
                    tag: item.tag,
                    masked: !item.checked.masked.is_empty(),
                };
                st.remember(item.id, known);
                open.items.push(item);
            }
            open.bytes += bytes;
            if b.full(&open) {
                st.ready.push_back(open);
            } else {
                st.open = Some(open);
            }
        }
        b.wake.notify_all();
        let known: Vec<Known> = ids
            .iter()
            .filter_map(|id| st.recent.get(id).copied())
            .collect();
        let needed = known.iter().map(|k| k.batch).max().unwrap_or(0);
        while st.completed < needed {
            st = b.done.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        for k in &known {
            if let Some(why) = st.failed.get(&k.batch) {
                return Err(PostError::Unavailable(why.clone()));
            }
        }
        Ok(Some(
            ids.iter()
                .zip(known)
                .map(|(id, k)| Posted {
                    id: *id,
                    masked: k.masked,
                })
                .collect(),
        ))
    }

    /// Records a post refused before its body was read (it announced more than the
    /// channel's `batch_max_bytes`): audited `message_refused` (durable) with the channel,
    /// the reason and the detail, and counted in `isogate_messages_refused_total`. Nothing
    /// goes to quarantine and no hash or size is recorded: no byte of it was read (as for
    /// an outbox entry refused for what it is).
    ///
    /// # Errors
    /// [`PostError::NoChannel`], or the audit record cannot be written
    /// ([`PostError::Unavailable`]).
    pub fn refuse_unread(&self, channel: &str, refusal: &Refusal) -> Result<(), PostError> {
        let node = &self.sender.node;
        if node.cfg.channel(channel).is_none() {
            return Err(PostError::NoChannel(channel.to_string()));
        }
        let e = Entry {
            channel: Some(channel.to_string()),
            reason: Some(refusal.reason),
            detail: Some(refusal.detail.clone()),
            ..Entry::default()
        };
        node.audit
            .durable(Event::MessageRefused, e)
            .map_err(|e| PostError::Unavailable(e.to_string()))?;
        node.metrics
            .messages_refused
            .with_label_values(&[channel, refusal.reason.as_str()])
            .inc();
        tracing::warn!(channel, reason = %refusal.reason, detail = %refusal.detail, "a post refused unread");
        Ok(())
    }

    /// Records a refused message: its body goes to the channel's quarantine as `<id>`
    /// (the message id; its reason file and audit record name it `<id>.json`);
    /// audited `message_refused` (durable) and counted in `isogate_messages_refused_total`.
    /// `id`: the message's id when it has one (random otherwise).
    ///
    /// # Errors
    /// [`PostError::NoChannel`], or the quarantine or the audit record cannot be written
    /// ([`PostError::Unavailable`]).
    pub fn refuse(
        &self,
        channel: &str,
        id: Option<MessageId>,
        body: &[u8],
        refusal: &Refusal,
    ) -> Result<(), PostError> {
        let node = &self.sender.node;
        if node.cfg.channel(channel).is_none() {
            return Err(PostError::NoChannel(channel.to_string()));
        }
        let id = match id {
            Some(id) => id,
            None => MessageId::random().map_err(|e| PostError::Unavailable(e.to_string()))?,
        };
        node.message_refused(channel, id, body, refusal, Side::Sender)
            .map_err(|e| PostError::Unavailable(e.to_string()))
    }

    /// Takes a settled file of a messages channel's outbox (the watch's intake, blocking):
    /// a `.json` file is one message, a `.ndjson` file one per line (read up to the
    /// channel's `batch_max_bytes`); message `i` gets the id derived from
    /// `"file:<dev>:<ino>:<mtime_ns>:<hash hex>#<i>"` (the suite's hash of the file), so a file taken again after a
    /// crash carries the same ids.
    ///
    /// The file is first renamed out of the outbox into its staging folder
    /// ([`crate::sender::spool::Spool::stage_out`]) and read there, where no writer reaches
    /// it: a writer that opened it after the watch found it free puts it back in the outbox,
    /// busy until that writer closes, so no prefix of what it writes is ever taken. All or
    /// nothing: once its messages are durable the staged file is removed; a file refused
    /// (its name, its size, a line that is not JSON, a message the policy refuses) goes to
    /// quarantine with its reason, the detail naming the line. When the messages cannot be
    /// made durable now, the file goes back to the outbox and is taken again once it has
    /// settled again.
    ///
    /// # Errors
    /// The file cannot be staged, read, quarantined or put back, or the messages cannot be
    /// made durable.
    pub fn take_file(&self, channel: &Channel, file_name: &OsStr) -> Result<(), Fault> {
        let path = channel.outbox.join(file_name);
        let shown = file_name.to_string_lossy().into_owned();
        let lower = shown.to_ascii_lowercase();
        let json = lower.ends_with(".json");
        if !json && !lower.ends_with(".ndjson") {
            let r = Refusal::new(
                Reason::ExtensionRefused,
                "a messages channel takes .json and .ndjson files only",
            );
            return self.sender.refuse_outbox_entry(channel, &path, &shown, &r);
        }
        let Some(settings) = channel.messages.as_ref() else {
            return Ok(());
        };
        let spool = &self.sender.spool;
        let Some(staged) = spool.stage_out(&channel.outbox, file_name)? else {
            return Ok(());
        };
        let taken = self.take_staged(channel, settings, &staged, &shown, json);
        if taken.is_err() && std::fs::symlink_metadata(&staged).is_ok() {
            // not durable, or not quarantined: back to the outbox, taken again at the next
            // rescan (or, if even that fails, at the next start)
            if let Err(e) = spool.unstage(&staged, &channel.outbox, file_name) {
                tracing::warn!(staged = %staged.display(), error = %e, "a staged outbox file cannot be put back; the next start puts it back");
            }
        }
        taken
    }

    /// The rest of [`Messages::take_file`], on the file staged at `staged`.
    fn take_staged(
        &self,
        channel: &Channel,
        settings: &MessageChannel,
        staged: &std::path::Path,
        shown: &str,
        json: bool,
    ) -> Result<(), Fault> {
        let refuse = |r: &Refusal, read: Option<&[u8]>| -> Result<(), Fault> {
            self.sender
                .refuse_outbox_read(channel, staged, shown, r, read)?;
            sync_parent(staged)
        };
        let mut file = crate::fsx::open_nofollow(staged)?;
        let meta = file.metadata()?;
        if meta.len() > settings.batch_max_bytes {
            return refuse(
                &Refusal::new(
                    Reason::SizeLimit,
                    format!(
                        "{} bytes; the channel's batch_max_bytes is {}",
                        meta.len(),
                        settings.batch_max_bytes
                    ),
                ),
                None,
            );
        }
        let mut bytes = Vec::new();
        (&mut file)
            .take(settings.batch_max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)?;
        drop(file);
        if bytes.len() as u64 > settings.batch_max_bytes {
            return refuse(
                &Refusal::new(Reason::SizeLimit, "grew past batch_max_bytes while read"),
                None,
            );
        }
        let policy = self.sender.node.policies.get(&channel.name);
        let max_bytes = policy
            .messages
            .as_ref()
            .map_or(crate::policy::message::MAX_MESSAGE_BYTES_CAP, |m| {
                m.max_message_bytes
            });
        let bodies =
            match crate::core::message::parse_posted(&bytes, json, settings.batch_max, max_bytes) {
                Ok(b) => b,
                Err((line, reason, detail)) => {
                    return refuse(
                        &Refusal::new(reason, format!("line {line}: {detail}")),
                        Some(&bytes),
                    );
                }
            };
        let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
        let key = format!(
            "file:{}:{}:{mtime_ns}:{}",
            meta.dev(),
            meta.ino(),
            hex::encode(digest(self.sender.node.cfg.node.suite, &bytes))
        );
        match self.post(&channel.name, Some(&key), bodies) {
            Ok(posted) => {
                tracing::debug!(channel = %channel.name, name = %shown, messages = posted.len(), "outbox file taken as messages");
                match std::fs::remove_file(staged) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
                sync_parent(staged)
            }
            Err(PostError::Refused { index, refusal }) => {
                let line = if json {
                    1
                } else {
                    line_of_value(&bytes, index)
                };
                refuse(
                    &Refusal::new(refusal.reason, format!("line {line}: {}", refusal.detail)),
                    Some(&bytes),
                )
            }
            Err(e) => Err(std::io::Error::other(e.to_string()).into()),
        }
    }
}

/// Fsyncs the folder holding `path` (a staged file just removed or quarantined).
fn sync_parent(path: &std::path::Path) -> Result<(), Fault> {
    if let Some(dir) = path.parent() {
        crate::fsx::sync_dir(dir)?;
    }
    Ok(())
}

/// The 1-based line of the `index`-th JSON value of an NDJSON text (blank lines skipped,
/// as [`crate::core::message::parse_posted`] does).
pub fn line_of_value(bytes: &[u8], index: usize) -> usize {
    let mut seen = 0;
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if seen == index {
            return n + 1;
        }
        seen += 1;
    }
    1
}

/// A channel's batcher thread: takes the next batch due (a full one at once, the open one
/// after `linger_ms` once fewer than [`MAX_IN_FLIGHT`] of the channel's batches are on
/// their way or the hold (`sender::flow::HOLD_MAX`) later, everything when stopping), commits it, answers its
/// requests, hands it to the pipeline thread.
fn run_batcher(sender: &Sender, b: &Batcher, pipeline: &std::sync::mpsc::Sender<Spooled>) {
    let linger = Duration::from_millis(b.settings.linger_ms);
    loop {
        let batch = {
            let mut st = b.lock();
            loop {
                if let Some(batch) = st.ready.pop_front() {
                    break Some(batch);
                }
                let due = st.open.as_ref().map(|o| o.since + linger);
                match due {
                    None if st.stopping => break None,
                    None => st = b.wake.wait(st).unwrap_or_else(|e| e.into_inner()),
                    Some(due) => {
                        // due, and the channel's earlier batches on their way (or held
                        // long enough): cut; else it keeps filling (see `sender::flow`)
                        let now = Instant::now();
                        let held_until = due + sender.in_flight.hold();
                        let go = now >= due
                            && (now >= held_until
                                || sender.in_flight.count(&b.channel) < MAX_IN_FLIGHT);
                        if st.stopping || go {
                            break st.open.take();
                        }
                        let until = if now < due { due } else { held_until };
                        st = b
                            .wake
                            .wait_timeout(st, until - now)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                }
            }
        };
        let Some(batch) = batch else {
            b.done.notify_all();
            return;
        };
        let no = batch.no;
        let result = commit(sender, b, &batch.items);
        if let Ok(spooled) = &result {
            sender.in_flight.begin(&b.channel, spooled.id);
        }
        {
            let mut st = b.lock();
            st.completed = st.completed.max(no);
            if let Err(e) = &result {
                tracing::error!(channel = %b.channel, error = %e, messages = batch.items.len(), "cannot make a batch of messages durable; its requests are answered unavailable");
                st.failed.insert(no, e.to_string());
                for item in &batch.items {
                    if st.recent.get(&item.id).is_some_and(|k| k.batch == no) {
                        st.recent.remove(&item.id);
                    }
                }
                let keep_from = no.saturating_sub(FAILED_KEPT);
                st.failed = st.failed.split_off(&keep_from);
            }
        }
        b.done.notify_all();
        if let Ok(spooled) = result {
            let _ = pipeline.send(spooled);
        }
    }
}

/// Makes one batch durable: the batch form into a new spool entry, one `message_accepted`
/// record per message, one sync of the audit log. On failure nothing stays in the spool.
fn commit(sender: &Sender, b: &Batcher, items: &[Item]) -> Result<Spooled, Fault> {
    let node = &sender.node;
    let channel = b.channel.as_str();
    let id = ObjectId::random()?;
    let name = format!("{id}.ndjson");
    let mut bytes = Vec::new();
    for item in items {
        encode_line(&mut bytes, item.id, &item.checked.body).map_err(std::io::Error::other)?;
    }
    let keys = sender.node.keys.data();
    let spooled = sender
        .spool
        .put_as(id, channel, &name, &bytes, keys.as_deref())?;
    let recorded = (|| -> Result<(), Fault> {
        let mut last = 0;
        for item in items {
            let c = &item.checked;
            let mut e = Entry::object(channel, id, &name);
            e.message = Some(item.id.to_string());
            e.size = Some(c.body.len() as u64);
            e.digest = Some(c.original_digest);
            if !c.masked.is_empty() {
                e.detail = Some(format!(
                    "{}{}; crossing {} {}",
                    crate::audit::MASKED_DETAIL,
                    c.masked.join(", "),
                    node.cfg.node.suite.hash_field(),
                    hex::encode(c.digest)
                ));
            }
            last = node.audit.append(Event::MessageAccepted, e)?;
        }
        node.audit.sync_to(last)?;
        Ok(())
    })();
    if let Err(e) = recorded {
        let _ = sender.spool.remove(&spooled);
        return Err(e);
    }
    // every message checked under one loaded policy: the pipeline need not check them
    // again while it is in force and the content is these bytes
    if let Some(first) = items.first()
        && b.policy_check
        && bytes.len() as u64 <= crate::core::message::MAX_BATCH_BYTES
        && items.iter().all(|i| Arc::ptr_eq(&i.policy, &first.policy))
    {
        sender.note_prechecked(
            id,
            channel,
            first.policy.clone(),
            digest(node.cfg.node.suite, &bytes),
        );
    }
    node.metrics
        .messages_batches
        .with_label_values(&[channel])
        .inc();
    node.metrics
        .messages_accepted
        .with_label_values(&[channel])
        .inc_by(items.len() as u64);
    tracing::debug!(channel, object = %id, messages = items.len(), bytes = bytes.len(), "batch of messages durable");
    Ok(spooled)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::audit::Record;
    use crate::node::Node;
    use crate::node::config::Config;
    use std::fs;
    use std::path::Path;

    /// The schema of the tests' notices (as the lab's, in short).
    pub(crate) const SCHEMA: &str = r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","required":["type","case","text"],"properties":{"type":{"enum":["status","service","hearing","judgment"]},"case":{"type":"string","maxLength":64},"text":{"type":"string","maxLength":4000},"party":{"type":"object","properties":{"name":{"type":"string"},"phone":{"type":"string"}},"additionalProperties":false}},"additionalProperties":false}"#;

    /// Batching settings of the tests' channel.
    pub(crate) fn settings(
        batch_max: usize,
        batch_max_bytes: u64,
        linger_ms: u64,
    ) -> MessageChannel {
        MessageChannel {
            batch_max,
            batch_max_bytes,
            linger_ms,
            retention_ms: 7 * 24 * 3_600_000,
            source: None,
            deliver: None,
        }
    }

    /// A fresh lab (port base `port`) in a temp dir whose nodes also have a messages
    /// channel `notices` (court → internet, the lab's outbound policy with `[messages]`
    /// and the notices schema): the node `node` ("court" sends it, "internet" receives).
    pub(crate) fn lab_node(
        port: u16,
        node: &str,
        m: MessageChannel,
    ) -> (tempfile::TempDir, Arc<Node>) {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, port, None).unwrap();
        let node = Arc::new(Node::open(with_notices(&lab, node, m)).unwrap());
        (dir, node)
    }

    /// The lab's config of `node` with the `notices` channel added.
    pub(crate) fn with_notices(lab: &Path, node: &str, m: MessageChannel) -> Config {
        let mut cfg = Config::load(&lab.join(format!("{node}.toml"))).unwrap();
        // the lab's own `notices` channel gives way to the tests' one
        cfg.channels.retain(|c| c.name != "notices");
        let mut c = cfg.channel("to-internet").unwrap().clone();
        c.name = "notices".into();
        let swap = |p: &Path| p.parent().unwrap().join("notices");
        c.outbox = swap(&c.outbox);
        c.inbox = swap(&c.inbox);
        c.quarantine = swap(&c.quarantine);
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        c.policy.messages = Some(crate::policy::message::MessageRules {
            schema_file: None,
            schema: Some(Arc::new(jsonschema::draft202012::new(&schema).unwrap())),
            max_message_bytes: 65536,
        });
        c.messages = Some(m);
        cfg.channels.push(c);
        cfg
    }

    /// A check that accepts any JSON value but one holding "refuse" (keyword_match), and
    /// masks nothing: the batcher's tests do not depend on the policy's checks.
    pub(crate) fn fake_check(
        _: &Policy,
        body: &str,
        suite: Suite,
    ) -> Result<CheckedMessage, Refusal> {
        let v: serde_json::Value = serde_json::from_str(body)
            .map_err(|e| Refusal::new(Reason::MessageMalformed, e.to_string()))?;
        if body.contains("refuse") {
            return Err(Refusal::new(Reason::KeywordMatch, "/text: refuse"));
        }
        let body = v.to_string();
        let h = digest(suite, body.as_bytes());
        Ok(CheckedMessage {
            body,
            masked: Vec::new(),
            original_digest: h,
            digest: h,
        })
    }

    /// The sending node's intake with the fake check (`real`: with the policy's checks).
    pub(crate) fn intake(
        node: &Arc<Node>,
        real: bool,
    ) -> (
        Arc<Messages>,
        tokio::sync::mpsc::UnboundedReceiver<crate::core::stage::Sealed>,
    ) {
        let sender = Arc::new(Sender::open(node.clone()).unwrap());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let check: Arc<Check> = if real {
            Arc::new(crate::inspect::message::check_message)
        } else {
            Arc::new(fake_check)
        };
        (Messages::start_with(sender, tx, check).unwrap(), rx)
    }

    fn records(node: &Node, event: Event) -> Vec<Record> {
        crate::audit::read_all(&node.cfg.node.audit_dir)
            .unwrap()
            .into_iter()
            .filter(|r| r.event == event)
            .collect()
    }

    /// The batch (object id) of each accepted message, by message id.
    fn batches(node: &Node) -> HashMap<String, String> {
        let mut out = HashMap::new();
        for r in records(node, Event::MessageAccepted) {
            let prev = out.insert(r.message.unwrap(), r.object_id.unwrap());
            assert!(prev.is_none(), "a message taken twice");
        }
        out
    }

    fn batch_count(node: &Node) -> u64 {
        node.metrics
            .messages_batches
            .with_label_values(&["notices"])
            .get()
    }

    fn text(n: usize) -> String {
        // a JSON string of exactly n bytes
        format!("\"{}\"", "x".repeat(n - 2))
    }

    /// Waits until the open batch holds `n` messages (a request is in).
    fn wait_open(m: &Messages, n: usize) {
        let b = m.batcher("notices").unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while b.lock().open.as_ref().map_or(0, |o| o.items.len()) < n {
            assert!(Instant::now() < deadline, "the open batch never held {n}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn group_commit_answers_many_posts_with_one_batch() {
        let (_d, node) = lab_node(28200, "court", settings(8, 1 << 20, 60_000));
        let (m, _rx) = intake(&node, false);
        let posts: Vec<_> = (0..8)
            .map(|i| {
                let m = m.clone();
                std::thread::spawn(move || {
                    m.post(
                        "notices",
                        Some(&format!("g{i}")),
                        vec![format!("{{\"n\":{i}}}")],
                    )
                    .unwrap()
                })
            })
            .collect();
        let ids: Vec<MessageId> = posts.into_iter().map(|t| t.join().unwrap()[0].id).collect();
        let b = batches(&node);
        assert_eq!(b.len(), 8);
        let objects: std::collections::HashSet<&String> = b.values().collect();
        assert_eq!(objects.len(), 1, "one batch answered every post");
        assert_eq!(batch_count(&node), 1);
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(*id, MessageId::derive("notices", &format!("g{i}#0")));
        }
        m.stop();
    }

    #[test]
    fn linger_commits_a_batch_that_is_not_full() {
        let (_d, node) = lab_node(28210, "court", settings(1000, 1 << 20, 20));
        let (m, _rx) = intake(&node, false);
        let p = m
            .post("notices", None, vec!["1".into(), "2".into()])
            .unwrap();
        assert_eq!(p.len(), 2);
        assert_ne!(p[0].id, p[1].id);
        assert_eq!(batch_count(&node), 1);
        let q = m.post("notices", None, vec!["3".into()]).unwrap();
        assert_eq!(batch_count(&node), 2);
        let b = batches(&node);
        assert_eq!(b[&p[0].id.to_string()], b[&p[1].id.to_string()]);
        assert_ne!(b[&p[0].id.to_string()], b[&q[0].id.to_string()]);
        m.stop();
    }

    /// An intake whose batches count as in flight with these limits (`hold`, `stale`).
    fn intake_with_limits(node: &Arc<Node>, hold: Duration, stale: Duration) -> Arc<Messages> {
        let mut sender = Sender::open(node.clone()).unwrap();
        sender.in_flight = crate::sender::flow::InFlight::with_limits(hold, stale);
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        Messages::start_with(Arc::new(sender), tx, Arc::new(fake_check)).unwrap()
    }

    #[test]
    fn a_batch_is_held_while_two_are_on_their_way_and_cut_when_one_arrives() {
        // held for a minute at most, in flight for ten: only a link's report lets it go
        let (_d, node) = lab_node(28290, "court", settings(1000, 1 << 20, 0));
        let m = intake_with_limits(&node, Duration::from_secs(60), Duration::from_secs(600));
        // two batches go at once (linger 0), and stay in flight: no link reports them
        let a = m.post("notices", None, vec!["1".into()]).unwrap();
        let b = m.post("notices", None, vec!["2".into()]).unwrap();
        assert_eq!(batch_count(&node), 2);
        assert_eq!(m.sender.in_flight.count("notices"), 2);
        // the third is held, and the fourth joins it
        let m1 = m.clone();
        let c = std::thread::spawn(move || m1.post("notices", Some("c"), vec!["3".into()]));
        wait_open(&m, 1);
        let m2 = m.clone();
        let d = std::thread::spawn(move || m2.post("notices", Some("d"), vec!["4".into()]));
        wait_open(&m, 2);
        assert_eq!(batch_count(&node), 2, "held while two are on their way");
        // the first arrives: the held batch goes, both messages in it
        let first = batches(&node)[&a[0].id.to_string()].clone();
        let t = Instant::now();
        m.sender.in_flight.done(ObjectId::parse(&first).unwrap());
        let (c, d) = (c.join().unwrap().unwrap(), d.join().unwrap().unwrap());
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "cut when one arrived, not at the hold's end"
        );
        let all = batches(&node);
        assert_eq!(all[&c[0].id.to_string()], all[&d[0].id.to_string()]);
        assert_ne!(all[&c[0].id.to_string()], all[&b[0].id.to_string()]);
        assert_eq!(batch_count(&node), 3);
        m.stop();
    }

    #[test]
    fn a_held_batch_goes_at_the_end_of_its_hold_when_nothing_arrives() {
        let hold = Duration::from_millis(200);
        let (_d, node) = lab_node(28140, "court", settings(1000, 1 << 20, 0));
        let m = intake_with_limits(&node, hold, Duration::from_secs(600));
        m.post("notices", None, vec!["1".into()]).unwrap();
        m.post("notices", None, vec!["2".into()]).unwrap();
        let t = Instant::now();
        m.post("notices", None, vec!["3".into()]).unwrap();
        assert!(
            t.elapsed() >= hold,
            "held: two batches are still on their way"
        );
        assert_eq!(batch_count(&node), 3);
        m.stop();
    }

    #[test]
    fn the_pipeline_checks_a_noted_batch_again_when_its_policy_or_bytes_changed() {
        // the lab's notices schema wants an object: a batch of `1` sealed by the pipeline
        // was not checked again, one refused was
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, 28170, None).unwrap();
        let node = Arc::new(Node::open(Config::load(&lab.join("court.toml")).unwrap()).unwrap());
        let sender = Sender::open(node.clone()).unwrap();
        let batch = |n: u8| {
            let id = ObjectId([n; 16]);
            let mut bytes = Vec::new();
            encode_line(
                &mut bytes,
                MessageId::derive("notices", &n.to_string()),
                "1",
            )
            .unwrap();
            let spooled = sender
                .spool
                .put_as(id, "notices", &format!("{id}.ndjson"), &bytes, None)
                .unwrap();
            (spooled, digest(Suite::Default, &bytes))
        };
        let in_force = node.policies.get("notices");
        // noted under the policy in force, bytes unchanged: sealed without a second check
        let (s1, h1) = batch(1);
        sender.note_prechecked(s1.id, "notices", in_force.clone(), h1);
        assert!(sender.pipeline(s1).unwrap().is_some());
        // noted under another loaded policy (a reload came between): checked, refused
        let (s2, h2) = batch(2);
        sender.note_prechecked(s2.id, "notices", Arc::new((*in_force).clone()), h2);
        assert!(sender.pipeline(s2).unwrap().is_none());
        // not noted (a batch recovered after a restart): checked, refused
        let (s4, _) = batch(4);
        assert!(sender.pipeline(s4).unwrap().is_none());
        assert_eq!(records(&node, Event::Refused).len(), 2);
        // sealed bytes that are not those noted: never sent; taken again, checked in full
        // once left alone, refused
        let (s3, _) = batch(3);
        sender.note_prechecked(s3.id, "notices", in_force.clone(), [0; 32]);
        assert!(sender.pipeline(s3.clone()).unwrap().is_none());
        let deadline = Instant::now() + Duration::from_secs(30);
        while records(&node, Event::Refused).len() < 3 {
            assert!(
                Instant::now() < deadline,
                "the batch was never checked again"
            );
            assert!(sender.pipeline(s3.clone()).unwrap().is_none());
            std::thread::sleep(Duration::from_millis(50));
        }
        let refused = records(&node, Event::Refused);
        assert_eq!(refused.len(), 3);
        assert!(
            refused
                .iter()
                .all(|r| r.reason == Some(Reason::SchemaViolation))
        );
        assert_eq!(refused[2].object_id, Some(s3.id.to_string()));
    }

    #[test]
    fn a_batch_checked_again_quarantines_the_messages_now_refused_and_sends_the_rest() {
        // a batch recovered after a restart, checked in full: the line the schema refuses
        // is quarantined on its own; the batch that is sealed leaves it out
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, 28360, None).unwrap();
        let node = Arc::new(Node::open(Config::load(&lab.join("court.toml")).unwrap()).unwrap());
        let sender = Sender::open(node.clone()).unwrap();
        let good = r#"{"case":"c","text":"已立案","type":"status"}"#;
        let (kept, refused) = (
            MessageId::derive("notices", "kept"),
            MessageId::derive("notices", "refused"),
        );
        let mut bytes = Vec::new();
        encode_line(&mut bytes, kept, good).unwrap();
        encode_line(&mut bytes, refused, "1").unwrap();
        let id = ObjectId([7; 16]);
        let spooled = sender
            .spool
            .put_as(id, "notices", &format!("{id}.ndjson"), &bytes, None)
            .unwrap();
        let sealed = sender
            .pipeline(spooled)
            .unwrap()
            .expect("the rest is sealed");
        let mut rest = Vec::new();
        encode_line(&mut rest, kept, good).unwrap();
        assert_eq!(sealed.manifest().digest, digest(Suite::Default, &rest));
        assert!(records(&node, Event::Refused).is_empty());
        let r = records(&node, Event::MessageRefused);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].message, Some(refused.to_string()));
        assert_eq!(r[0].reason, Some(Reason::SchemaViolation));
        let q = node.cfg.channel("notices").unwrap().quarantine.clone();
        let keys = node.keys.data();
        let mut held = String::new();
        std::io::Read::read_to_string(
            &mut crate::node::quarantine::open_content(
                &q.join(refused.to_string()),
                keys.as_deref(),
            )
            .unwrap(),
            &mut held,
        )
        .unwrap();
        assert_eq!(held, "1");
        let masked = records(&node, Event::Masked);
        assert!(
            masked[0].detail.as_deref().is_some_and(|d| d
                .starts_with("personal data masked in 0 line(s), 1 refused message(s) left out")),
            "{masked:?}"
        );
    }

    #[test]
    fn batch_max_fills_a_batch_and_cuts_the_next() {
        let (_d, node) = lab_node(28220, "court", settings(3, 1 << 20, 60_000));
        let (m, _rx) = intake(&node, false);
        // two, then one more: full at three, committed at once
        let m1 = m.clone();
        let x =
            std::thread::spawn(move || m1.post("notices", Some("x"), vec!["1".into(), "2".into()]));
        wait_open(&m, 2);
        let z = m.post("notices", Some("z"), vec!["3".into()]).unwrap();
        let x = x.join().unwrap().unwrap();
        let b = batches(&node);
        assert_eq!(b[&x[0].id.to_string()], b[&z[0].id.to_string()]);
        assert_eq!(batch_count(&node), 1);
        // two, then two: the second does not fit, the first batch goes alone
        let m1 = m.clone();
        let x = std::thread::spawn(move || {
            m1.post("notices", Some("x2"), vec!["1".into(), "2".into()])
        });
        wait_open(&m, 2);
        let m2 = m.clone();
        let y = std::thread::spawn(move || {
            m2.post("notices", Some("y2"), vec!["3".into(), "4".into()])
        });
        let x = x.join().unwrap().unwrap();
        assert_eq!(batch_count(&node), 2, "the first went alone");
        wait_open(&m, 2);
        let z = m.post("notices", Some("z2"), vec!["5".into()]).unwrap();
        let y = y.join().unwrap().unwrap();
        let b = batches(&node);
        assert_ne!(b[&x[0].id.to_string()], b[&y[0].id.to_string()]);
        assert_eq!(b[&y[1].id.to_string()], b[&z[0].id.to_string()]);
        assert_eq!(batch_count(&node), 3);
        // more than batch_max in one request: refused, nothing taken
        let e = m.post("notices", None, vec!["1".into(); 4]).unwrap_err();
        assert!(
            matches!(e, PostError::Refused { refusal, .. } if refusal.reason == Reason::SizeLimit)
        );
        assert_eq!(batches(&node).len(), 8);
        m.stop();
    }

    #[test]
    fn batch_max_bytes_closes_a_batch() {
        let (_d, node) = lab_node(28230, "court", settings(1000, 1024, 60_000));
        let (m, _rx) = intake(&node, false);
        let m1 = m.clone();
        let a = std::thread::spawn(move || m1.post("notices", Some("a"), vec![text(600)]));
        wait_open(&m, 1);
        // 600 + 1024 > 1024: the open batch goes alone; these two fill the next exactly
        let bc = m
            .post("notices", Some("bc"), vec![text(500), text(524)])
            .unwrap();
        let a = a.join().unwrap().unwrap();
        let b = batches(&node);
        assert_ne!(b[&a[0].id.to_string()], b[&bc[0].id.to_string()]);
        assert_eq!(b[&bc[0].id.to_string()], b[&bc[1].id.to_string()]);
        assert_eq!(batch_count(&node), 2);
        m.stop();
    }

    #[test]
    fn a_retry_answers_the_same_ids_and_takes_nothing_twice() {
        let (_d, node) = lab_node(28240, "court", settings(1000, 1 << 20, 0));
        let (m, _rx) = intake(&node, false);
        let bodies = vec!["{\"a\":1}".to_string(), "{\"a\":2}".to_string()];
        let first = m.post("notices", Some("key-1"), bodies.clone()).unwrap();
        let again = m.post("notices", Some("key-1"), bodies.clone()).unwrap();
        assert_eq!(first, again);
        assert_eq!(first[1].id, MessageId::derive("notices", "key-1#1"));
        assert_eq!(batch_count(&node), 1);
        assert_eq!(batches(&node).len(), 2);
        // a longer retry takes only what is new
        let mut more = bodies;
        more.push("{\"a\":3}".into());
        let third = m.post("notices", Some("key-1"), more).unwrap();
        assert_eq!(third[..2], first[..]);
        assert_eq!(batches(&node).len(), 3);
        // the same key with another body: refused, and nothing of the request taken
        let other = vec!["{\"a\":1}".to_string(), "{\"a\":22}".to_string()];
        assert!(matches!(
            m.post("notices", Some("key-1"), other),
            Err(PostError::KeyReused { index: 1 })
        ));
        assert_eq!(batches(&node).len(), 3);
        // each item of post_each by its own key
        let each = m
            .post_each(
                "notices",
                vec![
                    ("nats:S:1".into(), "{\"b\":1}".into()),
                    ("nats:S:2".into(), "{\"text\":\"refuse\"}".into()),
                    ("nats:S:3".into(), "{\"b\":3}".into()),
                ],
            )
            .unwrap();
        assert_eq!(
            each[0].as_ref().unwrap().id,
            MessageId::derive("notices", "nats:S:1")
        );
        assert_eq!(each[1].as_ref().unwrap_err().reason, Reason::KeywordMatch);
        assert!(each[2].is_ok());
        let redelivered = m
            .post_each("notices", vec![("nats:S:3".into(), "{\"b\":3}".into())])
            .unwrap();
        assert_eq!(redelivered[0].as_ref().unwrap(), each[2].as_ref().unwrap());
        assert_eq!(batches(&node).len(), 5);
        assert!(matches!(
            m.post("nowhere", None, vec!["1".into()]),
            Err(PostError::NoChannel(_))
        ));
        m.stop();
    }

    #[test]
    fn a_refusal_takes_nothing_and_quarantines_the_message() {
        let (_d, node) = lab_node(28250, "court", settings(1000, 1 << 20, 0));
        let (m, _rx) = intake(&node, false);
        let bodies = vec![
            "{\"a\":1}".to_string(),
            "{\"text\":\"refuse me\"}".to_string(),
            "{\"a\":3}".to_string(),
        ];
        let e = m.post("notices", Some("q"), bodies).unwrap_err();
        let PostError::Refused { index, refusal } = e else {
            panic!("refused: {e}")
        };
        assert_eq!(index, 1);
        assert_eq!(refusal.reason, Reason::KeywordMatch);
        assert!(batches(&node).is_empty(), "nothing of the request taken");
        assert_eq!(batch_count(&node), 0);
        let id = MessageId::derive("notices", "q#1");
        let refused = records(&node, Event::MessageRefused);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].message.as_deref(), Some(id.to_string().as_str()));
        assert_eq!(refused[0].reason, Some(Reason::KeywordMatch));
        let q = node.cfg.channel("notices").unwrap().quarantine.clone();
        let qid = ObjectId(id.0).to_string();
        // sealed at rest (the lab's data key), and read back whole
        let mut kept = String::new();
        let keys = node.keys.data();
        assert!(keys.is_some());
        std::io::Read::read_to_string(
            &mut crate::node::quarantine::open_content(&q.join(&qid), keys.as_deref()).unwrap(),
            &mut kept,
        )
        .unwrap();
        assert_eq!(kept, "{\"text\":\"refuse me\"}");
        assert!(!fs::read(q.join(&qid)).unwrap().starts_with(b"{"));
        let reason = fs::read_to_string(q.join(format!("{qid}.reason.json"))).unwrap();
        assert!(reason.contains("keyword_match") && reason.contains(&format!("{id}.json")));
        assert_eq!(
            node.metrics
                .messages_refused
                .with_label_values(&["notices", "keyword_match"])
                .get(),
            1
        );
        // not JSON: refused by the check (message_malformed), nothing taken either
        assert!(m.post("notices", None, vec!["{".into()]).is_err());
        assert!(batches(&node).is_empty());
        m.stop();
    }

    #[test]
    fn stop_flushes_the_open_batch_and_answers_its_requests() {
        let (_d, node) = lab_node(28260, "court", settings(1000, 1 << 20, 60_000));
        let (m, _rx) = intake(&node, false);
        let m1 = m.clone();
        let t = std::thread::spawn(move || m1.post("notices", None, vec!["1".into()]));
        wait_open(&m, 1);
        m.stop();
        let p = t.join().unwrap().unwrap();
        assert!(batches(&node).contains_key(&p[0].id.to_string()));
        assert!(matches!(
            m.post("notices", None, vec!["2".into()]),
            Err(PostError::Unavailable(_))
        ));
    }

    #[test]
    fn outbox_files_are_taken_as_messages_or_quarantined() {
        let (_d, node) = lab_node(28270, "court", settings(1000, 1 << 20, 0));
        let (m, _rx) = intake(&node, false);
        let c = node.cfg.channel("notices").unwrap().clone();
        let put = |name: &str, body: &str| {
            fs::write(c.outbox.join(name), body).unwrap();
            m.take_file(&c, OsStr::new(name)).unwrap();
        };
        put("two.ndjson", "{\"a\":1}\n\n{\"a\":2}\n");
        assert!(!c.outbox.join("two.ndjson").exists());
        let b = batches(&node);
        assert_eq!(b.len(), 2);
        let accepted = records(&node, Event::MessageAccepted);
        let key0 = accepted[0].message.clone().unwrap();
        assert!(b.contains_key(&key0));
        put("one.json", "{\n \"a\": 3\n}");
        assert_eq!(batches(&node).len(), 3);
        // the ending in any case, as Windows tools write it
        put("UPPER.NDJSON", "{\"a\":4}\n");
        assert!(!c.outbox.join("UPPER.NDJSON").exists());
        assert_eq!(batches(&node).len(), 4);
        put("notes.txt", "{}");
        put("bad.ndjson", "{\"a\":1}\nnot json\n");
        put("kw.ndjson", "{\"a\":1}\n\n{\"text\":\"refuse\"}\n");
        // the files refused (the batches' own pipeline may refuse or send them meanwhile)
        let files = ["notes.txt", "bad.ndjson", "kw.ndjson"];
        let tail: Vec<Record> = records(&node, Event::Refused)
            .into_iter()
            .filter(|r| r.name.as_deref().is_some_and(|n| files.contains(&n)))
            .collect();
        assert_eq!(tail.len(), 3);
        assert_eq!(tail[0].reason, Some(Reason::ExtensionRefused));
        assert_eq!(tail[1].reason, Some(Reason::MessageMalformed));
        assert!(tail[1].detail.as_deref().unwrap().starts_with("line 2:"));
        // a file read is refused with its size and hash, so the audit finds it by either
        let bad = "{\"a\":1}\nnot json\n";
        assert_eq!(tail[1].size, Some(bad.len() as u64));
        assert_eq!(
            tail[1].sha256.as_deref(),
            Some(hex::encode(digest(Suite::Default, bad.as_bytes())).as_str())
        );
        assert_eq!((tail[0].size, tail[0].sha256.as_deref()), (None, None));
        assert_eq!(tail[2].reason, Some(Reason::KeywordMatch));
        assert!(tail[2].detail.as_deref().unwrap().starts_with("line 3:"));
        for n in ["notes.txt", "bad.ndjson", "kw.ndjson"] {
            assert!(!c.outbox.join(n).exists());
        }
        assert_eq!(batches(&node).len(), 4, "nothing of a refused file taken");
        let staging = c.outbox.join(crate::fsx::STAGING_DIR);
        assert_eq!(
            fs::read_dir(&staging).unwrap().count(),
            0,
            "nothing left staged"
        );
        assert_eq!(line_of_value(b"\n1\n\n2\n", 1), 4);
        m.stop();
    }

    #[test]
    fn an_outbox_file_opened_by_a_writer_before_the_take_goes_back_and_crosses_whole() {
        use std::io::Write;
        let (_d, node) = lab_node(28295, "court", settings(1000, 1 << 20, 0));
        let (m, _rx) = intake(&node, false);
        let c = node.cfg.channel("notices").unwrap().clone();
        let writers =
            crate::sender::writers::Writers::start(std::slice::from_ref(&c.outbox)).unwrap();
        m.sender.spool.watch_writers(writers.clone());
        let name = OsStr::new("cp.ndjson");
        let until = |busy: bool| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while writers.busy(&c.outbox, name) != busy && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            writers.busy(&c.outbox, name) == busy
        };
        fs::write(c.outbox.join(name), "{\"a\":0}\n").unwrap();
        assert!(until(false), "found free");
        // a writer opens it after it was found free and has written two lines of four
        let lines: Vec<String> = (1..=4).map(|i| format!("{{\"a\":{i}}}\n")).collect();
        let mut cp = fs::File::create(c.outbox.join(name)).unwrap();
        cp.write_all(lines[..2].concat().as_bytes()).unwrap();
        m.take_file(&c, name).unwrap();
        assert_eq!(batches(&node).len(), 0, "nothing taken while open");
        assert_eq!(
            fs::read_to_string(c.outbox.join(name)).unwrap(),
            lines[..2].concat(),
            "back in the outbox"
        );
        assert!(until(true), "busy until the writer closes");
        cp.write_all(lines[2..].concat().as_bytes()).unwrap();
        drop(cp);
        assert!(until(false), "free once closed");
        m.take_file(&c, name).unwrap();
        assert!(!c.outbox.join(name).exists());
        let accepted = records(&node, Event::MessageAccepted);
        assert_eq!(accepted.len(), 4, "the four lines, whole");
        // a file whose messages cannot be made durable (the intake stopped): back in the
        // outbox, nothing left staged
        m.stop();
        fs::write(c.outbox.join("late.json"), "{\"a\":5}").unwrap();
        assert!(m.take_file(&c, OsStr::new("late.json")).is_err());
        assert_eq!(
            fs::read_to_string(c.outbox.join("late.json")).unwrap(),
            "{\"a\":5}"
        );
        let staging = c.outbox.join(crate::fsx::STAGING_DIR);
        assert_eq!(
            fs::read_dir(&staging).unwrap().count(),
            0,
            "nothing left staged"
        );
    }

    /// With the policy's own checks: a valid notice is taken, one the schema refuses is
    /// not (the checks come from `inspect::message`).
    #[test]
    fn the_policy_checks_decide_what_is_taken() {
        let (_d, node) = lab_node(28280, "court", settings(1000, 1 << 20, 0));
        let (m, _rx) = intake(&node, true);
        let bad = m.post("notices", None, vec!["{\"type\":\"nope\"}".into()]);
        assert!(
            matches!(bad, Err(PostError::Refused { refusal, .. }) if refusal.reason == Reason::SchemaViolation)
        );
        let ok = m
            .post(
                "notices",
                Some("k"),
                vec!["{\"type\":\"status\",\"case\":\"C-1\",\"text\":\"hearing moved\"}".into()],
            )
            .unwrap();
        assert_eq!(ok[0].id, MessageId::derive("notices", "k#0"));
        assert!(!ok[0].masked);
        m.stop();
    }
}
