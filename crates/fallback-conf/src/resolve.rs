//! Effective settings: user > groups (lowest precedence number first) > default >
//! built-in default, each value with where it came from.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;

use crate::diag::Pos;
use crate::docroot::{Docroot, S3Root};
use crate::model::{
    Cipher, FileMode, FilenameHash, Layer, Overwrite, Secret, TokenCipher, TransferAuth,
};
use crate::parse::{Scope, Spans};
use crate::{Config, Document};

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Origin {
    /// Not written anywhere: the real product's default.
    Builtin,
    /// Written directly under `<CONF>` (`<http_server>`, `<WEB>`).
    Global {
        /// Where it is written.
        pos: Pos,
    },
    /// Written in `<default>`.
    Default {
        /// Where it is written.
        pos: Pos,
    },
    /// Written in a group the user belongs to.
    Group {
        /// The group's name.
        name: String,
        /// The group's precedence (lower wins).
        precedence: u32,
        /// Where it is written.
        pos: Pos,
    },
    /// Written in the user's own section.
    User {
        /// The user's name.
        name: String,
        /// Where it is written.
        pos: Pos,
    },
}

impl Origin {
    /// Where the value is written, if it is written at all.
    pub fn pos(&self) -> Option<Pos> {
        match self {
            Origin::Builtin => None,
            Origin::Global { pos }
            | Origin::Default { pos }
            | Origin::Group { pos, .. }
            | Origin::User { pos, .. } => Some(*pos),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Builtin => f.write_str("built-in default"),
            Origin::Global { pos } => write!(f, "file, line {}", pos.line),
            Origin::Default { pos } => write!(f, "<default>, line {}", pos.line),
            Origin::Group {
                name,
                precedence,
                pos,
            } => write!(
                f,
                "group {name} (precedence {precedence}), line {}",
                pos.line
            ),
            Origin::User { name, pos } => write!(f, "user {name}, line {}", pos.line),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sourced<T> {
    /// The effective value.
    pub value: T,
    /// Where it came from.
    pub origin: Origin,
}

impl<T> Sourced<T> {
    fn builtin(value: T) -> Self {
        Self {
            value,
            origin: Origin::Builtin,
        }
    }
}

/// The effective transfer settings of one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserSettings {
    /// The user these settings are for; empty for the `<default>` section alone.
    pub user: String,
    /// Uploads to the server.
    pub transfer_in: Sourced<TransferAuth>,
    /// Downloads from the server.
    pub transfer_out: Sourced<TransferAuth>,
    /// The token secret, if any applies.
    pub token_key: Sourced<Option<Secret>>,
    /// Keys rotated out that still verify their tokens until their time (empty: none).
    pub retired_keys: Sourced<Vec<crate::model::RetiredKey>>,
    /// Token cipher.
    pub token_cipher: Sourced<TokenCipher>,
    /// Default token lifetime in seconds.
    pub token_life_seconds: Sourced<u64>,
    /// File name hash of real-product tokens.
    pub filename_hash: Sourced<FilenameHash>,
    /// The docroot for clients that no `peer_ip` docroot names, with `$(name)` and
    /// `$(home)` substituted; `None` means transfers are refused (never the whole file
    /// system), and [`UserSettings::docroot_problem`] says why when one is written.
    pub docroot: Sourced<Option<Docroot>>,
    /// The docroot as written, when it has substitutions (`/srv/$(name)`); an `s3://`
    /// URI's credentials redacted.
    pub docroot_written: Option<String>,
    /// Docroots for single client addresses (`<absolute peer_ip=…>`), substituted.
    pub peer_docroots: Vec<(IpAddr, Docroot)>,
    /// Why a written docroot cannot be used for this user (a name that cannot be a
    /// directory name, no home directory for `$(home)`).
    pub docroot_problem: Option<String>,
    /// `restrictions`: path rules, in order (`!` rejects; with any other rule, a file
    /// must match one). Empty: no restriction.
    pub restrictions: Sourced<Vec<String>>,
    /// Whether uploads may replace existing files.
    pub overwrite: Sourced<Overwrite>,
    /// Exact mode of created files, when set.
    pub file_create_mode: Sourced<Option<FileMode>>,
    /// Mode of created files without `file_create_mode`.
    pub file_create_grant_mask: Sourced<FileMode>,
    /// Exact mode of created directories, when set.
    pub directory_create_mode: Sourced<Option<FileMode>>,
    /// Mode of created directories without `directory_create_mode`.
    pub directory_create_grant_mask: Sourced<FileMode>,
    /// Most kbps of one upload (`transfer/in/.../target_rate/cap`); `None`: unlimited.
    pub in_rate_cap: Sourced<Option<u64>>,
    /// Most kbps of one download (`transfer/out/.../target_rate/cap`); `None`: unlimited.
    pub out_rate_cap: Sourced<Option<u64>>,
    /// Whether files may be read (downloads).
    pub read_allowed: Sourced<bool>,
    /// Whether files may be written (uploads).
    pub write_allowed: Sourced<bool>,
    /// Whether directories may be listed and transferred.
    pub dir_allowed: Sourced<bool>,
    /// Allowed in-transit cipher.
    pub allowed_cipher: Sourced<Cipher>,
    /// The user's cipher preference.
    pub user_value: Sourced<Cipher>,
}

impl UserSettings {
    /// The docroot for a client at `peer` (its own address, or the one a trusted proxy
    /// forwarded): the `peer_ip` docroot that names it, else [`UserSettings::docroot`].
    pub fn docroot_for(&self, peer: Option<IpAddr>) -> Option<&Docroot> {
        peer.and_then(|ip| {
            let ip = ip.to_canonical();
            self.peer_docroots
                .iter()
                .find(|(p, _)| p.to_canonical() == ip)
                .map(|(_, d)| d)
        })
        .or(self.docroot.value.as_ref())
    }

    /// The mode given to files this user uploads: `file_create_mode` when set, else
    /// the grant mask (HTTP carries no source mode for it to add to).
    pub fn file_mode(&self) -> u32 {
        self.file_create_mode
            .value
            .unwrap_or(self.file_create_grant_mask.value)
            .0
    }

    /// The mode given to directories created for this user's uploads.
    pub fn dir_mode(&self) -> u32 {
        self.directory_create_mode
            .value
            .unwrap_or(self.directory_create_grant_mask.value)
            .0
    }

    /// Bytes per second of one upload (`Some`) or download under the caps, from
    /// kbps (1 kbps = 1000 bit/s = 125 bytes/s).
    pub fn rate_limit(&self, upload: bool) -> Option<u64> {
        let cap = if upload {
            self.in_rate_cap.value
        } else {
            self.out_rate_cap.value
        };
        cap.map(|kbps| kbps.saturating_mul(125))
    }

    /// The cipher this user's transfers must use, if they must be encrypted: the
    /// `allowed_cipher` when it names a cipher, else `user_value` when that does.
    /// Such a user gets HTTPS fallback only.
    pub fn required_cipher(&self) -> Option<Cipher> {
        [self.allowed_cipher.value, self.user_value.value]
            .into_iter()
            .find(|c| c.is_cipher())
    }

    /// Whether this user's transfers must be encrypted (HTTPS only).
    pub fn must_encrypt(&self) -> bool {
        self.required_cipher().is_some()
    }
}

/// The effective `<http_server>` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerSettings {
    /// Serve plain HTTP.
    pub enable_http: Sourced<bool>,
    /// HTTP port.
    pub http_port: Sourced<u16>,
    /// Serve HTTPS.
    pub enable_https: Sourced<bool>,
    /// HTTPS port.
    pub https_port: Sourced<u16>,
    /// Listen address (`0.0.0.0`: all interfaces).
    pub bind_address: Sourced<String>,
    /// Certificate file; `None`: a self-signed certificate is generated at start.
    pub cert_file: Sourced<Option<PathBuf>>,
    /// Private key file.
    pub key_file: Sourced<Option<PathBuf>>,
    /// Interrupted transfers may resume.
    pub restartable_transfers: Sourced<bool>,
    /// Seconds without client activity before a transfer is cut off; 0: never.
    pub session_activity_timeout: Sourced<u64>,
    /// Accept backlog, per listener.
    pub listen_backlog: Sourced<u32>,
    /// Keep-alive (undocumented in the product).
    pub persistent_connection: Sourced<bool>,
}

/// How clients reach the fallback service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Clients connect to fallbackd's own ports.
    Direct,
    /// fallbackd listens on loopback behind a reverse proxy on 80/443.
    Proxy,
    /// Both: fallbackd's own ports are reachable and a trusted reverse proxy forwards
    /// to them too (known only with the daemon's trusted proxies).
    Both,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Direct => "direct",
            Mode::Proxy => "proxy",
            Mode::Both => "direct and proxy",
        })
    }
}

