//! A fault-injecting HTTP/1.1 sink for the `flusher_http` scenario tests.
//!
//! [`HttpSink::start`] listens on `127.0.0.1:0` and answers every request by its
//! [`Script`]: first the script's steps, one per request, then its standing behaviour, which
//! [`HttpSink::set`] changes at run time. Each connection has its own thread, keeps alive
//! (answers carry `Content-Length`) until the client closes or sends `Connection: close`,
//! and takes `Content-Length` or chunked bodies, gzipped or not (`Content-Encoding: gzip`).
//!
//! The records of every accepted (2xx) request are kept in arrival order, as JSON values:
//! - `application/x-protobuf`: a `LogGroupList`; each log becomes one flat object
//!   `{"__time__": t, <contents>, "__tag__:<key>": v, "__topic__": topic}`;
//! - `application/json` (or a body starting with `[`): the array's elements (or the value);
//! - anything else (ndjson, raw): one record per non-empty line, the parsed JSON object when
//!   the line is JSON, else the line as a string;
//! - `application/msgpack`: kept in [`Request::body`] but not decoded (no records).

use crate::proto::LogGroup;
use prost::Message;
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the sink answers a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// `200 OK`: the records are accepted.
    Ok,
    /// This status, with a short text body (not accepted unless 2xx).
    Fail(u16),
    /// `429 Too Many Requests` with `Retry-After: <secs>`.
    RetryAfter(u64),
    /// Waits this long, then `200 OK`.
    Delay(Duration),
    /// Reads the request, then closes the connection without answering.
    Drop,
}

/// The answers of a sink: `steps` for the first requests, one each, then `then`.
#[derive(Debug, Clone)]
pub struct Script {
    steps: VecDeque<Behaviour>,
    then: Behaviour,
}

impl Script {
    /// Answers every request with `b`.
    pub fn always(b: Behaviour) -> Self {
        Self {
            steps: VecDeque::new(),
            then: b,
        }
    }

    /// Answers the first requests with `steps`, in order, then with `Ok`.
    pub fn steps(steps: impl IntoIterator<Item = Behaviour>) -> Self {
        Self {
            steps: steps.into_iter().collect(),
            then: Behaviour::Ok,
        }
    }

    /// After the steps, answers with `b`.
    pub fn then(mut self, b: Behaviour) -> Self {
        self.then = b;
        self
    }

    fn next(&mut self) -> Behaviour {
        self.steps.pop_front().unwrap_or_else(|| self.then.clone())
    }
}

impl Default for Script {
    fn default() -> Self {
        Self::always(Behaviour::Ok)
    }
}

/// One request as the sink received it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `POST`, ...
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body, gunzipped.
    pub body: Vec<u8>,
    /// The status answered; `None` when the connection was dropped.
    pub status: Option<u16>,
    /// The records of the body (see the module docs), accepted or not.
    pub records: Vec<Value>,
    /// When the sink had read the whole request (before it answered).
    pub received_at: Instant,
}

