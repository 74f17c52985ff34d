//! HTTP tests: each spawns the app on port 0 over its own fresh database.

mod every_route;
mod helpers;
mod proxy;

mod accounts;
mod audit;
mod bad_input;
mod catalog;
mod concurrency;
mod consumers;
mod erasure;
mod errors;
mod hardening;
mod idempotency;
mod logs;
mod mail;
mod orders;
mod processes;
mod products;
mod protection;
mod roles;
mod schedules;
mod search;
mod sessions;
mod tasks;
