//! Back-off after failed logins. A failure counts for the (user, address) pair and, when the
//! user name exists, for the user from anywhere; failures with names that do not exist count
//! for the client address (so nobody can slow an officer down by trying made-up names, and
//! made-up names cannot be tried without end). After [`FREE_FAILURES`] failures in a row,
//! each further attempt must wait, 1 s doubling up to [`MAX_WAIT_MS`] (30 s): so someone who
//! knows an officer's name can make that officer wait at most 30 s, never keep them out. A
//! success clears the pair's and the user's counts. Time is passed in (monotonic ms).
//!
//! Attempts refused during a back-off are not audited one by one: the first refusal of a
//! spell is, then one summary with the count when the spell ends (noticed at the next
//! login request) or at most once a [`SUMMARY_EVERY_MS`].
//!
//! ```text
//!  login ─► summaries(now) ─► audit the spells that ended
//!        ─► wait(user, known, addr, now) ─► Some(ms) ─► refused(…) ─► audit the first only
//!        └► None ─► check password ─► failed(user, known, addr, now) | succeeded(user, addr)
//! ```
//!
//! Bounded: at most [`MAX_TRACKED`] counts and spells; counts an hour old are forgotten
//! first, then the oldest.

use std::collections::HashMap;
use std::net::IpAddr;

/// Failures in a row allowed without waiting.
pub const FREE_FAILURES: u32 = 3;
/// Longest wait imposed, in ms (30 s).
pub const MAX_WAIT_MS: u64 = 30 * 1000;
/// Most counts (and, apart, most spells) tracked.
pub const MAX_TRACKED: usize = 4096;
/// Longest time between two summaries of one back-off spell, in ms.
pub const SUMMARY_EVERY_MS: u64 = 60 * 1000;
/// A count with no failure for this long is forgotten, in ms.
const FORGET_MS: u64 = 60 * 60 * 1000;

#[derive(Debug, Clone, Copy)]
struct Count {
    failures: u32,
    last_ms: u64,
}

impl Count {
    fn until_ms(&self) -> u64 {
        if self.failures < FREE_FAILURES {
            return 0;
        }
        let doublings = (self.failures - FREE_FAILURES).min(20);
        self.last_ms
            .saturating_add((1000u64 << doublings).min(MAX_WAIT_MS))
    }
}

/// Attempts refused during one back-off of one (user, address) pair.
#[derive(Debug, Clone, Copy)]
struct Spell {
    /// Refusals not yet written in a summary.
    unreported: u64,
    /// When the last refusal's wait ends, ms.
    until_ms: u64,
    /// When the first refusal or the last summary was reported, ms.
    reported_ms: u64,
}

/// Failed logins by pair, by user and by address, and the back-off spells under way.
#[derive(Debug, Default)]
pub struct Guard {
    counts: HashMap<String, Count>,
    spells: HashMap<(String, IpAddr), Spell>,
}

/// The counts a login attempt is held to: the pair and the user when the name exists, the
/// address when it does not.
fn keys(user: &str, known: bool, addr: IpAddr) -> Vec<String> {
    if known {
        vec![format!("p:{user}\u{0}{addr}"), format!("u:{user}")]
    } else {
        vec![format!("a:{addr}")]
    }
}

impl Guard {
    /// A guard with nothing counted.
    pub fn new() -> Guard {
        Guard::default()
    }

    /// How long `user` (`known`: the name is in the password file) from `addr` must still
    /// wait before a login is tried, in ms (at most [`MAX_WAIT_MS`]); `None` when it may be
    /// tried now.
    pub fn wait(&self, user: &str, known: bool, addr: IpAddr, now_ms: u64) -> Option<u64> {
        keys(user, known, addr)
            .iter()
            .filter_map(|k| self.counts.get(k))
            .map(|c| c.until_ms())
            .max()
            .filter(|u| *u > now_ms)
            .map(|u| (u - now_ms).min(MAX_WAIT_MS))
    }

