//! Reaching the host through the adaptor, and delivering payloads with retry.
//!
//! The host loads `libPluginAdapter.so` with `RTLD_LOCAL` and registers its callbacks there.
//! We find *that same loaded copy* with `dlopen(.., RTLD_NOLOAD)` (by SONAME, then by the
//! file next to this library); only when it is not loaded at all do we load the file next to
//! us, like the original's DT_NEEDED would. Without an adaptor, sends fail (and are retried).

use once_cell::sync::OnceCell;
use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type SendPbFn = unsafe extern "C" fn(
    *const c_char,
    c_int,
    *const c_char,
    c_int,
    *mut c_char,
    c_int,
    c_int,
) -> c_int;
type SendPbV2Fn = unsafe extern "C" fn(
    *const c_char,
    c_int,
    *const c_char,
    c_int,
    *mut c_char,
    c_int,
    c_int,
    *const c_char,
    c_int,
) -> c_int;
type IsValidFn = unsafe extern "C" fn(i64) -> c_int;
type VersionFn = unsafe extern "C" fn() -> c_int;

/// The adaptor's forwarding functions, resolved once.
#[derive(Debug, Clone, Copy)]
struct Adaptor {
    send_pb: Option<SendPbFn>,
    send_pb_v2: Option<SendPbV2Fn>,
    is_valid: Option<IsValidFn>,
}

static ADAPTOR: OnceCell<Option<Adaptor>> = OnceCell::new();

const ADAPTOR_FILE: &str = "libPluginAdapter.so";

/// Directory holding this library, found with `dladdr` on one of our own functions.
fn own_dir() -> Option<std::path::PathBuf> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the address and fills `info`.
    let ok = unsafe { libc::dladdr(own_dir as *const c_void, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated path owned by the loader.
    let path = unsafe { CStr::from_ptr(info.dli_fname) }.to_str().ok()?;
    std::path::Path::new(path).parent().map(|p| p.to_path_buf())
}

fn dlopen(name: &str, flags: c_int) -> *mut c_void {
    let Ok(c) = CString::new(name) else {
        return std::ptr::null_mut();
    };
    // SAFETY: a valid C string; the handle is never closed (the adaptor stays loaded).
    unsafe { libc::dlopen(c.as_ptr(), flags) }
}

fn sym<T: Copy>(handle: *mut c_void, name: &CStr) -> Option<T> {
    // SAFETY: handle is a live dlopen handle; the symbol's C type is T (checked by our ABI).
    let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
    if p.is_null() {
        None
    } else {
        debug_assert_eq!(std::mem::size_of::<T>(), std::mem::size_of::<*mut c_void>());
        // SAFETY: T is a function pointer type of the same size as the symbol address.
        Some(unsafe { std::mem::transmute_copy::<*mut c_void, T>(&p) })
    }
}

fn resolve() -> Option<Adaptor> {
    let next_to_us = own_dir().map(|d| d.join(ADAPTOR_FILE).to_string_lossy().into_owned());
    let mut handle = dlopen(ADAPTOR_FILE, libc::RTLD_NOLOAD | libc::RTLD_LAZY);
    let mut how = "already loaded by the host (SONAME)";
    if handle.is_null() {
        if let Some(p) = &next_to_us {
            handle = dlopen(p, libc::RTLD_NOLOAD | libc::RTLD_LAZY);
            how = "already loaded by the host (path)";
            if handle.is_null() {
                handle = dlopen(p, libc::RTLD_LAZY | libc::RTLD_LOCAL);
                how = "loaded by the base itself: the host has not registered callbacks on it";
            }
        }
    }
    if handle.is_null() {
        tracing::warn!("{ADAPTOR_FILE} is not loaded and not found next to the base library: delivery to the host is unavailable");
        return None;
    }
    let adaptor = Adaptor {
        send_pb: sym(handle, c"LogtailSendPb"),
        send_pb_v2: sym(handle, c"LogtailSendPbV2"),
        is_valid: sym(handle, c"LogtailIsValidToSend"),
    };
    let version = sym::<VersionFn>(handle, c"PluginAdapterVersion")
        // SAFETY: the adaptor's version function takes no arguments.
        .map(|f| unsafe { f() })
        .unwrap_or(0);
    tracing::info!(how, version, "adaptor found");
    Some(Adaptor {
        send_pb_v2: if version >= 300 {
            adaptor.send_pb_v2
        } else {
            None
        },
        ..adaptor
    })
}

/// Resolves the adaptor now (called by `InitPluginBase`); later calls are no-ops.
pub fn init() {
    ADAPTOR.get_or_init(resolve);
}

fn adaptor() -> Option<Adaptor> {
    *ADAPTOR.get_or_init(resolve)
}

/// One serialized `LogGroup` on its way to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Config name passed to SendPb.
    pub config: Arc<str>,
    /// Logstore passed to SendPb.
    pub logstore: Arc<str>,
    /// Key for `IsValidToSend`.
    pub logstore_key: i64,
    /// The serialized `LogGroup`.
    pub data: Vec<u8>,
    /// Number of logs inside.
    pub lines: usize,
    /// Shard hash for SendPbV2, if any.
    pub shard_hash: Option<String>,
    /// Key in the checkpoint store when this payload was persisted at exit; removed from the
    /// store once the host accepted it.
    pub spill_key: Option<Vec<u8>>,
    /// Acknowledgements released once the host accepted (or the store persisted) the data.
    pub acks: Vec<crate::ack::Ack>,
}

/// Result codes of the host's send callbacks.
pub const SEND_OK: i32 = 0;

