//! A load generator for a running eshop.
//!
//! Arrivals follow an open model: request `n` is due at `n / rate` seconds whatever became of
//! the others, and its latency is counted from when it was due, not from when it was sent, so
//! a slow server cannot hide its queue by slowing the generator down (no coordinated omission).
//! Each arrival runs one scenario of the mix: browse 70 %, search 15 %, cart and purchase
//! 10 %, login 5 %.

// Statistics and plot coordinates, not money.
#![allow(clippy::float_arithmetic)]

pub mod arrivals;
pub mod fixture;
pub mod report;
pub mod scenarios;

use std::time::Duration;

/// One request's outcome.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The endpoint, as a route template (`GET /api/products/{id}`).
    pub endpoint: &'static str,
    /// When the request was due, from the start of the run.
    pub due: Duration,
    /// From when it was due to its answer.
    pub latency: Duration,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Success,
    /// 4xx: refused for a reason the shop states (out of stock, not enough money, throttled).
    Refused,
    /// 5xx, or no answer at all.
    Error,
}

impl Outcome {
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=399 => Self::Success,
            400..=499 => Self::Refused,
            _ => Self::Error,
        }
    }
}
