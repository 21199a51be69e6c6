//! `isogate bench`, the file system under the bench's directory, printed beside the disk's
//! limits: its kind (`statfs(2)`'s `f_type`, the magic numbers of `linux/magic.h`), the
//! block device it is on, and for ext4 whether it keeps a journal and in which data mode
//! (`/proc/fs/ext4/<device>/options`), and whether it is mounted with `discard`.
//!
//! The small-file figures follow it as much as the cores: on a journaled file system each
//! fsync is a journal commit and a flush of the disk's cache, so the figure follows the
//! fsyncs per file; on ext4 without a journal, creating a file soon after many were deleted
//! walks the recently freed inodes (README, Benchmark), so the figure falls from one run
//! to the next; mounted with `discard`, each block freed (a file deleted or emptied) is
//! discarded on the device as it is freed, and on ext4 without a journal the freeing
//! waits for it (about 4 waits per small file on the development machine). Printing it
//! lets two runs' figures be compared only where they should be.

use std::io;
use std::path::Path;

/// Kinds of file system by `f_type`, as `linux/magic.h` names them (ext2, ext3 and ext4
/// share one number; [`describe`] tells ext4 by its `/proc/fs/ext4` entry).
const KINDS: &[(u64, &str)] = &[
    (0xEF53, "ext2/ext3/ext4"),
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0xF2F5_2010, "f2fs"),
    (0x2FC1_2FC1, "zfs"),
    (0x0102_1994, "tmpfs"),
    (0x794C_7630, "overlayfs"),
    (0x6969, "nfs"),
    (0xFF53_4D42, "cifs"),
    (0xFE53_4D42, "smb2"),
    (0x6573_5546, "fuse"),
    (0x9FA0, "proc"),
];

/// What an ext4 file system's `options` file (`/proc/fs/ext4/<device>/options`, one
/// option per line) says of its journal: `Some(mode)` with the data mode (`ordered`,
/// `writeback` or `journal`) where it keeps one, `None` where it does not (the kernel
/// clears the data mode of a file system mounted without a journal, so the file has no
/// `data=` line).
pub fn ext4_journal(options: &str) -> Option<&str> {
    options
        .lines()
        .find_map(|line| line.trim().strip_prefix("data="))
}

/// Whether an ext4 file system's `options` file lists `discard` (mount option `discard`:
/// freed blocks are discarded on the device as they are freed, rather than by a periodic
/// `fstrim`).
pub fn ext4_discard(options: &str) -> bool {
    options.lines().any(|line| line.trim() == "discard")
}

/// The name of the file system kind `f_type` (a `statfs(2)` magic number), or `None` for
/// one this module does not know.
pub fn kind(f_type: u64) -> Option<&'static str> {
    KINDS
        .iter()
        .find(|(magic, _)| *magic == f_type)
        .map(|(_, name)| *name)
}

/// One line on the file system holding `dir`: its kind, whether an ext4 keeps a journal
/// and is mounted with `discard`, and the block device it is on, e.g. `ext4 with a journal
/// (data=ordered), on vda1`, `ext4 without a journal, mounted with discard, on vda`, `xfs,
/// on nvme0n1p2`, `tmpfs, on no block device of its own (0:36)` (btrfs and network file
/// systems too: their device numbers are anonymous). What cannot be read is said in the
/// line, never guessed.
pub fn describe(dir: &Path) -> String {
    describe_in(Path::new("/sys"), Path::new("/proc"), dir)
}

