//! The result codes of the exports, and how engine errors map to them.

use engine::Error;

/// Result codes returned by the exports (never reused; see [`Code::describe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i64)]
pub enum Code {
    /// Success.
    Ok = 0,
    /// Generic failure (what `LoadConfig` returns for any error, as the ABI requires).
    Failed = 1,
    /// A pointer/length argument was invalid (NULL with a length, negative length).
    InvalidArgument = 2,
    /// Text that must be UTF-8 was not.
    InvalidUtf8 = 3,
    /// Bytes were not a valid protobuf message.
    BadProtobuf = 4,
    /// No config of that name is loaded.
    UnknownConfig = 5,
    /// The config is loaded but not running (no longer returned: data for a held config is
    /// queued for its next run).
    NotRunning = 6,
    /// The pipeline stayed full for the whole back-pressure wait and the data could not be
    /// kept on disk either (no store, or `SpillLimitMB` used up).
    Timeout = 7,
    /// `InitPluginBase` has not been called (or failed).
    NotInitialized = 8,
    /// A panic was caught at the boundary.
    Internal = 9,
}

impl Code {
    /// A short description of the code.
    pub const fn describe(self) -> &'static str {
        match self {
            Code::Ok => "ok",
            Code::Failed => "failed",
            Code::InvalidArgument => "invalid pointer or length argument",
            Code::InvalidUtf8 => "argument is not valid UTF-8",
            Code::BadProtobuf => "malformed protobuf",
            Code::UnknownConfig => "unknown config",
            Code::NotRunning => "config is not running",
            Code::Timeout => "pipeline full and the data cannot be kept on disk",
            Code::NotInitialized => "InitPluginBase has not been called",
            Code::Internal => "internal error (panic caught)",
        }
    }
}

impl From<Error> for Code {
    fn from(e: Error) -> Self {
        match e {
            Error::Failed => Code::Failed,
            Error::UnknownConfig => Code::UnknownConfig,
            Error::Timeout => Code::Timeout,
            Error::NotInitialized => Code::NotInitialized,
        }
    }
}

impl From<Result<(), Error>> for Code {
    fn from(r: Result<(), Error>) -> Self {
        r.map_or_else(Code::from, |()| Code::Ok)
    }
}
