//! `processor_json`: parses a JSON object held in one content and flattens it into fields.
//!
//! Keys follow iLogtail's Go plugin exactly: `Prefix` + (`SourceKey` if
//! `UseSourceKeyAsPrefix`) + for every level `ExpandConnector` + name, where the connector
//! of the first level is left out only with `IgnoreFirstConnector`. Strings are unescaped;
//! numbers, booleans, `null`, and objects/arrays that are not expanded keep their exact JSON
//! text. Values without escapes are zero-copy slices of the source value.

use super::parse_support::{preview, set_all, WarnLimiter};
use crate::api::prelude::*;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt::{self, Write as _};

const NAME: &str = "processor_json";

/// Levels expanded at most, whatever `ExpandDepth` says: a value nested deeper is written as
/// its JSON text (as `ExpandDepth` would) and `PROCESSOR_JSON_DEPTH_ALARM` is raised. The walk
/// takes a few stack frames per level and re-reads the text of every object it expands, so the
/// limit bounds both its stack (a log line must never overflow the worker's) and its time. The
/// same as serde_json's nesting limit; real logs nest a handful of levels.
const MAX_EXPAND_DEPTH: u32 = 128;

fn yes() -> bool {
    true
}

fn underscore() -> String {
    "_".into()
}

/// Options of `processor_json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Options {
    /// Content holding the JSON object.
    source_key: String,
    /// Warn when a log has no source content.
    #[serde(default = "yes")]
    no_key_error: bool,
    /// Levels to expand (1 = top level only); 0 = unlimited (up to [`MAX_EXPAND_DEPTH`]).
    #[serde(default)]
    expand_depth: u32,
    /// Joins the names of nested levels.
    #[serde(default = "underscore")]
    expand_connector: String,
    /// Prepended to every extracted key.
    #[serde(default)]
    prefix: String,
    /// Keep the source content after a successful parse.
    #[serde(default = "yes")]
    keep_source: bool,
    /// Keep the source content when it is not a JSON object.
    #[serde(default = "yes")]
    keep_source_if_parse_error: bool,
    /// Start every key with the source key.
    #[serde(default)]
    use_source_key_as_prefix: bool,
    /// Leave out the connector in front of top-level names.
    #[serde(default)]
    ignore_first_connector: bool,
    /// Expand arrays into `name[i]` fields.
    #[serde(default)]
    expand_array: bool,
}

/// How objects are flattened.
#[derive(Debug)]
struct Expand {
    max_depth: u32,
    connector: String,
    ignore_first_connector: bool,
    expand_array: bool,
    /// `Prefix` + (`SourceKey` when `UseSourceKeyAsPrefix`): where every key starts.
    root: String,
}

struct JsonProcessor {
    source: Bytes,
    no_key_error: bool,
    keep_source: bool,
    keep_source_if_parse_error: bool,
    expand: Expand,
    /// Reused between events.
    fields: Vec<(Bytes, Bytes)>,
    path: String,
    warn: WarnLimiter,
}

fn new(detail: &Value, cx: &PluginContext) -> Result<JsonProcessor, DetailError> {
    let o: Options = parse_detail(detail)?;
    if o.source_key.is_empty() {
        return Err(DetailError::new(
            "SourceKey",
            "must name the content holding the JSON",
        ));
    }
    let mut root = o.prefix;
    if o.use_source_key_as_prefix {
        root.push_str(&o.source_key);
    }
    Ok(JsonProcessor {
        source: config_text(o.source_key.as_bytes()),
        no_key_error: o.no_key_error,
        keep_source: o.keep_source,
        keep_source_if_parse_error: o.keep_source_if_parse_error,
        expand: Expand {
            max_depth: o.expand_depth,
            connector: o.expand_connector,
            ignore_first_connector: o.ignore_first_connector,
            expand_array: o.expand_array,
            root,
        },
        fields: Vec::new(),
        path: String::new(),
        warn: WarnLimiter::new(NAME, cx),
    })
}

