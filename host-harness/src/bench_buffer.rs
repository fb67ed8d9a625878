//! `bench --buffer`: buffered delivery through the real libraries. `input_file` reads a
//! generated file of exactly `--records` nginx lines (the first lines of `bench --file`'s
//! file: same generator, seed and epoch) → `aggregator_default` → `flusher_file` (Format
//! json) or `flusher_http` (ndjson to a local sink), with `Buffer {Type: memory}` or
//! `{Type: file, Path: <temp dir>}`; every other `Buffer` option keeps its default.
//!
//! Each case runs in a process of its own (`bench --buffer --buffer-one ...`, started by the
//! parent, which only generates the file and prints the table): its CPU, peak RSS (VmHWM) and
//! RSS are the pipeline's and nothing else's. The sink runs in yet another child process,
//! `host-harness bench-sink` (hidden): a std::net HTTP/1.1 server on 127.0.0.1 that reads
//! `Content-Length` (or chunked) bodies, counts their ndjson lines and answers 200 with
//! keep-alive (503 while told to), or, for `flusher_file`, a thread that tails the output
//! file and counts its lines. Its CPU is therefore *not* in the figures; it is reported
//! apart (`sink cpu s`). The case process asks the sink for its counts on a pipe every 20 ms.
//!
//! With `--outage-secs S` each http case runs a second time, with the sink answering
//! `503 Service Unavailable` (no `Retry-After`: the engine's own back-off applies) for the
//! first S seconds after `LoadConfig`: RSS (VmRSS), the size of the disk buffer's directory
//! and the bytes the process read (`rchar` of /proc/self/io: the input file, the disk
//! buffer's re-reads) are sampled every second; then the sink accepts again and the drain is
//! timed from the first accepted request until every record has arrived.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::bench_file::{
    file_config, mib, reset_peak_rss, round, usage, vm_hwm_kib, warm_page_cache, DataFile,
    Watchdog, EPOCH_SECS,
};
use crate::cli::{BenchOpts, BenchSinkOpts, BufferSink, BufferType};
use crate::footprint::vm_rss_kib;
use crate::host;
use crate::libs::{load_for_command, Flavour};
use crate::nginx::NginxLines;
use crate::run::{data_dir, init_json, PROJECT};

/// Config name (and logstore) of the pipeline.
const CONFIG: &str = "bench_buffer";
/// Bumped whenever the generated content changes.
const GENERATOR_VERSION: u64 = 1;
/// The seed of `bench --file`'s generator.
const SEED: u64 = 0x5EED;
/// How often the case process asks the sink for its counts.
const POLL: Duration = Duration::from_millis(20);
/// The longest wait between two attempts with the default Buffer options
/// (`RetryMaxIntervalMs` 60000): added to the timeout of an outage run.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// After every record arrived, how long to look for more (duplicates) before HoldOn(1).
const SETTLE: Duration = Duration::from_millis(1500);
/// RSS over an outage counts as flat when it moves by less than this (KiB).
const FLAT_KIB: u64 = 32 << 10;

// ---------------------------------------------------------------------------------------
// The data set
// ---------------------------------------------------------------------------------------

/// `<temp dir>/plugin-bench-file/nginx-<N>records.log`.
pub fn data_path(records: u64) -> PathBuf {
    std::env::temp_dir()
        .join("plugin-bench-file")
        .join(format!("nginx-{records}records.log"))
}

fn sidecar_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".meta.json");
    PathBuf::from(s)
}

fn sidecar_json(records: u64, bytes: u64) -> Value {
    json!({
        "kind": "nginx-records",
        "records": records,
        "bytes": bytes,
        "generator_version": GENERATOR_VERSION,
    })
}

/// Writes nginx lines 0..`records` (newline-terminated) to `out`; returns the bytes written.
///
/// # Errors
/// When writing fails.
pub fn generate_records<W: Write>(out: W, records: u64) -> io::Result<u64> {
    let mut out = BufWriter::with_capacity(8 << 20, out);
    let mut lines = NginxLines::new(SEED, EPOCH_SECS);
    let mut bytes = 0u64;
    for i in 0..records {
        let l = lines.line(i);
        out.write_all(l.as_bytes())?;
        out.write_all(b"\n")?;
        bytes += l.len() as u64 + 1;
    }
    out.into_inner().map_err(io::IntoInnerError::into_error)?;
    Ok(bytes)
}

/// The data file of `records` records (made or reused), canonical and read once so it is in
/// the page cache; `None` (said on stderr) when it cannot be written or read.
pub fn warm_data(records: u64) -> Option<DataFile> {
    let path = data_path(records);
    let data = match prepare(&path, records) {
        Ok(d) => DataFile {
            path: std::fs::canonicalize(&d.path).unwrap_or(d.path),
            ..d
        },
        Err(e) => {
            eprintln!("harness: error: cannot write {}: {e}", path.display());
            return None;
        }
    };
    if let Err(e) = warm_page_cache(&data.path) {
        eprintln!("harness: error: cannot read {}: {e}", data.path.display());
        return None;
    }
    Some(data)
}

/// Reuses the file at `path` when its sidecar says it holds `records` lines of this generator
/// and it has the recorded size, else generates it (under another name, renamed when
/// complete, the sidecar written last).
///
/// # Errors
/// When the file or its sidecar cannot be written.
pub fn prepare(path: &Path, records: u64) -> io::Result<DataFile> {
    let reusable = std::fs::read_to_string(sidecar_path(path))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|m| {
            let bytes = m["bytes"].as_u64()?;
            let len = std::fs::metadata(path).ok()?.len();
            (m == sidecar_json(records, bytes) && len == bytes).then_some(bytes)
        });
    if let Some(bytes) = reusable {
        return Ok(DataFile {
            path: path.to_path_buf(),
            bytes,
            records,
            generated_in: None,
        });
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(sidecar_path(path)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let t = Instant::now();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let bytes = generate_records(File::create(&tmp)?, records)?;
    std::fs::rename(&tmp, path)?;
    std::fs::write(
        sidecar_path(path),
        sidecar_json(records, bytes).to_string() + "\n",
    )?;
    Ok(DataFile {
        path: path.to_path_buf(),
        bytes,
        records,
        generated_in: Some(t.elapsed()),
    })
}

// ---------------------------------------------------------------------------------------
// Cases and configs
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    File,
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Buf {
    Memory,
    File,
}

/// One run: an output, a buffer type, and an outage (0 s: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Case {
    sink: Sink,
    buf: Buf,
    outage_secs: u64,
}

