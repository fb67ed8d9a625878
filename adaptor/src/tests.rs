//! Unit tests: fake host callbacks registered through the real exports.

use std::ffi::{c_char, c_int, c_longlong};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::panic::ffi_boundary;
use crate::*;

/// The callback table is process-wide: tests that register take this lock first.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// # Safety
/// `ptr` must be valid for `len` bytes (or `len == 0`).
unsafe fn text<'a>(ptr: *const c_char, len: c_int) -> &'a str {
    if len == 0 {
        return "";
    }
    // SAFETY: the caller vouches for the pointer and length.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len as usize) };
    std::str::from_utf8(bytes).unwrap()
}

unsafe extern "C" fn fake_is_valid(key: c_longlong) -> c_int {
    if key == -1 {
        0
    } else {
        (key % 100) as c_int
    }
}

/// Returns `100 + lines` after checking the arguments the tests pass.
unsafe extern "C" fn fake_send(
    config: *const c_char,
    config_len: c_int,
    logstore: *const c_char,
    logstore_len: c_int,
    pb: *mut c_char,
    pb_len: c_int,
    lines: c_int,
) -> c_int {
    // SAFETY: the tests pass valid buffers.
    let ok = unsafe {
        text(config, config_len) == "cfg"
            && text(logstore, logstore_len) == "store"
            && text(pb, pb_len) == "pb-bytes"
    };
    if ok {
        100 + lines
    } else {
        -99
    }
}

/// Returns `200 + lines + shard hash length` after checking the arguments.
unsafe extern "C" fn fake_send_v2(
    config: *const c_char,
    config_len: c_int,
    logstore: *const c_char,
    logstore_len: c_int,
    pb: *mut c_char,
    pb_len: c_int,
    lines: c_int,
    hash: *const c_char,
    hash_len: c_int,
) -> c_int {
    // SAFETY: the tests pass valid buffers.
    let ok = unsafe { fake_send(config, config_len, logstore, logstore_len, pb, pb_len, 0) == 100 }
        // SAFETY: as above.
        && unsafe { text(hash, hash_len) }.len() == hash_len as usize;
    if ok {
        200 + lines + hash_len
    } else {
        -98
    }
}

/// Another V1 send, told apart from `fake_send` by its result.
unsafe extern "C" fn other_send(
    _: *const c_char,
    _: c_int,
    _: *const c_char,
    _: c_int,
    _: *mut c_char,
    _: c_int,
    _: c_int,
) -> c_int {
    -2
}

unsafe extern "C" fn fake_cmd(
    config: *const c_char,
    config_len: c_int,
    opt: c_int,
    params: *const c_char,
    params_len: c_int,
) -> c_int {
    // SAFETY: the tests pass valid buffers.
    let ok = unsafe { text(config, config_len) == "cfg" && text(params, params_len) == "{}" };
    if ok {
        300 + opt
    } else {
        -97
    }
}

fn send_v1(lines: c_int) -> c_int {
    let mut pb = *b"pb-bytes";
    // SAFETY: every buffer is valid for its length.
    unsafe {
        LogtailSendPb(
            c"cfg".as_ptr(),
            3,
            c"store".as_ptr(),
            5,
            pb.as_mut_ptr().cast(),
            pb.len() as c_int,
            lines,
        )
    }
}

fn send_v2(lines: c_int, hash: &str) -> c_int {
    let mut pb = *b"pb-bytes";
    // SAFETY: every buffer is valid for its length.
    unsafe {
        LogtailSendPbV2(
            c"cfg".as_ptr(),
            3,
            c"store".as_ptr(),
            5,
            pb.as_mut_ptr().cast(),
            pb.len() as c_int,
            lines,
            hash.as_ptr().cast(),
            hash.len() as c_int,
        )
    }
}

fn ctl_cmd(opt: c_int) -> c_int {
    // SAFETY: both buffers are valid for their lengths.
    unsafe { LogtailCtlCmd(c"cfg".as_ptr(), 3, opt, c"{}".as_ptr(), 2) }
}

fn register_all() {
    PluginAdapterTrustCtlCmd(1);
    RegisterLogtailCallBackV2(
        Some(fake_is_valid),
        Some(fake_send),
        Some(fake_send_v2),
        Some(fake_cmd),
    );
}

#[test]
fn version_is_300() {
    assert_eq!(PluginAdapterVersion(), 300);
}

#[test]
fn every_call_returns_minus_one_without_callbacks() {
    let _serial = serial();
    RegisterLogtailCallBackV2(None, None, None, None);
    assert_eq!(LogtailIsValidToSend(-1), -1);
    assert_eq!(send_v1(3), -1);
    assert_eq!(send_v2(3, "abc"), -1);
    assert_eq!(ctl_cmd(1), -1);

    RegisterLogtailCallBack(None, None, None);
    assert_eq!(LogtailIsValidToSend(5), -1);
    assert_eq!(send_v2(3, ""), -1);
}

#[test]
fn calls_are_forwarded_with_their_arguments() {
    let _serial = serial();
    register_all();
    assert_eq!(LogtailIsValidToSend(-1), 0);
    assert_eq!(LogtailIsValidToSend(42), 42);
    assert_eq!(send_v1(7), 107);
    assert_eq!(send_v2(7, "abcd"), 211);
    assert_eq!(send_v2(7, ""), 207);
    assert_eq!(ctl_cmd(4), 304);
}

