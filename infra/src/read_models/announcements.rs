//! Following the read models' announcements (`progress::CHANNEL`) to drop what a process keeps
//! in memory about them: a task of its own per follower, which hears each announcement, and
//! says when one may have passed unheard (before it listened, or while its connection was
//! lost).

use std::sync::Weak;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;

use super::progress::CHANNEL;

/// What a follower hears.
pub enum Heard<'a> {
    /// Listening (again): anything announced before may have passed unheard.
    Listening,
    /// An announcement: `<read model> <id>:<version> ...`.
    Announced(&'a str),
    /// The connection was lost: what is announced now passes unheard until `Listening`.
    Lost,
}

impl Heard<'_> {
    /// Whether this may change what `read_model` holds (an announcement of it, or one that may
    /// have passed unheard).
    pub fn may_change(&self, read_model: &str) -> bool {
        match self {
            Heard::Announced(announcement) => {
                announcement.split(' ').next().unwrap_or_default() == read_model
            }
            Heard::Listening | Heard::Lost => true,
        }
    }
}

/// How often a quiet follower checks that its owner still exists.
const CHECK_EVERY: Duration = Duration::from_secs(5);
/// The pause before listening again after the connection was lost.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Calls `heard` with what `follower` hears, in a task of its own, until `follower` is gone.
pub fn follow<T: Send + Sync + 'static>(
    pool: PgPool,
    follower: Weak<T>,
    name: &'static str,
    heard: fn(&T, Heard<'_>),
) {
    tokio::spawn(async move {
        loop {
            match listen(&pool).await {
                Ok(mut listener) => {
                    let Some(owner) = follower.upgrade() else {
                        return;
                    };
                    heard(&owner, Heard::Listening);
                    drop(owner);
                    loop {
                        let next = tokio::time::timeout(CHECK_EVERY, listener.try_recv()).await;
                        let Some(owner) = follower.upgrade() else {
                            return;
                        };
                        match next {
                            Err(_) => {}
                            Ok(Ok(Some(notification))) => {
                                heard(&owner, Heard::Announced(notification.payload()));
                            }
                            Ok(Ok(None)) => {
                                heard(&owner, Heard::Lost);
                                break;
                            }
                            Ok(Err(error)) => {
                                tracing::warn!(%error, follower = name, "cannot follow the read models' announcements");
                                heard(&owner, Heard::Lost);
                                break;
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, follower = name, "cannot follow the read models' announcements");
                }
            }
            if follower.strong_count() == 0 {
                return;
            }
            tokio::time::sleep(RECONNECT_AFTER).await;
        }
    });
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_changes_its_read_model_only() {
        let heard = Heard::Announced("categories 0191d3a4-0000-7000-8000-000000000000:3");
        assert!(heard.may_change("categories"));
        assert!(!heard.may_change("products"));
        assert!(Heard::Lost.may_change("products"));
        assert!(Heard::Listening.may_change("categories"));
    }
}
