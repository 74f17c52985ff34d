//! The movies catalog's use cases: add and change movies, rate and tag them, and import the
//! MovieLens files.

pub mod movielens;

use std::collections::HashSet;
use std::future::Future;

use serde::Serialize;
use uuid::Uuid;

use eshop_domain::movie::{
    movielens_movie_id, ImportedMovie, Movie, MovieCommand, MovieError, MovieEvent,
};
use futures::{FutureExt, StreamExt};

use crate::bus::{CommandBus, CommandError, Executed};
use crate::context::{Actor, CommandContext};
use crate::error::BoxError;
use crate::store::{EventStore, StoreError};
use movielens::{ImportPlan, Skipped};

/// At most this many rows per transaction: large enough that a transaction's fixed cost is
/// spread thin, small enough that a conflict repeats little.
const ROWS_PER_COMMIT: u64 = 10_000;
/// An import's report lists at most this many skipped rows (`skipped_total` counts them all):
/// the sample files name 37,000 ratings of movies they leave out.
pub const MAX_SKIPPED_LISTED: usize = 1_000;
/// A chunk that keeps conflicting with other writers is given up after this many attempts.
const CHUNK_ATTEMPTS: u32 = 5;

/// Which movies of `ids` exist (were ever added).
pub trait KnownMovies: Send + Sync {
    fn existing(
        &self,
        ids: &[Uuid],
    ) -> impl Future<Output = Result<HashSet<Uuid>, BoxError>> + Send;
}

/// What an import appended, per kind of row, and what it left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportReport {
    /// Movies added or whose details changed.
    pub movies: u64,
    pub ratings: u64,
    pub tags: u64,
    pub links: u64,
    /// Rows taken that changed nothing.
    pub unchanged: u64,
    pub skipped: Vec<Skipped>,
    pub skipped_total: u64,
    /// Events appended.
    pub events: u64,
}

impl ImportReport {
    fn count(&mut self, events: &[MovieEvent]) {
        for event in events {
            match event {
                MovieEvent::MovieAdded { links, .. } => {
                    self.movies += 1;
                    if *links != Default::default() {
                        self.links += 1;
                    }
                }
                MovieEvent::MovieDetailsChanged { .. } => self.movies += 1,
                MovieEvent::MovieLinksChanged(_) => self.links += 1,
                MovieEvent::MovieRated { .. } => self.ratings += 1,
                MovieEvent::MovieTagged { .. } => self.tags += 1,
                MovieEvent::MovieRatingWithdrawn { .. } => {}
            }
        }
        self.events += events.len() as u64;
    }
}

/// How far an import got: rows handled of all rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    File(#[from] movielens::FileError),
    #[error("other writers kept changing the same movies; try again")]
    Busy,
    #[error("the event store is unavailable")]
    Store(#[source] BoxError),
}

impl From<StoreError> for ImportError {
    fn from(error: StoreError) -> Self {
        Self::Store(Box::new(error))
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<CommandError<E>> for ImportError {
    fn from(error: CommandError<E>) -> Self {
        match error {
            CommandError::Conflict { .. } => Self::Busy,
            other => Self::Store(Box::new(other)),
        }
    }
}

pub struct Movies<'a, S> {
    bus: &'a CommandBus<S>,
}

impl<'a, S: EventStore> Movies<'a, S> {
    pub fn new(bus: &'a CommandBus<S>) -> Self {
        Self { bus }
    }

    /// Runs one command on a movie, answering with the movie after it.
    pub async fn execute(
        &self,
        id: Uuid,
        command: MovieCommand,
        context: &CommandContext,
        expected_version: Option<u64>,
    ) -> Result<Executed<Movie>, CommandError<MovieError>> {
        self.bus
            .execute_with::<Movie, _>(
                &id.to_string(),
                command,
                context,
                expected_version,
                Clone::clone,
            )
            .await
    }

