//! Node configuration: the typed, validated [`Config`] a node runs with, how it is loaded
//! ([`Config::load`]) and the compliance review of each channel's policy ([`compliance`]).
//! Every problem names the file, the line and the key.
//!
//! ```text
//!  node.toml ─► raw: Raw* (serde, deny_unknown_fields, defaults)
//!            ─► validate: zones, node, peer, key files, channels (+ policies, compliance),
//!                         link, audit, diode, metrics
//!            ─► Config (or every problem, as Problems)
//! ```
//!
//! Both nodes of a pair can load the same channel list: each finds its role (sender or
//! receiver) from its own zone.

mod raw;
mod validate;

use crate::core::stream::Protocol;
use crate::core::wire::LinkKind;
use crate::keys::suite::Suite;
use crate::policy::Policy;
use crate::problem::{Problem, Problems, Source};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The default zones and levels (DESIGN.md §2).
pub const DEFAULT_ZONES: &[(&str, i64)] = &[
    ("internet", 0),
    ("mobile", 1),
    ("external", 1),
    ("court", 2),
    ("classified", 3),
];

/// The free-space floor when a configuration does not set one: 256 MiB.
pub const DEFAULT_MIN_FREE: u64 = 256 << 20;

/// Settings of the one-way diode link.
#[derive(Debug, Clone)]
pub struct DiodeConfig {
    /// The file holding the pair's 32-byte datagram key (64 hex digits).
    pub key_file: PathBuf,
    /// Where this node receives diode datagrams.
    pub listen: SocketAddr,
    /// Where this node sends its diode datagrams.
    pub peer: SocketAddr,
    /// The path MTU (1500, or 9000 with jumbo frames).
    pub mtu: usize,
    /// The sending rate, in bytes per second.
    pub rate_bytes_per_s: u64,
    /// Repair symbols per source symbol.
    pub repair_ratio: f64,
    /// How many times each object is sent (the carousel).
    pub copies: u32,
    /// How long a retired object's copy is held for `isogate resend` (ms; 0: not held).
    pub keep_sent_ms: u64,
    /// How long after its first pass an object is sent again with spare capacity
    /// (ms; 0: retired after its last planned copy).
    pub repeat_window_ms: u64,
    /// Blocks whose symbols are interleaved on the wire (1 to 4; 0 derives it from
    /// the repair symbols per block).
    pub interleave: u16,
    /// Repair symbols per source symbol of the small blocks of live streams (plus one
    /// per block).
    pub stream_repair_ratio: f64,
}

/// Audit log settings.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// When checkpoints are written.
    pub checkpoints: crate::audit::CheckpointPolicy,
    /// Live RFC 5424 export, if any.
    pub syslog: Option<crate::audit::syslog::Target>,
}

/// This node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Node name; manifests carry it as the sender.
    pub name: String,
    /// The zone this node sits in.
    pub zone: String,
    /// UDP address the QUIC link listens on.
    pub listen: SocketAddr,
    /// Spool and delivery state.
    pub state_dir: PathBuf,
    /// Holds `outbox/<channel>`, `inbox/<channel>` and `quarantine/<channel>`.
    pub exchange_dir: PathBuf,
    /// The audit log.
    pub audit_dir: PathBuf,
    /// Signing key of the pair's suite (PKCS#8 PEM: Ed25519 or SM2).
    pub signing_key: PathBuf,
    /// TLS certificate (PEM).
    pub tls_cert: PathBuf,
    /// TLS private key (PEM).
    pub tls_key: PathBuf,
    /// The keys this node switches to next, held ready beside the current ones.
    pub next: Option<NextNodeKeys>,
    /// The data key file (`keys::at_rest`): what it seals at rest (the quarantine's copies)
    /// is encrypted; without one, stored in plaintext.
    pub data_key: Option<PathBuf>,
    /// The pair's suite (`[node] suite`, both nodes alike): the algorithm of every signing
    /// key and public key named here, of the data key's current key, of the QUIC link's
    /// application protocol and of the diode's datagram tags (`keys::suite`).
    pub suite: Suite,
}

/// A node's next signing key and TLS certificate and key (`[node] next_*`): validated and
/// held ready; they take over when the operator names them as the current ones and sends
/// SIGHUP (see certs/README.md).
#[derive(Debug, Clone)]
pub struct NextNodeKeys {
    /// Signing key of the pair's suite (PKCS#8 PEM: Ed25519 or SM2).
    pub signing_key: PathBuf,
    /// TLS certificate (PEM).
    pub tls_cert: PathBuf,
    /// TLS private key (PEM).
    pub tls_key: PathBuf,
}

/// The peer's next certificate and signing key (`[peer] next_*`): accepted beside the
/// current ones while the peer rotates.
#[derive(Debug, Clone)]
pub struct NextPeerKeys {
    /// The peer's next TLS certificate.
    pub tls_cert: PathBuf,
    /// The peer's next public signing key (hex file: Ed25519's 64 digits or SM2's 130).
    pub signing_public_key: PathBuf,
}

/// The other node of the pair.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Peer node name.
    pub name: String,
    /// The peer's zone.
    pub zone: String,
    /// The peer's link address.
    pub address: SocketAddr,
    /// The peer's pinned TLS certificate.
    pub tls_cert: PathBuf,
    /// The peer's pinned public signing key (hex file: Ed25519's 64 digits or SM2's 130).
    pub signing_public_key: PathBuf,
    /// The peer's next certificate and key, accepted too while it rotates.
    pub next: Option<NextPeerKeys>,
}

