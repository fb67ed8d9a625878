//! `flusher_http`: POSTs each chunk to `RemoteURL` (iLogtail's flusher, as an [`Output`]).
//!
//! The framework buffers, retries (`Retry`) and runs `Concurrency` flush threads, each with
//! its own instance and so its own keep-alive connection; this file only turns a chunk into
//! one request and the answer into a [`WriteError`]:
//!
//! - 2xx: written. 3xx: unrecoverable (redirects are not followed).
//! - 408, 429, 5xx, and 401 / 403 as iLogtail does (credentials may be rotated): retried,
//!   after `Retry-After` (seconds or an HTTP date, at most 10 minutes) when the server says.
//! - Other 4xx: unrecoverable, with the status and the start of the answer.
//! - Refused, reset, timed out (`Timeout`), TLS failures: retried.
//!
//! `RemoteURL` may hold `${tag}` and `${<field>}` chunk-key placeholders ([`Template`]; their
//! values are percent-encoded); a `%` in it is literal (no strftime fields in URLs).
//!
//! Options, as iLogtail names them (`plugins/flusher/http/flusher_http.go`):
//! `RemoteURL`, `Headers`, `Query`, `Timeout`, `IdleConnTimeout`, `Compression` (`gzip`),
//! `Convert` {`Protocol`, `Encoding`, `Separator`, `IgnoreUnExpectedData`, and the two
//! renames when empty}. Accepted without effect, because one flush thread holds at most one
//! connection and the framework's buffer is the queue: `MaxConnsPerHost`,
//! `MaxIdleConnsPerHost`, `WriteBufferSize`, `QueueCapacity`, `AsyncIntercept`,
//! `DropEventWhenQueueFull: false`. Refused: the extensions (`Authenticator`, `Encoder`,
//! `FlushInterceptor`, `RequestInterceptors`), `snappy`, `%{...}` values, non-empty renames.
//! Ours: `Body` (`ndjson`, `json`, `protobuf`, `msgpack`), `Tags`, and `TLS` with the field
//! names of iLogtail's `pkg/tlscommon` (`CAFile`, `CertFile`, `KeyFile`,
//! `InsecureSkipVerify`, `MinVersion`, `MaxVersion`).

pub(crate) use super::net::{read_pem, TlsOptions as Tls};
use super::template::Template;
use crate::api::prelude::*;
use flate2::write::GzEncoder;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

/// iLogtail's default `Timeout` (`defaultTimeout = time.Minute`).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Go's `http.DefaultTransport` idle timeout.
const DEFAULT_IDLE: Duration = Duration::from_secs(90);
/// The longest `Retry-After` honoured.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// How much of an error answer is quoted.
const QUOTED: usize = 200;
/// How much of an answer is read (the rest is dropped with the connection).
const READ_LIMIT: u64 = 64 * 1024;

/// Options of `flusher_http`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Options {
    /// Where to POST: `http://` or `https://`, with `${tag}` / `${<field>}` placeholders.
    #[serde(rename = "RemoteURL", default)]
    remote_url: String,
    /// Request headers; a `Content-Type` here replaces ours.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Query parameters appended to the URL, URL-encoded, sorted by key (Go's `Encode`).
    #[serde(default)]
    query: BTreeMap<String, String>,
    /// Go `time.Duration`: a number of nanoseconds (how iLogtail's JSON decodes it) or a
    /// duration text such as `"60s"`; the whole request, connect to answer. Default 60 s.
    #[serde(default)]
    timeout: Option<Value>,
    /// How long an idle connection is kept (Go duration as `Timeout`). Default 90 s.
    #[serde(default)]
    idle_conn_timeout: Option<Value>,
    /// `""` or `gzip` (`snappy` is refused).
    #[serde(default)]
    compression: String,
    /// What the records are encoded as.
    #[serde(default)]
    convert: Convert,
    /// Ours: `ndjson` (default for JSON), `json` (an array), `protobuf` (a `LogGroupList`,
    /// the default for `Encoding: protobuf`), `msgpack` (Fluent entries).
    #[serde(default)]
    body: Option<String>,
    /// Ours: JSON records also carry the group tags as `__tag__:<key>` (and `__topic__`),
    /// as iLogtail's JSON protocols do. Default true.
    #[serde(default = "yes")]
    tags: bool,
    /// Ours: TLS for `https://`.
    #[serde(default, rename = "TLS")]
    tls: Tls,
    /// No effect: a flush thread uses one connection at a time.
    #[serde(default)]
    max_conns_per_host: i64,
    /// No effect: a flush thread keeps at most one idle connection.
    #[serde(default)]
    max_idle_conns_per_host: i64,
    /// No effect.
    #[serde(default)]
    write_buffer_size: i64,
    /// No effect: the framework's `Buffer` is the queue.
    #[serde(default)]
    queue_capacity: i64,
    /// No effect: there are no flush interceptors.
    #[serde(default)]
    async_intercept: bool,
    /// Only `false`: the `Buffer` decides what happens when it is full.
    #[serde(default)]
    drop_event_when_queue_full: bool,
    /// Refused: iLogtail extensions.
    #[serde(default)]
    authenticator: Option<Value>,
    /// Refused: iLogtail extensions.
    #[serde(default)]
    encoder: Option<Value>,
    /// Refused: iLogtail extensions.
    #[serde(default)]
    flush_interceptor: Option<Value>,
    /// Refused: iLogtail extensions.
    #[serde(default)]
    request_interceptors: Option<Value>,
}

