//! `flusher_forward`: sends chunks to Fluentd / Fluent Bit `forward` inputs (Forward
//! protocol v1), as Fluentd's and Fluent Bit's `out_forward` do.
//!
//! Each chunk is one message: its body is already the Fluent entries stream
//! ([`Format::Msgpack`]: `[time, {key: value}]`, the time an `EventTime` when the event has
//! nanoseconds), so a write only frames it:
//!
//! - `SendMode: Forward`: `[tag, [entry, ...], option]`;
//! - `PackedForward` (default): `[tag, bin(entries), option]`;
//! - `CompressedPackedForward` (or Fluent Bit's `Compress: gzip`): `[tag, bin(gzip(entries)),
//!   {"compressed": "gzip", ..}]`.
//!
//! The option map always has `size` (the record count), and `chunk` with
//! `RequireAckResponse`.
//!
//! Delivery: with `RequireAckResponse` (the default here, unlike Fluentd) every message
//! carries a fresh `chunk` id (base64 of 16 random bytes) and the write succeeds only once
//! the server answered `{"ack": id}` within `AckResponseTimeout`; a wrong or missing ack is a
//! failure. Duplicates remain possible when an ack is lost after the server took the data
//! (the protocol cannot tell). Without acks a write succeeds once the message is written and
//! flushed to the socket: a connection found closed by the server (checked before each
//! write) is replaced, but what the kernel had buffered when a server dies is lost.
//!
//! Servers: `Host` / `Port` for one, or `Servers: [{Host, Port, Name, Weight, Standby,
//! SharedKey, Username, Password}]`. Each chunk goes to a healthy non-standby server chosen
//! at random by `Weight` (Fluentd's default 60; 0: only when the others failed), failing over
//! to the other healthy ones, then to the standby ones. A server that fails (refused, reset,
//! timed out, a wrong ack, a failed authentication) is marked down: it is probed with a TCP
//! connect at most every `HeartbeatInterval` (Fluentd's `heartbeat_type transport`), by the
//! next write (no thread of its own: the library may be unloaded while a thread sleeps), and
//! used again once the probe connects. When no server is healthy every one is tried anyway,
//! non-standby first. When none took the chunk the write is retried by the framework
//! ([`WriteError::Retry`], the reason of each server in the text).
//!
//! Each flush thread (`Concurrency` / `Buffer.FlushThreadCount`) has its own instance: its
//! own connections (kept with `KeepAlive`, closed after `KeepAliveTimeout` idle, replaced
//! when the server closed them) and its own view of which servers are down. Writes are
//! synchronous, one message in flight per thread.
//!
//! Security: `SharedKey` (per server or for all), `SelfHostname` (default: the host name),
//! `Username` / `Password`: the HELO / PING / PONG handshake on every new connection, the
//! server's PONG digest checked. A server that wants the handshake while `SharedKey` is
//! unset answers the first message with its HELO: with acks that write fails quoting it,
//! without acks that message is lost (the server closes the connection). `TLS` as `flusher_http`'s (`Enabled`, `CAFile`, `CertFile`,
//! `KeyFile`, `InsecureSkipVerify`, `ServerName`).
//!
//! Durations (`ConnectTimeout` 10 s, `Timeout` a.k.a. `SendTimeout` 60 s,
//! `AckResponseTimeout` 60 s, `HeartbeatInterval` 1 s, `KeepAliveTimeout` 30 s): a number
//! of seconds (as Fluentd writes them) or a text such as `"500ms"`, `"10s"`, `"1m"`. Name
//! resolution is the system's and is not bounded by them.
//!
//! `Tag`: a template with `${tag}` (the group's tag, `__tag__`) and `${<field>}`
//! placeholders (chunk keys, added to the config's for you); default `${tag}`; an empty
//! result is sent as `untagged`. A chunk is one message: `Buffer.ChunkLimitSize` defaults to
//! 4 MiB here, under Fluent Bit's `in_forward` `buffer_max_size` (6 MB by default), which
//! resets the connection of a bigger message; a larger one given stays.

