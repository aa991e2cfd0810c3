//! Layers every response passes through: the request timer, security headers, and the
//! per-client rate limit.
//!
//! Headers: HSTS (two years, subdomains), a strict Content-Security-Policy fit for the web
//! client to come (same-origin scripts, styles and connections, WebSockets included; no
//! frames, no plugins), `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
//! `Referrer-Policy: no-referrer`, `Cache-Control: no-store` on API answers. No `Server`
//! header is sent (axum adds none; a proxy in front should hide its own).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::metrics::Metrics;
use super::{ApiError, AppState};
use crate::store::limits::{Decision, Quota};

const HSTS: &str = "max-age=63072000; includeSubDomains";
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Times every request, from reaching the router to its response, into
/// `nudge_http_request_duration_seconds`.
pub async fn time_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let response = next.run(request).await;
    metrics.observe_request(
        route.as_ref().map(MatchedPath::as_str),
        &method,
        response.status(),
        started.elapsed(),
    );
    response
}

/// Adds the security headers to every response.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
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
    response
}

/// Spends one request of the client address's budget (every route but health checks);
/// answers 429 with `Retry-After` past it.
pub async fn limit_per_client(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if path == "/healthz" || path == "/readyz" {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let ip = client_ip(&state, &parts);
    let quota = Quota::per_minute(state.security.limits.ip_per_min);
    if let Decision::Limited { retry_after } = state
        .security
        .limiter
        .check(&format!("ip:{ip}"), quota)
        .await
    {
        tracing::info!(%ip, "client over its request budget");
        return ApiError::TooManyRequests {
            code: "rate_limited",
            retry_after,
        }
        .into_response();
    }
    next.run(Request::from_parts(parts, body)).await
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
