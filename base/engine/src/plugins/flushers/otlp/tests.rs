use super::grpc::{retry_delay, status_error, Any, ProtoDuration, RetryInfo, RpcStatus};
use super::*;
use crate::api::ChunkKey;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest,
};
use serde_json::json;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::sync::{mpsc, Mutex};
use tonic::{Code, Status};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn event(time: u32, ns: Option<u32>, contents: &[(&str, &[u8])]) -> LogEvent {
    let mut e = LogEvent::new(time);
    e.time_ns = ns;
    e.contents = contents
        .iter()
        .map(|(k, v)| (b(k), Bytes::copy_from_slice(v)))
        .collect();
    e
}

fn group(events: Vec<LogEvent>) -> EventGroup {
    EventGroup {
        events,
        tags: vec![
            (b("__hostname__"), b("web-1")),
            (b("__path__"), b("/var/log/a.log")),
            (b("env"), b("prod")),
        ],
        topic: b("t1"),
        ..EventGroup::default()
    }
}

fn check_cx() -> PluginContext {
    let mut cx = PluginContext::for_check("cfg");
    cx.plugin = "flusher_otlp/0".into();
    cx
}

fn output(detail: Value) -> Box<dyn Output> {
    build(&detail, &check_cx()).unwrap_or_else(|e| panic!("{e:?}"))
}

fn field_error(detail: Value) -> String {
    match build(&detail, &check_cx()) {
        Err(e) => e.field,
        Ok(_) => panic!("{detail} was accepted"),
    }
}

/// The groups encoded by `out`'s format, one after another, as a chunk.
fn chunk_of(out: &dyn Output, groups: &[EventGroup]) -> Chunk {
    let format = out.format();
    let mut body = Vec::new();
    let mut ends = Vec::new();
    let mut records = 0;
    for g in groups {
        records += format.encode(g, &mut body);
        ends.push(body.len());
    }
    Chunk {
        id: 7,
        key: ChunkKey::default(),
        body: Bytes::from(body),
        ends,
        records,
        created: 0,
        retries: 0,
    }
}

fn decode(body: &[u8]) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest::decode(body).expect("a chunk body is an ExportLogsServiceRequest")
}

fn attrs(kvs: &[KeyValue]) -> Vec<(String, Option<any_value::Value>)> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), kv.value.clone().and_then(|v| v.value)))
        .collect()
}

fn s(v: &str) -> Option<any_value::Value> {
    Some(any_value::Value::StringValue(v.into()))
}

const GRPC: &str = "http://127.0.0.1:4317";

#[test]
fn records_map_to_log_records_and_tags_to_resource_attributes() {
    let out = output(json!({
        "Endpoint": GRPC,
        "ResourceAttributes": {"service.name": "shop"},
        "ScopeName": "loongcollector", "ScopeVersion": "1.2",
    }));
    let g = group(vec![
        event(
            1_700_000_000,
            Some(123_456_789),
            &[("content", b"hello"), ("level", b"WARN"), ("k", b"v")],
        ),
        event(5, None, &[("k", b"\xff\x00"), ("level", b"verbose")]),
    ]);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let chunk = chunk_of(out.as_ref(), &[g.clone(), g]);
    assert_eq!(chunk.records, 4);
    let req = decode(&chunk.body);
    assert_eq!(req.resource_logs.len(), 2);
    let rl = &req.resource_logs[0];
    assert_eq!(
        attrs(&rl.resource.as_ref().unwrap().attributes),
        [
            ("service.name".to_string(), s("shop")),
            ("host.name".to_string(), s("web-1")),
            ("log.file.path".to_string(), s("/var/log/a.log")),
            ("env".to_string(), s("prod")),
            ("topic".to_string(), s("t1")),
        ]
    );
    let sl = &rl.scope_logs[0];
    let scope = sl.scope.as_ref().unwrap();
    assert_eq!(
        (scope.name.as_str(), scope.version.as_str()),
        ("loongcollector", "1.2")
    );
    let r = &sl.log_records[0];
    assert_eq!(r.time_unix_nano, 1_700_000_000_123_456_789);
    assert!(r.observed_time_unix_nano >= before);
    assert_eq!(r.body.as_ref().unwrap().value, s("hello"));
    assert_eq!(r.severity_text, "WARN");
    assert_eq!(r.severity_number, SeverityNumber::Warn as i32);
    assert_eq!(attrs(&r.attributes), [("k".to_string(), s("v"))]);
    let r = &sl.log_records[1];
    assert_eq!(r.time_unix_nano, 5_000_000_000);
    assert_eq!(r.body, None, "no content, no body");
    assert_eq!(r.severity_text, "verbose");
    assert_eq!(r.severity_number, SeverityNumber::Unspecified as i32);
    assert_eq!(
        attrs(&r.attributes),
        [(
            "k".to_string(),
            Some(any_value::Value::BytesValue(vec![0xff, 0]))
        )]
    );
}

