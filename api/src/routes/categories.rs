//! The category tree: the whole tree and one subtree (from the `categories` read model, with
//! product counts from `products`), admin create, rename/move and delete; and how a product is
//! filed in it (`file_product`).

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use eshop_commands::{Actor, CommandContext, CommandError, EventStore};
use eshop_domain::category::{self, Category, CategoryCommand, CategoryError, Slug, SLUG_CLAIM};
use eshop_projections::category::CategoryNode;

use crate::auth::{AdminUser, CurrentUser};
use crate::command::{execute, Answer};
use crate::error::ApiError;
use crate::request::{ApiQuery, JsonBody, RequestMeta};
use crate::routes::{parse_id, READ_YOUR_WRITES_WAIT};
use crate::state::AppState;
use crate::validate::Fields;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/categories", get(tree).post(create))
        .route(
            "/api/categories/{id}",
            get(show).patch(change).delete(remove),
        )
}

/// A category as a command answers with it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CategoryView {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub parent: Option<Uuid>,
    pub version: u64,
}

impl CategoryView {
    fn new(id: Uuid, category: &Category, version: u64) -> Self {
        Self {
            id,
            name: category.name.clone(),
            slug: category.slug.clone(),
            parent: category.parent,
            version,
        }
    }
}

/// `GET /api/categories`: every top-level category with its subtree, each node with its path
/// and its products (its descendants' included).
async fn tree(State(state): State<AppState>) -> Result<Json<Vec<CategoryNode>>, ApiError> {
    Ok(Json(state.categories.tree().await?.roots()))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DetailParams {
    min_version: Option<u64>,
}

/// `GET /api/categories/{id}`: the category with its subtree.
async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<DetailParams>,
) -> Result<Json<CategoryNode>, ApiError> {
    let id = parse_id(&id, "category")?;
    if let Some(wanted) = params.min_version.filter(|v| *v > 0) {
        match state
            .categories
            .wait_for_version(id, wanted, READ_YOUR_WRITES_WAIT)
            .await?
        {
            Some(_) => {}
            None => return Err(crate::routes::not_yet_visible(wanted)),
        }
    }
    state
        .categories
        .tree()
        .await?
        .node(id)
        .map(Json)
        .ok_or(ApiError::NotFound("category"))
}

/// A live category from the store (not the read model: a parent created a moment ago counts).
async fn existing(state: &AppState, id: Uuid) -> Result<Option<Category>, ApiError> {
    let loaded = state.bus.load::<Category>(&id.to_string()).await?;
    Ok(Some(loaded.aggregate).filter(Category::is_listed))
}

/// `parent` and its ancestors, root first, read from the store.
async fn path_to(state: &AppState, parent: Uuid) -> Result<Vec<Uuid>, ApiError> {
    let mut path = vec![parent];
    let mut next = parent;
    while let Some(category) = existing(state, next).await? {
        match category.parent {
            Some(up) if !path.contains(&up) => {
                path.push(up);
                next = up;
            }
            _ => break,
        }
    }
    path.reverse();
    Ok(path)
}

fn not_a_category() -> ApiError {
    ApiError::field("parent_id", "is not a category")
}

async fn run(
    state: &AppState,
    meta: &RequestMeta,
    admin: &CurrentUser,
    id: Option<Uuid>,
    body: &Value,
    commands: Vec<CategoryCommand>,
) -> Result<Response, ApiError> {
    execute(
        state,
        meta,
        &admin.id.to_string(),
        admin.actor(),
        body,
        |context| async move {
            let (id, created) = match id {
                None => (context.new_aggregate_id(), true),
                Some(id) => (id, false),
            };
            let parent_before = match created {
                true => None,
                false => {
                    state
                        .bus
                        .read(&id.to_string(), |category: &Category, _| {
                            listed_parent(category)
                        })
                        .await?
                }
            };
            let mut parent_after = parent_before;
            let mut view = None;
            for (index, command) in commands.into_iter().enumerate() {
                // A second command of one request gets an id of its own, derived from the first.
                let context = match index {
                    0 => context.clone(),
                    n => CommandContext::step(
                        admin.actor(),
                        &meta.request_id,
                        &[&context.command_id.to_string(), &n.to_string()],
                    ),
                };
                let expected = (index == 0).then_some(meta.expected_version).flatten();
                let executed = state
                    .bus
                    .execute_with(
                        &id.to_string(),
                        command,
                        &context,
                        expected,
                        |c: &Category| (CategoryView::new(id, c, 0), listed_parent(c)),
                    )
                    .await?;
                let (aggregate, parent) = executed.aggregate;
                parent_after = parent;
                view = Some(CategoryView {
                    version: executed.version,
                    ..aggregate
                });
            }
            let view = view.ok_or(ApiError::NotFound("category"))?;
            let moved = Moved {
                id,
                created,
                from: parent_before,
                to: parent_after,
            };
            record_under_parents(state, admin, meta, &context, moved).await?;
            if created {
                Answer::created(view)
            } else {
                Answer::ok(view)
            }
        },
    )
    .await
}

