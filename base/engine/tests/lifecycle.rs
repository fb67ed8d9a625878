//! The lifecycle state machine on engine values, in process: load → resume → delivery,
//! replace and remove while held, `hold_on(false)`/`resume` hand-off under a refusing host,
//! `stop(name, removed)`, the exit spill re-sent by the next engine on the same checkpoint
//! directory, the errors of calls made at the wrong time, iLogtail 2.x `name/1` `name/2`
//! names, alarms kept while the host refuses them, and two engines side by side.
//!
//! Each test has its own engine(s), host and checkpoint directory, so they run in parallel in
//! one process. The end-to-end tests through the real `.so` (tests/tests) cover the same
//! ground through the C ABI.

mod common;

use common::*;
use engine::stats::{AlarmType, Level};
use engine::{Error, Tunables};
use std::time::{Duration, Instant};

/// `EXIT_GRACE` plus scheduling slack: a bounded call returns within its timeout plus this.
const SLACK: Duration = Duration::from_millis(2500);

#[test]
fn load_resume_delivers_every_log_once_with_pack_ids_in_order() {
    let dir = TempDir::new("deliver");
    let host = Recorder::new(true);
    let e = engine("deliver", host.clone(), &dir);
    load(&e, "fed", &fed("f"));
    load(&e, "gen", &mock(50_000, 2000, "g"));
    assert_eq!(e.config_names(), ["fed", "gen"]);
    e.resume().unwrap();
    push_seq(&e, "fed", 1, 50, 20);

    assert!(
        wait_until(WAIT, || host.log_count("fed") >= 1000
            && host.log_count("gen") >= 2000),
        "fed {} of 1000, gen {} of 2000",
        host.log_count("fed"),
        host.log_count("gen")
    );
    e.hold_on(false);
    let fed_sent = host.sent("fed");
    let gen_sent = host.sent("gen");
    assert_exactly(&numbers(&fed_sent, "seq", Some("f")), 1, 1000, "fed");
    assert_exactly(&numbers(&gen_sent, "Index", Some("g")), 1, 2000, "gen");
    assert_eq!(assert_pack_ids_in_order(&fed_sent, "fed"), 1);
    assert_eq!(assert_pack_ids_in_order(&gen_sent, "gen"), 1);
    for s in fed_sent.iter().chain(&gen_sent) {
        assert_eq!(s.logstore, logstore_of(&s.config));
        assert_eq!(s.group.category.as_deref(), Some(s.logstore.as_str()));
        assert_eq!(s.group.source.as_deref(), Some("10.0.0.1"));
    }
    assert_eq!(flushed(&e, "fed"), 1000);
    assert_eq!(flushed(&e, "gen"), 2000);
    assert_eq!(host.data_configs(), ["fed", "gen"]);
}

#[test]
fn replace_while_held_hands_queued_data_to_the_successor() {
    let dir = TempDir::new("replace");
    let host = Recorder::new(false);
    let e = engine("replace", host.clone(), &dir);
    load(&e, "app", &fed("1"));
    e.resume().unwrap();
    push_seq(&e, "app", 1, 25, 20);
    // Everything is serialized and waits in the outbox of `app` (the host refuses).
    assert!(wait_until(WAIT, || processed(&e, "app") == 500 && host.refusals() > 0));
    e.hold_on(false);

    // Pushed while held: queued for the next instance, which processes it.
    push_seq(&e, "app", 501, 15, 20);
    assert_eq!(
        e.load_config("proj", "app_store", "app", 1, &fed("2")),
        Ok(()),
        "replacing while held"
    );
    assert_eq!(e.config_names(), ["app"]);
    e.resume().unwrap();
    host.set_accept(true);
    assert!(
        wait_until(WAIT, || host.log_count("app") >= 800),
        "{} of 800",
        host.log_count("app")
    );
    e.hold_on(false);
    let sent = host.sent("app");
    assert_exactly(&numbers(&sent, "seq", None), 1, 800, "app");
    assert_exactly(
        &numbers(&sent, "seq", Some("1")),
        1,
        500,
        "processed by the first instance",
    );
    assert_exactly(
        &numbers(&sent, "seq", Some("2")),
        501,
        800,
        "processed by its successor",
    );
    // One sequence across both instances, sent in order; refused groups kept their ids.
    assert_eq!(assert_pack_ids_in_order(&sent, "app"), 1);
    let first_refused = host.refused("app")[0].pack_id().unwrap().to_string();
    assert_eq!(sent[0].pack_id(), Some(first_refused.as_str()));
}