#[test]
fn an_empty_body_key_makes_a_kvlist_body_and_tag_keys_choose_tags() {
    let out = output(json!({
        "Endpoint": GRPC, "BodyKey": "", "SeverityKey": "", "TagKeys": ["env", "__topic__"],
    }));
    let g = group(vec![event(
        1,
        None,
        &[("content", b"x"), ("level", b"info")],
    )]);
    let req = decode(&chunk_of(out.as_ref(), &[g]).body);
    let rl = &req.resource_logs[0];
    assert_eq!(
        attrs(&rl.resource.as_ref().unwrap().attributes),
        [
            ("env".to_string(), s("prod")),
            ("topic".to_string(), s("t1"))
        ]
    );
    let r = &rl.scope_logs[0].log_records[0];
    assert!(r.attributes.is_empty());
    assert_eq!(r.severity_number, 0);
    match &r.body.as_ref().unwrap().value {
        Some(any_value::Value::KvlistValue(kv)) => assert_eq!(
            attrs(&kv.values),
            [
                ("content".to_string(), s("x")),
                ("level".to_string(), s("info"))
            ]
        ),
        other => panic!("{other:?}"),
    }
    let none = output(json!({"Endpoint": GRPC, "TagKeys": []}));
    let req = decode(&chunk_of(none.as_ref(), &[group(vec![event(1, None, &[])])]).body);
    assert!(req.resource_logs[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .is_empty());
}

#[test]
fn pending_events_are_read_through_with_contents() {
    let out = output(json!({"Endpoint": GRPC}));
    let mut raw = Vec::new();
    crate::proto::encode_log(&mut raw, 9, &[(b"content", b"lazy")]);
    let g = group(vec![LogEvent::from_encoded(9, Bytes::from(raw))]);
    let req = decode(&chunk_of(out.as_ref(), &[g]).body);
    let r = &req.resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(r.body.as_ref().unwrap().value, s("lazy"));
}

#[test]
fn severities_map_to_numbers() {
    for (text, n) in [
        ("TRACE", SeverityNumber::Trace),
        ("debug", SeverityNumber::Debug),
        ("Info", SeverityNumber::Info),
        ("notice", SeverityNumber::Info),
        ("warning", SeverityNumber::Warn),
        ("ERR", SeverityNumber::Error),
        (" error ", SeverityNumber::Error),
        ("CRITICAL", SeverityNumber::Fatal),
        ("panic", SeverityNumber::Fatal),
        ("chatty", SeverityNumber::Unspecified),
    ] {
        assert_eq!(severity_number(text.as_bytes()), n, "{text}");
    }
}

#[test]
fn encoder_keys_follow_the_record_options_only() {
    let f = |d: Value| output(d).format();
    let a = f(json!({"Endpoint": GRPC}));
    assert_eq!(a, f(json!({"Endpoint": "other:1", "Timeout": 5})));
    assert_ne!(a, f(json!({"Endpoint": GRPC, "BodyKey": "msg"})));
    assert_ne!(
        a,
        f(json!({"Endpoint": GRPC, "ResourceAttributes": {"a": "b"}}))
    );
    assert_ne!(a, f(json!({"Endpoint": GRPC, "TagKeys": []})));
}

#[test]
fn bad_options_name_their_field() {
    for (detail, field) in [
        (json!({}), "Endpoint"),
        (json!({"Endpoint": "ftp://x:1"}), "Endpoint"),
        (json!({"Endpoint": "http://x:1/path"}), "Endpoint"),
        (
            json!({"Protocol": "http", "Endpoint": "x:4318"}),
            "Endpoint",
        ),
        (json!({"Protocol": "thrift", "Endpoint": GRPC}), "Protocol"),
        (
            json!({"Endpoint": GRPC, "Compression": "snappy"}),
            "Compression",
        ),
        (
            json!({"Logs": {"Endpoint": GRPC, "Compression": "zstd"}}),
            "Logs.Compression",
        ),
        (
            json!({"Endpoint": GRPC, "Logs": {"Endpoint": GRPC}}),
            "Logs.Endpoint",
        ),
        (json!({"Endpoint": GRPC, "Timeout": 0}), "Timeout"),
        (json!({"Endpoint": GRPC, "Timeout": "soon"}), "Timeout"),
        (
            json!({"Logs": {"Endpoint": GRPC, "Timeout": -5}}),
            "Logs.Timeout",
        ),
        (
            json!({"Endpoint": GRPC, "Headers": {"a b": "x"}}),
            "Headers.a b",
        ),
        (
            json!({"Endpoint": GRPC, "Headers": {"grpc-timeout": "1S"}}),
            "Headers.grpc-timeout",
        ),
        (
            json!({"Protocol": "http", "Endpoint": "http://x", "Headers": {"Content-Type": "x"}}),
            "Headers.Content-Type",
        ),
        (
            json!({"Endpoint": GRPC, "Metrics": {"Endpoint": GRPC}}),
            "Metrics",
        ),
        (json!({"Endpoint": GRPC, "Version": "v2"}), "Version"),
        (
            json!({"Endpoint": GRPC, "TagKeys": ["a", ""]}),
            "TagKeys[1]",
        ),
        (
            json!({"Endpoint": GRPC, "SeverityKey": "content"}),
            "SeverityKey",
        ),
        (
            json!({"Endpoint": GRPC, "MaxRequestBytes": 10}),
            "MaxRequestBytes",
        ),
        (json!({"Endpoint": GRPC, "Bogus": 1}), "Bogus"),
        (
            json!({"Endpoint": GRPC, "TLS": {"CAFile": "/nonexistent.pem"}}),
            "Endpoint",
        ),
        (
            json!({"Endpoint": "https://x:1", "TLS": {"CAFile": "/nonexistent.pem"}}),
            "TLS.CAFile",
        ),
        (
            json!({"Endpoint": "https://x:1", "TLS": {"CertFile": "/c.pem"}}),
            "TLS.KeyFile",
        ),
        (
            json!({"Protocol": "http", "Endpoint": "https://x", "TLS": {"MinVersion": "1.4"}}),
            "TLS.MinVersion",
        ),
    ] {
        assert_eq!(field_error(detail.clone()), field, "{detail}");
    }
    // iLogtail's layout is accepted.
    output(json!({"Version": "v1", "Logs": {
        "Endpoint": "127.0.0.1:4317", "Headers": {"X-AppKey": "k"}, "Timeout": 5000,
        "WaitForReady": true, "Retry": {"MaxCount": 3}}}));
    output(json!({"Endpoint": "https://localhost:4317", "TLS": {"InsecureSkipVerify": true}}));
}

#[test]
fn http_urls_get_v1_logs() {
    assert_eq!(http_url("http://h:4318").unwrap(), "http://h:4318/v1/logs");
    assert_eq!(http_url("http://h:4318/").unwrap(), "http://h:4318/v1/logs");
    assert_eq!(
        http_url("https://h/otlp").unwrap(),
        "https://h/otlp/v1/logs"
    );
    assert_eq!(http_url("http://h/v1/logs").unwrap(), "http://h/v1/logs");
    assert!(http_url("http://h/?a=b").is_err());
}

#[test]
fn grpc_statuses_map_to_retries_or_unrecoverable() {
    let retried = |s: &Status| matches!(status_error(s, "x"), WriteError::Retry { .. });
    for code in [
        Code::Unavailable,
        Code::ResourceExhausted,
        Code::DeadlineExceeded,
        Code::Aborted,
        Code::Cancelled,
        Code::OutOfRange,
        Code::DataLoss,
    ] {
        assert!(retried(&Status::new(code, "m")), "{code:?}");
    }
    for code in [
        Code::InvalidArgument,
        Code::Unauthenticated,
        Code::PermissionDenied,
        Code::Unimplemented,
        Code::Internal,
        Code::Unknown,
    ] {
        assert!(
            matches!(
                status_error(&Status::new(code, "m"), "x"),
                WriteError::Unrecoverable(_)
            ),
            "{code:?}"
        );
    }
    // RetryInfo in the details gives the delay.
    let info = RetryInfo {
        retry_delay: Some(ProtoDuration {
            seconds: 2,
            nanos: 500_000_000,
        }),
    };
    let details = RpcStatus {
        code: Code::ResourceExhausted as i32,
        message: "slow down".into(),
        details: vec![Any {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: info.encode_to_vec(),
        }],
    }
    .encode_to_vec();
    assert_eq!(retry_delay(&details), Some(Duration::from_millis(2500)));
    let st = Status::with_details(Code::ResourceExhausted, "slow down", details.into());
    match status_error(&st, "x") {
        WriteError::Retry { after, why } => {
            assert_eq!(after, Some(Duration::from_millis(2500)));
            assert!(why.contains("slow down"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(retry_delay(b"\xff\xff"), None);
}

#[test]
fn requests_are_cut_at_group_boundaries() {
    let c = Chunk {
        id: 1,
        key: ChunkKey::default(),
        body: Bytes::from(vec![0u8; 100]),
        ends: vec![10, 40, 50, 100],
        records: 4,
        created: 0,
        retries: 0,
    };
    assert_eq!(OtlpOutput::request_end(&c, 0, 45), 40);
    assert_eq!(OtlpOutput::request_end(&c, 40, 45), 50);
    assert_eq!(OtlpOutput::request_end(&c, 50, 45), 100, "one group alone");
    assert_eq!(OtlpOutput::request_end(&c, 0, 1000), 100);
}

// --- OTLP/HTTP against a scripted server on 127.0.0.1 ----------------------------------

/// One request as the test server saw it.
struct Got {
    head: String,
    body: Vec<u8>,
}

/// A one-thread HTTP/1.1 server answering in order with `(status, extra headers, body)`.
fn serve(script: Vec<(u16, &'static str, Vec<u8>)>) -> (String, mpsc::Receiver<Got>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut script = script.into_iter();
        while let Ok((stream, _)) = listener.accept() {
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut r = BufReader::new(stream);
            while let Some(got) = read_request(&mut r) {
                let _ = tx.send(got);
                let Some((code, extra, body)) = script.next() else {
                    return;
                };
                let out = r.get_mut();
                let _ = write!(
                    out,
                    "HTTP/1.1 {code} X\r\n{extra}Content-Length: {}\r\n\r\n",
                    body.len()
                );
                let _ = out.write_all(&body);
            }
        }
    });
    (url, rx)
}

fn read_request(r: &mut impl BufRead) -> Option<Got> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let end = line == "\r\n";
        head.push_str(&line);
        if end {
            break;
        }
    }
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Got { head, body })
}

fn got(rx: &mpsc::Receiver<Got>) -> Got {
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the server saw no request")
}

fn lines(n: usize) -> EventGroup {
    group(
        (0..n)
            .map(|i| event(1, None, &[("content", format!("line {i}").as_bytes())]))
            .collect(),
    )
}

fn partial(rejected: i64) -> Vec<u8> {
    ExportLogsServiceResponse {
        partial_success: Some(ExportLogsPartialSuccess {
            rejected_log_records: rejected,
            error_message: "too old".into(),
        }),
    }
    .encode_to_vec()
}

#[test]
fn http_posts_protobuf_and_counts_partial_rejections() {
    let (url, rx) = serve(vec![(200, "", partial(2)), (201, "", Vec::new())]);
    let cx = check_cx();
    let mut out = build(
        &json!({"Protocol": "http", "Endpoint": url, "Headers": {"X-Key": "k"}}),
        &cx,
    )
    .unwrap();
    let chunk = chunk_of(out.as_ref(), &[lines(3), lines(2)]);
    out.write(&chunk).unwrap();
    let g = got(&rx);
    assert!(
        g.head.starts_with("POST /v1/logs HTTP/1.1\r\n"),
        "{}",
        g.head
    );
    let head = g.head.to_ascii_lowercase();
    assert!(head.contains("content-type: application/x-protobuf\r\n"));
    assert!(head.contains("x-key: k\r\n"));
    assert_eq!(g.body, chunk.body);
    let stats = cx.stats.plugin("cfg", "flusher_otlp/0");
    assert_eq!(stats.dropped.load(std::sync::atomic::Ordering::Relaxed), 2);
    let (alarms, _) = cx.stats.take_alarms();
    assert!(
        alarms.iter().any(|a| a.kind == AlarmType::DataDropped
            && a.message.contains("too old")
            && a.plugin == "flusher_otlp/0"),
        "{alarms:?}"
    );
    out.write(&chunk).unwrap();
    assert_eq!(decode(&got(&rx).body).resource_logs.len(), 2);
}

#[test]
fn http_answers_are_retried_or_unrecoverable() {
    let status = RpcStatus {
        code: 3,
        message: "bad record".into(),
        details: vec![],
    }
    .encode_to_vec();
    let (url, rx) = serve(vec![
        (503, "Retry-After: 7\r\n", Vec::new()),
        (429, "", Vec::new()),
        (400, "Content-Type: application/x-protobuf\r\n", status),
        (500, "", b"oops".to_vec()),
    ]);
    let mut out = output(json!({"Protocol": "http", "Endpoint": url}));
    let chunk = chunk_of(out.as_ref(), &[lines(1)]);
    match out.write(&chunk) {
        Err(WriteError::Retry { after, .. }) => assert_eq!(after, Some(Duration::from_secs(7))),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        out.write(&chunk),
        Err(WriteError::Retry { after: None, .. })
    ));
    match out.write(&chunk) {
        Err(WriteError::Unrecoverable(why)) => assert!(why.contains("bad record"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        out.write(&chunk),
        Err(WriteError::Unrecoverable(_))
    ));
    for _ in 0..4 {
        got(&rx);
    }
    // Nobody listening: retried.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut out = output(
        json!({"Protocol": "http", "Endpoint": format!("http://127.0.0.1:{port}"), "Timeout": "2s"}),
    );
    assert!(matches!(out.write(&chunk), Err(WriteError::Retry { .. })));
}

