//! `cargo xtask bench`'s peer comparison: fallbackd against the servers users would
//! otherwise pick, on loopback, in one run, alternating ours and the peer run by run.
//! Prints a table of ratios (ours / peer, min-median-max) and writes
//! `target/bench/results.json`.
//!
//! Arguments: `--quick` (256 MiB files, 3 runs, 3 s load tests), `--check` (exit 1 if
//! a scenario failed to run; never because of a ratio) and `--only LIST` (sections to
//! run, comma-separated: download, upload, small, proxy, client, memory, s3, gateway;
//! all by default).

// A measuring tool prints; a failure is a panic or an error line with the reason.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]
#![allow(clippy::cast_precision_loss, clippy::many_single_char_names)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fallback_e2e::{Kind, Proxy, free_port};
use fallback_testkit::{Server, download_token, make_file, upload_token};

struct Settings {
    size: u64,
    runs: usize,
    load_secs: u64,
}

/// One comparison: rates of ours and of the peer, run by run, and the server CPU each
/// run cost (user + system, per GiB, request or file; empty when not measured).
struct Comparison {
    scenario: String,
    peer: String,
    unit: &'static str,
    ours: Vec<f64>,
    theirs: Vec<f64>,
    cpu_unit: &'static str,
    ours_cpu: Vec<f64>,
    theirs_cpu: Vec<f64>,
}

impl Comparison {
    fn new(scenario: &str, peer: &str, unit: &'static str) -> Comparison {
        Comparison {
            scenario: scenario.to_owned(),
            peer: peer.to_owned(),
            unit,
            ours: Vec::new(),
            theirs: Vec::new(),
            cpu_unit: match unit {
                "GB/s" => "CPU s/GiB",
                "req/s" => "CPU us/req",
                _ => "CPU ms/file",
            },
            ours_cpu: Vec::new(),
            theirs_cpu: Vec::new(),
        }
    }

    /// CPU seconds for `amount` (GB, requests or files) in this comparison's CPU unit.
    fn per_unit(&self, cpu: f64, amount: f64) -> f64 {
        match self.unit {
            "GB/s" => cpu / (amount * 1e9 / f64::from(1u32 << 30)),
            "req/s" => cpu * 1e6 / amount,
            _ => cpu * 1e3 / amount,
        }
    }
}

/// CPU seconds (user + system) used so far by process `pid` and every live process
/// below it (nginx's and Apache's workers are the master's children).
fn cpu_secs(pid: u32) -> f64 {
    // /proc reports in USER_HZ, which is 100 on Linux.
    const TICKS: f64 = 100.0;
    let mut ticks = 0u64;
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat"))
            && let Some((_, rest)) = stat.rsplit_once(')')
        {
            // Fields after the command: state is 0, utime 11, stime 12.
            let f: Vec<&str> = rest.split_whitespace().collect();
            ticks += f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                let children =
                    std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                todo.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
    }
    ticks as f64 / TICKS
}

/// Runs `f` and returns its result with the CPU seconds `pid` (and its children)
/// spent meanwhile; 0 when `pid` is `None`.
fn with_cpu<T>(pid: Option<u32>, f: impl FnOnce() -> T) -> (T, f64) {
    let before = pid.map_or(0.0, cpu_secs);
    let out = f();
    let after = pid.map_or(0.0, cpu_secs);
    (out, after - before)
}

/// A run of one side: what to time, and the server process whose CPU it costs.
type Run<'a> = (Option<u32>, &'a mut dyn FnMut() -> Result<f64, String>);

/// One configuration of a peer in a calibration: its name, its server process, the
/// run.
type Candidate<'a> = (
    String,
    Option<u32>,
    Box<dyn FnMut() -> Result<f64, String> + 'a>,
);