const fn yes() -> bool {
    true
}

/// iLogtail's `helper.ConvertConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
struct Convert {
    /// `custom_single` (default), `custom_single_flatten`, `jsonline`: one flat JSON object
    /// per record (`__time__`, contents, `__tag__:<key>`); `raw`: the `content` values.
    protocol: String,
    /// `json` (default) or `protobuf`; `custom` with `raw`.
    encoding: Option<String>,
    /// With `raw`: only `\n` (records are one per line; unset means the same).
    separator: String,
    /// No effect: records are always well-formed.
    ignore_un_expected_data: Option<bool>,
    /// Only empty: the shared encoder does not rename.
    tag_fields_rename: BTreeMap<String, String>,
    /// Only empty: the shared encoder does not rename.
    protocol_fields_rename: BTreeMap<String, String>,
}

/// What a request body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Ndjson,
    JsonArray,
    Protobuf,
    Msgpack,
    Raw,
}

impl Body {
    fn content_type(self) -> &'static str {
        match self {
            Self::Ndjson => "application/x-ndjson",
            Self::JsonArray => "application/json",
            Self::Protobuf => "application/x-protobuf",
            Self::Msgpack => "application/msgpack",
            Self::Raw => "application/octet-stream",
        }
    }
}

struct HttpOutput {
    agent: ureq::Agent,
    /// `RemoteURL` with the query appended, when it has no placeholders.
    url: String,
    /// `RemoteURL` when it has placeholders, and the query to append (with `?` or `&`).
    template: Option<(Template, String)>,
    headers: Vec<(String, String)>,
    format: Format,
    body: Body,
    gzip: bool,
    timeout: Duration,
    array: Vec<u8>,
    zipped: Vec<u8>,
}

pub(crate) fn build(detail: &Value, _cx: &PluginContext) -> Result<Box<dyn Output>, DetailError> {
    let o: Options = parse_detail(detail)?;
    refuse_unsupported(&o)?;
    let (format, body) = encoding(&o.convert, o.body.as_deref(), o.tags)?;
    let timeout = duration("Timeout", o.timeout.as_ref(), DEFAULT_TIMEOUT)?;
    let idle = duration(
        "IdleConnTimeout",
        o.idle_conn_timeout.as_ref(),
        DEFAULT_IDLE,
    )?;
    let (url, template) = remote_url(&o.remote_url, &o.query)?;
    let (headers, gzip) = headers(&o.headers, &o.compression, body)?;
    let tls = tls_config(&o.tls)?;
    Ok(Box::new(HttpOutput {
        agent: agent(&o.remote_url, timeout, idle, tls),
        url,
        template,
        headers,
        format,
        body,
        gzip,
        timeout,
        array: Vec::new(),
        zipped: Vec::new(),
    }))
}

