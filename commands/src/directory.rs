//! The user directory port: whom the scheduled jobs write to, answered by the users read model.

use std::future::Future;

use uuid::Uuid;

use crate::error::BoxError;

pub trait UserDirectory: Send + Sync + 'static {
    /// Every active admin's id, in id order.
    fn active_admins(&self) -> impl Future<Output = Result<Vec<Uuid>, BoxError>> + Send;

    /// Up to `limit` active users' ids after `after`, in id order: one page of a walk over
    /// every active user (start from `Uuid::nil()`, go on from the last id).
    fn active_users_after(
        &self,
        after: Uuid,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Uuid>, BoxError>> + Send;
}
