//! Suspending, reactivating, rotating a partner's signing key and renewing its certificate.
use super::{move_aside, Change, LifecycleError};
use crate::config::Settings;
use crate::db::partners::Partner;
use crate::db::signing_keys::{NewSigningKey, SigningKey};
use crate::db::{now_utc, write_tx, DbConn};
use crate::domain::{Identity, PartnerCode};
use crate::partners::onboard::register_certificate;
use crate::pki::ca::Ca;
use crate::pki::keys::{PrivateKey, PublicKey};
use crate::pki::{files, PkiError};
use chrono::TimeDelta;
use std::path::PathBuf;

/// The default overlap of a key rotation: the old key keeps verifying this long.
pub const DEFAULT_OVERLAP_HOURS: u32 = 24;
/// The longest overlap accepted: a leaked key must not stay valid for long.
pub const MAX_OVERLAP_HOURS: u32 = 24 * 30;
/// Partner status reasons are free text, bounded.
pub const MAX_REASON_CHARS: usize = 200;

fn find(conn: &mut DbConn, code: &PartnerCode) -> Result<Partner, LifecycleError> {
    Partner::find(conn, code.as_str())?
        .ok_or_else(|| LifecycleError::NotFound(format!("partner {code} is not onboarded")))
}

fn check_reason(reason: Option<&str>) -> Result<(), LifecycleError> {
    match reason {
        Some(r) if r.chars().count() > MAX_REASON_CHARS || r.chars().any(char::is_control) => {
            Err(LifecycleError::Refused(format!(
                "--reason must be at most {MAX_REASON_CHARS} characters without control characters"
            )))
        }
        _ => Ok(()),
    }
}

/// Suspends a partner: its next request gets 403 `partner-suspended`, on open connections and
/// resumed sessions too. Keeps every certificate, key and record.
pub fn suspend(
    conn: &mut DbConn,
    code: &PartnerCode,
    reason: Option<&str>,
) -> Result<Change, LifecycleError> {
    check_reason(reason)?;
    set_status(conn, code, Partner::SUSPENDED, reason, "partner.suspend")
}

/// Lifts a suspension.
pub fn reactivate(conn: &mut DbConn, code: &PartnerCode) -> Result<Change, LifecycleError> {
    set_status(conn, code, Partner::ACTIVE, None, "partner.reactivate")
}

fn set_status(
    conn: &mut DbConn,
    code: &PartnerCode,
    status: &str,
    reason: Option<&str>,
    action: &str,
) -> Result<Change, LifecycleError> {
    write_tx(conn, |conn| {
        let partner = find(conn, code)?;
        if partner.status == status {
            return Ok(Change::AlreadyInEffect);
        }
        Partner::set_status(conn, code.as_str(), status, reason, now_utc())?;
        crate::audit::record_admin(
            conn,
            action,
            code.as_str(),
            serde_json::json!({ "from": partner.status, "to": status, "reason": reason }),
        )?;
        Ok(Change::Done)
    })
}

#[derive(Debug)]
pub struct Rotated {
    pub new_key_id: String,
    /// The keys that now retire, and until when they still verify (UTC).
    pub retiring: Vec<(String, chrono::NaiveDateTime)>,
    pub bundle: PathBuf,
    /// False when the partner brought its public key (no private key written).
    pub wrote_private_key: bool,
}