impl ServerSettings {
    /// Proxy mode when bound to a loopback address (the article's indirect mode),
    /// direct mode otherwise.
    pub fn mode(&self) -> Mode {
        mode_of(&self.bind_address.value)
    }
}

/// Proxy mode for a loopback listen address, direct mode otherwise.
pub fn mode_of(bind_address: &str) -> Mode {
    let addr = bind_address.trim();
    let loopback = addr.eq_ignore_ascii_case("localhost")
        || addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback { Mode::Proxy } else { Mode::Direct }
}

/// The effective `<WEB>` settings: what the web UI advertises to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebSettings {
    /// Whether FASP URLs carry `fallback=yes`.
    pub http_fallback: Sourced<bool>,
    /// Port advertised for HTTP fallback (users that do not encrypt).
    pub http_fallback_port: Sourced<u16>,
    /// Port advertised for HTTPS fallback (users that must encrypt).
    pub https_fallback_port: Sourced<u16>,
    /// FASP SSH port.
    pub ssh_port: Sourced<u16>,
    /// FASP UDP port.
    pub udp_port: Sourced<u16>,
}

fn pick<T: Clone>(
    spans: &Spans,
    scope: Scope,
    key: &'static str,
    value: Option<&T>,
    origin: impl FnOnce(Pos) -> Origin,
) -> Option<Sourced<T>> {
    let value = value?.clone();
    let pos = spans
        .get(&(scope, key))
        .copied()
        .unwrap_or(Pos { line: 0, column: 0 });
    Some(Sourced {
        value,
        origin: origin(pos),
    })
}

