//! Which files an `input_file` config collects: `FilePaths` globs (with one optional `**`
//! bounded by `MaxDirSearchDepth`) minus `ExcludeFilePaths`, `ExcludeFiles`, `ExcludeDirs`
//! and compressed neighbours; plus a bounded, loop-safe filesystem walk.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet, VecDeque};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// The walk stops after visiting this many directories.
pub(crate) const MAX_DIRS: usize = 100_000;
/// The largest accepted `MaxDirSearchDepth`.
pub(crate) const MAX_DEPTH: usize = 1000;
/// Names with these endings are never collected (rotated and compressed logs).
const COMPRESSED: [&str; 8] = [".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4", ".7z", ".tgz"];

/// The options that decide which files are collected.
#[derive(Clone, Debug, Default)]
pub(crate) struct MatcherOptions {
    /// `FilePaths`: absolute globs; the last component is the file-name pattern.
    pub(crate) file_paths: Vec<String>,
    /// `MaxDirSearchDepth`: how many directory levels one `**` may stand for (0..=1000).
    pub(crate) max_dir_search_depth: usize,
    /// `ExcludeFilePaths`: absolute globs matched against the whole path (`*` matches `/`).
    pub(crate) exclude_file_paths: Vec<String>,
    /// `ExcludeFiles`: globs matched against the file name.
    pub(crate) exclude_files: Vec<String>,
    /// `ExcludeDirs`: absolute globs (`*` matches `/`); files under a matching directory
    /// are excluded and such directories are not walked.
    pub(crate) exclude_dirs: Vec<String>,
}

/// The result of one walk ([`PathMatcher::scan`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct Scan {
    /// Collected files (the paths as found, symlinks not resolved), sorted and deduplicated.
    pub(crate) files: Vec<PathBuf>,
    /// Every directory visited while matching (the ones to watch), sorted and deduplicated.
    pub(crate) dirs: Vec<PathBuf>,
    /// More files matched than the limit: `files` holds the first ones in sorted order.
    pub(crate) truncated: bool,
    /// The walk stopped at [`MAX_DIRS`] directories: `files` and `dirs` are incomplete.
    pub(crate) dirs_truncated: bool,
}

/// One shell-style glob token.
#[derive(Clone, Debug)]
enum Tok {
    Char(char),
    Any,
    Star,
    Class(bool, Vec<(char, char)>),
}

/// A compiled glob: `*`, `?`, `[abc]`, `[a-z]`, `[!x]` and `\` escapes. `*` and `?` match any
/// character, `/` included (callers match single components where `/` cannot occur).
#[derive(Clone, Debug)]
struct Glob {
    toks: Vec<Tok>,
    /// The unescaped text when the glob has no wildcard.
    literal: Option<String>,
}

impl Glob {
    fn new(pat: &str) -> Glob {
        let chars: Vec<char> = pat.chars().collect();
        let (mut toks, mut lit, mut i) = (Vec::new(), String::new(), 0);
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            let tok = match c {
                '\\' if i < chars.len() => {
                    i += 1;
                    Tok::Char(chars[i - 1])
                }
                '*' if matches!(toks.last(), Some(Tok::Star)) => continue,
                '*' => Tok::Star,
                '?' => Tok::Any,
                '[' => match parse_class(&chars[i..]) {
                    Some((tok, used)) => {
                        i += used;
                        tok
                    }
                    None => Tok::Char('['),
                },
                c => Tok::Char(c),
            };
            if let Tok::Char(c) = tok {
                lit.push(c);
            }
            toks.push(tok);
        }
        let literal = toks
            .iter()
            .all(|t| matches!(t, Tok::Char(_)))
            .then_some(lit);
        Glob { toks, literal }
    }

    fn matches(&self, text: &str) -> bool {
        if let Some(lit) = &self.literal {
            return lit == text;
        }
        // Classic wildcard matching, backtracking to the last `*` only (linear in practice).
        let (mut p, mut s, mut back) = (0, 0, None);
        loop {
            match self.toks.get(p) {
                Some(Tok::Star) => {
                    back = Some((p + 1, s));
                    p += 1;
                    continue;
                }
                Some(tok) if s < text.len() => {
                    let c = text[s..].chars().next().unwrap_or_default();
                    let hit = match tok {
                        Tok::Char(x) => c == *x,
                        Tok::Class(neg, r) => in_ranges(r, c) != *neg,
                        _ => true,
                    };
                    if hit {
                        (p, s) = (p + 1, s + c.len_utf8());
                        continue;
                    }
                }
                None if s == text.len() => return true,
                _ => {}
            }
            match back {
                Some((bp, bs)) if bs < text.len() => {
                    let next = bs + text[bs..].chars().next().map_or(1, char::len_utf8);
                    (back, p, s) = (Some((bp, next)), bp, next);
                }
                _ => return false,
            }
        }
    }
}

