//! Dates and datetimes in their one written form, which the API sends,
//! SQLite stores and the mailbox shows: UTC, to the millisecond
//! (`2026-01-02T03:04:05.123Z`), so they sort correctly as text.

use std::fmt::Write as _;

/// A datetime in the canonical form: UTC, to the millisecond
/// (`2026-01-02T03:04:05.123Z`).
pub fn canonical_datetime(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let mut out = String::with_capacity(24);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{}T{:02}:{:02}:{:02}.{:03}Z",
        canonical_date(t.date()),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    );
    out
}

/// A date in the canonical form, `2026-01-02`.
pub fn canonical_date(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn datetimes_are_written_in_utc_to_the_millisecond() {
        assert_eq!(
            canonical_datetime(datetime!(2026-01-02 03:04:05.123456 UTC)),
            "2026-01-02T03:04:05.123Z"
        );
        assert_eq!(
            canonical_datetime(datetime!(2026-01-02 00:30:00 +02:00)),
            "2026-01-01T22:30:00.000Z"
        );
        assert_eq!(
            canonical_datetime(datetime!(0001-01-01 00:00:00.001 UTC)),
            "0001-01-01T00:00:00.001Z"
        );
        assert_eq!(
            canonical_datetime(datetime!(9999-12-31 23:59:59.999 UTC)),
            "9999-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn dates_have_four_digit_years() {
        assert_eq!(
            canonical_date(time::macros::date!(0042 - 03 - 04)),
            "0042-03-04"
        );
    }
}
