//! The cap on one user's sockets on this node (`WS_MAX_SOCKETS_PER_USER`).
//!
//! A slot is taken before the upgrade is answered, not when the session
//! registers with the hub: the session starts only after the 101 has gone
//! out, so a count taken there would let any number of parallel upgrades
//! through before the first of them registered. Taking a slot holds the
//! user's map entry lock, so of any number of upgrades at once at most the
//! cap get one. The slot lives as long as the socket's task and gives
//! itself back when dropped, however the task ends (an upgrade that never
//! completes included).

use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use uuid::Uuid;

/// Open sockets per user, against the cap.
#[derive(Debug)]
pub struct UserSockets {
    /// user → sockets holding a slot; a user with none has no entry.
    open: DashMap<Uuid, usize>,
    cap: usize,
}

/// One socket's place under its user's cap; given back on drop.
#[derive(Debug)]
pub struct Slot {
    owner: Arc<UserSockets>,
    user: Uuid,
}

impl UserSockets {
    /// At most `cap` sockets per user (at least one).
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            open: DashMap::new(),
            cap: cap.max(1),
        })
    }

    /// A slot for one more socket of `user`, or `None` at the cap.
    pub fn take(self: &Arc<Self>, user: Uuid) -> Option<Slot> {
        let mut open = self.open.entry(user).or_insert(0);
        if *open >= self.cap {
            return None;
        }
        *open += 1;
        Some(Slot {
            owner: self.clone(),
            user,
        })
    }

    /// The user's sockets holding a slot.
    pub fn open(&self, user: Uuid) -> usize {
        self.open.get(&user).map_or(0, |n| *n)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Entry::Occupied(mut open) = self.owner.open.entry(self.user) {
            *open.get_mut() -= 1;
            if *open.get() == 0 {
                open.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_cap_and_a_dropped_slot_frees_its_place() {
        let sockets = UserSockets::new(2);
        let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
        let a = sockets.take(user).unwrap();
        let _b = sockets.take(user).unwrap();
        assert!(sockets.take(user).is_none());
        assert!(sockets.take(other).is_some(), "the cap is per user");
        drop(a);
        assert_eq!(sockets.open(user), 1);
        assert!(sockets.take(user).is_some());
    }

    #[test]
    fn a_user_without_sockets_leaves_no_entry() {
        let sockets = UserSockets::new(3);
        let user = Uuid::new_v4();
        let slots: Vec<_> = (0..3).map(|_| sockets.take(user).unwrap()).collect();
        drop(slots);
        assert!(sockets.open.is_empty());
    }

    #[test]
    fn parallel_takers_get_at_most_the_cap() {
        let sockets = UserSockets::new(10);
        let user = Uuid::new_v4();
        let taken: Vec<Slot> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let sockets = sockets.clone();
                    scope.spawn(move || {
                        (0..100)
                            .filter_map(|_| sockets.take(user))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(taken.len(), 10);
    }
}
