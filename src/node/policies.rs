//! The policies in force on a node, one per channel (a stream channel's holds its
//! `[stream]` rules: [`Policies::stream_rules`]). A reload reads every policy file
//! again, validates it (the same checks and compliance review as at start-up) and swaps
//! each changed one in whole; an invalid file is refused and the policy already in force
//! stays. Every object is judged by one policy from start to end: it holds an `Arc`.
//!
//! A refused file is reported once per distinct content: an editor, a retry or a
//! SIGHUP that reads the same broken bytes again reports nothing new. The memory of a
//! channel's refused content is dropped once its file is valid again, so a file fixed and
//! broken again (even with the same bytes as before) is reported again.
//!
//! Separation of duties: `[approval]` (who must approve, how many, in which levels, for how
//! long) is fixed at start. A reload whose `[approval]` differs from the start-up one (changed,
//! added or removed) is refused for the whole file (`ApprovalKept`: nothing of it applies,
//! the version in force stays) until the node restarts, which is root's (or the service
//! manager's) act, not the policy editors'. Put the section back as it was to reload the rest.
//!
//! ```text
//!  file ──► read ──► valid ──► [approval] as at start? ──► same version: nothing;
//!                │                      │                   new: Reloaded (forget the refusal)
//!                │                      └─► changed ──► ApprovalKept ─┐
//!                └─► invalid ──► Refused ─────────────────────────────┤
//!                      SHA-256 of the bytes (or of the read error)  ◄─┘
//!                      == last refused on this channel? ──► nothing; else report, remember it
//! ```

