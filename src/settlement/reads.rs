//! Reading settled runs: files by version, a partner's statements and discrepancy rows, and
//! the runs finance lists. Reads never recompute anything.
use super::SettleError;
use crate::config::Settings;
use crate::db::settlement_runs::SettlementRun;
use crate::db::{DbConn, DbError};
use crate::pki::PkiError;
use chrono::NaiveDate;
use serde_json::{json, Value};

/// Settlement runs in a date range (inclusive), for finance: `business_date`, `version`,
/// `status` (`settled` for a day's latest version, `superseded` for earlier ones), `partners`
/// (rows of its summary) and `net_yuan`, read from the run's manifest.
pub fn list_runs(
    conn: &mut DbConn,
    settings: &Settings,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Value>, SettleError> {
    let runs = SettlementRun::in_range(conn, from, to)?;
    let mut out = Vec::with_capacity(runs.len());
    let mut latest_seen: Option<NaiveDate> = None;
    for run in runs {
        // Newest version first within a day.
        let status = if latest_seen == Some(run.business_date) {
            "superseded"
        } else {
            latest_seen = Some(run.business_date);
            "settled"
        };
        let path = settings
            .statements_dir()
            .join(run.business_date.to_string())
            .join(format!("v{}", run.version))
            .join("manifest.json");
        let manifest: Value = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let partners = manifest["partners"].as_array().map_or(0, Vec::len);
        out.push(json!({
            "business_date": run.business_date.to_string(),
            "version": run.version,
            "status": status,
            "partners": partners,
            "net_yuan": manifest["totals"]["net_yuan"].as_str().unwrap_or("0.00"),
        }));
    }
    Ok(out)
}

/// The version to read: the one asked for, or the day's latest.
fn run_version(
    conn: &mut DbConn,
    day: NaiveDate,
    version: Option<i64>,
) -> Result<SettlementRun, SettleError> {
    let latest = SettlementRun::latest(conn, day)?.ok_or(SettleError::NotFound)?;
    match version {
        None => Ok(latest),
        Some(v) if v >= 1 && v <= latest.version => Ok(SettlementRun {
            version: v,
            ..latest
        }),
        Some(_) => Err(SettleError::NotFound),
    }
}

/// One file of a settled day (`summary.csv`, `partners/<CODE>.csv`, `manifest.json`, …):
/// its version and bytes. `name` must be built from validated parts by the caller.
pub fn read_file(
    conn: &mut DbConn,
    settings: &Settings,
    day: NaiveDate,
    version: Option<i64>,
    name: &str,
) -> Result<(i64, Vec<u8>), SettleError> {
    let run = run_version(conn, day, version)?;
    let path = settings
        .statements_dir()
        .join(day.to_string())
        .join(format!("v{}", run.version))
        .join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Ok((run.version, bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SettleError::NotFound),
        Err(e) => Err(PkiError::io(&path, e).into()),
    }
}

/// A partner's rows of a day's `discrepancies.csv` (with the header).
pub fn partner_discrepancies(
    conn: &mut DbConn,
    settings: &Settings,
    day: NaiveDate,
    version: Option<i64>,
    partner: &str,
) -> Result<(i64, Vec<u8>), SettleError> {
    let (v, bytes) = read_file(conn, settings, day, version, "discrepancies.csv")?;
    let text = String::from_utf8_lossy(&bytes);
    let mut out = String::new();
    for (i, line) in text.split_inclusive("\r\n").enumerate() {
        // Column 2 is partner_code; codes never need quoting.
        if i == 0 || line.split(',').nth(1) == Some(partner) {
            out.push_str(line);
        }
    }
    Ok((v, out.into_bytes()))
}

/// A partner's statements in a date range: `{business_date, version, rows, sha256}` for the
/// latest version of each day it has a statement.
pub fn partner_statements(
    conn: &mut DbConn,
    settings: &Settings,
    partner: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Value>, SettleError> {
    let mut out = Vec::new();
    let mut seen: Option<NaiveDate> = None;
    for run in SettlementRun::in_range(conn, from, to)? {
        if seen == Some(run.business_date) {
            continue;
        }
        seen = Some(run.business_date);
        let path = settings
            .statements_dir()
            .join(run.business_date.to_string())
            .join(format!("v{}", run.version))
            .join(format!("partners/{partner}.manifest.json"));
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let m: Value = serde_json::from_slice(&bytes)
            .map_err(|e| DbError::Invariant(format!("{}: {e}", path.display())))?;
        out.push(json!({
            "business_date": run.business_date.to_string(),
            "version": run.version,
            "rows": m["files"][0]["rows"],
            "sha256": m["files"][0]["sha256"],
        }));
    }
    Ok(out)
}
