//! The sending node's JetStream source: for each messages channel with `source =
//! "nats://HOST:PORT/STREAM/CONSUMER"`, the operator's durable pull consumer is read and
//! every message it hands out is posted to the channel ([`Messages::post_each`]) before it
//! is acknowledged (NATS JetStream, acknowledgement with confirmation).
//!
//! ```text
//!  durable pull consumer ─► wait for one (≤ 2 s), then take what else is pending
//!     (≤ batch_max) ─► key "nats:<stream>:<stored, ns>:<stream sequence>" for each
//!     ─► not UTF-8: refused here (message_malformed, quarantined as <id>.json)
//!     ─► Messages::post_each (a blocking thread; accepted ones durable on return,
//!        refused ones quarantined and audited there)
//!     ─► ack each, accepted and refused alike        post failed ─► nak each (sent again)
//!  NATS away (connect, fetch, ack) ─► messages_nats_errors, back-off ≤ 5 s, try again
//! ```
//!
//! Nothing is lost or skipped: a message is acknowledged only once it is durable in a batch
//! or quarantined. A message handed out again (an ack that did not arrive, a crash between
//! post and ack, a nak) has the same stream sequence and store time, hence the same key
//! and the same id (a stream made again under the same name gives new ones):
//! the intake answers it again without taking it twice, and after a crash the receiving
//! node's log drops the copy. One thread with its own small runtime per channel, so that a
//! slow NATS never holds the node's other work.

use crate::core::id::ObjectId;
use crate::core::message::MessageId;
use crate::core::reason::{Reason, Refusal, Side};
use crate::node::config::NatsSource;
use crate::node::nats::{self, Backoff};
use crate::node::{Fault, Node, Refused};
use crate::ops::events::Subject;
use crate::sender::messages::{Messages, PostError, Posted};
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::PullConsumer;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;

/// The key a JetStream message is posted under (its id is derived from it): the stream,
/// when the stream stored it (nanoseconds since the Unix epoch) and its stream sequence,
/// `nats:<stream>:<stored>:<sequence>`. A message handed out again keeps all three; a
/// stream deleted and made again under its name numbers from 1 again, but stores at
/// other times, so its messages never take the ids of the old stream's.
fn key(stream: &str, stored: i128, sequence: u64) -> String {
    format!("nats:{stream}:{stored}:{sequence}")
}

/// How long one pull request waits for a first message before the loop looks again.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(2);

