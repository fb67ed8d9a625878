//! Pipeline configs: the iLogtail JSON format turned into checked plugin specs.
//!
//! Every problem is collected (not just the first) and each [`ConfigError`] names the config,
//! the plugin (section, index, type) and the field, so `LoadConfig` and
//! `host-harness validate` can print the same precise messages.

use crate::context::PluginContext;
use crate::plugins::{self, Kind};
use crate::routing::Matcher;
use serde::Deserialize;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// Pipeline-wide settings (`"global"`). Unknown keys are ignored: hosts add their own.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GlobalConfig {
    /// Interval of metric inputs (`metric_mock`), in milliseconds.
    pub input_interval_ms: u64,
    /// Interval at which aggregators flush partial groups, in milliseconds.
    pub aggregat_interval_ms: u64,
    /// Interval at which flushers flush buffered data, in milliseconds.
    pub flush_interval_ms: u64,
    /// Capacity of the queue between inputs and processors, in events.
    pub default_log_queue_size: usize,
    /// Capacity of the queue between aggregators and flushers, in log groups.
    pub default_log_group_queue_size: usize,
    /// Write `Time_ns` on sent logs.
    pub enable_timestamp_nanosecond: bool,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        Self {
            input_interval_ms: 1000,
            aggregat_interval_ms: 3000,
            flush_interval_ms: 3000,
            default_log_queue_size: 10_000,
            default_log_group_queue_size: 4,
            enable_timestamp_nanosecond: false,
        }
    }
}

/// One plugin entry of a config, checked against the registry.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// Which section it came from.
    pub kind: Kind,
    /// Position within its section.
    pub index: usize,
    /// Plugin type name (`processor_regex`).
    pub type_name: String,
    /// Instance id from `type/id`, if given.
    pub id: Option<String>,
    /// Priority from `type#priority`, if given.
    pub priority: Option<i64>,
    /// The plugin's `detail` object (`{}` when absent).
    pub detail: Value,
    /// Consecutive failures tolerated (each followed by a restart with back-off) before the
    /// plugin is disabled: the entry's `MaxRetries`, default [`DEFAULT_MAX_RETRIES`].
    pub max_retries: u32,
    /// The entry's `Match` condition (aggregators and flushers only): the plugin receives
    /// only the events it selects. `None` means every event.
    pub matcher: Option<Arc<Matcher>>,
}

/// Default for a plugin entry's `MaxRetries`.
pub const DEFAULT_MAX_RETRIES: u32 = 5;

impl PluginSpec {
    /// `processors[1] (processor_add_fields)`.
    pub fn location(&self) -> String {
        format!(
            "{}[{}] ({})",
            self.kind.section(),
            self.index,
            self.type_name
        )
    }

    /// The name the plugin is known by inside its config (`type/id` or `type/index`).
    pub fn instance_name(&self) -> String {
        match &self.id {
            Some(id) => format!("{}/{}", self.type_name, id),
            None => format!("{}/{}", self.type_name, self.index),
        }
    }
}

/// A checked pipeline config.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Config name given to `LoadConfig`.
    pub name: String,
    /// Pipeline-wide settings.
    pub global: GlobalConfig,
    /// Inputs (may be empty: the host feeds data with `ProcessLog*`).
    pub inputs: Vec<PluginSpec>,
    /// Processors, run serially in order.
    pub processors: Vec<PluginSpec>,
    /// Aggregators (`aggregator_default` when none given).
    pub aggregators: Vec<PluginSpec>,
    /// Flushers (`flusher_sls` when none given).
    pub flushers: Vec<PluginSpec>,
}

/// A problem in a config, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config name.
    pub config: String,
    /// The plugin, e.g. `processors[1] (processor_add_fields)`, when the error is inside one.
    pub plugin: Option<String>,
    /// The field path, e.g. `detail.Fields.env` or `global.InputIntervalMs`.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config \"{}\"", self.config)?;
        if let Some(p) = &self.plugin {
            write!(f, ": plugin {p}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field \"{field}\"")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A problem inside one plugin's `detail`, before the config and plugin are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailError {
    /// Path of the offending field inside `detail` (empty for the object itself).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl DetailError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Deserializes a plugin's `detail` into its typed options, tracking the field path.
///
/// # Errors
/// A [`DetailError`] naming the unknown, missing or ill-typed field.
pub fn parse_detail<T: serde::de::DeserializeOwned>(detail: &Value) -> Result<T, DetailError> {
    serde_path_to_error::deserialize::<_, T>(detail).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // For `unknown field `X``, serde reports the field in the message; name it as the path.
        let field = match (path.as_str(), unknown_field_name(&inner)) {
            (".", Some(name)) => name.to_string(),
            (".", None) => String::new(),
            (p, Some(name)) if !p.ends_with(name) => format!("{p}.{name}"),
            (p, _) => p.to_string(),
        };
        DetailError::new(field, inner)
    })
}