    /// Counts an attempt refused for `wait_ms` more; returns the audit detail to write when
    /// it is the first of its spell, `None` when it is only counted for a later summary.
    pub fn refused(
        &mut self,
        user: &str,
        addr: IpAddr,
        wait_ms: u64,
        now_ms: u64,
    ) -> Option<String> {
        let key = (user.to_string(), addr);
        let until_ms = now_ms.saturating_add(wait_ms);
        if let Some(s) = self.spells.get_mut(&key) {
            s.unreported = s.unreported.saturating_add(1);
            s.until_ms = s.until_ms.max(until_ms);
            return None;
        }
        if self.spells.len() >= MAX_TRACKED {
            let oldest = self
                .spells
                .iter()
                .min_by_key(|(_, s)| s.reported_ms)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.spells.remove(&k);
            }
        }
        self.spells.insert(
            key,
            Spell {
                unreported: 0,
                until_ms,
                reported_ms: now_ms,
            },
        );
        Some(format!(
            "user {user} from {addr}: refused before the password check, {} s of back-off left (further refusals in this back-off are counted in one summary)",
            wait_ms.div_ceil(1000)
        ))
    }

    /// The summaries due at `now_ms`: each spell that ended with refusals not yet reported,
    /// and each spell still going whose last report is [`SUMMARY_EVERY_MS`] old; as audit
    /// details.
    pub fn summaries(&mut self, now_ms: u64) -> Vec<String> {
        let mut out = Vec::new();
        self.spells.retain(|(user, addr), s| {
            let ended = now_ms >= s.until_ms;
            let due = now_ms.saturating_sub(s.reported_ms) >= SUMMARY_EVERY_MS;
            if s.unreported > 0 && (ended || due) {
                out.push(format!(
                    "user {user} from {addr}: {} more attempts refused during the back-off in the last {} s{}",
                    s.unreported,
                    now_ms.saturating_sub(s.reported_ms).div_ceil(1000),
                    if ended { " (back-off over)" } else { "" }
                ));
                s.unreported = 0;
                s.reported_ms = now_ms;
            }
            !ended
        });
        out.sort();
        out
    }

    /// Counts a failed login (`known`: the name is in the password file).
    pub fn failed(&mut self, user: &str, known: bool, addr: IpAddr, now_ms: u64) {
        for k in keys(user, known, addr) {
            if !self.counts.contains_key(&k) {
                self.make_room(now_ms);
            }
            let c = self.counts.entry(k).or_insert(Count {
                failures: 0,
                last_ms: now_ms,
            });
            c.failures = c.failures.saturating_add(1);
            c.last_ms = now_ms;
        }
    }

    /// A successful login clears the pair's and the user's counts.
    pub fn succeeded(&mut self, user: &str, addr: IpAddr) {
        for k in keys(user, true, addr) {
            self.counts.remove(&k);
        }
    }

    fn make_room(&mut self, now_ms: u64) {
        if self.counts.len() < MAX_TRACKED {
            return;
        }
        self.counts
            .retain(|_, c| now_ms.saturating_sub(c.last_ms) < FORGET_MS);
        while self.counts.len() >= MAX_TRACKED {
            let Some(oldest) = self
                .counts
                .iter()
                .min_by_key(|(_, c)| c.last_ms)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.counts.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_per_pair_and_per_known_user_and_are_capped() {
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let mut g = Guard::new();
        for t in 0..FREE_FAILURES as u64 {
            assert_eq!(g.wait("officer", true, a, t), None);
            g.failed("officer", true, a, t);
        }
        // third failure at t=2: wait 1 s
        assert_eq!(g.wait("officer", true, a, 2), Some(1000));
        assert_eq!(
            g.wait("officer", true, b, 2),
            Some(1000),
            "per known user, from anywhere"
        );
        assert_eq!(g.wait("other", true, a, 2), None, "not per address");
        assert_eq!(g.wait("officer", true, a, 1002), None);
        g.failed("officer", true, a, 1002);
        assert_eq!(g.wait("officer", true, a, 1002), Some(2000), "doubles");
        for t in 0..30 {
            g.failed("officer", true, a, 5000 + t);
        }
        assert_eq!(
            g.wait("officer", true, a, 5029),
            Some(MAX_WAIT_MS),
            "capped at 30 s"
        );
        assert_eq!(MAX_WAIT_MS, 30_000);
        g.succeeded("officer", a);
        assert_eq!(g.wait("officer", true, a, 5029), None);
    }

    #[test]
    fn made_up_names_never_slow_a_real_officer() {
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let mut g = Guard::new();
        for t in 0..100 {
            g.failed(&format!("nobody{t}"), false, a, t);
        }
        assert!(
            g.wait("nobody7", false, a, 100).is_some(),
            "made-up names slow down"
        );
        assert!(
            g.wait("someone-else", false, a, 100).is_some(),
            "per address"
        );
        assert_eq!(
            g.wait("officer", true, a, 100),
            None,
            "the officer is not held"
        );
    }

    #[test]
    fn a_backoff_spell_is_audited_once_then_summarised() {
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let mut g = Guard::new();
        let first = g.refused("officer", a, 30_000, 0);
        assert!(first.unwrap().contains("30 s of back-off left"));
        for t in 1..=1000 {
            assert_eq!(
                g.refused("officer", a, 30_000, t),
                None,
                "not one record each"
            );
        }
        assert!(
            g.summaries(2000).is_empty(),
            "not yet: spell going, under a minute"
        );
        let s = g.summaries(31_000);
        assert_eq!(s.len(), 1, "{s:?}");
        assert!(s[0].contains("1000 more attempts refused"), "{s:?}");
        assert!(g.summaries(40_000).is_empty(), "reported once");
        // a long spell is summarised at most once a minute
        g.refused("officer", a, 30_000, 100_000);
        for t in 0..200u64 {
            g.refused("officer", a, 30_000, 100_000 + t * 500);
        }
        let mut records = 0;
        for t in (100_000..300_000).step_by(1000) {
            records += g.summaries(t).len();
        }
        assert!((1..=3).contains(&records), "{records} summaries");
    }

    #[test]
    fn tracking_is_bounded() {
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let mut g = Guard::new();
        for i in 0..(MAX_TRACKED as u64 * 2) {
            g.failed(&format!("u{i}"), true, a, i);
            g.refused(&format!("u{i}"), a, 1000, i);
        }
        assert!(g.counts.len() <= MAX_TRACKED);
        assert!(g.spells.len() <= MAX_TRACKED);
    }
}
