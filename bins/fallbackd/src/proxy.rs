//! `--print-proxy-config`: Apache's or nginx's configuration for this instance, written
//! from the same files (`dist/proxy/`) the end-to-end suite runs both proxies with, so
//! what an operator installs is what is tested.

use std::process::ExitCode;

use clap::ValueEnum;
use fallback_conf::Config;

use crate::args::Args;

const APACHE: &str = include_str!("../../../dist/proxy/apache.conf");
const NGINX: &str = include_str!("../../../dist/proxy/nginx.conf");
const NGINX_LOCATION: &str = include_str!("../../../dist/proxy/nginx-location.conf");

/// The time a proxy gives a request on top of the backend's activity timeout: what
/// publishing a large file may take (its fsync) before the answer comes.
const PUBLISH_ALLOWANCE: u64 = 300;

/// Which configuration to print.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ProxyKind {
    /// An include file for Apache's port-80 and port-443 virtual hosts.
    Apache,
    /// nginx's http {} part: the upstream, the WebSocket map, the log format.
    Nginx,
    /// nginx's `location /aspera/` part.
    NginxLocation,
}

/// `HOST:PORT` of a balancer member, checked.
fn member(s: &str) -> Result<String, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("--proxy-member {s:?}: write HOST:PORT"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        return Err(format!("--proxy-member {s:?}: {host:?} is not a host"));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("--proxy-member {s:?}: {port:?} is not a port"))?;
    Ok(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// The configuration text for `kind`: members, timeouts and where it came from filled in.
pub(crate) fn render(kind: ProxyKind, members: &[String], activity: u64, source: &str) -> String {
    let timeout = if activity == 0 {
        3600
    } else {
        activity + PUBLISH_ALLOWANCE
    };
    let activity = if activity == 0 {
        "none".to_owned()
    } else {
        format!("{activity} s")
    };
    let (template, lines) = match kind {
        ProxyKind::Apache => (
            APACHE,
            members
                .iter()
                .map(|m| format!("    BalancerMember http://{m} retry=1 upgrade=websocket"))
                .collect::<Vec<_>>(),
        ),
        ProxyKind::Nginx => (
            NGINX,
            members
                .iter()
                .map(|m| format!("    server {m} max_fails=1 fail_timeout=2s;"))
                .collect(),
        ),
        ProxyKind::NginxLocation => (NGINX_LOCATION, Vec::new()),
    };
    template
        .replace("@BALANCER_MEMBERS@", &lines.join("\n"))
        .replace("@UPSTREAM_SERVERS@", &lines.join("\n"))
        .replace("@TIMEOUT@", &timeout.to_string())
        .replace("@ACTIVITY@", &activity)
        .replace("@SOURCE@", source)
}

/// `--print-proxy-config KIND`: prints it and exits; 1 (and why) when the configuration
/// cannot say it.
pub(crate) fn print(args: &Args, kind: ProxyKind) -> ExitCode {
    let fail = |why: String| {
        eprintln!("fallbackd: --print-proxy-config: {why}");
        ExitCode::from(1)
    };
    let (activity, own, source) = match &args.config {
        Some(file) => {
            let conf = match Config::load(file) {
                Ok(c) => c,
                Err(e) => {
                    for d in e.diagnostics() {
                        eprintln!("{}:{d}", file.display());
                    }
                    return fail(format!("{}: {e}", file.display()));
                }
            };
            let s = conf.server();
            if !s.enable_http.value && args.proxy_member.is_empty() {
                return fail(format!(
                    "{} has no HTTP listener (enable_http): in proxy mode the proxy reaches \
                     fallbackd over HTTP; set <enable_http>true</enable_http>, or name the \
                     members with --proxy-member",
                    file.display()
                ));
            }
            let bind = args
                .bind
                .clone()
                .unwrap_or_else(|| s.bind_address.value.clone());
            let port = args.http_port.unwrap_or(s.http_port.value);
            (
                s.session_activity_timeout.value,
                (bind, port),
                file.display().to_string(),
            )
        }
        // The embedded default: 127.0.0.1:8080, its 20 s activity timeout.
        None => (
            fallback_server::Options::default()
                .activity_timeout
                .map_or(0, |d| d.as_secs()),
            (
                args.bind.clone().unwrap_or_else(|| "127.0.0.1".to_owned()),
                args.http_port.unwrap_or(8080),
            ),
            "the embedded default".to_owned(),
        ),
    };
    let members = if args.proxy_member.is_empty() {
        let (bind, port) = own;
        // A wildcard listener is reached on the loopback from a proxy on this host.
        let host = match bind.as_str() {
            "" | "0.0.0.0" | "::" | "[::]" | "*" => "127.0.0.1".to_owned(),
            h => h.to_owned(),
        };
        if port == 0 {
            return fail(
                "the HTTP port is 0 (any free port): a proxy needs a fixed one; set \
                 <http_port> or --http-port, or name the members with --proxy-member"
                    .to_owned(),
            );
        }
        match member(&format!("{host}:{port}")) {
            Ok(m) => vec![m],
            Err(e) => return fail(e),
        }
    } else {
        let mut out = Vec::new();
        for m in &args.proxy_member {
            match member(m) {
                Ok(m) => out.push(m),
                Err(e) => return fail(e),
            }
        }
        out
    };
    print!("{}", render(kind, &members, activity, &source));
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_timeouts_are_filled_and_nothing_is_left_over() {
        let m = vec!["127.0.0.1:8080".to_owned(), "[::1]:8081".to_owned()];
        for kind in [
            ProxyKind::Apache,
            ProxyKind::Nginx,
            ProxyKind::NginxLocation,
        ] {
            let text = render(kind, &m, 20, "test.conf");
            assert!(
                !text.contains('@'),
                "{kind:?}: a placeholder is left:\n{text}"
            );
        }
        let apache = render(ProxyKind::Apache, &m, 20, "t");
        assert!(apache.contains("BalancerMember http://127.0.0.1:8080 retry=1 upgrade=websocket"));
        assert!(apache.contains("BalancerMember http://[::1]:8081 retry=1"));
        assert!(apache.contains("ProxyTimeout 320"));
        let nginx = render(ProxyKind::Nginx, &m, 20, "t");
        assert!(nginx.contains("server [::1]:8081 max_fails=1"));
        let loc = render(ProxyKind::NginxLocation, &m, 0, "t");
        assert!(loc.contains("proxy_read_timeout 3600s;"));
    }

    #[test]
    fn members_are_checked() {
        assert_eq!(member("10.0.0.5:8080").unwrap(), "10.0.0.5:8080");
        assert_eq!(member("::1:8080").unwrap(), "[::1]:8080");
        for bad in ["nohost", ":80", "h:0", "h:99999", "a b:80", "u@h:80"] {
            assert!(member(bad).is_err(), "{bad}");
        }
    }
}
