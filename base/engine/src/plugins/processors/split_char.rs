//! `processor_split_char`: splits one content on a single-byte separator (CSV-like, with
//! optional quoting) into the fields `SplitKeys`. Unquoted fields and quoted fields without
//! doubled quotes are zero-copy slices of the source value.

use super::parse_support::{preview, set_all, SourceKey, WarnLimiter};
use crate::api::prelude::*;

const NAME: &str = "processor_split_char";

/// Key of the unsplit rest when there are more fields than keys.
const PRESERVE_KEY: &[u8] = b"_split_preserve_";

fn yes() -> bool {
    true
}

fn content() -> String {
    "content".into()
}

fn newline() -> String {
    "\n".into()
}

fn double_quote() -> String {
    "\"".into()
}

/// Options of `processor_split_char`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Options {
    /// Content to split; `""` means the first content.
    #[serde(default = "content")]
    source_key: String,
    /// The separator: exactly one byte.
    #[serde(default = "newline")]
    split_sep: String,
    /// Field names, in order.
    split_keys: Vec<String>,
    /// Fields may be enclosed in `Quote`.
    #[serde(default)]
    quote_flag: bool,
    /// The quote: exactly one byte (used with `QuoteFlag`).
    #[serde(default = "double_quote")]
    quote: String,
    /// Keep the rest after the last key as `_split_preserve_`.
    #[serde(default = "yes")]
    preserve_others: bool,
    /// Warn when a log has no source content.
    #[serde(default)]
    no_key_error: bool,
    /// Warn when there are fewer fields than keys.
    #[serde(default)]
    no_match_error: bool,
    /// Keep the source content after splitting.
    #[serde(default)]
    keep_source: bool,
    /// Keep the source content when quoting is malformed.
    #[serde(default = "yes")]
    keep_source_if_parse_error: bool,
}

struct SplitChar {
    source: SourceKey,
    sep: u8,
    quote: Option<u8>,
    keys: Vec<Bytes>,
    preserve_others: bool,
    no_key_error: bool,
    no_match_error: bool,
    keep_source: bool,
    keep_source_if_parse_error: bool,
    fields: Vec<(Bytes, Bytes)>,
    warn: WarnLimiter,
}

fn one_byte(field: &str, s: &str) -> Result<u8, DetailError> {
    match s.as_bytes() {
        [b] => Ok(*b),
        _ => Err(DetailError::new(
            field,
            format!("must be exactly one byte (e.g. \",\" or \"\\u0001\"), got {s:?}"),
        )),
    }
}

fn new(detail: &Value, cx: &PluginContext) -> Result<SplitChar, DetailError> {
    let o: Options = parse_detail(detail)?;
    let sep = one_byte("SplitSep", &o.split_sep)?;
    let quote = if o.quote_flag {
        let q = one_byte("Quote", &o.quote)?;
        if q == sep {
            return Err(DetailError::new("Quote", "must differ from SplitSep"));
        }
        Some(q)
    } else {
        None
    };
    if o.split_keys.is_empty() {
        return Err(DetailError::new("SplitKeys", "must name at least one key"));
    }
    Ok(SplitChar {
        source: SourceKey::new(o.source_key),
        sep,
        quote,
        keys: o
            .split_keys
            .iter()
            .map(|k| config_text(k.as_bytes()))
            .collect(),
        preserve_others: o.preserve_others,
        no_key_error: o.no_key_error,
        no_match_error: o.no_match_error,
        keep_source: o.keep_source,
        keep_source_if_parse_error: o.keep_source_if_parse_error,
        fields: Vec::new(),
        warn: WarnLimiter::new(NAME, cx),
    })
}

pub(crate) fn build(detail: &Value, cx: &PluginContext) -> Result<Box<dyn Processor>, DetailError> {
    Ok(Box::new(new(detail, cx)?))
}

/// Why a quoted value could not be split.
#[derive(Debug, PartialEq, Eq)]
enum SplitError {
    /// A quoted field never closes.
    Unterminated { at: usize },
    /// A closing quote is followed by neither the separator nor the end.
    AfterQuote { at: usize },
}