#[test]
fn remove_while_held_delivers_through_the_removed_configs_delivery() {
    let dir = TempDir::new("remove");
    let host = Recorder::new(false);
    let e = engine("remove", host.clone(), &dir);
    load(&e, "gone", &fed("g"));
    load(&e, "stay", &fed("s"));
    e.resume().unwrap();
    push_seq(&e, "gone", 1, 20, 20);
    push_seq(&e, "stay", 1, 5, 20);
    assert!(wait_until(WAIT, || processed(&e, "gone") == 400
        && processed(&e, "stay") == 100));
    e.hold_on(false);

    assert_eq!(e.load_config("", "", "gone", 1, "  "), Ok(()), "empty JSON");
    assert_eq!(e.config_names(), ["stay"]);
    assert_eq!(
        e.push("gone", std::iter::once(group("AB12", 999, 1))),
        Err(Error::UnknownConfig)
    );
    assert_eq!(e.unload_config("gone"), Err(Error::UnknownConfig));
    // Its counters went with it.
    assert!(e.stats().counters().iter().all(|((c, _), _)| c != "gone"));

    e.resume().unwrap();
    host.set_accept(true);
    assert!(
        wait_until(WAIT, || host.log_count("gone") >= 400
            && host.log_count("stay") >= 100),
        "gone {} of 400, stay {} of 100",
        host.log_count("gone"),
        host.log_count("stay")
    );
    e.hold_on(false);
    let gone = host.sent("gone");
    assert_exactly(&numbers(&gone, "seq", Some("g")), 1, 400, "gone");
    assert_eq!(assert_pack_ids_in_order(&gone, "gone"), 1);
    assert_eq!(gone[0].logstore, "gone_store");
    assert_exactly(&numbers(&host.sent("stay"), "seq", None), 1, 100, "stay");
}

#[test]
fn data_of_a_config_removed_while_held_survives_an_exit() {
    let dir = TempDir::new("remove-exit");
    let first = Recorder::new(false);
    {
        let e = engine("remove-exit-1", first.clone(), &dir);
        load(&e, "gone", &fed("g"));
        e.resume().unwrap();
        push_seq(&e, "gone", 1, 10, 30);
        assert!(wait_until(WAIT, || processed(&e, "gone") == 300));
        e.hold_on(false);
        e.unload_config("gone").unwrap();
        assert!(e.config_names().is_empty());
        e.hold_on(true);
    }
    let second = Recorder::new(true);
    let e = engine("remove-exit-2", second.clone(), &dir);
    e.resume().unwrap();
    assert!(
        wait_until(WAIT, || second.log_count("gone") >= 300),
        "{} of 300 re-sent",
        second.log_count("gone")
    );
    e.hold_on(false);
    let sent = second.sent("gone");
    assert_exactly(&numbers(&sent, "seq", None), 1, 300, "re-sent");
    assert_eq!(assert_pack_ids_in_order(&sent, "re-sent"), 1);
    assert_eq!(first.log_count("gone"), 0);
}