/// The parent a category stands under: none at the top level or once deleted.
fn listed_parent(category: &Category) -> Option<Uuid> {
    category.parent.filter(|_| category.is_listed())
}

/// Whether `id` is among `parent`'s ancestors (or is `parent`), as the store has them now.
async fn under_itself(state: &AppState, id: Uuid, parent: Uuid) -> Result<bool, ApiError> {
    let mut next = Some(parent);
    let mut seen = Vec::new();
    while let Some(category) = next {
        if category == id {
            return Ok(true);
        }
        if seen.contains(&category) {
            // A loop that does not pass through `id`: not this move's doing.
            return Ok(false);
        }
        seen.push(category);
        next = state
            .bus
            .read(&category.to_string(), |category: &Category, _| {
                listed_parent(category)
            })
            .await?;
    }
    Ok(false)
}

/// Where a command left a category: `from` and `to` are its parent before and after.
struct Moved {
    id: Uuid,
    created: bool,
    from: Option<Uuid>,
    to: Option<Uuid>,
}

/// Records on the parents what a create, move or delete changed (see
/// `eshop_domain::category`): attached to the new parent after the command, so a parent
/// deleted at the same moment either sees the child and is refused, or went first, and then
/// the creation or move is undone and answered 422; then detached from the former parent.
/// (The slug claim keeps the command itself out of one transaction with its parent.)
async fn record_under_parents(
    state: &AppState,
    admin: &CurrentUser,
    meta: &RequestMeta,
    context: &CommandContext,
    moved: Moved,
) -> Result<(), ApiError> {
    if moved.from == moved.to {
        return Ok(());
    }
    let step = |name: &str| {
        CommandContext::step(
            admin.actor(),
            &meta.request_id,
            &[&context.command_id.to_string(), name],
        )
    };
    let on = |category: Uuid, command: CategoryCommand, name: &'static str| {
        let context = step(name);
        async move {
            state
                .bus
                .execute_with(
                    &category.to_string(),
                    command,
                    &context,
                    None,
                    |_: &Category| (),
                )
                .await
        }
    };
    if let (Some(parent), false) = (moved.to, moved.created) {
        // The move checked the path the tree showed; a move elsewhere at the same moment may
        // have closed a loop since. The later of two such moves finds it here (it reads both
        // from the store) and goes back.
        if under_itself(state, moved.id, parent).await? {
            let undo = CategoryCommand::Move {
                this: moved.id,
                parent: moved.from,
                parent_path: Vec::new(),
            };
            on(moved.id, undo, "undo").await?;
            return Err(CommandError::Rejected(CategoryError::Cycle).into());
        }
    }
    if let Some(parent) = moved.to {
        let attach = CategoryCommand::AttachSubcategory { child: moved.id };
        match on(parent, attach, "attach").await {
            Ok(_) => {}
            Err(CommandError::Rejected(CategoryError::NotFound)) => {
                let undo = match moved.created {
                    true => CategoryCommand::Delete {
                        this: moved.id,
                        products: 0,
                        children: 0,
                    },
                    // Back where it stood: under a parent it already was under, no cycle.
                    false => CategoryCommand::Move {
                        this: moved.id,
                        parent: moved.from,
                        parent_path: Vec::new(),
                    },
                };
                on(moved.id, undo, "undo").await?;
                return Err(not_a_category());
            }
            Err(other) => return Err(other.into()),
        }
    }
    if let Some(parent) = moved.from {
        let detach = CategoryCommand::DetachSubcategory { child: moved.id };
        on(parent, detach, "detach").await?;
    }
    Ok(())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRequest {
    name: String,
    /// Lower-case letters, digits and single hyphens; made from `name` when absent.
    slug: Option<String>,
    /// The parent category; absent or null: a top-level category.
    parent_id: Option<Uuid>,
}

fn slug_of(
    slug: Option<&str>,
    name: Option<&str>,
) -> Result<Option<Slug>, eshop_domain::values::InvalidValue> {
    match (slug, name) {
        (Some(slug), _) => Slug::parse(slug).map(Some),
        (None, Some(name)) => Ok(Slug::from_name(name)).and_then(|slug| {
            slug.map(Some).ok_or_else(|| {
                eshop_domain::values::InvalidValue("cannot be made from the name; give one".into())
            })
        }),
        (None, None) => Ok(None),
    }
}

