//! `flusher_forward` against a tiny forward server on 127.0.0.1 (decoding every message with
//! rmpv, answering acks and the handshake as Fluent Bit's `in_forward` does).

use super::secure::{bytes_of, get, sha512_hex};
use super::*;
use flate2::read::GzDecoder;
use rmpv::Value as Mp;
use serde_json::json;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread::JoinHandle;

/// How the fake server answers each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// `{"ack": chunk}` when the message asks for one.
    Ack,
    /// Nothing.
    Silent,
    /// `{"ack": "nope"}`.
    WrongAck,
    /// The ack, then the connection is closed.
    AckThenClose,
}

/// The fake server's shared key, host name and users.
#[derive(Debug, Clone)]
struct Security {
    key: String,
    hostname: String,
    users: Vec<(String, String)>,
    /// Answers PONG with a digest made with another key.
    lie: bool,
}

/// A message as received.
#[derive(Debug, Clone)]
struct Message {
    tag: String,
    mode: &'static str,
    entries: Vec<Mp>,
    option: Mp,
}

struct FakeServer {
    port: u16,
    messages: Arc<Mutex<Vec<Message>>>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    fn start(answer: Answer, security: Option<Security>) -> Self {
        Self::on(0, answer, security)
    }

    fn on(port: u16, answer: Answer, security: Option<Security>) -> Self {
        let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (messages, connections, stop) =
                (messages.clone(), connections.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match l.accept() {
                        Ok((s, _)) => {
                            s.set_nonblocking(false).unwrap();
                            connections.lock().unwrap().push(s.try_clone().unwrap());
                            let (messages, security) = (messages.clone(), security.clone());
                            std::thread::spawn(move || serve(s, answer, security, &messages));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        Self {
            port,
            messages,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    fn messages(&self) -> Vec<Message> {
        self.messages.lock().unwrap().clone()
    }

    /// Stops listening and resets every connection.
    fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for c in self.connections.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.halt();
    }
}

fn send_value(s: &mut TcpStream, v: &Mp) {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, v).unwrap();
    let _ = s.write_all(&out);
}

fn text(v: &Mp) -> String {
    String::from_utf8_lossy(bytes_of(v).unwrap_or_default()).into_owned()
}

/// The server side of the handshake, as Fluent Bit's in_forward: a wrong shared key closes
/// the connection, a wrong user gets a failed PONG.
fn server_handshake(s: &mut TcpStream, sec: &Security) -> bool {
    let nonce = secure::random_bytes::<16>().unwrap().to_vec();
    let salt = secure::random_bytes::<16>().unwrap().to_vec();
    send_value(
        s,
        &Mp::Array(vec![
            Mp::from("HELO"),
            Mp::Map(vec![
                (Mp::from("nonce"), Mp::Binary(nonce.clone())),
                (Mp::from("auth"), Mp::Binary(salt.clone())),
                (Mp::from("keepalive"), Mp::Boolean(true)),
            ]),
        ]),
    );
    let Ok(Mp::Array(p)) = rmpv::decode::read_value(s) else {
        return false;
    };
    if p.len() != 6 || text(&p[0]) != "PING" {
        return false;
    }
    let (host, key_salt, digest, user, user_digest) = (
        bytes_of(&p[1]).unwrap_or_default(),
        bytes_of(&p[2]).unwrap_or_default(),
        text(&p[3]),
        text(&p[4]),
        text(&p[5]),
    );
    if digest != sha512_hex(&[key_salt, host, &nonce, sec.key.as_bytes()]) {
        return false;
    }
    let user_ok = sec.users.is_empty()
        || sec.users.iter().any(|(u, pw)| {
            *u == user && user_digest == sha512_hex(&[&salt, u.as_bytes(), pw.as_bytes()])
        });
    let pong = if user_ok {
        let key = if sec.lie { "other" } else { sec.key.as_str() };
        let d = sha512_hex(&[key_salt, sec.hostname.as_bytes(), &nonce, key.as_bytes()]);
        vec![
            Mp::from("PONG"),
            Mp::Boolean(true),
            Mp::from(""),
            Mp::from(sec.hostname.as_str()),
            Mp::from(d.as_str()),
        ]
    } else {
        vec![
            Mp::from("PONG"),
            Mp::Boolean(false),
            Mp::from("username/password mismatch"),
            Mp::from(""),
            Mp::from(""),
        ]
    };
    send_value(s, &Mp::Array(pong));
    user_ok
}

/// Serves one connection, then closes it (the server keeps a clone to reset at its stop).
fn serve(s: TcpStream, answer: Answer, security: Option<Security>, messages: &Mutex<Vec<Message>>) {
    let mut s = s;
    serve_messages(&mut s, answer, security, messages);
    let _ = s.shutdown(std::net::Shutdown::Both);
}

fn serve_messages(
    s: &mut TcpStream,
    answer: Answer,
    security: Option<Security>,
    messages: &Mutex<Vec<Message>>,
) {
    if let Some(sec) = &security {
        if !server_handshake(s, sec) {
            return;
        }
    }
    loop {
        let Ok(Mp::Array(a)) = rmpv::decode::read_value(s) else {
            return;
        };
        let option = a.get(2).cloned().unwrap_or(Mp::Nil);
        let (mode, entries) = match &a[1] {
            Mp::Array(e) => ("Forward", e.clone()),
            Mp::Binary(b) => {
                let compressed = get(&option, "compressed").map(text).as_deref() == Some("gzip");
                let mut data = Vec::new();
                if compressed {
                    GzDecoder::new(&b[..]).read_to_end(&mut data).unwrap();
                } else {
                    data.clone_from(b);
                }
                let mut rd = &data[..];
                let mut entries = Vec::new();
                while !rd.is_empty() {
                    entries.push(rmpv::decode::read_value(&mut rd).unwrap());
                }
                let mode = if compressed {
                    "CompressedPackedForward"
                } else {
                    "PackedForward"
                };
                (mode, entries)
            }
            other => panic!("unexpected entries {other}"),
        };
        messages.lock().unwrap().push(Message {
            tag: text(&a[0]),
            mode,
            entries,
            option: option.clone(),
        });
        let chunk = get(&option, "chunk").cloned();
        match (answer, chunk) {
            (Answer::Ack | Answer::AckThenClose, Some(c)) => {
                send_value(s, &Mp::Map(vec![(Mp::from("ack"), c)]));
            }
            (Answer::WrongAck, Some(_)) => {
                send_value(s, &Mp::Map(vec![(Mp::from("ack"), Mp::from("nope"))]));
            }
            _ => {}
        }
        if answer == Answer::AckThenClose {
            return;
        }
    }
}

fn output(detail: Value) -> Box<dyn Output> {
    build(&detail, &PluginContext::for_check("t")).unwrap_or_else(|e| panic!("{e:?}"))
}

/// A chunk of `lines` (`content` fields; the first with nanoseconds) with chunk key `tag`.
fn chunk(lines: &[&str], tag: Option<&str>) -> Chunk {
    let events = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut e = LogEvent::new(1_700_000_000 + i as u32);
            e.time_ns = (i == 0).then_some(5);
            e.contents = vec![(Bytes::from_static(b"content"), Bytes::from(l.to_string()))];
            e
        })
        .collect();
    let group = EventGroup {
        events,
        ..EventGroup::default()
    };
    let mut body = Vec::new();
    let records = Format::Msgpack.encode(&group, &mut body);
    Chunk {
        id: 1,
        key: ChunkKey {
            tag: tag.map(|t| Bytes::from(t.to_string())),
            ..ChunkKey::default()
        },
        ends: vec![body.len()],
        body: body.into(),
        records,
        created: 0,
        retries: 0,
    }
}

/// The `content` values of a message.
fn contents(m: &Message) -> Vec<String> {
    m.entries
        .iter()
        .map(|e| match e {
            Mp::Array(a) => text(get(&a[1], "content").unwrap()),
            other => panic!("not an entry: {other}"),
        })
        .collect()
}

fn retry_text(r: Result<(), WriteError>) -> String {
    match r {
        Err(WriteError::Retry { why, .. }) => why,
        other => panic!("expected a retry, got {other:?}"),
    }
}

#[test]
fn each_mode_frames_the_entries_as_the_protocol_says() {
    let server = FakeServer::start(Answer::Ack, None);
    for (mode, want) in [
        (json!("Forward"), "Forward"),
        (json!(null), "PackedForward"),
        (json!("CompressedPackedForward"), "CompressedPackedForward"),
    ] {
        let mut out = output(json!({
            "Host": "127.0.0.1", "Port": server.port, "SendMode": mode, "Tag": "app.${tag}",
        }));
        assert_eq!(out.chunk_keys(), ["tag"]);
        out.write(&chunk(&["a", "b", "c"], Some("x"))).unwrap();
        let m = server.messages().pop().unwrap();
        assert_eq!((m.tag.as_str(), m.mode), ("app.x", want));
        assert_eq!(contents(&m), ["a", "b", "c"]);
        assert_eq!(get(&m.option, "size").and_then(Mp::as_u64), Some(3));
        let id = get(&m.option, "chunk").map(text).unwrap();
        assert_eq!(id.len(), 24, "{id}");
        // The first entry keeps its nanoseconds (EventTime), the others are integers.
        let Mp::Array(first) = &m.entries[0] else {
            unreachable!()
        };
        assert!(
            matches!(&first[0], Mp::Ext(0, b) if b.len() == 8),
            "{first:?}"
        );
        assert!(matches!(&m.entries[1], Mp::Array(a) if a[0].as_u64() == Some(1_700_000_001)));
    }
    assert_eq!(server.messages().len(), 3);
    // Compress: gzip is the compressed mode; an empty tag is `untagged`.
    let mut out = output(json!({"Host": "127.0.0.1", "Port": server.port, "Compress": "gzip"}));
    out.write(&chunk(&["z"], None)).unwrap();
    let m = server.messages().pop().unwrap();
    assert_eq!(
        (m.tag.as_str(), m.mode),
        ("untagged", "CompressedPackedForward")
    );
    // A literal tag needs no chunk key.
    let out = output(json!({"Host": "127.0.0.1", "Port": server.port, "Tag": "fixed"}));
    assert!(out.chunk_keys().is_empty());
}

#[test]
fn a_missing_or_wrong_ack_is_retried_and_without_acks_the_write_is_enough() {
    let silent = FakeServer::start(Answer::Silent, None);
    let mut out = output(json!({
        "Host": "127.0.0.1", "Port": silent.port, "AckResponseTimeout": "200ms",
    }));
    let t0 = Instant::now();
    let why = retry_text(out.write(&chunk(&["a"], Some("t"))));
    assert!(why.contains("waiting for the ack: timed out"), "{why}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let wrong = FakeServer::start(Answer::WrongAck, None);
    let mut out = output(json!({"Host": "127.0.0.1", "Port": wrong.port}));
    let why = retry_text(out.write(&chunk(&["a"], Some("t"))));
    assert!(why.contains("the ack is for chunk \"nope\""), "{why}");
    // Without acks the silent server is fine, and no chunk id is sent.
    let mut out = output(json!({
        "Host": "127.0.0.1", "Port": silent.port, "RequireAckResponse": false,
    }));
    out.write(&chunk(&["b"], Some("t"))).unwrap();
    let ok = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(5));
        silent.messages().len() == 2
    });
    assert!(ok, "{:?}", silent.messages());
    assert!(get(&silent.messages()[1].option, "chunk").is_none());
}

