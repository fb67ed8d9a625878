//! Pipeline configs: the iLogtail JSON format turned into checked plugin specs.
//!
//! Every problem is collected (not just the first) and each [`ConfigError`] names the config,
//! the plugin (section, index, type) and the field, so `LoadConfig` and
//! `host-harness validate` can print the same precise messages.

use crate::api::GlobalConfig;
use crate::routing::Matcher;

use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// The section a plugin belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Produces events.
    Input,
    /// Transforms groups, serially.
    Processor,
    /// Batches events into log groups with pack ids.
    Aggregator,
    /// Delivers log groups.
    Flusher,
}

impl Kind {
    /// Config section name (`processors`).
    pub const fn section(self) -> &'static str {
        match self {
            Kind::Input => "inputs",
            Kind::Processor => "processors",
            Kind::Aggregator => "aggregators",
            Kind::Flusher => "flushers",
        }
    }

    /// Singular noun (`processor`).
    pub const fn noun(self) -> &'static str {
        match self {
            Kind::Input => "input",
            Kind::Processor => "processor",
            Kind::Aggregator => "aggregator",
            Kind::Flusher => "flusher",
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
    /// Priority from `type#priority`, if given. Accepted and ignored, as in iLogtail: plugins
    /// run in the order of their section (the Go loader strips the suffix and gives each
    /// processor its index as priority, `loadProcessor(.., i, ..)` in
    /// `pluginmanager/logstore_config.go`; its `GetPluginPriority` has no caller).
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
    /// Processors, run serially in the order of the `processors` array (whatever their
    /// `#priority`).
    pub processors: Vec<PluginSpec>,
    /// Aggregators (`aggregator_default` when none given).
    pub aggregators: Vec<PluginSpec>,
    /// Flushers (`flusher_sls` when none given).
    pub flushers: Vec<PluginSpec>,
}

impl PipelineConfig {
    /// Every plugin entry, section by section.
    pub fn specs(&self) -> impl Iterator<Item = &PluginSpec> {
        self.inputs
            .iter()
            .chain(&self.processors)
            .chain(&self.aggregators)
            .chain(&self.flushers)
    }
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

/// The keys of a config object.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "global",
    "inputs",
    "processors",
    "aggregators",
    "flushers",
    "extensions",
];

/// The `global` keys this engine reads ([`GlobalConfig`]).
pub const ENGINE_GLOBAL_KEYS: &[&str] = &[
    "InputIntervalMs",
    "AggregatIntervalMs",
    "FlushIntervalMs",
    "DefaultLogQueueSize",
    "DefaultLogGroupQueueSize",
    "EnableTimestampNanosecond",
];

/// The other `global` keys some host generation writes or reads, accepted without effect:
/// the fields of the Go plugin system's `GlobalConfig` in iLogtail 1.x
/// (`pluginmanager/global_config.go`) and 2.x/LoongCollector (`pkg/config/global_config.go`),
/// `StructureType` (the Go loader's pipeline version, `fetchPluginVersion` in
/// `pluginmanager/logstore_config.go`), the native keys of LoongCollector 3.x
/// (`GlobalConfig::sNativeParam` in `core/collection_pipeline/GlobalConfig.cpp`), and what
/// the C++ side adds to the Go pipeline's `global` (`AlwaysOnline` in 2.x `InputFile.cpp`,
/// `EnableProcessorTag` in `CollectionPipeline.cpp`).
pub const HOST_GLOBAL_KEYS: &[&str] = &[
    // Go GlobalConfig, 1.x to 3.x.
    "InputMaxFirstCollectDelayMs",
    "Tags",
    "LogtailSysConfDir",
    "HostIP",
    "Hostname",
    "AlwaysOnline",
    "DelayStopSec",
    "UsingOldContentTag",
    "EnableContainerdUpperDirDetect",
    "EnableSlsMetricsFormat",
    "EnableProcessorTag",
    "PipelineMetaTagKey",
    "AppendingAllEnvMetaTag",
    "AgentEnvMetaTagKey",
    "LoongCollectorPrometheusAuthorizationPath",
    "LoongCollectorConfDir",
    "LoongCollectorLogConfDir",
    "LoongCollectorLogDir",
    "LoongCollectorDataDir",
    "LoongCollectorDebugDir",
    "LoongCollectorThirdPartyDir",
    "LoongCollectorPluginLogName",
    "LoongCollectorVersionTag",
    "LoongCollectorGoCheckPointDir",
    "LoongCollectorGoCheckPointFile",
    // The Go loader.
    "StructureType",
    // LoongCollector 3.x native pipeline `global`.
    "TopicType",
    "TopicFormat",
    "Priority",
    "AgentMetaTagKey",
];