impl Sink {
    fn name(self) -> &'static str {
        match self {
            Sink::File => "file",
            Sink::Http => "http",
        }
    }
}

impl Buf {
    fn name(self) -> &'static str {
        match self {
            Buf::Memory => "memory",
            Buf::File => "file",
        }
    }
}

impl Case {
    /// `http/file`, `http/file outage 60 s`.
    fn name(self) -> String {
        let mut n = format!("{}/{}", self.sink.name(), self.buf.name());
        if self.outage_secs > 0 {
            n.push_str(&format!(" outage {} s", self.outage_secs));
        }
        n
    }

    /// A directory name for the case.
    fn slug(self) -> String {
        format!(
            "{}-{}-outage{}",
            self.sink.name(),
            self.buf.name(),
            self.outage_secs
        )
    }
}

/// The cases `o` asks for: every sink × buffer type without an outage, then (with
/// `--outage-secs`) the http ones with it.
fn cases(o: &BenchOpts) -> Vec<Case> {
    let sinks: &[Sink] = match o.sink {
        BufferSink::File => &[Sink::File],
        BufferSink::Http => &[Sink::Http],
        BufferSink::All => &[Sink::File, Sink::Http],
    };
    let bufs: &[Buf] = match o.buffer_type {
        BufferType::Memory => &[Buf::Memory],
        BufferType::File => &[Buf::File],
        BufferType::Both => &[Buf::Memory, Buf::File],
    };
    let mut out = Vec::new();
    for &sink in sinks {
        for &buf in bufs {
            out.push(Case {
                sink,
                buf,
                outage_secs: 0,
            });
        }
    }
    if o.outage_secs > 0 && sinks.contains(&Sink::Http) {
        for &buf in bufs {
            out.push(Case {
                sink: Sink::Http,
                buf,
                outage_secs: o.outage_secs,
            });
        }
    }
    out
}

/// Where flusher_file writes, under the case's directory.
fn output_path(dir: &Path) -> PathBuf {
    dir.join("out").join("bench.json")
}

/// Where a file buffer keeps its chunks, under the case's directory.
fn buffer_path(dir: &Path) -> PathBuf {
    dir.join("buffer")
}

/// `bench --file`'s config (the same input) with the case's flusher.
fn case_config(case: Case, data: &Path, aggregate_ms: u64, dir: &Path, port: u16) -> String {
    let mut v: Value = serde_json::from_str(&file_config(data, false, aggregate_ms))
        .expect("bench --file's config is JSON");
    let buffer = match case.buf {
        Buf::Memory => json!({ "Type": "memory" }),
        Buf::File => json!({ "Type": "file", "Path": buffer_path(dir).to_string_lossy() }),
    };
    let flusher = match case.sink {
        // MaxFileSize 0: no rotation (the default, 10 MiB × 10 files, would delete records).
        Sink::File => json!({
            "type": "flusher_file",
            "detail": {
                "FileName": output_path(dir).to_string_lossy(),
                "Format": "json",
                "MaxFileSize": 0,
                "Buffer": buffer,
            },
        }),
        Sink::Http => json!({
            "type": "flusher_http",
            "detail": {
                "RemoteURL": format!("http://127.0.0.1:{port}/bench"),
                "Convert": { "Encoding": "json" },
                "Body": "ndjson",
                "Buffer": buffer,
            },
        }),
    };
    v["flushers"] = json!([flusher]);
    v.to_string()
}

// ---------------------------------------------------------------------------------------
// The sink (`host-harness bench-sink`)
// ---------------------------------------------------------------------------------------

/// Lines of a byte stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Lines {
    newlines: u64,
    bytes: u64,
    last: u8,
}

impl Lines {
    fn feed(&mut self, b: &[u8]) {
        self.newlines += b.iter().filter(|&&c| c == b'\n').count() as u64;
        self.bytes += b.len() as u64;
        if let Some(&l) = b.last() {
            self.last = l;
        }
    }

    /// Lines, a last one without a newline included.
    fn records(&self) -> u64 {
        self.newlines + u64::from(self.bytes > 0 && self.last != b'\n')
    }
}

/// What the sink counted; shared by its threads.
#[derive(Debug, Default)]
struct Counters {
    /// Records (ndjson lines, or complete lines of the file) accepted.
    records: AtomicU64,
    /// Body bytes accepted (or bytes of the file).
    bytes: AtomicU64,
    /// Requests answered.
    requests: AtomicU64,
    /// Requests answered 503.
    rejected: AtomicU64,
    /// Records in the requests answered 503 (a chunk retried n times counts n times).
    rejected_records: AtomicU64,
    /// Requests that were not a plain POST (answered 405 / 415).
    bad: AtomicU64,
    /// Whether to answer 503.
    reject: AtomicBool,
}

/// A snapshot of [`Counters`] and the sink process's CPU.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct SinkStats {
    records: u64,
    bytes: u64,
    requests: u64,
    rejected: u64,
    rejected_records: u64,
    bad: u64,
    cpu_s: f64,
}

impl SinkStats {
    fn to_json(self) -> Value {
        json!({
            "records": self.records,
            "bytes": self.bytes,
            "requests": self.requests,
            "rejected": self.rejected,
            "rejected_records": self.rejected_records,
            "bad": self.bad,
            "cpu_s": self.cpu_s,
        })
    }

    fn from_json(v: &Value) -> Option<SinkStats> {
        let n = |k: &str| v[k].as_u64();
        Some(SinkStats {
            records: n("records")?,
            bytes: n("bytes")?,
            requests: n("requests")?,
            rejected: n("rejected")?,
            rejected_records: n("rejected_records")?,
            bad: n("bad")?,
            cpu_s: v["cpu_s"].as_f64()?,
        })
    }
}

impl Counters {
    fn snapshot(&self) -> SinkStats {
        let g = |a: &AtomicU64| a.load(Ordering::Acquire);
        SinkStats {
            records: g(&self.records),
            bytes: g(&self.bytes),
            requests: g(&self.requests),
            rejected: g(&self.rejected),
            rejected_records: g(&self.rejected_records),
            bad: g(&self.bad),
            cpu_s: usage(libc::RUSAGE_SELF).0.total(),
        }
    }
}

/// How a request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
}

/// What the sink needs of a request head.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    method: String,
    framing: Framing,
    close: bool,
    expect_continue: bool,
    gzip: bool,
}

/// The longest request head read.
const MAX_HEAD: usize = 64 << 10;