/// `POST /api/categories` (admins): 201 with the category; 409 `category_slug_taken` when a
/// sibling has the slug (two concurrent creations of one slug: exactly one wins).
async fn create(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    JsonBody { value, raw }: JsonBody<CreateRequest>,
) -> Result<Response, ApiError> {
    let mut fields = Fields::default();
    let name = fields.check("name", category::name(&value.name));
    let slug = fields.check(
        "slug",
        slug_of(value.slug.as_deref(), Some(value.name.as_str())),
    );
    let (Some(name), Some(Some(slug))) = (name, slug) else {
        return Err(fields.into_error());
    };
    if let Some(parent) = value.parent_id {
        if existing(&state, parent).await?.is_none() {
            return Err(not_a_category());
        }
    }
    let command = CategoryCommand::Create {
        name,
        slug,
        parent: value.parent_id,
    };
    run(&state, &meta, &admin, None, &raw, vec![command]).await
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangeRequest {
    name: Option<String>,
    slug: Option<String>,
    /// Moves the category: under this parent, or to the top level with `null`.
    #[serde(default, deserialize_with = "crate::request::some_or_null")]
    #[schemars(with = "Option<Uuid>")]
    parent_id: Option<Option<Uuid>>,
}

/// `PATCH /api/categories/{id}` (admins): renames (`name`, `slug`) and/or moves (`parent_id`).
/// 422 `category_cycle` for a move under itself or a descendant.
async fn change(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    Path(id): Path<String>,
    JsonBody { value, raw }: JsonBody<ChangeRequest>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "category")?;
    let mut fields = Fields::default();
    let name = fields.check(
        "name",
        value.name.as_deref().map(category::name).transpose(),
    );
    let slug = fields.check("slug", slug_of(value.slug.as_deref(), None));
    let (Some(name), Some(slug)) = (name, slug) else {
        return Err(fields.into_error());
    };
    let mut commands = Vec::new();
    if let Some(parent) = value.parent_id {
        let parent_path = match parent {
            Some(parent) if parent != id => {
                if existing(&state, parent).await?.is_none() {
                    return Err(not_a_category());
                }
                path_to(&state, parent).await?
            }
            Some(parent) => vec![parent],
            None => Vec::new(),
        };
        commands.push(CategoryCommand::Move {
            this: id,
            parent,
            parent_path,
        });
    }
    if name.is_some() || slug.is_some() {
        commands.push(CategoryCommand::Rename { name, slug });
    }
    if commands.is_empty() {
        // Nothing to change: answer with the category as it is.
        commands.push(CategoryCommand::Rename {
            name: None,
            slug: None,
        });
    }
    run(&state, &meta, &admin, Some(id), &raw, commands).await
}

/// `DELETE /api/categories/{id}` (admins): 409 `category_in_use` while products or
/// subcategories are filed under it.
async fn remove(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "category")?;
    let tree = state.categories.tree().await?;
    let command = CategoryCommand::Delete {
        this: id,
        products: tree.own_products(id),
        children: tree.child_count(id),
    };
    run(&state, &meta, &admin, Some(id), &Value::Null, vec![command]).await
}

/// The category a product is filed under: `category_id` when given (it must exist), else the
/// top-level category the free-text `category` names by slug, created if missing. None when the
/// text makes no slug.
pub async fn file_product(
    state: &AppState,
    actor: Actor,
    request_id: &str,
    category_id: Option<Uuid>,
    category_text: &str,
) -> Result<Option<(Uuid, String)>, ApiError> {
    if let Some(id) = category_id {
        return match existing(state, id).await? {
            Some(category) => Ok(Some((id, category.name))),
            None => Err(ApiError::field("category_id", "is not a category")),
        };
    }
    let Some(slug) = Slug::from_name(category_text) else {
        return Ok(None);
    };
    let id = category::top_level_id(&slug);
    let name =
        category::name(category_text).map_err(|invalid| ApiError::field("category", invalid.0))?;
    let context = CommandContext::new(actor, request_id);
    let created = state
        .bus
        .execute_with(
            &id.to_string(),
            CategoryCommand::Create {
                name: name.clone(),
                slug: slug.clone(),
                parent: None,
            },
            &context,
            None,
            |category: &Category| category.name.clone(),
        )
        .await;
    match created {
        Ok(executed) => Ok(Some((id, executed.aggregate))),
        // Created before (by an earlier product of this category).
        Err(CommandError::Rejected(CategoryError::AlreadyExists)) => {
            match existing(state, id).await? {
                Some(category) => Ok(Some((id, category.name))),
                None => holder(state, &slug).await,
            }
        }
        // An admin created the top-level category of this slug: file it there.
        Err(CommandError::ClaimTaken { .. }) => holder(state, &slug).await,
        Err(other) => Err(other.into()),
    }
}

/// The top-level category holding `slug`, if any.
async fn holder(state: &AppState, slug: &Slug) -> Result<Option<(Uuid, String)>, ApiError> {
    let value = category::sibling_key(None, slug.as_str());
    let Some(id) = state
        .bus
        .store()
        .claim_holder(SLUG_CLAIM, &value)
        .await?
        .and_then(|id| id.parse::<Uuid>().ok())
    else {
        return Ok(None);
    };
    Ok(existing(state, id)
        .await?
        .map(|category| (id, category.name)))
}
