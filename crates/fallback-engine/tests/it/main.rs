//! Integration tests of fallback-engine on real temporary directories.

// Test helpers panic on purpose: a panic is how a failed expectation is reported.
#![allow(clippy::unwrap_used)]

mod crash;
mod props;
mod staging;

use std::io::Read as _;
use std::time::Duration;

use fallback_engine::ChunkChecksum;
use fallback_engine::{EntryKind, Error, Modes, NewUpload, RelPath, Storage, UploadId};
use sha2::{Digest as _, Sha256};

fn storage() -> (tempfile::TempDir, Storage) {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(dir.path(), Duration::from_hours(24)).unwrap();
    (dir, s)
}

fn p(s: &str) -> RelPath {
    RelPath::parse(s).unwrap()
}

fn new(dest: &str, len: u64) -> NewUpload {
    NewUpload {
        user: "alice".into(),
        dest: p(dest),
        length: Some(len),
        metadata: vec![],
        expected_sha256: None,
        no_replace: false,
        modes: Modes::default(),
    }
}

#[test]
fn resumable_upload_becomes_visible_only_when_complete() {
    let (dir, s) = storage();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let info = s
        .create_upload(new("/in/sub/file.bin", data.len() as u64))
        .unwrap();
    assert_eq!(info.offset, 0);
    let mut w = s.writer(&info.id, "alice", 0, None).unwrap();
    w.write(&data[..1_000_000]).unwrap();
    assert!(w.finish(false).unwrap().completed.is_none());
    assert!(!dir.path().join("in/sub/file.bin").exists());
    // A second writer at a wrong offset is refused with the real offset.
    assert!(matches!(
        s.writer(&info.id, "alice", 5, None),
        Err(Error::OffsetMismatch { actual: 1_000_000 })
    ));
    assert!(matches!(
        s.writer(&info.id, "bob", 1_000_000, None),
        Err(Error::NotOwner)
    ));
    // A fresh storage (a restarted process) resumes from the stored bytes.
    let s2 = Storage::open(dir.path(), Duration::from_hours(24)).unwrap();
    assert_eq!(s2.upload(&info.id).unwrap().offset, 1_000_000);
    let mut w = s2.writer(&info.id, "alice", 1_000_000, None).unwrap();
    w.write(&data[1_000_000..]).unwrap();
    let out = w.finish(false).unwrap();
    let done = out.completed.unwrap();
    assert_eq!(done.sha256, <[u8; 32]>::from(Sha256::digest(&data)));
    assert_eq!(
        std::fs::read(dir.path().join("in/sub/file.bin")).unwrap(),
        data
    );
    // The finished upload stays answerable (a client whose last response was lost
    // asks again), with its whole length and digest, in this process and after a
    // restart; it takes no more bytes.
    for st in [
        &s,
        &Storage::open(dir.path(), Duration::from_hours(24)).unwrap(),
    ] {
        let fin = st.upload(&info.id).unwrap();
        assert!(fin.done);
        assert_eq!(fin.offset, data.len() as u64);
        assert_eq!(fin.sha256, Some(done.sha256));
        assert!(matches!(
            st.writer(&info.id, "alice", fin.offset, None),
            Err(Error::Finished)
        ));
    }
    // Only its record is left in the staging area.
    let left: Vec<_> = std::fs::read_dir(dir.path().join(".fallback/uploads"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, [format!("{}.done", info.id)]);
    assert_eq!(s.upload_count().unwrap(), 0);
    s.terminate(&info.id, "alice").unwrap();
    assert!(matches!(s.upload(&info.id), Err(Error::UnknownUpload)));
    let e = s.stat(&p("/in/sub/file.bin")).unwrap();
    assert_eq!(e.kind, EntryKind::File);
    assert_eq!(e.size, data.len() as u64);
}

/// Appends past the first full write buffer hash on a thread of their own: the
/// digests must still cover exactly the bytes stored, in order, through slices of every
/// size, a refused chunk, a broken-off append and a resume.
#[test]
fn long_appends_hash_aside_and_their_digests_stay_exact() {
    let (dir, s) = storage();
    let data: Vec<u8> = (0..11_000_003u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let info = s
        .create_upload(new("/long.bin", data.len() as u64))
        .unwrap();
    // Uneven slices, some larger than the write buffer.
    let slices = [1, 65_536, 3, 1 << 20, (1 << 20) - 1, 2_500_007, 17];
    let write = |w: &mut fallback_engine::UploadWriter<'_>, mut bytes: &[u8]| {
        let mut i = 0;
        while !bytes.is_empty() {
            let n = slices[i % slices.len()].min(bytes.len());
            w.write(&bytes[..n]).unwrap();
            bytes = &bytes[n..];
            i += 1;
        }
    };
    let first = 3_000_001;
    let sha1 = |b: &[u8]| ChunkChecksum::Sha1(sha1::Sha1::digest(b).into());
    let mut w = s
        .writer(&info.id, "alice", 0, Some(sha1(&data[..first])))
        .unwrap();
    write(&mut w, &data[..first]);
    assert_eq!(w.finish(false).unwrap().offset, first as u64);
    // A long chunk whose checksum is wrong leaves the offset where it was.
    let second = first + 4_000_000;
    let mut w = s
        .writer(&info.id, "alice", first as u64, Some(sha1(&data[..10])))
        .unwrap();
    write(&mut w, &data[first..second]);
    assert!(matches!(w.finish(false), Err(Error::ChecksumMismatch)));
    assert_eq!(s.upload(&info.id).unwrap().offset, first as u64);
    // A body that breaks off keeps what arrived, and the next append resumes from it.
    let mut w = s.writer(&info.id, "alice", first as u64, None).unwrap();
    write(&mut w, &data[first..second]);
    assert_eq!(w.abort().unwrap(), second as u64);
    let whole: [u8; 32] = Sha256::digest(&data).into();
    let mut w = s.writer(&info.id, "alice", second as u64, None).unwrap();
    w.expect_sha256(whole);
    write(&mut w, &data[second..]);
    let done = w.finish(false).unwrap().completed.unwrap();
    assert_eq!(done.sha256, whole);
    assert_eq!(std::fs::read(dir.path().join("long.bin")).unwrap(), data);
    // And a restarted process, which recomputes the digest from the stored bytes,
    // agrees with the one computed aside.
    let info = s
        .create_upload(new("/again.bin", data.len() as u64))
        .unwrap();
    let mut w = s.writer(&info.id, "alice", 0, None).unwrap();
    write(&mut w, &data[..second]);
    w.finish(false).unwrap();
    let s2 = Storage::open(dir.path(), Duration::from_hours(24)).unwrap();
    let mut w = s2.writer(&info.id, "alice", second as u64, None).unwrap();
    w.expect_sha256(whole);
    write(&mut w, &data[second..]);
    assert_eq!(w.finish(false).unwrap().completed.unwrap().sha256, whole);
}

#[test]
fn chunk_checksum_mismatch_discards_the_chunk() {
    let (_d, s) = storage();
    let info = s.create_upload(new("/f", 10)).unwrap();
    let wrong = [
        ChunkChecksum::Sha256([0u8; 32]),
        ChunkChecksum::Sha1([0u8; 20]),
        ChunkChecksum::Md5([0u8; 16]),
    ];
    for bad in wrong {
        let mut w = s.writer(&info.id, "alice", 0, Some(bad)).unwrap();
        w.write(b"hello").unwrap();
        assert!(
            matches!(w.finish(false), Err(Error::ChecksumMismatch)),
            "{bad:?}"
        );
        assert_eq!(s.upload(&info.id).unwrap().offset, 0);
    }
    // Each algorithm accepts the right digest of its chunk.
    let chunks: [(&[u8], ChunkChecksum); 3] = [
        (
            b"hel",
            ChunkChecksum::Sha1(sha1::Sha1::digest(b"hel").into()),
        ),
        (b"lo", ChunkChecksum::Md5(md5::Md5::digest(b"lo").into())),
        (b"!", ChunkChecksum::Sha256(Sha256::digest(b"!").into())),
    ];
    let mut offset = 0;
    for (data, good) in chunks {
        let mut w = s.writer(&info.id, "alice", offset, Some(good)).unwrap();
        w.write(data).unwrap();
        offset = w.finish(false).unwrap().offset;
    }
    assert_eq!(offset, 6);
}

#[test]
fn whole_file_digest_is_checked_before_the_rename() {
    let (dir, s) = storage();
    let mut n = new("/f", 3);
    n.expected_sha256 = Some([1u8; 32]);
    let info = s.create_upload(n).unwrap();
    let mut w = s.writer(&info.id, "alice", 0, None).unwrap();
    w.write(b"abc").unwrap();
    assert!(matches!(w.finish(false), Err(Error::ChecksumMismatch)));
    assert!(!dir.path().join("f").exists());
}

/// A sender that hashes as it sends gives the digest with its last append: a wrong one
/// leaves nothing (no file, no upload, no staged bytes), the right one publishes. An
/// append that does not complete the upload does not check it.
#[test]
fn digest_given_with_the_last_append_is_checked_before_the_rename() {
    let (dir, s) = storage();
    for (digest, publishes) in [
        (Sha256::digest(b"abXd"), false),
        (Sha256::digest(b"abcd"), true),
    ] {
        let info = s.create_upload(new("/f", 4)).unwrap();
        let mut w = s.writer(&info.id, "alice", 0, None).unwrap();
        w.expect_sha256([9u8; 32]);
        w.write(b"ab").unwrap();
        assert_eq!(w.finish(false).unwrap().offset, 2);
        let mut w = s.writer(&info.id, "alice", 2, None).unwrap();
        w.expect_sha256(digest.into());
        w.write(b"cd").unwrap();
        let r = w.finish(false);
        if publishes {
            assert_eq!(
                r.unwrap().completed.unwrap().sha256,
                <[u8; 32]>::from(digest)
            );
            assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"abcd");
        } else {
            assert!(matches!(r, Err(Error::ChecksumMismatch)), "{r:?}");
            assert!(matches!(s.upload(&info.id), Err(Error::UnknownUpload)));
            assert!(!dir.path().join("f").exists());
            assert_eq!(s.upload_count().unwrap(), 0);
        }
    }
}

