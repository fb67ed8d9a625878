//! Routing with `Match`: one config sends errors to the host (`flusher_sls`) and everything
//! else to a file (`flusher_stdout`); another splits events between two aggregators. Every
//! log must arrive exactly once on the side its condition selects, no empty group may be
//! sent, and the host must see gap-free pack ids although whole groups went elsewhere.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use e2e_tests::proto::{log, now_secs, LogGroup, LogTag};
use e2e_tests::store::{self, COUNTERS};
use e2e_tests::util::wait_stable;
use e2e_tests::{analyze_pack_ids, base, wait_until, Session};
use prost::Message;
use serde_json::{json, Value};

const FLUSHERS: &str = "routing_flushers";
const AGGREGATORS: &str = "routing_aggregators";

/// Levels of the logs fed to each config, in order: runs of errors, runs of infos, mixed
/// runs and logs without a level, so that aggregated groups (10 logs each) are all-error,
/// all-other and mixed.
fn levels() -> Vec<Option<&'static str>> {
    let mut v = Vec::new();
    v.extend(std::iter::repeat_n(Some("error"), 30));
    v.extend(std::iter::repeat_n(Some("info"), 40));
    for i in 0..60 {
        v.push(Some(if i % 3 == 0 { "error" } else { "info" }));
    }
    v.extend(std::iter::repeat_n(None, 10));
    v.extend(std::iter::repeat_n(Some("warn"), 20));
    v.extend(std::iter::repeat_n(Some("error"), 20));
    v
}

/// Feeds `levels()` to `name` as several `ProcessLogGroup` calls; returns (errors, others).
fn feed(name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut errors, mut others) = (BTreeSet::new(), BTreeSet::new());
    let t = now_secs();
    let all = levels();
    for (chunk_no, chunk) in all.chunks(25).enumerate() {
        let logs = chunk
            .iter()
            .enumerate()
            .map(|(i, level)| {
                let seq = (chunk_no * 25 + i).to_string();
                match level {
                    Some("error") => errors.insert(seq.clone()),
                    _ => others.insert(seq.clone()),
                };
                match level {
                    Some(l) => log(t, &[("level", l), ("seq", &seq)]),
                    None => log(t, &[("seq", &seq)]),
                }
            })
            .collect();
        let group = LogGroup {
            logs,
            topic: Some("app".into()),
            log_tags: vec![LogTag {
                key: "origin".into(),
                value: "routing".into(),
            }],
            ..Default::default()
        };
        let rc = base::process_log_group(
            name,
            &group.encode_to_vec(),
            &format!("ABCDEF0123456789-{:x}", chunk_no + 1),
        );
        assert_eq!(rc, 0, "ProcessLogGroup #{chunk_no} to {name}");
    }
    (errors, others)
}

/// Complete JSON lines of the `flusher_stdout` file (a trailing partial line is ignored).
fn file_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

