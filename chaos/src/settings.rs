//! What the runner (`scripts/chaos.sh`) tells the suite, all through the
//! environment, so the binary itself never guesses where anything is.

use std::path::PathBuf;

use anyhow::{bail, Context};

/// Every setting of a run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `CHAOS_API_NODE_BIN`: the api-node binary to run (and migrate with).
    pub api_node_bin: PathBuf,
    /// `CHAOS_WS_NODE_BIN`: the ws-node binary.
    pub ws_node_bin: PathBuf,
    /// `CHAOS_REDIS_SERVER`: redis-server (default: found on `PATH`).
    pub redis_server: PathBuf,
    /// `DATABASE_URL`: the throwaway PostgreSQL the runner started.
    pub database_url: String,
    /// `CHAOS_PG_STOP`: a `bash -c` command that stops that PostgreSQL (fast).
    pub pg_stop: String,
    /// `CHAOS_PG_START`: a `bash -c` command that starts it again and waits.
    pub pg_start: String,
    /// `CHAOS_DIR`: where logs, pid files and Redis's directory go.
    pub state_dir: PathBuf,
    /// `CHAOS_FAULTS_MD`: where a full run writes its matrix (optional).
    pub faults_md: Option<PathBuf>,
    /// `CHAOS_ONLY`: run only these faults (`a`..`i`, comma-separated); the
    /// matrix is then not written, since it would not be a full run.
    pub only: Option<Vec<char>>,
    /// `CHAOS_REPO`: the checkout, to name the commit in the report.
    pub repo: Option<PathBuf>,
    /// `CHAOS_USERS` (20): users, each with two sockets.
    pub users: usize,
    /// `CHAOS_RATE` (40): task writes per second, over all users.
    pub rate: u32,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn required(name: &str) -> anyhow::Result<String> {
    var(name).with_context(|| format!("{name} is not set (scripts/chaos.sh sets it)"))
}

impl Settings {
    /// Reads the settings; fails naming the first one missing or invalid.
    pub fn from_env() -> anyhow::Result<Self> {
        let only = match var("CHAOS_ONLY") {
            None => None,
            Some(list) => {
                let keys: Vec<char> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(|k| k.chars().next().unwrap_or(' ').to_ascii_lowercase())
                    .collect();
                if let Some(bad) = keys.iter().find(|k| !('a'..='i').contains(*k)) {
                    bail!("CHAOS_ONLY: {bad:?} is not a fault (a to i)");
                }
                Some(keys)
            }
        };
        let number = |name: &str, default: u64, max: u64| -> anyhow::Result<u64> {
            match var(name) {
                None => Ok(default),
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if (1..=max).contains(&n) => Ok(n),
                    _ => bail!("{name} must be a number from 1 to {max}"),
                },
            }
        };
        Ok(Self {
            api_node_bin: required("CHAOS_API_NODE_BIN")?.into(),
            ws_node_bin: required("CHAOS_WS_NODE_BIN")?.into(),
            redis_server: var("CHAOS_REDIS_SERVER")
                .unwrap_or_else(|| "redis-server".into())
                .into(),
            database_url: required("DATABASE_URL")?,
            pg_stop: required("CHAOS_PG_STOP")?,
            pg_start: required("CHAOS_PG_START")?,
            state_dir: required("CHAOS_DIR")?.into(),
            faults_md: var("CHAOS_FAULTS_MD").map(PathBuf::from),
            only,
            repo: var("CHAOS_REPO").map(PathBuf::from),
            users: number("CHAOS_USERS", 20, 200)? as usize,
            rate: number("CHAOS_RATE", 40, 400)? as u32,
        })
    }

    /// Whether fault `key` is part of this run.
    pub fn runs(&self, key: char) -> bool {
        self.only.as_ref().is_none_or(|only| only.contains(&key))
    }
}
