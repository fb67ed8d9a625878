//! `flusher_sls`: serializes each log group once into the config's outbox, from which the
//! engine hands it to the host through the adaptor's `LogtailSendPb[V2]`, retrying with
//! back-off while the host refuses (the original dropped the data); groups still
//! undelivered at a stop stay in the outbox for the config's next instance.
//!
//! With a `Buffer` (usually `{"Type": "file"}`), groups go to the buffered-delivery framework
//! ([`crate::buffer`]) first: each group is a frame of a chunk on disk (its inputs commit once
//! it is synced), and the framework's flush thread hands each chunk's groups to the outbox in
//! async mode, committing the chunk once the host accepted all of them (or the exit spill
//! persisted them). A host that is down for minutes then costs disk, not memory, and the
//! inputs keep their pace until `TotalLimitSize`.

use crate::api::prelude::*;
use crate::api::{AckWindow, HostQueueRef};
use crate::proto::{encode_log_group, GroupHeader};
use std::sync::Arc;

const SHARD_HASH_TAG: &[u8] = b"__shardhash__";

/// Options of `flusher_sls`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase", default)]
struct Options {
    /// Keep the `__shardhash__` tag in the group after passing it as the shard hash.
    keep_shard_hash: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            keep_shard_hash: true,
        }
    }
}

struct SlsFlusher {
    config: Arc<str>,
    logstore: Arc<str>,
    logstore_key: i64,
    source: String,
    with_time_ns: bool,
    keep_shard_hash: bool,
}

pub(crate) fn build(detail: &Value, cx: &PluginContext) -> Result<Box<dyn Flusher>, DetailError> {
    if detail.get("Buffer").is_some() {
        return crate::buffer::build(detail, cx, build_output, None);
    }
    let o: Options = parse_detail(detail)?;
    Ok(Box::new(SlsFlusher::new(cx, &o)))
}

impl SlsFlusher {
    fn new(cx: &PluginContext, o: &Options) -> Self {
        Self {
            config: cx.config_name.clone(),
            logstore: cx.logstore.clone(),
            logstore_key: cx.logstore_key,
            source: cx.host.ip.clone(),
            with_time_ns: cx.global.enable_timestamp_nanosecond,
            keep_shard_hash: o.keep_shard_hash,
        }
    }
}

/// The output of a buffered `flusher_sls`: chunks of `LogGroupList` frames, each group handed
/// to the host through the outbox.
struct HostOutput {
    flusher: SlsFlusher,
    host: Option<HostQueueRef>,
}

fn build_output(detail: &Value, cx: &PluginContext) -> Result<Box<dyn Output>, DetailError> {
    let o: Options = parse_detail(detail)?;
    Ok(Box::new(HostOutput {
        flusher: SlsFlusher::new(cx, &o),
        host: cx.host_queue.clone(),
    }))
}

/// The `LogGroup` inside one `LogGroupList` frame (key 0x0a, varint length).
fn frame_body(frame: &[u8]) -> Option<&[u8]> {
    let rest = frame.strip_prefix(&[0x0a])?;
    let (mut len, mut shift, mut i) = (0usize, 0u32, 0usize);
    loop {
        let b = *rest.get(i)?;
        len |= usize::from(b & 0x7f) << shift;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 35 {
            return None;
        }
    }
    rest.get(i..i + len)
}

impl Output for HostOutput {
    fn format(&self) -> Format {
        Format::Protobuf
    }

    fn delayed_commit(&self) -> bool {
        true
    }

    fn max_in_flight(&self) -> usize {
        // What waits in the outbox while the host refuses: two chunks, not the whole buffer.
        2
    }

    fn write(&mut self, _chunk: &Chunk) -> Result<(), WriteError> {
        Err(WriteError::Unrecoverable(
            "flusher_sls hands chunks to the host in async mode only (Buffer.Mode \"async\")"
                .into(),
        ))
    }

    fn try_write(&mut self, chunk: &Chunk, commit: Commit) -> Result<(), WriteError> {
        let Some(HostQueueRef(host)) = &self.host else {
            return Err(WriteError::retry("no queue to the host"));
        };
        // One token for the chunk: when the host has accepted (or the exit spill persisted)
        // every group, the window commits and the chunk is done.
        let commit = std::sync::Mutex::new(Some(commit));
        let window = AckWindow::new(move |_| {
            if let Some(c) = commit.lock().unwrap_or_else(|e| e.into_inner()).take() {
                c.commit();
            }
        });
        let token = window.track(0);
        let mut groups = Vec::new();
        for frame in chunk.groups() {
            let body = frame_body(frame)
                .ok_or_else(|| WriteError::Unrecoverable("a damaged LogGroupList frame".into()))?;
            let group = crate::proto::decode_log_group_lazy(&Bytes::copy_from_slice(body))
                .map_err(|e| WriteError::Unrecoverable(format!("a damaged log group: {e}")))?;
            groups.push(group);
        }
        for mut group in groups {
            group.acks.push(token.clone());
            self.flusher
                .flush(&group, &**host)
                .map_err(|e| WriteError::retry(format!("{e:?}")))?;
        }
        Ok(())
    }
}

impl Flusher for SlsFlusher {
    fn reads_encoded(&self) -> bool {
        // `encode_log_group` copies encoded logs as they are.
        true
    }

    fn flush(&mut self, group: &EventGroup, host: &dyn HostQueue) -> Result<(), FlushError> {
        if group.is_empty() {
            return Ok(());
        }
        let shard_hash = group
            .tag(SHARD_HASH_TAG)
            .map(|h| String::from_utf8_lossy(h).into_owned());
        let mut data = host.buffer();
        let header = GroupHeader {
            category: &self.logstore,
            source: &self.source,
            with_time_ns: self.with_time_ns,
        };
        if shard_hash.is_some() && !self.keep_shard_hash {
            let mut g = group.clone();
            g.tags.retain(|(k, _)| k.as_ref() != SHARD_HASH_TAG);
            encode_log_group(&mut data, &g, &header);
        } else {
            encode_log_group(&mut data, group, &header);
        }
        let payload = Payload {
            config: self.config.clone(),
            logstore: self.logstore.clone(),
            logstore_key: self.logstore_key,
            data,
            lines: group.len(),
            shard_hash,
            spill_key: None,
            acks: group.acks.clone(),
        };
        host.push(payload);
        Ok(())
    }

    fn may_block(&self) -> bool {
        false
    }
}
