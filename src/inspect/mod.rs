//! The inspect stage on either node, a shell around the pure [`evaluate`]: it opens the
//! content without following links, checks it is a plain file with one link, runs the
//! channel's whole policy over it (streaming), keeps the masked copy, and asks the antivirus.
//! A sender gets an `Inspected` only from here; a receiver runs the same code over the part
//! file with its own copy of the policy.
//!
//! ```text
//!  open (no link followed, one hard link) ─► name ─► size ─► type from the first bytes
//!    text, csv, json, xml ─► decode (UTF-8 | GB18030 | UTF-16) ─► lines ─► rules, markings, personal data
//!    pdf                  ─► active content; text ─► rules, markings, personal data
//!    ooxml, odf           ─► parts: macros refused; XML text ─► rules, markings, personal data
//!    zip, tar, gzip       ─► entries, limits enforced while reading ─► each checked like a file
//!  ─► antivirus (clamd INSTREAM) ─► accepted, with a masked copy when personal data was masked
//!  messages policy: the object is a batch ─► message::inspect_batch (each message judged,
//!    a copy when masking changed any or some were refused, which are returned)
//! ```

pub mod clamd;
pub mod evaluate;
pub mod message;

use crate::content::archive::Input;
use crate::content::source::SourceCursor;
use crate::core::reason::{Reason, Refusal};
use crate::core::stage::{Inspected, Spooled};
use crate::fsx::open_nofollow;
use crate::inspect::clamd::{Clamd, ClamdError, ScanResult};
use crate::keys::at_rest::{self, SealWriter, SealedFile, Sealing, Stored};
use crate::keys::suite::{Hasher, Suite};
use crate::policy::{Detected, Policy};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// Why inspection could not reach a verdict. The object waits and is tried again.
#[derive(Debug, Error)]
pub enum InspectError {
    /// Reading the content or writing the masked copy failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The antivirus could not scan the content (down, timed out, refused the size).
    #[error("antivirus scan impossible: {0}")]
    Scan(#[from] ClamdError),
}

/// A copy of the content with personal data masked: what crosses instead of the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked {
    /// The masked copy, beside the content.
    pub path: PathBuf,
    /// How many lines were changed (for a batch of messages: messages).
    pub lines: u64,
    /// How many refused messages of a batch the copy leaves out (0 for a file).
    pub left_out: u64,
    /// The suite's hash (SHA-256 or SM3) of the masked content (what crosses; of the
    /// plaintext where the copy is sealed at rest).
    pub digest: [u8; 32],
}

/// What inspection decided about an object the policy accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The content type decided from the content.
    pub content_type: String,
    /// The masked copy, when personal data was masked; for a batch of messages, also the
    /// copy without the messages in [`Accepted::refused`].
    pub masked: Option<Masked>,
    /// The messages of a batch that the policy refused while it accepted the others
    /// ([`message::inspect_batch`]): each is quarantined on its own before the copy goes
    /// on. Always empty for a file.
    pub refused: Vec<message::RefusedMessage>,
}

/// A verdict: accepted, or refused with a reason.
pub type Outcome = Result<Accepted, Refusal>;

/// Runs the policy over the file at `path` (already in our spool or staging area): the
/// shell around [`evaluate`]. It opens the file without following links, refuses anything
/// but a plain file with one link, writes the masked copy (if any) into `work`, and has
/// the antivirus scan what crosses. The masked copy exists only beside an accepted object.
///
/// # Errors
/// The file cannot be read, the masked copy cannot be written, or the antivirus cannot
/// scan ([`InspectError::Scan`]: the object waits, it never crosses unscanned).
pub fn inspect_file(
    policy: &Policy,
    name: &str,
    path: &Path,
    work: &Path,
    suite: Suite,
) -> Result<Outcome, InspectError> {
    inspect_stored(policy, name, path, work, None, suite)
}

/// [`inspect_file`] of a file that may be sealed at rest (the spool, with the node's data
/// keys): with `sealing`, the file is sealed and read through its keys, and the masked copy
/// is written sealed for the same context, to take the content's place. Nothing is
/// decrypted to disk.
///
/// # Errors
/// As [`inspect_file`]; a sealed chunk that does not open is an `InvalidData` I/O error,
/// never a verdict on the content.
pub fn inspect_stored(
    policy: &Policy,
    name: &str,
    path: &Path,
    work: &Path,
    sealing: Option<&Sealing<'_>>,
    suite: Suite,
) -> Result<Outcome, InspectError> {
    inspect_cached(policy, name, path, work, sealing, suite, Cache::Keep)
}

