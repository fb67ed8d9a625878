//! Command-line parsing (clap derive) and the long help texts.
//!
//! Options take their value as `--opt VALUE` or `--opt=VALUE`; `--` ends the options; a
//! repeated option keeps its last value. `-h` prints a summary, `--help` (and
//! `host-harness help CMD`) the whole text. [`parse`] returns help, version and usage errors
//! as a [`clap::Error`]: `main` prints it and exits with its code (0 for help and version,
//! 2 for usage errors).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

const MAIN_LONG_ABOUT: &str = "\
load libPluginAdapter.so and libPluginBase.so exactly like an iLogtail host does (adaptor first
with RTLD_LAZY|RTLD_LOCAL, RegisterLogtailCallBackV2, then the base) and drive them";

const MAIN_AFTER_LONG_HELP: &str = "\
Build the libraries with `cargo build --release` (or `cargo build`); cargo puts them next to
this executable in target/release (target/debug).

Exit codes:
    0 success, 1 failure (bad config, base error, expectation not met), 2 usage error or
    library not found.";

const RUN_LONG_ABOUT: &str = "\
load pipeline configs into the base, run them, print what the host receives

Sequence: InitPluginBaseV2({LogtailSysConfDir, HostIP: 127.0.0.1, Hostname}) → for each file
LoadConfig(project \"harness\", logstore = file stem, config name = file stem, logstore key 1,
file contents) → Resume() → ... → HoldOn(1) on stop. With --loongcollector, the LoongCollector
3.x sequence instead (see that option).

Every log group received through SendPb/SendPbV2 is printed to stdout as one JSON line:
    {\"config\":..,\"logstore\":..,\"pack_id\":..,\"topic\":..,\"source\":..,\"tags\":{..},
     \"logs\":[{\"time\":..,\"contents\":{..}}, ..]}
(\"time_ns\" and \"values\" appear on a log only when set; absent topic/source/pack_id are null.)

Stops on SIGINT/SIGTERM (a second signal exits at once with code 130), when --duration has
elapsed, or when --expect-logs logs have arrived; then calls HoldOn(1) and prints a summary
line to stderr (and a JSON summary line to stdout with --summary-json):
    {\"summary\":{\"groups\":G,\"logs\":L,\"rejected_sends\":R,\"per_config\":{..},
     \"duplicate_pack_ids\":D,\"pack_id_gaps\":X,\"holdon_ms\":T,..}}
`groups`/`logs` (and --expect-logs) count only the configs loaded from CONFIG files; groups the
base sends under other names (logtail_alarm, shennong_log_profile, ..) are printed, listed in
per_config and counted in other_groups/other_logs. Pack ids (`__pack_id__` = PREFIX-HEXSEQ) are
tracked per prefix: duplicates and missing sequences between the lowest and highest seen.";

const RUN_AFTER_LONG_HELP: &str = "\
Statistics (--stats):
    LoadGlobalConfig({\"AlarmIntervalMs\": 1000, \"StatisticsIntervalMs\": MS}) is called before
    InitPluginBaseV2 (MS = --stats-interval-ms), and stderr gets each statistics group (config
    shennong_log_profile) as a table, one line per plugin:
        stats: config plugin in out dropped errors retries restarts queue
    and each alarm (config logtail_alarm) as
        alarm: <type> <config> <plugin> x<count>: <message>
    (the groups are still printed to stdout unless --quiet)";

const VALIDATE_LONG_ABOUT: &str = "\
check pipeline configs without running them

Calls the base export CheckConfig(config name = file stem, file contents) for each file and
prints `OK <file>` for a valid one, or each error line prefixed with `<file>: `. Before them,
`<file>: warning: ...` lines from CheckConfigWarnings name `global` keys that no host
generation uses (they are ignored when loading; warnings never make a file invalid).
Exit code 1 if any file is invalid, unreadable or not JSON.";

const BENCH_LONG_ABOUT: &str = "\
measure the base on generated log lines

Loads config \"bench\" (no inputs, processors from --scenario or --processors, aggregator_default,
flusher_sls), pre-generates serialized LogGroups (a ring of at most 64 distinct batches, reused
cyclically; each log has one field `content` = a generated line, see --input), then times
from the first ProcessLogGroup until the host has received all expected logs, and HoldOn(1).
Prints events, input MB (line bytes, 1 MB = 10^6 bytes), wall seconds, events/s, MB/s, process
CPU seconds (user+sys over the timed region), CPU seconds per million events, MB per
CPU-second, and peak RSS.";

const BENCH_AFTER_LONG_HELP: &str = "\
File collection (--file):
    Instead of pushing LogGroups, reads a log file with the base's input_file: generates (or
    reuses) a file of at least --file-mb MB, kept at --keep-file (default
    <temp dir>/plugin-bench-file/single-<N>MB.log, or multiline-<N>MB.log) with a sidecar
    <file>.meta.json holding its kind, size and record count; a file is reused when the
    sidecar matches the kind, --file-mb and the file's size (generation is timed apart, never
    measured). Single-line: nginx access-log lines (~200 bytes). --multiline: Java logs
    (`2026-12-01 16:47:36.123 INFO [thread-3] com.example.Foo - ...`), ~20% of records an
    ERROR line followed by 5-30 `\\tat ...` frames, sometimes `Caused by: ...` and
    `\\t... N more`.
    Config \"bench_file\": input_file {FilePaths [file], TailSizeKB 10485760 (read from the
    beginning), FlushTimeoutSecs 1, with --multiline Multiline.StartPattern
    \\d{4}-\\d{2}-\\d{2} .*}, aggregator_default, flusher_sls. Timed from LoadConfig until the
    host has received one log per record; reports MB read, wall seconds, process CPU seconds
    (user+sys), MB per CPU-second, MB/s, peak RSS during the run (VmHWM, reset before
    LoadConfig) and VmRSS before/after; exit 1 unless exactly the expected logs arrived (counted
    again after HoldOn(1)). Use a fresh --data-dir (the default): checkpoints in a reused one
    make the input skip what it has read.
    The file is read once before the run (not measured) so that it is in the page cache.
    --fluent-bit [PATH] then runs, on the same file, `PATH -q -i tail -p path=FILE
    -p read_from_head=true -p exit_on_eof=true -p file_cache_advise=off
    [-p multiline.parser=java] -o null -f 1` (PATH default: $FLUENT_BIT_BIN, else
    ../shared/tools/fluent-bit/bin/fluent-bit next to the repository) and reports its CPU
    seconds (RUSAGE_CHILDREN), wall seconds (startup and its exit on EOF included), peak RSS,
    MB per CPU-second, and ours / Fluent Bit. (file_cache_advise=off: by default tail drops
    the file from the page cache with posix_fadvise and reads it from the disk.) A Fluent
    Bit that fails after reading the whole file (the offset of its descriptor, polled from
    /proc) gives a warning and its figures; one that fails before, or runs past --timeout, an
    error.

Buffered delivery (--buffer):
    input_file reads a generated file of exactly --records nginx lines (the first lines of
    --file's; <temp dir>/plugin-bench-file/nginx-<N>records.log, reused) → aggregator_default
    → flusher_file (Format json, MaxFileSize 0, in a temp dir) or flusher_http (ndjson to a
    local HTTP/1.1 sink), with Buffer {Type memory} or {Type file, Path in a temp dir}, other
    Buffer options at their defaults. Each case runs in its own process (peak RSS and CPU are
    its own); the sink runs in another child (`host-harness bench-sink`: it counts the
    ndjson lines of the bodies it accepts, or the lines flusher_file wrote), so its CPU is
    not in the figures (it is reported apart). Reports per case MB (of the input file) per
    CPU-second, MB/s, records/s, peak RSS; exit 1 unless exactly --records records arrived
    (counted again after HoldOn(1)).
    --outage-secs S (http only): the sink answers 503 (no Retry-After) for the first S s of
    another run of each http case; RSS, the disk buffer's size and the bytes the process read
    are sampled every second; then the sink accepts again, and the backlog's drain (from the
    first accepted request until all records arrived) is compared with the normal run's
    records/s.

