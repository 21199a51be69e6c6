//! The configuration file as written: one `Raw*` struct per TOML table, parsed with
//! `deny_unknown_fields` (a misspelt key is a problem, not a silent default) and with the
//! defaults of every optional key. Values that [`super::validate`] checks keep their span
//! (`Spanned`), so that a problem names the line.

use super::DEFAULT_MIN_FREE;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// A string with its place in the file.
pub(super) type S = Spanned<String>;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) node: RawNode,
    pub(super) peer: RawPeer,
    #[serde(default)]
    pub(super) zones: Option<BTreeMap<String, Spanned<i64>>>,
    #[serde(default, rename = "channel")]
    pub(super) channels: Vec<RawChannel>,
    #[serde(default)]
    pub(super) intake: RawIntake,
    #[serde(default)]
    pub(super) link: RawLink,
    #[serde(default)]
    pub(super) audit: RawAudit,
    #[serde(default)]
    pub(super) metrics: RawMetrics,
    pub(super) console: Option<RawConsole>,
    #[serde(default)]
    pub(super) disk: RawDisk,
    #[serde(default)]
    pub(super) quarantine: RawQuarantine,
    pub(super) diode: Option<RawDiode>,
    /// `[messages]`: the message API.
    pub(super) messages: Option<RawMessages>,
}

/// `[messages]`: the node's message API (HTTP).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMessages {
    pub(super) listen: S,
    #[serde(default)]
    pub(super) allow_remote: bool,
    #[serde(default)]
    pub(super) hosts: Vec<S>,
}

/// `[quarantine]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuarantine {
    pub(super) keep_days: Option<Spanned<u32>>,
}

/// `[diode]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiode {
    pub(super) key: S,
    pub(super) listen: Option<S>,
    pub(super) peer: Option<S>,
    #[serde(default = "default_mtu")]
    pub(super) mtu: u32,
    #[serde(default = "default_rate")]
    pub(super) rate_mbit: u64,
    #[serde(default = "default_repair")]
    pub(super) repair_ratio: f64,
    #[serde(default = "default_copies")]
    pub(super) copies: u32,
    #[serde(default = "default_keep_sent")]
    pub(super) keep_sent_s: u64,
    #[serde(default = "default_repeat_window")]
    pub(super) repeat_window_s: u64,
    #[serde(default)]
    pub(super) interleave: u16,
    #[serde(default = "default_stream_repair")]
    pub(super) stream_repair_ratio: f64,
}

fn default_mtu() -> u32 {
    1500
}

fn default_rate() -> u64 {
    4000
}

fn default_repair() -> f64 {
    0.2
}

fn default_stream_repair() -> f64 {
    0.25
}

fn default_copies() -> u32 {
    1
}

fn default_repeat_window() -> u64 {
    600
}

fn default_keep_sent() -> u64 {
    3600
}

/// `[metrics]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) listen: Option<Spanned<String>>,
}

/// `[console]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsole {
    pub(super) listen: S,
    pub(super) users: S,
    #[serde(default)]
    pub(super) idle_timeout: Option<S>,
    #[serde(default)]
    pub(super) allow_remote: bool,
}

/// `[disk]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDisk {
    pub(super) min_free_bytes: u64,
}

impl Default for RawDisk {
    fn default() -> Self {
        RawDisk {
            min_free_bytes: DEFAULT_MIN_FREE,
        }
    }
}

/// `[audit]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAudit {
    pub(super) checkpoint_records: u64,
    pub(super) checkpoint_ms: u64,
    pub(super) segment_records: u64,
    pub(super) syslog: Option<S>,
}

impl Default for RawAudit {
    fn default() -> Self {
        RawAudit {
            checkpoint_records: 10_000,
            checkpoint_ms: 1000,
            segment_records: crate::audit::SEGMENT_RECORDS,
            syslog: None,
        }
    }
}

