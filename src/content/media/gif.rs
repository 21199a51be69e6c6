//! GIF (CompuServe GIF87a / GIF89a): header, logical screen descriptor and its colour
//! table, then blocks — extensions (0x21) and images (0x2C), each a chain of sub-blocks —
//! up to the trailer 0x3B; nothing after it.
//!
//! ```text
//!  GIF89a │ screen (7) [colours] │ 0x21 label {n data}… 0 │ 0x2C desc [colours] lzw {n data}… 0 │ 0x3B │ (end)
//! ```

use super::source::Source;
use super::{Flaw, broken, end};

/// Walks a GIF from its header to its trailer and checks that nothing follows.
pub(super) fn check(src: &mut Source<'_>) -> Result<(), Flaw> {
    let sig = src.need::<6>("gif: header")?;
    if &sig != b"GIF87a" && &sig != b"GIF89a" {
        return Err(broken("gif: no GIF87a/GIF89a header"));
    }
    let screen = src.need::<7>("gif: logical screen descriptor")?;
    colour_table(src, screen[4], "gif: global colour table")?;
    loop {
        let at = src.pos();
        let [block] = src.need::<1>("gif: block")?;
        match block {
            0x21 => {
                src.need::<1>("gif: extension label")?;
                sub_blocks(src, "gif: extension")?;
            }
            0x2C => {
                let desc = src.need::<9>("gif: image descriptor")?;
                colour_table(src, desc[8], "gif: local colour table")?;
                let [lzw] = src.need::<1>("gif: LZW code size")?;
                if !(1..=11).contains(&lzw) {
                    return Err(broken(format!(
                        "gif: image at offset {at}: LZW code size {lzw}"
                    )));
                }
                sub_blocks(src, "gif: image data")?;
            }
            0x3B => return end(src, "gif", "the trailer (0x3B)"),
            other => {
                return Err(broken(format!(
                    "gif: unknown block 0x{other:02x} at offset {at}"
                )));
            }
        }
    }
}

/// Skips the colour table that `flags` announces (bit 7 set: 3 × 2^(n+1) bytes).
fn colour_table(src: &mut Source<'_>, flags: u8, what: &str) -> Result<(), Flaw> {
    if flags & 0x80 != 0 {
        src.skip_all(3u64 << ((flags & 7) + 1), what)?;
    }
    Ok(())
}

/// Skips a chain of sub-blocks up to and with its zero terminator.
fn sub_blocks(src: &mut Source<'_>, what: &str) -> Result<(), Flaw> {
    loop {
        let [n] = src.need::<1>(what)?;
        if n == 0 {
            return Ok(());
        }
        src.skip_all(u64::from(n), what)?;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{refused, three_cases};
    use crate::core::reason::Reason;

    fn gif() -> Vec<u8> {
        let mut f = b"GIF89a\x01\x00\x01\x00\x80\x00\x00".to_vec();
        f.extend_from_slice(&[0, 0, 0, 255, 255, 255]); // global colour table, 2 entries
        f.extend_from_slice(b"\x21\xf9\x04\x01\x00\x00\x00\x00"); // graphic control
        f.extend_from_slice(b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00"); // image
        f.extend_from_slice(b"\x02\x02\x44\x01\x00"); // lzw 2, one sub-block, end
        f.push(0x3b);
        f
    }

    #[test]
    fn gif_ends_at_its_trailer() {
        three_cases("gif", &gif(), &[1, 3, 8]);
        let mut bad = gif();
        let n = bad.len();
        bad[n - 1] = 0x3a;
        refused("gif", &bad, Reason::ContentUnreadable);
    }
}
