//! Classification markings in text: 绝密, 机密 and 秘密, in simplified or traditional
//! characters, with or without spaces, stars or joining marks (dashes, underscores, dots,
//! tildes) between them and spaces or stars after them (`秘密★10年`, `机 密`,
//! `机-密`, `★绝密★长期`, `密级：机密`). Invisible characters (zero-width spaces, joiners,
//! directional marks, the soft hyphen …) are not read at all, so `绝\u{200B}密` is a marking
//! and `商业秘\u{200B}密` lies inside the allowed phrase `商业秘密`.
//!
//! Deny by default: every occurrence of the two-character words is a marking, save one that
//! lies inside a phrase the channel allows (say `商业秘密`) found in the same text. Words that
//! merely share a character (秘书, 密码, 保密协议) are not markings.

use crate::content::text::is_invisible;

/// A marking found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkingMatch {
    /// The level, in simplified characters: `"绝密"`, `"机密"` or `"秘密"`.
    pub level: &'static str,
    /// The marking as written, with its stars and term when present; at most 40 characters.
    pub text: String,
}

/// Finds classification markings, exempting occurrences inside allowed phrases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarkingDetector {
    allow: Vec<String>,
}

/// The first character of each marking word, and the level it stands for.
const LEVELS: [(char, &str); 6] = [
    ('绝', "绝密"),
    ('絕', "绝密"),
    ('机', "机密"),
    ('機', "机密"),
    ('秘', "秘密"),
    ('祕', "秘密"),
];

/// At most this many spaces, stars or joining marks may stand between the two characters
/// of a marking.
const MAX_GAP: usize = 8;

/// The longest marking text reported, in characters.
const MAX_TEXT: usize = 40;

/// Whether `c` may stand between the characters of a marking (spaces and stars also after
/// them).
fn is_gap(c: char) -> bool {
    c.is_whitespace() || is_star(c) || is_joiner(c)
}

/// A mark that joins or splits a word without being a letter: a writer's way to keep a
/// word out of a keyword search (`机-密`, `绝_密`, `秘·密`). Dashes (hyphen, non-breaking
/// hyphen, figure, en and em dashes, minus, their full-width and small forms, the
/// katakana prolonged sound mark and the box-drawing line that look like one), underscores
/// (with the small wavy and dashed low lines), dots (full stop, middle dots, katakana
/// middle dot, bullets, small full stop) and tildes (with the wave and wavy dashes), ASCII
/// and full-width. Slashes and bars are not among them: they separate words (`主机/密码`,
/// a table's `| 主机 | 密码 |`), and a marking split by one is left to the reader.
fn is_joiner(c: char) -> bool {
    matches!(
        c,
        '-' | '\u{2010}'
            | '\u{2011}'
            | '\u{2012}'
            | '\u{2013}'
            | '\u{2014}'
            | '\u{2015}'
            | '\u{2212}'
            | '\u{FE58}'
            | '\u{FE63}'
            | '\u{FF0D}'
            | '_'
            | '\u{FF3F}'
            | '.'
            | '\u{FF0E}'
            | '\u{00B7}'
            | '\u{30FB}'
            | '\u{FF65}'
            | '\u{2022}'
            | '\u{2027}'
            | '\u{2219}'
            | '\u{30FC}'
            | '\u{2500}'
            | '\u{FE4D}'
            | '\u{FE4E}'
            | '\u{FE4F}'
            | '\u{FE52}'
            | '~'
            | '\u{FF5E}'
            | '\u{301C}'
            | '\u{3030}'
    )
}

fn is_star(c: char) -> bool {
    matches!(c, '★' | '☆' | '*' | '＊')
}

impl MarkingDetector {
    /// A detector exempting occurrences that lie inside any of `allow_phrases` (empty phrases
    /// are ignored).
    pub fn new(allow_phrases: &[String]) -> MarkingDetector {
        MarkingDetector {
            allow: allow_phrases
                .iter()
                .filter(|p| !p.is_empty())
                .cloned()
                .collect(),
        }
    }

    /// The first marking in `text` not inside an allowed phrase, if any. Invisible
    /// characters in `text` are passed over as if they were not there.
    pub fn find(&self, text: &str) -> Option<MarkingMatch> {
        if !text.contains('密') {
            return None;
        }
        if text.chars().any(is_invisible) {
            let visible: String = text.chars().filter(|&c| !is_invisible(c)).collect();
            return self.find_visible(&visible);
        }
        self.find_visible(text)
    }

    /// [`find`](Self::find) in a text without invisible characters.
    fn find_visible(&self, text: &str) -> Option<MarkingMatch> {
        for (mi, _) in text.match_indices('密') {
            let Some((start, level)) = level_before(text.get(..mi).unwrap_or_default()) else {
                continue;
            };
            let end = mi + '密'.len_utf8();
            if self.exempt(text, start, end) {
                continue;
            }
            return Some(MarkingMatch {
                level,
                text: marking_text(text, start, end),
            });
        }
        None
    }

