//! Entry points for the fuzz targets under `fuzz/` (and for the in-suite smoke run of the
//! same code): every parser that reads bytes from the other side, reached the way the
//! receiver reaches it. Each function must never panic, whatever the input.

use crate::core::manifest::SignedManifest;
use crate::core::verify::{ReceiveRules, Reception};
use crate::core::wire::{self, FrameHeader, HEADER_LEN, Receipt};
use crate::keys::SigningKey;

/// Decodes `data` as a receiver would: frame header, object frame, signed manifest, receipt.
/// Then signs `data` as a manifest body with a fixed key, so that a body that decodes
/// reaches manifest validation and the content verification state machine.
pub fn frame_and_manifest(data: &[u8]) {
    if data.len() >= HEADER_LEN {
        let _ = FrameHeader::decode(&data[..HEADER_LEN]);
    }
    let _ = wire::decode_object_frame(data);
    let _ = Receipt::decode(data);
    let Ok(key) = SigningKey::from_seed(&[7u8; 32]) else {
        return;
    };
    let rules = ReceiveRules {
        peer: "court".into(),
        peer_keys: vec![key.verify_key()],
        channels: vec!["to-internet".into()],
    };
    // As received: untrusted bytes, (almost always) a bad signature.
    let _ = Reception::begin(data, &rules);
    // As if the peer had signed these bytes: exercises the body decoding and checks.
    let (body, content) = data.split_at(data.len().min(data.len() / 2 + 1));
    // The raw bytes as a signed manifest, approvals trailer (envelope version 3) included.
    let _ = SignedManifest::decode(data);
    // With 0 to 2 approvals (by the first byte), so that the trailer is always reached on
    // the signed path too, and the approvals are checked as a receiver with [approval] does.
    let count = data.first().map_or(0, |b| usize::from(b % 3));
    let digest = crate::core::approval::digest(crate::keys::suite::Suite::Default, body);
    let Some(approvals) = approvals(count, &digest) else {
        return;
    };
    let signed = SignedManifest {
        body: body.to_vec(),
        signature: key.sign(&[crate::core::manifest::SIGNING_CONTEXT, body].concat::<u8>()),
        approvals,
    };
    let Ok(encoded) = signed.encode() else {
        return;
    };
    if let Ok(mut r) = Reception::begin(&encoded, &rules) {
        for rule in approval_rules() {
            let _ = rule.check(r.digest(), r.approvals());
        }
        let _ = r.feed(content).map(|()| r.finish());
    }
}

/// The fuzzed approvers' keys: `a0` and `a1`.
fn approver_keys() -> Option<[SigningKey; 2]> {
    Some([
        SigningKey::from_seed(&[7u8; 32]).ok()?,
        SigningKey::from_seed(&[8u8; 32]).ok()?,
    ])
}

/// `count` approvals (at most 2) of `digest`, by `a0` then `a1`; `None` if a key or a
/// signature cannot be made.
fn approvals(count: usize, digest: &[u8; 32]) -> Option<Vec<crate::core::approval::Approval>> {
    let keys = approver_keys()?;
    keys.iter()
        .take(count)
        .enumerate()
        .map(|(i, k)| {
            crate::core::approval::try_sign(k, crate::core::approval::Decision::Approve, digest)
                .ok()
                .map(|signature| crate::core::approval::Approval {
                    approver: format!("a{i}"),
                    signature,
                })
        })
        .collect()
}

/// The receivers' rules the fuzzed approvals are checked against, each reachable both
/// ways: one approval of `a0` required (met by 1 approval), and two of `a0`, `a1` (met by
/// 2; levels 1 then 2).
fn approval_rules() -> Vec<crate::core::approval::Rule> {
    let Some([k0, k1]) = approver_keys() else {
        return Vec::new();
    };
    let approver = |n: &str, k: &SigningKey, level| crate::core::approval::Approver {
        name: n.into(),
        key: k.verify_key(),
        level,
    };
    vec![
        crate::core::approval::Rule {
            required: 1,
            approvers: vec![approver("a0", &k0, 1)],
            expire_ms: 1000,
        },
        crate::core::approval::Rule {
            required: 2,
            approvers: vec![approver("a0", &k0, 1), approver("a1", &k1, 2)],
            expire_ms: 1000,
        },
    ]
}

