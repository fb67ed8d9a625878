//! Change notification for `input_file`: one [`WatchHub`] per engine owns the only notify
//! watcher (one inotify instance, one thread); each `input_file` holds a [`DirWatcher`], a
//! subscription to non-recursive watches on the directories its scan visited, folded into a
//! bounded [`Changes`]. A directory is watched once however many subscribers want it.
//!
//! Locks: `watcher` (taken first) guards every call into notify and every change of which
//! directories are watched; `dispatch` is what the notify thread takes, never held across a
//! call into notify (whose `watch` / `unwatch` wait for that thread).

use notify::event::{AccessKind, AccessMode, ModifyKind, RemoveKind};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// At most this many directories are watched for one subscriber.
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

/// (dev, inode) of a directory.
type Id = (u64, u64);

/// A directory the hub watches, under the path it is watched by (its key).
struct Entry {
    /// What the path was when the watch was added.
    id: Id,
    /// Not watched yet, or maybe no longer (reported gone): re-watched by the next sync
    /// wanting it.
    stale: bool,
    /// Its subscribers, each with the path it knows the directory by (an alias maybe).
    subs: Vec<(u64, PathBuf)>,
}

struct Sub {
    changes: Changes,
    wake: Arc<Notify>,
}

/// What the notify thread reads and records.
#[derive(Default)]
struct Dispatch {
    dirs: HashMap<PathBuf, Entry>,
    /// Inode → the key it is watched under (inotify has one watch per inode).
    by_id: HashMap<Id, PathBuf>,
    subs: HashMap<u64, Sub>,
    last_sub: u64,
    /// Watched directories reported removed or renamed (their watches, and notify's on
    /// the directories below, may be gone); at most [`MAX_PATHS`], else `gone_lost`.
    gone: HashSet<PathBuf>,
    gone_lost: bool,
}

/// Sets `*flag`; returns whether it was clear.
fn set(flag: &mut bool) -> bool {
    !std::mem::replace(flag, true)
}

/// Adds a modified path to `c` (bounded); returns whether it was new.
fn add_modified(c: &mut Changes, path: PathBuf) -> bool {
    let mut new = false;
    if c.modified.len() >= MAX_PATHS && !c.modified.contains(&path) {
        c.modified.clear();
        new = set(&mut c.rescan);
    }
    c.modified.insert(path) || new
}

/// `path` (under or at `key`) as a subscriber knowing `key` as `known` calls it.
fn rebase(path: &Path, key: &Path, known: &Path) -> PathBuf {
    match path.strip_prefix(key) {
        Ok(rest) if known != key && !rest.as_os_str().is_empty() => known.join(rest),
        Ok(_) if known != key => known.to_path_buf(),
        _ => path.to_path_buf(),
    }
}

fn wake_all(wakes: Vec<Arc<Notify>>) {
    wakes.iter().for_each(|w| w.notify_one());
}

