//! Password hashing: argon2id with OWASP's recommended minimum (19 MiB,
//! 2 passes, 1 lane: argon2's defaults) on `HASH_CONCURRENCY` dedicated
//! threads fed by a queue of at most `HASH_QUEUE_LEN` waiting hashes.
//!
//! - The threads bound how many hashes run at once, so a login storm queues
//!   here instead of taking every core from other requests.
//! - The queue is bounded: when it is full, the caller gets
//!   [`ApiError::HashingSaturated`] (503 with `Retry-After`) at once rather
//!   than waiting behind a flood.
//! - Each thread owns one 19 MiB block buffer, allocated on its first hash
//!   and reused for every later one. Hashing memory is therefore at most
//!   `HASH_CONCURRENCY` × 19 MiB for the life of the process. (Allocating it
//!   per hash on tokio's blocking pool, as argon2's own `hash_password`
//!   does, left one 19 MiB block in each of the many threads' malloc arenas:
//!   resident memory grew by hundreds of MiB after bursts and never shrank.)
//! - Verification hashes the password with the stored hash's salt and
//!   parameters into the same buffer and compares in constant time.
//! - How long each hash waited for a thread is the histogram
//!   `password_hash_queue_wait_seconds`: a queue that keeps growing shows
//!   there before logins start answering 503.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::password_hash::try_generate_salt;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::oneshot;

use crate::error::ApiError;

/// What a client is told to wait when the queue is full: a queue drains in
/// well under a second at the default settings.
const RETRY_AFTER_SECS: u64 = 1;

/// Work for a hashing thread, given that thread's block buffer.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// Hashes and verifies passwords off the async runtime.
#[derive(Clone)]
pub struct Passwords {
    /// The bounded queue in front of the hashing threads; they exit once
    /// every clone of this sender is gone.
    queue: SyncSender<Job>,
    /// A hash of no password (random salt, random output, our parameters),
    /// verified against when the email is unknown, so that case takes as
    /// long as a wrong password.
    dummy_hash: Arc<str>,
}

impl Passwords {
    /// Starts `concurrency` hashing threads behind a queue of `queue_len`.
    pub fn new(concurrency: usize, queue_len: usize) -> Self {
        let (queue, jobs) = mpsc::sync_channel::<Job>(queue_len);
        // One receiver shared by the threads: whichever is free takes the
        // next job.
        let jobs = Arc::new(Mutex::new(jobs));
        for slot in 0..concurrency.max(1) {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("hash-{slot}"))
                .spawn(move || run_slot(&jobs))
                .expect("BUG: cannot start a hashing thread");
        }
        Self {
            queue,
            dummy_hash: dummy_hash().into(),
        }
    }

    /// The PHC string of a new salted hash.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run(move |memory| hash_into(memory, password.as_bytes()))
            .await?
            .map_err(ApiError::Internal)
    }

    /// Whether `password` matches `hash`; with no hash (unknown email) it
    /// does the same work against a dummy and answers false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, ApiError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = self
            .run(
                move |memory| match verify_into(memory, password.as_bytes(), &hash) {
                    Ok(matches) => matches,
                    Err(err) => {
                        tracing::error!(error = %err, "a stored password hash cannot be verified");
                        false
                    }
                },
            )
            .await?;
        Ok(known && matches)
    }

    /// Queues `work` for a hashing thread, or refuses at once when the
    /// queue is full.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (reply, result) = oneshot::channel();
        let queued = Instant::now();
        let job: Job = Box::new(move |memory| {
            metrics::histogram!(crate::metrics::HASH_QUEUE_WAIT)
                .record(queued.elapsed().as_secs_f64());
            // The caller may have gone (client disconnected): nothing to do.
            let _ = reply.send(work(memory));
        });
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!(crate::metrics::HASHES_REFUSED).increment(1);
                return Err(ApiError::HashingSaturated(RETRY_AFTER_SECS));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(ApiError::Internal(anyhow::anyhow!(
                    "BUG: every hashing thread has stopped"
                )))
            }
        }
        result
            .await
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("BUG: a hashing thread panicked")))
    }
}

