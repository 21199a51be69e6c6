//! Simplified and traditional forms of Chinese characters, so that a keyword written in one
//! script finds the other: `内部` finds `內部`, `機密文件` finds `机密文件`, `干部` finds
//! `幹部`. The tables are OpenCC's character tables (`TSCharacters`, traditional to
//! simplified, with the Taiwan and Hong Kong forms such as `裡`; `STCharacters`,
//! simplified to traditional), as the `hanconv` crate carries them.
//!
//! Characters are grouped by their simplified form: a character's variants are every
//! character with the same simplified form, and every traditional form OpenCC gives that
//! simplified form (`发`: `發`, `髮`). Matching is character by character, never by phrase,
//! so a keyword finds its text in either script whatever its neighbours; a character with
//! several simplified forms (`鍊`: `炼`, `链`) is grouped with its first, as OpenCC's
//! conversion writes it.

use hanconv::RawDictionary;
use std::collections::HashMap;
use std::sync::LazyLock;

/// Each character that has variants, with all of them (itself included), sorted.
static GROUPS: LazyLock<HashMap<char, Vec<char>>> = LazyLock::new(groups);

/// The single character of `s`, if it is one.
fn one(s: &str) -> Option<char> {
    let mut chars = s.chars();
    let c = chars.next()?;
    chars.next().is_none().then_some(c)
}

/// Builds [`GROUPS`] from OpenCC's two character tables.
fn groups() -> HashMap<char, Vec<char>> {
    // the simplified form of each traditional character: its first value
    let mut simplified: HashMap<char, char> = HashMap::new();
    for (t, s) in RawDictionary::TSCharacters.iter() {
        if let (Some(t), Some(s)) = (one(t), one(s)) {
            simplified.entry(t).or_insert(s);
        }
    }
    // every character of a simplified form, under that form
    let mut by_form: HashMap<char, Vec<char>> = HashMap::new();
    for (&t, &s) in &simplified {
        by_form.entry(s).or_insert_with(|| vec![s]).push(t);
    }
    for (s, ts) in RawDictionary::STCharacters.var_iter() {
        let Some(s) = one(s) else { continue };
        let form = simplified.get(&s).copied().unwrap_or(s);
        let group = by_form.entry(form).or_insert_with(|| vec![form]);
        group.push(s);
        group.extend(ts.into_iter().filter_map(one));
    }
    // a character in the group of its own simplified form; one that has none (a simplified
    // character several forms list) in each group that lists it, merged
    let mut groups: HashMap<char, Vec<char>> = HashMap::new();
    for (form, group) in &by_form {
        for &c in group {
            if c == *form || simplified.get(&c).is_none_or(|s| s == form) {
                groups.entry(c).or_default().extend(group);
            }
        }
    }
    groups.retain(|_, g| {
        g.sort_unstable();
        g.dedup();
        g.len() > 1
    });
    groups
}

/// The variants of `c`, itself included, sorted (`内` → `内`, `內`); `None` for a
/// character with none (every character outside these tables, ASCII among them).
pub fn of(c: char) -> Option<&'static [char]> {
    GROUPS.get(&c).map(Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(c: char, v: char) -> bool {
        of(c).is_some_and(|g| g.contains(&v) && g.contains(&c))
    }

    #[test]
    fn simplified_and_traditional_find_each_other() {
        for (s, t) in [
            ('内', '內'),
            ('机', '機'),
            ('发', '發'),
            ('发', '髮'),
            ('干', '幹'),
            ('干', '乾'),
            ('里', '裏'),
            ('里', '裡'),
            ('绝', '絕'),
            ('审', '審'),
            ('判', '判'),
        ] {
            if s == t {
                assert_eq!(of(s), None, "{s} has no other form");
                continue;
            }
            assert!(has(s, t), "{s} should find {t}: {:?}", of(s));
            assert!(has(t, s), "{t} should find {s}: {:?}", of(t));
        }
    }

    #[test]
    fn unrelated_characters_and_ascii_have_no_variants() {
        assert_eq!(of('a'), None);
        assert_eq!(of('1'), None);
        assert!(!has('内', '外'));
        let g = of('发').unwrap();
        assert!(g.len() <= 4, "{g:?}");
        assert!(g.windows(2).all(|w| w[0] < w[1]), "sorted: {g:?}");
    }
}
