//! Sensitive personal data in text: PRC resident identity numbers, mobile numbers, bank card
//! numbers and e-mail addresses — finding them and masking them.
//!
//! The scanners are hand-written over the bytes of the text (every form is ASCII), so a
//! detector is a handful of flags: cheap to build, to clone and to share between threads.
//! Numbers count only when they stand alone: never inside a longer run of digits, never next
//! to a decimal point with digits beyond it, and for identity and card numbers never next to
//! an ASCII letter. Identity numbers must carry a valid check digit and birth date, card
//! numbers a valid Luhn digit.

use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A kind of sensitive personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    /// A PRC resident identity card number (18 characters, or the old 15-digit form).
    ResidentId,
    /// A PRC mobile number, with or without the +86 prefix.
    Mobile,
    /// A bank card number of 13 to 19 digits passing the Luhn check.
    BankCard,
    /// An e-mail address.
    Email,
}

impl PiiKind {
    /// Every kind, in documentation order.
    pub const ALL: [PiiKind; 4] = [
        PiiKind::ResidentId,
        PiiKind::Mobile,
        PiiKind::BankCard,
        PiiKind::Email,
    ];

    /// The stable name used in policy files, audit records and refusal details.
    pub fn as_str(self) -> &'static str {
        match self {
            PiiKind::ResidentId => "resident_id",
            PiiKind::Mobile => "mobile",
            PiiKind::BankCard => "bank_card",
            PiiKind::Email => "email",
        }
    }
}

/// One piece of personal data found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiiMatch {
    /// What was found.
    pub kind: PiiKind,
    /// Where, as a byte range of the text (always on character boundaries).
    pub range: Range<usize>,
}

/// Finds and masks the chosen kinds of personal data. Cheap to clone; `Send` and `Sync`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PiiDetector {
    resident_id: bool,
    mobile: bool,
    bank_card: bool,
    email: bool,
}

/// At most this many digit groups are looked at together ("+86 138 0013 8000" has four,
/// a 19-digit card in groups of four has five).
const MAX_GROUPS: usize = 5;

impl PiiDetector {
    /// A detector for the given kinds (duplicates are harmless; none finds nothing).
    pub fn new(kinds: &[PiiKind]) -> PiiDetector {
        let mut detector = PiiDetector::default();
        for kind in kinds {
            match kind {
                PiiKind::ResidentId => detector.resident_id = true,
                PiiKind::Mobile => detector.mobile = true,
                PiiKind::BankCard => detector.bank_card = true,
                PiiKind::Email => detector.email = true,
            }
        }
        detector
    }

    fn wants(&self, kind: PiiKind) -> bool {
        match kind {
            PiiKind::ResidentId => self.resident_id,
            PiiKind::Mobile => self.mobile,
            PiiKind::BankCard => self.bank_card,
            PiiKind::Email => self.email,
        }
    }

    /// Every piece of personal data of the chosen kinds in `text`, in order, not overlapping.
    pub fn find(&self, text: &str) -> Vec<PiiMatch> {
        let bytes = text.as_bytes();
        let numbers = self.resident_id || self.mobile || self.bank_card;
        let has_at = self.email && bytes.contains(&b'@');
        let mut found = Vec::new();
        if numbers && may_hold_number(bytes) {
            find_numbers(bytes, &mut |kind, range| {
                if self.wants(kind) {
                    found.push(PiiMatch { kind, range });
                }
            });
        }
        if has_at {
            let numbers_end = found.len();
            find_emails(bytes, &mut |range| {
                found.push(PiiMatch {
                    kind: PiiKind::Email,
                    range,
                });
            });
            if numbers_end > 0 && found.len() > numbers_end {
                // Both scanners found something: keep the earliest, then the longest.
                found.sort_by_key(|m| (m.range.start, usize::MAX - m.range.end));
                let mut end = 0;
                found.retain(|m| {
                    let keep = m.range.start >= end;
                    if keep {
                        end = m.range.end;
                    }
                    keep
                });
            }
        }
        found
    }

    /// `text` with every piece of personal data masked, or `None` when there is none.
    ///
    /// Resident ID: first 6 and last 4 characters kept, separators kept. Mobile: first 3 and last 4 digits of
    /// the number kept, prefix and separators kept. Bank card: first 6 and last 4 digits kept,
    /// separators kept. E-mail: first character of the local part and the domain kept. Every
    /// other character becomes `*`, so the masked text has the length of the original.
    pub fn mask(&self, text: &str) -> Option<String> {
        let found = self.find(text);
        if found.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for m in &found {
            out.push_str(text.get(last..m.range.start).unwrap_or_default());
            mask_one(
                m.kind,
                text.get(m.range.clone()).unwrap_or_default(),
                &mut out,
            );
            last = m.range.end;
        }
        out.push_str(text.get(last..).unwrap_or_default());
        Some(out)
    }
}

