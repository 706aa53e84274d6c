//! `soak`: steady REST traffic and resuming WebSocket subscribers, for as
//! long as something disruptive (a rolling restart) runs beside it. Counts
//! what a retry-free client would see: failed requests, and events lost,
//! duplicated or out of order after every reconnect-and-resume.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::args::Args;
use crate::client::{self, User};

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    failures: AtomicU64,
    reconnects: AtomicU64,
    /// Why subscribers reconnected: close codes and connect failures.
    reasons: Mutex<HashMap<String, u64>>,
}

impl Counts {
    fn reason(&self, why: String) {
        *self
            .reasons
            .lock()
            .expect("not poisoned")
            .entry(why)
            .or_default() += 1;
    }
}

/// One subscriber's view: every seq it was sent, in order.
type Seen = Arc<Mutex<Vec<i64>>>;

/// How long the subscribers may take to be subscribed before traffic starts.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Keeps one subscription alive until `stop`, resuming with `since` after
/// every close. Sends on `subscribed` once, at its first `SUBSCRIBED`.
async fn subscriber(
    ws_url: String,
    token: String,
    seen: Seen,
    counts: Arc<Counts>,
    subscribed: mpsc::UnboundedSender<()>,
    mut stop: watch::Receiver<bool>,
) {
    let mut subscribed = Some(subscribed);
    let mut first = true;
    while !*stop.borrow() {
        if !first {
            counts.reconnects.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        first = false;
        let Ok(request) = format!("{ws_url}?token={token}").into_client_request() else {
            return;
        };
        let connecting = tokio_tungstenite::connect_async(request);
        let mut ws = match tokio::time::timeout(Duration::from_secs(5), connecting).await {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
                counts.reason(format!("upgrade refused: {}", response.status()));
                continue;
            }
            Ok(Err(err)) => {
                counts.reason(format!("connect failed: {err}"));
                continue;
            }
            Err(_) => {
                counts.reason("connect timed out".into());
                continue;
            }
        };
        let since = seen.lock().expect("not poisoned").last().copied();
        let subscribe = match since {
            Some(since) => json!({ "type": "SUBSCRIBE_TASKS", "since": since }),
            None => json!({ "type": "SUBSCRIBE_TASKS" }),
        };
        if let Err(err) = ws.send(Message::Text(subscribe.to_string().into())).await {
            counts.reason(format!("subscribe failed: {err}"));
            continue;
        }
        loop {
            tokio::select! {
                message = ws.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        let Ok(value) = serde_json::from_str::<Value>(&text) else { continue };
                        let kind = value["type"].as_str().unwrap_or("");
                        if kind == "SUBSCRIBED" {
                            if let Some(subscribed) = subscribed.take() {
                                let _ = subscribed.send(());
                            }
                        }
                        if kind.starts_with("TASK_") {
                            if let Some(seq) = value["seq"].as_i64() {
                                seen.lock().expect("not poisoned").push(seq);
                            }
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        counts.reason(format!("closed with {:?}", frame.map(|f| u16::from(f.code))));
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(err)) => {
                        counts.reason(format!("read failed: {err}"));
                        break;
                    }
                    None => {
                        counts.reason("closed without a close frame".into());
                        break;
                    }
                },
                _ = stop.changed() => return,
            }
        }
    }
}