#[test]
fn http_gzip_and_big_chunks_cut_and_resumed() {
    let (url, rx) = serve(vec![
        (200, "", Vec::new()),
        (503, "", Vec::new()),
        (200, "", Vec::new()),
        (200, "", Vec::new()),
    ]);
    let mut out = output(json!({
        "Protocol": "http", "Endpoint": url, "Compression": "gzip", "MaxRequestBytes": 1024,
    }));
    let groups: Vec<EventGroup> = (0..3).map(|_| lines(40)).collect();
    let mut chunk = chunk_of(out.as_ref(), &groups);
    assert!(chunk.ends[0] > 1024 / 2, "each group is its own request");
    assert!(matches!(out.write(&chunk), Err(WriteError::Retry { .. })));
    chunk.retries = 1;
    out.write(&chunk).unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let g = got(&rx);
        assert!(g
            .head
            .to_ascii_lowercase()
            .contains("content-encoding: gzip\r\n"));
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(g.body.as_slice())
            .read_to_end(&mut plain)
            .unwrap();
        seen.push(decode(&plain).resource_logs.len());
    }
    // Group 1 accepted, group 2 refused, then groups 2 and 3 (not 1 again).
    assert_eq!(seen, [1, 1, 1, 1]);
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
}

// --- OTLP/gRPC against a real tonic server on 127.0.0.1 --------------------------------

