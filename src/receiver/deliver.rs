//! The receiving node's JetStream delivery: for each messages channel with `deliver =
//! "nats://HOST:PORT/SUBJECT"`, every message of the channel's log is published to the
//! subject, in log order, with its message id as `Nats-Msg-Id` (NATS JetStream message
//! deduplication), and the position reached is kept in a durable cursor file.
//!
//! ```text
//!  <state_dir>/deliver/<channel>: "B.I\n", the last message acknowledged (absent: none)
//!  loop: MessageLog::read(after cursor, ≤ 256, long-poll 1 s)
//!     ─► publish each (header Nats-Msg-Id = id), pipelined ─► await each PubAck in order
//!     ─► cursor := the last message acknowledged, written durably (temp, fsync, rename)
//!     ─► messages_nats_published (not counting those JetStream found duplicate)
//!  NATS away (not connected, publish or PubAck failed) ─► messages_nats_errors,
//!     back-off ≤ 5 s, the same messages again from the cursor
//! ```
//!
//! Exactly once in the stream: the cursor only moves past acknowledged messages, so
//! nothing is skipped; a message published again (a PubAck lost, a crash before the cursor
//! was written) has the same `Nats-Msg-Id`, which JetStream drops within the stream's
//! duplicate window (two minutes unless the stream says otherwise).

use crate::core::message::Cursor;
use crate::node::config::NatsDeliver;
use crate::node::nats::{self, Backoff};
use crate::receiver::Receiver;
use crate::receiver::messages::{LogError, MessageLog, Page};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;

/// Most messages read from the log and published in one round.
const PAGE: usize = 256;
/// How long one read of the log waits for a message when there is none.
const LOG_WAIT: Duration = Duration::from_secs(1);
/// The longest cursor file read (`"<20 digits>.<10 digits>\n"`, with room).
const MAX_CURSOR_BYTES: u64 = 64;

