//! Child processes the suite owns (the nodes and Redis): started with a
//! clean environment in the state directory (so no `.env` of the checkout
//! is read), logged to `logs/<name>.log`, their pid written to
//! `pids/<name>.pid` so the runner can stop them even if the suite itself
//! is killed. Signals go through `kill(1)`: the workspace forbids `unsafe`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// One child process, restartable with the same command line.
pub struct Proc {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    dir: PathBuf,
    /// The running child; `None` once it was killed or reaped.
    child: Option<Child>,
    starts: u32,
}

impl Proc {
    /// A process that runs `program args` with exactly `env`, in `dir`.
    pub fn new(
        name: &str,
        program: &Path,
        args: &[&str],
        env: Vec<(String, String)>,
        dir: &Path,
    ) -> Self {
        Self {
            name: name.to_owned(),
            program: program.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env,
            dir: dir.to_owned(),
            child: None,
            starts: 0,
        }
    }

    /// Its name (`api-node-1`, `redis`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("pids").join(format!("{}.pid", self.name))
    }

    /// The log file every start of this process appends to.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("logs").join(format!("{}.log", self.name))
    }

    /// Starts it (again).
    pub fn start(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("BUG: {} started twice", self.name);
        }
        fs::create_dir_all(self.dir.join("pids"))?;
        fs::create_dir_all(self.dir.join("logs"))?;
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file())?;
        writeln!(
            log,
            "===== chaos: start #{} of {} at {} =====",
            self.starts,
            self.name,
            chrono::Utc::now().format("%H:%M:%S%.3f")
        )?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {} ({})", self.name, self.program.display()))?;
        File::create(self.pid_file())?.write_all(format!("{}\n", child.id()).as_bytes())?;
        self.child = Some(child);
        Ok(())
    }

    /// Its pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`, ...).
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let Some(pid) = self.pid() else {
            bail!("{} is not running; cannot send SIG{signal}", self.name);
        };
        let status = Command::new("kill")
            .args(["-s", signal, &pid.to_string()])
            .status()
            .context("running kill(1)")?;
        if !status.success() {
            bail!("kill -s {signal} {pid} ({}) failed", self.name);
        }
        Ok(())
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            bail!("{} is not running; cannot kill it", self.name);
        };
        child.kill()?;
        child.wait()?;
        let _ = fs::remove_file(self.pid_file());
        Ok(())
    }

    /// Whether it has exited (reaping it if so).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        let _ = fs::remove_file(self.pid_file());
        Some(status)
    }

    /// Whether it runs (and has not exited).
    pub fn running(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none()
    }

    /// Waits up to `within` for it to exit on its own (after SIGTERM).
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

impl Drop for Proc {
    /// Nothing the suite started outlives it: a stopped process is woken
    /// (harmless) and every one is killed and reaped.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-s", "CONT", &child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
            let _ = fs::remove_file(self.pid_file());
        }
    }
}
