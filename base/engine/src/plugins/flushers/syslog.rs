//! `flusher_syslog`: each record as one syslog message (RFC 5424 or RFC 3164) over UDP
//! (RFC 5426, a datagram per message), TCP (RFC 6587) or TLS (RFC 5425).
//!
//! The options are Fluent Bit's `out_syslog` ones in PascalCase without the `syslog_` prefix
//! (iLogtail has no syslog flusher): `Mode`, `Format`, `MaxSize`, `SeverityKey` /
//! `SeverityPreset`, `FacilityKey` / `FacilityPreset`, `HostnameKey` / `HostnamePreset`,
//! `AppnameKey` / `AppnamePreset`, `ProcidKey` / `ProcidPreset`, `MsgidKey` / `MsgidPreset`,
//! `SdKeys`, `MessageKey`, `AllowLongerSdId`; ours: `Address`, `Framing`, `Bom`, `LocalTime`,
//! `TimeoutMs`, `CloseCheckMs` and `TLS` (tlscommon names, see [`super::net`]). Where they
//! differ from Fluent Bit: `Mode` defaults to `tcp` (not `udp`: nothing lost by default),
//! `MessageKey` to `content` (the input's line), the hostname to the agent's, the BOM is
//! written only with `Bom: true`, TCP framing is octet counting for RFC 5424 (Fluent Bit only
//! writes newline framing), and a message starting with `<` is formatted like any other (not
//! passed through).
//!
//! **Fields.** A `...Key` names the content whose value fills that part of the message (the
//! first such content wins; `__tag__:<key>` names a group tag instead); the `...Preset` is
//! used when the record has none. Severity and facility are numbers (0-7, 0-23) or names
//! (`err`, `warning`, `local0`, ...; case-insensitive); a value that is neither takes the
//! preset and is counted in the `SYSLOG_FIELD_ALARM` alarm.
//!
//! **Structured data** (RFC 5424 only). Each `SdKeys` entry is an SD-ID (`origin`,
//! `meta@32473`); a content named `<SD-ID>.<PARAM-NAME>` becomes a parameter of that element:
//! contents `meta@32473.iut = 3` and `meta@32473.src = app` give `[meta@32473 iut="3"
//! src="app"]`. An SD-ID with no such content in a record is left out; none at all writes the
//! NILVALUE `-`. (Fluent Bit reads SD from map values, which our flat contents cannot hold.)
//! Values are escaped (`"`, `\` and `]` get a `\`), invalid UTF-8 replaced by U+FFFD; names
//! longer than 32 bytes are cut unless `AllowLongerSdId`, and `=`, space, `]`, `"` and
//! non-printable bytes in them become `_`.
//!
//! **Header fields** are cut to RFC 5424's lengths (HOSTNAME 255, APP-NAME 48, PROCID 128,
//! MSGID 32) and each character outside printable US-ASCII becomes `_`; an empty or absent
//! one is the NILVALUE `-`. The timestamp is UTC with microseconds (`...T22:14:15.003000Z`),
//! or the local time with its offset under `LocalTime`. RFC 3164 writes `Mmm dd hh:mm:ss` (UTC
//! unless `LocalTime`), the hostname, and `TAG[PID]: ` when there is an app name (TAG cut to
//! 32 characters of `[A-Za-z0-9_./-]`, others becoming `_`).
//!
//! **Size.** A message longer than `MaxSize` bytes (default 2048 for RFC 5424 and 1024 for RFC
//! 3164, as Fluent Bit; framing not included) is cut there, at a character boundary, and
//! counted in the `SYSLOG_MESSAGE_CUT_ALARM` alarm.
//!
//! **Framing.** Records are encoded as they are buffered ([`Format::Custom`]), each as a whole
//! frame: octet counting (`MSG-LEN SP SYSLOG-MSG`, RFC 6587 3.4.1; the default for RFC 5424)
//! or non-transparent (`SYSLOG-MSG LF`, 3.4.2; the default for RFC 3164, and what most RFC
//! 3164 receivers read), where an LF inside a message becomes a space. A TCP write sends the
//! chunk as it is. For UDP the chunk always holds octet-counted frames and each message is
//! sent without its length as one datagram (`Framing` is refused with UDP).
//!
//! **Delivery.** Syslog has no acknowledgements, so a chunk counts as delivered when: the
//! connection was not closed by the peer before the write (checked, TLS records read, so a
//! dead receiver costs no chunk), every byte was written, the peer's TCP acknowledged every
//! byte (Linux `SIOCOUTQ`, at most `TimeoutMs`), and the connection is still open
//! `CloseCheckMs` later. Any failure drops the connection and the whole chunk is retried on a
//! new one after the `Retry` back-off: what the receiver already took is then sent again
//! (duplicates, never a loss we could see). The residual risk: a receiver that stalls longer
//! than `CloseCheckMs` with bytes its kernel acknowledged but it never read, and then dies,
//! loses those bytes without our knowing. The wait costs each chunk up to the receiver's
//! delayed ACK (at most 40 ms on Linux) plus `CloseCheckMs`: negligible with the default 8 MiB
//! chunks, a limit for tiny chunks flushed often (raise `Concurrency` then). Over UDP a chunk is delivered once every datagram
//! was handed to the kernel; a datagram the network or the receiver drops is not seen (an ICMP
//! refusal on the next send retries the chunk).

use super::net::{self, Stream, TlsOptions};
use crate::api::prelude::*;
use crate::encode::{put_decimal, with_contents, Encoder};
use std::borrow::Cow;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

/// The syslog port (RFC 5426 / 6587).
const PORT: u16 = 514;
/// The syslog-over-TLS port (RFC 5425).
const TLS_PORT: u16 = 6514;
/// The largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;
/// The NILVALUE.
const NIL: &[u8] = b"-";
/// The UTF-8 byte order mark that starts an RFC 5424 MSG-UTF8.
const BOM: &[u8] = b"\xEF\xBB\xBF";
/// Alarm for messages cut at `MaxSize`.
const CUT_ALARM: AlarmType = AlarmType::Plugin("SYSLOG_MESSAGE_CUT_ALARM");
/// Alarm for severity / facility values that are neither a number nor a name.
const FIELD_ALARM: AlarmType = AlarmType::Plugin("SYSLOG_FIELD_ALARM");

