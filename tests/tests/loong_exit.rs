//! LoongCollector 3.x: an exit while the host refuses every send loses nothing. A first host
//! process feeds `N` logs to a `/2` config through `ProcessPipelineEventGroup` while refusing
//! every `SendPb`, then exits as the host does (`StopAllPipelines(1)`, `StopAllPipelines(0)`,
//! `StopBuiltInModules`), each step well under the host's 10 s `HOLD_ON_TOO_SLOW` threshold,
//! without a single log accepted. A second process on the same data directory, accepting
//! everything, loads and starts the same config: all `N` logs arrive, under the host's packId
//! as pack-id prefix, with no gap, every pack id the first process tried to send among them,
//! and a pack id never carrying two different sets of logs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e_tests::loong::{self, host_fed_pipeline, LoongSession};
use e2e_tests::store::{self, COUNTERS};
use e2e_tests::util::{child_role, run_test_in_child, wait_stable};
use e2e_tests::{set_send_policy, wait_until, SendPolicy, TempDir};
use serde_json::{json, Value};

const NAME: &str = "loong_exit";
const KEY: i64 = 4242;
/// Logs fed by the first process.
const N: usize = FEEDERS * GROUP;
/// `ProcessPipelineEventGroup` calls (each on its own thread).
const FEEDERS: usize = 30;
/// Logs per call.
const GROUP: usize = 100;
/// Between the starts of two calls: more than an aggregation interval.
const PACE: Duration = Duration::from_millis(30);
const SOURCE: &str = "/var/log/loong-exit.log";
/// The host raises `HOLD_ON_TOO_SLOW_ALARM` when one `StopAllPipelines` takes this long.
const HOLD_ON_TOO_SLOW: Duration = Duration::from_secs(10);
/// How long a step may take before the child gives up on it (the test then fails).
const GIVE_UP: Duration = Duration::from_secs(40);
/// Whole child process.
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

fn name2() -> String {
    format!("{NAME}/2")
}

fn config() -> String {
    host_fed_pipeline(
        vec![json!({"type": "processor_add_fields/3", "detail": {"Fields": {"stage": "go"}}})],
        20,
    )
}

fn content(n: usize) -> String {
    format!("exit-line-{n:05}")
}

/// `f` on a helper thread, bounded by [`GIVE_UP`]; panics when it does not return.
fn bounded(what: &str, f: impl FnOnce() + Send + 'static) -> Duration {
    loong::timed(GIVE_UP, f).unwrap_or_else(|| panic!("{what} did not return within {GIVE_UP:?}"))
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn write_result(root: &Path, role: &str, v: &Value) {
    std::fs::write(root.join(format!("{role}.json")), v.to_string()).expect("write result");
}

fn read_result(root: &Path, role: &str) -> Value {
    let p = root.join(format!("{role}.json"));
    let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&s).expect("result JSON")
}

/// The host's exit sequence, each step timed.
fn exit_sequence() -> (Duration, Duration, Duration) {
    let all1 = bounded("StopAllPipelines(1)", || loong::stop_all(true));
    let all0 = bounded("StopAllPipelines(0)", || loong::stop_all(false));
    let builtin = bounded("StopBuiltInModules", loong::stop_builtin_modules);
    // The host's SelfMonitorServer pulls one last time after StopAllPipelines(0).
    let _ = loong::get_go_metrics("cpp_provided");
    let _ = loong::get_go_metrics("direct");
    let _ = loong::get_go_alarms();
    (all1, all0, builtin)
}

/// Logs the feed of the config kept on disk (its `pipeline` record's `spilled_events_total`).
fn spilled_by_feed() -> u64 {
    let records = loong::parse_direct(&loong::get_go_metrics("direct")).expect("direct records");
    records
        .iter()
        .filter(|r| {
            r.labels.get("pipeline_name").map(String::as_str) == Some(NAME)
                && r.labels.get("plugin_type").map(String::as_str) == Some("pipeline")
        })
        .filter_map(|r| r.counters.get("spilled_events_total"))
        .sum()
}

