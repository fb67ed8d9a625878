//! Routing: the `Match` condition of an aggregator or flusher entry (Heka's message matcher).
//!
//! ```text
//! Fields[status] =~ /^5\d\d$/ && !(Fields[level] == 'debug') || Tags[env] == 'prod'
//! ```
//!
//! Grammar (whitespace is free between tokens; names are case-sensitive):
//!
//! ```text
//! expr    := and ( '||' and )*
//! and     := unary ( '&&' unary )*
//! unary   := '!' unary | primary
//! primary := '(' expr ')' | 'TRUE' | 'FALSE'
//!          | 'Has' '(' target ')'
//!          | target ( '==' | '!=' ) ( string | 'NIL' )
//!          | target ( '=~' | '!~' ) regex
//! target  := 'Fields' '[' key ']' | 'Tags' '[' key ']' | 'Topic'
//! key     := bare text up to ']' (trimmed) | string
//! string  := '...' | "..."        (backslash escapes \\ \' \" \n \t \r)
//! regex   := /.../                (\/ is a slash; Go RE2 syntax, ASCII \d \w \s \b)
//! ```
//!
//! `!` binds tighter than `&&`, which binds tighter than `||`. A missing field or tag never
//! equals a string nor matches a regex, and `!=` / `!~` are the exact negations of `==` / `=~`,
//! so `X == 'a'` and `X != 'a'` split events into two disjoint sets that cover everything.
//! `Has(X)` (or `X != NIL`) tests presence; `Has(Topic)` is true when the topic is not empty.
//!
//! Conditions are parsed and their regexes compiled once, at config load; evaluating one
//! allocates nothing.

use crate::event::{EventGroup, LogEvent};
use crate::patterns::{compile, Wrap};
use bytes::Bytes;
use regex::bytes::Regex;
use std::fmt;

/// Deepest nesting of parentheses and `!` accepted. It bounds the stack of the parser, of the
/// evaluator and of dropping a condition: chains of `&&` and `||`, however long, are flat lists
/// (one node each), so the node tree is only as deep as this nesting.
const MAX_DEPTH: usize = 64;

/// A parsed `Match` condition.
pub struct Matcher {
    root: Node,
    text: String,
    uses_fields: bool,
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Matcher").field(&self.text).finish()
    }
}

/// A syntax error in a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset in the expression.
    pub offset: usize,
    /// 1-based column (in characters) in the expression.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Which events of a group a matcher selects.
#[derive(Debug)]
pub enum Selection {
    /// Every event: use the group as is.
    All,
    /// No event: skip the group.
    Nothing,
    /// Some events: a copy of the group holding just those (same tags, topic, source, acks).
    Some(EventGroup),
}

#[derive(Debug)]
enum Node {
    Const(bool),
    Not(Box<Node>),
    /// Two or more operands, evaluated in order until one is false.
    And(Box<[Node]>),
    /// Two or more operands, evaluated in order until one is true.
    Or(Box<[Node]>),
    Test(Target, Test),
}

#[derive(Debug)]
enum Target {
    Field(Box<[u8]>),
    Tag(Box<[u8]>),
    Topic,
}

#[derive(Debug)]
enum Test {
    Present,
    Absent,
    Eq(Box<[u8]>),
    Ne(Box<[u8]>),
    Re(Regex),
    NotRe(Regex),
}

impl Matcher {
    /// Parses `expr`, compiling its regexes.
    ///
    /// # Errors
    /// A [`ParseError`] with the position of the problem.
    pub fn parse(expr: &str) -> Result<Self, ParseError> {
        let mut p = Parser {
            src: expr,
            pos: 0,
            depth: 0,
            uses_fields: false,
        };
        p.skip_ws();
        if p.pos == expr.len() {
            return Err(p.error_at(0, "the condition is empty"));
        }
        let root = p.or()?;
        p.skip_ws();
        if let Some(c) = p.peek() {
            let msg = match c {
                ')' => "unbalanced `)`".to_string(),
                _ => format!(
                    "unexpected {} (expected `&&`, `||` or the end)",
                    describe(c)
                ),
            };
            return Err(p.error_at(p.pos, msg));
        }
        Ok(Self {
            root,
            text: expr.to_string(),
            uses_fields: p.uses_fields,
        })
    }

