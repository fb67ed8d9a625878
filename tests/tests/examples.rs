//! The configs shipped in the repository stay valid: every file in `examples/pipelines/` passes
//! `host-harness validate` (the README tells users to run it on `examples/pipelines/*.json`),
//! the processor lists of the bench scenarios are valid processors, and the deliberately broken
//! example fails with the three errors the README shows.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use e2e_tests::util::{harness_bin, lib_dir, repo_root, run_with_timeout, RunOutput};
use e2e_tests::TempDir;

fn validate(files: &[PathBuf]) -> RunOutput {
    let mut c = Command::new(harness_bin());
    c.env("PLUGIN_LIB_DIR", lib_dir())
        .arg("validate")
        .args(files);
    run_with_timeout(&mut c, Duration::from_secs(60))
}

/// The files of `dir` (relative to the repository root) ending in `.json`, sorted.
fn json_files(dir: &str) -> Vec<PathBuf> {
    let dir = repo_root().join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    files.sort();
    for f in &files {
        assert!(
            f.extension().is_some_and(|x| x == "json"),
            "{} holds a file that is not a pipeline config: {}",
            dir.display(),
            f.display()
        );
    }
    files
}

#[test]
fn every_example_pipeline_validates() {
    let files = json_files("examples/pipelines");
    assert!(files.len() >= 3, "too few example pipelines: {files:?}");
    let out = validate(&files);
    assert_eq!(
        out.code(),
        Some(0),
        "validate rejected an example pipeline\n{}",
        out.all_output()
    );
    for f in &files {
        let ok = format!("OK {}", f.display());
        assert!(
            out.stdout.lines().any(|l| l == ok),
            "no `{ok}` line\n{}",
            out.all_output()
        );
    }
    assert!(
        !out.stdout.contains(": warning: "),
        "an example pipeline draws a warning\n{}",
        out.all_output()
    );
}

#[test]
fn bench_scenario_processors_are_valid() {
    let dir = TempDir::new("examples-scenarios");
    let files: Vec<PathBuf> = json_files("host-harness/scenarios")
        .iter()
        .map(|f| {
            let list = std::fs::read_to_string(f).expect("read scenario");
            let name = f.file_name().expect("file name").to_string_lossy();
            dir.write(&name, &format!("{{\"processors\": {list}}}"))
        })
        .collect();
    assert!(!files.is_empty(), "no bench scenarios found");
    let out = validate(&files);
    assert_eq!(
        out.code(),
        Some(0),
        "a bench scenario's processors are invalid\n{}",
        out.all_output()
    );
}

#[test]
fn broken_example_fails_with_the_documented_errors() {
    let out = validate(&[repo_root().join("examples/invalid/broken.json")]);
    assert_eq!(
        out.code(),
        Some(1),
        "validate accepted the broken example\n{}",
        out.all_output()
    );
    let all = out.all_output();
    for needle in [
        r#"config "broken": plugin inputs[0] (service_mock): field "detail.LogsPerSecond""#,
        r#"config "broken": plugin processors[0] (processor_add_fields): field "detail.IgnoreIfExists""#,
        r#"config "broken": plugin processors[1] (processor_regexx): field "type""#,
    ] {
        assert!(all.contains(needle), "no {needle:?} in\n{all}");
    }
}
