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

// PLACEHOLDER of the m-nats branch, so that receiver::deliver compiles before the merge: the
// receiver part's `MessageLog`, `LogError` and `Receiver::message_log` replace all of this
// (take theirs).
/// Placeholder of the message log (see the receiver part).
pub struct MessageLog {
    _placeholder: (),
}

/// Placeholder of the message log's error.
#[derive(Debug, thiserror::Error)]
#[error("placeholder")]
pub struct LogError;

impl MessageLog {
    /// Placeholder: an empty page.
    ///
    /// # Errors
    /// Never.
    pub fn read(
        &self,
        after: Option<Cursor>,
        _limit: usize,
        _wait: std::time::Duration,
    ) -> Result<Page, LogError> {
        Ok(Page {
            messages: Vec::new(),
            next: after,
        })
    }

    /// Placeholder: no channel.
    pub fn channel(&self) -> &str {
        ""
    }
}

impl super::Receiver {
    /// Placeholder: no log.
    pub fn message_log(&self, _channel: &str) -> Option<std::sync::Arc<MessageLog>> {
        None
    }
}
