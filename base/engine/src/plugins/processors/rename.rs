//! `processor_rename`: renames contents `SourceKeys[i]` to `DestKeys[i]`, in place.

use super::parse_support::WarnLimiter;
use crate::api::prelude::*;
use std::collections::HashSet;

const NAME: &str = "processor_rename";

/// Options of `processor_rename`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Options {
    /// Keys to rename.
    source_keys: Vec<String>,
    /// New names, one per source key.
    dest_keys: Vec<String>,
    /// Warn when a log lacks some of the source keys.
    #[serde(default)]
    no_key_error: bool,
}

struct Rename {
    /// `(from, to)`, pairs with `from == to` left out.
    pairs: Vec<(Bytes, Bytes)>,
    no_key_error: bool,
    /// Per pair: whether this log had the source key (reused).
    found: Vec<bool>,
    /// Per content: whether it was renamed (reused).
    renamed: Vec<bool>,
    warn: WarnLimiter,
}

fn no_duplicates(field: &str, keys: &[String]) -> Result<(), DetailError> {
    let mut seen = HashSet::new();
    match keys.iter().find(|k| !seen.insert(k.as_str())) {
        Some(k) => Err(DetailError::new(
            field,
            format!("key {k:?} is listed twice"),
        )),
        None => Ok(()),
    }
}

fn new(detail: &Value, cx: &PluginContext) -> Result<Rename, DetailError> {
    let o: Options = parse_detail(detail)?;
    if o.source_keys.is_empty() {
        return Err(DetailError::new("SourceKeys", "must name at least one key"));
    }
    if o.dest_keys.len() != o.source_keys.len() {
        return Err(DetailError::new(
            "DestKeys",
            format!(
                "has {} keys but SourceKeys has {} (they pair up one to one)",
                o.dest_keys.len(),
                o.source_keys.len()
            ),
        ));
    }
    no_duplicates("SourceKeys", &o.source_keys)?;
    no_duplicates("DestKeys", &o.dest_keys)?;
    let pairs: Vec<(Bytes, Bytes)> = o
        .source_keys
        .into_iter()
        .zip(o.dest_keys)
        .filter(|(s, d)| s != d)
        .map(|(s, d)| (config_text(s.as_bytes()), config_text(d.as_bytes())))
        .collect();
    Ok(Rename {
        found: vec![false; pairs.len()],
        pairs,
        no_key_error: o.no_key_error,
        renamed: Vec::new(),
        warn: WarnLimiter::new(NAME, cx),
    })
}

pub(crate) fn build(detail: &Value, cx: &PluginContext) -> Result<Box<dyn Processor>, DetailError> {
    Ok(Box::new(new(detail, cx)?))
}

impl Rename {
    fn process_event(&mut self, e: &mut LogEvent) {
        self.found.fill(false);
        self.renamed.clear();
        let mut any = false;
        // Each content is looked up once by its original key, so swaps (a→b, b→a) work.
        for (key, _) in &mut e.contents {
            let hit = self.pairs.iter().position(|(from, _)| from == key);
            if let Some(p) = hit {
                *key = self.pairs[p].1.clone();
                self.found[p] = true;
                any = true;
            }
            self.renamed.push(hit.is_some());
        }
        if any {
            // A renamed content replaces an untouched one that already had the new name.
            let (pairs, found, renamed) = (&self.pairs, &self.found, &self.renamed);
            let clashes = |key: &Bytes| pairs.iter().zip(found).any(|((_, to), &f)| f && to == key);
            let mut i = 0;
            e.contents.retain(|(key, _)| {
                let keep = renamed[i] || !clashes(key);
                i += 1;
                keep
            });
        }
        if self.no_key_error && self.found.iter().any(|f| !f) {
            let (pairs, found) = (&self.pairs, &self.found);
            self.warn.warn("RENAME_FIND_ALARM", || {
                let missing: Vec<_> = pairs
                    .iter()
                    .zip(found)
                    .filter(|(_, &f)| !f)
                    .map(|((from, _), _)| String::from_utf8_lossy(from).into_owned())
                    .collect();
                format!("cannot find key {missing:?}")
            });
        }
    }
}

