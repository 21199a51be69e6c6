//! The `isogate` command line: parse it, dispatch; nothing else. Each command's work and
//! output live in its module under `isogate::cli`, which takes plain arguments (paths,
//! options, formats) and knows nothing of clap.
//!
//! The help texts are the manual: `isogate --help` and `isogate help COMMAND` carry the
//! description, examples, files, signals and exit status that a man page would.
//! `isogate completions SHELL` prints the shell completion scripts that the Debian package
//! ships (committed under `packaging/completions/`, checked current by a test below); the
//! man pages, one per command and subcommand, are generated from the same definition into
//! `packaging/man/` by a test below, which also fails when they are stale.

// the one exception, glibc's mallopt, is allowed where it is made (`heap`)
#![deny(unsafe_code)]

use anyhow::{Context, Result};
use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use isogate::audit::query as audit_query;
use isogate::cli::{
    self,
    init::{DEFAULT_PORT_BASE, LabLink},
    process,
};
use std::path::PathBuf;
use std::process::ExitCode;

const LONG_ABOUT: &str = "\
isogate: a cross-network secure isolation-exchange gateway (data diode, cross-domain solution).

Two nodes, one on each side of a network boundary (for example the court private network and
the internet), carry files across it through a one-way, policy-checked ferry. Applications drop
files into a node's outbox; each file is inspected against the channel's deny-by-default policy,
described by an Ed25519-signed manifest with the SHA-256 of its content, carried over QUIC with
mutual TLS to the pinned peer, verified and inspected again by the receiving node with its own
copy of the policy, and delivered whole into the inbox on the other side, or quarantined there
with a stable reason code. Every step is written to each node's hash-chained audit log with
signed checkpoints.";

const AFTER_LONG_HELP: &str = "\
Examples:
  Try it on one host: two nodes, sample files, what crosses and what is refused
    isogate demo

  Write a two-node lab and run it by hand
    isogate init /tmp/lab
    isogate run --config /tmp/lab/court.toml &
    isogate run --config /tmp/lab/internet.toml &
    cp report.pdf /tmp/lab/court/outbox/to-internet/

  Set up a boundary host (Debian package installed)
    isogate keygen --name court --out /etc/isogate/certs
    isogate check --config /etc/isogate/node.toml
    systemctl enable --now isogate

  Check the audit log, find what crossed, prove that a file did
    isogate audit verify /var/lib/isogate/audit --key /etc/isogate/certs/court.sign.pub
    isogate audit query /var/lib/isogate/audit --event landed --name '*.pdf'
    isogate audit prove /var/lib/isogate/audit OBJECT_ID --out proof.json

