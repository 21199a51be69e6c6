//! UTF-16 text (RFC 2781) as the line scanner reads it: a reader that turns UTF-16LE or
//! UTF-16BE, after its byte-order mark, into UTF-8, strictly (an unpaired surrogate or an odd
//! byte at the end is an error, never a replacement character), and a writer that turns the
//! UTF-8 the scanner writes back into the same UTF-16, byte-order mark first. A text that is
//! read and written back unchanged comes out byte for byte as it went in.
//!
//! ```text
//!  UTF-16 bytes ─► Utf16Reader ─► UTF-8 ─► line scanner ─► UTF-8 ─► Utf16Writer ─► UTF-16 bytes
//! ```
//!
//! [`xml_as_utf8`] reads a package's XML part saved as UTF-16 the same way.
//!
//! Memory: one read buffer of [`READ_BUF`] bytes and the UTF-8 it decodes to; the writer keeps
//! at most the three bytes of a character cut between two writes.

use crate::core::reason::{Reason, Refusal};
use std::io::{self, Read, Write};

/// Bytes of UTF-16 read from the input at a time.
pub const READ_BUF: usize = 64 * 1024;

/// The byte order of a UTF-16 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// Little-endian: byte-order mark `FF FE` (what Windows Notepad calls "Unicode").
    Le,
    /// Big-endian: byte-order mark `FE FF`.
    Be,
}

impl ByteOrder {
    /// The byte-order mark of this byte order.
    pub fn bom(self) -> &'static [u8] {
        match self {
            ByteOrder::Le => b"\xFF\xFE",
            ByteOrder::Be => b"\xFE\xFF",
        }
    }

    fn encoding(self) -> &'static encoding_rs::Encoding {
        match self {
            ByteOrder::Le => encoding_rs::UTF_16LE,
            ByteOrder::Be => encoding_rs::UTF_16BE,
        }
    }
}

/// The error a [`Utf16Reader`] returns, inside an `io::Error` of kind `InvalidData`, when the
/// input is not well-formed UTF-16: the scanner turns it into a `text_encoding` refusal.
#[derive(Debug, thiserror::Error)]
#[error("not well-formed UTF-16 near byte {at}")]
pub struct Malformed {
    /// Offset in the input, in bytes from its start (byte-order mark included), at or just
    /// after the malformed code unit.
    pub at: u64,
}

/// Reads UTF-16 (its byte-order mark first, which is checked and dropped) as UTF-8.
pub struct Utf16Reader<R> {
    inner: R,
    order: ByteOrder,
    decoder: encoding_rs::Decoder,
    /// The read buffer.
    chunk: Box<[u8]>,
    /// Bytes read from `inner` not yet decoded.
    raw: Vec<u8>,
    /// UTF-8 decoded, `out[out_at..]` not yet handed out.
    out: Vec<u8>,
    out_at: usize,
    /// Bytes of the input consumed so far.
    consumed: u64,
    started: bool,
    done: bool,
}

impl<R: Read> Utf16Reader<R> {
    /// A reader of `inner`, which must start with the byte-order mark of `order`.
    pub fn new(inner: R, order: ByteOrder) -> Utf16Reader<R> {
        Utf16Reader {
            inner,
            order,
            decoder: order.encoding().new_decoder_without_bom_handling(),
            chunk: vec![0u8; READ_BUF].into_boxed_slice(),
            raw: Vec::with_capacity(READ_BUF),
            out: Vec::with_capacity(READ_BUF * 3 / 2 + 16),
            out_at: 0,
            consumed: 0,
            started: false,
            done: false,
        }
    }