/// [`describe`] with `sys` and `proc` as the sysfs and procfs mounts.
fn describe_in(sys: &Path, proc: &Path, dir: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let read = rustix::fs::statfs(dir)
        .map_err(io::Error::from)
        .and_then(|st| Ok((st.f_type, std::fs::metadata(dir)?.dev())));
    let (f_type, dev) = match read {
        // a 32-bit word the kernel may hand back sign-extended in a signed `long`
        Ok((f_type, dev)) => ((f_type as u64) & 0xFFFF_FFFF, dev),
        Err(e) => return format!("cannot be read ({}: {e})", dir.display()),
    };
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    // the kernel's name of the block device (`vda1`, `loop0`, `dm-0`): /sys/dev/block's
    // link for the device number ends in it, and /proc/fs/ext4 names by it
    let name = (major != 0)
        .then(|| block_node(sys, dev))
        .flatten()
        .and_then(|node| Some(node.file_name()?.to_string_lossy().into_owned()));
    let on = match &name {
        Some(name) => format!("on {name}"),
        None if major == 0 => format!("on no block device of its own ({major}:{minor})"),
        None => format!(
            "on device {major}:{minor}, not named in {}",
            sys.join("dev/block").display()
        ),
    };
    let ext4_options = name.and_then(|name| {
        std::fs::read_to_string(proc.join("fs/ext4").join(name).join("options")).ok()
    });
    line(f_type, &on, ext4_options.as_deref())
}

/// The sysfs folder of the block device numbered `dev` (an `st_dev`), links resolved
/// (`/sys/devices/…/vda/vda1`), with `sys` the sysfs mount; `None` where sysfs has none
/// (an anonymous device number, or no sysfs).
pub(super) fn block_node(sys: &Path, dev: u64) -> Option<std::path::PathBuf> {
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    std::fs::canonicalize(sys.join(format!("dev/block/{major}:{minor}"))).ok()
}

