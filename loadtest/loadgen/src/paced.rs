//! `paced-get`: GETs at a fixed rate (open loop, like a real population of
//! clients, unlike wrk's closed loop), reporting their latency. The bench
//! runs it beside the login storm: a light, steady read load whose p99
//! shows whether the storm starves other requests.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinSet;

use crate::args::Args;

pub async fn paced_get(args: &Args) -> anyhow::Result<bool> {
    let url = args.string("url", "");
    let token = args.string("token", "");
    let rate = args.number("rate", 200).clamp(1, 10_000);
    let secs = args.number("secs", 10).min(600);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(10))
        .build()?;
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut requests = JoinSet::new();
    let started = Instant::now();
    for n in 0..rate * secs {
        tokio::time::sleep_until(
            (started + Duration::from_secs_f64(n as f64 / rate as f64)).into(),
        )
        .await;
        let (http, url, token, latencies, failures) = (
            http.clone(),
            url.clone(),
            token.clone(),
            latencies.clone(),
            failures.clone(),
        );
        requests.spawn(async move {
            let sent = Instant::now();
            let ok = matches!(http.get(&url).bearer_auth(&token).send().await, Ok(r) if r.status().is_success());
            let took = sent.elapsed().as_secs_f64() * 1000.0;
            if ok {
                latencies.lock().expect("not poisoned").push(took);
            } else {
                failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
    while requests.join_next().await.is_some() {}
    let mut sorted = latencies.lock().expect("not poisoned").clone();
    sorted.sort_by(f64::total_cmp);
    let pick = |p: f64| {
        sorted
            .get(((sorted.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let failed = failures.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "paced-get: {} ok, {failed} failed at {rate}/s; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        sorted.len(),
        pick(0.5),
        pick(0.99),
        sorted.last().copied().unwrap_or(0.0)
    );
    println!(
        "RESULT {}",
        json!({ "scenario": "paced_get", "rate": rate, "ok": sorted.len(), "failed": failed,
                "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": sorted.last().copied().unwrap_or(0.0) })
    );
    Ok(failed == 0)
}
