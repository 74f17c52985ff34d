//! What clients see of the aggregates. Never the password hash.

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use eshop_domain::product::Product;
use eshop_domain::user::User;
use eshop_domain::values::Role;
pub use eshop_infra::tasks::TaskRecord;
use eshop_projections::category::{CategoryTree, Crumb};
use eshop_projections::product::ProductRecord;
use eshop_projections::user::UserRecord;

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct UserView {
    pub id: Uuid,
    /// `None` once the user was erased.
    pub email: Option<String>,
    pub username: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub roles: Vec<Role>,
    pub is_active: bool,
    pub balance_cents: i64,
    pub erased: bool,
    /// When the account was made (`date_joined` says the same, for the seeds' clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_joined: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
    pub version: u64,
}

impl UserView {
    pub fn new(id: Uuid, user: &User, version: u64) -> Self {
        Self {
            id,
            email: (!user.erased).then(|| user.email.expose().clone()),
            username: user.username.clone(),
            first_name: user.first_name.expose().clone(),
            last_name: user.last_name.expose().clone(),
            roles: user.roles.iter().copied().collect(),
            is_active: user.active,
            balance_cents: user.balance_cents,
            erased: user.erased,
            created_at: None,
            date_joined: None,
            updated_at: None,
            version,
        }
    }
}

impl From<UserRecord> for UserView {
    fn from(record: UserRecord) -> Self {
        Self {
            id: record.id,
            email: (!record.erased).then_some(record.email),
            username: record.username,
            first_name: record.first_name,
            last_name: record.last_name,
            roles: record.roles,
            is_active: record.is_active,
            balance_cents: record.balance_cents,
            erased: record.erased,
            created_at: record.created_at,
            date_joined: record.created_at,
            updated_at: record.updated_at,
            version: record.version,
        }
    }
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ProductView {
    pub id: Uuid,
    pub title: String,
    pub author: String,
    pub display_name: String,
    pub published_date: Option<NaiveDate>,
    pub description: String,
    pub price_cents: i64,
    pub stock: i64,
    pub category: String,
    /// The category tree's node the product is filed under (absent: stored before the tree,
    /// filed by `category`'s slug at the top level, see `category_ref`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category_id: Option<Uuid>,
    /// The category as breadcrumbs, from the top level down (reads only; absent when the
    /// product's category is not in the tree).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category_ref: Option<CategoryRef>,
    pub removed: bool,
    pub version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Present where the view comes from the catalog (reads), absent in command answers.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub ratings: Option<Ratings>,
}

#[derive(Debug, Clone, Copy, Serialize, schemars::JsonSchema)]
pub struct Ratings {
    pub rating_average: Option<f64>,
    pub rating_count: i64,
}

impl ProductView {
    pub fn new(id: Uuid, product: &Product, version: u64) -> Self {
        Self {
            id,
            title: product.title.clone(),
            author: product.author.clone(),
            display_name: format!("{} by {}", product.title, product.author),
            published_date: product.published_date,
            description: product.description.clone(),
            price_cents: product.price_cents,
            stock: product.stock,
            category: product.category.clone(),
            category_id: product.category_id,
            category_ref: None,
            removed: product.removed,
            version,
            created_at: None,
            updated_at: None,
            ratings: None,
        }
    }
}

/// A product's category: `{id, name, path: [{id, name, slug}]}`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CategoryRef {
    pub id: Uuid,
    pub name: String,
    pub path: Vec<Crumb>,
}

impl ProductView {
    /// A product read from the catalog, with its category's breadcrumbs from `tree`.
    pub fn filed(record: ProductRecord, tree: &CategoryTree) -> Self {
        let filed_under = record
            .category_id
            .filter(|id| tree.get(*id).is_some())
            .or_else(|| {
                let slug = record.category_slug.as_deref()?;
                tree.top_level(slug).map(|top| top.id)
            });
        let category_ref = filed_under.and_then(|id| {
            let record = tree.get(id)?;
            Some(CategoryRef {
                id,
                name: record.name.clone(),
                path: tree.path(id),
            })
        });
        Self {
            category_ref,
            ..Self::from(record)
        }
    }
}

