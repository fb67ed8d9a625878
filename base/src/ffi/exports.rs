//! The base exports of the iLogtail 1.x/2.x generation, plus `Stop` and `CheckConfig`.
//!
//! Conventions: `GoInt` results are `0` on success; `LoadConfig`, `LoadGlobalConfig`,
//! `UnloadConfig` and `InitPluginBase[V2]` return `1` on any error (as the ABI requires);
//! the `Process*` calls return the non-zero code of [`Code`] that says what was wrong.

use super::{
    containerMeta, guard, malloc_text, reject, Code, GoArg, GoInt, GoInt64, GoSlice, GoString,
};
use crate::engine;
use crate::loong::{self, Generation};
use ::engine::api::PackIds;
use ::engine::event::{now, parse_tags, EventGroup, LogEvent};
use ::engine::proto;
use ::engine::{Engine, Tunables};
use bytes::Bytes;
use std::ffi::c_char;

fn ok_or_one(c: impl Into<Code>) -> GoInt {
    if c.into() == Code::Ok {
        0
    } else {
        1
    }
}

/// Initialises the plugin system (once; later calls return 0): opens the checkpoint store
/// (`./go_plugin_checkpoint`) and finds the adaptor. A damaged store is repaired or moved
/// aside (with an alarm); returns 1 only when the directory cannot be created or another
/// process holds the store.
#[no_mangle]
pub extern "C" fn InitPluginBase() -> GoInt {
    guard("InitPluginBase", || 1, || ok_or_one(crate::init(None)))
}

/// Initialises the plugin system with the host's JSON (`LogtailSysConfDir`, `HostIP`,
/// `Hostname`, `LoongCollector*Dir`; unknown keys ignored). Once only; later calls return 0.
/// Returns 1 when the JSON is malformed or the checkpoint store cannot be opened.
#[no_mangle]
pub extern "C" fn InitPluginBaseV2(cfgJson: GoString) -> GoInt {
    guard(
        "InitPluginBaseV2",
        || 1,
        || {
            // SAFETY: the host passes a valid GoString for the duration of the call.
            match unsafe { cfgJson.text() } {
                Ok(j) => ok_or_one(crate::init(Some(j))),
                Err(c) => ok_or_one(reject("InitPluginBaseV2", "cfgJson", c)),
            }
        },
    )
}

/// Applies process-wide settings on its first call (`HoldOnTimeoutMs`, `ProcessTimeoutMs`,
/// `HostIP`, `Hostname`). Returns 1 for malformed JSON, 0 otherwise.
#[no_mangle]
pub extern "C" fn LoadGlobalConfig(jsonStr: GoString) -> GoInt {
    guard(
        "LoadGlobalConfig",
        || 1,
        || {
            // SAFETY: as above.
            match unsafe { jsonStr.text() } {
                Ok(j) => ok_or_one(load_global(j)),
                Err(c) => ok_or_one(reject("LoadGlobalConfig", "jsonStr", c)),
            }
        },
    )
}

/// `LoadGlobalConfig`'s JSON: the engine's tunables (first call only; unknown keys ignored).
fn load_global(json: &str) -> Code {
    match serde_json::from_str::<Tunables>(json) {
        Ok(t) => {
            engine().set_tunables(t);
            Code::Ok
        }
        Err(e) => {
            tracing::error!(error = %e, "LoadGlobalConfig: invalid JSON");
            Code::Failed
        }
    }
}

/// Loads (or, with an empty `jsonStr`, removes; or, with a loaded name, replaces) a pipeline
/// config. Accepted only while the plugin system is held (before the first `Resume` or after
/// `HoldOn`). A name ending in `/1` or `/2` (iLogtail 2.x) sends, alarms and counts under the
/// name without it. Returns 0 on success, 1 on any error (each problem is logged naming the
/// config, the plugin and the field; an empty name or one with a NUL byte is an error).
#[no_mangle]
pub extern "C" fn LoadConfig(
    project: GoString,
    logstore: GoString,
    configName: GoString,
    logstoreKey: GoInt64,
    jsonStr: GoString,
) -> GoInt {
    guard(
        "LoadConfig",
        || 1,
        || {
            // SAFETY: the host passes valid GoStrings for the duration of the call.
            let args = unsafe {
                (|| {
                    Ok::<_, (&'static str, Code)>((
                        project.text().map_err(|c| ("project", c))?,
                        logstore.text().map_err(|c| ("logstore", c))?,
                        configName.text().map_err(|c| ("configName", c))?,
                        jsonStr.text().map_err(|c| ("jsonStr", c))?,
                    ))
                })()
            };
            loong::seen(Generation::Logtail);
            match args {
                Ok((p, l, n, j)) => ok_or_one(engine().load_config(p, l, n, logstoreKey, j)),
                Err((arg, c)) => ok_or_one(reject("LoadConfig", arg, c)),
            }
        },
    )
}

