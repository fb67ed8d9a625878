//! `processor_strptime`: sets the log time from a content parsed with a C `strptime` format.
//!
//! Time zone of the value: the offset in the value (`%z`, or `%Z` = `UTC`/`GMT`) when the
//! format has one; otherwise `UTCOffset` seconds when `AdjustUTCOffset`, otherwise the
//! machine's zone (with daylight saving time). `%s` is absolute. A `%Z` name other than
//! `UTC`/`GMT` is a failure, as in iLogtail. On failure the log is left unchanged (alarm
//! `STRPTIME_PARSE_ALARM` when `AlarmIfFail`).

use super::parse_support::{preview, WarnLimiter};
use super::timefmt::{Layout, Zone};
use crate::api::prelude::*;

const NAME: &str = "processor_strptime";

/// Options of `processor_strptime`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
struct Options {
    /// Content holding the time (empty = `time`).
    source_key: String,
    /// strptime format.
    format: String,
    /// Read values without an offset in `UTCOffset` instead of the machine's zone.
    #[serde(rename = "AdjustUTCOffset")]
    adjust_utc_offset: bool,
    /// Seconds east of UTC (e.g. 28800 for UTC+8), from -43200 to 50400.
    #[serde(rename = "UTCOffset")]
    utc_offset: i32,
    /// Alarm when a value cannot be parsed.
    alarm_if_fail: bool,
    /// Keep the source content.
    keep_source: bool,
    /// Also write the parsed time as an integer content.
    enable_precise_timestamp: bool,
    /// Key of that content.
    precise_timestamp_key: String,
    /// Its unit: `ms`, `us` or `ns`.
    precise_timestamp_unit: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            source_key: "time".into(),
            format: String::new(),
            adjust_utc_offset: false,
            utc_offset: 0,
            alarm_if_fail: true,
            keep_source: true,
            enable_precise_timestamp: false,
            precise_timestamp_key: "precise_timestamp".into(),
            precise_timestamp_unit: "ms".into(),
        }
    }
}

struct Strptime {
    key: Bytes,
    format: String,
    layout: Layout,
    zone: Zone,
    alarm_if_fail: bool,
    keep_source: bool,
    /// `(key, nanoseconds per unit)` when `EnablePreciseTimestamp`.
    precise: Option<(Bytes, i64)>,
    warn: WarnLimiter,
}

pub(crate) fn build(detail: &Value, cx: &PluginContext) -> Result<Box<dyn Processor>, DetailError> {
    Ok(Box::new(new(detail, cx)?))
}

fn new(detail: &Value, cx: &PluginContext) -> Result<Strptime, DetailError> {
    let o: Options = parse_detail(detail)?;
    if o.format.is_empty() {
        return Err(DetailError::new("Format", "must not be empty"));
    }
    let layout = Layout::strptime(&o.format).map_err(|m| DetailError::new("Format", m))?;
    let zone = if o.adjust_utc_offset {
        if !(-12 * 3600..=14 * 3600).contains(&o.utc_offset) {
            return Err(DetailError::new(
                "UTCOffset",
                format!(
                    "{} is out of range (-43200 to 50400 seconds, UTC-12 to UTC+14)",
                    o.utc_offset
                ),
            ));
        }
        Zone::Fixed(o.utc_offset)
    } else {
        Zone::Local
    };
    let precise = if o.enable_precise_timestamp {
        let unit = match o.precise_timestamp_unit.as_str() {
            "" | "ms" => 1_000_000,
            "us" => 1_000,
            "ns" => 1,
            other => {
                return Err(DetailError::new(
                    "PreciseTimestampUnit",
                    format!("`{other}` is not one of ms, us, ns"),
                ))
            }
        };
        let key = if o.precise_timestamp_key.is_empty() {
            "precise_timestamp".to_string()
        } else {
            o.precise_timestamp_key
        };
        Some((config_text(key.as_bytes()), unit))
    } else {
        None
    };
    let key = if o.source_key.is_empty() {
        "time".to_string()
    } else {
        o.source_key
    };
    Ok(Strptime {
        key: config_text(key.as_bytes()),
        format: o.format,
        layout,
        zone,
        alarm_if_fail: o.alarm_if_fail,
        keep_source: o.keep_source,
        precise,
        warn: WarnLimiter::new(NAME, cx),
    })
}

