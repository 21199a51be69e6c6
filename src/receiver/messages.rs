//! The receiving node's message log, one per messages channel, in the channel's inbox:
//! the batches that landed, in landing order, each message once, read through the HTTP
//! API (`GET /v1/channels/{channel}/messages`) and by the JetStream delivery.
//!
//! ```text
//!  landed batch ─► drop ids already in the log (message_duplicate)
//!    ─► <inbox>/<batch seq, 20 digits>-<object id>.ndjson   temp + fsync + rename
//!       one line per message: {"id":…,"body":…}; cursor = "<batch seq>.<index>"
//!    ─► message_delivered records ─► waiting readers woken
//!  read(after, limit, wait) ─► messages after the cursor, in order (long-poll when empty)
//!  retention: batch files older than the channel's retention are removed
//! ```

use crate::core::message::{Cursor, MessageId};

/// One message read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogMessage {
    /// Its id.
    pub id: MessageId,
    /// Its position in the log.
    pub cursor: Cursor,
    /// Its body, compact JSON.
    pub body: String,
}

/// What one read returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// The messages after the cursor asked for, in log order.
    pub messages: Vec<LogMessage>,
    /// The cursor to ask for next: the last message's, or the one given when none came
    /// (`None` when the log is empty and none was given).
    pub next: Option<Cursor>,
}

// PLACEHOLDER below, replaced by the message log itself: only what the HTTP API needs to
// compile. No log is ever open here, so every read is refused.

/// Why the message log could not be read (placeholder).
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The message log is not built in this version.
    #[error("the message log is not built in this version")]
    NotBuilt,
}

/// The message log of one received messages channel (placeholder: never opened).
pub struct MessageLog {
    channel: String,
}

impl MessageLog {
    /// The messages after `after` (placeholder: always [`LogError::NotBuilt`]).
    ///
    /// # Errors
    /// Always, in this placeholder.
    pub fn read(
        &self,
        after: Option<Cursor>,
        limit: usize,
        wait: std::time::Duration,
    ) -> Result<Page, LogError> {
        let _ = (after, limit, wait);
        Err(LogError::NotBuilt)
    }

    /// The channel whose log this is.
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

impl crate::receiver::Receiver {
    /// The message log of a received messages channel (placeholder: none is open).
    pub fn message_log(&self, channel: &str) -> Option<std::sync::Arc<MessageLog>> {
        let _ = channel;
        None
    }
}
