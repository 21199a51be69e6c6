//! The types that mark how far an object has come on the sending node:
//!
//! ```text
//!  outbox ─take─► Spooled ─inspect─► Inspected ─seal─► Sealed ─transmit─► link
//! ```
//!
//! `Inspected` can only be made by the inspect stage and `Sealed` only by the seal stage,
//! so an uninspected or unsigned object cannot reach the link.

use crate::core::id::ObjectId;
use crate::core::manifest::Manifest;
use crate::keys::at_rest::SealId;
use std::path::PathBuf;

/// A file taken from an outbox into the spool: durable, not yet judged.
#[derive(Debug, Clone)]
pub struct Spooled {
    /// The object's id.
    pub id: ObjectId,
    /// Its channel.
    pub channel: String,
    /// Its base name in the outbox (checked by the policy, not yet trusted).
    pub name: String,
    /// Per-channel sequence number.
    pub sequence: u64,
    /// When it was taken, in ms since the Unix epoch.
    pub taken_ms: u64,
    /// Its spool directory (holds `content`, `meta.json` and later `manifest`).
    pub dir: PathBuf,
}

impl Spooled {
    /// The content file in the spool.
    pub fn content(&self) -> PathBuf {
        self.dir.join("content")
    }
}

/// An object the channel's policy accepted.
#[derive(Debug, Clone)]
pub struct Inspected {
    spooled: Spooled,
    content_type: String,
}

impl Inspected {
    /// Only the inspect stage vouches for an object.
    pub(crate) fn new(spooled: Spooled, content_type: String) -> Inspected {
        Inspected {
            spooled,
            content_type,
        }
    }

    /// The spooled object.
    pub fn spooled(&self) -> &Spooled {
        &self.spooled
    }

    /// The content type the policy decided.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }
}

/// An inspected object with its signed manifest, ready for the link.
#[derive(Debug, Clone)]
pub struct Sealed {
    spooled: Spooled,
    manifest: Manifest,
    frame: Vec<u8>,
    sealed_as: Option<SealId>,
}

impl Sealed {
    /// Only the seal stage signs an object. `sealed_as`: the sealing at rest of the spool
    /// copy whose bytes the manifest's hashes are of, where this run hashed a sealed copy.
    pub(crate) fn new(
        spooled: Spooled,
        manifest: Manifest,
        frame: Vec<u8>,
        sealed_as: Option<SealId>,
    ) -> Sealed {
        Sealed {
            spooled,
            manifest,
            frame,
            sealed_as,
        }
    }

    /// The sealing at rest of the spool copy that was hashed into the manifest: a link
    /// that reads this very sealing reads the bytes hashed. `None` where the copy is plain,
    /// or the manifest was hashed by an earlier run (reloaded after a restart).
    pub fn sealed_as(&self) -> Option<SealId> {
        self.sealed_as
    }

    /// The spooled object.
    pub fn spooled(&self) -> &Spooled {
        &self.spooled
    }

    /// The signed manifest's content.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The object frame (header and signed manifest) that opens the stream.
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }
}
