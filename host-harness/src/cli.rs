//! Command-line parsing: a small hand-rolled parser (no clap) and the help texts.
//!
//! Options take their value as `--opt VALUE` or `--opt=VALUE`; `--` ends the options.
//! Anything the parser does not understand is a usage error (exit code 2).

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Top-level help (`host-harness --help`).
pub const MAIN_HELP: &str = "\
host-harness: load libPluginAdapter.so and libPluginBase.so exactly like an iLogtail host does
(adaptor first with RTLD_LAZY|RTLD_LOCAL, RegisterLogtailCallBackV2, then the base) and drive them.

USAGE:
    host-harness [--lib-dir DIR] <COMMAND> [OPTIONS] [ARGS]

COMMANDS:
    run       load pipeline configs, run them and print every log group the base sends
    validate  check pipeline configs with the base's CheckConfig export (no plugin is started)
    bench     push generated nginx access-log lines through ProcessLogGroup and measure
    footprint load N configs and measure the host process's RSS and thread count over time
    help      print this text, or the help of a command (`host-harness help run`)

GLOBAL OPTIONS:
    --lib-dir DIR   directory holding libPluginAdapter.so and libPluginBase.so
                    (default: $PLUGIN_LIB_DIR, else the directory of this executable)
    -h, --help      print help
    -V, --version   print the version

Build the libraries with `cargo build --release` (or `cargo build`); cargo puts them next to
this executable in target/release (target/debug).

EXIT CODES:
    0 success, 1 failure (bad config, base error, expectation not met), 2 usage error or
    library not found.
";

/// Help of `run`.
pub const RUN_HELP: &str = "\
host-harness run: load pipeline configs into the base, run them, print what the host receives

USAGE:
    host-harness run [OPTIONS] CONFIG.json...

Sequence: InitPluginBaseV2({LogtailSysConfDir, HostIP: 127.0.0.1, Hostname}) → for each file
LoadConfig(project \"harness\", logstore = file stem, config name = file stem, logstore key 1,
file contents) → Resume() → ... → HoldOn(1) on stop.

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
tracked per prefix: duplicates and missing sequences between the lowest and highest seen.

