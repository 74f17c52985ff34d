//! HTTP tests: each spawns the app on port 0 over its own fresh database.

mod helpers;
mod proxy;

mod accounts;
mod catalog;
mod concurrency;
mod errors;
mod idempotency;
mod mail;
mod orders;
mod products;
mod schedules;
mod tasks;