/// Parses `data` as an audit record, a stored checkpoint line, a checkpoint note and a proof
/// document, as `audit verify`, `verify-proof` and the peer witness do.
pub fn audit_record_and_checkpoint(data: &[u8]) {
    let _ = serde_json::from_slice::<crate::audit::Record>(data);
    let _ = serde_json::from_slice::<crate::audit::StoredCheckpoint>(data);
    let Ok(key) = SigningKey::from_seed(&[9u8; 32]) else {
        return;
    };
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::core::checkpoint::Checkpoint::open(text, &key.verify_key(), "isogate/court");
    }
    if let Ok(proof) = serde_json::from_slice::<crate::audit::prove::Proof>(data) {
        let _ = crate::audit::prove::verify_proof(&proof, &key.verify_key());
    }
}

/// The policy the content fuzz target inspects under: every type, every content rule on.
const FUZZ_POLICY: &str = r#"
[names]
max_length = 64
extensions = ["zip", "tar", "gz", "docx", "odt", "ofd", "pdf", "rtf", "txt", "csv", "json", "xml", "png", "doc", "xls", "ppt"]
[size]
max_bytes = 1073741824
max_expanded_bytes = 67108864
[types]
allow = ["zip", "tar", "gzip", "ooxml", "odf", "ofd", "pdf", "rtf", "text", "csv", "json", "xml", "png", "legacy_office"]
[archives]
max_depth = 3
max_entries = 1000
max_ratio = 100
[text]
keywords = ["内部资料"]
patterns = ['NB-\d{6}']
[pdf]
refuse_active = true
[markings]
refuse = true
allow_phrases = ["商业秘密"]
[personal_data]
detect = ["resident_id", "mobile", "bank_card", "email"]
action = "mask"
"#;

/// Inspects `data` as the inspect stage does on either node: written to a file and judged
/// under a policy with every rule on, under each name whose extension selects a different
/// reading (archives, office packages, PDF, text with masking). Then reads it directly as a
/// tar, a gzip, an XML part and a PDF. Refusals and errors are expected; a panic is a bug.
pub fn content(data: &[u8]) {
    use crate::content::archive::{self, Budget, Input, Kind, Limits, Visitor};
    use crate::content::{Scan, doc, pdf};
    use std::io::Read;
    use std::sync::OnceLock;

    struct Drain;
    impl Visitor for Drain {
        fn entry(&mut self, _: &str, _: u32, reader: &mut dyn Read, _: &mut Budget) -> Scan {
            std::io::copy(reader, &mut std::io::sink())?;
            Ok(Ok(()))
        }
    }

    static POLICY: OnceLock<Option<crate::policy::Policy>> = OnceLock::new();
    let policy = POLICY.get_or_init(|| {
        crate::policy::Policy::parse(std::path::Path::new("fuzz.toml"), FUZZ_POLICY).ok()
    });
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    if let Some(policy) = policy {
        for name in [
            "f.zip", "f.docx", "f.ofd", "f.pdf", "f.rtf", "f.txt", "f.csv", "f.json", "f.doc",
            "f.xls", "f.ppt",
        ] {
            let path = dir.path().join(name);
            if std::fs::write(&path, data).is_ok() {
                let _ = crate::inspect::inspect_file(
                    policy,
                    name,
                    &path,
                    dir.path(),
                    crate::keys::suite::Suite::Default,
                );
            }
        }
    }
    let limits = Limits {
        max_depth: 2,
        max_entries: 100,
        max_expanded_bytes: 16 << 20,
        max_ratio: 100,
        legacy_names: crate::content::archive::LegacyNames::Gb18030,
    };
    for kind in [Kind::Tar, Kind::Gzip] {
        let mut input = data;
        let mut budget = Budget::new(limits);
        let _ = archive::walk(
            kind,
            Input::Stream(&mut input),
            1,
            &mut budget,
            dir.path(),
            &mut Drain,
        );
    }
    let mut input = data;
    let _ = doc::xml_text(&mut input, &mut |_: &str| Ok(()));
    let mut input = data;
    let _ = crate::content::ofd::read_part(
        &mut input,
        "Doc_0/Pages/Page_0/Content.xml",
        &mut |_: &str| Ok(()),
        &mut |_| Ok(()),
    );
    let mut input = data;
    let _ = crate::content::rtf::scan_rtf(&mut input, Some(&mut |_: &str| Ok(())));
    for family in [
        "png", "jpeg", "gif", "tiff", "webp", "wav", "mp3", "amr", "mp4", "mov", "heic",
    ] {
        let mut input = data;
        let _ = crate::content::media::check(family, &mut input);
    }
    let mut input = data;
    let _ = pdf::scan_pdf(
        &mut input,
        &pdf::PdfOptions {
            refuse_active: true,
            read_text: true,
            allow_uri: true,
        },
        &mut |_: &str| Ok(()),
    );
}

