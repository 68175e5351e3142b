//! Crash points and injected faults, through the engine's fault seam.
//!
//! For random files cut into random chunks, every step that changes the disk is made
//! to fail in turn: with `EIO`, with `ENOSPC`, or as a crash (that step and every later
//! one fail, then the disk forgets everything not made durable: file contents revert to
//! their last fsync, directory entries to their directory's last fsync). After each:
//! - the final path holds nothing or the complete file, and a completion that was
//!   acknowledged survives;
//! - every acknowledged byte of the upload in progress is still there (a storage error
//!   leaves the offset at the last acknowledged byte, never counting bytes whose write
//!   or fsync failed);
//! - the failure reached the caller (a failed fsync is never turned into a success);
//! - a client resuming from the reported offset completes the file, and nothing but
//!   the final file appears outside the staging area.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fallback_engine::{Error, Faults, Modes, NewUpload, RelPath, Step, Storage, UploadId};
use proptest::prelude::*;
use sha2::{Digest as _, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Crash,
    Eio,
    NoSpace,
}

/// A disk that remembers what was made durable.
#[derive(Debug)]
struct Disk {
    root: PathBuf,
    /// 1-based index of the step that fails; 0: none.
    fail_at: usize,
    mode: Mode,
    st: Mutex<DiskState>,
}

#[derive(Debug, Default)]
struct DiskState {
    steps: usize,
    crashed: bool,
    failed: Option<Step>,
    /// inode -> content at its last fsync.
    content: HashMap<u64, Vec<u8>>,
    /// directory (relative) -> name -> inode, at its last fsync.
    entries: HashMap<String, BTreeMap<String, u64>>,
}

/// Regular files of a directory: name -> inode.
fn listing(dir: &Path) -> BTreeMap<String, u64> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| {
                    (
                        e.file_name().into_string().unwrap(),
                        e.metadata().unwrap().ino(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every directory under `root`, relative ("" is the root).
fn dirs(root: &Path) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut i = 0;
    while i < out.len() {
        let d = root.join(&out[i]);
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                let name = e.file_name().into_string().unwrap();
                out.push(if out[i].is_empty() {
                    name
                } else {
                    format!("{}/{name}", out[i])
                });
            }
        }
        i += 1;
    }
    out
}

impl Disk {
    /// Everything on disk now counts as durable.
    fn new(root: &Path, fail_at: usize, mode: Mode) -> Arc<Disk> {
        let mut st = DiskState::default();
        for d in dirs(root) {
            let l = listing(&root.join(&d));
            for (name, ino) in &l {
                st.content
                    .insert(*ino, std::fs::read(root.join(&d).join(name)).unwrap());
            }
            st.entries.insert(d, l);
        }
        Arc::new(Disk {
            root: root.to_owned(),
            fail_at,
            mode,
            st: Mutex::new(st),
        })
    }

    fn steps(&self) -> usize {
        self.st.lock().unwrap().steps
    }

    fn failed(&self) -> Option<Step> {
        self.st.lock().unwrap().failed.clone()
    }

    /// The crash: the disk comes back as it was durably.
    fn forget(&self) {
        let st = self.st.lock().unwrap();
        let empty = BTreeMap::new();
        for d in dirs(&self.root) {
            let dir = self.root.join(&d);
            let durable = st.entries.get(&d).unwrap_or(&empty);
            let now = listing(&dir);
            for (name, ino) in &now {
                if durable.get(name) != Some(ino) {
                    std::fs::remove_file(dir.join(name)).unwrap();
                }
            }
            for (name, ino) in durable {
                let content = st.content.get(ino).map_or(&[][..], Vec::as_slice);
                std::fs::write(dir.join(name), content).unwrap();
            }
        }
    }
}

impl Faults for Disk {
    fn before(&self, step: &Step) -> std::io::Result<()> {
        let mut st = self.st.lock().unwrap();
        if st.crashed {
            return Err(std::io::Error::from_raw_os_error(5));
        }
        st.steps += 1;
        if st.steps == self.fail_at {
            st.failed = Some(step.clone());
            return Err(std::io::Error::from_raw_os_error(match self.mode {
                Mode::Crash => {
                    st.crashed = true;
                    5
                }
                Mode::Eio => 5,
                Mode::NoSpace => 28,
            }));
        }
        // The step runs: note what it makes durable.
        match step {
            Step::SyncFile(p) => {
                let path = self.root.join(p);
                let ino = std::fs::metadata(&path).unwrap().ino();
                st.content.insert(ino, std::fs::read(&path).unwrap());
            }
            Step::SyncDir(d) => {
                let l = listing(&self.root.join(d));
                st.entries.insert(d.clone(), l);
            }
            _ => {}
        }
        Ok(())
    }
}

