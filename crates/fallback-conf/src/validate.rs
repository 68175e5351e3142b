//! Checks across settings: what parses but cannot work.

use std::path::Path;

use crate::Config;

/// Every docroot written in a section, with the key its position is recorded under:
/// the unconditional one, then the `peer_ip` ones.
pub(crate) fn written_docroots(layer: &crate::Layer) -> impl Iterator<Item = (&'static str, &str)> {
    layer
        .docroot
        .iter()
        .map(|d| ("file_system/access/paths/path/absolute", d.as_str()))
        .chain(layer.peer_docroots.iter().map(|d| {
            (
                "file_system/access/paths/path/absolute@peer_ip",
                d.path.as_str(),
            )
        }))
}

/// Why a docroot URI of another scheme than `s3://` cannot be used (credentials
/// redacted).
pub(crate) fn unsupported_uri(uri: &str) -> String {
    format!(
        "docroot {} is a URI of a kind fallback does not serve (it serves local paths and \
         s3:// buckets; the scheme is case-sensitive): write an absolute path or an s3:// URI",
        redact_uri(uri)
    )
}

/// A URI with any `user:secret@` part replaced, for messages.
fn redact_uri(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://<redacted>@{}", &uri[..s], &uri[at + 1..]),
        _ => uri.to_owned(),
    }
}
use crate::diag::{Code, Diagnostic, Pos};
use crate::docroot::S3Root;
use crate::model::TransferAuth;
use crate::parse::Scope;
use crate::resolve::{Mode, Origin, UserSettings};

/// Token secrets shorter than this get a warning (the product recommends 20 or more).
pub const MIN_TOKEN_KEY_CHARS: usize = 20;

impl Config {
    /// The element path of `key` in `scope`, as findings show it.
    fn element_path(&self, scope: Scope, key: &str) -> String {
        let doc = self.document();
        let section = match scope {
            Scope::Global => "/CONF".to_owned(),
            Scope::Default => "/CONF/default".to_owned(),
            Scope::User(i) => format!("/CONF/aaa/realms/realm/users/user[{}]", doc.users[i].name),
            Scope::Group(i) => {
                format!(
                    "/CONF/aaa/realms/realm/groups/group[{}]",
                    doc.groups[i].name
                )
            }
        };
        match key {
            "" => section,
            k => format!("{section}/{}", k.replace('@', "/@")),
        }
    }

    /// The settings written in `scope`.
    pub(crate) fn layer(&self, scope: Scope) -> &crate::Layer {
        let doc = self.document();
        match scope {
            Scope::User(i) => &doc.users[i].settings,
            Scope::Group(i) => &doc.groups[i].settings,
            Scope::Default | Scope::Global => &doc.default,
        }
    }

    /// Where `key` is written in `scope`, or just its path when it is not written.
    pub(crate) fn at(&self, scope: Scope, key: &'static str) -> (Option<Pos>, String) {
        (
            self.spans.get(&(scope, key)).copied(),
            self.element_path(scope, key),
        )
    }

    pub(crate) fn validate(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        self.check_listeners(&mut out);
        self.check_web(&mut out);
        self.check_sections(&mut out);
        out
    }

    fn check_listeners(&self, out: &mut Vec<Diagnostic>) {
        let s = self.server();
        if !s.enable_http.value && !s.enable_https.value {
            let (pos, path) = self.at(Scope::Global, "http_server/enable_http");
            out.push(Diagnostic::new(
                Code::NoListener,
                pos,
                path,
                "neither enable_http nor enable_https is true, so HTTP fallback is off; \
                 set <enable_http>true</enable_http> or <enable_https>true</enable_https> \
                 in <http_server>",
            ));
        }
        if s.enable_http.value && s.enable_https.value && s.http_port.value == s.https_port.value {
            let (pos, path) = self.at(Scope::Global, "http_server/https_port");
            out.push(Diagnostic::new(
                Code::PortConflict,
                pos,
                path,
                format!(
                    "http_port and https_port are both {}; give HTTPS its own port (8443 by default)",
                    s.http_port.value
                ),
            ));
        }
        match (&s.cert_file.value, &s.key_file.value) {
            (Some(_), None) => {
                let (pos, path) = self.at(Scope::Global, "http_server/cert_file");
                out.push(Diagnostic::new(
                    Code::CertWithoutKey,
                    pos,
                    path,
                    "cert_file is set but key_file is not; set both, or neither for a \
                     generated self-signed certificate",
                ));
            }
            (None, Some(_)) => {
                let (pos, path) = self.at(Scope::Global, "http_server/key_file");
                out.push(Diagnostic::new(
                    Code::CertWithoutKey,
                    pos,
                    path,
                    "key_file is set but cert_file is not; set both, or neither for a \
                     generated self-signed certificate",
                ));
            }
            _ => {}
        }
    }

