//! `ws-node`: serves WebSockets until SIGTERM.

use std::process::ExitCode;

use ws_node::app::Application;
use ws_node::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    shared::telemetry::init("info");
    let result = async {
        let app = Application::build(Config::from_env()?).await?;
        app.run_until_stopped(shared::shutdown::signal()).await
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "ws-node failed");
            ExitCode::FAILURE
        }
    }
}