#[test]
fn writing_past_the_length_is_refused() {
    let (_d, s) = storage();
    let info = s.create_upload(new("/f", 3)).unwrap();
    let mut w = s.writer(&info.id, "alice", 0, None).unwrap();
    assert!(matches!(w.write(b"abcd"), Err(Error::TooLong)));
    drop(w);
    assert_eq!(s.upload(&info.id).unwrap().offset, 0);
}

#[test]
fn one_writer_at_a_time() {
    let (_d, s) = storage();
    let info = s.create_upload(new("/f", 3)).unwrap();
    let w = s.writer(&info.id, "alice", 0, None).unwrap();
    assert!(matches!(
        s.writer(&info.id, "alice", 0, None),
        Err(Error::Locked)
    ));
    drop(w);
    assert!(s.writer(&info.id, "alice", 0, None).is_ok());
}

#[test]
fn single_shot_put_and_abort() {
    let (dir, s) = storage();
    let mut w = s
        .put("alice", &p("/a.txt"), None, None, false, Modes::default())
        .unwrap();
    w.write(b"partial").unwrap();
    assert_eq!(w.abort().unwrap(), 0);
    assert!(!dir.path().join("a.txt").exists());
    assert_eq!(
        std::fs::read_dir(dir.path().join(".fallback/uploads"))
            .unwrap()
            .count(),
        0
    );
    let mut w = s
        .put("alice", &p("/a.txt"), None, None, false, Modes::default())
        .unwrap();
    w.write(b"whole").unwrap();
    let c = w.finish(true).unwrap().completed.unwrap();
    assert_eq!(c.size, 5);
    assert_eq!(std::fs::read(dir.path().join("a.txt")).unwrap(), b"whole");
}