/// `[node]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    pub(super) name: S,
    pub(super) zone: S,
    pub(super) listen: S,
    pub(super) state_dir: S,
    pub(super) exchange_dir: S,
    pub(super) audit_dir: S,
    pub(super) signing_key: S,
    pub(super) tls_cert: S,
    pub(super) tls_key: S,
    pub(super) next_signing_key: Option<S>,
    pub(super) next_tls_cert: Option<S>,
    pub(super) next_tls_key: Option<S>,
    pub(super) data_key: Option<S>,
    /// The pair's suite: `default` or `gm` (absent: `default`).
    pub(super) suite: Option<S>,
}

/// `[peer]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeer {
    pub(super) name: S,
    pub(super) zone: S,
    pub(super) address: S,
    pub(super) tls_cert: S,
    pub(super) signing_public_key: S,
    pub(super) next_tls_cert: Option<S>,
    pub(super) next_signing_public_key: Option<S>,
}

/// One `[[channel]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChannel {
    pub(super) name: S,
    pub(super) kind: S,
    pub(super) from: S,
    pub(super) to: S,
    pub(super) link: S,
    pub(super) policy: S,
    /// Name patterns of files still being written (`*` any run, `?` one character); absent:
    /// the defaults of common tools.
    #[serde(default)]
    pub(super) temp_names: Option<Vec<S>>,
    /// `kind = "stream"`: `rtp` or `udp-ts`.
    pub(super) protocol: Option<S>,
    /// `kind = "stream"`: the UDP address the sending node receives the stream on.
    pub(super) listen: Option<S>,
    /// `kind = "stream"`: the UDP address the receiving node sends accepted packets to.
    pub(super) emit: Option<S>,
    /// `kind = "stream"`: the delay budget, in ms (absent: by link).
    pub(super) delay_ms: Option<Spanned<i64>>,
    /// `kind = "stream"`: seconds without a packet after which the stream is stopped.
    pub(super) silence_s: Option<Spanned<i64>>,
    /// `kind = "stream"`: whether `/healthz` fails while the stream is silent.
    pub(super) expected: Option<Spanned<bool>>,
    /// `kind = "messages"`: most messages in one batch object.
    pub(super) batch_max: Option<Spanned<i64>>,
    /// `kind = "messages"`: most bytes in one batch object: an integer, or a string with a
    /// unit (`"8MiB"`).
    pub(super) batch_max_bytes: Option<Spanned<toml::Value>>,
    /// `kind = "messages"`: how long a batch waits for more messages, in ms.
    pub(super) linger_ms: Option<Spanned<i64>>,
    /// `kind = "messages"`: how long the receiving node keeps messages (humantime).
    pub(super) retention: Option<S>,
    /// `kind = "messages"`: `nats://HOST:PORT/STREAM/CONSUMER`, taken from on the sending node.
    pub(super) source: Option<S>,
    /// `kind = "messages"`: `nats://HOST:PORT/SUBJECT`, published to on the receiving node.
    pub(super) deliver: Option<S>,
}

/// `[intake]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawIntake {
    pub(super) settle_ms: u64,
    pub(super) idle_ms: u64,
    pub(super) rescan_ms: u64,
}

impl Default for RawIntake {
    fn default() -> Self {
        RawIntake {
            settle_ms: 250,
            idle_ms: 5000,
            rescan_ms: 2000,
        }
    }
}

/// `[link]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLink {
    pub(super) max_in_flight: usize,
}

