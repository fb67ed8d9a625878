//! A plugin instance in its stage, with its counters and the failure policy (Heka's model):
//! a plugin that panics or fails is restarted after an exponential back-off (10 ms doubling,
//! capped at 1 s) up to its `MaxRetries` consecutive failures, then disabled with an alarm
//! while the rest of the config keeps running.

use crate::config::PluginSpec;
use crate::context::PluginContext;
use crate::plugins::{self, Plugin};
use crate::stats::{self, AlarmType, Level, PluginStats};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest back-off between restarts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Back-off before the `n`th consecutive retry (n ≥ 1).
pub(crate) fn backoff(n: u32) -> Duration {
    Duration::from_millis(10u64.saturating_mul(1 << n.saturating_sub(1).min(16))).min(MAX_BACKOFF)
}

/// One plugin instance of a stage.
pub(crate) struct Slot<T> {
    pub(crate) spec: PluginSpec,
    pub(crate) plugin: T,
    pub(crate) stats: Arc<PluginStats>,
    pub(crate) name: String,
    failures: u32,
    pub(crate) disabled: bool,
    pick: fn(Plugin) -> Option<T>,
}

impl<T> Slot<T> {
    pub(crate) fn build(
        spec: &PluginSpec,
        cx: &PluginContext,
        pick: fn(Plugin) -> Option<T>,
    ) -> Result<Self, String> {
        let plugin = build_one(spec, cx, pick)?;
        let name = spec.instance_name();
        Ok(Self {
            stats: stats::plugin_stats(&cx.config_name, &name),
            spec: spec.clone(),
            plugin,
            name,
            failures: 0,
            disabled: false,
            pick,
        })
    }

    /// Runs `f` on the plugin, timing it; a panic becomes `Err(message)`.
    pub(crate) fn call<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> Result<R, String> {
        let start = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| f(&mut self.plugin))).map_err(panic_message);
        PluginStats::add(&self.stats.time_ns, start.elapsed().as_nanos() as u64);
        if r.is_ok() {
            self.failures = 0;
        }
        r
    }

    /// Records a failure. Returns the back-off to wait before [`Slot::restart`], or `None`
    /// when the plugin is now disabled.
    pub(crate) fn fail(
        &mut self,
        cx: &PluginContext,
        panicked: bool,
        why: &str,
    ) -> Option<Duration> {
        self.failures += 1;
        PluginStats::add(&self.stats.errors, 1);
        let (kind, what) = if panicked {
            (AlarmType::PluginPanic, "panicked")
        } else {
            (AlarmType::PluginError, "failed")
        };
        stats::alarm(
            kind,
            Level::Error,
            &cx.config_name,
            &self.name,
            format!("{} {what}: {why}", self.spec.location()),
        );
        if self.failures > self.spec.max_retries {
            self.disabled = true;
            stats::alarm(
                AlarmType::PluginDisabled,
                Level::Critical,
                &cx.config_name,
                &self.name,
                format!(
                    "{} disabled after {} consecutive failures (MaxRetries {}); the rest of the config keeps running",
                    self.spec.location(),
                    self.failures,
                    self.spec.max_retries
                ),
            );
            return None;
        }
        Some(backoff(self.failures))
    }

    /// Replaces the plugin with a fresh instance (after a panic its state is suspect).
    pub(crate) fn restart(&mut self, cx: &PluginContext) {
        match build_one(&self.spec, cx, self.pick) {
            Ok(p) => {
                self.plugin = p;
                PluginStats::add(&self.stats.restarts, 1);
                stats::alarm(
                    AlarmType::PluginRestart,
                    Level::Warning,
                    &cx.config_name,
                    &self.name,
                    format!(
                        "{} restarted after failure {}",
                        self.spec.location(),
                        self.failures
                    ),
                );
            }
            Err(e) => {
                self.disabled = true;
                stats::alarm(
                    AlarmType::PluginDisabled,
                    Level::Critical,
                    &cx.config_name,
                    &self.name,
                    format!("cannot restart: {e}"),
                );
            }
        }
    }
}

pub(crate) fn build_one<T>(
    spec: &PluginSpec,
    cx: &PluginContext,
    pick: fn(Plugin) -> Option<T>,
) -> Result<T, String> {
    match plugins::build(spec, cx) {
        Ok(p) => pick(p).ok_or_else(|| format!("{} is not of its section's kind", spec.location())),
        Err(e) => Err(format!("{}: {e:?}", spec.location())),
    }
}

fn panic_message(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps_at_one_second() {
        assert_eq!(backoff(1), Duration::from_millis(10));
        assert_eq!(backoff(2), Duration::from_millis(20));
        assert_eq!(backoff(7), Duration::from_millis(640));
        assert_eq!(backoff(8), MAX_BACKOFF);
        assert_eq!(backoff(100), MAX_BACKOFF);
    }
}
