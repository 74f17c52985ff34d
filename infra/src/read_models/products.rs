//! The `products` table: written by the products projection, read by the catalog queries.

use chrono::NaiveDate;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use eshop_projections::product::ProductRecord;
use eshop_projections::query::{Cursor, Page, ProductQuery, SortKey, SortValue};
use eshop_projections::ReadModel;

use super::progress::VersionWaits;
use super::{version_column, Table};

const COLUMNS: &str = "id, title, author, published_date, description, price_cents, stock, category, category_id, category_slug, removed, version, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    title: String,
    author: String,
    published_date: NaiveDate,
    description: String,
    price_cents: i64,
    stock: i64,
    category: String,
    category_id: Option<Uuid>,
    category_slug: Option<String>,
    removed: bool,
    version: i64,
    created_at: Option<chrono::DateTime<chrono::Utc>>,
    updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Where a full-text search's parsed query comes from.
#[derive(Clone, Copy)]
enum SearchAs {
    /// `search_query`, a FROM item of the filtered-first subquery.
    FromItem,
    /// Parsed in place (the total count).
    Expression,
}

/// Each product's reviews' figures, for a row of `products` (one aggregate over the reviews index).
const RATINGS: &str = "CROSS JOIN LATERAL (SELECT count(*) AS rating_count, round(avg(reviews.rating), 2)::float8 AS rating_average
       FROM reviews WHERE reviews.key = products.id) AS ratings";

/// The product columns the catalog reads: the row and its reviews' figures (with `RATINGS`).
const READ_COLUMNS: &str =
    "products.id, products.title, products.author, products.published_date, products.description,
    products.price_cents, products.stock, products.category, products.category_id,
    products.category_slug, products.removed, products.version,
    products.created_at, products.updated_at, ratings.rating_count, ratings.rating_average";

#[derive(sqlx::FromRow)]
struct ReadRow {
    #[sqlx(flatten)]
    row: Row,
    rating_count: i64,
    rating_average: Option<f64>,
}

impl ReadRow {
    fn into_record(self) -> ProductRecord {
        ProductRecord {
            rating_count: self.rating_count,
            rating_average: self.rating_average,
            ..into_record(self.row)
        }
    }
}

/// A row and its sort value as text (for the next page's cursor).
#[derive(sqlx::FromRow)]
struct ListedRow {
    #[sqlx(flatten)]
    row: ReadRow,
    sort_value: String,
}

fn into_record(row: Row) -> ProductRecord {
    ProductRecord {
        id: row.id,
        title: row.title,
        author: row.author,
        published_date: row.published_date,
        description: row.description,
        price_cents: row.price_cents,
        stock: row.stock,
        category: row.category,
        category_id: row.category_id,
        category_slug: row.category_slug,
        removed: row.removed,
        version: u64::try_from(row.version).unwrap_or_default(),
        created_at: row.created_at,
        updated_at: row.updated_at,
        rating_count: 0,
        rating_average: None,
    }
}

impl Table for ProductRecord {
    const TABLES: &'static [&'static str] = &["products"];

    async fn load(
        connection: &mut PgConnection,
        ids: &[Uuid],
        for_update: bool,
    ) -> Result<Vec<Self>, sqlx::Error> {
        let lock = if for_update { " FOR UPDATE" } else { "" };
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM products WHERE id = ANY($1){lock}"
        ))
        .bind(ids)
        .fetch_all(connection)
        .await?;
        Ok(rows.into_iter().map(into_record).collect())
    }

    async fn upsert(connection: &mut PgConnection, rows: &[&Self]) -> Result<(), sqlx::Error> {
        if rows.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO products (id, title, author, published_date, description, price_cents, stock, category, removed, version, created_at, updated_at, category_id, category_slug)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::date[], $5::text[], $6::bigint[], $7::bigint[], $8::text[], $9::bool[], $10::bigint[], $11::timestamptz[], $12::timestamptz[], $13::uuid[], $14::text[])
             ON CONFLICT (id) DO UPDATE SET
                 title = EXCLUDED.title, author = EXCLUDED.author,
                 published_date = EXCLUDED.published_date, description = EXCLUDED.description,
                 price_cents = EXCLUDED.price_cents, stock = EXCLUDED.stock,
                 category = EXCLUDED.category, removed = EXCLUDED.removed, version = EXCLUDED.version,
                 category_id = EXCLUDED.category_id, category_slug = EXCLUDED.category_slug,
                 created_at = coalesce(products.created_at, EXCLUDED.created_at),
                 updated_at = EXCLUDED.updated_at
             WHERE products.version < EXCLUDED.version",
        )
        .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.title.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.author.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.published_date).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.description.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.price_cents).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.stock).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.category.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.removed).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| version_column(r.version)).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.category_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.category_slug.clone()).collect::<Vec<_>>())
        .execute(connection)
        .await?;
        Ok(())
    }

    fn shown_on_product(&self) -> Option<Uuid> {
        Some(self.id)
    }
}