const DEST: &str = "/in/sub/f.bin";
const USER: &str = "alice";

/// How the client creates its upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Creation {
    /// A creation answered first (tus POST without a body), then appends.
    Alone,
    /// The first chunk with the creation (tus creation-with-upload): the client learns
    /// of the upload only from that request's answer.
    WithBody,
}

/// What the client saw.
#[derive(Debug, Default)]
struct Seen {
    id: Option<UploadId>,
    /// The last offset an append acknowledged.
    acked: u64,
    completed: bool,
}

/// A client: create, then one append per chunk from `seen.acked`, until done or the
/// first error.
fn drive(
    s: &Storage,
    data: &[u8],
    chunks: &[usize],
    creation: Creation,
    seen: &mut Seen,
) -> Result<(), Error> {
    let mut cuts = vec![0usize];
    for c in chunks {
        cuts.push((cuts.last().unwrap() + c).min(data.len()));
    }
    cuts.push(data.len());
    cuts.dedup();
    let new = NewUpload {
        user: USER.into(),
        dest: RelPath::parse(DEST).unwrap(),
        length: Some(data.len() as u64),
        metadata: vec![],
        expected_sha256: Some(Sha256::digest(data).into()),
        no_replace: false,
        modes: Modes::default(),
    };
    let id = match (&seen.id, creation) {
        (Some(id), _) => id.clone(),
        (None, Creation::Alone) => {
            let info = s.create_upload(new)?;
            seen.id = Some(info.id.clone());
            info.id
        }
        (None, Creation::WithBody) => {
            let to = cuts.iter().copied().find(|&c| c > 0).unwrap_or(0);
            let mut w = s.create_with_body(new, None)?;
            let info = w.info().clone();
            w.write(&data[..to])?;
            let out = w.finish(false)?;
            // The answer: the upload's URL and its offset.
            seen.id = Some(info.id.clone());
            seen.acked = out.offset;
            if out.completed.is_some() {
                seen.completed = true;
                return Ok(());
            }
            info.id
        }
    };
    loop {
        let from = usize::try_from(seen.acked).unwrap();
        let to = cuts.iter().copied().find(|&c| c > from).unwrap_or(from);
        let mut w = s.writer(&id, USER, seen.acked, None)?;
        w.write(&data[from..to])?;
        let out = w.finish(false)?;
        seen.acked = out.offset;
        if out.completed.is_some() {
            seen.completed = true;
            return Ok(());
        }
    }
}

fn part_bytes(root: &Path, id: &UploadId) -> Vec<u8> {
    std::fs::read(root.join(format!(".fallback/uploads/{id}.part"))).unwrap_or_default()
}

/// Files outside the staging area, relative.
fn visible_files(root: &Path) -> Vec<String> {
    let mut out = vec![];
    for d in dirs(root) {
        if d.starts_with(".fallback") {
            continue;
        }
        for name in listing(&root.join(&d)).keys() {
            out.push(if d.is_empty() {
                name.clone()
            } else {
                format!("{d}/{name}")
            });
        }
    }
    out
}

