//! The LoongCollector 3.x-style C++ host (examples/loongcollector-host/host.cpp, built with a
//! real C++ compiler and `-Wall -Wextra -Werror`) runs its whole sequence — modify cycles,
//! a removed config, pulled metrics and alarms, exit — on the Go-named libraries of the current
//! tree, and finds every log it fed. (CI also runs it under ASan/UBSan and valgrind:
//! examples/loongcollector-host/run.sh.)

use std::process::Command;
use std::time::Duration;

use e2e_tests::util::{lib_dir, repo_root, run_with_timeout};
use e2e_tests::TempDir;

#[test]
fn cpp_host_compiles_and_finds_every_log() {
    let root = repo_root();
    let dir = TempDir::new("cpp-host");
    let exe = dir.path().join("loongcollector-host");
    let Ok(build) = std::panic::catch_unwind(|| {
        run_with_timeout(
            Command::new("c++")
                .current_dir(&root)
                .args([
                    "-std=c++17",
                    "-Wall",
                    "-Wextra",
                    "-Werror",
                    "-O1",
                    "-I",
                    "include",
                ])
                .arg("examples/loongcollector-host/host.cpp")
                .args(["-ldl", "-pthread", "-o"])
                .arg(&exe),
            Duration::from_secs(180),
        )
    }) else {
        eprintln!("SKIPPED: no C++ compiler (c++) to build the example host");
        return;
    };
    assert_eq!(build.code(), Some(0), "c++ failed\n{}", build.all_output());
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let out = run_with_timeout(
        Command::new(&exe)
            .env("HOST_DATA_DIR", &data)
            .env("PLUGIN_BASE_LOG", "warn")
            .arg(lib_dir())
            .args(["10", "1000", "60"]),
        Duration::from_secs(180),
    );
    assert_eq!(
        out.code(),
        Some(0),
        "the C++ host failed\n{}",
        out.all_output()
    );
    assert!(
        out.stdout.lines().any(|l| l.trim() == "host: ok"),
        "{}",
        out.all_output()
    );
}
