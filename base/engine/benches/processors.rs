//! Criterion benchmarks of the built-in processors and of the `LogGroup` codec.
//!
//! Every processor bench builds its processor the way a pipeline does (`registry::parse_config` of a
//! small config, then `registry::processor`) and processes a group of 1024 events. The input group
//! is built once and cloned per iteration with `iter_batched`, so cloning is not timed.
//! Throughput is the bytes of the input values (keys excluded), in decimal units, so criterion
//! reports MB/s (10^6 bytes, like `host-harness bench`).
//!
//! Run: `cargo bench -p plugin-engine --bench processors` (add `-- --quick` for a short run, or a
//! filter such as `-- processor_regex`).

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use engine::api::PluginContext;
use engine::api::Processor;
use engine::event::{EventGroup, LogEvent};
use engine::proto::{decode_log_group, decode_log_group_lazy, encode_log_group, GroupHeader};
use engine::registry;

/// Events per benchmarked group.
const EVENTS: usize = 1024;
/// Log time of the generated events (2023-11-14).
const TIME: u32 = 1_700_000_000;

/// The nginx combined-format regex of host-harness/scenarios/nginx-regex.json.
const NGINX_REGEX: &str = r#"{
    "type": "processor_regex",
    "detail": {
        "SourceKey": "content",
        "Regex": "^(\\S+) - (\\S+) \\[([^\\]]+)\\] \"(\\S+) (\\S+) (\\S+)\" (\\d+) (\\d+) \"([^\"]*)\" \"([^\"]*)\"$",
        "Keys": ["remote_addr", "remote_user", "time_local", "method", "url", "protocol",
                 "status", "body_bytes_sent", "http_referer", "http_user_agent"]
    }
}"#;

/// A tiny deterministic PRNG (SplitMix64) for the generated data.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "curl/8.4.0",
    "Go-http-client/1.1",
];
const STATUSES: [&str; 10] = [
    "200", "200", "200", "200", "200", "200", "304", "301", "404", "500",
];
const METHODS: [&str; 5] = ["GET", "GET", "GET", "POST", "PUT"];
const LEVELS: [&str; 5] = ["INFO", "INFO", "INFO", "WARN", "ERROR"];

/// `n` nginx combined access-log lines (~190 bytes each).
fn nginx_lines(n: usize) -> Vec<String> {
    let mut r = Rng(0x5EED);
    (0..n)
        .map(|i| {
            format!(
                "{}.{}.{}.{} - - [14/Nov/2023:22:{:02}:{:02} +0000] \"{} /api/v1/users/{}/orders?page={} HTTP/1.1\" {} {} \"https://www.example.com/shop\" \"{}\"",
                1 + r.below(223),
                r.below(256),
                r.below(256),
                1 + r.below(254),
                i / 60 % 60,
                i % 60,
                r.pick(&METHODS),
                r.below(1_000_000),
                1 + r.below(20),
                r.pick(&STATUSES),
                r.below(50_000),
                r.pick(&AGENTS),
            )
        })
        .collect()
}

/// A nested JSON application log (~330 bytes).
fn json_lines(n: usize) -> Vec<String> {
    let mut r = Rng(0x150);
    (0..n)
        .map(|i| {
            format!(
                r#"{{"time":"2023-11-14T22:13:{:02}.{:03}Z","level":"{}","logger":"com.example.api.OrderController","msg":"order created for \"user-{}\"","user":{{"id":{},"tier":"gold"}},"request":{{"id":"{:016x}","method":"{}","path":"/api/v1/orders/{}","headers":{{"host":"api.example.com","user_agent":"{}"}}}},"latency_ms":{}.{},"success":true,"tags":["checkout","v2"]}}"#,
                i % 60,
                r.below(1000),
                r.pick(&LEVELS),
                r.below(100_000),
                r.below(100_000),
                r.below(u64::MAX),
                r.pick(&METHODS),
                r.below(1_000_000),
                r.pick(&AGENTS[2..]),
                r.below(2000),
                r.below(1000),
            )
        })
        .collect()
}

/// CSV lines (~90 bytes).
fn csv_lines(n: usize) -> Vec<String> {
    let mut r = Rng(0xC5);
    (0..n)
        .map(|i| {
            format!(
                "2023-11-14 22:13:{:02},{},user-{},{},/api/v1/orders/{},{},{},0.{:03},\"Mozilla, like Gecko\"",
                i % 60,
                r.pick(&LEVELS),
                r.below(100_000),
                r.pick(&METHODS),
                r.below(1_000_000),
                r.pick(&STATUSES),
                r.below(50_000),
                r.below(1000),
            )
        })
        .collect()
}