/// First process: feeds `N` logs while refusing every send, then exits.
fn first(s: &LoongSession) {
    set_send_policy(SendPolicy::reject_all());
    assert_eq!(s.load(&name2(), KEY, &config()), 0, "LoadPipeline");
    loong::start(&name2());
    let pack = loong::host_pack_id(SOURCE);
    // One host processor thread per call (`process_thread_count` = FEEDERS), call `i` made
    // `i * PACE` after the first: each call's logs leave the aggregator as groups of their own,
    // so the refused groups soon fill the pipeline; a call that finds it full waits
    // `ProcessTimeoutMs` and then keeps its logs on disk, and those waits overlap.
    let feed_start = Instant::now();
    let feeders: Vec<_> = (0..FEEDERS)
        .map(|i| {
            let logs: Vec<Vec<(&str, String)>> = (i * GROUP + 1..=(i + 1) * GROUP)
                .map(|n| vec![("content", content(n))])
                .collect();
            let pb = loong::log_group("app", SOURCE, &logs);
            let pack = pack.clone();
            std::thread::spawn(move || {
                let at = feed_start + PACE * i as u32;
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                let t = Instant::now();
                let rc = loong::process_event_group(&name2(), &pb, &pack);
                (rc, t.elapsed())
            })
        })
        .collect();
    let mut calls = Vec::new();
    for (i, f) in feeders.into_iter().enumerate() {
        let (rc, took) = f.join().expect("feeder");
        assert_eq!(rc, 0, "ProcessPipelineEventGroup #{i}");
        calls.push(took);
    }
    let feed = feed_start.elapsed();
    // Let the aggregator hand some groups to the host, which refuses them.
    assert!(
        wait_until(Duration::from_secs(10), || store::get(&COUNTERS.rejected)
            > 0),
        "the base never tried to send: {}",
        store::counters_summary()
    );
    let spilled = spilled_by_feed();
    let (all1, all0, builtin) = exit_sequence();
    let rejected_packs: BTreeMap<String, u64> =
        store::with(|st| st.rejected_pack_ids.clone().into_iter().collect());
    calls.sort();
    write_result(
        s.root(),
        "first",
        &json!({
            "pack": pack,
            "feed_ms": ms(feed),
            "call_median_ms": ms(calls[calls.len() / 2]),
            "call_max_ms": ms(calls[calls.len() - 1]),
            "stop_all_1_ms": ms(all1),
            "stop_all_0_ms": ms(all0),
            "stop_builtin_ms": ms(builtin),
            "accepted": store::get(&COUNTERS.accepted),
            "accepted_logs": store::get(&COUNTERS.accepted_logs),
            "rejected": store::get(&COUNTERS.rejected),
            "rejected_packs": rejected_packs,
            "spilled": spilled,
            "counters": store::counters_summary(),
        }),
    );
}

/// Second process: accepts everything, loads and starts the same config, collects.
fn second(s: &LoongSession) {
    set_send_policy(SendPolicy::accept());
    let t = Instant::now();
    assert_eq!(s.load(&name2(), KEY, &config()), 0, "LoadPipeline");
    loong::start(&name2());
    let distinct = || {
        store::logs_for(NAME)
            .iter()
            .filter_map(|(l, _)| l.get("content").map(str::to_owned))
            .collect::<BTreeSet<_>>()
            .len()
    };
    let complete = wait_until(Duration::from_secs(30), || distinct() >= N);
    let all_in = t.elapsed();
    // Whatever else is coming (duplicates) arrives too.
    wait_stable(Duration::from_millis(500), Duration::from_secs(5), || {
        store::log_count(NAME)
    });
    let (all1, all0, builtin) = exit_sequence();
    let groups: Vec<Value> = store::groups_for(NAME)
        .iter()
        .map(|g| {
            json!({
                "config": g.config,
                "pack": g.pack_id,
                "last": g.pack_id_is_last,
                "contents": g.logs.iter().map(|l| l.get("content").unwrap_or("")).collect::<Vec<_>>(),
                "stage": g.logs.iter().all(|l| l.get("stage") == Some("go")),
            })
        })
        .collect();
    write_result(
        s.root(),
        "second",
        &json!({
            "complete": complete,
            "all_in_ms": ms(all_in),
            "stop_all_1_ms": ms(all1),
            "stop_all_0_ms": ms(all0),
            "stop_builtin_ms": ms(builtin),
            "groups": groups,
            "configs": store::configs_seen(),
            "counters": store::counters_summary(),
        }),
    );
}

