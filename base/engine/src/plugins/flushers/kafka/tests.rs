//! `flusher_kafka_v2`: options, records and topics, then delivery through librdkafka's mock
//! cluster (the broker protocol, in process, on 127.0.0.1) with broker outages and injected
//! produce errors.

use super::*;
use crate::api::ChunkKey;
use crate::encode::Encoder;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::Message;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;

fn cx() -> PluginContext {
    PluginContext::for_check("t")
}

fn field_error(detail: Value) -> String {
    match build(&detail, &cx()) {
        Err(e) => e.field,
        Ok(_) => panic!("{detail} was accepted"),
    }
}

fn event(time: u32, kv: &[(&str, &str)]) -> LogEvent {
    let mut e = LogEvent::new(time);
    for (k, v) in kv {
        e.contents
            .push((Bytes::from(k.to_string()), Bytes::from(v.to_string())));
    }
    e
}

fn group(events: Vec<LogEvent>, tags: &[(&str, &str)]) -> EventGroup {
    let mut g = EventGroup::new(Bytes::from_static(b"src"));
    g.events = events;
    g.tags = tags
        .iter()
        .map(|(k, v)| (Bytes::from(k.to_string()), Bytes::from(v.to_string())))
        .collect();
    g
}

/// The records `settings` encodes `g` into, as (key, JSON value).
fn encode(detail: Value, g: &EventGroup) -> Vec<(String, Value)> {
    let s = settings(&detail, &cx()).unwrap_or_else(|e| panic!("{e:?}"));
    let mut body = Vec::new();
    assert_eq!(s.encoder.encode(g, &mut body), g.len());
    frames(&body)
        .unwrap()
        .into_iter()
        .map(|(k, v)| {
            let v: Value = serde_json::from_slice(v).unwrap_or_else(|e| panic!("{e}: {v:?}"));
            (String::from_utf8(k.to_vec()).unwrap(), v)
        })
        .collect()
}

