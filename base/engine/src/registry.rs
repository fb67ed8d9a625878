//! The registry: the one table of `name → factory`. The factory's variant is the plugin's
//! kind, stated once.
//!
//! To add a plugin: write one file under `plugins/<kind>s/` (start it with
//! `use crate::api::prelude::*;`) with an options struct and a `build` function returning
//! its boxed trait object, then add one line to [`REGISTRY`].

use crate::api::{
    Aggregator, Build, DetailError, Factory, Flusher, Input, PluginContext, Processor,
};
use crate::config::{ConfigError, Kind, PipelineConfig, PluginSpec};
use crate::plugins::{aggregators, flushers, inputs, processors};
use serde_json::Value;

/// Every built-in plugin.
static REGISTRY: &[(&str, Factory)] = &[
    ("metric_mock", Factory::Input(inputs::metric_mock::build)),
    ("service_mock", Factory::Input(inputs::service_mock::build)),
    ("input_file", Factory::Input(inputs::file::build)),
    (
        "processor_add_fields",
        Factory::Processor(processors::add_fields::build),
    ),
    (
        "processor_drop",
        Factory::Processor(processors::drop::build),
    ),
    (
        "processor_default",
        Factory::Processor(processors::default::build),
    ),
    (
        "processor_regex",
        Factory::Processor(processors::regex::build),
    ),
    (
        "processor_json",
        Factory::Processor(processors::json::build),
    ),
    (
        "processor_split_char",
        Factory::Processor(processors::split_char::build),
    ),
    (
        "processor_rename",
        Factory::Processor(processors::rename::build),
    ),
    (
        "processor_filter_regex",
        Factory::Processor(processors::filter_regex::build),
    ),
    (
        "processor_filter_key_regex",
        Factory::Processor(processors::filter_key_regex::build),
    ),
    (
        "processor_split_log_string",
        Factory::Processor(processors::split_log_string::build),
    ),
    (
        "processor_split_log_regex",
        Factory::Processor(processors::split_log_regex::build),
    ),
    (
        "processor_strptime",
        Factory::Processor(processors::strptime::build),
    ),
    (
        "processor_gotime",
        Factory::Processor(processors::gotime::build),
    ),
    (
        "processor_desensitize",
        Factory::Processor(processors::desensitize::build),
    ),
    #[cfg(feature = "test-plugins")]
    (
        "processor_test_panic",
        Factory::Processor(processors::test_panic::build),
    ),
    (
        "aggregator_default",
        Factory::Aggregator(aggregators::default::build),
    ),
    ("flusher_sls", Factory::Flusher(flushers::sls::build)),
    ("flusher_stdout", Factory::Flusher(flushers::stdout::build)),
    ("flusher_null", Factory::Flusher(flushers::null::build)),
    ("flusher_file", Factory::Output(flushers::file::build)),
    ("flusher_forward", Factory::Output(flushers::forward::build)),
    ("flusher_http", Factory::Output(flushers::http::build)),
    ("flusher_otlp", Factory::Output(flushers::otlp::build)),
    ("flusher_syslog", Factory::Output(flushers::syslog::build)),
    #[cfg(feature = "kafka")]
    ("flusher_kafka_v2", Factory::Output(flushers::kafka::build)),
];

impl Factory {
    /// The kind of plugin it builds.
    pub const fn kind(&self) -> Kind {
        match self {
            Factory::Input(_) => Kind::Input,
            Factory::Processor(_) => Kind::Processor,
            Factory::Aggregator(_) => Kind::Aggregator,
            Factory::Flusher(_) | Factory::Output(_) => Kind::Flusher,
        }
    }
}

/// Why a plugin could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// No such plugin of that kind.
    Unknown,
    /// Its options are invalid.
    Detail(DetailError),
}