fn bad_data(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads one request head; `None` when the client closed the connection before one.
fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut line = Vec::new();
    let mut total = 0usize;
    let mut request_line: Option<String> = None;
    let mut head = Head {
        method: String::new(),
        framing: Framing::Length(0),
        close: false,
        expect_continue: false,
        gzip: false,
    };
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 {
            return match request_line {
                None => Ok(None),
                Some(_) => Err(bad_data("connection closed inside a request head")),
            };
        }
        total += n;
        if total > MAX_HEAD {
            return Err(bad_data("request head too long"));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if request_line.is_none() {
            if text.is_empty() {
                // Tolerated between requests.
                continue;
            }
            let mut parts = text.split(' ');
            head.method = parts.next().unwrap_or_default().to_string();
            if parts
                .nth(1)
                .is_some_and(|v| v.eq_ignore_ascii_case("HTTP/1.0"))
            {
                head.close = true;
            }
            request_line = Some(text.to_string());
            continue;
        }
        if text.is_empty() {
            return Ok(Some(head));
        }
        let Some((name, value)) = text.split_once(':') else {
            return Err(bad_data(format!("not a header: {text:?}")));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                let n = value
                    .parse()
                    .map_err(|_| bad_data(format!("Content-Length {value:?}")))?;
                if head.framing != Framing::Chunked {
                    head.framing = Framing::Length(n);
                }
            }
            "transfer-encoding" if value.to_ascii_lowercase().contains("chunked") => {
                head.framing = Framing::Chunked;
            }
            "connection" => {
                let v = value.to_ascii_lowercase();
                if v.contains("close") {
                    head.close = true;
                } else if v.contains("keep-alive") {
                    head.close = false;
                }
            }
            "expect" if value.eq_ignore_ascii_case("100-continue") => head.expect_continue = true,
            "content-encoding" if !value.eq_ignore_ascii_case("identity") => head.gzip = true,
            _ => {}
        }
    }
}

/// Reads `len` body bytes, counting their lines.
fn read_counting(r: &mut impl BufRead, mut len: u64, lines: &mut Lines) -> io::Result<()> {
    while len > 0 {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Err(bad_data("connection closed inside a body"));
        }
        let n = buf.len().min(usize::try_from(len).unwrap_or(usize::MAX));
        lines.feed(&buf[..n]);
        r.consume(n);
        len -= n as u64;
    }
    Ok(())
}

/// Reads a chunked body, counting its lines.
fn read_chunked(r: &mut impl BufRead, lines: &mut Lines) -> io::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        r.read_until(b'\n', &mut line)?;
        let text = String::from_utf8_lossy(&line);
        let size = text.trim().split(';').next().unwrap_or_default();
        let size = u64::from_str_radix(size, 16)
            .map_err(|_| bad_data(format!("chunk size {:?}", text.trim())))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                line.clear();
                if r.read_until(b'\n', &mut line)? == 0 || line == b"\r\n" || line == b"\n" {
                    return Ok(());
                }
            }
        }
        read_counting(r, size, lines)?;
        line.clear();
        r.read_until(b'\n', &mut line)?;
    }
}

fn reply(status: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves one connection until the client closes it (or asks to).
fn connection(stream: TcpStream, c: &Counters) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut w = stream.try_clone()?;
    let mut r = BufReader::with_capacity(256 << 10, stream);
    let ok = reply("200 OK", "", "");
    let unavailable = reply("503 Service Unavailable", "", "bench sink: outage\n");
    loop {
        let Some(head) = read_head(&mut r)? else {
            return Ok(());
        };
        if head.expect_continue {
            w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let mut lines = Lines::default();
        match head.framing {
            Framing::Length(n) => read_counting(&mut r, n, &mut lines)?,
            Framing::Chunked => read_chunked(&mut r, &mut lines)?,
        }
        let answer: Vec<u8> = if head.method != "POST" {
            c.bad.fetch_add(1, Ordering::AcqRel);
            reply("405 Method Not Allowed", "Allow: POST\r\n", "POST only\n")
        } else if head.gzip {
            c.bad.fetch_add(1, Ordering::AcqRel);
            reply(
                "415 Unsupported Media Type",
                "",
                "bench sink: no Content-Encoding\n",
            )
        } else if c.reject.load(Ordering::Acquire) {
            c.rejected.fetch_add(1, Ordering::AcqRel);
            c.rejected_records
                .fetch_add(lines.records(), Ordering::AcqRel);
            unavailable.clone()
        } else {
            c.bytes.fetch_add(lines.bytes, Ordering::AcqRel);
            c.records.fetch_add(lines.records(), Ordering::AcqRel);
            ok.clone()
        };
        c.requests.fetch_add(1, Ordering::AcqRel);
        w.write_all(&answer)?;
        if head.close {
            return Ok(());
        }
    }
}

/// Accepts connections, one thread each.
fn serve(listener: TcpListener, c: Arc<Counters>) {
    for s in listener.incoming() {
        let Ok(s) = s else { continue };
        let c = c.clone();
        std::thread::spawn(move || {
            if let Err(e) = connection(s, &c) {
                if !matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                ) {
                    eprintln!("bench-sink: connection: {e}");
                }
            }
        });
    }
}

/// Tails `path` (waiting for it to appear), counting its complete lines.
fn count_file(path: &Path, c: &Counters) {
    let mut buf = vec![0u8; 1 << 20];
    let mut file: Option<File> = None;
    let mut lines = Lines::default();
    loop {
        let f = match &mut file {
            Some(f) => f,
            None => match File::open(path) {
                Ok(f) => file.insert(f),
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        match f.read(&mut buf) {
            Ok(0) | Err(_) => std::thread::sleep(Duration::from_millis(10)),
            Ok(n) => {
                lines.feed(&buf[..n]);
                c.bytes.store(lines.bytes, Ordering::Release);
                c.records.store(lines.newlines, Ordering::Release);
            }
        }
    }
}

/// `host-harness bench-sink [--count-file PATH]`: prints `ready <port>` (0 when counting a
/// file), then answers commands on stdin, one line each: `stats` (a JSON line of the
/// counts and the sink's CPU seconds), `reject on` / `reject off` (`ok`), `quit`. Exits at
/// `quit` or the end of stdin.
pub fn sink_main(o: BenchSinkOpts) -> i32 {
    let c = Arc::new(Counters::default());
    let port = match &o.count_file {
        Some(p) => {
            let (p, c) = (p.clone(), c.clone());
            std::thread::spawn(move || count_file(&p, &c));
            0
        }
        None => {
            let listener = match TcpListener::bind("127.0.0.1:0") {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("bench-sink: error: cannot listen on 127.0.0.1: {e}");
                    return 1;
                }
            };
            let port = listener.local_addr().map_or(0, |a| a.port());
            let c = c.clone();
            std::thread::spawn(move || serve(listener, c));
            port
        }
    };
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "ready {port}");
    let _ = out.flush();
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let answer = match line.trim() {
            "stats" => c.snapshot().to_json().to_string(),
            "reject on" => {
                c.reject.store(true, Ordering::Release);
                "ok".to_string()
            }
            "reject off" => {
                c.reject.store(false, Ordering::Release);
                "ok".to_string()
            }
            "quit" => break,
            other => format!("error: unknown command {other:?}"),
        };
        if writeln!(out, "{answer}")
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
    }
    0
}