    /// Whether `text[start..end]` lies inside an occurrence of an allowed phrase.
    fn exempt(&self, text: &str, start: usize, end: usize) -> bool {
        self.allow.iter().any(|phrase| {
            // Only an occurrence starting in [end - len, start] can hold the marking.
            let lo = floor_boundary(text, end.saturating_sub(phrase.len()));
            let hi = ceil_boundary(text, start + phrase.len());
            let window = text.get(lo..hi).unwrap_or_default();
            window.match_indices(phrase.as_str()).any(|(i, p)| {
                let ps = lo + i;
                ps <= start && end <= ps + p.len()
            })
        })
    }
}

/// The character before the gap at the end of `before`, if it starts a marking word: its
/// position and the level.
fn level_before(before: &str) -> Option<(usize, &'static str)> {
    let mut gap = 0;
    for (i, c) in before.char_indices().rev() {
        if is_gap(c) {
            gap += 1;
            if gap > MAX_GAP {
                return None;
            }
            continue;
        }
        return LEVELS
            .iter()
            .find(|(first, _)| *first == c)
            .map(|&(_, level)| (i, level));
    }
    None
}

/// The marking around `text[start..end]` as written: leading stars or a `密级：` label,
/// trailing stars, and a term (`10年`, `6个月`, `长期`) when one follows.
fn marking_text(text: &str, start: usize, end: usize) -> String {
    let before = text.get(..start).unwrap_or_default();
    let mut from = start;
    for (i, c) in before.char_indices().rev() {
        if !is_star(c) {
            break;
        }
        from = i;
    }
    let label = before.trim_end_matches(|c: char| c.is_whitespace() || c == ':' || c == '：');
    if from == start && label.ends_with("密级") {
        from = label.len() - "密级".len();
    }
    let after = text.get(end..).unwrap_or_default();
    let mut to = end;
    let mut rest = after;
    for (i, c) in after.char_indices() {
        // after the marking only spaces and stars (`秘密★10年`); a joining mark there
        // starts other text
        if !(c.is_whitespace() || is_star(c)) {
            rest = after.get(i..).unwrap_or_default();
            break;
        }
        if is_star(c) {
            to = end + i + c.len_utf8();
        }
        rest = after.get(i + c.len_utf8()..).unwrap_or_default();
    }
    let term = term_len(rest);
    if term > 0 {
        to = text.len() - rest.len() + term;
    }
    text.get(from..to)
        .unwrap_or_default()
        .chars()
        .take(MAX_TEXT)
        .collect()
}

/// The length in bytes of a classification term at the start of `s`: `长期`, or digits then
/// `年`, `个月` or `月`; 0 when there is none.
fn term_len(s: &str) -> usize {
    if s.starts_with("长期") {
        return "长期".len();
    }
    let digits: usize = s
        .chars()
        .take_while(|c| c.is_ascii_digit() || ('０'..='９').contains(c))
        .map(char::len_utf8)
        .sum();
    if digits == 0 {
        return 0;
    }
    let unit = s.get(digits..).unwrap_or_default();
    ["年", "个月", "月"]
        .iter()
        .find(|u| unit.starts_with(**u))
        .map_or(0, |u| digits + u.len())
}

