//! eshop's domain: aggregates, their commands and events, and the value types they trust.
//!
//! Nothing here does I/O. Values arrive already validated (see [`values`]), so an aggregate
//! only enforces rules that depend on its own history.

pub mod claims;
pub mod personal;
pub mod product;
pub mod user;
pub mod values;

pub use claims::{DeclaresClaims, UniqueClaim};
pub use personal::Personal;