Scaling out (--scale-out):
    The --records nginx file (as --buffer's) is sent to the real Fluent Bit as the receiver
    (its forward, syslog (tcp, rfc5424) or opentelemetry input → null, counting records in
    its monitoring API, -H) twice, each time to a fresh receiver: by ours (`host-harness run`
    of input_file → aggregator_default → flusher_forward / flusher_syslog / flusher_otlp,
    memory buffer, in a child) and by Fluent Bit's own output (tail → forward / syslog /
    opentelemetry, in a child). Each sender's CPU (user + system, /proc/<pid>/stat) and peak
    RSS are read when the receiver has counted every record; records/s and MB/s are over
    the sender's wall time from its start. Protocols: forward without and with
    require_ack_response, syslog rfc5424 over tcp, OTLP over HTTP/protobuf and gRPC, and
    flusher_kafka_v2 into librdkafka's mock cluster (a child; records counted by the topic's
    high watermarks; no Fluent Bit side: its kafka output is not built in). Fluent Bit:
    --fluent-bit PATH, $FLUENT_BIT_BIN, else ../shared/tools/fluent-bit/bin/fluent-bit.

Examples (build with `cargo build --release` first):
    target/release/host-harness bench --scenario raw --events 2000000
    target/release/host-harness bench --scenario regex-filter-add --json
    target/release/host-harness bench --input json --processors my-processors.json
    target/release/host-harness bench --file --fluent-bit
    target/release/host-harness bench --file --multiline --file-mb 256 --fluent-bit --json
    target/release/host-harness bench --buffer
    target/release/host-harness bench --scale-out --records 1000000
    target/release/host-harness bench --buffer --sink http --buffer-type file --outage-secs 60";

const FOOTPRINT_LONG_ABOUT: &str = "\
what configs cost the host process (RSS, OS threads), idle and over time

Sequence: dlopen + callbacks → measure \"before init\" → InitPluginBaseV2 → measure \"after init\"
→ LoadConfig of N configs fp_0001..fp_N (project \"harness\", logstore = config name, logstore
key = its number, global AggregatIntervalMs 1000, flusher_sls) → measure \"after load\" →
Resume() → wait --warmup → measure \"after warm-up\" (the first sample) → a sample every
--sample-every until --duration has passed since Resume → HoldOn(1), timed → measure
\"after HoldOn\". A measurement is VmRSS from /proc/self/status and the number of entries in
/proc/self/task (OS threads), of the whole process: the harness's own share is allocated and
its threads are started before \"before init\". \"after init\" and \"after load\" are taken
once the thread count has not changed for 0.3 s (at most 3 s), so threads the base starts in
the background count to the stage that started them. SIGINT/SIGTERM ends the sampling early
(a second signal exits at once with code 130).

The host accepts every send and only counts the logs in it; groups of other configs
(logtail_alarm, shennong_log_profile) are counted apart, not as delivered logs.";

