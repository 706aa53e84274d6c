//! Password hashing: argon2id with OWASP's recommended minimum (19 MiB,
//! 2 passes, 1 lane: argon2's defaults), run on the blocking pool behind a
//! semaphore. The semaphore bounds how many hashes run at once, so a login
//! storm queues here instead of taking every core from other requests.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// Hashes and verifies passwords off the async runtime.
#[derive(Clone)]
pub struct Passwords {
    /// Permits = hashes allowed to run at once.
    permits: Arc<Semaphore>,
    /// A real hash of a random password, verified against when the email is
    /// unknown, so that case takes as long as a wrong password.
    dummy_hash: Arc<str>,
}

impl Passwords {
    /// A hasher running at most `concurrency` hashes at once.
    pub fn new(concurrency: usize) -> Self {
        let random = uuid::Uuid::new_v4().to_string();
        let dummy_hash = hash_now(&random).expect("BUG: hashing a fresh password cannot fail");
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            dummy_hash: dummy_hash.into(),
        }
    }

    /// The PHC string of a new salted hash.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.on_pool(move || hash_now(&password))
            .await?
            .map_err(ApiError::Internal)
    }

    /// Whether `password` matches `hash`; with no hash (unknown email) it
    /// does the same work against a dummy and answers false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, ApiError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = self
            .on_pool(move || {
                Argon2::default()
                    .verify_password(password.as_bytes(), hash.as_str())
                    .is_ok()
            })
            .await?;
        Ok(known && matches)
    }

    async fn on_pool<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("BUG: hash semaphore closed")))?;
        metrics::gauge!(crate::metrics::HASHES_RUNNING).increment(1.0);
        let result = tokio::task::spawn_blocking(work).await;
        metrics::gauge!(crate::metrics::HASHES_RUNNING).decrement(1.0);
        result.map_err(|err| ApiError::Internal(err.into()))
    }
}

fn hash_now(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|err| anyhow::anyhow!("hashing failed: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let passwords = Passwords::new(2);
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(passwords
            .verify("correct horse".into(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!passwords
            .verify("wrong horse".into(), Some(hash))
            .await
            .unwrap());
        assert!(!passwords.verify("anything".into(), None).await.unwrap());
    }
}
