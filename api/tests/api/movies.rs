//! The movies catalog: the MovieLens import (real files and crafted ones), the list's filters,
//! one statement per page, `Server-Timing`, ratings and tags through the API.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

/// The real extract: `ESHOP_MOVIELENS_DIR`, or `shared/` beside the checkout (a worktree sits
/// one folder deeper); `None` on a machine without it.
fn real_data() -> Option<std::path::PathBuf> {
    if let Ok(dir) = std::env::var("ESHOP_MOVIELENS_DIR") {
        return Some(dir.into());
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    ["../../shared", "../../../shared"]
        .iter()
        .map(|up| root.join(up).join("data/movielens-small-2016"))
        .find(|dir| dir.join("movies.csv").exists())
}

/// A multipart body with one part per (name, file text).
fn multipart(parts: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "eshop-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, text) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.csv\"\r\nContent-Type: text/csv\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(text.as_bytes());
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Uploads the files, waits for the import task, returns its report.
async fn import(app: &TestApp, admin: &str, parts: &[(&str, &str)]) -> Value {
    let (content_type, body) = multipart(parts);
    let response = app
        .request(Method::POST, "/api/admin/imports/movielens", Some(admin))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.expect("json");
    let status_url = accepted["status_url"]
        .as_str()
        .expect("status url")
        .to_string();
    let task = eventually(Duration::from_secs(120), "the import task", || async {
        let task: Value = app
            .get(&status_url, Some(admin))
            .await
            .json()
            .await
            .expect("json");
        (task["status"] == "DONE" || task["status"] == "FAILED").then_some(task)
    })
    .await;
    assert_eq!(task["status"], "DONE", "{task}");
    task["result"].clone()
}

/// Waits until the read model holds `movies` movies with `ratings` ratings in all.
async fn caught_up(app: &TestApp, movies: i64, ratings: i64) {
    eventually(
        Duration::from_secs(180),
        "the movies read model",
        || async {
            let (count, sum): (i64, Option<i64>) =
                sqlx::query_as("SELECT count(*), sum(ratings_count)::bigint FROM movies")
                    .fetch_one(&app.pool)
                    .await
                    .expect("counts");
            (count == movies && sum.unwrap_or(0) == ratings).then_some(())
        },
    )
    .await;
}

fn read(dir: &std::path::Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).expect("the real MovieLens files")
}

/// The first `n` comma-separated fields of each data line (those fields are never quoted in
/// these files; titles and tags, which can be, come later).
fn leading_fields(text: &str, n: usize) -> Vec<Vec<String>> {
    text.lines()
        .skip(1)
        .filter(|line| !line.is_empty())
        .map(|line| {
            line.splitn(n + 1, ',')
                .take(n)
                .map(str::to_string)
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn the_real_extract_imports_whole_with_the_counts_and_averages_of_its_files() {
    let Some(dir) = real_data() else {
        eprintln!(
            "SKIPPED: the MovieLens extract (shared/data/movielens-small-2016 beside the checkout, \
             or ESHOP_MOVIELENS_DIR) is not on this machine"
        );
        return;
    };
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (movies, ratings, tags) = (
        read(&dir, "movies.csv"),
        read(&dir, "ratings.csv"),
        read(&dir, "tags.csv"),
    );
    let movie_ids: HashSet<String> = leading_fields(&movies, 1)
        .into_iter()
        .map(|fields| fields[0].clone())
        .collect();
    // Per movie: (count, sum of half stars), from the file.
    let mut expected: HashMap<String, (i64, i64)> = HashMap::new();
    let mut rating_rows = 0;
    for fields in leading_fields(&ratings, 3) {
        rating_rows += 1;
        if movie_ids.contains(&fields[1]) {
            let half: f64 = fields[2].parse::<f64>().expect("rating") * 2.0;
            let entry = expected.entry(fields[1].clone()).or_default();
            entry.0 += 1;
            entry.1 += half as i64;
        }
    }
    let taken_ratings: i64 = expected.values().map(|(count, _)| count).sum();
    let tag_rows = leading_fields(&tags, 2);
    let taken_tags = tag_rows
        .iter()
        .filter(|fields| movie_ids.contains(&fields[1]))
        .count() as i64;

    let report = import(
        &app,
        &admin,
        &[("movies", &movies), ("ratings", &ratings), ("tags", &tags)],
    )
    .await;
    assert_eq!(report["movies"], movie_ids.len() as i64, "{report}");
    assert_eq!(report["ratings"], taken_ratings);
    assert_eq!(report["tags"], taken_tags);
    assert_eq!(report["links"], 0);
    assert_eq!(
        report["skipped_total"],
        rating_rows - taken_ratings + tag_rows.len() as i64 - taken_tags
    );
    assert_eq!(report["unchanged"], 0);
    assert!(report["skipped"][0]["reason"]
        .as_str()
        .expect("reason")
        .starts_with("unknown movie"));

    caught_up(&app, movie_ids.len() as i64, taken_ratings).await;
    let stored: Vec<(i64, i64, Option<f64>)> =
        sqlx::query_as("SELECT movielens_id, ratings_count, rating_average FROM movies")
            .fetch_all(&app.pool)
            .await
            .expect("rows");
    assert_eq!(stored.len(), movie_ids.len());
    for (movielens_id, count, average) in stored {
        let (want_count, half_sum) = expected
            .get(&movielens_id.to_string())
            .copied()
            .unwrap_or((0, 0));
        assert_eq!(count, want_count, "movie {movielens_id}");
        let want_average = (want_count > 0)
            .then(|| ((half_sum as f64 / 2.0 / want_count as f64) * 100.0).round() / 100.0);
        match (average, want_average) {
            (Some(got), Some(want)) => {
                assert!(
                    (got - want).abs() < 0.0051,
                    "movie {movielens_id}: {got} vs {want}"
                )
            }
            (got, want) => assert_eq!(got, want, "movie {movielens_id}"),
        }
    }

    // Forrest Gump (356), the most rated: its detail through the API.
    let (count, half_sum) = expected["356"];
    let list: Value = app
        .get("/api/movies?ordering=-ratings_count&limit=1", None)
        .await
        .json()
        .await
        .expect("json");
    let top = &list["items"][0];
    assert_eq!(top["movielens_id"], 356);
    assert_eq!(top["ratings_count"], count);
    let detail: Value = app
        .get(
            &format!("/api/movies/{}", top["id"].as_str().expect("id")),
            None,
        )
        .await
        .json()
        .await
        .expect("json");
    let histogram_total: i64 = detail["rating_histogram"]
        .as_array()
        .expect("histogram")
        .iter()
        .map(|bar| bar["count"].as_i64().expect("count"))
        .sum();
    assert_eq!(histogram_total, count);
    let histogram_half_sum: i64 = detail["rating_histogram"]
        .as_array()
        .expect("histogram")
        .iter()
        .map(|bar| {
            (bar["rating"].as_f64().expect("rating") * 2.0) as i64
                * bar["count"].as_i64().expect("count")
        })
        .sum();
    assert_eq!(histogram_half_sum, half_sum);

    // The same files again: nothing appended.
    let events = app.event_count().await;
    let again = import(
        &app,
        &admin,
        &[("movies", &movies), ("ratings", &ratings), ("tags", &tags)],
    )
    .await;
    assert_eq!(again["events"], 0, "{again}");
    assert_eq!(
        again["unchanged"],
        movie_ids.len() as i64 + taken_ratings + taken_tags
    );
    assert_eq!(app.event_count().await, events);
}

const MOVIES: &str = "movieId,title,genres\r
1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\r
2,\"American President, The (1995)\",Comedy|Drama|Romance\r
3,Heat (1995),Action|Crime|Thriller\r
4,\"Shawshank Redemption, The (1994)\",Crime|Drama\r
5,Some Film Without Genres,(no genres listed)\r
6,,Drama\r
x7,Broken (2000),Drama\r
";

const RATINGS: &str = "userId,movieId,rating,timestamp
1,1,4.0,1000
2,1,5.0,1000
1,3,3.0,1000
2,3,2.0,1000
3,3,2.5,1000
1,4,5.0,1000
1,999,4.0,1000
1,2,7.5,1000
";

const TAGS: &str = "userId,movieId,tag,timestamp
1,1,pixar,1000
2,1,Pixar,1000
1,4,\"prison, hope\",1000
1,999,orphan,1000
";

const LINKS: &str = "movieId,imdbId,tmdbId
1,0114709,862
3,0113277,
";

#[tokio::test]
async fn crafted_files_quoted_titles_bad_rows_unknown_movies_and_a_second_run() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let files = [
        ("movies", MOVIES),
        ("ratings", RATINGS),
        ("tags", TAGS),
        ("links", LINKS),
    ];
    let report = import(&app, &admin, &files).await;
    assert_eq!(report["movies"], 5, "{report}");
    assert_eq!(report["ratings"], 6);
    assert_eq!(report["tags"], 3);
    assert_eq!(report["links"], 2);
    let skipped: Vec<(String, i64)> = report["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|s| {
            (
                s["file"].as_str().expect("file").to_string(),
                s["line"].as_i64().expect("line"),
            )
        })
        .collect();
    assert_eq!(
        skipped,
        vec![
            ("movies.csv".to_string(), 7),
            ("movies.csv".to_string(), 8),
            ("ratings.csv".to_string(), 8),
            ("ratings.csv".to_string(), 9),
            ("tags.csv".to_string(), 5),
        ]
    );
    caught_up(&app, 5, 6).await;
    let page: Value = app
        .get("/api/movies?title=president", None)
        .await
        .json()
        .await
        .expect("json");
    let president = &page["items"][0];
    assert_eq!(president["title"], "American President, The");
    assert_eq!(president["year"], 1995);
    let heat: Value = app
        .get("/api/movies?title=heat", None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(heat["items"][0]["links"]["imdb_id"], "0113277");
    assert_eq!(heat["items"][0]["links"]["tmdb_id"], Value::Null);
    assert_eq!(
        heat["items"][0]["links"]["imdb_url"],
        "https://www.imdb.com/title/tt0113277/"
    );

    // Again: nothing new. Then one changed rating row: only that change.
    let again = import(&app, &admin, &files).await;
    assert_eq!(again["events"], 0, "{again}");
    assert_eq!(again["unchanged"], 16);
    let changed = RATINGS.replace("2,1,5.0,1000", "2,1,1.5,2000");
    let third = import(&app, &admin, &[("movies", MOVIES), ("ratings", &changed)]).await;
    assert_eq!(
        (third["events"].as_i64(), third["ratings"].as_i64()),
        (Some(1), Some(1))
    );

    // Without movies.csv the upload is refused; a file with a wrong header too.
    let (content_type, body) = multipart(&[("ratings", RATINGS)]);
    let response = app
        .request(Method::POST, "/api/admin/imports/movielens", Some(&admin))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("sent");
    assert_problem(response, 422, "validation_failed").await;
    let (content_type, body) = multipart(&[("movies", "id,name\n1,x\n")]);
    let response = app
        .request(Method::POST, "/api/admin/imports/movielens", Some(&admin))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("sent");
    assert_problem(response, 422, "validation_failed").await;
}

async fn titles(app: &TestApp, query: &str) -> Vec<String> {
    let response = app.get(&format!("/api/movies?{query}"), None).await;
    assert_eq!(response.status(), 200, "{query}");
    let page: Value = response.json().await.expect("json");
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items in {page}"))
        .iter()
        .map(|item| item["title"].as_str().expect("title").to_string())
        .collect()
}

#[tokio::test]
async fn every_filter_and_ordering_composes() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    import(
        &app,
        &admin,
        &[("movies", MOVIES), ("ratings", RATINGS), ("tags", TAGS)],
    )
    .await;
    caught_up(&app, 5, 6).await;
    let all = [
        "American President, The",
        "Heat",
        "Shawshank Redemption, The",
        "Some Film Without Genres",
        "Toy Story",
    ];
    assert_eq!(titles(&app, "").await, all);
    assert_eq!(
        titles(&app, "title=THE").await,
        ["American President, The", "Shawshank Redemption, The"]
    );
    assert_eq!(titles(&app, "title=50%25").await, Vec::<String>::new());
    assert_eq!(
        titles(&app, "genre=drama").await,
        ["American President, The", "Shawshank Redemption, The"]
    );
    assert_eq!(
        titles(&app, "genre=Comedy&genre=Crime").await,
        [
            "American President, The",
            "Heat",
            "Shawshank Redemption, The",
            "Toy Story"
        ]
    );
    assert_eq!(
        titles(&app, "genre=Comedy&genre=drama&genre_mode=all").await,
        ["American President, The"]
    );
    assert_eq!(
        titles(&app, "genre=Crime&exclude_genre=Drama").await,
        ["Heat"]
    );
    assert_eq!(
        titles(&app, "exclude_genre=drama&exclude_genre=comedy").await,
        ["Heat", "Some Film Without Genres"]
    );
    assert_eq!(
        titles(&app, "year_from=1995").await,
        ["American President, The", "Heat", "Toy Story"]
    );
    assert_eq!(
        titles(&app, "year_to=1994").await,
        ["Shawshank Redemption, The"]
    );
    assert_eq!(
        titles(&app, "min_rating=4.5").await,
        ["Shawshank Redemption, The", "Toy Story"]
    );
    assert_eq!(titles(&app, "min_ratings=2").await, ["Heat", "Toy Story"]);
    assert_eq!(
        titles(&app, "min_ratings=2&min_rating=3").await,
        ["Toy Story"]
    );
    assert_eq!(titles(&app, "tag=PIXAR").await, ["Toy Story"]);
    assert_eq!(
        titles(&app, "tag=prison, hope").await,
        ["Shawshank Redemption, The"]
    );
    // Ties (three films of 1995) go by id, in the same direction.
    let by_year = titles(&app, "ordering=-year&year_from=1994").await;
    assert_eq!(by_year.len(), 4);
    assert_eq!(by_year[3], "Shawshank Redemption, The");
    assert_eq!(
        titles(&app, "ordering=-rating_average&min_ratings=1").await,
        ["Shawshank Redemption, The", "Toy Story", "Heat"]
    );
    assert_eq!(
        titles(&app, "ordering=ratings_count&min_ratings=1").await,
        ["Shawshank Redemption, The", "Toy Story", "Heat"]
    );

    // Cursor paging through every ordering gives every movie once, in order.
    for ordering in [
        "title",
        "-title",
        "year",
        "-year",
        "rating_average",
        "-rating_average",
        "ratings_count",
        "-ratings_count",
    ] {
        let whole = titles(&app, &format!("ordering={ordering}")).await;
        let mut paged = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/movies?ordering={ordering}&limit=2");
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let page: Value = app.get(&path, None).await.json().await.expect("json");
            for item in page["items"].as_array().expect("items") {
                paged.push(item["title"].as_str().expect("title").to_string());
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        assert_eq!(paged, whole, "{ordering}");
        assert_eq!(paged.len(), 5, "{ordering}");
    }

    for bad in [
        "genre_mode=some",
        "ordering=price",
        "limit=0",
        "min_rating=6",
        "year_from=x",
        "cursor=nope",
        "colour=red",
    ] {
        let response = app.get(&format!("/api/movies?{bad}"), None).await;
        assert_problem(response, 422, "validation_failed").await;
    }

    let genres: Value = app
        .get("/api/genres", None)
        .await
        .json()
        .await
        .expect("json");
    let counts: BTreeMap<String, i64> = genres
        .as_array()
        .expect("genres")
        .iter()
        .map(|g| {
            (
                g["name"].as_str().expect("name").to_string(),
                g["movies"].as_i64().expect("count"),
            )
        })
        .collect();
    assert_eq!(counts["Drama"], 2);
    assert_eq!(counts["Crime"], 2);
    assert_eq!(counts.get("(no genres listed)"), None);
}

async fn imported_fixture() -> (TestApp, String) {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    import(
        &app,
        &admin,
        &[
            ("movies", MOVIES),
            ("ratings", RATINGS),
            ("tags", TAGS),
            ("links", LINKS),
        ],
    )
    .await;
    caught_up(&app, 5, 6).await;
    (app, admin)
}

#[tokio::test]
async fn a_list_page_is_two_statements_at_most_whatever_it_holds_and_says_so_in_server_timing() {
    let (app, _) = imported_fixture().await;
    // One statement finds the page's movies, one more reads the cards not cached yet: as many
    // for one card as for five; none for cards another page cached.
    for (query, statements, cards) in [
        ("limit=1", "1 card read", "0 cached, 1 loaded"),
        ("limit=100", "5 cards, 4 read", "1 cached, 4 loaded"),
        (
            "limit=5&genre=drama&genre=crime",
            "3 cards cached",
            "3 cached, 0 loaded",
        ),
    ] {
        let response = app.get(&format!("/api/movies?{query}"), None).await;
        assert_eq!(response.status(), 200);
        let timing = server_timing(&response);
        assert!(timing.starts_with("db;dur="), "{timing}");
        let expected = if cards.ends_with(" 0 loaded") {
            "desc=\"1 query\""
        } else {
            "desc=\"2 queries\""
        };
        assert!(
            timing.contains(expected),
            "{query} ({statements}): {timing}"
        );
        assert!(
            timing.contains(&format!("fragments;desc=\"{cards}\"")),
            "{query} ({statements}): {timing}"
        );
        assert!(timing.contains("cache;dur="), "{timing}");
        assert!(timing.contains("desc=\"miss\""), "{timing}");
        assert!(timing.contains("total;dur="), "{timing}");
    }
    // The whole page is cached now: no statement, no card to look up.
    let response = app
        .get("/api/movies?limit=5&genre=drama&genre=crime", None)
        .await;
    let timing = server_timing(&response);
    assert!(timing.contains("desc=\"0 queries\""), "{timing}");
    assert!(timing.contains("desc=\"hit\""), "{timing}");
    assert!(!timing.contains("fragments;"), "{timing}");
    // Any other answer carries the header too.
    let response = app.get("/health", None).await;
    assert!(server_timing(&response).contains("total;dur="));
}

/// The items of a list page, by title.
async fn cards_by_title(app: &TestApp, query: &str) -> (BTreeMap<String, Value>, String) {
    let response = app.get(&format!("/api/movies?{query}"), None).await;
    assert_eq!(response.status(), 200, "{query}");
    let timing = server_timing(&response);
    let page: Value = response.json().await.expect("json");
    let cards = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|card| {
            (
                card["title"].as_str().expect("title").to_string(),
                card.clone(),
            )
        })
        .collect();
    (cards, timing)
}

#[tokio::test]
async fn a_new_filter_combination_reuses_cached_cards_and_a_changed_movie_shows_its_new_figures() {
    let (app, _) = imported_fixture().await;
    let (all, timing) = cards_by_title(&app, "limit=100").await;
    assert_eq!(all.len(), 5);
    assert!(timing.contains("desc=\"2 queries\""), "{timing}");

    // Filters never asked for before, over movies already listed: one statement, no card read.
    for query in [
        "genre=drama&ordering=-year",
        "min_ratings=2&ordering=-rating_average",
        "tag=pixar&exclude_genre=horror",
    ] {
        let (cards, timing) = cards_by_title(&app, query).await;
        assert!(!cards.is_empty(), "{query}");
        assert!(timing.contains("desc=\"1 query\""), "{query}: {timing}");
        assert!(timing.contains("desc=\"miss\""), "{query}: {timing}");
        assert!(timing.contains(" 0 loaded\""), "{query}: {timing}");
        for (title, card) in &cards {
            assert_eq!(card, &all[title], "{query}");
        }
    }

    // A new rating: the next list page shows Heat's new figures, not its cached card.
    let heat = all["Heat"].clone();
    assert_eq!(
        (
            heat["ratings_count"].as_i64(),
            heat["rating_average"].as_f64()
        ),
        (Some(3), Some(2.5))
    );
    let id = heat["id"].as_str().expect("id");
    let (_, alice) = app.customer("alice").await;
    let response = app
        .request(
            Method::PUT,
            &format!("/api/movies/{id}/rating"),
            Some(&alice),
        )
        .json(&json!({"rating": 4.5}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let after = eventually(Duration::from_secs(20), "Heat's new figures", || async {
        let (cards, _) = cards_by_title(&app, "genre=drama&genre=crime").await;
        let heat = cards.get("Heat")?.clone();
        (heat["ratings_count"] == 4).then_some((heat, cards))
    })
    .await;
    let (heat_now, cards) = after;
    assert_eq!(heat_now["rating_average"], 3.0);
    assert!(heat_now["version"].as_u64() > heat["version"].as_u64());
    let detail: Value = app
        .get(&format!("/api/movies/{id}"), None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(detail["ratings_count"], 4);
    assert_eq!(detail["rating_average"], 3.0);
    // The other cards of that page did not change.
    for (title, card) in &cards {
        if title != "Heat" {
            assert_eq!(card, &all[title], "{title}");
        }
    }
    // And every page that lists Heat shows it so, the first one too.
    let (all_now, _) = cards_by_title(&app, "limit=100").await;
    assert_eq!(all_now["Heat"], heat_now);
}

#[tokio::test]
async fn users_rate_withdraw_and_tag_and_cached_answers_follow() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, alice) = app.customer("alice").await;
    let response = app
        .post(
            "/api/movies",
            Some(&admin),
            json!({"title": "Alien", "year": 1979, "genres": ["Horror", "Sci-Fi"], "imdb_id": "tt0078748"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let movie: Value = response.json().await.expect("json");
    let id = movie["id"].as_str().expect("id").to_string();
    let shown = |want: fn(&Value) -> bool| {
        let path = format!("/api/movies/{id}");
        let app = &app;
        async move {
            eventually(Duration::from_secs(20), "the movie", || async {
                let response = app.get(&path, None).await;
                if response.status() != 200 {
                    return None;
                }
                let body: Value = response.json().await.expect("json");
                want(&body).then_some(body)
            })
            .await
        }
    };
    let first = shown(|body| body["ratings_count"] == 0).await;
    assert_eq!(first["links"]["imdb_id"], "0078748");

    let rate = |stars: f64| {
        app.request(
            Method::PUT,
            &format!("/api/movies/{id}/rating"),
            Some(&alice),
        )
        .json(&json!({"rating": stars}))
        .send()
    };
    assert_eq!(rate(4.5).await.expect("sent").status(), 200);
    shown(|body| body["ratings_count"] == 1 && body["rating_average"] == 4.5).await;
    assert_eq!(rate(2.0).await.expect("sent").status(), 200);
    let after = shown(|body| body["rating_average"] == 2.0).await;
    assert_eq!(after["ratings_count"], 1);
    assert_eq!(after["rating_histogram"][3]["count"], 1);
    assert_problem(rate(2.25).await.expect("sent"), 422, "validation_failed").await;

    let response = app
        .post(
            &format!("/api/movies/{id}/tags"),
            Some(&alice),
            json!({"tag": "space"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let tagged = shown(|body| !body["top_tags"].as_array().expect("tags").is_empty()).await;
    assert_eq!(tagged["top_tags"][0], json!({"tag": "space", "count": 1}));
    let tags: Value = app
        .get(&format!("/api/movies/{id}/tags"), None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(tags["items"][0]["tag"], "space");

    let response = app
        .request(
            Method::DELETE,
            &format!("/api/movies/{id}/rating"),
            Some(&alice),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    shown(|body| body["ratings_count"] == 0 && body["rating_average"].is_null()).await;
    let response = app
        .request(
            Method::DELETE,
            &format!("/api/movies/{id}/rating"),
            Some(&alice),
        )
        .send()
        .await
        .expect("sent");
    assert_problem(response, 409, "not_rated").await;

    // Genres are cached, and a new movie's genres show.
    let genres: Value = app
        .get("/api/genres", None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        genres,
        json!([{"name": "Horror", "movies": 1}, {"name": "Sci-Fi", "movies": 1}])
    );
    let again = app.get("/api/genres", None).await;
    let timing = server_timing(&again);
    assert!(
        timing.contains("desc=\"hit\"") && timing.contains("desc=\"0 queries\""),
        "the genre counts come from the cache: {timing}"
    );
    let response = app
        .patch(
            &format!("/api/movies/{id}"),
            Some(&admin),
            json!({"genres": ["Horror"]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    eventually(Duration::from_secs(20), "the genre counts", || async {
        let genres: Value = app
            .get("/api/genres", None)
            .await
            .json()
            .await
            .expect("json");
        (genres == json!([{"name": "Horror", "movies": 1}])).then_some(())
    })
    .await;

    // Only admins add movies; only signed-in users rate.
    let response = app
        .post("/api/movies", Some(&alice), json!({"title": "X"}))
        .await;
    assert_eq!(response.status(), 403);
    let response = app
        .request(Method::PUT, &format!("/api/movies/{id}/rating"), None)
        .json(&json!({"rating": 3.0}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);
}
