//! What every connection of the node can reach.

use std::sync::Arc;

use deadpool_postgres::Pool;
use metrics_exporter_prometheus::PrometheusHandle;
use shared::redis_conn::RedisConn;
use shared::revocation::Revocations;

use crate::config::Config;
use crate::history::History;
use crate::hub::Hub;
use crate::user_sockets::UserSockets;

/// Shared by the HTTP front and every session.
pub struct NodeState {
    /// Settings.
    pub config: Config,
    /// Connections by user.
    pub hub: Arc<Hub>,
    /// Each user's sockets against `WS_MAX_SOCKETS_PER_USER`.
    pub user_sockets: Arc<UserSockets>,
    /// Past events and latest seqs.
    pub history: History,
    /// Revoked token ids, kept current in the background.
    pub revocations: Arc<Revocations>,
    /// For `/readyz`.
    pub pool: Pool,
    /// For `/readyz`.
    pub redis: RedisConn,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
}