/// This node's part in a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Files leave this node on this channel.
    Send,
    /// Files arrive at this node on this channel.
    Receive,
}

/// A validated channel, with this node's role in it.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Channel name.
    pub name: String,
    /// Zone the files come from.
    pub from: String,
    /// Zone the files go to.
    pub to: String,
    /// Toward a lower level.
    pub outbound: bool,
    /// Link type.
    pub link: LinkKind,
    /// The policy file.
    pub policy_file: PathBuf,
    /// The policy, loaded and validated.
    pub policy: Policy,
    /// This node's role.
    pub role: Role,
    /// Where applications drop files (sender).
    pub outbox: PathBuf,
    /// Where files are delivered (receiver).
    pub inbox: PathBuf,
    /// Where refused objects go.
    pub quarantine: PathBuf,
    /// Names of files still being written, left in the outbox like dot names.
    pub temp_names: TempNames,
    /// `kind = "stream"`: the channel carries live packets, not files; `None` for a files
    /// channel. A stream channel has no outbox, inbox or quarantine folder (the paths
    /// above are never made nor read), and its policy is a stream policy
    /// ([`Policy::stream`]).
    pub stream: Option<StreamChannel>,
    /// `kind = "messages"`: the channel carries JSON messages in batches; `None` for a
    /// files or stream channel. A messages channel has an outbox (`.json` and `.ndjson`
    /// files dropped there are taken as messages), a spool, a quarantine, and on the
    /// receiving node its inbox holds the message log read by the HTTP API. Its policy
    /// is a messages policy ([`Policy::messages`]).
    pub messages: Option<MessageChannel>,
}

impl Channel {
    /// Whether this is a `stream` channel (packets, not files).
    pub fn is_stream(&self) -> bool {
        self.stream.is_some()
    }

    /// Whether the channel has the folders of a `files` channel (outbox, inbox,
    /// quarantine, spool): a `files` or a `messages` channel, not a `stream` one.
    pub fn is_files(&self) -> bool {
        self.stream.is_none()
    }

    /// Whether this is a `messages` channel (JSON messages in batch objects).
    pub fn is_messages(&self) -> bool {
        self.messages.is_some()
    }
}

/// The delay budget of a stream channel on `link = "quic"` when `delay_ms` is not given.
pub const DEFAULT_STREAM_DELAY_QUIC_MS: u64 = 20;
/// The delay budget of a stream channel on `link = "diode"` (FEC window) when `delay_ms`
/// is not given.
pub const DEFAULT_STREAM_DELAY_DIODE_MS: u64 = 40;
/// Longest delay budget, in ms.
pub const MAX_STREAM_DELAY_MS: u64 = 1000;
/// Seconds without a packet after which a stream is stopped, when `silence_s` is not given.
pub const DEFAULT_STREAM_SILENCE_S: u64 = 5;
/// Longest `silence_s`: an hour.
pub const MAX_STREAM_SILENCE_S: u64 = 3600;

/// The settings of a `kind = "stream"` channel (`[[channel]]` keys `protocol`, `listen`,
/// `emit`, `delay_ms`, `silence_s`, `expected`): live RTP (RFC 3550) or raw MPEG-TS
/// (ISO/IEC 13818-1) over UDP, one way, packet by packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamChannel {
    /// What the UDP packets carry.
    pub protocol: Protocol,
    /// The UDP address the sending node receives the stream on (bound there only).
    pub listen: std::net::SocketAddr,
    /// The UDP address the receiving node sends accepted packets to.
    pub emit: std::net::SocketAddr,
    /// The delay budget, in ms (1..=1000; default 20 on quic, 40 on diode): how long a gap
    /// is waited for before later packets go on (reordering, and the diode's FEC window).
    pub delay_ms: u64,
    /// No admitted packet for this long (ms; `silence_s` · 1000, 1 s..=1 h, default 5 s):
    /// the stream is stopped (`stream_stopped` audited).
    pub silence_ms: u64,
    /// Whether `/healthz` fails while the stream is silent (an always-on feed).
    pub expected: bool,
}

/// A `messages` channel's settings: how messages are batched into objects on the sending
/// node, where they come from besides the HTTP API and the outbox, where the receiving
/// node also delivers them, and how long its message log keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageChannel {
    /// Most messages in one batch object (1..=10,000; default 1,000).
    pub batch_max: usize,
    /// Most bytes of message bodies in one batch object (1 KiB..=64 MiB; default 8 MiB).
    pub batch_max_bytes: u64,
    /// How long the first message of a batch waits for more before the batch is made
    /// durable, in ms (0..=1,000; default 2); up to 50 ms more while the channel has two
    /// batches on their way (`sender::flow`). Every message of a batch is answered after
    /// the one group commit that makes the batch durable.
    pub linger_ms: u64,
    /// How long the receiving node's message log keeps a message, in ms (`retention`,
    /// 1 minute..=365 days; default 7 days).
    pub retention_ms: u64,
    /// `source = "nats://HOST:PORT/STREAM/CONSUMER"`: the sending node also takes messages
    /// from this durable JetStream consumer.
    pub source: Option<NatsSource>,
    /// `deliver = "nats://HOST:PORT/SUBJECT"`: the receiving node also publishes every
    /// message of its log to this JetStream subject, with the message id as `Nats-Msg-Id`.
    pub deliver: Option<NatsDeliver>,
}

