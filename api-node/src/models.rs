//! The resources as the API returns them, built from database rows.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use shared::time::serialize_millis;

/// A task's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TaskStatus {
    /// Not started.
    #[serde(rename = "TODO")]
    Todo,
    /// Being worked on.
    #[serde(rename = "IN_PROGRESS")]
    InProgress,
    /// Finished.
    #[serde(rename = "DONE")]
    Done,
}

impl TaskStatus {
    /// The wire and database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Todo => "TODO",
            TaskStatus::InProgress => "IN_PROGRESS",
            TaskStatus::Done => "DONE",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        match raw {
            "TODO" => Ok(TaskStatus::Todo),
            "IN_PROGRESS" => Ok(TaskStatus::InProgress),
            "DONE" => Ok(TaskStatus::Done),
            _ => Err("must be one of TODO, IN_PROGRESS, DONE"),
        }
    }
}

/// A user, without the password hash (which never leaves the database).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Id.
    pub id: Uuid,
    /// Trimmed, lower-cased email.
    pub email: String,
    /// Trimmed display name.
    pub name: String,
    /// Creation time.
    #[serde(serialize_with = "serialize_millis")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(serialize_with = "serialize_millis")]
    pub updated_at: DateTime<Utc>,
}

/// The columns [`User::from_row`] reads.
pub const USER_COLUMNS: &str = "id, email, name, created_at, updated_at";

impl User {
    /// From a row selected with [`USER_COLUMNS`].
    pub fn from_row(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            email: row.get("email"),
            name: row.get("name"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }
}

/// A task.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Trimmed title.
    pub title: String,
    /// Free text, or null.
    pub description: Option<String>,
    /// Status.
    pub status: TaskStatus,
    /// 0 to 10.
    pub priority: i16,
    /// Starts at 1, +1 on every update.
    pub version: i32,
    /// Creation time.
    #[serde(serialize_with = "serialize_millis")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(serialize_with = "serialize_millis")]
    pub updated_at: DateTime<Utc>,
}

/// The columns [`Task::from_row`] reads.
pub const TASK_COLUMNS: &str =
    "id, user_id, title, description, status, priority, version, created_at, updated_at";

impl Task {
    /// From a row selected with [`TASK_COLUMNS`].
    pub fn from_row(row: &Row) -> Self {
        let status: &str = row.get("status");
        Self {
            id: row.get("id"),
            user_id: row.get("user_id"),
            title: row.get("title"),
            description: row.get("description"),
            status: TaskStatus::parse(status)
                .expect("BUG: the CHECK constraint admits only known statuses"),
            priority: row.get("priority"),
            version: row.get("version"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }

    /// The task's JSON, as responses, events and the cache all carry it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("BUG: a task always serializes")
    }
}
