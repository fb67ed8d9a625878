//! `service_mock`: produces `LogsPerSecond` logs per second, up to `MaxLogCount` in all,
//! each with the configured fields and an `Index` counting up (1, 2, ...).

use super::{mock_event, pairs};
use crate::config::{parse_detail, DetailError};
use crate::context::PluginContext;
use crate::event::{now, EventGroup};
use crate::pipeline::InputIo;
use crate::plugins::{BoxFuture, Input, Plugin, ServiceInput};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Options of `service_mock`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
struct Options {
    /// Tags put on every group.
    tags: BTreeMap<String, String>,
    /// Fields put on every log.
    fields: BTreeMap<String, String>,
    /// Index of the last log already produced; the first log carries `Index + 1`.
    index: u64,
    /// Production rate.
    logs_per_second: u64,
    /// Total logs to produce; 0 means no limit.
    max_log_count: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            tags: BTreeMap::new(),
            fields: BTreeMap::new(),
            index: 0,
            logs_per_second: 100,
            max_log_count: 0,
        }
    }
}

/// Largest group produced at once.
const MAX_BATCH: u64 = 1024;
const TICK: Duration = Duration::from_millis(10);

struct ServiceMock {
    tags: Vec<(Bytes, Bytes)>,
    fields: Vec<(Bytes, Bytes)>,
    index: u64,
    produced: u64,
    rate: u64,
    max: u64,
}

pub(crate) fn build(detail: &Value, _cx: &PluginContext) -> Result<Plugin, DetailError> {
    let o: Options = parse_detail(detail)?;
    if o.logs_per_second == 0 {
        return Err(DetailError::new("LogsPerSecond", "must be at least 1"));
    }
    Ok(Plugin::Input(Input::Service(Box::new(ServiceMock {
        tags: pairs(&o.tags),
        fields: pairs(&o.fields),
        index: o.index,
        produced: 0,
        rate: o.logs_per_second,
        max: o.max_log_count,
    }))))
}

impl ServiceMock {
    fn remaining(&self) -> u64 {
        if self.max == 0 {
            u64::MAX
        } else {
            self.max.saturating_sub(self.produced)
        }
    }

    fn batch(&mut self, source: &Bytes, n: u64) -> EventGroup {
        let mut g = EventGroup::new(source.clone());
        g.tags.extend(self.tags.iter().cloned());
        g.events.reserve(n as usize);
        let t = now().0;
        for _ in 0..n {
            self.index += 1;
            g.events.push(mock_event(t, &self.fields, self.index));
        }
        self.produced += n;
        g
    }
}

impl ServiceInput for ServiceMock {
    fn run<'a>(&'a mut self, io: &'a mut InputIo) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let start = Instant::now();
            let mut emitted_this_run = 0u64;
            while self.remaining() > 0 && !io.is_stopped() {
                let due = (start.elapsed().as_secs_f64() * self.rate as f64) as u64;
                let n = due
                    .saturating_sub(emitted_this_run)
                    .min(MAX_BATCH)
                    .min(self.remaining());
                if n > 0 {
                    let g = self.batch(io.source(), n);
                    emitted_this_run += n;
                    if io.send(g).await.is_err() {
                        return Err("pipeline closed".into());
                    }
                    continue;
                }
                tokio::select! {
                    _ = io.stopped() => break,
                    _ = tokio::time::sleep(TICK) => {}
                }
            }
            Ok(())
        })
    }
}
