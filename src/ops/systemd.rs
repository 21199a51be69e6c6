//! systemd's service notifications (`sd_notify(3)`): readiness, reloads, the watchdog and
//! stopping. Without a notification socket (not started by systemd) every call is a no-op.

use std::time::Duration;

/// Tells systemd (when it started us with a notification socket) how the node is doing.
pub fn notify(states: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "cannot notify systemd");
    }
}

/// The watchdog interval systemd asked for (`WatchdogSec=`), if any.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

/// Tells systemd's watchdog the node is alive, every `every` (at least 100 ms) until the
/// task is aborted: a hung runtime stops these and systemd restarts the service.
pub async fn watchdog(every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    loop {
        tick.tick().await;
        notify(&[sd_notify::NotifyState::Watchdog]);
    }
}
