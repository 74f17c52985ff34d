//! Reading the catalog: product details and list/search pages, from the `products` read model
//! behind the Redis cache.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use chrono::NaiveDate;
use cqrs_es::Aggregate;
use eshop_domain::product::Product;
use serde::Deserialize;

use eshop_projections::cached::Entry;
use eshop_projections::category::CategoryTree;
use eshop_projections::query::{
    CategoryScope, Cursor, Ordering, Page, ProductFilter, ProductQuery, DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
};

use eshop_projections::search::{FacetRequest, SearchFilter, SearchRequest};

use crate::error::ApiError;
use crate::request::ApiQuery;
use crate::routes::{after_own_writes, parse_id, READ_YOUR_WRITES_WAIT};
use crate::state::AppState;
use crate::validate::Fields;
use crate::views::ProductView;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailParams {
    min_version: Option<u64>,
}

/// A cached product: its version (8 bytes, big-endian), then the JSON body.
fn encode_product(view: &ProductView) -> Result<Bytes, ApiError> {
    let mut bytes = BytesMut::new();
    bytes.put_u64(view.version);
    serde_json::to_writer((&mut bytes).writer(), view).map_err(ApiError::internal)?;
    Ok(bytes.freeze())
}

fn json_bytes(body: Bytes, etag: Option<u64>) -> Response {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(version) = etag.and_then(|v| HeaderValue::from_str(&format!("\"{v}\"")).ok()) {
        headers.insert(header::ETAG, version);
    }
    response
}

pub async fn show(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<DetailParams>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "product")?;
    let mut min_version = params.min_version.unwrap_or(0);
    // Admins change products: they read them as of every change already stored (one read of
    // the store). Anyone else reads the cache as before, at no extra cost: the token's
    // signature is checked in memory, and only an admin's leads to the store.
    let admin = crate::auth::extract::bearer_claims(&state, &headers)
        .is_some_and(|claims| claims.roles.contains(&eshop_domain::values::Role::Admin));
    if admin {
        let current = state
            .bus
            .store()
            .current_version("product", &id.to_string())
            .await?;
        min_version = min_version.max(current);
    }
    let products = &state.products;
    let categories = &state.categories;
    let cached = state
        .cache
        .get_or_load(Entry::Product(id), || async {
            match products.get(id).await? {
                Some(record) if !record.removed => {
                    let tree = categories.shape().await?;
                    encode_product(&ProductView::filed(record, &tree)).map(Some)
                }
                _ => Ok::<_, ApiError>(None),
            }
        })
        .await?;
    if let Some(mut bytes) = cached {
        let version = bytes.get(..8).map_or(0, |prefix| {
            u64::from_be_bytes(prefix.try_into().unwrap_or_default())
        });
        if version >= min_version {
            let body = bytes.split_off(8.min(bytes.len()));
            return Ok(json_bytes(body, Some(version)));
        }
    }
    if min_version == 0 {
        return Err(ApiError::NotFound("product"));
    }
    match state
        .products
        .wait_for_version(id, min_version, READ_YOUR_WRITES_WAIT)
        .await?
    {
        Some(record) if !record.removed => {
            let tree = state.categories.shape().await?;
            let view = ProductView::filed(record, &tree);
            let version = view.version;
            Ok(json_bytes(
                encode_product(&view)?.split_off(8),
                Some(version),
            ))
        }
        Some(_) => Err(ApiError::NotFound("product")),
        None => Err(crate::routes::not_yet_visible(min_version)),
    }
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    title: Option<String>,
    author: Option<String>,
    published_date: Option<String>,
    published_after: Option<String>,
    published_before: Option<String>,
    category: Option<String>,
    category_id: Option<String>,
    min_price_cents: Option<String>,
    max_price_cents: Option<String>,
    in_stock: Option<String>,
    search: Option<String>,
    ordering: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    include_total: Option<String>,
}

fn text(raw: Option<String>) -> Result<Option<String>, eshop_domain::values::InvalidValue> {
    match raw.map(|value| value.trim().to_string()) {
        Some(value) if value.is_empty() => Ok(None),
        Some(value) if value.chars().count() > 200 => Err(eshop_domain::values::InvalidValue(
            "must be at most 200 characters".into(),
        )),
        Some(value) if value.chars().any(char::is_control) => Err(
            eshop_domain::values::InvalidValue("must not contain control characters".into()),
        ),
        other => Ok(other),
    }
}

