//! The C boundary: the only module with `extern "C"` and raw pointers.
//!
//! Every export runs inside [`guard`], which catches panics (they never unwind into the
//! host) and turns them into an error value, and reads its arguments through the checked
//! views here, which reject NULL-with-a-length, negative lengths and bad UTF-8.

#![allow(non_camel_case_types)] // C names at the boundary

mod code;
mod exports;
mod logging;
mod loong;

pub use code::Code;
pub use exports::*;
pub use loong::*;

use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

pub use wire::go::{GoInt, GoInt64, GoSlice, GoString};

/// iLogtail's container metadata record returned by `GetContainerMeta` (freed by the host).
#[repr(C)]
#[derive(Debug)]
pub struct containerMeta {
    /// Pod name.
    pub podName: *mut c_char,
    /// Kubernetes namespace.
    pub k8sNamespace: *mut c_char,
    /// Container name.
    pub containerName: *mut c_char,
    /// Image.
    pub image: *mut c_char,
    /// Number of Kubernetes labels.
    pub k8sLabelsSize: std::ffi::c_int,
    /// Number of container labels.
    pub containerLabelsSize: std::ffi::c_int,
    /// Number of environment variables.
    pub envSize: std::ffi::c_int,
    /// Kubernetes label keys.
    pub k8sLabelsKey: *mut *mut c_char,
    /// Kubernetes label values.
    pub k8sLabelsVal: *mut *mut c_char,
    /// Container label keys.
    pub containerLabelsKey: *mut *mut c_char,
    /// Container label values.
    pub containerLabelsVal: *mut *mut c_char,
    /// Environment variable names.
    pub envsKey: *mut *mut c_char,
    /// Environment variable values.
    pub envsVal: *mut *mut c_char,
}

/// Views `n` bytes at `p`; a zero length is `&[]` whatever the pointer.
///
/// # Safety
/// When `n > 0` and `p` is non-NULL, `p` must point to `n` readable bytes for `'a`.
unsafe fn raw_bytes<'a>(p: *const u8, n: i64) -> Result<&'a [u8], Code> {
    match n {
        0 => Ok(&[]),
        n if n < 0 => Err(Code::InvalidArgument),
        _ if p.is_null() => Err(Code::InvalidArgument),
        // SAFETY: the caller guarantees `p` points to `n` bytes.
        n => Ok(unsafe { std::slice::from_raw_parts(p, n as usize) }),
    }
}

/// Checked views of the Go arguments.
trait GoArg {
    /// The bytes, checked.
    ///
    /// # Safety
    /// See [`raw_bytes`].
    unsafe fn bytes<'a>(&self) -> Result<&'a [u8], Code>;

    /// The text, checked (UTF-8 required).
    ///
    /// # Safety
    /// See [`raw_bytes`].
    unsafe fn text<'a>(&self) -> Result<&'a str, Code> {
        // SAFETY: forwarded contract.
        std::str::from_utf8(unsafe { self.bytes()? }).map_err(|_| Code::InvalidUtf8)
    }
}

impl GoArg for GoString {
    unsafe fn bytes<'a>(&self) -> Result<&'a [u8], Code> {
        // SAFETY: forwarded contract.
        unsafe { raw_bytes(self.p.cast(), self.n) }
    }
}

impl GoArg for GoSlice {
    unsafe fn bytes<'a>(&self) -> Result<&'a [u8], Code> {
        // SAFETY: forwarded contract.
        unsafe { raw_bytes(self.data.cast_const().cast(), self.len) }
    }
}

/// Runs an export body: sets up logging, catches panics (returning what `on_panic` makes:
/// lazily, so that a default which allocates costs nothing when there is no panic).
fn guard<T>(export: &'static str, on_panic: impl FnOnce() -> T, body: impl FnOnce() -> T) -> T {
    logging::init();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(e) => {
            let msg = e
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| e.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(export, panic = %msg, "panic caught at the C boundary");
            on_panic()
        }
    }
}

/// Turns an argument error into a logged code.
fn reject(export: &'static str, arg: &'static str, code: Code) -> Code {
    tracing::error!(export, arg, error = code.describe(), "rejected argument");
    code
}

/// Copies `text` into a libc-`malloc`ed, NUL-terminated string (NULs replaced).
fn malloc_text(text: &str) -> *mut c_char {
    let bytes = text.as_bytes();
    // SAFETY: plain allocation; checked for NULL below.
    let p = unsafe { libc::malloc(bytes.len() + 1) }.cast::<u8>();
    if p.is_null() {
        return std::ptr::null_mut();
    }
    for (i, b) in bytes.iter().enumerate() {
        // SAFETY: `p` has room for len + 1 bytes.
        unsafe { *p.add(i) = if *b == 0 { b'?' } else { *b } };
    }
    // SAFETY: as above.
    unsafe { *p.add(bytes.len()) = 0 };
    p.cast()
}
