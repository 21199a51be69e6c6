//! RIFF containers (Microsoft/IBM RIFF; WAVE per the Multimedia Programming Interface and
//! Data Specifications 1.0; WebP per RFC 9649): the RIFF size must equal the file length
//! minus 8 (one pad byte allowed after an odd size), and the chunks inside must tile it
//! exactly, each padded to an even length.
//!
//! ```text
//!  "RIFF" size form │ id size data [pad] │ id size data [pad] │ … │ [pad] │ (end)
//!                   └──────────────── size bytes ─────────────────┘
//!  WAVE: "fmt " (≥ 16 bytes) before "data"        WebP: first chunk VP8 / VP8L / VP8X
//! ```
//!
//! RF64/BW64 (files over 4 GiB) are not RIFF and are not recognised.

use super::source::Source;
use super::{Flaw, broken, end};

/// The RIFF forms this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    /// "WAVE": PCM and other audio.
    Wave,
    /// "WEBP": WebP images.
    Webp,
}

impl Form {
    fn tag(self) -> &'static [u8; 4] {
        match self {
            Form::Wave => b"WAVE",
            Form::Webp => b"WEBP",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Form::Wave => "wav",
            Form::Webp => "webp",
        }
    }
}

/// The form of a RIFF file from its first 12 bytes.
pub(super) fn sniff(head: &[u8]) -> Option<Form> {
    if !head.starts_with(b"RIFF") {
        return None;
    }
    match head.get(8..12)? {
        b"WAVE" => Some(Form::Wave),
        b"WEBP" => Some(Form::Webp),
        _ => None,
    }
}

/// Walks a RIFF file of `form` and checks that it ends where its size says.
pub(super) fn check(src: &mut Source<'_>, form: Form) -> Result<(), Flaw> {
    let what = form.name();
    let h = src.need::<12>(&format!("{what}: RIFF header"))?;
    if &h[..4] != b"RIFF" || &h[8..12] != form.tag() {
        return Err(broken(format!("{what}: no RIFF {:?} header", form.tag())));
    }
    let size = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let riff_end = 8 + u64::from(size);
    let mut seen_fmt = false;
    let mut seen_data = false;
    let mut first = true;
    while src.pos() < riff_end {
        let at = src.pos();
        if riff_end - at < 8 {
            return Err(broken(format!(
                "{what}: a chunk header at offset {at} crosses the RIFF size"
            )));
        }
        let c = src.need::<8>(&format!("{what}: chunk header"))?;
        let id = [c[0], c[1], c[2], c[3]];
        let name = String::from_utf8_lossy(&id).into_owned();
        let len = u64::from(u32::from_le_bytes([c[4], c[5], c[6], c[7]]));
        if !id.iter().all(|b| (0x20..0x7f).contains(b)) {
            return Err(broken(format!(
                "{what}: chunk at offset {at} has no printable id"
            )));
        }
        let data_end = at + 8 + len;
        if data_end > riff_end {
            return Err(broken(format!(
                "{what}: chunk {name:?} at offset {at} runs past the RIFF size"
            )));
        }
        let head = src.peek(16)?;
        match form {
            Form::Wave => match &id {
                b"fmt " if len >= 16 => seen_fmt = true,
                b"fmt " => return Err(broken("wav: fmt chunk shorter than 16 bytes")),
                b"data" if !seen_fmt => {
                    return Err(broken("wav: data chunk before the fmt chunk"));
                }
                b"data" => seen_data = true,
                _ => {}
            },
            Form::Webp => {
                let image = match &id {
                    b"VP8 " => head.get(3..6) == Some(&[0x9d, 0x01, 0x2a][..]),
                    b"VP8L" => head.first() == Some(&0x2f),
                    b"VP8X" => len >= 10,
                    _ if first => {
                        return Err(broken(format!(
                            "webp: first chunk is {name:?}, not VP8, VP8L or VP8X"
                        )));
                    }
                    _ => {
                        seen_data |= matches!(&id, b"ANMF");
                        true
                    }
                };
                if !image {
                    return Err(broken(format!("webp: chunk {name:?} has no valid header")));
                }
                seen_data |= matches!(&id, b"VP8 " | b"VP8L");
            }
        }
        first = false;
        src.skip_all(len, &format!("{what}: chunk {name:?}"))?;
        // an odd chunk is padded to even, except where the RIFF size ends with it
        if len % 2 == 1 && data_end < riff_end {
            src.skip_all(1, &format!("{what}: pad byte of chunk {name:?}"))?;
        }
    }
    if !seen_data {
        return Err(broken(match form {
            Form::Wave => "wav: no data chunk",
            Form::Webp => "webp: no image data chunk",
        }));
    }
    // the one pad byte an odd RIFF size may be followed by, and then the end
    if size % 2 == 1 && src.peek(2)?.len() == 1 {
        src.consume(1);
    }
    if src.at_end()? {
        return Ok(());
    }
    end_strict(src, what)
}

