//! Buffered flushers (`base/engine/src/buffer/`) across reloads and config churn, in-process
//! through the real libraries:
//!
//! - `flusher_sls` with a disk buffer (`Type: file`, default `Path` under the data
//!   directory): the `reload_cycles.rs` scenario (HoldOn(0) → LoadConfig(same name, new `gen`)
//!   → Resume, while the host rejects a fifth of the sends), then the host accepts and
//!   HoldOn(1). A disk buffer does not flush its staged chunks at exit (`FlushAtShutdown`
//!   defaults to false for `Type: file`, as in Fluentd): what is staged stays in its chunk
//!   files for the next start. So a second process on the same data directory loads the config
//!   again (no input) and the host receives the rest. Over both runs every generation's
//!   `Index` values arrive as exactly `1..=K`, as many as `service_mock` produced; a log
//!   arrives twice only under one pack id (a chunk partly accepted and then re-sent from its
//!   file keeps its groups' pack ids); no chunk file is left.
//! - `flusher_file` with a memory buffer: the same cycles (the rejecting host sees only the
//!   statistics and alarms here); after HoldOn(1) (a memory buffer flushes at exit) the output
//!   file holds every (gen, Index) exactly once, as many as `service_mock` produced, and the
//!   buffer's counters agree.
//! - Config churn: 300 rounds each removing the previous round's 10 configs (HoldOn(0),
//!   `LoadConfig` with an empty JSON, as a 2.x host removes a config) and loading 10 new ones
//!   (`service_mock` of 5 logs, `flusher_file` with a memory buffer, every other config a file
//!   buffer, `FlushIntervalMs` 1000 so that their logs are still buffered at the removal).
//!   VmRSS is sampled every round after a 30-round warm-up (least-squares slope) and at two
//!   quiet points with nothing loaded; OS threads and open descriptors come back to the first
//!   quiet point's, no flush thread runs and no chunk file is left once the removed configs'
//!   buffers delivered, and every removed config's 5 logs are in its output file. Then 100
//!   control rounds, the same churn with unbuffered flushers (`Mode: none`), for comparison.
//! - Reloads of the same names: 500 HoldOn(0) → LoadConfig × 10 → Resume cycles of configs
//!   with buffered `flusher_file`s (memory and file buffers); VmRSS does not grow.
//!
//! `InitPluginBase` runs once per process and `HoldOn(1)` is final, so each scenario runs in a
//! child process of its own (`run_test_in_child`); the test the harness runs starts it and
//! checks its result.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use e2e_tests::util::files_under;
use std::time::{Duration, Instant};

use e2e_tests::analysis::{incomplete_generations, parse_pack_id};
use e2e_tests::session::hold_on_bounded;
use e2e_tests::store::{self, COUNTERS};
use e2e_tests::util::{child_role, run_test_in_child, RunOutput};
use e2e_tests::{base, service_mock, set_send_policy, vm_rss_kib, wait_until};
use e2e_tests::{SendPolicy, Session, TempDir};
use serde_json::{json, Value};

/// Reload cycles of the two reload scenarios.
const CYCLES: u64 = 50;
const RATE: u64 = 2000;
const AGGREGATE_MS: u64 = 20;
const REJECT_P: f64 = 0.2;
/// Bound on one HoldOn(0) of a cycle (it parks, it must not wait for the host).
const HOLD_ON_0_LIMIT: Duration = Duration::from_secs(5);
/// `HoldOnTimeoutMs` of the reload scenarios (the final drain).
const DRAIN_TIMEOUT_MS: u64 = 30_000;
/// Bound on a child process.
const CHILD_TIMEOUT: Duration = Duration::from_secs(240);

const SLS_NAME: &str = "buffered_reload_sls";
const FILE_NAME: &str = "buffered_reload_file";

/// How long generation `gen` runs before the next HoldOn(0): 50..=100 ms.
fn run_time(gen: u64) -> Duration {
    Duration::from_millis(50 + (gen * 37) % 51)
}

// ---------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------

/// Runs test `test` of this binary in a child with role `role` and `env`; asserts it
/// passed and shows its output (visible with `--nocapture`).
fn child(test: &str, role: &str, env: &[(&str, &str)]) -> RunOutput {
    let out = run_test_in_child(test, role, env, CHILD_TIMEOUT);
    eprintln!(
        "--- child {role} ({:?}) ---\n{}",
        out.elapsed,
        child_lines(&out)
    );
    assert_eq!(
        out.code(),
        Some(0),
        "child {role} of {test} failed (exit {:?})\n{}",
        out.status,
        out.all_output()
    );
    out
}

/// The lines a child printed itself (not libtest's).
fn child_lines(out: &RunOutput) -> String {
    out.stdout
        .lines()
        .chain(out.stderr.lines())
        .filter(|l| l.starts_with("buffered_reload:") || l.contains("panicked"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn root_from_env() -> PathBuf {
    PathBuf::from(std::env::var("E2E_ROOT").expect("E2E_ROOT names the session root"))
}

// ---------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------

/// The last statistics the host received for `config` and a plugin named by `plugin`
/// (statistics are cumulative).
fn last_stats(config: &str, plugin: impl Fn(&str) -> bool) -> Option<BTreeMap<String, u64>> {
    store::groups_for("shennong_log_profile")
        .iter()
        .flat_map(|g| g.logs.iter())
        .rev()
        .find(|l| l.get("config") == Some(config) && l.get("plugin").is_some_and(&plugin))
        .map(|l| {
            l.contents
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.parse().ok()?)))
                .collect()
        })
}

