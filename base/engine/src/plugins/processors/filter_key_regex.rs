//! `processor_filter_key_regex`: filters logs on their KEYS. A log is kept only if every
//! `Include` regex matches at least one key, and no key matches any `Exclude` regex.
//! Regexes search (use `^…$` to anchor).

use crate::api::prelude::*;
use crate::patterns::{compile, Wrap};
use regex::bytes::Regex;

/// Options of `processor_filter_key_regex`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Options {
    /// Each must match some key.
    #[serde(default)]
    include: Option<Vec<String>>,
    /// Any key matching any of these drops the log.
    #[serde(default)]
    exclude: Option<Vec<String>>,
}

struct FilterKeyRegex {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

fn rules(field: &str, list: Option<Vec<String>>) -> Result<Vec<Regex>, DetailError> {
    list.unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, p)| compile(&format!("{field}[{i}]"), p, Wrap::Plain))
        .collect()
}

fn new(detail: &Value) -> Result<FilterKeyRegex, DetailError> {
    let o: Options = parse_detail(detail)?;
    Ok(FilterKeyRegex {
        include: rules("Include", o.include)?,
        exclude: rules("Exclude", o.exclude)?,
    })
}

pub(crate) fn build(
    detail: &Value,
    _cx: &PluginContext,
) -> Result<Box<dyn Processor>, DetailError> {
    Ok(Box::new(new(detail)?))
}

impl FilterKeyRegex {
    fn keep(&self, e: &LogEvent) -> bool {
        self.include
            .iter()
            .all(|re| e.contents.iter().any(|(k, _)| re.is_match(k)))
            && !e
                .contents
                .iter()
                .any(|(k, _)| self.exclude.iter().any(|re| re.is_match(k)))
    }
}

impl Processor for FilterKeyRegex {
    fn process(&mut self, group: &mut EventGroup) {
        if self.include.is_empty() && self.exclude.is_empty() {
            return;
        }
        group.events.retain(|e| self.keep(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::json;

    fn kept(detail: Value, events: &[&[&str]]) -> Vec<usize> {
        let mut p = new(&detail).expect("build");
        let mut g = EventGroup::default();
        for (i, keys) in events.iter().enumerate() {
            let mut e = LogEvent::new(i as u32);
            for k in *keys {
                e.contents.push((
                    Bytes::copy_from_slice(k.as_bytes()),
                    Bytes::from_static(b"v"),
                ));
            }
            g.events.push(e);
        }
        p.process(&mut g);
        g.events.iter().map(|e| e.time as usize).collect()
    }

    const LOGS: [&[&str]; 4] = [
        &["time", "level", "msg", "trace_id", "span_id"],
        &["time", "level", "msg"],
        &["time", "level", "msg", "trace_id", "debug_payload"],
        &[],
    ];

    #[test]
    fn include_needs_every_regex_to_match_some_key() {
        assert_eq!(kept(json!({"Include": ["^trace_id$"]}), &LOGS), vec![0, 2]);
        assert_eq!(
            kept(json!({"Include": ["^trace_id$", "^span_"]}), &LOGS),
            vec![0]
        );
        // Unanchored search: "msg" matches "s".
        assert_eq!(kept(json!({"Include": ["s"]}), &LOGS), vec![0, 1, 2]);
    }

    #[test]
    fn exclude_drops_on_any_key() {
        assert_eq!(kept(json!({"Exclude": ["^debug_"]}), &LOGS), vec![0, 1, 3]);
        assert_eq!(
            kept(
                json!({"Include": ["^trace_id$"], "Exclude": ["^debug_", "^nope$"]}),
                &LOGS
            ),
            vec![0]
        );
    }

    #[test]
    fn no_rules_keep_everything() {
        assert_eq!(kept(json!({}), &LOGS), vec![0, 1, 2, 3]);
        assert_eq!(
            kept(json!({"Include": [], "Exclude": null}), &LOGS),
            vec![0, 1, 2, 3]
        );
    }

    #[test]
    fn config_errors_name_the_field() {
        assert_eq!(
            new(&json!({"Include": ["ok", "(bad"]}))
                .err()
                .unwrap()
                .field,
            "Include[1]"
        );
        assert_eq!(
            new(&json!({"Exclude": ["+"]})).err().unwrap().field,
            "Exclude[0]"
        );
        assert_eq!(
            new(&json!({"Include": {"a": "b"}})).err().unwrap().field,
            "Include"
        );
        assert!(build(&json!({"Include": ["a"]}), &PluginContext::for_check("t")).is_ok());
    }
}
