//! Clients that hold connections without sending: cut off after the header timeout
//! (slowloris, idle keep-alive) and the handshake timeout (TLS), while others are served.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::Server;

/// Reads `s` until the server closes it and returns what came; panics if the server
/// keeps it open (no EOF within 60 s, a guard against hanging, not a measurement).
fn closed_by_server(mut s: TcpStream, what: &str) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let closed = s.read_to_end(&mut got);
    assert!(
        closed.is_ok(),
        "{what}: the server kept the connection open ({closed:?})"
    );
    eprintln!("{what}: closed by the server after {:?}", start.elapsed());
    got
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
    // One line every 500 ms for 20 s: far past the 2 s header timeout. A server that
    // only timed out idleness would never cut it; the writes must start failing.
    let dripping = std::thread::spawn(move || {
        let mut refused = false;
        for i in 0..40 {
            std::thread::sleep(Duration::from_millis(500));
            if slow
                .write_all(format!("X-Drip-{i}: y\r\n").as_bytes())
                .is_err()
            {
                refused = true;
                break;
            }
        }
        (slow, refused)
    });
    // Idle keep-alive: one request answered, then silence.
    let mut idle = TcpStream::connect(server.http).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Silent TLS: connects to the HTTPS port and never says hello.
    let silent = TcpStream::connect(server.https).unwrap();
    let got = closed_by_server(idle, "idle keep-alive");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    closed_by_server(silent, "silent TLS client");
    let (slow, refused) = dripping.join().unwrap();
    assert!(
        refused,
        "slowloris: 20 s of header lines and the server took them all"
    );
    let got = closed_by_server(slow, "slowloris");
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "slowloris got {text}"
    );
    // Meanwhile and after, others are served.
    let (status, _) = crate::adversarial_send(server.http);
    assert_eq!(status, 200);
}