fn stat(s: &Option<BTreeMap<String, u64>>, key: &str) -> Option<u64> {
    s.as_ref().and_then(|s| s.get(key).copied())
}

/// `events_out` of the `service_mock` of `config` over every generation.
fn produced_by_service_mock(config: &str) -> Option<u64> {
    stat(
        &last_stats(config, |p| p.starts_with("service_mock")),
        "events_out",
    )
}

/// The chunk files under `dir`.
fn chunk_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "chunk"))
        .collect()
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The records in the complete frames of a chunk file (layout of
/// `base/engine/src/buffer/disk.rs`: `PBCHUNK1`, u32 key length, key, u32 CRC; frames of u32
/// length, u32 records, u32 CRC, data). Frames are counted by their heads, not checked.
fn chunk_records(path: &Path) -> u64 {
    let Ok(raw) = std::fs::read(path) else {
        return 0;
    };
    if raw.get(..8) != Some(b"PBCHUNK1".as_slice()) {
        return 0;
    }
    let Some(n) = u32_at(&raw, 8) else { return 0 };
    let mut pos = 16 + n as usize;
    let mut records = 0;
    while let (Some(len), Some(r)) = (u32_at(&raw, pos), u32_at(&raw, pos + 4)) {
        if raw.len() < pos + 12 + len as usize {
            break;
        }
        records += u64::from(r);
        pos += 12 + len as usize;
    }
    records
}

/// Where the engine keeps the file buffers of a session on `root` without `Path`:
/// `<checkpoint store>.buffers/<config>/<flusher>` (`buffer::build`).
fn buffers_dir(root: &Path) -> PathBuf {
    root.join("checkpoint").join("go_plugin_checkpoint.buffers")
}

/// One received log: (gen, Index, pack id of its group).
type Got = (u64, u64, Option<String>);

/// What the host received for `config`, as (gen, Index, pack id).
fn received(config: &str) -> Vec<Got> {
    store::logs_for(config)
        .iter()
        .map(|(l, pack)| {
            let gen = l
                .get("gen")
                .and_then(|g| g.parse().ok())
                .unwrap_or_else(|| panic!("log without a numeric gen: {l:?}"));
            let i = l
                .index()
                .unwrap_or_else(|| panic!("log without Index: {l:?}"));
            (gen, i, pack.clone())
        })
        .collect()
}

/// The reload cycles of `name`: gen 0 loaded and resumed, then `CYCLES` times run,
/// HoldOn(0), load the next gen, Resume; then the last gen runs, the host accepts again and
/// HoldOn(1). Returns the median and longest HoldOn(0), the final HoldOn(1)'s time and the
/// sends rejected during the cycles.
fn reload_cycles(s: &Session, name: &str, config: impl Fn(u64) -> String) -> CycleFacts {
    set_send_policy(SendPolicy::reject_with_probability(REJECT_P));
    assert_eq!(s.load(name, &config(0)), 0, "LoadConfig(gen 0)");
    base::resume();
    let start = Instant::now();
    let mut holds = Vec::with_capacity(CYCLES as usize);
    for gen in 1..=CYCLES {
        std::thread::sleep(run_time(gen - 1));
        let took = hold_on_bounded(0, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("HoldOn(0) of cycle {gen} did not return within 60 s"));
        holds.push(took);
        assert_eq!(s.load(name, &config(gen)), 0, "LoadConfig(gen {gen})");
        base::resume();
    }
    std::thread::sleep(run_time(CYCLES));
    let cycles_took = start.elapsed();
    let rejected = store::get(&COUNTERS.rejected);
    set_send_policy(SendPolicy::accept());
    let drain = hold_on_bounded(1, Duration::from_millis(DRAIN_TIMEOUT_MS + 30_000))
        .expect("HoldOn(1) did not return in time");
    holds.sort();
    let f = CycleFacts {
        median_hold: holds[holds.len() / 2],
        max_hold: *holds.last().expect("cycles ran"),
        drain,
        rejected,
    };
    eprintln!(
        "buffered_reload: {name}: {CYCLES} cycles in {cycles_took:?}; HoldOn(0) median {:?} \
         max {:?}; final HoldOn(1) {drain:?}; {rejected} sends rejected during the cycles",
        f.median_hold, f.max_hold
    );
    f
}

struct CycleFacts {
    median_hold: Duration,
    max_hold: Duration,
    drain: Duration,
    rejected: u64,
}

/// Checks (gen, Index) pairs of generations `0..=last`: each generation exactly `1..=K`,
/// `distinct` as many as `produced`; returns (delivered, distinct, duplicates).
fn check_generations(
    what: &str,
    keys: impl IntoIterator<Item = (u64, u64)>,
    last: u64,
    produced: Option<u64>,
) -> (usize, usize, usize) {
    let mut copies: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    for k in keys {
        *copies.entry(k).or_default() += 1;
    }
    let delivered: usize = copies.values().sum();
    let distinct = copies.len();
    let mut per_gen: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for (gen, i) in copies.keys() {
        per_gen.entry(*gen).or_default().insert(*i);
    }
    let missing_gens: Vec<u64> = (0..=last).filter(|g| !per_gen.contains_key(g)).collect();
    assert!(
        missing_gens.is_empty(),
        "{what}: generations with no log at all: {missing_gens:?}"
    );
    let extra: Vec<u64> = per_gen.keys().copied().filter(|g| *g > last).collect();
    assert!(extra.is_empty(), "{what}: unknown generations {extra:?}");
    let gaps = incomplete_generations(&per_gen);
    assert!(
        gaps.is_empty(),
        "{what}: generations whose Index values are not exactly 1..=K \
         (gen, K, distinct, first missing): {:?}",
        gaps.iter().take(10).collect::<Vec<_>>()
    );
    assert_eq!(
        produced,
        Some(distinct as u64),
        "{what}: distinct (gen, Index) delivered vs produced by service_mock (last statistics)"
    );
    (delivered, distinct, delivered - distinct)
}

/// The pack ids' sequences per prefix: (groups, sequence numbers missing, malformed ids).
fn pack_id_gaps(packs: impl IntoIterator<Item = String>) -> (usize, u64, Vec<String>) {
    let mut seqs: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut malformed = Vec::new();
    for p in packs {
        match parse_pack_id(&p) {
            Some((prefix, seq)) => {
                seqs.entry(prefix.to_owned()).or_default().insert(seq);
            }
            None => malformed.push(p),
        }
    }
    let groups = seqs.values().map(BTreeSet::len).sum();
    let gaps = seqs
        .values()
        .map(|s| {
            let (lo, hi) = (*s.first().unwrap_or(&0), *s.last().unwrap_or(&0));
            hi - lo + 1 - s.len() as u64
        })
        .sum();
    (groups, gaps, malformed)
}

// ---------------------------------------------------------------------------------------
// 1. flusher_sls with a disk buffer
// ---------------------------------------------------------------------------------------

const SLS_TEST: &str = "reloads_with_a_disk_buffered_flusher_sls_lose_nothing";

fn sls_buffer() -> Value {
    json!({"Type": "file", "FlushIntervalMs": 50, "SyncIntervalMs": 20})
}

/// The config of generation `gen` (`None`: no input, for the restart).
fn sls_config(gen: Option<u64>) -> String {
    let mut v = json!({
        "global": {"AggregatIntervalMs": AGGREGATE_MS},
        "flushers": [{"type": "flusher_sls", "detail": {"Buffer": sls_buffer()}}],
    });
    if let Some(gen) = gen {
        v["inputs"] = json!([service_mock(RATE, 0, json!({"gen": gen.to_string()}))]);
    }
    v.to_string()
}

/// Run 1: the cycles, then HoldOn(1); writes what it saw to `<root>/cycles.json`.
fn sls_cycles() {
    let root = root_from_env();
    let s = Session::start_in(&root);
    assert_eq!(
        base::load_global_config(&json!({ "HoldOnTimeoutMs": DRAIN_TIMEOUT_MS }).to_string()),
        0
    );
    let f = reload_cycles(&s, SLS_NAME, |gen| sls_config(Some(gen)));
    let got = received(SLS_NAME);
    let produced = produced_by_service_mock(SLS_NAME);
    let buffer = last_stats(SLS_NAME, |p| {
        p.starts_with("flusher_sls") && p.ends_with("/buffer")
    });
    let chunks = chunk_files(&buffers_dir(&root));
    let left: u64 = chunks.iter().map(|p| chunk_records(p)).sum();
    eprintln!(
        "buffered_reload: run 1: {} logs received, service_mock produced {produced:?}; buffer \
         counters {buffer:?}; {} chunk files holding {left} records left after HoldOn(1); {}",
        got.len(),
        chunks.len(),
        store::counters_summary()
    );
    assert_eq!(store::get(&COUNTERS.decode_errors), 0);
    assert_eq!(store::get(&COUNTERS.lines_mismatch), 0);
    let facts = json!({
        "logs": got,
        "produced": produced,
        "rejected": f.rejected,
        "median_hold_ms": f.median_hold.as_secs_f64() * 1000.0,
        "max_hold_ms": f.max_hold.as_secs_f64() * 1000.0,
        "drain_ms": f.drain.as_secs_f64() * 1000.0,
        "chunks_left": chunks.len(),
        "records_left": left,
        "buffer": buffer,
    });
    std::fs::write(root.join("cycles.json"), facts.to_string()).expect("write cycles.json");
    drop(s);
}

/// Run 2: the same config name and flusher, no input: the disk buffer re-sends the chunks
/// run 1 left (and the engine the groups its exit spilled); writes `<root>/restart.json`.
fn sls_restart() {
    let root = root_from_env();
    let s = Session::start_in(&root);
    assert_eq!(
        base::load_global_config(&json!({ "HoldOnTimeoutMs": DRAIN_TIMEOUT_MS }).to_string()),
        0
    );
    assert_eq!(
        s.load(SLS_NAME, &sls_config(None)),
        0,
        "LoadConfig(restart)"
    );
    base::resume();
    let dir = buffers_dir(&root);
    let start = Instant::now();
    // Until no chunk file is left and the host has received nothing new for 1.5 s.
    let (mut last, mut since) = (usize::MAX, Instant::now());
    let settled = wait_until(Duration::from_secs(60), || {
        let n = store::log_count(SLS_NAME);
        if n != last {
            (last, since) = (n, Instant::now());
        }
        chunk_files(&dir).is_empty() && since.elapsed() >= Duration::from_millis(1500)
    });
    let took = start.elapsed();
    let drain = hold_on_bounded(1, Duration::from_millis(DRAIN_TIMEOUT_MS + 30_000))
        .expect("HoldOn(1) of run 2 did not return in time");
    let got = received(SLS_NAME);
    let left = chunk_files(&dir);
    let buffer = last_stats(SLS_NAME, |p| {
        p.starts_with("flusher_sls") && p.ends_with("/buffer")
    });
    eprintln!(
        "buffered_reload: run 2: {} logs received within {took:?} (settled: {settled}); \
         HoldOn(1) {drain:?}; buffer counters {buffer:?}; chunk files left {left:?}",
        got.len()
    );
    let facts = json!({
        "logs": got,
        "chunks_left": left,
        "settled": settled,
        "buffer": buffer,
    });
    std::fs::write(root.join("restart.json"), facts.to_string()).expect("write restart.json");
    drop(s);
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn logs_of(v: &Value) -> Vec<Got> {
    serde_json::from_value(v["logs"].clone()).expect("logs as [gen, Index, pack id]")
}

#[test]
fn reloads_with_a_disk_buffered_flusher_sls_lose_nothing() {
    match child_role().as_deref() {
        Some("sls-cycles") => return sls_cycles(),
        Some("sls-restart") => return sls_restart(),
        Some(_) => return,
        None => {}
    }
    let root = TempDir::new("buffered-reload-sls");
    let r = root.path().display().to_string();
    child(SLS_TEST, "sls-cycles", &[("E2E_ROOT", &r)]);
    let run1 = read_json(&root.path().join("cycles.json"));
    child(SLS_TEST, "sls-restart", &[("E2E_ROOT", &r)]);
    let run2 = read_json(&root.path().join("restart.json"));

    let (logs1, logs2) = (logs_of(&run1), logs_of(&run2));
    let context = format!(
        "run 1: {} logs, produced {}, rejected {}, {} chunk files with {} records left, buffer \
         {}; run 2: {} logs, settled {}, chunk files left {}, buffer {}",
        logs1.len(),
        run1["produced"],
        run1["rejected"],
        run1["chunks_left"],
        run1["records_left"],
        run1["buffer"],
        logs2.len(),
        run2["settled"],
        run2["chunks_left"],
        run2["buffer"],
    );
    let produced = run1["produced"].as_u64();
    let all: Vec<&Got> = logs1.iter().chain(logs2.iter()).collect();
    let (delivered, distinct, duplicated) = check_generations(
        &format!("flusher_sls, disk buffer, runs 1 + 2 ({context})"),
        all.iter().map(|(g, i, _)| (*g, *i)),
        CYCLES,
        produced,
    );
    // A log arrives twice only under one pack id (a re-send of the same group).
    let mut packs: BTreeMap<(u64, u64), BTreeSet<Option<String>>> = BTreeMap::new();
    for (g, i, p) in &all {
        packs.entry((*g, *i)).or_default().insert(p.clone());
    }
    let bad: Vec<_> = packs.iter().filter(|(_, p)| p.len() > 1).take(10).collect();
    assert!(
        bad.is_empty(),
        "logs delivered under different pack ids: {bad:?}; {context}"
    );
    let without = all.iter().filter(|(_, _, p)| p.is_none()).count();
    assert_eq!(without, 0, "logs without a pack id; {context}");
    let (groups, gaps, malformed) = pack_id_gaps(all.iter().filter_map(|(_, _, p)| p.clone()));
    assert!(
        malformed.is_empty(),
        "malformed pack ids {:?}",
        &malformed[..malformed.len().min(5)]
    );
    assert_eq!(gaps, 0, "pack-id gaps over {groups} groups; {context}");
    assert!(
        run1["rejected"].as_u64().unwrap_or(0) > 0,
        "the host never rejected anything"
    );
    let max_hold = Duration::from_secs_f64(run1["max_hold_ms"].as_f64().unwrap_or(0.0) / 1e3);
    assert!(
        max_hold < HOLD_ON_0_LIMIT,
        "a HoldOn(0) took {max_hold:?} (limit {HOLD_ON_0_LIMIT:?})"
    );
    assert_eq!(run2["settled"], true, "run 2 did not settle; {context}");
    // The buffer's counters: everything produced entered it in run 1, nothing was dropped,
    // and the two runs' deliveries add up to it (a chunk counts once it is committed).
    let counter = |run: &Value, k: &str| run["buffer"][k].as_u64();
    assert_eq!(
        (
            counter(&run1, "events_in"),
            counter(&run1, "dropped"),
            counter(&run2, "dropped"),
            counter(&run1, "events_out")
                .zip(counter(&run2, "events_out"))
                .map(|(a, b)| a + b),
        ),
        (produced, Some(0), Some(0), produced),
        "the buffer's counters (run 1 events_in, run 1 dropped, run 2 dropped, events_out of \
         both runs); {context}"
    );
    assert_eq!(
        run2["chunks_left"].as_array().map(Vec::len),
        Some(0),
        "chunk files left after run 2; {context}"
    );
    // Run 2 delivers the records run 1 left in chunk files (plus what its exit spilled).
    let left = run1["records_left"].as_u64().unwrap_or(0);
    assert!(
        logs2.len() as u64 >= left,
        "run 2 delivered {} logs, fewer than the {left} records run 1 left in chunk files; \
         {context}",
        logs2.len()
    );
    eprintln!(
        "buffered_reload: sls: delivered {delivered} logs ({} in run 1, {} in run 2), \
         {distinct} distinct (gen, Index) = produced, {duplicated} duplicates (same pack id), \
         {groups} groups without pack-id gaps; {context}",
        logs1.len(),
        logs2.len()
    );
}

// ---------------------------------------------------------------------------------------
// 2. flusher_file with a memory buffer
// ---------------------------------------------------------------------------------------

const FILE_TEST: &str = "reloads_with_a_memory_buffered_flusher_file_lose_nothing";

fn file_config(gen: u64, out: &Path) -> String {
    json!({
        "global": {"AggregatIntervalMs": AGGREGATE_MS},
        "inputs": [service_mock(RATE, 0, json!({"gen": gen.to_string()}))],
        "flushers": [{"type": "flusher_file", "detail": {
            "FilePath": out.display().to_string(),
            "Format": "json",
            "MaxFileSize": 0,
            "Buffer": {"Type": "memory", "FlushIntervalMs": 50},
        }}],
    })
    .to_string()
}

/// The (gen, Index) of every JSON line of `path`; panics on a line that is not a record.
fn file_records(path: &Path) -> Vec<(u64, u64)> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{}: the last line has no newline",
        path.display()
    );
    text.lines()
        .enumerate()
        .map(|(n, line)| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{} line {}: {e}: {line:?}", path.display(), n + 1));
            let num = |k: &str| v[k].as_str().and_then(|s| s.parse::<u64>().ok());
            match (num("gen"), num("Index")) {
                (Some(g), Some(i)) => (g, i),
                _ => panic!(
                    "{} line {}: no numeric gen and Index: {line}",
                    path.display(),
                    n + 1
                ),
            }
        })
        .collect()
}

