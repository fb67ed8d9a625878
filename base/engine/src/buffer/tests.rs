//! The framework against a scripted destination (an output that records what it was given
//! and fails when told to): counts, not "it ran".

use super::*;
use crate::ack::AckWindow;
use crate::event::LogEvent;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// A destination shared by the output instances of one test (looked up by `detail.Dest`).
#[derive(Default)]
struct Dest {
    /// Outcomes of the next writes (then Ok).
    script: Mutex<VecDeque<Result<(), WriteError>>>,
    /// Every write fails with a retry while set.
    down: AtomicBool,
    /// Records received, in order.
    got: Mutex<Vec<String>>,
    writes: AtomicUsize,
    /// Async: commits held back until released.
    held: Mutex<Vec<(Commit, Vec<String>)>>,
    hold: AtomicBool,
}

static DESTS: once_cell::sync::Lazy<Mutex<HashMap<String, Arc<Dest>>>> =
    once_cell::sync::Lazy::new(Default::default);

fn dest(name: &str) -> Arc<Dest> {
    DESTS
        .lock()
        .unwrap()
        .entry(name.to_string())
        .or_default()
        .clone()
}

struct Scripted {
    dest: Arc<Dest>,
    delayed: bool,
}

fn lines(chunk: &Chunk) -> Vec<String> {
    String::from_utf8_lossy(&chunk.body)
        .lines()
        .map(str::to_string)
        .collect()
}

impl Output for Scripted {
    fn format(&self) -> Format {
        Format::Raw {
            key: Bytes::from_static(b"n"),
        }
    }

    fn write(&mut self, chunk: &Chunk) -> Result<(), WriteError> {
        self.dest.writes.fetch_add(1, Ordering::SeqCst);
        if self.dest.down.load(Ordering::SeqCst) {
            return Err(WriteError::retry("down"));
        }
        if let Some(r) = self.dest.script.lock().unwrap().pop_front() {
            r?;
        }
        self.dest.got.lock().unwrap().extend(lines(chunk));
        Ok(())
    }

    fn try_write(&mut self, chunk: &Chunk, commit: Commit) -> Result<(), WriteError> {
        if self.dest.hold.load(Ordering::SeqCst) {
            self.dest.held.lock().unwrap().push((commit, lines(chunk)));
            return Ok(());
        }
        self.write(chunk)?;
        commit.commit();
        Ok(())
    }

    fn delayed_commit(&self) -> bool {
        self.delayed
    }
}

fn scripted(detail: &Value, _cx: &PluginContext) -> Result<Box<dyn Output>, DetailError> {
    let name = detail["Dest"]
        .as_str()
        .ok_or_else(|| DetailError::new("Dest", "missing"))?;
    Ok(Box::new(Scripted {
        dest: dest(name),
        delayed: detail["Delayed"].as_bool().unwrap_or(false),
    }))
}