/// Options of `flusher_syslog`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Options {
    /// `host:port` of the receiver; the port defaults to 514 (6514 with TLS).
    #[serde(default)]
    address: String,
    /// `tcp` (default), `tls` or `udp`.
    #[serde(default)]
    mode: Option<String>,
    /// `rfc5424` (default) or `rfc3164`.
    #[serde(default)]
    format: Option<String>,
    /// `octet-counting` (default for RFC 5424) or `non-transparent` (for RFC 3164).
    #[serde(default)]
    framing: Option<String>,
    /// Bytes per message, framing excluded (default 2048 for RFC 5424, 1024 for RFC 3164).
    #[serde(default)]
    max_size: Option<u64>,
    /// Content with the severity (a number 0-7 or a name).
    #[serde(default)]
    severity_key: Option<String>,
    /// Severity when the record has none: a number or a name. Default 6 (`info`).
    #[serde(default)]
    severity_preset: Option<Value>,
    /// Content with the facility (a number 0-23 or a name).
    #[serde(default)]
    facility_key: Option<String>,
    /// Facility when the record has none: a number or a name. Default 1 (`user`).
    #[serde(default)]
    facility_preset: Option<Value>,
    /// Content with the HOSTNAME.
    #[serde(default)]
    hostname_key: Option<String>,
    /// HOSTNAME when the record has none (default: the agent's host name).
    #[serde(default)]
    hostname_preset: Option<String>,
    /// Content with the APP-NAME (RFC 3164: the TAG).
    #[serde(default)]
    appname_key: Option<String>,
    /// APP-NAME when the record has none.
    #[serde(default)]
    appname_preset: Option<String>,
    /// Content with the PROCID.
    #[serde(default)]
    procid_key: Option<String>,
    /// PROCID when the record has none.
    #[serde(default)]
    procid_preset: Option<String>,
    /// Content with the MSGID (RFC 5424 only).
    #[serde(default)]
    msgid_key: Option<String>,
    /// MSGID when the record has none.
    #[serde(default)]
    msgid_preset: Option<String>,
    /// SD-IDs whose parameters are the contents named `<SD-ID>.<PARAM-NAME>`.
    #[serde(default)]
    sd_keys: Vec<String>,
    /// Content with the MSG. Default `content`.
    #[serde(default)]
    message_key: Option<String>,
    /// SD-IDs and parameter names longer than 32 bytes are kept (against RFC 5424).
    #[serde(default)]
    allow_longer_sd_id: bool,
    /// RFC 5424: start the MSG with the UTF-8 BOM (Fluent Bit always does). Default false.
    #[serde(default)]
    bom: bool,
    /// Timestamps in local time (RFC 5424 with the offset) instead of UTC.
    #[serde(default)]
    local_time: bool,
    /// Connect, TLS handshake, each write, and the wait for the peer's TCP acknowledgement.
    /// Default 5000.
    #[serde(default)]
    timeout_ms: Option<u64>,
    /// How long the connection must stay open after a chunk was acknowledged for it to count
    /// as delivered (0: checked at once). Default 10.
    #[serde(default)]
    close_check_ms: Option<u64>,
    /// TLS (also turned on by `Mode: tls`).
    #[serde(default, rename = "TLS")]
    tls: TlsOptions,
}

/// How messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Udp,
    Tcp,
    Tls,
}

/// RFC 6587 framing of a chunk's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    OctetCounting,
    NonTransparent,
}

/// Encodes records as syslog frames (the chunk body is what a TCP write sends).
#[derive(Debug)]
struct SyslogEncoder {
    /// Every option below, for [`Encoder::key`].
    key: String,
    rfc5424: bool,
    framing: Framing,
    max_size: usize,
    bom: bool,
    local_time: bool,
    allow_long_sd: bool,
    severity: Part<u8>,
    facility: Part<u8>,
    hostname: Part<Vec<u8>>,
    appname: Part<Vec<u8>>,
    procid: Part<Vec<u8>>,
    msgid: Part<Vec<u8>>,
    message: Bytes,
    sd_ids: Vec<Vec<u8>>,
    /// For the alarms (cut messages, bad severities).
    cx: PluginContext,
    /// Messages cut at `MaxSize` since the start (each alarm says the total).
    cut_total: std::sync::atomic::AtomicU64,
}

/// One part of the message: the field it comes from and its value when the field is absent.
#[derive(Debug, Clone)]
struct Part<T> {
    key: Option<Bytes>,
    preset: Option<T>,
}

impl<T> Part<T> {
    fn new(key: Option<String>, preset: Option<T>) -> Self {
        Self {
            key: key.filter(|k| !k.is_empty()).map(Bytes::from),
            preset,
        }
    }

    /// The group tag this part reads (`__tag__:<key>`), if it reads one.
    fn tag_key(&self) -> Option<&[u8]> {
        self.key.as_deref()?.strip_prefix(b"__tag__:")
    }
}

/// The values of one record's parts (borrowed from its contents or the group's tags).
#[derive(Default)]
struct Fields<'a> {
    severity: Option<&'a [u8]>,
    facility: Option<&'a [u8]>,
    hostname: Option<&'a [u8]>,
    appname: Option<&'a [u8]>,
    procid: Option<&'a [u8]>,
    msgid: Option<&'a [u8]>,
    message: Option<&'a [u8]>,
}

