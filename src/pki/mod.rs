//! Certificates (rcgen), key files and the member-data secrets.
pub mod ca;
pub mod files;
pub mod keys;
pub mod p12;
pub mod secrets;
pub mod tls;

use crate::config::Settings;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0}")]
    Invalid(String),
}

impl PkiError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PkiError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Where an alliance keeps its key material. The CA key is the only file under `ca_dir` that
/// `serve` never opens.
#[derive(Debug, Clone)]
pub struct Paths {
    pub certs: PathBuf,
    pub ca_dir: PathBuf,
}

impl Paths {
    pub fn new(settings: &Settings) -> Self {
        Paths {
            certs: settings.certs_dir(),
            ca_dir: settings.ca_dir.clone(),
        }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.certs.join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.ca_dir.join("ca.key")
    }
    pub fn crl(&self) -> PathBuf {
        self.certs.join("crl.pem")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.certs.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.certs.join("server.key")
    }
    pub fn gateway_signing_key(&self) -> PathBuf {
        self.certs.join("gateway-signing.key")
    }
    pub fn member_ref_key(&self) -> PathBuf {
        self.certs.join("member-ref.key")
    }
    pub fn phone_key(&self) -> PathBuf {
        self.certs.join("phone.key")
    }
    /// The CA's revocation state: the next CRL number and the revoked serials.
    pub fn crl_state(&self) -> PathBuf {
        self.ca_dir.join("crl-state.json")
    }
}

/// Lowercase hex SHA-256 of a certificate's DER: how the registry names certificates.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, der))
}