/// Removes a config while held. Returns 0 on success, 1 otherwise.
#[no_mangle]
pub extern "C" fn UnloadConfig(
    project: GoString,
    logstore: GoString,
    configName: GoString,
) -> GoInt {
    guard(
        "UnloadConfig",
        || 1,
        || {
            // SAFETY: as above.
            let checked = unsafe { (project.text(), logstore.text(), configName.text()) };
            match checked {
                (Ok(_), Ok(_), Ok(n)) => ok_or_one(engine().unload_config(n)),
                _ => ok_or_one(reject("UnloadConfig", "arguments", Code::InvalidArgument)),
            }
        },
    )
}

/// Stops every running config within a bounded time. `exitFlag == 0`: undelivered data is
/// kept and handed to the config's next instance (returns in milliseconds, whatever the host
/// does). `exitFlag != 0`: the process is exiting; data is delivered until `HoldOnTimeoutMs`
/// (default 5 s), then what is left is persisted for the next start and checkpoints are
/// flushed: returns within `HoldOnTimeoutMs` + 1 s, even with SendPb or the disk blocked.
#[no_mangle]
pub extern "C" fn HoldOn(exitFlag: GoInt) {
    guard(
        "HoldOn",
        || (),
        || {
            loong::seen(Generation::Logtail);
            engine().hold_on(exitFlag != 0)
        },
    )
}

/// Starts every loaded config.
#[no_mangle]
pub extern "C" fn Resume() {
    guard(
        "Resume",
        || (),
        || {
            loong::seen(Generation::Logtail);
            let _ = engine().resume();
        },
    )
}

/// Stops one config. `removedFlag == 0`: its undelivered data is parked for its next
/// instance; otherwise the config is removed after delivering what the host accepts within
/// `HoldOnTimeoutMs`, and the rest is sent after the next `Resume`.
#[no_mangle]
pub extern "C" fn Stop(configName: GoString, removedFlag: GoInt) {
    guard(
        "Stop",
        || (),
        || {
            // SAFETY: as above.
            match unsafe { configName.text() } {
                Ok(n) => {
                    let _ = engine().stop(n, removedFlag != 0);
                }
                Err(c) => {
                    reject("Stop", "configName", c);
                }
            }
        },
    )
}

/// Source key of host-fed data: the host's pack id without its sequence.
fn host_source(pack_id: &[u8]) -> Bytes {
    let prefix = match pack_id.iter().rposition(|b| *b == b'-') {
        Some(i) => &pack_id[..i],
        None => pack_id,
    };
    let mut s = Vec::with_capacity(prefix.len() + 5);
    s.extend_from_slice(b"host:");
    s.extend_from_slice(prefix);
    Bytes::from(s)
}

/// What a `Process*` call hands over: one group, or the pieces of a large one.
type Groups = Box<dyn Iterator<Item = EventGroup>>;

/// A serialized `LogGroup` larger than this is checked first and then decoded and queued in
/// pieces of [`CHUNK_LOGS`] logs, so that memory holds the host's bytes and a few pieces, not
/// every log decoded at once (a group of a million tiny logs cost ten times its size).
const CHUNKED_ABOVE: usize = 4 << 20;
/// Logs per piece of a large `LogGroup`.
const CHUNK_LOGS: usize = 1024;