pub(crate) fn build(detail: &Value, cx: &PluginContext) -> Result<Box<dyn Output>, DetailError> {
    let o: Options = parse_detail(detail)?;
    let mode = match o.mode.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("tcp") if o.tls.enabled => Mode::Tls,
        None | Some("tcp") => Mode::Tcp,
        Some("tls") => Mode::Tls,
        Some("udp") => Mode::Udp,
        Some("dtls") => return Err(DetailError::new("Mode", "dtls is not supported")),
        Some(other) => {
            let why = format!("`{other}` is not one of tcp, tls, udp");
            return Err(DetailError::new("Mode", why));
        }
    };
    if mode == Mode::Udp && o.tls.enabled {
        return Err(DetailError::new("TLS.Enabled", "not with Mode udp"));
    }
    let rfc5424 = match o.format.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("rfc5424") => true,
        Some("rfc3164") => false,
        Some(other) => {
            let why = format!("`{other}` is not one of rfc5424, rfc3164");
            return Err(DetailError::new("Format", why));
        }
    };
    let framing = match (mode, o.framing.as_deref()) {
        (Mode::Udp, Some(_)) => {
            let why = "not with Mode udp: each message is one datagram";
            return Err(DetailError::new("Framing", why));
        }
        (Mode::Udp, None) => Framing::OctetCounting,
        (_, None) if rfc5424 => Framing::OctetCounting,
        (_, None) => Framing::NonTransparent,
        (_, Some("octet-counting" | "octet_counting")) => Framing::OctetCounting,
        (_, Some("non-transparent" | "non_transparent" | "newline")) => Framing::NonTransparent,
        (_, Some(other)) => {
            let why = format!("`{other}` is not one of octet-counting, non-transparent");
            return Err(DetailError::new("Framing", why));
        }
    };
    let max_size = match o.max_size {
        None | Some(0) if rfc5424 => 2048,
        None | Some(0) => 1024,
        Some(n) if n < 64 => return Err(DetailError::new("MaxSize", "at least 64 bytes")),
        Some(n) if n > 1 << 30 => return Err(DetailError::new("MaxSize", "at most 1 GiB")),
        Some(n) if mode == Mode::Udp && n > MAX_DATAGRAM as u64 => {
            let why = format!("at most {MAX_DATAGRAM} bytes with Mode udp (one datagram)");
            return Err(DetailError::new("MaxSize", why));
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    };
    let severity = match &o.severity_preset {
        None => 6,
        Some(v) => preset(v, severity).ok_or_else(|| {
            DetailError::new(
                "SeverityPreset",
                format!("{v} is not 0-7 or a severity name"),
            )
        })?,
    };
    let facility = match &o.facility_preset {
        None => 1,
        Some(v) => preset(v, facility).ok_or_else(|| {
            DetailError::new(
                "FacilityPreset",
                format!("{v} is not 0-23 or a facility name"),
            )
        })?,
    };
    let mut sd_ids = Vec::with_capacity(o.sd_keys.len());
    for (i, id) in o.sd_keys.iter().enumerate() {
        let bad = id.is_empty()
            || !id.bytes().all(sd_name_byte)
            || (id.len() > 32 && !o.allow_longer_sd_id);
        if bad {
            let why = format!(
                "`{id}` is not an SD-ID (1 to 32 printable US-ASCII characters but `=`, space, `]`, `\"`)"
            );
            return Err(DetailError::new(format!("SdKeys[{i}]"), why));
        }
        if !rfc5424 {
            return Err(DetailError::new("SdKeys", "only with Format rfc5424"));
        }
        // An SD-ID appears once per message, and a content feeds one SD-ID only.
        if let Some(other) = o.sd_keys[..i].iter().find(|o| {
            *o == id || id.starts_with(&format!("{o}.")) || o.starts_with(&format!("{id}."))
        }) {
            let why = format!("`{id}` repeats or nests with `{other}`");
            return Err(DetailError::new(format!("SdKeys[{i}]"), why));
        }
        sd_ids.push(id.as_bytes().to_vec());
    }
    if !rfc5424 && (o.msgid_key.is_some() || o.msgid_preset.is_some()) {
        let field = if o.msgid_key.is_some() {
            "MsgidKey"
        } else {
            "MsgidPreset"
        };
        return Err(DetailError::new(field, "only with Format rfc5424"));
    }
    if !rfc5424 && o.bom {
        return Err(DetailError::new("Bom", "only with Format rfc5424"));
    }
    let (host, port) = if o.address.is_empty() {
        return Err(DetailError::new("Address", "is required (host:port)"));
    } else {
        let default = if mode == Mode::Tls { TLS_PORT } else { PORT };
        net::host_port(&o.address, default).map_err(|e| DetailError::new("Address", e))?
    };
    let tls = match mode {
        Mode::Tls => Some(net::client_config(&o.tls, "TLS")?),
        _ => None,
    };
    let hostname_preset = o
        .hostname_preset
        .clone()
        .or_else(|| Some(cx.host.hostname.clone()).filter(|h| !h.is_empty()));
    let message = o.message_key.clone().unwrap_or_else(|| "content".into());
    let bytes = |s: Option<String>| s.map(String::into_bytes);
    let key = format!(
        "syslog {rfc5424} {framing:?} {max_size} {} {} {} {severity} {facility} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {message:?} {:?} {}",
        o.bom,
        o.local_time,
        o.allow_longer_sd_id,
        (&o.severity_key, &o.facility_key),
        (&o.hostname_key, &hostname_preset),
        &o.appname_key,
        &o.appname_preset,
        &o.procid_key,
        &o.procid_preset,
        &o.msgid_key,
        &o.msgid_preset,
        o.sd_keys,
        mode == Mode::Udp,
    );
    let encoder = SyslogEncoder {
        key,
        rfc5424,
        framing,
        max_size,
        bom: o.bom,
        local_time: o.local_time,
        allow_long_sd: o.allow_longer_sd_id,
        severity: Part::new(o.severity_key, Some(severity)),
        facility: Part::new(o.facility_key, Some(facility)),
        hostname: Part::new(o.hostname_key, bytes(hostname_preset)),
        appname: Part::new(o.appname_key, bytes(o.appname_preset)),
        procid: Part::new(o.procid_key, bytes(o.procid_preset)),
        msgid: Part::new(o.msgid_key, bytes(o.msgid_preset)),
        message: Bytes::from(message),
        sd_ids,
        cx: cx.detached(),
        cut_total: Default::default(),
    };
    let ms = |v: Option<u64>, default: u64| Duration::from_millis(v.unwrap_or(default));
    let timeout = ms(o.timeout_ms, 5000).max(Duration::from_millis(1));
    Ok(Box::new(SyslogOutput {
        encoder: Arc::new(encoder),
        mode,
        host,
        port,
        tls,
        server_name: o.tls.server_name,
        timeout,
        close_check: ms(o.close_check_ms, 10),
        stream: None,
        udp: None,
    }))
}

/// A preset given as a number or a name.
fn preset(v: &Value, parse: fn(&[u8]) -> Option<u8>) -> Option<u8> {
    match v {
        Value::Number(n) => parse(n.to_string().as_bytes()),
        Value::String(s) => parse(s.as_bytes()),
        _ => None,
    }
}

/// A severity: 0-7 or a name (RFC 5424 table 2, with the usual spellings).
fn severity(v: &[u8]) -> Option<u8> {
    let v = v.trim_ascii();
    if let Some(n) = number(v) {
        return (n <= 7).then_some(n as u8);
    }
    const NAMES: [(&[u8], u8); 15] = [
        (b"emerg", 0),
        (b"emergency", 0),
        (b"panic", 0),
        (b"alert", 1),
        (b"crit", 2),
        (b"critical", 2),
        (b"err", 3),
        (b"error", 3),
        (b"warning", 4),
        (b"warn", 4),
        (b"notice", 5),
        (b"info", 6),
        (b"informational", 6),
        (b"information", 6),
        (b"debug", 7),
    ];
    NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(v))
        .map(|(_, s)| *s)
}

/// A facility: 0-23 or a name (Fluent Bit's table, with `audit` 13 and `clock` 15).
fn facility(v: &[u8]) -> Option<u8> {
    let v = v.trim_ascii();
    if let Some(n) = number(v) {
        return (n <= 23).then_some(n as u8);
    }
    const NAMES: [(&[u8], u8); 25] = [
        (b"kern", 0),
        (b"user", 1),
        (b"mail", 2),
        (b"daemon", 3),
        (b"auth", 4),
        (b"syslog", 5),
        (b"lpr", 6),
        (b"news", 7),
        (b"uucp", 8),
        (b"cron", 9),
        (b"authpriv", 10),
        (b"ftp", 11),
        (b"ntp", 12),
        (b"security", 13),
        (b"audit", 13),
        (b"console", 14),
        (b"clock", 15),
        (b"local0", 16),
        (b"local1", 17),
        (b"local2", 18),
        (b"local3", 19),
        (b"local4", 20),
        (b"local5", 21),
        (b"local6", 22),
        (b"local7", 23),
    ];
    NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(v))
        .map(|(_, s)| *s)
}

/// A small decimal number (at most 3 digits).
fn number(v: &[u8]) -> Option<u32> {
    if v.is_empty() || v.len() > 3 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
}

