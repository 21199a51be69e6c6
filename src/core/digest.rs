//! The hash of an object's content as the manifest records it, of the whole and of each
//! chunk, with the pair's suite: SHA-256 (RFC 6234, through `ring`) under `default`, SM3
//! (GB/T 32905) under `gm`; read in bounded steps whatever the size.

use crate::keys::suite::{Hasher, Suite};
use std::io::{self, Read};

/// The `suite`'s hash of the whole content and of each `chunk`-sized piece (32 bytes each),
/// reading in bounded steps of at most 1 MiB. Errors: the reader's.
pub fn hash_content<R: Read>(
    r: &mut R,
    chunk: u32,
    suite: Suite,
) -> io::Result<([u8; 32], Vec<[u8; 32]>)> {
    let chunk = chunk as usize;
    let mut buf = vec![0u8; chunk.clamp(4096, 1 << 20)];
    let mut total = Hasher::new(suite);
    let mut part = Hasher::new(suite);
    let mut in_part = 0usize;
    let mut parts = Vec::new();
    loop {
        let want = (chunk - in_part).min(buf.len());
        let n = r.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        total.update(&buf[..n]);
        part.update(&buf[..n]);
        in_part += n;
        if in_part == chunk {
            let done = std::mem::replace(&mut part, Hasher::new(suite));
            parts.push(done.finish());
            in_part = 0;
        }
    }
    if in_part > 0 {
        parts.push(part.finish());
    }
    Ok((total.finish(), parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_hashes_match_independent_hashes() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        for suite in Suite::ALL {
            let (total, parts) = hash_content(&mut &data[..], 4096, suite).unwrap();
            assert_eq!(parts.len(), 3);
            let h = |b: &[u8]| crate::keys::suite::digest(suite, b);
            assert_eq!(total, h(&data));
            assert_eq!(parts[0], h(&data[..4096]));
            assert_eq!(parts[2], h(&data[8192..]));
            let (_, none) = hash_content(&mut &b""[..], 4096, suite).unwrap();
            assert!(none.is_empty());
        }
        // SM3 of "abc", GB/T 32905 appendix A example 1
        let (abc, _) = hash_content(&mut &b"abc"[..], 4096, Suite::Gm).unwrap();
        assert_eq!(
            hex::encode(abc),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
    }
}
