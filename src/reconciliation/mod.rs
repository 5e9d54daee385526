//! Reconciliation (contract sections 5, 8 and 13): a partner uploads its own records of a
//! day as CSV; settlement matches them against the gateway's by `partner_txn_id` and
//! `partner_reversal_id`.
pub mod matching;

use crate::db::reconciliation_uploads::{NewUpload, Upload};
use crate::db::{write_tx, DbConn, DbError};
use crate::domain::FieldError;
use crate::transactions::input::is_partner_id;
use chrono::{NaiveDate, TimeDelta};

pub const COLUMNS: [&str; 6] = [
    "partner_txn_id",
    "kind",
    "partner_reversal_id",
    "gross_yuan",
    "discount_yuan",
    "redeem_points",
];
/// Uploads are accepted for any of the last 90 days.
pub const MAX_AGE_DAYS: i64 = 90;
/// Field errors listed in one answer, at most (a broken file can have a million).
pub const MAX_ERRORS: usize = 100;

/// One row of an upload, in the upload's convention (reversal amounts positive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub line: usize,
    pub partner_txn_id: String,
    pub kind: Kind,
    pub partner_reversal_id: String,
    pub gross_fen: i64,
    pub discount_fen: i64,
    pub redeem_points: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Sale,
    Reversal,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Sale => "sale",
            Kind::Reversal => "reversal",
        }
    }
}

/// When an upload arrived: the instant (as stored), its local day, and when that day began
/// (UTC), from which the quota counts what the partner stored.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub at: chrono::NaiveDateTime,
    pub today: NaiveDate,
    pub today_from: chrono::NaiveDateTime,
}

/// A partner's quota of stored uploads per local day (`ALLIANCE_UPLOADS_PER_PARTNER_PER_DAY`
/// and `ALLIANCE_UPLOAD_BYTES_PER_PARTNER_PER_DAY`). Every upload is kept for audit, so the
/// store is bounded by refusing new ones, never by dropping old ones.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    pub uploads_per_day: u32,
    pub bytes_per_day: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the upload is not valid")]
    Invalid(Vec<FieldError>),
    #[error("this partner has stored {uploads} uploads ({bytes} bytes) today; the quota is {quota_uploads} uploads and {quota_bytes} bytes a day")]
    QuotaExceeded {
        uploads: i64,
        bytes: i64,
        quota_uploads: u32,
        quota_bytes: u64,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for UploadError {
    fn from(e: diesel::result::Error) -> Self {
        UploadError::Db(DbError::Query(e))
    }
}

/// `\d+(\.\d{1,2})?` yuan → fen.
pub fn parse_yuan(s: &str) -> Option<i64> {
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, f),
        None => (s, ""),
    };
    if whole.is_empty()
        || whole.len() > 12
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
        || (s.contains('.') && frac.is_empty())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().ok()? * 10,
        _ => frac.parse().ok()?,
    };
    whole.checked_mul(100)?.checked_add(frac)
}

