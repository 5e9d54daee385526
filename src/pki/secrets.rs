//! The two member-data keys of contract section 12. They live in files readable only by the
//! service, never in the database, its backups or a bundle.
use super::{files, PkiError};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use std::path::Path;

/// A 256-bit HMAC-SHA256 key with its version (the phone hash stores the version).
pub struct SecretKey {
    key: hmac::Key,
    pub version: i32,
}

impl SecretKey {
    /// Creates a new random key file: `v<version>:<64 hex digits>`.
    pub fn generate(path: &Path, version: i32) -> Result<(), PkiError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| PkiError::Invalid("no system randomness".into()))?;
        let text = format!("v{version}:{}\n", hex::encode(bytes));
        files::write_secret(path, text.as_bytes())
    }

    pub fn load(path: &Path) -> Result<Self, PkiError> {
        let text = files::read_to_string(path)?;
        let bad = || PkiError::Invalid(format!("{}: not a v<N>:<64 hex> key file", path.display()));
        let (version, hex_key) = text.trim().split_once(':').ok_or_else(bad)?;
        let version: i32 = version
            .strip_prefix('v')
            .and_then(|v| v.parse().ok())
            .ok_or_else(bad)?;
        let bytes = hex::decode(hex_key).map_err(|_| bad())?;
        if bytes.len() != 32 {
            return Err(bad());
        }
        Ok(SecretKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
            version,
        })
    }

    pub fn from_bytes(bytes: &[u8; 32], version: i32) -> Self {
        SecretKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
            version,
        }
    }

    pub fn mac(&self, message: &[u8]) -> Vec<u8> {
        hmac::sign(&self.key, message).as_ref().to_vec()
    }
}

/// Both member-data keys, as `serve` and the importer hold them.
pub struct MemberKeys {
    pub member_ref: SecretKey,
    pub phone: SecretKey,
}

impl MemberKeys {
    pub fn load(paths: &super::Paths) -> Result<Self, PkiError> {
        Ok(MemberKeys {
            member_ref: SecretKey::load(&paths.member_ref_key())?,
            phone: SecretKey::load(&paths.phone_key())?,
        })
    }

    /// `member_ref` = first 26 characters of unpadded base32 of
    /// HMAC-SHA256(member-ref key, partner code ‖ 0x00 ‖ internal member id).
    pub fn member_ref(&self, partner_code: &str, member_id: i64) -> String {
        let mut msg = Vec::with_capacity(partner_code.len() + 24);
        msg.extend_from_slice(partner_code.as_bytes());
        msg.push(0);
        msg.extend_from_slice(member_id.to_string().as_bytes());
        let mac = self.member_ref.mac(&msg);
        let mut s = data_encoding::BASE32_NOPAD.encode(&mac);
        s.truncate(26);
        s
    }

    /// HMAC-SHA256(phone key, normalised number), hex.
    pub fn phone_hash(&self, phone: &crate::domain::Phone) -> String {
        hex::encode(self.phone.mac(phone.as_str().as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_refs_differ_per_partner_and_are_26_base32_chars() {
        let keys = MemberKeys {
            member_ref: SecretKey::from_bytes(&[7u8; 32], 1),
            phone: SecretKey::from_bytes(&[9u8; 32], 1),
        };
        let a = keys.member_ref("P-RST-001", 42);
        let b = keys.member_ref("P-CIN-001", 42);
        assert_eq!(a.len(), 26);
        assert_ne!(a, b);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)));
        assert_eq!(a, keys.member_ref("P-RST-001", 42));
    }

    #[test]
    fn key_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        SecretKey::generate(&path, 1).unwrap();
        let k = SecretKey::load(&path).unwrap();
        assert_eq!(k.version, 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
