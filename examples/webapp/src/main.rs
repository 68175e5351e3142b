//! `fallback-web`: a small web app that embeds the fallback crates the way a custom
//! application would (the reference for `docs/embedding.md`).
//!
//! It signs users in (a fixed demo list), lists their docroot the way the Connect
//! Server's dir-listing does (each entry with its FASP URL, built by the dir-listing rule,
//! and a short-lived token for exactly that path and direction), and nests the
//! fallback-server router, so the page itself downloads and uploads over the HTTP
//! fallback protocol (tus for uploads, resumable across reloads).

// A command-line program: its address and errors go to the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// Doc comments on clap types are the `--help` text, shown verbatim: <WEB> is text there.
#![allow(rustdoc::invalid_html_tags)]

mod page;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Form, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use clap::Parser;
use fallback_conf::{Config, UserSettings};
use fallback_server::{Addresses, AppState, Options, ServeOptions, Service};
use fallback_token::{Key, Token};
use fallback_url::FaspUrl;

/// Example web app: sign in, browse your files, move them over HTTP fallback from the
/// browser.
///
/// Without --config it makes a demo setup in --data: one docroot per user, a random
/// token key, HTTP on 127.0.0.1. Each --user NAME:PASSWORD is a demo account (default:
/// alice with a password printed at start).
///
/// Example: fallback-web --user alice:wonderland --user bob:builder --port 8090
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// An aspera.conf to use instead of the demo setup (token keys, docroots, the
    /// <WEB> element for FASP URLs).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data folder of the demo setup.
    #[arg(long, value_name = "DIR", default_value = "fallback-web-data")]
    data: PathBuf,
    /// A demo account, NAME:PASSWORD; repeatable.
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    users: Vec<String>,
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Listen port (0: any free port; the address is logged).
    #[arg(long, default_value = "8090")]
    port: u16,
    /// Lifetime of the tokens the page is given, in seconds.
    #[arg(long, value_name = "SECONDS", default_value = "900")]
    token_ttl: u64,
    /// Clock skew tolerated when tokens are checked, in seconds.
    #[arg(long, value_name = "SECONDS", default_value = "60")]
    token_skew: u64,
    /// IBM's HTTP Gateway SDK browser bundle (`js/http-gateway.js` of npm's
    /// @ibm-aspera/http-gateway-sdk-js 7.7.4) to serve to the /gateway/ page; without it
    /// the page loads the SDK from unpkg.com.
    #[arg(long, value_name = "FILE")]
    gateway_sdk: Option<PathBuf>,
}

/// Where the /gateway/ page loads IBM's SDK from when no --gateway-sdk is given.
const GATEWAY_SDK_CDN: &str =
    "https://unpkg.com/@ibm-aspera/http-gateway-sdk-js@7.7.4/js/http-gateway.js";

/// The web app's state: the fallback service's, sessions and accounts.
#[derive(Clone)]
struct Web {
    fallback: AppState,
    accounts: Arc<HashMap<String, String>>,
    sessions: Arc<Mutex<HashMap<String, String>>>,
    token_ttl: Duration,
    /// IBM's SDK bundle, when served from here (`--gateway-sdk`).
    gateway_sdk: Option<Arc<Vec<u8>>>,
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(hex::encode(b))
}

