//! Heavy read-side work run as background tasks or scheduled jobs: sales figures from the
//! orders read model, and product rating aggregates from the reviews read model.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::cache::Cache;
use crate::tasks::Progress;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TopProduct {
    pub product_id: Uuid,
    pub title: String,
    pub quantity: i64,
    pub revenue_cents: i64,
}

/// One day's confirmed orders (the day in the shop's time zone).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DaySales {
    pub day: NaiveDate,
    pub orders: i64,
    pub revenue_cents: i64,
    pub top_products: Vec<TopProduct>,
}

fn start_of(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&midnight)
        .earliest()
        .map_or_else(|| midnight.and_utc(), |local| local.with_timezone(&Utc))
}

/// Orders placed on `day` (in `tz`) that ended confirmed: count, revenue, the five products
/// that sold the most copies.
pub async fn day_sales(
    pool: &PgPool,
    day: NaiveDate,
    tz: Tz,
    top: i64,
) -> Result<DaySales, sqlx::Error> {
    let from = start_of(day, tz);
    let to = start_of(day.succ_opt().unwrap_or(day), tz);
    let (orders, revenue_cents): (i64, i64) = sqlx::query_as(
        "SELECT count(*), coalesce(sum((record ->> 'total_cents')::bigint), 0)::bigint
           FROM orders WHERE status = 'confirmed' AND created_at >= $1 AND created_at < $2",
    )
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await?;
    let rows: Vec<(Uuid, Option<String>, i64, i64)> = sqlx::query_as(
        "SELECT line.product_id, products.title, sum(line.quantity)::bigint,
                sum(line.quantity * line.unit_price_cents)::bigint
           FROM orders
          CROSS JOIN LATERAL jsonb_to_recordset(orders.record -> 'lines')
                AS line (product_id uuid, quantity bigint, unit_price_cents bigint)
           LEFT JOIN products ON products.id = line.product_id
          WHERE orders.status = 'confirmed' AND orders.created_at >= $1 AND orders.created_at < $2
          GROUP BY line.product_id, products.title
          ORDER BY 3 DESC, 4 DESC, line.product_id LIMIT $3",
    )
    .bind(from)
    .bind(to)
    .bind(top)
    .fetch_all(pool)
    .await?;
    Ok(DaySales {
        day,
        orders,
        revenue_cents,
        top_products: rows
            .into_iter()
            .map(|(product_id, title, quantity, revenue_cents)| TopProduct {
                product_id,
                title: title.unwrap_or_else(|| product_id.to_string()),
                quantity,
                revenue_cents,
            })
            .collect(),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct SalesReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub orders: i64,
    pub revenue_cents: i64,
    pub days: Vec<DaySales>,
}

/// Day by day from `from` to `to` (inclusive), reporting progress after each day.
pub async fn sales_report(
    pool: &PgPool,
    from: NaiveDate,
    to: NaiveDate,
    tz: Tz,
    progress: &Progress,
    step_delay: Duration,
) -> Result<SalesReport, sqlx::Error> {
    let total = (to - from).num_days() + 1;
    let mut days = Vec::new();
    for (done, day) in (1..).zip(from.iter_days().take_while(|day| *day <= to)) {
        days.push(day_sales(pool, day, tz, 5).await?);
        progress.report(percent(done, total)).await;
        if !step_delay.is_zero() {
            tokio::time::sleep(step_delay).await;
        }
    }
    Ok(SalesReport {
        from,
        to,
        orders: days.iter().map(|day| day.orders).sum(),
        revenue_cents: days.iter().map(|day| day.revenue_cents).sum(),
        days,
    })
}

fn percent(done: i64, total: i64) -> u8 {
    if total <= 0 {
        return 100;
    }
    u8::try_from((done * 100 / total).clamp(0, 100)).unwrap_or(100)
}

#[derive(Debug, Clone, Serialize)]
pub struct RatingsRecomputed {
    pub products: i64,
    pub reviewed_products: i64,
    pub reviews: i64,
}

/// Recomputes every product's rating count and average from the reviews, a batch of products
/// at a time (progress after each), and drops their cached pages.
pub async fn recompute_ratings(
    pool: &PgPool,
    cache: Option<&Cache>,
    progress: &Progress,
    batch: i64,
    step_delay: Duration,
) -> Result<RatingsRecomputed, sqlx::Error> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
        .fetch_one(pool)
        .await?;
    let mut after = Uuid::nil();
    let mut summary = RatingsRecomputed {
        products: 0,
        reviewed_products: 0,
        reviews: 0,
    };
    loop {
        let rows: Vec<(Uuid, i64)> = sqlx::query_as(
            "INSERT INTO product_ratings (product_id, rating_count, rating_average, computed_at)
             SELECT products.id, count(reviews.rating), round(avg(reviews.rating), 2), now()
               FROM (SELECT id FROM products WHERE id > $1 ORDER BY id LIMIT $2) AS products
               LEFT JOIN reviews ON reviews.key = products.id
              GROUP BY products.id
             ON CONFLICT (product_id) DO UPDATE SET rating_count = EXCLUDED.rating_count,
                 rating_average = EXCLUDED.rating_average, computed_at = EXCLUDED.computed_at
             RETURNING product_id, rating_count",
        )
        .bind(after)
        .bind(batch)
        .fetch_all(pool)
        .await?;
        let Some(last) = rows.iter().map(|(id, _)| *id).max() else {
            break;
        };
        after = last;
        summary.products += i64::try_from(rows.len()).unwrap_or(i64::MAX);
        summary.reviewed_products +=
            i64::try_from(rows.iter().filter(|(_, n)| *n > 0).count()).unwrap_or(i64::MAX);
        summary.reviews += rows.iter().map(|(_, n)| n).sum::<i64>();
        if let Some(cache) = cache {
            let ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
            cache.invalidate_products(&ids).await;
        }
        progress.report(percent(summary.products, total)).await;
        if !step_delay.is_zero() {
            tokio::time::sleep(step_delay).await;
        }
    }
    progress.report(100).await;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_rises_to_one_hundred() {
        assert_eq!(percent(1, 4), 25);
        assert_eq!(percent(4, 4), 100);
        assert_eq!(percent(0, 0), 100);
    }

    #[test]
    fn a_day_starts_at_local_midnight() {
        let day = NaiveDate::from_ymd_opt(2026, 7, 1).expect("a date");
        assert_eq!(
            start_of(day, chrono_tz::Europe::Berlin).to_rfc3339(),
            "2026-06-30T22:00:00+00:00"
        );
    }
}