/// A blocking agent for one flush thread: at most one kept connection, no redirects, statuses
/// as answers (not errors), `timeout` for the whole request, no proxy for a loopback `url`.
pub(crate) fn agent(url: &str, timeout: Duration, idle: Duration, tls: TlsConfig) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .max_idle_age(idle)
        .max_idle_connections_per_host(1)
        .user_agent(concat!("plugin-engine/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls);
    if is_loopback(url) {
        // As Go's ProxyFromEnvironment: loopback is never proxied.
        config = config.proxy(None);
    }
    config.build().into()
}

fn refuse_unsupported(o: &Options) -> Result<(), DetailError> {
    let extension = "iLogtail extensions are not available here";
    if o.authenticator.is_some() {
        let why = format!("{extension}: put the credentials in Headers (`Authorization`)");
        return Err(DetailError::new("Authenticator", why));
    }
    for (field, set) in [
        ("Encoder", o.encoder.is_some()),
        ("FlushInterceptor", o.flush_interceptor.is_some()),
        ("RequestInterceptors", o.request_interceptors.is_some()),
    ] {
        if set {
            return Err(DetailError::new(field, extension));
        }
    }
    if o.drop_event_when_queue_full {
        let why = "not supported: the Buffer section decides what happens when it is full";
        return Err(DetailError::new("DropEventWhenQueueFull", why));
    }
    let c = &o.convert;
    for (field, map) in [
        ("Convert.TagFieldsRename", &c.tag_fields_rename),
        ("Convert.ProtocolFieldsRename", &c.protocol_fields_rename),
    ] {
        if !map.is_empty() {
            let why = "renaming is not supported: rename with a processor before the flusher";
            return Err(DetailError::new(field, why));
        }
    }
    let _ = (
        o.max_conns_per_host,
        o.max_idle_conns_per_host,
        o.write_buffer_size,
    );
    let _ = (
        o.queue_capacity,
        o.async_intercept,
        c.ignore_un_expected_data,
        o.tls.enabled,
    );
    Ok(())
}

/// The record format and body from `Convert`, `Body` and `Tags`.
fn encoding(c: &Convert, body: Option<&str>, tags: bool) -> Result<(Format, Body), DetailError> {
    let bad_body = |why: &str| DetailError::new("Body", why.to_string());
    match c.protocol.as_str() {
        "raw" => {
            if !matches!(c.encoding.as_deref(), None | Some("custom")) {
                return Err(DetailError::new("Convert.Encoding", "raw needs `custom`"));
            }
            if !matches!(c.separator.as_str(), "" | "\n") {
                let why = "only \"\\n\": raw records are written one per line";
                return Err(DetailError::new("Convert.Separator", why));
            }
            if body.is_some() {
                return Err(bad_body("not with `Convert.Protocol: raw`"));
            }
            let key = Bytes::from_static(b"content");
            return Ok((Format::Raw { key }, Body::Raw));
        }
        "" | "custom_single" | "custom_single_flatten" | "jsonline" => {}
        other => {
            let why = format!(
                "`{other}` is not supported (custom_single, custom_single_flatten, jsonline, raw)"
            );
            return Err(DetailError::new("Convert.Protocol", why));
        }
    }
    if !c.separator.is_empty() {
        return Err(DetailError::new("Convert.Separator", "only with `raw`"));
    }
    let json = Format::Json { tags };
    match (c.encoding.as_deref(), body) {
        (None | Some("json"), None | Some("ndjson")) => Ok((json, Body::Ndjson)),
        (None | Some("json"), Some("json")) => Ok((json, Body::JsonArray)),
        (None | Some("protobuf"), Some("protobuf")) | (Some("protobuf"), None) => {
            Ok((Format::Protobuf, Body::Protobuf))
        }
        (None, Some("msgpack")) => Ok((Format::Msgpack, Body::Msgpack)),
        (
            Some(e @ ("json" | "protobuf")),
            Some(b @ ("ndjson" | "json" | "protobuf" | "msgpack")),
        ) => Err(bad_body(&format!(
            "`{b}` does not go with `Convert.Encoding: {e}`"
        ))),
        (Some("json" | "protobuf") | None, Some(b)) => Err(bad_body(&format!(
            "`{b}` is not one of ndjson, json, protobuf, msgpack"
        ))),
        (Some(e), _) => Err(DetailError::new(
            "Convert.Encoding",
            format!("`{e}` is not supported (json, protobuf; custom with raw)"),
        )),
    }
}

/// A Go `time.Duration` option: nanoseconds as a number, or Go's duration text.
fn duration(field: &str, v: Option<&Value>, default: Duration) -> Result<Duration, DetailError> {
    let d = match v {
        None | Some(Value::Null) => return Ok(default),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(ns) if ns >= 1_000_000 => Duration::from_nanos(ns),
            _ => {
                let why = format!("{n} is nanoseconds (Go's time.Duration); write e.g. \"5s\"");
                return Err(DetailError::new(field, why));
            }
        },
        Some(Value::String(s)) => go_duration(s).map_err(|why| DetailError::new(field, why))?,
        Some(other) => {
            let why = format!("expected a duration such as \"60s\", got {other}");
            return Err(DetailError::new(field, why));
        }
    };
    if d.is_zero() {
        return Err(DetailError::new(field, "must be positive"));
    }
    Ok(d)
}

/// Parses Go's duration text: `1h2m3.5s`, `300ms`, `0`.
pub(crate) fn go_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration (like \"60s\", \"1m30s\", \"500ms\")");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return Err(bad());
    }
    let mut nanos = 0f64;
    while !rest.is_empty() {
        let num = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (n, tail) = rest.split_at(num);
        let unit = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (u, tail) = tail.split_at(unit);
        let n: f64 = n.parse().map_err(|_| bad())?;
        let scale = match u {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        nanos += n * scale;
        rest = tail;
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// Checks `RemoteURL`: the URL with the query appended, or the template and the query.
fn remote_url(
    url: &str,
    query: &BTreeMap<String, String>,
) -> Result<(String, Option<(Template, String)>), DetailError> {
    let bad = |why: String| DetailError::new("RemoteURL", why);
    if url.is_empty() {
        return Err(bad("is required".into()));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad(format!("`{url}` is not an http:// or https:// URL")));
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return Err(bad(format!("scheme `{scheme}` is not http or https")));
    }
    if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
        return Err(bad(format!("`{url}` has no host")));
    }
    let mut tail = String::new();
    if !query.is_empty() {
        tail.push(if url.contains('?') { '&' } else { '?' });
        let pairs: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
            .collect();
        tail.push_str(&pairs.join("&"));
    }
    // `%%` keeps every `%` literal: the template only substitutes placeholders.
    let template = Template::parse(&url.replace('%', "%%")).map_err(bad)?;
    let names: Vec<String> = template.names().map(str::to_string).collect();
    let dummy = ChunkKey {
        tag: Some(Bytes::from_static(b"x")),
        time: None,
        fields: names
            .iter()
            .map(|n| (n.as_str().into(), Bytes::from_static(b"x")))
            .collect(),
    };
    let sample = format!("{}{tail}", template.render(&dummy, 0, false));
    ureq::http::Uri::try_from(sample.as_str()).map_err(|e| bad(format!("`{sample}`: {e}")))?;
    if names.is_empty() {
        Ok((sample, None))
    } else {
        Ok((String::new(), Some((template, tail))))
    }
}

/// A placeholder value in a URL: all but the unreserved characters percent-encoded.
fn url_value(v: &[u8], out: &mut String) {
    for &b in v {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, part) in s.split(' ').enumerate() {
        if i > 0 {
            out.push('+');
        }
        url_value(part.as_bytes(), &mut out);
    }
    out
}

fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The request headers and whether to gzip: `Compression` wins; as in iLogtail a
/// `Content-Encoding: gzip` header alone also compresses.
fn headers(
    given: &BTreeMap<String, String>,
    compression: &str,
    body: Body,
) -> Result<(Vec<(String, String)>, bool), DetailError> {
    let snappy = "snappy is not supported (only gzip)";
    let gzip = match compression {
        "" => None,
        "gzip" => Some(true),
        "snappy" => return Err(DetailError::new("Compression", snappy)),
        other => {
            let why = format!("`{other}` is not supported (only gzip)");
            return Err(DetailError::new("Compression", why));
        }
    };
    let mut out = Vec::with_capacity(given.len() + 2);
    let mut typed = false;
    let mut header_gzip = false;
    for (k, v) in given {
        let field = || format!("Headers.{k}");
        if v.contains("%{") {
            let why = "dynamic values (%{...}) are not supported";
            return Err(DetailError::new(field(), why));
        }
        ureq::http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| DetailError::new(field(), "not a valid header name"))?;
        ureq::http::HeaderValue::from_str(v)
            .map_err(|_| DetailError::new(field(), "not a valid header value"))?;
        if k.eq_ignore_ascii_case("content-encoding") {
            match (gzip, v.as_str()) {
                (Some(_), _) => continue,
                (None, "gzip") => header_gzip = true,
                (None, "snappy") => return Err(DetailError::new(field(), snappy)),
                _ => {}
            }
        }
        typed |= k.eq_ignore_ascii_case("content-type");
        out.push((k.clone(), v.clone()));
    }
    if !typed {
        out.push(("Content-Type".into(), body.content_type().into()));
    }
    if gzip.is_some() {
        out.push(("Content-Encoding".into(), "gzip".into()));
    }
    Ok((out, gzip.unwrap_or(header_gzip)))
}

pub(crate) fn tls_config(t: &Tls) -> Result<TlsConfig, DetailError> {
    if !t.server_name.is_empty() {
        let why = "not supported by flusher_http (the URL's host is the name checked)";
        return Err(DetailError::new("TLS.ServerName", why));
    }
    let mut b = TlsConfig::builder().disable_verification(t.insecure_skip_verify);
    if !t.ca_file.is_empty() {
        let pem = read_pem("TLS.CAFile", &t.ca_file)?;
        let roots: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if roots.is_empty() {
            let why = format!("no PEM certificate in {}", t.ca_file);
            return Err(DetailError::new("TLS.CAFile", why));
        }
        b = b.root_certs(RootCerts::new_with_certs(&roots));
    }
    match (t.cert_file.is_empty(), t.key_file.is_empty()) {
        (true, true) => {}
        (false, false) => b = b.client_cert(Some(client_cert(t)?)),
        (empty_cert, _) => {
            let field = if empty_cert {
                "TLS.CertFile"
            } else {
                "TLS.KeyFile"
            };
            return Err(DetailError::new(field, "CertFile and KeyFile go together"));
        }
    }
    if !matches!(t.min_version.as_str(), "" | "1.0" | "1.1" | "1.2") {
        let why = "only 1.0 to 1.2 (TLS 1.2 and 1.3 are used)";
        return Err(DetailError::new("TLS.MinVersion", why));
    }
    if !matches!(t.max_version.as_str(), "" | "1.3") {
        return Err(DetailError::new("TLS.MaxVersion", "only 1.3"));
    }
    Ok(b.build())
}

fn client_cert(t: &Tls) -> Result<ClientCert, DetailError> {
    let pem = read_pem("TLS.CertFile", &t.cert_file)?;
    let chain: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if chain.is_empty() {
        let why = format!("no PEM certificate in {}", t.cert_file);
        return Err(DetailError::new("TLS.CertFile", why));
    }
    let key = PrivateKey::from_pem(&read_pem("TLS.KeyFile", &t.key_file)?)
        .map_err(|e| DetailError::new("TLS.KeyFile", format!("{}: {e}", t.key_file)))?;
    Ok(ClientCert::new_with_certs(&chain, key))
}

impl HttpOutput {
    /// The request body of `chunk`: shaped as `Body`, then gzipped when configured.
    fn payload<'a>(
        body: Body,
        gzip: bool,
        chunk: &'a Chunk,
        array: &'a mut Vec<u8>,
        zipped: &'a mut Vec<u8>,
    ) -> std::io::Result<&'a [u8]> {
        let plain: &[u8] = if body == Body::JsonArray {
            array.clear();
            array.push(b'[');
            for line in chunk.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                if array.len() > 1 {
                    array.push(b',');
                }
                array.extend_from_slice(line);
            }
            array.push(b']');
            array
        } else {
            &chunk.body
        };
        if !gzip {
            return Ok(plain);
        }
        zipped.clear();
        let mut z = GzEncoder::new(std::mem::take(zipped), flate2::Compression::default());
        z.write_all(plain)?;
        *zipped = z.finish()?;
        Ok(zipped)
    }
}

impl Output for HttpOutput {
    fn format(&self) -> Format {
        self.format.clone()
    }

