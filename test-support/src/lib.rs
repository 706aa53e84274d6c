//! The harness of the integration tests, one crate for all of them: real
//! api-nodes and ws-nodes started in the test's process, on real
//! PostgreSQL and Redis (from `TEST_DATABASE_URL`, `TEST_REDIS_URL` and
//! `TEST_REDIS_CLUSTER_URL`, which `scripts/test.sh` sets), Redis servers and
//! TCP proxies a test can kill or cut, and a real nginx in front.
//!
//! - [`api`]: api-nodes ([`api::TestApp`]), HTTP calls, users, tokens;
//!   [`api::proxy`], [`api::redis_server`], [`api::scrape`] (Prometheus text).
//! - [`ws`]: ws-nodes ([`ws::WsNode`]) and WebSocket clients; [`ws::nginx`].
//!
//! A test file names the part it uses as `common`
//! (`use test_support::api as common;`), so its calls read the same
//! whichever crate it tests.

pub mod api;
pub mod ws;

use std::process::Child;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A port free on 127.0.0.1 now, for a server the test starts itself (the
/// operating system picks it; a test binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port on 127.0.0.1")
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}

/// Waits until the server `child` listens on `port`: `request` sent there
/// is answered with bytes that contain `expect`. A bare connect would not
/// do: the port is only free when [`free_port`] looked, so another process
/// may hold it (and our server exit on a failed bind), and a connect to a
/// port nobody listens on can even meet itself (TCP simultaneous open).
/// Gives `false` as soon as the child has exited, or after about 10 s.
pub async fn wait_until_serving(
    child: &mut Child,
    port: u16,
    request: &[u8],
    expect: &[u8],
) -> bool {
    for _ in 0..500 {
        if !matches!(child.try_wait(), Ok(None)) {
            return false;
        }
        if answers(port, request, expect).await && matches!(child.try_wait(), Ok(None)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// One short exchange on 127.0.0.1:`port`, bounded to 700 ms.
async fn answers(port: u16, request: &[u8], expect: &[u8]) -> bool {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(request).await?;
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while got.len() < 4096 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got.windows(expect.len()).any(|w| w == expect) {
                return Ok(true);
            }
        }
        Ok::<_, std::io::Error>(false)
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(700), exchange).await,
        Ok(Ok(true))
    )
}