/// Why the deliveries could not start.
#[derive(Debug, Error)]
pub enum DeliverError {
    /// The channel has a `deliver` but the receiver keeps no message log for it.
    #[error("channel {0}: no message log to deliver from")]
    NoLog(String),
    /// The cursor file could not be read or made.
    #[error("delivery cursor {path}: {source}")]
    Cursor {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The cursor file holds something that is not a cursor.
    #[error(
        "delivery cursor {path}: {source} (remove the file to deliver the log again from its start; JetStream drops what it already holds within its duplicate window)"
    )]
    BadCursor {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: crate::core::message::BadCursor,
    },
    /// The thread or the runtime of a channel's delivery could not be made.
    #[error("starting the JetStream delivery of channel {channel}: {source}")]
    Start {
        /// The channel.
        channel: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// The running deliveries, one thread per channel with a `deliver`; [`Deliveries::stop`]
/// ends them.
pub struct Deliveries {
    stop: watch::Sender<bool>,
    channels: Vec<String>,
}

impl Deliveries {
    /// The channels published to JetStream.
    pub fn channels(&self) -> &[String] {
        &self.channels
    }

    /// Asks every delivery to stop after the step it is in; returns at once. What was
    /// published but not yet recorded in the cursor is published again at the next start
    /// (JetStream drops the copies).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for Deliveries {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a delivery reads: the channel's message log, or a test's.
pub(crate) trait Log: Send + Sync + 'static {
    /// [`MessageLog::read`].
    fn page(&self, after: Option<Cursor>, limit: usize, wait: Duration) -> Result<Page, LogError>;
}

impl Log for MessageLog {
    fn page(&self, after: Option<Cursor>, limit: usize, wait: Duration) -> Result<Page, LogError> {
        self.read(after, limit, wait)
    }
}

/// The cursor file of `channel`'s delivery.
pub fn cursor_path(state_dir: &Path, channel: &str) -> PathBuf {
    state_dir.join("deliver").join(channel)
}

/// Reads a cursor file: `None` when it does not exist.
///
/// # Errors
/// The file cannot be read, or holds no cursor.
pub fn read_cursor(path: &Path) -> Result<Option<Cursor>, DeliverError> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(DeliverError::Cursor {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut text = String::new();
    file.take(MAX_CURSOR_BYTES)
        .read_to_string(&mut text)
        .map_err(|source| DeliverError::Cursor {
            path: path.to_path_buf(),
            source,
        })?;
    text.trim()
        .parse()
        .map(Some)
        .map_err(|source| DeliverError::BadCursor {
            path: path.to_path_buf(),
            source,
        })
}

/// Writes a cursor file durably (temp file, fsync, rename, fsync of the directory).
///
/// # Errors
/// Any of those steps fails.
pub fn write_cursor(path: &Path, cursor: Cursor) -> std::io::Result<()> {
    crate::fsx::write_durable(path, format!("{cursor}\n").as_bytes())
}

/// Starts one delivery per messages channel this node receives that has a `deliver`.
/// Returns at once, also when NATS is unreachable: each delivery connects in the
/// background and publishes once it can.
///
/// # Errors
/// A channel's log is missing, its cursor file cannot be read, or a thread cannot start.
pub fn start(receiver: Arc<Receiver>) -> Result<Deliveries, DeliverError> {
    let node = receiver.node.clone();
    let (stop, stopped) = watch::channel(false);
    let mut channels = Vec::new();
    for c in node.cfg.receiving() {
        let Some(m) = &c.messages else { continue };
        let Some(deliver) = &m.deliver else { continue };
        let log = receiver
            .message_log(&c.name)
            .ok_or_else(|| DeliverError::NoLog(c.name.clone()))?;
        let path = cursor_path(&node.cfg.node.state_dir, &c.name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| DeliverError::Cursor {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let cursor = read_cursor(&path)?;
        let worker = Worker {
            channel: c.name.clone(),
            node_name: node.cfg.node.name.clone(),
            deliver: deliver.clone(),
            log,
            cursor_file: path,
            cursor,
            published: node
                .metrics
                .messages_nats_published
                .with_label_values(&[c.name.as_str()]),
            errors: node
                .metrics
                .messages_nats_errors
                .with_label_values(&[c.name.as_str()]),
            stop: stopped.clone(),
        };
        spawn(worker).map_err(|source| DeliverError::Start {
            channel: c.name.clone(),
            source,
        })?;
        tracing::info!(channel = %c.name, server = %deliver.server, subject = %deliver.subject, after = ?cursor.map(|c| c.to_string()), "publishing messages to JetStream");
        channels.push(c.name.clone());
    }
    Ok(Deliveries { stop, channels })
}

/// Runs `worker` on its own thread and current-thread runtime.
pub(crate) fn spawn<L: Log>(worker: Worker<L>) -> std::io::Result<std::thread::JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(format!("nats-deliver-{}", worker.channel))
        .spawn(move || rt.block_on(worker.run()))
}

/// Why one round of a delivery did not complete; tried again after a back-off.
#[derive(Debug, Error)]
pub(crate) enum RoundError {
    /// The client is not connected to the NATS server now.
    #[error("not connected to the NATS server")]
    Down,
    /// The log could not be read.
    #[error("reading the message log: {0}")]
    Log(String),
    /// The cursor names a batch the log never gave (its inbox rebuilt, or its numbering
    /// record lost): nothing after it would ever be delivered.
    #[error("{0}")]
    CursorAhead(String),
    /// The blocking thread of a read ended abnormally.
    #[error("log reader thread: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// A publish could not be sent.
    #[error("publish: {0}")]
    Publish(#[from] async_nats::jetstream::context::PublishError),
    /// The cursor could not be written (the messages are published again; JetStream
    /// drops the copies).
    #[error("writing the delivery cursor: {0}")]
    Cursor(#[from] std::io::Error),
}

/// One channel's delivery.
pub(crate) struct Worker<L: Log> {
    pub(crate) channel: String,
    pub(crate) node_name: String,
    pub(crate) deliver: NatsDeliver,
    pub(crate) log: Arc<L>,
    pub(crate) cursor_file: PathBuf,
    pub(crate) cursor: Option<Cursor>,
    pub(crate) published: prometheus::IntCounter,
    pub(crate) errors: prometheus::IntCounter,
    pub(crate) stop: watch::Receiver<bool>,
}

impl<L: Log> Worker<L> {
    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    async fn run(mut self) {
        let client = match nats::connect(&self.deliver.server, &self.node_name).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(channel = %self.channel, error = %e, "cannot use the JetStream delivery");
                return;
            }
        };
        let js = nats::jetstream(client.clone());
        let mut backoff = Backoff::default();
        let mut stop = self.stop.clone();
        while !self.stopped() {
            let round = tokio::select! {
                r = self.round(&client, &js) => r,
                _ = stop.changed() => break,
            };
            match round {
                Ok(()) => {
                    if backoff.succeeded() {
                        tracing::info!(channel = %self.channel, server = %self.deliver.server, "JetStream delivery reachable again");
                    }
                }
                Err(e) => {
                    if !matches!(e, RoundError::Log(_) | RoundError::Join(_)) {
                        self.errors.inc();
                    }
                    let (wait, first) = backoff.failed();
                    if let RoundError::CursorAhead(why) = &e {
                        // the operator's to mend: said at ERROR, with the fix
                        crate::ops::repeat::error_repeated!("receiver.deliver.cursor", &self.channel;
                            channel = %self.channel, cursor = %self.cursor_file.display(), error = %why,
                            "the JetStream delivery's cursor is past the end of the message log; remove the cursor file to deliver the log again from its start (JetStream drops what it already holds within its duplicate window)");
                    } else if first {
                        tracing::warn!(channel = %self.channel, server = %self.deliver.server, error = %e, "JetStream delivery failed; trying again with back-off");
                    } else {
                        tracing::debug!(channel = %self.channel, error = %e, "JetStream delivery still failing");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => break,
                    }
                }
            }
        }
        tracing::info!(channel = %self.channel, "JetStream delivery stopped");
    }

    /// One page of the log: read, publish, await the acknowledgements, move the cursor.
    async fn round(
        &mut self,
        client: &async_nats::Client,
        js: &async_nats::jetstream::Context,
    ) -> Result<(), RoundError> {
        if client.connection_state() != async_nats::connection::State::Connected {
            return Err(RoundError::Down);
        }
        let log = self.log.clone();
        let after = self.cursor;
        let page = tokio::task::spawn_blocking(move || log.page(after, PAGE, LOG_WAIT))
            .await?
            .map_err(|e| match e {
                LogError::CursorAhead { .. } => RoundError::CursorAhead(e.to_string()),
                e => RoundError::Log(e.to_string()),
            })?;
        if page.messages.is_empty() {
            return Ok(());
        }
        // pipelined: every publish sent, then the acknowledgements awaited in log order
        let mut pending = Vec::with_capacity(page.messages.len());
        let mut failure = None;
        for m in &page.messages {
            let publish = async_nats::jetstream::message::PublishMessage::build()
                .payload(bytes::Bytes::from(m.body.clone().into_bytes()))
                .message_id(m.id.to_string());
            match js.send_publish(self.deliver.subject.clone(), publish).await {
                Ok(ack) => pending.push((m.cursor, ack)),
                Err(e) => {
                    failure = Some(RoundError::Publish(e));
                    break;
                }
            }
        }
        let mut reached = None;
        let mut fresh = 0u64;
        for (cursor, ack) in pending {
            match ack.await {
                Ok(a) => {
                    reached = Some(cursor);
                    if !a.duplicate {
                        fresh += 1;
                    }
                }
                Err(e) => {
                    failure.get_or_insert(RoundError::Publish(e));
                    break;
                }
            }
        }
        // counted once acknowledged, whether or not the cursor can be written
        self.published.inc_by(fresh);
        if let Some(cursor) = reached {
            write_cursor(&self.cursor_file, cursor)?;
            self.cursor = Some(cursor);
        }
        match failure {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::MessageId;
    use crate::node::nats::testing::{NatsServer, until};
    use crate::receiver::messages::LogMessage;
    use async_nats::jetstream::stream;
    use std::sync::Mutex;

    /// The log of these tests: a list that grows, read like the message log.
    #[derive(Default)]
    struct FakeLog(Mutex<Vec<LogMessage>>);

    impl FakeLog {
        fn append(&self, bodies: std::ops::Range<u32>) {
            let mut v = self.0.lock().unwrap();
            for i in bodies {
                v.push(LogMessage {
                    id: MessageId::derive("filings", &format!("k#{i}")),
                    cursor: Cursor {
                        batch: u64::from(i / 4 + 1),
                        index: i % 4,
                    },
                    body: format!("{{\"n\":{i}}}"),
                });
            }
        }
    }

    impl Log for FakeLog {
        fn page(
            &self,
            after: Option<Cursor>,
            limit: usize,
            wait: Duration,
        ) -> Result<Page, LogError> {
            let messages: Vec<LogMessage> = self
                .0
                .lock()
                .unwrap()
                .iter()
                .filter(|m| after.is_none_or(|a| m.cursor > a))
                .take(limit)
                .cloned()
                .collect();
            if messages.is_empty() {
                std::thread::sleep(wait.min(Duration::from_millis(50)));
            }
            let next = messages.last().map(|m| m.cursor).or(after);
            Ok(Page { messages, next })
        }
    }

    struct Running {
        stop: watch::Sender<bool>,
        thread: std::thread::JoinHandle<()>,
        published: prometheus::IntCounter,
        errors: prometheus::IntCounter,
    }

    impl Running {
        fn stop(self) {
            self.stop.send(true).unwrap();
            self.thread.join().unwrap();
        }
    }

    fn run(server: String, log: Arc<FakeLog>, cursor_file: &Path) -> Running {
        let (stop, stopped) = watch::channel(false);
        let published = prometheus::IntCounter::new("p", "p").unwrap();
        let errors = prometheus::IntCounter::new("e", "e").unwrap();
        let w = Worker {
            channel: "filings".into(),
            node_name: "court".into(),
            deliver: NatsDeliver {
                server,
                subject: "court.filings".into(),
            },
            log,
            cursor_file: cursor_file.to_path_buf(),
            cursor: read_cursor(cursor_file).unwrap(),
            published: published.clone(),
            errors: errors.clone(),
            stop: stopped,
        };
        Running {
            stop,
            thread: spawn(w).unwrap(),
            published,
            errors,
        }
    }

    async fn destination(server: &NatsServer) -> stream::Stream {
        let client = async_nats::connect(server.addr()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.get_or_create_stream(stream::Config {
            name: "COURT".into(),
            subjects: vec!["court.>".into()],
            ..Default::default()
        })
        .await
        .unwrap()
    }

    async fn count(s: &mut stream::Stream) -> u64 {
        s.info().await.map(|i| i.state.messages).unwrap_or(0)
    }

    /// (Nats-Msg-Id, body) of every message in the stream, in order.
    async fn contents(s: &stream::Stream) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let last = s.get_info().await.unwrap().state.last_sequence;
        for seq in 1..=last {
            let m = s.get_raw_message(seq).await.unwrap();
            let id = m.headers.get("Nats-Msg-Id").unwrap().as_str().to_string();
            out.push((id, String::from_utf8(m.payload.to_vec()).unwrap()));
        }
        out
    }

    fn expected(n: u32) -> Vec<(String, String)> {
        (0..n)
            .map(|i| {
                (
                    MessageId::derive("filings", &format!("k#{i}")).to_string(),
                    format!("{{\"n\":{i}}}"),
                )
            })
            .collect()
    }

    #[test]
    fn cursor_file_round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = cursor_path(dir.path(), "filings");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        assert_eq!(read_cursor(&path).unwrap(), None);
        let c = Cursor {
            batch: 12,
            index: 3,
        };
        write_cursor(&path, c).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "12.3\n");
        assert_eq!(read_cursor(&path).unwrap(), Some(c));
        std::fs::write(&path, "twelve").unwrap();
        assert!(matches!(
            read_cursor(&path),
            Err(DeliverError::BadCursor { .. })
        ));
        std::fs::write(&path, "1".repeat(100)).unwrap();
        assert!(read_cursor(&path).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn published_once_each_with_its_id_across_restarts_and_outages() {
        let mut server = NatsServer::start(28530);
        let mut dst = destination(&server).await;
        let dir = tempfile::tempdir().unwrap();
        let cursor_file = cursor_path(dir.path(), "filings");
        std::fs::create_dir_all(cursor_file.parent().unwrap()).unwrap();
        let log = Arc::new(FakeLog::default());
        log.append(0..10);
        let r = run(server.addr(), log.clone(), &cursor_file);
        until("ten in the stream", async || count(&mut dst).await == 10).await;
        until("the cursor at the tenth", async || {
            read_cursor(&cursor_file).unwrap() == Some(Cursor { batch: 3, index: 1 })
        })
        .await;
        assert_eq!(r.published.get(), 10);
        r.stop();
        assert_eq!(contents(&dst).await, expected(10));

        // the cursor lost (a crash before it was written): all published again, and
        // JetStream drops every copy by its Nats-Msg-Id
        std::fs::remove_file(&cursor_file).unwrap();
        log.append(10..12);
        let r = run(server.addr(), log.clone(), &cursor_file);
        until("the cursor at the twelfth", async || {
            read_cursor(&cursor_file).unwrap() == Some(Cursor { batch: 3, index: 3 })
        })
        .await;
        assert_eq!(r.published.get(), 2, "only the two new ones are fresh");
        assert_eq!(count(&mut dst).await, 12);

        // NATS away in the middle: errors counted, nothing skipped, delivered when back
        server.kill();
        let before = r.errors.get();
        until("the outage noticed", async || r.errors.get() > before).await;
        log.append(12..30);
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.restart();
        let mut dst = destination(&server).await;
        until("thirty in the stream", async || count(&mut dst).await == 30).await;
        until("the cursor at the thirtieth", async || {
            read_cursor(&cursor_file).unwrap() == Some(Cursor { batch: 8, index: 1 })
        })
        .await;
        r.stop();
        assert_eq!(contents(&dst).await, expected(30));
    }
}