fn file_scenario() {
    let s = Session::start("buffered-reload-file");
    assert_eq!(
        base::load_global_config(&json!({ "HoldOnTimeoutMs": DRAIN_TIMEOUT_MS }).to_string()),
        0
    );
    let out = s.root().join("out").join("reload.json");
    let f = reload_cycles(&s, FILE_NAME, |gen| file_config(gen, &out));
    let records = file_records(&out);
    let produced = produced_by_service_mock(FILE_NAME);
    let buffer = last_stats(FILE_NAME, |p| {
        p.starts_with("flusher_file") && p.ends_with("/buffer")
    });
    let context = format!(
        "{} records in {}; service_mock produced {produced:?}; buffer counters {buffer:?}",
        records.len(),
        out.display()
    );
    let (delivered, distinct, duplicated) = check_generations(
        &format!("flusher_file, memory buffer ({context})"),
        records.iter().copied(),
        CYCLES,
        produced,
    );
    assert_eq!(duplicated, 0, "records written twice; {context}");
    assert_eq!(
        (
            stat(&buffer, "events_in"),
            stat(&buffer, "events_out"),
            stat(&buffer, "dropped").unwrap_or(0)
        ),
        (Some(distinct as u64), Some(distinct as u64), 0),
        "the buffer's counters (events_in, events_out, dropped); {context}"
    );
    assert!(
        f.max_hold < HOLD_ON_0_LIMIT,
        "a HoldOn(0) took {:?} (limit {HOLD_ON_0_LIMIT:?})",
        f.max_hold
    );
    eprintln!(
        "buffered_reload: file: delivered {delivered} records, {distinct} distinct = produced, \
         {duplicated} duplicates; {context}"
    );
    drop(s);
}

