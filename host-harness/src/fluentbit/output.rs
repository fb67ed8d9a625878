//! `host-harness fluent-bit output`: Register, Init per instance, PreRun, chunks to
//! FLBPluginFlushCtx on small-stack flush threads (FLB_RETRY re-scheduled, FLB_ERROR dropped),
//! PreExit and ExitCtx per instance, Unregister; a summary.

use std::collections::VecDeque;
use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::abi::{
    self, GoPlugin, Instance, OutputContext, Plugin, Unshared, API, FLB_ERROR, FLB_OK, FLB_RETRY,
    LOG_LEVEL,
};
use super::chunk;
use super::stack::{Probe, Table};
use crate::cli::FbOutputOpts;

struct Chunk {
    bytes: Vec<u8>,
    records: u64,
}

struct Task {
    inst: usize,
    chunk: Arc<Chunk>,
    attempt: u64,
}

#[derive(Default)]
struct Sched {
    ready: VecDeque<Task>,
    delayed: Vec<(Instant, Task)>,
    in_flight: usize,
    closed: bool,
}

impl Sched {
    fn pending(&self) -> usize {
        self.ready.len() + self.delayed.len() + self.in_flight
    }
}

#[derive(Default, Clone, Copy)]
struct InstStats {
    calls: u64,
    ok: u64,
    retry: u64,
    error: u64,
    invalid_returns: u64,
    retried: u64,
    dropped: u64,
    retry_exhausted: u64,
    records_ok: u64,
    bytes_ok: u64,
}