fn parsed<T: std::str::FromStr>(
    raw: Option<String>,
    expected: &str,
) -> Result<Option<T>, eshop_domain::values::InvalidValue> {
    raw.map(|value| {
        value
            .trim()
            .parse()
            .map_err(|_| eshop_domain::values::InvalidValue(format!("must be {expected}")))
    })
    .transpose()
}

/// `tree` is needed (and read) only with `category_id`.
fn to_query(params: ListParams, tree: Option<&CategoryTree>) -> Result<ProductQuery, ApiError> {
    let empty = CategoryTree::default();
    let tree = tree.unwrap_or(&empty);
    let mut fields = Fields::default();
    let category_id = fields
        .check(
            "category_id",
            parsed::<uuid::Uuid>(params.category_id, "a category id"),
        )
        .flatten();
    // The category and every descendant; the top-level ones also hold the products stored
    // before the tree (filed by their free-text category's slug). An unknown id: no product.
    let in_categories = category_id.map(|id| {
        let ids = tree.subtree(id);
        let top_level_slugs = ids
            .iter()
            .filter_map(|id| tree.get(*id))
            .filter(|record| record.parent.is_none())
            .map(|record| record.slug.clone())
            .collect();
        CategoryScope {
            ids,
            top_level_slugs,
        }
    });
    let filter = ProductFilter {
        title: fields.check("title", text(params.title)).flatten(),
        author: fields.check("author", text(params.author)).flatten(),
        published_date: fields
            .check(
                "published_date",
                parsed::<NaiveDate>(params.published_date, "a date like 1965-08-01"),
            )
            .flatten(),
        published_after: fields
            .check(
                "published_after",
                parsed::<NaiveDate>(params.published_after, "a date like 1965-08-01"),
            )
            .flatten(),
        published_before: fields
            .check(
                "published_before",
                parsed::<NaiveDate>(params.published_before, "a date like 1965-08-01"),
            )
            .flatten(),
        category: fields.check("category", text(params.category)).flatten(),
        min_price_cents: fields
            .check(
                "min_price_cents",
                parsed::<i64>(params.min_price_cents, "a whole number of cents"),
            )
            .flatten(),
        max_price_cents: fields
            .check(
                "max_price_cents",
                parsed::<i64>(params.max_price_cents, "a whole number of cents"),
            )
            .flatten(),
        in_stock: fields
            .check("in_stock", parsed::<bool>(params.in_stock, "true or false"))
            .flatten(),
        search: fields.check("search", text(params.search)).flatten(),
        in_categories,
    };
    let has_search = filter.search.is_some();
    let ordering = match params.ordering {
        Some(raw) => fields.check(
            "ordering",
            Ordering::parse(raw.trim(), has_search).map_err(eshop_domain::values::InvalidValue),
        ),
        None => Some(Ordering::default_for(has_search)),
    };
    let limit = fields
        .check("limit", parsed::<u32>(params.limit, "a whole number"))
        .flatten()
        .unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        fields.add(crate::error::FieldError::new(
            "limit",
            format!("must be 1 to {MAX_PAGE_SIZE}"),
        ));
    }
    let after = params.cursor.as_deref().map(Cursor::decode);
    let with_total = fields
        .check(
            "include_total",
            parsed::<bool>(params.include_total, "true or false"),
        )
        .flatten()
        .unwrap_or(false);
    let (Some(ordering), true) = (ordering, fields.is_valid()) else {
        return Err(fields.into_error());
    };
    let after = match after {
        None => None,
        Some(Some(cursor)) if cursor.ordering == ordering => Some(cursor),
        Some(_) => {
            return Err(ApiError::field(
                "cursor",
                "is not a cursor from a previous page of this ordering",
            ))
        }
    };
    Ok(ProductQuery {
        filter,
        ordering,
        limit,
        after,
        with_total,
    })
}