impl Config {
    /// The effective settings of user `user`, member of `groups` (names; groups not
    /// defined in the file are skipped). A docroot with `$(home)` needs the account's
    /// home directory: see [`Config::account`].
    ///
    /// ```
    /// use fallback_conf::{Config, Origin};
    /// let conf = Config::parse(r#"<CONF>
    ///   <default><file_system><access><paths><path><absolute>/srv/$(name)</absolute>
    ///   </path></paths></access></file_system></default>
    ///   <aaa><realms><realm><groups><group><name>partners</name>
    ///     <file_system><access><paths><path><absolute>/srv/partners</absolute>
    ///     </path></paths></access></file_system></group></groups></realm></realms></aaa>
    /// </CONF>"#)?;
    /// let alice = conf.user("alice", &[]);
    /// assert_eq!(alice.docroot_for(None).and_then(|d| d.as_local()), Some(std::path::Path::new("/srv/alice")));
    /// let bob = conf.user("bob", &["partners"]);
    /// assert_eq!(bob.docroot_for(None).and_then(|d| d.as_local()), Some(std::path::Path::new("/srv/partners")));
    /// assert!(matches!(bob.docroot.origin, Origin::Group { .. }));
    /// # Ok::<(), fallback_conf::Error>(())
    /// ```
    pub fn user(&self, user: &str, groups: &[&str]) -> UserSettings {
        self.user_at(user, groups, None)
    }

    /// The effective settings of a system account: its groups apply, and its home
    /// directory stands for `$(home)` in docroots.
    pub fn account(&self, account: &crate::Account) -> UserSettings {
        let groups: Vec<&str> = account.groups.iter().map(String::as_str).collect();
        self.user_at(&account.name, &groups, account.home.as_deref())
    }

