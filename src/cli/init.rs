//! `isogate init DIR`: writes a ready two-node lab on this host (court ⇄ internet: the
//! files channels to-internet and to-court, the stream channel hearing, and the messages
//! channels notices and filings with each node's message API), the quick start and what
//! the tests use. Layout in the README and DESIGN.md §4.

use crate::keys::suite::Suite;
use crate::keys::{self, KeyError};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use thiserror::Error;

/// The default port base: links on N and N+1, metrics on N+2 and N+3, the message APIs on
/// N+4 (court) and N+5 (internet), the hearing stream in on N+6 (court) and out on N+7
/// (internet), consoles on N+8 and N+9.
pub const DEFAULT_PORT_BASE: u16 = 7400;

/// The outbound lab policy (court → internet), as shipped under `policy/`.
pub const POLICY_TO_INTERNET: &str = include_str!("../../policy/to-internet.toml");
/// The inbound lab policy (internet → court), as shipped under `policy/`.
pub const POLICY_TO_COURT: &str = include_str!("../../policy/to-court.toml");
/// The lab's stream policy (the `hearing` channel, court → internet), as shipped under
/// `policy/`.
pub const POLICY_HEARING: &str = include_str!("../../policy/hearing.toml");
/// The lab's outbound messages policy (the `notices` channel, court → internet), as
/// shipped under `policy/`.
pub const POLICY_NOTICES: &str = include_str!("../../policy/notices.toml");
/// The JSON Schema (draft 2020-12) of the `notices` channel's messages.
pub const SCHEMA_NOTICES: &str = include_str!("../../policy/notices.schema.json");
/// The lab's inbound messages policy (the `filings` channel, internet → court).
pub const POLICY_FILINGS: &str = include_str!("../../policy/filings.toml");
/// The JSON Schema (draft 2020-12) of the `filings` channel's messages.
pub const SCHEMA_FILINGS: &str = include_str!("../../policy/filings.schema.json");

/// The lab's port of the message API of `node` (`court`: N+4, `internet`: N+5).
pub fn messages_port(node: &str, base: u16) -> u16 {
    if node == "court" { base + 4 } else { base + 5 }
}

/// Why the lab could not be written.
#[derive(Debug, Error)]
pub enum InitError {
    /// The directory exists and is not empty.
    #[error("{0} exists and is not empty; choose a new directory")]
    NotEmpty(PathBuf),
    /// The port base leaves no room for the lab's ports.
    #[error("port base {0} is out of range: use 1 to 65526 (the lab uses ports N to N+9)")]
    Port(u16),
    /// Writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Key generation failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// The link type of the lab's channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabLink {
    /// QUIC with mutual TLS.
    Quic,
    /// One-way UDP with forward error correction.
    Diode,
}

impl LabLink {
    /// The name used in configurations.
    pub fn as_str(self) -> &'static str {
        match self {
            LabLink::Quic => "quic",
            LabLink::Diode => "diode",
        }
    }
}

/// The two nodes of the lab.
pub const NODES: [(&str, &str); 2] = [("court", "internet"), ("internet", "court")];

/// The `[diode]` section of a diode lab.
const DIODE_SECTION: &str = r#"
[diode]
# The pair's 32-byte datagram key (64 hex digits): every datagram carries a tag under it
# (AES-256-GCM, which also encrypts it, or HMAC-SM3 under suite = "gm"), so forged or stray packets are dropped
# before any decoding. Both nodes hold it.
key = "certs/diode.key"
# Receives on node.listen and sends to peer.address (no QUIC runs on a diode-only node).
# The smallest MTU on the path (1500; less over a VLAN, a tunnel or diode hardware; 9000
# with jumbo frames), the same on both nodes: the receiver names a mismatch, not the sender.
mtu = 1500
# The sender paces itself: there is no back-pressure on a diode.
rate_mbit = 4000
# Repair symbols per source symbol (0.2 = 20 % overhead): with 3 blocks interleaved (derived
# at this ratio), an object's first pass survives 5 % loss in bursts of up to 64 datagrams
# (0.1 is enough for 5 % random loss).
repair_ratio = 0.2
# Each object is sent this many times back to back with newer data (planned copies).
copies = 1
# After its first pass an object is sent again whenever the link has nothing new to send,
# each at most once every 1/20 of this window (seconds), oldest first, so a receiver that
# was down or lost a burst still gets it; new objects always go first. 0: retire it after
# its last planned copy. It is audited `retired` (and announced) when the window ends.
repeat_window_s = 600
# Blocks whose symbols are interleaved on the wire, so a burst of lost datagrams costs each
# block only a share of its repair symbols: 1 to 4; 0 derives it from repair_ratio.
interleave = 0
# After its last copy an object is held this long (seconds) for `isogate resend`, which an
# operator runs when the receiver audits it `lost`; 0 holds nothing.
keep_sent_s = 3600
"#;