#[test]
fn digests_are_recorded_and_invalidated() {
    let (dir, s) = storage();
    let mut w = s
        .put(
            "alice",
            &p("/d.txt"),
            Some(4),
            None,
            false,
            Modes::default(),
        )
        .unwrap();
    w.write(b"data").unwrap();
    w.finish(true).unwrap();
    let e = s.stat(&p("/d.txt")).unwrap();
    // Only where the file system keeps user extended attributes (tmpfs may not).
    if let Some(d) = e.sha256 {
        assert_eq!(d, <[u8; 32]>::from(Sha256::digest(b"data")));
        std::fs::write(dir.path().join("d.txt"), b"changed!").unwrap();
        assert_eq!(s.stat(&p("/d.txt")).unwrap().sha256, None);
    }
    assert_eq!(
        s.digest(&p("/d.txt")).unwrap(),
        <[u8; 32]>::from(Sha256::digest(b"changed!"))
    );
}

#[test]
fn symlinks_out_of_the_docroot_are_never_followed() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"secret").unwrap();
    let (dir, s) = storage();
    std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("dirlink")).unwrap();
    std::fs::write(dir.path().join("inside"), b"ok").unwrap();
    std::os::unix::fs::symlink("inside", dir.path().join("good-link")).unwrap();
    assert!(matches!(
        s.open_read(&p("/link")),
        Err(Error::Escapes | Error::NotFound)
    ));
    assert!(matches!(
        s.open_read(&p("/dirlink/secret")),
        Err(Error::Escapes | Error::NotFound)
    ));
    let (mut f, _) = s.open_read(&p("/good-link")).unwrap();
    let mut got = String::new();
    f.read_to_string(&mut got).unwrap();
    assert_eq!(got, "ok");
    // Uploads cannot land through the link either: refused at creation, before any
    // byte is accepted.
    let refused = s.create_upload(new("/dirlink/planted", 1));
    assert!(matches!(refused, Err(Error::Escapes)), "{refused:?}");
    let refused = s.create_upload(new("/dirlink/deeper/planted", 1));
    assert!(matches!(refused, Err(Error::Escapes)), "{refused:?}");
    assert!(!outside.path().join("planted").exists());
    assert!(!outside.path().join("deeper").exists());
    // Listings leave them out.
    let m = s.manifest(&RelPath::root(), 100).unwrap();
    let names: Vec<&str> = m.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(names, ["good-link", "inside"]);
}