    fn check_web(&self, out: &mut Vec<Diagnostic>) {
        let s = self.server();
        let Some(w) = self.web() else { return };
        let (pos, path) = self.at(Scope::Global, "WEB");
        let serving = s.enable_http.value || s.enable_https.value;
        if serving && !w.http_fallback.value {
            out.push(Diagnostic::new(
                Code::FallbackNotAdvertised,
                pos,
                path.clone(),
                "<http_server> is enabled but <WEB HttpFallback> is not \"yes\": FASP URLs \
                 will not carry fallback=yes and clients will not fall back",
            ));
        }
        if s.mode() == Mode::Proxy {
            // Proxy mode: <WEB> names the proxy's public ports (80/443); they differ
            // from <http_server> on purpose.
            return;
        }
        let pairs = [
            (
                s.enable_http.value,
                "HttpFallbackPort",
                w.http_fallback_port.value,
                "http_port",
                s.http_port.value,
            ),
            (
                s.enable_https.value,
                "HttpsFallbackPort",
                w.https_fallback_port.value,
                "https_port",
                s.https_port.value,
            ),
        ];
        for (enabled, attr, advertised, element, listening) in pairs {
            if enabled && advertised != listening {
                out.push(Diagnostic::new(
                    Code::WebPortMismatch,
                    pos,
                    path.clone(),
                    format!(
                        "<WEB {attr}=\"{advertised}\"> but <http_server> {element} is \
                         {listening}: in direct mode clients are sent to a port nobody \
                         listens on (fine in proxy mode, where fallbackd binds to 127.0.0.1)"
                    ),
                ));
            }
        }
    }

