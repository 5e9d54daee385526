//! Revoking a certificate: at once in the registry (the next request gets 403
//! `certificate-not-active`), then in a freshly signed CRL that the gateway reloads, so new
//! handshakes with it fail at TLS.
use super::{Change, LifecycleError};
use crate::db::certificates::Certificate;
use crate::db::{now_utc, write_tx, DbConn};
use crate::pki::ca::Ca;
use crate::pki::{files, Paths, PkiError};
use chrono::{DateTime, Utc};

/// A serial as admins type it: hex, either case, colons allowed (`openssl x509 -serial`
/// prints upper case). Returns the registry's form: lowercase, 32 digits.
pub fn parse_serial(input: &str) -> Result<String, LifecycleError> {
    let hex: String = input
        .trim()
        .trim_start_matches("serial=")
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.is_empty() || hex.len() > 40 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(LifecycleError::Refused(format!(
            "{input:?} is not a serial number (hex digits, as `partner show` prints them)"
        )));
    }
    // Our serials are 16 bytes; a tool may drop leading zeros.
    Ok(format!("{hex:0>32}"))
}

#[derive(Debug)]
pub struct Revoked {
    pub change: Change,
    pub identity: String,
    pub serial_hex: String,
    /// The CRL number written, or why no CRL could be written (the revocation still holds).
    pub crl: Result<u64, String>,
}

/// Revokes one certificate and publishes a new CRL. Revoking it again is not an error (the
/// CRL is re-published, which is harmless). Without the CA key the registry change still
/// happens; `crl` then says why the CRL was not written.
pub fn revoke(
    paths: &Paths,
    conn: &mut DbConn,
    serial: &str,
    reason: Option<&str>,
) -> Result<Revoked, LifecycleError> {
    let serial_hex = parse_serial(serial)?;
    let cert = Certificate::find(conn, &serial_hex)?.ok_or_else(|| {
        LifecycleError::NotFound(format!("no certificate with serial {serial_hex}"))
    })?;
    let change = if cert.status == Certificate::REVOKED {
        Change::AlreadyInEffect
    } else {
        write_tx(conn, |conn| -> Result<(), LifecycleError> {
            Certificate::revoke(conn, &serial_hex, reason, now_utc())?;
            crate::audit::record_admin(
                conn,
                "certificate.revoke",
                &cert.identity,
                serde_json::json!({ "serial": serial_hex, "reason": reason }),
            )?;
            Ok(())
        })?;
        Change::Done
    };
    let crl = Ca::load(paths)
        .map_err(LifecycleError::from)
        .and_then(|ca| publish_crl(paths, &ca, conn))
        .map_err(|e| e.to_string());
    Ok(Revoked {
        change,
        identity: cert.identity,
        serial_hex,
        crl,
    })
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct CrlState {
    crl_number: u64,
    #[serde(default)]
    revoked: Vec<String>,
}

/// Signs a CRL of every revoked certificate in the registry with the next CRL number, and
/// writes `certs/crl.pem` (by rename, so the gateway never reads half a file).
pub fn publish_crl(paths: &Paths, ca: &Ca, conn: &mut DbConn) -> Result<u64, LifecycleError> {
    let state_path = paths.crl_state();
    let previous: CrlState = match std::fs::read_to_string(&state_path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| PkiError::Invalid(format!("{}: {e}", state_path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => CrlState::default(),
        Err(e) => return Err(PkiError::io(&state_path, e).into()),
    };
    let revoked: Vec<(String, DateTime<Utc>)> = Certificate::revoked(conn)?
        .into_iter()
        .map(|(serial, at)| (serial, at.map(|t| t.and_utc()).unwrap_or_else(Utc::now)))
        .collect();
    let number = previous.crl_number + 1;
    let pem = ca.crl(number, &revoked)?;
    // The state first: a crash between the two leaves a number skipped, never reused.
    let state = CrlState {
        crl_number: number,
        revoked: revoked.iter().map(|(s, _)| s.clone()).collect(),
    };
    let state_json =
        serde_json::to_string_pretty(&state).map_err(|e| PkiError::Invalid(e.to_string()))?;
    files::write_secret(&state_path, state_json.as_bytes())?;
    files::write_public(&paths.crl(), pem.as_bytes())?;
    Ok(number)
}

#[cfg(test)]
mod tests {
    use super::parse_serial;

    #[test]
    fn serials_are_accepted_in_either_case_with_colons_and_dropped_zeros() {
        let want = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
        assert_eq!(parse_serial(want).unwrap(), want);
        assert_eq!(
            parse_serial("0A1B2C3D4E5F60718293A4B5C6D7E8F9").unwrap(),
            want
        );
        assert_eq!(
            parse_serial("a1b2c3d4e5f60718293a4b5c6d7e8f9").unwrap(),
            want
        );
        assert_eq!(
            parse_serial("0a:1b:2c:3d:4e:5f:60:71:82:93:a4:b5:c6:d7:e8:f9").unwrap(),
            want
        );
        assert!(parse_serial("xyz").is_err());
        assert!(parse_serial("").is_err());
    }
}
