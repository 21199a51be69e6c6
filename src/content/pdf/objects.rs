//! PDF objects, as far as stream and font dictionaries need them: a parser of one object from a
//! captured byte slice (dictionaries, arrays, names with `#xx` decoded, numbers, references,
//! strings passed over).

use super::MAX_NESTING;
use super::lexical::{is_regular, is_white, unescape_name};

/// A PDF object, as far as a stream dictionary needs it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Null,
    Bool,
    Int(i64),
    Real,
    Str,
    Name(Vec<u8>),
    /// A reference `n g R`: the object number.
    Ref(u32),
    Array(Vec<Value>),
    Dict(Vec<(Vec<u8>, Value)>),
}

/// Parses one PDF object from a byte slice (a captured stream dictionary).
pub(super) struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    /// The object that makes up the whole of `s` (white space and comments around it aside).
    pub(super) fn whole(s: &[u8]) -> Option<Value> {
        let mut p = Parser { s, at: 0 };
        let value = p.value(0)?;
        p.skip_white();
        (p.at == s.len()).then_some(value)
    }

    fn skip_white(&mut self) {
        while let Some(&b) = self.s.get(self.at) {
            if is_white(b) {
                self.at += 1;
            } else if b == b'%' {
                while self
                    .s
                    .get(self.at)
                    .is_some_and(|&b| b != b'\n' && b != b'\r')
                {
                    self.at += 1;
                }
            } else {
                break;
            }
        }
    }

    fn word(&mut self) -> &[u8] {
        let start = self.at;
        while self.s.get(self.at).is_some_and(|&b| is_regular(b)) {
            self.at += 1;
        }
        &self.s[start..self.at]
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_NESTING {
            return None;
        }
        self.skip_white();
        let b = *self.s.get(self.at)?;
        match b {
            b'<' if self.s.get(self.at + 1) == Some(&b'<') => {
                self.at += 2;
                let mut entries = Vec::new();
                loop {
                    self.skip_white();
                    if self.s[self.at..].starts_with(b">>") {
                        self.at += 2;
                        return Some(Value::Dict(entries));
                    }
                    let Value::Name(key) = self.value(depth + 1)? else {
                        return None;
                    };
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                }
            }
            b'<' => {
                let end = self.s[self.at..].iter().position(|&b| b == b'>')?;
                self.at += end + 1;
                Some(Value::Str)
            }
            b'(' => {
                let mut nest = 0u32;
                while let Some(&b) = self.s.get(self.at) {
                    self.at += 1;
                    match b {
                        b'\\' => self.at += 1,
                        b'(' => nest += 1,
                        b')' => {
                            nest -= 1;
                            if nest == 0 {
                                return Some(Value::Str);
                            }
                        }
                        _ => {}
                    }
                }
                None
            }
            b'[' => {
                self.at += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_white();
                    if self.s.get(self.at) == Some(&b']') {
                        self.at += 1;
                        return Some(Value::Array(items));
                    }
                    items.push(self.value(depth + 1)?);
                }
            }
            b'/' => {
                self.at += 1;
                let raw = self.word();
                Some(Value::Name(unescape_name(raw)))
            }
            _ if is_regular(b) => {
                let word = self.word().to_vec();
                match word.as_slice() {
                    b"true" | b"false" => return Some(Value::Bool),
                    b"null" => return Some(Value::Null),
                    _ => {}
                }
                let text = std::str::from_utf8(&word).ok()?;
                if let Ok(n) = text.parse::<i64>() {
                    // `n g R` is a reference.
                    let back = self.at;
                    self.skip_white();
                    let generation = self.word().to_vec();
                    self.skip_white();
                    let r = self.word().to_vec();
                    if n >= 0
                        && !generation.is_empty()
                        && generation.iter().all(u8::is_ascii_digit)
                        && r == b"R"
                    {
                        return Some(Value::Ref(u32::try_from(n).unwrap_or(u32::MAX)));
                    }
                    self.at = back;
                    return Some(Value::Int(n));
                }
                let numeric = text
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b"+-.".contains(&b));
                (numeric && text.bytes().any(|b| b.is_ascii_digit())).then_some(Value::Real)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_dictionaries_parse() {
        let v = Parser::whole(
            b"<< /A [1 -2.5 .5 (s\\)(x)) <0A> /N#61me 3 0 R] /B << /C true /D null >> >> % c",
        )
        .unwrap();
        let Value::Dict(entries) = v else {
            panic!("not a dict")
        };
        assert_eq!(entries[0].0, b"A");
        assert_eq!(
            entries[0].1,
            Value::Array(vec![
                Value::Int(1),
                Value::Real,
                Value::Real,
                Value::Str,
                Value::Str,
                Value::Name(b"Name".to_vec()),
                Value::Ref(3),
            ])
        );
        assert!(Parser::whole(b"<< /A 1 >> junk").is_none());
        assert!(Parser::whole(b"<< /A (open >>").is_none());
        assert!(Parser::whole(&[b'['; 200]).is_none());
    }
}