/// The differential check of the zip reader: reads `data` as the gateway does and as two
/// other readers do — the `zip` crate through the central directory, and the same crate
/// streaming local headers from the start, as a streaming extractor would. Whenever the
/// gateway accepts the archive, the central reading must see the same entries with the same
/// bytes, and so must the streaming one where it can read the archive at all. A difference is
/// a panic: the gateway passed an archive that another reader sees differently.
pub fn zip_views(data: &[u8]) {
    use crate::content::Scan;
    use crate::content::archive::{self, Budget, Input, Kind, LegacyNames, Limits, Visitor};
    use std::io::{Cursor, Read};

    /// Most bytes of one entry compared.
    const CAP: u64 = 1 << 20;

    struct Collect(Vec<Vec<u8>>);
    impl Visitor for Collect {
        fn entry(&mut self, _: &str, _: u32, reader: &mut dyn Read, _: &mut Budget) -> Scan {
            let mut bytes = Vec::new();
            reader.take(CAP).read_to_end(&mut bytes)?;
            std::io::copy(reader, &mut std::io::sink())?;
            self.0.push(bytes);
            Ok(Ok(()))
        }
    }

    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let limits = Limits {
        max_depth: 1,
        max_entries: 100,
        max_expanded_bytes: 16 << 20,
        max_ratio: 100,
        legacy_names: LegacyNames::Gb18030,
    };
    let mut gateway = Collect(Vec::new());
    let mut input = data;
    let verdict = archive::walk(
        Kind::Zip,
        Input::Stream(&mut input),
        1,
        &mut Budget::new(limits),
        dir.path(),
        &mut gateway,
    );
    if !matches!(verdict, Ok(Ok(()))) {
        return;
    }
    let read_all = |file: &mut dyn Read| {
        let mut bytes = Vec::new();
        file.take(CAP).read_to_end(&mut bytes).map(|_| bytes)
    };
    // the central directory's view
    let mut central = Vec::new();
    match zip::ZipArchive::new(Cursor::new(data)) {
        Ok(mut zip) => {
            for i in 0..zip.len() {
                match zip.by_index(i) {
                    Ok(mut file) if !file.is_dir() => match read_all(&mut file) {
                        Ok(bytes) => central.push(bytes),
                        Err(e) => panic!(
                            "the gateway accepted a zip whose entry {i} the zip crate cannot read: {e}"
                        ),
                    },
                    Ok(_) => {}
                    Err(e) => panic!(
                        "the gateway accepted a zip whose entry {i} the zip crate cannot open: {e}"
                    ),
                }
            }
        }
        Err(e) => panic!("the gateway accepted a zip the zip crate cannot open: {e}"),
    }
    assert_eq!(
        gateway.0, central,
        "the gateway and the central directory see different entries"
    );
    // a streaming extractor's view, where it can read the archive
    let mut cursor = Cursor::new(data);
    let mut streamed = Vec::new();
    loop {
        match zip::read::read_zipfile_from_stream(&mut cursor) {
            Ok(Some(mut file)) => {
                let is_dir = file.is_dir();
                match read_all(&mut file) {
                    Ok(bytes) if !is_dir => streamed.push(bytes),
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
            Ok(None) => break,
            Err(_) => return,
        }
    }
    assert_eq!(
        gateway.0, streamed,
        "the gateway and a streaming reader see different entries"
    );
}

/// Feeds `data` to the diode receiver as a datagram off the wire, twice: as it is (the tag
/// check must reject it) and signed with the receiver's key, so that the body parsers, the
/// FEC reassembly, the record unpacker, announcements, checkpoint frames and the stream
/// decoder (with its frame layout) see it too;
/// then to a receiver with a smaller MTU and another configuration digest, so that the
/// heartbeat's link parameters reach the mismatch check, and the unauthenticated header
/// reader sees it; then, cut into stream symbols, to a stream decoder.
pub fn diode_datagram(data: &[u8]) {
    use crate::core::diode::{LinkKey, Receiver, ReceiverConfig, wire};
    const KEY: [u8; 32] = [7; 32];
    let Ok(mut receiver) = Receiver::new(ReceiverConfig::new(KEY, 1500)) else {
        return;
    };
    // sealed as a sender would have sealed these bytes as header and body: the receiver
    // opens them back to `data`
    let field = |at: usize| {
        data.get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_be_bytes)
    };
    let mut signed = data.to_vec();
    let Some(tag) = LinkKey::new(&KEY).seal(field(4), field(12), &mut signed, wire::HEADER_LEN)
    else {
        return;
    };
    signed.extend_from_slice(&tag);
    let _ = wire::decode(&LinkKey::new(&KEY), &signed, &mut Vec::new());
    receiver.handle(1, data);
    receiver.handle(2, &signed);
    // the same datagram split in two, as a fragmenting path might
    let mid = signed.len() / 2;
    receiver.handle(3, &signed[..mid]);
    receiver.handle_timeout(10_000);
    while receiver.poll_event().is_some() {}
    let _ = wire::claimed(data);
    let mut other = ReceiverConfig::new(KEY, 1400);
    other.config_digest = [1; wire::CONFIG_DIGEST_LEN];
    if let Ok(mut r) = Receiver::new(other) {
        r.handle(1, data);
        r.handle(2, &signed);
        r.handle(5_000, &signed);
        while r.poll_event().is_some() {}
    }
    // the stream decoder over a run of symbols cut from the input (block, K, id, then 64
    // bytes each), so that frame layouts across symbols, repair symbols and decoding see
    // many symbols of a few small blocks
    let mut stream = crate::core::diode::StreamDecoder::new();
    for chunk in data.chunks_exact(4 + 64) {
        let k = u16::from(chunk[1] % 9);
        let esi = match k {
            0 => u32::from(chunk[2] % 16),
            k => u32::from(k) + u32::from(chunk[2] % 8),
        };
        stream.symbol(&wire::StreamSymbol {
            block: u64::from(chunk[0] % 4),
            source_symbols: k,
            symbol_size: 64,
            esi,
            data: &chunk[4..],
        });
        while stream.poll_frame().is_some() {}
    }
}

/// Reads `data` as the stream gate and the receiving node do: as an RTP header (RFC 3550),
/// as MPEG-TS packets (ISO/IEC 13818-1) with and without a PID list, as a stream frame off
/// the link, and through both gates (rtp and udp-ts). A frame that decodes must encode back
/// to the same bytes, and an RTP header's payload must lie inside the packet after the
/// header. Then the bytes drive a playout (each 3-byte step: session, seq, time) whose
/// packets must come out in order, with at most 1024 held.
pub fn stream_headers(data: &[u8]) {
    use crate::core::stream::{
        Gate, Out, Playout, Protocol, RtpHeader, SourceNet, StreamFrame, StreamRules, check_ts,
    };
    use std::net::{IpAddr, Ipv4Addr};

    if let Ok(h) = RtpHeader::read(data) {
        assert!(h.header_len >= 12 && h.header_len <= h.payload.start);
        assert!(h.payload.start < h.payload.end && h.payload.end <= data.len());
        assert!(h.payload_type < 128 && h.csrc_count < 16);
    }
    let _ = check_ts(data, &[]);
    let _ = check_ts(data, &[0, 256, 4096]);
    if let Ok(frame) = StreamFrame::decode(data) {
        assert_eq!(
            frame.encode(),
            data,
            "a decoded stream frame encodes differently"
        );
    }
    let rules = StreamRules {
        protocol: Protocol::Rtp,
        payload_types: vec![33, 96, 111],
        max_packet_bytes: 1500,
        max_bitrate_bps: 1_000_000,
        pids: vec![0, 256],
        sources: vec![SourceNet {
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            prefix: 8,
        }],
    };
    let source = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let mut rtp = Gate::new(rules.clone());
    let mut udp_ts = Gate::new(StreamRules {
        protocol: Protocol::UdpTs,
        payload_types: vec![],
        ..rules
    });
    for now_ms in [0, 1, 1] {
        let _ = rtp.admit(now_ms, source, data);
        let _ = rtp.admit(now_ms, None, data);
        let _ = udp_ts.admit(now_ms, source, data);
    }
    let mut playout = Playout::new(u64::from(data.first().copied().unwrap_or(20) % 64));
    let mut now_ms = 0u64;
    let mut last: Option<(u64, u64)> = None;
    // the playout's current and retired sessions: a session that comes back after two
    // others starts its order anew, so its packets are only checked against each other
    let (mut current, mut retired): (Option<u64>, Option<u64>) = (None, None);
    let (mut pushed, mut given) = (0u64, 0u64);
    for step in data.chunks_exact(3) {
        let session = u64::from(step[0] >> 6);
        let seq = u64::from(u16::from_be_bytes([step[0] & 0x3f, step[1]]));
        if current != Some(session) && retired != Some(session) {
            (retired, current) = (current, Some(session));
            if last.is_some_and(|(s, _)| s == session) {
                last = None;
            }
        }
        // the third byte's top bit: a packet refused on this node (its place passed over)
        now_ms += u64::from(step[2] & 0x7f);
        if step[2] & 0x80 == 0 {
            pushed += 1;
            playout.push(
                now_ms,
                session,
                seq,
                [session, seq].map(u64::to_be_bytes).concat(),
            );
        } else {
            playout.pass_over(now_ms, session, seq);
        }
        while let Some(out) = playout.pop(now_ms) {
            given += u64::from(!matches!(out, Out::Gap(_)));
            if let Out::Packet(bytes) = out {
                let mut words = bytes.chunks_exact(8).filter_map(|w| w.try_into().ok());
                let (Some(s), Some(q)) = (words.next(), words.next()) else {
                    panic!("a playout packet came out changed");
                };
                let (s, q) = (u64::from_be_bytes(s), u64::from_be_bytes(q));
                if let Some((ls, lq)) = last {
                    assert!(s != ls || q > lq, "seq {q} after {lq} in session {s}");
                }
                last = Some((s, q));
            }
        }
        assert!(playout.held() <= crate::core::stream::playout::MAX_HELD);
    }
    // every packet pushed goes out once, or once as late; a place passed over never does
    given += std::iter::from_fn(|| playout.pop(u64::MAX))
        .filter(|out| !matches!(out, Out::Gap(_)))
        .count() as u64;
    assert_eq!(
        given, pushed,
        "packets and lates given out for the packets pushed"
    );
    assert_eq!(playout.next_deadline(), None, "nothing left behind a gap");
}

/// The schema of the fuzzed messages policy: an object with a short `text`, an optional
/// `party` and a list of `tags`, anything else allowed.
const FUZZ_MESSAGE_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["text"],
  "properties": {
    "text": {"type": "string", "maxLength": 4000},
    "party": {"type": "object", "properties": {"phone": {"type": "string", "maxLength": 40}}},
    "tags": {"type": "array", "items": {"type": "string"}}
  }
}"#;

