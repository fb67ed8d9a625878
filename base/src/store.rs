//! The embedded checkpoint store (sled) opened by `InitPluginBase` under the data directory.
//!
//! Keys follow iLogtail's scheme `<configName>^<key>`.

use crate::host::Payload;
use std::path::{Path, PathBuf};

/// Tree holding log groups the host had not accepted when the process exited.
const UNDELIVERED: &str = "undelivered";
/// Tree holding when each config was last loaded (seconds since the epoch).
const SEEN: &str = "config_seen";

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    out.extend_from_slice(b);
}

fn encode_payload(p: &Payload) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.data.len() + 64);
    out.push(1); // format version
    put_bytes(&mut out, p.config.as_bytes());
    put_bytes(&mut out, p.logstore.as_bytes());
    out.extend_from_slice(&p.logstore_key.to_le_bytes());
    out.extend_from_slice(&(p.lines as u64).to_le_bytes());
    match &p.shard_hash {
        Some(h) => {
            out.push(1);
            put_bytes(&mut out, h.as_bytes());
        }
        None => out.push(0),
    }
    put_bytes(&mut out, &p.data);
    out
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u64()?).ok()?;
        self.take(n)
    }
    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

fn decode_payload(v: &[u8], key: Vec<u8>) -> Option<Payload> {
    let mut c = Cursor(v);
    if c.take(1)? != [1] {
        return None;
    }
    let config = c.text()?;
    let logstore = c.text()?;
    let logstore_key = c.u64()? as i64;
    let lines = usize::try_from(c.u64()?).ok()?;
    let shard_hash = match c.take(1)?[0] {
        1 => Some(c.text()?),
        _ => None,
    };
    let data = c.bytes()?.to_vec();
    Some(Payload {
        config: config.into(),
        logstore: logstore.into(),
        logstore_key,
        data,
        lines,
        shard_hash,
        spill_key: Some(key),
        acks: Vec::new(),
    })
}