fn escape_xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The demo aspera.conf: one docroot per account under `data`, HTTP fallback on.
fn demo_config(data: &Path, users: &[&str], port: u16) -> anyhow::Result<Config> {
    std::fs::create_dir_all(data)?;
    let data = data.canonicalize()?;
    let key_file = data.join("token.key");
    let secret = match std::fs::read_to_string(&key_file) {
        Ok(s) if s.trim().len() >= 32 => s.trim().to_owned(),
        _ => {
            let s = random_hex(32)?;
            std::fs::write(&key_file, &s)?;
            s
        }
    };
    let mut user_xml = String::new();
    for u in users {
        let root = data.join(u);
        std::fs::create_dir_all(&root)?;
        let _ = write!(
            user_xml,
            "<user><name>{}</name><file_system><access><paths><path><absolute>{}</absolute></path></paths></access></file_system></user>",
            escape_xml(u),
            escape_xml(&root.to_string_lossy())
        );
    }
    let text = format!(
        r#"<CONF version="2">
  <http_server>
    <enable_http>true</enable_http>
    <http_port>{port}</http_port>
    <enable_https>false</enable_https>
    <bind_address>127.0.0.1</bind_address>
  </http_server>
  <WEB HttpFallback="yes" HttpFallbackPort="{port}" HttpsFallbackPort="8443" />
  <default>
    <authorization>
      <transfer><in><value>token</value></in><out><value>token</value></out></transfer>
      <token><encryption_key>{}</encryption_key></token>
    </authorization>
  </default>
  <aaa><realms><realm><users>{user_xml}</users></realm></realms></aaa>
</CONF>"#,
        escape_xml(&secret)
    );
    Ok(Config::parse(&text)?.into_checked()?)
}

/// The session id in the request's cookie.
fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::COOKIE)?
        .to_str()
        .ok()?
        .split(';')
        .find_map(|c| c.trim().strip_prefix("fbsession="))
}

impl Web {
    fn user_of(&self, headers: &HeaderMap) -> Option<String> {
        let id = session_id(headers)?;
        self.sessions.lock().ok()?.get(id).cloned()
    }

    /// The signed-in user of `headers`, their settings, the folder `path` names and its
    /// entries; or the answer when there is none (sign in first, a bad path, no
    /// docroot, no such folder).
    async fn folder(
        &self,
        headers: &HeaderMap,
        path: &str,
    ) -> Result<(String, UserSettings, String, Vec<fallback_server::DirEntry>), Box<Response>> {
        let Some(user) = self.user_of(headers) else {
            return Err(Box::new(Redirect::to("/").into_response()));
        };
        // As the service sees the user: their groups from the system (NSS), so a key
        // or docroot set for a group applies here too.
        let settings = self.fallback.settings_for(&user).await;
        let dir = format!("/{}", path.trim_end_matches('/'));
        let entries = self.fallback.list(&settings, &dir).await.map_err(|e| {
            let status = match e {
                fallback_server::ListError::BadPath(_) => StatusCode::BAD_REQUEST,
                fallback_server::ListError::NoDocroot(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::NOT_FOUND,
            };
            Box::new((status, e.to_string()).into_response())
        })?;
        Ok((user, settings, dir, entries))
    }

    /// A token for `user`, for exactly `path` in one direction, valid `token_ttl`.
    fn token(&self, s: &UserSettings, path: &str, upload: bool) -> anyhow::Result<String> {
        let (user, key) = (s.user.as_str(), Key::from_settings(s)?);
        let b = if upload {
            Token::upload(user, path)
        } else {
            Token::download(user, &[path])
        };
        Ok(b.valid_for(self.token_ttl).issue(&key)?)
    }

    /// The FASP URL of `path` for `user`, by the dir-listing rule, carrying `token`.
    fn fasp_url(&self, s: &UserSettings, host: &str, path: &str, token: &str) -> Option<String> {
        let web = self.fallback.config().web()?;
        Some(
            FaspUrl::builder(host)
                .user(&s.user)
                .path(path)
                .auth(false)
                .token(token)
                .fallback_for(s, &web)
                .build()
                .to_string(),
        )
    }
}

/// Compares without stopping at the first difference (the length may show; fine for a
/// demo account list).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn home(State(web): State<Web>, headers: HeaderMap) -> Response {
    if web.user_of(&headers).is_some() {
        Redirect::to("/browse/").into_response()
    } else {
        Html(page::login(None)).into_response()
    }
}

#[derive(serde::Deserialize)]
struct Login {
    user: String,
    password: String,
}

