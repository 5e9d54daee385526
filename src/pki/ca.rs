//! The alliance CA: creates itself, issues server and client certificates, signs CRLs.
use super::{files, fingerprint, Paths, PkiError};
use chrono::{DateTime, TimeDelta, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CertificateSigningRequestParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};

/// How long certificates live. Bounded so a lost client certificate expires on its own.
pub const CA_VALIDITY_DAYS: i64 = 3650;
pub const SERVER_VALIDITY_DAYS: i64 = 397;
pub const CLIENT_VALIDITY_DAYS: i64 = 397;
/// How long a CRL is declared valid; the gateway keeps serving past it (revocation status is
/// still known), but operators should re-sign before then.
pub const CRL_VALIDITY_DAYS: i64 = 30;

fn to_time(t: DateTime<Utc>) -> Result<time::OffsetDateTime, PkiError> {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp())
        .map_err(|_| PkiError::Invalid("time out of range".into()))
}

/// A random positive 128-bit serial: rcgen's default derives it from the key, so two
/// certificates for one key would share a serial.
fn random_serial() -> Result<(SerialNumber, String), PkiError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PkiError::Invalid("no system randomness".into()))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok((SerialNumber::from_slice(&bytes), hex::encode(bytes)))
}

/// A new CA: returns (certificate PEM, key PEM).
pub fn create_ca(alliance_name: &str) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{alliance_name} Alliance CA"));
    dn.push(DnType::OrganizationName, alliance_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = Utc::now();
    params.not_before = to_time(now - TimeDelta::hours(1))?;
    params.not_after = to_time(now + TimeDelta::days(CA_VALIDITY_DAYS))?;
    params.serial_number = Some(random_serial()?.0);
    params.key_identifier_method = KeyIdMethod::Sha256;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A certificate the CA issued, with what the registry needs to know of it.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    /// The private key, unless the subject brought a CSR.
    pub key_pem: Option<String>,
    pub serial_hex: String,
    pub fingerprint_sha256: String,
    pub not_before: chrono::NaiveDateTime,
    pub not_after: chrono::NaiveDateTime,
}

/// The CA, loaded to issue. Only admin commands build one; `serve` never reads the CA key.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl Ca {
    pub fn load(paths: &Paths) -> Result<Self, PkiError> {
        let cert_pem = files::read_to_string(&paths.ca_cert())?;
        let key_pem = files::read_to_string(&paths.ca_key())?;
        let key = KeyPair::from_pem(&key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
        Ok(Ca { issuer, cert_pem })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    fn leaf_params(
        &self,
        common_name: &str,
        sans: Vec<SanType>,
        eku: ExtendedKeyUsagePurpose,
        validity_days: i64,
    ) -> Result<(CertificateParams, String, DateTime<Utc>, DateTime<Utc>), PkiError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![eku];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let (serial, serial_hex) = random_serial()?;
        params.serial_number = Some(serial);
        // Whole seconds: X.509 times carry no fractions, and the registry must match the cert.
        let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_else(Utc::now);
        let not_before = now - TimeDelta::minutes(5);
        let not_after = now + TimeDelta::days(validity_days);
        params.not_before = to_time(not_before)?;
        params.not_after = to_time(not_after)?;
        Ok((params, serial_hex, not_before, not_after))
    }

    /// The gateway's TLS server certificate for `names` (DNS names or IP addresses).
    pub fn issue_server(&self, names: &[String]) -> Result<Issued, PkiError> {
        let sans = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => Ok(SanType::DnsName(n.clone().try_into()?)),
            })
            .collect::<Result<Vec<_>, rcgen::Error>>()?;
        let first = names.first().map(String::as_str).unwrap_or("gateway");
        let (params, serial_hex, nb, na) = self.leaf_params(
            first,
            sans,
            ExtendedKeyUsagePurpose::ServerAuth,
            SERVER_VALIDITY_DAYS,
        )?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            fingerprint_sha256: fingerprint(cert.der()),
            cert_pem: cert.pem(),
            key_pem: Some(key.serialize_pem()),
            serial_hex,
            not_before: nb.naive_utc(),
            not_after: na.naive_utc(),
        })
    }

    /// A client certificate whose one URI SAN is `identity_urn`, with the clientAuth EKU.
    /// With a CSR, only its public key is used: the CA decides every name and extension.
    pub fn issue_client(
        &self,
        identity_urn: &str,
        common_name: &str,
        csr_pem: Option<&str>,
    ) -> Result<Issued, PkiError> {
        let sans = vec![SanType::URI(identity_urn.to_owned().try_into()?)];
        let (params, serial_hex, nb, na) = self.leaf_params(
            common_name,
            sans,
            ExtendedKeyUsagePurpose::ClientAuth,
            CLIENT_VALIDITY_DAYS,
        )?;
        let (cert, key_pem) = match csr_pem {
            Some(csr) => {
                let csr = CertificateSigningRequestParams::from_pem(csr)
                    .map_err(|e| PkiError::Invalid(format!("CSR: {e}")))?;
                (params.signed_by(&csr.public_key, &self.issuer)?, None)
            }
            None => {
                let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
                let cert = params.signed_by(&key, &self.issuer)?;
                (cert, Some(key.serialize_pem()))
            }
        };
        Ok(Issued {
            fingerprint_sha256: fingerprint(cert.der()),
            cert_pem: cert.pem(),
            key_pem,
            serial_hex,
            not_before: nb.naive_utc(),
            not_after: na.naive_utc(),
        })
    }

    /// A CRL listing `revoked` serials (lowercase hex) with their revocation times.
    pub fn crl(
        &self,
        number: u64,
        revoked: &[(String, DateTime<Utc>)],
    ) -> Result<String, PkiError> {
        let now = Utc::now();
        let revoked_certs = revoked
            .iter()
            .map(|(serial_hex, at)| {
                let bytes = hex::decode(serial_hex)
                    .map_err(|_| PkiError::Invalid(format!("bad serial {serial_hex}")))?;
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&bytes),
                    revocation_time: to_time(*at)?,
                    reason_code: None,
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let params = CertificateRevocationListParams {
            this_update: to_time(now - TimeDelta::minutes(5))?,
            next_update: to_time(now + TimeDelta::days(CRL_VALIDITY_DAYS))?,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }
}
