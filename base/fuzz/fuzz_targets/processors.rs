//! Every registered processor, with several option sets each, over arbitrary log contents.
//!
//! The processors are built once, the way a pipeline builds them (`registry::parse_config` of a config,
//! then `registry::processor`). Each input becomes one group of events (several keys, among them the
//! source keys the processors read; arbitrary bytes, invalid UTF-8 included; values that repeat
//! a prefix and a suffix thousands of times, for deep nesting such as 5,000 `{"a":` or `[`).
//! Every processor runs on its own copy of the group, then all of them in a chain on one copy;
//! `Match` conditions select from each result and the results are encoded as a `LogGroup`.
//!
//! Properties: nothing panics, and the stack stays within the 2 MiB of a pipeline worker
//! thread (the processing runs on a thread of that size, so unbounded recursion on the
//! contents is a crash here).
#![no_main]

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use engine::api::PluginContext;
use engine::config::Kind;
use engine::registry;
use engine::event::{EventGroup, LogEvent};
use engine::api::Processor;
use engine::proto::{encode_log_group, GroupHeader};
use engine::routing::{Matcher, Selection};

/// The stack of a tokio worker thread (where processors run in the pipeline).
const WORKER_STACK: usize = 2 * 1024 * 1024;
/// Longest value built from one input (after repetition).
const MAX_VALUE: usize = 32 * 1024;
/// Most events built from one input.
const MAX_EVENTS: usize = 8;
/// Largest result encoded as a `LogGroup` (approximate size).
const MAX_ENCODED: usize = 8 * 1024 * 1024;