/// Data after the RIFF size: always a polyglot (RIFF leaves no room for padding).
fn end_strict(src: &mut Source<'_>, what: &str) -> Result<(), Flaw> {
    match end(src, what, "the RIFF size") {
        Err(e) => Err(e),
        Ok(()) => Err(Flaw::Polyglot(format!(
            "{what}: zero bytes after the RIFF size"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{refused, three_cases};
    use crate::core::reason::Reason;

    fn riff(form: &[u8; 4], chunks: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
        let mut body = form.to_vec();
        for (id, data) in chunks {
            body.extend_from_slice(*id);
            body.extend_from_slice(&(data.len() as u32).to_le_bytes());
            body.extend_from_slice(data);
            if data.len() % 2 == 1 {
                body.push(0);
            }
        }
        let mut f = b"RIFF".to_vec();
        f.extend_from_slice(&(body.len() as u32).to_le_bytes());
        f.extend(body);
        f
    }

    pub(crate) fn wav() -> Vec<u8> {
        let fmt = b"\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00";
        riff(b"WAVE", &[(b"fmt ", fmt), (b"data", &[0, 0, 1, 0, 2, 0])])
    }

    fn webp() -> Vec<u8> {
        riff(b"WEBP", &[(b"VP8L", b"\x2f\x00\x00\x00\x00\x00\x00")])
    }

    #[test]
    fn wav_size_and_chunks() {
        three_cases("wav", &wav(), &[1, 2, 10]);
        let mut zeros = wav();
        zeros.extend_from_slice(&[0; 8]);
        refused("wav", &zeros, Reason::Polyglot);
        let mut lying = wav();
        lying[4] += 2; // RIFF size two bytes longer than the chunks
        refused("wav", &lying, Reason::ContentUnreadable);
        let no_fmt = riff(b"WAVE", &[(b"data", &[0, 0])]);
        refused("wav", &no_fmt, Reason::ContentUnreadable);
    }

    #[test]
    fn a_zip_in_the_last_chunk_is_found() {
        let z = super::super::testing::zip();
        let fmt = b"\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00";
        let hidden = riff(
            b"WAVE",
            &[(b"fmt ", fmt), (b"data", &[0, 0]), (b"zzzz", &z)],
        );
        refused("wav", &hidden, Reason::Polyglot);
        let twin = riff(
            b"WAVE",
            &[
                (b"fmt ", fmt),
                (b"data", &[0, 0]),
                (b"zzzz", &vec![1; z.len()]),
            ],
        );
        super::super::testing::accepted("wav", &twin);
    }

    #[test]
    fn webp_size_and_chunks() {
        // VP8L payload is odd: padded to even inside the RIFF size
        three_cases("webp", &webp(), &[1, 3]);
        let not_image = riff(b"WEBP", &[(b"EXIF", b"xx")]);
        refused("webp", &not_image, Reason::ContentUnreadable);
    }
}
