//! The policy of a `stream` channel: a file with only a `[stream]` table, parsed with
//! `deny_unknown_fields` and validated into [`StreamRules`] (every problem with the file,
//! line and key). The tables of a files policy (`[names]`, `[size]`, `[types]`, …) are
//! refused here, as `[stream]` is refused in a files policy (`refuse_stream_table`).
//!
//! ```text
//!  policy/hearing.toml ─► top-level tables: only [stream]
//!                      ─► RawStream (deny_unknown_fields)
//!                      ─► checks against the channel's protocol ─► StreamRules
//!                      ─► Policy { stream: Some(rules), version, .. deny_all() }
//! ```
//!
//! What is checked (RFC 3550 for RTP payload types, ISO/IEC 13818-1 for PIDs):
//! `payload_types` 0..=127, required and non-empty for `rtp`, refused for `udp-ts`;
//! `max_packet_bytes` 12..=65507 (`rtp`) or 188..=65507 (`udp-ts`); `max_bitrate_kbit`
//! 1..=10_000_000; `pids` 0..=8191, required and non-empty for `udp-ts`, optional for
//! `rtp` (empty or absent: not checked); `sources` required, non-empty, each an IPv4 or
//! IPv6 network in CIDR form (a bare address is a single host) with no bits set past the
//! prefix.

use super::Policy;
use crate::core::stream::{Protocol, SourceNet, StreamRules};
use crate::problem::{Problems, Source};
use serde::Deserialize;
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

/// Largest UDP payload a stream packet may have, in bytes (65_535 − 8 UDP − 20 IPv4).
pub const MAX_STREAM_PACKET: usize = 65_507;
/// Smallest `max_packet_bytes` of an `rtp` channel: the fixed RTP header (RFC 3550 §5.1).
pub const MIN_RTP_PACKET: usize = 12;
/// Smallest `max_packet_bytes` of a `udp-ts` channel: one transport packet (ISO/IEC 13818-1).
pub const MIN_TS_PACKET: usize = 188;
/// Highest `max_bitrate_kbit`: 10 Gbit/s; a limit above it is no limit.
pub const MAX_BITRATE_KBIT: u64 = 10_000_000;
/// Highest MPEG-TS PID (13 bits).
pub const MAX_PID: i64 = 8191;
/// Highest RTP payload type (7 bits).
pub const MAX_PAYLOAD_TYPE: i64 = 127;
/// Most entries a list of the policy may hold (payload types, PIDs, sources).
pub const MAX_LIST: usize = 8192;

