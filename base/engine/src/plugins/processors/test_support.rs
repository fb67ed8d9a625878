//! Helpers shared by the processors' unit tests.

use crate::api::prelude::*;

/// Builds a processor with `new` from `detail` in a check context; panics on a config error.
pub(crate) fn built<T>(
    new: impl FnOnce(&Value, &PluginContext) -> Result<T, DetailError>,
    detail: &Value,
) -> T {
    match new(detail, &PluginContext::for_check("t")) {
        Ok(p) => p,
        Err(e) => panic!("build failed: {e:?}"),
    }
}

/// Builds a registered processor with its `build` function; panics unless it is one.
pub(crate) fn boxed(
    build: impl FnOnce(&Value, &PluginContext) -> Result<Box<dyn Processor>, DetailError>,
    detail: &Value,
) -> Box<dyn Processor> {
    match build(detail, &PluginContext::for_check("t")) {
        Ok(p) => p,
        Err(e) => panic!("build failed: {e:?}"),
    }
}

/// An event stamped with `time` holding `pairs`, in order.
pub(crate) fn event_at(time: u32, pairs: &[(&str, &str)]) -> LogEvent {
    let mut e = LogEvent::new(time);
    for (k, v) in pairs {
        e.contents.push((
            Bytes::copy_from_slice(k.as_bytes()),
            Bytes::copy_from_slice(v.as_bytes()),
        ));
    }
    e
}

/// An event stamped with time 0 holding `pairs`, in order.
pub(crate) fn event(pairs: &[(&str, &str)]) -> LogEvent {
    event_at(0, pairs)
}

/// The contents of `e` as strings.
pub(crate) fn strings(e: &LogEvent) -> Vec<(String, String)> {
    e.contents
        .iter()
        .map(|(k, v)| {
            (
                String::from_utf8(k.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect()
}

/// `pairs` as owned strings, to compare with [`strings`].
pub(crate) fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The value of `k` in `e` as a string, if present.
pub(crate) fn get(e: &LogEvent, k: &str) -> Option<String> {
    e.get(k.as_bytes())
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

/// Runs `p` over one group of `events`; returns the contents of the events it leaves.
pub(crate) fn run(p: &mut dyn Processor, events: Vec<LogEvent>) -> Vec<Vec<(String, String)>> {
    let mut g = EventGroup {
        events,
        ..EventGroup::default()
    };
    p.process(&mut g);
    g.events.iter().map(strings).collect()
}

/// Runs `p` over a group of the single event `e`; returns the contents of the first event left.
pub(crate) fn run_one(p: &mut dyn Processor, e: LogEvent) -> Vec<(String, String)> {
    let mut g = EventGroup::default();
    g.events.push(e);
    p.process(&mut g);
    strings(&g.events[0])
}

/// Runs `p` over a group of the single event `e`; returns the last event left.
pub(crate) fn process_one(p: &mut dyn Processor, e: LogEvent) -> LogEvent {
    let mut g = EventGroup::default();
    g.events.push(e);
    p.process(&mut g);
    g.events.pop().unwrap()
}
