pub mod finance;
pub mod keys;
pub mod members;
pub mod ops;
pub mod reconciliation;
pub mod statements;
pub mod transactions;

use super::problem::Code;
use super::problem::Problem;
use crate::db::DbError;
use actix_web::web;

/// The partner and finance API: every route with its methods. Every request passes the
/// signed-API middleware first (`http::middleware`), which the app wraps around these.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/members/verify", "POST").route(web::post().to(members::verify)))
        .service(resource("/v1/keys", "GET").route(web::get().to(keys::jwks)))
        .service(
            resource("/v1/transactions", "GET, POST")
                .route(web::post().to(transactions::record))
                .route(web::get().to(transactions::list)),
        )
        .service(
            resource("/v1/transactions/batch", "POST").route(web::post().to(transactions::batch)),
        )
        .service(
            resource("/v1/transactions/{txn_id}", "GET").route(web::get().to(transactions::one)),
        )
        .service(
            resource("/v1/transactions/{txn_id}/reversals", "POST")
                .route(web::post().to(transactions::reverse)),
        )
        .service(
            resource("/v1/member-tokens", "POST").route(web::post().to(transactions::issue_token)),
        )
        .service(
            resource("/v1/finance/settlements", "GET").route(web::get().to(finance::settlements)),
        )
        .service(
            resource("/v1/finance/settlements/{date}/partners/{file}", "GET")
                .route(web::get().to(statements::finance_partner_file)),
        )
        .service(
            resource("/v1/finance/settlements/{date}/rerun", "POST")
                .route(web::post().to(statements::rerun)),
        )
        .service(
            resource("/v1/finance/settlements/{date}/{file}", "GET")
                .route(web::get().to(statements::finance_file)),
        )
        .service(
            resource("/v1/reconciliation/{business_date}", "PUT")
                .route(web::put().to(reconciliation::upload)),
        )
        .service(resource("/v1/statements", "GET").route(web::get().to(statements::list)))
        .service(
            resource("/v1/statements/{business_date}", "GET")
                .route(web::get().to(statements::statement)),
        )
        .service(
            resource("/v1/statements/{business_date}/manifest", "GET")
                .route(web::get().to(statements::manifest)),
        )
        .service(
            resource("/v1/statements/{business_date}/discrepancies", "GET")
                .route(web::get().to(statements::discrepancies)),
        )
        .default_service(web::to(not_found));
}

/// The ops listener's routes (plain HTTP, loopback).
pub fn configure_ops(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/metrics", web::get().to(ops::metrics));
}

/// A resource of the partner API with its methods (`allow`, as sent in `Allow`): any other
/// method gets `method-not-allowed` (405), so a partner who sent the wrong method is told so
/// rather than that the path does not exist.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move { method_not_allowed(allow) }))
}

/// A database failure as a problem: 503 when the store had more work queued than it takes on
/// (nothing was done; retry shortly), else 500 with the cause in the log only.
impl From<DbError> for Problem {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Overloaded => Problem::overloaded(),
            other => Problem::internal(&other),
        }
    }
}

/// `method-not-allowed` (405), with the resource's methods in `Allow` (RFC 9110, 15.5.6).
pub fn method_not_allowed(allow: &'static str) -> actix_web::HttpResponse {
    let p = Problem::for_status(actix_web::http::StatusCode::METHOD_NOT_ALLOWED);
    actix_web::HttpResponse::MethodNotAllowed()
        .insert_header(("allow", allow))
        .content_type(crate::http::problem::PROBLEM_JSON)
        .body(p.body("").to_string())
}

pub async fn not_found() -> Result<actix_web::HttpResponse, Problem> {
    Err(Problem::new(Code::NotFound, "no such resource"))
}