/// Whether the host can take more data for `logstore_key` (its callback returned 0, as the
/// original requires); `true` without an adaptor so the send itself reports the failure.
pub fn is_valid_to_send(logstore_key: i64) -> bool {
    match adaptor().and_then(|a| a.is_valid) {
        // SAFETY: forwarding a plain integer to the adaptor.
        Some(f) => (unsafe { f(logstore_key) }) == 0,
        None => true,
    }
}

/// Sends one payload to the host; returns the host's code (0 accepted, -1 queue full,
/// -2 unknown config, -3 no adaptor / too large).
pub fn send(p: &Payload) -> i32 {
    let Some(a) = adaptor() else { return -3 };
    let (Ok(cl), Ok(ll), Ok(dl)) = (
        c_int::try_from(p.config.len()),
        c_int::try_from(p.logstore.len()),
        c_int::try_from(p.data.len()),
    ) else {
        return -3;
    };
    let lines = c_int::try_from(p.lines).unwrap_or(c_int::MAX);
    let cfg = p.config.as_ptr().cast::<c_char>();
    let store = p.logstore.as_ptr().cast::<c_char>();
    // The ABI declares the buffer `char *`; the adaptor and host only read it.
    let data = p.data.as_ptr().cast_mut().cast::<c_char>();
    match (&p.shard_hash, a.send_pb_v2, a.send_pb) {
        (Some(h), Some(v2), _) => {
            let hl = c_int::try_from(h.len()).unwrap_or(0);
            // SAFETY: all pointers are valid for their lengths for the duration of the call.
            unsafe { v2(cfg, cl, store, ll, data, dl, lines, h.as_ptr().cast(), hl) }
        }
        // SAFETY: as above.
        (_, _, Some(v1)) => unsafe { v1(cfg, cl, store, ll, data, dl, lines) },
        _ => -3,
    }
}

/// How a flush stage treats data it cannot deliver right away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FlushMode {
    /// Deliver, retrying with back-off for as long as it takes.
    Run = 0,
    /// Deliver until the deadline, then park the rest.
    Drain = 1,
    /// Park everything not yet delivered (reload hand-off).
    Park = 2,
}

/// Shared switch that tells a flush stage how to behave; set by the manager on stop.
#[derive(Debug)]
pub struct FlushControl {
    mode: AtomicU8,
    deadline: Mutex<Option<Instant>>,
    /// Undelivered payloads, in order; handed to the config's next instance.
    pub parked: Arc<Mutex<VecDeque<Payload>>>,
}

impl FlushControl {
    /// A control in `Run` mode that parks into `parked`.
    pub fn new(parked: Arc<Mutex<VecDeque<Payload>>>) -> Self {
        Self {
            mode: AtomicU8::new(FlushMode::Run as u8),
            deadline: Mutex::new(None),
            parked,
        }
    }

    /// Switches mode (with a deadline for `Drain`).
    pub fn set(&self, mode: FlushMode, deadline: Option<Instant>) {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) = deadline;
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Whether undelivered data must be parked now.
    pub fn parking(&self) -> bool {
        match self.mode.load(Ordering::SeqCst) {
            0 => false,
            1 => self
                .deadline
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some_and(|d| Instant::now() >= d),
            _ => true,
        }
    }

    fn park(&self, p: Payload) {
        self.lock_parked().push_back(p);
    }

    /// The parked queue, locked.
    pub fn lock_parked(&self) -> std::sync::MutexGuard<'_, VecDeque<Payload>> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What happened to a payload handed to [`deliver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The host accepted it.
    Sent,
    /// Parked for later (stop in progress).
    Parked,
}

/// Delivers `p`, retrying with exponential back-off (10 ms doubling, capped at 1 s) while
/// the host refuses, until accepted or the control says to park (then `p` goes to the back
/// of the parked queue). Returns the outcome and the number of retries.
pub fn deliver(p: Payload, ctl: &FlushControl) -> (Delivery, u64) {
    let (sent, retries) = try_deliver(&p, ctl);
    if !sent {
        ctl.park(p);
        return (Delivery::Parked, retries);
    }
    (Delivery::Sent, retries)
}

/// Delivers parked payloads in order, before any new data; stops (keeping the rest, in
/// order) as soon as the control says to park.
pub fn deliver_parked(ctl: &FlushControl) -> usize {
    deliver_parked_then(ctl, |_| {})
}

/// As [`deliver_parked`], calling `on_sent` for each payload the host accepted.
pub fn deliver_parked_then(ctl: &FlushControl, mut on_sent: impl FnMut(&Payload)) -> usize {
    let mut sent = 0;
    loop {
        let Some(p) = ctl.lock_parked().pop_front() else {
            return sent;
        };
        if try_deliver(&p, ctl).0 {
            on_sent(&p);
            sent += 1;
        } else {
            ctl.lock_parked().push_front(p);
            return sent;
        }
    }
}

fn try_deliver(p: &Payload, ctl: &FlushControl) -> (bool, u64) {
    let mut retries = 0u64;
    let mut backoff = Duration::from_millis(10);
    let mut warned = false;
    loop {
        if ctl.parking() {
            return (false, retries);
        }
        if is_valid_to_send(p.logstore_key) {
            let rc = send(p);
            if rc == SEND_OK {
                return (true, retries);
            }
            if !warned {
                crate::stats::alarm(
                    crate::stats::AlarmType::SendFailed,
                    crate::stats::Level::Warning,
                    &p.config,
                    "flusher_sls",
                    format!("the host refused a log group of {} logs (SendPb returned {rc}); retrying with back-off", p.lines),
                );
                warned = true;
            }
        }
        retries += 1;
        // Sleep in small steps so a stop request is seen promptly.
        let until = Instant::now() + backoff;
        while Instant::now() < until && !ctl.parking() {
            std::thread::sleep(Duration::from_millis(5).min(backoff));
        }
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}
