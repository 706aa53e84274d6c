//! The ws-node, like the api-node, refuses to start with a `JWT_SECRET`
//! anyone could guess (`shared::weak_secret` has the rules), and says so
//! without printing it.

use std::process::Command;
use std::time::Duration;

#[test]
fn a_placeholder_or_guessable_secret_stops_the_node_at_startup() {
    let placeholder = "JWT_SECRET is an example placeholder";
    for (secret, why) in [
        ("change-me-change-me-change-me-change-me", placeholder),
        (
            "REPLACE-ME-with-openssl-rand-hex-32-REPLACE-ME",
            placeholder,
        ),
        (
            "abcabcabcabcabcabcabcabcabcabcabcabc",
            "JWT_SECRET is guessable",
        ),
    ] {
        let dir = std::env::temp_dir().join(format!("ws-startup-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ws-node"))
            .current_dir(&dir)
            .env_clear()
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .env("REDIS_URL", "redis://127.0.0.1:1")
            .env("WS_LISTEN_ADDR", "127.0.0.1:0")
            .env("JWT_SECRET", secret)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("the ws-node started with {secret:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(text.contains(why), "{secret:?}: {text}");
        assert!(!text.contains(secret), "{text}");
    }
}
