//! Collects every invalid field of a request, so one 422 names them all.

use eshop_domain::values::InvalidValue;

use crate::error::{ApiError, FieldError};

#[derive(Default)]
pub struct Fields {
    errors: Vec<FieldError>,
}

impl Fields {
    /// The parsed value, or `None` with the error recorded against `field`.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, InvalidValue>) -> Option<T> {
        parsed
            .map_err(|InvalidValue(message)| self.errors.push(FieldError::new(field, message)))
            .ok()
    }

    pub fn add(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn into_error(self) -> ApiError {
        ApiError::Validation(self.errors)
    }
}
