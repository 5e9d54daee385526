//! Closing business days and writing their statements (contract sections 7, 8 and 13).
//!
//! One mechanism: [`settle_through`] closes every open day up to a given one, oldest first,
//! each in its own transaction that holds the booking lock exclusively (so no record is booked
//! into a day while it closes), and writes the day's files from the records and the snapshot
//! taken at closing. Settling a closed day again rewrites byte-identical files. The CLI
//! (`settle`, `scripts/settle.sh`) calls it, and `serve` runs [`settle_due`] (the same
//! function, for every due day) at start-up to catch up and on every firing of
//! `ALLIANCE_SETTLEMENT_CRON`: tokio-cron-scheduler is only the ticker. [`rerun`] makes
//! version N+1 of a closed day when a partner's reconciliation upload changed since.
//!
//! Not streamed yet: a partner's day is held in memory while its statement is written.
pub mod files;
pub mod lines;
pub mod reads;
mod statements;
pub mod verify;

pub use reads::{list_runs, partner_discrepancies, partner_statements, read_file};
use statements::write_files;

use crate::alliance::business_day;
use crate::config::Settings;
use crate::db::alliance::Alliance;
use crate::db::business_days::BusinessDays;
use crate::db::partner_chains::ChainHead;
use crate::db::partners::Partner;
use crate::db::reconciliation_uploads::Upload;
use crate::db::settlement_runs::SettlementRun;
use crate::db::transactions::Transaction;
use crate::db::{locks, serialise, write_tx, DbConn, DbError};
use crate::pki::keys::PrivateKey;
use crate::pki::PkiError;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("no such statement")]
    NotFound,
    #[error("{0} is not closed yet")]
    DayNotClosed(NaiveDate),
    #[error("{0} has not ended yet in the alliance timezone; it can be settled from tomorrow")]
    DayNotEnded(NaiveDate),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Pki(#[from] PkiError),
}

impl From<diesel::result::Error> for SettleError {
    fn from(e: diesel::result::Error) -> Self {
        SettleError::Db(DbError::Query(e))
    }
}

/// What the files of a day are a function of, besides its records: frozen when it closes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub timezone: String,
    pub csv_bom: bool,
    pub gateway_key_id: String,
    /// Partner code → name at closing.
    pub partner_names: BTreeMap<String, String>,
    /// Partner code → its chain head's line_hash at closing.
    pub chain_heads: BTreeMap<String, String>,
}

#[derive(Debug)]
pub struct DayOutcome {
    pub business_date: NaiveDate,
    pub version: i64,
    /// False when the day had been closed before (its files were rewritten, identically).
    pub newly_closed: bool,
    pub partners: usize,
    /// Statement lines, discrepancy rows and the net, for the summary table.
    pub lines: usize,
    pub discrepancies: usize,
    pub net_yuan: String,
    pub dir: PathBuf,
}

/// The last business day whose scheduled closing has passed at `now`: day D closes at the
/// first firing of `cron` (seconds field first, in the alliance timezone) after D ends. None
/// when the expression does not parse.
pub fn due_through(cron: &str, tz: chrono_tz::Tz, now: DateTime<Utc>) -> Option<NaiveDate> {
    let schedule = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(cron)
        .ok()?;
    let today = business_day(now, tz);
    // Yesterday is due once the first firing after today's midnight has passed; otherwise
    // the day before it (whose closing time came a day earlier).
    let midnight = tz
        .from_local_datetime(&today.and_hms_opt(0, 0, 0)?)
        .earliest()?;
    let closing = schedule.find_next_occurrence(&midnight, true).ok()?;
    let yesterday = today.pred_opt()?;
    if closing.with_timezone(&Utc) <= now {
        Some(yesterday)
    } else {
        yesterday.pred_opt()
    }
}