#[test]
fn options_are_checked_and_name_their_field() {
    let ok = json!({"Brokers": ["127.0.0.1:9092"], "Topic": "t"});
    assert!(build(&ok, &cx()).is_ok());
    let with = |extra: Value| {
        let mut d = ok.clone();
        for (k, v) in extra.as_object().unwrap() {
            d[k] = v.clone();
        }
        field_error(d)
    };
    assert_eq!(field_error(json!({"Topic": "t"})), "Brokers");
    assert_eq!(field_error(json!({"Brokers": ["a:1"]})), "Topic");
    assert_eq!(with(json!({"Nope": 1})), "Nope");
    assert_eq!(with(json!({"Topic": "a-%{field.x}"})), "Topic");
    assert_eq!(with(json!({"Topic": "a-%{content.x"})), "Topic");
    assert_eq!(
        with(json!({"PartitionerType": "sticky"})),
        "PartitionerType"
    );
    assert_eq!(with(json!({"RequiredACKs": 2})), "RequiredACKs");
    assert_eq!(with(json!({"Idempotent": true})), "Idempotent");
    let many = json!({"RequiredACKs": -1, "MaxOpenRequests": 6});
    assert_eq!(with(many), "MaxOpenRequests");
    assert_eq!(
        with(json!({"RequiredACKs": -1, "MaxRetries": 0})),
        "MaxRetries"
    );
    assert_eq!(with(json!({"Compression": "brotli"})), "Compression");
    let gzip11 = json!({"Compression": "gzip", "CompressionLevel": 11});
    assert_eq!(with(gzip11), "CompressionLevel");
    assert_eq!(
        with(json!({"Convert": {"Protocol": "otlp_v1"}})),
        "Convert.Protocol"
    );
    assert_eq!(
        with(json!({"Convert": {"Encoding": "protobuf"}})),
        "Convert.Encoding"
    );
    let bad_rename = json!({"Convert": {"ProtocolFieldsRename": {"body": "x"}}});
    assert_eq!(with(bad_rename), "Convert.ProtocolFieldsRename");
    assert_eq!(with(json!({"HashKeys": ["content.a"]})), "HashKeys");
    let hash = json!({"PartitionerType": "hash", "HashKeys": ["a"]});
    assert_eq!(with(hash), "HashKeys");
    assert_eq!(with(json!({"Timeout": "5 s"})), "Timeout");
    assert_eq!(with(json!({"Version": "two"})), "Version");
    let gssapi = json!({"Authentication": {"SASL": {"SaslMechanism": "GSSAPI",
        "Username": "u", "Password": "p"}}});
    assert_eq!(with(gssapi), "Authentication.SASL.SaslMechanism");
    let no_password = json!({"Authentication": {"SASL": {"SASLMechanism": "PLAIN",
        "Username": "u"}}});
    assert_eq!(with(no_password), "Authentication.SASL.Password");
    let kerberos = json!({"Authentication": {"Kerberos": {"ServiceName": "kafka"}}});
    assert_eq!(with(kerberos), "Authentication.Kerberos");
    let ca = json!({"Authentication": {"TLS": {"Enabled": true, "CAFile": "/nonexistent"}}});
    assert_eq!(with(ca), "Authentication.TLS.CAFile");
    let min = json!({"Authentication": {"TLS": {"Enabled": true, "MinVersion": "1.2"}}});
    assert_eq!(with(min), "Authentication.TLS.MinVersion");
    let prop = json!({"Properties": {"no.such.property": "1"}});
    assert_eq!(with(prop), "Properties.no.such.property");
    let prop = json!({"Properties": {"linger.ms": "-5"}});
    assert_eq!(with(prop), "Properties.linger.ms");

    // Everything iLogtail documents, at once.
    let full = json!({
        "Brokers": ["127.0.0.1:9092", "127.0.0.1:9093"], "Topic": "logs_%{content.app}",
        "Version": "2.8.0", "Timeout": "10s", "BrokerTimeout": 5_000_000_000u64,
        "KeepAlive": "30s", "PartitionerType": "hash", "HashKeys": ["content.app", "tag.host.name"],
        "HashOnce": false, "RequiredACKs": -1, "Compression": "zstd", "CompressionLevel": 3,
        "MaxMessageBytes": 1_000_000, "MaxOpenRequests": 5, "MaxRetries": -1,
        "Backoff": {"Init": "100ms", "Max": "2s"}, "BulkMaxSize": 1000,
        "BulkFlushFrequency": "10ms", "Metadata": {"Retry": {"Max": 3, "Backoff": "250ms"},
        "RefreshFrequency": "5m", "Full": false}, "ChanBufferSize": 256,
        "Headers": [{"key": "k1", "value": "v1"}, {"Key": "k2", "Value": "v2"}],
        "ClientID": "agent", "Convert": {"Protocol": "custom_single", "Encoding": "json",
        "TagFieldsRename": {"host.name": "hostname"}, "ProtocolFieldsRename": {"time": "@t"}},
        "Authentication": {"PlainText": {"Username": "", "Password": ""},
            "SASL": {"SaslMechanism": "scram-sha-512", "Username": "u", "Password": "p"},
            "TLS": {"Enabled": true, "InsecureSkipVerify": true}},
        "Properties": {"queue.buffering.max.messages": 50000, "socket.nagle.disable": true},
    });
    let s = settings(&full, &cx()).unwrap_or_else(|e| panic!("{e:?}"));
    for (k, v) in [
        ("security.protocol", "sasl_ssl"),
        ("sasl.mechanisms", "SCRAM-SHA-512"),
        ("enable.idempotence", "true"),
        ("acks", "-1"),
        ("partitioner", "fnv1a"),
        ("compression.codec", "zstd"),
        ("compression.level", "3"),
        ("message.timeout.ms", "10000"),
        ("request.timeout.ms", "5000"),
        ("message.send.max.retries", "1000"),
        ("linger.ms", "10"),
        ("client.id", "agent"),
        ("queue.buffering.max.messages", "50000"),
    ] {
        assert_eq!(s.config.get(k), Some(v), "{k}");
    }
    assert_eq!(s.topic.keys(), ["app"]);
    assert_eq!(s.headers.len(), 2);
    // No idempotence unless all replicas acknowledge, or when turned off.
    let s = settings(&ok, &cx()).unwrap();
    assert_eq!(s.config.get("enable.idempotence"), None);
    assert_eq!(s.config.get("acks"), Some("1"));
    let mut off = ok.clone();
    off["RequiredACKs"] = json!(-1);
    off["Idempotent"] = json!(false);
    assert_eq!(
        settings(&off, &cx())
            .unwrap()
            .config
            .get("enable.idempotence"),
        None
    );
}

