//! The loopback ops listener: liveness, readiness, metrics. Plain HTTP, no identity.
use crate::db::Pool;
use actix_web::{web, HttpResponse};
use diesel::connection::SimpleConnection;

#[derive(Clone)]
pub struct OpsState {
    pub pool: Pool,
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// Ready when the database answers; TLS material was loaded before the listener opened.
pub async fn readyz(state: web::Data<OpsState>) -> HttpResponse {
    let pool = state.pool.clone();
    let db_ok = web::block(move || {
        pool.get()
            .map_err(|e| e.to_string())
            .and_then(|mut c| c.batch_execute("SELECT 1").map_err(|e| e.to_string()))
    })
    .await;
    match db_ok {
        Ok(Ok(())) => HttpResponse::Ok()
            .content_type("text/plain")
            .body("ready: database ok, certificates loaded\n"),
        Ok(Err(e)) => {
            tracing::warn!(error.message = %e, "readiness: database unreachable");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain")
                .body("not ready: database unreachable\n")
        }
        Err(_) => HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("not ready\n"),
    }
}

pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::http::metrics::handle().render())
}