    fn user_at(&self, user: &str, groups: &[&str], home: Option<&std::path::Path>) -> UserSettings {
        let doc: &Document = self.document();
        let mut scopes = Vec::new();
        if let Some(&i) = self.users.get(user) {
            scopes.push(Scope::User(i));
        }
        let mut member: Vec<(u32, usize)> = doc
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| groups.contains(&g.name.as_str()))
            .map(|(i, g)| (g.precedence.unwrap_or(0), i))
            .collect();
        // Stable: equal precedence keeps file order.
        member.sort_by_key(|&(p, _)| p);
        scopes.extend(member.into_iter().map(|(_, i)| Scope::Group(i)));
        scopes.push(Scope::Default);
        self.resolve_scopes_at(user, &scopes, home)
    }

    /// Whether `user` has a section of its own (`<aaa><realms><realm><users><user>`).
    pub fn has_user(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// Whether a group named `group` has a section.
    pub fn has_group(&self, group: &str) -> bool {
        self.document().groups.iter().any(|g| g.name == group)
    }

    /// The effective settings of a user that has no section of its own and no group:
    /// `<default>` over the built-in defaults.
    pub fn defaults(&self) -> UserSettings {
        self.resolve_scopes("", &[Scope::Default])
    }

    /// Resolves over `scopes`, highest priority first.
    pub(crate) fn resolve_scopes(&self, user: &str, scopes: &[Scope]) -> UserSettings {
        self.resolve_scopes_at(user, scopes, None)
    }

    fn resolve_scopes_at(
        &self,
        user: &str,
        scopes: &[Scope],
        home: Option<&std::path::Path>,
    ) -> UserSettings {
        let doc = self.document();
        let zero = Pos { line: 0, column: 0 };
        let layers: Vec<(Scope, &Layer, Origin)> = scopes
            .iter()
            .map(|&s| match s {
                Scope::User(i) => (
                    s,
                    &doc.users[i].settings,
                    Origin::User {
                        name: doc.users[i].name.clone(),
                        pos: zero,
                    },
                ),
                Scope::Group(i) => (
                    s,
                    &doc.groups[i].settings,
                    Origin::Group {
                        name: doc.groups[i].name.clone(),
                        precedence: doc.groups[i].precedence.unwrap_or(0),
                        pos: zero,
                    },
                ),
                Scope::Default | Scope::Global => {
                    (Scope::Default, &doc.default, Origin::Default { pos: zero })
                }
            })
            .collect();
        self.resolve(user, &layers, home)
    }

    fn resolve(
        &self,
        user: &str,
        layers: &[(Scope, &Layer, Origin)],
        home: Option<&std::path::Path>,
    ) -> UserSettings {
        let spans = &self.spans;
        macro_rules! field {
            ($field:ident, $key:literal, $builtin:expr) => {
                layers
                    .iter()
                    .find_map(|(scope, layer, origin)| {
                        pick(spans, *scope, $key, layer.$field.as_ref(), |pos| {
                            with_pos(origin, pos)
                        })
                    })
                    .unwrap_or_else(|| Sourced::builtin($builtin))
            };
        }
        macro_rules! optional {
            ($field:ident, $key:literal) => {
                layers
                    .iter()
                    .find_map(|(scope, layer, origin)| {
                        pick(spans, *scope, $key, layer.$field.as_ref(), |pos| {
                            with_pos(origin, pos)
                        })
                    })
                    .map_or_else(
                        || Sourced::builtin(None),
                        |s| Sourced {
                            value: Some(s.value.into()),
                            origin: s.origin,
                        },
                    )
            };
        }
        // The docroot is decided as a whole by the first section that writes one, with
        // or without peer_ip.
        let roots = layers
            .iter()
            .find(|(_, l, _)| l.docroot.is_some() || !l.peer_docroots.is_empty());
        let mut docroot_problem = None;
        let mut sub = |t: &str| match docroot_for_user(t, user, home) {
            Ok(p) => Some(p),
            Err(why) => {
                docroot_problem.get_or_insert(why);
                None
            }
        };
        let (docroot, docroot_written, peer_docroots) = match roots {
            None => (Sourced::builtin(None), None, Vec::new()),
            Some((scope, layer, origin)) => {
                let written = layer.docroot.as_deref();
                let value = written.and_then(&mut sub);
                let peers = layer
                    .peer_docroots
                    .iter()
                    .filter_map(|d| Some((d.peer_ip, sub(&d.path)?)))
                    .collect();
                let key = if written.is_some() {
                    "file_system/access/paths/path/absolute"
                } else {
                    "file_system/access/paths/path/absolute@peer_ip"
                };
                let pos = spans
                    .get(&(*scope, key))
                    .copied()
                    .unwrap_or(Pos { line: 0, column: 0 });
                (
                    Sourced {
                        value,
                        origin: with_pos(origin, pos),
                    },
                    written.filter(|w| w.contains("$(")).map(|w| {
                        // Shown by `config show`: never with a URI's credentials.
                        match S3Root::parse(w) {
                            Ok(r) => r.to_string(),
                            Err(_) if w.contains("://") => "(a URI that cannot be read)".to_owned(),
                            Err(_) => w.to_owned(),
                        }
                    }),
                    peers,
                )
            }
        };
        let restrictions = layers
            .iter()
            .find_map(|(scope, layer, origin)| {
                pick(
                    spans,
                    *scope,
                    "file_system/access/paths/path/restrictions/restriction",
                    layer.restrictions.as_ref(),
                    |pos| with_pos(origin, pos),
                )
            })
            .unwrap_or_else(|| Sourced::builtin(Vec::new()));
        UserSettings {
            user: user.to_owned(),
            docroot_written,
            peer_docroots,
            docroot_problem,
            restrictions,
            overwrite: field!(overwrite, "file_system/overwrite", Overwrite::Allow),
            file_create_mode: optional!(file_create_mode, "file_system/file_create_mode"),
            file_create_grant_mask: field!(
                file_create_grant_mask,
                "file_system/file_create_grant_mask",
                FileMode(0o644)
            ),
            directory_create_mode: optional!(
                directory_create_mode,
                "file_system/directory_create_mode"
            ),
            directory_create_grant_mask: field!(
                directory_create_grant_mask,
                "file_system/directory_create_grant_mask",
                FileMode(0o755)
            ),
            in_rate_cap: field!(
                in_rate_cap,
                "transfer/in/bandwidth/flow/target_rate/cap",
                None
            ),
            out_rate_cap: field!(
                out_rate_cap,
                "transfer/out/bandwidth/flow/target_rate/cap",
                None
            ),
            transfer_in: field!(
                transfer_in,
                "authorization/transfer/in/value",
                TransferAuth::Allow
            ),
            transfer_out: field!(
                transfer_out,
                "authorization/transfer/out/value",
                TransferAuth::Allow
            ),
            token_key: optional!(token_key, "authorization/token/encryption_key"),
            retired_keys: field!(
                retired_keys,
                "authorization/token/retired_keys/key",
                Vec::new()
            ),
            token_cipher: field!(
                token_cipher,
                "authorization/token/encryption_type",
                TokenCipher::Aes128
            ),
            token_life_seconds: field!(
                token_life_seconds,
                "authorization/token/life_seconds",
                86_400
            ),
            filename_hash: field!(
                filename_hash,
                "authorization/token/filename_hash",
                FilenameHash::Sha1
            ),
            docroot,
            read_allowed: field!(
                read_allowed,
                "file_system/access/paths/path/read_allowed",
                true
            ),
            write_allowed: field!(
                write_allowed,
                "file_system/access/paths/path/write_allowed",
                true
            ),
            dir_allowed: field!(
                dir_allowed,
                "file_system/access/paths/path/dir_allowed",
                true
            ),
            allowed_cipher: field!(
                allowed_cipher,
                "transfer/encryption/allowed_cipher",
                Cipher::Any
            ),
            user_value: field!(user_value, "transfer/encryption/user_value", Cipher::Any),
        }
    }

    /// The effective `<http_server>` settings.
    pub fn server(&self) -> ServerSettings {
        let h = &self.document().http_server;
        let spans = &self.spans;
        macro_rules! field {
            ($field:ident, $key:literal, $builtin:expr) => {
                pick(spans, Scope::Global, $key, h.$field.as_ref(), |pos| {
                    Origin::Global { pos }
                })
                .unwrap_or_else(|| Sourced::builtin($builtin))
            };
        }
        macro_rules! path {
            ($field:ident, $key:literal) => {
                pick(spans, Scope::Global, $key, h.$field.as_ref(), |pos| {
                    Origin::Global { pos }
                })
                .map_or_else(
                    || Sourced::builtin(None),
                    |s| Sourced {
                        value: Some(PathBuf::from(s.value)),
                        origin: s.origin,
                    },
                )
            };
        }
        ServerSettings {
            enable_http: field!(enable_http, "http_server/enable_http", false),
            http_port: field!(http_port, "http_server/http_port", 8080),
            enable_https: field!(enable_https, "http_server/enable_https", false),
            https_port: field!(https_port, "http_server/https_port", 8443),
            bind_address: field!(
                bind_address,
                "http_server/bind_address",
                "0.0.0.0".to_owned()
            ),
            cert_file: path!(cert_file, "http_server/cert_file"),
            key_file: path!(key_file, "http_server/key_file"),
            restartable_transfers: field!(
                restartable_transfers,
                "http_server/restartable_transfers",
                true
            ),
            session_activity_timeout: field!(
                session_activity_timeout,
                "http_server/session_activity_timeout",
                20
            ),
            listen_backlog: field!(listen_backlog, "http_server/listen_backlog", 20),
            persistent_connection: field!(
                persistent_connection,
                "http_server/persistent_connection",
                false
            ),
        }
    }

    /// The effective `<WEB>` settings, or `None` when the file has no `<WEB>` element.
    pub fn web(&self) -> Option<WebSettings> {
        let w = self.document().web.as_ref()?;
        let spans = &self.spans;
        macro_rules! field {
            ($field:ident, $key:literal, $builtin:expr) => {
                pick(spans, Scope::Global, $key, w.$field.as_ref(), |pos| {
                    Origin::Global { pos }
                })
                .unwrap_or_else(|| Sourced::builtin($builtin))
            };
        }
        Some(WebSettings {
            http_fallback: field!(http_fallback, "WEB@HttpFallback", false),
            http_fallback_port: field!(http_fallback_port, "WEB@HttpFallbackPort", 8080),
            https_fallback_port: field!(https_fallback_port, "WEB@HttpsFallbackPort", 8443),
            ssh_port: field!(ssh_port, "WEB@SshPort", 33001),
            udp_port: field!(udp_port, "WEB@UdpPort", 33001),
        })
    }
}