/// What the page cache keeps of a sealed file [`inspect_cached`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// All it read: the next reader comes at once (the receiver lands what it inspected).
    Keep,
    /// Little: read in order, what lies behind goes back
    /// ([`SealedFile::drop_behind`]), for a durable copy whose next reader comes later
    /// (the sender's spool entry, read again by the link once it is sealed). Its take
    /// wrote it dropping behind, so the inspection reads it from the disk; without the
    /// advice, every page it reads is a fresh one (on a virtual machine, a fault to its
    /// host each: measured on 2 cores, a 1 GiB file inspected in 2.4–2.6 s rather than
    /// 0.7–1.0 s). Where the manifest's hash reads the entry beside the inspection (an
    /// entry tried again or recovered), each reader drops behind itself: one far ahead
    /// of the other costs the other a read from the disk, never a wrong byte.
    DropBehind,
}

/// [`inspect_stored`], with what the page cache keeps of a sealed file said: `cache`.
///
/// # Errors
/// As [`inspect_stored`].
pub fn inspect_cached(
    policy: &Policy,
    name: &str,
    path: &Path,
    work: &Path,
    sealing: Option<&Sealing<'_>>,
    suite: Suite,
    cache: Cache,
) -> Result<Outcome, InspectError> {
    let file = match open_nofollow(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Ok(Err(Refusal::new(Reason::Symlink, "a symbolic link")));
        }
        Err(e) => return Err(e.into()),
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
    let mut masked_name = path.file_name().unwrap_or_default().to_os_string();
    masked_name.push(".masked");
    let masked_path = work.join(masked_name);
    let stored = match sealing {
        Some(s) => {
            let sealed = SealedFile::open(s.keys, file, s.context)?;
            Stored::Sealed(match cache {
                Cache::Keep => sealed,
                Cache::DropBehind => sealed.drop_behind(),
            })
        }
        None => Stored::Plain(file),
    };
    if policy.messages.is_some() {
        // a messages channel's objects are batches of messages, judged message by message
        let outcome = message::inspect_batch(policy, stored, &masked_path, sealing, suite);
        let kept = matches!(
            &outcome,
            Ok(Ok(Accepted {
                masked: Some(_),
                ..
            }))
        );
        if !kept && masked_path.exists() {
            std::fs::remove_file(&masked_path)?;
        }
        return outcome;
    }
    let head = evaluate::read_head(&mut SourceCursor::new(&stored))?;
    let detected = match evaluate::admit(policy, name, stored.len()?, &head) {
        Ok(d) => d,
        Err(r) => return Ok(Err(r)),
    };
    let judged = judge(
        policy,
        name,
        &detected,
        &head,
        &stored,
        MaskedTo {
            path: &masked_path,
            sealing,
            suite,
        },
    );
    let judged = match (judged, stored.failure()) {
        // whatever a reader made of a stored chunk that did not open: a fault of the store
        (_, Some(failure)) => Err(at_rest::tampered(failure).into()),
        (judged, None) => judged,
    };
    // the masked copy exists only beside an accepted object
    if !matches!(&judged, Ok(Ok(Some(_)))) && masked_path.exists() {
        std::fs::remove_file(&masked_path)?;
    }
    Ok(judged?.map(|masked| Accepted {
        content_type: detected.family.to_string(),
        masked,
        refused: Vec::new(),
    }))
}

/// Where a masked copy is written: its path, the sealing where the node seals at rest, and
/// the suite whose hash it is given.
struct MaskedTo<'a> {
    path: &'a Path,
    sealing: Option<&'a Sealing<'a>>,
    suite: Suite,
}