/// The sink child, seen from the case process.
struct SinkChild {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    port: u16,
}

impl SinkChild {
    /// Starts `<this executable> bench-sink [--count-file PATH]` and waits for its `ready`.
    fn start(count_file: Option<&Path>) -> io::Result<SinkChild> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("bench-sink");
        if let Some(p) = count_file {
            cmd.arg("--count-file").arg(p);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let port = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!(
                "the sink did not start (it said {:?})",
                line.trim()
            )));
        };
        Ok(SinkChild {
            child,
            stdin,
            stdout,
            port,
        })
    }

    fn ask(&mut self, command: &str) -> io::Result<String> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(io::Error::other("the sink exited"));
        }
        Ok(line.trim().to_string())
    }

    fn stats(&mut self) -> io::Result<SinkStats> {
        let line = self.ask("stats")?;
        serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| SinkStats::from_json(&v))
            .ok_or_else(|| io::Error::other(format!("the sink answered {line:?}")))
    }

    fn reject(&mut self, on: bool) -> io::Result<()> {
        let line = self.ask(if on { "reject on" } else { "reject off" })?;
        if line == "ok" {
            Ok(())
        } else {
            Err(io::Error::other(format!("the sink answered {line:?}")))
        }
    }
}

impl Drop for SinkChild {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(2) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// One case (in its own process)
// ---------------------------------------------------------------------------------------

/// `rchar` of /proc/self/io: bytes this process read with read-like calls; 0 when unreadable.
fn rchar() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("rchar:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Bytes of the files in `dir` (0 when it does not exist).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok()?.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    })
}

/// One sample during an outage.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    t_s: f64,
    rss_kib: u64,
    disk_bytes: u64,
    read_bytes: u64,
    rejected: u64,
}

impl Sample {
    fn to_json(self) -> Value {
        json!({
            "t_s": round(self.t_s, 2),
            "rss_mib": mib(self.rss_kib),
            "disk_mb": round(self.disk_bytes as f64 / 1e6, 1),
            "read_mb": round(self.read_bytes as f64 / 1e6, 1),
            "rejected_requests": self.rejected,
        })
    }
}

/// What the case process measured.
#[derive(Debug, Default)]
struct Measured {
    error: Option<String>,
    measured: bool,
    wall_s: f64,
    user_s: f64,
    sys_s: f64,
    peak_rss_kib: u64,
    peak_is_run_only: bool,
    rss_before_kib: u64,
    rss_after_kib: u64,
    /// The sink's counts when all records had arrived, after SETTLE, and after HoldOn(1).
    at_end: SinkStats,
    settled: SinkStats,
    after_holdon: SinkStats,
    holdon_ms: u64,
    /// When 90% of the records had arrived (the last, partial chunk waits for
    /// `FlushIntervalMs`, 1 s by default, before it is written: this shows the rate before).
    t90_s: Option<f64>,
    samples: Vec<Sample>,
    recovered_s: Option<f64>,
    first_accepted_s: Option<f64>,
    /// Records the sink accepted before the outage ended (must be 0).
    accepted_during_outage: u64,
}