#[test]
fn the_handshake_checks_the_shared_key_and_the_user() {
    let sec = Security {
        key: "k1".into(),
        hostname: "fb-server".into(),
        users: vec![("alice".into(), "pw".into())],
        lie: false,
    };
    let server = FakeServer::start(Answer::Ack, Some(sec));
    let detail = |key: &str, pass: &str| {
        json!({
            "Host": "127.0.0.1", "Port": server.port, "SharedKey": key, "SelfHostname": "me",
            "Username": "alice", "Password": pass, "ConnectTimeout": 2,
        })
    };
    let mut out = output(detail("k1", "pw"));
    out.write(&chunk(&["a"], Some("t"))).unwrap();
    out.write(&chunk(&["b"], Some("t"))).unwrap();
    assert_eq!(server.messages().len(), 2);
    let why = retry_text(output(detail("k2", "pw")).write(&chunk(&["c"], Some("t"))));
    assert!(
        why.contains("reading PONG") && why.contains("wrong SharedKey"),
        "{why}"
    );
    let why = retry_text(output(detail("k1", "bad")).write(&chunk(&["d"], Some("t"))));
    assert!(why.contains("username/password mismatch"), "{why}");
    assert_eq!(server.messages().len(), 2);
    // A server whose PONG digest is not made with our key is refused.
    let liar = FakeServer::start(
        Answer::Ack,
        Some(Security {
            key: "k1".into(),
            hostname: "x".into(),
            users: vec![],
            lie: true,
        }),
    );
    let mut out = output(json!({"Host": "127.0.0.1", "Port": liar.port, "SharedKey": "k1"}));
    let why = retry_text(out.write(&chunk(&["e"], Some("t"))));
    assert!(why.contains("PONG digest does not match"), "{why}");
    assert!(liar.messages().is_empty());
}

