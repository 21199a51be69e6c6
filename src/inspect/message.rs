//! The message evaluator on either node: one message (a JSON value) against its channel's
//! messages policy, and the shell step that re-checks a whole batch object.
//!
//! ```text
//!  body (compact JSON) ─► size (max_message_bytes) ─► JSON Schema (draft 2020-12)
//!    ─► every string value (object keys too), depth first:
//!         keywords and patterns ─► refuse (keyword_match)
//!         classification markings ─► refuse (classification_marking)
//!         personal data ─► mask that field (mask = true) or refuse (personal_data)
//!    ─► accepted: the body that crosses (masked field by field), the masked fields'
//!       JSON Pointers (RFC 6901), SHA-256 of the body as given and as it crosses
//!  batch object ─► core::message::parse_batch ─► each message as above
//!    ─► any refusal refuses the object; masking rewrites the batch (the masked copy)
//! ```

use crate::core::reason::{Reason, Refusal};
use crate::inspect::{Accepted, InspectError, Masked, Outcome};
use crate::policy::Policy;
use std::path::Path;

/// A message the policy accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedMessage {
    /// The body that crosses: compact JSON, personal data masked where the policy masks.
    pub body: String,
    /// JSON Pointers (RFC 6901) of the string values masking changed, in document order;
    /// empty when nothing was masked.
    pub masked: Vec<String>,
    /// SHA-256 of the body as given (compact).
    pub original_sha256: [u8; 32],
    /// SHA-256 of [`CheckedMessage::body`] (equal to `original_sha256` when unmasked).
    pub sha256: [u8; 32],
}

/// Checks one message (compact JSON text, as `core::message::parse_posted` returns it)
/// against a messages policy. Masking is idempotent: a masked body checks again unchanged.
///
/// # Errors
/// The refusal, with its reason code (`size_limit`, `message_malformed`,
/// `schema_violation`, `keyword_match`, `classification_marking`, `personal_data`) and a
/// detail that names the field (JSON Pointer) and, for a schema, what the schema says.
/// A policy that is not a messages policy refuses every message (`type_refused`).
pub fn check_message(policy: &Policy, body: &str) -> Result<CheckedMessage, Refusal> {
    let _ = (policy, body);
    Err(Refusal::new(
        Reason::TypeRefused,
        "message checks are not built yet",
    ))
}

/// The inspect step for a batch object of a messages channel (the file at `path`, in the
/// spool or the receiver's part file): every message checked with [`check_message`];
/// when masking changed any, the masked batch (same ids, same order) is written to
/// `masked_path` and returned as the [`Masked`] copy (`lines`: messages changed).
///
/// # Errors
/// Reading the batch or writing the masked copy failed.
pub fn inspect_batch(
    policy: &Policy,
    path: &Path,
    masked_path: &Path,
) -> Result<Outcome, InspectError> {
    let _ = (policy, path, masked_path);
    let _: Option<Accepted> = None;
    let _: Option<Masked> = None;
    Ok(Err(Refusal::new(
        Reason::TypeRefused,
        "message checks are not built yet",
    )))
}
