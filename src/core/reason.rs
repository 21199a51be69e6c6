//! Stable reason codes for every refusal, and the `Refusal` value that carries one.
//!
//! A refusal is not an error: it is a verdict about an object, audited, counted and sent to
//! quarantine. The codes are part of the interface (README, audit log, metrics labels) and
//! never change meaning once released.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why an object was refused. `as_str` gives the stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The outbox entry is a symbolic link; it is never followed.
    Symlink,
    /// The outbox entry is a regular file with more than one hard link.
    HardLink,
    /// The outbox entry is a directory, FIFO, socket or device.
    NotRegularFile,
    /// The file name is not valid UTF-8.
    NameNotUtf8,
    /// The file name breaks the channel's name rules (length, characters, reserved names).
    NameRefused,
    /// The file extension is not on the channel's list.
    ExtensionRefused,
    /// The file is smaller or larger than the channel allows.
    SizeLimit,
    /// The content type, decided from the content, is not on the channel's allow-list.
    TypeRefused,
    /// The content type does not agree with the file extension.
    TypeMismatch,
    /// The manifest signature does not verify against the peer's pinned key.
    BadSignature,
    /// The manifest or frame is malformed or inconsistent.
    BadManifest,
    /// The object names a channel this node does not receive from its peer.
    WrongChannel,
    /// A chunk of content does not match its hash in the manifest.
    ChunkHash,
    /// The whole content does not match its hash (SHA-256, or SM3 under `gm`) in the
    /// manifest.
    ContentHash,
    /// The stream ended before, or carried more than, the size in the manifest.
    SizeMismatch,
    /// The receiving node refused the object before reading its content.
    PeerRefused,
    /// An archive breaks a limit: nesting depth, entry count, expanded size or expansion ratio.
    ArchiveLimit,
    /// An archive entry has an absolute path, a `..` component, or is a link or device.
    ArchivePath,
    /// An archive that two readers could see differently: bytes outside its entries, a local
    /// header that disagrees with the central directory, two end records, duplicate names.
    ArchiveAmbiguous,
    /// The content claims a type but cannot be read as one (a corrupt or encrypted archive, document or PDF).
    ContentUnreadable,
    /// Text that is neither UTF-8, UTF-16 nor GB18030, holds a control character (as a
    /// binary file does, anywhere in it), or has a line too long to scan.
    TextEncoding,
    /// A document carries active content the channel refuses: PDF JavaScript, launch actions or embedded files, office macros.
    ActiveContent,
    /// The text matches one of the channel's keyword or regular-expression rules.
    KeywordMatch,
    /// The text carries a classification marking (绝密, 机密, 秘密) on a channel toward a lower zone.
    ClassificationMarking,
    /// The content carries sensitive personal data the channel refuses (resident ID, mobile or bank card number, e-mail address).
    PersonalData,
    /// A file valid as its type carries a second file after its end or inside its padding (data after a JPEG's EOI, a PNG's IEND, an MP4's last box, a zip in an MP4 `free` box).
    Polyglot,
    /// The antivirus found a signature in the content.
    Malware,
    /// The antivirus could not scan the object within the channel's waiting time; it never crosses unscanned.
    ScanFailed,
    /// An approver rejected the object (channel with `[approval]`); it never crosses.
    ApprovalRejected,
    /// The object waited longer than the channel's `[approval] expire_after` for its approvals.
    ApprovalExpired,
    /// The object's approvals are missing, too few, forged, repeated or from a key the receiver does not pin.
    ApprovalMissing,
    /// A message is not JSON (RFC 8259), not one JSON value per line (NDJSON), or a batch
    /// of messages is not in the gateway's batch form.
    MessageMalformed,
    /// A message does not satisfy its channel's JSON Schema (draft 2020-12).
    SchemaViolation,
}

impl Reason {
    /// Every reason, in documentation order.
    pub const ALL: [Reason; 33] = [
        Reason::Symlink,
        Reason::HardLink,
        Reason::NotRegularFile,
        Reason::NameNotUtf8,
        Reason::NameRefused,
        Reason::ExtensionRefused,
        Reason::SizeLimit,
        Reason::TypeRefused,
        Reason::TypeMismatch,
        Reason::BadSignature,
        Reason::BadManifest,
        Reason::WrongChannel,
        Reason::ChunkHash,
        Reason::ContentHash,
        Reason::SizeMismatch,
        Reason::PeerRefused,
        Reason::ArchiveLimit,
        Reason::ArchivePath,
        Reason::ArchiveAmbiguous,
        Reason::ContentUnreadable,
        Reason::TextEncoding,
        Reason::ActiveContent,
        Reason::KeywordMatch,
        Reason::ClassificationMarking,
        Reason::PersonalData,
        Reason::Polyglot,
        Reason::Malware,
        Reason::ScanFailed,
        Reason::ApprovalRejected,
        Reason::ApprovalExpired,
        Reason::ApprovalMissing,
        Reason::MessageMalformed,
        Reason::SchemaViolation,
    ];

    /// The stable code written to the audit log, reason files and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Symlink => "symlink",
            Reason::HardLink => "hard_link",
            Reason::NotRegularFile => "not_regular_file",
            Reason::NameNotUtf8 => "name_not_utf8",
            Reason::NameRefused => "name_refused",
            Reason::ExtensionRefused => "extension_refused",
            Reason::SizeLimit => "size_limit",
            Reason::TypeRefused => "type_refused",
            Reason::TypeMismatch => "type_mismatch",
            Reason::BadSignature => "bad_signature",
            Reason::BadManifest => "bad_manifest",
            Reason::WrongChannel => "wrong_channel",
            Reason::ChunkHash => "chunk_hash",
            Reason::ContentHash => "content_hash",
            Reason::SizeMismatch => "size_mismatch",
            Reason::PeerRefused => "peer_refused",
            Reason::ArchiveLimit => "archive_limit",
            Reason::ArchivePath => "archive_path",
            Reason::ArchiveAmbiguous => "archive_ambiguous",
            Reason::ContentUnreadable => "content_unreadable",
            Reason::TextEncoding => "text_encoding",
            Reason::ActiveContent => "active_content",
            Reason::KeywordMatch => "keyword_match",
            Reason::ClassificationMarking => "classification_marking",
            Reason::PersonalData => "personal_data",
            Reason::Polyglot => "polyglot",
            Reason::Malware => "malware",
            Reason::ScanFailed => "scan_failed",
            Reason::ApprovalRejected => "approval_rejected",
            Reason::ApprovalExpired => "approval_expired",
            Reason::ApprovalMissing => "approval_missing",
            Reason::MessageMalformed => "message_malformed",
            Reason::SchemaViolation => "schema_violation",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: the reason code and a short human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The stable reason code.
    pub reason: Reason,
    /// What exactly was wrong, for the operator.
    pub detail: String,
}

impl Refusal {
    /// A refusal with the given reason and detail.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Refusal {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_serde_agrees() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.as_str()));
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
        }
    }
}

/// Which node refused an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The sending node (intake or its inspection).
    Sender,
    /// The receiving node (verification or its own inspection).
    Receiver,
}

impl Side {
    /// `sender` or `receiver`, as reason files and logs say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Sender => "sender",
            Side::Receiver => "receiver",
        }
    }
}
