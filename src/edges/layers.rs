//! The layer every request passes through: the per-client rate limit, the security headers,
//! and the request timer.
//!
//! Headers: HSTS (two years, subdomains), a strict Content-Security-Policy fit for the web
//! client to come (same-origin scripts, styles and connections, WebSockets included; no
//! frames, no plugins), `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
//! `Referrer-Policy: no-referrer`, `Cache-Control: no-store` on API answers. No `Server`
//! header is sent (axum adds none; a proxy in front should hide its own).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::store::limits::{Decision, Quota};

const HSTS: &str = "max-age=63072000; includeSubDomains";
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// What every request passes through, in one layer (each layer of its own would clone the
/// route's service and box a future for every request):
/// - it spends one request of the client address's budget (every route but health checks),
///   and answers 429 with `Retry-After` past it;
/// - it adds the security headers to every response, and drops any `Server` header;
/// - it times the request, from reaching the router to its response, into
///   `nudge_http_request_duration_seconds`.
pub async fn edge(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let path = request.uri().path();
    let api = path.starts_with("/api/");
    let mut response = if path == "/healthz" || path == "/readyz" {
        next.run(request).await
    } else {
        let (parts, body) = request.into_parts();
        match over_budget(&state, &parts).await {
            Some(refused) => refused,
            None => next.run(Request::from_parts(parts, body)).await,
        }
    };
    add_security_headers(&mut response, api);
    state.metrics.observe_request(
        route.as_ref().map(MatchedPath::as_str),
        &method,
        response.status(),
        started.elapsed(),
    );
    response
}

fn add_security_headers(response: &mut Response, api: bool) {
    let headers = response.headers_mut();
    headers.reserve(6);
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.remove(header::SERVER);
}

/// The 429 answer when the client's address has spent its budget; `None` when it may go on.
async fn over_budget(state: &AppState, parts: &Parts) -> Option<Response> {
    let limits = &state.security;
    let quota = Quota::per_minute(limits.limits.ip_per_min);
    if quota.is_unlimited() {
        return None;
    }
    let ip = client_ip(state, parts);
    let Decision::Limited { retry_after } = limits.limiter.check(&format!("ip:{ip}"), quota).await
    else {
        return None;
    };
    tracing::info!(%ip, "client over its request budget");
    Some(
        ApiError::TooManyRequests {
            code: "rate_limited",
            retry_after,
        }
        .into_response(),
    )
}

/// The client's address: the last `X-Forwarded-For` entry when the deployment trusts its
/// proxy (nginx appends the address it saw), else the peer of the connection.
pub fn client_ip(state: &AppState, parts: &Parts) -> String {
    if state.security.trust_forwarded_for
        && let Some(forwarded) = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        return forwarded.to_string();
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}
