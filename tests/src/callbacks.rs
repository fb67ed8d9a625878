//! The host callbacks registered with the adaptor, and the send policy that decides
//! their answers.
//!
//! Every callback body runs under `catch_unwind`: a bug here must not abort the process
//! from inside a base thread.

use std::collections::HashSet;
use std::ffi::{c_char, c_int, c_longlong};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prost::Message;

use crate::proto::LogGroup;
use crate::store::{self, ReceivedCtlCmd, ReceivedGroup, ReceivedLog, COUNTERS};

/// How the host answers `SendPb` / `IsValidToSend`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SendPolicy {
    /// Answer -1 to every send.
    pub reject_all: bool,
    /// Answer -1 to the next N sends, then accept.
    pub reject_next: u64,
    /// Answer -1 with this probability (0.0..=1.0).
    pub reject_probability: f64,
    /// Sleep this long inside each send before answering (a host whose queue is full).
    pub delay_ms: u64,
    /// `IsValidToSend` answers -1 (queue full) instead of 0.
    pub invalid_to_send: bool,
}

impl SendPolicy {
    /// Accept everything immediately.
    pub fn accept() -> Self {
        Self::default()
    }

    /// Reject every send with -1.
    pub fn reject_all() -> Self {
        SendPolicy {
            reject_all: true,
            ..Self::default()
        }
    }

    /// Reject the next `n` sends, then accept.
    pub fn reject_next(n: u64) -> Self {
        SendPolicy {
            reject_next: n,
            ..Self::default()
        }
    }

    /// Reject each send with probability `p`.
    pub fn reject_with_probability(p: f64) -> Self {
        SendPolicy {
            reject_probability: p,
            ..Self::default()
        }
    }

    /// Accept, after blocking `ms` milliseconds in each send.
    pub fn delay(ms: u64) -> Self {
        SendPolicy {
            delay_ms: ms,
            ..Self::default()
        }
    }
}

static POLICY: Mutex<SendPolicy> = Mutex::new(SendPolicy {
    reject_all: false,
    reject_next: 0,
    reject_probability: 0.0,
    delay_ms: 0,
    invalid_to_send: false,
});

/// While set, every send blocks inside the callback (a host whose queue is full).
static STALL_ALL: AtomicBool = AtomicBool::new(false);
/// Config names whose sends block while listed.
static STALLED_CONFIGS: Mutex<Option<HashSet<String>>> = Mutex::new(None);
/// Logstore keys for which `IsValidToSend` answers -1.
static INVALID_KEYS: Mutex<Option<HashSet<i64>>> = Mutex::new(None);
/// When set, `SendPb` answers -2 ("can not find config") for any other config name, as the
/// iLogtail 2.x core does for names it has no pipeline for.
static KNOWN_CONFIGS: Mutex<Option<HashSet<String>>> = Mutex::new(None);
/// Sends blocked in the callback right now.
static BLOCKED_NOW: AtomicU64 = AtomicU64::new(0);
/// Longest a stalled send blocks (a safety net so a failed test cannot hang forever).
const MAX_STALL: Duration = Duration::from_secs(300);

/// Makes every send block inside the callback until called again with `false`.
pub fn stall_all_sends(on: bool) {
    STALL_ALL.store(on, Ordering::SeqCst);
}

/// Makes the sends of `config` block inside the callback (`true`) or answer again (`false`).
pub fn stall_config(config: &str, on: bool) {
    let mut g = STALLED_CONFIGS.lock().unwrap_or_else(|e| e.into_inner());
    let set = g.get_or_insert_with(HashSet::new);
    if on {
        set.insert(config.to_string());
    } else {
        set.remove(config);
    }
}

/// Makes `IsValidToSend(key)` answer -1 (`true`) or 0 (`false`).
pub fn set_key_invalid(key: i64, invalid: bool) {
    let mut g = INVALID_KEYS.lock().unwrap_or_else(|e| e.into_inner());
    let set = g.get_or_insert_with(HashSet::new);
    if invalid {
        set.insert(key);
    } else {
        set.remove(&key);
    }
}

/// Answer -2 to sends for config names not in `names` (`None`: accept any name).
pub fn set_known_configs(names: Option<&[&str]>) {
    *KNOWN_CONFIGS.lock().unwrap_or_else(|e| e.into_inner()) =
        names.map(|n| n.iter().map(|s| s.to_string()).collect());
}