fn in_ranges(ranges: &[(char, char)], c: char) -> bool {
    ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi)
}

/// Parses a class after `[`; returns the token and how many chars it used (up to `]`).
fn parse_class(rest: &[char]) -> Option<(Tok, usize)> {
    let neg = matches!(rest.first(), Some('!' | '^'));
    let (mut i, mut ranges) = (usize::from(neg), Vec::new());
    while let Some(&c) = rest.get(i) {
        if c == ']' && !ranges.is_empty() {
            return Some((Tok::Class(neg, ranges), i + 1));
        }
        if rest.get(i + 1) == Some(&'-') && rest.get(i + 2).is_some_and(|&h| h != ']') {
            ranges.push((c, rest[i + 2]));
            i += 3;
        } else {
            ranges.push((c, c));
            i += 1;
        }
    }
    None
}

/// One compiled `FilePaths` entry.
#[derive(Clone, Debug)]
struct Pattern {
    /// Directory components after the root; `None` is `**`.
    segs: Vec<Option<Glob>>,
    /// The file-name pattern.
    name: Glob,
    /// The longest literal prefix directory (where the walk starts) ...
    base: PathBuf,
    /// ... made of this many leading `segs`.
    prefix: usize,
}

/// `(field, message)`: what [`PathMatcher::new`] rejects.
type FieldError = (String, String);

fn compile_pattern(field: String, text: &str) -> Result<Pattern, FieldError> {
    let err = |m: &str| Err((field.clone(), format!("{m}, got {text:?}")));
    if !text.starts_with('/') {
        return err("must be an absolute path");
    }
    let mut parts: Vec<&str> = text
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return err("must not contain `..`");
    }
    if parts.iter().filter(|p| **p == "**").count() > 1 {
        return err("may contain `**` at most once");
    }
    let name = match parts.pop() {
        Some(n) if n != "**" && !text.ends_with('/') => Glob::new(n),
        _ => return err("must end with a file name pattern"),
    };
    let segs: Vec<_> = parts
        .iter()
        .map(|p| (*p != "**").then(|| Glob::new(p)))
        .collect();
    let lit = |s: &Option<Glob>| s.as_ref().and_then(|g| g.literal.clone());
    let prefix = segs.iter().take_while(|s| lit(s).is_some()).count();
    let mut base = PathBuf::from("/");
    base.extend(segs[..prefix].iter().filter_map(lit));
    Ok(Pattern {
        segs,
        name,
        base,
        prefix,
    })
}

fn compile_list(name: &str, list: &[String], absolute: bool) -> Result<Vec<Glob>, FieldError> {
    let check = |(i, text): (usize, &String)| {
        let bad = match absolute {
            true => (!text.starts_with('/')).then_some("must be an absolute path"),
            false => (text.is_empty() || text.contains('/')).then_some("must be a file name"),
        };
        if let Some(m) = bad {
            return Err((format!("{name}[{i}]"), format!("{m}, got {text:?}")));
        }
        let trimmed = text.trim_end_matches('/');
        Ok(Glob::new(if trimmed.is_empty() { "/" } else { trimmed }))
    };
    list.iter().enumerate().map(check).collect()
}

