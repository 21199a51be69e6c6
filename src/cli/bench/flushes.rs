//! `isogate bench`, what the disk did while small files crossed: the block layer's count
//! of cache flushes, read before and after a figure from the device that holds the bench's
//! directory.
//!
//! Every fsync that makes something durable ends in a flush of the disk's write cache
//! (ext4 and XFS send one with each journal commit; several fsyncs that wait on the same
//! commit share it). A disk flushes one cache at a time, so once the flush time nears the
//! wall clock, files per second = flushes per second ÷ flushes per file, whatever the
//! cores do: this module prints the second factor and how busy the first is.
//!
//! The counters are fields 16 and 17 of `/sys/dev/block/<major>:<minor>/stat` (Linux ≥
//! 5.5, `Documentation/block/stat.rst`): flush requests completed, and milliseconds spent
//! on them. A directory on no block device (tmpfs, overlayfs, btrfs's anonymous device
//! numbers), an older kernel, or a disk without a write-back cache (the kernel sends it no
//! flushes) prints why there is no figure instead of a zero that looks measured.

use std::path::{Path, PathBuf};
use std::time::Instant;

/// The flush counters of one block device: `(flushes completed, milliseconds flushing)`,
/// fields 16 and 17 of its `stat` file; `None` for a line with fewer fields (a kernel
/// before 5.5) or a field that is not a number.
pub fn parse_stat(line: &str) -> Option<(u64, u64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let done = fields.get(15)?.parse().ok()?;
    let ms = fields.get(16)?.parse().ok()?;
    Some((done, ms))
}

/// The `stat` file of the block device holding `dir`, or why there is none (a sentence).
fn stat_file(dir: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir)
        .map_err(|e| format!("{} cannot be read: {e}", dir.display()))?
        .dev();
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let path = PathBuf::from(format!("/sys/dev/block/{major}:{minor}/stat"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is on device {major}:{minor}, which is no block device",
            dir.display()
        ))
    }
}

/// The disk's flush counters at the start of a figure.
#[derive(Debug)]
pub struct Flushes {
    stat: PathBuf,
    at: Instant,
    start: (u64, u64),
}

impl Flushes {
    /// Reads the counters of the device holding `dir` now; `Err`: why they cannot be read
    /// (a sentence, printed in place of the figure).
    pub fn start(dir: &Path) -> Result<Flushes, String> {
        let stat = stat_file(dir)?;
        let start = read(&stat)?;
        Ok(Flushes {
            stat,
            at: Instant::now(),
            start,
        })
    }

    /// Flushes since the start per `files` (each crossing, both nodes' flushes together),
    /// and the share of the wall clock the device spent flushing (percent; a device that
    /// flushes several queues at once may pass 100): `Err` when the counters cannot be read
    /// again or moved back, or the device was sent no flush (a write-through cache).
    pub fn per_file(&self, files: usize) -> Result<(f64, f64), String> {
        let wall_ms = self.at.elapsed().as_secs_f64() * 1000.0;
        let (done, ms) = read(&self.stat)?;
        let (flushes, flushing) = (done.checked_sub(self.start.0), ms.checked_sub(self.start.1));
        match (flushes, flushing) {
            (Some(0), _) => Err(format!(
                "{} counted no cache flush (a disk without a write-back cache is sent none)",
                self.stat.display()
            )),
            (Some(f), Some(m)) => Ok((
                f as f64 / files.max(1) as f64,
                m as f64 * 100.0 / wall_ms.max(1e-9),
            )),
            _ => Err(format!("{}: the counters went back", self.stat.display())),
        }
    }
}

/// The report's line for a figure over `files` files whose counters were read at its start
/// (`started`): `    the disk meanwhile: 5.4 cache flushes per file, flushing 92 % of the
/// time`, or why there is no figure.
pub fn line(started: &Result<Flushes, String>, files: usize) -> String {
    match started
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|f| f.per_file(files))
    {
        Ok((per, busy)) => format!(
            "    the disk meanwhile: {per:.1} cache flushes per file, flushing {busy:.0} % of the time"
        ),
        Err(why) => format!("    the disk meanwhile: no flush figure ({why})"),
    }
}

fn read(stat: &Path) -> Result<(u64, u64), String> {
    let text = std::fs::read_to_string(stat)
        .map_err(|e| format!("{} cannot be read: {e}", stat.display()))?;
    parse_stat(&text).ok_or_else(|| {
        format!(
            "{} has no flush counters (Linux 5.5 or later has them)",
            stat.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flush_counters_are_fields_16_and_17_and_an_older_kernel_has_none() {
        // a virtio disk's line: 17 fields
        let line = "  945965    28316 534026602  1482521 11532403   389987 609232432  6214445        0  1140736  8889983  1456880      160 527441432   696894  2316283   496122\n";
        assert_eq!(parse_stat(line), Some((2_316_283, 496_122)));
        // before 5.5 (11 fields) and before 4.18 discards (15): no flush fields
        assert_eq!(parse_stat("1 2 3 4 5 6 7 8 9 10 11"), None);
        assert_eq!(parse_stat("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15"), None);
        assert_eq!(parse_stat("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x 17"), None);
    }

    #[test]
    fn a_directory_on_no_block_device_says_why_it_has_no_figure() {
        // /proc is on no block device: the figure's place says so, naming the device
        let why = Flushes::start(Path::new("/proc")).unwrap_err();
        assert!(why.contains("no block device"), "{why}");
        let why = Flushes::start(Path::new("/no/such/dir")).unwrap_err();
        assert!(why.contains("cannot be read"), "{why}");
    }

    #[test]
    fn a_durable_write_on_a_disk_with_a_write_back_cache_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let Ok(flushes) = Flushes::start(dir.path()) else {
            // the test directory is on no block device here: nothing to count
            return;
        };
        let f = std::fs::File::create(dir.path().join("f")).unwrap();
        std::io::Write::write_all(&mut &f, &[7u8; 4096]).unwrap();
        f.sync_all().unwrap();
        match flushes.per_file(1) {
            // another process's flushes may add to it, never take from it
            Ok((per, busy)) => assert!(per >= 1.0 && busy >= 0.0, "{per} {busy}"),
            // a write-through disk is sent no flush, and the line says why
            Err(why) => assert!(why.contains("no cache flush"), "{why}"),
        }
        let started = Ok(flushes);
        assert!(line(&started, 1).starts_with("    the disk meanwhile: "));
        assert!(line(&Err("why".into()), 1).ends_with("no flush figure (why)"));
    }
}
