//! A linear matcher for the regexes log formats are usually written as: anchored sequences of
//! literals and greedy runs of a character class, most of them captured —
//! `^(\S+) - (\S+) \[([^\]]+)\] "(\S+) (\S+) (\S+)" (\d+) (\d+) "([^"]*)" "([^"]*)"$`.
//!
//! A backtracking engine spends most of its time on such patterns clearing and walking its
//! state; here each run scans forward once and, when the next literal could also occur inside
//! the run, steps back to its last occurrence. That is exactly the regex's first choice
//! (greedy runs prefer the longest span): when the rest of the line matches with that choice,
//! the result is the regex's; when it does not, the plan gives up and the caller asks the real
//! regex, which may find a later path. Patterns of any other shape get no plan.
//!
//! Run boundaries fall on ASCII bytes or at the ends, so on valid UTF-8 they never split a
//! character. (On invalid UTF-8 a negated class here also covers the invalid bytes, as Go's
//! `regexp` does by reading them as U+FFFD.)

use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// One element of a plan.
#[derive(Debug, Clone)]
enum Step {
    /// These exact bytes.
    Lit(Box<[u8]>),
    /// A greedy run (`min` or more) of bytes in `set`, captured as group `cap` if any.
    Run {
        set: Box<[bool; 256]>,
        min: usize,
        cap: Option<usize>,
    },
}

/// A compiled plan for an anchored pattern.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    steps: Vec<Step>,
    anchored_end: bool,
}

/// The byte set of a class, if every byte of a match is decided by its first byte: a class of
/// ASCII characters, or everything except some ASCII characters.
fn byte_set(class: &Class) -> Option<Box<[bool; 256]>> {
    let mut set = Box::new([false; 256]);
    match class {
        Class::Bytes(b) => {
            for r in b.ranges() {
                for x in r.start()..=r.end() {
                    set[x as usize] = true;
                }
            }
        }
        Class::Unicode(u) => {
            if u.ranges().iter().all(|r| r.end() <= '\x7f') {
                for r in u.ranges() {
                    for x in r.start() as u8..=r.end() as u8 {
                        set[x as usize] = true;
                    }
                }
            } else {
                let mut neg = u.clone();
                neg.negate();
                if !neg.ranges().iter().all(|r| r.end() <= '\x7f') {
                    return None;
                }
                set.fill(true);
                for r in neg.ranges() {
                    for x in r.start() as u8..=r.end() as u8 {
                        set[x as usize] = false;
                    }
                }
            }
        }
    }
    Some(set)
}

/// A greedy, unbounded repetition of a class: (set, min).
fn run_of(h: &Hir) -> Option<(Box<[bool; 256]>, usize)> {
    let HirKind::Repetition(r) = h.kind() else {
        return None;
    };
    if !r.greedy || r.max.is_some() || r.min > 1 {
        return None;
    }
    let HirKind::Class(c) = r.sub.kind() else {
        return None;
    };
    Some((byte_set(c)?, r.min as usize))
}

impl Plan {
    /// A plan for `pattern` (Go-rewritten, as compiled for the processor), when it has the
    /// supported shape; `full_match` anchors it at both ends.
    pub(crate) fn new(pattern: &str, full_match: bool) -> Option<Plan> {
        let hir = regex_syntax::ParserBuilder::new()
            .dot_matches_new_line(true)
            .build()
            .parse(pattern)
            .ok()?;
        let items: Vec<&Hir> = match hir.kind() {
            HirKind::Concat(v) => v.iter().collect(),
            _ => vec![&hir],
        };
        let mut steps = Vec::new();
        let (mut start, mut end) = (full_match, full_match);
        for (i, h) in items.iter().enumerate() {
            match h.kind() {
                HirKind::Look(Look::Start) if i == 0 => start = true,
                HirKind::Look(Look::End) if i + 1 == items.len() => end = true,
                HirKind::Literal(l) => steps.push(Step::Lit(l.0.clone())),
                HirKind::Capture(c) => {
                    let (set, min) = run_of(&c.sub)?;
                    steps.push(Step::Run {
                        set,
                        min,
                        cap: Some(c.index as usize),
                    });
                }
                HirKind::Repetition(_) => {
                    let (set, min) = run_of(h)?;
                    steps.push(Step::Run {
                        set,
                        min,
                        cap: None,
                    });
                }
                _ => return None,
            }
        }
        if !start {
            return None;
        }
        // A run must be followed by a literal starting with an ASCII byte, or end the pattern.
        for w in steps.windows(2) {
            if let [Step::Run { .. }, next] = w {
                match next {
                    Step::Lit(l) if l.first().is_some_and(u8::is_ascii) => {}
                    _ => return None,
                }
            }
        }
        Some(Plan {
            steps,
            anchored_end: end,
        })
    }