fn is_compressed(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    COMPRESSED.iter().any(|ext| lower.ends_with(ext))
}

/// Whether `segs` (one `**` at most, standing for 0..=`depth` levels) matches `dirs`.
fn dirs_match(segs: &[Option<Glob>], dirs: &[Cow<str>], depth: usize) -> bool {
    let one = |(s, d): (&Option<Glob>, &Cow<str>)| s.as_ref().is_some_and(|g| g.matches(d));
    let Some(k) = segs.iter().position(Option::is_none) else {
        return segs.len() == dirs.len() && segs.iter().zip(dirs).all(one);
    };
    let (before, after) = (&segs[..k], &segs[k + 1..]);
    let fixed = before.len() + after.len();
    (fixed..=fixed + depth).contains(&dirs.len())
        && before.iter().zip(dirs).all(one)
        && after.iter().rev().zip(dirs.iter().rev()).all(one)
}

/// Decides which files a config collects, and finds them.
#[derive(Clone, Debug)]
pub(crate) struct PathMatcher {
    patterns: Vec<Pattern>,
    depth: usize,
    /// `*`, what a `**` level matches.
    any: Glob,
    exclude_paths: Vec<Glob>,
    exclude_files: Vec<Glob>,
    exclude_dirs: Vec<Glob>,
}

impl PathMatcher {
    /// Compiles the options; `Err((field, message))` names the offending option, e.g.
    /// `("FilePaths[0]", "must be an absolute path, got \"a.log\"")`.
    pub(crate) fn new(o: &MatcherOptions) -> Result<Self, (String, String)> {
        if o.file_paths.is_empty() {
            return Err(("FilePaths".into(), "must list at least one path".into()));
        }
        if o.max_dir_search_depth > MAX_DEPTH {
            let m = format!(
                "must be at most {MAX_DEPTH}, got {}",
                o.max_dir_search_depth
            );
            return Err(("MaxDirSearchDepth".into(), m));
        }
        let patterns = (o.file_paths.iter().enumerate())
            .map(|(i, p)| compile_pattern(format!("FilePaths[{i}]"), p))
            .collect::<Result<_, _>>()?;
        Ok(PathMatcher {
            patterns,
            depth: o.max_dir_search_depth,
            any: Glob::new("*"),
            exclude_paths: compile_list("ExcludeFilePaths", &o.exclude_file_paths, true)?,
            exclude_files: compile_list("ExcludeFiles", &o.exclude_files, false)?,
            exclude_dirs: compile_list("ExcludeDirs", &o.exclude_dirs, true)?,
        })
    }

    /// Whether the file `path` is collected: matched by a pattern (the `**` depth included)
    /// and not excluded. Does not touch the filesystem (no symlink or file-type checks).
    pub(crate) fn matches(&self, path: &Path) -> bool {
        let (mut parts, mut norm) = (Vec::new(), PathBuf::from("/"));
        for (i, c) in path.components().enumerate() {
            match c {
                Component::RootDir if i == 0 => {}
                Component::CurDir => {}
                Component::Normal(p) => {
                    parts.push(p.to_string_lossy());
                    norm.push(p);
                }
                _ => return false,
            }
        }
        let Some(name) = parts.pop() else {
            return false;
        };
        let hit = |p: &Pattern| p.name.matches(&name) && dirs_match(&p.segs, &parts, self.depth);
        self.patterns.iter().any(hit)
            && !self.file_excluded(&norm, &name)
            && !norm.ancestors().skip(1).any(|d| self.dir_excluded(d))
    }

    fn file_excluded(&self, path: &Path, name: &str) -> bool {
        let path = &path.to_string_lossy();
        is_compressed(name)
            || self.exclude_files.iter().any(|g| g.matches(name))
            || self.exclude_paths.iter().any(|g| g.matches(path))
    }

    fn dir_excluded(&self, dir: &Path) -> bool {
        let dir = &dir.to_string_lossy();
        self.exclude_dirs.iter().any(|g| g.matches(dir))
    }

