//! `processor_default`: passes groups through unchanged.

use crate::api::prelude::*;

/// `processor_default` takes no options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {}

struct Default;

pub(crate) fn build(
    detail: &Value,
    _cx: &PluginContext,
) -> Result<Box<dyn Processor>, DetailError> {
    let _: Options = parse_detail(detail)?;
    Ok(Box::new(Default))
}

impl Processor for Default {
    fn process(&mut self, _group: &mut EventGroup) {}
}
