//! Registering a partner from its spec: partner row, offer version, client certificate,
//! signing key, and the bundle the partner is handed.
use super::spec::PartnerSpec;
use crate::alliance::gateway_jwks;
use crate::config::Settings;
use crate::db::certificates::{Certificate, NewCertificate};
use crate::db::offer_versions::{NewOfferVersion, OfferVersion};
use crate::db::partners::{NewPartner, Partner};
use crate::db::signing_keys::{NewSigningKey, SigningKey};
use crate::db::{now_utc, write_tx, DbConn, DbError};
use crate::domain::Identity;
use crate::pki::ca::{Ca, Issued};
use crate::pki::keys::{PrivateKey, PublicKey};
use crate::pki::{files, PkiError};
use chrono::NaiveDate;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum OnboardError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("{0}")]
    Refused(String),
}

impl From<diesel::result::Error> for OnboardError {
    fn from(e: diesel::result::Error) -> Self {
        OnboardError::Db(DbError::Query(e))
    }
}

/// What the partner brings instead of letting us make keys.
#[derive(Debug, Default)]
pub struct Brought {
    pub public_key: Option<PublicKey>,
    pub csr_pem: Option<String>,
}

#[derive(Debug)]
pub enum Outcome {
    Registered {
        key_id: String,
        serial_hex: String,
        bundle: PathBuf,
    },
    Updated {
        new_offer_version: Option<i64>,
        details_changed: bool,
        /// What changed in the terms, one `path: old → new` per line.
        changes: Vec<String>,
    },
}

/// Onboards `spec`, or updates a partner already onboarded (never reissuing keys or certs).
/// `today` is the current business day in the alliance timezone.
pub fn onboard(
    settings: &Settings,
    conn: &mut DbConn,
    ca: Option<&Ca>,
    spec: &PartnerSpec,
    brought: Brought,
    today: NaiveDate,
) -> Result<Outcome, OnboardError> {
    let code = spec.code.as_str();
    let terms_json = serde_json::to_string(&spec.terms)
        .map_err(|e| OnboardError::Refused(format!("cannot store terms: {e}")))?;
    let capabilities = spec.capabilities.join(",");
    let now = now_utc();

    if let Some(existing) = Partner::find(conn, code)? {
        return write_tx(conn, |conn| {
            update_existing(
                conn,
                spec,
                &existing,
                &terms_json,
                &capabilities,
                today,
                now,
            )
        });
    }

    let ca = ca.ok_or_else(|| {
        OnboardError::Refused("the CA key is needed to onboard a new partner".into())
    })?;
    let identity = Identity::Partner(spec.code.clone());
    let urn = identity.urn();
    let key_id = format!("{code}/k1");

    // Make everything that can fail before touching the database, in a staging directory
    // that becomes the bundle only once the registry has committed.
    let issued: Issued = ca.issue_client(&urn, code, brought.csr_pem.as_deref())?;
    let (signing_key_pem, public) = match brought.public_key {
        Some(p) => (None, p),
        None => {
            let pem = PrivateKey::generate_ed25519_pem()?;
            let public = PrivateKey::from_pkcs8_pem(&pem)?.public_key();
            (Some(pem), public)
        }
    };
    let bundles = settings.bundles_dir();
    let staging = bundles.join(format!(".{code}.staging"));
    let _ = std::fs::remove_dir_all(&staging);
    let jwks = gateway_jwks(conn)?;
    write_bundle(
        &staging,
        ca.cert_pem(),
        &issued,
        signing_key_pem.as_deref(),
        &public,
        &serde_json::json!({
            "partner_code": code,
            "key_id": key_id,
            "gateway_url": settings.public_url,
            "gateway_keys": jwks,
        }),
        "partner.json",
    )?;

    write_tx(conn, |conn| -> Result<(), OnboardError> {
        Partner::insert(
            conn,
            &NewPartner {
                code,
                name: &spec.name,
                category: &spec.category,
                capabilities: &capabilities,
                contact_email: &spec.contact_email,
                status: Partner::ACTIVE,
                created_at: now,
                updated_at: now,
            },
        )?;
        OfferVersion::insert(
            conn,
            &NewOfferVersion {
                partner_code: code,
                version: 1,
                effective_from: spec.effective_from,
                terms_json: &terms_json,
                created_at: now,
            },
        )?;
        register_certificate(conn, &urn, &issued)?;
        SigningKey::insert(
            conn,
            &NewSigningKey {
                key_id: &key_id,
                identity: &urn,
                alg: public.alg().as_str(),
                public_key: public.raw(),
                status: SigningKey::ACTIVE,
                created_at: now,
            },
        )?;
        crate::audit::record_admin(
            conn,
            "partner.onboard",
            code,
            serde_json::json!({
                "offer_version": 1,
                "certificate_serial": issued.serial_hex,
                "key_id": key_id,
                "key_alg": public.alg().as_str(),
                "csr": brought.csr_pem.is_some(),
            }),
        )?;
        Ok(())
    })?;

    let bundle = bundles.join(code);
    if bundle.exists() {
        // A bundle left from an earlier alliance (say, after `init --force`): keep it aside.
        let aside = bundles.join(format!("{code}.replaced-{}", now.format("%Y%m%dT%H%M%S")));
        std::fs::rename(&bundle, &aside).map_err(|e| PkiError::io(&bundle, e))?;
    }
    std::fs::rename(&staging, &bundle).map_err(|e| PkiError::io(&bundle, e))?;
    Ok(Outcome::Registered {
        key_id,
        serial_hex: issued.serial_hex,
        bundle,
    })
}

