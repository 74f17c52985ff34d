//! The commit-safe order every tail of the events table follows (the relay, the sealer, the
//! audit export): only events whose transaction is older than every transaction still in
//! flight, in `(xid, position)` order (DESIGN.md, invariant 3). No event can later appear
//! before a point read this way, so a reader that resumes after it misses nothing.

/// Events after the point `($1, $2)` (`$1` an xid8 as text, `$2` a position) that no
/// transaction in flight can still precede. Order by `xid, position`.
pub const COMMIT_SAFE_AFTER: &str = "(xid, position) > ($1::text::xid8, $2)
            AND xid < pg_snapshot_xmin(pg_current_snapshot())";

/// A place in the commit-safe order: the `(xid, position)` of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct CommitPoint {
    pub xid: u64,
    pub position: i64,
}

impl CommitPoint {
    /// Before every event.
    pub const START: Self = Self {
        xid: 0,
        position: 0,
    };
}
