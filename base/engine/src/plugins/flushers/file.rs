//! `flusher_file`: appends chunks of encoded records to local files, with a path template,
//! size and age rotation and optional gzip.
//!
//! Each flush thread has its own instance, and several may write the same file: every chunk
//! is appended (`O_APPEND`) in one `write_all` of one buffer, so chunks never interleave in
//! a regular file. Before each write the path is checked to still be the file that is open
//! (by device and inode): a file another writer (or logrotate) moved away is reopened. A
//! rotation is done by one writer at a time: it holds `<path>.rotating` (created exclusively,
//! removed after; one older than [`STALE_LOCK`] is taken over), and a writer that finds it
//! held appends this chunk to the file it has open (it is then in `<path>.1`, whole).

use super::template::Template;
use crate::api::prelude::*;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Options of `flusher_file` (`Buffer`, `Secondary`, `Retry` and `Concurrency` are the
/// framework's).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Options {
    /// The path, a template: `${tag}`, `${<chunk key field>}` and strftime fields such as
    /// `%Y-%m-%d` (iLogtail's `FilePath`; `FileName`, flusher_stdout's name, also works).
    #[serde(alias = "FileName")]
    file_path: String,
    /// `json` (default), `raw`, `protobuf` or `msgpack`.
    #[serde(default)]
    format: FormatName,
    /// `json` only: also write the group tags as `__tag__:<key>` and `__topic__`.
    tags: Option<bool>,
    /// `raw` only: the content written per line (default `content`).
    raw_key: Option<String>,
    /// Rotate before a write would make the file larger than this many bytes (0: never).
    #[serde(default = "default_max_file_size")]
    max_file_size: u64,
    /// Files kept, the one written included: `<path>`, `<path>.1` … `<path>.<MaxFiles-1>`.
    #[serde(default = "default_max_files")]
    max_files: u32,
    /// Rotate a file created more than this many seconds ago (0: never).
    #[serde(default)]
    rotate_interval_secs: u64,
    /// `gzip`: each chunk is appended as one gzip member (no suffix is added to the path).
    #[serde(default)]
    compress: Compress,
    /// Create missing parent directories.
    #[serde(default = "default_true")]
    mkdir: bool,
    /// Evaluate strftime fields in the local time zone instead of UTC.
    #[serde(default)]
    local_time: bool,
    /// `fdatasync` after each chunk.
    #[serde(default)]
    sync: bool,
}

/// iLogtail's default: 10 MiB.
const fn default_max_file_size() -> u64 {
    10 * 1024 * 1024
}

/// iLogtail's default.
const fn default_max_files() -> u32 {
    10
}

