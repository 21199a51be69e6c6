//! Encryption at rest: a node's data keys, and the sealed form of a stored file, written
//! and read as a stream in bounded chunks (memory stays flat whatever the size).
//!
//! The data key file (`[node] data_key`, mode 0600 or 0400, the service user's alone) holds
//! one key per line; the first seals, every one opens (a rotation adds a new first line):
//!
//! ```text
//!  # isogate data keys: the first line seals, every line opens
//!  <suite> <key id: 8 hex> <key: 64 hex (AES-256) or 32 (SM4)>
//! ```
//!
//! A sealed file, every integer big-endian:
//!
//! ```text
//!  header (48 bytes)  "isogate-rest-v1\0" (16) ‖ suite (1: 0 default, 1 gm) ‖ 0 (3)
//!                     ‖ key id (4) ‖ chunk size (4) ‖ salt (20, random per file)
//!  chunks             ciphertext (chunk size; the last 0 ..= chunk size) ‖ tag (16)
//!
//!  file key = HMAC(data key, "isogate at rest v1\0" ‖ salt ‖ context), cut to the
//!             cipher's key length; the context names the place (the quarantine: the
//!             object id), so a sealed copy moved to another name does not open
//!  nonce of chunk i = i (8) ‖ 0 0 0 ‖ 1 for the last chunk, else 0
//!  associated data  = the header
//! ```
//!
//! The cipher is the suite's ([`super::suite::DataCipher`]: AES-256-GCM or SM4-GCM). A key
//! per file makes every nonce unique; the last-chunk flag makes a cut file an error; the
//! header as associated data binds the suite, key and chunk size. A changed, reordered,
//! dropped or added chunk is [`io::ErrorKind::InvalidData`] and nothing of it is returned.
//!
//! Read as a stream ([`OpenReader`]) or at any offset ([`SealedFile`], for readers that
//! seek), each read decrypts only the chunk it needs.

use super::KeyError;
use super::suite::{self, DataCipher, NONCE_LEN, Suite, TAG_LEN};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use zeroize::Zeroizing;

/// The first bytes of every sealed file.
pub const MAGIC: &[u8; 16] = b"isogate-rest-v1\0";
/// Bytes of a sealed file's header.
pub const HEADER_LEN: usize = 48;
/// Bytes of plaintext per chunk.
pub const CHUNK: usize = 64 * 1024;
/// Chunks a [`SealedFile`] keeps decrypted besides its read-ahead (memory: this many times
/// [`CHUNK`]).
const CACHED_CHUNKS: usize = 4;
/// Chunks a [`SealedFile`] read in order opens ahead at once, on several cores, where its
/// cipher is SM4-GCM (memory: this many times [`CHUNK`], 1 MiB).
const READ_AHEAD: usize = 16;
/// Bytes of a key id.
const KEY_ID_LEN: usize = 4;
/// Bytes of the per-file salt.
const SALT_LEN: usize = 20;
/// Where the salt lies in the header.
const SALT_AT: std::ops::Range<usize> = 28..28 + SALT_LEN;
/// What the file key derivation prefixes to the salt.
const KDF_LABEL: &[u8] = b"isogate at rest v1\0";
/// Largest data key file read (bytes).
const MAX_KEY_FILE: u64 = 64 * 1024;

/// The cores SM4-GCM spreads over, asked of the system once (on Linux the answer reads
/// the cgroup's files: never per chunk).
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// One data key: its suite, id and bytes.
struct DataKey {
    suite: Suite,
    id: [u8; KEY_ID_LEN],
    /// Wiped from memory when dropped.
    key: Zeroizing<Vec<u8>>,
}

/// A node's data keys: the first seals, every one opens.
pub struct DataKeys {
    keys: Vec<DataKey>,
}

impl fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self
            .keys
            .iter()
            .map(|k| format!("{} {}", k.suite, hex::encode(k.id)))
            .collect();
        write!(f, "DataKeys({})", ids.join(", "))
    }
}

fn format_err(path: &Path, what: impl Into<String>) -> KeyError {
    KeyError::Format {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

impl DataKeys {
    /// Reads a data key file; it must be a plain file that only its owner may read or
    /// write (mode 0600 or 0400), owned by this process's user or root (any owner when
    /// the process is root's), and hold at least one key.
    ///
    /// # Errors
    /// The file cannot be read, others may read it, or a line is not `SUITE ID KEY` with
    /// a key of the suite's length (the message names the line).
    pub fn load(path: &Path) -> Result<DataKeys, KeyError> {
        let io_err = |error| KeyError::Io {
            path: path.to_path_buf(),
            error,
        };
        let meta = fs::metadata(path).map_err(io_err)?;
        if !meta.is_file() {
            return Err(format_err(path, "not a plain file"));
        }
        let euid = rustix::process::geteuid().as_raw();
        if !owner_may_hold(meta.uid(), euid) {
            return Err(format_err(
                path,
                format!(
                    "owned by uid {}: a data key must belong to the service user (uid {euid}) or root (chown it)",
                    meta.uid()
                ),
            ));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(format_err(
                path,
                format!(
                    "mode {:o}: a data key must be readable by the service user alone (chmod 600)",
                    meta.mode() & 0o777
                ),
            ));
        }
        if meta.len() > MAX_KEY_FILE {
            return Err(format_err(path, "larger than 64 KiB: not a data key file"));
        }
        let text = Zeroizing::new(fs::read_to_string(path).map_err(io_err)?);
        let keys = Self::parse(&text).map_err(|what| format_err(path, what))?;
        Ok(keys)
    }

    /// Parses the lines of a data key file.
    fn parse(text: &str) -> Result<DataKeys, String> {
        let mut keys: Vec<DataKey> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("line {}", n + 1);
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [suite, id, key] = fields[..] else {
                return Err(format!("{at}: expected SUITE KEY-ID KEY"));
            };
            let suite: Suite = suite.parse().map_err(|e| format!("{at}: {e}"))?;
            let mut kid = [0u8; KEY_ID_LEN];
            hex::decode_to_slice(id, &mut kid)
                .map_err(|_| format!("{at}: the key id is not 8 hex digits"))?;
            let key =
                Zeroizing::new(hex::decode(key).map_err(|_| format!("{at}: the key is not hex"))?);
            if key.len() != suite.cipher_key_len() {
                return Err(format!(
                    "{at}: a {} key is {} hex digits, not {}",
                    suite.cipher(),
                    2 * suite.cipher_key_len(),
                    2 * key.len()
                ));
            }
            if keys.iter().any(|k| k.id == kid) {
                return Err(format!("{at}: key id {id} appears twice"));
            }
            keys.push(DataKey {
                suite,
                id: kid,
                key,
            });
        }
        if keys.is_empty() {
            return Err("no key (make one with `isogate keygen --data-key FILE`)".into());
        }
        Ok(DataKeys { keys })
    }

    /// A fresh key of `suite` from the system's random source.
    fn fresh(suite: Suite, taken: &[DataKey]) -> Result<DataKey, KeyError> {
        use ring::rand::SecureRandom;
        let rng = ring::rand::SystemRandom::new();
        let fail = |_| KeyError::Generate("the system's random source failed".into());
        let mut key = Zeroizing::new(vec![0u8; suite.cipher_key_len()]);
        rng.fill(&mut key).map_err(fail)?;
        loop {
            let mut id = [0u8; KEY_ID_LEN];
            rng.fill(&mut id).map_err(fail)?;
            if taken.iter().all(|k| k.id != id) {
                return Ok(DataKey { suite, id, key });
            }
        }
    }

    /// Makes the data key file `path` with one key of `suite`, or, when it exists, puts a
    /// new key of `suite` first (a rotation: new files are sealed with it, the older keys
    /// still open what they sealed). Written whole under a temporary name and renamed, mode
    /// 0600. Returns the new key's id (8 hex digits).
    ///
    /// # Errors
    /// The existing file cannot be read (as [`DataKeys::load`]) or the new one written.
    pub fn add_key(path: &Path, suite: Suite) -> Result<String, KeyError> {
        let old = match fs::symlink_metadata(path) {
            Ok(_) => Self::load(path)?.keys,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(error) => {
                return Err(KeyError::Io {
                    path: path.to_path_buf(),
                    error,
                });
            }
        };
        let new = Self::fresh(suite, &old)?;
        let id = hex::encode(new.id);
        // written in place, never through a temporary string, and wiped when dropped
        let mut text = Zeroizing::new(String::with_capacity(128 * (old.len() + 2)));
        text.push_str("# isogate data keys: the first line seals, every line opens\n");
        for k in std::iter::once(&new).chain(old.iter()) {
            use std::fmt::Write as _;
            let _ = write!(text, "{} {} ", k.suite, hex::encode(k.id));
            for b in k.key.iter() {
                let _ = write!(text, "{b:02x}");
            }
            text.push('\n');
        }
        let io_err = |error| KeyError::Io {
            path: path.to_path_buf(),
            error,
        };
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(path.file_name().unwrap_or_default());
        tmp_name.push(".new");
        let tmp = path.with_file_name(tmp_name);
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err)?;
        if let Ok(m) = fs::metadata(path) {
            // a rotation run as root keeps the file the service user's
            std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid())).map_err(io_err)?;
        }
        f.write_all(text.as_bytes()).map_err(io_err)?;
        f.sync_all().map_err(io_err)?;
        fs::rename(&tmp, path).map_err(io_err)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::fsx::sync_dir(dir).map_err(io_err)?;
        }
        Ok(id)
    }

    /// The keys by id, the sealing one first, for logs and the audit record (never the
    /// keys themselves): `AES-256-GCM 1a2b3c4d (seals), SM4-GCM 5e6f7a8b`.
    pub fn describe(&self) -> String {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let seals = if i == 0 { " (seals)" } else { "" };
                format!("{} {}{seals}", k.suite.cipher(), hex::encode(k.id))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The id (hex) of a key in `older` that is not among these keys, or is here under the
    /// same id with other bytes, if any: what a reload would leave unopenable.
    pub fn missing_from(&self, older: &DataKeys) -> Option<String> {
        older
            .keys
            .iter()
            .find(|o| {
                self.find(o.suite, &o.id)
                    .is_none_or(|k| k.key.as_slice() != o.key.as_slice())
            })
            .map(|o| hex::encode(o.id))
    }

    /// The suite of the key that seals.
    pub fn suite(&self) -> Suite {
        self.keys[0].suite
    }

    /// The id of the key that seals, in hex.
    pub fn sealing_id(&self) -> String {
        hex::encode(self.keys[0].id)
    }

    fn find(&self, suite: Suite, id: &[u8]) -> Option<&DataKey> {
        self.keys.iter().find(|k| k.suite == suite && k.id == id)
    }
}