impl Dispatch {
    /// Records one watcher report for the subscribers it concerns; returns whom to wake.
    fn record(&mut self, res: notify::Result<Event>) -> Vec<Arc<Notify>> {
        let mut woken = HashSet::new();
        let ev = match res {
            Ok(ev) if !ev.need_rescan() && !ev.paths.is_empty() => ev,
            _ => {
                for (id, s) in self.subs.iter_mut() {
                    if set(&mut s.changes.rescan) {
                        woken.insert(*id);
                    }
                }
                return self.wakes(woken);
            }
        };
        let modify = match ev.kind {
            EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any)
            | EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            // Opens, reads and attribute changes say nothing about contents or names.
            EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => return vec![],
            _ => false,
        };
        // Other removals and renames, Any, Other: maybe a watched directory went away.
        let maybe_gone = !modify
            && !matches!(
                ev.kind,
                EventKind::Remove(RemoveKind::File) | EventKind::Create(_)
            );
        for path in &ev.paths {
            if maybe_gone && self.dirs.contains_key(path) {
                if self.gone.len() >= MAX_PATHS {
                    self.gone.clear();
                    self.gone_lost = true;
                }
                self.gone.insert(path.clone());
            }
            // The directory itself (removed, renamed) and the one it is in.
            for key in [Some(path.as_path()), path.parent()].into_iter().flatten() {
                for (id, known) in self.dirs.get(key).map_or(&[][..], |e| &e.subs) {
                    let Some(s) = self.subs.get_mut(id) else {
                        continue;
                    };
                    let new = if modify {
                        add_modified(&mut s.changes, rebase(path, key, known))
                    } else {
                        set(&mut s.changes.rescan)
                    };
                    if new {
                        woken.insert(*id);
                    }
                }
            }
        }
        self.wakes(woken)
    }

    fn wakes(&self, ids: HashSet<u64>) -> Vec<Arc<Notify>> {
        ids.iter()
            .filter_map(|id| Some(Arc::clone(&self.subs.get(id)?.wake)))
            .collect()
    }

    /// Marks `key` stale, telling its subscribers but `me` to rescan (and so sync).
    fn stale(&mut self, key: &Path, me: u64, woken: &mut HashSet<u64>) {
        let Some(e) = self.dirs.get_mut(key) else {
            return;
        };
        e.stale = true;
        for (id, _) in e.subs.iter().filter(|(id, _)| *id != me) {
            if let Some(s) = self.subs.get_mut(id) {
                if set(&mut s.changes.rescan) {
                    woken.insert(*id);
                }
            }
        }
    }

    /// Marks stale the directories reported gone and those below them; whom to wake.
    fn drain_gone(&mut self, me: u64) -> Vec<Arc<Notify>> {
        let gone = std::mem::take(&mut self.gone);
        let lost = std::mem::take(&mut self.gone_lost);
        let mut woken = HashSet::new();
        if lost || !gone.is_empty() {
            let hit: Vec<PathBuf> = (self.dirs.keys())
                .filter(|k| lost || k.ancestors().any(|a| gone.contains(a)))
                .cloned()
                .collect();
            hit.iter().for_each(|k| self.stale(k, me, &mut woken));
        }
        self.wakes(woken)
    }
}

/// The engine's one notify watcher, shared by the [`DirWatcher`]s subscribed to it.
pub(crate) struct WatchHub {
    watcher: Mutex<notify::RecommendedWatcher>,
    dispatch: Arc<Mutex<Dispatch>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The (dev, inode) of `dir` if it is a directory (symlinks followed).
fn dir_id(dir: &Path) -> Option<Id> {
    let m = std::fs::metadata(dir).ok()?;
    m.is_dir().then(|| (m.dev(), m.ino()))
}

type Guard<'a> = MutexGuard<'a, notify::RecommendedWatcher>;

impl WatchHub {
    /// The hub's notify watcher; `Err(message)` when it cannot be created (no inotify).
    pub(crate) fn new() -> Result<Self, String> {
        let dispatch = Arc::new(Mutex::new(Dispatch::default()));
        let mine = Arc::clone(&dispatch);
        let handler = move |res: notify::Result<Event>| {
            let wakes = lock(&mine).record(res);
            wake_all(wakes);
        };
        let watcher = notify::recommended_watcher(handler).map_err(|e| e.to_string())?;
        Ok(WatchHub {
            watcher: Mutex::new(watcher),
            dispatch,
        })
    }