/// `batch_max` when a messages channel does not set it.
pub const DEFAULT_BATCH_MAX: usize = 1000;
/// Largest `batch_max`.
pub const MAX_BATCH_MAX: usize = 10_000;
/// `batch_max_bytes` when a messages channel does not set it: 8 MiB.
pub const DEFAULT_BATCH_MAX_BYTES: u64 = 8 << 20;
/// Smallest `batch_max_bytes`: 1 KiB.
pub const MIN_BATCH_MAX_BYTES: u64 = 1 << 10;
/// Largest `batch_max_bytes`: 64 MiB.
pub const MAX_BATCH_MAX_BYTES: u64 = 64 << 20;
/// `linger_ms` when a messages channel does not set it.
pub const DEFAULT_LINGER_MS: u64 = 2;
/// Largest `linger_ms`.
pub const MAX_LINGER_MS: u64 = 1000;
/// `retention` when a messages channel does not set it: 7 days, in ms.
pub const DEFAULT_RETENTION_MS: u64 = 7 * 86_400_000;
/// Shortest `retention`: a minute, in ms.
pub const MIN_RETENTION_MS: u64 = 60_000;
/// Longest `retention`: 365 days, in ms.
pub const MAX_RETENTION_MS: u64 = 365 * 86_400_000;
/// The port of a `nats://` address that names none (the NATS default).
pub const DEFAULT_NATS_PORT: u16 = 4222;

/// Why a size (`batch_max_bytes`) was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// Neither an integer nor a number with a known unit.
    #[error("{0:?}: write a number of bytes, or a number with B, KiB, MiB or GiB, e.g. \"8MiB\"")]
    Form(String),
    /// Negative, or too large to count.
    #[error("{0}: out of range")]
    Range(String),
}

/// Reads a size in bytes: a TOML integer, or a string of digits with an optional unit
/// `B`, `KiB`, `MiB` or `GiB` (powers of 1024; a space between is allowed), e.g. `"8MiB"`.
///
/// # Errors
/// [`SizeError`] for any other value, a negative one, or one over `u64`.
pub fn parse_size(v: &toml::Value) -> Result<u64, SizeError> {
    match v {
        toml::Value::Integer(n) => u64::try_from(*n).map_err(|_| SizeError::Range(n.to_string())),
        toml::Value::String(s) => {
            let t = s.trim();
            let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let (digits, unit) = t.split_at(split);
            let shift = match unit.trim() {
                "" | "B" => 0,
                "KiB" => 10,
                "MiB" => 20,
                "GiB" => 30,
                _ => return Err(SizeError::Form(s.clone())),
            };
            if digits.is_empty() {
                return Err(SizeError::Form(s.clone()));
            }
            let n: u64 = digits.parse().map_err(|_| SizeError::Range(s.clone()))?;
            n.checked_mul(1u64 << shift)
                .ok_or_else(|| SizeError::Range(s.clone()))
        }
        other => Err(SizeError::Form(other.to_string())),
    }
}

/// Why a `nats://` address (`source`, `deliver`) was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NatsUrlError {
    /// Not `nats://...`.
    #[error("{0:?}: a NATS address begins with nats://")]
    Scheme(String),
    /// User and password in the address.
    #[error("{0:?}: credentials are not taken from the address; give the server without user@")]
    Credentials(String),
    /// The host or port is missing or wrong.
    #[error(
        "{0:?}: the server must be HOST:PORT (a host name, an IPv4 address or [IPv6], and a port 1-65535)"
    )]
    Server(String),
    /// The path does not have the parts this key needs.
    #[error("{url:?}: write {form}")]
    Path {
        /// The address as given.
        url: String,
        /// The form it must take.
        form: &'static str,
    },
    /// A stream, consumer or subject name JetStream refuses.
    #[error("{url:?}: {what} {name:?} {why}")]
    Name {
        /// The address as given.
        url: String,
        /// `stream`, `consumer` or `subject`.
        what: &'static str,
        /// The name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// Splits `nats://HOST[:PORT]/PATH` into `host:port` (the port 4222 when left out) and the
/// path, checking the host and port.
fn nats_server(url: &str) -> Result<(String, &str), NatsUrlError> {
    let rest = url
        .strip_prefix("nats://")
        .ok_or_else(|| NatsUrlError::Scheme(url.to_string()))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.contains('@') {
        return Err(NatsUrlError::Credentials(url.to_string()));
    }
    let bad = || NatsUrlError::Server(url.to_string());
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (ip, after) = v6.split_once(']').ok_or_else(bad)?;
        ip.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (format!("[{ip}]"), port)
    } else {
        let (h, p) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let host_ok = !h.is_empty()
            && h.len() <= 253
            && h.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
            });
        if !host_ok {
            return Err(bad());
        }
        (h.to_string(), p)
    };
    let port = match port {
        None => DEFAULT_NATS_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(bad()),
        },
    };
    Ok((format!("{host}:{port}"), path))
}

