//! What the parts of one engine share: its runtime, its pool for blocking calls, its
//! statistics, its host and its spare buffers. Nothing here is process-wide: two engines
//! have two of each.

use crate::blocking::Pool;
use crate::host::Host;
use crate::stats::Stats;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::runtime::Handle;

/// Buffers of delivered payloads kept for reuse by any config of the engine: at most this
/// many, of at most this size, so they stay a few MiB in all however many configs.
const SPARE_BUFFERS: usize = 8;
const SPARE_MAX_BYTES: usize = 1 << 20;

/// The shared parts of one engine (cheap to clone).
#[derive(Clone)]
pub struct Services {
    /// The engine's runtime.
    pub rt: Handle,
    /// Threads for calls that may block.
    pub pool: Pool,
    /// Statistics and alarms.
    pub stats: Stats,
    /// Where log groups go.
    pub host: Arc<dyn Host>,
    spares: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("pool", &self.pool)
            .field("stats", &self.stats)
            .finish()
    }
}

impl Services {
    /// Services on `rt`, delivering to `host`, counting in `stats`; `name` prefixes the
    /// names of the pool's threads.
    pub fn new(rt: Handle, host: Arc<dyn Host>, stats: Stats, name: &str) -> Self {
        Self {
            rt,
            pool: Pool::new(name),
            stats,
            host,
            spares: Arc::default(),
        }
    }

    fn spares(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        self.spares.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An empty buffer: a delivered payload's when there is one (see
    /// [`crate::outbox::Outbox::buffer`]).
    pub fn buffer(&self) -> Vec<u8> {
        self.spares().pop().unwrap_or_default()
    }

    /// Keeps a delivered payload's buffer for reuse, if there is room and it is not large.
    pub fn recycle(&self, mut data: Vec<u8>) {
        if data.capacity() > SPARE_MAX_BYTES {
            return;
        }
        let mut kept = self.spares();
        if kept.len() < SPARE_BUFFERS {
            data.clear();
            kept.push(data);
        }
    }
}

/// Services for unit tests: a shared runtime and a host that refuses everything.
#[cfg(test)]
pub(crate) fn for_tests() -> Services {
    static RT: once_cell::sync::Lazy<tokio::runtime::Runtime> =
        once_cell::sync::Lazy::new(|| crate::runtime::build("test"));
    Services::new(
        RT.handle().clone(),
        Arc::new(crate::host::NoHost),
        Stats::default(),
        "test",
    )
}
