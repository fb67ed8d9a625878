//! `flusher_kafka_v2`: each record is one Kafka message (iLogtail's flusher of that name,
//! `plugins/flusher/kafkav2`, as an [`Output`] on librdkafka).
//!
//! The framework buffers and retries chunks; a chunk is one topic (the `Topic` template's
//! placeholders are chunk keys). Writing a chunk produces every message of it, and the
//! chunk is committed only once the broker acknowledged every one (librdkafka's delivery
//! reports, [`Output::delayed_commit`]); one failed message rolls the chunk back. The
//! messages of a rolled-back chunk that were acknowledged are remembered (per chunk id, for
//! the [`ACKED_KEPT`] latest chunks of this instance) and not sent again when it is retried
//! by the same instance; otherwise they are sent twice (Kafka is at least once here).
//!
//! Options, as iLogtail names them: `Brokers`, `Topic` (`%{content.<key>}`,
//! `%{tag.<name>}`, and our `${<chunk key>}`), `Version`, `Timeout`, `BrokerTimeout`,
//! `KeepAlive`, `PartitionerType` (`random`, `roundrobin`, `hash`) with `HashKeys` and
//! `HashOnce`, `RequiredACKs` (also `RequiredAcks`), `Compression` and `CompressionLevel`,
//! `MaxMessageBytes`, `MaxOpenRequests`, `MaxRetries`, `Backoff` {`Init`, `Max`},
//! `BulkMaxSize`, `BulkFlushFrequency`, `Metadata` {`RefreshFrequency`; `Retry`, `Full`
//! accepted}, `Headers` [{`Key`, `Value`}], `ClientID`, `ChanBufferSize` (no effect),
//! `Convert` {`Protocol`: `custom_single` or `custom_single_flatten`; `Encoding`: `json`;
//! `TagFieldsRename`, `ProtocolFieldsRename`}, `Authentication` {`PlainText` {`Username`,
//! `Password`}, `SASL` {`SaslMechanism`: `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`,
//! `Username`, `Password`}, `TLS` {`Enabled`, `CAFile`, `CertFile`, `KeyFile`,
//! `InsecureSkipVerify`}}. Refused, naming the field: `Kerberos`, `GSSAPI`, TLS
//! `MinVersion`/`MaxVersion`, other protocols. Ours: `Idempotent` (default true: the
//! idempotent producer when `RequiredACKs` is -1) and `Properties` (librdkafka settings,
//! applied last).
//!
//! Differences from iLogtail: `${name}` is a chunk key here, not an environment variable;
//! a record's keys keep their order (Go sorts and de-duplicates them); `hash` uses
//! librdkafka's `fnv1a` partitioner, which places keys as sarama's hash partitioner does.

mod options;
mod record;
#[cfg(test)]
mod tests;

use crate::api::prelude::*;
use options::{settings, Partitioner};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use record::{frames, RecordEncoder, Topic};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a write waits for room in librdkafka's queue before it gives up (retried).
const QUEUE_WAIT: Duration = Duration::from_secs(5);
/// How long dropping the output waits for messages in flight.
const DROP_FLUSH: Duration = Duration::from_secs(5);
/// Rolled-back chunks whose acknowledged messages are remembered.
const ACKED_KEPT: usize = 1024;
/// How long the partition count of a topic is trusted (`roundrobin`).
const PARTITIONS_TTL: Duration = Duration::from_secs(60);

pub(crate) fn build(detail: &Value, cx: &PluginContext) -> Result<Box<dyn Output>, DetailError> {
    let s = settings(detail, cx)?;
    Ok(Box::new(KafkaOutput {
        config: s.config,
        topic: s.topic,
        partitioner: s.partitioner,
        headers: s.headers,
        encoder: s.encoder,
        message_timeout: s.message_timeout,
        producer: None,
        book: Arc::new(AckBook::default()),
        partitions: HashMap::new(),
    }))
}

/// Acknowledged messages of rolled-back chunks, by chunk id (the latest [`ACKED_KEPT`]).
#[derive(Default)]
struct AckBook {
    chunks: Mutex<Remembered>,
}

/// Acknowledged flags by chunk id, and the ids oldest first.
type Remembered = (HashMap<u64, Vec<bool>>, VecDeque<u64>);