/// What JetStream refuses in a stream or consumer name: empty, longer than 255 bytes,
/// whitespace, `.`, `*`, `>`, a path separator, or a control character.
fn jetstream_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.len() > 255 {
        Some("is longer than 255 bytes")
    } else if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
    {
        Some("may not hold whitespace, '.', '*', '>', '/' or '\\'")
    } else {
        None
    }
}

impl NatsSource {
    /// Reads `nats://HOST:PORT/STREAM/CONSUMER` (the port 4222 when left out): the server,
    /// the JetStream stream and its durable pull consumer (names as JetStream allows them).
    ///
    /// # Errors
    /// [`NatsUrlError`] naming what is wrong.
    pub fn parse(url: &str) -> Result<NatsSource, NatsUrlError> {
        let (server, path) = nats_server(url)?;
        let form = "nats://HOST:PORT/STREAM/CONSUMER (a durable pull consumer of that stream)";
        let parts: Vec<&str> = path.split('/').collect();
        let [stream, consumer] = parts[..] else {
            return Err(NatsUrlError::Path {
                url: url.to_string(),
                form,
            });
        };
        for (what, name) in [("stream", stream), ("consumer", consumer)] {
            if let Some(why) = jetstream_name_problem(name) {
                return Err(NatsUrlError::Name {
                    url: url.to_string(),
                    what,
                    name: name.to_string(),
                    why,
                });
            }
        }
        Ok(NatsSource {
            server,
            stream: stream.to_string(),
            consumer: consumer.to_string(),
        })
    }
}

impl NatsDeliver {
    /// Reads `nats://HOST:PORT/SUBJECT` (the port 4222 when left out): the server and the
    /// subject published to, dot-separated tokens without wildcards (`*`, `>`), whitespace
    /// or empty tokens.
    ///
    /// # Errors
    /// [`NatsUrlError`] naming what is wrong.
    pub fn parse(url: &str) -> Result<NatsDeliver, NatsUrlError> {
        let (server, subject) = nats_server(url)?;
        if subject.is_empty() || subject.contains('/') {
            return Err(NatsUrlError::Path {
                url: url.to_string(),
                form: "nats://HOST:PORT/SUBJECT (a subject a JetStream stream captures)",
            });
        }
        let why = if subject.len() > 255 {
            Some("is longer than 255 bytes")
        } else if subject.split('.').any(str::is_empty) {
            Some("has an empty token (a leading, trailing or double '.')")
        } else if subject.contains(['*', '>']) {
            Some("has a wildcard: a message is published to one subject")
        } else if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Some("may not hold whitespace")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(NatsUrlError::Name {
                url: url.to_string(),
                what: "subject",
                name: subject.to_string(),
                why,
            });
        }
        Ok(NatsDeliver {
            server,
            subject: subject.to_string(),
        })
    }
}

/// A durable JetStream pull consumer the sending node takes messages from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsSource {
    /// `host:port` of the NATS server.
    pub server: String,
    /// The JetStream stream's name.
    pub stream: String,
    /// The durable consumer's name on that stream (made by the operator).
    pub consumer: String,
}

/// A JetStream subject the receiving node publishes messages to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsDeliver {
    /// `host:port` of the NATS server.
    pub server: String,
    /// The subject (a JetStream stream must capture it).
    pub subject: String,
}

/// The node's message API (`[messages]` in the node's config): one HTTP address serving
/// `POST /v1/channels/{channel}/messages` for the channels this node sends and
/// `GET /v1/channels/{channel}/messages` for those it receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagesApiConfig {
    /// The HTTP address (loopback unless `allow_remote`).
    pub listen: SocketAddr,
    /// Whether a non-loopback `listen` is accepted (put TLS in front of it).
    pub allow_remote: bool,
    /// The DNS names the API answers for in a request's `Host` (lowercase, without a
    /// trailing dot), beside IP literals and `localhost`: a browser led to the API under
    /// another name (DNS rebinding) is refused.
    pub hosts: Vec<String>,
}

/// The temporary names of common tools, taken for work in progress when a channel does not
/// set `temp_names`: WinSCP and other SFTP clients, download managers, browsers, editors,
/// Microsoft Office owner files and LibreOffice lock files. (Names beginning with a dot,
/// such as rsync's `.name.XXXXXX`, are always work in progress.)
pub const DEFAULT_TEMP_NAMES: &[&str] = &[
    "*.filepart",
    "*.part",
    "*.crdownload",
    "*.tmp",
    "~$*",
    ".~lock.*",
];

/// A channel's patterns for names of files still being written: `*` matches any run of
/// characters, `?` one; letters match either case (`*.TMP` is `*.tmp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempNames(Vec<String>);

impl Default for TempNames {
    fn default() -> Self {
        TempNames(DEFAULT_TEMP_NAMES.iter().map(|p| p.to_string()).collect())
    }
}

impl TempNames {
    /// Patterns as given (checked by [`TempNames::problem`]).
    pub fn new(patterns: Vec<String>) -> TempNames {
        TempNames(patterns)
    }

    /// The patterns.
    pub fn patterns(&self) -> &[String] {
        &self.0
    }

    /// Whether `name` (a base name) is a temporary name: matches a pattern, or begins with
    /// a dot.
    pub fn matches(&self, name: &std::ffi::OsStr) -> bool {
        let bytes = name.as_encoded_bytes();
        if bytes.first() == Some(&b'.') {
            return true;
        }
        let name = name.to_string_lossy().to_lowercase();
        self.0
            .iter()
            .any(|p| crate::audit::query::glob(&p.to_lowercase(), &name))
    }

