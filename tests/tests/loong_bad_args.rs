//! LoongCollector 3.x: every export fed bad arguments returns its error (a void export does
//! nothing) and the process survives: NULL with a length, negative lengths, invalid UTF-8,
//! broken JSON, configs naming an unknown plugin or field (alarmed, naming config, plugin and
//! field), broken protobuf, unknown and staged-only config names, calls out of order. Then
//! configs still load, start and deliver exactly what they are fed, and the exit sequence,
//! called twice, returns in bounded time.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::time::Duration;

use e2e_tests::base::{self, get_container_meta_is_null, raw};
use e2e_tests::export;
use e2e_tests::ffi::{GoSlice, GoString};
use e2e_tests::loong::{self, host_fed_pipeline, LoongSession, PipelineEventGroup, PROJECT};
use e2e_tests::store::{self, COUNTERS};
use e2e_tests::util::wait_stable;
use e2e_tests::wait_until;
use prost::Message;
use serde_json::json;

const OK: &str = "bad_args_ok";
const LATE: &str = "bad_args_late";
const KEY: i64 = 5150;
const BAD_UTF8: &[u8] = b"bad\xff\xfename";
const SOURCE: &str = "/var/log/bad-args.log";
/// Longest any call of this test may take.
const GIVE_UP: Duration = Duration::from_secs(30);
/// The host's `HOLD_ON_TOO_SLOW` threshold for `Stop` / `StopAllPipelines`.
const HOLD_ON_TOO_SLOW: Duration = Duration::from_secs(10);

fn s(v: &str) -> GoString {
    GoString::new(v)
}

fn bad_strings() -> Vec<(&'static str, GoString)> {
    vec![
        ("NULL with n=5", GoString::null(5)),
        ("NULL with n=i64::MAX", GoString::null(i64::MAX)),
        ("negative length", GoString::raw(c"abc".as_ptr(), -1)),
        ("length i64::MIN", GoString::raw(c"abc".as_ptr(), i64::MIN)),
        ("invalid UTF-8", GoString::from_bytes(BAD_UTF8)),
    ]
}

fn bad_slices() -> Vec<(&'static str, GoSlice)> {
    vec![
        ("NULL data with len=16", GoSlice::null(16)),
        ("NULL data with len=i64::MAX", GoSlice::null(i64::MAX)),
        (
            "negative length",
            GoSlice::raw(b"abc".as_ptr() as *mut c_void, -1, -1),
        ),
    ]
}

/// Bytes that are not a `PipelineEventGroup`.
fn garbage() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("0xff bytes", vec![0xff; 16]),
        ("truncated varint", vec![0x08, 0x80]),
        ("truncated length-delimited", vec![0x1a, 0x10, 0x0a]),
        ("wire type 7", vec![0x0f, 0x01]),
        ("Logs as a varint", vec![0x18, 0x01]),
        (
            "a LogEvent cut short",
            vec![0x1a, 0x04, 0x0a, 0x08, 0x08, 0x01],
        ),
        ("a map entry cut short", vec![0x0a, 0x05, 0x0a, 0x01, b'k']),
    ]
}

fn good_config() -> String {
    host_fed_pipeline(
        vec![json!({"type": "processor_add_fields/3", "detail": {"Fields": {"env": "test"}}})],
        20,
    )
}

fn load_raw(project: GoString, logstore: GoString, name: GoString, json: GoString) -> i64 {
    // SAFETY: every non-NULL pointer is valid for its positive length.
    unsafe { export!(LoadPipeline)(project, logstore, name, KEY, json) }
}

fn process_raw(name: GoString, pb: GoSlice, pack: GoString) -> i64 {
    // SAFETY: as above.
    unsafe { export!(ProcessPipelineEventGroup)(name, pb, pack) }
}

fn group_of(contents: &[&str]) -> Vec<u8> {
    let logs: Vec<Vec<(&str, String)>> = contents
        .iter()
        .map(|c| vec![("content", c.to_string())])
        .collect();
    loong::log_group("bad-args", SOURCE, &logs)
}

/// `GetGoMetrics(t)`, which must not return NULL; read and freed as the host does.
fn metrics_raw(t: GoString) -> Vec<BTreeMap<String, String>> {
    // SAFETY: `t` is valid for its positive length (or deliberately bad: NULL / negative).
    let m = unsafe { export!(GetGoMetrics)(t) };
    assert!(!m.is_null(), "GetGoMetrics({t:?}) returned NULL");
    // SAFETY: what GetGoMetrics returned.
    unsafe { loong::read_metrics(m) }
}