#[test]
fn match_routes_events_to_flushers_and_aggregators() {
    let s = Session::start("routing");

    // Config errors name the plugin and the field `Match`.
    let bad = json!({"processors": [{"type": "processor_drop", "detail": {"DropKeys": ["a"]}, "Match": "TRUE"}],
                     "flushers": [{"type": "flusher_sls", "Match": "Fields[level] = 'error'"}]})
    .to_string();
    let text = base::check_config("routing_bad", &bad).expect("the config must be rejected");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("processors[0] (processor_drop)")
            && lines[0].contains("field \"Match\"")
            && lines[0].contains("only allowed on aggregators and flushers"),
        "{text}"
    );
    assert!(
        lines[1].contains("flushers[0] (flusher_sls)")
            && lines[1].contains("field \"Match\"")
            && lines[1].contains("at column 15"),
        "{text}"
    );
    assert_ne!(s.load("routing_bad", &bad), 0, "LoadConfig must reject it");

    let out = s.dir().path().join("others.jsonl");
    let flushers = json!({
        "global": {"AggregatIntervalMs": 200},
        "aggregators": [{"type": "aggregator_default", "detail": {"MaxLogCount": 10}}],
        "flushers": [
            {"type": "flusher_sls", "Match": "Fields[level] == 'error'"},
            {"type": "flusher_stdout", "detail": {"FileName": out.to_str().unwrap()},
             "Match": "Fields[level] != 'error'"}
        ]
    })
    .to_string();
    let aggregators = json!({
        "global": {"AggregatIntervalMs": 200},
        "aggregators": [
            {"type": "aggregator_default", "detail": {"MaxLogCount": 10, "Topic": "errors"},
             "Match": "Fields[level] =~ /^err/ && Tags[origin] == 'routing'"},
            {"type": "aggregator_default", "detail": {"MaxLogCount": 10, "Topic": "rest"},
             "Match": "!(Fields[level] =~ /^err/) && Topic == 'app'"}
        ],
        "flushers": [{"type": "flusher_sls"}]
    })
    .to_string();
    assert_eq!(s.load(FLUSHERS, &flushers), 0, "LoadConfig({FLUSHERS})");
    assert_eq!(
        s.load(AGGREGATORS, &aggregators),
        0,
        "LoadConfig({AGGREGATORS})"
    );
    base::resume();

    let (errors, others) = feed(FLUSHERS);
    let (errors2, others2) = feed(AGGREGATORS);
    assert_eq!((errors.len(), others.len()), (70, 110));
    let total = errors.len() + others.len();

    let done = wait_until(Duration::from_secs(60), || {
        store::log_count(FLUSHERS) >= errors.len()
            && file_lines(&out).len() >= others.len()
            && store::log_count(AGGREGATORS) >= total
    });
    let settled = wait_stable(Duration::from_secs(1), Duration::from_secs(10), || {
        (
            store::log_count(FLUSHERS),
            file_lines(&out).len(),
            store::log_count(AGGREGATORS),
        )
    });
    assert!(
        done,
        "timed out: host {}/{}, file {}/{}, aggregators {}/{total}; {}",
        settled.0,
        errors.len(),
        settled.1,
        others.len(),
        settled.2,
        store::counters_summary()
    );

    // Flusher routing: errors reached the host, everything else the file, each exactly once.
    let groups = store::groups_for(FLUSHERS);
    let mut seen = Vec::new();
    for g in &groups {
        assert!(!g.logs.is_empty(), "an empty group was sent: {:?}", g.group);
        assert_eq!(g.group.topic.as_deref(), Some("app"));
        assert_eq!(g.tag("origin"), Some("routing"));
        for l in &g.logs {
            assert_eq!(l.get("level"), Some("error"), "routed to the host: {l:?}");
            seen.push(l.get("seq").unwrap_or_default().to_owned());
        }
    }
    assert_eq!(seen.len(), errors.len(), "duplicates on the host side");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), errors);
    let p = analyze_pack_ids(groups.iter());
    assert!(p.is_clean(), "{FLUSHERS}: {p}");

    let lines = file_lines(&out);
    let mut seen = Vec::new();
    for l in &lines {
        assert_ne!(l["level"], "error", "routed to the file: {l}");
        seen.push(l["seq"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(seen.len(), others.len(), "duplicates on the file side");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), others);

    // Aggregator routing: each aggregator got only its events (recognisable by its Topic).
    let groups = store::groups_for(AGGREGATORS);
    let (mut e, mut o) = (BTreeSet::new(), BTreeSet::new());
    let mut n = 0;
    for g in &groups {
        assert!(!g.logs.is_empty(), "an empty group was sent: {:?}", g.group);
        for l in &g.logs {
            n += 1;
            let seq = l.get("seq").unwrap_or_default().to_owned();
            match g.group.topic.as_deref() {
                Some("errors") => {
                    assert_eq!(l.get("level"), Some("error"), "{l:?}");
                    e.insert(seq);
                }
                Some("rest") => {
                    assert_ne!(l.get("level"), Some("error"), "{l:?}");
                    o.insert(seq);
                }
                t => panic!("unexpected topic {t:?}"),
            }
        }
    }
    assert_eq!(n, total, "duplicates in {AGGREGATORS}");
    assert_eq!((e, o), (errors2, others2));
    let p = analyze_pack_ids(groups.iter());
    assert!(p.is_clean(), "{AGGREGATORS}: {p}");

    assert_eq!(store::get(&COUNTERS.decode_errors), 0);
    let took = s.exit(Duration::from_secs(30));
    eprintln!("HoldOn(1) took {took:?}; {}", store::counters_summary());
}
