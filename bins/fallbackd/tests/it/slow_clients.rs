//! Clients that hold connections without sending: cut off after the header timeout
//! (slowloris, idle keep-alive) and the handshake timeout (TLS), while others are served.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::Server;

/// Seconds until the server closes `s` (reads until EOF), at most 20.
fn closed_after(mut s: TcpStream) -> (Duration, Vec<u8>) {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    (start.elapsed(), got)
}

#[test]
fn slow_idle_and_silent_connections_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_custom(
        dir.path(),
        0,
        0,
        "",
        &["--header-timeout", "2", "--handshake-timeout", "2"],
    );
    // Slowloris: a header line now and then, never the blank line.
    let mut slow = TcpStream::connect(server.http).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let dripping = std::thread::spawn(move || {
        for i in 0..10 {
            std::thread::sleep(Duration::from_millis(500));
            if slow
                .write_all(format!("X-Drip-{i}: y\r\n").as_bytes())
                .is_err()
            {
                break;
            }
        }
        slow
    });
    // Idle keep-alive: one request answered, then silence.
    let mut idle = TcpStream::connect(server.http).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Silent TLS: connects to the HTTPS port and never says hello.
    let silent = TcpStream::connect(server.https).unwrap();
    let started = Instant::now();
    let (t, got) = closed_after(idle);
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    assert!(t < Duration::from_secs(6), "idle keep-alive kept {t:?}");
    let (t, _) = closed_after(silent);
    assert!(t < Duration::from_secs(6), "silent TLS client kept {t:?}");
    let slow = dripping.join().unwrap();
    let (_, got) = closed_after(slow);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "slowloris kept {:?}",
        started.elapsed()
    );
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "slowloris got {text}"
    );
    // Meanwhile and after, others are served.
    let (status, _) = crate::adversarial_send(server.http);
    assert_eq!(status, 200);
}