/// A request the gRPC test server saw, with its `x-key` and `grpc-encoding` metadata.
type Seen = (ExportLogsServiceRequest, Option<String>, Option<String>);

/// What the gRPC test server answers and what it saw.
#[derive(Default)]
struct Script {
    answers: Mutex<Vec<Result<i64, Status>>>,
    /// Each request with its `x-key` and `grpc-encoding` metadata.
    seen: Mutex<Vec<Seen>>,
}

struct Service(Arc<Script>);

#[tonic::async_trait]
impl LogsService for Service {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, Status> {
        let header = |k: &str| {
            request
                .metadata()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (key, encoding) = (header("x-key"), header("grpc-encoding"));
        self.0
            .seen
            .lock()
            .unwrap()
            .push((request.into_inner(), key, encoding));
        let next = {
            let mut a = self.0.answers.lock().unwrap();
            if a.is_empty() {
                Ok(0)
            } else {
                a.remove(0)
            }
        };
        let rejected = next?;
        Ok(tonic::Response::new(ExportLogsServiceResponse {
            partial_success: (rejected > 0).then(|| ExportLogsPartialSuccess {
                rejected_log_records: rejected,
                error_message: "rejected".into(),
            }),
        }))
    }
}

/// A tonic server on 127.0.0.1 (its own runtime thread, ended when the returned sender drops).
fn grpc_server(script: Arc<Script>) -> (String, tokio::sync::oneshot::Sender<()>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let incoming =
                tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
                    .unwrap();
            tx.send(incoming.local_addr().unwrap()).unwrap();
            let svc = LogsServiceServer::new(Service(script))
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
            let _ = tonic::transport::Server::builder()
                .serve_with_incoming_shutdown(svc, incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
    });
    let addr = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    (format!("http://{addr}"), stop)
}