#[test]
fn fail_over_goes_to_the_next_server_and_weights_share_the_load() {
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let live = FakeServer::start(Answer::Ack, None);
    let mut out = output(json!({"Servers": [
        {"Host": "127.0.0.1", "Port": dead_port, "Weight": 1000},
        {"Host": "127.0.0.1", "Port": live.port, "Weight": 1},
    ], "HeartbeatInterval": 60}));
    for i in 0..20 {
        out.write(&chunk(&[&i.to_string()], Some("t"))).unwrap();
    }
    assert_eq!(live.messages().len(), 20);
    // Weights 1 : 3.
    let (a, b) = (
        FakeServer::start(Answer::Ack, None),
        FakeServer::start(Answer::Ack, None),
    );
    let (a_port, b_port) = (a.port, b.port);
    let mut out = output(json!({"Servers": [
        {"Host": "127.0.0.1", "Port": a.port, "Weight": 1},
        {"Host": "127.0.0.1", "Port": b.port, "Weight": 3},
    ]}));
    for i in 0..400 {
        out.write(&chunk(&[&i.to_string()], Some("t"))).unwrap();
    }
    let (na, nb) = (a.messages().len(), b.messages().len());
    assert_eq!(na + nb, 400);
    assert!((50..150).contains(&na), "{na} : {nb}");
    // Nothing up: a retry naming each server.
    a.stop();
    b.stop();
    let why = retry_text(out.write(&chunk(&["x"], Some("t"))));
    for port in [a_port, b_port] {
        assert!(why.contains(&format!("127.0.0.1:{port}: ")), "{why}");
    }
}

