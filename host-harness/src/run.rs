//! `run`: load configs, run them, print what arrives, stop on a signal, a deadline or a count.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cli::RunOpts;
use crate::host::{self, RunSettings};
use crate::libs::{load_for_command, Flavour, Libs};

/// Project name given to `LoadConfig`.
pub const PROJECT: &str = "harness";
/// Logstore key given to `LoadConfig`.
const LOGSTORE_KEY: i64 = 1;
/// How often the main thread looks at the stop conditions.
const POLL: Duration = Duration::from_millis(20);

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    // Only async-signal-safe work here: a second signal means "exit now".
    if STOP.swap(true, Ordering::SeqCst) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

/// Whether SIGINT/SIGTERM arrived (after [`install_signal_handlers`]).
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Installs SIGINT/SIGTERM handlers that only set [`STOP`].
pub fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is a valid starting point; the handler is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// A config file to load.
pub struct ConfigFile {
    pub path: PathBuf,
    pub name: String,
}

/// The file stem as config name, checked for duplicates.
pub fn config_files(paths: &[PathBuf]) -> Result<Vec<ConfigFile>, String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for p in paths {
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                format!(
                    "{}: cannot derive a config name from this path",
                    p.display()
                )
            })?;
        if !seen.insert(name.clone()) {
            return Err(format!(
                "{}: config name {name:?} (the file stem) is used by two files",
                p.display()
            ));
        }
        out.push(ConfigFile {
            path: p.clone(),
            name,
        });
    }
    Ok(out)
}

/// The data directory: the given one, or a fresh one under /tmp (`true` = ours to remove).
pub fn data_dir(given: Option<&Path>) -> Result<(PathBuf, bool), String> {
    let (dir, ours) = match given {
        Some(d) => (d.to_path_buf(), false),
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let d = std::env::temp_dir()
                .join(format!("host-harness-{}-{nanos:08x}", std::process::id()));
            (d, true)
        }
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
    Ok((dir, ours))
}

/// This machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its length.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The `InitPluginBaseV2` JSON.
pub fn init_json(data_dir: &Path) -> String {
    serde_json::json!({
        "LogtailSysConfDir": data_dir.to_string_lossy(),
        "HostIP": "127.0.0.1",
        "Hostname": hostname(),
    })
    .to_string()
}

/// The `InitPluginBaseV2` JSON of a LoongCollector 3.x host (no `LogtailSysConfDir`).
pub fn loong_init_json(data_dir: &Path) -> String {
    let d = data_dir.to_string_lossy();
    serde_json::json!({
        "LoongCollectorConfDir": format!("{d}/conf/"),
        "LoongCollectorLogDir": format!("{d}/log/"),
        "LoongCollectorDataDir": format!("{d}/data/"),
        "LoongCollectorGoCheckPointDir": format!("{d}/data/"),
        "LoongCollectorGoCheckPointFile": "go_plugin_checkpoint",
        "HostIP": "127.0.0.1",
        "Hostname": hostname(),
    })
    .to_string()
}

/// The name a LoongCollector host gives config `stem`: `<stem>/1` when it has inputs (its
/// own data), `<stem>/2` when it is fed by the host.
fn loong_name(stem: &str, json: &str) -> String {
    let has_inputs = serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v.get("inputs")?.as_array().map(|a| !a.is_empty()))
        .unwrap_or(false);
    format!("{stem}/{}", if has_inputs { 1 } else { 2 })
}

/// Loads every config (files read now). Prints the failure and returns false on error. As a
/// LoongCollector host: `LoadPipeline` each (as `<stem>/1` or `<stem>/2`), then `Start` each
/// (a reload first stops the running one with `Stop(name, 0)`).
fn load_all(
    libs: &Libs,
    files: &[ConfigFile],
    logstore: Option<&str>,
    loong: bool,
    reload: bool,
) -> bool {
    let mut started = Vec::new();
    for f in files {
        let json = match std::fs::read_to_string(&f.path) {
            Ok(j) => j,
            Err(e) => {
                eprintln!("harness: error: cannot read {}: {e}", f.path.display());
                return false;
            }
        };
        let ls = logstore.unwrap_or(&f.name);
        let (export, name, rc) = if loong {
            let name = loong_name(&f.name, &json);
            let rc = libs.load_pipeline(PROJECT, ls, &name, LOGSTORE_KEY, &json);
            ("LoadPipeline", name, rc)
        } else {
            let rc = libs.load_config(PROJECT, ls, &f.name, LOGSTORE_KEY, &json);
            ("LoadConfig", f.name.clone(), rc)
        };
        if rc != 0 {
            eprintln!(
                "harness: error: {export} failed for {} (config {name:?}, returned {rc}); \
                 the base's messages above say why",
                f.path.display()
            );
            return false;
        }
        started.push(name);
    }
    if loong {
        for n in &started {
            if reload {
                libs.stop(n, false);
            }
            libs.start(n);
        }
    }
    true
}

