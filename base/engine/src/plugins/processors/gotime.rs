//! `processor_gotime`: parses a content with a Go time layout (`2006-01-02 15:04:05`) or as
//! a Unix timestamp, optionally sets the log time from it, and writes it again in another
//! Go layout and zone under `DestKey`.
//!
//! Go layouts are converted once, at build, into parsing/formatting directives
//! (see `timefmt::Layout::go`). Zones are whole-hour offsets as in iLogtail (`8` = UTC+8);
//! absent (or iLogtail's `-100`) means the machine's zone.

use super::parse_support::{preview, WarnLimiter};
use super::timefmt::{Layout, Zone};
use crate::api::prelude::*;

const NAME: &str = "processor_gotime";
/// iLogtail's marker for "the machine's zone".
const MACHINE_ZONE: i32 = -100;

/// Options of `processor_gotime`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
struct Options {
    source_key: String,
    /// Go layout, or `seconds`, `milliseconds`, `microseconds`, `nanoseconds`.
    source_format: String,
    /// Hours east of UTC of values without an offset; absent or -100 = machine zone.
    source_location: Option<i32>,
    dest_key: String,
    dest_format: String,
    dest_location: Option<i32>,
    set_time: bool,
    keep_source: bool,
    no_key_error: bool,
    alarm_if_fail: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            source_key: String::new(),
            source_format: String::new(),
            source_location: None,
            dest_key: String::new(),
            dest_format: String::new(),
            dest_location: None,
            set_time: true,
            keep_source: true,
            no_key_error: true,
            alarm_if_fail: true,
        }
    }
}

/// How the source is read.
#[derive(Debug)]
enum Source {
    /// A Go layout.
    Layout(Layout),
    /// An integer count of units since the epoch; the value is nanoseconds per unit.
    Epoch(i64),
}

struct GoTime {
    key: Bytes,
    source_format: String,
    source: Source,
    source_zone: Zone,
    dest_key: Bytes,
    dest: Layout,
    dest_zone: Zone,
    set_time: bool,
    keep_source: bool,
    no_key_error: bool,
    alarm_if_fail: bool,
    warn: WarnLimiter,
    /// Length of the last formatted value (sizes the next group's buffer).
    value_len: usize,
    /// Reused: which event gets which range of the group's formatted values.
    spans: Vec<(usize, std::ops::Range<usize>)>,
}

fn zone(field: &str, hours: Option<i32>) -> Result<Zone, DetailError> {
    match hours {
        None | Some(MACHINE_ZONE) => Ok(Zone::Local),
        Some(h) if (-23..=23).contains(&h) => Ok(Zone::Fixed(h * 3600)),
        Some(h) => Err(DetailError::new(
            field,
            format!("{h} is not an offset in hours (-23 to 23, or -100 for the machine's zone)"),
        )),
    }
}

pub(crate) fn build(detail: &Value, cx: &PluginContext) -> Result<Box<dyn Processor>, DetailError> {
    Ok(Box::new(new(detail, cx)?))
}

fn new(detail: &Value, cx: &PluginContext) -> Result<GoTime, DetailError> {
    let o: Options = parse_detail(detail)?;
    for (field, v) in [
        ("SourceKey", &o.source_key),
        ("SourceFormat", &o.source_format),
        ("DestKey", &o.dest_key),
        ("DestFormat", &o.dest_format),
    ] {
        if v.is_empty() {
            return Err(DetailError::new(field, "must not be empty"));
        }
    }
    let source = match o.source_format.as_str() {
        "seconds" => Source::Epoch(1_000_000_000),
        "milliseconds" => Source::Epoch(1_000_000),
        "microseconds" => Source::Epoch(1_000),
        "nanoseconds" => Source::Epoch(1),
        layout => Source::Layout(Layout::go(layout)),
    };
    Ok(GoTime {
        key: config_text(o.source_key.as_bytes()),
        source_format: o.source_format,
        source,
        source_zone: zone("SourceLocation", o.source_location)?,
        dest_key: config_text(o.dest_key.as_bytes()),
        dest: Layout::go(&o.dest_format),
        dest_zone: zone("DestLocation", o.dest_location)?,
        set_time: o.set_time,
        keep_source: o.keep_source,
        no_key_error: o.no_key_error,
        alarm_if_fail: o.alarm_if_fail,
        warn: WarnLimiter::new(NAME, cx),
        value_len: 0,
        spans: Vec::new(),
    })
}