    /// What is wrong with one pattern, if anything: empty, longer than a name can be, a
    /// path (`/`), a control character, or nothing but wildcards (it would hold back
    /// every file).
    pub fn problem(pattern: &str) -> Option<&'static str> {
        if pattern.is_empty() {
            Some("an empty pattern")
        } else if pattern.len() > 255 {
            Some("longer than a file name can be (255 bytes)")
        } else if pattern.contains('/') {
            Some("a pattern matches a base name: it cannot hold '/'")
        } else if pattern.chars().any(char::is_control) {
            Some("a control character")
        } else if pattern.chars().all(|c| c == '*' || c == '?') {
            Some("only wildcards: it would hold back every file")
        } else {
            None
        }
    }
}

/// Intake timing.
#[derive(Debug, Clone, Copy)]
pub struct IntakeConfig {
    /// A file closed by its writer is taken once unchanged this long.
    pub settle_ms: u64,
    /// A file with no close seen is taken once unchanged this long.
    pub idle_ms: u64,
    /// Period of the full outbox rescan.
    pub rescan_ms: u64,
}

/// Where the node serves `/metrics` and `/healthz`.
#[derive(Debug, Clone, Copy)]
pub struct MetricsConfig {
    /// The HTTP address, if any.
    pub listen: Option<SocketAddr>,
}

/// Idle time after which a console session ends, when `idle_timeout` is not given.
pub const DEFAULT_CONSOLE_IDLE_MS: u64 = 15 * 60 * 1000;

/// Where and for whom the node serves its web console (`[console]`).
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// The HTTP address (loopback unless `allow_remote`).
    pub listen: SocketAddr,
    /// The password file: one `user:argon2id hash` per line.
    pub users: PathBuf,
    /// A session unused this long ends, in ms (1 minute to 24 hours).
    pub idle_timeout_ms: u64,
    /// Whether a non-loopback `listen` is accepted (put TLS in front of it).
    pub allow_remote: bool,
}

/// Disk safety.
#[derive(Debug, Clone, Copy)]
pub struct DiskConfig {
    /// Below this many free bytes on the state or exchange file system, intake pauses and
    /// the receiver asks the peer to send again later.
    pub min_free_bytes: u64,
}

/// The quarantine's upkeep.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuarantineConfig {
    /// Entries refused more than this many days ago are purged by the running node
    /// (audited `quarantine_purged`); `None` (the default): kept until an officer purges them.
    pub keep_days: Option<u32>,
}

/// Link tuning.
#[derive(Debug, Clone, Copy)]
pub struct LinkConfig {
    /// Objects in flight at once.
    pub max_in_flight: usize,
}

/// A validated node configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from.
    pub file: PathBuf,
    /// This node.
    pub node: NodeConfig,
    /// Its peer.
    pub peer: PeerConfig,
    /// Zone levels.
    pub zones: BTreeMap<String, i64>,
    /// Channels, with this node's role in each.
    pub channels: Vec<Channel>,
    /// Intake timing.
    pub intake: IntakeConfig,
    /// Link tuning.
    pub link: LinkConfig,
    /// Audit log settings.
    pub audit: AuditConfig,
    /// The metrics and health endpoint.
    pub metrics: MetricsConfig,
    /// The web console, if any.
    pub console: Option<ConsoleConfig>,
    /// The message API, when `[messages]` is set.
    pub messages: Option<MessagesApiConfig>,
    /// Disk safety.
    pub disk: DiskConfig,
    /// The quarantine's upkeep.
    pub quarantine: QuarantineConfig,
    /// The diode link, when a channel uses it.
    pub diode: Option<DiodeConfig>,
    /// What the compliance review accepts but warns about (explicit opt-outs, no antivirus).
    pub warnings: Vec<Problem>,
}

impl Config {
    /// What differs between this configuration (in force) and `new` (re-read on SIGHUP)
    /// that a reload cannot apply and only a restart does: channels added or removed, and
    /// for each channel its zones, link, role, policy file, folders, stream and messages
    /// settings, and the message API's `[messages] listen`. One line each, e.g.
    /// `channel to-internet: policy policy/a.toml → policy/b.toml` or
    /// `messages: listen 127.0.0.1:7404 → 127.0.0.1:7414`; empty when none.
    /// (Keys and the content of policy files are reloaded; see `node::rotate`.)
    pub fn restart_needed(&self, new: &Config) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.channels {
            let Some(n) = new.channels.iter().find(|n| n.name == c.name) else {
                out.push(format!("channel {}: removed", c.name));
                continue;
            };
            let mut field = |what: &str, old: String, new: String| {
                if old != new {
                    out.push(format!("channel {}: {what} {old} → {new}", c.name));
                }
            };
            field("from", c.from.clone(), n.from.clone());
            field("to", c.to.clone(), n.to.clone());
            field("link", format!("{:?}", c.link), format!("{:?}", n.link));
            field("role", format!("{:?}", c.role), format!("{:?}", n.role));
            let p = |x: &Path| x.display().to_string();
            field("policy", p(&c.policy_file), p(&n.policy_file));
            field("outbox", p(&c.outbox), p(&n.outbox));
            field("inbox", p(&c.inbox), p(&n.inbox));
            field("quarantine", p(&c.quarantine), p(&n.quarantine));
            field("stream", stream_text(&c.stream), stream_text(&n.stream));
            field(
                "messages",
                messages_text(&c.messages),
                messages_text(&n.messages),
            );
        }
        for n in &new.channels {
            if !self.channels.iter().any(|c| c.name == n.name) {
                out.push(format!("channel {}: added", n.name));
            }
        }
        let api = |m: &Option<MessagesApiConfig>| match m {
            None => "none".to_string(),
            Some(m) if m.allow_remote => format!("{} (allow_remote)", m.listen),
            Some(m) => m.listen.to_string(),
        };
        let (old, new) = (api(&self.messages), api(&new.messages));
        if old != new {
            out.push(format!("messages: listen {old} → {new}"));
        }
        out
    }
}