/// Option sets, as the `processors` entries of a config. Every registered processor must
/// appear at least once (checked at start-up).
const PROCESSORS: &[&str] = &[
    r#"{"type": "processor_default"}"#,
    r#"{"type": "processor_add_fields", "detail": {"Fields": {"content": "x", "new": "v"}}}"#,
    r#"{"type": "processor_add_fields", "detail": {"Fields": {"a": "1"}, "IgnoreIfExist": true}}"#,
    r#"{"type": "processor_drop", "detail": {"DropKeys": ["a", "content", "missing"]}}"#,
    r#"{"type": "processor_rename", "detail": {"SourceKeys": ["a", "content"], "DestKeys": ["b", "msg"]}}"#,
    r#"{"type": "processor_rename", "detail": {"SourceKeys": ["x", "a"], "DestKeys": ["a", "x"], "NoKeyError": true}}"#,
    // Anchored: takes the linear plan (regex_plan.rs) first.
    r#"{"type": "processor_regex", "detail": {"SourceKey": "content",
        "Regex": "^(\\S+) - (\\S+) \\[([^\\]]+)\\] \"(\\S+) (\\S+)\" (\\d+) (\\d+)$",
        "Keys": ["ip", "user", "time", "method", "url", "status", "size"]}}"#,
    r#"{"type": "processor_regex", "detail": {"SourceKey": "", "Regex": "(\\w+)=(\\d+)|(x)",
        "Keys": ["k", "v", "k"], "FullMatch": false, "KeepSource": true}}"#,
    r#"{"type": "processor_regex", "detail": {"SourceKey": "msg", "Regex": "([^ ]*) ([^ ]+) (.*)",
        "Keys": ["a", "b", "msg"], "NoKeyError": true, "KeepSourceIfParseError": false}}"#,
    r#"{"type": "processor_json", "detail": {"SourceKey": "content"}}"#,
    r#"{"type": "processor_json", "detail": {"SourceKey": "content", "ExpandArray": true,
        "KeepSource": false, "IgnoreFirstConnector": true}}"#,
    r#"{"type": "processor_json", "detail": {"SourceKey": "s_key", "ExpandDepth": 2,
        "ExpandConnector": "-", "Prefix": "j", "UseSourceKeyAsPrefix": true, "KeepSource": false,
        "KeepSourceIfParseError": false}}"#,
    r#"{"type": "processor_json", "detail": {"SourceKey": "msg", "ExpandDepth": 1000,
        "ExpandConnector": "", "ExpandArray": true, "NoKeyError": false}}"#,
    r#"{"type": "processor_split_char", "detail": {"SourceKey": "content", "SplitSep": ",",
        "SplitKeys": ["a", "b", "c"]}}"#,
    r#"{"type": "processor_split_char", "detail": {"SourceKey": "content", "SplitSep": "|",
        "SplitKeys": ["a", "b"], "QuoteFlag": true, "PreserveOthers": false, "NoKeyError": true,
        "NoMatchError": true, "KeepSource": true}}"#,
    r#"{"type": "processor_split_char", "detail": {"SourceKey": "", "SplitSep": "\u0001",
        "SplitKeys": ["x"], "QuoteFlag": true, "Quote": "'", "KeepSourceIfParseError": false}}"#,
    r#"{"type": "processor_filter_regex", "detail": {"Include": {"level": "^(error|warn)$"}}}"#,
    r#"{"type": "processor_filter_regex", "detail": {"Exclude": {"content": "debug", "a": "^$"}}}"#,
    r#"{"type": "processor_filter_regex", "detail": {"Include": {"content": "\\d"},
        "Exclude": {"level": "(?i)trace"}}}"#,
    r#"{"type": "processor_filter_key_regex", "detail": {"Include": ["^a$", "^content"]}}"#,
    r#"{"type": "processor_filter_key_regex", "detail": {"Exclude": ["^__tag__"], "Include": ["."]}}"#,
    r#"{"type": "processor_split_log_string", "detail": {"SplitKey": "content", "SplitSep": "\n"}}"#,
    r#"{"type": "processor_split_log_string", "detail": {"SplitKey": "", "SplitSep": "",
        "PreserveOthers": false, "EnableLogPositionMeta": true, "NoKeyError": true}}"#,
    r#"{"type": "processor_split_log_string", "detail": {"SplitKey": "msg", "SplitSep": "ab\nab",
        "EnableLogPositionMeta": true}}"#,
    r#"{"type": "processor_split_log_regex", "detail": {"SplitKey": "content",
        "SplitRegex": "\\d{4}-\\d{2}-\\d{2} .*"}}"#,
    r#"{"type": "processor_split_log_regex", "detail": {"SplitKey": "", "SplitRegex": ".*",
        "PreserveOthers": true, "EnableLogPositionMeta": true, "NoKeyError": true}}"#,
    r#"{"type": "processor_split_log_regex", "detail": {"SplitKey": "content",
        "SplitRegex": "(a|ab)(c|bcd)?"}}"#,
    r#"{"type": "processor_strptime", "detail": {"SourceKey": "time", "Format": "%Y-%m-%d %H:%M:%S"}}"#,
    r#"{"type": "processor_strptime", "detail": {"SourceKey": "t", "Format": "%d/%b/%Y:%H:%M:%S %z",
        "KeepSource": false, "EnablePreciseTimestamp": true, "PreciseTimestampUnit": "ns"}}"#,
    r#"{"type": "processor_strptime", "detail": {"SourceKey": "time", "Format": "%s.%f",
        "AdjustUTCOffset": true, "UTCOffset": -43200, "EnablePreciseTimestamp": true,
        "PreciseTimestampKey": "p", "PreciseTimestampUnit": "us"}}"#,
    r#"{"type": "processor_strptime", "detail": {"SourceKey": "content",
        "Format": "%b %e %T %y %j %I %p %Z %n%t%% %a %D %F %R %r %N", "AlarmIfFail": false}}"#,
    r#"{"type": "processor_gotime", "detail": {"SourceKey": "t", "SourceFormat": "2006-01-02 15:04:05",
        "SourceLocation": 8, "DestKey": "d", "DestFormat": "2006/01/02 15:04:05.000 -07:00",
        "DestLocation": -5}}"#,
    r#"{"type": "processor_gotime", "detail": {"SourceKey": "time", "SourceFormat": "milliseconds",
        "DestKey": "time", "DestFormat": "Mon Jan _2 15:04:05 MST 2006", "SetTime": false,
        "KeepSource": false}}"#,
    r#"{"type": "processor_gotime", "detail": {"SourceKey": "content",
        "SourceFormat": "Jan 2 06 3:4:5.999999999 PM Z07:00 002", "DestKey": "d",
        "DestFormat": "January Monday __2 .999 -070000 pm", "NoKeyError": false,
        "AlarmIfFail": false}}"#,
    r#"{"type": "processor_gotime", "detail": {"SourceKey": "t", "SourceFormat": "nanoseconds",
        "DestKey": "t", "DestFormat": "2006-01-02T15:04:05.000000000Z07:00", "SourceLocation": -100}}"#,
    r#"{"type": "processor_desensitize", "detail": {"SourceKey": "content", "Method": "const",
        "Match": "full", "ReplaceString": "***"}}"#,
    r#"{"type": "processor_desensitize", "detail": {"SourceKey": "content", "Method": "md5",
        "Match": "regex", "RegexBegin": "pwd=", "RegexContent": "[^,]*"}}"#,
    r#"{"type": "processor_desensitize", "detail": {"SourceKey": "msg", "Method": "const",
        "Match": "regex", "ReplaceString": "X", "RegexBegin": "(?:card|id)[=:]\\s*",
        "RegexContent": "\\d*"}}"#,
];