/// Multi-line Java log blocks: each holds 4 logs, one of them with a stack trace (~1 KB).
fn java_blocks(n: usize) -> Vec<String> {
    let mut r = Rng(0x7A7A);
    (0..n)
        .map(|i| {
            let mut b = String::new();
            for j in 0..4 {
                b.push_str(&format!(
                    "2023-11-14 22:13:{:02}.{:03} [http-nio-8080-exec-{}] {} c.e.api.OrderService - order {} processed\n",
                    (i + j) % 60,
                    r.below(1000),
                    r.below(20),
                    r.pick(&LEVELS),
                    r.below(1_000_000),
                ));
                if j == 2 {
                    b.push_str(
                        "java.lang.IllegalStateException: inventory unavailable\n\
                         \tat com.example.api.OrderService.reserve(OrderService.java:142)\n\
                         \tat com.example.api.OrderService.create(OrderService.java:88)\n\
                         \tat com.example.api.OrderController.post(OrderController.java:51)\n\
                         Caused by: java.net.SocketTimeoutException: Read timed out\n\
                         \tat java.base/java.net.SocketInputStream.read(SocketInputStream.java:168)\n\
                         \t... 42 more\n",
                    );
                }
            }
            b
        })
        .collect()
}

/// Lines holding a password, a card number and an id.
fn secret_lines(n: usize) -> Vec<String> {
    let mut r = Rng(0x5EC);
    (0..n)
        .map(|_| {
            format!(
                "user login uid={} name=user{} password={:012x} card=4{:015} ip=10.0.{}.{} result=ok",
                r.below(100_000),
                r.below(100_000),
                r.below(1 << 48),
                r.below(1_000_000_000_000_000),
                r.below(256),
                r.below(256),
            )
        })
        .collect()
}

/// A group with one content `key` per line.
fn group_of(key: &'static str, lines: Vec<String>) -> EventGroup {
    let mut g = EventGroup::new(Bytes::from_static(b"bench"));
    g.events = lines
        .into_iter()
        .map(|l| {
            let mut e = LogEvent::new(TIME);
            e.contents
                .push((Bytes::from_static(key.as_bytes()), Bytes::from(l)));
            e
        })
        .collect();
    g
}

/// Bytes of all values of `g`.
fn value_bytes(g: &EventGroup) -> u64 {
    g.events
        .iter()
        .flat_map(|e| e.contents.iter())
        .map(|(_, v)| v.len() as u64)
        .sum()
}

