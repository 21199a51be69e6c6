//! Where the content engine reads a file in place: a plain file, or one sealed at rest
//! (`keys::at_rest::SealedFile`, decrypted chunk by chunk as it is read, never written out
//! in plaintext). Readers that look at a file in several places (a zip's directory and
//! records, a compound file's sectors) read at offsets ([`Source::read_at`]) or through a
//! [`SourceCursor`], which is `Read + Seek` over any source.

use crate::keys::at_rest::{SealedFile, Stored};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

/// Bytes read in place, at any offset, without moving a shared position (like
/// `std::os::unix::fs::FileExt`).
pub trait Source {
    /// Bytes in all.
    ///
    /// # Errors
    /// The file's metadata cannot be read.
    fn size(&self) -> io::Result<u64>;

    /// Reads at `offset` into `buf`: how many bytes (0 at or past the end).
    ///
    /// # Errors
    /// Reading failed; for a sealed file, `InvalidData` when a stored chunk does not open
    /// (nothing of it is returned).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Reads exactly `buf.len()` bytes at `offset`.
    ///
    /// # Errors
    /// [`Source::read_at`]'s, and `UnexpectedEof` when the source ends first.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Source for File {
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
}

impl Source for SealedFile {
    fn size(&self) -> io::Result<u64> {
        Ok(self.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        SealedFile::read_at(self, buf, offset)
    }
}

impl Source for Stored {
    fn size(&self) -> io::Result<u64> {
        self.len()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        Stored::read_at(self, buf, offset)
    }
}

/// A read position over a [`Source`], from its start: `Read + Seek`, each reader its own.
#[derive(Clone, Copy)]
pub struct SourceCursor<'a> {
    source: &'a dyn Source,
    pos: u64,
}

impl<'a> SourceCursor<'a> {
    /// A cursor at the start of `source`.
    pub fn new(source: &'a dyn Source) -> SourceCursor<'a> {
        SourceCursor { source, pos: 0 }
    }
}

impl Read for SourceCursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.source.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SourceCursor<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let at = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.source.size()?.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a seek before the start of the file",
            )
        })?;
        self.pos = at;
        Ok(at)
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_cursor_reads_and_seeks_a_file_without_moving_its_offset() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"0123456789").unwrap();
        let mut a = SourceCursor::new(&f);
        let mut b = a;
        let mut four = [0u8; 4];
        a.read_exact(&mut four).unwrap();
        assert_eq!(&four, b"0123");
        b.seek(SeekFrom::End(-3)).unwrap();
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"789");
        a.read_exact(&mut four).unwrap();
        assert_eq!(&four, b"4567", "each cursor its own position");
        assert!(a.seek(SeekFrom::Current(-20)).is_err());
        let mut two = [0u8; 2];
        f.read_exact_at(&mut two, 8).unwrap();
        assert_eq!(&two, b"89");
        assert!(f.read_exact_at(&mut two, 9).is_err());
        assert_eq!(Source::size(&f).unwrap(), 10);
    }
}
