//! The mTLS listener's rustls configuration (ring provider only), with a client-certificate
//! verifier that picks up a new CRL without a restart and remembers the chains it has already
//! verified against the CRL in force. Framework-free: `http::tls` hands the connection's
//! certificate to actix.
use crate::pki::Paths;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_err(path: &std::path::Path, message: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// At most this many verified chains are remembered; past it the memory starts afresh. A
/// partner has one or two certificates in force, so this covers thousands of partners.
const MAX_REMEMBERED_CHAINS: usize = 4_096;

/// A remembered chain is verified again from scratch after this long, whatever its expiry.
const REMEMBER_CHAIN_S: u64 = 600;

/// Delegates to a WebPKI verifier that is rebuilt whenever `certs/crl.pem` changes.
///
/// A full client-certificate check costs two P-256 signature verifications (the CA's signature
/// on the certificate and on the CRL): a sixth of a new connection's CPU. Between two CRL
/// files the answer for the same chain can only change when it expires, so a chain that
/// passed is remembered, keyed by the SHA-256 of the exact bytes the client sent, until the
/// earlier of its `notAfter` and [`REMEMBER_CHAIN_S`]. The memory belongs to one CRL: a new
/// CRL starts with an empty one, so a revocation reaches every handshake that follows its
/// reload. The handshake's own proof of possession (CertificateVerify) is always checked.
#[derive(Debug)]
pub struct ReloadingClientVerifier {
    inner: RwLock<Arc<Current>>,
    root_hints: Vec<DistinguishedName>,
    ca_pem: Vec<u8>,
    paths: Paths,
    crl_modified: Mutex<Option<SystemTime>>,
}

/// The verifier for one CRL file, and the chains it has passed (digest → remember until, in
/// Unix seconds).
#[derive(Debug)]
struct Current {
    verifier: Arc<dyn ClientCertVerifier>,
    passed: Mutex<HashMap<[u8; 32], u64>>,
}

impl Current {
    fn new(verifier: Arc<dyn ClientCertVerifier>) -> Arc<Self> {
        Arc::new(Current {
            verifier,
            passed: Mutex::new(HashMap::new()),
        })
    }

    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let key = chain_digest(end_entity, intermediates);
        let now_s = now.as_secs();
        if let Ok(mut passed) = self.passed.lock() {
            match passed.get(&key) {
                Some(&until) if now_s < until => return Ok(ClientCertVerified::assertion()),
                Some(_) => {
                    passed.remove(&key);
                }
                None => {}
            }
        }
        let verified = self
            .verifier
            .verify_client_cert(end_entity, intermediates, now)?;
        if let Some(not_after) = not_after_s(end_entity) {
            let until = not_after.min(now_s.saturating_add(REMEMBER_CHAIN_S));
            if let Ok(mut passed) = self.passed.lock() {
                if passed.len() >= MAX_REMEMBERED_CHAINS {
                    passed.clear();
                }
                passed.insert(key, until);
            }
        }
        Ok(verified)
    }
}

/// SHA-256 over every certificate of the chain, each prefixed with its length, so that no two
/// different chains share a digest.
fn chain_digest(end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for cert in std::iter::once(end_entity).chain(intermediates) {
        ctx.update(&(cert.len() as u64).to_be_bytes());
        ctx.update(cert.as_ref());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The certificate's `notAfter` in Unix seconds (already checked by WebPKI by then).
fn not_after_s(der: &[u8]) -> Option<u64> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    u64::try_from(cert.validity().not_after.timestamp()).ok()
}

impl ReloadingClientVerifier {
    pub fn new(paths: &Paths) -> Result<Arc<Self>, TlsError> {
        let ca_path = paths.ca_cert();
        let ca_pem = std::fs::read(&ca_path).map_err(|e| file_err(&ca_path, e))?;
        let roots = root_store(&ca_pem, &ca_path)?;
        let (inner, modified) = build(&roots, &paths.crl())?;
        Ok(Arc::new(ReloadingClientVerifier {
            inner: RwLock::new(Current::new(inner)),
            root_hints: roots.subjects(),
            ca_pem,
            paths: paths.clone(),
            crl_modified: Mutex::new(modified),
        }))
    }

    fn current(&self) -> Arc<Current> {
        match self.inner.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reloads the CRL if its file changed. Returns whether it did. A bad new CRL is refused
    /// and the previous one stays in force.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let crl = self.paths.crl();
        let modified = std::fs::metadata(&crl).and_then(|m| m.modified()).ok();
        let mut last = self
            .crl_modified
            .lock()
            .map_err(|_| TlsError::Config("lock poisoned".into()))?;
        if modified == *last {
            return Ok(false);
        }
        let roots = root_store(&self.ca_pem, &self.paths.ca_cert())?;
        let (verifier, modified) = build(&roots, &crl)?;
        // A fresh `Current`: chains passed under the old CRL are forgotten with it.
        let fresh = Current::new(verifier);
        match self.inner.write() {
            Ok(mut guard) => *guard = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        *last = modified;
        Ok(true)
    }
}

fn root_store(ca_pem: &[u8], path: &std::path::Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| file_err(path, e))?;
        roots.add(cert).map_err(|e| file_err(path, e))?;
    }
    if roots.is_empty() {
        return Err(file_err(path, "no CA certificate"));
    }
    Ok(roots)
}

fn build(
    roots: &RootCertStore,
    crl_path: &std::path::Path,
) -> Result<(Arc<dyn ClientCertVerifier>, Option<SystemTime>), TlsError> {
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots.clone()), provider());
    let mut modified = None;
    if crl_path.exists() {
        let pem = std::fs::read(crl_path).map_err(|e| file_err(crl_path, e))?;
        modified = std::fs::metadata(crl_path).and_then(|m| m.modified()).ok();
        let crls = CertificateRevocationListDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file_err(crl_path, e))?;
        builder = builder.with_crls(crls);
    }
    let verifier = builder
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok((verifier, modified))
}

impl ClientCertVerifier for ReloadingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.root_hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current().verify(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current()
            .verifier
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current()
            .verifier
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().verifier.supported_verify_schemes()
    }
}

/// TLS 1.3 and 1.2, client certificate required, the gateway's server certificate.
pub fn server_config(
    paths: &Paths,
    verifier: Arc<ReloadingClientVerifier>,
) -> Result<ServerConfig, TlsError> {
    let cert_path = paths.server_cert();
    let key_path = paths.server_key();
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| file_err(&cert_path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(&cert_path, e))?;
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| file_err(&key_path, e))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // One TLS 1.3 resumption ticket per handshake instead of rustls' two: a till resumes one
    // connection at a time, and each resumption brings a fresh ticket. The second ticket was a
    // record written and a session cached on every handshake for nothing.
    config.send_tls13_tickets = 1;
    Ok(config)
}