mod secure;
#[cfg(test)]
mod tests;

use super::net::{self, Stream, TlsOptions};
use super::template::Template;
use crate::api::prelude::*;
use flate2::write::GzEncoder;
use rustls::ClientConfig;
use secure::{Auth, Failure};
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The forward protocol's port.
const DEFAULT_PORT: u16 = 24224;
/// Fluentd's default server weight.
const DEFAULT_WEIGHT: u32 = 60;
/// The default `Buffer.ChunkLimitSize`: under Fluent Bit's `in_forward` `buffer_max_size`
/// (6,144,000 bytes by default) with room for the framing.
const MAX_MESSAGE_BYTES: usize = 4 << 20;
/// The tag of a chunk whose `Tag` renders empty.
const UNTAGGED: &str = "untagged";

/// Options of `flusher_forward`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Options {
    /// The server, when there is one (or `Servers`).
    #[serde(default)]
    host: String,
    /// Its port (default 24224).
    #[serde(default)]
    port: Option<u16>,
    /// The servers, when there are several.
    #[serde(default)]
    servers: Vec<ServerOptions>,
    /// The tag sent: a template with `${tag}` / `${<field>}`; default `${tag}`.
    #[serde(default)]
    tag: Option<String>,
    /// `Forward`, `PackedForward` (default) or `CompressedPackedForward`.
    #[serde(default)]
    send_mode: Option<String>,
    /// Fluent Bit's name: `gzip` is `CompressedPackedForward`.
    #[serde(default)]
    compress: String,
    /// Wait for the server's ack of each chunk (default true).
    #[serde(default = "yes")]
    require_ack_response: bool,
    /// How long an ack may take (default 60 s).
    #[serde(default)]
    ack_response_timeout: Option<Value>,
    /// How long a connect (and the TLS and shared-key handshakes) may take (default 10 s).
    #[serde(default)]
    connect_timeout: Option<Value>,
    /// How long each socket write may block (default 60 s).
    #[serde(default, alias = "SendTimeout")]
    timeout: Option<Value>,
    /// How often a down server is probed (default 1 s).
    #[serde(default, alias = "Heartbeat")]
    heartbeat_interval: Option<Value>,
    /// Keep connections open between chunks (default true).
    #[serde(default = "yes", alias = "Keepalive")]
    keep_alive: bool,
    /// How long a kept connection may be idle before it is replaced (default 30 s).
    #[serde(default, alias = "KeepaliveTimeout")]
    keep_alive_timeout: Option<Value>,
    /// The shared key of every server without its own.
    #[serde(default)]
    shared_key: Option<String>,
    /// Our host name in the handshake (default: the system's).
    #[serde(default)]
    self_hostname: Option<String>,
    /// User authentication in the handshake (with `SharedKey`).
    #[serde(default)]
    username: String,
    /// The user's password.
    #[serde(default)]
    password: String,
    /// TLS (`Enabled`, `CAFile`, `CertFile`, `KeyFile`, `InsecureSkipVerify`, `ServerName`).
    #[serde(default, rename = "TLS")]
    tls: TlsOptions,
}

/// One element of `Servers`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ServerOptions {
    /// Host name or address.
    #[serde(default)]
    host: String,
    /// Port (default 24224).
    #[serde(default)]
    port: Option<u16>,
    /// A name for errors (default `host:port`).
    #[serde(default)]
    name: String,
    /// Share of the chunks (default 60).
    #[serde(default = "default_weight")]
    weight: u32,
    /// Used only when every other server is down.
    #[serde(default)]
    standby: bool,
    /// This server's shared key (default: the top-level one).
    #[serde(default)]
    shared_key: Option<String>,
    /// This server's user (default: the top-level one).
    #[serde(default)]
    username: Option<String>,
    /// This server's password (default: the top-level one).
    #[serde(default)]
    password: Option<String>,
}

