//! The eshop HTTP API: axum routes that turn requests into commands and queries, and the
//! wiring that the `eshop` binary runs.

pub mod accounts;
pub mod audit_cli;
pub mod auth;
pub mod background;
pub mod bootstrap;
pub mod command;
pub mod config;
pub mod demo;
pub mod docs;
pub mod error;
pub mod http;
pub mod http_metrics;
pub mod import_cli;
pub mod json_body;
pub mod movie_cli;
pub mod profiling;
pub mod projections_cli;
pub mod replay;
pub mod request;
pub mod routes;
pub mod search_cli;
pub mod security;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod throttle;
pub mod validate;
pub mod views;
pub mod web;
pub mod workers;