#[test]
fn manifest_is_recursive_sorted_and_bounded() {
    let (dir, s) = storage();
    std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
    std::fs::write(dir.path().join("a/b/c.txt"), b"123").unwrap();
    std::fs::write(dir.path().join("a/z.txt"), b"").unwrap();
    let m = s.manifest(&p("/a"), 100).unwrap();
    let names: Vec<(&str, u64)> = m.iter().map(|e| (e.path.as_str(), e.size)).collect();
    assert_eq!(names, [("b", 0), ("b/c.txt", 3), ("z.txt", 0)]);
    assert!(matches!(s.manifest(&p("/a"), 1), Err(Error::Limit(_))));
    assert!(matches!(
        s.manifest(&p("/a/z.txt"), 10),
        Err(Error::WrongKind(_))
    ));
}

#[test]
fn ids_are_validated_and_terminate_works() {
    let (_d, s) = storage();
    assert!(UploadId::parse("../../etc/passwd").is_none());
    assert!(UploadId::parse(&"A".repeat(32)).is_none());
    let info = s.create_upload(new("/t", 5)).unwrap();
    assert!(matches!(s.terminate(&info.id, "bob"), Err(Error::NotOwner)));
    s.terminate(&info.id, "alice").unwrap();
    assert!(matches!(s.upload(&info.id), Err(Error::UnknownUpload)));
}