const fn yes() -> bool {
    true
}

const fn default_weight() -> u32 {
    DEFAULT_WEIGHT
}

/// How a chunk is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Forward,
    PackedForward,
    CompressedPackedForward,
}

/// The timeouts.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    connect: Duration,
    write: Duration,
    ack: Duration,
    heartbeat: Duration,
    idle: Duration,
}

/// A server and what this instance knows of it.
struct Server {
    label: String,
    host: String,
    port: u16,
    weight: u32,
    standby: bool,
    auth: Option<Auth>,
    conn: Option<Conn>,
    down: Option<Down>,
}

/// An open connection.
struct Conn {
    stream: Stream,
    idle_since: Instant,
    /// The server's HELO said `keepalive: false`.
    close_after: bool,
}

/// Why a server is down, and when it is probed next.
struct Down {
    probe_at: Instant,
}

struct ForwardOutput {
    servers: Vec<Server>,
    tag: Template,
    mode: Mode,
    ack: bool,
    keep_alive: bool,
    t: Timeouts,
    tls: Option<Arc<ClientConfig>>,
    server_name: String,
    self_hostname: String,
    /// The weighted choice's generator (xorshift64*, seeded from the system).
    rng: u64,
    head: Vec<u8>,
    tail: Vec<u8>,
    zipped: Vec<u8>,
}

pub(crate) fn build(detail: &Value, _cx: &PluginContext) -> Result<Box<dyn Output>, DetailError> {
    let o: Options = parse_detail(detail)?;
    let mode = send_mode(o.send_mode.as_deref(), &o.compress)?;
    let t = Timeouts {
        connect: seconds("ConnectTimeout", o.connect_timeout.as_ref(), 10.0)?,
        write: seconds("Timeout", o.timeout.as_ref(), 60.0)?,
        ack: seconds("AckResponseTimeout", o.ack_response_timeout.as_ref(), 60.0)?,
        heartbeat: seconds("HeartbeatInterval", o.heartbeat_interval.as_ref(), 1.0)?,
        idle: seconds("KeepAliveTimeout", o.keep_alive_timeout.as_ref(), 30.0)?,
    };
    let tag_text = o.tag.as_deref().unwrap_or("${tag}");
    // `%%`: the tag has no strftime fields.
    let tag =
        Template::parse(&tag_text.replace('%', "%%")).map_err(|e| DetailError::new("Tag", e))?;
    let servers = servers(&o)?;
    let tls = if o.tls.enabled {
        Some(net::client_config(&o.tls, "TLS")?)
    } else {
        for (field, set) in [
            ("TLS.CAFile", !o.tls.ca_file.is_empty()),
            ("TLS.CertFile", !o.tls.cert_file.is_empty()),
            ("TLS.KeyFile", !o.tls.key_file.is_empty()),
            ("TLS.InsecureSkipVerify", o.tls.insecure_skip_verify),
            ("TLS.ServerName", !o.tls.server_name.is_empty()),
        ] {
            if set {
                return Err(DetailError::new(field, "set without `TLS.Enabled: true`"));
            }
        }
        None
    };
    let self_hostname = match o.self_hostname {
        Some(h) if h.is_empty() => {
            return Err(DetailError::new("SelfHostname", "is empty"));
        }
        Some(h) => h,
        None => system_hostname(),
    };
    let seed = secure::random_bytes::<8>()
        .map(u64::from_le_bytes)
        .unwrap_or_else(|_| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    Ok(Box::new(ForwardOutput {
        servers,
        tag,
        mode,
        ack: o.require_ack_response,
        keep_alive: o.keep_alive,
        t,
        tls,
        server_name: o.tls.server_name.clone(),
        self_hostname,
        rng: seed | 1,
        head: Vec::new(),
        tail: Vec::new(),
        zipped: Vec::new(),
    }))
}

fn send_mode(mode: Option<&str>, compress: &str) -> Result<Mode, DetailError> {
    let gzip = match compress {
        "" => false,
        "gzip" => true,
        other => {
            let why = format!("`{other}` is not supported (only gzip)");
            return Err(DetailError::new("Compress", why));
        }
    };
    match (mode, gzip) {
        (None, false) | (Some("PackedForward"), false) => Ok(Mode::PackedForward),
        (None | Some("PackedForward" | "CompressedPackedForward"), true)
        | (Some("CompressedPackedForward"), false) => Ok(Mode::CompressedPackedForward),
        (Some("Forward"), false) => Ok(Mode::Forward),
        (Some("Forward"), true) => Err(DetailError::new(
            "Compress",
            "gzip needs SendMode PackedForward or CompressedPackedForward",
        )),
        (Some(other), _) => Err(DetailError::new(
            "SendMode",
            format!("`{other}` is not one of Forward, PackedForward, CompressedPackedForward"),
        )),
    }
}

/// A duration option: seconds as a number, or text with a unit (`ms`, `s`, `m`, `h`).
fn seconds(field: &str, v: Option<&Value>, default: f64) -> Result<Duration, DetailError> {
    let bad = |why: String| DetailError::new(field, why);
    let secs = match v {
        None | Some(Value::Null) => default,
        Some(Value::Number(n)) => n.as_f64().unwrap_or(-1.0),
        Some(Value::String(s)) => {
            let s = s.trim();
            let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
                (n, 1e-3)
            } else if let Some(n) = s.strip_suffix('s') {
                (n, 1.0)
            } else if let Some(n) = s.strip_suffix('m') {
                (n, 60.0)
            } else if let Some(n) = s.strip_suffix('h') {
                (n, 3600.0)
            } else {
                (s, 1.0)
            };
            let n: f64 = num.trim().parse().map_err(|_| {
                bad(format!(
                    "`{s}` is not a duration (like 10, \"500ms\", \"1m\")"
                ))
            })?;
            n * scale
        }
        Some(other) => {
            return Err(bad(format!(
                "expected seconds or a text like \"10s\", got {other}"
            )))
        }
    };
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        return Err(bad("must be more than 0 and at most a day".into()));
    }
    Ok(Duration::from_secs_f64(secs).max(Duration::from_millis(1)))
}

