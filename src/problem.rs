//! A problem found in a configuration or policy file, named by file, line and key.
//!
//! Every loader collects all the problems it can find instead of stopping at the first, so
//! that `isogate check` lists them all at once.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The dotted key, when known (e.g. `channel[1].from`).
    pub key: Option<String>,
    /// What is wrong and, where it helps, how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// All the problems of one load, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// A hint for an operator, from the kind of an I/O error met at start-up.
pub fn hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            " (it does not exist: create it, or fix the path in the configuration)"
        }
        std::io::ErrorKind::PermissionDenied => {
            " (permission denied: give the service user access, e.g. chown or chmod)"
        }
        std::io::ErrorKind::AddrInUse => {
            " (another process holds this address: stop it, or choose another port in the configuration)"
        }
        std::io::ErrorKind::AddrNotAvailable => {
            " (no interface of this host has this address: fix it in the configuration)"
        }
        _ => "",
    }
}

/// A source file being checked: turns byte spans into lines and collects problems.
pub struct Source<'a> {
    /// The file's path, as given.
    pub file: &'a Path,
    /// The file's text.
    pub text: &'a str,
    /// The problems found so far.
    pub problems: Vec<Problem>,
}

impl<'a> Source<'a> {
    /// A source with no problems yet.
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        Source {
            file,
            text,
            problems: Vec::new(),
        }
    }

    /// The 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    /// Records a problem at a span (or at no particular line).
    pub fn report(&mut self, span: Option<Range<usize>>, key: &str, message: impl Into<String>) {
        let line = span.map(|s| self.line_of(s.start));
        self.problems.push(Problem {
            file: self.file.to_path_buf(),
            line,
            key: (!key.is_empty()).then(|| key.to_string()),
            message: message.into(),
        });
    }

    /// Parses the whole file as TOML into `T`, reporting a syntax or shape error.
    pub fn parse<T: serde::de::DeserializeOwned>(&mut self) -> Option<T> {
        match toml::from_str::<T>(self.text) {
            Ok(v) => Some(v),
            Err(e) => {
                let msg = e.message().trim().to_string();
                let key = e
                    .span()
                    .and_then(|span| {
                        key_at(self.text, span.start).or_else(|| {
                            // a document with a key twice does not parse: name it from
                            // its table's header line and the key's own text
                            msg.starts_with("duplicate key")
                                .then(|| duplicate_key(self.text, span))
                                .flatten()
                        })
                    })
                    .unwrap_or_default();
                self.report(e.span(), &key, msg);
                None
            }
        }
    }

    /// Ends the check: the value if there were no problems, else all of them.
    pub fn finish<T>(self, value: T) -> Result<T, Problems> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(Problems(self.problems))
        }
    }
}

/// The dotted key (`node.suite`, `channel[1].from`: arrays counted from 0) of the key or
/// value that holds byte `offset` of the TOML document `text`, for an error that gives
/// only a position (a value of the wrong type, an unknown key). `None` when the document does not parse or no
/// value lies there.
pub fn key_at(text: &str, offset: usize) -> Option<String> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let mut path = Vec::new();
    find_in_table(doc.get_ref(), offset, &mut path).then(|| path.concat())
}

/// Searches `table`'s values for the one holding `offset`, pushing the path's parts.
fn find_in_table(table: &toml::de::DeTable<'_>, offset: usize, path: &mut Vec<String>) -> bool {
    for (k, v) in table.iter() {
        let part = if path.is_empty() {
            k.get_ref().to_string()
        } else {
            format!(".{}", k.get_ref())
        };
        path.push(part);
        if k.span().contains(&offset) || find_in_value(v, offset, path) {
            return true;
        }
        path.pop();
    }
    false
}

/// Whether `value` holds `offset`: a scalar or an array of scalars whose span does, or a
/// table or array element below it that does (their parts pushed onto `path`).
fn find_in_value(
    value: &toml::Spanned<toml::de::DeValue<'_>>,
    offset: usize,
    path: &mut Vec<String>,
) -> bool {
    use toml::de::DeValue;
    match value.get_ref() {
        DeValue::Table(t) => find_in_table(t, offset, path),
        DeValue::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                path.push(format!("[{i}]"));
                if find_in_value(e, offset, path) {
                    return true;
                }
                path.pop();
            }
            value.span().contains(&offset)
        }
        _ => value.span().contains(&offset),
    }
}

/// The dotted key (`intake.idle_ms`, `channel[1].name`, `a.b` for a dotted key or a table
/// `[a.b]` defined twice) of a key that TOML's reader found twice at `span` of `text`: the
/// key as written before its `=`, under the last table header line (`[t]`, `[[t]]`,
/// counted from 0) above it. `None` when the span is not a key of its own line (a key
/// inside an inline table): no name rather than a wrong one.
fn duplicate_key(text: &str, span: Range<usize>) -> Option<String> {
    let line_start = text.get(..span.start)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    // a table defined twice: its header is the key
    if let Some((header, _)) = table_header(line) {
        return Some(header.to_string());
    }
    let eq = line.find('=')?;
    if span.start - line_start >= eq {
        return None;
    }
    let name = unquote(line[..eq].trim());
    if name.is_empty() || name.contains(['{', '[']) {
        return None;
    }
    let mut table: Option<String> = None;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for line in text[..line_start].lines() {
        let Some((header, array)) = table_header(line) else {
            continue;
        };
        table = Some(if array {
            let n = seen.entry(header).or_default();
            *n += 1;
            format!("{header}[{}]", *n - 1)
        } else {
            header.to_string()
        });
    }
    Some(match table {
        Some(t) => format!("{t}.{name}"),
        None => name,
    })
}

