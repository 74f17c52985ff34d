//! Work done away from the request that asked for it: any command run in the background
//! (`Prefer: respond-async`), the heavy tasks, and the scheduled jobs.

pub mod jobs;
pub mod replay;
pub mod respond_async;
pub mod tasks;
