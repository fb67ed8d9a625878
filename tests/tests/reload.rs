//! Ensures reload (HoldOn(0) → LoadConfig → Resume) loses nothing: logs produced by the old
//! instance are all delivered, the new instance starts fresh, and pack ids stay gapless.
//! Also: pause/resume without reload continues, LoadConfig while running is refused, and
//! LoadConfig with empty JSON removes a config.

use std::time::Duration;

use e2e_tests::proto::{log, now_secs};
use e2e_tests::session::{add_fields, hold_on_bounded};
use e2e_tests::store::{self, ReceivedLog};
use e2e_tests::util::wait_stable;
use e2e_tests::{analyze_indexes, analyze_pack_ids, base, pipeline, service_mock, wait_until};
use e2e_tests::{IndexReport, Session};
use prost::Message;
use serde_json::json;

const MAIN: &str = "reload_main";
const CONT: &str = "reload_cont";
const FED: &str = "reload_fed";
const GEN2: u64 = 500;
const HOLD_TIMEOUT: Duration = Duration::from_secs(30);

fn gen_report(name: &str, gen: &str) -> IndexReport {
    let logs: Vec<ReceivedLog> = store::logs_for(name)
        .into_iter()
        .map(|(l, _)| l)
        .filter(|l| l.get("gen") == Some(gen))
        .collect();
    analyze_indexes(&logs)
}

fn hold_on(flag: i64) {
    let took = hold_on_bounded(flag, HOLD_TIMEOUT)
        .unwrap_or_else(|| panic!("HoldOn({flag}) did not return within {HOLD_TIMEOUT:?}"));
    eprintln!("HoldOn({flag}) took {took:?}");
}

#[test]
fn reload_carries_data_over_and_lifecycle_calls_behave() {
    let s = Session::start("reload");
    let endless = 1_000_000_000;

    // Phase 1: gen 1 runs, then is replaced by gen 2.
    let gen1 = pipeline(
        vec![service_mock(2000, endless, json!({"gen": "1"}))],
        vec![],
    );
    assert_eq!(s.load(MAIN, &gen1), 0, "LoadConfig(gen 1)");
    base::resume();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        s.load("reload_while_running", &gen1),
        1,
        "LoadConfig while running must return 1"
    );

    hold_on(0);
    let before_reload = store::log_count(MAIN);
    let gen2 = pipeline(vec![service_mock(2000, GEN2, json!({"gen": "2"}))], vec![]);
    assert_eq!(s.load(MAIN, &gen2), 0, "LoadConfig(gen 2) after HoldOn(0)");
    base::resume();

    let done = wait_until(Duration::from_secs(60), || {
        gen_report(MAIN, "2").distinct.len() as u64 >= GEN2
    });
    wait_stable(Duration::from_secs(2), Duration::from_secs(15), || {
        store::log_count(MAIN)
    });
    let g1 = gen_report(MAIN, "1");
    let g2 = gen_report(MAIN, "2");
    eprintln!("before reload {before_reload} delivered; gen1 {g1}; gen2 {g2}");
    assert!(
        done,
        "gen 2 incomplete: {g2}; {}",
        store::counters_summary()
    );
    assert!(g1.max().unwrap_or(0) > 0, "no gen 1 log delivered: {g1}");
    let k = g1.max().unwrap_or(0);
    assert!(
        g1.is_exactly_one_to(k),
        "gen 1 lost logs across reload: {g1}"
    );
    assert!(g1.duplicates.is_empty(), "gen 1 duplicated logs: {g1}");
    assert_eq!(g1.without_index, 0, "{g1}");
    assert!(g2.is_exactly_one_to(GEN2), "gen 2: {g2}");
    assert!(g2.duplicates.is_empty(), "gen 2 duplicated logs: {g2}");
    let p = analyze_pack_ids(&store::groups_for(MAIN));
    assert!(p.gaps() == 0 && p.duplicates() == 0, "{MAIN}: {p}");

    // Phase 2: HoldOn(0) → Resume without reload continues.
    hold_on(0);
    let cont = pipeline(
        vec![service_mock(1000, endless, json!({"gen": "c"}))],
        vec![],
    );
    assert_eq!(s.load(CONT, &cont), 0, "LoadConfig({CONT})");
    let fed = pipeline(vec![], vec![add_fields(json!({"env": "test"}))]);
    assert_eq!(s.load(FED, &fed), 0, "LoadConfig({FED})");
    base::resume();
    assert!(
        wait_until(Duration::from_secs(30), || store::log_count(CONT) >= 200),
        "{CONT} does not deliver: {}",
        store::counters_summary()
    );
    let one_log = log(now_secs(), &[("msg", "fed")]).encode_to_vec();
    assert_eq!(
        base::process_log(FED, &one_log, "", "", b""),
        0,
        "ProcessLog({FED})"
    );
    assert!(
        wait_until(Duration::from_secs(30), || store::log_count(FED) == 1),
        "{FED} did not deliver its log"
    );

    hold_on(0);
    let paused = store::log_count(CONT);
    base::resume();
    assert!(
        wait_until(Duration::from_secs(30), || store::log_count(CONT)
            >= paused + 500),
        "{CONT} did not continue after HoldOn(0) → Resume: {} (was {paused})",
        store::log_count(CONT)
    );
    let c = gen_report(CONT, "c");
    assert!(
        c.missing_from_one(1).is_empty(),
        "{CONT} has gaps after pause/resume: {c}"
    );
    let p = analyze_pack_ids(&store::groups_for(CONT));
    assert!(p.gaps() == 0 && p.duplicates() == 0, "{CONT}: {p}");

    assert_eq!(
        s.load("reload_while_running_2", &fed),
        1,
        "LoadConfig while running (after a resume) must return 1"
    );

    // Empty JSON removes a config.
    hold_on(0);
    assert_eq!(s.load(FED, ""), 0, "LoadConfig({FED}, \"\") must remove it");
    base::resume();
    assert_ne!(
        base::process_log(FED, &one_log, "", "", b""),
        0,
        "ProcessLog into a removed config must fail"
    );

    s.exit(HOLD_TIMEOUT);
}