/// What the bundled librdkafka was built with: TLS, SASL PLAIN and SCRAM, every codec
/// iLogtail offers; no GSSAPI.
#[test]
fn librdkafka_has_tls_scram_and_every_codec() {
    let native = ClientConfig::new().create_native_config().unwrap();
    let features = native.get("builtin.features").unwrap();
    for f in [
        "ssl",
        "sasl_plain",
        "sasl_scram",
        "gzip",
        "snappy",
        "lz4",
        "zstd",
    ] {
        assert!(features.split(',').any(|x| x == f), "{f} in {features}");
    }
    assert!(!features.contains("sasl_gssapi"), "{features}");
}

#[test]
fn topics_are_chunk_keys() {
    let none = BTreeMap::new();
    let t = Topic::parse(
        "logs_%{content.app}-%{tag.log.file.path}.${tag}-100%",
        &none,
    )
    .unwrap();
    assert_eq!(t.keys(), ["app", "__tag__:__path__", "tag"]);
    let key = ChunkKey {
        tag: Some(Bytes::from_static(b"web")),
        time: None,
        fields: vec![
            ("app".into(), Bytes::from_static(b"shop")),
            ("__tag__:__path__".into(), Bytes::new()),
        ],
    };
    assert_eq!(t.render(&key), "logs_shop-.web-100%");
    let renamed = BTreeMap::from([("host.name".to_string(), "hostname".to_string())]);
    let t = Topic::parse("h-%{tag.hostname}", &renamed).unwrap();
    assert_eq!(t.keys(), ["__tag__:__hostname__"]);
    let plain = Topic::parse("plain", &none).unwrap();
    assert!(plain.keys().is_empty());
    assert_eq!(plain.render(&ChunkKey::default()), "plain");
    for bad in ["", "a${", "%{}", "%{content.}", "%{other.x}"] {
        assert!(Topic::parse(bad, &none).is_err(), "{bad}");
    }
}

#[test]
fn records_are_ilogtail_custom_single() {
    let mut g = group(
        vec![
            event(
                7,
                &[
                    ("msg", "a \"quoted\"\n"),
                    ("__tag__:zone", "z1"),
                    ("app", "shop"),
                ],
            ),
            event(8, &[("msg", "b"), ("__log_topic__", "lt")]),
        ],
        &[
            ("__path__", "/var/log/a.log"),
            ("__pack_id__", "X-1"),
            ("team", "t"),
        ],
    );
    g.topic = Bytes::from_static(b"topic1");
    let base = json!({"Brokers": ["h:1"], "Topic": "t"});
    let got = encode(base.clone(), &g);
    assert_eq!(got[0].0, "");
    assert_eq!(
        got[0].1,
        json!({"contents": {"msg": "a \"quoted\"\n", "app": "shop"},
               "tags": {"zone": "z1", "log.file.path": "/var/log/a.log", "team": "t",
                        "host.ip": "", "log.topic": "topic1"},
               "time": 7})
    );
    assert_eq!(got[1].1["tags"]["log.topic"], "topic1");
    assert_eq!(got[1].1["contents"], json!({"msg": "b"}));

    let mut flat = base.clone();
    flat["Convert"] = json!({"Protocol": "custom_single_flatten",
        "TagFieldsRename": {"log.file.path": "path", "team": ""},
        "ProtocolFieldsRename": {"time": "@timestamp"}});
    let got = encode(flat, &g);
    assert_eq!(
        got[0].1,
        json!({"msg": "a \"quoted\"\n", "app": "shop", "zone": "z1", "path": "/var/log/a.log",
               "host.ip": "", "log.topic": "topic1", "@timestamp": 7})
    );
    // An event with no contents and a group with no tags still make valid objects.
    let bare = group(vec![event(1, &[])], &[]);
    let mut flat = base.clone();
    flat["Convert"] = json!({"Protocol": "custom_single_flatten"});
    assert_eq!(encode(flat, &bare)[0].1, json!({"host.ip": "", "time": 1}));
    let mut renamed = base;
    renamed["Convert"] = json!({"ProtocolFieldsRename": {"contents": "c", "tags": "t"}});
    assert_eq!(
        encode(renamed, &bare)[0].1,
        json!({"c": {}, "t": {"host.ip": ""}, "time": 1})
    );
}