async fn login(State(web): State<Web>, Form(f): Form<Login>) -> Response {
    let ok = web
        .accounts
        .get(&f.user)
        .is_some_and(|p| same(p.as_bytes(), f.password.as_bytes()));
    if !ok {
        tracing::info!(user = %f.user, "sign-in refused");
        return (
            StatusCode::UNAUTHORIZED,
            Html(page::login(Some("Wrong user name or password."))),
        )
            .into_response();
    }
    let Ok(id) = random_hex(16) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Ok(mut s) = web.sessions.lock() {
        s.insert(id.clone(), f.user.clone());
    }
    tracing::info!(user = %f.user, "signed in");
    let mut resp = Redirect::to("/browse/").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "fbsession={id}; HttpOnly; SameSite=Strict; Path=/"
    )) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn logout(State(web): State<Web>, headers: HeaderMap) -> Response {
    if let Some(id) = headers
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| {
            c.split(';')
                .find_map(|c| c.trim().strip_prefix("fbsession="))
        })
        && let Ok(mut s) = web.sessions.lock()
    {
        s.remove(id);
    }
    let mut resp = Redirect::to("/").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("fbsession=; Max-Age=0; Path=/"),
    );
    resp
}

async fn browse_root(state: State<Web>, headers: HeaderMap) -> Response {
    browse(state, headers, UrlPath(String::new())).await
}

async fn browse(
    State(web): State<Web>,
    headers: HeaderMap,
    UrlPath(path): UrlPath<String>,
) -> Response {
    let (user, settings, dir, entries) = match web.folder(&headers, &path).await {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.rsplit_once(':').map_or(Some(h), |(h, _)| Some(h)))
        .unwrap_or("localhost")
        .to_owned();
    let mut rows = Vec::new();
    for e in &entries {
        let full = format!("{}/{}", dir.trim_end_matches('/'), e.name);
        let Ok(token) = web.token(&settings, &full, false) else {
            return (StatusCode::INTERNAL_SERVER_ERROR, "cannot issue tokens").into_response();
        };
        let fasp = web.fasp_url(&settings, &host, &full, &token);
        rows.push(page::Row {
            name: e.name.clone(),
            path: full,
            is_dir: e.is_dir,
            size: e.size,
            modified: jiff::Timestamp::try_from(e.modified)
                .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default(),
            token,
            fasp,
        });
    }
    let Ok(upload_token) = web.token(&settings, &dir, true) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "cannot issue tokens").into_response();
    };
    let must_encrypt = settings.required_cipher().is_some();
    Html(page::listing(&page::Listing {
        user: &user,
        dir: &dir,
        rows: &rows,
        upload_token: &upload_token,
        base: if must_encrypt {
            "/transfers/aspera/https"
        } else {
            "/transfers/aspera/http"
        },
        token_ttl: web.token_ttl,
    }))
    .into_response()
}

async fn gateway_root(state: State<Web>, headers: HeaderMap) -> Response {
    gateway(state, headers, UrlPath(String::new())).await
}

/// The folder at `path` with IBM's HTTP Gateway SDK: upload and download through the
/// Gateway API of this app's fallback service.
async fn gateway(
    State(web): State<Web>,
    headers: HeaderMap,
    UrlPath(path): UrlPath<String>,
) -> Response {
    let (user, settings, dir, entries) = match web.folder(&headers, &path).await {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let rows: Vec<page::Row> = entries
        .iter()
        .map(|e| page::Row {
            name: e.name.clone(),
            path: format!("{}/{}", dir.trim_end_matches('/'), e.name),
            is_dir: e.is_dir,
            size: e.size,
            modified: String::new(),
            token: String::new(),
            fasp: None,
        })
        .collect();
    let (Ok(upload_token), Ok(download_token)) = (
        web.token(&settings, &dir, true),
        web.token(&settings, &dir, false),
    ) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "cannot issue tokens").into_response();
    };
    Html(page::gateway(&page::GatewayPage {
        user: &user,
        dir: &dir,
        rows: &rows,
        upload_token: &upload_token,
        download_token: &download_token,
        sdk_src: if web.gateway_sdk.is_some() {
            "/assets/http-gateway.js"
        } else {
            GATEWAY_SDK_CDN
        },
    }))
    .into_response()
}

