//! Refusing secrets an attacker could guess: the placeholders this
//! repository ships as examples, and values that are obviously not random.
//! A node that starts with one of them would sign tokens anyone can forge,
//! so start-up fails with an error that says why (never the value).

use anyhow::bail;

/// The example values shipped in this repository (`.env.example`, the
/// Kubernetes Secret, `deploy/check.sh`, old test harnesses). Someone who
/// copied an example verbatim must not get a running node.
pub const KNOWN_PLACEHOLDERS: &[&str] = &[
    "change-me-change-me-change-me-change-me",
    "REPLACE-ME-with-openssl-rand-hex-32-REPLACE-ME",
    "0123456789abcdef0123456789abcdef",
    "test-secret-test-secret-test-secret!!",
    "another-secret-another-secret-another",
];

/// Words that only a placeholder contains (compared case-insensitively).
const PLACEHOLDER_WORDS: &[&str] = &[
    "change-me",
    "changeme",
    "change_me",
    "replace-me",
    "replaceme",
    "replace_me",
];

/// Fewer distinct bytes than this is not random. (A random hex string of
/// 32 characters, `openssl rand -hex 16`, has fewer than 8 distinct digits
/// with a probability below one in a billion; at 12 it would be refused
/// once in sixty.)
pub const MIN_DISTINCT_BYTES: usize = 8;

/// The shortest secret accepted, in bytes.
pub const MIN_LEN: usize = 32;

/// Checks the secret held by setting `name`; the error names the setting and
/// the rule, never the value.
pub fn check(name: &str, secret: &str) -> anyhow::Result<()> {
    const HOW: &str = "generate one with `openssl rand -hex 32`";
    if secret.len() < MIN_LEN {
        bail!("{name} must be at least {MIN_LEN} bytes; {HOW}");
    }
    let lower = secret.to_ascii_lowercase();
    if KNOWN_PLACEHOLDERS.contains(&secret.trim())
        || PLACEHOLDER_WORDS.iter().any(|w| lower.contains(w))
    {
        bail!("{name} is an example placeholder, not a secret; {HOW}");
    }
    let distinct = distinct_bytes(secret.as_bytes());
    if distinct < MIN_DISTINCT_BYTES {
        bail!(
            "{name} is guessable: only {distinct} distinct bytes (at least {MIN_DISTINCT_BYTES}); {HOW}"
        );
    }
    if is_repetitive(secret.as_bytes()) {
        bail!("{name} is guessable: a short pattern repeated; {HOW}");
    }
    Ok(())
}

fn distinct_bytes(bytes: &[u8]) -> usize {
    let mut seen = [false; 256];
    for b in bytes {
        seen[usize::from(*b)] = true;
    }
    seen.iter().filter(|s| **s).count()
}

/// Whether fewer than half of the secret's 4-byte windows are distinct: a
/// word repeated (`abcabcabc…`, `secret-secret-…`) has few, a random string
/// or a passphrase of distinct words nearly all.
fn is_repetitive(bytes: &[u8]) -> bool {
    let windows: Vec<&[u8]> = bytes.windows(4).collect();
    let mut distinct = windows.clone();
    distinct.sort_unstable();
    distinct.dedup();
    distinct.len() * 2 < windows.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_every_shipped_placeholder() {
        for placeholder in KNOWN_PLACEHOLDERS {
            let err = check("JWT_SECRET", placeholder).unwrap_err().to_string();
            assert!(err.starts_with("JWT_SECRET "), "{err}");
            assert!(
                !err.contains(placeholder),
                "the error shows the value: {err}"
            );
        }
        assert!(check("JWT_SECRET", "Change-Me-4f9a1c7e2b8d3a6f9e0c1b2a7d4e8f3c").is_err());
    }

    #[test]
    fn refuses_short_and_low_entropy_secrets() {
        assert!(check("S", "short").is_err());
        assert!(check("S", &"x".repeat(64)).is_err());
        assert!(check("S", &"ab".repeat(32)).is_err());
        assert!(check("S", &"0123456".repeat(8)).is_err());
        assert!(check("S", &"password".repeat(5)).is_err());
        assert!(check("S", "hunter2-hunter2-hunter2-hunter2-hunter2").is_err());
    }

    #[test]
    fn accepts_random_secrets_and_passphrases() {
        for ok in [
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "3c9d1e7a5b2f8064a1d9c3e7b5f20486",
            "q7R+2xZk/9LmT4vWb8Ns0YpQeJ3cHfA1gU6dKoI5",
            "correct horse battery staple, and a few more words",
        ] {
            assert!(check("S", ok).is_ok(), "{ok}");
        }
    }
}