/// The two host processes of the scenario (see `an_exit_with_a_refusing_host_loses_nothing`).
#[test]
fn loong_exit_child() {
    let Some(role) = child_role() else { return };
    let root = PathBuf::from(std::env::var("E2E_ROOT").expect("E2E_ROOT"));
    let s = LoongSession::start_in(&root);
    // As the host's SelfMonitorServer (every 3 s): from the first pull on, alarms are pulled.
    let _ = loong::get_go_alarms();
    match role.as_str() {
        "first" => first(&s),
        "second" => second(&s),
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

#[test]
fn an_exit_with_a_refusing_host_loses_nothing() {
    let dir = TempDir::new("loong-exit");
    let root = dir.path().display().to_string();
    let env = [("E2E_ROOT", root.as_str())];

    let run1 = run_test_in_child("loong_exit_child", "first", &env, CHILD_TIMEOUT);
    assert_eq!(run1.code(), Some(0), "first process: {}", run1.all_output());
    let r1 = read_result(dir.path(), "first");
    let pack = loong::host_pack_id(SOURCE);
    assert_eq!(r1["pack"], pack);
    assert_eq!(
        (r1["accepted"].as_u64(), r1["accepted_logs"].as_u64()),
        (Some(0), Some(0)),
        "the first host accepted something: {}",
        r1["counters"]
    );
    assert!(r1["rejected"].as_u64() > Some(0), "{}", r1["counters"]);
    // The refused groups filled the pipeline, so some calls' logs went to the backlog on disk
    // (the scenario covers the three places data waits at exit: backlog, stages, outbox).
    assert!(
        r1["spilled"].as_u64() > Some(0),
        "the feed kept nothing on disk: {}",
        r1["counters"]
    );
    for step in ["stop_all_1_ms", "stop_all_0_ms", "stop_builtin_ms"] {
        let took = Duration::from_millis(r1[step].as_u64().expect(step));
        assert!(
            took < HOLD_ON_TOO_SLOW,
            "first process: {step} = {took:?} (the host alarms at {HOLD_ON_TOO_SLOW:?})"
        );
    }

    let run2 = run_test_in_child("loong_exit_child", "second", &env, CHILD_TIMEOUT);
    assert_eq!(
        run2.code(),
        Some(0),
        "second process: {}",
        run2.all_output()
    );
    let r2 = read_result(dir.path(), "second");
    for step in ["stop_all_1_ms", "stop_all_0_ms", "stop_builtin_ms"] {
        let took = Duration::from_millis(r2[step].as_u64().expect(step));
        assert!(took < HOLD_ON_TOO_SLOW, "second process: {step} = {took:?}");
    }

    // What the second process received.
    let groups = r2["groups"].as_array().expect("groups");
    let mut by_pack: BTreeMap<String, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut contents: BTreeMap<String, usize> = BTreeMap::new();
    let mut seqs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for g in groups {
        assert_eq!(g["config"], NAME, "SendPb gets the real name");
        assert_eq!(g["last"], true, "__pack_id__ is the last tag: {g}");
        assert_eq!(
            g["stage"], true,
            "processor_add_fields ran on every log: {g}"
        );
        let id = g["pack"]
            .as_str()
            .unwrap_or_else(|| panic!("group without a pack id: {g}"));
        let (prefix, seq) = id
            .rsplit_once('-')
            .unwrap_or_else(|| panic!("pack id {id}"));
        assert_eq!(prefix, pack, "the host's packId is the prefix of {id}");
        let seq = u64::from_str_radix(seq, 16).unwrap_or_else(|_| panic!("pack id {id}"));
        seqs.entry(prefix.to_string()).or_default().push(seq);
        let logs: Vec<String> = g["contents"]
            .as_array()
            .expect("contents")
            .iter()
            .map(|c| c.as_str().unwrap_or("").to_string())
            .collect();
        for c in &logs {
            *contents.entry(c.clone()).or_default() += 1;
        }
        by_pack.entry(id.to_string()).or_default().insert(logs);
    }
    let expected: BTreeSet<String> = (1..=N).map(content).collect();
    let got: BTreeSet<String> = contents.keys().cloned().collect();
    let missing: Vec<_> = expected.difference(&got).take(10).collect();
    let unknown: Vec<_> = got.difference(&expected).take(10).collect();
    let delivered: usize = contents.values().sum();
    let tried: BTreeSet<String> = r1["rejected_packs"]
        .as_object()
        .expect("rejected_packs")
        .keys()
        .cloned()
        .collect();
    eprintln!(
        "loong_exit: first process fed {N} logs in {}ms ({FEEDERS} parallel calls of {GROUP}: \
         median {}ms, max {}ms; {} logs kept on disk by the feed), {} sends refused ({} distinct \
         pack ids); StopAllPipelines(1) {}ms, (0) {}ms, StopBuiltInModules {}ms",
        r1["feed_ms"],
        r1["call_median_ms"],
        r1["call_max_ms"],
        r1["spilled"],
        r1["rejected"],
        tried.len(),
        r1["stop_all_1_ms"],
        r1["stop_all_0_ms"],
        r1["stop_builtin_ms"],
    );
    eprintln!(
        "loong_exit: second process: {} groups, {delivered} logs ({} distinct, {} duplicates), \
         all in after {}ms; StopAllPipelines(1) {}ms, (0) {}ms, StopBuiltInModules {}ms",
        groups.len(),
        got.len(),
        delivered - got.len(),
        r2["all_in_ms"],
        r2["stop_all_1_ms"],
        r2["stop_all_0_ms"],
        r2["stop_builtin_ms"],
    );

    assert!(
        missing.is_empty() && unknown.is_empty(),
        "second process: {} of {N} logs arrived (first missing {missing:?}, unknown {unknown:?}); \
         complete={}; {}",
        got.len(),
        r2["complete"],
        r2["counters"]
    );
    // A pack id seen twice carries the same logs both times.
    let reused: Vec<_> = by_pack
        .iter()
        .filter(|(_, sets)| sets.len() > 1)
        .map(|(id, sets)| {
            let sets: Vec<String> = sets
                .iter()
                .map(|logs| {
                    format!(
                        "{} logs {}..{}",
                        logs.len(),
                        logs.first().map_or("", String::as_str),
                        logs.last().map_or("", String::as_str)
                    )
                })
                .collect();
            (id, sets)
        })
        .take(10)
        .collect();
    assert!(
        reused.is_empty(),
        "pack ids carrying different logs: {reused:?}"
    );
    // No pack id is missing between the smallest and the largest.
    let mut gaps = Vec::new();
    for (prefix, v) in &mut seqs {
        v.sort_unstable();
        v.dedup();
        let (lo, hi) = (v[0], v[v.len() - 1]);
        if hi - lo + 1 != v.len() as u64 {
            gaps.push((prefix.clone(), lo, hi, v.len()));
        }
    }
    assert!(
        gaps.is_empty(),
        "pack-id gaps (prefix, min, max, distinct): {gaps:?}"
    );
    // Every pack id the first process tried to send arrived: they are the original ones.
    let lost: Vec<_> = tried
        .iter()
        .filter(|p| !by_pack.contains_key(*p))
        .take(10)
        .collect();
    assert!(
        lost.is_empty(),
        "pack ids refused by the first process that never arrived: {lost:?} (of {} tried)",
        tried.len()
    );
}
