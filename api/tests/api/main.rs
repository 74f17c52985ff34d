//! HTTP tests: each spawns the app on port 0 over its own fresh database.

mod every_route;
mod helpers;
mod proxy;

mod accounts;
mod audit;
mod bad_input;
mod calendar;
mod catalog;
mod concurrency;
mod consumers;
mod embedded;
mod erasure;
mod errors;
mod faults;
mod hardening;
mod idempotency;
mod logs;
mod mail;
mod movies;
mod openapi;
mod operations;
mod orders;
mod own_writes;
mod passwords;
mod processes;
mod products;
mod protection;
mod rebuild;
mod roles;
mod schedules;
mod schemathesis;
mod sessions;
mod sustained;
mod tasks;
mod user_admin;