/// Appends the masked form of `found`, an ASCII match of `kind`, to `out`.
fn mask_one(kind: PiiKind, found: &str, out: &mut String) {
    let digits = found.bytes().filter(u8::is_ascii_digit).count();
    // The digits (by position among the digits) to hide.
    let hidden = match kind {
        PiiKind::Mobile => {
            let national = digits.saturating_sub(11);
            national + 3..national + 7
        }
        PiiKind::BankCard => 6..digits.saturating_sub(4),
        PiiKind::ResidentId => {
            let id = found.bytes().filter(|c| is_id_char(*c)).count();
            6..id.saturating_sub(4)
        }
        PiiKind::Email => {
            let at = found.find('@').unwrap_or(0);
            for (i, c) in found.char_indices() {
                out.push(if i > 0 && i < at { '*' } else { c });
            }
            return;
        }
    };
    let mut k = 0;
    for c in found.chars() {
        let counted = match kind {
            PiiKind::ResidentId => u8::try_from(c).is_ok_and(is_id_char),
            _ => c.is_ascii_digit(),
        };
        if counted {
            out.push(if hidden.contains(&k) { '*' } else { c });
            k += 1;
        } else {
            out.push(c);
        }
    }
}

/// Whether `c` is a character of a resident ID: a digit, or the check character X.
fn is_id_char(c: u8) -> bool {
    c.is_ascii_digit() || matches!(c, b'X' | b'x')
}

/// A run of ASCII digits, and the separator byte before it (0 for the first of a chain).
#[derive(Debug, Clone, Copy, Default)]
struct Group {
    start: usize,
    end: usize,
    sep: u8,
}

impl Group {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// The fewest digits a number looked for has: a mobile number without its prefix (an
/// identity number has 15 or more, a card number 13 or more).
const MIN_DIGITS: usize = 11;

/// Calls `hit` for every resident ID, mobile or card number in `b`, whatever kinds are
/// wanted: a number that is one kind is never reported as another.
///
/// Every number lies within one chain of digit runs joined by single separators (`2026-01-15`
/// is one chain of 8 digits), so the text is read once for chains, and only a chain of at
/// least [`MIN_DIGITS`] digits is looked at more closely; dates, case numbers and amounts
/// cost one pass over their bytes.
fn find_numbers(b: &[u8], hit: &mut dyn FnMut(PiiKind, Range<usize>)) {
    let mut i = 0;
    while let Some(start) = next_digit(b, i) {
        // `i` is never inside a run of digits, so a chain starts here.
        let mut end = run_end(b, start);
        let mut digits = end - start;
        while let (Some(b' ' | b'-' | b'.'), Some(d)) = (b.get(end), b.get(end + 1)) {
            if !d.is_ascii_digit() {
                break;
            }
            let next = run_end(b, end + 1);
            digits += next - end - 1;
            end = next;
        }
        i = if digits >= MIN_DIGITS {
            numbers_in_chain(b, start..end, hit).max(end)
        } else {
            end
        };
    }
}

/// Whether `b` may hold a number: a chain of digit runs joined by single spaces, hyphens or dots
/// at least [`MIN_DIGITS`] bytes long. Reads 64 bytes at a time as bit masks, so a line of
/// dates, case numbers and amounts costs a few instructions per byte and no branch per run.
/// Never false when `find_numbers` would find something; may be true when it would not.
fn may_hold_number(b: &[u8]) -> bool {
    // Bit k of `chain` is set when byte k is a digit or a separator between two digits.
    // `run` is how many bits at the end of the last block were set, `last_digit` whether
    // its last byte was a digit.
    let mut run = 0u32;
    let mut last_digit = false;
    let mut chunks = b.chunks_exact(64);
    let mut pad = [0u8; 64];
    let tail = chunks.remainder();
    if let Some(slot) = pad.get_mut(..tail.len()) {
        slot.copy_from_slice(tail);
    }
    for block in chunks.by_ref().chain(std::iter::once(&pad[..])) {
        let (digit, sep) = block_masks(block);
        // A separator counts when digits stand on both sides; the byte after the block is
        // unknown, so one at its end counts when a digit precedes it (never too few bits).
        let before = (digit << 1) | u64::from(last_digit);
        let after = (digit >> 1) | (1 << 63);
        let chain = digit | (sep & before & after);
        let leading = chain.trailing_ones();
        if run + leading >= MIN_DIGITS as u32 {
            return true;
        }
        let mut long = chain & (chain >> 1);
        long &= long >> 2;
        long &= long >> 4;
        long &= long >> 3;
        if long != 0 {
            return true;
        }
        run = if chain == u64::MAX {
            run + 64
        } else {
            chain.leading_ones()
        };
        last_digit = digit >> 63 == 1;
    }
    false
}

/// For a block of 64 bytes, the bit masks of its ASCII digits and of its separators (space,
/// hyphen or dot), bit k for byte k. Works on eight bytes at a time in a `u64`.
fn block_masks(block: &[u8]) -> (u64, u64) {
    let mut digit = 0u64;
    let mut sep = 0u64;
    for (k, word) in block.chunks_exact(8).take(8).enumerate() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let w = u64::from_le_bytes(bytes);
        digit |= high_bits(digit_bytes(w)) << (8 * k);
        sep |= high_bits(byte_is(w, b' ') | byte_is(w, b'-') | byte_is(w, b'.')) << (8 * k);
    }
    (digit, sep)
}

/// Every byte of a `u64` set to `b`.
const fn splat(b: u8) -> u64 {
    b as u64 * 0x0101_0101_0101_0101
}