/// Number of sends blocked inside the callback right now.
pub fn sends_blocked_now() -> u64 {
    BLOCKED_NOW.load(Ordering::SeqCst)
}

fn stalled(config: &str) -> bool {
    STALL_ALL.load(Ordering::SeqCst)
        || STALLED_CONFIGS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|s| s.contains(config))
}

/// Blocks while sends of `config` are stalled (at most [`MAX_STALL`]).
fn wait_while_stalled(config: &str) {
    if !stalled(config) {
        return;
    }
    BLOCKED_NOW.fetch_add(1, Ordering::SeqCst);
    let start = Instant::now();
    while stalled(config) && start.elapsed() < MAX_STALL {
        std::thread::sleep(Duration::from_millis(2));
    }
    BLOCKED_NOW.fetch_sub(1, Ordering::SeqCst);
}

static RNG: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);

/// Replaces the send policy (takes effect on the next callback).
pub fn set_send_policy(p: SendPolicy) {
    *POLICY.lock().unwrap_or_else(|e| e.into_inner()) = p;
}

/// The current send policy.
pub fn send_policy() -> SendPolicy {
    *POLICY.lock().unwrap_or_else(|e| e.into_inner())
}

fn random_unit() -> f64 {
    // xorshift64*, good enough for a coin flip.
    let mut x = RNG.load(Ordering::Relaxed);
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    RNG.store(x, Ordering::Relaxed);
    (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

/// Decides accept (false) / reject (true) and the delay, consuming `reject_next`.
fn decide() -> (bool, u64) {
    let mut p = POLICY.lock().unwrap_or_else(|e| e.into_inner());
    let reject = if p.reject_all {
        true
    } else if p.reject_next > 0 {
        p.reject_next -= 1;
        true
    } else {
        p.reject_probability > 0.0 && random_unit() < p.reject_probability
    };
    (reject, p.delay_ms)
}

/// Copies `len` bytes at `p` (lossy UTF-8); `None` for NULL with `len > 0` or `len < 0`.
///
/// # Safety
/// A non-NULL `p` must be valid for `len` bytes.
unsafe fn text(p: *const c_char, len: c_int) -> Option<String> {
    // SAFETY: forwarded to `bytes`.
    unsafe { bytes(p, len) }.map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// # Safety
/// A non-NULL `p` must be valid for `len` bytes.
unsafe fn bytes(p: *const c_char, len: c_int) -> Option<Vec<u8>> {
    if len < 0 || (p.is_null() && len > 0) {
        return None;
    }
    if len == 0 {
        return Some(Vec::new());
    }
    // SAFETY: non-NULL and valid for `len` bytes per the adaptor ABI.
    Some(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len as usize) }.to_vec())
}

fn guarded(f: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        COUNTERS.callback_panics.fetch_add(1, Ordering::SeqCst);
        -1
    })
}

/// `IsValidToSend(logstoreKey)`: 0 unless the policy says the queue is full.
pub(crate) unsafe extern "C" fn is_valid_to_send(key: c_longlong) -> c_int {
    guarded(|| {
        COUNTERS.is_valid_calls.fetch_add(1, Ordering::SeqCst);
        let key_invalid = INVALID_KEYS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|s| s.contains(&key));
        if send_policy().invalid_to_send || key_invalid {
            -1
        } else {
            0
        }
    })
}

/// `SendPb(...)`.
pub(crate) unsafe extern "C" fn send_pb(
    config: *const c_char,
    config_len: c_int,
    logstore: *const c_char,
    logstore_len: c_int,
    pb: *mut c_char,
    pb_len: c_int,
    lines: c_int,
) -> c_int {
    COUNTERS.send_pb_calls.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the base passes pointers valid for their lengths for the duration of the call.
    guarded(|| unsafe {
        receive(
            config,
            config_len,
            logstore,
            logstore_len,
            pb,
            pb_len,
            lines,
            None,
        )
    })
}

/// `SendPbV2(...)`.
pub(crate) unsafe extern "C" fn send_pb_v2(
    config: *const c_char,
    config_len: c_int,
    logstore: *const c_char,
    logstore_len: c_int,
    pb: *mut c_char,
    pb_len: c_int,
    lines: c_int,
    shard_hash: *const c_char,
    shard_hash_len: c_int,
) -> c_int {
    COUNTERS.send_pb_v2_calls.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the base passes pointers valid for their lengths for the duration of the call.
    guarded(|| unsafe {
        let hash = text(shard_hash, shard_hash_len);
        receive(
            config,
            config_len,
            logstore,
            logstore_len,
            pb,
            pb_len,
            lines,
            Some(hash.unwrap_or_default()),
        )
    })
}

