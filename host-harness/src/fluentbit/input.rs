//! `host-harness fluent-bit input`: Register, Init, InputPreRun, FLBPluginInputCallbackCtx
//! every --collect-ms on a small-stack collect thread (each buffer copied, then handed to the
//! cleanup callback or libc free), Pause/Resume, InputPreExit, Exit, Unregister; the records as
//! JSON lines and a summary.

use std::ffi::{c_void, CString};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::abi::{self, GoPlugin, InputContext, Instance, Plugin, Unshared, API, LOG_LEVEL};
use super::chunk;
use super::stack::{Probe, Table};
use crate::cli::FbInputOpts;

#[derive(Default)]
struct Counts {
    calls: AtomicU64,
    empty_calls: AtomicU64,
    error_calls: AtomicU64,
    cleanups: AtomicU64,
    cleanup_errors: AtomicU64,
    skipped_while_paused: AtomicU64,
}

/// What the collect thread shares with the engine side.
struct Collect {
    plugin: &'static Plugin,
    remote: Unshared<*mut c_void>,
    period: Duration,
    stop: AtomicBool,
    /// Held by the collect thread around a collect + cleanup, and by the engine around
    /// Pause/Resume: Fluent Bit runs them on the same event loop, never at the same time.
    engine_lock: Mutex<bool>,
    counts: Counts,
}

fn collect_thread(c: &Collect, tx: mpsc::Sender<Vec<u8>>) -> Table {
    let probe = Probe::current(usize::MAX);
    let mut table = Table::default();
    let mut next = Instant::now() + c.period;
    while !c.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
            continue;
        }
        next += c.period;
        if next < now {
            next = now + c.period;
        }
        let paused = c.engine_lock.lock().unwrap_or_else(|e| e.into_inner());
        if *paused {
            c.counts
                .skipped_while_paused
                .fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let mut data: *mut c_void = std::ptr::null_mut();
        let mut size: usize = 0;
        let (d, s) = (&mut data as *mut *mut c_void, &mut size as *mut usize);
        let ctx = c.remote.0;
        let (ret, name, u) = if let Some(f) = c.plugin.collect_ctx {
            // SAFETY: FLBPluginInputCallbackCtx(ctx, void **data, size_t *size).
            let (r, u) = probe.measure(|| unsafe { f(ctx, d, s) });
            (r, "FLBPluginInputCallbackCtx", u)
        } else {
            let f = c.plugin.collect.expect("checked before");
            // SAFETY: FLBPluginInputCallback(void **data, size_t *size).
            let (r, u) = probe.measure(|| unsafe { f(d, s) });
            (r, "FLBPluginInputCallback", u)
        };
        table.add(name, u);
        c.counts.calls.fetch_add(1, Ordering::Relaxed);
        // Fluent Bit's order: nothing (size 0) first, then -1; neither is cleaned up.
        if size == 0 {
            c.counts.empty_calls.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if ret == -1 {
            c.counts.error_calls.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if data.is_null() {
            c.counts.error_calls.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        // SAFETY: the plugin hands over `size` bytes at `data` until cleanup.
        let copy = unsafe { std::slice::from_raw_parts(data as *const u8, size) }.to_vec();
        let _ = tx.send(copy);
        let ret = if let Some(f) = c.plugin.cleanup_ctx {
            // SAFETY: FLBPluginInputCleanupCallbackCtx(ctx, data).
            let (r, u) = probe.measure(|| unsafe { f(ctx, data) });
            table.add("FLBPluginInputCleanupCallbackCtx", u);
            r
        } else if let Some(f) = c.plugin.cleanup {
            // SAFETY: FLBPluginInputCleanupCallback(data).
            let (r, u) = probe.measure(|| unsafe { f(data) });
            table.add("FLBPluginInputCleanupCallback", u);
            r
        } else {
            // SAFETY: without a cleanup callback the buffer is malloc'd, freed by the host.
            unsafe { libc::free(data) };
            0
        };
        c.counts.cleanups.fetch_add(1, Ordering::Relaxed);
        if ret == -1 {
            c.counts.cleanup_errors.fetch_add(1, Ordering::Relaxed);
        }
        drop(paused);
    }
    table
}

#[derive(Default)]
struct Received {
    buffers: u64,
    bytes: u64,
    records: u64,
    group_markers: u64,
    invalid_objects: u64,
    malformed_buffers: u64,
    time_types: std::collections::BTreeMap<&'static str, u64>,
    first_error: Option<String>,
}

pub fn run(o: FbInputOpts) -> i32 {
    match run_inner(&o) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("host-harness fluent-bit input: {e}");
            1
        }
    }
}