/// One hashing thread: takes jobs until the queue is dropped, always with
/// the same buffer.
fn run_slot(jobs: &Mutex<Receiver<Job>>) {
    let mut memory = Vec::new();
    loop {
        let job = {
            let jobs = jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        metrics::gauge!(crate::metrics::HASHES_RUNNING).increment(1.0);
        job(&mut memory);
        metrics::gauge!(crate::metrics::HASHES_RUNNING).decrement(1.0);
    }
}

/// `memory` grown to `blocks` (once per thread at our parameters).
fn blocks(memory: &mut Vec<Block>, blocks: usize) -> &mut [Block] {
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
    &mut memory[..blocks]
}

/// A new argon2id hash of `password` at the default parameters.
fn hash_into(memory: &mut Vec<Block>, password: &[u8]) -> anyhow::Result<String> {
    let params = Params::default();
    let salt = try_generate_salt().map_err(|err| anyhow::anyhow!("no random salt: {err}"))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            password,
            &salt,
            &mut out,
            blocks(memory, params.block_count()),
        )
        .map_err(|err| anyhow::anyhow!("hashing failed: {err}"))?;
    phc_string(&params, &salt, &out)
}

fn phc_string(params: &Params, salt: &[u8], out: &[u8]) -> anyhow::Result<String> {
    let invalid = |err: argon2::password_hash::phc::Error| anyhow::anyhow!("PHC string: {err}");
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|err| anyhow::anyhow!("{err}"))?,
        salt: Some(Salt::new(salt).map_err(invalid)?),
        hash: Some(Output::new(out).map_err(invalid)?),
    }
    .to_string())
}

/// Whether `password` hashes to the stored PHC string `hash`, recomputed
/// with its algorithm, version, parameters and salt.
fn verify_into(memory: &mut Vec<Block>, password: &[u8], hash: &str) -> anyhow::Result<bool> {
    let fail = |err: &dyn std::fmt::Display| anyhow::anyhow!("{err}");
    let parsed = PasswordHash::new(hash).map_err(|e| fail(&e))?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).map_err(|e| fail(&e))?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|e| fail(&e))?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(|e| fail(&e))?;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        anyhow::bail!("the hash has no salt or no output");
    };
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let ours = Params::default().block_count();
    if params.block_count() <= ours {
        argon2.hash_password_into_with_memory(
            password,
            salt.as_ref(),
            &mut out,
            blocks(memory, params.block_count()),
        )
    } else {
        // A hash made with more memory than ours (none is, today): a
        // one-off buffer, so the thread's own stays at our size.
        argon2.hash_password_into(password, salt.as_ref(), &mut out)
    }
    .map_err(|e| fail(&e))?;
    // `Output`'s equality is constant-time.
    Ok(Output::new(&out).map_err(|e| fail(&e))? == *expected)
}

/// A PHC string with our parameters that no password matches.
fn dummy_hash() -> String {
    let random = || try_generate_salt().expect("BUG: the system has no random source");
    let (salt, out) = (random(), [random(), random()].concat());
    phc_string(&Params::default(), &salt, &out).expect("BUG: a valid PHC string")
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{PasswordHasher, PasswordVerifier};

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let passwords = Passwords::new(2, 8);
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

    #[tokio::test]
    async fn hashes_are_interchangeable_with_argon2s_own() {
        let passwords = Passwords::new(1, 8);
        let theirs = Argon2::default()
            .hash_password(b"correct horse")
            .unwrap()
            .to_string();
        let ours = passwords.hash("correct horse".into()).await.unwrap();

        assert!(passwords
            .verify("correct horse".into(), Some(theirs.clone()))
            .await
            .unwrap());
        assert!(!passwords
            .verify("correct hors".into(), Some(theirs))
            .await
            .unwrap());
        assert!(Argon2::default()
            .verify_password(b"correct horse", ours.as_str())
            .is_ok());
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let dummy = PasswordHash::new(&dummy_hash()).unwrap().to_string();
        assert!(
            dummy.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{dummy}"
        );
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let passwords = Passwords::new(1, 1);
        // One running, one waiting: the rest of a burst is refused.
        let burst: Vec<_> = (0..6)
            .map(|i| {
                let p = passwords.clone();
                tokio::spawn(async move { p.hash(format!("password {i}")).await })
            })
            .collect();
        let mut refused = 0;
        for job in burst {
            match job.await.unwrap() {
                Ok(_) => {}
                Err(ApiError::HashingSaturated(secs)) => {
                    assert!(secs > 0);
                    refused += 1;
                }
                Err(other) => panic!("{other}"),
            }
        }
        assert!(refused >= 1, "a burst of 6 fit in 1 slot + 1 queued");
    }
}