#[test]
fn hash_keys_make_message_keys() {
    let g = group(
        vec![
            event(1, &[("app", "shop"), ("__tag__:zone", "z1")]),
            event(2, &[("app", "cart")]),
            event(3, &[("other", "x")]),
        ],
        &[("__hostname__", "h1")],
    );
    let d = json!({"Brokers": ["h:1"], "Topic": "t", "PartitionerType": "hash",
        "HashKeys": ["content.app", "tag.host.name", "tag.zone"]});
    let keys: Vec<String> = encode(d.clone(), &g).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["shop###h1###z1", "cart###h1", "h1"]);
    let mut only_app = d.clone();
    only_app["HashKeys"] = json!(["content.app"]);
    let keys: Vec<String> = encode(only_app, &g).into_iter().map(|(k, _)| k).collect();
    // No field: the default key (the logstore, here the config name).
    assert_eq!(keys, ["shop", "cart", "t"]);
    let mut once = d;
    once["HashOnce"] = json!(true);
    let keys: Vec<String> = encode(once, &g).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["shop###h1###z1"; 3]);
    assert!(frames(b"\x01\x00\x00\x00").is_none());
    assert_eq!(frames(b"").unwrap().len(), 0);
}

// ---- through librdkafka's mock cluster ----

/// A mock cluster with `brokers` brokers and topic `logs` of 4 partitions, replicated.
fn cluster(brokers: i32) -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let c = MockCluster::new(brokers).unwrap();
    c.create_topic("logs", 4, brokers.min(3)).unwrap();
    c
}

/// A chunk of `n` numbered records starting at `from`, encoded by `out`'s format.
fn chunk(out: &dyn Output, id: u64, from: usize, n: usize) -> Chunk {
    let Format::Custom(enc) = out.format() else {
        panic!("not a custom format")
    };
    let events = (from..from + n)
        .map(|i| event(1, &[("n", &i.to_string()), ("app", "shop")]))
        .collect();
    let mut body = Vec::new();
    let records = enc.encode(&group(events, &[]), &mut body);
    Chunk {
        id,
        key: ChunkKey::default(),
        ends: vec![body.len()],
        body: body.into(),
        records,
        created: 0,
        retries: 0,
    }
}

/// Writes `chunks` as the framework does in async mode, writing a rolled-back chunk again
/// (after 200 ms) until every chunk is committed or `limit` passes; returns the rollbacks.
fn deliver(out: &mut dyn Output, chunks: &[Chunk], limit: Duration) -> usize {
    let (tx, rx) = mpsc::channel::<(usize, Result<(), WriteError>)>();
    let start = |out: &mut dyn Output, i: usize| {
        let tx = tx.clone();
        let commit = Commit::new(move |r| drop(tx.send((i, r))));
        let _ = out.try_write(&chunks[i], commit);
    };
    for i in 0..chunks.len() {
        start(out, i);
    }
    let deadline = Instant::now() + limit;
    let (mut done, mut rollbacks) = (0, 0);
    while done < chunks.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let (i, r) = rx
            .recv_timeout(left)
            .expect("every chunk is answered in time");
        match r {
            Ok(()) => done += 1,
            Err(WriteError::Unrecoverable(e)) => panic!("chunk {i}: unrecoverable: {e}"),
            Err(_) => {
                rollbacks += 1;
                std::thread::sleep(Duration::from_millis(200));
                start(out, i);
            }
        }
    }
    rollbacks
}

/// Reads topic `logs` from the start until `want` messages came or 10 s of silence; returns
/// every record's `n` and the message keys.
fn consume(bootstrap: &str, want: usize) -> (Vec<usize>, BTreeSet<Vec<u8>>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&["logs"]).unwrap();
    let (mut got, mut keys) = (Vec::new(), BTreeSet::new());
    let mut quiet = Instant::now();
    while got.len() < want && quiet.elapsed() < Duration::from_secs(10) {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.unwrap();
        quiet = Instant::now();
        let v: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        got.push(v["contents"]["n"].as_str().unwrap().parse().unwrap());
        if let Some(k) = m.key() {
            keys.insert(k.to_vec());
        }
    }
    (got, keys)
}

/// Every number below `n` exactly once.
fn assert_exactly_once(mut got: Vec<usize>, n: usize) {
    got.sort_unstable();
    let dups = got.windows(2).filter(|w| w[0] == w[1]).count();
    got.dedup();
    assert_eq!(got.len(), n, "distinct records (duplicates: {dups})");
    assert_eq!(dups, 0, "duplicates");
    assert_eq!(got.last(), Some(&(n - 1)));
}

