//! Unit tests only: the engine's logs go to libtest's capture, so a failing test shows them
//! with its failure and a passing one shows nothing.
//!
//! A subscriber with `TestWriter` (it `print!`s, which libtest captures per test thread,
//! and threads spawned from a test thread, such as a runtime's workers, inherit that
//! capture) is installed before `main` by an `.init_array` entry, so no test has to call
//! anything. Filter: `PLUGIN_BASE_LOG`, default `info`.

extern "C" fn install() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PLUGIN_BASE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

#[used]
#[link_section = ".init_array"]
static INSTALL: extern "C" fn() = install;
