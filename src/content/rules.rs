//! A channel's keyword and regular-expression rules over text, compiled once and shared by
//! every scan: keywords are literal and matched without regard to case or to Chinese script
//! (a character matches its simplified and traditional forms, [`crate::content::variants`]:
//! `内部` finds `內部`), patterns use the `regex` crate's syntax and match as written. All keywords run as one automaton and all patterns as one set, so
//! a line that matches nothing is read once per kind of rule whatever the number of rules.
//!
//! Every compiled program has a size cap: a hostile or careless pattern (`\w{1000}{1000}`)
//! fails to load with an error naming it, instead of exhausting memory.

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use std::fmt;

/// The largest compiled program one pattern may have, in bytes.
pub const PATTERN_SIZE_LIMIT: usize = 4 << 20;

/// The largest compiled program of all the keywords together, in bytes.
const KEYWORD_SIZE_LIMIT: usize = 64 << 20;

/// The longest matched text reported in a hit, in characters.
const MAX_MATCHED: usize = 60;

/// A channel's text rules. `Send` and `Sync`; cloning shares the compiled programs.
#[derive(Debug, Clone)]
pub struct TextRules {
    /// The non-empty keywords as configured; keyword `i` is capture group `i + 1`.
    keywords: Vec<String>,
    keyword_regex: Option<Regex>,
    patterns: Vec<String>,
    pattern_regexes: Vec<Regex>,
    pattern_set: Option<RegexSet>,
}

/// A rule that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleHit {
    /// The keyword as configured, or `regex #N: <pattern>` with `N` its position (from 0).
    pub rule: String,
    /// The text it matched, cut to 60 characters.
    pub matched: String,
}

/// A pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The position (from 0) of the pattern in the list; `usize::MAX` when the fault is not
    /// one pattern's (the keyword list, or all patterns together, too large to compile).
    pub index: usize,
    /// Why it cannot be used.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.index == usize::MAX {
            f.write_str(&self.message)
        } else {
            write!(f, "pattern #{}: {}", self.index, self.message)
        }
    }
}

impl std::error::Error for RuleError {}

impl TextRules {
    /// Compiles the rules. Empty keywords are ignored. A pattern is refused when it does not
    /// parse, when its program exceeds [`PATTERN_SIZE_LIMIT`], or when it matches the empty
    /// string (it would match every line).
    pub fn new(keywords: &[String], patterns: &[String]) -> Result<TextRules, RuleError> {
        let keywords: Vec<String> = keywords.iter().filter(|k| !k.is_empty()).cloned().collect();
        let keyword_regex = if keywords.is_empty() {
            None
        } else {
            let alternation = keywords
                .iter()
                .map(|k| format!("({})", any_script(k)))
                .collect::<Vec<_>>()
                .join("|");
            let re = RegexBuilder::new(&alternation)
                .case_insensitive(true)
                .size_limit(KEYWORD_SIZE_LIMIT)
                .build()
                .map_err(|e| RuleError {
                    index: usize::MAX,
                    message: format!("keyword list: {e}"),
                })?;
            Some(re)
        };
        let mut pattern_regexes = Vec::with_capacity(patterns.len());
        for (index, pattern) in patterns.iter().enumerate() {
            let fail = |message: String| RuleError { index, message };
            let re = RegexBuilder::new(pattern)
                .size_limit(PATTERN_SIZE_LIMIT)
                .build()
                .map_err(|e| fail(e.to_string()))?;
            if re.is_match("") {
                return Err(fail("matches the empty string, so every line".to_string()));
            }
            pattern_regexes.push(re);
        }
        let pattern_set = if patterns.is_empty() {
            None
        } else {
            let set = RegexSetBuilder::new(patterns)
                .size_limit(PATTERN_SIZE_LIMIT.saturating_mul(patterns.len()))
                .build()
                .map_err(|e| RuleError {
                    index: usize::MAX,
                    message: format!("all patterns together: {e}"),
                })?;
            Some(set)
        };
        Ok(TextRules {
            keywords,
            keyword_regex,
            patterns: patterns.to_vec(),
            pattern_regexes,
            pattern_set,
        })
    }

    /// Whether there are no rules at all (then `find` never hits).
    pub fn is_empty(&self) -> bool {
        self.keyword_regex.is_none() && self.pattern_set.is_none()
    }

