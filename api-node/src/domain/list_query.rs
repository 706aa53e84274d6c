//! `GET /api/tasks` query: filters, sort, page size and the keyset cursor.
//!
//! The cursor is opaque to clients: base64url of an HMAC tag (16 bytes)
//! followed by a small JSON object that holds the last task's sort key and
//! the filters and sort it was made for. The tag makes it tamper-evident (a
//! cursor this deployment did not make is refused before its contents are
//! read), the filters make one used with another query refused, and every
//! value is range-checked anyway, so no cursor reaches PostgreSQL with a
//! value it would refuse.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
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

/// The key that signs cursors (derived from `JWT_SECRET`: rotating the
/// secret invalidates outstanding cursors, whose clients start over).
#[derive(Clone)]
pub struct CursorKey([u8; 32]);

impl CursorKey {
    /// The purpose [`shared::jwt::JwtKeys::derive_key`] derives it for.
    pub const PURPOSE: &'static str = "list cursors";

    /// A key from its bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    fn mac(&self, data: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("BUG: HMAC takes keys of any length");
        mac.update(data);
        mac
    }
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(***)")
    }
}

/// Bytes of the tag that leads a cursor (128 bits of HMAC-SHA256).
const TAG_LEN: usize = 16;
/// Longer raw cursors are refused before decoding (ours are ~150).
const MAX_CURSOR_LEN: usize = 512;
/// The creation times a cursor may carry: years 1 to 9999, the range of the
/// contract's timestamp format and well inside PostgreSQL's.
const MIN_MICROS: i64 = -62_135_596_800_000_000;
const MAX_MICROS: i64 = 253_402_300_799_999_999;

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
    /// Parses the query pairs; unknown or repeated parameters are refused,
    /// and a cursor must carry `key`'s tag.
    pub fn parse(pairs: &[(String, String)], key: &CursorKey) -> Result<Self, ApiError> {
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
                match query.decode_cursor(raw, key) {
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

    /// The cursor that continues after `last`, signed with `key`.
    pub fn cursor_after(&self, last: &Task, key: &CursorKey) -> String {
        let data = CursorData {
            o: self.sort,
            s: self.status.map(|s| s.as_str().to_owned()),
            p: self.priority,
            r: last.priority,
            t: last.created_at.timestamp_micros(),
            i: last.id,
        };
        let json = serde_json::to_vec(&data).expect("BUG: cursor data serializes");
        let tag = key.mac(&json).finalize().into_bytes();
        let mut bytes = Vec::with_capacity(TAG_LEN + json.len());
        bytes.extend_from_slice(&tag[..TAG_LEN]);
        bytes.extend_from_slice(&json);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The position a cursor holds, if `key` made it for this same query
    /// and every value in it is in range.
    fn decode_cursor(&self, raw: &str, key: &CursorKey) -> Option<After> {
        if raw.len() > MAX_CURSOR_LEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        if bytes.len() <= TAG_LEN {
            return None;
        }
        let (tag, json) = bytes.split_at(TAG_LEN);
        // Constant time: the comparison reveals nothing about the right tag.
        key.mac(json).verify_truncated_left(tag).ok()?;
        let data: CursorData = serde_json::from_slice(json).ok()?;
        let same_query = data.o == self.sort
            && data.s.as_deref() == self.status.map(TaskStatus::as_str)
            && data.p == self.priority;
        let in_range = (0..=10).contains(&data.r) && (MIN_MICROS..=MAX_MICROS).contains(&data.t);
        if !same_query || !in_range {
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
    use proptest::prelude::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    }

    fn key() -> CursorKey {
        CursorKey::new([7; 32])
    }

    fn parse(q: &str) -> Result<ListQuery, ApiError> {
        ListQuery::parse(&pairs(q), &key())
    }

    fn task() -> Task {
        task_at(4, 1_764_192_600_123_456)
    }

    fn task_at(priority: i16, micros: i64) -> Task {
        Task {
            id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            title: "t".into(),
            description: None,
            status: TaskStatus::Todo,
            priority,
            version: 1,
            created_at: DateTime::from_timestamp_micros(micros).unwrap(),
            updated_at: Utc::now(),
        }
    }

    /// A cursor with the right tag over whatever JSON `data` is: what a
    /// forger who knew the key (or a bug of ours) could make.
    fn signed(data: &serde_json::Value) -> String {
        let json = serde_json::to_vec(data).unwrap();
        let tag = key().mac(&json).finalize().into_bytes();
        URL_SAFE_NO_PAD.encode([&tag[..TAG_LEN], &json[..]].concat())
    }

    fn cursor_field_refused(result: Result<ListQuery, ApiError>) -> bool {
        matches!(result, Err(ApiError::Validation(f)) if f.len() == 1 && f[0].field == "cursor")
    }

    #[test]
    fn defaults_and_values() {
        let q = parse("").unwrap();
        assert_eq!(
            (q.sort, q.limit, q.status, q.priority),
            (Sort::CreatedDesc, 50, None, None)
        );
        let q = parse("status=DONE&priority=3&sort=-priority&limit=200").unwrap();
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
            assert!(parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn cursor_round_trips_keeping_microseconds() {
        let q = parse("sort=priority&status=TODO").unwrap();
        let last = task();
        let cursor = q.cursor_after(&last, &key());
        let next = parse(&format!("sort=priority&status=TODO&cursor={cursor}")).unwrap();
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
        let q = parse("sort=priority").unwrap();
        let cursor = q.cursor_after(&task(), &key());
        for other in [
            "sort=-priority",
            "sort=priority&status=DONE",
            "sort=priority&priority=1",
            "",
        ] {
            assert!(
                parse(&format!("{other}&cursor={cursor}")).is_err(),
                "{other}"
            );
        }
    }

    #[test]
    fn cursor_of_another_key_or_unsigned_is_refused() {
        let q = parse("").unwrap();
        let last = task();
        let foreign = q.cursor_after(&last, &CursorKey::new([8; 32]));
        assert!(cursor_field_refused(parse(&format!("cursor={foreign}"))));
        // The pre-HMAC format: bare base64url JSON.
        let unsigned = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&serde_json::json!({
                "o": "-createdAt", "s": null, "p": null, "r": 4, "t": 0, "i": last.id
            }))
            .unwrap(),
        );
        assert!(cursor_field_refused(parse(&format!("cursor={unsigned}"))));
    }

    #[test]
    fn signed_cursors_with_out_of_range_values_are_refused() {
        let id = Uuid::new_v4();
        for (r, t) in [
            (4, i64::MAX),
            (4, i64::MIN),
            (4, MAX_MICROS + 1),
            (4, MIN_MICROS - 1),
            (11, 0),
            (-1, 0),
        ] {
            let cursor = signed(&serde_json::json!({
                "o": "-createdAt", "s": null, "p": null, "r": r, "t": t, "i": id
            }));
            assert!(
                cursor_field_refused(parse(&format!("cursor={cursor}"))),
                "r={r} t={t}"
            );
        }
        let edge = signed(&serde_json::json!({
            "o": "-createdAt", "s": null, "p": null, "r": 10, "t": MAX_MICROS, "i": id
        }));
        assert!(parse(&format!("cursor={edge}")).is_ok());
    }

    proptest! {
        /// Any query string at all is either a valid query or a validation
        /// error naming parameters; it never panics.
        #[test]
        fn any_query_string_parses_or_is_a_validation_error(q in "(?s).{0,80}") {
            match parse(&q) {
                Ok(query) => {
                    prop_assert!((1..=200).contains(&query.limit));
                    prop_assert!(query.priority.is_none_or(|p| (0..=10).contains(&p)));
                }
                Err(ApiError::Validation(fields)) => prop_assert!(!fields.is_empty()),
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }

        /// Query strings made of the real parameter names and values, in
        /// any order and repetition.
        #[test]
        fn known_parameters_in_any_combination(
            parts in proptest::collection::vec(
                (
                    prop::sample::select(vec!["status", "priority", "sort", "limit", "cursor", "x"]),
                    prop::sample::select(vec![
                        "TODO", "DONE", "0", "10", "11", "-1", "200", "201",
                        "-priority", "createdAt", "", "%00", "AAAA",
                    ]),
                ),
                0..6,
            )
        ) {
            let q: Vec<String> = parts.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = parse(&q.join("&"));
        }

        /// Arbitrary cursor strings are refused on `cursor` (none is ours).
        #[test]
        fn arbitrary_cursors_are_refused(raw in "[A-Za-z0-9_-]{0,300}|\\PC{0,100}") {
            let query = vec![("cursor".to_owned(), raw)];
            prop_assert!(cursor_field_refused(ListQuery::parse(&query, &key())));
        }

        /// Every cursor we make round-trips exactly, and changing any one
        /// byte of it makes it refused.
        #[test]
        fn cursors_round_trip_and_every_tampered_byte_is_caught(
            priority in 0i16..=10,
            micros in MIN_MICROS..=MAX_MICROS,
            sort in prop::sample::select(vec!["-createdAt", "createdAt", "-priority", "priority"]),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let base = format!("sort={sort}");
            let query = parse(&base).unwrap();
            let last = task_at(priority, micros);
            let cursor = query.cursor_after(&last, &key());
            let next = parse(&format!("{base}&cursor={cursor}")).unwrap();
            prop_assert_eq!(
                next.after,
                Some(After { priority, created_at: last.created_at, id: last.id })
            );

            let mut bytes = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
            let i = flip.index(bytes.len());
            bytes[i] ^= 1 << bit;
            let tampered = URL_SAFE_NO_PAD.encode(&bytes);
            let query = vec![("sort".to_owned(), sort.to_owned()), ("cursor".to_owned(), tampered)];
            prop_assert!(cursor_field_refused(ListQuery::parse(&query, &key())));
        }
    }
}
