//! Lines that repeat, said once: an error met again at every retry (every 2 s, per file) is
//! logged the first time, then held back and counted; the count is said at most once a
//! [`WINDOW`], as "repeated N times in the last M s".
//!
//! ```text
//!  site, message ─► note(now) ─┬─ new key ───────────────────────► First   (log it)
//!                              ├─ seen, window not over ─────────► Quiet   (count it)
//!                              └─ seen, window over ─────────────► Again { repeats, over }
//!  every few seconds ─► flush(now) ─► Held { site, message, repeats, over } for the counts
//!                                     whose window ended with no new line; quiet keys forgotten
//! ```
//!
//! A key is the call site (a short constant name) and the message as it would be logged
//! (which names the file or object, so that each file's error is said once). Memory is
//! bounded: at most [`CAPACITY`] keys; past that, new keys of a site share one entry, so a
//! flood of distinct lines still comes out as one line and a count. Time is passed in (ms
//! on a monotonic clock), so the rules are tested without sleeping; the process-wide
//! instance that the macros use reads [`crate::mono_ms`].

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How long a repeated line is held back before its count is said.
pub const WINDOW: Duration = Duration::from_secs(60);

/// The most keys remembered at once.
pub const CAPACITY: usize = 4096;

/// The longest message kept as (part of) a key, in bytes; longer ones are cut.
const MAX_KEY: usize = 512;

/// How loud a held-back line is said when its count comes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `tracing::warn!`.
    Warn,
    /// `tracing::error!`.
    Error,
}

/// What to do with a line now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Say {
    /// Log it: first seen (or first since its key was forgotten).
    First,
    /// Log it, with how many times it was held back since it was last logged and over how
    /// many seconds.
    Again {
        /// Lines held back.
        repeats: u64,
        /// Seconds since it was last logged.
        over_s: u64,
    },
    /// Held back and counted.
    Quiet,
}

/// A count whose window ended with nothing new to carry it: say it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The call site.
    pub site: &'static str,
    /// The message (empty for a site's shared overflow entry).
    pub message: String,
    /// How loud.
    pub level: Level,
    /// Lines held back.
    pub repeats: u64,
    /// Seconds since it was last said.
    pub over_s: u64,
}

#[derive(Debug)]
struct Seen {
    level: Level,
    /// When it was last said (logged, or its count said).
    said_ms: u64,
    /// When it last came.
    last_ms: u64,
    /// Held back since it was last said.
    held: u64,
}

/// The memory of recent lines.
#[derive(Debug)]
pub struct Repeats {
    window_ms: u64,
    seen: HashMap<(&'static str, String), Seen>,
}

impl Repeats {
    /// An empty memory whose counts are said every `window` at most.
    pub fn new(window: Duration) -> Repeats {
        Repeats {
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            seen: HashMap::new(),
        }
    }

    /// Notes a line of `site` saying `message` at `now_ms`, and says whether to log it.
    pub fn note(&mut self, site: &'static str, level: Level, message: &str, now_ms: u64) -> Say {
        let mut key = (site, cut(message).to_string());
        if !self.seen.contains_key(&key) && self.seen.len() >= CAPACITY {
            self.forget(now_ms);
            if self.seen.len() >= CAPACITY {
                // too many distinct lines: this site's overflow entry carries them
                key.1.clear();
            }
        }
        let window = self.window_ms;
        match self.seen.get_mut(&key) {
            None => {
                if self.seen.len() < CAPACITY || key.1.is_empty() {
                    self.seen.insert(
                        key,
                        Seen {
                            level,
                            said_ms: now_ms,
                            last_ms: now_ms,
                            held: 0,
                        },
                    );
                }
                Say::First
            }
            Some(s) => {
                s.last_ms = now_ms;
                let over = now_ms.saturating_sub(s.said_ms);
                if over < window {
                    s.held = s.held.saturating_add(1);
                    return Say::Quiet;
                }
                let repeats = std::mem::take(&mut s.held);
                s.said_ms = now_ms;
                if repeats == 0 {
                    Say::First
                } else {
                    Say::Again {
                        repeats,
                        over_s: over / 1000,
                    }
                }
            }
        }
    }

