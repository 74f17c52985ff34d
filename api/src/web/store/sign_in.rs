//! Sign in, register and sign out: the API's own tokens, kept in HttpOnly cookies.

use axum::extract::{Query, State};
use axum::http::header::{HeaderMap, SET_COOKIE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};

use crate::web::client::Problem;
use crate::web::form::Form;
use crate::web::page::{csrf_field, see_other, store_page, Chrome, Flash, Html, PageError};
use crate::web::session::{cleared_session_cookies, over_tls, session_cookies, Tokens, Visitor};
use crate::web::WebState;

#[derive(Deserialize, Default)]
pub struct Next {
    next: Option<String>,
}

/// Only a path of this site: `//elsewhere` or `https://elsewhere` would make the form an open
/// redirect.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path
        }
        _ => "/",
    }
}

pub async fn sign_in_page(visitor: Visitor, Query(next): Query<Next>) -> Html {
    sign_in_form(&visitor, "", local_path(next.next.as_deref()), None)
}

fn sign_in_form(visitor: &Visitor, email: &str, next: &str, problem: Option<&Problem>) -> Html {
    let chrome = Chrome {
        flash: problem.map(Flash::error),
        ..Chrome::default()
    };
    let status = problem.map_or(StatusCode::OK, |problem| {
        StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST)
    });
    store_page(
        visitor,
        &chrome,
        "Sign in",
        html! {
            h1 { "Sign in" }
            form id="signin" class="stacked" method="post" action="/signin" {
                (csrf_field(visitor))
                input type="hidden" name="next" value=(next);
                label for="email" { "E-mail" }
                input id="email" name="email" type="email" required autocomplete="username" value=(email);
                label for="password" { "Password" }
                input id="password" name="password" type="password" required autocomplete="current-password";
                button type="submit" { "Sign in" }
            }
            p { "New here? " a href="/register" { "Register" } }
        },
    )
    .with_status(status)
}

#[derive(Deserialize, Serialize)]
pub struct Credentials {
    email: String,
    password: String,
}

#[derive(Deserialize)]
pub struct SignInForm {
    email: String,
    password: String,
    next: Option<String>,
}

pub async fn sign_in(
    State(web): State<WebState>,
    visitor: Visitor,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let next = local_path(form.next.as_deref()).to_string();
    let credentials = Credentials {
        email: form.email,
        password: form.password,
    };
    match web
        .api
        .post::<_, Tokens>(&visitor.caller, "/api/auth/login", &credentials)
        .await
    {
        Ok(tokens) => signed_in(&tokens, &next, &headers),
        Err(problem) => {
            sign_in_form(&visitor, &credentials.email, &next, Some(&problem)).into_response()
        }
    }
}

/// Redirects to `next` with the new session's cookies.
fn signed_in(tokens: &Tokens, next: &str, headers: &HeaderMap) -> Response {
    let mut response = see_other(next);
    for cookie in session_cookies(tokens, over_tls(headers)) {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

pub async fn register_page(visitor: Visitor) -> Html {
    register_form(&visitor, &RegisterForm::default(), None)
}

#[derive(Deserialize, Serialize, Default)]
pub struct RegisterForm {
    email: String,
    username: String,
    password: String,
}

fn register_form(visitor: &Visitor, form: &RegisterForm, problem: Option<&Problem>) -> Html {
    let chrome = Chrome {
        flash: problem.map(Flash::error),
        ..Chrome::default()
    };
    let field = |name: &str| -> Markup {
        html! { @if let Some(message) = problem.and_then(|p| p.field(name)) { p class="field-error" { (message) } } }
    };
    let status = problem.map_or(StatusCode::OK, |problem| {
        StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST)
    });
    store_page(
        visitor,
        &chrome,
        "Register",
        html! {
            h1 { "Register" }
            form id="register" class="stacked" method="post" action="/register" {
                (csrf_field(visitor))
                label for="email" { "E-mail" }
                input id="email" name="email" type="email" required autocomplete="email" value=(form.email);
                (field("email"))
                label for="username" { "User name" }
                input id="username" name="username" required autocomplete="nickname" value=(form.username);
                (field("username"))
                label for="password" { "Password" }
                input id="password" name="password" type="password" required autocomplete="new-password";
                (field("password"))
                button type="submit" { "Create my account" }
            }
        },
    )
    .with_status(status)
}

pub async fn register(
    State(web): State<WebState>,
    visitor: Visitor,
    headers: HeaderMap,
    Form(form): Form<RegisterForm>,
) -> Response {
    if let Err(problem) = web
        .api
        .post::<_, serde_json::Value>(&visitor.caller, "/api/auth/register", &form)
        .await
    {
        return register_form(&visitor, &form, Some(&problem)).into_response();
    }
    let credentials = Credentials {
        email: form.email.clone(),
        password: form.password.clone(),
    };
    match web
        .api
        .post::<_, Tokens>(&visitor.caller, "/api/auth/login", &credentials)
        .await
    {
        Ok(tokens) => signed_in(&tokens, "/", &headers),
        Err(problem) => sign_in_form(&visitor, &form.email, "/", Some(&problem)).into_response(),
    }
}

#[derive(Deserialize)]
pub struct SignOutForm {}

/// Ends the API session (its tokens stop working everywhere) and clears the cookies.
pub async fn sign_out(
    State(web): State<WebState>,
    visitor: Visitor,
    headers: HeaderMap,
    Form(_): Form<SignOutForm>,
) -> Result<Response, PageError> {
    if visitor.is_signed_in() {
        let ended: Result<serde_json::Value, Problem> = web
            .api
            .post(&visitor.caller, "/api/auth/logout", &serde_json::json!({}))
            .await;
        if let Err(problem) = ended {
            tracing::warn!(code = %problem.code, "signing out did not end the API session");
        }
    }
    let mut response = see_other("/");
    for cookie in cleared_session_cookies(over_tls(&headers)) {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    Ok(response)
}
