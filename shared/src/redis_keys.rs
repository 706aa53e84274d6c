//! The one place that names Redis keys and channels. Every name starts with a
//! namespace (`REDIS_NAMESPACE`, default `tasks`) so that several deployments,
//! or parallel test runs, can share one Redis without seeing each other.

use uuid::Uuid;

/// Builds every Redis key and channel name of one deployment.
#[derive(Debug, Clone)]
pub struct RedisKeys {
    namespace: String,
}

impl RedisKeys {
    /// Names under `namespace`.
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
        }
    }

    /// The cached JSON of one task.
    pub fn task(&self, task_id: Uuid) -> String {
        format!("{}:task:{task_id}", self.namespace)
    }

    /// A reader's lease on filling one task's cache slot (see the
    /// api-node's `cache` module).
    pub fn task_fill_lease(&self, task_id: Uuid) -> String {
        format!("{}:task-fill:{task_id}", self.namespace)
    }

    /// The pub/sub channel that carries one user's task events.
    pub fn user_events_channel(&self, user_id: Uuid) -> String {
        format!("{}:events:{user_id}", self.namespace)
    }

    /// The user whose events channel this is, if it is one.
    pub fn user_of_events_channel(&self, channel: &str) -> Option<Uuid> {
        channel
            .strip_prefix(&self.namespace)?
            .strip_prefix(":events:")?
            .parse()
            .ok()
    }

    /// The sorted set (score = seq) of one user's recent events, for resuming
    /// with `since`.
    pub fn user_recent_events(&self, user_id: Uuid) -> String {
        format!("{}:recent:{user_id}", self.namespace)
    }

    /// The pub/sub channel on which logouts are announced to every node.
    pub fn revocations_channel(&self) -> String {
        format!("{}:revocations", self.namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_channels_name_their_user() {
        let keys = RedisKeys::new("ns");
        let user = Uuid::new_v4();
        assert_eq!(
            keys.user_of_events_channel(&keys.user_events_channel(user)),
            Some(user)
        );
        assert_eq!(
            keys.user_of_events_channel(&keys.revocations_channel()),
            None
        );
        assert_eq!(
            RedisKeys::new("other").user_of_events_channel(&keys.user_events_channel(user)),
            None
        );
    }
}
