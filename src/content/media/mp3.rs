//! MP3 and other MPEG audio (ISO/IEC 11172-3, 13818-3, MPEG 2.5): ID3v2 tags at the start
//! (id3.org ID3v2.3/2.4: 10-byte header, syncsafe size, optional footer), then MPEG audio
//! frames chained by the length each header gives, then an optional APEv2 tag (with its
//! header) and an optional ID3v1 tag ("TAG", the last 128 bytes). A Xing/Info/VBRI frame is
//! an ordinary frame and is walked like one; its counts are not compared with the frames.
//!
//! ```text
//!  [ID3 v size(syncsafe) frames…] │ FFFx hdr data │ FFFx hdr data │ … │ [APETAGEX … ] │ [TAG (128)] │ (end)
//! ```
//!
//! Bytes before the first frame that are not an ID3v2 tag (or up to 64 KiB of zero padding
//! after it) make the file unreadable; bytes after the last frame that are not a tag are a
//! polyglot. Every frame must agree with the first on version, layer and sample rate;
//! free-format streams (bitrate index 0) and Lyrics3 tags are not read.

use super::source::Source;
use super::{CHUNK, Flaw, broken, end};

/// Most ID3v2 tags read before the first frame.
const MAX_ID3V2_TAGS: usize = 4;

/// Zero bytes tolerated between the ID3v2 tags and the first frame (padding a tagger left
/// outside the size it declared).
const ID3V2_PAD: u64 = 64 * 1024;

/// One MPEG audio frame header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Frame {
    /// 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5.
    version: u8,
    /// 3: layer I, 2: layer II, 1: layer III.
    layer: u8,
    /// Sampling rate, Hz.
    rate: u32,
    /// Whole frame length in bytes, header included.
    len: u32,
}

/// Decodes a frame header from the first four bytes of `b`.
fn header(b: &[u8]) -> Option<Frame> {
    let &[b0, b1, b2, b3, ..] = b else {
        return None;
    };
    if b0 != 0xFF || b1 & 0xE0 != 0xE0 || b3 & 3 == 2 {
        return None;
    }
    let version = (b1 >> 3) & 3;
    let layer = (b1 >> 1) & 3;
    let bitrate_index = usize::from(b2 >> 4);
    let rate_index = usize::from((b2 >> 2) & 3);
    let padding = u32::from((b2 >> 1) & 1);
    if version == 1 || layer == 0 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None;
    }
    const V1: [[u32; 14]; 3] = [
        [
            32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
        ],
        [
            32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
        ],
        [
            32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
        ],
    ];
    const V2: [[u32; 14]; 2] = [
        [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
        [
            32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
        ],
    ];
    let row = if version == 3 {
        V1.get(usize::from(layer - 1))?
    } else {
        V2.get(usize::from(layer == 3))?
    };
    let kbps = *row.get(bitrate_index - 1)?;
    let rate = match version {
        3 => [44100, 48000, 32000],
        2 => [22050, 24000, 16000],
        _ => [11025, 12000, 8000],
    }
    .get(rate_index)
    .copied()?;
    let bps = kbps * 1000;
    let len = match layer {
        3 => (12 * bps / rate + padding) * 4,
        2 => 144 * bps / rate + padding,
        _ if version == 3 => 144 * bps / rate + padding,
        _ => 72 * bps / rate + padding,
    };
    Some(Frame {
        version,
        layer,
        rate,
        len,
    })
}

/// The length of an ID3v2 tag whose 10-byte header starts `b`, header and footer included.
fn id3v2_len(b: &[u8]) -> Option<u64> {
    let &[b'I', b'D', b'3', major, minor, flags, s0, s1, s2, s3, ..] = b else {
        return None;
    };
    if !(2..=4).contains(&major) || minor == 0xFF || [s0, s1, s2, s3].iter().any(|s| s & 0x80 != 0)
    {
        return None;
    }
    let size = (u64::from(s0) << 21) | (u64::from(s1) << 14) | (u64::from(s2) << 7) | u64::from(s3);
    let footer = if flags & 0x10 != 0 { 10 } else { 0 };
    Some(10 + size + footer)
}

/// Whether `head` starts like an MP3: an ID3v2 tag, or a layer II or III frame header
/// followed (where the head is long enough) by a second one of the same stream.
pub(super) fn sniff(head: &[u8]) -> bool {
    if id3v2_len(head).is_some() {
        return true;
    }
    // layer I is not sniffed: its headers FF FE / FF FF are the UTF-16 byte-order mark and
    // fill, and no recorder writes it
    let Some(first) = header(head).filter(|h| h.layer != 3) else {
        return false;
    };
    match head.get(first.len as usize..) {
        Some(rest) if rest.len() >= 4 => header(rest).is_some_and(|h| same_stream(&first, &h)),
        _ => true,
    }
}

