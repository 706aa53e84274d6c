//! A real nginx in front of a test's nodes, started from the deployment's
//! own config template (deploy/nginx/nginx.conf).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Nginx {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

/// Renders the template for these upstream ports into `dir/nginx.conf`,
/// through the container's entrypoint (deploy/docker/nginx-entrypoint.sh,
/// the template's one renderer), and gives the text.
pub fn render(listen: &str, api_ports: &[u16], ws_ports: &[u16], dir: &Path) -> String {
    let servers = |ports: &[u16]| {
        ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let rendered = Command::new("sh")
        .arg(repo.join("deploy/docker/nginx-entrypoint.sh"))
        .arg("--render-only")
        .env("API_SERVERS", servers(api_ports))
        .env("WS_SERVERS", servers(ws_ports))
        .env("LISTEN", listen)
        .env("RUNTIME_DIR", dir)
        .env("NGINX_TEMPLATE", repo.join("deploy/nginx/nginx.conf"))
        .env("NGINX_LOG_FILES", "1")
        // No board: these tests are about the API and the sockets.
        .env("BOARD_DIR", dir.join("no-board"))
        .status()
        .expect("sh runs the nginx entrypoint");
    assert!(
        rendered.success(),
        "the nginx entrypoint rendered the template"
    );
    std::fs::read_to_string(dir.join("nginx.conf")).unwrap()
}

impl Nginx {
    pub async fn start(api_ports: &[u16], ws_ports: &[u16]) -> Self {
        Self::start_with(api_ports, ws_ports, |conf| conf).await
    }

    /// Starts from the rendered config as `adjust` changes it (a test that
    /// lowers a limit to reach it).
    pub async fn start_with(
        api_ports: &[u16],
        ws_ports: &[u16],
        adjust: impl Fn(String) -> String,
    ) -> Self {
        // A port free when we look may be taken before nginx binds it:
        // then nginx exits, and we try again on another.
        for _ in 0..5 {
            let port = crate::free_port();
            let dir =
                std::env::temp_dir().join(format!("nginx-test-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).unwrap();
            let conf = adjust(render(
                &format!("127.0.0.1:{port}"),
                api_ports,
                ws_ports,
                &dir,
            ));
            let conf_path = dir.join("nginx.conf");
            std::fs::write(&conf_path, conf).unwrap();
            let bin = std::env::var("NGINX_BIN").unwrap_or_else(|_| "/usr/sbin/nginx".into());
            let mut child = Command::new(bin)
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(&conf_path)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("nginx starts (apt-get install nginx, or set NGINX_BIN)");
            // /metrics is answered by nginx itself (404), never upstream.
            let probe = b"GET /metrics HTTP/1.0\r\nHost: probe\r\n\r\n";
            if crate::wait_until_serving(&mut child, port, probe, b"Server: nginx").await {
                return Self { port, dir, child };
            }
            let _ = child.kill();
            let _ = child.wait();
            eprintln!(
                "nginx did not start on port {port}; see {}",
                dir.join("error.log").display()
            );
        }
        panic!("nginx did not start on any of 5 free ports");
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything in nginx's log files so far (the access log is buffered
    /// for up to a second).
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(&self.dir).unwrap().flatten() {
            if entry.path().extension().is_some_and(|e| e == "log") {
                all += &std::fs::read_to_string(entry.path()).unwrap_or_default();
            }
        }
        all
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // `nginx -s stop` signals the master, which stops its workers; a
        // SIGKILL to the master alone would leave the workers running.
        let bin = std::env::var("NGINX_BIN").unwrap_or_else(|_| "/usr/sbin/nginx".into());
        let conf = self.dir.join("nginx.conf");
        let stopped = Command::new(bin)
            .arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(&conf)
            .args(["-s", "stop"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
