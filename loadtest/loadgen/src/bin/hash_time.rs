//! How long one password hash takes here, with the api-node's parameters
//! (argon2id, argon2's defaults: 19 MiB, 2 passes, 1 lane): the login
//! storm's limit is cores ÷ this time. Prints the median of `N` (default 20)
//! hashes in milliseconds.

use std::time::Instant;

use argon2::password_hash::PasswordHasher;
use argon2::Argon2;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut times: Vec<f64> = (0..n.max(1))
        .map(|_| {
            let started = Instant::now();
            let _ = Argon2::default().hash_password(b"load-test-password");
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!("{:.2}", times[times.len() / 2]);
}
