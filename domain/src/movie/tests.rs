use chrono::TimeZone;
use cqrs_es::test::TestFramework;

use super::*;

type MovieTest = TestFramework<Movie>;

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0).single().expect("valid time")
}

fn toy_story() -> MovieDetails {
    MovieDetails::from_movielens("Toy Story (1995)", "Adventure|Animation|Children").expect("valid")
}

fn added_toy_story() -> MovieEvent {
    MovieEvent::MovieAdded {
        movielens_id: Some(1),
        title: "Toy Story".into(),
        year: Some(1995),
        genres: vec!["Adventure".into(), "Animation".into(), "Children".into()],
        links: Links::default(),
    }
}

fn stars(value: f64) -> Rating {
    Rating::from_stars(value).expect("valid rating")
}

fn ml(id: i64) -> Rater {
    Rater::MovieLens(id)
}

fn rated(rater: i64, value: f64, time: i64, previous: Option<f64>) -> MovieEvent {
    MovieEvent::MovieRated {
        rater: ml(rater),
        rating: stars(value),
        rated_at: at(time),
        previous: previous.map(stars),
    }
}

fn rate(rater: i64, value: f64, time: i64) -> MovieCommand {
    MovieCommand::Rate(RatingGiven {
        rater: ml(rater),
        rating: stars(value),
        at: at(time),
    })
}

fn import(details: Option<MovieDetails>, ratings: &[(i64, f64, i64)]) -> MovieCommand {
    MovieCommand::Import(ImportedMovie {
        movielens_id: 1,
        details,
        links: None,
        ratings: ratings
            .iter()
            .map(|&(rater, value, time)| RatingGiven {
                rater: ml(rater),
                rating: stars(value),
                at: at(time),
            })
            .collect(),
        tags: Vec::new(),
    })
}

#[test]
fn a_movielens_title_gives_its_year_and_no_genres_listed_means_none() {
    let details =
        MovieDetails::from_movielens("American President, The (1995)", "(no genres listed)")
            .expect("valid");
    assert_eq!(details.title, "American President, The");
    assert_eq!(details.year, Some(1995));
    assert!(details.genres.is_empty());
    let details = MovieDetails::from_movielens("Babylon 5", "Sci-Fi").expect("valid");
    assert_eq!((details.title.as_str(), details.year), ("Babylon 5", None));
    let details = MovieDetails::from_movielens("1984 (1984)", "Drama").expect("valid");
    assert_eq!((details.title.as_str(), details.year), ("1984", Some(1984)));
}

#[test]
fn ratings_are_half_stars_from_half_to_five() {
    assert_eq!(stars(3.5).half_stars(), 7);
    for bad in [0.0, 0.25, 5.5, -1.0, f64::NAN] {
        assert_eq!(Rating::from_stars(bad), Err(MovieError::InvalidRating));
    }
    assert_eq!(
        serde_json::to_string(&stars(4.5)).expect("serializes"),
        "4.5"
    );
}

#[test]
fn raters_read_back_as_written() {
    for rater in [ml(15), Rater::User(Uuid::from_u128(7))] {
        assert_eq!(rater.to_string().parse::<Rater>(), Ok(rater));
    }
    assert!("ml:x".parse::<Rater>().is_err());
}

#[test]
fn add_a_movie_then_adding_again_is_refused() {
    MovieTest::with(())
        .given_no_previous_events()
        .when(MovieCommand::Add {
            details: toy_story(),
            links: Links::default(),
        })
        .then_expect_events(vec![MovieEvent::MovieAdded {
            movielens_id: None,
            title: "Toy Story".into(),
            year: Some(1995),
            genres: vec!["Adventure".into(), "Animation".into(), "Children".into()],
            links: Links::default(),
        }]);
    MovieTest::with(())
        .given(vec![added_toy_story()])
        .when(MovieCommand::Add {
            details: toy_story(),
            links: Links::default(),
        })
        .then_expect_error(MovieError::AlreadyExists);
}

#[test]
fn rating_again_replaces_and_the_same_rating_changes_nothing() {
    MovieTest::with(())
        .given(vec![added_toy_story()])
        .when(rate(1, 4.0, 100))
        .then_expect_events(vec![rated(1, 4.0, 100, None)]);
    MovieTest::with(())
        .given(vec![added_toy_story(), rated(1, 4.0, 100, None)])
        .when(rate(1, 2.5, 200))
        .then_expect_events(vec![rated(1, 2.5, 200, Some(4.0))]);
    MovieTest::with(())
        .given(vec![added_toy_story(), rated(1, 4.0, 100, None)])
        .when(rate(1, 4.0, 100))
        .then_expect_events(vec![]);
}