/// Keys events are made of; the fuzzer picks them by index (see [`Reader`]).
const KEYS: &[&[u8]] = &[
    b"content",
    b"msg",
    b"time",
    b"t",
    b"s_key",
    b"level",
    b"a",
    b"b",
    b"x",
    b"d",
    b"status",
    b"__tag__:path",
    b"p",
    b"new",
    b"",
];

/// `Match` conditions applied to every result.
const MATCHES: &[&str] = &[
    "Fields[level] == 'error' || Fields[content] =~ /^\\d+/ && !Has(Fields[a])",
    "Has(Fields[_a]) && Fields[msg] != NIL || Tags[env] == 'prod' && Topic =~ /t/",
];

struct Built {
    processors: Vec<(&'static str, Box<dyn Processor>)>,
    chain: Vec<Box<dyn Processor>>,
    matchers: Vec<Matcher>,
}

fn build_all() -> Vec<(&'static str, Box<dyn Processor>)> {
    let json = format!(r#"{{"processors": [{}]}}"#, PROCESSORS.join(","));
    let cfg = registry::parse_config("fuzz", &json).unwrap_or_else(|e| panic!("fuzz options: {e:?}"));
    let cx = PluginContext::for_check("fuzz");
    PROCESSORS
        .iter()
        .zip(&cfg.processors)
        .map(|(text, spec)| match registry::processor(spec, &cx) {
            Ok(p) => (*text, p),
            Err(e) => panic!("{text}: {e:?}"),
        })
        .collect()
}

fn built() -> Built {
    let processors = build_all();
    for name in registry::names(Kind::Processor) {
        assert!(
            processors
                .iter()
                .any(|(text, _)| text.contains(&format!("\"{name}\""))),
            "{name} has no option set in the processors fuzz target"
        );
    }
    let chain = build_all().into_iter().map(|(_, p)| p).collect();
    let matchers = MATCHES
        .iter()
        .map(|m| Matcher::parse(m).unwrap_or_else(|e| panic!("{m}: {e}")))
        .collect();
    Built {
        processors,
        chain,
        matchers,
    }
}

/// Reads the input as records. Each record: a header byte (bit 7: start a new event; bit 6:
/// the value repeats; bits 0-5: the key, below 48 an index into `KEYS` modulo its length, else
/// a key read from the input as a length byte and bytes), a length byte (255: the rest of the
/// input) and the value.
/// A repeating value starts with a count byte `c`, a prefix length and a middle length: it is
/// prefix × 32c + middle + rest × 32c, cut at `MAX_VALUE`.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    fn sized(&mut self) -> &'a [u8] {
        match self.byte() {
            Some(255) | None => self.take(usize::MAX),
            Some(n) => self.take(n as usize),
        }
    }
}

