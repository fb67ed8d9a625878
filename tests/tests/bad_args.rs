//! Ensures every base export rejects bad arguments with its error code and the process
//! survives: NULL with a length, negative lengths, invalid UTF-8, broken JSON, broken
//! protobuf, unknown config names, LoadConfig while running.

use std::ffi::c_void;
use std::time::Duration;

use e2e_tests::base::{self, check_config_raw, get_container_meta_is_null, raw};
use e2e_tests::ffi::{GoSlice, GoString};
use e2e_tests::proto::{log, now_secs, LogGroup};
use e2e_tests::session::{add_fields, PROJECT};
use e2e_tests::store;
use e2e_tests::util::wait_stable;
use e2e_tests::{pipeline, wait_until, Session};
use prost::Message;
use serde_json::json;

const OK: &str = "bad_args_ok";
const BAD_UTF8: &[u8] = b"bad\xff\xfename";

fn null_str() -> GoString {
    GoString::null(5)
}

fn negative_str() -> GoString {
    GoString::raw(c"abc".as_ptr(), -1)
}

fn s(v: &str) -> GoString {
    GoString::new(v)
}

fn bad_strings() -> Vec<(&'static str, GoString)> {
    vec![
        ("NULL with n=5", null_str()),
        ("NULL with n=i64::MAX", GoString::null(i64::MAX)),
        ("negative length", negative_str()),
        ("invalid UTF-8", GoString::from_bytes(BAD_UTF8)),
    ]
}

fn bad_slices() -> Vec<(&'static str, GoSlice)> {
    vec![
        ("NULL data with len=16", GoSlice::null(16)),
        (
            "negative length",
            GoSlice::raw(b"abc".as_ptr() as *mut c_void, -1, -1),
        ),
    ]
}

fn load_raw(project: GoString, logstore: GoString, name: GoString, json: GoString) -> i64 {
    // SAFETY: every non-NULL pointer is valid for its positive length.
    unsafe { raw::load_config(project, logstore, name, 77, json) }
}

fn good_config() -> String {
    pipeline(vec![], vec![add_fields(json!({"env": "test"}))])
}

fn load_config_rejects_bad_arguments() {
    let good = good_config();
    for (what, bad) in bad_strings() {
        let cases = [
            ("project", load_raw(bad, s("ls"), s("bad_args_x"), s(&good))),
            (
                "logstore",
                load_raw(s(PROJECT), bad, s("bad_args_x"), s(&good)),
            ),
            ("configName", load_raw(s(PROJECT), s("ls"), bad, s(&good))),
            ("json", load_raw(s(PROJECT), s("ls"), s("bad_args_x"), bad)),
        ];
        for (arg, rc) in cases {
            assert_eq!(rc, 1, "LoadConfig with {arg} = {what} returned {rc}");
        }
    }
    let broken = [
        "{",
        "[]",
        "42",
        "null",
        r#"{"inputs": 5}"#,
        r#"{"inputs": [{"detail": {}}]}"#,
        r#"{"inputs": [{"type": "service_mock", "detail": {"MaxLogCount": "x"}}]}"#,
        r#"{"processors": [{"type": "no_such_processor", "detail": {}}]}"#,
        r#"{"processors": [{"type": "processor_add_fields", "detail": {"Fields": {"a": "b"}, "Bogus": 1}}]}"#,
    ];
    for j in broken {
        assert_eq!(
            base::load_config(PROJECT, "ls", "bad_args_broken", 77, j),
            1,
            "LoadConfig accepted {j}"
        );
    }
}

