//! The staging area is out of reach of every request path: arbitrary link layouts
//! inside a docroot (links to `.`, `..`, `.fallback`, its `uploads`, a staged file) and
//! arbitrary request paths never read, list, write or rename into a staged byte.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fallback_engine::{Error, Modes, NewUpload, RelPath, Storage, UploadId};
use proptest::prelude::*;

const MARKER: &[u8] = b"STAGED-BYTES-OF-ANOTHER-USER";

/// Every file under the staging area with its bytes.
fn snapshot(staging: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(staging).unwrap() {
        let e = e.unwrap();
        out.insert(e.path(), std::fs::read(e.path()).unwrap());
    }
    out
}

/// Where an open handle really is.
fn real_path(f: &std::fs::File) -> PathBuf {
    std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).unwrap()
}

struct Setup {
    dir: tempfile::TempDir,
    storage: Storage,
    staged: UploadId,
    reserved: PathBuf,
}

/// A docroot with one upload in progress (bob's) and the given dirs and links.
fn setup(dirs: &[String], links: &[(String, String)]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), Duration::from_hours(1)).unwrap();
    let info = storage
        .create_upload(NewUpload {
            user: "bob".into(),
            dest: RelPath::parse("bob/secret.bin").unwrap(),
            length: Some(MARKER.len() as u64 * 2),
            metadata: vec![],
            expected_sha256: None,
            no_replace: false,
            modes: Modes::default(),
        })
        .unwrap();
    let mut w = storage.writer(&info.id, "bob", 0, None).unwrap();
    w.write(MARKER).unwrap();
    w.finish(false).unwrap();
    for d in dirs {
        let _ = std::fs::create_dir_all(dir.path().join(d));
    }
    for (at, target) in links {
        let _ = std::os::unix::fs::symlink(target, dir.path().join(at));
    }
    let reserved = std::fs::canonicalize(dir.path().join(".fallback")).unwrap();
    Setup {
        dir,
        storage,
        staged: info.id,
        reserved,
    }
}

fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("l1".to_owned()),
        Just("l2".to_owned()),
        Just("l3".to_owned()),
        Just(".fallback".to_owned()),
        Just("uploads".to_owned()),
        Just("STAGED".to_owned()),
    ]
}

fn target_component() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => component(),
        2 => Just(".".to_owned()),
        3 => Just("..".to_owned()),
    ]
}

