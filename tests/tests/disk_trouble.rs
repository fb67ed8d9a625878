//! Ensures `HoldOn(1)` stays bounded when the checkpoint disk fails during the exit spill, and
//! that no later call blocks either:
//! - a full disk (a 4 MiB tmpfs): the spill fails; an alarm gives the count of logs lost;
//! - a hung disk (an ext4 image frozen with `fsfreeze`): the store's writes never return;
//!   `HoldOn(1)` returns within `HoldOnTimeoutMs` plus the stated grace, alarms, and
//!   `LoadConfig`, `Resume`, `HoldOn` still answer at once.
//!
//! Both need to mount a small filesystem (root, and for the frozen disk a loop device,
//! `mkfs.ext4` and `fsfreeze`); without them the scenario says why and is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e_tests::callbacks::{sends_blocked_now, stall_config};
use e2e_tests::util::{child_role, run_test_in_child};
use e2e_tests::{base, store, wait_until, Session, TempDir};
use serde_json::json;

const NAME: &str = "disk_trouble";
const HOLD_ON_TIMEOUT_MS: u64 = 500;
/// `HoldOnTimeoutMs` plus the stated grace (1 s), plus scheduling slack.
const HOLD_ON_BOUND: Duration = Duration::from_millis(HOLD_ON_TIMEOUT_MS + 1000 + 500);

fn sh(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The process of the scenario: fills its queues behind a blocked SendPb, breaks the disk
/// (`E2E_BREAK`: a command run just before `HoldOn(1)`, or nothing), reports, repairs the disk
/// (`E2E_UNBREAK`: threads stuck in a frozen filesystem would keep the process from ending)
/// and exits.
#[test]
fn disk_trouble_child() {
    let Some(_role) = child_role() else { return };
    let root = PathBuf::from(std::env::var("E2E_ROOT").expect("E2E_ROOT"));
    assert_eq!(
        base::load_global_config(
            &json!({"HoldOnTimeoutMs": HOLD_ON_TIMEOUT_MS, "AlarmIntervalMs": 100}).to_string()
        ),
        0
    );
    let s = Session::start_in(&root);
    let config = json!({
        "global": {"AggregatIntervalMs": 100, "DefaultLogQueueSize": 50_000,
                   "DefaultLogGroupQueueSize": 20},
        "inputs": [{"type": "service_mock", "detail": {"LogsPerSecond": 50_000, "MaxLogCount": 0,
            "Fields": {"content": "x".repeat(200)}}}],
    });
    stall_config(NAME, true);
    assert_eq!(s.load(NAME, &config.to_string()), 0);
    base::resume();
    assert!(wait_until(Duration::from_secs(20), || sends_blocked_now() >= 1));
    std::thread::sleep(Duration::from_millis(2000));
    run_env_command("E2E_BREAK");
    let t = Instant::now();
    base::hold_on(1);
    println!("HOLD_ON_MS {}", t.elapsed().as_millis());
    // Later calls answer at once, whatever the disk does.
    let t = Instant::now();
    assert_eq!(s.load("disk_trouble_later", &json!({}).to_string()), 0);
    base::resume();
    base::hold_on(0);
    println!("LATER_MS {}", t.elapsed().as_millis());
    for a in store::alarms() {
        let kind = a.get("alarm_type").unwrap_or("");
        if kind == "PLUGIN_DATA_DROPPED_ALARM" || kind == "CHECKPOINT_ALARM" {
            println!("ALARM {kind} {}", a.get("alarm_message").unwrap_or(""));
        }
    }
    run_env_command("E2E_UNBREAK");
    std::process::exit(0);
}

/// Runs the command in environment variable `var`, if set.
fn run_env_command(var: &str) {
    if let Ok(cmd) = std::env::var(var) {
        let mut parts = cmd.split_whitespace();
        let prog = parts.next().expect("a command");
        let args: Vec<&str> = parts.collect();
        sh(prog, &args).unwrap_or_else(|e| panic!("{var}: {e}"));
    }
}

fn field(out: &str, name: &str) -> Option<u64> {
    let at = out.find(&format!("{name} "))?;
    out[at + name.len() + 1..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Runs the child on `root` and checks the bounds and the alarm naming what was lost.
fn check(what: &str, root: &Path, break_and_repair: Option<(String, String)>) {
    let root_s = root.display().to_string();
    let mut env = vec![("E2E_ROOT", root_s.as_str())];
    if let Some((b, r)) = &break_and_repair {
        env.push(("E2E_BREAK", b.as_str()));
        env.push(("E2E_UNBREAK", r.as_str()));
    }
    let run = run_test_in_child("disk_trouble_child", "run", &env, Duration::from_secs(60));
    assert_eq!(run.code(), Some(0), "{what}: {}", run.all_output());
    let hold_on = field(&run.stdout, "HOLD_ON_MS").expect("HoldOn time");
    let later = field(&run.stdout, "LATER_MS").expect("later calls");
    let alarms: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.split_once("ALARM ").map(|(_, a)| a))
        .collect();
    eprintln!(
        "disk_trouble: {what}: HoldOn(1) {hold_on} ms, later calls {later} ms, alarms {alarms:?}"
    );
    assert!(
        Duration::from_millis(hold_on) < HOLD_ON_BOUND,
        "{what}: HoldOn(1) took {hold_on} ms"
    );
    assert!(later < 1000, "{what}: later calls took {later} ms");
    assert!(
        alarms
            .iter()
            .any(|a| a.contains("cannot persist") && a.contains(" logs)")),
        "{what}: no alarm with the count of logs lost: {alarms:?}"
    );
}

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let p = self.0.display().to_string();
        let _ = sh("fsfreeze", &["-u", &p]);
        let _ = sh("umount", &["-l", &p]);
    }
}

#[test]
fn exit_spill_on_a_full_disk_is_bounded_and_counts_what_is_lost() {
    let dir = TempDir::new("full-disk");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let m = mnt.display().to_string();
    if let Err(e) = sh("mount", &["-t", "tmpfs", "-o", "size=4m", "tmpfs", &m]) {
        eprintln!("disk_trouble: full disk: skipped, cannot mount a small tmpfs ({e}); needs root");
        return;
    }
    let _mount = Mount(mnt.clone());
    check("full disk", &mnt, None);
}

#[test]
fn exit_spill_on_a_hung_disk_is_bounded_and_later_calls_do_not_block() {
    let dir = TempDir::new("hung-disk");
    let img = dir.path().join("ext4.img");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let (i, m) = (img.display().to_string(), mnt.display().to_string());
    let mounted = sh("truncate", &["-s", "64M", &i])
        .and_then(|()| sh("mkfs.ext4", &["-q", "-F", &i]))
        .and_then(|()| sh("mount", &["-o", "loop", &i, &m]));
    if let Err(e) = mounted {
        eprintln!(
            "disk_trouble: hung disk: skipped, cannot mount an ext4 image ({e}); needs root, a loop device and e2fsprogs"
        );
        return;
    }
    let _mount = Mount(mnt.clone());
    if Command::new("fsfreeze").arg("--help").output().is_err() {
        eprintln!("disk_trouble: hung disk: skipped, no fsfreeze (util-linux)");
        return;
    }
    check(
        "hung disk",
        &mnt,
        Some((format!("fsfreeze -f {m}"), format!("fsfreeze -u {m}"))),
    );
}