    fn write(&mut self, chunk: &Chunk) -> Result<(), WriteError> {
        let payload = Self::payload(
            self.body,
            self.gzip,
            chunk,
            &mut self.array,
            &mut self.zipped,
        )
        .map_err(|e| WriteError::Exit(format!("gzip: {e}")))?;
        let url = match &self.template {
            None => Cow::Borrowed(self.url.as_str()),
            Some((t, tail)) => {
                let at = chunk.key.time.unwrap_or(chunk.created);
                let mut url = t.render_with(&chunk.key, at, false, url_value);
                url.push_str(tail);
                Cow::Owned(url)
            }
        };
        let mut req = self.agent.post(url.as_ref());
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        match req.send(payload) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after(v, chrono::Utc::now().timestamp()));
                let location = resp
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let text = if (200..300).contains(&status) {
                    // Read it all so the connection is kept; what it says does not matter.
                    let _ = resp
                        .body_mut()
                        .with_config()
                        .limit(READ_LIMIT)
                        .read_to_vec();
                    Vec::new()
                } else {
                    let answer = resp
                        .body_mut()
                        .with_config()
                        .limit(READ_LIMIT)
                        .read_to_vec();
                    answer.unwrap_or_default()
                };
                answer(status, after, location.as_deref(), &text, &url)
            }
            Err(e) => Err(failed(e, &url, self.timeout)),
        }
    }
}

/// What an HTTP answer means for the chunk.
fn answer(
    status: u16,
    after: Option<Duration>,
    location: Option<&str>,
    body: &[u8],
    url: &str,
) -> Result<(), WriteError> {
    let quoted = String::from_utf8_lossy(&body[..body.len().min(QUOTED)]);
    let why = format!("POST {url}: HTTP {status}: {quoted}");
    match status {
        200..=299 => Ok(()),
        300..=399 => Err(WriteError::Unrecoverable(format!(
            "POST {url}: HTTP {status}: redirect to {} not followed",
            location.unwrap_or("(no Location)")
        ))),
        401 | 403 | 408 | 429 | 500..=599 => Err(WriteError::Retry { why, after }),
        _ => Err(WriteError::Unrecoverable(why)),
    }
}

/// What a failed request means: transport failures are retried; a request that cannot be
/// made (a bad URL or header) never will be.
pub(crate) fn failed(e: ureq::Error, url: &str, timeout: Duration) -> WriteError {
    match e {
        ureq::Error::Timeout(_) => {
            WriteError::retry(format!("POST {url}: no answer within {timeout:?}"))
        }
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
            WriteError::Unrecoverable(format!("POST {url}: {e}"))
        }
        e => WriteError::retry(format!("POST {url}: {e}")),
    }
}

