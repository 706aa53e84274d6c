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

    /// The cached JSON of one task of its owner's.
    /// (Built by hand, not with `format!`: every cached read names one.)
    pub fn task(&self, user_id: Uuid, task_id: Uuid) -> String {
        let mut buf = Uuid::encode_buffer();
        self.task_of(user_id.hyphenated().encode_lower(&mut buf), task_id)
    }

    /// [`RedisKeys::task`] for an owner id already written as text,
    /// hyphenated and lower-case: a cached read needs that text again to
    /// check the entry's owner, and writes it once.
    pub fn task_of(&self, user_id: &str, task_id: Uuid) -> String {
        debug_assert_eq!(user_id.len(), uuid::fmt::Hyphenated::LENGTH);
        let mut buf = Uuid::encode_buffer();
        let mut key = String::with_capacity(self.namespace.len() + 84);
        key.push_str(&self.namespace);
        key.push_str(":{");
        key.push_str(user_id);
        key.push_str("}:task:");
        key.push_str(task_id.hyphenated().encode_lower(&mut buf));
        key
    }

    /// A reader's lease on filling one task's cache slot (see the
    /// api-node's `cache` module).
    pub fn task_fill_lease(&self, user_id: Uuid, task_id: Uuid) -> String {
        format!("{}:{{{user_id}}}:task-fill:{task_id}", self.namespace)
    }

    /// The pub/sub channel that carries one user's task events (sharded
    /// pub/sub on a cluster).
    pub fn user_events_channel(&self, user_id: Uuid) -> String {
        format!("{}:{{{user_id}}}:events", self.namespace)
    }

    /// The user whose events channel this is, if it is one.
    pub fn user_of_events_channel(&self, channel: &[u8]) -> Option<Uuid> {
        let user = channel
            .strip_prefix(self.namespace.as_bytes())?
            .strip_prefix(b":{")?
            .strip_suffix(b"}:events")?;
        std::str::from_utf8(user).ok()?.parse().ok()
    }

    /// The sorted set (score = seq) of one user's recent events, for resuming
    /// with `since`.
    pub fn user_recent_events(&self, user_id: Uuid) -> String {
        format!("{}:{{{user_id}}}:recent", self.namespace)
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
        let channel = keys.user_events_channel(user);
        assert_eq!(keys.user_of_events_channel(channel.as_bytes()), Some(user));
        assert_eq!(
            keys.user_of_events_channel(keys.revocations_channel().as_bytes()),
            None
        );
        assert_eq!(
            RedisKeys::new("other").user_of_events_channel(channel.as_bytes()),
            None
        );
    }

    #[test]
    fn task_keys_are_namespace_owner_tag_and_id() {
        let keys = RedisKeys::new("ns");
        let (user, task) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(keys.task(user, task), format!("ns:{{{user}}}:task:{task}"));
    }

    #[test]
    fn a_users_keys_share_one_hash_tag() {
        let keys = RedisKeys::new("ns");
        let (user, task) = (Uuid::new_v4(), Uuid::new_v4());
        let tag = format!("{{{user}}}");
        for name in [
            keys.task(user, task),
            keys.task_fill_lease(user, task),
            keys.user_events_channel(user),
            keys.user_recent_events(user),
        ] {
            assert!(name.contains(&tag), "{name}");
            assert_eq!(name.matches('{').count(), 1, "{name}");
        }
    }
}