/// The fuzzed messages policy: every content rule on, personal data masked.
const FUZZ_MESSAGE_POLICY: &str = r#"
[messages]
schema = "fuzz.schema.json"
max_message_bytes = 65536
[text]
keywords = ["内部资料"]
patterns = ['NB-\d{6}']
[markings]
refuse = true
allow_phrases = ["商业秘密"]
[personal_data]
detect = ["resident_id", "mobile", "bank_card", "email"]
action = "mask"
"#;

/// Reads `data` as the message paths do: as a batch object (the receiver's read of what
/// crossed), as a posted body (one JSON value, and NDJSON), and checks every message read
/// under a messages policy with every rule on. Then the invariants: a batch written from
/// the posted messages reads back the same, and a checked message checks again unchanged
/// (masking is idempotent). A panic is a bug.
pub fn message_batch(data: &[u8]) {
    use crate::core::message::{MessageId, encode_line, parse_batch, parse_posted};
    use std::sync::OnceLock;

    static POLICY: OnceLock<Option<crate::policy::Policy>> = OnceLock::new();
    let policy = POLICY.get_or_init(|| {
        let dir = tempfile::tempdir().ok()?;
        std::fs::write(dir.path().join("fuzz.schema.json"), FUZZ_MESSAGE_SCHEMA).ok()?;
        crate::policy::Policy::parse(&dir.path().join("fuzz.toml"), FUZZ_MESSAGE_POLICY).ok()
    });
    let mut bodies: Vec<String> = parse_batch(data)
        .map(|b| b.into_iter().map(|m| m.body).collect())
        .unwrap_or_default();
    for json in [true, false] {
        if let Ok(posted) = parse_posted(data, json, 100, 65_536) {
            let mut batch = Vec::new();
            for (i, body) in posted.iter().enumerate() {
                let id = MessageId::derive("fuzz", &format!("k#{i}"));
                assert!(encode_line(&mut batch, id, body).is_ok(), "{body:?}");
            }
            let read = parse_batch(&batch);
            assert!(
                read.as_ref()
                    .is_ok_and(|r| r.iter().map(|m| &m.body).eq(posted.iter())),
                "{posted:?} {read:?}"
            );
            bodies.extend(posted);
        }
    }
    let Some(policy) = policy else {
        return;
    };
    if let Ok(text) = std::str::from_utf8(data) {
        bodies.push(text.to_string());
    }
    for body in bodies {
        if let Ok(checked) = crate::inspect::message::check_message(
            policy,
            &body,
            crate::keys::suite::Suite::Default,
        ) {
            let again = crate::inspect::message::check_message(
                policy,
                &checked.body,
                crate::keys::suite::Suite::Default,
            );
            assert!(
                again
                    .as_ref()
                    .is_ok_and(|a| a.body == checked.body && a.masked.is_empty()),
                "{body:?} {checked:?} {again:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::manifest::tests::xorshift;

    /// Overwrites up to `most - 1` random bytes of `input`, then cuts it at a random length.
    fn mutate(input: &mut Vec<u8>, next: &mut impl FnMut() -> u64, most: u64) {
        for _ in 0..(next() % most) {
            let pos = (next() as usize) % input.len();
            input[pos] = next() as u8;
        }
        input.truncate((next() as usize) % (input.len() + 1));
    }

    #[test]
    fn the_fuzzed_approval_rules_can_pass_and_fail() {
        let d = crate::core::approval::digest(crate::keys::suite::Suite::Default, b"body");
        let rules = approval_rules();
        assert_eq!(rules.len(), 2);
        let with = |n| approvals(n, &d).unwrap();
        // one of a0: passes the first rule only; two: the second only (a1 is unknown to
        // the first); none: neither
        assert!(rules[0].check(&d, &with(1)).is_ok());
        assert!(rules[1].check(&d, &with(1)).is_err());
        assert!(rules[1].check(&d, &with(2)).is_ok());
        assert!(rules[0].check(&d, &with(2)).is_err());
        assert!(rules.iter().all(|r| r.check(&d, &with(0)).is_err()));
    }

    #[test]
    fn message_readers_never_panic_and_masking_is_idempotent() {
        let mut seeds: Vec<Vec<u8>> = vec![
            br#"{"text":"hello","party":{"phone":"13800138000"},"tags":["a","6222021234567890123"]}"#.to_vec(),
            "{\"text\":\"身份证 11010519491231002X 邮箱 zhang.wei@court.example\"}\n{\"text\":\"x\"}\n".as_bytes().to_vec(),
        ];
        let mut batch = Vec::new();
        crate::core::message::encode_line(
            &mut batch,
            crate::core::message::MessageId::derive("fuzz", "k"),
            r#"{"text":"电话 +86 138 0013 8000"}"#,
        )
        .unwrap();
        seeds.push(batch);
        let mut next = xorshift(0x6d65_7373_6167_6573);
        for i in 0..6_000 {
            let mut input = seeds[i % seeds.len()].clone();
            mutate(&mut input, &mut next, 4);
            message_batch(&input);
        }
        for seed in &seeds {
            message_batch(seed);
        }
        message_batch(&[]);
    }

    /// A smoke run over deterministic pseudo-random and mutated inputs; the real fuzzing
    /// runs under cargo-fuzz (see the README).
    #[test]
    fn never_panics_on_random_and_mutated_inputs() {
        let key = SigningKey::from_seed(&[7u8; 32]).unwrap();
        let good = crate::core::manifest::tests::sample(5000)
            .sign(&key)
            .unwrap()
            .encode()
            .unwrap();
        let frame = wire::encode_object_frame(&good).unwrap();
        // a version 3 envelope: the approvals trailer after the signature
        let mut signed = crate::core::manifest::tests::sample(5000)
            .sign(&key)
            .unwrap();
        let digest = signed.digest(crate::keys::suite::Suite::Default);
        signed.approvals = ["zhang", "李娜"]
            .iter()
            .map(|n| crate::core::approval::Approval {
                approver: n.to_string(),
                signature: crate::core::approval::try_sign(
                    &key,
                    crate::core::approval::Decision::Approve,
                    &digest,
                )
                .unwrap(),
            })
            .collect();
        let approved = signed.encode().unwrap();
        assert_eq!(
            crate::core::manifest::SignedManifest::decode(&approved)
                .unwrap()
                .approvals
                .len(),
            2
        );
        let mut next = xorshift(0x1234_5678_9abc_def0);
        for i in 0..30_000 {
            let mut input = match i % 3 {
                0 => frame.clone(),
                1 => good.clone(),
                _ => approved.clone(),
            };
            mutate(&mut input, &mut next, 8);
            frame_and_manifest(&input);
        }
        frame_and_manifest(&good);
        frame_and_manifest(&approved);
        frame_and_manifest(&[]);
    }

    #[test]
    fn audit_parsers_never_panic_on_mutated_inputs() {
        let key = SigningKey::from_seed(&[9u8; 32]).unwrap();
        let note = crate::core::checkpoint::Checkpoint {
            origin: "isogate/court".into(),
            size: 3,
            root: [1; 32],
            time_ms: 5,
        }
        .sign(&key);
        let record =
            br#"{"seq":1,"time_ms":5,"node":"court","event":"landed","name":"a.pdf"}"#.to_vec();
        let mut next = xorshift(0x0bad_cafe);
        for i in 0..20_000 {
            let mut input = if i % 2 == 0 {
                note.clone().into_bytes()
            } else {
                record.clone()
            };
            mutate(&mut input, &mut next, 4);
            audit_record_and_checkpoint(&input);
        }
    }

    #[test]
    fn diode_datagrams_never_panic() {
        let mut next = xorshift(0xd10d_e000);
        for i in 0..5_000 {
            let len = (next() as usize) % 1500;
            let mut input: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 2 == 0 && input.len() > 4 {
                // a plausible start: the magic, the version and each kind (symbol,
                // heartbeat, announce, checkpoint, stream symbol), the rest random
                input[..2].copy_from_slice(&crate::core::diode::wire::MAGIC);
                input[2] = crate::core::diode::wire::VERSION;
                input[3] = 1 + (i / 2 % 5) as u8;
            }
            diode_datagram(&input);
        }
    }

    #[test]
    fn the_zip_views_agree_on_every_mutated_archive_the_gateway_accepts() {
        use std::io::Write;
        let mut seeds = Vec::new();
        for method in [
            zip::CompressionMethod::Stored,
            zip::CompressionMethod::Deflated,
        ] {
            let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            let opts = zip::write::SimpleFileOptions::default().compression_method(method);
            for (name, body) in [("a.txt", &b"alpha alpha"[..]), ("证据/b.txt", b"beta")] {
                zip.start_file(name, opts).unwrap();
                zip.write_all(body).unwrap();
            }
            seeds.push(zip.finish().unwrap().into_inner());
        }
        // two archives one after the other: refused, never a disagreement
        seeds.push([seeds[0].clone(), seeds[1].clone()].concat());
        let mut next = xorshift(0x0dd_ba11);
        for seed in &seeds {
            zip_views(seed);
        }
        for i in 0..1500 {
            let mut input = seeds[i % seeds.len()].clone();
            mutate(&mut input, &mut next, 4);
            zip_views(&input);
        }
    }

    #[test]
    fn content_inspection_never_panics_on_mutated_documents() {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        zip.start_file("word/document.xml", opts).unwrap();
        zip.write_all(b"<w:document><w:p><w:t>a &amp; b 13800138000</w:t></w:p></w:document>")
            .unwrap();
        let zip = zip.finish().unwrap().into_inner();
        let pdf = b"%PDF-1.7\n1 0 obj\n<< /Length 20 >>\nstream\nBT (Hello) Tj ET\nendstream\nendobj\n%%EOF\n".to_vec();
        let text = "姓名,号码\n张三,13800138000\n".as_bytes().to_vec();
        let rtf = br"{\rtf1\ansi\ansicpg936{\fonttbl{\f0 x;}}\'bb\'fa\u24352?{\field{\*\fldinst PAGE}{\fldrslt 1}}\par}".to_vec();
        let doc = {
            use crate::content::ole::testing::{compound, package, word_streams};
            let (word, table) = word_streams("正文 13800138000\r", false, 0);
            let native = package(b"a", b"a.txt", b"13800138000");
            compound(
                &[
                    ("WordDocument", &word),
                    ("1Table", &table),
                    ("ObjectPool/_1/\u{1}Ole10Native", &native),
                ],
                &[],
            )
        };
        let xls = crate::content::ole::testing::xls(&["姓名", "13800138000"]);
        let ppt = crate::content::ole::testing::ppt("第一页\r13800138000");
        // Text through fonts: a CID font with a ToUnicode CMap (mixed code spaces, bfchar,
        // both bfrange forms, usecmap) defined after the page, a predefined GBK CMap, and a
        // simple font with /Differences inside an object stream.
        let fonts = b"%PDF-1.7
1 0 obj << /Type /Page /Resources << /Font << /F1 3 0 R /F2 4 0 R /F3 7 0 R >> >> >> endobj
2 0 obj << /Length 80 >> stream
BT /F1 9 Tf <0A210A28> Tj [<00200021>] TJ T* /F2 9 Tf (\xbb\xfa) Tj /F3 9 Tf (AB) Tj ET
endstream endobj
3 0 obj << /Type /Font /Subtype /Type0 /Encoding /Identity-H /ToUnicode 5 0 R >> endobj
4 0 obj << /Type /Font /Subtype /Type0 /Encoding /GBK-EUC-H >> endobj
5 0 obj << /Length 200 >> stream
begincmap /CMapName /T def /P usecmap 2 begincodespacerange <00> <80> <8140> <FFFF> endcodespacerange
1 beginbfchar <0A21> <673A> endbfchar 2 beginbfrange <0A28> <0A29> <5BC6> <0020> <0021> [<0041> /space] endbfrange endcmap
endstream endobj
6 0 obj << /Type /ObjStm /N 1 /First 4 /Length 80 >> stream
7 0 << /Type /Font /Subtype /Type1 /Encoding << /Differences [65 /uni673A /g2] >> >>
endstream endobj
%%EOF
"
        .to_vec();
        let seeds = [zip, pdf, text, rtf, doc, xls, ppt, fonts];
        let mut next = xorshift(0xfeed_beef);
        for i in 0..600 {
            let mut input = seeds[i % seeds.len()].clone();
            mutate(&mut input, &mut next, 6);
            content(&input);
        }
    }

    #[test]
    fn stream_headers_never_panic() {
        use crate::core::stream::rtp::tests::packet;
        use crate::core::stream::ts::tests::ts_packet;
        let ts: Vec<u8> = (0..7).flat_map(|_| ts_packet(256)).collect();
        let frame = crate::core::stream::StreamFrame {
            channel: "hearing".into(),
            session: 1,
            seq: 2,
            sent_us: 3,
            payload: packet(33, 1, 7, 1, Some(1), &ts, 3),
        }
        .encode();
        let seeds = [
            packet(33, 1, 7, 0, None, &ts, 0),
            packet(96, 1, 7, 2, Some(2), b"h264", 5),
            ts,
            frame,
        ];
        for seed in &seeds {
            stream_headers(seed);
        }
        let mut next = xorshift(0x57_4ea);
        for i in 0..20_000 {
            let mut input = seeds[i % seeds.len()].clone();
            mutate(&mut input, &mut next, 6);
            stream_headers(&input);
        }
    }
}
