//! AMR and AMR-WB storage files (RFC 4867 §5, single channel): the magic `#!AMR\n` or
//! `#!AMR-WB\n`, then speech frames, each a header byte (P, FT, Q, padding) and as many bytes
//! as its frame type gives (3GPP TS 26.101 / 26.201). The file ends after the last whole
//! frame; bytes that are not a frame header there are a polyglot. The multi-channel magics
//! (`#!AMR_MC1.0\n`, `#!AMR-WB_MC1.0\n`) are not recognised.
//!
//! ```text
//!  #!AMR\n │ P FT(4) Q 00 │ speech bits (by FT) │ … │ (end)
//! ```

use super::source::Source;
use super::{Flaw, broken, end};

const NB: &[u8] = b"#!AMR\n";
const WB: &[u8] = b"#!AMR-WB\n";

/// Speech bytes after the header byte, by frame type (0–15), narrow band; `None` reserved.
const NB_SIZES: [Option<u8>; 16] = [
    Some(12),
    Some(13),
    Some(15),
    Some(17),
    Some(19),
    Some(20),
    Some(26),
    Some(31),
    Some(5),
    None,
    None,
    None,
    None,
    None,
    None,
    Some(0),
];

/// Speech bytes after the header byte, by frame type (0–15), wide band; `None` reserved.
const WB_SIZES: [Option<u8>; 16] = [
    Some(17),
    Some(23),
    Some(32),
    Some(36),
    Some(40),
    Some(46),
    Some(50),
    Some(58),
    Some(60),
    Some(5),
    None,
    None,
    None,
    None,
    Some(0),
    Some(0),
];

/// Whether `head` starts with one of the exact AMR magics.
pub(super) fn sniff(head: &[u8]) -> bool {
    head.starts_with(NB) || head.starts_with(WB)
}

/// Walks an AMR file frame by frame to its end.
pub(super) fn check(src: &mut Source<'_>) -> Result<(), Flaw> {
    let (magic, sizes) = if src.peek(WB.len())?.starts_with(WB) {
        (WB, &WB_SIZES)
    } else if src.peek(NB.len())?.starts_with(NB) {
        (NB, &NB_SIZES)
    } else {
        return Err(broken("amr: no #!AMR magic"));
    };
    src.consume(magic.len());
    loop {
        let Some(&h) = src.peek(1)?.first() else {
            return Ok(());
        };
        let size = if h & 0x83 == 0 {
            sizes.get(usize::from(h >> 3)).copied().flatten()
        } else {
            None
        };
        let Some(size) = size else {
            return end(src, "amr", "the last speech frame");
        };
        src.consume(1);
        src.skip_all(u64::from(size), "amr: speech frame")?;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{accepted, refused, three_cases};
    use crate::core::reason::Reason;

    pub(crate) fn amr() -> Vec<u8> {
        let mut f = b"#!AMR\n".to_vec();
        for _ in 0..3 {
            f.push(7 << 3 | 4); // 12.2 kbit/s, quality bit
            f.extend_from_slice(&[0x55; 31]);
        }
        f.push(15 << 3); // no data
        f
    }

    #[test]
    fn amr_frames_chain_to_the_end() {
        three_cases("amr", &amr(), &[2, 20]);
        let mut wb = b"#!AMR-WB\n".to_vec();
        wb.push(8 << 3);
        wb.extend_from_slice(&[1; 60]);
        accepted("amr", &wb);
        let mut junk = amr();
        junk.push(0x80); // P bit set: not a frame header
        refused("amr", &junk, Reason::Polyglot);
    }
}