#[test]
fn grpc_exports_to_a_real_server_with_statuses_and_gzip() {
    let script = Arc::new(Script::default());
    *script.answers.lock().unwrap() = vec![
        Ok(0),
        Ok(3),
        Err(Status::unavailable("busy")),
        Err(Status::invalid_argument("bad")),
    ];
    let (url, _stop) = grpc_server(script.clone());
    let cx = check_cx();
    let mut out = build(
        &json!({"Endpoint": url, "Headers": {"X-Key": "k"}, "Compression": "gzip", "Timeout": "5s"}),
        &cx,
    )
    .unwrap();
    let chunk = chunk_of(out.as_ref(), &[lines(3), lines(2)]);
    out.write(&chunk).unwrap();
    out.write(&chunk).unwrap();
    let stats = cx.stats.plugin("cfg", "flusher_otlp/0");
    assert_eq!(stats.dropped.load(std::sync::atomic::Ordering::Relaxed), 3);
    match out.write(&chunk) {
        Err(WriteError::Retry { why, .. }) => assert!(why.contains("busy"), "{why}"),
        other => panic!("{other:?}"),
    }
    match out.write(&chunk) {
        Err(WriteError::Unrecoverable(why)) => assert!(why.contains("bad"), "{why}"),
        other => panic!("{other:?}"),
    }
    let seen = script.seen.lock().unwrap();
    assert_eq!(seen.len(), 4);
    let (req, key, encoding) = &seen[0];
    assert_eq!(key.as_deref(), Some("k"));
    assert_eq!(encoding.as_deref(), Some("gzip"));
    assert_eq!(req, &decode(&chunk.body));
    assert_eq!(req.resource_logs[1].scope_logs[0].log_records.len(), 2);
}

