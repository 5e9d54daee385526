//! The actix side of the mTLS listener: the peer's certificate, read once per connection. The
//! rustls configuration and the CRL-reloading verifier are in `pki::tls`.
use crate::auth::PeerCertificate;
use actix_web::dev::Extensions;
use std::any::Any;

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
