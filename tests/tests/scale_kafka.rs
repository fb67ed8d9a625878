//! `flusher_kafka_v2` end to end: numbered lines in real files → `input_file` →
//! `flusher_kafka_v2` in the real libraries (through `host-harness run`) → librdkafka's mock
//! cluster (the Kafka broker protocol, in this test process, on 127.0.0.1) → a consumer in
//! this process that counts every line:
//!
//! - 50,000 lines through a 3-broker cluster, `RequiredACKs: -1` (the idempotent
//!   producer), lz4, `hash` partitioning by the line: every line exactly once;
//! - every broker down for 6 s while lines keep coming (beyond the 2 s `Timeout`, so
//!   deliveries fail, chunks roll back and the framework writes them again), then up: every
//!   line at least once in the topic (read from its start by a new consumer once the
//!   buffer delivered everything), duplicates counted and reported;
//! - a real Kafka broker (`$KAFKA_BOOTSTRAP`, e.g. `127.0.0.1:9092`, with topic
//!   `e2e-logs`): skipped, saying so, when unset (none is installable here).
//!
//! Quiet on success; with `E2E_FILE_REPORT=1` (and `--nocapture`) each test prints what it
//! observed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use e2e_tests::file::{
    base_detail, report, stderr_end, test_dir, BackgroundWriter, FileLog, HarnessRun, Tally,
    Writer, STOP,
};
use e2e_tests::util::wait_until;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::Message;
use serde_json::{json, Value};

const TAG: &str = "k";
const PAD: usize = 24;
const WAIT: Duration = Duration::from_secs(60);
const STATS: [&str; 2] = ["--stats", "--stats-interval-ms=500"];

/// A pipeline: `input_file` on `<logs>/*.log` → `flusher_kafka_v2` with `detail`.
fn kafka_config(logs: &Path, detail: Value) -> String {
    let mut input = base_detail(&[&logs.join("*.log")]);
    // Files written before the start are read whole (not only their last MiB).
    input.insert("TailSizeKB".into(), json!(1 << 20));
    json!({
        "global": {"AggregatIntervalMs": 100},
        "inputs": [{"type": "input_file", "detail": Value::Object(input)}],
        "flushers": [{"type": "flusher_kafka_v2", "detail": detail}],
    })
    .to_string()
}

/// Partition → messages read, low and high watermark.
type PerPartition = BTreeMap<i32, (usize, i64, i64)>;

/// A consumer of `topic` from its start, in a thread, keeping every record's `contents`.
struct Consumed {
    records: Arc<Mutex<Vec<FileLog>>>,
    /// Messages read per partition, and the partitions' low and high watermarks.
    partitions: Arc<Mutex<PerPartition>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Consumed {
    fn start(bootstrap: &str, topic: &str) -> Consumed {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", format!("e2e-{}", std::process::id()))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("a consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let records = Arc::new(Mutex::new(Vec::new()));
        let partitions = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let topic = topic.to_string();
        let thread = std::thread::spawn({
            let (records, partitions, stop) = (records.clone(), partitions.clone(), stop.clone());
            move || {
                let mut checked = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if checked.elapsed() > Duration::from_secs(2) {
                        checked = Instant::now();
                        let t = Duration::from_millis(500);
                        let count = consumer.fetch_metadata(Some(&topic), t).map_or(0, |md| {
                            md.topics().first().map_or(0, |t| t.partitions().len())
                        });
                        for p in 0..count as i32 {
                            if let Ok((lo, hi)) = consumer.fetch_watermarks(&topic, p, t) {
                                let mut parts =
                                    partitions.lock().unwrap_or_else(|e| e.into_inner());
                                let e: &mut (usize, i64, i64) = parts.entry(p).or_default();
                                (e.1, e.2) = (lo, hi);
                            }
                        }
                    }
                    let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
                        continue;
                    };
                    partitions
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(m.partition())
                        .or_default()
                        .0 += 1;
                    let v: Value = m
                        .payload()
                        .and_then(|p| serde_json::from_slice(p).ok())
                        .unwrap_or(Value::Null);
                    let contents = v["contents"]
                        .as_object()
                        .map(|o| {
                            o.iter()
                                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                                .collect()
                        })
                        .unwrap_or_default();
                    let log = FileLog {
                        tags: BTreeMap::new(),
                        contents,
                    };
                    records.lock().unwrap().push(log);
                }
            }
        });
        Consumed {
            records,
            partitions,
            stop,
            thread: Some(thread),
        }
    }

    fn tally(&self) -> Tally {
        Tally::of(&self.records.lock().unwrap())
    }

    fn count(&self) -> usize {
        self.records.lock().unwrap().len()
    }

    /// Waits until every key of `expected` arrived, then until the count has been still for
    /// a second (late duplicates would show); panics with the tally on timeout.
    fn wait_all(&self, run: &HarnessRun, expected: &BTreeSet<(String, u64)>, what: &str) -> Tally {
        if !wait_until(WAIT, || self.tally().has_all(expected)) {
            let t = self.tally();
            panic!(
                "{what}: not every line arrived within {WAIT:?}: {}; read per partition \
                 (count, low, high watermark): {:?}\n{}",
                t.exactly_once(expected)
                    .err()
                    .unwrap_or_else(|| t.summary()),
                self.partitions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
                stderr_end("stderr", &run.stderr())
            );
        }
        let (mut last, mut since) = (self.count(), Instant::now());
        while since.elapsed() < Duration::from_secs(1) {
            std::thread::sleep(Duration::from_millis(50));
            if self.count() != last {
                (last, since) = (self.count(), Instant::now());
            }
        }
        self.tally()
    }
}