    /// The condition as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the condition holds for `event` of a group with `tags` and `topic`.
    pub fn matches(&self, tags: &[(Bytes, Bytes)], topic: &[u8], event: &LogEvent) -> bool {
        eval(&self.root, tags, topic, Some(event))
    }

    /// Which events of `group` the condition selects. A condition that reads no `Fields` is
    /// evaluated once for the whole group.
    pub fn select(&self, group: &EventGroup) -> Selection {
        let (tags, topic) = (&group.tags[..], &group.topic[..]);
        if group.events.is_empty() {
            return Selection::Nothing;
        }
        if !self.uses_fields {
            return if eval(&self.root, tags, topic, None) {
                Selection::All
            } else {
                Selection::Nothing
            };
        }
        let events = &group.events;
        let first = eval(&self.root, tags, topic, Some(&events[0]));
        // Everything before the first event whose result differs from `first` shares it.
        let Some(split) = events[1..]
            .iter()
            .position(|e| eval(&self.root, tags, topic, Some(e)) != first)
            .map(|i| i + 1)
        else {
            return if first {
                Selection::All
            } else {
                Selection::Nothing
            };
        };
        let mut kept = Vec::with_capacity(if first {
            events.len()
        } else {
            events.len() - split
        });
        if first {
            kept.extend_from_slice(&events[..split]);
        } else {
            kept.push(events[split].clone());
        }
        kept.extend(
            events[split + 1..]
                .iter()
                .filter(|e| eval(&self.root, tags, topic, Some(e)))
                .cloned(),
        );
        Selection::Some(EventGroup {
            events: kept,
            tags: group.tags.clone(),
            topic: group.topic.clone(),
            source: group.source.clone(),
            acks: group.acks.clone(),
        })
    }
}

/// Evaluates `node`; `event` is `None` only for conditions that read no field.
fn eval(node: &Node, tags: &[(Bytes, Bytes)], topic: &[u8], event: Option<&LogEvent>) -> bool {
    match node {
        Node::Const(b) => *b,
        Node::Not(n) => !eval(n, tags, topic, event),
        Node::And(all) => all.iter().all(|n| eval(n, tags, topic, event)),
        Node::Or(any) => any.iter().any(|n| eval(n, tags, topic, event)),
        Node::Test(target, test) => {
            let value: Option<&[u8]> = match target {
                Target::Field(k) => event.and_then(|e| e.get(k)).map(|v| &v[..]),
                Target::Tag(k) => tags
                    .iter()
                    .find(|(tk, _)| tk[..] == k[..])
                    .map(|(_, v)| &v[..]),
                Target::Topic => (!topic.is_empty()).then_some(topic),
            };
            let topic_default = matches!(target, Target::Topic).then_some(&b""[..]);
            match test {
                Test::Present => value.is_some(),
                Test::Absent => value.is_none(),
                Test::Eq(s) => value.or(topic_default) == Some(&s[..]),
                Test::Ne(s) => value.or(topic_default) != Some(&s[..]),
                Test::Re(r) => value.or(topic_default).is_some_and(|v| r.is_match(v)),
                Test::NotRe(r) => !value.or(topic_default).is_some_and(|v| r.is_match(v)),
            }
        }
    }
}

fn describe(c: char) -> String {
    format!("{c:?}")
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
    uses_fields: bool,
}