    /// The first rule `text` matches: keywords first (the leftmost match), then patterns
    /// (the first in the list that matches).
    ///
    /// A line that matches nothing costs one search per kind of rule and no allocation:
    /// which keyword or pattern matched is worked out only after a match.
    pub fn find(&self, text: &str) -> Option<RuleHit> {
        let keyword = self
            .keyword_regex
            .as_ref()
            .and_then(|re| Some((re, re.find(text)?)));
        if let Some((re, found)) = keyword {
            // The match found is the leftmost: searching again from its start gives the
            // same match, now with the group of the keyword that made it.
            let caps = re.captures_at(text, found.start());
            let hit = caps.as_ref().and_then(|caps| {
                self.keywords
                    .iter()
                    .enumerate()
                    .find_map(|(i, k)| caps.get(i + 1).map(|m| (k, m.as_str())))
            });
            if let Some((keyword, matched)) = hit {
                return Some(RuleHit {
                    rule: keyword.clone(),
                    matched: clip(matched),
                });
            }
        }
        let set = self.pattern_set.as_ref()?;
        if !set.is_match(text) {
            return None;
        }
        let index = set.matches(text).iter().next()?;
        let found = self.pattern_regexes.get(index)?.find(text)?;
        let pattern = self.patterns.get(index)?;
        Some(RuleHit {
            rule: format!("regex #{index}: {pattern}"),
            matched: clip(found.as_str()),
        })
    }
}

/// The regular expression of keyword `k`: its characters literal, each Chinese character
/// that has other forms as the class of all of them (`内部` → `[内內]部`).
fn any_script(k: &str) -> String {
    k.chars()
        .map(|c| match crate::content::variants::of(c) {
            Some(forms) => {
                let class: String = forms
                    .iter()
                    .map(|f| regex::escape(&f.to_string()))
                    .collect();
                format!("[{class}]")
            }
            None => regex::escape(&c.to_string()),
        })
        .collect()
}