/// Builds `spec`'s plugin with the factory `pick` finds for its type in its section (the
/// instance's context names it).
fn build<T>(
    spec: &PluginSpec,
    cx: &PluginContext,
    pick: fn(Factory) -> Option<Build<T>>,
) -> Result<T, BuildError> {
    let factory = REGISTRY
        .iter()
        .find(|(name, f)| f.kind() == spec.kind && *name == spec.type_name)
        .and_then(|(_, f)| pick(*f))
        .ok_or(BuildError::Unknown)?;
    let mut cx = cx.clone();
    cx.plugin = spec.instance_name().into();
    factory(&spec.detail, &cx).map_err(BuildError::Detail)
}

/// Builds the input described by `spec`.
///
/// # Errors
/// [`BuildError::Unknown`] for an unknown input type, [`BuildError::Detail`] for bad options.
pub fn input(spec: &PluginSpec, cx: &PluginContext) -> Result<Input, BuildError> {
    build(spec, cx, |f| match f {
        Factory::Input(b) => Some(b),
        _ => None,
    })
}

/// Builds the processor described by `spec`.
///
/// # Errors
/// As [`input`].
pub fn processor(spec: &PluginSpec, cx: &PluginContext) -> Result<Box<dyn Processor>, BuildError> {
    build(spec, cx, |f| match f {
        Factory::Processor(b) => Some(b),
        _ => None,
    })
}

/// Builds the aggregator described by `spec`.
///
/// # Errors
/// As [`input`].
pub fn aggregator(
    spec: &PluginSpec,
    cx: &PluginContext,
) -> Result<Box<dyn Aggregator>, BuildError> {
    build(spec, cx, |f| match f {
        Factory::Aggregator(b) => Some(b),
        _ => None,
    })
}

/// Builds the flusher described by `spec`.
///
/// # Errors
/// As [`input`].
pub fn flusher(spec: &PluginSpec, cx: &PluginContext) -> Result<Box<dyn Flusher>, BuildError> {
    let output = REGISTRY
        .iter()
        .find(|(name, f)| matches!(f, Factory::Output(_)) && *name == spec.type_name);
    if let Some((_, Factory::Output(b))) = output {
        let mut cx = cx.clone();
        cx.plugin = spec.instance_name().into();
        // Every problem is reported: the secondary's along with the output's own.
        let (secondary, bad) = match secondary(&spec.detail) {
            Ok(s) => (s, None),
            Err(e) => (None, Some(e)),
        };
        let built = crate::buffer::build(&spec.detail, &cx, *b, secondary);
        return match (built, bad) {
            (Ok(f), None) => Ok(f),
            (Ok(_), Some(e)) => Err(BuildError::Detail(e)),
            (Err(e), None) => Err(BuildError::Detail(e)),
            (Err(mut e), Some(s)) => {
                e.more.push(s);
                Err(BuildError::Detail(e))
            }
        };
    }
    build(spec, cx, |f| match f {
        Factory::Flusher(b) => Some(b),
        _ => None,
    })
}

/// The output named by `Secondary.Type` of a buffered output's `detail`, with its options.
fn secondary(detail: &Value) -> Result<Option<(crate::buffer::OutputBuild, Value)>, DetailError> {
    let Some(sec) = detail.get("Secondary") else {
        return Ok(None);
    };
    let Some(obj) = sec.as_object() else {
        return Err(DetailError::new(
            "Secondary",
            "expected an object such as {\"Type\": \"flusher_file\", \"FileName\": \"...\"}",
        ));
    };
    let Some(t) = obj.get("Type").and_then(Value::as_str) else {
        return Err(DetailError::new(
            "Secondary.Type",
            "missing: the type of the secondary output (flusher_file, flusher_http)",
        ));
    };
    let found = REGISTRY.iter().find_map(|(name, f)| match f {
        Factory::Output(b) if *name == t => Some(*b),
        _ => None,
    });
    let Some(b) = found else {
        let outputs: Vec<&str> = REGISTRY
            .iter()
            .filter(|(_, f)| matches!(f, Factory::Output(_)))
            .map(|(n, _)| *n)
            .collect();
        return Err(DetailError::new(
            "Secondary.Type",
            format!(
                "{t:?} cannot be a secondary; one of: {}",
                outputs.join(", ")
            ),
        ));
    };
    let mut d = sec.clone();
    if let Value::Object(o) = &mut d {
        o.remove("Type");
    }
    Ok(Some((b, d)))
}

