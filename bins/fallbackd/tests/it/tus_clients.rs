//! tuspy (`pip install tuspy`), a Python tus client no one here wrote.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{Server, make_file, sha256_file, upload_token};

/// Runs a tuspy `script` with `sys.argv[1:]` = the server's tus endpoint, `token` and
/// `args`; returns what it printed.
pub(crate) fn tuspy(server: &Server, token: &str, script: &str, args: &[&Path]) -> String {
    let probe = Command::new("python3")
        .args(["-c", "import tusclient"])
        .output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "this test needs the tuspy package: python3 -m pip install tuspy \
         (cargo xtask ci installs it)"
    );
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(format!("{}/uploads", server.base(false)))
        .arg(token)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tuspy failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Uploads in 1 MiB chunks.
#[test]
fn tuspy_uploads_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let src = dir.path().join("from-tuspy.bin");
    make_file(&src, 5 << 20, 42);
    let token = upload_token("alice", "/in");
    let script = r#"
import sys
from tusclient import client
c = client.TusClient(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
u = c.uploader(sys.argv[3], chunk_size=1024 * 1024, metadata={"filename": "from-tuspy.bin"})
u.upload()
print(u.offset)
"#;
    let printed = tuspy(&server, &token, script, &[&src]);
    assert_eq!(printed, (5u64 << 20).to_string());
    assert_eq!(
        sha256_file(&server.docroot().join("in/from-tuspy.bin")),
        sha256_file(&src)
    );
}

/// `upload_checksum=True` sends `Upload-Checksum: sha1 ...` with each chunk.
#[test]
fn tuspy_with_chunk_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let src = dir.path().join("summed.bin");
    make_file(&src, (3 << 20) + 17, 5);
    let token = upload_token("alice", "/in");
    let script = r#"
import sys
from tusclient import client
c = client.TusClient(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
u = c.uploader(sys.argv[3], chunk_size=1024 * 1024, upload_checksum=True,
               metadata={"filename": "summed.bin"})
u.upload()
print(u.offset)
"#;
    tuspy(&server, &token, script, &[&src]);
    assert_eq!(
        sha256_file(&server.docroot().join("in/summed.bin")),
        sha256_file(&src)
    );
}

/// With its URL storage, the same upload run again once it is finished asks the server
/// (HEAD: 200, offset = length) and sends nothing more.
#[test]
fn tuspy_rerun_of_a_finished_upload_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let src = dir.path().join("again.bin");
    make_file(&src, (2 << 20) + 3, 6);
    let token = upload_token("alice", "/in");
    let store = dir.path().join("tuspy-urls.json");
    let script = r#"
import sys
from tusclient import client
from tusclient.storage import filestorage
c = client.TusClient(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
s = filestorage.FileStorage(sys.argv[4])
u = c.uploader(sys.argv[3], chunk_size=1024 * 1024, store_url=True, url_storage=s,
               metadata={"filename": "again.bin"})
u.upload()
print(u.url, u.offset)
"#;
    let first = tuspy(&server, &token, script, &[&src, &store]);
    let starts = |server: &Server| {
        server
            .log_values()
            .iter()
            .filter(|v| v["message"] == "transfer start" || v["message"] == "upload created")
            .count()
    };
    assert!(
        server.wait_for_log(Duration::from_secs(10), |v| v["message"]
            == "upload complete")
    );
    let before = starts(&server);
    let second = tuspy(&server, &token, script, &[&src, &store]);
    assert_eq!(first, second, "the same upload, finished");
    assert!(
        second.ends_with(&((2u64 << 20) + 3).to_string()),
        "{second}"
    );
    assert_eq!(starts(&server), before, "the re-run sent the file again");
    assert_eq!(
        sha256_file(&server.docroot().join("in/again.bin")),
        sha256_file(&src)
    );
}

/// An aspera.conf with `<overwrite>deny</overwrite>` and an exact `file_create_mode`,
/// as tuspy meets them: the new file arrives with the mode; a second upload of the same
/// name is refused at creation (409, which tuspy reports), and the file stays whole.
#[test]
fn tuspy_meets_overwrite_deny_and_create_modes() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("fixture.conf");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/conf/applied/overwrite-deny.conf"),
    )
    .unwrap()
    .replace(
        "<overwrite>deny</overwrite>",
        "<overwrite>deny</overwrite><file_create_mode>0640</file_create_mode>",
    );
    std::fs::write(&conf, text).unwrap();
    let server = Server::start_fixture_file(dir.path(), &conf);
    let (first, second) = (dir.path().join("first.bin"), dir.path().join("second.bin"));
    make_file(&first, (2 << 20) + 3, 7);
    make_file(&second, 1 << 20, 8);
    let token = upload_token("alice", "/");
    let script = r#"
import sys
from tusclient import client
from tusclient.exceptions import TusCommunicationError
c = client.TusClient(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
try:
    u = c.uploader(sys.argv[3], chunk_size=1024 * 1024, metadata={"filename": "same.bin"})
    u.upload()
    print("uploaded", u.offset)
except TusCommunicationError as e:
    print("refused", e.status_code)
"#;
    assert_eq!(
        tuspy(&server, &token, script, &[&first]),
        format!("uploaded {}", (2u64 << 20) + 3)
    );
    let stored = server.docroot().join("same.bin");
    assert_eq!(
        std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert_eq!(tuspy(&server, &token, script, &[&second]), "refused 409");
    assert_eq!(sha256_file(&stored), sha256_file(&first));
}