fn node_config(name: &str, peer: &str, base: u16, link: LabLink, suite: Suite) -> String {
    let suite_line = match suite {
        Suite::Default => String::new(),
        other => format!(
            "# The pair's suite, the same on both nodes: {} signatures, {} datagram tags and {}\n# at rest (see `isogate check`).\nsuite = \"{other}\"\n",
            other.signature(),
            other.mac(),
            other.cipher()
        ),
    };
    let cipher = suite.cipher();
    let rotate_flag = suite.keygen_flag();
    let link_name = link.as_str();
    let diode = if link == LabLink::Diode {
        DIODE_SECTION
    } else {
        ""
    };
    let port = |n: &str| if n == "court" { base } else { base + 1 };
    let metrics = if name == "court" { base + 2 } else { base + 3 };
    let console = if name == "court" { base + 8 } else { base + 9 };
    format!(
        r#"# isogate node configuration: the {name} side of the court <-> internet lab pair.
# Paths are relative to this file. `isogate check --config {name}.toml` reviews it.

[node]
name = "{name}"
zone = "{name}"
# UDP address of this node's QUIC link.
listen = "127.0.0.1:{listen}"
state_dir = "{name}/state"
# Holds outbox/<channel>, inbox/<channel> and quarantine/<channel>.
exchange_dir = "{name}"
audit_dir = "{name}/audit"
signing_key = "certs/{name}.sign.key"
tls_cert = "certs/{name}.tls.crt"
tls_key = "certs/{name}.tls.key"
# Seals the spool and the quarantine at rest ({cipher}); mode 0600, the service user's alone.
# `isogate keygen --data-key FILE{rotate_flag}` rotates it (SIGHUP: new copies are sealed with the new key).
data_key = "certs/{name}.data.key"
{suite_line}
[peer]
name = "{peer}"
zone = "{peer}"
address = "127.0.0.1:{peer_port}"
# The peer's certificate and signing key are pinned: nothing else is accepted.
tls_cert = "certs/{peer}.tls.crt"
signing_public_key = "certs/{peer}.sign.pub"

[intake]
# A file closed by its writer is taken once unchanged this long (ms); a file renamed into
# the outbox is taken at once; one never seen closed, once unchanged for idle_ms.
settle_ms = 250
idle_ms = 5000
rescan_ms = 2000

[link]
max_in_flight = 32

[audit]
# A signed checkpoint of the audit log every N records or T ms, whichever comes first,
# while records arrive (none while the log is idle: see the README), and at a clean stop.
# Segments rotate every segment_records records.
checkpoint_records = 10000
checkpoint_ms = 1000
segment_records = 100000
# Live RFC 5424 export to the security management centre: "udp:HOST:PORT" or "tcp:HOST:PORT".
# syslog = "udp:127.0.0.1:514"

[metrics]
# Prometheus text at http://HOST:PORT/metrics; /healthz answers 200 or 503.
listen = "127.0.0.1:{metrics}"

[console]
# The officers' web console at http://127.0.0.1:{console}/ (plain HTTP: loopback only, unless
# allow_remote = true with TLS in front of it). Users: `isogate console passwd`.
listen = "127.0.0.1:{console}"
users = "{CONSOLE_USERS}"
idle_timeout = "15m"

[messages]
# The message API (HTTP, plain JSON): POST /v1/channels/CHANNEL/messages for the channels
# this node sends, GET /v1/channels/CHANNEL/messages?after=CURSOR for those it receives.
# Loopback unless allow_remote = true (put TLS in front of it). Requests whose Host is not
# an IP address or localhost are refused (DNS rebinding) unless the name is in hosts.
listen = "127.0.0.1:{messages}"
# hosts = ["gateway.court.example"]

[disk]
# Below this many free bytes on the state or exchange file system, intake pauses (files
# stay in the outbox). The receiver keeps this much free in each inbox: it reserves the
# room each arriving object needs first (twice its size where it seals at rest or masks),
# and an object without room is sent again later.
min_free_bytes = 268435456

# Both nodes load the same channel list; each finds its role from its zone.
[[channel]]
name = "to-internet"
kind = "files"
from = "court"
to = "internet"
link = "{link_name}"
policy = "policy/to-internet.toml"

[[channel]]
name = "to-court"
kind = "files"
from = "internet"
to = "court"
link = "{link_name}"
policy = "policy/to-court.toml"

# A live hearing's audio and video (RTP over UDP), packet by packet, one way: the court
# node receives it on `listen`, checks each packet against policy/hearing.toml and sends it
# over the link; the internet node checks it again and emits it to `emit`, in order (late
# packets are dropped, not delayed). No folders: a stream is never a file.
# Try it: ffmpeg -re -i talk.mp4 -c copy -f rtp_mpegts rtp://127.0.0.1:{stream_in}
#         ffplay rtp://127.0.0.1:{stream_out}
[[channel]]
name = "hearing"
kind = "stream"
from = "court"
to = "internet"
link = "{link_name}"
policy = "policy/hearing.toml"
# "rtp" (RTP, RFC 3550, any payload) or "udp-ts" (raw MPEG-TS over UDP).
protocol = "rtp"
listen = "127.0.0.1:{stream_in}"
emit = "127.0.0.1:{stream_out}"
# The delay budget (ms): how long a gap is waited for before later packets go on (default
# 20 on quic, 40 on diode). The stream is stopped (and audited) after silence_s without a
# packet; expected = true makes /healthz fail while it is silent (an always-on feed).
# delay_ms = 20
# silence_s = 5
# expected = false

# Court notices as JSON messages: posted to the court node's message API (or dropped into
# its outbox as .json / .ndjson files), checked one by one against policy/notices.toml and
# its schema, sent in batches, checked again and kept in the internet node's message log,
# read with GET on its API.
[[channel]]
name = "notices"
kind = "messages"
from = "court"
to = "internet"
link = "{link_name}"
policy = "policy/notices.toml"
# A batch holds up to batch_max messages or batch_max_bytes bytes; the first message of a
# batch waits linger_ms for more (up to 50 ms more while two earlier batches of the channel
# are still on their way). The receiving node keeps messages for retention.
batch_max = 1000
batch_max_bytes = "8MiB"
linger_ms = 2
retention = "7d"
# Also take messages from a durable JetStream pull consumer (sending node), and publish
# every message received to a JetStream subject (receiving node):
# source = "nats://127.0.0.1:4222/NOTICES/isogate"
# deliver = "nats://127.0.0.1:4222/court.notices"

# E-filing notices from the internet side toward the court, as JSON messages.
[[channel]]
name = "filings"
kind = "messages"
from = "internet"
to = "court"
link = "{link_name}"
policy = "policy/filings.toml"
{diode}"#,
        listen = port(name),
        peer_port = port(peer),
        stream_in = base + 6,
        stream_out = base + 7,
        messages = messages_port(name, base),
    )
}