#[test]
fn expired_uploads_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(dir.path(), Duration::ZERO).unwrap();
    let info = s.create_upload(new("/t", 5)).unwrap();
    let mut w = s.writer(&info.id, "alice", 0, None).unwrap();
    w.write(b"abc").unwrap();
    w.finish(false).unwrap();
    let staging = dir.path().join(".fallback/uploads");
    // A data file whose state never made it (a crash during creation), an hour old, and
    // look-alikes outside the staging area, which the sweep must never touch.
    let orphan = staging.join("0123456789abcdef0123456789abcdef.part");
    std::fs::write(&orphan, b"orphan").unwrap();
    let old = std::process::Command::new("touch")
        .args(["-m", "-d", "2 hours ago"])
        .arg(&orphan)
        .status()
        .unwrap();
    assert!(old.success());
    let young = staging.join("fedcba9876543210fedcba9876543210.json.tmp");
    std::fs::write(&young, b"{}").unwrap();
    std::fs::write(dir.path().join(format!("{}.part", info.id)), b"user file").unwrap();
    std::fs::write(
        dir.path().join("0123456789abcdef0123456789abcdef.part"),
        b"user",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(s.sweep_expired().unwrap(), 1);
    assert!(matches!(s.upload(&info.id), Err(Error::UnknownUpload)));
    let mut left: Vec<String> = std::fs::read_dir(&staging)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    // The expired upload's bytes and the old orphan are gone; a young file (perhaps a
    // creation in progress) stays.
    assert_eq!(left, ["fedcba9876543210fedcba9876543210.json.tmp"]);
    assert!(dir.path().join(format!("{}.part", info.id)).exists());
    assert!(
        dir.path()
            .join("0123456789abcdef0123456789abcdef.part")
            .exists()
    );
}

#[test]
fn two_uploads_to_one_path_never_mix() {
    // Two processes' worth of uploads (two Storage handles on one docroot), writing
    // alternately; the final file is one of them whole, never a blend.
    let (dir, s1) = storage();
    let s2 = Storage::open(dir.path(), Duration::from_hours(24)).unwrap();
    let a = vec![b'a'; 3 << 20];
    let b = vec![b'b'; 3 << 20];
    let ia = s1.create_upload(new("/same.bin", a.len() as u64)).unwrap();
    let ib = s2.create_upload(new("/same.bin", b.len() as u64)).unwrap();
    let mut offset = 0;
    for chunk in 0..3 {
        let range = chunk << 20..(chunk + 1) << 20;
        let mut wa = s1.writer(&ia.id, "alice", offset, None).unwrap();
        wa.write(&a[range.clone()]).unwrap();
        let oa = wa.finish(false).unwrap();
        let mut wb = s2.writer(&ib.id, "alice", offset, None).unwrap();
        wb.write(&b[range]).unwrap();
        let ob = wb.finish(false).unwrap();
        offset += 1 << 20;
        let done = [oa.completed.is_some(), ob.completed.is_some()];
        let content = std::fs::read(dir.path().join("same.bin")).ok();
        match done {
            [false, false] => assert!(content.is_none()),
            _ => {
                let c = content.unwrap();
                assert!(c == a || c == b, "a blend of both uploads");
            }
        }
    }
    assert_eq!(
        std::fs::read(dir.path().join("same.bin")).unwrap(),
        b,
        "the last to complete wins"
    );
}