/// Sums the counters of the pulled `direct` records by (config, plugin type, counter).
fn summarise_metrics(libs: &Libs, sums: &mut std::collections::BTreeMap<String, u64>) {
    for rec in libs.go_metrics("direct") {
        let get = |k: &str| {
            rec.iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| serde_json::from_str::<serde_json::Value>(v).ok())
        };
        let (Some(labels), Some(counters)) = (get("labels"), get("counters")) else {
            eprintln!("harness: error: a pulled metric record lacks labels or counters: {rec:?}");
            continue;
        };
        let label = |k: &str| labels[k].as_str().unwrap_or("").to_string();
        let key = format!("{}/{}", label("pipeline_name"), label("plugin_type"));
        for (c, v) in counters.as_object().into_iter().flatten() {
            let n = v.as_str().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
            *sums.entry(format!("{key}/{c}")).or_default() += n;
        }
    }
}

/// Runs the `run` command; returns the exit code.
pub fn run(o: RunOpts) -> i32 {
    let files = match config_files(&o.configs) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("harness: error: {e}");
            return 2;
        }
    };
    for f in &files {
        if let Err(e) = std::fs::metadata(&f.path) {
            eprintln!("harness: error: cannot read {}: {e}", f.path.display());
            return 1;
        }
    }
    let (dir, ours) = match data_dir(o.data_dir.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("harness: error: {e}");
            return 1;
        }
    };
    let code = run_in(&o, &files, &dir);
    if ours {
        let _ = std::fs::remove_dir_all(&dir);
    }
    code
}

/// Everything after the data directory exists; returns the exit code.
fn run_in(o: &RunOpts, files: &[ConfigFile], dir: &Path) -> i32 {
    host::install_run(RunSettings {
        quiet: o.quiet,
        reject_first: o.reject_first,
        reject_rate: o.reject_rate,
        seed: o.seed,
        reject_for: o.reject_for,
        delay: o.delay,
        loaded_configs: files.iter().map(|f| f.name.clone()).collect(),
        stats: o.stats,
    });
    install_signal_handlers();
    let Some(libs) = load_for_command(o.lib_dir.as_deref(), Flavour::of(o.loongcollector)) else {
        return 2;
    };
    eprintln!("harness: loaded {}", libs.describe());
    eprintln!("harness: data directory {}", dir.display());
    if o.stats {
        // Before InitPluginBaseV2, so the reporter starts with these intervals.
        let json = crate::stats::global_config_json(o.stats_interval_ms);
        match libs.load_global_config(&json) {
            Ok(0) => eprintln!("harness: LoadGlobalConfig({json})"),
            Ok(rc) => {
                eprintln!("harness: error: LoadGlobalConfig({json}) returned {rc}");
                return 1;
            }
            Err(e) => {
                eprintln!("{e}");
                return 2;
            }
        }
    }
    let json = if o.loongcollector {
        loong_init_json(dir)
    } else {
        init_json(dir)
    };
    let rc = libs.init_v2(&json);
    if rc != 0 {
        eprintln!("harness: error: InitPluginBaseV2 returned {rc}");
        return 1;
    }
    host::mark_started();
    if !load_all(&libs, files, o.logstore.as_deref(), o.loongcollector, false) {
        return 1;
    }
    if !o.loongcollector {
        libs.resume();
    }
    let mut sums = std::collections::BTreeMap::new();
    let code = main_loop(&libs, o, files, &mut sums);
    let t = Instant::now();
    if o.loongcollector {
        libs.stop_all(true);
        let with_inputs_ms = t.elapsed().as_millis();
        libs.stop_all(false);
        eprintln!(
            "harness: StopAllPipelines(1) {with_inputs_ms} ms, StopAllPipelines(0) {} ms",
            t.elapsed().as_millis() - with_inputs_ms
        );
    } else {
        libs.hold_on(1);
    }
    let holdon_ms = t.elapsed().as_millis() as u64;
    if o.loongcollector {
        // The host's last monitoring round comes after StopAllPipelines(0).
        summarise_metrics(&libs, &mut sums);
        libs.stop_builtin();
        let interesting: Vec<String> = sums
            .iter()
            .filter(|(k, v)| {
                **v > 0 && (k.ends_with("/in_events_total") || k.ends_with("/out_events_total"))
            })
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        eprintln!(
            "harness: pulled metrics (GetGoMetrics(\"direct\"), summed): {}",
            interesting.join(" ")
        );
    }
    let mut code = code.map_or_else(
        |why| {
            eprintln!("harness: error: {why}");
            1
        },
        |()| 0,
    );
    if let Some(n) = o.expect_logs {
        let got = host::run_logs();
        if got < n {
            eprintln!("harness: error: expected {n} logs, received {got}");
            code = 1;
        }
    }
    report(o, holdon_ms);
    code
}