fn run_inner(o: &FbInputOpts) -> Result<i32, String> {
    LOG_LEVEL.store(o.log_level.level(), Ordering::Relaxed);
    let mut out: Box<dyn Write> = match &o.out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let mut raw_out = match &o.out_msgpack {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))?,
        )),
        None => None,
    };
    let plugin: &'static Plugin = Box::leak(Box::new(Plugin::open(&o.plugin)?));
    let engine = super::engine();
    let mut stack = Table::default();
    let (def, reg) = super::register(plugin, &engine, &mut stack, abi::TYPE_INPUT)?;
    if plugin.collect_ctx.is_none() && plugin.collect.is_none() {
        return Err(format!(
            "{}: neither FLBPluginInputCallbackCtx nor FLBPluginInputCallback is exported",
            plugin.path
        ));
    }

    let name = CString::new(reg.name.clone()).map_err(|_| "plugin name with NUL")?;
    let inst = Instance::new(true, &o.props);
    let ctx = Box::into_raw(Box::new(InputContext {
        coll_fd: 0,
        remote_context: std::ptr::null_mut(),
        proxy: std::ptr::null_mut(),
    }));
    let go = Unshared(Box::into_raw(Box::new(GoPlugin {
        name: name.into_raw(),
        api: &API,
        ins: inst.ptr(),
        context: ctx as *mut c_void,
        private: [0; 16],
    })));
    let init = plugin.init;
    // SAFETY: FLBPluginInit(void *plugin).
    let (ret, u) = engine.run(move || unsafe { init(go.get() as *mut c_void) });
    stack.add("FLBPluginInit", u);
    if ret <= 0 {
        return Err(format!("FLBPluginInit returned {ret} (Fluent Bit exits)"));
    }
    // SAFETY: Init has returned. Fluent Bit then stores the collector id in coll_fd.
    let remote = unsafe {
        (*ctx).coll_fd = 1;
        (*ctx).remote_context
    };
    let mut pre_run = None;
    if let Some(f) = plugin.input_pre_run {
        // SAFETY: FLBPluginInputPreRun(int).
        let (r, u) = engine.run(move || unsafe { f(0) });
        stack.add("FLBPluginInputPreRun", u);
        pre_run = Some(r);
    }

    let c = Arc::new(Collect {
        plugin,
        remote: Unshared(remote),
        period: o.collect,
        stop: AtomicBool::new(false),
        engine_lock: Mutex::new(false),
        counts: Counts::default(),
    });
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let start = Instant::now();
    let thread = {
        let c = c.clone();
        std::thread::Builder::new()
            .name("fb-collect".into())
            .stack_size(o.stack_kib * 1024)
            .spawn(move || collect_thread(&c, tx))
            .map_err(|e| format!("cannot start the collect thread: {e}"))?
    };
    let limit = o.duration.unwrap_or(if o.expect_records.is_some() {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(5)
    });
    let mut got = Received::default();
    let mut pauses = 0u64;
    let mut resume_at: Option<Instant> = None;
    let mut receive = |bytes: Vec<u8>, got: &mut Received, out: &mut dyn Write| {
        if let Some(w) = raw_out.as_mut() {
            let _ = w.write_all(&bytes);
        }
        got.buffers += 1;
        got.bytes += bytes.len() as u64;
        let d = chunk::decode(&bytes);
        got.group_markers += d.group_starts + d.group_ends;
        got.invalid_objects += d.invalid.len() as u64;
        if let Some((at, e)) = &d.malformed {
            got.malformed_buffers += 1;
            got.first_error
                .get_or_insert_with(|| format!("buffer {}: offset {at}: {e}", got.buffers));
        }
        if let Some(i) = d.invalid.first() {
            got.first_error.get_or_insert_with(|| {
                format!("buffer {}: offset {}: {}", got.buffers, i.offset, i.reason)
            });
        }
        for e in &d.events {
            got.records += 1;
            *got.time_types.entry(e.kind.name()).or_default() += 1;
            if !o.quiet {
                let _ = writeln!(out, "{}", chunk::event_json(&o.tag, e));
            }
        }
    };
    loop {
        let elapsed = start.elapsed();
        if elapsed >= limit || o.expect_records.is_some_and(|n| got.records >= n) {
            break;
        }
        match rx.recv_timeout((limit - elapsed).min(Duration::from_millis(20))) {
            Ok(b) => receive(b, &mut got, &mut *out),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if let (Some(after), Some(for_)) = (o.pause_after, o.pause_for) {
            if pauses == 0 && c.counts.calls.load(Ordering::Relaxed) >= after {
                let mut paused = c.engine_lock.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(f) = plugin.pause {
                    // SAFETY: FLBPluginInputPause().
                    let (_, u) = engine.run(move || unsafe { f() });
                    stack.add("FLBPluginInputPause", u);
                }
                *paused = true;
                pauses = 1;
                resume_at = Some(Instant::now() + for_);
            }
        }
        if resume_at.is_some_and(|t| Instant::now() >= t) {
            let mut paused = c.engine_lock.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(f) = plugin.resume {
                // SAFETY: FLBPluginInputResume().
                let (_, u) = engine.run(move || unsafe { f() });
                stack.add("FLBPluginInputResume", u);
            }
            *paused = false;
            resume_at = None;
        }
    }
    c.stop.store(true, Ordering::Relaxed);
    match thread.join() {
        Ok(t) => stack.merge(&t),
        Err(_) => return Err("the collect thread panicked".into()),
    }
    // What was collected before the stop is still delivered (printed, counted).
    while let Ok(b) = rx.try_recv() {
        receive(b, &mut got, &mut *out);
    }
    let _ = out.flush();
    drop(out);
    if let Some(mut w) = raw_out {
        let _ = w.flush();
    }
    let elapsed = start.elapsed().as_secs_f64();

    // Fluent Bit: InputPreExit, then Exit (inputs have no ExitCtx), then Unregister.
    if let Some(f) = plugin.input_pre_exit {
        // SAFETY: FLBPluginInputPreExit(int).
        let (_, u) = engine.run(move || unsafe { f(0) });
        stack.add("FLBPluginInputPreExit", u);
    }
    if let Some(f) = plugin.exit {
        // SAFETY: FLBPluginExit().
        let (_, u) = engine.run(move || unsafe { f() });
        stack.add("FLBPluginExit", u);
    }
    super::unregister(plugin, &engine, &mut stack, def);
    drop(engine);
    let (_, peak_rss_kib) = crate::bench::rusage();
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let summary = serde_json::json!({
        "plugin": super::plugin_json(plugin, &reg),
        "stack_kib": o.stack_kib,
        "collect_ms": o.collect.as_millis() as u64,
        "calls": n(&c.counts.calls),
        "empty_calls": n(&c.counts.empty_calls),
        "error_calls": n(&c.counts.error_calls),
        "cleanups": n(&c.counts.cleanups),
        "cleanup_errors": n(&c.counts.cleanup_errors),
        "skipped_while_paused": n(&c.counts.skipped_while_paused),
        "pauses": pauses,
        "pre_run_return": pre_run,
        "buffers": got.buffers,
        "bytes": got.bytes,
        "records": got.records,
        "time_types": got.time_types,
        "group_markers": got.group_markers,
        "invalid_objects": got.invalid_objects,
        "malformed_buffers": got.malformed_buffers,
        "first_error": got.first_error,
        "elapsed_s": elapsed,
        "peak_rss_kib": peak_rss_kib,
        "stack": stack.json(),
        "callbacks": abi::callback_report(),
    });
    super::print_summary(o.json, summary);
    drop(inst);
    if let Some(want) = o.expect_records {
        if got.records < want {
            eprintln!(
                "host-harness fluent-bit input: {} records arrived, expected {want}",
                got.records
            );
            return Ok(1);
        }
    }
    Ok(0)
}
