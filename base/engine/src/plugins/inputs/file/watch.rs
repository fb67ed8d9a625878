//! Change notification for `input_file`: non-recursive watches (inotify on Linux, through
//! the `notify` crate) on the directories a scan visited, folded into a bounded [`Changes`].

use notify::event::{AccessKind, AccessMode, ModifyKind, RemoveKind};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// At most this many directories are watched.
pub(crate) const MAX_WATCHES: usize = 4096;
/// At most this many modified paths are kept between two [`DirWatcher::take`] calls.
pub(crate) const MAX_PATHS: usize = 4096;

/// What happened since the last [`DirWatcher::take`].
#[derive(Default, Debug)]
pub(crate) struct Changes {
    /// Something appeared, disappeared or was renamed in a watched directory (a new file or
    /// subdirectory may need discovering), or events were lost (queue overflow, watcher
    /// error, or more than [`MAX_PATHS`] modified paths): the caller should rescan.
    pub(crate) rescan: bool,
    /// Files whose contents changed (modify / write-close events), at most [`MAX_PATHS`].
    pub(crate) modified: HashSet<PathBuf>,
}

/// What the notify thread records, shared with [`DirWatcher`].
#[derive(Default, Debug)]
struct Shared {
    changes: Changes,
    /// Paths reported removed or renamed (maybe watched directories whose watch is gone),
    /// for [`DirWatcher::sync`]; at most [`MAX_PATHS`], else `gone_lost`.
    gone: HashSet<PathBuf>,
    gone_lost: bool,
}

/// Sets `*flag`; returns whether it was clear.
fn set(flag: &mut bool) -> bool {
    !std::mem::replace(flag, true)
}

impl Shared {
    /// Records one watcher report; returns whether anything new was recorded.
    fn record(&mut self, res: notify::Result<Event>) -> bool {
        let c = &mut self.changes;
        let ev = match res {
            Ok(ev) if !ev.need_rescan() => ev,
            _ => return set(&mut c.rescan),
        };
        match ev.kind {
            EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any)
            | EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                let mut new = false;
                for path in ev.paths {
                    if c.modified.len() >= MAX_PATHS && !c.modified.contains(&path) {
                        c.modified.clear();
                        new |= set(&mut c.rescan);
                    }
                    new |= c.modified.insert(path);
                }
                new
            }
            // Opens, reads and attribute changes say nothing about contents or names.
            EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => false,
            EventKind::Remove(RemoveKind::File) | EventKind::Create(_) => set(&mut c.rescan),
            // Other removals and renames, Any, Other: maybe a watched directory went away.
            _ => {
                for path in ev.paths {
                    if self.gone.len() >= MAX_PATHS {
                        self.gone.clear();
                        self.gone_lost = true;
                    }
                    self.gone.insert(path);
                }
                set(&mut c.rescan)
            }
        }
    }
}

/// Non-recursive watches on a set of directories.
pub(crate) struct DirWatcher {
    watcher: notify::RecommendedWatcher,
    /// Watched directory → its (dev, inode) when the watch was added.
    watched: HashMap<PathBuf, (u64, u64)>,
    shared: Arc<Mutex<Shared>>,
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The (dev, inode) of `dir` if it is a directory (symlinks followed).
fn dir_id(dir: &PathBuf) -> Option<(u64, u64)> {
    let m = std::fs::metadata(dir).ok()?;
    m.is_dir().then(|| (m.dev(), m.ino()))
}

impl DirWatcher {
    /// Starts a watcher with nothing watched; `wake.notify_one()` is called (on the
    /// watcher's thread) whenever new changes are recorded.
    pub(crate) fn new(wake: Arc<tokio::sync::Notify>) -> Result<Self, String> {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let mine = Arc::clone(&shared);
        let handler = move |res: notify::Result<Event>| {
            if lock(&mine).record(res) {
                wake.notify_one();
            }
        };
        let watcher = notify::recommended_watcher(handler).map_err(|e| e.to_string())?;
        Ok(DirWatcher {
            watcher,
            watched: HashMap::new(),
            shared,
        })
    }

    /// Makes the set of watched directories equal to `dirs` (in order, the first
    /// [`MAX_WATCHES`] that can be watched): adds new ones, removes ones no longer listed,
    /// re-adds ones replaced by another directory since, and skips ones that are missing or
    /// alias (same inode as) one already watched. Returns how many are watched.
    pub(crate) fn sync(&mut self, dirs: &[PathBuf]) -> usize {
        let listed: HashSet<&PathBuf> = dirs.iter().collect();
        let mut old = std::mem::take(&mut self.watched);
        for dir in old.keys().filter(|d| !listed.contains(d)) {
            let _ = self.watcher.unwatch(dir);
        }
        old.retain(|d, _| listed.contains(d));
        // A directory reported gone may be back under the same inode but unwatched.
        let (gone, lost) = {
            let mut s = lock(&self.shared);
            (
                std::mem::take(&mut s.gone),
                std::mem::take(&mut s.gone_lost),
            )
        };
        for (dir, id) in old.iter_mut() {
            if lost || gone.contains(dir) {
                *id = (u64::MAX, u64::MAX);
            }
        }
        let mut ids = HashSet::new();
        for dir in dirs {
            if self.watched.len() >= MAX_WATCHES {
                break;
            }
            if self.watched.contains_key(dir) {
                continue;
            }
            let Some(id) = dir_id(dir) else { continue };
            if !ids.insert(id) {
                continue;
            }
            match old.remove(dir) {
                Some(was) if was == id => {}
                was => {
                    if was.is_some() {
                        let _ = self.watcher.unwatch(dir);
                    }
                    if self
                        .watcher
                        .watch(dir, RecursiveMode::NonRecursive)
                        .is_err()
                    {
                        continue;
                    }
                }
            }
            self.watched.insert(dir.clone(), id);
        }
        // Listed but past the limit, vanished or aliased.
        for dir in old.keys() {
            let _ = self.watcher.unwatch(dir);
        }
        self.watched.len()
    }