/// The tables of a files policy: each is refused in a stream policy.
const FILE_TABLES: &[&str] = &[
    "names",
    "size",
    "types",
    "archives",
    "text",
    "pdf",
    "documents",
    "markings",
    "personal_data",
    "antivirus",
    "approval",
    "compliance",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStreamPolicy {
    stream: RawStream,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStream {
    payload_types: Option<Spanned<Vec<Spanned<i64>>>>,
    max_packet_bytes: Spanned<i64>,
    max_bitrate_kbit: Spanned<i64>,
    pids: Option<Spanned<Vec<Spanned<i64>>>>,
    sources: Spanned<Vec<Spanned<String>>>,
}

/// The span of the line that opens top-level table `name` (`[name]`, `[name.x]`,
/// `[[name]]`) or sets it (`name = …`), for a problem's line number.
pub(super) fn table_span(text: &str, name: &str) -> Option<Range<usize>> {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let header = t.trim_start_matches('[').trim_start();
        let opens = t.starts_with('[')
            && header.starts_with(name)
            && header[name.len()..].trim_start().starts_with([']', '.']);
        let sets = t.starts_with(name) && t[name.len()..].trim_start().starts_with(['=', '.']);
        if opens || sets {
            let start = at + (line.len() - t.len());
            return Some(start..at + line.trim_end().len());
        }
        at += line.len();
    }
    None
}

/// The top-level keys of `text`, when it is TOML (else none: the typed parse says why).
pub(super) fn top_level_keys(text: &str) -> Vec<String> {
    toml::from_str::<toml::Table>(text)
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

/// Reports a `[stream]` table in a files policy: it belongs to a stream channel's policy.
/// Returns whether there was one.
pub(super) fn refuse_stream_table(src: &mut Source<'_>) -> bool {
    if !top_level_keys(src.text).iter().any(|k| k == "stream") {
        return false;
    }
    let span = table_span(src.text, "stream");
    src.report(
        span,
        "stream",
        "a [stream] table belongs in the policy of a stream channel (kind = \"stream\"); a files \
         channel's policy has [names], [size], [types] and the content rules",
    );
    true
}

/// Parses one CIDR network: `ADDR/PREFIX`, or a bare address (a single host).
fn source_net(text: &str) -> Result<SourceNet, String> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let addr: IpAddr = addr.trim().parse().map_err(|_| {
        format!("{text:?}: not an address; use a network in CIDR form, e.g. \"10.1.0.0/16\" or \"2001:db8::/32\"")
    })?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => match p.trim().parse::<u8>() {
            Ok(p) if p <= max => p,
            _ => {
                return Err(format!(
                    "{text:?}: the prefix length must be 0 to {max} for an {} address",
                    if addr.is_ipv4() { "IPv4" } else { "IPv6" }
                ));
            }
        },
    };
    let net = SourceNet { addr, prefix };
    let base = match addr {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    };
    if base != addr {
        return Err(format!(
            "{text:?}: bits are set past the prefix; the network is {base}/{prefix}"
        ));
    }
    Ok(net)
}

/// Checks a list of small integers, each in `0..=max`, reporting out-of-range entries and
/// duplicates under `key`; returns the valid ones, in order.
fn small_ints(
    src: &mut Source<'_>,
    list: &Spanned<Vec<Spanned<i64>>>,
    key: &str,
    max: i64,
) -> Vec<u16> {
    let mut out: Vec<u16> = Vec::new();
    if list.get_ref().len() > MAX_LIST {
        src.report(
            Some(list.span()),
            key,
            format!("at most {MAX_LIST} entries"),
        );
        return out;
    }
    for v in list.get_ref() {
        let n = *v.get_ref();
        match u16::try_from(n) {
            Ok(x) if n <= max => {
                if out.contains(&x) {
                    src.report(Some(v.span()), key, format!("{n} is listed twice"));
                } else {
                    out.push(x);
                }
            }
            _ => src.report(
                Some(v.span()),
                key,
                format!("{n} is out of range 0..={max}"),
            ),
        }
    }
    out
}

impl Policy {
    /// Loads and validates the policy file of a stream channel carrying `protocol` (the
    /// channel's `protocol` key): a `Policy` that refuses every file, with
    /// [`Policy::stream`] set to the validated rules and `version` a digest of the text.
    ///
    /// # Errors
    /// The file cannot be read, is not TOML, has a table other than `[stream]`, or a rule
    /// is missing or out of range (see the module's documentation): every problem, with
    /// the file, line and key.
    pub fn load_stream(path: &Path, protocol: Protocol) -> Result<Policy, Problems> {
        let text = crate::problem::read(path)?;
        Self::parse_stream(path, &text, protocol)
    }