    fn check_sections(&self, out: &mut Vec<Diagnostic>) {
        let doc = self.document();
        // Secrets and docroots, wherever they are written.
        let mut scopes = vec![Scope::Default];
        scopes.extend((0..doc.users.len()).map(Scope::User));
        scopes.extend((0..doc.groups.len()).map(Scope::Group));
        for &scope in &scopes {
            let layer = match scope {
                Scope::User(i) => &doc.users[i].settings,
                Scope::Group(i) => &doc.groups[i].settings,
                Scope::Default | Scope::Global => &doc.default,
            };
            if let Some(key) = &layer.token_key
                && key.char_len() < MIN_TOKEN_KEY_CHARS
            {
                let (pos, path) = self.at(scope, "authorization/token/encryption_key");
                out.push(Diagnostic::new(
                    Code::WeakTokenKey,
                    pos,
                    path,
                    format!(
                        "the token encryption_key has {} characters; use at least \
                         {MIN_TOKEN_KEY_CHARS} random characters",
                        key.char_len()
                    ),
                ));
            }
            if let (Some(key), Some(retired)) = (&layer.token_key, &layer.retired_keys)
                && retired.iter().any(|r| r.secret == *key)
            {
                let (pos, path) = self.at(scope, "authorization/token/retired_keys/key");
                out.push(Diagnostic::new(
                    Code::Ineffective,
                    pos,
                    path,
                    "the current encryption_key is also listed under retired_keys, where \
                     it has no effect: it stays current and its tokens never stop being \
                     accepted; remove it from retired_keys (fallback token rotate makes a \
                     new key)"
                        .to_owned(),
                ));
            }
            for (key, root) in written_docroots(layer) {
                let (pos, path) = self.at(scope, key);
                if root.starts_with("s3://") {
                    // Well formed, and `$(name)` usable (checked with a stand-in name;
                    // the real ones per user when they connect).
                    if let Err(why) = S3Root::parse(root).and_then(|r| r.for_user("user")) {
                        out.push(Diagnostic::new(Code::DocrootUri, pos, path, why));
                    }
                    continue;
                }
                if root.contains("://") {
                    out.push(Diagnostic::new(
                        Code::DocrootNotAbsolute,
                        pos,
                        path,
                        unsupported_uri(root),
                    ));
                    continue;
                }
                if !(Path::new(root).is_absolute() || root.starts_with("$(home)")) {
                    out.push(Diagnostic::new(
                        Code::DocrootNotAbsolute,
                        pos,
                        path,
                        format!("docroot {root:?} is not an absolute path; write it from /"),
                    ));
                    continue;
                }
                // The variables are known and well formed (checked with a stand-in
                // name and home; the real ones are checked per user on the host).
                if let Err(why) =
                    crate::resolve::substitute(root, "user", Some(Path::new("/home/user")))
                {
                    out.push(Diagnostic::new(Code::DocrootSubstitution, pos, path, why));
                }
            }
        }

        let any_group_key = doc.groups.iter().any(|g| g.settings.token_key.is_some());
        let any_group_root = doc.groups.iter().any(|g| g.settings.docroot.is_some());
        let any_root = doc.default.docroot.is_some()
            || any_group_root
            || doc.users.iter().any(|u| u.settings.docroot.is_some());
        if !any_root {
            out.push(Diagnostic::new(
                Code::DocrootMissing,
                None,
                "/CONF/default/file_system/access/paths/path/absolute",
                "no docroot is configured anywhere, so every transfer would be refused; \
                 set <file_system><access><paths><path><absolute>/srv/data</absolute>... \
                 in <default> or per user",
            ));
        }

        // Each section seen over <default>: a token demanded with no secret to check it.
        let defaults = self.defaults();
        self.check_token_key(&defaults, Scope::Default, out);
        for i in 0..doc.users.len() {
            let eff = self.resolve_scopes(&doc.users[i].name, &[Scope::User(i), Scope::Default]);
            if !any_group_key {
                self.check_token_key(&eff, Scope::User(i), out);
            }
            if any_root && !any_group_root && eff.docroot.value.is_none() {
                let (pos, path) = self.at(Scope::User(i), "");
                out.push(Diagnostic::new(
                    Code::DocrootMissing,
                    pos,
                    path,
                    format!(
                        "user {:?} has no docroot (none in the section or in <default>), so \
                         their transfers would be refused",
                        doc.users[i].name
                    ),
                ));
            }
        }
        for i in 0..doc.groups.len() {
            let eff = self.resolve_scopes(&doc.groups[i].name, &[Scope::Group(i), Scope::Default]);
            self.check_token_key(&eff, Scope::Group(i), out);
        }
    }

    /// Reports a section that demands tokens (itself) while no secret applies.
    fn check_token_key(&self, eff: &UserSettings, scope: Scope, out: &mut Vec<Diagnostic>) {
        if eff.token_key.value.is_some() {
            return;
        }
        for (dir, setting, key) in [
            (
                "uploads",
                &eff.transfer_in,
                "authorization/transfer/in/value",
            ),
            (
                "downloads",
                &eff.transfer_out,
                "authorization/transfer/out/value",
            ),
        ] {
            let here = matches!(
                (&setting.origin, scope),
                (Origin::Default { .. }, Scope::Default)
                    | (Origin::User { .. }, Scope::User(_))
                    | (Origin::Group { .. }, Scope::Group(_))
            );
            if here && setting.value == TransferAuth::Token {
                let (pos, path) = self.at(scope, key);
                out.push(Diagnostic::new(
                    Code::TokenKeyMissing,
                    pos,
                    path,
                    format!(
                        "{dir} require a token but no authorization/token/encryption_key \
                         applies here, so no token can be verified; set one in this \
                         section or in <default>"
                    ),
                ));
                return;
            }
        }
    }
}
