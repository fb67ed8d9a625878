//! Our log lines go through Fluent Bit's logger (`api->log_print`), at the level the
//! instances log (`*_log_check`), so they appear where Fluent Bit's own do.

use crate::abi::{self, LogPrintFn};
use std::ffi::{c_int, CString};
use std::io::Write;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::OnceLock;
use tracing::Level;

static PRINT: AtomicUsize = AtomicUsize::new(0);
static MAX_LEVEL: AtomicI32 = AtomicI32::new(abi::LOG_INFO);
static INSTALLED: OnceLock<()> = OnceLock::new();

fn flb_level(l: &Level) -> c_int {
    match *l {
        Level::ERROR => abi::LOG_ERROR,
        Level::WARN => abi::LOG_WARN,
        Level::INFO => abi::LOG_INFO,
        Level::DEBUG => abi::LOG_DEBUG,
        Level::TRACE => abi::LOG_TRACE,
    }
}

/// Sends this library's `tracing` output to `print`, logging up to `max_level` (a Fluent
/// Bit level, 1 error … 5 trace). Later calls update the function and raise the level.
pub fn install(print: Option<LogPrintFn>, max_level: c_int) {
    if let Some(p) = print {
        PRINT.store(p as usize, Ordering::SeqCst);
    }
    MAX_LEVEL.fetch_max(max_level, Ordering::SeqCst);
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .without_time()
            .with_level(false)
            .with_target(false)
            .with_ansi(false)
            .with_writer(MakeLine)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// The highest level any instance logs (for deciding whether to build a message).
pub fn max_level() -> c_int {
    MAX_LEVEL.load(Ordering::SeqCst)
}

struct MakeLine;

/// One formatted event, handed to `log_print` when dropped.
struct Line {
    level: c_int,
    file: String,
    line: u32,
    buf: Vec<u8>,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for MakeLine {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            level: abi::LOG_INFO,
            file: String::new(),
            line: 0,
            buf: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line {
        Line {
            level: flb_level(meta.level()),
            file: meta.file().unwrap_or("").to_string(),
            line: meta.line().unwrap_or(0),
            buf: Vec::new(),
        }
    }
}

impl Write for Line {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.level > max_level() {
            return;
        }
        while self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        }
        self.buf.retain(|b| *b != 0);
        let p = PRINT.load(Ordering::SeqCst);
        let (Ok(msg), Ok(file)) = (
            CString::new(std::mem::take(&mut self.buf)),
            CString::new(std::mem::take(&mut self.file)),
        ) else {
            return;
        };
        if p == 0 {
            let _ = writeln!(std::io::stderr(), "{}", msg.to_string_lossy());
            return;
        }
        // SAFETY: `p` was stored from a `LogPrintFn` by `install`.
        let print: LogPrintFn = unsafe { std::mem::transmute::<usize, LogPrintFn>(p) };
        // SAFETY: a printf-style call with "%s" and one NUL-terminated argument.
        unsafe {
            print(
                self.level,
                file.as_ptr(),
                self.line as c_int,
                c"%s".as_ptr(),
                msg.as_ptr(),
            )
        };
    }
}
