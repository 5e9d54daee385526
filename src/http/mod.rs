//! The actix-web edge: TLS, the signed-API middleware, problems, extractors and routes.
//! Handlers stay thin; the use cases live in `members`, `partners` and `auth`.
pub mod admission;
pub mod body;
pub mod extract;
pub mod middleware;
pub mod problem;
pub mod routes;
pub mod tls;

use crate::config::Settings;
use crate::pki::keys::PrivateKey;
use crate::pki::secrets::MemberKeys;
use std::sync::Arc;

/// What every handler may use. Cloned per worker (all fields are cheap handles).
#[derive(Clone)]
pub struct AppState {
    /// The storage engine: every database read and write goes through it.
    pub store: crate::store::Store,
    /// What time it is (`clock`): the wall's in `serve`, a settable one in tests.
    pub clock: crate::clock::SharedClock,
    pub settings: Arc<Settings>,
    pub gateway_key: Arc<PrivateKey>,
    pub gateway_key_id: Arc<str>,
    pub member_keys: Arc<MemberKeys>,
    pub verify_limits: Arc<crate::members::limits::VerifyLimits>,
    /// Every request, per identity.
    pub rate_limits: Arc<crate::rate_limit::IdentityLimiter>,
    /// The cached registry rows every request's checks read.
    pub registry: crate::registry::Registry,
    /// This worker's places for requests in progress (one per worker, made in the app
    /// factory).
    pub admission: Arc<admission::Admission>,
    /// Places for bodies still arriving after their first moments, per identity
    /// (`http::body`), for the whole process.
    pub slow_bodies: Arc<body::SlowBodies>,
}

/// Body limits (contract section 13): single requests 64 KiB; batches and reconciliation
/// uploads 4 MiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
pub const MAX_BULK_BODY_BYTES: usize = 4 * 1024 * 1024;

pub fn body_limit(path: &str) -> usize {
    if path == "/v1/transactions/batch" || path.starts_with("/v1/reconciliation/") {
        MAX_BULK_BODY_BYTES
    } else {
        MAX_BODY_BYTES
    }
}
