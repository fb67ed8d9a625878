//! LoongCollector 3.x pulls metrics and alarms (`GetGoMetrics`, `GetGoAlarms`) instead of
//! receiving them through SendPb. Read and freed exactly as the host does, while data flows
//! and from another thread than the one feeding: every `direct` record has `labels`,
//! `counters` and `gauges` (a missing key crashes the host), the counters summed over all
//! pulls equal the events sent, `cpp_provided` values are integers, span events are counted
//! and alarmed (never dropped silently), and nothing reaches the host as `logtail_alarm` or
//! `shennong_log_profile` groups.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e_tests::loong::{self, host_fed_pipeline, LoongSession};
use e2e_tests::{base, store, wait_until};
use prost::Message;
use serde_json::json;

const NAME: &str = "pull";
const GROUPS: u64 = 200;
const PER_GROUP: u64 = 25;
const METRICS: u64 = 7;
const SPANS: u64 = 3;
const GONE: u64 = 40;

/// Sums of the counters pulled, by (pipeline_name, plugin_type, counter).
type Sums = BTreeMap<(String, String, String), u64>;

fn pull_into(sums: &Mutex<Sums>) {
    let records = loong::get_go_metrics("direct");
    let parsed = loong::parse_direct(&records).unwrap_or_else(|e| panic!("{e}"));
    let mut sums = sums.lock().unwrap();
    for r in parsed {
        assert_eq!(r.category, "plugin", "{r:?}");
        for k in [
            "project",
            "logstore",
            "pipeline_name",
            "plugin_type",
            "plugin_id",
        ] {
            assert!(r.labels.contains_key(k), "label {k} missing: {r:?}");
        }
        for (c, v) in &r.counters {
            *sums
                .entry((
                    r.labels["pipeline_name"].clone(),
                    r.labels["plugin_type"].clone(),
                    c.clone(),
                ))
                .or_default() += v;
        }
    }
}