/// Settles every day that is due at `now` (the ticker's and start-up catch-up's entry point).
/// Returns nothing to do when no day is due or every due day is settled.
pub fn settle_due(
    conn: &mut DbConn,
    settings: &Settings,
    signer: &Signer<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<DayOutcome>, SettleError> {
    let Some(through) = due_through(&settings.settlement_cron, settings.timezone, now) else {
        return Ok(Vec::new());
    };
    let mut out = if BusinessDays::last_closed(conn)?.is_some_and(|closed| closed >= through) {
        Vec::new()
    } else {
        settle_through(conn, settings, signer, through, now)?
    };
    // A run closed by a process that stopped before its files were complete (killed, say)
    // gets them now; the files are a function of the run, so this writes what it would have.
    for run in SettlementRun::unfinished(conn)? {
        let done = out
            .iter()
            .any(|o| o.business_date == run.business_date && o.version == run.version);
        if !done {
            tracing::warn!(
                settlement.day = %run.business_date,
                settlement.version = run.version,
                "completing the files of an unfinished run"
            );
            out.push(write_run(conn, settings, signer, &run, false)?);
        }
    }
    // Uploads for days already closed make a new version of those days.
    let since = now.naive_utc() - chrono::TimeDelta::days(crate::reconciliation::MAX_AGE_DAYS + 1);
    for day in Upload::days_uploaded_since(conn, since)? {
        let Some(latest) = SettlementRun::latest(conn, day)? else {
            continue;
        };
        if recon_json(&Upload::latest_ids(conn, day)?)? != latest.recon_json {
            let (version, _) = rerun(conn, settings, signer, day, ("system:settlement", now))?;
            out.push(DayOutcome {
                business_date: day,
                version,
                newly_closed: false,
                partners: 0,
                lines: 0,
                discrepancies: 0,
                net_yuan: String::new(),
                dir: settings
                    .statements_dir()
                    .join(day.to_string())
                    .join(format!("v{version}")),
            });
        }
    }
    Ok(out)
}

fn recon_json(ids: &BTreeMap<String, i64>) -> Result<String, DbError> {
    serde_json::to_string(ids).map_err(|e| DbError::Invariant(format!("recon set: {e}")))
}

/// The signing key of statements: the gateway's.
pub struct Signer<'a> {
    pub key: &'a PrivateKey,
    pub key_id: &'a str,
}