fn update_existing(
    conn: &mut DbConn,
    spec: &PartnerSpec,
    existing: &Partner,
    terms_json: &str,
    capabilities: &str,
    today: NaiveDate,
    now: chrono::NaiveDateTime,
) -> Result<Outcome, OnboardError> {
    let code = spec.code.as_str();
    let details_changed = existing.name != spec.name
        || existing.category != spec.category
        || existing.capabilities != capabilities
        || existing.contact_email != spec.contact_email;
    if details_changed {
        Partner::update_details(
            conn,
            code,
            &spec.name,
            &spec.category,
            capabilities,
            &spec.contact_email,
            now,
        )?;
    }
    let latest = OfferVersion::latest(conn, code)?
        .ok_or_else(|| DbError::Invariant(format!("partner {code} has no offer version")))?;
    let latest_terms: crate::domain::terms::Terms = serde_json::from_str(&latest.terms_json)
        .map_err(|e| DbError::Invariant(format!("offer {code} v{}: {e}", latest.version)))?;
    let mut new_offer_version = None;
    let changes = diff_terms(&latest_terms, &spec.terms);
    if latest_terms != spec.terms {
        if spec.effective_from <= today {
            return Err(OnboardError::Refused(format!(
                "effective_from: a changed offer must start on a future business day (after {today}), not {}",
                spec.effective_from
            )));
        }
        if spec.effective_from <= latest.effective_from {
            return Err(OnboardError::Refused(format!(
                "effective_from: must be after {} when offer version {} starts",
                latest.effective_from, latest.version
            )));
        }
        let version = latest.version + 1;
        OfferVersion::insert(
            conn,
            &NewOfferVersion {
                partner_code: code,
                version,
                effective_from: spec.effective_from,
                terms_json,
                created_at: now,
            },
        )?;
        new_offer_version = Some(version);
    }
    if details_changed || new_offer_version.is_some() {
        crate::audit::record_admin(
            conn,
            "partner.update",
            code,
            serde_json::json!({
                "details_changed": details_changed,
                "new_offer_version": new_offer_version,
                "changes": changes,
            }),
        )?;
    }
    Ok(Outcome::Updated {
        new_offer_version,
        details_changed,
        changes,
    })
}

/// The differences between two versions of terms, as `path: old → new` lines.
pub fn diff_terms(
    old: &crate::domain::terms::Terms,
    new: &crate::domain::terms::Terms,
) -> Vec<String> {
    fn walk(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        use serde_json::Value::Object;
        match (a, b) {
            (Object(x), Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let null = serde_json::Value::Null;
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(
                        &p,
                        x.get(k).unwrap_or(&null),
                        y.get(k).unwrap_or(&null),
                        out,
                    );
                }
            }
            _ if a != b => out.push(format!("{path}: {a} → {b}")),
            _ => {}
        }
    }
    let (a, b) = (
        serde_json::to_value(old).unwrap_or_default(),
        serde_json::to_value(new).unwrap_or_default(),
    );
    let mut out = Vec::new();
    walk("", &a, &b, &mut out);
    out
}

pub fn register_certificate(conn: &mut DbConn, urn: &str, issued: &Issued) -> Result<(), DbError> {
    Certificate::insert(
        conn,
        &NewCertificate {
            serial_hex: &issued.serial_hex,
            identity: urn,
            fingerprint_sha256: &issued.fingerprint_sha256,
            not_before: issued.not_before,
            not_after: issued.not_after,
            status: Certificate::ACTIVE,
            created_at: now_utc(),
        },
    )?;
    Ok(())
}

/// Writes a bundle directory: `ca.pem`, `client.pem`, `client.key` (unless a CSR was used),
/// `signing.key` (unless the partner brought its public key), `signing.pub` and the JSON.
pub fn write_bundle(
    dir: &Path,
    ca_pem: &str,
    issued: &Issued,
    signing_key_pem: Option<&str>,
    public: &PublicKey,
    description: &serde_json::Value,
    description_name: &str,
) -> Result<(), PkiError> {
    files::create_dir_all(dir)?;
    files::write_public(&dir.join("ca.pem"), ca_pem.as_bytes())?;
    files::write_public(&dir.join("client.pem"), issued.cert_pem.as_bytes())?;
    if let Some(key) = &issued.key_pem {
        files::write_secret(&dir.join("client.key"), key.as_bytes())?;
    }
    if let Some(key) = signing_key_pem {
        files::write_secret(&dir.join("signing.key"), key.as_bytes())?;
    }
    files::write_public(&dir.join("signing.pub"), public.to_spki_pem().as_bytes())?;
    let json =
        serde_json::to_string_pretty(description).map_err(|e| PkiError::Invalid(e.to_string()))?;
    files::write_public(&dir.join(description_name), format!("{json}\n").as_bytes())?;
    Ok(())
}