/// Runs `case` on `data` in this process: the sink child, the libraries, the pipeline.
fn run_case(o: &BenchOpts, case: Case, data: &DataFile) -> (Value, i32) {
    let mut m = Measured::default();
    let (dir, remove_dir) = match data_dir(o.data_dir.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            m.error = Some(e);
            return (case_json(o, case, data, &m, ""), 1);
        }
    };
    // Left by an earlier run in a given --data-dir: not ours to count.
    let _ = std::fs::remove_dir_all(dir.join("out"));
    let _ = std::fs::remove_dir_all(buffer_path(&dir));
    let count_file = output_path(&dir);
    let sink = SinkChild::start(match case.sink {
        Sink::File => Some(count_file.as_path()),
        Sink::Http => None,
    });
    let mut sink = match sink {
        Ok(s) => s,
        Err(e) => {
            m.error = Some(format!("cannot start the sink: {e}"));
            return (case_json(o, case, data, &m, ""), 1);
        }
    };
    let config = case_config(case, &data.path, o.aggregate_ms, &dir, sink.port);
    host::install_bench(CONFIG, false);
    let Some(libs) = load_for_command(o.lib_dir.as_deref(), Flavour::Logtail) else {
        return (case_json(o, case, data, &m, &config), 2);
    };
    let rc = libs.init_v2(&init_json(&dir));
    if rc != 0 {
        m.error = Some(format!("InitPluginBaseV2 returned {rc}"));
        return (case_json(o, case, data, &m, &config), 1);
    }
    let outage = Duration::from_secs(case.outage_secs);
    let timeout = o.timeout
        + if case.outage_secs > 0 {
            outage + MAX_BACKOFF
        } else {
            Duration::ZERO
        };
    let _watchdog = Watchdog::arm(
        timeout + SETTLE + Duration::from_secs(40),
        "the buffer bench",
    );
    if case.outage_secs > 0 {
        if let Err(e) = sink.reject(true) {
            m.error = Some(format!("the sink: {e}"));
            return (case_json(o, case, data, &m, &config), 1);
        }
    }
    let expect = data.records;
    let buffer_dir = buffer_path(&dir);
    let result = (|| -> Result<(), String> {
        let sink_err = |e: io::Error| format!("the sink: {e}");
        m.peak_is_run_only = reset_peak_rss();
        m.rss_before_kib = vm_rss_kib();
        let (cpu0, _) = usage(libc::RUSAGE_SELF);
        let read0 = rchar();
        let t0 = Instant::now();
        if libs.load_config(PROJECT, CONFIG, CONFIG, 1, &config) != 0 {
            eprintln!("harness: the buffer bench config: {config}");
            return Err("LoadConfig failed (the base logged why, above)".to_string());
        }
        libs.resume();
        let mut next_sample = Duration::from_secs(1);
        let mut in_outage = case.outage_secs > 0;
        let mut timed_out = false;
        let mut last;
        loop {
            last = sink.stats().map_err(sink_err)?;
            let el = t0.elapsed();
            if in_outage {
                m.accepted_during_outage = last.records;
                if el >= next_sample {
                    m.samples.push(Sample {
                        t_s: el.as_secs_f64(),
                        rss_kib: vm_rss_kib(),
                        disk_bytes: dir_bytes(&buffer_dir),
                        read_bytes: rchar().saturating_sub(read0),
                        rejected: last.rejected,
                    });
                    next_sample += Duration::from_secs(1);
                }
                if el >= outage {
                    sink.reject(false).map_err(sink_err)?;
                    in_outage = false;
                    m.recovered_s = Some(t0.elapsed().as_secs_f64());
                }
            } else if m.recovered_s.is_some() && m.first_accepted_s.is_none() && last.records > 0 {
                m.first_accepted_s = Some(el.as_secs_f64());
            }
            if m.t90_s.is_none() && last.records.saturating_mul(10) >= expect.saturating_mul(9) {
                m.t90_s = Some(el.as_secs_f64());
            }
            if last.records >= expect && !in_outage {
                break;
            }
            if el >= timeout {
                timed_out = true;
                break;
            }
            std::thread::sleep(POLL);
        }
        m.wall_s = t0.elapsed().as_secs_f64();
        m.measured = true;
        let (cpu1, maxrss_kib) = usage(libc::RUSAGE_SELF);
        let cpu = cpu1.minus(cpu0);
        (m.user_s, m.sys_s) = (cpu.user_s, cpu.sys_s);
        m.rss_after_kib = vm_rss_kib();
        m.peak_rss_kib = match vm_hwm_kib() {
            Some(k) if m.peak_is_run_only => k,
            _ => maxrss_kib,
        };
        m.at_end = last;
        if m.recovered_s.is_some() && m.first_accepted_s.is_none() && last.records > 0 {
            m.first_accepted_s = Some(m.wall_s);
        }
        if timed_out {
            return Err(format!(
                "timed out after {:.1} s: the sink received {} of {expect} records",
                timeout.as_secs_f64(),
                last.records
            ));
        }
        std::thread::sleep(SETTLE);
        m.settled = sink.stats().map_err(sink_err)?;
        let t = Instant::now();
        libs.hold_on(1);
        m.holdon_ms = t.elapsed().as_millis() as u64;
        m.after_holdon = sink.stats().map_err(sink_err)?;
        Ok(())
    })();
    m.error = match result {
        Err(e) => Some(e),
        Ok(()) if m.accepted_during_outage > 0 => Some(format!(
            "the sink accepted {} records during the outage (a bug of the sink)",
            m.accepted_during_outage
        )),
        Ok(()) if m.after_holdon.records != expect => Some(format!(
            "the sink received {} records, expected exactly {expect} ({} when all had \
             arrived, {} {:.1} s later, {} after HoldOn(1))",
            m.after_holdon.records,
            m.at_end.records,
            m.settled.records,
            SETTLE.as_secs_f64(),
            m.after_holdon.records
        )),
        Ok(()) if m.after_holdon.bad > 0 => Some(format!(
            "{} requests were not plain POSTs (refused)",
            m.after_holdon.bad
        )),
        Ok(()) => None,
    };
    drop(sink);
    if remove_dir {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let code = i32::from(m.error.is_some());
    (case_json(o, case, data, &m, &config), code)
}

/// `x / secs` (an integer when `digits` is 0), or null when nothing was measured.
fn per(x: f64, secs: f64, digits: i32) -> Value {
    match (secs > 0.0, digits) {
        (false, _) => Value::Null,
        (true, 0) => json!((x / secs).round() as u64),
        (true, d) => json!(round(x / secs, d)),
    }
}

/// The figures of one case as JSON (what the case process prints).
fn case_json(o: &BenchOpts, case: Case, data: &DataFile, m: &Measured, config: &str) -> Value {
    let mb = data.bytes as f64 / 1e6;
    let cpu = m.user_s + m.sys_s;
    let when = |v: Value| if m.measured { v } else { Value::Null };
    let outage = (case.outage_secs > 0).then(|| {
        let rss: Vec<u64> = m.samples.iter().map(|s| s.rss_kib).collect();
        let min = rss.iter().copied().min();
        let max = rss.iter().copied().max();
        let last = m.samples.last();
        let done = m.measured && m.error.is_none();
        let drain = m.first_accepted_s.filter(|_| done).map(|f| m.wall_s - f);
        let from_recovery = m.recovered_s.filter(|_| done).map(|r| m.wall_s - r);
        json!({
            "secs": case.outage_secs,
            "samples": m.samples.iter().map(|s| s.to_json()).collect::<Vec<_>>(),
            "rss_min_mib": min.map(mib),
            "rss_max_mib": max.map(mib),
            "rss_first_mib": rss.first().copied().map(mib),
            "rss_last_mib": rss.last().copied().map(mib),
            "rss_flat": match (min, max) {
                (Some(a), Some(b)) => json!(b - a < FLAT_KIB),
                _ => Value::Null,
            },
            "disk_max_mb": m.samples.iter().map(|s| s.disk_bytes).max()
                .map(|b| round(b as f64 / 1e6, 1)),
            "read_mb_at_recovery": last.map(|s| round(s.read_bytes as f64 / 1e6, 1)),
            "rejected_requests": last.map(|s| s.rejected),
            "rejected_requests_total": m.at_end.rejected,
            "recovered_s": m.recovered_s.map(|r| round(r, 2)),
            "first_accepted_after_recovery_s": match (m.recovered_s, m.first_accepted_s) {
                (Some(r), Some(f)) => json!(round(f - r, 2)),
                _ => Value::Null,
            },
            "drain_s": drain.map(|d| round(d, 3)),
            "drain_records_per_s": drain.map_or(Value::Null, |d| per(data.records as f64, d, 0)),
            "drain_mb_per_s": drain.map_or(Value::Null, |d| per(mb, d, 1)),
            "from_recovery_s": from_recovery.map(|d| round(d, 3)),
            "from_recovery_records_per_s":
                from_recovery.map_or(Value::Null, |d| per(data.records as f64, d, 0)),
        })
    });
    json!({
        "bench": "buffer",
        "case": case.name(),
        "sink": case.sink.name(),
        "buffer": case.buf.name(),
        "file": data.path.to_string_lossy(),
        "input_mb": round(mb, 3),
        "expected_records": data.records,
        "received_records": m.after_holdon.records,
        "received_at_end": m.at_end.records,
        "received_after_settle": m.settled.records,
        "output_mb": round(m.after_holdon.bytes as f64 / 1e6, 1),
        "wall_s": when(json!(round(m.wall_s, 3))),
        "cpu_s": when(json!(round(cpu, 3))),
        "user_s": when(json!(round(m.user_s, 3))),
        "sys_s": when(json!(round(m.sys_s, 3))),
        "mb_per_cpu_s": when(per(mb, cpu, 1)),
        "mb_per_s": when(per(mb, m.wall_s, 1)),
        "records_per_s": when(per(data.records as f64, m.wall_s, 0)),
        "t90_s": m.t90_s.map(|t| round(t, 3)),
        "records_per_s_to_90pct": m.t90_s.map_or(Value::Null, |t| per(0.9 * data.records as f64, t, 0)),
        "peak_rss_mib": when(json!(mib(m.peak_rss_kib))),
        "peak_rss_is_run_only": m.peak_is_run_only,
        "rss_before_mib": when(json!(mib(m.rss_before_kib))),
        "rss_after_mib": when(json!(mib(m.rss_after_kib))),
        "sink_cpu_s": when(json!(round(m.at_end.cpu_s, 3))),
        "sink_requests": m.after_holdon.requests,
        "holdon_ms": when(json!(m.holdon_ms)),
        "aggregate_ms": o.aggregate_ms,
        "config": serde_json::from_str::<Value>(config).unwrap_or(Value::Null),
        "outage": outage,
        "error": m.error,
    })
}

