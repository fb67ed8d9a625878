//! The reporter: turns an engine's statistics and alarms into log groups for its host, as
//! the original did: alarms as config `logtail_alarm`, statistics as config
//! `shennong_log_profile` with logstore `logtail_plugin_profile`.
//!
//! Alarms the host refuses are kept (merged with newer ones of the same type, so bounded) and
//! offered again at the next report: a refusing host is when alarms matter most. Statistics
//! are cumulative counters, so a refused report is simply replaced by the next one.

use crate::api::HostIdentity;
use crate::event::{now, EventGroup, LogEvent};
use crate::host::{Host, Payload};
use crate::proto::{encode_log_group, GroupHeader};
use crate::stats::{Alarm, Level, Stats};
use std::time::Duration;

/// Config name of alarm groups sent to the host.
pub const ALARM_CONFIG: &str = "logtail_alarm";
/// Config name of statistics groups sent to the host.
pub const PROFILE_CONFIG: &str = "shennong_log_profile";
/// Logstore of statistics groups.
pub const PROFILE_LOGSTORE: &str = "logtail_plugin_profile";

fn kv(k: &'static str, v: impl Into<bytes::Bytes>) -> (bytes::Bytes, bytes::Bytes) {
    (bytes::Bytes::from_static(k.as_bytes()), v.into())
}

/// Builds the alarm log group (None when there is nothing to report).
fn alarm_group(host: &HostIdentity, alarms: &[Alarm], overflow: u64) -> EventGroup {
    let t = now().0;
    let mut g = EventGroup::default();
    for a in alarms {
        let mut e = LogEvent::new(t);
        e.contents = vec![
            kv("alarm_type", a.kind.name()),
            kv("alarm_level", a.level.to_string()),
            kv("alarm_message", a.message.clone()),
            kv("alarm_count", a.count.to_string()),
            kv("config", a.config.clone()),
            kv("plugin", a.plugin.clone()),
            kv("ip", host.ip.clone()),
            kv("hostname", host.hostname.clone()),
        ];
        g.events.push(e);
    }
    if overflow > 0 {
        let mut e = LogEvent::new(t);
        e.contents = vec![
            kv("alarm_type", "ALARM_OVERFLOW_ALARM"),
            kv("alarm_level", Level::Error.to_string()),
            kv(
                "alarm_message",
                format!("{overflow} alarms were not kept: too many distinct alarms"),
            ),
            kv("alarm_count", overflow.to_string()),
        ];
        g.events.push(e);
    }
    g
}

/// Most plugins per statistics group: with a thousand configs, one group of every plugin
/// was a transient +6 MiB each `StatisticsIntervalMs`.
const PROFILE_CHUNK: usize = 256;

/// The statistics log groups: one log per plugin with its counters, at most
/// [`PROFILE_CHUNK`] per group, each built when the previous one has been handed on.
fn profile_groups<'a>(
    host: &'a HostIdentity,
    stats: &Stats,
) -> impl Iterator<Item = EventGroup> + 'a {
    let handles = stats.counters();
    let t = now().0;
    let mut at = 0;
    std::iter::from_fn(move || {
        let chunk = handles.get(at..(at + PROFILE_CHUNK).min(handles.len()))?;
        if chunk.is_empty() {
            return None;
        }
        at += chunk.len();
        let mut g = EventGroup::default();
        for ((config, plugin), stats) in chunk {
            let mut e = LogEvent::new(t);
            e.contents.push(kv("config", config.clone()));
            e.contents.push(kv("plugin", plugin.clone()));
            for (k, v) in stats.snapshot() {
                e.contents.push(kv(k, v.to_string()));
            }
            e.contents.push(kv("ip", host.ip.clone()));
            e.contents.push(kv("hostname", host.hostname.clone()));
            g.events.push(e);
        }
        Some(g)
    })
}

/// Sends a built-in group to the host, trying `attempts` times with a short pause.
fn send_builtin(
    host: &dyn Host,
    config: &'static str,
    logstore: &'static str,
    group: &EventGroup,
    me: &HostIdentity,
    attempts: u32,
) -> bool {
    let mut data = Vec::new();
    encode_log_group(
        &mut data,
        group,
        &GroupHeader {
            category: logstore,
            source: &me.ip,
            with_time_ns: false,
        },
    );
    let p = Payload {
        config: config.into(),
        logstore: logstore.into(),
        logstore_key: -1,
        data,
        lines: group.len(),
        shard_hash: None,
        spill_key: None,
        acks: Vec::new(),
    };
    for attempt in 0..attempts {
        if host.send(&p).is_ok() {
            return true;
        }
        if attempt + 1 < attempts {
            std::thread::sleep(Duration::from_millis(20 << attempt));
        }
    }
    false
}

/// Which parts a report sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sections {
    /// The pending alarms.
    pub alarms: bool,
    /// The statistics.
    pub statistics: bool,
}

/// Sends the pending alarms and the statistics (each when `what` says so), trying each send
/// up to `attempts` times (one at exit, so `HoldOn(1)` stays within its bound). Alarms the
/// host refused are put back for the next report.
pub fn report(host: &dyn Host, me: &HostIdentity, stats: &Stats, what: Sections, attempts: u32) {
    let (alarms, overflow) = if what.alarms {
        stats.take_alarms()
    } else {
        (Vec::new(), 0)
    };
    if !alarms.is_empty() || overflow > 0 {
        let g = alarm_group(me, &alarms, overflow);
        if !send_builtin(host, ALARM_CONFIG, ALARM_CONFIG, &g, me, attempts) {
            tracing::warn!(
                alarms = alarms.len(),
                "the host refused the alarm log group; kept for the next report"
            );
            stats.restore_alarms(alarms, overflow);
        }
    }
    if what.statistics {
        for g in profile_groups(me, stats) {
            if !send_builtin(host, PROFILE_CONFIG, PROFILE_LOGSTORE, &g, me, attempts) {
                tracing::warn!("the host refused the statistics; the next report replaces them");
                break;
            }
        }
    }
}