/// Evaluates, keeps the masked copy durable when there is one (written as `to` says), and
/// scans what crosses. Spills go to the masked copy's folder.
fn judge(
    policy: &Policy,
    name: &str,
    detected: &Detected,
    head: &[u8],
    stored: &Stored,
    to: MaskedTo<'_>,
) -> Result<Result<Option<Masked>, Refusal>, InspectError> {
    let MaskedTo {
        path: masked_path,
        sealing,
        suite,
    } = to;
    let work = masked_path.parent().unwrap_or(Path::new("."));
    let mut out = if evaluate::masks(policy, detected) {
        Some(MaskedOut::create(masked_path, sealing, suite)?)
    } else {
        None
    };
    let verdict = evaluate::evaluate(
        policy,
        name,
        detected,
        head,
        Input::File(stored),
        out.as_mut().map(|f| f as &mut dyn std::io::Write),
        work,
    )?;
    let masked = match verdict {
        Err(r) => return Ok(Err(r)),
        Ok(0) => None,
        Ok(lines) => {
            let Some(out) = out else {
                return Err(io::Error::other("lines masked without a masked copy").into());
            };
            Some(Masked {
                path: masked_path.to_path_buf(),
                lines,
                left_out: 0,
                digest: out.finish()?,
            })
        }
    };
    if let Some(av) = &policy.antivirus {
        // scan what crosses: the masked copy when there is one
        let crossing;
        let scanned = match &masked {
            Some(m) => {
                let f = open_nofollow(&m.path)?;
                crossing = match sealing {
                    Some(s) => Stored::Sealed(SealedFile::open(s.keys, f, s.context)?),
                    None => Stored::Plain(f),
                };
                &crossing
            }
            None => stored,
        };
        let clamd = Clamd::new(av.clamd.clone(), Duration::from_millis(av.timeout_ms));
        let mut content = BufReader::new(SourceCursor::new(scanned));
        let found = clamd.scan(&mut content)?;
        if let Some(failure) = scanned.failure() {
            return Err(at_rest::tampered(failure).into());
        }
        if let ScanResult::Found(signature) = found {
            return Ok(Err(Refusal::new(
                Reason::Malware,
                format!("antivirus found {signature}"),
            )));
        }
    }
    Ok(Ok(masked))
}

/// How many bytes of a masked copy are held in memory before its file is made: a copy
/// that ends within them and masked nothing (the common case) never makes a file (on ext4
/// without a journal, making a file right after others were deleted costs most of a
/// millisecond of CPU).
const MASKED_HELD_MAX: usize = 256 * 1024;

/// A masked copy as it is written: plain, or sealed for the content's context (it takes the
/// content's place once accepted), hashed as it is written. Its first
/// [`MASKED_HELD_MAX`] bytes are held in memory: the file is made only when the copy
/// grows past them or is finished, so a copy dropped unfinished (nothing masked, or the
/// object refused) within them leaves no file.
pub(crate) struct MaskedOut<'a> {
    out: MaskedFile<'a>,
    digest: Hasher,
}

enum MaskedFile<'a> {
    /// No file yet: where it goes, how it is sealed, and what was written so far.
    Held {
        path: PathBuf,
        sealing: Option<&'a Sealing<'a>>,
        bytes: Vec<u8>,
    },
    Plain(File),
    Sealed(SealWriter<BufWriter<File>>),
}

impl<'a> MaskedFile<'a> {
    /// Makes (or truncates) the file of a held copy, the node's alone (0600), and writes
    /// what was held; a copy with its file already made is left as it is.
    fn made(&mut self) -> io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let MaskedFile::Held {
            path,
            sealing,
            bytes,
        } = self
        else {
            return Ok(());
        };
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&*path)?;
        *self = match sealing {
            Some(s) => {
                let mut w = SealWriter::new(s.keys, BufWriter::new(f), s.context)?;
                w.write_all(bytes)?;
                MaskedFile::Sealed(w)
            }
            None => {
                let mut f = f;
                f.write_all(bytes)?;
                MaskedFile::Plain(f)
            }
        };
        Ok(())
    }
}

impl<'a> MaskedOut<'a> {
    /// Starts the masked copy at `path` (made, or truncated, once it outgrows
    /// [`MASKED_HELD_MAX`] or is finished), hashed with `suite`'s hash.
    pub(crate) fn create(
        path: &Path,
        sealing: Option<&'a Sealing<'a>>,
        suite: Suite,
    ) -> io::Result<MaskedOut<'a>> {
        Ok(MaskedOut {
            out: MaskedFile::Held {
                path: path.to_path_buf(),
                sealing,
                bytes: Vec::new(),
            },
            digest: Hasher::new(suite),
        })
    }

    /// Ends the copy (its file made, its last chunk sealed) and syncs it: the hash of what
    /// was written.
    pub(crate) fn finish(mut self) -> io::Result<[u8; 32]> {
        self.out.made()?;
        match self.out {
            MaskedFile::Held { .. } => return Err(io::Error::other("a masked copy not made")),
            MaskedFile::Plain(f) => f.sync_all()?,
            MaskedFile::Sealed(w) => w
                .finish()?
                .into_inner()
                .map_err(io::IntoInnerError::into_error)?
                .sync_all()?,
        }
        Ok(self.digest.finish())
    }
}