/// `bench --buffer --buffer-one`: the one case of `--sink` and `--buffer-type`; prints its
/// JSON line.
fn run_one(o: &BenchOpts) -> i32 {
    let sink = match o.sink {
        BufferSink::File => Sink::File,
        BufferSink::Http => Sink::Http,
        BufferSink::All => {
            eprintln!("harness: error: --buffer-one needs --sink file or http");
            return 2;
        }
    };
    let buf = match o.buffer_type {
        BufferType::Memory => Buf::Memory,
        BufferType::File => Buf::File,
        BufferType::Both => {
            eprintln!("harness: error: --buffer-one needs --buffer-type memory or file");
            return 2;
        }
    };
    let case = Case {
        sink,
        buf,
        outage_secs: if sink == Sink::Http { o.outage_secs } else { 0 },
    };
    let Some(data) = warm_data(o.records) else {
        return 1;
    };
    let (figures, code) = run_case(o, case, &data);
    println!("{figures}");
    code
}

// ---------------------------------------------------------------------------------------
// The parent: every case in a child, the table
// ---------------------------------------------------------------------------------------

/// Runs `case` in a child process (`bench --buffer --buffer-one ...`); its JSON, or an error
/// object when it printed none.
fn spawn_case(o: &BenchOpts, case: Case) -> (Value, i32) {
    let mut args: Vec<std::ffi::OsString> = [
        "bench",
        "--buffer",
        "--buffer-one",
        "--sink",
        case.sink.name(),
        "--buffer-type",
        case.buf.name(),
    ]
    .map(std::ffi::OsString::from)
    .to_vec();
    for (k, v) in [
        ("--records", o.records.to_string()),
        ("--outage-secs", case.outage_secs.to_string()),
        ("--timeout", o.timeout.as_secs_f64().to_string()),
        ("--aggregate-ms", o.aggregate_ms.to_string()),
    ] {
        args.push(k.into());
        args.push(v.into());
    }
    if let Some(d) = &o.lib_dir {
        args.push("--lib-dir".into());
        args.push(d.into());
    }
    if let Some(d) = &o.data_dir {
        args.push("--data-dir".into());
        args.push(d.join(case.slug()).into());
    }
    let error = |msg: String| {
        json!({ "bench": "buffer", "case": case.name(), "sink": case.sink.name(),
                "buffer": case.buf.name(), "error": msg })
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return (error(format!("cannot find this executable: {e}")), 1),
    };
    let out = Command::new(exe)
        .args(&args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => return (error(format!("cannot run the case: {e}")), 1),
    };
    let code = out.status.code().unwrap_or(1);
    let text = String::from_utf8_lossy(&out.stdout);
    match text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        Some(v) => (v, code),
        None => (
            error(format!(
                "the case process ended with {} and no figures",
                out.status
            )),
            if code == 0 { 1 } else { code },
        ),
    }
}

/// Runs `bench --buffer`; returns the exit code.
pub fn run(o: BenchOpts) -> i32 {
    if o.buffer_one {
        return run_one(&o);
    }
    let path = data_path(o.records);
    let data = match prepare(&path, o.records) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("harness: error: cannot write {}: {e}", path.display());
            return 1;
        }
    };
    if !o.json {
        let what = match data.generated_in {
            Some(d) => format!("generated in {:.2} s", d.as_secs_f64()),
            None => "reused".to_string(),
        };
        eprintln!(
            "harness: {} ({:.1} MB, {} nginx records), {what}",
            data.path.display(),
            data.bytes as f64 / 1e6,
            data.records,
        );
        if o.outage_secs > 0 && o.sink == BufferSink::File {
            eprintln!("harness: note: --outage-secs applies to the http sink only");
        }
    }
    let mut results = Vec::new();
    let mut code = 0;
    for case in cases(&o) {
        if !o.json {
            eprintln!("harness: running {} ...", case.name());
        }
        let (v, c) = spawn_case(&o, case);
        if c == 2 {
            // The libraries are missing: every case would say the same.
            return 2;
        }
        if !o.json {
            eprintln!("harness: {}", summary(&v, &results));
        }
        code = code.max(c.min(1));
        results.push(v);
    }
    if o.json {
        println!("{}", Value::Array(results.clone()));
    } else {
        print_table(&results, &data);
    }
    for r in &results {
        if let Some(e) = r["error"].as_str() {
            eprintln!("harness: error: {}: {e}", r["case"].as_str().unwrap_or("?"));
            code = 1;
        }
    }
    code
}

