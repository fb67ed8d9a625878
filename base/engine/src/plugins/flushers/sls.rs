//! `flusher_sls`: serializes each log group once into the config's outbox, from which the
//! engine hands it to the host through the adaptor's `LogtailSendPb[V2]`, retrying with
//! back-off while the host refuses (the original dropped the data); groups still
//! undelivered at a stop stay in the outbox for the config's next instance.

use crate::api::prelude::*;
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
    let o: Options = parse_detail(detail)?;
    Ok(Box::new(SlsFlusher {
        config: cx.config_name.clone(),
        logstore: cx.logstore.clone(),
        logstore_key: cx.logstore_key,
        source: cx.host.ip.clone(),
        with_time_ns: cx.global.enable_timestamp_nanosecond,
        keep_shard_hash: o.keep_shard_hash,
    }))
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
