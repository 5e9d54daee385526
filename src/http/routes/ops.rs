//! The loopback ops listener: liveness, readiness, metrics. Plain HTTP, no identity.
use crate::db::DbError;
use crate::store::Store;
use actix_web::{web, HttpResponse};
use diesel::connection::SimpleConnection;

#[derive(Clone)]
pub struct OpsState {
    pub store: Store,
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// Ready when the database answers; TLS material was loaded before the listener opened.
pub async fn readyz(state: web::Data<OpsState>) -> HttpResponse {
    let db_ok = state
        .store
        .upkeep(|conn| conn.batch_execute("SELECT 1").map_err(DbError::from))
        .await;
    match db_ok {
        Ok(()) => HttpResponse::Ok()
            .content_type("text/plain")
            .body("ready: database ok, certificates loaded\n"),
        Err(e) => {
            tracing::warn!(error.message = %e, "readiness: database unreachable");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain")
                .body("not ready: database unreachable\n")
        }
    }
}

pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::monitoring::handle().render())
}