#[test]
fn pulled_metrics_and_alarms_are_what_the_host_reads() {
    let s = LoongSession::start("loong-pull");
    // Quick reports, so that a pushed alarm or statistics group would show up in the test.
    assert_eq!(
        base::load_global_config(
            &json!({"AlarmIntervalMs": 100, "StatisticsIntervalMs": 100}).to_string()
        ),
        0
    );
    let name2 = format!("{NAME}/2");
    let json = host_fed_pipeline(
        vec![json!({"type": "processor_add_fields/3", "detail": {"Fields": {"a": "1"}}})],
        20,
    );
    assert_eq!(s.load(&name2, 11, &json), 0);
    loong::start(&name2);

    // The host's SelfMonitorServer: an unsynchronised thread pulling all the time.
    let sums = Arc::new(Mutex::new(Sums::new()));
    let done = Arc::new(AtomicBool::new(false));
    let alarms = Arc::new(Mutex::new(Vec::new()));
    // While set, the monitor does not pull (the lock is held across a whole pull round).
    let hold = Arc::new(Mutex::new(()));
    let monitor = {
        let (sums, done, alarms, hold) = (sums.clone(), done.clone(), alarms.clone(), hold.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let _round = hold.lock().unwrap();
                pull_into(&sums);
                let cpp = loong::get_go_metrics("cpp_provided");
                assert_eq!(cpp.len(), 1, "{cpp:?}");
                for k in ["go_memory_used_mb", "go_routines_total"] {
                    let v = cpp[0]
                        .get(k)
                        .unwrap_or_else(|| panic!("{k} missing: {cpp:?}"));
                    v.parse::<i32>()
                        .unwrap_or_else(|_| panic!("{k} = {v:?} is no integer"));
                }
                alarms.lock().unwrap().extend(loong::get_go_alarms());
                assert_eq!(
                    loong::get_containers(true).as_deref(),
                    Some(r#"{"All":[]}"#)
                );
                assert_eq!(loong::get_containers(false).as_deref(), Some(""));
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let source = "/var/log/pull.log";
    let pack = loong::host_pack_id(source);
    for g in 0..GROUPS {
        let logs: Vec<Vec<(&str, String)>> = (0..PER_GROUP)
            .map(|i| vec![("content", format!("g{g} l{i}"))])
            .collect();
        assert_eq!(
            loong::process_event_group(&name2, &loong::log_group("t", source, &logs), &pack),
            0
        );
    }
    // Metric events become metric logs; span events are counted and alarmed.
    let metrics = loong::PipelineEventGroup {
        metrics: Some(loong::MetricEvents {
            events: (0..METRICS)
                .map(|i| loong::MetricEvent {
                    timestamp: 1_700_000_000_000_000_000 + i,
                    name: b"cpu_usage".to_vec(),
                    tags: [("core".to_string(), i.to_string().into_bytes())].into(),
                    value: Some(loong::SingleValue {
                        value: i as f64 / 2.0,
                    }),
                })
                .collect(),
        }),
        ..Default::default()
    };
    assert_eq!(
        loong::process_event_group(&name2, &metrics.encode_to_vec(), &pack),
        0
    );
    let spans = loong::PipelineEventGroup {
        spans: Some(loong::SpanEvents {
            events: (0..SPANS)
                .map(|i| loong::SpanEvent {
                    timestamp: i,
                    name: b"op".to_vec(),
                })
                .collect(),
        }),
        ..Default::default()
    };
    assert_eq!(
        loong::process_event_group(&name2, &spans.encode_to_vec(), &pack),
        0
    );
    let logs = GROUPS * PER_GROUP + METRICS;
    assert!(
        wait_until(Duration::from_secs(30), || store::log_count(NAME) as u64
            >= logs),
        "{} of {logs} logs arrived",
        store::log_count(NAME)
    );
    // A config removed between two pulls: what it counted since the last pull still arrives.
    let held = hold.lock().unwrap();
    let gone2 = "gone/2";
    assert_eq!(s.load(gone2, 12, &json), 0);
    loong::start(gone2);
    let logs_gone: Vec<Vec<(&str, String)>> = (0..GONE)
        .map(|i| vec![("content", format!("gone {i}"))])
        .collect();
    assert_eq!(
        loong::process_event_group(gone2, &loong::log_group("t", "g", &logs_gone), "G"),
        0
    );
    assert!(wait_until(Duration::from_secs(30), || store::log_count(
        "gone"
    ) == GONE as usize));
    loong::stop(gone2, true);
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Relaxed);
    monitor.join().expect("the monitor thread");
    pull_into(&sums);
    alarms.lock().unwrap().extend(loong::get_go_alarms());

    // The metric logs, in iLogtail's metric-log layout.
    let metric_logs: Vec<_> = store::logs_for(NAME)
        .into_iter()
        .filter(|(l, _)| l.get("__name__") == Some("cpu_usage"))
        .collect();
    assert_eq!(metric_logs.len() as u64, METRICS);
    assert!(metric_logs
        .iter()
        .any(|(l, _)| l.get("__labels__") == Some("core#$#3")
            && l.get("__value__") == Some("1.5")
            && l.get("__time_nano__") == Some("1700000000000000003")));

    // Counters summed over every pull = what was sent.
    let sums = sums.lock().unwrap().clone();
    let sum = |plugin: &str, counter: &str| {
        sums.get(&(NAME.to_string(), plugin.to_string(), counter.to_string()))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(sum("flusher_sls", "in_events_total"), logs, "{sums:#?}");
    assert_eq!(sum("processor_add_fields", "in_events_total"), logs);
    assert_eq!(sum("processor_add_fields", "out_events_total"), logs);
    assert_eq!(sum("aggregator_default", "in_events_total"), logs);
    assert_eq!(
        sum("flusher_sls", "in_event_groups_total"),
        store::groups_for(NAME).len() as u64,
        "groups flushed = groups the host received"
    );
    assert_eq!(sum("pipeline", "in_events_total"), logs);
    assert_eq!(sum("pipeline", "discarded_events_total"), SPANS);
    assert!(sum("processor_add_fields", "in_size_bytes") > 0);
    let gone = sums
        .get(&(
            "gone".into(),
            "flusher_sls".into(),
            "in_events_total".into(),
        ))
        .copied();
    assert_eq!(
        gone,
        Some(GONE),
        "the removed config's last counts were pulled"
    );

    // The span alarm, pulled with the config's names and level "2" (error).
    let alarms = alarms.lock().unwrap().clone();
    let span = alarms
        .iter()
        .find(|a| a.kind == "PLUGIN_DATA_DROPPED_ALARM" && a.message.contains("span"))
        .unwrap_or_else(|| panic!("no span alarm in {alarms:?}"));
    assert_eq!(
        (
            span.config.as_str(),
            span.project.as_str(),
            span.logstore.as_str()
        ),
        (NAME, loong::PROJECT, "pull-store")
    );
    assert_eq!(span.level, "2");
    assert!(span.count >= 1);

    // Pulled, so never pushed.
    let pushed: Vec<_> = store::configs_seen()
        .into_iter()
        .filter(|(c, _)| c == "logtail_alarm" || c == "shennong_log_profile")
        .collect();
    assert!(pushed.is_empty(), "pushed to the host: {pushed:?}");

    // The protobuf forms (exported for newer hosts) parse as PipelineEventGroups.
    // SAFETY: the exports' documented use; the buffers are released with FreeSelfMonitorPB.
    unsafe {
        let api = e2e_tests::ffi::api();
        let pb = api.GetGoSelfMonitorMetricsPB.expect("exported")(e2e_tests::ffi::GoString::new(
            "direct",
        ));
        assert!(!pb.data.is_null() && pb.size > 0);
        let bytes = std::slice::from_raw_parts(pb.data.cast::<u8>(), pb.size);
        let g = loong::PipelineEventGroup::decode(bytes).expect("a PipelineEventGroup");
        assert!(!g.metrics.expect("metric events").events.is_empty());
        api.FreeSelfMonitorPB.expect("exported")(pb.data);
        api.FreeSelfMonitorPB.expect("exported")(std::ptr::null_mut());
    }

    loong::stop_all(true);
    loong::stop_all(false);
    loong::stop_builtin_modules();
    // The host pulls once more after StopAllPipelines(0).
    loong::parse_direct(&loong::get_go_metrics("direct")).expect("parses after exit");
    s.close();
}