fn load_pipeline_rejects_bad_arguments() {
    let good = good_config();
    for (what, bad) in bad_strings() {
        let name = s("bad_args_x/2");
        let cases = [
            ("project", load_raw(bad, s("ls"), name, s(&good))),
            ("logstore", load_raw(s(PROJECT), bad, name, s(&good))),
            ("configName", load_raw(s(PROJECT), s("ls"), bad, s(&good))),
            ("pipelineJson", load_raw(s(PROJECT), s("ls"), name, bad)),
        ];
        for (arg, rc) in cases {
            assert_eq!(rc, 1, "LoadPipeline with {arg} = {what} returned {rc}");
        }
    }
    for name in ["", "a\0b/2"] {
        assert_eq!(
            loong::load_pipeline(PROJECT, "ls", name, KEY, &good),
            1,
            "LoadPipeline(name {name:?})"
        );
    }
    let broken = [
        "{",
        "[]",
        "42",
        "null",
        "\"text\"",
        "{\"flushers\": [}",
        r#"{"inputs": 5}"#,
        r#"{"processors": {"type": "processor_add_fields/3"}}"#,
        r#"{"processors": [{"detail": {}}]}"#,
        r#"{"processors": [{"type": "", "detail": {}}]}"#,
        r#"{"processors": [{"type": 7, "detail": {}}]}"#,
        r#"{"processors": [{"type": "processor_add_fields/3", "detail": 5}]}"#,
        r#"{"inputs": [{"type": "service_mock/1", "detail": {"MaxLogCount": "x"}}]}"#,
        r#"{"inputs": [{"type": "service_mock/1", "detail": {"LogsPerSecond": 0}}]}"#,
        r#"{"global": {"DefaultLogQueueSize": "many"}}"#,
    ];
    for j in broken {
        assert_eq!(
            loong::load_pipeline(PROJECT, "ls", "bad_args_broken/2", KEY, j),
            1,
            "LoadPipeline accepted {j}"
        );
    }
    // Nothing of the above was staged.
    assert_eq!(loong::unload_pipeline("bad_args_x/2"), 1);
    assert_eq!(loong::unload_pipeline("bad_args_broken/2"), 1);
}

/// The two configs whose alarms are checked: an unknown plugin, a bad field.
fn load_alarmed_configs() {
    let unknown = host_fed_pipeline(
        vec![json!({"type": "no_such_processor/3", "detail": {}})],
        20,
    );
    assert_eq!(
        loong::load_pipeline(PROJECT, "bad_plugin-store", "bad_plugin/2", KEY, &unknown),
        1,
        "LoadPipeline(unknown plugin)"
    );
    let field = host_fed_pipeline(
        vec![json!({"type": "processor_add_fields/3", "detail": {
            "Fields": {"a": "b"}, "Bogus": 1}})],
        20,
    );
    assert_eq!(
        loong::load_pipeline(PROJECT, "bad_field-store", "bad_field/2", KEY, &field),
        1,
        "LoadPipeline(unknown field)"
    );
}

fn check_config_alarms() {
    let alarms = loong::get_go_alarms();
    let find = |config: &str, needles: &[&str]| {
        alarms.iter().find(|a| {
            a.kind == "CONFIG_LOAD_ALARM"
                && a.config == config
                && needles.iter().all(|n| a.message.contains(n))
        })
    };
    let plugin = find(
        "bad_plugin",
        &["no_such_processor", "processors[0]", "type"],
    );
    let field = find(
        "bad_field",
        &["processor_add_fields", "processors[0]", "Bogus"],
    );
    assert!(
        plugin.is_some() && field.is_some(),
        "no CONFIG_LOAD_ALARM naming config, plugin and field (unknown plugin: {plugin:?}, bad \
         field: {field:?}) among {alarms:#?}"
    );
    for a in [plugin, field].into_iter().flatten() {
        assert_eq!(a.level, "2", "config alarms are errors: {a:?}");
        assert!(a.count >= 1, "{a:?}");
        assert!(!a.config.ends_with("/2"), "{a:?}");
        assert_eq!(
            (a.project.as_str(), a.logstore.as_str()),
            (loong::PROJECT, format!("{}-store", a.config).as_str()),
            "the host picks the alarm's destination by its project: {a:?}"
        );
    }
    eprintln!(
        "config alarms: {:?} (project {:?}); {:?} (project {:?})",
        plugin.map(|a| &a.message),
        plugin.map(|a| &a.project),
        field.map(|a| &a.message),
        field.map(|a| &a.project),
    );
}

