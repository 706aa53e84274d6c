//! The contract's timestamps: RFC 3339, UTC, milliseconds, `Z`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

/// Formats a timestamp as `2026-11-26T21:30:00.123Z`.
pub fn rfc3339_millis(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `serialize_with` adapter for [`rfc3339_millis`].
pub fn serialize_millis<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339_millis(at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_with_millis_and_z() {
        let at = Utc.timestamp_micros(1_764_192_600_123_456).unwrap();
        assert_eq!(rfc3339_millis(&at), "2025-11-26T21:30:00.123Z");
    }
}