impl Request {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    script: Script,
    requests: Vec<Request>,
    accepted: Vec<Value>,
    connections: usize,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running sink; stops accepting when dropped (open connections end within 200 ms).
pub struct HttpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl HttpSink {
    /// Starts a sink answering by `script`.
    ///
    /// # Panics
    /// When it cannot listen on `127.0.0.1`.
    pub fn start(script: Script) -> HttpSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the http sink");
        let addr = listener.local_addr().expect("http sink address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                script,
                ..State::default()
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let sh = shared.clone();
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if sh.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                sh.lock().connections += 1;
                let sh = sh.clone();
                std::thread::spawn(move || serve(stream, &sh));
            }
        });
        HttpSink {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Answers every further request with `b` (the remaining steps are dropped).
    pub fn set(&self, b: Behaviour) {
        self.shared.lock().script = Script::always(b);
    }

    /// How many requests arrived (answered or dropped).
    pub fn requests(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
    }

    /// The records of the accepted requests, in arrival order.
    pub fn records(&self) -> Vec<Value> {
        self.shared.lock().accepted.clone()
    }

    /// How many records were accepted.
    pub fn record_count(&self) -> usize {
        self.shared.lock().accepted.len()
    }

    /// How many connections were opened to the sink.
    pub fn connections(&self) -> usize {
        self.shared.lock().connections
    }

    /// Waits until at least `n` records were accepted; whether they were within `timeout`.
    pub fn wait_records(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        while st.accepted.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = match self.shared.changed.wait_timeout(st, left) {
                Ok((st, _)) => st,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// A connection and what was read from it and not yet parsed.
struct Conn<'a> {
    stream: TcpStream,
    buf: Vec<u8>,
    shared: &'a Shared,
}

impl Conn<'_> {
    /// Reads more; `Ok(false)` at end of stream or when the sink stops.
    fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if self.shared.stop.load(Ordering::SeqCst) {
                return Ok(false);
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next `\r\n`-terminated line, without it.
    fn line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return Some(line);
            }
            if self.buf.len() > 64 * 1024 || !self.fill().ok()? {
                return None;
            }
        }
    }

    /// The next `n` bytes.
    fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().ok()? {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }
}

/// A request, its body as sent, not answered yet; `None` when the client closed (or sent
/// garbage).
fn read_request(c: &mut Conn<'_>) -> Option<Request> {
    let start = String::from_utf8(c.line()?).ok()?;
    let mut parts = start.split(' ');
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let line = String::from_utf8(c.line()?).ok()?;
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let body = if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let size = String::from_utf8(c.line()?).ok()?;
            let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                while !c.line()?.is_empty() {}
                break;
            }
            body.extend(c.take(size)?);
            c.take(2)?;
        }
        body
    } else {
        c.take(
            get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        )?
    };
    Some(Request {
        method,
        target,
        headers,
        body,
        status: None,
        records: Vec::new(),
        received_at: Instant::now(),
    })
}

fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = stream.set_nodelay(true);
    let mut c = Conn {
        stream,
        buf: Vec::new(),
        shared,
    };
    while let Some(mut req) = read_request(&mut c) {
        if req.header("content-encoding") == Some("gzip") {
            let mut plain = Vec::new();
            if flate2::read::GzDecoder::new(&req.body[..])
                .read_to_end(&mut plain)
                .is_ok()
            {
                req.body = plain;
            }
        }
        req.records = decode(req.header("content-type").unwrap_or(""), &req.body);
        let close = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let behaviour = shared.lock().script.next();
        let (status, extra) = match behaviour {
            Behaviour::Ok => (Some(200), String::new()),
            Behaviour::Fail(s) => (Some(s), String::new()),
            Behaviour::RetryAfter(secs) => (Some(429), format!("Retry-After: {secs}\r\n")),
            Behaviour::Delay(d) => {
                std::thread::sleep(d);
                (Some(200), String::new())
            }
            Behaviour::Drop => (None, String::new()),
        };
        req.status = status;
        {
            let mut st = shared.lock();
            if status.is_some_and(|s| (200..300).contains(&s)) {
                st.accepted.extend(req.records.iter().cloned());
            }
            st.requests.push(req);
        }
        shared.changed.notify_all();
        let Some(status) = status else {
            let _ = c.stream.shutdown(Shutdown::Both);
            return;
        };
        let text = if (200..300).contains(&status) {
            "ok"
        } else {
            "injected failure"
        };
        let answer = format!(
            "HTTP/1.1 {status} Sink\r\n{extra}Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        if c.stream.write_all(answer.as_bytes()).is_err() || close {
            return;
        }
    }
}

/// `message LogGroupList { repeated LogGroup logGroupList = 1; }`
#[derive(Clone, PartialEq, Message)]
struct LogGroupList {
    #[prost(message, repeated, tag = "1")]
    log_group_list: Vec<LogGroup>,
}

