//! Stage two: element tree to [`Document`], with a position for every value and a
//! finding for everything wrong or ignored.

use std::collections::HashMap;

use crate::diag::{Code, Diagnostic, LineIndex, Pos};
use crate::model::{
    Cipher, Document, FileMode, FilenameHash, Group, HttpServer, Keyword, Layer, Overwrite,
    PeerDocroot, RetiredKey, Secret, TokenCipher, TransferAuth, User, Web,
};
use crate::xml::Element;

/// Which section a value was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    /// Directly under `<CONF>` (`<http_server>`, `<WEB>`).
    Global,
    /// `<default>`.
    Default,
    /// The n-th user of [`Document::users`].
    User(usize),
    /// The n-th group of [`Document::groups`].
    Group(usize),
}

/// Positions of every value, keyed by section and element path relative to the section
/// (`"authorization/token/encryption_key"`, `"http_server/http_port"`, `"WEB@SshPort"`).
/// The empty key is the section element itself. Element paths are derived from the
/// key and the section (see `Config::element_path`), not stored.
pub(crate) type Spans = HashMap<(Scope, &'static str), Pos>;

pub(crate) struct Parsed {
    pub(crate) doc: Document,
    pub(crate) spans: Spans,
    pub(crate) diagnostics: Vec<Diagnostic>,
    /// Index of each user name in `doc.users`.
    pub(crate) users: HashMap<String, usize>,
}

struct Ctx<'a> {
    idx: &'a LineIndex<'a>,
    spans: Spans,
    diags: Vec<Diagnostic>,
    /// Index of each user and group name, for duplicate checks in linear time.
    users: HashMap<String, usize>,
    groups: HashMap<String, usize>,
}

impl Ctx<'_> {
    fn report(&mut self, code: Code, at: usize, path: &str, msg: String) {
        self.diags
            .push(Diagnostic::new(code, Some(self.idx.pos(at)), path, msg));
    }

    /// Records where `key` was set; reports a duplicate and returns false when it was
    /// already set in the same section.
    fn claim(
        &mut self,
        scope: Scope,
        key: &'static str,
        el: &Element<'_>,
        path: impl FnOnce() -> String,
    ) -> bool {
        let pos = self.idx.pos(el.start);
        if let Some(first) = self.spans.get(&(scope, key)) {
            let msg = format!(
                "<{}> is already set at {first} in this section; remove one of them",
                el.name
            );
            self.report(Code::DuplicateElement, el.start, &path(), msg);
            return false;
        }
        self.spans.insert((scope, key), pos);
        true
    }

    /// An unknown element where a misspelling loses a section that holds security
    /// settings (`<defualt>`, `<usrs>`): an error, not a warning.
    fn unknown_section(&mut self, el: &Element<'_>, path: &str, known: &[&str], lost: &[&str]) {
        match suggest(el.name, known) {
            Some(s) if lost.contains(&s) => {
                let msg = format!(
                    "unknown element <{}> (did you mean <{s}>?): everything inside it, \
                     authorization and docroots included, would silently not apply, so \
                     the file is refused until it is fixed",
                    el.name
                );
                self.report(Code::UnknownSecurityElement, el.start, path, msg);
            }
            _ => self.unknown(el, path, known),
        }
    }

    fn unknown(&mut self, el: &Element<'_>, path: &str, known: &[&str]) {
        let hint = suggest(el.name, known)
            .map(|s| format!("; did you mean <{s}>?"))
            .unwrap_or_default();
        let msg = format!("unknown element <{}> is ignored{hint}", el.name);
        self.report(Code::UnknownElement, el.start, path, msg);
    }

    fn value<T>(
        &mut self,
        el: &Element<'_>,
        path: impl FnOnce() -> String,
        parse: impl FnOnce(&str) -> Result<T, (Code, String)>,
    ) -> Option<T> {
        let v = el.value();
        if v.is_empty() || v == "AS_NULL" {
            return None;
        }
        match parse(v) {
            Ok(t) => Some(t),
            Err((code, msg)) => {
                self.report(code, el.value_start(), &path(), msg);
                None
            }
        }
    }
}

pub(crate) fn parse_bool(s: &str) -> Result<bool, (Code, String)> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => Err((
            Code::InvalidBool,
            format!("{s:?} is not a boolean; write true or false (yes/no also work)"),
        )),
    }
}

pub(crate) fn parse_port(s: &str) -> Result<u16, (Code, String)> {
    let bad = || {
        (
            Code::InvalidPort,
            format!("{s:?} is not a port; write a number from 1 to 65535"),
        )
    };
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match s.parse::<u32>() {
        Ok(n @ 1..=65535) => Ok(u16::try_from(n).map_err(|_| bad())?),
        _ => Err(bad()),
    }
}

/// `range` completes "is not a whole number ...", e.g. "of seconds (0 or more)".
fn parse_uint<T: std::str::FromStr>(s: &str, range: &str) -> Result<T, (Code, String)> {
    let bad = || {
        (
            Code::InvalidInteger,
            format!("{s:?} is not a whole number {range}"),
        )
    };
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    s.parse().map_err(|_| bad())
}

fn parse_keyword<T: Keyword>(s: &str) -> Result<T, (Code, String)> {
    T::parse_word(s).ok_or_else(|| {
        (
            Code::InvalidValue,
            format!(
                "{s:?} is not a {}; expected one of: {}",
                T::WHAT,
                T::expected()
            ),
        )
    })
}

#[allow(clippy::unnecessary_wraps)] // same shape as the other value parsers
fn parse_string(s: &str) -> Result<String, (Code, String)> {
    Ok(s.to_owned())
}

