//! PLACEHOLDER, replaced whole by the JetStream delivery: the receiving node's publication
//! of each message of a messages channel's log to its `deliver` subject. This version
//! starts nothing; it only gives the interface the node's start-up calls.

use crate::receiver::Receiver;
use std::sync::Arc;

/// The running JetStream deliveries of a node (placeholder: none).
pub struct Deliveries;

impl Deliveries {
    /// Stops every delivery (placeholder: nothing runs).
    pub fn stop(&self) {}
}

/// Why the JetStream deliveries could not start (placeholder: never).
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {}

/// Starts one delivery per messages channel with a `deliver` (placeholder: starts nothing).
///
/// # Errors
/// None in this placeholder.
pub fn start(receiver: Arc<Receiver>) -> Result<Deliveries, DeliverError> {
    let _ = receiver;
    Ok(Deliveries)
}
