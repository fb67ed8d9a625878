//! The options of `input_file` (LoongCollector's names where they exist) and the settings
//! compiled from them.

use super::glob::{MatcherOptions, PathMatcher};
use super::split::{Multiline, SplitOptions, Unmatched};
use crate::api::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// Options of `input_file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Options {
    /// Absolute globs of the files to collect (`*`, `?`, `**`).
    file_paths: Vec<String>,
    /// Directory levels a `**` may stand for.
    #[serde(default)]
    max_dir_search_depth: usize,
    /// Whole-path globs of files not to collect.
    #[serde(default)]
    exclude_file_paths: Vec<String>,
    /// File-name globs of files not to collect.
    #[serde(default)]
    exclude_files: Vec<String>,
    /// Directories (globs) not to collect from.
    #[serde(default)]
    exclude_dirs: Vec<String>,
    /// `utf8` or `gbk`.
    #[serde(default = "default_encoding")]
    file_encoding: String,
    /// Where a file present when the config first starts is read from: this many KiB before
    /// its end.
    #[serde(default = "default_tail_size_kb", rename = "TailSizeKB")]
    tail_size_kb: u64,
    /// Records of several lines.
    #[serde(default)]
    multiline: Option<MultilineOptions>,
    /// Seconds without new data after which an incomplete last record is emitted.
    #[serde(default = "default_flush_timeout")]
    flush_timeout_secs: u64,
    /// Longest record; longer ones are emitted in marked pieces.
    #[serde(default = "default_max_line_bytes")]
    max_line_bytes: usize,
    /// Adds the inode tag and each log's offset.
    #[serde(default)]
    appending_log_position_meta: bool,
    /// Name of the per-log offset field (setting it adds the field).
    #[serde(default)]
    file_offset_key: Option<String>,
    /// Renames (or with "" removes) the file tags: `FilePathTagKey`, `FileInodeTagKey`.
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// Period of the discovery scan that backs change notification up, in milliseconds.
    #[serde(default = "default_scan_interval")]
    scan_interval_ms: u64,
    /// Most files held open at once by this input.
    #[serde(default = "default_max_open_files")]
    max_open_files: usize,
    /// Seconds without new data after which a file is closed (reopened when it changes).
    #[serde(default = "default_close_inactive")]
    close_inactive_secs: u64,
    /// Seconds without new data after which a closed file's instance ends (its state is kept
    /// in a few bytes; the file is taken up again where it was when it grows).
    #[serde(default = "default_instance_idle")]
    instance_idle_secs: u64,
    /// LoongCollector's container discovery (not available: must be false).
    #[serde(default)]
    enable_container_discovery: bool,
    /// LoongCollector's exactly-once mode (not available: must be 0).
    #[serde(default)]
    enable_exactly_once: u64,
    /// Accepted for LoongCollector configs; each file is collected by every config matching it.
    #[serde(default)]
    allowing_included_by_multi_configs: bool,
    /// Accepted for LoongCollector configs (files rotated while stopped are looked for next
    /// to their last path).
    #[serde(default)]
    max_checkpoint_dir_search_depth: u64,
    /// Accepted for LoongCollector configs (no effect).
    #[serde(default)]
    preserved_dir_depth: i64,
    /// Accepted for LoongCollector configs (no effect).
    #[serde(default)]
    allowing_collecting_files_in_root_dir: bool,
    /// Container options: only with container discovery.
    #[serde(default)]
    container_filters: Option<Value>,
    /// Container options: only with container discovery.
    #[serde(default)]
    external_k8s_label_tag: Option<Value>,
    /// Container options: only with container discovery.
    #[serde(default)]
    external_env_tag: Option<Value>,
}

/// `Multiline` of `input_file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct MultilineOptions {
    /// Only `custom` (patterns).
    #[serde(default)]
    mode: Option<String>,
    /// A line that starts a record.
    #[serde(default)]
    start_pattern: Option<String>,
    /// A line that continues a record.
    #[serde(default)]
    continue_pattern: Option<String>,
    /// A line that ends a record.
    #[serde(default)]
    end_pattern: Option<String>,
    /// `single_line` or `discard`: what becomes of lines outside records.
    #[serde(default)]
    unmatched_content_treatment: Option<String>,
    /// Accepted (no effect).
    #[serde(default)]
    ignoring_unmatch_warning: bool,
}

fn default_encoding() -> String {
    "utf8".into()
}
const fn default_tail_size_kb() -> u64 {
    1024
}
const fn default_flush_timeout() -> u64 {
    60
}
const fn default_max_line_bytes() -> usize {
    512 * 1024
}
const fn default_scan_interval() -> u64 {
    1000
}
const fn default_max_open_files() -> usize {
    1024
}
const fn default_close_inactive() -> u64 {
    60
}
const fn default_instance_idle() -> u64 {
    600
}

