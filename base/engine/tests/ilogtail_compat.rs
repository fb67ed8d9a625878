//! iLogtail compatibility: the table-driven cases of the original's processor unit tests
//! (`plugins/processor/*/…_test.go` in the public LoongCollector source), ported as data
//! files under `tests/ilogtail_cases/`, one per processor, and checked against our processors.
//!
//! Each processor is built the way a pipeline builds it (`registry::parse_config` of a config holding
//! it, then `registry::processor`), runs once over one group made of the case's logs, and the case
//! checks what is left: the logs (contents in order, and the time when the case gives one),
//! the config error, and the alarms raised. See `tests/ilogtail_cases/README.md` for the format.
//!
//! Every case runs even if an earlier one failed; the failure lists every case that differed
//! and how. The environment's zone is fixed to UTC first (the Go tests set `time.Local` to
//! UTC, or compute their expectations in the machine's zone).

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use engine::api::PluginContext;
use engine::event::{EventGroup, LogEvent};
use engine::{config, registry};
use serde_json::{json, Map, Value};

/// What a case expects of one log left by the processor.
struct Log {
    contents: Vec<(String, String)>,
    time: Option<u32>,
    time_ns: Option<u32>,
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ilogtail_cases")
}

fn string(v: &Value, what: &str) -> Result<String, String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{what} must be a string, got {v}"))
}

fn pairs(v: &Value) -> Result<Vec<(String, String)>, String> {
    let Value::Array(items) = v else {
        return Err(format!(
            "contents must be an array of [key, value], got {v}"
        ));
    };
    items
        .iter()
        .map(|p| match p.as_array().map(Vec::as_slice) {
            Some([k, v]) => Ok((string(k, "a key")?, string(v, "a value")?)),
            _ => Err(format!("a content must be [key, value], got {p}")),
        })
        .collect()
}

fn number(v: Option<&Value>, what: &str) -> Result<Option<u32>, String> {
    match v {
        None => Ok(None),
        Some(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("{what} must be a u32, got {n}")),
    }
}

/// A log: `[[k, v], ...]`, or `{"contents": [[k, v], ...], "time": s, "time_ns": ns}`.
fn log(v: &Value) -> Result<Log, String> {
    match v {
        Value::Array(_) => Ok(Log {
            contents: pairs(v)?,
            time: None,
            time_ns: None,
        }),
        Value::Object(o) => {
            for k in o.keys() {
                if !matches!(k.as_str(), "contents" | "time" | "time_ns") {
                    return Err(format!("unknown log field `{k}`"));
                }
            }
            Ok(Log {
                contents: pairs(o.get("contents").unwrap_or(&json!([])))?,
                time: number(o.get("time"), "time")?,
                time_ns: number(o.get("time_ns"), "time_ns")?,
            })
        }
        _ => Err(format!("a log must be an array or an object, got {v}")),
    }
}

fn logs(v: Option<&Value>) -> Result<Vec<Log>, String> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(log).collect(),
        Some(other) => Err(format!("logs must be an array, got {other}")),
    }
}

fn event(l: &Log) -> LogEvent {
    let mut e = LogEvent::new(l.time.unwrap_or(0));
    e.time_ns = l.time_ns;
    for (k, v) in &l.contents {
        e.contents.push((
            Bytes::copy_from_slice(k.as_bytes()),
            Bytes::copy_from_slice(v.as_bytes()),
        ));
    }
    e
}

fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show(contents: &[(String, String)]) -> String {
    serde_json::to_string(
        &contents
            .iter()
            .map(|(k, v)| json!([k, v]))
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default()
}

const CASE_FIELDS: &[&str] = &[
    "name",
    "go",
    "type",
    "detail",
    "logs",
    "expect",
    "config_error",
    "alarms",
    "max_ms",
    "deliberate",
    "note",
];

/// Runs one case; `Err` says what differed.
fn run_case(processor: &str, config_name: &str, case: &Map<String, Value>) -> Result<(), String> {
    for k in case.keys() {
        if !CASE_FIELDS.contains(&k.as_str()) {
            return Err(format!("unknown case field `{k}`"));
        }
    }
    let type_name = match case.get("type") {
        Some(t) => string(t, "type")?,
        None => processor.to_string(),
    };
    let detail = case.get("detail").cloned().unwrap_or_else(|| json!({}));
    let cfg = json!({"processors": [{"type": type_name, "detail": detail}]}).to_string();
    let parsed = registry::parse_config(config_name, &cfg);
    if let Some(want) = case.get("config_error") {
        // `true`: any config error; a name: an error on that option (its field, or named in
        // the message of an error on the whole `detail`, like a missing field).
        let want = match want {
            Value::Bool(true) => None,
            other => Some(string(other, "config_error")?),
        };
        let names = |e: &config::ConfigError| match &want {
            None => true,
            Some(w) => {
                e.field.as_deref() == Some(&format!("detail.{w}"))
                    || e.message.contains(&format!("`{w}`"))
            }
        };
        let what = want.as_deref().unwrap_or("any option");
        return match parsed {
            Ok(_) => Err(format!(
                "expected a config error on {what}, the config loaded"
            )),
            Err(errors) if errors.iter().any(names) => Ok(()),
            Err(errors) => Err(format!(
                "expected a config error on {what}, got: {}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        };
    }
    let cfg = parsed.map_err(|errors| {
        format!(
            "config error: {}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let cx = PluginContext::for_check(config_name);
    let mut p = match registry::processor(&cfg.processors[0], &cx) {
        Ok(p) => p,
        Err(e) => return Err(format!("build failed: {e:?}")),
    };
    let input = logs(case.get("logs"))?;
    let expect = logs(case.get("expect"))?;
    let mut group = EventGroup {
        events: input.iter().map(event).collect(),
        ..EventGroup::default()
    };
    cx.stats.take_alarms();
    let start = Instant::now();
    p.process(&mut group);
    let elapsed = start.elapsed();
    let (alarms, _) = cx.stats.take_alarms();

    let mut diff = String::new();
    let got: Vec<Vec<(String, String)>> = group
        .events
        .iter_mut()
        .map(|e| {
            e.decode_contents();
            e.contents.iter().map(|(k, v)| (text(k), text(v))).collect()
        })
        .collect();
    if got.len() != expect.len() {
        let _ = writeln!(
            diff,
            "expected {} log(s), got {}: {}",
            expect.len(),
            got.len(),
            got.iter().map(|c| show(c)).collect::<Vec<_>>().join(" ")
        );
    }
    for (i, (want, (have, e))) in expect.iter().zip(got.iter().zip(&group.events)).enumerate() {
        if want.contents != *have {
            let _ = writeln!(
                diff,
                "log {i}: expected {}\n       got      {}",
                show(&want.contents),
                show(have)
            );
        }
        if want.time.is_some_and(|t| t != e.time) {
            let _ = writeln!(
                diff,
                "log {i}: expected time {}, got {}",
                want.time.unwrap_or_default(),
                e.time
            );
        }
        if want.time_ns.is_some() && want.time_ns != e.time_ns {
            let _ = writeln!(
                diff,
                "log {i}: expected time_ns {:?}, got {:?}",
                want.time_ns, e.time_ns
            );
        }
    }
    let raised: BTreeSet<String> = alarms
        .iter()
        .filter(|a| a.config == config_name)
        .map(|a| a.kind.name().to_string())
        .collect();
    let wanted: BTreeSet<String> = match case.get("alarms") {
        None => BTreeSet::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| string(v, "an alarm"))
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("alarms must be an array, got {other}")),
    };
    if raised != wanted {
        let _ = writeln!(diff, "expected alarms {wanted:?}, got {raised:?}");
    }
    if let Some(ms) = case.get("max_ms") {
        let ms = ms
            .as_u64()
            .ok_or_else(|| format!("max_ms must be an integer, got {ms}"))?;
        if elapsed > Duration::from_millis(ms) {
            let _ = writeln!(diff, "took {elapsed:?}, more than {ms} ms");
        }
    }
    if diff.is_empty() {
        Ok(())
    } else {
        Err(diff)
    }
}

#[test]
fn ilogtail_processor_test_cases() {
    // Before anything reads the machine's zone.
    std::env::set_var("TZ", "UTC");
    let mut files: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("tests/ilogtail_cases")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no case files");
    let (mut passed, mut deliberate, mut skipped) = (0, 0, 0);
    let mut failures = Vec::new();
    let mut summary = String::new();
    for path in &files {
        let file = path.file_name().unwrap_or_default().to_string_lossy();
        let data: Value = serde_json::from_str(
            &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{file}: {e}")),
        )
        .unwrap_or_else(|e| panic!("{file}: {e}"));
        let processor = data["processor"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: no \"processor\""));
        let cases = data["cases"]
            .as_array()
            .unwrap_or_else(|| panic!("{file}: no \"cases\" array"));
        let file_skipped = data["skipped"].as_array().map_or(0, Vec::len);
        let mut names = HashSet::new();
        let (mut file_passed, mut file_deliberate) = (0, 0);
        for (i, case) in cases.iter().enumerate() {
            let case = case
                .as_object()
                .unwrap_or_else(|| panic!("{file}: case {i} is not an object"));
            let name = case
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{file}: case {i} has no name"));
            assert!(names.insert(name), "{file}: two cases named {name:?}");
            assert!(
                case.get("go").is_some_and(Value::is_string),
                "{file}: case {name:?} does not say which Go test it comes from (\"go\")"
            );
            let config_name = format!("ilogtail-compat/{file}/{i}");
            match run_case(processor, &config_name, case) {
                Ok(()) => {
                    file_passed += 1;
                    if case.contains_key("deliberate") {
                        file_deliberate += 1;
                    }
                }
                Err(why) => failures.push(format!(
                    "{file} / {name} (Go: {}):\n{}",
                    case["go"].as_str().unwrap_or_default(),
                    why.trim_end()
                )),
            }
        }
        let _ = writeln!(
            summary,
            "{processor}: {file_passed}/{} passed ({file_deliberate} deliberate differences), {file_skipped} skipped",
            cases.len()
        );
        passed += file_passed;
        deliberate += file_deliberate;
        skipped += file_skipped;
    }
    let total = passed + failures.len();
    let _ = writeln!(
        summary,
        "total: {passed}/{total} passed ({deliberate} deliberate differences), {skipped} skipped"
    );
    // Shown with `--nocapture`, and with the failures.
    print!("{summary}");
    assert!(
        failures.is_empty(),
        "{} of {total} iLogtail cases differ:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