impl Write for MaskedOut<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let MaskedFile::Held { bytes, .. } = &self.out
            && bytes.len() + buf.len() > MASKED_HELD_MAX
        {
            self.out.made()?;
        }
        let n = match &mut self.out {
            MaskedFile::Held { bytes, .. } => {
                bytes.extend_from_slice(buf);
                buf.len()
            }
            MaskedFile::Plain(f) => f.write(buf)?,
            MaskedFile::Sealed(w) => w.write(buf)?,
        };
        self.digest.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            MaskedFile::Held { .. } => Ok(()),
            MaskedFile::Plain(f) => f.flush(),
            MaskedFile::Sealed(w) => w.flush(),
        }
    }
}

/// An object that passed inspection on the sending node, its masked copy not yet in place.
#[derive(Debug)]
pub struct Checked {
    spooled: Spooled,
    accepted: Accepted,
}

impl Checked {
    /// The spooled object.
    pub fn spooled(&self) -> &Spooled {
        &self.spooled
    }

    /// The masked copy, if personal data was masked (or refused messages left out).
    pub fn masked(&self) -> Option<&Masked> {
        self.accepted.masked.as_ref()
    }

    /// The messages of a batch the policy refused, which the copy leaves out: each is to
    /// be quarantined before [`Checked::commit`].
    pub fn refused(&self) -> &[message::RefusedMessage] {
        &self.accepted.refused
    }

    /// Puts the masked copy, if any, in place of the content (durably) and vouches for the
    /// object. The caller records both hashes in the audit log first.
    pub fn commit(self) -> io::Result<Inspected> {
        if let Some(m) = &self.accepted.masked {
            std::fs::rename(&m.path, self.spooled.content())?;
            crate::fsx::sync_dir(&self.spooled.dir)?;
        }
        Ok(Inspected::new(self.spooled, self.accepted.content_type))
    }
}

/// A batch object of a messages channel that the sending node's own batcher wrote from
/// messages it checked one by one ([`message::check_message`]) under the policy in force
/// now: accepted as [`message::inspect_batch`] would accept it (its content type, nothing
/// to mask: the batch holds the masked bodies), without checking each message again. The
/// caller has compared the hash of the content with the one the batcher wrote.
pub fn accepted_batch(spooled: Spooled) -> Checked {
    Checked {
        spooled,
        accepted: Accepted {
            content_type: message::BATCH_CONTENT_TYPE.into(),
            masked: None,
            refused: Vec::new(),
        },
    }
}

