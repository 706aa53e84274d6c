//! `GET /api/tasks` query: filters, sort, page size and the keyset cursor.
//!
//! The cursor is opaque to clients: base64url of a small JSON object that
//! holds the last task's sort key and the filters and sort it was made for,
//! so that a cursor used with other filters is refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::task_input::Priority;
use crate::error::ApiError;
use crate::models::{Task, TaskStatus};
use shared::error_body::FieldError;

/// The four orders the list offers. Ties break by `createdAt`, then id, in
/// the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sort {
    /// `-createdAt` (default): newest first.
    #[serde(rename = "-createdAt")]
    CreatedDesc,
    /// `createdAt`: oldest first.
    #[serde(rename = "createdAt")]
    CreatedAsc,
    /// `-priority`: highest first.
    #[serde(rename = "-priority")]
    PriorityDesc,
    /// `priority`: lowest first.
    #[serde(rename = "priority")]
    PriorityAsc,
}

impl Sort {
    fn parse(raw: &str) -> Result<Self, &'static str> {
        match raw {
            "-createdAt" => Ok(Sort::CreatedDesc),
            "createdAt" => Ok(Sort::CreatedAsc),
            "-priority" => Ok(Sort::PriorityDesc),
            "priority" => Ok(Sort::PriorityAsc),
            _ => Err("must be one of -createdAt, createdAt, -priority, priority"),
        }
    }

    /// Whether the order is descending.
    pub fn descending(self) -> bool {
        matches!(self, Sort::CreatedDesc | Sort::PriorityDesc)
    }

    /// Whether priority is the leading sort key.
    pub fn by_priority(self) -> bool {
        matches!(self, Sort::PriorityDesc | Sort::PriorityAsc)
    }
}

/// Where the previous page ended: the last task's sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct After {
    /// Its priority (used by the priority sorts).
    pub priority: i16,
    /// Its creation time, to the microsecond.
    pub created_at: DateTime<Utc>,
    /// Its id.
    pub id: Uuid,
}

/// A parsed, valid list query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// `status` filter.
    pub status: Option<TaskStatus>,
    /// `priority` filter.
    pub priority: Option<i16>,
    /// Order.
    pub sort: Sort,
    /// Page size, 1 to 200.
    pub limit: i64,
    /// Continue after this task.
    pub after: Option<After>,
}

/// The cursor's contents. Short names keep cursors short.
#[derive(Debug, Serialize, Deserialize)]
struct CursorData {
    /// Sort.
    o: Sort,
    /// Status filter.
    s: Option<String>,
    /// Priority filter.
    p: Option<i16>,
    /// Last task: priority, creation time in microseconds, id.
    r: i16,
    t: i64,
    i: Uuid,
}

impl ListQuery {
    /// Parses the query pairs; unknown or repeated parameters are refused.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        let mut query = ListQuery {
            status: None,
            priority: None,
            sort: Sort::CreatedDesc,
            limit: 50,
            after: None,
        };
        let mut cursor = None;
        for (name, value) in pairs {
            if seen.contains(&name.as_str()) {
                errors.push(FieldError::new(name, "must be given once"));
                continue;
            }
            seen.push(name);
            let result = match name.as_str() {
                "status" => TaskStatus::parse(value).map(|s| query.status = Some(s)),
                "priority" => Priority::from_query(value).map(|p| query.priority = Some(p.get())),
                "sort" => Sort::parse(value).map(|s| query.sort = s),
                "limit" => match value.parse::<i64>() {
                    Ok(n) if (1..=200).contains(&n) => {
                        query.limit = n;
                        Ok(())
                    }
                    _ => Err("must be an integer from 1 to 200"),
                },
                "cursor" => {
                    cursor = Some(value.as_str());
                    Ok(())
                }
                _ => Err("is not allowed"),
            };
            if let Err(message) = result {
                errors.push(FieldError::new(name, message));
            }
        }
        if errors.is_empty() {
            if let Some(raw) = cursor {
                match query.decode_cursor(raw) {
                    Some(after) => query.after = Some(after),
                    None => errors.push(FieldError::new(
                        "cursor",
                        "is not a cursor from a previous page of this same query",
                    )),
                }
            }
        }
        if errors.is_empty() {
            Ok(query)
        } else {
            Err(ApiError::Validation(errors))
        }
    }

    /// The cursor that continues after `last`.
    pub fn cursor_after(&self, last: &Task) -> String {
        let data = CursorData {
            o: self.sort,
            s: self.status.map(|s| s.as_str().to_owned()),
            p: self.priority,
            r: last.priority,
            t: last.created_at.timestamp_micros(),
            i: last.id,
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&data).expect("BUG: cursor data serializes"))
    }

    fn decode_cursor(&self, raw: &str) -> Option<After> {
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        let data: CursorData = serde_json::from_slice(&bytes).ok()?;
        let same_query = data.o == self.sort
            && data.s.as_deref() == self.status.map(TaskStatus::as_str)
            && data.p == self.priority;
        if !same_query {
            return None;
        }
        Some(After {
            priority: data.r,
            created_at: DateTime::from_timestamp_micros(data.t)?,
            id: data.i,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    }

    fn task() -> Task {
        Task {
            id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            title: "t".into(),
            description: None,
            status: TaskStatus::Todo,
            priority: 4,
            version: 1,
            created_at: DateTime::from_timestamp_micros(1_764_192_600_123_456).unwrap(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn defaults_and_values() {
        let q = ListQuery::parse(&pairs("")).unwrap();
        assert_eq!(
            (q.sort, q.limit, q.status, q.priority),
            (Sort::CreatedDesc, 50, None, None)
        );
        let q =
            ListQuery::parse(&pairs("status=DONE&priority=3&sort=-priority&limit=200")).unwrap();
        assert_eq!(
            (q.sort, q.limit, q.status, q.priority),
            (Sort::PriorityDesc, 200, Some(TaskStatus::Done), Some(3))
        );
    }

    #[test]
    fn refuses_bad_unknown_and_repeated_parameters() {
        for bad in [
            "limit=0",
            "limit=201",
            "limit=x",
            "sort=title",
            "status=todo",
            "priority=11",
            "page=2",
            "status=DONE&status=TODO",
            "cursor=%%%",
        ] {
            assert!(
                ListQuery::parse(&pairs(bad)).is_err(),
                "{bad} should be refused"
            );
        }
    }

    #[test]
    fn cursor_round_trips_keeping_microseconds() {
        let q = ListQuery::parse(&pairs("sort=priority&status=TODO")).unwrap();
        let last = task();
        let cursor = q.cursor_after(&last);
        let next = ListQuery::parse(&pairs(&format!(
            "sort=priority&status=TODO&cursor={cursor}"
        )))
        .unwrap();
        assert_eq!(
            next.after,
            Some(After {
                priority: 4,
                created_at: last.created_at,
                id: last.id
            })
        );
    }

    #[test]
    fn cursor_is_only_valid_with_the_same_filters_and_sort() {
        let q = ListQuery::parse(&pairs("sort=priority")).unwrap();
        let cursor = q.cursor_after(&task());
        for other in [
            "sort=-priority",
            "sort=priority&status=DONE",
            "sort=priority&priority=1",
            "",
        ] {
            let query = format!("{other}&cursor={cursor}");
            assert!(ListQuery::parse(&pairs(&query)).is_err(), "{other}");
        }
    }
}