impl Drop for Consumed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The last statistics of the buffer of `config`'s `flusher_kafka_v2` (counter name → value).
fn buffer_stats(run: &HarnessRun, config: &str) -> BTreeMap<String, u64> {
    e2e_tests::file::buffer_stats(&run.stdout(), config, "flusher_kafka_v2").unwrap_or_default()
}

fn duplicates(t: &Tally) -> usize {
    t.counts.values().map(|c| c - 1).sum()
}

/// 50,000 lines, 3 brokers, all replicas acknowledge (idempotent producer), lz4, hash by
/// the line (spread over the partitions: the mock cluster keeps only the last 5 MB or
/// 100,000 messages of a partition): every line exactly once.
#[test]
fn kafka_mock_cluster_gets_every_line_once() {
    const N: u64 = 50_000;
    let cluster = MockCluster::new(3).expect("a mock cluster");
    cluster.create_topic("logs", 6, 3).expect("topic");
    let (dir, logs) = test_dir("kafka-once");
    let config = kafka_config(
        &logs,
        json!({
            "Brokers": [cluster.bootstrap_servers()],
            "Topic": "logs",
            "RequiredACKs": -1,
            "Compression": "lz4",
            "PartitionerType": "hash",
            "HashKeys": ["content.content"],
            "Buffer": {"ChunkLimitSize": 256 * 1024},
        }),
    );
    let consumed = Consumed::start(&cluster.bootstrap_servers(), "logs");
    let mut w = Writer::open(&logs.join("app.log"), TAG, PAD);
    w.write(N);
    let expected = w.written();
    let started = Instant::now();
    let run = HarnessRun::start_in(dir.path(), "kafka_once", &config, &STATS);
    let t = consumed.wait_all(&run, &expected, "mock cluster");
    let took = started.elapsed();
    let ctx = stderr_end("stderr", &run.stderr());
    let stats = buffer_stats(&run, "kafka_once");
    let fin = run.stop(STOP);
    t.assert_exactly_once(&expected, "every line exactly once", &ctx);
    report(
        "kafka_mock_cluster_gets_every_line_once",
        format!(
            "{}; all in {took:?} (with the harness start); buffer stats {stats:?}; exit {:?}",
            t.summary_for(&expected),
            fin.code
        ),
    );
}