/// The records of a body by its content type (see the module docs).
fn decode(content_type: &str, body: &[u8]) -> Vec<Value> {
    if content_type.contains("msgpack") {
        return Vec::new();
    }
    if content_type.contains("protobuf") {
        let Ok(list) = LogGroupList::decode(body) else {
            return vec![Value::String("<bad LogGroupList>".into())];
        };
        let mut out = Vec::new();
        for g in list.log_group_list {
            for log in g.logs {
                let mut obj = Map::new();
                obj.insert("__time__".into(), Value::from(log.time));
                for c in log.contents {
                    obj.insert(c.key, Value::String(c.value));
                }
                for t in &g.log_tags {
                    obj.insert(format!("__tag__:{}", t.key), Value::String(t.value.clone()));
                }
                if let Some(topic) = g.topic.as_ref().filter(|t| !t.is_empty()) {
                    obj.insert("__topic__".into(), Value::String(topic.clone()));
                }
                out.push(Value::Object(obj));
            }
        }
        return out;
    }
    let text = String::from_utf8_lossy(body);
    if content_type.starts_with("application/json") || text.trim_start().starts_with('[') {
        return match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(items)) => items,
            Ok(v) => vec![v],
            Err(_) => vec![Value::String(text.into_owned())],
        };
    }
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| Value::String(l.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{log, LogTag};
    use flate2::write::GzEncoder;

    /// Sends one request on `s` and returns the answer head and body (`None` if dropped).
    fn post(s: &mut TcpStream, headers: &str, body: &[u8]) -> Option<String> {
        let head = format!(
            "POST /in HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).ok()?;
        s.write_all(body).ok()?;
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !got.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte).ok()? == 0 {
                return None;
            }
            got.push(byte[0]);
        }
        let head = String::from_utf8(got).ok()?;
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse().ok())?;
        let mut rest = vec![0; len];
        s.read_exact(&mut rest).ok()?;
        Some(head)
    }

    #[test]
    fn sink_scripts_answers_and_counts_records() {
        let sink = HttpSink::start(Script::steps([Behaviour::Fail(503), Behaviour::Drop]));
        let connect = || {
            let s = TcpStream::connect(sink.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s
        };
        let ndjson = b"{\"a\":1}\n{\"a\":2}\n";
        let mut s = connect();
        assert!(post(&mut s, "", ndjson)
            .unwrap()
            .starts_with("HTTP/1.1 503 "));
        assert_eq!(
            post(&mut s, "", ndjson),
            None,
            "the second request is dropped"
        );
        let mut s = connect();
        let mut z = GzEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(ndjson).unwrap();
        let gz = z.finish().unwrap();
        assert!(post(&mut s, "Content-Encoding: gzip\r\n", &gz)
            .unwrap()
            .contains(" 200 "));
        let json = "Content-Type: application/json\r\n";
        assert!(post(&mut s, json, b"[{\"b\":1},{\"b\":2}]")
            .unwrap()
            .contains(" 200 "));
        let list = LogGroupList {
            log_group_list: vec![LogGroup {
                logs: vec![log(7, &[("c", "1")])],
                log_tags: vec![LogTag {
                    key: "k".into(),
                    value: "v".into(),
                }],
                ..LogGroup::default()
            }],
        };
        let pb = "Content-Type: application/x-protobuf\r\n";
        assert!(post(&mut s, pb, &list.encode_to_vec())
            .unwrap()
            .contains(" 200 "));
        sink.set(Behaviour::RetryAfter(2));
        assert!(post(&mut s, "", ndjson)
            .unwrap()
            .contains("Retry-After: 2\r\n"));
        assert!(sink.wait_records(5, Duration::from_secs(5)));
        assert_eq!(sink.requests(), 6);
        assert_eq!(sink.connections(), 2);
        let want = serde_json::json!([
            {"a": 1}, {"a": 2}, {"b": 1}, {"b": 2}, {"__time__": 7, "c": "1", "__tag__:k": "v"}
        ]);
        assert_eq!(Value::Array(sink.records()), want);
    }
}