/// A messages channel's settings in one line, for [`Config::restart_needed`]; `none` for
/// a files or stream channel.
fn messages_text(m: &Option<MessageChannel>) -> String {
    match m {
        None => "none".to_string(),
        Some(m) => format!(
            "batch_max {} batch_max_bytes {} linger_ms {} retention_ms {} source {} deliver {}",
            m.batch_max,
            m.batch_max_bytes,
            m.linger_ms,
            m.retention_ms,
            m.source.as_ref().map_or("none".into(), |s| format!(
                "nats://{}/{}/{}",
                s.server, s.stream, s.consumer
            )),
            m.deliver.as_ref().map_or("none".into(), |d| format!(
                "nats://{}/{}",
                d.server, d.subject
            )),
        ),
    }
}

/// A stream channel's settings in one line, for [`Config::restart_needed`]; `files` for a
/// files channel.
fn stream_text(s: &Option<StreamChannel>) -> String {
    match s {
        None => "files".to_string(),
        Some(s) => format!(
            "{} listen {} emit {} delay_ms {} silence_s {} expected {}",
            s.protocol.as_str(),
            s.listen,
            s.emit,
            s.delay_ms,
            s.silence_ms / 1000,
            s.expected
        ),
    }
}

/// The errors of a policy whose `[approval]` pins an approver key of another suite than
/// the pair's `suite`: approvals are signed in the pair's suite (SM2 under `gm`, with
/// `isogate approve`).
pub fn approval_suite(policy_file: &Path, policy: &Policy, suite: Suite) -> Vec<Problem> {
    let Some(rule) = policy.approval.as_ref() else {
        return Vec::new();
    };
    let flag = suite.keygen_flag();
    rule.approvers
        .iter()
        .filter(|a| a.key.suite() != suite)
        .map(|a| Problem {
            file: policy_file.to_path_buf(),
            line: None,
            key: Some("approval.approvers".into()),
            message: format!(
                "approver {:?} is pinned with an {} key, but this pair runs the {suite} suite, whose approvals are signed with {}: make the approver's key with `isogate keygen --approver {}{flag}`",
                a.name,
                a.key.suite().signature(),
                suite.signature(),
                a.name
            ),
        })
        .collect()
}

/// The compliance errors of a policy whose `[approval]` pins a node's signing key as an
/// approver (`node_keys`: each key with what it is, e.g. "this node's signing key"): the
/// node, or its peer, could approve objects itself.
pub fn approval_self_pins(
    policy_file: &Path,
    policy: &Policy,
    node_keys: &[(crate::keys::VerifyKey, &str)],
) -> Vec<Problem> {
    let Some(rule) = policy.approval.as_ref() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for a in &rule.approvers {
        if let Some((_, what)) = node_keys.iter().find(|(k, _)| *k == a.key) {
            out.push(Problem {
                file: policy_file.to_path_buf(),
                line: None,
                key: Some("approval.approvers".into()),
                message: format!(
                    "approver {:?} is pinned with {what} ({}): a node could approve its own objects; pin the approver's own key (`isogate keygen --approver NAME`, with `--suite gm` on a gm pair)",
                    a.name,
                    a.key.fingerprint()
                ),
            });
        }
    }
    out
}

/// The compliance review of one channel's policy: least privilege for what crosses. Returns
/// the problems that refuse the configuration and the warnings that do not (a rule the
/// policy explicitly opts out of with `[compliance] opt_out`).
pub fn compliance(
    outbound: bool,
    policy_file: &Path,
    policy: &Policy,
) -> (Vec<Problem>, Vec<Problem>) {
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    let problem = |key: &str, message: String| Problem {
        file: policy_file.to_path_buf(),
        line: None,
        key: Some(key.to_string()),
        message,
    };
    if outbound {
        let required = [
            (
                "markings",
                policy.markings.is_none(),
                "an outbound channel must refuse classification markings ([markings] refuse = true)",
            ),
            (
                "personal_data",
                policy.personal_data.is_none(),
                "an outbound channel must refuse or mask personal data ([personal_data])",
            ),
        ];
        for (key, missing, message) in required {
            if !missing {
                continue;
            }
            if policy.opt_out.iter().any(|o| o == key) {
                warnings.push(problem(
                    key,
                    format!("{message}; opted out by compliance.opt_out"),
                ));
            } else {
                errors.push(problem(
                    key,
                    format!(
                        "{message}, or opt out explicitly with [compliance] opt_out = [\"{key}\"]"
                    ),
                ));
            }
        }
    }
    if outbound
        && let Some(m) = &policy.messages
        && m.schema.is_none()
    {
        errors.push(problem(
            "messages.schema",
            "an outbound messages channel must check every message against a JSON Schema ([messages] schema = \"FILE.schema.json\")".into(),
        ));
    }
    // a messages policy has no [antivirus]: messages are JSON, checked field by field
    if policy.antivirus.is_none() && policy.messages.is_none() {
        warnings.push(problem(
            "antivirus",
            "no antivirus: content crosses without a malware scan ([antivirus] clamd = ...)".into(),
        ));
    }
    (errors, warnings)
}

