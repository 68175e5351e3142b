//! Who is asking, and may they: token, user settings, transport, docroot, path.

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::http::request::Parts;
use fallback_conf::{Account, Overwrite, TransferAuth, UserSettings};
use fallback_engine::RelPath;
use fallback_token::{Access, Claims, Direction, VerifyOptions};

use crate::error::ApiError;
use crate::{AppState, Transport};

/// When a token stops being valid, and the clock that says when that is.
#[derive(Debug, Clone)]
pub(crate) struct Deadline {
    /// Unix seconds, skew included.
    at: u64,
    clock: crate::Clock,
}

impl Deadline {
    /// Whether the token has expired by now.
    pub(crate) fn passed(&self) -> bool {
        self.clock.unix() >= self.at
    }
}

/// An identified requester.
pub(crate) struct Identity {
    /// The transfer user (empty when anonymous).
    pub(crate) user: String,
    /// The client's address: the peer, or, behind a trusted proxy, the address it
    /// forwarded for. For logs only, never for authorization.
    pub(crate) client: String,
    /// The token's claims; `None` for an anonymous request allowed by `allow`.
    pub(crate) claims: Option<Claims>,
    /// The user's docroot.
    pub(crate) storage: crate::store::Store,
    /// The user's effective settings (what aspera.conf says for them).
    pub(crate) settings: Arc<UserSettings>,
    /// Bytes per second this request may move (the user's rate cap for its
    /// direction); `None`: as fast as TCP goes.
    pub(crate) rate: Option<u64>,
}

/// The bearer token of a request: `Authorization: Bearer`, or `?token=` when allowed
/// (GET and HEAD only, for links a browser follows).
fn bearer(headers: &HeaderMap, query: Option<&str>, query_allowed: bool) -> Option<String> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?.trim();
        let (scheme, rest) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| rest.trim().to_owned());
    }
    if !query_allowed {
        return None;
    }
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "token").then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// Whether the request carried a token in its query (so responses must not be cached
/// or leak it through Referer).
pub(crate) fn token_in_query(parts: &Parts) -> bool {
    parts
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p.starts_with("token=")))
}

fn direction_policy(s: &UserSettings, d: Direction) -> TransferAuth {
    match d {
        Direction::Upload => s.transfer_in.value,
        Direction::Download => s.transfer_out.value,
    }
}

/// A user as the system knows them, and the settings the configuration gives them.
pub(crate) struct Known {
    /// When the account was read.
    at: std::time::Instant,
    /// `Config::account` of it.
    pub(crate) settings: Arc<UserSettings>,
}

/// How long an account read through NSS is used before it is read again.
const ACCOUNT_TTL: std::time::Duration = std::time::Duration::from_secs(60);

