//! The open-model run: arrivals at a fixed rate, each running one scenario of the mix.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::fixture::Fixture;
use crate::scenarios::{self, Scenario};
use crate::Sample;

pub struct Plan {
    pub base: String,
    /// Arrivals per second.
    pub rate: u32,
    pub duration: Duration,
}

/// Runs the plan; every request's sample, in the order they were answered.
pub async fn run(plan: &Plan, client: &reqwest::Client, fixture: Arc<Fixture>) -> Vec<Sample> {
    let rate = f64::from(plan.rate.max(1));
    let arrivals = (plan.duration.as_secs_f64() * rate).round() as u64;
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for n in 0..arrivals {
        let due = Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(started + due).await;
        let client = client.clone();
        let base = plan.base.clone();
        let fixture = fixture.clone();
        let scenario = Scenario::pick(fastrand::u32(..100));
        running.spawn(async move {
            let due_at = started + due;
            let answers = scenarios::run(scenario, &client, &base, &fixture).await;
            // The first request is late from when it was due; a second one from when the
            // first was answered (it could not have been sent earlier).
            let mut from = due_at.into_std();
            answers
                .into_iter()
                .map(|answered| {
                    let sample = Sample {
                        endpoint: answered.endpoint,
                        due: from.saturating_duration_since(started.into_std()),
                        latency: answered.at.saturating_duration_since(from),
                        outcome: answered.outcome,
                    };
                    from = answered.at;
                    sample
                })
                .collect::<Vec<_>>()
        });
    }
    let mut samples = Vec::new();
    while let Some(done) = running.join_next().await {
        if let Ok(answered) = done {
            samples.extend(answered);
        }
    }
    samples
}
