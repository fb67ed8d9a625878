//! `processor_test_panic` (feature `test-plugins` only): panics on every batch, to prove a
//! failing plugin cannot take the host down.

use crate::api::prelude::*;

/// `processor_test_panic` takes no options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {}

struct TestPanic;

pub(crate) fn build(
    detail: &Value,
    _cx: &PluginContext,
) -> Result<Box<dyn Processor>, DetailError> {
    let _: Options = parse_detail(detail)?;
    Ok(Box::new(TestPanic))
}

impl Processor for TestPanic {
    fn process(&mut self, group: &mut EventGroup) {
        panic!(
            "processor_test_panic: panicking on a group of {} events",
            group.len()
        );
    }
}
