//! The published MovieLens CSV files (`movies.csv`, `ratings.csv`, `tags.csv`, `links.csv`:
//! UTF-8, a header row, fields quoted when they hold commas, quotes or line breaks) read into
//! what one import knows about each movie. Rows that cannot be taken are kept aside with their
//! file and line.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use eshop_domain::movie::{
    valid_tag, ImportedMovie, Links, MovieDetails, Rater, Rating, RatingGiven, TagGiven,
};

/// The files of one import; `movies.csv` is required, the others may be absent.
#[derive(Debug, Clone, Default)]
pub struct MovieLensFiles {
    pub movies: String,
    pub ratings: Option<String>,
    pub tags: Option<String>,
    pub links: Option<String>,
}

/// A row that was not taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub file: &'static str,
    /// The line the row starts on (the header is line 1).
    pub line: u64,
    pub reason: String,
}

/// Where a row came from, for rows of movies that `movies.csv` does not hold (taken only if
/// the movie was imported before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowAt {
    pub file: &'static str,
    pub line: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Planned {
    pub movie: ImportedMovie,
    /// The rows of other files, when `movies.csv` has no row for this movie.
    pub rows_without_movie: Vec<RowAt>,
}

/// What the files say, per MovieLens `movieId`.
#[derive(Debug, Clone, Default)]
pub struct ImportPlan {
    pub movies: BTreeMap<i64, Planned>,
    /// Data rows read (headers excluded), skipped ones included.
    pub rows: u64,
    pub skipped: Vec<Skipped>,
}

impl ImportPlan {
    fn entry(&mut self, movielens_id: i64) -> &mut Planned {
        self.movies.entry(movielens_id).or_insert_with(|| Planned {
            movie: ImportedMovie {
                movielens_id,
                ..ImportedMovie::default()
            },
            rows_without_movie: Vec::new(),
        })
    }

    fn skip(&mut self, file: &'static str, line: u64, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            file,
            line,
            reason: reason.into(),
        });
    }
}

/// Why a whole file was refused (a row's problem only skips that row).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("{file}: the header must be {expected}")]
    Header {
        file: &'static str,
        expected: &'static str,
    },
    #[error("{file}: a quoted field starting on line {line} never ends")]
    UnterminatedQuote { file: &'static str, line: u64 },
}

/// Reads the files into a plan.
pub fn plan(files: &MovieLensFiles) -> Result<ImportPlan, FileError> {
    let mut plan = ImportPlan::default();
    read_movies(&mut plan, &files.movies)?;
    if let Some(links) = &files.links {
        read_links(&mut plan, links)?;
    }
    if let Some(ratings) = &files.ratings {
        read_ratings(&mut plan, ratings)?;
    }
    if let Some(tags) = &files.tags {
        read_tags(&mut plan, tags)?;
    }
    Ok(plan)
}

/// One CSV record with the line it starts on.
type Record = (u64, Vec<String>);

/// RFC 4180 records (a leading BOM and `\r\n` line ends allowed), skipping blank lines.
pub fn records(file: &'static str, text: &str) -> Result<Vec<Record>, FileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut line = 1_u64;
    let mut start = 1_u64;
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut at_record_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        if at_record_start {
            start = line;
            at_record_start = false;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            ',' => fields.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                fields.push(std::mem::take(&mut field));
                if !(fields.len() == 1 && fields[0].is_empty()) {
                    records.push((start, std::mem::take(&mut fields)));
                }
                fields.clear();
                line += 1;
                at_record_start = true;
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err(FileError::UnterminatedQuote { file, line: start });
    }
    if !at_record_start {
        fields.push(field);
        if !(fields.len() == 1 && fields[0].is_empty()) {
            records.push((start, fields));
        }
    }
    Ok(records)
}

/// The records after the header, which must name `columns`.
fn body(
    file: &'static str,
    text: &str,
    columns: &'static [&'static str],
    expected: &'static str,
) -> Result<Vec<Record>, FileError> {
    let mut records = records(file, text)?.into_iter();
    match records.next() {
        Some((_, header))
            if header.len() == columns.len()
                && header.iter().zip(columns).all(|(a, b)| a.trim() == *b) => {}
        _ => return Err(FileError::Header { file, expected }),
    }
    Ok(records.collect())
}

fn number<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, String> {
    raw.trim()
        .parse()
        .map_err(|_| format!("{what} {raw:?} is not a number"))
}

fn time(raw: &str) -> Result<DateTime<Utc>, String> {
    let seconds: i64 = number(raw, "timestamp")?;
    DateTime::from_timestamp(seconds, 0).ok_or_else(|| format!("timestamp {raw:?} is out of range"))
}

fn expect_fields(fields: &[String], count: usize) -> Result<(), String> {
    if fields.len() == count {
        Ok(())
    } else {
        Err(format!("{} fields, expected {count}", fields.len()))
    }
}

fn read_movies(plan: &mut ImportPlan, text: &str) -> Result<(), FileError> {
    const FILE: &str = "movies.csv";
    for (line, fields) in body(
        FILE,
        text,
        &["movieId", "title", "genres"],
        "movieId,title,genres",
    )? {
        plan.rows += 1;
        let parsed = expect_fields(&fields, 3).and_then(|()| {
            let id: i64 = number(&fields[0], "movieId")?;
            let details = MovieDetails::from_movielens(&fields[1], &fields[2])
                .map_err(|error| error.to_string())?;
            Ok((id, details))
        });
        match parsed {
            Ok((id, _))
                if plan
                    .movies
                    .get(&id)
                    .is_some_and(|p| p.movie.details.is_some()) =>
            {
                plan.skip(FILE, line, format!("movieId {id} appears twice"))
            }
            Ok((id, details)) => plan.entry(id).movie.details = Some(details),
            Err(reason) => plan.skip(FILE, line, reason),
        }
    }
    Ok(())
}