#[test]
fn mock_cluster_receives_every_record_once_and_hash_keys() {
    let c = cluster(1);
    let d = json!({"Brokers": [c.bootstrap_servers()], "Topic": "logs",
        "PartitionerType": "hash", "HashKeys": ["content.app"], "RequiredACKs": -1,
        "Compression": "lz4", "Headers": [{"Key": "h", "Value": "v"}]});
    let mut out = build(&d, &cx()).unwrap();
    let chunks: Vec<Chunk> = (0..20)
        .map(|i| chunk(&*out, i, i as usize * 500, 500))
        .collect();
    assert_eq!(deliver(&mut *out, &chunks, Duration::from_secs(30)), 0);
    // The sync path too.
    out.write(&chunk(&*out, 99, 10_000, 100)).unwrap();
    drop(out);
    let (got, keys) = consume(&c.bootstrap_servers(), 10_100);
    assert_exactly_once(got, 10_100);
    assert_eq!(keys, BTreeSet::from([b"shop".to_vec()]));
}

#[test]
fn roundrobin_spreads_over_partitions() {
    let c = cluster(1);
    let d = json!({"Brokers": [c.bootstrap_servers()], "Topic": "logs",
        "PartitionerType": "roundrobin"});
    let mut out = build(&d, &cx()).unwrap();
    out.write(&chunk(&*out, 1, 0, 400)).unwrap();
    drop(out);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", c.bootstrap_servers())
        .set("group.id", "rr")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["logs"]).unwrap();
    let mut per = [0usize; 4];
    let start = Instant::now();
    while per.iter().sum::<usize>() < 400 && start.elapsed() < Duration::from_secs(20) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            per[m.partition() as usize] += 1;
        }
    }
    assert_eq!(per, [100; 4]);
}

#[test]
fn broker_outage_loses_nothing() {
    let c = cluster(3);
    let d = json!({"Brokers": [c.bootstrap_servers()], "Topic": "logs", "Timeout": "3s",
        "RequiredACKs": -1});
    let mut out = build(&d, &cx()).unwrap();
    let first: Vec<Chunk> = (0..5)
        .map(|i| chunk(&*out, i, i as usize * 200, 200))
        .collect();
    assert_eq!(deliver(&mut *out, &first, Duration::from_secs(30)), 0);
    for b in 1..=3 {
        c.broker_down(b).unwrap();
    }
    let second: Vec<Chunk> = (5..10)
        .map(|i| chunk(&*out, i, i as usize * 200, 200))
        .collect();
    // Down for 4 s, beyond the 3 s `Timeout`: chunks roll back and are written again.
    let (tx, rx) = mpsc::channel();
    let writer = std::thread::spawn(move || {
        let r = deliver(&mut *out, &second, Duration::from_secs(60));
        let _ = tx.send(r);
        drop(out);
    });
    std::thread::sleep(Duration::from_secs(4));
    for b in 1..=3 {
        c.broker_up(b).unwrap();
    }
    let rollbacks = rx.recv_timeout(Duration::from_secs(90)).unwrap();
    writer.join().unwrap();
    assert!(rollbacks > 0, "the outage was not seen");
    let (got, _) = consume(&c.bootstrap_servers(), 2000);
    assert_exactly_once(got, 2000);
}

#[test]
fn produce_errors_roll_back_and_nothing_is_lost() {
    let c = cluster(1);
    let d = json!({"Brokers": [c.bootstrap_servers()], "Topic": "logs", "MaxRetries": 0,
        "BulkMaxSize": 100});
    let mut out = build(&d, &cx()).unwrap();
    // Warm up (metadata), then every 3rd of the next produce requests fails.
    out.write(&chunk(&*out, 0, 0, 10)).unwrap();
    let e = RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS;
    let ok = RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR;
    c.request_errors(RDKafkaApiKey::Produce, &[ok, ok, e, ok, ok, e, ok, e]);
    let chunks: Vec<Chunk> = (1..11)
        .map(|i| chunk(&*out, i, i as usize * 300 - 290, 300))
        .collect();
    let rollbacks = deliver(&mut *out, &chunks, Duration::from_secs(30));
    assert!(rollbacks > 0, "no error was injected");
    drop(out);
    let (got, _) = consume(&c.bootstrap_servers(), 3010);
    // Acknowledged messages of a rolled-back chunk are not sent again.
    assert_exactly_once(got, 3010);
}

