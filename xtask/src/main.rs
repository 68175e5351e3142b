//! Project automation: `cargo xtask ci | bench | fuzz`.
//!
//! Standard library only, so it builds in seconds. Each task prints the commands it runs.

// A task runner reports on the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

const HELP: &str = "\
cargo xtask <task> [options]

Tasks:
  ci                 everything CI runs: fmt check, clippy -D warnings, tests
                     (nextest; as root also the #[ignore]d ones), API docs with no warning, doc
                     tests, benchmark smoke runs, dependency-direction
                     checks, the proxy and browser suites, the Debian package
                     (built, installed, checked), the supply-chain audit and a short
                     fuzz run
  bench [--quick] [--check] [--no-memory] [--size MIB] [--only LIST]
                     installs the peers (apt nginx apache2 wrk time rclone; pip moto;
                     cargo dufs rustus under target/bench-tools), runs the criterion
                     benches, then fallbackd against nginx, Apache, dufs, rustus and
                     rclone on moto's S3 (downloads, HTTPS, uploads, 4 KiB GETs, proxy
                     mode, an s3:// docroot), ours and peer alternating: a ratio
                     table and target/bench/results.json; --only picks sections
                     (download,upload,small,proxy,client,memory,s3);
                     then the client's and server's peak RSS moving one big file.
                     --quick: 256 MiB, 3 runs. --check: fail only if a scenario
                     errors, never on a ratio
  e2e                proxy mode for real: installs apache2 and nginx (apt) if missing,
                     runs the fallback-e2e suite (Apache and nginx in front of
                     fallbackd instances on loopback ephemeral ports), stops them
  e2e --throughput   also measures a 1 GiB download through Apache against Apache
                     serving the same file statically (release build)
  browser            the example web app (examples/webapp) in headless Chromium:
                     installs chromium (apt) and playwright-core (npm ci), runs
                     examples/webapp/e2e; screenshot in target/e2e/
  dist [--install]   the Debian package (cargo deb, installed under target/tools if
                     missing) with the systemd unit, a sample aspera.conf, man pages
                     and completions: target/debian/*.deb. --install: dpkg -i it,
                     systemd-analyze verify the unit, --check-config the config it wrote
  audit              supply chain: cargo-deny (advisories, licenses, bans, sources)
                     offline, against the advisory database snapshot in
                     $FALLBACK_ADVISORY_DB or ../shared/advisory-db; installs
                     cargo-deny under target/tools if missing
  deps               the dependency-direction check alone (part of ci): which of the
                     project's crates each crate may use, and what it never reaches
  fuzz [--seconds N] [TARGET...]
                     run the cargo-fuzz targets (all by default) for N seconds each
                     (default 60); installs cargo-fuzz under target/tools if missing
";

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(&args[1..]),
        Some("fuzz") => fuzz(&args[1..]),
        Some("e2e") => e2e(&args[1..]),
        Some("audit") => audit(),
        Some("deps") => dependency_directions(),
        Some("browser") => browser(),
        Some("dist") => dist(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task {other:?}\n\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn cargo() -> Command {
    let mut c = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(mut cmd: Command) -> Result {
    let shown = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("\n$ {shown}");
    let started = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start `{shown}`: {e}"))?;
    println!("  ({:.1} s)", started.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed with {status}"))
    }
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn ci() -> Result {
    let mut c = cargo();
    c.args(["fmt", "--all", "--", "--check"]);
    run(c)?;

    let mut c = cargo();
    c.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(c)?;

    dependency_directions()?;
    test_tools()?;

    let mut c = cargo();
    if has_nextest() {
        c.args([
            "nextest",
            "run",
            "--workspace",
            "--exclude",
            "fallback-e2e",
            "--no-fail-fast",
        ]);
        // Tests that need what only root has (mounting a tmpfs for a full disk) are
        // #[ignore]d with the reason; as root, CI runs them too.
        if is_root() {
            c.args(["--run-ignored", "all"]);
        } else {
            println!("not root: the tests that need root (#[ignore]d) are not run");
        }
    } else {
        println!("cargo-nextest not found: using cargo test");
        c.args([
            "test",
            "--workspace",
            "--exclude",
            "fallback-e2e",
            "--lib",
            "--bins",
            "--tests",
        ]);
    }
    run(c)?;

    // The API docs, bins included, build without a warning (broken links, bad HTML).
    let mut c = cargo();
    c.args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings");
    run(c)?;

    // nextest does not run doc tests.
    let mut c = cargo();
    c.args(["test", "--workspace", "--doc"]);
    run(c)?;

    // Benchmarks in criterion's test mode: each runs once, so they keep compiling
    // and their setup assertions keep holding. Timings are not CI's job.
    let mut c = cargo();
    c.args(["test", "--workspace", "--benches"]);
    run(c)?;

    e2e(&[])?;
    browser()?;
    dist(&["--install".into()])?;
    audit()?;
    fuzz(&["--seconds".into(), "15".into()])?;
    println!("\nci: all checks passed");
    Ok(())
}

/// Whether this process runs as root (uid 0).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs the package `package` from `PyPI` with pip unless python3 can import `module`.
fn pip_install(module: &str, package: &str) -> Result {
    let have = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if have {
        return Ok(());
    }
    let mut c = Command::new("python3");
    c.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        package,
    ]);
    run(c).map_err(|e| format!("{e}; install it with: python3 -m pip install \"{package}\""))
}

/// The external programs the end-to-end tests drive: curl, tuspy and moto's S3 server
/// (installed with pip when missing, as `.ci/run` does), rclone and wget (apt), and
/// tus-js-client and IBM's HTTP Gateway SDK under node (`npm ci` in
/// `bins/fallbackd/tests/clients`).
fn test_tools() -> Result {
    println!(
        "\n$ checking test tools (curl, tuspy, moto, rclone, wget, tus-js-client, the Gateway SDK)"
    );
    let ok = |c: &mut Command| c.output().is_ok_and(|o| o.status.success());
    if !ok(Command::new("curl").arg("--version")) {
        return Err("curl is missing: apt-get install curl".to_owned());
    }
    pip_install("tusclient", "tuspy")?;
    // moto's S3 server: the object-storage tests run against it on loopback.
    pip_install("moto.server", "moto[server]")?;
    // rclone's http remote and wget -r read the HTML listings.
    apt_install(&[("rclone", "/usr/bin/rclone"), ("wget", "/usr/bin/wget")])?;
    // man renders the generated pages in fallbackd's tests.
    apt_install(&[("man-db", "/usr/bin/man")])?;
    client_modules()?;
    println!("  ok");
    Ok(())
}

/// The node clients no one here wrote (tus-js-client, IBM's HTTP Gateway SDK): `npm ci`
/// in `bins/fallbackd/tests/clients`, npm from apt if missing.
fn client_modules() -> Result {
    if Command::new("npm").arg("--version").output().is_err() {
        apt_install(&[("npm", "/usr/bin/npm")])?;
    }
    let mut c = Command::new("npm");
    c.current_dir(root().join("bins/fallbackd/tests/clients"))
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
    run(c)
}

/// Arrows point one way (ARCHITECTURE.md): libraries never depend on what sits above
/// them. Checked on the resolved dependency graph, so a transitive edge counts too.
/// What each workspace crate may depend on (normal edges): the project's own crates
/// it may use directly (every other project crate is forbidden), and third-party crates
/// it must not reach at all, even transitively. A crate not listed fails the check.
const DEPENDENCY_RULES: &[(&str, &[&str], &[&str])] = &[
    ("fallback-conf", &[], NO_RUNTIME),
    ("fallback-token", &["fallback-conf"], NO_RUNTIME),
    ("fallback-url", &["fallback-conf"], NO_RUNTIME),
    ("fallback-engine", &[], NO_RUNTIME),
    ("fallback-http", &[], NO_RUNTIME),
    // Object storage: object_store's S3 client brings tokio, hyper and reqwest; the
    // engine stays free of them.
    (
        "fallback-s3",
        &["fallback-engine"],
        &["clap", "anyhow", "axum"],
    ),
    (
        "fallback-server",
        &[
            "fallback-conf",
            "fallback-engine",
            "fallback-http",
            "fallback-s3",
            "fallback-token",
        ],
        // reqwest only as object_store's HTTP client, through fallback-s3.
        &["clap", "anyhow"],
    ),
    (
        "fallback-client",
        &["fallback-conf", "fallback-token", "fallback-url"],
        &["clap", "anyhow", "axum"],
    ),
    (
        "fallback-testkit",
        &["fallback-conf", "fallback-token"],
        &[],
    ),
    ("fallback-e2e", &["fallback-testkit"], &[]),
    (
        "fallback",
        &[
            "fallback-client",
            "fallback-conf",
            "fallback-server",
            "fallback-token",
            "fallback-url",
        ],
        &[],
    ),
    (
        "fallbackd",
        &[
            "fallback-conf",
            "fallback-server",
            "fallback-token",
            "fallback-url",
        ],
        &[],
    ),
    // The embedding example uses the public API only: never the engine.
    (
        "fallback-webapp",
        &[
            "fallback-conf",
            "fallback-server",
            "fallback-token",
            "fallback-url",
        ],
        &[],
    ),
    ("xtask", &[], &[]),
];

/// What the libraries below the server never depend on.
const NO_RUNTIME: &[&str] = &["tokio", "hyper", "axum", "clap", "reqwest", "anyhow"];

/// `cargo tree` of `krate` (normal edges) to `depth`, one package name per line.
fn tree_names(krate: &str, depth: Option<&str>) -> Result<Vec<String>> {
    let mut c = cargo();
    c.args([
        "tree", "--edges", "normal", "--prefix", "none", "--format", "{p}",
    ]);
    if krate == "--workspace" {
        c.args(["--workspace"]);
    } else {
        c.args(["--package", krate]);
    }
    if let Some(d) = depth {
        c.args(["--depth", d]);
    }
    let out = c
        .output()
        .map_err(|e| format!("cannot run cargo tree: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo tree -p {krate} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect())
}

fn dependency_directions() -> Result {
    println!("\n$ dependency-direction checks (cargo tree)");
    let members = tree_names("--workspace", Some("0"))?;
    for m in &members {
        if !DEPENDENCY_RULES.iter().any(|(k, _, _)| k == m) {
            return Err(format!(
                "workspace crate {m} has no dependency rule: add it to DEPENDENCY_RULES in \
                 xtask (and its arrows to ARCHITECTURE.md)"
            ));
        }
    }
    for (krate, allowed, forbidden) in DEPENDENCY_RULES {
        let direct = tree_names(krate, Some("1"))?;
        for dep in direct.iter().skip(1) {
            if members.contains(dep) && !allowed.contains(&dep.as_str()) {
                return Err(format!(
                    "{krate} depends on {dep}; see ARCHITECTURE.md for which way arrows point"
                ));
            }
        }
        let all = tree_names(krate, None)?;
        for dep in *forbidden {
            if all.iter().any(|l| l == dep) {
                return Err(format!(
                    "{krate} depends on {dep}; see ARCHITECTURE.md for which way arrows point"
                ));
            }
        }
        println!("  {krate}: ok");
    }
    Ok(())
}

/// Installs the Debian packages of `(package, binary)` whose binary is missing (as root).
fn apt_install(wanted: &[(&str, &str)]) -> Result {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(_, bin)| !Path::new(bin).exists())
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("\n$ installing {}", missing.join(" "));
    let mut c = Command::new("apt-get");
    c.args(["update", "-qq"]);
    run(c).map_err(|e| format!("{e}; install {} yourself", missing.join(" ")))?;
    let mut c = Command::new("apt-get");
    c.env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq"])
        .args(&missing);
    run(c).map_err(|e| format!("{e}; install {} yourself", missing.join(" ")))
}

/// Installs the proxies if missing (Debian packages, as root), then runs the proxy-mode
/// suite. Each test starts and stops its own proxy and backends, even on failure.
fn e2e(args: &[String]) -> Result {
    apt_install(&[
        ("apache2", "/usr/sbin/apache2"),
        ("nginx", "/usr/sbin/nginx"),
    ])?;
    // IBM's HTTP Gateway SDK runs through both proxies.
    client_modules()?;
    // The suite starts the workspace's binaries.
    let mut c = cargo();
    c.args(["build", "--workspace", "--bins"]);
    run(c)?;
    let mut c = cargo();
    if has_nextest() {
        c.args(["nextest", "run", "-p", "fallback-e2e", "--no-fail-fast"]);
    } else {
        c.args(["test", "-p", "fallback-e2e"]);
    }
    run(c)?;
    if args.iter().any(|a| a == "--throughput") {
        run_release_e2e_bin("throughput", &[])?;
    }
    Ok(())
}

/// The example web app, and fallbackd called from a page on another origin (CORS), in
/// headless Chromium: installs Debian's chromium if missing and the test's node modules
/// (`npm ci`, playwright-core), builds fallback-web, fallbackd and fallback, runs
/// `examples/webapp/e2e`. The screenshot lands in `target/e2e/`.
fn browser() -> Result {
    apt_install(&[("chromium", "/usr/bin/chromium")])?;
    if Command::new("npm").arg("--version").output().is_err() {
        apt_install(&[("npm", "/usr/bin/npm")])?;
    }
    let mut c = cargo();
    c.args([
        "build",
        "-p",
        "fallback-webapp",
        "-p",
        "fallbackd",
        "-p",
        "fallback",
    ]);
    run(c)?;
    let dir = root().join("examples/webapp/e2e");
    let mut c = Command::new("npm");
    c.current_dir(&dir)
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
    run(c)?;
    let mut c = Command::new("npm");
    c.current_dir(&dir)
        .args(["test"])
        .env("FALLBACK_WEB_BIN", root().join("target/debug/fallback-web"))
        .env("FALLBACKD_BIN", root().join("target/debug/fallbackd"))
        .env("FALLBACK_BIN", root().join("target/debug/fallback"))
        .env("FALLBACK_E2E_ARTIFACTS", root().join("target/e2e"));
    run(c)?;
    println!(
        "screenshot: {}",
        root().join("target/e2e/webapp-upload.png").display()
    );
    Ok(())
}

/// The Debian package: release binaries, man pages and completions generated from the
/// CLIs, `cargo deb`; then, as CI does, installs it with dpkg, verifies the systemd unit
/// and checks the configuration the package wrote.
fn dist(args: &[String]) -> Result {
    let deb = tool("cargo-deb")?;
    build_release()?;
    let assets = root().join("target/release/assets");
    let _ = std::fs::remove_dir_all(&assets);
    let bin = root().join("target/release");
    let mut c = Command::new(bin.join("fallbackd"));
    c.arg("--generate-assets").arg(&assets);
    run(c)?;
    let mut c = Command::new(bin.join("fallback"));
    c.arg("generate-assets").arg(&assets);
    run(c)?;
    let mut c = Command::new(&deb);
    c.current_dir(root())
        .args(["-p", "fallbackd", "--no-build", "--fast", "--output"])
        .arg(root().join("target/debian"));
    run(c)?;
    let package = std::fs::read_dir(root().join("target/debian"))
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .ok_or("cargo deb wrote no .deb")?;
    println!("package: {}", package.display());
    if !args.iter().any(|a| a == "--install") {
        return Ok(());
    }
    let mut c = Command::new("dpkg");
    c.arg("-i").arg(&package);
    run(c)?;
    if Path::new("/usr/bin/systemd-analyze").exists() {
        let mut c = Command::new("systemd-analyze");
        c.args(["verify", "/usr/lib/systemd/system/fallbackd.service"]);
        run(c)?;
    } else {
        println!("systemd-analyze not found: the unit file is not verified here");
    }
    let mut c = Command::new("/usr/bin/fallbackd");
    c.args(["--check-config", "--config", "/etc/fallback/aspera.conf"]);
    run(c)?;
    let mut c = Command::new("man");
    c.args(["-w", "fallbackd"]);
    if c.output().is_ok_and(|o| o.status.success()) {
        println!("man fallbackd: installed");
    }
    Ok(())
}

/// Installs what the benchmarks compare against: Debian's nginx, apache2, wrk, time and
/// rclone (as root), moto's S3 server (pip), dufs and rustus with cargo into
/// `target/bench-tools`, and IBM's HTTP Gateway SDK (`npm ci` in
/// `bins/fallbackd/tests/clients`).
fn bench_peers() -> Result {
    apt_install(&[
        ("nginx", "/usr/sbin/nginx"),
        ("apache2", "/usr/sbin/apache2"),
        ("wrk", "/usr/bin/wrk"),
        ("time", "/usr/bin/time"),
        ("rclone", "/usr/bin/rclone"),
    ])?;
    pip_install("moto.server", "moto[server]")?;
    for name in ["dufs", "rustus"] {
        tool_in("target/bench-tools", name)?;
    }
    // IBM's HTTP Gateway SDK under node, for the gateway section.
    client_modules()
}

fn bench(args: &[String]) -> Result {
    /// Criterion benchmarks: (package, bench target).
    const BENCHES: &[(&str, &str)] = &[("fallback-conf", "parse"), ("fallback-token", "verify")];
    let quick = args.iter().any(|a| a == "--quick");
    let check = args.iter().any(|a| a == "--check");
    bench_peers()?;
    for (package, target) in BENCHES {
        let mut c = cargo();
        c.args(["bench", "-p", package, "--bench", target]);
        if check {
            // Each benchmark once: it runs, its assertions hold; no timing.
            c.args(["--", "--test"]);
        } else if quick {
            c.args(["--", "--warm-up-time", "1", "--measurement-time", "3"]);
        }
        run(c)?;
    }
    let mut flags = Vec::new();
    if quick {
        flags.push("--quick");
    }
    if check {
        flags.push("--check");
    }
    if let Some(i) = args.iter().position(|a| a == "--only") {
        flags.push("--only");
        flags.push(args.get(i + 1).map_or("", String::as_str));
    }
    run_release_e2e_bin("bench", &flags)?;
    if args.iter().any(|a| a == "--no-memory") {
        return Ok(());
    }
    let mib = args
        .iter()
        .position(|a| a == "--size")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(if quick { 256 } else { 2048 });
    memory(mib)
}

/// Release builds of fallbackd and fallback.
fn build_release() -> Result {
    let mut c = cargo();
    c.args(["build", "--release", "-p", "fallbackd", "-p", "fallback"]);
    run(c)
}

/// Runs a measuring binary of fallback-e2e (release) against release fallbackd/fallback.
fn run_release_e2e_bin(bin: &str, args: &[&str]) -> Result {
    build_release()?;
    let mut c = cargo();
    c.args(["run", "--release", "-p", "fallback-e2e", "--bin", bin, "--"])
        .args(args)
        .env("FALLBACKD_BIN", root().join("target/release/fallbackd"))
        .env("FALLBACK_BIN", root().join("target/release/fallback"));
    run(c)
}

/// Peak RSS of fallbackd and of the client moving one big file each way, from
/// `/usr/bin/time -v`, with the rate. Memory must stay flat whatever the size.
fn memory(mib: u64) -> Result {
    build_release()?;
    let bin = root().join("target/release");
    let work = root().join("target/bench-memory");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("up")).map_err(|e| e.to_string())?;
    let src = work.join("up/big.bin");
    println!("\n$ writing a {mib} MiB file");
    write_file(&src, mib << 20).map_err(|e| format!("{}: {e}", src.display()))?;
    // The embedded default prints its port and ready tokens.
    let mut server = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(bin.join("fallbackd"))
        .args(["--http-port", "0", "--data"])
        .arg(work.join("server-data"))
        .current_dir(&work)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(work.join("server.time")).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("cannot start /usr/bin/time (apt-get install time): {e}"))?;
    let banner = read_banner(server.stdout.take().ok_or("no stdout")?)?;
    let field = |p: &str| {
        banner
            .lines()
            .find_map(|l| l.strip_prefix(p).map(|v| v.trim().to_owned()))
            .ok_or(format!("banner without {p:?}"))
    };
    let (up, down) = (
        field("upload token (24 h):")?,
        field("download token (24 h):")?,
    );
    let url = field("FASP URL:")?;
    let port = url
        .split("httpport=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .ok_or("no httpport in the banner")?
        .to_owned();
    let fasp = |path: &str, token: &str| {
        format!(
            "fasp://fallback@127.0.0.1:1{path}?auth=no&token={token}&httpport={port}&fallback=yes&enc=none"
        )
    };
    let measure = |what: &str, args: &[String]| -> Result<(u64, f64)> {
        let out = Command::new("/usr/bin/time")
            .arg("-v")
            .arg(bin.join("fallback"))
            .args(args)
            .arg("--quiet")
            .arg("--state-dir")
            .arg(work.join("state"))
            .output()
            .map_err(|e| e.to_string())?;
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!("{what} failed: {err}"));
        }
        Ok((max_rss(&err), wall(&err)))
    };
    let (up_rss, up_secs) = measure(
        "upload",
        &["upload".into(), fasp("/", &up), src.display().to_string()],
    )?;
    let dest = work.join("down.bin");
    let (down_rss, down_secs) = measure(
        "download",
        &[
            "download".into(),
            fasp("/big.bin", &down),
            dest.display().to_string(),
        ],
    )?;
    // /usr/bin/time forwards no signal: stop fallbackd itself, then time reports.
    let _ = Command::new("pkill")
        .args(["-INT", "-f", &bin.join("fallbackd").display().to_string()])
        .status();
    let _ = server.wait();
    let server_time = std::fs::read_to_string(work.join("server.time")).unwrap_or_default();
    let server_rss = max_rss(&server_time);
    #[allow(clippy::cast_precision_loss)]
    let rate = |secs: f64| (mib as f64 * 1.048_576) / secs.max(0.001);
    println!(
        "\nmemory and rate, {mib} MiB over loopback HTTP (release build):\n  \
         upload:   client peak RSS {} MiB, {:.0} MB/s\n  \
         download: client peak RSS {} MiB, {:.0} MB/s\n  \
         server peak RSS over both: {} MiB",
        up_rss / 1024,
        rate(up_secs),
        down_rss / 1024,
        rate(down_secs),
        server_rss / 1024
    );
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

fn read_banner(out: std::process::ChildStdout) -> Result<String> {
    use std::io::BufRead as _;
    let mut banner = String::new();
    for line in std::io::BufReader::new(out).lines() {
        let line = line.map_err(|e| e.to_string())?;
        banner.push_str(&line);
        banner.push('\n');
        if line.trim_start().starts_with("curl ") {
            return Ok(banner);
        }
    }
    Err(format!("fallbackd ended before its banner:\n{banner}"))
}

fn max_rss(time_v: &str) -> u64 {
    time_v
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn wall(time_v: &str) -> f64 {
    // "Elapsed (wall clock) time (h:mm:ss or m:ss): 0:01.23"
    time_v
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Elapsed (wall clock) time (h:mm:ss or m:ss):")
        })
        .map_or(0.0, |v| {
            v.trim().split(':').fold(0.0, |acc, part| {
                acc * 60.0 + part.parse::<f64>().unwrap_or(0.0)
            })
        })
}

fn write_file(path: &Path, len: u64) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        let n = usize::try_from(left.min(block.len() as u64)).unwrap_or(block.len());
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.flush()
}

/// Where a fuzz target's seed inputs come from: the fixtures the tests use, so the
/// fuzzer starts from real shapes.
#[derive(Clone, Copy)]
enum Seeds {
    /// Every file under a directory (recursively), one input each.
    Dir(&'static str),
    /// Every non-comment line of a text file, one input each.
    Lines(&'static str),
    /// Every `"token": "..."` string of a JSON file, one input each.
    JsonTokens(&'static str),
}

const FUZZ_TARGETS: &[(&str, Seeds)] = &[
    ("conf_parse", Seeds::Dir("fixtures/conf")),
    (
        "token_decode",
        Seeds::JsonTokens("fixtures/tokens/vectors.json"),
    ),
    ("url_parse", Seeds::Lines("fixtures/urls/real-world.txt")),
    ("relpath_parse", Seeds::Lines("fixtures/paths/attacks.txt")),
    ("http_headers", Seeds::Lines("fixtures/headers/seeds.txt")),
    ("s3_docroot_parse", Seeds::Lines("fixtures/docroots/s3.txt")),
];

/// Writes the seed inputs of `seeds` into `dir`, one file each.
fn write_seeds(seeds: Seeds, dir: &Path) -> Result {
    let io = |e: std::io::Error| format!("{}: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(io)?;
    let read = |p: &str| std::fs::read_to_string(root().join(p)).map_err(|e| format!("{p}: {e}"));
    let inputs: Vec<Vec<u8>> = match seeds {
        Seeds::Dir(d) => {
            let mut out = Vec::new();
            let mut stack = vec![root().join(d)];
            while let Some(p) = stack.pop() {
                for e in std::fs::read_dir(&p).map_err(io)?.flatten() {
                    if e.path().is_dir() {
                        stack.push(e.path());
                    } else {
                        out.push(std::fs::read(e.path()).map_err(io)?);
                    }
                }
            }
            out
        }
        Seeds::Lines(f) => read(f)?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.as_bytes().to_vec())
            .collect(),
        Seeds::JsonTokens(f) => read(f)?
            .split("\"token\": \"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(|t| t.as_bytes().to_vec())
            .collect(),
    };
    for (i, input) in inputs.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:03}")), input).map_err(io)?;
    }
    Ok(())
}

/// A cargo-installed tool under target/tools, installed if missing; returns its path.
fn tool(name: &str) -> Result<PathBuf> {
    tool_in("target/tools", name)
}

/// A cargo-installed tool under `dir` (relative to the repository), installed if missing.
fn tool_in(dir: &str, name: &str) -> Result<PathBuf> {
    let tools = root().join(dir);
    let bin = tools.join("bin").join(name);
    if !bin.exists() {
        let mut c = cargo();
        c.args(["install", "--locked", name, "--root"]).arg(&tools);
        run(c)?;
    }
    Ok(bin)
}

/// cargo-deny's directory name for the default `RustSec` database URL: it looks for the
/// database there under `db-path` (deny.toml).
const ADVISORY_DB_DIR: &str = "advisory-db-3157b0e258782691";

fn audit() -> Result {
    let deny = tool("cargo-deny")?;
    // cargo-deny reads the metadata of every platform's crates, offline: fetch them
    // all first (a build downloads only this host's).
    let mut fetch = cargo();
    fetch.arg("fetch");
    run(fetch)?;
    // The snapshot: named, next to this checkout, or where this workplace keeps it.
    let candidates = [
        env::var_os("FALLBACK_ADVISORY_DB").map(PathBuf::from),
        Some(root().join("../shared/advisory-db")),
        Some(PathBuf::from("/work/shared/advisory-db")),
    ];
    let snapshot = candidates
        .iter()
        .flatten()
        .find(|p| p.join("crates").is_dir())
        .cloned()
        .unwrap_or_else(|| root().join("../shared/advisory-db"));
    let mut c = Command::new(&deny);
    c.current_dir(root()).arg("--offline");
    if snapshot.join("crates").is_dir() {
        // cargo-deny wants a git checkout: copy the snapshot and commit it (offline).
        let db = root().join("target/advisory-dbs").join(ADVISORY_DB_DIR);
        let _ = std::fs::remove_dir_all(&db);
        std::fs::create_dir_all(&db).map_err(|e| format!("{}: {e}", db.display()))?;
        let mut cp = Command::new("cp");
        cp.arg("-r").arg(snapshot.join(".")).arg(&db);
        run(cp)?;
        for args in [
            &["init", "-q"][..],
            &["add", "-A"],
            &[
                "-c",
                "user.name=xtask",
                "-c",
                "user.email=xtask@localhost",
                "commit",
                "-q",
                "-m",
                "advisory database snapshot",
            ],
        ] {
            let mut g = Command::new("git");
            g.current_dir(&db).args(args);
            run(g)?;
        }
        println!("advisory database: {}", snapshot.display());
        c.args(["check", "all"]);
    } else {
        println!(
            "\nNOTE: no advisory database at {} (set FALLBACK_ADVISORY_DB): checking \
             licenses, bans and sources only, NOT advisories",
            snapshot.display()
        );
        c.args(["check", "bans", "licenses", "sources"]);
    }
    run(c)
}

fn fuzz(args: &[String]) -> Result {
    let mut seconds = 60u64;
    let mut targets: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--seconds takes a number")?;
            }
            t => targets.push(
                FUZZ_TARGETS
                    .iter()
                    .find(|(name, _)| *name == t)
                    .map(|(name, _)| *name)
                    .ok_or_else(|| format!("unknown fuzz target {t:?}"))?,
            ),
        }
    }
    if targets.is_empty() {
        targets = FUZZ_TARGETS.iter().map(|(n, _)| *n).collect();
    }
    let cargo_fuzz = tool("cargo-fuzz")?;
    for target in targets {
        let seeds = FUZZ_TARGETS
            .iter()
            .find(|(n, _)| *n == target)
            .map(|(_, s)| *s)
            .ok_or("unreachable")?;
        let corpus = root().join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        let seed_dir = root().join("target/fuzz-seeds").join(target);
        write_seeds(seeds, &seed_dir)?;
        // `-s none`: no sanitizer, so it builds with the stable toolchain. New inputs go
        // to the first directory (the corpus); the seeds are only read.
        let mut c = Command::new(&cargo_fuzz);
        c.current_dir(root().join("fuzz"))
            .args(["run", "-s", "none", target])
            .arg(&corpus)
            .arg(&seed_dir)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-max_len=65536");
        run(c)?;
    }
    Ok(())
}