/// Printable US-ASCII but `=`, space, `]` and `"` (RFC 5424 SD-NAME).
fn sd_name_byte(b: u8) -> bool {
    (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"')
}

/// Appends `v` as a header field: at most `max` bytes, each character outside printable
/// US-ASCII (or one `allowed` refuses) written as `_`; the NILVALUE when empty.
fn header_field(out: &mut Vec<u8>, v: Option<&[u8]>, max: usize, allowed: fn(u8) -> bool) {
    let start = out.len();
    for &b in v.unwrap_or_default() {
        if out.len() - start >= max {
            break;
        }
        match b {
            // A UTF-8 continuation byte: its character already became `_`.
            0x80..=0xBF => {}
            b if allowed(b) => out.push(b),
            _ => out.push(b'_'),
        }
    }
    if out.len() == start {
        out.extend_from_slice(NIL);
    }
}

fn printable(b: u8) -> bool {
    (33..=126).contains(&b)
}

/// RFC 3164 TAG characters (what receivers' parsers accept).
fn tag_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-')
}

/// RFC 3164 PID characters: printable but `]`.
fn pid_byte(b: u8) -> bool {
    printable(b) && b != b']'
}

/// The date and time of one second, formatted once for all events of that second.
struct Clock {
    local_time: bool,
    sec: Option<i64>,
    /// `YYYY-MM-DDTHH:MM:SS` (RFC 5424) or `Mmm dd hh:mm:ss` (RFC 3164).
    text: Vec<u8>,
    /// `Z` or `+hh:mm` (RFC 5424).
    offset: Vec<u8>,
}

impl Clock {
    fn new(local_time: bool) -> Self {
        Self {
            local_time,
            sec: None,
            text: Vec::with_capacity(19),
            offset: Vec::with_capacity(6),
        }
    }

    fn set(&mut self, sec: i64, rfc5424: bool) {
        if self.sec == Some(sec) {
            return;
        }
        self.sec = Some(sec);
        let off = if self.local_time {
            local_offset(sec)
        } else {
            0
        };
        let t = sec + i64::from(off);
        let (y, mo, d) = civil(t.div_euclid(86_400));
        let s = t.rem_euclid(86_400);
        let (h, mi, s) = (s / 3600, s / 60 % 60, s % 60);
        self.text.clear();
        let two = |out: &mut Vec<u8>, v: i64| {
            out.push(b'0' + (v / 10 % 10) as u8);
            out.push(b'0' + (v % 10) as u8);
        };
        if rfc5424 {
            let y = y.clamp(0, 9999);
            two(&mut self.text, y / 100);
            two(&mut self.text, y % 100);
            self.text.push(b'-');
            two(&mut self.text, i64::from(mo));
            self.text.push(b'-');
            two(&mut self.text, i64::from(d));
            self.text.push(b'T');
        } else {
            const MON: [&[u8]; 12] = [
                b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct",
                b"Nov", b"Dec",
            ];
            self.text
                .extend_from_slice(MON[(mo as usize).clamp(1, 12) - 1]);
            self.text.push(b' ');
            self.text
                .push(if d < 10 { b' ' } else { b'0' + (d / 10) as u8 });
            self.text.push(b'0' + (d % 10) as u8);
            self.text.push(b' ');
        }
        two(&mut self.text, h);
        self.text.push(b':');
        two(&mut self.text, mi);
        self.text.push(b':');
        two(&mut self.text, s);
        self.offset.clear();
        if off == 0 {
            self.offset.push(b'Z');
        } else {
            self.offset.push(if off < 0 { b'-' } else { b'+' });
            let m = i64::from(off.unsigned_abs() / 60);
            two(&mut self.offset, m / 60);
            self.offset.push(b':');
            two(&mut self.offset, m % 60);
        }
    }
}

