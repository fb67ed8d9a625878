//! Rate-limited alarms for processors (used by `processor_split_log_*`, `processor_strptime`,
//! `processor_gotime`): iLogtail processors log an alarm and keep going; here an alarm is a
//! `tracing::warn!` issued at most once per [`INTERVAL`] per processor instance, carrying the
//! number of alarms suppressed since the previous one. Never logs per event on the hot path.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Minimum time between two logged alarms of one processor instance.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

/// One processor instance's alarm state.
#[derive(Debug)]
pub(crate) struct Alarm {
    plugin: &'static str,
    config: Arc<str>,
    last: Option<Instant>,
    suppressed: u64,
    total: u64,
}

impl Alarm {
    /// Alarms of `plugin` in config `config`.
    pub(crate) fn new(plugin: &'static str, config: Arc<str>) -> Self {
        Self {
            plugin,
            config,
            last: None,
            suppressed: 0,
            total: 0,
        }
    }

    /// Raises alarm `kind` (iLogtail's alarm type, e.g. `STRPTIME_PARSE_ALARM`); `msg` is only
    /// built when the alarm is actually logged.
    pub(crate) fn raise(&mut self, kind: &'static str, msg: impl FnOnce() -> String) {
        self.total += 1;
        let now = Instant::now();
        if matches!(self.last, Some(t) if now.duration_since(t) < INTERVAL) {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            plugin = self.plugin,
            config = %self.config,
            alarm = kind,
            suppressed = self.suppressed,
            "{}",
            msg()
        );
        self.last = Some(now);
        self.suppressed = 0;
    }

    /// Alarms raised so far (logged or suppressed).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_once_per_interval_and_counts_all() {
        let mut a = Alarm::new("processor_x", "cfg".into());
        let mut built = 0;
        for _ in 0..5 {
            a.raise("X_ALARM", || {
                built += 1;
                "bad".into()
            });
        }
        assert_eq!(built, 1, "the message is built only for the logged alarm");
        assert_eq!(a.total(), 5);
        assert_eq!(a.suppressed, 4);
    }
}