/// The cipher of one sealed file, under its own key.
/// Whether a data key file owned by `owner` may be used by a process of user `euid`: one
/// owned by another user could be replaced by that user, so only the process's own user or
/// root may own it; root itself reads the service user's file (`isogate keygen` or
/// `check` run as root).
fn owner_may_hold(owner: u32, euid: u32) -> bool {
    euid == 0 || owner == euid || owner == 0
}

fn file_cipher(key: &DataKey, salt: &[u8], context: &[u8]) -> io::Result<DataCipher> {
    let mut input = KDF_LABEL.to_vec();
    input.extend_from_slice(salt);
    input.extend_from_slice(context);
    let derived = Zeroizing::new(suite::hmac(key.suite, &key.key, &input));
    DataCipher::new(key.suite, &derived[..key.suite.cipher_key_len()]).map_err(io::Error::other)
}

fn nonce(index: u64, last: bool) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[..8].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n
}

fn suite_byte(suite: Suite) -> u8 {
    match suite {
        Suite::Default => 0,
        Suite::Gm => 1,
    }
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// A stored chunk that does not open: the sealed file was changed or cut on disk after it
/// was written (never a verdict on what it holds).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Tampered(String);

/// An `InvalidData` error carrying [`Tampered`] with `what`.
pub fn tampered(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, Tampered(what))
}

/// Whether `e` says a sealed file's stored chunk did not open ([`Tampered`]).
pub fn is_tampered(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Tampered>())
}

/// The cipher of the sealed file whose header is `header`, sealed for `context`, with its
/// key found in `keys`. (Another context shows as a tag that does not match, at the first
/// chunk opened.)
///
/// # Errors
/// `InvalidData`: not a sealed file, an unknown version or suite, a chunk size other than
/// [`CHUNK`], or a key not among `keys` (named by id).
fn header_cipher(
    keys: &DataKeys,
    header: &[u8; HEADER_LEN],
    context: &[u8],
) -> io::Result<DataCipher> {
    // read only where the node sealed: a header it did not write was changed on disk
    let (suite, id) = parse_header(header).map_err(tampered)?;
    let id = &id[..];
    let key = keys.find(suite, id).ok_or_else(|| {
        bad(format!(
            "sealed with {} data key {}, which is not in the data key file",
            suite.cipher(),
            hex::encode(id)
        ))
    })?;
    file_cipher(key, &header[SALT_AT], context)
}

/// One sealing of a file: its header's salt, random per file (20 bytes). Two sealed files
/// with the same id under the same context hold the same chunks: the salt picks the file
/// key, and a chunk sealed under that key opens only at its own index. A copy sealed again,
/// or another file sealed for the same place (a masked copy), has another id. What a reader
/// compares to know that it reads the very copy an earlier reader read, without hashing it
/// again (the link's check at send: `sender::seal::Unchanged`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealId([u8; SALT_LEN]);

impl SealId {
    fn of(header: &[u8; HEADER_LEN]) -> SealId {
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&header[SALT_AT]);
        SealId(salt)
    }
}

/// Writes a sealed file: [`SealWriter::finish`] seals the last chunk (a writer dropped
/// without it leaves a file that opens as cut, never as a shorter whole).
pub struct SealWriter<W: Write> {
    out: W,
    cipher: DataCipher,
    header: [u8; HEADER_LEN],
    /// Plaintext not sealed yet: at most `batch` chunks.
    buf: Vec<u8>,
    /// Chunks sealed together: [`READ_AHEAD`] on several cores under SM4-GCM (a software
    /// cipher), else one.
    batch: usize,
    index: u64,
}

impl<W: Write> SealWriter<W> {
    /// Starts a sealed file on `out` with the sealing key of `keys`, bound to `context`
    /// (what names the file where it rests: [`OpenReader::new`] must be given the same):
    /// writes the header.
    ///
    /// # Errors
    /// The random source or the write fails.
    pub fn new(keys: &DataKeys, mut out: W, context: &[u8]) -> io::Result<SealWriter<W>> {
        use ring::rand::SecureRandom;
        let key = &keys.keys[0];
        let mut header = [0u8; HEADER_LEN];
        header[..16].copy_from_slice(MAGIC);
        header[16] = suite_byte(key.suite);
        header[20..24].copy_from_slice(&key.id);
        header[24..28].copy_from_slice(&(CHUNK as u32).to_be_bytes());
        ring::rand::SystemRandom::new()
            .fill(&mut header[SALT_AT])
            .map_err(|_| io::Error::other("the system's random source failed"))?;
        let cipher = file_cipher(key, &header[SALT_AT], context)?;
        out.write_all(&header)?;
        let batch = if key.suite == Suite::Gm && cores() > 1 {
            READ_AHEAD
        } else {
            1
        };
        Ok(SealWriter {
            out,
            cipher,
            header,
            // grown as bytes come (see write): a small file's buffer stays small
            buf: Vec::new(),
            batch,
            index: 0,
        })
    }

