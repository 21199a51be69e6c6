//! The inspect stage on either node: opens the content without following links, checks it
//! is a plain file with one link, and runs the channel's policy over its name, size and
//! first bytes. A sender gets an `Inspected` only from here.

use crate::fsx::open_nofollow;
use crate::policy::{HEAD_LEN, Policy, Verdict};
use crate::reason::{Reason, Refusal};
use crate::stage::{Inspected, Spooled};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What inspection found: a verdict on the content, or a refusal of the file itself.
pub type Outcome = Result<String, Refusal>;

/// Runs the policy over the file at `path` (already in our spool or staging area).
/// `Ok(Ok(type))` accepts, `Ok(Err(refusal))` refuses, `Err` is a fault (try again).
pub fn inspect_file(policy: &Policy, name: &str, path: &Path) -> io::Result<Outcome> {
    let file = match open_nofollow(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Ok(Err(Refusal::new(Reason::Symlink, "a symbolic link")));
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Ok(Err(Refusal::new(
            Reason::NotRegularFile,
            "not a regular file",
        )));
    }
    if meta.nlink() != 1 {
        return Ok(Err(Refusal::new(
            Reason::HardLink,
            format!("{} hard links", meta.nlink()),
        )));
    }
    let mut head = Vec::with_capacity(HEAD_LEN);
    file.take(HEAD_LEN as u64).read_to_end(&mut head)?;
    Ok(match policy.check(name, meta.len(), &head) {
        Verdict::Accept { content_type } => Ok(content_type),
        Verdict::Reject(r) => Err(r),
    })
}

/// Inspects a spooled object on the sending node.
pub fn inspect(
    policy: &Policy,
    spooled: Spooled,
) -> io::Result<Result<Inspected, (Spooled, Refusal)>> {
    Ok(
        match inspect_file(policy, &spooled.name, &spooled.content())? {
            Ok(content_type) => Ok(Inspected::new(spooled, content_type)),
            Err(r) => Err((spooled, r)),
        },
    )
}