/// The largest character boundary of `s` not above `i`.
fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The smallest character boundary of `s` not below `i` (or its length).
fn ceil_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> MarkingDetector {
        MarkingDetector::new(&[])
    }

    fn level(text: &str) -> Option<&'static str> {
        strict().find(text).map(|m| m.level)
    }

    #[test]
    fn each_level() {
        assert_eq!(level("本文件为绝密文件"), Some("绝密"));
        assert_eq!(level("机密"), Some("机密"));
        assert_eq!(level("内容涉及秘密事项"), Some("秘密"));
        assert_eq!(level("絕密"), Some("绝密"));
        assert_eq!(level("機密資料"), Some("机密"));
        // 祕 is the standard traditional form of 秘 (Taiwan's, and OpenCC's)
        assert_eq!(level("祕密★10年"), Some("秘密"));
    }

    #[test]
    fn each_form() {
        let cases = [
            ("秘密★10年", "秘密", "秘密★10年"),
            ("标注 机 密 字样", "机密", "机 密"),
            ("★绝密★长期", "绝密", "★绝密★长期"),
            ("密级：机密", "机密", "密级：机密"),
            ("密级: 秘密 ★ 5年", "秘密", "密级: 秘密 ★ 5年"),
            ("机\u{3000}密", "机密", "机\u{3000}密"),
            ("秘\u{a0}密", "秘密", "秘\u{a0}密"),
            ("绝*密", "绝密", "绝*密"),
            ("机☆密☆6个月", "机密", "机☆密☆6个月"),
            ("秘密★", "秘密", "秘密★"),
            ("秘密 正文", "秘密", "秘密"),
        ];
        for (text, level, form) in cases {
            let m = strict().find(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!((m.level, m.text.as_str()), (level, form), "{text}");
        }
    }

    #[test]
    fn marking_text_is_capped() {
        let text = format!("{}绝密", "★".repeat(60));
        let m = strict().find(&text).unwrap();
        assert_eq!(m.text.chars().count(), MAX_TEXT);
    }

    #[test]
    fn joining_marks_between_the_characters_do_not_hide_a_marking() {
        for (text, level_found) in [
            ("机-密", "机密"),
            ("绝—密文件", "绝密"),
            ("秘_密", "秘密"),
            ("機·密", "机密"),
            ("机 - 密★10年", "机密"),
            ("绝ー密", "绝密"),
            ("机─密", "机密"),
            ("秘.密", "秘密"),
            ("机～密", "机密"),
            ("机－\u{200B}密", "机密"),
        ] {
            assert_eq!(level(text), Some(level_found), "{text}");
        }
        // the allowance of gaps counts them too, and a word around a mark is still a word
        assert_eq!(level(&format!("机{}密", "-".repeat(MAX_GAP + 1))), None);
        for text in [
            "秘-书",
            "保-密",
            "机器-密封",
            "密-码",
            "主机/密码",
            "| 主机 | 密码 |",
        ] {
            assert_eq!(level(text), None, "{text}");
        }
        // what follows a marking is its term only after spaces or stars
        let m = strict().find("机密-2024年").unwrap();
        assert_eq!(m.text, "机密");
    }

    #[test]
    fn ordinary_text_is_not_a_marking() {
        for text in [
            "秘书处",
            "请输入密码",
            "双方签订保密协议",
            "密度与密封",
            "机器 学习",
            "秘 书",
            "机            密",
            "",
            "no chinese at all",
        ] {
            assert_eq!(strict().find(text), None, "{text}");
        }
    }

    #[test]
    fn allowed_phrases_exempt_only_their_own_occurrence() {
        let d = MarkingDetector::new(&["商业秘密".to_string(), String::new()]);
        assert_eq!(d.find("侵犯商业秘密纠纷"), None);
        assert_eq!(d.find("商业秘密、商业秘密"), None);
        let m = d.find("商业秘密 秘密★5年").unwrap();
        assert_eq!((m.level, m.text.as_str()), ("秘密", "秘密★5年"));
        assert_eq!(d.find("商业机密").unwrap().level, "机密");
        // Without the phrase the same text is a marking.
        assert_eq!(level("侵犯商业秘密纠纷"), Some("秘密"));
    }

    #[test]
    fn invisible_characters_are_passed_over() {
        for text in [
            "绝\u{200B}密",
            "机\u{200D}密文件",
            "秘\u{AD}密",
            "秘\u{FEFF}\u{2060}密",
            "机\u{202E}密",
            "絕\u{200C} \u{2066}密",
            "机\u{FE0F}密",
        ] {
            assert!(strict().find(text).is_some(), "{text:?}");
        }
        // However many, and without using up the allowance of spaces.
        let flood = format!("绝{}密", "\u{200B}".repeat(1000));
        let m = strict().find(&flood).unwrap();
        assert_eq!((m.level, m.text.as_str()), ("绝密", "绝密"));
        let mixed = format!("机{}{}密", " ".repeat(MAX_GAP), "\u{200B}".repeat(4));
        assert_eq!(level(&mixed), Some("机密"));
        // The raw text and its detection view agree.
        let view = crate::content::text::detection_view(&flood);
        assert_eq!(strict().find(&view), strict().find(&flood));
    }

    #[test]
    fn invisible_characters_do_not_make_words_markings() {
        for text in [
            "秘\u{200B}书",
            "密\u{200B}码",
            "保\u{200B}密",
            "\u{200B}密",
            "机器\u{200B}密封",
            "机\u{200B}          密",
        ] {
            assert_eq!(strict().find(text), None, "{text:?}");
        }
        // An allowed phrase split by an invisible character is still the allowed phrase.
        let d = MarkingDetector::new(&["商业秘密".to_string()]);
        assert_eq!(d.find("侵犯商业秘\u{200B}密纠纷"), None);
        assert_eq!(d.find("侵犯商\u{200D}业秘密纠纷"), None);
        assert_eq!(d.find("商业秘密 绝\u{200B}密").unwrap().level, "绝密");
    }

    #[test]
    fn gb18030_text_after_decoding() {
        let (bytes, _, _) = encoding_rs::GB18030.encode("民事判决书 机密★10年\r\n");
        let text = encoding_rs::GB18030
            .decode_without_bom_handling_and_without_replacement(&bytes)
            .unwrap();
        let m = strict().find(&text).unwrap();
        assert_eq!((m.level, m.text.as_str()), ("机密", "机密★10年"));
    }
}
