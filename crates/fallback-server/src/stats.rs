//! What the service counts, through the `metrics` facade: nothing is recorded until the
//! embedding program installs a recorder (fallbackd's `--metrics` installs the
//! Prometheus one). Names and labels are listed in `docs/operations.md`; every label
//! takes a bounded set of values.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// A transfer (one request moving file bytes) began.
pub(crate) fn transfer_started(direction: &'static str) {
    metrics::counter!("fallback_transfers_started_total", "direction" => direction).increment(1);
    metrics::gauge!("fallback_transfers_active", "direction" => direction).increment(1.0);
}

/// A transfer ended with `outcome` (`ok`, `failed`, `client-gone`, `read-error`).
pub(crate) fn transfer_ended(direction: &'static str, outcome: &'static str) {
    metrics::counter!(
        "fallback_transfers_ended_total",
        "direction" => direction,
        "outcome" => outcome
    )
    .increment(1);
    metrics::gauge!("fallback_transfers_active", "direction" => direction).decrement(1.0);
}

/// File bytes received in request bodies.
pub(crate) fn bytes_received(n: u64) {
    metrics::counter!("fallback_bytes_received_total").increment(n);
}

/// File bytes sent in responses.
pub(crate) fn bytes_sent(n: u64) {
    metrics::counter!("fallback_bytes_sent_total").increment(n);
}

/// An upload completed: its file is at its final path.
pub(crate) fn upload_completed() {
    metrics::counter!("fallback_uploads_completed_total").increment(1);
}

/// A token was refused, with the stable reason (`expired`, `bad-mac`, ...).
pub(crate) fn token_refused(reason: &'static str) {
    metrics::counter!("fallback_token_refusals_total", "reason" => reason).increment(1);
}

/// A TLS handshake failed or timed out.
pub(crate) fn tls_handshake_failed() {
    metrics::counter!("fallback_tls_handshake_failures_total").increment(1);
}

/// A connection was closed by the server's own limits: `idle` (no request in flight
/// for the header timeout: keep-alive, HTTP/2 header blocks), `stalled` (a reader that
/// accepts no bytes for the activity timeout).
pub(crate) fn connection_cut(reason: &'static str) {
    metrics::counter!("fallback_connections_cut_total", "reason" => reason).increment(1);
}

/// A storage error of `kind` (`no-space`, `io`, ...; not the refusals like not-found).
pub(crate) fn storage_error(kind: &'static str) {
    metrics::counter!("fallback_storage_errors_total", "kind" => kind).increment(1);
}

/// Uploads in progress in every docroot opened so far.
pub(crate) fn set_uploads_in_progress(n: usize) {
    // Counts stay far below 2^52.
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!("fallback_uploads_in_progress").set(n as f64);
}

/// Middleware: latency and status of every request, by route (the route pattern with
/// the base path removed, so labels stay few).
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| route_label(m.as_str()));
    let started = Instant::now();
    let resp = next.run(req).await;
    metrics::histogram!("fallback_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(
        "fallback_responses_total",
        "route" => route,
        "status" => status_label(resp.status().as_u16())
    )
    .increment(1);
    resp
}

/// The route of a matched pattern, whatever base (`/aspera/http`) or mount point
/// (`Router::nest`) comes before it.
fn route_label(pattern: &str) -> &'static str {
    const ROUTES: [(&str, &str); 10] = [
        ("/health", "/health"),
        ("/info", "/info"),
        ("/access/{*path}", "/access"),
        ("/access/", "/access"),
        ("/files", "/files"),
        ("/files/", "/files"),
        ("/files/{*path}", "/files"),
        ("/links/{*path}", "/links"),
        ("/uploads", "/uploads"),
        ("/uploads/{id}", "/uploads/{id}"),
    ];
    ROUTES
        .iter()
        .find(|(suffix, _)| pattern.ends_with(suffix))
        .map_or("other", |(_, label)| label)
}

fn status_label(code: u16) -> &'static str {
    match code {
        200 => "200",
        201 => "201",
        204 => "204",
        206 => "206",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        408 => "408",
        409 => "409",
        412 => "412",
        413 => "413",
        415 => "415",
        416 => "416",
        423 => "423",
        460 => "460",
        500 => "500",
        507 => "507",
        c if c < 300 => "2xx",
        c if c < 400 => "3xx",
        c if c < 500 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(route_label("/aspera/http/files/{*path}"), "/files");
        assert_eq!(route_label("/aspera/https/uploads/{id}"), "/uploads/{id}");
        assert_eq!(route_label("/uploads"), "/uploads");
        assert_eq!(route_label("/whatever"), "other");
        // Nested by an app, even under a mount point named like a route.
        assert_eq!(route_label("/transfers/files/{*path}"), "/files");
        assert_eq!(route_label("/files/aspera/http/uploads"), "/uploads");
        assert_eq!(route_label("/app/links/{*path}"), "/links");
        assert_eq!(status_label(418), "4xx");
        assert_eq!(status_label(507), "507");
    }
}