/// A search ranked by relevance (the default with `search`) is answered by this process's
/// search index, with every filter; other orderings of a search are answered by Postgres.
fn from_search_index(
    state: &AppState,
    query: &ProductQuery,
    tree: &CategoryTree,
) -> Result<Option<Bytes>, ApiError> {
    let (Some(text), Some(search)) = (&query.filter.search, &state.search) else {
        return Ok(None);
    };
    // The index knows no category tree: a category scope is answered by Postgres.
    if query.ordering != Ordering::default_for(true) || query.filter.in_categories.is_some() {
        return Ok(None);
    }
    let request = SearchRequest {
        text: text.clone(),
        filter: SearchFilter::from(&query.filter),
        limit: query.limit as usize,
        after: query.after.clone(),
        facets: FacetRequest::default(),
    };
    let page = search.catalog().search(&request)?;
    let page = Page {
        items: page
            .hits
            .into_iter()
            .map(|hit| ProductView::filed(hit.record, tree))
            .collect::<Vec<_>>(),
        next_cursor: page.next_cursor,
        total: query
            .with_total
            .then(|| i64::try_from(page.total).unwrap_or(i64::MAX)),
    };
    serde_json::to_vec(&page)
        .map(|body| Some(Bytes::from(body)))
        .map_err(ApiError::internal)
}

/// The admin whose token came with a read anyone may make, checked in memory only (signature
/// and expiry, no session read): such a read reflects that admin's own writes. Taken from the
/// request's headers in place, so an anonymous read costs one header lookup.
pub struct AdminOnToken(Option<uuid::Uuid>);

impl FromRequestParts<AppState> for AdminOnToken {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(
            crate::auth::extract::bearer_claims(state, &parts.headers)
                .filter(|claims| claims.roles.contains(&eshop_domain::values::Role::Admin))
                .map(|claims| claims.sub),
        ))
    }
}

/// The products an admin changed lately, once the products read model and, for a search, this
/// process's index reflect them: an admin's list shows their own writes.
async fn after_admins_own_writes(
    state: &AppState,
    admin: Option<uuid::Uuid>,
    search: bool,
) -> Result<(), ApiError> {
    let Some(admin) = admin else {
        return Ok(());
    };
    let deadline = tokio::time::Instant::now() + READ_YOUR_WRITES_WAIT;
    let products = &state.products;
    let mut changed = Vec::new();
    after_own_writes(state, admin, Product::TYPE, |mine| {
        changed.clone_from(&mine);
        async move {
            products
                .wait_for_versions(&mine, READ_YOUR_WRITES_WAIT)
                .await
        }
    })
    .await?;
    if let (true, Some(index)) = (search, &state.search) {
        for (id, version) in changed {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !index.wait_for_version(id, version, left).await? {
                break;
            }
        }
    }
    Ok(())
}

pub async fn list(
    State(state): State<AppState>,
    AdminOnToken(admin): AdminOnToken,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Response, ApiError> {
    // The tree's shape, for a category scope; otherwise read only to show breadcrumbs on
    // what the cache does not hold.
    let tree = match params.category_id.is_some() {
        true => Some(state.categories.shape().await?),
        false => None,
    };
    let query = to_query(params, tree.as_ref())?;
    after_admins_own_writes(&state, admin, query.filter.search.is_some()).await?;
    if query.filter.search.is_some() && state.search.is_some() {
        // Without a category scope the tree only shows breadcrumbs: the shape kept in memory.
        let tree = match &tree {
            Some(tree) => Arc::new(tree.clone()),
            None => state.categories.kept_shape().await?,
        };
        if let Some(page) = from_search_index(&state, &query, &tree)? {
            return Ok(json_bytes(page, None));
        }
    }
    let categories = &state.categories;
    let products = &state.products;
    let page = state
        .cache
        .get_or_load(Entry::ProductList(query.cache_key()), || async {
            let page = products.list(&query).await?;
            let tree = match tree {
                Some(tree) => tree,
                None => categories.shape().await?,
            };
            let page = Page {
                items: page
                    .items
                    .into_iter()
                    .map(|record| ProductView::filed(record, &tree))
                    .collect::<Vec<_>>(),
                next_cursor: page.next_cursor,
                total: page.total,
            };
            serde_json::to_vec(&page)
                .map(|body| Some(Bytes::from(body)))
                .map_err(ApiError::internal)
        })
        .await?
        .unwrap_or_default();
    let mut response = json_bytes(page, None);
    *response.status_mut() = StatusCode::OK;
    Ok(response)
}