/// Edit distance, for "did you mean" hints; inputs are short element names.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn suggest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| {
            (
                distance(&name.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                *k,
            )
        })
        .filter(|(d, k)| *d <= 2.max(k.len() / 5))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Real aspera.conf sections under `<CONF>` that HTTP fallback does not use: accepted
/// silently, since real files carry them.
const IGNORED_TOP: &[&str] = &[
    "central_server",
    "server",
    "database",
    "client",
    "trapd",
    "stats_collector",
    "web_services",
    "activity_logging",
];

const KNOWN_TOP: &[&str] = &["http_server", "WEB", "default", "aaa"];

pub(crate) fn document(root: &Element<'_>, idx: &LineIndex<'_>) -> Result<Parsed, Diagnostic> {
    if root.name != "CONF" {
        return Err(Diagnostic::new(
            Code::NotAsperaConf,
            Some(idx.pos(root.start)),
            format!("/{}", root.name),
            format!(
                "the root element is <{}>; an aspera.conf starts with <CONF>",
                root.name
            ),
        ));
    }
    let mut ctx = Ctx {
        idx,
        spans: Spans::new(),
        diags: Vec::new(),
        users: HashMap::new(),
        groups: HashMap::new(),
    };
    for (name, _) in &root.attrs {
        if name != "version" {
            ctx.report(
                Code::UnknownAttribute,
                root.start,
                "/CONF",
                format!("unknown attribute {name} on <CONF> is ignored"),
            );
        }
    }
    let mut doc = Document::default();
    let mut seen_http = false;
    let mut seen_default = false;
    for child in &root.children {
        let path = format!("/CONF/{}", child.name);
        match child.name {
            "http_server" => {
                if std::mem::replace(&mut seen_http, true) {
                    ctx.report(
                        Code::DuplicateElement,
                        child.start,
                        &path,
                        "a second <http_server>: merge it into the first".to_owned(),
                    );
                }
                http_server(&mut ctx, child, &path, &mut doc.http_server);
            }
            "WEB" => {
                if doc.web.is_some() {
                    ctx.report(
                        Code::DuplicateElement,
                        child.start,
                        &path,
                        "a second <WEB>: only the first is used".to_owned(),
                    );
                } else {
                    doc.web = Some(web(&mut ctx, child, &path));
                }
            }
            "default" => {
                if std::mem::replace(&mut seen_default, true) {
                    ctx.report(
                        Code::DuplicateElement,
                        child.start,
                        &path,
                        "a second <default>: merge it into the first".to_owned(),
                    );
                }
                ctx.spans
                    .entry((Scope::Default, ""))
                    .or_insert(idx.pos(child.start));
                layer(
                    &mut ctx,
                    Scope::Default,
                    child,
                    &path,
                    &[],
                    &mut doc.default,
                );
            }
            "aaa" => aaa(&mut ctx, child, &mut doc),
            name if IGNORED_TOP.contains(&name) => {}
            _ => ctx.unknown_section(child, &path, KNOWN_TOP, &["default", "aaa"]),
        }
    }
    Ok(Parsed {
        doc,
        spans: ctx.spans,
        diagnostics: ctx.diags,
        users: ctx.users,
    })
}

fn http_server(ctx: &mut Ctx<'_>, el: &Element<'_>, base: &str, out: &mut HttpServer) {
    const KNOWN: &[&str] = &[
        "enable_http",
        "http_port",
        "enable_https",
        "https_port",
        "bind_address",
        "cert_file",
        "key_file",
        "restartable_transfers",
        "session_activity_timeout",
        "listen_backlog",
        "persistent_connection",
        "mgmt_address",
    ];
    for child in &el.children {
        let path = format!("{base}/{}", child.name);
        let Some(&name) = KNOWN.iter().find(|k| **k == child.name) else {
            ctx.unknown(child, &path, KNOWN);
            continue;
        };
        let key: &'static str = match name {
            "enable_http" => "http_server/enable_http",
            "http_port" => "http_server/http_port",
            "enable_https" => "http_server/enable_https",
            "https_port" => "http_server/https_port",
            "bind_address" => "http_server/bind_address",
            "cert_file" => "http_server/cert_file",
            "key_file" => "http_server/key_file",
            "restartable_transfers" => "http_server/restartable_transfers",
            "session_activity_timeout" => "http_server/session_activity_timeout",
            "listen_backlog" => "http_server/listen_backlog",
            "persistent_connection" => "http_server/persistent_connection",
            _ => "http_server/mgmt_address",
        };
        if !ctx.claim(Scope::Global, key, child, || path.clone()) {
            continue;
        }
        match name {
            "enable_http" => out.enable_http = ctx.value(child, || path.clone(), parse_bool),
            "http_port" => out.http_port = ctx.value(child, || path.clone(), parse_port),
            "enable_https" => out.enable_https = ctx.value(child, || path.clone(), parse_bool),
            "https_port" => out.https_port = ctx.value(child, || path.clone(), parse_port),
            "bind_address" => out.bind_address = ctx.value(child, || path.clone(), parse_string),
            "cert_file" => out.cert_file = ctx.value(child, || path.clone(), parse_string),
            "key_file" => out.key_file = ctx.value(child, || path.clone(), parse_string),
            "restartable_transfers" => {
                out.restartable_transfers = ctx.value(child, || path.clone(), parse_bool);
            }
            "session_activity_timeout" => {
                out.session_activity_timeout = ctx.value(
                    child,
                    || path.clone(),
                    |s| parse_uint(s, "of seconds (0 or more)"),
                );
            }
            "listen_backlog" => {
                out.listen_backlog = ctx.value(
                    child,
                    || path.clone(),
                    |s| parse_uint(s, "from 0 to 4294967295"),
                );
            }
            "persistent_connection" => {
                out.persistent_connection = ctx.value(child, || path.clone(), parse_bool);
            }
            _ => out.mgmt_address = ctx.value(child, || path.clone(), parse_string),
        }
    }
}

