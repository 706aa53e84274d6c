//! `tcp-floor`: the floor for one event to many sockets on this machine.
//! One process holds both ends of N loopback TCP connections; a single task
//! writes the same 400 bytes to every server side in a tight loop (no
//! WebSocket framing, no per-connection task, no fan-out bookkeeping), and
//! each client side records when the bytes arrive. Three rounds; it
//! reports how long until the last socket has them, which is what the
//! kernel's loopback path and the scheduler cost at least.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

use crate::args::Args;
use crate::client;

const MESSAGE: [u8; 400] = [b'x'; 400];

pub async fn tcp_floor(args: &Args) -> anyhow::Result<bool> {
    let conns = args.number("conns", 10_000) as usize;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let accepting = tokio::spawn(async move {
        let mut servers = Vec::with_capacity(conns);
        while servers.len() < conns {
            servers.push(listener.accept().await?.0);
        }
        Ok::<_, std::io::Error>(servers)
    });
    // Clients: each waits for one message per round and notes when.
    let (round_tx, round_rx) = watch::channel(Instant::now());
    let arrivals: Arc<Mutex<Vec<f64>>> = Arc::default();
    let mut readers = Vec::with_capacity(conns);
    for n in 0..conns {
        let socket = TcpSocket::new_v4()?;
        socket.bind((client::source(n), 0).into())?;
        let mut stream = socket.connect(addr).await?;
        let (round_rx, arrivals) = (round_rx.clone(), arrivals.clone());
        readers.push(tokio::spawn(async move {
            let mut buf = [0u8; 400];
            for _ in 0..3 {
                if stream.read_exact(&mut buf).await.is_err() {
                    return;
                }
                let sent = *round_rx.borrow();
                arrivals
                    .lock()
                    .expect("not poisoned")
                    .push(sent.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    let mut servers = accepting.await??;
    let mut last_ms = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        arrivals.lock().expect("not poisoned").clear();
        let _ = round_tx.send(Instant::now());
        for server in &mut servers {
            server.write_all(&MESSAGE).await?;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while arrivals.lock().expect("not poisoned").len() < conns && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut round = arrivals.lock().expect("not poisoned").clone();
        round.sort_by(f64::total_cmp);
        last_ms.push(round.last().copied().unwrap_or(f64::NAN));
    }
    for reader in readers {
        let _ = reader.await;
    }
    last_ms.sort_by(f64::total_cmp);
    let median = last_ms[1];
    println!("tcp-floor: {conns} loopback sockets, one 400-byte write each: the last arrives after {median:.1} ms (median of 3 rounds: {last_ms:?})");
    println!(
        "RESULT {}",
        json!({ "scenario": "tcp_floor", "connections": conns, "last_arrival_ms": median })
    );
    Ok(true)
}
