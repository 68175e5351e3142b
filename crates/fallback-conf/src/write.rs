//! [`Document`] back to aspera.conf XML.

use std::fmt::Write as _;

use quick_xml::escape::escape;

use crate::model::{Document, HttpServer, Layer, Secret, Web};

struct Out {
    s: String,
    depth: usize,
}

impl Out {
    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.s.push_str("  ");
        }
    }

    fn open(&mut self, name: &str) {
        self.indent();
        let _ = writeln!(self.s, "<{name}>");
        self.depth += 1;
    }

    fn close(&mut self, name: &str) {
        self.depth -= 1;
        self.indent();
        let _ = writeln!(self.s, "</{name}>");
    }

    fn leaf(&mut self, name: &str, value: Option<impl ToString>) {
        if let Some(v) = value {
            self.indent();
            let _ = writeln!(self.s, "<{name}>{}</{name}>", escape(v.to_string()));
        }
    }

    /// Opens the chain `path` (slash separated) around `body` if `any` is true.
    fn nest(&mut self, path: &[&str], any: bool, body: impl FnOnce(&mut Self)) {
        if !any {
            return;
        }
        for p in path {
            self.open(p);
        }
        body(self);
        for p in path.iter().rev() {
            self.close(p);
        }
    }
}

impl Document {
    /// Writes the document as aspera.conf XML that parses back to an equal document.
    pub fn to_xml(&self) -> String {
        let mut o = Out {
            s: String::from("<?xml version='1.0' encoding='UTF-8'?>\n"),
            depth: 0,
        };
        o.s.push_str("<CONF version=\"2\">\n");
        o.depth = 1;
        http_server(&mut o, &self.http_server);
        if let Some(w) = &self.web {
            web(&mut o, w);
        }
        o.open("default");
        layer(&mut o, &self.default);
        o.close("default");
        if !self.users.is_empty() || !self.groups.is_empty() {
            o.open("aaa");
            o.open("realms");
            o.open("realm");
            if !self.users.is_empty() {
                o.open("users");
                for u in &self.users {
                    o.open("user");
                    o.leaf("name", Some(&u.name));
                    layer(&mut o, &u.settings);
                    o.close("user");
                }
                o.close("users");
            }
            if !self.groups.is_empty() {
                o.open("groups");
                for g in &self.groups {
                    o.open("group");
                    o.leaf("name", Some(&g.name));
                    o.leaf("precedence", g.precedence);
                    layer(&mut o, &g.settings);
                    o.close("group");
                }
                o.close("groups");
            }
            o.close("realm");
            o.close("realms");
            o.close("aaa");
        }
        o.s.push_str("</CONF>\n");
        o.s
    }
}

fn http_server(o: &mut Out, h: &HttpServer) {
    o.open("http_server");
    o.leaf("enable_http", h.enable_http);
    o.leaf("http_port", h.http_port);
    o.leaf("enable_https", h.enable_https);
    o.leaf("https_port", h.https_port);
    o.leaf("bind_address", h.bind_address.as_ref());
    o.leaf("cert_file", h.cert_file.as_ref());
    o.leaf("key_file", h.key_file.as_ref());
    o.leaf("restartable_transfers", h.restartable_transfers);
    o.leaf("session_activity_timeout", h.session_activity_timeout);
    o.leaf("listen_backlog", h.listen_backlog);
    o.leaf("persistent_connection", h.persistent_connection);
    o.leaf("mgmt_address", h.mgmt_address.as_ref());
    o.close("http_server");
}

fn web(o: &mut Out, w: &Web) {
    o.indent();
    o.s.push_str("<WEB");
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    if let Some(b) = w.http_fallback {
        let _ = write!(o.s, " HttpFallback=\"{}\"", yes_no(b));
    }
    for (name, v) in [
        ("HttpFallbackPort", w.http_fallback_port),
        ("HttpsFallbackPort", w.https_fallback_port),
        ("SshPort", w.ssh_port),
        ("UdpPort", w.udp_port),
    ] {
        if let Some(p) = v {
            let _ = write!(o.s, " {name}=\"{p}\"");
        }
    }
    o.s.push_str(" />\n");
}

