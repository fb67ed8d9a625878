//! Ensures a damaged checkpoint store never keeps the plugin system from starting: a store
//! file cut to zero, garbage in its `conf`, a cut snapshot. `InitPluginBaseV2` returns 0,
//! and either the store was still readable (its checkpoints are used: nothing is produced
//! twice) or the damaged directory is moved aside (kept for inspection), an alarm says what
//! was lost, and configs run on a fresh store. Each start is its own process (Init runs once).

use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e_tests::util::{child_role, run_test_in_child};
use e2e_tests::{base, pipeline, service_mock, store, wait_until, Session, TempDir};
use serde_json::json;

const LOGS: u64 = 50;

fn checkpoint_dir(root: &Path) -> PathBuf {
    root.join("checkpoint").join("go_plugin_checkpoint")
}

/// The processes of the scenario (see `a_damaged_store_is_moved_aside_and_replaced`).
#[test]
fn damaged_store_child() {
    let Some(role) = child_role() else { return };
    let root = PathBuf::from(std::env::var("E2E_ROOT").expect("E2E_ROOT"));
    assert_eq!(
        base::load_global_config(&json!({"AlarmIntervalMs": 200}).to_string()),
        0
    );
    let s = Session::start_in(&root);
    let config = pipeline(vec![service_mock(2000, LOGS, json!({"k": "v"}))], vec![]);
    assert_eq!(s.load("damaged_store", &config), 0);
    base::resume();
    if role == "make" {
        assert!(
            wait_until(Duration::from_secs(20), || store::log_count(
                "damaged_store"
            ) == LOGS as usize),
            "the config did not run: {}",
            store::counters_summary()
        );
    } else {
        // Either the checkpoint was kept (nothing more to produce) or a fresh store starts
        // from Index 1 with an alarm.
        let alarmed = wait_until(Duration::from_secs(3), || {
            !store::alarms_of("CHECKPOINT_ALARM").is_empty()
        });
        let fresh = alarmed
            && store::alarms_of("CHECKPOINT_ALARM")
                .iter()
                .any(|a| a.get("alarm_message").unwrap_or("").contains("moved aside"));
        if fresh {
            wait_until(Duration::from_secs(20), || {
                store::log_count("damaged_store") == LOGS as usize
            });
        } else {
            std::thread::sleep(Duration::from_secs(1));
        }
        for a in store::alarms_of("CHECKPOINT_ALARM") {
            println!("ALARM {}", a.get("alarm_message").unwrap_or(""));
        }
        println!("DELIVERED {}", store::log_count("damaged_store"));
    }
    base::hold_on(1);
    std::process::exit(0);
}

fn damage(kind: &str, dir: &Path) {
    match kind {
        "db-cut-to-zero" => {
            std::fs::File::create(dir.join("db")).expect("truncate db");
        }
        "garbage-conf" => std::fs::write(dir.join("conf"), b"\xffnot a config\x00").unwrap(),
        "cut-snapshot" => {
            let mut cut = 0;
            for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
                if e.file_name().to_string_lossy().starts_with("snap.") {
                    let len = e.metadata().unwrap().len();
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(e.path())
                        .unwrap();
                    f.set_len(len / 2).unwrap();
                    cut += 1;
                }
            }
            if cut == 0 {
                // A small store has no snapshot yet: leave one cut short, as a crash while
                // writing it would.
                std::fs::write(dir.join("snap.0000000000000400"), [0x5A; 40]).unwrap();
            }
        }
        other => panic!("unknown damage {other}"),
    }
}

#[test]
fn a_damaged_store_is_moved_aside_and_replaced() {
    for kind in ["db-cut-to-zero", "garbage-conf", "cut-snapshot"] {
        let dir = TempDir::new("damaged-store");
        let root = dir.path().display().to_string();
        let env = [("E2E_ROOT", root.as_str()), ("PLUGIN_BASE_LOG", "off")];
        let first = run_test_in_child("damaged_store_child", "make", &env, Duration::from_secs(60));
        assert_eq!(
            first.code(),
            Some(0),
            "{kind}: first run: {}",
            first.all_output()
        );
        damage(kind, &checkpoint_dir(dir.path()));
        let second = run_test_in_child(
            "damaged_store_child",
            "check",
            &env,
            Duration::from_secs(60),
        );
        assert_eq!(
            second.code(),
            Some(0),
            "{kind}: the damaged store kept the base from starting: {}",
            second.all_output()
        );
        let alarm = second
            .stdout
            .lines()
            .find_map(|l| l.split_once("ALARM ").map(|(_, m)| m.to_string()));
        let delivered: u64 = second
            .stdout
            .lines()
            .find_map(|l| {
                l.split_once("DELIVERED ")
                    .and_then(|(_, n)| n.trim().parse().ok())
            })
            .unwrap_or_else(|| panic!("{kind}: {}", second.all_output()));
        let aside: Vec<String> = std::fs::read_dir(dir.path().join("checkpoint"))
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("go_plugin_checkpoint.damaged-"))
            .collect();
        match &alarm {
            Some(a) if a.contains("moved aside") => {
                assert_eq!(aside.len(), 1, "{kind}: {aside:?}");
                assert_eq!(delivered, LOGS, "{kind}: a fresh store starts from Index 1");
            }
            Some(a) if a.contains("nothing was lost") => {
                assert!(aside.is_empty(), "{kind}: {aside:?}");
                assert_eq!(
                    delivered, 0,
                    "{kind}: repaired, yet the checkpoint was lost"
                );
            }
            Some(a) => {
                // Rebuilt from the log: the checkpoint is either there (nothing produced
                // again) or lost with the snapshot (everything produced again): never a gap.
                assert!(a.contains("rebuilt from its log"), "{kind}: {a}");
                assert!(delivered == 0 || delivered == LOGS, "{kind}: {delivered}");
            }
            None => {
                assert!(aside.is_empty(), "{kind}: moved aside without an alarm");
                assert_eq!(
                    delivered, 0,
                    "{kind}: no alarm, yet the checkpoint was lost"
                );
            }
        }
        eprintln!(
            "damaged_store: {kind}: {}",
            alarm
                .as_deref()
                .unwrap_or("still readable: checkpoints kept")
        );
    }
}