/// The servers of `Host`/`Port` or `Servers`.
fn servers(o: &Options) -> Result<Vec<Server>, DetailError> {
    let global = |field: &str| -> Result<(), DetailError> {
        if o.shared_key.as_deref() == Some("") {
            return Err(DetailError::new(
                field,
                "is empty (leave it out for no handshake)",
            ));
        }
        Ok(())
    };
    global("SharedKey")?;
    if o.shared_key.is_none() && !o.username.is_empty() {
        return Err(DetailError::new(
            "Username",
            "needs SharedKey (user authentication is part of the handshake)",
        ));
    }
    let port = |field: String, p: Option<u16>| match p {
        None => Ok(DEFAULT_PORT),
        Some(0) => Err(DetailError::new(field, "must be from 1 to 65535")),
        Some(p) => Ok(p),
    };
    let auth = |key: Option<&String>, user: Option<&String>, pass: Option<&String>| {
        key.or(o.shared_key.as_ref()).map(|k| Auth {
            shared_key: k.clone(),
            username: user.unwrap_or(&o.username).clone(),
            password: pass.unwrap_or(&o.password).clone(),
        })
    };
    match (o.host.is_empty(), o.servers.is_empty()) {
        (false, false) => Err(DetailError::new("Host", "give Host or Servers, not both")),
        (true, true) => Err(DetailError::new("Host", "required (or Servers)")),
        (false, true) => {
            let port = port("Port".into(), o.port)?;
            Ok(vec![Server::new(
                format!("{}:{port}", o.host),
                o.host.clone(),
                port,
                DEFAULT_WEIGHT,
                false,
                auth(None, None, None),
            )])
        }
        (true, false) => {
            if o.port.is_some() {
                return Err(DetailError::new(
                    "Port",
                    "goes with Host; give each server its Port",
                ));
            }
            let mut out = Vec::with_capacity(o.servers.len());
            for (i, s) in o.servers.iter().enumerate() {
                let field = |f: &str| format!("Servers[{i}].{f}");
                if s.host.is_empty() {
                    return Err(DetailError::new(field("Host"), "required"));
                }
                if s.shared_key.as_deref() == Some("") {
                    return Err(DetailError::new(field("SharedKey"), "is empty"));
                }
                let auth = auth(
                    s.shared_key.as_ref(),
                    s.username.as_ref(),
                    s.password.as_ref(),
                );
                if auth.is_none() && s.username.as_deref().is_some_and(|u| !u.is_empty()) {
                    return Err(DetailError::new(field("Username"), "needs a SharedKey"));
                }
                let port = port(field("Port"), s.port)?;
                let label = if s.name.is_empty() {
                    format!("{}:{port}", s.host)
                } else {
                    s.name.clone()
                };
                out.push(Server::new(
                    label,
                    s.host.clone(),
                    port,
                    s.weight,
                    s.standby,
                    auth,
                ));
            }
            Ok(out)
        }
    }
}

