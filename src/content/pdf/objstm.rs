//! The objects of a decoded object stream (ISO 32000-1 §7.5.7), read as they stream past:
//! the header of object numbers and offsets, then each object's bytes, parsed and handed to
//! the fonts. Nothing is held but the header and one object.
//!
//! ```text
//!  "5 0 6 30 … " (up to /First) ─► [(5, 0), (6, 30) …]
//!  the objects: bytes from one offset to the next ─► Parser ─► fonts
//! ```

use super::fonts::Fonts;
use super::objects::Parser;

/// Longest header (object numbers and offsets) read.
const MAX_HEADER: usize = 256 * 1024;

/// Longest object read; a longer one is not summarised (and the fonts told so).
const MAX_OBJECT: usize = 64 * 1024;

/// Reads the objects of one object stream.
#[derive(Debug)]
pub(super) struct ObjStm {
    /// /First: where the first object starts; None when the dictionary gives none.
    first: Option<usize>,
    /// Bytes read.
    at: usize,
    header: Vec<u8>,
    /// (offset from /First, object number), by offset; built at /First.
    offsets: Vec<(usize, u32)>,
    /// The object being read: index in `offsets`.
    current: Option<usize>,
    object: Vec<u8>,
    long: bool,
}

impl ObjStm {
    pub(super) fn new(first: Option<usize>) -> ObjStm {
        ObjStm {
            first,
            at: 0,
            header: Vec::new(),
            offsets: Vec::new(),
            current: None,
            object: Vec::new(),
            long: false,
        }
    }

    fn parse_header(&mut self, doc: &mut Fonts) {
        let text = String::from_utf8_lossy(&self.header);
        let numbers: Vec<Option<usize>> = text
            .split_ascii_whitespace()
            .map(|w| w.parse().ok())
            .collect();
        for pair in numbers.chunks_exact(2) {
            match (pair[0].and_then(|n| u32::try_from(n).ok()), pair[1]) {
                (Some(num), Some(offset)) => self.offsets.push((offset, num)),
                _ => doc.lost = true,
            }
        }
        self.offsets.sort_unstable();
        self.header = Vec::new();
    }

    /// Ends the object being read, if any.
    fn end_object(&mut self, doc: &mut Fonts) {
        let Some(index) = self.current.take() else {
            return;
        };
        let num = self.offsets.get(index).map(|&(_, n)| n);
        if self.long {
            doc.lost = true;
        } else if let Some(value) = Parser::whole(&self.object) {
            doc.object(num, &value, false);
        }
        self.object.clear();
        self.long = false;
    }

    pub(super) fn feed(&mut self, mut data: &[u8], doc: &mut Fonts) {
        let Some(first) = self.first else {
            if !data.is_empty() {
                doc.lost = true;
            }
            return;
        };
        while !data.is_empty() {
            if self.at < first {
                let n = (first - self.at).min(data.len());
                if self.header.len() + n <= MAX_HEADER {
                    self.header.extend_from_slice(&data[..n]);
                } else {
                    doc.lost = true;
                }
                self.at += n;
                data = &data[n..];
                if self.at == first {
                    self.parse_header(doc);
                }
                continue;
            }
            if self.at == first && self.offsets.is_empty() && !self.header.is_empty() {
                self.parse_header(doc);
            }
            let rel = self.at - first;
            // The object that starts here, if one does.
            let next = self.current.map_or(0, |i| i + 1);
            if self.offsets.get(next).is_some_and(|&(off, _)| off <= rel) {
                self.end_object(doc);
                self.current = Some(next);
                continue;
            }
            let until = self
                .offsets
                .get(next)
                .map_or(data.len(), |&(off, _)| (off - rel).min(data.len()));
            let n = until.max(1).min(data.len());
            if self.current.is_some() {
                if self.object.len() + n <= MAX_OBJECT {
                    self.object.extend_from_slice(&data[..n]);
                } else {
                    self.long = true;
                }
            }
            self.at += n;
            data = &data[n..];
        }
    }

    pub(super) fn finish(&mut self, doc: &mut Fonts) {
        if self.first.is_some() && self.offsets.is_empty() && !self.header.is_empty() {
            self.parse_header(doc);
        }
        self.end_object(doc);
    }
}