/// Parses an upload strictly: UTF-8 (a leading BOM is accepted), exactly the contract's
/// header on line 1, every data line valid. Errors name their line.
pub fn parse(body: &[u8]) -> Result<Vec<Row>, Vec<FieldError>> {
    let err = |line: usize, field: &str, message: &str| FieldError {
        field: format!("line {line}: {field}"),
        message: message.to_owned(),
    };
    let body = body.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(body);
    if std::str::from_utf8(body).is_err() {
        return Err(vec![err(1, "file", "is not UTF-8")]);
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    let mut records = reader.records();
    match records.next() {
        Some(Ok(h)) if h.iter().eq(COLUMNS.iter().copied()) => {}
        _ => {
            return Err(vec![err(
                1,
                "header",
                "must be exactly partner_txn_id,kind,partner_reversal_id,gross_yuan,discount_yuan,redeem_points",
            )])
        }
    }
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (i, record) in records.enumerate() {
        let line = i + 2;
        if errors.len() >= MAX_ERRORS {
            break;
        }
        let record = match record {
            Ok(r) if r.len() == COLUMNS.len() => r,
            Ok(_) => {
                errors.push(err(line, "row", "must have 6 columns"));
                continue;
            }
            Err(e) => {
                errors.push(err(line, "row", &e.to_string()));
                continue;
            }
        };
        let before = errors.len();
        let ptid = &record[0];
        if !is_partner_id(ptid) {
            errors.push(err(
                line,
                "partner_txn_id",
                "must match [A-Za-z0-9][A-Za-z0-9._:/-]{0,63}",
            ));
        }
        let kind = match &record[1] {
            "sale" => Some(Kind::Sale),
            "reversal" => Some(Kind::Reversal),
            _ => {
                errors.push(err(line, "kind", "must be sale or reversal"));
                None
            }
        };
        let prid = &record[2];
        match kind {
            Some(Kind::Sale) if !prid.is_empty() => {
                errors.push(err(line, "partner_reversal_id", "must be empty on a sale"))
            }
            Some(Kind::Reversal) if !is_partner_id(prid) => errors.push(err(
                line,
                "partner_reversal_id",
                "must match [A-Za-z0-9][A-Za-z0-9._:/-]{0,63} on a reversal",
            )),
            _ => {}
        }
        let gross = parse_yuan(&record[3]).filter(|g| *g >= 1);
        if gross.is_none() {
            errors.push(err(
                line,
                "gross_yuan",
                "must be a positive amount with at most two decimals",
            ));
        }
        let discount = parse_yuan(&record[4]);
        if discount.is_none() {
            errors.push(err(
                line,
                "discount_yuan",
                "must be an amount with at most two decimals",
            ));
        }
        let points = record[5]
            .parse::<i64>()
            .ok()
            .filter(|p| (0..=1_000_000_000_000).contains(p));
        if points.is_none() || record[5].starts_with('+') {
            errors.push(err(
                line,
                "redeem_points",
                "must be a whole number of points, 0 or more",
            ));
        }
        if errors.len() == before {
            if let (Some(kind), Some(g), Some(d), Some(p)) = (kind, gross, discount, points) {
                rows.push(Row {
                    line,
                    partner_txn_id: ptid.to_owned(),
                    kind,
                    partner_reversal_id: prid.to_owned(),
                    gross_fen: g,
                    discount_fen: d,
                    redeem_points: p,
                });
            }
        }
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

/// Stores a partner's upload for `day` (which must be one of the last 90 days, today
/// included); it replaces the partner's earlier ones for that day (all are kept).
pub fn upload(
    conn: &mut DbConn,
    partner: &str,
    day: NaiveDate,
    received: Received,
    quota: Quota,
    body: &[u8],
) -> Result<(usize, chrono::NaiveDateTime), UploadError> {
    let Received {
        at: now,
        today,
        today_from,
    } = received;
    let bad = |m: &str| {
        UploadError::Invalid(vec![FieldError {
            field: "business_date".into(),
            message: m.into(),
        }])
    };
    if day > today {
        return Err(bad("is in the future"));
    }
    if day < today - TimeDelta::days(MAX_AGE_DAYS) {
        return Err(bad("is more than 90 days ago"));
    }
    let rows = parse(body).map_err(UploadError::Invalid)?;
    let text = String::from_utf8_lossy(body).into_owned();
    let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, body));
    let body_bytes = i64::try_from(body.len()).unwrap_or(i64::MAX);
    write_tx(conn, |conn| -> Result<(), UploadError> {
        // Two uploads of one partner at once must not both fit in the last place.
        crate::db::serialise(conn, crate::db::locks::partner_record(partner, "\0uploads"))?;
        let (uploads, bytes) = Upload::received_since(conn, partner, today_from)?;
        let over_count = uploads >= i64::from(quota.uploads_per_day);
        let over_bytes = u64::try_from(bytes.saturating_add(body_bytes))
            .map_or(true, |b| b > quota.bytes_per_day);
        if over_count || over_bytes {
            return Err(UploadError::QuotaExceeded {
                uploads,
                bytes,
                quota_uploads: quota.uploads_per_day,
                quota_bytes: quota.bytes_per_day,
            });
        }
        Upload::insert(
            conn,
            &NewUpload {
                partner_code: partner,
                business_date: day,
                rows: rows.len() as i64,
                body_sha256: &sha,
                body: &text,
                created_at: now,
                body_bytes,
            },
        )?;
        Ok(())
    })?;
    Ok((rows.len(), now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_amounts_parse_to_fen() {
        assert_eq!(parse_yuan("12.34"), Some(1234));
        assert_eq!(parse_yuan("12.3"), Some(1230));
        assert_eq!(parse_yuan("12"), Some(1200));
        assert_eq!(parse_yuan("0.05"), Some(5));
        for bad in ["", "-1.00", "1.234", "1.", ".5", "1e3", "abc", " 1"] {
            assert_eq!(parse_yuan(bad), None, "{bad}");
        }
    }

    #[test]
    fn uploads_are_validated_line_by_line() {
        let good = "\u{feff}partner_txn_id,kind,partner_reversal_id,gross_yuan,discount_yuan,redeem_points\r\nA-1,sale,,100.00,12.00,0\r\nA-1,reversal,R-1,20.00,2.40,0\r\n";
        let rows = parse(good.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].kind, Kind::Reversal);
        let bad = "partner_txn_id,kind,partner_reversal_id,gross_yuan,discount_yuan,redeem_points\nA-1,sale,,100.00,12.00,0\nA-2,refund,,1,0,0\nA-3,sale,,1.234,0,x\n";
        let errors = parse(bad.as_bytes()).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "line 3: kind",
                "line 4: gross_yuan",
                "line 4: redeem_points"
            ]
        );
        assert!(parse(b"a,b\n").is_err());
    }
}
