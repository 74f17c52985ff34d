//! The browser's side of eshop: the storefront (`/`) and the operations console (`/admin`),
//! server-rendered HTML that calls the JSON API in-process (`client`). Every form works
//! without JavaScript; `/assets/app.js` only makes pages live (order status, task progress,
//! charts).

pub mod admin;
pub mod assets;
pub mod client;
pub mod form;
pub mod page;
pub mod page_cache;
pub mod session;
pub mod store;

use std::sync::Arc;

use axum::{middleware, Router};

use crate::state::AppState;
use client::ApiClient;
use page_cache::PageCache;

/// What a page handler can reach: the API (in-process), the shop's state for its settings,
/// and the anonymous pages' cache.
#[derive(Clone)]
pub struct WebState {
    pub app: AppState,
    pub api: ApiClient,
    pub pages: Arc<PageCache>,
}

/// The pages, around `api` (the `/api` router with its layers and state).
pub fn router(app: AppState, api: Router) -> Router {
    let pages = Arc::new(PageCache::new(app.web.page_cache_ttl()));
    page_cache::invalidate_on_product_events(pages.clone(), &app);
    let state = WebState {
        api: ApiClient::new(api),
        pages,
        app: app.clone(),
    };
    Router::new()
        .merge(store::router())
        .merge(admin::router())
        // The same throttle as the API, once per page: the page's own API calls skip it.
        .layer(middleware::from_fn_with_state(
            app,
            crate::throttle::throttle,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            session::visit,
        ))
        .merge(assets::router())
        .with_state(state)
}