#[test]
fn unreachable_brokers_roll_back_in_bounded_time_and_drop_does_not_hang() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = json!({"Brokers": [format!("127.0.0.1:{port}")], "Topic": "logs", "Timeout": "1s"});
    let mut out = build(&d, &cx()).unwrap();
    let started = Instant::now();
    let err = out.write(&chunk(&*out, 1, 0, 10)).unwrap_err();
    assert!(matches!(err, WriteError::Retry { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // Messages still queued when the output is dropped: the drop is bounded.
    let (tx, rx) = mpsc::channel();
    let _ = out.try_write(
        &chunk(&*out, 2, 0, 10),
        Commit::new(move |r| drop(tx.send(r))),
    );
    let started = Instant::now();
    drop(out);
    assert!(started.elapsed() < DROP_FLUSH + Duration::from_secs(3));
    assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap().is_err());
}

/// A throughput figure, not a check: 1,000,000 records of ~100 bytes in 200 chunks, at most
/// 32 chunks in flight (the default `MaxInFlight`), into a one-broker mock cluster.
/// `cargo test --release -p plugin-engine --lib kafka_throughput -- --ignored --nocapture`
#[test]
#[ignore = "a throughput figure, run by hand"]
fn kafka_throughput() {
    const CHUNKS: usize = 200;
    const PER: usize = 5000;
    let c = cluster(1);
    let d = json!({"Brokers": [c.bootstrap_servers()], "Topic": "logs"});
    let mut out = build(&d, &cx()).unwrap();
    let Format::Custom(enc) = out.format() else {
        panic!("not a custom format")
    };
    let line = "x".repeat(90);
    let started = Instant::now();
    let chunks: Vec<Chunk> = (0..CHUNKS)
        .map(|i| {
            let events = (0..PER)
                .map(|j| event(1, &[("content", &format!("{:08} {line}", i * PER + j))]))
                .collect();
            let mut body = Vec::new();
            let records = enc.encode(
                &group(events, &[("__path__", "/var/log/app.log")]),
                &mut body,
            );
            Chunk {
                id: i as u64,
                key: ChunkKey::default(),
                ends: vec![body.len()],
                body: body.into(),
                records,
                created: 0,
                retries: 0,
            }
        })
        .collect();
    let encoded = started.elapsed();
    let bytes: usize = chunks.iter().map(|c| c.body.len()).sum();
    let (tx, rx) = mpsc::channel::<Result<(), WriteError>>();
    let started = Instant::now();
    let (mut sent, mut done) = (0, 0);
    while done < CHUNKS {
        while sent < CHUNKS && sent - done < 32 {
            let tx = tx.clone();
            let commit = Commit::new(move |r| drop(tx.send(r)));
            out.try_write(&chunks[sent], commit).unwrap();
            sent += 1;
        }
        rx.recv_timeout(Duration::from_secs(60)).unwrap().unwrap();
        done += 1;
    }
    let took = started.elapsed();
    let n = (CHUNKS * PER) as f64;
    eprintln!(
        "kafka_throughput: {} records, {:.1} MB framed; encoded in {encoded:?} ({:.0} records/s); \
         produced and acknowledged in {took:?}: {:.0} records/s, {:.1} MB/s",
        CHUNKS * PER,
        bytes as f64 / 1e6,
        n / encoded.as_secs_f64(),
        n / took.as_secs_f64(),
        bytes as f64 / 1e6 / took.as_secs_f64()
    );
}

/// A broker to benchmark against by hand: a 1-broker mock cluster with topic `logs` (4
/// partitions; it keeps the last 5 MB of each), serving for `$KAFKA_MOCK_SECS` (600)
/// seconds; prints its bootstrap address.
/// `cargo test --release -p plugin-engine --lib kafka_mock_broker -- --ignored --nocapture`
#[test]
#[ignore = "a broker for benchmarks, run by hand"]
fn kafka_mock_broker() {
    let c = cluster(1);
    eprintln!("kafka_mock_broker: bootstrap {}", c.bootstrap_servers());
    let secs = std::env::var("KAFKA_MOCK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    std::thread::sleep(Duration::from_secs(secs));
}
