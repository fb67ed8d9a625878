//! Delivery to the host, as the engine sees it: a [`Payload`] handed to a [`Host`], which the
//! ABI layer implements (iLogtail's SendPb through the adaptor, a Fluent Bit output, a test's
//! recorder). The engine knows nothing of dlopen, the adaptor or SendPb; retries and ordering
//! are in [`crate::outbox`].

use std::sync::Arc;

/// One serialized `LogGroup` on its way to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Config name passed to SendPb.
    pub config: Arc<str>,
    /// Logstore passed to SendPb.
    pub logstore: Arc<str>,
    /// Key for `IsValidToSend`.
    pub logstore_key: i64,
    /// The serialized `LogGroup`.
    pub data: Vec<u8>,
    /// Number of logs inside.
    pub lines: usize,
    /// Shard hash for SendPbV2, if any.
    pub shard_hash: Option<String>,
    /// Key in the checkpoint store when this payload was persisted at exit; removed from the
    /// store once the host accepted it.
    pub spill_key: Option<Vec<u8>>,
    /// Acknowledgements released once the host accepted (or the store persisted) the data.
    pub acks: Vec<crate::ack::Ack>,
}

/// Why the host did not take a payload: its own code (iLogtail: -1 queue full, -2 unknown
/// config, -3 no adaptor or too large).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub i32);

/// Where an engine delivers: implemented by each ABI layer. Both calls may block (the engine
/// calls them from its pool of blocking threads, never while holding a lock of its own).
pub trait Host: Send + Sync + 'static {
    /// Hands one serialized `LogGroup` to the host; `Ok` once the host has taken it.
    ///
    /// # Errors
    /// [`Refused`] with the host's code: the payload is retried later.
    fn send(&self, payload: &Payload) -> Result<(), Refused>;

    /// Called after [`Host::send`] accepted `payload`, with its acknowledgements: dropping
    /// them (the default) commits the positions of the inputs that produced it. A host that
    /// only queues the data keeps them until the data has really left (so an exit before then
    /// does not count it as delivered).
    fn accepted(&self, payload: &Payload, acks: Vec<crate::ack::Ack>) {
        let _ = payload;
        drop(acks);
    }

    /// Whether the host can take more data for `logstore_key` now.
    fn can_send(&self, logstore_key: i64) -> bool {
        let _ = logstore_key;
        true
    }
}

/// A host that refuses everything (an engine used only to check configs).
#[derive(Debug, Default)]
pub struct NoHost;

impl Host for NoHost {
    fn send(&self, _: &Payload) -> Result<(), Refused> {
        Err(Refused(-3))
    }
}
