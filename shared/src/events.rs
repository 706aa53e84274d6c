//! Task events as they travel through the outbox, Redis and WebSockets.
//!
//! An event is serialized exactly once, by the api-node inside the write's
//! transaction; the same bytes are stored in the outbox, published, kept in
//! the recent-event store and sent to every socket.

use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

/// What happened to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `TASK_CREATED`
    Created,
    /// `TASK_UPDATED`
    Updated,
    /// `TASK_DELETED`
    Deleted,
}

impl EventKind {
    /// The kind whose `type` on the wire is `wire`.
    pub fn from_wire(wire: &str) -> Option<Self> {
        [EventKind::Created, EventKind::Updated, EventKind::Deleted]
            .into_iter()
            .find(|kind| kind.as_str() == wire)
    }

    /// The event's `type` on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "TASK_CREATED",
            EventKind::Updated => "TASK_UPDATED",
            EventKind::Deleted => "TASK_DELETED",
        }
    }
}

/// The event's JSON text. `task_json` must be a JSON object: the full task,
/// or `{"id":"…"}` for a deletion.
pub fn event_json(kind: EventKind, seq: i64, timestamp_ms: i64, task_json: &str) -> String {
    format!(
        r#"{{"type":"{}","seq":{seq},"timestamp":{timestamp_ms},"task":{task_json}}}"#,
        kind.as_str()
    )
}

/// The task JSON inside an event written by [`event_json`], found without
/// parsing: what follows the first `,"task":` (the fields before it are a
/// fixed word and two numbers, never text a client wrote) up to the
/// event's closing brace.
pub fn task_json_of(event: &str) -> Option<&str> {
    const FIELD: &str = r#","task":"#;
    let start = event.find(FIELD)? + FIELD.len();
    event.get(start..event.strip_suffix('}')?.len())
}

/// The parts of a stored event a node needs to route, order and cache it,
/// read without copying the task.
#[derive(Debug, Deserialize)]
pub struct EventView<'a> {
    /// `TASK_CREATED`, `TASK_UPDATED` or `TASK_DELETED`.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// The owner's sequence number of this change.
    pub seq: i64,
    /// Commit time, milliseconds since the epoch.
    pub timestamp: i64,
    /// The task's JSON exactly as it was serialized.
    #[serde(borrow)]
    pub task: &'a RawValue,
}

/// The task fields the cache needs from an event.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskKey {
    /// The task id.
    pub id: Uuid,
    /// The task's version; absent on deletions.
    #[serde(default)]
    pub version: Option<i64>,
}

impl<'a> EventView<'a> {
    /// Reads an event's routing fields.
    pub fn parse(json: &'a str) -> serde_json::Result<Self> {
        serde_json::from_str(json)
    }

    /// The task id and version inside the event.
    pub fn task_key(&self) -> serde_json::Result<TaskKey> {
        serde_json::from_str(self.task.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_json_round_trips_through_the_view() {
        let id = Uuid::new_v4();
        let task = format!(r#"{{"id":"{id}","version":3,"title":"a"}}"#);
        let json = event_json(EventKind::Updated, 7, 1_764_192_600_123, &task);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["type"], "TASK_UPDATED");
        assert_eq!(value["seq"], 7);
        assert_eq!(value["task"]["title"], "a");

        let view = EventView::parse(&json).unwrap();
        assert_eq!(view.kind, "TASK_UPDATED");
        assert_eq!(view.seq, 7);
        assert_eq!(view.task.get(), task);
        let key = view.task_key().unwrap();
        assert_eq!((key.id, key.version), (id, Some(3)));
        assert_eq!(task_json_of(&json), Some(task.as_str()));
        assert_eq!(EventKind::from_wire(view.kind), Some(EventKind::Updated));
    }

    #[test]
    fn the_task_is_found_even_when_its_text_looks_like_an_event() {
        let task = r#"{"id":"x","title":",\"task\":{} }","description":"}"}"#;
        for kind in [EventKind::Created, EventKind::Deleted] {
            let json = event_json(kind, 12, 1, task);
            assert_eq!(task_json_of(&json), Some(task));
        }
        assert_eq!(task_json_of(r#"{"type":"TASK_CREATED"}"#), None);
        assert_eq!(EventKind::from_wire("TASK_MOVED"), None);
    }
}
