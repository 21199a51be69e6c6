//! SHA-256 of an object's content as the manifest records it: of the whole, and of each
//! chunk (RFC 6234's SHA-256 through `ring`), read in bounded steps whatever the size.

use ring::digest::{Context, SHA256};
use std::io::{self, Read};

/// SHA-256 of the whole content and of each `chunk`-sized piece, reading in bounded steps.
pub fn hash_content<R: Read>(r: &mut R, chunk: u32) -> io::Result<([u8; 32], Vec<[u8; 32]>)> {
    let chunk = chunk as usize;
    let mut buf = vec![0u8; chunk.clamp(4096, 1 << 20)];
    let mut total = Context::new(&SHA256);
    let mut part = Context::new(&SHA256);
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
            let done = std::mem::replace(&mut part, Context::new(&SHA256));
            parts.push(digest32(done));
            in_part = 0;
        }
    }
    if in_part > 0 {
        parts.push(digest32(part));
    }
    Ok((digest32(total), parts))
}

pub(crate) fn digest32(ctx: Context) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_hashes_match_independent_hashes() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let (total, parts) = hash_content(&mut &data[..], 4096).unwrap();
        assert_eq!(parts.len(), 3);
        let h = |b: &[u8]| {
            digest32({
                let mut c = Context::new(&SHA256);
                c.update(b);
                c
            })
        };
        assert_eq!(total, h(&data));
        assert_eq!(parts[0], h(&data[..4096]));
        assert_eq!(parts[2], h(&data[8192..]));
        let (_, none) = hash_content(&mut &b""[..], 4096).unwrap();
        assert!(none.is_empty());
    }
}