/// Builds the processors of a config whose `processors` section is `processors` (JSON).
fn build(processors: &str) -> Vec<Box<dyn Processor>> {
    let json = format!(r#"{{"processors": [{processors}]}}"#);
    let cfg = registry::parse_config("bench", &json).unwrap_or_else(|e| panic!("{json}: {e:?}"));
    let cx = PluginContext::for_check("bench");
    cfg.processors
        .iter()
        .map(|spec| match registry::processor(spec, &cx) {
            Ok(p) => p,
            Err(e) => panic!("{}: {e:?}", spec.type_name),
        })
        .collect()
}

/// Builds a single processor.
fn one(processor: &str) -> Box<dyn Processor> {
    let mut v = build(processor);
    assert_eq!(v.len(), 1);
    v.pop().expect("one processor")
}

/// Nginx lines already parsed by the regex (input of the field-level processors).
fn parsed_nginx() -> EventGroup {
    let mut g = group_of("content", nginx_lines(EVENTS));
    one(NGINX_REGEX).process(&mut g);
    assert_eq!(g.events[0].contents.len(), 10, "regex did not match");
    g
}

/// One bench group named `name` with one benchmark `id`: `p` processes a clone of `input`.
fn bench(c: &mut Criterion, name: &str, id: &str, mut p: Box<dyn Processor>, input: &EventGroup) {
    // Sanity: the processor must accept the input (and not, say, drop everything by mistake).
    let mut probe = input.clone();
    p.process(&mut probe);
    assert!(!probe.events.is_empty(), "{name}/{id}: no event left");
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::BytesDecimal(value_bytes(input)));
    g.bench_function(id, |b| {
        b.iter_batched(
            || input.clone(),
            |mut group| {
                p.process(&mut group);
                group
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn processors(c: &mut Criterion) {
    let nginx = group_of("content", nginx_lines(EVENTS));
    bench(
        c,
        "processor_regex",
        "nginx_combined",
        one(NGINX_REGEX),
        &nginx,
    );

    let json = group_of("content", json_lines(EVENTS));
    let p = one(r#"{"type": "processor_json", "detail": {"SourceKey": "content"}}"#);
    bench(c, "processor_json", "nested_expand_all", p, &json);
    let p =
        one(r#"{"type": "processor_json", "detail": {"SourceKey": "content", "ExpandDepth": 1}}"#);
    bench(c, "processor_json", "nested_depth_1", p, &json);

    let csv = group_of("content", csv_lines(EVENTS));
    let p = one(
        r#"{"type": "processor_split_char", "detail": {"SourceKey": "content", "SplitSep": ",",
            "QuoteFlag": true, "Quote": "\"",
            "SplitKeys": ["time", "level", "user", "method", "path", "status", "size", "latency", "agent"]}}"#,
    );
    bench(c, "processor_split_char", "csv_9_fields", p, &csv);

    let java = group_of("content", java_blocks(EVENTS));
    let p = one(
        r#"{"type": "processor_split_log_regex", "detail": {"SplitKey": "content",
            "SplitRegex": "\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2}\\.\\d{3} .*"}}"#,
    );
    bench(
        c,
        "processor_split_log_regex",
        "java_multiline_x4",
        p,
        &java,
    );

    let times = group_of(
        "time",
        (0..EVENTS)
            .map(|i| format!("2023-11-14 22:{:02}:{:02}", i / 60 % 60, i % 60))
            .collect(),
    );
    let p = one(
        r#"{"type": "processor_strptime", "detail": {"SourceKey": "time",
            "Format": "%Y-%m-%d %H:%M:%S", "AdjustUTCOffset": true, "UTCOffset": 28800}}"#,
    );
    bench(c, "processor_strptime", "ymd_hms", p, &times);
    let p = one(
        r#"{"type": "processor_gotime", "detail": {"SourceKey": "time",
            "SourceFormat": "2006-01-02 15:04:05", "SourceLocation": 8,
            "DestKey": "time_utc", "DestFormat": "2006/01/02 15:04:05", "DestLocation": 0}}"#,
    );
    bench(c, "processor_gotime", "ymd_hms_to_utc", p, &times);

    let parsed = parsed_nginx();
    let p = one(
        r#"{"type": "processor_filter_regex", "detail": {"Exclude": {"status": "^3\\d\\d$"}}}"#,
    );
    bench(c, "processor_filter_regex", "exclude_3xx", p, &parsed);
    let p = one(
        r#"{"type": "processor_filter_regex", "detail": {"Include": {"method": "^(GET|POST)$",
            "url": "^/api/"}}}"#,
    );
    bench(c, "processor_filter_regex", "include_2_fields", p, &parsed);

    let secrets = group_of("content", secret_lines(EVENTS));
    let p = one(
        r#"{"type": "processor_desensitize", "detail": {"SourceKey": "content", "Method": "const",
            "Match": "regex", "ReplaceString": "********", "RegexBegin": "password=",
            "RegexContent": "[^ ]+"}}"#,
    );
    bench(c, "processor_desensitize", "const_regex", p, &secrets);
    let p = one(
        r#"{"type": "processor_desensitize", "detail": {"SourceKey": "content", "Method": "md5",
            "Match": "regex", "RegexBegin": "card=", "RegexContent": "\\d+"}}"#,
    );
    bench(c, "processor_desensitize", "md5_regex", p, &secrets);

    let p = one(
        r#"{"type": "processor_add_fields", "detail": {"Fields": {"env": "prod", "cluster": "bench",
            "region": "cn-hangzhou"}}}"#,
    );
    bench(c, "processor_add_fields", "3_fields", p, &nginx);

    let p = one(
        r#"{"type": "processor_rename", "detail": {"SourceKeys": ["remote_addr", "status",
            "http_user_agent"], "DestKeys": ["client_ip", "code", "ua"]}}"#,
    );
    bench(c, "processor_rename", "3_of_10_keys", p, &parsed);
}

fn codec(c: &mut Criterion) {
    let nginx = group_of("content", nginx_lines(EVENTS));
    let header = GroupHeader {
        category: "bench",
        source: "127.0.0.1",
        with_time_ns: false,
    };
    let mut buf = Vec::new();
    encode_log_group(&mut buf, &nginx, &header);
    let buf = Bytes::from(buf);
    assert_eq!(decode_log_group(&buf).expect("decodes").len(), EVENTS);

    let mut g = c.benchmark_group("protobuf");
    g.throughput(Throughput::BytesDecimal(value_bytes(&nginx)));
    g.bench_function("decode_log_group_nginx", |b| {
        b.iter(|| decode_log_group(&buf).expect("decodes"))
    });
    // What ProcessLogGroup does for a pipeline without processors: check, keep the bytes.
    g.bench_function("check_log_group_nginx", |b| {
        b.iter(|| decode_log_group_lazy(&buf).expect("decodes"))
    });
    let mut out = Vec::with_capacity(buf.len());
    g.bench_function("encode_log_group_nginx", |b| {
        b.iter(|| {
            out.clear();
            encode_log_group(&mut out, &nginx, &header);
            out.len()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = processors, codec
}
criterion_main!(benches);
