//! `isogate run`: a node's lifecycle. [`command`] loads the configuration and opens the
//! node; [`run`] opens nothing itself: it takes an opened [`Node`], builds its sender and
//! receiver, starts the links its channels use, and runs until the shutdown future
//! resolves; then it stops in order, with a last audit checkpoint.
//!
//! ```text
//!  Node ─► Receiver::open ─► recover deliveries ─► quic::recv::serve | diode::recv::start
//!       ─► Sender::open ─► queue ─► route ─► quic::send::run | diode::send::start
//!                          ▲ spool recovery, watch (intake), retry_waiting, approval desk
//!       ─► stream channels: sender::stream (listen sockets) ─► Outgoing per link kind
//!            ─► quic::send::datagrams | the diode's send shell;  receiver.start_streams
//!       ─► checkpoints · reloads (policy files, SIGHUP) · clock watch · /metrics · systemd
//!       ─► the web console, when [console] is configured
//!       ─► messages channels: sender::messages (batches), the message API ([messages]),
//!            JetStream sources (sending) and deliveries (receiving)
//!       ─► the officer's desk (quarantine release and purge requests, keep_days)
//!       ─► a summary a minute (and at stop) · counts of repeated log lines
//! ```

use crate::audit::{Entry, Event};
use crate::cli::process;
use crate::core::stage::Sealed;
use crate::core::wire::LinkKind;
use crate::node::config::Config;
use crate::node::desk::Releaser;
use crate::node::{Node, NodeError};
use crate::ops::status::{self, Probe};
use crate::ops::summary::{SUMMARY_EVERY, Summary};
use crate::ops::systemd;
use crate::receiver::Receiver;
use crate::receiver::release::ReceiveRelease;
use crate::sender::pipeline::Sender;
use crate::sender::release::SendRelease;
use crate::sender::route::{self, Links};
use std::future::Future;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Why a node could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The node's state, directories, watch, audit log or status endpoint failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The diode link could not start.
    #[error(transparent)]
    Diode(#[from] crate::link::diode::DiodeError),
    /// The QUIC endpoint could not be bound.
    #[error(transparent)]
    Link(#[from] crate::keys::tls::LinkError),
    /// The audit log could not be written at start or stop.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// The web console could not start.
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
    /// A sending stream channel could not start (its listen socket, its thread).
    #[error(transparent)]
    StreamSend(#[from] crate::sender::stream::StreamError),
    /// A receiving stream channel could not start (its emitting socket, the timer).
    #[error(transparent)]
    StreamReceive(#[from] crate::receiver::stream::StreamError),
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    /// The message API could not start.
    #[error(transparent)]
    Api(#[from] crate::api::ApiError),
    /// A JetStream source of a messages channel could not start.
    #[error(transparent)]
    Source(#[from] crate::sender::source::SourceError),
    /// A JetStream delivery of a messages channel could not start.
    #[error(transparent)]
    Deliver(#[from] crate::receiver::deliver::DeliverError),
}

/// How often the counts of repeated log lines are said (see [`crate::ops::repeat`]).
const FLUSH_REPEATS: Duration = Duration::from_secs(5);

/// What `/metrics` and `/healthz` see of a running node.
struct NodeProbe {
    node: Arc<Node>,
    sender: Option<Arc<Sender>>,
}

impl Probe for NodeProbe {
    fn health(&self) -> Vec<String> {
        crate::node::health::problems(&self.node)
    }

    fn metrics(&self) -> Vec<u8> {
        crate::node::health::refresh(&self.node);
        if let Some(s) = &self.sender {
            s.refresh_gauges();
        }
        self.node.metrics.encode()
    }
}

/// `isogate run`: loads and reviews the configuration `config`, opens the node and runs it
/// (see [`run`]) on a new runtime until SIGTERM or SIGINT.
///
/// # Errors
/// The configuration has a problem (all of them, one per line), the node cannot be opened,
/// the runtime or the signal handlers cannot start, or as [`run`].
pub fn command(config: &Path) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(config).map_err(|p| anyhow::anyhow!("{p}"))?;
    // SIGTERM and SIGINT are watched before the node opens, so that one sent while it opens
    // or starts stops it cleanly once it has started; a SIGHUP meanwhile changes nothing
    let runtime = process::runtime()?;
    let shutdown = runtime.block_on(async {
        process::catch_hangup()?;
        process::shutdown_signal()
    })?;
    let node = Arc::new(Node::open(cfg)?);
    runtime.block_on(run(node, shutdown))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs a node until `shutdown` resolves.
///
/// # Errors
/// A socket, directory, watch or status endpoint cannot be set up, or the audit log cannot
/// be written at start or stop.
pub async fn run(node: Arc<Node>, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    // QUIC only when a channel uses it: a diode-only node opens no socket that could
    // answer anything
    let endpoint = if node.cfg.channels.iter().any(|c| c.link == LinkKind::Quic) {
        Some(node.keys.bind(node.cfg.node.listen)?)
    } else {
        None
    };
    node.audit.durable(
        Event::ConfigLoaded,
        Entry {
            detail: Some(format!(
                "config {} ({} channels)",
                node.cfg.file.display(),
                node.cfg.channels.len()
            )),
            peer: Some(node.cfg.peer.name.clone()),
            ..Entry::default()
        },
    )?;
    tracing::info!(node = %node.cfg.node.name, zone = %node.cfg.node.zone, listen = %node.cfg.node.listen, "node started");
    for w in &node.cfg.warnings {
        tracing::warn!(warning = %w, "compliance review");
    }
    let layout = crate::node::layout::survey(&node.cfg);
    for (i, shared) in layout.lines().iter().enumerate() {
        tracing::info!(file_system = i + 1, folders = %shared, "folders sharing a file system");
    }
    for cost in &layout.costs {
        tracing::info!(cost = %cost, "a move crosses file systems");
    }

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(checkpoints(node.clone()));
    tasks.spawn(crate::node::clock::watch(node.clone()));
    let summary = Arc::new(std::sync::Mutex::new(Summary::new(&node.metrics)));
    tasks.spawn(summaries(node.clone(), summary.clone()));
    tasks.spawn(reloads(node.clone())?);

    // the receiving side: one pipeline, fed by each link it uses
    let mut _diode_receiver = None;
    let mut receive_release: Option<Arc<dyn Releaser>> = None;
    let mut stream_receiver = None;
    let mut message_receiver = None;
    if node.cfg.receiving().next().is_some() {
        let receiver = Arc::new(Receiver::open(node.clone())?);
        receiver.recover()?;
        // stream channels: emitting sockets bound before any link delivers a frame
        receiver.start_streams()?;
        stream_receiver = Some(receiver.clone());
        message_receiver = Some(receiver.clone());
        receive_release = Some(Arc::new(ReceiveRelease(receiver.clone())));
        tasks.spawn(refresh_waiting(receiver.clone()));
        if let Some(ep) = &endpoint {
            tasks.spawn(crate::link::quic::recv::serve(receiver.clone(), ep.clone()));
        }
        if node.cfg.receiving().any(|c| c.link == LinkKind::Diode) {
            _diode_receiver = Some(crate::link::diode::recv::start(receiver)?);
        }
    }

    // the sending side: intake ─► spool ─► inspect ─► seal ─► route ─► links
    let mut sender = None;
    let mut stream_sender: Option<Arc<crate::sender::stream::Streams>> = None;
    let mut send_release: Option<Arc<dyn Releaser>> = None;
    let mut messages: Option<Arc<crate::sender::messages::Messages>> = None;
    if node.cfg.sending().next().is_some() {
        let s = Arc::new(Sender::open(node.clone())?);
        // the approval desk holds what a channel's [approval] makes wait
        let state = &node.cfg.node.state_dir;
        let desk = Arc::new(crate::sender::approval::Desk::open(state).map_err(|error| {
            NodeError::Dir {
                path: state.clone(),
                error,
            }
        })?);
        s.set_hold(desk.clone());
        let (queue_tx, queue_rx) = mpsc::unbounded_channel::<Sealed>();
        let mut links = Links {
            quic: None,
            diode: None,
        };
        // stream channels: one outgoing queue of frames per link kind they use
        let streams_on = |link: LinkKind| {
            node.cfg
                .sending()
                .any(|c| c.link == link && c.stream.is_some())
        };
        let mut queues = crate::sender::stream::Queues::default();
        let mut quic_outgoing = None;
        if endpoint.is_some() && streams_on(LinkKind::Quic) {
            let (tx, rx) = crate::sender::stream::queue();
            queues.quic = Some(tx);
            quic_outgoing = Some(rx);
        }
        let quic_current: crate::link::quic::send::Current = Arc::default();
        if node.cfg.sending().any(|c| c.link == LinkKind::Diode) {
            // the diode's send shell takes the stream frames too, before any object data
            let diode_outgoing = streams_on(LinkKind::Diode).then(|| {
                let (tx, rx) = crate::sender::stream::queue();
                queues.diode = Some(tx);
                rx
            });
            let (tx, rx) = std::sync::mpsc::channel();
            crate::link::diode::send::start(s.clone(), rx, diode_outgoing)?;
            links.diode = Some(tx);
        }
        if let Some(ep) = &endpoint
            && node.cfg.sending().any(|c| c.link == LinkKind::Quic)
        {
            let (quic_tx, quic_rx) = mpsc::unbounded_channel::<Sealed>();
            tasks.spawn(crate::link::quic::send::run(
                s.clone(),
                ep.clone(),
                queue_tx.clone(),
                quic_rx,
                quic_current.clone(),
            ));
            links.quic = Some(quic_tx);
        }
        tasks.spawn(route::route(node.clone(), queue_rx, links));
        s.recover(&queue_tx)?;
        let mut watch = crate::sender::watch::Watch::start(s.clone(), queue_tx.clone())?;
        // messages channels: batches from the API, the outbox files and JetStream
        if node.cfg.sending().any(|c| c.is_messages()) {
            let m = crate::sender::messages::Messages::start(s.clone(), queue_tx.clone())?;
            watch.set_messages(m.clone());
            messages = Some(m);
        }
        tasks.spawn(watch.run());
        send_release = Some(Arc::new(SendRelease {
            sender: s.clone(),
            queue: queue_tx.clone(),
        }));
        // the approval desk: approvers' decisions, expiry ([approval] in a channel policy)
        tasks.spawn(crate::sender::approval::serve(
            desk,
            s.clone(),
            queue_tx.clone(),
        ));
        tasks.spawn(s.clone().retry_waiting(queue_tx));
        if node.cfg.sending().any(|c| c.stream.is_some()) {
            let streams = crate::sender::stream::Streams::start(node.clone(), &queues)?;
            if let Some(outgoing) = quic_outgoing {
                crate::link::quic::send::datagrams(streams.clone(), outgoing, quic_current)
                    .map_err(RunError::Thread)?;
            }
            stream_sender = Some(streams);
        }
        sender = Some(s);
    }
    // the officer's requests on the quarantine (release, purge), and its ageing out
    tasks.spawn(crate::node::desk::run(
        node.clone(),
        send_release,
        receive_release,
    ));

    let status = match node.cfg.metrics.listen {
        Some(addr) => {
            let probe = Arc::new(NodeProbe {
                node: node.clone(),
                sender: sender.clone(),
            });
            Some(status::serve(probe, addr).map_err(|e| NodeError::Status {
                addr,
                why: e.to_string(),
            })?)
        }
        None => None,
    };
    // the officers' web console, when [console] is configured; stopped with the node
    let console = match &node.cfg.console {
        Some(c) => Some(crate::console::start(node.clone(), c)?),
        None => None,
    };
    // the message API, when [messages] is configured; JetStream sources and deliveries
    let api = match &node.cfg.messages {
        Some(c) => Some(crate::api::start(
            node.clone(),
            c,
            messages.clone(),
            message_receiver.clone(),
        )?),
        None => None,
    };
    let sources = match &messages {
        Some(m)
            if node
                .cfg
                .sending()
                .any(|c| c.messages.as_ref().is_some_and(|m| m.source.is_some())) =>
        {
            Some(crate::sender::source::start(node.clone(), m.clone())?)
        }
        _ => None,
    };
    let deliveries = match &message_receiver {
        Some(r)
            if node
                .cfg
                .receiving()
                .any(|c| c.messages.as_ref().is_some_and(|m| m.deliver.is_some())) =>
        {
            Some(crate::receiver::deliver::start(r.clone())?)
        }
        _ => None,
    };
    systemd::notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&format!(
            "node {} up; {} channel(s)",
            node.cfg.node.name,
            node.cfg.channels.len()
        )),
    ]);
    if let Some(interval) = systemd::watchdog_interval() {
        tasks.spawn(systemd::watchdog(interval / 2));
    }

    shutdown.await;
    systemd::notify(&[sd_notify::NotifyState::Stopping]);
    drop(status);
    drop(console);
    // no new message: the API and the sources stop, the open batches are made durable
    // and answered, then the deliveries stop
    drop(api);
    if let Some(s) = &sources {
        s.stop();
    }
    if let Some(m) = &messages {
        m.stop();
    }
    if let Some(d) = &deliveries {
        d.stop();
    }
    tracing::info!("stopping");
    // live streams end with the node: their stream_stopped records come before `stopped`
    if let Some(s) = &stream_sender {
        s.stop();
    }
    if let Some(r) = &stream_receiver {
        r.stop_streams();
    }
    node.audit.durable(Event::Stopped, Entry::default())?;
    // the last checkpoint covers the whole log; give it a moment to reach the peer
    if node.audit.checkpoint(true)?.is_some() && sender.is_some() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tasks.abort_all();
    if let Some(ep) = &endpoint {
        ep.close(0u32.into(), b"stopping");
        let _ = tokio::time::timeout(Duration::from_secs(2), ep.wait_idle()).await;
    }
    // and a last one over whatever the closing link added
    node.audit.checkpoint(true)?;
    // what happened since the last summary
    summary
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .say(&node.metrics);
    crate::ops::repeat::flush();
    Ok(())
}

/// Says the periodic summary (when anything happened) and the counts of repeated lines,
/// until aborted.
async fn summaries(node: Arc<Node>, summary: Arc<std::sync::Mutex<Summary>>) {
    let mut tick = tokio::time::interval(FLUSH_REPEATS);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        crate::ops::repeat::flush();
        if last.elapsed() >= SUMMARY_EVERY {
            last = tokio::time::Instant::now();
            summary
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .say(&node.metrics);
        }
    }
}

/// Ends, every 5 s, a spell of objects waiting for room whose waiters went stale.
async fn refresh_waiting(receiver: Arc<Receiver>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tick.tick().await;
        // file work (the message logs' retention): off the runtime's workers
        let r = receiver.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || r.refresh_waiting()).await {
            tracing::error!(error = %e, "the refresh of waiting objects failed");
        }
    }
}