#[test]
fn reloads_with_a_memory_buffered_flusher_file_lose_nothing() {
    match child_role().as_deref() {
        Some("file") => return file_scenario(),
        Some(_) => return,
        None => {}
    }
    child(FILE_TEST, "file", &[]);
}

// ---------------------------------------------------------------------------------------
// 3. Config churn
// ---------------------------------------------------------------------------------------

const CHURN_TEST: &str = "config_churn_with_buffered_flushers_does_not_grow_rss";
/// Rounds with buffered flushers (the warm-up included), then rounds of the control.
const ROUNDS: usize = 300;
const CONTROL_ROUNDS: usize = 100;
const PER_ROUND: usize = 10;
/// Rounds before the baseline.
const WARM_UP: usize = 30;
/// Each config's `service_mock`: `CHURN_LOGS` logs at `CHURN_RATE` a second (all of them
/// within about 50 ms, well inside a round).
const CHURN_RATE: u64 = 100;
const CHURN_LOGS: u64 = 5;
/// How long each round's configs run before the next round removes them.
const CHURN_RUN: Duration = Duration::from_millis(100);
/// Longest wait at a quiet point for the removed configs' buffers to deliver.
const QUIET_WAIT: Duration = Duration::from_secs(20);
/// The bound on the VmRSS slope over the sampled buffered rounds, in KiB a round of 10
/// configs (least squares, as `host-harness footprint` computes it).
///
/// Every config name is new, and the engine keeps some state per removed name by design (its
/// pack-id sequences for a config of that name loaded again, its checkpoints until
/// `CheckpointTTLSeconds`): the control rounds measure that, the same churn with unbuffered
/// flushers (`Mode: none`), at 4–12 KiB a round on the machine this was written on (run
/// alone, before or after the buffered rounds). A removed config whose buffer stayed in memory
/// costs at least a few KiB more (the buffer's state, its output's options and context, its
/// counters, the staged chunk, an open chunk file): 10 a round add well over 20 KiB a round.
/// 20 KiB a round (2 KiB a config) tolerates the control's level and its noise, not that.
const MAX_SLOPE_KIB_PER_ROUND: f64 = 20.0;
/// The bound on the growth between the two quiet points around the sampled buffered rounds
/// (nothing loaded, everything delivered): the slope's bound over those 270 rounds, rounded
/// up (check_config_leak.rs bounds its 100,000 calls the same way, well under what one leaked
/// object a call would cost).
const MAX_GROWTH_KIB: f64 = 6.0 * 1024.0;

