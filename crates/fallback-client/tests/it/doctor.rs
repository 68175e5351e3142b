//! doctor tells a server that is down from a port whose packets are dropped.

use crate::*;

fn fallback_port_fix(checks: &[fallback_client::Check]) -> (String, String) {
    let c = checks
        .iter()
        .find(|c| c.name == "fallback port")
        .expect("a fallback port check");
    (c.detail.clone(), c.fix.clone().unwrap_or_default())
}

#[tokio::test]
async fn a_dropped_port_and_a_closed_one_get_different_advice() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        connect_timeout: Duration::from_secs(1),
        ssh_probe_timeout: Duration::from_secs(1),
        ..options(dir.path())
    };
    let token = download_token("alice", &["/"]);
    // Closed: nothing listens (a port just freed).
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = |port: u16| {
        format!("fasp://alice@127.0.0.1:1/?token={token}&httpport={port}&fallback=yes&enc=none")
    };
    let checks = fallback_client::doctor(&url(closed), None, &opts).await;
    let (detail, fix) = fallback_port_fix(&checks);
    assert!(detail.contains("connection refused"), "{detail}");
    assert!(fix.contains("nothing listens"), "{fix}");
    // Dropped: a listener whose accept queue is full (backlog 0, one connection
    // waiting) lets further SYNs go unanswered, as a dropping firewall does.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let full = socket.listen(0).unwrap();
    let port = full.local_addr().unwrap().port();
    let _waiting = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let checks = fallback_client::doctor(&url(port), None, &opts).await;
    let (detail, fix) = fallback_port_fix(&checks);
    assert!(detail.contains("no answer within"), "{detail}");
    assert!(fix.contains("dropped"), "{fix}");
    drop(full);
}