/// The line for a file system of kind `f_type`, `on` a device (`on vda1`), with the
/// `options` file of an ext4 on it where one was read.
fn line(f_type: u64, on: &str, ext4_options: Option<&str>) -> String {
    match (kind(f_type), ext4_options) {
        (Some("ext2/ext3/ext4"), Some(options)) => {
            let journal = match ext4_journal(options) {
                Some(mode) => format!("with a journal (data={mode})"),
                None => "without a journal".to_string(),
            };
            let discard = if ext4_discard(options) {
                ", mounted with discard"
            } else {
                ""
            };
            format!("ext4 {journal}{discard}, {on}")
        }
        (Some(name), _) => format!("{name}, {on}"),
        (None, _) => format!("f_type {f_type:#x}, {on}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ext4_options_file_tells_its_journal() {
        // as a journaled and an unjournaled ext4 print them (Linux 6.x, abridged)
        let journaled =
            "rw\nbsddf\ndelalloc\njournal_checksum\nbarrier\ndata=ordered\ninit_itable=10\n";
        let unjournaled = "rw\nbsddf\ndelalloc\nnojournal_checksum\nbarrier\ninit_itable=10\n";
        assert_eq!(ext4_journal(journaled), Some("ordered"));
        assert_eq!(ext4_journal("rw\ndata=writeback\n"), Some("writeback"));
        assert_eq!(ext4_journal("data=journal"), Some("journal"));
        assert_eq!(ext4_journal(unjournaled), None);
        assert_eq!(ext4_journal(""), None);
    }

    #[test]
    fn an_ext4_options_file_tells_whether_it_discards() {
        // as the development machine's root prints it (abridged)
        let discarding = "rw\nbsddf\ndioread_nolock\ndiscard\ndelalloc\nnojournal_checksum\n";
        assert!(ext4_discard(discarding));
        assert!(!ext4_discard("rw\nbsddf\ndelalloc\nnojournal_checksum\n"));
        // another option that merely starts so is not it
        assert!(!ext4_discard("rw\nnodiscard\ndiscardx\n"));
    }

    #[test]
    fn kinds_are_named_by_their_magic_number() {
        assert_eq!(kind(0xEF53), Some("ext2/ext3/ext4"));
        assert_eq!(kind(0x5846_5342), Some("xfs"));
        assert_eq!(kind(0x0102_1994), Some("tmpfs"));
        assert_eq!(kind(0x1234), None);
    }

    #[test]
    fn a_line_tells_the_kind_the_journal_and_the_device() {
        let ext4 = 0xEF53;
        assert_eq!(
            line(ext4, "on vda1", Some("rw\ndata=ordered\n")),
            "ext4 with a journal (data=ordered), on vda1"
        );
        assert_eq!(
            line(ext4, "on dm-0", Some("rw\nnojournal_checksum\n")),
            "ext4 without a journal, on dm-0"
        );
        assert_eq!(
            line(ext4, "on vda", Some("rw\ndiscard\nnojournal_checksum\n")),
            "ext4 without a journal, mounted with discard, on vda"
        );
        assert_eq!(
            line(ext4, "on vda1", Some("rw\ndiscard\ndata=ordered\n")),
            "ext4 with a journal (data=ordered), mounted with discard, on vda1"
        );
        // no options file read: the kind only, never a guess at the journal
        assert_eq!(line(ext4, "on vda", None), "ext2/ext3/ext4, on vda");
        // another kind's options are not looked at
        assert_eq!(
            line(0x5846_5342, "on nvme0n1p2", Some("data=ordered")),
            "xfs, on nvme0n1p2"
        );
        assert_eq!(line(0x1234, "on sda", None), "f_type 0x1234, on sda");
    }

    #[test]
    fn procfs_is_named_and_on_no_block_device_of_its_own() {
        let line = describe(Path::new("/proc"));
        assert!(
            line.starts_with("proc, on no block device of its own (0:"),
            "{line}"
        );
    }

    #[test]
    fn a_device_sysfs_does_not_name_is_said_so() {
        let dir = tempfile::tempdir().unwrap();
        let empty = tempfile::tempdir().unwrap();
        let line = describe_in(empty.path(), empty.path(), dir.path());
        use std::os::unix::fs::MetadataExt;
        let dev = std::fs::metadata(dir.path()).unwrap().dev();
        let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
        let on = if major == 0 {
            format!("on no block device of its own (0:{minor})")
        } else {
            format!(
                "on device {major}:{minor}, not named in {}",
                empty.path().join("dev/block").display()
            )
        };
        assert!(line.ends_with(&format!(", {on}")), "{line}");
    }

    #[test]
    fn an_ext4_is_told_by_its_options_file() {
        // the real file system under a temporary folder, with fake sysfs and procfs trees
        // that put it on an ext4 of each kind
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let dev = std::fs::metadata(dir.path()).unwrap().dev();
        let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
        let fake = tempfile::tempdir().unwrap();
        let sys = fake.path().join("sys");
        let proc = fake.path().join("proc");
        std::fs::create_dir_all(sys.join("devices/virtual/block/vdz")).unwrap();
        std::fs::create_dir_all(sys.join("dev/block")).unwrap();
        std::os::unix::fs::symlink(
            "../../devices/virtual/block/vdz",
            sys.join(format!("dev/block/{major}:{minor}")),
        )
        .unwrap();
        let options = proc.join("fs/ext4/vdz/options");
        std::fs::create_dir_all(options.parent().unwrap()).unwrap();
        let real = rustix::fs::statfs(dir.path()).unwrap().f_type as u64 & 0xFFFF_FFFF;
        std::fs::write(&options, "rw\ndata=ordered\n").unwrap();
        let journaled = describe_in(&sys, &proc, dir.path());
        std::fs::write(&options, "rw\nnojournal_checksum\n").unwrap();
        let unjournaled = describe_in(&sys, &proc, dir.path());
        let name = kind(real).map_or(format!("f_type {real:#x}"), str::to_string);
        if major == 0 {
            // an anonymous device number (tmpfs, overlayfs, btrfs): sysfs is not asked
            let on = format!("on no block device of its own (0:{minor})");
            assert_eq!(journaled, format!("{name}, {on}"));
            assert_eq!(unjournaled, journaled);
        } else if real == 0xEF53 {
            assert_eq!(journaled, "ext4 with a journal (data=ordered), on vdz");
            assert_eq!(unjournaled, "ext4 without a journal, on vdz");
        } else {
            // the options file of an ext4 is not read for another kind
            assert_eq!(journaled, format!("{name}, on vdz"));
            assert_eq!(unjournaled, journaled);
        }
    }
}