impl<'a> Parser<'a> {
    fn error_at(&self, offset: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            offset,
            column: self.src[..offset].chars().count() + 1,
            message: message.into(),
        }
    }

    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// Consumes `tok` (after whitespace) if it is next.
    fn eat(&mut self, tok: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(tok) {
            self.pos += tok.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: &str, what: &str) -> Result<(), ParseError> {
        if self.eat(tok) {
            return Ok(());
        }
        Err(self.unexpected(&format!("`{tok}` {what}")))
    }

    /// "expected X, found Y" at the current position.
    fn unexpected(&self, expected: &str) -> ParseError {
        let found = match self.peek() {
            Some(c) => describe(c),
            None => "the end".to_string(),
        };
        self.error_at(self.pos, format!("expected {expected}, found {found}"))
    }

    fn nest(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_at(self.pos, format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Node, ParseError> {
        let first = self.and()?;
        if !self.eat("||") {
            return Ok(first);
        }
        let mut any = vec![first];
        loop {
            any.push(self.and()?);
            if !self.eat("||") {
                return Ok(Node::Or(any.into_boxed_slice()));
            }
        }
    }

    fn and(&mut self) -> Result<Node, ParseError> {
        let first = self.unary()?;
        if !self.eat("&&") {
            return Ok(first);
        }
        let mut all = vec![first];
        loop {
            all.push(self.unary()?);
            if !self.eat("&&") {
                return Ok(Node::And(all.into_boxed_slice()));
            }
        }
    }

    fn unary(&mut self) -> Result<Node, ParseError> {
        self.skip_ws();
        let r = self.rest();
        if r.starts_with('!') && !r.starts_with("!=") && !r.starts_with("!~") {
            self.pos += 1;
            self.nest()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Node::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn word(&mut self) -> &'a str {
        let rest = self.rest();
        let n = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let start = self.pos;
        self.pos += n;
        &self.src[start..start + n]
    }

    fn primary(&mut self) -> Result<Node, ParseError> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                self.nest()?;
                let inner = self.or()?;
                self.depth -= 1;
                let column = self.error_at(start, "").column;
                self.expect(")", &format!("to close the `(` at column {column}"))?;
                Ok(inner)
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let word = self.word();
                match word {
                    "TRUE" => Ok(Node::Const(true)),
                    "FALSE" => Ok(Node::Const(false)),
                    "Has" => {
                        self.expect("(", "after `Has`")?;
                        let target = self.target()?;
                        self.expect(")", "to close `Has(`")?;
                        Ok(Node::Test(target, Test::Present))
                    }
                    "Fields" | "Tags" | "Topic" => {
                        self.pos = start;
                        let target = self.target()?;
                        let test = self.comparison(start)?;
                        Ok(Node::Test(target, test))
                    }
                    other => Err(self.error_at(
                        start,
                        format!(
                            "unknown name `{other}` (expected Fields[key], Tags[key], Topic, \
                             Has(...), TRUE or FALSE)"
                        ),
                    )),
                }
            }
            _ => Err(self.unexpected(
                "a condition (Fields[key], Tags[key], Topic, Has(...), TRUE, FALSE, `!` or `(`)",
            )),
        }
    }

    fn target(&mut self) -> Result<Target, ParseError> {
        self.skip_ws();
        let start = self.pos;
        match self.word() {
            "Topic" => Ok(Target::Topic),
            "Fields" => {
                self.uses_fields = true;
                Ok(Target::Field(self.key("Fields")?))
            }
            "Tags" => Ok(Target::Tag(self.key("Tags")?)),
            _ => {
                self.pos = start;
                Err(self.unexpected("Fields[key], Tags[key] or Topic"))
            }
        }
    }

    /// `[key]` after `Fields` or `Tags`.
    fn key(&mut self, what: &str) -> Result<Box<[u8]>, ParseError> {
        self.expect("[", &format!("after `{what}`"))?;
        self.skip_ws();
        let start = self.pos;
        let key = match self.peek() {
            Some(q @ ('\'' | '"')) => {
                let k = self.string(q)?;
                self.expect("]", "after the key")?;
                k
            }
            _ => {
                let Some(end) = self.rest().find(']') else {
                    return Err(self.error_at(start, format!("`{what}[` is not closed by `]`")));
                };
                let k = self.rest()[..end].trim_end().to_string();
                self.pos += end + 1;
                k
            }
        };
        if key.is_empty() {
            return Err(self.error_at(start, format!("empty key in `{what}[]`")));
        }
        Ok(key.into_bytes().into_boxed_slice())
    }

    /// A quoted string starting at the current position with quote `q`.
    fn string(&mut self, q: char) -> Result<String, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    let Some((_, e)) = chars.next() else { break };
                    out.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        '\\' | '\'' | '"' => e,
                        other => {
                            let at = self.pos + i;
                            return Err(self.error_at(
                                at,
                                format!("unknown escape `\\{other}` (use \\\\ for a backslash)"),
                            ));
                        }
                    });
                }
                c if c == q => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                c => out.push(c),
            }
        }
        Err(self.error_at(start, format!("unterminated string (no closing {q})")))
    }

    /// A `/regex/` starting at the current position, compiled.
    fn regex(&mut self) -> Result<Regex, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut pattern = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, '/')) => pattern.push('/'),
                    Some((_, e)) => {
                        pattern.push('\\');
                        pattern.push(e);
                    }
                    None => break,
                },
                '/' => {
                    self.pos += i + 1;
                    return compile("Match", &pattern, Wrap::Plain)
                        .map_err(|e| self.error_at(start, e.message));
                }
                c => pattern.push(c),
            }
        }
        Err(self.error_at(start, "unterminated regex (no closing /)"))
    }

    /// The operator and operand after a target that starts at `start`.
    fn comparison(&mut self, start: usize) -> Result<Test, ParseError> {
        self.skip_ws();
        let op_at = self.pos;
        let op = ["==", "!=", "=~", "!~"]
            .into_iter()
            .find(|op| self.rest().starts_with(op))
            .ok_or_else(|| {
                let target = self.src[start..self.pos].trim_end();
                self.unexpected(&format!("`==`, `!=`, `=~` or `!~` after `{target}`"))
            })?;
        self.pos += 2;
        self.skip_ws();
        let value_at = self.pos;
        match (op, self.peek()) {
            ("==" | "!=", Some(q @ ('\'' | '"'))) => {
                let s = self.string(q)?.into_bytes().into_boxed_slice();
                Ok(if op == "==" { Test::Eq(s) } else { Test::Ne(s) })
            }
            ("==" | "!=", Some('N')) if self.rest().starts_with("NIL") => {
                self.word();
                Ok(if op == "==" {
                    Test::Absent
                } else {
                    Test::Present
                })
            }
            ("=~" | "!~", Some('/')) => {
                let r = self.regex()?;
                Ok(if op == "=~" {
                    Test::Re(r)
                } else {
                    Test::NotRe(r)
                })
            }
            ("==" | "!=", Some('/')) => Err(self.error_at(
                value_at,
                format!(
                    "`{op}` compares with a 'string'; use `{}` for a /regex/",
                    if op == "==" { "=~" } else { "!~" }
                ),
            )),
            ("=~" | "!~", Some('\'' | '"')) => Err(self.error_at(
                value_at,
                format!("`{op}` needs a /regex/ operand, not a string"),
            )),
            ("==" | "!=", _) => Err(self.unexpected(&format!(
                "a 'string', \"string\" or NIL after `{op}` (at column {})",
                self.error_at(op_at, "").column
            ))),
            _ => Err(self.unexpected(&format!("a /regex/ after `{op}`"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn event(fields: &[(&str, &str)]) -> LogEvent {
        let mut e = LogEvent::new(1);
        for (k, v) in fields {
            e.contents.push((b(k), b(v)));
        }
        e
    }

    fn tags(pairs: &[(&str, &str)]) -> Vec<(Bytes, Bytes)> {
        pairs.iter().map(|(k, v)| (b(k), b(v))).collect()
    }

    /// Evaluates `expr` on one event with tag env=prod and topic `access`.
    fn on(expr: &str, fields: &[(&str, &str)]) -> bool {
        let m = Matcher::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        m.matches(&tags(&[("env", "prod")]), b"access", &event(fields))
    }

    fn err(expr: &str) -> ParseError {
        match Matcher::parse(expr) {
            Ok(m) => panic!("{expr} parsed: {m:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn comparisons_on_fields_tags_and_topic() {
        let f = [("level", "error"), ("status", "503")];
        assert!(on("Fields[level] == 'error'", &f));
        assert!(!on("Fields[level] != 'error'", &f));
        assert!(on(r#"Fields[level] == "error""#, &f));
        assert!(on(r"Fields[status] =~ /^5\d\d$/", &f));
        assert!(!on(r"Fields[status] !~ /^5\d\d$/", &f));
        assert!(on("Tags[env] == 'prod'", &f));
        assert!(!on("Tags[env] == 'dev'", &f));
        assert!(on("Topic == 'access'", &f));
        assert!(on("Topic =~ /^acc/", &f));
        assert!(on("TRUE", &f));
        assert!(!on("FALSE", &f));
        assert!(on("Has(Fields[level])", &f));
        assert!(!on("Has(Fields[nope])", &f));
        assert!(on("Has(Tags[env]) && Has(Topic)", &f));
        assert!(on("Fields[nope] == NIL && Fields[level] != NIL", &f));
    }

    #[test]
    fn missing_values_never_equal_and_negations_are_exact() {
        assert!(!on("Fields[x] == ''", &[]));
        assert!(on("Fields[x] != ''", &[]));
        assert!(!on("Fields[x] =~ /^$/", &[]));
        assert!(on("Fields[x] !~ /^$/", &[]));
        assert!(!on("Tags[x] == ''", &[]));
        // The topic always has a value (empty when there is none).
        let m = Matcher::parse("Topic == ''").unwrap();
        assert!(m.matches(&[], b"", &event(&[])));
        assert!(!Matcher::parse("Has(Topic)")
            .unwrap()
            .matches(&[], b"", &event(&[])));
    }

    #[test]
    fn precedence_and_parentheses() {
        // && binds tighter than ||: TRUE || (FALSE && FALSE).
        assert!(on("TRUE || FALSE && FALSE", &[]));
        assert!(!on("(TRUE || FALSE) && FALSE", &[]));
        assert!(on("FALSE && FALSE || TRUE", &[]));
        // ! binds tighter than &&.
        assert!(!on("!TRUE && FALSE", &[]));
        assert!(on("!(TRUE && FALSE)", &[]));
        assert!(on("!!TRUE", &[]));
        assert!(on("! ( ! ( TRUE ) )", &[]));
        let f = [("status", "502"), ("level", "info")];
        let e = r"Fields[status] =~ /^5\d\d$/ && !(Fields[level] == 'debug') || Tags[env] == 'x' || Topic == 'y'";
        assert!(on(e, &f));
        assert!(!on(e, &[("status", "502"), ("level", "debug")]));
        assert!(on(
            e.replace("'y'", "'access'").as_str(),
            &[("level", "debug")]
        ));
        // Left-associative chains.
        assert!(on("FALSE || FALSE || TRUE", &[]));
        assert!(!on("TRUE && TRUE && FALSE", &[]));
        // No whitespace needed.
        assert!(on(
            "Fields[a]=='1'&&!(Fields[b]=='2')||FALSE",
            &[("a", "1")]
        ));
    }

    #[test]
    fn quoting_and_keys() {
        assert!(on(r"Fields[m] == 'it\'s'", &[("m", "it's")]));
        assert!(on(r#"Fields[m] == "say \"hi\"""#, &[("m", "say \"hi\"")]));
        assert!(on(r"Fields[m] == 'a\\b\tc\n'", &[("m", "a\\b\tc\n")]));
        assert!(on(r#"Fields[m] == "it's""#, &[("m", "it's")]));
        assert!(on("Fields['my key'] == 'v'", &[("my key", "v")]));
        assert!(on(r#"Fields["a]b"] == 'v'"#, &[("a]b", "v")]));
        assert!(on("Fields[ __tag__:x ] == 'v'", &[("__tag__:x", "v")]));
        assert!(on("Fields[a.b-c] == 'v'", &[("a.b-c", "v")]));
        assert!(on("Fields[k] == '日本'", &[("k", "日本")]));
    }

    #[test]
    fn regex_literals() {
        assert!(on(r"Fields[p] =~ /^\/api\/v1/", &[("p", "/api/v1/x")]));
        assert!(on(r"Fields[p] =~ /(?i)^GET$/", &[("p", "get")]));
        // Go semantics: \d is ASCII only.
        assert!(!on(r"Fields[p] =~ /^\d$/", &[("p", "٣")]));
        // Unanchored by default.
        assert!(on("Fields[p] =~ /rr/", &[("p", "error")]));
    }

    #[test]
    fn errors_carry_positions() {
        let e = err("Fields[level] = 'x'");
        assert_eq!(e.column, 15, "{e}");
        assert!(e.message.contains("`==`, `!=`, `=~` or `!~`"), "{e}");
        let e = err("Fields[level] == 'x' &&");
        assert_eq!(e.column, 24, "{e}");
        assert!(e.message.contains("found the end"), "{e}");
        let e = err("(TRUE || FALSE");
        assert_eq!(e.column, 15, "{e}");
        assert!(e.message.contains("column 1"), "{e}");
        let e = err("TRUE)");
        assert_eq!(e.column, 5, "{e}");
        assert!(e.message.contains("unbalanced"), "{e}");
        let e = err("TRUE FALSE");
        assert_eq!(e.column, 6, "{e}");
        let e = err("Fields[level] == 'x");
        assert_eq!(e.column, 18, "{e}");
        assert!(e.message.contains("unterminated string"), "{e}");
        let e = err("Fields[a] =~ /(/");
        assert_eq!(e.column, 14, "{e}");
        assert!(e.message.contains("invalid regex"), "{e}");
        assert!(!e.message.contains('\n'), "{e}");
        let e = err("Fields[a] =~ /abc");
        assert!(e.message.contains("unterminated regex"), "{e}");
        let e = err("Fields[a] == /x/");
        assert_eq!(e.column, 14, "{e}");
        assert!(e.message.contains("use `=~`"), "{e}");
        let e = err("Fields[a] =~ 'x'");
        assert!(e.message.contains("/regex/"), "{e}");
        let e = err("Fields[] == 'x'");
        assert_eq!(e.column, 8, "{e}");
        assert!(e.message.contains("empty key"), "{e}");
        let e = err("Fields[a == 'x'");
        assert!(e.message.contains("not closed"), "{e}");
        let e = err("Field[a] == 'x'");
        assert_eq!(e.column, 1, "{e}");
        assert!(e.message.contains("unknown name `Field`"), "{e}");
        let e = err("Fields[a] == 'x' & TRUE");
        assert_eq!(e.column, 18, "{e}");
        let e = err("   ");
        assert!(e.message.contains("empty"), "{e}");
        let e = err(r"Fields[a] == 'x\q'");
        assert_eq!(e.column, 16, "{e}");
        let e = err("Has(Fields[a]");
        assert!(e.message.contains("`)`"), "{e}");
        let e = err("Topic");
        assert!(e.message.contains("after `Topic`"), "{e}");
        // Columns count characters, not bytes.
        let e = err("Fields[k] == '日本' &");
        assert_eq!(e.column, 19, "{e}");
        assert_eq!(e.offset, 22, "{e}");
        let deep = format!("{}TRUE{}", "(".repeat(100), ")".repeat(100));
        assert!(err(&deep).message.contains("nested deeper"));
        let e = err(&format!("{}TRUE", "!".repeat(100)));
        assert!(e.message.contains("nested deeper"), "{e}");
        // Moderate nesting is fine.
        assert!(on(
            &format!("{}TRUE{}", "(".repeat(30), ")".repeat(30)),
            &[]
        ));
    }

    /// Runs `f` on a thread with a small stack (a quarter of a tokio worker's), so that
    /// recursion that grows with the length of a condition fails here in every build.
    fn small_stack(f: impl FnOnce() + Send) {
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .stack_size(512 * 1024)
                .spawn_scoped(s, f)
                .unwrap()
                .join()
                .unwrap()
        });
    }

    #[test]
    fn long_chains_are_parsed_evaluated_and_dropped_without_deep_recursion() {
        small_stack(|| {
            let terms = |op: &str, cmp: &str| {
                (0..100_000)
                    .map(|i| format!("Fields[k] {cmp} '{i}'"))
                    .collect::<Vec<_>>()
                    .join(op)
            };
            let all_ne = Matcher::parse(&terms(" && ", "!=")).unwrap();
            let any_eq = Matcher::parse(&terms(" || ", "==")).unwrap();
            // `a && b || c && d || ...`: 50,000 conjunctions of two.
            let pairs = (0..50_000)
                .map(|i| format!("Fields[k] == '{i}' && Has(Fields[k])"))
                .collect::<Vec<_>>()
                .join(" || ");
            let pairs = Matcher::parse(&pairs).unwrap();
            for (k, ne, eq) in [
                ("x", true, false),
                ("99999", false, true),
                ("0", false, true),
            ] {
                let e = event(&[("k", k)]);
                assert_eq!(all_ne.matches(&[], b"", &e), ne, "{k}");
                assert_eq!(any_eq.matches(&[], b"", &e), eq, "{k}");
                assert_eq!(pairs.matches(&[], b"", &e), k != "99999" && eq, "{k}");
            }
            drop((all_ne, any_eq, pairs));
            // The deepest nesting allowed (a `(` and a `!` per level), each level with a chain.
            let nest = |levels: usize| {
                (0..levels).fold("TRUE".to_string(), |inner, i| {
                    format!("(FALSE || Fields[k] != '{i}' && !{inner})")
                })
            };
            let m = Matcher::parse(&nest(MAX_DEPTH / 2)).unwrap_or_else(|e| panic!("{e}"));
            assert!(m.matches(&[], b"", &event(&[("k", "x")])));
            assert!(!m.matches(&[], b"", &event(&[("k", "31")])));
            assert!(err(&format!("!{}", nest(MAX_DEPTH / 2)))
                .message
                .contains("nested deeper"));
            // Nesting beyond the limit is a config error, however long.
            for deep in ["!".repeat(100_000) + "TRUE", "(".repeat(100_000) + "TRUE"] {
                assert!(err(&deep).message.contains("nested deeper"));
            }
        });
    }

    fn group(levels: &[&str]) -> EventGroup {
        let mut g = EventGroup::new(b("src"));
        g.topic = b("t");
        g.tags = tags(&[("env", "prod"), ("__pack_id__", "A-1")]);
        for (i, l) in levels.iter().enumerate() {
            g.events.push(event(&[("level", l), ("i", &i.to_string())]));
        }
        g
    }

    fn indexes(s: Selection) -> Vec<String> {
        match s {
            Selection::Some(g) => {
                assert_eq!(g.source, b("src"));
                assert_eq!(g.topic, b("t"));
                assert_eq!(g.tags.len(), 2);
                g.events
                    .iter()
                    .map(|e| String::from_utf8_lossy(e.get(b"i").unwrap()).into_owned())
                    .collect()
            }
            other => panic!("expected Some, got {other:?}"),
        }
    }

    #[test]
    fn select_all_nothing_or_a_filtered_copy() {
        let m = Matcher::parse("Fields[level] == 'error'").unwrap();
        assert!(matches!(
            m.select(&group(&["error", "error"])),
            Selection::All
        ));
        assert!(matches!(
            m.select(&group(&["info", "info"])),
            Selection::Nothing
        ));
        assert!(matches!(m.select(&group(&[])), Selection::Nothing));
        assert_eq!(
            indexes(m.select(&group(&["error", "info", "error", "info"]))),
            ["0", "2"]
        );
        assert_eq!(
            indexes(m.select(&group(&["info", "info", "error", "error"]))),
            ["2", "3"]
        );
        assert_eq!(
            indexes(m.select(&group(&["error", "error", "info"]))),
            ["0", "1"]
        );
        // Group-level conditions are decided once.
        let m = Matcher::parse("Tags[env] == 'prod' && Topic == 't'").unwrap();
        assert!(matches!(m.select(&group(&["a", "b"])), Selection::All));
        let m = Matcher::parse("Tags[env] == 'dev'").unwrap();
        assert!(matches!(m.select(&group(&["a", "b"])), Selection::Nothing));
    }

    #[test]
    fn filtered_copies_share_the_bytes() {
        let m = Matcher::parse("Fields[level] == 'error'").unwrap();
        let g = group(&["info", "error"]);
        let Selection::Some(f) = m.select(&g) else {
            panic!()
        };
        assert_eq!(
            f.events[0].contents[0].1.as_ptr(),
            g.events[1].contents[0].1.as_ptr()
        );
    }
}
