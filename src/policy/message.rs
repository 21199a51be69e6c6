//! The rules of a `messages` channel's policy (its `[messages]` table): the JSON Schema
//! (draft 2020-12) every message must satisfy and the size limit of one message. The
//! policy's text rules, classification markings and personal-data rules apply to every
//! string value of a message (see `crate::inspect::message`).
//!
//! ```toml
//! [messages]
//! schema = "notice.schema.json"   # beside the policy file, or an absolute path
//! max_message_bytes = 65536       # one message's JSON body, 2..=1 MiB
//! ```

use std::path::PathBuf;
use std::sync::Arc;

/// Largest `max_message_bytes` a policy may set (1 MiB).
pub const MAX_MESSAGE_BYTES_CAP: u64 = 1024 * 1024;
/// `max_message_bytes` when the policy does not set it (64 KiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 64 * 1024;

/// A messages policy's own rules.
#[derive(Clone)]
pub struct MessageRules {
    /// The schema file, as resolved (for reports).
    pub schema_file: Option<PathBuf>,
    /// The compiled JSON Schema (draft 2020-12); `None` only when the policy sets none
    /// (`isogate check` refuses that on an outbound channel).
    pub schema: Option<Arc<jsonschema::Validator>>,
    /// Largest JSON body of one message, in bytes.
    pub max_message_bytes: u64,
}

impl std::fmt::Debug for MessageRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageRules")
            .field("schema_file", &self.schema_file)
            .field("schema", &self.schema.is_some())
            .field("max_message_bytes", &self.max_message_bytes)
            .finish()
    }
}
