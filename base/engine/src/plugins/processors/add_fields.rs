//! `processor_add_fields`: adds fixed fields to every log.

use crate::api::prelude::*;
use std::collections::BTreeMap;

/// Options of `processor_add_fields`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Options {
    /// Fields to add (key → value).
    fields: BTreeMap<String, String>,
    /// Keep an existing value instead of overwriting it.
    #[serde(default)]
    ignore_if_exist: bool,
}

struct AddFields {
    fields: Vec<(Bytes, Bytes)>,
    ignore_if_exist: bool,
}

pub(crate) fn build(
    detail: &Value,
    _cx: &PluginContext,
) -> Result<Box<dyn Processor>, DetailError> {
    let o: Options = parse_detail(detail)?;
    if o.fields.is_empty() {
        return Err(DetailError::new("Fields", "must name at least one field"));
    }
    Ok(Box::new(AddFields {
        fields: super::super::inputs::pairs(&o.fields),
        ignore_if_exist: o.ignore_if_exist,
    }))
}

impl Processor for AddFields {
    fn process(&mut self, group: &mut EventGroup) {
        for e in &mut group.events {
            for (k, v) in &self.fields {
                if self.ignore_if_exist && e.contains(k) {
                    continue;
                }
                e.set(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::LogEvent;
    use crate::plugins::processors::test_support::{boxed, process_one};

    fn run(detail: Value, existing: &'static [u8]) -> LogEvent {
        let mut e = LogEvent::new(0);
        e.set(Bytes::from_static(b"a"), Bytes::from_static(existing));
        process_one(&mut *boxed(build, &detail), e)
    }

    #[test]
    fn overwrites_unless_ignore_if_exist() {
        let e = run(
            serde_json::json!({"Fields": {"a": "new", "b": "2"}}),
            b"old",
        );
        assert_eq!(e.get(b"a").unwrap().as_ref(), b"new");
        assert_eq!(e.get(b"b").unwrap().as_ref(), b"2");
        let e = run(
            serde_json::json!({"Fields": {"a": "new"}, "IgnoreIfExist": true}),
            b"old",
        );
        assert_eq!(e.get(b"a").unwrap().as_ref(), b"old");
    }

    #[test]
    fn fields_are_required() {
        assert!(build(&serde_json::json!({}), &PluginContext::for_check("t")).is_err());
    }
}