/// Whether `name` can stand for `$(name)` in a path: one ordinary file name.
fn is_path_component(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 255
        && !name
            .bytes()
            .any(|b| b == b'/' || b == 0 || b == b'\\' || b.is_ascii_control())
}

/// The docroot written as `template` for `user`: an `s3://` URI or a directory.
pub(crate) fn docroot_for_user(
    template: &str,
    user: &str,
    home: Option<&std::path::Path>,
) -> Result<Docroot, String> {
    if template.starts_with("s3://") {
        return S3Root::parse(template)
            .and_then(|r| r.for_user(user))
            .map(Docroot::S3);
    }
    if template.contains("://") {
        return Err(crate::validate::unsupported_uri(template));
    }
    substitute(template, user, home).map(Docroot::Local)
}

/// The docroot `template` for `user`: `$(name)` is the user's name (which must be a
/// plain file name, so it can never climb out), `$(home)` their home directory.
pub(crate) fn substitute(
    template: &str,
    user: &str,
    home: Option<&std::path::Path>,
) -> Result<PathBuf, String> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(at) = rest.find("$(") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 2..];
        let Some(end) = tail.find(')') else {
            return Err(format!("{template:?} opens $( without closing it"));
        };
        match &tail[..end] {
            "name" => {
                if !is_path_component(user) {
                    return Err(if user.is_empty() {
                        format!("docroot {template:?} needs a user name for $(name)")
                    } else {
                        format!(
                            "user name {user:?} cannot stand for $(name) in {template:?}: \
                             it is not a plain file name"
                        )
                    });
                }
                out.push_str(user);
            }
            "home" => match home.and_then(|h| h.to_str()) {
                Some(h) if h.starts_with('/') => out.push_str(h.trim_end_matches('/')),
                _ => {
                    return Err(format!(
                        "docroot {template:?} needs the home directory of {user:?} for \
                         $(home), and the system has no account of that name"
                    ));
                }
            },
            other => {
                return Err(format!(
                    "{template:?} uses $({other}); the product substitutes only $(name) \
                     and $(home)"
                ));
            }
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(PathBuf::from(out))
}

fn with_pos(origin: &Origin, pos: Pos) -> Origin {
    match origin.clone() {
        Origin::Builtin => Origin::Builtin,
        Origin::Global { .. } => Origin::Global { pos },
        Origin::Default { .. } => Origin::Default { pos },
        Origin::Group {
            name, precedence, ..
        } => Origin::Group {
            name,
            precedence,
            pos,
        },
        Origin::User { name, .. } => Origin::User { name, pos },
    }
}