fn web(ctx: &mut Ctx<'_>, el: &Element<'_>, path: &str) -> Web {
    const USED: &[&str] = &[
        "HttpFallback",
        "HttpFallbackPort",
        "HttpsFallbackPort",
        "SshPort",
        "UdpPort",
    ];
    /// Connect Server attributes that concern the web UI, not fallback.
    const IGNORED: &[&str] = &[
        "PathMTU",
        "EnableDelete",
        "EnableCreateFolder",
        "EnableUserSwitching",
        "EnableRename",
        "EnableUpload",
        "EnableDownload",
        "EnableDirListing",
        "EnableLogout",
        "Encryption",
        "TargetRate",
        "MinRate",
        "RatePolicy",
        "LockRatePolicy",
        "LockMinRate",
        "BWCap",
        "MaxTargetRate",
    ];
    ctx.spans
        .insert((Scope::Global, "WEB"), ctx.idx.pos(el.start));
    let mut out = Web::default();
    for (name, value) in &el.attrs {
        let apath = format!("{path}/@{name}");
        let key: &'static str = match name.as_str() {
            "HttpFallback" => "WEB@HttpFallback",
            "HttpFallbackPort" => "WEB@HttpFallbackPort",
            "HttpsFallbackPort" => "WEB@HttpsFallbackPort",
            "SshPort" => "WEB@SshPort",
            "UdpPort" => "WEB@UdpPort",
            n if IGNORED.contains(&n) => continue,
            n => {
                let hint = suggest(n, USED)
                    .map(|s| format!("; did you mean {s}?"))
                    .unwrap_or_default();
                ctx.report(
                    Code::UnknownAttribute,
                    el.start,
                    &apath,
                    format!("unknown attribute {n} on <WEB> is ignored{hint}"),
                );
                continue;
            }
        };
        ctx.spans
            .insert((Scope::Global, key), ctx.idx.pos(el.start));
        let v = value.trim();
        let parsed = |r: Result<u16, (Code, String)>, ctx: &mut Ctx<'_>| match r {
            Ok(p) => Some(p),
            Err((code, msg)) => {
                ctx.report(code, el.start, &apath, format!("{name}: {msg}"));
                None
            }
        };
        match key {
            "WEB@HttpFallback" => match parse_bool(v) {
                Ok(b) => out.http_fallback = Some(b),
                Err((code, msg)) => ctx.report(code, el.start, &apath, msg),
            },
            "WEB@HttpFallbackPort" => out.http_fallback_port = parsed(parse_port(v), ctx),
            "WEB@HttpsFallbackPort" => out.https_fallback_port = parsed(parse_port(v), ctx),
            "WEB@SshPort" => out.ssh_port = parsed(parse_port(v), ctx),
            _ => out.udp_port = parsed(parse_port(v), ctx),
        }
    }
    for child in &el.children {
        ctx.unknown(child, &format!("{path}/{}", child.name), &[]);
    }
    out
}

fn aaa(ctx: &mut Ctx<'_>, el: &Element<'_>, doc: &mut Document) {
    for realms in &el.children {
        let rpath = format!("/CONF/aaa/{}", realms.name);
        if realms.name != "realms" {
            ctx.unknown_section(realms, &rpath, &["realms"], &["realms"]);
            continue;
        }
        for realm in &realms.children {
            let path = format!("{rpath}/{}", realm.name);
            if realm.name != "realm" {
                ctx.unknown_section(realm, &path, &["realm"], &["realm"]);
                continue;
            }
            for section in &realm.children {
                let spath = format!("{path}/{}", section.name);
                match section.name {
                    "users" => {
                        for u in &section.children {
                            if u.name == "user" {
                                user(ctx, u, &spath, doc);
                            } else {
                                let p = format!("{spath}/{}", u.name);
                                ctx.unknown_section(u, &p, &["user"], &["user"]);
                            }
                        }
                    }
                    "groups" => {
                        for g in &section.children {
                            if g.name == "group" {
                                group(ctx, g, &spath, doc);
                            } else {
                                let p = format!("{spath}/{}", g.name);
                                ctx.unknown_section(g, &p, &["group"], &["group"]);
                            }
                        }
                    }
                    "name" | "description" => {}
                    _ => ctx.unknown_section(
                        section,
                        &spath,
                        &["users", "groups"],
                        &["users", "groups"],
                    ),
                }
            }
        }
    }
}

fn section_name(ctx: &mut Ctx<'_>, el: &Element<'_>, base: &str) -> Option<String> {
    let names: Vec<&Element<'_>> = el.children.iter().filter(|c| c.name == "name").collect();
    let kind = &el.name;
    match names.as_slice() {
        [] => {
            ctx.report(
                Code::MissingName,
                el.start,
                &format!("{base}/{kind}"),
                format!("<{kind}> has no <name>; the section is ignored"),
            );
            None
        }
        [one, rest @ ..] => {
            for dup in rest {
                ctx.report(
                    Code::DuplicateElement,
                    dup.start,
                    &format!("{base}/{kind}/name"),
                    format!("<{kind}> has more than one <name>; the first is used"),
                );
            }
            let n = one.value();
            if n.is_empty() {
                ctx.report(
                    Code::MissingName,
                    one.start,
                    &format!("{base}/{kind}/name"),
                    format!("<{kind}> has an empty <name>; the section is ignored"),
                );
                return None;
            }
            Some(n.to_owned())
        }
    }
}