    /// The counts whose window is over with no new line to carry them (each said once, then
    /// counted afresh); keys quiet for a whole window with nothing held are forgotten.
    pub fn flush(&mut self, now_ms: u64) -> Vec<Held> {
        let window = self.window_ms;
        let mut out = Vec::new();
        for ((site, message), s) in &mut self.seen {
            let over = now_ms.saturating_sub(s.said_ms);
            if s.held > 0 && over >= window {
                out.push(Held {
                    site,
                    message: message.clone(),
                    level: s.level,
                    repeats: std::mem::take(&mut s.held),
                    over_s: over / 1000,
                });
                s.said_ms = now_ms;
            }
        }
        self.forget(now_ms);
        out.sort_by(|a, b| (a.site, &a.message).cmp(&(b.site, &b.message)));
        out
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn forget(&mut self, now_ms: u64) {
        let window = self.window_ms;
        self.seen
            .retain(|_, s| s.held > 0 || now_ms.saturating_sub(s.last_ms) < window);
    }
}

/// `message`, cut to at most [`MAX_KEY`] bytes on a character boundary.
fn cut(message: &str) -> &str {
    if message.len() <= MAX_KEY {
        return message;
    }
    let mut end = MAX_KEY;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.get(..end).unwrap_or_default()
}

/// The process-wide memory (the log is the process's, so is its memory of repeats).
pub fn global() -> &'static Mutex<Repeats> {
    static GLOBAL: OnceLock<Mutex<Repeats>> = OnceLock::new();
    GLOBAL.get_or_init(|| Mutex::new(Repeats::new(WINDOW)))
}

/// Notes a line in the process-wide memory, now.
pub fn note(site: &'static str, level: Level, message: &str) -> Say {
    let now = crate::mono_ms();
    global()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .note(site, level, message, now)
}

/// Says the counts of the process-wide memory whose window is over (called every few
/// seconds by the node), one line each at the level of the line held back.
pub fn flush() {
    let now = crate::mono_ms();
    let held = global()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .flush(now);
    for h in held {
        let message = if h.message.is_empty() {
            "(too many distinct lines to tell apart)"
        } else {
            h.message.as_str()
        };
        match h.level {
            Level::Warn => {
                tracing::warn!(
                    site = h.site,
                    repeated = h.repeats,
                    over_s = h.over_s,
                    message,
                    "repeated {} times in the last {} s",
                    h.repeats,
                    h.over_s
                )
            }
            Level::Error => {
                tracing::error!(
                    site = h.site,
                    repeated = h.repeats,
                    over_s = h.over_s,
                    message,
                    "repeated {} times in the last {} s",
                    h.repeats,
                    h.over_s
                )
            }
        }
    }
}

/// `tracing::warn!`, said once per [`WINDOW`] for a repeated key: `warn_repeated!(SITE,
/// KEY; fields…, "sentence")`. A line said again carries `repeated` and `over_s`.
macro_rules! warn_repeated {
    ($site:expr, $key:expr; $($arg:tt)+) => {
        match $crate::ops::repeat::note($site, $crate::ops::repeat::Level::Warn, $key) {
            $crate::ops::repeat::Say::Quiet => {}
            $crate::ops::repeat::Say::First => tracing::warn!($($arg)+),
            $crate::ops::repeat::Say::Again { repeats, over_s } => {
                tracing::warn!(repeated = repeats, over_s, $($arg)+)
            }
        }
    };
}

/// `tracing::error!`, said once per [`WINDOW`] for a repeated key: `error_repeated!(SITE,
/// KEY; fields…, "sentence")`. A line said again carries `repeated` and `over_s`.
macro_rules! error_repeated {
    ($site:expr, $key:expr; $($arg:tt)+) => {
        match $crate::ops::repeat::note($site, $crate::ops::repeat::Level::Error, $key) {
            $crate::ops::repeat::Say::Quiet => {}
            $crate::ops::repeat::Say::First => tracing::error!($($arg)+),
            $crate::ops::repeat::Say::Again { repeats, over_s } => {
                tracing::error!(repeated = repeats, over_s, $($arg)+)
            }
        }
    };
}

pub(crate) use error_repeated;
pub(crate) use warn_repeated;

#[cfg(test)]
mod tests {
    use super::*;

    const E: Level = Level::Error;

