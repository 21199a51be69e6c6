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
//!   ─► every waiting request answered ─► the pipeline (inspect again, seal, route)
//! ```

use crate::core::message::MessageId;
use crate::core::reason::Refusal;

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
    /// The node cannot make messages durable now (disk, spool, audit; HTTP 503).
    #[error("cannot take messages durably now: {0}")]
    Unavailable(String),
}

// PLACEHOLDER of the m-nats branch, so that sender::source compiles before the merge: the
// sender part's `Messages` replaces all of this (take theirs).
/// Placeholder of the message intake (see the sender part).
pub struct Messages {
    _placeholder: (),
}

impl Messages {
    /// Placeholder: takes nothing.
    ///
    /// # Errors
    /// Always [`PostError::Unavailable`].
    pub fn post_each(
        &self,
        _channel: &str,
        _items: Vec<(String, String)>,
    ) -> Result<Vec<Result<Posted, Refusal>>, PostError> {
        Err(PostError::Unavailable("placeholder".into()))
    }
}
