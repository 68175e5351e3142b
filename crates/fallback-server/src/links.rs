//! `POST /links/{path}`: a link token for one path, download only, minutes long, made
//! from a full token sent in `Authorization` (never from one in a query string).
//!
//! A token in a URL ends up where URLs go: browser history, a proxy's error log (nginx
//! writes the request line of a failed upstream request, query included), a pasted
//! chat message. What leaks from a link made here is a token for that one path, for
//! reading, for minutes (default 5, at most 60, never past the token it was made from).

use axum::Json;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse as _, Response};
use fallback_engine::RelPath;
use fallback_token::{Direction, Key, Token};

use crate::error::ApiError;
use crate::{AppState, split_base};

/// Lifetime of a link when the request names none.
pub(crate) const DEFAULT_TTL_SECS: u64 = 300;
/// The longest a link may live.
pub(crate) const MAX_TTL_SECS: u64 = 3600;

fn ttl_param(query: Option<&str>) -> Result<Option<u64>, ApiError> {
    for pair in query.unwrap_or("").split('&') {
        if let Some(v) = pair.strip_prefix("ttl=") {
            return fallback_http::parse_u64(v)
                .filter(|&n| n > 0)
                .map(Some)
                .ok_or_else(|| ApiError::BadRequest("ttl must be a number of seconds".to_owned()));
        }
    }
    Ok(None)
}

/// A download token for exactly `paths`, made with the requester's own key, living
/// `ttl` seconds but never past `claims` (the token it is made from); with its lifetime.
/// What a link and an IBM Gateway download id carry.
pub(crate) fn short_download_token<S: AsRef<str>>(
    state: &AppState,
    id: &crate::auth::Identity,
    claims: &fallback_token::Claims,
    paths: &[S],
    ttl: u64,
) -> Result<(String, u64), ApiError> {
    let now = state.options().clock.unix();
    let ttl = ttl.min(claims.expires_at.saturating_sub(now));
    if ttl == 0 {
        return Err(ApiError::Unauthorized {
            reason: "the token expires now: nothing made from it outlives it".to_owned(),
        });
    }
    let key: Key = Key::from_settings(&id.settings)
        .map_err(|e| ApiError::Internal(format!("token key: {e}")))?;
    let token = Token::download(&claims.user, paths)
        .issued_at(state.options().clock.now())
        .valid_for(std::time::Duration::from_secs(ttl))
        .issue(&key)
        .map_err(|e| ApiError::Internal(format!("download token: {e}")))?;
    Ok((token, ttl))
}

pub(crate) async fn create(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    let (base, rest) = split_base(parts.uri.path());
    let raw = rest.strip_prefix("/links").unwrap_or_default();
    let path =
        RelPath::parse_encoded(raw).map_err(|e| ApiError::BadRequest(format!("bad path: {e}")))?;
    if !parts.headers.contains_key(header::AUTHORIZATION) {
        return Err(ApiError::Unauthorized {
            reason: "a link is made with a token in Authorization: Bearer".to_owned(),
        });
    }
    let id = state.identify(&parts, Direction::Download).await?;
    id.permit(Direction::Download, &path)?;
    let Some(claims) = &id.claims else {
        return Err(ApiError::Forbidden {
            public: "downloads need no token here: link the file itself".to_owned(),
            reason: "link asked for without a token (downloads are allow)".to_owned(),
        });
    };
    let ttl = ttl_param(parts.uri.query())?
        .unwrap_or(DEFAULT_TTL_SECS)
        .min(MAX_TTL_SECS);
    let p = path.to_string();
    let (token, ttl) = short_download_token(&state, &id, claims, &[p.as_str()], ttl)?;
    let now = state.options().clock.unix();
    let mut encoded = String::new();
    for seg in path.segments() {
        encoded.push('/');
        encoded.extend(percent_encoding::utf8_percent_encode(
            seg,
            crate::files::SEGMENT,
        ));
    }
    tracing::info!(user = %claims.user, client = %id.client, path = %p, ttl_secs = ttl, "link made");
    Ok(Json(serde_json::json!({
        "url": format!("{base}/files{encoded}?token={token}"),
        "token": token,
        "path": p,
        "direction": "download",
        "expires_at": now + ttl,
        "ttl_secs": ttl,
    }))
    .into_response())
}
