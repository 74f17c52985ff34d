//! `Form<T>`: a submitted form, accepted only with the visitor's CSRF token.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::web::page::PageError;
use crate::web::session::{csrf_matches, Visitor};
use crate::web::WebState;

/// The hidden field every form carries.
pub const CSRF_FIELD: &str = "csrf";

pub struct Form<T>(pub T);

impl<T: DeserializeOwned> FromRequest<WebState> for Form<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &WebState) -> Result<Self, PageError> {
        let visitor = request.extensions().get::<Visitor>().cloned();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|_| PageError::BadForm)?;
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&body).map_err(|_| PageError::BadForm)?;
        let submitted = pairs
            .iter()
            .find(|(name, _)| name == CSRF_FIELD)
            .map(|(_, value)| value.as_str())
            .unwrap_or_default();
        if !visitor.is_some_and(|visitor| csrf_matches(&visitor, submitted)) {
            return Err(PageError::Csrf);
        }
        serde_urlencoded::from_bytes(&body)
            .map(Form)
            .map_err(|_| PageError::BadForm)
    }
}
