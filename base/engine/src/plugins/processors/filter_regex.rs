//! `processor_filter_regex`: keeps a log only if every `Include` key exists and its value
//! matches, and no `Exclude` key's value matches. Regexes search (use `^…$` to anchor).

use crate::api::prelude::*;
use crate::patterns::{compile, Wrap};
use regex::bytes::Regex;
use std::collections::BTreeMap;

/// Options of `processor_filter_regex`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Options {
    /// Key → regex: all must be present and match.
    #[serde(default)]
    include: Option<BTreeMap<String, String>>,
    /// Key → regex: any match drops the log.
    #[serde(default)]
    exclude: Option<BTreeMap<String, String>>,
}

struct FilterRegex {
    include: Vec<(Bytes, Regex)>,
    exclude: Vec<(Bytes, Regex)>,
}

fn rules(
    field: &str,
    map: Option<BTreeMap<String, String>>,
) -> Result<Vec<(Bytes, Regex)>, DetailError> {
    map.unwrap_or_default()
        .into_iter()
        .map(|(key, pattern)| {
            let re = compile(&format!("{field}.{key}"), &pattern, Wrap::Plain)?;
            Ok((Bytes::from(key), re))
        })
        .collect()
}

fn new(detail: &Value) -> Result<FilterRegex, DetailError> {
    let o: Options = parse_detail(detail)?;
    Ok(FilterRegex {
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

impl FilterRegex {
    fn keep(&self, e: &LogEvent) -> bool {
        for (key, re) in &self.include {
            let mut found = false;
            for (k, v) in &e.contents {
                if k == key {
                    if !re.is_match(v) {
                        return false;
                    }
                    found = true;
                }
            }
            if !found {
                return false;
            }
        }
        !e.contents.iter().any(|(k, v)| {
            self.exclude
                .iter()
                .any(|(key, re)| k == key && re.is_match(v))
        })
    }
}

impl Processor for FilterRegex {
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
    use crate::plugins::processors::test_support::event;
    use serde_json::json;

    /// Runs the filter over `events`; returns the indices of the kept ones.
    fn kept(detail: Value, events: &[&[(&str, &str)]]) -> Vec<usize> {
        let mut p = new(&detail).expect("build");
        let mut g = EventGroup::default();
        for (i, ev) in events.iter().enumerate() {
            let mut e = event(ev);
            e.time = i as u32;
            g.events.push(e);
        }
        p.process(&mut g);
        g.events.iter().map(|e| e.time as usize).collect()
    }

    #[test]
    fn ilogtail_docs_example() {
        let logs: [&[(&str, &str)]; 3] = [
            &[
                ("ip", "10.200.1.7"),
                ("method", "POST"),
                ("brower", "aliyun-sdk-java"),
            ],
            &[
                ("ip", "10.200.1.8"),
                ("method", "POST"),
                ("brower", "chrome"),
            ],
            &[
                ("ip", "192.168.0.1"),
                ("method", "POST"),
                ("brower", "aliyun-sls-ilogtail"),
            ],
        ];
        let d = json!({
            "Include": {"ip": "10\\..*", "method": "POST"},
            "Exclude": {"brower": "aliyun.*"}
        });
        assert_eq!(kept(d, &logs), vec![1]);
    }

    #[test]
    fn nginx_errors_without_health_checks() {
        let logs: [&[(&str, &str)]; 5] = [
            &[("status", "200"), ("url", "/api/users")],
            &[("status", "502"), ("url", "/api/orders")],
            &[("status", "503"), ("url", "/healthz")],
            &[("status", "404"), ("url", "/favicon.ico")],
            &[("url", "/api/no-status")],
        ];
        let d = json!({"Include": {"status": "^[45]\\d\\d$"}, "Exclude": {"url": "^/health"}});
        assert_eq!(
            kept(d, &logs),
            vec![1, 3],
            "a log without an Include key is dropped"
        );
    }

    #[test]
    fn every_include_must_match_and_any_exclude_drops() {
        let logs: [&[(&str, &str)]; 4] = [
            &[("level", "ERROR"), ("service", "payment")],
            &[("level", "ERROR"), ("service", "search")],
            &[("level", "INFO"), ("service", "payment")],
            &[
                ("level", "ERROR"),
                ("service", "payment"),
                ("env", "staging"),
            ],
        ];
        let d = json!({
            "Include": {"level": "ERROR|FATAL", "service": "^payment$"},
            "Exclude": {"env": "staging", "missing": ".*"}
        });
        assert_eq!(kept(d, &logs), vec![0]);
        // Exclude only: a key that is absent never excludes.
        let d = json!({"Exclude": {"level": "^INFO$"}});
        assert_eq!(kept(d, &logs), vec![0, 1, 3]);
    }

    #[test]
    fn search_semantics_and_ascii_digits() {
        let logs: [&[(&str, &str)]; 3] = [
            &[("msg", "took 1500 ms")],
            &[("msg", "took ١٥٠٠ ms")],
            &[("msg", "multi\nline 42")],
        ];
        // Unanchored: a match anywhere counts; \d is ASCII as in Go.
        assert_eq!(kept(json!({"Include": {"msg": "\\d+ ms"}}), &logs), vec![0]);
        assert_eq!(
            kept(json!({"Include": {"msg": "^line"}}), &logs),
            Vec::<usize>::new()
        );
        assert_eq!(
            kept(json!({"Include": {"msg": "(?m)^line"}}), &logs),
            vec![2]
        );
    }

    #[test]
    fn no_rules_keep_everything() {
        let logs: [&[(&str, &str)]; 2] = [&[("a", "1")], &[]];
        assert_eq!(kept(json!({}), &logs), vec![0, 1]);
        assert_eq!(
            kept(json!({"Include": null, "Exclude": {}}), &logs),
            vec![0, 1]
        );
    }

    #[test]
    fn config_errors_name_the_field() {
        let e = new(&json!({"Include": {"status": "([45]"}})).err().unwrap();
        assert_eq!(e.field, "Include.status");
        let e = new(&json!({"Exclude": {"url": "*bad"}})).err().unwrap();
        assert_eq!(e.field, "Exclude.url");
        let e = new(&json!({"Include": {"a": 1}})).err().unwrap();
        assert_eq!(e.field, "Include.a");
        let e = new(&json!({"Include": ["a"]})).err().unwrap();
        assert_eq!(e.field, "Include");
        assert!(build(
            &json!({"Include": {"a": "b"}}),
            &PluginContext::for_check("t")
        )
        .is_ok());
    }
}