    /// Imports `plan`: each movie's rows become one staged append, many movies commit in one
    /// transaction. Only what differs from the stored movie is appended, so a second import of
    /// the same files appends nothing. `progress` hears after each transaction.
    pub async fn import(
        &self,
        plan: ImportPlan,
        known: &impl KnownMovies,
        actor: Actor,
        request_id: &str,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<ImportReport, ImportError> {
        let total = plan.rows;
        let mut report = ImportReport::default();
        let mut skipped = plan.skipped;
        let mut done = skipped.len() as u64;
        let ids: Vec<Uuid> = plan
            .movies
            .keys()
            .map(|id| movielens_movie_id(*id))
            .collect();
        let existing = known.existing(&ids).await.map_err(ImportError::Store)?;
        let mut movies = Vec::with_capacity(plan.movies.len());
        for (movielens_id, planned) in plan.movies {
            let id = movielens_movie_id(movielens_id);
            if planned.movie.details.is_none() && !existing.contains(&id) {
                done += planned.rows_without_movie.len() as u64;
                skipped.extend(planned.rows_without_movie.iter().map(|row| Skipped {
                    file: row.file,
                    line: row.line,
                    reason: format!("unknown movie {movielens_id}"),
                }));
                continue;
            }
            if !existing.contains(&id) {
                // New for certain (the check above read the store): no load before deciding.
                self.bus.assume_new::<Movie>(&id.to_string());
            }
            movies.push((id, planned.movie));
        }
        // A unique id per run, so that each movie's append records its own applied command.
        let run = Uuid::now_v7().to_string();
        let mut chunks: Vec<(Vec<(Uuid, ImportedMovie)>, u64)> = Vec::new();
        let mut chunk = Vec::new();
        let mut chunk_rows = 0_u64;
        let mut movies = movies.into_iter().peekable();
        while let Some((id, movie)) = movies.next() {
            chunk_rows += rows_of(&movie);
            chunk.push((id, movie));
            if chunk_rows >= ROWS_PER_COMMIT || movies.peek().is_none() {
                chunks.push((std::mem::take(&mut chunk), chunk_rows));
                chunk_rows = 0;
            }
        }
        // Two transactions in flight: one chunk is decided and serialized here while Postgres
        // writes the one before. Chunks hold distinct movies, so they never wait on each other.
        let run = run.as_str();
        // Collected first: a stream over a borrowing closure would not be `Send` for every
        // lifetime, which a spawned import needs.
        let pending: Vec<_> = chunks
            .iter()
            .map(|(chunk, rows)| {
                let rows = *rows;
                self.commit_chunk(chunk, actor, request_id, run)
                    .map(move |committed| committed.map(|counted| (counted, rows)))
            })
            .collect();
        let mut commits = futures::stream::iter(pending).buffered(2);
        while let Some(committed) = commits.next().await {
            let (counted, rows) = committed?;
            report.movies += counted.movies;
            report.ratings += counted.ratings;
            report.tags += counted.tags;
            report.links += counted.links;
            report.events += counted.events;
            done += rows;
            progress(Progress { done, total });
        }
        let changed_rows = report.movies + report.ratings + report.tags + report.links;
        report.skipped_total = skipped.len() as u64;
        report.unchanged = total
            .saturating_sub(report.skipped_total)
            .saturating_sub(changed_rows);
        skipped.sort_by(|a, b| (a.file, a.line).cmp(&(b.file, b.line)));
        skipped.truncate(MAX_SKIPPED_LISTED);
        report.skipped = skipped;
        progress(Progress { done: total, total });
        Ok(report)
    }

    /// One transaction for the movies of `chunk`, again from a fresh read after a conflict.
    async fn commit_chunk(
        &self,
        chunk: &[(Uuid, ImportedMovie)],
        actor: Actor,
        request_id: &str,
        run: &str,
    ) -> Result<ImportReport, ImportError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut counted = ImportReport::default();
            let mut batch = self
                .bus
                .batch(
                    chunk
                        .iter()
                        .map(|(id, _)| (<Movie as cqrs_es::Aggregate>::TYPE, id.to_string())),
                )
                .await;
            for (id, movie) in chunk {
                let aggregate_id = id.to_string();
                let events = batch
                    .read::<Movie, _>(&aggregate_id, |current, _| {
                        current.import_events(movie.clone())
                    })
                    .await?;
                let Ok(events) = events else {
                    continue;
                };
                if events.is_empty() {
                    continue;
                }
                counted.count(&events);
                let context = CommandContext::step(
                    actor,
                    request_id,
                    &["movielens-import", run, &aggregate_id],
                );
                batch
                    .execute_with::<Movie, _>(
                        &aggregate_id,
                        MovieCommand::Import(movie.clone()),
                        &context,
                        |_| (),
                    )
                    .await?;
            }
            match batch.commit().await {
                Ok(()) => return Ok(counted),
                Err(StoreError::Conflict) if attempt < CHUNK_ATTEMPTS => {
                    tokio::time::sleep(self.bus.retry_policy().delay_before(attempt)).await;
                }
                Err(StoreError::Conflict) => return Err(ImportError::Busy),
                Err(other) => return Err(other.into()),
            }
        }
    }
}

fn rows_of(movie: &eshop_domain::movie::ImportedMovie) -> u64 {
    u64::from(movie.details.is_some())
        + u64::from(movie.links.is_some())
        + movie.ratings.len() as u64
        + movie.tags.len() as u64
}
