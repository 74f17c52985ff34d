//! What clients see of the aggregates. Never the password hash.

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use eshop_domain::product::Product;
use eshop_domain::user::User;
use eshop_domain::values::Role;
use eshop_infra::tasks::TaskRecord;
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
    pub removed: bool,
    pub version: u64,
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
            removed: product.removed,
            version,
            ratings: None,
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
            removed: record.removed,
            version: record.version,
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
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<TaskRecord> for TaskView {
    fn from(task: TaskRecord) -> Self {
        Self {
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