/// Inspects a spooled object on the sending node, its content read through `sealing` (the
/// node's data keys and the entry's context) where the node seals its spool, dropping
/// behind ([`Cache::DropBehind`]).
pub fn inspect(
    policy: &Policy,
    spooled: Spooled,
    sealing: Option<&Sealing<'_>>,
    suite: Suite,
) -> Result<Result<Checked, (Spooled, Refusal)>, InspectError> {
    Ok(
        match inspect_cached(
            policy,
            &spooled.name,
            &spooled.content(),
            &spooled.dir,
            sealing,
            suite,
            Cache::DropBehind,
        )? {
            Ok(accepted) => Ok(Checked { spooled, accepted }),
            Err(r) => Err((spooled, r)),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::at_rest::{DataKeys, OpenReader};
    use std::io::Read;

    /// A node's data keys of `suite`, their file in `dir`.
    fn data_keys(dir: &Path, suite: Suite) -> DataKeys {
        let key_file = dir.join("data.key");
        DataKeys::add_key(&key_file, suite).unwrap();
        DataKeys::load(&key_file).unwrap()
    }

    fn written(out: &mut MaskedOut<'_>, total: usize) -> Vec<u8> {
        let line: Vec<u8> = b"0123456789abcdef"
            .iter()
            .cycle()
            .take(1000)
            .copied()
            .collect();
        let mut all = Vec::new();
        while all.len() < total {
            let piece = &line[..line.len().min(total - all.len())];
            out.write_all(piece).unwrap();
            all.extend_from_slice(piece);
        }
        all
    }

    #[test]
    fn a_masked_copy_dropped_within_the_hold_makes_no_file_and_one_past_it_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("masked");
        let mut small = MaskedOut::create(&path, None, Suite::Default).unwrap();
        written(&mut small, MASKED_HELD_MAX);
        drop(small);
        assert!(!path.exists(), "nothing masked within the hold: no file");
        // a stale copy from before is never truncated by a copy that is never made
        std::fs::write(&path, b"stale").unwrap();
        drop(MaskedOut::create(&path, None, Suite::Default).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"stale");
        let mut big = MaskedOut::create(&path, None, Suite::Default).unwrap();
        let all = written(&mut big, MASKED_HELD_MAX + 1);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            all,
            "made (truncated) when it outgrew the hold, before it is finished"
        );
        let digest = big.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), all);
        assert_eq!(digest, crate::keys::suite::digest(Suite::Default, &all));
    }

    #[test]
    fn the_senders_inspection_hands_back_what_it_read_and_the_receivers_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let keys = data_keys(dir.path(), Suite::Default);
        let sealing = Sealing {
            keys: &keys,
            context: b"spool/to-court/1",
        };
        let policy = Policy::parse(
            Path::new("to-court.toml"),
            include_str!("../../policy/to-court.toml"),
        )
        .unwrap();
        let line = b"\xe7\xac\xac\xe4\xb8\x80\xe5\xba\xad ordinary text of a hearing\n";
        let len = 6 * crate::fsx::BEHIND_WINDOW as usize;
        let path = dir.path().join("entry");
        let mut w = SealWriter::new(
            &keys,
            BufWriter::new(File::create(&path).unwrap()),
            sealing.context,
        )
        .unwrap();
        for piece in line
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect::<Vec<u8>>()
            .chunks(1 << 20)
        {
            w.write_all(piece).unwrap();
        }
        let f = w.finish().unwrap().into_inner().unwrap();
        f.sync_all().unwrap();
        let stored = f.metadata().unwrap().len();
        for cache in [Cache::DropBehind, Cache::Keep] {
            // nothing cached before: read from the disk, as after the take
            rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
            let outcome = inspect_cached(
                &policy,
                "庭审.txt",
                &path,
                dir.path(),
                Some(&sealing),
                Suite::Default,
                cache,
            )
            .unwrap();
            let accepted = outcome.expect("ordinary text crosses");
            assert_eq!(accepted.content_type, "text");
            let Some(left) = crate::fsx::resident(&path) else {
                eprintln!(
                    "SKIPPED the page-cache check: no fincore (util-linux-extra), or a file system that keeps pages on advice"
                );
                return;
            };
            match cache {
                // the last four windows and the kernel's read-ahead at most
                Cache::DropBehind => assert!(
                    left <= 4 * crate::fsx::BEHIND_WINDOW + (4 << 20),
                    "{left} of {stored} bytes still cached"
                ),
                Cache::Keep => assert!(left >= stored / 2, "{left} of {stored} bytes cached"),
            }
        }
    }

    #[test]
    fn a_finished_masked_copy_is_made_whole_plain_or_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let keys = data_keys(dir.path(), Suite::Gm);
        let sealing = Sealing {
            keys: &keys,
            context: b"spool/to-internet/1",
        };
        for (size, sealed) in [
            (0, false),
            (10, false),
            (10, true),
            (MASKED_HELD_MAX * 3 + 5, true),
        ] {
            let path = dir.path().join(format!("masked-{size}-{sealed}"));
            let mut out = MaskedOut::create(&path, sealed.then_some(&sealing), Suite::Gm).unwrap();
            let all = written(&mut out, size);
            let digest = out.finish().unwrap();
            assert_eq!(
                digest,
                crate::keys::suite::digest(Suite::Gm, &all),
                "{size} {sealed}"
            );
            let stored = std::fs::read(&path).unwrap();
            let plain = if sealed {
                let mut plain = Vec::new();
                OpenReader::new(&keys, &stored[..], sealing.context)
                    .unwrap()
                    .read_to_end(&mut plain)
                    .unwrap();
                assert!(size < 4 || stored.len() > size, "sealed at rest");
                plain
            } else {
                stored
            };
            assert_eq!(plain, all, "{size} {sealed}");
            let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o600, "the node's alone");
        }
    }
}
