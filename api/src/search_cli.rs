//! `eshop projections rebuild search`: deletes this process's search index and builds it again
//! from the stream (stop the eshop that uses the directory first: it holds the index's lock).

use std::sync::Arc;
use std::time::Instant;

use eshop_infra::nats::{self, EventSubjects};
use eshop_infra::search::ProductSearch;

use crate::config::Config;
use crate::server::{search_settings, BoxError};

pub async fn rebuild(name: &str, config: &Config) -> Result<(), BoxError> {
    if name != "search" {
        return Err(format!(
            "{name:?}: this command rebuilds the search index (`eshop projections rebuild search`)"
        )
        .into());
    }
    let settings = search_settings(config);
    // Opening takes the directory's lock: a running eshop on it makes this fail, untouched.
    drop(ProductSearch::open(settings.clone())?);
    std::fs::remove_dir_all(&settings.dir)?;
    let search = Arc::new(ProductSearch::open(settings.clone())?);
    let subjects = EventSubjects::new(&config.nats_prefix);
    let jetstream = nats::connect(&config.nats_url).await?;
    let started = Instant::now();
    let reached = search.clone().catch_up(jetstream, subjects).await?;
    let documents = search.catalog().index.searcher().num_docs();
    println!(
        "rebuilt the search index in {}: {documents} products, stream sequence {reached}, {:.1} s",
        settings.dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
