//! The checks every `/v1/` request passes, in the contract's order (section 13): who the TLS
//! client certificate says the caller is, then the RFC 9421 signature, then the nonce.
//! Framework-free: the HTTP edge hands in a [`RequestView`].
use crate::db::finance_users::FinanceUser;
use crate::db::nonces::{NewNonce, Nonce};
use crate::db::partners::Partner;
use crate::db::{DbConn, DbError};
use crate::domain::Identity;
use crate::pki::keys::{Alg, PublicKey};
use crate::registry::{CacheOnly, Registry, RegistryView, Source};
use crate::signature::{self, digest, parse_request_signature, signature_base, Message, SigError};
use chrono::{DateTime, TimeDelta, Utc};

/// What the TLS layer learnt of the client certificate, once per connection.
#[derive(Debug, Clone)]
pub struct PeerCertificate {
    pub fingerprint_sha256: String,
    /// The one `urn:alliance:` URI SAN, or why there is not exactly one valid one.
    pub identity: Result<Identity, String>,
}

impl PeerCertificate {
    /// Reads the peer's own certificate (the first of the chain it sent).
    pub fn from_der(der: &[u8]) -> Self {
        let fingerprint_sha256 = crate::pki::fingerprint(der);
        let identity = identity_from_cert(der);
        PeerCertificate {
            fingerprint_sha256,
            identity,
        }
    }
}

fn identity_from_cert(der: &[u8]) -> Result<Identity, String> {
    use x509_parser::prelude::*;
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|_| "unparseable certificate".to_owned())?;
    let san = cert
        .subject_alternative_name()
        .map_err(|_| "malformed subjectAltName".to_owned())?
        .ok_or_else(|| "the certificate has no urn:alliance URI SAN".to_owned())?;
    let uris: Vec<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) if Identity::is_alliance_urn(u) => Some(*u),
            _ => None,
        })
        .collect();
    match uris.as_slice() {
        [one] => Identity::from_urn(one).map_err(|e| e.to_string()),
        [] => Err("the certificate has no urn:alliance URI SAN".into()),
        _ => Err("the certificate has several urn:alliance URI SANs".into()),
    }
}

/// A request as the signature layer sees it.
pub struct RequestView<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub authority: Option<&'a str>,
    /// (lowercase name, value) pairs.
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
}

impl RequestView<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