impl Processor for Rename {
    fn process(&mut self, group: &mut EventGroup) {
        if self.pairs.is_empty() {
            return;
        }
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

    fn proc(detail: Value) -> Rename {
        built(new, &detail)
    }

    #[test]
    fn renames_parsed_nginx_fields_in_place() {
        let mut p = proc(json!({
            "SourceKeys": ["remote_addr", "http_user_agent"],
            "DestKeys": ["client_ip", "user_agent"]
        }));
        let out = run_one(
            &mut p,
            event(&[
                ("remote_addr", "192.168.1.10"),
                ("status", "200"),
                ("http_user_agent", "curl/8.4.0"),
            ]),
        );
        assert_eq!(
            out,
            pairs(&[
                ("client_ip", "192.168.1.10"),
                ("status", "200"),
                ("user_agent", "curl/8.4.0")
            ])
        );
        assert_eq!(p.warn.raised(), 0);
    }

    #[test]
    fn swap_and_chain_are_simultaneous() {
        let mut p = proc(json!({"SourceKeys": ["a", "b"], "DestKeys": ["b", "a"]}));
        assert_eq!(
            run_one(&mut p, event(&[("a", "1"), ("b", "2")])),
            pairs(&[("b", "1"), ("a", "2")])
        );
        let mut p = proc(json!({"SourceKeys": ["a", "b"], "DestKeys": ["b", "c"]}));
        assert_eq!(
            run_one(&mut p, event(&[("a", "1"), ("b", "2")])),
            pairs(&[("b", "1"), ("c", "2")])
        );
    }

    #[test]
    fn renamed_content_replaces_an_existing_dest_key() {
        let mut p = proc(json!({"SourceKeys": ["msg"], "DestKeys": ["message"]}));
        let out = run_one(
            &mut p,
            event(&[
                ("message", "old"),
                ("msg", "Accepted publickey for root"),
                ("level", "info"),
            ]),
        );
        assert_eq!(
            out,
            pairs(&[
                ("message", "Accepted publickey for root"),
                ("level", "info")
            ])
        );
        // Without the source key nothing changes.
        let out = run_one(&mut p, event(&[("message", "old")]));
        assert_eq!(out, pairs(&[("message", "old")]));
    }

    #[test]
    fn no_key_error_warns_about_missing_keys() {
        let mut p = proc(json!({"SourceKeys": ["a", "b"], "DestKeys": ["x", "y"]}));
        assert_eq!(run_one(&mut p, event(&[("a", "1")])), pairs(&[("x", "1")]));
        assert_eq!(p.warn.raised(), 0);
        let mut p =
            proc(json!({"SourceKeys": ["a", "b"], "DestKeys": ["x", "y"], "NoKeyError": true}));
        assert_eq!(run_one(&mut p, event(&[("a", "1")])), pairs(&[("x", "1")]));
        assert_eq!(p.warn.raised(), 1);
        run_one(&mut p, event(&[("a", "1"), ("b", "2")]));
        assert_eq!(p.warn.raised(), 1, "no warning when every key is there");
    }

    #[test]
    fn identity_pairs_are_ignored() {
        let mut p = proc(json!({"SourceKeys": ["a"], "DestKeys": ["a"], "NoKeyError": true}));
        assert_eq!(run_one(&mut p, event(&[("b", "1")])), pairs(&[("b", "1")]));
        assert_eq!(p.warn.raised(), 0);
    }

    #[test]
    fn config_errors_name_the_field() {
        let cx = PluginContext::for_check("t");
        let err = |d: Value| new(&d, &cx).err().expect("should fail");
        assert_eq!(
            err(json!({"SourceKeys": ["a", "b"], "DestKeys": ["x"]})).field,
            "DestKeys"
        );
        assert_eq!(
            err(json!({"SourceKeys": [], "DestKeys": []})).field,
            "SourceKeys"
        );
        assert_eq!(
            err(json!({"SourceKeys": ["a", "a"], "DestKeys": ["x", "y"]})).field,
            "SourceKeys"
        );
        assert_eq!(
            err(json!({"SourceKeys": ["a", "b"], "DestKeys": ["x", "x"]})).field,
            "DestKeys"
        );
        assert!(err(json!({"SourceKeys": ["a"]}))
            .message
            .contains("DestKeys"));
    }
}
