//! The node refuses to start with a `JWT_SECRET` anyone could guess: the
//! placeholders this repository ships as examples, and obviously
//! low-entropy values. The error says why and never prints the value.

use std::process::Command;

use shared::weak_secret::KNOWN_PLACEHOLDERS;

/// Runs `api-node migrate` (which reads the whole configuration first) with
/// this secret, in an empty directory (no `.env`), against services that do
/// not exist; returns whether it failed and its stderr.
fn start_with(secret: &str) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("startup-secrets-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_api-node"))
        .arg("migrate")
        .current_dir(&dir)
        .env_clear()
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .env("JWT_SECRET", secret)
        .env("DB_TIMEOUT_MS", "100")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    (!output.status.success(), stderr)
}

#[test]
fn every_shipped_placeholder_is_refused_at_startup_without_printing_it() {
    let env_example = include_str!("../../.env.example");
    let k8s_config = include_str!("../../deploy/k8s/config.yaml");
    let shipped: Vec<&str> = env_example
        .lines()
        .chain(k8s_config.lines())
        .filter_map(|l| l.trim().strip_prefix("JWT_SECRET"))
        .filter_map(|l| {
            l.trim_start_matches([':', '=', ' '])
                .split_whitespace()
                .next()
        })
        .collect();
    assert!(shipped.len() >= 2, "found the examples: {shipped:?}");

    for secret in shipped.iter().chain(KNOWN_PLACEHOLDERS) {
        let (failed, output) = start_with(secret);
        assert!(failed, "started with {secret:?}");
        assert!(
            output.contains("JWT_SECRET is an example placeholder"),
            "{secret:?}: {output}"
        );
        assert!(
            !output.contains(secret),
            "the error prints the secret: {output}"
        );
    }
}

#[test]
fn low_entropy_secrets_are_refused_at_startup() {
    for secret in [
        "x".repeat(64),
        "abc".repeat(16),
        "secret-secret-secret-secret-secret".to_owned(),
        "0101010101010101010101010101010101010101".to_owned(),
    ] {
        let (failed, output) = start_with(&secret);
        assert!(failed, "started with {secret:?}");
        assert!(
            output.contains("JWT_SECRET is guessable"),
            "{secret:?}: {output}"
        );
        assert!(!output.contains(&secret));
    }
}

#[test]
fn generated_secrets_pass_and_the_node_goes_on_to_connect() {
    // What scripts/up.sh, loadtest/bench.sh and `openssl rand -hex 32`
    // produce: the node gets past its settings and fails only on the
    // missing PostgreSQL.
    for secret in [
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "3c9d1e7a5b2f8064a1d9c3e7b5f20486",
    ] {
        let (failed, output) = start_with(secret);
        assert!(failed, "there is no PostgreSQL to migrate");
        assert!(!output.contains("JWT_SECRET"), "{output}");
    }
}