/// The buffer of a churn config's `flusher_file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Memory,
    File,
    /// `Mode: none` (the control).
    Unbuffered,
}

fn churn_kind(round: usize, i: usize) -> Kind {
    if round >= ROUNDS {
        Kind::Unbuffered
    } else if i % 2 == 1 {
        Kind::File
    } else {
        Kind::Memory
    }
}

fn churn_name(round: usize, i: usize) -> String {
    format!("churn_{round:03}_{i}")
}

/// A churn config: `service_mock`, `flusher_file` to `<out>/<name>.json` with a memory
/// buffer, a file buffer in the data directory, or none. `FlushIntervalMs` 1000: when the
/// config is removed its records are still in the buffer, which must deliver them.
fn churn_config(name: &str, kind: Kind, out: &Path) -> String {
    let buffer = match kind {
        Kind::Memory => json!({"Type": "memory", "FlushIntervalMs": 1000}),
        Kind::File => json!({"Type": "file", "FlushIntervalMs": 1000, "SyncIntervalMs": 50}),
        Kind::Unbuffered => json!({"Mode": "none"}),
    };
    json!({
        "global": {"AggregatIntervalMs": 50},
        "inputs": [service_mock(CHURN_RATE, CHURN_LOGS, json!({"cfg": name}))],
        "flushers": [{"type": "flusher_file", "detail": {
            "FilePath": out.join(format!("{name}.json")).display().to_string(),
            "Format": "json",
            "Buffer": buffer,
        }}],
    })
    .to_string()
}