/// Rotates a partner's signing key: registers `<CODE>/k<N+1>` (generated, or the partner's
/// own public key) and retires the active keys after `overlap` (zero: at once). The bundle's
/// `signing.key` becomes the new key; the old one is kept beside it as `signing.k<N>.key`.
pub fn rotate_key(
    settings: &Settings,
    conn: &mut DbConn,
    code: &PartnerCode,
    brought: Option<PublicKey>,
    overlap: TimeDelta,
) -> Result<Rotated, LifecycleError> {
    if overlap < TimeDelta::zero() || overlap > TimeDelta::hours(MAX_OVERLAP_HOURS.into()) {
        return Err(LifecycleError::Refused(format!(
            "the overlap must be between 0 and {MAX_OVERLAP_HOURS} hours"
        )));
    }
    find(conn, code)?;
    let urn = Identity::Partner(code.clone()).urn();
    let bundle = settings.bundles_dir().join(code.as_str());
    files::create_dir_all(&bundle)?;

    let (private_pem, public) = match brought {
        Some(p) => (None, p),
        None => {
            let pem = PrivateKey::generate_ed25519_pem()?;
            let public = PrivateKey::from_pkcs8_pem(&pem)?.public_key();
            (Some(pem), public)
        }
    };
    // The new private key is on disk before the registry knows its public half, so a crash
    // can never leave a registered key whose private half is lost.
    let staged = bundle.join(".signing.key.new");
    if let Some(pem) = &private_pem {
        files::write_secret(&staged, pem.as_bytes())?;
    }

    let now = now_utc();
    let retire_after = now + overlap;
    let outcome = write_tx(conn, |conn| -> Result<_, LifecycleError> {
        let keys = SigningKey::for_identity(conn, &urn)?;
        let next = keys
            .iter()
            .filter_map(SigningKey::number)
            .max()
            .unwrap_or(0)
            + 1;
        let new_key_id = format!("{code}/k{next}");
        let active: Vec<SigningKey> = keys
            .into_iter()
            .filter(|k| k.status == SigningKey::ACTIVE)
            .collect();
        for k in &active {
            SigningKey::retire(conn, &k.key_id, retire_after)?;
        }
        SigningKey::insert(
            conn,
            &NewSigningKey {
                key_id: &new_key_id,
                identity: &urn,
                alg: public.alg().as_str(),
                public_key: public.raw(),
                status: SigningKey::ACTIVE,
                created_at: now,
            },
        )?;
        let retiring: Vec<(String, chrono::NaiveDateTime)> = active
            .iter()
            .map(|k| (k.key_id.clone(), retire_after))
            .collect();
        crate::audit::record_admin(
            conn,
            "partner.rotate_key",
            code.as_str(),
            serde_json::json!({
                "new_key_id": new_key_id,
                "key_alg": public.alg().as_str(),
                "brought_public_key": private_pem.is_none(),
                "overlap_s": overlap.num_seconds(),
                "retiring": active.iter().map(|k| &k.key_id).collect::<Vec<_>>(),
            }),
        )?;
        Ok((new_key_id, retiring))
    });
    let (new_key_id, retiring) = match outcome {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            return Err(e);
        }
    };

    // The bundle follows the registry: old key files aside under their key id, new ones in.
    let description = bundle.join("partner.json");
    let mut json: serde_json::Value = std::fs::read_to_string(&description)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| serde_json::json!({ "partner_code": code.as_str() }));
    let old_suffix = json["key_id"]
        .as_str()
        .and_then(|k| k.rsplit_once('/'))
        .map(|(_, n)| n.to_owned())
        .unwrap_or_else(|| "old".to_owned());
    move_aside(
        &bundle.join("signing.key"),
        &bundle.join(format!("signing.{old_suffix}.key")),
    )?;
    move_aside(
        &bundle.join("signing.pub"),
        &bundle.join(format!("signing.{old_suffix}.pub")),
    )?;
    if private_pem.is_some() {
        std::fs::rename(&staged, bundle.join("signing.key"))
            .map_err(|e| PkiError::io(&staged, e))?;
    }
    files::write_public(&bundle.join("signing.pub"), public.to_spki_pem().as_bytes())?;
    json["key_id"] = serde_json::Value::String(new_key_id.clone());
    json["gateway_keys"] = crate::alliance::gateway_jwks(conn)?;
    json["gateway_url"] = serde_json::Value::String(settings.public_url.clone());
    let text = serde_json::to_string_pretty(&json).map_err(|e| PkiError::Invalid(e.to_string()))?;
    files::write_public(&description, format!("{text}\n").as_bytes())?;

    Ok(Rotated {
        new_key_id,
        retiring,
        bundle,
        wrote_private_key: private_pem.is_some(),
    })
}

#[derive(Debug)]
pub struct Renewed {
    pub serial_hex: String,
    pub not_after: chrono::NaiveDateTime,
    pub bundle: PathBuf,
    /// The serial the bundle's previous `client.pem` carried, kept as `client.<serial>.pem`.
    pub previous_serial: Option<String>,
}

/// Issues a new client certificate (from the partner's CSR when given). The old certificates
/// stay valid until they expire or are revoked; the bundle keeps them as `client.<serial>.pem`.
pub fn renew_cert(
    settings: &Settings,
    conn: &mut DbConn,
    ca: &Ca,
    code: &PartnerCode,
    csr_pem: Option<&str>,
) -> Result<Renewed, LifecycleError> {
    find(conn, code)?;
    let urn = Identity::Partner(code.clone()).urn();
    let issued = ca.issue_client(&urn, code.as_str(), csr_pem)?;
    write_tx(conn, |conn| -> Result<(), LifecycleError> {
        register_certificate(conn, &urn, &issued)?;
        crate::audit::record_admin(
            conn,
            "partner.renew_cert",
            code.as_str(),
            serde_json::json!({
                "serial": issued.serial_hex,
                "not_after": issued.not_after.and_utc().to_rfc3339(),
                "csr": csr_pem.is_some(),
            }),
        )?;
        Ok(())
    })?;

    let bundle = settings.bundles_dir().join(code.as_str());
    files::create_dir_all(&bundle)?;
    let previous_serial = std::fs::read_to_string(bundle.join("client.pem"))
        .ok()
        .and_then(|pem| serial_of_pem(&pem));
    let suffix = previous_serial.clone().unwrap_or_else(|| "previous".into());
    move_aside(
        &bundle.join("client.pem"),
        &bundle.join(format!("client.{suffix}.pem")),
    )?;
    move_aside(
        &bundle.join("client.key"),
        &bundle.join(format!("client.{suffix}.key")),
    )?;
    files::write_public(&bundle.join("client.pem"), issued.cert_pem.as_bytes())?;
    if let Some(key) = &issued.key_pem {
        files::write_secret(&bundle.join("client.key"), key.as_bytes())?;
    }
    files::write_public(&bundle.join("ca.pem"), ca.cert_pem().as_bytes())?;
    Ok(Renewed {
        serial_hex: issued.serial_hex,
        not_after: issued.not_after,
        bundle,
        previous_serial,
    })
}

/// The serial of the first certificate in a PEM file, as the registry writes serials.
pub fn serial_of_pem(pem: &str) -> Option<String> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    Some(format!("{:0>32}", hex::encode(cert.raw_serial())))
}