    /// Seals the chunks in `buf` (the last one flagged when `last`) and writes them in
    /// order: on the writer's thread for one chunk, else spread over the cores.
    fn seal_buffered(&mut self, last: bool) -> io::Result<()> {
        let count = self.buf.len().div_ceil(CHUNK).max(1);
        if count == 1 {
            let tag = self
                .cipher
                .seal(&nonce(self.index, last), &self.header, &mut self.buf)
                .map_err(io::Error::other)?;
            self.buf.extend_from_slice(&tag);
            self.out.write_all(&self.buf)?;
            self.buf.clear();
            self.index += 1;
            return Ok(());
        }
        let per = count.div_ceil(cores().min(count));
        let (cipher, header, first) = (&self.cipher, &self.header, self.index);
        let mut sealed: Vec<io::Result<Vec<u8>>> = Vec::with_capacity(count);
        std::thread::scope(|scope| {
            let groups: Vec<_> = self
                .buf
                .chunks(per * CHUNK)
                .enumerate()
                .map(|(g, group)| {
                    scope.spawn(move || {
                        group
                            .chunks(CHUNK)
                            .enumerate()
                            .map(|(k, plain)| {
                                let index = first + (g * per + k) as u64;
                                let is_last = last && index + 1 == first + count as u64;
                                let mut record = Vec::with_capacity(CHUNK + TAG_LEN);
                                record.extend_from_slice(plain);
                                let tag = cipher
                                    .seal(&nonce(index, is_last), header, &mut record)
                                    .map_err(io::Error::other)?;
                                record.extend_from_slice(&tag);
                                Ok(record)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for g in groups {
                match g.join() {
                    Ok(v) => sealed.extend(v),
                    Err(_) => sealed.push(Err(io::Error::other("a sealing thread panicked"))),
                }
            }
        });
        for record in sealed {
            self.out.write_all(&record?)?;
        }
        self.buf.clear();
        self.index += count as u64;
        Ok(())
    }

    /// Seals the last chunk and returns the output (not synced: the caller's).
    ///
    /// # Errors
    /// The write fails.
    pub fn finish(mut self) -> io::Result<W> {
        self.seal_buffered(true)?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Writes all of `data` as [`Write::write_all`] does, sealing each whole chunk that
    /// more bytes follow in `data` where it lies (`data` then holds ciphertext there),
    /// one copy of it fewer than through the chunk buffer; the rest (a chunk that may be
    /// the last, the end of one begun by an earlier write) goes through the buffer. The
    /// file written is the same byte for byte as `write_all`'s would be with the same
    /// salt. Chunks sealed in batches (SM4-GCM on several cores) all go through the
    /// buffer.
    ///
    /// # Errors
    /// Sealing or writing failed.
    pub fn write_in_place(&mut self, mut data: &mut [u8]) -> io::Result<()> {
        while !data.is_empty() {
            // a whole chunk waiting for more bytes: these are the more
            if self.buf.len() == self.batch * CHUNK {
                self.seal_buffered(false)?;
            }
            if self.batch == 1 && self.buf.is_empty() && data.len() > CHUNK {
                let (chunk, rest) = data.split_at_mut(CHUNK);
                let tag = self
                    .cipher
                    .seal(&nonce(self.index, false), &self.header, chunk)
                    .map_err(io::Error::other)?;
                write_all_vectored(&mut self.out, chunk, &tag)?;
                self.index += 1;
                data = rest;
            } else {
                let n = self.write(data)?;
                data = &mut data[n..];
            }
        }
        Ok(())
    }
}

/// Writes `a` then `b` to `out`, in one vectored write where `out` takes both at once.
fn write_all_vectored(out: &mut impl Write, a: &[u8], b: &[u8]) -> io::Result<()> {
    let mut bufs = [io::IoSlice::new(a), io::IoSlice::new(b)];
    let mut left: &mut [io::IoSlice<'_>] = &mut bufs;
    while !left.is_empty() {
        match out.write_vectored(left) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut left, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        // full chunks are sealed only once more bytes come: until then one may be the last
        let full = self.batch * CHUNK;
        if self.buf.len() == full {
            self.seal_buffered(false)?;
        }
        let n = data.len().min(full - self.buf.len());
        // doubling up to a whole batch and its tag, never past it: a small file (many are
        // written at once as a diode block of them lands) holds a small buffer, a large
        // one a batch's
        let want = self.buf.len() + n;
        if want > self.buf.capacity() {
            let cap = want.next_power_of_two().min(full) + TAG_LEN;
            self.buf.reserve_exact(cap - self.buf.len());
        }
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Reads a sealed file back as its plaintext, chunk by chunk, each checked before any of
/// it is returned.
pub struct OpenReader<R: Read> {
    input: R,
    cipher: DataCipher,
    header: [u8; HEADER_LEN],
    /// The current chunk's plaintext and how much of it was returned.
    plain: Vec<u8>,
    at: usize,
    /// Bytes read past the current chunk (the start of the next one).
    ahead: Vec<u8>,
    index: u64,
    done: bool,
    /// A chunk failed: every later read fails too, nothing past it is returned.
    failed: bool,
}

impl<R: Read> OpenReader<R> {
    /// Reads the header of a sealed file from `input`, sealed for `context`
    /// ([`SealWriter::new`]), and finds its key in `keys`. (Another context shows as a
    /// tag that does not match, at the first chunk.)
    ///
    /// # Errors
    /// `InvalidData`: not a sealed file, an unknown version or suite, a chunk size other
    /// than [`CHUNK`], or a key not among `keys` (named by id).
    pub fn new(keys: &DataKeys, mut input: R, context: &[u8]) -> io::Result<OpenReader<R>> {
        let mut header = [0u8; HEADER_LEN];
        input
            .read_exact(&mut header)
            .map_err(|_| bad("shorter than a sealed file's header".into()))?;
        let cipher = header_cipher(keys, &header, context)?;
        Ok(OpenReader {
            input,
            cipher,
            header,
            plain: Vec::with_capacity(CHUNK + TAG_LEN),
            at: 0,
            ahead: Vec::new(),
            index: 0,
            done: false,
            failed: false,
        })
    }

    /// Reads up to `want` bytes, `ahead` first, into `plain`; returns how many there are.
    fn fill(&mut self, want: usize) -> io::Result<usize> {
        self.plain.clear();
        self.plain.append(&mut self.ahead);
        let more = want.saturating_sub(self.plain.len()) as u64;
        (&mut self.input).take(more).read_to_end(&mut self.plain)?;
        Ok(self.plain.len())
    }

    /// Reads, checks and decrypts the next chunk into `plain`.
    fn next_chunk(&mut self) -> io::Result<()> {
        // one byte past a whole chunk tells whether it is the last
        let got = self.fill(CHUNK + TAG_LEN + 1)?;
        let last = got <= CHUNK + TAG_LEN;
        if got < TAG_LEN {
            return Err(bad(format!(
                "stored chunk {}: cut short (the file ends inside it)",
                self.index
            )));
        }
        if !last {
            self.ahead.push(self.plain[CHUNK + TAG_LEN]);
            self.plain.truncate(CHUNK + TAG_LEN);
        }
        let split = self.plain.len() - TAG_LEN;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&self.plain[split..]);
        self.plain.truncate(split);
        self.cipher
            .open(
                &nonce(self.index, last),
                &self.header,
                &mut self.plain,
                &tag,
            )
            .map_err(|e| {
                self.plain.clear();
                bad(format!(
                    "stored chunk {}: {e}; nothing of it is used",
                    self.index
                ))
            })?;
        self.index += 1;
        self.at = 0;
        self.done = last;
        Ok(())
    }
}

impl<R: Read> Read for OpenReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.plain.len() {
            if self.failed {
                return Err(bad(format!(
                    "stored chunk {}: refused before; nothing past it is read",
                    self.index
                )));
            }
            if self.done || out.is_empty() {
                return Ok(0);
            }
            if let Err(e) = self.next_chunk() {
                self.failed = true;
                self.plain.clear();
                self.at = 0;
                return Err(e);
            }
        }
        let n = out.len().min(self.plain.len() - self.at);
        out[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Chunk `index` of a sealed file of `chunks` chunks under `cipher` and `header`, opened
/// from its stored record `piece` (ciphertext and tag), or `None` when it does not open.
fn open_piece(
    cipher: &DataCipher,
    header: &[u8; HEADER_LEN],
    chunks: u64,
    index: u64,
    piece: &mut [u8],
) -> Option<Vec<u8>> {
    let n = piece.len().checked_sub(TAG_LEN)?;
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&piece[n..]);
    let plain = &mut piece[..n];
    let last = index + 1 == chunks;
    cipher.open(&nonce(index, last), header, plain, &tag).ok()?;
    Some(plain.to_vec())
}

/// A sealed file opened for reading at any offset, for readers that seek (a zip's central
/// directory, an OLE file's sectors): [`SealedFile::read_at`], or `Read` and `Seek`
/// through `&SealedFile` as through `&File`. Each read checks and decrypts the one chunk it
/// touches (the last few opened are kept: memory stays `CACHED_CHUNKS` chunks); the last
/// chunk is checked
/// at open, so a file cut at a chunk boundary never opens.
pub struct SealedFile {
    file: fs::File,
    cipher: DataCipher,
    header: [u8; HEADER_LEN],
    /// Bytes of the sealed file, as opened.
    stored: u64,
    /// Bytes of plaintext.
    len: u64,
    /// Chunks, the last one flagged (at least one: an empty file has one empty chunk).
    chunks: u64,
    /// The chunks opened last, most recent first: index and plaintext (at most
    /// [`CACHED_CHUNKS`]; a zip's walk goes back and forth between its records and its
    /// central directory at the end).
    cached: RefCell<Vec<(u64, Vec<u8>)>>,
    /// Where `Read` through `&SealedFile` reads next (plaintext offset).
    pos: Cell<u64>,
    /// The chunk loaded last from the file: the next one loaded in order reads ahead.
    last_loaded: Cell<Option<u64>>,
    /// Read in order, what lies behind leaves the page cache ([`SealedFile::drop_behind`]).
    behind: Cell<Option<crate::fsx::Behind>>,
    /// The first chunk that did not open, said: kept, whatever the reader made of the error.
    failure: RefCell<Option<String>>,
}

impl SealedFile {
    /// Opens `file`, sealed for `context` ([`SealWriter::new`]) with a key in `keys`, and
    /// checks its last chunk.
    ///
    /// # Errors
    /// `InvalidData`: the header is not a known sealed file's or its key is not in `keys`
    /// ([`OpenReader::new`]'s errors), the length is no sealed file's (cut), or the last
    /// chunk does not open (cut at a chunk boundary, changed, or another context). Other
    /// kinds: reading failed.
    pub fn open(keys: &DataKeys, file: fs::File, context: &[u8]) -> io::Result<SealedFile> {
        use std::os::unix::fs::FileExt;
        let stored = file.metadata()?.len();
        let mut header = [0u8; HEADER_LEN];
        if stored < HEADER_LEN as u64 {
            return Err(tampered("cut: shorter than a sealed file's header".into()));
        }
        file.read_exact_at(&mut header, 0)?;
        let cipher = header_cipher(keys, &header, context)?;
        let len = plain_len(stored).ok_or_else(|| {
            tampered(format!(
                "cut: {stored} bytes is not the length of a whole sealed file"
            ))
        })?;
        let record = (CHUNK + TAG_LEN) as u64;
        let chunks = (stored - HEADER_LEN as u64).div_ceil(record);
        let sealed = SealedFile {
            file,
            cipher,
            header,
            stored,
            len,
            chunks,
            cached: RefCell::new(Vec::with_capacity(CACHED_CHUNKS + READ_AHEAD)),
            pos: Cell::new(0),
            last_loaded: Cell::new(None),
            behind: Cell::new(None),
            failure: RefCell::new(None),
        };
        sealed.load(chunks - 1)?;
        Ok(sealed)
    }

    /// Read in order, what lies behind leaves the page cache ([`crate::fsx::DropBehind`]):
    /// for a durable file read once from start to end (a spool entry's content), never for
    /// one deleted before the kernel would write it back. Chunks loaded out of order give
    /// no advice, and neither does a second pass until it passes the first.
    pub fn drop_behind(self) -> SealedFile {
        self.behind.set(Some(crate::fsx::Behind::from(0)));
        self
    }

    /// Read in order up to `end` (bytes of the stored file): the advice of
    /// [`SealedFile::drop_behind`].
    fn read_in_order_to(&self, end: u64) {
        if let Some(mut behind) = self.behind.get() {
            behind.reached(&self.file, end);
            self.behind.set(Some(behind));
        }
    }

    /// Bytes of plaintext.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the plaintext is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The sealed file itself (for its metadata: size, times, inode).
    pub fn file(&self) -> &fs::File {
        &self.file
    }

    /// Which sealing this file is: its header's salt, as read at open (the header every
    /// chunk is checked against).
    pub fn seal_id(&self) -> SealId {
        SealId::of(&self.header)
    }

    /// The first read that failed since the file was opened, if any: a stored chunk that
    /// did not open. Kept whatever a reader made of the error (a parser may report it as
    /// content it cannot read), so that the caller tells a fault of the store from a
    /// verdict on the content.
    pub fn failure(&self) -> Option<String> {
        self.failure.borrow().clone()
    }

    /// Puts chunk `index`, checked and decrypted, first among the cached ones.
    fn load(&self, index: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let mut cached = self.cached.borrow_mut();
        if let Some(i) = cached.iter().position(|(at, _)| *at == index) {
            cached[..=i].rotate_right(1);
            return Ok(());
        }
        let in_order = index == 0 || self.last_loaded.get() == Some(index - 1);
        self.last_loaded.set(Some(index));
        if in_order && self.cipher.suite() == Suite::Gm && self.read_ahead(&mut cached, index) {
            return Ok(());
        }
        let record = (CHUNK + TAG_LEN) as u64;
        let at = HEADER_LEN as u64 + index * record;
        let n = record.min(self.stored - at) as usize;
        // the least recent buffer is reused once the cache is full (a read-ahead run left
        // more: the least recent of them go)
        let mut plain = if cached.len() >= CACHED_CHUNKS {
            cached.truncate(CACHED_CHUNKS);
            cached.pop().map(|(_, b)| b).unwrap_or_default()
        } else {
            // this record's size, not a whole one: a small file's last (and only) chunk
            // stays small while many are open at once
            Vec::with_capacity(n)
        };
        plain.resize(n, 0);
        if let Err(e) = self.file.read_exact_at(&mut plain, at) {
            // cut since it was opened: tampered; any other error is the machine's
            if e.kind() != io::ErrorKind::UnexpectedEof {
                return Err(e);
            }
            let e = tampered(format!(
                "stored chunk {index}: cut since the file was opened"
            ));
            self.failed(&e);
            return Err(e);
        }
        if in_order {
            self.read_in_order_to(at + n as u64);
        }
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&plain[n - TAG_LEN..]);
        plain.truncate(n - TAG_LEN);
        let last = index + 1 == self.chunks;
        if let Err(e) = self
            .cipher
            .open(&nonce(index, last), &self.header, &mut plain, &tag)
        {
            let e = tampered(format!("stored chunk {index}: {e}; nothing of it is used"));
            self.failed(&e);
            return Err(e);
        }
        cached.insert(0, (index, plain));
        Ok(())
    }

    /// Opens chunks `index..` (up to [`READ_AHEAD`]) from one read, on as many threads as
    /// there are cores, and caches those that open, `index` first: `true` when `index`
    /// opened. A chunk that does not open is not cached and says nothing here: it fails
    /// (and is said) when it is read. Only for SM4-GCM, which software runs at about
    /// 80 MiB/s a core; AES-GCM (AES-NI) opens faster than a disk reads, on the reader's
    /// thread.
    fn read_ahead(&self, cached: &mut Vec<(u64, Vec<u8>)>, index: u64) -> bool {
        use std::os::unix::fs::FileExt;
        let threads = cores();
        let run = (READ_AHEAD as u64).min(self.chunks - index) as usize;
        if threads < 2 || run < 2 {
            return false;
        }
        let record = CHUNK + TAG_LEN;
        let at = HEADER_LEN as u64 + index * record as u64;
        let n = (run * record).min((self.stored - at) as usize);
        let mut sealed = vec![0u8; n];
        // a cut or a failed read: the one-chunk path says which
        if self.file.read_exact_at(&mut sealed, at).is_err() {
            return false;
        }
        self.read_in_order_to(at + n as u64);
        let pieces: Vec<&mut [u8]> = sealed.chunks_mut(record).collect();
        let per = pieces.len().div_ceil(threads.min(pieces.len()));
        let mut opened: Vec<Option<Vec<u8>>> = Vec::with_capacity(pieces.len());
        let (cipher, header, chunks) = (&self.cipher, &self.header, self.chunks);
        std::thread::scope(|scope| {
            let mut groups = Vec::new();
            let mut rest = pieces;
            let mut first = index;
            while !rest.is_empty() {
                let take = per.min(rest.len());
                let group: Vec<&mut [u8]> = rest.drain(..take).collect();
                let from = first;
                first += take as u64;
                groups.push(scope.spawn(move || {
                    group
                        .into_iter()
                        .enumerate()
                        .map(|(k, piece)| {
                            open_piece(cipher, header, chunks, from + k as u64, piece)
                        })
                        .collect::<Vec<_>>()
                }));
            }
            for g in groups {
                match g.join() {
                    Ok(v) => opened.extend(v),
                    Err(_) => opened.push(None),
                }
            }
        });
        if opened.first().is_none_or(Option::is_none) {
            return false;
        }
        // the least recent go first; then the run, `index` first; the next chunk loaded
        // in order is the one after the run
        let keep = CACHED_CHUNKS.saturating_sub(1);
        cached.truncate(keep);
        self.last_loaded.set(Some(index + opened.len() as u64 - 1));
        for (k, plain) in opened.into_iter().enumerate().rev() {
            if let Some(plain) = plain {
                cached.insert(0, (index + k as u64, plain));
            }
        }
        true
    }

    fn failed(&self, e: &io::Error) {
        let mut failure = self.failure.borrow_mut();
        if failure.is_none() {
            *failure = Some(e.to_string());
        }
    }

    /// Reads plaintext at `offset` into `buf`, from one chunk: how many bytes (0 at or past
    /// the end), like `FileExt::read_at`.
    ///
    /// # Errors
    /// `InvalidData`: the chunk does not open (changed or cut); nothing of it is returned.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let index = offset / CHUNK as u64;
        self.load(index)?;
        let cached = self.cached.borrow();
        let Some((_, plain)) = cached.first() else {
            return Ok(0);
        };
        let from = (offset % CHUNK as u64) as usize;
        let n = buf.len().min(plain.len().saturating_sub(from));
        buf[..n].copy_from_slice(&plain[from..from + n]);
        Ok(n)
    }

    /// Reads exactly `buf.len()` bytes of plaintext at `offset`.
    ///
    /// # Errors
    /// [`SealedFile::read_at`]'s, and `UnexpectedEof` past the end.
    pub fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
            }
        }
        Ok(())
    }
}

impl Read for &SealedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.read_at(buf, self.pos.get())?;
        self.pos.set(self.pos.get() + n as u64);
        Ok(n)
    }
}

impl Seek for &SealedFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let at = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.get().checked_add_signed(d),
        }
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a seek before the start of the file",
            )
        })?;
        self.pos.set(at);
        Ok(at)
    }
}