pub(crate) fn build(detail: &Value, cx: &PluginContext) -> Result<Box<dyn Processor>, DetailError> {
    Ok(Box::new(new(detail, cx)?))
}

/// The members of one JSON object, in order, values left as raw JSON text.
struct Members<'de>(Vec<(Cow<'de, str>, &'de RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key_seed(KeySeed)? {
                    members.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(ObjectVisitor)
    }
}

/// An object key, borrowed from the input unless it had escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// One flattening run over one source value.
struct Flatten<'a> {
    cfg: &'a Expand,
    src: &'a Bytes,
    path: &'a mut String,
    out: &'a mut Vec<(Bytes, Bytes)>,
    /// A value was kept as text at [`MAX_EXPAND_DEPTH`] that `ExpandDepth` would expand.
    too_deep: bool,
}

impl Expand {
    /// The connector in front of a name at `depth` (top level = 1).
    fn connector(&self, depth: u32) -> &str {
        if depth == 1 && self.ignore_first_connector {
            ""
        } else {
            &self.connector
        }
    }
}

impl Flatten<'_> {
    /// Whether members at `depth` are written as they are instead of being expanded.
    fn at_max(&mut self, depth: u32) -> bool {
        if self.cfg.max_depth != 0 && depth >= self.cfg.max_depth {
            return true;
        }
        if depth >= MAX_EXPAND_DEPTH {
            self.too_deep = true;
            return true;
        }
        false
    }

    /// Flattens the members of an object that sit at `depth` (top level = 1).
    fn members(&mut self, members: Members<'_>, depth: u32) -> Result<(), serde_json::Error> {
        for (name, raw) in members.0 {
            let base = self.path.len();
            self.path.push_str(self.cfg.connector(depth));
            self.path.push_str(&name);
            let r = self.value(raw.get(), depth);
            self.path.truncate(base);
            r?;
        }
        Ok(())
    }

    fn value(&mut self, text: &str, depth: u32) -> Result<(), serde_json::Error> {
        match text.as_bytes().first() {
            Some(b'{') if !self.at_max(depth) => {
                let members: Members<'_> = serde_json::from_str(text)?;
                self.members(members, depth + 1)
            }
            Some(b'[') if self.cfg.expand_array && !self.at_max(depth) => {
                let items: Vec<&RawValue> = serde_json::from_str(text)?;
                for (i, item) in items.iter().enumerate() {
                    let base = self.path.len();
                    let _ = write!(self.path, "[{i}]");
                    let item = item.get();
                    let r = if item.starts_with('{') {
                        serde_json::from_str(item).and_then(|m| self.members(m, depth + 1))
                    } else {
                        // Nested arrays stay JSON text, as in iLogtail.
                        self.scalar(item)
                    };
                    self.path.truncate(base);
                    r?;
                }
                Ok(())
            }
            _ => self.scalar(text),
        }
    }

    /// Writes one value: strings unescaped, anything else as its JSON text.
    fn scalar(&mut self, text: &str) -> Result<(), serde_json::Error> {
        let value = if text.starts_with('"') {
            if text.contains('\\') {
                Bytes::from(serde_json::from_str::<String>(text)?)
            } else {
                self.src.slice_ref(&text.as_bytes()[1..text.len() - 1])
            }
        } else {
            self.src.slice_ref(text.as_bytes())
        };
        self.out
            .push((Bytes::copy_from_slice(self.path.as_bytes()), value));
        Ok(())
    }
}