/// Go's `strconv.ParseInt(s, 10, 64)`: optional sign, then digits only.
fn parse_int(v: &[u8]) -> Option<i64> {
    let (neg, digits) = match v.first()? {
        b'-' => (true, &v[1..]),
        b'+' => (false, &v[1..]),
        _ => (false, v),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
    }
    Some(if neg { -n } else { n })
}

impl GoTime {
    fn parse(&self, v: &[u8], now: i64) -> Result<(i64, u32), &'static str> {
        match &self.source {
            Source::Layout(l) => l.parse(v, self.source_zone, now),
            Source::Epoch(unit) => {
                let n = parse_int(v).ok_or("not an integer timestamp")?;
                let per_sec = 1_000_000_000 / unit;
                Ok((n.div_euclid(per_sec), (n.rem_euclid(per_sec) * unit) as u32))
            }
        }
    }
}

impl Processor for GoTime {
    fn process(&mut self, group: &mut EventGroup) {
        let now = i64::from(crate::event::now().0);
        // Every formatted value of the group goes into one buffer (one allocation per group,
        // not per event); events get slices of it once it is complete.
        let mut text = Vec::with_capacity(group.len() * (self.value_len + 8));
        self.spans.clear();
        for (i, e) in group.events.iter_mut().enumerate() {
            let Some(idx) = e.contents.iter().position(|(k, _)| *k == self.key) else {
                if self.no_key_error {
                    let key = &self.key;
                    self.warn.warn("GOTIME_FIND_ALARM", || {
                        format!("cannot find key {}", String::from_utf8_lossy(key))
                    });
                }
                continue;
            };
            let value = &e.contents[idx].1;
            let parsed = self.parse(value, now).and_then(|(secs, ns)| {
                match (self.set_time, u32::try_from(secs)) {
                    (true, Err(_)) => Err("time before 1970 or after 2106 cannot be the log time"),
                    _ => Ok((secs, ns)),
                }
            });
            let (secs, ns) = match parsed {
                Ok(t) => t,
                Err(why) => {
                    if self.alarm_if_fail {
                        let format = &self.source_format;
                        self.warn.warn("GOTIME_PARSE_ALARM", || {
                            format!("parse({format}, {}) failed: {why}", preview(value))
                        });
                    }
                    continue;
                }
            };
            if self.set_time {
                e.time = secs as u32;
                e.time_ns = Some(ns);
            }
            if !self.keep_source {
                e.contents.remove(idx);
            }
            let start = text.len();
            self.dest.format(secs, ns, self.dest_zone, &mut text);
            self.spans.push((i, start..text.len()));
        }
        if let Some((_, last)) = self.spans.last() {
            self.value_len = last.len();
        }
        let text = Bytes::from(text);
        for (i, span) in self.spans.drain(..) {
            group.events[i].set(self.dest_key.clone(), text.slice(span));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::LogEvent;
    use crate::plugins::processors::test_support::{built, event_at, get, process_one};
    use serde_json::json;

    const T: u32 = 1_696_946_136; // 2023-10-10T13:55:36Z

    fn processor(detail: Value) -> GoTime {
        built(new, &detail)
    }

    fn run(p: &mut GoTime, contents: &[(&str, &str)]) -> LogEvent {
        process_one(p, event_at(42, contents))
    }

    #[test]
    fn readme_example_1_layout_between_zones() {
        let mut p = processor(json!({
            "SourceKey": "s_key", "SourceFormat": "2006-01-02 15:04:05", "SourceLocation": 8,
            "DestKey": "d_key", "DestFormat": "2006/01/02 15:04:05", "DestLocation": 9,
            "SetTime": true, "KeepSource": true, "NoKeyError": true, "AlarmIfFail": true
        }));
        let e = run(&mut p, &[("s_key", "2019-07-05 19:28:01")]);
        assert_eq!(get(&e, "s_key").unwrap(), "2019-07-05 19:28:01");
        assert_eq!(get(&e, "d_key").unwrap(), "2019/07/05 20:28:01");
        assert_eq!(e.time, 1_562_326_081);
        assert_eq!(e.time_ns, Some(0));
    }

    #[test]
    fn readme_example_2_milliseconds() {
        let mut p = processor(json!({
            "SourceKey": "s_key", "SourceFormat": "milliseconds", "SourceLocation": 8,
            "DestKey": "d_key", "DestFormat": "2006/01/02 15:04:05.000", "DestLocation": 9
        }));
        let e = run(&mut p, &[("s_key", "1645595256807")]);
        assert_eq!(get(&e, "d_key").unwrap(), "2022/02/23 14:47:36.807");
        assert_eq!((e.time, e.time_ns), (1_645_595_256, Some(807_000_000)));
    }

    #[test]
    fn epoch_units() {
        for (fmt, v) in [
            ("seconds", "1696946136"),
            ("microseconds", "1696946136000250"),
            ("nanoseconds", "1696946136000000250"),
        ] {
            let mut p = processor(json!({
                "SourceKey": "ts", "SourceFormat": fmt,
                "DestKey": "iso", "DestFormat": "2006-01-02T15:04:05.999999999Z07:00", "DestLocation": 0
            }));
            let e = run(&mut p, &[("ts", v)]);
            assert_eq!(e.time, T, "{fmt}");
            let want = match fmt {
                "seconds" => "2023-10-10T13:55:36Z",
                "microseconds" => "2023-10-10T13:55:36.00025Z",
                _ => "2023-10-10T13:55:36.00000025Z",
            };
            assert_eq!(get(&e, "iso").unwrap(), want);
        }
    }

    #[test]
    fn syslog_and_nginx_layouts() {
        // RFC 3164 (time.Stamp) read in UTC+8, written as RFC 3339 in UTC.
        let mut p = processor(json!({
            "SourceKey": "ts", "SourceFormat": "Jan _2 15:04:05", "SourceLocation": 8,
            "DestKey": "iso", "DestFormat": "2006-01-02T15:04:05Z07:00", "DestLocation": 0,
            "KeepSource": false
        }));
        let e = run(
            &mut p,
            &[("ts", "Oct  5 21:55:36"), ("msg", "sshd[42]: accepted")],
        );
        let iso = get(&e, "iso").unwrap();
        assert!(iso.ends_with("-10-05T13:55:36Z"), "{iso}");
        assert!(get(&e, "ts").is_none());
        // nginx time_local: the value's offset wins over SourceLocation.
        let mut p = processor(json!({
            "SourceKey": "time_local", "SourceFormat": "02/Jan/2006:15:04:05 -0700",
            "SourceLocation": 3, "DestKey": "t", "DestFormat": "Mon Jan 2 15:04:05 MST 2006",
            "DestLocation": 0, "SetTime": false
        }));
        let e = run(&mut p, &[("time_local", "10/Oct/2023:21:55:36 +0800")]);
        assert_eq!(get(&e, "t").unwrap(), "Tue Oct 10 13:55:36 UTC 2023");
        assert_eq!(e.time, 42, "SetTime=false keeps the log time");
        // RFC 5424 timestamp with a fraction the layout does not name.
        let mut p = processor(json!({
            "SourceKey": "ts", "SourceFormat": "2006-01-02T15:04:05Z07:00",
            "DestKey": "ts", "DestFormat": "2006-01-02 15:04:05.000", "DestLocation": 8
        }));
        let e = run(&mut p, &[("ts", "2023-10-10T13:55:36.5+00:00")]);
        assert_eq!(
            get(&e, "ts").unwrap(),
            "2023-10-10 21:55:36.500",
            "DestKey may be SourceKey"
        );
        assert_eq!(e.contents.len(), 1);
    }

    #[test]
    fn machine_zone_by_default() {
        let mut p = processor(json!({
            "SourceKey": "a", "SourceFormat": "2006-01-02 15:04:05",
            "DestKey": "b", "DestFormat": "2006-01-02 15:04:05", "DestLocation": -100
        }));
        let e = run(&mut p, &[("a", "2023-10-10 13:55:36")]);
        assert_eq!(get(&e, "b").unwrap(), "2023-10-10 13:55:36");
        let off = Zone::Local.offset_at(i64::from(e.time));
        assert_eq!(i64::from(e.time), i64::from(T) - i64::from(off));
    }

    #[test]
    fn failures_alarm_and_leave_the_log_unchanged() {
        let mut p = processor(json!({
            "SourceKey": "ts", "SourceFormat": "2006-01-02 15:04:05", "SourceLocation": 0,
            "DestKey": "d", "DestFormat": "2006", "KeepSource": false
        }));
        for bad in [
            "2023-10-10",
            "2023-10-10 13:55:36 extra",
            "10/10/2023 13:55:36",
            "",
            "1969-12-31 23:59:59",
        ] {
            let e = run(&mut p, &[("ts", bad)]);
            assert_eq!(e.time, 42, "{bad}");
            assert_eq!(get(&e, "ts").unwrap(), bad);
            assert!(get(&e, "d").is_none());
        }
        assert_eq!(p.warn.raised(), 5);
        // Missing key: NoKeyError (default true) alarms, false does not.
        run(&mut p, &[("other", "x")]);
        assert_eq!(p.warn.raised(), 6);
        let mut p = processor(json!({
            "SourceKey": "ts", "SourceFormat": "seconds", "DestKey": "d", "DestFormat": "2006",
            "NoKeyError": false, "AlarmIfFail": false
        }));
        run(&mut p, &[("other", "x")]);
        for bad in ["12a", "", "+", "99999999999999999999", "1.5"] {
            assert!(get(&run(&mut p, &[("ts", bad)]), "d").is_none(), "{bad}");
        }
        assert_eq!(p.warn.raised(), 0);
        // Before 1970 is fine when the time is not set.
        let mut p = processor(json!({
            "SourceKey": "ts", "SourceFormat": "seconds", "DestKey": "d",
            "DestFormat": "2006-01-02", "DestLocation": 0, "SetTime": false
        }));
        assert_eq!(
            get(&run(&mut p, &[("ts", "-86400")]), "d").unwrap(),
            "1969-12-31"
        );
    }

    #[test]
    fn options_are_checked() {
        let cx = PluginContext::for_check("t");
        let full =
            json!({"SourceKey": "a", "SourceFormat": "2006", "DestKey": "b", "DestFormat": "2006"});
        assert!(build(&full, &cx).is_ok());
        for field in ["SourceKey", "SourceFormat", "DestKey", "DestFormat"] {
            let mut d = full.clone();
            d.as_object_mut().unwrap().remove(field);
            assert_eq!(build(&d, &cx).err().unwrap().field, field);
        }
        let mut d = full.clone();
        d["SourceLocation"] = json!(24);
        assert_eq!(build(&d, &cx).err().unwrap().field, "SourceLocation");
        let mut d = full.clone();
        d["DestLocation"] = json!("Asia/Shanghai");
        assert_eq!(build(&d, &cx).err().unwrap().field, "DestLocation");
    }

    #[test]
    fn parse_int_is_go_parse_int() {
        assert_eq!(parse_int(b"-12"), Some(-12));
        assert_eq!(parse_int(b"+7"), Some(7));
        assert_eq!(parse_int(b" 7"), None);
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int(b"9223372036854775808"), None);
    }
}
