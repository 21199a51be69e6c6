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

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
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
}