    #[test]
    fn a_line_every_two_seconds_is_said_once_a_minute_with_its_count() {
        let mut r = Repeats::new(WINDOW);
        let msg = "take a.pdf: Invalid cross-device link (os error 18)";
        assert_eq!(r.note("intake", E, msg, 0), Say::First);
        // 29 more within the minute: held back
        for i in 1..30u64 {
            assert_eq!(r.note("intake", E, msg, i * 2000), Say::Quiet, "at {i}");
        }
        // the next one after the minute carries the count
        assert_eq!(
            r.note("intake", E, msg, 60_000),
            Say::Again {
                repeats: 29,
                over_s: 60
            }
        );
        assert_eq!(r.note("intake", E, msg, 62_000), Say::Quiet);
        // another file, another site: each said once on its own
        assert_eq!(r.note("intake", E, "take b.pdf: …", 62_000), Say::First);
        assert_eq!(r.note("land", E, msg, 62_000), Say::First);
    }

    #[test]
    fn a_count_left_when_the_line_stops_is_said_by_the_flush() {
        let mut r = Repeats::new(WINDOW);
        r.note("land", Level::Warn, "x", 1000);
        r.note("land", Level::Warn, "x", 3000);
        r.note("land", Level::Warn, "x", 5000);
        assert!(r.flush(30_000).is_empty(), "window not over");
        let held = r.flush(61_000);
        assert_eq!(
            held,
            vec![Held {
                site: "land",
                message: "x".into(),
                level: Level::Warn,
                repeats: 2,
                over_s: 60
            }]
        );
        // said once; nothing more came: quiet for a window, then forgotten
        assert!(r.flush(64_000).is_empty());
        assert_eq!(
            r.len(),
            1,
            "remembered while within a window of its last line"
        );
        assert!(r.flush(125_000).is_empty());
        assert!(r.is_empty(), "a quiet key is forgotten");
        // and said again in full when it comes back
        assert_eq!(r.note("land", Level::Warn, "x", 126_000), Say::First);
    }

    #[test]
    fn a_line_seen_once_a_window_is_always_said() {
        let mut r = Repeats::new(WINDOW);
        assert_eq!(r.note("s", E, "m", 0), Say::First);
        assert_eq!(
            r.note("s", E, "m", 60_000),
            Say::First,
            "nothing was held back"
        );
        assert_eq!(r.note("s", E, "m", 200_000), Say::First);
    }

    #[test]
    fn memory_is_bounded_and_a_flood_shares_one_entry() {
        let mut r = Repeats::new(WINDOW);
        for i in 0..CAPACITY {
            assert_eq!(r.note("flood", E, &format!("file {i}"), 0), Say::First);
        }
        assert_eq!(r.len(), CAPACITY);
        // past the bound, new lines of the site share one entry: the first is said, the
        // rest counted
        assert_eq!(r.note("flood", E, "file x", 1), Say::First);
        assert_eq!(r.note("flood", E, "file y", 2), Say::Quiet);
        assert_eq!(r.note("flood", E, "file z", 3), Say::Quiet);
        assert!(r.len() <= CAPACITY + 1);
        let held = r.flush(60_001);
        assert!(
            held.iter()
                .any(|h| h.site == "flood" && h.message.is_empty() && h.repeats == 2)
        );
        // once the old keys are quiet for a window they are forgotten and room comes back
        r.flush(200_000);
        assert!(r.is_empty());
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let long = "案".repeat(400);
        let c = cut(&long);
        assert!(c.len() <= MAX_KEY && long.starts_with(c) && !c.is_empty());
        let mut r = Repeats::new(WINDOW);
        assert_eq!(r.note("s", E, &long, 0), Say::First);
        assert_eq!(r.note("s", E, &long, 1), Say::Quiet);
    }

    #[test]
    fn the_macros_say_a_line_once() {
        // the process-wide memory, through the macros: a key no other test uses
        let key = "macro test key, unique to this test";
        warn_repeated!("ops.repeat.test", key; k = key, "first");
        error_repeated!("ops.repeat.test.e", key; k = key, "first");
        assert_eq!(
            note("ops.repeat.test", Level::Warn, key),
            Say::Quiet,
            "the macro noted it"
        );
        flush();
    }
}