/// The system's host name (`localhost` when it has none).
fn system_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(h) if rc == 0 && !h.is_empty() => h.to_string(),
        _ => "localhost".to_string(),
    }
}

impl Server {
    fn new(
        label: String,
        host: String,
        port: u16,
        weight: u32,
        standby: bool,
        auth: Option<Auth>,
    ) -> Self {
        Self {
            label,
            host,
            port,
            weight,
            standby,
            auth,
            conn: None,
            down: None,
        }
    }

    fn close(&mut self) {
        if let Some(c) = self.conn.take() {
            c.stream.close();
        }
    }
}

impl ForwardOutput {
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// `from` in a random order weighted by `Weight` (weight-0 servers last, in order).
    fn weighted(&mut self, mut from: Vec<usize>) -> Vec<usize> {
        let mut out = Vec::with_capacity(from.len());
        loop {
            let total: u64 = from
                .iter()
                .map(|&i| u64::from(self.servers[i].weight))
                .sum();
            if total == 0 {
                break;
            }
            let mut pick = self.next_random() % total;
            let at = from
                .iter()
                .position(|&i| {
                    let w = u64::from(self.servers[i].weight);
                    if pick < w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .unwrap_or(0);
            out.push(from.remove(at));
        }
        out.extend(from);
        out
    }

    /// Probes the down servers that are due: a TCP connect that succeeds marks one up.
    fn probe_down(&mut self) {
        let now = Instant::now();
        let (connect, heartbeat) = (self.t.connect, self.t.heartbeat);
        for s in &mut self.servers {
            let Some(d) = &mut s.down else { continue };
            if d.probe_at > now {
                continue;
            }
            let up = (s.host.as_str(), s.port)
                .to_socket_addrs()
                .ok()
                .into_iter()
                .flatten()
                .any(|a| TcpStream::connect_timeout(&a, connect).is_ok());
            if up {
                s.down = None;
            } else {
                d.probe_at = Instant::now() + heartbeat;
            }
        }
    }

    /// The servers to try, in order.
    fn order(&mut self) -> Vec<usize> {
        let pick = |standby: bool, healthy: bool, s: &[Server]| -> Vec<usize> {
            (0..s.len())
                .filter(|&i| s[i].standby == standby && (!healthy || s[i].down.is_none()))
                .collect()
        };
        let mut out = self.weighted(pick(false, true, &self.servers));
        let standby = self.weighted(pick(true, true, &self.servers));
        out.extend(standby);
        if out.is_empty() {
            out = self.weighted(pick(false, false, &self.servers));
            let standby = self.weighted(pick(true, false, &self.servers));
            out.extend(standby);
        }
        out
    }

    /// A connection to server `i`: the kept one when it is still good, else a new one.
    fn connection(&mut self, i: usize) -> Result<(Conn, bool), Failure> {
        let s = &mut self.servers[i];
        if let Some(mut c) = s.conn.take() {
            if c.idle_since.elapsed() < self.t.idle && !c.stream.closed_by_peer() {
                return Ok((c, true));
            }
            c.stream.close();
        }
        self.open(i).map(|c| (c, false))
    }

    fn open(&self, i: usize) -> Result<Conn, Failure> {
        let s = &self.servers[i];
        let mut stream = net::connect(
            &s.host,
            s.port,
            self.t.connect,
            self.tls.as_ref(),
            &self.server_name,
        )
        .map_err(Failure::new)?;
        let mut close_after = false;
        if let Some(auth) = &s.auth {
            close_after = !secure::handshake(&mut stream, auth, &self.self_hostname)?;
        }
        stream
            .set_write_timeout(self.t.write)
            .map_err(|e| Failure::io("setting the write timeout", &e))?;
        Ok(Conn {
            stream,
            idle_since: Instant::now(),
            close_after,
        })
    }

    /// Writes the message on `c` and waits for its ack.
    fn exchange(&self, c: &mut Conn, entries: &[u8], id: Option<&str>) -> Result<(), Failure> {
        for part in [&self.head[..], entries, &self.tail[..]] {
            c.stream
                .write_all(part)
                .map_err(|e| Failure::io("sending", &e))?;
        }
        c.stream.flush().map_err(|e| Failure::io("sending", &e))?;
        let Some(id) = id else { return Ok(()) };
        c.stream
            .set_read_timeout(self.t.ack)
            .map_err(|e| Failure::io("waiting for the ack", &e))?;
        let answer = secure::read_answer(&mut c.stream, "waiting for the ack")?;
        match secure::get(&answer, "ack").and_then(secure::bytes_of) {
            Some(a) if a == id.as_bytes() => Ok(()),
            Some(a) => Err(Failure::new(format!(
                "the ack is for chunk {:?}, not {id:?}",
                String::from_utf8_lossy(a)
            ))),
            None => Err(Failure::new(format!(
                "expected an ack, got {}",
                secure::short(&answer)
            ))),
        }
    }

    /// Sends the framed message to server `i` (once more on a fresh connection when a kept
    /// one turns out closed).
    fn send(&mut self, i: usize, entries: &[u8], id: Option<&str>) -> Result<(), Failure> {
        let (mut c, kept) = self.connection(i)?;
        let mut result = self.exchange(&mut c, entries, id);
        if kept && result.as_ref().is_err_and(|f| f.fresh_may_help) {
            c.stream.close();
            c = self.open(i)?;
            result = self.exchange(&mut c, entries, id);
        }
        match result {
            Ok(()) if self.keep_alive && !c.close_after => {
                c.idle_since = Instant::now();
                self.servers[i].conn = Some(c);
                Ok(())
            }
            Ok(()) => {
                c.stream.close();
                Ok(())
            }
            Err(f) => {
                c.stream.close();
                Err(f)
            }
        }
    }

    /// Frames the head (`[tag, ` and the entries' array or bin header) and the option map.
    fn frame(
        &mut self,
        tag: &str,
        records: usize,
        entries_len: usize,
        id: Option<&str>,
    ) -> Result<(), WriteError> {
        use rmp::encode as mp;
        let too_big = || {
            WriteError::Unrecoverable(format!("a chunk of {entries_len} bytes / {records} records is over the forward protocol's 4 GiB"))
        };
        let records32 = u32::try_from(records).map_err(|_| too_big())?;
        let len32 = u32::try_from(entries_len).map_err(|_| too_big())?;
        let (head, tail) = (&mut self.head, &mut self.tail);
        head.clear();
        tail.clear();
        // Writing to a Vec cannot fail.
        let _ = mp::write_array_len(head, 3);
        let _ = mp::write_str(head, tag);
        let _ = match self.mode {
            Mode::Forward => mp::write_array_len(head, records32),
            _ => mp::write_bin_len(head, len32),
        };
        let compressed = self.mode == Mode::CompressedPackedForward;
        let n = 1 + u32::from(id.is_some()) + u32::from(compressed);
        let _ = mp::write_map_len(tail, n);
        let _ = mp::write_str(tail, "size");
        let _ = mp::write_uint(tail, u64::from(records32));
        if let Some(id) = id {
            let _ = mp::write_str(tail, "chunk");
            let _ = mp::write_str(tail, id);
        }
        if compressed {
            let _ = mp::write_str(tail, "compressed");
            let _ = mp::write_str(tail, "gzip");
        }
        Ok(())
    }
}

impl Output for ForwardOutput {
    fn format(&self) -> Format {
        Format::Msgpack
    }

    fn chunk_keys(&self) -> Vec<String> {
        self.tag.names().map(str::to_string).collect()
    }

    /// Fluent Bit's `forward` input resets a connection that sends a message over its
    /// `buffer_max_size` (6 MB by default); Fluentd's takes 16 MiB.
    fn max_chunk_bytes(&self) -> Option<usize> {
        Some(MAX_MESSAGE_BYTES)
    }

    fn write(&mut self, chunk: &Chunk) -> Result<(), WriteError> {
        if chunk.records == 0 || chunk.body.is_empty() {
            return Ok(());
        }
        // A placeholder without a value stays literal: the tag of a chunk without one is
        // empty here.
        let tag = if chunk.key.tag.is_none() {
            let key = ChunkKey {
                tag: Some(Bytes::new()),
                ..chunk.key.clone()
            };
            self.tag.render(&key, 0, false)
        } else {
            self.tag.render(&chunk.key, 0, false)
        };
        let tag = if tag.is_empty() {
            UNTAGGED.to_string()
        } else {
            tag
        };
        let zipped = std::mem::take(&mut self.zipped);
        let zipped = if self.mode == Mode::CompressedPackedForward {
            let mut z = GzEncoder::new(zipped, flate2::Compression::fast());
            z.write_all(&chunk.body)
                .and_then(|()| z.finish())
                .map_err(|e| WriteError::Exit(format!("gzip: {e}")))?
        } else {
            zipped
        };
        let result = self.write_entries(chunk, &tag, &zipped);
        self.zipped = zipped;
        self.zipped.clear();
        result
    }
}

impl ForwardOutput {
    fn write_entries(&mut self, chunk: &Chunk, tag: &str, zipped: &[u8]) -> Result<(), WriteError> {
        let entries: &[u8] = if self.mode == Mode::CompressedPackedForward {
            zipped
        } else {
            &chunk.body
        };
        self.probe_down();
        let mut failures = Vec::new();
        for i in self.order() {
            let id = if self.ack {
                Some(secure::chunk_id().map_err(WriteError::retry)?)
            } else {
                None
            };
            self.frame(tag, chunk.records, entries.len(), id.as_deref())?;
            match self.send(i, entries, id.as_deref()) {
                Ok(()) => return Ok(()),
                Err(f) => {
                    let s = &mut self.servers[i];
                    s.close();
                    s.down = Some(Down {
                        probe_at: Instant::now() + self.t.heartbeat,
                    });
                    failures.push(format!("{}: {}", s.label, f.why));
                }
            }
        }
        Err(WriteError::retry(format!(
            "no forward server took the chunk of {} records: {}",
            chunk.records,
            failures.join("; ")
        )))
    }
}
