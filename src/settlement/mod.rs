//! Closing business days and writing their statements (contract sections 7, 8 and 13).
//!
//! One mechanism: [`settle_through`] closes every open day up to a given one, oldest first,
//! each in its own transaction that holds the booking lock exclusively (so no record is booked
//! into a day while it closes), and writes the day's files from the records and the snapshot
//! taken at closing. Settling a closed day again rewrites byte-identical files. The CLI
//! (`settle`, `scripts/settle.sh`) calls it; the nightly ticker is to call the same function.
//!
//! `serve` runs [`settle_due`] at start-up (catch-up) and on every firing of
//! `ALLIANCE_SETTLEMENT_CRON` (tokio-cron-scheduler is only the ticker).
//!
//! Not built yet (see the closing note): reconciliation uploads (every line is
//! `not-submitted`), versions after 1, the finance downloads, and streaming (a partner's day
//! is held in memory while its file is written).
pub mod files;
pub mod lines;
pub mod verify;

use crate::alliance::business_day;
use crate::config::Settings;
use crate::db::alliance::Alliance;
use crate::db::business_days::BusinessDays;
use crate::db::offer_versions::OfferVersion;
use crate::db::partner_chains::ChainHead;
use crate::db::partners::Partner;
use crate::db::reconciliation_uploads::Upload;
use crate::db::reversals::Reversal;
use crate::db::settlement_runs::SettlementRun;
use crate::db::transactions::Transaction;
use crate::db::{locks, now_utc, serialise, write_tx, DbConn, DbError};
use crate::domain::Fen;
use crate::partners::terms::{SettlementTerms, Terms};
use crate::pki::keys::PrivateKey;
use crate::pki::PkiError;
use crate::reconciliation::matching::{self, GatewayLine};
use crate::reconciliation::Kind;
use base64::Engine;
use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use files::{guard, Csv};
use lines::Money;
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
    // Uploads for days already closed make a new version of those days.
    let since = now.naive_utc() - chrono::TimeDelta::days(crate::reconciliation::MAX_AGE_DAYS + 1);
    for day in Upload::days_uploaded_since(conn, since)? {
        let Some(latest) = SettlementRun::latest(conn, day)? else {
            continue;
        };
        if recon_json(&Upload::latest_ids(conn, day)?)? != latest.recon_json {
            let (version, _) = rerun(conn, settings, signer, day, "system:settlement")?;
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

/// The day the gateway booked the record an upload row names, if it has it at all.
fn booked_day(
    conn: &mut DbConn,
    partner: &str,
    row: &crate::reconciliation::Row,
) -> Result<Option<NaiveDate>, DbError> {
    let Some(t) = Transaction::find_by_partner_txn_id(conn, partner, &row.partner_txn_id)? else {
        return Ok(None);
    };
    Ok(match row.kind {
        Kind::Sale => Some(t.business_date),
        Kind::Reversal => Reversal::of(conn, &t.txn_id)?
            .into_iter()
            .find(|r| r.partner_reversal_id == row.partner_reversal_id)
            .map(|r| r.business_date),
    })
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
        out.push(settle_day(conn, settings, signer, day)?);
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

/// Closes one day (if open) and writes its version-1 files.
fn settle_day(
    conn: &mut DbConn,
    settings: &Settings,
    signer: &Signer<'_>,
    day: NaiveDate,
) -> Result<DayOutcome, SettleError> {
    let run = write_tx(conn, |conn| -> Result<(SettlementRun, bool), SettleError> {
        serialise(conn, locks::BOOKING)?;
        if let Some(run) = SettlementRun::latest(conn, day)? {
            return Ok((run, false));
        }
        let now = now_utc();
        BusinessDays::close(conn, day, now)?;
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
    let snapshot: Snapshot = serde_json::from_str(&run.snapshot_json)
        .map_err(|e| DbError::Invariant(format!("snapshot of {day}: {e}")))?;
    let started = std::time::Instant::now();
    let written = write_files(conn, settings, signer, &run, &snapshot)?;
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

const STATEMENT_COLUMNS: [&str; 25] = [
    "business_date",
    "partner_code",
    "txn_id",
    "partner_txn_id",
    "kind",
    "partner_reversal_id",
    "occurred_at",
    "late",
    "member_ref",
    "gross_yuan",
    "discount_yuan",
    "redeem_points",
    "redeem_value_yuan",
    "points_earned",
    "discount_subsidy_yuan",
    "redeem_reimbursement_yuan",
    "issue_fee_yuan",
    "commission_yuan",
    "net_yuan",
    "recon_status",
    "offer_version",
    "store_id",
    "original_business_date",
    "seq",
    "line_hash",
];
const SUMMARY_COLUMNS: [&str; 17] = [
    "business_date",
    "partner_code",
    "partner_name",
    "sales",
    "reversals",
    "gross_yuan",
    "discount_yuan",
    "redeem_points",
    "points_earned",
    "discount_subsidy_yuan",
    "redeem_reimbursement_yuan",
    "issue_fee_yuan",
    "commission_yuan",
    "net_yuan",
    "recon_status",
    "statement_sha256",
    "currency",
];
const DISCREPANCY_COLUMNS: [&str; 9] = [
    "business_date",
    "partner_code",
    "partner_txn_id",
    "kind",
    "partner_reversal_id",
    "issue",
    "field",
    "gateway_value",
    "partner_value",
];

fn yuan(fen: i64) -> String {
    Fen::new(fen).to_yuan_string()
}

/// Totals of a partner's (or the whole run's) lines.
#[derive(Default)]
struct Totals {
    sales: i64,
    reversals: i64,
    money: Money,
}

impl Totals {
    fn json(&self) -> Value {
        let m = &self.money;
        json!({
            "sales": self.sales,
            "reversals": self.reversals,
            "redeem_points": m.redeem_points,
            "points_earned": m.points_earned,
            "gross_yuan": yuan(m.gross_fen),
            "discount_yuan": yuan(m.discount_fen),
            "discount_subsidy_yuan": yuan(m.subsidy_fen),
            "redeem_reimbursement_yuan": yuan(m.reimbursement_fen),
            "issue_fee_yuan": yuan(m.issue_fee_fen),
            "commission_yuan": yuan(m.commission_fen),
            "net_yuan": yuan(m.net_fen()),
        })
    }
}

fn terms_of(conn: &mut DbConn, partner: &str, version: i64) -> Result<SettlementTerms, DbError> {
    let v = OfferVersion::for_partner(conn, partner)?
        .into_iter()
        .find(|v| v.version == version)
        .ok_or_else(|| DbError::Invariant(format!("offer {partner} v{version} is missing")))?;
    let terms: Terms = serde_json::from_str(&v.terms_json)
        .map_err(|e| DbError::Invariant(format!("offer {partner} v{version}: {e}")))?;
    Ok(terms.settlement)
}

/// Settlement terms by (partner, offer version), read once per run: versions are immutable.
type TermsCache = BTreeMap<(String, i64), SettlementTerms>;

fn sale_money(
    conn: &mut DbConn,
    cache: &mut TermsCache,
    t: &Transaction,
) -> Result<Money, DbError> {
    let key = (t.partner_code.clone(), t.offer_version);
    let terms = match cache.get(&key) {
        Some(terms) => terms.clone(),
        None => {
            let terms = terms_of(conn, &t.partner_code, t.offer_version)?;
            cache.insert(key, terms.clone());
            terms
        }
    };
    Ok(lines::sale_line(
        &terms,
        t.gross_fen,
        t.discount_fen,
        t.redeem_points,
        t.redeem_value_fen,
        t.points_earned,
    ))
}

/// Signs a manifest: Ed25519 over the RFC 8785 canonical JSON of it without `signature`.
fn sign_manifest(mut manifest: Value, signer: &Signer<'_>) -> Result<Vec<u8>, SettleError> {
    let canonical = serde_json_canonicalizer::to_vec(&manifest)
        .map_err(|e| PkiError::Invalid(format!("manifest: {e}")))?;
    let sig = signer.key.sign(&canonical)?;
    manifest["signature"] = json!({
        "keyid": signer.key_id,
        "alg": "ed25519",
        "value": base64::engine::general_purpose::STANDARD.encode(sig),
    });
    let mut text = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| PkiError::Invalid(format!("manifest: {e}")))?;
    text.push(b'\n');
    Ok(text)
}

/// What writing a run's files produced.
struct Written {
    dir: PathBuf,
    partners: usize,
    lines: usize,
    discrepancies: usize,
    net_yuan: String,
    manifest_sha256: String,
}

/// Writes `statements/<day>/v<N>/`.
fn write_files(
    conn: &mut DbConn,
    settings: &Settings,
    signer: &Signer<'_>,
    run: &SettlementRun,
    snap: &Snapshot,
) -> Result<Written, SettleError> {
    let day = run.business_date;
    let tz: chrono_tz::Tz = snap
        .timezone
        .parse()
        .map_err(|_| DbError::Invariant(format!("timezone {}", snap.timezone)))?;
    let dir = settings
        .statements_dir()
        .join(day.to_string())
        .join(format!("v{}", run.version));
    let closed_at = run
        .closed_at
        .and_utc()
        .with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Secs, false);
    let recon: BTreeMap<String, i64> = serde_json::from_str(&run.recon_json)
        .map_err(|e| DbError::Invariant(format!("recon set of {day}: {e}")))?;
    let mut codes = Transaction::partners_on(conn, day)?;
    codes.extend(Reversal::partners_on(conn, day)?);
    codes.extend(recon.keys().cloned());
    codes.sort();
    codes.dedup();
    let mut discrepancy_csv = Csv::new(snap.csv_bom, &DISCREPANCY_COLUMNS)?;
    let mut terms_cache = TermsCache::new();

    let mut summary = Csv::new(snap.csv_bom, &SUMMARY_COLUMNS)?;
    let mut run_totals = Totals::default();
    let mut manifest_files = Vec::new();
    let mut manifest_partners = Vec::new();
    for code in &codes {
        let mut csv = Csv::new(snap.csv_bom, &STATEMENT_COLUMNS)?;
        let mut totals = Totals::default();
        // Sales and reversals in chain order.
        let sales = Transaction::booked_on(conn, code, day)?;
        let revs = Reversal::booked_on(conn, code, day)?;
        let mut rows: Vec<(i64, Vec<String>, Money, bool)> = Vec::new();
        for t in &sales {
            let m = sale_money(conn, &mut terms_cache, t)?;
            rows.push((t.seq, line(day, code, t, None, &m, tz), m, true));
        }
        for r in &revs {
            let t = Transaction::by_id(conn, &r.txn_id)?.ok_or_else(|| {
                DbError::Invariant(format!("reversal {} has no sale", r.reversal_id))
            })?;
            let sale = sale_money(conn, &mut terms_cache, &t)?;
            let before: i64 = Reversal::of(conn, &t.txn_id)?
                .iter()
                .filter(|e| e.seq < r.seq)
                .map(|e| e.gross_fen)
                .sum();
            let m = lines::reversal_line(&sale, before, r.gross_fen);
            rows.push((r.seq, line(day, code, &t, Some(r), &m, tz), m, false));
        }
        rows.sort_by_key(|(seq, ..)| *seq);
        // Reconcile against the partner's upload this version matches.
        let upload_rows = match recon.get(code) {
            Some(id) => {
                let upload = Upload::find(conn, *id)?
                    .ok_or_else(|| DbError::Invariant(format!("upload {id} is missing")))?;
                Some(
                    crate::reconciliation::parse(upload.body.as_bytes()).map_err(|_| {
                        DbError::Invariant(format!("stored upload {id} no longer parses"))
                    })?,
                )
            }
            None => None,
        };
        let gateway: Vec<GatewayLine> = rows
            .iter()
            .map(|(_, cells, m, is_sale)| GatewayLine {
                partner_txn_id: cells[3].clone(),
                kind: if *is_sale { Kind::Sale } else { Kind::Reversal },
                partner_reversal_id: cells[5].clone(),
                gross_fen: m.gross_fen.abs(),
                discount_fen: m.discount_fen.abs(),
                redeem_points: m.redeem_points.abs(),
            })
            .collect();
        let mut elsewhere = BTreeMap::new();
        if let Some(upload) = &upload_rows {
            for r in upload {
                let key = (r.partner_txn_id.clone(), r.partner_reversal_id.clone());
                let on_this_day = gateway
                    .iter()
                    .any(|g| g.partner_txn_id == key.0 && g.partner_reversal_id == key.1);
                if !on_this_day && !elsewhere.contains_key(&key) {
                    let booked = booked_day(conn, code, r)?;
                    elsewhere.insert(key, booked);
                }
            }
        }
        let outcome = matching::reconcile(&gateway, upload_rows.as_deref(), |r| {
            elsewhere
                .get(&(r.partner_txn_id.clone(), r.partner_reversal_id.clone()))
                .copied()
                .flatten()
        });
        for (row, status) in rows.iter_mut().zip(&outcome.line_status) {
            row.1[19] = (*status).to_owned();
        }
        for d in &outcome.discrepancies {
            discrepancy_csv.row(&[
                day.to_string(),
                guard(code),
                guard(&d.partner_txn_id),
                d.kind.to_owned(),
                guard(&d.partner_reversal_id),
                d.issue.to_owned(),
                d.field.clone(),
                d.gateway_value.clone(),
                d.partner_value.clone(),
            ])?;
        }
        for (_, cells, m, is_sale) in &rows {
            csv.row(cells)?;
            totals.money.add(m);
            if *is_sale {
                totals.sales += 1;
            } else {
                totals.reversals += 1;
            }
        }
        let rows_n = csv.rows;
        let bytes = csv.finish()?;
        let sha = files::sha256_hex(&bytes);
        let name = format!("partners/{code}.csv");
        files::write_atomically(&dir.join(&name), &bytes)?;
        let chain_head = snap.chain_heads.get(code).cloned().unwrap_or_default();
        let partner_manifest = sign_manifest(
            json!({
                "business_date": day.to_string(),
                "version": run.version,
                "closed_at": closed_at,
                "timezone": snap.timezone,
                "partner_code": code,
                "files": [{ "name": name, "rows": rows_n, "sha256": sha }],
                "totals": totals.json(),
                "chain_head": chain_head,
            }),
            signer,
        )?;
        files::write_atomically(
            &dir.join(format!("partners/{code}.manifest.json")),
            &partner_manifest,
        )?;
        let m = &totals.money;
        let name_cell = snap.partner_names.get(code).cloned().unwrap_or_default();
        summary.row(&[
            day.to_string(),
            guard(code),
            guard(&name_cell),
            totals.sales.to_string(),
            totals.reversals.to_string(),
            yuan(m.gross_fen),
            yuan(m.discount_fen),
            m.redeem_points.to_string(),
            m.points_earned.to_string(),
            yuan(m.subsidy_fen),
            yuan(m.reimbursement_fen),
            yuan(m.issue_fee_fen),
            yuan(m.commission_fen),
            yuan(m.net_fen()),
            outcome.status.into(),
            sha.clone(),
            "CNY".into(),
        ])?;
        tracing::info!(
            settlement.day = %day,
            settlement.version = run.version,
            partner.code = %code,
            totals.sales = totals.sales,
            totals.reversals = totals.reversals,
            totals.gross_yuan = %yuan(m.gross_fen),
            totals.net_yuan = %yuan(m.net_fen()),
            recon.status = outcome.status,
            "partner statement written"
        );
        manifest_partners.push(json!({
            "partner_code": code,
            "chain_head": chain_head,
            "statement_sha256": sha,
            "totals": totals.json(),
        }));
        manifest_files.push(json!({ "name": name, "rows": rows_n, "sha256": sha }));
        run_totals.sales += totals.sales;
        run_totals.reversals += totals.reversals;
        run_totals.money.add(&totals.money);
    }
    let summary_rows = summary.rows;
    let summary_bytes = summary.finish()?;
    files::write_atomically(&dir.join("summary.csv"), &summary_bytes)?;
    let discrepancy_rows = discrepancy_csv.rows;
    let discrepancies = discrepancy_csv.finish()?;
    files::write_atomically(&dir.join("discrepancies.csv"), &discrepancies)?;
    let mut all_files = vec![
        json!({ "name": "summary.csv", "rows": summary_rows, "sha256": files::sha256_hex(&summary_bytes) }),
        json!({ "name": "discrepancies.csv", "rows": discrepancy_rows, "sha256": files::sha256_hex(&discrepancies) }),
    ];
    all_files.extend(manifest_files);
    let manifest = sign_manifest(
        json!({
            "business_date": day.to_string(),
            "version": run.version,
            "closed_at": closed_at,
            "timezone": snap.timezone,
            "files": all_files,
            "totals": run_totals.json(),
            "partners": manifest_partners,
        }),
        signer,
    )?;
    files::write_atomically(&dir.join("manifest.json"), &manifest)?;
    Ok(Written {
        dir,
        partners: codes.len(),
        lines: (run_totals.sales + run_totals.reversals) as usize,
        discrepancies: discrepancy_rows,
        net_yuan: yuan(run_totals.money.net_fen()),
        manifest_sha256: files::sha256_hex(&manifest),
    })
}

/// One statement line (contract section 8 columns).
fn line(
    day: NaiveDate,
    code: &str,
    t: &Transaction,
    r: Option<&Reversal>,
    m: &Money,
    tz: chrono_tz::Tz,
) -> Vec<String> {
    let time = |at: chrono::NaiveDateTime| {
        at.and_utc()
            .with_timezone(&tz)
            .to_rfc3339_opts(SecondsFormat::Secs, false)
    };
    let (kind, reversal_id, occurred, late, seq, hash) = match r {
        None => (
            "sale",
            String::new(),
            time(t.occurred_at),
            t.late,
            t.seq,
            &t.line_hash,
        ),
        Some(r) => (
            "reversal",
            guard(&r.partner_reversal_id),
            time(r.occurred_at),
            r.late,
            r.seq,
            &r.line_hash,
        ),
    };
    vec![
        day.to_string(),
        guard(code),
        guard(&t.txn_id),
        guard(&t.partner_txn_id),
        kind.to_owned(),
        reversal_id,
        occurred,
        late.to_string(),
        guard(&t.member_ref),
        yuan(m.gross_fen),
        yuan(m.discount_fen),
        m.redeem_points.to_string(),
        yuan(m.redeem_value_fen),
        m.points_earned.to_string(),
        yuan(m.subsidy_fen),
        yuan(m.reimbursement_fen),
        yuan(m.issue_fee_fen),
        yuan(m.commission_fen),
        yuan(m.net_fen()),
        "not-submitted".to_owned(),
        t.offer_version.to_string(),
        guard(&t.store_id),
        t.business_date.to_string(),
        seq.to_string(),
        hash.clone(),
    ]
}

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

/// Recomputes a closed day (finance's rerun, and the ticker for late uploads): with the same
/// reconciliation uploads it rewrites the latest version byte for byte; when a partner has
/// uploaded since, it makes version N+1 (the amounts cannot change, booking is closed; only
/// the reconciliation does).
pub fn rerun(
    conn: &mut DbConn,
    settings: &Settings,
    signer: &Signer<'_>,
    day: NaiveDate,
    actor: &str,
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
            created_at: now_utc(),
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