/// OS threads (`/proc/self/task`), and those named `flush-*` (buffer flush threads).
fn threads() -> (usize, usize) {
    let mut all = 0;
    let mut flush = 0;
    for t in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        all += 1;
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.starts_with("flush-") {
            flush += 1;
        }
    }
    (all, flush)
}

/// OS threads by name.
fn thread_names() -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for t in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        *m.entry(comm.trim_end().to_owned()).or_default() += 1;
    }
    m
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// A quiet point (nothing loaded): VmRSS, OS threads, open descriptors, and what is still
/// buffered.
#[derive(Debug, Clone, Copy)]
struct Quiet {
    rss_kib: u64,
    threads: usize,
    fds: usize,
    /// Flush threads still running.
    flush_threads: usize,
    /// Chunk files left in the file buffers.
    chunks: usize,
    /// How long the wait for the background delivery took.
    waited_ms: u128,
}

/// HoldOn(0), removes `loaded`, Resume; then waits until no flush thread runs, no chunk file
/// is left (`chunks_too`) and the thread count has not changed for 1 s ([`QUIET_WAIT`] at
/// most), and measures.
fn quiesce(s: &Session, loaded: &mut Vec<String>, buffers: &Path, chunks_too: bool) -> Quiet {
    hold_on_bounded(0, Duration::from_secs(60)).expect("HoldOn(0) did not return in 60 s");
    for n in loaded.drain(..) {
        assert_eq!(s.load(&n, ""), 0, "LoadConfig({n}, \"\") (removal)");
    }
    base::resume();
    let start = Instant::now();
    let (mut last, mut since) = (threads().0, Instant::now());
    wait_until(QUIET_WAIT, || {
        let (all, flush) = threads();
        if all != last {
            (last, since) = (all, Instant::now());
        }
        flush == 0
            && (!chunks_too || chunk_files(buffers).is_empty())
            && since.elapsed() >= Duration::from_secs(1)
    });
    let (threads, flush_threads) = threads();
    Quiet {
        rss_kib: vm_rss_kib().expect("VmRSS"),
        threads,
        fds: open_fds(),
        flush_threads,
        chunks: chunk_files(buffers).len(),
        waited_ms: start.elapsed().as_millis(),
    }
}

/// What a run of churn rounds saw.
struct Rounds {
    /// (round, VmRSS KiB) after each sampled round.
    rss: Vec<(f64, f64)>,
    threads_min: usize,
    threads_max: usize,
    max_hold: Duration,
    took: Duration,
}

impl Rounds {
    fn slope(&self) -> f64 {
        slope(&self.rss)
    }

    fn span(&self) -> String {
        format!(
            "{} -> {} KiB over {} rounds, slope {:.2} KiB/round; threads {}..{}; max HoldOn(0) \
             {:?}; {:?}",
            self.rss.first().map_or(0.0, |p| p.1),
            self.rss.last().map_or(0.0, |p| p.1),
            self.rss.len(),
            self.slope(),
            self.threads_min,
            self.threads_max,
            self.max_hold,
            self.took
        )
    }
}