impl std::fmt::Display for SplitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SplitError::Unterminated { at } => write!(f, "quote opened at byte {at} never closes"),
            SplitError::AfterQuote { at } => {
                write!(f, "no continue quote: byte {at} follows a closing quote")
            }
        }
    }
}

/// Finds `b` in `s`.
fn find(s: &[u8], b: u8) -> Option<usize> {
    s.iter().position(|&c| c == b)
}

/// Reads the quoted field opening at `open`: its value and where the next field starts
/// (`None` at the end of the value). A doubled quote stands for one quote.
fn quoted(v: &Bytes, open: usize, sep: u8, q: u8) -> Result<(Bytes, Option<usize>), SplitError> {
    let s = v.as_ref();
    let start = open + 1;
    let mut i = start;
    let mut unescaped: Option<Vec<u8>> = None;
    loop {
        let Some(off) = find(&s[i..], q) else {
            return Err(SplitError::Unterminated { at: open });
        };
        let j = i + off;
        if s.get(j + 1) == Some(&q) {
            // Up to and including the first quote of the pair.
            unescaped
                .get_or_insert_with(|| Vec::with_capacity(s.len() - start))
                .extend_from_slice(&s[i..=j]);
            i = j + 2;
            continue;
        }
        let value = match unescaped {
            None => v.slice(start..j),
            Some(mut buf) => {
                buf.extend_from_slice(&s[i..j]);
                Bytes::from(buf)
            }
        };
        return match s.get(j + 1) {
            None => Ok((value, None)),
            Some(&b) if b == sep => Ok((value, Some(j + 2))),
            Some(_) => Err(SplitError::AfterQuote { at: j + 1 }),
        };
    }
}

impl SplitChar {
    /// Splits `v` into `self.fields`; returns how many keys got a value. On error the
    /// fields before the malformed one are kept (as iLogtail does).
    fn split(&mut self, v: &Bytes) -> Result<usize, SplitError> {
        let s = v.as_ref();
        if s.is_empty() {
            return Ok(0);
        }
        let mut pos = 0;
        for (k, key) in self.keys.iter().enumerate() {
            let (value, next) = match self.quote {
                Some(q) if s.get(pos) == Some(&q) => quoted(v, pos, self.sep, q)?,
                _ => match find(&s[pos..], self.sep) {
                    Some(off) => (v.slice(pos..pos + off), Some(pos + off + 1)),
                    None => (v.slice(pos..), None),
                },
            };
            self.fields.push((key.clone(), value));
            match next {
                Some(p) => pos = p,
                None => return Ok(k + 1),
            }
        }
        if self.preserve_others && pos < s.len() {
            self.fields
                .push((Bytes::from_static(PRESERVE_KEY), v.slice(pos..)));
        }
        Ok(self.keys.len())
    }

    fn process_event(&mut self, e: &mut LogEvent) {
        let Some(idx) = self.source.find(e) else {
            if self.no_key_error {
                let source = &self.source;
                self.warn.warn("SPLIT_FIND_ALARM", || {
                    format!("cannot find key {}", source.name())
                });
            }
            return;
        };
        let value = e.contents[idx].1.clone();
        self.fields.clear();
        let ok = match self.split(&value) {
            Ok(n) => {
                if n < self.keys.len() && self.no_match_error {
                    let want = self.keys.len();
                    self.warn.warn("SPLIT_LOG_ALARM", || {
                        format!(
                            "split keys not match, split len {n} of {want}, log {}",
                            preview(&value)
                        )
                    });
                }
                true
            }
            Err(err) => {
                self.warn.warn("SPLIT_LOG_ALARM", || {
                    format!("{err}, log {}", preview(&value))
                });
                false
            }
        };
        if !(self.keep_source || (self.keep_source_if_parse_error && !ok)) {
            e.contents.remove(idx);
        }
        set_all(e, &mut self.fields);
    }
}