fn user(ctx: &mut Ctx<'_>, el: &Element<'_>, base: &str, doc: &mut Document) {
    let Some(name) = section_name(ctx, el, base) else {
        return;
    };
    let path = format!("{base}/user[{name}]");
    if let Some(&i) = ctx.users.get(&name) {
        let first = ctx.spans[&(Scope::User(i), "")];
        ctx.report(
            Code::DuplicateName,
            el.start,
            &path,
            format!("user {name:?} is already defined at {first}; merge the two sections"),
        );
        return;
    }
    ctx.users.insert(name.clone(), doc.users.len());
    let scope = Scope::User(doc.users.len());
    ctx.spans.insert((scope, ""), ctx.idx.pos(el.start));
    let mut settings = Layer::default();
    layer(ctx, scope, el, &path, &["name"], &mut settings);
    doc.users.push(User { name, settings });
}

fn group(ctx: &mut Ctx<'_>, el: &Element<'_>, base: &str, doc: &mut Document) {
    let Some(name) = section_name(ctx, el, base) else {
        return;
    };
    let path = format!("{base}/group[{name}]");
    if let Some(&i) = ctx.groups.get(&name) {
        let first = ctx.spans[&(Scope::Group(i), "")];
        ctx.report(
            Code::DuplicateName,
            el.start,
            &path,
            format!("group {name:?} is already defined at {first}; merge the two sections"),
        );
        return;
    }
    ctx.groups.insert(name.clone(), doc.groups.len());
    let scope = Scope::Group(doc.groups.len());
    ctx.spans.insert((scope, ""), ctx.idx.pos(el.start));
    let mut precedence = None;
    for p in el.children.iter().filter(|c| c.name == "precedence") {
        let ppath = || format!("{path}/precedence");
        if ctx.claim(scope, "precedence", p, ppath) {
            precedence = ctx.value(p, ppath, |s| parse_uint(s, "from 0 to 4294967295"));
        }
    }
    let mut settings = Layer::default();
    layer(
        ctx,
        scope,
        el,
        &path,
        &["name", "precedence"],
        &mut settings,
    );
    doc.groups.push(Group {
        name,
        precedence,
        settings,
    });
}

/// Element paths, relative to a section, that hold other known elements.
const LAYER_CONTAINERS: &[&str] = &[
    "authorization",
    "authorization/transfer",
    "authorization/transfer/in",
    "authorization/transfer/out",
    "authorization/token",
    "authorization/token/retired_keys",
    "file_system",
    "file_system/access",
    "file_system/access/paths",
    "file_system/access/paths/path",
    "file_system/access/paths/path/restrictions",
    "transfer",
    "transfer/encryption",
    "transfer/in",
    "transfer/in/bandwidth",
    "transfer/in/bandwidth/flow",
    "transfer/in/bandwidth/flow/target_rate",
    "transfer/out",
    "transfer/out/bandwidth",
    "transfer/out/bandwidth/flow",
    "transfer/out/bandwidth/flow/target_rate",
];

/// Settings read from a section: relative path and key.
const LAYER_LEAVES: &[&str] = &[
    "authorization/transfer/in/value",
    "authorization/transfer/out/value",
    "authorization/token/encryption_key",
    "authorization/token/encryption_type",
    "authorization/token/life_seconds",
    "authorization/token/filename_hash",
    "file_system/access/paths/path/absolute",
    "file_system/access/paths/path/read_allowed",
    "file_system/access/paths/path/write_allowed",
    "file_system/access/paths/path/dir_allowed",
    "file_system/access/paths/path/restrictions/restriction",
    "file_system/overwrite",
    "file_system/file_create_mode",
    "file_system/file_create_grant_mask",
    "file_system/directory_create_mode",
    "file_system/directory_create_grant_mask",
    "transfer/in/bandwidth/flow/target_rate/cap",
    "transfer/out/bandwidth/flow/target_rate/cap",
    "transfer/encryption/allowed_cipher",
    "transfer/encryption/user_value",
];

/// What a known element of the real product that fallback does not apply is to an
/// HTTP transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unapplied {
    /// It would change what a transfer does, and HTTP fallback does not do it: a
    /// warning (`not-applied`), so nobody counts on it.
    NotApplied,
    /// It has no meaning over HTTP (FASP's UDP tuning, display text): a note
    /// (`no-effect-over-http`).
    NoEffect,
}

/// Known elements of the real product (aspera.conf schema, HSTS 4.4) that HTTP
/// fallback does not apply, relative to a section, each with why. An entry covers its
/// whole subtree; one ending in `*` covers every name with that prefix. `quiet` lists
/// values that mean "off", for which nothing is said.
pub(crate) struct Known {
    pub(crate) path: &'static str,
    pub(crate) kind: Unapplied,
    pub(crate) because: &'static str,
    pub(crate) quiet: &'static [&'static str],
}

const OFF: &[&str] = &["false", "no", "0", "off", "disabled", "none"];

macro_rules! known {
    ($($path:literal, $kind:ident, $quiet:expr, $because:literal;)*) => {
        &[$(Known { path: $path, kind: Unapplied::$kind, because: $because, quiet: $quiet },)*]
    };
}