fn same_stream(a: &Frame, b: &Frame) -> bool {
    a.version == b.version && a.layer == b.layer && a.rate == b.rate
}

/// Walks an MP3 from its first byte to its last.
pub(super) fn check(src: &mut Source<'_>) -> Result<(), Flaw> {
    for _ in 0..MAX_ID3V2_TAGS {
        let Some(len) = id3v2_len(src.peek(10)?) else {
            break;
        };
        src.skip_all(len, "mp3: ID3v2 tag")?;
    }
    // some taggers leave zero padding after the size their tag declares
    let mut padding = 0u64;
    while padding < ID3V2_PAD {
        let zeros = src.peek(CHUNK)?.iter().take_while(|b| **b == 0).count();
        if zeros == 0 {
            break;
        }
        src.consume(zeros);
        padding += zeros as u64;
    }
    let mut first: Option<Frame> = None;
    let mut frames = 0u64;
    loop {
        let at = src.pos();
        let h = match header(src.peek(4)?) {
            Some(h) if first.is_none_or(|f| same_stream(&f, &h)) => h,
            _ if frames == 0 => {
                return Err(broken(format!(
                    "mp3: no MPEG audio frame at offset {at} (data before the first frame)"
                )));
            }
            _ => break,
        };
        first.get_or_insert(h);
        src.skip_all(
            u64::from(h.len),
            &format!("mp3: audio frame {}", frames + 1),
        )?;
        frames += 1;
    }
    if src.peek(8)?.starts_with(b"APETAGEX") {
        let ape = src.need::<32>("mp3: APEv2 tag header")?;
        let size = u32::from_le_bytes([ape[12], ape[13], ape[14], ape[15]]);
        let flags = u32::from_le_bytes([ape[20], ape[21], ape[22], ape[23]]);
        // the header (bit 29 set) gives the size of the items and the footer
        if flags & (1 << 29) == 0 || size < 32 {
            return Err(broken("mp3: APEv2 tag without a valid header"));
        }
        src.skip_all(u64::from(size) - 32, "mp3: APEv2 tag items")?;
        if !src
            .need::<32>("mp3: APEv2 tag footer")?
            .starts_with(b"APETAGEX")
        {
            return Err(broken("mp3: APEv2 tag without its footer"));
        }
    }
    let tail = src.peek(129)?;
    if tail.len() == 128 && tail.starts_with(b"TAG") {
        src.consume(128);
    }
    end(src, "mp3", "the last audio frame")
}

#[cfg(test)]
mod tests {
    use super::super::testing::{accepted, refused, three_cases};
    use crate::core::reason::Reason;

    /// MPEG-1 layer III, 128 kbit/s, 44.1 kHz, no padding: 417-byte frames.
    fn frame() -> Vec<u8> {
        let mut f = vec![0xFF, 0xFB, 0x90, 0x64];
        f.resize(417, 0x11);
        f
    }

    pub(crate) fn mp3() -> Vec<u8> {
        let mut f = b"ID3\x04\x00\x00\x00\x00\x00\x0a".to_vec();
        f.extend_from_slice(b"TIT2\0\0\0\0\0\0"); // ten bytes of tag
        for _ in 0..3 {
            f.extend(frame());
        }
        f
    }

    #[test]
    fn utf16_text_is_not_mpeg_audio() {
        assert!(!super::sniff(b"\xff\xfea\x00b\x00"));
        assert!(super::sniff(&mp3()));
        assert!(super::sniff(&frame()));
    }

    #[test]
    fn mp3_frames_chain_to_the_end() {
        assert_eq!(super::header(&frame()).unwrap().len, 417);
        three_cases("mp3", &mp3(), &[1, 100]);
        let mut tagged = mp3();
        let mut v1 = b"TAG".to_vec();
        v1.resize(128, b' ');
        tagged.extend(v1);
        accepted("mp3", &tagged);
        let mut ape = mp3();
        let mut header = b"APETAGEX\xd0\x07\0\0".to_vec();
        header.extend_from_slice(&(32u32 + 5).to_le_bytes()); // items + footer
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&(1u32 << 29 | 1 << 31).to_le_bytes());
        header.extend_from_slice(&[0; 8]);
        ape.extend_from_slice(&header);
        ape.extend_from_slice(b"items");
        ape.extend_from_slice(b"APETAGEX");
        ape.extend_from_slice(&[0; 24]);
        accepted("mp3", &ape);
        let mut padded = mp3();
        padded.splice(20..20, [0u8; 300]);
        accepted("mp3", &padded);
        let mut garbage = b"junk".to_vec();
        garbage.extend(mp3());
        refused("mp3", &garbage, Reason::ContentUnreadable);
        // a frame of another stream after the last one is not audio of this file
        let mut other = mp3();
        other.extend_from_slice(&[0xFF, 0xF3, 0x90, 0x64]);
        other.extend_from_slice(&[0; 200]);
        refused("mp3", &other, Reason::Polyglot);
    }
}
