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
mod own_writes;
mod passwords;
mod processes;
mod products;
mod protection;
mod roles;
mod schedules;
mod sessions;
mod tasks;
mod user_admin;