pub(crate) const LAYER_UNAPPLIED: &[Known] = known![
    "authorization/transfer/in/external_provider", NotApplied, &[],
        "fallback authorizes by token (or allow/deny) only; no SOAP provider is called";
    "authorization/transfer/out/external_provider", NotApplied, &[],
        "fallback authorizes by token (or allow/deny) only; no SOAP provider is called";
    "authorization/token/key_file", NotApplied, &[],
        "token keys come from encryption_key only";
    "authorization/token/encryption_keyfile", NotApplied, &[],
        "token keys come from encryption_key only";
    "authorization/token/dynamic_key", NotApplied, OFF,
        "token keys come from encryption_key only (no askms dynamic keys)";
    "file_system/access/paths/path/show_as", NoEffect, &[],
        "paths over HTTP are relative to the docroot, which is never shown under a name";
    "file_system/access/paths/path/description", NoEffect, &[],
        "it is a note for people";
    "file_system/access/paths/path/filter", NotApplied, &["*"],
        "the product does not document it; fallback applies restrictions instead";
    "file_system/access/paths/path/filter_scope", NoEffect, &[],
        "it only qualifies <filter>, which is not applied";
    "file_system/access/paths/path/reporting_allowed", NoEffect, &[],
        "fallback has no reporting (Node API) service";
    "file_system/filters", NotApplied, &[],
        "the product applies these rules only when the server itself runs a transfer as a \
         client, never to what remote clients upload or download; fallbackd never acts as \
         a client (to refuse files by name, use restrictions, e.g. !*.exe)";
    "file_system/resume_suffix", NotApplied, &[],
        "HTTP uploads resume through tus: what arrived is kept in .fallback/uploads, \
         no side files are written next to the file";
    "file_system/partial_file_suffix", NotApplied, &[],
        "a file still arriving is never visible in the folder: it is staged in \
         .fallback/uploads and appears under its final name only when complete";
    "file_system/pre_calculate_job_size", NotApplied, OFF,
        "each HTTP request carries its own length; there is no job to size beforehand";
    "file_system/preserve_*", NotApplied, &["none"],
        "HTTP carries no source timestamps, ACLs or attributes to preserve";
    "file_system/symbolic_links", NotApplied, &[],
        "as in the product's fallback, links are followed (inside the docroot only) \
         whatever this says";
    "file_system/replace_illegal_chars", NotApplied, &[],
        "names are stored as sent; names the file system cannot hold are refused";
    "file_system/file_checksum", NotApplied, &["any", "sha256", "sha-256"],
        "every file's SHA-256 is recorded and announced (Repr-Digest); other algorithms \
         are not reported";
    "file_system/file_manifest*", NotApplied, &["none", "disable"],
        "no receipt files are written; each transfer's outcome is in the log";
    "file_system/fail_on_attr_error", NotApplied, &["yes", "true"],
        "a mode that cannot be set always fails the upload, as with yes";
    "file_system/read_block_size", NoEffect, &[], "it tunes ascp's disk I/O";
    "file_system/write_block_size", NoEffect, &[], "it tunes ascp's disk I/O";
    "file_system/read_threads", NoEffect, &[], "it tunes ascp's disk I/O";
    "file_system/write_threads", NoEffect, &[], "it tunes ascp's disk I/O";
    "file_system/use_file_cache", NoEffect, &[], "it tunes ascp's disk I/O";
    "file_system/max_file_cache_buffer", NoEffect, &[], "it tunes ascp's disk I/O";
    "file_system/sparse_file", NoEffect, &[], "it tunes ascp's disk I/O";
    "file_system/storage_rc", NoEffect, &[], "it tunes ascp's disk I/O";
    "file_system/compression_method", NoEffect, &[], "it tunes ascp's disk I/O";
    "file_system/pvcl", NoEffect, &[], "it tunes ascp's disk I/O";
    "transfer/encryption/strict_allowed_cipher", NoEffect, &[],
        "HTTPS uses TLS cipher suites, not FASP's; allowed_cipher decides only whether \
         the user must use HTTPS";
    "transfer/encryption/fips_mode", NotApplied, OFF,
        "TLS runs on aws-lc-rs in its default mode, not a FIPS 140 validated module";
    "transfer/encryption/byok_enabled", NotApplied, OFF,
        "no encryption at rest is done over HTTP";
    "transfer/encryption/content_protection_required", NotApplied, OFF,
        "uploads over HTTP are stored as sent, never as encrypted envelopes (the \
         product's fallback does not apply encryption at rest either)";
    "transfer/encryption/content_protection_secret", NotApplied, &[],
        "no encryption at rest is done over HTTP";
    "transfer/encryption/content_protection_strong_pass_required", NotApplied, OFF,
        "no encryption at rest is done over HTTP";
    "transfer/encryption/extension", NoEffect, &[],
        "no encrypted envelopes are made over HTTP";
    "transfer/in/bandwidth/flow/target_rate/default", NoEffect, &[],
        "HTTP has no rate negotiation: TCP sets the pace, under the cap";
    "transfer/out/bandwidth/flow/target_rate/default", NoEffect, &[],
        "HTTP has no rate negotiation: TCP sets the pace, under the cap";
    "transfer/in/bandwidth/flow/target_rate/lock", NoEffect, &[],
        "HTTP has no rate negotiation: the cap holds anyway";
    "transfer/out/bandwidth/flow/target_rate/lock", NoEffect, &[],
        "HTTP has no rate negotiation: the cap holds anyway";
    "transfer/in/bandwidth/flow/min_rate", NoEffect, &[], "it tunes FASP's rate control";
    "transfer/out/bandwidth/flow/min_rate", NoEffect, &[], "it tunes FASP's rate control";
    "transfer/in/bandwidth/flow/policy", NoEffect, &[], "it tunes FASP's rate control";
    "transfer/out/bandwidth/flow/policy", NoEffect, &[], "it tunes FASP's rate control";
    "transfer/in/bandwidth/flow/priority", NoEffect, &[], "it tunes FASP's rate control";
    "transfer/out/bandwidth/flow/priority", NoEffect, &[], "it tunes FASP's rate control";
    "transfer/in/bandwidth/flow/aggressiveness", NoEffect, &[], "it tunes FASP's rate control";
    "transfer/out/bandwidth/flow/aggressiveness", NoEffect, &[], "it tunes FASP's rate control";
    "transfer/in/bandwidth/flow/network_rc", NoEffect, &[], "it tunes FASP's rate control";
    "transfer/out/bandwidth/flow/network_rc", NoEffect, &[], "it tunes FASP's rate control";
    "transfer/in/bandwidth/aggregate", NotApplied, &["disabled"],
        "Vlink trunks (bandwidth shared by many sessions) are not applied; only the \
         per-transfer cap is";
    "transfer/out/bandwidth/aggregate", NotApplied, &["disabled"],
        "Vlink trunks (bandwidth shared by many sessions) are not applied; only the \
         per-transfer cap is";
    "transfer/protocol_options", NoEffect, &[], "it tunes FASP's UDP transport";
    "transfer/multi_session*", NoEffect, &[], "it splits FASP sessions";
    "transfer/chunker_max_mem", NoEffect, &[], "it tunes ascp";
    "transfer/validation_*", NotApplied, &[],
        "the product's fallback does no inline validation, and neither does fallbackd";
    "transfer/lua_*", NotApplied, &[],
        "the product's fallback runs no Lua hooks, and neither does fallbackd";
    "transfer/log_*", NoEffect, &[], "fallbackd logs every transfer's start and end";
];