fn unknown_field_name(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// Splits `type[/id][#priority]`.
fn split_type(raw: &str) -> Result<(String, Option<String>, Option<i64>), String> {
    let (rest, priority) = match raw.split_once('#') {
        Some((r, p)) => {
            let p = p
                .parse::<i64>()
                .map_err(|_| format!("priority `{p}` in type `{raw}` is not an integer"))?;
            (r, Some(p))
        }
        None => (raw, None),
    };
    let (name, id) = match rest.split_once('/') {
        Some((n, id)) if !id.is_empty() => (n, Some(id.to_string())),
        Some((n, _)) => (n, None),
        None => (rest, None),
    };
    if name.is_empty() {
        return Err(format!("type `{raw}` has no plugin name"));
    }
    Ok((name.to_string(), id, priority))
}

const SECTIONS: [(&str, Kind); 4] = [
    ("inputs", Kind::Input),
    ("processors", Kind::Processor),
    ("aggregators", Kind::Aggregator),
    ("flushers", Kind::Flusher),
];

/// Parses and checks a config; every plugin is built once (without side effects) so that its
/// options are fully validated.
///
/// # Errors
/// Every problem found, each naming config, plugin and field.
pub fn parse(name: &str, json: &str) -> Result<PipelineConfig, Vec<ConfigError>> {
    let err = |plugin: Option<String>, field: Option<String>, message: String| ConfigError {
        config: name.to_string(),
        plugin,
        field,
        message,
    };
    let root: Value = serde_json::from_str(json)
        .map_err(|e| vec![err(None, None, format!("invalid JSON: {e}"))])?;
    let Value::Object(root) = root else {
        return Err(vec![err(
            None,
            None,
            "the config must be a JSON object".into(),
        )]);
    };
    let mut errors = Vec::new();
    for key in root.keys() {
        let known = matches!(key.as_str(), "global" | "extensions")
            || SECTIONS.iter().any(|(s, _)| s == key);
        if !known {
            tracing::warn!(config = name, key = %key, "ignoring unknown top-level key");
        }
    }
    let global = match root.get("global") {
        None | Some(Value::Null) => GlobalConfig::default(),
        Some(v) => match serde_path_to_error::deserialize::<_, GlobalConfig>(v) {
            Ok(g) => g,
            Err(e) => {
                errors.push(err(
                    None,
                    Some(format!("global.{}", e.path())),
                    e.into_inner().to_string(),
                ));
                GlobalConfig::default()
            }
        },
    };
    if let Some(ext) = root.get("extensions") {
        match ext {
            Value::Null => {}
            Value::Array(a) if a.is_empty() => {}
            Value::Array(a) => {
                for (i, e) in a.iter().enumerate() {
                    let t = e.get("type").and_then(Value::as_str).unwrap_or("?");
                    errors.push(err(
                        Some(format!("extensions[{i}] ({t})")),
                        Some("type".into()),
                        format!("unknown extension plugin type `{t}`"),
                    ));
                }
            }
            _ => errors.push(err(
                None,
                Some("extensions".into()),
                "must be an array".into(),
            )),
        }
    }

    let mut sections: [Vec<PluginSpec>; 4] = Default::default();
    let check_cx = PluginContext::for_check(name);
    for (slot, (section, kind)) in sections.iter_mut().zip(SECTIONS) {
        let entries = match root.get(section) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(a)) => a,
            Some(_) => {
                errors.push(err(
                    None,
                    Some(section.into()),
                    "must be an array of plugins".into(),
                ));
                continue;
            }
        };
        for (index, entry) in entries.iter().enumerate() {
            let at = |t: &str| Some(format!("{section}[{index}] ({t})"));
            let Some(obj) = entry.as_object() else {
                errors.push(err(at("?"), None, "a plugin must be a JSON object".into()));
                continue;
            };
            let Some(raw_type) = obj.get("type").and_then(Value::as_str) else {
                errors.push(err(
                    at("?"),
                    Some("type".into()),
                    "missing or not a string".into(),
                ));
                continue;
            };
            for key in obj.keys() {
                if !matches!(key.as_str(), "type" | "detail" | "MaxRetries" | "Match") {
                    errors.push(err(
                        at(raw_type),
                        Some(key.clone()),
                        "unknown key (a plugin entry has `type`, `detail`, `MaxRetries` and, \
                         for aggregators and flushers, `Match`)"
                            .into(),
                    ));
                }
            }
            let matcher = match (obj.get("Match"), kind) {
                (None, _) => None,
                (Some(_), Kind::Input | Kind::Processor) => {
                    errors.push(err(
                        at(raw_type),
                        Some("Match".into()),
                        format!(
                            "`Match` is only allowed on aggregators and flushers, not on {}s",
                            kind.noun()
                        ),
                    ));
                    None
                }
                (Some(Value::String(expr)), _) => match Matcher::parse(expr) {
                    Ok(m) => Some(Arc::new(m)),
                    Err(e) => {
                        errors.push(err(
                            at(raw_type),
                            Some("Match".into()),
                            format!("invalid condition {expr:?}: {e}"),
                        ));
                        None
                    }
                },
                (Some(v), _) => {
                    errors.push(err(
                        at(raw_type),
                        Some("Match".into()),
                        format!("must be a string condition, got {v}"),
                    ));
                    None
                }
            };
            let max_retries = match obj.get("MaxRetries") {
                None => DEFAULT_MAX_RETRIES,
                Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                    Some(n) => n,
                    None => {
                        errors.push(err(
                            at(raw_type),
                            Some("MaxRetries".into()),
                            format!("must be a non-negative integer, got {v}"),
                        ));
                        DEFAULT_MAX_RETRIES
                    }
                },
            };
            let (type_name, id, priority) = match split_type(raw_type) {
                Ok(t) => t,
                Err(m) => {
                    errors.push(err(at(raw_type), Some("type".into()), m));
                    continue;
                }
            };
            let detail = match obj.get("detail") {
                None | Some(Value::Null) => Value::Object(Default::default()),
                Some(d @ Value::Object(_)) => d.clone(),
                Some(_) => {
                    errors.push(err(
                        at(&type_name),
                        Some("detail".into()),
                        "must be a JSON object".into(),
                    ));
                    continue;
                }
            };
            let spec = PluginSpec {
                kind,
                index,
                type_name,
                id,
                priority,
                detail,
                max_retries,
                matcher,
            };
            match plugins::build(&spec, &check_cx) {
                Ok(_) => slot.push(spec),
                Err(plugins::BuildError::Unknown) => errors.push(err(
                    Some(spec.location()),
                    Some("type".into()),
                    format!(
                        "unknown {} plugin type `{}` (known: {})",
                        kind.noun(),
                        spec.type_name,
                        plugins::names(kind).join(", ")
                    ),
                )),
                Err(plugins::BuildError::Detail(d)) => {
                    let field = if d.field.is_empty() {
                        "detail".to_string()
                    } else {
                        format!("detail.{}", d.field)
                    };
                    errors.push(err(Some(spec.location()), Some(field), d.message))
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let [inputs, processors, mut aggregators, mut flushers] = sections;
    if aggregators.is_empty() {
        aggregators.push(default_spec(Kind::Aggregator, "aggregator_default"));
    }
    if flushers.is_empty() {
        flushers.push(default_spec(Kind::Flusher, "flusher_sls"));
    }
    Ok(PipelineConfig {
        name: name.to_string(),
        global,
        inputs,
        processors,
        aggregators,
        flushers,
    })
}

fn default_spec(kind: Kind, type_name: &str) -> PluginSpec {
    PluginSpec {
        kind,
        index: 0,
        type_name: type_name.to_string(),
        id: None,
        priority: None,
        detail: Value::Object(Default::default()),
        max_retries: DEFAULT_MAX_RETRIES,
        matcher: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
