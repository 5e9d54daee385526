//! What `partner list|show` and `finance list` print: status, certificates (serial, expiry),
//! signing keys (state, overlap end) and offer versions. Read-only.
use crate::db::certificates::Certificate;
use crate::db::finance_users::FinanceUser;
use crate::db::offer_versions::OfferVersion;
use crate::db::partners::Partner;
use crate::db::signing_keys::SigningKey;
use crate::db::{DbConn, DbError};
use crate::domain::{FinanceName, Identity, PartnerCode};
use chrono::NaiveDateTime;
use serde::Serialize;

/// Certificates ending within this many days are flagged (and counted in a metric).
pub const EXPIRY_WARNING_DAYS: i64 = 30;

#[derive(Debug, Serialize)]
pub struct CertificateRow {
    pub serial: String,
    pub status: String,
    pub not_before: String,
    pub not_after: String,
    pub expires_soon: bool,
    pub revoked_at: Option<String>,
    pub revocation_reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct KeyRow {
    pub key_id: String,
    pub alg: String,
    /// `active`, `overlap` (retired, still verifying until `retire_after`), or `retired`.
    pub state: String,
    pub retire_after: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct OfferRow {
    pub version: i64,
    pub effective_from: String,
}

#[derive(Debug, Serialize)]
pub struct PartnerReport {
    pub code: String,
    pub name: String,
    pub category: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub capabilities: Vec<String>,
    pub certificates: Vec<CertificateRow>,
    pub keys: Vec<KeyRow>,
    pub offer_versions: Vec<OfferRow>,
    /// Any active certificate ending within 30 days.
    pub expires_soon: bool,
}

#[derive(Debug, Serialize)]
pub struct FinanceReport {
    pub name: String,
    pub status: String,
    pub certificates: Vec<CertificateRow>,
    pub keys: Vec<KeyRow>,
    pub expires_soon: bool,
}

fn time(t: NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn certificates(
    conn: &mut DbConn,
    urn: &str,
    now: NaiveDateTime,
) -> Result<Vec<CertificateRow>, DbError> {
    Ok(Certificate::for_identity(conn, urn)?
        .into_iter()
        .map(|c| CertificateRow {
            expires_soon: c.expires_within(now, EXPIRY_WARNING_DAYS),
            status: if c.status == Certificate::ACTIVE && c.not_after < now {
                "expired".to_owned()
            } else {
                c.status.clone()
            },
            serial: c.serial_hex,
            not_before: time(c.not_before),
            not_after: time(c.not_after),
            revoked_at: c.revoked_at.map(time),
            revocation_reason: c.revocation_reason,
        })
        .collect())
}

fn keys(conn: &mut DbConn, urn: &str, now: NaiveDateTime) -> Result<Vec<KeyRow>, DbError> {
    Ok(SigningKey::for_identity(conn, urn)?
        .into_iter()
        .map(|k| KeyRow {
            state: k.state_at(now).to_owned(),
            retire_after: k.retire_after.map(time),
            key_id: k.key_id,
            alg: k.alg,
        })
        .collect())
}

fn partner_report(
    conn: &mut DbConn,
    p: Partner,
    now: NaiveDateTime,
) -> Result<PartnerReport, DbError> {
    let urn = match PartnerCode::parse(&p.code) {
        Ok(code) => Identity::Partner(code).urn(),
        Err(e) => {
            return Err(DbError::Invariant(format!(
                "partner code {:?}: {e}",
                p.code
            )))
        }
    };
    let certificates = certificates(conn, &urn, now)?;
    Ok(PartnerReport {
        expires_soon: certificates.iter().any(|c| c.expires_soon),
        keys: keys(conn, &urn, now)?,
        offer_versions: OfferVersion::for_partner(conn, &p.code)?
            .into_iter()
            .map(|o| OfferRow {
                version: o.version,
                effective_from: o.effective_from.to_string(),
            })
            .collect(),
        certificates,
        capabilities: p
            .capabilities
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
        code: p.code,
        name: p.name,
        category: p.category,
        status: p.status,
        status_reason: p.status_reason,
    })
}

pub fn partners(conn: &mut DbConn, now: NaiveDateTime) -> Result<Vec<PartnerReport>, DbError> {
    Partner::all(conn)?
        .into_iter()
        .map(|p| partner_report(conn, p, now))
        .collect()
}

pub fn partner(
    conn: &mut DbConn,
    code: &PartnerCode,
    now: NaiveDateTime,
) -> Result<Option<PartnerReport>, DbError> {
    match Partner::find(conn, code.as_str())? {
        Some(p) => partner_report(conn, p, now).map(Some),
        None => Ok(None),
    }
}

pub fn finance_users(conn: &mut DbConn, now: NaiveDateTime) -> Result<Vec<FinanceReport>, DbError> {
    FinanceUser::all(conn)?
        .into_iter()
        .map(|u| {
            let urn = match FinanceName::parse(&u.name) {
                Ok(name) => Identity::Finance(name).urn(),
                Err(e) => {
                    return Err(DbError::Invariant(format!(
                        "finance user {:?}: {e}",
                        u.name
                    )))
                }
            };
            let certificates = certificates(conn, &urn, now)?;
            Ok(FinanceReport {
                expires_soon: certificates.iter().any(|c| c.expires_soon),
                keys: keys(conn, &urn, now)?,
                certificates,
                name: u.name,
                status: u.status,
            })
        })
        .collect()
}