/// The catalogue entry that covers `rel`, if any.
pub(crate) fn unapplied(rel: &str) -> Option<&'static Known> {
    LAYER_UNAPPLIED
        .iter()
        .find(|k| match k.path.strip_suffix('*') {
            Some(prefix) => rel.starts_with(prefix),
            None => {
                rel == k.path || (rel.starts_with(k.path) && rel.as_bytes()[k.path.len()] == b'/')
            }
        })
}

/// Element paths (relative to a section) whose misspelling loses a setting that
/// protects data: who may transfer, with which key, where, over what.
const SECURITY_PREFIXES: &[&str] = &[
    "authorization",
    "transfer/encryption",
    "file_system/access",
    "file_system/overwrite",
    "file_system/file_create_mode",
    "file_system/directory_create_mode",
];

fn security_relevant(rel: &str) -> bool {
    SECURITY_PREFIXES
        .iter()
        .any(|p| rel == *p || (rel.starts_with(p) && rel.as_bytes()[p.len()] == b'/'))
}

fn layer(
    ctx: &mut Ctx<'_>,
    scope: Scope,
    el: &Element<'_>,
    base: &str,
    skip: &[&str],
    out: &mut Layer,
) {
    let mut rel = String::with_capacity(64);
    for child in &el.children {
        if skip.contains(&child.name) {
            continue;
        }
        rel.clear();
        rel.push_str(child.name);
        walk_layer(ctx, scope, child, base, &mut rel, out);
    }
}

fn known_children(rel: &str) -> Vec<&'static str> {
    let prefix_len = if rel.is_empty() { 0 } else { rel.len() + 1 };
    LAYER_CONTAINERS
        .iter()
        .chain(LAYER_LEAVES)
        .copied()
        .chain(
            LAYER_UNAPPLIED
                .iter()
                .map(|k| k.path.trim_end_matches(['*', '_'])),
        )
        .filter(|k| {
            k.len() > prefix_len
                && (rel.is_empty() || (k.starts_with(rel) && k.as_bytes()[rel.len()] == b'/'))
                && !k[prefix_len..].contains('/')
        })
        .map(|k| &k[prefix_len..])
        .collect()
}

/// Reads `el`, found at `rel` (relative to the section at `base`). `rel` is a reused
/// buffer: element paths are only formatted when a finding needs one.
fn walk_layer(
    ctx: &mut Ctx<'_>,
    scope: Scope,
    el: &Element<'_>,
    base: &str,
    rel: &mut String,
    out: &mut Layer,
) {
    if rel == "file_system/access/paths/path/absolute" {
        absolute(ctx, scope, el, base, out);
        return;
    }
    if rel == "authorization/token/retired_keys/key" {
        retired_key(ctx, scope, el, base, out);
        return;
    }
    if rel == "file_system/access/paths/path/restrictions/restriction" {
        let v = el.value();
        if !v.is_empty() && v != "AS_NULL" {
            ctx.spans
                .entry((
                    scope,
                    "file_system/access/paths/path/restrictions/restriction",
                ))
                .or_insert(ctx.idx.pos(el.start));
            out.restrictions
                .get_or_insert_with(Vec::new)
                .push(v.to_owned());
        }
        return;
    }
    if let Some(&key) = LAYER_LEAVES.iter().find(|k| **k == rel.as_str()) {
        let path = || format!("{base}/{key}");
        if ctx.claim(scope, key, el, path) {
            leaf(ctx, key, el, &path, out);
        }
        return;
    }
    if let Some(known) = unapplied(rel) {
        let v = el.value();
        if !is_off(el, known.quiet) {
            let (code, what) = match known.kind {
                Unapplied::NotApplied => (Code::NotApplied, "not applied over HTTP fallback"),
                Unapplied::NoEffect => (Code::NoEffectOverHttp, "no effect over HTTP fallback"),
            };
            let value = if el.children.is_empty() && !v.is_empty() {
                format!(" ({v})")
            } else {
                String::new()
            };
            ctx.report(
                code,
                el.start,
                &format!("{base}/{rel}"),
                format!("{what}: <{}>{value}, because {}", el.name, known.because),
            );
        }
        return;
    }
    if !LAYER_CONTAINERS.contains(&rel.as_str()) {
        let parent = rel.rsplit_once('/').map_or("", |(p, _)| p);
        let known = known_children(parent);
        let suggestion = suggest(el.name, &known);
        let lost = suggestion.map(|s| {
            if parent.is_empty() {
                s.to_owned()
            } else {
                format!("{parent}/{s}")
            }
        });
        let security = security_relevant(parent) || lost.as_deref().is_some_and(security_relevant);
        if security {
            let hint = suggestion
                .map(|s| format!(" (did you mean <{s}>?)"))
                .unwrap_or_default();
            ctx.report(
                Code::UnknownSecurityElement,
                el.start,
                &format!("{base}/{rel}"),
                format!(
                    "unknown element <{}>{hint} where settings decide who may transfer \
                     what and how: a misspelt security setting would silently not apply, \
                     so the file is refused until it is fixed or removed",
                    el.name
                ),
            );
        } else {
            ctx.unknown(el, &format!("{base}/{rel}"), &known);
        }
        return;
    }
    let mut seen_path = false;
    let len = rel.len();
    for child in &el.children {
        if rel == "file_system/access/paths"
            && child.name == "path"
            && std::mem::replace(&mut seen_path, true)
        {
            ctx.report(
                Code::ExtraDocroot,
                child.start,
                &format!("{base}/{rel}/path"),
                "only the first <path> of a section is used as the docroot; \
                 this one is ignored (several docroots for different clients go in one \
                 <path> as <absolute peer_ip=\"ADDR\">)"
                    .to_owned(),
            );
            continue;
        }
        rel.push('/');
        rel.push_str(child.name);
        walk_layer(ctx, scope, child, base, rel, out);
        rel.truncate(len);
    }
}

