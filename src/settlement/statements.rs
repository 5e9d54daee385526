//! Writing a run's files: statement lines (contract section 8 columns), reconciliation
//! against the partner's upload, the summary, discrepancies and the signed manifests.
use super::files::{self, guard, Csv, CsvFile};
use super::lines::{self, Money};
use super::{SettleError, Signer, Snapshot};
use crate::config::Settings;
use crate::db::offer_versions::OfferVersion;
use crate::db::reconciliation_uploads::Upload;
use crate::db::reversals::Reversal;
use crate::db::settlement_runs::SettlementRun;
use crate::db::transactions::Transaction;
use crate::db::{DbConn, DbError};
use crate::domain::terms::{SettlementTerms, Terms};
use crate::domain::Fen;
use crate::pki::PkiError;
use crate::reconciliation::matching::{self, GatewayLine};
use crate::reconciliation::Kind;
use base64::Engine;
use chrono::{NaiveDate, SecondsFormat};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

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
pub(super) struct Written {
    pub(super) dir: PathBuf,
    pub(super) partners: usize,
    pub(super) lines: usize,
    pub(super) discrepancies: usize,
    pub(super) net_yuan: String,
    pub(super) manifest_sha256: String,
}

/// Writes `statements/<day>/v<N>/`.
pub(super) fn write_files(
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
    let stale = files::remove_stale_partials(&dir);
    if stale > 0 {
        tracing::warn!(settlement.day = %day, files.removed = stale, "removed temporary files of a writer that stopped");
    }
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
        let mut reconciler = matching::Reconciler::new(upload_rows.as_deref());
        let name = format!("partners/{code}.csv");
        let mut csv = CsvFile::create(&dir.join(&name), snap.csv_bom, &STATEMENT_COLUMNS)?;
        let mut totals = Totals::default();
        // Sales and reversals in chain order, a page at a time: memory stays flat however
        // long the day is.
        let mut day_lines = DayLines::new(code, day);
        while let Some(entry) = day_lines.next(conn)? {
            let (t, r, m) = match entry {
                Entry::Sale(t) => {
                    let m = sale_money(conn, &mut terms_cache, &t)?;
                    (t, None, m)
                }
                Entry::Reversal(r) => {
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
                    (t, Some(r), m)
                }
            };
            let status = reconciler.line(&GatewayLine {
                partner_txn_id: t.partner_txn_id.clone(),
                kind: if r.is_some() {
                    Kind::Reversal
                } else {
                    Kind::Sale
                },
                partner_reversal_id: r
                    .as_ref()
                    .map(|r| r.partner_reversal_id.clone())
                    .unwrap_or_default(),
                gross_fen: m.gross_fen.abs(),
                discount_fen: m.discount_fen.abs(),
                redeem_points: m.redeem_points.abs(),
            });
            csv.row(&line(day, code, &t, r.as_ref(), &m, tz, status))?;
            totals.money.add(&m);
            if r.is_some() {
                totals.reversals += 1;
            } else {
                totals.sales += 1;
            }
        }
        let (rows_n, sha) = csv.finish()?;
        let (discrepancies, recon_status) = reconciler.finish(|r| booked_day(conn, code, r))?;
        for d in &discrepancies {
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
            recon_status.into(),
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
            recon.status = recon_status,
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

/// Statement lines are read this many at a time from each of sales and reversals.
const PAGE_ROWS: i64 = 1_000;

enum Entry {
    Sale(Transaction),
    Reversal(Reversal),
}

/// A partner's day in chain order: sales and reversals merged by `seq`, read in pages.
struct DayLines<'a> {
    partner: &'a str,
    day: NaiveDate,
    sales: std::collections::VecDeque<Transaction>,
    reversals: std::collections::VecDeque<Reversal>,
    /// The last `seq` read from each table, or None once it has no more rows.
    sales_after: Option<i64>,
    reversals_after: Option<i64>,
}

impl<'a> DayLines<'a> {
    fn new(partner: &'a str, day: NaiveDate) -> Self {
        DayLines {
            partner,
            day,
            sales: Default::default(),
            reversals: Default::default(),
            sales_after: Some(0),
            reversals_after: Some(0),
        }
    }

    fn next(&mut self, conn: &mut DbConn) -> Result<Option<Entry>, DbError> {
        if self.sales.is_empty() {
            if let Some(after) = self.sales_after {
                let page =
                    Transaction::booked_page(conn, self.partner, self.day, after, PAGE_ROWS)?;
                if let Some(t) = page.iter().find(|t| t.line_hash.is_none()) {
                    return Err(unlinked(&t.txn_id));
                }
                self.sales_after = match page.last() {
                    Some(last) if page.len() as i64 == PAGE_ROWS => last.seq,
                    _ => None,
                };
                self.sales.extend(page);
            }
        }
        if self.reversals.is_empty() {
            if let Some(after) = self.reversals_after {
                let page = Reversal::booked_page(conn, self.partner, self.day, after, PAGE_ROWS)?;
                if let Some(r) = page.iter().find(|r| r.line_hash.is_none()) {
                    return Err(unlinked(&r.reversal_id));
                }
                self.reversals_after = match page.last() {
                    Some(last) if page.len() as i64 == PAGE_ROWS => last.seq,
                    _ => None,
                };
                self.reversals.extend(page);
            }
        }
        let sale_first = match (self.sales.front(), self.reversals.front()) {
            (None, None) => return Ok(None),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(s), Some(r)) => s.seq < r.seq,
        };
        Ok(if sale_first {
            self.sales.pop_front().map(Entry::Sale)
        } else {
            self.reversals.pop_front().map(Entry::Reversal)
        })
    }
}

/// A record of a closed day that is not in its partner's chain: closing links every record
/// first, so this is a bug, never a state to print.
fn unlinked(id: &str) -> DbError {
    DbError::Invariant(format!(
        "{id} is in a closed day but not linked into its chain"
    ))
}

/// One statement line (contract section 8 columns).
fn line(
    day: NaiveDate,
    code: &str,
    t: &Transaction,
    r: Option<&Reversal>,
    m: &Money,
    tz: chrono_tz::Tz,
    recon_status: &str,
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
        recon_status.to_owned(),
        t.offer_version.to_string(),
        guard(&t.store_id),
        t.business_date.to_string(),
        seq.map(|s| s.to_string()).unwrap_or_default(),
        hash.clone().unwrap_or_default(),
    ]
}
