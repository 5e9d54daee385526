use super::ParseError;
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate};

/// The earliest and latest business day the gateway accepts from a caller. Any day a partner,
/// finance or an admin can mean lies between them; outside them, date arithmetic (a default
/// range, a cut-off) would come close to chrono's limits and the backends' date types differ
/// (SQLite stores text, PostgreSQL refuses years past 294276).
pub const FIRST_DAY: NaiveDate = match NaiveDate::from_ymd_opt(2000, 1, 1) {
    Some(d) => d,
    None => panic!("2000-01-01 is a date"),
};
pub const LAST_DAY: NaiveDate = match NaiveDate::from_ymd_opt(2999, 12, 31) {
    Some(d) => d,
    None => panic!("2999-12-31 is a date"),
};

/// A day as callers write it: exactly `YYYY-MM-DD`, from [`FIRST_DAY`] to [`LAST_DAY`].
pub fn parse_day(s: &str) -> Result<NaiveDate, ParseError> {
    // chrono's `%Y` also takes a sign and more than four digits (`-262143-01-20`), and `%m`/`%d`
    // a single digit; the contract's form is exactly ten characters.
    let b = s.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    let day = shaped
        .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| ParseError::new("must be a date YYYY-MM-DD"))?;
    in_range(day)
}

/// `day`, if it lies from [`FIRST_DAY`] to [`LAST_DAY`].
pub fn in_range(day: NaiveDate) -> Result<NaiveDate, ParseError> {
    if (FIRST_DAY..=LAST_DAY).contains(&day) {
        Ok(day)
    } else {
        Err(ParseError::new(format!(
            "must be a day from {FIRST_DAY} to {LAST_DAY}"
        )))
    }
}

/// An RFC 3339 time with an offset, whose date lies from [`FIRST_DAY`] to [`LAST_DAY`].
pub fn parse_rfc3339(s: &str) -> Result<DateTime<FixedOffset>, ParseError> {
    let t = DateTime::parse_from_rfc3339(s).map_err(|_| {
        ParseError::new("must be an RFC 3339 time with an offset, e.g. 2026-12-01T12:30:00+08:00")
    })?;
    if !(FIRST_DAY.year()..=LAST_DAY.year()).contains(&t.year()) {
        return Err(ParseError::new(format!(
            "must be a time from {FIRST_DAY} to {LAST_DAY}"
        )));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_contracts_form_within_the_range_is_a_day() {
        assert_eq!(
            parse_day("2026-12-07").unwrap(),
            NaiveDate::from_ymd_opt(2026, 12, 7).unwrap()
        );
        assert!(parse_day("2000-01-01").is_ok());
        assert!(parse_day("2999-12-31").is_ok());
        for bad in [
            "1999-12-31",
            "3000-01-01",
            "-262143-01-20",
            "+262143-01-20",
            "262143-01-20",
            "2026-2-07",
            "2026-02-7 ",
            " 2026-02-07",
            "2026-02-30",
            "0000-00-00",
            "9999-99-99",
            "２０２６-01-01",
            "",
        ] {
            assert!(parse_day(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn times_far_from_any_business_day_are_refused() {
        assert!(parse_rfc3339("2026-12-07T10:00:00+08:00").is_ok());
        assert!(parse_rfc3339("9999-12-31T23:59:59Z").is_err());
        assert!(parse_rfc3339("0001-01-01T00:00:00Z").is_err());
        assert!(parse_rfc3339("2026-12-07 10:00").is_err());
    }
}