/// The default group tag holding a file's path.
pub(super) const PATH_TAG: &str = "__path__";
/// The default group tag holding a file's inode.
pub(super) const INODE_TAG: &str = "__inode__";
/// The default per-log field holding a record's offset.
pub(super) const OFFSET_KEY: &str = "__file_offset__";
/// The field marking the pieces of a record longer than `MaxLineBytes` (1, 2, ...).
pub(super) const CUT_KEY: &str = "__line_cut__";

/// What an `input_file` instance runs with.
pub(super) struct Settings {
    /// Which files.
    pub(super) matcher: PathMatcher,
    /// The split options (patterns compiled).
    pub(super) split: SplitOptions,
    /// Files are GBK (transcoded to UTF-8).
    pub(super) gbk: bool,
    /// `TailSizeKB` in bytes.
    pub(super) tail_bytes: u64,
    /// `FlushTimeoutSecs`.
    pub(super) flush_timeout: Duration,
    /// Group tag of the path, when kept.
    pub(super) path_tag: Option<Bytes>,
    /// Group tag of the inode, when added.
    pub(super) inode_tag: Option<Bytes>,
    /// Per-log offset field, when added.
    pub(super) offset_key: Option<Bytes>,
    /// `ScanIntervalMs`.
    pub(super) scan_interval: Duration,
    /// `MaxOpenFiles`.
    pub(super) max_open_files: usize,
    /// `CloseInactiveSecs`.
    pub(super) close_inactive: Duration,
    /// `InstanceIdleSecs`.
    pub(super) instance_idle: Duration,
}

impl Settings {
    /// Parses and checks `detail`.
    ///
    /// # Errors
    /// A [`DetailError`] naming the field.
    pub(super) fn parse(detail: &Value) -> Result<Self, DetailError> {
        let o: Options = parse_detail(detail)?;
        // Every problem is reported, not only the first.
        let mut errs: Vec<DetailError> = Vec::new();
        let mut fail = |field: &str, message: &str| errs.push(DetailError::new(field, message));
        if o.enable_container_discovery {
            fail(
                "EnableContainerDiscovery",
                "container discovery is not available in this runtime; collect the containers' \
                 log paths (mounted on the host) instead",
            );
        }
        if o.enable_exactly_once > 0 {
            fail(
                "EnableExactlyOnce",
                "exactly-once is not available; every line is delivered at least once, with \
                 pack ids that let a receiver drop repeats",
            );
        }
        for (name, v) in [
            ("ContainerFilters", &o.container_filters),
            ("ExternalK8sLabelTag", &o.external_k8s_label_tag),
            ("ExternalEnvTag", &o.external_env_tag),
        ] {
            if v.as_ref().is_some_and(|v| !v.is_null()) {
                fail(
                    name,
                    "applies only with EnableContainerDiscovery, which is not available",
                );
            }
        }
        let _ = (
            o.allowing_included_by_multi_configs,
            o.max_checkpoint_dir_search_depth,
            o.preserved_dir_depth,
            o.allowing_collecting_files_in_root_dir,
        );
        let matcher = PathMatcher::new(&MatcherOptions {
            file_paths: o.file_paths,
            max_dir_search_depth: o.max_dir_search_depth,
            exclude_file_paths: o.exclude_file_paths,
            exclude_files: o.exclude_files,
            exclude_dirs: o.exclude_dirs,
        })
        .map_err(|(field, message)| fail(&field, &message))
        .ok();
        let gbk = match o.file_encoding.to_ascii_lowercase().as_str() {
            "utf8" | "utf-8" => false,
            "gbk" => true,
            _ => {
                fail("FileEncoding", "must be utf8 or gbk");
                false
            }
        };
        if o.tail_size_kb > 10_485_760 {
            fail("TailSizeKB", "must be 0 to 10485760");
        }
        if o.max_line_bytes < 64 || o.max_line_bytes > 64 << 20 {
            fail("MaxLineBytes", "must be 64 to 67108864");
        }
        if o.max_open_files == 0 {
            fail("MaxOpenFiles", "must be at least 1");
        }
        if o.scan_interval_ms < 10 {
            fail("ScanIntervalMs", "must be at least 10");
        }
        let multiline = match o.multiline.map(multiline) {
            None => None,
            Some(Ok(m)) => Some(m),
            Some(Err(e)) => {
                fail(&e.field, &e.message);
                None
            }
        };
        let mut path_tag = Some(config_text(PATH_TAG.as_bytes()));
        let mut inode_tag = o
            .appending_log_position_meta
            .then(|| config_text(INODE_TAG.as_bytes()));
        for (k, v) in &o.tags {
            let slot = match k.as_str() {
                "FilePathTagKey" => (&mut path_tag, PATH_TAG),
                "FileInodeTagKey" => (&mut inode_tag, INODE_TAG),
                _ => {
                    fail(
                        &format!("Tags.{k}"),
                        "unknown tag (FilePathTagKey, FileInodeTagKey)",
                    );
                    continue;
                }
            };
            *slot.0 = match v.as_str() {
                "" => None,
                "__default__" => Some(config_text(slot.1.as_bytes())),
                name => Some(config_text(name.as_bytes())),
            };
        }
        let offset_key = match (&o.file_offset_key, o.appending_log_position_meta) {
            (Some(k), _) if k.is_empty() => {
                fail("FileOffsetKey", "must not be empty");
                None
            }
            (Some(k), _) => Some(config_text(k.as_bytes())),
            (None, true) => Some(config_text(OFFSET_KEY.as_bytes())),
            (None, false) => None,
        };
        let (Some(matcher), true) = (matcher, errs.is_empty()) else {
            let mut all = errs.into_iter();
            let mut first = all
                .next()
                .unwrap_or_else(|| DetailError::new("", "invalid options"));
            first.more = all.collect();
            return Err(first);
        };
        Ok(Self {
            matcher,
            split: SplitOptions {
                max_line_bytes: o.max_line_bytes,
                multiline,
            },
            gbk,
            tail_bytes: o.tail_size_kb * 1024,
            flush_timeout: Duration::from_secs(o.flush_timeout_secs),
            path_tag,
            inode_tag,
            offset_key,
            scan_interval: Duration::from_millis(o.scan_interval_ms),
            max_open_files: o.max_open_files,
            close_inactive: Duration::from_secs(o.close_inactive_secs.max(1)),
            instance_idle: Duration::from_secs(o.instance_idle_secs.max(1)),
        })
    }
}

