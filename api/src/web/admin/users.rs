//! `/admin/users`: accounts, their roles (grant, revoke), deactivate or reactivate, erase.

use axum::extract::{Path, Query};
use axum::http::Method;
use axum::response::Response;
use maud::{html, Markup};
use serde::{Deserialize, Serialize};

use crate::web::admin::{query, segment, table, Console, Empty};
use crate::web::form::Form;
use crate::web::page::{csrf_field, money};

const ROLES: [&str; 2] = ["admin", "auditor"];

#[derive(Deserialize)]
pub struct User {
    id: String,
    email: Option<String>,
    username: String,
    roles: Vec<String>,
    is_active: bool,
    balance_cents: i64,
    erased: bool,
}

#[derive(Deserialize)]
pub struct Users {
    items: Vec<User>,
    next_cursor: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct Cursor {
    #[serde(default)]
    cursor: String,
}

pub async fn list(console: Console, Query(page): Query<Cursor>) -> Response {
    let answer = console
        .get::<Users>(&format!(
            "/api/users{}",
            query(&[("limit", "50"), ("cursor", &page.cursor)])
        ))
        .await;
    console.render("Users", answer, |users| {
        html! {
            h1 { "Users" }
            (table(
                "users",
                "user",
                &["E-mail", "Username", "Roles", "State", "Balance", "Actions"],
                &users.items,
                |user| row(&console, user),
            ))
            @if let Some(next) = &users.next_cursor {
                nav class="pagination" { a rel="next" href={ "/admin/users" (query(&[("cursor", next)])) } { "Next →" } }
            }
        }
    })
}

fn row(console: &Console, user: &User) -> Markup {
    let link = format!("/admin/users/{}", segment(&user.id));
    let state = match (user.erased, user.is_active) {
        (true, _) => "erased",
        (false, true) => "active",
        (false, false) => "deactivated",
    };
    // A button that asks first is one that cannot be undone.
    let button = |action: &str, class: &str, label: &str, confirm: Option<String>| {
        let look = if confirm.is_some() {
            "danger"
        } else {
            "secondary"
        };
        html! {
            form class={ (class) " inline" } method="post" action={ (link) "/" (action) }
                data-confirm=[confirm] {
                (csrf_field(&console.visitor))
                button type="submit" class=(look) { (label) }
            }
        }
    };
    html! {
        td { (user.email.as_deref().unwrap_or("(erased)")) }
        td { (user.username) }
        td {
            @for role in &user.roles {
                span class="role" { (role) }
                (button(&format!("roles/{}/revoke", segment(role)), "revoke-role", "×", None))
            }
        }
        td { span class="status" data-status=(state) { (state) } }
        td { (money(user.balance_cents)) }
        td {
            @if !user.erased {
                form class="grant-role inline" method="post" action={ (link) "/roles" } {
                    (csrf_field(&console.visitor))
                    select name="role" aria-label="Role" {
                        @for role in ROLES { option value=(role) { (role) } }
                    }
                    button type="submit" class="secondary" { "Grant" }
                }
                @if user.is_active {
                    (button("deactivate", "deactivate", "Deactivate", None))
                } @else {
                    (button("reactivate", "reactivate", "Reactivate", None))
                }
                (button("erase", "erase", "Erase", Some(format!(
                    "Erase {}'s personal data? This cannot be undone.",
                    user.username
                ))))
            }
        }
    }
}

/// Runs a user command, then back to the list with `notice`.
async fn user_command<B: Serialize>(
    console: &Console,
    method: Method,
    path: &str,
    body: Option<&B>,
    notice: &str,
) -> Response {
    console
        .command(method, path, body, "/admin/users", |_| {
            format!("/admin/users?notice={notice}")
        })
        .await
}

#[derive(Deserialize, Serialize)]
pub struct RoleForm {
    role: String,
}

pub async fn grant_role(
    console: Console,
    Path(id): Path<String>,
    Form(form): Form<RoleForm>,
) -> Response {
    let path = format!("/api/users/{}/roles", segment(&id));
    user_command(&console, Method::POST, &path, Some(&form), "granted").await
}

pub async fn revoke_role(
    console: Console,
    Path((id, role)): Path<(String, String)>,
    Form(_): Form<Empty>,
) -> Response {
    let path = format!("/api/users/{}/roles/{}", segment(&id), segment(&role));
    user_command(&console, Method::DELETE, &path, None::<&()>, "revoked").await
}

pub async fn deactivate(
    console: Console,
    Path(id): Path<String>,
    Form(_): Form<Empty>,
) -> Response {
    let path = format!("/api/users/{}", segment(&id));
    user_command(&console, Method::DELETE, &path, None::<&()>, "deactivated").await
}

pub async fn reactivate(
    console: Console,
    Path(id): Path<String>,
    Form(_): Form<Empty>,
) -> Response {
    let path = format!("/api/users/{}/reactivate", segment(&id));
    user_command(&console, Method::POST, &path, None::<&()>, "reactivated").await
}

pub async fn erase(console: Console, Path(id): Path<String>, Form(_): Form<Empty>) -> Response {
    let path = format!("/api/admin/users/{}/erase", segment(&id));
    user_command(&console, Method::POST, &path, None::<&()>, "erased").await
}
