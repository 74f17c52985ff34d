//! Values that must be unique across all aggregates of a kind (a user's e-mail, a username).
//!
//! An aggregate cannot see its peers, so its events *declare* the claims they make and the event
//! store enforces them in the same transaction that appends the events: two concurrent
//! registrations with one e-mail cannot both commit.

/// "After this event, the aggregate holds `value` for `kind`": any value it held before for the
/// same kind is released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueClaim {
    pub kind: &'static str,
    pub value: String,
}

pub trait DeclaresClaims {
    fn unique_claims(&self) -> Vec<UniqueClaim> {
        Vec::new()
    }
}
