//! Ensures a plain C host (examples/c-host/main.c, built with a real C compiler and
//! `-Wall -Wextra -Werror`) loads both libraries and receives every log of a config.

use std::process::Command;
use std::time::Duration;

use e2e_tests::util::{lib_dir, repo_root, run_with_timeout};
use e2e_tests::{pipeline, service_mock, TempDir};
use serde_json::json;

const N: u64 = 2000;
const NAME: &str = "c_host_config";

#[test]
fn c_host_compiles_and_receives_every_log() {
    let root = repo_root();
    let main_c = root.join("examples/c-host/main.c");
    assert!(main_c.exists(), "{} does not exist", main_c.display());
    let dir = TempDir::new("c-host");
    let exe = dir.path().join("c-host");

    let build = run_with_timeout(
        Command::new("cc")
            .current_dir(&root)
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I", "include"])
            .arg("examples/c-host/main.c")
            .arg("-ldl")
            .arg("-o")
            .arg(&exe),
        Duration::from_secs(120),
    );
    assert_eq!(build.code(), Some(0), "cc failed\n{}", build.all_output());

    let config = pipeline(
        vec![service_mock(20000, N, json!({"content": "from c"}))],
        vec![],
    );
    let config_file = dir.write("c_host_config.json", &config);
    let out = run_with_timeout(
        Command::new(&exe)
            .arg(lib_dir())
            .arg(&config_file)
            .arg(NAME)
            .arg(N.to_string())
            .arg("60"),
        Duration::from_secs(120),
    );
    assert_eq!(out.code(), Some(0), "c-host failed\n{}", out.all_output());
    let expected = format!("c-host: received {N} logs");
    assert!(
        out.stdout
            .lines()
            .chain(out.stderr.lines())
            // `c-host: received N logs` (the C host may append ` in G groups`).
            .any(|l| l.trim() == expected || l.starts_with(&format!("{expected} "))),
        "no line {expected:?}\n{}",
        out.all_output()
    );
}