#[test]
fn a_rating_can_be_withdrawn_once() {
    MovieTest::with(())
        .given(vec![added_toy_story(), rated(1, 4.0, 100, None)])
        .when(MovieCommand::WithdrawRating { rater: ml(1) })
        .then_expect_events(vec![MovieEvent::MovieRatingWithdrawn {
            rater: ml(1),
            rating: stars(4.0),
        }]);
    MovieTest::with(())
        .given(vec![
            added_toy_story(),
            rated(1, 4.0, 100, None),
            MovieEvent::MovieRatingWithdrawn {
                rater: ml(1),
                rating: stars(4.0),
            },
        ])
        .when(MovieCommand::WithdrawRating { rater: ml(1) })
        .then_expect_error(MovieError::NotRated);
}

#[test]
fn an_unknown_movie_cannot_be_rated_or_tagged() {
    MovieTest::with(())
        .given_no_previous_events()
        .when(rate(1, 4.0, 100))
        .then_expect_error(MovieError::NotFound);
    MovieTest::with(())
        .given_no_previous_events()
        .when(MovieCommand::Tag(TagGiven {
            rater: ml(1),
            tag: "pixar".into(),
            at: at(1),
        }))
        .then_expect_error(MovieError::NotFound);
}

#[test]
fn a_tag_is_kept_once_per_rater() {
    let tagged = MovieEvent::MovieTagged {
        rater: ml(3),
        tag: "pixar".into(),
        tagged_at: at(5),
    };
    let tag = |rater| {
        MovieCommand::Tag(TagGiven {
            rater: ml(rater),
            tag: "pixar".into(),
            at: at(5),
        })
    };
    MovieTest::with(())
        .given(vec![added_toy_story()])
        .when(tag(3))
        .then_expect_events(vec![tagged.clone()]);
    MovieTest::with(())
        .given(vec![added_toy_story(), tagged.clone()])
        .when(tag(3))
        .then_expect_events(vec![]);
    MovieTest::with(())
        .given(vec![added_toy_story(), tagged])
        .when(tag(4))
        .then_expect_events(vec![MovieEvent::MovieTagged {
            rater: ml(4),
            tag: "pixar".into(),
            tagged_at: at(5),
        }]);
}

#[test]
fn an_update_records_only_what_changed() {
    let mut details = toy_story();
    MovieTest::with(())
        .given(vec![added_toy_story()])
        .when(MovieCommand::Update {
            details: Some(details.clone()),
            links: Some(Links::default()),
        })
        .then_expect_events(vec![]);
    details.genres.insert("Comedy".into());
    let links = Links::new(Some("tt0114709"), Some(862)).expect("valid");
    MovieTest::with(())
        .given(vec![added_toy_story()])
        .when(MovieCommand::Update {
            details: Some(details),
            links: Some(links.clone()),
        })
        .then_expect_events(vec![
            MovieEvent::MovieDetailsChanged {
                title: "Toy Story".into(),
                year: Some(1995),
                genres: vec![
                    "Adventure".into(),
                    "Animation".into(),
                    "Children".into(),
                    "Comedy".into(),
                ],
            },
            MovieEvent::MovieLinksChanged(links),
        ]);
}

#[test]
fn a_first_import_adds_the_movie_with_its_ratings() {
    MovieTest::with(())
        .given_no_previous_events()
        .when(import(Some(toy_story()), &[(1, 4.0, 100), (2, 3.0, 100)]))
        .then_expect_events(vec![
            added_toy_story(),
            rated(1, 4.0, 100, None),
            rated(2, 3.0, 100, None),
        ]);
}

#[test]
fn importing_the_same_rows_again_appends_nothing_and_a_changed_row_only_its_change() {
    let history = vec![
        added_toy_story(),
        rated(1, 4.0, 100, None),
        rated(2, 3.0, 100, None),
    ];
    MovieTest::with(())
        .given(history.clone())
        .when(import(Some(toy_story()), &[(1, 4.0, 100), (2, 3.0, 100)]))
        .then_expect_events(vec![]);
    MovieTest::with(())
        .given(history)
        .when(import(Some(toy_story()), &[(1, 4.0, 100), (2, 5.0, 300)]))
        .then_expect_events(vec![rated(2, 5.0, 300, Some(3.0))]);
}

#[test]
fn ratings_of_a_movie_never_imported_are_refused() {
    MovieTest::with(())
        .given_no_previous_events()
        .when(import(None, &[(1, 4.0, 100)]))
        .then_expect_error(MovieError::NotFound);
}

#[test]
fn one_rater_twice_in_one_import_keeps_one_rating() {
    MovieTest::with(())
        .given(vec![added_toy_story()])
        .when(import(None, &[(1, 4.0, 100), (1, 2.0, 200)]))
        .then_expect_events(vec![
            rated(1, 4.0, 100, None),
            rated(1, 2.0, 200, Some(4.0)),
        ]);
}