    fn malformed(&self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, Malformed { at: self.consumed })
    }

    /// Reads more input and decodes it into `out`; false at the end of the input.
    fn fill(&mut self) -> io::Result<bool> {
        if self.done {
            return Ok(false);
        }
        let n = loop {
            match self.inner.read(&mut self.chunk) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        self.raw
            .extend_from_slice(self.chunk.get(..n).unwrap_or_default());
        let last = n == 0;
        if !self.started {
            let bom = self.order.bom();
            if self.raw.len() < bom.len() && !last {
                return Ok(true);
            }
            if !self.raw.starts_with(bom) {
                return Err(self.malformed());
            }
            self.raw.drain(..bom.len());
            self.consumed += bom.len() as u64;
            self.started = true;
        }
        self.out.clear();
        self.out_at = 0;
        let need = self
            .decoder
            .max_utf8_buffer_length_without_replacement(self.raw.len())
            .unwrap_or(self.raw.len() * 3 + 16);
        self.out.resize(need, 0);
        let (result, read, written) =
            self.decoder
                .decode_to_utf8_without_replacement(&self.raw, &mut self.out, last);
        self.consumed += read as u64;
        self.out.truncate(written);
        self.raw.drain(..read);
        match result {
            encoding_rs::DecoderResult::InputEmpty => {}
            // The output was sized for the whole input: this cannot happen, but is not a pass.
            encoding_rs::DecoderResult::OutputFull => {}
            encoding_rs::DecoderResult::Malformed(_, _) => return Err(self.malformed()),
        }
        if last {
            self.done = true;
        }
        Ok(!last || !self.out.is_empty())
    }
}

impl<R: Read> Read for Utf16Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.out_at >= self.out.len() {
            if !self.fill()? {
                return Ok(0);
            }
        }
        let pending = self.out.get(self.out_at..).unwrap_or_default();
        let n = pending.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), pending.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.out_at += n;
        Ok(n)
    }
}

/// Reads an XML part of a package (`part` names it in refusals) through `read`, as UTF-8:
/// one that begins with a UTF-16 byte-order mark is decoded from UTF-16 first, as XML 1.0
/// §4.3.3 and Appendix F tell a reader to (Office and OPC may save a part so); any other
/// goes to `read` as it is (UTF-8, with or without its mark).
///
/// Refusals (`content_unreadable`): UTF-16 without its byte-order mark (the first bytes
/// are `<` in UTF-16), which XML does not allow, and UTF-16 that is not well-formed; a
/// part that cannot be read is never passed over unread.
///
/// # Errors
/// Reading `input` failed; or `read`'s own error.
pub fn xml_as_utf8<T>(
    input: &mut dyn Read,
    part: &str,
    read: impl FnOnce(&mut dyn io::BufRead) -> io::Result<Result<T, Refusal>>,
) -> io::Result<Result<T, Refusal>> {
    let mut head = [0u8; 2];
    let mut n = 0;
    while n < head.len() {
        match input.read(head.get_mut(n..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let first = head.get(..n).unwrap_or_default();
    let order = match first {
        [0xFF, 0xFE] => ByteOrder::Le,
        [0xFE, 0xFF] => ByteOrder::Be,
        [0x3C, 0x00] | [0x00, 0x3C] => {
            return Ok(Err(Refusal::new(
                Reason::ContentUnreadable,
                format!(
                    "{part}: UTF-16 without a byte-order mark, which XML requires of UTF-16 (XML 1.0 §4.3.3)"
                ),
            )));
        }
        _ => return read(&mut io::BufReader::new(first.chain(input))),
    };
    let mut decoded = io::BufReader::new(Noted {
        inner: Utf16Reader::new(first.chain(input), order),
        malformed: None,
    });
    let result = read(&mut decoded);
    match decoded.get_mut().malformed.take() {
        Some(why) => Ok(Err(Refusal::new(
            Reason::ContentUnreadable,
            format!("{part}: {why}"),
        ))),
        None => result,
    }
}

/// A [`Utf16Reader`] that keeps its `InvalidData` error (a [`Malformed`] input), which a
/// parser reading through it may wrap beyond recognition.
struct Noted<R> {
    inner: Utf16Reader<R>,
    malformed: Option<String>,
}

impl<R: Read> Read for Noted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData {
                self.malformed = Some(e.to_string());
            }
        })
    }
}

/// Writes the UTF-8 it is given as UTF-16 of one byte order, its byte-order mark first.
pub struct Utf16Writer<W> {
    inner: W,
    order: ByteOrder,
    bom_written: bool,
    /// The start of a UTF-8 character cut off at the end of the last write.
    partial: Vec<u8>,
}

impl<W: Write> Utf16Writer<W> {
    /// A writer into `inner`.
    pub fn new(inner: W, order: ByteOrder) -> Utf16Writer<W> {
        Utf16Writer {
            inner,
            order,
            bom_written: false,
            partial: Vec::new(),
        }
    }