#[test]
fn a_fifo_in_the_docroot_does_not_hang_a_reader() {
    let (dir, s) = storage();
    let fifo = dir.path().join("pipe");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    // Opening a FIFO for reading would block until a writer comes: returning at all
    // (with not-found) is the proof it was never opened.
    assert!(matches!(s.open_read(&p("/pipe")), Err(Error::NotFound)));
    // Listings leave it out too.
    assert!(s.manifest(&RelPath::root(), 10).unwrap().is_empty());
}

#[test]
fn no_replace_never_overwrites_even_a_file_that_appears_meanwhile() {
    let (dir, s) = storage();
    std::fs::write(dir.path().join("taken.txt"), b"first").unwrap();
    let refused = s.create_upload(NewUpload {
        no_replace: true,
        modes: Modes::default(),
        ..new("/taken.txt", 3)
    });
    assert!(matches!(refused, Err(Error::Exists)), "{refused:?}");
    assert!(matches!(
        s.put(
            "alice",
            &p("/taken.txt"),
            Some(3),
            None,
            true,
            Modes::default()
        ),
        Err(Error::Exists)
    ));
    // Free at creation, taken before completion: the rename refuses, the file stays.
    let info = s
        .create_upload(NewUpload {
            no_replace: true,
            modes: Modes::default(),
            ..new("/late.txt", 3)
        })
        .unwrap();
    std::fs::write(dir.path().join("late.txt"), b"someone else's").unwrap();
    let mut w = s.writer(&info.id, "alice", 0, None).unwrap();
    w.write(b"abc").unwrap();
    assert!(matches!(w.finish(false), Err(Error::Exists)));
    assert_eq!(
        std::fs::read(dir.path().join("late.txt")).unwrap(),
        b"someone else's"
    );
    assert!(matches!(s.upload(&info.id), Err(Error::UnknownUpload)));
    // Without the condition, a PUT replaces.
    let mut w = s
        .put(
            "alice",
            &p("/taken.txt"),
            Some(3),
            None,
            false,
            Modes::default(),
        )
        .unwrap();
    w.write(b"new").unwrap();
    w.finish(true).unwrap();
    assert_eq!(std::fs::read(dir.path().join("taken.txt")).unwrap(), b"new");
}

/// Whether an error is the expected one.
type Is = fn(&Error) -> bool;

/// A final upload to `dest`, with no size limit.
fn final_to(dest: &str) -> NewUpload {
    NewUpload {
        length: None,
        ..new(dest, 0)
    }
}

/// Writes `data` as one finished partial upload of alice's.
fn partial(s: &Storage, data: &[u8]) -> UploadId {
    let info = s
        .create_partial("alice", data.len() as u64, vec![])
        .unwrap();
    let mut w = s.writer(&info.id, "alice", 0, None).unwrap();
    w.write(data).unwrap();
    let out = w.finish(false).unwrap();
    assert!(
        out.completed.is_none(),
        "a partial upload is never published alone"
    );
    info.id
}

#[test]
fn concatenation_assembles_finished_partials_in_order() {
    let (dir, s) = storage();
    let a: Vec<u8> = (0..700_000u32).map(|i| (i % 241) as u8).collect();
    let b: Vec<u8> = (0..300_001u32).map(|i| (i % 7) as u8).collect();
    let (ia, ib) = (partial(&s, &a), partial(&s, &b));
    // Nothing of them is visible.
    assert_eq!(s.manifest(&RelPath::root(), 100).unwrap(), []);
    let whole = [a.clone(), b.clone()].concat();
    let mut n = final_to("/in/joined.bin");
    n.expected_sha256 = Some(Sha256::digest(&whole).into());
    let (info, done) = s.concatenate(&[ia.clone(), ib.clone()], n).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("in/joined.bin")).unwrap(),
        whole
    );
    assert_eq!(done.size, whole.len() as u64);
    assert!(info.done && info.concat == fallback_engine::Concat::Final);
    assert_eq!(info.parts, [ia.clone(), ib.clone()]);
    assert_eq!(s.upload(&info.id).unwrap().offset, whole.len() as u64);
    // The partials are consumed.
    assert!(matches!(s.upload(&ia), Err(Error::UnknownUpload)));
    assert!(matches!(s.upload(&ib), Err(Error::UnknownUpload)));
}