/// The high bit of each byte of `w` that is an ASCII digit (`0x30..=0x39`).
fn digit_bytes(w: u64) -> u64 {
    let low = w & splat(0x7F);
    // No byte carries into the next: `low` is at most 0x7F and the addends at most 0x50.
    let at_least_0 = low.wrapping_add(splat(0x80 - b'0')) & splat(0x80);
    let above_9 = low.wrapping_add(splat(0x80 - b'9' - 1)) & splat(0x80);
    at_least_0 & !above_9 & !w & splat(0x80)
}

/// The high bit of each byte of `w` equal to `b`.
fn byte_is(w: u64, b: u8) -> u64 {
    let x = w ^ splat(b);
    // A byte of `x` is non-zero when its low seven bits carry into bit 7 or bit 7 is set.
    !(((x & splat(0x7F)).wrapping_add(splat(0x7F))) | x) & splat(0x80)
}

/// The high bits of the eight bytes of `x` (all other bits clear) gathered into bits 0 to 7.
fn high_bits(x: u64) -> u64 {
    (x >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// Calls `hit` for every number in the chain of digit groups `chain`, trying at each group
/// the longest run of up to [`MAX_GROUPS`] groups first; returns where the scan stopped.
fn numbers_in_chain(
    b: &[u8],
    chain: Range<usize>,
    hit: &mut dyn FnMut(PiiKind, Range<usize>),
) -> usize {
    let mut i = chain.start;
    while let Some(start) = next_digit(b, i).filter(|&at| at < chain.end) {
        let mut groups = [Group::default(); MAX_GROUPS];
        let mut n = 0;
        let mut at = start;
        let mut sep = 0;
        while n < MAX_GROUPS {
            let end = run_end(b, at);
            groups[n] = Group {
                start: at,
                end,
                sep,
            };
            n += 1;
            match (b.get(end), b.get(end + 1)) {
                (Some(&s @ (b' ' | b'-' | b'.')), Some(d)) if d.is_ascii_digit() => {
                    sep = s;
                    at = end + 1;
                }
                _ => break,
            }
        }
        let found = (1..=n)
            .rev()
            .find_map(|k| groups.get(..k).and_then(|g| classify(b, g)));
        match found {
            Some((kind, range)) => {
                i = range.end;
                hit(kind, range);
            }
            None => i = groups[0].end,
        }
    }
    i
}

/// The position of the first ASCII digit in `b` at or after `from`, looking at 32 bytes at
/// a time.
fn next_digit(b: &[u8], from: usize) -> Option<usize> {
    let rest = b.get(from..)?;
    let mut chunks = rest.chunks_exact(32);
    let mut offset = from;
    for chunk in chunks.by_ref() {
        // A branch-free fold the compiler turns into vector compares.
        if chunk
            .iter()
            .fold(false, |seen, c| seen | c.is_ascii_digit())
        {
            return chunk
                .iter()
                .position(u8::is_ascii_digit)
                .map(|k| offset + k);
        }
        offset += 32;
    }
    chunks
        .remainder()
        .iter()
        .position(u8::is_ascii_digit)
        .map(|k| offset + k)
}

/// The end of the run of digits starting at `at`.
fn run_end(b: &[u8], at: usize) -> usize {
    let rest = b.get(at..).unwrap_or_default();
    at + rest
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(rest.len())
}

/// What the chain of digit groups `g` (all of it) is, if anything.
fn classify(b: &[u8], g: &[Group]) -> Option<(PiiKind, Range<usize>)> {
    let first = g.first()?;
    let last = g.last()?;
    let range = first.start..last.end;
    if part_of_decimal(b, &range) {
        return None;
    }
    let digits = |grp: &Group| b.get(grp.start..grp.end).unwrap_or_default();
    match g {
        [one] => {
            let d = digits(one);
            let with_x = matches!(b.get(one.end), Some(b'X' | b'x'));
            let id_range = if d.len() == 17 && with_x {
                range.start..range.end + 1
            } else {
                range.clone()
            };
            if matches!(id_range.len(), 15 | 18)
                && !letter_beside(b, &id_range)
                && b.get(id_range.clone())
                    .and_then(|s| std::str::from_utf8(s).ok())
                    .is_some_and(resident_id_valid)
            {
                return Some((PiiKind::ResidentId, id_range));
            }
            let mobile = match d {
                [b'8', b'6', rest @ ..] | [b'0', b'0', b'8', b'6', rest @ ..] => is_mobile(rest),
                _ => is_mobile(d),
            };
            if mobile {
                return Some((PiiKind::Mobile, with_plus(b, d, range)));
            }
            if (13..=19).contains(&d.len()) && !letter_beside(b, &range) && luhn_bytes(d) {
                return Some((PiiKind::BankCard, range));
            }
            None
        }
        _ => {
            if let Some(id) = resident_id_in_groups(b, g) {
                return Some((PiiKind::ResidentId, id));
            }
            // Mobile in groups: 138 0013 8000 (138-0013-8000, 138.0013.8000: one separator
            // throughout), after an optional 86 / 0086 prefix group.
            // a dot after 86 is a decimal point (86.13912345678, a longitude), not a
            // prefix, unless a plus says it is one (+86.138.0013.8000)
            let plus = first.start > 0 && b.get(first.start - 1) == Some(&b'+');
            let prefixed = matches!(digits(first), b"86" | b"0086")
                && g.get(1).is_some_and(|n| n.sep != b'.' || plus);
            let body = if prefixed { g.get(1..)? } else { g };
            let mobile = match body {
                [one] => is_mobile(digits(one)),
                [a, b2, c] => {
                    a.len() == 3
                        && b2.len() == 4
                        && c.len() == 4
                        && b2.sep == c.sep
                        && is_mobile(&[digits(a), digits(b2), digits(c)].concat())
                }
                _ => false,
            };
            if mobile {
                return Some((PiiKind::Mobile, with_plus(b, digits(first), range)));
            }
            // Card in groups of four, the last of one to four, one separator throughout.
            let head = g.get(..g.len() - 1)?;
            let sep = g.get(1)?.sep;
            let total: usize = g.iter().map(Group::len).sum();
            let card = head.iter().all(|grp| grp.len() == 4)
                && (1..=4).contains(&last.len())
                && g.iter().skip(1).all(|grp| grp.sep == sep)
                && (13..=19).contains(&total)
                && !letter_beside(b, &range)
                && luhn_groups(g.iter().map(digits));
            card.then_some((PiiKind::BankCard, range))
        }
    }
}

/// Where the digit groups `g` are a resident ID written in groups, as forms and letters
/// print it: region, birth date and sequence with its check character (`110105 19491231
/// 002X`, 6-8-4), or the old 15-digit form (6-6-3), one separator throughout. The ID must
/// be valid (check character, birth date) and no letter may touch it; like grouped mobile
/// and card numbers, it is found among other groups of a longer chain (the safe side).
fn resident_id_in_groups(b: &[u8], g: &[Group]) -> Option<Range<usize>> {
    let [region, born, rest] = g else {
        return None;
    };
    let digits = |grp: &Group| b.get(grp.start..grp.end).unwrap_or_default();
    let with_x = matches!(b.get(rest.end), Some(b'X' | b'x'));
    let end = match (region.len(), born.len(), rest.len()) {
        (6, 8, 4) | (6, 6, 3) => rest.end,
        (6, 8, 3) if with_x => rest.end + 1,
        _ => return None,
    };
    let range = region.start..end;
    if born.sep != rest.sep || letter_beside(b, &range) {
        return None;
    }
    let mut id = [digits(region), digits(born), digits(rest)].concat();
    if end > rest.end {
        id.extend_from_slice(b.get(rest.end..end)?);
    }
    std::str::from_utf8(&id)
        .is_ok_and(resident_id_valid)
        .then_some(range)
}

/// `range` widened over a `+` just before it when the number starts with the 86 prefix.
fn with_plus(b: &[u8], first_digits: &[u8], range: Range<usize>) -> Range<usize> {
    let plus =
        first_digits.starts_with(b"86") && range.start > 0 && b.get(range.start - 1) == Some(&b'+');
    if plus {
        range.start - 1..range.end
    } else {
        range
    }
}

/// Whether the 11 digits `d` are a PRC mobile number: 1, then 3 to 9, then nine digits.
fn is_mobile(d: &[u8]) -> bool {
    matches!(d, [b'1', b'3'..=b'9', rest @ ..] if rest.len() == 9 && rest.iter().all(u8::is_ascii_digit))
}

/// Whether an ASCII letter or digit touches `range` on either side.
fn letter_beside(b: &[u8], range: &Range<usize>) -> bool {
    let before = range
        .start
        .checked_sub(1)
        .and_then(|i| b.get(i))
        .is_some_and(u8::is_ascii_alphanumeric);
    let after = b.get(range.end).is_some_and(u8::is_ascii_alphanumeric);
    before || after
}

/// Whether `range` is one side of a decimal number such as `12345678901234.56`.
fn part_of_decimal(b: &[u8], range: &Range<usize>) -> bool {
    let before = range.start >= 2
        && b.get(range.start - 1) == Some(&b'.')
        && b.get(range.start - 2).is_some_and(u8::is_ascii_digit);
    let after =
        b.get(range.end) == Some(&b'.') && b.get(range.end + 1).is_some_and(u8::is_ascii_digit);
    before || after
}

/// Calls `hit` for every e-mail address in `b`.
fn find_emails(b: &[u8], hit: &mut dyn FnMut(Range<usize>)) {
    let is_local = |c: &u8| c.is_ascii_alphanumeric() || b"._%+-".contains(c);
    let is_domain = |c: &u8| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'-';
    let mut from = 0;
    while let Some(offset) = b
        .get(from..)
        .and_then(|rest| rest.iter().position(|&c| c == b'@'))
    {
        let at = from + offset;
        from = at + 1;
        let before = b.get(..at).unwrap_or_default();
        let mut start = before
            .iter()
            .rposition(|c| !is_local(c))
            .map_or(0, |i| i + 1);
        while b.get(start) == Some(&b'.') {
            start += 1;
        }
        if start >= at {
            continue;
        }
        let after = b.get(at + 1..).unwrap_or_default();
        let mut end = at
            + 1
            + after
                .iter()
                .position(|c| !is_domain(c))
                .unwrap_or(after.len());
        while end > at + 1 && matches!(b.get(end - 1), Some(b'.' | b'-')) {
            end -= 1;
        }
        if domain_valid(b.get(at + 1..end).unwrap_or_default()) {
            hit(start..end);
            from = end;
        }
    }
}

/// Whether `d` is a plausible domain: two or more labels, the last of two or more letters.
fn domain_valid(d: &[u8]) -> bool {
    let mut labels = 0;
    let mut last: &[u8] = &[];
    for label in d.split(|&c| c == b'.') {
        if label.is_empty() || label.len() > 63 || label.starts_with(b"-") || label.ends_with(b"-")
        {
            return false;
        }
        labels += 1;
        last = label;
    }
    labels >= 2 && last.len() >= 2 && last.iter().all(u8::is_ascii_alphabetic)
}

/// Whether `s` is a PRC resident identity number.
///
/// 18 characters: 17 digits and an ISO 7064 MOD 11-2 check character (`0`-`9` or `X`/`x`),
/// a region code starting with 1 to 8, and a real birth date YYYYMMDD from 1900 to 2099.
/// 15 digits (the old form): a region code starting with 1 to 8 and a real date 19YYMMDD.
pub fn resident_id_valid(s: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let b = s.as_bytes();
    if let Ok(id) = <&[u8; 18]>::try_from(b) {
        let (body, check) = id.split_at(17);
        if !body.iter().all(u8::is_ascii_digit) || !(b'1'..=b'8').contains(&body[0]) {
            return false;
        }
        let year = number(&body[6..10]);
        if !(1900..=2099).contains(&year)
            || !date_valid(year, number(&body[10..12]), number(&body[12..14]))
        {
            return false;
        }
        let sum: u32 = body
            .iter()
            .zip(WEIGHTS)
            .map(|(d, w)| u32::from(d - b'0') * w)
            .sum();
        let expected = CHECK.get((sum % 11) as usize).copied();
        check.first().map(u8::to_ascii_uppercase) == expected
    } else if let Ok(id) = <&[u8; 15]>::try_from(b) {
        id.iter().all(u8::is_ascii_digit)
            && (b'1'..=b'8').contains(&id[0])
            && date_valid(
                1900 + number(&id[6..8]),
                number(&id[8..10]),
                number(&id[10..12]),
            )
    } else {
        false
    }
}

/// The value of a short run of ASCII digits.
fn number(digits: &[u8]) -> u32 {
    digits
        .iter()
        .fold(0, |n, d| n * 10 + u32::from(d.wrapping_sub(b'0')))
}

/// Whether year, month and day make a real date of the Gregorian calendar.
fn date_valid(year: u32, month: u32, day: u32) -> bool {
    // Every fourth year, save centuries not divisible by 400.
    let leap = matches!((year % 4, year % 100, year % 400), (0, 1.., _) | (_, _, 0));
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// Whether `digits` (ASCII digits only, at least two) pass the Luhn check.
pub fn luhn_valid(digits: &str) -> bool {
    luhn_bytes(digits.as_bytes())
}

/// Whether the digits of `groups` (at most 19 in all, else false) pass the Luhn check.
fn luhn_groups<'a>(groups: impl Iterator<Item = &'a [u8]>) -> bool {
    let mut all = [0u8; 19];
    let mut n = 0;
    for group in groups {
        let Some(slot) = all.get_mut(n..n + group.len()) else {
            return false;
        };
        slot.copy_from_slice(group);
        n += group.len();
    }
    luhn_bytes(all.get(..n).unwrap_or_default())
}

fn luhn_bytes(d: &[u8]) -> bool {
    if d.len() < 2 || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let v = u32::from(c - b'0');
            if i % 2 == 1 {
                let v2 = v * 2;
                if v2 > 9 { v2 - 9 } else { v2 }
            } else {
                v
            }
        })
        .sum();
    matches!(sum % 10, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 18-character ID with `body` (17 digits) and its check character.
    fn with_check(body: &str) -> String {
        let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        let sum: u32 = body
            .bytes()
            .zip(weights)
            .map(|(d, w)| (d - b'0') as u32 * w)
            .sum();
        let check = b"10X98765432"[(sum % 11) as usize] as char;
        format!("{body}{check}")
    }

    /// `prefix` completed with its Luhn check digit.
    fn with_luhn(prefix: &str) -> String {
        (0..10)
            .map(|d| format!("{prefix}{d}"))
            .find(|s| luhn_valid(s))
            .unwrap()
    }

    fn all() -> PiiDetector {
        PiiDetector::new(&PiiKind::ALL)
    }

    fn kinds(text: &str) -> Vec<(PiiKind, &str)> {
        all()
            .find(text)
            .into_iter()
            .map(|m| (m.kind, &text[m.range]))
            .collect()
    }

    #[test]
    fn kind_names_match_serde() {
        for kind in PiiKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }

    #[test]
    fn resident_ids() {
        assert!(resident_id_valid("11010519491231002X"));
        assert!(resident_id_valid("11010519491231002x"));
        assert_eq!(with_check("11010519491231002"), "11010519491231002X");
        assert_eq!(with_check("11010519491231001"), "110105194912310011");
        for body in [
            "44030120000229123",
            "32010219851107004",
            "81000020991231999",
        ] {
            let id = with_check(body);
            assert!(resident_id_valid(&id), "{id}");
        }
        // Wrong check digit.
        assert!(!resident_id_valid("110105194912310021"));
        assert!(!resident_id_valid("110105194912310012"));
        // Leap day only in leap years; Feb 30 and month 13 never.
        assert!(resident_id_valid(&with_check("11010520000229001")));
        assert!(!resident_id_valid(&with_check("11010519000229001")));
        assert!(!resident_id_valid(&with_check("11010519990229001")));
        assert!(!resident_id_valid(&with_check("11010520000230001")));
        assert!(!resident_id_valid(&with_check("11010520001301001")));
        assert!(!resident_id_valid(&with_check("11010518991231001")));
        // Region must start with 1 to 8.
        assert!(!resident_id_valid(&with_check("91010519491231001")));
        assert!(!resident_id_valid(&with_check("01010519491231001")));
        // 15-digit form.
        assert!(resident_id_valid("110105491231002"));
        assert!(resident_id_valid("110105960229002"));
        assert!(!resident_id_valid("110105000229002"));
        assert!(!resident_id_valid("110105970229002"));
        assert!(!resident_id_valid("110105491331002"));
        assert!(!resident_id_valid("11010549123100X"));
        // Other lengths and characters.
        assert!(!resident_id_valid("1101051949123100"));
        assert!(!resident_id_valid("11010519491231002Y"));
        assert!(!resident_id_valid(""));
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid("4111111111111111"));
        assert!(!luhn_valid("4111111111111112"));
        let unionpay = with_luhn("622202123456789");
        assert_eq!(unionpay.len(), 16);
        assert!(luhn_valid(&unionpay));
        assert!(!luhn_valid("4111 1111 1111 1111"));
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("0"));
    }

    #[test]
    fn finds_mobiles() {
        for text in [
            "电话13800138000。",
            "Tel: +86 13800138000",
            "+8613912345678",
            "86-13800138000",
            "0086 13800138000",
            "手机 138 0013 8000 联系",
            "138-0013-8000",
            "+86 138 0013 8000",
            "call19912345678now",
            "手机 138.0013.8000。",
            "+86.138.0013.8000",
        ] {
            let found = kinds(text);
            assert_eq!(found.len(), 1, "{text}: {found:?}");
            assert_eq!(found[0].0, PiiKind::Mobile, "{text}");
        }
        assert_eq!(kinds("+86 13800138000")[0].1, "+86 13800138000");
        assert_eq!(kinds("x+8613800138000")[0].1, "+8613800138000");
    }

    #[test]
    fn ignores_numbers_that_are_not_personal_data() {
        for text in [
            "（2026）吉01民初123号",
            "2026-01-15 判决",
            "20260115",
            "金额 1,234,567.89 元",
            "金额 13800138000.50 元",
            "电话 010-12345678-8001 转 8001",
            "138001380001",
            "第12800138000 号",
            "11000138000",
            "138 00138000",
            "138-0013 8000",
            "138.0013-8000",
            "138.00138000",
            "IP 192.168.100.200 端口",
            "版本 13.8001.3800",
            "圆周率 3.14159265358979",
            "经度 86.13912345678",
            "0086.13800138000",
            "86.138.0013.8000",
            "4111111111111112",
            "4111 1111 1111 1112",
            "SN4111111111111111",
            "ID A11010519491231002X",
            "11010519491231002X5",
            "110105194912310021",
            "版本 1.13800138000",
            "纯中文没有数字",
            "user at example dot com",
        ] {
            assert_eq!(kinds(text), vec![], "{text}");
        }
    }

    #[test]
    fn finds_ids_and_cards() {
        let unionpay = with_luhn("622202123456789");
        let text = format!("身份证11010519491231002X，卡号{unionpay}，旧证110105491231002");
        assert_eq!(
            kinds(&text),
            vec![
                (PiiKind::ResidentId, "11010519491231002X"),
                (PiiKind::BankCard, unionpay.as_str()),
                (PiiKind::ResidentId, "110105491231002"),
            ]
        );
        assert_eq!(
            kinds("卡 4111 1111 1111 1111 止"),
            vec![(PiiKind::BankCard, "4111 1111 1111 1111")]
        );
        assert_eq!(
            kinds("4111-1111-1111-1111"),
            vec![(PiiKind::BankCard, "4111-1111-1111-1111")]
        );
        assert_eq!(
            kinds("4111.1111.1111.1111"),
            vec![(PiiKind::BankCard, "4111.1111.1111.1111")]
        );
        let nineteen = with_luhn("621700000000000000");
        let grouped = format!(
            "{} {} {} {} {}",
            &nineteen[..4],
            &nineteen[4..8],
            &nineteen[8..12],
            &nineteen[12..16],
            &nineteen[16..]
        );
        assert_eq!(kinds(&grouped), vec![(PiiKind::BankCard, grouped.as_str())]);
    }

    #[test]
    fn finds_ids_written_in_groups() {
        let id = with_check("11010519491231002"); // ends in X
        let old = "110105491231002";
        for sep in [" ", "-", "."] {
            let grouped = format!("{}{sep}{}{sep}{}", &id[..6], &id[6..14], &id[14..]);
            let text = format!("身份证号：{grouped}。");
            assert_eq!(kinds(&text), vec![(PiiKind::ResidentId, grouped.as_str())]);
            let masked = all().mask(&text).unwrap();
            assert_eq!(
                masked,
                format!("身份证号：110105{sep}********{sep}002X。"),
                "separators kept, the middle hidden"
            );
            let old_grouped = format!("{}{sep}{}{sep}{}", &old[..6], &old[6..12], &old[12..]);
            assert_eq!(
                kinds(&old_grouped),
                vec![(PiiKind::ResidentId, old_grouped.as_str())]
            );
        }
        let digits_only = with_check("44030120000229123");
        let grouped = format!(
            "{} {} {}",
            &digits_only[..6],
            &digits_only[6..14],
            &digits_only[14..]
        );
        assert_eq!(
            kinds(&grouped),
            vec![(PiiKind::ResidentId, grouped.as_str())]
        );
        // not an ID: a wrong check character, a bad date, mixed separators, another
        // layout, or a letter touching it
        let wrong = format!("{} {} {}", &id[..6], &id[6..14], "0021");
        assert_eq!(kinds(&wrong), vec![]);
        let bad_date = with_check("11010519491331002");
        assert_eq!(
            kinds(&format!(
                "{} {} {}",
                &bad_date[..6],
                &bad_date[6..14],
                &bad_date[14..]
            )),
            vec![]
        );
        assert_eq!(
            kinds(&format!("{} {}-{}", &id[..6], &id[6..14], &id[14..])),
            vec![]
        );
        assert_eq!(
            kinds(&format!("{} {} {}", &id[..4], &id[4..14], &id[14..])),
            vec![]
        );
        assert_eq!(
            kinds(&format!("A{} {} {}", &id[..6], &id[6..14], &id[14..])),
            vec![]
        );
    }

    #[test]
    fn id_takes_precedence_over_card() {
        // Find a valid 18-digit ID that also passes Luhn.
        let id = (0..1000)
            .map(|n| with_check(&format!("44030119900101{n:03}")))
            .find(|id| id.bytes().all(|c| c.is_ascii_digit()) && luhn_valid(id))
            .unwrap();
        assert_eq!(kinds(&id), vec![(PiiKind::ResidentId, id.as_str())]);
        // With IDs not wanted, it is still not reported as a card.
        let cards = PiiDetector::new(&[PiiKind::BankCard]);
        assert_eq!(cards.find(&id), vec![]);
    }

    #[test]
    fn finds_emails() {
        assert_eq!(
            kinds("联系 zhang.san+x@court.gov.cn。"),
            vec![(PiiKind::Email, "zhang.san+x@court.gov.cn")]
        );
        assert_eq!(
            kinds("13800138000@qq.com"),
            vec![(PiiKind::Email, "13800138000@qq.com")]
        );
        assert_eq!(
            kinds("a@b.co, c@d.org."),
            vec![(PiiKind::Email, "a@b.co"), (PiiKind::Email, "c@d.org")]
        );
        for text in [
            "@example.com",
            "a@localhost",
            "a@b..com",
            "a@b.c1",
            "微博@某人",
        ] {
            assert_eq!(kinds(text), vec![], "{text}");
        }
    }

    #[test]
    fn only_the_chosen_kinds() {
        let mobiles = PiiDetector::new(&[PiiKind::Mobile]);
        let text = "a@b.com 13800138000 11010519491231002X";
        let found = mobiles.find(text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, PiiKind::Mobile);
        assert_eq!(PiiDetector::new(&[]).find(text), vec![]);
    }

    #[test]
    fn detector_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<PiiDetector>();
    }

    #[test]
    fn masks() {
        let d = all();
        assert_eq!(d.mask("11010519491231002X").unwrap(), "110105********002X");
        assert_eq!(d.mask("110105491231002").unwrap(), "110105*****1002");
        assert_eq!(d.mask("13800138000").unwrap(), "138****8000");
        assert_eq!(d.mask("+86 13800138000").unwrap(), "+86 138****8000");
        assert_eq!(d.mask("138-0013-8000").unwrap(), "138-****-8000");
        assert_eq!(d.mask("138.0013.8000").unwrap(), "138.****.8000");
        assert_eq!(d.mask("+86 138 0013 8000").unwrap(), "+86 138 **** 8000");
        assert_eq!(d.mask("4111111111111111").unwrap(), "411111******1111");
        assert_eq!(
            d.mask("4111 1111 1111 1111").unwrap(),
            "4111 11** **** 1111"
        );
        assert_eq!(
            d.mask("mail zhang.san@court.gov.cn!").unwrap(),
            "mail z********@court.gov.cn!"
        );
        assert_eq!(d.mask("没有个人信息 2026-01-15"), None);
    }

    #[test]
    fn masks_a_csv_line() {
        let id = with_check("11010519491231001");
        assert!(resident_id_valid(&id));
        let line = format!("张三,{id},13800138000\n");
        assert_eq!(
            all().mask(&line).unwrap(),
            "张三,110105********0011,138****8000\n"
        );
        // The line as first written carries a wrong check digit: only the mobile is masked.
        assert_eq!(
            all().mask("张三,110105194912310021,13800138000").unwrap(),
            "张三,110105194912310021,138****8000"
        );
    }

    #[test]
    fn long_runs_of_digits_are_quick_and_unmatched() {
        let digits = "1".repeat(100_000);
        assert_eq!(kinds(&digits), vec![]);
        let spaced = "1 ".repeat(50_000);
        assert_eq!(kinds(&spaced), vec![]);
        let ats = "a@".repeat(50_000);
        assert_eq!(kinds(&ats), vec![]);
    }

    /// A small deterministic generator for the differential tests.
    struct Xorshift(u64);

    impl Xorshift {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// Text made of digit runs, separators, letters, Chinese and real numbers, at random.
    fn random_text(rng: &mut Xorshift) -> String {
        let real = [
            "13800138000".to_string(),
            "+86 138 0013 8000".to_string(),
            "4111 1111 1111 1111".to_string(),
            "4111-1111-1111-1111".to_string(),
            "138.0013.8000".to_string(),
            "11010519491231002X".to_string(),
            "110105491231002".to_string(),
            with_luhn("622202123456789"),
        ];
        let mut text = String::new();
        let len = rng.below(300);
        while text.len() < len {
            match rng.below(12) {
                0 => text.push_str(&real[rng.below(real.len())]),
                1..=4 => {
                    for _ in 0..=rng.below(8) {
                        text.push(char::from(b'0' + rng.below(10) as u8));
                    }
                }
                5 | 6 => text.push([' ', '-', ' ', '-', '.', ','][rng.below(6)]),
                7 => text.push(['x', 'X', '+', 'a', '@'][rng.below(5)]),
                _ => text.push(['机', '，', '号', '年'][rng.below(4)]),
            }
        }
        text
    }

    #[test]
    fn the_fast_scan_finds_what_the_full_scan_finds() {
        let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15);
        let mut hits = 0;
        for _ in 0..50_000 {
            let text = random_text(&mut rng);
            let b = text.as_bytes();
            let mut full = Vec::new();
            numbers_in_chain(b, 0..b.len(), &mut |kind, range| full.push((kind, range)));
            let fast: Vec<_> = all()
                .find(&text)
                .into_iter()
                .filter(|m| m.kind != PiiKind::Email)
                .map(|m| (m.kind, m.range))
                .collect();
            if !text.contains('@') {
                assert_eq!(fast, full, "{text:?}");
            }
            // The filter never misses a chain of MIN_DIGITS bytes or more.
            let mut longest = 0;
            let mut run = 0;
            for (i, c) in b.iter().enumerate() {
                let joins = matches!(c, b' ' | b'-' | b'.')
                    && i > 0
                    && b[i - 1].is_ascii_digit()
                    && b.get(i + 1).is_some_and(u8::is_ascii_digit);
                run = if c.is_ascii_digit() || joins {
                    run + 1
                } else {
                    0
                };
                longest = longest.max(run);
            }
            if longest >= MIN_DIGITS {
                assert!(may_hold_number(b), "{text:?}");
            }
            hits += full.len();
        }
        assert!(hits > 1000, "the generator makes real numbers: {hits}");
    }

    #[test]
    fn numbers_across_block_bounds_are_found() {
        for pad in 40..140 {
            for number in ["13800138000", "4111 1111 1111 1111", "110105491231002"] {
                let lead = "机".repeat(pad / 3) + &":".repeat(pad % 3);
                assert_eq!(lead.len(), pad);
                let text = format!("{lead}{number}止");
                let found = kinds(&text);
                assert_eq!(found.len(), 1, "{pad} {number}");
                assert_eq!(found[0].1, number);
            }
            let text = format!("{}2026-01-15 {}", "a".repeat(pad), "12:30");
            assert_eq!(kinds(&text), vec![]);
        }
        // A line of short runs only is passed over by the filter.
        let dates = "2026-01-15，（2026）吉01民初123号，123456.78元，".repeat(40);
        assert!(!may_hold_number(dates.as_bytes()));
        assert!(may_hold_number(b"x 138 0013 8000"));
        assert!(may_hold_number(b"12345678901"));
        assert!(!may_hold_number(b"1234567890"));
        assert!(!may_hold_number(b""));
    }

    /// Case-record CSV lines full of short digit runs and no personal data, about `size`
    /// bytes in all.
    fn case_records(size: usize) -> String {
        let mut text = String::with_capacity(size + 256);
        let mut n = 0u64;
        while text.len() < size {
            n += 1;
            text.push_str(&format!(
                "{n},2026-01-{:02},（2026）吉01民初{}号,张三诉李四借款合同纠纷,本金{}.{:02}元，\
                 利息{}.{:02}元，于2025年{}月{}日起算，案件受理费{}元\n",
                n % 28 + 1,
                n % 9000 + 100,
                n * 7919 % 1_000_000,
                n % 100,
                n * 31 % 100_000,
                n % 97,
                n % 12 + 1,
                n % 28 + 1,
                n % 5000 + 50,
            ));
        }
        text
    }

    /// Throughput of `find` and `mask` on lines without personal data. Run with
    /// `cargo test --release -- --ignored --nocapture pii_speed`.
    #[test]
    #[ignore]
    fn pii_speed() {
        let text = case_records(256 << 20);
        let d = all();
        let mib = text.len() as f64 / f64::from(1 << 20);
        let started = std::time::Instant::now();
        let found: usize = text.split_inclusive('\n').map(|l| d.find(l).len()).sum();
        let find = started.elapsed().as_secs_f64();
        let started = std::time::Instant::now();
        let masked = text
            .split_inclusive('\n')
            .filter(|l| d.mask(l).is_some())
            .count();
        let mask = started.elapsed().as_secs_f64();
        let started = std::time::Instant::now();
        let lines = text.split_inclusive('\n').count();
        let split = started.elapsed().as_secs_f64();
        assert_eq!((found, masked), (0, 0));
        println!(
            "{mib:.0} MiB, {lines} lines: find {:.0} MiB/s, mask {:.0} MiB/s (line split alone {:.0} MiB/s)",
            mib / find,
            mib / mask,
            mib / split
        );
    }
}