/// A handle to the checkpoint store; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: sled::Db,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    ///
    /// # Errors
    /// When the directory cannot be created or the store is locked/corrupt.
    pub fn open(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create checkpoint dir {}: {e}", dir.display()))?;
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(Some(1000))
            .open()
            .map_err(|e| format!("cannot open checkpoint store {}: {e}", dir.display()))?;
        Ok(Self {
            db,
            path: dir.to_path_buf(),
        })
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn key(config: &str, key: &str) -> Vec<u8> {
        format!("{config}^{key}").into_bytes()
    }

    /// Saves `value` under `<config>^<key>`.
    ///
    /// # Errors
    /// When the store fails to write.
    pub fn save(&self, config: &str, key: &str, value: &[u8]) -> Result<(), String> {
        self.db
            .insert(Self::key(config, key), value)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Reads `<config>^<key>`.
    pub fn get(&self, config: &str, key: &str) -> Option<Vec<u8>> {
        self.db
            .get(Self::key(config, key))
            .ok()
            .flatten()
            .map(|v| v.to_vec())
    }

    fn undelivered(&self) -> Result<sled::Tree, String> {
        self.db.open_tree(UNDELIVERED).map_err(|e| e.to_string())
    }

    /// Persists payloads the host did not accept before exit; each gets its store key.
    ///
    /// # Errors
    /// When the store fails to write.
    pub fn spill(&self, payloads: &mut [Payload]) -> Result<usize, String> {
        let tree = self.undelivered()?;
        let mut n = 0;
        for p in payloads.iter_mut().filter(|p| p.spill_key.is_none()) {
            let id = self.db.generate_id().map_err(|e| e.to_string())?;
            let key = id.to_be_bytes().to_vec();
            tree.insert(&key, encode_payload(p))
                .map_err(|e| e.to_string())?;
            p.spill_key = Some(key);
            n += 1;
        }
        tree.flush().map_err(|e| e.to_string())?;
        Ok(n)
    }

    /// Payloads persisted by an earlier process, oldest first.
    pub fn spilled(&self) -> Vec<Payload> {
        let Ok(tree) = self.undelivered() else {
            return Vec::new();
        };
        tree.iter()
            .filter_map(Result::ok)
            .filter_map(|(k, v)| {
                let p = decode_payload(&v, k.to_vec());
                if p.is_none() {
                    tracing::error!(
                        "skipping an unreadable undelivered entry in the checkpoint store"
                    );
                }
                p
            })
            .collect()
    }

    /// Forgets a persisted payload once the host accepted it.
    pub fn unspill(&self, key: &[u8]) {
        if let Ok(tree) = self.undelivered() {
            if let Err(e) = tree.remove(key) {
                tracing::error!(error = %e, "cannot remove a delivered entry from the store");
            }
        }
    }

    /// Records that `configs` are loaded now (`now` in seconds since the epoch).
    pub fn mark_seen<'a>(&self, configs: impl IntoIterator<Item = &'a str>, now: u64) {
        if let Ok(seen) = self.db.open_tree(SEEN) {
            for c in configs {
                let _ = seen.insert(c.as_bytes(), &now.to_be_bytes());
            }
        }
    }

    /// Deletes the checkpoints of every config not in `loaded` that has not been seen for
    /// more than `ttl_secs`. Configs with checkpoints but no record yet start their clock now.
    /// Returns the number of keys deleted.
    pub fn cleanup(
        &self,
        loaded: &std::collections::HashSet<String>,
        ttl_secs: u64,
        now: u64,
    ) -> usize {
        let Ok(seen) = self.db.open_tree(SEEN) else {
            return 0;
        };
        let mut owners = std::collections::BTreeSet::new();
        for (k, _) in self.db.iter().filter_map(Result::ok) {
            if let Some(i) = k.iter().position(|b| *b == b'^') {
                owners.insert(k[..i].to_vec());
            }
        }
        let mut deleted = 0;
        for owner in owners {
            let name = String::from_utf8_lossy(&owner).into_owned();
            if loaded.contains(&name) {
                continue;
            }
            let last = seen
                .get(&owner)
                .ok()
                .flatten()
                .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes));
            match last {
                None => {
                    let _ = seen.insert(&owner, &now.to_be_bytes());
                }
                Some(t) if now.saturating_sub(t) > ttl_secs => {
                    let mut prefix = owner.clone();
                    prefix.push(b'^');
                    for (k, _) in self.db.scan_prefix(&prefix).filter_map(Result::ok) {
                        if self.db.remove(k).is_ok() {
                            deleted += 1;
                        }
                    }
                    let _ = seen.remove(&owner);
                    tracing::info!(config = %name, "removed checkpoints of a config absent for longer than CheckpointTTLSeconds");
                }
                Some(_) => {}
            }
        }
        deleted
    }

    /// Writes everything to disk.
    pub fn flush(&self) {
        if let Err(e) = self.db.flush() {
            tracing::error!(error = %e, "checkpoint store flush failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_get_flush_reopen() {
        let dir = std::env::temp_dir().join(format!("pb-store-{}", std::process::id()));
        {
            let s = Store::open(&dir).unwrap();
            s.save("cfg", "offset", b"42").unwrap();
            assert_eq!(s.get("cfg", "offset").as_deref(), Some(&b"42"[..]));
            assert_eq!(s.get("other", "offset"), None);
            s.flush();
        }
        let s = Store::open(&dir).unwrap();
        assert_eq!(s.get("cfg", "offset").as_deref(), Some(&b"42"[..]));
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cleanup_removes_only_configs_absent_past_the_ttl() {
        let dir = std::env::temp_dir().join(format!("pb-cleanup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = Store::open(&dir).unwrap();
        for c in ["live", "old", "recent", "unknown"] {
            s.save(c, "offset", b"1").unwrap();
        }
        s.mark_seen(["old"], 1000);
        s.mark_seen(["recent"], 9000);
        let loaded: std::collections::HashSet<String> = ["live".to_string()].into();
        assert_eq!(
            s.cleanup(&loaded, 3600, 10_000),
            1,
            "only `old` is past the TTL"
        );
        assert!(s.get("old", "offset").is_none());
        for c in ["live", "recent", "unknown"] {
            assert!(s.get(c, "offset").is_some(), "{c} kept");
        }
        // `unknown` started its clock at 10_000: gone once the TTL has passed since then.
        assert_eq!(s.cleanup(&loaded, 3600, 13_700), 2);
        assert!(s.get("live", "offset").is_some());
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn spilled_payloads_survive_a_reopen_until_unspilled() {
        let dir = std::env::temp_dir().join(format!("pb-spill-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mk = |i: u8| Payload {
            config: "cfg".into(),
            logstore: "ls".into(),
            logstore_key: -1,
            data: vec![i; 10],
            lines: 3,
            shard_hash: (i == 2).then(|| "h".to_string()),
            spill_key: None,
            acks: Vec::new(),
        };
        {
            let s = Store::open(&dir).unwrap();
            let mut ps = vec![mk(1), mk(2)];
            assert_eq!(s.spill(&mut ps).unwrap(), 2);
            assert_eq!(s.spill(&mut ps).unwrap(), 0, "already persisted");
        }
        let s = Store::open(&dir).unwrap();
        let back = s.spilled();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].data, vec![1; 10]);
        assert_eq!(back[1].shard_hash.as_deref(), Some("h"));
        s.unspill(back[0].spill_key.as_ref().unwrap());
        assert_eq!(s.spilled().len(), 1);
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