/// A caller whose certificate and signature both checked out.
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Identity,
    pub key_id: String,
    /// The verified signature's label and serialized value, for the response to bind to.
    pub signature_label: String,
    pub signature_value: String,
    /// The request's Content-Digest, echoed in receipts as `request_digest`.
    pub content_digest: Option<String>,
    /// The registry as this request's checks read it; handlers read offers through it.
    pub registry: RegistryView,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    CertificateNotActive(String),
    #[error("the partner is suspended")]
    PartnerSuspended,
    #[error("{0}")]
    MissingSignature(String),
    #[error("{0}")]
    InvalidSignature(String),
    #[error("{0}")]
    InvalidContentDigest(String),
    #[error("the signing key is not known")]
    UnknownKey,
    #[error("the signing key does not belong to the identity of the client certificate")]
    KeyIdentityMismatch,
    #[error("created is more than 300 seconds from the gateway's clock")]
    ClockSkew,
    #[error("the signature has expired")]
    SignatureExpired,
    /// The signature verified, so the answer can still be bound to it.
    #[error("this nonce was already used with this key")]
    ReplayedRequest { label: String, value: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for AuthError {
    fn from(e: diesel::result::Error) -> Self {
        AuthError::Db(DbError::Query(e))
    }
}

impl AuthError {
    /// The verified request signature (label, serialized value) a refusal can be bound to.
    pub fn bound_signature(&self) -> Option<(String, String)> {
        match self {
            AuthError::ReplayedRequest { label, value } => Some((label.clone(), value.clone())),
            _ => None,
        }
    }
}

/// Is the certificate registered, active and its holder allowed in? Checked on every request:
/// TLS 1.3 resumption skips the handshake's verifier, and the registry may have changed.
pub fn check_certificate<S: Source + ?Sized>(
    conn: &mut S,
    registry: &RegistryView,
    peer: Option<&PeerCertificate>,
    now: DateTime<Utc>,
) -> Result<Identity, AuthError> {
    let peer =
        peer.ok_or_else(|| AuthError::CertificateNotActive("no client certificate".into()))?;
    let identity = peer
        .identity
        .clone()
        .map_err(AuthError::CertificateNotActive)?;
    let registered = registry
        .certificate(conn, &peer.fingerprint_sha256)?
        .filter(|c| c.identity == identity.urn())
        .ok_or_else(|| {
            AuthError::CertificateNotActive("the client certificate is not registered".into())
        })?;
    if !registered.is_usable_at(now.naive_utc()) {
        return Err(AuthError::CertificateNotActive(
            "the client certificate is revoked or expired".into(),
        ));
    }
    match &identity {
        Identity::Partner(code) => {
            let partner = registry.partner(conn, code.as_str())?.ok_or_else(|| {
                AuthError::CertificateNotActive("the partner is not registered".into())
            })?;
            if partner.status != Partner::ACTIVE {
                return Err(AuthError::PartnerSuspended);
            }
        }
        Identity::Finance(name) => {
            let active = registry
                .finance_user(conn, name.as_str())?
                .is_some_and(|u| u.status == FinanceUser::ACTIVE);
            if !active {
                return Err(AuthError::CertificateNotActive(
                    "the finance user is not registered or was removed".into(),
                ));
            }
        }
    }
    Ok(identity)
}

fn sig_error(e: SigError) -> AuthError {
    match e {
        SigError::Missing => AuthError::MissingSignature(
            "the request carries no Signature-Input and Signature headers".into(),
        ),
        SigError::Invalid(m) => AuthError::InvalidSignature(m),
        SigError::Digest(m) => AuthError::InvalidContentDigest(m),
    }
}

/// Finance may read (GET) without a signature; every other request is signed.
fn needs_signature(identity: &Identity, req: &RequestView<'_>) -> bool {
    let unsigned = req.header("signature-input").is_none() && req.header("signature").is_none();
    !(matches!(identity, Identity::Finance(_)) && req.method == "GET" && unsigned)
}

/// Where the read-only checks left a request.
pub enum Checked {
    /// Nothing to claim (finance reading without a signature).
    Done(Caller),
    /// The signature verified; its nonce is still to be claimed, last, so that a forged request
    /// cannot burn one. The server claims it in a group-commit batch.
    NonceToClaim(PendingNonce),
}

/// Every check of a request that only reads, in the contract's order: certificate, then
/// signature, against the registry as of one generation. The nonce is claimed after it
/// ([`PendingNonce`]).
pub fn check<S: Source + ?Sized>(
    conn: &mut S,
    registry: RegistryView,
    peer: Option<&PeerCertificate>,
    req: &RequestView<'_>,
    now: DateTime<Utc>,
) -> Result<Checked, AuthError> {
    // Plain autocommit reads: wrapping them in BEGIN/COMMIT measured slower on SQLite (diesel
    // sends those two unprepared) and a registry change between them is harmless. The
    // registry's rows mostly come from the cache.
    let identity = check_certificate(conn, &registry, peer, now)?;
    if !needs_signature(&identity, req) {
        return Ok(Checked::Done(Caller {
            identity,
            key_id: String::new(),
            signature_label: String::new(),
            signature_value: String::new(),
            content_digest: None,
            registry,
        }));
    }
    let verified = check_signature(conn, &registry, &identity, req, now)?;
    Ok(Checked::NonceToClaim(PendingNonce {
        identity,
        verified,
        registry,
    }))
}

/// Checked, then confirmed: how a request's checks stay as current as the registry without a
/// round trip of their own. The checks run against the registry the cache holds
/// ([`Registry::cached_view`]); the statement that claims the nonce also reads the registry's
/// generation ([`Nonce::claim_reading_generation`]); if it moved on since the cache was filled,
/// the checks run again against the current registry, and their answer is the one that counts.
/// A request is therefore judged by the registry as it was when its nonce was claimed, no
/// earlier. A request that claimed no nonce (a refusal, or finance reading without a signature)
/// reads the generation on its own. On PostgreSQL that is one round trip fewer per signed
/// request; the generation used to be read first, in a statement of its own.
///
/// [`Nonce::claim_reading_generation`]: crate::db::nonces::Nonce::claim_reading_generation
pub enum Stage {
    /// The answer, from checks against a registry known to be current.
    Final(Result<Caller, AuthError>),
    /// Signed, checked against the cached registry; the nonce is still to be claimed, and
    /// the claim's generation then goes to [`PendingNonce::after_claim`].
    ToClaim(PendingNonce),
    /// To be confirmed ([`confirm`]).
    Confirm(Unconfirmed),
}

/// Checks whose registry is not yet known to be current.
pub struct Unconfirmed {
    /// The generation the checks were made at.
    generation: i64,
    /// Their answer, which stands if the generation has not moved; `None` when it is known to
    /// have moved.
    earlier: Option<Result<Caller, AuthError>>,
    /// Whether the nonce was fresh, if it has been claimed already.
    claimed: Option<bool>,
}

/// The first pass, on a database thread: the checks against the cached registry (against the
/// current one before the cache's first fill), then the nonce's claim here unless
/// `claim_elsewhere` (the store claims it with other requests', `Store::claim_nonce`).
pub fn check_cached(
    conn: &mut DbConn,
    registry: &Registry,
    peer: Option<&PeerCertificate>,
    req: &RequestView<'_>,
    now: DateTime<Utc>,
    claim_elsewhere: bool,
) -> Result<Stage, AuthError> {
    let stage = match registry.cached_view() {
        Some(view) => {
            let generation = view.generation();
            // A database error here is an answer to confirm, as any other: if the registry
            // moved on meanwhile, the checks run again.
            checked_against_cache(conn, view, peer, req, now).unwrap_or_else(|e| {
                Stage::Confirm(Unconfirmed {
                    generation,
                    earlier: Some(Err(e)),
                    claimed: None,
                })
            })
        }
        None => {
            let view = registry.current(conn)?;
            match check(conn, view, peer, req, now) {
                Ok(Checked::NonceToClaim(pending)) => Stage::ToClaim(pending),
                Ok(Checked::Done(caller)) => Stage::Final(Ok(caller)),
                Err(e) => Stage::Final(Err(e)),
            }
        }
    };
    match stage {
        Stage::ToClaim(pending) if !claim_elsewhere => {
            let (fresh, at) = Nonce::claim_reading_generation(conn, &pending.new_nonce())?;
            Ok(pending.after_claim(fresh, at))
        }
        other => Ok(other),
    }
}

/// The first pass without a database, on the async worker that read the request: the checks
/// against the cached registry, when every row they need is cached (`None` when one is not:
/// then [`check_cached`] makes them on a database thread). The nonce is still to be claimed,
/// or the answer to be confirmed. Why: the signature's verification is most of a request's
/// CPU, and made here it costs no hand-over to a database thread and back.
pub fn check_cache_only(
    registry: &Registry,
    peer: Option<&PeerCertificate>,
    req: &RequestView<'_>,
    now: DateTime<Utc>,
) -> Option<Stage> {
    // Its only error is a lookup the cache could not answer.
    checked_against_cache(&mut CacheOnly, registry.cached_view()?, peer, req, now).ok()
}

/// The checks against a cached view, before any nonce is claimed: the nonce to claim, or an
/// answer to confirm. An error is the database's.
fn checked_against_cache<S: Source + ?Sized>(
    src: &mut S,
    view: RegistryView,
    peer: Option<&PeerCertificate>,
    req: &RequestView<'_>,
    now: DateTime<Utc>,
) -> Result<Stage, AuthError> {
    let generation = view.generation();
    let answer = match check(src, view, peer, req, now) {
        Ok(Checked::NonceToClaim(pending)) => return Ok(Stage::ToClaim(pending)),
        Ok(Checked::Done(caller)) => Ok(caller),
        Err(AuthError::Db(e)) => return Err(AuthError::Db(e)),
        Err(e) => Err(e),
    };
    Ok(Stage::Confirm(Unconfirmed {
        generation,
        earlier: Some(answer),
        claimed: None,
    }))
}

/// The second pass, when the first could not be confirmed, on a database thread: reads the
/// current generation; the earlier answer stands if it is the one the checks were made at,
/// else the checks run again against it (and claim the nonce, if that was not done yet).
pub fn confirm(
    conn: &mut DbConn,
    registry: &Registry,
    peer: Option<&PeerCertificate>,
    req: &RequestView<'_>,
    now: DateTime<Utc>,
    unconfirmed: Unconfirmed,
) -> Result<Caller, AuthError> {
    let view = registry.current(conn)?;
    if let Some(earlier) = unconfirmed.earlier {
        if view.generation() == unconfirmed.generation {
            return earlier;
        }
    }
    match check(conn, view, peer, req, now)? {
        Checked::Done(caller) => Ok(caller),
        Checked::NonceToClaim(pending) => {
            let fresh = match unconfirmed.claimed {
                Some(fresh) => fresh,
                None => Nonce::claim(conn, &pending.new_nonce())?,
            };
            pending.claimed(fresh)
        }
    }
}

/// A signature that verified, whose nonce is still to be claimed.
pub struct Verified {
    key_id: String,
    label: String,
    value: String,
    content_digest: Option<String>,
    nonce_sha256: String,
    nonce_expires_at: chrono::NaiveDateTime,
}

/// A verified request whose nonce is still to be claimed.
pub struct PendingNonce {
    identity: Identity,
    verified: Verified,
    registry: RegistryView,
}

impl PendingNonce {
    /// The row that claims the nonce.
    pub fn new_nonce(&self) -> NewNonce<'_> {
        NewNonce {
            key_id: &self.verified.key_id,
            nonce_sha256: &self.verified.nonce_sha256,
            expires_at: self.verified.nonce_expires_at,
        }
    }

    /// Where the claim leaves the request: answered if the registry's generation at the claim
    /// (`generation`) is the one the checks were made at, else to be confirmed.
    pub fn after_claim(self, fresh: bool, generation: i64) -> Stage {
        if generation == self.registry.generation() {
            Stage::Final(self.claimed(fresh))
        } else {
            Stage::Confirm(Unconfirmed {
                generation: self.registry.generation(),
                earlier: None,
                claimed: Some(fresh),
            })
        }
    }

    /// The caller, once the claim said whether the nonce was `fresh`.
    pub fn claimed(self, fresh: bool) -> Result<Caller, AuthError> {
        let v = self.verified;
        if !fresh {
            return Err(AuthError::ReplayedRequest {
                label: v.label,
                value: v.value,
            });
        }
        Ok(Caller {
            identity: self.identity,
            key_id: v.key_id,
            signature_label: v.label,
            signature_value: v.value,
            content_digest: v.content_digest,
            registry: self.registry,
        })
    }
}