/// `s` cut to at most `MAX_MATCHED` characters.
fn clip(s: &str) -> String {
    s.chars().take(MAX_MATCHED).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn rules(keywords: &[&str], patterns: &[&str]) -> TextRules {
        TextRules::new(&strings(keywords), &strings(patterns)).unwrap()
    }

    #[test]
    fn keyword_hits_chinese_and_ascii_ignoring_case() {
        let r = rules(&["内部资料", "Project X", "a.b"], &[]);
        assert!(!r.is_empty());
        let hit = r.find("这是一份内部资料，请勿外传").unwrap();
        assert_eq!(hit.rule, "内部资料");
        assert_eq!(hit.matched, "内部资料");
        let hit = r.find("status of PROJECT x today").unwrap();
        assert_eq!(hit.rule, "Project X");
        assert_eq!(hit.matched, "PROJECT x");
        // Keywords are literal: the dot is not a wildcard.
        assert_eq!(r.find("aXb").map(|h| h.rule), None);
        assert_eq!(r.find("a.b").unwrap().rule, "a.b");
    }

    #[test]
    fn keywords_find_their_text_in_either_chinese_script_and_report_it_as_written() {
        let r = rules(&["内部资料", "機密文件", "干部名单"], &[]);
        for (text, rule, matched) in [
            ("這是一份內部資料，請勿外傳", "内部资料", "內部資料"),
            ("这是一份内部资料", "内部资料", "内部资料"),
            ("附件：机密文件目录", "機密文件", "机密文件"),
            ("幹部名單如下", "干部名单", "幹部名單"),
            // one character in each script, as a converter that stops halfway writes it
            ("內部资料", "内部资料", "內部资料"),
        ] {
            let hit = r.find(text).unwrap_or_else(|| panic!("{text}: no hit"));
            assert_eq!((hit.rule.as_str(), hit.matched.as_str()), (rule, matched));
        }
        assert_eq!(r.find("外部资料").map(|h| h.rule), None);
        // patterns stay as written
        let p = rules(&[], &[r"内部\d+"]);
        assert!(p.find("内部12").is_some());
        assert!(p.find("內部12").is_none());
    }

    #[test]
    fn regex_hit_names_the_pattern() {
        let r = rules(&[], &[r"合同编号\d+", r"(?i)secret-\d{3}"]);
        let hit = r.find("see Secret-042 here").unwrap();
        assert_eq!(hit.rule, r"regex #1: (?i)secret-\d{3}");
        assert_eq!(hit.matched, "Secret-042");
        let hit = r.find("合同编号2026001").unwrap();
        assert_eq!(hit.rule, r"regex #0: 合同编号\d+");
    }

    #[test]
    fn keywords_come_before_patterns_and_hits_are_clipped() {
        let r = rules(&["机要"], &["x+"]);
        assert_eq!(r.find("xxx 机要").unwrap().rule, "机要");
        let long = "x".repeat(200);
        assert_eq!(r.find(&long).unwrap().matched.len(), 60);
    }

    #[test]
    fn no_hit() {
        let r = rules(&["内部资料", "confidential"], &[r"\bTOP-\d+\b"]);
        assert_eq!(r.find("一份普通的判决书 top-secret"), None);
        assert_eq!(r.find(""), None);
        let empty = rules(&["", ""], &[]);
        assert!(empty.is_empty());
        assert_eq!(empty.find("anything"), None);
    }

    #[test]
    fn invalid_pattern_names_its_index() {
        let err = TextRules::new(&[], &strings(&["ok", "fine", "(unclosed"])).unwrap_err();
        assert_eq!(err.index, 2);
        assert!(err.to_string().starts_with("pattern #2: "), "{err}");
        let err = TextRules::new(&[], &strings(&["ok", ""])).unwrap_err();
        assert_eq!(err.index, 1);
        let err = TextRules::new(&[], &strings(&["a*"])).unwrap_err();
        assert_eq!(err.index, 0);
    }

    #[test]
    fn oversized_pattern_fails_cleanly() {
        let err = TextRules::new(&[], &strings(&["ok", r"\w{1000}{1000}"])).unwrap_err();
        assert_eq!(err.index, 1);
        assert!(!err.message.is_empty());
    }

    #[test]
    fn rules_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<TextRules>();
    }

    #[test]
    fn the_leftmost_keyword_is_named() {
        let r = rules(&["资料", "内部资料", "机要", "内部"], &[]);
        // At the leftmost match the first keyword in the list that matches there wins.
        assert_eq!(r.find("这是内部资料").unwrap().rule, "内部资料");
        assert_eq!(r.find("资料与机要").unwrap().rule, "资料");
        assert_eq!(r.find("见机要，内部资料").unwrap().rule, "机要");
        let hit = r.find("前文 内部 后文").unwrap();
        assert_eq!((hit.rule.as_str(), hit.matched.as_str()), ("内部", "内部"));
        let ascii = rules(&["Secret", "TOP SECRET"], &[]);
        let hit = ascii.find("marked top secret here").unwrap();
        assert_eq!(
            (hit.rule.as_str(), hit.matched.as_str()),
            ("TOP SECRET", "top secret")
        );
    }

    /// Speed of `find` on lines that match nothing, against searching with captures first
    /// as before. Run with `cargo test --release -- --ignored --nocapture rules_speed`.
    #[test]
    #[ignore]
    fn rules_speed() {
        let keywords: Vec<String> = (0..50).map(|i| format!("内部资料{i}号")).collect();
        let patterns = strings(&[r"合同编号[A-Z]\d{6}", r"(?i)secret-\d{3}", r"\bTOP-\d+\b"]);
        let r = TextRules::new(&keywords, &patterns).unwrap();
        let line = "12345,2026-01-15,（2026）吉01民初1234号,张三诉李四借款合同纠纷,本金123456.78元，判决如下。\n";
        let text = line.repeat((64 << 20) / line.len());
        let mib = text.len() as f64 / f64::from(1 << 20);
        let started = std::time::Instant::now();
        let hits = text.split_inclusive('\n').filter_map(|l| r.find(l)).count();
        let now = started.elapsed().as_secs_f64();
        let started = std::time::Instant::now();
        let re = r.keyword_regex.as_ref().unwrap();
        let set = r.pattern_set.as_ref().unwrap();
        let old = text
            .split_inclusive('\n')
            .filter(|l| re.captures(l).is_some() || set.is_match(l))
            .count();
        let before = started.elapsed().as_secs_f64();
        assert_eq!((hits, old), (0, 0));
        println!(
            "no-hit lines: find {:.0} MiB/s, captures first {:.0} MiB/s",
            mib / now,
            mib / before
        );
    }
}
