//! Cookie sessions for the pages, and their CSRF token.
//!
//! The session is the API's own pair of tokens, kept in HttpOnly cookies: `eshop_session` (the
//! access token) and `eshop_refresh`. A page request whose access token expired is renewed with
//! the refresh token on the way in, so the API's sessions (logout, revocation, password change)
//! stay the only ones. Every form carries the `eshop_csrf` cookie's value in a hidden field, and
//! a `POST` whose field does not match is refused: SameSite=Lax already keeps other sites'
//! forms from carrying the session, this keeps it so for older browsers.

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use serde::Deserialize;
use std::net::SocketAddr;
use uuid::Uuid;

use eshop_domain::values::Role;

use crate::web::client::{forwarded_headers, Caller};
use crate::web::WebState;

pub const SESSION_COOKIE: &str = "eshop_session";
pub const REFRESH_COOKIE: &str = "eshop_refresh";
pub const CSRF_COOKIE: &str = "eshop_csrf";
/// A refresh token lives at most this long in the browser (the API ends it sooner on logout).
const REFRESH_COOKIE_MAX_AGE: u64 = 30 * 24 * 3600;

/// Who is looking at the page: anonymous, or a signed-in user with roles.
#[derive(Clone)]
pub struct Visitor {
    pub user: Option<SignedIn>,
    /// The value every form of this page carries.
    pub csrf: String,
    /// How the page calls the API on the visitor's behalf.
    pub caller: Caller,
}

#[derive(Clone)]
pub struct SignedIn {
    pub id: Uuid,
    pub roles: Vec<Role>,
}

impl Visitor {
    pub fn is_signed_in(&self) -> bool {
        self.user.is_some()
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.user
            .as_ref()
            .is_some_and(|user| user.roles.contains(&role))
    }

    /// Admins and auditors see the operations console.
    pub fn sees_console(&self) -> bool {
        self.has_role(Role::Admin) || self.has_role(Role::Auditor)
    }
}

impl FromRequestParts<WebState> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &WebState) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Visitor>()
            .cloned()
            .unwrap_or_else(|| Visitor {
                user: None,
                csrf: String::new(),
                caller: Caller::default(),
            }))
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure when the page came over TLS.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(seconds) = max_age {
        cookie.push_str(&format!("; Max-Age={seconds}"));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie)
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// Whether the page request arrived over TLS (directly or as the proxy in front says).
pub fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// The tokens a sign-in or refresh answers.
#[derive(Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
}

/// The cookies that hold a new session.
pub fn session_cookies(tokens: &Tokens, secure: bool) -> [HeaderValue; 2] {
    [
        set_cookie(SESSION_COOKIE, &tokens.access_token, None, secure),
        set_cookie(
            REFRESH_COOKIE,
            &tokens.refresh_token,
            Some(REFRESH_COOKIE_MAX_AGE),
            secure,
        ),
    ]
}

/// The cookies that end it in the browser.
pub fn cleared_session_cookies(secure: bool) -> [HeaderValue; 2] {
    [
        set_cookie(SESSION_COOKIE, "", Some(0), secure),
        set_cookie(REFRESH_COOKIE, "", Some(0), secure),
    ]
}

/// Reads the session cookies into a `Visitor` (renewing an expired access token), and sets
/// the CSRF cookie when the browser has none.
pub async fn visit(State(web): State<WebState>, mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    let secure = over_tls(headers);
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer);
    let mut caller = Caller {
        token: None,
        peer,
        forwarded: forwarded_headers(headers, web.app.client_ip_header.as_deref()),
    };
    let now = chrono::Utc::now().timestamp();
    let mut renewed = None;
    let mut user = None;
    if let Some(token) = cookie(headers, SESSION_COOKIE) {
        if let Ok(claims) = web.app.tokens.verify(token, now) {
            user = Some(SignedIn {
                id: claims.sub,
                roles: claims.roles,
            });
            caller.token = Some(token.to_string());
        }
    }
    if user.is_none() {
        if let Some(refresh_token) = cookie(headers, REFRESH_COOKIE) {
            let body = serde_json::json!({ "refresh_token": refresh_token });
            if let Ok(tokens) = web
                .api
                .post::<_, Tokens>(&caller, "/api/auth/refresh", &body)
                .await
            {
                if let Ok(claims) = web.app.tokens.verify(&tokens.access_token, now) {
                    user = Some(SignedIn {
                        id: claims.sub,
                        roles: claims.roles,
                    });
                    caller.token = Some(tokens.access_token.clone());
                    renewed = Some(tokens);
                }
            }
        }
    }
    let existing_csrf = cookie(request.headers(), CSRF_COOKIE)
        .filter(|value| value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string);
    let new_csrf = existing_csrf
        .is_none()
        .then(|| Uuid::new_v4().simple().to_string());
    let csrf = existing_csrf
        .or_else(|| new_csrf.clone())
        .unwrap_or_default();
    request
        .extensions_mut()
        .insert(Visitor { user, csrf, caller });
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if let Some(tokens) = renewed {
        // A page that signs out or in sets its own cookies; those win.
        if !headers.contains_key(SET_COOKIE) {
            for cookie in session_cookies(&tokens, secure) {
                headers.append(SET_COOKIE, cookie);
            }
        }
    }
    if let Some(csrf) = new_csrf {
        headers.append(SET_COOKIE, set_cookie(CSRF_COOKIE, &csrf, None, secure));
    }
    response
}

/// Whether a submitted form's token is the visitor's (compared in constant time).
pub fn csrf_matches(visitor: &Visitor, submitted: &str) -> bool {
    let expected = visitor.csrf.as_bytes();
    let submitted = submitted.as_bytes();
    !expected.is_empty()
        && expected.len() == submitted.len()
        && expected
            .iter()
            .zip(submitted)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_found_among_others_and_an_empty_one_is_absent() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("a=1; eshop_csrf=abc; b="));
        assert_eq!(cookie(&headers, "eshop_csrf"), Some("abc"));
        assert_eq!(cookie(&headers, "b"), None);
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn only_the_visitors_own_token_matches() {
        let visitor = Visitor {
            user: None,
            csrf: "0123456789abcdef0123456789abcdef".into(),
            caller: Caller::default(),
        };
        assert!(csrf_matches(&visitor, "0123456789abcdef0123456789abcdef"));
        assert!(!csrf_matches(&visitor, "0123456789abcdef0123456789abcdee"));
        assert!(!csrf_matches(&visitor, ""));
        let without = Visitor {
            csrf: String::new(),
            ..visitor
        };
        assert!(!csrf_matches(&without, ""));
    }
}
