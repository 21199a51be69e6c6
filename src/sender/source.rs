//! PLACEHOLDER, replaced whole by the JetStream source: the sending node's intake of
//! messages from a durable JetStream pull consumer (a messages channel's `source`). This
//! version starts nothing; it only gives the interface the node's start-up calls.

use crate::node::Node;
use crate::sender::messages::Messages;
use std::sync::Arc;

/// The running JetStream sources of a node (placeholder: none).
pub struct Sources;

impl Sources {
    /// Stops every source (placeholder: nothing runs).
    pub fn stop(&self) {}
}

/// Why the JetStream sources could not start (placeholder: never).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {}

/// Starts one source per messages channel with a `source` (placeholder: starts nothing).
///
/// # Errors
/// None in this placeholder.
pub fn start(node: Arc<Node>, messages: Arc<Messages>) -> Result<Sources, SourceError> {
    let _ = (node, messages);
    Ok(Sources)
}