/// Why the sources could not start.
#[derive(Debug, Error)]
pub enum SourceError {
    /// The thread or the runtime of a channel's source could not be made.
    #[error("starting the NATS source of channel {channel}: {source}")]
    Start {
        /// The channel.
        channel: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// The running sources, one thread per channel with a `source`; [`Sources::stop`] ends them.
pub struct Sources {
    stop: watch::Sender<bool>,
    channels: Vec<String>,
}

impl Sources {
    /// The channels read from JetStream.
    pub fn channels(&self) -> &[String] {
        &self.channels
    }

    /// Asks every source to stop after the step it is in (a post under way finishes and is
    /// acknowledged or handed out again by JetStream later); returns at once.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for Sources {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a source hands its messages to: the node's message intake, or a test's.
pub(crate) trait Intake: Send + Sync + 'static {
    /// [`Messages::post_each`].
    fn post_each(
        &self,
        channel: &str,
        items: Vec<(String, String)>,
    ) -> Result<Vec<Result<Posted, Refusal>>, PostError>;

    /// Refuses a message that never reached the policy (a payload that is not UTF-8, so
    /// not JSON, RFC 8259 §8.1): quarantined as `<id>.json`, audited, counted.
    fn refuse_raw(
        &self,
        channel: &str,
        id: MessageId,
        payload: &[u8],
        refusal: &Refusal,
    ) -> Result<(), Fault>;
}

/// The node's own intake.
struct Live {
    node: Arc<Node>,
    messages: Arc<Messages>,
}

impl Intake for Live {
    fn post_each(
        &self,
        channel: &str,
        items: Vec<(String, String)>,
    ) -> Result<Vec<Result<Posted, Refusal>>, PostError> {
        self.messages.post_each(channel, items)
    }

    fn refuse_raw(
        &self,
        channel: &str,
        id: MessageId,
        payload: &[u8],
        refusal: &Refusal,
    ) -> Result<(), Fault> {
        let node = &self.node;
        let Some(c) = node.cfg.channels.iter().find(|c| c.name == channel) else {
            return Err(Fault::UnknownChannel {
                object: ObjectId(id.0),
                channel: channel.to_string(),
            });
        };
        // the bytes go into quarantine as they came, written there from memory
        let name = format!("{id}.json");
        let digest = crate::keys::suite::digest(node.cfg.node.suite, payload);
        node.refuse(
            &Refused {
                subject: Subject {
                    channel,
                    id: ObjectId(id.0),
                    name: &name,
                    size: Some(payload.len() as u64),
                    digest: Some(digest),
                },
                quarantine: &c.quarantine,
                content: Some(crate::node::quarantine::Held::Bytes(payload)),
                side: Side::Sender,
            },
            refusal,
        )?;
        node.metrics
            .messages_refused
            .with_label_values(&[channel, refusal.reason.as_str()])
            .inc();
        Ok(())
    }
}

/// Starts one source per messages channel this node sends that has a `source`. Returns at
/// once, also when NATS is unreachable: each source connects in the background and tries
/// again until it can.
///
/// # Errors
/// [`SourceError::Start`] when a thread or runtime cannot be made.
pub fn start(node: Arc<Node>, messages: Arc<Messages>) -> Result<Sources, SourceError> {
    let intake = Arc::new(Live {
        node: node.clone(),
        messages,
    });
    let (stop, stopped) = watch::channel(false);
    let mut channels = Vec::new();
    for c in node.cfg.sending() {
        let Some(m) = &c.messages else { continue };
        let Some(source) = &m.source else { continue };
        let worker = Worker {
            channel: c.name.clone(),
            node_name: node.cfg.node.name.clone(),
            source: source.clone(),
            batch_max: m.batch_max.max(1),
            intake: intake.clone(),
            errors: node
                .metrics
                .messages_nats_errors
                .with_label_values(&[c.name.as_str()]),
            stop: stopped.clone(),
        };
        spawn(worker).map_err(|source| SourceError::Start {
            channel: c.name.clone(),
            source,
        })?;
        tracing::info!(channel = %c.name, server = %source.server, stream = %source.stream, consumer = %source.consumer, "taking messages from JetStream");
        channels.push(c.name.clone());
    }
    Ok(Sources { stop, channels })
}

/// Runs `worker` on its own thread and current-thread runtime.
pub(crate) fn spawn<I: Intake>(worker: Worker<I>) -> std::io::Result<std::thread::JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(format!("nats-source-{}", worker.channel))
        .spawn(move || rt.block_on(worker.run()))
}

/// Why one round of a source did not complete; the round is tried again after a back-off.
#[derive(Debug, Error)]
pub(crate) enum RoundError {
    /// The client is not connected to the NATS server now.
    #[error("not connected to the NATS server")]
    Down,
    /// The durable consumer could not be looked up.
    #[error("consumer info: {0}")]
    Consumer(#[from] async_nats::jetstream::stream::ConsumerError),
    /// A pull request failed.
    #[error("pull request: {0}")]
    Pull(#[from] async_nats::jetstream::consumer::pull::BatchError),
    /// A message of a pull failed.
    #[error("pull: {0}")]
    Message(async_nats::Error),
    /// A message carried no JetStream metadata (its reply subject).
    #[error("a message without JetStream metadata: {0}")]
    Metadata(async_nats::Error),
    /// The intake could not take the messages now; they were handed back (nak).
    #[error("the intake could not take the messages: {0}")]
    Post(#[from] PostError),
    /// A message that is not UTF-8 could not be quarantined; it was handed back.
    #[error("quarantining a message: {0}")]
    Refuse(#[from] Fault),
    /// The blocking thread of a post ended abnormally.
    #[error("post thread: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// Acknowledgements did not all arrive (the messages come again; same ids).
    #[error("{failed} of {of} acknowledgements failed: {first}")]
    Ack {
        /// How many failed.
        failed: usize,
        /// Out of how many.
        of: usize,
        /// The first error.
        first: async_nats::Error,
    },
}

/// One channel's source.
pub(crate) struct Worker<I: Intake> {
    pub(crate) channel: String,
    pub(crate) node_name: String,
    pub(crate) source: NatsSource,
    pub(crate) batch_max: usize,
    pub(crate) intake: Arc<I>,
    pub(crate) errors: prometheus::IntCounter,
    pub(crate) stop: watch::Receiver<bool>,
}

impl<I: Intake> Worker<I> {
    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps for `wait`, or less when asked to stop; returns whether asked to stop.
    async fn pause(&mut self, wait: Duration) -> bool {
        if self.stopped() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => self.stopped(),
            _ = self.stop.changed() => true,
        }
    }

    async fn run(mut self) {
        let client = match nats::connect(&self.source.server, &self.node_name).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(channel = %self.channel, error = %e, "cannot use the NATS source");
                return;
            }
        };
        let js = nats::jetstream(client.clone());
        let mut consumer: Option<PullConsumer> = None;
        let mut backoff = Backoff::default();
        let mut stop = self.stop.clone();
        while !self.stopped() {
            let round = tokio::select! {
                r = self.round(&client, &js, &mut consumer) => r,
                _ = stop.changed() => break,
            };
            match round {
                Ok(()) => {
                    if backoff.succeeded() {
                        tracing::info!(channel = %self.channel, server = %self.source.server, "JetStream source reachable again");
                    }
                }
                Err(e) => {
                    self.errors.inc();
                    if matches!(e, RoundError::Consumer(_) | RoundError::Down) {
                        consumer = None;
                    }
                    let (wait, first) = backoff.failed();
                    if first {
                        tracing::warn!(channel = %self.channel, server = %self.source.server, error = %e, "JetStream source failed; trying again with back-off");
                    } else {
                        tracing::debug!(channel = %self.channel, error = %e, "JetStream source still failing");
                    }
                    if self.pause(wait).await {
                        break;
                    }
                }
            }
        }
        tracing::info!(channel = %self.channel, "JetStream source stopped");
    }

    /// One pull: wait for messages, post them, acknowledge them.
    async fn round(
        &self,
        client: &async_nats::Client,
        js: &async_nats::jetstream::Context,
        consumer: &mut Option<PullConsumer>,
    ) -> Result<(), RoundError> {
        if client.connection_state() != async_nats::connection::State::Connected {
            return Err(RoundError::Down);
        }
        let c = match consumer.take() {
            Some(c) => c,
            None => {
                js.get_consumer_from_stream(&self.source.consumer, &self.source.stream)
                    .await?
            }
        };
        let c = consumer.insert(c);
        let messages = take(c, self.batch_max).await?;
        if messages.is_empty() {
            return Ok(());
        }
        self.hand_over(messages).await
    }

    /// Posts `messages` (in order) and acknowledges them; hands them back (nak) when the
    /// intake cannot take them now.
    async fn hand_over(
        &self,
        messages: Vec<async_nats::jetstream::Message>,
    ) -> Result<(), RoundError> {
        let mut items = Vec::with_capacity(messages.len());
        let mut raw = Vec::new();
        for m in &messages {
            let info = m.info().map_err(RoundError::Metadata)?;
            let stored = info.published.unix_timestamp_nanos();
            let key = key(&self.source.stream, stored, info.stream_sequence);
            match std::str::from_utf8(&m.payload) {
                Ok(body) => items.push((key, body.to_string())),
                Err(e) => raw.push((key, m.payload.clone(), e)),
            }
        }
        let posted = {
            let intake = self.intake.clone();
            let channel = self.channel.clone();
            tokio::task::spawn_blocking(move || -> Result<usize, RoundError> {
                let n = items.len();
                if n > 0 {
                    let answers = intake.post_each(&channel, items)?;
                    let refused = answers.iter().filter(|a| a.is_err()).count();
                    if refused > 0 {
                        tracing::info!(channel = %channel, refused, of = n, "JetStream messages refused by the policy (quarantined)");
                    }
                }
                for (key, payload, e) in raw {
                    let id = MessageId::derive(&channel, &key);
                    let refusal = Refusal::new(
                        Reason::MessageMalformed,
                        format!("{key}: not UTF-8, so not JSON: {e}"),
                    );
                    intake.refuse_raw(&channel, id, &payload, &refusal)?;
                }
                Ok(n)
            })
            .await?
        };
        if let Err(e) = posted {
            // handed back at once rather than after the consumer's ack wait
            for m in &messages {
                let _ = m.ack_with(AckKind::Nak(None)).await;
            }
            return Err(e);
        }
        let of = messages.len();
        let mut failed = 0;
        let mut first = None;
        for m in &messages {
            if let Err(e) = m.double_ack().await {
                failed += 1;
                first.get_or_insert(e);
            }
        }
        match first {
            None => Ok(()),
            Some(first) => Err(RoundError::Ack { failed, of, first }),
        }
    }
}

/// Waits up to [`WAIT_FOR_FIRST`] for one message, then takes what else is pending now,
/// `batch_max` in all.
async fn take(
    consumer: &PullConsumer,
    batch_max: usize,
) -> Result<Vec<async_nats::jetstream::Message>, RoundError> {
    let mut out = Vec::new();
    let mut first = consumer
        .batch()
        .max_messages(1)
        .expires(WAIT_FOR_FIRST)
        .messages()
        .await?;
    while let Some(m) = first.next().await {
        out.push(m.map_err(RoundError::Message)?);
    }
    if out.is_empty() || batch_max <= 1 {
        return Ok(out);
    }
    let mut rest = consumer
        .fetch()
        .max_messages(batch_max - 1)
        .messages()
        .await?;
    while let Some(m) = rest.next().await {
        out.push(m.map_err(RoundError::Message)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::nats::testing::{NatsServer, until};
    use async_nats::jetstream::{consumer::pull, stream};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The intake of these tests: records what it is given; refuses bodies containing
    /// "secret"; answers `Unavailable` while `unavailable` counts down.
    #[derive(Default)]
    struct Fake {
        posts: Mutex<Vec<Vec<(String, String)>>>,
        raw: Mutex<Vec<(MessageId, Vec<u8>, Reason)>>,
        unavailable: AtomicUsize,
    }

    impl Intake for Fake {
        fn post_each(
            &self,
            channel: &str,
            items: Vec<(String, String)>,
        ) -> Result<Vec<Result<Posted, Refusal>>, PostError> {
            if self
                .unavailable
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(PostError::Unavailable("disk full".into()));
            }
            let answers = items
                .iter()
                .map(|(key, body)| {
                    if body.contains("secret") {
                        Err(Refusal::new(Reason::KeywordMatch, "secret"))
                    } else {
                        Ok(Posted {
                            id: MessageId::derive(channel, key),
                            masked: false,
                        })
                    }
                })
                .collect();
            self.posts.lock().unwrap().push(items);
            Ok(answers)
        }

        fn refuse_raw(
            &self,
            _channel: &str,
            id: MessageId,
            payload: &[u8],
            refusal: &Refusal,
        ) -> Result<(), Fault> {
            self.raw
                .lock()
                .unwrap()
                .push((id, payload.to_vec(), refusal.reason));
            Ok(())
        }
    }

    impl Fake {
        /// Every (key, body) posted, in order, repeats included.
        fn posted(&self) -> Vec<(String, String)> {
            self.posts
                .lock()
                .unwrap()
                .iter()
                .flatten()
                .cloned()
                .collect()
        }
    }

    async fn setup(server: &NatsServer) -> (async_nats::jetstream::Context, PullConsumer) {
        let client = async_nats::connect(server.addr()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let s = js
            .create_stream(stream::Config {
                name: "FILINGS".into(),
                subjects: vec!["filings.>".into()],
                ..Default::default()
            })
            .await
            .unwrap();
        let c = s
            .create_consumer(pull::Config {
                durable_name: Some("isogate".into()),
                ack_wait: Duration::from_secs(2),
                ..Default::default()
            })
            .await
            .unwrap();
        (js, c)
    }

    fn worker(server: String, fake: Arc<Fake>) -> (Worker<Fake>, watch::Sender<bool>) {
        let (stop, stopped) = watch::channel(false);
        let errors = prometheus::IntCounter::new("e", "e").unwrap();
        let w = Worker {
            channel: "notices".into(),
            node_name: "court".into(),
            source: NatsSource {
                server,
                stream: "FILINGS".into(),
                consumer: "isogate".into(),
            },
            batch_max: 3,
            intake: fake,
            errors,
            stop: stopped,
        };
        (w, stop)
    }

    async fn settled(c: &mut PullConsumer) -> bool {
        match c.info().await {
            Ok(i) => i.num_pending == 0 && i.num_ack_pending == 0,
            Err(_) => false,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_message_posted_with_its_sequence_key_then_acknowledged() {
        let server = NatsServer::start(28510);
        let (js, mut c) = setup(&server).await;
        let mut bodies = Vec::new();
        for i in 0..7 {
            let body = format!("{{\"case\":\"C-{i}\"}}");
            js.publish("filings.new", body.clone().into())
                .await
                .unwrap()
                .await
                .unwrap();
            bodies.push(body);
        }
        js.publish("filings.new", "{\"text\":\"secret\"}".into())
            .await
            .unwrap()
            .await
            .unwrap();
        js.publish("filings.new", vec![0xffu8, 0xfe, b'{'].into())
            .await
            .unwrap()
            .await
            .unwrap();
        let ninth = js
            .get_stream("FILINGS")
            .await
            .unwrap()
            .get_raw_message(9)
            .await
            .unwrap()
            .time
            .unix_timestamp_nanos();
        let fake = Arc::new(Fake::default());
        // the first post finds the intake unable to take them: handed back, posted again
        fake.unavailable.store(1, Ordering::SeqCst);
        let (w, stop) = worker(server.addr(), fake.clone());
        let errors = w.errors.clone();
        let thread = spawn(w).unwrap();
        until("every message acknowledged", async || settled(&mut c).await).await;
        stop.send(true).unwrap();
        thread.join().unwrap();
        let posted = fake.posted();
        let mut keys: Vec<&str> = posted.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        let seqs: Vec<u64> = keys
            .iter()
            .map(|k| {
                assert!(k.starts_with("nats:FILINGS:"), "{k}");
                k.rsplit(':').next().unwrap().parse().unwrap()
            })
            .collect();
        let mut seqs_sorted = seqs.clone();
        seqs_sorted.sort_unstable();
        assert_eq!(
            seqs_sorted,
            (1..=8).collect::<Vec<u64>>(),
            "each UTF-8 message posted under its sequence, once per key"
        );
        for (key, body) in &posted {
            let seq: usize = key.rsplit(':').next().unwrap().parse().unwrap();
            if seq <= 7 {
                assert_eq!(body, &bodies[seq - 1]);
            }
        }
        // in stream order within each post, at most batch_max at once
        for p in fake.posts.lock().unwrap().iter() {
            assert!(!p.is_empty() && p.len() <= 3);
            assert!(p.windows(2).all(|w| {
                let n = |k: &str| k.rsplit(':').next().unwrap().parse::<u64>().unwrap();
                n(&w[0].0) < n(&w[1].0)
            }));
        }
        let raw = fake.raw.lock().unwrap();
        assert!(!raw.is_empty());
        assert!(raw.iter().all(|(id, payload, reason)| {
            *id == MessageId::derive("notices", &key("FILINGS", ninth, 9))
                && payload == &[0xff, 0xfe, b'{']
                && *reason == Reason::MessageMalformed
        }));
        assert!(errors.get() >= 1, "the refused post counted as an error");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_made_again_under_its_name_gives_its_messages_new_ids() {
        let server = NatsServer::start(28540);
        let fake = Arc::new(Fake::default());
        let (w, stop) = worker(server.addr(), fake.clone());
        let thread = spawn(w).unwrap();
        for round in 0..2 {
            let (js, mut c) = setup(&server).await;
            for i in 0..2 {
                js.publish("filings.new", format!("{{\"r\":{round},\"i\":{i}}}").into())
                    .await
                    .unwrap()
                    .await
                    .unwrap();
            }
            until("both acknowledged", async || settled(&mut c).await).await;
            // the operator deletes the stream and makes it again: sequences start at 1 again
            js.delete_stream("FILINGS").await.unwrap();
        }
        stop.send(true).unwrap();
        thread.join().unwrap();
        let posted = fake.posted();
        let mut ids: Vec<MessageId> = posted
            .iter()
            .map(|(k, _)| MessageId::derive("notices", k))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut bodies: Vec<&str> = posted.iter().map(|(_, b)| b.as_str()).collect();
        bodies.sort_unstable();
        bodies.dedup();
        assert_eq!(bodies.len(), 4, "{posted:?}");
        assert_eq!(ids.len(), 4, "four messages, four ids: {posted:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nats_down_at_start_and_in_the_middle_loses_nothing() {
        // the source starts while nothing listens: it keeps trying
        let port = 28520;
        let fake = Arc::new(Fake::default());
        let (w, stop) = worker(format!("127.0.0.1:{port}"), fake.clone());
        let errors = w.errors.clone();
        let thread = spawn(w).unwrap();
        until("failures counted", async || errors.get() >= 2).await;
        let mut server = NatsServer::start(port);
        let (js, mut c) = setup(&server).await;
        for i in 0..5 {
            js.publish("filings.new", format!("{i}").into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        until("the first five acknowledged", async || {
            settled(&mut c).await
        })
        .await;
        // an outage in the middle: the store survives, the source comes back by itself
        server.kill();
        let before = errors.get();
        until("the outage noticed", async || errors.get() > before).await;
        server.restart();
        let client = async_nats::connect(server.addr()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        for i in 5..10 {
            js.publish("filings.new", format!("{i}").into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        let mut c: PullConsumer = js
            .get_consumer_from_stream("isogate", "FILINGS")
            .await
            .unwrap();
        until("all ten acknowledged", async || settled(&mut c).await).await;
        stop.send(true).unwrap();
        thread.join().unwrap();
        let mut bodies: Vec<String> = fake.posted().into_iter().map(|(_, b)| b).collect();
        bodies.sort_unstable();
        bodies.dedup();
        let want: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        let mut want_sorted = want.clone();
        want_sorted.sort_unstable();
        assert_eq!(bodies, want_sorted, "none lost or skipped");
    }
}