OPTIONS:
    --data-dir DIR        LogtailSysConfDir given to the base (default: a fresh directory
                          /tmp/host-harness-*, removed at exit)
    --logstore NAME       logstore for every config (default: the file stem)
    --duration SECS       stop after SECS seconds (fractions allowed)
    --expect-logs N       stop once N logs have arrived; exit 1 if stopped before that
    --quiet               print nothing per log group
    --summary-json        print the final summary as one JSON line on stdout
    --reject-first N      return -1 from the first N sends
    --reject-rate P       return -1 with probability P (0..1), PRNG seeded by --seed
    --seed N              seed of --reject-rate (default 1)
    --reject-for SECS     return -1 from every send during the first SECS seconds after Resume
    --delay-ms MS         sleep MS milliseconds inside every send (back-pressure)
    --reload-every SECS   every SECS: HoldOn(0), LoadConfig (files re-read), Resume()
    --stats               call LoadGlobalConfig({\"AlarmIntervalMs\": 1000, \"StatisticsIntervalMs\": MS})
                          before InitPluginBaseV2, and print to stderr each statistics group
                          (config shennong_log_profile) as a table, one line per plugin:
                              stats: config plugin in out dropped errors retries restarts queue
                          and each alarm (config logtail_alarm) as
                              alarm: <type> <config> <plugin> x<count>: <message>
                          (the groups are still printed to stdout unless --quiet)
    --stats-interval-ms MS
                          StatisticsIntervalMs given with --stats (default 2000; needs --stats)
    --lib-dir DIR         see `host-harness --help`
    -h, --help            print this help
";

/// Help of `validate`.
pub const VALIDATE_HELP: &str = "\
host-harness validate: check pipeline configs without running them

USAGE:
    host-harness validate [OPTIONS] CONFIG.json...

Calls the base export CheckConfig(config name = file stem, file contents) for each file and
prints `OK <file>` for a valid one, or each error line prefixed with `<file>: `.
Exit code 1 if any file is invalid, unreadable or not JSON.

OPTIONS:
    --lib-dir DIR   see `host-harness --help`
    -h, --help      print this help
";

/// Help of `bench`.
pub const BENCH_HELP: &str = "\
host-harness bench: measure the base on generated log lines

USAGE:
    host-harness bench [--scenario NAME] [OPTIONS]

Loads config \"bench\" (no inputs, processors from --scenario or --processors, aggregator_default,
flusher_sls), pre-generates serialized LogGroups (a ring of at most 64 distinct batches, reused
cyclically; each log has one field `content` = a generated line, see --input), then times
from the first ProcessLogGroup until the host has received all expected logs, and HoldOn(1).
Prints events, input MB (line bytes, 1 MB = 10^6 bytes), wall seconds, events/s, MB/s, process
CPU seconds (user+sys over the timed region), CPU seconds per million events, MB per
CPU-second, and peak RSS.

SCENARIOS (--scenario NAME sets the input and the processors; the JSON is built in):
    raw               nginx lines, no processor (decode, aggregate, encode, send)
    nginx-regex       nginx lines, processor_regex splitting the combined format into 10 fields
                      (host-harness/scenarios/nginx-regex.json)
    regex-filter-add  nginx lines, the same processor_regex, then processor_filter_regex
                      excluding status ^3\\d\\d$ (about 11% of the lines: the generator counts
                      them, so the expected log count is exact), then processor_add_fields
                      adding 2 fields (host-harness/scenarios/regex-filter-add.json)
    json              JSON lines, processor_json (SourceKey content, ExpandDepth 0: expand
                      every level, KeepSource default)

INPUTS (--input FORMAT, without --scenario):
    nginx   nginx combined access-log lines of ~200 bytes (default)
    json    JSON application-log lines of ~250 bytes: time, level, msg, user_id, a
            nested request object (id, method, path, status, client {ip}), latency_ms, tags

OPTIONS:
    --scenario NAME     one of the scenarios above (not with --input or --processors)
    --input FORMAT      nginx (default) or json
    --events N          events to push (default 2000000)
    --batch N           logs per LogGroup / ProcessLogGroup call (default 1024)
    --threads T         host threads calling ProcessLogGroup concurrently (default 1)
    --processors FILE   JSON array of processor entries ([{\"type\":..,\"detail\":{..}}, ..])
    --expect-logs N     logs the host must receive (default: --events, or what the scenario
                        keeps; set it when your --processors drop or split events)
    --aggregate-ms MS   global AggregatIntervalMs of the bench config (default 100)
    --timeout SECS      give up waiting for the logs after SECS (default 120); exit 1
                        (the process exits 10 s later if a call into the base is stuck)
    --verify            fully decode every received group (default: count logs cheaply)
    --data-dir DIR      LogtailSysConfDir (default: a fresh /tmp/host-harness-* directory)
    --json              print one JSON line instead of the table
    --lib-dir DIR       see `host-harness --help`
    -h, --help          print this help

EXAMPLES (build with `cargo build --release` first):
    target/release/host-harness bench --scenario raw --events 2000000
    target/release/host-harness bench --scenario regex-filter-add --json
    target/release/host-harness bench --input json --processors my-processors.json
";

/// Help of `footprint`.
pub const FOOTPRINT_HELP: &str = "\
host-harness footprint: what configs cost the host process (RSS, OS threads), idle and over time

USAGE:
    host-harness footprint [OPTIONS]

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
(logtail_alarm, shennong_log_profile) are counted apart, not as delivered logs.

INPUTS (--input):
    mock      each config has one service_mock input producing --rate logs/s (MaxLogCount 0,
              one field `content`); it checkpoints its position as the host accepts data
    host-fed  no input (flusher_sls only); one harness thread pushes one LogGroup of --rate
              logs per config every second with ProcessLogGroup (--rate 0: configs stay idle)

OPTIONS:
    --configs N         configs to load (default 1000)
    --input KIND        mock (default) or host-fed
    --rate R            logs per second per config (default 1; 0 only with host-fed)
    --duration SECS     how long to run after Resume, warm-up included (default 60)
    --warmup SECS       wait this long after Resume before the first sample (default 10;
                        at most --duration); not part of the growth figures
    --sample-every SECS interval between samples (default 5)
    --data-dir DIR      LogtailSysConfDir (default: a fresh /tmp/host-harness-* directory,
                        removed at exit)
    --json              print one JSON object (one line) on stdout instead of the report
    --quiet             no per-sample lines
    --lib-dir DIR       see `host-harness --help`
    -h, --help          print this help

OUTPUT:
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

EXAMPLES (build with `cargo build --release` first):
    target/release/host-harness footprint --configs 1000 --rate 1 --duration 120
    target/release/host-harness footprint --input host-fed --rate 0 --configs 1000 --duration 30
    target/release/host-harness footprint --duration 600 --quiet --json
";

/// A usage error: printed with a hint, exit code 2.
#[derive(Debug, PartialEq)]
pub struct UsageError {
    /// What is wrong, lower-case, without the `error: ` prefix.
    pub message: String,
    /// The command whose help the hint points at (`None` = top level).
    pub command: Option<&'static str>,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.command {
            Some(cmd) => write!(
                f,
                "error: {}\nTry 'host-harness {cmd} --help' for more information.",
                self.message
            ),
            None => write!(
                f,
                "error: {}\nTry 'host-harness --help' for more information.",
                self.message
            ),
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Print this text to stdout and exit 0.
    Help(&'static str),
    /// Print the version and exit 0.
    Version,
    /// `run`.
    Run(RunOpts),
    /// `validate`.
    Validate(ValidateOpts),
    /// `bench`.
    Bench(BenchOpts),
    /// `footprint`.
    Footprint(FootprintOpts),
}

/// Options of `run`.
#[derive(Debug, Default, PartialEq)]
pub struct RunOpts {
    pub lib_dir: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub logstore: Option<String>,
    pub duration: Option<Duration>,
    pub expect_logs: Option<u64>,
    pub quiet: bool,
    pub summary_json: bool,
    pub reject_first: u64,
    pub reject_rate: f64,
    pub seed: u64,
    pub reject_for: Option<Duration>,
    pub delay: Option<Duration>,
    pub reload_every: Option<Duration>,
    /// `--stats`: LoadGlobalConfig with short report intervals, render stats/alarms.
    pub stats: bool,
    /// `--stats-interval-ms` (StatisticsIntervalMs with `--stats`).
    pub stats_interval_ms: u64,
    pub configs: Vec<PathBuf>,
}

/// Options of `validate`.
#[derive(Debug, Default, PartialEq)]
pub struct ValidateOpts {
    pub lib_dir: Option<PathBuf>,
    pub configs: Vec<PathBuf>,
}

/// What `bench` generates as the `content` of each log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// nginx combined access-log lines.
    #[default]
    Nginx,
    /// JSON application-log lines.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// nginx lines, no processors.
    Raw,
    /// nginx lines, processor_regex.
    NginxRegex,
    /// nginx lines, processor_regex + processor_filter_regex (drops 3xx) + processor_add_fields.
    RegexFilterAdd,
    /// JSON lines, processor_json.
    Json,
}

impl Scenario {
    /// Every scenario, in help order.
    pub const ALL: [Scenario; 4] = [
        Scenario::Raw,
        Scenario::NginxRegex,
        Scenario::RegexFilterAdd,
        Scenario::Json,
    ];

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

/// Options of `bench`.
#[derive(Debug, PartialEq)]
pub struct BenchOpts {
    /// `--scenario` (sets `input`; its processors replace `--processors`).
    pub scenario: Option<Scenario>,
    pub input: InputFormat,
    pub lib_dir: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub events: u64,
    pub batch: usize,
    pub threads: usize,
    pub processors: Option<PathBuf>,
    pub expect_logs: Option<u64>,
    pub aggregate_ms: u64,
    pub timeout: Duration,
    pub verify: bool,
    pub json: bool,
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
            verify: false,
            json: false,
        }
    }
}

/// Where the data of `footprint` comes from.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum FootprintInput {
    /// One `service_mock` input per config.
    #[default]
    Mock,
    /// No inputs; the harness pushes with `ProcessLogGroup`.
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
#[derive(Debug, PartialEq)]
pub struct FootprintOpts {
    pub lib_dir: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub configs: usize,
    pub input: FootprintInput,
    /// Logs per second per config.
    pub rate: u64,
    /// Run time after Resume, warm-up included.
    pub duration: Duration,
    pub warmup: Duration,
    pub sample_every: Duration,
    pub json: bool,
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

/// One item of the command line.
enum Item {
    /// `--name` or `--name=value` (value kept for later), or `-h`.
    Opt(String, Option<String>),
    /// A positional argument.
    Arg(String),
}

/// Walks the arguments of one command.
struct Args {
    rest: VecDeque<String>,
    command: Option<&'static str>,
    options_done: bool,
}

impl Args {
    fn err(&self, message: impl Into<String>) -> UsageError {
        UsageError {
            message: message.into(),
            command: self.command,
        }
    }

    fn next(&mut self) -> Option<Item> {
        loop {
            let a = self.rest.pop_front()?;
            if self.options_done || a == "-" || !a.starts_with('-') {
                return Some(Item::Arg(a));
            }
            if a == "--" {
                self.options_done = true;
                continue;
            }
            return Some(match a.split_once('=') {
                Some((name, value)) if name.starts_with("--") => {
                    Item::Opt(name.to_string(), Some(value.to_string()))
                }
                _ => Item::Opt(a, None),
            });
        }
    }

    fn value(&mut self, name: &str, inline: Option<String>) -> Result<String, UsageError> {
        if let Some(v) = inline {
            return Ok(v);
        }
        self.rest
            .pop_front()
            .ok_or_else(|| self.err(format!("option '{name}' needs a value")))
    }

    fn flag(&self, name: &str, inline: Option<String>) -> Result<bool, UsageError> {
        match inline {
            None => Ok(true),
            Some(_) => Err(self.err(format!("option '{name}' takes no value"))),
        }
    }

    fn u64(&mut self, name: &str, inline: Option<String>) -> Result<u64, UsageError> {
        let v = self.value(name, inline)?;
        v.trim().parse().map_err(|_| {
            self.err(format!(
                "option '{name}' needs a non-negative integer, got '{v}'"
            ))
        })
    }

    fn positive(&mut self, name: &str, inline: Option<String>) -> Result<u64, UsageError> {
        let n = self.u64(name, inline)?;
        if n == 0 {
            return Err(self.err(format!("option '{name}' must be at least 1")));
        }
        Ok(n)
    }

    fn f64(&mut self, name: &str, inline: Option<String>) -> Result<f64, UsageError> {
        let v = self.value(name, inline)?;
        match v.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
            _ => Err(self.err(format!(
                "option '{name}' needs a non-negative number, got '{v}'"
            ))),
        }
    }

    fn secs(&mut self, name: &str, inline: Option<String>) -> Result<Duration, UsageError> {
        let x = self.f64(name, inline)?;
        Duration::try_from_secs_f64(x)
            .map_err(|_| self.err(format!("option '{name}' is too large")))
    }

    fn unknown(&self, name: &str) -> UsageError {
        match self.command {
            Some(cmd) => self.err(format!("unknown option '{name}' for '{cmd}'")),
            None => self.err(format!("unknown option '{name}'")),
        }
    }
}

/// Parses the arguments after the program name.
///
/// # Errors
///
/// A [`UsageError`] for unknown commands or options, missing or malformed values, or
/// missing required arguments.
pub fn parse<I, S>(argv: I) -> Result<Command, UsageError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut args = Args {
        rest: argv.into_iter().map(Into::into).collect(),
        command: None,
        options_done: false,
    };
    let mut lib_dir = None;
    let command = loop {
        match args.next() {
            None => return Err(args.err("no command given (run, validate, bench, footprint)")),
            Some(Item::Opt(o, _)) if o == "-h" || o == "--help" => {
                return Ok(Command::Help(MAIN_HELP))
            }
            Some(Item::Opt(o, _)) if o == "-V" || o == "--version" => return Ok(Command::Version),
            Some(Item::Opt(o, v)) if o == "--lib-dir" => {
                lib_dir = Some(PathBuf::from(args.value(&o, v)?))
            }
            Some(Item::Opt(o, _)) => return Err(args.unknown(&o)),
            Some(Item::Arg(a)) => break a,
        }
    };
    match command.as_str() {
        "run" => parse_run(&mut args, lib_dir),
        "validate" => parse_validate(&mut args, lib_dir),
        "bench" => parse_bench(&mut args, lib_dir),
        "footprint" => parse_footprint(&mut args, lib_dir),
        "help" => Ok(Command::Help(match args.rest.front().map(String::as_str) {
            None => MAIN_HELP,
            Some("run") => RUN_HELP,
            Some("validate") => VALIDATE_HELP,
            Some("bench") => BENCH_HELP,
            Some("footprint") => FOOTPRINT_HELP,
            Some(other) => return Err(args.err(format!("unknown command '{other}'"))),
        })),
        other => Err(args.err(format!(
            "unknown command '{other}' (expected run, validate, bench, footprint or help)"
        ))),
    }
}

fn parse_run(args: &mut Args, lib_dir: Option<PathBuf>) -> Result<Command, UsageError> {
    args.command = Some("run");
    let mut o = RunOpts {
        lib_dir,
        seed: 1,
        stats_interval_ms: crate::stats::DEFAULT_INTERVAL_MS,
        ..RunOpts::default()
    };
    let mut interval_given = false;
    while let Some(item) = args.next() {
        let (name, v) = match item {
            Item::Arg(a) => {
                o.configs.push(PathBuf::from(a));
                continue;
            }
            Item::Opt(name, v) => (name, v),
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help(RUN_HELP)),
            "--lib-dir" => o.lib_dir = Some(args.value(&name, v)?.into()),
            "--data-dir" => o.data_dir = Some(args.value(&name, v)?.into()),
            "--logstore" => o.logstore = Some(args.value(&name, v)?),
            "--duration" => o.duration = Some(args.secs(&name, v)?),
            "--expect-logs" => o.expect_logs = Some(args.positive(&name, v)?),
            "--quiet" => o.quiet = args.flag(&name, v)?,
            "--summary-json" => o.summary_json = args.flag(&name, v)?,
            "--reject-first" => o.reject_first = args.u64(&name, v)?,
            "--reject-rate" => {
                let p = args.f64(&name, v)?;
                if p > 1.0 {
                    return Err(args.err(format!("option '{name}' needs a probability in 0..1")));
                }
                o.reject_rate = p;
            }
            "--seed" => o.seed = args.u64(&name, v)?,
            "--reject-for" => o.reject_for = Some(args.secs(&name, v)?),
            "--delay-ms" => o.delay = Some(Duration::from_millis(args.u64(&name, v)?)),
            "--reload-every" => {
                let d = args.secs(&name, v)?;
                if d.is_zero() {
                    return Err(args.err(format!("option '{name}' must be more than 0")));
                }
                o.reload_every = Some(d);
            }
            "--stats" => o.stats = args.flag(&name, v)?,
            "--stats-interval-ms" => {
                o.stats_interval_ms = args.positive(&name, v)?;
                interval_given = true;
            }
            _ => return Err(args.unknown(&name)),
        }
    }
    if interval_given && !o.stats {
        return Err(args.err("option '--stats-interval-ms' needs --stats"));
    }
    if o.configs.is_empty() {
        return Err(args.err("no CONFIG.json given"));
    }
    Ok(Command::Run(o))
}

fn parse_validate(args: &mut Args, lib_dir: Option<PathBuf>) -> Result<Command, UsageError> {
    args.command = Some("validate");
    let mut o = ValidateOpts {
        lib_dir,
        configs: Vec::new(),
    };
    while let Some(item) = args.next() {
        match item {
            Item::Arg(a) => o.configs.push(PathBuf::from(a)),
            Item::Opt(name, _) if name == "-h" || name == "--help" => {
                return Ok(Command::Help(VALIDATE_HELP))
            }
            Item::Opt(name, v) if name == "--lib-dir" => {
                o.lib_dir = Some(args.value(&name, v)?.into())
            }
            Item::Opt(name, _) => return Err(args.unknown(&name)),
        }
    }
    if o.configs.is_empty() {
        return Err(args.err("no CONFIG.json given"));
    }
    Ok(Command::Validate(o))
}

fn parse_bench(args: &mut Args, lib_dir: Option<PathBuf>) -> Result<Command, UsageError> {
    args.command = Some("bench");
    let mut o = BenchOpts {
        lib_dir,
        ..BenchOpts::default()
    };
    let mut input_given = false;
    while let Some(item) = args.next() {
        let (name, v) = match item {
            Item::Arg(a) => return Err(args.err(format!("unexpected argument '{a}'"))),
            Item::Opt(name, v) => (name, v),
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help(BENCH_HELP)),
            "--lib-dir" => o.lib_dir = Some(args.value(&name, v)?.into()),
            "--data-dir" => o.data_dir = Some(args.value(&name, v)?.into()),
            "--events" => o.events = args.positive(&name, v)?,
            "--batch" => o.batch = to_usize(args, &name, v)?,
            "--threads" => o.threads = to_usize(args, &name, v)?,
            "--processors" => o.processors = Some(args.value(&name, v)?.into()),
            "--expect-logs" => o.expect_logs = Some(args.u64(&name, v)?),
            "--aggregate-ms" => o.aggregate_ms = args.positive(&name, v)?,
            "--timeout" => o.timeout = args.secs(&name, v)?,
            "--verify" => o.verify = args.flag(&name, v)?,
            "--json" => o.json = args.flag(&name, v)?,
            "--scenario" => {
                let v = args.value(&name, v)?;
                let s = Scenario::ALL.into_iter().find(|s| s.name() == v);
                o.scenario = Some(s.ok_or_else(|| {
                    args.err(format!(
                        "unknown scenario '{v}' (expected raw, nginx-regex, regex-filter-add or json)"
                    ))
                })?);
            }
            "--input" => {
                o.input = match args.value(&name, v)?.as_str() {
                    "nginx" => InputFormat::Nginx,
                    "json" => InputFormat::Json,
                    other => {
                        return Err(args.err(format!(
                            "unknown input format '{other}' (expected nginx or json)"
                        )))
                    }
                };
                input_given = true;
            }
            _ => return Err(args.unknown(&name)),
        }
    }
    if let Some(s) = o.scenario {
        if input_given {
            return Err(args.err("option '--input' cannot be used with --scenario"));
        }
        if o.processors.is_some() {
            return Err(args.err("option '--processors' cannot be used with --scenario"));
        }
        o.input = s.input();
    }
    Ok(Command::Bench(o))
}