/// Waits for a stop condition, reloading on schedule. `Err` = a reload failed (exit code 1).
fn main_loop(
    libs: &Libs,
    o: &RunOpts,
    files: &[ConfigFile],
    sums: &mut std::collections::BTreeMap<String, u64>,
) -> Result<(), String> {
    let start = Instant::now();
    let mut next_pull = start + Duration::from_secs(1);
    let mut next_reload = o.reload_every.map(|d| start + d);
    let mut reloads = 0u64;
    loop {
        std::thread::sleep(POLL);
        if stop_requested() {
            eprintln!("harness: signal received, stopping");
            break;
        }
        if let Some(n) = o.expect_logs {
            if host::run_logs() >= n {
                break;
            }
        }
        if o.duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        if o.loongcollector && Instant::now() >= next_pull {
            // As the host's SelfMonitorServer (every 60 s there).
            summarise_metrics(libs, sums);
            next_pull = Instant::now() + Duration::from_secs(1);
        }
        if let Some(at) = next_reload.filter(|at| Instant::now() >= *at) {
            let t = Instant::now();
            if !o.loongcollector {
                libs.hold_on(0);
            }
            let held_ms = t.elapsed().as_millis();
            if !load_all(libs, files, o.logstore.as_deref(), o.loongcollector, true) {
                RELOADS.store(reloads, Ordering::SeqCst);
                return Err(format!("reload #{} failed", reloads + 1));
            }
            if !o.loongcollector {
                libs.resume();
            }
            reloads += 1;
            if o.loongcollector {
                eprintln!(
                    "harness: reload #{reloads} done (LoadPipeline, Stop(name, 0), Start: {} ms)",
                    t.elapsed().as_millis()
                );
            } else {
                eprintln!(
                    "harness: reload #{reloads} done (HoldOn(0) {held_ms} ms, total {} ms)",
                    t.elapsed().as_millis()
                );
            }
            next_reload = o.reload_every.map(|d| at.max(Instant::now()) + d);
        }
    }
    RELOADS.store(reloads, Ordering::SeqCst);
    Ok(())
}

static RELOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn report(o: &RunOpts, holdon_ms: u64) {
    let st = host::run_stats();
    let reloads = RELOADS.load(Ordering::SeqCst);
    eprintln!(
        "harness: summary: {} groups, {} logs ({} groups / {} logs under other configs), \
         {} rejected sends, {} bad groups, {} duplicate pack ids, {} pack id gaps, \
         {} reloads, HoldOn(1) {} ms",
        st.groups,
        st.logs,
        st.other_groups,
        st.other_logs,
        st.rejected_sends,
        st.bad_groups,
        st.duplicate_pack_ids,
        st.pack_id_gaps,
        reloads,
        holdon_ms
    );
    if o.summary_json {
        let per_config: serde_json::Map<String, serde_json::Value> = st
            .per_config
            .iter()
            .map(|(k, c)| {
                (
                    k.clone(),
                    serde_json::json!({
                        "groups": c.groups, "logs": c.logs, "rejected_sends": c.rejected_sends
                    }),
                )
            })
            .collect();
        let summary = serde_json::json!({ "summary": {
            "groups": st.groups,
            "logs": st.logs,
            "rejected_sends": st.rejected_sends,
            "per_config": per_config,
            "duplicate_pack_ids": st.duplicate_pack_ids,
            "pack_id_gaps": st.pack_id_gaps,
            "holdon_ms": holdon_ms,
            "other_groups": st.other_groups,
            "other_logs": st.other_logs,
            "bad_groups": st.bad_groups,
            "lines_mismatches": st.lines_mismatches,
            "pack_id_prefixes": st.pack_id_prefixes,
            "missing_pack_ids": st.missing_pack_ids,
            "malformed_pack_ids": st.malformed_pack_ids,
            "ctl_cmds": st.ctl_cmds,
            "reloads": reloads,
        }});
        println!("{summary}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_are_stems_and_unique() {
        let f = config_files(&["/a/x.json".into(), "y.json".into()]).unwrap();
        assert_eq!(f[0].name, "x");
        assert_eq!(f[1].name, "y");
        let e = config_files(&["/a/x.json".into(), "/b/x.json".into()])
            .err()
            .unwrap();
        assert!(e.contains("used by two files"), "{e}");
    }

    #[test]
    fn init_json_has_the_keys() {
        let v: serde_json::Value = serde_json::from_str(&init_json(Path::new("/tmp/d"))).unwrap();
        assert_eq!(v["LogtailSysConfDir"], "/tmp/d");
        assert_eq!(v["HostIP"], "127.0.0.1");
        assert!(!v["Hostname"].as_str().unwrap().is_empty());
    }

    #[test]
    fn fresh_data_dir_is_created() {
        let (d, ours) = data_dir(None).unwrap();
        assert!(ours && d.is_dir());
        std::fs::remove_dir_all(d).unwrap();
    }
}
