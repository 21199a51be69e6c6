//! `isogate bench`, what the disk did while small files crossed: the block layer's count
//! of cache flushes, read before and after a figure from the disks under the bench's
//! directory.
//!
//! Every fsync that makes something durable ends in a flush of the disk's write cache
//! (ext4 and XFS send one with each journal commit; several fsyncs that wait on the same
//! commit share it). A disk with one queue flushes one cache at a time, so once the flush
//! time nears the wall clock, files per second = flushes per second ÷ flushes per file,
//! whatever the cores do: this module prints the second factor and how busy the first is
//! (a disk that flushes several queues at once, NVMe for one, may pass 100 %).
//!
//! The counters are fields 16 and 17 of a disk's `stat` in sysfs (Linux ≥ 5.5,
//! `Documentation/block/stat.rst`): flush requests completed, and milliseconds spent on
//! them. The kernel counts them on the whole disk only, so a file system on a partition is
//! read through its disk, and one on a stacked device (LVM, LUKS, md RAID) through the
//! disks beneath it, added up. A directory on no block device (tmpfs, overlayfs, btrfs's
//! anonymous device numbers), an older kernel, or a disk without a write-back cache (the
//! kernel sends it no flushes) prints why there is no figure instead of a zero that looks
//! measured.

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

/// How deep a stack of block devices (LVM on LUKS on RAID …) is followed down to its disks.
const MAX_STACK: usize = 8;

/// The `stat` files of the disks under the file system holding `dir`, with `sys` the
/// sysfs mount (`/sys`), or why there are none (a sentence). The kernel counts a flush on
/// the whole disk only (`part0`): a partition's counters stay 0, so a partition is read
/// through its disk, and a stacked device (device-mapper, md) through the disks beneath it
/// (its `slaves`), whose counters are added up.
fn stat_files(sys: &Path, dir: &Path) -> Result<Vec<PathBuf>, String> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir)
        .map_err(|e| format!("{} cannot be read: {e}", dir.display()))?
        .dev();
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let node = super::filesystem::block_node(sys, dev).ok_or_else(|| {
        format!(
            "{} is on device {major}:{minor}, which is no block device",
            dir.display()
        )
    })?;
    let mut disks = Vec::new();
    disks_under(&node, 0, &mut disks);
    if disks.is_empty() {
        return Err(format!(
            "device {major}:{minor} ({}) has no disk beneath it whose counters can be read",
            node.display()
        ));
    }
    disks.sort();
    disks.dedup();
    Ok(disks.into_iter().map(|d| d.join("stat")).collect())
}