/// Rounds `rounds`: HoldOn(0), the previous round's configs removed (`LoadConfig` with an
/// empty JSON), this round's loaded, Resume, [`CHURN_RUN`]; VmRSS and threads sampled after
/// each when `sample`.
fn churn_rounds(
    s: &Session,
    rounds: std::ops::Range<usize>,
    out: &Path,
    loaded: &mut Vec<String>,
    sample: bool,
) -> Rounds {
    let start = Instant::now();
    let mut r = Rounds {
        rss: Vec::new(),
        threads_min: usize::MAX,
        threads_max: 0,
        max_hold: Duration::ZERO,
        took: Duration::ZERO,
    };
    for round in rounds {
        let took =
            hold_on_bounded(0, Duration::from_secs(60)).expect("HoldOn(0) did not return in 60 s");
        r.max_hold = r.max_hold.max(took);
        for n in loaded.drain(..) {
            assert_eq!(s.load(&n, ""), 0, "LoadConfig({n}, \"\") (removal)");
        }
        for i in 0..PER_ROUND {
            let n = churn_name(round, i);
            let c = churn_config(&n, churn_kind(round, i), out);
            assert_eq!(s.load(&n, &c), 0, "LoadConfig({n})");
            loaded.push(n);
        }
        base::resume();
        std::thread::sleep(CHURN_RUN);
        // What the host keeps (statistics, alarms) is the test's memory, not the base's.
        store::with(|st| st.groups.clear());
        if sample {
            r.rss
                .push((round as f64, vm_rss_kib().expect("VmRSS") as f64));
            let t = threads().0;
            r.threads_min = r.threads_min.min(t);
            r.threads_max = r.threads_max.max(t);
        }
    }
    r.took = start.elapsed();
    r
}

/// Least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    sxy / sxx
}

/// The output files of the configs of `rounds`: how many hold exactly Index 1..=CHURN_LOGS
/// (each once), the records, and a description of every other config.
fn churn_outputs(out: &Path, rounds: std::ops::Range<usize>) -> (usize, usize, Vec<String>) {
    let want: Vec<u64> = (1..=CHURN_LOGS).collect();
    let mut problems = Vec::new();
    let mut complete = 0usize;
    let mut records = 0usize;
    for round in rounds {
        for i in 0..PER_ROUND {
            let n = churn_name(round, i);
            let text = std::fs::read_to_string(out.join(format!("{n}.json"))).unwrap_or_default();
            let mut idx: Vec<u64> = Vec::new();
            for line in text.lines() {
                let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
                match (v["cfg"].as_str(), v["Index"].as_str().map(str::parse)) {
                    (Some(c), Some(Ok(x))) if c == n => idx.push(x),
                    _ => problems.push(format!("{n}: a foreign or damaged line {line:?}")),
                }
            }
            records += idx.len();
            idx.sort_unstable();
            if idx == want {
                complete += 1;
            } else {
                problems.push(format!(
                    "{n} ({:?}): Index values {idx:?}",
                    churn_kind(round, i)
                ));
            }
        }
    }
    (complete, records, problems)
}

fn count_kind(problems: &[String], kind: Kind) -> usize {
    let tag = format!("({kind:?})");
    problems.iter().filter(|p| p.contains(&tag)).count()
}

fn churn_scenario() {
    let s = Session::start("buffered-reload-churn");
    assert_eq!(
        base::load_global_config(&json!({"HoldOnTimeoutMs": 5000}).to_string()),
        0
    );
    let out = s.root().join("out");
    std::fs::create_dir_all(&out).expect("create the output directory");
    let buffers = buffers_dir(s.root());
    let before_any = threads().0;
    let mut loaded: Vec<String> = Vec::new();

    // Buffered: the warm-up, a quiet point, the sampled rounds, a quiet point.
    churn_rounds(&s, 0..WARM_UP, &out, &mut loaded, false);
    let baseline = quiesce(&s, &mut loaded, &buffers, true);
    let buffered = churn_rounds(&s, WARM_UP..ROUNDS, &out, &mut loaded, true);
    let end = quiesce(&s, &mut loaded, &buffers, true);
    let (complete, records, problems) = churn_outputs(&out, 0..ROUNDS);
    // The control: the same churn without buffers.
    let all = ROUNDS + CONTROL_ROUNDS;
    let control = churn_rounds(&s, ROUNDS..all, &out, &mut loaded, true);
    let control_end = quiesce(&s, &mut loaded, &buffers, false);
    let (c_complete, c_records, c_problems) = churn_outputs(&out, ROUNDS..all);

    let growth = end.rss_kib as f64 - baseline.rss_kib as f64;
    let names_now = thread_names();
    eprintln!(
        "buffered_reload: churn: threads {before_any} before any config; buffered rounds: {}; \
         quiet points (nothing loaded) around them: baseline after round {WARM_UP} \
         {baseline:?}, end {end:?} (waited {} and {} ms for the removed configs' buffers), \
         growth {growth} KiB; {complete} of {} buffered configs \
         delivered Index 1..={CHURN_LOGS} ({records} records; undelivered: {} memory, {} file \
         buffers)",
        buffered.span(),
        baseline.waited_ms,
        end.waited_ms,
        ROUNDS * PER_ROUND,
        count_kind(&problems, Kind::Memory),
        count_kind(&problems, Kind::File),
    );
    eprintln!(
        "buffered_reload: churn: control rounds (no buffer): {}; quiet point after them \
         {control_end:?}; {c_complete} of {} configs delivered ({c_records} records); threads by name \
         now {names_now:?}",
        control.span(),
        CONTROL_ROUNDS * PER_ROUND,
    );
    let took = hold_on_bounded(1, Duration::from_secs(60));
    let (after_exit, _, _) = churn_outputs(&out, 0..ROUNDS);
    eprintln!(
        "buffered_reload: churn: HoldOn(1) {took:?}; after it {after_exit} buffered configs \
         delivered Index 1..={CHURN_LOGS}, {} chunk files left",
        chunk_files(&buffers).len()
    );

    assert!(
        c_problems.is_empty(),
        "control (no buffer): {} configs did not deliver exactly Index 1..={CHURN_LOGS}; \
         first: {:#?}",
        c_problems.len(),
        c_problems.iter().take(5).collect::<Vec<_>>()
    );
    assert_eq!(
        (
            baseline.chunks,
            end.chunks,
            baseline.flush_threads,
            end.flush_threads
        ),
        (0, 0, 0, 0),
        "nothing loaded, yet {QUIET_WAIT:?} after removing every config: chunk files left \
         (baseline, end) and flush threads running (baseline, end); {} memory-buffer and {} \
         file-buffer configs undelivered; first: {:#?}",
        count_kind(&problems, Kind::Memory),
        count_kind(&problems, Kind::File),
        problems.iter().take(6).collect::<Vec<_>>()
    );
    assert!(
        problems.is_empty(),
        "{} buffered configs did not deliver exactly Index 1..={CHURN_LOGS}; first: {:#?}",
        problems.len(),
        problems.iter().take(10).collect::<Vec<_>>()
    );
    assert!(
        end.threads <= baseline.threads,
        "OS threads: {} at the end, {} at the baseline (nothing loaded at either)",
        end.threads,
        baseline.threads,
    );
    assert!(
        end.fds <= baseline.fds,
        "open descriptors: {} at the end, {} at the baseline",
        end.fds,
        baseline.fds
    );
    assert!(
        buffered.slope() < MAX_SLOPE_KIB_PER_ROUND,
        "VmRSS grows {:.2} KiB a round of {PER_ROUND} configs with buffered flushers (limit \
         {MAX_SLOPE_KIB_PER_ROUND}): buffered {}; control (no buffer) {}",
        buffered.slope(),
        buffered.span(),
        control.span()
    );
    assert!(
        growth < MAX_GROWTH_KIB,
        "VmRSS grew {growth} KiB between the quiet points ({} -> {} KiB; limit \
         {MAX_GROWTH_KIB} KiB)",
        baseline.rss_kib,
        end.rss_kib
    );
    drop(s);
}