/// The keys of a `global` object that neither this engine nor any host generation uses
/// (empty when `global` is not an object).
pub fn unknown_global_keys(global: &Value) -> Vec<String> {
    let Value::Object(g) = global else {
        return Vec::new();
    };
    g.keys()
        .filter(|k| {
            !ENGINE_GLOBAL_KEYS.contains(&k.as_str()) && !HOST_GLOBAL_KEYS.contains(&k.as_str())
        })
        .cloned()
        .collect()
}

/// What is suspicious but not wrong in a config: each `global` key that neither this engine
/// nor any host generation uses (`LoadConfig` ignores them, since hosts add their own). Empty
/// when the text is not a JSON object with an object `global` ([`parse`] reports that).
pub fn warnings(name: &str, json: &str) -> Vec<ConfigError> {
    let Ok(Value::Object(root)) = serde_json::from_str::<Value>(json) else {
        return Vec::new();
    };
    let Some(global) = root.get("global") else {
        return Vec::new();
    };
    let known: Vec<&str> = ENGINE_GLOBAL_KEYS
        .iter()
        .chain(HOST_GLOBAL_KEYS)
        .copied()
        .collect();
    unknown_global_keys(global)
        .into_iter()
        .map(|key| ConfigError {
            config: name.to_string(),
            plugin: None,
            message: format!(
                "unknown global key{}: no host generation uses it (ignored)",
                suggestion(&key, &known)
            ),
            field: Some(format!("global.{key}")),
        })
        .collect()
}

/// ` (did you mean `x`?)` when `key` is close to one of `known` (same letters ignoring case,
/// or at most two edits), else empty.
fn suggestion(key: &str, known: &[&str]) -> String {
    let lower = key.to_ascii_lowercase();
    let best = known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_ascii_lowercase()), *k))
        .min();
    match best {
        Some((d, k)) if d <= 2 => format!(" (did you mean `{k}`?)"),
        _ => String::new(),
    }
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Parses a config: its structure, `global`, each entry's `type`, `Match` and `MaxRetries`.
/// Whether each plugin type exists and its `detail` holds is the registry's check
/// ([`crate::registry::parse_config`] does both).
///
/// Returns the config (entries with problems left out) and the problems found.
///
/// # Errors
/// When the text is not a JSON object at all.
#[allow(clippy::type_complexity)]
pub fn parse(
    name: &str,
    json: &str,
) -> Result<(PipelineConfig, Vec<ConfigError>), Vec<ConfigError>> {
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
        if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
            errors.push(err(
                None,
                Some(key.clone()),
                format!(
                    "unknown top-level key{} (a config has {})",
                    suggestion(key, TOP_LEVEL_KEYS),
                    TOP_LEVEL_KEYS.join(", ")
                ),
            ));
        }
    }
    let global = match root.get("global") {
        None | Some(Value::Null) => GlobalConfig::default(),
        Some(v) => match serde_path_to_error::deserialize::<_, GlobalConfig>(v) {
            Ok(g) => {
                for key in unknown_global_keys(v) {
                    tracing::debug!(config = name, key = %key, "ignoring unknown global key");
                }
                g
            }
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
            slot.push(spec);
        }
    }

    let [inputs, processors, mut aggregators, mut flushers] = sections;
    if aggregators.is_empty() {
        aggregators.push(default_spec(Kind::Aggregator, "aggregator_default"));
    }
    if flushers.is_empty() {
        flushers.push(default_spec(Kind::Flusher, "flusher_sls"));
    }
    let config = PipelineConfig {
        name: name.to_string(),
        global,
        inputs,
        processors,
        aggregators,
        flushers,
    };
    Ok((config, errors))
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
