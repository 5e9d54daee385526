//! Creating an alliance (`init`), and facts about it that every part needs.
use crate::config::Settings;
use crate::db::alliance::{Alliance, NewAlliance};
use crate::db::gateway_keys::GatewayKey;
use crate::db::{now_utc, write_tx, DbConn, DbError};
use crate::pki::ca::{self, Ca};
use crate::pki::keys::{gateway_key_id, PrivateKey, PublicKey};
use crate::pki::secrets::SecretKey;
use crate::pki::{files, Paths, PkiError};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("a CA already exists at {0}; pass --force to replace it (every issued certificate then stops working)")]
    CaExists(String),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for InitError {
    fn from(e: diesel::result::Error) -> Self {
        InitError::Db(DbError::Query(e))
    }
}

#[derive(Debug)]
pub struct InitReport {
    pub gateway_key_id: String,
    pub created_member_keys: bool,
}

/// The business day of an instant: its local date in the alliance timezone.
pub fn business_day(at: DateTime<Utc>, tz: Tz) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

/// When the local day `day` begins, as an instant: midnight (the earlier, should a clock change
/// make it happen twice), or the first minute of the day that exists, should a clock change
/// skip midnight.
pub fn day_start_utc(day: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    use chrono::TimeZone;
    let midnight = day.and_hms_opt(0, 0, 0)?;
    (0..=180)
        .map(|m| midnight + chrono::TimeDelta::minutes(m))
        .find_map(|t| tz.from_local_datetime(&t).earliest())
        .map(|t| t.with_timezone(&Utc))
}

/// Creates the CA, the server certificate, the gateway signing key, the two member-data keys
/// and the database. The member-data keys are never replaced, even with `force`: every
/// member ref and phone hash depends on them.
pub fn init(
    settings: &Settings,
    conn: &mut DbConn,
    name: &str,
    force: bool,
) -> Result<InitReport, InitError> {
    let paths = Paths::new(settings);
    if (paths.ca_key().exists() || paths.ca_cert().exists()) && !force {
        return Err(InitError::CaExists(paths.ca_key().display().to_string()));
    }
    for dir in [
        settings.certs_dir(),
        settings.ca_dir.clone(),
        settings.bundles_dir(),
        settings.statements_dir(),
        settings.data_dir(),
    ] {
        files::create_dir_all(&dir)?;
        files::make_private_dir(&dir)?;
    }

    let (ca_pem, ca_key_pem) = ca::create_ca(name)?;
    files::write_secret(&paths.ca_key(), ca_key_pem.as_bytes())?;
    files::write_public(&paths.ca_cert(), ca_pem.as_bytes())?;
    let ca = Ca::load(&paths)?;
    let server = ca.issue_server(&settings.server_names)?;
    files::write_public(&paths.server_cert(), server.cert_pem.as_bytes())?;
    if let Some(key) = &server.key_pem {
        files::write_secret(&paths.server_key(), key.as_bytes())?;
    }
    files::write_public(&paths.crl(), ca.crl(1, &[])?.as_bytes())?;
    files::write_secret(&paths.crl_state(), br#"{"crl_number":1,"revoked":[]}"#)?;

    let gateway_pem = PrivateKey::generate_ed25519_pem()?;
    files::write_secret(&paths.gateway_signing_key(), gateway_pem.as_bytes())?;
    let gateway_public = PrivateKey::from_pkcs8_pem(&gateway_pem)?.public_key();
    let key_id = gateway_key_id(&gateway_public);

    let mut created_member_keys = false;
    for path in [paths.member_ref_key(), paths.phone_key()] {
        if !path.exists() {
            SecretKey::generate(&path, 1)?;
            created_member_keys = true;
        }
    }

    crate::db::migrate(conn)?;
    let now = now_utc();
    write_tx(conn, |conn| -> Result<(), InitError> {
        if Alliance::find(conn)?.is_none() {
            Alliance::insert(
                conn,
                &NewAlliance {
                    id: 1,
                    name,
                    timezone: settings.timezone.name(),
                    first_business_day: business_day(Utc::now(), settings.timezone),
                    created_at: now,
                },
            )?;
        }
        register_gateway_key(conn, &key_id, &gateway_public)?;
        crate::audit::record_admin(
            conn,
            "alliance.init",
            name,
            serde_json::json!({ "force": force, "gateway_key_id": key_id }),
        )?;
        Ok(())
    })?;
    Ok(InitReport {
        gateway_key_id: key_id,
        created_member_keys,
    })
}

/// Makes `key_id` the active gateway key; earlier ones stay listed as retired.
fn register_gateway_key(
    conn: &mut DbConn,
    key_id: &str,
    public: &PublicKey,
) -> Result<(), DbError> {
    use crate::db::schema::gateway_keys::dsl as g;
    use diesel::prelude::*;
    diesel::update(g::gateway_keys.filter(g::key_id.ne(key_id)))
        .set(g::status.eq("retired"))
        .execute(conn)?;
    GatewayKey::register(
        conn,
        &GatewayKey {
            key_id: key_id.to_owned(),
            public_key: public.raw().to_vec(),
            status: "active".to_owned(),
            created_at: now_utc(),
        },
    )?;
    Ok(())
}

/// The gateway's public keys as a JWKS `{"keys":[…]}`, retired ones included.
pub fn gateway_jwks(conn: &mut DbConn) -> Result<serde_json::Value, DbError> {
    let keys = GatewayKey::all(conn)?
        .into_iter()
        .map(|k| {
            PublicKey::new(crate::pki::keys::Alg::Ed25519, k.public_key)
                .map(|p| p.jwk(&k.key_id, &k.status))
                .map_err(|e| DbError::Invariant(format!("gateway key {}: {e}", k.key_id)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(serde_json::json!({ "keys": keys }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_starts_at_its_first_existing_minute() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        let shanghai = day_start_utc(day, chrono_tz::Asia::Shanghai).unwrap();
        assert_eq!(shanghai.to_rfc3339(), "2026-12-06T16:00:00+00:00");
        // Santiago skips from 00:00 to 01:00 when summer time begins (2026-09-06).
        let gap = NaiveDate::from_ymd_opt(2026, 9, 6).unwrap();
        let start = day_start_utc(gap, chrono_tz::America::Santiago).unwrap();
        assert_eq!(
            start
                .with_timezone(&chrono_tz::America::Santiago)
                .date_naive(),
            gap
        );
    }
}