#[test]
fn hold_on_resume_cycles_under_a_refusing_host_lose_nothing_and_count_the_retries() {
    let dir = TempDir::new("handoff");
    let host = Recorder::new(false);
    let e = engine("handoff", host.clone(), &dir);
    load(&e, "gen", &mock(20_000, 3000, "m"));
    load(&e, "fed", &fed("f"));
    e.resume().unwrap();
    let mut next = 1;
    for cycle in 0..4 {
        push_seq(&e, "fed", next, 5, 20);
        next += 100;
        let want = next - 1;
        assert!(
            wait_until(WAIT, || processed(&e, "fed") == want),
            "cycle {cycle}: {} of {want} processed",
            processed(&e, "fed")
        );
        let took = Instant::now();
        e.hold_on(false);
        assert!(
            took.elapsed() < Duration::from_millis(500) + SLACK,
            "HoldOn(0) took {:?}",
            took.elapsed()
        );
        // Pushed while held: kept for the next run.
        push_seq(&e, "fed", next, 1, 10);
        next += 10;
        e.resume().unwrap();
    }
    let fed_total = next - 1;
    assert!(wait_until(WAIT, || produced(&e, "gen") == 3000
        && processed(&e, "fed") == fed_total));
    assert_eq!(host.log_count("gen") + host.log_count("fed"), 0);
    assert!(host.refusals() > 0);

    host.set_accept(true);
    assert!(
        wait_until(WAIT, || host.log_count("gen") >= 3000
            && host.log_count("fed") as u64 >= fed_total),
        "gen {} of 3000, fed {} of {fed_total}",
        host.log_count("gen"),
        host.log_count("fed")
    );
    e.hold_on(false);
    let (gen_sent, fed_sent) = (host.sent("gen"), host.sent("fed"));
    assert_exactly(&numbers(&gen_sent, "Index", None), 1, 3000, "gen");
    assert_exactly(&numbers(&fed_sent, "seq", None), 1, fed_total, "fed");
    assert_eq!(assert_pack_ids_in_order(&gen_sent, "gen"), 1);
    assert_eq!(assert_pack_ids_in_order(&fed_sent, "fed"), 1);
    // The refusals were counted as retries of the configs' delivery.
    let retries = counter(&e, "gen", "pipeline", |s| &s.retries)
        + counter(&e, "fed", "pipeline", |s| &s.retries);
    assert!(retries > 0, "no retry counted");
    // ... and alarmed, once the host takes alarms.
    assert!(
        wait_until(WAIT, || alarms(&host)
            .iter()
            .any(|a| a.0 == AlarmType::SendFailed.name())),
        "no {} alarm reached the host: {:?}",
        AlarmType::SendFailed.name(),
        alarms(&host)
    );
}

#[test]
fn stop_without_removal_parks_the_config_until_the_next_resume() {
    let dir = TempDir::new("stop-park");
    let host = Recorder::new(false);
    let e = engine("stop-park", host.clone(), &dir);
    load(&e, "a", &fed("a"));
    load(&e, "b", &fed("b"));
    e.resume().unwrap();
    push_seq(&e, "a", 1, 10, 20);
    assert!(wait_until(WAIT, || processed(&e, "a") == 200));

    let took = Instant::now();
    assert_eq!(e.stop("a", false), Ok(()));
    assert!(took.elapsed() < Duration::from_millis(500) + SLACK);
    assert_eq!(e.stop("nope", false), Err(Error::UnknownConfig));
    assert_eq!(
        e.config_names(),
        ["a", "b"],
        "a stopped config stays loaded"
    );
    // A stopped config takes data for its next run.
    push_seq(&e, "a", 201, 5, 20);

    // The other config keeps running: the host accepts, `b` delivers, `a` stays parked.
    host.set_accept(true);
    push_seq(&e, "b", 1, 5, 20);
    assert!(wait_until(WAIT, || host.log_count("b") == 100));
    assert_eq!(host.log_count("a"), 0, "a stopped config delivered");

    e.hold_on(false);
    e.resume().unwrap();
    assert!(
        wait_until(WAIT, || host.log_count("a") >= 300),
        "{} of 300",
        host.log_count("a")
    );
    e.hold_on(false);
    let a = host.sent("a");
    assert_exactly(&numbers(&a, "seq", None), 1, 300, "a");
    assert_eq!(assert_pack_ids_in_order(&a, "a"), 1);
    assert_exactly(&numbers(&host.sent("b"), "seq", None), 1, 100, "b");
}