fn multiline(m: MultilineOptions) -> Result<Multiline, DetailError> {
    let _ = m.ignoring_unmatch_warning;
    if let Some(mode) = m
        .mode
        .as_deref()
        .filter(|s| !s.eq_ignore_ascii_case("custom"))
    {
        return Err(DetailError::new(
            "Multiline.Mode",
            format!("`{mode}` is not available; only custom (StartPattern, ContinuePattern, EndPattern)"),
        ));
    }
    let unmatched = match m.unmatched_content_treatment.as_deref() {
        None | Some("single_line") => Unmatched::SingleLine,
        Some("discard") => Unmatched::Discard,
        Some(_) => {
            return Err(DetailError::new(
                "Multiline.UnmatchedContentTreatment",
                "must be single_line or discard",
            ))
        }
    };
    let some = |p: &Option<String>| p.as_deref().filter(|p| !p.is_empty()).map(str::to_string);
    let (start, cont, end) = (
        some(&m.start_pattern),
        some(&m.continue_pattern),
        some(&m.end_pattern),
    );
    Multiline::new(start.as_deref(), cont.as_deref(), end.as_deref(), unmatched)
        .map_err(|(field, message)| DetailError::new(field, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(detail: Value) -> DetailError {
        match Settings::parse(&detail) {
            Ok(_) => panic!("accepted {detail}"),
            Err(e) => e,
        }
    }

    #[test]
    fn defaults_follow_loongcollector() {
        let s = Settings::parse(&json!({"FilePaths": ["/var/log/*.log"]})).unwrap();
        assert_eq!(s.tail_bytes, 1024 * 1024);
        assert_eq!(s.flush_timeout, Duration::from_secs(60));
        assert_eq!(s.path_tag.as_deref(), Some(&b"__path__"[..]));
        assert!(s.inode_tag.is_none() && s.offset_key.is_none() && !s.gbk);
        let s = Settings::parse(
            &json!({"FilePaths": ["/a/*.log"], "AppendingLogPositionMeta": true,
            "Tags": {"FilePathTagKey": "", "FileInodeTagKey": "ino"}}),
        )
        .unwrap();
        assert!(s.path_tag.is_none());
        assert_eq!(s.inode_tag.as_deref(), Some(&b"ino"[..]));
        assert_eq!(s.offset_key.as_deref(), Some(&b"__file_offset__"[..]));
    }

    #[test]
    fn errors_name_the_field() {
        assert!(err(json!({})).message.contains("FilePaths"));
        assert_eq!(
            err(json!({"FilePaths": ["/a"], "FileEncoding": "latin1"})).field,
            "FileEncoding"
        );
        assert_eq!(
            err(json!({"FilePaths": ["/a"], "Multiline": {"StartPattern": "("}})).field,
            "Multiline.StartPattern"
        );
        assert_eq!(
            err(json!({"FilePaths": ["/a"], "EnableContainerDiscovery": true})).field,
            "EnableContainerDiscovery"
        );
        assert_eq!(
            err(json!({"FilePaths": ["/a"], "Tags": {"X": "y"}})).field,
            "Tags.X"
        );
        assert_eq!(
            err(json!({"FilePaths": ["/a"], "MaxLineBytes": 1})).field,
            "MaxLineBytes"
        );
    }
}