/// `<key>` of `authorization/token/retired_keys`: an old `<encryption_key>` and the
/// `<accept_until>` time its tokens are accepted until. Both are required (a key with
/// no end would be accepted forever); anything else there is an error, as everywhere
/// security settings live.
fn retired_key(ctx: &mut Ctx<'_>, scope: Scope, el: &Element<'_>, base: &str, out: &mut Layer) {
    const KEY: &str = "authorization/token/retired_keys/key";
    let path = format!("{base}/{KEY}");
    let mut secret = None;
    let mut until = None;
    for c in &el.children {
        match c.name {
            "encryption_key" if !c.value().is_empty() => {
                secret = Some(Secret::new(c.value()));
            }
            "accept_until" => match parse_time(c.value()) {
                Ok(t) => until = Some((t, c.value().to_owned())),
                Err(why) => {
                    ctx.report(
                        Code::InvalidValue,
                        c.value_start(),
                        &format!("{path}/accept_until"),
                        why,
                    );
                    return;
                }
            },
            "encryption_key" => {}
            other => {
                ctx.report(
                    Code::UnknownSecurityElement,
                    c.start,
                    &format!("{path}/{other}"),
                    format!(
                        "unknown element <{other}> in a retired token key: it holds \
                         <encryption_key> and <accept_until> only"
                    ),
                );
                return;
            }
        }
    }
    let (Some(secret), Some((accept_until, text))) = (secret, until) else {
        ctx.report(
            Code::InvalidValue,
            el.start,
            &path,
            "a retired token key needs its <encryption_key> and an <accept_until> time \
             (RFC 3339, e.g. 2027-01-31T00:00:00Z, or a date): without an end it would be \
             accepted forever; to revoke a key, remove it"
                .to_owned(),
        );
        return;
    };
    ctx.spans
        .entry((scope, KEY))
        .or_insert(ctx.idx.pos(el.start));
    out.retired_keys
        .get_or_insert_with(Vec::new)
        .push(RetiredKey {
            secret,
            accept_until,
            accept_until_text: text,
        });
}

/// An RFC 3339 time (`2027-01-31T12:00:00Z`, an offset allowed) or a date (`2027-01-31`,
/// midnight UTC), as Unix seconds.
fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.as_second());
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>()
        && let Ok(t) =
            jiff::tz::TimeZone::UTC.to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
    {
        return Ok(t.as_second());
    }
    Err(format!(
        "{s:?} is not a time: write RFC 3339 (2027-01-31T00:00:00Z) or a date (2027-01-31)"
    ))
}

/// Whether `el` says nothing (empty, `AS_NULL`) or only "off" (a value in `quiet`),
/// in every leaf beneath it.
fn is_off(el: &Element<'_>, quiet: &[&str]) -> bool {
    if el.children.is_empty() {
        let v = el.value();
        v.is_empty() || v == "AS_NULL" || quiet.iter().any(|q| q.eq_ignore_ascii_case(v))
    } else {
        el.children.iter().all(|c| is_off(c, quiet))
    }
}

/// `<absolute>`, with or without `peer_ip`: one unconditional docroot per section, and
/// any number for single client addresses.
fn absolute(ctx: &mut Ctx<'_>, scope: Scope, el: &Element<'_>, base: &str, out: &mut Layer) {
    const KEY: &str = "file_system/access/paths/path/absolute";
    let path = || format!("{base}/{KEY}");
    for (name, _) in &el.attrs {
        if name != "peer_ip" {
            ctx.report(
                Code::UnknownAttribute,
                el.start,
                &format!("{}/@{name}", path()),
                format!("unknown attribute {name} on <absolute> is ignored"),
            );
        }
    }
    let Some((_, ip)) = el.attrs.iter().find(|(n, _)| n == "peer_ip") else {
        if ctx.claim(scope, KEY, el, path) {
            out.docroot = ctx.value(el, path, parse_string);
        }
        return;
    };
    let Ok(peer_ip) = ip.trim().parse::<std::net::IpAddr>() else {
        ctx.report(
            Code::InvalidValue,
            el.start,
            &format!("{}/@peer_ip", path()),
            format!("peer_ip {ip:?} is not an IP address; write one address, such as 10.0.0.5"),
        );
        return;
    };
    if out.peer_docroots.iter().any(|d| d.peer_ip == peer_ip) {
        ctx.report(
            Code::DuplicateElement,
            el.start,
            &path(),
            format!("a second docroot for peer_ip {peer_ip} in this section; remove one"),
        );
        return;
    }
    ctx.spans
        .entry((scope, "file_system/access/paths/path/absolute@peer_ip"))
        .or_insert(ctx.idx.pos(el.start));
    if let Some(p) = ctx.value(el, path, parse_string) {
        out.peer_docroots.push(PeerDocroot { peer_ip, path: p });
    }
}

