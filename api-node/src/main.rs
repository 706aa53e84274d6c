//! `api-node [serve]`, `api-node migrate`, `api-node seed`.

use std::process::ExitCode;

use api_node::app::Application;
use api_node::config::Config;
use api_node::{db, seed};

/// mimalloc: a cached read allocates a few small buffers per request, and
/// glibc's malloc and free were ~17% of the node's user time (see
/// loadtest/NOTES.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    shared::telemetry::init("info");
    let command = std::env::args().nth(1);
    let result = match command.as_deref() {
        None | Some("serve") => serve().await,
        Some("migrate") => migrate().await,
        Some("seed") => seed().await,
        Some(other) => {
            eprintln!("unknown command {other:?}; usage: api-node [serve|migrate|seed]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "api-node failed");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let app = Application::build(Config::from_env()?).await?;
    app.run_until_stopped(shared::shutdown::signal()).await
}

async fn migrate() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let pool = db::pool(&config.database_url, 1, config.db_timeout)?;
    let mut client = pool.get().await?;
    let applied = db::migrate::run(&mut client).await?;
    tracing::info!(?applied, "migrations up to date");
    Ok(())
}

async fn seed() -> anyhow::Result<()> {
    seed::run(&Config::from_env()?).await?;
    // The password is in the README, never in a log line.
    tracing::info!(login = seed::DEMO_USERS[0].0, "demo data loaded");
    Ok(())
}
