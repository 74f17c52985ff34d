//! Throttling by route class, counted in Redis so that every replica shares the numbers.
//!
//! - commands (POST, PUT, PATCH, DELETE): per user when signed in, else per client address;
//! - reads (GET, HEAD): per user or client address, at a rate browsing stays well under;
//! - placing orders (`/api/purchases`, `/api/orders`, `/api/cart/checkout`): a token bucket per
//!   user on top of the command rate;
//! - logins: per account and per client address (see `check_login`), against brute force.
//!
//! Every answer in a class carries `RateLimit-Limit`, `RateLimit-Remaining` and
//! `RateLimit-Reset` (seconds) for its tightest limit; a refusal is 429 `throttled` with
//! `Retry-After`. With Redis unreachable requests go through (counted in `/metrics` as
//! `eshop_throttle_fail_open_total`): an outage of the cache must not become an outage of the
//! shop, and logins stay slow by argon2 alone.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::Extensions;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use eshop_commands::digest::sha256_hex;
use eshop_infra::rate_limit::{Limit, Verdict};

use crate::auth::extract::bearer_claims;
use crate::background::replay::BackgroundRun;
use crate::config::ThrottleSettings;
use crate::error::ApiError;
use crate::state::AppState;

const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
const ORDER_PATHS: [&str; 3] = ["/api/purchases", "/api/orders", "/api/cart/checkout"];

/// Who a request counts against.
fn requester(state: &AppState, request: &Request) -> String {
    // A page's visitor is known by the session cookie, an API client by its bearer token.
    let page_visitor = request
        .extensions()
        .get::<crate::web::session::Visitor>()
        .and_then(|visitor| visitor.user.as_ref().map(|user| user.id));
    match page_visitor.or_else(|| bearer_claims(state, request.headers()).map(|claims| claims.sub))
    {
        Some(user_id) => format!("user:{user_id}"),
        None => format!(
            "address:{}",
            client_address(state, request.headers(), request.extensions())
        ),
    }
}

/// The client's address: the configured proxy header when there is one, else the peer.
fn client_address(state: &AppState, headers: &HeaderMap, extensions: &Extensions) -> String {
    address_from(
        state.client_ip_header.as_deref(),
        headers,
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip()),
    )
}

/// The client's address, for handlers (login throttling).
pub struct ClientAddress(pub String);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_address(
            state,
            &parts.headers,
            &parts.extensions,
        )))
    }
}

pub fn address_from(header: Option<&str>, headers: &HeaderMap, peer: Option<IpAddr>) -> String {
    header
        .and_then(|name| headers.get(name))
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(',').next())
        .and_then(|value| value.trim().parse::<IpAddr>().ok())
        .or(peer)
        .map_or_else(|| "unknown".to_string(), |address| address.to_string())
}

fn limits_for(
    settings: &ThrottleSettings,
    method: &Method,
    path: &str,
    requester: &str,
) -> Vec<(String, Limit)> {
    let signed_in = requester.starts_with("user:");
    if method == Method::GET || method == Method::HEAD {
        return vec![(
            format!("reads:{requester}"),
            Limit::per_minute(settings.reads_per_minute),
        )];
    }
    if method == Method::OPTIONS {
        return Vec::new();
    }
    let per_minute = if signed_in {
        settings.user_commands_per_minute
    } else {
        settings.anonymous_commands_per_minute
    };
    let mut limits = vec![(
        format!("commands:{requester}"),
        Limit::per_minute(per_minute),
    )];
    if method == Method::POST && ORDER_PATHS.contains(&path) {
        limits.push((
            format!("orders:{requester}"),
            Limit::Bucket {
                capacity: settings.order_burst,
                refill_every: Duration::from_secs(settings.order_refill_seconds.max(1)),
            },
        ));
    }
    limits
}

fn seconds_rounded_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

fn tightest(verdicts: &[Verdict]) -> Option<&Verdict> {
    verdicts
        .iter()
        .find(|verdict| !verdict.allowed)
        .or_else(|| verdicts.iter().min_by_key(|verdict| verdict.remaining))
}