impl JsonProcessor {
    fn process_event(&mut self, e: &mut LogEvent) {
        let Some(idx) = e.contents.iter().position(|(k, _)| *k == self.source) else {
            if self.no_key_error {
                let source = &self.source;
                self.warn.warn("PROCESSOR_JSON_FIND_ALARM", || {
                    format!("cannot find key {}", String::from_utf8_lossy(source))
                });
            }
            return;
        };
        let src = e.contents[idx].1.clone();
        self.fields.clear();
        self.path.clear();
        self.path.push_str(&self.expand.root);
        let mut f = Flatten {
            cfg: &self.expand,
            src: &src,
            path: &mut self.path,
            out: &mut self.fields,
            too_deep: false,
        };
        let parsed = serde_json::from_slice::<Members<'_>>(&src).and_then(|m| f.members(m, 1));
        let too_deep = f.too_deep;
        match parsed {
            Ok(()) => {
                if too_deep {
                    self.warn.warn("PROCESSOR_JSON_DEPTH_ALARM", || {
                        format!(
                            "json nested deeper than {MAX_EXPAND_DEPTH} levels, the deeper \
                             values are kept as JSON text: {}",
                            preview(&src)
                        )
                    });
                }
                if !self.keep_source {
                    e.contents.remove(idx);
                }
                set_all(e, &mut self.fields);
            }
            Err(err) => {
                self.fields.clear();
                self.warn.warn("PROCESSOR_JSON_PARSER_ALARM", || {
                    format!("parser json error {err}: {}", preview(&src))
                });
                if !(self.keep_source || self.keep_source_if_parse_error) {
                    e.contents.remove(idx);
                }
            }
        }
    }
}

impl Processor for JsonProcessor {
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

    const APP_LOG: &str = r#"{"time":"2023-10-10T13:55:36.123Z","level":"INFO","msg":"user login","user":{"id":42,"name":"alice","roles":["admin","dev"],"geo":{"country":"DE","city":"Berlin"}},"latency_ms":12.50,"ok":true,"trace":null,"big":1e21}"#;

    fn proc(detail: Value) -> JsonProcessor {
        built(new, &detail)
    }

