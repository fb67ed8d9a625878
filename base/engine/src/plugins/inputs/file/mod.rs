//! `input_file`: collects text files, line by line or in multi-line records, never losing or
//! repeating a line across rotation, truncation, restart and reload.
//!
//! A config's `input_file` is a *task*; each matched file is an *instance* with its own reader
//! and checkpoint ([`instance`]), as in InLong's agent. The task finds files by a periodic
//! scan of the globs ([`glob`]) together with change notification ([`watch`]): notification
//! makes a new file or new data seen at once, the scan makes sure nothing is missed when
//! notification cannot (events lost, a file system without inotify).
//!
//! State lives in three trees of the store: `file_tasks` (whether the task ran before: files
//! present when a task first starts are read from `TailSizeKB` before their end, every other
//! file from its beginning), `file_instances` (each file's identity and where it was first
//! read from) and `file_offsets` (each file's committed offset). Rows of files that are gone
//! are removed once everything read from them was delivered, and after a restart once the
//! first scan did not find them.

mod encoding;
mod glob;
mod instance;
mod options;
mod split;
mod task;
mod watch;

#[cfg(test)]
mod tests;

use crate::api::prelude::*;
use options::Settings;

/// Builds an `input_file`.
///
/// # Errors
/// A [`DetailError`] naming the offending option.
pub(crate) fn build(detail: &Value, cx: &PluginContext) -> Result<Input, DetailError> {
    let s = Settings::parse(detail)?;
    Ok(Input::Service(Box::new(task::FileTask::new(s, cx))))
}