/// Verifies the request's signature for `identity` (everything but the nonce).
pub fn check_signature<S: Source + ?Sized>(
    conn: &mut S,
    registry: &RegistryView,
    identity: &Identity,
    req: &RequestView<'_>,
    now: DateTime<Utc>,
) -> Result<Verified, AuthError> {
    let sig = parse_request_signature(req.header("signature-input"), req.header("signature"))
        .map_err(sig_error)?;

    let has_body = !req.body.is_empty();
    let mut required = vec!["@method", "@path", "@query"];
    if has_body {
        required.extend(["content-type", "content-digest"]);
    }
    if req.header("idempotency-key").is_some() {
        required.push("idempotency-key");
    }
    if let Some(missing) = required.iter().find(|c| !sig.covers(c)) {
        return Err(AuthError::InvalidSignature(format!(
            "the signature must cover {missing:?}"
        )));
    }
    let content_digest = req.header("content-digest");
    let claimed = match content_digest {
        Some(h) => Some(digest::claimed_sha256(h).map_err(sig_error)?),
        None if has_body => {
            return Err(AuthError::InvalidContentDigest(
                "a request with a body needs a Content-Digest header".into(),
            ))
        }
        None => None,
    };

    // Safe to unwrap-free: parse_request_signature guarantees keyid, created and nonce.
    let key_id = sig.keyid.clone().unwrap_or_default();
    let key = registry
        .signing_key(conn, &key_id)?
        .ok_or(AuthError::UnknownKey)?;
    if key.identity != identity.urn() {
        return Err(AuthError::KeyIdentityMismatch);
    }
    if !key.is_usable_at(now.naive_utc()) {
        return Err(AuthError::UnknownKey);
    }
    let created = sig.created.unwrap_or_default();
    if (now.timestamp() - created).abs() > signature::MAX_CLOCK_SKEW_S {
        return Err(AuthError::ClockSkew);
    }
    if let Some(expires) = sig.expires {
        if now.timestamp() > expires {
            return Err(AuthError::SignatureExpired);
        }
    }
    if let Some(claimed) = &claimed {
        if !digest::matches(claimed, req.body) {
            return Err(AuthError::InvalidContentDigest(
                "Content-Digest does not match the body".into(),
            ));
        }
    }
    let alg = Alg::parse(&key.alg)
        .ok_or_else(|| DbError::Invariant(format!("key {key_id} has alg {}", key.alg)))?;
    if sig.alg.as_deref().is_some_and(|a| a != alg.as_str()) {
        return Err(AuthError::InvalidSignature(
            "alg does not match the key's algorithm".into(),
        ));
    }
    let public = PublicKey::new(alg, key.public_key.clone())
        .map_err(|e| DbError::Invariant(format!("key {key_id}: {e}")))?;
    let msg = Message {
        method: Some(req.method),
        path: Some(req.path),
        query: req.query,
        authority: req.authority,
        scheme: Some("https"),
        status: None,
        headers: req.headers.clone(),
    };
    let base =
        signature_base(&msg, &sig.components, &[], &sig.params_serialized).map_err(sig_error)?;
    if !public.verify(base.as_bytes(), &sig.signature) {
        return Err(AuthError::InvalidSignature(
            "the signature does not verify".into(),
        ));
    }

    let nonce = sig.nonce.as_deref().unwrap_or_default();
    let nonce_sha256 = hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        nonce.as_bytes(),
    ));
    let nonce_expires_at = DateTime::from_timestamp(created, 0).unwrap_or(now)
        + TimeDelta::seconds(signature::NONCE_RETENTION_S);
    Ok(Verified {
        key_id,
        label: sig.label,
        value: sig.signature_value_serialized,
        content_digest: content_digest.map(str::to_owned),
        nonce_sha256,
        nonce_expires_at: nonce_expires_at.naive_utc(),
    })
}