fn unique(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

struct Rig {
    flusher: Box<dyn Flusher>,
    control: Arc<dyn FlusherControl>,
    cx: PluginContext,
    outbox: Arc<crate::outbox::Outbox>,
    window: Arc<AckWindow>,
    committed: Arc<AtomicU64>,
    next: u64,
}

impl Rig {
    fn new(detail: Value, secondary: Option<Value>) -> Rig {
        Self::with_cx(detail, secondary, PluginContext::for_check("cfg"))
    }

    fn with_cx(detail: Value, secondary: Option<Value>, mut cx: PluginContext) -> Rig {
        cx.plugin = "flusher_test/0".into();
        let sec = secondary.map(|d| (scripted as OutputBuild, d));
        let flusher = build(&detail, &cx, scripted, sec).unwrap_or_else(|e| panic!("{e:?}"));
        let control = flusher.control().expect("buffered");
        control.run();
        let committed = Arc::new(AtomicU64::new(0));
        let c = committed.clone();
        Rig {
            flusher,
            control,
            cx,
            outbox: crate::outbox::Outbox::new(None, &crate::services::for_tests()),
            window: AckWindow::new(move |p| c.store(p, Ordering::SeqCst)),
            committed,
            next: 0,
        }
    }

    /// Sends `n` records numbered on from the last, one group, with an ack at its end.
    fn send(&mut self, n: u64) {
        let mut g = EventGroup::default();
        for _ in 0..n {
            let mut e = LogEvent::new(1_700_000_000);
            e.set(Bytes::from_static(b"n"), Bytes::from(self.next.to_string()));
            self.next += 1;
            g.events.push(e);
        }
        g.acks.push(self.window.track(self.next));
        self.flusher.flush(&g, &*self.outbox).unwrap();
    }

    fn committed(&self) -> u64 {
        self.committed.load(Ordering::SeqCst)
    }

    fn stats(&self) -> Arc<PluginStats> {
        self.cx.stats.plugin("cfg", "flusher_test/0/buffer")
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn numbers(d: &Dest) -> Vec<u64> {
    d.got
        .lock()
        .unwrap()
        .iter()
        .map(|l| l.parse().unwrap())
        .collect()
}

fn fast(extra: Value) -> Value {
    let mut b = json!({"FlushIntervalMs": 20, "RetryWaitMs": 5, "RetryMaxIntervalMs": 20,
        "RetryRandomize": false});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

#[test]
fn every_record_arrives_once_in_order_and_acks_follow_delivery() {
    let name = unique("order");
    let d = dest(&name);
    d.down.store(true, Ordering::SeqCst);
    let mut rig = Rig::new(json!({"Dest": name, "Buffer": fast(json!({}))}), None);
    for _ in 0..50 {
        rig.send(20);
    }
    // Writes are tried (and fail) while it is down.
    wait_for("a failed write", || d.writes.load(Ordering::SeqCst) >= 2);
    assert_eq!(rig.committed(), 0, "nothing delivered, nothing committed");
    d.down.store(false, Ordering::SeqCst);
    wait_for("1000 records", || d.got.lock().unwrap().len() >= 1000);
    assert_eq!(numbers(&d), (0..1000).collect::<Vec<_>>());
    wait_for("the commit", || rig.committed() == 1000);
    let s = rig.stats();
    assert_eq!(s.events_out.load(Ordering::SeqCst), 1000);
    assert!(s.retries.load(Ordering::SeqCst) > 0);
    assert_eq!(s.dropped.load(Ordering::SeqCst), 0);
}

#[test]
fn retries_then_the_secondary_then_a_counted_drop() {
    let name = unique("sec");
    let sec = unique("sec-dest");
    let d = dest(&name);
    let s = dest(&sec);
    let mut rig = Rig::new(
        json!({"Dest": name, "Buffer": fast(json!({"RetryMaxTimes": 2, "FlushMode": "immediate"}))}),
        Some(json!({"Dest": sec})),
    );
    // 3 failed writes exhaust RetryMaxTimes 2: the chunk goes to the secondary.
    d.script
        .lock()
        .unwrap()
        .extend((0..3).map(|_| Err(WriteError::retry("503"))));
    rig.send(10);
    wait_for("the secondary", || s.got.lock().unwrap().len() == 10);
    assert_eq!(d.writes.load(Ordering::SeqCst), 3);
    // An unrecoverable chunk goes to the secondary at once.
    d.script
        .lock()
        .unwrap()
        .push_back(Err(WriteError::Unrecoverable("400".into())));
    rig.send(5);
    wait_for("the secondary", || s.got.lock().unwrap().len() == 15);
    assert_eq!(d.writes.load(Ordering::SeqCst), 4);
    wait_for("the commit", || rig.committed() == 15);
    assert_eq!(rig.stats().dropped.load(Ordering::SeqCst), 0);
    // Without a secondary: dropped, counted, and its ack is done.
    let name2 = unique("nosec");
    let d2 = dest(&name2);
    let mut rig2 = Rig::new(
        json!({"Dest": name2, "Buffer": fast(json!({"FlushMode": "immediate"}))}),
        None,
    );
    d2.script
        .lock()
        .unwrap()
        .push_back(Err(WriteError::Unrecoverable("400".into())));
    rig2.send(7);
    rig2.send(3);
    wait_for("the second group", || d2.got.lock().unwrap().len() == 3);
    assert_eq!(rig2.stats().dropped.load(Ordering::SeqCst), 7);
    wait_for("the commit", || rig2.committed() == 10);
}

#[test]
fn retry_after_and_exit_are_honoured() {
    let name = unique("after");
    let d = dest(&name);
    let mut rig = Rig::new(
        json!({"Dest": name, "Buffer": fast(json!({"FlushMode": "immediate"}))}),
        None,
    );
    d.script.lock().unwrap().push_back(Err(WriteError::Retry {
        why: "429".into(),
        after: Some(Duration::from_millis(300)),
    }));
    d.script
        .lock()
        .unwrap()
        .push_back(Err(WriteError::Exit("broken".into())));
    let start = Instant::now();
    rig.send(4);
    wait_for("delivery", || d.got.lock().unwrap().len() == 4);
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "Retry-After waited"
    );
    assert_eq!(d.writes.load(Ordering::SeqCst), 3);
}

fn produce_into_full_buffer(policy: &str) -> (u64, u64, u64) {
    let name = unique(policy);
    let d = dest(&name);
    d.down.store(true, Ordering::SeqCst);
    let mut rig = Rig::new(
        json!({"Dest": name, "Buffer": fast(json!({"OverflowAction": policy,
            "ChunkLimitSize": 1024, "TotalLimitSize": 4096, "FlushMode": "immediate"}))}),
        None,
    );
    // 3000 records of ~5 bytes, 10 per group: about 4 times the limit.
    for _ in 0..300 {
        rig.send(10);
    }
    d.down.store(false, Ordering::SeqCst);
    let produced = rig.next;
    let s = rig.stats();
    wait_for("everything settled", || {
        let got = d.got.lock().unwrap().len() as u64;
        got + s.dropped.load(Ordering::SeqCst) == produced
    });
    let got = numbers(&d);
    let mut sorted = got.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), got.len(), "no record twice");
    wait_for("the commit", || rig.committed() == produced);
    (produced, got.len() as u64, s.dropped.load(Ordering::SeqCst))
}

#[test]
fn a_full_buffer_drops_by_its_policy_and_counts_exactly() {
    let (produced, delivered, dropped) = produce_into_full_buffer("drop_newest");
    assert!(dropped > 0 && delivered > 0, "{delivered} {dropped}");
    assert_eq!(delivered + dropped, produced);
    let (produced, delivered, dropped) = produce_into_full_buffer("drop_oldest_chunk");
    assert!(dropped > 0 && delivered > 0, "{delivered} {dropped}");
    assert_eq!(delivered + dropped, produced);
}

#[test]
fn a_full_buffer_blocks_the_producer_until_there_is_room() {
    let name = unique("block");
    let d = dest(&name);
    d.down.store(true, Ordering::SeqCst);
    let rig = Rig::new(
        json!({"Dest": name, "Buffer": fast(json!({"ChunkLimitSize": 1024,
            "TotalLimitSize": 2048, "FlushMode": "immediate"}))}),
        None,
    );
    let sent = Arc::new(AtomicU64::new(0));
    let s2 = sent.clone();
    let producer = std::thread::spawn(move || {
        let mut rig = rig;
        for _ in 0..100 {
            rig.send(10);
            s2.store(rig.next, Ordering::SeqCst);
        }
        rig
    });
    std::thread::sleep(Duration::from_millis(300));
    let stuck = sent.load(Ordering::SeqCst);
    assert!(stuck < 1000, "the producer waits for room ({stuck} sent)");
    d.down.store(false, Ordering::SeqCst);
    let rig = producer.join().unwrap();
    wait_for("all", || d.got.lock().unwrap().len() == 1000);
    assert_eq!(numbers(&d), (0..1000).collect::<Vec<_>>());
    assert_eq!(rig.stats().dropped.load(Ordering::SeqCst), 0);
}

#[test]
fn chunk_keys_cut_chunks_by_tag_time_and_field() {
    let name = unique("keys");
    let d = dest(&name);
    d.down.store(true, Ordering::SeqCst);
    let cx = PluginContext::for_check("cfg");
    let detail = json!({"Dest": name, "Buffer": fast(json!({"ChunkKeys": ["tag", "time", "level"],
        "Timekey": 60, "FlushMode": "interval"}))});
    let mut rig = Rig::with_cx(detail, None, cx);
    let mut g = EventGroup::default();
    g.tags
        .push((Bytes::from_static(b"__tag__"), Bytes::from_static(b"app")));
    for (t, level) in [(0, "a"), (30, "a"), (60, "a"), (61, "b"), (5, "b")] {
        let mut e = LogEvent::new(1_700_000_040 + t);
        e.set(Bytes::from_static(b"n"), Bytes::from(t.to_string()));
        e.set(
            Bytes::from_static(b"level"),
            Bytes::from_static(level.as_bytes()),
        );
        g.events.push(e);
    }
    rig.flusher.flush(&g, &*rig.outbox).unwrap();
    let st_keys: Vec<ChunkKey> = {
        let holder: Arc<Mutex<Option<Arc<Shared>>>> = rig
            .cx
            .shared
            .object("buffer\0cfg\0flusher_test/0", || Mutex::new(None));
        let s = holder.lock().unwrap().clone().unwrap();
        let st = s.lock();
        st.staged
            .iter()
            .map(|c| c.key.clone())
            .chain(st.queue.iter().map(|q| q.chunk.key.clone()))
            .collect()
    };
    let mut seen: Vec<(i64, String)> = st_keys
        .iter()
        .map(|k| {
            assert_eq!(k.tag.as_deref(), Some(&b"app"[..]));
            (
                k.time.unwrap(),
                String::from_utf8_lossy(k.value("level").unwrap()).into_owned(),
            )
        })
        .collect();
    seen.sort();
    let w = 1_700_000_040 / 60 * 60;
    assert_eq!(
        seen,
        vec![
            (w, "a".to_string()),
            (w, "b".to_string()),
            (w + 60, "a".to_string()),
            (w + 60, "b".to_string())
        ]
    );
    d.down.store(false, Ordering::SeqCst);
    wait_for("5 records", || d.got.lock().unwrap().len() == 5);
}

#[test]
fn async_chunks_commit_when_confirmed_and_are_written_again_when_not() {
    let name = unique("async");
    let d = dest(&name);
    d.hold.store(true, Ordering::SeqCst);
    let mut rig = Rig::new(
        json!({"Dest": name, "Delayed": true, "Buffer": fast(json!({"FlushMode": "immediate",
            "DelayedCommitTimeoutSecs": 1}))}),
        None,
    );
    rig.send(3);
    rig.send(2);
    wait_for("two writes held", || d.held.lock().unwrap().len() == 2);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(rig.committed(), 0, "not confirmed yet");
    // Confirm the first; roll the second back: it is written again.
    let mut held: Vec<_> = d.held.lock().unwrap().drain(..).collect();
    let (second, _) = held.pop().unwrap();
    let (first, lines1) = held.pop().unwrap();
    assert_eq!(lines1, ["0", "1", "2"]);
    first.commit();
    wait_for("the first commit", || rig.committed() == 3);
    second.rollback(WriteError::retry("nack"));
    wait_for("written again", || d.held.lock().unwrap().len() == 1);
    // Never answered: after DelayedCommitTimeoutSecs it is written again.
    d.hold.store(false, Ordering::SeqCst);
    let stale = d.held.lock().unwrap().pop().unwrap();
    wait_for("the rewrite after the timeout", || {
        d.got.lock().unwrap().len() == 2
    });
    wait_for("the commit", || rig.committed() == 5);
    stale.0.commit(); // a late answer is ignored
    assert_eq!(rig.stats().events_out.load(Ordering::SeqCst), 5);
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(unique(name));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn a_disk_buffer_commits_once_synced_and_survives_its_process() {
    let name = unique("disk");
    let dir = tmp_dir("pb-buf");
    let d = dest(&name);
    d.down.store(true, Ordering::SeqCst);
    let detail = json!({"Dest": name, "Buffer": fast(json!({"Type": "file",
        "Path": dir.to_str().unwrap(), "ChunkLimitSize": 4096, "SyncIntervalMs": 10}))});
    let mut rig = Rig::new(detail.clone(), None);
    for _ in 0..100 {
        rig.send(10);
    }
    // Durable on disk: the inputs may commit although nothing was delivered.
    wait_for("the commit after the sync", || rig.committed() == 1000);
    assert!(d.got.lock().unwrap().is_empty());
    // "kill -9": the flush threads stop and nothing is settled; a new process reads the files.
    rig.control.stop(Stopping::Park);
    std::thread::sleep(Duration::from_millis(50));
    std::mem::forget(rig);
    let files = disk::list(&dir).unwrap();
    assert!(files.len() > 1, "several chunk files");
    // Cut the newest chunk file in its last frame, as a crash would.
    let last = files.last().unwrap();
    let len = std::fs::metadata(last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len - 2)
        .unwrap();
    let cx = PluginContext::for_check("cfg");
    let rig2 = Rig::with_cx(detail, None, cx);
    d.down.store(false, Ordering::SeqCst);
    wait_for("recovered records", || {
        rig2.stats().queue_depth.load(Ordering::SeqCst) == 0 && d.got.lock().unwrap().len() >= 990
    });
    std::thread::sleep(Duration::from_millis(100));
    let got = numbers(&d);
    // Everything but the cut frame (the last group of 10, at most), in order, once.
    assert!(got.len() >= 990 && got.len() < 1000, "{}", got.len());
    assert_eq!(got, (0..got.len() as u64).collect::<Vec<_>>());
    wait_for("the files removed", || disk::list(&dir).unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_successor_takes_the_buffer_over() {
    let name = unique("reload");
    let d = dest(&name);
    d.down.store(true, Ordering::SeqCst);
    let cx = PluginContext::for_check("cfg");
    let detail = json!({"Dest": name, "Buffer": fast(json!({}))});
    let mut rig = Rig::with_cx(detail.clone(), None, cx.clone());
    rig.send(30);
    rig.control.stop(Stopping::Park);
    rig.control.finish(Instant::now());
    // The successor, with the same buffer options, built in the same engine.
    let mut rig2 = Rig::with_cx(detail, None, cx);
    rig2.next = 30;
    rig2.send(20);
    d.down.store(false, Ordering::SeqCst);
    wait_for("50 records", || d.got.lock().unwrap().len() == 50);
    assert_eq!(numbers(&d), (0..50).collect::<Vec<_>>());
}

#[test]
fn a_memory_buffer_at_exit_delivers_until_the_deadline_then_loses_without_committing() {
    let name = unique("exit");
    let d = dest(&name);
    d.down.store(true, Ordering::SeqCst);
    let mut rig = Rig::new(json!({"Dest": name, "Buffer": fast(json!({}))}), None);
    rig.send(10);
    let deadline = Instant::now() + Duration::from_millis(200);
    rig.control.stop(Stopping::Exit { deadline });
    rig.control.finish(deadline);
    assert_eq!(rig.stats().dropped.load(Ordering::SeqCst), 10);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(rig.committed(), 0, "lost data is not committed");
}