#[test]
fn standby_is_used_only_while_the_others_are_down_and_a_probe_brings_them_back() {
    let primary = FakeServer::start(Answer::Ack, None);
    let port = primary.port;
    let standby = FakeServer::start(Answer::Ack, None);
    let mut out = output(json!({"Servers": [
        {"Host": "127.0.0.1", "Port": port, "Name": "primary"},
        {"Host": "127.0.0.1", "Port": standby.port, "Standby": true},
    ], "HeartbeatInterval": "100ms"}));
    for _ in 0..10 {
        out.write(&chunk(&["p"], Some("t"))).unwrap();
    }
    assert_eq!(
        (primary.messages().len(), standby.messages().len()),
        (10, 0)
    );
    primary.stop();
    for _ in 0..10 {
        out.write(&chunk(&["s"], Some("t"))).unwrap();
    }
    assert_eq!(standby.messages().len(), 10);
    let primary = FakeServer::on(port, Answer::Ack, None);
    std::thread::sleep(Duration::from_millis(150));
    for _ in 0..10 {
        out.write(&chunk(&["p"], Some("t"))).unwrap();
    }
    assert_eq!(
        (primary.messages().len(), standby.messages().len()),
        (10, 10)
    );
}

#[test]
fn a_kept_connection_the_server_closed_is_replaced() {
    let server = FakeServer::start(Answer::AckThenClose, None);
    let mut out = output(json!({"Host": "127.0.0.1", "Port": server.port}));
    for i in 0..20 {
        out.write(&chunk(&[&i.to_string()], Some("t"))).unwrap();
    }
    let got: Vec<String> = server.messages().iter().flat_map(contents).collect();
    let want: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(got, want);
}