#[test]
fn stop_with_removal_delivers_within_the_bound_then_through_the_removed_configs_delivery() {
    let dir = TempDir::new("stop-remove");
    let host = Recorder::new(true);
    let hold = 2000;
    let e = engine_with(
        "stop-remove",
        host.clone(),
        &dir,
        Tunables {
            hold_on_timeout_ms: hold,
            ..fast()
        },
    );
    load(&e, "quick", &fed("q"));
    load(&e, "slow", &fed("s"));
    e.resume().unwrap();

    // The host accepts: what the config holds is delivered before `stop` returns.
    push_seq(&e, "quick", 1, 10, 20);
    let took = Instant::now();
    assert_eq!(e.stop("quick", true), Ok(()));
    assert!(took.elapsed() < Duration::from_millis(hold) + SLACK);
    assert_eq!(
        host.log_count("quick"),
        200,
        "delivered within HoldOnTimeoutMs"
    );
    assert_eq!(e.config_names(), ["slow"]);
    assert_eq!(
        e.push("quick", std::iter::once(group("AB12", 1, 1))),
        Err(Error::UnknownConfig)
    );
    assert_eq!(e.stop("quick", true), Err(Error::UnknownConfig));

    // The host refuses: `stop` returns within the bound and the rest follows later.
    host.set_accept(false);
    push_seq(&e, "slow", 1, 10, 20);
    assert!(wait_until(WAIT, || processed(&e, "slow") == 200));
    let took = Instant::now();
    assert_eq!(e.stop("slow", true), Ok(()));
    assert!(
        took.elapsed() < Duration::from_millis(hold) + SLACK,
        "Stop took {:?}",
        took.elapsed()
    );
    assert!(e.config_names().is_empty());
    host.set_accept(true);
    assert!(
        wait_until(WAIT, || host.log_count("slow") >= 200),
        "{} of 200",
        host.log_count("slow")
    );
    e.hold_on(false);
    let slow = host.sent("slow");
    assert_exactly(&numbers(&slow, "seq", None), 1, 200, "slow");
    assert_eq!(assert_pack_ids_in_order(&slow, "slow"), 1);
    assert_exactly(&numbers(&host.sent("quick"), "seq", None), 1, 200, "quick");
}

#[test]
fn exit_spill_is_re_sent_by_the_next_engine_with_the_same_pack_ids() {
    let dir = TempDir::new("exit-spill");
    let first = Recorder::new(false);
    let producer = mock(50_000, 1000, "m");
    let refused_prefixes;
    {
        let e = engine("exit-1", first.clone(), &dir);
        load(&e, "fed", &fed("f"));
        load(&e, "gen", &producer);
        e.resume().unwrap();
        push_seq(&e, "fed", 1, 30, 20);
        assert!(wait_until(WAIT, || processed(&e, "fed") == 600
            && produced(&e, "gen") == 1000
            && !first.refused("fed").is_empty()
            && !first.refused("gen").is_empty()));
        let took = Instant::now();
        e.hold_on(true);
        assert!(
            took.elapsed() < Duration::from_millis(500) + SLACK,
            "HoldOn(1) took {:?}",
            took.elapsed()
        );
        refused_prefixes = ["fed", "gen"].map(|c| pack_ids(&first.refused(c)));
    }
    assert_eq!(first.log_count("fed") + first.log_count("gen"), 0);

    let second = Recorder::new(true);
    let e = engine("exit-2", second.clone(), &dir);
    // The producer is loaded again: it continues after its committed Index.
    load(&e, "gen", &producer);
    e.resume().unwrap();
    assert!(
        wait_until(WAIT, || second.log_count("fed") >= 600
            && second.log_count("gen") >= 1000),
        "fed {} of 600, gen {} of 1000",
        second.log_count("fed"),
        second.log_count("gen")
    );
    e.hold_on(false);
    let fed_sent = second.sent("fed");
    let gen_sent = second.sent("gen");
    assert_exactly(&numbers(&fed_sent, "seq", None), 1, 600, "fed re-sent");
    assert_exactly(&numbers(&gen_sent, "Index", None), 1, 1000, "gen re-sent");
    assert_eq!(fed_sent[0].logstore, "fed_store");
    for (sent, refused) in [
        (&fed_sent, &refused_prefixes[0]),
        (&gen_sent, &refused_prefixes[1]),
    ] {
        assert_eq!(assert_pack_ids_in_order(sent, "re-sent"), 1);
        // The same pack ids: the prefix the first engine tried, the sequence from 1.
        let got = pack_ids(sent);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            refused.keys().collect::<Vec<_>>()
        );
        assert_eq!(refused.values().next().unwrap()[0], 1);
    }
    e.hold_on(true);
    drop(e);

    // Nothing is sent twice: a third engine finds nothing left to re-send.
    let third = Recorder::new(true);
    let e = engine("exit-3", third.clone(), &dir);
    load(&e, "probe", &fed("p"));
    e.resume().unwrap();
    push_seq(&e, "probe", 1, 1, 1);
    assert!(wait_until(WAIT, || third.log_count("probe") == 1));
    e.hold_on(false);
    assert_eq!(third.log_count("fed"), 0);
}

