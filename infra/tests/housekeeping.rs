//! Housekeeping of operational state against a real Postgres: ended sessions, unused keys.

use std::time::Duration;

use eshop_infra::sessions::{PgSessions, RefreshError};
use eshop_infra::testing::fresh_database;
use uuid::Uuid;

#[tokio::test]
async fn ended_sessions_are_purged_after_their_retention_and_live_ones_stay() {
    let (_, pool) = fresh_database().await;
    let sessions = PgSessions::new(pool.clone(), Duration::from_secs(3600));
    let user = Uuid::now_v7();
    let live = sessions.start(user).await.expect("live");
    let revoked_long_ago = sessions.start(user).await.expect("revoked");
    let revoked_now = sessions.start(user).await.expect("revoked now");
    sessions
        .revoke(revoked_long_ago.session_id, "logout")
        .await
        .expect("revoked");
    sqlx::query("UPDATE sessions SET revoked_at = now() - interval '8 days' WHERE id = $1")
        .bind(revoked_long_ago.session_id)
        .execute(&pool)
        .await
        .expect("aged");
    sessions
        .revoke(revoked_now.session_id, "logout")
        .await
        .expect("revoked");

    let purged = sessions
        .purge_ended(Duration::from_secs(7 * 24 * 3600))
        .await
        .expect("purged");
    assert_eq!(purged, 1, "only the session that ended over a week ago");
    let left: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM sessions ORDER BY id")
        .fetch_all(&pool)
        .await
        .expect("sessions");
    assert_eq!(left, vec![live.session_id, revoked_now.session_id]);
    let tokens: i64 =
        sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE session_id = $1")
            .bind(revoked_long_ago.session_id)
            .fetch_one(&pool)
            .await
            .expect("tokens");
    assert_eq!(tokens, 0, "its refresh tokens went with it");
    assert!(sessions.is_live(live.session_id).await.expect("checked"));
    assert!(matches!(
        sessions.refresh(&revoked_now.refresh_token).await,
        Err(RefreshError::Revoked)
    ));
}

#[tokio::test]
async fn a_key_whose_registration_never_committed_is_purged_and_a_used_one_stays() {
    use eshop_infra::personal_data::PersonalDataKeys;
    let (_, pool) = fresh_database().await;
    let keys = PersonalDataKeys::new(pool.clone());
    let orphan = Uuid::now_v7().to_string();
    let used = Uuid::now_v7().to_string();
    keys.key_for_writing(&orphan).await.expect("a key");
    keys.key_for_writing(&used).await.expect("a key");
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('user', $1, 1, 'UserRegistered', '1', '{}', '{}')",
    )
    .bind(&used)
    .execute(&pool)
    .await
    .expect("an event");
    sqlx::query("UPDATE personal_data_keys SET created_at = now() - interval '2 days'")
        .execute(&pool)
        .await
        .expect("aged");
    let purged = keys
        .purge_unused(Duration::from_secs(24 * 3600))
        .await
        .expect("purged");
    assert_eq!(purged, 1);
    let left = keys
        .keys(&[orphan.clone(), used.clone()])
        .await
        .expect("keys");
    assert!(left.contains_key(&used) && !left.contains_key(&orphan));
}