    /// Takes (and clears) what happened since the last call.
    pub(crate) fn take(&self) -> Changes {
        std::mem::take(&mut lock(&self.shared).changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;
    use std::path::Path;
    use std::time::{Duration, Instant};

    /// A temporary directory removed on drop.
    struct Tmp(PathBuf);

    impl Tmp {
        fn new(name: &str) -> Tmp {
            let dir = std::env::temp_dir().join(format!("dirwatch-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Tmp(dir)
        }
    }

    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn watcher() -> (DirWatcher, Arc<tokio::sync::Notify>) {
        let wake = Arc::new(tokio::sync::Notify::new());
        (DirWatcher::new(Arc::clone(&wake)).unwrap(), wake)
    }

    /// Accumulates changes until `done` holds, polling every 20 ms for up to 10 s.
    fn wait(w: &DirWatcher, done: impl Fn(&Changes) -> bool) -> Changes {
        let (mut acc, deadline) = (Changes::default(), Instant::now() + Duration::from_secs(10));
        loop {
            let c = w.take();
            acc.rescan |= c.rescan;
            acc.modified.extend(c.modified);
            if done(&acc) || Instant::now() > deadline {
                return acc;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn append(path: &Path) {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap();
        f.write_all(b"line\n").unwrap();
    }

    #[tokio::test]
    async fn new_file_sets_rescan_and_wakes() {
        let t = Tmp::new("create");
        let (mut w, wake) = watcher();
        assert_eq!(w.sync(std::slice::from_ref(&t.0)), 1);
        let c = w.take();
        assert!(!c.rescan && c.modified.is_empty());
        fs::write(t.0.join("a.log"), b"x").unwrap();
        let woke = tokio::time::timeout(Duration::from_secs(10), wake.notified()).await;
        assert!(woke.is_ok());
        assert!(wait(&w, |c| c.rescan).rescan);
    }

    #[test]
    fn append_sets_modified() {
        let t = Tmp::new("append");
        let file = t.0.join("a.log");
        fs::write(&file, b"x\n").unwrap();
        let (mut w, _wake) = watcher();
        w.sync(std::slice::from_ref(&t.0));
        append(&file);
        let c = wait(&w, |c| c.modified.contains(&file));
        assert!(c.modified.contains(&file) && !c.rescan, "{c:?}");
    }

    #[test]
    fn new_subdirectory_sets_rescan() {
        let t = Tmp::new("subdir");
        let (mut w, _wake) = watcher();
        w.sync(std::slice::from_ref(&t.0));
        fs::create_dir(t.0.join("sub")).unwrap();
        assert!(wait(&w, |c| c.rescan).rescan);
    }

    #[test]
    fn unwatched_directories_are_silent() {
        let t = Tmp::new("unwatch");
        let (a, b) = (t.0.join("a"), t.0.join("b"));
        for d in [&a, &b] {
            fs::create_dir(d).unwrap();
            fs::write(d.join("f.log"), b"x\n").unwrap();
        }
        let (mut w, _wake) = watcher();
        assert_eq!(w.sync(&[a.clone(), b.clone(), b.clone()]), 2);
        assert_eq!(w.sync(std::slice::from_ref(&b)), 1);
        append(&a.join("f.log"));
        append(&b.join("f.log"));
        // Events come in order: once b's is seen, a's would have been too.
        let c = wait(&w, |c| c.modified.contains(&b.join("f.log")));
        assert_eq!(c.modified, HashSet::from([b.join("f.log")]));
    }

    #[test]
    fn vanished_and_recreated_directories() {
        let t = Tmp::new("vanish");
        let (d, missing) = (t.0.join("d"), t.0.join("missing"));
        fs::create_dir(&d).unwrap();
        let (mut w, _wake) = watcher();
        assert_eq!(w.sync(&[missing.clone(), d.clone()]), 1);
        fs::remove_dir(&d).unwrap();
        assert!(wait(&w, |c| c.rescan).rescan);
        assert_eq!(w.sync(std::slice::from_ref(&d)), 0);
        fs::create_dir(&d).unwrap();
        assert_eq!(w.sync(std::slice::from_ref(&d)), 1);
        w.take();
        fs::write(d.join("a.log"), b"x").unwrap();
        assert!(wait(&w, |c| c.rescan).rescan);
    }

    #[test]
    fn bounded_under_many_events() {
        let mut s = Shared::default();
        for i in 0..=MAX_PATHS {
            let ev = Event::new(EventKind::Modify(ModifyKind::Any));
            assert!(s.record(Ok(ev.add_path(PathBuf::from(format!("/x/{i}"))))));
        }
        assert!(s.changes.rescan && s.changes.modified.len() <= MAX_PATHS);
        s.changes = Changes::default();
        assert!(s.record(Err(notify::Error::generic("lost"))) && s.changes.rescan);
        assert!(!s.record(Ok(Event::new(EventKind::Create(
            notify::event::CreateKind::File
        )))));
    }
}
