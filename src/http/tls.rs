//! The mTLS listener's rustls configuration (ring provider only), with a client-certificate
//! verifier that picks up a new CRL without a restart.
use crate::auth::PeerCertificate;
use crate::pki::Paths;
use actix_web::dev::Extensions;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use std::any::Any;
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

/// Delegates to a WebPKI verifier that is rebuilt whenever `certs/crl.pem` changes.
#[derive(Debug)]
pub struct ReloadingClientVerifier {
    inner: RwLock<Arc<dyn ClientCertVerifier>>,
    root_hints: Vec<DistinguishedName>,
    ca_pem: Vec<u8>,
    paths: Paths,
    crl_modified: Mutex<Option<SystemTime>>,
}

impl ReloadingClientVerifier {
    pub fn new(paths: &Paths) -> Result<Arc<Self>, TlsError> {
        let ca_path = paths.ca_cert();
        let ca_pem = std::fs::read(&ca_path).map_err(|e| file_err(&ca_path, e))?;
        let roots = root_store(&ca_pem, &ca_path)?;
        let (inner, modified) = build(&roots, &paths.crl())?;
        Ok(Arc::new(ReloadingClientVerifier {
            inner: RwLock::new(inner),
            root_hints: roots.subjects(),
            ca_pem,
            paths: paths.clone(),
            crl_modified: Mutex::new(modified),
        }))
    }

    fn current(&self) -> Arc<dyn ClientCertVerifier> {
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
        match self.inner.write() {
            Ok(mut guard) => *guard = verifier,
            Err(poisoned) => *poisoned.into_inner() = verifier,
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
        self.current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
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
    Ok(config)
}

/// Reads the peer's own certificate (the *first* one it sent) once per connection.
pub fn on_connect(conn: &dyn Any, ext: &mut Extensions) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    if let Some(tls) = conn.downcast_ref::<Tls>() {
        let (_, session) = tls.get_ref();
        if let Some(first) = session.peer_certificates().and_then(|c| c.first()) {
            ext.insert(PeerCertificate::from_der(first.as_ref()));
        }
    }
}