/// Closes every open day up to and including `through` (oldest first) and writes the files
/// of each; refuses a day that has not ended.
pub fn settle_through(
    conn: &mut DbConn,
    settings: &Settings,
    signer: &Signer<'_>,
    through: NaiveDate,
    now: DateTime<Utc>,
) -> Result<Vec<DayOutcome>, SettleError> {
    let today = business_day(now, settings.timezone);
    if through >= today {
        return Err(SettleError::DayNotEnded(through));
    }
    let first = [
        Alliance::find(conn)?.map(|a| a.first_business_day),
        Transaction::first_day(conn)?,
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(through);
    if through < first {
        // Before the alliance's first business day (and before any booked record).
        return Ok(Vec::new());
    }
    let start = match BusinessDays::last_closed(conn)? {
        Some(closed) if closed >= through => through,
        Some(closed) => closed.succ_opt().unwrap_or(through).min(through),
        None => first,
    };
    let mut out = Vec::new();
    let mut day = start;
    loop {
        out.push(settle_day(conn, settings, signer, day, now)?);
        if day >= through {
            break;
        }
        day = match day.succ_opt() {
            Some(d) => d,
            None => break,
        };
    }
    Ok(out)
}

/// Closes one day (if open) at `now` and writes its version-1 files.
fn settle_day(
    conn: &mut DbConn,
    settings: &Settings,
    signer: &Signer<'_>,
    day: NaiveDate,
    now: DateTime<Utc>,
) -> Result<DayOutcome, SettleError> {
    let run = write_tx(conn, |conn| -> Result<(SettlementRun, bool), SettleError> {
        serialise(conn, locks::BOOKING)?;
        if let Some(run) = SettlementRun::latest(conn, day)? {
            return Ok((run, false));
        }
        let now = crate::db::micros(now);
        BusinessDays::close(conn, day, now)?;
        // Every record booked so far joins its chain before the heads are read (on
        // PostgreSQL the linker may not have reached the last ones). No booking can start
        // meanwhile: this transaction holds the booking lock exclusively.
        crate::transactions::chain::link_all(conn)?;
        let mut partner_names = BTreeMap::new();
        let mut chain_heads = BTreeMap::new();
        for p in Partner::all(conn)? {
            chain_heads.insert(p.code.clone(), ChainHead::current(conn, &p.code)?.line_hash);
            partner_names.insert(p.code, p.name);
        }
        let snapshot = Snapshot {
            timezone: settings.timezone.name().to_owned(),
            csv_bom: settings.csv_bom,
            gateway_key_id: signer.key_id.to_owned(),
            partner_names,
            chain_heads,
        };
        let run = SettlementRun {
            business_date: day,
            version: 1,
            closed_at: now,
            snapshot_json: serde_json::to_string(&snapshot)
                .map_err(|e| DbError::Invariant(format!("snapshot: {e}")))?,
            recon_json: recon_json(&Upload::latest_ids(conn, day)?)?,
            manifest_sha256: None,
            created_at: now,
        };
        SettlementRun::insert(conn, &run)?;
        crate::audit::record(
            conn,
            "system:settlement",
            "settlement.close",
            &day.to_string(),
            &json!({ "version": 1, "result": "ok" }),
        )?;
        Ok((run, true))
    })?;
    let (run, newly_closed) = run;
    write_run(conn, settings, signer, &run, newly_closed)
}

/// Writes a closed run's files and records its manifest digest.
fn write_run(
    conn: &mut DbConn,
    settings: &Settings,
    signer: &Signer<'_>,
    run: &SettlementRun,
    newly_closed: bool,
) -> Result<DayOutcome, SettleError> {
    let day = run.business_date;
    let snapshot: Snapshot = serde_json::from_str(&run.snapshot_json)
        .map_err(|e| DbError::Invariant(format!("snapshot of {day}: {e}")))?;
    let started = std::time::Instant::now();
    let written = write_files(conn, settings, signer, run, &snapshot)?;
    let (dir, manifest_sha) = (written.dir.clone(), written.manifest_sha256.clone());
    metrics::histogram!("alliance_settlement_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("alliance_settlement_lines_total").increment(written.lines as u64);
    metrics::gauge!("alliance_settlement_discrepancies").set(written.discrepancies as f64);
    metrics::gauge!("alliance_settlement_last_business_day").set(f64::from(
        day.format("%Y%m%d").to_string().parse::<u32>().unwrap_or(0),
    ));
    if run.manifest_sha256.as_deref() != Some(manifest_sha.as_str()) {
        write_tx(conn, |conn| {
            SettlementRun::set_manifest(conn, day, run.version, &manifest_sha)
        })?;
    }
    Ok(DayOutcome {
        business_date: day,
        version: run.version,
        newly_closed,
        partners: written.partners,
        lines: written.lines,
        discrepancies: written.discrepancies,
        net_yuan: written.net_yuan,
        dir,
    })
}

/// Recomputes a closed day (finance's rerun, and the ticker for late uploads): with the same
/// reconciliation uploads it rewrites the latest version byte for byte; when a partner has
/// uploaded since, it makes version N+1 (the amounts cannot change, booking is closed; only
/// the reconciliation does).
pub fn rerun(
    conn: &mut DbConn,
    settings: &Settings,
    signer: &Signer<'_>,
    day: NaiveDate,
    (actor, now): (&str, DateTime<Utc>),
) -> Result<(i64, Vec<String>), SettleError> {
    let run = write_tx(conn, |conn| -> Result<SettlementRun, SettleError> {
        serialise(conn, locks::BOOKING)?;
        let latest = SettlementRun::latest(conn, day)?.ok_or(SettleError::DayNotClosed(day))?;
        let current = recon_json(&Upload::latest_ids(conn, day)?)?;
        if current == latest.recon_json {
            return Ok(latest);
        }
        let next = SettlementRun {
            version: latest.version + 1,
            recon_json: current,
            manifest_sha256: None,
            created_at: crate::db::micros(now),
            ..latest
        };
        SettlementRun::insert(conn, &next)?;
        Ok(next)
    })?;
    let snapshot: Snapshot = serde_json::from_str(&run.snapshot_json)
        .map_err(|e| DbError::Invariant(format!("snapshot of {day}: {e}")))?;
    let written = write_files(conn, settings, signer, &run, &snapshot)?;
    let (dir, manifest_sha) = (written.dir, written.manifest_sha256);
    write_tx(conn, |conn| -> Result<(), SettleError> {
        // Only the first writer of a version records its hash (reruns rewrite the same bytes).
        SettlementRun::set_manifest(conn, day, run.version, &manifest_sha)?;
        crate::audit::record(
            conn,
            actor,
            "settlement.rerun",
            &day.to_string(),
            &json!({ "version": run.version, "manifest_sha256": manifest_sha, "result": "ok" }),
        )?;
        Ok(())
    })?;
    let manifest: Value = std::fs::read(dir.join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let mut files: Vec<String> = manifest["files"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|x| x["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    files.push("manifest.json".to_owned());
    Ok((run.version, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_due_after_its_closing_time() {
        let tz = chrono_tz::Asia::Shanghai;
        let at = |d: u32, h: u32| {
            tz.with_ymd_and_hms(2026, 12, d, h, 0, 0)
                .unwrap()
                .with_timezone(&Utc)
        };
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
        // Default: 02:00 the next day.
        assert_eq!(due_through("0 0 2 * * *", tz, at(5, 1)), Some(day(3)));
        assert_eq!(due_through("0 0 2 * * *", tz, at(5, 3)), Some(day(4)));
        assert_eq!(due_through("0 30 0 * * *", tz, at(5, 1)), Some(day(4)));
        assert_eq!(due_through("not a cron", tz, at(5, 1)), None);
    }
}
