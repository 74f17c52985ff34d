//! Changing the catalog: admins add, change, restock and remove products. Reads are in
//! `catalog`.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::NaiveDate;
use serde::Deserialize;
use uuid::Uuid;

use cqrs_es::Aggregate;
use eshop_commands::{CommandContext, CommandError, Executed, StoreError};
use eshop_domain::category::{Category, CategoryCommand, CategoryError};
use eshop_domain::product::{NewProduct, Product, ProductChanges, ProductCommand, ProductError};
use eshop_domain::values::{InvalidValue, Price, Quantity, Text};

use crate::auth::{AdminUser, CurrentUser};
use crate::command::{execute, Answer};
use crate::error::ApiError;
use crate::request::{JsonBody, RequestMeta};
use crate::routes::{catalog, categories, parse_id};
use crate::state::AppState;
use crate::validate::Fields;
use crate::views::ProductView;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/products", post(add).get(catalog::list))
        .route(
            "/api/products/{id}",
            get(catalog::show).patch(update).delete(remove),
        )
        .route("/api/products/{id}/restock", post(restock))
}

fn parse_date(raw: &str) -> Result<NaiveDate, InvalidValue> {
    raw.parse()
        .map_err(|_| InvalidValue("must be a date like 1965-08-01".into()))
}

/// Which product a command is for.
enum Target {
    /// A new one: its id comes from the command, so a repeated request targets it again.
    New,
    Existing(Uuid),
}

/// Runs a product command and answers with the product after it.
async fn run(
    state: &AppState,
    meta: &RequestMeta,
    admin: &CurrentUser,
    target: Target,
    body: &serde_json::Value,
    command: ProductCommand,
) -> Result<Response, ApiError> {
    execute(
        state,
        meta,
        &admin.id.to_string(),
        admin.actor(),
        body,
        |context| async move {
            let (id, created) = match target {
                Target::New => (context.new_aggregate_id(), true),
                Target::Existing(id) => (id, false),
            };
            let executed =
                execute_filed(state, id, command, &context, meta.expected_version).await?;
            let view = ProductView {
                version: executed.version,
                ..executed.aggregate
            };
            if created {
                Answer::created(view)
            } else {
                Answer::ok(view)
            }
        },
    )
    .await
}

/// The category a product is filed in: none once it is removed.
fn filed_in(product: &Product) -> Option<Uuid> {
    product.category_id.filter(|_| product.is_listed())
}

/// Runs a product command; one that files the product in a category, moves it or removes it
/// also records that on the categories, in the same transaction (see
/// `eshop_domain::category`): a delete of the category at the same moment either sees the
/// product and is refused, or comes first, and then the product is refused (422).
async fn execute_filed(
    state: &AppState,
    id: Uuid,
    command: ProductCommand,
    context: &CommandContext,
    expected_version: Option<u64>,
) -> Result<Executed<ProductView>, ApiError> {
    let key = id.to_string();
    let view = |product: &Product| ProductView::new(id, product, 0);
    let refiles = matches!(
        &command,
        ProductCommand::Add(NewProduct {
            category_id: Some(_),
            ..
        }) | ProductCommand::Update(ProductChanges {
            category_id: Some(_),
            ..
        }) | ProductCommand::Remove
    );
    if !refiles {
        return Ok(state
            .bus
            .execute_with(&key, command, context, expected_version, view)
            .await?);
    }
    let retry = state.bus.retry_policy();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let before = state
            .bus
            .read(&key, |product: &Product, _| filed_in(product))
            .await?;
        let after = match &command {
            ProductCommand::Add(new) => new.category_id,
            ProductCommand::Update(changes) => changes.category_id.or(before),
            _ => None,
        };
        let categories: Vec<Uuid> = before.into_iter().chain(after).collect();
        let mut batch = state
            .bus
            .batch(
                std::iter::once((Product::TYPE, key.clone())).chain(
                    categories
                        .iter()
                        .map(|category| (Category::TYPE, category.to_string())),
                ),
            )
            .await;
        let (stood, version) = batch
            .read(&key, |product: &Product, version| {
                (filed_in(product), version)
            })
            .await?;
        if stood != before {
            // Moved meanwhile: start again from where it stands now.
            if attempt < retry.max_attempts {
                continue;
            }
            return Err(StoreError::Conflict.into());
        }
        if let Some(expected) = expected_version.filter(|expected| *expected != version) {
            return Err(CommandError::<ProductError>::VersionMismatch {
                expected,
                actual: version,
            }
            .into());
        }
        let executed = batch
            .execute_with(&key, command.clone(), context, view)
            .await?;
        if before != after {
            // Each category's record is a command of its own (one command id per aggregate).
            let step = |name: &str| {
                CommandContext::step(
                    context.actor.clone(),
                    context.request_id.clone(),
                    &[&context.command_id.to_string(), name],
                )
                .correlated_with(context.correlation_id)
            };
            if let Some(old) = before {
                let unfile = CategoryCommand::UnfileProduct { product: id };
                batch
                    .execute_with(&old.to_string(), unfile, &step("unfile"), |_: &Category| ())
                    .await?;
            }
            if let Some(new) = after {
                let file = CategoryCommand::FileProduct { product: id };
                match batch
                    .execute_with(&new.to_string(), file, &step("file"), |_: &Category| ())
                    .await
                {
                    Err(CommandError::Rejected(CategoryError::NotFound)) => {
                        return Err(ApiError::field("category_id", "is not a category"))
                    }
                    filed => filed.map(drop)?,
                }
            }
        }
        match batch.commit().await {
            Ok(()) => return Ok(executed),
            Err(StoreError::Conflict | StoreError::AlreadyApplied)
                if attempt < retry.max_attempts =>
            {
                tokio::time::sleep(retry.delay_before(attempt)).await;
            }
            Err(other) => return Err(other.into()),
        }
    }
}