#[test]
fn calls_at_the_wrong_time_fail() {
    let dir = TempDir::new("errors");
    let host = Recorder::new(true);
    let e = engine::Engine::new(engine::Settings {
        name: "errors".into(),
        host: host.clone(),
    });
    assert!(!e.is_initialized());
    assert_eq!(
        e.push("x", std::iter::once(group("AB12", 1, 1))),
        Err(Error::NotInitialized)
    );
    assert_eq!(
        e.load_config("p", "l", "x", 1, &fed("x")),
        Err(Error::Failed)
    );
    assert_eq!(e.resume(), Err(Error::NotInitialized));
    assert_eq!(e.stop("x", false), Err(Error::UnknownConfig));
    e.hold_on(false);
    e.set_tunables(fast());
    e.init(engine::InitOptions {
        checkpoint_dir: dir.path().to_path_buf(),
        ..Default::default()
    })
    .unwrap();
    assert!(e.is_initialized());

    assert_eq!(
        e.push("x", std::iter::once(group("AB12", 1, 1))),
        Err(Error::UnknownConfig)
    );
    assert_eq!(
        e.load_config("p", "l", "", 1, &fed("x")),
        Err(Error::Failed)
    );
    assert_eq!(
        e.load_config("p", "l", "a\0b", 1, &fed("x")),
        Err(Error::Failed)
    );
    assert_eq!(
        e.load_config(
            "p",
            "l",
            "bad",
            1,
            r#"{"processors": [{"type": "no_such_plugin"}]}"#
        ),
        Err(Error::Failed)
    );
    assert_eq!(e.load_config("p", "l", "bad", 1, "{"), Err(Error::Failed));
    assert!(e.config_names().is_empty());
    load(&e, "x", &fed("x"));
    e.resume().unwrap();
    assert_eq!(e.resume(), Ok(()), "a second Resume does nothing");
    assert_eq!(
        e.load_config("p", "l", "y", 1, &fed("y")),
        Err(Error::Failed),
        "LoadConfig while running"
    );
    assert_eq!(
        e.load_config("p", "l", "x", 1, &fed("x2")),
        Err(Error::Failed),
        "replacing while running"
    );
    assert_eq!(e.unload_config("x"), Err(Error::Failed));
    assert_eq!(e.load_config("p", "l", "x", 1, ""), Err(Error::Failed));
    assert_eq!(e.config_names(), ["x"]);
    e.push("x", std::iter::once(group("AB12", 1, 3))).unwrap();
    assert!(wait_until(WAIT, || host.log_count("x") == 3));
    assert_exactly(&numbers(&host.sent("x"), "seq", Some("x")), 1, 3, "x");
    // The config errors were alarmed.
    assert!(
        wait_until(WAIT, || alarms(&host)
            .iter()
            .any(|a| a.0 == AlarmType::ConfigError.name() && a.1 == "bad")),
        "{:?}",
        alarms(&host)
    );
    e.hold_on(true);
    assert_eq!(e.resume(), Ok(()), "Resume after HoldOn(1)");
}

