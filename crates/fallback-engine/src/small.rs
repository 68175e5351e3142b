//! Small files kept in memory while they stay the same file, unchanged: a GET of one
//! then costs the path's resolution and one `lstat`, not an open, a stat, an xattr
//! read, a read and a close. Bounded in bytes and entries; validated on every use by
//! what `lstat` says of the path (device, inode, size, mtime, ctime: any write,
//! truncation, `chmod`, xattr change or replacement by rename changes one of them).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::relpath::RelPath;
use crate::store::Entry;

/// Most bytes held for one docroot; past it that docroot's cache starts empty again.
const MAX_BYTES: usize = 16 << 20;
/// Most bytes held for all docroots together (per-user docroots are one each): past
/// it a docroot's cache starts empty again, and holds nothing new while the others
/// hold this much.
const MAX_ALL_BYTES: usize = 64 << 20;

/// Bytes held by every [`SmallFiles`] of the process.
static HELD_ALL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn release(n: usize) {
    HELD_ALL.fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
}
/// Most files held.
const MAX_FILES: usize = 4096;

/// What identifies one version of a file, as `lstat` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    pub(crate) fn of(st: &rustix::fs::Stat) -> Stamp {
        // The field types differ between architectures: the same conversions on all.
        #[allow(clippy::useless_conversion, clippy::unnecessary_fallible_conversions)]
        let n = |v| i64::try_from(v).unwrap_or(-1);
        #[allow(clippy::useless_conversion, clippy::unnecessary_fallible_conversions)]
        Stamp {
            dev: u64::try_from(st.st_dev).unwrap_or(u64::MAX),
            ino: u64::try_from(st.st_ino).unwrap_or(u64::MAX),
            size: i64::try_from(st.st_size).unwrap_or(-1),
            mtime: (
                i64::try_from(st.st_mtime).unwrap_or(-1),
                n(st.st_mtime_nsec),
            ),
            ctime: (
                i64::try_from(st.st_ctime).unwrap_or(-1),
                n(st.st_ctime_nsec),
            ),
        }
    }

    /// The same, from an open file's metadata.
    pub(crate) fn of_meta(m: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt as _;
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: i64::try_from(m.size()).unwrap_or(i64::MAX),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

impl std::fmt::Debug for SmallFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self
            .map
            .read()
            .map(|m| (m.0.len(), m.1))
            .unwrap_or_default();
        f.debug_struct("SmallFiles")
            .field("files", &held.0)
            .field("bytes", &held.1)
            .field("hits", &self.hits)
            .finish()
    }
}

struct Held {
    stamp: Stamp,
    bytes: Arc<[u8]>,
    entry: Entry,
}

/// Small files by request path.
#[derive(Default)]
pub(crate) struct SmallFiles {
    map: RwLock<(HashMap<RelPath, Held>, usize)>,
    /// Answers given from memory (for tests and curiosity).
    hits: std::sync::atomic::AtomicU64,
}

impl SmallFiles {
    /// The bytes and entry held for `path`, if they are of the file `stamp` describes.
    pub(crate) fn get(&self, path: &RelPath, stamp: &Stamp) -> Option<(Arc<[u8]>, Entry)> {
        let map = self.map.read().ok()?;
        let held = map.0.get(path)?;
        if held.stamp != *stamp {
            return None;
        }
        self.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some((Arc::clone(&held.bytes), held.entry.clone()))
    }

    /// Holds `bytes` as the content of `path` while `lstat` says `stamp`.
    pub(crate) fn put(&self, path: &RelPath, stamp: Stamp, bytes: Arc<[u8]>, entry: Entry) {
        let Ok(mut map) = self.map.write() else {
            return;
        };
        let (files, held) = &mut *map;
        let n = bytes.len();
        let all = || HELD_ALL.load(std::sync::atomic::Ordering::Relaxed);
        if *held + n > MAX_BYTES || files.len() >= MAX_FILES || all() + n > MAX_ALL_BYTES {
            files.clear();
            release(std::mem::take(held));
        }
        if all() + n > MAX_ALL_BYTES {
            return;
        }
        HELD_ALL.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        *held += n;
        if let Some(old) = files.insert(
            path.clone(),
            Held {
                stamp,
                bytes,
                entry,
            },
        ) {
            *held -= old.bytes.len();
            release(old.bytes.len());
        }
    }
}

