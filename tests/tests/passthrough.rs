//! Ensures logs a host pushes into a config without processors come back exactly as sent:
//! the engine forwards their original encoding (see `LogEvent::encoded`), cutting `Time_ns`
//! off when the config does not send it, and re-encodes the logs it cannot forward as they
//! are (here: ones with the deprecated `Values` field, which is not sent), across a reload.

use std::time::Duration;

use e2e_tests::proto::{log, now_secs, Log, LogGroup};
use e2e_tests::store;
use e2e_tests::{base, wait_until, Session};
use prost::Message;
use serde_json::json;

const LOGS: usize = 600;

/// Log `i`: sizes that need one, two and three length bytes, a time_ns on every third log,
/// a `Values` entry on every seventh.
fn sent(t: u32, i: usize) -> Log {
    let big = "x".repeat([10, 200, 20_000][i % 3]);
    let mut l = log(t, &[("seq", &i.to_string()), ("body", &big), ("", "")]);
    if i.is_multiple_of(3) {
        l.time_ns = Some(i as u32 * 1000);
    }
    if i.is_multiple_of(7) {
        l.values = vec!["v".into()];
    }
    l
}

fn expected(l: &Log, with_time_ns: bool) -> Log {
    let mut l = l.clone();
    l.values.clear();
    if !with_time_ns {
        l.time_ns = None;
    }
    l
}

#[test]
fn logs_without_processors_come_back_as_sent() {
    let s = Session::start("passthrough");
    let t = now_secs();
    let logs: Vec<Log> = (0..LOGS).map(|i| sent(t, i)).collect();
    let configs = [("plain", false), ("with_ns", true)];
    let load_all = || {
        for (name, ns) in configs {
            let config = json!({
                "global": {"AggregatIntervalMs": 200, "EnableTimestampNanosecond": ns},
                "flushers": [{"type": "flusher_sls", "detail": {}}],
            });
            assert_eq!(s.load(name, &config.to_string()), 0, "LoadConfig({name})");
        }
    };
    load_all();
    base::resume();
    for (k, chunk) in logs.chunks(100).enumerate() {
        if k == 3 {
            // A reload in the middle: what the first instances hold is handed on.
            base::hold_on(0);
            load_all();
            base::resume();
        }
        for (name, _) in configs {
            let group = LogGroup {
                logs: chunk.to_vec(),
                ..Default::default()
            };
            let pack = format!("0123456789ABCDEF-{:x}", k + 1);
            let rc = base::process_log_group(name, &group.encode_to_vec(), &pack);
            assert_eq!(rc, 0, "ProcessLogGroup({name})");
        }
    }
    for (name, ns) in configs {
        let done = wait_until(Duration::from_secs(60), || store::log_count(name) >= LOGS);
        assert!(done, "{name}: {}", store::counters_summary());
        let mut got: Vec<Log> = store::groups_for(name)
            .into_iter()
            .flat_map(|g| g.group.logs)
            .collect();
        assert_eq!(got.len(), LOGS, "{name}: every log exactly once");
        got.sort_by_key(|l| l.contents[0].value.parse::<usize>().expect("seq"));
        for (i, (g, l)) in got.iter().zip(&logs).enumerate() {
            assert_eq!(g, &expected(l, ns), "{name}: log {i}");
        }
    }
}