impl AppState {
    /// `user` as the system knows them (groups, home directory), through NSS on a
    /// blocking thread (an LDAP or SSSD lookup may take a while), and their settings
    /// under this configuration, both cached for a minute (a reload starts afresh).
    pub(crate) async fn account_of(&self, user: &str) -> Arc<Known> {
        let now = std::time::Instant::now();
        if let Ok(cache) = self.inner.accounts.read()
            && let Some(k) = cache.get(user)
            && now.duration_since(k.at) < ACCOUNT_TTL
        {
            return Arc::clone(k);
        }
        let name = user.to_owned();
        let account = tokio::task::spawn_blocking(move || Account::lookup(&name))
            .await
            .unwrap_or_else(|_| Account::named(user, Vec::new()));
        let known = Arc::new(Known {
            at: now,
            settings: Arc::new(self.config().account(&account)),
        });
        if let Ok(mut cache) = self.inner.accounts.write() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(user.to_owned(), Arc::clone(&known));
        }
        known
    }

    /// `user`'s effective settings as the service applies them to that user's
    /// requests: user section, then the groups the system gives the account (NSS:
    /// files, LDAP, SSSD), then defaults, with `$(name)` and `$(home)` substituted.
    /// Issue tokens with the key these settings name ([`fallback_token::Key::from_settings`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let conf = fallback_conf::Config::parse(r#"<CONF>
    ///   <http_server><enable_http>true</enable_http></http_server>
    ///   <default>
    ///     <authorization><token>
    ///       <encryption_key>a-secret-of-at-least-32-characters!!</encryption_key>
    ///     </token></authorization>
    ///     <file_system><access><paths><path><absolute>/srv/$(name)</absolute></path>
    ///     </paths></access></file_system>
    ///   </default></CONF>"#)?.into_checked()?;
    /// let state = fallback_server::AppState::new(conf, Default::default())?;
    /// let settings = state.settings_for("alice").await;
    /// assert_eq!(settings.docroot_for(None).and_then(|d| d.as_local()), Some(std::path::Path::new("/srv/alice")));
    /// let key = fallback_token::Key::from_settings(&settings)?;
    /// let token = fallback_token::Token::upload("alice", "/incoming").issue(&key)?;
    /// assert!(!token.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn settings_for(&self, user: &str) -> UserSettings {
        UserSettings::clone(&self.account_of(user).await.settings)
    }

    /// Whether the request arrived over HTTPS, and the client's address. Behind a
    /// trusted proxy (proxy mode), `X-Forwarded-Proto` says whether the client spoke
    /// HTTPS to the proxy and `X-Forwarded-For` who the client is; from any other peer
    /// those headers are ignored.
    pub(crate) fn transport(&self, parts: &Parts) -> (bool, String) {
        let t = parts.extensions.get::<Transport>().copied();
        let direct = t.map_or(self.inner.options.assume_https, |t| t.https);
        let Some(peer) = t.and_then(|t| t.peer) else {
            return (direct, "-".to_owned());
        };
        let trusted = &self.inner.options.trusted_proxies;
        if !trusted.contains(&peer.ip()) {
            return (direct, peer.ip().to_string());
        }
        let header = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok());
        let https = match header("x-forwarded-proto").map(str::trim) {
            Some(p) if p.eq_ignore_ascii_case("https") => true,
            Some(_) => false,
            None => direct,
        };
        // The rightmost address that is not one of our proxies is the client.
        let client = header("x-forwarded-for")
            .and_then(|v| {
                v.rsplit(',')
                    .map(str::trim)
                    .find(|a| {
                        a.parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| !trusted.contains(&ip))
                    })
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| peer.ip().to_string());
        (https, client)
    }

    /// Verifies the token (or allows an anonymous request where the configuration says
    /// `allow`), then checks the user's settings for this direction and transport.
    pub(crate) async fn identify(
        &self,
        parts: &Parts,
        direction: Direction,
    ) -> Result<Identity, ApiError> {
        let query_allowed =
            parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD;
        let token = bearer(&parts.headers, parts.uri.query(), query_allowed);
        self.identify_token(parts, token, direction).await
    }

    /// [`AppState::identify`] with a token that came some other way than the request's
    /// headers (inside an IBM HTTP Gateway transfer spec); the request still says the
    /// transport and the client.
    pub(crate) async fn identify_token(
        &self,
        parts: &Parts,
        token: Option<String>,
        direction: Direction,
    ) -> Result<Identity, ApiError> {
        let (https, client) = self.transport(parts);
        let conf = self.config();
        let (user, settings, claims) = match token {
            None => {
                let d = conf.defaults();
                if direction_policy(&d, direction) != TransferAuth::Allow {
                    crate::stats::token_refused("missing");
                    return Err(ApiError::Unauthorized {
                        reason: format!("no token for a {direction} that requires one"),
                    });
                }
                (String::new(), Arc::new(d), None)
            }
            Some(token) => {
                let Some(ring) = self.keys() else {
                    return Err(ApiError::Unauthorized {
                        reason: "no token key is configured".to_owned(),
                    });
                };
                let opts = VerifyOptions {
                    skew: self.inner.options.token_skew,
                    now: Some(self.inner.options.clock.now()),
                    ..VerifyOptions::default()
                };
                let claims = ring.decode(&token, &opts).map_err(|e| {
                    crate::stats::token_refused(e.kind());
                    ApiError::Unauthorized {
                        reason: format!("token refused: {} ({e})", e.kind()),
                    }
                })?;
                let known = self.account_of(&claims.user).await;
                let settings = Arc::clone(&known.settings);
                // The key that verified must be this user's own (current, or retired
                // and still within its time, which decoding checked): a secret
                // configured for one user cannot mint tokens for another.
                let id_of = |secret: &fallback_conf::Secret| {
                    self.key_id_of(secret.expose())
                        .is_some_and(|kid| kid == claims.key_id)
                };
                let own_key = settings.token_key.value.as_ref().is_some_and(id_of)
                    || settings.retired_keys.value.iter().any(|k| id_of(&k.secret));
                if !own_key {
                    crate::stats::token_refused("wrong-user-key");
                    return Err(ApiError::Unauthorized {
                        reason: format!(
                            "token for user {:?} not made with that user's key",
                            claims.user
                        ),
                    });
                }
                (claims.user.clone(), settings, Some(claims))
            }
        };
        if direction_policy(&settings, direction) == TransferAuth::Deny {
            return Err(ApiError::Forbidden {
                public: format!("{direction}s are not allowed for this user"),
                reason: format!("{direction} denied by configuration for {user:?}"),
            });
        }
        let allowed = match direction {
            Direction::Upload => settings.write_allowed.value,
            Direction::Download => settings.read_allowed.value,
        };
        if !allowed {
            return Err(ApiError::Forbidden {
                public: format!("{direction}s are not allowed for this user"),
                reason: format!("{direction} not allowed by read/write_allowed for {user:?}"),
            });
        }
        if settings.must_encrypt() && !https {
            let port = self.inner.options.https_port;
            return Err(ApiError::Forbidden {
                public: match port {
                    Some(p) => format!(
                        "this user's transfers must be encrypted: use HTTPS (port {p}, path /aspera/https)"
                    ),
                    None => "this user's transfers must be encrypted: use HTTPS".to_owned(),
                },
                reason: format!("plain HTTP refused for encrypting user {user:?}"),
            });
        }
        let peer = client.parse::<std::net::IpAddr>().ok();
        let Some(docroot) = settings.docroot_for(peer) else {
            return Err(ApiError::Forbidden {
                public: "no docroot is configured for this user".to_owned(),
                reason: match &settings.docroot_problem {
                    Some(why) => format!("user {user:?} has no usable docroot: {why}"),
                    None => format!("user {user:?} has no docroot"),
                },
            });
        };
        let storage = self.storage(docroot)?;
        let rate = settings.rate_limit(direction == Direction::Upload);
        Ok(Identity {
            user,
            client,
            claims,
            storage,
            settings,
            rate,
        })
    }
}

