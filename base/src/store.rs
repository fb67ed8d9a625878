//! The embedded checkpoint store (sled) opened by `InitPluginBase` under the data directory.
//!
//! Keys follow iLogtail's scheme `<configName>^<key>`.

use std::path::{Path, PathBuf};

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
}
