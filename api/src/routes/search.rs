//! Searching the catalog through this process's search index: ranked pages with facets and
//! highlights, suggestions while typing, and the catalog list's `?search=` (see `catalog`).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use eshop_projections::query::{Cursor, SortKey, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use eshop_projections::search::{
    FacetRequest, Facets, Highlights, SearchFilter, SearchPage, SearchRequest, Suggestion,
};

use crate::error::{ApiError, FieldError};
use crate::request::ApiQuery;
use crate::routes::{not_yet_visible, READ_YOUR_WRITES_WAIT};
use crate::state::AppState;
use crate::validate::Fields;
use crate::views::ProductView;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/search", get(search))
        .route("/api/search/suggest", get(suggest))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchParams {
    q: Option<String>,
    category: Option<String>,
    author: Option<String>,
    min_price_cents: Option<String>,
    max_price_cents: Option<String>,
    in_stock: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    /// `category`, `price` or both, comma-separated.
    facets: Option<String>,
    /// With `min_version`: the product whose version to wait for.
    product_id: Option<String>,
    min_version: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct SearchItem {
    #[serde(flatten)]
    product: ProductView,
    score: f32,
    highlights: Highlights,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct SearchAnswer {
    items: Vec<SearchItem>,
    facets: Facets,
    total: u64,
    next_cursor: Option<String>,
}

/// The words as typed: a trailing space says the last word is complete (not a prefix).
fn words_text(raw: Option<String>, fields: &mut Fields) -> Option<String> {
    let text = raw
        .map(|text| text.trim_start().to_string())
        .unwrap_or_default();
    if text.trim_end().is_empty() {
        fields.add(FieldError::new("q", "must not be empty"));
        return None;
    }
    if text.chars().count() > 200 || text.chars().any(char::is_control) {
        fields.add(FieldError::new(
            "q",
            "must be at most 200 characters, without control characters",
        ));
        return None;
    }
    Some(text)
}

fn number<T: std::str::FromStr>(
    fields: &mut Fields,
    name: &str,
    raw: Option<String>,
    expected: &str,
) -> Option<T> {
    let raw = raw?;
    match raw.trim().parse() {
        Ok(value) => Some(value),
        Err(_) => {
            fields.add(FieldError::new(name, format!("must be {expected}")));
            None
        }
    }
}

fn nonempty(raw: Option<String>) -> Option<String> {
    raw.map(|value| value.trim().to_string())
        .filter(|value| !value.is_empty())
}

/// A page of search answers, as `GET /api/search` shows it.
fn answer(page: SearchPage) -> SearchAnswer {
    SearchAnswer {
        items: page
            .hits
            .into_iter()
            .map(|hit| SearchItem {
                product: ProductView::from(hit.record),
                score: hit.score,
                highlights: hit.highlights,
            })
            .collect(),
        facets: page.facets,
        total: page.total,
        next_cursor: page.next_cursor,
    }
}

/// Waits, when asked, until the index has applied `min_version` of `product_id`.
pub async fn wait_for_product(
    state: &AppState,
    product_id: Option<Uuid>,
    min_version: Option<u64>,
) -> Result<(), ApiError> {
    let Some(version) = min_version.filter(|version| *version > 0) else {
        return Ok(());
    };
    let Some(id) = product_id else {
        return Err(ApiError::field(
            "product_id",
            "is needed with min_version (the product whose version to wait for)",
        ));
    };
    let search = state.product_search()?;
    if search
        .wait_for_version(id, version, READ_YOUR_WRITES_WAIT)
        .await?
    {
        Ok(())
    } else {
        Err(not_yet_visible(version))
    }
}

async fn search(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<SearchAnswer>, ApiError> {
    let mut fields = Fields::default();
    let text = words_text(params.q, &mut fields);
    let filter = SearchFilter {
        category: nonempty(params.category),
        author: nonempty(params.author),
        min_price_cents: number(
            &mut fields,
            "min_price_cents",
            params.min_price_cents,
            "a whole number of cents",
        ),
        max_price_cents: number(
            &mut fields,
            "max_price_cents",
            params.max_price_cents,
            "a whole number of cents",
        ),
        in_stock: number(&mut fields, "in_stock", params.in_stock, "true or false"),
        ..SearchFilter::default()
    };
    let limit: u32 =
        number(&mut fields, "limit", params.limit, "a whole number").unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        fields.add(FieldError::new(
            "limit",
            format!("must be 1 to {MAX_PAGE_SIZE}"),
        ));
    }
    let mut facets = FacetRequest::default();
    for name in params.facets.as_deref().unwrap_or_default().split(',') {
        match name.trim() {
            "" => {}
            "category" => facets.category = true,
            "price" => facets.price = true,
            _ => fields.add(FieldError::new(
                "facets",
                "must name category, price or both (comma-separated)",
            )),
        }
    }
    let after = match params.cursor.as_deref().map(Cursor::decode) {
        None => None,
        Some(Some(cursor)) if cursor.ordering.key == SortKey::Relevance => Some(cursor),
        Some(_) => {
            fields.add(FieldError::new(
                "cursor",
                "is not a cursor from a previous page of this search",
            ));
            None
        }
    };
    let product_id = nonempty(params.product_id).and_then(|raw| match raw.parse::<Uuid>() {
        Ok(id) => Some(id),
        Err(_) => {
            fields.add(FieldError::new("product_id", "must be a product id"));
            None
        }
    });
    let min_version = number(
        &mut fields,
        "min_version",
        params.min_version,
        "a whole number",
    );
    let (Some(text), true) = (text, fields.is_valid()) else {
        return Err(fields.into_error());
    };
    wait_for_product(&state, product_id, min_version).await?;
    let request = SearchRequest {
        text,
        filter,
        limit: limit as usize,
        after,
        facets,
    };
    let page = state.product_search()?.catalog().search(&request)?;
    Ok(Json(answer(page)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SuggestParams {
    q: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct Suggestions {
    items: Vec<Suggestion>,
}

async fn suggest(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<SuggestParams>,
) -> Result<Json<Suggestions>, ApiError> {
    let mut fields = Fields::default();
    let Some(text) = words_text(params.q, &mut fields) else {
        return Err(fields.into_error());
    };
    let items = state.product_search()?.catalog().suggest(&text)?;
    Ok(Json(Suggestions { items }))
}
