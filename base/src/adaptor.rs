//! Reaching the host through the adaptor: the engine's [`Host`] for iLogtail (delivery with
//! retry is the engine's).
//!
//! The host loads `libPluginAdapter.so` (iLogtail 1.x/2.x, corp LoongCollector) or
//! `libGoPluginAdapter.so` (OSS LoongCollector 3.x) with `RTLD_LOCAL` and registers its
//! callbacks there. We find *that same loaded copy* with `dlopen(.., RTLD_NOLOAD)` (by SONAME,
//! then by the file next to this library, under either name); only when neither is loaded do
//! we load the file next to us (the name that goes with ours), like the original's DT_NEEDED
//! would. Without an adaptor, sends fail (and are retried).

use once_cell::sync::OnceCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};

use engine::host::{Host, Payload, Refused};
use wire::callbacks::{IsValidToSendFun, SendPbFun, SendPbV2Fun, VersionFn};

/// The adaptor's forwarding functions, resolved once.
#[derive(Debug, Clone, Copy)]
struct Adaptor {
    send_pb: SendPbFun,
    send_pb_v2: SendPbV2Fun,
    is_valid: IsValidToSendFun,
    trust_ctl_cmd: Option<unsafe extern "C" fn(c_int)>,
}

static ADAPTOR: OnceCell<Option<Adaptor>> = OnceCell::new();

/// The adaptor's names: 1.x/2.x (and corp 3.x), OSS 3.x.
const ADAPTOR_FILES: [&str; 2] = ["libPluginAdapter.so", "libGoPluginAdapter.so"];

/// Directory holding this library.
fn own_dir() -> Option<std::path::PathBuf> {
    let path = own_file()?;
    std::path::Path::new(&path)
        .parent()
        .map(|p| p.to_path_buf())
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

/// Path of this library, found with `dladdr` on one of our own functions.
fn own_file() -> Option<String> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the address and fills `info`.
    let ok = unsafe { libc::dladdr(own_file as *const c_void, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated path owned by the loader.
    Some(
        unsafe { CStr::from_ptr(info.dli_fname) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// Finds the adaptor the host loaded (or loads the one next to us): its handle and how.
fn find() -> Option<(*mut c_void, &'static str, &'static str)> {
    for name in ADAPTOR_FILES {
        let h = dlopen(name, libc::RTLD_NOLOAD | libc::RTLD_LAZY);
        if !h.is_null() {
            return Some((h, name, "already loaded by the host (SONAME)"));
        }
    }
    let dir = own_dir()?;
    for name in ADAPTOR_FILES {
        let p = dir.join(name).to_string_lossy().into_owned();
        let h = dlopen(&p, libc::RTLD_NOLOAD | libc::RTLD_LAZY);
        if !h.is_null() {
            return Some((h, name, "already loaded by the host (path)"));
        }
    }
    // libGoPluginBase.so goes with libGoPluginAdapter.so, libPluginBase.so with the other.
    let go = own_file().is_some_and(|f| f.ends_with("libGoPluginBase.so"));
    let mut names = ADAPTOR_FILES;
    if go {
        names.reverse();
    }
    for name in names {
        let p = dir.join(name).to_string_lossy().into_owned();
        let h = dlopen(&p, libc::RTLD_LAZY | libc::RTLD_LOCAL);
        if !h.is_null() {
            return Some((
                h,
                name,
                "loaded by the base itself: the host has not registered callbacks on it",
            ));
        }
    }
    None
}

fn resolve() -> Option<Adaptor> {
    let Some((handle, file, how)) = find() else {
        tracing::warn!("neither libPluginAdapter.so nor libGoPluginAdapter.so is loaded or found next to the base library: delivery to the host is unavailable");
        return None;
    };
    let adaptor = Adaptor {
        send_pb: sym(handle, c"LogtailSendPb"),
        send_pb_v2: sym(handle, c"LogtailSendPbV2"),
        is_valid: sym(handle, c"LogtailIsValidToSend"),
        trust_ctl_cmd: sym(handle, c"PluginAdapterTrustCtlCmd"),
    };
    let version = sym::<VersionFn>(handle, c"PluginAdapterVersion")
        // SAFETY: the adaptor's version function takes no arguments.
        .map(|f| unsafe { f() })
        .unwrap_or(0);
    tracing::info!(file, how, version, "adaptor found");
    Some(Adaptor {
        send_pb_v2: if version >= 300 {
            adaptor.send_pb_v2
        } else {
            None
        },
        ..adaptor
    })
}

/// Tells the adaptor whether the host passes a command callback (1.x/2.x do; 3.2+ do not, and
/// its slot then holds garbage), so that it is called only when it exists.
pub fn trust_ctl_cmd(trusted: bool) {
    if let Some(f) = adaptor().and_then(|a| a.trust_ctl_cmd) {
        // SAFETY: the adaptor's function takes one int.
        unsafe { f(c_int::from(trusted)) };
    }
}

/// Resolves the adaptor now (called by `InitPluginBase`); later calls are no-ops.
pub fn init() {
    ADAPTOR.get_or_init(resolve);
}

fn adaptor() -> Option<Adaptor> {
    *ADAPTOR.get_or_init(resolve)
}

/// The iLogtail host, reached through the adaptor it loaded.
#[derive(Debug, Default)]
pub struct AdaptorHost;

impl Host for AdaptorHost {
    /// The host's callback must return 0 (as the original requires); without an adaptor the
    /// send itself reports the failure.
    fn can_send(&self, logstore_key: i64) -> bool {
        match adaptor().and_then(|a| a.is_valid) {
            // SAFETY: forwarding a plain integer to the adaptor.
            Some(f) => (unsafe { f(logstore_key) }) == 0,
            None => true,
        }
    }

    /// The host's code when it refuses: -1 queue full, -2 unknown config, -3 no adaptor or
    /// too large.
    fn send(&self, p: &Payload) -> Result<(), Refused> {
        match send(p) {
            0 => Ok(()),
            code => Err(Refused(code)),
        }
    }
}

fn send(p: &Payload) -> i32 {
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