#[test]
fn concatenation_refuses_foreign_missing_unfinished_and_whole_uploads() {
    let (dir, s) = storage();
    let a = partial(&s, b"abc");
    let bobs = s.create_partial("bob", 1, vec![]).unwrap().id;
    let unfinished = s.create_partial("alice", 10, vec![]).unwrap().id;
    let whole = s.create_upload(new("/in/x", 3)).unwrap().id;
    let missing = UploadId::parse("0123456789abcdef0123456789abcdef").unwrap();
    let cases: [(&UploadId, Is); 4] = [
        (&bobs, |e| matches!(e, Error::NotOwner)),
        (&missing, |e| matches!(e, Error::UnknownUpload)),
        (&unfinished, |e| matches!(e, Error::NotConcatenable(_))),
        (&whole, |e| matches!(e, Error::NotConcatenable(_))),
    ];
    for (bad, is) in cases {
        let e = s
            .concatenate(&[a.clone(), bad.clone()], final_to("/in/out.bin"))
            .unwrap_err();
        assert!(is(&e), "{bad}: {e:?}");
        assert!(!dir.path().join("in/out.bin").exists());
    }
    // A digest that does not match: no file, and the partial is still there to retry.
    // More than the limit: refused before anything is copied.
    assert!(matches!(
        s.concatenate(std::slice::from_ref(&a), new("/in/out.bin", 2)),
        Err(Error::Limit(_))
    ));
    let mut n = final_to("/in/out.bin");
    n.expected_sha256 = Some([9u8; 32]);
    assert!(matches!(
        s.concatenate(std::slice::from_ref(&a), n),
        Err(Error::ChecksumMismatch)
    ));
    assert!(!dir.path().join("in/out.bin").exists());
    assert!(s.upload(&a).unwrap().done || s.upload(&a).unwrap().offset == 3);
    s.concatenate(&[a], final_to("/in/out.bin")).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("in/out.bin")).unwrap(),
        b"abc"
    );
}

/// A listing of many folders holds one directory handle at a time: whole under a limit
/// far below the folder count, and an error (never a shorter listing) when even that
/// cannot be had. (nextest runs each test in its own process, so the limit is this
/// test's alone.)
#[test]
fn manifests_are_whole_under_a_low_descriptor_limit_or_fail() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let (dir, s) = storage();
    for i in 0..300 {
        let d = dir.path().join(format!("t/d{i:03}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("f"), b"x").unwrap();
    }
    // The limit bounds descriptor numbers, and new ones take the lowest free number: the
    // limit leaving exactly `k` free numbers below it.
    let room = |k: usize| {
        let open: std::collections::BTreeSet<usize> = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        let mut free = 0;
        let mut n = 0;
        // The listing's own descriptor is closed by now: its number counts as free.
        let listing = *open.iter().max().unwrap_or(&0);
        while free < k || open.contains(&n) && n != listing {
            if !open.contains(&n) || n == listing {
                free += 1;
            }
            n += 1;
        }
        n
    };
    let saved = getrlimit(Resource::Nofile);
    let limit = |n: usize| {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(n as u64),
                maximum: saved.maximum,
            },
        )
        .unwrap();
    };
    // Eight free descriptors for 300 folders: the whole listing.
    limit(room(8));
    let whole = s.manifest(&p("/t"), 10_000).map(|m| m.len());
    // None: an error, not a listing without the folders it could not open.
    limit(room(0));
    let starved = s.manifest(&p("/t"), 10_000).map(|m| m.len());
    setrlimit(Resource::Nofile, saved).unwrap();
    assert_eq!(whole.unwrap(), 600);
    assert!(matches!(starved, Err(Error::Io(_))), "{starved:?}");
}