/// Shared body of the two send callbacks.
///
/// # Safety
/// Pointers must be valid for their lengths (or NULL).
#[allow(clippy::too_many_arguments)]
unsafe fn receive(
    config: *const c_char,
    config_len: c_int,
    logstore: *const c_char,
    logstore_len: c_int,
    pb: *mut c_char,
    pb_len: c_int,
    lines: c_int,
    shard_hash: Option<String>,
) -> c_int {
    // SAFETY: per this function's contract.
    let (config, logstore, buf) = unsafe {
        (
            text(config, config_len),
            text(logstore, logstore_len),
            bytes(pb, pb_len),
        )
    };
    let (Some(config), Some(logstore), Some(buf)) = (config, logstore, buf) else {
        COUNTERS.bad_send_args.fetch_add(1, Ordering::SeqCst);
        return -1;
    };
    let decoded = LogGroup::decode(buf.as_slice());
    let unknown = KNOWN_CONFIGS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .is_some_and(|k| !k.contains(&config));
    if unknown {
        COUNTERS.unknown_config.fetch_add(1, Ordering::SeqCst);
        store::with(|s| *s.unknown_config_names.entry(config.clone()).or_insert(0) += 1);
        return -2;
    }
    wait_while_stalled(&config);
    let (reject, delay_ms) = decide();
    if delay_ms > 0 {
        std::thread::sleep(Duration::from_millis(delay_ms));
    }
    if reject {
        COUNTERS.rejected.fetch_add(1, Ordering::SeqCst);
        if let Ok(g) = &decoded {
            let pack_id = pack_id_of(g).0.unwrap_or_default();
            store::with(|s| *s.rejected_pack_ids.entry(pack_id).or_insert(0) += 1);
        }
        return -1;
    }
    COUNTERS.accepted.fetch_add(1, Ordering::SeqCst);
    let group = match decoded {
        Ok(g) => g,
        Err(_) => {
            COUNTERS.decode_errors.fetch_add(1, Ordering::SeqCst);
            return 0;
        }
    };
    if usize::try_from(lines).ok() != Some(group.logs.len()) {
        COUNTERS.lines_mismatch.fetch_add(1, Ordering::SeqCst);
    }
    let (pack_id, pack_id_is_last) = pack_id_of(&group);
    let logs: Vec<ReceivedLog> = group
        .logs
        .iter()
        .map(|l| ReceivedLog {
            time: l.time,
            contents: l
                .contents
                .iter()
                .map(|c| (c.key.clone(), c.value.clone()))
                .collect(),
        })
        .collect();
    COUNTERS
        .accepted_logs
        .fetch_add(logs.len() as u64, Ordering::SeqCst);
    let n = logs.len();
    store::with(|s| {
        *s.logs_per_config.entry(config.clone()).or_insert(0) += n;
        s.groups.push(ReceivedGroup {
            config,
            logstore,
            lines,
            shard_hash,
            pack_id,
            pack_id_is_last,
            logs,
            group,
        });
    });
    0
}

fn pack_id_of(g: &LogGroup) -> (Option<String>, bool) {
    let pos = g.log_tags.iter().position(|t| t.key == "__pack_id__");
    match pos {
        Some(i) => (Some(g.log_tags[i].value.clone()), i + 1 == g.log_tags.len()),
        None => (None, false),
    }
}

/// `CtlCmd(...)`: recorded, answered 0.
pub(crate) unsafe extern "C" fn ctl_cmd(
    config: *const c_char,
    config_len: c_int,
    opt_id: c_int,
    params: *const c_char,
    params_len: c_int,
) -> c_int {
    guarded(|| {
        COUNTERS.ctl_cmd_calls.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the base passes pointers valid for their lengths.
        let (config, params) = unsafe { (text(config, config_len), text(params, params_len)) };
        store::with(|s| {
            s.ctl_cmds.push(ReceivedCtlCmd {
                config: config.unwrap_or_default(),
                opt_id,
                params: params.unwrap_or_default(),
            })
        });
        0
    })
}