    /// Walks the filesystem once (breadth first, from each pattern's literal prefix), and
    /// returns at most `max_files` files.
    pub(crate) fn scan(&self, max_files: usize) -> Scan {
        let mut out = Scan::default();
        let (mut files, mut dirs, mut seen) = (BTreeSet::new(), HashSet::new(), HashSet::new());
        // (directory, pattern, segment index, levels consumed by `**`)
        let mut queue = VecDeque::new();
        for (pat, p) in self.patterns.iter().enumerate() {
            if !p.base.ancestors().any(|a| self.dir_excluded(a)) {
                queue.push_back((p.base.clone(), pat, p.prefix, 0));
            }
        }
        while let Some((dir, pat, k, d)) = queue.pop_front() {
            let Ok(meta) = fs::metadata(&dir) else {
                continue;
            };
            // Breadth first, a directory is first reached at the smallest `d`: later visits
            // at the same segment (symlink loops, aliases) can find nothing new.
            if !meta.is_dir() || !seen.insert((pat, k, meta.dev(), meta.ino())) {
                continue;
            }
            if seen.len() > MAX_DIRS {
                out.dirs_truncated = true;
                break;
            }
            let p = &self.patterns[pat];
            let star = k < p.segs.len() && p.segs[k].is_none();
            let want_files = k == p.segs.len() || (star && k + 1 == p.segs.len());
            // Where a matching subdirectory leads: (its glob, next k, next d).
            let mut next: Vec<(&Glob, usize, usize)> = Vec::new();
            match p.segs.get(k) {
                Some(Some(g)) => next.push((g, k + 1, d)),
                Some(None) => {
                    if d < self.depth {
                        next.push((&self.any, k, d + 1));
                    }
                    if let Some(Some(g)) = p.segs.get(k + 1) {
                        next.push((g, k + 2, d));
                    }
                }
                None => {}
            }
            let wanted = next
                .iter()
                .map(|n| n.0)
                .chain(want_files.then_some(&p.name));
            let lits: Option<Vec<_>> = wanted.map(|g| g.literal.clone()).collect();
            dirs.insert(dir.clone());
            let names: Vec<std::ffi::OsString> = match lits {
                // Only literal names are wanted: look them up without reading the directory.
                Some(lits) => lits.into_iter().map(Into::into).collect(),
                None => match fs::read_dir(&dir) {
                    Ok(rd) => rd.flatten().map(|e| e.file_name()).collect(),
                    Err(_) => continue,
                },
            };
            for name in names {
                let (path, name) = (dir.join(&name), name.to_string_lossy());
                let file_hit = want_files && p.name.matches(&name);
                let dir_hits: Vec<_> = next.iter().filter(|n| n.0.matches(&name)).collect();
                if !file_hit && dir_hits.is_empty() {
                    continue;
                }
                let Ok(m) = fs::metadata(&path) else { continue };
                if m.is_file() && file_hit && !self.file_excluded(&path, &name) {
                    files.insert(path);
                    if files.len() > max_files {
                        files.pop_last();
                        out.truncated = true;
                    }
                } else if m.is_dir() && !self.dir_excluded(&path) {
                    for &&(_, k, d) in &dir_hits {
                        queue.push_back((path.clone(), pat, k, d));
                    }
                }
            }
        }
        out.files = files.into_iter().collect();
        out.dirs = dirs.into_iter().collect();
        out.dirs.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A temporary directory (removed on drop) with the files listed, space-separated.
    struct Tmp(PathBuf);

    impl Tmp {
        fn new(name: &str, files: &str) -> Tmp {
            let base = fs::canonicalize(std::env::temp_dir()).unwrap();
            let t = Tmp(base.join(format!("fileglob-{}-{name}", std::process::id())));
            let _ = fs::remove_dir_all(&t.0);
            for rel in files.split_whitespace() {
                fs::create_dir_all(t.0.join(rel).parent().unwrap()).unwrap();
                fs::write(t.0.join(rel), b"x\n").unwrap();
            }
            t
        }
        fn p(&self, rel: &str) -> String {
            format!("{}/{rel}", self.0.display())
        }
        fn matcher(&self, pat: &str, depth: usize, ex: [&str; 3]) -> PathMatcher {
            let list = |s: &str, abs: bool| {
                let f = |p: &str| if abs { self.p(p) } else { p.to_string() };
                s.split_whitespace().map(f).collect()
            };
            PathMatcher::new(&MatcherOptions {
                file_paths: list(pat, true),
                max_dir_search_depth: depth,
                exclude_file_paths: list(ex[0], true),
                exclude_files: list(ex[1], false),
                exclude_dirs: list(ex[2], true),
            })
            .unwrap()
        }
        /// Scans; checks that `matches` agrees for every regular file in the tree.
        fn scan(&self, pat: &str, depth: usize, ex: [&str; 3]) -> String {
            let (m, mut stack) = (self.matcher(pat, depth, ex), vec![self.0.clone()]);
            let scan = m.scan(1000);
            while let Some(d) = stack.pop() {
                for e in fs::read_dir(&d).unwrap().flatten() {
                    let (ft, p) = (e.file_type().unwrap(), e.path());
                    if ft.is_dir() {
                        stack.push(p);
                    } else if ft.is_file() {
                        assert_eq!(m.matches(&p), scan.files.contains(&p), "{p:?}");
                    }
                }
            }
            let rel = |p: &PathBuf| p.strip_prefix(&self.0).unwrap().display().to_string();
            scan.files.iter().map(rel).collect::<Vec<_>>().join(" ")
        }
    }

    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const NO: [&str; 3] = ["", "", ""];

    #[test]
    fn glob_syntax() {
        let g = |p: &str, t: &str| Glob::new(p).matches(t);
        assert!(g("a*b?c", "axxbyc") && !g("a*b?c", "axxbc") && g("*a*", "bab"));
        assert!(g("[a-c]x", "bx") && !g("[a-c]x", "dx") && g("[!a-c]x", "dx"));
        assert!(g("[]]", "]") && g("a[", "a[") && g("\\*", "*") && !g("\\*", "x"));
        assert!(g("é?", "éü") && g("*.log", ".log") && !g("*.log", "a.log.1"));
        assert!(g("/var/*/x", "/var/a/b/x"));
    }

    #[test]
    fn literal_star_and_question() {
        let t = Tmp::new("star", "a.log app1.log app22.log x/app3.log y/z/app4.log");
        assert_eq!(t.scan("a.log", 0, NO), "a.log");
        assert!(!t.matcher("a.log", 0, NO).matches(Path::new(&t.p("b.log"))));
        assert_eq!(t.scan("app?.log", 0, NO), "app1.log");
        assert_eq!(t.scan("app*.log", 0, NO), "app1.log app22.log");
        assert_eq!(t.scan("*/app*.log", 0, NO), "x/app3.log");
        assert_eq!(t.scan("*/*/app*.log", 0, NO), "y/z/app4.log");
        let scan = t.matcher("*/app*.log", 0, NO).scan(10);
        assert_eq!(scan.dirs, [t.0.clone(), t.0.join("x"), t.0.join("y")]);
        let scan = t.matcher("app*.log", 0, NO).scan(1);
        assert!(scan.truncated && scan.files == [t.0.join("app1.log")]);
    }

    #[test]
    fn double_star_depth() {
        let t = Tmp::new(
            "depth",
            "a.log x/b.log x/y/c.log x/y/z/d.log x/y/z/w/e.log q/y/f.log",
        );
        assert_eq!(t.scan("**/*.log", 0, NO), "a.log");
        let dirs = t.matcher("**/*.log", 0, NO).scan(10).dirs;
        assert_eq!(dirs, std::slice::from_ref(&t.0));
        assert_eq!(t.scan("**/*.log", 1, NO), "a.log x/b.log");
        let d3 = "a.log q/y/f.log x/b.log x/y/c.log x/y/z/d.log";
        assert_eq!(t.scan("**/*.log", 3, NO), d3);
        assert_eq!(t.scan("**/y/*.log", 3, NO), "q/y/f.log x/y/c.log");
        assert_eq!(t.scan("x/**/z/*.log", 1, NO), "x/y/z/d.log");
    }

    #[test]
    fn exclusions_and_compressed() {
        let files = "a.log a.log.1 a.log.gz b.log.2.ZST c.tmp.log s/skip.log s/keep.log";
        let t = Tmp::new(
            "excl",
            &format!("{files} old/a.log old/deep/a.log new/skip/a.log"),
        );
        let all = "a.log a.log.1 c.tmp.log new/skip/a.log old/a.log old/deep/a.log";
        assert_eq!(
            t.scan("**/*.log*", 5, NO),
            format!("{all} s/keep.log s/skip.log")
        );
        let ex = ["*skip*", "*.tmp.*", "ol?/"];
        assert_eq!(t.scan("**/*.log*", 5, ex), "a.log a.log.1 s/keep.log");
        let dirs = t.matcher("**/*.log*", 5, ex).scan(10).dirs;
        assert!(!dirs.contains(&t.0.join("old")) && dirs.contains(&t.0.join("s")));
        assert_eq!(
            t.scan("**/*.log*", 5, ["", "", "*"]),
            "a.log a.log.1 c.tmp.log"
        );
    }

    #[test]
    fn symlinks() {
        let t = Tmp::new("link", "real/r.log logs/a.log a/x.log");
        symlink(t.0.join("real/r.log"), t.0.join("logs/link.log")).unwrap();
        symlink(t.0.join("missing.log"), t.0.join("logs/dangling.log")).unwrap();
        symlink(t.0.join("real"), t.0.join("logs/sub")).unwrap();
        let files = t.matcher("logs/*.log logs/*/*.log", 0, NO).scan(10).files;
        let want = ["logs/a.log", "logs/link.log", "logs/sub/r.log"].map(|p| t.0.join(p));
        assert_eq!(files, want);
        // A loop of directories: a/b -> a, a/c -> t.
        symlink(t.0.join("a"), t.0.join("a/b")).unwrap();
        symlink(&t.0, t.0.join("a/c")).unwrap();
        let scan = t.matcher("**/x.log", MAX_DEPTH, NO).scan(10);
        assert_eq!(scan.files, [t.0.join("a/x.log")]);
        assert!(
            !scan.dirs_truncated && scan.dirs.len() < 10,
            "{:?}",
            scan.dirs
        );
    }

    #[test]
    fn invalid_options() {
        let err = |paths: &[&str], depth, ex: [&[&str]; 3]| {
            let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect();
            let o = MatcherOptions {
                file_paths: v(paths),
                max_dir_search_depth: depth,
                exclude_file_paths: v(ex[0]),
                exclude_files: v(ex[1]),
                exclude_dirs: v(ex[2]),
            };
            PathMatcher::new(&o).unwrap_err().0
        };
        let no: [&[&str]; 3] = [&[], &[], &[]];
        assert_eq!(err(&[], 0, no), "FilePaths");
        assert_eq!(err(&["/a/*.log", "rel/*.log"], 0, no), "FilePaths[1]");
        for bad in ["/a/**/b/**/*.log", "/a/**", "/a/", "/a/../b.log"] {
            assert_eq!(err(&[bad], 0, no), "FilePaths[0]");
        }
        assert_eq!(err(&["/a/*.log"], 1001, no), "MaxDirSearchDepth");
        assert_eq!(err(&["/a"], 0, [&[], &[], &["/x", "x"]]), "ExcludeDirs[1]");
        assert_eq!(
            err(&["/a"], 0, [&["*.log"], &[], &[]]),
            "ExcludeFilePaths[0]"
        );
        assert_eq!(err(&["/a"], 0, [&[], &["a/b"], &[]]), "ExcludeFiles[0]");
    }
}
