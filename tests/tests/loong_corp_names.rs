//! A corp LoongCollector 3.x build opens the 1.x file names (`libPluginAdapter.so`,
//! `libPluginBase.so`) and drives them with the 3.x calls: the same union library serves it.
//! And the OSS names are the same code: `libGoPluginBase.so` exports exactly what
//! `libPluginBase.so` does.

use std::time::Duration;

use e2e_tests::loong::{self, host_fed_pipeline, LoongSession};
use e2e_tests::{store, wait_until};

fn exports(lib: &std::path::Path) -> Vec<String> {
    let out = std::process::Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(lib)
        .output();
    let Ok(out) = out else {
        eprintln!("nm is not installed: export lists not compared");
        return Vec::new();
    };
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && f[1] == "T").then(|| f[2].to_string())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn the_3x_calls_work_on_the_1x_file_names() {
    e2e_tests::ffi::play_loongcollector_corp();
    let s = LoongSession::start("loong-corp");
    assert_eq!(s.load("corp/2", 3, &host_fed_pipeline(Vec::new(), 20)), 0);
    loong::start("corp/2");
    let logs: Vec<Vec<(&str, String)>> = (0..100)
        .map(|i| vec![("content", format!("line {i}"))])
        .collect();
    let pack = loong::host_pack_id("src");
    assert_eq!(
        loong::process_event_group("corp/2", &loong::log_group("t", "src", &logs), &pack),
        0
    );
    assert!(wait_until(Duration::from_secs(20), || store::log_count(
        "corp"
    ) == 100));
    let g = &store::groups_for("corp")[0];
    assert_eq!(
        g.group.topic.as_deref(),
        Some("t"),
        "__topic__ is the topic"
    );
    assert_eq!(g.pack_id.as_deref(), Some(format!("{pack}-1").as_str()));
    // Removed and added again: the host's pack id continues its sequence, never reused.
    loong::stop("corp/2", true);
    assert_eq!(s.load("corp/2", 3, &host_fed_pipeline(Vec::new(), 20)), 0);
    loong::start("corp/2");
    assert_eq!(
        loong::process_event_group("corp/2", &loong::log_group("t", "src", &logs), &pack),
        0
    );
    assert!(wait_until(Duration::from_secs(20), || store::log_count(
        "corp"
    ) == 200));
    let ids: Vec<Option<String>> = store::groups_for("corp")
        .iter()
        .map(|g| g.pack_id.clone())
        .collect();
    assert_eq!(
        ids,
        vec![Some(format!("{pack}-1")), Some(format!("{pack}-2"))],
        "pack ids after a removal and a new add"
    );
    loong::stop_all(true);
    loong::stop_all(false);

    let dir = &e2e_tests::ffi::host().lib_dir;
    let (ours, go) = (
        exports(&dir.join("libPluginBase.so")),
        exports(&dir.join("libGoPluginBase.so")),
    );
    assert_eq!(
        ours, go,
        "libGoPluginBase.so exports what libPluginBase.so does"
    );
    let (a, b) = (
        exports(&dir.join("libPluginAdapter.so")),
        exports(&dir.join("libGoPluginAdapter.so")),
    );
    assert_eq!(a, b);
    s.close();
}
