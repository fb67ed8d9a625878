//! Helpers shared by the parsing and filtering processors: Go-compatible regex compilation,
//! source-key lookup and rate-limited warnings (iLogtail "alarms").

use crate::config::DetailError;
use crate::context::PluginContext;
use crate::event::{config_text, LogEvent};
use bytes::Bytes;
use regex::bytes::Regex;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Rewrites the Perl classes of a Go (RE2) pattern to their ASCII meaning.
///
/// In Go, `\d`, `\w`, `\s` and `\b` are ASCII-only; in the `regex` crate they are
/// Unicode-aware. iLogtail configs are written against Go, so `\w+` must not swallow CJK
/// text. The replacements are bracket classes, which are also valid inside a class
/// (`[\w.]` becomes the nested class `[[0-9A-Za-z_].]`). Everything else, including `.`
/// and literal non-ASCII text, keeps its (Go-identical) Unicode meaning.
pub(crate) fn go_pattern(pattern: &str) -> String {
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
pub(crate) fn byte_classes(pattern: &str) -> Option<String> {
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
pub(crate) fn compile_bytes(pattern: &str, wrap: Wrap) -> Option<Regex> {
    let body = byte_classes(&go_pattern(pattern))?;
    let full = match wrap {
        Wrap::Plain => body,
        Wrap::DotAll => format!("(?s){body}"),
        Wrap::DotAllFull => format!(r"(?s)\A(?:{body})\z"),
    };
    Regex::new(&full).ok()
}

/// Whether `pos` splits a UTF-8 character of `value` (a continuation byte starts there).
pub(crate) fn splits_char(value: &[u8], pos: usize) -> bool {
    value.get(pos).is_some_and(|b| (0x80..0xC0).contains(b))
}

/// How a regex is wrapped before compiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wrap {
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
pub(crate) fn compile(field: &str, pattern: &str, wrap: Wrap) -> Result<Regex, DetailError> {
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

/// Which content a parser reads.
#[derive(Debug, Clone)]
pub(crate) enum SourceKey {
    /// The content with this key.
    Named(Bytes),
    /// The first content of the log (iLogtail's behaviour for an empty `SourceKey`).
    First,
}

impl SourceKey {
    /// `""` means the first content; anything else names a key.
    pub(crate) fn new(key: String) -> Self {
        if key.is_empty() {
            SourceKey::First
        } else {
            SourceKey::Named(config_text(key.as_bytes()))
        }
    }

    /// Index of the source content in `e`.
    pub(crate) fn find(&self, e: &LogEvent) -> Option<usize> {
        match self {
            SourceKey::Named(k) => e.contents.iter().position(|(key, _)| key == k),
            SourceKey::First => (!e.contents.is_empty()).then_some(0),
        }
    }

    /// The key for messages.
    pub(crate) fn name(&self) -> String {
        match self {
            SourceKey::Named(k) => String::from_utf8_lossy(k).into_owned(),
            SourceKey::First => "<first content>".into(),
        }
    }
}

/// Sets every `(key, value)` of `fields` on `e` (replacing existing keys in place).
pub(crate) fn set_all(e: &mut LogEvent, fields: &mut Vec<(Bytes, Bytes)>) {
    e.contents.reserve(fields.len());
    if e.contents.len() + fields.len() <= INDEXED_ABOVE {
        for (k, v) in fields.drain(..) {
            e.set(k, v);
        }
        return;
    }
    // Many fields (a JSON object with thousands of keys): setting each with a linear search
    // would take quadratic time, so index the keys once.
    e.touch();
    let mut at: std::collections::HashMap<Bytes, usize> = e
        .contents
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.clone(), i))
        .collect();
    for (k, v) in fields.drain(..) {
        match at.get(&k) {
            Some(&i) => e.contents[i].1 = v,
            None => {
                at.insert(k.clone(), e.contents.len());
                e.contents.push((k, v));
            }
        }
    }
}

/// Above this many contents and new fields, [`set_all`] indexes the keys.
const INDEXED_ABOVE: usize = 64;

#[cfg(test)]
mod set_all_tests {
    use super::*;

    fn kv(k: &str, v: &str) -> (Bytes, Bytes) {
        (Bytes::from(k.to_string()), Bytes::from(v.to_string()))
    }

    #[test]
    fn indexed_and_linear_setting_agree() {
        for n in [3, 200] {
            let mut e = LogEvent::new(1);
            e.contents = (0..n).map(|i| kv(&format!("k{i}"), "old")).collect();
            let mut fields: Vec<_> = (0..n)
                .step_by(2)
                .map(|i| kv(&format!("k{i}"), "new"))
                .chain((0..n).map(|i| kv(&format!("n{i}"), "added")))
                .chain([kv("n0", "last wins")])
                .collect();
            set_all(&mut e, &mut fields);
            assert!(fields.is_empty());
            assert_eq!(e.contents.len(), 2 * n);
            assert_eq!(e.get(b"k0").unwrap().as_ref(), b"new");
            assert_eq!(e.get(b"k1").unwrap().as_ref(), b"old");
            assert_eq!(e.get(b"n0").unwrap().as_ref(), b"last wins");
            assert_eq!(
                e.contents[n].0.as_ref(),
                b"n0",
                "new keys appended in order"
            );
        }
    }
}

/// At most this many bytes of a value are quoted in a warning (iLogtail cuts at 512).
const PREVIEW_BYTES: usize = 512;

/// A printable prefix of `value` for warnings.
pub(crate) fn preview(value: &[u8]) -> String {
    let cut = &value[..value.len().min(PREVIEW_BYTES)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if value.len() > PREVIEW_BYTES {
        s.push_str("...");
    }
    s
}

/// Default spacing of warnings from one processor instance.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Rate-limited `tracing::warn!` for one processor instance: at most one message per
/// interval, reporting how many were suppressed since the previous one. Cheap on the hot
/// path: a suppressed warning costs a clock read and never builds its message.
#[derive(Debug)]
pub(crate) struct WarnLimiter {
    plugin: &'static str,
    config: Arc<str>,
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
    #[cfg(test)]
    raised: u64,
}

impl WarnLimiter {
    /// A limiter for `plugin` (its type name) in the config of `cx`.
    pub(crate) fn new(plugin: &'static str, cx: &PluginContext) -> Self {
        Self {
            plugin,
            config: cx.config_name.clone(),
            interval: WARN_INTERVAL,
            last: None,
            suppressed: 0,
            #[cfg(test)]
            raised: 0,
        }
    }

    /// Logs `message()` under the iLogtail alarm name `alarm`, unless a warning was logged
    /// less than an interval ago (then it is only counted). Returns whether it was logged.
    pub(crate) fn warn(&mut self, alarm: &'static str, message: impl FnOnce() -> String) -> bool {
        #[cfg(test)]
        {
            self.raised += 1;
        }
        let now = Instant::now();
        if let Some(last) = self.last {
            if now.duration_since(last) < self.interval {
                self.suppressed += 1;
                return false;
            }
        }
        self.last = Some(now);
        let suppressed = std::mem::take(&mut self.suppressed);
        let mut text = message();
        if suppressed > 0 {
            text.push_str(&format!(" ({suppressed} similar since the last report)"));
        }
        crate::stats::alarm(
            crate::stats::AlarmType::Plugin(alarm),
            crate::stats::Level::Warning,
            &self.config,
            self.plugin,
            text,
        );
        true
    }

    /// Warnings counted but not logged since the last logged one.
    #[cfg(test)]
    pub(crate) fn suppressed(&self) -> u64 {
        self.suppressed
    }

    /// Warnings raised (logged or not) since creation.
    #[cfg(test)]
    pub(crate) fn raised(&self) -> u64 {
        self.raised
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
    fn source_key_lookup() {
        let mut e = LogEvent::new(0);
        assert_eq!(SourceKey::First.find(&e), None);
        e.set(Bytes::from_static(b"a"), Bytes::new());
        e.set(Bytes::from_static(b"content"), Bytes::new());
        assert_eq!(SourceKey::new(String::new()).find(&e), Some(0));
        assert_eq!(SourceKey::new("content".into()).find(&e), Some(1));
        assert_eq!(SourceKey::new("nope".into()).find(&e), None);
    }

    #[test]
    fn limiter_suppresses_within_interval() {
        let mut w = WarnLimiter::new("processor_x", &PluginContext::for_check("t"));
        assert!(w.warn("X_ALARM", || "first".into()));
        let mut built = false;
        assert!(!w.warn("X_ALARM", || {
            built = true;
            String::new()
        }));
        assert!(!built, "a suppressed message is never built");
        assert_eq!(w.suppressed(), 1);
        w.interval = Duration::ZERO;
        assert!(w.warn("X_ALARM", || "again".into()));
        assert_eq!(w.suppressed(), 0);
        assert_eq!(w.raised(), 3);
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

    #[test]
    fn preview_cuts_long_values() {
        assert_eq!(preview(b"short"), "short");
        let long = vec![b'x'; 600];
        let p = preview(&long);
        assert_eq!(p.len(), 515);
        assert!(p.ends_with("..."));
    }
}
