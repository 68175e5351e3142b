//! A full disk for real: the docroot is a small tmpfs. The upload that does not fit gets
//! 507 with a clear message, its offset stays the last acknowledged one, and it resumes
//! once space is freed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Server, make_file, sha256_file, tus_create, tus_offset, tus_patch_rest, upload_token};

/// A tmpfs mounted at a path, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
#[ignore = "mounts a tmpfs: needs root (CAP_SYS_ADMIN); cargo xtask ci runs it when it is root"]
fn a_full_disk_answers_507_keeps_the_offset_and_resumes_after_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let _fs = Tmpfs::mount(&dir.path().join("data"), "8m")
        .expect("cannot mount a tmpfs: run this test as root (CAP_SYS_ADMIN)");
    let server = Server::start(dir.path());
    let docroot = server.docroot();
    // 5 MiB taken, 6 MiB to upload, 8 MiB in all.
    let filler = docroot.join("filler.bin");
    make_file(&filler, 5 << 20, 1);
    let src = dir.path().join("upload.bin");
    make_file(&src, 6 << 20, 2);
    let token = upload_token("alice", "/in");
    let url = tus_create(&server, &token, "big.bin", 6 << 20);

    let got = tus_patch_rest(&url, &token, &src, 0);
    assert_eq!(got.status, 507, "{got:?}");
    let body = got.text();
    assert!(body.contains("disk is full"), "{body}");
    assert!(body.contains("resume"), "{body}");
    assert_eq!(
        tus_offset(&url, &token),
        0,
        "the refused bytes were counted"
    );
    assert!(!docroot.join("in/big.bin").exists());
    assert!(server.wait_for_log(std::time::Duration::from_secs(5), |v| {
        v["status"] == 507
    }));

    // Space freed: the same upload resumes from its offset and completes.
    std::fs::remove_file(&filler).unwrap();
    let got = tus_patch_rest(&url, &token, &src, 0);
    assert_eq!(got.status, 204, "{got:?}");
    assert_eq!(sha256_file(&docroot.join("in/big.bin")), sha256_file(&src));
    // Nothing left in staging but the finished upload's record (no bytes).
    let staged: Vec<_> = std::fs::read_dir(docroot.join(".fallback/uploads"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_none_or(|x| x != "done"))
        .collect();
    assert!(staged.is_empty(), "{staged:?}");
}