    /// Matches `text`, filling `spans[i]` for group `i` (index 0 unused). `None` means the
    /// plan's first choice did not match: ask the regex.
    pub(crate) fn find(&self, text: &[u8], spans: &mut [Option<(usize, usize)>]) -> Option<()> {
        spans.iter_mut().for_each(|s| *s = None);
        let mut pos = 0usize;
        let mut i = 0;
        while i < self.steps.len() {
            match &self.steps[i] {
                Step::Lit(l) => {
                    if !text[pos..].starts_with(l) {
                        return None;
                    }
                    pos += l.len();
                    i += 1;
                }
                Step::Run { set, min, cap } => {
                    let mut q = pos;
                    while q < text.len() && set[text[q] as usize] {
                        q += 1;
                    }
                    let end = match self.steps.get(i + 1) {
                        Some(Step::Lit(l)) => {
                            let lo = pos + min;
                            if lo > q {
                                return None;
                            }
                            if set[l[0] as usize] {
                                // The literal may start inside the run: its last occurrence.
                                (lo..=q).rev().find(|&r| text[r..].starts_with(l))?
                            } else if text[q..].starts_with(l) {
                                q
                            } else {
                                return None;
                            }
                        }
                        _ => {
                            if q - pos < *min {
                                return None;
                            }
                            q
                        }
                    };
                    if let Some(c) = cap {
                        spans[*c] = Some((pos, end));
                    }
                    pos = end;
                    i += 1;
                }
            }
        }
        if self.anchored_end && pos != text.len() {
            return None;
        }
        spans[0] = Some((0, pos));
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patterns::go_pattern;
    use regex::bytes::Regex;

    const NGINX: &str =
        r#"^(\S+) - (\S+) \[([^\]]+)\] "(\S+) (\S+) (\S+)" (\d+) (\d+) "([^"]*)" "([^"]*)"$"#;

    /// Asserts the plan (when it answers) agrees with the regex on `text`.
    fn agree(pattern: &str, full: bool, text: &str) -> Option<Vec<Option<(usize, usize)>>> {
        let go = go_pattern(pattern);
        let plan = Plan::new(&go, full).expect("plan");
        let wrapped = if full {
            format!(r"(?s)\A(?:{go})\z")
        } else {
            format!("(?s){go}")
        };
        let re = Regex::new(&wrapped).unwrap();
        let groups = re.captures_len() - 1;
        let mut spans = vec![None; groups + 1];
        let got = plan
            .find(text.as_bytes(), &mut spans)
            .map(|()| spans.clone());
        let want = re.captures(text.as_bytes()).map(|c| {
            (0..=groups)
                .map(|i| c.get(i).map(|m| (m.start(), m.end())))
                .collect::<Vec<_>>()
        });
        if let Some(g) = &got {
            assert_eq!(Some(g), want.as_ref(), "{pattern} on {text:?}");
        }
        got
    }

    #[test]
    fn nginx_lines_match_like_the_regex() {
        let lines = [
            r#"10.0.0.1 - - [10/Oct/2023:13:55:36 +0800] "GET /index.html HTTP/1.1" 200 2326 "-" "Mozilla/5.0""#,
            r#"1.2.3.4 - bob [10/Oct/2023:13:55:36 +0800] "POST /api?q="x" HTTP/1.1" 500 0 "https://e.com/é" "curl/8 (日本)""#,
            r#"1.2.3.4 - - [x] "GET / HTTP/1.1" 200 1 "" """#,
        ];
        for l in lines {
            assert!(agree(NGINX, true, l).is_some(), "{l}");
        }
    }

    #[test]
    fn gives_up_where_the_first_choice_fails_and_never_disagrees() {
        // Not a match at all: the plan says "ask the regex".
        assert!(agree(NGINX, true, "garbage").is_none());
        assert!(agree(
            NGINX,
            true,
            r#"1.2.3.4 - - [x] "GET / HTTP/1.1" 2x0 1 "" """#
        )
        .is_none());
        // The greedy choice for `(\S+)"` is the last quote before a space.
        assert!(agree(r#"^"(\S+)" (\d+)$"#, true, r#""a"b" 12"#).is_some());
        assert!(agree(r"^(\w+)=(\d*)$", true, "key=").is_some());
        // `(.*)` is a run of any byte: it ends at the last occurrence of what follows.
        assert!(agree(r"^(.*) x (\S+)$", true, "a x é x b x 日本").is_some());
        assert!(agree(r"^(\S+): (.*)$", true, "ERROR: multi\nline").is_some());
        assert!(agree(r"^(\w+)=(\d*)", false, "key=12 trailing").is_some());
    }

    #[test]
    fn unsupported_shapes_get_no_plan() {
        for p in [
            r"^(\S+)(\S+)$",  // adjacent runs
            r"^(a|b) (\S+)$", // alternation
            r"(\S+) x",       // not anchored
            r"^([^é]+) x$",   // non-ASCII negated class
            r"^(\S{2,5}) x$", // bounded repetition
            r"^(\S+?) x$",    // lazy
        ] {
            assert!(Plan::new(&go_pattern(p), false).is_none(), "{p}");
        }
    }
}