/// One run: fail step `fail_at` in `mode`, check, recover, check. Returns the number of
/// steps a run without failure takes (when `fail_at` is 0). A crash past the last step
/// is a power cut after every call returned.
fn run(data: &[u8], chunks: &[usize], creation: Creation, fail_at: usize, mode: Mode) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let ttl = Duration::from_hours(1);
    drop(Storage::open(root, ttl).unwrap());
    let disk = Disk::new(root, fail_at, mode);
    let s = Storage::open(root, ttl).unwrap().with_faults(disk.clone());
    let mut seen = Seen::default();
    let result = drive(&s, data, chunks, creation, &mut seen);
    let what = format!("step {fail_at} ({:?}) in {mode:?}", disk.failed());
    if fail_at == 0 {
        result.unwrap();
        return disk.steps();
    }
    // The failure reached the caller.
    if disk.failed().is_some() {
        let e = result.expect_err(&what);
        if mode == Mode::NoSpace && !matches!(disk.failed(), Some(Step::Remove(_))) {
            assert!(matches!(e, Error::NoSpace), "{what}: {e:?}");
        }
    }
    let final_path = root.join(DEST.trim_start_matches('/'));
    let s = if mode == Mode::Crash {
        drop(s);
        disk.forget();
        Storage::open(root, ttl).unwrap()
    } else {
        s
    };
    // Nothing, or the whole file.
    if let Ok(got) = std::fs::read(&final_path) {
        assert_eq!(
            got, data,
            "{what}: a partial or wrong file at the final path"
        );
    } else {
        assert!(
            !seen.completed,
            "{what}: an acknowledged completion was lost"
        );
    }
    // Acknowledged bytes are still there; unacknowledged ones are not counted unless
    // they were made durable by the fsync that completes the file.
    if let Some(id) = seen.id.clone()
        && !seen.completed
    {
        match s.upload_settled(&id, Duration::ZERO) {
            Ok(info) => {
                let len = data.len() as u64;
                assert!(info.offset >= seen.acked, "{what}: acknowledged bytes lost");
                if mode != Mode::Crash {
                    assert!(
                        info.offset == seen.acked || info.offset == len,
                        "{what}: offset {} counts unacknowledged bytes (acked {})",
                        info.offset,
                        seen.acked
                    );
                }
                let off = usize::try_from(info.offset).unwrap();
                if info.offset < len {
                    assert_eq!(part_bytes(root, &id)[..off], data[..off], "{what}");
                }
                seen.acked = info.offset;
            }
            Err(Error::UnknownUpload) => {
                // Gone only when its file is complete (completed by the HEAD above, or
                // removed after the rename).
                assert_eq!(
                    std::fs::read(&final_path).ok().as_deref(),
                    Some(data),
                    "{what}"
                );
                seen.completed = true;
            }
            Err(e) => panic!("{what}: HEAD after the failure: {e:?}"),
        }
    }
    // Resume to the end.
    if !seen.completed && std::fs::read(&final_path).ok().as_deref() != Some(data) {
        if seen.id.as_ref().is_some_and(|id| s.upload(id).is_err()) {
            seen = Seen::default();
        }
        drive(&s, data, chunks, creation, &mut seen)
            .unwrap_or_else(|e| panic!("{what}: resume: {e:?}"));
    }
    // What the failure left in the staging area does not stop the sweep.
    s.sweep_expired()
        .unwrap_or_else(|e| panic!("{what}: sweep: {e:?}"));
    assert_eq!(std::fs::read(&final_path).unwrap(), data, "{what}");
    assert_eq!(
        visible_files(root),
        vec![DEST.trim_start_matches('/').to_owned()],
        "{what}"
    );
    0
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// Every step of a chunked upload, failed in every way.
    #[test]
    fn every_failure_point_keeps_acknowledged_bytes_and_never_shows_a_partial_file(
        data in proptest::collection::vec(any::<u8>(), 0..6000),
        chunks in proptest::collection::vec(1usize..3000, 1..4),
    ) {
        for creation in [Creation::Alone, Creation::WithBody] {
            let steps = run(&data, &chunks, creation, 0, Mode::Crash);
            for fail_at in 1..=steps {
                for mode in [Mode::Crash, Mode::Eio, Mode::NoSpace] {
                    run(&data, &chunks, creation, fail_at, mode);
                }
            }
            // And a crash after everything returned: what was acknowledged must be
            // durable.
            run(&data, &chunks, creation, steps + 1, Mode::Crash);
        }
    }
}