/// Adds to `disks` the whole disks under the block device folder `node` (a sysfs path with
/// links resolved): its parent for a partition, the disks under each of its `slaves` for a
/// stacked device, `node` itself for a disk.
fn disks_under(node: &Path, depth: usize, disks: &mut Vec<PathBuf>) {
    if depth > MAX_STACK {
        return;
    }
    if node.join("partition").is_file() {
        if let Some(disk) = node.parent() {
            disks_under(disk, depth + 1, disks);
        }
        return;
    }
    let slaves: Vec<PathBuf> = std::fs::read_dir(node.join("slaves"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| std::fs::canonicalize(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    if slaves.is_empty() {
        if node.join("stat").is_file() {
            disks.push(node.to_path_buf());
        }
        return;
    }
    for slave in slaves {
        disks_under(&slave, depth + 1, disks);
    }
}

/// The disk's flush counters at the start of a figure.
#[derive(Debug)]
pub struct Flushes {
    /// The `stat` files of the disks under the bench's directory.
    stats: Vec<PathBuf>,
    at: Instant,
    start: (u64, u64),
}

impl Flushes {
    /// Reads the counters of the device holding `dir` now; `Err`: why they cannot be read
    /// (a sentence, printed in place of the figure).
    pub fn start(dir: &Path) -> Result<Flushes, String> {
        Flushes::start_in(Path::new("/sys"), dir)
    }

    /// [`Flushes::start`] with `sys` as the sysfs mount.
    fn start_in(sys: &Path, dir: &Path) -> Result<Flushes, String> {
        let stats = stat_files(sys, dir)?;
        let start = read_all(&stats)?;
        Ok(Flushes {
            stats,
            at: Instant::now(),
            start,
        })
    }

    /// Flushes since the start per `files` (each crossing, both nodes' flushes together),
    /// and the share of the wall clock the disks spent flushing (percent, their times added
    /// up: several disks under one file system, or one that flushes several queues at
    /// once, may pass 100): `Err` when the counters cannot be read
    /// again or moved back, or the device was sent no flush (a write-through cache).
    pub fn per_file(&self, files: usize) -> Result<(f64, f64), String> {
        let wall_ms = self.at.elapsed().as_secs_f64() * 1000.0;
        let (done, ms) = read_all(&self.stats)?;
        let (flushes, flushing) = (done.checked_sub(self.start.0), ms.checked_sub(self.start.1));
        match (flushes, flushing) {
            (Some(0), _) => Err(format!(
                "{} counted no cache flush (a disk without a write-back cache is sent none)",
                self.names()
            )),
            (Some(f), Some(m)) => Ok((
                f as f64 / files.max(1) as f64,
                m as f64 * 100.0 / wall_ms.max(1e-9),
            )),
            _ => Err(format!("{}: the counters went back", self.names())),
        }
    }

    /// The disks read, for a sentence: `/sys/devices/…/block/vda/stat`.
    fn names(&self) -> String {
        let names: Vec<String> = self.stats.iter().map(|p| p.display().to_string()).collect();
        names.join(", ")
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

/// The counters of `stats` added up.
fn read_all(stats: &[PathBuf]) -> Result<(u64, u64), String> {
    stats.iter().try_fold((0u64, 0u64), |(done, ms), stat| {
        let (d, m) = read(stat)?;
        Ok((done.saturating_add(d), ms.saturating_add(m)))
    })
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
        let cache = flushes
            .stats
            .iter()
            .filter_map(|s| std::fs::read_to_string(s.with_file_name("queue/write_cache")).ok())
            .any(|c| c.trim() == "write back");
        match flushes.per_file(1) {
            // another process's flushes may add to it, never take from it
            Ok((per, busy)) => assert!(per >= 1.0 && busy >= 0.0, "{per} {busy}"),
            // only a disk the kernel sends no flush to counts none
            Err(why) => assert!(!cache && why.contains("no cache flush"), "{why}"),
        }
        let started = Ok(flushes);
        assert!(line(&started, 1).starts_with("    the disk meanwhile: "));
        assert!(line(&Err("why".into()), 1).ends_with("no flush figure (why)"));
    }

    /// A sysfs tree of its own: `dir`'s device links to `target` (relative to `sys`).
    fn fake_sys(dir: &Path, target: &str) -> tempfile::TempDir {
        use std::os::unix::fs::MetadataExt;
        let sys = tempfile::tempdir().unwrap();
        let dev = std::fs::metadata(dir).unwrap().dev();
        let link = sys.path().join(format!(
            "dev/block/{}:{}",
            rustix::fs::major(dev),
            rustix::fs::minor(dev)
        ));
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(sys.path().join(target), &link).unwrap();
        sys
    }

    fn stat_line(flushes: u64, ms: u64) -> String {
        format!("1 2 3 4 5 6 7 8 0 10 11 0 0 0 0 {flushes} {ms}\n")
    }

    #[test]
    fn a_partition_is_read_through_its_disk_and_a_stacked_device_through_its_disks() {
        let dir = tempfile::tempdir().unwrap();
        // a file system on a partition: the partition counts no flush, its disk does
        let sys = fake_sys(dir.path(), "devices/pci/block/sda/sda1");
        let disk = sys.path().join("devices/pci/block/sda");
        std::fs::create_dir_all(disk.join("sda1")).unwrap();
        std::fs::write(disk.join("sda1/partition"), "1\n").unwrap();
        std::fs::write(disk.join("sda1/stat"), stat_line(0, 0)).unwrap();
        std::fs::write(disk.join("stat"), stat_line(100, 40)).unwrap();
        let flushes = Flushes::start_in(sys.path(), dir.path()).unwrap();
        assert_eq!(flushes.stats, [disk.canonicalize().unwrap().join("stat")]);
        std::fs::write(disk.join("stat"), stat_line(160, 40)).unwrap();
        let (per, _) = flushes.per_file(20).unwrap();
        assert_eq!(per, 3.0);
        // an LVM volume over two disks: their flushes added up
        let sys = fake_sys(dir.path(), "devices/virtual/block/dm-0");
        let dm = sys.path().join("devices/virtual/block/dm-0");
        std::fs::create_dir_all(dm.join("slaves")).unwrap();
        std::fs::write(dm.join("stat"), stat_line(0, 0)).unwrap();
        for (name, n) in [("vdb", 10), ("vdc", 30)] {
            let d = sys.path().join("devices/pci/block").join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("stat"), stat_line(n, n)).unwrap();
            std::os::unix::fs::symlink(&d, dm.join("slaves").join(name)).unwrap();
        }
        let flushes = Flushes::start_in(sys.path(), dir.path()).unwrap();
        assert_eq!(flushes.stats.len(), 2);
        assert_eq!(flushes.start, (40, 40));
        std::fs::write(
            sys.path().join("devices/pci/block/vdc/stat"),
            stat_line(70, 30),
        )
        .unwrap();
        assert_eq!(flushes.per_file(10).unwrap().0, 4.0);
        // a device with no disk beneath it that has counters: said, not a zero
        let sys = fake_sys(dir.path(), "devices/virtual/block/loop9");
        std::fs::create_dir_all(sys.path().join("devices/virtual/block/loop9")).unwrap();
        let why = Flushes::start_in(sys.path(), dir.path()).unwrap_err();
        assert!(why.contains("no disk beneath it"), "{why}");
    }
}