fn layer(o: &mut Out, l: &Layer) {
    let auth_transfer = l.transfer_in.is_some() || l.transfer_out.is_some();
    let token = l.token_key.is_some()
        || l.retired_keys.is_some()
        || l.token_cipher.is_some()
        || l.token_life_seconds.is_some()
        || l.filename_hash.is_some();
    o.nest(&["authorization"], auth_transfer || token, |o| {
        o.nest(&["transfer"], auth_transfer, |o| {
            o.nest(&["in"], l.transfer_in.is_some(), |o| {
                o.leaf("value", l.transfer_in);
            });
            o.nest(&["out"], l.transfer_out.is_some(), |o| {
                o.leaf("value", l.transfer_out);
            });
        });
        o.nest(&["token"], token, |o| {
            o.leaf("encryption_key", l.token_key.as_ref().map(Secret::expose));
            if let Some(keys) = &l.retired_keys {
                o.nest(&["retired_keys"], true, |o| {
                    for k in keys {
                        o.nest(&["key"], true, |o| {
                            o.leaf("encryption_key", Some(k.secret.expose()));
                            o.leaf("accept_until", Some(k.accept_until_text.as_str()));
                        });
                    }
                });
            }
            o.leaf("encryption_type", l.token_cipher);
            o.leaf("life_seconds", l.token_life_seconds);
            o.leaf("filename_hash", l.filename_hash);
        });
    });
    let path = l.docroot.is_some()
        || !l.peer_docroots.is_empty()
        || l.restrictions.is_some()
        || l.read_allowed.is_some()
        || l.write_allowed.is_some()
        || l.dir_allowed.is_some();
    let handling = l.overwrite.is_some()
        || l.file_create_mode.is_some()
        || l.file_create_grant_mask.is_some()
        || l.directory_create_mode.is_some()
        || l.directory_create_grant_mask.is_some();
    o.nest(&["file_system"], path || handling, |o| {
        o.nest(&["access", "paths", "path"], path, |o| {
            for d in &l.peer_docroots {
                o.indent();
                let _ = writeln!(
                    o.s,
                    "<absolute peer_ip=\"{}\">{}</absolute>",
                    d.peer_ip,
                    escape(d.path.as_str())
                );
            }
            o.leaf("absolute", l.docroot.as_ref());
            o.leaf("read_allowed", l.read_allowed);
            o.leaf("write_allowed", l.write_allowed);
            o.leaf("dir_allowed", l.dir_allowed);
            if let Some(rs) = &l.restrictions {
                o.nest(&["restrictions"], true, |o| {
                    for r in rs {
                        o.leaf("restriction", Some(r));
                    }
                });
            }
        });
        o.leaf("overwrite", l.overwrite);
        o.leaf("file_create_mode", l.file_create_mode);
        o.leaf("file_create_grant_mask", l.file_create_grant_mask);
        o.leaf("directory_create_mode", l.directory_create_mode);
        o.leaf("directory_create_grant_mask", l.directory_create_grant_mask);
    });
    let enc = l.allowed_cipher.is_some() || l.user_value.is_some();
    let cap = |c: Option<u64>| c.map_or_else(|| "Unlimited".to_owned(), |k| k.to_string());
    o.nest(
        &["transfer"],
        enc || l.in_rate_cap.is_some() || l.out_rate_cap.is_some(),
        |o| {
            o.nest(&["encryption"], enc, |o| {
                o.leaf("allowed_cipher", l.allowed_cipher);
                o.leaf("user_value", l.user_value);
            });
            for (dir, c) in [("in", l.in_rate_cap), ("out", l.out_rate_cap)] {
                o.nest(
                    &[dir, "bandwidth", "flow", "target_rate"],
                    c.is_some(),
                    |o| {
                        o.leaf("cap", c.map(cap));
                    },
                );
            }
        },
    );
}