/// Builds `spec`'s plugin once and drops it: whether its type exists and its options hold.
///
/// # Errors
/// As [`input`].
pub fn check(spec: &PluginSpec, cx: &PluginContext) -> Result<(), BuildError> {
    match spec.kind {
        Kind::Input => input(spec, cx).map(drop),
        Kind::Processor => processor(spec, cx).map(drop),
        Kind::Aggregator => aggregator(spec, cx).map(drop),
        Kind::Flusher => flusher(spec, cx).map(drop),
    }
}

/// The kind of the built-in plugin `type_name` (None: no such plugin).
pub fn kind_of(type_name: &str) -> Option<Kind> {
    REGISTRY
        .iter()
        .find(|(n, _)| *n == type_name)
        .map(|(_, f)| f.kind())
}

/// Names of every plugin of `kind`.
pub fn names(kind: Kind) -> Vec<&'static str> {
    REGISTRY
        .iter()
        .filter(|(_, f)| f.kind() == kind)
        .map(|(n, _)| *n)
        .collect()
}

/// Parses a config ([`crate::config::parse`]) and checks every plugin against the registry
/// (each is built once, without side effects, so its options are fully validated).
///
/// # Errors
/// Every problem found, each naming config, plugin and field.
pub fn parse_config(name: &str, json: &str) -> Result<PipelineConfig, Vec<ConfigError>> {
    let (config, mut errors) = crate::config::parse(name, json)?;
    let cx = PluginContext::for_check(name);
    let err = |spec: &PluginSpec, field: String, message: String| ConfigError {
        config: name.to_string(),
        plugin: Some(spec.location()),
        field: Some(field),
        message,
    };
    for spec in config.specs() {
        match check(spec, &cx) {
            Ok(()) => {}
            Err(BuildError::Unknown) => errors.push(err(
                spec,
                "type".into(),
                format!(
                    "unknown {} plugin type `{}` (known: {})",
                    spec.kind.noun(),
                    spec.type_name,
                    names(spec.kind).join(", ")
                ),
            )),
            Err(BuildError::Detail(d)) => {
                for d in d.into_all() {
                    let field = if d.field.is_empty() {
                        "detail".to_string()
                    } else {
                        format!("detail.{}", d.field)
                    };
                    errors.push(err(spec, field, d.message));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;
    use crate::config::*;

    fn parse(name: &str, json: &str) -> Result<PipelineConfig, Vec<ConfigError>> {
        parse_config(name, json)
    }

    fn errors(json: &str) -> Vec<String> {
        parse("cfg", json)
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn defaults_fill_aggregator_and_flusher() {
        let c = parse("cfg", r#"{"inputs":[{"type":"metric_mock/1#3"}]}"#).unwrap();
        assert_eq!(c.aggregators[0].type_name, "aggregator_default");
        assert_eq!(c.flushers[0].type_name, "flusher_sls");
        assert_eq!(c.inputs[0].id.as_deref(), Some("1"));
        assert_eq!(c.inputs[0].priority, Some(3));
    }

    #[test]
    fn priority_is_accepted_and_processors_keep_their_array_order() {
        // As in iLogtail's Go loader: `#priority` is stripped and the processors run in the
        // order they are listed, whatever their priorities.
        let c = parse(
            "cfg",
            r#"{"processors":[{"type":"processor_add_fields#9","detail":{"Fields":{"a":"b"}}},
                              {"type":"processor_drop/x#1","detail":{"DropKeys":["a"]}},
                              {"type":"processor_default#-3"}]}"#,
        )
        .unwrap();
        let order: Vec<(&str, Option<i64>)> = c
            .processors
            .iter()
            .map(|p| (p.type_name.as_str(), p.priority))
            .collect();
        assert_eq!(
            order,
            [
                ("processor_add_fields", Some(9)),
                ("processor_drop", Some(1)),
                ("processor_default", Some(-3))
            ]
        );
        assert_eq!(c.processors[1].instance_name(), "processor_drop/x");
    }

    #[test]
    fn errors_name_config_plugin_and_field() {
        let e = errors(r#"{"processors":[{"type":"processor_nope"}]}"#);
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("config \"cfg\""), "{}", e[0]);
        assert!(e[0].contains("processors[0] (processor_nope)"), "{}", e[0]);
        assert!(e[0].contains("unknown processor plugin type"), "{}", e[0]);

        let e = errors(
            r#"{"processors":[{"type":"processor_add_fields","detail":{"Fields":{"a":"b"},"Bogus":1}}]}"#,
        );
        assert!(e[0].contains("field \"detail.Bogus\""), "{}", e[0]);

        let e = errors(
            r#"{"processors":[{"type":"processor_add_fields","detail":{"Fields":{"a":3}}}]}"#,
        );
        assert!(e[0].contains("field \"detail.Fields.a\""), "{}", e[0]);

        let e = errors(r#"{"global":{"InputIntervalMs":"x"}}"#);
        assert!(e[0].contains("global.InputIntervalMs"), "{}", e[0]);
    }

    #[test]
    fn all_errors_are_collected() {
        let e = errors(
            r#"{"inputs":[{"type":"nope_in"}],"processors":[{"type":"processor_drop","detail":{"DropKeys":"x"}}],"flushers":[{"type":"flusher_nope"}]}"#,
        );
        assert_eq!(e.len(), 3, "{e:?}");
    }

    #[test]
    fn every_error_of_a_plugin_is_reported() {
        // Ill-typed required `Keys`, unknown `Bogus`, ill-typed `FullMatch`, missing `Regex`:
        // four errors, and no "missing field `Keys`" caused by dropping the ill-typed one.
        let e = errors(
            r#"{"processors":[{"type":"processor_regex",
                "detail":{"Keys":"a","Bogus":1,"FullMatch":"yes","KeepSource":false}}]}"#,
        );
        let at = "config \"cfg\": plugin processors[0] (processor_regex): field";
        assert_eq!(e.len(), 4, "{e:#?}");
        for want in [
            "\"detail.Keys\": invalid type",
            "\"detail.Bogus\": unknown field",
            "\"detail.FullMatch\": invalid type",
            "\"detail\": missing field `Regex`",
        ] {
            let want = format!("{at} {want}");
            assert!(
                e.iter().any(|l| l.starts_with(&want)),
                "no {want:?} in {e:#?}"
            );
        }
        assert!(
            !e.iter().any(|l| l.contains("missing field `Keys`")),
            "{e:#?}"
        );

        let e = errors(
            r#"{"processors":[{"type":"processor_regex","detail":{"Regex":1,"Keys":["a"]}}]}"#,
        );
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(
            e[0].contains("field \"detail.Regex\": invalid type"),
            "{}",
            e[0]
        );

        // Inside a nested value: the element's error, then the sibling's.
        let e = errors(
            r#"{"processors":[{"type":"processor_add_fields",
                "detail":{"Fields":{"a":3,"b":"x","c":[]},"Nope":true}}]}"#,
        );
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(e[0].contains("field \"detail.Fields.a\""), "{}", e[0]);
        assert!(e[1].contains("field \"detail.Fields.c\""), "{}", e[1]);
        assert!(e[2].contains("field \"detail.Nope\""), "{}", e[2]);

        // An error inside an array element drops the array (no renumbering, no bogus
        // "missing field"), and the rest is still checked.
        let e = errors(
            r#"{"processors":[{"type":"processor_regex",
                "detail":{"Regex":"(a)","Keys":["a",1,2],"Extra":0}}]}"#,
        );
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(
            e.iter().any(|l| l.contains("field \"detail.Keys[1]\"")),
            "{e:#?}"
        );
        assert!(
            e.iter().any(|l| l.contains("field \"detail.Extra\"")),
            "{e:#?}"
        );

        // Bounded.
        let many: Vec<String> = (0..40).map(|i| format!("\"X{i}\":1")).collect();
        let json = format!(
            r#"{{"processors":[{{"type":"processor_drop","detail":{{"DropKeys":["a"],{}}}}}]}}"#,
            many.join(",")
        );
        assert_eq!(errors(&json).len(), crate::api::MAX_DETAIL_ERRORS);
    }

    #[test]
    fn an_unknown_top_level_key_is_an_error() {
        let e =
            errors(r#"{"inputz":[{"type":"metric_mock"}],"flushers":[{"type":"flusher_stdout"}]}"#);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(
            e[0].starts_with(
                "config \"cfg\": field \"inputz\": unknown top-level key (did you mean `inputs`?)"
            ),
            "{}",
            e[0]
        );
        assert!(
            e[0].contains("global, inputs, processors, aggregators, flushers, extensions"),
            "{}",
            e[0]
        );
        let e = errors(r#"{"comment":"x"}"#);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(!e[0].contains("did you mean"), "{}", e[0]);
        // Every known key is accepted.
        parse(
            "cfg",
            r#"{"global":{},"inputs":[],"processors":[],"aggregators":[],"flushers":[],"extensions":[]}"#,
        )
        .unwrap();
    }

    #[test]
    fn unknown_global_keys_are_ignored_but_listed_as_warnings() {
        let json = r#"{"global":{"InputIntervalMs":5,"StructureType":"v2","TopicType":"custom",
            "HostIP":"1.2.3.4","AlwaysOnline":true,"EnableProcessorTag":true,
            "inputintervalms":7,"MyHostSetting":1},
            "inputs":[{"type":"metric_mock"}]}"#;
        let c = parse("cfg", json).expect("unknown global keys are not errors");
        assert_eq!(c.global.input_interval_ms, 5);
        let w: Vec<String> = warnings("cfg", json)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            w,
            vec![
                "config \"cfg\": field \"global.MyHostSetting\": unknown global key: \
                 no host generation uses it (ignored)",
                "config \"cfg\": field \"global.inputintervalms\": unknown global key \
                 (did you mean `InputIntervalMs`?): no host generation uses it (ignored)",
            ]
        );
        assert!(warnings("cfg", r#"{"global":{"FlushIntervalMs":1}}"#).is_empty());
        assert!(warnings("cfg", "{").is_empty());
        assert!(warnings("cfg", r#"{"inputs":[]}"#).is_empty());
    }

    #[test]
    fn match_is_parsed_on_aggregators_and_flushers_only() {
        let c = parse(
            "cfg",
            r#"{"flushers":[{"type":"flusher_sls","Match":"Fields[level] == 'error'"},
                            {"type":"flusher_stdout"}],
                "aggregators":[{"type":"aggregator_default","Match":"Topic =~ /^a/"}]}"#,
        )
        .unwrap();
        assert_eq!(
            c.flushers[0].matcher.as_ref().unwrap().as_str(),
            "Fields[level] == 'error'"
        );
        assert!(c.flushers[1].matcher.is_none());
        assert!(c.aggregators[0].matcher.is_some());

        let e = errors(
            r#"{"inputs":[{"type":"metric_mock","Match":"TRUE"}],
                "processors":[{"type":"processor_drop","detail":{"DropKeys":["a"]},"Match":"TRUE"}]}"#,
        );
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].contains("inputs[0] (metric_mock): field \"Match\""),
            "{}",
            e[0]
        );
        assert!(
            e[0].contains("only allowed on aggregators and flushers"),
            "{}",
            e[0]
        );
        assert!(
            e[1].contains("processors[0] (processor_drop): field \"Match\""),
            "{}",
            e[1]
        );

        let e = errors(r#"{"flushers":[{"type":"flusher_sls","Match":"Fields[level] = 'x'"}]}"#);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("config \"cfg\": plugin flushers[0] (flusher_sls): field \"Match\""),
            "{}",
            e[0]
        );
        assert!(e[0].contains("at column 15"), "{}", e[0]);

        let e = errors(r#"{"flushers":[{"type":"flusher_sls","Match":"Fields[a] =~ /(/"}]}"#);
        assert!(e[0].contains("invalid regex"), "{}", e[0]);
        assert!(!e[0].contains('\n'), "{}", e[0]);
        let e = errors(r#"{"aggregators":[{"type":"aggregator_default","Match":3}]}"#);
        assert!(
            e[0].contains("field \"Match\": must be a string"),
            "{}",
            e[0]
        );
    }

    #[test]
    fn broken_json_and_wrong_shapes() {
        assert!(errors("{")[0].contains("invalid JSON"));
        assert!(errors("[]")[0].contains("JSON object"));
        assert!(errors(r#"{"inputs":{}}"#)[0].contains("array"));
        assert!(errors(r#"{"inputs":[{"type":"metric_mock","detail":3}]}"#)[0].contains("detail"));
        assert!(errors(r#"{"inputs":[{"type":"metric_mock#x"}]}"#)[0].contains("priority"));
    }

    #[test]
    fn registered_with_the_other_time_and_split_processors() {
        let cfg = r#"{"processors":[
            {"type":"processor_split_log_regex","detail":{"SplitRegex":"\\d+.*"}},
            {"type":"processor_split_log_string","detail":{"SplitKey":"content"}},
            {"type":"processor_strptime","detail":{"SourceKey":"t","Format":"%F %T"}},
            {"type":"processor_gotime","detail":{"SourceKey":"t","SourceFormat":"2006","DestKey":"d","DestFormat":"06"}},
            {"type":"processor_desensitize","detail":{"SourceKey":"pw","Method":"md5"}}
        ]}"#;
        let c = parse_config("cfg", cfg).unwrap();
        assert_eq!(c.processors.len(), 5);
        let bad = cfg.replace(r#""Format":"%F %T""#, r#""Format":"%F %Q""#);
        let errs = parse_config("cfg", &bad).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field.as_deref(), Some("detail.Format"));
        assert!(errs[0].message.contains("%Q"), "{}", errs[0].message);
    }

    #[test]
    fn a_buffered_output_reports_its_own_its_buffers_and_its_secondarys_problems() {
        let cfg = r#"{"flushers":[{"type":"flusher_http","detail":{"RemoteURL":"ftp://x",
            "Buffer":{"Type":"disk","OverflowAction":"explode"},
            "Secondary":{"Type":"flusher_sls"}}}]}"#;
        let errs = parse_config("cfg", cfg).unwrap_err();
        let fields: Vec<&str> = errs.iter().filter_map(|e| e.field.as_deref()).collect();
        assert_eq!(
            fields,
            [
                "detail.RemoteURL",
                "detail.Buffer.OverflowAction",
                "detail.Secondary.Type"
            ],
            "{errs:?}"
        );
        assert!(errs
            .iter()
            .all(|e| e.plugin.as_deref() == Some("flushers[0] (flusher_http)")));
        let ok = r#"{"flushers":[{"type":"flusher_file","detail":{"FilePath":"/tmp/x.log",
            "Buffer":{"Type":"file","ChunkKeys":["tag","time"],"Timekey":60},
            "Secondary":{"Type":"flusher_file","FilePath":"/tmp/failed.log"}}}]}"#;
        parse_config("cfg", ok).unwrap();
    }
}