/// The peer configuration that is best for this scenario on this machine: each
/// candidate run twice, alternating, after a `sync`; the one with the shortest run
/// kept (its runs are not counted in the comparison).
fn calibrate<'a>(
    scenario: &str,
    mut candidates: Vec<Candidate<'a>>,
) -> Result<Candidate<'a>, String> {
    let mut best = vec![f64::INFINITY; candidates.len()];
    for _ in 0..2 {
        for (i, (name, _, run)) in candidates.iter_mut().enumerate() {
            settle();
            let t = run().map_err(|e| format!("{scenario} vs {name} (calibration): {e}"))?;
            best[i] = best[i].min(t);
        }
    }
    let i = (0..best.len())
        .min_by(|&a, &b| best[a].total_cmp(&best[b]))
        .unwrap_or(0);
    eprintln!(
        "calibration, {scenario}: {} (best runs: {})",
        candidates[i].0,
        candidates
            .iter()
            .zip(&best)
            .map(|((n, _, _), t)| format!("{n} {t:.3} s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(candidates.swap_remove(i))
}

impl Comparison {
    fn ratios(&self) -> Vec<f64> {
        let mut r: Vec<f64> = self
            .ours
            .iter()
            .zip(&self.theirs)
            .map(|(o, t)| o / t)
            .collect();
        r.sort_by(f64::total_cmp);
        r
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs curl, the body to /dev/null; returns seconds; `Err` with curl's message.
fn curl(args: &[&str]) -> Result<f64, String> {
    curl_into("/dev/null", args)
}

/// The HTTP version curl spoke for `args` (`1.1`, `2`), the body discarded.
fn http_version(args: &[&str]) -> String {
    Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_version}"])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Runs curl writing the body to `out`; returns seconds.
fn curl_into(out: &str, args: &[&str]) -> Result<f64, String> {
    let start = Instant::now();
    let out = Command::new("curl")
        .args(["-sS", "--fail", "-o", out, "--max-time", "600"])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Alternates `ours` and `theirs` `runs` times; rates = size / seconds (GB/s).
fn alternate(
    s: &Settings,
    scenario: &str,
    peer: &str,
    ours: Run<'_>,
    theirs: Run<'_>,
) -> Result<Comparison, String> {
    alternate_by(
        s.runs,
        scenario,
        peer,
        ("GB/s", s.size as f64 / 1e9),
        ours,
        theirs,
    )
}

/// Alternates `ours` and `theirs` `runs` times; rates = `amount` (in `unit` seconds)
/// / seconds, and each side's server CPU per unit of `amount`.
fn alternate_by(
    runs: usize,
    scenario: &str,
    peer: &str,
    (unit, amount): (&'static str, f64),
    (ours_pid, ours): Run<'_>,
    (theirs_pid, theirs): Run<'_>,
) -> Result<Comparison, String> {
    let mut c = Comparison::new(scenario, peer, unit);
    let failed = |side: &'static str| move |e: String| format!("{scenario} vs {peer}, {side}: {e}");
    for _ in 0..runs {
        settle();
        let (t, cpu) = with_cpu(ours_pid, &mut *ours);
        c.ours.push(amount / t.map_err(failed("fallbackd"))?);
        if ours_pid.is_some() {
            c.ours_cpu.push(c.per_unit(cpu, amount));
        }
        settle();
        let (t, cpu) = with_cpu(theirs_pid, &mut *theirs);
        c.theirs.push(amount / t.map_err(failed("the peer"))?);
        if theirs_pid.is_some() {
            c.theirs_cpu.push(c.per_unit(cpu, amount));
        }
    }
    Ok(c)
}

/// Calibrates the peer among `candidates`, then alternates `ours` with the one kept
/// (named in the table with its configuration).
fn against_best(
    s: &Settings,
    scenario: &str,
    ours: Run<'_>,
    candidates: Vec<Candidate<'_>>,
) -> Result<Comparison, String> {
    let (name, pid, mut run) = calibrate(scenario, candidates)?;
    alternate(s, scenario, &name, ours, (pid, &mut *run))
}

/// The disk's durable write rate in GB/s: `dd` of `size` zero bytes to `path` with
/// `conv=fdatasync`, after a `sync`.
fn durable_write_gbps(path: &Path, size: u64) -> f64 {
    settle();
    let start = Instant::now();
    let ok = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", path.display()))
        .args(["bs=1M", &format!("count={}", size >> 20), "conv=fdatasync"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let secs = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(path);
    if ok { size as f64 / 1e9 / secs } else { 0.0 }
}

/// Writes back every dirty page before a timed run (`sync`, untimed), so one side's
/// unwritten bytes (curl and nginx do not fsync) do not slow the other side's disk.
fn settle() {
    let _ = Command::new("sync").status();
}

/// Runs the `fallback` CLI (release build) quietly, resume state in `state`; returns
/// seconds, or its error lines.
fn cli(args: &[&str], state: &Path) -> Result<f64, String> {
    let start = Instant::now();
    let out = Command::new(fallback_testkit::fallback_bin())
        .args(args)
        .arg("--quiet")
        .arg("--state-dir")
        .arg(state)
        .output()
        .map_err(|e| format!("fallback: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "fallback {}: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(start.elapsed().as_secs_f64())
}

/// curl with a config file of many transfers, run in parallel (`--parallel`, its best
/// for many small files); returns seconds.
fn curl_parallel(config: &Path) -> Result<f64, String> {
    let start = Instant::now();
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--parallel", "--parallel-max", "16"])
        .args(["--create-dirs", "-K"])
        .arg(config)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Downloads at once in the memory section.
const CONCURRENT_DOWNLOADS: usize = 64;

/// Files in the client's tree benchmark.
const TREE_FILES: usize = 2000;

/// A curl config of one transfer per line pair, from `line` for each relative path.
fn curl_config(rels: &[String], line: impl Fn(&str) -> String) -> String {
    rels.iter().fold(String::new(), |mut out, r| {
        out.push_str(&line(r));
        out
    })
}

/// A tree of `files` files of 4 KiB under `root`, 100 per folder; returns the
/// relative paths.
fn make_tree(root: &Path, files: usize) -> Vec<String> {
    (0..files)
        .map(|i| {
            let rel = format!("d{:02}/f{i:04}.bin", i / 100);
            let p = root.join(&rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            make_file(&p, 4096, i as u64);
            rel
        })
        .collect()
}

/// The durable bound for a tree of small files on this disk: what any server that makes
/// each file durable before it answers must at least do, with no network, no HTTP and
/// no hashing: per file (16 threads, like the client's `--parallel 16`), write it in a
/// staging folder, fsync it, rename it into its folder, fsync that folder. Seconds for
/// the whole tree into `dest`.
fn durable_tree(src: &Path, rels: &[String], dest: &Path) -> Result<f64, String> {
    use std::io::Write as _;
    let staging = dest.join(".staging");
    std::fs::create_dir_all(&staging).map_err(|e| e.to_string())?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    settle();
    let start = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..16)
            .map(|_| {
                scope.spawn(|| -> std::io::Result<()> {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(rel) = rels.get(i) else {
                            return Ok(());
                        };
                        let bytes = std::fs::read(src.join(rel))?;
                        let tmp = staging.join(format!("{i}.part"));
                        let mut f = std::fs::File::create(&tmp)?;
                        f.write_all(&bytes)?;
                        f.sync_all()?;
                        let to = dest.join(rel);
                        let folder = to.parent().unwrap();
                        std::fs::create_dir_all(folder)?;
                        std::fs::rename(&tmp, &to)?;
                        std::fs::File::open(folder)?.sync_all()?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().unwrap())
            .map_err(|e| format!("durable tree: {e}"))
    })?;
    Ok(start.elapsed().as_secs_f64())
}

/// Requests per second of `wrk` against `url` with 64 connections.
fn wrk(url: &str, header: Option<&str>, secs: u64) -> Result<f64, String> {
    let mut c = Command::new("wrk");
    c.args(["-t2", "-c64", &format!("-d{secs}s"), "--latency"]);
    if let Some(h) = header {
        c.args(["-H", h]);
    }
    let out = c
        .arg(url)
        .output()
        .map_err(|e| format!("wrk: {e} (apt-get install wrk)"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") {
        return Err(format!("wrk saw errors: {text}"));
    }
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("wrk output without Requests/sec: {text}"))
}

fn proc_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn tools_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-tools/bin")
}

/// dufs serving `root` on a free port, with uploads allowed.
fn start_dufs(root: &Path) -> Option<(std::process::Child, u16)> {
    let bin = tools_dir().join("dufs");
    if !bin.exists() {
        return None;
    }
    let port = free_port();
    let child = Command::new(bin)
        .arg(root)
        .args(["-b", "127.0.0.1", "-p", &port.to_string(), "-A"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    wait_port(port);
    Some((child, port))
}

/// rustus (a tus server) storing under `dir`, on a free port.
fn start_rustus(dir: &Path) -> Option<(std::process::Child, u16)> {
    let bin = tools_dir().join("rustus");
    if !bin.exists() {
        return None;
    }
    let port = free_port();
    std::fs::create_dir_all(dir.join("data")).ok()?;
    std::fs::create_dir_all(dir.join("info")).ok()?;
    let child = Command::new(bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--info-dir")
        .arg(dir.join("info"))
        .args(["--max-body-size", "4294967296"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    wait_port(port);
    Some((child, port))
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// tus upload with curl: POST (with the whole file's SHA-256, which our server checks
/// before the file appears), then one PATCH with the file.
fn tus_upload(
    create: &str,
    token: Option<&str>,
    file: &Path,
    size: u64,
    meta: &str,
) -> Result<f64, String> {
    let start = Instant::now();
    let mut post = Command::new("curl");
    post.args(["-sS", "--fail", "-D", "-", "-o", "/dev/null", "-X", "POST"])
        .args([
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            &format!("Upload-Length: {size}"),
        ])
        .args(["-H", &format!("Upload-Metadata: {meta}")]);
    if let Some(t) = token {
        post.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = post.arg(create).output().map_err(|e| e.to_string())?;
    let head = String::from_utf8_lossy(&out.stdout);
    let loc = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_owned())
        })
        .ok_or_else(|| {
            format!(
                "{create}: no Location: {head} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let url = if loc.starts_with("http") {
        loc
    } else {
        let origin: String = create.split('/').take(3).collect::<Vec<_>>().join("/");
        format!("{origin}{loc}")
    };
    let mut patch = Command::new("curl");
    patch
        .args(["-sS", "--fail", "-o", "/dev/null", "-X", "PATCH"])
        .args([
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            "Content-Type: application/offset+octet-stream",
        ])
        .args(["-H", "Upload-Offset: 0", "-T"])
        .arg(file);
    if let Some(t) = token {
        patch.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = patch.arg(&url).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(start.elapsed().as_secs_f64())
}

/// An upload through the IBM HTTP Gateway's v2 WebSocket from a native client, as its
/// clients drive it: 64,000-byte binary frames between two `slice_upload` messages,
/// each frame acknowledged with `end upload`. `window` frames may wait for their
/// acknowledgement: 1 is IBM's SDK (stop-and-wait), more is aspera-cli's default
/// (it sends without waiting). Native, so the time is the protocol's and the
/// server's, not node's WebSocket.
fn gateway_v2_upload(
    host: std::net::SocketAddr,
    token: &str,
    dest_root: &str,
    file: &Path,
    name: &str,
    window: usize,
) -> Result<f64, String> {
    use std::io::Read as _;
    use tungstenite::Message;
    const SLICE: usize = 64_000;
    let start = Instant::now();
    let err = |e: tungstenite::Error| e.to_string();
    let stream = std::net::TcpStream::connect(host).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut ws, _) =
        tungstenite::client::client(format!("ws://{host}/aspera/http-gwy/v2/upload"), stream)
            .map_err(|e| e.to_string())?;
    let ack = |ws: &mut tungstenite::WebSocket<std::net::TcpStream>| loop {
        match ws.read().map_err(err)? {
            Message::Text(t) if t.as_str() == "end upload" => return Ok(()),
            Message::Text(t) if t.as_str() == "end_slice_upload" => {}
            Message::Text(t) => return Err(format!("the gateway said {t}")),
            Message::Close(c) => return Err(format!("the gateway closed: {c:?}")),
            _ => {}
        }
    };
    let spec = serde_json::json!({"transfer_spec": {"direction": "send",
        "remote_host": host.ip().to_string(), "token": token, "destination_root": dest_root,
        "paths": [{"source": name}]}});
    ws.send(Message::text(spec.to_string())).map_err(err)?;
    ack(&mut ws)?;
    let mut f = std::fs::File::open(file).map_err(|e| e.to_string())?;
    let size = f.metadata().map_err(|e| e.to_string())?.len();
    let total = size.div_ceil(SLICE as u64);
    let marker = serde_json::json!({"slice_upload": {"name": name,
        "type": "application/octet-stream", "size": size, "slice": 0,
        "total_slices": total, "fileIndex": 0}})
    .to_string();
    let mut buf = vec![0u8; SLICE];
    let mut waiting = 0;
    for i in 0..total {
        let n = if i + 1 == total {
            usize::try_from(size - i * SLICE as u64).unwrap_or(SLICE)
        } else {
            SLICE
        };
        f.read_exact(&mut buf[..n]).map_err(|e| e.to_string())?;
        if i == 0 {
            ws.send(Message::text(marker.clone())).map_err(err)?;
        }
        ws.send(Message::binary(buf[..n].to_vec())).map_err(err)?;
        if i + 1 == total {
            ws.send(Message::text(marker.clone())).map_err(err)?;
        }
        waiting += 1;
        if waiting >= window {
            ack(&mut ws)?;
            waiting -= 1;
        }
    }
    // The last acknowledgement means the file is at its path.
    while waiting > 0 {
        ack(&mut ws)?;
        waiting -= 1;
    }
    let _ = ws.close(None);
    Ok(start.elapsed().as_secs_f64())
}

/// IBM's SDK itself (unmodified, under node: `bins/fallbackd/tests/clients`) uploading
/// `file`; the seconds from its `upload()` to its "completed".
fn gateway_sdk_upload(
    gateway: &str,
    version: &str,
    token: &str,
    dest_root: &str,
    file: &Path,
    name: &str,
) -> Result<f64, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bins/fallbackd/tests/clients");
    let out = Command::new("node")
        .current_dir(&dir)
        .args([
            "--experimental-websocket",
            "gateway.mjs",
            "bench-upload",
            gateway,
            version,
            token,
            dest_root,
        ])
        .arg(file)
        .arg(name)
        .output()
        .map_err(|e| format!("node: {e}"))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "IBM's SDK under node: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    v["secs"]
        .as_f64()
        .ok_or_else(|| format!("IBM's SDK under node: {v}"))
}

/// The IBM HTTP Gateway API against fallbackd's own protocol on the same server:
/// uploads (v2 from a native client and from IBM's SDK under node) against tus, and
/// downloads (one file through a download id, and as a zip) against `GET /files`.
fn gateway_section(s: &Settings, server: &Server, work: &Path) -> Vec<Result<Comparison, String>> {
    let mut out = Vec::new();
    let ours_pid = Some(server.pid());
    let src = work.join("gateway.bin");
    make_file(&src, s.size, 7);
    let digest = sha256_hex(&src);
    let up = upload_token("alice", "/gw");
    let gateway = format!("http://{}/aspera/http-gwy", server.http);
    let clear = || {
        let _ = std::fs::remove_dir_all(server.docroot().join("gw"));
    };
    let mut k = 0;
    let mut tus = || {
        clear();
        k += 1;
        let meta = format!(
            "filename {},sha256 {}",
            b64(&format!("tus-{k}.bin")),
            b64(&digest)
        );
        tus_upload(
            &format!("http://{}/uploads", server.http),
            Some(&up),
            &src,
            s.size,
            &meta,
        )
    };
    let mut pipelined = || {
        clear();
        gateway_v2_upload(server.http, &up, "/gw", &src, "pipelined.bin", 32)
    };
    out.push(alternate(
        s,
        "upload, Gateway v2 (aspera-cli's pipelining, native client)",
        "fallbackd tus (curl)",
        (ours_pid, &mut pipelined),
        (ours_pid, &mut tus),
    ));
    let mut stop_and_wait = || {
        clear();
        gateway_v2_upload(server.http, &up, "/gw", &src, "saw.bin", 1)
    };
    let mut tus3 = || {
        clear();
        tus_upload(
            &format!("http://{}/uploads", server.http),
            Some(&up),
            &src,
            s.size,
            &format!("filename {}", b64("tus3.bin")),
        )
    };
    out.push(alternate(
        s,
        "upload, Gateway v2 (IBM SDK's stop-and-wait, native client)",
        "fallbackd tus (curl)",
        (ours_pid, &mut stop_and_wait),
        (ours_pid, &mut tus3),
    ));
    // The SDK under node holds the file in one Buffer (at most 2 GiB): 1 GiB at most.
    let sdk_size = s.size.min(1 << 30);
    let sdk_src = work.join("gateway-sdk.bin");
    make_file(&sdk_src, sdk_size, 8);
    let mut sdk = || {
        clear();
        gateway_sdk_upload(&gateway, "v2", &up, "/gw", &sdk_src, "sdk.bin")
    };
    let mut tus_sdk = || {
        clear();
        tus_upload(
            &format!("http://{}/uploads", server.http),
            Some(&up),
            &sdk_src,
            sdk_size,
            &format!("filename {}", b64("tus-sdk.bin")),
        )
    };
    out.push(alternate_by(
        s.runs,
        "upload, Gateway v2 (IBM's SDK under node)",
        "fallbackd tus (curl)",
        ("GB/s", sdk_size as f64 / 1e9),
        (ours_pid, &mut sdk),
        (ours_pid, &mut tus_sdk),
    ));
    let _ = std::fs::remove_file(&sdk_src);
    clear();
    // Downloads: the file the other sections use.
    let down = download_token("alice", &["/"]);
    let id_for = |zip: bool| -> Result<String, String> {
        let body = serde_json::json!({"transfer_spec": {"direction": "receive",
            "remote_host": "127.0.0.1", "token": format!("Bearer {down}"),
            "paths": [{"source": "/big.bin"}], "zip_required": zip}});
        let out = Command::new("curl")
            .args([
                "-sS",
                "--fail",
                "-H",
                "Content-Type: application/json",
                "-d",
            ])
            .arg(body.to_string())
            .arg(format!("{gateway}/v1/download"))
            .output()
            .map_err(|e| e.to_string())?;
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("POST /v1/download: {e}"))?;
        v["transfer_spec_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("POST /v1/download: {v}"))
    };
    let auth = format!("Authorization: Bearer {down}");
    let plain = format!("http://{}/files/big.bin", server.http);
    for (zip, scenario) in [
        (false, "download, Gateway /v1/download/{id} (curl)"),
        (true, "download, Gateway zip of the file (curl)"),
    ] {
        let mut ours = || {
            let id = id_for(zip)?;
            curl(&[&format!("{gateway}/v1/download/{id}")])
        };
        out.push(alternate(
            s,
            scenario,
            "fallbackd GET /files (curl)",
            (ours_pid, &mut ours),
            (ours_pid, &mut || curl(&["-H", &auth, &plain])),
        ));
    }
    out
}

fn sha256_hex(path: &Path) -> String {
    fallback_testkit::sha256_file(path)
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// What the object-storage section measured.
#[derive(Default)]
struct S3Bench {
    comparisons: Vec<Result<Comparison, String>>,
    /// The file size, bytes (0: not run).
    size: u64,
    /// fallbackd's peak RSS over its uploads.
    peak_kib: u64,
}

/// rclone against moto at `endpoint`, as the remote `moto:` (configured by the
/// environment, so no config file is read or written).
fn rclone(endpoint: &str, args: &[&str], out: Option<&Path>) -> Result<f64, String> {
    let start = Instant::now();
    let stdout = match out {
        Some(p) => Stdio::from(std::fs::File::create(p).map_err(|e| e.to_string())?),
        None => Stdio::null(),
    };
    let got = Command::new("rclone")
        .args(args)
        // rclone's AWS SDK refuses a custom CA bundle with its own transport; the
        // endpoint is plain HTTP on loopback anyway.
        .env_remove("AWS_CA_BUNDLE")
        .env("RCLONE_CONFIG_MOTO_TYPE", "s3")
        .env("RCLONE_CONFIG_MOTO_PROVIDER", "Other")
        .env("RCLONE_CONFIG_MOTO_ENDPOINT", endpoint)
        .env("RCLONE_CONFIG_MOTO_ACCESS_KEY_ID", "AKIDBENCH")
        .env("RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY", "bench-secret")
        .env("RCLONE_CONFIG_MOTO_REGION", "us-east-1")
        .env("RCLONE_CONFIG_MOTO_FORCE_PATH_STYLE", "true")
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("rclone (apt-get install rclone): {e}"))?;
    if !got.status.success() {
        return Err(format!(
            "rclone {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&got.stderr).trim()
        ));
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Uploads and downloads through fallbackd on an `s3://` docroot against rclone
/// talking to the same bucket directly, both against moto's S3 server on loopback
/// (1 GiB, or 64 MiB with --quick), each rclone at its best of a few settings; and
/// fallbackd's peak RSS over its uploads.
fn s3_section(s: &Settings, quick: bool) -> S3Bench {
    let size: u64 = if quick { 64 << 20 } else { 1 << 30 };
    let runs = s.runs;
    let moto = fallback_testkit::Moto::start();
    moto.create_bucket("bench");
    let endpoint = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let docroot = format!(
        "s3://AKIDBENCH:bench-secret@{}/bench/fb?allow-http=true",
        endpoint.trim_start_matches("http://")
    );
    let server = Server::start_docroot(dir.path(), &docroot, 0, &[]);
    let pid = Some(server.pid());
    let src = dir.path().join("s3.bin");
    make_file(&src, size, 10);
    let src_s = src.to_str().unwrap().to_owned();
    let up = format!("Authorization: Bearer {}", upload_token("alice", "/up"));
    let down = format!(
        "Authorization: Bearer {}",
        download_token("alice", &["/up"])
    );
    let url = format!("http://{}/files/up/s3.bin", server.http);
    let at = Settings {
        size,
        runs,
        load_secs: s.load_secs,
    };
    let mut comparisons = Vec::new();
    let mut put = || curl(&["-T", &src_s, "-H", &up, &url]);
    // rclone's own checksum (an MD5 of the file before it sends) is off in one
    // candidate: fallbackd hashes as the bytes pass, rclone would read the file twice.
    let uploads: Vec<Candidate<'_>> = [
        ("rclone (4 streams, 5 MiB chunks)", vec![]),
        (
            "rclone (4 streams, 16 MiB chunks, no MD5)",
            vec!["--s3-chunk-size", "16M", "--s3-disable-checksum"],
        ),
        (
            "rclone (8 streams, 8 MiB chunks, no MD5)",
            vec![
                "--s3-upload-concurrency",
                "8",
                "--s3-chunk-size",
                "8M",
                "--s3-disable-checksum",
            ],
        ),
    ]
    .into_iter()
    .map(|(name, flags)| {
        let (endpoint, src) = (endpoint.clone(), src_s.clone());
        let run = move || {
            // Sent every time (rclone skips a file the bucket already has), and not
            // read back with a HEAD after (rclone asks it with `versionId=null`,
            // which moto refuses with 400).
            let mut args = vec![
                "copyto",
                "--no-check-dest",
                "--s3-no-head",
                src.as_str(),
                "moto:bench/peer/s3.bin",
            ];
            args.extend(flags.iter().copied());
            rclone(&endpoint, &args, None)
        };
        (
            name.to_owned(),
            None,
            Box::new(run) as Box<dyn FnMut() -> Result<f64, String>>,
        )
    })
    .collect();
    let uploaded = against_best(&at, "S3 upload (PUT / rclone)", (pid, &mut put), uploads);
    let peak_kib = if uploaded.is_ok() {
        proc_kib(server.pid(), "VmHWM:")
    } else {
        0
    };
    comparisons.push(uploaded);
    // Both objects are there whatever the uploads above came to.
    let seeded = put().and_then(|_| {
        rclone(
            &endpoint,
            &["copyto", "--s3-no-head", &src_s, "moto:bench/peer/s3.bin"],
            None,
        )
    });
    if let Err(e) = seeded {
        comparisons.push(Err(format!("S3 download: the files to read: {e}")));
        return S3Bench {
            comparisons,
            size,
            peak_kib,
        };
    }
    let mut get = || curl(&["-H", &down, &url]);
    let downloads: Vec<Candidate<'_>> = [
        ("rclone cat", vec![]),
        ("rclone cat (64 MiB buffer)", vec!["--buffer-size", "64M"]),
    ]
    .into_iter()
    .map(|(name, flags)| {
        let endpoint = endpoint.clone();
        let run = move || {
            let mut args = vec!["cat", "moto:bench/peer/s3.bin"];
            args.extend(flags.iter().copied());
            rclone(&endpoint, &args, Some(Path::new("/dev/null")))
        };
        (
            name.to_owned(),
            None,
            Box::new(run) as Box<dyn FnMut() -> Result<f64, String>>,
        )
    })
    .collect();
    comparisons.push(against_best(
        &at,
        "S3 download (GET / rclone)",
        (pid, &mut get),
        downloads,
    ));
    S3Bench {
        comparisons,
        size,
        peak_kib,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let check = args.iter().any(|a| a == "--check");
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').map(str::to_owned).collect());
    let want = |section: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == section));
    let s = if quick {
        Settings {
            size: 256 << 20,
            runs: 3,
            load_secs: 3,
        }
    } else {
        Settings {
            size: 2 << 30,
            runs: 5,
            load_secs: 10,
        }
    };
    let work = tempfile::tempdir().unwrap();
    let server = Server::start_logging_to_file(work.path());
    let ours_pid = Some(server.pid());
    // Each peer in both its configurations for this 2-core machine (1 and 2 worker
    // processes, access log on as fallbackd logs every request); each scenario keeps
    // the better one. `proxy` (nginx, 2 workers) serves the client's trees and
    // `apache` (2 processes) the proxy-mode row.
    let nginx = [1, 2].map(|n| Proxy::start_with(Kind::Nginx, &[server.http.port()], Some(n)));
    let apaches = [1, 2].map(|n| Proxy::start_with(Kind::Apache, &[server.http.port()], Some(n)));
    let proxy = &nginx[1];
    let apache = &apaches[1];
    let big = server.docroot().join("big.bin");
    make_file(&big, s.size, 1);
    let small = server.docroot().join("small.bin");
    make_file(&small, 4096, 2);
    for p in nginx.iter().chain(&apaches) {
        for f in [&big, &small] {
            let dst = p.static_dir.join(f.file_name().unwrap());
            if std::fs::hard_link(f, &dst).is_err() {
                std::fs::copy(f, &dst).unwrap();
            }
        }
    }
    let workers = |p: &Proxy| match p.workers {
        Some(1) => "1 worker".to_owned(),
        Some(n) => format!("{n} workers"),
        None => "default workers".to_owned(),
    };
    let name = |kind: &str, p: &Proxy| format!("{kind} ({})", workers(p));
    let down = download_token("alice", &["/"]);
    let up = upload_token("alice", "/up");
    let auth_down = format!("Authorization: Bearer {down}");
    let auth_up = format!("Authorization: Bearer {up}");
    let ours_http = format!("http://{}/files/big.bin", server.http);
    let ours_https = format!("https://{}/files/big.bin", server.https);
    let tls = [
        "-k",
        "--tls-max",
        "1.3",
        "--tls13-ciphers",
        "TLS_AES_128_GCM_SHA256",
    ];
    let mut results: Vec<Comparison> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    // Errors name their scenario and peer.
    let mut record = |r: Result<Comparison, String>| match r {
        Ok(c) => results.push(c),
        Err(e) => {
            eprintln!("FAILED: {e}");
            failures.push(e);
        }
    };
    // Warm the page cache.
    let _ = curl(&[&format!(
        "http://127.0.0.1:{}/static/big.bin",
        proxy.http_port
    )]);
    let (mut disk_gbps, mut upload_disk_gbps) = (0.0, 0.0);
    let dufs = if want("download") || want("upload") {
        start_dufs(&server.docroot())
    } else {
        None
    };
    let mut rustus = None;
    let mut upload_peak_kib = 0;
    // A candidate peer: `kind` in `p`'s configuration running curl with `args`.
    let curl_on = |kind: &str, p: &Proxy, args: Vec<String>| -> Candidate<'_> {
        (
            name(kind, p),
            Some(p.pid()),
            Box::new(move || curl(&args.iter().map(String::as_str).collect::<Vec<_>>())),
        )
    };
    let strings = |v: &[&str]| v.iter().map(|&a| a.to_owned()).collect::<Vec<String>>();

    // 1. HTTP download.
    if want("download") {
        let static_url = |p: &Proxy| format!("http://127.0.0.1:{}/static/big.bin", p.http_port);
        for (kind, peers) in [("nginx", &nginx), ("Apache", &apaches)] {
            record(against_best(
                &s,
                "download HTTP",
                (ours_pid, &mut || curl(&["-H", &auth_down, &ours_http])),
                peers
                    .iter()
                    .map(|p| curl_on(kind, p, vec![static_url(p)]))
                    .collect(),
            ));
        }
        if let Some((child, port)) = &dufs {
            let url = format!("http://127.0.0.1:{port}/big.bin");
            record(alternate(
                &s,
                "download HTTP",
                "dufs",
                (ours_pid, &mut || curl(&["-H", &auth_down, &ours_http])),
                (Some(child.id()), &mut || curl(&[&url])),
            ));
        }

        // 2. HTTPS download, TLS 1.3 AES-128-GCM on both sides: HTTP/1.1, then HTTP/2
        //    (nginx with `http2` on its listener).
        for (scenario, version, url_of) in [
            (
                "download HTTPS HTTP/1.1",
                "--http1.1",
                (&|p: &Proxy| format!("https://127.0.0.1:{}/static/big.bin", p.https_port))
                    as &dyn Fn(&Proxy) -> String,
            ),
            ("download HTTPS HTTP/2", "--http2", &|p: &Proxy| {
                format!("https://127.0.0.1:{}/static/big.bin", p.h2_port)
            }),
        ] {
            let ours_args = [&tls[..], &[version, "-H", &auth_down, &ours_https]].concat();
            // Each side must speak the version the row names (ALPN decides).
            let want_version = if version == "--http2" { "2" } else { "1.1" };
            let peer_url = url_of(&nginx[0]);
            let spoken = [
                ("fallbackd", http_version(&ours_args)),
                (
                    "nginx",
                    http_version(&[&tls[..], &[version, peer_url.as_str()]].concat()),
                ),
            ];
            if let Some((who, v)) = spoken.iter().find(|(_, v)| v != want_version) {
                record(Err(format!(
                    "{scenario}: {who} answered in HTTP/{v}, not HTTP/{want_version}"
                )));
                continue;
            }
            record(against_best(
                &s,
                scenario,
                (ours_pid, &mut || curl(&ours_args)),
                nginx
                    .iter()
                    .map(|p| {
                        let mut a = strings(&tls);
                        a.extend([version.to_owned(), url_of(p)]);
                        curl_on("nginx", p, a)
                    })
                    .collect(),
            ));
        }
    }

    // 3. Uploads: single PUT against nginx WebDAV and dufs; resumable tus with SHA-256
    //    against rustus.
    if want("upload") {
        let src = work.path().join("upload.bin");
        make_file(&src, s.size, 3);
        let src_s = src.to_str().unwrap().to_owned();
        let mut n = 0;
        // Each of our runs removes the previous run's file: 2 GiB a run would otherwise
        // pile up past the disk (20 uploads of the section).
        let uploaded = |name: String| {
            let _ = std::fs::remove_file(server.docroot().join("up").join(name));
        };
        let mut ours_put = || {
            uploaded(format!("put-{n}.bin"));
            n += 1;
            curl(&[
                "-T",
                &src_s,
                "-H",
                &auth_up,
                &format!("http://{}/files/up/put-{n}.bin", server.http),
            ])
        };
        let dav_peers = || -> Vec<Candidate<'_>> {
            nginx
                .iter()
                .map(|p| {
                    let url = format!("http://127.0.0.1:{}/dav/put.bin", p.http_port);
                    curl_on("nginx WebDAV", p, vec!["-T".to_owned(), src_s.clone(), url])
                })
                .collect()
        };
        record(against_best(
            &s,
            "upload PUT",
            (ours_pid, &mut ours_put),
            dav_peers(),
        ));
        if let Some((child, port)) = &dufs {
            let url = format!("http://127.0.0.1:{port}/dufs-put.bin");
            let mut m = 0;
            let mut ours_put2 = || {
                uploaded(format!("p2-{m}.bin"));
                m += 1;
                curl(&[
                    "-T",
                    &src_s,
                    "-H",
                    &auth_up,
                    &format!("http://{}/files/up/p2-{m}.bin", server.http),
                ])
            };
            record(alternate(
                &s,
                "upload PUT",
                "dufs",
                (ours_pid, &mut ours_put2),
                (Some(child.id()), &mut || curl(&["-T", &src_s, &url])),
            ));
        }
        let digest = sha256_hex(&src);
        let rustus_dir = work.path().join("rustus");
        rustus = start_rustus(&rustus_dir);
        let mut k = 0;
        let mut ours_tus = || {
            uploaded(format!("tus-{k}.bin"));
            k += 1;
            let meta = format!(
                "filename {},sha256 {}",
                b64(&format!("tus-{k}.bin")),
                b64(&digest)
            );
            tus_upload(
                &format!("http://{}/uploads", server.http),
                Some(&up),
                &src,
                s.size,
                &meta,
            )
        };
        if let Some((child, port)) = &rustus {
            let base = format!("http://127.0.0.1:{port}");
            record(alternate(
                &s,
                "upload tus + SHA-256",
                "rustus",
                (ours_pid, &mut ours_tus),
                (Some(child.id()), &mut || {
                    tus_upload(
                        &format!("{base}/files"),
                        None,
                        &src,
                        s.size,
                        &format!("filename {}", b64("r.bin")),
                    )
                    .inspect(|_| {
                        let _ = std::fs::remove_dir_all(rustus_dir.join("data"));
                        let _ = std::fs::create_dir_all(rustus_dir.join("data"));
                    })
                }),
            ));
        }
        // The target compares the resumable, verified upload with a plain PUT too.
        record(against_best(
            &s,
            "upload tus + SHA-256",
            (ours_pid, &mut ours_tus),
            dav_peers(),
        ));
        let _ = std::fs::remove_dir_all(server.docroot().join("up"));
        upload_peak_kib = proc_kib(server.pid(), "VmHWM:");
        // The disk's own bound for a durable upload of this size.
        upload_disk_gbps = durable_write_gbps(&server.docroot().join("dd.bin"), s.size);
    }

    // 4. Small GETs: nginx calibrated by one short load test per configuration.
    if want("small") {
        let small_ours = format!("http://{}/files/small.bin", server.http);
        let load = |url: &str, header: Option<&str>, pid: u32| {
            let (r, cpu) = with_cpu(Some(pid), || wrk(url, header, s.load_secs));
            r.map(|rps| (rps, cpu * 1e6 / (rps * s.load_secs as f64)))
        };
        let nginx_small = |p: &Proxy| format!("http://127.0.0.1:{}/static/small.bin", p.http_port);
        let picked = nginx
            .iter()
            .map(|p| load(&nginx_small(p), None, p.pid()).map(|(rps, _)| (rps, p)))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| {
                eprintln!(
                    "calibration, 4 KiB GETs: {}",
                    v.iter()
                        .map(|(r, p)| format!("{} {r:.0} req/s", name("nginx", p)))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                v.into_iter()
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, p)| p)
            });
        let result = match picked {
            Ok(Some(p)) => {
                let mut gets =
                    Comparison::new("4 KiB GETs, 64 connections", &name("nginx", p), "req/s");
                let theirs_url = nginx_small(p);
                let mut err = None;
                for _ in 0..s.runs.min(3) {
                    match (
                        load(&small_ours, Some(&auth_down), server.pid()),
                        load(&theirs_url, None, p.pid()),
                    ) {
                        (Ok(o), Ok(t)) => {
                            gets.ours.push(o.0);
                            gets.ours_cpu.push(o.1);
                            gets.theirs.push(t.0);
                            gets.theirs_cpu.push(t.1);
                        }
                        (Err(e), _) | (_, Err(e)) => {
                            err = Some(e);
                            break;
                        }
                    }
                }
                err.map_or(Ok(gets), |e| Err(format!("4 KiB GETs vs nginx: {e}")))
            }
            Ok(None) => Err("4 KiB GETs: no nginx".to_owned()),
            Err(e) => Err(format!("4 KiB GETs vs nginx (calibration): {e}")),
        };
        record(result);
    }

    // 5. Through Apache in proxy mode vs Apache serving the file itself.
    if want("proxy") {
        let via = format!(
            "http://127.0.0.1:{}/aspera/http/files/big.bin",
            apache.http_port
        );
        let stat = format!("http://127.0.0.1:{}/static/big.bin", apache.http_port);
        record(alternate(
            &s,
            "download via Apache proxy",
            &name("Apache static", apache),
            (Some(apache.pid()), &mut || curl(&["-H", &auth_down, &via])),
            (Some(apache.pid()), &mut || curl(&[&stat])),
        ));
    }

    // 6. The client, `fallback upload|download` (resumable, SHA-256 verified end to
    //    end, fsynced), against curl on the same server: 1 GiB each way (256 MiB with
    //    --quick), curl writing the same file or sending it as tus (POST with the
    //    file's SHA-256, which the server checks, then one PATCH). Then a tree of 2,000
    //    files of 4 KiB against curl --parallel to nginx (WebDAV PUT, static GET), which
    //    neither verifies nor fsyncs; 16 transfers at a time on both sides.
    if want("client") {
        let client_size = s.size.min(1 << 30);
        let client_src = work.path().join("client-up.bin");
        make_file(&client_src, client_size, 5);
        let client_big = server.docroot().join("client.bin");
        std::fs::copy(&client_src, &client_big).unwrap();
        let client_digest = sha256_hex(&client_src);
        let state = work.path().join("client-state");
        let port = server.http.port();
        let fasp = |path: &str, token: &str| {
            format!(
                "fasp://alice@127.0.0.1:1{path}?auth=no&token={token}&httpport={port}&fallback=yes&enc=none"
            )
        };
        let client_amount = ("GB/s", client_size as f64 / 1e9);
        let landed = work.path().join("client-down.bin");
        let down_url = fasp("/client.bin", &down);
        let curl_down = format!("http://{}/files/client.bin", server.http);
        record(alternate_by(
            s.runs,
            "client download",
            "curl -o, same server",
            client_amount,
            (None, &mut || {
                let _ = std::fs::remove_file(&landed);
                cli(&["download", &down_url, landed.to_str().unwrap()], &state)
            }),
            (None, &mut || {
                let _ = std::fs::remove_file(&landed);
                let out = landed.to_str().unwrap().to_owned();
                curl_into(&out, &["-H", &auth_down, &curl_down])
            }),
        ));
        // The same with curl's file made durable too (coreutils `sync FILE` is its
        // fsync): what the disk allows a download that survives a power cut.
        record(alternate_by(
            s.runs,
            "client download",
            "curl -o + fsync",
            client_amount,
            (None, &mut || {
                let _ = std::fs::remove_file(&landed);
                cli(&["download", &down_url, landed.to_str().unwrap()], &state)
            }),
            (None, &mut || {
                let _ = std::fs::remove_file(&landed);
                let out = landed.to_str().unwrap().to_owned();
                let start = Instant::now();
                curl_into(&out, &["-H", &auth_down, &curl_down])?;
                let synced = Command::new("sync").arg(&out).status();
                if !synced.is_ok_and(|s| s.success()) {
                    return Err("sync FILE failed".to_owned());
                }
                Ok(start.elapsed().as_secs_f64())
            }),
        ));
        disk_gbps = durable_write_gbps(&landed, client_size);
        let _ = std::fs::remove_file(&landed);
        let mut j = 0;
        let up_url = fasp("/up/client", &up);
        let client_src_s = client_src.to_str().unwrap().to_owned();
        record(alternate_by(
            s.runs,
            "client upload",
            "curl tus, same server",
            client_amount,
            (None, &mut || {
                let _ = std::fs::remove_dir_all(server.docroot().join("up/client"));
                cli(&["upload", &up_url, &client_src_s], &state)
            }),
            (None, &mut || {
                j += 1;
                let meta = format!(
                    "filename {},sha256 {}",
                    b64(&format!("curl-{j}.bin")),
                    b64(&client_digest)
                );
                tus_upload(
                    &format!("http://{}/uploads", server.http),
                    Some(&up),
                    &client_src,
                    client_size,
                    &meta,
                )
            }),
        ));
        let _ = std::fs::remove_dir_all(server.docroot().join("up"));
        let _ = std::fs::remove_file(&client_big);
        let _ = std::fs::remove_file(&client_src);

        let tree_src = work.path().join("tree");
        let rels = make_tree(&tree_src, TREE_FILES);
        let files = ("files/s", TREE_FILES as f64);
        // Up: ours into /up/tree; curl PUTs each file to nginx's WebDAV folder.
        let put_config = work.path().join("put.curl");
        let dav_tree = proxy.static_dir.join("dav/tree");
        std::fs::write(
        &put_config,
        curl_config(&rels, |r| {
            format!(
                "upload-file = \"{}\"\nurl = \"http://127.0.0.1:{}/dav/tree/{r}\"\noutput = /dev/null\n",
                tree_src.join(r).display(),
                proxy.http_port
            )
        }),
    )
    .unwrap();
        let tree_up = fasp("/up", &up);
        let tree_src_s = tree_src.to_str().unwrap().to_owned();
        let mut tree_upload = || {
            let _ = std::fs::remove_dir_all(server.docroot().join("up"));
            cli(
                &["upload", "--parallel", "16", &tree_up, &tree_src_s],
                &state,
            )
        };
        record(alternate_by(
            s.runs,
            "client tree upload",
            "curl --parallel, nginx",
            files,
            (None, &mut tree_upload),
            (None, &mut || {
                let _ = std::fs::remove_dir_all(&dav_tree);
                curl_parallel(&put_config)
            }),
        ));
        // The same tree against what durability alone costs on this disk.
        let bound_tree = work.path().join("durable-tree");
        record(alternate_by(
            s.runs,
            "client tree upload",
            "durable bound (no HTTP)",
            files,
            (None, &mut tree_upload),
            (None, &mut || {
                let _ = std::fs::remove_dir_all(&bound_tree);
                durable_tree(&tree_src, &rels, &bound_tree)
            }),
        ));
        let _ = std::fs::remove_dir_all(&bound_tree);
        // Down: the same tree served by both.
        let served_tree = server.docroot().join("tree");
        let static_tree = proxy.static_dir.join("tree");
        for r in &rels {
            for root in [&served_tree, &static_tree] {
                let dst = root.join(r);
                std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
                std::fs::copy(tree_src.join(r), &dst).unwrap();
            }
        }
        let fetched = work.path().join("fetched");
        let get_config = work.path().join("get.curl");
        std::fs::write(
            &get_config,
            curl_config(&rels, |r| {
                format!(
                    "url = \"http://127.0.0.1:{}/static/tree/{r}\"\noutput = \"{}\"\n",
                    proxy.http_port,
                    fetched.join(r).display()
                )
            }),
        )
        .unwrap();
        let tree_down = fasp("/tree", &down);
        let fetched_s = fetched.to_str().unwrap().to_owned();
        record(alternate_by(
            s.runs,
            "client tree download",
            "curl --parallel, nginx",
            files,
            (None, &mut || {
                let _ = std::fs::remove_dir_all(&fetched);
                cli(
                    &["download", "--parallel", "16", &tree_down, &fetched_s],
                    &state,
                )
            }),
            (None, &mut || {
                let _ = std::fs::remove_dir_all(&fetched);
                curl_parallel(&get_config)
            }),
        ));
        let _ = std::fs::remove_dir_all(&fetched);
        let _ = std::fs::remove_dir_all(server.docroot().join("up"));
    }

    // 6b. Object storage: fallbackd on an s3:// docroot against rclone talking to the
    //     same bucket itself (moto's server on loopback).
    let mut s3 = S3Bench::default();
    if want("s3") {
        s3 = s3_section(&s, quick);
        for r in s3.comparisons.drain(..) {
            record(r);
        }
    }

    // 6c. The IBM HTTP Gateway API against fallbackd's own protocol, same server.
    if want("gateway") {
        for r in gateway_section(&s, &server, work.path()) {
            record(r);
        }
    }

    // 7. Memory: one big upload to a fresh instance (peak RSS must not grow with the
    //    file: 10 GiB, or 1 GiB with --quick), then 1,000 idle connections.
    let big_upload: u64 = if quick { 1 << 30 } else { 10 << 30 };
    let (mut big_upload_peak_kib, mut idle_rss_kib, mut idle_conns) = (0, 0, 0);
    let mut many_peak_kib = 0;
    if want("memory") {
        let fresh_dir = work.path().join("fresh");
        let fresh = Server::start_logging_to_file(&fresh_dir);
        let big_src = work.path().join("big-upload.bin");
        make_file(&big_src, big_upload, 4);
        let fresh_up = upload_token("alice", "/");
        let big_put = curl(&[
            "-T",
            big_src.to_str().unwrap(),
            "-H",
            &format!("Authorization: Bearer {fresh_up}"),
            &format!("http://{}/files/big-upload.bin", fresh.http),
        ]);
        big_upload_peak_kib = proc_kib(fresh.pid(), "VmHWM:");
        if let Err(e) = big_put {
            failures.push(format!("big upload: {e}"));
        }
        drop(fresh);
        let _ = std::fs::remove_file(&big_src);
        let _ = std::fs::remove_dir_all(&fresh_dir);

        // 8. Memory: 1,000 idle connections.
        // 9. Memory: 64 downloads of 64 MiB at once from a fresh instance, each capped
        //    at 16 MB/s by its reader so all 64 are in flight together.
        let many_dir = work.path().join("many");
        let many = Server::start_logging_to_file(&many_dir);
        let many_big = many.docroot().join("big.bin");
        if std::fs::hard_link(&big, &many_big).is_err() {
            std::fs::copy(&big, &many_big).unwrap();
        }
        let url = format!("http://{}/files/big.bin", many.http);
        let readers: Vec<_> = (0..CONCURRENT_DOWNLOADS)
            .filter_map(|_| {
                Command::new("curl")
                    .args(["-sS", "--fail", "-o", "/dev/null", "--limit-rate", "16M"])
                    .args(["-r", &format!("0-{}", (64u64 << 20).min(s.size) - 1)])
                    .args(["-H", &auth_down, &url])
                    .stderr(Stdio::null())
                    .spawn()
                    .ok()
            })
            .collect();
        for mut r in readers {
            if !r.wait().is_ok_and(|st| st.success()) {
                failures.push("64 concurrent downloads: a download failed".to_owned());
                break;
            }
        }
        many_peak_kib = proc_kib(many.pid(), "VmHWM:");
        drop(many);
        let _ = std::fs::remove_dir_all(&many_dir);

        let conns: Vec<_> = (0..1000)
            .filter_map(|_| std::net::TcpStream::connect(server.http).ok())
            .collect();
        std::thread::sleep(Duration::from_secs(1));
        idle_rss_kib = proc_kib(server.pid(), "VmRSS:");
        idle_conns = conns.len();
        drop(conns);
    }

    // The table.
    println!(
        "\nfallbackd vs peers, loopback, {} MiB files, {} runs each (ours/peer: >1 means ours is faster; \
         CPU: the server's user + system time, median)\n",
        s.size >> 20,
        s.runs
    );
    println!(
        "{:<28} {:<26} {:>15} {:>15} {:>22} {:>24}",
        "scenario", "peer", "ours (med)", "peer (med)", "ratio min/med/max", "CPU ours / peer"
    );
    let cpu = |v: &[f64]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.3}", median(v))
        }
    };
    for c in &results {
        let r = c.ratios();
        println!(
            "{:<28} {:<26} {:>15} {:>15} {:>10.2} / {:.2} / {:.2} {:>24}",
            c.scenario,
            c.peer,
            format!("{:.2} {}", median(&c.ours), c.unit),
            format!("{:.2} {}", median(&c.theirs), c.unit),
            r[0],
            median(&r),
            r[r.len() - 1],
            if c.ours_cpu.is_empty() && c.theirs_cpu.is_empty() {
                String::new()
            } else {
                format!(
                    "{} / {} {}",
                    cpu(&c.ours_cpu),
                    cpu(&c.theirs_cpu),
                    c.cpu_unit
                )
            }
        );
    }
    if upload_disk_gbps > 0.0 {
        println!(
            "\nthis disk's durable write rate (dd conv=fdatasync, {} MiB, after the uploads): {upload_disk_gbps:.2} GB/s",
            s.size >> 20
        );
    }
    if disk_gbps > 0.0 {
        println!(
            "this disk's durable write rate (dd conv=fdatasync, {} MiB, after the client's downloads): {disk_gbps:.2} GB/s",
            s.size.min(1 << 30) >> 20
        );
    }
    println!(
        "\nfallbackd peak RSS after the uploads above: {} MiB; during one {} GiB upload: {} MiB; \
         {CONCURRENT_DOWNLOADS} concurrent downloads: {} MiB; with {idle_conns} idle connections: {} MiB",
        upload_peak_kib / 1024,
        big_upload >> 30,
        big_upload_peak_kib / 1024,
        many_peak_kib / 1024,
        idle_rss_kib / 1024
    );
    if s3.size > 0 {
        println!(
            "fallbackd peak RSS during {} MiB uploads to an s3:// docroot: {} MiB",
            s3.size >> 20,
            s3.peak_kib / 1024
        );
    }
    let json = results
        .iter()
        .map(|c| {
            let r = c.ratios();
            format!(
                "{{\"scenario\":{:?},\"peer\":{:?},\"unit\":{:?},\"ours\":{:?},\"peer_values\":{:?},\"ratio_min\":{},\"ratio_median\":{},\"ratio_max\":{},\"cpu_unit\":{:?},\"ours_cpu\":{:?},\"peer_cpu\":{:?}}}",
                c.scenario, c.peer, c.unit, c.ours, c.theirs, r[0], median(&r), r[r.len() - 1], c.cpu_unit, c.ours_cpu, c.theirs_cpu
            )
        })
        .collect::<Vec<_>>()
        .join(",\n  ");
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("results.json"),
        format!(
            "{{\n\"size_bytes\":{},\"runs\":{},\"upload_peak_rss_kib\":{upload_peak_kib},\"big_upload_bytes\":{big_upload},\"big_upload_peak_rss_kib\":{big_upload_peak_kib},\"idle_connections\":{idle_conns},\"idle_rss_kib\":{idle_rss_kib},\"disk_durable_gbps\":{disk_gbps},\"upload_disk_durable_gbps\":{upload_disk_gbps},\"concurrent_downloads_peak_rss_kib\":{many_peak_kib},\"s3_size_bytes\":{},\"s3_upload_peak_rss_kib\":{},\n\"failures\":{failures:?},\n\"comparisons\":[\n  {json}\n]}}\n",
            s.size, s.runs, s3.size, s3.peak_kib
        ),
    )
    .unwrap();
    println!("results: target/bench/results.json");
    drop(dufs.map(|(mut c, _)| c.kill()));
    drop(rustus.map(|(mut c, _)| c.kill()));
    if check && !failures.is_empty() {
        eprintln!("{} scenario(s) failed", failures.len());
        std::process::exit(1);
    }
}