    /// Writes the byte-order mark when nothing was written yet (an empty text keeps its
    /// mark), then flushes.
    ///
    /// # Errors
    /// Writing failed, or the UTF-8 written ended inside a character (`InvalidData`).
    pub fn finish(mut self) -> io::Result<()> {
        self.bom()?;
        if !self.partial.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "text ended inside a UTF-8 character",
            ));
        }
        self.inner.flush()
    }

    fn bom(&mut self) -> io::Result<()> {
        if !self.bom_written {
            self.inner.write_all(self.order.bom())?;
            self.bom_written = true;
        }
        Ok(())
    }

    fn encode(&mut self, text: &str) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(text.len() * 2);
        for unit in text.encode_utf16() {
            match self.order {
                ByteOrder::Le => bytes.extend_from_slice(&unit.to_le_bytes()),
                ByteOrder::Be => bytes.extend_from_slice(&unit.to_be_bytes()),
            }
        }
        self.inner.write_all(&bytes)
    }
}

impl<W: Write> Write for Utf16Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bom()?;
        let mut joined;
        let bytes: &[u8] = if self.partial.is_empty() {
            buf
        } else {
            joined = std::mem::take(&mut self.partial);
            joined.extend_from_slice(buf);
            &joined
        };
        let valid = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) if e.error_len().is_none() => {
                let (head, tail) = bytes.split_at(e.valid_up_to());
                self.partial = tail.to_vec();
                std::str::from_utf8(head).map_err(|_| invalid())?
            }
            Err(_) => return Err(invalid()),
        };
        self.encode(valid)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn invalid() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(order: ByteOrder, text: &str) -> Vec<u8> {
        let mut out = order.bom().to_vec();
        for u in text.encode_utf16() {
            out.extend_from_slice(&match order {
                ByteOrder::Le => u.to_le_bytes(),
                ByteOrder::Be => u.to_be_bytes(),
            });
        }
        out
    }

    #[test]
    fn both_byte_orders_read_as_utf8_and_write_back_byte_for_byte() {
        let text = "民事判决书\r\n原告：张三 𠀀 (U+20000)\n";
        for order in [ByteOrder::Le, ByteOrder::Be] {
            let bytes = utf16(order, text);
            let mut decoded = String::new();
            Utf16Reader::new(&bytes[..], order)
                .read_to_string(&mut decoded)
                .unwrap();
            assert_eq!(decoded, text);
            let mut back = Vec::new();
            let mut w = Utf16Writer::new(&mut back, order);
            // written in pieces that cut characters in two
            for piece in decoded.as_bytes().chunks(5) {
                w.write_all(piece).unwrap();
            }
            w.finish().unwrap();
            assert_eq!(back, bytes);
        }
    }

    #[test]
    fn malformed_utf16_is_an_error_not_a_replacement() {
        let mut lone = ByteOrder::Le.bom().to_vec();
        lone.extend_from_slice(&[0x41, 0, 0x00, 0xD8, 0x42, 0]); // A, lone high surrogate, B
        let err = Utf16Reader::new(&lone[..], ByteOrder::Le)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.get_ref().unwrap().downcast_ref::<Malformed>().is_some());
        let mut odd = utf16(ByteOrder::Be, "ab");
        odd.push(0x41);
        assert!(
            Utf16Reader::new(&odd[..], ByteOrder::Be)
                .read_to_end(&mut Vec::new())
                .is_err()
        );
        // the wrong byte-order mark
        let be = utf16(ByteOrder::Be, "ab");
        assert!(
            Utf16Reader::new(&be[..], ByteOrder::Le)
                .read_to_end(&mut Vec::new())
                .is_err()
        );
    }

    #[test]
    fn a_large_text_streams_through_small_buffers() {
        let line = "第一行：内容 content 123\n".repeat(20_000);
        let bytes = utf16(ByteOrder::Le, &line);
        let mut r = Utf16Reader::new(&bytes[..], ByteOrder::Le);
        let mut got = Vec::new();
        let mut buf = [0u8; 777];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(String::from_utf8(got).unwrap(), line);
    }
}