/// Every broker down for 6 s while lines are written (2 s `Timeout`: deliveries fail and the
/// framework writes the chunks again), then up: every line at least once; duplicates are
/// counted and reported. `roundrobin` over 6 partitions keeps each partition well under the
/// 5 MB the mock cluster keeps.
#[test]
fn kafka_broker_outage_loses_nothing() {
    let cluster = MockCluster::new(3).expect("a mock cluster");
    cluster.create_topic("logs", 6, 3).expect("topic");
    let (dir, logs) = test_dir("kafka-outage");
    let config = kafka_config(
        &logs,
        json!({
            "Brokers": [cluster.bootstrap_servers()],
            "Topic": "logs",
            "Timeout": "2s",
            "RequiredACKs": -1,
            "PartitionerType": "roundrobin",
            "Buffer": {"ChunkLimitSize": 32 * 1024, "RetryWaitMs": 100, "RetryMaxIntervalMs": 1000},
        }),
    );
    let run = HarnessRun::start_in(dir.path(), "kafka_outage", &config, &STATS);
    let writer = BackgroundWriter::start(
        Writer::open(&logs.join("app.log"), TAG, PAD),
        100,
        Duration::from_millis(20),
    );
    let out = |run: &HarnessRun| buffer_stats(run, "kafka_outage").get("events_out").copied();
    let some = wait_until(WAIT, || out(&run).unwrap_or(0) >= 2000);
    assert!(
        some,
        "nothing delivered before the outage\n{}",
        stderr_end("stderr", &run.stderr())
    );
    for b in 1..=3 {
        cluster.broker_down(b).expect("broker down");
    }
    let before = out(&run).unwrap_or(0);
    std::thread::sleep(Duration::from_secs(6));
    let during = out(&run).unwrap_or(0) - before;
    for b in 1..=3 {
        cluster.broker_up(b).expect("broker up");
    }
    std::thread::sleep(Duration::from_secs(2));
    let expected = writer.stop();
    let n = expected.len() as u64;
    let delivered = wait_until(WAIT, || out(&run).unwrap_or(0) >= n);
    let ctx = stderr_end("stderr", &run.stderr());
    assert!(
        delivered,
        "the buffer did not deliver every line: {:?}\n{ctx}",
        out(&run)
    );
    // What the topic holds, read from its start by a new consumer once all is delivered.
    let consumed = Consumed::start(&cluster.bootstrap_servers(), "logs");
    let t = consumed.wait_all(&run, &expected, "after the outage");
    let stats = buffer_stats(&run, "kafka_outage");
    let fin = run.stop(STOP);
    let missing = expected
        .iter()
        .filter(|k| !t.counts.contains_key(*k))
        .count();
    assert_eq!(
        missing,
        0,
        "every line at least once: {}\n{ctx}",
        t.summary()
    );
    assert!(
        stats.get("retries").copied().unwrap_or(0) > 0,
        "the outage made no chunk fail: {stats:?}\n{ctx}"
    );
    report(
        "kafka_broker_outage_loses_nothing",
        format!(
            "{}; {during} records committed during the 6 s outage; \
             buffer stats {stats:?}; exit {:?}",
            t.summary_for(&expected),
            fin.code
        ),
    );
}

/// A real broker at `$KAFKA_BOOTSTRAP` (topic `e2e-logs` made beforehand or auto-created):
/// every line exactly once. Skipped, saying so, without one.
#[test]
fn kafka_real_broker_when_present() {
    let Some(bootstrap) = std::env::var("KAFKA_BOOTSTRAP")
        .ok()
        .filter(|b| !b.is_empty())
    else {
        eprintln!("skipped: no real Kafka broker (set KAFKA_BOOTSTRAP=host:port)");
        return;
    };
    const N: u64 = 20_000;
    let (dir, logs) = test_dir("kafka-real");
    let topic = "e2e-logs";
    let consumed = Consumed::start(&bootstrap, topic);
    // Lines already in the topic from an earlier run are told apart by their tag.
    let tag = format!("r{}", std::process::id());
    let config = kafka_config(
        &logs,
        json!({"Brokers": [bootstrap], "Topic": topic, "RequiredACKs": -1, "Compression": "zstd"}),
    );
    let mut w = Writer::open(&logs.join("app.log"), &tag, PAD);
    w.write(N);
    let expected = w.written();
    let run = HarnessRun::start_in(dir.path(), "kafka_real", &config, &STATS);
    let ok = wait_until(WAIT, || consumed.tally().has_all(&expected));
    let ctx = stderr_end("stderr", &run.stderr());
    let fin = run.stop(STOP);
    let all = consumed.tally();
    let mine = Tally {
        counts: all
            .counts
            .into_iter()
            .filter(|((t, _), _)| *t == tag)
            .collect(),
        ..Tally::default()
    };
    assert!(ok, "not every line arrived: {}\n{ctx}", mine.summary());
    let dups = duplicates(&mine);
    assert_eq!(dups, 0, "duplicates at a healthy broker\n{ctx}");
    report(
        "kafka_real_broker_when_present",
        format!("{} distinct of {N}; exit {:?}", mine.distinct(), fin.code),
    );
}
