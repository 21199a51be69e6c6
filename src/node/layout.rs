//! Which configured folders share a file system, and what it costs where they do not: the
//! survey `isogate check` prints and `isogate run` logs at start-up.
//!
//! ```text
//!  Config ─► places: state_dir, each outbox, inbox, quarantine (by role)
//!              │ st_dev of the folder, or of its nearest existing parent
//!              ▼
//!  Layout { groups: one per file system, costs: one line per pair that must copy }
//! ```
//!
//! Where a move crosses file systems the node copies (verified, fsynced) and then removes
//! the source, instead of one rename: an outbox off the state directory's file system costs
//! a copy of every file taken into the spool; an outbox off its quarantine's, a copy of each
//! refused entry. The inbox's staging folder always lives in the inbox, so landing is one
//! rename wherever the inbox is; a refused object is always copied into quarantine.

use crate::node::config::{Config, Role};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One configured folder and what it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// What the folder is for: `state_dir`, `outbox <channel>`, `inbox <channel>`,
    /// `quarantine <channel>`.
    pub role: String,
    /// The folder, as configured.
    pub path: PathBuf,
}

/// The survey of a configuration's folders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// The folders grouped by file system (same `st_dev`), in configuration order; folders
    /// that cannot be measured are left out.
    pub groups: Vec<Vec<Place>>,
    /// One sentence for each pair of folders a move must cross, naming what is copied.
    pub costs: Vec<String>,
}

/// The device of `path`, or of its nearest existing parent (a folder made at start-up).
fn device(path: &Path) -> Option<u64> {
    path.ancestors()
        .find_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.dev())
}

/// Surveys the folders of `cfg`: state directory, and each channel's outbox (sending) or
/// inbox (receiving) and quarantine.
pub fn survey(cfg: &Config) -> Layout {
    let mut places = vec![(
        Place {
            role: "state_dir".into(),
            path: cfg.node.state_dir.clone(),
        },
        device(&cfg.node.state_dir),
    )];
    let mut costs = Vec::new();
    let state = places.first().and_then(|(_, d)| *d);
    for c in cfg.file_channels() {
        let (kind, dir) = match c.role {
            Role::Send => ("outbox", &c.outbox),
            Role::Receive => ("inbox", &c.inbox),
        };
        let own = device(dir);
        let quarantine = device(&c.quarantine);
        if c.role == Role::Send && own.is_some() && own != state {
            costs.push(format!(
                "outbox {} is on another file system than state_dir: each file taken is copied into the spool (verified, fsynced), then removed, instead of renamed",
                c.name
            ));
        }
        if c.role == Role::Send && own.is_some() && quarantine.is_some() && own != quarantine {
            costs.push(format!(
                "outbox {} is on another file system than its quarantine: an entry refused at intake is copied there, then removed, instead of renamed",
                c.name
            ));
        }
        places.push((
            Place {
                role: format!("{kind} {}", c.name),
                path: dir.clone(),
            },
            own,
        ));
        places.push((
            Place {
                role: format!("quarantine {}", c.name),
                path: c.quarantine.clone(),
            },
            quarantine,
        ));
    }
    let mut groups: Vec<(u64, Vec<Place>)> = Vec::new();
    for (place, dev) in places {
        let Some(dev) = dev else { continue };
        match groups.iter_mut().find(|(d, _)| *d == dev) {
            Some((_, g)) => g.push(place),
            None => groups.push((dev, vec![place])),
        }
    }
    Layout {
        groups: groups.into_iter().map(|(_, g)| g).collect(),
        costs,
    }
}

impl Layout {
    /// Each file system as one line: the roles of its folders, comma-separated.
    pub fn lines(&self) -> Vec<String> {
        self.groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|p| format!("{} ({})", p.role, p.path.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_existing_parent_stands_for_a_folder_not_made_yet() {
        let t = tempfile::tempdir().unwrap();
        let there = device(t.path()).unwrap();
        assert_eq!(device(&t.path().join("not/yet/made")), Some(there));
    }
}
