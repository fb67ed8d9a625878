//! Helpers shared by the parsing processors: source-key lookup, setting many fields and
//! rate-limited warnings (iLogtail "alarms"). Go-compatible regexes are in [`crate::patterns`].

use crate::api::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which content a parser reads.
#[derive(Debug, Clone)]
pub(crate) enum SourceKey {
    /// The content with this key.
    Named(Bytes),
    /// The first content of the log (iLogtail's behaviour for an empty `SourceKey`).
    First,
}

impl SourceKey {
    /// `""` means the first content; anything else names a key.
    pub(crate) fn new(key: String) -> Self {
        if key.is_empty() {
            SourceKey::First
        } else {
            SourceKey::Named(config_text(key.as_bytes()))
        }
    }

    /// Index of the source content in `e`.
    pub(crate) fn find(&self, e: &LogEvent) -> Option<usize> {
        match self {
            SourceKey::Named(k) => e.contents.iter().position(|(key, _)| key == k),
            SourceKey::First => (!e.contents.is_empty()).then_some(0),
        }
    }

    /// The key for messages.
    pub(crate) fn name(&self) -> String {
        match self {
            SourceKey::Named(k) => String::from_utf8_lossy(k).into_owned(),
            SourceKey::First => "<first content>".into(),
        }
    }
}

/// Sets every `(key, value)` of `fields` on `e` (replacing existing keys in place).
pub(crate) fn set_all(e: &mut LogEvent, fields: &mut Vec<(Bytes, Bytes)>) {
    e.contents.reserve(fields.len());
    if e.contents.len() + fields.len() <= INDEXED_ABOVE {
        for (k, v) in fields.drain(..) {
            e.set(k, v);
        }
        return;
    }
    // Many fields (a JSON object with thousands of keys): setting each with a linear search
    // would take quadratic time, so index the keys once.
    e.touch();
    let mut at: std::collections::HashMap<Bytes, usize> = e
        .contents
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.clone(), i))
        .collect();
    for (k, v) in fields.drain(..) {
        match at.get(&k) {
            Some(&i) => e.contents[i].1 = v,
            None => {
                at.insert(k.clone(), e.contents.len());
                e.contents.push((k, v));
            }
        }
    }
}

/// Above this many contents and new fields, [`set_all`] indexes the keys.
const INDEXED_ABOVE: usize = 64;

#[cfg(test)]
mod set_all_tests {
    use super::*;

    fn kv(k: &str, v: &str) -> (Bytes, Bytes) {
        (Bytes::from(k.to_string()), Bytes::from(v.to_string()))
    }

    #[test]
    fn indexed_and_linear_setting_agree() {
        for n in [3, 200] {
            let mut e = LogEvent::new(1);
            e.contents = (0..n).map(|i| kv(&format!("k{i}"), "old")).collect();
            let mut fields: Vec<_> = (0..n)
                .step_by(2)
                .map(|i| kv(&format!("k{i}"), "new"))
                .chain((0..n).map(|i| kv(&format!("n{i}"), "added")))
                .chain([kv("n0", "last wins")])
                .collect();
            set_all(&mut e, &mut fields);
            assert!(fields.is_empty());
            assert_eq!(e.contents.len(), 2 * n);
            assert_eq!(e.get(b"k0").unwrap().as_ref(), b"new");
            assert_eq!(e.get(b"k1").unwrap().as_ref(), b"old");
            assert_eq!(e.get(b"n0").unwrap().as_ref(), b"last wins");
            assert_eq!(
                e.contents[n].0.as_ref(),
                b"n0",
                "new keys appended in order"
            );
        }
    }
}

/// At most this many bytes of a value are quoted in a warning (iLogtail cuts at 512).
const PREVIEW_BYTES: usize = 512;

/// A printable prefix of `value` for warnings.
pub(crate) fn preview(value: &[u8]) -> String {
    let cut = &value[..value.len().min(PREVIEW_BYTES)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if value.len() > PREVIEW_BYTES {
        s.push_str("...");
    }
    s
}

/// Default spacing of warnings from one processor instance.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Rate-limited `tracing::warn!` for one processor instance: at most one message per
/// interval, reporting how many were suppressed since the previous one. Cheap on the hot
/// path: a suppressed warning costs a clock read and never builds its message.
#[derive(Debug)]
pub(crate) struct WarnLimiter {
    plugin: &'static str,
    config: Arc<str>,
    stats: crate::stats::Stats,
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
    #[cfg(test)]
    raised: u64,
}

impl WarnLimiter {
    /// A limiter for `plugin` (its type name) in the config of `cx`.
    pub(crate) fn new(plugin: &'static str, cx: &PluginContext) -> Self {
        Self {
            plugin,
            config: cx.config_name.clone(),
            stats: cx.stats.clone(),
            interval: WARN_INTERVAL,
            last: None,
            suppressed: 0,
            #[cfg(test)]
            raised: 0,
        }
    }

    /// Logs `message()` under the iLogtail alarm name `alarm`, unless a warning was logged
    /// less than an interval ago (then it is only counted). Returns whether it was logged.
    pub(crate) fn warn(&mut self, alarm: &'static str, message: impl FnOnce() -> String) -> bool {
        #[cfg(test)]
        {
            self.raised += 1;
        }
        let now = Instant::now();
        if let Some(last) = self.last {
            if now.duration_since(last) < self.interval {
                self.suppressed += 1;
                return false;
            }
        }
        self.last = Some(now);
        let suppressed = std::mem::take(&mut self.suppressed);
        let mut text = message();
        if suppressed > 0 {
            text.push_str(&format!(" ({suppressed} similar since the last report)"));
        }
        self.stats.alarm(
            AlarmType::Plugin(alarm),
            Level::Warning,
            &self.config,
            self.plugin,
            text,
        );
        true
    }

    /// Warnings counted but not logged since the last logged one.
    #[cfg(test)]
    pub(crate) fn suppressed(&self) -> u64 {
        self.suppressed
    }

    /// Warnings raised (logged or not) since creation.
    #[cfg(test)]
    pub(crate) fn raised(&self) -> u64 {
        self.raised
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn source_key_lookup() {
        let mut e = LogEvent::new(0);
        assert_eq!(SourceKey::First.find(&e), None);
        e.set(Bytes::from_static(b"a"), Bytes::new());
        e.set(Bytes::from_static(b"content"), Bytes::new());
        assert_eq!(SourceKey::new(String::new()).find(&e), Some(0));
        assert_eq!(SourceKey::new("content".into()).find(&e), Some(1));
        assert_eq!(SourceKey::new("nope".into()).find(&e), None);
    }

    #[test]
    fn limiter_suppresses_within_interval() {
        let mut w = WarnLimiter::new("processor_x", &PluginContext::for_check("t"));
        assert!(w.warn("X_ALARM", || "first".into()));
        let mut built = false;
        assert!(!w.warn("X_ALARM", || {
            built = true;
            String::new()
        }));
        assert!(!built, "a suppressed message is never built");
        assert_eq!(w.suppressed(), 1);
        w.interval = Duration::ZERO;
        assert!(w.warn("X_ALARM", || "again".into()));
        assert_eq!(w.suppressed(), 0);
        assert_eq!(w.raised(), 3);
    }

    #[test]
    fn preview_cuts_long_values() {
        assert_eq!(preview(b"short"), "short");
        let long = vec![b'x'; 600];
        let p = preview(&long);
        assert_eq!(p.len(), 515);
        assert!(p.ends_with("..."));
    }
}