fn lifecycle_calls_survive_bad_arguments() {
    for (what, bad) in bad_strings() {
        // SAFETY: every non-NULL pointer is valid for its positive length.
        unsafe {
            assert_eq!(export!(UnloadPipeline)(bad), 1, "UnloadPipeline({what})");
            export!(Start)(bad);
            raw::stop(bad, 0);
            raw::stop(bad, 1);
            assert_eq!(raw::load_global_config(bad), 1, "LoadGlobalConfig({what})");
            let _ = raw::init_plugin_base_v2(bad);
            raw::ctl_cmd(bad, 1, s("{}"));
            raw::ctl_cmd(s(OK), 3, bad);
        }
        assert!(
            get_container_meta_is_null(bad),
            "GetContainerMeta({what}) not NULL"
        );
    }
    // Names never staged, started or loaded.
    assert_eq!(loong::unload_pipeline("never_staged/2"), 1);
    assert_eq!(loong::unload_pipeline("never_staged/1"), 1);
    assert_eq!(loong::unload_pipeline(""), 1);
    loong::start("never_staged/1");
    loong::start("never_staged/2");
    loong::start("");
    loong::stop("never_staged/1", false);
    loong::stop("never_staged/2", true);
    loong::stop("", true);
    // SAFETY: valid strings; odd flags.
    unsafe {
        raw::stop(s("never_staged/2"), -7);
        raw::stop(s("never_staged/2"), i64::MAX);
    }
    // As the host after a `/1` load failure: `/2` is unloaded; `/1` was never staged (the Go
    // original crashes on that second unload).
    assert_eq!(
        loong::load_pipeline(PROJECT, "pair-store", "pair/2", KEY, &good_config()),
        0
    );
    assert_eq!(
        loong::load_pipeline(PROJECT, "pair-store", "pair/1", KEY, "{"),
        1
    );
    assert_eq!(
        loong::unload_pipeline("pair/2"),
        0,
        "UnloadPipeline(staged)"
    );
    assert_eq!(loong::unload_pipeline("pair/2"), 1, "UnloadPipeline twice");
    assert_eq!(
        loong::unload_pipeline("pair/1"),
        1,
        "UnloadPipeline(failed /1)"
    );
    // Started after its unload: nothing to run.
    loong::start("pair/2");
    assert_ne!(
        loong::process_event_group("pair/2", &group_of(&["x"]), "AB"),
        0,
        "ProcessPipelineEventGroup to an unloaded config"
    );
    // Staged and never started: not running, so data for it is refused.
    assert_eq!(
        loong::load_pipeline(
            PROJECT,
            "staged-store",
            "staged_only/2",
            KEY,
            &good_config()
        ),
        0
    );
    assert_ne!(
        loong::process_event_group("staged_only/2", &group_of(&["x"]), "AB"),
        0,
        "ProcessPipelineEventGroup to a staged, never started config"
    );
    assert_eq!(loong::unload_pipeline("staged_only/2"), 0);
}

fn process_calls_reject_bad_arguments() {
    let ok = format!("{OK}/2");
    let one = group_of(&["never delivered"]);
    let pack = loong::host_pack_id(SOURCE);
    let sl = GoSlice::from_bytes;

    // Unknown config names (also the real name of a running `/2` config).
    for name in [
        "no_such_config/2",
        "no_such_config",
        OK,
        "",
        "bad_args_ok/1",
    ] {
        assert_ne!(
            loong::process_event_group(name, &one, &pack),
            0,
            "ProcessPipelineEventGroup({name:?})"
        );
    }
    // Broken protobuf, to a running config.
    for (what, bytes) in garbage() {
        assert_eq!(
            loong::process_event_group(&ok, &bytes, &pack),
            4,
            "ProcessPipelineEventGroup({what})"
        );
    }
    // Bad strings in the name and packId, bad slices.
    for (what, bad) in bad_strings() {
        let rc = process_raw(bad, sl(&one), s(&pack));
        assert_ne!(rc, 0, "ProcessPipelineEventGroup(name {what})");
        let rc = process_raw(s(&ok), sl(&one), bad);
        assert_ne!(rc, 0, "ProcessPipelineEventGroup(packId {what})");
        if what == "invalid UTF-8" {
            assert_eq!(rc, 3, "ProcessPipelineEventGroup(packId {what})");
        }
    }
    for (what, bad) in bad_slices() {
        assert_ne!(
            process_raw(s(&ok), bad, s(&pack)),
            0,
            "ProcessPipelineEventGroup(pbBytes {what})"
        );
    }
    // The v3.3.5 data exports, looked up by those hosts: unknown names, broken bytes.
    assert_ne!(base::process_log_group("no_such_config/2", b"", &pack), 0);
    assert_ne!(
        base::process_log("no_such_config/2", b"", &pack, "", b""),
        0
    );
    assert_ne!(base::process_log_group(&ok, &[0xff; 8], &pack), 0);
    assert_ne!(base::process_log(&ok, &[0xff; 8], &pack, "", b""), 0);
    for (what, bad) in bad_slices() {
        // SAFETY: as above.
        unsafe {
            assert_ne!(
                raw::process_log_group(s(&ok), bad, s("")),
                0,
                "ProcessLogGroup({what})"
            );
            assert_ne!(
                raw::process_log(s(&ok), bad, s(""), s(""), sl(b"")),
                0,
                "ProcessLog({what})"
            );
        }
    }
}