#[test]
fn options_are_checked_naming_the_field() {
    let field = |d: Value| match build(&d, &PluginContext::for_check("t")) {
        Err(e) => e.field,
        Ok(_) => panic!("{d} was accepted"),
    };
    assert_eq!(field(json!({})), "Host");
    assert_eq!(
        field(json!({"Host": "h", "Servers": [{"Host": "h"}]})),
        "Host"
    );
    assert_eq!(field(json!({"Host": "h", "Port": 0})), "Port");
    assert_eq!(field(json!({"Host": "h", "Port": 70000})), "Port");
    assert_eq!(field(json!({"Servers": [{"Host": ""}]})), "Servers[0].Host");
    assert_eq!(
        field(json!({"Servers": [{"Host": "h", "Wieght": 1}]})),
        "Servers[0].Wieght"
    );
    assert_eq!(
        field(json!({"Host": "h", "SendMode": "Message"})),
        "SendMode"
    );
    assert_eq!(field(json!({"Host": "h", "Compress": "zstd"})), "Compress");
    assert_eq!(
        field(json!({"Host": "h", "SendMode": "Forward", "Compress": "gzip"})),
        "Compress"
    );
    assert_eq!(field(json!({"Host": "h", "Timeout": "soon"})), "Timeout");
    assert_eq!(
        field(json!({"Host": "h", "AckResponseTimeout": 0})),
        "AckResponseTimeout"
    );
    assert_eq!(field(json!({"Host": "h", "Tag": "${"})), "Tag");
    assert_eq!(field(json!({"Host": "h", "SharedKey": ""})), "SharedKey");
    assert_eq!(field(json!({"Host": "h", "Username": "u"})), "Username");
    assert_eq!(
        field(json!({"Host": "h", "TLS": {"CAFile": "/x"}})),
        "TLS.CAFile"
    );
    assert_eq!(
        field(json!({"Host": "h", "TLS": {"Enabled": true, "CAFile": "/nonexistent"}})),
        "TLS.CAFile"
    );
    output(json!({"Host": "h", "Timeout": 2.5, "HeartbeatInterval": "1m", "KeepAlive": false}));
    // The README's sample (its Buffer is the framework's, its TLS files are not here).
    output(json!({
        "Servers": [
            {"Host": "fluentd-a.internal", "Port": 24224, "Weight": 60},
            {"Host": "fluentd-b.internal", "Port": 24224, "Weight": 60},
            {"Host": "fluentd-dr.internal", "Port": 24224, "Standby": true}
        ],
        "Tag": "app.logs", "SendMode": "CompressedPackedForward",
        "RequireAckResponse": true, "AckResponseTimeout": "60s",
        "SharedKey": "change-me", "SelfHostname": "node-1",
        "Username": "agent", "Password": "secret", "HeartbeatInterval": "1s",
        "TLS": {"Enabled": true, "ServerName": "fluentd.internal"},
    }));
}

/// A TLS forward server (rustls, a certificate for 127.0.0.1 made here) that reads one
/// message per connection without acking it, then closes the connection (close_notify).
/// Returns its port, the CA's PEM path and the messages' contents.
fn tls_server_closing_each(dir: &std::path::Path) -> (u16, String, Arc<Mutex<Vec<String>>>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap(),
    );
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, s);
            if let Ok(Mp::Array(a)) = rmpv::decode::read_value(&mut tls) {
                let mut rd = bytes_of(&a[1]).unwrap_or_default();
                while let Ok(Mp::Array(e)) = rmpv::decode::read_value(&mut rd) {
                    seen.lock()
                        .unwrap()
                        .push(text(get(&e[1], "content").unwrap()));
                }
            }
            tls.conn.send_close_notify();
            let _ = tls.conn.complete_io(&mut tls.sock);
            let _ = tls.sock.shutdown(std::net::Shutdown::Both);
        }
    });
    (port, ca_path.display().to_string(), got)
}

#[test]
fn tls_without_acks_notices_the_server_closed_the_kept_connection() {
    let dir = std::env::temp_dir().join(format!("forward-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (port, ca, got) = tls_server_closing_each(&dir);
    let mut out = output(json!({
        "Host": "127.0.0.1", "Port": port, "RequireAckResponse": false,
        "TLS": {"Enabled": true, "CAFile": ca},
    }));
    for i in 0..5 {
        out.write(&chunk(&[&i.to_string()], Some("t"))).unwrap();
        // The server's close (behind its session tickets) arrives before the next write.
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(*got.lock().unwrap(), ["0", "1", "2", "3", "4"]);
}
