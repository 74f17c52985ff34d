//! The `review` aggregate: one per user and product (its id is derived from both); writing a
//! second time replaces the first.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::claims::DeclaresClaims;

/// The version of every event type below; bump one (with an upcaster) when its shape changes.
pub const EVENT_VERSION: &str = "1";
pub const MAX_COMMENT_CHARS: usize = 5_000;

#[derive(Debug, Clone, PartialEq)]
pub enum ReviewCommand {
    Write {
        user_id: Uuid,
        product_id: Uuid,
        rating: u8,
        comment: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum ReviewEvent {
    ReviewWritten {
        user_id: Uuid,
        product_id: Uuid,
        rating: u8,
        comment: String,
        /// The rating this review replaced, if it replaced one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_rating: Option<u8>,
    },
}

impl DomainEvent for ReviewEvent {
    fn event_type(&self) -> String {
        "ReviewWritten".to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}

impl DeclaresClaims for ReviewEvent {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("a rating is 1 to 5")]
    InvalidRating,
    #[error("a comment is at most {MAX_COMMENT_CHARS} characters")]
    CommentTooLong,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub rating: Option<u8>,
    pub comment: String,
}

impl Review {
    fn decide(&self, command: ReviewCommand) -> Result<Vec<ReviewEvent>, ReviewError> {
        let ReviewCommand::Write {
            user_id,
            product_id,
            rating,
            comment,
        } = command;
        if !(1..=5).contains(&rating) {
            return Err(ReviewError::InvalidRating);
        }
        let comment = comment.trim().to_string();
        if comment.chars().count() > MAX_COMMENT_CHARS {
            return Err(ReviewError::CommentTooLong);
        }
        if self.rating == Some(rating) && self.comment == comment {
            return Ok(Vec::new());
        }
        Ok(vec![ReviewEvent::ReviewWritten {
            user_id,
            product_id,
            rating,
            comment,
            previous_rating: self.rating,
        }])
    }
}

impl Aggregate for Review {
    const TYPE: &'static str = "review";
    type Command = ReviewCommand;
    type Event = ReviewEvent;
    type Error = ReviewError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = self.decide(command)?;
        crate::emit(self, events, sink).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        let ReviewEvent::ReviewWritten {
            rating, comment, ..
        } = event;
        self.rating = Some(rating);
        self.comment = comment;
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    fn write(rating: u8, comment: &str) -> ReviewCommand {
        ReviewCommand::Write {
            user_id: Uuid::from_u128(1),
            product_id: Uuid::from_u128(2),
            rating,
            comment: comment.into(),
        }
    }

    fn written(rating: u8, comment: &str, previous_rating: Option<u8>) -> ReviewEvent {
        ReviewEvent::ReviewWritten {
            user_id: Uuid::from_u128(1),
            product_id: Uuid::from_u128(2),
            rating,
            comment: comment.into(),
            previous_rating,
        }
    }

    #[test]
    fn a_second_review_replaces_the_first() {
        TestFramework::<Review>::with(())
            .given_no_previous_events()
            .when(write(4, "good"))
            .then_expect_events(vec![written(4, "good", None)]);
        TestFramework::<Review>::with(())
            .given(vec![written(4, "good", None)])
            .when(write(2, "meh on reflection"))
            .then_expect_events(vec![written(2, "meh on reflection", Some(4))]);
        TestFramework::<Review>::with(())
            .given(vec![written(4, "good", None)])
            .when(write(4, "good"))
            .then_expect_events(vec![]);
    }

    #[test]
    fn ratings_are_one_to_five() {
        for rating in [0, 6] {
            TestFramework::<Review>::with(())
                .given_no_previous_events()
                .when(write(rating, ""))
                .then_expect_error(ReviewError::InvalidRating);
        }
    }
}