/// `Retry-After` as seconds or an HTTP date (relative to `now`, unix seconds), capped.
pub(crate) fn retry_after(v: &str, now: i64) -> Option<Duration> {
    let v = v.trim();
    let secs = match v.parse::<u64>() {
        Ok(s) => s,
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(v)
                .map(|d| d.timestamp())
                .or_else(|_| {
                    chrono::NaiveDateTime::parse_from_str(v, "%A, %d-%b-%y %H:%M:%S GMT")
                        .or_else(|_| {
                            chrono::NaiveDateTime::parse_from_str(v, "%a %b %e %H:%M:%S %Y")
                        })
                        .map(|d| d.and_utc().timestamp())
                })
                .ok()?;
            u64::try_from(at.saturating_sub(now)).unwrap_or(0)
        }
    };
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::{BufRead, BufReader, Read};
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::time::Instant;

    /// One request as the test server saw it.
    struct Got {
        head: String,
        body: Vec<u8>,
    }

    /// How the test server answers one request.
    enum Reply {
        Status(u16, &'static str),
        Silent,
    }

    /// A one-thread HTTP/1.1 server answering requests in order from `script` (keep-alive
    /// honoured); what it received comes out of the channel.
    fn serve(script: Vec<Reply>) -> (String, mpsc::Receiver<Got>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/ingest", listener.local_addr().unwrap());
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
                    let out = r.get_mut();
                    match script.next() {
                        Some(Reply::Status(code, extra)) => {
                            let text = format!("status {code}");
                            let _ = write!(
                                out,
                                "HTTP/1.1 {code} X\r\n{extra}Content-Length: {}\r\n\r\n{text}",
                                text.len()
                            );
                        }
                        Some(Reply::Silent) => std::thread::sleep(Duration::from_secs(2)),
                        None => return,
                    }
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
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let len = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(str::to_string)
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        r.read_exact(&mut body).ok()?;
        Some(Got { head, body })
    }

    fn output(detail: Value) -> Box<dyn Output> {
        build(&detail, &PluginContext::for_check("t")).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn chunk(body: &str, records: usize) -> Chunk {
        Chunk {
            id: 1,
            key: ChunkKey::default(),
            body: Bytes::from(body.to_string()),
            ends: vec![body.len()],
            records,
            created: 0,
            retries: 0,
        }
    }

    const LINES: &str = "{\"a\":\"1\"}\n{\"a\":\"2\\nx\"}\n{\"a\":\"3\"}\n";

    fn field_error(detail: Value) -> String {
        match build(&detail, &PluginContext::for_check("t")) {
            Err(e) => e.field,
            Ok(_) => panic!("{detail} was accepted"),
        }
    }

    #[test]
    fn ndjson_is_posted_with_headers_and_query() {
        let (url, rx) = serve(vec![Reply::Status(200, ""), Reply::Status(204, "")]);
        let mut out = output(json!({
            "RemoteURL": url, "Headers": {"X-Db": "logs"}, "Query": {"db": "a b", "k": "&"},
        }));
        assert_eq!(out.format(), Format::Json { tags: true });
        out.write(&chunk(LINES, 3)).unwrap();
        out.write(&chunk(LINES, 3)).unwrap();
        for _ in 0..2 {
            let got = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert!(
                got.head
                    .starts_with("POST /ingest?db=a+b&k=%26 HTTP/1.1\r\n"),
                "{}",
                got.head
            );
            let head = got.head.to_ascii_lowercase();
            assert!(head.contains("x-db: logs\r\n"), "{head}");
            assert!(
                head.contains("content-type: application/x-ndjson\r\n"),
                "{head}"
            );
            assert_eq!(
                got.body
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .count(),
                3
            );
        }
    }

    #[test]
    fn placeholders_in_the_url_are_filled_and_escaped() {
        let (url, rx) = serve(vec![Reply::Status(200, "")]);
        let mut out = output(json!({"RemoteURL": format!("{url}/${{tag}}/%41?x=${{host}}")}));
        let mut c = chunk(LINES, 3);
        c.key.tag = Some(Bytes::from_static(b"app/web"));
        c.key.fields = vec![("host".into(), Bytes::from_static(b"h 1"))];
        out.write(&c).unwrap();
        let got = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let want = "POST /ingest/app%2Fweb/%41?x=h%201 HTTP/1.1\r\n";
        assert!(got.head.starts_with(want), "{}", got.head);
    }

    #[test]
    fn json_array_is_gzipped() {
        let (url, rx) = serve(vec![Reply::Status(200, "")]);
        let mut out = output(json!({"RemoteURL": url, "Body": "json", "Compression": "gzip"}));
        out.write(&chunk(LINES, 3)).unwrap();
        let got = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let head = got.head.to_ascii_lowercase();
        assert!(head.contains("content-encoding: gzip\r\n"), "{head}");
        assert!(
            head.contains("content-type: application/json\r\n"),
            "{head}"
        );
        let mut plain = String::new();
        flate2::read::GzDecoder::new(&got.body[..])
            .read_to_string(&mut plain)
            .unwrap();
        let v: Value = serde_json::from_str(&plain).unwrap();
        assert_eq!(v, json!([{"a": "1"}, {"a": "2\nx"}, {"a": "3"}]));
    }

    #[test]
    fn server_errors_and_throttling_are_retried() {
        let (url, _rx) = serve(vec![
            Reply::Status(503, ""),
            Reply::Status(429, "Retry-After: 2\r\n"),
            Reply::Status(408, ""),
        ]);
        let mut out = output(json!({"RemoteURL": url}));
        let c = chunk(LINES, 3);
        assert!(matches!(
            out.write(&c),
            Err(WriteError::Retry { after: None, .. })
        ));
        match out.write(&c) {
            Err(WriteError::Retry { after, .. }) => assert_eq!(after, Some(Duration::from_secs(2))),
            other => panic!("{other:?}"),
        }
        assert!(matches!(out.write(&c), Err(WriteError::Retry { .. })));
    }

    #[test]
    fn client_errors_and_redirects_are_unrecoverable() {
        let (url, _rx) = serve(vec![
            Reply::Status(400, ""),
            Reply::Status(302, "Location: http://elsewhere/\r\n"),
        ]);
        let mut out = output(json!({"RemoteURL": url}));
        match out.write(&chunk(LINES, 3)) {
            Err(WriteError::Unrecoverable(why)) => {
                assert!(why.contains("400: status 400"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        match out.write(&chunk(LINES, 3)) {
            Err(WriteError::Unrecoverable(why)) => {
                assert!(why.contains("http://elsewhere/"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refused_connection_is_retried() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut out = output(json!({"RemoteURL": format!("http://127.0.0.1:{port}/")}));
        assert!(matches!(
            out.write(&chunk(LINES, 3)),
            Err(WriteError::Retry { .. })
        ));
    }

    #[test]
    fn silent_server_is_retried_within_timeout() {
        let (url, _rx) = serve(vec![Reply::Silent]);
        let mut out = output(json!({"RemoteURL": url, "Timeout": "300ms"}));
        let start = Instant::now();
        let err = out.write(&chunk(LINES, 3)).unwrap_err();
        assert!(matches!(err, WriteError::Retry { .. }), "{err:?}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn bad_options_name_the_field() {
        assert_eq!(field_error(json!({})), "RemoteURL");
        assert_eq!(field_error(json!({"RemoteURL": "ftp://x/"})), "RemoteURL");
        assert_eq!(field_error(json!({"RemoteURL": "http:///x"})), "RemoteURL");
        let url = "http://127.0.0.1:1/";
        for (detail, field) in [
            (
                json!({"RemoteURL": url, "Compression": "snappy"}),
                "Compression",
            ),
            (json!({"RemoteURL": url, "Timeout": 5}), "Timeout"),
            (json!({"RemoteURL": url, "Timeout": "5 parsecs"}), "Timeout"),
            (
                json!({"RemoteURL": url, "Authenticator": {"Type": "ext_basicauth"}}),
                "Authenticator",
            ),
            (
                json!({"RemoteURL": url, "Convert": {"Protocol": "influxdb"}}),
                "Convert.Protocol",
            ),
            (
                json!({"RemoteURL": url, "Convert": {"Encoding": "json"}, "Body": "protobuf"}),
                "Body",
            ),
            (
                json!({"RemoteURL": url, "Headers": {"X": "%{tag.db}"}}),
                "Headers.X",
            ),
            (
                json!({"RemoteURL": url, "TLS": {"CertFile": "/c.pem"}}),
                "TLS.KeyFile",
            ),
            (
                json!({"RemoteURL": url, "TLS": {"CAFile": "/nonexistent.pem"}}),
                "TLS.CAFile",
            ),
        ] {
            assert_eq!(field_error(detail.clone()), field, "{detail}");
        }
    }

    #[test]
    fn formats_follow_convert_and_body() {
        let url = "https://example.com/x";
        let f = |d: Value| output(d).format();
        assert_eq!(
            f(json!({"RemoteURL": url, "Tags": false})),
            Format::Json { tags: false }
        );
        assert_eq!(
            f(json!({"RemoteURL": url, "Body": "protobuf"})),
            Format::Protobuf
        );
        let pb = json!({"RemoteURL": url, "Convert": {"Encoding": "protobuf"}});
        assert_eq!(f(pb), Format::Protobuf);
        assert_eq!(
            f(json!({"RemoteURL": url, "Body": "msgpack"})),
            Format::Msgpack
        );
        let raw = json!({"RemoteURL": url, "Convert": {"Protocol": "raw", "Encoding": "custom"}});
        assert_eq!(
            f(raw),
            Format::Raw {
                key: Bytes::from_static(b"content")
            }
        );
    }

    #[test]
    fn go_durations_and_retry_after_dates_parse() {
        assert_eq!(go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(go_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(go_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(
            go_duration("10").is_err() && go_duration("").is_err() && go_duration("-1s").is_err()
        );
        let now = chrono::DateTime::parse_from_rfc2822("Sun, 06 Nov 1994 08:49:37 GMT")
            .unwrap()
            .timestamp();
        let at = |v| retry_after(v, now);
        assert_eq!(
            at("Sun, 06 Nov 1994 08:50:37 GMT"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            at("Sunday, 06-Nov-94 08:50:37 GMT"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            at("Sun Nov  6 08:50:37 1994"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(at("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(at("86400"), Some(MAX_RETRY_AFTER));
        assert_eq!(at("soon"), None);
    }

    /// A CA and what it signed, made at test time, with its PEM files in a temporary folder
    /// that is removed on drop.
    struct Pki {
        dir: std::path::PathBuf,
        ca: rustls::pki_types::CertificateDer<'static>,
        server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        server_key: Vec<u8>,
    }

    impl Pki {
        /// A CA, a server certificate for `localhost` and 127.0.0.1, and a client
        /// certificate; writes `ca.pem`, `client.pem` and `client.key`.
        fn new() -> Self {
            use rcgen::{
                BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
                KeyPair, KeyUsagePurpose,
            };
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
            ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            ca_params
                .distinguished_name
                .push(DnType::CommonName, "flusher_http test CA");
            ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let ca_key = KeyPair::generate().unwrap();
            let ca = ca_params.self_signed(&ca_key).unwrap();
            let issuer = Issuer::new(ca_params, ca_key);
            let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
                let mut params = CertificateParams::new(names).unwrap();
                params.distinguished_name.push(DnType::CommonName, "leaf");
                params.extended_key_usages = vec![usage];
                let key = KeyPair::generate().unwrap();
                (params.signed_by(&key, &issuer).unwrap(), key)
            };
            let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            let (server, server_key) = leaf(names, ExtendedKeyUsagePurpose::ServerAuth);
            let (client, client_key) = leaf(vec![], ExtendedKeyUsagePurpose::ClientAuth);
            let dir = std::env::temp_dir().join(format!(
                "flusher-http-tls-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let pki = Self {
                dir,
                ca: ca.der().clone(),
                server_chain: vec![server.der().clone(), ca.der().clone()],
                server_key: server_key.serialize_der(),
            };
            std::fs::write(pki.path("ca.pem"), ca.pem()).unwrap();
            std::fs::write(pki.path("client.pem"), client.pem()).unwrap();
            std::fs::write(pki.path("client.key"), client_key.serialize_pem()).unwrap();
            pki
        }

        fn path(&self, name: &str) -> String {
            self.dir.join(name).to_str().unwrap().to_string()
        }

        /// The server's TLS configuration (ring only), asking for a client certificate
        /// signed by the CA when `client_auth`.
        fn server_config(&self, client_auth: bool) -> Arc<rustls::ServerConfig> {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap();
            let builder = if client_auth {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(self.ca.clone()).unwrap();
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            } else {
                builder.with_no_client_auth()
            };
            let key = rustls::pki_types::PrivatePkcs8KeyDer::from(self.server_key.clone());
            Arc::new(
                builder
                    .with_single_cert(self.server_chain.clone(), key.into())
                    .unwrap(),
            )
        }
    }

    impl Drop for Pki {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// What the TLS test server saw on one connection.
    enum Seen {
        Request(Got),
        /// The handshake failed, with the server's side of why.
        Handshake(String),
    }

    /// A one-thread HTTPS (HTTP/1.1) server on 127.0.0.1 answering requests in order with
    /// the statuses of `script`; it stops when the script is done or after 10 s.
    fn serve_tls(
        config: Arc<rustls::ServerConfig>,
        script: Vec<u16>,
    ) -> (u16, mpsc::Receiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut script = script.into_iter().peekable();
            while script.peek().is_some() && Instant::now() < deadline {
                let mut tcp = match listener.accept() {
                    Ok((tcp, _)) => tcp,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(_) => return,
                };
                tcp.set_nonblocking(false).unwrap();
                tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                tcp.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut conn = rustls::ServerConnection::new(config.clone()).unwrap();
                let mut failed = None;
                while conn.is_handshaking() {
                    if let Err(e) = conn.complete_io(&mut tcp) {
                        failed = Some(e.to_string());
                        break;
                    }
                }
                if let Some(why) = failed {
                    let _ = tx.send(Seen::Handshake(why));
                    continue;
                }
                let mut r = BufReader::new(rustls::StreamOwned::new(conn, tcp));
                while let Some(got) = read_request(&mut r) {
                    let _ = tx.send(Seen::Request(got));
                    let Some(code) = script.next() else { return };
                    let text = format!("status {code}");
                    let out = r.get_mut();
                    let _ = write!(
                        out,
                        "HTTP/1.1 {code} X\r\nContent-Length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = out.flush();
                    if script.peek().is_none() {
                        // Let the answer go out before the connection closes.
                        out.conn.send_close_notify();
                        let _ = out.conn.complete_io(&mut out.sock);
                        return;
                    }
                }
            }
        });
        (port, rx)
    }

    /// The next thing the TLS server saw, within 5 s.
    fn seen(rx: &mpsc::Receiver<Seen>) -> Seen {
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the TLS server saw nothing")
    }

    fn ndjson_lines(body: &[u8]) -> usize {
        body.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
    }

    #[test]
    fn https_with_the_ca_file_delivers() {
        let pki = Pki::new();
        let (port, rx) = serve_tls(pki.server_config(false), vec![200]);
        let mut out = output(json!({
            "RemoteURL": format!("https://localhost:{port}/ingest"),
            "TLS": {"CAFile": pki.path("ca.pem")},
            "Timeout": "5s",
        }));
        out.write(&chunk(LINES, 3)).unwrap();
        match seen(&rx) {
            Seen::Request(got) => {
                assert!(
                    got.head.starts_with("POST /ingest HTTP/1.1\r\n"),
                    "{}",
                    got.head
                );
                assert_eq!(ndjson_lines(&got.body), 3);
            }
            Seen::Handshake(why) => panic!("handshake failed: {why}"),
        }
    }

    #[test]
    fn https_without_trusting_the_ca_is_retried_not_sent() {
        let pki = Pki::new();
        let (port, rx) = serve_tls(pki.server_config(false), vec![200]);
        // The bundled Mozilla roots do not know the test CA.
        let mut out = output(json!({
            "RemoteURL": format!("https://127.0.0.1:{port}/ingest"),
            "Timeout": "5s",
        }));
        match out.write(&chunk(LINES, 3)) {
            Err(WriteError::Retry { why, after: None }) => {
                assert!(why.to_ascii_lowercase().contains("certificate"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        match seen(&rx) {
            Seen::Handshake(_) => {}
            Seen::Request(got) => panic!("the request was sent: {}", got.head),
        }
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    }

    #[test]
    fn https_insecure_skip_verify_delivers() {
        let pki = Pki::new();
        let (port, rx) = serve_tls(pki.server_config(false), vec![200]);
        let mut out = output(json!({
            "RemoteURL": format!("https://127.0.0.1:{port}/ingest"),
            "TLS": {"InsecureSkipVerify": true},
            "Timeout": "5s",
        }));
        out.write(&chunk(LINES, 3)).unwrap();
        match seen(&rx) {
            Seen::Request(got) => assert_eq!(ndjson_lines(&got.body), 3),
            Seen::Handshake(why) => panic!("handshake failed: {why}"),
        }
    }

    #[test]
    fn client_certificates_are_presented() {
        let pki = Pki::new();
        let url = |port: u16| format!("https://127.0.0.1:{port}/ingest");

        let (port, rx) = serve_tls(pki.server_config(true), vec![200]);
        let mut out = output(json!({
            "RemoteURL": url(port),
            "TLS": {
                "CAFile": pki.path("ca.pem"),
                "CertFile": pki.path("client.pem"),
                "KeyFile": pki.path("client.key"),
            },
            "Timeout": "5s",
        }));
        out.write(&chunk(LINES, 3)).unwrap();
        match seen(&rx) {
            Seen::Request(got) => assert_eq!(ndjson_lines(&got.body), 3),
            Seen::Handshake(why) => panic!("handshake failed: {why}"),
        }

        // Without one the server refuses the handshake, and the write is retried (not
        // unrecoverable): with TLS 1.3 the client has finished its side and sent the request
        // when the server's alert comes, so what it reports is a race between that alert
        // (`certificate required`) and the closed socket (`Broken pipe`, `reset`); all of
        // them are transport failures.
        let (port, rx) = serve_tls(pki.server_config(true), vec![200]);
        let mut out = output(json!({
            "RemoteURL": url(port),
            "TLS": {"CAFile": pki.path("ca.pem")},
            "Timeout": "5s",
        }));
        match out.write(&chunk(LINES, 3)) {
            Err(WriteError::Retry { why, after: None }) => {
                assert!(why.starts_with(&format!("POST {}: ", url(port))), "{why}")
            }
            other => panic!("{other:?}"),
        }
        match seen(&rx) {
            Seen::Handshake(why) => assert!(why.contains("no certificates"), "{why}"),
            Seen::Request(got) => panic!("served without a client certificate: {}", got.head),
        }
    }
}