fn small_calls_reject_bad_arguments() {
    for (what, bad) in bad_strings() {
        // SAFETY: every non-NULL pointer is valid for its positive length.
        unsafe {
            assert_eq!(raw::load_global_config(bad), 1, "LoadGlobalConfig({what})");
            assert_ne!(
                raw::unload_config(bad, s("ls"), s("no_such_config")),
                0,
                "UnloadConfig(project {what})"
            );
            assert_ne!(
                raw::unload_config(s(PROJECT), bad, s("no_such_config")),
                0,
                "UnloadConfig(logstore {what})"
            );
            assert_ne!(
                raw::unload_config(s(PROJECT), s("ls"), bad),
                0,
                "UnloadConfig(name {what})"
            );
            raw::ctl_cmd(bad, 1, s("{}"));
            raw::ctl_cmd(s(OK), 3, bad);
            raw::stop(bad, 0);
            let _ = raw::init_plugin_base_v2(bad);
        }
        assert!(
            get_container_meta_is_null(bad),
            "GetContainerMeta({what}) not NULL"
        );
        // SAFETY: as above.
        let msg = unsafe { check_config_raw(s("bad_args_check"), bad) };
        assert!(msg.is_some(), "CheckConfig(json = {what}) returned NULL");
        // SAFETY: as above.
        let msg = unsafe { check_config_raw(bad, s(&good_config())) };
        assert!(msg.is_some(), "CheckConfig(name = {what}) returned NULL");
    }
    // SAFETY: plain call with valid strings.
    unsafe { raw::ctl_cmd(s("no_such_config"), 99, s("garbage")) };
    base::stop("no_such_config", 1);
    assert_eq!(base::load_global_config("{"), 1, "LoadGlobalConfig(\"{{\")");
    for id in ["", "no-such-container", "0123456789abcdef"] {
        assert!(
            get_container_meta_is_null(s(id)),
            "GetContainerMeta({id:?}) not NULL"
        );
    }
    let msg = base::check_config("bad_args_check", "{").expect("CheckConfig(\"{\") returned NULL");
    assert!(
        msg.contains("bad_args_check"),
        "message does not name the config: {msg}"
    );
    let unknown = pipeline(vec![json!({"type": "no_such_input", "detail": {}})], vec![]);
    let msg =
        base::check_config("bad_args_check", &unknown).expect("CheckConfig(unknown plugin) NULL");
    assert!(
        msg.contains("bad_args_check") && msg.contains("no_such_input"),
        "message does not name config and plugin: {msg}"
    );
    assert_eq!(
        base::check_config("bad_args_check", &good_config()),
        None,
        "good config"
    );
}