fn g(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

/// The normal run of `outage`'s case among `earlier`.
fn normal_of<'a>(outage: &Value, earlier: &'a [Value]) -> Option<&'a Value> {
    earlier.iter().find(|r| {
        r["outage"].is_null() && r["sink"] == outage["sink"] && r["buffer"] == outage["buffer"]
    })
}

/// The one-line summary of a case.
fn summary(r: &Value, earlier: &[Value]) -> String {
    let case = g(&r["case"]);
    let status = match r["error"].as_str() {
        Some(e) => format!("FAILED ({e})"),
        None => "OK".to_string(),
    };
    let mut s = format!(
        "{case}: {status}: {} of {} records, {} MB/s, {} MB per cpu-second, {} records/s, \
         peak RSS {} MiB (90% of the records after {} s: {} records/s)",
        g(&r["received_records"]),
        g(&r["expected_records"]),
        g(&r["mb_per_s"]),
        g(&r["mb_per_cpu_s"]),
        g(&r["records_per_s"]),
        g(&r["peak_rss_mib"]),
        g(&r["t90_s"]),
        g(&r["records_per_s_to_90pct"]),
    );
    let o = &r["outage"];
    if !o.is_null() {
        s.push_str(&format!(
            "; RSS during the outage {}..{} MiB ({}), disk buffer up to {} MB; first accepted \
             {} s after recovery, drain {} records/s",
            g(&o["rss_min_mib"]),
            g(&o["rss_max_mib"]),
            if o["rss_flat"] == true {
                "flat"
            } else {
                "NOT flat"
            },
            g(&o["disk_max_mb"]),
            g(&o["first_accepted_after_recovery_s"]),
            g(&o["drain_records_per_s"]),
        ));
        let normal = normal_of(r, earlier).and_then(|n| n["records_per_s"].as_f64());
        if let (Some(d), Some(n)) = (o["drain_records_per_s"].as_f64(), normal) {
            s.push_str(&format!(" = {:.2}x the normal run", d / n));
        }
    }
    s
}