const fn default_true() -> bool {
    true
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FormatName {
    #[default]
    Json,
    Raw,
    Protobuf,
    Msgpack,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
enum Compress {
    #[default]
    #[serde(rename = "")]
    None,
    #[serde(rename = "gzip")]
    Gzip,
}

/// A rotation lock older than this was left by a writer that died: it is taken over.
const STALE_LOCK: Duration = Duration::from_secs(60);

pub(crate) fn build(detail: &Value, _cx: &PluginContext) -> Result<Box<dyn Output>, DetailError> {
    let o: Options = parse_detail(detail)?;
    let mut errors = Vec::new();
    let path = Template::parse(&o.file_path)
        .map_err(|e| errors.push(DetailError::new("FilePath", e)))
        .ok();
    if o.file_path.is_empty() {
        errors.push(DetailError::new("FilePath", "must not be empty"));
    }
    let format = match o.format {
        FormatName::Json => Format::Json {
            tags: o.tags.unwrap_or(false),
        },
        FormatName::Raw => Format::Raw {
            key: Bytes::from(o.raw_key.clone().unwrap_or_else(|| "content".into())),
        },
        FormatName::Protobuf => Format::Protobuf,
        FormatName::Msgpack => Format::Msgpack,
    };
    if o.tags.is_some() && !matches!(format, Format::Json { .. }) {
        errors.push(DetailError::new("Tags", "applies to Format \"json\" only"));
    }
    if o.raw_key.is_some() && !matches!(format, Format::Raw { .. }) {
        errors.push(DetailError::new("RawKey", "applies to Format \"raw\" only"));
    }
    if o.max_files == 0 {
        errors.push(DetailError::new(
            "MaxFiles",
            "must be at least 1 (the file written)",
        ));
    }
    let mut errors = errors.into_iter();
    if let Some(mut first) = errors.next() {
        first.more = errors.collect();
        return Err(first);
    }
    Ok(Box::new(FileOutput {
        path: path.expect("no error"),
        format,
        max_file_size: o.max_file_size,
        rolls: o.max_files.saturating_sub(1),
        rotate_interval: (o.rotate_interval_secs > 0)
            .then(|| Duration::from_secs(o.rotate_interval_secs)),
        gzip: o.compress == Compress::Gzip,
        mkdir: o.mkdir,
        local_time: o.local_time,
        sync: o.sync,
        open: None,
        gz: Vec::new(),
    }))
}

struct FileOutput {
    path: Template,
    format: Format,
    max_file_size: u64,
    /// Rotated files kept (`MaxFiles - 1`).
    rolls: u32,
    rotate_interval: Option<Duration>,
    gzip: bool,
    mkdir: bool,
    local_time: bool,
    sync: bool,
    /// The file last written, kept open.
    open: Option<OpenFile>,
    /// The compressed chunk (reused).
    gz: Vec<u8>,
}

struct OpenFile {
    path: String,
    file: File,
    /// Device and inode: whether `path` is still this file.
    id: (u64, u64),
    /// When the file was created (when it was opened, where the file system does not say).
    born: SystemTime,
}

impl Output for FileOutput {
    fn format(&self) -> Format {
        self.format.clone()
    }

    fn write(&mut self, chunk: &Chunk) -> Result<(), WriteError> {
        if chunk.body.is_empty() {
            return Ok(());
        }
        let at = chunk.key.time.unwrap_or(chunk.created);
        let path = self
            .path
            .render_with(&chunk.key, at, self.local_time, path_value);
        if path.is_empty() {
            return Err(WriteError::Unrecoverable(
                "FilePath rendered to an empty path".into(),
            ));
        }
        let mut gz = std::mem::take(&mut self.gz);
        let data: &[u8] = if self.gzip {
            gzip_into(&mut gz, &chunk.body);
            &gz
        } else {
            &chunk.body
        };
        let written = self.append(&path, data);
        self.gz = gz;
        written.map_err(|e| {
            // Reopen next time (the file may have been moved or its disk freed).
            self.open = None;
            match e.raw_os_error() {
                Some(libc::EISDIR | libc::ENOTDIR) => {
                    WriteError::Unrecoverable(format!("write {path}: not a file path: {e}"))
                }
                _ => WriteError::retry(format!("write {path}: {e}")),
            }
        })
    }
}

impl FileOutput {
    /// Appends `data` to `path` in one write, rotating first when due.
    fn append(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        if self.open.as_ref().is_some_and(|f| !f.is(path)) {
            self.open = None;
        }
        let mut f = match self.open.take() {
            Some(f) => f,
            None => self.open_file(path)?,
        };
        if self.rotation_due(&f, data.len())? {
            self.rotate(&f)?;
            // The new file, or the one another writer is rotating (this chunk then goes
            // whole to `<path>.1`).
            drop(f);
            f = self.open_file(path)?;
        }
        f.file.write_all(data)?;
        if self.sync {
            f.file.sync_data()?;
        }
        self.open = Some(f);
        Ok(())
    }

    fn open_file(&self, path: &str) -> io::Result<OpenFile> {
        let p = Path::new(path);
        if self.mkdir {
            if let Some(dir) = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty() && !d.is_dir())
            {
                std::fs::create_dir_all(dir).map_err(|e| match e.kind() {
                    // Something that is not a directory is in the way.
                    io::ErrorKind::AlreadyExists => io::Error::from_raw_os_error(libc::ENOTDIR),
                    _ => e,
                })?;
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(p)?;
        let meta = file.metadata()?;
        Ok(OpenFile {
            path: path.to_string(),
            id: (meta.dev(), meta.ino()),
            born: meta.created().unwrap_or_else(|_| SystemTime::now()),
            file,
        })
    }

    /// Whether `f` (not empty) should be rotated before `n` more bytes are appended.
    fn rotation_due(&self, f: &OpenFile, n: usize) -> io::Result<bool> {
        // The size on disk: other writers append to the same file.
        let size = f.file.metadata()?.len();
        if size == 0 {
            return Ok(false);
        }
        let too_big = self.max_file_size > 0 && size + n as u64 > self.max_file_size;
        let too_old = self
            .rotate_interval
            .is_some_and(|max| f.born.elapsed().is_ok_and(|age| age >= max));
        Ok(too_big || too_old)
    }

    /// Shifts `<path>.i` to `<path>.i+1` (dropping the last) and `<path>` to `<path>.1`,
    /// unless another writer is rotating or already rotated `f`.
    fn rotate(&self, f: &OpenFile) -> io::Result<()> {
        let path = &f.path;
        let lock = format!("{path}.rotating");
        if !take_lock(&lock)? {
            return Ok(());
        }
        let result = (|| {
            if !f.is(path) {
                return Ok(());
            }
            if self.rolls == 0 {
                return ignore_missing(std::fs::remove_file(path));
            }
            ignore_missing(std::fs::remove_file(format!("{path}.{}", self.rolls)))?;
            for i in (1..self.rolls).rev() {
                let from = format!("{path}.{i}");
                ignore_missing(std::fs::rename(&from, format!("{path}.{}", i + 1)))?;
            }
            ignore_missing(std::fs::rename(path, format!("{path}.1")))
        })();
        let _ = std::fs::remove_file(&lock);
        result
    }
}

impl OpenFile {
    /// Whether `path` names this open file.
    fn is(&self, path: &str) -> bool {
        self.path == path && std::fs::metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == self.id)
    }
}

/// Creates `lock` exclusively; `false` when another writer holds it.
fn take_lock(lock: &str) -> io::Result<bool> {
    for _ in 0..2 {
        match OpenOptions::new().write(true).create_new(true).open(lock) {
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let stale = std::fs::metadata(lock)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE_LOCK));
                if !stale {
                    return Ok(false);
                }
                ignore_missing(std::fs::remove_file(lock))?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// `data` as one gzip member in `out` (cleared first).
fn gzip_into(out: &mut Vec<u8>, data: &[u8]) {
    out.clear();
    let mut enc =
        flate2::write::GzEncoder::new(std::mem::take(out), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    *out = enc.finish().unwrap_or_default();
}

/// A placeholder value in a path: one path component at most (`/` and NUL become `_`, as
/// does a value of only dots), so a tag or field cannot climb out of the template's
/// directories.
fn path_value(v: &[u8], out: &mut String) {
    let text = String::from_utf8_lossy(v);
    if !text.is_empty() && text.bytes().all(|b| b == b'.') {
        out.push_str(&"_".repeat(text.len()));
        return;
    }
    out.extend(
        text.chars()
            .map(|c| if c == '/' || c == '\0' { '_' } else { c }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A directory under the temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("pe-flusher-file-{}-{name}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn path(&self, rel: &str) -> String {
            self.0.join(rel).to_str().unwrap().to_string()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn output(detail: Value) -> Box<dyn Output> {
        match build(&detail, &PluginContext::for_check("t")) {
            Ok(o) => o,
            Err(e) => panic!("build: {e:?}"),
        }
    }

    fn build_err(detail: Value) -> DetailError {
        match build(&detail, &PluginContext::for_check("t")) {
            Ok(_) => panic!("built {detail}"),
            Err(e) => e,
        }
    }

    /// A chunk of `n` events numbered from `first`, encoded by `format`.
    fn chunk(format: &Format, key: ChunkKey, first: usize, n: usize) -> Chunk {
        let mut g = EventGroup::default();
        for i in first..first + n {
            let mut e = LogEvent::new(1_700_000_000);
            e.set(
                Bytes::from_static(b"content"),
                Bytes::from(format!("line {i:05}")),
            );
            e.set(Bytes::from_static(b"i"), Bytes::from(format!("{i:05}")));
            g.events.push(e);
        }
        let mut body = Vec::new();
        let records = format.encode(&g, &mut body);
        Chunk {
            id: first as u64,
            key,
            ends: vec![body.len()],
            body: body.into(),
            records,
            created: 1_700_000_000,
            retries: 0,
        }
    }

    fn json_numbers(text: &str) -> Vec<usize> {
        text.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["i"].as_str().unwrap().parse().unwrap()
            })
            .collect()
    }

    #[test]
    fn appends_json_chunks_and_every_record_reads_back() {
        let dir = TempDir::new("json");
        let path = dir.path("sub/out.log");
        let mut o = output(serde_json::json!({"FilePath": path, "Tags": true}));
        assert_eq!(o.format(), Format::Json { tags: true });
        for c in 0..5 {
            let ch = chunk(&o.format(), ChunkKey::default(), c * 10, 10);
            assert_eq!(ch.records, 10);
            o.write(&ch).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(json_numbers(&text), (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn raw_and_file_name_alias() {
        let dir = TempDir::new("raw");
        let path = dir.path("raw.log");
        let mut o = output(serde_json::json!({"FileName": path, "Format": "raw"}));
        o.write(&chunk(&o.format(), ChunkKey::default(), 0, 3))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "line 00000\nline 00001\nline 00002\n");
    }

    #[test]
    fn path_placeholders_come_from_the_chunk_key_and_its_time() {
        let dir = TempDir::new("placeholders");
        let template = dir.path("${tag}/%Y-%m-%d/${host}-${nope}.log");
        let mut o = output(serde_json::json!({"FilePath": template}));
        let key = ChunkKey {
            tag: Some(Bytes::from_static(b"app")),
            // 2024-02-29T13:14:15Z
            time: Some(1_709_212_455),
            fields: vec![("host".into(), Bytes::from_static(b"../h1"))],
        };
        o.write(&chunk(&o.format(), key, 0, 2)).unwrap();
        let want = dir.path("app/2024-02-29/.._h1-${nope}.log");
        assert_eq!(
            json_numbers(&std::fs::read_to_string(want).unwrap()),
            [0, 1]
        );
        // Without a time chunk key, the chunk's creation time (2023-11-14).
        o.write(&chunk(&o.format(), ChunkKey::default(), 2, 1))
            .unwrap();
        let want = dir.path("${tag}/2023-11-14/${host}-${nope}.log");
        assert_eq!(json_numbers(&std::fs::read_to_string(want).unwrap()), [2]);
    }

    fn rolled(path: &str, rolls: u32) -> Vec<String> {
        std::iter::once(path.to_string())
            .chain((1..=rolls).map(|i| format!("{path}.{i}")))
            .collect()
    }

    #[test]
    fn size_rotation_keeps_max_files_and_loses_no_record_while_they_last() {
        let dir = TempDir::new("rotate");
        let path = dir.path("r.log");
        let one = chunk(&Format::Json { tags: false }, ChunkKey::default(), 0, 2)
            .body
            .len();
        // Three chunks fit in a file; 7 files hold all 20 chunks.
        let detail = |files: u32| serde_json::json!({"FilePath": path, "MaxFileSize": one * 3 + 1, "MaxFiles": files});
        let mut o = output(detail(7));
        for c in 0..20 {
            o.write(&chunk(&o.format(), ChunkKey::default(), c * 2, 2))
                .unwrap();
        }
        let mut all = Vec::new();
        for p in rolled(&path, 6).iter().rev() {
            let text = std::fs::read_to_string(p).unwrap();
            assert!(text.len() <= one * 3, "{p} is {} bytes", text.len());
            all.extend(json_numbers(&text));
        }
        assert_eq!(all, (0..40).collect::<Vec<_>>());
        assert!(!Path::new(&format!("{path}.7")).exists());
        // Three more chunks with MaxFiles 3: the oldest files go, the newest records stay.
        let mut o = output(detail(3));
        for c in 20..23 {
            o.write(&chunk(&o.format(), ChunkKey::default(), c * 2, 2))
                .unwrap();
        }
        let mut kept = Vec::new();
        for p in rolled(&path, 2).iter().rev() {
            kept.extend(json_numbers(&std::fs::read_to_string(p).unwrap()));
        }
        assert_eq!(kept, (30..46).collect::<Vec<_>>());
        assert!(!Path::new(&format!("{path}.rotating")).exists());
    }

    #[test]
    fn writers_sharing_a_file_keep_chunks_whole_across_rotations() {
        let dir = TempDir::new("shared");
        let path = dir.path("shared.log");
        let detail = serde_json::json!({"FilePath": path, "MaxFileSize": 4000, "MaxFiles": 1000});
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut o = output(detail.clone());
                std::thread::spawn(move || {
                    for c in 0..50 {
                        let first = (t * 50 + c) * 5;
                        o.write(&chunk(&o.format(), ChunkKey::default(), first, 5))
                            .unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let mut all = Vec::new();
        for p in rolled(&path, 999) {
            if let Ok(text) = std::fs::read_to_string(&p) {
                all.extend(json_numbers(&text));
            }
        }
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn gzip_appends_one_member_per_chunk() {
        let dir = TempDir::new("gzip");
        let path = dir.path("out.log.gz");
        let mut o = output(serde_json::json!({"FilePath": path, "Compress": "gzip"}));
        for c in 0..4 {
            o.write(&chunk(&o.format(), ChunkKey::default(), c * 3, 3))
                .unwrap();
        }
        let file = File::open(&path).unwrap();
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(file)
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(json_numbers(&text), (0..12).collect::<Vec<_>>());
    }

    #[test]
    fn protobuf_and_msgpack_bodies_are_written_as_they_are() {
        let dir = TempDir::new("binary");
        for name in ["protobuf", "msgpack"] {
            let path = dir.path(name);
            let mut o = output(serde_json::json!({"FilePath": path, "Format": name}));
            let a = chunk(&o.format(), ChunkKey::default(), 0, 2);
            let b = chunk(&o.format(), ChunkKey::default(), 2, 2);
            o.write(&a).unwrap();
            o.write(&b).unwrap();
            assert_eq!(
                std::fs::read(&path).unwrap(),
                [&a.body[..], &b.body[..]].concat()
            );
        }
    }

    #[test]
    fn a_directory_is_unrecoverable_and_io_errors_retry() {
        let dir = TempDir::new("dir");
        let mut o = output(serde_json::json!({"FilePath": dir.path("")}));
        let c = chunk(&o.format(), ChunkKey::default(), 0, 1);
        assert!(matches!(o.write(&c), Err(WriteError::Unrecoverable(_))));
        std::fs::write(dir.path("file"), b"").unwrap();
        let mut o = output(serde_json::json!({"FilePath": dir.path("file/x.log")}));
        assert!(matches!(o.write(&c), Err(WriteError::Unrecoverable(_))));
        let mut o = output(serde_json::json!({"FilePath": dir.path("no/x.log"), "Mkdir": false}));
        assert!(matches!(o.write(&c), Err(WriteError::Retry { .. })));
    }

    #[test]
    fn bad_options_name_the_field() {
        let e = build_err(serde_json::json!({"Format": "json"}));
        assert!(e.message.contains("`FilePath`"), "{e:?}");
        let e = build_err(serde_json::json!({"FilePath": "/tmp/x", "Format": "xml"}));
        assert_eq!(e.field, "Format");
        let e = build_err(serde_json::json!({"FilePath": "/tmp/${tag"}));
        assert_eq!(e.field, "FilePath");
        let e = build_err(serde_json::json!({"FilePath": "/tmp/%Q"}));
        assert_eq!(e.field, "FilePath");
        let e = build_err(
            serde_json::json!({"FilePath": "/tmp/x", "Format": "raw", "Tags": true, "MaxFiles": 0}),
        );
        let fields: Vec<_> = e.into_all().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["Tags", "MaxFiles"]);
        let e = build_err(serde_json::json!({"FilePath": "/tmp/x", "Compress": "zstd"}));
        assert_eq!(e.field, "Compress");
        let e = build_err(serde_json::json!({"FilePath": "/tmp/x", "MaxSize": 1}));
        assert_eq!(e.field, "MaxSize");
    }
}
