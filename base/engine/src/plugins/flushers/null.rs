//! `flusher_null`: delivers nowhere. Every group it gets counts as delivered (its events in
//! the flusher's `events_out`); for benchmarks and for pipelines whose only purpose is their
//! side effects. Like Fluent Bit's `out_null` or Vector's `blackhole`.

use crate::api::prelude::*;

/// Options of `flusher_null`: none.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {}

struct NullFlusher;

pub(crate) fn build(detail: &Value, _cx: &PluginContext) -> Result<Box<dyn Flusher>, DetailError> {
    let _: Options = parse_detail(detail)?;
    Ok(Box::new(NullFlusher))
}

impl Flusher for NullFlusher {
    fn flush(&mut self, _group: &EventGroup, _host: &dyn HostQueue) -> Result<(), FlushError> {
        Ok(())
    }

    fn may_block(&self) -> bool {
        false
    }

    fn reads_encoded(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_everything_and_no_options() {
        let cx = PluginContext::for_check("t");
        let mut f = build(&serde_json::json!({}), &cx).unwrap();
        let outbox = crate::outbox::Outbox::new(None, &crate::services::for_tests());
        let mut g = EventGroup::default();
        g.events.push(LogEvent::new(1));
        assert_eq!(f.flush(&g, &*outbox), Ok(()));
        assert!(outbox.is_empty(), "nothing reaches the host");
        assert!(build(&serde_json::json!({"X": 1}), &cx).is_err());
    }
}