impl Read for SealedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Seek for SealedFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        (&*self).seek(to)
    }
}

/// A scratch file sealed under a one-time key held only in memory: what a reader must spill
/// to disk to read in place (a nested zip, an embedded compound file) rests there sealed,
/// and cannot be read once the process ends. Anonymous: unlinked from the start.
pub struct Scratch {
    writer: SealWriter<io::BufWriter<fs::File>>,
    keys: DataKeys,
}

/// What a scratch file's sealing is bound to.
const SCRATCH_CONTEXT: &[u8] = b"scratch";

impl Scratch {
    /// An empty scratch file in `dir`, sealed with the default suite's cipher under a fresh
    /// random key.
    ///
    /// # Errors
    /// The file cannot be made, or the system's random source failed.
    pub fn new(dir: &Path) -> io::Result<Scratch> {
        use ring::rand::SecureRandom;
        let mut key = Zeroizing::new(vec![0u8; Suite::Default.cipher_key_len()]);
        ring::rand::SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| io::Error::other("the system's random source failed"))?;
        let keys = DataKeys {
            keys: vec![DataKey {
                suite: Suite::Default,
                id: [0; KEY_ID_LEN],
                key,
            }],
        };
        let file = tempfile::tempfile_in(dir)?;
        let writer = SealWriter::new(&keys, io::BufWriter::new(file), SCRATCH_CONTEXT)?;
        Ok(Scratch { writer, keys })
    }

    /// Ends the file and opens it for reading at any offset.
    ///
    /// # Errors
    /// Writing the last chunk or reading it back failed.
    pub fn finish(self) -> io::Result<SealedFile> {
        let file = self
            .writer
            .finish()?
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        SealedFile::open(&self.keys, file, SCRATCH_CONTEXT)
    }
}