/// The end of `footprint --help`: the output, every field of the `--json` report, exit codes.
pub const FOOTPRINT_HELP: &str = "\
Output:
    Unless --quiet, one line per sample on stderr:
        footprint: t=<s since Resume> rss=<MiB> threads=<n> logs=<delivered so far>
    Then a report on stdout; with --json one object with these fields (KiB = 1024 bytes):
    configs, input, rate, duration_s, warmup_s, sample_every_s
                        the options the run used
    load_ms             time of the N LoadConfig calls
    rss_before_init_kib, rss_after_init_kib, rss_after_load_kib, rss_after_warmup_kib,
    rss_after_holdon_kib
                        VmRSS at each stage
    threads_before_init, threads_after_init, threads_after_load, threads_after_warmup,
    threads_after_holdon
                        OS threads at each stage
    per_config_kib      (rss_after_warmup_kib - rss_after_init_kib) / configs
    per_config_loaded_kib
                        (rss_after_load_kib - rss_after_init_kib) / configs (loaded, not running)
    threads_added_after_load, threads_added_after_warmup
                        threads at that stage minus threads_after_init
    sample_count, sampled_s
                        samples taken from the end of warm-up on, and the seconds they span
    rss_first_kib, rss_last_kib, rss_min_kib, rss_max_kib
                        VmRSS over those samples
    rss_growth_kib      rss_last_kib - rss_first_kib
    rss_slope_kib_per_min
                        least-squares slope of VmRSS over the samples (null with < 2 samples)
    threads_min, threads_max
                        OS threads over the samples
    cpu_s, cpu_pct      process CPU seconds (user+sys) over the sampled period, and as a
                        percentage of one core
    logs_delivered      logs of the fp_* configs the host accepted, HoldOn(1) included
    logs_per_s          logs delivered per second over the sampled period
    expected_logs_per_s configs * rate
    configs_delivering  fp_* configs that delivered at least one log
    groups_delivered, bad_groups
                        log groups of the fp_* configs accepted / that did not decode
    other_groups, other_logs
                        groups and logs of other configs (alarms, statistics)
    logs_pushed, push_errors
                        host-fed: logs given to ProcessLogGroup, calls that did not return 0
    holdon_ms           duration of HoldOn(1)
    threads_by_name_last_sample, threads_by_name_after_holdon
                        {name: count} of the OS threads (/proc/self/task/*/comm) at the last
                        sample and after HoldOn(1)
    samples             [{\"t_s\":..,\"rss_kib\":..,\"threads\":..,\"logs\":..}, ..]

Exit code 1 when a call into the base fails (InitPluginBaseV2, LoadConfig, ProcessLogGroup)
or a group does not decode; figures are reported, never judged.

Examples (build with `cargo build --release` first):
    target/release/host-harness footprint --configs 1000 --rate 1 --duration 120
    target/release/host-harness footprint --input host-fed --rate 0 --configs 1000 --duration 30
    target/release/host-harness footprint --duration 600 --quiet --json";

/// The whole command line.
#[derive(Debug, Parser)]
#[command(
    name = "host-harness",
    version,
    about = "load libPluginAdapter.so and libPluginBase.so exactly like an iLogtail host does",
    long_about = MAIN_LONG_ABOUT,
    after_long_help = MAIN_AFTER_LONG_HELP,
    subcommand_required = true,
    arg_required_else_help = true,
    args_override_self = true
)]
struct Cli {
    /// directory holding libPluginAdapter.so and libPluginBase.so
    /// (default: $PLUGIN_LIB_DIR, else the directory of this executable)
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        display_order = 900,
        verbatim_doc_comment
    )]
    lib_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Subcommand)]
pub enum Command {
    /// load pipeline configs, run them and print every log group the base sends
    #[command(
        long_about = RUN_LONG_ABOUT,
        after_long_help = RUN_AFTER_LONG_HELP,
        args_override_self = true,
        allow_negative_numbers = true
    )]
    Run(RunOpts),
    /// check pipeline configs with the base's CheckConfig export (no plugin is started)
    #[command(long_about = VALIDATE_LONG_ABOUT, args_override_self = true)]
    Validate(ValidateOpts),
    /// push generated nginx access-log lines through ProcessLogGroup and measure
    #[command(
        long_about = BENCH_LONG_ABOUT,
        after_long_help = BENCH_AFTER_LONG_HELP,
        args_override_self = true,
        allow_negative_numbers = true
    )]
    Bench(BenchOpts),
    /// load N configs and measure the host process's RSS and thread count over time
    #[command(
        long_about = FOOTPRINT_LONG_ABOUT,
        after_long_help = FOOTPRINT_HELP,
        args_override_self = true,
        allow_negative_numbers = true
    )]
    Footprint(FootprintOpts),
    /// `bench --buffer`'s sink, run as a child: an HTTP/1.1 server on 127.0.0.1 or a
    /// counter of the lines of a file, controlled on stdin
    #[command(hide = true)]
    BenchSink(BenchSinkOpts),
    /// `bench --scale-out`'s Kafka receiver, run as a child: librdkafka's mock cluster
    #[command(hide = true)]
    BenchKafkaBroker,
    /// a Fluent Bit-style proxy host: load an external (Go-proxy ABI) plugin .so and drive it
    #[command(long_about = FB_LONG_ABOUT, subcommand_required = true, arg_required_else_help = true)]
    FluentBit(FbCommand),
}

const FB_LONG_ABOUT: &str = "\
a Fluent Bit-style proxy host: dlopen an external plugin .so (the \"Go proxy\" ABI of
fluent-bit -e PLUGIN.so, any language) and call it like Fluent Bit does

output: PreRegister(0) → Register → Init per instance (the same plugin struct each time, o_ins and
context overwritten) → OutputPreRun(0) per instance → FlushCtx (else Flush) with every chunk
for every instance, on threads with a --stack-kib stack (Fluent Bit: a 64 KiB coroutine) →
OutputPreExit(0) and ExitCtx (else Exit) per instance → Unregister.
input: PreRegister(0) → Register → Init → InputPreRun(0) → InputCallbackCtx (else
InputCallback) every --collect-ms on a --stack-kib thread, each buffer decoded and handed to
InputCleanupCallbackCtx / InputCleanupCallback / libc free → InputPreExit(0) → Exit → Unregister.
gen: write a msgpack chunk file for `output --input`.

Stack use of every entry point is measured by painting the stack before the call and finding
the high-water mark after it (summary field `stack`).";

/// `fluent-bit` and its commands.
#[derive(Debug, PartialEq, Args)]
pub struct FbCommand {
    #[command(subcommand)]
    pub command: FbSub,
}

#[derive(Debug, PartialEq, Subcommand)]
pub enum FbSub {
    /// drive an output plugin: feed msgpack chunks to FLBPluginFlushCtx
    #[command(args_override_self = true, after_long_help = FB_OUTPUT_HELP)]
    Output(FbOutputOpts),
    /// drive an input plugin: collect from FLBPluginInputCallbackCtx, print the records
    #[command(args_override_self = true, after_long_help = FB_INPUT_HELP)]
    Input(FbInputOpts),
    /// write a msgpack chunk file (records one after another, like a Fluent Bit chunk)
    #[command(args_override_self = true)]
    Gen(FbGenOpts),
}

const FB_OUTPUT_HELP: &str = "\
Chunks: --input FILE is split at record boundaries into chunks of --chunk-records records
(bytes after a msgpack error become one last chunk as they are; --raw sends the file as one
chunk); --generate N generates N records (like `fluent-bit gen`) in chunks as it goes.
Every chunk goes to every instance. Without --workers one flush thread serves all instances
(Fluent Bit's engine thread); with --workers N each instance has N flush threads.
FLB_RETRY re-schedules the same chunk after --retry-delay-ms, at most --retry-limit times
(then it is dropped); FLB_ERROR (or any other value) drops it.

Summary (stdout with --json, else stderr): plugin {name, description, event_type, exports},
chunks, records, bytes, flush_calls, ok, retry, error, invalid_returns, retried, dropped,
retry_exhausted, per_instance, elapsed_s, cpu_s, records_per_s, mb_per_cpu_s, peak_rss_kib,
stack {entry point: {calls, max_used_bytes, available_bytes, at_least}}, callbacks
{log_messages, property_lookups, ..}.
Exit code 1 when loading, Register or Init fails, or --expect-ok is not met.";

const FB_INPUT_HELP: &str = "\
Each record is printed (unless --quiet) as a JSON line to --out or stdout:
    {\"tag\":..,\"time\":[sec,nsec],\"time_type\":\"event_time\"|\"uint\"|\"int\"|\"float\",
     \"layout\":\"current\"|\"legacy\",\"metadata\":{..},\"record\":{..}}
Group markers are skipped (counted). Like Fluent Bit, a call that sets *size = 0 is not cleaned
up; a call returning -1 counts as an error.
Summary (stdout with --json as {\"summary\":{..}}, else stderr): calls, empty_calls,
error_calls, buffers, bytes, records, group_markers, invalid_objects, malformed_buffers,
cleanups, pauses, elapsed_s, stack, callbacks.
Exit code 1 when loading, Register or Init fails, or --expect-records is not met in time.";

/// Record layouts of generated chunks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FbLayout {
    /// [[EventTime, {}], {record}]
    #[default]
    Current,
    /// [EventTime, {record}]
    Legacy,
    /// cycles current, legacy EventTime, legacy uint, legacy float64
    Mixed,
}

/// Fluent Bit log levels for log_check / log_print.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FbLogLevel {
    Off,
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl FbLogLevel {
    pub fn level(self) -> i32 {
        self as i32
    }
}

/// What generated records look like (`output --generate` and `gen`).
#[derive(Debug, PartialEq, Args)]
pub struct FbGenArgs {
    /// approximate encoded bytes per record (its `message` is padded)
    #[arg(long, value_name = "B", default_value_t = 100, value_parser = positive_usize)]
    pub record_bytes: usize,
    /// record layout
    #[arg(long, value_enum, value_name = "LAYOUT", default_value_t = FbLayout::Current)]
    pub layout: FbLayout,
    /// encode maps as map32 (what the tail input writes)
    #[arg(long)]
    pub map32: bool,
    /// wrap every N records in group start/end markers
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = count)]
    pub group_every: u64,
    /// times cycle through edge cases (second 0, nanoseconds 999999999, 0xFFFFFFFD, ..)
    #[arg(long)]
    pub edge_times: bool,
}

/// Options of `fluent-bit output`.
#[derive(Debug, PartialEq, Args)]
pub struct FbOutputOpts {
    /// the plugin (its basename must not start with `flb-`)
    #[arg(value_name = "PLUGIN.so")]
    pub plugin: PathBuf,
    /// a property of every instance (repeatable; keys case-insensitive, ${VAR} expanded)
    #[arg(short = 'p', long = "prop", value_name = "KEY=VALUE", value_parser = property)]
    pub props: Vec<(String, String)>,
    /// a property of instance I only (0-based; repeatable; overrides -p)
    #[arg(long = "instance-prop", value_name = "I:KEY=VALUE", value_parser = instance_property)]
    pub instance_props: Vec<(usize, String, String)>,
    /// configured instances
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = positive_usize)]
    pub instances: usize,
    /// flush threads per instance (0: one flush thread for all, the engine thread)
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = count)]
    pub workers: u64,
    /// a chunk file (msgpack records one after another)
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "generate",
        required_unless_present = "generate"
    )]
    pub input: Option<PathBuf>,
    /// send --input as one chunk, as it is
    #[arg(long)]
    pub raw: bool,
    /// generate N records
    #[arg(long, value_name = "N", value_parser = count)]
    pub generate: Option<u64>,
    #[command(flatten)]
    pub gen: FbGenArgs,
    /// records per chunk
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = positive)]
    pub chunk_records: u64,
    /// send the chunks N times over
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = positive)]
    pub repeat: u64,
    /// the tag given to flush
    #[arg(long, value_name = "TAG", default_value = "harness")]
    pub tag: String,
    /// retries of a chunk after FLB_RETRY (Fluent Bit's default retry_limit is 1)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = count)]
    pub retry_limit: u64,
    /// delay before a retry
    #[arg(long = "retry-delay-ms", value_name = "MS", default_value = "100", value_parser = millis)]
    pub retry_delay: Duration,
    /// stack of each flush thread, KiB
    #[arg(long, value_name = "KIB", default_value_t = 64, value_parser = positive_usize)]
    pub stack_kib: usize,
    /// levels log_check allows and log_print shows on stderr
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = FbLogLevel::Info)]
    pub log_level: FbLogLevel,
    /// exit 1 unless exactly N flush calls returned FLB_OK
    #[arg(long, value_name = "N", value_parser = count)]
    pub expect_ok: Option<u64>,
    /// print the summary as one JSON line on stdout
    #[arg(long)]
    pub json: bool,
}

/// Options of `fluent-bit input`.
#[derive(Debug, PartialEq, Args)]
pub struct FbInputOpts {
    /// the plugin (its basename must not start with `flb-`)
    #[arg(value_name = "PLUGIN.so")]
    pub plugin: PathBuf,
    /// a property (repeatable; keys case-insensitive, ${VAR} expanded)
    #[arg(short = 'p', long = "prop", value_name = "KEY=VALUE", value_parser = property)]
    pub props: Vec<(String, String)>,
    /// stop after SECS (default 5, or 60 with --expect-records)
    #[arg(long, value_name = "SECS", value_parser = secs)]
    pub duration: Option<Duration>,
    /// stop once N records have arrived; exit 1 if stopped before
    #[arg(long, value_name = "N", value_parser = positive)]
    pub expect_records: Option<u64>,
    /// collect period (Fluent Bit: 1 s, PROXY_CALLBACK_TIME)
    #[arg(long = "collect-ms", value_name = "MS", default_value = "1000", value_parser = millis)]
    pub collect: Duration,
    /// after N collect calls call FLBPluginInputPause and stop collecting ...
    #[arg(long, value_name = "N", value_parser = positive, requires = "pause_for")]
    pub pause_after: Option<u64>,
    /// ... for SECS, then FLBPluginInputResume
    #[arg(long, value_name = "SECS", value_parser = secs, requires = "pause_after")]
    pub pause_for: Option<Duration>,
    /// write the records here instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// also append every collected buffer, as it is, to this chunk file (for `output --input`)
    #[arg(long, value_name = "FILE")]
    pub out_msgpack: Option<PathBuf>,
    /// do not print records
    #[arg(long)]
    pub quiet: bool,
    /// the tag printed with each record (Fluent Bit: the instance's Tag)
    #[arg(long, value_name = "TAG", default_value = "harness")]
    pub tag: String,
    /// stack of the collect thread, KiB
    #[arg(long, value_name = "KIB", default_value_t = 64, value_parser = positive_usize)]
    pub stack_kib: usize,
    /// levels log_check allows and log_print shows on stderr
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = FbLogLevel::Info)]
    pub log_level: FbLogLevel,
    /// print the summary as one JSON line on stdout
    #[arg(long)]
    pub json: bool,
}

/// Options of `fluent-bit gen`.
#[derive(Debug, PartialEq, Args)]
pub struct FbGenOpts {
    /// the file to write
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// records to write
    #[arg(long, value_name = "N", value_parser = count, required = true)]
    pub records: u64,
    #[command(flatten)]
    pub gen: FbGenArgs,
}

/// Options of `run`.
#[derive(Debug, PartialEq, Args)]
pub struct RunOpts {
    /// `--lib-dir` (a global option).
    #[arg(skip)]
    pub lib_dir: Option<PathBuf>,
    /// LogtailSysConfDir given to the base (default: a fresh directory
    /// /tmp/host-harness-*, removed at exit)
    #[arg(long, value_name = "DIR", verbatim_doc_comment)]
    pub data_dir: Option<PathBuf>,
    /// logstore for every config (default: the file stem)
    #[arg(long, value_name = "NAME")]
    pub logstore: Option<String>,
    /// stop after SECS seconds (fractions allowed)
    #[arg(long, value_name = "SECS", value_parser = secs)]
    pub duration: Option<Duration>,
    /// stop once N logs have arrived; exit 1 if stopped before that
    #[arg(long, value_name = "N", value_parser = positive)]
    pub expect_logs: Option<u64>,
    /// print nothing per log group
    #[arg(long)]
    pub quiet: bool,
    /// print the final summary as one JSON line on stdout
    #[arg(long)]
    pub summary_json: bool,
    /// return -1 from the first N sends
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = count)]
    pub reject_first: u64,
    /// return -1 with probability P (0..1), seeded by --seed
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = probability)]
    pub reject_rate: f64,
    /// seed of --reject-rate
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = count)]
    pub seed: u64,
    /// return -1 from every send during the first SECS seconds after Resume
    #[arg(long, value_name = "SECS", value_parser = secs)]
    pub reject_for: Option<Duration>,
    /// sleep MS milliseconds inside every send (back-pressure)
    #[arg(long = "delay-ms", value_name = "MS", value_parser = millis)]
    pub delay: Option<Duration>,
    /// every SECS: HoldOn(0), LoadConfig (files re-read), Resume()
    /// (with --loongcollector: LoadPipeline, Stop(name, 0), Start)
    #[arg(long, value_name = "SECS", value_parser = more_than_0_secs, verbatim_doc_comment)]
    pub reload_every: Option<Duration>,
    /// play a LoongCollector 3.x host: load libGoPluginAdapter.so and
    /// libGoPluginBase.so, register 3 callbacks, LoadPipeline(<stem>/1,
    /// or <stem>/2 for a config without inputs) + Start, exit with
    /// StopAllPipelines(1), StopAllPipelines(0), StopBuiltInModules;
    /// the pulled GetGoMetrics("direct") counters are summarised at exit
    #[arg(long, verbatim_doc_comment)]
    pub loongcollector: bool,
    /// short report intervals (LoadGlobalConfig before InitPluginBaseV2);
    /// statistics and alarms printed to stderr (see Statistics in --help)
    #[arg(long, verbatim_doc_comment)]
    pub stats: bool,
    /// StatisticsIntervalMs given with --stats
    #[arg(
        long,
        value_name = "MS",
        default_value_t = crate::stats::DEFAULT_INTERVAL_MS,
        value_parser = positive,
        requires = "stats"
    )]
    pub stats_interval_ms: u64,
    /// pipeline config files
    #[arg(value_name = "CONFIG.json", required = true)]
    pub configs: Vec<PathBuf>,
}

/// Options of `validate`.
#[derive(Debug, Default, PartialEq, Args)]
pub struct ValidateOpts {
    /// `--lib-dir` (a global option).
    #[arg(skip)]
    pub lib_dir: Option<PathBuf>,
    /// pipeline config files
    #[arg(value_name = "CONFIG.json", required = true)]
    pub configs: Vec<PathBuf>,
}

/// What `bench` generates as the `content` of each log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// nginx combined access-log lines of ~200 bytes
    #[default]
    Nginx,
    /// JSON application-log lines of ~250 bytes: time, level, msg,
    /// user_id, a nested request object (id, method, path, status,
    /// client {ip}), latency_ms, tags
    #[value(verbatim_doc_comment)]
    Json,
}

impl InputFormat {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            InputFormat::Nginx => "nginx",
            InputFormat::Json => "json",
        }
    }
}

/// A `bench --scenario`: an input format with built-in processors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// nginx lines, no processor (decode, aggregate, encode, send)
    Raw,
    /// nginx lines, processor_regex splitting the combined format into
    /// 10 fields (host-harness/scenarios/nginx-regex.json)
    #[value(verbatim_doc_comment)]
    NginxRegex,
    /// nginx lines, the same processor_regex, then processor_filter_regex
    /// excluding status ^3\d\d$ (about 11% of the lines: the generator
    /// counts them, so the expected log count is exact), then
    /// processor_add_fields adding 2 fields
    /// (host-harness/scenarios/regex-filter-add.json)
    #[value(verbatim_doc_comment)]
    RegexFilterAdd,
    /// JSON lines, processor_json (SourceKey content, ExpandDepth 0: expand
    /// every level, KeepSource default)
    #[value(verbatim_doc_comment)]
    Json,
}

impl Scenario {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Raw => "raw",
            Scenario::NginxRegex => "nginx-regex",
            Scenario::RegexFilterAdd => "regex-filter-add",
            Scenario::Json => "json",
        }
    }

    /// The input it generates.
    pub fn input(self) -> InputFormat {
        match self {
            Scenario::Json => InputFormat::Json,
            _ => InputFormat::Nginx,
        }
    }
}

/// The protocols `bench --scale-out` runs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScaleProtocol {
    /// flusher_forward / out_forward, without and with acks
    Forward,
    /// flusher_syslog / out_syslog, RFC 5424 over TCP
    Syslog,
    /// flusher_otlp / out_opentelemetry, HTTP/protobuf and gRPC
    Otlp,
    /// flusher_kafka_v2 into librdkafka's mock cluster (ours only)
    Kafka,
    /// all of them, one after the other
    #[default]
    All,
}

/// Where `bench --buffer` delivers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BufferSink {
    /// flusher_file
    File,
    /// flusher_http to a local sink
    Http,
    /// both, one after the other
    #[default]
    All,
}

/// The `Buffer.Type`s `bench --buffer` runs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BufferType {
    /// Buffer {Type memory}
    Memory,
    /// Buffer {Type file}
    File,
    /// both, one after the other
    #[default]
    Both,
}

/// Options of the hidden `bench-sink` (started by `bench --buffer`).
#[derive(Debug, Default, PartialEq, Args)]
pub struct BenchSinkOpts {
    /// count the lines of this file instead of serving HTTP
    #[arg(long, value_name = "PATH")]
    pub count_file: Option<PathBuf>,
}

/// Options of `bench`.
#[derive(Debug, PartialEq, Args)]
#[command(group(clap::ArgGroup::new("with_records").args(["buffer", "scale_out"]).multiple(true)))]
#[command(group(clap::ArgGroup::new("with_fluent_bit").args(["file", "scale_out"]).multiple(true)))]
pub struct BenchOpts {
    /// built-in input and processors; not with --input, --processors
    #[arg(long, value_enum, value_name = "NAME")]
    pub scenario: Option<Scenario>,
    /// what each log's one field `content` is (not with --scenario)
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        default_value_t = InputFormat::Nginx,
        conflicts_with = "scenario"
    )]
    pub input: InputFormat,
    /// `--lib-dir` (a global option).
    #[arg(skip)]
    pub lib_dir: Option<PathBuf>,
    /// LogtailSysConfDir (default: a fresh /tmp/host-harness-* directory)
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// events to push
    #[arg(long, value_name = "N", default_value_t = 2_000_000, value_parser = positive)]
    pub events: u64,
    /// logs per LogGroup / ProcessLogGroup call
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = positive_usize)]
    pub batch: usize,
    /// host threads calling ProcessLogGroup concurrently
    #[arg(long, value_name = "T", default_value_t = 1, value_parser = positive_usize)]
    pub threads: usize,
    /// JSON array of processor entries ([{"type":..,"detail":{..}}, ..])
    #[arg(long, value_name = "FILE", conflicts_with = "scenario")]
    pub processors: Option<PathBuf>,
    /// logs the host must receive (default: --events, or what the scenario
    /// keeps; set it when your --processors drop or split events)
    #[arg(long, value_name = "N", value_parser = count, verbatim_doc_comment)]
    pub expect_logs: Option<u64>,
    /// global AggregatIntervalMs of the bench config
    #[arg(long, value_name = "MS", default_value_t = 100, value_parser = positive)]
    pub aggregate_ms: u64,
    /// give up waiting for the logs after SECS; exit 1 (the process exits
    /// 10 s later if a call into the base is stuck)
    #[arg(
        long,
        value_name = "SECS",
        default_value = "120",
        value_parser = secs,
        verbatim_doc_comment
    )]
    pub timeout: Duration,
    /// fully decode every received group (default: count logs cheaply)
    /// as a LoongCollector 3.x host: the Go-named libraries, LoadPipeline("bench/2") +
    /// Start, PipelineEventGroup protobufs through ProcessPipelineEventGroup, and
    /// StopAllPipelines(1), StopAllPipelines(0) at the end (reported as holdon_ms)
    #[arg(long, verbatim_doc_comment)]
    pub loongcollector: bool,
    #[arg(long)]
    pub verify: bool,
    /// print one JSON line instead of the table
    #[arg(long)]
    pub json: bool,
    /// read a generated log file with input_file instead of pushing
    /// LogGroups (see File collection below)
    #[arg(
        long,
        conflicts_with_all = [
            "scenario", "input", "processors", "events", "batch", "threads",
            "expect_logs", "loongcollector",
        ],
        verbatim_doc_comment
    )]
    pub file: bool,
    /// size of the --file log file, MB (10^6 bytes)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1024,
        value_parser = positive,
        requires = "file"
    )]
    pub file_mb: u64,
    /// --file: Java logs with stack traces, read with Multiline.StartPattern
    #[arg(long, requires = "file")]
    pub multiline: bool,
    /// --file: also read the file with Fluent Bit's tail → null, same run
    /// (PATH default: $FLUENT_BIT_BIN, else ../shared/tools/fluent-bit/bin/fluent-bit)
    #[arg(
        long,
        value_name = "PATH",
        num_args = 0..=1,
        requires = "with_fluent_bit",
        verbatim_doc_comment
    )]
    pub fluent_bit: Option<Option<PathBuf>>,
    /// --file: where the generated file is kept and reused from
    /// (default: <temp dir>/plugin-bench-file/<single|multiline>-<N>MB.log)
    #[arg(long, value_name = "PATH", requires = "file", verbatim_doc_comment)]
    pub keep_file: Option<PathBuf>,
    /// input_file → flusher_file / flusher_http with memory and file
    /// buffers (see Buffered delivery below)
    #[arg(
        long,
        conflicts_with_all = [
            "scenario", "input", "processors", "events", "batch", "threads",
            "expect_logs", "loongcollector", "file",
        ],
        verbatim_doc_comment
    )]
    pub buffer: bool,
    /// --buffer: the outputs to run
    #[arg(long, value_enum, value_name = "SINK", default_value_t = BufferSink::All, requires = "buffer")]
    pub sink: BufferSink,
    /// --buffer: the buffer types to run
    #[arg(long, value_enum, value_name = "TYPE", default_value_t = BufferType::Both, requires = "buffer")]
    pub buffer_type: BufferType,
    /// --buffer, --scale-out: records (nginx lines) in the input file
    #[arg(long, value_name = "N", default_value_t = 2_000_000, value_parser = positive, requires = "with_records")]
    pub records: u64,
    /// --buffer: also run each http case with the sink answering 503 for
    /// the first SECS seconds (0: no outage run)
    #[arg(long, value_name = "SECS", default_value_t = 0, value_parser = count, requires = "buffer", verbatim_doc_comment)]
    pub outage_secs: u64,
    /// --buffer: run exactly the one case of --sink and --buffer-type in this
    /// process and print its JSON (how the cases are run)
    #[arg(long, hide = true, requires = "buffer")]
    pub buffer_one: bool,
    /// our protocol flushers and Fluent Bit's outputs into Fluent Bit
    /// receivers, side by side (see Scaling out below)
    #[arg(
        long,
        conflicts_with_all = [
            "scenario", "input", "processors", "events", "batch", "threads",
            "expect_logs", "loongcollector", "file", "buffer",
        ],
        verbatim_doc_comment
    )]
    pub scale_out: bool,
    /// --scale-out: the protocols to run
    #[arg(long, value_enum, value_name = "NAME", default_value_t = ScaleProtocol::All, requires = "scale_out")]
    pub protocol: ScaleProtocol,
}

impl Default for BenchOpts {
    fn default() -> Self {
        BenchOpts {
            scenario: None,
            input: InputFormat::Nginx,
            lib_dir: None,
            data_dir: None,
            events: 2_000_000,
            batch: 1024,
            threads: 1,
            processors: None,
            expect_logs: None,
            aggregate_ms: 100,
            timeout: Duration::from_secs(120),
            loongcollector: false,
            verify: false,
            json: false,
            file: false,
            file_mb: 1024,
            multiline: false,
            fluent_bit: None,
            keep_file: None,
            buffer: false,
            sink: BufferSink::All,
            buffer_type: BufferType::Both,
            records: 2_000_000,
            outage_secs: 0,
            buffer_one: false,
            scale_out: false,
            protocol: ScaleProtocol::All,
        }
    }
}

/// Where the data of `footprint` comes from.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FootprintInput {
    /// each config has one service_mock input producing --rate logs/s
    /// (MaxLogCount 0, one field `content`); it checkpoints its position as
    /// the host accepts data
    #[value(verbatim_doc_comment)]
    #[default]
    Mock,
    /// no input (flusher_sls only); one harness thread pushes one LogGroup
    /// of --rate logs per config every second with ProcessLogGroup
    /// (--rate 0: configs stay idle)
    #[value(verbatim_doc_comment)]
    HostFed,
}

impl FootprintInput {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FootprintInput::Mock => "mock",
            FootprintInput::HostFed => "host-fed",
        }
    }
}

/// Options of `footprint`.
#[derive(Debug, PartialEq, Args)]
pub struct FootprintOpts {
    /// `--lib-dir` (a global option).
    #[arg(skip)]
    pub lib_dir: Option<PathBuf>,
    /// LogtailSysConfDir (default: a fresh /tmp/host-harness-* directory,
    /// removed at exit)
    #[arg(long, value_name = "DIR", verbatim_doc_comment)]
    pub data_dir: Option<PathBuf>,
    /// configs to load
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = positive_usize)]
    pub configs: usize,
    /// where logs come from
    #[arg(long, value_enum, value_name = "KIND", default_value_t = FootprintInput::Mock)]
    pub input: FootprintInput,
    /// logs per second per config (0 only with --input host-fed)
    #[arg(long, value_name = "R", default_value_t = 1, value_parser = count)]
    pub rate: u64,
    /// how long to run after Resume, warm-up included
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = secs)]
    pub duration: Duration,
    /// wait this long after Resume before the first sample (at most
    /// --duration); not part of the growth figures
    #[arg(
        long,
        value_name = "SECS",
        default_value = "10",
        value_parser = secs,
        verbatim_doc_comment
    )]
    pub warmup: Duration,
    /// interval between samples
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = more_than_0_secs)]
    pub sample_every: Duration,
    /// print one JSON object (one line) on stdout instead of the report
    #[arg(long)]
    pub json: bool,
    /// no per-sample lines
    #[arg(long)]
    pub quiet: bool,
}

impl Default for FootprintOpts {
    fn default() -> Self {
        FootprintOpts {
            lib_dir: None,
            data_dir: None,
            configs: 1000,
            input: FootprintInput::Mock,
            rate: 1,
            duration: Duration::from_secs(60),
            warmup: Duration::from_secs(10),
            sample_every: Duration::from_secs(5),
            json: false,
            quiet: false,
        }
    }
}

/// Parses the arguments after the program name.
///
/// # Errors
///
/// A [`clap::Error`] for `--help`, `help`, `--version` (exit code 0) and for usage errors:
/// unknown commands or options, missing or malformed values, missing required arguments,
/// options that do not go together (exit code 2). `main` prints it with [`clap::Error::print`].
pub fn parse<I, S>(argv: I) -> Result<Command, clap::Error>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString> + Clone,
{
    let argv =
        std::iter::once(OsString::from("host-harness")).chain(argv.into_iter().map(Into::into));
    let cli = Cli::try_parse_from(argv)?;
    let mut command = cli.command;
    match &mut command {
        Command::Run(o) => o.lib_dir = cli.lib_dir,
        Command::Validate(o) => o.lib_dir = cli.lib_dir,
        Command::Bench(o) => {
            o.lib_dir = cli.lib_dir;
            if let Some(s) = o.scenario {
                o.input = s.input();
            }
        }
        Command::FluentBit(FbCommand {
            command: FbSub::Output(o),
        }) => {
            let problem = if o.raw && o.input.is_none() {
                Some("'--raw' needs '--input FILE'".to_string())
            } else {
                o.instance_props
                    .iter()
                    .find(|p| p.0 >= o.instances)
                    .map(|(i, _, _)| {
                        format!(
                            "'--instance-prop {i}:..' names an instance beyond --instances {}",
                            o.instances
                        )
                    })
            };
            if let Some(msg) = problem {
                let mut cli = Cli::command();
                cli.build();
                let fb = cli.find_subcommand_mut("fluent-bit").expect("fluent-bit");
                let out = fb.find_subcommand_mut("output").expect("output");
                return Err(out.error(ErrorKind::ArgumentConflict, msg));
            }
        }
        Command::FluentBit(_) | Command::BenchSink(_) | Command::BenchKafkaBroker => {}
        Command::Footprint(o) => {
            o.lib_dir = cli.lib_dir;
            if o.rate == 0 && o.input == FootprintInput::Mock {
                return Err(usage_error(
                    "footprint",
                    "'--rate 0' needs '--input host-fed' (service_mock produces at least 1 log/s)",
                ));
            }
            if o.warmup > o.duration {
                return Err(usage_error(
                    "footprint",
                    "'--warmup' cannot be longer than '--duration'",
                ));
            }
        }
    }
    Ok(command)
}

/// A usage error of `command` that clap cannot check by itself (exit code 2).
fn usage_error(command: &str, message: &str) -> clap::Error {
    let mut cli = Cli::command();
    cli.build();
    let sub = cli
        .find_subcommand_mut(command)
        .expect("a command of the harness");
    sub.error(ErrorKind::ArgumentConflict, message)
}

/// `KEY=VALUE` (a non-empty key).
fn property(v: &str) -> Result<(String, String), String> {
    match v.split_once('=') {
        Some((k, val)) if !k.trim().is_empty() => Ok((k.trim().to_string(), val.to_string())),
        _ => Err("needs KEY=VALUE".to_string()),
    }
}

/// `I:KEY=VALUE`.
fn instance_property(v: &str) -> Result<(usize, String, String), String> {
    let (i, kv) = v.split_once(':').ok_or("needs I:KEY=VALUE")?;
    let i = i
        .trim()
        .parse()
        .map_err(|_| "needs I:KEY=VALUE (I an instance number)")?;
    let (k, val) = property(kv)?;
    Ok((i, k, val))
}

/// A non-negative integer.
fn count(v: &str) -> Result<u64, String> {
    v.trim()
        .parse()
        .map_err(|_| "needs a non-negative integer".to_string())
}

/// An integer of at least 1.
fn positive(v: &str) -> Result<u64, String> {
    match count(v)? {
        0 => Err("must be at least 1".to_string()),
        n => Ok(n),
    }
}

/// An integer of at least 1 that fits a `usize`.
fn positive_usize(v: &str) -> Result<usize, String> {
    usize::try_from(positive(v)?).map_err(|_| "is too large".to_string())
}

/// A finite non-negative number.
fn number(v: &str) -> Result<f64, String> {
    match v.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err("needs a non-negative number".to_string()),
    }
}

/// A probability, 0..1.
fn probability(v: &str) -> Result<f64, String> {
    match number(v)? {
        p if p > 1.0 => Err("needs a probability in 0..1".to_string()),
        p => Ok(p),
    }
}

/// Seconds, fractions allowed.
fn secs(v: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(number(v)?).map_err(|_| "is too large".to_string())
}

/// Seconds, more than 0.
fn more_than_0_secs(v: &str) -> Result<Duration, String> {
    match secs(v)? {
        d if d.is_zero() => Err("must be more than 0".to_string()),
        d => Ok(d),
    }
}

/// Milliseconds, an integer.
fn millis(v: &str) -> Result<Duration, String> {
    count(v).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(args: &[&str]) -> Command {
        parse(args.iter().copied()).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn run(args: &[&str]) -> RunOpts {
        match ok(args) {
            Command::Run(o) => o,
            other => panic!("expected run, got {other:?}"),
        }
    }

    fn bench(args: &[&str]) -> BenchOpts {
        match ok(args) {
            Command::Bench(o) => o,
            other => panic!("expected bench, got {other:?}"),
        }
    }

    fn footprint(args: &[&str]) -> FootprintOpts {
        match ok(args) {
            Command::Footprint(o) => o,
            other => panic!("expected footprint, got {other:?}"),
        }
    }

    /// A usage error (exit code 2) and its rendered text.
    fn err(args: &[&str]) -> (ErrorKind, String) {
        let e = parse(args.iter().copied()).expect_err("expected a usage error");
        assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
        (e.kind(), e.to_string())
    }

    /// The text `--help` (or `help`, `--version`) prints, with exit code 0.
    fn shown(args: &[&str]) -> String {
        let e = parse(args.iter().copied()).expect_err("expected help or version");
        assert_eq!(e.exit_code(), 0, "{args:?}: {e}");
        e.to_string()
    }

    #[test]
    fn the_clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_options_and_configs() {
        let o = run(&[
            "--lib-dir",
            "/l",
            "run",
            "--duration=2.5",
            "a.json",
            "--reject-first",
            "3",
            "--reject-rate",
            "0.25",
            "--seed=9",
            "--reject-for",
            "1",
            "--delay-ms",
            "20",
            "--reload-every",
            "0.5",
            "--expect-logs",
            "100",
            "--quiet",
            "--summary-json",
            "--logstore",
            "ls",
            "--data-dir",
            "/d",
            "b.json",
        ]);
        assert_eq!(o.lib_dir, Some(PathBuf::from("/l")));
        assert_eq!(o.data_dir, Some(PathBuf::from("/d")));
        assert_eq!(o.logstore.as_deref(), Some("ls"));
        assert_eq!(o.duration, Some(Duration::from_millis(2500)));
        assert_eq!(o.reject_first, 3);
        assert_eq!(o.reject_rate, 0.25);
        assert_eq!(o.seed, 9);
        assert_eq!(o.reject_for, Some(Duration::from_secs(1)));
        assert_eq!(o.delay, Some(Duration::from_millis(20)));
        assert_eq!(o.reload_every, Some(Duration::from_millis(500)));
        assert_eq!(o.expect_logs, Some(100));
        assert!(o.quiet && o.summary_json);
        assert_eq!(
            o.configs,
            vec![PathBuf::from("a.json"), PathBuf::from("b.json")]
        );
    }

    #[test]
    fn run_defaults_double_dash_and_repeats() {
        let o = run(&["run", "--", "--weird.json", "-"]);
        assert_eq!(o.seed, 1);
        assert_eq!((o.reject_first, o.reject_rate), (0, 0.0));
        assert!(!o.stats);
        assert_eq!(o.stats_interval_ms, 2000);
        assert!(!o.quiet && !o.summary_json);
        assert_eq!((o.duration, o.expect_logs, o.delay), (None, None, None));
        assert_eq!((o.lib_dir, o.data_dir, o.logstore), (None, None, None));
        assert_eq!(
            o.configs,
            vec![PathBuf::from("--weird.json"), PathBuf::from("-")]
        );
        // A repeated option keeps its last value; a repeated flag is still set.
        let o = run(&[
            "run",
            "--duration",
            "1",
            "a.json",
            "--duration=2",
            "--quiet",
            "--quiet",
        ]);
        assert_eq!(o.duration, Some(Duration::from_secs(2)));
        assert!(o.quiet);
    }

    #[test]
    fn stats_options() {
        let o = run(&["run", "--stats", "a.json"]);
        assert!(o.stats);
        assert_eq!(o.stats_interval_ms, 2000);
        let o = run(&["run", "--stats-interval-ms=500", "--stats", "a.json"]);
        assert!(o.stats);
        assert_eq!(o.stats_interval_ms, 500);
        let (kind, text) = err(&["run", "--stats-interval-ms", "500", "a.json"]);
        assert_eq!(kind, ErrorKind::MissingRequiredArgument, "{text}");
        assert!(text.contains("--stats"), "{text}");
        let (kind, text) = err(&["run", "--stats", "--stats-interval-ms", "0", "a.json"]);
        assert_eq!(kind, ErrorKind::ValueValidation);
        assert!(text.contains("at least 1"), "{text}");
        let (_, text) = err(&["run", "--stats=1", "a.json"]);
        assert!(
            text.contains("unexpected value '1' for '--stats'"),
            "{text}"
        );
        assert!(shown(&["run", "--help"]).contains("--stats-interval-ms"));
    }

    #[test]
    fn lib_dir_before_or_after_the_command() {
        let o = run(&["run", "--lib-dir", "/b", "x.json"]);
        assert_eq!(o.lib_dir, Some(PathBuf::from("/b")));
        let o = run(&["--lib-dir=/a", "run", "--lib-dir", "/b", "x.json"]);
        assert_eq!(o.lib_dir, Some(PathBuf::from("/b")), "the later one wins");
        let o = run(&["--lib-dir=/a", "--lib-dir=/c", "run", "x.json"]);
        assert_eq!(o.lib_dir, Some(PathBuf::from("/c")));
        let Command::Validate(v) = ok(&["validate", "--lib-dir=/v", "x.json"]) else {
            panic!("expected validate");
        };
        assert_eq!(v.lib_dir, Some(PathBuf::from("/v")));
        assert_eq!(
            footprint(&["--lib-dir", "/f", "footprint"]).lib_dir,
            Some("/f".into())
        );
        assert_eq!(bench(&["bench", "--lib-dir=/g"]).lib_dir, Some("/g".into()));
    }

    #[test]
    fn usage_errors() {
        let (kind, _) = err(&[]);
        assert_eq!(kind, ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand);
        let (kind, text) = err(&["run", "--bogus", "a.json"]);
        assert_eq!(kind, ErrorKind::UnknownArgument);
        assert!(text.contains("unexpected argument '--bogus'"), "{text}");
        assert!(text.contains("host-harness run"), "{text}");
        let (_, text) = err(&["run", "--durration", "1", "a.json"]);
        assert!(
            text.contains("a similar argument exists: '--duration'"),
            "{text}"
        );
        for cmd in ["run", "validate"] {
            let (kind, text) = err(&[cmd]);
            assert_eq!(kind, ErrorKind::MissingRequiredArgument);
            assert!(text.contains("<CONFIG.json>"), "{text}");
        }
        let (kind, _) = err(&["run", "a.json", "--duration"]);
        assert_eq!(kind, ErrorKind::InvalidValue);
        let cases: &[(&[&str], &str)] = &[
            (&["run", "a.json", "--duration", "x"], "non-negative number"),
            (
                &["run", "a.json", "--duration", "-1"],
                "non-negative number",
            ),
            (
                &["run", "a.json", "--duration", "inf"],
                "non-negative number",
            ),
            (&["run", "a.json", "--duration", "1e30"], "too large"),
            (&["run", "a.json", "--reject-rate", "1.5"], "0..1"),
            (
                &["run", "a.json", "--reject-first", "2.5"],
                "non-negative integer",
            ),
            (&["run", "a.json", "--expect-logs", "0"], "at least 1"),
            (&["run", "a.json", "--reload-every", "0"], "more than 0"),
            (
                &["run", "a.json", "--delay-ms", "x"],
                "non-negative integer",
            ),
            (&["bench", "--batch", "0"], "at least 1"),
            (&["bench", "--threads", "0"], "at least 1"),
            (&["bench", "--events", "many"], "non-negative integer"),
            (&["bench", "--timeout", "soon"], "non-negative number"),
        ];
        for (args, needle) in cases {
            let (kind, text) = err(args);
            assert_eq!(kind, ErrorKind::ValueValidation, "{args:?}: {text}");
            assert!(text.contains(needle), "{args:?}: {text}");
        }
        let (_, text) = err(&["run", "a.json", "--quiet=1"]);
        assert!(
            text.contains("unexpected value '1' for '--quiet'"),
            "{text}"
        );
        let (kind, _) = err(&["bench", "extra"]);
        assert_eq!(kind, ErrorKind::UnknownArgument);
        let (kind, _) = err(&["frobnicate"]);
        assert_eq!(kind, ErrorKind::InvalidSubcommand);
        let (kind, _) = err(&["help", "frobnicate"]);
        assert_eq!(kind, ErrorKind::InvalidSubcommand);
        let (kind, text) = err(&["--nope", "run"]);
        assert_eq!(kind, ErrorKind::UnknownArgument);
        assert!(text.contains("unexpected argument '--nope'"), "{text}");
        let (kind, _) = err(&["run", "-V", "a.json"]);
        assert_eq!(
            kind,
            ErrorKind::UnknownArgument,
            "--version is top-level only"
        );
    }

    #[test]
    fn help_everywhere() {
        let main = shown(&["--help"]);
        for needle in [
            "RTLD_LAZY|RTLD_LOCAL",
            "run",
            "validate",
            "bench",
            "footprint",
            "--lib-dir",
            "$PLUGIN_LIB_DIR",
            "Exit codes:",
            "2 usage error",
        ] {
            assert!(main.contains(needle), "{needle} not in\n{main}");
        }
        assert_eq!(shown(&["help"]), main);
        let short = shown(&["-h"]);
        assert!(short.contains("footprint") && !short.contains("Exit codes:"));
        let run = shown(&["run", "--help"]);
        assert_eq!(shown(&["help", "run"]), run);
        for needle in [
            "Sequence: InitPluginBaseV2",
            "duplicate_pack_ids",
            "alarm: <type>",
        ] {
            assert!(run.contains(needle), "{needle} not in\n{run}");
        }
        let validate = shown(&["validate", "--help"]);
        assert!(validate.contains("CheckConfig(config name = file stem"));
        assert!(shown(&["validate", "-h"]).contains("<CONFIG.json>..."));
        let bench = shown(&["help", "bench"]);
        assert_eq!(shown(&["bench", "--help"]), bench);
        assert!(bench.contains("1 MB = 10^6 bytes") && bench.contains("Examples"));
        let footprint = shown(&["footprint", "--help"]);
        assert_eq!(shown(&["help", "footprint"]), footprint);
        assert!(footprint.contains("Sequence: dlopen + callbacks"));
        assert!(footprint.contains(FOOTPRINT_HELP), "{footprint}");
        assert_eq!(
            shown(&["--version"]),
            format!("host-harness {}\n", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(shown(&["-V"]), shown(&["--version"]));
    }

    #[test]
    fn bench_options() {
        let o = bench(&[
            "bench",
            "--events",
            "1000",
            "--batch=10",
            "--threads",
            "2",
            "--processors",
            "p.json",
            "--verify",
            "--json",
            "--expect-logs",
            "0",
            "--timeout",
            "5",
            "--aggregate-ms",
            "100",
            "--data-dir=/d",
        ]);
        assert_eq!((o.events, o.batch, o.threads), (1000, 10, 2));
        assert_eq!(o.processors, Some(PathBuf::from("p.json")));
        assert_eq!(o.data_dir, Some(PathBuf::from("/d")));
        assert!(o.verify && o.json);
        assert_eq!(o.expect_logs, Some(0));
        assert_eq!(o.timeout, Duration::from_secs(5));
        assert_eq!(o.aggregate_ms, 100);
        let d = bench(&["bench"]);
        assert_eq!(d, BenchOpts::default());
        assert_eq!((d.scenario, d.input), (None, InputFormat::Nginx));
    }

    #[test]
    fn bench_scenarios_and_inputs() {
        let help = shown(&["bench", "--help"]);
        for &s in Scenario::value_variants() {
            let o = bench(&["bench", "--scenario", s.name()]);
            assert_eq!((o.scenario, o.input), (Some(s), s.input()));
            assert!(help.contains(&format!("- {}:", s.name())), "{}", s.name());
        }
        for &i in InputFormat::value_variants() {
            assert_eq!(bench(&["bench", "--input", i.name()]).input, i);
        }
        assert_eq!(
            bench(&["bench", "--scenario=json"]).input,
            InputFormat::Json
        );
        assert_eq!(
            bench(&["bench", "--scenario", "raw"]).input,
            InputFormat::Nginx
        );
        let o = bench(&["bench", "--input", "json", "--processors", "p.json"]);
        assert_eq!((o.scenario, o.input), (None, InputFormat::Json));
        assert_eq!(bench(&["bench", "--input=nginx"]).input, InputFormat::Nginx);
        let (kind, text) = err(&["bench", "--scenario", "nope"]);
        assert_eq!(kind, ErrorKind::InvalidValue);
        assert!(text.contains("invalid value 'nope'"), "{text}");
        assert!(
            text.contains("raw, nginx-regex, regex-filter-add, json"),
            "{text}"
        );
        let (kind, text) = err(&["bench", "--input", "xml"]);
        assert_eq!(kind, ErrorKind::InvalidValue);
        assert!(text.contains("invalid value 'xml'"), "{text}");
        for args in [
            &["bench", "--scenario", "raw", "--input", "json"][..],
            &["bench", "--processors", "p.json", "--scenario", "json"],
        ] {
            let (kind, text) = err(args);
            assert_eq!(kind, ErrorKind::ArgumentConflict, "{text}");
            assert!(text.contains("cannot be used with"), "{text}");
        }
    }

    #[test]
    fn bench_file_options() {
        let o = bench(&["bench", "--file"]);
        assert!(o.file && !o.multiline);
        assert_eq!((o.file_mb, o.fluent_bit, o.keep_file), (1024, None, None));
        let o = bench(&["bench", "--file", "--fluent-bit", "--multiline", "--json"]);
        assert_eq!(o.fluent_bit, Some(None), "--fluent-bit without PATH");
        assert!(o.multiline && o.json);
        let o = bench(&[
            "bench",
            "--file",
            "--file-mb=8",
            "--fluent-bit",
            "/x/fluent-bit",
            "--keep-file",
            "/k/f.log",
            "--timeout",
            "30",
        ]);
        assert_eq!(o.file_mb, 8);
        assert_eq!(o.fluent_bit, Some(Some(PathBuf::from("/x/fluent-bit"))));
        assert_eq!(o.keep_file, Some(PathBuf::from("/k/f.log")));
        for args in [
            &["bench", "--file", "--scenario", "raw"][..],
            &["bench", "--file", "--events", "10"],
            &["bench", "--file", "--input", "json"],
            &["bench", "--file", "--loongcollector"],
        ] {
            let (kind, text) = err(args);
            assert_eq!(kind, ErrorKind::ArgumentConflict, "{args:?}: {text}");
        }
        for args in [
            &["bench", "--multiline"][..],
            &["bench", "--file-mb", "8"],
            &["bench", "--fluent-bit"],
            &["bench", "--keep-file", "f"],
        ] {
            let (kind, text) = err(args);
            assert_eq!(kind, ErrorKind::MissingRequiredArgument, "{args:?}: {text}");
            assert!(text.contains("--file"), "{args:?}: {text}");
        }
        let (_, text) = err(&["bench", "--file", "--file-mb", "0"]);
        assert!(text.contains("at least 1"), "{text}");
        assert!(shown(&["bench", "--help"]).contains("File collection (--file):"));
    }

    #[test]
    fn footprint_defaults() {
        let d = footprint(&["footprint"]);
        assert_eq!(d, FootprintOpts::default());
        assert_eq!(
            (d.configs, d.input, d.rate),
            (1000, FootprintInput::Mock, 1)
        );
        assert_eq!(d.duration, Duration::from_secs(60));
        assert_eq!(d.warmup, Duration::from_secs(10));
        assert_eq!(d.sample_every, Duration::from_secs(5));
        assert!(!d.json && !d.quiet);
    }

    #[test]
    fn footprint_options() {
        let o = footprint(&[
            "--lib-dir=/l",
            "footprint",
            "--configs",
            "200",
            "--input=host-fed",
            "--rate",
            "0",
            "--duration",
            "4",
            "--warmup=2",
            "--sample-every",
            "0.5",
            "--data-dir",
            "/d",
            "--json",
            "--quiet",
        ]);
        assert_eq!(o.lib_dir, Some(PathBuf::from("/l")));
        assert_eq!(o.data_dir, Some(PathBuf::from("/d")));
        assert_eq!(
            (o.configs, o.input, o.rate),
            (200, FootprintInput::HostFed, 0)
        );
        assert_eq!(o.duration, Duration::from_secs(4));
        assert_eq!(o.warmup, Duration::from_secs(2));
        assert_eq!(o.sample_every, Duration::from_millis(500));
        assert!(o.json && o.quiet);
        let o = footprint(&["footprint", "--input", "mock", "--rate=50"]);
        assert_eq!((o.input, o.rate), (FootprintInput::Mock, 50));
        let o = footprint(&["footprint", "--warmup", "5", "--duration", "5"]);
        assert_eq!(o.warmup, o.duration);
        for &i in FootprintInput::value_variants() {
            assert_eq!(footprint(&["footprint", "--input", i.name()]).input, i);
        }
    }

    #[test]
    fn footprint_usage_errors() {
        let (kind, text) = err(&["footprint", "--input", "file"]);
        assert_eq!(kind, ErrorKind::InvalidValue);
        assert!(text.contains("invalid value 'file'"), "{text}");
        assert!(text.contains("mock, host-fed"), "{text}");
        let (kind, text) = err(&["footprint", "--rate", "0"]);
        assert_eq!(kind, ErrorKind::ArgumentConflict);
        assert!(text.contains("needs '--input host-fed'"), "{text}");
        assert!(text.contains("host-harness footprint"), "{text}");
        let (_, text) = err(&["footprint", "--configs", "0"]);
        assert!(text.contains("at least 1"), "{text}");
        let (_, text) = err(&["footprint", "--sample-every", "0"]);
        assert!(text.contains("more than 0"), "{text}");
        let (kind, text) = err(&["footprint", "--warmup", "20", "--duration", "10"]);
        assert_eq!(kind, ErrorKind::ArgumentConflict);
        assert!(
            text.contains("cannot be longer than '--duration'"),
            "{text}"
        );
        let (kind, text) = err(&["footprint", "--rate", "-1"]);
        assert_eq!(kind, ErrorKind::ValueValidation);
        assert!(text.contains("non-negative integer"), "{text}");
        let (_, text) = err(&["footprint", "--json=yes"]);
        assert!(
            text.contains("unexpected value 'yes' for '--json'"),
            "{text}"
        );
        let (kind, _) = err(&["footprint", "x"]);
        assert_eq!(kind, ErrorKind::UnknownArgument);
        let (kind, text) = err(&["footprint", "--events", "1"]);
        assert_eq!(kind, ErrorKind::UnknownArgument);
        assert!(text.contains("unexpected argument '--events'"), "{text}");
    }

    fn fb(args: &[&str]) -> FbSub {
        let mut a = vec!["fluent-bit"];
        a.extend_from_slice(args);
        match ok(&a) {
            Command::FluentBit(c) => c.command,
            other => panic!("expected fluent-bit, got {other:?}"),
        }
    }

    #[test]
    fn fluent_bit_options() {
        let FbSub::Output(o) = fb(&[
            "output",
            "p.so",
            "-p",
            "a=1",
            "--prop",
            "B=x=y",
            "-p",
            "a=2",
            "--instances",
            "2",
            "--instance-prop",
            "1:k=v",
            "--generate",
            "10",
            "--layout",
            "mixed",
            "--map32",
        ]) else {
            panic!("output")
        };
        assert_eq!(
            o.props,
            vec![
                ("a".into(), "1".into()),
                ("B".into(), "x=y".into()),
                ("a".into(), "2".into())
            ]
        );
        assert_eq!(o.instance_props, vec![(1, "k".into(), "v".into())]);
        assert_eq!(
            (o.generate, o.gen.layout, o.gen.map32),
            (Some(10), FbLayout::Mixed, true)
        );
        assert_eq!(
            (o.stack_kib, o.retry_limit, o.workers, o.chunk_records),
            (64, 1, 0, 256)
        );
        assert_eq!(o.retry_delay, Duration::from_millis(100));

        let FbSub::Input(i) = fb(&[
            "input",
            "p.so",
            "--collect-ms",
            "20",
            "--pause-after",
            "2",
            "--pause-for",
            "0.5",
        ]) else {
            panic!("input")
        };
        assert_eq!(
            (i.collect, i.pause_after),
            (Duration::from_millis(20), Some(2))
        );
        let FbSub::Gen(g) = fb(&["gen", "f", "--records", "3", "--edge-times"]) else {
            panic!("gen")
        };
        assert!(g.gen.edge_times && g.records == 3);

        for bad in [
            &["output", "p.so"][..],
            &["output", "p.so", "--generate", "1", "--input", "f"],
            &["output", "p.so", "--generate", "1", "--raw"],
            &["output", "p.so", "--generate", "1", "-p", "novalue"],
            &[
                "output",
                "p.so",
                "--generate",
                "1",
                "--instance-prop",
                "1:k=v",
            ],
            &["input", "p.so", "--pause-after", "1"],
            &["gen", "f"],
        ] {
            let mut a = vec!["fluent-bit"];
            a.extend_from_slice(bad);
            assert!(parse(a.clone()).is_err(), "{a:?}");
        }
        assert!(shown(&["fluent-bit", "output", "--help"]).contains("FLB_RETRY re-schedules"));
    }
}