/// A key as written, its parts' quotes taken off (`"a".'b'` → `a.b`).
fn unquote(key: &str) -> String {
    key.split('.')
        .map(|p| p.trim().trim_matches(['"', '\'']))
        .collect::<Vec<_>>()
        .join(".")
}

/// A table header line's name and whether it is an array of tables (`[[t]]`); `None` for
/// any other line.
fn table_header(line: &str) -> Option<(&str, bool)> {
    let line = line.split('#').next()?.trim();
    let (inner, array) = match line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
        Some(inner) => (inner, true),
        None => (line.strip_prefix('[')?.strip_suffix(']')?, false),
    };
    let inner = inner.trim();
    (!inner.is_empty() && !inner.contains(['[', ']', '=', ',', '{'])).then_some((inner, array))
}

/// Reads a file for checking, turning a read failure into a problem.
pub fn read(file: &Path) -> Result<String, Problems> {
    std::fs::read_to_string(file).map_err(|e| {
        Problems(vec![Problem {
            file: file.to_path_buf(),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
        }])
    })
}

/// Joins `p` to the directory of `base` unless it is absolute.
pub fn relative_to(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.parent().unwrap_or(Path::new(".")).join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_given_twice_is_named_by_its_table_and_line() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Doc {
            #[serde(default)]
            top: Option<i64>,
            intake: Option<toml::Table>,
            #[serde(default)]
            channel: Vec<toml::Table>,
        }
        let problem = |text: &str| {
            let mut src = Source::new(Path::new("court.toml"), text);
            assert!(src.parse::<Doc>().is_none(), "{text}");
            src.finish(()).unwrap_err().0.remove(0)
        };
        let cases = [
            (
                "[intake]\nidle_ms = 5000\nidle_ms = 6000\n",
                3,
                "intake.idle_ms",
            ),
            (
                "[[channel]]\nname = \"a\"\n\n[[channel]] # the second\nname = \"b\"\nname = \"c\"\n",
                6,
                "channel[1].name",
            ),
            ("top = 1\ntop = 2\n[intake]\n", 2, "top"),
            (
                "[intake]\nidle_ms = 1\n\n[intake]\nidle_ms = 2\n",
                4,
                "intake",
            ),
        ];
        for (text, line, key) in cases {
            let p = problem(text);
            assert_eq!(
                (p.line, p.key.as_deref()),
                (Some(line), Some(key)),
                "{text}: {p}"
            );
            assert!(p.message.starts_with("duplicate key"), "{p}");
        }
        assert_eq!(table_header("[[channel]] # x"), Some(("channel", true)));
        assert_eq!(table_header(" [intake] "), Some(("intake", false)));
        assert_eq!(table_header("x = [1]"), None);
        assert_eq!(table_header("[\"a\", \"b\"]"), None);
        // dotted keys and tables, quoted parts; a key inside an inline table is not named
        let cases = [
            ("[t]\na.b = 1\na.b = 2\n", Some("t.a.b")),
            ("[t]\n\"q\".'r' = 1\n\"q\".'r' = 2\n", Some("t.q.r")),
            ("[a.b]\nx = 1\n[a.b]\nx = 2\n", Some("a.b")),
            ("[t]\nv = [{ n = 1, n = 2 }]\n", None),
        ];
        for (text, key) in cases {
            let e = toml::from_str::<toml::Table>(text).unwrap_err();
            assert!(e.message().starts_with("duplicate key"), "{text}: {e}");
            assert_eq!(
                duplicate_key(text, e.span().unwrap()).as_deref(),
                key,
                "{text}"
            );
        }
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named_by_its_key() {
        let text = "[node]\nname = \"court\"\nsuite = true\n\n[[channel]]\nname = \"a\"\n\n[[channel]]\nname = \"b\"\ntemp_names = [\"*.part\", 7]\n";
        let at = |needle: &str| text.find(needle).unwrap();
        assert_eq!(key_at(text, at("true")).as_deref(), Some("node.suite"));
        assert_eq!(
            key_at(text, at("\"b\"")).as_deref(),
            Some("channel[1].name")
        );
        assert_eq!(
            key_at(text, at("7]")).as_deref(),
            Some("channel[1].temp_names[1]")
        );
        assert_eq!(key_at(text, at("suite")).as_deref(), Some("node.suite"));
        assert_eq!(key_at(text, 0), None);
        assert_eq!(key_at("[node\n", 2), None);

        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Node {
            name: String,
            suite: String,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Doc {
            node: Node,
        }
        let file = Path::new("court.toml");
        let mut src = Source::new(file, text);
        assert!(src.parse::<Doc>().is_none());
        let problems = src.finish(()).unwrap_err().to_string();
        assert!(
            problems.starts_with("court.toml:3: node.suite: invalid type: boolean `true`"),
            "{problems}"
        );
    }
}