impl Write for Scratch {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// Sealing as the stored form of a durable copy ([`crate::fsx::copy_durable_as`]): sealed
/// for `context` with the sealing key, its size [`sealed_len`]; every reader opens it with
/// the keys, authenticating each chunk.
pub struct Sealing<'a> {
    /// The node's data keys.
    pub keys: &'a DataKeys,
    /// What names the copy where it rests ([`SealWriter::new`]).
    pub context: &'a [u8],
}

impl crate::fsx::StoreForm for Sealing<'_> {
    fn writer<'a>(
        &self,
        out: &'a mut dyn Write,
    ) -> io::Result<Box<dyn crate::fsx::FormWriter + 'a>> {
        // straight to the file: the writer gathers whole chunks itself, and a chunk sealed
        // in place goes with its tag in one vectored write (a `BufWriter` would pass the
        // chunk alone and hold the tag for a write of its own)
        let w = SealWriter::new(self.keys, out, self.context)?;
        Ok(Box::new(w))
    }

    fn stored_len(&self, plain: u64) -> u64 {
        sealed_len(plain)
    }
}

impl<W: Write> crate::fsx::FormWriter for SealWriter<W> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        SealWriter::finish(*self).map(|_| ())
    }

    fn write_consumed(&mut self, bytes: &mut [u8]) -> io::Result<()> {
        self.write_in_place(bytes)
    }
}

/// A stored file, sealed (read through the data keys) or plain (written before the node
/// sealed, or by a node that does not): which one is the caller's record (the spool entry's
/// metadata), never the file's own first bytes, which whoever wrote it chose.
// one per open file, never held in bulk: boxing the sealed one would buy nothing
#[allow(clippy::large_enum_variant)]
pub enum Stored {
    /// A plain file.
    Plain(fs::File),
    /// A sealed file.
    Sealed(SealedFile),
}

impl Stored {
    /// Bytes of content (plaintext).
    ///
    /// # Errors
    /// A plain file's metadata cannot be read.
    pub fn len(&self) -> io::Result<u64> {
        match self {
            Stored::Plain(f) => Ok(f.metadata()?.len()),
            Stored::Sealed(s) => Ok(s.len()),
        }
    }

    /// Whether there is no content.
    ///
    /// # Errors
    /// As [`Stored::len`].
    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Reads content at `offset` into `buf`: how many bytes (0 at the end).
    ///
    /// # Errors
    /// Reading failed; a sealed chunk that does not open ([`SealedFile::read_at`]).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match self {
            Stored::Plain(f) => std::os::unix::fs::FileExt::read_at(f, buf, offset),
            Stored::Sealed(s) => s.read_at(buf, offset),
        }
    }

    /// Reads exactly `buf.len()` bytes of content at `offset`.
    ///
    /// # Errors
    /// [`Stored::read_at`]'s, and `UnexpectedEof` past the end.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match self {
            Stored::Plain(f) => std::os::unix::fs::FileExt::read_exact_at(f, buf, offset),
            Stored::Sealed(s) => s.read_exact_at(buf, offset),
        }
    }

    /// The file on disk (its metadata: inode, times, stored size).
    pub fn file(&self) -> &fs::File {
        match self {
            Stored::Plain(f) => f,
            Stored::Sealed(s) => s.file(),
        }
    }

    /// Which sealing a sealed file is ([`SealedFile::seal_id`]); `None` for a plain file.
    pub fn seal_id(&self) -> Option<SealId> {
        match self {
            Stored::Plain(_) => None,
            Stored::Sealed(s) => Some(s.seal_id()),
        }
    }

    /// A sealed chunk that did not open since the file was opened ([`SealedFile::failure`]).
    pub fn failure(&self) -> Option<String> {
        match self {
            Stored::Plain(_) => None,
            Stored::Sealed(s) => s.failure(),
        }
    }
}

impl Read for Stored {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stored::Plain(f) => f.read(buf),
            Stored::Sealed(s) => s.read(buf),
        }
    }
}

