//! tus clients nobody here wrote.

use std::process::Command;

use crate::{Server, make_file, sha256_file, upload_token};

/// tuspy (`pip install tuspy`), a Python tus client: uploads in 1 MiB chunks.
#[test]
fn tuspy_uploads_a_file() {
    let probe = Command::new("python3")
        .args(["-c", "import tusclient"])
        .output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "this test needs the tuspy package: python3 -m pip install tuspy \
         (cargo xtask ci installs it)"
    );
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
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(format!("{}/uploads", server.base(false)))
        .arg(&token)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tuspy failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        (5u64 << 20).to_string()
    );
    assert_eq!(
        sha256_file(&server.docroot().join("in/from-tuspy.bin")),
        sha256_file(&src)
    );
}