fn add_headers(response: &mut Response, verdict: &Verdict) {
    let headers = response.headers_mut();
    headers.insert("ratelimit-limit", HeaderValue::from(verdict.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(verdict.remaining));
    headers.insert(
        "ratelimit-reset",
        HeaderValue::from(seconds_rounded_up(verdict.reset_after)),
    );
}

fn refusal(verdict: &Verdict) -> Response {
    let mut response = ApiError::Throttled {
        retry_after_seconds: seconds_rounded_up(verdict.retry_after).max(1),
    }
    .into_response();
    add_headers(&mut response, verdict);
    response
}

/// The middleware: counts the request against each limit of its class.
pub async fn throttle(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // A page's own API calls: the page was counted when it was asked for.
    let counted_already = request
        .extensions()
        .get::<crate::web::client::Internal>()
        .is_some();
    if !state.throttle.enabled
        || counted_already
        || request.extensions().get::<BackgroundRun>().is_some()
    {
        return next.run(request).await;
    }
    let requester = requester(&state, &request);
    let limits = limits_for(
        &state.throttle,
        request.method(),
        request.uri().path(),
        &requester,
    );
    let mut verdicts = Vec::with_capacity(limits.len());
    for (subject, limit) in limits {
        if let Some(verdict) = state.limiter.check(&subject, limit).await {
            if !verdict.allowed {
                return refusal(&verdict);
            }
            verdicts.push(verdict);
        }
    }
    let mut response = next.run(request).await;
    if let Some(verdict) = tightest(&verdicts) {
        add_headers(&mut response, verdict);
    }
    response
}

/// Counts a login attempt against the account and the client address; refuses once either
/// has used up its quota for the window.
pub async fn check_login(state: &AppState, email: &str, address: &str) -> Result<(), ApiError> {
    check_attempts(state, "login", email, address).await
}

/// Counts an attempt of `kind` (`login`, `password-reset`, `password-reset-confirm`) against
/// `subject` (an e-mail address or a token) and the client address, with the login quotas,
/// each kind counted apart; refuses once either has used up its quota for the window.
pub async fn check_attempts(
    state: &AppState,
    kind: &str,
    subject: &str,
    address: &str,
) -> Result<(), ApiError> {
    if !state.throttle.enabled {
        return Ok(());
    }
    // The account is named by a digest: no e-mail address in Redis.
    let account = sha256_hex(&[
        kind.as_bytes(),
        b":",
        subject.trim().to_lowercase().as_bytes(),
    ]);
    let checks = [
        (
            format!("{kind}:account:{account}"),
            state.throttle.login_attempts_per_account,
        ),
        (
            format!("{kind}:address:{address}"),
            state.throttle.login_attempts_per_address,
        ),
    ];
    for (subject, limit) in checks {
        let limit = Limit::Window {
            limit,
            period: LOGIN_WINDOW,
        };
        if let Some(verdict) = state.limiter.check(&subject, limit).await {
            if !verdict.allowed {
                return Err(ApiError::Throttled {
                    retry_after_seconds: seconds_rounded_up(verdict.retry_after).max(1),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_class_gets_its_limits() {
        let settings = ThrottleSettings::default();
        let reads = limits_for(&settings, &Method::GET, "/api/products", "address:1.2.3.4");
        assert_eq!(reads.len(), 1);
        assert_eq!(reads[0].1.quota(), settings.reads_per_minute);
        let anonymous = limits_for(&settings, &Method::POST, "/api/auth/register", "address:x");
        assert_eq!(
            anonymous[0].1.quota(),
            settings.anonymous_commands_per_minute
        );
        let user = limits_for(&settings, &Method::PATCH, "/api/users/me", "user:u");
        assert_eq!(user[0].1.quota(), settings.user_commands_per_minute);
        let order = limits_for(&settings, &Method::POST, "/api/purchases", "user:u");
        assert_eq!(order.len(), 2);
        assert_eq!(order[1].1.quota(), settings.order_burst);
    }

    #[test]
    fn the_proxy_header_names_the_client_only_when_configured() {
        let mut headers = HeaderMap::new();
        headers.insert("x-real-ip", HeaderValue::from_static("203.0.113.7"));
        let peer = Some("127.0.0.1".parse().expect("ip"));
        assert_eq!(address_from(None, &headers, peer), "127.0.0.1");
        assert_eq!(
            address_from(Some("x-real-ip"), &headers, peer),
            "203.0.113.7"
        );
        headers.insert("x-real-ip", HeaderValue::from_static("not an address"));
        assert_eq!(address_from(Some("x-real-ip"), &headers, peer), "127.0.0.1");
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(seconds_rounded_up(Duration::from_millis(1)), 1);
        assert_eq!(seconds_rounded_up(Duration::from_secs(2)), 2);
        assert_eq!(seconds_rounded_up(Duration::from_millis(2001)), 3);
    }
}