Files (as the Debian package and isogate.service lay them out):
  /etc/isogate/node.toml       the node's configuration
  /etc/isogate/policy/*.toml   channel policies (reloaded when they change, or on SIGHUP)
  /etc/isogate/certs/          this node's keys and the peer's pinned public files
  /var/lib/isogate/            spool state and the audit log
  /srv/isogate/                outbox/, inbox/ and quarantine/ of every channel

Signals (isogate run):
  SIGTERM, SIGINT   stop cleanly; objects in flight stay in the spool and are sent at the
                    next start
  SIGHUP            reload the policies; an invalid policy is refused and the one in force
                    stays

Environment:
  RUST_LOG          log filter, for example RUST_LOG=debug or RUST_LOG=isogate=debug,quinn=warn

Exit status:
  0 on success; otherwise non-zero with a one-line reason on standard error. `check` exits
  non-zero on any problem in the configuration, `audit verify` on any tampering, `audit
  reconcile` when the two logs do not match.

`isogate help COMMAND` describes each command.";

/// isogate: a cross-network secure isolation-exchange gateway.
///
/// Two nodes on the two sides of a network boundary carry files across it through a
/// one-way, policy-checked ferry, with signed manifests and an audit log.
#[derive(Parser)]
#[command(
    name = "isogate",
    version,
    about,
    long_about = LONG_ABOUT,
    after_help = "`isogate --help` shows examples, files, signals and exit status.",
    after_long_help = AFTER_LONG_HELP
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Link {
    /// QUIC with mutual TLS.
    Quic,
    /// One-way UDP with forward error correction (nothing is sent back).
    Diode,
}

/// A group of `isogate bench` figures.
#[derive(Clone, Copy, ValueEnum)]
enum Figure {
    /// Content inspection of generated documents, on one core.
    Inspect,
    /// Idle CPU, the large file, 4 KiB files per second and the latency at 100 files/s.
    Files,
    /// The stream channel's added latency and highest rate without loss.
    Streams,
    /// Messages per second through the message API and their latency at 1,000/s.
    Messages,
    /// Peak resident memory of each node while the very large file crosses.
    Memory,
}

impl Figure {
    fn bench(self) -> cli::bench::Figure {
        match self {
            Figure::Inspect => cli::bench::Figure::Inspect,
            Figure::Files => cli::bench::Figure::Files,
            Figure::Streams => cli::bench::Figure::Streams,
            Figure::Messages => cli::bench::Figure::Messages,
            Figure::Memory => cli::bench::Figure::Memory,
        }
    }
}

impl Link {
    fn lab(self) -> LabLink {
        match self {
            Link::Quic => LabLink::Quic,
            Link::Diode => LabLink::Diode,
        }
    }
}

impl From<LogFormat> for process::LogFormat {
    fn from(f: LogFormat) -> Self {
        match f {
            LogFormat::Text => process::LogFormat::Text,
            LogFormat::Json => process::LogFormat::Json,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum CheckFormat {
    /// A readable report.
    Text,
    /// One JSON document.
    Json,
}

impl From<CheckFormat> for cli::check::Format {
    fn from(f: CheckFormat) -> Self {
        match f {
            CheckFormat::Text => cli::check::Format::Text,
            CheckFormat::Json => cli::check::Format::Json,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Write a ready two-node lab (court <-> internet) into DIR.
    #[command(
        long_about = "\
Write a ready two-node lab (court <-> internet) into DIR: the config of each node
(court.toml, internet.toml), the keys of both (certs/), the two channel policies (policy/) and
each node's outbox, inbox, quarantine, state and audit directories. Both nodes run on this host,
on loopback, their links on ports N and N+1. Start each with `isogate run`.",
        after_long_help = "\
Examples:
  isogate init /tmp/lab
  isogate init /tmp/lab --port-base 7500 --clamd unix:/run/clamav/clamd.ctl
  isogate init /tmp/lab-gm --suite gm        (a pair on the national suite)
  isogate run --config /tmp/lab/court.toml"
    )]
    Init {
        /// The lab directory (created; must be absent or empty).
        dir: PathBuf,
        /// Link type of the lab's channels.
        #[arg(long, value_enum, default_value_t = Link::Quic)]
        link: Link,
        /// Links listen on N and N+1.
        #[arg(long, default_value_t = DEFAULT_PORT_BASE)]
        port_base: u16,
        /// Turn antivirus scanning on in the lab policies: clamd at unix:PATH or
        /// tcp:HOST:PORT.
        #[arg(long, value_name = "ADDR")]
        clamd: Option<isogate::policy::antivirus::ClamdAddr>,
        /// The pair's suite: `default` (Ed25519, SHA-256, AES-256-GCM) or `gm` (SM2,
        /// HMAC-SM3, SM4-GCM): the nodes' signing and data keys and `[node] suite`.
        #[arg(long, default_value = "default", value_name = "SUITE")]
        suite: isogate::keys::suite::Suite,
    },
    /// Run a node until SIGTERM or SIGINT.
    #[command(
        long_about = "\
Run a node until SIGTERM or SIGINT. The node loads its configuration and policies and applies
the same review as `isogate check` (it refuses to start on any problem), opens its audit log,
brings up its link to the peer and watches its outboxes. It logs to standard error. Under
systemd (Type=notify) it reports when it is ready and feeds the watchdog. SIGHUP reloads the
policies; SIGTERM stops it cleanly, leaving objects in flight in the spool for the next start.",
        after_long_help = "\
Examples:
  isogate run --config /etc/isogate/node.toml
  RUST_LOG=debug isogate --log-format json run --config /tmp/lab/court.toml
  systemctl start isogate      (runs `isogate run --config /etc/isogate/node.toml`)
  systemctl reload isogate     (SIGHUP: reload the policies)"
    )]
    Run {
        /// The node's configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Measure this machine's limits and the gateway's figures, as ratios.
    #[command(
        long_about = "\
Measure, in one run, this machine's limits (one core's SHA-256, raw loopback UDP and TCP) and,
on a fresh lab per link type with both nodes running as `isogate run` processes, the gateway's
figures: one large file drop to landed, 4 KiB files per second, latency at 100 files/s, and
the peak resident memory of each node while a very large file crosses; first, content inspection
on one core of documents as Chinese office tools write them. Each figure is printed
beside the limit it is bounded by, as a ratio. Needs free disk space for the test files
(1 GiB and 4 GiB by default).",
        after_long_help = "\
Examples:
  isogate bench
  isogate bench --link quic --big-mib 256 --huge-mib 512 --small-files 1000
  isogate bench --link diode --only messages"
    )]
    Bench {
        /// Put the labs here instead of a new temporary directory.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The first lab's port base; each further lab adds 10.
        #[arg(long, default_value_t = 7600)]
        port_base: u16,
        /// Link types to measure (repeat the flag; default: quic and diode).
        #[arg(long, value_enum)]
        link: Vec<Link>,
        /// The large file, in MiB; 0 skips its figure.
        #[arg(long, default_value_t = 1024)]
        big_mib: u64,
        /// The very large file of the memory figure, in MiB; 0 skips it.
        #[arg(long, default_value_t = 4096)]
        huge_mib: u64,
        /// How many 4 KiB files; 0 skips their figure.
        #[arg(long, default_value_t = 3000)]
        small_files: usize,
        /// How many files of `--parallel-mib` are dropped at once for the parallel figure;
        /// 0 skips it.
        #[arg(long, default_value_t = 8)]
        parallel: usize,
        /// Each file of the parallel figure, in MiB.
        #[arg(long, default_value_t = 256)]
        parallel_mib: u64,
        /// Seconds of the 100 files/s latency run; 0 skips it.
        #[arg(long, default_value_t = 10)]
        latency_secs: u64,
        /// Size of each generated document (CID-font PDF, OFD, legacy Word) of the
        /// content-inspection figures, in MiB; 0 skips them.
        #[arg(long, default_value_t = 256)]
        inspect_mib: u64,
        /// The diode lab's repeat window in seconds (0: no repeats; default: the lab's
        /// 600), to measure what repeats cost the objects sent meanwhile.
        #[arg(long)]
        repeat_window_s: Option<u64>,
        /// The diode lab's pacing in Mbit/s (default: the lab's 4,000), to measure what the
        /// nodes keep up with on a machine faster than the lab's default assumes.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        diode_rate_mbit: Option<u64>,
        /// Measure only these figures (repeat the flag; default: all). The machine's
        /// limits are always printed.
        #[arg(long, value_enum)]
        only: Vec<Figure>,
        /// The pairs' suites to measure, each on its own labs in the same run (repeat the
        /// flag: `--suite default --suite gm`; default: default).
        #[arg(long, value_name = "SUITE")]
        suite: Vec<isogate::keys::suite::Suite>,
    },
    /// Make a lab, run both nodes here, drop sample files, and show what crosses.
    #[command(
        long_about = "\
Make a lab (in a new temporary directory, or DIR), run both nodes in this process, drop a few
sample files into the outboxes (court documents with Chinese names, and an executable disguised
as a PDF that the policy refuses), and print what crosses and what is refused, with the reason,
as it happens, until Ctrl-C.",
        after_long_help = "\
Examples:
  isogate demo
  isogate demo --dir /tmp/demo --port-base 7500"
    )]
    Demo {
        /// Put the lab here instead of a new temporary directory.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Links listen on N and N+1.
        #[arg(long, default_value_t = DEFAULT_PORT_BASE)]
        port_base: u16,
    },
    /// Validate a configuration and the policies it names; list every problem.
    #[command(
        long_about = "\
Validate a configuration and the policies it names, list every problem with its file, line
and key, and print each channel's effective rules: the compliance review. It refuses a channel
out of the classified zone, an outbound channel without marking and personal-data rules, a
missing size limit and a wildcard type; a channel without antivirus is a warning. Exits
non-zero on any problem.",
        after_long_help = "\
Examples:
  isogate check --config /etc/isogate/node.toml
  isogate check --config /etc/isogate/node.toml --format json"
    )]
    Check {
        /// The node's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Report format.
        #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
        format: CheckFormat,
    },
    /// Verify, query, prove from, reconcile, export and report on audit logs.
    #[command(after_long_help = "\
Examples:
  isogate audit verify /var/lib/isogate/audit --key /etc/isogate/certs/court.sign.pub
  isogate audit query /var/lib/isogate/audit --verdict reject --since 2026-11-01T00:00:00Z
  isogate audit query /var/lib/isogate/audit --since yesterday --tz Asia/Shanghai \\
      --event refused,quarantined --not-reason wrong_channel
  isogate audit query /var/lib/isogate/audit --sha256 HASH --format json
  isogate audit prove /var/lib/isogate/audit OBJECT_ID --out proof.json
  isogate audit verify-proof proof.json --key court.sign.pub
  isogate audit reconcile court-audit/ internet-audit/ --key court.sign.pub
  isogate audit export /var/lib/isogate/audit --format jsonl
  isogate audit export /var/lib/isogate/audit --format syslog --cursor /var/lib/siem/isogate.seq
  isogate audit report /var/lib/isogate/audit --since -7d --tz Asia/Shanghai --format html --out week.html")]
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Make a node's signing key pair and TLS certificate and key.
    #[command(
        long_about = "\
Make a node's signing key pair (Ed25519; SM2 with --suite gm) and its self-signed TLS
certificate and key, as
NAME.sign.key, NAME.sign.pub, NAME.tls.key and NAME.tls.crt in the --out directory. Private
keys are written mode 0600 and an existing file is never overwritten. Copy only NAME.sign.pub
and NAME.tls.crt to the peer host: its configuration pins them. The certificate's subject is
CN=NAME. Prints the fingerprints of the certificate and of the signing key (sha256:…, as logs
and `isogate check` show them, and in groups of four to compare by telephone with the peer's
operator) and the public key's hex digits.",
        after_long_help = "\
Examples:
  isogate keygen --name court --out /etc/isogate/certs
  isogate keygen --name court --suite gm --out /etc/isogate/certs-gm
                (an SM2 signing key, for the national suite)
  isogate keygen --data-key /etc/isogate/certs/court.data.key
                (the node's data key, or a new one put first when the file exists;
                then SIGHUP the node)
  chown isogate /etc/isogate/certs/court.sign.key /etc/isogate/certs/court.tls.key
                (isogate.service runs as the user isogate: it alone may read them)
  isogate keygen --approver zhang.wei --out ~/.isogate
                (an approver's key pair; paste the printed line into [approval] approvers
                of the channel policy on both nodes)
  isogate keygen --approver zhang.wei --suite gm --out ~/.isogate
                (an SM2 approver key, for a pair on the national suite)"
    )]
    Keygen {
        /// The node name (names the files).
        #[arg(
            long,
            required_unless_present_any = ["approver", "data_key"],
            conflicts_with_all = ["approver", "data_key"]
        )]
        name: Option<String>,
        /// Make an approver's key pair instead, for a channel's [approval]: NAME.approver.key
        /// (PKCS#8 PEM, 0600, kept by the approver) and NAME.approver.pub (64 hex digits; an
        /// SM2 key's 130 with --suite gm, for a gm pair: its approvers sign with `isogate
        /// approve`).
        #[arg(long, value_name = "NAME", conflicts_with = "data_key")]
        approver: Option<String>,
        /// Make a node's data key file instead (`[node] data_key`: seals the spool and the
        /// quarantine at rest, AES-256-GCM, or SM4-GCM with --suite gm), mode 0600; when FILE
        /// exists, a new key is put first (a rotation: it seals from the next SIGHUP, the
        /// older keys still open what they sealed).
        #[arg(long, value_name = "FILE")]
        data_key: Option<PathBuf>,
        /// Directory for the key files (private keys are written mode 0600).
        #[arg(
            long,
            required_unless_present = "data_key",
            conflicts_with = "data_key"
        )]
        out: Option<PathBuf>,
        /// The suite of the signing key, or of the approver's key: `default` (Ed25519) or
        /// `gm` (SM2, GB/T 32918.2, user id 1234567812345678; PKCS#8 PEM that OpenSSL reads,
        /// the public key as 130 hex digits). The TLS key is ECDSA P-256 under both. With
        /// --data-key: the cipher (AES-256-GCM or SM4-GCM); a rotation keeps the current
        /// key's unless given. Default: default.
        #[arg(long, value_name = "SUITE")]
        suite: Option<isogate::keys::suite::Suite>,
    },
    /// Ask the running diode sender to send held objects again (after a `lost` report).
    #[command(
        long_about = "\
Ask the running diode sender to send objects again: by id (as the receiving node's `lost`
records name them) or every object retired in a time range. A one-way link has no receipt, so
this is how an object the receiver reports lost crosses again. The sender holds each retired
object for [diode] keep_sent_s (default 3600 s); an object past that is reported as no longer
held. The request is written into the node's state directory and taken by the running node
within a second (or at its next start); each object sent again is audited `resent`. Exit 0:
every object asked for was queued; 2: some named ids (or the whole time range) match no held
object, the others are queued; 1: a bad configuration, id or time.",
        after_long_help = "\
Examples:
  isogate resend --config /etc/isogate/node.toml 4f0c2a9e8d7b6c5a4f3e2d1c0b9a8f7e
  isogate resend --config /etc/isogate/node.toml --since 2026-11-30T08:00:00Z --until 2026-11-30T09:00:00Z"
    )]
    Resend {
        /// The sending node's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Object ids to send again.
        ids: Vec<String>,
        /// Objects retired at or after this time: RFC 3339 with any offset, a wall time or
        /// date in --tz, now/today/yesterday, -1h/-30m, or ms since the epoch.
        #[arg(long, allow_hyphen_values = true)]
        since: Option<String>,
        /// Objects retired before this time (the forms of --since).
        #[arg(long, allow_hyphen_values = true)]
        until: Option<String>,
        /// Time zone of wall times and dates in --since/--until: UTC, an IANA name
        /// (Asia/Shanghai) or an offset (+08:00); default: the system's.
        #[arg(long, value_name = "ZONE")]
        tz: Option<String>,
        /// Seconds to wait for the running node's answer.
        #[arg(long, default_value_t = 10)]
        wait: u64,
    },
    /// The security officer's work on a node's quarantine: list, show, release, purge.
    #[command(
        long_about = "\
The security officer's work on a node's quarantine (<exchange>/quarantine/<channel>/, where
refused objects wait with their reason). `list` and `show` only read: they work with the node
stopped. `release` and `purge` are done by the running node, the audit log's one writer: the
command writes its request into the node's state directory and waits for the answer; each
action is audited (`quarantine_released`, `quarantine_purged`) with the user the command runs
for (SUDO_USER or the login name), the uid that owns the request file, and the --note.

A release is never an override. On the sending node the entry crosses again through the full
policy of both nodes (a new object whose records name the old id); on the receiving node it is
inspected again with that node's policy in force and lands under its own object id. Entries refused for an integrity reason
(signature, hash, size, wire) and entries that are not plain files are never released.",
        after_long_help = "\
Examples:
  isogate quarantine list --config /etc/isogate/node.toml --older-than 7d --tz Asia/Shanghai
  isogate quarantine show --config /etc/isogate/node.toml 4f0c2a9e8d7b6c5a4f3e2d1c0b9a8f7e
  sudo -u isogate isogate quarantine release --config /etc/isogate/node.toml \\
      4f0c2a9e8d7b6c5a4f3e2d1c0b9a8f7e --note 'false positive, ticket 1234'
  isogate quarantine purge --config /etc/isogate/node.toml --older-than 90d

Exit status: 0 done; 2 some entries were not released or purged (the answer says why);
1 a bad argument, an unknown id, or no running node answered (the request is withdrawn)."
    )]
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
    /// The web console's password file.
    #[command(after_long_help = "\
The console (`[console]` in the node's configuration) lets in the users of its password file:
one `user:hash` per line, argon2id hashes only. The password is read from the first line of
standard input (at least 12 characters, at least 5 different ones, not only spaces); the file
is written mode 0600 (a bare file name: in the current directory). Restart the node to apply
a change.

Examples:
  isogate console passwd --users /etc/isogate/console.users --user officer
  printf '%s\\n' \"$PASSWORD\" | isogate console passwd --users console.users --user li.na")]
    Console {
        #[command(subcommand)]
        command: ConsoleCommand,
    },
    /// Approve an object waiting for approval on the sending node, signed with your key.
    #[command(
        long_about = "\
Approve an object that waits on the sending node because its channel's policy has [approval].
Reads the node's pending view of the object (state/approvals/ID.json), finds you among the
channel's pinned approvers by the public half of --key, shows what you sign (name, size,
content hash, channel, approvals so far), signs \"isogate approval v1\\0\" || approve || 0x00 ||
the hash of the signed manifest body (SHA-256; SM3 on a gm pair) with your key (Ed25519, or SM2 on a gm pair), and hands the signature to
the running node (state/approval-requests/). The node checks it against the pinned
approvers of the policy in force, audits `approved` and answers; once `required` approvers
have signed (lower levels first), the object leaves with the approvals in its manifest, and
the receiving node checks them against its own pinned list. The node's private keys are
never read.",
        after_long_help = "\
Examples:
  isogate approvals list --config /etc/isogate/node.toml
  isogate approve 4f0c2a9e8d7b6c5a4f3e2d1c0b9a8f7e --key ~/.isogate/zhang.wei.approver.key \\
      --config /etc/isogate/node.toml --note 'checked, ticket 1234'

Exit status: 0 the approval was taken; 1 refused (the message says why), not pending, not
an approver, or no answer from the running node (the decision is withdrawn); 2 usage."
    )]
    Approve {
        /// The object id (32 hex digits; `isogate approvals list`).
        id: String,
        /// Your approver key (PKCS#8 PEM, from `isogate keygen --approver NAME`).
        #[arg(long)]
        key: PathBuf,
        /// The sending node's configuration file.
        #[arg(long, default_value = "/etc/isogate/node.toml")]
        config: PathBuf,
        /// A note, kept with the approval and in the audit log.
        #[arg(long)]
        note: Option<String>,
        /// Seconds to wait for the running node's answer.
        #[arg(long, default_value_t = 10)]
        wait: u64,
    },
    /// Reject an object waiting for approval: it goes to quarantine (approval_rejected).
    #[command(
        long_about = "\
Reject an object that waits for approval on the sending node. Signed with your approver key
like `isogate approve` (the signed word is `reject`); one pinned approver's rejection is
enough: the node audits `approval_rejected` and quarantines the object with the reason
`approval_rejected`, naming you and your note. It never reaches the other side.",
        after_long_help = "\
Examples:
  isogate reject 4f0c2a9e8d7b6c5a4f3e2d1c0b9a8f7e --key ~/.isogate/zhang.wei.approver.key \\
      --config /etc/isogate/node.toml --note 'personal data in the annex'

Exit status: 0 the rejection was taken; 1 refused, not pending, not an approver, or no
answer; 2 usage."
    )]
    Reject {
        /// The object id (32 hex digits).
        id: String,
        /// Your approver key (PKCS#8 PEM).
        #[arg(long)]
        key: PathBuf,
        /// The sending node's configuration file.
        #[arg(long, default_value = "/etc/isogate/node.toml")]
        config: PathBuf,
        /// Why (required; kept in the audit log and the quarantine reason).
        #[arg(long)]
        note: String,
        /// Seconds to wait for the running node's answer.
        #[arg(long, default_value_t = 10)]
        wait: u64,
    },
    /// Objects waiting for approval on the sending node.
    Approvals {
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
    /// Print the shell completion script for SHELL on standard output.
    #[command(after_long_help = "\
The Debian package installs the bash, zsh and fish scripts already. By hand:

Examples:
  isogate completions bash > /usr/share/bash-completion/completions/isogate
  isogate completions zsh > /usr/share/zsh/vendor-completions/_isogate
  isogate completions fish > ~/.config/fish/completions/isogate.fish")]
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum QueryFormat {
    /// Aligned columns.
    Table,
    /// One JSON record per line.
    Json,
    /// CSV with a header line.
    Csv,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    /// One JSON record per line, exactly as logged.
    Jsonl,
    /// One RFC 5424 syslog message per line, as the live export sends them.
    Syslog,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    /// Sections for a terminal.
    Text,
    /// One CSV table (columns: see the README).
    Csv,
    /// One JSON document (the report's stable field names).
    Json,
    /// A self-contained HTML page with charts, for printing (A4).
    Html,
}

impl From<ReportFormat> for isogate::audit::report_render::Format {
    fn from(f: ReportFormat) -> Self {
        match f {
            ReportFormat::Text => Self::Text,
            ReportFormat::Csv => Self::Csv,
            ReportFormat::Json => Self::Json,
            ReportFormat::Html => Self::Html,
        }
    }
}

impl From<QueryFormat> for audit_query::Format {
    fn from(f: QueryFormat) -> Self {
        match f {
            QueryFormat::Table => Self::Table,
            QueryFormat::Json => Self::Json,
            QueryFormat::Csv => Self::Csv,
        }
    }
}

impl From<ExportFormat> for audit_query::ExportFormat {
    fn from(f: ExportFormat) -> Self {
        match f {
            ExportFormat::Jsonl => Self::Jsonl,
            ExportFormat::Syslog => Self::Syslog,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ListFormat {
    /// Aligned columns.
    Table,
    /// One JSON object per entry, one a line.
    Json,
}

#[derive(Subcommand)]
enum ConsoleCommand {
    /// Set a user's password (read from standard input) in a console password file.
    Passwd {
        /// The password file (made when missing).
        #[arg(long)]
        users: PathBuf,
        /// The user name: letters, digits, '.', '_', '-'.
        #[arg(long)]
        user: String,
    },
}

#[derive(Subcommand)]
enum ApprovalsCommand {
    /// Every object waiting for approval: id, channel, approvals so far, since, expiry, name.
    List {
        /// The sending node's configuration file.
        #[arg(long, default_value = "/etc/isogate/node.toml")]
        config: PathBuf,
        /// Time zone of the times shown (UTC, Asia/Shanghai, +08:00); default: the system's.
        #[arg(long)]
        tz: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
}

#[derive(Subcommand)]
enum QuarantineCommand {
    /// Every entry: channel, object id, name, side, reason, detail, size, age and time.
    List {
        /// The node's configuration file.
        #[arg(long, default_value = "/etc/isogate/node.toml")]
        config: PathBuf,
        /// Only this channel.
        #[arg(long)]
        channel: Option<String>,
        /// Only this reason code.
        #[arg(long)]
        reason: Option<String>,
        /// Only entries refused longer ago than this age (30d, 12h, 1h30m) or before a time.
        #[arg(long, value_name = "AGE", allow_hyphen_values = true)]
        older_than: Option<String>,
        /// Time zone of the times shown (UTC, Asia/Shanghai, +08:00); default: the system's.
        #[arg(long)]
        tz: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// One entry: its reason file, how its copy rests (plaintext or sealed, with which key),
    /// whether it may be released, and its audit records (read only).
    Show {
        /// The node's configuration file.
        #[arg(long, default_value = "/etc/isogate/node.toml")]
        config: PathBuf,
        /// Time zone of the times shown; default: the system's.
        #[arg(long)]
        tz: Option<String>,
        /// The entry's object id.
        id: String,
    },
    /// Let entries cross again, through the full policy of both nodes (never an override).
    Release {
        /// The node's configuration file.
        #[arg(long, default_value = "/etc/isogate/node.toml")]
        config: PathBuf,
        /// Why (recorded in the audit log).
        #[arg(long)]
        note: Option<String>,
        /// Seconds to wait for the running node's answer.
        #[arg(long, default_value_t = 30)]
        wait: u64,
        /// The entries' object ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Remove entries for good (their audit records stay).
    Purge {
        /// The node's configuration file.
        #[arg(long, default_value = "/etc/isogate/node.toml")]
        config: PathBuf,
        /// Every entry refused longer ago than this age (30d, 12h) or before a time.
        #[arg(long, value_name = "AGE", allow_hyphen_values = true)]
        older_than: Option<String>,
        /// With --older-than: only this channel.
        #[arg(long, requires = "older_than")]
        channel: Option<String>,
        /// Time zone of a wall time given to --older-than; default: the system's.
        #[arg(long)]
        tz: Option<String>,
        /// Why (recorded in the audit log).
        #[arg(long)]
        note: Option<String>,
        /// Seconds to wait for the running node's answer.
        #[arg(long, default_value_t = 30)]
        wait: u64,
        /// The entries' object ids.
        ids: Vec<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the whole log and its signed checkpoints; non-zero exit on any tampering.
    #[command(after_long_help = "\
Exit status: 0 sound; 1 TAMPERED (the content does not match its chain or signatures) or
unreadable; 3 WRONG KEY (--key never signed this log, which its own keys did: the message
names their fingerprints. Not a pass: either the key given is the wrong one, or the whole log
was re-signed with another key; check the fingerprints named against the node's keys on record).")]
    Verify {
        /// The node's audit directory.
        dir: PathBuf,
        /// The node's signing public key (hex file) to pin; default: DIR/node.pub.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Print the records that match every filter given.
    #[command(long_about = "\
Print the records of a node's audit log that match every filter given, as an aligned table
(long details cut with …), JSON lines (each record as logged plus `time` in the zone) or CSV
(nothing cut). Filters take several values, comma-separated or by repeating the flag (a record
matches one of them); the --not-… flags exclude. Times are read and shown in --tz (default: the
system's zone). Exit status 2 when a filter value names nothing (the message lists the valid
ones).")]
    Query {
        /// The node's audit directory.
        dir: PathBuf,
        #[command(flatten)]
        filters: Box<Filters>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
        format: QueryFormat,
    },
    /// Write an inclusion proof of an object's records against the latest checkpoint.
    Prove {
        /// The node's audit directory.
        dir: PathBuf,
        /// The object id (32 hex digits).
        object_id: String,
        /// Write the proof here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The node's signing public key (hex file) to pin; default: DIR/node.pub.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Check a proof offline with the node's public key.
    VerifyProof {
        /// The proof file.
        proof: PathBuf,
        /// The node's signing public key (hex file).
        #[arg(long)]
        key: PathBuf,
    },
    /// List objects sent but never landed, and landed but never sent; non-zero if any.
    Reconcile {
        /// The sending node's audit directory.
        sender: PathBuf,
        /// The receiving node's audit directory.
        receiver: PathBuf,
        /// The sender's signing public key (hex file), as pinned in the receiver's config;
        /// default: SENDER_DIR/node.pub.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Also fail when the receiver witnessed none of the sender's checkpoints.
        #[arg(long)]
        strict: bool,
    },
    /// Export the records for a security management centre, all or only the new ones.
    #[command(long_about = "\
Export the records of a node's audit log that match every filter given (the filters of `audit
query`), one per line on standard output: as logged (jsonl), or as RFC 5424 syslog messages
(syslog, as the live export sends them). After the records, `exported=N last_seq=S` is written
on standard error: pass S as --after next time to get only newer records (S is the --after
given, or 0, when nothing new matched), or let --cursor FILE keep it between runs.")]
    Export {
        /// The node's audit directory.
        dir: PathBuf,
        #[command(flatten)]
        filters: Box<Filters>,
        /// Only records with a sequence number above SEQ (the last_seq of the previous run).
        #[arg(long, value_name = "SEQ")]
        after: Option<u64>,
        /// A file that keeps the cursor: read for --after when that is not given (missing:
        /// from the start), rewritten with the last sequence number once the output is flushed.
        #[arg(long, value_name = "FILE")]
        cursor: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
    },
    /// Sum up a period per day and channel: crossed, refused by reason, masked, quarantined,
    /// lost, key and policy changes, and whether the log and the peer's witness verify.
    #[command(
        long_about = "\
Sum up a period of the node's audit log per day (in the --tz zone) and per channel: objects
and bytes crossed (landed on a receiving node; confirmed or retired on a sending node), refusals
by reason with the most frequent names and matched rules, masked, quarantined, duplicates,
lost, key switches, policy reloads and refusals, clock steps and link mismatches; with the
verification of the log (as `audit verify`) and of the peer's witness. Default period: the 7
days before now. The report is written even when the log does not verify (it says so); the
exit status is then non-zero, as it is when the peer's witness shows a rewritten history.",
        after_long_help = "\
Examples:
  isogate audit report /var/lib/isogate/audit
  isogate audit report /var/lib/isogate/audit --since 2026-11-01 --until 2026-12-01 --tz Asia/Shanghai --format html --out 2026-11.html
  isogate audit report court-audit/ --peer internet-audit/ --key court.sign.pub --format json"
    )]
    Report {
        /// The node's audit directory.
        dir: PathBuf,
        /// Start of the period: RFC 3339 with any offset, a wall time or a date in the --tz
        /// zone, now, today, yesterday, -7d, or ms since the epoch (default: 7 days before
        /// --until).
        #[arg(long, allow_hyphen_values = true)]
        since: Option<String>,
        /// End of the period, excluded (same forms; default: now).
        #[arg(long, allow_hyphen_values = true)]
        until: Option<String>,
        /// Time zone of days and times: UTC, an IANA name (Asia/Shanghai) or an offset
        /// (+08:00); default: the system's zone.
        #[arg(long)]
        tz: Option<String>,
        /// Only this channel (repeat for several); default: all.
        #[arg(long)]
        channel: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
        /// Write the report to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The node's signing public key (hex file) to pin when verifying; default:
        /// DIR/node.pub.
        #[arg(long)]
        key: Option<PathBuf>,
        /// The peer node's audit directory: check that the peer witnessed this node's
        /// checkpoints and that they match this log.
        #[arg(long)]
        peer: Option<PathBuf>,
    },
}

/// The record filters of `audit query` and `audit export`.
#[derive(Args)]
struct Filters {
    /// At or after this time: RFC 3339 with any offset, a wall time or date in --tz,
    /// now/today/yesterday, -1h/-7d, or ms since the epoch.
    #[arg(long, allow_hyphen_values = true)]
    since: Option<String>,
    /// Before this time (the forms of --since).
    #[arg(long, allow_hyphen_values = true)]
    until: Option<String>,
    /// Time zone to read and show times in: UTC, an IANA name (Asia/Shanghai) or an offset
    /// (+08:00); default: the system's.
    #[arg(long, value_name = "ZONE")]
    tz: Option<String>,
    /// Channel names (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    channel: Vec<String>,
    /// Channel names to leave out.
    #[arg(long, value_delimiter = ',', value_name = "CHANNEL")]
    not_channel: Vec<String>,
    /// Events (taken, accepted, refused, sealed, sent, confirmed, retired, landed,
    /// quarantined, lost, resent, witnessed, …), comma-separated or repeated.
    #[arg(long, value_delimiter = ',', value_parser = events(), hide_possible_values = true)]
    event: Vec<String>,
    /// Events to leave out.
    #[arg(long, value_delimiter = ',', value_parser = events(), hide_possible_values = true, value_name = "EVENT")]
    not_event: Vec<String>,
    /// accept or reject (also: accepted, allow; rejected, deny).
    #[arg(long, value_delimiter = ',', value_parser = VerdictParser)]
    verdict: Vec<String>,
    /// Reason codes (type_mismatch, keyword, …), comma-separated or repeated.
    #[arg(long, value_delimiter = ',', value_parser = reasons(), hide_possible_values = true)]
    reason: Vec<String>,
    /// Reason codes to leave out (records without a reason stay).
    #[arg(long, value_delimiter = ',', value_parser = reasons(), hide_possible_values = true, value_name = "REASON")]
    not_reason: Vec<String>,
    /// Name pattern (`*` and `?`); repeat for several (names may hold commas).
    #[arg(long, value_name = "PATTERN")]
    name: Vec<String>,
    /// Name pattern to leave out; may be repeated.
    #[arg(long, value_name = "PATTERN")]
    not_name: Vec<String>,
    /// Object ids (32 hex digits), comma-separated or repeated.
    #[arg(long, value_delimiter = ',', value_parser = hex_arg(audit_query::parse_object))]
    object: Vec<String>,
    /// SHA-256 of the content (64 hex digits, either case), comma-separated or repeated.
    #[arg(long, value_delimiter = ',', value_parser = hex_arg(audit_query::parse_sha256))]
    sha256: Vec<String>,
    /// SM3 of the content, as a log of the `gm` suite records it (64 hex digits), comma-separated or repeated.
    #[arg(long, value_delimiter = ',', value_parser = hex_arg(audit_query::parse_sm3))]
    sm3: Vec<String>,
}

impl Filters {
    /// The library's filter arguments, and the zone.
    fn args(self: Box<Self>, after: Option<u64>) -> (audit_query::FilterArgs, Option<String>) {
        let args = audit_query::FilterArgs {
            since: self.since,
            until: self.until,
            channels: self.channel,
            not_channels: self.not_channel,
            events: self.event,
            not_events: self.not_event,
            verdicts: self.verdict,
            reasons: self.reason,
            not_reasons: self.not_reason,
            names: self.name,
            not_names: self.not_name,
            objects: self.object,
            sha256s: self.sha256,
            sm3s: self.sm3,
            after,
        };
        (args, self.tz)
    }
}

fn events() -> PossibleValuesParser {
    PossibleValuesParser::new(audit_query::event_names())
}

fn reasons() -> PossibleValuesParser {
    PossibleValuesParser::new(audit_query::reason_names())
}

/// `--verdict`: read by the library (aliases; a pointer to `--event` for an event's name),
/// completed with the two verdicts.
#[derive(Clone)]
struct VerdictParser;

impl clap::builder::TypedValueParser for VerdictParser {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        let bad = |e: &dyn std::fmt::Display| {
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("--verdict: {e}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| bad(&"not UTF-8; valid verdicts: accept, reject"))?;
        audit_query::parse_verdict(text)
            .map(str::to_string)
            .map_err(|e| bad(&e))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            audit_query::VERDICTS.into_iter().map(PossibleValue::new),
        ))
    }
}

/// A value parser for a hex argument checked by `parse`.
fn hex_arg(
    parse: fn(&str) -> Result<String, audit_query::FilterError>,
) -> impl Fn(&str) -> Result<String, String> + Clone {
    move |s| parse(s).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    // before any thread starts (the setting is glibc malloc's, process-wide)
    heap::fix_mmap_threshold();
    let cli = Cli::parse();
    // The demo prints its own story; keep its log to warnings unless RUST_LOG says otherwise.
    let default_level = match cli.command {
        Command::Demo { .. } => "warn",
        _ => "info,quinn=warn,rustls=warn",
    };
    process::init_logging(cli.log_format.into(), default_level);
    match dispatch(cli.command) {
        Ok(code) => code,
        // the reader went away (`isogate audit query … | head`): what it wanted was written
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("isogate: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// glibc malloc's one setting, and the only unsafe code of isogate (the library forbids it).
///
/// Why: glibc raises its mmap threshold whenever a mapped block larger than it is freed
/// (up to 32 MiB on 64-bit), and its trim threshold to twice that, so each arena (up to 8
/// per core: every intake, inspection and link thread uses one) keeps megabytes it no
/// longer uses. After 3,000 files of 4 KiB crossed a diode, the court node held 100 MiB
/// resident for 19 MiB in use, and that residue counted against the 100 MiB a node may hold
/// while a large file crosses. A fixed threshold (`mallopt(M_MMAP_THRESHOLD)`, the setting
/// `MALLOC_MMAP_THRESHOLD_` and the `glibc.malloc.mmap_threshold` tunable also make) turns
/// the raising off and leaves the trim threshold at 128 KiB: what is freed at the top of an
/// arena goes back to the kernel. Measured: 51 MiB after the same files.
mod heap {
    use std::ffi::OsStr;

    /// Blocks of this size and more (bytes) are mapped on their own, and unmapped when
    /// freed. Above the 1 MiB buffers that large files' readers take per chunk (the QUIC
    /// send's reads, the SM4 read-ahead), which the arenas hand out again: mapped, each
    /// would cost a map, an unmap and a fault per page. (1, 2 and 4 MiB leave 51, 51 and
    /// 66 MiB after the 3,000 files.)
    pub const MMAP_THRESHOLD: i32 = 2 << 20;

    /// Fixes glibc malloc's mmap threshold at [`MMAP_THRESHOLD`], unless the environment
    /// sets one (an operator's choice stands: [`set_by_operator`]). Returns whether it was
    /// set now: false without glibc, with the environment's setting, or if glibc refused.
    ///
    /// Call it first in `main`, before any other thread exists.
    pub fn fix_mmap_threshold() -> bool {
        let own = set_by_operator(
            std::env::var_os("MALLOC_MMAP_THRESHOLD_").as_deref(),
            std::env::var_os("GLIBC_TUNABLES").as_deref(),
        );
        !own && set(MMAP_THRESHOLD)
    }

    /// Whether the environment sets the threshold: `MALLOC_MMAP_THRESHOLD_` at all, or
    /// `GLIBC_TUNABLES` naming `glibc.malloc.mmap_threshold` (read as bytes: glibc does).
    pub fn set_by_operator(malloc_env: Option<&OsStr>, tunables: Option<&OsStr>) -> bool {
        use std::os::unix::ffi::OsStrExt;
        const TUNABLE: &[u8] = b"glibc.malloc.mmap_threshold";
        malloc_env.is_some()
            || tunables.is_some_and(|t| t.as_bytes().windows(TUNABLE.len()).any(|w| w == TUNABLE))
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn set(threshold: i32) -> bool {
        // SAFETY: mallopt(3) takes two integers and changes only malloc's own settings,
        // under its lock; glibc marks it MT-Unsafe, so it is called from main before any
        // other thread runs (and from nowhere else). It returns 1 on success, 0 on error.
        #[allow(unsafe_code)]
        let done = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, threshold) };
        done == 1
    }

    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    fn set(_threshold: i32) -> bool {
        false
    }
}

/// Whether an error comes from writing to a pipe whose reader has closed it.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn dispatch(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Init {
            dir,
            link,
            port_base,
            clamd,
            suite,
        } => Ok(cli::init::command(
            &dir,
            link.lab(),
            port_base,
            clamd.as_ref(),
            suite,
        )?),
        Command::Run { config } => cli::run::command(&config),
        Command::Bench {
            dir,
            port_base,
            link,
            big_mib,
            huge_mib,
            small_files,
            parallel,
            parallel_mib,
            latency_secs,
            inspect_mib,
            repeat_window_s,
            diode_rate_mbit,
            only,
            suite,
        } => {
            let mut suites = Vec::new();
            for s in suite {
                if !suites.contains(&s) {
                    suites.push(s);
                }
            }
            if suites.is_empty() {
                suites.push(isogate::keys::suite::Suite::Default);
            }
            let links = if link.is_empty() {
                vec![LabLink::Quic, LabLink::Diode]
            } else {
                link.into_iter().map(Link::lab).collect()
            };
            cli::bench::run(&cli::bench::BenchOptions {
                dir,
                port_base,
                big_mib,
                huge_mib,
                small_files,
                parallel,
                parallel_mib,
                latency_secs,
                links,
                inspect_mib,
                repeat_window_s,
                diode_rate_mbit,
                only: only.into_iter().map(Figure::bench).collect(),
                suites,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { dir, port_base } => cli::demo::command(dir, port_base),
        Command::Check { config, format } => cli::check::command(&config, format.into()),
        Command::Audit { command } => audit(command),
        Command::Keygen {
            name,
            approver,
            data_key,
            out,
            suite,
        } => match (name, approver, data_key, out) {
            (_, _, Some(file), _) => Ok(cli::keygen::data_key(&file, suite)?),
            (_, Some(a), None, Some(out)) => {
                Ok(cli::keygen::approver(&a, &out, suite.unwrap_or_default())?)
            }
            (Some(n), None, None, Some(out)) => {
                Ok(cli::keygen::command(&n, &out, suite.unwrap_or_default())?)
            }
            _ => anyhow::bail!("give --name or --approver with --out, or --data-key FILE"),
        },
        Command::Approve {
            id,
            key,
            config,
            note,
            wait,
        } => cli::approve::decide(
            &config,
            &id,
            &key,
            isogate::core::approval::Decision::Approve,
            note.as_deref(),
            std::time::Duration::from_secs(wait),
        ),
        Command::Reject {
            id,
            key,
            config,
            note,
            wait,
        } => cli::approve::decide(
            &config,
            &id,
            &key,
            isogate::core::approval::Decision::Reject,
            Some(&note),
            std::time::Duration::from_secs(wait),
        ),
        Command::Approvals {
            command: ApprovalsCommand::List { config, tz, format },
        } => cli::approve::list(
            &config,
            tz.as_deref(),
            match format {
                ListFormat::Table => cli::approve::Format::Table,
                ListFormat::Json => cli::approve::Format::Json,
            },
        ),
        Command::Resend {
            config,
            ids,
            since,
            until,
            tz,
            wait,
        } => cli::resend::command(
            &config,
            &ids,
            since.as_deref(),
            until.as_deref(),
            tz.as_deref(),
            std::time::Duration::from_secs(wait),
        ),
        Command::Quarantine { command } => quarantine(command),
        Command::Console {
            command: ConsoleCommand::Passwd { users, user },
        } => cli::console::passwd(&users, &user, &mut std::io::stdin().lock()),
        Command::Completions { shell } => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(&completion_script(shell))
                .and_then(|()| out.flush())
                .context("writing the completion script")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn quarantine(cmd: QuarantineCommand) -> Result<ExitCode> {
    use isogate::cli::quarantine as q;
    let secs = std::time::Duration::from_secs;
    match cmd {
        QuarantineCommand::List {
            config,
            channel,
            reason,
            older_than,
            tz,
            format,
        } => {
            let filter = q::ListFilter {
                channel,
                reason,
                older_than,
            };
            let format = match format {
                ListFormat::Table => q::Format::Table,
                ListFormat::Json => q::Format::Json,
            };
            q::list(&config, &filter, tz.as_deref(), format)
        }
        QuarantineCommand::Show { config, tz, id } => q::show(&config, &id, tz.as_deref()),
        QuarantineCommand::Release {
            config,
            note,
            wait,
            ids,
        } => q::request(&config, &q::release_request(&ids, note), secs(wait)),
        QuarantineCommand::Purge {
            config,
            older_than,
            channel,
            tz,
            note,
            wait,
            ids,
        } => {
            let r = q::purge_request(&ids, older_than.as_deref(), channel, tz.as_deref(), note)?;
            q::request(&config, &r, secs(wait))
        }
    }
}

fn audit(cmd: AuditCommand) -> Result<ExitCode> {
    use isogate::cli::audit;
    match cmd {
        AuditCommand::Verify { dir, key } => audit::verify(&dir, key.as_deref()),
        AuditCommand::Query {
            dir,
            filters,
            format,
        } => {
            let (args, tz) = filters.args(None);
            audit::query(&dir, &args, tz.as_deref(), format.into())
        }
        AuditCommand::Prove {
            dir,
            object_id,
            out,
            key,
        } => audit::prove(&dir, &object_id, out.as_deref(), key.as_deref()),
        AuditCommand::VerifyProof { proof, key } => audit::verify_proof(&proof, &key),
        AuditCommand::Reconcile {
            sender,
            receiver,
            key,
            strict,
        } => audit::reconcile(&sender, &receiver, key.as_deref(), strict),
        AuditCommand::Export {
            dir,
            filters,
            after,
            cursor,
            format,
        } => {
            let (args, tz) = filters.args(after);
            audit::export(&dir, &args, tz.as_deref(), format.into(), cursor.as_deref())
        }
        AuditCommand::Report {
            dir,
            since,
            until,
            tz,
            channel,
            format,
            out,
            key,
            peer,
        } => audit::report(
            &dir,
            audit::ReportOptions {
                since,
                until,
                tz,
                channels: channel,
                format: format.into(),
                out,
                key,
                peer,
            },
        ),
    }
}

/// The completion script of `shell`, as `isogate completions` prints it and the Debian
/// package ships it.
fn completion_script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "isogate", &mut script);
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operator_s_own_mmap_threshold_stands() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let set = heap::set_by_operator;
        assert!(!set(None, None));
        assert!(set(Some(OsStr::new("65536")), None));
        assert!(set(
            None,
            Some(OsStr::new(
                "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=65536"
            ))
        ));
        // other tunables only: ours applies
        assert!(!set(None, Some(OsStr::new("glibc.malloc.arena_max=2"))));
        // glibc reads the variable as bytes; so does the check
        assert!(set(
            None,
            Some(OsStr::from_bytes(b"\xff:glibc.malloc.mmap_threshold=1"))
        ));
    }

    /// Every man page, as `(file name, roff)`: `isogate.1` and one per subcommand at any
    /// depth (`isogate-audit-query.1`), generated from the command line definition.
    fn man_pages() -> Vec<(String, Vec<u8>)> {
        fn walk(cmd: &clap::Command, out: &mut Vec<(String, Vec<u8>)>) {
            let man = clap_mangen::Man::new(cmd.clone())
                .source(format!("isogate {}", env!("CARGO_PKG_VERSION")))
                .manual("isogate manual");
            let mut roff = Vec::new();
            man.render(&mut roff).unwrap();
            out.push((man.get_filename(), roff));
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                walk(sub, out);
            }
        }
        let mut cmd = Cli::command().disable_help_subcommand(true);
        cmd.build();
        let mut out = Vec::new();
        walk(&cmd, &mut out);
        out
    }

    /// The man pages the Debian package installs are committed under `packaging/man/`; they
    /// must be exactly what the command line definition gives now, one per command and
    /// subcommand and no other. Regenerate them with
    /// `ISOGATE_UPDATE_MANPAGES=1 cargo test --bin isogate manpages`.
    #[test]
    fn committed_manpages_are_current() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/man");
        let update = std::env::var_os("ISOGATE_UPDATE_MANPAGES").is_some();
        let pages = man_pages();
        let names: std::collections::BTreeSet<String> =
            pages.iter().map(|(n, _)| n.clone()).collect();
        assert!(names.contains("isogate.1") && names.contains("isogate-audit-query.1"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
        }
        let committed: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".1"))
                    .collect()
            })
            .unwrap_or_default();
        for old in committed.iter().filter(|n| !names.contains(*n)) {
            if update {
                std::fs::remove_file(dir.join(old)).unwrap();
            } else {
                panic!(
                    "packaging/man/{old} names no command now; regenerate with \
                     ISOGATE_UPDATE_MANPAGES=1 cargo test --bin isogate manpages"
                );
            }
        }
        for (name, want) in pages {
            let path = dir.join(&name);
            if update {
                std::fs::write(&path, &want).unwrap();
            }
            let have = std::fs::read(&path).unwrap_or_default();
            assert!(
                have == want,
                "{} is stale or missing: the command line changed. Regenerate with \
                 ISOGATE_UPDATE_MANPAGES=1 cargo test --bin isogate manpages",
                path.display()
            );
        }
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The scripts the Debian package installs are committed; they must be exactly what
    /// `isogate completions SHELL` prints now. Regenerate them with
    /// `ISOGATE_UPDATE_COMPLETIONS=1 cargo test --bin isogate completions`.
    #[test]
    fn committed_completions_are_current() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/completions");
        let update = std::env::var_os("ISOGATE_UPDATE_COMPLETIONS").is_some();
        for (shell, file) in [
            (clap_complete::Shell::Bash, "isogate.bash"),
            (clap_complete::Shell::Zsh, "_isogate"),
            (clap_complete::Shell::Fish, "isogate.fish"),
        ] {
            let path = dir.join(file);
            let want = completion_script(shell);
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &want).unwrap();
            }
            let have = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e}; generate it (see this test)", path.display()));
            assert!(
                have == want,
                "{} is stale: the command line changed. Regenerate with \
                 ISOGATE_UPDATE_COMPLETIONS=1 cargo test --bin isogate completions",
                path.display()
            );
        }
    }
}