/// Shared body of the `Process*` exports: checks the config name, builds the group(s),
/// pushes them.
fn push(
    export: &'static str,
    config: GoString,
    pack_id: GoString,
    build: impl FnOnce() -> Result<Groups, (&'static str, Code)>,
) -> GoInt {
    guard(
        export,
        || Code::Internal as GoInt,
        || {
            // SAFETY: the host passes valid arguments for the duration of the call.
            let name = match unsafe { config.text() } {
                Ok(n) => n,
                Err(c) => return reject(export, "configName", c) as GoInt,
            };
            // SAFETY: as above.
            let pack = match unsafe { pack_id.text() } {
                Ok(p) => p,
                Err(c) => return reject(export, "packId", c) as GoInt,
            };
            let groups = match build() {
                Ok(g) => g,
                Err((arg, c)) => return reject(export, arg, c) as GoInt,
            };
            let source = match crate::loong::generation() {
                // 3.x: the host's pack id is the prefix, as the Go aggregator writes it.
                Generation::Loong => PackIds::host_prefix_source(pack),
                _ => host_source(pack.as_bytes()),
            };
            let code = Code::from(engine().push(
                name,
                groups.map(|mut g| {
                    g.source = source.clone();
                    g
                }),
            ));
            if code != Code::Ok && code != Code::Timeout {
                tracing::debug!(
                    export,
                    config = name,
                    error = code.describe(),
                    "push refused"
                );
            }
            code as GoInt
        },
    )
}

/// Copies a borrowed slice into an owned buffer that parsed fields can slice.
///
/// # Safety
/// As for [`GoSlice::bytes`].
unsafe fn owned(s: &GoSlice, arg: &'static str) -> Result<Bytes, (&'static str, Code)> {
    // SAFETY: forwarded contract.
    unsafe { s.bytes() }
        .map(Bytes::copy_from_slice)
        .map_err(|c| (arg, c))
}

/// Copies borrowed text (UTF-8 required: a topic is a protobuf `string`).
///
/// # Safety
/// As for [`GoString::text`].
unsafe fn owned_str(s: &GoString, arg: &'static str) -> Result<Bytes, (&'static str, Code)> {
    // SAFETY: forwarded contract.
    unsafe { s.text() }
        .map(|t| Bytes::copy_from_slice(t.as_bytes()))
        .map_err(|c| (arg, c))
}

fn one(g: EventGroup) -> Groups {
    Box::new(std::iter::once(g))
}

fn raw_group(raw: Bytes, topic: Bytes, tags: Bytes) -> EventGroup {
    let (sec, _) = now();
    let mut e = LogEvent::new(sec);
    e.contents.push((Bytes::from_static(b"content"), raw));
    EventGroup {
        events: vec![e],
        tags: parse_tags(&tags),
        topic,
        source: Bytes::new(),
        acks: Vec::new(),
    }
}

/// Pushes one raw line (as field `content`) into the config's processors. Blocks while the
/// pipeline is full (at most `ProcessTimeoutMs`), then keeps the data on disk; data for a
/// held config is queued for its next run. Returns 0 when the data was taken, or a non-zero
/// error code.
#[no_mangle]
pub extern "C" fn ProcessRawLog(
    configName: GoString,
    rawLog: GoSlice,
    packId: GoString,
    topic: GoString,
) -> GoInt {
    push("ProcessRawLog", configName, packId, || {
        // SAFETY: valid for the call.
        let (raw, topic) = unsafe { (owned(&rawLog, "rawLog")?, owned_str(&topic, "topic")?) };
        Ok(one(raw_group(raw, topic, Bytes::new())))
    })
}

/// As `ProcessRawLog`, with tags `k1~=~v1^^^k2~=~v2`.
#[no_mangle]
pub extern "C" fn ProcessRawLogV2(
    configName: GoString,
    rawLog: GoSlice,
    packId: GoString,
    topic: GoString,
    tags: GoSlice,
) -> GoInt {
    push("ProcessRawLogV2", configName, packId, || {
        // SAFETY: valid for the call.
        let (raw, topic, tags) = unsafe {
            (
                owned(&rawLog, "rawLog")?,
                owned_str(&topic, "topic")?,
                owned(&tags, "tags")?,
            )
        };
        Ok(one(raw_group(raw, topic, tags)))
    })
}

/// Pushes one serialized `Log` with tags `k1~=~v1^^^k2~=~v2` into the config's processors.
/// Returns 0, or a non-zero error code (malformed protobuf: 4).
#[no_mangle]
pub extern "C" fn ProcessLog(
    configName: GoString,
    logBytes: GoSlice,
    packId: GoString,
    topic: GoString,
    tags: GoSlice,
) -> GoInt {
    push("ProcessLog", configName, packId, || {
        // SAFETY: valid for the call.
        let (buf, topic, tags) = unsafe {
            (
                owned(&logBytes, "logBytes")?,
                owned_str(&topic, "topic")?,
                owned(&tags, "tags")?,
            )
        };
        let log = proto::decode_log(&buf).map_err(|_| ("logBytes", Code::BadProtobuf))?;
        Ok(one(EventGroup {
            events: vec![log],
            tags: parse_tags(&tags),
            topic,
            source: Bytes::new(),
            acks: Vec::new(),
        }))
    })
}

/// Pushes a serialized `LogGroup` into the config's processors (its logs, topic and tags).
/// Returns 0, or a non-zero error code (malformed protobuf: 4).
#[no_mangle]
pub extern "C" fn ProcessLogGroup(
    configName: GoString,
    logGroup: GoSlice,
    packId: GoString,
) -> GoInt {
    push("ProcessLogGroup", configName, packId, || {
        // SAFETY: valid for the call.
        let buf = unsafe { owned(&logGroup, "logGroup")? };
        let bad = |_| ("logGroup", Code::BadProtobuf);
        if buf.len() <= CHUNKED_ABOVE {
            // Checked in full; contents are decoded later, and only if the pipeline reads them.
            return proto::decode_log_group_lazy(&buf).map(one).map_err(bad);
        }
        let head = proto::check_log_group(&buf).map_err(bad)?;
        Ok(Box::new(proto::log_chunks(buf, CHUNK_LOGS).map(
            move |events| EventGroup {
                events,
                tags: head.tags.clone(),
                topic: head.topic.clone(),
                source: Bytes::new(),
                acks: Vec::new(),
            },
        )))
    })
}

/// Container file-collection commands (1 update file, 2 remove file, 3 update all, 4 stop
/// file). No built-in plugin consumes them yet: they are validated and logged.
#[no_mangle]
pub extern "C" fn CtlCmd(configName: GoString, cmdId: GoInt, detail: GoString) {
    guard(
        "CtlCmd",
        || (),
        || {
            // SAFETY: valid for the call.
            match unsafe { (configName.text(), detail.bytes()) } {
                (Ok(n), Ok(d)) if (1..=4).contains(&cmdId) => {
                    tracing::debug!(
                        config = n,
                        cmd = cmdId,
                        detail_len = d.len(),
                        "CtlCmd ignored: no plugin handles container commands"
                    );
                }
                (Ok(n), Ok(_)) => {
                    tracing::warn!(config = n, cmd = cmdId, "CtlCmd: unknown command id");
                }
                _ => {
                    reject("CtlCmd", "arguments", Code::InvalidArgument);
                }
            }
        },
    )
}

/// Container metadata for `containerId`, allocated with `malloc` for the host to `free`.
/// This runtime does no container discovery, so it returns NULL ("unknown") for every id.
#[no_mangle]
pub extern "C" fn GetContainerMeta(containerId: GoString) -> *mut containerMeta {
    guard("GetContainerMeta", std::ptr::null_mut, || {
        // SAFETY: valid for the call.
        if let Err(c) = unsafe { containerId.text() } {
            reject("GetContainerMeta", "containerId", c);
        }
        std::ptr::null_mut()
    })
}

/// Checks a pipeline config without loading it (our extension, used by
/// `host-harness validate`). Returns NULL when valid; otherwise a `malloc`ed, NUL-terminated
/// text with one error per line, each naming the config, the plugin and the field, which the
/// caller frees with `free()`. Needs no `InitPluginBase`.
#[no_mangle]
pub extern "C" fn CheckConfig(configName: GoString, jsonStr: GoString) -> *mut c_char {
    guard(
        "CheckConfig",
        || malloc_text("internal error while checking the config"),
        || {
            // SAFETY: valid for the call.
            let (name, json) = match unsafe { (configName.text(), jsonStr.text()) } {
                (Ok(n), Ok(j)) => (n, j),
                (Err(c), _) => return malloc_text(&format!("configName: {}", c.describe())),
                (_, Err(c)) => return malloc_text(&format!("jsonStr: {}", c.describe())),
            };
            match Engine::check_config(name, json) {
                Ok(_) => std::ptr::null_mut(),
                Err(errors) => {
                    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    malloc_text(&text.join("\n"))
                }
            }
        },
    )
}

/// Lists what is suspicious but not wrong in a pipeline config (our extension, used by
/// `host-harness validate`): each `global` key that neither this base nor any iLogtail or
/// LoongCollector generation uses (`LoadConfig` ignores such keys). Returns NULL when there is
/// nothing to report (also for text that is not a JSON object: `CheckConfig` reports that);
/// otherwise a `malloc`ed, NUL-terminated text with one warning per line, naming the config
/// and the field, which the caller frees with `free()`. Needs no `InitPluginBase`.
#[no_mangle]
pub extern "C" fn CheckConfigWarnings(configName: GoString, jsonStr: GoString) -> *mut c_char {
    guard("CheckConfigWarnings", std::ptr::null_mut, || {
        // SAFETY: valid for the call.
        let (Ok(name), Ok(json)) = (unsafe { (configName.text(), jsonStr.text()) }) else {
            return std::ptr::null_mut();
        };
        let warnings = ::engine::config::warnings(name, json);
        if warnings.is_empty() {
            return std::ptr::null_mut();
        }
        let text: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        malloc_text(&text.join("\n"))
    })
}