/// The local time's offset from UTC at `sec`, in seconds.
fn local_offset(sec: i64) -> i32 {
    use chrono::{Offset, TimeZone};
    chrono::Local
        .timestamp_opt(sec, 0)
        .single()
        .map_or(0, |d| d.offset().fix().local_minus_utc())
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A content that is a structured-data parameter: of SD-ID `id` (an index in `SdKeys`), at
/// `content` in the record, its name starting at `name_at` of the key.
struct SdParam {
    id: usize,
    content: usize,
    name_at: usize,
}

/// What one group's encoding counted, for the alarms, and its clock.
struct Counts {
    clock: Clock,
    cut: u64,
    bad_fields: u64,
}

impl SyslogEncoder {
    /// Reads this record's parts from its contents (the group's tags were read already).
    fn fields<'a>(
        &self,
        contents: &'a [(Bytes, Bytes)],
        tags: &Fields<'a>,
        sd: &mut Vec<SdParam>,
    ) -> Fields<'a> {
        let mut f = Fields {
            severity: tags.severity,
            facility: tags.facility,
            hostname: tags.hostname,
            appname: tags.appname,
            procid: tags.procid,
            msgid: tags.msgid,
            message: tags.message,
        };
        for (at, (k, v)) in contents.iter().enumerate() {
            let (k, v) = (k.as_ref(), v.as_ref());
            let take = |part: Option<&Bytes>, slot: &mut Option<&'a [u8]>| {
                if slot.is_none() && part.is_some_and(|p| p.as_ref() == k) {
                    *slot = Some(v);
                    true
                } else {
                    false
                }
            };
            let _ = take(Some(&self.message), &mut f.message)
                || take(self.severity.key.as_ref(), &mut f.severity)
                || take(self.facility.key.as_ref(), &mut f.facility)
                || take(self.hostname.key.as_ref(), &mut f.hostname)
                || take(self.appname.key.as_ref(), &mut f.appname)
                || take(self.procid.key.as_ref(), &mut f.procid)
                || take(self.msgid.key.as_ref(), &mut f.msgid);
            for (i, id) in self.sd_ids.iter().enumerate() {
                let named = k.len() > id.len() + 1 && k.starts_with(id) && k[id.len()] == b'.';
                if named {
                    sd.push(SdParam {
                        id: i,
                        content: at,
                        name_at: id.len() + 1,
                    });
                }
            }
        }
        f
    }

    /// The group tags some parts read.
    fn tag_fields<'a>(&self, group: &'a EventGroup) -> Fields<'a> {
        let tag = |p: Option<&[u8]>| p.and_then(|k| group.tag(k)).map(|v| v.as_ref());
        Fields {
            severity: tag(self.severity.tag_key()),
            facility: tag(self.facility.tag_key()),
            hostname: tag(self.hostname.tag_key()),
            appname: tag(self.appname.tag_key()),
            procid: tag(self.procid.tag_key()),
            msgid: tag(self.msgid.tag_key()),
            message: tag(self.message.strip_prefix(b"__tag__:")),
        }
    }

    /// Appends one syslog message (no framing) to `msg`.
    fn message(
        &self,
        msg: &mut Vec<u8>,
        e: &LogEvent,
        f: &Fields<'_>,
        contents: &[(Bytes, Bytes)],
        sd: &mut [SdParam],
        counts: &mut Counts,
    ) {
        let mut pick = |v: Option<&[u8]>, parse: fn(&[u8]) -> Option<u8>, preset: u8| match v {
            None => preset,
            Some(v) => parse(v).unwrap_or_else(|| {
                counts.bad_fields += 1;
                preset
            }),
        };
        let sev = pick(f.severity, severity, self.severity.preset.unwrap_or(6));
        let fac = pick(f.facility, facility, self.facility.preset.unwrap_or(1));
        msg.push(b'<');
        put_decimal(msg, u32::from(fac) * 8 + u32::from(sev));
        msg.push(b'>');
        let clock = &mut counts.clock;
        clock.set(i64::from(e.time), self.rfc5424);
        let hostname = f.hostname.or(self.hostname.preset.as_deref());
        let appname = f.appname.or(self.appname.preset.as_deref());
        let procid = f.procid.or(self.procid.preset.as_deref());
        if self.rfc5424 {
            msg.extend_from_slice(b"1 ");
            msg.extend_from_slice(&clock.text);
            msg.push(b'.');
            let micros = e.time_ns.unwrap_or(0).min(999_999_999) / 1000;
            let mut digits = [b'0'; 6];
            let mut m = micros;
            for d in digits.iter_mut().rev() {
                *d = b'0' + (m % 10) as u8;
                m /= 10;
            }
            msg.extend_from_slice(&digits);
            msg.extend_from_slice(&clock.offset);
            msg.push(b' ');
            header_field(msg, hostname, 255, printable);
            msg.push(b' ');
            header_field(msg, appname, 48, printable);
            msg.push(b' ');
            header_field(msg, procid, 128, printable);
            msg.push(b' ');
            header_field(msg, f.msgid.or(self.msgid.preset.as_deref()), 32, printable);
            msg.push(b' ');
            self.structured_data(msg, contents, sd);
            if let Some(m) = f.message {
                msg.push(b' ');
                if self.bom {
                    msg.extend_from_slice(BOM);
                }
                msg.extend_from_slice(m);
            }
        } else {
            msg.extend_from_slice(&clock.text);
            msg.push(b' ');
            header_field(msg, hostname, 255, printable);
            msg.push(b' ');
            if appname.is_some_and(|a| !a.is_empty()) {
                header_field(msg, appname, 32, tag_byte);
                if procid.is_some_and(|p| !p.is_empty()) {
                    msg.push(b'[');
                    header_field(msg, procid, 128, pid_byte);
                    msg.push(b']');
                }
                msg.extend_from_slice(b": ");
            }
            msg.extend_from_slice(f.message.unwrap_or_default());
        }
    }

    /// Appends the STRUCTURED-DATA: the elements of `SdKeys` in order, or the NILVALUE.
    fn structured_data(&self, out: &mut Vec<u8>, contents: &[(Bytes, Bytes)], sd: &mut [SdParam]) {
        if sd.is_empty() {
            out.extend_from_slice(NIL);
            return;
        }
        sd.sort_by_key(|p| p.id);
        let name_max = if self.allow_long_sd { usize::MAX } else { 32 };
        let mut open: Option<usize> = None;
        for p in sd.iter() {
            let (i, (k, value)) = (p.id, &contents[p.content]);
            let param = &k[p.name_at..];
            if open != Some(i) {
                if open.is_some() {
                    out.push(b']');
                }
                out.push(b'[');
                out.extend_from_slice(&self.sd_ids[i]);
                open = Some(i);
            }
            out.push(b' ');
            for &b in param.iter().take(name_max) {
                out.push(if sd_name_byte(b) { b } else { b'_' });
            }
            out.extend_from_slice(b"=\"");
            let value: Cow<'_, str> = String::from_utf8_lossy(value);
            for &b in value.as_bytes() {
                if matches!(b, b'"' | b'\\' | b']') {
                    out.push(b'\\');
                }
                out.push(b);
            }
            out.push(b'"');
        }
        out.push(b']');
    }

    /// Frames `msg` into `out` after cutting it to `MaxSize`.
    fn frame(&self, out: &mut Vec<u8>, msg: &mut Vec<u8>, counts: &mut Counts) {
        if msg.len() > self.max_size {
            let mut end = self.max_size;
            while end > 0 && msg[end] & 0xC0 == 0x80 {
                end -= 1;
            }
            msg.truncate(end);
            counts.cut += 1;
        }
        match self.framing {
            Framing::OctetCounting => {
                put_decimal(out, msg.len() as u32);
                out.push(b' ');
                out.extend_from_slice(msg);
            }
            Framing::NonTransparent => {
                let start = out.len();
                out.extend_from_slice(msg);
                for b in &mut out[start..] {
                    if *b == b'\n' {
                        *b = b' ';
                    }
                }
                out.push(b'\n');
            }
        }
    }
}

impl Encoder for SyslogEncoder {
    fn key(&self) -> &str {
        &self.key
    }

    fn encode(&self, group: &EventGroup, out: &mut Vec<u8>) -> usize {
        let tags = self.tag_fields(group);
        let mut counts = Counts {
            clock: Clock::new(self.local_time),
            cut: 0,
            bad_fields: 0,
        };
        let mut msg = Vec::with_capacity(256);
        let mut sd = Vec::new();
        for e in &group.events {
            with_contents(e, |contents| {
                sd.clear();
                let f = self.fields(contents, &tags, &mut sd);
                msg.clear();
                self.message(&mut msg, e, &f, contents, &mut sd, &mut counts);
                self.frame(out, &mut msg, &mut counts);
                sd.clear();
            });
        }
        if counts.cut > 0 {
            let total = self
                .cut_total
                .fetch_add(counts.cut, std::sync::atomic::Ordering::Relaxed)
                + counts.cut;
            let why = format!(
                "{} messages longer than MaxSize ({} bytes) were cut ({total} since the start)",
                counts.cut, self.max_size
            );
            self.cx.alarm(CUT_ALARM, Level::Warning, why);
        }
        if counts.bad_fields > 0 {
            let why = format!(
                "{} severity or facility values were neither a number nor a name: the preset was used",
                counts.bad_fields
            );
            self.cx.alarm(FIELD_ALARM, Level::Warning, why);
        }
        group.events.len()
    }
}

/// Sends chunks of syslog frames over one connection (TCP, TLS) or socket (UDP).
struct SyslogOutput {
    encoder: Arc<SyslogEncoder>,
    mode: Mode,
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    server_name: String,
    timeout: Duration,
    close_check: Duration,
    stream: Option<Stream>,
    udp: Option<UdpSocket>,
}

impl SyslogOutput {
    fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The TCP / TLS write described in the module docs.
    fn write_stream(&mut self, body: &[u8]) -> Result<(), String> {
        if self.stream.as_mut().is_some_and(Stream::closed_by_peer) {
            if let Some(s) = self.stream.take() {
                s.close();
            }
        }
        let s = match &mut self.stream {
            Some(s) => s,
            None => self.stream.insert(net::connect(
                &self.host,
                self.port,
                self.timeout,
                self.tls.as_ref(),
                &self.server_name,
            )?),
        };
        s.write_all(body)
            .and_then(|()| s.flush())
            .map_err(|e| format!("write: {e}"))?;
        s.wait_acked(self.timeout)?;
        if !self.close_check.is_zero() {
            std::thread::sleep(self.close_check);
        }
        if s.closed_by_peer() {
            return Err("the receiver closed the connection right after the write".into());
        }
        Ok(())
    }

