//! The workspace's one boxed error: what a runner, a setup step or an adapter returns when the
//! caller only logs it or gives up.

/// Any error, sendable between tasks.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