fn rel(parts: &[String]) -> String {
    parts.join("/")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, .. ProptestConfig::default() })]

    #[test]
    fn no_request_path_reaches_a_staged_byte(
        dirs in prop::collection::vec(prop::collection::vec(prop_oneof![Just("a"), Just("b")], 1..3), 0..3),
        links in prop::collection::vec(
            (prop::collection::vec(prop_oneof![Just("a"), Just("b")], 0..2),
             prop_oneof![Just("l1"), Just("l2"), Just("l3")],
             prop::collection::vec(target_component(), 0..4)),
            1..4),
        paths in prop::collection::vec(prop::collection::vec(component(), 1..6), 1..12),
    ) {
        let dirs: Vec<String> = dirs.into_iter().map(|d| d.join("/")).collect();
        let links: Vec<(String, String)> = links
            .into_iter()
            .map(|(at, name, target)| {
                let mut at: Vec<String> = at.into_iter().map(str::to_owned).collect();
                at.push(name.to_owned());
                (rel(&at), if target.is_empty() { ".".to_owned() } else { rel(&target) })
            })
            .collect();
        let s = setup(&dirs, &links);
        let staged = s.staged.as_str().to_owned();
        let staging = s.reserved.join("uploads");
        let before = snapshot(&staging);
        for parts in paths {
            let parts: Vec<String> = parts
                .into_iter()
                .map(|c| if c == "STAGED" { format!("{staged}.part") } else { c })
                .collect();
            let Ok(path) = RelPath::parse(&rel(&parts)) else { continue };
            // Reads: whatever opens is not in the reserved directory and holds no
            // staged byte.
            if let Ok((mut f, _)) = s.storage.open_read(&path) {
                let real = real_path(&f);
                prop_assert!(!real.starts_with(&s.reserved), "{path} opened {real:?}");
                let mut got = Vec::new();
                f.read_to_end(&mut got).unwrap();
                prop_assert!(!got.windows(MARKER.len()).any(|w| w == MARKER), "{path}");
            }
            if let Ok(e) = s.storage.stat(&path) {
                prop_assert!(e.size != MARKER.len() as u64, "{path} stats a staged file");
            }
            // Listings, from any directory: what is listed opens outside the reserved
            // directory (a file named like a staged one, made by a PUT meanwhile, is
            // fine; the staging area is not).
            if let Ok(m) = s.storage.manifest(&path, 10_000) {
                for e in m.iter().take(40) {
                    let Ok(sub) = RelPath::parse(&e.path) else { continue };
                    if let Ok((mut f, _)) = s.storage.open_read(&path.join(&sub)) {
                        let real = real_path(&f);
                        prop_assert!(!real.starts_with(&s.reserved), "{path} lists {real:?}");
                        let mut got = Vec::new();
                        f.read_to_end(&mut got).unwrap();
                        prop_assert!(!got.windows(MARKER.len()).any(|w| w == MARKER));
                    }
                }
            }
            // Writes: a PUT and a tus upload to the path either land outside the
            // reserved directory or are refused; the staged upload is untouched.
            if let Ok(mut w) = s.storage.put("alice", &path, Some(3), None, false, Modes::default()) {
                let _ = w.write(b"PUT");
                let _ = w.finish(true);
            }
            if let Ok(info) = s.storage.create_upload(NewUpload {
                user: "alice".into(),
                dest: path.clone(),
                length: Some(3),
                metadata: vec![],
                expected_sha256: None,
                no_replace: false,
                modes: Modes::default(),
            }) && let Ok(mut w) = s.storage.writer(&info.id, "alice", 0, None)
            {
                let _ = w.write(b"TUS");
                let _ = w.finish(true);
            }
            let now = snapshot(&staging);
            for (name, bytes) in &before {
                prop_assert_eq!(now.get(name), Some(bytes), "{} changed by {}", name.display(), path);
            }
            prop_assert!(
                !s.reserved.join("planted").exists() && !staging.join("planted").exists()
            );
        }
        let info = s.storage.upload(&s.staged).unwrap();
        prop_assert_eq!(info.offset, MARKER.len() as u64);
        drop(s.dir);
    }
}

#[test]
fn the_reported_layout_is_refused() {
    // `current -> .`: the operator's link that made the staging area reachable.
    let s = setup(&[], &[("current".into(), ".".into())]);
    let id = s.staged.as_str();
    for path in [
        "current/.fallback/uploads".to_owned(),
        "current/.fallback".to_owned(),
        format!("current/.fallback/uploads/{id}.json"),
        format!("current/.fallback/uploads/{id}.part"),
        format!("current/current/.fallback/uploads/{id}.part"),
    ] {
        let p = RelPath::parse(&path).unwrap();
        assert!(
            matches!(s.storage.open_read(&p), Err(Error::Reserved)),
            "{path}"
        );
        assert!(
            matches!(s.storage.manifest(&p, 100), Err(Error::Reserved)),
            "{path}"
        );
        assert!(
            matches!(
                s.storage
                    .put("alice", &p, Some(1), None, false, Modes::default()),
                Err(Error::Reserved)
            ),
            "{path}"
        );
    }
    // The link itself still works for everything else.
    std::fs::write(s.dir.path().join("f"), b"x").unwrap();
    assert!(
        s.storage
            .open_read(&RelPath::parse("current/f").unwrap())
            .is_ok()
    );
    let m = s
        .storage
        .manifest(&RelPath::parse("current").unwrap(), 100)
        .unwrap();
    assert!(m.iter().all(|e| !e.path.starts_with(".fallback")), "{m:?}");
    // A planted link straight to a staged file is not followed either.
    std::os::unix::fs::symlink(
        format!(".fallback/uploads/{id}.part"),
        s.dir.path().join("grab"),
    )
    .unwrap();
    assert!(matches!(
        s.storage.open_read(&RelPath::parse("grab").unwrap()),
        Err(Error::Reserved)
    ));
}