/// A node's folders, read from its configuration file alone: no policy file and no key
/// file is read (see [`Config::load_dirs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDirs {
    /// `[node] state_dir`, absolute.
    pub state_dir: PathBuf,
    /// `[node] audit_dir`, absolute.
    pub audit_dir: PathBuf,
}

impl Config {
    /// The node's folders from its configuration file alone, for the approvers' commands
    /// (`approve`, `reject`, `approvals list`), which work from the running node's views:
    /// a policy file on disk the node refuses (it keeps the last valid one) must not stop
    /// them.
    ///
    /// # Errors
    /// The file cannot be read or is not a configuration (file, line and key).
    pub fn load_dirs(file: &Path) -> Result<NodeDirs, Problems> {
        let text = crate::problem::read(file)?;
        let mut src = Source::new(file, &text);
        let file = &std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let Some(raw) = src.parse::<raw::RawConfig>() else {
            return Err(Problems(src.problems));
        };
        Ok(NodeDirs {
            state_dir: crate::problem::relative_to(file, raw.node.state_dir.get_ref()),
            audit_dir: crate::problem::relative_to(file, raw.node.audit_dir.get_ref()),
        })
    }

    /// The 1-based line of one of the `[node]` folder keys (`node.exchange_dir`,
    /// `node.state_dir`, `node.audit_dir`) in the configuration file; `None` for another
    /// key, or a file that cannot be read or parsed.
    pub fn node_dir_line(file: &Path, key: &str) -> Option<usize> {
        let text = std::fs::read_to_string(file).ok()?;
        let mut src = Source::new(file, &text);
        let raw = src.parse::<raw::RawConfig>()?;
        let value = match key {
            "node.exchange_dir" => &raw.node.exchange_dir,
            "node.state_dir" => &raw.node.state_dir,
            "node.audit_dir" => &raw.node.audit_dir,
            _ => return None,
        };
        Some(src.line_of(value.span().start))
    }

    /// Loads and validates a config file and the policies it names, collecting every problem.
    pub fn load(file: &Path) -> Result<Config, Problems> {
        Self::load_with(file, validate::PrivateKeys::Check)
    }

    /// [`Config::load`] without reading the private key files (signing key, TLS key): for
    /// commands that only read the node's folders (`quarantine list|show`), which an
    /// auditor runs without access to the keys. Never for a running node.
    pub fn load_without_private_keys(file: &Path) -> Result<Config, Problems> {
        Self::load_with(file, validate::PrivateKeys::Skip)
    }

    fn load_with(file: &Path, private: validate::PrivateKeys) -> Result<Config, Problems> {
        let text = crate::problem::read(file)?;
        let mut src = Source::new(file, &text);
        // Paths in the file are relative to its directory; keep them absolute from here on
        // (the outbox watch reports absolute paths).
        let file = &std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let Some(raw) = src.parse::<raw::RawConfig>() else {
            return Err(Problems(src.problems));
        };
        let cfg = validate::config(&mut src, file, &raw, private);
        src.finish(cfg)
    }

    /// The signing keys of this node and of its peer, current and next, each with what it
    /// is ("this node's signing key", ...): the keys no `[approval]` may pin (see
    /// [`approval_self_pins`]). Keys that cannot be read are left out.
    pub fn node_keys(&self) -> Vec<(crate::keys::VerifyKey, &'static str)> {
        validate::node_keys(&self.node, &self.peer, validate::PrivateKeys::Check)
    }

    /// The channels this node sends on, of every kind (files and stream).
    pub fn sending(&self) -> impl Iterator<Item = &Channel> {
        self.channels.iter().filter(|c| c.role == Role::Send)
    }

    /// The channels this node receives on, of every kind (files and stream).
    pub fn receiving(&self) -> impl Iterator<Item = &Channel> {
        self.channels.iter().filter(|c| c.role == Role::Receive)
    }

    /// The `files` channels: those with outbox, inbox and quarantine folders.
    pub fn file_channels(&self) -> impl Iterator<Item = &Channel> {
        self.channels.iter().filter(|c| c.is_files())
    }

    /// The `files` channels this node sends on (outbox watch, spool, approvals).
    pub fn file_sending(&self) -> impl Iterator<Item = &Channel> {
        self.sending().filter(|c| c.is_files())
    }

    /// The `files` channels this node receives on (inbox, landing).
    pub fn file_receiving(&self) -> impl Iterator<Item = &Channel> {
        self.receiving().filter(|c| c.is_files())
    }

