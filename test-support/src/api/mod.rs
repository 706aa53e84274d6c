//! Real api-nodes against real PostgreSQL and Redis.
//!
//! Each [`TestApp`] gets a database of its own (created from
//! `TEST_DATABASE_URL`, migrated, dropped when the last handle goes) and a
//! Redis key namespace of its own on `TEST_REDIS_URL`, so tests run in
//! parallel without seeing each other. `scripts/test.sh` starts both
//! services and sets the variables.

pub mod proxy;
pub mod redis_server;
pub mod scrape;

use std::sync::Arc;
use std::time::Duration;

use api_node::app::Application;
use api_node::config::{Config, LoginLimit};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use shared::jwt::JwtKeys;
use shared::settings::Secret;
use tokio::sync::oneshot;
use uuid::Uuid;

/// The admin URL of the test PostgreSQL server.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .expect("TEST_DATABASE_URL is not set: run the tests with scripts/test.sh")
}

/// The test Redis server.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL")
        .expect("TEST_REDIS_URL is not set: run the tests with scripts/test.sh")
}

/// The test Redis Cluster (3 primaries + 3 replicas), as a
/// `redis+cluster://` URL of its seed nodes.
pub fn redis_cluster_url() -> String {
    std::env::var("TEST_REDIS_CLUSTER_URL")
        .expect("TEST_REDIS_CLUSTER_URL is not set: run the tests with scripts/test.sh")
}

/// A database of this test's own; dropped with the last handle.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> Arc<Self> {
        let name = format!("test_{}", Uuid::new_v4().simple());
        let (admin, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
            .await
            .expect("cannot reach the test PostgreSQL");
        tokio::spawn(conn);
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let url = replace_db(&admin_url(), &name);
        let pool = api_node::db::pool(&url, 1, Duration::from_secs(5)).unwrap();
        let mut client = pool.get().await.unwrap();
        api_node::db::migrate::run(&mut client).await.unwrap();
        Arc::new(Self { name, url })
    }

    /// A direct connection, for arranging and asserting on rows.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any runtime guarantee: use a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok((admin, conn)) =
                    tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

fn replace_db(url: &str, db: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .expect("TEST_DATABASE_URL ends in /<database>");
    format!("{base}/{db}")
}

/// Random, as every deployment's must be (placeholders and guessable
/// secrets are refused at start-up).
pub const JWT_SECRET: &str = "9c4e1f7a2d8b6053e7a1c9f4b2d6e8a0";

/// The settings a test node starts from.
pub fn test_config(db: &TestDb, namespace: &str) -> Config {
    Config {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        database_url: db.url.clone(),
        db_pool_size: 8,
        db_timeout: Duration::from_secs(2),
        redis_url: redis_url(),
        redis_namespace: namespace.to_owned(),
        redis_timeout: Duration::from_millis(250),
        redis_wait_replicas: 0,
        cache_ttl: Duration::from_secs(60),
        jwt: jwt_keys(),
        email_limit: LoginLimit {
            max_failures: 10,
            window: Duration::from_secs(900),
        },
        client_limit: LoginLimit {
            max_failures: 100,
            window: Duration::from_secs(60),
        },
        register_limit: LoginLimit {
            max_failures: 20,
            window: Duration::from_secs(3600),
        },
        trusted_proxies: vec![],
        hash_concurrency: 2,
        hash_queue_len: 64,
        max_connections: 1000,
        header_read_timeout: Duration::from_secs(5),
        body_read_timeout: Duration::from_secs(5),
        shutdown_grace: Duration::from_secs(5),
        relay_interval: Duration::from_millis(200),
        relay_grace: Duration::from_millis(500),
    }
}

pub fn jwt_keys() -> JwtKeys {
    JwtKeys::new(&Secret::new(JWT_SECRET.into()), "HS256", 3600).unwrap()
}

/// A running api-node.
pub struct TestApp {
    pub base: String,
    pub port: u16,
    pub db: Arc<TestDb>,
    pub config: Config,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the contract's error shape and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["statusCode"], status, "body: {}", self.body);
        assert_eq!(self.body["code"], code, "body: {}", self.body);
        assert!(
            self.body["error"].is_string() && self.body["message"].is_string(),
            "body: {}",
            self.body
        );
    }

    /// The fields named in a validation error's details.
    pub fn invalid_fields(&self) -> Vec<String> {
        self.assert_error(400, "VALIDATION_ERROR");
        self.body["details"]
            .as_array()
            .expect("validation errors carry details")
            .iter()
            .map(|d| d["field"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// A registered user's credentials.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
    pub token: String,
}

impl TestApp {
    /// A node with a fresh database and namespace.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// A node with a fresh database and namespace, settings adjusted.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::create().await;
        let mut config = test_config(&db, &format!("t{}", Uuid::new_v4().simple()));
        adjust(&mut config);
        Self::start(db, config).await
    }

    /// Another node sharing this one's database and Redis namespace.
    pub async fn spawn_peer(&self) -> Self {
        Self::start(self.db.clone(), self.config.clone()).await
    }

    /// Another node like this one, with settings adjusted.
    pub async fn spawn_peer_with(&self, adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = self.config.clone();
        adjust(&mut config);
        Self::start(self.db.clone(), config).await
    }

    pub async fn start(db: Arc<TestDb>, config: Config) -> Self {
        shared::telemetry::init("warn");
        let app = Application::build(config.clone())
            .await
            .expect("the node builds");
        let port = app.port();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Self {
            base: format!("http://127.0.0.1:{port}"),
            port,
            db,
            config,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the node as SIGTERM would, and waits for the drain.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request; `body` as JSON when given.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.http.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        Self::read(req).await
    }

    /// Sends a prepared request and reads the reply.
    pub async fn read(req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Registers a fresh user.
    pub async fn register(&self) -> TestUser {
        let email = format!("user-{}@example.com", Uuid::new_v4().simple());
        let password = "correct horse battery".to_owned();
        let reply = self
            .post(
                "/api/auth/register",
                None,
                json!({ "email": email, "password": password, "name": "Test User" }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        TestUser {
            id: reply.body["user"]["id"].as_str().unwrap().to_owned(),
            email,
            password,
            token: reply.body["token"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post(
            "/api/auth/login",
            None,
            json!({ "email": email, "password": password }),
        )
        .await
    }

    /// Creates a task and returns its JSON.
    pub async fn create_task(&self, user: &TestUser, body: Value) -> Value {
        let reply = self.post("/api/tasks", Some(&user.token), body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Polls `check` every 20 ms until it is true or `within` passes.
/// Reads until the peer closes the connection: what it sent, or `None`
/// if it was still open after 10 s.
pub async fn read_until_closed(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    closed.ok().map(|()| received)
}

pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Redis subscriber on a channel, collecting messages as JSON.
pub struct Subscriber {
    rx: tokio::sync::mpsc::UnboundedReceiver<Value>,
}

impl Subscriber {
    pub async fn start(redis_url: &str, channel: String) -> Self {
        use futures_util::StreamExt;
        let client = redis::Client::open(redis_url).unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.subscribe(&channel).await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            while let Some(msg) = messages.next().await {
                let payload: String = msg.get_payload().unwrap();
                if tx.send(serde_json::from_str(&payload).unwrap()).is_err() {
                    break;
                }
            }
        });
        Self { rx }
    }

    /// The next message within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Value> {
        tokio::time::timeout(within, self.rx.recv())
            .await
            .ok()
            .flatten()
    }
}
