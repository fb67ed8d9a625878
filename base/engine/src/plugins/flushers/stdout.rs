//! `flusher_stdout`: writes one JSON object per log (to stdout, or appended to `FileName`).

use crate::api::prelude::*;
use std::io::Write;

/// Options of `flusher_stdout`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
struct Options {
    /// Append to this file instead of writing to stdout.
    file_name: String,
    /// Also write the group tags, as `__tag__:<key>`.
    tags: bool,
    /// Always write to stdout, even when `FileName` is set.
    only_stdout: bool,
}

struct StdoutFlusher {
    file_name: Option<String>,
    file: Option<std::fs::File>,
    /// `Format::Json`, with or without the tags.
    format: Format,
    line: Vec<u8>,
}

pub(crate) fn build(detail: &Value, _cx: &PluginContext) -> Result<Box<dyn Flusher>, DetailError> {
    let o: Options = parse_detail(detail)?;
    let file_name = (!o.file_name.is_empty() && !o.only_stdout).then_some(o.file_name);
    Ok(Box::new(StdoutFlusher {
        file_name,
        file: None,
        format: Format::Json { tags: o.tags },
        line: Vec::new(),
    }))
}

impl Flusher for StdoutFlusher {
    fn flush(&mut self, group: &EventGroup, _host: &dyn HostQueue) -> Result<(), FlushError> {
        self.line.clear();
        self.format.encode(group, &mut self.line);
        match &self.file_name {
            None => std::io::stdout()
                .lock()
                .write_all(&self.line)
                .map_err(|e| FlushError::GiveUp(format!("write to stdout: {e}"))),
            Some(name) => {
                if self.file.is_none() {
                    let f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(name)
                        .map_err(|e| FlushError::Retry(format!("open {name}: {e}")))?;
                    self.file = Some(f);
                }
                let written = self
                    .file
                    .as_mut()
                    .expect("opened above")
                    .write_all(&self.line);
                written.map_err(|e| {
                    // Reopen next time (the file may have been rotated or its disk freed).
                    self.file = None;
                    FlushError::Retry(format!("write to {name}: {e}"))
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::LogEvent;
    use bytes::Bytes;

    #[test]
    fn writes_one_json_line_per_log_to_file() {
        let path = std::env::temp_dir().join(format!("pb-stdout-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let d = serde_json::json!({"FileName": path.to_str().unwrap(), "Tags": true});
        let Ok(mut f) = build(&d, &PluginContext::for_check("t")) else {
            panic!("build")
        };
        let mut g = EventGroup::default();
        g.tags
            .push((Bytes::from_static(b"host"), Bytes::from_static(b"h1")));
        for i in 0..3 {
            let mut e = LogEvent::new(7);
            e.set(Bytes::from_static(b"n"), Bytes::from(i.to_string()));
            g.events.push(e);
        }
        let outbox = crate::outbox::Outbox::new(None, &crate::services::for_tests());
        f.flush(&g, &*outbox).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2]["n"], "2");
        assert_eq!(lines[0]["__tag__:host"], "h1");
        assert_eq!(lines[0]["__time__"], 7);
        let _ = std::fs::remove_file(&path);
    }
}