/// One run of a final concatenation (tus `Upload-Concat: final`) of durable, finished
/// partial uploads, failing step `fail_at` in `mode`: the final path holds nothing or
/// the whole verified file; after recovery, asking for the same final again completes
/// it. Returns the number of steps without failure (when `fail_at` is 0).
fn run_concat(pieces: &[Vec<u8>], fail_at: usize, mode: Mode) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let ttl = Duration::from_hours(1);
    let whole = pieces.concat();
    let ids: Vec<UploadId> = {
        let s = Storage::open(root, ttl).unwrap();
        pieces
            .iter()
            .map(|p| {
                let id = s.create_partial(USER, p.len() as u64, vec![]).unwrap().id;
                let mut w = s.writer(&id, USER, 0, None).unwrap();
                w.write(p).unwrap();
                w.finish(false).unwrap();
                id
            })
            .collect()
    };
    let final_upload = || NewUpload {
        user: USER.into(),
        dest: RelPath::parse(DEST).unwrap(),
        length: None,
        metadata: vec![],
        expected_sha256: Some(Sha256::digest(&whole).into()),
        no_replace: false,
        modes: Modes::default(),
    };
    let disk = Disk::new(root, fail_at, mode);
    let s = Storage::open(root, ttl).unwrap().with_faults(disk.clone());
    let result = s.concatenate(&ids, final_upload());
    let what = format!("step {fail_at} ({:?}) in {mode:?}", disk.failed());
    if fail_at == 0 {
        result.unwrap();
        return disk.steps();
    }
    let acknowledged = result.is_ok();
    let final_path = root.join(DEST.trim_start_matches('/'));
    let s = if mode == Mode::Crash {
        drop(s);
        disk.forget();
        Storage::open(root, ttl).unwrap()
    } else {
        s
    };
    match std::fs::read(&final_path) {
        Ok(got) => assert_eq!(
            got, whole,
            "{what}: a partial or wrong file at the final path"
        ),
        Err(_) => {
            assert!(!acknowledged, "{what}: an acknowledged final was lost");
            // The partials are intact: the same final, asked for again, completes.
            s.concatenate(&ids, final_upload())
                .unwrap_or_else(|e| panic!("{what}: retry: {e:?}"));
            assert_eq!(std::fs::read(&final_path).unwrap(), whole, "{what}");
        }
    }
    assert_eq!(
        visible_files(root),
        vec![DEST.trim_start_matches('/').to_owned()],
        "{what}"
    );
    0
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]

    /// Every disk step of a final concatenation, failed in every way.
    #[test]
    fn every_failure_point_of_a_concatenation_leaves_nothing_or_the_whole_file(
        pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 1..4),
    ) {
        let steps = run_concat(&pieces, 0, Mode::Crash);
        for fail_at in 1..=steps {
            for mode in [Mode::Crash, Mode::Eio, Mode::NoSpace] {
                run_concat(&pieces, fail_at, mode);
            }
        }
        run_concat(&pieces, steps + 1, Mode::Crash);
    }
}

/// Uploads of small files published at the same time into one folder, each created with
/// its bytes (tus creation-with-upload), crashed at step `fail_at`: the folder's fsyncs
/// are shared by whoever waits for them at once, and still every acknowledged file is
/// there whole after the crash, and nothing but whole files is. Returns the steps of
/// the run (it varies with how the fsyncs were shared).
fn run_concurrent(files: &[Vec<u8>], fail_at: usize) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let ttl = Duration::from_hours(1);
    {
        // The folder exists and is durable before the run.
        let s = Storage::open(root, ttl).unwrap();
        std::fs::create_dir(root.join("in")).unwrap();
        drop(s);
    }
    let disk = Disk::new(root, fail_at, Mode::Crash);
    let s = Storage::open(root, ttl).unwrap().with_faults(disk.clone());
    let acked: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(i, data)| {
                let s = &s;
                scope.spawn(move || {
                    let upload = || -> Result<bool, Error> {
                        let mut w = s.create_with_body(
                            NewUpload {
                                user: USER.into(),
                                dest: RelPath::parse(&format!("/in/f{i}")).unwrap(),
                                length: Some(data.len() as u64),
                                metadata: vec![],
                                expected_sha256: Some(Sha256::digest(data).into()),
                                no_replace: false,
                                modes: Modes::default(),
                            },
                            None,
                        )?;
                        w.write(data)?;
                        Ok(w.finish(false)?.completed.is_some())
                    };
                    upload().unwrap_or(false)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let steps = disk.steps();
    if fail_at == 0 {
        assert!(acked.iter().all(|a| *a), "a clean run completes every file");
        return steps;
    }
    drop(s);
    disk.forget();
    for (i, data) in files.iter().enumerate() {
        let path = root.join(format!("in/f{i}"));
        match std::fs::read(&path) {
            Ok(got) => assert_eq!(&got, data, "crash at step {fail_at}: file {i} is not whole"),
            Err(_) => assert!(
                !acked[i],
                "crash at step {fail_at}: acknowledged file {i} was lost"
            ),
        }
    }
    Storage::open(root, ttl).unwrap().sweep_expired().unwrap();
    steps
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]

    #[test]
    fn files_published_together_share_fsyncs_and_survive_any_crash(
        files in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 2..9),
    ) {
        let steps = run_concurrent(&files, 0);
        // Runs differ in how many folder fsyncs they share, so past the clean run's
        // count too.
        for fail_at in 1..=steps + files.len() {
            run_concurrent(&files, fail_at);
        }
    }
}