impl Default for RawLink {
    fn default() -> Self {
        RawLink { max_in_flight: 32 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[node]
name = "court"
zone = "court"
listen = "127.0.0.1:7400"
state_dir = "state"
exchange_dir = "x"
audit_dir = "audit"
signing_key = "k"
tls_cert = "c"
tls_key = "t"

[peer]
name = "internet"
zone = "internet"
address = "127.0.0.1:7401"
tls_cert = "pc"
signing_public_key = "pk"
"#;

    #[test]
    fn optional_tables_take_their_defaults() {
        let raw: RawConfig = toml::from_str(MINIMAL).unwrap();
        assert!(raw.channels.is_empty() && raw.zones.is_none() && raw.diode.is_none());
        assert_eq!(
            (
                raw.intake.settle_ms,
                raw.intake.idle_ms,
                raw.intake.rescan_ms
            ),
            (250, 5000, 2000)
        );
        assert_eq!(raw.link.max_in_flight, 32);
        assert_eq!(raw.disk.min_free_bytes, DEFAULT_MIN_FREE);
        assert_eq!(raw.audit.checkpoint_records, 10_000);
        assert_eq!(raw.audit.checkpoint_ms, 1000);
        assert!(raw.metrics.listen.is_none());
        let with_diode = format!("{MINIMAL}\n[diode]\nkey = \"d\"\n");
        let d = toml::from_str::<RawConfig>(&with_diode)
            .unwrap()
            .diode
            .unwrap();
        assert_eq!((d.mtu, d.rate_mbit, d.copies), (1500, 4000, 1));
        assert_eq!((d.repeat_window_s, d.interleave), (600, 0));
        assert_eq!(d.repair_ratio, 0.2);
    }

    #[test]
    fn quarantine_keep_days_is_optional_and_off_by_default() {
        let raw: RawConfig = toml::from_str(MINIMAL).unwrap();
        assert!(raw.quarantine.keep_days.is_none());
        let text = format!("{MINIMAL}\n[quarantine]\nkeep_days = 30\n");
        let raw: RawConfig = toml::from_str(&text).unwrap();
        assert_eq!(raw.quarantine.keep_days.map(|k| *k.get_ref()), Some(30));
        let text = format!("{MINIMAL}\n[quarantine]\nkeep = 30\n");
        assert!(toml::from_str::<RawConfig>(&text).is_err());
    }

    #[test]
    fn the_packaged_stream_channel_example_parses_once_uncommented() {
        let text = include_str!("../../../packaging/node.toml");
        let at = text.find("# [[channel]]\n# name = \"hearing\"").unwrap();
        let open: String = text[at..]
            .lines()
            .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or(l)))
            .collect();
        let raw: RawConfig = toml::from_str(&format!("{}{open}", &text[..at])).unwrap();
        let c = raw
            .channels
            .iter()
            .find(|c| c.name.get_ref() == "hearing")
            .unwrap();
        assert_eq!(c.kind.get_ref(), "stream");
        assert_eq!(c.protocol.as_ref().unwrap().get_ref(), "rtp");
        assert!(c.listen.is_some() && c.emit.is_some() && c.temp_names.is_none());
        assert_eq!(c.delay_ms.as_ref().map(|d| *d.get_ref()), Some(20));
        assert!(c.policy.get_ref().ends_with("/hearing.toml"));
    }

    #[test]
    fn the_messages_table_and_keys_parse() {
        let text = format!(
            "{MINIMAL}\n[messages]\nlisten = \"127.0.0.1:7404\"\n\n[[channel]]\nname = \"n\"\nkind = \"messages\"\nfrom = \"court\"\nto = \"internet\"\nlink = \"quic\"\npolicy = \"p.toml\"\nbatch_max = 10\nbatch_max_bytes = \"8MiB\"\nlinger_ms = 0\nretention = \"7d\"\nsource = \"nats://h:4222/S/C\"\ndeliver = \"nats://h:4222/a.b\"\n"
        );
        let raw: RawConfig = toml::from_str(&text).unwrap();
        let m = raw.messages.unwrap();
        assert_eq!(m.listen.get_ref(), "127.0.0.1:7404");
        assert!(!m.allow_remote);
        let c = &raw.channels[0];
        assert_eq!(c.batch_max.as_ref().map(|b| *b.get_ref()), Some(10));
        assert_eq!(
            c.batch_max_bytes.as_ref().map(|b| b.get_ref().as_str()),
            Some(Some("8MiB"))
        );
        assert!(c.linger_ms.is_some() && c.retention.is_some());
        assert!(c.source.is_some() && c.deliver.is_some());
        let bad = text
            .replace("allow_remote", "x")
            .replace("7404\"", "7404\"\nremote = 1");
        assert!(toml::from_str::<RawConfig>(&bad).is_err());
    }

    #[test]
    fn a_misspelt_key_is_refused() {
        let text = format!("{MINIMAL}\n[intake]\nsettle = 10\n");
        assert!(toml::from_str::<RawConfig>(&text).is_err());
    }
}