/// Whether `head` (a file's first bytes) begins a sealed file.
pub fn is_sealed(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// What a sealed file's header says it was sealed with, read without any key: its suite
/// and the data key's id (4 bytes, shown as 8 hex digits). `None` when `head` (a file's
/// first [`HEADER_LEN`] bytes or more) is not a header this version writes.
pub fn sealed_with(head: &[u8]) -> Option<(Suite, [u8; 4])> {
    parse_header(head.get(..HEADER_LEN)?.try_into().ok()?).ok()
}

/// A sealed file's header as this version writes it: its suite and its data key's id; else
/// what is wrong with it.
fn parse_header(header: &[u8; HEADER_LEN]) -> Result<(Suite, [u8; 4]), String> {
    if &header[..16] != MAGIC {
        return Err("not a sealed file (no isogate-rest-v1 header)".into());
    }
    let suite = match header[16] {
        0 => Suite::Default,
        1 => Suite::Gm,
        s => return Err(format!("unknown suite {s} in the header")),
    };
    if header[17..20] != [0, 0, 0] || header[24..28] != (CHUNK as u32).to_be_bytes() {
        return Err("an unknown header layout or chunk size".into());
    }
    let mut id = [0u8; 4];
    id.copy_from_slice(&header[20..24]);
    Ok((suite, id))
}

/// The bytes a sealed file of `plain` bytes of plaintext takes on disk: the header and one
/// tag per chunk (at least one chunk: an empty file has one empty chunk).
pub fn sealed_len(plain: u64) -> u64 {
    let chunks = plain.div_ceil(CHUNK as u64).max(1);
    (HEADER_LEN as u64)
        .saturating_add(plain)
        .saturating_add(chunks.saturating_mul(TAG_LEN as u64))
}

/// The plaintext length of a sealed file of `stored` bytes, if that is a possible length.
pub fn plain_len(stored: u64) -> Option<u64> {
    let body = stored.checked_sub(HEADER_LEN as u64)?;
    let record = (CHUNK + TAG_LEN) as u64;
    let (whole, rest) = (body / record, body % record);
    if rest < TAG_LEN as u64 {
        // the last chunk is a whole one (rest 0 and at least one record) or cut
        return (rest == 0 && whole > 0).then(|| whole * CHUNK as u64);
    }
    Some(whole * CHUNK as u64 + rest - TAG_LEN as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(suite: Suite) -> (tempfile::TempDir, DataKeys) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.data.key");
        DataKeys::add_key(&path, suite).unwrap();
        let keys = DataKeys::load(&path).unwrap();
        (dir, keys)
    }

    fn seal(keys: &DataKeys, plain: &[u8], step: usize) -> Vec<u8> {
        let mut w = SealWriter::new(keys, Vec::new(), b"ctx").unwrap();
        for piece in plain.chunks(step.max(1)) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    }

    fn open(keys: &DataKeys, sealed: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        OpenReader::new(keys, sealed, b"ctx")?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn files_of_every_length_round_trip_in_both_suites_and_hide_their_content() {
        for suite in Suite::ALL {
            let (_d, keys) = keys(suite);
            assert_eq!(keys.suite(), suite);
            for len in [
                0,
                1,
                100,
                CHUNK - 1,
                CHUNK,
                CHUNK + 1,
                3 * CHUNK,
                3 * CHUNK + 7,
            ] {
                let marker = b"MARKER-judgement-2026-";
                let plain: Vec<u8> = marker.iter().copied().cycle().take(len).collect();
                let sealed = seal(&keys, &plain, 1000);
                assert!(is_sealed(&sealed));
                assert_eq!(plain_len(sealed.len() as u64), Some(len as u64), "{len}");
                assert_eq!(sealed_len(len as u64), sealed.len() as u64, "{len}");
                assert_eq!(open(&keys, &sealed).unwrap(), plain, "{suite} {len}");
                if len >= marker.len() {
                    assert!(!sealed.windows(marker.len()).any(|w| w == marker));
                }
                // two seals of the same bytes differ (a salt per file)
                assert_ne!(seal(&keys, &plain, CHUNK), sealed);
            }
        }
    }

    #[test]
    fn sealing_in_place_writes_the_same_file_as_sealing_through_the_buffer() {
        for suite in Suite::ALL {
            let (_d, keys) = keys(suite);
            for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 4 * CHUNK, 9 * CHUNK + 3] {
                let plain: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
                for step in [1000, CHUNK, 4 * CHUNK, 4 * CHUNK + 5] {
                    let mut through = SealWriter::new(&keys, Vec::new(), b"ctx").unwrap();
                    let mut in_place = SealWriter::new(&keys, Vec::new(), b"ctx").unwrap();
                    // the same salt for both: the same bytes must come out
                    in_place.header = through.header;
                    in_place.out[..HEADER_LEN].copy_from_slice(&through.header);
                    in_place.cipher =
                        file_cipher(&keys.keys[0], &through.header[SALT_AT], b"ctx").unwrap();
                    let one_chunk_a_seal = through.batch == 1;
                    let mut sealed_where_it_lay = false;
                    for piece in plain.chunks(step) {
                        through.write_all(piece).unwrap();
                        let mut mine = piece.to_vec();
                        in_place.write_in_place(&mut mine).unwrap();
                        sealed_where_it_lay |= mine != piece;
                    }
                    let (a, b) = (through.finish().unwrap(), in_place.finish().unwrap());
                    assert!(a == b, "{suite} {len} by {step}: not the same file");
                    assert_eq!(open(&keys, &b).unwrap(), plain, "{suite} {len} by {step}");
                    // a piece holding a whole chunk with more behind it is sealed where it
                    // lies (one copy fewer), except in SM4-GCM's batches
                    let expected = one_chunk_a_seal && step > CHUNK && len > CHUNK;
                    assert_eq!(sealed_where_it_lay, expected, "{suite} {len} by {step}");
                }
            }
        }
    }

    #[test]
    fn a_flipped_cut_reordered_or_extended_file_is_refused() {
        let (_d, keys) = keys(Suite::Default);
        let plain: Vec<u8> = (0..3 * CHUNK + 10).map(|i| i as u8).collect();
        let sealed = seal(&keys, &plain, 4096);
        let record = CHUNK + TAG_LEN;
        let refused = |bytes: &[u8], what: &str| {
            let e = open(&keys, bytes).expect_err(what);
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{what}: {e}");
        };
        // every byte position class: header, a middle chunk, a tag, the last chunk
        for at in [
            17,
            30,
            HEADER_LEN + 5,
            HEADER_LEN + record + 9,
            sealed.len() - 1,
        ] {
            let mut b = sealed.clone();
            b[at] ^= 0x20;
            refused(&b, &format!("flipped byte {at}"));
        }
        // cut at a chunk boundary: the shorter file's last chunk is not flagged last
        refused(&sealed[..HEADER_LEN + 2 * record], "cut after two chunks");
        refused(&sealed[..sealed.len() - 3], "cut in the last chunk");
        refused(&sealed[..HEADER_LEN], "only the header");
        refused(&sealed[..10], "a torn header");
        // two chunks swapped
        let mut swapped = sealed[..HEADER_LEN].to_vec();
        swapped.extend_from_slice(&sealed[HEADER_LEN + record..HEADER_LEN + 2 * record]);
        swapped.extend_from_slice(&sealed[HEADER_LEN..HEADER_LEN + record]);
        swapped.extend_from_slice(&sealed[HEADER_LEN + 2 * record..]);
        refused(&swapped, "swapped chunks");
        let mut longer = sealed.clone();
        longer.extend_from_slice(&[0u8; 40]);
        refused(&longer, "bytes added");
        // the bytes before a bad chunk are returned, never the bad chunk
        let mut b = sealed.clone();
        b[HEADER_LEN + record + 3] ^= 1;
        let mut r = OpenReader::new(&keys, &b[..], b"ctx").unwrap();
        let mut first = vec![0u8; CHUNK];
        r.read_exact(&mut first).unwrap();
        assert_eq!(first, plain[..CHUNK]);
        assert!(r.read(&mut [0u8; 16]).is_err());
        assert!(r.read(&mut [0u8; 16]).is_err(), "and stays refused");
        // sealed for another place (a copy moved to another name)
        let mut r = OpenReader::new(&keys, &sealed[..], b"other").unwrap();
        assert!(r.read(&mut [0u8; 16]).is_err());
        // another key, or not a sealed file at all
        let (_e, other) = super::tests::keys(Suite::Default);
        let e = open(&other, &sealed).unwrap_err().to_string();
        assert!(e.contains("not in the data key file"), "{e}");
        let e = open(
            &keys,
            b"plain text, never sealed, long enough to be a header!!",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a sealed file"), "{e}");
    }

    #[test]
    fn a_rotation_seals_with_the_new_key_and_opens_with_every_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let first = DataKeys::add_key(&path, Suite::Default).unwrap();
        let old = DataKeys::load(&path).unwrap();
        let sealed_old = seal(&old, b"before", 10);
        let second = DataKeys::add_key(&path, Suite::Gm).unwrap();
        assert_ne!(first, second);
        let new = DataKeys::load(&path).unwrap();
        assert_eq!(new.sealing_id(), second);
        assert_eq!(new.suite(), Suite::Gm);
        let sealed_new = seal(&new, b"after", 10);
        assert_eq!(open(&new, &sealed_old).unwrap(), b"before");
        assert_eq!(open(&new, &sealed_new).unwrap(), b"after");
        assert!(open(&old, &sealed_new).is_err());
        assert_eq!(new.missing_from(&old), None);
        assert_eq!(old.missing_from(&new), Some(second.clone()));
        // the same id with other bytes would not open what the old bytes sealed either
        let text = fs::read_to_string(&path).unwrap();
        let line = text
            .lines()
            .find(|l| l.contains(&first))
            .unwrap()
            .to_string();
        let flipped = format!("{}0", &line[..line.len() - 1]);
        let flipped = if flipped == line {
            format!("{}1", &line[..line.len() - 1])
        } else {
            flipped
        };
        let changed = DataKeys::parse(&text.replace(&line, &flipped)).unwrap();
        assert_eq!(changed.missing_from(&new), Some(first.clone()));
        let mode = fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // a rotation keeps the file's owner (run as root for the service user)
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
            DataKeys::add_key(&path, Suite::Default).unwrap();
            assert_eq!(fs::metadata(&path).unwrap().uid(), 65534);
            assert_eq!(DataKeys::load(&path).unwrap().keys.len(), 3);
        }
        assert!(format!("{new:?}").contains(&format!("gm {second}")));
    }

    #[test]
    fn key_files_that_others_may_read_or_that_are_malformed_are_refused_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        DataKeys::add_key(&path, Suite::Default).unwrap();
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
        let e = DataKeys::load(&path).unwrap_err().to_string();
        assert!(e.contains("mode 640") && e.contains("chmod 600"), "{e}");
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        assert!(DataKeys::load(&path).is_ok());
        // the service user (uid 999) may use its own file or root's, not another user's
        assert!(owner_may_hold(999, 999) && owner_may_hold(0, 999));
        assert!(!owner_may_hold(1000, 999));
        assert!(owner_may_hold(1000, 0));
        let bad = |text: &str, want: &str| {
            let e = DataKeys::parse(text).err().unwrap_or_default();
            assert!(e.contains(want), "{text:?}: {e}");
        };
        bad("", "no key");
        bad("# only a comment\n", "no key");
        bad("default 01020304\n", "line 1: expected SUITE KEY-ID KEY");
        bad(
            &format!("\nsm 01020304 {}\n", "00".repeat(32)),
            "line 2: unknown suite",
        );
        bad(
            &format!("default 0102 {}\n", "00".repeat(32)),
            "8 hex digits",
        );
        bad(
            &format!("default 01020304 {}\n", "00".repeat(16)),
            "a AES-256-GCM key is 64 hex digits, not 32",
        );
        bad(
            &format!(
                "gm 01020304 {}\ngm 01020304 {}\n",
                "00".repeat(16),
                "11".repeat(16)
            ),
            "line 2: key id 01020304 appears twice",
        );
    }

    fn sealed_file(keys: &DataKeys, dir: &Path, bytes: &[u8]) -> io::Result<SealedFile> {
        let path = dir.join("sealed");
        fs::write(&path, bytes).unwrap();
        SealedFile::open(keys, fs::File::open(&path).unwrap(), b"ctx")
    }

    #[test]
    fn each_sealing_has_its_own_id_and_a_reopened_copy_keeps_it() {
        for suite in Suite::ALL {
            let (d, keys) = keys(suite);
            let plain: Vec<u8> = (0..CHUNK + 5).map(|i| (i % 253) as u8).collect();
            let first = seal(&keys, &plain, 4096);
            let again = seal(&keys, &plain, 4096);
            let a = sealed_file(&keys, d.path(), &first).unwrap().seal_id();
            // the same bytes opened again: the same sealing
            assert_eq!(sealed_file(&keys, d.path(), &first).unwrap().seal_id(), a);
            // the same plaintext sealed again: another sealing, though it opens alike
            let b = sealed_file(&keys, d.path(), &again).unwrap();
            assert_ne!(b.seal_id(), a, "{suite}");
            let stored = Stored::Sealed(b);
            assert_ne!(stored.seal_id(), Some(a));
            let plain_file = d.path().join("plain");
            fs::write(&plain_file, &plain).unwrap();
            assert_eq!(
                Stored::Plain(fs::File::open(&plain_file).unwrap()).seal_id(),
                None
            );
        }
    }

    #[test]
    fn a_sealed_file_read_in_order_hands_back_what_lies_behind_and_still_reads_anywhere() {
        for suite in Suite::ALL {
            let (d, keys) = keys(suite);
            let len = 5 * crate::fsx::BEHIND_WINDOW as usize + 999;
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let path = d.path().join("sealed");
            fs::write(&path, seal(&keys, &plain, 1 << 20)).unwrap();
            fs::File::open(&path).unwrap().sync_all().unwrap();
            let f = SealedFile::open(&keys, fs::File::open(&path).unwrap(), b"ctx")
                .unwrap()
                .drop_behind();
            let mut whole = Vec::new();
            (&f).read_to_end(&mut whole).unwrap();
            assert!(whole == plain, "{suite}");
            // what was handed back is read again from the disk
            let mut buf = vec![0u8; 100];
            f.read_exact_at(&mut buf, 10).unwrap();
            assert_eq!(buf, plain[10..110], "{suite}");
            assert_eq!(f.failure(), None);
            let Some(left) = crate::fsx::resident(&path) else {
                eprintln!(
                    "SKIPPED the page-cache check: no fincore (util-linux-extra), or a file system that keeps pages on advice"
                );
                continue;
            };
            // the last four windows and the kernel's read-ahead at most
            let stored = fs::metadata(&path).unwrap().len();
            assert!(
                left <= 4 * crate::fsx::BEHIND_WINDOW + (4 << 20),
                "{suite}: {left} of {stored} bytes still cached"
            );
        }
    }

    #[test]
    fn a_sealed_file_reads_at_any_offset_and_seeks_like_a_file() {
        for suite in Suite::ALL {
            let (d, keys) = keys(suite);
            for len in [0, 5, CHUNK, CHUNK + 1, 3 * CHUNK - 2] {
                let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
                let f = sealed_file(&keys, d.path(), &seal(&keys, &plain, 7000)).unwrap();
                assert_eq!(f.len(), len as u64);
                assert_eq!(f.is_empty(), len == 0);
                let mut whole = Vec::new();
                (&f).read_to_end(&mut whole).unwrap();
                assert_eq!(whole, plain, "{suite} {len}");
                // reads across chunk boundaries, backwards, and past the end
                for (at, n) in [(CHUNK - 3, 10), (1, 3), (CHUNK * 2 + 1, 5), (0, len)] {
                    let mut buf = vec![0u8; n];
                    let fits = at + n <= len;
                    let got = f.read_exact_at(&mut buf, at as u64);
                    assert_eq!(got.is_ok(), fits, "{suite} {len} at {at}");
                    if fits {
                        assert_eq!(buf, plain[at..at + n]);
                    }
                }
                let mut r = &f;
                assert_eq!(
                    r.seek(SeekFrom::End(-2)).ok(),
                    len.checked_sub(2).map(|n| n as u64)
                );
                if len >= 2 {
                    let mut tail = Vec::new();
                    r.read_to_end(&mut tail).unwrap();
                    assert_eq!(tail, plain[len - 2..]);
                    r.seek(SeekFrom::Current(-1)).unwrap();
                    let mut one = [0u8; 1];
                    r.read_exact(&mut one).unwrap();
                    assert_eq!(one[0], plain[len - 1]);
                }
                assert!(r.seek(SeekFrom::Current(-(len as i64) - 1)).is_err());
                let mut with_zip = Vec::new();
                let mut owned = sealed_file(&keys, d.path(), &seal(&keys, &plain, CHUNK)).unwrap();
                owned.seek(SeekFrom::Start(0)).unwrap();
                owned.read_to_end(&mut with_zip).unwrap();
                assert_eq!(with_zip, plain);
            }
        }
    }

    #[test]
    fn a_sealed_file_cut_or_changed_never_opens_or_returns_the_bad_chunk() {
        let (d, keys) = keys(Suite::Default);
        let plain: Vec<u8> = (0..3 * CHUNK + 10).map(|i| i as u8).collect();
        let sealed = seal(&keys, &plain, 4096);
        let record = CHUNK + TAG_LEN;
        let refused = |bytes: &[u8], what: &str| match sealed_file(&keys, d.path(), bytes) {
            Ok(_) => panic!("{what}: opened"),
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{what}: {e}"),
        };
        refused(
            &sealed[..HEADER_LEN + 2 * record],
            "cut at a chunk boundary",
        );
        refused(&sealed[..sealed.len() - 3], "cut in the last chunk");
        refused(&sealed[..HEADER_LEN], "only the header");
        refused(&sealed[..10], "a torn header");
        let mut longer = sealed.clone();
        longer.extend_from_slice(&[0u8; TAG_LEN + 4]);
        refused(&longer, "a chunk added");
        let mut b = sealed.clone();
        b[20] ^= 1;
        refused(&b, "another key id");
        // a changed middle chunk opens the file but never reads
        let mut b = sealed.clone();
        b[HEADER_LEN + record + 3] ^= 1;
        let f = sealed_file(&keys, d.path(), &b).unwrap();
        let mut buf = [0u8; 8];
        f.read_exact_at(&mut buf, 4).unwrap();
        assert_eq!(buf, plain[4..12]);
        assert_eq!(f.failure(), None);
        let e = f.read_exact_at(&mut buf, CHUNK as u64 + 2).unwrap_err();
        assert!(e.to_string().contains("stored chunk 1"), "{e}");
        assert_eq!(f.failure(), Some(e.to_string()));
        assert!(is_tampered(&e));
        assert!(
            f.read_exact_at(&mut buf, CHUNK as u64 + 2).is_err(),
            "still refused"
        );
        f.read_exact_at(&mut buf, 2 * CHUNK as u64).unwrap();
        // sealed for another place
        let path = d.path().join("other");
        fs::write(&path, &sealed).unwrap();
        assert!(SealedFile::open(&keys, fs::File::open(&path).unwrap(), b"elsewhere").is_err());
    }

    #[test]
    fn gm_files_sealed_a_batch_at_a_time_open_whole_at_every_boundary() {
        let (d, keys) = keys(Suite::Gm);
        for len in [
            0,
            1,
            CHUNK,
            16 * CHUNK - 1,
            16 * CHUNK,
            16 * CHUNK + 1,
            32 * CHUNK,
            33 * CHUNK + 5,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 13 % 241) as u8).collect();
            for step in [1000, CHUNK, 3 * CHUNK + 7] {
                let sealed = seal(&keys, &plain, step);
                // the layout of one chunk at a time: header, then each chunk and its tag
                let chunks = len.div_ceil(CHUNK).max(1);
                assert_eq!(sealed.len(), HEADER_LEN + len + chunks * TAG_LEN, "{len}");
                let mut back = Vec::new();
                OpenReader::new(&keys, &sealed[..], b"ctx")
                    .unwrap()
                    .read_to_end(&mut back)
                    .unwrap();
                assert_eq!(back, plain, "{len} by {step}");
                let f = sealed_file(&keys, d.path(), &sealed).unwrap();
                let mut whole = Vec::new();
                (&f).read_to_end(&mut whole).unwrap();
                assert_eq!(whole, plain, "{len} by {step}");
            }
        }
    }

    #[test]
    fn a_small_file_holds_buffers_of_its_size_and_a_large_one_no_more_than_a_batch() {
        for suite in Suite::ALL {
            let (d, keys) = keys(suite);
            // written: a 4 KiB file's buffer is 4 KiB and a tag, not a whole chunk
            let mut w = SealWriter::new(&keys, Vec::new(), b"ctx").unwrap();
            w.write_all(&[7u8; 4096]).unwrap();
            assert!(w.buf.capacity() <= 4096 + TAG_LEN, "{}", w.buf.capacity());
            let small = w.finish().unwrap();
            // a large one grows to a batch and its tag, never past it
            let mut w = SealWriter::new(&keys, Vec::new(), b"ctx").unwrap();
            for _ in 0..(3 * READ_AHEAD * CHUNK / 1000) {
                w.write_all(&[9u8; 1000]).unwrap();
                assert!(w.buf.capacity() <= w.batch * CHUNK + TAG_LEN);
            }
            let large = w.finish().unwrap();
            assert_eq!(
                open(&keys, &large).unwrap().len(),
                3 * READ_AHEAD * CHUNK / 1000 * 1000
            );
            // read: the small file's only chunk, loaded at open, holds its own size
            let f = sealed_file(&keys, d.path(), &small).unwrap();
            let cached = f.cached.borrow();
            assert_eq!(cached.len(), 1);
            assert!(
                cached[0].1.capacity() <= 4096 + TAG_LEN,
                "{}",
                cached[0].1.capacity()
            );
            drop(cached);
            let mut back = Vec::new();
            (&f).read_to_end(&mut back).unwrap();
            assert_eq!(back, vec![7u8; 4096]);
        }
    }

    #[test]
    fn a_gm_file_read_in_order_opens_ahead_and_still_says_which_chunk_failed() {
        let (d, keys) = keys(Suite::Gm);
        // 40 chunks and a bit: more than two read-ahead runs
        let len = 40 * CHUNK + 123;
        let plain: Vec<u8> = (0..len).map(|i| (i * 7 % 253) as u8).collect();
        let sealed = seal(&keys, &plain, 50_000);
        let f = sealed_file(&keys, d.path(), &sealed).unwrap();
        let mut whole = Vec::new();
        (&f).read_to_end(&mut whole).unwrap();
        assert_eq!(whole, plain);
        assert!(f.cached.borrow().len() <= CACHED_CHUNKS + READ_AHEAD);
        // any offset still, after the runs
        let mut buf = vec![0u8; 100];
        f.read_exact_at(&mut buf, (17 * CHUNK - 50) as u64).unwrap();
        assert_eq!(buf, plain[17 * CHUNK - 50..17 * CHUNK + 50]);
        assert!(f.failure().is_none());
        // one byte changed in chunk 20 (inside the second run): everything before it
        // reads whole, the chunk itself fails and is named, a later one still opens
        let record = CHUNK + TAG_LEN;
        let mut bad = sealed.clone();
        bad[HEADER_LEN + 20 * record + 9] ^= 1;
        let f = sealed_file(&keys, d.path(), &bad).unwrap();
        let mut got = vec![0u8; 20 * CHUNK];
        (&f).read_exact(&mut got).unwrap();
        assert_eq!(got, plain[..20 * CHUNK]);
        assert!(f.failure().is_none(), "a chunk not yet read says nothing");
        let e = (&f).read(&mut buf).unwrap_err();
        assert!(is_tampered(&e), "{e}");
        assert!(e.to_string().contains("stored chunk 20"), "{e}");
        assert!(f.failure().unwrap().contains("stored chunk 20"));
        f.read_exact_at(&mut buf, 21 * CHUNK as u64).unwrap();
        assert_eq!(buf, plain[21 * CHUNK..21 * CHUNK + 100]);
    }

    #[test]
    fn a_changed_header_is_tampering_and_a_missing_key_is_not() {
        let (d, keys) = keys(Suite::Default);
        let path = d.path().join("s");
        let sealed = seal(&keys, b"sealed body", 4);
        let open = |bytes: &[u8], keys: &DataKeys| {
            fs::write(&path, bytes).unwrap();
            SealedFile::open(keys, fs::File::open(&path).unwrap(), b"ctx")
        };
        let mut s = Stored::Sealed(open(&sealed, &keys).unwrap());
        assert_eq!(s.len().unwrap(), 11);
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"sealed body");
        let mut two = [0u8; 2];
        assert_eq!(s.read_at(&mut two, 9).unwrap(), 2);
        assert_eq!(&two, b"dy");
        for at in [0, 16, 24] {
            let mut b = sealed.clone();
            b[at] ^= 9;
            let e = open(&b, &keys).err().unwrap();
            assert!(is_tampered(&e), "byte {at}: {e}");
        }
        let e = open(&sealed[..30], &keys).err().unwrap();
        assert!(is_tampered(&e), "{e}");
        let (_o, other) = super::tests::keys(Suite::Default);
        let e = open(&sealed, &other).err().unwrap();
        assert!(
            !is_tampered(&e) && e.to_string().contains("not in the data key file"),
            "{e}"
        );
        let plain = Stored::Plain(fs::File::open(&path).unwrap());
        assert_eq!(plain.failure(), None);
    }

    #[test]
    fn a_scratch_file_reads_back_and_rests_sealed_under_a_key_of_its_own() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let marker = b"MARKER-scratch ";
        let plain: Vec<u8> = marker.iter().copied().cycle().take(2 * CHUNK + 9).collect();
        let mut w = Scratch::new(dir.path()).unwrap();
        w.write_all(&plain).unwrap();
        let f = w.finish().unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "anonymous");
        let mut back = Vec::new();
        (&f).read_to_end(&mut back).unwrap();
        assert_eq!(back, plain);
        let stored = f.file().metadata().unwrap().len();
        let mut raw = vec![0u8; stored as usize];
        f.file().read_exact_at(&mut raw, 0).unwrap();
        assert!(!raw.windows(marker.len()).any(|w| w == marker));
    }

    #[test]
    fn plain_len_refuses_impossible_lengths() {
        let record = (CHUNK + TAG_LEN) as u64;
        let h = HEADER_LEN as u64;
        assert_eq!(plain_len(h + TAG_LEN as u64), Some(0));
        assert_eq!(plain_len(h + 3), None);
        assert_eq!(plain_len(h), None);
        assert_eq!(plain_len(3), None);
        assert_eq!(plain_len(h + record), Some(CHUNK as u64));
        assert_eq!(plain_len(h + record + 5), None);
        assert_eq!(plain_len(h + 2 * record + 17), Some(2 * CHUNK as u64 + 1));
    }
}