    /// Subscribes `me` (knowing it as `dir`, of inode `id`, subscribed before under `old`)
    /// to a watch of that directory; the key it is watched under, `None` if it cannot be.
    fn acquire(&self, me: u64, dir: &Path, id: Id, old: Option<PathBuf>) -> Option<PathBuf> {
        if let Some(k) = &old {
            let d = lock(&self.dispatch);
            if d.dirs.get(k).is_some_and(|e| !e.stale && e.id == id) {
                return old;
            }
        }
        let mut w = lock(&self.watcher);
        if let Some(k) = &old {
            self.release(&mut w, me, k);
        }
        // Watched under another path: share it if that still is this directory, else
        // that watch followed the directory here (renamed): let go of it first.
        let alias = lock(&self.dispatch)
            .by_id
            .get(&id)
            .filter(|k| *k != dir)
            .cloned();
        let key = match alias {
            Some(k) if dir_id(&k) == Some(id) => k,
            Some(k) => {
                let wakes = {
                    let (mut d, mut woken) = (lock(&self.dispatch), HashSet::new());
                    d.by_id.remove(&id);
                    d.stale(&k, me, &mut woken);
                    d.wakes(woken)
                };
                wake_all(wakes);
                let _ = w.unwatch(&k);
                dir.to_path_buf()
            }
            None => dir.to_path_buf(),
        };
        let (fresh, existed) = {
            let mut d = lock(&self.dispatch);
            let d = &mut *d;
            let existed = d.dirs.contains_key(&key);
            let e = d.dirs.entry(key.clone()).or_insert_with(|| Entry {
                id,
                stale: true,
                subs: Vec::new(),
            });
            if e.id != id {
                // Replaced by another directory.
                if d.by_id.get(&e.id) == Some(&key) {
                    d.by_id.remove(&e.id);
                }
                (e.id, e.stale) = (id, true);
            }
            d.by_id.insert(id, key.clone());
            e.subs.retain(|(s, _)| *s != me);
            e.subs.push((me, dir.to_path_buf()));
            (!e.stale, existed)
        };
        if fresh {
            return Some(key);
        }
        if existed {
            let _ = w.unwatch(&key);
        }
        if w.watch(&key, RecursiveMode::NonRecursive).is_ok() {
            if let Some(e) = lock(&self.dispatch).dirs.get_mut(&key) {
                e.stale = false;
            }
            return Some(key);
        }
        self.release(&mut w, me, &key);
        None
    }

    /// Unsubscribes `me` from `key`, unwatched if nobody else wants it.
    fn release(&self, w: &mut Guard<'_>, me: u64, key: &Path) {
        let unwatch = {
            let mut d = lock(&self.dispatch);
            let Some(e) = d.dirs.get_mut(key) else { return };
            e.subs.retain(|(s, _)| *s != me);
            let empty = e.subs.is_empty();
            if let Some(e) = empty.then(|| d.dirs.remove(key)).flatten() {
                if d.by_id.get(&e.id).is_some_and(|k| k == key) {
                    d.by_id.remove(&e.id);
                }
            }
            empty
        };
        if unwatch {
            let _ = w.unwatch(key);
        }
    }

    /// [`Self::release`] of each of `keys`.
    fn release_all(&self, me: u64, keys: Vec<PathBuf>) {
        if !keys.is_empty() {
            let mut w = lock(&self.watcher);
            keys.iter().for_each(|k| self.release(&mut w, me, k));
        }
    }
}

/// One subscriber's watches, through a [`WatchHub`].
pub(crate) struct DirWatcher {
    hub: Arc<WatchHub>,
    id: u64,
    /// Directory as listed → the key the hub watches it under.
    mine: HashMap<PathBuf, PathBuf>,
}

impl DirWatcher {
    /// Subscribes to `hub`, nothing watched; `wake.notify_one()` is called (on the
    /// hub's thread) whenever new changes concerning this subscriber are recorded.
    pub(crate) fn new(hub: Arc<WatchHub>, wake: Arc<Notify>) -> Self {
        let id = {
            let mut d = lock(&hub.dispatch);
            d.last_sub += 1;
            let (id, changes) = (d.last_sub, Changes::default());
            d.subs.insert(id, Sub { changes, wake });
            id
        };
        DirWatcher {
            hub,
            id,
            mine: HashMap::new(),
        }
    }

    /// Makes this subscriber's directories equal to `dirs` (in order, the first
    /// [`MAX_WATCHES`] that can be watched): adds new ones, lets go of ones no longer
    /// listed, re-watches ones replaced by another directory or reported gone since, and
    /// skips ones that are missing or alias (same inode as) one already had. A directory is
    /// watched by the hub while any subscriber wants it. Returns how many are watched.
    pub(crate) fn sync(&mut self, dirs: &[PathBuf]) -> usize {
        let hub = Arc::clone(&self.hub);
        let listed: HashSet<&PathBuf> = dirs.iter().collect();
        let mut old = std::mem::take(&mut self.mine);
        {
            // Which directories are watched changes only under `watcher`.
            let mut w = lock(&hub.watcher);
            let wakes = lock(&hub.dispatch).drain_gone(self.id);
            wake_all(wakes);
            old.retain(|dir, key| {
                let keep = listed.contains(dir);
                if !keep {
                    hub.release(&mut w, self.id, key);
                }
                keep
            });
        }
        let mut ids = HashSet::new();
        for dir in dirs {
            if self.mine.len() >= MAX_WATCHES {
                break;
            }
            if self.mine.contains_key(dir) {
                continue;
            }
            let Some(id) = dir_id(dir) else { continue };
            if !ids.insert(id) {
                continue;
            }
            if let Some(key) = hub.acquire(self.id, dir, id, old.remove(dir)) {
                self.mine.insert(dir.clone(), key);
            }
        }
        // Listed but past the limit, vanished or aliased.
        self.hub.release_all(self.id, old.into_values().collect());
        self.mine.len()
    }

