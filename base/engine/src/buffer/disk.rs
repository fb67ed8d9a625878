//! Chunk files of a disk buffer: one file per chunk, `<id>.chunk` in the buffer directory,
//! appended to while the chunk is staged and deleted once it is delivered (the cursor only
//! moves forward: a delivered chunk is never read again).
//!
//! Layout (integers little-endian):
//! - header: `PBCHUNK1`, u32 length of the key, the key as JSON, u32 CRC-32 of the key;
//! - one frame per appended group: u32 length of the data, u32 records, u32 CRC-32 of
//!   (records, data), the data (the group encoded by the output's format).
//!
//! A frame is complete only once all its bytes are on disk; recovery after a crash reads
//! frames up to the first one that is short or fails its checksum, keeps what was readable and
//! cuts the file there, reporting how many bytes were lost.

use crate::api::ChunkKey;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"PBCHUNK1";
const FRAME_HEAD: usize = 12;
/// A frame longer than this is taken for garbage (no group is encoded that large).
const MAX_FRAME: usize = 1 << 30;

#[derive(Serialize, Deserialize)]
struct KeyOnDisk {
    tag: Option<String>,
    time: Option<i64>,
    fields: Vec<(String, String)>,
    created: i64,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The file name of chunk `id`.
pub(crate) fn file_name(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.chunk"))
}

/// A chunk file being appended to. The handle is shared so that it can be synced outside
/// the buffer's lock.
pub(crate) struct ChunkFile {
    pub(crate) path: PathBuf,
    pub(crate) file: Arc<File>,
    frame: Vec<u8>,
}

impl ChunkFile {
    /// Creates the file of a new chunk and writes its header.
    pub(crate) fn create(dir: &Path, id: u64, key: &ChunkKey, created: i64) -> io::Result<Self> {
        let path = file_name(dir, id);
        let k = KeyOnDisk {
            tag: key.tag.as_deref().map(lossy),
            time: key.time,
            fields: key
                .fields
                .iter()
                .map(|(n, v)| (n.to_string(), lossy(v)))
                .collect(),
            created,
        };
        let json = serde_json::to_vec(&k).map_err(io::Error::other)?;
        let mut head = Vec::with_capacity(16 + json.len());
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&(json.len() as u32).to_le_bytes());
        head.extend_from_slice(&json);
        head.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        file.write_all(&head)?;
        Ok(Self {
            path,
            file: Arc::new(file),
            frame: Vec::new(),
        })
    }

    /// Appends one frame (not synced: see [`ChunkFile::file`]).
    pub(crate) fn append(&mut self, data: &[u8], records: usize) -> io::Result<()> {
        let records = (records as u32).to_le_bytes();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&records);
        crc.update(data);
        self.frame.clear();
        self.frame
            .extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.frame.extend_from_slice(&records);
        self.frame.extend_from_slice(&crc.finalize().to_le_bytes());
        self.frame.extend_from_slice(data);
        (&*self.file).write_all(&self.frame)
    }
}

/// What was read back from a chunk file.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) id: u64,
    pub(crate) key: ChunkKey,
    pub(crate) created: i64,
    pub(crate) body: Vec<u8>,
    pub(crate) ends: Vec<usize>,
    pub(crate) records: usize,
    /// Bytes after the last complete frame (cut off).
    pub(crate) lost_bytes: u64,
    /// Records of the damaged frame, when its header was readable.
    pub(crate) lost_records: Option<u32>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Reads chunk file `path` back: every complete frame, and the file is cut after the last
/// one. `Ok(None)` for a file whose header is unreadable (it holds nothing recoverable).
pub(crate) fn recover(path: &Path) -> io::Result<Option<Recovered>> {
    let id = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| u64::from_str_radix(s, 16).ok());
    let Some(id) = id else {
        return Ok(None);
    };
    let mut raw = Vec::new();
    File::open(path)?.read_to_end(&mut raw)?;
    let total = raw.len() as u64;
    let header = (|| {
        if raw.get(..8)? != MAGIC {
            return None;
        }
        let n = u32_at(&raw, 8)? as usize;
        let json = raw.get(12..12 + n)?;
        if u32_at(&raw, 12 + n)? != crc32fast::hash(json) {
            return None;
        }
        let k: KeyOnDisk = serde_json::from_slice(json).ok()?;
        Some((k, 16 + n))
    })();
    let Some((k, mut pos)) = header else {
        return Ok(None);
    };
    let mut body = Vec::new();
    let (mut ends, mut records) = (Vec::new(), 0usize);
    let mut lost_records = None;
    while let (Some(len), Some(recs), Some(crc)) = (
        u32_at(&raw, pos),
        u32_at(&raw, pos + 4),
        u32_at(&raw, pos + 8),
    ) {
        let len = len as usize;
        if len > MAX_FRAME {
            break;
        }
        let Some(data) = raw.get(pos + FRAME_HEAD..pos + FRAME_HEAD + len) else {
            // Cut short: its header still says how many records it held.
            lost_records = Some(recs);
            break;
        };
        let mut h = crc32fast::Hasher::new();
        h.update(&recs.to_le_bytes());
        h.update(data);
        if h.finalize() != crc {
            break;
        }
        body.extend_from_slice(data);
        ends.push(body.len());
        records += recs as usize;
        pos += FRAME_HEAD + len;
    }
    let lost_bytes = total - pos as u64;
    if lost_bytes > 0 {
        // Cut the damaged tail so that the file holds exactly what is recovered.
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(pos as u64)?;
    }
    let key = ChunkKey {
        tag: k.tag.map(Bytes::from),
        time: k.time,
        fields: k
            .fields
            .into_iter()
            .map(|(n, v)| (Arc::from(n.as_str()), Bytes::from(v)))
            .collect(),
    };
    Ok(Some(Recovered {
        id,
        key,
        created: k.created,
        body,
        ends,
        records,
        lost_bytes,
        lost_records,
    }))
}