fn pulled_exports_survive_bad_arguments() {
    // GetGoMetrics: bad or unknown types are no records, never NULL.
    for (what, bad) in bad_strings() {
        assert!(metrics_raw(bad).is_empty(), "GetGoMetrics({what})");
    }
    for t in [
        "",
        "no_such_type",
        "DIRECT",
        "direct ",
        "cpp_provided\0",
        "plugin",
    ] {
        let got = metrics_raw(GoString::from_bytes(t.as_bytes()));
        assert!(got.is_empty(), "GetGoMetrics({t:?}) = {got:?}");
    }
    // The known types are well formed.
    let cpp = metrics_raw(s("cpp_provided"));
    assert_eq!(cpp.len(), 1, "{cpp:?}");
    for k in ["go_memory_used_mb", "go_routines_total"] {
        let v = cpp[0]
            .get(k)
            .unwrap_or_else(|| panic!("{k} missing: {cpp:?}"));
        assert!(v.parse::<i64>().is_ok(), "{k} = {v:?} (host stoi)");
    }
    let direct = metrics_raw(s("direct"));
    loong::parse_direct(&direct).expect("direct records the host can read");

    // GetGoAlarms again and again: never NULL (read and freed each time).
    for _ in 0..200 {
        let _ = loong::get_go_alarms();
    }

    // Containers: never NULL, the empty answers.
    for _ in 0..50 {
        assert_eq!(
            loong::get_containers(true).as_deref(),
            Some(r#"{"All":[]}"#),
            "GetAllContainers"
        );
        assert_eq!(
            loong::get_containers(false).as_deref(),
            Some(""),
            "GetDiffContainers"
        );
    }
    for id in ["", "no-such-container", "0123456789abcdef"] {
        assert!(
            get_container_meta_is_null(s(id)),
            "GetContainerMeta({id:?})"
        );
    }

    // The self-monitoring protobufs (HEAD exports).
    // SAFETY: NULL is documented as fine.
    unsafe { export!(FreeSelfMonitorPB)(std::ptr::null_mut()) };
    let pb_of = |t: GoString| {
        // SAFETY: `t` is valid for its positive length (or deliberately bad).
        unsafe { export!(GetGoSelfMonitorMetricsPB)(t) }
    };
    for (what, bad) in bad_strings() {
        let b = pb_of(bad);
        assert!(
            b.data.is_null() && b.size == 0,
            "GetGoSelfMonitorMetricsPB({what}) = {{{:?}, {}}}",
            b.data,
            b.size
        );
    }
    for t in ["", "no_such_type", "DIRECT"] {
        let b = pb_of(s(t));
        assert!(
            b.data.is_null() && b.size == 0,
            "GetGoSelfMonitorMetricsPB({t:?}) = {{{:?}, {}}}",
            b.data,
            b.size
        );
    }
    for t in ["direct", "cpp_provided"] {
        let b = pb_of(s(t));
        assert!(
            !b.data.is_null() && b.size > 0,
            "GetGoSelfMonitorMetricsPB({t:?}) is empty"
        );
        // SAFETY: `size` bytes at `data`, released once with FreeSelfMonitorPB.
        let bytes = unsafe { std::slice::from_raw_parts(b.data.cast::<u8>(), b.size) };
        let g = PipelineEventGroup::decode(bytes)
            .unwrap_or_else(|e| panic!("GetGoSelfMonitorMetricsPB({t:?}) does not decode: {e}"));
        assert!(
            g.metrics.is_some_and(|m| !m.events.is_empty()),
            "GetGoSelfMonitorMetricsPB({t:?}) has no metric event"
        );
        // SAFETY: as above.
        unsafe { export!(FreeSelfMonitorPB)(b.data) };
    }
    for _ in 0..20 {
        // SAFETY: no arguments; released with FreeSelfMonitorPB.
        let b = unsafe { export!(GetGoSelfMonitorAlarmsPB)() };
        assert_eq!(
            b.data.is_null(),
            b.size == 0,
            "{{{:?}, {}}}",
            b.data,
            b.size
        );
        // SAFETY: as above (NULL is fine).
        unsafe { export!(FreeSelfMonitorPB)(b.data) };
    }
}

/// Loads and starts `name`, feeds it `contents`, and waits until exactly those arrive.
fn delivers(name: &str, contents: &[&str]) {
    let name2 = format!("{name}/2");
    assert_eq!(
        loong::load_pipeline(
            PROJECT,
            &format!("{name}-store"),
            &name2,
            KEY,
            &good_config()
        ),
        0,
        "LoadPipeline({name2})"
    );
    loong::start(&name2);
    assert_eq!(
        loong::process_event_group(&name2, &group_of(contents), &loong::host_pack_id(SOURCE)),
        0,
        "ProcessPipelineEventGroup({name2})"
    );
    let n = contents.len();
    assert!(
        wait_until(Duration::from_secs(20), || store::log_count(name) >= n),
        "{name}: {} of {n} logs arrived; {}",
        store::log_count(name),
        store::counters_summary()
    );
    let got = wait_stable(Duration::from_millis(500), Duration::from_secs(5), || {
        store::log_count(name)
    });
    assert_eq!(got, n, "{name}: {}", store::counters_summary());
    let mut seen: Vec<String> = store::logs_for(name)
        .into_iter()
        .map(|(l, _)| {
            assert_eq!(
                l.get("env"),
                Some("test"),
                "processor_add_fields ran: {l:?}"
            );
            l.get("content").unwrap_or("").to_string()
        })
        .collect();
    seen.sort();
    let mut want: Vec<String> = contents.iter().map(|c| c.to_string()).collect();
    want.sort();
    assert_eq!(seen, want, "{name}");
}

fn bounded(what: &str, f: impl FnOnce() + Send + 'static) -> Duration {
    let took =
        loong::timed(GIVE_UP, f).unwrap_or_else(|| panic!("{what} did not return in {GIVE_UP:?}"));
    assert!(took < HOLD_ON_TOO_SLOW, "{what} took {took:?}");
    took
}

#[test]
fn bad_arguments_are_rejected_and_the_process_survives() {
    let sess = LoongSession::start("loong-bad-args");
    // The host pulls alarms (every 3 s): from now on they are not sent through SendPb.
    let _ = loong::get_go_alarms();

    load_pipeline_rejects_bad_arguments();
    load_alarmed_configs();
    check_config_alarms();
    // A running config for the data calls.
    let ok = format!("{OK}/2");
    assert_eq!(sess.load(&ok, KEY, &good_config()), 0, "LoadPipeline({ok})");
    loong::start(&ok);
    lifecycle_calls_survive_bad_arguments();
    process_calls_reject_bad_arguments();
    pulled_exports_survive_bad_arguments();

    // After all that, the running config delivers exactly what it is fed, and a new one
    // loads, starts and delivers.
    delivers(OK, &["good-1", "good-2", "good-3"]);
    delivers(LATE, &["late-1", "late-2"]);
    assert_eq!(store::get(&COUNTERS.decode_errors), 0);
    assert_eq!(store::get(&COUNTERS.bad_send_args), 0);
    let seen = store::configs_seen();
    assert_eq!(
        seen,
        vec![(LATE.to_string(), 2), (OK.to_string(), 3)],
        "only the good data arrived, under the real names"
    );

    // The exit sequence twice (a host bug, or two exits): every call returns in bounded time,
    // and the host's last pulls still work.
    let mut took = Vec::new();
    for round in 0..2 {
        took.push(bounded(&format!("StopAllPipelines(1) #{round}"), || {
            loong::stop_all(true)
        }));
        took.push(bounded(&format!("StopAllPipelines(0) #{round}"), || {
            loong::stop_all(false)
        }));
        let _ = metrics_raw(s("cpp_provided"));
        loong::parse_direct(&metrics_raw(s("direct"))).expect("direct after exit");
        let _ = loong::get_go_alarms();
        took.push(bounded(&format!("StopBuiltInModules #{round}"), || {
            loong::stop_builtin_modules()
        }));
        assert_eq!(loong::get_containers(false).as_deref(), Some(""));
    }
    // SAFETY: odd flags.
    unsafe {
        export!(StopAllPipelines)(-1);
        export!(StopAllPipelines)(i64::MIN);
    }
    eprintln!("exit sequence twice: {took:?}");
    assert_eq!(store::configs_seen(), seen, "nothing arrived twice");
    sess.close();
}