    /// The UDP write: each frame's message as one datagram.
    fn write_udp(&mut self, body: &[u8]) -> Result<(), WriteError> {
        let sock = match &self.udp {
            Some(s) => s,
            None => {
                let s = udp_socket(&self.host, self.port, self.timeout)
                    .map_err(|e| WriteError::retry(format!("{}: {e}", self.address())))?;
                self.udp.insert(s)
            }
        };
        for m in messages(body) {
            let m = m.map_err(WriteError::Unrecoverable)?;
            if let Err(e) = sock.send(m) {
                self.udp = None;
                return Err(WriteError::retry(format!(
                    "{}: send: {e} (the whole chunk is sent again)",
                    self.address()
                )));
            }
        }
        Ok(())
    }
}

/// A UDP socket connected to `host:port` (the first address that works).
fn udp_socket(host: &str, port: u16, timeout: Duration) -> std::io::Result<UdpSocket> {
    let mut last = None;
    for a in (host, port).to_socket_addrs()? {
        let any: SocketAddr = if a.is_ipv4() {
            ([0u8; 4], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        match UdpSocket::bind(any).and_then(|s| s.connect(a).map(|()| s)) {
            Ok(s) => {
                s.set_write_timeout(Some(timeout))?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no address")))
}

/// The messages of a body of octet-counted frames.
fn messages(mut body: &[u8]) -> impl Iterator<Item = Result<&[u8], String>> {
    std::iter::from_fn(move || {
        if body.is_empty() {
            return None;
        }
        let Some(sp) = body.iter().take(12).position(|&b| b == b' ') else {
            body = &[];
            return Some(Err("a chunk with a broken frame (no length)".into()));
        };
        let len = std::str::from_utf8(&body[..sp])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|&n| sp + 1 + n <= body.len());
        let Some(len) = len else {
            body = &[];
            return Some(Err("a chunk with a broken frame (bad length)".into()));
        };
        let (m, rest) = body[sp + 1..].split_at(len);
        body = rest;
        Some(Ok(m))
    })
}

impl Output for SyslogOutput {
    fn format(&self) -> Format {
        Format::Custom(self.encoder.clone())
    }

    fn write(&mut self, chunk: &Chunk) -> Result<(), WriteError> {
        if chunk.body.is_empty() {
            return Ok(());
        }
        if self.mode == Mode::Udp {
            return self.write_udp(&chunk.body);
        }
        self.write_stream(&chunk.body).map_err(|e| {
            if let Some(s) = self.stream.take() {
                s.close();
            }
            WriteError::retry(format!(
                "{}: {e} (the whole chunk is sent again on a new connection)",
                self.address()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Read;
    use std::net::TcpListener;

    fn output(detail: Value) -> Box<dyn Output> {
        build(&detail, &PluginContext::for_check("t"))
            .unwrap_or_else(|e| panic!("{}: {}", e.field, e.message))
    }

    fn error(detail: Value) -> DetailError {
        match build(&detail, &PluginContext::for_check("t")) {
            Ok(_) => panic!("{detail} was accepted"),
            Err(e) => e,
        }
    }

    /// An event at 2003-10-11T22:14:15.003Z (RFC 5424's examples) with `contents`.
    fn event(contents: &[(&str, &str)]) -> LogEvent {
        let mut e = LogEvent::new(1_065_910_455);
        e.time_ns = Some(3_000_000);
        for (k, v) in contents {
            e.contents
                .push((Bytes::from(k.to_string()), Bytes::from(v.to_string())));
        }
        e
    }

    fn encode(o: &dyn Output, events: Vec<LogEvent>) -> Vec<u8> {
        let mut g = EventGroup::new(Bytes::new());
        g.events = events;
        let mut out = Vec::new();
        assert_eq!(o.format().encode(&g, &mut out), g.events.len());
        out
    }

    /// The detail of RFC 5424's examples: every part from a field.
    fn rfc_detail(extra: Value) -> Value {
        let mut d = json!({"Address": "127.0.0.1:514", "SeverityKey": "sev", "FacilityKey": "fac",
            "HostnameKey": "host", "AppnameKey": "app", "ProcidKey": "pid", "MsgidKey": "msgid"});
        for (k, v) in extra.as_object().unwrap() {
            d[k] = v.clone();
        }
        d
    }

    /// `MSG-LEN SP MSG` of `msg`.
    fn octets(msg: &[u8]) -> Vec<u8> {
        let mut f = format!("{} ", msg.len()).into_bytes();
        f.extend_from_slice(msg);
        f
    }

    #[test]
    fn rfc5424_examples_are_written_exactly() {
        // RFC 5424 6.5, example 1 (the fraction has our six digits).
        let o = output(rfc_detail(json!({"Bom": true})));
        let e = event(&[
            ("fac", "auth"),
            ("sev", "2"),
            ("host", "mymachine.example.com"),
            ("app", "su"),
            ("msgid", "ID47"),
            ("content", "'su root' failed for lonvick on /dev/pts/8"),
        ]);
        let want = b"<34>1 2003-10-11T22:14:15.003000Z mymachine.example.com su - ID47 - \xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8";
        assert_eq!(
            String::from_utf8_lossy(&encode(&*o, vec![e])),
            String::from_utf8_lossy(&octets(want))
        );
        // Examples 3 and 4: structured data, two elements, and no MSG.
        let o = output(rfc_detail(
            json!({"Bom": true, "SdKeys": ["exampleSDID@32473", "examplePriority@32473"]}),
        ));
        let sd = [
            ("fac", "local4"),
            ("sev", "Notice"),
            ("host", "mymachine.example.com"),
            ("app", "evntslog"),
            ("msgid", "ID47"),
            ("exampleSDID@32473.iut", "3"),
            ("exampleSDID@32473.eventSource", "Application"),
            ("exampleSDID@32473.eventID", "1011"),
        ];
        let mut three = sd.to_vec();
        three.push(("content", "An application event log entry..."));
        let mut four = sd.to_vec();
        four.insert(0, ("examplePriority@32473.class", "high"));
        let got = encode(&*o, vec![event(&three), event(&four)]);
        let head = "<165>1 2003-10-11T22:14:15.003000Z mymachine.example.com evntslog - ID47 \
                    [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"]";
        let mut want =
            octets(format!("{head} \u{feff}An application event log entry...").as_bytes());
        want.extend(octets(
            format!("{head}[examplePriority@32473 class=\"high\"]").as_bytes(),
        ));
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
    }

    #[test]
    fn rfc3164_example_is_written_exactly() {
        let o = output(
            json!({"Address": "h", "Format": "rfc3164", "FacilityPreset": "auth",
            "SeverityPreset": 2, "HostnamePreset": "mymachine", "AppnameKey": "app"}),
        );
        let e = event(&[
            ("app", "su"),
            ("content", "'su root' failed for lonvick on /dev/pts/8"),
        ]);
        let mut e2 = event(&[("app", "sshd"), ("content", "two\nlines")]);
        e2.time = 1_061_702_055; // Aug 24 05:14:15: the day is padded with a space.
        let o2 = output(
            json!({"Address": "h", "Format": "rfc3164", "HostnamePreset": "h",
            "AppnameKey": "app", "ProcidPreset": "42"}),
        );
        assert_eq!(
            String::from_utf8_lossy(&encode(&*o, vec![e])),
            "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8\n"
        );
        // Non-transparent framing: an LF in the message becomes a space.
        assert_eq!(
            String::from_utf8_lossy(&encode(&*o2, vec![e2])),
            "<14>Aug 24 05:14:15 h sshd[42]: two lines\n"
        );
    }

    #[test]
    fn priority_from_names_numbers_presets_and_tags() {
        assert_eq!(severity(b"WARNING"), Some(4));
        assert_eq!(severity(b" 7 "), Some(7));
        assert_eq!(severity(b"8"), None);
        assert_eq!(severity(b"loud"), None);
        assert_eq!(facility(b"local7"), Some(23));
        assert_eq!(facility(b"23"), Some(23));
        assert_eq!(facility(b"24"), None);
        let o = output(
            json!({"Address": "h", "SeverityKey": "level", "FacilityKey": "__tag__:fac",
            "HostnamePreset": "h", "SeverityPreset": "err", "FacilityPreset": 3}),
        );
        let mut g = EventGroup::new(Bytes::new());
        g.tags.push((Bytes::from("fac"), Bytes::from("local0")));
        g.events = vec![
            event(&[("level", "debug")]),
            event(&[("level", "bogus")]),
            event(&[]),
        ];
        let mut out = Vec::new();
        o.format().encode(&g, &mut out);
        let pris: Vec<&str> = std::str::from_utf8(&out)
            .unwrap()
            .split('<')
            .skip(1)
            .map(|m| m.split('>').next().unwrap())
            .collect();
        // local0 (16) * 8 + debug (7); a bad value and a missing one take the preset `err`.
        assert_eq!(pris, ["135", "131", "131"]);
        // Without the tag, the facility preset (daemon, 3).
        let got = encode(&*o, vec![event(&[])]);
        assert!(got.windows(5).any(|w| w == b"<27>1"), "{got:?}");
    }

    #[test]
    fn header_fields_are_cut_and_printable_and_sd_values_escaped() {
        let o = output(rfc_detail(json!({"SdKeys": ["x@1"]})));
        let long = "a".repeat(300);
        let e = event(&[
            ("host", &long),
            ("app", "my app\u{e9}"),
            ("pid", ""),
            ("msgid", "id\u{1}"),
            ("x@1.k", "say \"hi\" \\ [ok]"),
            ("x@1.we=ird", "\u{ff}"),
            ("content", "m"),
        ]);
        let mut e = e;
        e.contents[5].1 = Bytes::from_static(b"\xff");
        let got = encode(&*o, vec![e]);
        let text = String::from_utf8_lossy(&got).into_owned();
        let want = format!(
            " {} my_app_ - id_ [x@1 k=\"say \\\"hi\\\" \\\\ [ok\\]\" we_ird=\"\u{fffd}\"] m",
            "a".repeat(255)
        );
        assert!(text.ends_with(&want), "{text}");
        // Absent everything: NILVALUEs, no MSG.
        let o = output(json!({"Address": "h", "HostnamePreset": ""}));
        let got = encode(&*o, vec![event(&[])]);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&octets(b"<14>1 2003-10-11T22:14:15.003000Z - - - - -"))
        );
    }

    #[test]
    fn long_messages_are_cut_at_max_size_on_a_character_boundary_and_counted() {
        let cx = PluginContext::for_check("t");
        let detail = json!({"Address": "h", "HostnamePreset": "h", "MaxSize": 64,
            "Framing": "non-transparent"});
        let o = build(&detail, &cx).unwrap_or_else(|e| panic!("{}", e.message));
        let e = event(&[("content", &"\u{e9}".repeat(100))]);
        let got = encode(&*o, vec![e.clone(), event(&[("content", "short")]), e]);
        let (alarms, _) = cx.stats.take_alarms();
        assert_eq!(alarms.len(), 1, "{alarms:?}");
        assert_eq!(alarms[0].kind, CUT_ALARM);
        assert!(
            alarms[0].message.starts_with("2 messages"),
            "{}",
            alarms[0].message
        );
        let got = &got[..=got.iter().position(|&b| b == b'\n').unwrap()];
        let line = std::str::from_utf8(got).expect("cut on a character boundary");
        assert!(line.ends_with('\n'));
        assert!(line.len() - 1 <= 64 && line.len() > 63, "{}", line.len());
    }

    #[test]
    fn local_time_writes_an_offset() {
        let o = output(json!({"Address": "h", "LocalTime": true}));
        let got = String::from_utf8(encode(&*o, vec![event(&[])])).unwrap();
        let ts = got.split(' ').nth(2).unwrap();
        assert!(
            ts.starts_with("2003-10-1") && ts.contains(":14:15.003000"),
            "{ts}"
        );
        assert!(
            ts.ends_with('Z') || ts[ts.len() - 6..].starts_with(['+', '-']),
            "{ts}"
        );
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
    }

    #[test]
    fn options_are_checked_naming_the_field() {
        for (detail, field) in [
            (json!({}), "Address"),
            (json!({"Address": "h:x"}), "Address"),
            (json!({"Address": "h", "Mode": "sctp"}), "Mode"),
            (json!({"Address": "h", "Format": "rfc9999"}), "Format"),
            (
                json!({"Address": "h", "Mode": "udp", "Framing": "octet-counting"}),
                "Framing",
            ),
            (json!({"Address": "h", "Framing": "lf"}), "Framing"),
            (json!({"Address": "h", "MaxSize": 10}), "MaxSize"),
            (
                json!({"Address": "h", "Mode": "udp", "MaxSize": 70000}),
                "MaxSize",
            ),
            (
                json!({"Address": "h", "SeverityPreset": 8}),
                "SeverityPreset",
            ),
            (
                json!({"Address": "h", "FacilityPreset": "nope"}),
                "FacilityPreset",
            ),
            (
                json!({"Address": "h", "SdKeys": ["ok", "bad id"]}),
                "SdKeys[1]",
            ),
            (
                json!({"Address": "h", "SdKeys": ["a".repeat(33)]}),
                "SdKeys[0]",
            ),
            (
                json!({"Address": "h", "Format": "rfc3164", "MsgidKey": "m"}),
                "MsgidKey",
            ),
            (
                json!({"Address": "h", "Mode": "udp", "TLS": {"Enabled": true}}),
                "TLS.Enabled",
            ),
            (
                json!({"Address": "h", "Mode": "tls", "TLS": {"CAFile": "/nonexistent"}}),
                "TLS.CAFile",
            ),
            (json!({"Address": "h", "Bogus": 1}), "Bogus"),
            (
                json!({"Address": "h", "SdKeys": ["a@1", "a@1"]}),
                "SdKeys[1]",
            ),
            (
                json!({"Address": "h", "SdKeys": ["a@1.x", "a@1"]}),
                "SdKeys[1]",
            ),
        ] {
            assert_eq!(error(detail.clone()).field, field, "{detail}");
        }
        let long = json!({"Address": "h", "SdKeys": ["a".repeat(33)], "AllowLongerSdId": true});
        output(long);
    }

    fn chunk(body: Vec<u8>) -> Chunk {
        Chunk {
            id: 1,
            key: ChunkKey::default(),
            ends: vec![body.len()],
            body: Bytes::from(body),
            records: 0,
            created: 0,
            retries: 0,
        }
    }

    /// Reads every connection `l` accepts to its end, `conns` of them, in order; the first is
    /// closed `linger` after `first_limit` bytes arrived.
    fn receiver(
        l: TcpListener,
        conns: usize,
        first_limit: usize,
        linger: Duration,
    ) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut all = Vec::new();
            for i in 0..conns {
                let (mut s, _) = l.accept().unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = vec![0u8; 65536];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => all.extend_from_slice(&buf[..n]),
                    }
                    if i == 0 && all.len() >= first_limit {
                        std::thread::sleep(linger);
                        break;
                    }
                }
            }
            all
        })
    }

    #[test]
    fn tcp_reconnects_after_the_receiver_closed_and_loses_nothing() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut o = output(
            json!({"Address": format!("127.0.0.1:{port}"), "HostnamePreset": "h",
            "TimeoutMs": 2000}),
        );
        let a = encode(&*o, vec![event(&[("content", "a")])]);
        let b = encode(
            &*o,
            vec![event(&[("content", "b")]), event(&[("content", "c")])],
        );
        // Longer than the write's wait for the ACK (a delayed ACK is up to 40 ms) and
        // CloseCheckMs.
        let r = receiver(l, 2, a.len(), Duration::from_millis(300));
        o.write(&chunk(a.clone())).unwrap();
        // The receiver closed the first connection after chunk a: b goes on a new one.
        std::thread::sleep(Duration::from_millis(600));
        o.write(&chunk(b.clone())).unwrap();
        drop(o);
        let got = r.join().unwrap();
        assert_eq!(got, [a, b].concat());
    }

    #[test]
    fn a_close_right_after_the_write_retries_the_chunk_on_a_new_connection() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut o = output(
            json!({"Address": format!("127.0.0.1:{port}"), "HostnamePreset": "h",
            "CloseCheckMs": 300}),
        );
        let a = encode(&*o, vec![event(&[("content", "a")])]);
        let r = receiver(l, 2, a.len(), Duration::ZERO);
        // Closed within CloseCheckMs: not counted as delivered (a duplicate, not a loss).
        match o.write(&chunk(a.clone())) {
            Err(WriteError::Retry { why, .. }) => assert!(why.contains("closed"), "{why}"),
            other => panic!("{other:?}"),
        }
        o.write(&chunk(a.clone())).unwrap();
        drop(o);
        assert_eq!(r.join().unwrap(), [a.clone(), a].concat());
    }

    #[test]
    fn tcp_refused_is_retried_and_bounded() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut o = output(json!({"Address": format!("127.0.0.1:{port}"), "TimeoutMs": 300}));
        let t0 = std::time::Instant::now();
        match o.write(&chunk(b"1 x".to_vec())) {
            Err(WriteError::Retry { why, .. }) => assert!(why.contains(&port.to_string()), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(t0.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn a_receiver_that_stops_reading_fails_the_write_in_bounded_time() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut o = output(json!({"Address": format!("127.0.0.1:{port}"), "TimeoutMs": 300}));
        let held = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            std::thread::sleep(Duration::from_secs(2));
            drop(s);
        });
        // More than both sides' socket buffers hold (not frames: TCP does not care).
        let body = vec![b'x'; 40 << 20];
        let t0 = std::time::Instant::now();
        match o.write(&chunk(body)) {
            Err(WriteError::Retry { why, .. }) => assert!(why.contains(&port.to_string()), "{why}"),
            other => panic!("{other:?}"),
        }
        // Well before the receiver closes: the timeout ended it.
        assert!(
            t0.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t0.elapsed()
        );
        held.join().unwrap();
    }

    /// A CA (PEM in `<dir>/ca.pem`) and a rustls server configuration for 127.0.0.1 signed
    /// by it.
    fn tls_server(dir: &std::path::Path) -> Arc<rustls::ServerConfig> {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert.der().clone()], key.into())
                .unwrap(),
        )
    }

    #[test]
    fn tls_notices_a_receiver_that_closed_behind_its_session_tickets() {
        let dir = std::env::temp_dir().join(format!("flusher-syslog-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = tls_server(&dir);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut o = output(
            json!({"Address": format!("127.0.0.1:{port}"), "Mode": "tls",
            "HostnamePreset": "h", "TLS": {"CAFile": dir.join("ca.pem")}}),
        );
        let a = encode(&*o, vec![event(&[("content", "a")])]);
        let b = encode(&*o, vec![event(&[("content", "b")])]);
        let sizes = [a.len(), b.len()];
        // Each connection: read one chunk, then close it (TLS 1.3 sent session tickets first).
        let server = std::thread::spawn(move || {
            let mut got = Vec::new();
            for want in sizes {
                let (tcp, _) = l.accept().unwrap();
                tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                let mut s = rustls::StreamOwned::new(conn, tcp);
                let mut buf = vec![0u8; want];
                s.read_exact(&mut buf).unwrap();
                got.extend(buf);
                // Longer than the write's wait for the ACK (a delayed ACK is up to 40 ms)
                // and CloseCheckMs.
                std::thread::sleep(Duration::from_millis(300));
                s.conn.send_close_notify();
                let _ = s.conn.complete_io(&mut s.sock);
            }
            got
        });
        o.write(&chunk(a.clone())).unwrap();
        std::thread::sleep(Duration::from_millis(600));
        // Written on a new connection at once: the close was seen before the write.
        o.write(&chunk(b.clone())).unwrap();
        assert_eq!(server.join().unwrap(), [a, b].concat());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn udp_sends_one_datagram_per_message() {
        let r = UdpSocket::bind("127.0.0.1:0").unwrap();
        r.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let port = r.local_addr().unwrap().port();
        let mut o = output(
            json!({"Address": format!("127.0.0.1:{port}"), "Mode": "udp",
            "HostnamePreset": "h"}),
        );
        let events: Vec<LogEvent> = (0..3)
            .map(|i| event(&[("content", &format!("m{i}"))]))
            .collect();
        o.write(&chunk(encode(&*o, events))).unwrap();
        let mut buf = [0u8; 2048];
        for i in 0..3 {
            let n = r.recv(&mut buf).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&buf[..n]),
                format!("<14>1 2003-10-11T22:14:15.003000Z h - - - - m{i}")
            );
        }
        let broken: Vec<Result<&[u8], String>> = messages(b"5 abc").collect();
        assert!(broken[0].is_err());
    }
}