    /// Takes (and clears) what happened since the last call.
    pub(crate) fn take(&self) -> Changes {
        let mut d = lock(&self.hub.dispatch);
        let s = d.subs.get_mut(&self.id);
        s.map(|s| std::mem::take(&mut s.changes))
            .unwrap_or_default()
    }
}

impl Drop for DirWatcher {
    fn drop(&mut self) {
        let keys = std::mem::take(&mut self.mine).into_values().collect();
        self.hub.release_all(self.id, keys);
        lock(&self.hub.dispatch).subs.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;
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

    fn hub() -> Arc<WatchHub> {
        Arc::new(WatchHub::new().unwrap())
    }

    fn sub(hub: &Arc<WatchHub>) -> (DirWatcher, Arc<Notify>) {
        let wake = Arc::new(Notify::new());
        (DirWatcher::new(Arc::clone(hub), Arc::clone(&wake)), wake)
    }

    fn watcher() -> (DirWatcher, Arc<Notify>) {
        sub(&hub())
    }

    async fn woken(wake: &Notify) -> bool {
        let wait = tokio::time::timeout(Duration::from_secs(10), wake.notified());
        wait.await.is_ok()
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

    /// How many inotify watches of this process are on `dir`'s inode.
    fn watches(dir: &Path) -> usize {
        let ino = format!(" ino:{:x} ", fs::metadata(dir).unwrap().ino());
        let fds = fs::read_dir("/proc/self/fdinfo").unwrap().flatten();
        let infos = fds.filter_map(|f| fs::read_to_string(f.path()).ok());
        let hit = |l: &&str| l.starts_with("inotify wd:") && l.contains(&ino);
        infos.map(|t| t.lines().filter(hit).count()).sum()
    }

    #[tokio::test]
    async fn new_file_or_subdirectory_sets_rescan_and_wakes() {
        let t = Tmp::new("create");
        let (mut w, wake) = watcher();
        assert_eq!(w.sync(std::slice::from_ref(&t.0)), 1);
        let c = w.take();
        assert!(!c.rescan && c.modified.is_empty());
        fs::write(t.0.join("a.log"), b"x").unwrap();
        assert!(woken(&wake).await);
        assert!(wait(&w, |c| c.rescan).rescan);
        w.take();
        fs::create_dir(t.0.join("sub")).unwrap();
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
        assert_eq!((watches(&a), watches(&b)), (0, 1));
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

    #[tokio::test]
    async fn subscribers_share_watches_and_let_go_of_their_own() {
        let t = Tmp::new("shared");
        let (only, shared) = (t.0.join("only"), t.0.join("shared"));
        for d in [&only, &shared] {
            fs::create_dir(d).unwrap();
        }
        let (file, hub) = (shared.join("f.log"), hub());
        let ((mut a, wake_a), (mut b, wake_b)) = (sub(&hub), sub(&hub));
        assert_eq!(a.sync(&[only.clone(), shared.clone()]), 2);
        assert_eq!(b.sync(std::slice::from_ref(&shared)), 1);
        assert_eq!((watches(&only), watches(&shared)), (1, 1));
        append(&file);
        assert!(woken(&wake_a).await && woken(&wake_b).await);
        for w in [&a, &b] {
            assert!(wait(w, |c| c.modified.contains(&file))
                .modified
                .contains(&file));
        }
        drop(a);
        assert_eq!((watches(&only), watches(&shared)), (0, 1));
        assert_eq!(lock(&hub.dispatch).dirs.len(), 1);
        append(&only.join("f.log"));
        append(&file);
        let c = wait(&b, |c| c.modified.contains(&file));
        assert_eq!(c.modified, HashSet::from([file]));
    }

    #[test]
    fn an_alias_shares_the_watch_and_keeps_its_paths() {
        let t = Tmp::new("alias");
        let (d, link) = (t.0.join("d"), t.0.join("link"));
        fs::create_dir(&d).unwrap();
        std::os::unix::fs::symlink(&d, &link).unwrap();
        let hub = hub();
        let ((mut a, _wake_a), (mut b, _wake_b)) = (sub(&hub), sub(&hub));
        assert_eq!(a.sync(std::slice::from_ref(&d)), 1);
        assert_eq!(b.sync(std::slice::from_ref(&link)), 1);
        assert_eq!(watches(&d), 1);
        append(&d.join("f.log"));
        assert!(wait(&a, |c| c.modified.contains(&d.join("f.log")))
            .modified
            .contains(&d.join("f.log")));
        let seen = |c: &Changes| c.modified.contains(&link.join("f.log"));
        assert!(seen(&wait(&b, seen)));
        drop(a);
        assert_eq!(watches(&d), 1);
        append(&d.join("f.log"));
        assert!(seen(&wait(&b, seen)));
    }

    #[test]
    fn a_renamed_directory_is_watched_under_its_new_name() {
        let t = Tmp::new("rename");
        let (d, e) = (t.0.join("d"), t.0.join("e"));
        fs::create_dir(&d).unwrap();
        let hub = hub();
        let ((mut a, _wake_a), (mut b, _wake_b)) = (sub(&hub), sub(&hub));
        assert_eq!(a.sync(std::slice::from_ref(&d)), 1);
        fs::rename(&d, &e).unwrap();
        fs::create_dir(&d).unwrap();
        assert!(wait(&a, |c| c.rescan).rescan);
        // b takes the watch that followed d to e; a is told to sync, and watches the new d.
        assert_eq!(b.sync(std::slice::from_ref(&e)), 1);
        assert!(wait(&a, |c| c.rescan).rescan);
        assert_eq!(a.sync(std::slice::from_ref(&d)), 1);
        assert_eq!((watches(&d), watches(&e)), (1, 1));
        append(&e.join("f.log"));
        append(&d.join("f.log"));
        for (w, f) in [(&b, e.join("f.log")), (&a, d.join("f.log"))] {
            let c = wait(w, |c| c.modified.contains(&f));
            assert_eq!(c.modified, HashSet::from([f]));
        }
    }

    #[test]
    fn bounded_and_errors_reach_everyone() {
        let mut d = Dispatch::default();
        for id in [1, 2] {
            let (changes, wake) = (Changes::default(), Arc::new(Notify::new()));
            d.subs.insert(id, Sub { changes, wake });
        }
        let subs = vec![(1, PathBuf::from("/x"))];
        let entry = Entry {
            id: (0, 0),
            stale: false,
            subs,
        };
        d.dirs.insert(PathBuf::from("/x"), entry);
        for i in 0..=MAX_PATHS {
            let ev = Event::new(EventKind::Modify(ModifyKind::Any));
            assert_eq!(d.record(Ok(ev.add_path(format!("/x/{i}").into()))).len(), 1);
        }
        let c = &d.subs[&1].changes;
        assert!(c.rescan && c.modified.len() <= MAX_PATHS);
        let ev = Event::new(EventKind::Create(notify::event::CreateKind::File));
        assert!(d.record(Ok(ev.add_path("/y/a".into()))).is_empty());
        assert!(!d.subs[&2].changes.rescan);
        d.subs.get_mut(&1).unwrap().changes = Changes::default();
        assert_eq!(d.record(Err(notify::Error::generic("lost"))).len(), 2);
        assert!(d.subs.values().all(|s| s.changes.rescan));
        let ev = Event::new(EventKind::Create(notify::event::CreateKind::File));
        assert!(d.record(Ok(ev)).is_empty());
    }

    #[test]
    fn hub_and_subscriber_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<WatchHub>();
        send::<DirWatcher>();
    }
}