/// Counts what is written to uploads' data files and the fsyncs of them run by the
/// engine's early write-back thread; fails the first of those, if told to.
#[derive(Debug, Default)]
struct EarlySyncs {
    fail_early: bool,
    /// (bytes written to `.part` files, early `.part` fsyncs, whether one was failed)
    seen: Mutex<(usize, usize, bool)>,
}

/// Whether a staged name is an upload's data file (the engine names them `<id>.part`).
fn is_part(name: &str) -> bool {
    std::path::Path::new(name)
        .extension()
        .is_some_and(|e| e == "part")
}

impl Faults for EarlySyncs {
    fn before(&self, step: &Step) -> std::io::Result<()> {
        let mut seen = self.seen.lock().unwrap();
        match step {
            Step::Write(p, n) if is_part(p) => seen.0 += n,
            Step::SyncFile(p)
                if is_part(p) && std::thread::current().name() == Some("early-sync") =>
            {
                seen.1 += 1;
                if self.fail_early && !seen.2 {
                    seen.2 = true;
                    return Err(std::io::Error::from_raw_os_error(5));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// An 80 MiB append, written 1 MiB at a time.
fn long_append(
    faults: Arc<EarlySyncs>,
) -> (tempfile::TempDir, Storage, UploadId, Result<(), Error>) {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(dir.path(), Duration::from_hours(1))
        .unwrap()
        .with_faults(faults);
    let len: u64 = 80 << 20;
    let info = s
        .create_upload(NewUpload {
            user: "alice".into(),
            dest: RelPath::parse("/long.bin").unwrap(),
            length: Some(len),
            metadata: vec![],
            expected_sha256: None,
            no_replace: false,
            modes: Modes::default(),
        })
        .unwrap();
    let mut w = s.writer(&info.id, "alice", 0, None).unwrap();
    let block: Vec<u8> = (0..1u32 << 20).map(|i| (i % 253) as u8).collect();
    for _ in 0..80 {
        w.write(&block).unwrap();
    }
    let r = w.finish(false).map(|o| assert!(o.completed.is_some()));
    (dir, s, info.id, r)
}

#[test]
fn a_long_append_starts_write_back_early_and_publishes_intact() {
    let faults = Arc::new(EarlySyncs::default());
    let (dir, _s, _, r) = long_append(Arc::clone(&faults));
    r.unwrap();
    let (written, early, _) = *faults.seen.lock().unwrap();
    assert_eq!(written, 80 << 20);
    assert_eq!(
        early, 1,
        "one early write-back (at 64 MiB) before the seal's fsync"
    );
    let got = std::fs::read(dir.path().join("long.bin")).unwrap();
    assert_eq!(got.len(), 80 << 20);
    assert!(got.chunks(1 << 20).all(|c| c[..] == got[..1 << 20]));
}

#[test]
fn a_failed_early_write_back_fails_the_append_and_acknowledges_nothing() {
    let faults = Arc::new(EarlySyncs {
        fail_early: true,
        ..EarlySyncs::default()
    });
    let (dir, s, id, r) = long_append(Arc::clone(&faults));
    assert!(r.is_err(), "{r:?}");
    assert!(
        faults.seen.lock().unwrap().2,
        "the early write-back was failed"
    );
    assert!(!dir.path().join("long.bin").exists());
    assert_eq!(
        s.upload(&id).unwrap().offset,
        0,
        "nothing of the append kept"
    );
}
