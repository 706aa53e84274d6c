//! Applies the migrations in `sql/migrations`, compiled into the binary.
//! Safe to repeat and to run from several nodes at once: an advisory lock
//! serialises runners, and each applied file is recorded.

use deadpool_postgres::Client;

/// The migrations, in order.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_schema",
        include_str!("../../../sql/migrations/0001_schema.sql"),
    ),
    (
        "0002_register_attempts",
        include_str!("../../../sql/migrations/0002_register_attempts.sql"),
    ),
    (
        "0003_revoked_tokens_expiry",
        include_str!("../../../sql/migrations/0003_revoked_tokens_expiry.sql"),
    ),
    (
        "0004_outbox_event_fields",
        include_str!("../../../sql/migrations/0004_outbox_event_fields.sql"),
    ),
];

/// An arbitrary constant that names "the migration lock" for this schema.
const LOCK_KEY: i64 = 0x7461_736b_7300;

/// Applies what is missing; returns the names applied by this call.
pub async fn run(client: &mut Client) -> anyhow::Result<Vec<&'static str>> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    text PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS {
        let done = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .await?
            .is_some();
        if !done {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[version],
            )
            .await?;
            applied.push(*version);
        }
    }
    tx.commit().await?;
    Ok(applied)
}
