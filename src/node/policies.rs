//! The policies in force on a node, one per channel. A reload reads every policy file
//! again, validates it (the same checks and compliance review as at start-up) and swaps
//! each changed one in whole; an invalid file is refused and the policy already in force
//! stays. Every object is judged by one policy from start to end: it holds an `Arc`.
//!
//! A refused file is reported once per distinct content: an editor, a retry or a
//! SIGHUP that reads the same broken bytes again reports nothing new. The memory of a
//! channel's refused content is dropped once its file is valid again, so a file fixed and
//! broken again (even with the same bytes as before) is reported again.
//!
//! ```text
//!  file ──► read ──► valid ──► same version: nothing; new: Reloaded  (forget the refusal)
//!                └─► invalid ──► SHA-256 of the bytes (or of the read error)
//!                                 == last refused on this channel? ──► nothing
//!                                 else ──► Refused, remember it
//! ```

use crate::node::config::{Config, compliance};
use crate::policy::Policy;
use crate::problem::Problems;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

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
    /// The refused contents reported already.
    refused: Reported,
}

/// By channel: the SHA-256 of the policy file's content last refused (of the read
/// error's text when it could not be read), until the file is valid again.
#[derive(Default)]
struct Reported(Mutex<BTreeMap<String, [u8; 32]>>);

impl Reported {
    /// Whether `channel`'s file, read as `seen` (`None`: valid), is news: a refusal of a
    /// content not reported since the file was last valid. A valid file is never news
    /// here (its version says whether it changed) and clears the channel's memory.
    fn is_new_refusal(&self, channel: &str, seen: Option<[u8; 32]>) -> bool {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match seen {
            None => {
                m.remove(channel);
                false
            }
            Some(fp) => m.insert(channel.to_string(), fp) != Some(fp),
        }
    }
}

/// The SHA-256 of `bytes`: what tells one refused content from another.
fn fingerprint(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
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
            refused: Reported::default(),
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

    /// Reads every policy file again; returns what changed or was refused: nothing for a
    /// file whose content did not change, nor for an invalid file whose content is the
    /// one refused last on its channel (reported already).
    pub fn reload(&self, cfg: &Config) -> Vec<Reload> {
        let mut events = Vec::new();
        for c in &cfg.channels {
            let current = self.get(&c.name);
            let mut seen = [0u8; 32];
            let loaded = crate::problem::read(&c.policy_file)
                .inspect_err(|e| seen = fingerprint(e.to_string().as_bytes()))
                .and_then(|text| {
                    seen = fingerprint(text.as_bytes());
                    Policy::parse(&c.policy_file, &text)
                })
                .and_then(|p| {
                    let (errors, _) = compliance(c.outbound, &c.policy_file, &p);
                    if errors.is_empty() {
                        Ok(p)
                    } else {
                        Err(Problems(errors))
                    }
                });
            let news = self
                .refused
                .is_new_refusal(&c.name, loaded.is_err().then_some(seen));
            if loaded.is_err() && !news {
                continue;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_content_is_news_once_until_the_file_is_valid_again() {
        let r = Reported::default();
        let (a, b) = (fingerprint(b"broken = 1"), fingerprint(b"broken = 2"));
        assert!(r.is_new_refusal("to-internet", Some(a)));
        // the same bytes read again (an editor's steps, a retry, SIGHUP): said already
        assert!(!r.is_new_refusal("to-internet", Some(a)));
        assert!(!r.is_new_refusal("to-internet", Some(a)));
        // another channel keeps its own memory
        assert!(r.is_new_refusal("to-court", Some(a)));
        // another broken content is news
        assert!(r.is_new_refusal("to-internet", Some(b)));
        assert!(!r.is_new_refusal("to-internet", Some(b)));
        // fixed, then broken again with the very same bytes: news again
        assert!(!r.is_new_refusal("to-internet", None));
        assert!(r.is_new_refusal("to-internet", Some(b)));
    }
}