fn read_links(plan: &mut ImportPlan, text: &str) -> Result<(), FileError> {
    const FILE: &str = "links.csv";
    for (line, fields) in body(
        FILE,
        text,
        &["movieId", "imdbId", "tmdbId"],
        "movieId,imdbId,tmdbId",
    )? {
        plan.rows += 1;
        let parsed = expect_fields(&fields, 3).and_then(|()| {
            let id: i64 = number(&fields[0], "movieId")?;
            let tmdb = match fields[2].trim() {
                "" => None,
                raw => Some(number::<i64>(raw, "tmdbId")?),
            };
            let imdb = Some(fields[1].as_str()).filter(|raw| !raw.trim().is_empty());
            let links = Links::new(imdb, tmdb).map_err(|error| error.to_string())?;
            Ok((id, links))
        });
        match parsed {
            Ok((id, links)) => {
                let planned = plan.entry(id);
                planned.movie.links = Some(links);
                planned.rows_without_movie.push(RowAt { file: FILE, line });
            }
            Err(reason) => plan.skip(FILE, line, reason),
        }
    }
    Ok(())
}

fn read_ratings(plan: &mut ImportPlan, text: &str) -> Result<(), FileError> {
    const FILE: &str = "ratings.csv";
    for (line, fields) in body(
        FILE,
        text,
        &["userId", "movieId", "rating", "timestamp"],
        "userId,movieId,rating,timestamp",
    )? {
        plan.rows += 1;
        let parsed = expect_fields(&fields, 4).and_then(|()| {
            let user: i64 = number(&fields[0], "userId")?;
            let id: i64 = number(&fields[1], "movieId")?;
            let stars: f64 = number(&fields[2], "rating")?;
            let rating = Rating::from_stars(stars).map_err(|error| error.to_string())?;
            Ok((
                id,
                RatingGiven {
                    rater: Rater::MovieLens(user),
                    rating,
                    at: time(&fields[3])?,
                },
            ))
        });
        match parsed {
            Ok((id, given)) => {
                let planned = plan.entry(id);
                planned.movie.ratings.push(given);
                planned.rows_without_movie.push(RowAt { file: FILE, line });
            }
            Err(reason) => plan.skip(FILE, line, reason),
        }
    }
    Ok(())
}

fn read_tags(plan: &mut ImportPlan, text: &str) -> Result<(), FileError> {
    const FILE: &str = "tags.csv";
    for (line, fields) in body(
        FILE,
        text,
        &["userId", "movieId", "tag", "timestamp"],
        "userId,movieId,tag,timestamp",
    )? {
        plan.rows += 1;
        let parsed = expect_fields(&fields, 4).and_then(|()| {
            let user: i64 = number(&fields[0], "userId")?;
            let id: i64 = number(&fields[1], "movieId")?;
            let tag = valid_tag(&fields[2]).map_err(|error| error.to_string())?;
            Ok((
                id,
                TagGiven {
                    rater: Rater::MovieLens(user),
                    tag,
                    at: time(&fields[3])?,
                },
            ))
        });
        match parsed {
            Ok((id, given)) => {
                let planned = plan.entry(id);
                planned.movie.tags.push(given);
                planned.rows_without_movie.push(RowAt { file: FILE, line });
            }
            Err(reason) => plan.skip(FILE, line, reason),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_hold_commas_quotes_and_line_breaks() {
        let text = "a,b\r\n1,\"x, \"\"y\"\"\nz\"\n\n2,plain";
        let records = records("t.csv", text).expect("reads");
        assert_eq!(
            records,
            vec![
                (1, vec!["a".to_string(), "b".to_string()]),
                (2, vec!["1".to_string(), "x, \"y\"\nz".to_string()]),
                (5, vec!["2".to_string(), "plain".to_string()]),
            ]
        );
        assert!(matches!(
            records_err("a\n\"open"),
            FileError::UnterminatedQuote { line: 2, .. }
        ));
    }

    fn records_err(text: &str) -> FileError {
        records("t.csv", text).expect_err("refused")
    }

    #[test]
    fn bad_rows_are_skipped_with_file_and_line() {
        let files = MovieLensFiles {
            movies: "movieId,title,genres\n1,\"American President, The (1995)\",Comedy|Drama|Romance\nx,Bad,Drama\n"
                .into(),
            ratings: Some("userId,movieId,rating,timestamp\n1,1,4.5,1\n1,1,9,2\n2,1,3.0,nope\n".into()),
            tags: None,
            links: None,
        };
        let plan = plan(&files).expect("reads");
        assert_eq!(plan.rows, 5);
        let movie = &plan.movies[&1].movie;
        let details = movie.details.as_ref().expect("details");
        assert_eq!(details.title, "American President, The");
        assert_eq!(details.year, Some(1995));
        assert_eq!(movie.ratings.len(), 1);
        let skipped: Vec<(&str, u64)> = plan.skipped.iter().map(|s| (s.file, s.line)).collect();
        assert_eq!(
            skipped,
            vec![("movies.csv", 3), ("ratings.csv", 3), ("ratings.csv", 4)]
        );
    }

    #[test]
    fn a_wrong_header_refuses_the_file() {
        let files = MovieLensFiles {
            movies: "id,name\n1,x\n".into(),
            ..MovieLensFiles::default()
        };
        assert!(matches!(
            plan(&files),
            Err(FileError::Header {
                file: "movies.csv",
                ..
            })
        ));
    }
}
