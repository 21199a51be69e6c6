//! The policies in force on a node, one per channel. A reload reads every policy file
//! again, validates it (the same checks and compliance review as at start-up) and swaps
//! each changed one in whole; an invalid file is refused and the policy already in force
//! stays. Every object is judged by one policy from start to end: it holds an `Arc`.

use crate::node::config::{Config, compliance};
use crate::policy::Policy;
use crate::problem::Problems;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// What a reload did to one channel's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The file changed and its new version is in force.
    Reloaded {
        /// The channel.
        channel: String,
        /// The policy file.
        file: PathBuf,
        /// The version in force before.
        from: String,
        /// The version now in force.
        to: String,
    },
    /// The file is invalid; the old version stays in force.
    Refused {
        /// The channel.
        channel: String,
        /// The policy file.
        file: PathBuf,
        /// The version still in force.
        kept: String,
        /// Every problem, one per line.
        problems: String,
    },
}

/// The per-channel policies of a node.
pub struct Policies {
    map: RwLock<BTreeMap<String, Arc<Policy>>>,
}

impl Policies {
    /// The policies loaded with the configuration.
    pub fn new(cfg: &Config) -> Policies {
        let map = cfg
            .channels
            .iter()
            .map(|c| (c.name.clone(), Arc::new(c.policy.clone())))
            .collect();
        Policies {
            map: RwLock::new(map),
        }
    }

    /// The policy in force on a channel; one that refuses everything for a channel the
    /// configuration does not have.
    pub fn get(&self, channel: &str) -> Arc<Policy> {
        let m = self.map.read().unwrap_or_else(|e| e.into_inner());
        m.get(channel)
            .cloned()
            .unwrap_or_else(|| Arc::new(Policy::deny_all()))
    }

    /// The versions in force, by channel.
    pub fn versions(&self) -> BTreeMap<String, String> {
        self.map
            .read()
            .map(|m| {
                m.iter()
                    .map(|(c, p)| (c.clone(), p.version.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Reads every policy file again; returns what changed or was refused (nothing for a
    /// file whose content did not change).
    pub fn reload(&self, cfg: &Config) -> Vec<Reload> {
        let mut events = Vec::new();
        for c in &cfg.channels {
            let current = self.get(&c.name);
            let loaded = Policy::load(&c.policy_file).and_then(|p| {
                let (errors, _) = compliance(c.outbound, &c.policy_file, &p);
                if errors.is_empty() {
                    Ok(p)
                } else {
                    Err(Problems(errors))
                }
            });
            match loaded {
                Ok(p) if p.version == current.version => {}
                Ok(p) => {
                    let to = p.version.clone();
                    // a panic elsewhere while holding the lock cannot leave a stale policy
                    // in force: the map is replaced entry by entry and stays consistent
                    let mut m = self.map.write().unwrap_or_else(|e| e.into_inner());
                    m.insert(c.name.clone(), Arc::new(p));
                    events.push(Reload::Reloaded {
                        channel: c.name.clone(),
                        file: c.policy_file.clone(),
                        from: current.version.clone(),
                        to,
                    });
                }
                Err(problems) => events.push(Reload::Refused {
                    channel: c.name.clone(),
                    file: c.policy_file.clone(),
                    kept: current.version.clone(),
                    problems: problems.to_string(),
                }),
            }
        }
        events
    }
}
