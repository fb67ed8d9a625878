//! Go's C types as cgo declares them (`_cgo_export.h`); they are passed by value and
//! borrowed for the call only.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_void};

/// Go's `GoInt64`.
pub type GoInt64 = i64;
/// Go's `GoInt` (64-bit on the supported platforms).
pub type GoInt = GoInt64;

/// Go's string: a pointer and a length, not NUL-terminated, borrowed for the call only.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GoString {
    /// First byte (may be NULL when `n == 0`).
    pub p: *const c_char,
    /// Length in bytes.
    pub n: GoInt64,
}

impl GoString {
    /// A view of `s`; the caller keeps `s` alive for as long as the view is used.
    pub fn new(s: &str) -> Self {
        Self::from_bytes(s.as_bytes())
    }

    /// A view of `b` (need not be UTF-8: used to test that the callee rejects it).
    pub fn from_bytes(b: &[u8]) -> Self {
        Self {
            p: b.as_ptr().cast(),
            n: b.len() as GoInt64,
        }
    }
}

/// Go's slice: bytes borrowed for the call only.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GoSlice {
    /// First byte (may be NULL when `len == 0`).
    pub data: *mut c_void,
    /// Length in bytes.
    pub len: GoInt,
    /// Capacity (ignored).
    pub cap: GoInt,
}

impl GoSlice {
    /// A view of `b`; the callee only reads it.
    pub fn new(b: &[u8]) -> Self {
        Self {
            data: b.as_ptr().cast_mut().cast(),
            len: b.len() as GoInt,
            cap: b.len() as GoInt,
        }
    }
}