/// An octal mode (`640`, `0755`) no larger than `max`.
fn parse_mode(s: &str, max: u32, what: &str) -> Result<FileMode, (Code, String)> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err((
            Code::InvalidValue,
            format!(
                "{s:?} is not an octal mode; write three or four octal digits, such as 640 or 0755"
            ),
        ));
    }
    let m = u32::from_str_radix(s, 8)
        .map_err(|_| (Code::InvalidValue, format!("{s:?} is not an octal mode")))?;
    if m > max {
        return Err((
            Code::InvalidValue,
            format!("{s} sets {what}; write a mode of at most {max:o}"),
        ));
    }
    Ok(FileMode(m))
}

/// A rate cap in kbps, or `Unlimited`.
fn parse_cap(s: &str) -> Result<Option<u64>, (Code, String)> {
    if s.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    match parse_uint::<u64>(s, "of kbps (or Unlimited)")? {
        0 => Err((
            Code::InvalidInteger,
            "a cap of 0 kbps would stop every transfer; write a rate in kbps or Unlimited"
                .to_owned(),
        )),
        n => Ok(Some(n)),
    }
}

fn leaf(
    ctx: &mut Ctx<'_>,
    key: &str,
    el: &Element<'_>,
    path: &dyn Fn() -> String,
    out: &mut Layer,
) {
    const FILE_BITS: &str = "setuid, setgid or sticky bits, which uploaded files never get";
    const DIR_BITS: &str = "the setuid bit, which directories do not take";
    match key {
        "authorization/transfer/in/value" => {
            out.transfer_in = ctx.value(el, path, parse_keyword::<TransferAuth>);
        }
        "authorization/transfer/out/value" => {
            out.transfer_out = ctx.value(el, path, parse_keyword::<TransferAuth>);
        }
        "authorization/token/encryption_key" => {
            // The secret is taken as written, inner spaces included; only the
            // surrounding layout whitespace is dropped.
            out.token_key = ctx.value(el, path, |s| Ok(Secret::new(s)));
        }
        "authorization/token/encryption_type" => {
            out.token_cipher = ctx.value(el, path, parse_keyword::<TokenCipher>);
        }
        "authorization/token/life_seconds" => {
            out.token_life_seconds = ctx.value(el, path, |s| {
                match parse_uint(s, "of seconds (1 or more)")? {
                    0 => Err((
                        Code::InvalidInteger,
                        "life_seconds is 0: every token would be born expired; write 1 or more"
                            .to_owned(),
                    )),
                    n => Ok(n),
                }
            });
        }
        "authorization/token/filename_hash" => {
            out.filename_hash = ctx.value(el, path, parse_keyword::<FilenameHash>);
        }
        "file_system/access/paths/path/read_allowed" => {
            out.read_allowed = ctx.value(el, path, parse_bool);
        }
        "file_system/access/paths/path/write_allowed" => {
            out.write_allowed = ctx.value(el, path, parse_bool);
        }
        "file_system/access/paths/path/dir_allowed" => {
            out.dir_allowed = ctx.value(el, path, parse_bool);
        }
        "file_system/overwrite" => {
            out.overwrite = ctx.value(el, path, parse_keyword::<Overwrite>);
        }
        "file_system/file_create_mode" => {
            out.file_create_mode = ctx.value(el, path, |s| parse_mode(s, 0o777, FILE_BITS));
        }
        "file_system/file_create_grant_mask" => {
            out.file_create_grant_mask = ctx.value(el, path, |s| parse_mode(s, 0o777, FILE_BITS));
        }
        "file_system/directory_create_mode" => {
            out.directory_create_mode = ctx.value(el, path, |s| parse_mode(s, 0o3777, DIR_BITS));
        }
        "file_system/directory_create_grant_mask" => {
            out.directory_create_grant_mask =
                ctx.value(el, path, |s| parse_mode(s, 0o3777, DIR_BITS));
        }
        "transfer/in/bandwidth/flow/target_rate/cap" => {
            out.in_rate_cap = ctx.value(el, path, parse_cap);
        }
        "transfer/out/bandwidth/flow/target_rate/cap" => {
            out.out_rate_cap = ctx.value(el, path, parse_cap);
        }
        "transfer/encryption/allowed_cipher" => {
            out.allowed_cipher = ctx.value(el, path, parse_keyword::<Cipher>);
        }
        _ => out.user_value = ctx.value(el, path, parse_keyword::<Cipher>),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(
            suggest("enable_htps", &["enable_https", "http_port"]),
            Some("enable_https")
        );
        assert_eq!(suggest("bandwidth", &["enable_https", "http_port"]), None);
    }

    #[test]
    fn known_children_of_a_container() {
        let k = known_children("authorization/token");
        assert!(k.contains(&"encryption_key"));
        assert!(k.contains(&"life_seconds"));
        assert!(!k.contains(&"value"));
        assert_eq!(
            known_children(""),
            vec!["authorization", "file_system", "transfer"]
        );
    }

    #[test]
    fn ports_are_bounded_and_unsigned() {
        assert_eq!(parse_port("8080"), Ok(8080));
        for bad in [
            "0",
            "65536",
            "-1",
            "+80",
            "80a",
            "99999999999999999999",
            " 1",
        ] {
            assert_eq!(parse_port(bad).unwrap_err().0, Code::InvalidPort, "{bad}");
        }
    }
}