    #[test]
    fn defaults_match_ilogtail_connector_and_keep_source() {
        // iLogtail's defaults: connector "_" also in front of top-level names, source kept.
        let mut p = proc(json!({"SourceKey": "content"}));
        let out = run_one(&mut p, event(&[("content", APP_LOG)]));
        assert_eq!(
            out,
            pairs(&[
                ("content", APP_LOG),
                ("_time", "2023-10-10T13:55:36.123Z"),
                ("_level", "INFO"),
                ("_msg", "user login"),
                ("_user_id", "42"),
                ("_user_name", "alice"),
                ("_user_roles", r#"["admin","dev"]"#),
                ("_user_geo_country", "DE"),
                ("_user_geo_city", "Berlin"),
                ("_latency_ms", "12.50"),
                ("_ok", "true"),
                ("_trace", "null"),
                ("_big", "1e21"),
            ])
        );
        assert_eq!(p.warn.raised(), 0);
    }

    #[test]
    fn ignore_first_connector_and_drop_source() {
        let mut p = proc(json!({
            "SourceKey": "content", "IgnoreFirstConnector": true, "KeepSource": false
        }));
        let out = run_one(
            &mut p,
            event(&[("__tag__:path", "/var/log/app.json"), ("content", APP_LOG)]),
        );
        assert_eq!(
            out[0],
            ("__tag__:path".to_string(), "/var/log/app.json".to_string())
        );
        assert_eq!(
            out[1],
            ("time".to_string(), "2023-10-10T13:55:36.123Z".to_string())
        );
        assert!(out.contains(&("user_geo_city".to_string(), "Berlin".to_string())));
        assert!(!out.iter().any(|(k, _)| k == "content"));
        assert_eq!(out.len(), 13);
    }

    #[test]
    fn empty_connector_as_in_the_ilogtail_docs() {
        let mut p = proc(json!({
            "SourceKey": "content", "KeepSource": false, "ExpandDepth": 1, "ExpandConnector": ""
        }));
        let out = run_one(
            &mut p,
            event(&[("content", r#"{"key1": 123456, "key2": "abcd"}"#)]),
        );
        assert_eq!(out, pairs(&[("key1", "123456"), ("key2", "abcd")]));
    }

    #[test]
    fn expand_depth_keeps_deeper_objects_as_their_text() {
        let pretty = "{\n  \"level\": \"WARN\",\n  \"http\": {\"request\": {\"method\": \"GET\", \"headers\": {\"a\": 1}},\n           \"status\": 503}\n}";
        let mut p = proc(json!({
            "SourceKey": "content", "KeepSource": false, "IgnoreFirstConnector": true,
            "ExpandDepth": 2
        }));
        let out = run_one(&mut p, event(&[("content", pretty)]));
        assert_eq!(
            out,
            pairs(&[
                ("level", "WARN"),
                ("http_request", r#"{"method": "GET", "headers": {"a": 1}}"#),
                ("http_status", "503"),
            ])
        );
        let mut p = proc(json!({"SourceKey": "content", "KeepSource": false, "ExpandDepth": 1}));
        let out = run_one(&mut p, event(&[("content", pretty)]));
        assert_eq!(
            out[1],
            (
                "_http".to_string(),
                "{\"request\": {\"method\": \"GET\", \"headers\": {\"a\": 1}},\n           \"status\": 503}".to_string()
            )
        );
    }

    #[test]
    fn ilogtail_prefix_and_source_key_prefix() {
        // The case of iLogtail's own unit test.
        let v = r#"{"k1":{"k2":{"k3":{"k4":{"k51":"51","k52":"52"},"k41":"41"}}},"k6":[{"x":"a"},{"x":"b"}],"k7":[]}"#;
        let mut p = proc(json!({
            "SourceKey": "s_key", "ExpandConnector": "-", "Prefix": "j",
            "UseSourceKeyAsPrefix": true
        }));
        let out = run_one(&mut p, event(&[("s_key", v)]));
        assert_eq!(
            out,
            pairs(&[
                ("s_key", v),
                ("js_key-k1-k2-k3-k4-k51", "51"),
                ("js_key-k1-k2-k3-k4-k52", "52"),
                ("js_key-k1-k2-k3-k41", "41"),
                ("js_key-k6", r#"[{"x":"a"},{"x":"b"}]"#),
                ("js_key-k7", "[]"),
            ])
        );
        let mut p = proc(json!({
            "SourceKey": "s_key", "ExpandConnector": "-", "Prefix": "j",
            "IgnoreFirstConnector": true, "KeepSource": false, "ExpandDepth": 1
        }));
        let out = run_one(&mut p, event(&[("s_key", v)]));
        assert_eq!(out[0].0, "jk1");
        assert_eq!(
            out[0].1,
            r#"{"k2":{"k3":{"k4":{"k51":"51","k52":"52"},"k41":"41"}}}"#
        );
    }

    #[test]
    fn expand_array_names_elements_by_index() {
        let v = r#"{"tags":["a","b"],"events":[{"type":"click","pos":{"x":1}},{"type":"scroll"}],"matrix":[[1,2],3],"none":[]}"#;
        let mut p = proc(json!({
            "SourceKey": "content", "KeepSource": false, "IgnoreFirstConnector": true,
            "ExpandArray": true
        }));
        let out = run_one(&mut p, event(&[("content", v)]));
        assert_eq!(
            out,
            pairs(&[
                ("tags[0]", "a"),
                ("tags[1]", "b"),
                ("events[0]_type", "click"),
                ("events[0]_pos_x", "1"),
                ("events[1]_type", "scroll"),
                ("matrix[0]", "[1,2]"),
                ("matrix[1]", "3"),
            ])
        );
    }

    #[test]
    fn escapes_are_decoded() {
        let v = r#"{"msg":"line1\nline2 \"quoted\" \u4f60\u597d","path":"C:\\tmp","k\"ey":"v","plain":"héllo"}"#;
        let mut p = proc(json!({
            "SourceKey": "content", "KeepSource": false, "IgnoreFirstConnector": true
        }));
        let out = run_one(&mut p, event(&[("content", v)]));
        assert_eq!(
            out,
            pairs(&[
                ("msg", "line1\nline2 \"quoted\" 你好"),
                ("path", "C:\\tmp"),
                ("k\"ey", "v"),
                ("plain", "héllo"),
            ])
        );
    }

    #[test]
    fn values_are_slices_of_the_source_buffer() {
        let mut p = proc(json!({"SourceKey": "content", "KeepSource": false}));
        let src = Bytes::from(APP_LOG);
        let range = src.as_ptr() as usize..src.as_ptr() as usize + src.len();
        let mut e = LogEvent::new(0);
        e.contents
            .push((Bytes::from_static(b"content"), src.clone()));
        p.process_event(&mut e);
        assert_eq!(e.contents.len(), 12);
        for (_, v) in &e.contents {
            assert!(range.contains(&(v.as_ptr() as usize)), "value was copied");
        }
    }

    #[test]
    fn malformed_json_keeps_source_and_adds_nothing() {
        let bad = [
            r#"{"level":"INFO","msg":"truncat"#,
            r#"{"a":1,}"#,
            r#"{"a":1} trailing"#,
            r#"[{"a":1}]"#,
            r#""just a string""#,
            "42",
            "2023-10-10 13:55:36 INFO plain text line",
            "",
        ];
        let mut p = proc(json!({"SourceKey": "content", "KeepSource": false}));
        for b in bad {
            let out = run_one(&mut p, event(&[("content", b), ("x", "1")]));
            assert_eq!(out, pairs(&[("content", b), ("x", "1")]), "{b}");
        }
        assert_eq!(p.warn.raised(), bad.len() as u64);
        assert_eq!(p.warn.suppressed(), bad.len() as u64 - 1);

        let mut e = event(&[("content", "")]);
        e.contents[0].1 = Bytes::from_static(b"{\"a\":\"\xff\"}");
        let mut g = EventGroup::default();
        g.events.push(e);
        p.process(&mut g);
        assert_eq!(
            g.events[0].contents.len(),
            1,
            "invalid UTF-8 is a parse error"
        );
    }

    /// `{"a":` nested `levels` deep around `1`.
    fn nested(levels: usize) -> String {
        format!("{}1{}", r#"{"a":"#.repeat(levels), "}".repeat(levels))
    }

    /// Runs `p` over `line` on a thread with a small stack (well under the 2 MiB of a tokio
    /// worker), so that a walk whose stack grows with the nesting fails here in every build.
    fn run_small_stack(p: &mut JsonProcessor, line: &str) -> Vec<(String, String)> {
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .stack_size(512 * 1024)
                .spawn_scoped(s, || run_one(p, event(&[("content", line)])))
                .unwrap()
                .join()
                .unwrap()
        })
    }

    #[test]
    fn deep_nesting_is_expanded_to_the_limit_and_the_rest_kept_as_text() {
        let limit = MAX_EXPAND_DEPTH as usize;
        // The line of the report: 42 KB, 7,000 levels; the defaults keep the source.
        let line = nested(7000);
        let mut p = proc(json!({"SourceKey": "content"}));
        let out = run_small_stack(&mut p, &line);
        assert_eq!(
            out,
            pairs(&[
                ("content", &line),
                (&"_a".repeat(limit), &nested(7000 - limit))
            ])
        );
        assert_eq!(p.warn.raised(), 1, "PROCESSOR_JSON_DEPTH_ALARM");
        // Exactly at the limit: everything is expanded, no alarm.
        let mut p = proc(json!({"SourceKey": "content", "KeepSource": false}));
        let out = run_small_stack(&mut p, &nested(limit));
        assert_eq!(out, pairs(&[(&"_a".repeat(limit), "1")]));
        assert_eq!(p.warn.raised(), 0);
        // A larger ExpandDepth is capped; a smaller one applies as before, silently.
        let mut p = proc(json!({"SourceKey": "content", "KeepSource": false, "ExpandDepth": 1000}));
        let out = run_small_stack(&mut p, &nested(limit + 1));
        assert_eq!(out, pairs(&[(&"_a".repeat(limit), r#"{"a":1}"#)]));
        assert_eq!(p.warn.raised(), 1);
        let mut p = proc(json!({"SourceKey": "content", "KeepSource": false, "ExpandDepth": 3}));
        let out = run_small_stack(&mut p, &line);
        assert_eq!(out, pairs(&[("_a_a_a", &nested(7000 - 3))]));
        assert_eq!(p.warn.raised(), 0);
    }

    #[test]
    fn deep_arrays_and_objects_in_arrays_are_bounded_too() {
        let limit = MAX_EXPAND_DEPTH as usize;
        let arrays = format!(r#"{{"a":{}1{}}}"#, "[".repeat(7000), "]".repeat(7000));
        // `{"a":[{"a":[ ... [1] ... ]}]}`, `n` objects deep.
        let mixed = |n: usize| format!("{}1{}", r#"{"a":["#.repeat(n), "]}".repeat(n));
        let mut p = proc(json!({"SourceKey": "content", "KeepSource": false}));
        let out = run_small_stack(&mut p, &arrays);
        assert_eq!(out, pairs(&[("_a", &arrays[5..arrays.len() - 1])]));
        let mut p = proc(json!({
            "SourceKey": "content", "KeepSource": false, "ExpandArray": true,
            "IgnoreFirstConnector": true
        }));
        // Nested arrays stay JSON text.
        let out = run_small_stack(&mut p, &arrays);
        assert_eq!(out, pairs(&[("a[0]", &arrays[6..arrays.len() - 2])]));
        assert_eq!(p.warn.raised(), 0);
        // Every object counts as a level.
        let out = run_small_stack(&mut p, &mixed(3500));
        let key = format!("a{}", "[0]_a".repeat(limit - 1));
        assert_eq!(out, pairs(&[(&key, &format!("[{}]", mixed(3500 - limit)))]));
        assert_eq!(p.warn.raised(), 1);
    }

    #[test]
    fn keep_source_if_parse_error_false_drops_source() {
        let mut p = proc(json!({
            "SourceKey": "content", "KeepSource": false, "KeepSourceIfParseError": false
        }));
        let out = run_one(&mut p, event(&[("content", "{broken"), ("x", "1")]));
        assert_eq!(out, pairs(&[("x", "1")]));
        // KeepSource wins over KeepSourceIfParseError.
        let mut p = proc(json!({"SourceKey": "content", "KeepSourceIfParseError": false}));
        let out = run_one(&mut p, event(&[("content", "{broken")]));
        assert_eq!(out, pairs(&[("content", "{broken")]));
    }

    #[test]
    fn no_key_error_defaults_to_true() {
        let mut p = proc(json!({"SourceKey": "content"}));
        let out = run_one(&mut p, event(&[("message", "{}")]));
        assert_eq!(out, pairs(&[("message", "{}")]));
        assert_eq!(p.warn.raised(), 1);
        let mut p = proc(json!({"SourceKey": "content", "NoKeyError": false}));
        run_one(&mut p, event(&[("message", "{}")]));
        assert_eq!(p.warn.raised(), 0);
    }

    #[test]
    fn extracted_keys_replace_existing_ones() {
        let mut p = proc(json!({
            "SourceKey": "content", "KeepSource": false, "IgnoreFirstConnector": true
        }));
        let out = run_one(
            &mut p,
            event(&[
                ("level", "old"),
                ("content", r#"{"level":"ERROR","content":"inner"}"#),
            ]),
        );
        assert_eq!(out, pairs(&[("level", "ERROR"), ("content", "inner")]));
        // An empty object parses fine and yields nothing.
        let out = run_one(&mut p, event(&[("content", " {} ")]));
        assert!(out.is_empty());
    }

    #[test]
    fn config_errors_name_the_field() {
        let cx = PluginContext::for_check("t");
        let err = |d: Value| new(&d, &cx).err().expect("should fail");
        assert!(err(json!({})).message.contains("SourceKey"));
        assert_eq!(err(json!({"SourceKey": ""})).field, "SourceKey");
        assert_eq!(
            err(json!({"SourceKey": "c", "ExpandDepth": -1})).field,
            "ExpandDepth"
        );
        assert_eq!(err(json!({"SourceKey": "c", "Bogus": true})).field, "Bogus");
        assert!(build(&json!({"SourceKey": "content"}), &cx).is_ok());
    }
}