async fn asset_gateway_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../assets/gateway.js"),
    )
        .into_response()
}

async fn asset_gateway_sdk(State(web): State<Web>) -> Response {
    match web.gateway_sdk {
        Some(sdk) => (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            sdk.as_ref().clone(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn asset_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../assets/app.js"),
    )
        .into_response()
}

async fn asset_css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../assets/app.css"),
    )
        .into_response()
}

/// The web app's routes with the fallback service nested at `/transfers` (its
/// `/aspera/http` and `/aspera/https` bases under it, as a proxy would lay them out).
fn app(web: Web) -> Router {
    let fallback = fallback_server::router(web.fallback.clone());
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/browse/", get(browse_root))
        .route("/browse/{*path}", get(browse))
        .route("/gateway/", get(gateway_root))
        .route("/gateway/{*path}", get(gateway))
        .route("/assets/gateway.js", get(asset_gateway_js))
        .route("/assets/http-gateway.js", get(asset_gateway_sdk))
        .route("/assets/app.js", get(asset_js))
        .route("/assets/app.css", get(asset_css))
        .with_state(web)
        .nest("/transfers", fallback)
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours for a terminal only: a log piped to a file or journald stays plain.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fallback-web: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fallback-web: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut accounts = HashMap::new();
    for u in &args.users {
        let (name, pw) = u
            .split_once(':')
            .with_context(|| format!("--user {u:?}: write NAME:PASSWORD"))?;
        accounts.insert(name.to_owned(), pw.to_owned());
    }
    if accounts.is_empty() {
        let pw = random_hex(8)?;
        println!("demo account: alice / {pw}");
        accounts.insert("alice".to_owned(), pw);
    }
    let conf = match &args.config {
        Some(f) => {
            // The check fallbackd runs: the same file gets the same verdict.
            let loaded = fallback_server::load(f)?;
            loaded.log(f);
            loaded.config
        }
        None => {
            let names: Vec<&str> = accounts.keys().map(String::as_str).collect();
            demo_config(&args.data, &names, args.port)?
        }
    };
    let mut options = Options::from_config(&conf);
    options.token_skew = Duration::from_secs(args.token_skew);
    let (accounts, sessions) = (Arc::new(accounts), Arc::default());
    let token_ttl = Duration::from_secs(args.token_ttl);
    let gateway_sdk = match &args.gateway_sdk {
        Some(f) => Some(Arc::new(
            std::fs::read(f).with_context(|| format!("--gateway-sdk {}", f.display()))?,
        )),
        None => None,
    };
    let addrs = Addresses {
        bind: Some(args.bind.clone()),
        http_port: Some(args.port),
        https_port: None,
    };
    // The service owns the listeners, reloads (SIGHUP) and the sweeper; the app is
    // built again around each new state.
    let service = Service::bind_app(
        AppState::new(conf, options)?,
        &addrs,
        args.config.clone(),
        move |fallback| {
            app(Web {
                fallback,
                accounts: Arc::clone(&accounts),
                sessions: Arc::clone(&sessions),
                token_ttl,
                gateway_sdk: gateway_sdk.clone(),
            })
        },
    )
    .await
    .context("cannot listen (use --port)")?;
    if let Some(addr) = service.http_addr() {
        println!("fallback-web: open http://{addr}/");
    }
    service.sweep_every(Duration::from_hours(1));
    service.reload_on_hangup()?;
    service
        .serve(fallback_server::terminated(), ServeOptions::default())
        .await?;
    Ok(())
}
