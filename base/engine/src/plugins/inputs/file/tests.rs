//! Tests of `input_file` driven in-process: a task stepped by hand over real files and a real
//! store, its groups acknowledged (or not) by the test. The end-to-end cases through the real
//! libraries are in `tests/tests/file_*.rs`.

use super::options::Settings;
use super::task::FileTask;
use crate::api::prelude::*;
use crate::api::Volatile;
use crate::stats::Stats;
use crate::store::Store;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let d = std::env::temp_dir().join(format!(
            "input-file-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("logs")).unwrap();
        Self(d)
    }
    fn logs(&self) -> PathBuf {
        self.0.join("logs")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A config's input over a store, restartable like a process.
struct Rig {
    dir: Dir,
    detail: Value,
    store: Store,
    stats: Stats,
    volatile: Arc<Volatile>,
    /// The engine's shared objects (one file watcher for every task of the rig).
    shared: Arc<Volatile>,
    task: FileTask,
    source: Bytes,
}

impl Rig {
    fn new(name: &str, detail: impl Fn(&Path) -> Value) -> Self {
        let dir = Dir::new(name);
        let detail = detail(&dir.logs());
        let store = Store::open(&dir.0.join("store")).unwrap().store;
        let stats = Stats::default();
        let volatile = Arc::new(Volatile::default());
        let shared = Arc::new(Volatile::default());
        let task = Self::task(&detail, &store, &stats, &volatile, &shared);
        Self {
            dir,
            detail,
            store,
            stats,
            volatile,
            shared,
            task,
            source: Bytes::from_static(b"input_file/0"),
        }
    }

    fn task(
        detail: &Value,
        store: &Store,
        stats: &Stats,
        volatile: &Arc<Volatile>,
        shared: &Arc<Volatile>,
    ) -> FileTask {
        let mut cx = PluginContext::for_check("cfg");
        cx.store = Some(store.clone());
        cx.stats = stats.clone();
        cx.volatile = volatile.clone();
        cx.shared = shared.clone();
        cx.plugin = "input_file/0".into();
        FileTask::new(Settings::parse(detail).unwrap(), &cx)
    }

    /// A new process on the same store (what was not acknowledged is lost with the old one).
    fn restart(&mut self) {
        self.volatile = Arc::new(Volatile::default());
        self.reload();
    }

    /// A reload: a new config of the same name in the same process.
    fn reload(&mut self) {
        self.task = Self::task(
            &self.detail,
            &self.store,
            &self.stats,
            &self.volatile,
            &self.shared,
        );
    }

    /// Steps until a step produces nothing.
    fn drain(&mut self) -> Vec<EventGroup> {
        let mut all = Vec::new();
        let mut first = true;
        loop {
            let got = self.task.step(&self.source, true, first);
            first = false;
            if got.is_empty() {
                return all;
            }
            all.extend(got);
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.logs().join(name)
    }

    fn append(&self, name: &str, text: &str) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(name))
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }
}

/// Every event, decoded (the input sends them encoded, ready for the host).
fn events(groups: &[EventGroup]) -> Vec<LogEvent> {
    let mut all: Vec<LogEvent> = groups
        .iter()
        .flat_map(|g| g.events.iter().cloned())
        .collect();
    all.iter_mut().for_each(LogEvent::decode_contents);
    all
}

fn contents(groups: &[EventGroup]) -> Vec<String> {
    events(groups)
        .iter()
        .map(|e| String::from_utf8_lossy(e.get(b"content").unwrap()).into_owned())
        .collect()
}

fn numbered(from: u64, to: u64) -> String {
    (from..to).map(|i| format!("line {i:06}\n")).collect()
}

fn default_detail(logs: &Path) -> Value {
    serde_json::json!({
        "FilePaths": [format!("{}/*.log", logs.display())],

        "FlushTimeoutSecs": 0,
    })
}

#[test]
fn lines_carry_the_path_tag_and_resume_after_a_restart_at_the_committed_offset() {
    let mut r = Rig::new("resume", |logs| {
        serde_json::json!({"FilePaths": [format!("{}/*.log", logs.display())],
            "AppendingLogPositionMeta": true})
    });
    r.append("a.log", &numbered(0, 10));
    let g = r.drain();
    assert_eq!(contents(&g), numbered(0, 10).lines().collect::<Vec<_>>());
    let path = r.path("a.log").to_string_lossy().into_owned();
    assert_eq!(
        g[0].tag(b"__path__").map(|v| v.as_ref()),
        Some(path.as_bytes())
    );
    assert!(g[0].tag(b"__inode__").is_some());
    assert_eq!(
        events(&g)[1].get(b"__file_offset__").unwrap().as_ref(),
        b"12"
    );
    drop(g); // delivered
    r.append("a.log", &numbered(10, 20));
    let pending = r.drain();
    assert_eq!(contents(&pending).len(), 10);
    // Not acknowledged: a restart reads them again, and only them.
    std::mem::forget(pending); // lost with the process
    r.restart();
    let again = r.drain();
    assert_eq!(
        contents(&again),
        numbered(10, 20).lines().collect::<Vec<_>>()
    );
}

#[test]
fn tail_size_applies_only_to_files_present_at_a_tasks_first_start() {
    let mut r = Rig::new(
        "tail",
        |logs| serde_json::json!({"FilePaths": [format!("{}/*.log", logs.display())], "TailSizeKB": 1}),
    );
    r.append("old.log", &numbered(0, 1000)); // 12 kB
    let got = contents(&r.drain());
    assert!(
        got.len() < 100 && got.len() > 50,
        "about 1 KiB from the end: {}",
        got.len()
    );
    assert_eq!(got.last().unwrap(), "line 000999");
    assert!(
        got[0].starts_with("line "),
        "starts at a line start: {}",
        got[0]
    );
    r.append("new.log", &numbered(0, 1000));
    assert_eq!(r.drain().iter().map(EventGroup::len).sum::<usize>(), 1000);
}

#[test]
fn a_reload_continues_where_its_predecessor_read_and_hands_over_unacknowledged_data() {
    let mut r = Rig::new("reload", default_detail);
    r.append("a.log", &numbered(0, 100));
    let inflight = r.drain();
    r.reload();
    r.append("a.log", &numbered(100, 150));
    let next = r.drain();
    assert_eq!(
        contents(&next),
        numbered(100, 150).lines().collect::<Vec<_>>()
    );
    // The successor's commits wait for what the predecessor handed over.
    drop(next);
    r.restart();
    let after_crash = contents(&r.drain());
    assert_eq!(
        after_crash.len(),
        150,
        "nothing was acknowledged in order yet"
    );
    drop(inflight);
}

#[test]
fn copytruncate_reads_the_rest_from_the_copy_and_then_the_new_content() {
    let mut r = Rig::new("copytruncate", default_detail);
    r.append("app.log", &numbered(0, 100));
    assert_eq!(r.drain().iter().map(EventGroup::len).sum::<usize>(), 100);
    r.append("app.log", &numbered(100, 150)); // not read before the rotation
    fs::copy(r.path("app.log"), r.path("app.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(r.path("app.log"))
        .unwrap()
        .set_len(0)
        .unwrap();
    r.append("app.log", &numbered(150, 160));
    let got = contents(&r.drain());
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        numbered(100, 160).lines().collect::<Vec<_>>(),
        "{got:?}"
    );
    let alarms = r.stats.take_alarms().0;
    assert!(
        alarms.iter().any(|a| a.kind.name() == "LOG_TRUNCATE_ALARM"),
        "{alarms:?}"
    );
}

#[test]
fn inode_reuse_and_identical_first_lines_are_told_apart() {
    let mut r = Rig::new("identity", default_detail);
    let head = "2026-12-01 00:00:00 same first line of every file\n";
    r.append("a.log", &format!("{head}{}", numbered(0, 5)));
    r.append("b.log", &format!("{head}{}", numbered(5, 10)));
    assert_eq!(r.drain().iter().map(EventGroup::len).sum::<usize>(), 12);
    // A new file under the old name, possibly on the same inode: read from its start.
    fs::remove_file(r.path("a.log")).unwrap();
    r.append("a.log", &format!("{head}{}", numbered(10, 20)));
    let got = contents(&r.drain());
    assert_eq!(got.len(), 11, "{got:?}");
}

#[test]
fn long_lines_are_cut_into_marked_pieces() {
    let mut r = Rig::new("cut", |logs| {
        serde_json::json!({"FilePaths": [format!("{}/*.log", logs.display())],
            "MaxLineBytes": 1000})
    });
    let long = "x".repeat(2500);
    r.append("a.log", &format!("short\n{long}\nafter\n"));
    let g = r.drain();
    let events = events(&g);
    let cuts: Vec<String> = events
        .iter()
        .filter_map(|e| e.get(b"__line_cut__"))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert_eq!(cuts, ["1", "2", "3"]);
    let joined: String = events[1..4]
        .iter()
        .map(|e| String::from_utf8_lossy(e.get(b"content").unwrap()).into_owned())
        .collect();
    assert_eq!(joined, long);
    assert_eq!(contents(&g).last().unwrap(), "after");
}

#[test]
fn gbk_files_arrive_as_utf8() {
    let mut r = Rig::new("gbk", |logs| {
        serde_json::json!({"FilePaths": [format!("{}/*.log", logs.display())],
            "FileEncoding": "gbk"})
    });
    fs::write(r.path("a.log"), b"\xd6\xd0\xce\xc4 ok\n").unwrap();
    assert_eq!(contents(&r.drain()), ["中文 ok"]);
}

#[test]
fn a_symlink_to_rotating_files_follows_each_target_to_its_end() {
    let mut r = Rig::new(
        "symlink",
        |logs| serde_json::json!({"FilePaths": [format!("{}/current", logs.display())]}),
    );
    r.append("app-1.log", &numbered(0, 10));
    std::os::unix::fs::symlink(r.path("app-1.log"), r.path("current")).unwrap();
    let mut got = contents(&r.drain());
    // The writer moves on to a new file and the link with it; the old file gets a last line.
    r.append("app-2.log", &numbered(10, 20));
    let tmp = r.path("current.tmp");
    std::os::unix::fs::symlink(r.path("app-2.log"), &tmp).unwrap();
    fs::rename(&tmp, r.path("current")).unwrap();
    r.append("app-1.log", &numbered(20, 21));
    got.extend(contents(&r.drain()));
    got.sort();
    assert_eq!(got, numbered(0, 21).lines().collect::<Vec<_>>());
    let g = r.drain();
    assert!(g.is_empty(), "nothing read twice: {:?}", contents(&g));
}

#[test]
fn unmatched_lines_discarded_by_the_multiline_option_are_counted_and_alarmed() {
    let mut r = Rig::new("discard", |logs| {
        serde_json::json!({"FilePaths": [format!("{}/*.log", logs.display())],
            "FlushTimeoutSecs": 0,
            "Multiline": {"StartPattern": "START.*", "UnmatchedContentTreatment": "discard"}})
    });
    r.append("a.log", "junk 1\njunk 2\nSTART a\n  more\nSTART b\n");
    let got = contents(&r.drain());
    assert_eq!(got, ["START a\n  more", "START b"]);
    let stats = r.stats.plugin("cfg", "input_file/0");
    assert_eq!(stats.dropped.load(std::sync::atomic::Ordering::Relaxed), 2);
    let alarms = r.stats.take_alarms().0;
    assert!(
        alarms.iter().any(|a| a.kind == AlarmType::DataDropped),
        "{alarms:?}"
    );
}

#[test]
fn an_instance_idle_past_the_limit_ends_and_its_file_is_taken_up_where_it_was() {
    let mut r = Rig::new("dormant", |logs| {
        serde_json::json!({"FilePaths": [format!("{}/*.log", logs.display())],
            "CloseInactiveSecs": 1, "InstanceIdleSecs": 1})
    });
    r.append("a.log", &numbered(0, 10));
    assert_eq!(contents(&r.drain()).len(), 10);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(r.drain().is_empty());
    assert_eq!(r.task.instances(), 0, "the idle instance ended");
    r.append("a.log", &numbered(10, 15));
    assert_eq!(
        contents(&r.drain()),
        numbered(10, 15).lines().collect::<Vec<_>>()
    );
    assert_eq!(r.task.instances(), 1);
}

#[test]
fn a_removed_configs_state_and_the_engines_watcher_are_freed() {
    let mut r = Rig::new("freed", default_detail);
    r.append("a.log", &numbered(0, 3));
    assert_eq!(contents(&r.drain()).len(), 3);
    let (volatile, shared) = (Arc::downgrade(&r.volatile), Arc::downgrade(&r.shared));
    drop(r);
    assert!(
        volatile.upgrade().is_none(),
        "the trackers keep the config's state alive"
    );
    assert!(
        shared.upgrade().is_none(),
        "the watcher outlives the engine"
    );
}

/// What the model-based test does to the files and the process.
#[derive(Debug, Clone)]
enum Op {
    /// Appends lines to the live file.
    Write(u8),
    /// Renames the live file away (out of the glob; the next write starts a new one).
    Rotate,
    /// Reads and acknowledges everything, then truncates the live file.
    Truncate,
    /// Copies the live file away (out of the glob) and truncates it, as logrotate's
    /// copytruncate does (what was not read yet is in the copy).
    CopyTruncate,
    /// Reads and acknowledges everything, deletes the live file (the next write starts a new
    /// one).
    Delete,
    /// Reads; acknowledges what was read (or keeps it in flight).
    Read(bool),
    /// A new process: what was in flight is lost.
    Restart,
    /// A new config of the same name: what was in flight is handed over.
    Reload,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..40).prop_map(Op::Write),
        1 => Just(Op::Rotate),
        1 => Just(Op::Truncate),
        1 => Just(Op::CopyTruncate),
        1 => Just(Op::Delete),
        3 => any::<bool>().prop_map(Op::Read),
        1 => Just(Op::Restart),
        1 => Just(Op::Reload),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Whatever happens to the file and the process, every line written is delivered exactly
    /// once: what was acknowledged is never read again, what was not is read again after a
    /// crash, and rotation, truncation and deletion lose nothing that was written.
    #[test]
    fn every_line_is_delivered_exactly_once(ops in proptest::collection::vec(op(), 1..30)) {
        let mut r = Rig::new("model", default_detail);
        let mut next = 0u64;
        let mut rotated = 0;
        let mut delivered: BTreeMap<String, u32> = BTreeMap::new();
        let mut inflight: Vec<EventGroup> = Vec::new();
        let ack = |groups: &mut Vec<EventGroup>, delivered: &mut BTreeMap<String, u32>| {
            for line in contents(groups) {
                *delivered.entry(line).or_default() += 1;
            }
            groups.clear();
        };
        for op in ops {
            match op {
                Op::Write(n) => {
                    r.append("app.log", &numbered(next, next + u64::from(n)));
                    next += u64::from(n);
                }
                Op::Rotate => {
                    // The agent runs alongside: it has seen the file before it is renamed
                    // (what it read is still in flight).
                    inflight.extend(r.drain());
                    rotated += 1;
                    let _ = fs::rename(r.path("app.log"), r.path(&format!("app.log.{rotated}")));
                }
                Op::CopyTruncate => {
                    inflight.extend(r.drain());
                    rotated += 1;
                    let copy = r.path(&format!("app.log.{rotated}"));
                    if fs::copy(r.path("app.log"), copy).is_ok() {
                        let f = OpenOptions::new().write(true).open(r.path("app.log")).unwrap();
                        f.set_len(0).unwrap();
                    }
                }
                Op::Truncate | Op::Delete => {
                    inflight.extend(r.drain());
                    ack(&mut inflight, &mut delivered);
                    if matches!(op, Op::Truncate) {
                        if let Ok(f) = OpenOptions::new().write(true).open(r.path("app.log")) {
                            f.set_len(0).unwrap();
                        }
                    } else {
                        let _ = fs::remove_file(r.path("app.log"));
                    }
                }
                Op::Read(acked) => {
                    inflight.extend(r.drain());
                    if acked {
                        ack(&mut inflight, &mut delivered);
                    }
                }
                Op::Restart => {
                    // A crash: what was in flight is never acknowledged.
                    std::mem::forget(std::mem::take(&mut inflight));
                    r.restart();
                }
                Op::Reload => r.reload(),
            }
        }
        inflight.extend(r.drain());
        ack(&mut inflight, &mut delivered);
        let missing: Vec<u64> = (0..next)
            .filter(|i| !delivered.contains_key(&format!("line {i:06}")))
            .collect();
        let repeated: Vec<(&String, &u32)> = delivered.iter().filter(|(_, n)| **n > 1).collect();
        prop_assert!(missing.is_empty(), "missing {:?}", missing);
        prop_assert!(repeated.is_empty(), "repeated {:?}", repeated);
    }
}
