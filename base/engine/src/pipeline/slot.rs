//! A plugin instance in its stage, with its counters and the failure policy (Heka's model):
//! a plugin that panics or fails is restarted after an exponential back-off (10 ms doubling,
//! capped at 1 s) up to its `MaxRetries` consecutive failures, then disabled with an alarm
//! while the rest of the config keeps running.

use crate::api::PluginContext;
use crate::config::PluginSpec;
use crate::registry::BuildError;
use crate::stats::{AlarmType, Level, PluginStats};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Builds the plugin of a slot (again, on restart).
pub(crate) type Build<T> = fn(&PluginSpec, &PluginContext) -> Result<T, BuildError>;

/// One plugin instance of a stage.
pub(crate) struct Slot<T> {
    pub(crate) spec: PluginSpec,
    pub(crate) plugin: T,
    pub(crate) stats: Arc<PluginStats>,
    pub(crate) name: String,
    failures: u32,
    pub(crate) disabled: bool,
    build: Build<T>,
}

impl<T> Slot<T> {
    pub(crate) fn build(
        spec: &PluginSpec,
        cx: &PluginContext,
        build: Build<T>,
    ) -> Result<Self, String> {
        let plugin = build_one(spec, cx, build)?;
        let name = spec.instance_name();
        Ok(Self {
            stats: cx.stats.plugin(&cx.config_name, &name),
            spec: spec.clone(),
            plugin,
            name,
            failures: 0,
            disabled: false,
            build,
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
        cx.stats.alarm(
            kind,
            Level::Error,
            &cx.config_name,
            &self.name,
            format!("{} {what}: {why}", self.spec.location()),
        );
        if self.failures > self.spec.max_retries {
            self.disabled = true;
            cx.stats.alarm(
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
        Some(crate::backoff::delay(self.failures))
    }

    /// Replaces the plugin with a fresh instance (after a panic its state is suspect).
    pub(crate) fn restart(&mut self, cx: &PluginContext) {
        match build_one(&self.spec, cx, self.build) {
            Ok(p) => {
                self.plugin = p;
                PluginStats::add(&self.stats.restarts, 1);
                cx.stats.alarm(
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
                cx.stats.alarm(
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
    build: Build<T>,
) -> Result<T, String> {
    build(spec, cx).map_err(|e| format!("{}: {e:?}", spec.location()))
}

fn panic_message(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}