fn print_table(results: &[Value], data: &DataFile) {
    println!(
        "input: {} ({} MB, {} nginx records) → input_file → aggregator_default → flusher_*",
        data.path.display(),
        round(data.bytes as f64 / 1e6, 1),
        data.records
    );
    println!(
        "figures: MB = input-file MB (10^6 bytes); cpu = user+sys of the case process (the sink \
         runs in its own process: sink cpu); peak RSS = VmHWM of the case process"
    );
    println!(
        "{:<23} {:>9} {:>8} {:>21} {:>9} {:>7} {:>9} {:>9} {:>8} {:>7} {:>8}  result",
        "case",
        "records",
        "wall s",
        "cpu s (user+sys)",
        "MB/cpu-s",
        "MB/s",
        "rec/s",
        "peak MiB",
        "out MB",
        "sink s",
        "HoldOn"
    );
    for r in results {
        println!(
            "{:<23} {:>9} {:>8} {:>21} {:>9} {:>7} {:>9} {:>9} {:>8} {:>7} {:>8}  {}",
            g(&r["case"]),
            g(&r["received_records"]),
            g(&r["wall_s"]),
            format!(
                "{} ({}+{})",
                g(&r["cpu_s"]),
                g(&r["user_s"]),
                g(&r["sys_s"])
            ),
            g(&r["mb_per_cpu_s"]),
            g(&r["mb_per_s"]),
            g(&r["records_per_s"]),
            g(&r["peak_rss_mib"]),
            g(&r["output_mb"]),
            g(&r["sink_cpu_s"]),
            match &r["holdon_ms"] {
                Value::Null => "-".to_string(),
                v => format!("{v} ms"),
            },
            if r["error"].is_null() { "ok" } else { "FAILED" }
        );
    }
    for (i, r) in results.iter().enumerate() {
        let o = &r["outage"];
        if o.is_null() {
            continue;
        }
        println!("{}:", g(&r["case"]));
        println!("  t s   RSS MiB  disk MB  read MB  503s");
        for s in o["samples"].as_array().into_iter().flatten() {
            println!(
                "  {:>4} {:>9} {:>8} {:>8} {:>5}",
                g(&s["t_s"]),
                g(&s["rss_mib"]),
                g(&s["disk_mb"]),
                g(&s["read_mb"]),
                g(&s["rejected_requests"])
            );
        }
        println!(
            "  during the outage: RSS min {} / max {} MiB (first {}, last {}: {}); disk buffer up \
             to {} MB; the process had read {} MB when the sink recovered; {} requests refused \
             (503) by then, {} in all",
            g(&o["rss_min_mib"]),
            g(&o["rss_max_mib"]),
            g(&o["rss_first_mib"]),
            g(&o["rss_last_mib"]),
            if o["rss_flat"] == true {
                "flat"
            } else {
                "NOT flat"
            },
            g(&o["disk_max_mb"]),
            g(&o["read_mb_at_recovery"]),
            g(&o["rejected_requests"]),
            g(&o["rejected_requests_total"]),
        );
        let normal = normal_of(r, &results[..i]).and_then(|n| n["records_per_s"].as_f64());
        println!(
            "  after recovery: first request accepted {} s later; drained {} records in {} s: {} \
             records/s, {} MB/s{} ({} s and {} records/s from the recovery)",
            g(&o["first_accepted_after_recovery_s"]),
            g(&r["expected_records"]),
            g(&o["drain_s"]),
            g(&o["drain_records_per_s"]),
            g(&o["drain_mb_per_s"]),
            match (o["drain_records_per_s"].as_f64(), normal) {
                (Some(d), Some(n)) => format!(" = {:.2}x the normal run's {n} records/s", d / n),
                _ => String::new(),
            },
            g(&o["from_recovery_s"]),
            g(&o["from_recovery_records_per_s"]),
        );
    }
    for (i, r) in results.iter().enumerate() {
        println!("summary: {}", summary(r, &results[..i]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse, Command as Cli};

    fn bench(args: &[&str]) -> BenchOpts {
        match parse(args.iter().copied()) {
            Ok(Cli::Bench(o)) => o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn options_and_cases() {
        let o = bench(&["bench", "--buffer"]);
        assert!(o.buffer && !o.file && !o.buffer_one);
        assert_eq!((o.sink, o.buffer_type), (BufferSink::All, BufferType::Both));
        assert_eq!((o.records, o.outage_secs), (2_000_000, 0));
        assert_eq!(cases(&o).len(), 4);
        let o = bench(&[
            "bench",
            "--buffer",
            "--sink",
            "http",
            "--buffer-type",
            "file",
            "--records",
            "10",
            "--outage-secs",
            "60",
        ]);
        let c = cases(&o);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].name(), "http/file");
        assert_eq!(c[1].name(), "http/file outage 60 s");
        let o = bench(&["bench", "--buffer", "--sink", "file", "--outage-secs", "5"]);
        assert!(cases(&o).iter().all(|c| c.outage_secs == 0));
        for bad in [
            &["bench", "--sink", "http"][..],
            &["bench", "--records", "5"],
            &["bench", "--buffer", "--file"],
            &["bench", "--buffer", "--scenario", "raw"],
            &["bench", "--buffer", "--records", "0"],
        ] {
            assert!(parse(bad.iter().copied()).is_err(), "{bad:?}");
        }
        assert!(matches!(
            parse(["bench-sink", "--count-file", "/x"]),
            Ok(Cli::BenchSink(BenchSinkOpts {
                count_file: Some(_)
            }))
        ));
    }

    #[test]
    fn records_are_bench_files_first_lines() {
        let mut ours = Vec::new();
        let bytes = generate_records(&mut ours, 1000).unwrap();
        assert_eq!(bytes, ours.len() as u64);
        assert_eq!(ours.iter().filter(|&&b| b == b'\n').count(), 1000);
        let mut theirs = Vec::new();
        crate::bench_file::generate(&mut theirs, crate::bench_file::Kind::Single, bytes).unwrap();
        assert!(theirs.starts_with(&ours));
    }

    #[test]
    fn data_files_are_reused_when_they_fit() {
        let dir = std::env::temp_dir().join(format!("bench-buffer-unit-{}", std::process::id()));
        let path = dir.join("d.log");
        let a = prepare(&path, 100).unwrap();
        assert!(a.generated_in.is_some());
        let b = prepare(&path, 100).unwrap();
        assert_eq!((b.generated_in, b.bytes), (None, a.bytes));
        std::fs::write(&path, "x\n").unwrap();
        assert!(prepare(&path, 100).unwrap().generated_in.is_some());
        assert!(prepare(&path, 101).unwrap().generated_in.is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn configs() {
        let dir = Path::new("/t/case");
        let case = |sink, buf| Case {
            sink,
            buf,
            outage_secs: 0,
        };
        let v: Value = serde_json::from_str(&case_config(
            case(Sink::File, Buf::File),
            Path::new("/t/d.log"),
            100,
            dir,
            0,
        ))
        .unwrap();
        assert_eq!(v["inputs"][0]["type"], "input_file");
        assert_eq!(v["inputs"][0]["detail"]["FilePaths"][0], "/t/d.log");
        assert_eq!(v["aggregators"][0]["type"], "aggregator_default");
        let f = &v["flushers"][0];
        assert_eq!(f["type"], "flusher_file");
        assert_eq!(f["detail"]["FileName"], "/t/case/out/bench.json");
        assert_eq!(f["detail"]["MaxFileSize"], 0);
        assert_eq!(
            f["detail"]["Buffer"],
            json!({"Type": "file", "Path": "/t/case/buffer"})
        );
        let v: Value = serde_json::from_str(&case_config(
            case(Sink::Http, Buf::Memory),
            Path::new("/t/d.log"),
            100,
            dir,
            8080,
        ))
        .unwrap();
        let f = &v["flushers"][0];
        assert_eq!(f["type"], "flusher_http");
        assert_eq!(f["detail"]["RemoteURL"], "http://127.0.0.1:8080/bench");
        assert_eq!(f["detail"]["Body"], "ndjson");
        assert_eq!(f["detail"]["Buffer"], json!({"Type": "memory"}));
    }

    #[test]
    fn lines_count_a_last_line_without_newline() {
        let mut l = Lines::default();
        assert_eq!(l.records(), 0);
        l.feed(b"a\nb");
        assert_eq!(l.records(), 2);
        l.feed(b"\n");
        assert_eq!((l.records(), l.bytes), (2, 4));
    }

    /// Sends `req` and reads one answer (head and a Content-Length body).
    fn exchange(s: &mut BufReader<TcpStream>, req: &[u8]) -> String {
        s.get_mut().write_all(req).unwrap();
        let mut head = String::new();
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            s.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).unwrap();
        head
    }

    #[test]
    fn http_sink_counts_accepted_lines_and_refuses_during_an_outage() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let c = Arc::new(Counters::default());
        let served = c.clone();
        std::thread::spawn(move || serve(listener, served));
        let mut s = BufReader::new(TcpStream::connect(addr).unwrap());
        let body = "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n";
        let req = format!(
            "POST /bench HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        assert!(exchange(&mut s, req.as_bytes()).starts_with("HTTP/1.1 200 "));
        // Keep-alive, chunked, a last line without a newline.
        let chunked = b"POST /bench HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                        4\r\n{}\n{\r\n2\r\n}\n\r\n1\r\n{\r\n1\r\n}\r\n0\r\n\r\n";
        assert!(exchange(&mut s, chunked).starts_with("HTTP/1.1 200 "));
        let st = c.snapshot();
        assert_eq!((st.records, st.requests, st.bad), (6, 2, 0));
        c.reject.store(true, Ordering::Release);
        assert!(exchange(&mut s, req.as_bytes()).starts_with("HTTP/1.1 503 "));
        let st = c.snapshot();
        assert_eq!((st.records, st.rejected, st.rejected_records), (6, 1, 3));
        c.reject.store(false, Ordering::Release);
        let gz = b"POST / HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: 1\r\n\r\nx";
        assert!(exchange(&mut s, gz).starts_with("HTTP/1.1 415 "));
        let close = format!(
            "POST / HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        assert!(exchange(&mut s, close.as_bytes()).starts_with("HTTP/1.1 200 "));
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        let st = c.snapshot();
        assert_eq!((st.records, st.requests, st.bad), (9, 5, 1));
        assert_eq!(st.bytes, 2 * body.len() as u64 + 8);
    }

    #[test]
    fn file_counter_tails_complete_lines() {
        let dir = std::env::temp_dir().join(format!("bench-buffer-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.json");
        let c = Arc::new(Counters::default());
        let (p, cc) = (path.clone(), c.clone());
        std::thread::spawn(move || count_file(&p, &cc));
        std::thread::sleep(Duration::from_millis(30));
        std::fs::write(&path, "a\nb\nc").unwrap();
        let t = Instant::now();
        while c.snapshot().records < 2 && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(c.snapshot().records, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
