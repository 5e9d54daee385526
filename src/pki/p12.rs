//! PKCS#12 files for finance staff, who use a browser: the client certificate, its key and the
//! CA, encrypted with PBES2 (AES-256-CBC, PBKDF2-HMAC-SHA256) and MACed with HMAC-SHA256,
//! which current browsers and OpenSSL 3 read. No legacy RC2/3DES.
use super::PkiError;
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};

/// Characters of a generated password: no look-alikes (0/O, 1/l/I), so it can be read aloud.
const PASSWORD_ALPHABET: &[u8] = b"23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";
pub const GENERATED_PASSWORD_CHARS: usize = 20;
/// Bounds on a password given through `ALLIANCE_P12_PASSWORD`.
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;

/// A random password of about 116 bits.
pub fn generate_password() -> Result<String, PkiError> {
    let rng = SystemRandom::new();
    let mut out = String::with_capacity(GENERATED_PASSWORD_CHARS);
    while out.len() < GENERATED_PASSWORD_CHARS {
        let mut byte = [0u8; 1];
        rng.fill(&mut byte)
            .map_err(|_| PkiError::Invalid("no system randomness".into()))?;
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - 256 % PASSWORD_ALPHABET.len();
        if usize::from(byte[0]) < limit {
            out.push(char::from(
                PASSWORD_ALPHABET[usize::from(byte[0]) % PASSWORD_ALPHABET.len()],
            ));
        }
    }
    Ok(out)
}

pub fn check_password(password: &str) -> Result<(), PkiError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        return Err(PkiError::Invalid(format!(
            "ALLIANCE_P12_PASSWORD must be {MIN_PASSWORD_CHARS}–{MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// A PKCS#12 holding `cert_pem` with `key_pem` (PKCS#8) and the CA, under `alias`.
pub fn pkcs12(
    cert_pem: &str,
    key_pem: &str,
    ca_pem: &str,
    alias: &str,
    password: &str,
) -> Result<Vec<u8>, PkiError> {
    check_password(password)?;
    let bad = |what: &str| PkiError::Invalid(format!("PKCS#12: cannot read the {what}"));
    let leaf =
        CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|_| bad("certificate"))?;
    let ca =
        CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|_| bad("CA certificate"))?;
    let key = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| bad("key"))?;
    let p12_err = |e: p12_keystore::error::Error| PkiError::Invalid(format!("PKCS#12: {e}"));
    let local_key_id =
        ring::digest::digest(&ring::digest::SHA256, leaf.as_ref()).as_ref()[..20].to_vec();
    let chain = p12_keystore::PrivateKeyChain::new(
        local_key_id,
        p12_keystore::PrivateKey::from_der(key.secret_pkcs8_der()).map_err(p12_err)?,
        [
            p12_keystore::Certificate::from_der(leaf.as_ref()).map_err(p12_err)?,
            p12_keystore::Certificate::from_der(ca.as_ref()).map_err(p12_err)?,
        ],
    );
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(alias, p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
    store.writer(password).write().map_err(p12_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), GENERATED_PASSWORD_CHARS);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| PASSWORD_ALPHABET.contains(&c)));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(check_password("short").is_err());
        assert!(check_password("long enough").is_ok());
    }
}
