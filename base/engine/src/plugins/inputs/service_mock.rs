//! `service_mock`: produces `LogsPerSecond` logs per second, up to `MaxLogCount` in all,
//! each with the configured fields and an `Index` counting up (1, 2, ...).
//!
//! Its position is checkpointed like a file input's offset: the last `Index` the host
//! accepted everything up to is committed (see [`crate::ack`]), keyed by the plugin instance
//! and its options. After a restart (even a kill -9) the same config continues after the
//! committed `Index`, re-producing what was in flight (at-least-once); a config reloaded in
//! the same process continues after what its predecessor produced; changed options start over.

use super::{mock_event, pairs};
use crate::api::prelude::*;
use crate::api::{AckWindow, Fnv64a, Volatile};
use std::collections::BTreeMap;
use std::sync::Arc;
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
    /// `Index` of the last log produced.
    index: u64,
    /// The `Index` option: production ends at `first + max`.
    first: u64,
    rate: u64,
    max: u64,
    acks: Arc<AckWindow>,
    key: String,
    volatile: Arc<Volatile>,
}

pub(crate) fn build(detail: &Value, cx: &PluginContext) -> Result<Input, DetailError> {
    let o: Options = parse_detail(detail)?;
    if o.logs_per_second == 0 {
        return Err(DetailError::new("LogsPerSecond", "must be at least 1"));
    }
    let mut h = Fnv64a::new();
    h.write(detail.to_string().as_bytes());
    let key = format!("{}#{:X}/index", cx.plugin, h.finish());
    let handed_over = cx.volatile.positions().get(&key).copied();
    let index = handed_over
        .or_else(|| cx.get_object::<u64>(&key))
        .unwrap_or(o.index)
        .max(o.index);
    Ok(Input::Service(Box::new(ServiceMock {
        tags: pairs(&o.tags),
        fields: pairs(&o.fields),
        index,
        first: o.index,
        rate: o.logs_per_second,
        max: o.max_log_count,
        acks: cx.ack_window(&key),
        key,
        volatile: cx.volatile.clone(),
    })))
}

impl ServiceMock {
    fn remaining(&self) -> u64 {
        if self.max == 0 {
            u64::MAX
        } else {
            self.max.saturating_sub(self.index - self.first)
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
        g.acks.push(self.acks.track(self.index));
        self.volatile
            .positions()
            .insert(self.key.clone(), self.index);
        g
    }
}

impl ServiceInput for ServiceMock {
    fn run<'a>(&'a mut self, io: &'a mut dyn InputIo) -> BoxFuture<'a, Result<(), String>> {
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
