//! `run --stats`: the `LoadGlobalConfig` that makes the base report often, and the stderr
//! rendering of the built-in groups it sends: statistics (config `shennong_log_profile`) as a
//! table, alarms (config `logtail_alarm`) one line each.

use std::fmt::Write as _;

use crate::proto::{Log, LogGroup};

/// Config name of the statistics groups.
pub const PROFILE_CONFIG: &str = "shennong_log_profile";
/// Config name of the alarm groups.
pub const ALARM_CONFIG: &str = "logtail_alarm";
/// Default of `--stats-interval-ms`.
pub const DEFAULT_INTERVAL_MS: u64 = 2000;
/// `AlarmIntervalMs` given with `--stats`.
pub const ALARM_INTERVAL_MS: u64 = 1000;

/// The `LoadGlobalConfig` JSON for `--stats`.
pub fn global_config_json(statistics_interval_ms: u64) -> String {
    serde_json::json!({
        "AlarmIntervalMs": ALARM_INTERVAL_MS,
        "StatisticsIntervalMs": statistics_interval_ms,
    })
    .to_string()
}

fn field<'a>(log: &'a Log, key: &str) -> Option<&'a str> {
    log.contents
        .iter()
        .find(|c| c.key == key)
        .map(|c| c.value.as_str())
}

/// Columns of the statistics table: header and the log field shown.
const COLUMNS: [(&str, &str); 9] = [
    ("config", "config"),
    ("plugin", "plugin"),
    ("in", "events_in"),
    ("out", "events_out"),
    ("dropped", "dropped"),
    ("errors", "errors"),
    ("retries", "retries"),
    ("restarts", "restarts"),
    ("queue", "queue_depth"),
];

/// A statistics group as a table: a title line, a header, one line per plugin (columns
/// padded to their widest cell; text left-aligned, numbers right-aligned). Absent fields
/// print as `-`.
pub fn profile_table(g: &LogGroup) -> String {
    let rows: Vec<Vec<&str>> = g
        .logs
        .iter()
        .map(|l| {
            COLUMNS
                .iter()
                .map(|(_, k)| field(l, k).unwrap_or("-"))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (h, _))| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!("stats: {} plugins\n", rows.len());
    let header: Vec<&str> = COLUMNS.iter().map(|(h, _)| *h).collect();
    for r in std::iter::once(&header).chain(rows.iter()) {
        let mut line = String::from("stats:");
        for (i, cell) in r.iter().enumerate() {
            let w = widths[i];
            if i < 2 {
                let _ = write!(line, " {cell:<w$}");
            } else {
                let _ = write!(line, " {cell:>w$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Each alarm of an alarm group as `alarm: <type> <config> <plugin> x<count>: <message>`
/// (absent fields print as `-`).
pub fn alarm_lines(g: &LogGroup) -> String {
    let mut out = String::new();
    for l in &g.logs {
        let f = |k| field(l, k).unwrap_or("-");
        let _ = writeln!(
            out,
            "alarm: {} {} {} x{}: {}",
            f("alarm_type"),
            f("config"),
            f("plugin"),
            f("alarm_count"),
            f("alarm_message")
        );
    }
    out
}

/// What `--stats` prints to stderr for a group received under `config` (`None` for groups
/// that are neither statistics nor alarms).
pub fn render(config: &str, g: &LogGroup) -> Option<String> {
    match config {
        PROFILE_CONFIG => Some(profile_table(g)),
        ALARM_CONFIG => Some(alarm_lines(g)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Content;

    fn log(fields: &[(&str, &str)]) -> Log {
        Log {
            time: 1,
            contents: fields
                .iter()
                .map(|(k, v)| Content {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            values: vec![],
            time_ns: None,
        }
    }

    fn group(logs: Vec<Log>) -> LogGroup {
        LogGroup {
            logs,
            ..LogGroup::default()
        }
    }

    #[test]
    fn global_config_has_both_intervals() {
        let v: serde_json::Value = serde_json::from_str(&global_config_json(500)).unwrap();
        assert_eq!(v["AlarmIntervalMs"], 1000);
        assert_eq!(v["StatisticsIntervalMs"], 500);
    }

    #[test]
    fn profile_is_an_aligned_table() {
        let g = group(vec![
            log(&[
                ("config", "web"),
                ("plugin", "service_mock/0"),
                ("events_in", "0"),
                ("events_out", "12345"),
                ("dropped", "0"),
                ("errors", "0"),
                ("retries", "0"),
                ("restarts", "0"),
                ("time_ms", "3"),
                ("queue_depth", "7"),
                ("ip", "127.0.0.1"),
            ]),
            log(&[
                ("config", "web"),
                ("plugin", "flusher_sls/0"),
                ("events_in", "12"),
            ]),
        ]);
        let t = profile_table(&g);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert_eq!(lines[0], "stats: 2 plugins");
        assert_eq!(
            lines[1],
            "stats: config plugin         in   out dropped errors retries restarts queue"
        );
        assert_eq!(
            lines[2],
            "stats: web    service_mock/0  0 12345       0      0       0        0     7"
        );
        assert_eq!(
            lines[3],
            "stats: web    flusher_sls/0  12     -       -      -       -        -     -"
        );
    }

    #[test]
    fn alarms_one_line_each() {
        let g = group(vec![
            log(&[
                ("alarm_type", "PLUGIN_PANIC_ALARM"),
                ("alarm_level", "2"),
                ("alarm_message", "processor panicked: boom"),
                ("alarm_count", "3"),
                ("config", "c1"),
                ("plugin", "processor_x/0"),
            ]),
            log(&[
                ("alarm_type", "ALARM_OVERFLOW_ALARM"),
                ("alarm_message", "5 alarms were not kept"),
                ("alarm_count", "5"),
            ]),
        ]);
        assert_eq!(
            alarm_lines(&g),
            "alarm: PLUGIN_PANIC_ALARM c1 processor_x/0 x3: processor panicked: boom\n\
             alarm: ALARM_OVERFLOW_ALARM - - x5: 5 alarms were not kept\n"
        );
    }

    #[test]
    fn render_picks_by_config_name() {
        let g = group(vec![log(&[("config", "a")])]);
        assert!(render(PROFILE_CONFIG, &g)
            .unwrap()
            .starts_with("stats: 1 plugins"));
        assert!(render(ALARM_CONFIG, &g)
            .unwrap()
            .starts_with("alarm: - a -"));
        assert_eq!(render("web", &g), None);
    }
}
