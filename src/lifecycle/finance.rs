//! Finance staff: a certificate with `urn:alliance:finance:<NAME>`, its key, a PKCS#12 for the
//! browser, and a request-signing key `finance:<NAME>/k<N>` (finance signs every non-GET).
use super::certificates::publish_crl;
use super::{Change, LifecycleError};
use crate::alliance::gateway_jwks;
use crate::config::Settings;
use crate::db::certificates::Certificate;
use crate::db::finance_users::{FinanceUser, NewFinanceUser};
use crate::db::signing_keys::{NewSigningKey, SigningKey};
use crate::db::{now_utc, write_tx, DbConn};
use crate::domain::{FinanceName, Identity};
use crate::partners::onboard::{register_certificate, write_bundle};
use crate::pki::ca::Ca;
use crate::pki::keys::PrivateKey;
use crate::pki::{files, p12, Paths, PkiError};
use std::path::PathBuf;

#[derive(Debug)]
pub enum Added {
    Created {
        key_id: String,
        serial_hex: String,
        bundle: PathBuf,
        /// Set when the password was generated: shown once, stored nowhere.
        generated_password: Option<String>,
    },
    AlreadyActive,
}

/// The bundle directory of a finance user: `bundles/finance/<NAME>/`.
pub fn bundle_dir(settings: &Settings, name: &FinanceName) -> PathBuf {
    settings.bundles_dir().join("finance").join(name.as_str())
}

/// Adds a finance user (or brings back a removed one, with a new certificate and key).
/// `password` is the PKCS#12 password (from `ALLIANCE_P12_PASSWORD`); without one a password
/// is generated and returned once.
pub fn add(
    settings: &Settings,
    conn: &mut DbConn,
    ca: &Ca,
    name: &FinanceName,
    password: Option<String>,
) -> Result<Added, LifecycleError> {
    let existing = FinanceUser::find(conn, name.as_str())?;
    if existing
        .as_ref()
        .is_some_and(|u| u.status == FinanceUser::ACTIVE)
    {
        return Ok(Added::AlreadyActive);
    }
    let (password, generated_password) = match password {
        Some(p) => {
            p12::check_password(&p)?;
            (p, None)
        }
        None => {
            let p = p12::generate_password()?;
            (p.clone(), Some(p))
        }
    };
    let identity = Identity::Finance(name.clone());
    let urn = identity.urn();
    let issued = ca.issue_client(&urn, name.as_str(), None)?;
    let client_key = issued
        .key_pem
        .clone()
        .ok_or_else(|| PkiError::Invalid("no client key was generated".into()))?;
    let signing_pem = PrivateKey::generate_ed25519_pem()?;
    let public = PrivateKey::from_pkcs8_pem(&signing_pem)?.public_key();
    let p12 = p12::pkcs12(
        &issued.cert_pem,
        &client_key,
        ca.cert_pem(),
        name.as_str(),
        &password,
    )?;

    // Everything is made in a staging directory that becomes the bundle once registered.
    let bundle = bundle_dir(settings, name);
    let staging = bundle.with_file_name(format!(".{}.staging", name.as_str()));
    let _ = std::fs::remove_dir_all(&staging);
    let now = now_utc();
    let key_id = write_tx(conn, |conn| -> Result<String, LifecycleError> {
        let keys = SigningKey::for_identity(conn, &urn)?;
        let next = keys
            .iter()
            .filter_map(SigningKey::number)
            .max()
            .unwrap_or(0)
            + 1;
        let key_id = format!("{}/k{next}", identity.key_id_prefix());
        match &existing {
            Some(_) => FinanceUser::set_status(conn, name.as_str(), FinanceUser::ACTIVE, now)?,
            None => FinanceUser::insert(
                conn,
                &NewFinanceUser {
                    name: name.as_str(),
                    status: FinanceUser::ACTIVE,
                    created_at: now,
                    updated_at: now,
                },
            )?,
        }
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
            "finance.add",
            name.as_str(),
            serde_json::json!({
                "serial": issued.serial_hex,
                "key_id": key_id,
                "readded": existing.is_some(),
                "password_generated": generated_password.is_some(),
            }),
        )?;
        write_bundle(
            &staging,
            ca.cert_pem(),
            &issued,
            Some(&signing_pem),
            &public,
            &serde_json::json!({
                "name": name.as_str(),
                "key_id": key_id,
                "gateway_url": settings.public_url,
                "gateway_keys": gateway_jwks(conn)?,
            }),
            "finance.json",
        )?;
        files::write_secret(&staging.join("client.p12"), &p12)?;
        Ok(key_id)
    });
    let key_id = match key_id {
        Ok(k) => k,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if bundle.exists() {
        let aside = bundle.with_file_name(format!(
            "{}.replaced-{}",
            name.as_str(),
            now.format("%Y%m%dT%H%M%S")
        ));
        std::fs::rename(&bundle, &aside).map_err(|e| PkiError::io(&bundle, e))?;
    }
    std::fs::rename(&staging, &bundle).map_err(|e| PkiError::io(&bundle, e))?;
    Ok(Added::Created {
        key_id,
        serial_hex: issued.serial_hex,
        bundle,
        generated_password,
    })
}

#[derive(Debug)]
pub struct Removed {
    pub change: Change,
    pub revoked_serials: Vec<String>,
    /// The CRL number written, or why none could be (the registry change still holds).
    pub crl: Result<u64, String>,
}

/// Removes a finance user: refused from the next request on (403 `certificate-not-active`),
/// every certificate revoked (and listed in a new CRL), every signing key retired at once.
/// Their audit entries and past downloads stay.
pub fn remove(
    paths: &Paths,
    conn: &mut DbConn,
    name: &FinanceName,
) -> Result<Removed, LifecycleError> {
    let urn = Identity::Finance(name.clone()).urn();
    let outcome = write_tx(conn, |conn| -> Result<_, LifecycleError> {
        let user = FinanceUser::find(conn, name.as_str())?.ok_or_else(|| {
            LifecycleError::NotFound(format!("no finance user {}", name.as_str()))
        })?;
        if user.status == FinanceUser::REMOVED {
            return Ok((Change::AlreadyInEffect, Vec::new()));
        }
        let now = now_utc();
        FinanceUser::set_status(conn, name.as_str(), FinanceUser::REMOVED, now)?;
        let mut revoked = Vec::new();
        for cert in Certificate::for_identity(conn, &urn)? {
            if cert.status == Certificate::ACTIVE {
                Certificate::revoke(conn, &cert.serial_hex, Some("finance user removed"), now)?;
                revoked.push(cert.serial_hex);
            }
        }
        for key in SigningKey::for_identity(conn, &urn)? {
            if key.is_usable_at(now) {
                SigningKey::retire(conn, &key.key_id, now)?;
            }
        }
        crate::audit::record_admin(
            conn,
            "finance.remove",
            name.as_str(),
            serde_json::json!({ "revoked": revoked }),
        )?;
        Ok((Change::Done, revoked))
    })?;
    let (change, revoked_serials) = outcome;
    let crl = if change == Change::Done {
        Ca::load(paths)
            .map_err(LifecycleError::from)
            .and_then(|ca| publish_crl(paths, &ca, conn))
            .map_err(|e| e.to_string())
    } else {
        Err("nothing new to publish".to_owned())
    };
    Ok(Removed {
        change,
        revoked_serials,
        crl,
    })
}