impl Processor for SplitChar {
    fn process(&mut self, group: &mut EventGroup) {
        for e in &mut group.events {
            self.process_event(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::processors::test_support::{built, event, pairs, run_one};
    use serde_json::json;

    fn proc(detail: Value) -> SplitChar {
        built(new, &detail)
    }

    fn csv(keys: &[&str]) -> SplitChar {
        proc(json!({
            "SourceKey": "content", "SplitSep": ",", "QuoteFlag": true, "SplitKeys": keys
        }))
    }

    #[test]
    fn pipe_delimited_access_log_from_the_ilogtail_docs() {
        let keys = [
            "ip",
            "time",
            "method",
            "url",
            "request_time",
            "request_length",
            "status",
            "length",
            "ref_url",
            "browser",
        ];
        let mut p = proc(json!({"SourceKey": "content", "SplitSep": "|", "SplitKeys": keys}));
        let line = "127.0.0.1|10/Aug/2017:14:57:51 +0800|POST|PutData?Category=YunOsAccountOpLog|0.024|18204|200|37|-|aliyun-sdk-java";
        let out = run_one(&mut p, event(&[("content", line)]));
        assert_eq!(
            out,
            pairs(&[
                ("ip", "127.0.0.1"),
                ("time", "10/Aug/2017:14:57:51 +0800"),
                ("method", "POST"),
                ("url", "PutData?Category=YunOsAccountOpLog"),
                ("request_time", "0.024"),
                ("request_length", "18204"),
                ("status", "200"),
                ("length", "37"),
                ("ref_url", "-"),
                ("browser", "aliyun-sdk-java"),
            ])
        );
    }

    #[test]
    fn csv_with_quotes_separators_and_doubled_quotes() {
        let mut p = csv(&["year", "make", "model", "notes", "price"]);
        let line = r#"1999,Chevy,"Venture ""Extended Edition, Very Large""","",5000.00"#;
        let out = run_one(&mut p, event(&[("content", line)]));
        assert_eq!(
            out,
            pairs(&[
                ("year", "1999"),
                ("make", "Chevy"),
                ("model", r#"Venture "Extended Edition, Very Large""#),
                ("notes", ""),
                ("price", "5000.00"),
            ])
        );
        assert_eq!(p.warn.raised(), 0);
    }

    #[test]
    fn ilogtail_quote_cases_with_preserve() {
        let mut p = csv(&["key1", "key2", "key3", "key4", "key5"]);
        let line = r#"1999,Chevy,"Venture ""Extended Edition, Very Large""","","5000.00""", ,,,"#;
        let out = run_one(&mut p, event(&[("content", line)]));
        assert_eq!(out[4], ("key5".to_string(), "5000.00\"".to_string()));
        assert_eq!(out[5], ("_split_preserve_".to_string(), " ,,,".to_string()));
        let line = r#",Chevy,"Venture ""Extended Edition, Very Large""",,"5000.00""", "#;
        let out = run_one(&mut p, event(&[("content", line)]));
        assert_eq!(
            out,
            pairs(&[
                ("key1", ""),
                ("key2", "Chevy"),
                ("key3", r#"Venture "Extended Edition, Very Large""#),
                ("key4", ""),
                ("key5", "5000.00\""),
                ("_split_preserve_", " "),
            ])
        );
    }

    #[test]
    fn multiline_value_split_on_bracket_keeps_other_contents_in_order() {
        // iLogtail's TestNormal: other contents stay, the rest goes to _split_preserve_.
        let mut p =
            proc(json!({"SourceKey": "content", "SplitSep": "[", "SplitKeys": ["key1", "key2"]}));
        let log = "[2017-12-12 00:00:00] 你好\n  hello\n\t\n[2017xxxxxx]yyyy\nzzzz\n\t你好[你好";
        let out = run_one(
            &mut p,
            event(&[("preserve_1", "1"), ("content", log), ("preserve_2", "2")]),
        );
        assert_eq!(
            out,
            pairs(&[
                ("preserve_1", "1"),
                ("preserve_2", "2"),
                ("key1", ""),
                ("key2", "2017-12-12 00:00:00] 你好\n  hello\n\t\n"),
                ("_split_preserve_", "2017xxxxxx]yyyy\nzzzz\n\t你好[你好"),
            ])
        );
    }

    #[test]
    fn preserve_others_off_drops_the_rest() {
        let mut p = proc(json!({
            "SplitSep": "\t", "SplitKeys": ["date", "level"], "PreserveOthers": false
        }));
        let out = run_one(
            &mut p,
            event(&[("content", "2023-10-10\tINFO\tserver started\tport=8080")]),
        );
        assert_eq!(out, pairs(&[("date", "2023-10-10"), ("level", "INFO")]));
    }

    #[test]
    fn control_char_separator() {
        let mut p = proc(json!({"SplitSep": "\u{0001}", "SplitKeys": ["a", "b", "c"]}));
        let out = run_one(&mut p, event(&[("content", "x\u{1}y z\u{1}")]));
        assert_eq!(out, pairs(&[("a", "x"), ("b", "y z"), ("c", "")]));
    }

    #[test]
    fn fewer_fields_than_keys_warns_only_with_no_match_error() {
        let mut p = csv(&["a", "b", "c"]);
        let out = run_one(&mut p, event(&[("content", "1,2")]));
        assert_eq!(out, pairs(&[("a", "1"), ("b", "2")]));
        assert_eq!(p.warn.raised(), 0);

        let mut p = proc(json!({
            "SplitSep": ",", "SplitKeys": ["a", "b", "c"], "NoMatchError": true
        }));
        let out = run_one(&mut p, event(&[("content", "1,2")]));
        assert_eq!(out, pairs(&[("a", "1"), ("b", "2")]));
        assert_eq!(p.warn.raised(), 1);
        // An empty value has no fields at all (and is not a parse error: source dropped).
        let out = run_one(&mut p, event(&[("content", "")]));
        assert!(out.is_empty());
        assert_eq!(p.warn.raised(), 2);
    }

    #[test]
    fn trailing_separator_is_an_empty_last_field() {
        let mut p = csv(&["a", "b"]);
        assert_eq!(
            run_one(&mut p, event(&[("content", "x,")])),
            pairs(&[("a", "x"), ("b", "")])
        );
        // A separator right after the last key leaves nothing to preserve.
        assert_eq!(
            run_one(&mut p, event(&[("content", "x,y,")])),
            pairs(&[("a", "x"), ("b", "y")])
        );
    }

    #[test]
    fn quotes_inside_unquoted_fields_are_literal() {
        let mut p = csv(&["a", "b", "c"]);
        let out = run_one(&mut p, event(&[("content", r#"say "hi",5 " x,"""""#)]));
        assert_eq!(
            out,
            pairs(&[("a", r#"say "hi""#), ("b", r#"5 " x"#), ("c", r#"""#)])
        );
        // Without QuoteFlag quotes are plain bytes and commas inside them split.
        let mut p = proc(json!({"SplitSep": ",", "SplitKeys": ["a", "b", "c"]}));
        let out = run_one(&mut p, event(&[("content", r#""x,y",z"#)]));
        assert_eq!(out, pairs(&[("a", "\"x"), ("b", "y\""), ("c", "z")]));
    }

    #[test]
    fn malformed_quotes_keep_source_and_partial_fields() {
        // iLogtail's TestKeepSourceIfParseError: fields before the bad one are kept.
        let mut p = proc(json!({
            "SplitSep": "[", "QuoteFlag": true, "SplitKeys": ["key1", "key2", "key3", "key4", "key5"]
        }));
        let log = "2017-12-12 00:00:00] 你好\n  hello\n\t\n[2017xxxxxx]yyyy\nzzzz\n\t你好[你好[\"[hello\"[\"\"invalid\"";
        let out = run_one(
            &mut p,
            event(&[("preserve_1", "1"), ("content", log), ("preserve_2", "2")]),
        );
        assert_eq!(
            out,
            pairs(&[
                ("preserve_1", "1"),
                ("content", log),
                ("preserve_2", "2"),
                ("key1", "2017-12-12 00:00:00] 你好\n  hello\n\t\n"),
                ("key2", "2017xxxxxx]yyyy\nzzzz\n\t你好"),
                ("key3", "你好"),
                ("key4", "[hello"),
            ])
        );
        assert_eq!(p.warn.raised(), 1, "parse errors always warn");

        // Unterminated quote.
        let mut p = csv(&["a", "b", "c"]);
        let line = r#"1,"unterminated, value"#;
        let out = run_one(&mut p, event(&[("content", line)]));
        assert_eq!(out, pairs(&[("content", line), ("a", "1")]));
        assert_eq!(p.warn.raised(), 1);

        // KeepSourceIfParseError false: the source goes even on error.
        let mut p = proc(json!({
            "SplitSep": ",", "QuoteFlag": true, "SplitKeys": ["a", "b"],
            "KeepSourceIfParseError": false
        }));
        let out = run_one(&mut p, event(&[("content", r#""ab"c,d"#)]));
        assert!(out.is_empty());
    }

    #[test]
    fn custom_quote_char() {
        let mut p = proc(json!({
            "SplitSep": ";", "QuoteFlag": true, "Quote": "'", "SplitKeys": ["user", "comment"]
        }));
        let out = run_one(&mut p, event(&[("content", "bob;'it''s; fine'")]));
        assert_eq!(out, pairs(&[("user", "bob"), ("comment", "it's; fine")]));
    }

    #[test]
    fn keep_source_and_missing_key() {
        let mut p = proc(json!({
            "SplitSep": ",", "SplitKeys": ["a", "b"], "KeepSource": true, "NoKeyError": true
        }));
        let out = run_one(&mut p, event(&[("content", "1,2")]));
        assert_eq!(out, pairs(&[("content", "1,2"), ("a", "1"), ("b", "2")]));
        let out = run_one(&mut p, event(&[("message", "1,2")]));
        assert_eq!(out, pairs(&[("message", "1,2")]));
        assert_eq!(p.warn.raised(), 1);
        // Empty SourceKey: the first content.
        let mut p = proc(json!({"SourceKey": "", "SplitSep": ",", "SplitKeys": ["a", "b"]}));
        let out = run_one(&mut p, event(&[("message", "1,2")]));
        assert_eq!(out, pairs(&[("a", "1"), ("b", "2")]));
    }

    #[test]
    fn values_are_slices_unless_quotes_were_doubled() {
        let mut p = csv(&["a", "b", "c"]);
        let src = Bytes::from_static(br#"plain,"quoted, ok","x""y""#);
        let range = src.as_ptr() as usize..src.as_ptr() as usize + src.len();
        let mut e = LogEvent::new(0);
        e.contents
            .push((Bytes::from_static(b"content"), src.clone()));
        p.process_event(&mut e);
        let inside = |i: usize| range.contains(&(e.contents[i].1.as_ptr() as usize));
        assert!(inside(0) && inside(1));
        assert_eq!(e.contents[1].1.as_ref(), b"quoted, ok");
        assert!(!inside(2));
        assert_eq!(e.contents[2].1.as_ref(), br#"x"y"#);
    }

    #[test]
    fn config_errors_name_the_field() {
        let cx = PluginContext::for_check("t");
        let err = |d: Value| new(&d, &cx).err().expect("should fail");
        assert_eq!(
            err(json!({"SplitSep": ",,", "SplitKeys": ["a"]})).field,
            "SplitSep"
        );
        assert_eq!(
            err(json!({"SplitSep": "", "SplitKeys": ["a"]})).field,
            "SplitSep"
        );
        assert_eq!(
            err(json!({"SplitSep": "，", "SplitKeys": ["a"]})).field,
            "SplitSep"
        );
        assert_eq!(
            err(json!({"SplitSep": ",", "QuoteFlag": true, "Quote": ",", "SplitKeys": ["a"]}))
                .field,
            "Quote"
        );
        assert_eq!(
            err(json!({"SplitSep": ",", "QuoteFlag": true, "Quote": "''", "SplitKeys": ["a"]}))
                .field,
            "Quote"
        );
        assert_eq!(
            err(json!({"SplitSep": ",", "SplitKeys": []})).field,
            "SplitKeys"
        );
        assert!(err(json!({"SplitSep": ","})).message.contains("SplitKeys"));
        assert_eq!(
            err(json!({"SplitSep": ",", "SplitKeys": ["a"], "ExpandOthers": true})).field,
            "ExpandOthers"
        );
        // Quote is not checked without QuoteFlag; SplitSep defaults to "\n".
        let mut p = proc(json!({"Quote": "xx", "SplitKeys": ["first", "second"]}));
        let out = run_one(&mut p, event(&[("content", "line one\nline two")]));
        assert_eq!(out, pairs(&[("first", "line one"), ("second", "line two")]));
    }
}