#[test]
fn published_files_and_new_directories_get_the_exact_modes() {
    use std::os::unix::fs::PermissionsExt as _;
    let (dir, s) = storage();
    let mode = |p: &str| {
        std::fs::metadata(dir.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    // Modes the umask (022 or 002) would never give: set exactly.
    let modes = Modes {
        file: Some(0o660),
        dir: Some(0o2770),
    };
    let mut w = s
        .put(
            "alice",
            &p("/new/deeper/f.txt"),
            Some(2),
            None,
            false,
            modes,
        )
        .unwrap();
    w.write(b"hi").unwrap();
    w.finish(true).unwrap();
    assert_eq!(mode("new/deeper/f.txt"), 0o660);
    assert_eq!(mode("new"), 0o2770);
    assert_eq!(mode("new/deeper"), 0o2770);
    // A directory that already exists keeps its mode.
    std::fs::set_permissions(
        dir.path().join("new"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let mut info = new("/new/g.txt", 1);
    info.modes = Modes {
        file: Some(0o400),
        dir: Some(0o777),
    };
    let up = s.create_upload(info).unwrap();
    let mut w = s.writer(&up.id, "alice", 0, None).unwrap();
    w.write(b"x").unwrap();
    w.finish(false).unwrap();
    assert_eq!(mode("new/g.txt"), 0o400);
    assert_eq!(mode("new"), 0o700);
}

/// The per-user limit on uploads in progress holds across finished uploads (their
/// records are not counted), terminations, and uploads another instance sharing the
/// docroot created or finished: before a refusal the staging area is counted exactly.
/// (What another instance creates after this one last read the staging area is seen
/// at the next refusal or sweep.)
#[test]
fn uploads_in_progress_are_limited_per_user_exactly_at_the_limit() {
    const LIMIT: usize = 1000;
    let (dir, s) = storage();
    // Another instance on the same docroot has some of alice's uploads in progress.
    let other = Storage::open(dir.path(), Duration::from_hours(24)).unwrap();
    let mut theirs = Vec::new();
    for i in 0..10 {
        theirs.push(other.create_upload(new(&format!("/o/{i}"), 5)).unwrap().id);
    }
    // Finished uploads leave records; they are not in progress.
    for i in 0..3 {
        let info = s.create_upload(new(&format!("/done/{i}"), 1)).unwrap();
        let mut w = s.writer(&info.id, "alice", 0, None).unwrap();
        w.write(b"x").unwrap();
        assert!(w.finish(false).unwrap().completed.is_some());
    }
    let mut ours = Vec::new();
    let refused = loop {
        match s.create_upload(new(&format!("/a/{}", ours.len()), 5)) {
            Ok(info) => ours.push(info.id),
            Err(e) => break e,
        }
        assert!(ours.len() <= LIMIT, "the limit was not enforced");
    };
    assert!(matches!(refused, Error::Limit(_)), "{refused:?}");
    assert_eq!(ours.len() + theirs.len(), LIMIT, "counted exactly");
    // bob is not limited by alice's uploads.
    let mut bob = new("/b/0", 5);
    bob.user = "bob".into();
    s.create_upload(bob).unwrap();
    // One terminated here, one finished by the other instance: room for two.
    s.terminate(&ours.pop().unwrap(), "alice").unwrap();
    let id = theirs.pop().unwrap();
    let mut w = other.writer(&id, "alice", 0, None).unwrap();
    w.write(b"12345").unwrap();
    assert!(w.finish(false).unwrap().completed.is_some());
    s.create_upload(new("/a/again-1", 5)).unwrap();
    s.create_upload(new("/a/again-2", 5)).unwrap();
    assert!(matches!(
        s.create_upload(new("/a/again-3", 5)),
        Err(Error::Limit(_))
    ));
}