impl AckBook {
    fn remember(&self, id: u64, acked: Vec<bool>) {
        let mut g = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *g;
        if map.insert(id, acked).is_none() {
            order.push_back(id);
        }
        while order.len() > ACKED_KEPT {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    /// What was acknowledged of chunk `id` when it has `records` messages.
    fn take(&self, id: u64, records: usize) -> Option<Vec<bool>> {
        let mut g = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *g;
        let acked = map.remove(&id)?;
        order.retain(|&i| i != id);
        (acked.len() == records).then_some(acked)
    }
}

/// A chunk whose messages are in flight.
struct InFlight {
    id: u64,
    book: Arc<AckBook>,
    state: Mutex<FlightState>,
}

struct FlightState {
    /// Messages not answered yet.
    remaining: usize,
    acked: Vec<bool>,
    /// The first failure.
    error: Option<WriteError>,
    commit: Option<Commit>,
}

impl InFlight {
    /// `n` messages are answered: acknowledged (`index`), or failed with `error`.
    fn answer(&self, index: Option<usize>, n: usize, error: Option<WriteError>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = index.filter(|_| error.is_none()) {
            if let Some(a) = st.acked.get_mut(i) {
                *a = true;
            }
        }
        if st.error.is_none() {
            st.error = error;
        }
        st.remaining = st.remaining.saturating_sub(n);
        if st.remaining > 0 {
            return;
        }
        let Some(commit) = st.commit.take() else {
            return;
        };
        match st.error.take() {
            None => commit.commit(),
            Some(e) => {
                let acked = std::mem::take(&mut st.acked);
                drop(st);
                if acked.iter().any(|&a| a) {
                    self.book.remember(self.id, acked);
                }
                commit.rollback(e);
            }
        }
    }
}

/// What the delivery callback gets with each message.
struct Pending {
    chunk: Arc<InFlight>,
    index: usize,
}

/// The producer's context: delivery reports answer their chunk.
struct Reports {
    /// librdkafka raised a fatal error (the idempotent producer): the producer is replaced.
    fatal: Arc<AtomicBool>,
}

impl ClientContext for Reports {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        use RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::error!(target: "flusher_kafka_v2", "librdkafka {fac}: {message}")
            }
            L::Warning => tracing::warn!(target: "flusher_kafka_v2", "librdkafka {fac}: {message}"),
            L::Notice | L::Info => {
                tracing::info!(target: "flusher_kafka_v2", "librdkafka {fac}: {message}")
            }
            L::Debug => tracing::debug!(target: "flusher_kafka_v2", "librdkafka {fac}: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::Fatal)) {
            self.fatal.store(true, Ordering::Relaxed);
        }
        tracing::warn!(target: "flusher_kafka_v2", "librdkafka: {error}: {reason}");
    }
}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, p: Box<Pending>) {
        match result {
            Ok(_) => p.chunk.answer(Some(p.index), 1, None),
            Err((e, _)) => {
                if matches!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::Fatal)) {
                    self.fatal.store(true, Ordering::Relaxed);
                }
                p.chunk.answer(Some(p.index), 1, Some(classify(e)));
            }
        }
    }
}

/// A failed message as a [`WriteError`]: records the broker can never take are
/// unrecoverable, the rest retried.
fn classify(e: &KafkaError) -> WriteError {
    use RDKafkaErrorCode as C;
    let why = format!("kafka: {e}");
    match e.rdkafka_error_code() {
        Some(
            C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::InvalidMessage
            | C::InvalidRecord
            | C::InvalidTopic,
        ) => WriteError::Unrecoverable(why),
        _ => WriteError::retry(why),
    }
}

/// A producer and whether it is still usable.
struct LiveProducer {
    producer: ThreadedProducer<Reports>,
    fatal: Arc<AtomicBool>,
}

struct KafkaOutput {
    config: ClientConfig,
    topic: Topic,
    partitioner: Partitioner,
    headers: Vec<(String, String)>,
    encoder: Arc<RecordEncoder>,
    message_timeout: Duration,
    producer: Option<LiveProducer>,
    book: Arc<AckBook>,
    /// `roundrobin`: partition count, when it was read, and the next partition, by topic.
    partitions: HashMap<String, (i32, Instant, i32)>,
}