#[test]
fn ilogtail2_names_send_under_the_real_name() {
    let dir = TempDir::new("names");
    let host = Recorder::new(true);
    // As the 2.x core: SendPb knows `web` only.
    host.refuse_config("web/1");
    host.refuse_config("web/2");
    let e = engine("names", host.clone(), &dir);
    load(&e, "web/1", &mock(10_000, 50, "1"));
    load(&e, "web/2", &fed("2"));
    assert_eq!(e.config_names(), ["web/1", "web/2"]);
    e.resume().unwrap();
    push_seq(&e, "web/2", 1, 2, 20);
    assert!(
        wait_until(WAIT, || host.log_count("web") >= 90),
        "{} of 90",
        host.log_count("web")
    );
    e.hold_on(false);
    let sent = host.sent("web");
    assert_exactly(&numbers(&sent, "Index", Some("1")), 1, 50, "web/1");
    assert_exactly(&numbers(&sent, "seq", Some("2")), 1, 40, "web/2");
    assert!(sent.iter().all(|s| s.logstore == "web_store"));
    assert_eq!(host.data_configs(), ["web"]);
    assert!(host.refused("web/1").is_empty() && host.refused("web/2").is_empty());
    // Statistics are kept under the real name.
    assert!(e
        .stats()
        .counters()
        .iter()
        .all(|((c, _), _)| c != "web/1" && c != "web/2"));
    assert_eq!(flushed(&e, "web"), 90);
    // Pack ids: one sequence per source, both halves under `web`.
    assert_eq!(assert_pack_ids_in_order(&sent, "web"), 2);

    // Removing one half keeps the counters of the other; removing both forgets them.
    e.unload_config("web/1").unwrap();
    assert_eq!(flushed(&e, "web"), 90);
    e.unload_config("web/2").unwrap();
    assert!(e.stats().counters().iter().all(|((c, _), _)| c != "web"));
}

#[test]
fn two_engines_side_by_side_do_not_mix() {
    let (d1, d2) = (TempDir::new("side-1"), TempDir::new("side-2"));
    let (h1, h2) = (Recorder::new(false), Recorder::new(true));
    let e1 = engine("side-1", h1.clone(), &d1);
    let e2 = engine("side-2", h2.clone(), &d2);
    for (e, gen) in [(&e1, "one"), (&e2, "two")] {
        load(e, "same", &fed(gen));
        e.resume().unwrap();
    }
    push_seq(&e1, "same", 1, 10, 10);
    push_seq(&e2, "same", 1, 4, 10);
    e1.stats().alarm(
        AlarmType::Plugin("ONLY_IN_ONE"),
        Level::Error,
        "same",
        "",
        "one",
    );
    assert!(wait_until(WAIT, || h2.log_count("same") == 40
        && processed(&e1, "same") == 100));
    assert_eq!(flushed(&e2, "same"), 40);
    assert_eq!(h1.log_count("same"), 0);

    h1.set_accept(true);
    assert!(wait_until(WAIT, || h1.log_count("same") == 100));
    assert!(wait_until(WAIT, || alarms(&h1)
        .iter()
        .any(|a| a.0 == "ONLY_IN_ONE")));
    e1.hold_on(false);
    e2.hold_on(false);
    assert_exactly(
        &numbers(&h1.sent("same"), "seq", Some("one")),
        1,
        100,
        "one",
    );
    assert_exactly(&numbers(&h2.sent("same"), "seq", Some("two")), 1, 40, "two");
    assert!(alarms(&h2).iter().all(|a| a.0 != "ONLY_IN_ONE"));
    assert_eq!(flushed(&e1, "same"), 100);
    assert_eq!(flushed(&e2, "same"), 40);
    assert_eq!(h2.refusals(), 0);
    // Different pack-id prefixes: each engine has its own sequences.
    assert_ne!(
        pack_ids(&h1.sent("same")).keys().next(),
        pack_ids(&h2.sent("same")).keys().next()
    );
}

