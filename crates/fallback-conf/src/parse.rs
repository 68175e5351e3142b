//! Stage two: element tree to [`Document`], with a position for every value and a
//! finding for everything wrong or ignored.

use std::collections::HashMap;

use crate::diag::{Code, Diagnostic, LineIndex, Pos};
use crate::model::{
    Cipher, Document, FilenameHash, Group, HttpServer, Keyword, Layer, Secret, TokenCipher,
    TransferAuth, User, Web,
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
            _ => ctx.unknown(child, &path, KNOWN_TOP),
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
            ctx.unknown(realms, &rpath, &["realms"]);
            continue;
        }
        for realm in &realms.children {
            let path = format!("{rpath}/{}", realm.name);
            if realm.name != "realm" {
                ctx.unknown(realm, &path, &["realm"]);
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
                                ctx.unknown(u, &format!("{spath}/{}", u.name), &["user"]);
                            }
                        }
                    }
                    "groups" => {
                        for g in &section.children {
                            if g.name == "group" {
                                group(ctx, g, &spath, doc);
                            } else {
                                ctx.unknown(g, &format!("{spath}/{}", g.name), &["group"]);
                            }
                        }
                    }
                    "name" | "description" => {}
                    _ => ctx.unknown(section, &spath, &["users", "groups"]),
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
    "file_system",
    "file_system/access",
    "file_system/access/paths",
    "file_system/access/paths/path",
    "transfer",
    "transfer/encryption",
];

/// Real aspera.conf settings inside a section that HTTP fallback does not use.
const LAYER_IGNORED: &[&str] = &[
    "authorization/transfer/in/external_provider",
    "authorization/transfer/out/external_provider",
    "authorization/token/key_file",
    "authorization/token/dynamic_key",
    "authorization/token/encryption_keyfile",
    "file_system/access/paths/path/show_as",
    "file_system/access/paths/path/description",
    "file_system/access/paths/path/filter",
    "file_system/access/paths/path/filter_scope",
    "file_system/access/paths/path/reporting_allowed",
    "file_system/access/paths/path/restrictions",
    "file_system/read_block_size",
    "file_system/write_block_size",
    "file_system/pre_calculate_job_size",
    "file_system/storage_rc",
    "file_system/directory_create_mode",
    "file_system/file_create_mode",
    "file_system/directory_create_grant_mask",
    "file_system/file_create_grant_mask",
    "file_system/replace_illegal_chars",
    "file_system/resume_suffix",
    "file_system/partial_file_suffix",
    "file_system/overwrite",
    "file_system/symbolic_links",
    "file_system/preserve_acls",
    "file_system/preserve_xattrs",
    "transfer/encryption/strict_allowed_cipher",
    "transfer/encryption/fips_mode",
    "transfer/encryption/content_protection_required",
    "transfer/encryption/content_protection_secret",
    "transfer/encryption/content_protection_strong_pass_required",
    "transfer/encryption/extension",
    "transfer/in",
    "transfer/out",
    "transfer/protocol_options",
    "transfer/multi_session_threshold_default",
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
    "transfer/encryption/allowed_cipher",
    "transfer/encryption/user_value",
];

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
        .chain(LAYER_IGNORED)
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
    if let Some(&key) = LAYER_LEAVES.iter().find(|k| **k == rel.as_str()) {
        let path = || format!("{base}/{key}");
        if ctx.claim(scope, key, el, path) {
            leaf(ctx, key, el, &path, out);
        }
        return;
    }
    if LAYER_IGNORED.contains(&rel.as_str()) {
        return;
    }
    if !LAYER_CONTAINERS.contains(&rel.as_str()) {
        let parent = rel.rsplit_once('/').map_or("", |(p, _)| p);
        let known = known_children(parent);
        ctx.unknown(el, &format!("{base}/{rel}"), &known);
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
                 this one is ignored"
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

fn leaf(
    ctx: &mut Ctx<'_>,
    key: &str,
    el: &Element<'_>,
    path: &dyn Fn() -> String,
    out: &mut Layer,
) {
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
        "file_system/access/paths/path/absolute" => {
            out.docroot = ctx.value(el, path, parse_string);
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
