//! `metric_mock`: one log per `InputIntervalMs` with the configured fields and an `Index`
//! counting up.

use super::{mock_event, pairs};
use crate::api::prelude::*;
use std::collections::BTreeMap;

/// Options of `metric_mock`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
struct Options {
    /// Tags put on every group.
    tags: BTreeMap<String, String>,
    /// Fields put on every log.
    fields: BTreeMap<String, String>,
    /// Index of the last log already produced; the first log carries `Index + 1`.
    index: u64,
}

struct MetricMock {
    tags: Vec<(Bytes, Bytes)>,
    fields: Vec<(Bytes, Bytes)>,
    index: u64,
}

pub(crate) fn build(detail: &Value, _cx: &PluginContext) -> Result<Input, DetailError> {
    let o: Options = parse_detail(detail)?;
    Ok(Input::Metric(Box::new(MetricMock {
        tags: pairs(&o.tags),
        fields: pairs(&o.fields),
        index: o.index,
    })))
}

impl MetricInput for MetricMock {
    fn collect(&mut self, group: &mut EventGroup) -> Result<(), String> {
        self.index += 1;
        group.tags.extend(self.tags.iter().cloned());
        group
            .events
            .push(mock_event(now().0, &self.fields, self.index));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_counts_up_with_fields_and_tags() {
        let cx = PluginContext::for_check("t");
        let d = serde_json::json!({"Tags": {"t": "1"}, "Fields": {"f": "v"}, "Index": 5});
        let Ok(Input::Metric(mut m)) = build(&d, &cx) else {
            panic!("not a metric input")
        };
        let mut g = EventGroup::default();
        m.collect(&mut g).unwrap();
        m.collect(&mut g).unwrap();
        assert_eq!(g.events[0].get(b"Index").unwrap().as_ref(), b"6");
        assert_eq!(g.events[1].get(b"Index").unwrap().as_ref(), b"7");
        assert_eq!(g.events[1].get(b"f").unwrap().as_ref(), b"v");
        assert_eq!(g.tag(b"t").unwrap().as_ref(), b"1");
    }
}