use crate::core::stream::StreamRules;
use crate::node::config::{Config, approval_self_pins, approval_suite, compliance};
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
    /// The file is valid but its `[approval]` differs from the one the node started with:
    /// the whole file is refused until a restart; the old version stays in force.
    ApprovalKept {
        /// The channel.
        channel: String,
        /// The policy file.
        file: PathBuf,
        /// The version still in force.
        kept: String,
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

    /// The stream rules in force on a stream channel (its policy's `[stream]`), `None` for
    /// a files channel or a channel the configuration does not have. A reload replaces
    /// them whole; a stream's gate can compare the `version` of [`Policies::get`] (a cheap
    /// `Arc` clone) with the one it took its rules from to tell when to take them again.
    pub fn stream_rules(&self, channel: &str) -> Option<StreamRules> {
        let m = self.map.read().unwrap_or_else(|e| e.into_inner());
        m.get(channel).and_then(|p| p.stream.clone())
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
    /// file whose content did not change, nor for a refused file whose content is the
    /// one refused last on its channel (reported already). A file whose `[approval]`
    /// differs from `cfg`'s (the start-up policy) is refused whole ([`Reload::ApprovalKept`]).
    pub fn reload(&self, cfg: &Config) -> Vec<Reload> {
        let mut events = Vec::new();
        for c in &cfg.channels {
            let current = self.get(&c.name);
            let mut seen = [0u8; 32];
            let loaded = crate::problem::read(&c.policy_file)
                .inspect_err(|e| seen = fingerprint(e.to_string().as_bytes()))
                .and_then(|text| {
                    seen = fingerprint(text.as_bytes());
                    match &c.stream {
                        Some(s) => Policy::parse_stream(&c.policy_file, &text, s.protocol),
                        None => Policy::parse(&c.policy_file, &text),
                    }
                })
                .and_then(|p| {
                    if c.is_stream() {
                        // a stream policy's rules are all checked by its parse
                        return Ok(p);
                    }
                    let (mut errors, _) = compliance(c.outbound, &c.policy_file, &p);
                    // a reload never turns a messages channel's policy into a files policy,
                    // nor the other way round (the channel's kind is the configuration's)
                    if c.is_messages() != p.messages.is_some() {
                        errors.push(crate::problem::Problem {
                            file: c.policy_file.clone(),
                            line: None,
                            key: None,
                            message: if c.is_messages() {
                                "a messages channel needs a messages policy (a [messages] table); the policy in force is kept".into()
                            } else {
                                "a messages policy ([messages] table) belongs to a kind = \"messages\" channel; the policy in force is kept".into()
                            },
                        });
                    }
                    if p.approval.is_some() {
                        errors.extend(approval_self_pins(&c.policy_file, &p, &cfg.node_keys()));
                        errors.extend(approval_suite(&c.policy_file, &p, cfg.node.suite));
                    }
                    if errors.is_empty() {
                        Ok(p)
                    } else {
                        Err(Problems(errors))
                    }
                });
            // `c.policy` is the policy the node started with: its [approval] stays
            let approval_changed = matches!(&loaded, Ok(p) if p.approval != c.policy.approval);
            let refused = loaded.is_err() || approval_changed;
            let news = self
                .refused
                .is_new_refusal(&c.name, refused.then_some(seen));
            if refused && !news {
                continue;
            }
            match loaded {
                Ok(_) if approval_changed => events.push(Reload::ApprovalKept {
                    channel: c.name.clone(),
                    file: c.policy_file.clone(),
                    kept: current.version.clone(),
                }),
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
    fn a_reload_never_changes_the_approval_rule_the_node_started_with() {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, 25910, None).unwrap();
        let file = lab.join("policy").join("to-internet.toml");
        let base = std::fs::read_to_string(&file).unwrap();
        let key = |n: u8| {
            crate::keys::SigningKey::from_seed(&[n; 32])
                .unwrap()
                .verify_key()
                .to_hex()
        };
        let approval = |required: usize, keys: &[u8]| {
            let list = keys
                .iter()
                .map(|n| format!("  {{ name = \"a{n}\", key = \"{}\" }},\n", key(*n)))
                .collect::<String>();
            format!("\n[approval]\nrequired = {required}\napprovers = [\n{list}]\n")
        };
        let write = |text: &str| std::fs::write(&file, text).unwrap();
        write(&format!("{base}{}", approval(2, &[1, 2])));
        let cfg = Config::load(&lab.join("court.toml")).unwrap();
        let policies = Policies::new(&cfg);
        let started = policies.get("to-internet");
        assert_eq!(started.approval.as_ref().unwrap().required, 2);
        let kept = |events: Vec<Reload>| {
            assert!(
                matches!(&events[..], [Reload::ApprovalKept { channel, kept, .. }]
                    if channel == "to-internet" && *kept == started.version),
                "{events:?}"
            );
            let now = policies.get("to-internet");
            assert_eq!(now.version, started.version);
            assert_eq!(now.approval, started.approval);
        };
        // one officer lowers `required`, adds a key of their own, or removes the section
        write(&format!("{base}{}", approval(1, &[1, 2])));
        kept(policies.reload(&cfg));
        assert!(policies.reload(&cfg).is_empty(), "said once per content");
        write(&format!("{base}{}", approval(2, &[1, 2, 3])));
        kept(policies.reload(&cfg));
        write(&base);
        kept(policies.reload(&cfg));
        // the rest of the policy still reloads while [approval] is as at start
        let other = base.replacen("[size]", "[size]\n# a comment changes the version", 1);
        assert_ne!(other, base);
        write(&format!("{other}{}", approval(2, &[1, 2])));
        let events = policies.reload(&cfg);
        assert!(
            matches!(&events[..], [Reload::Reloaded { channel, .. }] if channel == "to-internet"),
            "{events:?}"
        );
        let now = policies.get("to-internet");
        assert_ne!(now.version, started.version);
        assert_eq!(now.approval, started.approval);
        // a channel that started without [approval] does not gain one by a reload either
        let inbound = lab.join("policy").join("to-court.toml");
        let text = std::fs::read_to_string(&inbound).unwrap();
        std::fs::write(&inbound, format!("{text}{}", approval(1, &[1]))).unwrap();
        let events = policies.reload(&cfg);
        assert!(
            matches!(&events[..], [Reload::ApprovalKept { channel, .. }] if channel == "to-court"),
            "{events:?}"
        );
        assert!(policies.get("to-court").approval.is_none());
    }

    #[test]
    fn a_reload_never_changes_the_kind_of_a_channels_policy() {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, 25920, None).unwrap();
        let cfg = Config::load(&lab.join("court.toml")).unwrap();
        let policies = Policies::new(&cfg);
        let notices = lab.join("policy").join("notices.toml");
        let files = lab.join("policy").join("to-internet.toml");
        let (notices_text, files_text) = (
            std::fs::read_to_string(&notices).unwrap(),
            std::fs::read_to_string(&files).unwrap(),
        );
        let (before_n, before_f) = (policies.get("notices"), policies.get("to-internet"));
        assert!(before_n.messages.is_some() && before_f.messages.is_none());
        // each file given the other's text: both refused, both kept
        std::fs::write(&notices, &files_text).unwrap();
        std::fs::write(
            &files,
            notices_text.replace("notices.schema.json", "../policy/notices.schema.json"),
        )
        .unwrap();
        let events = policies.reload(&cfg);
        let refused = |ch: &str, what: &str| {
            events.iter().any(|e| {
                matches!(e, Reload::Refused { channel, problems, .. }
                if channel == ch && problems.contains(what))
            })
        };
        assert!(refused("notices", "needs a messages policy"), "{events:?}");
        assert!(
            refused("to-internet", "belongs to a kind = \"messages\" channel"),
            "{events:?}"
        );
        assert_eq!(policies.get("notices").version, before_n.version);
        assert_eq!(policies.get("to-internet").version, before_f.version);
    }

    #[test]
    fn stream_rules_are_reloaded_like_file_policies() {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        crate::cli::init::init(&lab, crate::cli::init::LabLink::Quic, 27120, None).unwrap();
        let cfg = Config::load(&lab.join("internet.toml")).unwrap();
        let policies = Policies::new(&cfg);
        let started = policies.stream_rules("hearing").unwrap();
        assert_eq!(started.max_bitrate_bps, 20_000_000);
        let file = lab.join("policy").join("hearing.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(
            &file,
            text.replace("max_bitrate_kbit = 20000", "max_bitrate_kbit = 8000"),
        )
        .unwrap();
        let events = policies.reload(&cfg);
        assert!(
            matches!(&events[..], [Reload::Reloaded { channel, .. }] if channel == "hearing"),
            "{events:?}"
        );
        let now = policies.stream_rules("hearing").unwrap();
        assert_eq!(now.max_bitrate_bps, 8_000_000);
        assert_eq!(now.payload_types, started.payload_types);
        // an invalid change is refused and the rules in force stay
        std::fs::write(
            &file,
            text.replace("sources = [\"127.0.0.1/32\"]", "sources = []"),
        )
        .unwrap();
        let events = policies.reload(&cfg);
        assert!(
            matches!(&events[..], [Reload::Refused { channel, problems, .. }]
                if channel == "hearing" && problems.contains("stream.sources")),
            "{events:?}"
        );
        assert_eq!(policies.stream_rules("hearing").unwrap(), now);
        // a files table in it is refused too
        std::fs::write(&file, format!("{text}\n[names]\nmax_length = 9\n")).unwrap();
        let events = policies.reload(&cfg);
        assert!(
            matches!(&events[..], [Reload::Refused { problems, .. }] if problems.contains("[names]")),
            "{events:?}"
        );
        assert_eq!(policies.stream_rules("hearing").unwrap(), now);
    }

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
