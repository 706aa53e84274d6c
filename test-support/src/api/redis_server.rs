//! A Redis server of one test's own, to stop and restart without touching
//! the Redis other tests share.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, wait_until_serving};

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts on a port free when it looks, on another one if a process
    /// took that port before the server could bind it.
    pub async fn start() -> Self {
        for _ in 0..5 {
            let mut server = Self {
                port: free_port(),
                child: None,
            };
            if server.spawn().await {
                return server;
            }
        }
        panic!("redis-server did not start on any of 5 free ports (set REDIS_SERVER_BIN)");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts again on the same port (after [`Self::stop`]), and waits until
    /// it answers; retries while the port is still held (a client's socket
    /// of the old server may linger on it for a moment).
    pub async fn restart(&mut self) {
        for _ in 0..50 {
            if self.spawn().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("redis-server did not start again on port {}", self.port);
    }

    /// Spawns the server and waits until it is the one answering PING on
    /// the port; false (and no child) if it exited, e.g. on a failed bind.
    async fn spawn(&mut self) -> bool {
        let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
        let mut child = Command::new(bin)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (set REDIS_SERVER_BIN)");
        if wait_until_serving(&mut child, self.port, b"PING\r\n", b"+PONG\r\n").await {
            self.child = Some(child);
            return true;
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Freezes the server (SIGSTOP): its connections stay open and nothing
    /// on them is answered, as with a hung host.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Lets a frozen server run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let child = self.child.as_ref().expect("the server is running");
        let status = Command::new("kill")
            .args([format!("-{name}"), child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Kills the server (as a crash would) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