/// REST traffic and subscribers for `--secs`, then the tally.
pub async fn soak(args: &Args) -> anyhow::Result<bool> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let api = args.api();
    let secs = args.number("secs", 30).min(1800);
    let rate = args.number("rate", 20).clamp(1, 1000);
    let conns = args.number("conns", 20) as usize;
    let mut users: Vec<User> = Vec::new();
    for _ in 0..args.number("users", 5).max(1) {
        users.push(client::register(&http, &api).await?);
    }

    let counts = Arc::new(Counts::default());
    let (stop, stopped) = watch::channel(false);
    let mut subscribers = JoinSet::new();
    let mut views: Vec<(usize, Seen)> = Vec::new();
    let (subscribed, mut subscriptions) = mpsc::unbounded_channel();
    for n in 0..conns {
        let seen: Seen = Arc::default();
        views.push((n % users.len(), seen.clone()));
        subscribers.spawn(subscriber(
            args.ws(),
            users[n % users.len()].token.clone(),
            seen,
            counts.clone(),
            subscribed.clone(),
            stopped.clone(),
        ));
    }
    drop(subscribed);
    // Writing before every subscriber is subscribed would count the events
    // it was never meant to see as lost: wait for each one's SUBSCRIBED.
    let mut ready = 0;
    let deadline = tokio::time::Instant::now() + SUBSCRIBE_TIMEOUT;
    while ready < conns {
        match tokio::time::timeout_at(deadline, subscriptions.recv()).await {
            Ok(Some(())) => ready += 1,
            Ok(None) | Err(_) => break,
        }
    }
    if ready < conns {
        let _ = stop.send(true);
        while subscribers.join_next().await.is_some() {}
        anyhow::bail!(
            "only {ready} of {conns} subscribers were subscribed within {}s",
            SUBSCRIBE_TIMEOUT.as_secs()
        );
    }

    // What a script waits for before it disturbs the cluster.
    eprintln!("soak: {conns} subscribers subscribed; writing");

    // Each operation: create, read, update, and every third one delete;
    // each committed write is one event for its user.
    let events: Arc<Mutex<HashMap<usize, i64>>> = Arc::default();
    let mut operations = JoinSet::new();
    let started = Instant::now();
    let total = rate * secs;
    for n in 0..total {
        tokio::time::sleep_until(
            (started + Duration::from_secs_f64(n as f64 / rate as f64)).into(),
        )
        .await;
        let (http, api, counts, events) =
            (http.clone(), api.clone(), counts.clone(), events.clone());
        let (u, token) = (
            (n as usize) % users.len(),
            users[(n as usize) % users.len()].token.clone(),
        );
        operations.spawn(async move {
            let call = |req: reqwest::RequestBuilder| {
                let counts = counts.clone();
                async move {
                    counts.requests.fetch_add(1, Ordering::Relaxed);
                    match req.send().await {
                        Ok(resp) if resp.status().is_success() => {
                            resp.json::<Value>().await.ok().or(Some(Value::Null))
                        }
                        Ok(resp) => {
                            eprintln!("soak: {} {}", resp.status(), resp.url());
                            counts.failures.fetch_add(1, Ordering::Relaxed);
                            None
                        }
                        Err(err) => {
                            eprintln!("soak: {err}");
                            counts.failures.fetch_add(1, Ordering::Relaxed);
                            None
                        }
                    }
                }
            };
            let committed =
                |k: i64| *events.lock().expect("not poisoned").entry(u).or_default() += k;
            let Some(task) = call(
                http.post(format!("{api}/api/tasks"))
                    .bearer_auth(&token)
                    .json(&json!({ "title": format!("soak {n}") })),
            )
            .await
            else {
                return;
            };
            committed(1);
            let id = task["id"].as_str().unwrap_or_default().to_owned();
            call(
                http.get(format!("{api}/api/tasks/{id}"))
                    .bearer_auth(&token),
            )
            .await;
            if call(
                http.put(format!("{api}/api/tasks/{id}"))
                    .bearer_auth(&token)
                    .json(&json!({ "status": "DONE" })),
            )
            .await
            .is_some()
            {
                committed(1);
            }
            if n % 3 == 0
                && call(
                    http.delete(format!("{api}/api/tasks/{id}"))
                        .bearer_auth(&token),
                )
                .await
                .is_some()
            {
                committed(1);
            }
        });
    }
    while operations.join_next().await.is_some() {}
    let elapsed = started.elapsed();

    // Give the subscribers time to catch up, then compare.
    let events = events.lock().expect("not poisoned").clone();
    let caught_up = || {
        views.iter().all(|(u, seen)| {
            seen.lock().expect("not poisoned").last().copied()
                == Some(events.get(u).copied().unwrap_or(0))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !caught_up() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    while subscribers.join_next().await.is_some() {}

    let (mut expected, mut received, mut lost, mut duplicated, mut out_of_order) =
        (0i64, 0i64, 0i64, 0i64, 0i64);
    for (u, seen) in &views {
        let seen = seen.lock().expect("not poisoned");
        let want = events.get(u).copied().unwrap_or(0);
        expected += want;
        received += seen.len() as i64;
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        sorted.dedup();
        duplicated += seen.len() as i64 - sorted.len() as i64;
        lost += (1..=want)
            .filter(|s| sorted.binary_search(s).is_err())
            .count() as i64;
        out_of_order += seen.windows(2).filter(|w| w[1] < w[0]).count() as i64;
    }
    let requests = counts.requests.load(Ordering::Relaxed);
    let failures = counts.failures.load(Ordering::Relaxed);
    let reconnects = counts.reconnects.load(Ordering::Relaxed);
    println!(
        "soak: {requests} requests in {:.1}s, {failures} failed; {conns} subscribers, {reconnects} reconnects; events expected {expected}, received {received}, lost {lost}, duplicated {duplicated}, out of order {out_of_order}",
        elapsed.as_secs_f64()
    );
    let reasons = counts.reasons.lock().expect("not poisoned").clone();
    if !reasons.is_empty() {
        println!("soak: reconnect reasons: {reasons:?}");
    }
    println!(
        "RESULT {}",
        json!({ "scenario": "soak", "requests": requests, "failures": failures, "subscribers": conns, "reconnects": reconnects,
                "events_expected": expected, "events_received": received, "lost": lost, "duplicated": duplicated, "out_of_order": out_of_order })
    );
    Ok(failures == 0 && lost == 0 && duplicated == 0 && out_of_order == 0)
}
