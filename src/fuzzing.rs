//! Entry points for the fuzz targets under `fuzz/` (and for the in-suite smoke run of the
//! same code): every parser that reads bytes from the other side, reached the way the
//! receiver reaches it. Each function must never panic, whatever the input.

use crate::keys::SigningKey;
use crate::manifest::SignedManifest;
use crate::verify::{ReceiveRules, Reception};
use crate::wire::{self, FrameHeader, HEADER_LEN, Receipt};

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
        peer_key: key.verify_key(),
        channels: vec!["to-internet".into()],
    };
    // As received: untrusted bytes, (almost always) a bad signature.
    let _ = Reception::begin(data, &rules);
    // As if the peer had signed these bytes: exercises the body decoding and checks.
    let (body, content) = data.split_at(data.len().min(data.len() / 2 + 1));
    let signed = SignedManifest {
        body: body.to_vec(),
        signature: key.sign(&[b"isogate manifest v1\0".as_slice(), body].concat()),
    };
    let Ok(encoded) = signed.encode() else {
        return;
    };
    if let Ok(mut r) = Reception::begin(&encoded, &rules) {
        let _ = r.feed(content).map(|()| r.finish());
    }
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
        let _ = crate::checkpoint::Checkpoint::open(text, &key.verify_key(), "isogate/court");
    }
    if let Ok(proof) = serde_json::from_slice::<crate::audit::prove::Proof>(data) {
        let _ = crate::audit::prove::verify_proof(&proof, &key.verify_key());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random generator for the smoke runs.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// A smoke run over deterministic pseudo-random and mutated inputs; the real fuzzing
    /// runs under cargo-fuzz (see the README).
    #[test]
    fn never_panics_on_random_and_mutated_inputs() {
        let key = SigningKey::from_seed(&[7u8; 32]).unwrap();
        let good = crate::manifest::tests::sample(5000)
            .sign(&key)
            .unwrap()
            .encode()
            .unwrap();
        let frame = wire::encode_object_frame(&good).unwrap();
        let mut next = xorshift(0x1234_5678_9abc_def0);
        for i in 0..20_000 {
            let mut input = if i % 2 == 0 {
                frame.clone()
            } else {
                good.clone()
            };
            for _ in 0..(next() % 8) {
                let pos = (next() as usize) % input.len();
                input[pos] = next() as u8;
            }
            input.truncate((next() as usize) % (input.len() + 1));
            frame_and_manifest(&input);
        }
        frame_and_manifest(&good);
        frame_and_manifest(&[]);
    }

    #[test]
    fn audit_parsers_never_panic_on_mutated_inputs() {
        let key = SigningKey::from_seed(&[9u8; 32]).unwrap();
        let note = crate::checkpoint::Checkpoint {
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
            for _ in 0..(next() % 4) {
                let pos = (next() as usize) % input.len();
                input[pos] = next() as u8;
            }
            input.truncate((next() as usize) % (input.len() + 1));
            audit_record_and_checkpoint(&input);
        }
    }
}