/// A new product, as `POST /api/products` (and the catalog import feed) takes it.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddRequest {
    pub title: String,
    pub author: String,
    pub published_date: String,
    #[serde(default)]
    pub description: String,
    pub price_cents: i64,
    pub stock: i64,
    /// Free text; names a top-level category by slug (created if missing) unless `category_id`
    /// is given. May be left out with `category_id` (the category's name is used).
    #[serde(default)]
    pub category: String,
    /// The category tree's node to file the product under.
    #[serde(default)]
    pub category_id: Option<Uuid>,
}

/// The command that adds the product, or 422 naming every invalid field.
pub fn add_command(body: &AddRequest) -> Result<ProductCommand, ApiError> {
    let mut fields = Fields::default();
    let title = fields.check("title", Text::title(&body.title));
    let author = fields.check("author", Text::author(&body.author));
    let published_date = fields.check("published_date", parse_date(&body.published_date));
    let description = fields.check("description", Text::description(&body.description));
    let price = fields.check("price_cents", Price::parse(body.price_cents));
    let stock = fields.check("stock", Quantity::stock(body.stock));
    let category = fields.check("category", Text::category(&body.category));
    let (
        Some(title),
        Some(author),
        Some(published_date),
        Some(description),
        Some(price),
        Some(stock),
        Some(category),
    ) = (
        title,
        author,
        published_date,
        description,
        price,
        stock,
        category,
    )
    else {
        return Err(fields.into_error());
    };
    Ok(ProductCommand::Add(NewProduct {
        title,
        author,
        published_date,
        description,
        price,
        stock,
        category,
        category_id: body.category_id,
    }))
}

async fn add(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    JsonBody {
        value: mut body,
        raw,
    }: JsonBody<AddRequest>,
) -> Result<Response, ApiError> {
    if body.category_id.is_none() {
        // Filing by text may create a category: every field is checked before anything is
        // stored, so a refused product leaves no category behind. (Filing by id writes nothing.)
        add_command(&body)?;
    }
    let filed = categories::file_product(
        &state,
        admin.actor(),
        &meta.request_id,
        body.category_id,
        &body.category,
    )
    .await?;
    if body.category.trim().is_empty() {
        if let Some((_, name)) = &filed {
            body.category = name.clone();
        }
    }
    let mut command = add_command(&body)?;
    if let ProductCommand::Add(new) = &mut command {
        new.category_id = filed.map(|(id, _)| id);
    }
    run(&state, &meta, &admin, Target::New, &raw, command).await
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateRequest {
    title: Option<String>,
    author: Option<String>,
    published_date: Option<String>,
    description: Option<String>,
    category: Option<String>,
    /// Moves the product to this node of the category tree.
    category_id: Option<Uuid>,
    price_cents: Option<i64>,
}

async fn update(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    Path(id): Path<String>,
    JsonBody { value: body, raw }: JsonBody<UpdateRequest>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "product")?;
    let mut fields = Fields::default();
    let title = fields.check("title", body.title.as_deref().map(Text::title).transpose());
    let author = fields.check(
        "author",
        body.author.as_deref().map(Text::author).transpose(),
    );
    let published_date = fields.check(
        "published_date",
        body.published_date.as_deref().map(parse_date).transpose(),
    );
    let description = fields.check(
        "description",
        body.description
            .as_deref()
            .map(Text::description)
            .transpose(),
    );
    let category = fields.check(
        "category",
        body.category.as_deref().map(Text::category).transpose(),
    );
    let price = fields.check(
        "price_cents",
        body.price_cents.map(Price::parse).transpose(),
    );
    let (
        Some(title),
        Some(author),
        Some(published_date),
        Some(description),
        Some(category),
        Some(price),
    ) = (title, author, published_date, description, category, price)
    else {
        return Err(fields.into_error());
    };
    // A new free-text category files the product under its top-level category (created if
    // missing); a category id files it there (the text becomes the category's name unless given).
    let mut category = category;
    let mut category_id = None;
    if body.category_id.is_some() || category.is_some() {
        let text = category.clone().map(Text::into_inner).unwrap_or_default();
        if let Some((id, name)) = categories::file_product(
            &state,
            admin.actor(),
            &meta.request_id,
            body.category_id,
            &text,
        )
        .await?
        {
            category_id = Some(id);
            if category.is_none() {
                category = Some(
                    Text::category(&name)
                        .map_err(|invalid| ApiError::field("category", invalid.0))?,
                );
            }
        }
    }
    let command = ProductCommand::Update(ProductChanges {
        title,
        author,
        published_date,
        description,
        category,
        category_id,
        price,
    });
    run(&state, &meta, &admin, Target::Existing(id), &raw, command).await
}

async fn remove(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "product")?;
    run(
        &state,
        &meta,
        &admin,
        Target::Existing(id),
        &serde_json::Value::Null,
        ProductCommand::Remove,
    )
    .await
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestockRequest {
    quantity: i64,
}

async fn restock(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    Path(id): Path<String>,
    JsonBody { value, raw }: JsonBody<RestockRequest>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "product")?;
    let quantity = Quantity::positive(value.quantity)
        .map_err(|invalid| ApiError::field("quantity", invalid.0))?;
    run(
        &state,
        &meta,
        &admin,
        Target::Existing(id),
        &raw,
        ProductCommand::Restock(quantity),
    )
    .await
}
