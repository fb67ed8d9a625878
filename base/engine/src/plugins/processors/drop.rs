//! `processor_drop`: removes the named keys from every log.

use crate::api::prelude::*;

/// Options of `processor_drop`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Options {
    /// Keys to remove.
    drop_keys: Vec<String>,
}

struct Drop {
    keys: Vec<Vec<u8>>,
}

pub(crate) fn build(
    detail: &Value,
    _cx: &PluginContext,
) -> Result<Box<dyn Processor>, DetailError> {
    let o: Options = parse_detail(detail)?;
    if o.drop_keys.is_empty() {
        // As iLogtail's Init: a drop processor without keys is a config mistake.
        return Err(DetailError::new("DropKeys", "must name at least one key"));
    }
    Ok(Box::new(Drop {
        keys: o.drop_keys.into_iter().map(String::into_bytes).collect(),
    }))
}

impl Processor for Drop {
    fn process(&mut self, group: &mut EventGroup) {
        for e in &mut group.events {
            e.contents
                .retain(|(k, _)| !self.keys.iter().any(|d| d.as_slice() == k.as_ref()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::LogEvent;
    use bytes::Bytes;

    #[test]
    fn drops_listed_keys_only() {
        let d = serde_json::json!({"DropKeys": ["a", "c"]});
        let Ok(mut p) = build(&d, &PluginContext::for_check("t")) else {
            panic!("build")
        };
        let mut e = LogEvent::new(0);
        for k in ["a", "b", "c"] {
            e.set(Bytes::from(k), Bytes::from_static(b"v"));
        }
        let mut g = EventGroup::default();
        g.events.push(e);
        p.process(&mut g);
        let keys: Vec<_> = g.events[0]
            .contents
            .iter()
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(keys, vec![Bytes::from_static(b"b")]);
    }

    #[test]
    fn drop_keys_are_required() {
        let cx = PluginContext::for_check("t");
        assert!(build(&serde_json::json!({}), &cx).is_err());
        let empty = build(&serde_json::json!({"DropKeys": []}), &cx);
        assert_eq!(empty.err().map(|e| e.field), Some("DropKeys".into()));
    }
}