    /// The `stream` channels, each with its settings: those this node sends on
    /// (`role == Send`: it binds `listen`) and those it receives on (it emits to `emit`).
    pub fn stream_channels(&self) -> impl Iterator<Item = (&Channel, &StreamChannel)> {
        self.channels
            .iter()
            .filter_map(|c| c.stream.as_ref().map(|s| (c, s)))
    }

    /// A channel by name.
    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn temporary_names_of_common_tools_are_work_in_progress() {
        let t = TempNames::default();
        for wip in [
            "判决书.pdf.filepart",
            "a.part",
            "video.mp4.crdownload",
            "x.tmp",
            "X.TMP",
            "~$报告.docx",
            ".~lock.报告.docx#",
            ".报告.docx.Xy12Ab",
            ".hidden",
        ] {
            assert!(t.matches(OsStr::new(wip)), "{wip}");
        }
        for done in [
            "判决书.pdf",
            "part",
            "a.partial",
            "tmp.pdf",
            "a~$b.docx",
            "filepart",
        ] {
            assert!(!t.matches(OsStr::new(done)), "{done}");
        }
        let own = TempNames::new(vec!["*.upload".into()]);
        assert!(own.matches(OsStr::new("a.upload")));
        assert!(
            !own.matches(OsStr::new("a.filepart")),
            "the list replaces the defaults"
        );
        assert!(own.matches(OsStr::new(".a")), "dot names always wait");
    }

    #[test]
    fn sizes_are_integers_or_binary_units() {
        use toml::Value;
        let s = |t: &str| parse_size(&Value::String(t.into()));
        assert_eq!(parse_size(&Value::Integer(1024)), Ok(1024));
        assert_eq!(s("8MiB"), Ok(8 << 20));
        assert_eq!(s("8 MiB"), Ok(8 << 20));
        assert_eq!(s("64KiB"), Ok(64 << 10));
        assert_eq!(s("1GiB"), Ok(1 << 30));
        assert_eq!(s("4096"), Ok(4096));
        assert_eq!(s("10B"), Ok(10));
        for bad in ["8MB", "MiB", "", "8.5MiB", "-1", "8 mib", "eight"] {
            assert!(matches!(s(bad), Err(SizeError::Form(_))), "{bad}");
        }
        assert!(matches!(
            parse_size(&Value::Integer(-1)),
            Err(SizeError::Range(_))
        ));
        assert!(matches!(s("99999999999GiB"), Err(SizeError::Range(_))));
        assert!(matches!(
            parse_size(&Value::Boolean(true)),
            Err(SizeError::Form(_))
        ));
    }

    #[test]
    fn nats_sources_name_server_stream_and_consumer() {
        let s = NatsSource::parse("nats://127.0.0.1:4222/NOTICES/isogate").unwrap();
        assert_eq!(
            s,
            NatsSource {
                server: "127.0.0.1:4222".into(),
                stream: "NOTICES".into(),
                consumer: "isogate".into()
            }
        );
        assert_eq!(
            NatsSource::parse("nats://nats.court.local/S/C")
                .unwrap()
                .server,
            "nats.court.local:4222"
        );
        assert_eq!(
            NatsSource::parse("nats://[::1]:4223/S/C").unwrap().server,
            "[::1]:4223"
        );
        for (bad, says) in [
            ("http://h:4222/S/C", "begins with nats://"),
            ("nats://u:p@h:4222/S/C", "credentials"),
            ("nats://:4222/S/C", "HOST:PORT"),
            ("nats://h:0/S/C", "HOST:PORT"),
            ("nats://h:99999/S/C", "HOST:PORT"),
            ("nats://h x:1/S/C", "HOST:PORT"),
            ("nats://[::1/S/C", "HOST:PORT"),
            ("nats://h:4222/S", "STREAM/CONSUMER"),
            ("nats://h:4222/S/C/D", "STREAM/CONSUMER"),
            ("nats://h:4222", "STREAM/CONSUMER"),
            ("nats://h:4222/S.1/C", "stream \"S.1\" may not hold"),
            ("nats://h:4222/S/", "consumer \"\" is empty"),
            ("nats://h:4222/S/c*", "consumer \"c*\" may not hold"),
        ] {
            let err = NatsSource::parse(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn nats_deliveries_name_server_and_subject() {
        let d = NatsDeliver::parse("nats://127.0.0.1:4222/court.notices").unwrap();
        assert_eq!(
            d,
            NatsDeliver {
                server: "127.0.0.1:4222".into(),
                subject: "court.notices".into()
            }
        );
        for (bad, says) in [
            ("nats://h:4222/", "nats://HOST:PORT/SUBJECT"),
            ("nats://h:4222/a/b", "nats://HOST:PORT/SUBJECT"),
            ("nats://h:4222/a..b", "empty token"),
            ("nats://h:4222/a.", "empty token"),
            ("nats://h:4222/a.*", "wildcard"),
            ("nats://h:4222/a.>", "wildcard"),
            ("nats://h:4222/a b", "whitespace"),
            ("tls://h:4222/a", "nats://"),
        ] {
            let err = NatsDeliver::parse(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn bad_patterns_are_named() {
        for p in DEFAULT_TEMP_NAMES {
            assert_eq!(TempNames::problem(p), None, "{p}");
        }
        for bad in ["", "*", "?*?", "a/b", "a\u{7}", &"x".repeat(256)] {
            assert!(TempNames::problem(bad).is_some(), "{bad:?}");
        }
    }
}
