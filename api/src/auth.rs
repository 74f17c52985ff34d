//! Authentication: argon2id password hashes, HS256 access tokens, and the extractors that
//! turn a bearer token into the current user.

pub mod credentials;
pub mod extract;
pub mod password;
pub mod policy;
pub mod read_only;
pub mod token;

pub use extract::{AdminUser, AuditReader, CurrentUser};
pub use token::TokenKeys;