    /// [`Policy::load_stream`] on text that came from `path`.
    ///
    /// # Errors
    /// As [`Policy::load_stream`].
    pub fn parse_stream(path: &Path, text: &str, protocol: Protocol) -> Result<Policy, Problems> {
        let mut src = Source::new(path, text);
        let mut foreign = false;
        for key in top_level_keys(text) {
            if key != "stream" {
                let span = table_span(text, &key);
                let message = if key == "messages" {
                    "[messages] belongs in the policy of a messages channel (kind = \"messages\"): \
                     a stream channel's policy has only a [stream] table"
                        .to_string()
                } else if FILE_TABLES.contains(&key.as_str()) {
                    format!(
                        "[{key}] is a files policy table: a stream channel's policy has only \
                         a [stream] table"
                    )
                } else {
                    format!(
                        "unknown table {key:?}: a stream channel's policy has only a [stream] table"
                    )
                };
                src.report(span, &key, message);
                foreign = true;
            }
        }
        if foreign {
            return src.finish(Policy::deny_all());
        }
        let Some(raw) = src.parse::<RawStreamPolicy>() else {
            return src.finish(Policy::deny_all());
        };
        let s = raw.stream;
        let rtp = protocol == Protocol::Rtp;
        let payload_types = match (&s.payload_types, protocol) {
            (Some(list), Protocol::Rtp) => {
                let pts = small_ints(&mut src, list, "stream.payload_types", MAX_PAYLOAD_TYPE);
                if list.get_ref().is_empty() {
                    src.report(
                        Some(list.span()),
                        "stream.payload_types",
                        "empty: nothing could cross; list the RTP payload types allowed (e.g. 33 \
                         for MPEG-TS, 96-127 dynamic)",
                    );
                }
                pts.into_iter().map(|p| p as u8).collect()
            }
            (None, Protocol::Rtp) => {
                src.report(
                    table_span(text, "stream"),
                    "stream.payload_types",
                    "required for protocol \"rtp\": list the RTP payload types allowed (e.g. 33 \
                     for MPEG-TS, 96-127 dynamic)",
                );
                Vec::new()
            }
            (Some(list), Protocol::UdpTs) => {
                src.report(
                    Some(list.span()),
                    "stream.payload_types",
                    "protocol \"udp-ts\" carries no RTP header: remove payload_types (the \
                     transport packets are checked by pids)",
                );
                Vec::new()
            }
            (None, Protocol::UdpTs) => Vec::new(),
        };
        let min_packet = if rtp { MIN_RTP_PACKET } else { MIN_TS_PACKET };
        let max_packet = *s.max_packet_bytes.get_ref();
        let max_packet_bytes = match usize::try_from(max_packet) {
            Ok(n) if (min_packet..=MAX_STREAM_PACKET).contains(&n) => n,
            _ => {
                src.report(
                    Some(s.max_packet_bytes.span()),
                    "stream.max_packet_bytes",
                    format!(
                        "{max_packet} is out of range {min_packet}..={MAX_STREAM_PACKET} for \
                         protocol {:?}",
                        protocol.as_str()
                    ),
                );
                0
            }
        };
        let kbit = *s.max_bitrate_kbit.get_ref();
        let max_bitrate_bps = match u64::try_from(kbit) {
            Ok(k) if (1..=MAX_BITRATE_KBIT).contains(&k) => k * 1000,
            _ => {
                src.report(
                    Some(s.max_bitrate_kbit.span()),
                    "stream.max_bitrate_kbit",
                    format!(
                        "{kbit} is out of range 1..={MAX_BITRATE_KBIT} (kbit/s): there is no \
                         \"unlimited\""
                    ),
                );
                0
            }
        };
        let pids = match &s.pids {
            Some(list) => {
                let pids = small_ints(&mut src, list, "stream.pids", MAX_PID);
                if list.get_ref().is_empty() && !rtp {
                    src.report(
                        Some(list.span()),
                        "stream.pids",
                        "empty: protocol \"udp-ts\" needs the PIDs allowed (e.g. ffmpeg's \
                         defaults [0, 17, 256, 257, 4096]: PAT, SDT, video, audio, PMT; the \
                         null PID 8191 is always allowed)",
                    );
                }
                pids
            }
            None => {
                if !rtp {
                    src.report(
                        table_span(text, "stream"),
                        "stream.pids",
                        "required for protocol \"udp-ts\": list the PIDs allowed (e.g. [0, 256, \
                         257, 4096])",
                    );
                }
                Vec::new()
            }
        };
        let mut sources = Vec::new();
        if s.sources.get_ref().len() > MAX_LIST {
            src.report(
                Some(s.sources.span()),
                "stream.sources",
                format!("at most {MAX_LIST} entries"),
            );
        } else {
            for entry in s.sources.get_ref() {
                match source_net(entry.get_ref()) {
                    Ok(n) => sources.push(n),
                    Err(why) => src.report(Some(entry.span()), "stream.sources", why),
                }
            }
        }
        if s.sources.get_ref().is_empty() {
            src.report(
                Some(s.sources.span()),
                "stream.sources",
                "empty: no sender could stream; list the networks allowed to send (e.g. \
                 [\"10.1.2.0/24\"])",
            );
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        src.finish(Policy {
            stream: Some(StreamRules {
                protocol,
                payload_types,
                max_packet_bytes,
                max_bitrate_bps,
                pids,
                sources,
            }),
            version: hex::encode(&digest.as_ref()[..6]),
            ..Policy::deny_all()
        })
    }
}

/// A network in CIDR form, as written in `sources`.
pub fn source_text(n: &SourceNet) -> String {
    format!("{}/{}", n.addr, n.prefix)
}

/// The effective rules of a stream policy, for the compliance report (`isogate check
/// --format json`): protocol, payload types, packet size (bytes), bitrate (kbit/s), PIDs
/// (empty: not checked) and sources.
pub fn report(r: &StreamRules) -> serde_json::Value {
    serde_json::json!({
        "protocol": r.protocol.as_str(),
        "payload_types": r.payload_types,
        "max_packet_bytes": r.max_packet_bytes,
        "max_bitrate_kbit": r.max_bitrate_bps / 1000,
        "pids": r.pids,
        "sources": r.sources.iter().map(source_text).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = include_str!("../../policy/hearing.toml");

    fn parse(text: &str, protocol: Protocol) -> Result<Policy, Problems> {
        Policy::parse_stream(Path::new("hearing.toml"), text, protocol)
    }

    /// The problems of `text` as `file:line: key: message` lines.
    fn problems(text: &str, protocol: Protocol) -> String {
        parse(text, protocol).unwrap_err().to_string()
    }

    fn rtp(body: &str) -> String {
        format!("[stream]\n{body}")
    }

    const BASE: &str =
        "max_packet_bytes = 1500\nmax_bitrate_kbit = 20000\nsources = [\"127.0.0.1/32\"]\n";

    #[test]
    fn the_shipped_hearing_policy_is_valid() {
        let p = parse(LAB, Protocol::Rtp).unwrap();
        let r = p.stream.as_ref().unwrap();
        assert_eq!(r.protocol, Protocol::Rtp);
        assert_eq!(r.payload_types, [33, 96, 97, 98, 111]);
        assert_eq!(r.max_packet_bytes, 1500);
        assert_eq!(r.max_bitrate_bps, 20_000_000);
        assert!(r.pids.is_empty(), "not checked");
        assert_eq!(r.sources.len(), 1);
        assert!(r.sources[0].contains("127.0.0.1".parse().unwrap()));
        assert!(!r.sources[0].contains("127.0.0.2".parse().unwrap()));
        assert_eq!(p.version.len(), 12);
        // a stream policy lets no file cross
        assert!(p.extensions.is_empty() && p.allow.is_empty() && p.max_bytes == 0);
        assert_eq!(report(r)["max_bitrate_kbit"], 20000);
        assert_eq!(p.report()["stream"]["sources"][0], "127.0.0.1/32");
    }

    #[test]
    fn udp_ts_takes_pids_and_no_payload_types() {
        let ok = rtp(&format!("{BASE}pids = [0, 256, 4096]\n").replace("1500", "1316"));
        let p = parse(&ok, Protocol::UdpTs).unwrap();
        let r = p.stream.unwrap();
        assert_eq!(r.pids, [0, 256, 4096]);
        assert!(r.payload_types.is_empty());
        let e = problems(&rtp(BASE), Protocol::UdpTs);
        assert!(e.contains("hearing.toml:1: stream.pids: required"), "{e}");
        let e = problems(&rtp(&format!("{BASE}pids = []\n")), Protocol::UdpTs);
        assert!(e.contains("hearing.toml:5: stream.pids: empty"), "{e}");
        let e = problems(
            &rtp(&format!("{BASE}pids = [0]\npayload_types = [33]\n")),
            Protocol::UdpTs,
        );
        assert!(e.contains("hearing.toml:6: stream.payload_types"), "{e}");
        assert!(e.contains("carries no RTP header"), "{e}");
        let small = rtp(&format!("{BASE}pids = [0]\n").replace("1500", "100"));
        let e = problems(&small, Protocol::UdpTs);
        assert!(
            e.contains("hearing.toml:2: stream.max_packet_bytes: 100 is out of range 188..=65507"),
            "{e}"
        );
        // the same size is fine for RTP
        assert!(parse(&format!("{small}payload_types = [33]\n"), Protocol::Rtp).is_ok());
    }

    #[test]
    fn rtp_needs_payload_types_in_range() {
        let e = problems(&rtp(BASE), Protocol::Rtp);
        assert!(
            e.contains("hearing.toml:1: stream.payload_types: required"),
            "{e}"
        );
        let e = problems(&rtp(&format!("{BASE}payload_types = []\n")), Protocol::Rtp);
        assert!(
            e.contains("hearing.toml:5: stream.payload_types: empty"),
            "{e}"
        );
        let e = problems(
            &rtp(&format!("{BASE}payload_types = [33,\n 128, -1, 33]\n")),
            Protocol::Rtp,
        );
        assert!(
            e.contains("hearing.toml:6: stream.payload_types: 128 is out of range 0..=127"),
            "{e}"
        );
        assert!(e.contains("-1 is out of range"), "{e}");
        assert!(e.contains("33 is listed twice"), "{e}");
        // pids are optional for rtp and checked when given
        let e = problems(
            &rtp(&format!("{BASE}payload_types = [33]\npids = [8192]\n")),
            Protocol::Rtp,
        );
        assert!(
            e.contains("hearing.toml:6: stream.pids: 8192 is out of range 0..=8191"),
            "{e}"
        );
        let p = parse(
            &rtp(&format!("{BASE}payload_types = [33]\npids = [0, 8191]\n")),
            Protocol::Rtp,
        )
        .unwrap();
        assert_eq!(p.stream.unwrap().pids, [0, 8191]);
    }

    #[test]
    fn sizes_and_bitrates_have_bounds() {
        let with = |packet: i64, kbit: i64| {
            rtp(&format!(
                "payload_types = [96]\nmax_packet_bytes = {packet}\nmax_bitrate_kbit = {kbit}\nsources = [\"10.0.0.0/8\"]\n"
            ))
        };
        assert!(parse(&with(12, 1), Protocol::Rtp).is_ok());
        assert!(parse(&with(65_507, 10_000_000), Protocol::Rtp).is_ok());
        for (packet, kbit, key, line) in [
            (11, 100, "stream.max_packet_bytes", 3),
            (65_508, 100, "stream.max_packet_bytes", 3),
            (-5, 100, "stream.max_packet_bytes", 3),
            (1500, 0, "stream.max_bitrate_kbit", 4),
            (1500, 10_000_001, "stream.max_bitrate_kbit", 4),
            (1500, -1, "stream.max_bitrate_kbit", 4),
        ] {
            let e = problems(&with(packet, kbit), Protocol::Rtp);
            assert!(
                e.contains(&format!("hearing.toml:{line}: {key}: ")),
                "{packet} {kbit}: {e}"
            );
        }
        // required keys are named by serde, with the file and line
        let e = problems(
            "[stream]\npayload_types = [96]\nsources = [\"10.0.0.0/8\"]\n",
            Protocol::Rtp,
        );
        assert!(
            e.contains("hearing.toml:1") && e.contains("max_packet_bytes"),
            "{e}"
        );
    }

    #[test]
    fn sources_are_required_networks() {
        let with = |sources: &str| {
            rtp(&format!(
                "payload_types = [96]\nmax_packet_bytes = 1500\nmax_bitrate_kbit = 100\nsources = {sources}\n"
            ))
        };
        let p = parse(
            &with("[\"10.1.0.0/16\", \"2001:db8::/32\", \"192.0.2.7\"]"),
            Protocol::Rtp,
        )
        .unwrap();
        let s = p.stream.unwrap().sources;
        assert_eq!(
            s.iter().map(source_text).collect::<Vec<_>>(),
            ["10.1.0.0/16", "2001:db8::/32", "192.0.2.7/32"]
        );
        let e = problems(&with("[]"), Protocol::Rtp);
        assert!(e.contains("hearing.toml:5: stream.sources: empty"), "{e}");
        for (bad, says) in [
            ("somewhere", "not an address"),
            ("10.0.0.0/33", "prefix length must be 0 to 32"),
            ("2001:db8::/129", "0 to 128"),
            ("10.1.2.3/16", "the network is 10.1.0.0/16"),
            ("10.0.0.0/x", "prefix length"),
        ] {
            let e = problems(&with(&format!("[\"{bad}\"]")), Protocol::Rtp);
            assert!(e.contains("hearing.toml:5: stream.sources: "), "{bad}: {e}");
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = problems(
            "[stream]\npayload_types = [96]\nmax_packet_bytes = 1500\nmax_bitrate_kbit = 100\n",
            Protocol::Rtp,
        );
        assert!(e.contains("sources"), "{e}");
    }

    #[test]
    fn file_tables_and_unknown_keys_are_refused() {
        let text = format!("{LAB}\n[names]\nmax_length = 10\n");
        let line = text.lines().position(|l| l == "[names]").unwrap() + 1;
        let e = problems(&text, Protocol::Rtp);
        assert!(
            e.contains(&format!(
                "hearing.toml:{line}: names: [names] is a files policy table"
            )),
            "{e}"
        );
        let e = problems(&format!("extra = 1\n{LAB}"), Protocol::Rtp);
        assert!(e.contains("extra: unknown table"), "{e}");
        let e = problems(
            &LAB.replace("max_packet_bytes", "max_packet"),
            Protocol::Rtp,
        );
        assert!(e.contains("unknown field `max_packet`"), "{e}");
        assert!(e.contains("hearing.toml:"), "{e}");
        // no [stream] at all
        let e = problems("", Protocol::Rtp);
        assert!(e.contains("stream"), "{e}");
    }

    #[test]
    fn a_files_policy_refuses_a_stream_table() {
        let files = include_str!("../../policy/to-court.toml");
        let text = format!("{files}\n[stream]\nsources = []\n");
        let line = text.lines().position(|l| l == "[stream]").unwrap() + 1;
        let e = Policy::parse(Path::new("to-court.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!(
                "to-court.toml:{line}: stream: a [stream] table belongs"
            )),
            "{e}"
        );
        // and a stream policy is not a files policy
        let e = Policy::parse(Path::new("hearing.toml"), LAB)
            .unwrap_err()
            .to_string();
        assert!(e.contains("hearing.toml:") && e.contains("stream"), "{e}");
    }

    #[test]
    fn table_lines_are_found() {
        let t = "# x\n[stream]\na = 1\n [names.x]\nsize = { a = 1 }\n[[types]]\n";
        let line = |k: &str| {
            let s = table_span(t, k).unwrap();
            t[..s.start].matches('\n').count() + 1
        };
        assert_eq!(
            (line("stream"), line("names"), line("size"), line("types")),
            (2, 4, 5, 6)
        );
        assert!(table_span(t, "stre").is_none());
    }
}