#[test]
fn config_churn_with_buffered_flushers_does_not_grow_rss() {
    match child_role().as_deref() {
        Some("churn") => return churn_scenario(),
        Some(_) => return,
        None => {}
    }
    child(CHURN_TEST, "churn", &[]);
}

// ---------------------------------------------------------------------------------------
// 4. Reloads of the same names
// ---------------------------------------------------------------------------------------

const RELOAD_RSS_TEST: &str = "reloading_buffered_configs_does_not_grow_rss";
const RELOAD_RSS_CYCLES: usize = 500;
const RELOAD_RSS_WARM_UP: usize = 100;
/// The bound on VmRSS growth over the sampled cycles (5,000 reloads of a buffered flusher).
/// Each reload once built a buffer to check the config that kept itself alive (about 4 KiB a
/// reload, 20 MiB here); now it stays within tens of KiB. 2 MiB is 400 bytes a reload.
const MAX_RELOAD_GROWTH_KIB: u64 = 2 * 1024;

fn reload_rss_scenario() {
    let s = Session::start("buffered-reload-rss");
    let out = s.root().join("out");
    std::fs::create_dir_all(&out).expect("output dir");
    let config = |i: usize| {
        let buffer = if i.is_multiple_of(2) {
            json!({"Type": "memory", "FlushIntervalMs": 50})
        } else {
            json!({"Type": "file", "FlushIntervalMs": 50, "SyncIntervalMs": 20})
        };
        json!({
            "inputs": [service_mock(100, 0, json!({}))],
            "flushers": [{"type": "flusher_file", "detail": {
                "FilePath": out.join(format!("rss{i}.json")).display().to_string(),
                "Buffer": buffer}}]
        })
        .to_string()
    };
    let names: Vec<String> = (0..10).map(|i| format!("reload_rss_{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        assert_eq!(s.load(n, &config(i)), 0, "LoadConfig({n})");
    }
    base::resume();
    let mut first = 0;
    for cycle in 0..RELOAD_RSS_CYCLES {
        if cycle == RELOAD_RSS_WARM_UP {
            first = vm_rss_kib().expect("VmRSS");
        }
        std::thread::sleep(Duration::from_millis(5));
        hold_on_bounded(0, HOLD_ON_0_LIMIT)
            .unwrap_or_else(|| panic!("HoldOn(0) of cycle {cycle} did not return in time"));
        for (i, n) in names.iter().enumerate() {
            assert_eq!(s.load(n, &config(i)), 0, "LoadConfig({n}) of cycle {cycle}");
        }
        base::resume();
    }
    let last = vm_rss_kib().expect("VmRSS");
    let reloads = (RELOAD_RSS_CYCLES - RELOAD_RSS_WARM_UP) * names.len();
    eprintln!("buffered_reload: reload rss: {first} -> {last} KiB over {reloads} reloads");
    assert!(
        last.saturating_sub(first) < MAX_RELOAD_GROWTH_KIB,
        "VmRSS grew {first} -> {last} KiB over {reloads} reloads of buffered flushers \
         (limit {MAX_RELOAD_GROWTH_KIB} KiB)"
    );
    hold_on_bounded(1, Duration::from_secs(30)).expect("HoldOn(1)");
    drop(s);
}

#[test]
fn reloading_buffered_configs_does_not_grow_rss() {
    match child_role().as_deref() {
        Some("reload_rss") => return reload_rss_scenario(),
        Some(_) => return,
        None => {}
    }
    child(RELOAD_RSS_TEST, "reload_rss", &[]);
}