#[test]
fn grpc_without_a_server_is_retried_within_the_timeout() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut out = output(json!({"Endpoint": format!("127.0.0.1:{port}"), "Timeout": "2s"}));
    let chunk = chunk_of(out.as_ref(), &[lines(1)]);
    let t = std::time::Instant::now();
    assert!(matches!(out.write(&chunk), Err(WriteError::Retry { .. })));
    assert!(t.elapsed() < Duration::from_secs(3));
    // A server that comes up later is written to by the same output.
    let script = Arc::new(Script::default());
    let (url, _stop) = grpc_server(script.clone());
    let mut out = output(json!({"Endpoint": url, "Timeout": "5s"}));
    out.write(&chunk).unwrap();
    // Called from inside a runtime (a `Mode: none` flusher on the engine's workers).
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async { out.write(&chunk) }).unwrap();
    drop(rt);
    drop(out);
    assert_eq!(script.seen.lock().unwrap().len(), 2);
}

// --- OTLP/gRPC over TLS --------------------------------------------------------------------

/// A CA and a server certificate for `localhost` and 127.0.0.1, the CA's PEM in a temporary
/// file (removed on drop).
struct Pki {
    ca_file: std::path::PathBuf,
    server: Arc<rustls::ServerConfig>,
}

impl Pki {
    fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "flusher_otlp test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let ca_file = std::env::temp_dir().join(format!(
            "flusher-otlp-ca-{}-{}.pem",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key.into())
            .unwrap();
        server.alpn_protocols = vec![b"h2".to_vec()];
        Self {
            ca_file,
            server: Arc::new(server),
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

/// A server-side TLS connection, as tonic's server takes it.
struct TlsIo(tokio_rustls::server::TlsStream<tokio::net::TcpStream>);

impl tokio::io::AsyncRead for TlsIo {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsIo {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for TlsIo {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

/// The handshaken connections, for tonic.
struct Handshaken(tokio::sync::mpsc::UnboundedReceiver<TlsIo>);

impl futures_core::Stream for Handshaken {
    type Item = std::io::Result<TlsIo>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|c| c.map(Ok))
    }
}

/// [`grpc_server`] over TLS: the port, and a count of failed handshakes.
fn grpc_tls_server(
    script: Arc<Script>,
    tls: Arc<rustls::ServerConfig>,
) -> (
    u16,
    Arc<std::sync::atomic::AtomicUsize>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let failed = refused.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    match acceptor.accept(tcp).await {
                        Ok(tls) => {
                            let _ = tx.send(TlsIo(tls));
                        }
                        Err(_) => {
                            failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
            });
            let svc = LogsServiceServer::new(Service(script));
            let _ = tonic::transport::Server::builder()
                .serve_with_incoming_shutdown(svc, Handshaken(rx), async {
                    let _ = stopped.await;
                })
                .await;
        });
    });
    (port, refused, stop)
}

