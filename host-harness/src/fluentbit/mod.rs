//! `host-harness fluent-bit`: a Fluent Bit-style proxy host for external plugins (the
//! "Go proxy" ABI, /work/shared/abi/fluent-bit.md), written from the ABI description and
//! Fluent Bit's flb_plugin_proxy.c / proxy/go/go.c behaviour, independent of any plugin crate:
//! `output` feeds msgpack chunks to FLBPluginFlushCtx, `input` collects from
//! FLBPluginInputCallbackCtx, `gen` writes chunk files.

pub mod abi;
pub mod chunk;
mod input;
mod output;
pub mod stack;

use std::ffi::c_int;
use std::io::Write;

use abi::{Plugin, ProxyDef, Registered, Unshared};
use stack::{Executor, Table};

use crate::cli::{FbCommand, FbGenArgs, FbGenOpts, FbSub};

pub fn run(c: FbCommand) -> i32 {
    match c.command {
        FbSub::Output(o) => output::run(o),
        FbSub::Input(o) => input::run(o),
        FbSub::Gen(o) => gen(o),
    }
}

/// The "engine thread": Register, Init, PreRun, PreExit, Exit and Unregister run here, on a
/// normal-size stack (8 MiB; the lowest 1 MiB below the call is painted and measured).
pub fn engine() -> Executor {
    Executor::new("fb-engine", 8 << 20, 1 << 20)
}

/// PreRegister(0) and Register with a zeroed def; checks what the plugin filled in. The def
/// is leaked: Fluent Bit keeps `description` and passes the def to Unregister at the end.
pub fn register(
    plugin: &'static Plugin,
    engine: &Executor,
    stack: &mut Table,
    want_type: c_int,
) -> Result<(Unshared<*mut ProxyDef>, Registered), String> {
    if let Some(f) = plugin.pre_register {
        // SAFETY: the ABI's FLBPluginPreRegister(int hot_reloading).
        let (ret, u) = engine.run(move || unsafe { f(0) });
        stack.add("FLBPluginPreRegister", u);
        if ret == -1 {
            return Err("FLBPluginPreRegister returned -1 (loading aborted)".into());
        }
    }
    let def = Unshared(Box::into_raw(Box::new(ProxyDef {
        type_: 0,
        proxy: 0,
        flags: 0,
        name: std::ptr::null_mut(),
        description: std::ptr::null_mut(),
        event_type: 0,
        config_map: std::ptr::null_mut(),
    })));
    let d = Unshared(def.0);
    let reg = plugin.register;
    // SAFETY: FLBPluginRegister(struct flb_plugin_proxy_def *) with a zeroed def.
    let (ret, u) = engine.run(move || unsafe { reg(d.get()) });
    stack.add("FLBPluginRegister", u);
    if ret == -1 {
        return Err("FLBPluginRegister returned -1".into());
    }
    // SAFETY: the def is ours; the plugin has returned.
    let r = abi::check_def(unsafe { &*def.0 }, want_type)?;
    Ok((def, r))
}

/// FLBPluginUnregister(def), when exported.
pub fn unregister(
    plugin: &'static Plugin,
    engine: &Executor,
    stack: &mut Table,
    def: Unshared<*mut ProxyDef>,
) {
    if let Some(f) = plugin.unregister {
        // SAFETY: the def Register filled.
        let (_, u) = engine.run(move || unsafe { f(def.get()) });
        stack.add("FLBPluginUnregister", u);
    }
}

pub fn plugin_json(plugin: &Plugin, r: &Registered) -> serde_json::Value {
    serde_json::json!({
        "path": plugin.path,
        "name": r.name,
        "description": r.description,
        "type": r.type_,
        "event_type": r.event_type,
        "flags": r.flags,
        "exports": plugin.exports(),
    })
}

/// Prints the summary: one JSON line `{"summary":{..}}` on stdout with --json, else pretty
/// JSON on stderr.
pub fn print_summary(json: bool, summary: serde_json::Value) {
    let wrapped = serde_json::json!({ "summary": summary });
    if json {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{wrapped}");
        let _ = out.flush();
    } else {
        eprintln!(
            "{}",
            serde_json::to_string_pretty(&wrapped).unwrap_or_default()
        );
    }
}

pub fn gen_spec(records: u64, g: &FbGenArgs) -> chunk::GenSpec {
    chunk::GenSpec {
        records,
        layout: g.layout,
        record_bytes: g.record_bytes,
        map32: g.map32,
        group_every: g.group_every,
        edge_times: g.edge_times,
        ..chunk::GenSpec::default()
    }
}

fn gen(o: FbGenOpts) -> i32 {
    let spec = gen_spec(o.records, &o.gen);
    let file = match std::fs::File::create(&o.file) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("host-harness: cannot create {}: {e}", o.file.display());
            return 1;
        }
    };
    let mut w = std::io::BufWriter::new(file);
    let mut buf = Vec::new();
    let mut bytes = 0u64;
    let mut i = 0;
    while i < spec.records {
        let to = (i + 1024).min(spec.records);
        buf.clear();
        chunk::generate_range(&mut buf, &spec, i, to);
        bytes += buf.len() as u64;
        if let Err(e) = w.write_all(&buf) {
            eprintln!("host-harness: cannot write {}: {e}", o.file.display());
            return 1;
        }
        i = to;
    }
    if let Err(e) = w.flush() {
        eprintln!("host-harness: cannot write {}: {e}", o.file.display());
        return 1;
    }
    eprintln!(
        "host-harness: wrote {} records ({bytes} bytes) to {}",
        spec.records,
        o.file.display()
    );
    0
}