/// The flush threads of one instance (or of all of them without --workers) and their queue.
struct Pool {
    sched: Mutex<Sched>,
    cv: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    fn push(&self, t: Task, max_pending: usize) {
        let mut s = lock(&self.sched);
        while s.pending() >= max_pending {
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.ready.push_back(t);
        self.cv.notify_all();
    }

    fn close(&self) {
        lock(&self.sched).closed = true;
        self.cv.notify_all();
    }

    /// The next task due; None once closed and nothing is left.
    fn next(&self) -> Option<Task> {
        let mut s = lock(&self.sched);
        loop {
            let now = Instant::now();
            let mut k = 0;
            while k < s.delayed.len() {
                if s.delayed[k].0 <= now {
                    let (_, t) = s.delayed.swap_remove(k);
                    s.ready.push_back(t);
                } else {
                    k += 1;
                }
            }
            if let Some(t) = s.ready.pop_front() {
                s.in_flight += 1;
                return Some(t);
            }
            if s.closed && s.delayed.is_empty() && s.in_flight == 0 {
                return None;
            }
            let wait = s
                .delayed
                .iter()
                .map(|(at, _)| at.saturating_duration_since(now))
                .min()
                .unwrap_or(Duration::from_millis(200));
            s = self
                .cv
                .wait_timeout(s, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn done(&self, t: Task, retry_after: Option<Duration>) {
        let mut s = lock(&self.sched);
        s.in_flight -= 1;
        if let Some(d) = retry_after {
            s.delayed.push((
                Instant::now() + d,
                Task {
                    attempt: t.attempt + 1,
                    ..t
                },
            ));
        }
        self.cv.notify_all();
    }
}

/// What the flush threads share.
struct Flush {
    plugin: &'static Plugin,
    remote: Vec<Unshared<*mut c_void>>,
    tag: String,
    retry_limit: u64,
    retry_delay: Duration,
    stats: Mutex<Vec<InstStats>>,
}

fn flush_thread(f: &Flush, pool: &Pool) -> Table {
    let probe = Probe::current(usize::MAX);
    let mut table = Table::default();
    while let Some(task) = pool.next() {
        let ctx = f.remote[task.inst].0;
        let data = task.chunk.bytes.as_ptr() as *const c_void;
        let size = task.chunk.bytes.len();
        // A fresh copy of the tag per call, as Fluent Bit makes (valid during the call only).
        let tag = CString::new(f.tag.clone()).expect("no NUL in a tag");
        let tag_ptr = tag.as_ptr() as *mut c_char;
        let (ret, name, u) = if let Some(flush_ctx) = f.plugin.flush_ctx {
            // SAFETY: FLBPluginFlushCtx(ctx, data, size, tag), data and tag valid for the call.
            let (r, u) = probe.measure(|| unsafe { flush_ctx(ctx, data, size, tag_ptr) });
            (r, "FLBPluginFlushCtx", u)
        } else {
            let flush = f.plugin.flush.expect("checked before");
            // SAFETY: FLBPluginFlush(data, size, tag).
            let (r, u) = probe.measure(|| unsafe { flush(data, size, tag_ptr) });
            (r, "FLBPluginFlush", u)
        };
        drop(tag);
        table.add(name, u);
        let mut retry_after = None;
        {
            let mut st = lock(&f.stats);
            let s = &mut st[task.inst];
            s.calls += 1;
            match ret {
                FLB_OK => {
                    s.ok += 1;
                    s.records_ok += task.chunk.records;
                    s.bytes_ok += size as u64;
                }
                FLB_RETRY => {
                    s.retry += 1;
                    if task.attempt < f.retry_limit {
                        s.retried += 1;
                        retry_after = Some(f.retry_delay);
                    } else {
                        s.retry_exhausted += 1;
                        s.dropped += 1;
                    }
                }
                FLB_ERROR => {
                    s.error += 1;
                    s.dropped += 1;
                }
                _ => {
                    // Fluent Bit turns any other value into FLB_ERROR.
                    s.invalid_returns += 1;
                    s.error += 1;
                    s.dropped += 1;
                }
            }
        }
        pool.done(task, retry_after);
    }
    table
}

/// The chunks to send, produced as they are needed.
enum Source {
    File {
        data: Vec<u8>,
        chunks: Vec<(usize, usize, u64)>,
        next: usize,
    },
    Gen {
        spec: chunk::GenSpec,
        per_chunk: u64,
        next: u64,
    },
}

impl Source {
    fn next(&mut self) -> Option<Chunk> {
        match self {
            Source::File { data, chunks, next } => {
                let &(a, b, records) = chunks.get(*next)?;
                *next += 1;
                Some(Chunk {
                    bytes: data[a..b].to_vec(),
                    records,
                })
            }
            Source::Gen {
                spec,
                per_chunk,
                next,
            } => {
                if *next >= spec.records {
                    return None;
                }
                let to = (*next + *per_chunk).min(spec.records);
                let mut bytes = Vec::new();
                let records = chunk::generate_range(&mut bytes, spec, *next, to);
                *next = to;
                Some(Chunk { bytes, records })
            }
        }
    }

    fn rewind(&mut self) {
        match self {
            Source::File { next, .. } => *next = 0,
            Source::Gen { next, .. } => *next = 0,
        }
    }
}

fn source(o: &FbOutputOpts) -> Result<(Source, serde_json::Value), String> {
    if let Some(path) = &o.input {
        let data =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let (chunks, info) = if o.raw {
            let d = chunk::decode(&data);
            (vec![(0, data.len(), d.events.len() as u64)], d)
        } else {
            chunk::split(&data, o.chunk_records)
        };
        let input = serde_json::json!({
            "file": path.display().to_string(),
            "bytes": data.len(),
            "records": info.events.len(),
            "group_markers": info.group_starts + info.group_ends,
            "invalid_objects": info.invalid.len(),
            "malformed_at": info.malformed.as_ref().map(|m| m.0),
            "malformed_error": info.malformed.as_ref().map(|m| m.1.clone()),
        });
        return Ok((
            Source::File {
                data,
                chunks,
                next: 0,
            },
            input,
        ));
    }
    let n = o.generate.unwrap_or(0);
    let spec = super::gen_spec(n, &o.gen);
    let input = serde_json::json!({
        "generate": n,
        "record_bytes": spec.record_bytes,
        "layout": format!("{:?}", spec.layout).to_lowercase(),
        "map32": spec.map32,
        "group_every": spec.group_every,
        "edge_times": spec.edge_times,
    });
    Ok((
        Source::Gen {
            spec,
            per_chunk: o.chunk_records,
            next: 0,
        },
        input,
    ))
}

pub fn run(o: FbOutputOpts) -> i32 {
    match run_inner(&o) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("host-harness fluent-bit output: {e}");
            1
        }
    }
}

fn run_inner(o: &FbOutputOpts) -> Result<i32, String> {
    LOG_LEVEL.store(o.log_level.level(), std::sync::atomic::Ordering::Relaxed);
    let (mut src, input_json) = source(o)?;
    let plugin: &'static Plugin = Box::leak(Box::new(Plugin::open(&o.plugin)?));
    let engine = super::engine();
    let mut stack = Table::default();
    let (def, reg) = super::register(plugin, &engine, &mut stack, abi::TYPE_OUTPUT)?;
    if plugin.flush_ctx.is_none() && plugin.flush.is_none() {
        return Err(format!(
            "{}: neither FLBPluginFlushCtx nor FLBPluginFlush is exported",
            plugin.path
        ));
    }

    // One plugin struct for the .so, reused by every Init with o_ins and context overwritten.
    let name = CString::new(reg.name.clone()).map_err(|_| "plugin name with NUL")?;
    let go = Unshared(Box::into_raw(Box::new(GoPlugin {
        name: name.into_raw(),
        api: &API,
        ins: std::ptr::null_mut(),
        context: std::ptr::null_mut(),
        private: [0; 16],
    })));
    let mut instances: Vec<Box<Instance>> = Vec::new();
    let mut remote = Vec::new();
    for i in 0..o.instances {
        let mut props = o.props.clone();
        props.extend(
            o.instance_props
                .iter()
                .filter(|p| p.0 == i)
                .map(|(_, k, v)| (k.clone(), v.clone())),
        );
        let inst = Instance::new(false, &props);
        let ctx = Box::into_raw(Box::new(OutputContext {
            remote_context: std::ptr::null_mut(),
            proxy: std::ptr::null_mut(),
        }));
        // SAFETY: our struct; the plugin is not running.
        unsafe {
            (*go.0).ins = inst.ptr();
            (*go.0).context = ctx as *mut c_void;
        }
        let init = plugin.init;
        let g = Unshared(go.0);
        // SAFETY: FLBPluginInit(void *plugin) with the plugin struct.
        let (ret, u) = engine.run(move || unsafe { init(g.get() as *mut c_void) });
        stack.add("FLBPluginInit", u);
        if ret <= 0 {
            return Err(format!(
                "FLBPluginInit returned {ret} for instance {i} (Fluent Bit exits)"
            ));
        }
        // SAFETY: Init has returned; the context is ours.
        remote.push(Unshared(unsafe { (*ctx).remote_context }));
        instances.push(inst);
    }
    let mut pre_run = Vec::new();
    if let Some(f) = plugin.output_pre_run {
        for _ in 0..o.instances {
            // SAFETY: FLBPluginOutputPreRun(int hot_reload), once per instance like Fluent Bit.
            let (ret, u) = engine.run(move || unsafe { f(0) });
            stack.add("FLBPluginOutputPreRun", u);
            pre_run.push(ret);
        }
    }

    // Flush.
    let flush = Arc::new(Flush {
        plugin,
        remote,
        tag: o.tag.clone(),
        retry_limit: o.retry_limit,
        retry_delay: o.retry_delay,
        stats: Mutex::new(vec![InstStats::default(); o.instances]),
    });
    let (pool_count, threads_per_pool) = if o.workers == 0 {
        (1, 1)
    } else {
        (o.instances, o.workers as usize)
    };
    let pools: Vec<Arc<Pool>> = (0..pool_count)
        .map(|_| {
            Arc::new(Pool {
                sched: Mutex::new(Sched::default()),
                cv: Condvar::new(),
            })
        })
        .collect();
    let (cpu0, _) = crate::bench::rusage();
    let start = Instant::now();
    let mut threads = Vec::new();
    for (p, pool) in pools.iter().enumerate() {
        for w in 0..threads_per_pool {
            let (f, pool) = (flush.clone(), pool.clone());
            let h = std::thread::Builder::new()
                .name(format!("fb-flush-{p}-{w}"))
                .stack_size(o.stack_kib * 1024)
                .spawn(move || flush_thread(&f, &pool))
                .map_err(|e| format!("cannot start a flush thread: {e}"))?;
            threads.push(h);
        }
    }
    let max_pending = (4 * threads_per_pool).max(8);
    let (mut chunks, mut records, mut bytes) = (0u64, 0u64, 0u64);
    for rep in 0..o.repeat {
        if rep > 0 {
            src.rewind();
        }
        while let Some(c) = src.next() {
            chunks += 1;
            records += c.records;
            bytes += c.bytes.len() as u64;
            let c = Arc::new(c);
            for inst in 0..o.instances {
                let pool = &pools[if o.workers == 0 { 0 } else { inst }];
                pool.push(
                    Task {
                        inst,
                        chunk: c.clone(),
                        attempt: 0,
                    },
                    max_pending,
                );
            }
        }
    }
    for p in &pools {
        p.close();
    }
    for h in threads {
        match h.join() {
            Ok(t) => stack.merge(&t),
            Err(_) => return Err("a flush thread panicked".into()),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (cpu1, _) = crate::bench::rusage();

    // Shutdown, per instance like Fluent Bit's cb_exit: PreExit, then ExitCtx (else Exit).
    for r in &flush.remote {
        if let Some(f) = plugin.output_pre_exit {
            // SAFETY: FLBPluginOutputPreExit(int by_hot_reload).
            let (_, u) = engine.run(move || unsafe { f(0) });
            stack.add("FLBPluginOutputPreExit", u);
        }
        if let Some(f) = plugin.exit_ctx {
            let ctx = Unshared(r.0);
            // SAFETY: FLBPluginExitCtx(remote_context).
            let (_, u) = engine.run(move || unsafe { f(ctx.get()) });
            stack.add("FLBPluginExitCtx", u);
        } else if let Some(f) = plugin.exit {
            // SAFETY: FLBPluginExit().
            let (_, u) = engine.run(move || unsafe { f() });
            stack.add("FLBPluginExit", u);
        }
    }
    super::unregister(plugin, &engine, &mut stack, def);
    drop(engine);
    let (_, peak_rss_kib) = crate::bench::rusage();

    let st = lock(&flush.stats).clone();
    let sum = |f: fn(&InstStats) -> u64| st.iter().map(f).sum::<u64>();
    let records_ok = sum(|s| s.records_ok);
    let cpu = (cpu1 - cpu0).max(0.0);
    let ok = sum(|s| s.ok);
    let summary = serde_json::json!({
        "plugin": super::plugin_json(plugin, &reg),
        "input": input_json,
        "instances": o.instances,
        "workers": o.workers,
        "flush_threads": pool_count * threads_per_pool,
        "stack_kib": o.stack_kib,
        "chunks": chunks,
        "records": records,
        "bytes": bytes,
        "flush_calls": sum(|s| s.calls),
        "ok": ok,
        "retry": sum(|s| s.retry),
        "error": sum(|s| s.error),
        "invalid_returns": sum(|s| s.invalid_returns),
        "retried": sum(|s| s.retried),
        "dropped": sum(|s| s.dropped),
        "retry_exhausted": sum(|s| s.retry_exhausted),
        "records_ok": records_ok,
        "per_instance": st.iter().map(|s| serde_json::json!({
            "calls": s.calls, "ok": s.ok, "retry": s.retry, "error": s.error,
            "dropped": s.dropped, "records_ok": s.records_ok, "bytes_ok": s.bytes_ok,
        })).collect::<Vec<_>>(),
        "pre_run_returns": pre_run,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "records_per_s": if elapsed > 0.0 { records_ok as f64 / elapsed } else { 0.0 },
        "mb_per_cpu_s": if cpu > 0.0 { sum(|s| s.bytes_ok) as f64 / 1e6 / cpu } else { 0.0 },
        "peak_rss_kib": peak_rss_kib,
        "stack": stack.json(),
        "callbacks": abi::callback_report(),
    });
    super::print_summary(o.json, summary);
    drop(instances);
    if let Some(n) = o.expect_ok {
        if ok != n {
            eprintln!("host-harness fluent-bit output: {ok} flushes returned FLB_OK, expected {n}");
            return Ok(1);
        }
    }
    Ok(0)
}