#[test]
fn grpc_over_tls_verifies_the_server() {
    use std::sync::atomic::Ordering;
    let pki = Pki::new();
    let script = Arc::new(Script::default());
    let (port, refused, _stop) = grpc_tls_server(script.clone(), pki.server.clone());
    let chunk = chunk_of(output(json!({"Endpoint": GRPC})).as_ref(), &[lines(2)]);
    let with = |tls: Value| {
        output(json!({
            "Endpoint": format!("https://localhost:{port}"), "TLS": tls, "Timeout": "5s",
        }))
    };
    with(json!({"CAFile": pki.ca_file.to_str().unwrap()}))
        .write(&chunk)
        .unwrap();
    assert_eq!(script.seen.lock().unwrap().len(), 1);
    // The bundled roots do not know the test CA: retried, nothing sent.
    match with(json!({})).write(&chunk) {
        Err(WriteError::Retry { why, .. }) => {
            assert!(why.to_ascii_lowercase().contains("certificate"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(script.seen.lock().unwrap().len(), 1);
    // The server's side of the failed handshake is counted a moment later.
    let t = std::time::Instant::now();
    while refused.load(Ordering::Relaxed) == 0 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(refused.load(Ordering::Relaxed), 1);
    with(json!({"InsecureSkipVerify": true}))
        .write(&chunk)
        .unwrap();
    let seen = script.seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].0, decode(&chunk.body));
}

/// What the generated client would add per chunk (decode the body into the prost types, then
/// encode them again) next to the encoding itself. Run with
/// `cargo test --release -p plugin-engine --lib otlp::tests::pass_through_saves -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn pass_through_saves_a_decode_and_encode() {
    let out = output(json!({"Endpoint": GRPC}));
    let groups: Vec<EventGroup> = (0..64).map(|_| lines(1000)).collect();
    let t = std::time::Instant::now();
    let mut chunk = chunk_of(out.as_ref(), &groups);
    for _ in 0..4 {
        chunk = chunk_of(out.as_ref(), &groups);
    }
    let encode = t.elapsed() / 5;
    let t = std::time::Instant::now();
    let mut len = 0;
    for _ in 0..5 {
        len = decode(&chunk.body).encode_to_vec().len();
    }
    let again = t.elapsed() / 5;
    assert_eq!(len, chunk.body.len());
    eprintln!(
        "{} records, {} bytes: encode {encode:?}; decode + encode again {again:?}",
        chunk.records,
        chunk.body.len()
    );
}
