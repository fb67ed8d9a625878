//! Go-compatible (RE2) regular expressions, shared by routing (`Match`) and the processors:
//! compiling a user's pattern with Go's meaning, a faster byte-class variant, and [`plan`],
//! a matcher for the common shape of access-log patterns.

pub mod plan;

use crate::api::DetailError;
use regex::bytes::Regex;

/// Rewrites the Perl classes of a Go (RE2) pattern to their ASCII meaning.
///
/// In Go, `\d`, `\w`, `\s` and `\b` are ASCII-only; in the `regex` crate they are
/// Unicode-aware. iLogtail configs are written against Go, so `\w+` must not swallow CJK
/// text. The replacements are bracket classes, which are also valid inside a class
/// (`[\w.]` becomes the nested class `[[0-9A-Za-z_].]`). Everything else, including `.`
/// and literal non-ASCII text, keeps its (Go-identical) Unicode meaning.
pub fn go_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str("[0-9]"),
            Some('D') => out.push_str("[^0-9]"),
            Some('w') => out.push_str("[0-9A-Za-z_]"),
            Some('W') => out.push_str("[^0-9A-Za-z_]"),
            Some('s') => out.push_str(r"[\t\n\f\r ]"),
            Some('S') => out.push_str(r"[^\t\n\f\r ]"),
            Some('b') => out.push_str(r"(?-u:\b)"),
            Some('B') => out.push_str(r"(?-u:\B)"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// The pattern (already through [`go_pattern`]) with every ASCII-only negated class
/// (`[^\]]`, and `\S`, `\D`, `\W` as rewritten) matching bytes instead of characters:
/// `(?-u:[^...])`. Such a class compiles to one byte transition instead of a UTF-8 automaton,
/// which makes capture extraction several times faster. On valid UTF-8 it matches the same
/// spans except when a capture boundary falls inside a character; callers check for that and
/// fall back to the exact regex. `None` when nothing would change.
pub fn byte_classes(pattern: &str) -> Option<String> {
    let b = pattern.as_bytes();
    let mut out = String::with_capacity(pattern.len() + 16);
    let (mut i, mut changed) = (0, false);
    while i < b.len() {
        match b[i] {
            b'\\' => {
                let end = (i + 2).min(b.len());
                out.push_str(&pattern[i..end]);
                i = end;
            }
            b'[' if b.get(i + 1) == Some(&b'^') => {
                // Find the closing bracket: a `]` right after `[^` is a literal.
                let mut j = i + 2;
                if b.get(j) == Some(&b']') {
                    j += 1;
                }
                let mut simple = true;
                while j < b.len() && b[j] != b']' {
                    match b[j] {
                        b'\\' => {
                            if matches!(b.get(j + 1), Some(b'p' | b'P' | b'x' | b'u' | b'U')) {
                                simple = false;
                            }
                            j += 2;
                        }
                        b'[' => {
                            simple = false;
                            j += 1;
                        }
                        c if c >= 0x80 => {
                            simple = false;
                            j += 1;
                        }
                        _ => j += 1,
                    }
                }
                if j >= b.len() {
                    return None; // unbalanced: let the regex compiler report it
                }
                let class = &pattern[i..=j];
                if simple {
                    out.push_str("(?-u:");
                    out.push_str(class);
                    out.push(')');
                    changed = true;
                } else {
                    out.push_str(class);
                }
                i = j + 1;
            }
            _ => {
                let ch = pattern[i..].chars().next().expect("in bounds");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    changed.then_some(out)
}

/// The byte-class variant of a user regex (see [`byte_classes`]), wrapped like [`compile`];
/// `None` when it would be the same regex or does not compile.
pub fn compile_bytes(pattern: &str, wrap: Wrap) -> Option<Regex> {
    let body = byte_classes(&go_pattern(pattern))?;
    let full = match wrap {
        Wrap::Plain => body,
        Wrap::DotAll => format!("(?s){body}"),
        Wrap::DotAllFull => format!(r"(?s)\A(?:{body})\z"),
    };
    Regex::new(&full).ok()
}

/// Whether `pos` splits a UTF-8 character of `value` (a continuation byte starts there).
pub fn splits_char(value: &[u8], pos: usize) -> bool {
    value.get(pos).is_some_and(|b| (0x80..0xC0).contains(b))
}

/// How a regex is wrapped before compiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrap {
    /// As written (filters: Go's `regexp.Compile(val)`).
    Plain,
    /// `(?s)` prepended, as `processor_regex` does in Go (`.` also matches `\n`).
    DotAll,
    /// `(?s)` and anchored at both ends: the whole value must match.
    DotAllFull,
}

/// Compiles a user regex with Go semantics; errors name `field`.
///
/// The pattern as written is checked first so error messages quote the user's text.
pub fn compile(field: &str, pattern: &str, wrap: Wrap) -> Result<Regex, DetailError> {
    let invalid = |e: regex::Error| {
        DetailError::new(
            field,
            format!("invalid regex {pattern:?}: {}", one_line(&e.to_string())),
        )
    };
    Regex::new(pattern).map_err(invalid)?;
    let body = go_pattern(pattern);
    let full = match wrap {
        Wrap::Plain => body,
        Wrap::DotAll => format!("(?s){body}"),
        Wrap::DotAllFull => format!(r"(?s)\A(?:{body})\z"),
    };
    Regex::new(&full).map_err(invalid)
}

/// The gist of a (multi-line, caret-annotated) regex error: config errors are one line each.
fn one_line(msg: &str) -> String {
    match msg.rfind("error: ") {
        Some(i) => msg[i + "error: ".len()..].trim().replace('\n', " "),
        None => msg.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn perl_classes_become_ascii() {
        assert_eq!(
            go_pattern(r"(\d+)\s(\w+)"),
            r"([0-9]+)[\t\n\f\r ]([0-9A-Za-z_]+)"
        );
        assert_eq!(go_pattern(r"[\w.]+\S"), r"[[0-9A-Za-z_].]+[^\t\n\f\r ]");
        // An escaped backslash is not the start of a class escape.
        assert_eq!(go_pattern(r"a\\d\.\["), r"a\\d\.\[");
        assert_eq!(go_pattern(r"\bx\B"), r"(?-u:\b)x(?-u:\B)");
        assert_eq!(go_pattern(r"\p{Han}+"), r"\p{Han}+");

        let re = compile("Regex", r"^(\w+) (\d+)$", Wrap::Plain).unwrap();
        assert!(re.is_match(b"abc_1 42"));
        // Go's \w does not match CJK text and \d does not match other digits.
        assert!(!re.is_match("你好 42".as_bytes()));
        assert!(!re.is_match("abc ٤٢".as_bytes()));
        let re = compile("Regex", r"^([^\d]+)[\d]+$", Wrap::Plain).unwrap();
        let c = re.captures("你好123".as_bytes()).unwrap();
        assert_eq!(&c[1], "你好".as_bytes());
    }

    #[test]
    fn wraps_and_errors() {
        let re = compile("Regex", "a.b", Wrap::DotAll).unwrap();
        assert!(re.is_match(b"xa\nb"));
        let re = compile("Regex", "a|ab", Wrap::DotAllFull).unwrap();
        assert!(re.is_match(b"ab"));
        assert!(!re.is_match(b"abc"));
        assert!(!re.is_match(b"xab"));
        let e = compile("Include.status", "(unclosed", Wrap::Plain).unwrap_err();
        assert_eq!(e.field, "Include.status");
        assert_eq!(e.message, r#"invalid regex "(unclosed": unclosed group"#);
        let e = compile("Regex", "a{2,1}", Wrap::Plain).unwrap_err();
        assert!(!e.message.contains('\n'), "{}", e.message);
    }

    #[test]
    fn byte_classes_wraps_only_ascii_negated_classes() {
        assert_eq!(
            byte_classes(r#"\[([^\]]+)\] "([^"]*)" (x)"#).as_deref(),
            Some(r#"\[((?-u:[^\]])+)\] "((?-u:[^"])*)" (x)"#)
        );
        assert_eq!(
            byte_classes(&go_pattern(r"(\S+) (\d+)")).as_deref(),
            Some(r"((?-u:[^\t\n\f\r ])+) ([0-9]+)")
        );
        assert_eq!(byte_classes("[^é]+"), None, "non-ASCII member");
        assert_eq!(byte_classes(r"[^\p{L}]"), None, "Unicode class");
        assert_eq!(byte_classes("(a)(b)"), None, "nothing to change");
        assert_eq!(byte_classes(r"[^]a]").as_deref(), Some("(?-u:[^]a])"));
    }
}