impl Drop for SmallFiles {
    fn drop(&mut self) {
        if let Ok(map) = self.map.get_mut() {
            release(map.1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use crate::{Opened, RelPath, Storage};

    fn read(s: &Storage, p: &str) -> Vec<u8> {
        match s
            .open_read_small(&RelPath::parse(p).unwrap(), 64 * 1024)
            .unwrap()
        {
            Opened::Small(b, e) => {
                assert_eq!(e.size, b.len() as u64);
                b.to_vec()
            }
            Opened::File(..) => panic!("{p} is small"),
        }
    }

    fn hits(s: &Storage) -> u64 {
        s.small.hits.load(Ordering::Relaxed)
    }

    /// Sets a file's mtime back to `to` (so only ctime tells the change).
    fn set_mtime(p: &std::path::Path, to: std::time::SystemTime) {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(to)
            .unwrap();
    }

    #[test]
    fn an_unchanged_file_is_answered_from_memory_and_any_change_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path(), Duration::from_secs(60)).unwrap();
        let f = dir.path().join("a.bin");
        std::fs::write(&f, b"first version").unwrap();
        let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
        assert_eq!(read(&s, "/a.bin"), b"first version");
        assert_eq!(hits(&s), 0);
        assert_eq!(read(&s, "/a.bin"), b"first version");
        assert_eq!(hits(&s), 1, "the second read came from memory");

        // Rewritten in place, same size, mtime put back: ctime differs.
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .write_all(b"FIRST")
            .unwrap();
        set_mtime(&f, mtime);
        assert_eq!(read(&s, "/a.bin"), b"FIRST version");

        // Replaced by rename with a file of the same size and mtime.
        let other = dir.path().join("other");
        std::fs::write(&other, b"second versio").unwrap();
        set_mtime(&other, mtime);
        std::fs::rename(&other, &f).unwrap();
        assert_eq!(read(&s, "/a.bin"), b"second versio");

        // Replaced by a symlink to another file inside the docroot.
        std::fs::write(dir.path().join("b.bin"), b"via a link!!!").unwrap();
        std::fs::remove_file(&f).unwrap();
        std::os::unix::fs::symlink("b.bin", &f).unwrap();
        assert_eq!(read(&s, "/a.bin"), b"via a link!!!");

        // Removed: gone, not served from memory.
        std::fs::remove_file(&f).unwrap();
        assert!(matches!(
            s.open_read_small(&RelPath::parse("/a.bin").unwrap(), 1024),
            Err(crate::Error::NotFound)
        ));
    }

    #[test]
    fn a_file_made_unreadable_is_not_served_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path(), Duration::from_secs(60)).unwrap();
        let f = dir.path().join("secret.bin");
        std::fs::write(&f, b"x").unwrap();
        assert_eq!(read(&s, "/secret.bin"), b"x");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o000)).unwrap();
        let before = hits(&s);
        // Root reads it anyway; anyone else is refused. Either way, not from memory:
        // the chmod changed the file's ctime.
        let _ = s.open_read_small(&RelPath::parse("/secret.bin").unwrap(), 1024);
        assert_eq!(hits(&s), before);
    }

    #[test]
    fn memory_stays_within_its_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path(), Duration::from_secs(60)).unwrap();
        let body = vec![7u8; 60 * 1024];
        for i in 0..400 {
            std::fs::write(dir.path().join(format!("{i}.bin")), &body).unwrap();
            read(&s, &format!("/{i}.bin"));
            let held = s.small.map.read().unwrap().1;
            assert!(
                held <= super::MAX_BYTES,
                "{held} bytes held after {i} files"
            );
        }
    }

    #[test]
    fn many_docroots_together_stay_within_the_process_bound() {
        let body = vec![9u8; 60 * 1024];
        let dirs: Vec<_> = (0..8).map(|_| tempfile::tempdir().unwrap()).collect();
        let stores: Vec<_> = dirs
            .iter()
            .map(|d| Storage::open(d.path(), Duration::from_secs(60)).unwrap())
            .collect();
        for (d, s) in dirs.iter().zip(&stores) {
            for i in 0..250 {
                std::fs::write(d.path().join(format!("{i}.bin")), &body).unwrap();
                read(s, &format!("/{i}.bin"));
                let all = super::HELD_ALL.load(Ordering::Relaxed);
                assert!(all <= super::MAX_ALL_BYTES, "{all} bytes held in all");
            }
        }
        let held: usize = stores.iter().map(|s| s.small.map.read().unwrap().1).sum();
        assert!(held > 0 && held <= super::MAX_ALL_BYTES);
    }

    #[test]
    fn large_files_and_directories_are_not_held() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path(), Duration::from_secs(60)).unwrap();
        std::fs::write(dir.path().join("big.bin"), vec![1u8; 2000]).unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let big = RelPath::parse("/big.bin").unwrap();
        assert!(matches!(
            s.open_read_small(&big, 1000).unwrap(),
            Opened::File(..)
        ));
        assert!(matches!(
            s.open_read_small(&RelPath::parse("/d").unwrap(), 1000),
            Err(crate::Error::WrongKind(_))
        ));
        assert_eq!(s.small.map.read().unwrap().0.len(), 0);
    }
}