fn parse_footprint(args: &mut Args, lib_dir: Option<PathBuf>) -> Result<Command, UsageError> {
    args.command = Some("footprint");
    let mut o = FootprintOpts {
        lib_dir,
        ..FootprintOpts::default()
    };
    while let Some(item) = args.next() {
        let (name, v) = match item {
            Item::Arg(a) => return Err(args.err(format!("unexpected argument '{a}'"))),
            Item::Opt(name, v) => (name, v),
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help(FOOTPRINT_HELP)),
            "--lib-dir" => o.lib_dir = Some(args.value(&name, v)?.into()),
            "--data-dir" => o.data_dir = Some(args.value(&name, v)?.into()),
            "--configs" => o.configs = to_usize(args, &name, v)?,
            "--input" => {
                o.input = match args.value(&name, v)?.as_str() {
                    "mock" => FootprintInput::Mock,
                    "host-fed" => FootprintInput::HostFed,
                    other => {
                        return Err(args.err(format!(
                            "unknown input '{other}' (expected mock or host-fed)"
                        )))
                    }
                };
            }
            "--rate" => o.rate = args.u64(&name, v)?,
            "--duration" => o.duration = args.secs(&name, v)?,
            "--warmup" => o.warmup = args.secs(&name, v)?,
            "--sample-every" => {
                o.sample_every = args.secs(&name, v)?;
                if o.sample_every.is_zero() {
                    return Err(args.err(format!("option '{name}' must be more than 0")));
                }
            }
            "--json" => o.json = args.flag(&name, v)?,
            "--quiet" => o.quiet = args.flag(&name, v)?,
            _ => return Err(args.unknown(&name)),
        }
    }
    if o.rate == 0 && o.input == FootprintInput::Mock {
        return Err(args.err(
            "option '--rate 0' needs --input host-fed (service_mock produces at least 1 log/s)",
        ));
    }
    if o.warmup > o.duration {
        return Err(args.err("option '--warmup' cannot be longer than --duration"));
    }
    Ok(Command::Footprint(o))
}

