//! Housekeeping (relay.rs `prune`, every five minutes on every api-node):
//! the revocation table keeps only what can still matter, and the delete
//! that keeps it so is an index range scan of the expired rows.

use test_support::api as common;

use std::time::Duration;

use common::TestApp;
use uuid::Uuid;

/// Inserts `n` revocations whose tokens expire at `now() + offset`.
async fn revocations(db: &tokio_postgres::Client, n: usize, offset: &str) -> Vec<Uuid> {
    let jtis: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    db.execute(
        &format!(
            "INSERT INTO revoked_tokens (jti, user_id, expires_at)
             SELECT j, gen_random_uuid(), now() + interval '{offset}' FROM unnest($1::uuid[]) AS j"
        ),
        &[&jtis],
    )
    .await
    .unwrap();
    jtis
}

async fn kept(db: &tokio_postgres::Client, jtis: &[Uuid]) -> i64 {
    db.query_one(
        "SELECT count(*) FROM revoked_tokens WHERE jti = ANY($1)",
        &[&jtis],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn revocations_of_long_expired_tokens_are_pruned_and_live_ones_kept() {
    let app = TestApp::spawn().await;
    let db = app.db.client().await;
    let long_expired = revocations(&db, 50, "-2 hours").await;
    let just_expired = revocations(&db, 5, "-1 minute").await;
    let live = revocations(&db, 5, "1 hour").await;
    // A real logout too: its token is live, its revocation must stay.
    let user = app.register().await;
    let logout = app
        .post("/api/auth/logout", Some(&user.token), serde_json::json!({}))
        .await;
    assert_eq!(logout.status.as_u16(), 204);

    let pool = api_node::db::pool(&app.db.url, 1, Duration::from_secs(5)).unwrap();
    api_node::relay::prune(&pool, Duration::from_secs(900))
        .await
        .unwrap();

    assert_eq!(kept(&db, &long_expired).await, 0);
    // Within the grace past expiry (nodes' clocks may lag the database's).
    assert_eq!(kept(&db, &just_expired).await, 5);
    assert_eq!(kept(&db, &live).await, 5);
    let total: i64 = db
        .query_one("SELECT count(*) FROM revoked_tokens", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, 11, "the logout's revocation is kept");
    let profile = app.get("/api/profile", &user.token).await;
    assert_eq!(
        profile.status.as_u16(),
        401,
        "the logged-out token stays refused"
    );
}

#[tokio::test]
async fn the_prune_reads_only_the_expired_rows_through_an_index() {
    let app = TestApp::spawn().await;
    let db = app.db.client().await;
    // A large table of live revocations, a few long expired.
    revocations(&db, 20_000, "1 hour").await;
    revocations(&db, 20, "-2 hours").await;
    db.batch_execute("ANALYZE revoked_tokens").await.unwrap();

    // The prune's statement (shared/src/revocation.rs), as PostgreSQL plans it.
    let plan: Vec<String> = db
        .query(
            "EXPLAIN DELETE FROM revoked_tokens WHERE expires_at < now() - make_interval(secs => 3600)",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(plan.contains("revoked_tokens_by_expiry"), "{plan}");
    assert!(!plan.contains("Seq Scan"), "{plan}");
}