fn process_calls_reject_bad_arguments() {
    let t = now_secs();
    let one_log = log(t, &[("msg", "x")]).encode_to_vec();
    let group = LogGroup {
        logs: vec![log(t, &[("msg", "g")])],
        ..Default::default()
    }
    .encode_to_vec();
    let garbage: Vec<(&str, &[u8])> = vec![
        ("0xff bytes", &[0xff; 16]),
        ("truncated varint", &[0x08, 0x80]),
        ("truncated length-delimited", &[0x12, 0x10, 0x0a]),
        ("wire type 7", &[0x0f, 0x01]),
    ];
    let (nolog, nogroup) = (&one_log[..], &group[..]);
    let sl = GoSlice::from_bytes;

    // Unknown config names.
    assert_ne!(
        base::process_log("no_such_config", nolog, "", "", b""),
        0,
        "ProcessLog(unknown)"
    );
    assert_ne!(
        base::process_log_group("no_such_config", nogroup, ""),
        0,
        "ProcessLogGroup(unknown)"
    );
    assert_ne!(
        base::process_raw_log("no_such_config", b"line", "", ""),
        0,
        "ProcessRawLog(unknown)"
    );
    assert_ne!(
        base::process_raw_log_v2("no_such_config", b"line", "", "", b""),
        0,
        "ProcessRawLogV2(unknown)"
    );

    // Well-formed protobuf missing proto2 `required` fields: code 4, as for broken bytes.
    let no_time = [0x12, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v'];
    let no_value = [0x08, 0x05, 0x12, 0x03, 0x0a, 0x01, b'k'];
    for (what, log_bytes) in [
        ("a Log without Time", &no_time[..]),
        ("a Content without Value", &no_value[..]),
    ] {
        assert_eq!(
            base::process_log(OK, log_bytes, "", "", b""),
            4,
            "ProcessLog({what})"
        );
        let mut group = vec![0x0a, log_bytes.len() as u8];
        group.extend_from_slice(log_bytes);
        assert_eq!(
            base::process_log_group(OK, &group, ""),
            4,
            "ProcessLogGroup({what})"
        );
    }

    // Broken protobuf.
    for (what, bytes) in &garbage {
        assert_ne!(
            base::process_log(OK, bytes, "", "", b""),
            0,
            "ProcessLog({what})"
        );
        assert_ne!(
            base::process_log_group(OK, bytes, ""),
            0,
            "ProcessLogGroup({what})"
        );
    }

    // Bad strings in every string position.
    for (what, bad) in bad_strings() {
        // SAFETY: every non-NULL pointer is valid for its positive length.
        unsafe {
            assert_ne!(
                raw::process_log(bad, sl(nolog), s(""), s(""), sl(b"")),
                0,
                "ProcessLog(name {what})"
            );
            assert_ne!(
                raw::process_log_group(bad, sl(nogroup), s("")),
                0,
                "ProcessLogGroup(name {what})"
            );
            assert_ne!(
                raw::process_raw_log(bad, sl(b"l"), s(""), s("")),
                0,
                "ProcessRawLog(name {what})"
            );
            assert_ne!(
                raw::process_raw_log_v2(bad, sl(b"l"), s(""), s(""), sl(b"")),
                0,
                "ProcessRawLogV2(name {what})"
            );
            // packId and topic are text: invalid UTF-8 is code 3, like the config name.
            if what == "invalid UTF-8" {
                assert_eq!(raw::process_log(s(OK), sl(nolog), bad, s(""), sl(b"")), 3);
                assert_eq!(raw::process_log(s(OK), sl(nolog), s(""), bad, sl(b"")), 3);
                assert_eq!(raw::process_log_group(s(OK), sl(nogroup), bad), 3);
                assert_eq!(raw::process_raw_log(s(OK), sl(b"l"), bad, s("")), 3);
                assert_eq!(raw::process_raw_log(s(OK), sl(b"l"), s(""), bad), 3);
                assert_eq!(
                    raw::process_raw_log_v2(s(OK), sl(b"l"), s(""), bad, sl(b"")),
                    3
                );
            }
            assert_ne!(
                raw::process_log(s(OK), sl(nolog), bad, s(""), sl(b"")),
                0,
                "ProcessLog(packId {what})"
            );
            assert_ne!(
                raw::process_log(s(OK), sl(nolog), s(""), bad, sl(b"")),
                0,
                "ProcessLog(topic {what})"
            );
            assert_ne!(
                raw::process_log_group(s(OK), sl(nogroup), bad),
                0,
                "ProcessLogGroup(packId {what})"
            );
            assert_ne!(
                raw::process_raw_log(s(OK), sl(b"l"), bad, s("")),
                0,
                "ProcessRawLog(packId {what})"
            );
            assert_ne!(
                raw::process_raw_log(s(OK), sl(b"l"), s(""), bad),
                0,
                "ProcessRawLog(topic {what})"
            );
            assert_ne!(
                raw::process_raw_log_v2(s(OK), sl(b"l"), bad, s(""), sl(b"")),
                0,
                "ProcessRawLogV2(packId {what})"
            );
        }
    }

    // Bad slices in every slice position.
    for (what, bad) in bad_slices() {
        // SAFETY: every non-NULL pointer is valid for its positive length.
        unsafe {
            assert_ne!(
                raw::process_log(s(OK), bad, s(""), s(""), sl(b"")),
                0,
                "ProcessLog(log {what})"
            );
            assert_ne!(
                raw::process_log(s(OK), sl(nolog), s(""), s(""), bad),
                0,
                "ProcessLog(tags {what})"
            );
            assert_ne!(
                raw::process_log_group(s(OK), bad, s("")),
                0,
                "ProcessLogGroup({what})"
            );
            assert_ne!(
                raw::process_raw_log(s(OK), bad, s(""), s("")),
                0,
                "ProcessRawLog({what})"
            );
            assert_ne!(
                raw::process_raw_log_v2(s(OK), bad, s(""), s(""), sl(b"")),
                0,
                "ProcessRawLogV2(raw {what})"
            );
            assert_ne!(
                raw::process_raw_log_v2(s(OK), sl(b"l"), s(""), s(""), bad),
                0,
                "ProcessRawLogV2(tags {what})"
            );
        }
    }
}

#[test]
fn bad_arguments_are_rejected_and_the_process_survives() {
    let sess = Session::start("bad-args");
    load_config_rejects_bad_arguments();
    assert_eq!(
        sess.load(OK, &good_config()),
        0,
        "LoadConfig({OK}) after the bad ones"
    );
    small_calls_reject_bad_arguments();
    base::resume();

    assert_eq!(
        sess.load("bad_args_while_running", &good_config()),
        1,
        "LoadConfig while running must return 1"
    );
    process_calls_reject_bad_arguments();

    // The good config still works, and none of the bad calls delivered anything.
    let t = now_secs();
    assert_eq!(
        base::process_log(OK, &log(t, &[("msg", "good")]).encode_to_vec(), "", "", b""),
        0
    );
    let group = LogGroup {
        logs: vec![log(t, &[("msg", "good-1")]), log(t, &[("msg", "good-2")])],
        ..Default::default()
    };
    assert_eq!(base::process_log_group(OK, &group.encode_to_vec(), ""), 0);
    assert!(
        wait_until(Duration::from_secs(30), || store::log_count(OK) >= 3),
        "good logs not delivered: {}",
        store::counters_summary()
    );
    let n = wait_stable(Duration::from_secs(1), Duration::from_secs(10), || {
        store::log_count(OK)
    });
    assert_eq!(n, 3, "{}", store::counters_summary());
    let msgs: Vec<_> = store::logs_for(OK)
        .into_iter()
        .filter_map(|(l, _)| l.get("msg").map(str::to_owned))
        .collect();
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    for m in ["good", "good-1", "good-2"] {
        assert!(msgs.iter().any(|x| x == m), "missing {m}: {msgs:?}");
    }
    sess.exit(Duration::from_secs(30));
}
