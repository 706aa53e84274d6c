//! How long one password hash takes here, with the api-node's parameters
//! (argon2id, argon2's defaults: 19 MiB, 2 passes, 1 lane). The login
//! storm's limit is cores ÷ this time.
//!
//! `hash_time [N] [THREADS]`: the median of N (default 20) hashes in
//! milliseconds, one at a time; with THREADS > 1, also the hashes per second
//! THREADS threads reach together (which shows how well hashing scales
//! across this machine's cores: argon2 is memory-bound).

use std::time::Instant;

use argon2::password_hash::PasswordHasher;
use argon2::Argon2;

fn hash_once() -> f64 {
    let started = Instant::now();
    let _ = Argon2::default().hash_password(b"load-test-password");
    started.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .max(1);
    let threads: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let mut times: Vec<f64> = (0..n).map(|_| hash_once()).collect();
    times.sort_by(f64::total_cmp);
    println!("{:.2}", times[times.len() / 2]);
    if threads > 1 {
        let started = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    (0..n).for_each(|_| {
                        hash_once();
                    })
                });
            }
        });
        let per_sec = (n * threads) as f64 / started.elapsed().as_secs_f64();
        println!("parallel {threads} threads: {per_sec:.1} hashes/s");
    }
}
