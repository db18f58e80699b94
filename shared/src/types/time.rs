//! Whole-second UTC timestamps: what the table stores (TTL is in epoch seconds) and what
//! responses show as RFC 3339.

use serde::{Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Seconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub i64);

impl UnixTime {
    pub fn plus_secs(self, secs: u64) -> UnixTime {
        UnixTime(
            self.0
                .saturating_add(i64::try_from(secs).unwrap_or(i64::MAX)),
        )
    }

    /// Whole seconds from `self` until `later`, at least 1 (a `Retry-After` of 0 invites a
    /// retry storm and is not what a client expects after a 429).
    pub fn secs_until(self, later: UnixTime) -> u64 {
        u64::try_from(later.0.saturating_sub(self.0))
            .unwrap_or(0)
            .max(1)
    }

    /// RFC 3339, e.g. `2026-11-28T07:25:11Z`.
    pub fn rfc3339(self) -> String {
        OffsetDateTime::from_unix_timestamp(self.0)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
    }
}

impl Serialize for UnixTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_utc() {
        assert_eq!(UnixTime(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(UnixTime(1_795_000_000).rfc3339(), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        assert_eq!(UnixTime(100).secs_until(UnixTime(100)), 1);
        assert_eq!(UnixTime(100).secs_until(UnixTime(90)), 1);
        assert_eq!(UnixTime(100).secs_until(UnixTime(130)), 30);
    }
}