impl From<ProductRecord> for ProductView {
    fn from(record: ProductRecord) -> Self {
        Self {
            id: record.id,
            display_name: record.display_name(),
            title: record.title,
            author: record.author,
            published_date: Some(record.published_date),
            description: record.description,
            price_cents: record.price_cents,
            stock: record.stock,
            category: record.category,
            category_id: record.category_id,
            category_ref: None,
            removed: record.removed,
            version: record.version,
            created_at: record.created_at,
            updated_at: record.updated_at,
            ratings: Some(Ratings {
                rating_average: record.rating_average,
                rating_count: record.rating_count,
            }),
        }
    }
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(rename = "PageOf{T}")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A task as clients see it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TaskView {
    pub id: Uuid,
    pub kind: String,
    pub status: String,
    pub progress: i16,
    pub input: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    pub owner_id: Option<Uuid>,
    pub attempts: i32,
    /// What the task does: `create`, `read`, `update`, `delete`, a sub-resource's action
    /// (`cancel`, `restock`, `erase`, …) or a heavy task's kind (`sales_report`, …).
    pub operation: String,
    /// The kind of thing it is about (`user`, `product`, `order`, …), when it is about one.
    pub related_type: Option<String>,
    /// Which one: from the path, or for a create from its answer once it is done.
    pub related_id: Option<Uuid>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// `operation`, `related_type` and `related_id` of a task, read from what it was asked (a
/// command's method and path) and, for a create, the id its answer names.
pub fn task_subject(task: &TaskRecord) -> (String, Option<String>, Option<Uuid>) {
    if task.kind != crate::background::respond_async::COMMAND_TASK {
        return (task.kind.clone(), None, None);
    }
    let method = task
        .input
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("");
    let path = task.input.get("path").and_then(Value::as_str).unwrap_or("");
    let path = path.split('?').next().unwrap_or("");
    let mut segments: Vec<&str> = path
        .trim_start_matches("/api/")
        .split('/')
        .filter(|segment| !segment.is_empty())
        .collect();
    if segments.first() == Some(&"admin") {
        segments.remove(0);
    }
    let Some(collection) = segments.first().copied() else {
        return (method.to_lowercase(), None, None);
    };
    let related_type = match collection {
        "purchases" => "order".to_string(),
        "auth" => "user".to_string(),
        "cart" | "wishlist" => collection.to_string(),
        other => other.strip_suffix('s').unwrap_or(other).to_string(),
    };
    let mut related_id = match segments.get(1).copied() {
        Some("me") => task.owner_id,
        Some(id) => id.parse().ok(),
        None => None,
    };
    let action = segments.get(2).copied().or(match collection {
        "auth" => segments.get(1).copied(),
        _ => None,
    });
    let operation = match (method, action) {
        ("POST", Some(action)) => action.trim_end_matches('s').replace('-', "_"),
        ("POST", None) => "create".to_string(),
        ("PUT" | "PATCH", _) => "update".to_string(),
        ("DELETE", _) => "delete".to_string(),
        ("GET", _) => "read".to_string(),
        (other, _) => other.to_lowercase(),
    };
    if related_id.is_none() {
        let body = task.result.as_ref().and_then(|result| result.get("body"));
        related_id = body
            .and_then(|body| body.get("id").or_else(|| body.get("order_id")))
            .and_then(Value::as_str)
            .and_then(|id| id.parse().ok());
    }
    (operation, Some(related_type), related_id)
}

impl From<TaskRecord> for TaskView {
    fn from(task: TaskRecord) -> Self {
        let (operation, related_type, related_id) = task_subject(&task);
        Self {
            operation,
            related_type,
            related_id,
            id: task.id,
            kind: task.kind,
            status: task.status,
            progress: task.progress,
            input: task.input,
            result: task.result,
            error: task.error,
            owner_id: task.owner_id,
            attempts: task.attempts,
            created_at: task.created_at,
            updated_at: task.updated_at,
        }
    }
}
