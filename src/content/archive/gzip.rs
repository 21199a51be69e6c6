//! Gzip: one entry, named from the stored file name of its header when that is a valid path
//! (else the empty path), its members read in turn; the compressed bytes are counted as the
//! decompressor takes them, for the ratio check.

use super::meter::{Counting, Meter, Packed};
use super::paths::path_problem;
use super::{Budget, IO_BUF, Input, Visitor, stream, visit};
use crate::content::Scan;
use std::cell::Cell;
use std::io::{self, BufReader, Read};
use std::rc::Rc;

/// Walks a gzip read from `input`: one entry.
pub(super) fn walk_gzip(
    input: Input<'_>,
    depth: u32,
    budget: &mut Budget,
    visitor: &mut dyn Visitor,
) -> Scan {
    let mut file_slot = None;
    let reader = stream(input, &mut file_slot);
    let consumed = Rc::new(Cell::new(0u64));
    let counting = Counting {
        inner: reader,
        count: Rc::clone(&consumed),
    };
    let decoder = flate2::bufread::MultiGzDecoder::new(BufReader::with_capacity(IO_BUF, counting));
    if let Err(refusal) = budget.count_entry() {
        return Ok(Err(refusal));
    }
    let mut meter = Meter::new(decoder, budget, Packed::Counted(consumed));
    // The header (and its file name) is known once the first bytes are read.
    let mut head = [0u8; 8192];
    let n = loop {
        match meter.read(&mut head) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    // No stored name, or one that is not a valid path: the empty path, and the caller derives
    // a name from the archive's own.
    let name = meter
        .inner
        .header()
        .and_then(|header| header.filename())
        .and_then(|name| std::str::from_utf8(name).ok())
        .map(super::nfc)
        .filter(|name| !name.is_empty() && path_problem(name, false).is_none())
        .unwrap_or_default();
    let mut whole = (&head[..n]).chain(&mut meter);
    let verdict = visit(visitor, &name, depth, &mut whole, budget)?;
    if verdict.is_err() {
        return Ok(verdict);
    }
    // Every member is read to its end, whatever the visitor read: a gzip that another reader
    // would see differently (a corrupt or hidden later member, bytes after the last one) is
    // not passed because the visitor stopped early.
    io::copy(&mut whole, &mut io::sink())?;
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::super::Kind;
    use super::super::testing::{gzip_of, limits, refused, run, tar_of};
    use super::*;
    use crate::core::reason::Reason;
    use std::time::{Duration, Instant};

    #[test]
    fn every_member_is_read_and_nothing_may_follow_the_last() {
        let two = [gzip_of(Some("a.txt"), b"first "), gzip_of(None, b"second")].concat();
        let (verdict, v) = run(Kind::Gzip, &two, limits());
        assert_eq!(verdict, Ok(()));
        assert_eq!(v.seen[0].2, b"first second");
        let mut trailing = gzip_of(Some("a.txt"), b"data");
        trailing.extend_from_slice(b"PK\x03\x04 a zip after the gzip");
        assert!(run(Kind::Gzip, &trailing, limits()).0.is_err());
        // a corrupt later member behind a first one the visitor has no need to read through
        let mut corrupt = gzip_of(Some("a.png"), &[0x89; 9000]);
        let mut second = gzip_of(None, b"more");
        let n = second.len();
        second[n - 8] ^= 0xFF; // its CRC
        corrupt.extend_from_slice(&second);
        let r = refused(Kind::Gzip, &corrupt, limits());
        assert_eq!(r.reason, Reason::ContentUnreadable, "{r}");
    }

    #[test]
    fn gzip_is_one_entry_named_from_its_header() {
        let (verdict, v) = run(Kind::Gzip, &gzip_of(Some("report.txt"), b"hello"), limits());
        assert_eq!(verdict, Ok(()));
        assert_eq!(v.seen, [("report.txt".to_owned(), 1, b"hello".to_vec())]);
        let (verdict, v) = run(Kind::Gzip, &gzip_of(Some("../x"), b"hi"), limits());
        assert_eq!(verdict, Ok(()));
        assert_eq!(v.seen, [("".to_owned(), 1, b"hi".to_vec())]);
        let (_, v) = run(Kind::Gzip, &gzip_of(None, b""), limits());
        assert_eq!(v.seen, [("".to_owned(), 1, Vec::new())]);
    }

    #[test]
    fn gzip_without_a_stored_name_yields_the_empty_path() {
        let (verdict, v) = run(Kind::Gzip, &gzip_of(None, b"plain"), limits());
        assert_eq!(verdict, Ok(()));
        assert_eq!(v.seen, [(String::new(), 1, b"plain".to_vec())]);
        // A stored name that is not a valid path is not passed on either.
        for bad in ["", "/etc/passwd", "a\\b", "CON/x.txt", "-rf/x"] {
            let (verdict, v) = run(Kind::Gzip, &gzip_of(Some(bad), b"x"), limits());
            assert_eq!(verdict, Ok(()), "{bad:?}");
            assert_eq!(v.seen[0].0, "", "{bad:?}");
        }
        // A valid stored name is kept, directories included.
        let (_, v) = run(Kind::Gzip, &gzip_of(Some("d/report.txt"), b"x"), limits());
        assert_eq!(v.seen[0].0, "d/report.txt");
    }

    #[test]
    fn tar_gz_is_gzip_holding_a_tar() {
        let tgz = gzip_of(None, &tar_of(&[("a.txt", b"alpha"), ("b.txt", b"beta")]));
        let (verdict, v) = run(Kind::Gzip, &tgz, limits());
        assert_eq!(verdict, Ok(()));
        let got: Vec<_> = v.seen.iter().map(|(p, d, _)| (p.as_str(), *d)).collect();
        assert_eq!(got, [("", 1), ("a.txt", 2), ("b.txt", 2)]);
    }

    #[test]
    fn gzip_bomb_and_corruption_are_refused() {
        let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        io::copy(&mut io::repeat(0).take(256 << 20), &mut w).unwrap();
        let bomb = w.finish().unwrap();
        let start = Instant::now();
        let r = refused(Kind::Gzip, &bomb, limits());
        assert_eq!(r.reason, Reason::ArchiveLimit, "{r}");
        assert!(start.elapsed() < Duration::from_secs(1));
        let r = refused(Kind::Gzip, b"not gzip at all", limits());
        assert_eq!(r.reason, Reason::ContentUnreadable);
        let mut bad = gzip_of(None, &[b'z'; 10_000]);
        let n = bad.len();
        bad[n - 6] ^= 0xff; // CRC
        let r = refused(Kind::Gzip, &bad, limits());
        assert_eq!(r.reason, Reason::ContentUnreadable, "{r}");
    }
}