/// The lab's console password file (both nodes'), in the lab directory.
pub const CONSOLE_USERS: &str = "console.users";
/// The lab's console user.
pub const CONSOLE_USER: &str = "officer";
/// The file, in the lab directory, holding that user's random password (mode 0600).
pub const CONSOLE_PASSWORD: &str = "console-officer.password";

/// Writes the lab into `dir` (created; must be absent or empty).
/// `clamd`, when given, turns antivirus scanning on in both lab policies.
pub fn init(
    dir: &Path,
    link: LabLink,
    port_base: u16,
    clamd: Option<&crate::policy::antivirus::ClamdAddr>,
) -> Result<(), InitError> {
    init_suite(dir, link, port_base, clamd, Suite::Default)
}

/// As [`init`], for a pair running `suite`: its nodes' signing keys and data keys are of
/// that suite, and both configurations say `suite = "..."` when it is not the default.
///
/// # Errors
/// As [`init`].
pub fn init_suite(
    dir: &Path,
    link: LabLink,
    port_base: u16,
    clamd: Option<&crate::policy::antivirus::ClamdAddr>,
    suite: Suite,
) -> Result<(), InitError> {
    if port_base > u16::MAX - 9 || port_base == 0 {
        return Err(InitError::Port(port_base));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InitError::Io { path, source }
    };
    if dir.exists() && fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
        return Err(InitError::NotEmpty(dir.to_path_buf()));
    }
    let certs = dir.join("certs");
    for (name, _) in NODES {
        keys::keygen_for(name, &certs, suite)?;
        crate::keys::at_rest::DataKeys::add_key(&certs.join(format!("{name}.data.key")), suite)?;
    }
    if link == LabLink::Diode {
        let key = certs.join("diode.key");
        crate::keys::diode::write(&key).map_err(io(&key))?;
    }
    let policy = dir.join("policy");
    fs::create_dir_all(&policy).map_err(io(&policy))?;
    for (file, text) in [
        ("to-internet.toml", POLICY_TO_INTERNET),
        ("to-court.toml", POLICY_TO_COURT),
    ] {
        let mut text = text.to_string();
        if let Some(addr) = clamd {
            text.push_str(&format!(
                "\n[antivirus]\nclamd = \"{addr}\"\ntimeout_ms = 60000\nmax_wait_ms = 3600000\n"
            ));
        }
        fs::write(policy.join(file), text).map_err(io(&policy.join(file)))?;
    }
    // a stream policy has only [stream]: no antivirus there
    let hearing = policy.join("hearing.toml");
    fs::write(&hearing, POLICY_HEARING).map_err(io(&hearing))?;
    // messages policies and their schemas: no antivirus there either (JSON, checked
    // field by field)
    for (file, text) in [
        ("notices.toml", POLICY_NOTICES),
        ("notices.schema.json", SCHEMA_NOTICES),
        ("filings.toml", POLICY_FILINGS),
        ("filings.schema.json", SCHEMA_FILINGS),
    ] {
        fs::write(policy.join(file), text).map_err(io(&policy.join(file)))?;
    }
    // the console: one user, officer, with a random password kept in a 0600 file
    let mut random = [0u8; 18];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random).map_err(
        |_| InitError::Io {
            path: dir.join(CONSOLE_PASSWORD),
            source: std::io::Error::other("system random generator failed"),
        },
    )?;
    let password = hex::encode(random);
    let pw_file = dir.join(CONSOLE_PASSWORD);
    crate::fsx::write_durable_mode(&pw_file, format!("{password}\n").as_bytes(), 0o600)
        .map_err(io(&pw_file))?;
    let users = dir.join(CONSOLE_USERS);
    crate::console::users::passwd(&users, CONSOLE_USER, &password).map_err(|e| InitError::Io {
        path: users.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    for (name, peer) in NODES {
        let file = dir.join(format!("{name}.toml"));
        fs::write(&file, node_config(name, peer, port_base, link, suite)).map_err(io(&file))?;
        let (out_chs, in_chs) = if name == "court" {
            (["to-internet", "notices"], ["to-court", "filings"])
        } else {
            (["to-court", "filings"], ["to-internet", "notices"])
        };
        let mut subs = vec!["audit".to_string(), "state".to_string()];
        for ch in out_chs {
            subs.push(format!("outbox/{ch}"));
            subs.push(format!("quarantine/{ch}"));
        }
        for ch in in_chs {
            subs.push(format!("inbox/{ch}"));
            subs.push(format!("quarantine/{ch}"));
        }
        for sub in subs {
            let d = dir.join(name).join(sub);
            fs::create_dir_all(&d).map_err(io(&d))?;
        }
    }
    Ok(())
}

/// `isogate init`: writes the lab into `dir` (see [`init`]) and prints how to start it.
///
/// # Errors
/// As [`init`].
pub fn command(
    dir: &Path,
    link: LabLink,
    port_base: u16,
    clamd: Option<&crate::policy::antivirus::ClamdAddr>,
    suite: Suite,
) -> Result<ExitCode, InitError> {
    init_suite(dir, link, port_base, clamd, suite)?;
    println!("lab written to {} (suite {suite})", dir.display());
    println!(
        "  start:  isogate run --config {}/court.toml",
        dir.display()
    );
    println!(
        "          isogate run --config {}/internet.toml",
        dir.display()
    );
    println!("  drop:   {}/court/outbox/to-internet/", dir.display());
    println!(
        "  stream: rtp://127.0.0.1:{} (to court) -> rtp://127.0.0.1:{} (from internet)",
        port_base + 6,
        port_base + 7
    );
    println!(
        "  messages: curl -H 'Content-Type: application/json' -d '{{\"type\":\"status\",\"case\":\"(2026)吉01民初123号\",\"text\":\"已立案\"}}' http://127.0.0.1:{}/v1/channels/notices/messages",
        messages_port("court", port_base)
    );
    println!(
        "            curl 'http://127.0.0.1:{}/v1/channels/notices/messages?wait=10'",
        messages_port("internet", port_base)
    );
    println!(
        "  console: http://127.0.0.1:{}/ (court), http://127.0.0.1:{}/ (internet); user {CONSOLE_USER}, password in {}/{CONSOLE_PASSWORD}",
        port_base + 8,
        port_base + 9,
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::config::{Config, Role};

    #[test]
    fn lab_configs_load_with_mirrored_roles() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("lab");
        init(&dir, LabLink::Quic, 7400, None).unwrap();
        let court = Config::load(&dir.join("court.toml")).unwrap();
        let internet = Config::load(&dir.join("internet.toml")).unwrap();
        assert_eq!(court.channel("to-internet").unwrap().role, Role::Send);
        assert!(court.channel("to-internet").unwrap().outbound);
        assert_eq!(internet.channel("to-internet").unwrap().role, Role::Receive);
        assert_eq!(court.channel("to-court").unwrap().role, Role::Receive);
        assert_eq!(court.node.listen.port(), 7400);
        assert_eq!(internet.node.listen.port(), 7401);
        assert_eq!(
            internet.channel("to-internet").unwrap().inbox,
            dir.join("internet/inbox/to-internet")
        );
        assert!(dir.join("court/outbox/to-internet").is_dir());
        assert!(dir.join("internet/quarantine/to-court").is_dir());
        assert!(matches!(
            init(&dir, LabLink::Quic, 7400, None),
            Err(InitError::NotEmpty(_))
        ));
    }

    #[test]
    fn the_lab_has_the_messages_channels_their_policies_and_the_apis() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("lab");
        init(&dir, LabLink::Diode, 28170, None).unwrap();
        for (file, text) in [
            ("notices.toml", POLICY_NOTICES),
            ("notices.schema.json", SCHEMA_NOTICES),
            ("filings.toml", POLICY_FILINGS),
            ("filings.schema.json", SCHEMA_FILINGS),
        ] {
            assert_eq!(
                fs::read_to_string(dir.join("policy").join(file)).unwrap(),
                text
            );
        }
        for schema in [SCHEMA_NOTICES, SCHEMA_FILINGS] {
            let v: serde_json::Value = serde_json::from_str(schema).unwrap();
            assert!(jsonschema::draft202012::new(&v).is_ok(), "{schema}");
        }
        assert!(POLICY_NOTICES.contains("schema = \"notices.schema.json\""));
        assert!(POLICY_FILINGS.contains("schema = \"filings.schema.json\""));
        for (node, api, sends, receives) in [
            ("court", 28174, "notices", "filings"),
            ("internet", 28175, "filings", "notices"),
        ] {
            let text = fs::read_to_string(dir.join(format!("{node}.toml"))).unwrap();
            let v: toml::Value = toml::from_str(&text).unwrap();
            assert_eq!(
                v["messages"]["listen"].as_str(),
                Some(format!("127.0.0.1:{api}").as_str())
            );
            assert_eq!(messages_port(node, 28170), api);
            let channels = v["channel"].as_array().unwrap();
            let kinds: Vec<(&str, &str, &str)> = channels
                .iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap(),
                        c["kind"].as_str().unwrap(),
                        c["link"].as_str().unwrap(),
                    )
                })
                .collect();
            assert_eq!(
                kinds,
                [
                    ("to-internet", "files", "diode"),
                    ("to-court", "files", "diode"),
                    ("hearing", "stream", "diode"),
                    ("notices", "messages", "diode"),
                    ("filings", "messages", "diode"),
                ]
            );
            assert_eq!(channels[3]["from"].as_str(), Some("court"));
            assert_eq!(channels[4]["from"].as_str(), Some("internet"));
            assert_eq!(channels[3]["policy"].as_str(), Some("policy/notices.toml"));
            assert_eq!(channels[4]["policy"].as_str(), Some("policy/filings.toml"));
            for sub in [
                format!("outbox/{sends}"),
                format!("quarantine/{sends}"),
                format!("inbox/{receives}"),
                format!("quarantine/{receives}"),
            ] {
                assert!(dir.join(node).join(&sub).is_dir(), "{node}/{sub}");
            }
        }
    }

    #[test]
    fn a_gm_lab_loads_on_the_national_suite_and_a_bad_suite_names_its_line() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("lab");
        init_suite(&dir, LabLink::Quic, 7400, None, Suite::Gm).unwrap();
        for node in ["court", "internet"] {
            let cfg = Config::load(&dir.join(format!("{node}.toml"))).unwrap();
            assert_eq!(cfg.node.suite, Suite::Gm);
            let signing = crate::keys::SigningKey::load(&cfg.node.signing_key).unwrap();
            assert_eq!(signing.suite(), Suite::Gm);
            let data = crate::keys::at_rest::DataKeys::load(cfg.node.data_key.as_ref().unwrap());
            assert_eq!(data.unwrap().suite(), Suite::Gm);
        }
        let file = dir.join("court.toml");
        let text = fs::read_to_string(&file).unwrap();
        let line = text
            .lines()
            .position(|l| l == "suite = \"gm\"")
            .map(|i| i + 1)
            .unwrap();
        fs::write(&file, text.replace("suite = \"gm\"", "suite = \"sm9\"")).unwrap();
        let err = Config::load(&file).unwrap_err().to_string();
        assert!(
            err.contains(&format!("court.toml:{line}: node.suite")),
            "{err}"
        );
        assert!(err.contains("sm9"), "{err}");
        // the default lab says nothing of a suite, and loads on the default one
        let dir = t.path().join("default");
        init(&dir, LabLink::Quic, 7400, None).unwrap();
        let text = fs::read_to_string(dir.join("court.toml")).unwrap();
        assert!(!text.contains("suite ="), "{text}");
        let cfg = Config::load(&dir.join("court.toml")).unwrap();
        assert_eq!(cfg.node.suite, Suite::Default);
    }

    #[test]
    fn bad_config_names_file_line_and_key() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("lab");
        init(&dir, LabLink::Quic, 7400, None).unwrap();
        let file = dir.join("court.toml");
        let text = fs::read_to_string(&file).unwrap();
        let bad = text
            .replace("from = \"internet\"", "from = \"intranet\"")
            .replace("listen = \"127.0.0.1:7400\"", "listen = \"nowhere\"");
        fs::write(&file, bad).unwrap();
        let err = Config::load(&file).unwrap_err().to_string();
        assert!(err.contains("court.toml:8: node.listen"), "{err}");
        assert!(
            err.contains("channel[1].from: unknown zone \"intranet\""),
            "{err}"
        );
        fs::write(&file, text.replace("[link]", "[link]\nbogus = 1")).unwrap();
        let err = Config::load(&file).unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");
        assert!(err.contains("court.toml:"), "{err}");
    }

    #[test]
    fn console_section_is_validated_and_loopback_by_default() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("lab");
        init(&dir, LabLink::Quic, 7400, None).unwrap();
        let court = Config::load(&dir.join("court.toml")).unwrap();
        let c = court.console.unwrap();
        assert_eq!(c.listen.port(), 7408);
        assert_eq!(c.users, dir.join(CONSOLE_USERS));
        assert_eq!(c.idle_timeout_ms, 15 * 60 * 1000);
        let internet = Config::load(&dir.join("internet.toml")).unwrap();
        assert_eq!(internet.console.unwrap().listen.port(), 7409);
        let password = fs::read_to_string(dir.join(CONSOLE_PASSWORD)).unwrap();
        let users = crate::console::users::Users::load(&dir.join(CONSOLE_USERS)).unwrap();
        assert!(users.verify(CONSOLE_USER, password.trim()));

        let file = dir.join("court.toml");
        let text = fs::read_to_string(&file).unwrap();
        let remote = text.replace("listen = \"127.0.0.1:7408\"", "listen = \"0.0.0.0:7408\"");
        fs::write(&file, &remote).unwrap();
        let err = Config::load(&file).unwrap_err().to_string();
        assert!(err.contains("console.listen"), "{err}");
        assert!(err.contains("not a loopback address"), "{err}");
        let line = remote
            .lines()
            .position(|l| l.contains("0.0.0.0:7408"))
            .unwrap()
            + 1;
        assert!(
            err.contains(&format!("court.toml:{line}: console.listen")),
            "{err}"
        );
        fs::write(
            &file,
            remote.replace(
                "idle_timeout = \"15m\"",
                "idle_timeout = \"15m\"\nallow_remote = true",
            ),
        )
        .unwrap();
        assert!(Config::load(&file).unwrap().console.unwrap().allow_remote);
        fs::write(
            &file,
            text.replace("idle_timeout = \"15m\"", "idle_timeout = \"5s\""),
        )
        .unwrap();
        let err = Config::load(&file).unwrap_err().to_string();
        assert!(err.contains("console.idle_timeout"), "{err}");
    }

    #[test]
    fn console_listen_is_an_ip_of_its_own() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("lab");
        init(&dir, LabLink::Quic, 7400, None).unwrap();
        let file = dir.join("court.toml");
        let text = fs::read_to_string(&file).unwrap();
        let with = |listen: &str| {
            fs::write(
                &file,
                text.replace(
                    "listen = \"127.0.0.1:7408\"",
                    &format!("listen = \"{listen}\""),
                ),
            )
            .unwrap();
            Config::load(&file).map(|c| c.console.unwrap().listen)
        };
        let mapped = with("[::ffff:127.0.0.1]:7408").expect("IPv4-mapped loopback");
        assert_eq!(mapped.port(), 7408);
        for (listen, says) in [
            ("127.0.0.1:0", "port 0"),
            ("localhost:7408", "e.g. 127.0.0.1:7408 or [::1]:7408"),
            ("127.0.0.1:7402", "metrics.listen is 127.0.0.1:7402"),
            ("127.0.0.1:7400", "node.listen is 127.0.0.1:7400"),
        ] {
            let err = with(listen).unwrap_err().to_string();
            assert!(err.contains("court.toml:"), "{err}");
            assert!(err.contains("console.listen"), "{err}");
            assert!(err.contains(says), "{listen}: {err}");
        }
    }

    #[test]
    fn channel_out_of_classified_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("lab");
        init(&dir, LabLink::Quic, 7400, None).unwrap();
        let file = dir.join("court.toml");
        let text = fs::read_to_string(&file)
            .unwrap()
            .replace("zone = \"court\"", "zone = \"classified\"")
            .replace("from = \"court\"", "from = \"classified\"")
            .replace("to = \"court\"", "to = \"classified\"");
        fs::write(&file, text).unwrap();
        let err = Config::load(&file).unwrap_err().to_string();
        assert!(
            err.contains("nothing may ever flow out of the classified zone"),
            "{err}"
        );
    }
}