/// Queries over the `products` table.
#[derive(Clone)]
pub struct PgProducts {
    pool: PgPool,
    waits: VersionWaits,
    /// For `list` (see `connect_for_listing`); `pool` unless set.
    listing: PgPool,
}

/// `%`, `_` and `\` in a user's text match themselves in `ILIKE`.
fn contains_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

impl PgProducts {
    pub fn new(pool: PgPool) -> Self {
        Self {
            listing: pool.clone(),
            waits: VersionWaits::new(pool.clone()),
            pool,
        }
    }

    /// Waits for versions on the process's shared listener.
    pub fn waiting_on(self, waits: VersionWaits) -> Self {
        Self { waits, ..self }
    }

    /// Runs list queries on `listing` instead.
    pub fn listing_on(self, listing: PgPool) -> Self {
        Self { listing, ..self }
    }

    /// The titles of the products of `ids` that exist (removed ones included), in one query.
    pub async fn titles(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
        sqlx::query_as("SELECT id, title FROM products WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(&self.pool)
            .await
    }

    /// A product, removed ones included (callers decide what a removed product means).
    pub async fn get(&self, id: Uuid) -> Result<Option<ProductRecord>, sqlx::Error> {
        let row: Option<ReadRow> = sqlx::query_as(&format!(
            "SELECT {READ_COLUMNS} FROM products {RATINGS} WHERE products.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(ReadRow::into_record))
    }

    /// `FROM products WHERE ...` for the query's filters.
    fn push_from(builder: &mut QueryBuilder<'_, Postgres>, query: &ProductQuery) {
        builder.push(" FROM products WHERE NOT removed");
        Self::push_filters(builder, query, SearchAs::Expression);
    }

    /// Like `push_from`, but text filters (title contains, full-text search) are applied
    /// before ordering. Postgres underestimates how few rows they keep and would otherwise walk
    /// an index in sort order, filtering row after row (30 ms and more over 100k products
    /// instead of about 1 ms).
    fn push_from_filtered_first(builder: &mut QueryBuilder<'_, Postgres>, query: &ProductQuery) {
        if query.filter.title.is_none() && query.filter.search.is_none() {
            return Self::push_from(builder, query);
        }
        match &query.filter.search {
            // The search query is parsed once, as a FROM item, and each match ranked once:
            // as an expression it was parsed for every row, three times (filter, rank, sort),
            // and planned anew for each request (about 2.5× the throughput, pgbench).
            Some(search) => {
                builder
                    .push(
                        " FROM (SELECT products.*, ts_rank(products.search, search_query) AS search_rank
                           FROM products, websearch_to_tsquery('english', ",
                    )
                    .push_bind(search.clone())
                    .push(") AS search_query WHERE NOT removed");
                Self::push_filters(builder, query, SearchAs::FromItem);
            }
            None => {
                builder.push(" FROM (SELECT * FROM products WHERE NOT removed");
                Self::push_filters(builder, query, SearchAs::Expression);
            }
        }
        // OFFSET 0 keeps the planner from merging the subquery back into the outer query.
        builder.push(" OFFSET 0) AS products WHERE true");
    }

    fn push_filters(
        builder: &mut QueryBuilder<'_, Postgres>,
        query: &ProductQuery,
        search_as: SearchAs,
    ) {
        let filter = &query.filter;
        if let Some(title) = &filter.title {
            builder
                .push(" AND title ILIKE ")
                .push_bind(contains_pattern(title));
        }
        if let Some(author) = &filter.author {
            builder
                .push(" AND lower(author) = lower(")
                .push_bind(author.clone())
                .push(")");
        }
        if let Some(date) = filter.published_date {
            builder.push(" AND published_date = ").push_bind(date);
        }
        if let Some(date) = filter.published_after {
            builder.push(" AND published_date > ").push_bind(date);
        }
        if let Some(date) = filter.published_before {
            builder.push(" AND published_date < ").push_bind(date);
        }
        if let Some(category) = &filter.category {
            builder.push(" AND category = ").push_bind(category.clone());
        }
        if let Some(scope) = &filter.in_categories {
            // The categories' own products, and those stored before the tree that their
            // free-text category files under one of the scope's top-level categories.
            builder
                .push(" AND (category_id = ANY(")
                .push_bind(scope.ids.clone())
                .push(") OR (category_id IS NULL AND category_slug = ANY(")
                .push_bind(scope.top_level_slugs.clone())
                .push(")))");
        }
        if let Some(min) = filter.min_price_cents {
            builder.push(" AND price_cents >= ").push_bind(min);
        }
        if let Some(max) = filter.max_price_cents {
            builder.push(" AND price_cents <= ").push_bind(max);
        }
        match filter.in_stock {
            Some(true) => {
                builder.push(" AND stock > 0");
            }
            Some(false) => {
                builder.push(" AND stock = 0");
            }
            None => {}
        }
        if let Some(search) = &filter.search {
            match search_as {
                SearchAs::FromItem => builder.push(" AND products.search @@ search_query"),
                SearchAs::Expression => builder
                    .push(" AND search @@ websearch_to_tsquery('english', ")
                    .push_bind(search.clone())
                    .push(")"),
            };
        }
    }

    fn sort_expression(query: &ProductQuery, builder: &mut QueryBuilder<'_, Postgres>) {
        match query.ordering.key {
            SortKey::Title => builder.push("title"),
            SortKey::Author => builder.push("author"),
            SortKey::PublishedDate => builder.push("published_date"),
            SortKey::PriceCents => builder.push("price_cents"),
            // Only with a search, so always over the subquery that ranked each match.
            SortKey::Relevance => builder.push("search_rank"),
        };
    }

    /// One page in one statement (and one more for the total when asked), in two stages: the
    /// subquery `page` filters, orders and cuts the page from the ids and sort values alone
    /// (a broad search ranks every match: the rows that do not make the page are never copied
    /// whole into the sort), then only the page's rows are read whole, with their ratings.
    pub async fn list(&self, query: &ProductQuery) -> Result<Page<ProductRecord>, sqlx::Error> {
        let direction = if query.ordering.descending {
            "DESC"
        } else {
            "ASC"
        };
        let mut builder = QueryBuilder::new("SELECT ");
        builder
            .push(READ_COLUMNS)
            .push(", page.sort_key::text AS sort_value FROM (SELECT products.id, ");
        Self::sort_expression(query, &mut builder);
        builder.push(" AS sort_key");
        Self::push_from_filtered_first(&mut builder, query);
        if let Some(cursor) = &query.after {
            builder.push(" AND (");
            Self::sort_expression(query, &mut builder);
            builder
                .push(", products.id) ")
                .push(if query.ordering.descending { "<" } else { ">" })
                .push(" (");
            match &cursor.value {
                SortValue::Integer(value) => builder.push_bind(*value),
                SortValue::Rank(value) => builder.push_bind(*value),
                SortValue::Text(value) if query.ordering.key == SortKey::PublishedDate => {
                    builder.push_bind(value.parse::<NaiveDate>().unwrap_or_default())
                }
                SortValue::Text(value) => builder.push_bind(value.clone()),
            };
            builder.push(", ").push_bind(cursor.id).push(")");
        }
        builder.push(" ORDER BY ");
        Self::sort_expression(query, &mut builder);
        builder
            .push(format!(" {direction}, products.id {direction} LIMIT "))
            .push_bind(i64::from(query.limit) + 1)
            .push(") AS page JOIN products ON products.id = page.id ")
            .push(RATINGS)
            .push(format!(
                " ORDER BY page.sort_key {direction}, page.id {direction}"
            ));

        let rows: Vec<ListedRow> = builder.build_query_as().fetch_all(&self.listing).await?;
        let has_more = rows.len() > query.limit as usize;
        let mut last_sort_value = None;
        let items: Vec<ProductRecord> = rows
            .into_iter()
            .take(query.limit as usize)
            .map(|listed| {
                last_sort_value = Some((listed.row.row.id, listed.sort_value));
                listed.row.into_record()
            })
            .collect();
        let next_cursor = has_more
            .then_some(last_sort_value)
            .flatten()
            .map(|(id, raw)| {
                let value = match query.ordering.key {
                    SortKey::PriceCents => SortValue::Integer(raw.parse().unwrap_or_default()),
                    SortKey::Relevance => SortValue::Rank(raw.parse().unwrap_or_default()),
                    _ => SortValue::Text(raw),
                };
                Cursor {
                    ordering: query.ordering,
                    value,
                    id,
                }
                .encode()
            });

        let total = if query.with_total {
            let mut count = QueryBuilder::new("SELECT count(*)");
            Self::push_from(&mut count, query);
            Some(
                count
                    .build_query_scalar::<i64>()
                    .fetch_one(&self.listing)
                    .await?,
            )
        } else {
            None
        };
        Ok(Page {
            items,
            next_cursor,
            total,
        })
    }

    /// The product once it reflects `version` (read-your-writes), or `None` after `timeout`;
    /// woken by the projection's announcements, not polling.
    pub async fn wait_for_version(
        &self,
        id: Uuid,
        version: u64,
        timeout: std::time::Duration,
    ) -> Result<Option<ProductRecord>, sqlx::Error> {
        self.waits
            .read_when(
                ProductRecord::NAME,
                id,
                version,
                timeout,
                || self.get(id),
                |record| record.version,
            )
            .await
    }

    /// Whether every record of `wanted` (`(id, version)`) reflects its version, waiting up to
    /// `timeout` (read your own writes in a list).
    pub async fn wait_for_versions(
        &self,
        wanted: &[(Uuid, u64)],
        timeout: std::time::Duration,
    ) -> Result<bool, sqlx::Error> {
        self.waits
            .all_reached(
                ProductRecord::NAME,
                <ProductRecord as Table>::TABLES[0],
                wanted,
                timeout,
            )
            .await
    }
}