/// The JSON Schema files the policies in force name (messages channels), absolute.
fn schema_files(node: &Node) -> Vec<std::path::PathBuf> {
    node.cfg
        .channels
        .iter()
        .filter_map(|c| {
            node.policies
                .get(&c.name)
                .messages
                .as_ref()?
                .schema_file
                .clone()
        })
        .collect()
}

/// Reloads the policies on SIGHUP and when a policy file, or a JSON Schema file a policy in
/// force names, changes (one in a folder no policy file or schema named at start is read
/// again at SIGHUP); SIGHUP also reloads the keys.
fn reloads(node: Arc<Node>) -> Result<impl Future<Output = ()>, NodeError> {
    use notify::Watcher;
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut files: Vec<_> = node
        .cfg
        .channels
        .iter()
        .map(|c| c.policy_file.clone())
        .collect();
    let watched = files.clone();
    files.extend(schema_files(&node));
    let notify_tx = tx.clone();
    let for_schemas = node.clone();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        // a change, not a read: the reload's own reads of the files must not trigger it again
        if let Ok(ev) = ev
            && changes(&ev.kind)
            && ev
                .paths
                .iter()
                .any(|p| watched.contains(p) || schema_files(&for_schemas).iter().any(|s| s == p))
        {
            let _ = notify_tx.send(());
        }
    })?;
    let mut dirs: Vec<_> = files.iter().filter_map(|f| f.parent()).collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        watcher.watch(d, notify::RecursiveMode::NonRecursive)?;
    }
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).map_err(
        |error| NodeError::Dir {
            path: node.cfg.file.clone(),
            error,
        },
    )?;
    Ok(async move {
        let _watcher = watcher;
        loop {
            tokio::select! {
                Some(()) = rx.recv() => {
                    // an editor writes in several steps: let them settle
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    while rx.try_recv().is_ok() {}
                }
                Some(()) = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the keys and the policies");
                    let n = node.clone();
                    let _ = tokio::task::spawn_blocking(move || crate::node::rotate::reload(&n)).await;
                }
                else => return,
            }
            let n = node.clone();
            let _ = tokio::task::spawn_blocking(move || n.reload_policies()).await;
        }
    })
}

/// Whether a file event may have changed a file's content: created, written, renamed,
/// removed, or closed after writing. Opens, reads and closes after reading are not.
fn changes(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode};
    match kind {
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => !matches!(
            kind,
            EventKind::Modify(notify::event::ModifyKind::Metadata(_))
        ),
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        _ => false,
    }
}

/// Writes checkpoints of the audit log as its policy says, until aborted.
async fn checkpoints(node: Arc<Node>) {
    let period = (node.audit.policy().interval_ms / 10).clamp(10, 1000);
    let mut tick = tokio::time::interval(Duration::from_millis(period));
    loop {
        tick.tick().await;
        let n = node.clone();
        match tokio::task::spawn_blocking(move || n.audit.checkpoint(false)).await {
            Ok(Err(e)) => tracing::error!(error = %e, "cannot write an audit checkpoint"),
            Err(e) => tracing::error!(error = %e, "checkpoint task failed"),
            Ok(Ok(_)) => {}
        }
    }
}