#[test]
fn each_missing_callback_returns_minus_one_on_its_own() {
    let _serial = serial();
    PluginAdapterTrustCtlCmd(1);
    RegisterLogtailCallBackV2(None, Some(fake_send), None, Some(fake_cmd));
    assert_eq!(LogtailIsValidToSend(1), -1);
    assert_eq!(send_v1(1), 101);
    assert_eq!(ctl_cmd(2), 302);

    RegisterLogtailCallBackV2(Some(fake_is_valid), None, Some(fake_send_v2), None);
    assert_eq!(LogtailIsValidToSend(1), 1);
    assert_eq!(send_v1(1), -1);
    assert_eq!(send_v2(1, "h"), 202);
    assert_eq!(ctl_cmd(2), -1);
}

/// A 3.2+ host registers one argument fewer: what arrives as the command callback is a
/// register's leftover. Until the base says the host passes one, it is never called.
#[test]
fn an_untrusted_command_callback_is_never_called() {
    let _serial = serial();
    // SAFETY: never called (that is the point); a made-up address, as a garbage register.
    let garbage: PluginCtlCmdFun = unsafe { std::mem::transmute::<usize, PluginCtlCmdFun>(0x10) };
    PluginAdapterTrustCtlCmd(0);
    RegisterLogtailCallBackV2(
        Some(fake_is_valid),
        Some(fake_send),
        Some(fake_send_v2),
        garbage,
    );
    assert_eq!(ctl_cmd(1), -1);
    assert_eq!(send_v2(1, "h"), 202, "the other callbacks work");
    RegisterLogtailCallBack(Some(fake_is_valid), Some(fake_send), garbage);
    assert_eq!(ctl_cmd(1), -1);
    PluginAdapterTrustCtlCmd(1);
    RegisterLogtailCallBack(Some(fake_is_valid), Some(fake_send), Some(fake_cmd));
    assert_eq!(
        ctl_cmd(3),
        303,
        "a 1.x host's callback is called once trusted"
    );
    PluginAdapterTrustCtlCmd(0);
}

#[test]
fn send_v2_falls_back_to_v1_send() {
    let _serial = serial();
    RegisterLogtailCallBackV2(None, Some(fake_send), None, None);
    assert_eq!(send_v2(5, "dropped-hash"), 105);

    RegisterLogtailCallBack(None, Some(fake_send), None);
    assert_eq!(send_v2(6, "x"), 106);
}

#[test]
fn v1_registration_replaces_an_earlier_v2_send() {
    let _serial = serial();
    register_all();
    assert_eq!(send_v2(1, "ab"), 203);
    RegisterLogtailCallBack(Some(fake_is_valid), Some(other_send), Some(fake_cmd));
    assert_eq!(send_v2(1, "ab"), -2);
    assert_eq!(send_v1(1), -2);
}

static REENTERED: AtomicBool = AtomicBool::new(false);

/// A host callback that re-registers from inside the call, as a host may.
unsafe extern "C" fn reregistering_send(
    _: *const c_char,
    _: c_int,
    _: *const c_char,
    _: c_int,
    _: *mut c_char,
    _: c_int,
    _: c_int,
) -> c_int {
    register_all();
    REENTERED.store(true, Ordering::SeqCst);
    // Calling back into the adaptor from inside a callback must not deadlock either.
    LogtailIsValidToSend(7)
}

#[test]
fn a_callback_may_re_register_and_call_back_in() {
    let _serial = serial();
    RegisterLogtailCallBack(Some(fake_is_valid), Some(reregistering_send), None);
    assert_eq!(send_v1(1), 7);
    assert!(REENTERED.load(Ordering::SeqCst));
    assert_eq!(
        send_v1(1),
        101,
        "the set registered inside the callback is in force"
    );
}

#[test]
fn re_registration_from_threads_while_sending() {
    let _serial = serial();
    let stop = AtomicBool::new(false);
    let registrations = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                // Bounded, and ends early once the sender is done.
                for round in 0..200_000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match round % 3 {
                        0 => register_all(),
                        1 => RegisterLogtailCallBack(None, Some(other_send), None),
                        _ => RegisterLogtailCallBackV2(None, None, None, None),
                    }
                    registrations.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        scope.spawn(|| {
            for _ in 0..5_000 {
                let v2 = send_v2(3, "hh");
                assert!(matches!(v2, 205 | -2 | -1), "unexpected V2 result {v2}");
                let v1 = send_v1(3);
                assert!(matches!(v1, 103 | -2 | -1), "unexpected V1 result {v1}");
                assert!(matches!(LogtailIsValidToSend(9), 9 | -1));
            }
            // On a loaded machine the registering threads may not have run yet.
            let t = std::time::Instant::now();
            while registrations.load(Ordering::SeqCst) == 0 && t.elapsed().as_secs() < 10 {
                std::thread::yield_now();
            }
            stop.store(true, Ordering::SeqCst);
        });
    });
    assert!(registrations.load(Ordering::SeqCst) > 0);
}

#[test]
fn a_panic_becomes_the_error_value() {
    let result = ffi_boundary(-1, || -> c_int { panic!("boom (expected by this test)") });
    assert_eq!(result, -1);
    assert_eq!(ffi_boundary(-1, || 5), 5);
}
