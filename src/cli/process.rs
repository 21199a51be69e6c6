//! What every `isogate` process sets up around its command: the log on standard error, the
//! async runtime of the long-running commands (`run`, `demo`) and the shutdown signal that
//! stops them.

use anyhow::{Context, Result};

/// The format of the log on standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Starts logging to standard error in `format`, filtered by `RUST_LOG`, or by
/// `default_level` when `RUST_LOG` is unset or invalid.
pub fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The multi-threaded async runtime the long-running commands run on.
///
/// # Errors
/// The runtime cannot be built (threads or the I/O driver cannot start).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Watches SIGTERM and SIGINT from now on, and returns a future that resolves at the first
/// one.
///
/// The handlers are installed when this is called, not when the future is first polled, so
/// that a signal sent while a node is still starting stops it cleanly instead of killing it
/// with the default action. Call it inside `runtime` before anything starts.
///
/// # Errors
/// A signal handler cannot be installed.
pub fn shutdown_signal() -> Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Takes SIGHUP away from its default action (ending the process) from now on, so that a
/// reload asked for while a node still starts does not kill it; the node watches SIGHUP
/// itself once it runs. The handler stays for the life of the process (tokio never removes
/// one), whatever becomes of the stream dropped here.
///
/// # Errors
/// The signal handler cannot be installed.
pub fn catch_hangup() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup())
        .map(drop)
        .context("cannot watch SIGHUP")
}