/// The chunk files in `dir`, oldest (lowest id) first.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "chunk"))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    files.sort();
    Ok(files)
}

/// Makes `dir`'s entries (a created or removed chunk file) durable.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pb-chunks-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn frames_written_are_read_back_with_their_key() {
        let d = dir("roundtrip");
        let key = ChunkKey {
            tag: Some(Bytes::from_static(b"app")),
            time: Some(3600),
            fields: vec![(Arc::from("host"), Bytes::from_static(b"h1"))],
        };
        let mut f = ChunkFile::create(&d, 7, &key, 99).unwrap();
        f.append(b"a\nb\n", 2).unwrap();
        f.append(b"c\n", 1).unwrap();
        drop(f);
        let r = recover(&file_name(&d, 7)).unwrap().unwrap();
        assert_eq!((r.id, r.created, r.records), (7, 99, 3));
        assert_eq!(r.key, key);
        assert_eq!(r.body, b"a\nb\nc\n");
        assert_eq!(r.ends, vec![4, 6]);
        assert_eq!(r.lost_bytes, 0);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_file_cut_short_or_damaged_keeps_its_complete_frames() {
        let d = dir("cut");
        let mut f = ChunkFile::create(&d, 1, &ChunkKey::default(), 0).unwrap();
        f.append(b"first\n", 1).unwrap();
        f.append(b"second\n", 1).unwrap();
        drop(f);
        let path = file_name(&d, 1);
        let full = fs::metadata(&path).unwrap().len();
        // Cut in the middle of the second frame.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(full - 3)
            .unwrap();
        let r = recover(&path).unwrap().unwrap();
        assert_eq!((r.body.as_slice(), r.records), (&b"first\n"[..], 1));
        assert_eq!(r.lost_bytes, FRAME_HEAD as u64 + 7 - 3);
        assert_eq!(r.lost_records, Some(1));
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            full - FRAME_HEAD as u64 - 7,
            "the damaged tail is cut"
        );
        // A flipped byte inside the (now last) frame fails its checksum.
        let mut raw = fs::read(&path).unwrap();
        let n = raw.len();
        raw[n - 2] ^= 0xff;
        fs::write(&path, &raw).unwrap();
        let r = recover(&path).unwrap().unwrap();
        assert_eq!(r.records, 0);
        // A damaged header: nothing recoverable.
        fs::write(&path, b"PBCHUNK1\xff\xff").unwrap();
        assert!(recover(&path).unwrap().is_none());
        let _ = fs::remove_dir_all(&d);
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config { cases: 64, ..Default::default() })]

        /// Whatever a crash leaves (the file cut anywhere, a byte flipped anywhere, or
        /// garbage), recovery does not panic and returns exactly the frames that are whole
        /// and intact before the damage, in order.
        #[test]
        fn recovery_keeps_exactly_the_intact_prefix(
            frames in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), 1..12),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
            flip in proptest::option::of(proptest::prelude::any::<proptest::sample::Index>()),
            garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let d = dir("prop");
            let mut f = ChunkFile::create(&d, 1, &ChunkKey::default(), 0).unwrap();
            let mut ends = Vec::new();
            for fr in &frames {
                f.append(fr, 1).unwrap();
                ends.push(fs::metadata(file_name(&d, 1)).unwrap().len() as usize);
            }
            drop(f);
            let path = file_name(&d, 1);
            let mut raw = fs::read(&path).unwrap();
            let header = ends[0] - FRAME_HEAD - frames[0].len();
            let cut_at = header + cut.index(raw.len() - header + 1);
            raw.truncate(cut_at);
            let mut damaged_at = cut_at;
            if let Some(i) = flip {
                if raw.len() > header {
                    let at = header + i.index(raw.len() - header);
                    raw[at] ^= 0x5a;
                    damaged_at = damaged_at.min(at);
                }
            }
            fs::write(&path, &raw).unwrap();
            let r = recover(&path).unwrap().unwrap();
            let whole = ends.iter().take_while(|&&e| e <= damaged_at).count();
            let expect: Vec<u8> = frames[..whole].concat();
            proptest::prop_assert_eq!(r.records, whole);
            proptest::prop_assert_eq!(r.body, expect);
            proptest::prop_assert_eq!(fs::metadata(&path).unwrap().len() as usize,
                if whole == 0 { header } else { ends[whole - 1] });
            // Garbage instead of a chunk file: nothing, and no panic.
            fs::write(&path, &garbage).unwrap();
            let _ = recover(&path).unwrap();
            let _ = fs::remove_dir_all(&d);
        }
    }
}