#[test]
fn alarms_the_host_refuses_are_kept_merged_until_it_accepts() {
    let dir = TempDir::new("alarms");
    let host = Recorder::new(false);
    let e = engine("alarms", host.clone(), &dir);
    // A pipeline that alarms: lines that do not match the regex.
    let regex = text(serde_json::json!({
        "global": {"AggregatIntervalMs": 30},
        "processors": [{"type": "processor_regex", "detail": {
            "SourceKey": "content", "Regex": "^(\\d+)$", "Keys": ["n"]}}],
        "flushers": [{"type": "flusher_sls", "detail": {}}],
    }));
    load(&e, "parse", &regex);
    e.resume().unwrap();
    push_seq(&e, "parse", 1, 3, 10);
    let test_count = |logs: &[wire::sls::Log]| {
        logs.iter()
            .filter(|l| field(l, "alarm_type") == Some("TEST_ALARM"))
            .map(|l| field(l, "alarm_count").unwrap().parse::<u64>().unwrap())
            .sum::<u64>()
    };
    const BATCHES: u64 = 5;
    const PER_BATCH: u64 = 100;
    for batch in 1..=BATCHES {
        for i in 0..PER_BATCH {
            e.stats().alarm(
                AlarmType::Plugin("TEST_ALARM"),
                Level::Warning,
                "parse",
                "test",
                format!("raised {batch}.{i}"),
            );
        }
        // The next report offers every alarm raised so far, merged: none was dropped when
        // the host refused the reports before.
        let so_far = batch * PER_BATCH;
        assert!(
            wait_until(WAIT, || host
                .refused(ALARM_CONFIG)
                .iter()
                .any(|r| test_count(&r.group.logs) == so_far)),
            "no refused report holds the {so_far} alarms raised so far: counts {:?}",
            host.refused(ALARM_CONFIG)
                .iter()
                .map(|r| test_count(&r.group.logs))
                .collect::<Vec<_>>()
        );
    }
    // What is kept stays bounded: one log per distinct alarm, however often raised.
    let refused = host.refused(ALARM_CONFIG);
    for r in &refused {
        assert!(
            r.group.logs.len() <= 5,
            "{} alarm logs in one report",
            r.group.logs.len()
        );
    }
    const RAISED: u64 = BATCHES * PER_BATCH;
    // The pipeline's alarm was raised (and refused) long before the host accepts.
    assert!(wait_until(WAIT, || host.refused(ALARM_CONFIG).iter().any(
        |r| r
            .group
            .logs
            .iter()
            .any(|l| field(l, "alarm_type") == Some("REGEX_UNMATCHED_ALARM"))
    )));

    host.set_accept(true);
    assert!(
        wait_until(WAIT, || alarms(&host).iter().any(|a| a.0 == "TEST_ALARM")),
        "the kept alarms never reached the host"
    );
    e.hold_on(false);
    let got = alarms(&host);
    // Every raise counted once: merged across the refused reports, nothing lost or doubled.
    assert_eq!(
        got.iter()
            .filter(|a| a.0 == "TEST_ALARM")
            .map(|a| a.2)
            .sum::<u64>(),
        RAISED,
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|a| a.0 == "REGEX_UNMATCHED_ALARM" && a.1 == "parse"),
        "the pipeline's alarm: {got:?}"
    );
    assert!(
        got.iter().any(|a| a.0 == AlarmType::SendFailed.name()),
        "{got:?}"
    );
}