impl KafkaOutput {
    /// The producer, made on the first write (a config check makes none).
    fn producer(&mut self) -> Result<&ThreadedProducer<Reports>, WriteError> {
        if self
            .producer
            .as_ref()
            .is_some_and(|p| p.fatal.load(Ordering::Relaxed))
        {
            tracing::warn!(target: "flusher_kafka_v2", "replacing a producer after a fatal error");
            self.producer = None;
        }
        if self.producer.is_none() {
            let fatal = Arc::new(AtomicBool::new(false));
            let cx = Reports {
                fatal: fatal.clone(),
            };
            let config = &self.config;
            // rdkafka panics when it cannot start its polling thread.
            let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                config.create_with_context::<_, ThreadedProducer<Reports>>(cx)
            }));
            let producer = match made {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => return Err(WriteError::Exit(format!("kafka producer: {e}"))),
                Err(_) => return Err(WriteError::Exit("kafka producer: cannot start".into())),
            };
            self.producer = Some(LiveProducer { producer, fatal });
        }
        match &self.producer {
            Some(p) => Ok(&p.producer),
            None => Err(WriteError::Exit("no producer".into())),
        }
    }

    /// `roundrobin`: the partition of the next message to `topic`.
    fn next_partition(&mut self, topic: &str) -> Result<i32, WriteError> {
        let fresh = self
            .partitions
            .get(topic)
            .is_some_and(|(_, at, _)| at.elapsed() < PARTITIONS_TTL);
        if !fresh {
            let producer = self.producer()?;
            let md = producer
                .client()
                .fetch_metadata(Some(topic), QUEUE_WAIT)
                .map_err(|e| WriteError::retry(format!("kafka metadata of {topic}: {e}")))?;
            let count = md
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .map_or(0, |t| t.partitions().len());
            if count == 0 {
                return Err(WriteError::retry(format!(
                    "kafka: topic {topic} has no partitions yet"
                )));
            }
            let next = self.partitions.get(topic).map_or(0, |p| p.2);
            let count = i32::try_from(count).unwrap_or(i32::MAX);
            self.partitions
                .insert(topic.to_string(), (count, Instant::now(), next));
        }
        let Some(p) = self.partitions.get_mut(topic) else {
            return Ok(0);
        };
        let partition = p.2 % p.0;
        p.2 = (partition + 1) % p.0;
        Ok(partition)
    }

    /// Produces the messages of `chunk` not acknowledged before; `commit` answers once all
    /// are answered.
    fn produce(&mut self, chunk: &Chunk, commit: Commit) -> Result<(), WriteError> {
        let Some(messages) = frames(&chunk.body) else {
            let e = WriteError::Unrecoverable("kafka: a damaged chunk (bad frames)".into());
            commit.rollback(e.clone());
            return Err(e);
        };
        let topic = self.topic.render(&chunk.key);
        let acked = self
            .book
            .take(chunk.id, messages.len())
            .unwrap_or_else(|| vec![false; messages.len()]);
        let todo: Vec<usize> = (0..messages.len()).filter(|&i| !acked[i]).collect();
        if todo.len() < messages.len() {
            tracing::debug!(
                target: "flusher_kafka_v2",
                "chunk {}: {} messages acknowledged before are not sent again",
                chunk.id,
                messages.len() - todo.len()
            );
        }
        let mut partitions = Vec::new();
        if self.partitioner == Partitioner::RoundRobin {
            for _ in &todo {
                match self.next_partition(&topic) {
                    Ok(p) => partitions.push(p),
                    Err(e) => {
                        commit.rollback(e.clone());
                        return Err(e);
                    }
                }
            }
        }
        let producer = match self.producer() {
            Ok(p) => p.clone(),
            Err(e) => {
                commit.rollback(e.clone());
                return Err(e);
            }
        };
        let flight = Arc::new(InFlight {
            id: chunk.id,
            book: self.book.clone(),
            state: Mutex::new(FlightState {
                remaining: todo.len() + 1,
                acked,
                error: None,
                commit: Some(commit),
            }),
        });
        let headers = (!self.headers.is_empty()).then(|| {
            self.headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
                h.insert(Header {
                    key: k,
                    value: Some(v),
                })
            })
        });
        for (n, &i) in todo.iter().enumerate() {
            let (key, value) = messages[i];
            let pending = Box::new(Pending {
                chunk: flight.clone(),
                index: i,
            });
            let mut record = BaseRecord::with_opaque_to(&topic, pending).payload(value);
            if !key.is_empty() {
                record = record.key(key);
            }
            if let Some(p) = partitions.get(n) {
                record = record.partition(*p);
            }
            if let Some(h) = &headers {
                record = record.headers(h.clone());
            }
            if let Err(e) = send(&producer, record) {
                // This message and the rest are not sent; the ones sent still answer.
                flight.answer(None, todo.len() - n, Some(e));
                break;
            }
        }
        // The extra count held the chunk open while its messages were being produced.
        flight.answer(None, 1, None);
        Ok(())
    }
}

/// Sends `record`, waiting up to [`QUEUE_WAIT`] while librdkafka's queue is full.
fn send(
    producer: &ThreadedProducer<Reports>,
    mut record: BaseRecord<'_, [u8], [u8], Box<Pending>>,
) -> Result<(), WriteError> {
    let deadline = Instant::now() + QUEUE_WAIT;
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                if Instant::now() < deadline =>
            {
                record = r;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                return Err(WriteError::retry(
                    "kafka: librdkafka's queue stayed full (the brokers do not keep up)",
                ))
            }
            Err((e, _)) => return Err(classify(&e)),
        }
    }
}

impl Output for KafkaOutput {
    fn format(&self) -> Format {
        Format::Custom(self.encoder.clone())
    }

    fn write(&mut self, chunk: &Chunk) -> Result<(), WriteError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.produce(chunk, Commit::new(move |r| drop(tx.send(r))))?;
        // Every message is answered within message.timeout.ms; a little more for the report.
        match rx.recv_timeout(self.message_timeout + Duration::from_secs(5)) {
            Ok(r) => r,
            Err(_) => Err(WriteError::retry("kafka: no delivery report in time")),
        }
    }

    fn try_write(&mut self, chunk: &Chunk, commit: Commit) -> Result<(), WriteError> {
        self.produce(chunk, commit)
    }

    fn delayed_commit(&self) -> bool {
        true
    }

    fn max_in_flight(&self) -> usize {
        32
    }

    fn chunk_keys(&self) -> Vec<String> {
        self.topic.keys()
    }
}

impl Drop for KafkaOutput {
    fn drop(&mut self) {
        if let Some(p) = self.producer.take() {
            // Bounded; what is still queued after it is purged (its chunks roll back).
            if let Err(e) = p.producer.flush(DROP_FLUSH) {
                tracing::warn!(target: "flusher_kafka_v2", "flushing on close: {e}");
            }
        }
    }
}