impl Identity {
    /// Whether uploads may not replace existing files (`overwrite` is `deny`).
    pub(crate) fn overwrite_denied(&self) -> bool {
        self.settings.overwrite.value == Overwrite::Deny
    }

    /// The modes this user's uploads create files and directories with.
    pub(crate) fn modes(&self) -> fallback_engine::Modes {
        fallback_engine::Modes {
            file: Some(self.settings.file_mode()),
            dir: Some(self.settings.dir_mode()),
        }
    }

    /// Whether the docroot restrictions let this user transfer the file at `path`.
    pub(crate) fn restriction_allows(&self, path: &RelPath) -> bool {
        let rules = &self.settings.restrictions.value;
        rules.is_empty()
            || crate::restrict::allows_in(rules, &self.storage.restriction_base(), path)
    }

    /// Refuses a file the docroot restrictions do not allow this user to transfer.
    pub(crate) fn check_restrictions(&self, path: &RelPath) -> Result<(), ApiError> {
        if self.restriction_allows(path) {
            return Ok(());
        }
        Err(ApiError::Forbidden {
            public: "this file may not be transferred (the docroot's restrictions refuse it)"
                .to_owned(),
            reason: format!("restriction refuses {path} for {:?}", self.user),
        })
    }

    /// Refuses listing a directory (manifest or HTML) when `dir_allowed` is false.
    pub(crate) fn may_browse(&self) -> Result<(), ApiError> {
        if self.settings.dir_allowed.value {
            return Ok(());
        }
        Err(ApiError::Forbidden {
            public: "listing directories is not allowed for this user".to_owned(),
            reason: format!("dir_allowed is false for {:?}", self.user),
        })
    }

    /// When the token stops being valid (skew included), on the service's clock;
    /// `None` for an anonymous requester.
    pub(crate) fn deadline(&self, options: &crate::Options) -> Option<Deadline> {
        self.claims.as_ref().map(|c| Deadline {
            at: c.expires_at.saturating_add(options.token_skew.as_secs()),
            clock: options.clock.clone(),
        })
    }

    /// Whether this requester may `direction` at `path`: the token's direction and
    /// paths (an anonymous requester may touch the whole docroot). A path outside the
    /// token is 403 whether or not it exists.
    pub(crate) fn permit(&self, direction: Direction, path: &RelPath) -> Result<(), ApiError> {
        let Some(claims) = &self.claims else {
            return Ok(());
        };
        let p = path.to_string();
        claims
            .check(&Access {
                user: None,
                direction,
                path: &p,
            })
            .map_err(|e| ApiError::Forbidden {
                public: if e.is_forbidden() {
                    "the token does not allow this".to_owned()
                } else {
                    "forbidden".to_owned()
                },
                reason: format!("{} for {p} by {:?}", e.kind(), self.user),
            })
    }

    /// The upload destination directory of the token (the docroot when anonymous).
    pub(crate) fn upload_root(&self) -> Result<RelPath, ApiError> {
        match &self.claims {
            None => Ok(RelPath::root()),
            Some(c) => {
                if c.direction != Direction::Upload {
                    return Err(ApiError::Forbidden {
                        public: "the token does not allow this".to_owned(),
                        reason: format!(
                            "wrong-direction: download token used to upload by {:?}",
                            self.user
                        ),
                    });
                }
                let dest = c.paths.first().map_or("/", String::as_str);
                RelPath::parse(dest).map_err(|e| ApiError::Forbidden {
                    public: "the token does not allow this".to_owned(),
                    reason: format!("token destination {dest:?} unusable: {e}"),
                })
            }
        }
    }
}
