//! The README's main job: `fallbackd` with no configuration prints commands that work
//! as printed.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn the_embedded_default_works_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.md"), "# hello from the README\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fallbackd"))
        .args(["--http-port", "0"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut banner = Vec::new();
    while banner
        .iter()
        .filter(|l: &&String| l.trim_start().starts_with("curl "))
        .count()
        < 3
    {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("no banner within 20 s");
        banner.push(line);
    }
    let text = banner.join("\n");
    assert!(text.contains("upload token (24 h):   fbt1_"), "{text}");
    assert!(
        text.contains("FASP URL:              fasp://fallback@127.0.0.1:"),
        "{text}"
    );
    let url_line = banner.iter().find(|l| l.starts_with("FASP URL:")).unwrap();
    let url =
        fallback_url::FaspUrl::parse(url_line.trim_start_matches("FASP URL:").trim()).unwrap();
    assert!(
        url.fallback_problems().is_empty(),
        "{:?}",
        url.fallback_problems()
    );
    let curls: Vec<&String> = banner
        .iter()
        .filter(|l| l.trim_start().starts_with("curl "))
        .collect();
    let run = |cmd: &str| {
        let out = Command::new("sh")
            .args(["-c", &format!("{} -sS --max-time 30", cmd.trim())])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run(curls[0]).starts_with("stored 24 bytes"));
    assert_eq!(run(curls[1]), "# hello from the README\n");
    let listing: serde_json::Value = serde_json::from_str(&run(curls[2])).unwrap();
    assert_eq!(listing["entries"][0]["path"], "README.md");
    // The key lives in the reserved folder, which no request reaches.
    assert!(
        dir.path()
            .join("fallback-data/.fallback/token.key")
            .exists()
    );
    let _ = child.kill();
    let _ = child.wait();
}
