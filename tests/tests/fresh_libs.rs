//! Ensures the end-to-end tests load libraries and a harness built from the current tree,
//! with the test-only plugins, and not copies left from an earlier build: each file must be
//! newer than every source file its dep-info (`<name>.d`, written by cargo next to it)
//! lists, and the harness must accept a config using `processor_test_panic`.
//!
//! With `PLUGIN_LIB_DIR` set (an explicit older build) there is nothing to check: the test
//! passes without looking.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use e2e_tests::libs;
use e2e_tests::util::{harness_bin, lib_dir, run_with_timeout};
use e2e_tests::{pipeline, service_mock, TempDir};
use serde_json::json;

/// The inputs listed by a Makefile-style dep-info file (`out: in1 in2`, spaces escaped `\ `).
fn dep_info_inputs(d_file: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(d_file)
        .unwrap_or_else(|e| panic!("cannot read dep-info {}: {e}", d_file.display()));
    let mut inputs = Vec::new();
    for line in text.lines() {
        // `<output>: <inputs>`; the output path may contain escaped spaces, never `: `.
        let Some((_, rest)) = line.split_once(": ") else {
            continue;
        };
        let mut cur = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&' ') => cur.push(chars.next().unwrap_or(' ')),
                ' ' => {
                    if !cur.is_empty() {
                        inputs.push(PathBuf::from(std::mem::take(&mut cur)));
                    }
                }
                c => cur.push(c),
            }
        }
        if !cur.is_empty() {
            inputs.push(PathBuf::from(cur));
        }
    }
    inputs.sort();
    inputs.dedup();
    inputs
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn loaded_libraries_and_harness_are_built_from_the_current_tree() {
    if libs::override_dir().is_some() {
        return;
    }
    let dir = lib_dir();
    let root = e2e_tests::util::repo_root();
    for (file, d_name) in [
        ("libPluginAdapter.so", "libPluginAdapter.d"),
        ("libPluginBase.so", "libPluginBase.d"),
        ("host-harness", "host-harness.d"),
    ] {
        let artifact = dir.join(file);
        let built = mtime(&artifact);
        let inputs = dep_info_inputs(&dir.join(d_name));
        let ours: Vec<_> = inputs.iter().filter(|p| p.starts_with(&root)).collect();
        assert!(
            ours.iter()
                .any(|p| p.extension().is_some_and(|e| e == "rs")),
            "{d_name} lists no source file of this tree {}: {inputs:?}",
            root.display()
        );
        let newer: Vec<_> = ours
            .iter()
            .filter(|p| !p.exists() || mtime(p) > built)
            .collect();
        assert!(
            newer.is_empty(),
            "{} is STALE: older than (or built from missing) {newer:?}; \
             the tests must load what `{}` builds from the current tree",
            artifact.display(),
            libs::built().command
        );
    }
}

#[test]
fn loaded_base_has_the_test_plugins() {
    if libs::override_dir().is_some() {
        return;
    }
    assert!(
        libs::built()
            .base_features
            .iter()
            .any(|f| f == "test-plugins"),
        "{:?}",
        libs::built()
    );
    let tmp = TempDir::new("fresh-libs");
    let config = pipeline(
        vec![service_mock(10, 10, json!({"content": "x"}))],
        vec![json!({"type": "processor_test_panic", "detail": {}})],
    );
    let file = tmp.write("with_test_plugin.json", &config);
    let out = run_with_timeout(
        Command::new(harness_bin())
            .env(libs::LIB_DIR_ENV, lib_dir())
            .arg("validate")
            .arg(&file),
        Duration::from_secs(60),
    );
    assert_eq!(
        out.code(),
        Some(0),
        "the harness and base in {} reject processor_test_panic (built without \
         --features base/test-plugins?)\n{}",
        lib_dir().display(),
        out.all_output()
    );
}