fn repeated(v: &[u8]) -> Vec<u8> {
    let [c, p, m, body @ ..] = v else {
        return v.to_vec();
    };
    let n = *c as usize * 32;
    let p = (*p as usize).min(body.len());
    let (prefix, rest) = body.split_at(p);
    let (middle, suffix) = rest.split_at((*m as usize).min(rest.len()));
    let mut out = Vec::new();
    for _ in 0..n {
        if out.len() >= MAX_VALUE {
            break;
        }
        out.extend_from_slice(prefix);
    }
    out.extend_from_slice(middle);
    for _ in 0..n {
        if out.len() >= 2 * MAX_VALUE {
            break;
        }
        out.extend_from_slice(suffix);
    }
    out.truncate(2 * MAX_VALUE);
    out
}

fn group_of(data: &[u8]) -> EventGroup {
    let mut r = Reader { data };
    let time = match r.byte().unwrap_or(0) % 4 {
        0 => 0,
        1 => 1_700_000_000,
        2 => u32::MAX,
        _ => 86_399,
    };
    let mut g = EventGroup::new(Bytes::from_static(b"fuzz"));
    g.topic = Bytes::from_static(b"t");
    g.tags = vec![(Bytes::from_static(b"env"), Bytes::from_static(b"prod"))];
    let mut e = LogEvent::new(time);
    while let Some(h) = r.byte() {
        if h & 0x80 != 0 && !e.contents.is_empty() {
            if g.events.len() + 1 == MAX_EVENTS {
                break;
            }
            g.events
                .push(std::mem::replace(&mut e, LogEvent::new(time)));
        }
        let i = (h & 0x3f) as usize;
        let key = if i < 48 {
            Bytes::from_static(KEYS[i % KEYS.len()])
        } else {
            Bytes::copy_from_slice(r.sized())
        };
        let raw = r.sized();
        let value = if h & 0x40 != 0 {
            Bytes::from(repeated(raw))
        } else {
            Bytes::copy_from_slice(raw)
        };
        e.contents.push((key, value));
    }
    g.events.push(e);
    g
}

/// What is done with every result: route it and encode it as the flusher would.
fn deliver(g: &EventGroup, matchers: &[Matcher]) {
    for m in matchers {
        if let Selection::Some(part) = m.select(g) {
            assert!(!part.events.is_empty() && part.events.len() < g.events.len());
        }
    }
    // Splitting with `PreserveOthers` copies the other contents onto every piece: a group
    // can encode to 100 MB although it shares the input's bytes. Such groups are not encoded.
    let size: usize = g.events.iter().map(LogEvent::byte_size).sum();
    if size <= MAX_ENCODED {
        let mut out = Vec::new();
        let header = GroupHeader {
            category: "fuzz",
            source: "127.0.0.1",
            with_time_ns: true,
        };
        encode_log_group(&mut out, g, &header);
    }
}

/// Runs every processor, then the chain, over `group`.
fn process(built: &mut Built, group: &EventGroup) {
    for (_, p) in &mut built.processors {
        let mut g = group.clone();
        p.process(&mut g);
        deliver(&g, &built.matchers);
    }
    let mut g = group.clone();
    for p in &mut built.chain {
        p.process(&mut g);
    }
    deliver(&g, &built.matchers);
}

/// The worker thread (a pipeline worker's stack), started once: it takes groups from the
/// first channel and answers on the second when it is done with one.
fn worker() -> &'static Mutex<(SyncSender<EventGroup>, Receiver<()>)> {
    static WORKER: OnceLock<Mutex<(SyncSender<EventGroup>, Receiver<()>)>> = OnceLock::new();
    WORKER.get_or_init(|| {
        let (to_worker, groups) = sync_channel::<EventGroup>(0);
        let (done, from_worker) = sync_channel(0);
        std::thread::Builder::new()
            .name("fuzz-worker".into())
            .stack_size(WORKER_STACK)
            .spawn(move || {
                let mut built = built();
                for group in groups {
                    process(&mut built, &group);
                    done.send(()).expect("the fuzz loop waits for every group");
                }
            })
            .expect("spawn the worker thread");
        Mutex::new((to_worker, from_worker))
    })
}

fuzz_target!(|data: &[u8]| {
    let group = group_of(data);
    let w = worker().lock().unwrap_or_else(|e| e.into_inner());
    // A panic on the worker ends it: both calls fail and the panic is reported here too.
    w.0.send(group).expect("the worker thread died");
    w.1.recv().expect("the worker thread died");
});