fn to_usize(args: &mut Args, name: &str, v: Option<String>) -> Result<usize, UsageError> {
    let n = args.positive(name, v)?;
    usize::try_from(n).map_err(|_| args.err(format!("option '{name}' is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> RunOpts {
        match parse(args.iter().copied()) {
            Ok(Command::Run(o)) => o,
            other => panic!("expected run, got {other:?}"),
        }
    }

    fn err(args: &[&str]) -> UsageError {
        parse(args.iter().copied()).expect_err("expected a usage error")
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
    fn run_defaults_and_double_dash() {
        let o = run(&["run", "--", "--weird.json"]);
        assert_eq!(o.seed, 1);
        assert_eq!(o.reject_rate, 0.0);
        assert!(!o.stats);
        assert_eq!(o.stats_interval_ms, 2000);
        assert!(!o.quiet && o.duration.is_none());
        assert_eq!(o.configs, vec![PathBuf::from("--weird.json")]);
    }

    #[test]
    fn stats_options() {
        let o = run(&["run", "--stats", "a.json"]);
        assert!(o.stats);
        assert_eq!(o.stats_interval_ms, 2000);
        let o = run(&["run", "--stats-interval-ms=500", "--stats", "a.json"]);
        assert!(o.stats);
        assert_eq!(o.stats_interval_ms, 500);
        assert!(err(&["run", "--stats-interval-ms", "500", "a.json"])
            .message
            .contains("needs --stats"));
        assert!(
            err(&["run", "--stats", "--stats-interval-ms", "0", "a.json"])
                .message
                .contains("at least 1")
        );
        assert!(err(&["run", "--stats=1", "a.json"])
            .message
            .contains("takes no value"));
        assert!(RUN_HELP.contains("--stats-interval-ms"));
    }

    #[test]
    fn lib_dir_after_command_wins() {
        let o = run(&["--lib-dir=/a", "run", "--lib-dir", "/b", "x.json"]);
        assert_eq!(o.lib_dir, Some(PathBuf::from("/b")));
    }

    #[test]
    fn usage_errors() {
        assert_eq!(err(&[]).command, None);
        let e = err(&["run", "--bogus", "a.json"]);
        assert_eq!(e.message, "unknown option '--bogus' for 'run'");
        assert_eq!(e.command, Some("run"));
        assert!(e.to_string().contains("host-harness run --help"));
        assert_eq!(err(&["run"]).message, "no CONFIG.json given");
        assert_eq!(err(&["validate"]).message, "no CONFIG.json given");
        assert!(err(&["run", "a.json", "--duration"])
            .message
            .contains("needs a value"));
        assert!(err(&["run", "a.json", "--duration", "x"])
            .message
            .contains("number"));
        assert!(err(&["run", "a.json", "--reject-rate", "1.5"])
            .message
            .contains("0..1"));
        assert!(err(&["run", "a.json", "--quiet=1"])
            .message
            .contains("takes no value"));
        assert!(err(&["run", "a.json", "--reload-every", "0"])
            .message
            .contains("more than 0"));
        assert!(err(&["bench", "--batch", "0"])
            .message
            .contains("at least 1"));
        assert!(err(&["bench", "extra"])
            .message
            .contains("unexpected argument"));
        assert!(err(&["frobnicate"]).message.contains("unknown command"));
        assert!(err(&["--nope", "run"])
            .message
            .contains("unknown option '--nope'"));
    }

    #[test]
    fn help_everywhere() {
        assert_eq!(parse(["--help"]), Ok(Command::Help(MAIN_HELP)));
        assert_eq!(parse(["-h"]), Ok(Command::Help(MAIN_HELP)));
        assert_eq!(parse(["help"]), Ok(Command::Help(MAIN_HELP)));
        assert_eq!(parse(["help", "bench"]), Ok(Command::Help(BENCH_HELP)));
        assert_eq!(parse(["run", "--help"]), Ok(Command::Help(RUN_HELP)));
        assert_eq!(parse(["validate", "-h"]), Ok(Command::Help(VALIDATE_HELP)));
        assert_eq!(parse(["bench", "--help"]), Ok(Command::Help(BENCH_HELP)));
        assert_eq!(
            parse(["footprint", "--help"]),
            Ok(Command::Help(FOOTPRINT_HELP))
        );
        assert_eq!(
            parse(["help", "footprint"]),
            Ok(Command::Help(FOOTPRINT_HELP))
        );
        assert_eq!(parse(["--version"]), Ok(Command::Version));
    }

    #[test]
    fn bench_options() {
        let o = match parse([
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
        ]) {
            Ok(Command::Bench(o)) => o,
            other => panic!("{other:?}"),
        };
        assert_eq!((o.events, o.batch, o.threads), (1000, 10, 2));
        assert_eq!(o.processors, Some(PathBuf::from("p.json")));
        assert!(o.verify && o.json);
        assert_eq!(o.expect_logs, Some(0));
        assert_eq!(o.timeout, Duration::from_secs(5));
        assert_eq!(o.aggregate_ms, 100);
        let d = match parse(["bench"]) {
            Ok(Command::Bench(o)) => o,
            other => panic!("{other:?}"),
        };
        assert_eq!(d, BenchOpts::default());
        assert_eq!((d.scenario, d.input), (None, InputFormat::Nginx));
    }

    fn bench(args: &[&str]) -> BenchOpts {
        match parse(args.iter().copied()) {
            Ok(Command::Bench(o)) => o,
            other => panic!("expected bench, got {other:?}"),
        }
    }

    #[test]
    fn bench_scenarios_and_inputs() {
        for s in Scenario::ALL {
            let o = bench(&["bench", "--scenario", s.name()]);
            assert_eq!((o.scenario, o.input), (Some(s), s.input()));
            assert!(BENCH_HELP.contains(s.name()), "{}", s.name());
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
        assert!(err(&["bench", "--scenario", "nope"])
            .message
            .contains("unknown scenario 'nope'"));
        assert!(err(&["bench", "--input", "xml"])
            .message
            .contains("unknown input format 'xml'"));
        assert!(err(&["bench", "--scenario", "raw", "--input", "json"])
            .message
            .contains("cannot be used with --scenario"));
        assert!(
            err(&["bench", "--processors", "p.json", "--scenario", "json"])
                .message
                .contains("cannot be used with --scenario")
        );
    }

    fn footprint(args: &[&str]) -> FootprintOpts {
        match parse(args.iter().copied()) {
            Ok(Command::Footprint(o)) => o,
            other => panic!("expected footprint, got {other:?}"),
        }
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
        assert!(MAIN_HELP.contains("footprint"));
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
        for f in FOOTPRINT_OPTIONS {
            assert!(FOOTPRINT_HELP.contains(f), "help does not document {f}");
        }
    }

    /// Every option of `footprint` (the JSON fields are checked in footprint.rs).
    const FOOTPRINT_OPTIONS: &[&str] = &[
        "--configs",
        "--input",
        "--rate",
        "--duration",
        "--warmup",
        "--sample-every",
        "--data-dir",
        "--json",
        "--quiet",
        "--lib-dir",
    ];

    #[test]
    fn footprint_usage_errors() {
        let e = err(&["footprint", "--input", "file"]);
        assert!(e.message.contains("unknown input 'file'"), "{}", e.message);
        assert_eq!(e.command, Some("footprint"));
        assert!(err(&["footprint", "--rate", "0"])
            .message
            .contains("needs --input host-fed"));
        assert!(err(&["footprint", "--configs", "0"])
            .message
            .contains("at least 1"));
        assert!(err(&["footprint", "--sample-every", "0"])
            .message
            .contains("more than 0"));
        assert!(err(&["footprint", "--warmup", "20", "--duration", "10"])
            .message
            .contains("cannot be longer than --duration"));
        assert!(err(&["footprint", "--rate", "-1"])
            .message
            .contains("non-negative integer"));
        assert!(err(&["footprint", "--json=yes"])
            .message
            .contains("takes no value"));
        assert!(err(&["footprint", "x"])
            .message
            .contains("unexpected argument"));
        assert_eq!(
            err(&["footprint", "--events", "1"]).message,
            "unknown option '--events' for 'footprint'"
        );
    }
}