impl Processor for Strptime {
    fn process(&mut self, group: &mut EventGroup) {
        let now = i64::from(crate::event::now().0);
        for e in &mut group.events {
            let Some(idx) = e.contents.iter().position(|(k, _)| *k == self.key) else {
                continue;
            };
            let value = &e.contents[idx].1;
            let parsed = self
                .layout
                .parse(value, self.zone, now)
                .and_then(|(secs, ns)| match u32::try_from(secs) {
                    Ok(s) => Ok((s, ns)),
                    Err(_) => Err("time before 1970 or after 2106"),
                });
            let (secs, ns) = match parsed {
                Ok(t) => t,
                Err(why) => {
                    if self.alarm_if_fail {
                        let format = &self.format;
                        self.warn.warn("STRPTIME_PARSE_ALARM", || {
                            format!("strptime({}, {format}) failed: {why}", preview(value))
                        });
                    }
                    continue;
                }
            };
            e.time = secs;
            e.time_ns = Some(ns);
            if !self.keep_source {
                e.contents.remove(idx);
            }
            if let Some((key, unit)) = &self.precise {
                let total = i64::from(secs) * 1_000_000_000 + i64::from(ns);
                e.set(key.clone(), Bytes::from((total / unit).to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::LogEvent;
    use crate::plugins::processors::test_support::{built, event_at, process_one};
    use serde_json::json;

    const T: u32 = 1_696_946_136; // 2023-10-10T13:55:36Z

    fn processor(detail: Value) -> Strptime {
        built(new, &detail)
    }

    fn run(p: &mut Strptime, contents: &[(&str, &str)]) -> LogEvent {
        process_one(p, event_at(42, contents))
    }

    #[test]
    fn nginx_time_local_uses_the_offset_in_the_value() {
        let mut p = processor(json!({"SourceKey": "time_local", "Format": "%d/%b/%Y:%H:%M:%S %z"}));
        let e = run(
            &mut p,
            &[
                ("remote_addr", "10.0.0.1"),
                ("time_local", "10/Oct/2023:21:55:36 +0800"),
            ],
        );
        assert_eq!(e.time, T);
        assert_eq!(e.time_ns, Some(0));
        assert_eq!(
            e.get(b"time_local").unwrap().as_ref(),
            b"10/Oct/2023:21:55:36 +0800"
        );
        // Even with AdjustUTCOffset, the value's own offset wins.
        let mut p = processor(json!({
            "SourceKey": "time_local", "Format": "%d/%b/%Y:%H:%M:%S %z",
            "AdjustUTCOffset": true, "UTCOffset": -28800
        }));
        assert_eq!(
            run(&mut p, &[("time_local", "10/Oct/2023:21:55:36 +0800")]).time,
            T
        );
    }

    #[test]
    fn adjust_utc_offset_and_readme_examples() {
        // iLogtail README example 2: UTC+7.
        let mut p = processor(json!({
            "SourceKey": "log_time", "Format": "%Y/%m/%d %H:%M:%S",
            "AdjustUTCOffset": true, "UTCOffset": 25200
        }));
        assert_eq!(
            run(&mut p, &[("log_time", "2016/01/02 12:59:59")]).time,
            1_451_714_399
        );
        // Without AdjustUTCOffset the machine's zone is used.
        let mut p = processor(json!({"SourceKey": "log_time", "Format": "%Y/%m/%d %H:%M:%S"}));
        let got = i64::from(run(&mut p, &[("log_time", "2016/01/02 12:59:59")]).time);
        let local = Zone::Local.offset_at(got);
        assert_eq!(got, 1_451_739_599 - i64::from(local));
    }

    #[test]
    fn rfc5424_with_fraction_sets_nanoseconds() {
        let mut p = processor(json!({"Format": "%Y-%m-%dT%H:%M:%S.%f%z", "KeepSource": false}));
        let e = run(
            &mut p,
            &[("time", "2023-10-10T13:55:36.123456Z"), ("msg", "hi")],
        );
        assert_eq!((e.time, e.time_ns), (T, Some(123_456_000)));
        assert!(e.get(b"time").is_none(), "KeepSource=false removes it");
        assert_eq!(e.contents.len(), 1);
    }

    #[test]
    fn rfc3164_syslog_without_year() {
        let mut p = processor(json!({
            "SourceKey": "timestamp", "Format": "%b %d %H:%M:%S",
            "AdjustUTCOffset": true, "UTCOffset": 0
        }));
        let now = i64::from(crate::event::now().0);
        let e = run(&mut p, &[("timestamp", "Jan  1 00:00:00")]);
        let t = i64::from(e.time);
        assert!(
            t <= now + 86_400 && t > now - 366 * 86_400,
            "within the last year: {t}"
        );
        assert_eq!(t % 86_400, 0);
    }

    #[test]
    fn epoch_seconds_and_precise_timestamp() {
        let mut p = processor(json!({
            "SourceKey": "ts", "Format": "%s",
            "EnablePreciseTimestamp": true, "PreciseTimestampUnit": "us"
        }));
        let e = run(&mut p, &[("ts", "1696946136789")]);
        assert_eq!(e.time, T, "truncated to 10 digits like iLogtail");
        assert_eq!(
            e.get(b"precise_timestamp").unwrap().as_ref(),
            b"1696946136000000"
        );
        let mut p = processor(json!({
            "Format": "%Y-%m-%d %H:%M:%S.%f %z", "EnablePreciseTimestamp": true,
            "PreciseTimestampKey": "ts_ms"
        }));
        let e = run(&mut p, &[("time", "2023-10-10 13:55:36.789 +0000")]);
        assert_eq!(e.get(b"ts_ms").unwrap().as_ref(), b"1696946136789");
    }

    #[test]
    fn failures_leave_the_log_unchanged_and_alarm() {
        let mut p = processor(json!({
            "Format": "%Y-%m-%d %H:%M:%S", "KeepSource": false,
            "AdjustUTCOffset": true, "UTCOffset": 0
        }));
        for bad in [
            "2023-13-01 00:00:00",
            "yesterday",
            "",
            "1969-12-31 23:59:59",
        ] {
            let e = run(&mut p, &[("time", bad)]);
            assert_eq!(e.time, 42, "{bad}");
            assert_eq!(e.time_ns, None);
            assert_eq!(
                e.get(b"time").unwrap().as_ref(),
                bad.as_bytes(),
                "source kept on failure"
            );
        }
        assert_eq!(p.warn.raised(), 4);
        let mut p = processor(json!({"Format": "%Y", "AlarmIfFail": false}));
        run(&mut p, &[("time", "x")]);
        assert_eq!(p.warn.raised(), 0);
        // A %Z name other than UTC/GMT fails (C strptime), not read in the local zone.
        let mut p = processor(json!({"Format": "%Y-%m-%d %H:%M:%S %Z"}));
        let e = run(&mut p, &[("time", "2023-10-10 13:55:36 CEST")]);
        assert_eq!((e.time, e.time_ns), (42, None));
        assert_eq!(p.warn.raised(), 1);
        // A missing key is ignored silently.
        let mut p = processor(json!({"Format": "%Y"}));
        let e = run(&mut p, &[("other", "2023")]);
        assert_eq!(e.time, 42);
        assert_eq!(p.warn.raised(), 0);
    }

    #[test]
    fn options_are_checked() {
        let cx = PluginContext::for_check("t");
        let err = |d: Value| build(&d, &cx).err().unwrap();
        assert_eq!(err(json!({})).field, "Format");
        assert_eq!(err(json!({"Format": "%Y-%q"})).field, "Format");
        assert_eq!(
            err(json!({"Format": "%Y", "AdjustUTCOffset": true, "UTCOffset": 54000})).field,
            "UTCOffset"
        );
        assert_eq!(
            err(
                json!({"Format": "%Y", "EnablePreciseTimestamp": true, "PreciseTimestampUnit": "s"})
            )
            .field,
            "PreciseTimestampUnit"
        );
        assert_eq!(
            err(json!({"Format": "%Y", "Utcoffset": 1})).field,
            "Utcoffset"
        );
        // Out-of-range UTCOffset is fine while AdjustUTCOffset is off (it is unused).
        assert!(build(&json!({"Format": "%Y", "UTCOffset": 99999}), &cx).is_ok());
    }
}
