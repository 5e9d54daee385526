//! Request/response signing keys: Ed25519 (required) and ECDSA P-256 with SHA-256 (raw r‖s).
use super::PkiError;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};

/// DER prefixes of the two key types we accept (RFC 8410 and RFC 5480); the raw key follows.
const ED25519_SPKI_PREFIX: &[u8] = &[
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// PKCS#8 v1 for an Ed25519 seed, as `openssl genpkey -algorithm ed25519` writes it, which every
/// client library can read (ring's own output is v2, which some cannot).
const ED25519_PKCS8_V1_PREFIX: &[u8] = &[
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Ed25519,
    EcdsaP256Sha256,
}

impl Alg {
    /// The RFC 9421 algorithm name.
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Ed25519 => "ed25519",
            Alg::EcdsaP256Sha256 => "ecdsa-p256-sha256",
        }
    }

    pub fn parse(s: &str) -> Option<Alg> {
        match s {
            "ed25519" => Some(Alg::Ed25519),
            "ecdsa-p256-sha256" => Some(Alg::EcdsaP256Sha256),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    alg: Alg,
    raw: Vec<u8>,
}

impl PublicKey {
    pub fn new(alg: Alg, raw: Vec<u8>) -> Result<Self, PkiError> {
        let ok = match alg {
            Alg::Ed25519 => raw.len() == 32,
            Alg::EcdsaP256Sha256 => raw.len() == 65 && raw[0] == 0x04,
        };
        if ok {
            Ok(PublicKey { alg, raw })
        } else {
            Err(PkiError::Invalid(format!(
                "not a raw {} public key",
                alg.as_str()
            )))
        }
    }

    pub fn from_spki_der(der: &[u8]) -> Result<Self, PkiError> {
        if let Some(raw) = der.strip_prefix(ED25519_SPKI_PREFIX) {
            PublicKey::new(Alg::Ed25519, raw.to_vec())
        } else if let Some(raw) = der.strip_prefix(P256_SPKI_PREFIX) {
            PublicKey::new(Alg::EcdsaP256Sha256, raw.to_vec())
        } else {
            Err(PkiError::Invalid(
                "public key must be Ed25519 or ECDSA P-256 (SubjectPublicKeyInfo PEM)".into(),
            ))
        }
    }

    pub fn from_spki_pem(pem: &str) -> Result<Self, PkiError> {
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| PkiError::Invalid("not a PUBLIC KEY PEM".into()))?;
        Self::from_spki_der(der.as_ref())
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }

    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    pub fn to_spki_der(&self) -> Vec<u8> {
        let prefix = match self.alg {
            Alg::Ed25519 => ED25519_SPKI_PREFIX,
            Alg::EcdsaP256Sha256 => P256_SPKI_PREFIX,
        };
        [prefix, &self.raw].concat()
    }

    pub fn to_spki_pem(&self) -> String {
        pem_encode("PUBLIC KEY", &self.to_spki_der())
    }

    /// Strict verification: ring's Ed25519 refuses non-canonical signatures.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        let alg: &dyn signature::VerificationAlgorithm = match self.alg {
            Alg::Ed25519 => &signature::ED25519,
            Alg::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_FIXED,
        };
        signature::UnparsedPublicKey::new(alg, &self.raw)
            .verify(message, sig)
            .is_ok()
    }

    /// The key as a JWK (RFC 8037 for Ed25519, RFC 7518 for P-256).
    pub fn jwk(&self, kid: &str, status: &str) -> serde_json::Value {
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        match self.alg {
            Alg::Ed25519 => serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "x": b64(&self.raw),
                "kid": kid, "alg": "EdDSA", "use": "sig", "status": status,
            }),
            Alg::EcdsaP256Sha256 => serde_json::json!({
                "kty": "EC", "crv": "P-256", "x": b64(&self.raw[1..33]), "y": b64(&self.raw[33..]),
                "kid": kid, "alg": "ES256", "use": "sig", "status": status,
            }),
        }
    }
}

/// A private signing key. Its `Debug` never shows key material.
pub enum PrivateKey {
    Ed25519(Ed25519KeyPair),
    EcdsaP256(EcdsaKeyPair),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({})", self.alg().as_str())
    }
}

impl PrivateKey {
    /// A new Ed25519 key as PKCS#8 v1 PEM.
    pub fn generate_ed25519_pem() -> Result<String, PkiError> {
        let mut seed = [0u8; 32];
        SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| PkiError::Invalid("no system randomness".into()))?;
        let der = [ED25519_PKCS8_V1_PREFIX, &seed].concat();
        Ok(pem_encode("PRIVATE KEY", &der))
    }

    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, PkiError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| PkiError::Invalid("not a PKCS#8 PRIVATE KEY PEM".into()))?;
        let der = der.secret_pkcs8_der();
        if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            return Ok(PrivateKey::Ed25519(k));
        }
        let rng = SystemRandom::new();
        EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map(PrivateKey::EcdsaP256)
            .map_err(|_| PkiError::Invalid("private key must be Ed25519 or ECDSA P-256".into()))
    }

    pub fn alg(&self) -> Alg {
        match self {
            PrivateKey::Ed25519(_) => Alg::Ed25519,
            PrivateKey::EcdsaP256(_) => Alg::EcdsaP256Sha256,
        }
    }

    pub fn public_key(&self) -> PublicKey {
        let raw = match self {
            PrivateKey::Ed25519(k) => k.public_key().as_ref().to_vec(),
            PrivateKey::EcdsaP256(k) => k.public_key().as_ref().to_vec(),
        };
        PublicKey {
            alg: self.alg(),
            raw,
        }
    }

    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        match self {
            PrivateKey::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
            PrivateKey::EcdsaP256(k) => k
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| PkiError::Invalid("ECDSA signing failed".into())),
        }
    }
}

/// The gateway's key id for a public key: stable, derived from the key itself.
pub fn gateway_key_id(public: &PublicKey) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, public.raw());
    format!("gateway/{}", &hex::encode(digest)[..16])
}

pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
